//! mc-loadgen's own rendering of the wire contract agrees with mc-service's: tokens it
//! mints from a dev dir verify with the MC's verifier, and its protobuf frames decode
//! both ways with the MC's generated `dark_tower.signaling.v1` types (docs/protocol.md).

use std::sync::Arc;
use std::time::SystemTime;

use mc_bench::loadgen::proto as lg;
use mc_bench::loadgen::token::{Minter, TokenArgs};
use mc_service::auth::jwt::{JwtVerifier, Role, VerifierConfig};
use mc_service::auth::DevKeys;
use mc_service::signaling::proto::{self as mc, pb};
use prost::Message;

#[test]
fn tokens_minted_from_the_dev_dir_verify_with_the_mc() {
    let dir = std::env::temp_dir().join(format!("lg-wire-{}", std::process::id()));
    let keys = DevKeys::load_or_create(&dir).unwrap();
    let minter = Minter::load(
        &TokenArgs {
            token_ttl: 600,
            ..Default::default()
        },
        Some(&dir),
    )
    .unwrap();
    let v = JwtVerifier::new(VerifierConfig::default(), Arc::new(keys.jwks()));
    let host = v
        .verify(
            &minter.mint("m1-u0", "m1", "host").unwrap(),
            "m1",
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!((host.sub.as_str(), host.role), ("m1-u0", Role::Host));
    let p = v
        .verify(
            &minter.mint("m1-u1", "m1", "participant").unwrap(),
            "m1",
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(p.role, Role::Participant);
    assert!(
        v.verify(
            &minter.mint("x", "m1", "host").unwrap(),
            "m2",
            SystemTime::now()
        )
        .is_err(),
        "meeting id is bound"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn to_mc(m: lg::client_message::Message) -> mc::client_message::Message {
    let f = lg::encode(&lg::ClientMessage {
        message: Some(m),
        trace_parent: "00-t".into(),
    });
    let len = u32::from_be_bytes([f[0], f[1], f[2], f[3]]) as usize;
    assert_eq!(len, f.len() - 4);
    let d = mc::ClientMessage::decode(&f[4..]).unwrap();
    assert_eq!(d.trace_parent, "00-t");
    d.message.unwrap()
}

#[test]
fn client_frames_decode_as_the_mcs_types() {
    use lg::client_message::Message as L;
    use mc::client_message::Message as M;
    let j = lg::JoinRequest {
        meeting_id: "m".into(),
        join_token: "t".into(),
        participant_name: "n".into(),
        ..Default::default()
    };
    let M::JoinRequest(r) = to_mc(L::JoinRequest(j)) else {
        panic!("join")
    };
    assert_eq!(
        (
            r.meeting_id.as_str(),
            r.join_token.as_str(),
            r.participant_name.as_str()
        ),
        ("m", "t", "n")
    );
    let M::MuteRequest(r) = to_mc(L::MuteRequest(lg::MuteRequest {
        audio_muted: true,
        video_muted: false,
    })) else {
        panic!("mute")
    };
    assert!(r.audio_muted && !r.video_muted);
    let s = lg::MediaStream {
        stream_id: "cam1".into(),
        stream_type: 1,
        metadata: Some(lg::StreamMetadata {
            codec: "VP8".into(),
            max_bitrate: 77,
        }),
    };
    let M::PublishStream(r) = to_mc(L::PublishStream(s)) else {
        panic!("publish")
    };
    assert_eq!((r.stream_id.as_str(), r.stream_type), ("cam1", 1));
    assert_eq!(r.metadata.unwrap().max_bitrate, 77);
    let cfg = Some(lg::LayoutConfig {
        rows: 2,
        columns: 3,
        max_streams: 0,
    });
    let M::SubscribeToLayout(r) = to_mc(L::SubscribeToLayout(lg::SubscribeToLayout {
        layout_type: 0,
        config: cfg.clone(),
    })) else {
        panic!("sub")
    };
    assert_eq!(r.config.unwrap().columns, 3);
    let M::UpdateLayout(r) = to_mc(L::UpdateLayout(lg::UpdateLayout { new_config: cfg })) else {
        panic!("upd")
    };
    assert_eq!(r.new_config.unwrap().rows, 2);
    let q = lg::StreamQualityUpdate {
        stream_id: "cam0".into(),
        available_bitrate: 5,
        packet_loss: 0.5,
        rtt_ms: 9,
    };
    let M::StreamQualityUpdate(r) = to_mc(L::StreamQualityUpdate(q)) else {
        panic!("quality")
    };
    assert_eq!((r.available_bitrate, r.rtt_ms), (5, 9));
}

fn to_lg(m: mc::server_message::Message) -> lg::server_message::Message {
    let body = mc::ServerMessage::of(m).encode_to_vec();
    let mut r = lg::FrameReader::default();
    r.handle_bytes(&(body.len() as u32).to_be_bytes());
    r.handle_bytes(&body);
    r.poll_frame().unwrap().unwrap().message.unwrap()
}

#[test]
fn mc_server_messages_decode_in_the_load_generator() {
    use lg::server_message::Message as L;
    use mc::server_message::Message as M;
    let L::ParticipantMuteUpdate(u) = to_lg(M::ParticipantMuteUpdate(pb::ParticipantMuteUpdate {
        participant_id: "p".into(),
        audio_self_muted: true,
        ..Default::default()
    })) else {
        panic!("mute")
    };
    assert_eq!((u.participant_id.as_str(), u.audio_self_muted), ("p", true));
    let stream = pb::MediaStream {
        stream_id: "s".into(),
        stream_type: 1,
        metadata: Some(pb::StreamMetadata {
            codec: "VP8".into(),
            max_bitrate: 42,
            video: None,
        }),
    };
    let L::StreamPublished(u) = to_lg(M::StreamPublished(pb::StreamPublished {
        participant_id: "p".into(),
        stream: Some(stream.clone()),
    })) else {
        panic!("published")
    };
    assert_eq!(u.stream.unwrap().metadata.unwrap().max_bitrate, 42);
    let L::JoinResponse(r) = to_lg(M::JoinResponse(pb::JoinResponse {
        participant_id: "me".into(),
        user_id: 3,
        existing_participants: vec![pb::Participant {
            participant_id: "other".into(),
            streams: vec![stream.clone()],
            ..Default::default()
        }],
        correlation_id: "corr".into(),
        binding_token: "bind".into(),
        ..Default::default()
    })) else {
        panic!("join")
    };
    assert_eq!((r.participant_id.as_str(), r.user_id), ("me", 3));
    assert_eq!(
        (r.correlation_id.as_str(), r.binding_token.as_str()),
        ("corr", "bind")
    );
    let other = &r.existing_participants[0];
    assert_eq!(other.streams[0].metadata.as_ref().unwrap().max_bitrate, 42);
    let L::RedirectToMc(r) = to_lg(M::RedirectToMc(pb::RedirectToMc {
        new_mc_endpoint: "https://127.0.0.1:4434".into(),
        meeting_id: "m".into(),
        reason: "draining".into(),
    })) else {
        panic!("redirect")
    };
    assert_eq!(
        (
            r.new_mc_endpoint.as_str(),
            r.meeting_id.as_str(),
            r.reason.as_str()
        ),
        ("https://127.0.0.1:4434", "m", "draining")
    );
    let e = mc::ServerMessage::error(mc::ErrorCode::Forbidden, "no");
    let L::Error(e) = to_lg(e.message.unwrap()) else {
        panic!("error")
    };
    assert_eq!(lg::error_code_name(e.code), "FORBIDDEN");
    assert!(matches!(
        to_lg(M::StreamAssignments(pb::StreamAssignments::default())),
        L::StreamAssignments(_)
    ));
}
