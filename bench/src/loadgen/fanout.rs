//! Fan-out bookkeeping of the `meeting` scenario, free of I/O and clocks (times are
//! microseconds since the run's base instant, passed in).
//!
//! Senders stamp implicitly: the n-th `MuteRequest` of a participant sets the self-mute
//! flags [`mute_flags`]`(n)`, a cycle of three, and the n-th `PublishStream` carries n in
//! `metadata.max_bitrate`. The MC must fan out one `ParticipantMuteUpdate` per mute change
//! to every participant, the sender included (docs/protocol.md rule 3), and one
//! `StreamPublished` to every participant, the publisher included; each receiver gets a
//! sender's updates in order and uncoalesced (rule 14). So the receiver knows which
//! message it got (the n-th update of that sender, or n itself) and looks up when it was
//! sent in the [`Board`]. The sender's own copy is its echo: it tells the sender which of
//! its messages the MC has processed.
//!
//! Live migration (docs/protocol.md rules 17–20) cuts a meeting over to another MC. Two
//! kinds of notifications may then legitimately be lost, and both are accounted exactly:
//! - a message the source had not processed when it redirected its sender is dropped
//!   (rule 20). The sender knows which: every message it sent on the old session whose
//!   echo had not arrived before the `RedirectToMc` (the MC sends the echoes of what it
//!   processed before the redirect, on the same stream). It marks them *dropped* before
//!   it sends anything on the new MC, and receivers skip them;
//! - a message processed by the new MC while a receiver is still on its way there
//!   (rule 19: it is held as disconnected) never reaches that receiver; the state it
//!   changed does, in the recovery JoinResponse (streams) and the mute states that follow
//!   it. A message sent while some member of its meeting has not yet arrived is marked
//!   *exposed*; on arrival a receiver resynchronises every sender from that state
//!   ([`Receiver::resync_publish`], [`Receiver::resync_mute`]) and counts the exposed
//!   messages it skipped as lost at the cut. Skipping one that was not exposed is a
//!   real loss and shows as missing.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use super::explain::{Event, History};

/// Kinds of fanned-out messages that are tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Mute = 0,
    Publish = 1,
}

/// Both kinds, in index order.
pub const KINDS: [Kind; 2] = [Kind::Mute, Kind::Publish];

/// The self-mute flags `(audio, video)` of a participant's n-th `MuteRequest` (n ≥ 1).
/// A cycle of three in which some flag is always set, so that a participant that had any
/// mute processed is among the mute states that follow a recovery JoinResponse, and in
/// which consecutive requests differ, so that a mute state names n modulo 3 and a
/// request dropped at a cut does not make the next one look like the one before it.
pub fn mute_flags(n: u64) -> (bool, bool) {
    match n % 3 {
        1 => (true, false),
        2 => (false, true),
        _ => (true, true),
    }
}

/// Send times kept per sender and kind; older entries are overwritten.
const RING: usize = 1024;

/// Slot flag: the source dropped this message at a cut (never processed).
const DROPPED: u8 = 1;
/// Slot flag: sent while some member of the meeting had not reached the new MC.
const EXPOSED: u8 = 2;

/// One sent message: its sequence number (0 = empty slot), send time, echo time
/// (0 = no echo yet) and flags.
struct Slot {
    seq: AtomicU64,
    sent_us: AtomicU64,
    echo_us: AtomicU64,
    flags: AtomicU8,
}

impl Slot {
    fn new() -> Self {
        Self {
            seq: AtomicU64::new(0),
            sent_us: AtomicU64::new(0),
            echo_us: AtomicU64::new(0),
            flags: AtomicU8::new(0),
        }
    }
}

struct Log {
    slots: Box<[Slot]>,
    sent: AtomicU64,
}

impl Log {
    fn new() -> Self {
        Self {
            slots: (0..RING).map(|_| Slot::new()).collect(),
            sent: AtomicU64::new(0),
        }
    }
}

/// What the board knows of one sent message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub sent_us: u64,
    /// When the sender received its own copy, if it has.
    pub echo_us: Option<u64>,
    pub dropped: bool,
    pub exposed: bool,
}

