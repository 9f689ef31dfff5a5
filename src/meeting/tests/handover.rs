//! Moving a meeting between MCs (docs/protocol.md rules 17–21): export, freeze, import,
//! recovery on the target, grace, refusals — with a fake clock.
use super::*;
use crate::auth::binding::BindingSecret;

fn secret() -> BindingSecret {
    BindingSecret::from_bytes(vec![42u8; 32]).unwrap()
}

fn left(msgs: &[S]) -> Vec<(String, i32)> {
    msgs.iter()
        .filter_map(|m| match m {
            S::ParticipantLeft(l) => Some((l.participant_id.clone(), l.reason)),
            _ => None,
        })
        .collect()
}

fn mute(audio: bool) -> client_message::Message {
    client_message::Message::MuteRequest(pb::MuteRequest {
        audio_muted: audio,
        video_muted: false,
    })
}

fn subscribe(max_streams: u32) -> client_message::Message {
    client_message::Message::SubscribeToLayout(pb::SubscribeToLayout {
        layout_type: 0,
        config: Some(pb::LayoutConfig {
            max_streams,
            pinned_users: vec![2],
            include_self: true,
            ..Default::default()
        }),
        stream_ids: vec![7, 8],
    })
}

/// A meeting with some of everything: host `a` (camera, self-muted audio, a layout),
/// `b` host-muted by `a` (screen share), `c` disconnected 10 s ago (in grace), and a
/// user `gone` who left (its user_id stays reserved, rule 9).
struct Rich {
    h: H,
    a: pb::JoinResponse,
    b: pb::JoinResponse,
    c: pb::JoinResponse,
}

fn rich() -> Rich {
    let mut h = H::new();
    let a = h.join(c(1), "a", Role::Host);
    let b = h.join(c(2), "b", Role::Participant);
    let cj = h.join(c(3), "c", Role::Participant);
    h.join(c(4), "gone", Role::Participant);
    h.m.handle_disconnect(h.now, c(4), true).unwrap();
    h.msg(c(1), publish("cam", pb::StreamType::VideoCamera));
    h.msg(c(2), publish("screen", pb::StreamType::VideoScreen));
    h.msg(c(1), mute(true));
    h.msg(c(1), subscribe(4));
    h.msg(
        c(1),
        client_message::Message::HostMuteRequest(pb::HostMuteRequest {
            participant_id: b.participant_id.clone(),
            audio_muted: true,
            video_muted: false,
            reason: String::new(),
        }),
    );
    h.m.handle_disconnect(h.now, c(3), false).unwrap();
    h.advance(Duration::from_secs(10));
    h.drain();
    Rich { h, a, b, c: cj }
}

/// `s` as the target will re-export it: everyone not connected, the connected ones
/// with the full grace.
fn as_imported(mut s: MeetingSnapshot, grace_ms: u64) -> MeetingSnapshot {
    for p in &mut s.participants {
        if p.connection == ConnectionSnapshot::Connected {
            p.connection = ConnectionSnapshot::Grace {
                remaining_ms: grace_ms,
            };
        }
    }
    s
}

/// A target MC holding `snapshot`, imported at a fresh fake clock.
fn target(snapshot: MeetingSnapshot) -> H {
    let t0 = Instant::now();
    let m = Meeting::import_at(
        snapshot,
        MeetingConfig::default(),
        &secret(),
        t0,
        1_800_000_000_000,
    )
    .expect("import");
    H { m, t0, now: t0 }
}

#[test]
fn export_import_round_trip_keeps_the_state() {
    let r = rich();
    let snap = r.h.m.export(r.h.now);
    assert_eq!(snap.version, SNAPSHOT_VERSION);
    assert_eq!(snap.meeting_id, MEETING);
    assert_eq!(snap.participants.len(), 3);
    assert_eq!(snap.user_ids.len(), 4, "the departed user keeps its id");
    assert_eq!(snap.next_user_id, 5);
    assert_eq!(snap.settings.disconnect_grace_ms, 30_000);
    let [a, b, cs] = &snap.participants[..] else {
        panic!("three participants")
    };
    assert_eq!(
        (a.participant_id.as_str(), a.role, a.name.as_str()),
        (r.a.participant_id.as_str(), Role::Host, "name-a")
    );
    assert_eq!(a.correlation_id, r.a.correlation_id);
    assert_eq!(a.joined_at, 1_700_000_000_000);
    assert_eq!(a.streams[0].stream_type, StreamKind::VideoCamera);
    assert!(a.mute.audio_self && !a.mute.audio_host);
    let layout = a.layout.as_ref().unwrap();
    assert_eq!(
        (layout.max_streams, &layout.pinned_users, &layout.stream_ids),
        (4, &vec![2], &vec![7, 8])
    );
    assert!(b.mute.audio_host && b.mute.host_muted_by == r.a.participant_id);
    assert_eq!(b.connection, ConnectionSnapshot::Connected);
    assert_eq!(
        cs.connection,
        ConnectionSnapshot::Grace {
            remaining_ms: 20_000
        }
    );
    // The token the source issued last is the one the snapshot binds.
    let nonce = a.nonce().unwrap();
    assert!(key_for(MEETING).verify(
        &a.correlation_id,
        &a.participant_id,
        &nonce,
        &r.a.binding_token
    ));

    // JSON round trip, then import and export again: the same state.
    let json = serde_json::to_string(&snap).unwrap();
    let back: MeetingSnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, snap);
    let digest = back.digest();
    let t = target(back);
    assert_eq!(t.m.imported_digest(), Some(digest));
    assert_eq!(r.h.m.imported_digest(), None);
    assert_eq!(t.m.participant_count(), 3);
    assert_eq!(t.m.connected_count(), 0);
    assert_eq!(t.m.export(t.now), as_imported(snap, 30_000));
    assert_eq!(t.m.stats().imported_participants, 3);
    // The earliest deadline is c's remaining grace.
    assert_eq!(t.m.poll_timeout(), Some(t.t0 + Duration::from_secs(20)));
}

