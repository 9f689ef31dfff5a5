//! The control plane's end of the mesh: one task takes everything the shards send (and
//! notices new signals, which ring the same doorbell); the drain's inputs wait in
//! [`Inputs`] for its driver; the import route waits for its shard's answer in
//! [`Replies`].
//!
//! Every wait here is bounded by a deadline, and every queue by what is outstanding: a
//! shard answers a request at most once, and the drain keeps a bounded number of
//! requests in flight (one list, one target request, `max_concurrent_handovers`).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::future::or;
use shards::ShardId;

use super::driver::Input;
use super::Control;
use crate::migration::ImportAnswer;
use crate::router::{ShardMsg, LANE_CONTROL};

/// Messages taken from the mesh before the inbox task yields to the others.
const INBOX_BATCH: usize = 256;
/// The longest the inbox parks: a signal whose doorbell ring lands between the count
/// check and the park (a ring reaches only a parked executor) waits at most this long.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// The drain's inputs in arrival order, and a wake-up for its driver.
#[derive(Default)]
pub(super) struct Inputs {
    queue: RefCell<VecDeque<Input>>,
    woken: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Inputs {
    pub(super) fn push(&self, input: Input) {
        self.queue.borrow_mut().push_back(input);
        self.wake();
    }

    /// Make the driver look again (parked messages to flush, the mesh stopping).
    pub(super) fn wake(&self) {
        self.woken.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    pub(super) fn pop(&self) -> Option<Input> {
        self.queue.borrow_mut().pop_front()
    }

    /// Until an input arrives, [`Inputs::wake`] is called, or `deadline` passes.
    pub(super) async fn wait(&self, deadline: Option<Instant>) {
        let ready = poll_fn(|cx| {
            if self.woken.take() || !self.queue.borrow().is_empty() {
                return Poll::Ready(());
            }
            self.waker.set(Some(cx.waker().clone()));
            Poll::Pending
        });
        match deadline {
            Some(at) => {
                let sleep = glommio::timer::sleep(at.saturating_duration_since(Instant::now()));
                or(ready, sleep).await
            }
            None => ready.await,
        }
    }
}

/// The import route's waits for a shard's answer, by request id.
#[derive(Default)]
pub(super) struct Replies {
    next: Cell<u64>,
    slots: RefCell<HashMap<u64, Slot>>,
}

#[derive(Default)]
struct Slot {
    answer: Option<ImportAnswer>,
    waker: Option<Waker>,
}

impl Replies {
    /// A new id to wait on.
    pub(super) fn open(&self) -> u64 {
        let id = self.next.get() + 1;
        self.next.set(id);
        self.slots.borrow_mut().insert(id, Slot::default());
        id
    }

    /// The shard's answer to `id`; false when nobody waits for it any more.
    pub(super) fn deliver(&self, id: u64, answer: ImportAnswer) -> bool {
        let mut slots = self.slots.borrow_mut();
        let Some(slot) = slots.get_mut(&id) else {
            return false;
        };
        slot.answer = Some(answer);
        if let Some(w) = slot.waker.take() {
            w.wake();
        }
        true
    }

    /// The answer to `id`, or `None` at `until`. The id is closed either way.
    pub(super) async fn wait(&self, id: u64, until: Instant) -> Option<ImportAnswer> {
        let answer = poll_fn(|cx| {
            let mut slots = self.slots.borrow_mut();
            match slots.get_mut(&id) {
                None => Poll::Ready(None),
                Some(slot) => match slot.answer.take() {
                    Some(a) => Poll::Ready(Some(a)),
                    None => {
                        slot.waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                },
            }
        });
        let timeout = async {
            glommio::timer::sleep(until.saturating_duration_since(Instant::now())).await;
            None
        };
        let got = or(answer, timeout).await;
        self.slots.borrow_mut().remove(&id);
        got
    }
}

/// Take everything the shards send until the mesh stops; turn new signals into drain
/// inputs. The only task that parks on the control plane's doorbell.
pub(super) async fn inbox(control: Rc<Control>) {
    let mut signals_seen = 0;
    loop {
        for _ in 0..INBOX_BATCH {
            let Some((from, _lane, msg)) = control.mesh.try_recv() else {
                break;
            };
            dispatch(&control, from, msg);
        }
        let signals = control.shutdown.signals();
        while signals_seen < signals {
            signals_seen += 1;
            control.inputs.push(Input::Signal);
        }
        if control.mesh.is_stopping() {
            control.inputs.wake();
            return;
        }
        if control.mesh.pending() > 0 {
            glommio::yield_if_needed().await;
        } else {
            or(control.mesh.wait(), glommio::timer::sleep(SIGNAL_POLL)).await;
        }
    }
}

fn dispatch(control: &Control, from: ShardId, msg: ShardMsg) {
    match msg {
        ShardMsg::Pong { seq, load } => {
            control
                .health
                .borrow_mut()
                .record_seq(from, seq, Instant::now(), load);
        }
        ShardMsg::LiveMeetings { id, report } => {
            control.inputs.push(Input::Live { from, id, report })
        }
        ShardMsg::Exported { id, snapshot } => {
            control.inputs.push(Input::Exported { id, snapshot })
        }
        ShardMsg::Imported { id, answer } => {
            let accepted = answer == ImportAnswer::Accepted;
            if !control.replies.deliver(id, answer) && accepted {
                // Answered 503 already; the source keeps the meeting. Nobody is
                // redirected here, so it ends when its participants' grace does.
                tracing::warn!(%from, "an import was accepted after its answer timed out");
            }
        }
        other => tracing::warn!(%from, msg = ?other, "unexpected message on the control plane"),
    }
}

/// Ping every shard on the control lane; returns the ping's sequence number. A full
/// lane means that shard is not keeping up: its health goes stale and readiness says so.
pub(super) fn ping_all(control: &Control) -> u64 {
    let seq = control.ping_seq.get() + 1;
    control.ping_seq.set(seq);
    for s in 0..control.shards {
        let _ = control
            .mesh
            .try_send(ShardId(s as u16), LANE_CONTROL, ShardMsg::Ping { seq });
    }
    seq
}
