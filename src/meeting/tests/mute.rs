//! Mute (docs/protocol.md rules 2 and 3).
use super::*;
use client_message::Message as M;

fn updates(msgs: &[S]) -> Vec<pb::ParticipantMuteUpdate> {
    msgs.iter()
        .filter_map(|m| match m {
            S::ParticipantMuteUpdate(u) => Some(u.clone()),
            _ => None,
        })
        .collect()
}

fn host_mute(pid: &str, audio: bool, video: bool) -> M {
    M::HostMuteRequest(pb::HostMuteRequest {
        participant_id: pid.into(),
        audio_muted: audio,
        video_muted: video,
        reason: "noise".into(),
    })
}

/// host on c(1), participant on c(2), another participant on c(3).
fn setup() -> (H, pb::JoinResponse, pb::JoinResponse) {
    let mut h = H::new();
    let host = h.join(c(1), "host", Role::Host);
    let p = h.join(c(2), "p", Role::Participant);
    h.join(c(3), "q", Role::Participant);
    h.drain();
    (h, host, p)
}

#[test]
fn self_mute_is_broadcast_to_everyone_including_the_sender() {
    let (mut h, _, p) = setup();
    let out = h.msg(
        c(2),
        M::MuteRequest(pb::MuteRequest {
            audio_muted: true,
            video_muted: true,
        }),
    );
    for n in 1..=3 {
        let u = updates(&to(&out, c(n)));
        assert_eq!(u.len(), 1, "conn {n}");
        assert_eq!(u[0].participant_id, p.participant_id);
        assert!(u[0].audio_self_muted && u[0].video_self_muted);
        assert!(!u[0].audio_host_muted && u[0].host_muted_by.is_empty());
    }
}

#[test]
fn host_mute_requires_host_role_and_a_known_target() {
    let (mut h, host, p) = setup();
    let out = h.msg(c(3), host_mute(&p.participant_id, true, false));
    assert_eq!(error_of(&to(&out, c(3))), Some(pb::ErrorCode::Forbidden));
    assert!(to(&out, c(2)).is_empty() && closes(&out).is_empty());
    let out = h.msg(c(1), host_mute("nobody", true, false));
    assert_eq!(error_of(&to(&out, c(1))), Some(pb::ErrorCode::NotFound));
    let out = h.msg(c(1), host_mute(&p.participant_id, true, false));
    for n in 1..=3 {
        let u = updates(&to(&out, c(n)));
        assert_eq!(u.len(), 1);
        assert!(u[0].audio_host_muted && !u[0].video_host_muted);
        assert_eq!(u[0].host_muted_by, host.participant_id);
    }
}

#[test]
fn self_unmute_does_not_lift_host_mute() {
    let (mut h, host, p) = setup();
    h.msg(c(1), host_mute(&p.participant_id, true, true));
    let out = h.msg(
        c(2),
        M::MuteRequest(pb::MuteRequest {
            audio_muted: false,
            video_muted: false,
        }),
    );
    let u = updates(&to(&out, c(3)));
    assert_eq!(u.len(), 1, "accepted, no error (rule 3)");
    assert!(u[0].audio_host_muted && u[0].video_host_muted);
    assert_eq!(u[0].host_muted_by, host.participant_id);
    assert_eq!(error_of(&to(&out, c(2))), None);
}

#[test]
fn unmute_request_goes_to_hosts_and_response_lifts() {
    let (mut h, host, p) = setup();
    let host2 = h.join(c(4), "host2", Role::Host);
    h.drain();
    // Not host-muted yet: nothing to ask for.
    let ask = M::UnmuteRequest(pb::UnmuteRequest {
        request_audio: true,
        request_video: false,
        participant_id: "spoofed".into(),
    });
    let out = h.msg(c(2), ask.clone());
    assert_eq!(
        error_of(&to(&out, c(2))),
        Some(pb::ErrorCode::InvalidRequest)
    );

    h.msg(c(1), host_mute(&p.participant_id, true, true));
    let out = h.msg(c(2), ask);
    for host_conn in [c(1), c(4)] {
        assert!(matches!(&to(&out, host_conn)[..], [S::UnmuteRequest(r)]
            if r.participant_id == p.participant_id && r.request_audio && !r.request_video));
    }
    assert!(to(&out, c(3)).is_empty() && to(&out, c(2)).is_empty());

    // A non-host cannot answer.
    let resp = M::UnmuteResponse(pb::UnmuteResponse {
        participant_id: p.participant_id.clone(),
        audio_approved: true,
        video_approved: false,
    });
    let out = h.msg(c(3), resp.clone());
    assert_eq!(error_of(&to(&out, c(3))), Some(pb::ErrorCode::Forbidden));

    let out = h.msg(c(4), resp);
    let u = updates(&to(&out, c(3)));
    assert_eq!(u.len(), 1);
    assert!(!u[0].audio_host_muted && u[0].video_host_muted);
    assert_eq!(
        u[0].host_muted_by, host.participant_id,
        "video still host-muted"
    );
    let mine = to(&out, c(2));
    assert!(
        matches!(&mine[..], [S::ParticipantMuteUpdate(_), S::UnmuteResponse(r)] if r.audio_approved)
    );
    let _ = host2;

    // Lifting the rest directly via HostMuteRequest{false,false} clears host_muted_by.
    let out = h.msg(c(1), host_mute(&p.participant_id, false, false));
    let u = updates(&to(&out, c(2)));
    assert!(!u[0].video_host_muted && u[0].host_muted_by.is_empty());
}

#[test]
fn unmute_request_without_connected_host_is_not_found() {
    let mut h = H::new();
    let _host = h.join(c(1), "host", Role::Host);
    let p = h.join(c(2), "p", Role::Participant);
    h.msg(c(1), host_mute(&p.participant_id, true, false));
    h.m.handle_disconnect(h.now, c(1), false).unwrap();
    let out = h.msg(
        c(2),
        M::UnmuteRequest(pb::UnmuteRequest {
            request_audio: true,
            request_video: false,
            participant_id: String::new(),
        }),
    );
    assert_eq!(error_of(&to(&out, c(2))), Some(pb::ErrorCode::NotFound));
}

#[test]
fn joiner_learns_current_mutes() {
    let (mut h, _, p) = setup();
    h.msg(c(1), host_mute(&p.participant_id, true, false));
    let (_, out) = h.join_raw(c(9), "late", Role::Participant, "", "");
    let u = updates(&to(&out, c(9)));
    assert_eq!(u.len(), 1);
    assert_eq!(u[0].participant_id, p.participant_id);
}
