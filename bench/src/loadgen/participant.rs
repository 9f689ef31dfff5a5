//! One participant of the `meeting` scenario: connect and join
//! ([`join`], docs/protocol.md "Transport and framing": the first frame is a JoinRequest,
//! answered by JoinResponse or ErrorMessage), then a writer sending the message mix and a
//! reader checking every notification against the [`Board`] and the roster.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tokio::sync::mpsc;
use wtransport::{RecvStream, SendStream};

use super::client::EndpointPool;
use super::echo::short;
use super::fanout::{Board, Delivery, Kind, Receiver};
use super::meeting::{pick, Op};
use super::proto::{
    self, client_message::Message as C, server_message::Message as S, ClientMessage, FrameReader,
};
use super::stats::{Counter, Lat, Recorder, Stats};
use super::token::Minter;
use super::Stop;

pub(crate) type Roster = HashMap<String, usize>;

pub(crate) struct Shared {
    pub(crate) stats: Arc<Stats>,
    /// End of the traffic phase: writers stop.
    pub(crate) stop: Arc<Stop>,
    /// End of the drain phase: readers stop and sessions close.
    pub(crate) end: Arc<Stop>,
    pub(crate) base: Instant,
    pub(crate) mix: Vec<(Op, u32)>,
    pub(crate) period: Duration,
}

pub(crate) struct Joined {
    pub(crate) idx: usize,
    pub(crate) pid: String,
    pub(crate) conn: wtransport::Connection,
    pub(crate) send: SendStream,
    pub(crate) recv: RecvStream,
    pub(crate) frames: FrameReader,
    /// Participants this one knows of: JoinResponse.existing_participants, then
    /// ParticipantJoined (docs/protocol.md "Semantics the MC owns": Roster).
    pub(crate) known: HashSet<String>,
}

/// Connects, opens the signaling stream and joins (docs/protocol.md "Transport and framing":
/// the client's first frame is a JoinRequest, answered by JoinResponse or ErrorMessage).
pub(crate) async fn join(
    pool: &EndpointPool,
    url: &str,
    minter: &Minter,
    mid: &str,
    idx: usize,
    stats: &Stats,
) -> Option<Joined> {
    let fail = |code: String| {
        stats.add(Counter::JoinsFailed, 1);
        stats.error(code);
        None
    };
    let t0 = Instant::now();
    let conn = match tokio::time::timeout(Duration::from_secs(10), pool.get().connect(url)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return fail(format!("connect:{}", short(&e.to_string()))),
        Err(_) => return fail("connect:timeout".into()),
    };
    let t1 = Instant::now();
    stats.live_sessions.fetch_add(1, Ordering::Relaxed);
    let role = if idx == 0 { "host" } else { "participant" };
    let token = match minter.mint(&format!("{mid}-u{idx}"), mid, role) {
        Ok(t) => t,
        Err(e) => return fail(format!("token:{e}")),
    };
    let r = async {
        let (mut send, mut recv) = conn.open_bi().await?.await?;
        let req = ClientMessage {
            message: Some(C::JoinRequest(proto::JoinRequest {
                meeting_id: mid.to_string(),
                join_token: token,
                participant_name: format!("loadgen {idx}"),
                capabilities: Some(proto::ParticipantCapabilities {
                    video_codecs: vec!["VP8".into()],
                    audio_codecs: vec!["opus".into()],
                    supports_simulcast: false,
                    max_video_streams: 9,
                }),
                ..Default::default()
            })),
            trace_parent: String::new(),
        };
        let t_join = Instant::now();
        send.write_all(&proto::encode(&req)).await?;
        let mut frames = FrameReader::default();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            while let Some(m) = frames.poll_frame()? {
                match m.message {
                    Some(S::JoinResponse(r)) => {
                        let known = r
                            .existing_participants
                            .into_iter()
                            .map(|p| p.participant_id)
                            .collect();
                        return Ok((send, recv, frames, r.participant_id, t_join, known));
                    }
                    Some(S::Error(e)) => bail!("server:{}", proto::error_code_name(e.code)),
                    _ => {}
                }
            }
            let n = recv
                .read(&mut buf)
                .await?
                .context("stream finished before JoinResponse")?;
            frames.handle_bytes(buf.get(..n).unwrap_or_default());
        }
    };
    match tokio::time::timeout(Duration::from_secs(10), r).await {
        Ok(Ok((send, recv, frames, pid, t_join, known))) => {
            let mut rec = Recorder::new(t0);
            rec.record(Lat::Connect, t1 - t0);
            rec.record(Lat::Join, t_join.elapsed());
            rec.add(Counter::JoinsOk, 1);
            rec.add(Counter::SessionsOk, 1);
            rec.flush(stats, Instant::now());
            Some(Joined {
                idx,
                pid,
                conn,
                send,
                recv,
                frames,
                known,
            })
        }
        Ok(Err(e)) => {
            stats.live_sessions.fetch_sub(1, Ordering::Relaxed);
            let msg = e.to_string();
            fail(if msg.starts_with("server:") {
                msg
            } else {
                format!("join:{}", short(&msg))
            })
        }
        Err(_) => {
            stats.live_sessions.fetch_sub(1, Ordering::Relaxed);
            fail("join:timeout".into())
        }
    }
}

