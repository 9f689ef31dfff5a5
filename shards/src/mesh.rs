//! The bounded mesh between executors: one crossbeam queue per (from, to, lane).
//!
//! Lanes separate kinds of traffic between the same two executors (say, control
//! messages, messages for meeting actors, messages for connection actors) so that each
//! has its own capacity and depth, while all lanes into an executor share its doorbell.
//!
//! - `Mesh::build(peers, lane_capacities)` makes every queue up front and hands out one
//!   [`MeshSeed`] per executor (`Send`), plus a [`MeshMonitor`] for the control plane
//!   (queue depths for `mc_actor_mailbox_depth`, and the stop switch).
//! - On its executor a seed becomes a [`MeshHandle`] (`!Send`): `try_send` to a peer,
//!   `try_recv` from all peers (round-robin so one chatty peer cannot starve the rest),
//!   and `wait()` to park until a peer enqueues or the mesh is stopped.
//!
//! A full queue returns the message in [`Full`]; nothing here blocks or grows.
//!
//! Queues count messages. Where messages differ widely in size, a sender may also give
//! each a weight ([`MeshHandle::try_send_weighted`]): the weights in flight from one
//! executor to another are kept in one shared counter per ordered pair, with a ceiling
//! the sender names, and the receiver gives a message's weight back
//! ([`MeshHandle::release`]) once it has taken it.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::doorbell::{Doorbell, DoorbellReceiver};
use crate::parker::Parker;
use crate::ShardId;

/// The queue to `to` is full (or `to` has gone); the message is handed back.
#[derive(Debug)]
pub struct Full<M> {
    pub to: ShardId,
    pub msg: M,
}

/// Queues for one (from, to) pair, indexed by lane. Empty for from == to.
type Lanes<T> = Vec<T>;

/// Which queue between two executors a message takes.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct Lane(pub u8);

struct Shared {
    doorbells: Vec<Doorbell>,
    stop: AtomicBool,
    /// Weight in flight per ordered pair, at `from * peers + to`.
    in_flight: Vec<AtomicUsize>,
}

/// Builds the mesh.
pub struct Mesh;

impl Mesh {
    /// Queues for `peers` executors: for every ordered pair, one queue per lane, lane `i`
    /// holding at most `lanes[i]` messages.
    pub fn build<M: Send>(
        peers: usize,
        lanes: &[usize],
    ) -> std::io::Result<(Vec<MeshSeed<M>>, MeshMonitor<M>)> {
        assert!(
            peers > 0 && peers <= u16::MAX as usize,
            "peer count out of range"
        );
        assert!(
            !lanes.is_empty() && lanes.len() <= u8::MAX as usize,
            "lane count out of range"
        );
        assert!(
            lanes.iter().all(|&c| c > 0),
            "a zero-capacity queue is a rendezvous, not a mailbox"
        );
        let doorbells = (0..peers)
            .map(|_| Doorbell::new())
            .collect::<std::io::Result<Vec<_>>>()?;
        let shared = Arc::new(Shared {
            doorbells,
            stop: AtomicBool::new(false),
            in_flight: (0..peers * peers).map(|_| AtomicUsize::new(0)).collect(),
        });
        // senders[from][to][lane], receivers[to][from][lane]
        let mut senders: Vec<Vec<Lanes<Sender<M>>>> = (0..peers).map(|_| Vec::new()).collect();
        let mut receivers: Vec<Vec<Lanes<Receiver<M>>>> = (0..peers)
            .map(|_| (0..peers).map(|_| Vec::new()).collect())
            .collect();
        for (from, row) in senders.iter_mut().enumerate() {
            for (to, inbox) in receivers.iter_mut().enumerate() {
                if from == to {
                    row.push(Vec::new());
                    continue;
                }
                let (txs, rxs): (Vec<_>, Vec<_>) = lanes
                    .iter()
                    .map(|&cap| crossbeam_channel::bounded(cap))
                    .unzip();
                row.push(txs);
                inbox[from] = rxs;
            }
        }
        let monitor = MeshMonitor {
            senders: Arc::new(senders.clone()),
            shared: shared.clone(),
            capacities: lanes.to_vec(),
        };
        let seeds = senders
            .into_iter()
            .zip(receivers)
            .enumerate()
            .map(|(id, (outbox, inbox))| MeshSeed {
                id: ShardId(id as u16),
                outbox,
                inbox,
                shared: shared.clone(),
            })
            .collect();
        Ok((seeds, monitor))
    }
}