/// Shared send log of one meeting (atomics only: written by each sender, read by every
/// receiver).
pub struct Board {
    logs: Vec<[Log; 2]>,
    /// Participants that joined (the others never send nor receive).
    joined: Vec<bool>,
    /// Moves completed by each participant (recovery JoinResponse received on the MC it
    /// was redirected to).
    moves: Vec<AtomicU32>,
    /// Deliveries counted by receivers (in order or not), for the drain wait.
    pub delivered: AtomicU64,
    /// Notifications lost at a cut (dropped by the source, or processed while the
    /// receiver was moving), for the drain wait.
    pub lost: AtomicU64,
}

impl Board {
    /// A meeting of `participants`, all of them joined.
    pub fn new(participants: usize) -> Self {
        Self::with_members(vec![true; participants])
    }

    /// A meeting whose participant `i` joined when `joined[i]`.
    pub fn with_members(joined: Vec<bool>) -> Self {
        Self {
            logs: (0..joined.len())
                .map(|_| [Log::new(), Log::new()])
                .collect(),
            moves: (0..joined.len()).map(|_| AtomicU32::new(0)).collect(),
            joined,
            delivered: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        }
    }

    fn log(&self, sender: usize, kind: Kind) -> Option<&Log> {
        self.logs.get(sender).map(|l| &l[kind as usize])
    }

    fn slot(&self, sender: usize, kind: Kind, seq: u64) -> Option<&Slot> {
        let slot = self.log(sender, kind)?.slots.get(seq as usize % RING)?;
        (seq > 0 && slot.seq.load(Ordering::Acquire) == seq).then_some(slot)
    }

    /// Participants that joined.
    pub fn members(&self) -> u64 {
        self.joined.iter().filter(|j| **j).count() as u64
    }

