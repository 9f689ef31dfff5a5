//! Fan-out bookkeeping of the `meeting` scenario, free of I/O and clocks (times are
//! microseconds since the run's base instant, passed in).
//!
//! Senders stamp implicitly: the n-th `MuteRequest` of a participant toggles its audio
//! (muted when n is odd) and the n-th `PublishStream` carries n in
//! `metadata.max_bitrate`. The MC must fan out one `ParticipantMuteUpdate` per mute change
//! to every participant, the sender included (docs/protocol.md rule 3), and one
//! `StreamPublished` to the others; each receiver gets a sender's updates in order and
//! uncoalesced (rule 14). So the receiver knows which message it got (the n-th update of
//! that sender, or n itself) and looks up when it was sent in the [`Board`].

use std::sync::atomic::{AtomicU64, Ordering};

/// Kinds of fanned-out messages that are tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Mute = 0,
    Publish = 1,
}

/// Send times kept per sender and kind; older entries are overwritten.
const RING: usize = 1024;

struct Log {
    /// (seq, send time µs) ring; seq 0 = empty.
    slots: Box<[(AtomicU64, AtomicU64)]>,
    sent: AtomicU64,
}

impl Log {
    fn new() -> Self {
        Self {
            slots: (0..RING)
                .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
                .collect(),
            sent: AtomicU64::new(0),
        }
    }
}

/// Shared send log of one meeting (atomics only: written by each sender, read by every
/// receiver).
pub struct Board {
    logs: Vec<[Log; 2]>,
    /// Deliveries counted by receivers (in order or not), for the drain wait.
    pub delivered: AtomicU64,
}

impl Board {
    pub fn new(participants: usize) -> Self {
        Self {
            logs: (0..participants)
                .map(|_| [Log::new(), Log::new()])
                .collect(),
            delivered: AtomicU64::new(0),
        }
    }

    /// Records that `sender` sent its `seq`-th (1-based) message of `kind` at `t_us`.
    pub fn handle_sent(&self, sender: usize, kind: Kind, seq: u64, t_us: u64) {
        let Some(log) = self.logs.get(sender).map(|l| &l[kind as usize]) else {
            return;
        };
        if let Some((s, t)) = log.slots.get(seq as usize % RING) {
            t.store(t_us, Ordering::Relaxed);
            s.store(seq, Ordering::Release);
        }
        log.sent.fetch_max(seq, Ordering::Relaxed);
    }

    /// Send time of `seq`, if still in the ring.
    pub fn sent_at(&self, sender: usize, kind: Kind, seq: u64) -> Option<u64> {
        let log = self.logs.get(sender).map(|l| &l[kind as usize])?;
        let (s, t) = log.slots.get(seq as usize % RING)?;
        (s.load(Ordering::Acquire) == seq).then(|| t.load(Ordering::Relaxed))
    }

    /// Messages of `kind` sent by `sender`.
    pub fn sent(&self, sender: usize, kind: Kind) -> u64 {
        self.logs
            .get(sender)
            .map_or(0, |l| l[kind as usize].sent.load(Ordering::Relaxed))
    }

    /// Deliveries the MC owes this meeting: mutes reach all `joined`, publishes the others.
    pub fn expected(&self, joined: &[bool]) -> u64 {
        let n = joined.iter().filter(|j| **j).count() as u64;
        (0..self.logs.len())
            .map(|i| {
                self.sent(i, Kind::Mute) * n + self.sent(i, Kind::Publish) * n.saturating_sub(1)
            })
            .sum()
    }
}

/// What one received notification meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The next expected message of that sender; latency in µs when known.
    InOrder(Option<u64>),
    /// Arrived, but not the next one expected (a gap or a late one).
    OutOfOrder(Option<u64>),
    /// Never sent: counted, not failed.
    Unexpected,
    /// The sender's own copy of its StreamPublished (the MC may send it to the publisher
    /// too): ignored.
    Own,
}

/// One receiver's view: the next sequence expected from every sender, per kind.
pub struct Receiver {
    me: usize,
    next: Vec<[u64; 2]>,
}

impl Receiver {
    pub fn new(me: usize, participants: usize) -> Self {
        Self {
            me,
            next: vec![[1, 1]; participants],
        }
    }

    fn latency(board: &Board, sender: usize, kind: Kind, seq: u64, now_us: u64) -> Option<u64> {
        board
            .sent_at(sender, kind, seq)
            .map(|t| now_us.saturating_sub(t))
    }