/// One executor's share of the mesh, before it reaches its thread.
pub struct MeshSeed<M> {
    id: ShardId,
    outbox: Vec<Lanes<Sender<M>>>,
    inbox: Vec<Lanes<Receiver<M>>>,
    shared: Arc<Shared>,
}

impl<M: Send> MeshSeed<M> {
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// Build the executor-local handle. Call on the executor that will own it.
    pub fn into_handle(self) -> MeshHandle<M> {
        let doorbell = self.shared.doorbells[self.id.index()]
            .take_receiver()
            .expect("a mesh seed is turned into a handle once");
        MeshHandle {
            id: self.id,
            outbox: self.outbox,
            inbox: self.inbox,
            shared: self.shared,
            doorbell,
            next: Cell::new(0),
            _not_send: PhantomData,
        }
    }
}

/// Executor-local end of the mesh. `!Send`: it stays on the executor that built it.
pub struct MeshHandle<M> {
    id: ShardId,
    outbox: Vec<Lanes<Sender<M>>>,
    inbox: Vec<Lanes<Receiver<M>>>,
    shared: Arc<Shared>,
    doorbell: DoorbellReceiver,
    next: Cell<usize>,
    _not_send: PhantomData<*const ()>,
}

impl<M: Send> MeshHandle<M> {
    pub fn id(&self) -> ShardId {
        self.id
    }

    /// How many executors share the mesh (this one included).
    pub fn peers(&self) -> usize {
        self.outbox.len()
    }

    /// Enqueue on `lane` for `to` and wake it if parked. Hands the message back when the
    /// queue is full, or `to` is this executor (call local code directly instead), or
    /// there is no such lane.
    pub fn try_send(&self, to: ShardId, lane: Lane, msg: M) -> Result<(), Full<M>> {
        let Some(tx) = self
            .outbox
            .get(to.index())
            .and_then(|lanes| lanes.get(lane.0 as usize))
        else {
            return Err(Full { to, msg });
        };
        match tx.try_send(msg) {
            Ok(()) => {
                self.shared.doorbells[to.index()].ring();
                Ok(())
            }
            Err(TrySendError::Full(msg)) | Err(TrySendError::Disconnected(msg)) => {
                // Wake the peer anyway: it may be parked on a full queue it has not seen.
                self.shared.doorbells[to.index()].ring();
                Err(Full { to, msg })
            }
        }
    }

    /// [`Self::try_send`] for a message of `weight`, which must also fit under `max`
    /// together with the weight already in flight to `to`; otherwise the message is
    /// handed back as from a full queue. A message heavier than `max` on its own goes
    /// when nothing else is in flight, so that it is never held back for ever. The
    /// receiver gives the weight back with [`Self::release`] when it takes the message.
    /// A weight of 0 is a plain send.
    pub fn try_send_weighted(
        &self,
        to: ShardId,
        lane: Lane,
        msg: M,
        weight: usize,
        max: usize,
    ) -> Result<(), Full<M>> {
        if weight == 0 {
            return self.try_send(to, lane, msg);
        }
        let Some(counter) = self.pair(self.id, to) else {
            return Err(Full { to, msg });
        };
        let before = counter.fetch_add(weight, Ordering::AcqRel);
        if before > 0 && before + weight > max {
            counter.fetch_sub(weight, Ordering::AcqRel);
            return Err(Full { to, msg });
        }
        self.try_send(to, lane, msg).inspect_err(|_| {
            counter.fetch_sub(weight, Ordering::AcqRel);
        })
    }

    /// Give back the weight of a message taken from `from` ([`Self::try_send_weighted`]).
    pub fn release(&self, from: ShardId, weight: usize) {
        if weight == 0 {
            return;
        }
        if let Some(counter) = self.pair(from, self.id) {
            counter.fetch_sub(weight, Ordering::AcqRel);
        }
    }

    /// Weight in flight from this executor to `to`.
    pub fn in_flight(&self, to: ShardId) -> usize {
        self.pair(self.id, to)
            .map_or(0, |c| c.load(Ordering::Acquire))
    }

    fn pair(&self, from: ShardId, to: ShardId) -> Option<&AtomicUsize> {
        let peers = self.peers();
        if from.index() >= peers || to.index() >= peers {
            return None;
        }
        self.shared.in_flight.get(from.index() * peers + to.index())
    }

