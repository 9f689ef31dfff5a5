//! `POST /api/v1/mc/migrate` (docs/gc-api.md "Migration"): the real binary in memory, and
//! the PostgreSQL store when DATABASE_URL is set (`MC_REQUIRE_POSTGRES=1` makes a
//! missing DATABASE_URL a failure: start one with `eval "$(devgc/scripts/pg-start.sh)"`).

#[path = "devgc_util.rs"]
mod util;

use std::time::Duration;

use mc_devgc::migrate::MovingMeeting;
use mc_devgc::pg::PgStore;
use mc_devgc::store::{Heartbeat, Registration, Store};
use serde_json::json;
use util::{unique_id, DevGc};

fn register(gc: &DevGc, id: &str, region: &str, capacity: u32) {
    let body = json!({"id": id, "region": region, "capacity": capacity,
        "webtransport_endpoint": format!("https://{id}:4433"),
        "http_endpoint": format!("http://{id}:8080")});
    assert_eq!(
        gc.call("POST", "/api/v1/mc/register", &body.to_string()).0,
        200
    );
}

fn heartbeat(gc: &DevGc, id: &str, capacity: u32, meetings: u32) {
    let body = json!({"id": id, "status": "active", "capacity": capacity,
        "current_meetings": meetings, "current_sessions": meetings * 3});
    assert_eq!(
        gc.call("POST", "/api/v1/mc/heartbeat", &body.to_string()).0,
        200
    );
}

fn migrate_body(source: &str, meetings: &[&str]) -> String {
    let meetings: Vec<_> = meetings
        .iter()
        .map(|m| json!({"meeting_id": m, "participants": 7}))
        .collect();
    json!({"id": source, "meetings": meetings}).to_string()
}

