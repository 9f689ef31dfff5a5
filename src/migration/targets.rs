//! Asking the GC where to move meetings: `POST {GC base}/api/v1/mc/migrate`
//! (docs/gc-api.md "Pick targets"). The body is built here and the answer parsed with
//! limits; a bad entry means "no target" for that meeting, never a failed drain.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use url::Url;

use super::import::IMPORT_PATH;
use crate::signaling::proto::truncate_str;

/// Longest endpoint URL or MC id accepted from the GC, in bytes.
pub const MAX_TARGET_FIELD_BYTES: usize = 1024;
/// Largest answer read from the GC.
pub const MAX_TARGETS_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Ids of meetings not asked about kept as examples for the log, at most.
pub const MAX_UNASKED_EXAMPLES: usize = 3;
/// Longest example id kept, in bytes (cut at a character boundary, then `…`).
pub const MAX_UNASKED_EXAMPLE_BYTES: usize = 64;

/// A live meeting of this MC, as the shards report it and the GC is asked about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveMeeting {
    pub meeting_id: String,
    /// Participants in the roster (connected or within grace).
    pub participants: u32,
}

/// The MC chosen for one meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub id: String,
    /// Sent to the clients in `RedirectToMc.new_mc_endpoint`.
    pub webtransport_endpoint: String,
    /// Where the import request goes (the target's admin port).
    pub http_endpoint: String,
}

impl Target {
    /// `{http_endpoint}/internal/v1/meetings/import` (a trailing `/` on the endpoint
    /// is allowed).
    pub fn import_url(&self) -> Result<Url, url::ParseError> {
        let base = self.http_endpoint.trim_end_matches('/');
        Url::parse(&format!("{base}{IMPORT_PATH}"))
    }
}

/// Why the GC's answer was unusable as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetsError {
    #[error("GC answered HTTP {0}")]
    Status(u16),
    #[error("GC answer is not the documented JSON: {0}")]
    Body(String),
    #[error("GC answer larger than {MAX_TARGETS_BODY_BYTES} bytes")]
    TooLarge,
}

/// The GC's answer, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    /// meeting_id → its target, for meetings that were asked about.
    pub targets: BTreeMap<String, Target>,
    /// Entries for meetings that were asked about, refused (meeting, reason): a target
    /// that is this MC, a bad URL. At most one per meeting asked about.
    pub skipped: Vec<(String, &'static str)>,
    /// Entries for meetings nobody asked about (a broken or hostile GC), ignored: how
    /// many there were, however many.
    pub unasked: usize,
    /// The first few of their ids ([`MAX_UNASKED_EXAMPLES`], each cut to
    /// [`MAX_UNASKED_EXAMPLE_BYTES`]), for one log line.
    pub unasked_examples: Vec<String>,
}

#[derive(Serialize)]
struct MigrateBody<'a> {
    id: &'a str,
    meetings: &'a [LiveMeeting],
}

#[derive(Deserialize)]
struct MigrateReply {
    targets: BTreeMap<String, Target>,
}

/// The request body: `{"id": "<this MC>", "meetings": [{"meeting_id", "participants"}]}`.
pub fn migrate_body(own_id: &str, meetings: &[LiveMeeting]) -> String {
    // Serializing plain structs cannot fail.
    serde_json::to_string(&MigrateBody {
        id: own_id,
        meetings,
    })
    .unwrap_or_default()
}

/// The migrate URL next to the registration URL (its last segment `register` replaced
/// by `migrate`, as the heartbeat URL is derived).
pub fn migrate_url(register_url: &Url) -> Option<Url> {
    let mut url = register_url.clone();
    let path = url.path().to_string();
    let (dir, last) = path.rsplit_once('/')?;
    if last != "register" {
        return None;
    }
    url.set_path(&format!("{dir}/migrate"));
    Some(url)
}

