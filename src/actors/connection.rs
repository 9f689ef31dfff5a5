//! The connection actor: one task per WebTransport session on `/`, on the shard that
//! accepted it (signaling.md "Transport and framing").
//!
//! It waits for the client's bidi stream, feeds its bytes to the sans-IO signaling
//! [`Session`] (framing, first-frame-is-join, rate limit), verifies the join token, and
//! routes the join and every later message to the meeting's actor. What the meeting
//! sends back arrives in this actor's bounded mailbox as encoded frames, is queued on
//! the session (bounded: a client that stops reading is closed as a slow consumer,
//! 0x104) and written to the stream. When the session ends, the meeting is told whether
//! it was a clean leave (VOLUNTARY) or a drop (grace period) — signaling.md rule 6.

use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use futures_lite::future::or;
use glommio::channels::local_channel::LocalReceiver;

use super::{Actors, ConnCmd, MeetingCmd};
use crate::auth::jwt::{self, Role as TokenRole, CLIENT_ERROR_MESSAGE};
use crate::meeting::{CloseCode, ConnKey, JoinIdentity, Role};
use crate::signaling::proto::{ErrorCode, ServerMessage};
use crate::signaling::session::{Session, SessionEvent};
use crate::webtransport::{ConnectInfo, Refusal, SessionApp, SessionEnd, WtSession, WtStream};

/// How long a write may wait for the client's flow control before the client is
/// treated as a slow consumer.
const WRITE_STALL_LIMIT: Duration = Duration::from_secs(5);
/// Most mailbox commands taken in one pass before writing.
const MAX_COMMANDS_PER_PASS: usize = 512;
/// After the server finishes the signaling stream, how long the client has to read it
/// and close before the server closes the session itself.
const CLOSE_LINGER: Duration = Duration::from_millis(500);
/// How long a join waits for a key reload after an unknown `kid`.
const UNKNOWN_KID_WAIT: Duration = Duration::from_secs(2);

/// The data plane's hook for sessions on `/`.
pub struct SignalingApp {
    pub actors: Rc<Actors>,
}

impl SessionApp for SignalingApp {
    fn admit(&self, req: &ConnectInfo) -> Result<(), Refusal> {
        // After SIGTERM no new sessions (runbook: drain); the GC's draining only stops
        // new meetings, which admission refuses at join time.
        if self.actors.draining.get() {
            return Err(Refusal::unavailable());
        }
        let ip = req.peer.ip();
        let per_ip = self.actors.per_ip_count(ip);
        if per_ip >= self.actors.settings.max_sessions_per_ip {
            self.actors.count_refusal("max_sessions_per_ip");
            return Err(Refusal::new(http::StatusCode::TOO_MANY_REQUESTS));
        }
        Ok(())
    }

    fn on_session(&self, session: WtSession) {
        let actors = self.actors.clone();
        let ip = session.peer().ip();
        if !actors.acquire_ip(ip) {
            session.close(
                CloseCode::RateLimited.code(),
                b"too many sessions from this address",
            );
            return;
        }
        glommio::spawn_local(async move {
            run(actors.clone(), session).await;
            actors.release_ip(ip);
        })
        .detach();
    }
}

/// What the actor knows when the session ends.
struct Ending {
    meeting_id: Option<String>,
    clean: bool,
    reason: &'static str,
}

async fn run(actors: Rc<Actors>, session: WtSession) {
    let accepted_at = Instant::now();
    let (key, mailbox) = actors.register_connection();
    let peer = session.peer();
    tracing::debug!(conn = key.conn, %peer, "signaling session accepted");
    let ending = serve(&actors, &session, key, &mailbox, accepted_at).await;
    tracing::debug!(conn = key.conn, %peer, clean = ending.clean, reason = ending.reason, "signaling session ended");
    actors.count_session_closed(ending.reason);
    if let Some(meeting_id) = ending.meeting_id {
        let cmd = MeetingCmd::Disconnect {
            conn: key,
            meeting_id,
            clean: ending.clean,
        };
        // A full meeting mailbox drops this (counted); the meeting's grace timer does
        // not start then, but the connection's idle close will be noticed on recovery.
        let _ = actors.route_meeting(cmd);
    }
    actors.unregister_connection(key);
}