#[test]
fn the_source_redirects_connected_participants_then_closes() {
    let mut r = rich();
    let now = r.h.now;
    r.h.m.begin_handover(now);
    r.h.m.end(
        now,
        EndReason::Handover {
            endpoint: "https://10.0.3.8:4433".into(),
            reason: RedirectReason::Draining,
        },
    );
    let out = r.h.drain();
    // Rule 17: RedirectToMc then close 0x103, for each connected participant, in order;
    // c (in grace) is carried over in grace and gets nothing.
    let mut expected = Vec::new();
    for conn in [c(1), c(2)] {
        expected.push(format!("send {conn:?}"));
        expected.push(format!("close {conn:?} 259 meeting_moved"));
    }
    let got: Vec<String> = out
        .iter()
        .map(|o| match o {
            Outbound::Send { to, msg } => {
                assert!(matches!(&msg.message, Some(S::RedirectToMc(rd))
                    if rd.new_mc_endpoint == "https://10.0.3.8:4433"
                        && rd.meeting_id == MEETING && rd.reason == "draining"));
                format!("send {to:?}")
            }
            Outbound::Close { to, code, reason } => {
                format!("close {to:?} {} {reason}", code.code())
            }
        })
        .collect();
    assert_eq!(got, expected);
    assert!(r.h.m.is_empty());
    assert_eq!(r.h.m.stats().handovers_completed, 1);

    // "rebalance" is carried as given, and the redirect is one shared message.
    let mut h = H::new();
    h.join(c(1), "a", Role::Participant);
    h.join(c(2), "b", Role::Participant);
    h.drain();
    h.m.end(
        h.now,
        EndReason::Handover {
            endpoint: "https://mc-c:4433".into(),
            reason: RedirectReason::Rebalance,
        },
    );
    let out = h.drain();
    let msgs: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Outbound::Send { msg, .. } => Some(msg),
            _ => None,
        })
        .collect();
    assert_eq!(msgs.len(), 2);
    assert!(Arc::ptr_eq(msgs[0], msgs[1]));
    assert!(matches!(&msgs[0].message, Some(S::RedirectToMc(rd)) if rd.reason == "rebalance"));
}

