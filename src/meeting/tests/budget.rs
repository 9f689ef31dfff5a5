//! The meeting's budget on requests that notify every participant (mute changes, host
//! mutes, lifted host mutes, publications) or every host (unmute requests):
//! docs/protocol.md "Semantics the MC owns", "In this service".
//!
//! One `sub` may hold many seats (a join token may be used more than once, and several
//! devices of one user are legitimate), and each seat may send at the session's message
//! rate. Without a per-meeting budget the meeting's fan-out is that rate times the seats,
//! each to every participant.
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

fn rate_errors(msgs: &[S]) -> usize {
    msgs.iter()
        .filter(|m| matches!(m, S::Error(e) if e.message == "meeting message rate limit exceeded"))
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
    // a layout change): the burst bounds what one instant queues.
    assert!(honest <= 2 * cfg.broadcast_burst as usize, "{honest}");
    assert!(honest < OUTBOUND_MAX_FRAMES / 2, "{honest}");
    assert!(closes(&out).is_empty());
    assert_eq!(
        refused as u64,
        seats * SESSION_BURST - u64::from(cfg.broadcast_burst)
    );
    assert_eq!(h.m.stats().broadcasts_refused, refused as u64);
    // The refused seats are still there.
    assert_eq!(h.m.connected_count() as u64, seats + 1);
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
    let bound =
        (u64::from(cfg.broadcast_rate) * SECS + u64::from(cfg.broadcast_burst)) * participants * 2;
    assert!(deliveries as u64 <= bound, "{deliveries} > {bound}");
}

/// A meeting with a budget of 10 a second, bursts of 2: a host on `c(1)` and a
/// participant on `c(2)`, whose join response is returned.
fn host_and_participant() -> (H, pb::JoinResponse) {
    let cfg = MeetingConfig {
        broadcast_rate: 10,
        broadcast_burst: 2,
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
    let ask = M::UnmuteRequest(pb::UnmuteRequest {
        request_audio: true,
        request_video: false,
        participant_id: String::new(),
    });
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