async fn serve(
    actors: &Rc<Actors>,
    session: &WtSession,
    key: ConnKey,
    mailbox: &LocalReceiver<ConnCmd>,
    accepted_at: Instant,
) -> Ending {
    let mut ending = Ending {
        meeting_id: None,
        clean: false,
        reason: "error",
    };
    // signaling.md: the client opens ONE bidirectional stream.
    let first = or(async { Some(session.accept_bi().await) }, async {
        glommio::timer::sleep(actors.settings.join_timeout).await;
        None
    })
    .await;
    let mut stream = match first {
        Some(Ok(Some(s))) => s,
        Some(_) => {
            ending.reason = "ended_before_stream";
            return ending;
        }
        None => {
            session.close(CloseCode::ProtocolViolation.code(), b"no signaling stream");
            ending.reason = "no_stream";
            return ending;
        }
    };

    let mut sig = Session::new(actors.settings.session.clone(), Instant::now());
    loop {
        // 1. Flush what is queued for the client.
        if let Err(reason) = flush(&mut sig, &mut stream).await {
            ending.reason = reason;
            ending.clean = false;
            session.close(CloseCode::SlowConsumer.code(), b"slow consumer");
            return ending;
        }
        // 2. The session decided to close (error, meeting instruction).
        if let Some(code) = sig.poll_close() {
            // Finish the stream so the client reads everything (an ErrorMessage, say)
            // before the session goes: give it a moment to close on its own first.
            let _ = stream.finish().await;
            let _ = or(async { Some(session.closed().await) }, async {
                glommio::timer::sleep(CLOSE_LINGER).await;
                None
            })
            .await;
            session.close(code.code(), code.label().as_bytes());
            ending.clean = code == CloseCode::Normal;
            ending.reason = code.label();
            return ending;
        }
        // 3. Wait for the client or the meeting.
        enum Next {
            Read(Result<Option<bytes::Bytes>, crate::webtransport::WtError>),
            Cmd(Option<ConnCmd>),
        }
        let next = or(async { Next::Read(stream.read_chunk().await) }, async {
            Next::Cmd(mailbox.recv().await)
        })
        .await;
        match next {
            Next::Read(Ok(Some(bytes))) => {
                let now = Instant::now();
                sig.handle_bytes(now, &bytes);
                while let Some(event) = sig.poll_event() {
                    on_event(actors, &mut sig, key, &mut ending, event, now).await;
                }
            }
            Next::Read(Ok(None)) => {
                // The client finished its stream: a clean leave (rule 6).
                let _ = stream.finish().await;
                session.close(CloseCode::Normal.code(), b"");
                ending.clean = true;
                ending.reason = "client_finished";
                return ending;
            }
            Next::Read(Err(_)) => {
                // The stream failed because the session is ending: learn how (a close
                // with code 0 is a clean leave, rule 6), waiting briefly for the verdict.
                let end = or(async { Some(session.closed().await) }, async {
                    glommio::timer::sleep(Duration::from_secs(1)).await;
                    None
                })
                .await;
                ending.clean = matches!(end, Some(SessionEnd::PeerClosed { clean: true, .. }));
                ending.reason = if ending.clean {
                    "client_closed"
                } else {
                    "client_lost"
                };
                return ending;
            }
            Next::Cmd(first) => {
                // Take everything already waiting (bounded), then flush it in one go:
                // a burst of fan-out costs one pass, not one per frame.
                let mut next = first;
                for _ in 0..MAX_COMMANDS_PER_PASS {
                    match next {
                        Some(cmd) => on_command(actors, &mut sig, cmd, accepted_at),
                        None => {
                            // The meeting found our mailbox full and let go of it.
                            sig.close(CloseCode::SlowConsumer);
                            break;
                        }
                    }
                    match futures_lite::future::poll_once(mailbox.recv()).await {
                        Some(cmd) => next = cmd,
                        None => break,
                    }
                }
            }
        }
    }
}