#[test]
fn recovery_on_the_target_restores_exactly() {
    let r = rich();
    let snap = r.h.m.export(r.h.now);
    let source_view = snap.clone();
    let mut t = target(snap);
    t.advance(Duration::from_secs(2));

    // a arrives first: everything is restored, nobody is told.
    let (outcome, out) = t.join_raw(
        c(11),
        "a",
        Role::Host,
        &r.a.correlation_id,
        &r.a.binding_token,
    );
    assert_eq!(outcome, JoinOutcome::Recovered);
    let ra = join_response(&out, c(11)).unwrap();
    assert_eq!(
        (
            ra.participant_id.as_str(),
            ra.user_id,
            ra.correlation_id.as_str()
        ),
        (
            r.a.participant_id.as_str(),
            r.a.user_id,
            r.a.correlation_id.as_str()
        )
    );
    assert_ne!(ra.binding_token, r.a.binding_token, "a new binding token");
    // b and c are present for a (not yet connected), with their streams.
    let others: Vec<&str> = ra
        .existing_participants
        .iter()
        .map(|p| p.participant_id.as_str())
        .collect();
    assert_eq!(
        others,
        [r.b.participant_id.as_str(), r.c.participant_id.as_str()]
    );
    assert_eq!(ra.existing_participants[0].streams[0].stream_id, "screen");
    assert_eq!(ra.existing_participants[0].name, "name-b");
    let mine = to(&out, c(11));
    // Mute flags (a's own self mute, b's host mute by a) and a's layout are re-sent.
    assert!(mine.iter().any(|m| matches!(m, S::ParticipantMuteUpdate(u)
        if u.participant_id == r.a.participant_id && u.audio_self_muted)));
    assert!(mine.iter().any(|m| matches!(m, S::ParticipantMuteUpdate(u)
        if u.participant_id == r.b.participant_id && u.audio_host_muted
            && u.host_muted_by == r.a.participant_id)));
    let assignments = mine
        .iter()
        .find_map(|m| match m {
            S::StreamAssignments(s) => Some(s.assignments.clone()),
            _ => None,
        })
        .expect("layout re-sent");
    // pinned user 2 (b, screen) first, then a itself (include_self), stream_ids kept.
    let slots: Vec<(u32, u64)> = assignments
        .iter()
        .map(|a| (a.stream_id, a.user_id))
        .collect();
    assert_eq!(slots, [(7, 2), (8, 1)]);
    assert!(closes(&out).is_empty());

    // b arrives: a sees no ParticipantJoined; b is still host-muted and a is still host.
    let (outcome, out) = t.join_raw(
        c(12),
        "b",
        Role::Participant,
        &r.b.correlation_id,
        &r.b.binding_token,
    );
    assert_eq!(outcome, JoinOutcome::Recovered);
    assert!(
        to(&out, c(11)).is_empty(),
        "rule 19: no leave/join for others"
    );
    let out = t.msg(
        c(12),
        client_message::Message::UnmuteRequest(pb::UnmuteRequest {
            request_audio: true,
            request_video: false,
            participant_id: String::new(),
        }),
    );
    assert!(
        matches!(&to(&out, c(11))[..], [S::UnmuteRequest(u)] if u.participant_id == r.b.participant_id)
    );

    // After the arrivals the target's state is the source's, connections aside.
    let now_view = t.m.export(t.now);
    for (got, want) in now_view.participants.iter().zip(&source_view.participants) {
        let mut got = got.clone();
        let mut want = want.clone();
        got.connection = ConnectionSnapshot::Connected;
        want.connection = ConnectionSnapshot::Connected;
        got.binding_nonce.clear();
        want.binding_nonce.clear();
        assert_eq!(got, want);
    }
    assert_eq!(now_view.user_ids, source_view.user_ids);
    // A new user on the target does not reuse a departed user's id (rule 9).
    let d = t.join(c(13), "d", Role::Participant);
    assert_eq!(d.user_id, 5);
    let gone = t.join(c(14), "gone", Role::Participant);
    assert_eq!(gone.user_id, 4);
}

#[test]
fn a_participant_that_never_arrives_times_out() {
    let r = rich();
    let mut t = target(r.h.m.export(r.h.now));
    t.join_raw(
        c(11),
        "a",
        Role::Host,
        &r.a.correlation_id,
        &r.a.binding_token,
    );
    t.drain();
    // c had 20 s of grace left; b was connected and gets the full 30 s.
    t.advance(Duration::from_millis(19_999));
    t.m.handle_timeout(t.now);
    assert!(t.drain().is_empty());
    t.advance(Duration::from_millis(1));
    t.m.handle_timeout(t.now);
    let out = t.drain();
    assert_eq!(
        left(&to(&out, c(11))),
        vec![(r.c.participant_id.clone(), pb::LeaveReason::Timeout as i32)]
    );
    t.advance(Duration::from_secs(10));
    t.m.handle_timeout(t.now);
    let out = t.drain();
    assert_eq!(
        left(&to(&out, c(11))),
        vec![(r.b.participant_id.clone(), pb::LeaveReason::Timeout as i32)]
    );
    assert_eq!(t.m.participant_count(), 1);
    // A token of someone who timed out is dead with it.
    let (outcome, _) = t.join_raw(
        c(12),
        "b",
        Role::Participant,
        &r.b.correlation_id,
        &r.b.binding_token,
    );
    assert_eq!(outcome, JoinOutcome::Refused(CloseCode::Unauthorized));
}

