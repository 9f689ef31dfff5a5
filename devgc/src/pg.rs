//! The PostgreSQL store: the `meeting_controllers` table exactly as docs/gc-api.md shows it,
//! so the runbook's `SELECT … FROM meeting_controllers` (Deployment Step 7, Smoke Test 4)
//! and `UPDATE meeting_controllers SET status = 'draining' …` (Step 2, Rollback Step 4)
//! work verbatim and the next heartbeat answers the operator's status. Moved meetings
//! are recorded in `meeting_owners` (meeting_id → MC id).

use std::collections::BTreeMap;
use std::time::Duration;

use postgres::{Client, NoTls};

use super::migrate::{assign, Candidate, MovingMeeting, Target};
use super::store::{Heartbeat, Registration, Row, Store, StoreError, STATUSES};

/// docs/gc-api.md "The GC's table", verbatim.
pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS meeting_controllers (
  id               TEXT PRIMARY KEY,
  region           TEXT NOT NULL,
  capacity         INTEGER NOT NULL,
  current_sessions INTEGER NOT NULL DEFAULT 0,
  current_meetings INTEGER NOT NULL DEFAULT 0,
  webtransport_endpoint TEXT,
  http_endpoint    TEXT,
  status           TEXT NOT NULL DEFAULT 'active'
                   CHECK (status IN ('active', 'draining', 'unhealthy', 'deregistered')),
  last_heartbeat   TIMESTAMPTZ NOT NULL DEFAULT now(),
  registered_at    TIMESTAMPTZ NOT NULL DEFAULT now()
)";

/// Who owns each meeting moved by `POST /api/v1/mc/migrate`, so new joins could be
/// routed there. `mc_id` is not a foreign key: rows of deregistered MCs stay.
pub const CREATE_OWNERS_TABLE: &str = "CREATE TABLE IF NOT EXISTS meeting_owners (
  meeting_id  TEXT PRIMARY KEY,
  mc_id       TEXT NOT NULL,
  assigned_at TIMESTAMPTZ NOT NULL DEFAULT now()
)";

const REGISTER: &str = "INSERT INTO meeting_controllers
    (id, region, capacity, webtransport_endpoint, http_endpoint, status, last_heartbeat, registered_at)
  VALUES ($1, $2, $3, $4, $5, 'active', now(), now())
  ON CONFLICT (id) DO UPDATE SET
    region = EXCLUDED.region,
    capacity = EXCLUDED.capacity,
    webtransport_endpoint = EXCLUDED.webtransport_endpoint,
    http_endpoint = EXCLUDED.http_endpoint,
    last_heartbeat = now(),
    registered_at = now(),
    status = CASE WHEN meeting_controllers.status = 'draining' THEN 'draining' ELSE 'active' END
  RETURNING status";

const HEARTBEAT: &str = "UPDATE meeting_controllers SET
    capacity = $2, current_meetings = $3, current_sessions = $4, last_heartbeat = now(),
    status = CASE WHEN status = 'unhealthy' THEN 'active' ELSE status END
  WHERE id = $1 AND status <> 'deregistered'
  RETURNING status";

const LIST: &str = "SELECT id, region, capacity, current_sessions, current_meetings,
    webtransport_endpoint, http_endpoint, status,
    to_char(last_heartbeat AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
    to_char(registered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
  FROM meeting_controllers ORDER BY last_heartbeat DESC";

const MARK_UNHEALTHY: &str = "UPDATE meeting_controllers SET status = 'unhealthy'
  WHERE status = 'active' AND last_heartbeat < now() - make_interval(secs => $1)
  RETURNING id";

const SOURCE_REGION: &str = "SELECT region FROM meeting_controllers WHERE id = $1";

/// The candidates of docs/gc-api.md "Migration", locked until the transaction ends so that
/// concurrent drains count each other's assignments.
const CANDIDATES: &str =
    "SELECT id, capacity, current_meetings, webtransport_endpoint, http_endpoint
  FROM meeting_controllers
  WHERE id <> $1 AND region = $2 AND status = 'active'
    AND last_heartbeat > now() - make_interval(secs => $3)
    AND webtransport_endpoint IS NOT NULL AND http_endpoint IS NOT NULL
  ORDER BY id
  FOR UPDATE";

const RECORD_OWNER: &str = "INSERT INTO meeting_owners (meeting_id, mc_id, assigned_at)
  VALUES ($1, $2, now())
  ON CONFLICT (meeting_id) DO UPDATE SET mc_id = EXCLUDED.mc_id, assigned_at = now()";

const COUNT_ASSIGNED: &str =
    "UPDATE meeting_controllers SET current_meetings = current_meetings + $2 WHERE id = $1";

/// A store on one PostgreSQL connection, reconnected when it drops.
pub struct PgStore {
    url: String,
    client: Client,
}

impl PgStore {
    /// Connect and create the table if it is missing.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let mut client = Client::connect(url, NoTls).map_err(err)?;
        client.batch_execute(CREATE_TABLE).map_err(err)?;
        client.batch_execute(CREATE_OWNERS_TABLE).map_err(err)?;
        Ok(Self {
            url: url.to_string(),
            client,
        })
    }

    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.is_closed() {
            self.client = Client::connect(&self.url, NoTls).map_err(err)?;
        }
        Ok(&mut self.client)
    }
}

