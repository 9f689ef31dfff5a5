//! Micro-benchmarks of the per-message work: signaling codec encode/decode, one meeting
//! fan-out step, JWT verification and the session binding-token HMAC.
//! (The cross-shard hop is `benches/mesh_hop.rs`.)
//!
//! Run: `cargo bench -p mc-bench --bench micro` (`-- --quick` for a short run).
//! Each figure is the median of RUNS runs with the spread (min–max) across runs.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mc_service::auth::binding::{BindingSecret, MeetingBindingKey};
use mc_service::auth::jwt::{Role, VerifierConfig};
use mc_service::auth::{DevKeys, JwtVerifier};
use mc_service::meeting::{
    ConnKey, JoinIdentity, JoinOutcome, Meeting, MeetingConfig, Outbound, Role as MRole,
};
use mc_service::signaling::codec::{encode_frame, FrameDecoder};
use mc_service::signaling::proto::{
    client_message, pb, server_message, ClientMessage, ServerMessage,
};
use mc_service::signaling::session::{Session, SessionConfig, SessionEvent};

/// Time `iters` calls of `f`, `runs` times; returns (median, min, max) ns per call.
fn measure(runs: usize, iters: u64, mut f: impl FnMut()) -> (f64, f64, f64) {
    let mut per_call: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    per_call.sort_by(|a, b| a.total_cmp(b));
    (per_call[runs / 2], per_call[0], per_call[runs - 1])
}

fn report(name: &str, (median, lo, hi): (f64, f64, f64)) {
    let fmt = |ns: f64| {
        if ns >= 1000.0 {
            format!("{:.2} µs", ns / 1000.0)
        } else {
            format!("{ns:.0} ns")
        }
    };
    println!(
        "{name:<44} median {:>10}   spread {} – {}",
        fmt(median),
        fmt(lo),
        fmt(hi)
    );
}

/// Participant `i` (user `user-i`, on connection `i`) joins `meeting`; returns its
/// connection.
fn join(meeting: &mut Meeting, meeting_id: &str, i: u64, now: Instant) -> ConnKey {
    let conn = ConnKey { shard: 0, conn: i };
    let _ = join_as(meeting, meeting_id, conn, &format!("user-{i}"), now);
    conn
}

/// The JoinResponse `meeting` queued for `conn`, if any; drains everything queued.
fn take_join_response(meeting: &mut Meeting, conn: ConnKey) -> Option<pb::JoinResponse> {
    let mut found = None;
    while let Some(out) = meeting.poll_outbound() {
        if let Outbound::Send { to, msg } = out {
            if let (true, Some(server_message::Message::JoinResponse(r))) =
                (to == conn, &msg.message)
            {
                found = Some(r.clone());
            }
        }
    }
    found
}

/// User `sub` joins `meeting` on `conn`.
fn join_as(
    meeting: &mut Meeting,
    meeting_id: &str,
    conn: ConnKey,
    sub: &str,
    now: Instant,
) -> Result<JoinOutcome, mc_service::meeting::MeetingError> {
    let request = pb::JoinRequest {
        meeting_id: meeting_id.into(),
        ..Default::default()
    };
    join_with(meeting, conn, sub, request, now)
}

/// User `sub` sends `request` to `meeting` on `conn` (a recovery when it carries a
/// correlation id and binding token).
fn join_with(
    meeting: &mut Meeting,
    conn: ConnKey,
    sub: &str,
    request: pb::JoinRequest,
    now: Instant,
) -> Result<JoinOutcome, mc_service::meeting::MeetingError> {
    let identity = JoinIdentity {
        sub: sub.into(),
        role: MRole::Participant,
        name: format!("User {sub}"),
    };
    meeting.handle_join(now, conn, identity, request)
}

