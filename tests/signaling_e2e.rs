//! Signaling end to end: the real binary with 2 shards on loopback and real
//! WebTransport clients (wtransport over quinn). Participants of one meeting are spread
//! over both shards; the meeting lives on one of them.

mod harness;

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use harness::client::{error_code, runtime, SigClient, M};
use harness::Server;
use mc_service::auth::jwt::Role;
use mc_service::auth::DevKeys;
use mc_service::signaling::proto::{client_message as C, pb};

const UNAUTHORIZED: i32 = pb::ErrorCode::Unauthorized as i32;

fn token(keys: &DevKeys, meeting: &str, user: &str, role: Role) -> String {
    keys.mint_meeting_token(
        meeting,
        user,
        role,
        SystemTime::now(),
        Duration::from_secs(600),
    )
}

fn shard_connections(server: &Server) -> Vec<i64> {
    let (_, _, body) = server.get("/metrics");
    (0..2)
        .map(|s| {
            let prefix = format!("mc_connections_active{{shard=\"{s}\"}} ");
            body.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        })
        .collect()
}

/// Sum of every series of `name` whose line contains all of `labels`.
fn metric_with(server: &Server, name: &str, labels: &[&str]) -> f64 {
    let (_, _, body) = server.get("/metrics");
    body.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|lb| l.contains(lb)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn metric(server: &Server, series: &str) -> f64 {
    let (_, _, body) = server.get("/metrics");
    body.lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn three_participants_across_two_shards() {
    let server = Server::start_dev(&["--shards", "2", "--disconnect-grace-secs", "20"]);
    let keys = DevKeys::load_or_create(&server.dev_dir).unwrap();
    let url = format!("https://{}/", server.webtransport);
    let meeting = "e2e-meeting";
    runtime().block_on(async {
        // Alice (host) joins first: nobody else is there.
        let mut alice = SigClient::connect(&url).await;
        let r = alice.join(meeting, &token(&keys, meeting, "alice", Role::Host), "Alice").await;
        let Some(M::JoinResponse(ar)) = r.message else { panic!("{r:?}") };
        assert!(ar.existing_participants.is_empty());
        assert!(!ar.binding_token.is_empty() && !ar.correlation_id.is_empty());

        // Bob and Carol; keep opening connections until both shards hold some of ours.
        let mut bob = SigClient::connect(&url).await;
        let r = bob.join(meeting, &token(&keys, meeting, "bob", Role::Participant), "Bob").await;
        let Some(M::JoinResponse(br)) = r.message else { panic!("{r:?}") };
        assert_eq!(br.existing_participants.len(), 1);
        assert_eq!(br.existing_participants[0].participant_id, ar.participant_id);
        alice.expect("bob joined", |m| matches!(m, M::ParticipantJoined(j)
            if j.participant.as_ref().unwrap().participant_id == br.participant_id)).await;

        let mut carol = SigClient::connect(&url).await;
        let r = carol.join(meeting, &token(&keys, meeting, "carol", Role::Participant), "Carol").await;
        let Some(M::JoinResponse(cr)) = r.message else { panic!("{r:?}") };
        assert_eq!(cr.existing_participants.len(), 2);
        for c in [&mut alice, &mut bob] {
            c.expect("carol joined", |m| matches!(m, M::ParticipantJoined(_))).await;
        }
        let mut extra = Vec::new();
        for i in 0..12 {
            let per_shard = shard_connections(&server);
            if per_shard.iter().all(|&c| c > 0) {
                break;
            }
            let mut c = SigClient::connect(&url).await;
            let user = format!("extra{i}");
            c.join(meeting, &token(&keys, meeting, &user, Role::Participant), &user).await;
            extra.push(c);
        }
        let per_shard = shard_connections(&server);
        assert!(per_shard.iter().all(|&c| c > 0), "participants on both shards: {per_shard:?}");
        for c in [&mut alice, &mut bob, &mut carol] {
            c.received.clear();
        }

        // Self mute: everyone (the subject included) gets the full flags.
        bob.send(C::Message::MuteRequest(pb::MuteRequest { audio_muted: true, video_muted: false })).await;
        for c in [&mut alice, &mut bob, &mut carol] {
            c.expect("bob muted", |m| matches!(m, M::ParticipantMuteUpdate(u)
                if u.participant_id == br.participant_id && u.audio_self_muted)).await;
        }

        // Host mute: only a host may; it is enforced and names the host.
        bob.send(C::Message::HostMuteRequest(pb::HostMuteRequest {
            participant_id: cr.participant_id.clone(), audio_muted: true, video_muted: false, reason: String::new(),
        })).await;
        bob.expect("forbidden", |m| error_code(m) == Some(pb::ErrorCode::Forbidden as i32)).await;
        alice.send(C::Message::HostMuteRequest(pb::HostMuteRequest {
            participant_id: cr.participant_id.clone(), audio_muted: true, video_muted: false, reason: "noise".into(),
        })).await;
        for c in [&mut alice, &mut bob, &mut carol] {
            c.expect("carol host-muted", |m| matches!(m, M::ParticipantMuteUpdate(u)
                if u.participant_id == cr.participant_id && u.audio_host_muted
                    && u.host_muted_by == ar.participant_id)).await;
        }
        // Carol asks to be unmuted: forwarded to the host with her id filled in.
        carol.send(C::Message::UnmuteRequest(pb::UnmuteRequest {
            request_audio: true, request_video: false, participant_id: String::new(),
        })).await;
        alice.expect("unmute request", |m| matches!(m, M::UnmuteRequest(u)
            if u.participant_id == cr.participant_id)).await;

        // Publish a stream; everyone hears of it.
        carol.send(C::Message::PublishStream(pb::PublishStream {
            stream_id: "cam-1".into(),
            stream_type: pb::StreamType::VideoCamera as i32,
            metadata: Some(pb::StreamMetadata { codec: "vp8".into(), max_bitrate: 1_000_000, video: None }),
        })).await;
        for c in [&mut alice, &mut bob] {
            c.expect("stream published", |m| matches!(m, M::StreamPublished(p)
                if p.participant_id == cr.participant_id)).await;
        }

        // A layout subscription yields assignments including carol's camera.
        alice.send(C::Message::SubscribeToLayout(pb::SubscribeToLayout {
            layout_type: pb::LayoutType::Grid as i32,
            config: Some(pb::LayoutConfig { rows: 2, columns: 2, ..Default::default() }),
            stream_ids: vec![],
        })).await;
        alice.expect("assignments", |m| matches!(m, M::StreamAssignments(a)
            if a.assignments.iter().any(|s| s.user_id == cr.user_id))).await;

        // Carol's connection drops; nobody is told; she recovers with her binding token.
        carol.crash();
        alice.expect_none(Duration::from_millis(700), "a leave during grace", |m| matches!(m, M::ParticipantLeft(_))).await;
        let mut carol2 = SigClient::connect(&url).await;
        let r = carol2.join_with(pb::JoinRequest {
            meeting_id: meeting.into(),
            join_token: token(&keys, meeting, "carol", Role::Participant),
            participant_name: "Carol".into(),
            correlation_id: cr.correlation_id.clone(),
            binding_token: cr.binding_token.clone(),
            ..Default::default()
        }).await;
        let Some(M::JoinResponse(cr2)) = r.message else { panic!("{r:?}") };
        assert_eq!(cr2.participant_id, cr.participant_id);
        assert_eq!(cr2.user_id, cr.user_id);
        assert_ne!(cr2.binding_token, cr.binding_token, "the nonce rotates");
        alice.expect_none(Duration::from_millis(300), "join/leave for a recovery",
            |m| matches!(m, M::ParticipantLeft(_) | M::ParticipantJoined(_))).await;

        // The old binding token does not work twice.
        let mut replay = SigClient::connect(&url).await;
        let r = replay.join_with(pb::JoinRequest {
            meeting_id: meeting.into(),
            join_token: token(&keys, meeting, "carol", Role::Participant),
            correlation_id: cr.correlation_id.clone(),
            binding_token: cr.binding_token.clone(),
            ..Default::default()
        }).await;
        assert_eq!(r.message.as_ref().and_then(error_code), Some(UNAUTHORIZED), "{r:?}");
        replay.expect_closed().await;

        // Bob leaves cleanly: the others get VOLUNTARY at once.
        bob.leave().await;
        for c in [&mut alice, &mut carol2] {
            c.expect("bob left", |m| matches!(m, M::ParticipantLeft(l)
                if l.participant_id == br.participant_id && l.reason == pb::LeaveReason::Voluntary as i32)).await;
        }
        for c in extra {
            c.leave().await;
        }
        carol2.leave().await;
        alice.leave().await;
    });
    // Everyone gone: the meeting is removed and connections return to zero.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let active = metric(&server, "mc_meetings_active");
        let conns = metric(&server, "mc_connections_active");
        if active == 0.0 && conns == 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "meetings {active} connections {conns}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(metric_with(&server, "mc_session_joins_total", &["status=\"success\""]) >= 3.0);
    assert!(metric_with(&server, "mc_session_joins_total", &["status=\"recovered\""]) >= 1.0);
    assert!(metric_with(&server, "mc_message_processing_duration_seconds_count", &[]) >= 5.0);
}

