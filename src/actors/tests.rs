//! The meeting host alone, with a fake environment: admission, encode-once fan-out,
//! meeting removal, and panic isolation.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use super::meetings::MeetingHost;
use super::{ConnCmd, MeetingCmd, MeetingEnv};
use crate::admission::Admission;
use crate::auth::BindingSecret;
use crate::meeting::{CloseCode, ConnKey, JoinIdentity, MeetingConfig, Role};
use crate::router::meeting_shard;
use crate::signaling::codec::FrameDecoder;
use crate::signaling::proto::{client_message, pb, server_message, ClientMessage, ServerMessage};

struct FakeEnv {
    admission: Admission,
    secret: BindingSecret,
    delivered: RefCell<Vec<(ConnKey, ConnCmd)>>,
    joins: RefCell<Vec<&'static str>>,
    panics: RefCell<u32>,
    meetings: RefCell<i64>,
}

impl FakeEnv {
    fn new(capacity: u32) -> Self {
        Self {
            admission: Admission::new(capacity),
            secret: BindingSecret::from_bytes(vec![9u8; 32]).unwrap(),
            delivered: RefCell::new(Vec::new()),
            joins: RefCell::new(Vec::new()),
            panics: RefCell::new(0),
            meetings: RefCell::new(0),
        }
    }

    /// Messages delivered to `conn`, decoded, plus whether it was closed (and how).
    fn inbox(&self, conn: ConnKey) -> (Vec<ServerMessage>, Option<CloseCode>) {
        let mut msgs = Vec::new();
        let mut closed = None;
        for (to, cmd) in self.delivered.borrow().iter() {
            if *to != conn {
                continue;
            }
            match cmd {
                ConnCmd::Frame { frame, .. } => {
                    let mut d = FrameDecoder::new(1 << 16);
                    d.push(frame);
                    msgs.push(d.next_message::<ServerMessage>().unwrap().unwrap());
                }
                ConnCmd::Close(code) => closed = Some(*code),
            }
        }
        (msgs, closed)
    }
}

