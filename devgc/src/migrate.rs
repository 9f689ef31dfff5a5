//! Picking a target MC for each meeting of a draining MC (docs/gc-api.md "Migration").
//!
//! The stores filter the candidates (another MC of the source's region, `active`, a
//! heartbeat younger than the freshness bound, both endpoints known); [`assign`] then
//! places the meetings, the same way for both stores:
//!
//! - a candidate has spare room while `capacity − current_meetings − assigned > 0`,
//!   where `assigned` counts what this call already gave it;
//! - each meeting, in request order, goes to the candidate with the lowest
//!   `current_meetings + assigned`; ties go to the smallest id, so the answer is
//!   deterministic;
//! - a meeting no candidate has room for gets no target (it stays on the source,
//!   docs/protocol.md rule 21).

use serde::{Deserialize, Serialize};

/// Longest accepted meeting id, in bytes (the MC accepts the same in join tokens).
pub const MAX_MEETING_ID_BYTES: usize = 256;
/// Most meetings in one request.
pub const MAX_MEETINGS: usize = 10_000;

/// One meeting the source wants to move: `{"meeting_id": "m1", "participants": 7}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct MovingMeeting {
    pub meeting_id: String,
    /// Informational: the placement counts meetings, as `MC_CAPACITY` does.
    #[serde(default)]
    pub participants: u32,
}

/// The MC chosen for one meeting, as the response's `targets` map shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    pub id: String,
    pub webtransport_endpoint: String,
    pub http_endpoint: String,
}

/// An MC that may receive meetings (already filtered by the store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub capacity: i32,
    pub current_meetings: i32,
    pub webtransport_endpoint: String,
    pub http_endpoint: String,
}

impl Candidate {
    pub fn target(&self) -> Target {
        Target {
            id: self.id.clone(),
            webtransport_endpoint: self.webtransport_endpoint.clone(),
            http_endpoint: self.http_endpoint.clone(),
        }
    }
}

/// The body of `POST /api/v1/mc/migrate`, validated.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct MigrateRequest {
    /// The source MC's id.
    pub id: String,
    pub meetings: Vec<MovingMeeting>,
}

impl MigrateRequest {
    /// Parse and check the limits: at most [`MAX_MEETINGS`] meetings, ids of 1 to
    /// [`MAX_MEETING_ID_BYTES`] bytes, no meeting twice.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let req: Self =
            serde_json::from_slice(body).map_err(|e| format!("invalid migrate body: {e}"))?;
        if req.meetings.len() > MAX_MEETINGS {
            return Err(format!("more than {MAX_MEETINGS} meetings"));
        }
        let mut seen = std::collections::HashSet::with_capacity(req.meetings.len());
        for m in &req.meetings {
            if m.meeting_id.is_empty() || m.meeting_id.len() > MAX_MEETING_ID_BYTES {
                return Err(format!(
                    "meeting_id must be 1 to {MAX_MEETING_ID_BYTES} bytes"
                ));
            }
            if !seen.insert(m.meeting_id.as_str()) {
                return Err(format!("meeting {:?} listed twice", m.meeting_id));
            }
        }
        Ok(req)
    }
}

/// Place `meetings` on `candidates` (module docs): `(meeting index, candidate index)`
/// for every meeting that got a target, in request order.
pub fn assign(candidates: &[Candidate], meetings: &[MovingMeeting]) -> Vec<(usize, usize)> {
    let mut assigned = vec![0i64; candidates.len()];
    let mut out = Vec::with_capacity(meetings.len());
    for meeting in 0..meetings.len() {
        let best = candidates
            .iter()
            .zip(&assigned)
            .enumerate()
            .map(|(i, (c, a))| (i, c, i64::from(c.current_meetings) + a))
            .filter(|(_, c, load)| i64::from(c.capacity) - load > 0)
            .min_by(|(_, a, load_a), (_, b, load_b)| load_a.cmp(load_b).then(a.id.cmp(&b.id)));
        let Some((i, _, _)) = best else { continue };
        if let Some(a) = assigned.get_mut(i) {
            *a += 1;
        }
        out.push((meeting, i));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(id: &str, capacity: i32, current: i32) -> Candidate {
        Candidate {
            id: id.into(),
            capacity,
            current_meetings: current,
            webtransport_endpoint: format!("https://{id}:4433"),
            http_endpoint: format!("http://{id}:8080"),
        }
    }

    fn meetings(n: usize) -> Vec<MovingMeeting> {
        (0..n)
            .map(|i| MovingMeeting {
                meeting_id: format!("m{i}"),
                participants: 3,
            })
            .collect()
    }

    #[test]
    fn least_loaded_first_counting_what_was_just_assigned() {
        let cs = [cand("a", 10, 3), cand("b", 10, 1), cand("c", 10, 2)];
        let got: Vec<&str> = assign(&cs, &meetings(6))
            .into_iter()
            .map(|(_, c)| cs[c].id.as_str())
            .collect();
        // Loads a3 b1 c2 → b (b2) → b/c tie, b by id (b3) → c (c3) → three-way tie, a (a4)
        // → b/c tie, b (b4) → c.
        assert_eq!(got, ["b", "b", "c", "a", "b", "c"]);
    }

    #[test]
    fn spare_capacity_is_a_hard_limit() {
        let cs = [cand("a", 2, 1), cand("b", 1, 1), cand("c", 0, 0)];
        let got = assign(&cs, &meetings(3));
        assert_eq!(got, vec![(0, 0)], "only a has room, for one meeting");
        // Over capacity already (the row counts more than it holds): never chosen.
        assert!(assign(&[cand("x", 1, 5)], &meetings(1)).is_empty());
        assert!(assign(&[], &meetings(2)).is_empty());
    }

    #[test]
    fn ties_are_broken_by_id_whatever_the_input_order() {
        let one = [cand("b", 5, 0), cand("a", 5, 0)];
        let got = assign(&one, &meetings(1));
        assert_eq!(one[got[0].1].id, "a");
    }

    #[test]
    fn requests_are_checked() {
        let ok = MigrateRequest::parse(
            br#"{"id":"mc-a","meetings":[{"meeting_id":"m1","participants":7},{"meeting_id":"m2"}]}"#,
        )
        .unwrap();
        assert_eq!(ok.meetings.len(), 2);
        assert_eq!(ok.meetings[1].participants, 0);
        for bad in [
            &br#"{"id":"mc-a"}"#[..],
            br#"{"id":"mc-a","meetings":[{"meeting_id":""}]}"#,
            br#"{"id":"mc-a","meetings":[{"meeting_id":"m"},{"meeting_id":"m"}]}"#,
            br#"{"id":"mc-a","meetings":[{"meeting_id":"m","participants":-1}]}"#,
            b"[",
        ] {
            assert!(
                MigrateRequest::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!(
            r#"{{"id":"a","meetings":[{{"meeting_id":"{}"}}]}}"#,
            "m".repeat(MAX_MEETING_ID_BYTES + 1)
        );
        assert!(MigrateRequest::parse(long.as_bytes()).is_err());
    }
}
