//! The development GC's routes (docs/gc-api.md), plus operator and fault-injection routes:
//!
//! | route | what |
//! |---|---|
//! | `POST /api/v1/mc/register` | upsert (keeps an operator's `draining`) |
//! | `POST /api/v1/mc/heartbeat` | update load, answer the row's status; 404 if unknown |
//! | `POST /api/v1/mc/deregister` | status `deregistered` |
//! | `POST /api/v1/mc/migrate` | a target MC per meeting of a draining MC; 404 if unknown |
//! | `GET /api/v1/mc` | every row, JSON |
//! | `GET /api/v1/meetings/owners` | `{"<meeting_id>": "<mc id>"}` for every moved meeting |
//! | `PUT`/`POST /admin/mc/<id>/status` | `{"status":"draining"}` or a bare word |
//! | `GET`/`POST /admin/faults` | `{"fail_first":N,"delay_ms":M,"status_override":500\|404\|null}` |
//! | `GET /health` | `OK` |
//!
//! Faults apply to the four MC-facing routes only.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::migrate::MigrateRequest;
use super::server::Request;
use super::store::{Heartbeat, Registration, STATUSES};
use super::State;

/// A response, with a note for the request log.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub note: Option<String>,
}

impl Reply {
    pub fn json(status: u16, value: Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: value.to_string().into_bytes(),
            note: None,
        }
    }

    pub fn text(status: u16, text: &str) -> Self {
        Self {
            status,
            content_type: "text/plain",
            body: text.as_bytes().to_vec(),
            note: None,
        }
    }

    fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

#[derive(Deserialize)]
struct RegisterBody {
    id: String,
    region: String,
    capacity: i64,
    webtransport_endpoint: Option<String>,
    http_endpoint: Option<String>,
}

#[derive(Deserialize)]
struct HeartbeatBody {
    id: String,
    status: Option<String>,
    capacity: Option<i64>,
    current_meetings: Option<i64>,
    current_sessions: Option<i64>,
}

#[derive(Deserialize)]
struct IdBody {
    id: String,
}

/// Route one request.
pub fn handle(state: &State, req: &Request) -> Reply {
    let path = req.path.split('?').next().unwrap_or_default();
    let mc_api = matches!(
        path,
        "/api/v1/mc/register"
            | "/api/v1/mc/heartbeat"
            | "/api/v1/mc/deregister"
            | "/api/v1/mc/migrate"
    );
    if mc_api {
        if let Some(reply) = injected_fault(state) {
            return reply;
        }
    }
    match (req.method.as_str(), path) {
        ("POST", "/api/v1/mc/register") => register(state, &req.body),
        ("POST", "/api/v1/mc/heartbeat") => heartbeat(state, &req.body),
        ("POST", "/api/v1/mc/deregister") => deregister(state, &req.body),
        ("POST", "/api/v1/mc/migrate") => migrate(state, &req.body),
        ("GET", "/api/v1/mc") => match state.store().list() {
            Ok(rows) => Reply::json(200, json!(rows)),
            Err(e) => Reply::json(503, json!({"error": e.to_string()})),
        },
        ("GET", "/api/v1/meetings/owners") => match state.store().owners() {
            Ok(owners) => Reply::json(200, json!(owners)),
            Err(e) => Reply::json(503, json!({"error": e.to_string()})),
        },
        ("GET", "/admin/faults") => Reply::json(200, state.faults().to_json()),
        ("POST" | "PUT", "/admin/faults") => set_faults(state, &req.body),
        ("GET", "/health") => Reply::text(200, "OK"),
        ("PUT" | "POST", p) if p.starts_with("/admin/mc/") && p.ends_with("/status") => {
            let id = p
                .trim_start_matches("/admin/mc/")
                .trim_end_matches("/status");
            set_status(state, id, &req.body)
        }
        (
            _,
            "/api/v1/mc/register"
            | "/api/v1/mc/heartbeat"
            | "/api/v1/mc/deregister"
            | "/api/v1/mc/migrate",
        ) => Reply::text(405, "use POST"),
        _ => Reply::text(404, "no such route"),
    }
}

