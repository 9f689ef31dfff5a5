//! How meetings reach connections on this shard: the meeting host's environment
//! ([`Delivery`]), and the one function that puts a command into a connection.

use std::sync::Arc;
use std::time::Instant;

use shards::ShardId;

use crate::actors::{ActorSettings, ConnCmd, MeetingCmd, MeetingEnv};
use crate::admission::Admission;
use crate::auth::keystore::ShardVerifier;
use crate::auth::BindingSecret;
use crate::conn::ConnCtx;
use crate::h3::H3Limits;
use crate::meeting::{ConnKey, MeetingConfig};
use crate::metrics::ShardMetrics;
use crate::quic::endpoint::{handle_of, mark, Conns};
use crate::router::{Dest, Router, ShardMsg, LANE_CONNECTION};

use super::FANOUTS_PER_PASS;

/// What connections and meetings need from their shard besides each other.
pub(super) struct Env {
    pub(super) id: ShardId,
    pub(super) settings: ActorSettings,
    pub(super) limits: H3Limits,
    pub(super) enable_echo: bool,
    pub(super) admission: Arc<Admission>,
    pub(super) verifier: ShardVerifier,
    pub(super) metrics: ShardMetrics,
    /// Bytes this shard's sessions hold queued for their clients, all together.
    pub(super) outbound_bytes: usize,
}

impl Env {
    pub(super) fn ctx<'a>(
        &'a mut self,
        now: Instant,
        cmds: &'a mut Vec<MeetingCmd>,
    ) -> ConnCtx<'a> {
        ConnCtx {
            now,
            shard: self.id,
            limits: &self.limits,
            settings: &self.settings,
            enable_echo: self.enable_echo,
            admitting: !self.admission.is_draining(),
            verifier: &mut self.verifier,
            meeting_cmds: cmds,
            metrics: &mut self.metrics,
            outbound_bytes: &mut self.outbound_bytes,
        }
    }
}

/// A command for a connection of this shard: straight into its session.
#[allow(clippy::too_many_arguments)]
pub(super) fn deliver_local(
    now: Instant,
    conns: &mut Conns,
    dirty: &mut Vec<usize>,
    env: &mut Env,
    cmds: &mut Vec<MeetingCmd>,
    fanouts: &mut Vec<Instant>,
    key: ConnKey,
    cmd: ConnCmd,
) {
    let Some((handle, conn)) = conns.by_key(key) else {
        // Gone since: nothing to deliver to.
        return;
    };
    if let ConnCmd::Frame { at, .. } = &cmd {
        if fanouts.last() != Some(at) && fanouts.len() < FANOUTS_PER_PASS {
            fanouts.push(*at);
        }
    }
    let mut ctx = env.ctx(now, cmds);
    conn.deliver(cmd, &mut ctx);
    mark(conn, handle, dirty);
}

/// The meetings' view of the shard while they handle a command.
pub(super) struct Delivery<'a> {
    pub(super) now: Instant,
    pub(super) conns: &'a mut Conns,
    pub(super) dirty: &'a mut Vec<usize>,
    pub(super) router: &'a mut Router,
    pub(super) env: &'a mut Env,
    /// Commands caused by deliveries (a slow consumer's disconnect), run next.
    pub(super) cmds: &'a mut Vec<MeetingCmd>,
    pub(super) fanouts: &'a mut Vec<Instant>,
}

impl MeetingEnv for Delivery<'_> {
    fn admission(&self) -> &Admission {
        &self.env.admission
    }

    fn binding_secret(&self) -> &BindingSecret {
        &self.env.settings.binding_secret
    }

    fn meeting_config(&self) -> MeetingConfig {
        self.env.settings.meeting.clone()
    }

    fn max_frame(&self) -> usize {
        self.env.settings.session.max_frame
    }

    fn deliver(&mut self, to: ConnKey, cmd: ConnCmd) {
        self.deliver_many(to.shard, vec![to.conn], cmd);
    }

    fn deliver_many(&mut self, shard: u16, conns: Vec<u64>, cmd: ConnCmd) {
        match self.router.dest(ShardId(shard)) {
            Dest::Local => {
                for (i, &conn) in conns.iter().enumerate() {
                    self.conns
                        .read_streams_ahead(i, conns[i..].iter().map(|&c| handle_of(c)));
                    if let Some(&next) = conns.get(i + 2) {
                        self.conns.prefetch(handle_of(next));
                    }
                    if let Some(&next) = conns.get(i + 1) {
                        self.conns.prefetch_app(handle_of(next));
                    }
                    deliver_local(
                        self.now,
                        self.conns,
                        self.dirty,
                        self.env,
                        self.cmds,
                        self.fanouts,
                        ConnKey { shard, conn },
                        cmd.clone(),
                    );
                }
            }
            Dest::Remote(to) => {
                let msg = ShardMsg::ToConnections { conns, cmd };
                if let Err(ShardMsg::ToConnections { conns, .. }) =
                    self.router.send(to, LANE_CONNECTION, msg)
                {
                    self.env
                        .metrics
                        .dropped_connection
                        .inc_by(conns.len() as u64);
                }
            }
        }
    }

    fn join_outcome(&mut self, status: &'static str, _received_at: Option<Instant>) {
        self.env.metrics.join(status);
    }

    fn meeting_panicked(&mut self) {
        self.env.metrics.panics_meeting.inc();
    }

    fn meetings_changed(&mut self, delta: i64) {
        self.env.metrics.meetings_active.add(delta);
    }

    fn refusals(&mut self, reason: &'static str, n: u64) {
        self.env.metrics.refusals_by(reason, n);
    }

    fn message_processed(&mut self, received_at: Instant) {
        self.env.metrics.message_processing.observe(
            self.now
                .saturating_duration_since(received_at)
                .as_secs_f64(),
        );
    }
}