#[test]
fn forged_foreign_and_replayed_tokens_are_refused_on_the_target() {
    let mut r = rich();
    // a recovers once on the source: the token it got first is dead from then on.
    let (_, out) = r.h.join_raw(
        c(5),
        "a",
        Role::Host,
        &r.a.correlation_id,
        &r.a.binding_token,
    );
    let current = join_response(&out, c(5)).unwrap();
    let mut t = target(r.h.m.export(r.h.now));
    let refused = |t: &mut H, conn, sub: &str, corr: &str, tok: &str| {
        let (outcome, out) = t.join_raw(conn, sub, Role::Participant, corr, tok);
        assert_eq!(
            outcome,
            JoinOutcome::Refused(CloseCode::Unauthorized),
            "{sub} {tok}"
        );
        assert_eq!(error_of(&to(&out, conn)), Some(pb::ErrorCode::Unauthorized));
    };
    let corr = current.correlation_id.clone();
    // The source's older token (already used there).
    refused(&mut t, c(20), "a", &corr, &r.a.binding_token);
    // Forged: one flipped digit; minted with another cluster's secret; another user.
    let mut forged = current.binding_token.clone();
    forged.replace_range(0..1, if forged.starts_with('0') { "1" } else { "0" });
    refused(&mut t, c(21), "a", &corr, &forged);
    let other =
        MeetingBindingKey::derive(&BindingSecret::from_bytes(vec![43u8; 32]).unwrap(), MEETING);
    let nonce = t.m.export(t.now).participants[0].nonce().unwrap();
    refused(
        &mut t,
        c(22),
        "a",
        &corr,
        &other.issue(&corr, &current.participant_id, &nonce),
    );
    refused(&mut t, c(23), "mallory", &corr, &current.binding_token);
    // The outstanding token works once on the target, then it is a replay.
    let (outcome, _) = t.join_raw(c(24), "a", Role::Host, &corr, &current.binding_token);
    assert_eq!(outcome, JoinOutcome::Recovered);
    refused(&mut t, c(25), "a", &corr, &current.binding_token);
}

#[test]
fn a_frozen_meeting_holds_inputs_and_replays_them_on_abort() {
    let mut r = rich();
    let now = r.h.now;
    let before = r.h.m.export(now);
    let snap = r.h.m.begin_handover(now);
    assert_eq!(snap, before);
    assert!(r.h.m.is_handing_over());
    assert_eq!(r.h.m.poll_timeout(), None, "grace stands still");
    // Messages and disconnects are held; strangers are still refused.
    r.h.m
        .handle_message(now, c(2), ClientMessage::of(mute(true)))
        .unwrap();
    r.h.m.handle_disconnect(now, c(1), true).unwrap();
    assert_eq!(
        r.h.m
            .handle_message(now, c(99), ClientMessage::of(mute(true))),
        Err(MeetingError::UnknownConnection(c(99)))
    );
    assert!(r.h.drain().is_empty());
    // Joins are refused with 0x103 while the state is on its way.
    let (outcome, out) = r.h.join_raw(c(30), "e", Role::Participant, "", "");
    assert_eq!(outcome, JoinOutcome::Refused(CloseCode::Draining));
    assert_eq!(closes(&out), vec![(c(30), CloseCode::Draining)]);
    // c's grace ran out meanwhile: nothing happens while frozen.
    r.h.advance(Duration::from_secs(25));
    r.h.m.handle_timeout(r.h.now);
    assert!(r.h.drain().is_empty());
    assert_eq!(r.h.m.export(r.h.now).participants.len(), 3);

    // The hand-over failed: everything held happens now, in order, then grace expires.
    r.h.m.abort_handover(r.h.now);
    assert!(!r.h.m.is_handing_over());
    let out = r.h.drain();
    let to_b = to(&out, c(2));
    assert!(
        matches!(&to_b[0], S::ParticipantMuteUpdate(u) if u.participant_id == r.b.participant_id && u.audio_self_muted)
    );
    assert_eq!(
        left(&to_b),
        vec![
            (
                r.a.participant_id.clone(),
                pb::LeaveReason::Voluntary as i32
            ),
            (r.c.participant_id.clone(), pb::LeaveReason::Timeout as i32)
        ]
    );
    let s = r.h.m.stats();
    assert_eq!(
        (
            s.handovers_started,
            s.handovers_aborted,
            s.handover_inputs_held
        ),
        (1, 1, 2)
    );
}

#[test]
fn held_inputs_are_dropped_when_the_meeting_is_handed_over() {
    let mut h = H::new();
    h.join(c(1), "a", Role::Participant);
    h.drain();
    h.m.begin_handover(h.now);
    for _ in 0..MAX_HELD_INPUTS + 3 {
        h.m.handle_message(h.now, c(1), ClientMessage::of(mute(true)))
            .unwrap();
    }
    h.m.end(
        h.now,
        EndReason::Handover {
            endpoint: "https://b:4433".into(),
            reason: RedirectReason::Draining,
        },
    );
    let out = h.drain();
    assert!(
        matches!(&to(&out, c(1))[..], [S::RedirectToMc(_)]),
        "rule 20"
    );
    let s = h.m.stats();
    assert_eq!(s.handover_inputs_held, MAX_HELD_INPUTS as u64);
    assert_eq!(s.handover_inputs_dropped, MAX_HELD_INPUTS as u64 + 3);
}

