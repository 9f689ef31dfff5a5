//! One participant of the `meeting` scenario: connect and join ([`join`],
//! docs/protocol.md "Transport and framing": the first frame is a JoinRequest, answered
//! by JoinResponse or ErrorMessage), then a writer sending the message mix and a reader
//! checking every notification against the [`Board`] and the roster.
//!
//! The reader also follows live migration (docs/protocol.md rules 17–20): on
//! `RedirectToMc` it pauses the writer, marks the messages the source dropped, connects
//! to the new MC (same trust, [`Target::redirect`]) and sends the recovery join (the
//! latest `correlation_id` and `binding_token`, a fresh token for the same user), reads
//! the state the new MC sends as state rather than notifications ([`Burst`]), and hands
//! the writer its new stream. A move is not a lost session; what a cut may lose is
//! accounted in [`super::fanout`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tokio::sync::{mpsc, Mutex};
use wtransport::{Connection, RecvStream, SendStream};

use super::client::{EndpointPool, Target};
use super::echo::{code, label, short};
use super::explain;
use super::fanout::{mute_flags, Board, Delivery, Kind, MuteState, Receiver, Resync};
use super::meeting::{pick, Op};
use super::proto::{
    self, client_message::Message as C, server_message::Message as S, ClientMessage, FrameReader,
    ServerMessage,
};
use super::stats::{micros, Counter, Lat, Recorder, Stats};
use super::token::Minter;
use super::Stop;

pub(crate) type Roster = HashMap<String, usize>;

/// `LeaveReason::MEETING_ENDED` (docs/protocol.md "Enums").
const MEETING_ENDED: i32 = 3;
/// Bound of one connect, and of one join's answer.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// How redirects are handled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Redirects {
    /// Follow them; otherwise a redirect counts as an error (`server:redirect`).
    pub(crate) follow: bool,
    /// Attempts per redirect (connect failures and timeouts are retried).
    pub(crate) attempts: u32,
}

pub(crate) struct Shared {
    pub(crate) stats: Arc<Stats>,
    /// End of the traffic phase: writers stop.
    pub(crate) stop: Arc<Stop>,
    /// End of the drain phase: readers stop and sessions close.
    pub(crate) end: Arc<Stop>,
    pub(crate) base: Instant,
    pub(crate) mix: Vec<(Op, u32)>,
    pub(crate) period: Duration,
    /// What a move needs: endpoints (with the run's trust), tokens, the typed target.
    pub(crate) pool: Arc<EndpointPool>,
    pub(crate) minter: Arc<Minter>,
    pub(crate) target: Target,
    pub(crate) redirects: Redirects,
    /// Anomaly reports to print (`--explain`), and how many were.
    pub(crate) explain: u32,
    pub(crate) explained: AtomicU32,
    /// The drain phase ran its course (was not interrupted): a message not received by
    /// now is missing.
    pub(crate) drain_over: AtomicBool,
}

impl Shared {
    fn micros_since_base(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_micros() as u64
    }
}

pub(crate) struct Joined {
    pub(crate) idx: usize,
    pub(crate) mid: String,
    pub(crate) pid: String,
    pub(crate) conn: Connection,
    pub(crate) send: SendStream,
    pub(crate) recv: RecvStream,
    pub(crate) frames: FrameReader,
    /// Participants this one knows of: JoinResponse.existing_participants, then
    /// ParticipantJoined (docs/protocol.md "Semantics the MC owns": Roster).
    pub(crate) known: HashSet<String>,
    /// `correlation_id` and `binding_token` of the latest JoinResponse.
    pub(crate) binding: (String, String),
}

/// The token subject of participant `idx` of meeting `mid` (the same on every MC).
fn subject(mid: &str, idx: usize) -> String {
    format!("{mid}-u{idx}")
}

/// Participant 0 of each meeting is host.
fn role(idx: usize) -> &'static str {
    if idx == 0 {
        "host"
    } else {
        "participant"
    }
}

