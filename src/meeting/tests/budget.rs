//! The meeting's budget on requests that notify every participant (mute changes, host
//! mutes, lifted host mutes, publications) or every host (unmute requests):
//! docs/protocol.md "Semantics the MC owns", "In this service".
//!
//! One `sub` may hold many seats (a join token may be used more than once, and several
//! devices of one user are legitimate), and each seat may send at the session's message
//! rate. Without a per-meeting budget the meeting's fan-out is that rate times the seats,
//! each to every participant; without a share per user within it, one user's seats
//! spend the meeting's budget and the others' requests are refused.
use super::*;
use client_message::Message as M;

/// The session limits of `SessionConfig::default()`: what one seat may send.
const SESSION_RATE: u64 = 50;
const SESSION_BURST: u64 = 100;
/// `MC_SESSION_OUTBOUND_MAX_FRAMES` default: an honest recipient's queue.
const OUTBOUND_MAX_FRAMES: usize = 1024;

fn mute(seq: u64) -> M {
    M::MuteRequest(pb::MuteRequest {
        audio_muted: seq % 2 == 0,
        video_muted: seq % 3 == 0,
    })
}

/// Seat `i`'s `seq`-th request: mutes on even seats, publications (of four ids, as the
/// load generator does) on odd ones.
fn request(i: u64, seq: u64) -> M {
    if i % 2 == 0 {
        mute(seq)
    } else {
        publish(&format!("cam{}", seq % 4), pb::StreamType::VideoCamera)
    }
}

fn sends(out: &[Outbound]) -> usize {
    out.iter()
        .filter(|o| matches!(o, Outbound::Send { .. }))
        .count()
}

/// Refusals for the budget, the meeting's or the sender's share of it.
fn rate_errors(msgs: &[S]) -> usize {
    msgs.iter()
        .filter(
            |m| matches!(m, S::Error(e) if e.message == MEETING_SPENT || e.message == SHARE_SPENT),
        )
        .count()
}

const HONEST: u64 = 1000;

/// One honest participant (subscribed to a layout, so publications may cost it a
/// StreamAssignments too), then `seats` seats of one `sub`.
fn occupied(seats: u64) -> H {
    let mut h = H::new();
    h.join(c(HONEST), "honest", Role::Participant);
    h.msg(
        c(HONEST),
        M::SubscribeToLayout(pb::SubscribeToLayout {
            layout_type: pb::LayoutType::Grid as i32,
            config: Some(pb::LayoutConfig {
                rows: 2,
                columns: 2,
                ..Default::default()
            }),
            stream_ids: vec![],
        }),
    );
    for i in 0..seats {
        h.join(c(i), "attacker", Role::Participant);
    }
    h.drain();
    h
}

#[test]
fn one_sub_takes_every_seat() {
    let cap = MeetingConfig::default().max_participants as u64;
    let h = occupied(cap - 1);
    assert_eq!(h.m.participant_count() as u64, cap);
    let user_ids: std::collections::HashSet<_> =
        h.m.participants
            .iter()
            .filter(|p| p.sub == "attacker")
            .map(|p| p.user_id)
            .collect();
    // Rule 9: one user_id for the sub, but a participant per seat.
    assert_eq!(user_ids.len(), 1);
}

#[test]
fn a_burst_of_every_seat_stays_below_the_recipients_queue() {
    let cfg = MeetingConfig::default();
    let seats = cfg.max_participants as u64 - 1;
    let mut h = occupied(seats);
    let mut out = Vec::new();
    // Every seat sends its whole session burst at one instant.
    for seq in 0..SESSION_BURST {
        for i in 0..seats {
            h.m.handle_message(h.now, c(i), ClientMessage::of(request(i, seq)))
                .unwrap();
            out.extend(h.drain());
        }
    }
    let honest = to(&out, c(HONEST)).len();
    let refused: usize = (0..seats).map(|i| rate_errors(&to(&out, c(i)))).sum();
    eprintln!(
        "burst: {seats} seats x {SESSION_BURST} requests → {honest} frames to one honest \
         recipient at once, {refused} requests refused"
    );
    // Each accepted request hands a recipient at most two frames (the notification and
    // a layout change): the user's share of the burst bounds what one instant queues.
    let (_, share_burst) = cfg.user_broadcast_share();
    assert!(honest <= 2 * share_burst as usize, "{honest}");
    assert!(honest < OUTBOUND_MAX_FRAMES / 2, "{honest}");
    assert!(closes(&out).is_empty());
    assert_eq!(
        refused as u64,
        seats * SESSION_BURST - u64::from(share_burst)
    );
    assert_eq!(h.m.stats().broadcasts_refused, refused as u64);
    // The refused seats are still there.
    assert_eq!(h.m.connected_count() as u64, seats + 1);
    // The rest of the meeting's budget is the others': the honest participant's own
    // mute passes at the same instant and reaches every seat.
    let out = h.msg(c(HONEST), mute(1));
    assert_eq!(rate_errors(&to(&out, c(HONEST))), 0, "{out:?}");
    assert_eq!(to(&out, c(0)).len(), 1);
}

