//! The hub's storage: one API over SQLite and PostgreSQL.
//!
//! The hub's SQL is portable (one migration set, `$n` parameters, `ON CONFLICT`, `RETURNING`,
//! row-value comparisons), so it runs through sqlx's `Any` driver: one implementation, one
//! test suite run against both databases. Times are Unix milliseconds, booleans 0/1, JSON
//! text. SQLite gets one writer connection (`BEGIN IMMEDIATE`, WAL) and a read-only pool;
//! PostgreSQL one pool.

use std::time::Duration;

mod console;
mod dispatch;
pub use console::*;
pub use dispatch::*;

use serde::Serialize;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Row};
use thiserror::Error;

/// Why a storage call failed.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("the database URL {0:?} is neither sqlite:// nor postgres://")]
    UnsupportedUrl(String),
    #[error("cannot open the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migrating the database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("stored data is not usable: {0}")]
    Corrupt(String),
}

/// The columns `WarningRow::from_row` reads, in its order.
const WARNING_COLUMNS: &str = "wkey, exercise, node, kind, station, region, incident, colour, value, threshold, \
     raised_ms, updated_ms, event_id, body, cap_id";
/// The columns `AssessmentRow::from_row` reads, in its order.
const ASSESSMENT_COLUMNS: &str = "id, subject, exercise, incident, division, at_ms, level, previous, change, rule, \
     reason, inputs, actions, matched, trigger_event, cap_id";

/// Rows per multi-row INSERT: under both databases' bind limits.
const CHUNK: usize = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// The storage of the hub.
#[derive(Debug, Clone)]
pub struct Store {
    kind: Kind,
    writer: AnyPool,
    reader: AnyPool,
}

/// A write transaction.
pub struct Tx {
    pub(crate) tx: sqlx::Transaction<'static, Any>,
}