    /// Notifications one message of `kind` owes: a mute reaches every member, the
    /// sender included (rule 3); a publish every other member (the sender's own copy is
    /// its echo, not a delivery).
    pub fn owed(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Mute => self.members(),
            Kind::Publish => self.members().saturating_sub(1),
        }
    }

    /// Records that `sender` sent its `seq`-th (1-based) message of `kind` at `t_us`.
    /// Returns whether it is exposed to a cut: some member has completed fewer moves than
    /// the sender, so may miss it (module docs).
    pub fn handle_sent(&self, sender: usize, kind: Kind, seq: u64, t_us: u64) -> bool {
        let Some(log) = self.log(sender, kind) else {
            return false;
        };
        let exposed = self.cut_open_for(sender);
        if let Some(s) = log.slots.get(seq as usize % RING) {
            s.sent_us.store(t_us, Ordering::Relaxed);
            s.echo_us.store(0, Ordering::Relaxed);
            s.flags
                .store(if exposed { EXPOSED } else { 0 }, Ordering::Relaxed);
            s.seq.store(seq, Ordering::Release);
        }
        log.sent.fetch_max(seq, Ordering::Relaxed);
        exposed
    }

    /// Whether a member of the meeting is still behind `sender` in moves.
    fn cut_open_for(&self, sender: usize) -> bool {
        let mine = self.moves_of(sender);
        mine > 0
            && self
                .moves
                .iter()
                .zip(&self.joined)
                .any(|(m, j)| *j && m.load(Ordering::SeqCst) < mine)
    }

    /// Moves `idx` completed so far.
    pub fn moves_of(&self, idx: usize) -> u32 {
        self.moves.get(idx).map_or(0, |m| m.load(Ordering::SeqCst))
    }

    /// `idx` arrived on the MC it was redirected to; returns its number of moves.
    pub fn handle_moved(&self, idx: usize) -> u32 {
        self.moves
            .get(idx)
            .map_or(0, |m| m.fetch_add(1, Ordering::SeqCst) + 1)
    }

    /// The sender received its own copy of `seq` at `t_us`.
    pub fn handle_echo(&self, sender: usize, kind: Kind, seq: u64, t_us: u64) {
        if let Some(s) = self.slot(sender, kind, seq) {
            s.echo_us.store(t_us.max(1), Ordering::Release);
        }
    }

    /// Marks `seq` dropped by the source; false when it already was (or is unknown).
    pub fn handle_dropped(&self, sender: usize, kind: Kind, seq: u64) -> bool {
        self.slot(sender, kind, seq)
            .is_some_and(|s| s.flags.fetch_or(DROPPED, Ordering::SeqCst) & DROPPED == 0)
    }

    /// What is known of `seq`, if it is still in the ring.
    pub fn sent_info(&self, sender: usize, kind: Kind, seq: u64) -> Option<Sent> {
        let s = self.slot(sender, kind, seq)?;
        let flags = s.flags.load(Ordering::SeqCst);
        let echo = s.echo_us.load(Ordering::Acquire);
        Some(Sent {
            sent_us: s.sent_us.load(Ordering::Relaxed),
            echo_us: (echo != 0).then_some(echo),
            dropped: flags & DROPPED != 0,
            exposed: flags & EXPOSED != 0,
        })
    }

    fn is_dropped(&self, sender: usize, kind: Kind, seq: u64) -> bool {
        self.sent_info(sender, kind, seq).is_some_and(|s| s.dropped)
    }

    /// Send time of `seq`, if still in the ring.
    pub fn sent_at(&self, sender: usize, kind: Kind, seq: u64) -> Option<u64> {
        self.sent_info(sender, kind, seq).map(|s| s.sent_us)
    }

    /// Messages of `kind` sent by `sender`.
    pub fn sent(&self, sender: usize, kind: Kind) -> u64 {
        self.log(sender, kind)
            .map_or(0, |l| l.sent.load(Ordering::Relaxed))
    }

    /// Deliveries the MC owes this meeting ([`Board::owed`] per message sent).
    pub fn expected(&self) -> u64 {
        (0..self.logs.len())
            .filter(|i| self.joined.get(*i).copied().unwrap_or(false))
            .map(|i| {
                self.sent(i, Kind::Mute) * self.owed(Kind::Mute)
                    + self.sent(i, Kind::Publish) * self.owed(Kind::Publish)
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
    /// The sender's own copy of its StreamPublished: its echo, not a delivery.
    Own,
}

/// Whether a sender had any mute processed when a receiver recovered, i.e. whether the
/// recovery's mute states include it (every loadgen MuteRequest sets a flag,
/// [`mute_flags`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuteState {
    Muted,
    Unmuted,
    /// Its first mutes were in flight while the receiver moved.
    Unknown,
}

/// What resynchronising one sender after a move found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resync {
    /// Exposed messages skipped: lost at the cut.
    pub lost: u64,
    /// Messages skipped that were not exposed: they will count as missing.
    pub unexposed: u64,
    /// More than one sequence number fitted the state; the lowest was taken.
    pub ambiguous: bool,
    /// No sequence number fitted the state (the MC's state contradicts the log).
    pub inconsistent: bool,
}

/// One receiver's view: per sender and kind, the next sequence expected and the last one
/// received.
pub struct Receiver {
    me: usize,
    next: Vec<[u64; 2]>,
    last: Vec<[u64; 2]>,
    history: History,
}

impl Receiver {
    pub fn new(me: usize, participants: usize) -> Self {
        Self {
            me,
            next: vec![[1, 1]; participants],
            last: vec![[0, 0]; participants],
            history: History::default(),
        }
    }

    /// What this receiver did lately (for anomaly reports, [`super::explain`]).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Recovered on the new MC: the recovery join was sent and answered at these times.
    pub fn handle_moved(&mut self, join_sent_us: u64, answered_us: u64) {
        self.history.push(Event::Moved {
            join_sent_us,
            answered_us,
        });
    }

    fn latency(board: &Board, sender: usize, kind: Kind, seq: u64, now_us: u64) -> Option<u64> {
        board
            .sent_at(sender, kind, seq)
            .map(|t| now_us.saturating_sub(t))
    }

    /// The last sequence of `kind` received from `sender` (0: none).
    pub fn last(&self, sender: usize, kind: Kind) -> u64 {
        self.last.get(sender).map_or(0, |l| l[kind as usize])
    }

