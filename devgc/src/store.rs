//! Where the development GC keeps its `meeting_controllers` rows and the owner of every
//! moved meeting: in memory, or in PostgreSQL ([`super::pg`]) so the runbook's SQL works
//! verbatim (docs/gc-api.md).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::migrate::{assign, Candidate};
pub use super::migrate::{MovingMeeting, Target};

/// The statuses the table's CHECK constraint allows.
pub const STATUSES: [&str; 4] = ["active", "draining", "unhealthy", "deregistered"];

/// A store failure (PostgreSQL down, a constraint).
#[derive(Debug)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated registration (docs/gc-api.md Register).
#[derive(Clone, Debug)]
pub struct Registration {
    pub id: String,
    pub region: String,
    pub capacity: i32,
    pub webtransport_endpoint: Option<String>,
    pub http_endpoint: Option<String>,
}

/// A validated heartbeat (docs/gc-api.md Heartbeat).
#[derive(Clone, Debug)]
pub struct Heartbeat {
    pub id: String,
    pub capacity: i32,
    pub current_meetings: i32,
    pub current_sessions: i32,
}

/// One row as `GET /api/v1/mc` shows it (timestamps RFC 3339, UTC).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub region: String,
    pub capacity: i32,
    pub current_sessions: i32,
    pub current_meetings: i32,
    pub webtransport_endpoint: Option<String>,
    pub http_endpoint: Option<String>,
    pub status: String,
    pub last_heartbeat: String,
    pub registered_at: String,
}

/// The operations docs/gc-api.md needs.
pub trait Store: Send {
    /// Upsert; keeps an operator's `draining`, else `active`. Returns the row's status.
    fn register(&mut self, r: &Registration) -> Result<String, StoreError>;
    /// Update `current_*` and `last_heartbeat` (an `unhealthy` row recovers to
    /// `active`); the row's status, or `None` when unknown or deregistered.
    fn heartbeat(&mut self, h: &Heartbeat) -> Result<Option<String>, StoreError>;
    /// Set `deregistered`; false when unknown.
    fn deregister(&mut self, id: &str) -> Result<bool, StoreError>;
    /// Every row, most recent heartbeat first.
    fn list(&mut self) -> Result<Vec<Row>, StoreError>;
    /// An operator's status change; false when unknown.
    fn set_status(&mut self, id: &str, status: &str) -> Result<bool, StoreError>;
    /// Mark `active` rows without a heartbeat for `after` as `unhealthy`; returns their
    /// ids. (An operator's `draining` is kept.)
    fn mark_unhealthy(&mut self, after: Duration) -> Result<Vec<String>, StoreError>;
    /// docs/gc-api.md "Migration": a target per meeting of `source`, chosen by
    /// [`super::migrate::assign`] among the `active` rows of the source's region (the
    /// source excepted) with a heartbeat younger than `fresh` and both endpoints. Each
    /// new owner is recorded, and each assigned meeting is added to its target's
    /// `current_meetings` (the target's next heartbeat replaces the count) so that
    /// concurrent drains do not pile onto one MC. Meetings without a target are left
    /// out. `None` when `source` is unknown.
    fn migrate(
        &mut self,
        source: &str,
        meetings: &[MovingMeeting],
        fresh: Duration,
    ) -> Result<Option<Vec<(String, Target)>>, StoreError>;
    /// The recorded owner (MC id) of every meeting moved so far.
    fn owners(&mut self) -> Result<BTreeMap<String, String>, StoreError>;
}

struct MemRow {
    reg: Registration,
    current_sessions: i32,
    current_meetings: i32,
    status: String,
    last_heartbeat: SystemTime,
    registered_at: SystemTime,
}

/// The in-memory store (the default): lost when the process ends, like a GC restart.
#[derive(Default)]
pub struct MemoryStore {
    rows: HashMap<String, MemRow>,
    /// meeting_id → the MC it was moved to.
    owners: BTreeMap<String, String>,
}