/// A user's share of the budget is spent by all its seats together, the other users
/// keep the rest of the meeting's, and the share refills at its own rate.
#[test]
fn one_user_spends_a_quarter_of_the_budget_and_the_others_keep_the_rest() {
    let cfg = MeetingConfig {
        broadcast_rate: 40,
        broadcast_burst: 8,
        ..MeetingConfig::default()
    };
    assert_eq!(cfg.user_broadcast_share(), (10, 2));
    let mut h = H::with(cfg);
    for i in 0..3 {
        h.join(c(i), "many", Role::Participant);
    }
    for i in 10..16 {
        h.join(c(i), &format!("u{i}"), Role::Participant);
    }
    h.drain();
    // The three seats of "many": two requests pass, the third is refused with the
    // share's reason, whichever seat sends it, and applies nothing.
    assert_eq!(to(&h.msg(c(0), mute(0)), c(10)).len(), 1);
    assert_eq!(to(&h.msg(c(1), mute(0)), c(10)).len(), 1);
    let out = h.msg(c(2), mute(0));
    assert!(to(&out, c(10)).is_empty(), "{out:?}");
    assert_eq!(errors_saying(&to(&out, c(2)), SHARE_SPENT), 1);
    assert_eq!(
        error_of(&to(&out, c(2))),
        Some(pb::ErrorCode::InvalidRequest)
    );
    assert_eq!(h.m.participants[2].mute, Default::default());
    // The others spend the rest of the meeting's burst (8 − 2), two users of them
    // their whole share; the next user is refused for the meeting, not for its share.
    for (i, n) in [(10, 2), (11, 2), (12, 1), (13, 1)] {
        for _ in 0..n {
            let out = h.msg(c(i), mute(0));
            assert_eq!(rate_errors(&to(&out, c(i))), 0, "{out:?}");
        }
    }
    let out = h.msg(c(14), mute(0));
    assert_eq!(errors_saying(&to(&out, c(14)), MEETING_SPENT), 1, "{out:?}");
    assert_eq!(h.m.stats().broadcasts_refused, 2);
    // A request the meeting refused spent nothing of its user's share: 50 ms later the
    // meeting has two requests' worth, and that user, its share still whole, takes both.
    h.advance(Duration::from_millis(50));
    for _ in 0..2 {
        let out = h.msg(c(14), mute(0));
        assert_eq!(rate_errors(&to(&out, c(14))), 0, "{out:?}");
    }
    // A tenth of a second later the meeting has four requests' worth again, each
    // user one: "many" one request, not four.
    h.advance(Duration::from_millis(100));
    assert_eq!(rate_errors(&to(&h.msg(c(1), mute(0)), c(1))), 0);
    let out = h.msg(c(2), mute(0));
    assert_eq!(errors_saying(&to(&out, c(2)), SHARE_SPENT), 1, "{out:?}");
    assert_eq!(rate_errors(&to(&h.msg(c(14), mute(0)), c(14))), 0);
    assert_eq!(rate_errors(&to(&h.msg(c(15), mute(0)), c(15))), 0);
}

/// Leaving and joining again does not give a user a fresh share.
#[test]
fn a_user_that_joins_again_finds_its_share_as_it_left_it() {
    let mut h = H::new();
    h.join(c(0), "many", Role::Participant);
    h.join(c(9), "other", Role::Participant);
    h.drain();
    let (_, burst) = MeetingConfig::default().user_broadcast_share();
    for seq in 0..u64::from(burst) {
        assert_eq!(rate_errors(&to(&h.msg(c(0), mute(seq)), c(0))), 0);
    }
    assert_eq!(rate_errors(&to(&h.msg(c(0), mute(0)), c(0))), 1);
    h.m.handle_disconnect(h.now, c(0), true).unwrap();
    h.drain();
    h.join(c(1), "many", Role::Participant);
    h.drain();
    let out = h.msg(c(1), mute(0));
    assert_eq!(errors_saying(&to(&out, c(1)), SHARE_SPENT), 1, "{out:?}");
}

