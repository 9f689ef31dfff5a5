//! Layouts (docs/protocol.md rule 11) and publish validation (rule 10).
use super::*;
use client_message::Message as M;
use pb::StreamType as T;

fn assignments(msgs: &[S]) -> Vec<Vec<(u32, u64, i32, u32)>> {
    msgs.iter()
        .filter_map(|m| match m {
            S::StreamAssignments(a) => Some(
                a.assignments
                    .iter()
                    .map(|x| (x.stream_id, x.user_id, x.media_type, x.slot_index))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn subscribe(cfg: pb::LayoutConfig, ids: Vec<u32>) -> M {
    M::SubscribeToLayout(pb::SubscribeToLayout {
        layout_type: 0,
        config: Some(cfg),
        stream_ids: ids,
    })
}

const AUD: i32 = pb::MediaType::MediaAudio as i32;
const CAM: i32 = pb::MediaType::MediaVideoCamera as i32;
const SCR: i32 = pb::MediaType::MediaVideoScreen as i32;

/// Subscriber u1 on c(1); u2..u5 on c(2)..c(5) publishing: u2 audio only, u3 camera,
/// u4 camera+screen+audio, u5 nothing.
fn setup() -> H {
    let mut h = H::with(MeetingConfig {
        media_servers: vec!["https://mh-1".into()],
        ..MeetingConfig::default()
    });
    for n in 1..=5 {
        h.join(c(n), &format!("u{n}"), Role::Participant);
    }
    h.msg(c(1), publish("mic", T::Audio));
    h.msg(c(2), publish("mic", T::Audio));
    h.msg(c(3), publish("cam", T::VideoCamera));
    h.msg(c(4), publish("cam", T::VideoCamera));
    h.msg(c(4), publish("screen", T::VideoScreen));
    h.msg(c(4), publish("mic", T::Audio));
    h
}

#[test]
fn grid_ranks_by_join_time_and_best_stream() {
    let mut h = setup();
    let out = h.msg(
        c(1),
        subscribe(
            pb::LayoutConfig {
                rows: 2,
                columns: 2,
                ..Default::default()
            },
            vec![100, 101],
        ),
    );
    let a = assignments(&to(&out, c(1)));
    // Self excluded, u5 has no stream; slot ids from stream_ids then the slot index.
    assert_eq!(
        a,
        vec![vec![(100, 2, AUD, 0), (101, 3, CAM, 1), (2, 4, SCR, 2)]]
    );
    let full = to(&out, c(1));
    if let [S::StreamAssignments(x)] = &full[..] {
        assert_eq!(x.assignments[0].media_handler_url, "https://mh-1");
    } else {
        panic!("one StreamAssignments expected: {full:?}");
    }
}

#[test]
fn pinned_first_excluded_never_include_self_and_slot_count() {
    let mut h = setup();
    let cfg = pb::LayoutConfig {
        max_streams: 3,
        rows: 9,
        columns: 9,
        pinned_users: vec![4, 99, 1],
        excluded_users: vec![3],
        include_self: true,
        ..Default::default()
    };
    let out = h.msg(c(1), subscribe(cfg, vec![]));
    assert_eq!(
        assignments(&to(&out, c(1))),
        vec![vec![(0, 4, SCR, 0), (1, 1, AUD, 1), (2, 2, AUD, 2)]]
    );
}

#[test]
fn prefer_video_over_audio_ranks_video_first() {
    let mut h = setup();
    let cfg = pb::LayoutConfig {
        max_streams: 2,
        prefer_video_over_audio: true,
        ..Default::default()
    };
    let out = h.msg(c(1), subscribe(cfg, vec![]));
    assert_eq!(
        assignments(&to(&out, c(1))),
        vec![vec![(0, 3, CAM, 0), (1, 4, SCR, 1)]]
    );
    let cfg = pb::LayoutConfig {
        max_streams: 2,
        prefer_video_over_audio: false,
        ..Default::default()
    };
    let out = h.msg(
        c(1),
        M::UpdateLayout(pb::UpdateLayout {
            new_config: Some(cfg),
        }),
    );
    assert_eq!(
        assignments(&to(&out, c(1))),
        vec![vec![(0, 2, AUD, 0), (1, 3, CAM, 1)]]
    );
}

#[test]
fn recomputed_and_resent_only_when_the_result_changes() {
    let mut h = setup();
    h.msg(
        c(1),
        subscribe(
            pb::LayoutConfig {
                max_streams: 4,
                ..Default::default()
            },
            vec![],
        ),
    );
    // u5 publishes: result changes → re-sent.
    let out = h.msg(c(5), publish("cam", T::VideoCamera));
    assert_eq!(
        assignments(&to(&out, c(1))),
        vec![vec![
            (0, 2, AUD, 0),
            (1, 3, CAM, 1),
            (2, 4, SCR, 2),
            (3, 5, CAM, 3)
        ]]
    );
    // Mute change and re-publishing the same stream: same result → nothing.
    let out = h.msg(
        c(3),
        M::MuteRequest(pb::MuteRequest {
            audio_muted: true,
            video_muted: false,
        }),
    );
    assert!(assignments(&to(&out, c(1))).is_empty());
    let out = h.msg(c(3), publish("cam", T::VideoCamera));
    assert!(assignments(&to(&out, c(1))).is_empty());
    // Roster change: u2 leaves → re-sent.
    h.m.handle_disconnect(h.now, c(2), true).unwrap();
    let out = h.drain();
    assert_eq!(
        assignments(&to(&out, c(1))),
        vec![vec![(0, 3, CAM, 0), (1, 4, SCR, 1), (2, 5, CAM, 2)]]
    );
    // A new joiner who publishes nothing changes nothing.
    let (_, out) = h.join_raw(c(6), "u6", Role::Participant, "", "");
    assert!(assignments(&to(&out, c(1))).is_empty());
    // Unsubscribed: no more assignments.
    h.msg(c(1), M::UnsubscribeLayout(pb::UnsubscribeLayout {}));
    let out = h.msg(c(6), publish("cam", T::VideoCamera));
    assert!(assignments(&to(&out, c(1))).is_empty());
}

#[test]
fn layout_request_validation() {
    let mut h = setup();
    let out = h.msg(
        c(1),
        M::UpdateLayout(pb::UpdateLayout {
            new_config: Some(Default::default()),
        }),
    );
    assert_eq!(
        error_of(&to(&out, c(1))),
        Some(pb::ErrorCode::InvalidRequest)
    );
    let out = h.msg(
        c(1),
        M::SubscribeToLayout(pb::SubscribeToLayout {
            layout_type: 7,
            config: None,
            stream_ids: vec![],
        }),
    );
    assert_eq!(
        error_of(&to(&out, c(1))),
        Some(pb::ErrorCode::InvalidRequest)
    );
    let huge = pb::LayoutConfig {
        rows: u32::MAX,
        columns: u32::MAX,
        ..Default::default()
    };
    let out = h.msg(c(1), subscribe(huge, vec![]));
    assert_eq!(
        assignments(&to(&out, c(1)))[0].len(),
        3,
        "capped, no overflow"
    );
    let out = h.msg(
        c(1),
        subscribe(
            pb::LayoutConfig {
                excluded_users: vec![1; 300],
                ..Default::default()
            },
            vec![],
        ),
    );
    assert_eq!(
        error_of(&to(&out, c(1))),
        Some(pb::ErrorCode::InvalidRequest)
    );
}

#[test]
fn publish_validation_limits() {
    let mut h = H::new();
    h.join(c(1), "a", Role::Participant);
    h.join(c(2), "b", Role::Participant);
    h.drain();
    let bad = |id: &str, t: i32, codec: &str| {
        M::PublishStream(pb::PublishStream {
            stream_id: id.into(),
            stream_type: t,
            metadata: Some(pb::StreamMetadata {
                codec: codec.into(),
                ..Default::default()
            }),
        })
    };
    for m in [
        bad("", 0, "opus"),
        bad(&"x".repeat(65), 0, "opus"),
        bad("ok", 3, "opus"),
        bad("ok", 0, &"c".repeat(33)),
    ] {
        let out = h.msg(c(1), m);
        assert_eq!(
            error_of(&to(&out, c(1))),
            Some(pb::ErrorCode::InvalidRequest)
        );
        assert!(to(&out, c(2)).is_empty());
    }
    let out = h.msg(c(1), bad(&"x".repeat(64), 0, &"c".repeat(32)));
    assert!(matches!(&to(&out, c(2))[..], [S::StreamPublished(_)]));
    for i in 1..8 {
        h.msg(c(1), publish(&format!("s{i}"), T::Audio));
    }
    let out = h.msg(c(1), publish("s9", T::Audio));
    assert_eq!(
        error_of(&to(&out, c(1))),
        Some(pb::ErrorCode::InvalidRequest),
        "9th stream"
    );
    // Re-publishing an existing id replaces it.
    let out = h.msg(c(1), publish("s1", T::VideoCamera));
    let pubs = to(&out, c(2));
    assert!(
        matches!(&pubs[..], [S::StreamPublished(p)] if p.stream.as_ref().unwrap().stream_type == CAM)
    );
    let d = h.join(c(3), "d", Role::Participant);
    let a = &d.existing_participants[0];
    assert_eq!(a.streams.len(), 8);
    assert_eq!(a.streams.iter().filter(|s| s.stream_id == "s1").count(), 1);
}

/// A meeting of `n` participants publishing audio, each subscribed with the longest
/// pinned and excluded lists allowed (none of them naming a participant, so every
/// computation walks them in full). Its broadcast budget takes every request these
/// tests send at one instant: what they count is layout work, not the rate.
fn crowded(n: u64) -> H {
    let mut h = H::with(MeetingConfig {
        broadcast_burst: 1_000,
        ..MeetingConfig::default()
    });
    for i in 1..=n {
        h.join(c(i), &format!("u{i}"), Role::Participant);
        h.msg(c(i), publish("mic", T::Audio));
    }
    let max = MeetingConfig::default().max_layout_list as u64;
    let list: Vec<u64> = (1_000_000..1_000_000 + max).collect();
    for i in 1..=n {
        let out = h.msg(
            c(i),
            subscribe(
                pb::LayoutConfig {
                    max_streams: 64,
                    pinned_users: list.clone(),
                    excluded_users: list.clone(),
                    ..Default::default()
                },
                vec![],
            ),
        );
        assert_eq!(assignments(&to(&out, c(i))).len(), 1);
    }
    h
}

/// Mute flags are no input of a layout (rule 11): a mute change, which any participant
/// may send 50 times a second, recomputes no subscriber's layout. Each recomputation
/// walks the roster and the subscriber's lists, so one participant toggling its mute
/// in a meeting of 100 such subscribers made the meeting compute 5,000 layouts a
/// second.
#[test]
fn mute_changes_compute_no_layouts() {
    let mut h = crowded(100);
    let before = h.m.stats().layout_computes;
    let t = std::time::Instant::now();
    for k in 0..50 {
        let out = h.msg(
            c(1),
            M::MuteRequest(pb::MuteRequest {
                audio_muted: k % 2 == 0,
                video_muted: false,
            }),
        );
        // Rule 3 still holds: everyone gets the update.
        assert_eq!(out.len(), 100);
    }
    eprintln!(
        "50 mute changes among 100 subscribers: {} layouts computed, {:?}",
        h.m.stats().layout_computes - before,
        t.elapsed()
    );
    assert_eq!(h.m.stats().layout_computes, before);
}

/// A publication that leaves the publisher's best stream as it was (a re-publication,
/// another stream of the same kind) changes no assignment and recomputes no layout; one
/// that changes it recomputes every subscriber's and sends the new assignments.
#[test]
fn publications_recompute_layouts_only_when_a_best_stream_changes() {
    let mut h = crowded(100);
    let before = h.m.stats().layout_computes;
    for _ in 0..50 {
        let out = h.msg(c(1), publish("mic", T::Audio));
        assert_eq!(out.len(), 100, "StreamPublished to everyone");
    }
    h.msg(c(1), publish("mic2", T::Audio));
    assert_eq!(h.m.stats().layout_computes, before);
    let out = h.msg(c(1), publish("cam", T::VideoCamera));
    assert_eq!(h.m.stats().layout_computes, before + 100);
    let seen = assignments(&to(&out, c(2)));
    assert_eq!(seen.len(), 1);
    assert!(seen[0].iter().any(|&(_, _, t, _)| t == CAM));
}

/// Rule 11 as first written, each candidate checked against the whole lists of `c`
/// (as the client sent them, repeats and all): the reference
/// [`crate::meeting::layout::compute`] must agree with.
fn reference(
    me: u64,
    sub: &crate::meeting::layout_sub::LayoutSub,
    c: &pb::LayoutConfig,
    roster: &[crate::meeting::roster::Participant],
    cfg: &MeetingConfig,
) -> Vec<pb::StreamAssignment> {
    use crate::meeting::layout::best_stream;
    use crate::meeting::roster::Participant;
    let slots = if c.max_streams > 0 {
        u64::from(c.max_streams)
    } else {
        u64::from(c.rows) * u64::from(c.columns)
    };
    let slots = slots.min(cfg.max_layout_slots as u64) as usize;
    let eligible =
        |p: &Participant| (p.seq != me || c.include_self) && !c.excluded_users.contains(&p.user_id);
    let mut chosen: Vec<(&Participant, pb::MediaType)> = Vec::new();
    let taken = |chosen: &[(&Participant, pb::MediaType)], p: &Participant| {
        chosen.iter().any(|(q, _)| q.seq == p.seq)
    };
    for uid in &c.pinned_users {
        for p in roster.iter().filter(|p| p.user_id == *uid && eligible(p)) {
            if chosen.len() < slots && !taken(&chosen, p) {
                if let Some(t) = best_stream(p) {
                    chosen.push((p, t));
                }
            }
        }
    }
    let pinned = chosen.len();
    for p in roster.iter().filter(|p| eligible(p)) {
        if !taken(&chosen[..pinned], p) {
            if let Some(t) = best_stream(p) {
                chosen.push((p, t));
            }
        }
    }
    if c.prefer_video_over_audio {
        if let Some(rest) = chosen.get_mut(pinned..) {
            rest.sort_by_key(|(_, t)| *t == pb::MediaType::MediaAudio);
        }
    }
    chosen.truncate(slots);
    let url = cfg.media_servers.first().cloned().unwrap_or_default();
    chosen
        .iter()
        .enumerate()
        .map(|(i, (p, t))| pb::StreamAssignment {
            stream_id: sub.stream_ids.get(i).copied().unwrap_or(i as u32),
            user_id: p.user_id,
            media_type: *t as i32,
            slot_index: i as u32,
            media_handler_url: url.clone(),
        })
        .collect()
}

/// The computation that looks lists up instead of scanning them gives what rule 11
/// gives, on seeded random meetings: users joining more than once, participants with
/// and without streams of each kind, lists with duplicates, members and strangers.
#[test]
fn layouts_match_the_rule_on_random_meetings() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let kinds = [T::Audio, T::VideoCamera, T::VideoScreen];
    for round in 0..40 {
        let mut h = H::with(MeetingConfig {
            media_servers: vec!["https://mh".into()],
            ..MeetingConfig::default()
        });
        let n = rng.random_range(1..=30u64);
        for i in 1..=n {
            let sub = format!("u{}", rng.random_range(0..n.div_ceil(2) + 1));
            h.join(c(i), &sub, Role::Participant);
            for (k, kind) in kinds.iter().enumerate() {
                if rng.random_bool(0.4) {
                    h.msg(c(i), publish(&format!("s{k}"), *kind));
                }
            }
        }
        let roster = &h.m.participants;
        let users: Vec<u64> = roster.iter().map(|p| p.user_id).collect();
        let list = |rng: &mut rand::rngs::StdRng| -> Vec<u64> {
            (0..rng.random_range(0..12))
                .map(|_| {
                    if rng.random_bool(0.7) {
                        users[rng.random_range(0..users.len())]
                    } else {
                        rng.random_range(1_000..1_010)
                    }
                })
                .collect()
        };
        let mut shared = crate::meeting::layout::Candidates::new(roster);
        for _ in 0..20 {
            let config = pb::LayoutConfig {
                rows: rng.random_range(0..4),
                columns: rng.random_range(0..4),
                max_streams: if rng.random_bool(0.5) {
                    rng.random_range(0..10)
                } else {
                    0
                },
                pinned_users: list(&mut rng),
                excluded_users: list(&mut rng),
                prefer_video_over_audio: rng.random_bool(0.5),
                include_self: rng.random_bool(0.5),
            };
            let sub = crate::meeting::layout_sub::LayoutSub::new(
                config.clone(),
                (0..rng.random_range(0..6)).map(|i| 100 + i).collect(),
            );
            let me = roster[rng.random_range(0..roster.len())].seq;
            let cfg = &h.m.cfg;
            let expected = reference(me, &sub, &config, roster, cfg);
            assert_eq!(
                crate::meeting::layout::compute(me, &sub, roster, cfg),
                expected,
                "round {round}: {:?}",
                sub.config()
            );
            // The same with the roster's candidates shared by every subscription of the
            // round, as a refresh shares them.
            assert_eq!(
                crate::meeting::layout::compute_with(me, &sub, roster, &mut shared, cfg),
                expected,
                "round {round}, shared candidates: {:?}",
                sub.config()
            );
        }
    }
}

/// Through joins, leaves, expiries, publications and layout changes in random order,
/// what every connected subscriber was last sent is what the rule gives for the roster
/// as it is now: the meeting's kept index is dropped whenever it must be, and joins and
/// leaves that cannot change a layout (no streams) rightly send nothing.
#[test]
fn sent_layouts_follow_the_roster_through_random_changes() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let kinds = [T::Audio, T::VideoCamera, T::VideoScreen];
    let mut h = H::with(MeetingConfig {
        media_servers: vec!["https://mh".into()],
        ..MeetingConfig::default()
    });
    let mut next = 1u64;
    let mut live: Vec<ConnKey> = Vec::new();
    // Joins answered, by connection: what a recovery names.
    let mut joined: Vec<(ConnKey, String, pb::JoinResponse)> = Vec::new();
    let mut recovered = 0;
    let users = |rng: &mut rand::rngs::StdRng| -> Vec<u64> {
        (0..rng.random_range(0..6))
            .map(|_| rng.random_range(1..40))
            .collect()
    };
    for step in 0..3_000 {
        match rng.random_range(0..10) {
            0..=1 if live.len() < 40 => {
                let conn = c(next);
                next += 1;
                let sub = format!("u{}", rng.random_range(0..30));
                let r = h.join(conn, &sub, Role::Participant);
                joined.push((conn, sub, r));
                live.push(conn);
            }
            // A participant whose connection dropped comes back on a new one (refused
            // when it left cleanly or its grace ended).
            2 if rng.random_bool(0.5) && joined.iter().any(|(c, _, _)| !live.contains(c)) => {
                let gone: Vec<usize> = (0..joined.len())
                    .filter(|&i| !live.contains(&joined[i].0))
                    .collect();
                let (_, sub, r) = joined.swap_remove(gone[rng.random_range(0..gone.len())]);
                let conn = c(next);
                next += 1;
                let (outcome, out) = h.join_raw(
                    conn,
                    &sub,
                    Role::Participant,
                    &r.correlation_id,
                    &r.binding_token,
                );
                if outcome == JoinOutcome::Recovered {
                    let r = join_response(&out, conn).expect("recovery answered");
                    joined.push((conn, sub, r));
                    live.push(conn);
                    recovered += 1;
                }
            }
            2 if !live.is_empty() => {
                let conn = live.swap_remove(rng.random_range(0..live.len()));
                let clean = rng.random_bool(0.5);
                h.m.handle_disconnect(h.now, conn, clean).unwrap();
            }
            3 => {
                h.advance(Duration::from_secs(rng.random_range(0..20)));
                h.m.handle_timeout(h.now);
            }
            4..=6 if !live.is_empty() => {
                let conn = live[rng.random_range(0..live.len())];
                let k = rng.random_range(0..3);
                h.msg(
                    conn,
                    publish(&format!("s{}", rng.random_range(0..2)), kinds[k]),
                );
            }
            _ if !live.is_empty() => {
                let conn = live[rng.random_range(0..live.len())];
                let config = pb::LayoutConfig {
                    rows: rng.random_range(0..4),
                    columns: rng.random_range(0..4),
                    max_streams: rng.random_range(0..6),
                    prefer_video_over_audio: rng.random_bool(0.5),
                    include_self: rng.random_bool(0.5),
                    pinned_users: users(&mut rng),
                    excluded_users: users(&mut rng),
                };
                if rng.random_bool(0.5) {
                    h.msg(conn, subscribe(config, vec![]));
                } else {
                    let update = M::UpdateLayout(pb::UpdateLayout {
                        new_config: Some(config),
                    });
                    let _ = h.m.handle_message(h.now, conn, ClientMessage::of(update));
                }
            }
            _ => {}
        }
        h.drain();
        let roster = &h.m.participants;
        for p in roster.iter().filter(|p| p.conn.is_some()) {
            let Some(sub) = &p.layout else { continue };
            let expected: Vec<(u64, i32)> = reference(p.seq, sub, sub.config(), roster, &h.m.cfg)
                .iter()
                .map(|a| (a.user_id, a.media_type))
                .collect();
            assert_eq!(
                sub.last.as_deref(),
                Some(expected.as_slice()),
                "step {step}, subscriber {}",
                p.seq
            );
        }
    }
    assert!(recovered > 10, "{recovered} recoveries");
}
