//! The meeting state machine driven by a script of client operations over a few
//! connections (docs/protocol.md rules 4, 6, 9, 10; session recovery with binding tokens).
//!
//! Each step is read from the input (see `Reader`): joins (fresh, with a binding token seen in an
//! earlier JoinResponse, or with a forged one), client messages decoded by prost from
//! fuzzer bytes or built with participant ids the meeting handed out, disconnects, clock
//! steps, timeouts and meeting end. After every step all outbound work is drained and
//! checked: nothing goes to a connection that never joined.
#![no_main]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mc_service::auth::binding::{BindingSecret, MeetingBindingKey};
use mc_service::meeting::{
    ConnKey, EndReason, JoinIdentity, Meeting, MeetingConfig, Outbound, Role,
};
use mc_service::signaling::proto::ClientMessage;
use mc_service::signaling::proto::{client_message as C, pb, server_message as S};
use prost::Message as _;

const MEETING: &str = "meeting-1";
const CONNS: u64 = 6;

/// One scripted step. The byte format is documented in `fuzz/README.md` and produced
/// by `fuzz/make_seeds.py`: an opcode byte (mod 12), then the fields in order; `u16`/
/// `u32` little-endian; a string is a length byte and that many bytes (lossy UTF-8).
#[derive(Debug)]
enum Op {
    Join {
        conn: u8,
        sub: u8,
        host: bool,
        other_meeting: bool,
        binding: Binding,
        correlation: u8,
        name: String,
    },
    /// A ClientMessage as prost decodes it from the wire.
    Raw {
        conn: u8,
        bytes: Vec<u8>,
    },
    HostMute {
        conn: u8,
        target: u8,
        audio: bool,
        video: bool,
        reason: String,
    },
    Mute {
        conn: u8,
        audio: bool,
        video: bool,
    },
    UnmuteRequest {
        conn: u8,
        audio: bool,
        video: bool,
        target: u8,
    },
    UnmuteResponse {
        conn: u8,
        target: u8,
        audio: bool,
        video: bool,
    },
    Publish {
        conn: u8,
        kind: i32,
        layers: u8,
        stream_id: String,
    },
    Layout {
        conn: u8,
        update: bool,
        include_self: bool,
        kind: i32,
        rows: u32,
        columns: u32,
        max_streams: u32,
        pinned: Vec<u8>,
        excluded: Vec<u8>,
    },
    Disconnect {
        conn: u8,
        clean: bool,
    },
    Advance {
        ms: u16,
    },
    Timeout,
    End {
        redirect: bool,
    },
}

#[derive(Debug)]
enum Binding {
    None,
    /// A binding token (with its correlation id) from an earlier JoinResponse.
    Seen(u8),
    Forged(String),
}

/// Reads the script; `None` at the end of the input.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn bytes(&mut self, n: usize) -> Option<Vec<u8>> {
        if self.0.len() < n {
            return None;
        }
        let (a, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(a.to_vec())
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([
            self.u8()?,
            self.u8()?,
            self.u8()?,
            self.u8()?,
        ]))
    }
    fn string(&mut self) -> Option<String> {
        let n = usize::from(self.u8()?);
        Some(String::from_utf8_lossy(&self.bytes(n)?).into_owned())
    }
    fn list(&mut self) -> Option<Vec<u8>> {
        let n = usize::from(self.u8()?);
        self.bytes(n)
    }

    fn op(&mut self) -> Option<Op> {
        Some(match self.u8()? % 12 {
            0 => {
                let conn = self.u8()?;
                let sub = self.u8()?;
                let flags = self.u8()?;
                let correlation = self.u8()?;
                let index = self.u8()?;
                let name = self.string()?;
                let binding = match (flags >> 2) % 3 {
                    0 => Binding::None,
                    1 => Binding::Seen(index),
                    _ => Binding::Forged(self.string()?),
                };
                Op::Join {
                    conn,
                    sub,
                    host: flags & 1 != 0,
                    other_meeting: flags & 2 != 0,
                    binding,
                    correlation,
                    name,
                }
            }
            1 => {
                let conn = self.u8()?;
                let n = usize::from(self.u16()?);
                Op::Raw {
                    conn,
                    bytes: self.bytes(n)?,
                }
            }
            2 => {
                let conn = self.u8()?;
                let target = self.u8()?;
                let f = self.u8()?;
                let reason = self.string()?;
                Op::HostMute {
                    conn,
                    target,
                    audio: f & 1 != 0,
                    video: f & 2 != 0,
                    reason,
                }
            }
            3 => {
                let conn = self.u8()?;
                let f = self.u8()?;
                Op::Mute {
                    conn,
                    audio: f & 1 != 0,
                    video: f & 2 != 0,
                }
            }
            4 => {
                let conn = self.u8()?;
                let f = self.u8()?;
                let target = self.u8()?;
                Op::UnmuteRequest {
                    conn,
                    audio: f & 1 != 0,
                    video: f & 2 != 0,
                    target,
                }
            }
            5 => {
                let conn = self.u8()?;
                let target = self.u8()?;
                let f = self.u8()?;
                Op::UnmuteResponse {
                    conn,
                    target,
                    audio: f & 1 != 0,
                    video: f & 2 != 0,
                }
            }
            6 => {
                let conn = self.u8()?;
                let kind = i32::from(self.u8()? as i8);
                let layers = self.u8()?;
                let stream_id = self.string()?;
                Op::Publish {
                    conn,
                    kind,
                    layers,
                    stream_id,
                }
            }
            7 => {
                let conn = self.u8()?;
                let f = self.u8()?;
                let kind = i32::from(self.u8()? as i8);
                let rows = self.u32()?;
                let columns = self.u32()?;
                let max_streams = self.u32()?;
                let pinned = self.list()?;
                let excluded = self.list()?;
                Op::Layout {
                    conn,
                    update: f & 1 != 0,
                    include_self: f & 2 != 0,
                    kind,
                    rows,
                    columns,
                    max_streams,
                    pinned,
                    excluded,
                }
            }
            8 => {
                let conn = self.u8()?;
                Op::Disconnect {
                    conn,
                    clean: self.u8()? & 1 != 0,
                }
            }
            9 => Op::Advance { ms: self.u16()? },
            10 => Op::Timeout,
            _ => Op::End {
                redirect: self.u8()? & 1 != 0,
            },
        })
    }
}