#[test]
fn sustained_fan_out_is_bounded_by_the_budget_times_the_participants() {
    let cfg = MeetingConfig::default();
    let seats = cfg.max_participants as u64 - 1;
    let participants = seats + 1;
    let mut h = occupied(seats);
    const SECS: u64 = 5;
    let step = Duration::from_micros(1_000_000 / SESSION_RATE);
    let mut deliveries = 0usize;
    // Every seat at the session's sustained rate, for SECS seconds of the meeting's clock.
    for seq in 0..SECS * SESSION_RATE {
        for i in 0..seats {
            h.m.handle_message(h.now, c(i), ClientMessage::of(request(i, seq)))
                .unwrap();
            deliveries += sends(&h.drain());
        }
        h.advance(step);
    }
    let per_sec = deliveries as u64 / SECS;
    eprintln!(
        "sustained: {seats} seats at {SESSION_RATE}/s → {per_sec} deliveries/s \
         ({} per participant)",
        per_sec / participants
    );
    // One user's seats: what its share admits reaches everyone, with at most a layout
    // change each; every other request is a refusal's reply to its seat.
    let (rate, burst) = cfg.user_broadcast_share();
    let admitted = u64::from(rate) * SECS + u64::from(burst);
    let bound = admitted * participants * 2 + seats * SESSION_RATE * SECS;
    assert!(deliveries as u64 <= bound, "{deliveries} > {bound}");
}

/// A meeting with a budget of 10 a second, bursts of 2, all of which one user may spend:
/// a host on `c(1)` and a participant on `c(2)`, whose join response is returned.
fn host_and_participant() -> (H, pb::JoinResponse) {
    let cfg = MeetingConfig {
        broadcast_rate: 10,
        broadcast_burst: 2,
        // The meeting's own budget: either user may spend all of it.
        user_share_divisor: 1,
        ..MeetingConfig::default()
    };
    let mut h = H::with(cfg);
    h.join(c(1), "host", Role::Host);
    let p = h.join(c(2), "p", Role::Participant);
    h.drain();
    (h, p)
}

/// A host's request to mute `p`'s audio.
fn audio_host_mute(p: &pb::JoinResponse) -> M {
    M::HostMuteRequest(pb::HostMuteRequest {
        participant_id: p.participant_id.clone(),
        audio_muted: true,
        video_muted: false,
        reason: String::new(),
    })
}

#[test]
fn a_refused_request_changes_nothing_and_the_sender_stays() {
    let (mut h, p) = host_and_participant();
    let muted = |a| {
        M::MuteRequest(pb::MuteRequest {
            audio_muted: a,
            video_muted: false,
        })
    };
    assert_eq!(to(&h.msg(c(2), muted(true)), c(1)).len(), 1);
    assert_eq!(to(&h.msg(c(2), muted(false)), c(1)).len(), 1);
    // The budget is spent: each kind of broadcasting request is refused, unapplied.
    let host_mute = audio_host_mute(&p);
    for (from, req) in [
        (c(2), muted(true)),
        (c(1), host_mute.clone()),
        (c(2), publish("cam", pb::StreamType::VideoCamera)),
    ] {
        let out = h.msg(from, req);
        let other = if from == c(1) { c(2) } else { c(1) };
        assert!(to(&out, other).is_empty(), "{out:?}");
        let back = to(&out, from);
        assert_eq!(rate_errors(&back), 1, "{back:?}");
        assert_eq!(error_of(&back), Some(pb::ErrorCode::InvalidRequest));
        assert!(closes(&out).is_empty());
    }
    let me = &h.m.participants[1];
    assert_eq!(me.mute, Default::default());
    assert!(me.streams.is_empty());
    assert_eq!(h.m.stats().broadcasts_refused, 3);
    // Requests that notify no one but the sender are not counted against the budget,
    // nor are requests refused for their own reasons.
    let out = h.msg(c(2), host_mute.clone());
    assert_eq!(error_of(&to(&out, c(2))), Some(pb::ErrorCode::Forbidden));
    // A tenth of a second later one request's worth has come back.
    h.advance(Duration::from_millis(100));
    let out = h.msg(c(1), host_mute);
    assert_eq!(to(&out, c(2)).len(), 1);
    assert!(h.m.participants[1].mute.audio_host);
    // Lifting the host mute also notifies everyone: refused while the budget is empty,
    // the host mute stays and the participant is not told.
    let lift = M::UnmuteResponse(pb::UnmuteResponse {
        participant_id: p.participant_id.clone(),
        audio_approved: true,
        video_approved: false,
    });
    let out = h.msg(c(1), lift.clone());
    assert_eq!(rate_errors(&to(&out, c(1))), 1);
    assert!(to(&out, c(2)).is_empty());
    assert!(h.m.participants[1].mute.audio_host);
    h.advance(Duration::from_millis(100));
    let out = h.msg(c(1), lift);
    assert!(!h.m.participants[1].mute.audio_host);
    assert_eq!(
        to(&out, c(2)).len(),
        2,
        "the update and the forwarded response"
    );
}