    /// Take one message from any peer and lane, round-robin across peers so one chatty
    /// peer cannot starve the others; lanes are tried in order (lane 0 first).
    pub fn try_recv(&self) -> Option<(ShardId, Lane, M)> {
        let n = self.inbox.len();
        let start = self.next.get();
        for i in 0..n {
            let from = (start + i) % n;
            for (lane, rx) in self.inbox[from].iter().enumerate() {
                if let Ok(msg) = rx.try_recv() {
                    self.next.set((from + 1) % n);
                    return Some((ShardId(from as u16), Lane(lane as u8), msg));
                }
            }
        }
        None
    }

    /// Messages waiting for this executor, across all peers and lanes.
    pub fn pending(&self) -> usize {
        self.inbox.iter().flatten().map(Receiver::len).sum()
    }

    /// Park until a peer enqueues something or the mesh is stopped. Returns at once if
    /// messages are already waiting. Spurious returns are possible; callers loop.
    pub async fn wait(&self) {
        let bell = &self.shared.doorbells[self.id.index()];
        bell.set_parked(true);
        if self.pending() > 0 || self.is_stopping() {
            bell.set_parked(false);
            return;
        }
        self.doorbell.wait().await;
        bell.set_parked(false);
    }

    /// A [`Parker`] for this executor: its doorbell, plus `fds` watched for input. For
    /// an executor whose one task is a loop that owns everything it waits for; see
    /// [`Self::park_on`].
    pub fn parker(&self, fds: &[std::os::fd::RawFd]) -> std::io::Result<Parker> {
        Parker::new(self.doorbell.raw_fd(), fds)
    }

    /// Park the calling thread in one system call until a peer enqueues something, one
    /// of `parker`'s descriptors becomes readable (only when `watch`), or `timeout`
    /// passes, whichever comes first; spurious returns are possible. Returns at once if
    /// messages are already waiting or the mesh is stopping.
    pub fn park_on(&self, parker: &Parker, watch: bool, timeout: std::time::Duration) {
        let bell = &self.shared.doorbells[self.id.index()];
        bell.set_parked(true);
        if self.pending() > 0 || self.is_stopping() {
            bell.set_parked(false);
            return;
        }
        let rang = parker.wait(watch, timeout);
        bell.set_parked(false);
        if rang {
            self.doorbell.drain();
        }
    }

    /// True once [`MeshMonitor::stop`] was called.
    pub fn is_stopping(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }
}

/// Depth of one queue, for `mc_actor_mailbox_depth`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct QueueDepth {
    pub from: ShardId,
    pub to: ShardId,
    pub lane: Lane,
    pub len: usize,
    pub capacity: usize,
}

/// Read-only view of the mesh for the control plane, plus the stop switch. `Send + Sync`.
pub struct MeshMonitor<M> {
    senders: Arc<Vec<Vec<Lanes<Sender<M>>>>>,
    shared: Arc<Shared>,
    capacities: Vec<usize>,
}

impl<M> Clone for MeshMonitor<M> {
    fn clone(&self) -> Self {
        Self {
            senders: self.senders.clone(),
            shared: self.shared.clone(),
            capacities: self.capacities.clone(),
        }
    }
}

impl<M> MeshMonitor<M> {
    /// Current depth of every queue (reads each queue's length; no locks).
    pub fn depths(&self) -> impl Iterator<Item = QueueDepth> + '_ {
        self.senders
            .iter()
            .enumerate()
            .flat_map(move |(from, row)| {
                row.iter().enumerate().flat_map(move |(to, lanes)| {
                    lanes.iter().enumerate().map(move |(lane, tx)| QueueDepth {
                        from: ShardId(from as u16),
                        to: ShardId(to as u16),
                        lane: Lane(lane as u8),
                        len: tx.len(),
                        capacity: self.capacities[lane],
                    })
                })
            })
    }

    /// Total messages waiting for `to` on `lane`, from every peer.
    pub fn inbox_depth(&self, to: ShardId, lane: Lane) -> usize {
        self.depths()
            .filter(|d| d.to == to && d.lane == lane)
            .map(|d| d.len)
            .sum()
    }

    /// Wake `who` if it is parked, without sending anything: for threads outside the
    /// mesh (a signal handler thread) that changed state `who` should look at.
    pub fn wake(&self, who: ShardId) {
        if let Some(bell) = self.shared.doorbells.get(who.index()) {
            bell.set_parked(true);
            bell.ring();
        }
    }

    /// Ask every executor to stop: sets the flag and wakes everyone parked.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for bell in &self.shared.doorbells {
            bell.set_parked(true);
            bell.ring();
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    /// Wake-ups that reached a parked executor, per executor (observability and tests).
    pub fn rings(&self, of: ShardId) -> u64 {
        self.shared.doorbells[of.index()].rings()
    }
}