    /// A `ParticipantMuteUpdate` about `sender` with its self-mute flags
    /// `(audio, video)`, received at `now_us`.
    pub fn handle_mute(
        &mut self,
        board: &Board,
        sender: usize,
        flags: (bool, bool),
        now_us: u64,
    ) -> Delivery {
        let me = self.me;
        let (Some(next), Some(last)) = (self.next.get_mut(sender), self.last.get_mut(sender))
        else {
            return Delivery::Unexpected;
        };
        let next = &mut next[Kind::Mute as usize];
        while board.is_dropped(sender, Kind::Mute, *next) {
            *next += 1;
        }
        let seq = *next;
        if seq > board.sent(sender, Kind::Mute) {
            return Delivery::Unexpected;
        }
        *next += 1;
        last[Kind::Mute as usize] = seq;
        if sender == me {
            board.handle_echo(me, Kind::Mute, seq, now_us);
        }
        let lat = Self::latency(board, sender, Kind::Mute, seq, now_us);
        // The n-th request sets mute_flags(n); anything else means reordering.
        let in_order = flags == mute_flags(seq);
        if !in_order {
            self.history.push(Event::Mute {
                sender,
                at_us: now_us,
                flags,
                taken_as: seq,
            });
        }
        if in_order {
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
        if seq == 0 || seq > board.sent(sender, Kind::Publish) {
            return Delivery::Unexpected;
        }
        let me = self.me;
        let (Some(next), Some(last)) = (self.next.get_mut(sender), self.last.get_mut(sender))
        else {
            return Delivery::Unexpected;
        };
        let next = &mut next[Kind::Publish as usize];
        while *next < seq && board.is_dropped(sender, Kind::Publish, *next) {
            *next += 1;
        }
        let in_order = seq == *next;
        if sender != me && !in_order {
            self.history.push(Event::Publish {
                sender,
                at_us: now_us,
                seq,
                expected: *next,
            });
        }
        if seq >= *next {
            *next = seq + 1;
            last[Kind::Publish as usize] = seq;
        }
        if sender == me {
            board.handle_echo(me, Kind::Publish, seq, now_us);
            return Delivery::Own;
        }
        let lat = Self::latency(board, sender, Kind::Publish, seq, now_us);
        if in_order {
            Delivery::InOrder(lat)
        } else {
            Delivery::OutOfOrder(lat)
        }
    }

    /// At the end of a run: per sender and kind, the first message after the last one
    /// this receiver accounted for (delivered, or skipped at a resync) that the source did
    /// not drop, and how many such messages there are. Empty when everything arrived.
    pub fn unaccounted(&self, board: &Board) -> Vec<(usize, Kind, u64, u64)> {
        let mut v = Vec::new();
        for sender in 0..self.next.len() {
            for kind in KINDS {
                let sent = board.sent(sender, kind);
                let from = self.last(sender, kind) + 1;
                let mut owed = (from..=sent).filter(|seq| !board.is_dropped(sender, kind, *seq));
                if let Some(first) = owed.next() {
                    v.push((sender, kind, first, 1 + owed.count() as u64));
                }
            }
        }
        v
    }

    /// At this receiver's own redirect: every message it sent that has not echoed yet
    /// was dropped by the source (module docs). Marks them; returns how many of each kind.
    pub fn handle_own_cut(&mut self, board: &Board) -> [u64; 2] {
        let mut dropped = [0u64; 2];
        for kind in KINDS {
            let from = self.last(self.me, kind) + 1;
            for seq in from..=board.sent(self.me, kind) {
                if board.handle_dropped(self.me, kind, seq) {
                    dropped[kind as usize] += 1;
                }
            }
        }
        self.history.push(Event::OwnCut { dropped });
        dropped
    }

    /// Whether `sender` is in the mute states that follow this receiver's recovery
    /// JoinResponse: it had a mute processed before the recovery. `join_sent_us` and
    /// `answered_us` bound when the new MC processed the recovery.
    pub fn mute_state(
        &self,
        board: &Board,
        sender: usize,
        join_sent_us: u64,
        answered_us: u64,
    ) -> MuteState {
        if self.last(sender, Kind::Mute) > 0 {
            return MuteState::Muted;
        }
        if sender == self.me {
            return MuteState::Unmuted;
        }
        let sent = board.sent(sender, Kind::Mute);
        let mut unknown = false;
        for seq in sent.saturating_sub(RING as u64 - 1).max(1)..=sent {
            let Some(s) = board.sent_info(sender, Kind::Mute, seq) else {
                continue;
            };
            if s.dropped || s.sent_us >= answered_us {
                continue;
            }
            if s.echo_us.is_some_and(|e| e < join_sent_us) {
                return MuteState::Muted;
            }
            unknown = true;
        }
        if unknown {
            MuteState::Unknown
        } else {
            MuteState::Unmuted
        }
    }

    /// Counts the messages in `(from, to]` this receiver skipped.
    fn skipped(board: &Board, sender: usize, kind: Kind, from: u64, to: u64) -> Resync {
        let mut r = Resync::default();
        for seq in from + 1..=to {
            match board.sent_info(sender, kind, seq) {
                Some(s) if s.dropped => {}
                Some(s) if s.exposed => r.lost += 1,
                _ => r.unexposed += 1,
            }
        }
        r
    }

    /// After this receiver's recovery: `sender`'s last publish processed by then was
    /// `published` (the highest sequence among its streams in the JoinResponse).
    pub fn resync_publish(&mut self, board: &Board, sender: usize, published: u64) -> Resync {
        let last = self.last(sender, Kind::Publish);
        if sender == self.me || published <= last {
            return Resync {
                inconsistent: published < last,
                ..Resync::default()
            };
        }
        let r = Self::skipped(board, sender, Kind::Publish, last, published);
        if let (Some(n), Some(l)) = (self.next.get_mut(sender), self.last.get_mut(sender)) {
            n[Kind::Publish as usize] = published + 1;
            l[Kind::Publish as usize] = published;
        }
        self.history.push(Event::Resync {
            sender,
            kind: Kind::Publish,
            from: last,
            to: published,
            result: r,
        });
        r
    }

    /// After this receiver's recovery: `sender`'s self-mute flags were `flags` when the
    /// new MC processed it (between `join_sent_us` and `answered_us`). Its last mute
    /// processed by then is the lowest candidate n with [`mute_flags`]`(n) == flags` at or
    /// after the last one this receiver got, not dropped, sent before `answered_us`, and
    /// not below one whose echo came before `join_sent_us`. The state lists only
    /// participants with a mute flag set, and every loadgen MuteRequest sets one (no
    /// loadgen participant host-mutes): so a sender in it had at least one mute
    /// processed, and "none yet" is no candidate.
    pub fn resync_mute(
        &mut self,
        board: &Board,
        sender: usize,
        flags: (bool, bool),
        join_sent_us: u64,
        answered_us: u64,
    ) -> Resync {
        if sender == self.me {
            return Resync::default();
        }
        let last = self.last(sender, Kind::Mute);
        let mut candidates = if last > 0 { vec![last] } else { Vec::new() };
        let mut floor = last;
        let sent = board.sent(sender, Kind::Mute);
        for seq in last + 1..=sent.min(last + RING as u64) {
            let Some(s) = board.sent_info(sender, Kind::Mute, seq) else {
                break;
            };
            if s.sent_us >= answered_us {
                break; // sent after the recovery was answered: processed after it
            }
            if s.dropped {
                continue;
            }
            if s.echo_us.is_some_and(|e| e < join_sent_us) {
                floor = seq; // processed before the recovery was even sent
            }
            candidates.push(seq);
        }
        let fits = |c: &&u64| **c >= floor && mute_flags(**c) == flags;
        let mut fitting = candidates.iter().filter(fits);
        let Some(&m0) = fitting.next() else {
            let r = Resync {
                inconsistent: true,
                ..Resync::default()
            };
            self.history.push(Event::Resync {
                sender,
                kind: Kind::Mute,
                from: last,
                to: last,
                result: r,
            });
            return r;
        };
        let mut r = Self::skipped(board, sender, Kind::Mute, last, m0);
        r.ambiguous = fitting.next().is_some();
        if let (Some(n), Some(l)) = (self.next.get_mut(sender), self.last.get_mut(sender)) {
            n[Kind::Mute as usize] = m0 + 1;
            l[Kind::Mute as usize] = m0;
        }
        self.history.push(Event::Resync {
            sender,
            kind: Kind::Mute,
            from: last,
            to: m0,
            result: r,
        });
        r
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
            r.handle_mute(&b, 1, mute_flags(1), 1_500),
            Delivery::InOrder(Some(500))
        );
        assert_eq!(
            r.handle_mute(&b, 1, mute_flags(2), 2_250),
            Delivery::InOrder(Some(250))
        );
        assert_eq!(
            r.handle_mute(&b, 1, mute_flags(3), 3_000),
            Delivery::Unexpected,
            "never sent"
        );
        assert_eq!(b.expected(), 6, "mutes reach everyone, sender included");
    }