impl MeetingEnv for FakeEnv {
    fn admission(&self) -> &Admission {
        &self.admission
    }
    fn binding_secret(&self) -> &BindingSecret {
        &self.secret
    }
    fn meeting_config(&self) -> MeetingConfig {
        MeetingConfig::default()
    }
    fn max_frame(&self) -> usize {
        1 << 16
    }
    fn deliver(&mut self, to: ConnKey, cmd: ConnCmd) {
        self.delivered.borrow_mut().push((to, cmd));
    }
    fn deliver_many(&mut self, shard: u16, conns: Vec<u64>, cmd: ConnCmd) {
        for conn in conns {
            self.deliver(ConnKey { shard, conn }, cmd.clone());
        }
    }
    fn join_outcome(&mut self, status: &'static str, _: Option<Instant>) {
        self.joins.borrow_mut().push(status);
    }
    fn meeting_panicked(&mut self) {
        *self.panics.borrow_mut() += 1;
    }
    fn meetings_changed(&mut self, delta: i64) {
        *self.meetings.borrow_mut() += delta;
    }
    fn message_processed(&mut self, _: Instant) {}
    fn refusals(&mut self, _: &'static str, _: u64) {}
}

fn conn(n: u64) -> ConnKey {
    ConnKey { shard: 0, conn: n }
}

fn join(meeting: &str, c: ConnKey, sub: &str, now: Instant) -> MeetingCmd {
    MeetingCmd::Join {
        conn: c,
        identity: JoinIdentity {
            sub: sub.into(),
            role: Role::Participant,
            name: sub.into(),
        },
        request: Box::new(pb::JoinRequest {
            meeting_id: meeting.into(),
            participant_name: sub.into(),
            ..Default::default()
        }),
        received_at: now,
    }
}

fn mute(meeting: &str, c: ConnKey, now: Instant) -> MeetingCmd {
    MeetingCmd::Message {
        conn: c,
        meeting_id: meeting.into(),
        msg: ClientMessage::of(client_message::Message::MuteRequest(pb::MuteRequest {
            audio_muted: true,
            video_muted: false,
        })),
        received_at: now,
    }
}

fn has(msgs: &[ServerMessage], f: impl Fn(&server_message::Message) -> bool) -> bool {
    msgs.iter().any(|m| m.message.as_ref().is_some_and(&f))
}

#[test]
fn joins_create_meetings_within_capacity_and_release_them_when_empty() {
    let mut env = FakeEnv::new(1);
    let mut host = MeetingHost::default();
    let t = Instant::now();
    host.handle(&mut env, t, join("m1", conn(1), "alice", t));
    host.handle(&mut env, t, join("m2", conn(2), "bob", t));
    assert_eq!(*env.joins.borrow(), vec!["success", "capacity"]);
    let (msgs, closed) = env.inbox(conn(2));
    assert!(has(
        &msgs,
        |m| matches!(m, server_message::Message::Error(e)
        if e.code == pb::ErrorCode::CapacityExceeded as i32)
    ));
    assert_eq!(closed, Some(CloseCode::Capacity));

    host.handle(
        &mut env,
        t,
        MeetingCmd::Disconnect {
            conn: conn(1),
            meeting_id: "m1".into(),
            clean: true,
        },
    );
    assert!(host.is_empty());
    assert_eq!(env.admission.meetings(), 0);
    assert_eq!(*env.meetings.borrow(), 0);
    host.handle(&mut env, t, join("m2", conn(3), "bob", t));
    assert_eq!(env.joins.borrow().last(), Some(&"success"));
}

#[test]
fn draining_refuses_new_meetings_but_not_existing_ones() {
    let mut env = FakeEnv::new(10);
    let mut host = MeetingHost::default();
    let t = Instant::now();
    host.handle(&mut env, t, join("live", conn(1), "alice", t));
    env.admission.set(crate::admission::Intake::ShuttingDown);
    host.handle(&mut env, t, join("new", conn(2), "bob", t));
    host.handle(&mut env, t, join("live", conn(3), "carol", t));
    assert_eq!(*env.joins.borrow(), vec!["success", "draining", "success"]);
    assert_eq!(env.inbox(conn(2)).1, Some(CloseCode::Draining));
}

#[test]
fn a_fan_out_is_encoded_once_and_shared() {
    let mut env = FakeEnv::new(10);
    let mut host = MeetingHost::default();
    let t = Instant::now();
    for (i, who) in ["a", "b", "c"].iter().enumerate() {
        host.handle(&mut env, t, join("m", conn(i as u64 + 1), who, t));
    }
    env.delivered.borrow_mut().clear();
    host.handle(&mut env, t, mute("m", conn(1), t));
    let frames: Vec<_> = env
        .delivered
        .borrow()
        .iter()
        .filter_map(|(_, c)| match c {
            ConnCmd::Frame { frame, .. } => Some(frame.as_ptr()),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), 3, "one mute update to each participant");
    assert!(
        frames.windows(2).all(|w| w[0] == w[1]),
        "same buffer for all"
    );
}

#[test]
fn a_panicking_meeting_ends_alone_and_its_participants_are_told() {
    let mut env = FakeEnv::new(10);
    let mut host = MeetingHost::default();
    let t = Instant::now();
    host.handle(&mut env, t, join("bad", conn(1), "a", t));
    host.handle(&mut env, t, join("bad", conn(2), "b", t));
    host.handle(&mut env, t, join("good", conn(3), "c", t));
    host.handle(&mut env, t, join("good", conn(4), "d", t));
    host.panic_in = Some("bad".into());
    let silenced = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    host.handle(&mut env, t, mute("bad", conn(1), t));
    std::panic::set_hook(silenced);

    assert_eq!(*env.panics.borrow(), 1);
    assert_eq!(host.len(), 1, "only the bad meeting is gone");
    assert_eq!(env.admission.meetings(), 1);
    for c in [conn(1), conn(2)] {
        let (msgs, closed) = env.inbox(c);
        assert!(has(
            &msgs,
            |m| matches!(m, server_message::Message::Error(e)
            if e.code == pb::ErrorCode::InternalError as i32)
        ));
        assert!(closed.is_some());
    }
    // The good meeting still works.
    env.delivered.borrow_mut().clear();
    host.handle(&mut env, t, mute("good", conn(3), t));
    let (msgs, _) = env.inbox(conn(4));
    assert!(has(&msgs, |m| matches!(
        m,
        server_message::Message::ParticipantMuteUpdate(_)
    )));
}

#[test]
fn grace_expiry_runs_from_the_host_timer() {
    let mut env = FakeEnv::new(10);
    let mut host = MeetingHost::default();
    let t = Instant::now();
    host.handle(&mut env, t, join("m", conn(1), "a", t));
    host.handle(&mut env, t, join("m", conn(2), "b", t));
    host.handle(
        &mut env,
        t,
        MeetingCmd::Disconnect {
            conn: conn(2),
            meeting_id: "m".into(),
            clean: false,
        },
    );
    let deadline = host.poll_timeout().expect("grace deadline");
    assert_eq!(deadline, t + Duration::from_secs(30));
    env.delivered.borrow_mut().clear();
    host.handle_timeout(&mut env, deadline);
    let (msgs, _) = env.inbox(conn(1));
    assert!(has(
        &msgs,
        |m| matches!(m, server_message::Message::ParticipantLeft(l)
        if l.reason == pb::LeaveReason::Timeout as i32)
    ));
}

#[test]
fn end_all_sends_meeting_ended_and_closes() {
    let mut env = FakeEnv::new(10);
    let mut host = MeetingHost::default();
    let t = Instant::now();
    host.handle(&mut env, t, join("m", conn(1), "a", t));
    host.end_all(&mut env, t, None);
    let (msgs, closed) = env.inbox(conn(1));
    assert!(has(
        &msgs,
        |m| matches!(m, server_message::Message::ParticipantLeft(l)
        if l.reason == pb::LeaveReason::MeetingEnded as i32)
    ));
    assert_eq!(closed, Some(CloseCode::Draining));
    assert!(host.is_empty());
}

#[test]
fn meeting_shards_are_stable_and_spread() {
    assert_eq!(meeting_shard("abc", 1).0, 0);
    assert_eq!(meeting_shard("abc", 4), meeting_shard("abc", 4));
    let mut counts = [0u32; 4];
    for i in 0..4000 {
        counts[meeting_shard(&format!("meeting-{i}"), 4).index()] += 1;
    }
    assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
}

/// The host's index of grace deadlines says what asking every meeting would, through
/// joins, unclean and clean disconnects, expiries, hand-overs begun and aborted, and a
/// meeting that panics.
#[test]
fn the_deadline_index_matches_every_meetings_own_deadline() {
    let mut env = FakeEnv::new(100);
    let mut host = MeetingHost::default();
    let t0 = Instant::now();
    let mut now = t0;
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x9e37_79b9);
    let mut next = |n: u64| rng.random_range(0..n);
    let meetings = ["m0", "m1", "m2", "m3"];
    let mut with_deadline = 0;
    for step in 0..4_000u64 {
        let m = meetings[next(4) as usize];
        let c = conn(next(24));
        match next(10) {
            0..=3 => host.handle(&mut env, now, join(m, c, &format!("u{}", c.conn), now)),
            4..=5 => host.handle(
                &mut env,
                now,
                MeetingCmd::Disconnect {
                    conn: c,
                    meeting_id: m.into(),
                    clean: next(3) == 0,
                },
            ),
            6 => now += Duration::from_secs(next(20)),
            7 => {
                if host.poll_timeout().is_some_and(|d| d <= now) {
                    host.handle_timeout(&mut env, now);
                }
            }
            8 => match host.begin_handover(&mut env, now, m) {
                Some(_) if next(2) == 0 => host.abort_handover(&mut env, now, m),
                _ => {}
            },
            _ if step % 97 == 0 => {
                host.panic_in = Some(m.to_string());
                host.handle(&mut env, now, mute(m, c, now));
                host.panic_in = None;
            }
            _ => host.handle(&mut env, now, mute(m, c, now)),
        }
        assert_eq!(
            host.poll_timeout(),
            host.deadline_by_asking_each_meeting(),
            "step {step}"
        );
        with_deadline += usize::from(host.poll_timeout().is_some());
    }
    assert!(
        with_deadline > 1_000,
        "{with_deadline} steps had a deadline"
    );
    assert!(
        *env.panics.borrow() > 0,
        "the run should have ended a meeting by a panic"
    );
}