/// A host-muted participant's `UnmuteRequest` reaches every host, and every seat of a
/// meeting may be a host's: it spends the budget as a request to everyone does.
#[test]
fn unmute_requests_to_the_hosts_spend_the_budget() {
    let (mut h, p) = host_and_participant();
    let host_mute = audio_host_mute(&p);
    assert_eq!(to(&h.msg(c(1), host_mute), c(2)).len(), 1);
    let ask = ask_audio_unmute();
    assert_eq!(to(&h.msg(c(2), ask.clone()), c(1)).len(), 1);
    // The budget is spent: the host is not asked, the participant is told why.
    let out = h.msg(c(2), ask.clone());
    assert!(to(&out, c(1)).is_empty(), "{out:?}");
    assert_eq!(rate_errors(&to(&out, c(2))), 1);
    assert!(closes(&out).is_empty());
    assert_eq!(h.m.stats().broadcasts_refused, 1);
    assert_eq!(h.m.stats().unmute_requests_forwarded, 1);
    h.advance(Duration::from_millis(100));
    assert_eq!(to(&h.msg(c(2), ask), c(1)).len(), 1);
}

/// A participant's request that a host lift its audio mute.
fn ask_audio_unmute() -> M {
    M::UnmuteRequest(pb::UnmuteRequest {
        request_audio: true,
        request_video: false,
        participant_id: String::new(),
    })
}

/// The participant of [`host_and_participant`], host-muted (which spends one of the
/// meeting's burst of 2), and then the host's connection dropped.
fn host_muted_and_no_host() -> H {
    let (mut h, p) = host_and_participant();
    assert_eq!(to(&h.msg(c(1), audio_host_mute(&p)), c(2)).len(), 1);
    h.m.handle_disconnect(h.now, c(1), false).unwrap();
    h.drain();
    h
}

/// An unmute request no host can receive spends nothing: once a host is back, the
/// participant's budget is whole. (The budget is asked first, so a refused request costs
/// no walk of the roster for hosts.)
#[test]
fn unmute_requests_no_host_receives_spend_no_budget() {
    let mut h = host_muted_and_no_host();
    let ask = ask_audio_unmute();
    for _ in 0..5 {
        let out = h.msg(c(2), ask.clone());
        assert_eq!(error_of(&to(&out, c(2))), Some(pb::ErrorCode::NotFound));
    }
    assert_eq!(h.m.stats().broadcasts_refused, 0);
    h.join(c(3), "host-2", Role::Host);
    h.drain();
    // The burst of 2 less the host mute: one request reaches the host, the next is refused.
    assert_eq!(to(&h.msg(c(2), ask.clone()), c(3)).len(), 1);
    let out = h.msg(c(2), ask);
    assert!(to(&out, c(3)).is_empty(), "{out:?}");
    assert_eq!(rate_errors(&to(&out, c(2))), 1);
    assert_eq!(h.m.stats().unmute_requests_forwarded, 1);
}

/// The budget is asked before the roster is walked for hosts: past it, an unmute
/// request gets the budget's refusal whether or not a host is connected.
#[test]
fn an_unmute_request_past_the_budget_is_refused_before_hosts_are_looked_for() {
    let mut h = host_muted_and_no_host();
    // The participant's self mute spends what the host mute left of the burst of 2.
    let mute = M::MuteRequest(pb::MuteRequest {
        audio_muted: false,
        video_muted: true,
    });
    assert_eq!(rate_errors(&to(&h.msg(c(2), mute), c(2))), 0);
    let ask = ask_audio_unmute();
    let out = h.msg(c(2), ask);
    assert_eq!(rate_errors(&to(&out, c(2))), 1, "{out:?}");
    assert_eq!(h.m.stats().broadcasts_refused, 1);
}