#[derive(Default)]
struct Seen {
    /// (correlation_id, binding_token) pairs from JoinResponses.
    bindings: Vec<(String, String)>,
    participant_ids: Vec<String>,
    user_ids: Vec<u64>,
}

impl Seen {
    fn pid(&self, i: u8) -> String {
        if self.participant_ids.is_empty() {
            return format!("p-{i}");
        }
        self.participant_ids[usize::from(i) % self.participant_ids.len()].clone()
    }
    fn uid(&self, i: u8) -> u64 {
        if self.user_ids.is_empty() {
            return u64::from(i);
        }
        self.user_ids[usize::from(i) % self.user_ids.len()]
    }
}

/// `MC_FUZZ_DEBUG=1` prints each step and its output (to read a seed or a crash).
fn debug() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("MC_FUZZ_DEBUG").is_some())
}

fn conn(n: u8) -> ConnKey {
    let n = u64::from(n) % CONNS;
    ConnKey {
        shard: (n % 2) as u16,
        conn: n,
    }
}

fn send(m: &mut Meeting, now: Instant, c: ConnKey, msg: C::Message) {
    let _ = m.handle_message(
        now,
        c,
        ClientMessage {
            message: Some(msg),
            ..Default::default()
        },
    );
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader(data);
    let secret = BindingSecret::from_bytes(vec![7; 32]).expect("32-byte secret");
    let t0 = Instant::now();
    let mut now = t0;
    let cfg = MeetingConfig {
        max_participants: 4,
        media_servers: vec!["https://mh.example/".into()],
        ..MeetingConfig::default()
    };
    let mut m = Meeting::new(
        MEETING,
        cfg,
        MeetingBindingKey::derive(&secret, MEETING),
        now,
    );
    let mut seen = Seen::default();
    // Connections the meeting accepted at least once (it may still write to them while
    // they close).
    let mut joined: HashSet<ConnKey> = HashSet::new();
    let mut attempted: HashSet<ConnKey> = HashSet::new();

    for _ in 0..64 {
        let Some(op) = r.op() else { break };
        if debug() {
            eprintln!("step: {op:?}");
        }
        match op {
            Op::Join {
                conn: c,
                sub,
                host,
                other_meeting,
                binding,
                correlation,
                name,
            } => {
                let c = conn(c);
                // A fresh join carries neither; a recovery carries the pair from an
                // earlier JoinResponse (docs/protocol.md "Session recovery", rule 7).
                let (correlation_id, binding_token) = match binding {
                    Binding::None => (String::new(), String::new()),
                    Binding::Seen(i) if !seen.bindings.is_empty() => {
                        seen.bindings[usize::from(i) % seen.bindings.len()].clone()
                    }
                    Binding::Seen(_) => (format!("corr-{correlation}"), String::new()),
                    Binding::Forged(t) => match seen.bindings.first() {
                        Some((c, _)) if correlation % 2 == 0 => (c.clone(), t),
                        _ => (format!("corr-{correlation}"), t),
                    },
                };
                let identity = JoinIdentity {
                    sub: format!("user-{}", sub % 5),
                    role: if host { Role::Host } else { Role::Participant },
                    name: name.clone(),
                };
                let req = pb::JoinRequest {
                    meeting_id: if other_meeting {
                        "meeting-2".into()
                    } else {
                        MEETING.into()
                    },
                    participant_name: name,
                    correlation_id,
                    binding_token,
                    ..Default::default()
                };
                attempted.insert(c);
                if m.handle_join(now, c, identity, req).is_ok() {
                    joined.insert(c);
                }
            }
            Op::Raw { conn: c, bytes } => {
                if let Ok(msg) = ClientMessage::decode(bytes.as_slice()) {
                    let _ = m.handle_message(now, conn(c), msg);
                }
            }
            Op::HostMute {
                conn: c,
                target,
                audio,
                video,
                reason,
            } => send(
                &mut m,
                now,
                conn(c),
                C::Message::HostMuteRequest(pb::HostMuteRequest {
                    participant_id: seen.pid(target),
                    audio_muted: audio,
                    video_muted: video,
                    reason,
                }),
            ),
            Op::Mute {
                conn: c,
                audio,
                video,
            } => send(
                &mut m,
                now,
                conn(c),
                C::Message::MuteRequest(pb::MuteRequest {
                    audio_muted: audio,
                    video_muted: video,
                }),
            ),
            Op::UnmuteRequest {
                conn: c,
                audio,
                video,
                target,
            } => send(
                &mut m,
                now,
                conn(c),
                C::Message::UnmuteRequest(pb::UnmuteRequest {
                    request_audio: audio,
                    request_video: video,
                    participant_id: seen.pid(target),
                }),
            ),
            Op::UnmuteResponse {
                conn: c,
                target,
                audio,
                video,
            } => send(
                &mut m,
                now,
                conn(c),
                C::Message::UnmuteResponse(pb::UnmuteResponse {
                    participant_id: seen.pid(target),
                    audio_approved: audio,
                    video_approved: video,
                }),
            ),
            Op::Publish {
                conn: c,
                kind,
                layers,
                stream_id,
            } => {
                let simulcast_layers = (0..layers % 8)
                    .map(|i| pb::SimulcastLayer {
                        layer_id: format!("l{i}"),
                        width: 320 << (i % 4),
                        height: 180 << (i % 4),
                        max_bitrate: 100_000,
                    })
                    .collect();
                send(
                    &mut m,
                    now,
                    conn(c),
                    C::Message::PublishStream(pb::PublishStream {
                        stream_id,
                        stream_type: kind,
                        metadata: Some(pb::StreamMetadata {
                            codec: "vp8".into(),
                            max_bitrate: 1_000_000,
                            video: Some(pb::VideoMetadata {
                                width: 1280,
                                height: 720,
                                framerate: 30,
                                simulcast_layers,
                            }),
                        }),
                    }),
                )
            }
            Op::Layout {
                conn: c,
                update,
                include_self,
                kind,
                rows,
                columns,
                max_streams,
                pinned,
                excluded,
            } => {
                let config = pb::LayoutConfig {
                    rows,
                    columns,
                    max_streams,
                    pinned_users: pinned.iter().map(|i| seen.uid(*i)).collect(),
                    excluded_users: excluded.iter().map(|i| seen.uid(*i)).collect(),
                    prefer_video_over_audio: rows % 2 == 0,
                    include_self,
                };
                let msg = if update {
                    C::Message::UpdateLayout(pb::UpdateLayout {
                        new_config: Some(config),
                    })
                } else {
                    C::Message::SubscribeToLayout(pb::SubscribeToLayout {
                        layout_type: kind,
                        config: Some(config),
                        stream_ids: Vec::new(),
                    })
                };
                send(&mut m, now, conn(c), msg)
            }
            Op::Disconnect { conn: c, clean } => {
                let _ = m.handle_disconnect(now, conn(c), clean);
            }
            Op::Advance { ms } => now += Duration::from_millis(u64::from(ms) * 10),
            Op::Timeout => m.handle_timeout(now),
            Op::End { redirect } => {
                let reason = if redirect {
                    EndReason::Redirect {
                        endpoint: "https://mc-2.example:4433".into(),
                    }
                } else {
                    EndReason::Drained
                };
                m.end(now, reason);
            }
        }
        if let Some(t) = m.poll_timeout() {
            if t <= now {
                m.handle_timeout(now);
            }
        }
        let mut budget = 10_000usize;
        while let Some(out) = m.poll_outbound() {
            if debug() {
                eprintln!("  out: {out:?}");
            }
            budget = budget
                .checked_sub(1)
                .expect("a step queued unbounded output");
            match out {
                Outbound::Send { to, msg } => {
                    assert!(
                        attempted.contains(&to),
                        "message to a connection that never joined"
                    );
                    match &msg.message {
                        Some(S::Message::JoinResponse(r)) => {
                            seen.participant_ids.push(r.participant_id.clone());
                            seen.user_ids.push(r.user_id);
                            seen.bindings
                                .push((r.correlation_id.clone(), r.binding_token.clone()));
                        }
                        Some(S::Message::ParticipantJoined(j)) => {
                            if let Some(p) = &j.participant {
                                seen.participant_ids.push(p.participant_id.clone());
                            }
                        }
                        _ => {}
                    }
                    assert!(
                        msg.encoded_len() <= 65_536 + 1024,
                        "an outbound message that cannot be framed"
                    );
                }
                Outbound::Close { to, .. } => {
                    assert!(
                        attempted.contains(&to),
                        "close of a connection that never joined"
                    );
                }
            }
        }
        assert!(m.participant_count() <= 4, "roster over its limit");
        assert!(m.connected_count() <= m.participant_count());
        let _ = joined.len();
        let _ = m.stats();
    }
});