    #[test]
    fn a_lost_mute_shows_as_out_of_order() {
        let b = Board::new(2);
        for s in 1..=3 {
            b.handle_sent(0, Kind::Mute, s, s * 10);
        }
        let mut r = Receiver::new(1, 2);
        assert!(matches!(
            r.handle_mute(&b, 0, mute_flags(1), 15),
            Delivery::InOrder(_)
        ));
        // update 2 lost: update 3 arrives as the 2nd.
        assert!(matches!(
            r.handle_mute(&b, 0, mute_flags(3), 35),
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
        assert_eq!(b.expected(), 4, "publishes reach the others only");
        let alone = Board::with_members(vec![true, false]);
        alone.handle_sent(0, Kind::Publish, 1, 100);
        assert_eq!(alone.expected(), 0);
    }

    #[test]
    fn unaccounted_names_what_a_receiver_never_got() {
        let b = Board::new(3);
        for seq in 1..=4 {
            b.handle_sent(0, Kind::Mute, seq, seq * 10);
        }
        b.handle_sent(2, Kind::Publish, 1, 10);
        let mut r = Receiver::new(1, 3);
        assert!(matches!(
            r.handle_mute(&b, 0, mute_flags(1), 15),
            Delivery::InOrder(_)
        ));
        assert!(b.handle_dropped(0, Kind::Mute, 2));
        assert_eq!(
            r.unaccounted(&b),
            vec![(0, Kind::Mute, 3, 2), (2, Kind::Publish, 1, 1)],
            "2 was dropped; 3, 4 and the publish never arrived"
        );
        for seq in [3, 4] {
            r.handle_mute(&b, 0, mute_flags(seq), 50);
        }
        r.handle_publish(&b, 2, 1, 50);
        assert!(r.unaccounted(&b).is_empty());
    }

    #[test]
    fn ring_forgets_old_send_times() {
        let b = Board::new(1);
        b.handle_sent(0, Kind::Mute, 1, 5);
        b.handle_sent(0, Kind::Mute, 1 + RING as u64, 9);
        assert_eq!(b.sent_at(0, Kind::Mute, 1), None);
        assert_eq!(b.sent_at(0, Kind::Mute, 1 + RING as u64), Some(9));
    }

    #[test]
    fn a_cut_drops_what_did_not_echo_and_receivers_skip_it() {
        // Sender 0 sends mutes 1..=3; the source processed only 1 before redirecting.
        let b = Board::new(3);
        for seq in 1..=3 {
            assert!(!b.handle_sent(0, Kind::Mute, seq, seq * 10), "no cut open");
        }
        let mut sender = Receiver::new(0, 3);
        let mut early = Receiver::new(1, 3);
        let mut late = Receiver::new(2, 3);
        for r in [&mut sender, &mut early, &mut late] {
            assert!(matches!(
                r.handle_mute(&b, 0, mute_flags(1), 15),
                Delivery::InOrder(_)
            ));
        }
        assert_eq!(b.sent_info(0, Kind::Mute, 1).unwrap().echo_us, Some(15));
        assert_eq!(sender.handle_own_cut(&b), [2, 0], "2 and 3 never echoed");
        assert_eq!(sender.handle_own_cut(&b), [0, 0], "marked once");
        // The sender arrives first; `early` next; then mute 4 is processed; `late` last.
        b.handle_moved(0);
        b.handle_moved(1);
        assert!(b.handle_sent(0, Kind::Mute, 4, 40), "member 2 still moving");
        assert!(matches!(
            sender.handle_mute(&b, 0, mute_flags(4), 45),
            Delivery::InOrder(_)
        ));
        assert!(
            matches!(
                early.handle_mute(&b, 0, mute_flags(4), 45),
                Delivery::InOrder(_)
            ),
            "dropped 2 and 3 skipped"
        );
        // `late` recovered after mute 4 was processed: the state has mute_flags(4).
        assert_eq!(late.mute_state(&b, 0, 50, 60), MuteState::Muted);
        let r = late.resync_mute(&b, 0, mute_flags(4), 50, 60);
        assert_eq!(
            r,
            Resync {
                lost: 1,
                ..Resync::default()
            }
        );
        b.handle_moved(2);
        assert!(!b.handle_sent(0, Kind::Mute, 5, 70), "everyone arrived");
        assert!(matches!(
            late.handle_mute(&b, 0, mute_flags(5), 75),
            Delivery::InOrder(_)
        ));
    }

    #[test]
    fn resync_takes_the_lowest_fitting_sequence_and_flags_ambiguity() {
        let b = Board::new(2);
        for seq in 1..=4 {
            b.handle_sent(0, Kind::Mute, seq, seq * 10);
        }
        let mut r = Receiver::new(1, 2);
        // mute_flags(1): 1 or 4 fit; 1 is taken (nothing lost) and the choice is
        // ambiguous.
        let got = r.resync_mute(&b, 0, mute_flags(1), 45, 50);
        assert_eq!((got.lost, got.ambiguous), (0, true));
        assert_eq!(r.last(0, Kind::Mute), 1);
        // An echo before the recovery was sent raises the floor: 3 was processed.
        let b = Board::new(2);
        for seq in 1..=4 {
            b.handle_sent(0, Kind::Mute, seq, seq * 10);
        }
        b.handle_echo(0, Kind::Mute, 3, 35);
        let mut r = Receiver::new(1, 2);
        let got = r.resync_mute(&b, 0, mute_flags(3), 40, 50);
        assert_eq!((got.lost, got.unexposed, got.ambiguous), (0, 3, false));
        assert_eq!(r.last(0, Kind::Mute), 3);
        // Nothing fits: inconsistent, nothing changes.
        let mut r = Receiver::new(1, 2);
        assert!(r.resync_mute(&b, 0, mute_flags(1), 5, 6).inconsistent);
        assert_eq!(r.last(0, Kind::Mute), 0);
    }

    #[test]
    fn a_sender_in_the_state_had_a_mute_processed() {
        // Sender 0's mute 1 was dropped at its own cut; on the new MC it sent mute 2
        // while receiver 1 was moving. The state after 1's recovery lists 0 with
        // mute_flags(2): that is mute 2, not "no mute yet".
        let b = Board::new(2);
        b.handle_sent(0, Kind::Mute, 1, 10);
        assert!(b.handle_dropped(0, Kind::Mute, 1));
        b.handle_moved(0);
        assert!(b.handle_sent(0, Kind::Mute, 2, 40), "member 1 still moving");
        b.handle_echo(0, Kind::Mute, 2, 55);
        let mut r = Receiver::new(1, 2);
        assert_eq!(r.mute_state(&b, 0, 50, 60), MuteState::Unknown);
        let got = r.resync_mute(&b, 0, mute_flags(2), 50, 60);
        assert_eq!(
            got,
            Resync {
                lost: 1,
                ..Resync::default()
            }
        );
        assert_eq!(r.last(0, Kind::Mute), 2);
        b.handle_moved(1);
        b.handle_sent(0, Kind::Mute, 3, 70);
        assert!(matches!(
            r.handle_mute(&b, 0, mute_flags(3), 75),
            Delivery::InOrder(_)
        ));
        // Listed with mute_flags(1) while only mute 2 can have been processed: a
        // contradiction.
        let mut r = Receiver::new(1, 2);
        assert!(r.resync_mute(&b, 0, mute_flags(1), 50, 60).inconsistent);

        // Mutes 1 and 2 dropped, mute 3 processed while receiver 1 moved: the state has
        // mute_flags(3), which "none yet" would also fit by its number alone.
        let b = Board::new(2);
        for seq in 1..=2 {
            b.handle_sent(0, Kind::Mute, seq, seq * 10);
            assert!(b.handle_dropped(0, Kind::Mute, seq));
        }
        b.handle_moved(0);
        assert!(b.handle_sent(0, Kind::Mute, 3, 40));
        let mut r = Receiver::new(1, 2);
        let got = r.resync_mute(&b, 0, mute_flags(3), 50, 60);
        assert_eq!((got.lost, got.ambiguous), (1, false));
        assert_eq!(r.last(0, Kind::Mute), 3);
    }

    #[test]
    fn a_request_dropped_at_a_cut_does_not_make_two_states_alike() {
        // The receiver got mutes 1 and 2; 3 was dropped at the sender's cut; 4 was
        // processed on the new MC while the receiver moved. The state is mute 4's, and
        // it cannot be read as mute 2's (with audio toggling alone, 2 and 4 looked alike).
        let b = Board::new(2);
        for seq in 1..=3 {
            b.handle_sent(0, Kind::Mute, seq, seq * 10);
        }
        let mut r = Receiver::new(1, 2);
        for seq in 1..=2 {
            assert!(matches!(
                r.handle_mute(&b, 0, mute_flags(seq), seq * 10 + 5),
                Delivery::InOrder(_)
            ));
        }
        assert!(b.handle_dropped(0, Kind::Mute, 3));
        b.handle_moved(0);
        assert!(b.handle_sent(0, Kind::Mute, 4, 40));
        let got = r.resync_mute(&b, 0, mute_flags(4), 50, 60);
        assert_eq!(
            got,
            Resync {
                lost: 1,
                ..Resync::default()
            }
        );
        b.handle_moved(1);
        b.handle_sent(0, Kind::Mute, 5, 70);
        assert!(matches!(
            r.handle_mute(&b, 0, mute_flags(5), 75),
            Delivery::InOrder(_)
        ));
    }

    #[test]
    fn mute_state_before_a_recovery() {
        let b = Board::new(2);
        let r = Receiver::new(1, 2);
        assert_eq!(
            r.mute_state(&b, 0, 10, 20),
            MuteState::Unmuted,
            "nothing sent"
        );
        b.handle_sent(0, Kind::Mute, 1, 30);
        assert_eq!(
            r.mute_state(&b, 0, 10, 20),
            MuteState::Unmuted,
            "sent after"
        );
        assert_eq!(r.mute_state(&b, 0, 40, 50), MuteState::Unknown, "in flight");
        b.handle_echo(0, Kind::Mute, 1, 35);
        assert_eq!(
            r.mute_state(&b, 0, 40, 50),
            MuteState::Muted,
            "echoed before"
        );
        assert_eq!(
            Receiver::new(0, 2).mute_state(&b, 0, 40, 50),
            MuteState::Unmuted
        );
    }

    #[test]
    fn publish_resync_from_the_streams_of_the_join_response() {
        let b = Board::new(3);
        b.handle_sent(0, Kind::Publish, 1, 10);
        let mut r = Receiver::new(2, 3);
        assert!(matches!(
            r.handle_publish(&b, 0, 1, 15),
            Delivery::InOrder(_)
        ));
        b.handle_moved(0);
        for seq in 2..=3 {
            assert!(b.handle_sent(0, Kind::Publish, seq, seq * 10));
        }
        let got = r.resync_publish(&b, 0, 3);
        assert_eq!((got.lost, got.unexposed), (2, 0));
        b.handle_moved(1);
        b.handle_moved(2);
        b.handle_sent(0, Kind::Publish, 4, 40);
        assert!(matches!(
            r.handle_publish(&b, 0, 4, 45),
            Delivery::InOrder(_)
        ));
        assert!(
            r.resync_publish(&b, 0, 2).inconsistent,
            "behind what was seen"
        );
        // The publisher's own copy is its echo.
        let mut me = Receiver::new(0, 3);
        assert_eq!(me.handle_publish(&b, 0, 1, 12), Delivery::Own);
        assert_eq!(b.sent_info(0, Kind::Publish, 1).unwrap().echo_us, Some(12));
        assert_eq!(me.last(0, Kind::Publish), 1);
    }
}