/// Every scenario the repository runs stays under the default budget: loadgen `--rate`
/// is spread evenly over all participants, so a meeting's share is its size's share, and
/// each participant starts at a random phase of its period. The busiest: one meeting of
/// 100 at 50 msg/s, every one a mute (bench/run-suite.sh "meeting-100"); the fan-out
/// benchmark, one meeting of 1,000 at 40 mutes/s.
#[test]
fn honest_traffic_under_the_rate_is_untouched() {
    for (participants, rate) in [(100u64, 50u64), (1000, 40), (50, 83), (5, 25)] {
        let cfg = MeetingConfig {
            max_participants: participants as usize,
            ..MeetingConfig::default()
        };
        let mut h = H::with(cfg);
        for i in 0..participants {
            h.join(c(i), &format!("u{i}"), Role::Participant);
        }
        h.drain();
        // Each participant sends every `period`, from a pseudo-random phase.
        let period_us = 1_000_000 * participants / rate;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let phases: Vec<(u64, u64)> = (0..participants)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % period_us, i)
            })
            .collect();
        const SECS: u64 = 30;
        let mut all = Vec::new();
        for &(phase, i) in &phases {
            let mut t = phase;
            while t < SECS * 1_000_000 {
                all.push((t, i));
                t += period_us;
            }
        }
        all.sort_unstable();
        let mut refused = 0;
        for (seq, (t, i)) in all.iter().enumerate() {
            h.now = h.t0 + Duration::from_micros(*t);
            h.m.handle_message(h.now, c(*i), ClientMessage::of(mute(seq as u64)))
                .unwrap();
            refused += rate_errors(&to(&h.drain(), c(*i)));
        }
        assert_eq!(refused, 0, "{participants} participants at {rate}/s");
    }
}

