//! Dev mode only: `/demo`, the browser demo (`src/admin/demo.html`), and `/demo/token`,
//! which mints a dev join token and tells the page the WebTransport URL and the dev
//! certificate's hash for `serverCertificateHashes`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::http::{Request, Response};
use crate::auth::jwt::{Role, TokenClaims};
use crate::auth::DevKeys;
use crate::config::Settings;

/// The page itself.
const DEMO_HTML: &str = include_str!("demo.html");
/// Longest meeting id, user id or name the token endpoint takes, in bytes.
const MAX_FIELD_BYTES: usize = 256;
/// Lifetime of a demo token.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// The demo routes; `None` outside dev mode or for another path.
pub fn respond(settings: &Settings, req: &Request) -> Option<Response> {
    if !settings.dev {
        return None;
    }
    match req.path.as_str() {
        "/demo" | "/demo/" => Some(Response::new(
            200,
            "text/html; charset=utf-8",
            DEMO_HTML.as_bytes(),
        )),
        "/demo/token" => Some(token(settings, req)),
        _ => None,
    }
}

/// `/demo/token?meeting_id=…&user_id=…&role=host|participant&name=…`.
fn token(settings: &Settings, req: &Request) -> Response {
    let q: HashMap<String, String> = url::form_urlencoded::parse(req.query.as_bytes())
        .into_owned()
        .collect();
    let meeting = q
        .get("meeting_id")
        .map(String::as_str)
        .unwrap_or("demo-meeting");
    let user = q.get("user_id").map(String::as_str).unwrap_or("guest");
    let role = match q.get("role").map(String::as_str) {
        Some("host") => Role::Host,
        _ => Role::Participant,
    };
    let bad = |s: &str| s.is_empty() || s.len() > MAX_FIELD_BYTES;
    if bad(meeting) || bad(user) {
        return Response::text(400, "meeting_id and user_id: 1..=256 bytes\n");
    }
    let keys = match DevKeys::load_or_create(&settings.dev_dir) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %e, "demo: no dev keys");
            return Response::text(500, "dev keys unavailable\n");
        }
    };
    let mut claims = TokenClaims::meeting(user, meeting, role, SystemTime::now(), TOKEN_LIFETIME);
    claims.name = q
        .get("name")
        .filter(|n| n.len() <= MAX_FIELD_BYTES)
        .cloned();
    let token = keys.mint_token(&claims);
    let hash = std::fs::read_to_string(settings.dev_dir.join("cert.sha256")).unwrap_or_default();
    let mut wt = settings.webtransport_bind_address;
    if wt.ip().is_unspecified() {
        wt.set_ip([127, 0, 0, 1].into());
    }
    let body = serde_json::json!({
        "token": token,
        "webtransport_url": format!("https://{wt}/"),
        "cert_sha256": hash.trim(),
    });
    Response::new(200, "application/json", body.to_string().into_bytes())
}