/// A JoinRequest; with `binding`, the recovery join of docs/protocol.md rules 7 and 18.
fn join_request(
    mid: &str,
    idx: usize,
    token: String,
    binding: Option<&(String, String)>,
) -> Vec<u8> {
    let (correlation_id, binding_token) = binding.cloned().unwrap_or_default();
    proto::encode(&ClientMessage {
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
            correlation_id,
            binding_token,
        })),
        trace_parent: String::new(),
    })
}

/// Sends `join` on a new signaling stream of `conn` and reads up to its answer: the
/// streams, the frames after the JoinResponse, the response and when the join was sent.
/// `Err("server:<CODE>")` when the MC refused.
async fn open_and_join(
    conn: &Connection,
    join: &[u8],
) -> anyhow::Result<(
    SendStream,
    RecvStream,
    FrameReader,
    proto::JoinResponse,
    Instant,
)> {
    let (mut send, mut recv) = conn.open_bi().await?.await?;
    let sent = Instant::now();
    send.write_all(join).await?;
    let mut frames = FrameReader::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while let Some(m) = frames.poll_frame()? {
            match m.message {
                Some(S::JoinResponse(r)) => return Ok((send, recv, frames, r, sent)),
                Some(S::Error(e)) => bail!("{}", proto::error_key(&e)),
                _ => {}
            }
        }
        let n = recv
            .read(&mut buf)
            .await?
            .context("stream finished before JoinResponse")?;
        frames.handle_bytes(buf.get(..n).unwrap_or_default());
    }
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
    let conn = match tokio::time::timeout(STEP_TIMEOUT, pool.get().connect(url)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return fail(label("connect", &e)),
        Err(_) => return fail("connect:timeout".into()),
    };
    let t1 = Instant::now();
    stats.live_sessions.fetch_add(1, Ordering::Relaxed);
    let token = match minter.mint(&subject(mid, idx), mid, role(idx)) {
        Ok(t) => t,
        Err(e) => return fail(format!("token:{e}")),
    };
    let request = join_request(mid, idx, token, None);
    match tokio::time::timeout(STEP_TIMEOUT, open_and_join(&conn, &request)).await {
        Ok(Ok((send, recv, frames, r, t_join))) => {
            let mut rec = Recorder::new(t0);
            rec.record(Lat::Connect, t1 - t0);
            rec.record(Lat::Join, t_join.elapsed());
            rec.add(Counter::JoinsOk, 1);
            rec.add(Counter::SessionsOk, 1);
            rec.flush(stats, Instant::now());
            stats.udp.register(conn.quic_connection());
            Some(Joined {
                idx,
                mid: mid.to_string(),
                pid: r.participant_id,
                conn,
                send,
                recv,
                frames,
                known: r
                    .existing_participants
                    .into_iter()
                    .map(|p| p.participant_id)
                    .collect(),
                binding: (r.correlation_id, r.binding_token),
            })
        }
        Ok(Err(e)) => {
            stats.live_sessions.fetch_sub(1, Ordering::Relaxed);
            let msg = e.to_string();
            fail(if msg.starts_with("server:") {
                msg
            } else {
                code("join", &msg)
            })
        }
        Err(_) => {
            stats.live_sessions.fetch_sub(1, Ordering::Relaxed);
            fail("join:timeout".into())
        }
    }
}

/// The signaling stream the writer writes to; empty while the participant moves (or
/// after a write failed). `generation` counts the streams installed by moves.
struct Link {
    send: Option<SendStream>,
    generation: u32,
    /// The layout subscription was not confirmed before a cut, so the source may have
    /// dropped it (rule 20): the writer subscribes again instead of updating.
    resubscribe: bool,
}