    /// A `ParticipantMuteUpdate` about `sender` with its audio flag, received at `now_us`.
    pub fn handle_mute(
        &mut self,
        board: &Board,
        sender: usize,
        audio_muted: bool,
        now_us: u64,
    ) -> Delivery {
        let Some(next) = self
            .next
            .get_mut(sender)
            .map(|n| &mut n[Kind::Mute as usize])
        else {
            return Delivery::Unexpected;
        };
        let seq = *next;
        if seq > board.sent(sender, Kind::Mute) {
            return Delivery::Unexpected;
        }
        *next += 1;
        let lat = Self::latency(board, sender, Kind::Mute, seq, now_us);
        // The n-th toggle sets audio_muted = (n odd); anything else means reordering.
        if audio_muted == (seq % 2 == 1) {
            Delivery::InOrder(lat)
        } else {
            Delivery::OutOfOrder(lat)
        }
    }

    /// A `StreamPublished` from `sender` carrying sequence `seq`, received at `now_us`.
    pub fn handle_publish(
        &mut self,
        board: &Board,
        sender: usize,
        seq: u64,
        now_us: u64,
    ) -> Delivery {
        if sender == self.me {
            return Delivery::Own;
        }
        if seq == 0 || seq > board.sent(sender, Kind::Publish) {
            return Delivery::Unexpected;
        }
        let Some(next) = self
            .next
            .get_mut(sender)
            .map(|n| &mut n[Kind::Publish as usize])
        else {
            return Delivery::Unexpected;
        };
        let lat = Self::latency(board, sender, Kind::Publish, seq, now_us);
        if seq == *next {
            *next += 1;
            Delivery::InOrder(lat)
        } else {
            if seq > *next {
                *next = seq + 1;
            }
            Delivery::OutOfOrder(lat)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mute_updates_pair_by_ordinal_and_measure_latency() {
        let b = Board::new(3);
        b.handle_sent(1, Kind::Mute, 1, 1_000);
        b.handle_sent(1, Kind::Mute, 2, 2_000);
        let mut r = Receiver::new(0, 3);
        assert_eq!(
            r.handle_mute(&b, 1, true, 1_500),
            Delivery::InOrder(Some(500))
        );
        assert_eq!(
            r.handle_mute(&b, 1, false, 2_250),
            Delivery::InOrder(Some(250))
        );
        assert_eq!(
            r.handle_mute(&b, 1, true, 3_000),
            Delivery::Unexpected,
            "never sent"
        );
        assert_eq!(
            b.expected(&[true, true, true]),
            6,
            "mutes reach everyone, sender included"
        );
    }

    #[test]
    fn a_lost_mute_shows_as_out_of_order() {
        let b = Board::new(2);
        for s in 1..=3 {
            b.handle_sent(0, Kind::Mute, s, s * 10);
        }
        let mut r = Receiver::new(1, 2);
        assert!(matches!(
            r.handle_mute(&b, 0, true, 15),
            Delivery::InOrder(_)
        ));
        // update 2 (audio unmuted) lost: update 3 (muted) arrives as the 2nd.
        assert!(matches!(
            r.handle_mute(&b, 0, true, 35),
            Delivery::OutOfOrder(_)
        ));
    }

    #[test]
    fn publish_gaps_and_late_ones_and_own_echo() {
        let b = Board::new(2);
        for s in 1..=4 {
            b.handle_sent(0, Kind::Publish, s, s * 100);
        }
        let mut r = Receiver::new(1, 2);
        assert_eq!(r.handle_publish(&b, 0, 1, 150), Delivery::InOrder(Some(50)));
        assert_eq!(
            r.handle_publish(&b, 0, 3, 350),
            Delivery::OutOfOrder(Some(50))
        );
        assert_eq!(
            r.handle_publish(&b, 0, 2, 400),
            Delivery::OutOfOrder(Some(200))
        );
        assert_eq!(r.handle_publish(&b, 0, 4, 450), Delivery::InOrder(Some(50)));
        assert_eq!(r.handle_publish(&b, 0, 9, 450), Delivery::Unexpected);
        let mut me = Receiver::new(0, 2);
        assert_eq!(me.handle_publish(&b, 0, 1, 150), Delivery::Own);
        assert_eq!(
            b.expected(&[true, true]),
            4,
            "publishes reach the others only"
        );
        assert_eq!(b.expected(&[true, false]), 0);
    }

    #[test]
    fn ring_forgets_old_send_times() {
        let b = Board::new(1);
        b.handle_sent(0, Kind::Mute, 1, 5);
        b.handle_sent(0, Kind::Mute, 1 + RING as u64, 9);
        assert_eq!(b.sent_at(0, Kind::Mute, 1), None);
        assert_eq!(b.sent_at(0, Kind::Mute, 1 + RING as u64), Some(9));
    }
}
