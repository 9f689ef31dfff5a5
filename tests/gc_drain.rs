//! The GC contract (`docs/gc-api.md`) end to end with the real binaries: mc-service
//! registers with mc-devgc, readiness follows registration, a GC outage never stops
//! signaling, a restarted GC (404) leads to re-registration, the GC's `draining` stops
//! new meetings both ways, the runbook's SQL works against PostgreSQL, and SIGTERM
//! drains live meetings.

mod harness;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use harness::client::{error_code, runtime, SigClient, M};
use harness::devgc::DevGc;
use harness::{free_tcp_port, Server};
use mc_service::auth::jwt::Role;
use mc_service::auth::DevKeys;
use mc_service::signaling::proto::{client_message as C, pb};

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metric_sum(server: &Server, name: &str, label: &str) -> f64 {
    let (_, _, body) = server.get("/metrics");
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn token(keys: &DevKeys, meeting: &str, user: &str) -> String {
    keys.mint_meeting_token(
        meeting,
        user,
        Role::Participant,
        SystemTime::now(),
        Duration::from_secs(600),
    )
}

async fn join_ok(url: &str, keys: &DevKeys, meeting: &str, user: &str) -> SigClient {
    let mut c = SigClient::connect(url).await;
    let r = c.join(meeting, &token(keys, meeting, user), user).await;
    assert!(
        matches!(r.message, Some(M::JoinResponse(_))),
        "{user} in {meeting}: {r:?}"
    );
    c
}

async fn join_refused(url: &str, keys: &DevKeys, meeting: &str, user: &str) -> i32 {
    let mut c = SigClient::connect(url).await;
    let r = c.join(meeting, &token(keys, meeting, user), user).await;
    r.message
        .as_ref()
        .and_then(error_code)
        .unwrap_or_else(|| panic!("{user}: {r:?}"))
}

/// Alice mutes and Bob hears of it: signaling works.
async fn exchange(alice: &mut SigClient, bob: &mut SigClient, muted: bool) {
    alice
        .send(C::Message::MuteRequest(pb::MuteRequest {
            audio_muted: muted,
            video_muted: false,
        }))
        .await;
    bob.expect(
        "mute update",
        |m| matches!(m, M::ParticipantMuteUpdate(u) if u.audio_self_muted == muted),
    )
    .await;
}

#[test]
fn registration_outage_reregistration_and_gc_draining() {
    let gc_port = free_tcp_port();
    let gc = DevGc::start(gc_port, None);
    let server = Server::start_dev(&[
        "--shards",
        "2",
        "--mc-id",
        "mc-it-1",
        "--gc-registration-url",
        &gc.url(),
        "--gc-heartbeat-interval-secs",
        "1",
    ]);
    server.wait_for_log("GC registration successful", Duration::from_secs(10));
    let log = server.log();
    let order = [
        "Registering with Global Controller...",
        "GC registration successful",
        "Actor system initialized",
        "Meeting Controller ready",
    ];
    let pos: Vec<_> = order
        .iter()
        .map(|l| log.find(l).unwrap_or_else(|| panic!("{l} missing\n{log}")))
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "runbook order:\n{log}");
    assert_eq!(
        log.matches(order[0]).count(),
        1,
        "one registration, logged once:\n{log}"
    );
    let (status, _, body) = server.get("/ready");
    assert_eq!(
        (status, body.as_str()),
        (
            200,
            r#"{"status":"ready","gc_registered":true,"actor_system":"healthy"}"#
        )
    );
    assert_eq!(gc.row_status("mc-it-1").as_deref(), Some("active"));

    let keys = DevKeys::load_or_create(&server.dev_dir).unwrap();
    let url = format!("https://{}/", server.webtransport);
    runtime().block_on(async {
        let mut alice = join_ok(&url, &keys, "gc-m1", "alice").await;
        let mut bob = join_ok(&url, &keys, "gc-m1", "bob").await;

        // The GC goes away (MC_TEST_GC_OUTAGE_SECS, 4 s by default; scripts/test runs
        // minutes): signaling carries on with nothing lost, heartbeat errors count.
        let outage = Duration::from_secs(
            std::env::var("MC_TEST_GC_OUTAGE_SECS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(4),
        );
        let errors_before = metric_sum(&server, "mc_gc_heartbeat_total", "status=\"error\"");
        gc.kill();
        let outage_end = Instant::now() + outage;
        let mut toggles = 0u32;
        while Instant::now() < outage_end {
            exchange(&mut alice, &mut bob, toggles % 2 == 0).await;
            toggles += 1;
            tokio::time::sleep(
                Duration::from_secs(1).min(outage_end.saturating_duration_since(Instant::now())),
            )
            .await;
        }
        exchange(&mut alice, &mut bob, true).await;
        assert_eq!(server.get("/health").0, 200);
        let errors = metric_sum(&server, "mc_gc_heartbeat_total", "status=\"error\"");
        assert!(
            errors >= errors_before + 2.0,
            "heartbeat errors {errors_before} -> {errors}"
        );
        let log = server.log();
        assert!(
            log.contains("GC heartbeat failed") || log.contains("GC unreachable"),
            "{log}"
        );

        // It comes back empty: 404 on heartbeat, and the MC registers again.
        let gc = DevGc::start(gc_port, None);
        let deadline = Instant::now() + Duration::from_secs(10);
        while gc.row_status("mc-it-1").is_none() {
            assert!(Instant::now() < deadline, "no re-registration");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        exchange(&mut alice, &mut bob, false).await;

        // The operator drains the MC at the GC: new meetings refused, existing continue.
        gc.set_status("mc-it-1", "draining");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(
            join_refused(&url, &keys, "gc-new", "carol").await,
            pb::ErrorCode::CapacityExceeded as i32
        );
        let mut dave = join_ok(&url, &keys, "gc-m1", "dave").await;
        exchange(&mut alice, &mut bob, true).await;
        let (status, _, body) = server.get("/ready");
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("\"status\":\"draining\""), "{body}");

        // Back to active: admitted again.
        gc.set_status("mc-it-1", "active");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let carol = join_ok(&url, &keys, "gc-new", "carol").await;
        assert_eq!(server.get("/ready").0, 200);
        for c in [alice, bob, carol] {
            c.leave().await;
        }
        dave.expect("someone left", |m| matches!(m, M::ParticipantLeft(_)))
            .await;
        dave.leave().await;
    });
}

#[test]
fn ready_is_503_until_the_gc_accepts_us() {
    // Nothing listens on the GC port: the MC starts, serves /health, is not ready.
    let gc_port = free_tcp_port();
    let gc_url = format!("http://127.0.0.1:{gc_port}/api/v1/mc/register");
    let server = Server::start_dev(&[
        "--shards",
        "1",
        "--mc-id",
        "mc-it-2",
        "--gc-registration-url",
        &gc_url,
    ]);
    assert_eq!(server.get("/health").0, 200);
    let (status, _, body) = server.get("/ready");
    assert_eq!(status, 503);
    assert_eq!(
        body,
        r#"{"status":"not_ready","gc_registered":false,"actor_system":"healthy"}"#
    );
    let _gc = DevGc::start(gc_port, None);
    wait_until(
        "registration after the GC appears",
        Duration::from_secs(40),
        || server.get("/ready").0 == 200,
    );
}

#[test]
fn sigterm_drains_live_meetings_then_ends_them_and_exits_zero() {
    let gc = DevGc::start(free_tcp_port(), None);
    let mut server = Server::start_dev(&[
        "--shards",
        "2",
        "--mc-id",
        "mc-it-3",
        "--gc-registration-url",
        &gc.url(),
        "--gc-heartbeat-interval-secs",
        "1",
        "--drain-timeout-secs",
        "3",
    ]);
    server.wait_for_log("GC registration successful", Duration::from_secs(10));
    let keys = DevKeys::load_or_create(&server.dev_dir).unwrap();
    let url = format!("https://{}/", server.webtransport);
    runtime().block_on(async {
        let mut alice = join_ok(&url, &keys, "drain-m", "alice").await;
        let mut bob = join_ok(&url, &keys, "drain-m", "bob").await;
        bob.received.clear();
        let t0 = Instant::now();
        server.signal(libc::SIGTERM);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (status, _, body) = server.get("/ready");
        assert_eq!(status, 503, "ready turns off at once: {body}");
        assert!(body.contains("draining"), "{body}");
        assert_eq!(
            server.get("/health").0,
            200,
            "liveness stays up while draining"
        );

        // Live participants keep exchanging messages; none is lost.
        for i in 0..10 {
            exchange(&mut alice, &mut bob, i % 2 == 0).await;
        }
        // New sessions are refused.
        let ep = harness::client::endpoint();
        let refused = tokio::time::timeout(Duration::from_secs(5), ep.connect(url.as_str())).await;
        assert!(
            matches!(refused, Ok(Err(_))),
            "a new session during drain must be refused"
        );

        // After the drain timeout: MEETING_ENDED, then the session closes.
        for c in [&mut alice, &mut bob] {
            c.expect("meeting ended", |m| {
                matches!(m, M::ParticipantLeft(l)
                if l.reason == pb::LeaveReason::MeetingEnded as i32)
            })
            .await;
            c.expect_closed().await;
        }
        assert!(
            t0.elapsed() >= Duration::from_secs(3),
            "ended before the drain timeout"
        );
    });
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("exited after the drain");
    assert!(status.success(), "{status:?}\n{}", server.log());
    let log = server.log();
    for phase in [
        "Drain started",
        "Drain timeout reached",
        "Drain complete",
        "deregistering",
        "Shutdown complete",
    ] {
        assert!(log.contains(phase), "phase {phase:?} not logged:\n{log}");
    }
    wait_until("deregistered at the GC", Duration::from_secs(5), || {
        gc.row_status("mc-it-3").as_deref() == Some("deregistered")
    });
}

/// The runbook's SQL, verbatim, against the development GC on PostgreSQL. Needs
/// DATABASE_URL (scripts/test starts PostgreSQL); with MC_REQUIRE_POSTGRES=1 a missing
/// database fails the test instead of skipping it.
#[test]
fn runbook_sql_against_postgres() {
    let Ok(db) = std::env::var("DATABASE_URL") else {
        assert_ne!(
            std::env::var("MC_REQUIRE_POSTGRES").as_deref(),
            Ok("1"),
            "DATABASE_URL is required"
        );
        eprintln!("skipped: no DATABASE_URL");
        return;
    };
    let psql = |sql: &str| -> String {
        let out = Command::new("psql")
            .arg(&db)
            .args(["-At", "-F", "|", "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let gc = DevGc::start(free_tcp_port(), Some(&db));
    let id = format!("mc-pg-{}", std::process::id());
    let server = Server::start_dev(&[
        "--shards",
        "2",
        "--mc-id",
        &id,
        "--gc-registration-url",
        &gc.url(),
        "--gc-heartbeat-interval-secs",
        "1",
    ]);
    server.wait_for_log("GC registration successful", Duration::from_secs(10));
    let keys = DevKeys::load_or_create(&server.dev_dir).unwrap();
    let url = format!("https://{}/", server.webtransport);
    runtime().block_on(async {
        let mut alice = join_ok(&url, &keys, "pg-m", "alice").await;
        let mut bob = join_ok(&url, &keys, "pg-m", "bob").await;
        tokio::time::sleep(Duration::from_millis(2500)).await;

        // Runbook step 7 / Test 4.
        let rows = psql("SELECT id, region, capacity, current_sessions, last_heartbeat, status FROM meeting_controllers WHERE last_heartbeat > NOW() - INTERVAL '30 seconds' ORDER BY last_heartbeat DESC;");
        let row = rows.lines().find(|l| l.starts_with(&format!("{id}|"))).unwrap_or_else(|| panic!("no row for {id}:\n{rows}"));
        let cols: Vec<&str> = row.split('|').collect();
        assert_eq!(cols[3], "2", "current_sessions = live sessions: {row}");
        assert_eq!(cols[5], "active", "{row}");
        let age = psql(&format!("SELECT EXTRACT(EPOCH FROM (NOW() - last_heartbeat)) FROM meeting_controllers WHERE id = '{id}';"));
        assert!(age.trim().parse::<f64>().unwrap() < 15.0, "last_heartbeat age {age}");

        // Runbook step 2: the operator drains it; within one heartbeat no new meetings.
        psql(&format!("UPDATE meeting_controllers SET status = 'draining' WHERE id = '{id}';"));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(join_refused(&url, &keys, "pg-new", "carol").await, pb::ErrorCode::CapacityExceeded as i32);
        exchange(&mut alice, &mut bob, true).await;

        // Rollback step 4: back to active, admitted again.
        psql(&format!("UPDATE meeting_controllers SET status = 'active' WHERE id = '{id}';"));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let carol = join_ok(&url, &keys, "pg-new", "carol").await;
        for c in [alice, bob, carol] {
            c.leave().await;
        }
    });
}