/// One join token may be used again and again, and each join and each leave is sent to
/// every participant: a user joining and leaving in a loop costs the meeting two
/// deliveries per participant each time. A user's fresh joins are budgeted: as many as
/// the meeting has seats, then one a second.
#[test]
fn a_user_joining_and_leaving_in_a_loop_is_refused_past_its_joins() {
    let cfg = MeetingConfig::default();
    let seats = cfg.max_participants as u64;
    let mut h = H::with(cfg);
    h.join(c(HONEST), "honest", Role::Participant);
    h.drain();
    const SECS: u64 = 10;
    // A new session every millisecond, each joining and leaving at once.
    let mut honest_frames = 0usize;
    let mut refused = 0u64;
    let mut joined = 0u64;
    for i in 10_000..10_000 + SECS * 1000 {
        let (outcome, out) = h.join_raw(c(i), "churn", Role::Participant, "", "");
        honest_frames += to(&out, c(HONEST)).len();
        match outcome {
            JoinOutcome::Joined => {
                joined += 1;
                h.m.handle_disconnect(h.now, c(i), true).unwrap();
                honest_frames += to(&h.drain(), c(HONEST)).len();
            }
            JoinOutcome::Refused(code) => {
                assert_eq!(code, CloseCode::RateLimited);
                assert_eq!(outcome.label(), "rate_limited");
                let back = to(&out, c(i));
                assert_eq!(error_of(&back), Some(pb::ErrorCode::InvalidRequest));
                assert!(
                    matches!(&back[..], [S::Error(e)] if e.message == "join rate limit exceeded"),
                    "{back:?}"
                );
                assert_eq!(closes(&out), vec![(c(i), CloseCode::RateLimited)]);
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
        h.advance(Duration::from_millis(1));
    }
    eprintln!(
        "join churn: {} attempts in {SECS} s → {joined} joins, {refused} refused, \
         {honest_frames} frames to the honest participant",
        SECS * 1000
    );
    // The seats' worth at once, then one a second (the clock starts with a full
    // bucket: the last second's refill may or may not have landed).
    assert!(
        joined >= seats + SECS - 1 && joined <= seats + SECS,
        "{joined}"
    );
    assert_eq!(joined + refused, SECS * 1000);
    assert_eq!(honest_frames as u64, 2 * joined);
    assert_eq!(h.m.stats().joins_rate_limited, refused);
    assert_eq!(h.m.participant_count(), 1);
    // Another user is not affected (recoveries: `recoveries_do_not_spend_joins`).
    let other = h.join(c(50_000), "other", Role::Participant);
    assert!(!other.participant_id.is_empty());
}

/// A recovery (rule 7) is not a fresh join: it sends nothing to the others and spends
/// none of the user's joins, even when the user has spent them.
#[test]
fn recoveries_do_not_spend_joins() {
    let cfg = MeetingConfig {
        max_participants: 3,
        ..MeetingConfig::default()
    };
    let mut h = H::with(cfg);
    let first = h.join(c(0), "u", Role::Participant);
    h.join(c(1), "u", Role::Participant);
    h.join(c(2), "u", Role::Participant);
    h.m.handle_disconnect(h.now, c(2), true).unwrap();
    h.drain();
    let (outcome, _) = h.join_raw(c(3), "u", Role::Participant, "", "");
    assert_eq!(outcome, JoinOutcome::Refused(CloseCode::RateLimited));
    let (outcome, _) = h.join_raw(
        c(4),
        "u",
        Role::Participant,
        &first.correlation_id,
        &first.binding_token,
    );
    assert_eq!(outcome, JoinOutcome::Recovered);
    // A second later the user may join afresh once.
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.join_raw(c(5), "u", Role::Participant, "", "").0,
        JoinOutcome::Joined
    );
}

/// Each recovery sends the whole roster to its new connection: a participant may
/// recover three times at once, then once every ten seconds. One past that is refused
/// before anything changes: its binding token stays good and its connection stays.
#[test]
fn a_participant_recovering_in_a_loop_is_refused_past_its_recoveries() {
    let mut h = H::new();
    h.join(c(100), "other", Role::Participant);
    let first = h.join(c(0), "u", Role::Participant);
    let mut token = first.binding_token.clone();
    let mut conn = 0;
    let recover = |h: &mut H, token: &mut String, conn: &mut u64| {
        *conn += 1;
        let (outcome, out) = h.join_raw(
            c(*conn),
            "u",
            Role::Participant,
            &first.correlation_id,
            token,
        );
        if let Some(r) = join_response(&out, c(*conn)) {
            *token = r.binding_token;
        }
        (outcome, out)
    };
    for _ in 0..RECOVERY_BURST {
        assert_eq!(
            recover(&mut h, &mut token, &mut conn).0,
            JoinOutcome::Recovered
        );
    }
    let (outcome, out) = recover(&mut h, &mut token, &mut conn);
    assert_eq!(outcome, JoinOutcome::Refused(CloseCode::RateLimited));
    assert_eq!(errors_saying(&to(&out, c(conn)), REFUSED_RECOVERY_RATE), 1);
    assert!(
        closes(&out).iter().all(|(to, _)| *to == c(conn)),
        "the connection that recovered last stays: {:?}",
        closes(&out)
    );
    assert_eq!(h.m.stats().recoveries_rate_limited, 1);
    // Ten seconds later, with the same binding token, once more.
    h.advance(Duration::from_secs(u64::from(RECOVERY_EVERY_SECS)));
    assert_eq!(
        recover(&mut h, &mut token, &mut conn).0,
        JoinOutcome::Recovered
    );
    assert_eq!(
        recover(&mut h, &mut token, &mut conn).0,
        JoinOutcome::Refused(CloseCode::RateLimited)
    );
}

/// A host muting everyone sends a host mute per participant at once: a host's requests
/// spend only the meeting's budget, not a user's share of it.
#[test]
fn a_host_mutes_everyone_at_once() {
    let cfg = MeetingConfig::default();
    let others = cfg.max_participants as u64 - 1;
    let mut h = H::with(cfg);
    h.join(c(0), "host", Role::Host);
    let ids: Vec<String> = (1..=others)
        .map(|i| {
            h.join(c(i), &format!("u{i}"), Role::Participant)
                .participant_id
        })
        .collect();
    h.drain();
    for id in &ids {
        let out = h.msg(
            c(0),
            M::HostMuteRequest(pb::HostMuteRequest {
                participant_id: id.clone(),
                audio_muted: true,
                video_muted: false,
                reason: String::new(),
            }),
        );
        assert_eq!(rate_errors(&to(&out, c(0))), 0, "{out:?}");
    }
    assert!(h.m.participants.iter().skip(1).all(|p| p.mute.audio_host));
    assert_eq!(h.m.stats().broadcasts_refused, 0);
}