/// A grid layout subscription with `config`.
fn subscribe(config: pb::LayoutConfig) -> ClientMessage {
    ClientMessage::of(client_message::Message::SubscribeToLayout(
        pb::SubscribeToLayout {
            layout_type: pb::LayoutType::Grid as i32,
            config: Some(config),
            stream_ids: vec![],
        },
    ))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 3 } else { 9 };
    let scale = if quick { 1 } else { 10 };
    println!("micro: {runs} runs each (median and spread of ns per operation)");

    // Codec: a typical client message (a mute toggle) and a roster-sized server message.
    let mute = ClientMessage::of(client_message::Message::MuteRequest(pb::MuteRequest {
        audio_muted: true,
        video_muted: false,
    }));
    let mut buf = Vec::with_capacity(256);
    report(
        "codec: encode MuteRequest frame",
        measure(runs, 200_000 * scale, || {
            buf.clear();
            encode_frame(black_box(&mute), &mut buf, 1 << 16).unwrap();
        }),
    );
    let mut frames = Vec::new();
    for _ in 0..64 {
        encode_frame(&mute, &mut frames, 1 << 16).unwrap();
    }
    let mut dec = FrameDecoder::new(1 << 16);
    report("codec: decode MuteRequest frame (64 per push)", {
        let (m, lo, hi) = measure(runs, 5_000 * scale, || {
            dec.push(black_box(&frames));
            while let Ok(Some(m)) = dec.next_message::<ClientMessage>() {
                black_box(m);
            }
        });
        (m / 64.0, lo / 64.0, hi / 64.0)
    });

    // One fan-out step: a self-mute in a 100-participant meeting, through the state
    // machine and out of poll_outbound (100 recipients), plus encoding it once. The
    // clock stands still, so the meeting's broadcast budget (and one user's share of it)
    // is lifted: with the defaults all but the first 25 mutes would be refusals.
    let secret = BindingSecret::from_bytes(vec![7u8; 32]).unwrap();
    let now = Instant::now();
    let unbudgeted = MeetingConfig {
        broadcast_rate: u32::MAX,
        broadcast_burst: u32::MAX,
        user_share_divisor: 1,
        ..MeetingConfig::default()
    };
    let mut meeting = Meeting::new(
        "bench",
        unbudgeted.clone(),
        MeetingBindingKey::derive(&secret, "bench"),
        now,
    );
    for i in 0..100u64 {
        join(&mut meeting, "bench", i, now);
    }
    while meeting.poll_outbound().is_some() {}
    let mut toggle = false;
    report(
        "meeting: mute fan-out to 100 (handle + drain)",
        measure(runs, 5_000 * scale, || {
            toggle = !toggle;
            let msg = ClientMessage::of(client_message::Message::MuteRequest(pb::MuteRequest {
                audio_muted: toggle,
                video_muted: false,
            }));
            meeting
                .handle_message(now, ConnKey { shard: 0, conn: 0 }, msg)
                .unwrap();
            let mut first: Option<Arc<ServerMessage>> = None;
            while let Some(out) = meeting.poll_outbound() {
                if let mc_service::meeting::Outbound::Send { msg, .. } = out {
                    if first.is_none() {
                        buf.clear();
                        encode_frame(&*msg, &mut buf, 1 << 16).unwrap();
                        first = Some(msg);
                    }
                }
            }
            black_box(first);
        }),
    );
    assert_eq!(
        meeting.stats().broadcasts_refused,
        0,
        "the fan-out step was refused"
    );

    // What one request can make the meeting compute: an UpdateLayout of a 2 × 2 grid
    // with 256 pinned and 256 excluded user ids (the most a message may carry), in the
    // same meeting of 100, answered with the subscriber's new assignments.
    let layout = |pinned: Vec<u64>| pb::LayoutConfig {
        rows: 2,
        columns: 2,
        pinned_users: pinned.clone(),
        excluded_users: pinned.iter().map(|u| u + 1_000).collect(),
        ..Default::default()
    };
    let subscriber = ConnKey { shard: 0, conn: 1 };
    meeting
        .handle_message(now, subscriber, subscribe(layout(vec![])))
        .unwrap();
    while meeting.poll_outbound().is_some() {}
    let mut flip = 0u64;
    report(
        "meeting: UpdateLayout, 256 pinned + 256 excluded, roster of 100",
        measure(runs, 2_000 * scale, || {
            flip ^= 1;
            let pinned = (flip..flip + 256).collect();
            let msg = ClientMessage::of(client_message::Message::UpdateLayout(pb::UpdateLayout {
                new_config: Some(layout(pinned)),
            }));
            meeting.handle_message(now, subscriber, msg).unwrap();
            while let Some(out) = meeting.poll_outbound() {
                black_box(out);
            }
        }),
    );

    // One user holds 99 seats and pins itself 256 times in one of their layouts; its
    // seats publish nothing, so none fills a slot, and another user publishes a
    // camera. Each computation of that layout walks the user's seats once per pin kept.
    let mut hogged = Meeting::new(
        "hogged",
        unbudgeted.clone(),
        MeetingBindingKey::derive(&secret, "hogged"),
        now,
    );
    let camera = join(&mut hogged, "hogged", 0, now);
    hogged
        .handle_message(
            now,
            camera,
            ClientMessage::of(client_message::Message::PublishStream(pb::PublishStream {
                stream_id: "cam-0".into(),
                stream_type: pb::StreamType::VideoCamera as i32,
                ..Default::default()
            })),
        )
        .unwrap();
    let mut hog_uid = 0;
    for i in 1..100u64 {
        let conn = ConnKey { shard: 0, conn: i };
        let joined = join_as(&mut hogged, "hogged", conn, "hog", now);
        assert!(matches!(joined, Ok(JoinOutcome::Joined)), "{joined:?}");
        hog_uid = take_join_response(&mut hogged, conn)
            .expect("a join response")
            .user_id;
    }
    let hog = ConnKey { shard: 0, conn: 1 };
    let pinning_itself = |max_streams: u32| pb::LayoutConfig {
        max_streams,
        pinned_users: vec![hog_uid; 256],
        ..Default::default()
    };
    hogged
        .handle_message(now, hog, subscribe(pinning_itself(64)))
        .unwrap();
    while hogged.poll_outbound().is_some() {}
    let mut wide = false;
    report(
        "meeting: UpdateLayout, one user pinned 256 times, 99 seats",
        measure(runs, 2_000 * scale, || {
            wide = !wide;
            let msg = ClientMessage::of(client_message::Message::UpdateLayout(pb::UpdateLayout {
                new_config: Some(pinning_itself(if wide { 64 } else { 63 })),
            }));
            hogged.handle_message(now, hog, msg).unwrap();
            while let Some(out) = hogged.poll_outbound() {
                black_box(out);
            }
        }),
    );

    // Layouts recomputed for every subscriber when a best stream changes: a meeting of
    // 1,000, each publishing a camera and subscribed to a 5 × 5 grid; one of them
    // publishes its stream again as a screen, then as a camera (each PublishStream
    // changes its best stream).
    let big = MeetingConfig {
        max_participants: 1_000,
        ..unbudgeted
    };
    let mut grid = Meeting::new("grid", big, MeetingBindingKey::derive(&secret, "grid"), now);
    let publish = |id: &str, t: pb::StreamType| {
        ClientMessage::of(client_message::Message::PublishStream(pb::PublishStream {
            stream_id: id.into(),
            stream_type: t as i32,
            ..Default::default()
        }))
    };
    let mut recovering = None;
    for i in 0..1_000u64 {
        let conn = join(&mut grid, "grid", i, now);
        let response = take_join_response(&mut grid, conn);
        if i == 997 {
            recovering = response;
        }
        let _ = grid.handle_message(
            now,
            conn,
            publish(&format!("cam-{i}"), pb::StreamType::VideoCamera),
        );
        let _ = grid.handle_message(
            now,
            conn,
            subscribe(pb::LayoutConfig {
                rows: 5,
                columns: 5,
                ..Default::default()
            }),
        );
        while grid.poll_outbound().is_some() {}
    }
    assert_eq!(grid.participant_count(), 1_000, "the grid meeting is full");
    let sharer = ConnKey {
        shard: 0,
        conn: 500,
    };
    let mut sharing = false;
    report(
        "meeting: best stream changed, 1,000 grid subscribers",
        measure(runs, 20 * scale, || {
            sharing = !sharing;
            // The same stream published again as a screen, then as a camera.
            let t = if sharing {
                pb::StreamType::VideoScreen
            } else {
                pb::StreamType::VideoCamera
            };
            let msg = publish("cam-500", t);
            grid.handle_message(now, sharer, msg).unwrap();
            while let Some(out) = grid.poll_outbound() {
                black_box(out);
            }
        }),
    );

    // One subscriber of the same meeting changes its grid (5 × 5, then 4 × 4): only its
    // own layout is computed again.
    let mut small = false;
    report(
        "meeting: UpdateLayout, 1,000 grid subscribers",
        measure(runs, 200 * scale, || {
            small = !small;
            let side = if small { 4 } else { 5 };
            let msg = ClientMessage::of(client_message::Message::UpdateLayout(pb::UpdateLayout {
                new_config: Some(pb::LayoutConfig {
                    rows: side,
                    columns: side,
                    ..Default::default()
                }),
            }));
            grid.handle_message(now, sharer, msg).unwrap();
            while let Some(out) = grid.poll_outbound() {
                black_box(out);
            }
        }),
    );

    // A participant of the same meeting recovers (rule 7) on a new connection, again
    // and again, each time with the binding token the last recovery gave it: each
    // recovery sends it the whole roster. The clock stands still, so past the
    // participant's recoveries the rest are refused.
    let recovering = recovering.expect("a join response");
    let correlation_id = recovering.correlation_id;
    let mut token = recovering.binding_token;
    let mut recovered = 0u64;
    let mut recovery_conn = 20_000u64;
    report(
        "meeting: recovery in a loop, 1,000 grid subscribers",
        measure(runs, 20 * scale, || {
            recovery_conn += 1;
            let conn = ConnKey {
                shard: 0,
                conn: recovery_conn,
            };
            let recovery = pb::JoinRequest {
                meeting_id: "grid".into(),
                correlation_id: correlation_id.clone(),
                binding_token: token.clone(),
                ..Default::default()
            };
            let outcome = join_with(&mut grid, conn, "user-997", recovery, now);
            if matches!(outcome, Ok(JoinOutcome::Recovered)) {
                recovered += 1;
            }
            if let Some(r) = take_join_response(&mut grid, conn) {
                token = r.binding_token;
            }
        }),
    );
    println!(
        "  ({recovered} of {} timed attempts recovered)",
        runs as u64 * 20 * scale
    );

    // A participant with no stream joins the same meeting and leaves again (a seat is
    // made for it first): no one's layout can change. A second later each time, so the
    // user's joins stay within its rate.
    let leaver = ConnKey {
        shard: 0,
        conn: 999,
    };
    grid.handle_disconnect(now, leaver, true).unwrap();
    while grid.poll_outbound().is_some() {}
    let mut at = now;
    let mut next_conn = 10_000u64;
    report(
        "meeting: join and leave without streams, 1,000 grid subscribers",
        measure(runs, 20 * scale, || {
            at += Duration::from_secs(1);
            next_conn += 1;
            let conn = ConnKey {
                shard: 0,
                conn: next_conn,
            };
            let joined = join_as(&mut grid, "grid", conn, "churn", at);
            assert!(matches!(joined, Ok(JoinOutcome::Joined)), "{joined:?}");
            grid.handle_disconnect(at, conn, true).unwrap();
            while let Some(out) = grid.poll_outbound() {
                black_box(out);
            }
        }),
    );

    // One participant of the meeting is in its grace period (its connection dropped):
    // another one's quality report, which changes nothing for anyone.
    let dropped = ConnKey {
        shard: 0,
        conn: 998,
    };
    grid.handle_disconnect(at, dropped, false).unwrap();
    while grid.poll_outbound().is_some() {}
    let quality = ClientMessage::of(client_message::Message::StreamQualityUpdate(
        pb::StreamQualityUpdate {
            stream_id: "cam-1".into(),
            available_bitrate: 1_000_000,
            packet_loss: 0.01,
            rtt_ms: 40,
        },
    ));
    report(
        "meeting: quality update, 1,000 participants, one in grace",
        measure(runs, 2_000 * scale, || {
            grid.handle_message(at, sharer, quality.clone()).unwrap();
            while let Some(out) = grid.poll_outbound() {
                black_box(out);
            }
        }),
    );

    // A host-muted participant's unmute request, refused by its share of the budget, in
    // a meeting of 1,000 whose one host joined last: the refusal is decided before the
    // roster is walked for hosts.
    let asks = MeetingConfig {
        max_participants: 1_000,
        ..MeetingConfig::default()
    };
    let mut asking = Meeting::new(
        "asks",
        asks,
        MeetingBindingKey::derive(&secret, "asks"),
        now,
    );
    let asker = join(&mut asking, "asks", 0, now);
    let mut asker_id = String::new();
    while let Some(out) = asking.poll_outbound() {
        if let mc_service::meeting::Outbound::Send { to, msg } = out {
            if let Some(server_message::Message::JoinResponse(r)) = &msg.message {
                if to == asker {
                    asker_id.clone_from(&r.participant_id);
                }
            }
        }
    }
    for i in 1..999u64 {
        join(&mut asking, "asks", i, now);
    }
    let host = ConnKey {
        shard: 0,
        conn: 999,
    };
    let identity = JoinIdentity {
        sub: "host".into(),
        role: MRole::Host,
        name: "Host".into(),
    };
    let joined = asking.handle_join(
        now,
        host,
        identity,
        pb::JoinRequest {
            meeting_id: "asks".into(),
            ..Default::default()
        },
    );
    assert!(matches!(joined, Ok(JoinOutcome::Joined)), "{joined:?}");
    asking
        .handle_message(
            now,
            host,
            ClientMessage::of(client_message::Message::HostMuteRequest(
                pb::HostMuteRequest {
                    participant_id: asker_id,
                    audio_muted: true,
                    video_muted: false,
                    ..Default::default()
                },
            )),
        )
        .unwrap();
    while asking.poll_outbound().is_some() {}
    let ask = ClientMessage::of(client_message::Message::UnmuteRequest(pb::UnmuteRequest {
        request_audio: true,
        request_video: false,
        participant_id: String::new(),
    }));
    // The clock stands still: the user's share is spent after its burst.
    for _ in 0..100 {
        asking.handle_message(now, asker, ask.clone()).unwrap();
    }
    while asking.poll_outbound().is_some() {}
    let refused = asking.stats().broadcasts_refused;
    report(
        "meeting: unmute request refused, 1,000, host last",
        measure(runs, 20_000 * scale, || {
            asking.handle_message(now, asker, ask.clone()).unwrap();
            while let Some(out) = asking.poll_outbound() {
                black_box(out);
            }
        }),
    );
    assert_eq!(
        asking.stats().broadcasts_refused - refused,
        runs as u64 * 20_000 * scale,
        "every timed request was refused"
    );

    // A hostile client's frames of empty list entries (two bytes each on the wire, a
    // struct each decoded): a 64 KiB MediaConnectionUpdate of empty statuses to a joined
    // session, which refuses it; and a second join with 30,000 empty codec names.
    let unlimited = SessionConfig {
        rate_per_sec: u32::MAX,
        rate_burst: u32::MAX,
        ..SessionConfig::default()
    };
    let flood = |message: client_message::Message| {
        let mut frame = Vec::new();
        encode_frame(&ClientMessage::of(message), &mut frame, 1 << 16).unwrap();
        frame
    };
    let statuses = flood(client_message::Message::MediaConnectionUpdate(
        pb::MediaConnectionUpdate {
            statuses: vec![pb::MhConnectionStatus::default(); ((1 << 16) - 16) / 2],
        },
    ));
    let codecs = flood(client_message::Message::JoinRequest(pb::JoinRequest {
        meeting_id: "m".into(),
        join_token: "t".into(),
        capabilities: Some(pb::ParticipantCapabilities {
            video_codecs: vec![String::new(); 30_000],
            ..Default::default()
        }),
        ..Default::default()
    }));
    for (name, frame) in [
        ("session: 64 KiB of empty statuses, refused", &statuses),
        ("session: a second join, 30,000 codecs", &codecs),
    ] {
        let mut session = Session::new(unlimited.clone(), now);
        session.handle_bytes(now, &codecs);
        assert!(matches!(
            session.poll_event(),
            Some(SessionEvent::Join { .. })
        ));
        report(
            name,
            measure(runs, 200 * scale, || {
                session.handle_bytes(now, black_box(frame));
                while let Some(event) = session.poll_event() {
                    black_box(event);
                }
                session.discard_outbound();
            }),
        );
        assert!(!session.is_closing(), "{name}: the session stays");
    }

    // The HTTP/1 client's parser on a chunked response of 1-byte chunks (a GC may send
    // its body so): 64 KiB of body, fed in 8 KiB reads.
    let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..64 * 1024 {
        chunked.extend_from_slice(b"1\r\nx\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    report(
        "http1: 64 KiB body in 1-byte chunks, 8 KiB reads",
        measure(runs, 20 * scale, || {
            let mut parser = mc_service::http1::ResponseParser::new();
            let mut got = None;
            for read in chunked.chunks(8 * 1024) {
                if let Some(r) = parser.handle_data(read).unwrap() {
                    got = Some(r);
                }
            }
            assert_eq!(got.map(|r| r.body.len()), Some(64 * 1024));
        }),
    );

    // JWT verification (EdDSA) with the dev key set.
    let dir = std::env::temp_dir().join(format!("mc-micro-{}", std::process::id()));
    let keys = DevKeys::load_or_create(&dir).unwrap();
    let token = keys.mint_meeting_token(
        "bench",
        "alice",
        Role::Participant,
        SystemTime::now(),
        Duration::from_secs(3600),
    );
    let verifier = JwtVerifier::new(VerifierConfig::default(), Arc::new(keys.jwks()));
    report(
        "jwt: verify an EdDSA join token",
        measure(runs, 2_000 * scale, || {
            black_box(
                verifier
                    .verify(black_box(&token), "bench", SystemTime::now())
                    .unwrap(),
            );
        }),
    );
    let _ = std::fs::remove_dir_all(dir);

    // Binding tokens: derive the meeting key (once per meeting) and issue/verify one.
    report(
        "binding: derive meeting key (HKDF)",
        measure(runs, 20_000 * scale, || {
            black_box(MeetingBindingKey::derive(&secret, black_box("meeting-1")));
        }),
    );
    let key = MeetingBindingKey::derive(&secret, "meeting-1");
    let issued = key.issue("0190-corr", "participant-1", b"nonce-0001");
    report(
        "binding: issue + verify a token (HMAC)",
        measure(runs, 20_000 * scale, || {
            let t = key.issue("0190-corr", "participant-1", b"nonce-0001");
            black_box(key.verify("0190-corr", "participant-1", b"nonce-0001", black_box(&t)));
        }),
    );
    black_box(issued);
}