#[test]
fn migrate_over_http_in_memory() {
    let gc = DevGc::start("127.0.0.1:0", &[]);
    register(&gc, "mc-a", "eu", 10);
    register(&gc, "mc-b", "eu", 10);
    register(&gc, "mc-c", "eu", 3);
    register(&gc, "mc-far", "us", 100);
    heartbeat(&gc, "mc-b", 10, 4);
    heartbeat(&gc, "mc-c", 3, 1);
    // The source is draining (an operator, or SIGTERM): it is never its own target.
    gc.call("PUT", "/admin/mc/mc-a/status", "draining");

    let (status, reply) = gc.call(
        "POST",
        "/api/v1/mc/migrate",
        &migrate_body("mc-a", &["m1", "m2", "m3", "m4"]),
    );
    assert_eq!(status, 200, "{reply}");
    // c (1 of 3) takes m1 and m2 and is then full; b (4 of 10) takes the rest.
    assert_eq!(
        reply,
        json!({"targets": {
            "m1": {"id": "mc-c", "webtransport_endpoint": "https://mc-c:4433", "http_endpoint": "http://mc-c:8080"},
            "m2": {"id": "mc-c", "webtransport_endpoint": "https://mc-c:4433", "http_endpoint": "http://mc-c:8080"},
            "m3": {"id": "mc-b", "webtransport_endpoint": "https://mc-b:4433", "http_endpoint": "http://mc-b:8080"},
            "m4": {"id": "mc-b", "webtransport_endpoint": "https://mc-b:4433", "http_endpoint": "http://mc-b:8080"}
        }})
    );
    let (status, owners) = gc.call("GET", "/api/v1/meetings/owners", "");
    assert_eq!(status, 200);
    assert_eq!(
        owners,
        json!({"m1": "mc-c", "m2": "mc-c", "m3": "mc-b", "m4": "mc-b"})
    );
    // The targets' rows count what they were given until their next heartbeat.
    assert_eq!(gc.row("mc-c").unwrap()["current_meetings"], 3);
    assert_eq!(gc.row("mc-b").unwrap()["current_meetings"], 6);

    // Nothing left with room in the region: 200 with no targets (rule 21).
    gc.call("PUT", "/admin/mc/mc-b/status", "draining");
    let (status, reply) = gc.call("POST", "/api/v1/mc/migrate", &migrate_body("mc-a", &["m5"]));
    assert_eq!((status, reply), (200, json!({"targets": {}})));

    // Unknown source, bad bodies, wrong method.
    assert_eq!(
        gc.call(
            "POST",
            "/api/v1/mc/migrate",
            &migrate_body("mc-nobody", &["m"])
        )
        .0,
        404
    );
    for bad in [
        "{",
        r#"{"id":"mc-a"}"#,
        r#"{"id":"a b","meetings":[]}"#,
        r#"{"id":"mc-a","meetings":[{"meeting_id":"m"},{"meeting_id":"m"}]}"#,
    ] {
        let (status, reply) = gc.call("POST", "/api/v1/mc/migrate", bad);
        assert_eq!(status, 400, "{bad}");
        assert!(reply["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    assert_eq!(gc.call("GET", "/api/v1/mc/migrate", "").0, 405);
}

#[test]
fn migrate_obeys_fault_injection_like_the_other_mc_routes() {
    let gc = DevGc::start("127.0.0.1:0", &["--status-override", "503"]);
    assert_eq!(
        gc.call("POST", "/api/v1/mc/migrate", &migrate_body("mc-a", &["m"]))
            .0,
        503
    );
}

/// The PostgreSQL store follows the same rule; owners land in `meeting_owners`.
#[test]
fn postgres_store_picks_targets() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        assert!(
            std::env::var("MC_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "MC_REQUIRE_POSTGRES=1 but DATABASE_URL is not set (start one: \
             eval \"$(devgc/scripts/pg-start.sh)\")"
        );
        eprintln!("skipping: DATABASE_URL not set (see devgc/scripts/pg-start.sh)");
        return;
    };
    let mut store = PgStore::connect(&url).expect("connect to DATABASE_URL");
    let mut db = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    // The table outlives a test run: a region and ids of our own.
    let region = unique_id("region");
    let id = |name: &str| format!("{region}-{name}");
    let reg = |name: &str, capacity: i32| Registration {
        id: id(name),
        region: region.clone(),
        capacity,
        webtransport_endpoint: Some(format!("https://{name}:4433")),
        http_endpoint: Some(format!("http://{name}:8080")),
    };
    for (name, cap) in [
        ("src", 10),
        ("busy", 10),
        ("idle", 2),
        ("quiet", 10),
        ("off", 10),
    ] {
        store.register(&reg(name, cap)).unwrap();
    }
    let mut blind = reg("blind", 10);
    blind.http_endpoint = None;
    store.register(&blind).unwrap();
    store
        .heartbeat(&Heartbeat {
            id: id("busy"),
            capacity: 10,
            current_meetings: 5,
            current_sessions: 15,
        })
        .unwrap();
    assert!(store.set_status(&id("off"), "draining").unwrap());
    // The source drains (it would otherwise be a target for busy's meetings below).
    assert!(store.set_status(&id("src"), "draining").unwrap());
    db.execute(
        "UPDATE meeting_controllers SET last_heartbeat = now() - interval '1 hour' WHERE id = $1",
        &[&id("quiet")],
    )
    .unwrap();
    // Another region's idle MC is never chosen.
    let mut elsewhere = reg("elsewhere", 100);
    elsewhere.id = format!("{region}-x-elsewhere");
    elsewhere.region = format!("{region}-x");
    store.register(&elsewhere).unwrap();

    let meetings: Vec<MovingMeeting> = ["m1", "m2", "m3"]
        .iter()
        .map(|m| MovingMeeting {
            meeting_id: format!("{region}-{m}"),
            participants: 4,
        })
        .collect();
    let fresh = Duration::from_secs(30);
    let placed: Vec<(String, String)> = store
        .migrate(&id("src"), &meetings, fresh)
        .unwrap()
        .expect("source known")
        .into_iter()
        .map(|(m, t)| (m, t.id))
        .collect();
    assert_eq!(
        placed,
        [
            (meetings[0].meeting_id.clone(), id("idle")),
            (meetings[1].meeting_id.clone(), id("idle")),
            (meetings[2].meeting_id.clone(), id("busy")),
        ]
    );
    let owners = store.owners().unwrap();
    assert_eq!(owners[&meetings[2].meeting_id], id("busy"));
    let owner: String = db
        .query_one(
            "SELECT mc_id FROM meeting_owners WHERE meeting_id = $1",
            &[&meetings[0].meeting_id],
        )
        .unwrap()
        .get(0);
    assert_eq!(owner, id("idle"));
    let count = |db: &mut postgres::Client, name: &str| -> i32 {
        db.query_one(
            "SELECT current_meetings FROM meeting_controllers WHERE id = $1",
            &[&id(name)],
        )
        .unwrap()
        .get(0)
    };
    assert_eq!((count(&mut db, "idle"), count(&mut db, "busy")), (2, 6));
    // idle is full now; a meeting moved again gets its new owner recorded.
    let again = store
        .migrate(&id("busy"), &meetings[..1], fresh)
        .unwrap()
        .unwrap();
    assert!(
        again.is_empty(),
        "only idle (full) and busy (the source) remain"
    );
    assert_eq!(
        store.migrate("nobody-at-all", &meetings, fresh).unwrap(),
        None
    );

    // Through the binary: the same rows, the same answer shape.
    let gc = DevGc::start("127.0.0.1:0", &["--database-url", &url]);
    store
        .heartbeat(&Heartbeat {
            id: id("idle"),
            capacity: 2,
            current_meetings: 0,
            current_sessions: 0,
        })
        .unwrap();
    let (status, reply) = gc.call(
        "POST",
        "/api/v1/mc/migrate",
        &json!({"id": id("src"), "meetings": [{"meeting_id": meetings[0].meeting_id, "participants": 4}]})
            .to_string(),
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["targets"][&meetings[0].meeting_id]["id"], id("idle"));
    assert_eq!(
        reply["targets"][&meetings[0].meeting_id]["http_endpoint"],
        "http://idle:8080"
    );
}