fn b64(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[test]
fn bad_tokens_are_refused_with_the_generic_error() {
    let server = Server::start_dev(&["--shards", "2"]);
    let keys = DevKeys::load_or_create(&server.dev_dir).unwrap();
    let other_dir = std::env::temp_dir().join(format!("mc-otherkey-{}", std::process::id()));
    let other = DevKeys::load_or_create(&other_dir).unwrap();
    let url = format!("https://{}/", server.webtransport);
    let m = "tok-meeting";
    let now = SystemTime::now();
    let good = token(&keys, m, "u", Role::Participant);
    let parts: Vec<&str> = good.split('.').collect();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    let mut tampered_claims = claims.clone();
    tampered_claims["role"] = "host".into();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            keys.mint_meeting_token(
                m,
                "u",
                Role::Participant,
                now - Duration::from_secs(7200),
                Duration::from_secs(60),
            ),
            "expired",
        ),
        (
            "unknown kid",
            other.mint_meeting_token(m, "u", Role::Participant, now, Duration::from_secs(60)),
            "unknown_kid",
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&serde_json::json!({"alg":"none","typ":"JWT","kid":keys.kid()})),
                parts[1]
            ),
            "bad_alg",
        ),
        (
            "wrong meeting",
            token(&keys, "another-meeting", "u", Role::Participant),
            "wrong_meeting",
        ),
        (
            "tampered payload",
            format!("{}.{}.{}", parts[0], b64(&tampered_claims), parts[2]),
            "bad_signature",
        ),
        ("garbage", "not-a-token".into(), "malformed"),
        ("oversize", "a".repeat(9000), "oversize"),
    ];
    runtime().block_on(async {
        for (what, tok, _) in &cases {
            let mut c = SigClient::connect(&url).await;
            let r = c.join(m, tok, "x").await;
            match &r.message {
                Some(M::Error(e)) => {
                    assert_eq!(e.code, UNAUTHORIZED, "{what}");
                    assert_eq!(
                        e.message, "invalid or expired token",
                        "{what}: generic text only"
                    );
                }
                other => panic!("{what}: {other:?}"),
            }
            c.expect_closed().await;
        }
    });
    let (_, _, body) = server.get("/metrics");
    for (what, _, reason) in &cases {
        assert!(
            body.contains(&format!("failure_reason=\"{reason}\"")),
            "{what}: no mc_jwt_validations_total reason {reason}"
        );
    }
    let _ = std::fs::remove_dir_all(other_dir);
}