/// One participant after its join: a reader (notifications, errors, layout replies) and a
/// writer (the message mix at the per-participant rate).
pub(crate) async fn participant(
    j: Joined,
    p: usize,
    board: Arc<Board>,
    roster: Arc<Roster>,
    sh: Arc<Shared>,
) {
    let Joined {
        idx,
        pid,
        conn,
        send,
        recv,
        frames,
        known,
    } = j;
    let (layout_tx, layout_rx) = mpsc::channel::<Instant>(64);
    let reader = tokio::spawn(read_loop(
        idx,
        p,
        recv,
        frames,
        board.clone(),
        roster,
        sh.clone(),
        layout_rx,
        (pid, known),
    ));
    write_loop(idx, send, &board, &sh, layout_tx).await;
    let _ = reader.await;
    conn.close(0u32.into(), b"");
    sh.stats.live_sessions.fetch_sub(1, Ordering::Relaxed);
}

async fn write_loop(
    idx: usize,
    mut send: SendStream,
    board: &Board,
    sh: &Shared,
    layout_tx: mpsc::Sender<Instant>,
) {
    let mut rec = Recorder::new(Instant::now());
    let (mut mute_seq, mut pub_seq) = (0u64, 0u64);
    let mut subscribed = false;
    let offset = sh.period.mul_f64(rand::random::<f64>());
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, sh.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = sh.stop.wait() => break,
        }
        if sh.stop.is_set() {
            break;
        }
        let now = Instant::now();
        let t_us = now.saturating_duration_since(sh.base).as_micros() as u64;
        let op = pick(&sh.mix, rand::random::<u32>());
        let msg = match op {
            Op::Mute => {
                mute_seq += 1;
                board.handle_sent(idx, Kind::Mute, mute_seq, t_us);
                C::MuteRequest(proto::MuteRequest {
                    audio_muted: mute_seq % 2 == 1,
                    video_muted: false,
                })
            }
            Op::Publish => {
                pub_seq += 1;
                board.handle_sent(idx, Kind::Publish, pub_seq, t_us);
                C::PublishStream(proto::MediaStream {
                    stream_id: format!("cam{}", pub_seq % 4),
                    stream_type: 1,
                    metadata: Some(proto::StreamMetadata {
                        codec: "VP8".into(),
                        max_bitrate: pub_seq as u32,
                    }),
                })
            }
            Op::Quality => C::StreamQualityUpdate(proto::StreamQualityUpdate {
                stream_id: "cam0".into(),
                available_bitrate: 500_000 + (t_us % 1000) as u32,
                packet_loss: 0.01,
                rtt_ms: 20,
            }),
            Op::Layout => {
                let cfg = Some(proto::LayoutConfig {
                    rows: 2,
                    columns: 2 + (t_us % 2) as u32,
                    max_streams: 0,
                });
                if layout_tx.try_send(now).is_err() {
                    rec.add(Counter::Backlogged, 1);
                }
                if subscribed {
                    C::UpdateLayout(proto::UpdateLayout { new_config: cfg })
                } else {
                    subscribed = true;
                    C::SubscribeToLayout(proto::SubscribeToLayout {
                        layout_type: 0,
                        config: cfg,
                    })
                }
            }
        };
        let frame = proto::encode(&ClientMessage {
            message: Some(msg),
            trace_parent: String::new(),
        });
        if let Err(e) = send.write_all(&frame).await {
            sh.stats.error(format!("write:{}", short(&e.to_string())));
            break;
        }
        rec.add(Counter::Sent, 1);
        rec.maybe_flush(&sh.stats, now);
    }
    rec.flush(&sh.stats, Instant::now());
    // Keep `send` open through the drain: finishing it would leave the meeting.
    sh.end.wait().await;
    drop(send);
}

