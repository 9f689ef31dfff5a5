//! Anomaly reports of the `meeting` scenario. Each receiver keeps a short history of the
//! irregular things it did ([`History`]): notifications it read out of order,
//! resynchronisations after a move, its own redirects and moves. In-order deliveries are
//! not kept (they are most of a run, on the generator's per-message path); the last
//! message of each kind a receiver accounted for says where they got to. When something
//! does not add up (a notification out of order, an inconsistent resynchronisation after
//! a move, a message it never got) [`describe`] prints that history and those last
//! messages next to what the [`Board`] recorded of the sender's messages, so a failed run
//! says which message went where (`--explain`).

use std::collections::VecDeque;
use std::fmt::Write as _;

use super::fanout::{Board, Kind, Receiver, Resync, KINDS};

/// Events kept per receiver (all senders together).
const HISTORY: usize = 48;
/// Messages of each kind shown from the sender's log, the latest ones.
const SHOWN: u64 = 16;

/// One thing a receiver did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A `ParticipantMuteUpdate` about `sender` with self-mute flags `(audio, video)`,
    /// read as its `taken_as`-th mute, whose flags differ: out of order.
    Mute {
        sender: usize,
        at_us: u64,
        flags: (bool, bool),
        taken_as: u64,
    },
    /// A `StreamPublished` of `sender` carrying `seq` when `expected` was next: out of
    /// order.
    Publish {
        sender: usize,
        at_us: u64,
        seq: u64,
        expected: u64,
    },
    /// `sender`'s `kind` resynchronised from `from` to `to` after a move.
    Resync {
        sender: usize,
        kind: Kind,
        from: u64,
        to: u64,
        result: Resync,
    },
    /// This receiver's own redirect: how many of its mutes and publishes it marked
    /// dropped.
    OwnCut { dropped: [u64; 2] },
    /// Recovered on the new MC: the recovery join was sent and answered at these times.
    Moved { join_sent_us: u64, answered_us: u64 },
}

impl Event {
    fn concerns(&self, who: usize) -> bool {
        match *self {
            Event::Mute { sender, .. }
            | Event::Publish { sender, .. }
            | Event::Resync { sender, .. } => sender == who,
            Event::OwnCut { .. } | Event::Moved { .. } => true,
        }
    }
}

/// The latest [`HISTORY`] events of one receiver.
#[derive(Debug, Default)]
pub struct History {
    events: VecDeque<Event>,
}

impl History {
    pub fn push(&mut self, e: Event) {
        if self.events.len() == HISTORY {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    pub fn iter(&self) -> impl Iterator<Item = &Event> {
        self.events.iter()
    }
}

fn secs(us: u64) -> f64 {
    us as f64 / 1e6
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Mute => "mute",
        Kind::Publish => "publish",
    }
}

/// A report of `what` seen by receiver `me` of meeting `mid` about `sender`: the
/// receiver's events that concern `sender` (and its own moves), then the latest messages
/// `sender` sent of each kind as the board has them.
pub fn describe(
    mid: &str,
    me: usize,
    sender: usize,
    what: &str,
    rx: &Receiver,
    board: &Board,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "mc-loadgen: anomaly in meeting {mid}: participant {me} about participant {sender}: {what}"
    );
    let _ = writeln!(
        s,
        "  participant {me} accounted for participant {sender}'s messages up to mute #{}, \
         publish #{}; its latest irregular events (times since the run's start):",
        rx.last(sender, Kind::Mute),
        rx.last(sender, Kind::Publish)
    );
    for e in rx.history().iter().filter(|e| e.concerns(sender)) {
        let line = match *e {
            Event::Mute {
                at_us,
                flags: (audio, video),
                taken_as,
                ..
            } => format!(
                "{:9.3} s  mute update audio={audio} video={video}, read as mute #{taken_as} (out of order)",
                secs(at_us),
            ),
            Event::Publish {
                at_us,
                seq,
                expected,
                ..
            } => format!(
                "{:9.3} s  stream published #{seq} (expected #{expected}: out of order)",
                secs(at_us)
            ),
            Event::Resync {
                kind,
                from,
                to,
                result,
                ..
            } => format!(
                "            resync {}: #{from} -> #{to} (lost {}, unexposed {}{}{})",
                kind_name(kind),
                result.lost,
                result.unexposed,
                if result.ambiguous { ", ambiguous" } else { "" },
                if result.inconsistent {
                    ", inconsistent"
                } else {
                    ""
                },
            ),
            Event::OwnCut { dropped } => format!(
                "            own redirect: marked {} mutes and {} publishes dropped",
                dropped[0], dropped[1]
            ),
            Event::Moved {
                join_sent_us,
                answered_us,
            } => format!(
                "{:9.3} s  recovered on the new MC (join sent {:.3} s)",
                secs(answered_us),
                secs(join_sent_us)
            ),
        };
        let _ = writeln!(s, "    {line}");
    }
    for kind in KINDS {
        let sent = board.sent(sender, kind);
        if sent == 0 {
            continue;
        }
        let _ = writeln!(
            s,
            "  participant {sender}'s latest {} messages ({sent} sent; moves completed: {}):",
            kind_name(kind),
            board.moves_of(sender)
        );
        for seq in sent.saturating_sub(SHOWN - 1).max(1)..=sent {
            let Some(info) = board.sent_info(sender, kind, seq) else {
                continue;
            };
            let echo = info.echo_us.map_or_else(
                || "no echo".to_string(),
                |e| format!("echo {:.3} s", secs(e)),
            );
            let _ = writeln!(
                s,
                "    #{seq:<4} sent {:9.3} s  {echo}{}{}",
                secs(info.sent_us),
                if info.dropped { ", dropped" } else { "" },
                if info.exposed { ", exposed" } else { "" },
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::fanout::{mute_flags, Receiver};

    #[test]
    fn history_is_bounded_and_a_report_names_the_messages() {
        let mut h = History::default();
        for i in 0..(HISTORY as u64 + 5) {
            h.push(Event::Publish {
                sender: 1,
                at_us: i,
                seq: i,
                expected: i,
            });
        }
        assert_eq!(h.iter().count(), HISTORY);
        assert!(matches!(
            h.iter().next(),
            Some(Event::Publish { seq: 5, .. })
        ));

        let b = Board::new(2);
        b.handle_sent(1, Kind::Mute, 1, 1_000_000);
        b.handle_sent(1, Kind::Mute, 2, 2_000_000);
        let mut r = Receiver::new(0, 2);
        r.handle_mute(&b, 1, mute_flags(2), 2_500_000);
        let text = describe("m-1", 0, 1, "out of order", &r, &b);
        assert!(text.contains("participant 0 about participant 1: out of order"));
        assert!(text.contains("read as mute #1 (out of order)"), "{text}");
        assert!(text.contains("#2    sent     2.000 s  no echo"), "{text}");
        assert!(
            !text.contains("publish messages"),
            "nothing published: {text}"
        );
    }
}