#[test]
fn capacity_reached_is_capacity_exceeded_and_a_non_join_first_is_invalid() {
    let server = Server::start_dev(&["--shards", "2", "--capacity", "1"]);
    let keys = DevKeys::load_or_create(&server.dev_dir).unwrap();
    let url = format!("https://{}/", server.webtransport);
    runtime().block_on(async {
        let mut a = SigClient::connect(&url).await;
        let r = a
            .join("first", &token(&keys, "first", "a", Role::Participant), "a")
            .await;
        assert!(matches!(r.message, Some(M::JoinResponse(_))), "{r:?}");
        let mut b = SigClient::connect(&url).await;
        let r = b
            .join(
                "second",
                &token(&keys, "second", "b", Role::Participant),
                "b",
            )
            .await;
        assert_eq!(
            r.message.as_ref().and_then(error_code),
            Some(pb::ErrorCode::CapacityExceeded as i32)
        );
        b.expect_closed().await;
        // Joining the existing meeting still works.
        let mut c = SigClient::connect(&url).await;
        let r = c
            .join("first", &token(&keys, "first", "c", Role::Participant), "c")
            .await;
        assert!(matches!(r.message, Some(M::JoinResponse(_))), "{r:?}");

        // First frame not a join.
        let mut d = SigClient::connect(&url).await;
        d.send(C::Message::MuteRequest(pb::MuteRequest {
            audio_muted: true,
            video_muted: true,
        }))
        .await;
        let r = d.next(Duration::from_secs(5)).await.expect("answer");
        assert_eq!(
            r.message.as_ref().and_then(error_code),
            Some(pb::ErrorCode::InvalidRequest as i32)
        );
        d.expect_closed().await;

        // A zero-length frame is a protocol violation: the session closes.
        let mut e = SigClient::connect(&url).await;
        e.send_raw(&[0, 0, 0, 0]).await;
        e.expect_closed().await;
        a.leave().await;
        c.leave().await;
    });
}