/// One participant after its join: a reader (notifications, errors, layout replies,
/// redirects) and a writer (the message mix at the per-participant rate).
pub(crate) async fn participant(
    j: Joined,
    p: usize,
    board: Arc<Board>,
    roster: Arc<Roster>,
    sh: Arc<Shared>,
) {
    let Joined {
        idx,
        mid,
        pid,
        conn,
        send,
        recv,
        frames,
        known,
        binding,
    } = j;
    let link = Arc::new(Mutex::new(Link {
        send: Some(send),
        generation: 0,
        resubscribe: false,
    }));
    let (layout_tx, layout_rx) = mpsc::channel::<Instant>(64);
    let reader = Reader {
        me: idx,
        mid,
        pid,
        conn,
        recv,
        frames,
        known,
        binding,
        rx: Receiver::new(idx, p),
        rec: Recorder::new(Instant::now()),
        board: board.clone(),
        roster,
        sh: sh.clone(),
        link: link.clone(),
        layout_rx,
        layout_confirmed: false,
        burst: None,
        explained_order: false,
    };
    let reader = tokio::spawn(reader.run());
    write_loop(idx, &link, &board, &sh, layout_tx).await;
    if let Ok(conn) = reader.await {
        conn.close(0u32.into(), b"");
    }
    sh.stats.live_sessions.fetch_sub(1, Ordering::Relaxed);
}

/// Records a message on the board; an exposed one counts as in flight at the open cut.
fn note_sent(
    board: &Board,
    sh: &Shared,
    rec: &mut Recorder,
    idx: usize,
    kind: Kind,
    seq: u64,
    t_us: u64,
) {
    if board.handle_sent(idx, kind, seq, t_us) {
        let owed = board.owed(kind);
        rec.add(Counter::CutExposed, 1);
        rec.add(Counter::InFlightAtCut, owed);
        sh.stats.cut(board.moves_of(idx), |c| {
            c.exposed_messages += 1;
            c.in_flight += owed;
        });
    }
}

async fn write_loop(
    idx: usize,
    link: &Mutex<Link>,
    board: &Board,
    sh: &Shared,
    layout_tx: mpsc::Sender<Instant>,
) {
    let mut rec = Recorder::new(Instant::now());
    let (mut mute_seq, mut pub_seq) = (0u64, 0u64);
    let mut subscribed = false;
    // A failed write and the stream generation it failed on: an error unless a move
    // replaced that stream since (the source closes a redirected session).
    let mut broken: Option<(u32, String)> = None;
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
        let mut guard = link.lock().await;
        let generation = guard.generation;
        if std::mem::take(&mut guard.resubscribe) {
            subscribed = false;
        }
        let Some(send) = guard.send.as_mut() else {
            continue; // moving: nothing is sent until the new MC has us
        };
        let now = Instant::now();
        let t_us = sh.micros_since_base(now);
        let op = pick(&sh.mix, rand::random::<u32>());
        let msg = match op {
            Op::Mute => {
                mute_seq += 1;
                note_sent(board, sh, &mut rec, idx, Kind::Mute, mute_seq, t_us);
                let (audio_muted, video_muted) = mute_flags(mute_seq);
                C::MuteRequest(proto::MuteRequest {
                    audio_muted,
                    video_muted,
                })
            }
            Op::Publish => {
                pub_seq += 1;
                note_sent(board, sh, &mut rec, idx, Kind::Publish, pub_seq, t_us);
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
            guard.send = None;
            broken = Some((generation, short(&e.to_string())));
            continue;
        }
        drop(guard);
        rec.add(Counter::Sent, 1);
        rec.maybe_flush(&sh.stats, now);
    }
    rec.flush(&sh.stats, Instant::now());
    // Keep the stream open through the drain: finishing it would leave the meeting.
    sh.end.wait().await;
    let mut guard = link.lock().await;
    drop(guard.send.take());
    if let Some((generation, e)) = broken {
        if guard.generation == generation {
            sh.stats.error(format!("write:{e}"));
        }
    }
}

/// The state a new MC sends right after a recovery JoinResponse (docs/protocol.md rule
/// 19): the ParticipantJoined that did not fit, then one ParticipantMuteUpdate per muted
/// participant, in one piece before anything else. Read as state, not notifications.
struct Burst {
    /// When the recovery join was sent and answered (µs since the run's base): the new
    /// MC processed it in between.
    join_sent_us: u64,
    answered_us: u64,
    /// Participants whose mute state has been read.
    seen: HashSet<usize>,
    cut: u32,
}