impl Store {
    /// Opens (creating a SQLite file if missing) and migrates the database at `url`.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        if url.starts_with("sqlite:") {
            let url = if url.contains("mode=") {
                url.to_owned()
            } else {
                format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
            };
            let options: AnyConnectOptions = url.parse().map_err(StoreError::Connect)?;
            let writer = AnyPoolOptions::new()
                .max_connections(1)
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        Ok(())
                    })
                })
                .connect_with(options.clone())
                .await
                .map_err(StoreError::Connect)?;
            sqlx::migrate!("./migrations").run(&writer).await?;
            let reader = AnyPoolOptions::new()
                .max_connections(4)
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        Ok(())
                    })
                })
                .connect_with(options)
                .await
                .map_err(StoreError::Connect)?;
            Ok(Store { kind: Kind::Sqlite, writer, reader })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options: AnyConnectOptions = url.parse().map_err(StoreError::Connect)?;
            let pool = AnyPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(StoreError::Connect)?;
            sqlx::migrate!("./migrations").run(&pool).await?;
            Ok(Store { kind: Kind::Postgres, writer: pool.clone(), reader: pool })
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        let tx = match self.kind {
            // BEGIN IMMEDIATE takes the write lock up front: no "database is locked" half-way.
            Kind::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Kind::Postgres => self.writer.begin().await?,
        };
        Ok(Tx { tx })
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    pub async fn incidents(&self, exercise: Option<bool>) -> Result<Vec<IncidentRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT i.id, i.exercise, i.hazard, i.first_ms, i.last_ms, i.reports, l.level, l.assessment \
             FROM incidents i LEFT JOIN levels l ON l.subject = i.id AND l.exercise = i.exercise \
             WHERE ($1 IS NULL OR i.exercise = $1) ORDER BY i.last_ms DESC, i.id",
        )
        .bind(exercise.map(i64::from))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(IncidentRow::from_row).collect()
    }

    pub async fn incident(&self, id: &str, exercise: bool) -> Result<Option<IncidentRow>, StoreError> {
        let row = sqlx::query(
            "SELECT i.id, i.exercise, i.hazard, i.first_ms, i.last_ms, i.reports, l.level, l.assessment \
             FROM incidents i LEFT JOIN levels l ON l.subject = i.id AND l.exercise = i.exercise \
             WHERE i.id = $1 AND i.exercise = $2",
        )
        .bind(id)
        .bind(i64::from(exercise))
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(IncidentRow::from_row).transpose()
    }

    pub async fn report_rows(&self, incident: &str, exercise: bool) -> Result<Vec<ReportRow>, StoreError> {
        report_rows(&self.reader, incident, exercise).await
    }

    /// The events of an incident in time order (its timeline), at most `limit`.
    pub async fn incident_events(
        &self,
        incident: &str,
        exercise: bool,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, node, kind, at_ms, exercise, region, incident, body, received_ms FROM events \
             WHERE incident = $1 AND exercise = $2 AND kind <> 'stats' ORDER BY at_ms, id LIMIT $3",
        )
        .bind(incident)
        .bind(i64::from(exercise))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(EventRow::from_row).collect()
    }

    pub async fn warnings(&self, active_only: bool, exercise: Option<bool>) -> Result<Vec<WarningRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WARNING_COLUMNS} FROM warnings \
             WHERE ($1 = 0 OR colour IS NOT NULL) AND ($2 IS NULL OR exercise = $2) ORDER BY updated_ms DESC, wkey"
        )))
        .bind(i64::from(active_only))
        .bind(exercise.map(i64::from))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(WarningRow::from_row).collect()
    }

    pub async fn assessments(&self, query: &AssessmentQuery) -> Result<Vec<AssessmentRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ASSESSMENT_COLUMNS} FROM assessments \
             WHERE ($1 IS NULL OR subject = $1) AND ($2 IS NULL OR exercise = $2) ORDER BY at_ms DESC, id DESC LIMIT $3"
        )))
        .bind(query.subject.clone())
        .bind(query.exercise.map(i64::from))
        .bind(query.limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(AssessmentRow::from_row).collect()
    }

    pub async fn assessment(&self, id: &str) -> Result<Option<AssessmentRow>, StoreError> {
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE id = $1")))
                .bind(id)
                .fetch_optional(&self.reader)
                .await?;
        row.as_ref().map(AssessmentRow::from_row).transpose()
    }

    pub async fn cap_index(&self, exercise: Option<bool>, limit: i64) -> Result<Vec<CapRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT identifier, sent_ms, exercise, source, source_key, msg_type, summary FROM cap_alerts \
             WHERE ($1 IS NULL OR exercise = $1) ORDER BY sent_ms DESC, identifier DESC LIMIT $2",
        )
        .bind(exercise.map(i64::from))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(CapRow::from_row).collect()
    }

    pub async fn cap_xml(&self, identifier: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT xml FROM cap_alerts WHERE identifier = $1")
            .bind(identifier)
            .fetch_optional(&self.reader)
            .await?)
    }

    pub async fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, online, status_ms, last_seen_ms, version, outbox, outbox_oldest_s, events FROM nodes ORDER BY id",
        )
        .fetch_all(&self.reader)
        .await?;
        let mut nodes: Vec<NodeRow> = rows.iter().map(NodeRow::from_row).collect::<Result<_, _>>()?;
        let stations =
            sqlx::query("SELECT node, CAST(SUM(online) AS BIGINT), COUNT(*) FROM stations GROUP BY node ORDER BY node")
                .fetch_all(&self.reader)
                .await?;
        for s in &stations {
            let node: String = s.try_get(0)?;
            if let Some(n) = nodes.iter_mut().find(|n| n.id == node) {
                n.stations_online = s.try_get::<Option<i64>, _>(1)?.unwrap_or(0);
                n.stations = s.try_get(2)?;
            }
        }
        Ok(nodes)
    }

    pub async fn stations(&self, node: Option<&str>) -> Result<Vec<StationRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT node, station, region, online, at_ms, body FROM stations \
             WHERE ($1 IS NULL OR node = $1) ORDER BY node, station",
        )
        .bind(node.map(str::to_owned))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StationRow {
                    node: r.try_get(0)?,
                    station: r.try_get(1)?,
                    region: r.try_get(2)?,
                    online: r.try_get::<i64, _>(3)? != 0,
                    at_ms: r.try_get(4)?,
                    body: json(r.try_get(5)?),
                })
            })
            .collect()
    }

    /// The role and name of the token whose SHA-256 is `hash`.
    pub async fn token_role(&self, hash: &str) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query("SELECT role, name FROM tokens WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    pub async fn add_token(&self, hash: &str, role: &str, name: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO tokens (hash, role, name, created_ms) VALUES ($1, $2, $3, $4)")
            .bind(hash)
            .bind(role)
            .bind(name)
            .bind(now_ms)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