#[test]
fn closing_the_session_with_code_zero_is_a_voluntary_leave_and_an_error_code_is_not() {
    let server = Server::start_dev(&["--shards", "2", "--disconnect-grace-secs", "2"]);
    let keys = DevKeys::load_or_create(&server.dev_dir).unwrap();
    let url = format!("https://{}/", server.webtransport);
    let m = "close-codes";
    runtime().block_on(async {
        let mut stay = SigClient::connect(&url).await;
        stay.join(m, &token(&keys, m, "stay", Role::Participant), "stay")
            .await;
        // Code 0: VOLUNTARY at once.
        let mut polite = SigClient::connect(&url).await;
        polite
            .join(m, &token(&keys, m, "polite", Role::Participant), "polite")
            .await;
        polite.conn.close(wtransport::VarInt::from_u32(0), b"bye");
        stay.expect("voluntary", |msg| {
            matches!(msg, M::ParticipantLeft(l)
            if l.reason == pb::LeaveReason::Voluntary as i32)
        })
        .await;
        // An error code: nothing during grace, then TIMEOUT.
        let mut rude = SigClient::connect(&url).await;
        rude.join(m, &token(&keys, m, "rude", Role::Participant), "rude")
            .await;
        stay.expect("rude joined", |msg| matches!(msg, M::ParticipantJoined(_)))
            .await;
        rude.crash();
        stay.expect_none(Duration::from_millis(1200), "leave during grace", |msg| {
            matches!(msg, M::ParticipantLeft(_))
        })
        .await;
        stay.expect("timeout leave", |msg| {
            matches!(msg, M::ParticipantLeft(l)
            if l.reason == pb::LeaveReason::Timeout as i32)
        })
        .await;
        stay.leave().await;
    });
}