/// Messages as large as a frame fill the hold in bytes long before its count; a
/// disconnect is held even when the hold is full, and replayed when the hand-over fails.
#[test]
fn held_messages_are_bounded_in_bytes_and_disconnects_always_held() {
    let mut h = H::new();
    h.join(c(1), "a", Role::Host);
    let b = h.join(c(2), "b", Role::Participant);
    h.drain();
    h.m.begin_handover(h.now);
    let big = || {
        client_message::Message::HostMuteRequest(pb::HostMuteRequest {
            participant_id: b.participant_id.clone(),
            audio_muted: true,
            reason: "r".repeat(64 * 1024),
            ..Default::default()
        })
    };
    for _ in 0..100 {
        h.m.handle_message(h.now, c(1), ClientMessage::of(big()))
            .unwrap();
    }
    let s = h.m.stats();
    let fit = MAX_HELD_BYTES / (64 * 1024);
    assert!(
        (fit - 2..fit).contains(&(s.handover_inputs_held as usize)),
        "{s:?}"
    );
    assert_eq!(s.handover_inputs_held + s.handover_inputs_dropped, 100);
    h.m.abort_handover(h.now);

    // Full in count: the disconnect is held all the same.
    h.m.begin_handover(h.now);
    for _ in 0..MAX_HELD_INPUTS {
        h.m.handle_message(h.now, c(1), ClientMessage::of(mute(true)))
            .unwrap();
    }
    h.m.handle_message(h.now, c(1), ClientMessage::of(mute(false)))
        .unwrap();
    let s = h.m.stats();
    h.m.handle_disconnect(h.now, c(2), true).unwrap();
    assert_eq!(
        h.m.stats().handover_inputs_dropped,
        s.handover_inputs_dropped
    );

    h.drain();
    h.m.abort_handover(h.now);
    let out = h.drain();
    assert_eq!(
        left(&to(&out, c(1))),
        vec![(b.participant_id.clone(), pb::LeaveReason::Voluntary as i32)]
    );
}

/// Messages small on the wire but large decoded (256 empty statuses: 515 bytes sent, about
/// 26 KB held) fill the hold by what they hold, not by their size on the wire: the 4 MiB
/// bound is not 4,096 of them, 104 MiB.
#[test]
fn held_messages_are_weighed_by_what_they_hold_decoded() {
    let mut h = H::new();
    h.join(c(1), "a", Role::Host);
    h.join(c(2), "b", Role::Participant);
    h.drain();
    h.m.begin_handover(h.now);
    let update = ClientMessage::of(client_message::Message::MediaConnectionUpdate(
        pb::MediaConnectionUpdate {
            statuses: vec![pb::MhConnectionStatus::default(); 256],
        },
    ));
    let wire = prost::Message::encoded_len(&update);
    let held = update.held_len();
    assert!(
        wire < 600 && held > 20 * 1024,
        "{wire} on the wire, {held} held"
    );
    for _ in 0..MAX_HELD_INPUTS {
        h.m.handle_message(h.now, c(1), update.clone()).unwrap();
    }
    let s = h.m.stats();
    let fit = MAX_HELD_BYTES / held;
    assert!(
        (fit - 2..=fit).contains(&(s.handover_inputs_held as usize)),
        "{s:?}, {fit} fit"
    );
    assert_eq!(
        s.handover_inputs_held + s.handover_inputs_dropped,
        MAX_HELD_INPUTS as u64
    );
}

