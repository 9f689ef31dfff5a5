//! Roster, leave, grace and recovery (docs/protocol.md rules 6–9, "Session recovery").
use super::*;

fn left(msgs: &[S]) -> Vec<(String, i32)> {
    msgs.iter()
        .filter_map(|m| match m {
            S::ParticipantLeft(l) => Some((l.participant_id.clone(), l.reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn roster_join_lists_others_and_announces_the_joiner() {
    let mut h = H::new();
    let a = h.join(c(1), "alice", Role::Host);
    assert!(
        a.existing_participants.is_empty(),
        "rule 8: never the joiner"
    );
    assert_eq!(a.user_id, 1);
    assert_eq!(
        uuid::Uuid::parse_str(&a.correlation_id)
            .unwrap()
            .get_version_num(),
        7
    );
    assert_eq!(a.binding_token.len(), 64);

    let (outcome, out) = h.join_raw(c(2), "bob", Role::Participant, "", "");
    assert_eq!(outcome, JoinOutcome::Joined);
    let b = join_response(&out, c(2)).unwrap();
    assert_eq!(b.existing_participants.len(), 1);
    assert_eq!(b.existing_participants[0].participant_id, a.participant_id);
    assert_eq!(b.existing_participants[0].name, "name-alice");
    assert_eq!(b.existing_participants[0].joined_at, 1_700_000_000_000);
    assert_eq!(b.user_id, 2);
    assert_ne!(b.participant_id, a.participant_id);
    let to_a = to(&out, c(1));
    assert!(matches!(&to_a[..], [S::ParticipantJoined(j)]
        if j.participant.as_ref().unwrap().participant_id == b.participant_id));
    assert_eq!(h.m.participant_count(), 2);
}

#[test]
fn user_id_is_stable_per_sub() {
    let mut h = H::new();
    let a1 = h.join(c(1), "alice", Role::Participant);
    let b = h.join(c(2), "bob", Role::Participant);
    let a2 = h.join(c(3), "alice", Role::Participant);
    assert_eq!(a1.user_id, a2.user_id);
    assert_ne!(a1.user_id, b.user_id);
    assert_ne!(a1.participant_id, a2.participant_id);
    // Still stable after alice's participants left.
    h.m.handle_disconnect(h.now, c(1), true).unwrap();
    h.m.handle_disconnect(h.now, c(3), true).unwrap();
    let a3 = h.join(c(4), "alice", Role::Participant);
    assert_eq!(a3.user_id, a1.user_id);
}

#[test]
fn clean_disconnect_leaves_voluntary_at_once() {
    let mut h = H::new();
    let a = h.join(c(1), "a", Role::Participant);
    h.join(c(2), "b", Role::Participant);
    h.drain();
    h.m.handle_disconnect(h.now, c(1), true).unwrap();
    let out = h.drain();
    assert_eq!(
        left(&to(&out, c(2))),
        vec![(a.participant_id, pb::LeaveReason::Voluntary as i32)]
    );
    assert!(to(&out, c(1)).is_empty());
    assert_eq!(h.m.participant_count(), 1);
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn unclean_disconnect_waits_for_grace_then_timeout() {
    let mut h = H::new();
    let a = h.join(c(1), "a", Role::Participant);
    h.join(c(2), "b", Role::Participant);
    h.drain();
    h.m.handle_disconnect(h.now, c(1), false).unwrap();
    assert!(h.drain().is_empty(), "rule 6: nothing sent to others");
    assert_eq!(h.m.poll_timeout(), Some(h.t0 + Duration::from_secs(30)));
    // Still in the roster for new joiners.
    let cj = h.join(c(3), "c", Role::Participant);
    assert!(cj
        .existing_participants
        .iter()
        .any(|p| p.participant_id == a.participant_id));
    h.drain();
    h.advance(Duration::from_millis(29_999));
    h.m.handle_timeout(h.now);
    assert!(h.drain().is_empty());
    assert_eq!(h.m.participant_count(), 3);
    h.advance(Duration::from_millis(1));
    h.m.handle_timeout(h.now);
    let out = h.drain();
    let timeout = vec![(a.participant_id.clone(), pb::LeaveReason::Timeout as i32)];
    assert_eq!(left(&to(&out, c(2))), timeout);
    assert_eq!(left(&to(&out, c(3))), timeout);
    assert_eq!(h.m.participant_count(), 2);
    assert_eq!(h.m.poll_timeout(), None);
    assert_eq!(h.m.stats().leaves_timeout, 1);
}

#[test]
fn meeting_is_empty_only_after_grace() {
    let mut h = H::new();
    h.join(c(1), "a", Role::Participant);
    h.m.handle_disconnect(h.now, c(1), false).unwrap();
    assert!(!h.m.is_empty());
    h.advance(Duration::from_secs(30));
    h.m.handle_timeout(h.now);
    assert!(h.m.is_empty());
}

#[test]
fn recovery_restores_everything_and_closes_the_old_connection() {
    let mut h = H::new();
    let a = h.join(c(1), "a", Role::Participant);
    h.join(c(2), "b", Role::Participant);
    h.msg(c(1), publish("cam", pb::StreamType::VideoCamera));
    h.msg(
        c(1),
        client_message::Message::MuteRequest(pb::MuteRequest {
            audio_muted: true,
            video_muted: false,
        }),
    );
    h.msg(
        c(1),
        client_message::Message::SubscribeToLayout(pb::SubscribeToLayout {
            layout_type: 0,
            config: Some(pb::LayoutConfig {
                max_streams: 4,
                include_self: true,
                ..Default::default()
            }),
            stream_ids: vec![],
        }),
    );
    // The server still holds c(1) (e.g. the client's network changed): recover on c(3).
    h.advance(Duration::from_secs(5));
    let (outcome, out) = h.join_raw(
        c(3),
        "a",
        Role::Participant,
        &a.correlation_id,
        &a.binding_token,
    );
    assert_eq!(outcome, JoinOutcome::Recovered);
    let r = join_response(&out, c(3)).unwrap();
    assert_eq!(r.participant_id, a.participant_id);
    assert_eq!(r.user_id, a.user_id);
    assert_eq!(r.correlation_id, a.correlation_id);
    assert_ne!(r.binding_token, a.binding_token, "nonce rotated");
    assert_eq!(r.existing_participants.len(), 1);
    assert_eq!(closes(&out), vec![(c(1), CloseCode::Replaced)]);
    assert!(to(&out, c(2)).is_empty(), "others see no leave/join");
    let mine = to(&out, c(3));
    assert!(mine
        .iter()
        .any(|m| matches!(m, S::ParticipantMuteUpdate(u) if u.audio_self_muted)));
    assert!(mine
        .iter()
        .any(|m| matches!(m, S::StreamAssignments(s) if s.assignments.len() == 1)));
    assert_eq!(h.m.participant_count(), 2);
    // The old connection is gone; the new one works and keeps the streams.
    assert!(h
        .m
        .handle_message(h.now, c(1), ClientMessage::default())
        .is_err());
    let d = h.join(c(4), "d", Role::Participant);
    let restored = d
        .existing_participants
        .iter()
        .find(|p| p.participant_id == a.participant_id)
        .unwrap();
    assert_eq!(restored.streams.len(), 1);
}

/// The earliest of two grace periods ends early with a recovery: its deadline may still
/// come due, and then expires nobody and gives way to the other's.
#[test]
fn a_recovery_of_the_earliest_in_grace_leaves_the_next_deadline() {
    let mut h = H::new();
    let a = h.join(c(1), "a", Role::Participant);
    let b = h.join(c(2), "b", Role::Participant);
    h.join(c(3), "c", Role::Participant);
    h.m.handle_disconnect(h.now, c(1), false).unwrap();
    h.advance(Duration::from_secs(10));
    h.m.handle_disconnect(h.now, c(2), false).unwrap();
    h.advance(Duration::from_secs(5));
    let (outcome, _) = h.join_raw(
        c(4),
        "a",
        Role::Participant,
        &a.correlation_id,
        &a.binding_token,
    );
    assert_eq!(outcome, JoinOutcome::Recovered);
    h.drain();
    let first = h.m.poll_timeout().expect("b is in grace");
    assert!(first <= h.t0 + Duration::from_secs(40), "{first:?}");
    h.now = h.t0 + Duration::from_secs(30);
    h.m.handle_timeout(h.now);
    assert!(h.drain().is_empty(), "a recovered: nobody leaves");
    assert_eq!(h.m.participant_count(), 3);
    assert_eq!(h.m.poll_timeout(), Some(h.t0 + Duration::from_secs(40)));
    // A message meanwhile expires nobody either.
    h.msg(
        c(3),
        client_message::Message::MuteRequest(pb::MuteRequest::default()),
    );
    assert_eq!(h.m.participant_count(), 3);
    h.now = h.t0 + Duration::from_secs(40);
    h.m.handle_timeout(h.now);
    let out = h.drain();
    let timeout = vec![(b.participant_id.clone(), pb::LeaveReason::Timeout as i32)];
    assert_eq!(left(&to(&out, c(3))), timeout);
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn recovery_within_grace_cancels_timeout() {
    let mut h = H::new();
    let a = h.join(c(1), "a", Role::Participant);
    h.join(c(2), "b", Role::Participant);
    h.m.handle_disconnect(h.now, c(1), false).unwrap();
    h.advance(Duration::from_secs(29));
    let (outcome, out) = h.join_raw(
        c(3),
        "a",
        Role::Participant,
        &a.correlation_id,
        &a.binding_token,
    );
    assert_eq!(outcome, JoinOutcome::Recovered);
    assert!(closes(&out).is_empty());
    assert_eq!(h.m.poll_timeout(), None);
    h.advance(Duration::from_secs(60));
    h.m.handle_timeout(h.now);
    assert!(h.drain().is_empty());
}

#[test]
fn binding_token_refusals_are_unauthorized_and_close() {
    let mut h = H::new();
    let a = h.join(c(1), "a", Role::Participant);
    h.m.handle_disconnect(h.now, c(1), false).unwrap();
    let refused = |h: &mut H, conn, sub: &str, corr: &str, tok: &str| {
        let (outcome, out) = h.join_raw(conn, sub, Role::Participant, corr, tok);
        assert_eq!(
            outcome,
            JoinOutcome::Refused(CloseCode::Unauthorized),
            "{sub} {corr}"
        );
        assert_eq!(error_of(&to(&out, conn)), Some(pb::ErrorCode::Unauthorized));
        assert_eq!(closes(&out), vec![(conn, CloseCode::Unauthorized)]);
        assert_eq!(CloseCode::Unauthorized.code(), 0x101);
    };
    // Other user with a valid token.
    refused(
        &mut h,
        c(10),
        "mallory",
        &a.correlation_id,
        &a.binding_token,
    );
    // Tampered token, token without correlation id, foreign meeting's token.
    let mut bad = a.binding_token.clone();
    bad.replace_range(0..1, if bad.starts_with('0') { "1" } else { "0" });
    refused(&mut h, c(11), "a", &a.correlation_id, &bad);
    refused(&mut h, c(12), "a", "", &a.binding_token);
    let foreign = key_for("meeting-2").issue(&a.correlation_id, &a.participant_id, &[0u8; 16]);
    refused(&mut h, c(13), "a", &a.correlation_id, &foreign);
    // The genuine one still works once...
    let (outcome, out) = h.join_raw(
        c(2),
        "a",
        Role::Participant,
        &a.correlation_id,
        &a.binding_token,
    );
    assert_eq!(outcome, JoinOutcome::Recovered);
    let r = join_response(&out, c(2)).unwrap();
    // ...and is dead afterwards (replay), while the rotated one works.
    refused(&mut h, c(14), "a", &a.correlation_id, &a.binding_token);
    let (outcome, _) = h.join_raw(
        c(15),
        "a",
        Role::Participant,
        &r.correlation_id,
        &r.binding_token,
    );
    assert_eq!(outcome, JoinOutcome::Recovered);
    // Expired: after grace the participant is gone and the token with it.
    let last = join_response(&h.drain(), c(15));
    assert!(last.is_none());
    h.m.handle_disconnect(h.now, c(15), false).unwrap();
    h.advance(Duration::from_secs(31));
    h.m.handle_timeout(h.now);
    refused(&mut h, c(16), "a", &r.correlation_id, &r.binding_token);
}

#[test]
fn capacity_refuses_with_0x102() {
    let mut h = H::with(MeetingConfig {
        max_participants: 2,
        ..MeetingConfig::default()
    });
    h.join(c(1), "a", Role::Participant);
    h.join(c(2), "b", Role::Participant);
    // A disconnected participant within grace still counts.
    h.m.handle_disconnect(h.now, c(2), false).unwrap();
    let (outcome, out) = h.join_raw(c(3), "c", Role::Participant, "", "");
    assert_eq!(outcome, JoinOutcome::Refused(CloseCode::Capacity));
    assert_eq!(outcome.label(), "capacity");
    assert_eq!(
        error_of(&to(&out, c(3))),
        Some(pb::ErrorCode::CapacityExceeded)
    );
    assert_eq!(closes(&out), vec![(c(3), CloseCode::Capacity)]);
    assert!(to(&out, c(1)).is_empty());
}

#[test]
fn drain_end_and_redirect() {
    let mut h = H::new();
    let a = h.join(c(1), "a", Role::Participant);
    let b = h.join(c(2), "b", Role::Participant);
    h.drain();
    h.m.end(h.now, EndReason::Drained);
    let out = h.drain();
    for (conn, pid) in [(c(1), &a.participant_id), (c(2), &b.participant_id)] {
        assert_eq!(
            left(&to(&out, conn)),
            vec![(pid.clone(), pb::LeaveReason::MeetingEnded as i32)]
        );
    }
    assert_eq!(
        closes(&out),
        vec![(c(1), CloseCode::Draining), (c(2), CloseCode::Draining)]
    );
    assert!(h.m.is_empty());
    let (outcome, _) = h.join_raw(c(3), "c", Role::Participant, "", "");
    assert_eq!(outcome, JoinOutcome::Refused(CloseCode::Draining));

    let mut h = H::new();
    h.join(c(1), "a", Role::Participant);
    h.m.end(
        h.now,
        EndReason::Redirect {
            endpoint: "https://mc-2:4433/".into(),
        },
    );
    let out = h.drain();
    assert!(matches!(&to(&out, c(1))[..], [S::RedirectToMc(r)]
        if r.new_mc_endpoint == "https://mc-2:4433/" && r.meeting_id == MEETING && r.reason == "draining"));
    assert_eq!(closes(&out), vec![(c(1), CloseCode::Draining)]);
}

#[test]
fn per_request_errors_keep_the_session() {
    let mut h = H::new();
    h.join(c(1), "a", Role::Participant);
    let out = h.msg(c(1), client_message::Message::JoinRequest(join_req("", "")));
    assert_eq!(
        error_of(&to(&out, c(1))),
        Some(pb::ErrorCode::InvalidRequest)
    );
    assert!(closes(&out).is_empty());
    h.m.handle_message(h.now, c(1), ClientMessage::default())
        .unwrap();
    let out = h.drain();
    assert_eq!(
        error_of(&to(&out, c(1))),
        Some(pb::ErrorCode::InvalidRequest)
    );
    // Quality and media-connection updates are accepted and counted, no reply.
    let out = h.msg(
        c(1),
        client_message::Message::StreamQualityUpdate(pb::StreamQualityUpdate {
            stream_id: "é".repeat(400),
            ..Default::default()
        }),
    );
    assert!(out.is_empty());
    let out = h.msg(
        c(1),
        client_message::Message::MediaConnectionUpdate(pb::MediaConnectionUpdate {
            statuses: vec![pb::MhConnectionStatus {
                mh_url: "x".repeat(1000),
                failure_reason: Some("y".repeat(1000)),
                ..Default::default()
            }],
        }),
    );
    assert!(out.is_empty());
    let too_many = pb::MediaConnectionUpdate {
        statuses: vec![pb::MhConnectionStatus::default(); 33],
    };
    let out = h.msg(
        c(1),
        client_message::Message::MediaConnectionUpdate(too_many),
    );
    assert_eq!(
        error_of(&to(&out, c(1))),
        Some(pb::ErrorCode::InvalidRequest)
    );
    let s = h.m.stats();
    assert_eq!((s.quality_updates, s.media_connection_updates), (1, 1));
    assert_eq!(h.m.connected_count(), 1);
}

#[test]
fn ordering_per_sender_is_processing_order() {
    let mut h = H::new();
    h.join(c(1), "a", Role::Participant);
    h.join(c(2), "b", Role::Participant);
    h.drain();
    for i in 0..20u32 {
        let t = if i % 2 == 0 {
            pb::StreamType::Audio
        } else {
            pb::StreamType::VideoCamera
        };
        let out_mute = h.msg(
            c(1),
            client_message::Message::MuteRequest(pb::MuteRequest {
                audio_muted: i % 2 == 0,
                video_muted: false,
            }),
        );
        let out_pub = h.msg(c(1), publish(&format!("s{}", i % 4), t));
        let got: Vec<S> = to(&out_mute, c(2))
            .into_iter()
            .chain(to(&out_pub, c(2)))
            .collect();
        assert!(
            matches!(&got[..], [S::ParticipantMuteUpdate(m), S::StreamPublished(p)]
            if m.audio_self_muted == (i % 2 == 0) && p.stream.as_ref().unwrap().stream_id == format!("s{}", i % 4))
        );
        // Within one user's share of the meeting's broadcast budget.
        h.advance(Duration::from_millis(100));
    }
}

#[test]
fn join_response_stays_under_the_frame_limit() {
    let mut h = H::with(MeetingConfig {
        max_frame: 1024,
        ..MeetingConfig::default()
    });
    let mut ids = Vec::new();
    for n in 1..=20 {
        ids.push(
            h.join(c(n), &format!("user-{n}"), Role::Participant)
                .participant_id,
        );
        h.msg(c(n), publish("camera-stream", pb::StreamType::VideoCamera));
    }
    h.drain();
    let (_, out) = h.join_raw(c(99), "late", Role::Participant, "", "");
    let mut seen = Vec::new();
    for m in &out {
        let Outbound::Send { to, msg } = m else {
            continue;
        };
        if *to != c(99) {
            continue;
        }
        let len = prost::Message::encoded_len(msg.as_ref());
        assert!(len <= 1024, "frame of {len} bytes");
        match &msg.message {
            Some(S::JoinResponse(r)) => {
                assert!(!r.existing_participants.is_empty());
                seen.extend(
                    r.existing_participants
                        .iter()
                        .map(|p| p.participant_id.clone()),
                );
            }
            Some(S::ParticipantJoined(j)) => {
                seen.push(j.participant.as_ref().unwrap().participant_id.clone())
            }
            _ => {}
        }
    }
    assert_eq!(seen, ids, "everyone, in join order, split across frames");
}

/// Rule 9 keeps one user id per `sub` for the meeting's life, and a snapshot carries at
/// most `MAX_SNAPSHOT_USERS` of them: past that a new user is refused for capacity, so
/// the meeting can always be handed to another MC; a known user still joins.
#[test]
fn a_meeting_takes_no_more_users_than_a_snapshot_carries() {
    let mut h = H::new();
    h.join(c(0), "stay", Role::Participant);
    for i in 1..MAX_SNAPSHOT_USERS as u64 {
        h.join(c(i), &format!("u{i}"), Role::Participant);
        h.m.handle_disconnect(h.now, c(i), true).unwrap();
        h.drain();
    }
    let next = MAX_SNAPSHOT_USERS as u64;
    let (outcome, out) = h.join_raw(c(next), "one-too-many", Role::Participant, "", "");
    assert_eq!(outcome, JoinOutcome::Refused(CloseCode::Capacity));
    assert_eq!(
        error_of(&to(&out, c(next))),
        Some(pb::ErrorCode::CapacityExceeded)
    );
    let again = h.join(c(next + 1), "u1", Role::Participant);
    assert_eq!(again.user_id, 2);
    let snapshot = h.m.begin_handover(h.now);
    assert_eq!(snapshot.user_ids.len(), MAX_SNAPSHOT_USERS);
    snapshot.validate(&MeetingConfig::default()).unwrap();
}
