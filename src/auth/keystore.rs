//! Trusted signing keys shared by every shard, refreshed off the hot path.
//!
//! One blocking thread owns the [`JwksRefresher`] (file re-reads, HTTP fetches) and
//! publishes each new key set here with a generation number. A shard's
//! [`ShardVerifier`] compares generations with one atomic load per join and copies the
//! new `Arc<Jwks>` only when it changed (the mutex is touched on key changes, never on
//! the message path). An unknown `kid`, or a known one whose key does not verify the
//! token, asks the thread for an early refresh; the refresher's own rate limit keeps a
//! flood of bad tokens from hammering the source.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{bounded, Receiver, Sender};

use super::jwks::{Jwks, JwksRefresher, RefreshStats};
use super::jwt::{JwtError, JwtVerifier, VerifiedClaims, VerifierConfig};

/// The current key set and its generation.
pub struct KeyStore {
    current: Mutex<Arc<Jwks>>,
    generation: AtomicU64,
    /// Requests for a reload the refresher has dealt with: loaded, found unchanged,
    /// failed, or declined by its rate limit. A join waiting for a reload stops
    /// waiting when this moves, whether or not new keys came.
    answered: AtomicU64,
    wake: Sender<()>,
    wake_rx: Receiver<()>,
}

impl KeyStore {
    pub fn new(initial: Arc<Jwks>) -> Arc<Self> {
        let (wake, wake_rx) = bounded(1);
        Arc::new(Self {
            current: Mutex::new(initial),
            generation: AtomicU64::new(1),
            answered: AtomicU64::new(0),
            wake,
            wake_rx,
        })
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// How many requests for a reload the refresher has dealt with
    /// ([`Self::request_refresh`]).
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Acquire)
    }

    pub fn current(&self) -> Arc<Jwks> {
        match self.current.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn publish(&self, keys: Arc<Jwks>) {
        match self.current.lock() {
            Ok(mut g) => *g = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Ask the refresher thread for an early reload (an unknown `kid`, or a signature
    /// the known key does not verify). Never blocks.
    pub fn request_refresh(&self) {
        let _ = self.wake.try_send(());
    }

    /// Start the refresher thread: load now (blocking the caller until the first
    /// attempt finished, so startup knows whether keys exist), then re-check every
    /// second or when asked. `report` is given the refresher's counters after each
    /// load that changed them (for metrics: an operator sees loads failing while the
    /// previous keys stay in use).
    pub fn spawn_refresher(
        self: &Arc<Self>,
        mut refresher: JwksRefresher,
        mut report: impl FnMut(RefreshStats) + Send + 'static,
    ) -> std::io::Result<Result<usize, String>> {
        let first = match refresher.refresh_blocking(Instant::now(), false) {
            Ok(Some(keys)) => {
                let n = keys.len();
                self.publish(keys);
                Ok(n)
            }
            Ok(None) => Ok(self.current().len()),
            Err(e) => Err(e.to_string()),
        };
        let mut reported = refresher.stats;
        report(reported);
        let store = self.clone();
        std::thread::Builder::new()
            .name("jwks-refresh".into())
            .spawn(move || loop {
                let asked = store.wake_rx.recv_timeout(Duration::from_secs(1)).is_ok();
                match refresher.refresh_blocking(Instant::now(), asked) {
                    Ok(Some(keys)) => {
                        tracing::info!(keys = keys.len(), "join-token signing keys reloaded");
                        store.publish(keys);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot reload join-token signing keys"),
                }
                if refresher.stats != reported {
                    reported = refresher.stats;
                    report(reported);
                }
                if asked {
                    store.answered.fetch_add(1, Ordering::AcqRel);
                }
            })?;
        Ok(first)
    }
}

/// A shard's verifier, kept in step with the [`KeyStore`]. `!Sync` by use, one per shard.
pub struct ShardVerifier {
    store: Arc<KeyStore>,
    generation: u64,
    verifier: JwtVerifier,
}

impl ShardVerifier {
    pub fn new(store: Arc<KeyStore>, config: VerifierConfig) -> Self {
        let generation = store.generation();
        let verifier = JwtVerifier::new(config, store.current());
        Self {
            store,
            generation,
            verifier,
        }
    }

    /// Pick up a newer key set if one was published.
    pub fn refresh(&mut self) {
        let g = self.store.generation();
        if g != self.generation {
            self.verifier.set_keys(self.store.current());
            self.generation = g;
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn store(&self) -> &Arc<KeyStore> {
        &self.store
    }

    pub fn verify(
        &mut self,
        token: &str,
        meeting_id: &str,
        now: SystemTime,
    ) -> Result<VerifiedClaims, JwtError> {
        self.refresh();
        self.verifier.verify(token, meeting_id, now)
    }
}