/// Parse the GC's answer to a migrate request for `asked`, sent by `own_id`.
pub fn parse_targets(
    status: u16,
    body: &[u8],
    own_id: &str,
    asked: &[LiveMeeting],
) -> Result<Targets, TargetsError> {
    if status != 200 {
        return Err(TargetsError::Status(status));
    }
    if body.len() > MAX_TARGETS_BODY_BYTES {
        return Err(TargetsError::TooLarge);
    }
    let reply: MigrateReply =
        serde_json::from_slice(body).map_err(|e| TargetsError::Body(e.to_string()))?;
    let asked: HashSet<&str> = asked.iter().map(|m| m.meeting_id.as_str()).collect();
    let mut out = Targets::default();
    for (meeting_id, target) in reply.targets {
        if !asked.contains(meeting_id.as_str()) {
            out.unasked += 1;
            if out.unasked_examples.len() < MAX_UNASKED_EXAMPLES {
                out.unasked_examples.push(cut(&meeting_id));
            }
            continue;
        }
        let problem = if target.id == own_id {
            Some("target is this MC")
        } else {
            check_target(&target).err()
        };
        match problem {
            Some(why) => out.skipped.push((meeting_id, why)),
            None => {
                out.targets.insert(meeting_id, target);
            }
        }
    }
    Ok(out)
}

/// `id` cut to [`MAX_UNASKED_EXAMPLE_BYTES`] at a character boundary, `…` marking a cut.
fn cut(id: &str) -> String {
    let kept = truncate_str(id, MAX_UNASKED_EXAMPLE_BYTES);
    if kept.len() < id.len() {
        format!("{kept}…")
    } else {
        kept.to_string()
    }
}