/// A command from the meeting: queue a frame on the session, or close it.
fn on_command(actors: &Actors, sig: &mut Session, cmd: ConnCmd, accepted_at: Instant) {
    match cmd {
        ConnCmd::Frame {
            frame,
            join_response,
        } => {
            if join_response {
                actors
                    .metrics()
                    .join_duration
                    .observe(accepted_at.elapsed().as_secs_f64());
            }
            // A full outbound queue makes poll_close report SlowConsumer at once.
            let _ = sig.send_frame(frame);
        }
        ConnCmd::Close(code) => sig.close(code),
    }
}

/// Write everything the session has queued. A write that stalls on the client's flow
/// control for too long means a client that stopped reading.
async fn flush(sig: &mut Session, stream: &mut WtStream) -> Result<(), &'static str> {
    while let Some(buf) = sig.poll_transmit() {
        let n = buf.len();
        let wrote = or(async { Some(stream.write_all(buf).await) }, async {
            glommio::timer::sleep(WRITE_STALL_LIMIT).await;
            None
        })
        .await;
        match wrote {
            Some(Ok(())) => sig.advance_transmit(n),
            Some(Err(_)) => return Err("write_failed"),
            None => return Err("slow_consumer"),
        }
    }
    Ok(())
}

async fn on_event(
    actors: &Rc<Actors>,
    sig: &mut Session,
    key: ConnKey,
    ending: &mut Ending,
    event: SessionEvent,
    received_at: Instant,
) {
    match event {
        SessionEvent::Join { request, .. } => {
            let claims = match verify(actors, &request.join_token, &request.meeting_id).await {
                Ok(c) => c,
                Err(reason) => {
                    tracing::info!(conn = key.conn, reason, "join refused: token");
                    actors.count_join("unauthorized");
                    sig.fail(
                        ErrorCode::Unauthorized,
                        CLIENT_ERROR_MESSAGE,
                        CloseCode::Unauthorized,
                    );
                    return;
                }
            };
            let identity = JoinIdentity {
                sub: claims.sub,
                role: match claims.role {
                    TokenRole::Host => Role::Host,
                    TokenRole::Participant => Role::Participant,
                },
                name: claims.name.unwrap_or_default(),
            };
            let meeting_id = request.meeting_id.clone();
            let cmd = MeetingCmd::Join {
                conn: key,
                identity,
                request: Box::new(request),
                received_at,
            };
            match actors.route_meeting(cmd) {
                Ok(()) => ending.meeting_id = Some(meeting_id),
                Err(_) => {
                    actors.count_join("error");
                    sig.fail(
                        ErrorCode::CapacityExceeded,
                        "the meeting's shard is overloaded; retry",
                        CloseCode::Capacity,
                    );
                }
            }
        }
        SessionEvent::Message(msg) => {
            actors.count_client_message(msg.kind());
            let Some(meeting_id) = ending.meeting_id.clone() else {
                return;
            };
            let cmd = MeetingCmd::Message {
                conn: key,
                meeting_id,
                msg,
                received_at,
            };
            if actors.route_meeting(cmd).is_err() {
                // Counted in mc_messages_dropped_total; the client is told.
                let _ = sig.send(&ServerMessage::error(
                    ErrorCode::InternalError,
                    "server busy: message dropped, please retry",
                ));
            }
        }
    }
}

/// Verify a join token, reloading keys once on an unknown `kid`. The error is the
/// precise reason (logs, metric label); the client only ever gets the generic text.
async fn verify(
    actors: &Rc<Actors>,
    token: &str,
    meeting_id: &str,
) -> Result<jwt::VerifiedClaims, &'static str> {
    let first = actors
        .verifier
        .borrow_mut()
        .verify(token, meeting_id, SystemTime::now());
    let result = match first {
        Err(e) if e.is_unknown_kid() => {
            let (store, seen) = {
                let v = actors.verifier.borrow();
                (v.store().clone(), v.generation())
            };
            store.request_refresh();
            let deadline = Instant::now() + UNKNOWN_KID_WAIT;
            while store.generation() == seen && Instant::now() < deadline {
                glommio::timer::sleep(Duration::from_millis(20)).await;
            }
            actors
                .verifier
                .borrow_mut()
                .verify(token, meeting_id, SystemTime::now())
        }
        other => other,
    };
    let (res, reason) = jwt::metric_labels(&result);
    actors.count_jwt(res, reason);
    result.map_err(|e| e.reason())
}