async fn report_rows<'e, E>(e: E, incident: &str, exercise: bool) -> Result<Vec<ReportRow>, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let rows = sqlx::query(
        "SELECT incident, exercise, region, node, device, report_id, observed_ms, stage, hazard, figures \
         FROM report_latest WHERE incident = $1 AND exercise = $2 ORDER BY region",
    )
    .bind(incident)
    .bind(i64::from(exercise))
    .fetch_all(e)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ReportRow {
                incident: r.try_get(0)?,
                exercise: r.try_get::<i64, _>(1)? != 0,
                region: r.try_get(2)?,
                node: r.try_get(3)?,
                device: r.try_get(4)?,
                report_id: r.try_get(5)?,
                observed_ms: r.try_get(6)?,
                stage: r.try_get(7)?,
                hazard: r.try_get(8)?,
                figures: r.try_get(9)?,
            })
        })
        .collect()
}

fn json(text: String) -> serde_json::Value {
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

/// An event as the hub stored it.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub node: String,
    pub kind: String,
    pub at_ms: i64,
    pub exercise: bool,
    pub region: String,
    pub incident: Option<String>,
    pub body: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub id: String,
    pub node: String,
    pub kind: String,
    pub at_ms: i64,
    pub exercise: bool,
    pub region: String,
    pub incident: Option<String>,
    pub body: serde_json::Value,
    pub received_ms: i64,
}

impl EventRow {
    fn from_row(r: &sqlx::any::AnyRow) -> Result<EventRow, StoreError> {
        Ok(EventRow {
            id: r.try_get(0)?,
            node: r.try_get(1)?,
            kind: r.try_get(2)?,
            at_ms: r.try_get(3)?,
            exercise: r.try_get::<i64, _>(4)? != 0,
            region: r.try_get(5)?,
            incident: r.try_get(6)?,
            body: json(r.try_get(7)?),
            received_ms: r.try_get(8)?,
        })
    }
}

/// The report that counts for one (incident, exercise, region).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRow {
    pub incident: String,
    pub exercise: bool,
    pub region: String,
    pub node: String,
    pub device: String,
    pub report_id: String,
    pub observed_ms: i64,
    pub stage: String,
    pub hazard: String,
    pub figures: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct IncidentRow {
    pub id: String,
    pub exercise: bool,
    pub hazard: String,
    pub first_ms: i64,
    pub last_ms: i64,
    pub reports: i64,
    pub level: Option<u8>,
    pub assessment: Option<String>,
}

