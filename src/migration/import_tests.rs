//! Every answer of the import endpoint, with an injected clock.

use std::collections::BTreeMap;

use super::*;
use crate::auth::binding::BindingSecret;
use crate::meeting::{
    ConnectionSnapshot, MeetingSettings, MuteSnapshot, ParticipantSnapshot, Role, SNAPSHOT_VERSION,
};

const NOW: u64 = 1_700_000_000;

fn key() -> MigrationKey {
    MigrationKey::derive(&BindingSecret::from_bytes(vec![5u8; 32]).unwrap())
}

fn snapshot(meeting_id: &str) -> MeetingSnapshot {
    MeetingSnapshot {
        version: SNAPSHOT_VERSION,
        meeting_id: meeting_id.into(),
        settings: MeetingSettings {
            disconnect_grace_ms: 30_000,
            max_participants: 100,
            max_streams_per_participant: 8,
        },
        user_ids: BTreeMap::from([("alice".to_string(), 1)]),
        next_user_id: 2,
        participants: vec![ParticipantSnapshot {
            participant_id: "p-1".into(),
            user_id: 1,
            sub: "alice".into(),
            name: "Alice".into(),
            role: Role::Host,
            correlation_id: "c-1".into(),
            binding_nonce: "00".repeat(16),
            joined_at: 1_700_000_000_000,
            streams: vec![],
            mute: MuteSnapshot::default(),
            layout: None,
            connection: ConnectionSnapshot::Connected,
        }],
        // As an MC that does not carry budgets writes it.
        broadcasts_left: None,
        user_budgets: vec![],
    }
}

fn request(meeting_id: &str) -> ImportRequest {
    ImportRequest {
        source: SourceMc {
            id: "mc-a".into(),
            webtransport_endpoint: "https://10.0.3.7:4433".into(),
            http_endpoint: "http://10.0.3.7:8080".into(),
        },
        snapshot: snapshot(meeting_id),
    }
}

fn check(signature: Option<&str>, body: &[u8]) -> Result<ImportRequest, ImportAnswer> {
    check_request(&key(), signature, body, NOW, &MeetingConfig::default())
}

#[test]
fn a_signed_valid_request_passes_step_one() {
    let req = request("m1");
    let body = req.to_body();
    let sig = key().sign(NOW - 5, &body);
    assert_eq!(check(Some(&sig), &body), Ok(req));
}

#[test]
fn step_one_answers_413_401_400() {
    let body = request("m1").to_body();
    // 413 before anything else: an unsigned huge body is not even hashed.
    let huge = vec![b' '; DEFAULT_MAX_HANDOVER_BYTES + 1];
    let e = check(None, &huge).unwrap_err();
    assert_eq!((e.status(), e.label()), (413, "too_large"));

    // 401: missing, forged, stale, or signed by another cluster.
    let cases = [
        None,
        Some(format!("t={NOW},v1={}", "00".repeat(32))),
        Some(key().sign(NOW - 31, &body)),
        Some(
            MigrationKey::derive(&BindingSecret::from_bytes(vec![6u8; 32]).unwrap())
                .sign(NOW, &body),
        ),
    ];
    for sig in cases {
        let e = check(sig.as_deref(), &body).unwrap_err();
        assert_eq!(e.status(), 401, "{sig:?}");
        assert!(matches!(e, ImportAnswer::Unauthorized(_)));
        // The reason is not told to the caller.
        assert_eq!(
            e.body(),
            r#"{"accepted":false,"reason":"invalid signature"}"#
        );
    }

    // 400: signed but not an import request, or an inconsistent snapshot.
    let mut bad = request("m1");
    bad.snapshot.participants[0].user_id = 9;
    for body in [b"{}".to_vec(), b"not json".to_vec(), bad.to_body()] {
        let sig = key().sign(NOW, &body);
        let e = check(Some(&sig), &body).unwrap_err();
        assert_eq!(e.status(), 400);
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["accepted"], false);
        assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()));
    }
}

#[test]
fn step_two_answers_every_case() {
    let req = request("m1");
    let free = TargetState::default();
    let digest = req.snapshot.digest();
    let other = request("m2").snapshot.digest();
    let cases = [
        (Holding::Nothing, free, ImportAnswer::Accepted),
        (Holding::Imported { digest }, free, ImportAnswer::Repeat),
        (
            Holding::Imported { digest: other },
            free,
            ImportAnswer::Conflict,
        ),
        (
            Holding::Live { participants: 3 },
            free,
            ImportAnswer::Conflict,
        ),
        (
            Holding::Live { participants: 0 },
            free,
            ImportAnswer::Accepted,
        ),
        (
            Holding::Nothing,
            TargetState {
                draining: true,
                at_capacity: false,
            },
            ImportAnswer::Draining,
        ),
        (
            Holding::Nothing,
            TargetState {
                draining: false,
                at_capacity: true,
            },
            ImportAnswer::AtCapacity,
        ),
        // A repeat is still 200 while draining: the target holds the meeting.
        (
            Holding::Imported { digest },
            TargetState {
                draining: true,
                at_capacity: true,
            },
            ImportAnswer::Repeat,
        ),
    ];
    for (holding, state, want) in cases {
        assert_eq!(decide(&req, holding, state), want, "{holding:?} {state:?}");
    }
}

#[test]
fn statuses_labels_and_bodies() {
    let all = [
        (ImportAnswer::Accepted, 200, "ok"),
        (ImportAnswer::Repeat, 200, "repeat"),
        (ImportAnswer::Conflict, 409, "conflict"),
        (ImportAnswer::Draining, 503, "draining"),
        (ImportAnswer::AtCapacity, 503, "capacity"),
        (ImportAnswer::TooLarge, 413, "too_large"),
        (
            ImportAnswer::Unauthorized(SignatureError::Missing),
            401,
            "unauthorized",
        ),
        (ImportAnswer::BadRequest("x".into()), 400, "bad_request"),
    ];
    for (a, status, label) in all {
        assert_eq!((a.status(), a.label()), (status, label));
        let v: serde_json::Value = serde_json::from_str(&a.body()).unwrap();
        assert_eq!(v["accepted"], status == 200);
    }
}

#[test]
fn the_digest_follows_the_content() {
    let a = snapshot("m1");
    let mut b = a.clone();
    assert_eq!(a.digest(), b.digest());
    // What is left of the budgets refills with time: the same meeting exported again
    // after an aborted hand-over is the same content.
    b.broadcasts_left = Some(7);
    b.user_budgets = vec![crate::meeting::UserBudgetSnapshot {
        user_id: 1,
        broadcasts_left: 0,
        joins_left: 3,
    }];
    assert_eq!(a.digest(), b.digest());
    b.participants[0].mute.audio_self = true;
    assert_ne!(a.digest(), b.digest());
    // The body round-trips through JSON unchanged.
    let req = request("m1");
    let back: ImportRequest = serde_json::from_slice(&req.to_body()).unwrap();
    assert_eq!(back, req);
}
