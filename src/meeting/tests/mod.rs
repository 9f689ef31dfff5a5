//! Meeting tests with a fake clock: a base `Instant` plus offsets.

mod budget;
mod handover;
mod layout;
mod mute;
mod roster;
mod wire;

use std::time::{Duration, Instant};

use super::*;
use crate::auth::binding::{BindingSecret, MeetingBindingKey};
use crate::signaling::proto::{client_message, pb, server_message::Message as S, ClientMessage};

pub(super) const MEETING: &str = "meeting-1";

pub(super) fn key_for(meeting: &str) -> MeetingBindingKey {
    MeetingBindingKey::derive(&BindingSecret::from_bytes(vec![42u8; 32]).unwrap(), meeting)
}

pub(super) fn c(n: u64) -> ConnKey {
    ConnKey {
        shard: (n % 2) as u16,
        conn: n,
    }
}

/// A meeting plus a fake clock.
pub(super) struct H {
    pub m: Meeting,
    pub t0: Instant,
    pub now: Instant,
}

impl H {
    pub fn new() -> Self {
        Self::with(MeetingConfig::default())
    }

    pub fn with(cfg: MeetingConfig) -> Self {
        let t0 = Instant::now();
        Self {
            m: Meeting::new_at(MEETING, cfg, key_for(MEETING), t0, 1_700_000_000_000),
            t0,
            now: t0,
        }
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    pub fn drain(&mut self) -> Vec<Outbound> {
        std::iter::from_fn(|| self.m.poll_outbound()).collect()
    }

    /// Joins `conn` as `sub`; returns its JoinResponse and discards other output.
    pub fn join(&mut self, conn: ConnKey, sub: &str, role: Role) -> pb::JoinResponse {
        let out = self.join_raw(conn, sub, role, "", "");
        assert_eq!(out.0, JoinOutcome::Joined);
        join_response(&out.1, conn).expect("join response")
    }

    pub fn join_raw(
        &mut self,
        conn: ConnKey,
        sub: &str,
        role: Role,
        correlation_id: &str,
        binding_token: &str,
    ) -> (JoinOutcome, Vec<Outbound>) {
        let outcome = self
            .m
            .handle_join(
                self.now,
                conn,
                ident(sub, role),
                join_req(correlation_id, binding_token),
            )
            .unwrap();
        (outcome, self.drain())
    }

    pub fn msg(&mut self, conn: ConnKey, m: client_message::Message) -> Vec<Outbound> {
        self.m
            .handle_message(self.now, conn, ClientMessage::of(m))
            .unwrap();
        self.drain()
    }
}

pub(super) fn ident(sub: &str, role: Role) -> JoinIdentity {
    JoinIdentity {
        sub: sub.into(),
        role,
        name: format!("name-{sub}"),
    }
}

pub(super) fn join_req(correlation_id: &str, binding_token: &str) -> pb::JoinRequest {
    pb::JoinRequest {
        meeting_id: MEETING.into(),
        join_token: "jwt".into(),
        participant_name: String::new(),
        capabilities: None,
        correlation_id: correlation_id.into(),
        binding_token: binding_token.into(),
    }
}

/// Messages queued for `to`, in order.
pub(super) fn to(out: &[Outbound], to: ConnKey) -> Vec<S> {
    out.iter()
        .filter_map(|o| match o {
            Outbound::Send { to: t, msg } if *t == to => msg.message.clone(),
            _ => None,
        })
        .collect()
}

pub(super) fn closes(out: &[Outbound]) -> Vec<(ConnKey, CloseCode)> {
    out.iter()
        .filter_map(|o| match o {
            Outbound::Close { to, code, .. } => Some((*to, *code)),
            _ => None,
        })
        .collect()
}

pub(super) fn join_response(out: &[Outbound], conn: ConnKey) -> Option<pb::JoinResponse> {
    to(out, conn).into_iter().find_map(|m| match m {
        S::JoinResponse(r) => Some(r),
        _ => None,
    })
}

pub(super) fn error_of(msgs: &[S]) -> Option<pb::ErrorCode> {
    msgs.iter().find_map(|m| match m {
        S::Error(e) => pb::ErrorCode::try_from(e.code).ok(),
        _ => None,
    })
}

/// The budgets' refusal texts as docs/protocol.md spells them, written out here so that
/// a change to the server's constants fails the tests.
pub(super) const MEETING_SPENT: &str = "meeting message rate limit exceeded";
pub(super) const SHARE_SPENT: &str = "user's share of the meeting message rate exceeded";
pub(super) const JOINS_SPENT: &str = "join rate limit exceeded";

/// How many of `msgs` are an `ErrorMessage` saying `what`.
pub(super) fn errors_saying(msgs: &[S], what: &str) -> usize {
    msgs.iter()
        .filter(|m| matches!(m, S::Error(e) if e.message == what))
        .count()
}

pub(super) fn publish(id: &str, t: pb::StreamType) -> client_message::Message {
    client_message::Message::PublishStream(pb::PublishStream {
        stream_id: id.into(),
        stream_type: t as i32,
        metadata: Some(pb::StreamMetadata {
            codec: "VP8".into(),
            max_bitrate: 1_000_000,
            video: None,
        }),
    })
}

#[test]
fn wrong_meeting_is_a_caller_error_not_a_panic() {
    let mut h = H::new();
    let mut req = join_req("", "");
    req.meeting_id = "other".into();
    let e =
        h.m.handle_join(h.now, c(1), ident("u", Role::Host), req)
            .unwrap_err();
    assert!(matches!(e, MeetingError::WrongMeeting { .. }));
    assert!(h.drain().is_empty());
    assert!(h.m.is_empty());
    // A second join on the same connection and messages from strangers are refused too.
    h.join(c(1), "u", Role::Host);
    assert_eq!(
        h.m.handle_join(h.now, c(1), ident("u", Role::Host), join_req("", "")),
        Err(MeetingError::AlreadyJoined(c(1)))
    );
    assert_eq!(
        h.m.handle_message(h.now, c(9), ClientMessage::default()),
        Err(MeetingError::UnknownConnection(c(9)))
    );
    assert_eq!(
        h.m.handle_disconnect(h.now, c(9), true),
        Err(MeetingError::UnknownConnection(c(9)))
    );
}

#[test]
fn fan_out_shares_one_message() {
    let mut h = H::new();
    for n in 1..=3 {
        h.join(c(n), &format!("u{n}"), Role::Participant);
    }
    let out = h.msg(
        c(1),
        client_message::Message::MuteRequest(pb::MuteRequest {
            audio_muted: true,
            video_muted: false,
        }),
    );
    let arcs: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Outbound::Send { msg, .. } => Some(msg),
            _ => None,
        })
        .collect();
    assert_eq!(arcs.len(), 3);
    assert!(arcs.windows(2).all(|w| Arc::ptr_eq(w[0], w[1])));
}