#[test]
fn inconsistent_snapshots_are_refused() {
    let good = rich().h.m.export(Instant::now());
    let cfg = MeetingConfig::default();
    assert_eq!(good.validate(&cfg), Ok(()));
    type Edit = fn(&mut MeetingSnapshot);
    let edits: Vec<(&str, Edit)> = vec![
        ("version", |s| s.version = 2),
        ("empty meeting id", |s| s.meeting_id.clear()),
        ("long meeting id", |s| s.meeting_id = "m".repeat(257)),
        ("no participants", |s| s.participants.clear()),
        ("user_id mismatch", |s| s.participants[0].user_id = 3),
        ("unknown sub", |s| s.participants[0].sub = "zed".into()),
        ("duplicate participant_id", |s| {
            s.participants[1].participant_id = s.participants[0].participant_id.clone()
        }),
        ("duplicate correlation_id", |s| {
            s.participants[1].correlation_id = s.participants[0].correlation_id.clone()
        }),
        ("empty participant_id", |s| {
            s.participants[0].participant_id.clear()
        }),
        ("long correlation_id", |s| {
            s.participants[0].correlation_id = "c".repeat(65)
        }),
        ("short nonce", |s| {
            s.participants[0].binding_nonce = "00".into()
        }),
        ("non-hex nonce", |s| {
            s.participants[0].binding_nonce = "zz".repeat(16)
        }),
        ("host mute without host", |s| {
            s.participants[1].mute.host_muted_by.clear()
        }),
        ("host without host mute", |s| {
            s.participants[0].mute.host_muted_by = "someone".into()
        }),
        ("too many streams", |s| {
            let one = s.participants[0].streams[0].clone();
            s.participants[0].streams = (0..9)
                .map(|i| StreamSnapshot {
                    stream_id: format!("s{i}"),
                    ..one.clone()
                })
                .collect();
        }),
        ("duplicate stream", |s| {
            let one = s.participants[0].streams[0].clone();
            s.participants[0].streams.push(one);
        }),
        ("empty stream id", |s| {
            s.participants[0].streams[0].stream_id.clear()
        }),
        ("long codec", |s| {
            if let Some(m) = s.participants[0].streams[0].metadata.as_mut() {
                m.codec = "c".repeat(33);
            }
        }),
        ("long name", |s| s.participants[0].name = "n".repeat(257)),
        ("long layout list", |s| {
            if let Some(l) = s.participants[0].layout.as_mut() {
                l.stream_ids = vec![0; 257];
            }
        }),
        ("user id zero", |s| {
            s.user_ids.insert("zero".into(), 0);
        }),
        ("user id not below next_user_id", |s| s.next_user_id = 4),
        ("next_user_id beyond the users", |s| s.next_user_id = 6),
        ("next_user_id about to wrap", |s| s.next_user_id = u64::MAX),
        ("two subs, one user id", |s| {
            s.user_ids.insert("twin".into(), 1);
        }),
        ("empty sub", |s| {
            s.user_ids.insert(String::new(), 9);
            s.next_user_id = 10;
        }),
    ];
    for (what, edit) in edits {
        let mut bad = good.clone();
        edit(&mut bad);
        assert!(bad.validate(&cfg).is_err(), "{what}");
        let err = Meeting::import_at(bad, cfg.clone(), &secret(), Instant::now(), 0)
            .err()
            .unwrap_or_else(|| panic!("{what}: imported"));
        assert!(!err.to_string().is_empty());
    }
    // Budgets: each names a known user, in ascending order, once.
    let budgets: [(&str, Vec<u64>, &str); 4] = [
        ("an unknown user", vec![4, 9], "user_id not in user_ids"),
        (
            "not ascending",
            vec![2, 1],
            "user_id not ascending or repeated",
        ),
        (
            "one user twice",
            vec![1, 1],
            "user_id not ascending or repeated",
        ),
        (
            "more than the users",
            (1..=5).collect(),
            "user_id not in user_ids",
        ),
    ];
    for (what, ids, why) in budgets {
        let mut bad = good.clone();
        bad.user_budgets = ids.into_iter().map(budget).collect();
        assert_eq!(
            bad.validate(&cfg),
            Err(ImportError::UserBudgets(why)),
            "{what}"
        );
    }
    // Limits of this MC: more participants than it holds per meeting.
    let small = MeetingConfig {
        max_participants: 2,
        ..MeetingConfig::default()
    };
    assert_eq!(
        good.validate(&small),
        Err(ImportError::TooManyParticipants { got: 3, max: 2 })
    );
    let mut many = good.clone();
    many.user_ids = (1..=MAX_SNAPSHOT_USERS as u64 + 1)
        .map(|i| (format!("u{i}"), i))
        .collect();
    assert_eq!(
        many.validate(&cfg),
        Err(ImportError::TooManyUsers(MAX_SNAPSHOT_USERS + 1))
    );
    // Unknown enum values and missing fields are JSON errors, not panics.
    let json = serde_json::to_string(&good).unwrap();
    for broken in [
        json.replace("\"host\"", "\"king\""),
        json.replace("\"video_camera\"", "\"hologram\""),
        json.replace("\"next_user_id\"", "\"nxt\""),
        json.replace("\"grace\"", "\"limbo\""),
    ] {
        assert!(serde_json::from_str::<MeetingSnapshot>(&broken).is_err());
    }
}

fn budget(user_id: u64) -> UserBudgetSnapshot {
    UserBudgetSnapshot {
        user_id,
        broadcasts_left: 0,
        joins_left: 0,
    }
}

fn says(msgs: &[S], what: &str) -> bool {
    errors_saying(msgs, what) > 0
}