/// Several seats of one `sub` share one user's part of their meeting's broadcast
/// budget, a quarter of it: past that share's burst a mute is answered INVALID_REQUEST,
/// applied nowhere and sent to no one, the session stays up, the refusal is counted, and
/// another user's mute still passes.
#[test]
fn a_meetings_broadcast_budget_refuses_past_its_burst_and_keeps_the_sender() {
    let server = Server::start_dev(&[
        "--shards",
        "2",
        "--meeting-broadcast-rate",
        "4",
        "--meeting-broadcast-burst",
        "8",
    ]);
    assert_eq!(
        metric_with(&server, "mc_refusals_total", &["reason=\"meeting_rate\""]),
        0.0
    );
    let keys = DevKeys::load_or_create(&server.dev_dir).unwrap();
    let url = format!("https://{}/", server.webtransport);
    let m = "budget";
    let is_update = |m: &M| matches!(m, M::ParticipantMuteUpdate(_));
    runtime().block_on(async {
        let mut honest = SigClient::connect(&url).await;
        let r = honest
            .join(m, &token(&keys, m, "honest", Role::Participant), "h")
            .await;
        let Some(M::JoinResponse(joined)) = r.message else {
            panic!("{r:?}")
        };
        let honest_update = |m: &M| {
            matches!(m, M::ParticipantMuteUpdate(u) if u.participant_id == joined.participant_id)
        };
        // Two seats of one sub, one token: a share of 1 a second, bursts of 2.
        let t = token(&keys, m, "many", Role::Participant);
        let mut a = SigClient::connect(&url).await;
        a.join(m, &t, "a").await;
        let mut b = SigClient::connect(&url).await;
        b.join(m, &t, "b").await;
        let mute = |on: bool| {
            C::Message::MuteRequest(pb::MuteRequest {
                audio_muted: on,
                video_muted: false,
            })
        };
        // Three back to back from the two seats (well within one token's refill of a
        // second): two pass.
        a.send(mute(true)).await;
        b.send(mute(false)).await;
        honest.expect("first update", is_update).await;
        honest.expect("second update", is_update).await;
        a.send(mute(false)).await;
        let M::Error(e) = a.expect("refusal", |m| matches!(m, M::Error(_))).await else {
            unreachable!()
        };
        assert_eq!(e.code, pb::ErrorCode::InvalidRequest as i32);
        assert_eq!(
            e.message,
            "user's share of the meeting message rate exceeded"
        );
        honest
            .expect_none(Duration::from_millis(300), "refused update", is_update)
            .await;
        // The meeting's budget has more than that user's share: the honest participant's
        // own mute passes and reaches the seats.
        honest.send(mute(true)).await;
        honest.expect("own update", honest_update).await;
        b.expect("honest update", honest_update).await;
        // A second later the share has one request again and `a` is still there.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        a.send(mute(false)).await;
        let M::ParticipantMuteUpdate(u) = honest.expect("update", is_update).await else {
            unreachable!()
        };
        assert!(!u.audio_self_muted);
        assert_eq!(
            metric_with(&server, "mc_refusals_total", &["reason=\"meeting_rate\""]),
            1.0
        );
        a.leave().await;
        b.leave().await;
        honest.leave().await;
    });
}

/// One token joining and leaving in a loop: each join and leave goes to everyone, so a
/// user's fresh joins are budgeted (as many as the meeting has seats, then one a second).
/// Past that the join is answered INVALID_REQUEST and closed, the refusal counted and, at
/// debug level, logged with its meeting; another user still joins.
#[test]
fn a_user_past_its_joins_is_refused_and_others_still_join() {
    let server = Server::start_dev_env(
        &["--shards", "2", "--max-participants-per-meeting", "3"],
        &[("RUST_LOG", "info,mc_service::meeting=debug")],
    );
    let keys = DevKeys::load_or_create(&server.dev_dir).unwrap();
    let url = format!("https://{}/", server.webtransport);
    let m = "churn";
    runtime().block_on(async {
        // Someone stays in the meeting, so it lives (and its budgets with it).
        let mut stay = SigClient::connect(&url).await;
        let r = stay
            .join(m, &token(&keys, m, "stay", Role::Participant), "s")
            .await;
        assert!(matches!(r.message, Some(M::JoinResponse(_))), "{r:?}");
        let t = token(&keys, m, "churn", Role::Participant);
        // Join and leave until refused: three joins at once, then one a second, so a
        // slow host that takes longer gets one more join per second it took.
        let started = std::time::Instant::now();
        let mut joined = 0u64;
        let e = loop {
            assert!(joined < 20, "never refused after {joined} joins");
            let mut s = SigClient::connect(&url).await;
            let r = s.join(m, &t, "c").await;
            match r.message {
                Some(M::JoinResponse(_)) => {
                    joined += 1;
                    s.leave().await;
                    stay.expect("leave", |m| matches!(m, M::ParticipantLeft(_)))
                        .await;
                }
                Some(M::Error(e)) => {
                    s.expect_closed().await;
                    break e;
                }
                other => panic!("{other:?}"),
            }
        };
        let refills = started.elapsed().as_secs() + 1;
        assert!(
            (3..=3 + refills).contains(&joined),
            "{joined} joins in {:?}",
            started.elapsed()
        );
        assert_eq!(e.code, pb::ErrorCode::InvalidRequest as i32);
        assert_eq!(e.message, "join rate limit exceeded");
        let mut other = SigClient::connect(&url).await;
        let r = other
            .join(m, &token(&keys, m, "other", Role::Participant), "o")
            .await;
        assert!(matches!(r.message, Some(M::JoinResponse(_))), "{r:?}");
        assert_eq!(
            metric_with(&server, "mc_refusals_total", &["reason=\"join_rate\""]),
            1.0
        );
        assert_eq!(
            metric_with(
                &server,
                "mc_session_joins_total",
                &["status=\"rate_limited\""]
            ),
            1.0
        );
        server.wait_for_log(
            "join refused: the user's joins are spent",
            Duration::from_secs(5),
        );
        assert!(
            server.log().contains("meeting_id=churn"),
            "{}",
            server.log()
        );
        other.leave().await;
        stay.leave().await;
    });
}