fn check_target(t: &Target) -> Result<(), &'static str> {
    let fields = [&t.id, &t.webtransport_endpoint, &t.http_endpoint];
    if fields
        .iter()
        .any(|f| f.is_empty() || f.len() > MAX_TARGET_FIELD_BYTES)
    {
        return Err("empty or oversize field");
    }
    match Url::parse(&t.webtransport_endpoint) {
        Ok(u) if u.scheme() == "https" && u.host().is_some() => {}
        _ => return Err("webtransport_endpoint is not an https URL"),
    }
    match t.import_url() {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err("http_endpoint is not an http(s) URL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(ids: &[&str]) -> Vec<LiveMeeting> {
        ids.iter()
            .map(|m| LiveMeeting {
                meeting_id: m.to_string(),
                participants: 7,
            })
            .collect()
    }

    #[test]
    fn body_and_url_follow_gc_api() {
        let body = migrate_body("mc-a", &live(&["m1"]));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({"id": "mc-a", "meetings": [{"meeting_id": "m1", "participants": 7}]})
        );
        let reg = Url::parse("http://gc:8080/api/v1/mc/register").unwrap();
        assert_eq!(
            migrate_url(&reg).unwrap().as_str(),
            "http://gc:8080/api/v1/mc/migrate"
        );
        assert_eq!(
            migrate_url(&Url::parse("http://gc/x/enroll").unwrap()),
            None
        );
        let t = Target {
            id: "mc-b".into(),
            webtransport_endpoint: "https://10.0.3.8:4433".into(),
            http_endpoint: "http://10.0.3.8:8080/".into(),
        };
        assert_eq!(
            t.import_url().unwrap().as_str(),
            "http://10.0.3.8:8080/internal/v1/meetings/import"
        );
    }

    #[test]
    fn answers_are_checked_entry_by_entry() {
        let body = br#"{"targets": {
            "m1": {"id": "mc-b", "webtransport_endpoint": "https://10.0.3.8:4433", "http_endpoint": "http://10.0.3.8:8080"},
            "m2": {"id": "mc-a", "webtransport_endpoint": "https://10.0.3.7:4433", "http_endpoint": "http://10.0.3.7:8080"},
            "m3": {"id": "mc-c", "webtransport_endpoint": "http://plain:4433", "http_endpoint": "http://c:8080"},
            "m4": {"id": "mc-c", "webtransport_endpoint": "https://c:4433", "http_endpoint": "ftp://c"},
            "zz": {"id": "mc-c", "webtransport_endpoint": "https://c:4433", "http_endpoint": "http://c:8080"}
        }}"#;
        let t = parse_targets(200, body, "mc-a", &live(&["m1", "m2", "m3", "m4", "m5"])).unwrap();
        assert_eq!(t.targets.keys().collect::<Vec<_>>(), ["m1"]);
        assert_eq!(t.targets["m1"].id, "mc-b");
        let skipped: Vec<&str> = t.skipped.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(skipped, ["m2", "m3", "m4"]);
        assert_eq!(
            (t.unasked, t.unasked_examples.as_slice()),
            (1, &["zz".to_string()][..])
        );
        // No target at all is an empty answer, not an error.
        let none = parse_targets(200, br#"{"targets": {}}"#, "mc-a", &live(&["m1"])).unwrap();
        assert!(none.targets.is_empty());
    }

    #[test]
    fn many_entries_not_asked_about_are_counted_not_listed() {
        // A 4 MiB answer of 60 000 junk entries (the first ones with long ids, not
        // ASCII) around the two asked about: one with a good target, one naming this MC.
        fn target(id: &str, wt: &str, http: &str) -> serde_json::Value {
            let fields = [
                ("id", id),
                ("webtransport_endpoint", wt),
                ("http_endpoint", http),
            ];
            fields
                .iter()
                .map(|(k, v)| (*k, serde_json::Value::from(*v)))
                .collect()
        }
        let mut targets = serde_json::Map::new();
        for i in 0..60_000 {
            let id = if i < 5 {
                format!("a{}{i}", "é".repeat(100))
            } else {
                format!("j{i}")
            };
            targets.insert(id, target("", "", ""));
        }
        let good = target("mc-b", "https://10.0.3.8:4433", "http://10.0.3.8:8080");
        targets.insert("m1".into(), good);
        let own = target("mc-a", "https://10.0.3.7:4433", "http://10.0.3.7:8080");
        targets.insert("m2".into(), own);
        let body = serde_json::to_vec(&serde_json::json!({ "targets": targets })).unwrap();
        assert!(body.len() <= MAX_TARGETS_BODY_BYTES);
        let asked = live(&["m1", "m2", "m3"]);
        let started = std::time::Instant::now();
        let t = parse_targets(200, &body, "mc-a", &asked).unwrap();
        let elapsed = started.elapsed();
        assert_eq!(t.targets.keys().collect::<Vec<_>>(), ["m1"]);
        // Only meetings asked about are listed one by one; the rest are a count.
        assert_eq!(t.skipped, [("m2".to_string(), "target is this MC")]);
        assert_eq!(t.unasked, 60_000);
        assert_eq!(t.unasked_examples.len(), MAX_UNASKED_EXAMPLES);
        // Cut at 63 bytes, the last character boundary before 64.
        let cut_id = format!("a{}…", "é".repeat(31));
        assert_eq!(t.unasked_examples, [cut_id.as_str(); 3]);
        // Membership is a set lookup: far from quadratic even in a debug build.
        assert!(elapsed < std::time::Duration::from_secs(10), "{elapsed:?}");
        assert_eq!(cut(&"é".repeat(40)), format!("{}…", "é".repeat(32)));
        assert_eq!(cut("m1"), "m1");
    }

    #[test]
    fn unusable_answers_are_errors() {
        let asked = live(&["m1"]);
        assert_eq!(
            parse_targets(404, b"{}", "a", &asked),
            Err(TargetsError::Status(404))
        );
        assert!(matches!(
            parse_targets(200, b"{\"targets\": []}", "a", &asked),
            Err(TargetsError::Body(_))
        ));
        assert!(matches!(
            parse_targets(200, b"", "a", &asked),
            Err(TargetsError::Body(_))
        ));
    }
}