/// Delay, then fail-first, then the status override (docs/gc-api.md failure modes).
fn injected_fault(state: &State) -> Option<Reply> {
    let (delay, reply) = {
        let mut f = state.faults();
        let delay = f.delay_ms;
        let reply = if f.fail_first > 0 {
            f.fail_first -= 1;
            Some(Reply::json(
                500,
                json!({"error": "injected failure (fail_first)"}),
            ))
        } else {
            f.status_override
                .map(|s| Reply::json(s, json!({"error": "injected status (status_override)"})))
        };
        (delay, reply)
    };
    if delay > 0 {
        std::thread::sleep(Duration::from_millis(delay));
    }
    reply.map(|r| r.note("fault injected"))
}

fn valid_id(id: &str) -> bool {
    (1..=255).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn int(v: Option<i64>, what: &str) -> Result<i32, String> {
    let v = v.unwrap_or(0);
    i32::try_from(v)
        .ok()
        .filter(|v| *v >= 0)
        .ok_or_else(|| format!("{what} out of range: {v}"))
}

fn register(state: &State, body: &[u8]) -> Reply {
    let refuse = |reason: String| {
        Reply::json(400, json!({"accepted": false, "reason": reason.clone()})).note(reason)
    };
    let b: RegisterBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => return refuse(format!("invalid registration body: {e}")),
    };
    if !valid_id(&b.id) {
        return refuse(format!(
            "id must match [A-Za-z0-9_-]{{1,255}}, got {:?}",
            b.id
        ));
    }
    if b.region.trim().is_empty() {
        return refuse("region must not be empty".into());
    }
    let capacity = match int(Some(b.capacity), "capacity") {
        Ok(c) => c,
        Err(e) => return refuse(e),
    };
    let reg = Registration {
        id: b.id,
        region: b.region,
        capacity,
        webtransport_endpoint: b.webtransport_endpoint,
        http_endpoint: b.http_endpoint,
    };
    match state.store().register(&reg) {
        Ok(status) => {
            let mut reply = json!({"accepted": true, "status": status});
            if let Some(secs) = state.heartbeat_interval_secs {
                reply["heartbeat_interval_secs"] = json!(secs);
            }
            Reply::json(200, reply).note(format!("id={} status={status}", reg.id))
        }
        Err(e) => Reply::json(503, json!({"accepted": false, "reason": e.to_string()})),
    }
}

fn heartbeat(state: &State, body: &[u8]) -> Reply {
    let bad = |reason: String| Reply::json(400, json!({"acknowledged": false, "error": reason}));
    let b: HeartbeatBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => return bad(format!("invalid heartbeat body: {e}")),
    };
    if !valid_id(&b.id) {
        return bad("invalid id".into());
    }
    let mc_status = b.status.unwrap_or_else(|| "active".into());
    if mc_status != "active" && mc_status != "draining" {
        return bad(format!(
            "status must be active or draining, got {mc_status:?}"
        ));
    }
    let hb = match (
        int(b.capacity, "capacity"),
        int(b.current_meetings, "current_meetings"),
        int(b.current_sessions, "current_sessions"),
    ) {
        (Ok(capacity), Ok(current_meetings), Ok(current_sessions)) => Heartbeat {
            id: b.id,
            capacity,
            current_meetings,
            current_sessions,
        },
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => return bad(e),
    };
    match state.store().heartbeat(&hb) {
        Ok(Some(status)) => {
            Reply::json(200, json!({"acknowledged": true, "status": status})).note(format!(
                "id={} mc_status={mc_status} gc_status={status} sessions={}",
                hb.id, hb.current_sessions
            ))
        }
        Ok(None) => Reply::json(
            404,
            json!({"acknowledged": false, "error": "unknown MC id"}),
        )
        .note(format!("id={} unknown", hb.id)),
        Err(e) => Reply::json(503, json!({"acknowledged": false, "error": e.to_string()})),
    }
}