fn err(e: postgres::Error) -> StoreError {
    StoreError(format!("postgres: {e}"))
}

impl Store for PgStore {
    fn register(&mut self, r: &Registration) -> Result<String, StoreError> {
        let row = self
            .client()?
            .query_one(
                REGISTER,
                &[
                    &r.id,
                    &r.region,
                    &r.capacity,
                    &r.webtransport_endpoint,
                    &r.http_endpoint,
                ],
            )
            .map_err(err)?;
        Ok(row.get(0))
    }

    fn heartbeat(&mut self, h: &Heartbeat) -> Result<Option<String>, StoreError> {
        let row = self
            .client()?
            .query_opt(
                HEARTBEAT,
                &[&h.id, &h.capacity, &h.current_meetings, &h.current_sessions],
            )
            .map_err(err)?;
        Ok(row.map(|r| r.get(0)))
    }

    fn deregister(&mut self, id: &str) -> Result<bool, StoreError> {
        self.set_status(id, "deregistered")
    }

    fn list(&mut self) -> Result<Vec<Row>, StoreError> {
        let rows = self.client()?.query(LIST, &[]).map_err(err)?;
        Ok(rows
            .iter()
            .map(|r| Row {
                id: r.get(0),
                region: r.get(1),
                capacity: r.get(2),
                current_sessions: r.get(3),
                current_meetings: r.get(4),
                webtransport_endpoint: r.get(5),
                http_endpoint: r.get(6),
                status: r.get(7),
                last_heartbeat: r.get(8),
                registered_at: r.get(9),
            })
            .collect())
    }

    fn set_status(&mut self, id: &str, status: &str) -> Result<bool, StoreError> {
        if !STATUSES.contains(&status) {
            return Err(StoreError(format!("invalid status {status:?}")));
        }
        let n = self
            .client()?
            .execute(
                "UPDATE meeting_controllers SET status = $2 WHERE id = $1",
                &[&id, &status],
            )
            .map_err(err)?;
        Ok(n > 0)
    }

    fn mark_unhealthy(&mut self, after: Duration) -> Result<Vec<String>, StoreError> {
        let rows = self
            .client()?
            .query(MARK_UNHEALTHY, &[&after.as_secs_f64()])
            .map_err(err)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn migrate(
        &mut self,
        source: &str,
        meetings: &[MovingMeeting],
        fresh: Duration,
    ) -> Result<Option<Vec<(String, Target)>>, StoreError> {
        let mut tx = self.client()?.transaction().map_err(err)?;
        let Some(region) = tx.query_opt(SOURCE_REGION, &[&source]).map_err(err)? else {
            return Ok(None);
        };
        let region: String = region.get(0);
        let candidates: Vec<Candidate> = tx
            .query(CANDIDATES, &[&source, &region, &fresh.as_secs_f64()])
            .map_err(err)?
            .iter()
            .map(|r| Candidate {
                id: r.get(0),
                capacity: r.get(1),
                current_meetings: r.get(2),
                webtransport_endpoint: r.get(3),
                http_endpoint: r.get(4),
            })
            .collect();
        let mut targets = Vec::new();
        let mut counts: BTreeMap<&str, i32> = BTreeMap::new();
        for (meeting, candidate) in assign(&candidates, meetings) {
            let (Some(m), Some(c)) = (meetings.get(meeting), candidates.get(candidate)) else {
                continue;
            };
            tx.execute(RECORD_OWNER, &[&m.meeting_id, &c.id])
                .map_err(err)?;
            *counts.entry(c.id.as_str()).or_default() += 1;
            targets.push((m.meeting_id.clone(), c.target()));
        }
        for (id, n) in counts {
            tx.execute(COUNT_ASSIGNED, &[&id, &n]).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(Some(targets))
    }

    fn owners(&mut self) -> Result<BTreeMap<String, String>, StoreError> {
        let rows = self
            .client()?
            .query("SELECT meeting_id, mc_id FROM meeting_owners", &[])
            .map_err(err)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