/// A drain does not refill what a user spent: its share of the broadcast budget and its
/// fresh joins travel with the meeting, and so does the meeting's own budget. Users
/// with full budgets are left out of the snapshot.
#[test]
fn spent_budgets_travel_with_the_meeting() {
    let cfg = MeetingConfig::default();
    let (_, share) = cfg.user_broadcast_share();
    let mut h = H::new();
    let spender = h.join(c(1), "spender", Role::Participant);
    h.join(c(2), "quiet", Role::Participant);
    // The two joins' tokens come back.
    h.advance(Duration::from_secs(1));
    // One user spends its share; another spends its fresh joins, joining and leaving.
    for i in 0..u64::from(share) {
        h.msg(c(1), mute(i % 2 == 0));
    }
    assert!(says(&to(&h.msg(c(1), mute(true)), c(1)), SHARE_SPENT));
    let mut churn = 100;
    loop {
        let (outcome, out) = h.join_raw(c(churn), "churn", Role::Participant, "", "");
        if outcome != JoinOutcome::Joined {
            assert!(says(&to(&out, c(churn)), JOINS_SPENT));
            break;
        }
        h.m.handle_disconnect(h.now, c(churn), true).unwrap();
        churn += 1;
    }
    h.drain();

    let snap = h.m.begin_handover(h.now);
    assert_eq!(
        snap.broadcasts_left,
        Some(cfg.broadcast_burst - share),
        "the meeting's budget: less every mute that passed"
    );
    let ids: Vec<u64> = snap.user_budgets.iter().map(|b| b.user_id).collect();
    let churn_id = snap.user_ids["churn"];
    assert_eq!(ids, [spender.user_id, churn_id], "the quiet user is full");
    assert_eq!(snap.user_budgets[0].broadcasts_left, 0);
    assert_eq!(snap.user_budgets[1].joins_left, 0);

    // Through JSON, as the hand-over sends it.
    let json = serde_json::to_string(&snap).unwrap();
    let mut t = target(serde_json::from_str(&json).unwrap());
    let (outcome, _) = t.join_raw(
        c(11),
        "spender",
        Role::Participant,
        &spender.correlation_id,
        &spender.binding_token,
    );
    assert_eq!(outcome, JoinOutcome::Recovered);
    assert!(says(&to(&t.msg(c(11), mute(true)), c(11)), SHARE_SPENT));
    let (outcome, out) = t.join_raw(c(12), "churn", Role::Participant, "", "");
    assert_eq!(outcome, JoinOutcome::Refused(CloseCode::RateLimited));
    assert!(says(&to(&out, c(12)), JOINS_SPENT));
    // Time refills them on the target as it would have on the source.
    t.advance(Duration::from_secs(1));
    assert!(!says(&to(&t.msg(c(11), mute(false)), c(11)), SHARE_SPENT));
    let (outcome, _) = t.join_raw(c(13), "churn", Role::Participant, "", "");
    assert_eq!(outcome, JoinOutcome::Joined);
    // Re-exported, the target's view is the same kind of snapshot.
    assert!(t.m.export(t.now).validate(&cfg).is_ok());
}

/// An MC that does not carry budgets writes neither field: the target starts them full.
#[test]
fn a_snapshot_without_budgets_starts_them_full() {
    let r = rich();
    let mut snap = r.h.m.export(r.h.now);
    let mut json: serde_json::Value = serde_json::to_value(&snap).unwrap();
    let obj = json.as_object_mut().unwrap();
    obj.remove("broadcasts_left");
    obj.remove("user_budgets");
    let old: MeetingSnapshot = serde_json::from_value(json).unwrap();
    snap.broadcasts_left = None;
    snap.user_budgets.clear();
    assert_eq!(old, snap);
    let t = target(old);
    let back = t.m.export(t.now);
    assert_eq!(
        back.broadcasts_left,
        Some(MeetingConfig::default().broadcast_burst)
    );
    assert!(back.user_budgets.is_empty());
}

/// A meeting at every limit a client controls, `fill` in every string it writes: one
/// user in every seat, each with a name of the longest length, every stream it may
/// publish with the longest ids, codec and simulcast layers, and a layout whose lists are
/// full of the longest numbers.
fn at_every_limit(fill: char) -> MeetingSnapshot {
    let cfg = MeetingConfig::default();
    let mut h = H::with(cfg.clone());
    let s = |n: usize| fill.to_string().repeat(n);
    for i in 0..cfg.max_participants as u64 {
        let mut req = join_req("", "");
        req.participant_name = s(cfg.max_string_len);
        let identity = JoinIdentity {
            sub: s(crate::meeting::MAX_ID_BYTES),
            role: Role::Participant,
            name: String::new(),
        };
        let outcome = h.m.handle_join(h.now, c(i), identity, req).unwrap();
        assert_eq!(outcome, JoinOutcome::Joined, "seat {i}");
        h.drain();
    }
    for i in 0..cfg.max_participants as u64 {
        // The user's share of the broadcast budget refills meanwhile.
        h.advance(Duration::from_secs(1));
        for n in 0..cfg.max_streams_per_participant {
            let layer = |k: usize| pb::SimulcastLayer {
                layer_id: format!("{k}{}", s(cfg.max_stream_id_len - 1)),
                width: u32::MAX,
                height: u32::MAX,
                max_bitrate: u32::MAX,
            };
            let publish = pb::PublishStream {
                stream_id: format!("{n}{}", s(cfg.max_stream_id_len - 1)),
                stream_type: pb::StreamType::VideoCamera as i32,
                metadata: Some(pb::StreamMetadata {
                    codec: s(cfg.max_codec_len),
                    max_bitrate: u32::MAX,
                    video: Some(pb::VideoMetadata {
                        width: u32::MAX,
                        height: u32::MAX,
                        framerate: u32::MAX,
                        simulcast_layers: (0..cfg.max_simulcast_layers).map(layer).collect(),
                    }),
                }),
            };
            h.msg(c(i), client_message::Message::PublishStream(publish));
        }
        let list = cfg.max_layout_list;
        h.msg(
            c(i),
            client_message::Message::SubscribeToLayout(pb::SubscribeToLayout {
                layout_type: 0,
                config: Some(pb::LayoutConfig {
                    max_streams: cfg.max_layout_slots as u32,
                    pinned_users: vec![u64::MAX; list],
                    excluded_users: vec![u64::MAX; list],
                    include_self: true,
                    ..Default::default()
                }),
                stream_ids: vec![u32::MAX; list],
            }),
        );
    }
    let snapshot = h.m.begin_handover(h.now);
    assert_eq!(snapshot.participants.len(), cfg.max_participants);
    for p in &snapshot.participants {
        assert_eq!(p.streams.len(), cfg.max_streams_per_participant);
        assert!(p.layout.is_some());
    }
    snapshot
}