/// A message from a session its meeting no longer knows (its close was lost to a full
/// mesh) closes that session with 0x103 rather than being dropped, whether its meeting
/// is gone from the shard or does not hold the connection; its other messages in
/// flight close it no more.
#[test]
fn a_message_from_a_session_the_meeting_does_not_know_closes_it() {
    let mut env = FakeEnv::new(10);
    let mut host = MeetingHost::default();
    let t = Instant::now();
    host.handle(&mut env, t, join("m", conn(1), "a", t));
    env.delivered.borrow_mut().clear();

    host.handle(&mut env, t, mute("gone", conn(2), t));
    assert_eq!(env.inbox(conn(2)).1, Some(CloseCode::Draining));

    host.handle(&mut env, t, mute("m", conn(3), t));
    assert_eq!(env.inbox(conn(3)).1, Some(CloseCode::Draining));
    host.handle(&mut env, t, mute("m", conn(3), t));
    host.handle(&mut env, t, mute("gone", conn(2), t));
    let closes = env
        .delivered
        .borrow()
        .iter()
        .filter(|(_, cmd)| matches!(cmd, ConnCmd::Close(_)))
        .count();
    assert_eq!(closes, 2, "one close per session");

    // A member's message closes nothing.
    host.handle(&mut env, t, mute("m", conn(1), t));
    assert_eq!(env.inbox(conn(1)).1, None);
}