/// A client that stops acknowledging leaves its whole QUIC send window with the server,
/// so a shard's connections share its outbound budget for their windows: at 1 MiB, four
/// connections keep 256 KiB each, a fifth halves everyone's, and the window grows back
/// once they leave.
#[test]
fn the_send_window_shrinks_as_a_shard_fills_and_grows_back() {
    let server = Server::start_dev(&["--shards", "1", "--shard-outbound-max-bytes", "1048576"]);
    let url = format!("https://{}/", server.webtransport);
    let window =
        |server: &Server| metric_with(server, "mc_connection_send_window_bytes", &["shard=\"0\""]);
    let settles = |server: &Server, want: f64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while window(server) != want && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(window(server), want);
    };
    settles(&server, 262_144.0);
    runtime().block_on(async {
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(SigClient::connect(&url).await);
        }
        settles(&server, 262_144.0);
        clients.push(SigClient::connect(&url).await);
        settles(&server, 131_072.0);
        // Seven eighths of 1 MiB is 3.5 windows of 256 KiB: back at three connections.
        for c in clients.drain(..2) {
            c.crash();
        }
        settles(&server, 262_144.0);
        for c in clients {
            c.crash();
        }
    });
}

/// Serves `body` as the JWKS at `http://127.0.0.1:<port>/jwks.json` on a thread of its
/// own, for at most a minute; answers each request with the body current then.
fn serve_jwks(body: std::sync::Arc<std::sync::Mutex<String>>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let until = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < until {
            let Ok((mut stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let body = body.lock().unwrap().clone();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// An issuer that rotates its key under the same `kid`: the first token signed by the
/// new key fails against the old one as a bad signature, which asks for a reload as an
/// unknown `kid` does, and the join passes once the new key is loaded (rather than at
/// the next periodic fetch, minutes later).
#[test]
fn a_key_rotated_under_the_same_kid_is_loaded_for_the_first_join_it_signs() {
    use mc_service::auth::jwks::to_jwks_json;
    use mc_service::auth::jwt::{sign_token, TokenClaims};
    let old = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let new = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
    let jwks = std::sync::Arc::new(std::sync::Mutex::new(to_jwks_json(
        "k1",
        &old.verifying_key(),
    )));
    let jwks_url = serve_jwks(jwks.clone());
    let server = Server::start_dev(&[
        "--shards",
        "1",
        "--jwks-url",
        &jwks_url,
        "--jwks-refresh-min-interval-secs",
        "1",
    ]);
    let url = format!("https://{}/", server.webtransport);
    let m = "rotated-key";
    let mint = |key: &ed25519_dalek::SigningKey, user: &str| {
        let claims = TokenClaims::meeting(
            user,
            m,
            Role::Participant,
            SystemTime::now(),
            Duration::from_secs(60),
        );
        sign_token(key, "k1", &claims)
    };
    runtime().block_on(async {
        let mut before = SigClient::connect(&url).await;
        let r = before.join(m, &mint(&old, "a"), "a").await;
        assert!(
            matches!(r.message, Some(M::JoinResponse(_))),
            "the old key: {r:?}"
        );
        *jwks.lock().unwrap() = to_jwks_json("k1", &new.verifying_key());
        // Past the least time between two reloads.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let mut after = SigClient::connect(&url).await;
        let r = after.join(m, &mint(&new, "b"), "b").await;
        assert!(
            matches!(r.message, Some(M::JoinResponse(_))),
            "the new key under the same kid: {r:?}"
        );
    });
}