impl IncidentRow {
    fn from_row(r: &sqlx::any::AnyRow) -> Result<IncidentRow, StoreError> {
        Ok(IncidentRow {
            id: r.try_get(0)?,
            exercise: r.try_get::<i64, _>(1)? != 0,
            hazard: r.try_get(2)?,
            first_ms: r.try_get(3)?,
            last_ms: r.try_get(4)?,
            reports: r.try_get(5)?,
            level: r.try_get::<Option<i64>, _>(6)?.and_then(|l| u8::try_from(l).ok()),
            assessment: r.try_get(7)?,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct WarningRow {
    pub key: String,
    pub exercise: bool,
    pub node: String,
    pub kind: String,
    pub station: Option<String>,
    pub region: String,
    pub incident: Option<String>,
    /// `None` once cleared.
    pub colour: Option<String>,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub raised_ms: i64,
    pub updated_ms: i64,
    pub event_id: String,
    pub body: serde_json::Value,
    pub cap_id: Option<String>,
}

impl WarningRow {
    fn from_row(r: &sqlx::any::AnyRow) -> Result<WarningRow, StoreError> {
        Ok(WarningRow {
            key: r.try_get(0)?,
            exercise: r.try_get::<i64, _>(1)? != 0,
            node: r.try_get(2)?,
            kind: r.try_get(3)?,
            station: r.try_get(4)?,
            region: r.try_get(5)?,
            incident: r.try_get(6)?,
            colour: r.try_get(7)?,
            value: r.try_get(8)?,
            threshold: r.try_get(9)?,
            raised_ms: r.try_get(10)?,
            updated_ms: r.try_get(11)?,
            event_id: r.try_get(12)?,
            body: json(r.try_get(13)?),
            cap_id: r.try_get(14)?,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct AssessmentQuery {
    pub subject: Option<String>,
    pub exercise: Option<bool>,
    pub limit: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AssessmentRow {
    pub id: String,
    pub subject: String,
    pub exercise: bool,
    pub incident: Option<String>,
    pub division: String,
    pub at_ms: i64,
    pub level: Option<u8>,
    pub previous: Option<u8>,
    pub change: String,
    pub rule: Option<String>,
    pub reason: String,
    pub inputs: serde_json::Value,
    pub actions: serde_json::Value,
    pub matched: serde_json::Value,
    pub trigger_event: Option<String>,
    pub cap_id: Option<String>,
}

impl AssessmentRow {
    fn from_row(r: &sqlx::any::AnyRow) -> Result<AssessmentRow, StoreError> {
        let level = |v: Option<i64>| v.and_then(|l| u8::try_from(l).ok());
        Ok(AssessmentRow {
            id: r.try_get(0)?,
            subject: r.try_get(1)?,
            exercise: r.try_get::<i64, _>(2)? != 0,
            incident: r.try_get(3)?,
            division: r.try_get(4)?,
            at_ms: r.try_get(5)?,
            level: level(r.try_get(6)?),
            previous: level(r.try_get(7)?),
            change: r.try_get(8)?,
            rule: r.try_get(9)?,
            reason: r.try_get(10)?,
            inputs: json(r.try_get(11)?),
            actions: json(r.try_get(12)?),
            matched: json(r.try_get(13)?),
            trigger_event: r.try_get(14)?,
            cap_id: r.try_get(15)?,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CapRow {
    pub identifier: String,
    pub sent_ms: i64,
    pub exercise: bool,
    pub source: String,
    pub source_key: String,
    pub msg_type: String,
    pub summary: serde_json::Value,
}

impl CapRow {
    fn from_row(r: &sqlx::any::AnyRow) -> Result<CapRow, StoreError> {
        Ok(CapRow {
            identifier: r.try_get(0)?,
            sent_ms: r.try_get(1)?,
            exercise: r.try_get::<i64, _>(2)? != 0,
            source: r.try_get(3)?,
            source_key: r.try_get(4)?,
            msg_type: r.try_get(5)?,
            summary: json(r.try_get(6)?),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeRow {
    pub id: String,
    pub online: bool,
    pub status_ms: i64,
    pub last_seen_ms: i64,
    pub version: Option<String>,
    pub outbox: Option<i64>,
    pub outbox_oldest_s: Option<f64>,
    pub events: i64,
    pub stations: i64,
    pub stations_online: i64,
}

impl NodeRow {
    fn from_row(r: &sqlx::any::AnyRow) -> Result<NodeRow, StoreError> {
        Ok(NodeRow {
            id: r.try_get(0)?,
            online: r.try_get::<i64, _>(1)? != 0,
            status_ms: r.try_get(2)?,
            last_seen_ms: r.try_get(3)?,
            version: r.try_get(4)?,
            outbox: r.try_get(5)?,
            outbox_oldest_s: r.try_get(6)?,
            events: r.try_get(7)?,
            stations: 0,
            stations_online: 0,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StationRow {
    pub node: String,
    pub station: String,
    pub region: String,
    pub online: bool,
    pub at_ms: i64,
    pub body: serde_json::Value,
}

/// A warning's new state, applied only when newer than what is stored.
#[derive(Debug, Clone)]
pub struct WarningUpdate {
    pub key: String,
    pub exercise: bool,
    pub node: String,
    pub kind: String,
    pub station: Option<String>,
    pub region: String,
    pub incident: Option<String>,
    pub colour: Option<String>,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub at_ms: i64,
    pub event_id: String,
    pub body: String,
}

/// A level change to record.
#[derive(Debug, Clone)]
pub struct NewAssessment {
    pub id: String,
    pub subject: String,
    pub exercise: bool,
    pub incident: Option<String>,
    pub division: String,
    pub at_ms: i64,
    pub level: Option<u8>,
    pub previous: Option<u8>,
    pub change: String,
    pub rule: Option<String>,
    pub reason: String,
    pub inputs: String,
    pub actions: String,
    pub matched: String,
    pub trigger_event: Option<String>,
    pub cap_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewCap {
    pub identifier: String,
    pub sent_ms: i64,
    pub exercise: bool,
    pub source: String,
    pub source_key: String,
    pub msg_type: String,
    pub summary: String,
    pub xml: String,
}

impl Tx {
    /// Inserts events, skipping ids already stored (the primary key decides, so concurrent
    /// hubs cannot both take one). Returns the ids that are new.
    pub async fn insert_events(&mut self, events: &[NewEvent], received_ms: i64) -> Result<Vec<String>, StoreError> {
        let mut new = Vec::new();
        for chunk in events.chunks(CHUNK) {
            // `$n` placeholders written here: sqlx's QueryBuilder writes `?` for `Any`, which
            // PostgreSQL does not take.
            let mut sql = String::from(
                "INSERT INTO events (id, node, kind, at_ms, exercise, region, incident, body, received_ms) VALUES ",
            );
            for row in 0..chunk.len() {
                let b = row * 9;
                if row > 0 {
                    sql.push_str(", ");
                }
                sql.push('(');
                sql.push_str(&(1..=9).map(|c| format!("${}", b + c)).collect::<Vec<_>>().join(", "));
                sql.push(')');
            }
            sql.push_str(" ON CONFLICT (id) DO NOTHING RETURNING id");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for e in chunk {
                q = q
                    .bind(e.id.clone())
                    .bind(e.node.clone())
                    .bind(e.kind.clone())
                    .bind(e.at_ms)
                    .bind(i64::from(e.exercise))
                    .bind(e.region.clone())
                    .bind(e.incident.clone())
                    .bind(e.body.clone())
                    .bind(received_ms);
            }
            let rows = q.fetch_all(&mut *self.tx).await?;
            for r in rows {
                new.push(r.try_get::<String, _>(0)?);
            }
        }
        Ok(new)
    }

    /// Keeps the report if it supersedes the one stored for its (incident, exercise, region).
    /// Returns whether it did.
    pub async fn upsert_report(&mut self, r: &ReportRow) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO report_latest (incident, exercise, region, node, device, report_id, observed_ms, stage, hazard, figures) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (incident, exercise, region) DO UPDATE SET node = excluded.node, device = excluded.device, \
             report_id = excluded.report_id, observed_ms = excluded.observed_ms, stage = excluded.stage, \
             hazard = excluded.hazard, figures = excluded.figures \
             WHERE (excluded.observed_ms, excluded.report_id, excluded.device) > \
                   (report_latest.observed_ms, report_latest.report_id, report_latest.device)",
        )
        .bind(&r.incident)
        .bind(i64::from(r.exercise))
        .bind(&r.region)
        .bind(&r.node)
        .bind(&r.device)
        .bind(&r.report_id)
        .bind(r.observed_ms)
        .bind(&r.stage)
        .bind(&r.hazard)
        .bind(&r.figures)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Opens an incident at its first reports, or widens its time span and counts them.
    #[allow(clippy::too_many_arguments)]
    pub async fn touch_incident(
        &mut self,
        id: &str,
        exercise: bool,
        hazard: &str,
        first_ms: i64,
        last_ms: i64,
        reports: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO incidents (id, exercise, hazard, first_ms, last_ms, reports) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id, exercise) DO UPDATE SET reports = incidents.reports + excluded.reports, \
             first_ms = CASE WHEN excluded.first_ms < incidents.first_ms THEN excluded.first_ms ELSE incidents.first_ms END, \
             last_ms = CASE WHEN excluded.last_ms > incidents.last_ms THEN excluded.last_ms ELSE incidents.last_ms END",
        )
        .bind(id)
        .bind(i64::from(exercise))
        .bind(hazard)
        .bind(first_ms)
        .bind(last_ms)
        .bind(reports)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn report_rows(&mut self, incident: &str, exercise: bool) -> Result<Vec<ReportRow>, StoreError> {
        report_rows(&mut *self.tx, incident, exercise).await
    }

    pub async fn incident_hazard(&mut self, id: &str, exercise: bool) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT hazard FROM incidents WHERE id = $1 AND exercise = $2")
            .bind(id)
            .bind(i64::from(exercise))
            .fetch_optional(&mut *self.tx)
            .await?)
    }

    /// Applies a warning's state if it is newer than the stored one (events may arrive out of
    /// order). Returns whether it changed anything.
    pub async fn upsert_warning(&mut self, w: &WarningUpdate) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO warnings (wkey, exercise, node, kind, station, region, incident, colour, value, threshold, \
             raised_ms, updated_ms, event_id, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13) \
             ON CONFLICT (wkey, exercise) DO UPDATE SET colour = excluded.colour, value = excluded.value, \
             threshold = excluded.threshold, updated_ms = excluded.updated_ms, event_id = excluded.event_id, \
             body = excluded.body, region = excluded.region, incident = excluded.incident, \
             raised_ms = CASE WHEN warnings.colour IS NULL THEN excluded.raised_ms ELSE warnings.raised_ms END \
             WHERE (excluded.updated_ms, excluded.event_id) > (warnings.updated_ms, warnings.event_id)",
        )
        .bind(&w.key)
        .bind(i64::from(w.exercise))
        .bind(&w.node)
        .bind(&w.kind)
        .bind(&w.station)
        .bind(&w.region)
        .bind(&w.incident)
        .bind(&w.colour)
        .bind(w.value)
        .bind(w.threshold)
        .bind(w.at_ms)
        .bind(&w.event_id)
        .bind(&w.body)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn set_warning_cap(&mut self, key: &str, exercise: bool, cap_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE warnings SET cap_id = $1 WHERE wkey = $2 AND exercise = $3")
            .bind(cap_id)
            .bind(key)
            .bind(i64::from(exercise))
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    pub async fn warning(&mut self, key: &str, exercise: bool) -> Result<Option<WarningRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WARNING_COLUMNS} FROM warnings WHERE wkey = $1 AND exercise = $2"
        )))
        .bind(key)
        .bind(i64::from(exercise))
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(WarningRow::from_row).transpose()
    }

    /// Active warnings of one exercise flag whose region starts with `prefix` (a province's
    /// first two digits, say).
    pub async fn active_warnings(&mut self, exercise: bool) -> Result<Vec<WarningRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WARNING_COLUMNS} FROM warnings WHERE colour IS NOT NULL AND exercise = $1 ORDER BY wkey"
        )))
        .bind(i64::from(exercise))
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(WarningRow::from_row).collect()
    }

    /// Open incidents of one exercise flag with the regions they have reports for.
    pub async fn incident_regions(&mut self, exercise: bool) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.incident, i.hazard, r.region FROM report_latest r \
             JOIN incidents i ON i.id = r.incident AND i.exercise = r.exercise \
             WHERE r.exercise = $1 ORDER BY r.incident, r.region",
        )
        .bind(i64::from(exercise))
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }

    /// The level in force for a subject.
    pub async fn level(&mut self, subject: &str, exercise: bool) -> Result<Option<u8>, StoreError> {
        let level: Option<Option<i64>> =
            sqlx::query_scalar("SELECT level FROM levels WHERE subject = $1 AND exercise = $2")
                .bind(subject)
                .bind(i64::from(exercise))
                .fetch_optional(&mut *self.tx)
                .await?;
        Ok(level.flatten().and_then(|l| u8::try_from(l).ok()))
    }

    /// Records a level change and puts it in force.
    pub async fn insert_assessment(&mut self, a: &NewAssessment) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO assessments (id, subject, exercise, incident, division, at_ms, level, previous, change, rule, \
             reason, inputs, actions, matched, trigger_event, cap_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(&a.id)
        .bind(&a.subject)
        .bind(i64::from(a.exercise))
        .bind(&a.incident)
        .bind(&a.division)
        .bind(a.at_ms)
        .bind(a.level.map(i64::from))
        .bind(a.previous.map(i64::from))
        .bind(&a.change)
        .bind(&a.rule)
        .bind(&a.reason)
        .bind(&a.inputs)
        .bind(&a.actions)
        .bind(&a.matched)
        .bind(&a.trigger_event)
        .bind(&a.cap_id)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query(
            "INSERT INTO levels (subject, exercise, level, assessment, updated_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (subject, exercise) DO UPDATE SET level = excluded.level, assessment = excluded.assessment, \
             updated_ms = excluded.updated_ms",
        )
        .bind(&a.subject)
        .bind(i64::from(a.exercise))
        .bind(a.level.map(i64::from))
        .bind(&a.id)
        .bind(a.at_ms)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// The latest CAP alert published for a source (a warning or a subject's level).
    pub async fn last_cap(&mut self, source_key: &str) -> Result<Option<(String, i64, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT identifier, sent_ms, msg_type FROM cap_alerts WHERE source_key = $1 \
             ORDER BY sent_ms DESC, identifier DESC LIMIT 1",
        )
        .bind(source_key)
        .fetch_optional(&mut *self.tx)
        .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).transpose()
    }

    /// How many CAP identifiers start with `prefix` (the sequence digit of GB/T 35965.1).
    pub async fn cap_count_with_prefix(&mut self, prefix: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM cap_alerts WHERE identifier LIKE $1")
            .bind(format!("{prefix}%"))
            .fetch_one(&mut *self.tx)
            .await?)
    }

    pub async fn insert_cap(&mut self, c: &NewCap) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO cap_alerts (identifier, sent_ms, exercise, source, source_key, msg_type, summary, xml) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&c.identifier)
        .bind(c.sent_ms)
        .bind(i64::from(c.exercise))
        .bind(&c.source)
        .bind(&c.source_key)
        .bind(&c.msg_type)
        .bind(&c.summary)
        .bind(&c.xml)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Counts events from a node and moves its last-seen time forward.
    pub async fn node_seen(&mut self, node: &str, events: i64, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO nodes (id, online, status_ms, last_seen_ms, events) VALUES ($1, 1, 0, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET events = nodes.events + excluded.events, \
             last_seen_ms = CASE WHEN excluded.last_seen_ms > nodes.last_seen_ms THEN excluded.last_seen_ms \
             ELSE nodes.last_seen_ms END",
        )
        .bind(node)
        .bind(now_ms)
        .bind(events)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Applies a node's status if newer than the stored one.
    #[allow(clippy::too_many_arguments)]
    pub async fn node_status(
        &mut self,
        node: &str,
        online: bool,
        at_ms: i64,
        version: Option<&str>,
        outbox: Option<i64>,
        outbox_oldest_s: Option<f64>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO nodes (id, online, status_ms, last_seen_ms, version, outbox, outbox_oldest_s, events) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0) \
             ON CONFLICT (id) DO UPDATE SET online = excluded.online, status_ms = excluded.status_ms, \
             version = excluded.version, outbox = excluded.outbox, outbox_oldest_s = excluded.outbox_oldest_s, \
             last_seen_ms = CASE WHEN excluded.last_seen_ms > nodes.last_seen_ms THEN excluded.last_seen_ms \
             ELSE nodes.last_seen_ms END \
             WHERE excluded.status_ms >= nodes.status_ms",
        )
        .bind(node)
        .bind(i64::from(online))
        .bind(at_ms)
        .bind(now_ms)
        .bind(version)
        .bind(outbox)
        .bind(outbox_oldest_s)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Applies a station's online state if newer than the stored one.
    pub async fn station(
        &mut self,
        node: &str,
        station: &str,
        region: &str,
        online: bool,
        at_ms: i64,
        body: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO stations (node, station, region, online, at_ms, body) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (node, station) DO UPDATE SET online = excluded.online, at_ms = excluded.at_ms, \
             region = excluded.region, body = excluded.body WHERE excluded.at_ms >= stations.at_ms",
        )
        .bind(node)
        .bind(station)
        .bind(region)
        .bind(i64::from(online))
        .bind(at_ms)
        .bind(body)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}