impl MemoryStore {
    /// As if the MC `id` had sent no heartbeat for `by` more (tests and demos of the
    /// freshness rule). False when unknown.
    pub fn backdate_heartbeat(&mut self, id: &str, by: Duration) -> bool {
        let Some(row) = self.rows.get_mut(id) else {
            return false;
        };
        row.last_heartbeat = row.last_heartbeat.checked_sub(by).unwrap_or(UNIX_EPOCH);
        true
    }
}

impl Store for MemoryStore {
    fn register(&mut self, r: &Registration) -> Result<String, StoreError> {
        let now = SystemTime::now();
        let status = match self.rows.get(&r.id) {
            Some(row) if row.status == "draining" => "draining",
            _ => "active",
        };
        let (sessions, meetings) = self
            .rows
            .get(&r.id)
            .map_or((0, 0), |row| (row.current_sessions, row.current_meetings));
        self.rows.insert(
            r.id.clone(),
            MemRow {
                reg: r.clone(),
                current_sessions: sessions,
                current_meetings: meetings,
                status: status.to_string(),
                last_heartbeat: now,
                registered_at: now,
            },
        );
        Ok(status.to_string())
    }

    fn heartbeat(&mut self, h: &Heartbeat) -> Result<Option<String>, StoreError> {
        let Some(row) = self.rows.get_mut(&h.id) else {
            return Ok(None);
        };
        if row.status == "deregistered" {
            return Ok(None);
        }
        if row.status == "unhealthy" {
            row.status = "active".into();
        }
        row.reg.capacity = h.capacity;
        row.current_meetings = h.current_meetings;
        row.current_sessions = h.current_sessions;
        row.last_heartbeat = SystemTime::now();
        Ok(Some(row.status.clone()))
    }

    fn deregister(&mut self, id: &str) -> Result<bool, StoreError> {
        self.set_status(id, "deregistered")
    }