#[allow(clippy::too_many_arguments)]
async fn read_loop(
    me: usize,
    p: usize,
    mut recv: RecvStream,
    mut frames: FrameReader,
    board: Arc<Board>,
    roster: Arc<Roster>,
    sh: Arc<Shared>,
    mut layout_rx: mpsc::Receiver<Instant>,
    (pid, mut known): (String, HashSet<String>),
) {
    let mut rx = Receiver::new(me, p);
    let mut rec = Recorder::new(Instant::now());
    let mut buf = vec![0u8; 32 * 1024];
    'outer: loop {
        loop {
            let m = match frames.poll_frame() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    sh.stats.error(format!("frame:{e}"));
                    break 'outer;
                }
            };
            let now = Instant::now();
            let now_us = now.saturating_duration_since(sh.base).as_micros() as u64;
            let d = match m.message {
                Some(S::ParticipantMuteUpdate(u)) => roster
                    .get(&u.participant_id)
                    .map(|s| rx.handle_mute(&board, *s, u.audio_self_muted, now_us)),
                Some(S::StreamPublished(u)) => {
                    let seq = u
                        .stream
                        .and_then(|s| s.metadata)
                        .map_or(0, |m| u64::from(m.max_bitrate));
                    roster
                        .get(&u.participant_id)
                        .map(|s| rx.handle_publish(&board, *s, seq, now_us))
                }
                Some(S::ParticipantJoined(j)) => {
                    if let Some(p) = j.participant {
                        known.insert(p.participant_id);
                    }
                    None
                }
                Some(S::StreamAssignments(_)) => {
                    if let Ok(t) = layout_rx.try_recv() {
                        rec.record(Lat::Layout, now.saturating_duration_since(t));
                    }
                    None
                }
                Some(S::Error(e)) => {
                    sh.stats
                        .error(format!("server:{}", proto::error_code_name(e.code)));
                    None
                }
                Some(S::RedirectToMc(_)) => {
                    sh.stats.error("server:redirect");
                    None
                }
                _ => None,
            };
            match d {
                Some(Delivery::InOrder(lat)) => {
                    board.delivered.fetch_add(1, Ordering::Relaxed);
                    rec.add(Counter::Delivered, 1);
                    if let Some(l) = lat {
                        rec.record(Lat::Fanout, Duration::from_micros(l));
                    }
                }
                Some(Delivery::OutOfOrder(lat)) => {
                    board.delivered.fetch_add(1, Ordering::Relaxed);
                    rec.add(Counter::OutOfOrder, 1);
                    if let Some(l) = lat {
                        rec.record(Lat::Fanout, Duration::from_micros(l));
                    }
                }
                Some(Delivery::Unexpected) => rec.add(Counter::Unexpected, 1),
                Some(Delivery::Own) | None => {}
            }
            rec.maybe_flush(&sh.stats, now);
        }
        let r = tokio::select! {
            r = recv.read(&mut buf) => r,
            _ = sh.end.wait() => break,
        };
        match r {
            Ok(Some(n)) => frames.handle_bytes(buf.get(..n).unwrap_or_default()),
            // At the end every participant leaves (finishes its stream) and the server
            // answers with its own FIN: expected then, a lost session before.
            Ok(None) if sh.end.is_set() => break,
            Ok(None) => {
                rec.add(Counter::SessionsLost, 1);
                sh.stats.error("session:finished_by_server");
                break;
            }
            Err(_) if sh.end.is_set() => break, // teardown race, not a loss
            Err(e) => {
                rec.add(Counter::SessionsLost, 1);
                sh.stats.error(format!("session:{}", short(&e.to_string())));
                break;
            }
        }
    }
    let missing = roster
        .keys()
        .filter(|p| **p != pid && !known.contains(*p))
        .count();
    rec.add(Counter::RosterMissing, missing as u64);
    rec.flush(&sh.stats, Instant::now());
}