/// Whether the reader carries on.
enum Next {
    Go,
    Stop,
}

/// A failed attempt at following a redirect.
enum Attempt {
    /// Connect failure or timeout: worth another attempt.
    Retry(String),
    /// The new MC answered with an error (or no token could be minted).
    Fatal(String),
}

/// The new session after a successful recovery join.
struct Arrival {
    conn: Connection,
    send: SendStream,
    recv: RecvStream,
    frames: FrameReader,
    response: proto::JoinResponse,
    join_sent: Instant,
    answered: Instant,
}

struct Reader {
    me: usize,
    mid: String,
    pid: String,
    conn: Connection,
    recv: RecvStream,
    frames: FrameReader,
    known: HashSet<String>,
    binding: (String, String),
    rx: Receiver,
    rec: Recorder,
    board: Arc<Board>,
    roster: Arc<Roster>,
    sh: Arc<Shared>,
    link: Arc<Mutex<Link>>,
    layout_rx: mpsc::Receiver<Instant>,
    /// A StreamAssignments arrived: the MC holds a layout subscription (it moves with
    /// the meeting).
    layout_confirmed: bool,
    burst: Option<Burst>,
    /// An out-of-order notification was reported (one report per receiver).
    explained_order: bool,
}

impl Reader {
    /// Reads until the end of the run (or a session that cannot go on); returns the
    /// connection the participant ends on.
    async fn run(mut self) -> Connection {
        let mut buf = vec![0u8; 32 * 1024];
        'outer: loop {
            loop {
                let m = match self.frames.poll_frame() {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(e) => {
                        self.sh.stats.error(format!("frame:{e}"));
                        break 'outer;
                    }
                };
                if let Next::Stop = self.handle(m).await {
                    break 'outer;
                }
            }
            let r = tokio::select! {
                r = self.recv.read(&mut buf) => r,
                _ = self.sh.end.wait() => break,
            };
            match r {
                Ok(Some(n)) => self.frames.handle_bytes(buf.get(..n).unwrap_or_default()),
                // At the end every participant leaves (finishes its stream) and the server
                // answers with its own FIN: expected then, a lost session before.
                Ok(None) if self.sh.end.is_set() => break,
                Ok(None) => {
                    self.rec.add(Counter::SessionsLost, 1);
                    self.sh.stats.error("session:finished_by_server");
                    break;
                }
                Err(_) if self.sh.end.is_set() => break, // teardown race, not a loss
                Err(e) => {
                    self.rec.add(Counter::SessionsLost, 1);
                    self.sh.stats.error(label("session", &e));
                    break;
                }
            }
        }
        let missing = self
            .roster
            .keys()
            .filter(|p| **p != self.pid && !self.known.contains(*p))
            .count();
        self.rec.add(Counter::RosterMissing, missing as u64);
        // Looked for only while reports are left to print.
        if self.sh.drain_over.load(Ordering::Relaxed)
            && self.sh.explained.load(Ordering::Relaxed) < self.sh.explain
        {
            for (sender, kind, first, count) in self.rx.unaccounted(&self.board) {
                self.explain(
                    sender,
                    &format!("{count} {kind:?} message(s) from #{first} on never arrived"),
                );
            }
        }
        self.rec.flush(&self.sh.stats, Instant::now());
        self.conn
    }

    async fn handle(&mut self, m: ServerMessage) -> Next {
        let Some(msg) = m.message else {
            return Next::Go;
        };
        if self.burst.is_some() {
            if self.read_as_state(&msg) {
                return Next::Go;
            }
            self.burst = None;
        }
        let now = Instant::now();
        let now_us = self.sh.micros_since_base(now);
        let board = &self.board;
        let mut sender = None;
        let d = match msg {
            S::ParticipantMuteUpdate(u) => {
                sender = self.roster.get(&u.participant_id).copied();
                let flags = (u.audio_self_muted, u.video_self_muted);
                sender.map(|s| self.rx.handle_mute(board, s, flags, now_us))
            }
            S::StreamPublished(u) => {
                let seq = u
                    .stream
                    .and_then(|s| s.metadata)
                    .map_or(0, |m| u64::from(m.max_bitrate));
                sender = self.roster.get(&u.participant_id).copied();
                sender.map(|s| self.rx.handle_publish(board, s, seq, now_us))
            }
            S::ParticipantJoined(j) => {
                if let Some(p) = j.participant {
                    self.known.insert(p.participant_id);
                }
                None
            }
            S::ParticipantLeft(l) => {
                // Nobody leaves before the end; a meeting that ends is a failure.
                if !self.sh.end.is_set() {
                    self.rec.add(Counter::LeftMidRun, 1);
                    if l.reason == MEETING_ENDED {
                        self.sh.stats.error("server:meeting_ended");
                    }
                }
                None
            }
            S::StreamAssignments(_) => {
                self.layout_confirmed = true;
                if let Ok(t) = self.layout_rx.try_recv() {
                    self.rec
                        .record(Lat::Layout, now.saturating_duration_since(t));
                }
                None
            }
            S::Error(e) => {
                self.sh.stats.error(proto::error_key(&e));
                None
            }
            S::RedirectToMc(r) => return self.redirected(r, now).await,
            _ => None,
        };
        match d {
            Some(Delivery::InOrder(lat)) => {
                self.board.delivered.fetch_add(1, Ordering::Relaxed);
                self.rec.add(Counter::Delivered, 1);
                if let Some(l) = lat {
                    self.rec.record(Lat::Fanout, Duration::from_micros(l));
                }
            }
            Some(Delivery::OutOfOrder(lat)) => {
                self.board.delivered.fetch_add(1, Ordering::Relaxed);
                self.rec.add(Counter::OutOfOrder, 1);
                if !std::mem::replace(&mut self.explained_order, true) {
                    if let Some(s) = sender {
                        self.explain(s, "a notification out of order");
                    }
                }
                if let Some(l) = lat {
                    self.rec.record(Lat::Fanout, Duration::from_micros(l));
                }
            }
            Some(Delivery::Unexpected) => self.rec.add(Counter::Unexpected, 1),
            Some(Delivery::Own) | None => {}
        }
        self.rec.maybe_flush(&self.sh.stats, now);
        Next::Go
    }

    /// Whether `msg` belongs to the state after a recovery JoinResponse ([`Burst`]); a
    /// mute state resynchronises its sender. A participant is in that state when it had a
    /// mute processed by then; a second update about it, an update about one known to
    /// have had none, or any other message ends the state.
    fn read_as_state(&mut self, msg: &S) -> bool {
        let Some(b) = &self.burst else {
            return false;
        };
        let (join_sent_us, answered_us, cut) = (b.join_sent_us, b.answered_us, b.cut);
        match msg {
            S::ParticipantJoined(j) => {
                if let Some(p) = &j.participant {
                    self.known.insert(p.participant_id.clone());
                }
                true
            }
            S::ParticipantMuteUpdate(u) => {
                let Some(&s) = self.roster.get(&u.participant_id) else {
                    return false;
                };
                if b.seen.contains(&s) {
                    return false;
                }
                let state = self
                    .rx
                    .mute_state(&self.board, s, join_sent_us, answered_us);
                if state == MuteState::Unmuted {
                    return false;
                }
                if let Some(b) = &mut self.burst {
                    b.seen.insert(s);
                }
                let mut r = self.rx.resync_mute(
                    &self.board,
                    s,
                    (u.audio_self_muted, u.video_self_muted),
                    join_sent_us,
                    answered_us,
                );
                r.ambiguous |= state == MuteState::Unknown;
                self.account(cut, s, r);
                true
            }
            _ => false,
        }
    }

    /// Prints an anomaly report about `sender` (module [`super::explain`]), up to
    /// `--explain` reports per run.
    fn explain(&self, sender: usize, what: &str) {
        if self.sh.explained.fetch_add(1, Ordering::Relaxed) < self.sh.explain {
            eprint!(
                "{}",
                explain::describe(&self.mid, self.me, sender, what, &self.rx, &self.board)
            );
        }
    }

    /// Counts what a resynchronisation of `sender` found.
    fn account(&mut self, cut: u32, sender: usize, r: Resync) {
        // An ambiguous one is counted, not reported: the choice it made shows in the
        // history of any anomaly it leads to.
        if r.inconsistent {
            self.explain(
                sender,
                &format!("the state after move {cut} contradicts what was sent"),
            );
        }
        if r.unexposed > 0 {
            self.explain(
                sender,
                &format!(
                    "the state after move {cut} skips {} message(s) never exposed to the cut",
                    r.unexposed
                ),
            );
        }
        if r.lost > 0 {
            self.rec.add(Counter::LostAtCut, r.lost);
            self.board.lost.fetch_add(r.lost, Ordering::Relaxed);
        }
        if r.ambiguous {
            self.rec.add(Counter::ResyncAmbiguous, 1);
        }
        if r.inconsistent {
            self.rec.add(Counter::ResyncInconsistent, 1);
        }
        if r.lost > 0 || r.ambiguous || r.inconsistent {
            self.sh.stats.cut(cut, |c| {
                c.lost += r.lost;
                c.resync_ambiguous += u64::from(r.ambiguous);
                c.resync_inconsistent += u64::from(r.inconsistent);
            });
        }
    }

    /// docs/protocol.md rules 17–20: the MC handed the meeting to another one.
    async fn redirected(&mut self, r: proto::RedirectToMc, at: Instant) -> Next {
        let cut = self.board.moves_of(self.me) + 1;
        let since = self.sh.stats.since_start(at);
        self.rec.add(Counter::Redirects, 1);
        self.sh.stats.cut(cut, |c| {
            c.redirected += 1;
            c.first_redirect = Some(c.first_redirect.map_or(since, |f| f.min(since)));
        });
        if !self.sh.redirects.follow {
            self.sh.stats.error("server:redirect");
            return Next::Go;
        }
        // Pause the writer: nothing more goes to the source. The MC answers a
        // subscription at once, so one not confirmed by now was dropped.
        {
            let mut link = self.link.lock().await;
            drop(link.send.take());
            link.resubscribe = !self.layout_confirmed;
        }
        // What the source had not processed when it redirected us is dropped (rule 20).
        let dropped = self.rx.handle_own_cut(&self.board);
        let messages: u64 = dropped.iter().sum();
        if messages > 0 {
            let owed = dropped[Kind::Mute as usize] * self.board.owed(Kind::Mute)
                + dropped[Kind::Publish as usize] * self.board.owed(Kind::Publish);
            self.rec.add(Counter::CutDropped, messages);
            self.rec.add(Counter::InFlightAtCut, owed);
            self.rec.add(Counter::LostAtCut, owed);
            self.board.lost.fetch_add(owed, Ordering::Relaxed);
            self.sh.stats.cut(cut, |c| {
                c.dropped_messages += messages;
                c.in_flight += owed;
                c.lost += owed;
            });
        }
        // Layout requests in flight are answered (if at all) before the redirect.
        while self.layout_rx.try_recv().is_ok() {}
        if r.meeting_id != self.mid {
            return self.failed(cut, "wrong_meeting");
        }
        let url = match self.sh.target.redirect(&r.new_mc_endpoint).await {
            Ok(u) => u,
            Err(e) => return self.failed(cut, e.label()),
        };
        let arrival = match self.follow(&url).await {
            Ok(a) => a,
            Err(code) => return self.failed(cut, &code),
        };
        self.arrived(arrival, at, cut).await
    }

    /// Up to `--redirect-attempts` recovery joins at `url`, backing off between them.
    async fn follow(&self, url: &str) -> Result<Arrival, String> {
        let attempts = self.sh.redirects.attempts.clamp(1, 10);
        let mut last = String::new();
        for attempt in 1..=attempts {
            if attempt > 1 {
                let pause = Duration::from_millis(100 << (attempt - 2).min(5));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = self.sh.end.wait() => return Err("aborted_at_end".into()),
                }
            }
            let tried = tokio::select! {
                t = self.try_follow(url) => t,
                _ = self.sh.end.wait() => return Err("aborted_at_end".into()),
            };
            match tried {
                Ok(a) => return Ok(a),
                Err(Attempt::Retry(code)) => last = code,
                Err(Attempt::Fatal(code)) => return Err(code),
            }
        }
        Err(last)
    }

    async fn try_follow(&self, url: &str) -> Result<Arrival, Attempt> {
        let conn = match tokio::time::timeout(STEP_TIMEOUT, self.sh.pool.get().connect(url)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(Attempt::Retry(code("connect", &e))),
            Err(_) => return Err(Attempt::Retry("connect:timeout".into())),
        };
        let token = self
            .sh
            .minter
            .mint(&subject(&self.mid, self.me), &self.mid, role(self.me))
            .map_err(|e| Attempt::Fatal(format!("token:{e}")))?;
        let request = join_request(&self.mid, self.me, token, Some(&self.binding));
        match tokio::time::timeout(STEP_TIMEOUT, open_and_join(&conn, &request)).await {
            Ok(Ok((send, recv, frames, response, join_sent))) => Ok(Arrival {
                conn,
                send,
                recv,
                frames,
                response,
                join_sent,
                answered: Instant::now(),
            }),
            Ok(Err(e)) => {
                let msg = e.to_string();
                Err(if msg.starts_with("server:") {
                    Attempt::Fatal(msg)
                } else {
                    Attempt::Retry(code("join", &msg))
                })
            }
            Err(_) => Err(Attempt::Retry("join:timeout".into())),
        }
    }

    /// Recovered on the new MC: resynchronise from its state, then resume the writer.
    async fn arrived(&mut self, a: Arrival, redirected_at: Instant, cut: u32) -> Next {
        let response = a.response;
        if response.participant_id != self.pid {
            return self.failed(cut, "identity_changed");
        }
        self.binding = (response.correlation_id, response.binding_token);
        for p in &response.existing_participants {
            self.known.insert(p.participant_id.clone());
            let Some(&s) = self.roster.get(&p.participant_id) else {
                continue;
            };
            let published = p
                .streams
                .iter()
                .filter_map(|st| st.metadata.as_ref())
                .map(|m| u64::from(m.max_bitrate))
                .max()
                .unwrap_or(0);
            let r = self.rx.resync_publish(&self.board, s, published);
            self.account(cut, s, r);
        }
        self.sh.stats.udp.register(a.conn.quic_connection());
        // The connection to the old MC ends here (what dropping it would do, said
        // explicitly: the datagram ledger holds a handle to it).
        std::mem::replace(&mut self.conn, a.conn).close(0u32.into(), b"");
        self.recv = a.recv;
        self.frames = a.frames;
        self.board.handle_moved(self.me);
        self.rx.handle_moved(
            self.sh.micros_since_base(a.join_sent),
            self.sh.micros_since_base(a.answered),
        );
        let took = a.answered.saturating_duration_since(redirected_at);
        let since = self.sh.stats.since_start(a.answered);
        self.rec.record(Lat::Move, took);
        self.rec.add(Counter::Moves, 1);
        self.sh.stats.cut(cut, |c| {
            c.moved += 1;
            c.last_move = Some(c.last_move.map_or(since, |l| l.max(since)));
            c.moves.saturating_record(micros(took));
        });
        self.burst = Some(Burst {
            join_sent_us: self.sh.micros_since_base(a.join_sent),
            answered_us: self.sh.micros_since_base(a.answered),
            seen: HashSet::new(),
            cut,
        });
        let mut link = self.link.lock().await;
        link.send = Some(a.send);
        link.generation += 1;
        Next::Go
    }

    /// A redirect that could not be followed: the participant stops here.
    fn failed(&mut self, cut: u32, code: &str) -> Next {
        if !(self.sh.end.is_set() && code == "aborted_at_end") {
            self.rec.add(Counter::RedirectFailures, 1);
            self.sh.stats.error(format!("redirect:{code}"));
            self.sh.stats.cut(cut, |c| c.failed += 1);
        }
        Next::Stop
    }
}