    fn list(&mut self) -> Result<Vec<Row>, StoreError> {
        let mut rows: Vec<&MemRow> = self.rows.values().collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.last_heartbeat));
        Ok(rows
            .into_iter()
            .map(|r| Row {
                id: r.reg.id.clone(),
                region: r.reg.region.clone(),
                capacity: r.reg.capacity,
                current_sessions: r.current_sessions,
                current_meetings: r.current_meetings,
                webtransport_endpoint: r.reg.webtransport_endpoint.clone(),
                http_endpoint: r.reg.http_endpoint.clone(),
                status: r.status.clone(),
                last_heartbeat: rfc3339(r.last_heartbeat),
                registered_at: rfc3339(r.registered_at),
            })
            .collect())
    }

    fn set_status(&mut self, id: &str, status: &str) -> Result<bool, StoreError> {
        if !STATUSES.contains(&status) {
            return Err(StoreError(format!("invalid status {status:?}")));
        }
        Ok(match self.rows.get_mut(id) {
            Some(row) => {
                row.status = status.to_string();
                true
            }
            None => false,
        })
    }

    fn mark_unhealthy(&mut self, after: Duration) -> Result<Vec<String>, StoreError> {
        let now = SystemTime::now();
        let mut ids = vec![];
        for row in self.rows.values_mut() {
            let age = now.duration_since(row.last_heartbeat).unwrap_or_default();
            if row.status == "active" && age > after {
                row.status = "unhealthy".into();
                ids.push(row.reg.id.clone());
            }
        }
        Ok(ids)
    }

    fn migrate(
        &mut self,
        source: &str,
        meetings: &[MovingMeeting],
        fresh: Duration,
    ) -> Result<Option<Vec<(String, Target)>>, StoreError> {
        let Some(region) = self.rows.get(source).map(|r| r.reg.region.clone()) else {
            return Ok(None);
        };
        let now = SystemTime::now();
        let mut candidates: Vec<Candidate> = self
            .rows
            .values()
            .filter(|r| r.reg.id != source && r.reg.region == region && r.status == "active")
            .filter(|r| now.duration_since(r.last_heartbeat).unwrap_or_default() < fresh)
            .filter_map(|r| {
                Some(Candidate {
                    id: r.reg.id.clone(),
                    capacity: r.reg.capacity,
                    current_meetings: r.current_meetings,
                    webtransport_endpoint: r.reg.webtransport_endpoint.clone()?,
                    http_endpoint: r.reg.http_endpoint.clone()?,
                })
            })
            .collect();
        candidates.sort_by(|a, b| a.id.cmp(&b.id));
        let chosen = assign(&candidates, meetings);
        let mut targets = Vec::with_capacity(chosen.len());
        for (meeting, candidate) in chosen {
            let (Some(m), Some(c)) = (meetings.get(meeting), candidates.get(candidate)) else {
                continue;
            };
            self.owners.insert(m.meeting_id.clone(), c.id.clone());
            if let Some(row) = self.rows.get_mut(&c.id) {
                row.current_meetings = row.current_meetings.saturating_add(1);
            }
            targets.push((m.meeting_id.clone(), c.target()));
        }
        Ok(Some(targets))
    }

    fn owners(&mut self) -> Result<BTreeMap<String, String>, StoreError> {
        Ok(self.owners.clone())
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC) without a date library: days since the epoch to a
/// civil date by the proleptic Gregorian era arithmetic.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(id: &str) -> Registration {
        Registration {
            id: id.into(),
            region: "r".into(),
            capacity: 10,
            webtransport_endpoint: Some("https://127.0.0.1:4433".into()),
            http_endpoint: None,
        }
    }

    fn hb(id: &str) -> Heartbeat {
        Heartbeat {
            id: id.into(),
            capacity: 10,
            current_meetings: 1,
            current_sessions: 2,
        }
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_123);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56.123Z");
    }

    #[test]
    fn memory_store_follows_the_contract() {
        let mut s = MemoryStore::default();
        assert_eq!(s.heartbeat(&hb("a")).unwrap(), None);
        assert_eq!(s.register(&reg("a")).unwrap(), "active");
        assert_eq!(s.heartbeat(&hb("a")).unwrap().as_deref(), Some("active"));
        assert!(s.set_status("a", "draining").unwrap());
        assert_eq!(s.heartbeat(&hb("a")).unwrap().as_deref(), Some("draining"));
        // Re-registration keeps an operator's draining.
        assert_eq!(s.register(&reg("a")).unwrap(), "draining");
        assert!(s.set_status("a", "active").unwrap());
        assert!(s.set_status("a", "bogus").is_err());
        assert!(s
            .mark_unhealthy(Duration::from_secs(30))
            .unwrap()
            .is_empty());
        assert_eq!(
            s.mark_unhealthy(Duration::ZERO).unwrap(),
            vec!["a".to_string()]
        );
        assert_eq!(s.heartbeat(&hb("a")).unwrap().as_deref(), Some("active"));
        let rows = s.list().unwrap();
        assert_eq!((rows[0].current_sessions, rows[0].current_meetings), (2, 1));
        assert!(s.deregister("a").unwrap());
        assert!(!s.deregister("b").unwrap());
        assert_eq!(s.heartbeat(&hb("a")).unwrap(), None);
        assert_eq!(s.register(&reg("a")).unwrap(), "active");
    }

    fn reg_in(id: &str, region: &str, capacity: i32) -> Registration {
        Registration {
            id: id.into(),
            region: region.into(),
            capacity,
            webtransport_endpoint: Some(format!("https://{id}:4433")),
            http_endpoint: Some(format!("http://{id}:8080")),
        }
    }

    fn load(s: &mut MemoryStore, id: &str, meetings: i32) {
        let h = Heartbeat {
            id: id.into(),
            capacity: s.rows[id].reg.capacity,
            current_meetings: meetings,
            current_sessions: meetings * 3,
        };
        assert!(s.heartbeat(&h).unwrap().is_some());
    }

    fn moving(ids: &[&str]) -> Vec<MovingMeeting> {
        ids.iter()
            .map(|m| MovingMeeting {
                meeting_id: m.to_string(),
                participants: 2,
            })
            .collect()
    }

    const FRESH: Duration = Duration::from_secs(30);

    #[test]
    fn migrate_picks_fresh_active_peers_of_the_region_least_loaded_first() {
        let mut s = MemoryStore::default();
        for (id, region, cap) in [
            ("src", "eu", 10),
            ("busy", "eu", 10),
            ("idle", "eu", 2),
            ("far", "us", 10),
            ("drained", "eu", 10),
            ("quiet", "eu", 10),
        ] {
            s.register(&reg_in(id, region, cap)).unwrap();
        }
        load(&mut s, "busy", 5);
        load(&mut s, "idle", 0);
        s.set_status("drained", "draining").unwrap();
        assert!(s.backdate_heartbeat("quiet", FRESH));
        let mut no_endpoint = reg_in("blind", "eu", 10);
        no_endpoint.http_endpoint = None;
        s.register(&no_endpoint).unwrap();

        let t = s
            .migrate("src", &moving(&["m1", "m2", "m3", "m4"]), FRESH)
            .unwrap()
            .unwrap();
        let placed: Vec<(&str, &str)> =
            t.iter().map(|(m, t)| (m.as_str(), t.id.as_str())).collect();
        // idle (0 meetings, room for 2) takes two, then busy (5 of 10) the rest.
        assert_eq!(
            placed,
            [
                ("m1", "idle"),
                ("m2", "idle"),
                ("m3", "busy"),
                ("m4", "busy")
            ]
        );
        assert_eq!(t[0].1.webtransport_endpoint, "https://idle:4433");
        assert_eq!(t[0].1.http_endpoint, "http://idle:8080");
        let owners = s.owners().unwrap();
        assert_eq!(owners.get("m3").map(String::as_str), Some("busy"));
        assert_eq!(owners.len(), 4);
        // The assignments count on the targets' rows until their next heartbeat.
        assert_eq!(s.rows["idle"].current_meetings, 2);
        assert_eq!(s.rows["busy"].current_meetings, 7);
        // So the next drain sees them: idle is full now.
        let t = s.migrate("src", &moving(&["m5"]), FRESH).unwrap().unwrap();
        assert_eq!(t[0].1.id, "busy");
        // A meeting moved again gets its new owner recorded.
        load(&mut s, "idle", 0);
        let t = s.migrate("busy", &moving(&["m3"]), FRESH).unwrap().unwrap();
        assert_eq!(t[0].1.id, "idle");
        assert_eq!(s.owners().unwrap()["m3"], "idle");
    }

    #[test]
    fn migrate_without_room_or_source() {
        let mut s = MemoryStore::default();
        assert_eq!(s.migrate("nobody", &moving(&["m"]), FRESH).unwrap(), None);
        s.register(&reg_in("src", "eu", 10)).unwrap();
        // Alone in its region: no target, nothing recorded.
        assert_eq!(
            s.migrate("src", &moving(&["m"]), FRESH).unwrap(),
            Some(vec![])
        );
        s.register(&reg_in("full", "eu", 1)).unwrap();
        load(&mut s, "full", 1);
        assert_eq!(
            s.migrate("src", &moving(&["m"]), FRESH).unwrap(),
            Some(vec![])
        );
        assert!(s.owners().unwrap().is_empty());
        // An unhealthy target recovers with its heartbeat and takes the meeting.
        s.register(&reg_in("late", "eu", 1)).unwrap();
        s.set_status("late", "unhealthy").unwrap();
        assert_eq!(
            s.migrate("src", &moving(&["m"]), FRESH).unwrap(),
            Some(vec![])
        );
        load(&mut s, "late", 0);
        let t = s.migrate("src", &moving(&["m"]), FRESH).unwrap().unwrap();
        assert_eq!(t[0].1.id, "late");
    }
}