/// The largest snapshot clients can make, at the default limits, is one hand-over: a
/// double quote (escaped as two bytes) in every string they write is the worst they can
/// still do; control characters (six bytes each) are refused or mended.
#[test]
fn a_meeting_at_every_limit_fits_in_one_hand_over() {
    let body = |fill| {
        crate::migration::ImportRequest {
            source: crate::migration::SourceMc {
                id: "mc-source".into(),
                webtransport_endpoint: "https://mc-source.example:4433".into(),
                http_endpoint: "http://mc-source.example:8080".into(),
            },
            snapshot: at_every_limit(fill),
        }
        .to_body()
    };
    let plain = body('a').len();
    let json = body('"');
    let quoted = json.len();
    // The same meeting with a control character wherever a client wrote a quote, as
    // before they were refused: each escaped in six bytes (`\u0001`) instead of two.
    let escapes = json.windows(2).filter(|w| w == b"\\\"").count();
    let control = quoted + 4 * escapes;
    eprintln!("hand-over bodies: {plain} bytes with letters, {quoted} with quotes, {control} with control characters");
    assert!(quoted > plain, "{quoted} against {plain}");
    assert!(
        quoted <= crate::migration::DEFAULT_MAX_HANDOVER_BYTES,
        "{quoted} bytes"
    );
    assert!(
        control > crate::migration::DEFAULT_MAX_HANDOVER_BYTES,
        "{control} bytes: the rule would not be needed"
    );
}

#[test]
fn control_characters_are_refused_in_identifiers_and_mended_in_names() {
    let mut h = H::new();
    let mut req = join_req("", "");
    req.participant_name = "a\u{0}b\nc\u{7f}d\u{85}e".into();
    let identity = JoinIdentity {
        sub: "u".into(),
        role: Role::Participant,
        name: String::new(),
    };
    h.m.handle_join(h.now, c(1), identity, req).unwrap();
    h.drain();
    let other = h.join(c(2), "v", Role::Participant);
    assert_eq!(other.existing_participants[0].name, "a b c d e");
    let video = |layer: &str| pb::VideoMetadata {
        width: 640,
        height: 360,
        framerate: 30,
        simulcast_layers: vec![pb::SimulcastLayer {
            layer_id: layer.into(),
            width: 640,
            height: 360,
            max_bitrate: 500_000,
        }],
    };
    let publication = |id: &str, codec: &str, layer: &str| {
        client_message::Message::PublishStream(pb::PublishStream {
            stream_id: id.into(),
            stream_type: pb::StreamType::VideoCamera as i32,
            metadata: Some(pb::StreamMetadata {
                codec: codec.into(),
                max_bitrate: 1_000_000,
                video: Some(video(layer)),
            }),
        })
    };
    for (p, why) in [
        (
            publication("cam\u{1}", "VP8", "h"),
            "stream_id has a control character",
        ),
        (
            publication("cam", "VP8\t", "h"),
            "codec has a control character",
        ),
        (
            publication("cam", "VP8", "h\r"),
            "layer_id has a control character",
        ),
    ] {
        let msgs = to(&h.msg(c(1), p), c(1));
        assert!(
            matches!(msgs.as_slice(), [S::Error(e)]
                if e.code == ErrorCode::InvalidRequest as i32 && e.message == why),
            "{msgs:?}"
        );
    }
    let msgs = to(&h.msg(c(1), publication("cam", "VP8", "h")), c(1));
    assert!(
        matches!(msgs.first(), Some(S::StreamPublished(_))),
        "{msgs:?}"
    );
    let snapshot = h.m.begin_handover(h.now);
    let first = snapshot.participants.iter().find(|p| p.sub == "u").unwrap();
    assert_eq!(first.name, "a b c d e");
    assert_eq!(first.streams.len(), 1);
}