fn deregister(state: &State, body: &[u8]) -> Reply {
    let b: IdBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => return Reply::json(400, json!({"error": format!("invalid body: {e}")})),
    };
    match state.store().deregister(&b.id) {
        Ok(true) => Reply::json(200, json!({"deregistered": true})).note(format!("id={}", b.id)),
        Ok(false) => Reply::json(
            404,
            json!({"deregistered": false, "error": "unknown MC id"}),
        ),
        Err(e) => Reply::json(503, json!({"error": e.to_string()})),
    }
}

/// docs/gc-api.md "Migration": `{"targets": {"<meeting_id>": {"id", "webtransport_endpoint",
/// "http_endpoint"}}}`; a meeting without a target is left out.
fn migrate(state: &State, body: &[u8]) -> Reply {
    let req = match MigrateRequest::parse(body) {
        Ok(req) => req,
        Err(e) => return Reply::json(400, json!({"error": e})),
    };
    if !valid_id(&req.id) {
        return Reply::json(400, json!({"error": "invalid id"}));
    }
    let result = state
        .store()
        .migrate(&req.id, &req.meetings, state.target_fresh_for);
    match result {
        Ok(Some(targets)) => {
            // The first few placements, for the request log.
            let note = format!(
                "id={} meetings={} assigned={} {}",
                req.id,
                req.meetings.len(),
                targets.len(),
                targets
                    .iter()
                    .take(10)
                    .map(|(m, t)| format!("{m}->{}", t.id))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            let map: serde_json::Map<String, Value> =
                targets.into_iter().map(|(m, t)| (m, json!(t))).collect();
            Reply::json(200, json!({"targets": map})).note(note)
        }
        Ok(None) => Reply::json(404, json!({"error": "unknown MC id"}))
            .note(format!("id={} unknown", req.id)),
        Err(e) => Reply::json(503, json!({"error": e.to_string()})),
    }
}

fn set_status(state: &State, id: &str, body: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(body);
    let status = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("status").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| text.trim().trim_matches('"').to_string());
    if !STATUSES.contains(&status.as_str()) {
        return Reply::json(
            400,
            json!({"error": format!("status must be one of {STATUSES:?}")}),
        );
    }
    match state.store().set_status(id, &status) {
        Ok(true) => Reply::json(200, json!({"id": id, "status": status}))
            .note(format!("operator set id={id} status={status}")),
        Ok(false) => Reply::json(404, json!({"error": "unknown MC id"})),
        Err(e) => Reply::json(503, json!({"error": e.to_string()})),
    }
}

fn set_faults(state: &State, body: &[u8]) -> Reply {
    let v: Value = match serde_json::from_slice(body) {
        Ok(Value::Object(v)) => Value::Object(v),
        _ => return Reply::json(400, json!({"error": "expected a JSON object"})),
    };
    let mut f = state.faults();
    if let Some(n) = v.get("fail_first") {
        match n.as_u64() {
            Some(n) => f.fail_first = n,
            None => return Reply::json(400, json!({"error": "fail_first: integer"})),
        }
    }
    if let Some(n) = v.get("delay_ms") {
        match n.as_u64() {
            Some(n) => f.delay_ms = n,
            None => return Reply::json(400, json!({"error": "delay_ms: integer"})),
        }
    }
    if let Some(s) = v.get("status_override") {
        f.status_override = match s.as_u64() {
            None if s.is_null() => None,
            Some(s @ 100..=599) => Some(s as u16),
            _ => return Reply::json(400, json!({"error": "status_override: 100-599 or null"})),
        };
    }
    Reply::json(200, f.to_json()).note(format!("faults now {}", f.to_json()))
}
