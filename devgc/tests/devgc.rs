//! The real `mc-devgc` binary on loopback: docs/gc-api.md's routes, operator status, fault
//! injection, the unhealthy sweep — in memory, and with PostgreSQL when DATABASE_URL is
//! set (the runbook's SQL verbatim). `MC_REQUIRE_POSTGRES=1` makes a missing
//! DATABASE_URL a failure, so CI cannot skip the PostgreSQL test silently.

#[path = "devgc_util.rs"]
mod util;

use std::time::{Duration, Instant};

use util::{heartbeat_body, register_body, unique_id, DevGc};

#[test]
fn register_heartbeat_draining_deregister_in_memory() {
    let gc = DevGc::start("127.0.0.1:0", &["--heartbeat-interval-secs", "7"]);
    let id = "mc-meeting-controller-7d9f-abc12";
    let hb = heartbeat_body(id, 57);

    // Unknown MC: heartbeat 404 (the MC then registers again).
    assert_eq!(gc.call("POST", "/api/v1/mc/heartbeat", &hb).0, 404);
    let (s, r) = gc.call("POST", "/api/v1/mc/register", &register_body(id));
    assert_eq!(s, 200);
    assert_eq!(
        r,
        serde_json::json!({"accepted": true, "status": "active", "heartbeat_interval_secs": 7})
    );
    let (s, r) = gc.call("POST", "/api/v1/mc/heartbeat", &hb);
    assert_eq!(
        (s, r),
        (
            200,
            serde_json::json!({"acknowledged": true, "status": "active"})
        )
    );
    let row = gc.row(id).unwrap();
    assert_eq!(
        (
            row["current_sessions"].as_i64(),
            row["current_meetings"].as_i64()
        ),
        (Some(57), Some(12))
    );
    assert_eq!(row["webtransport_endpoint"], "https://10.0.3.7:4433");

    // An operator drains it: the next heartbeat says so; re-registration keeps it.
    let (s, _) = gc.call(
        "PUT",
        &format!("/admin/mc/{id}/status"),
        r#"{"status":"draining"}"#,
    );
    assert_eq!(s, 200);
    assert_eq!(
        gc.call("POST", "/api/v1/mc/heartbeat", &hb).1["status"],
        "draining"
    );
    assert_eq!(
        gc.call("POST", "/api/v1/mc/register", &register_body(id)).1["status"],
        "draining"
    );
    assert_eq!(
        gc.call("POST", &format!("/admin/mc/{id}/status"), "active")
            .0,
        200
    );
    assert_eq!(
        gc.call("POST", "/api/v1/mc/heartbeat", &hb).1["status"],
        "active"
    );
    assert_eq!(gc.call("POST", "/admin/mc/nope/status", "active").0, 404);
    assert_eq!(
        gc.call("POST", &format!("/admin/mc/{id}/status"), "bogus")
            .0,
        400
    );

    // Deregister: row kept as deregistered; heartbeats are then unknown.
    assert_eq!(
        gc.call(
            "POST",
            "/api/v1/mc/deregister",
            &format!(r#"{{"id":"{id}"}}"#)
        )
        .0,
        200
    );
    assert_eq!(gc.row(id).unwrap()["status"], "deregistered");
    assert_eq!(gc.call("POST", "/api/v1/mc/heartbeat", &hb).0, 404);

    // Refusals carry a reason.
    for bad in [
        r#"{"id":"a b","region":"r","capacity":1}"#,
        r#"{"id":"a","region":"","capacity":1}"#,
        "{",
        r#"{"id":"a","region":"r","capacity":-1}"#,
    ] {
        let (s, r) = gc.call("POST", "/api/v1/mc/register", bad);
        assert_eq!(s, 400, "{bad}");
        assert_eq!(r["accepted"], false);
        assert!(r["reason"].as_str().is_some_and(|s| !s.is_empty()));
    }
    assert_eq!(gc.call("GET", "/api/v1/mc/register", "").0, 405);
    assert_eq!(gc.call("GET", "/health", "").0, 200);
}

#[test]
fn fault_flags_and_runtime_faults() {
    let gc = DevGc::start("127.0.0.1:0", &["--fail-first", "2", "--delay-ms", "150"]);
    let body = register_body("mc-faults");
    for _ in 0..2 {
        assert_eq!(gc.call("POST", "/api/v1/mc/register", &body).0, 500);
    }
    let t = Instant::now();
    assert_eq!(gc.call("POST", "/api/v1/mc/register", &body).0, 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
    // Faults do not touch the operator routes.
    assert_eq!(gc.call("GET", "/api/v1/mc", "").0, 200);

    let (s, f) = gc.call(
        "POST",
        "/admin/faults",
        r#"{"delay_ms":0,"status_override":404}"#,
    );
    assert_eq!((s, f["status_override"].as_u64()), (200, Some(404)));
    assert_eq!(
        gc.call(
            "POST",
            "/api/v1/mc/heartbeat",
            &heartbeat_body("mc-faults", 1)
        )
        .0,
        404
    );
    gc.call("POST", "/admin/faults", r#"{"status_override":null}"#);
    assert_eq!(
        gc.call(
            "POST",
            "/api/v1/mc/heartbeat",
            &heartbeat_body("mc-faults", 1)
        )
        .0,
        200
    );
    assert_eq!(
        gc.call("POST", "/admin/faults", r#"{"status_override":42}"#)
            .0,
        400
    );
    assert_eq!(gc.call("GET", "/admin/faults", "").1["fail_first"], 0);

    let gc = DevGc::start("127.0.0.1:0", &["--status-override", "500"]);
    assert_eq!(gc.call("POST", "/api/v1/mc/register", &body).0, 500);
}

#[test]
fn rows_without_heartbeats_become_unhealthy_and_recover() {
    let gc = DevGc::start("127.0.0.1:0", &["--unhealthy-after-secs", "1"]);
    let id = "mc-quiet";
    gc.call("POST", "/api/v1/mc/register", &register_body(id));
    wait_for(Duration::from_secs(5), || {
        gc.row(id).unwrap()["status"] == "unhealthy"
    });
    assert_eq!(
        gc.call("POST", "/api/v1/mc/heartbeat", &heartbeat_body(id, 0))
            .1["status"],
        "active"
    );
}

fn wait_for(limit: Duration, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < limit, "condition not met within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The runbook's SQL against the dev GC's PostgreSQL table.
#[test]
fn postgres_store_serves_the_runbook_sql() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        assert!(
            std::env::var("MC_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "MC_REQUIRE_POSTGRES=1 but DATABASE_URL is not set (start one: \
             eval \"$(devgc/scripts/pg-start.sh)\")"
        );
        eprintln!("skipping: DATABASE_URL not set (see devgc/scripts/pg-start.sh)");
        return;
    };
    let gc = DevGc::start(
        "127.0.0.1:0",
        &["--database-url", &url, "--unhealthy-after-secs", "2"],
    );
    let mut db = postgres::Client::connect(&url, postgres::NoTls).expect("connect to DATABASE_URL");
    let id = unique_id("mc-pg");
    assert_eq!(
        gc.call("POST", "/api/v1/mc/register", &register_body(&id))
            .0,
        200
    );
    assert_eq!(
        gc.call("POST", "/api/v1/mc/heartbeat", &heartbeat_body(&id, 57))
            .1["status"],
        "active"
    );

    // Deployment Step 7, verbatim.
    let rows = db
        .query(
            "SELECT id, region, capacity, current_sessions, last_heartbeat, status FROM meeting_controllers WHERE last_heartbeat > NOW() - INTERVAL '30 seconds' ORDER BY last_heartbeat DESC;",
            &[],
        )
        .unwrap();
    let row = rows
        .iter()
        .find(|r| r.get::<_, String>(0) == id)
        .expect("row in step 7 query");
    assert_eq!(row.get::<_, String>(1), "us-west-2");
    assert_eq!((row.get::<_, i32>(2), row.get::<_, i32>(3)), (100, 57));
    assert_eq!(row.get::<_, String>(5), "active");
    // Smoke Test 4, verbatim, and last_heartbeat < 15 s old.
    let rows = db
        .query(
            "SELECT id, region, capacity, current_sessions, last_heartbeat, status FROM meeting_controllers ORDER BY last_heartbeat DESC LIMIT 5;",
            &[],
        )
        .unwrap();
    assert!(rows.iter().any(|r| r.get::<_, String>(0) == id));
    let fresh: bool = db
        .query_one(
            "SELECT last_heartbeat > NOW() - INTERVAL '15 seconds' FROM meeting_controllers WHERE id = $1",
            &[&id],
        )
        .unwrap()
        .get(0);
    assert!(fresh);

    // Deployment Step 2: the operator drains it; the next heartbeat says so.
    db.batch_execute(&format!(
        "UPDATE meeting_controllers SET status = 'draining' WHERE id = '{id}';"
    ))
    .unwrap();
    assert_eq!(
        gc.call("POST", "/api/v1/mc/heartbeat", &heartbeat_body(&id, 57))
            .1["status"],
        "draining"
    );
    assert_eq!(
        gc.call("POST", "/api/v1/mc/register", &register_body(&id))
            .1["status"],
        "draining"
    );
    assert_eq!(gc.row(&id).unwrap()["status"], "draining");
    // Rollback Step 4: re-enabled.
    db.batch_execute(&format!(
        "UPDATE meeting_controllers SET status = 'active' WHERE id = '{id}';"
    ))
    .unwrap();
    assert_eq!(
        gc.call("POST", "/api/v1/mc/heartbeat", &heartbeat_body(&id, 3))
            .1["status"],
        "active"
    );

    // Silence → unhealthy; a heartbeat recovers it.
    let status = |db: &mut postgres::Client| -> String {
        db.query_one(
            "SELECT status FROM meeting_controllers WHERE id = $1",
            &[&id],
        )
        .unwrap()
        .get(0)
    };
    wait_for(Duration::from_secs(8), || status(&mut db) == "unhealthy");
    assert_eq!(
        gc.call("POST", "/api/v1/mc/heartbeat", &heartbeat_body(&id, 3))
            .1["status"],
        "active"
    );

    assert_eq!(
        gc.call(
            "POST",
            "/api/v1/mc/deregister",
            &format!(r#"{{"id":"{id}"}}"#)
        )
        .0,
        200
    );
    assert_eq!(status(&mut db), "deregistered");
    assert_eq!(
        gc.call("POST", "/api/v1/mc/heartbeat", &heartbeat_body(&id, 3))
            .0,
        404
    );
    // The unknown id is 404 in PostgreSQL mode too.
    assert_eq!(
        gc.call(
            "POST",
            "/api/v1/mc/heartbeat",
            &heartbeat_body("mc-never", 0)
        )
        .0,
        404
    );
}
