//! The node's storage: one API, with SQLite and PostgreSQL behind it.
//!
//! Writes come as a [`Batch`] stored in one transaction; everything is keyed by its natural
//! identity and inserted with `ON CONFLICT DO NOTHING`, so storing a batch twice changes nothing.
//! The SQL is written once (the `store_impl!` macro) and expanded for each database; where the
//! dialects differ (the `greatest` function) the backend passes its own spelling.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, QueryBuilder, Row, Sqlite, SqlitePool};

pub mod blocks;

/// What can go wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL {0:?} is neither sqlite:// nor postgres://")]
    UnsupportedUrl(String),
    #[error("cannot open the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot apply the database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    #[error("bad cursor: {0}")]
    BadCursor(String),
    #[error("{0}; the database was changed by something other than this node, restore it from a backup")]
    Damaged(String),
}

/// A validated field report, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReport {
    pub device: String,
    pub id: String,
    pub incident: String,
    pub stage: String,
    pub hazard: String,
    /// RFC 3339 with the reporter's own offset.
    pub observed_at: String,
    pub observed_at_ms: i64,
    pub lat: f64,
    pub lon: f64,
    pub region: String,
    /// `given` (in the report), `located` (point in polygon) or `unknown` (outside every division).
    pub region_source: &'static str,
    /// The figures as JSON.
    pub figures: String,
    pub text: Option<String>,
    pub exercise: bool,
    pub received_at_ms: i64,
}

/// A resolved SenML reading, ready to store.
///
/// A batch holds hundreds of thousands of these, made on one thread and dropped on another:
/// the device is shared by the readings of a message, and the names and units of contract v1
/// are static strings, so that a reading costs no allocation of its own (see
/// [`NewReading::name_of`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewReading {
    pub device: std::sync::Arc<str>,
    pub name: Cow<'static, str>,
    pub time_us: i64,
    pub unit: Option<Cow<'static, str>>,
    pub value_num: Option<f64>,
    pub value_str: Option<String>,
    pub value_bool: Option<bool>,
    pub value_data: Option<Vec<u8>>,
    pub sum: Option<f64>,
    pub registered: bool,
    pub received_at_ms: i64,
}

impl NewReading {
    /// A measurement name, static when contract v1 names it (`rain`, `water_level`, …).
    pub fn name_of(name: String) -> Cow<'static, str> {
        match yingji_proto::senml::RECOGNISED.iter().find(|(n, _)| *n == name) {
            Some((n, _)) => Cow::Borrowed(n),
            None => Cow::Owned(name),
        }
    }

    /// A unit, static when it is the unit of a name contract v1 names (`mm`, `m`, …).
    pub fn unit_of(unit: String) -> Cow<'static, str> {
        match yingji_proto::senml::RECOGNISED.iter().find(|(_, u)| *u == unit) {
            Some((_, u)) => Cow::Borrowed(u),
            None => Cow::Owned(unit),
        }
    }
}

/// An image attached to a report.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMedia {
    pub device: String,
    pub report_id: String,
    pub sha256: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub received_at_ms: i64,
}

/// A device status message.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStatus {
    pub device: String,
    pub online: bool,
    pub battery: Option<f64>,
    pub at_ms: i64,
}

/// A device heard from in a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub device: String,
    pub registered: bool,
    pub at_ms: i64,
}

/// Everything one transaction stores.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub reports: Vec<NewReport>,
    pub readings: Vec<NewReading>,
    pub media: Vec<NewMedia>,
    pub statuses: Vec<NewStatus>,
    pub seen: Vec<Seen>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.reports.is_empty()
            && self.readings.is_empty()
            && self.media.is_empty()
            && self.statuses.is_empty()
            && self.seen.is_empty()
    }

    pub fn clear(&mut self) {
        self.reports.clear();
        self.readings.clear();
        self.media.clear();
        self.statuses.clear();
        self.seen.clear();
    }
}

/// How many rows a batch added (duplicates add none).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub reports: u64,
    pub readings: u64,
    pub media: u64,
}

/// A stored report as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReport {
    pub device: String,
    pub id: String,
    pub incident: String,
    pub stage: String,
    pub hazard: String,
    pub observed_at: String,
    pub lat: f64,
    pub lon: f64,
    pub region: String,
    pub region_source: String,
    pub figures: serde_json::Value,
    pub text: Option<String>,
    pub exercise: bool,
    pub received_at_ms: i64,
    /// Ids of images attached to the report (their sha256).
    pub media: Vec<String>,
}

/// A stored reading as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReading {
    pub device: String,
    pub name: String,
    /// Microseconds since the Unix epoch.
    pub time_us: i64,
    pub unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_str: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_bool: Option<bool>,
    /// base64url, as SenML's `vd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    pub registered: bool,
}

/// A device as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDevice {
    pub device: String,
    pub registered: bool,
    pub last_seen_ms: i64,
    /// From the device's last status message; `null` when it has sent none.
    pub online: Option<bool>,
    pub battery: Option<f64>,
    pub status_at_ms: Option<i64>,
}

/// An image.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMedia {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Filters of `GET /api/v1/reports`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReportQuery {
    pub incident: Option<String>,
    pub region: Option<String>,
    /// Only reports received at or after this time (ms since the epoch).
    #[serde(skip)]
    pub since_ms: Option<i64>,
    #[serde(skip)]
    pub after_seq: Option<i64>,
    #[serde(skip)]
    pub limit: i64,
}

/// Filters of `GET /api/v1/readings`.
#[derive(Debug, Clone, Default)]
pub struct ReadingQuery {
    pub device: Option<String>,
    pub name: Option<String>,
    /// Only readings at or after this time (µs since the epoch).
    pub since_us: Option<i64>,
    /// Resume after this key (device, name, time_us).
    pub after: Option<(String, String, i64)>,
    pub limit: i64,
}

/// Filters of `GET /api/v1/devices`.
#[derive(Debug, Clone, Default)]
pub struct DeviceQuery {
    pub after: Option<String>,
    pub limit: i64,
}

/// One page of a list and the cursor of the next, if there is more.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Row counts, for health and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub reports: i64,
    pub readings: i64,
    pub media: i64,
    pub devices: i64,
}

/// A reading of a block as the API shows it.
fn stored_reading(device: &str, name: &str, registered: bool, p: blocks::Packed) -> StoredReading {
    let mut r = StoredReading {
        device: device.to_owned(),
        name: name.to_owned(),
        time_us: p.time_us,
        unit: p.unit,
        value: None,
        value_str: None,
        value_bool: None,
        value_data: None,
        sum: p.sum,
        registered,
    };
    match p.value {
        blocks::PackedValue::None => {}
        blocks::PackedValue::Number(x) => r.value = Some(x),
        blocks::PackedValue::String(s) => r.value_str = Some(s),
        blocks::PackedValue::Bool(b) => r.value_bool = Some(b),
        blocks::PackedValue::Data(d) => r.value_data = Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d)),
    }
    r
}

/// Encodes a cursor as opaque base64url JSON.
pub fn encode_cursor<T: Serialize>(key: &T) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

/// Decodes a cursor made by [`encode_cursor`].
pub fn decode_cursor<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, StoreError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| StoreError::BadCursor("not base64url".into()))?;
    serde_json::from_slice(&bytes).map_err(|_| StoreError::BadCursor("not a cursor of this list".into()))
}

/// Blocks read per query when a list walks a series.
const BLOCK_PAGE: i64 = 256;

/// Series read per query when a list walks the series.
const SERIES_PAGE: i64 = 1000;

/// Rows per multi-row INSERT: large enough to amortise the statement, small enough to stay
/// under both databases' bind limits.
const CHUNK: usize = 500;

/// The storage of one node.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite { writer: SqlitePool, reader: SqlitePool },
    Postgres(PgPool),
}

impl Store {
    /// Opens (creating a SQLite file if missing) and migrates the database at `url`.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(StoreError::Connect)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .pragma("cache_size", "-65536")
                // Multi-row inserts keep a statement journal (to undo a half-done statement);
                // in memory it costs no file writes.
                .pragma("temp_store", "memory")
                // Checkpoint the WAL in larger steps: fewer, longer writes back to the database.
                .pragma("wal_autocheckpoint", "4000");
            // One writer connection: SQLite has one writer anyway, and a single connection
            // never meets "database is locked" between its own transactions.
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await
                .map_err(StoreError::Connect)?;
            sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
            let moved = sqlite::upgrade_legacy(
                &writer,
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'legacy_readings'",
            )
            .await?;
            if moved > 0 {
                tracing::info!(readings = moved, "readings of the one-row-per-reading table packed into blocks");
            }
            let reader = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options.read_only(true))
                .await
                .map_err(StoreError::Connect)?;
            Ok(Store::Sqlite { writer, reader })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url).map_err(StoreError::Connect)?;
            let pool =
                PgPoolOptions::new().max_connections(8).connect_with(options).await.map_err(StoreError::Connect)?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            let moved = postgres::upgrade_legacy(
                &pool,
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = 'legacy_readings'",
            )
            .await?;
            if moved > 0 {
                tracing::info!(readings = moved, "readings of the one-row-per-reading table packed into blocks");
            }
            Ok(Store::Postgres(pool))
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    /// The database kind, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Sqlite { .. } => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            // BEGIN IMMEDIATE takes the write lock up front, so the transaction never fails
            // half-way with "database is locked".
            Store::Sqlite { writer, .. } => Tx::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?),
            Store::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Stores a batch in one transaction (no events). Returns only after the commit.
    pub async fn write(&self, batch: &Batch) -> Result<Written, StoreError> {
        let mut tx = self.begin().await?;
        let inserted = tx.insert(batch).await?;
        tx.commit().await?;
        Ok(inserted.written)
    }

    /// Up to `limit` outbox events due for sending at `now_ms`: never sent, or sent and not
    /// receipted for longer than the backoff of their attempt count (`resend_ms` doubled per
    /// attempt, at most 32 times `resend_ms`).
    pub async fn outbox_due(&self, now_ms: i64, resend_ms: i64, limit: i64) -> Result<Vec<Pending>, StoreError> {
        match self {
            Store::Sqlite { writer, .. } => sqlite::outbox_due(writer, now_ms, resend_ms, limit).await,
            Store::Postgres(pool) => postgres::outbox_due(pool, now_ms, resend_ms, limit).await,
        }
    }

    /// Records that these events went out at `now_ms`.
    pub async fn outbox_sent(&self, seqs: &[i64], now_ms: i64) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        match self {
            Store::Sqlite { writer, .. } => sqlite::outbox_sent(writer, seqs, now_ms).await,
            Store::Postgres(pool) => postgres::outbox_sent(pool, seqs, now_ms).await,
        }
    }

    /// Forgets the events the hub has committed. Returns how many were still waiting.
    pub async fn outbox_receipted(&self, ids: &[String]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        match self {
            Store::Sqlite { writer, .. } => sqlite::outbox_receipted(writer, ids).await,
            Store::Postgres(pool) => postgres::outbox_receipted(pool, ids).await,
        }
    }

    /// Downsamples numeric readings older than the raw horizon into per-minute and per-hour
    /// aggregates, deletes them, and deletes aggregates past their own horizons. One transaction.
    pub async fn retain(&self, policy: &Retention) -> Result<Retained, StoreError> {
        match self {
            Store::Sqlite { writer, .. } => sqlite::retain(writer, policy).await,
            Store::Postgres(pool) => {
                let done = postgres::retain(pool, policy).await?;
                if done.raw_deleted + done.minute_deleted + done.hour_deleted > 0 {
                    // Make the deleted rows' space reusable now rather than at autovacuum's
                    // leisure, so that the tables stop growing under a steady load.
                    sqlx::query("VACUUM reading_blocks, series, readings_minute, readings_hour").execute(pool).await?;
                }
                Ok(done)
            }
        }
    }

    /// Per-minute or per-hour aggregates of one series.
    pub async fn aggregates(&self, query: &AggregateQuery) -> Result<Vec<Aggregate>, StoreError> {
        match self {
            Store::Sqlite { reader, .. } => sqlite::aggregates(reader, query).await,
            Store::Postgres(pool) => postgres::aggregates(pool, query).await,
        }
    }

    /// The database's size in bytes (SQLite: pages in use after a WAL checkpoint; PostgreSQL:
    /// the size of the node's tables).
    pub async fn size_bytes(&self) -> Result<i64, StoreError> {
        match self {
            Store::Sqlite { writer, .. } => {
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(writer).await?;
                let pages: i64 = sqlx::query_scalar("PRAGMA page_count").fetch_one(writer).await?;
                let size: i64 = sqlx::query_scalar("PRAGMA page_size").fetch_one(writer).await?;
                Ok(pages * size)
            }
            Store::Postgres(pool) => Ok(sqlx::query_scalar(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::BIGINT FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'r' AND n.nspname = current_schema()",
            )
            .fetch_one(pool)
            .await?),
        }
    }

    /// Every report of an incident observed at or before `at_ms` (for statistics as they stood
    /// at a past time).
    pub async fn facts(&self, incident: &str, exercise: bool, at_ms: i64) -> Result<Vec<LatestRow>, StoreError> {
        match self {
            Store::Sqlite { reader, .. } => sqlite::facts(reader, incident, exercise, at_ms).await,
            Store::Postgres(pool) => postgres::facts(pool, incident, exercise, at_ms).await,
        }
    }

    /// When each region of an incident filed which stage (for reporting discipline).
    pub async fn filings(&self, incident: &str, exercise: bool) -> Result<Vec<Filing>, StoreError> {
        match self {
            Store::Sqlite { reader, .. } => sqlite::filings(reader, incident, exercise).await,
            Store::Postgres(pool) => postgres::filings(pool, incident, exercise).await,
        }
    }

    /// Rain and water-level readings since `since_us`, and every device's last word (as a
    /// `seen` reading), to rebuild station states after a restart.
    pub async fn recent_readings(&self, since_us: i64) -> Result<Vec<(String, String, i64, f64)>, StoreError> {
        match self {
            Store::Sqlite { reader, .. } => sqlite::recent_readings(reader, since_us).await,
            Store::Postgres(pool) => postgres::recent_readings(pool, since_us).await,
        }
    }

    /// Every incident with its hazard, stage, first and last report and regions affected.
    pub async fn incidents(&self) -> Result<Vec<IncidentSummary>, StoreError> {
        match self {
            Store::Sqlite { reader, .. } => sqlite::incidents(reader).await,
            Store::Postgres(pool) => postgres::incidents(pool).await,
        }
    }

    /// Makes every waiting event due at once (after the hub link comes back).
    pub async fn outbox_reset(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite { writer, .. } => sqlite::outbox_reset(writer).await,
            Store::Postgres(pool) => postgres::outbox_reset(pool).await,
        }
    }

    /// How many events wait, and when the oldest was made.
    pub async fn outbox_depth(&self) -> Result<(i64, Option<i64>), StoreError> {
        match self {
            Store::Sqlite { reader, .. } => sqlite::outbox_depth(reader).await,
            Store::Postgres(pool) => postgres::outbox_depth(pool).await,
        }
    }

    /// Drops the oldest droppable events (device status, then media references) until at most
    /// `max` wait. Reports, warnings and statistics are never dropped (statistics coalesce).
    pub async fn outbox_trim(&self, max: i64) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite { writer, .. } => sqlite::outbox_trim(writer, max).await,
            Store::Postgres(pool) => postgres::outbox_trim(pool, max).await,
        }
    }

    /// The latest report of every region of an incident (the input of its statistics).
    pub async fn latest(&self, incident: &str, exercise: bool) -> Result<Vec<LatestRow>, StoreError> {
        match self {
            Store::Sqlite { reader, .. } => sqlite::latest(reader, incident, exercise).await,
            Store::Postgres(pool) => postgres::latest(pool, incident, exercise).await,
        }
    }

    pub async fn reports(&self, query: &ReportQuery) -> Result<Page<StoredReport>, StoreError> {
        match self {
            Store::Sqlite { reader, .. } => sqlite::reports(reader, query).await,
            Store::Postgres(pool) => postgres::reports(pool, query).await,
        }
    }

    pub async fn readings(&self, query: &ReadingQuery) -> Result<Page<StoredReading>, StoreError> {
        match self {
            Store::Sqlite { reader, .. } => sqlite::readings(reader, query).await,
            Store::Postgres(pool) => postgres::readings(pool, query).await,
        }
    }

    pub async fn devices(&self, query: &DeviceQuery) -> Result<Page<StoredDevice>, StoreError> {
        match self {
            Store::Sqlite { reader, .. } => sqlite::devices(reader, query).await,
            Store::Postgres(pool) => postgres::devices(pool, query).await,
        }
    }

    pub async fn media(&self, device: &str, report_id: &str, sha256: &str) -> Result<Option<StoredMedia>, StoreError> {
        match self {
            Store::Sqlite { reader, .. } => sqlite::media(reader, device, report_id, sha256).await,
            Store::Postgres(pool) => postgres::media(pool, device, report_id, sha256).await,
        }
    }

    pub async fn counts(&self) -> Result<Counts, StoreError> {
        match self {
            Store::Sqlite { reader, .. } => sqlite::counts(reader).await,
            Store::Postgres(pool) => postgres::counts(pool).await,
        }
    }

    /// A cheap query that proves the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite { reader, .. } => sqlx::query("SELECT 1").execute(reader).await.map(drop)?,
            Store::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop)?,
        }
        Ok(())
    }

    /// Closes the pools, waiting for running queries.
    pub async fn close(&self) {
        match self {
            Store::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
            Store::Postgres(pool) => pool.close().await,
        }
    }
}

/// A write transaction: insert a batch, read and update what statistics need, queue events,
/// then commit. Dropped without `commit`, it rolls back.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    /// Inserts a batch; reports which reports and images were new. Each new report competes to
    /// be the latest of its (incident, exercise, region): later `observed_at`, then greater id,
    /// then greater device.
    pub async fn insert(&mut self, batch: &Batch) -> Result<Inserted, StoreError> {
        match self {
            Tx::Sqlite(tx) => sqlite::write(tx, batch).await,
            Tx::Postgres(tx) => postgres::write(tx, batch).await,
        }
    }

    /// The latest report of every region of an incident, as this transaction sees it.
    pub async fn latest(&mut self, incident: &str, exercise: bool) -> Result<Vec<LatestRow>, StoreError> {
        match self {
            Tx::Sqlite(tx) => sqlite::latest(&mut **tx, incident, exercise).await,
            Tx::Postgres(tx) => postgres::latest(&mut **tx, incident, exercise).await,
        }
    }

    /// Queues events for the hub. An event with a coalesce key replaces the waiting events with
    /// the same key; an id already queued is ignored.
    pub async fn enqueue(&mut self, events: &[OutboxEvent]) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(tx) => sqlite::enqueue(tx, events).await,
            Tx::Postgres(tx) => postgres::enqueue(tx, events).await,
        }
    }

    /// The region and exercise flag of a stored report, if it is stored.
    pub async fn report_meta(&mut self, device: &str, id: &str) -> Result<Option<(String, bool)>, StoreError> {
        match self {
            Tx::Sqlite(tx) => sqlite::report_meta(tx, device, id).await,
            Tx::Postgres(tx) => postgres::report_meta(tx, device, id).await,
        }
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// What a batch added.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Inserted {
    pub written: Written,
    /// Indices into `batch.reports` of the reports stored for the first time.
    pub new_reports: Vec<usize>,
    /// Indices into `batch.media` of the images stored for the first time.
    pub new_media: Vec<usize>,
}

/// The latest report of one (incident, exercise, region).
#[derive(Debug, Clone, PartialEq)]
pub struct LatestRow {
    pub incident: String,
    pub exercise: bool,
    pub region: String,
    pub observed_at_ms: i64,
    pub id: String,
    pub device: String,
    /// The figures as JSON.
    pub figures: String,
}

/// An event to queue for the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    pub id: String,
    pub kind: &'static str,
    pub coalesce_key: Option<String>,
    /// The event as JSON (contract v1 §3.5).
    pub payload: String,
    pub created_ms: i64,
}

/// One report's filing, for reporting discipline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filing {
    pub region: String,
    pub stage: String,
    pub received_at_ms: i64,
    pub observed_at_ms: i64,
}

/// An incident as the node knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentSummary {
    pub incident: String,
    pub exercise: bool,
    /// The hazard of its latest report.
    pub hazard: String,
    /// The stage of its latest report.
    pub stage: String,
    pub first_observed_ms: i64,
    pub last_observed_ms: i64,
    pub reports: i64,
    /// Divisions that filed reports.
    pub regions: i64,
}

/// What retention keeps: everything before these times goes (µs since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw_before_us: i64,
    pub minute_before_us: i64,
    pub hour_before_us: i64,
}

/// What one retention pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retained {
    pub raw_deleted: u64,
    pub minute_buckets: u64,
    pub minute_deleted: u64,
    pub hour_deleted: u64,
}

/// A query of downsampled readings.
#[derive(Debug, Clone)]
pub struct AggregateQuery {
    pub device: String,
    pub name: String,
    pub hourly: bool,
    pub since_us: i64,
    pub limit: i64,
}

/// One bucket of downsampled readings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Aggregate {
    /// The bucket's start, µs since the epoch.
    pub bucket_us: i64,
    pub n: i64,
    pub sum: f64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub last_time_us: i64,
}

/// An event due for sending.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub seq: i64,
    pub id: String,
    /// The event kind (`report`, `warning`, …), or `ack` for a relayed team acknowledgement.
    pub kind: String,
    pub payload: String,
    pub attempts: i64,
    pub created_ms: i64,
}

/// The SQL of the store, written once and expanded per database.
macro_rules! store_impl {
    ($db:ty, $pool:ty, $greatest:literal, $least:literal) => {
        use super::*;

        pub(super) async fn write(tx: &mut sqlx::Transaction<'_, $db>, batch: &Batch) -> Result<Inserted, StoreError> {
            let mut written = Written::default();
            let mut new_report_keys = std::collections::HashSet::new();
            let mut new_media_keys = std::collections::HashSet::new();
            for chunk in batch.reports.chunks(CHUNK) {
                let mut q = QueryBuilder::<$db>::new(
                    "INSERT INTO reports (device, id, incident, stage, hazard, observed_at, observed_at_ms, lat, lon, \
                     region, region_source, figures, text, exercise, received_at_ms) ",
                );
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(&r.device)
                        .push_bind(&r.id)
                        .push_bind(&r.incident)
                        .push_bind(&r.stage)
                        .push_bind(&r.hazard)
                        .push_bind(&r.observed_at)
                        .push_bind(r.observed_at_ms)
                        .push_bind(r.lat)
                        .push_bind(r.lon)
                        .push_bind(&r.region)
                        .push_bind(r.region_source)
                        .push_bind(&r.figures)
                        .push_bind(&r.text)
                        .push_bind(r.exercise)
                        .push_bind(r.received_at_ms);
                });
                q.push(" ON CONFLICT (device, id) DO NOTHING RETURNING device, id");
                for row in q.build().fetch_all(&mut **tx).await? {
                    new_report_keys.insert((row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?));
                }
            }
            written.readings = write_readings(tx, &batch.readings).await?;
            for m in &batch.media {
                let done = sqlx::query(
                    "INSERT INTO media (device, report_id, sha256, content_type, size, bytes, received_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (device, report_id, sha256) DO NOTHING \
                     RETURNING sha256",
                )
                .bind(&m.device)
                .bind(&m.report_id)
                .bind(&m.sha256)
                .bind(&m.content_type)
                .bind(m.bytes.len() as i64)
                .bind(&m.bytes)
                .bind(m.received_at_ms)
                .fetch_optional(&mut **tx)
                .await?;
                if done.is_some() {
                    new_media_keys.insert((m.device.clone(), m.report_id.clone(), m.sha256.clone()));
                }
            }
            for chunk in batch.seen.chunks(CHUNK) {
                let mut q = QueryBuilder::<$db>::new("INSERT INTO devices (device, registered, last_seen_ms) ");
                q.push_values(chunk, |mut b, s| {
                    b.push_bind(&s.device).push_bind(s.registered).push_bind(s.at_ms);
                });
                q.push(concat!(
                    " ON CONFLICT (device) DO UPDATE SET registered = excluded.registered, last_seen_ms = ",
                    $greatest,
                    "(devices.last_seen_ms, excluded.last_seen_ms)"
                ));
                q.build().execute(&mut **tx).await?;
            }
            // A status applies only if it is newer than the one stored: reordering changes nothing.
            for s in &batch.statuses {
                sqlx::query(
                    "UPDATE devices SET online = $1, battery = $2, status_at_ms = $3 \
                     WHERE device = $4 AND (status_at_ms IS NULL OR status_at_ms <= $3)",
                )
                .bind(s.online)
                .bind(s.battery)
                .bind(s.at_ms)
                .bind(&s.device)
                .execute(&mut **tx)
                .await?;
            }
            // A key inserted once counts once, even if the batch held it twice.
            let mut new_reports = Vec::new();
            for (i, r) in batch.reports.iter().enumerate() {
                if new_report_keys.remove(&(r.device.clone(), r.id.clone())) {
                    new_reports.push(i);
                }
            }
            let mut new_media = Vec::new();
            for (i, m) in batch.media.iter().enumerate() {
                if new_media_keys.remove(&(m.device.clone(), m.report_id.clone(), m.sha256.clone())) {
                    new_media.push(i);
                }
            }
            written.reports = new_reports.len() as u64;
            written.media = new_media.len() as u64;
            // Each new report competes to be the latest of its (incident, exercise, region).
            let latest: Vec<LatestRow> = new_reports
                .iter()
                .map(|&i| {
                    let r = &batch.reports[i];
                    LatestRow {
                        incident: r.incident.clone(),
                        exercise: r.exercise,
                        region: r.region.clone(),
                        observed_at_ms: r.observed_at_ms,
                        id: r.id.clone(),
                        device: r.device.clone(),
                        figures: r.figures.clone(),
                    }
                })
                .collect();
            upsert_latest(tx, &latest).await?;
            Ok(Inserted { written, new_reports, new_media })
        }

        /// Stores readings as blocks, one per series: each reading whose time its series does not
        /// hold yet, once (the first of a time in the batch wins). Returns how many were new.
        pub(super) async fn write_readings(
            tx: &mut sqlx::Transaction<'_, $db>,
            readings: &[NewReading],
        ) -> Result<u64, StoreError> {
            if readings.is_empty() {
                return Ok(0);
            }
            let mut groups = blocks::group(readings);
            // What each series holds: its latest time (readings after it are new without a look
            // at the blocks, the usual case: stations report forward in time) and its widest
            // block (which bounds where a block holding a given time can start).
            let mut known: std::collections::HashMap<(String, String), (Option<i64>, i64)> =
                std::collections::HashMap::new();
            for chunk in groups.chunks(CHUNK) {
                let mut q = QueryBuilder::<$db>::new(
                    "SELECT device, name, last_us, span_us FROM series WHERE (device, name) IN (VALUES ",
                );
                let mut list = q.separated(", ");
                for g in chunk {
                    let (device, name) = g.key();
                    list.push("(").push_bind_unseparated(device).push_unseparated(", ").push_bind_unseparated(name).push_unseparated(")");
                }
                q.push(")");
                for row in q.build().fetch_all(&mut **tx).await? {
                    known.insert((row.try_get(0)?, row.try_get(1)?), (row.try_get(2)?, row.try_get(3)?));
                }
            }
            for group in &mut groups {
                let (device, name) = group.key();
                let Some(&(stored_last, span)) = known.get(&(device.to_owned(), name.to_owned())) else { continue };
                let (first, latest) = group.span();
                if stored_last.is_some_and(|l| first > l) {
                    continue;
                }
                // Some reading may be stored already: drop the times the series' blocks hold.
                // A block that holds a time in [first, latest] starts at most `span` before it.
                let rows = sqlx::query(
                    "SELECT first_us, data FROM reading_blocks \
                     WHERE device = $1 AND name = $2 AND first_us >= $3 AND first_us <= $4 AND last_us >= $5",
                )
                .bind(device)
                .bind(name)
                .bind(first.saturating_sub(span))
                .bind(latest)
                .bind(first)
                .fetch_all(&mut **tx)
                .await?;
                let mut held = std::collections::HashSet::new();
                for row in rows {
                    let data: Vec<u8> = row.try_get(1)?;
                    held.extend(blocks::times(row.try_get(0)?, &data).map_err(|e| StoreError::Damaged(e.to_string()))?);
                }
                group.readings.retain(|r| !held.contains(&r.time_us));
            }
            groups.retain(|g| !g.readings.is_empty());
            for chunk in groups.chunks(CHUNK) {
                let mut q = QueryBuilder::<$db>::new(
                    "INSERT INTO reading_blocks (device, name, first_us, last_us, n, registered, received_at_ms, data) ",
                );
                q.push_values(chunk, |mut b, g| {
                    let (device, name) = g.key();
                    let (first, latest) = g.span();
                    b.push_bind(device)
                        .push_bind(name)
                        .push_bind(first)
                        .push_bind(latest)
                        .push_bind(g.readings.len() as i32)
                        .push_bind(g.registered)
                        .push_bind(g.received_at_ms)
                        .push_bind(blocks::encode(&g.readings));
                });
                q.build().execute(&mut **tx).await?;
                // The series' latest time and widest block (a small table: few pages per batch).
                let mut q = QueryBuilder::<$db>::new("INSERT INTO series (device, name, last_us, span_us) ");
                q.push_values(chunk, |mut b, g| {
                    let (device, name) = g.key();
                    let (first, latest) = g.span();
                    b.push_bind(device).push_bind(name).push_bind(latest).push_bind(latest.saturating_sub(first));
                });
                q.push(concat!(
                    " ON CONFLICT (device, name) DO UPDATE SET last_us = ",
                    $greatest,
                    "(COALESCE(series.last_us, excluded.last_us), excluded.last_us), span_us = ",
                    $greatest,
                    "(series.span_us, excluded.span_us)"
                ));
                q.build().execute(&mut **tx).await?;
            }
            Ok(groups.iter().map(|g| g.readings.len() as u64).sum())
        }

        /// Packs the rows of the one-row-per-reading table that migration 0005 renamed into
        /// blocks, and drops it. One transaction: stopped half-way, the next start does it again.
        pub(super) async fn upgrade_legacy(pool: &$pool, exists: &str) -> Result<u64, StoreError> {
            let present: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(exists.to_owned())).fetch_one(pool).await?;
            if present == 0 {
                return Ok(0);
            }
            let mut tx = pool.begin().await?;
            let mut moved = 0;
            let mut after: Option<(String, String, i64)> = None;
            loop {
                let mut q = QueryBuilder::<$db>::new(
                    "SELECT device, name, time_us, unit, value_num, value_str, value_bool, value_data, sum, registered, \
                     received_at_ms FROM legacy_readings",
                );
                if let Some((device, name, time_us)) = &after {
                    q.push(" WHERE (device, name, time_us) > (")
                        .push_bind(device.clone())
                        .push(", ")
                        .push_bind(name.clone())
                        .push(", ")
                        .push_bind(*time_us)
                        .push(")");
                }
                q.push(" ORDER BY device, name, time_us LIMIT 10000");
                let rows = q.build().fetch_all(&mut *tx).await?;
                if rows.is_empty() {
                    break;
                }
                let mut readings = Vec::with_capacity(rows.len());
                for row in &rows {
                    readings.push(NewReading {
                        device: row.try_get::<String, _>("device")?.into(),
                        name: NewReading::name_of(row.try_get("name")?),
                        time_us: row.try_get("time_us")?,
                        unit: row.try_get::<Option<String>, _>("unit")?.map(NewReading::unit_of),
                        value_num: row.try_get("value_num")?,
                        value_str: row.try_get("value_str")?,
                        value_bool: row.try_get("value_bool")?,
                        value_data: row.try_get("value_data")?,
                        sum: row.try_get("sum")?,
                        registered: row.try_get("registered")?,
                        received_at_ms: row.try_get("received_at_ms")?,
                    });
                }
                moved += write_readings(&mut tx, &readings).await?;
                after = readings.last().map(|r| (r.device.to_string(), r.name.to_string(), r.time_us));
            }
            sqlx::query("DROP TABLE legacy_readings").execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(moved)
        }

        pub(super) async fn upsert_latest(tx: &mut sqlx::Transaction<'_, $db>, rows: &[LatestRow]) -> Result<(), StoreError> {
            // One row per key per statement (PostgreSQL refuses to update a row twice in one
            // statement): keep the superseding one of each key first.
            let mut best: std::collections::BTreeMap<(&str, bool, &str), &LatestRow> = std::collections::BTreeMap::new();
            for row in rows {
                let key = (row.incident.as_str(), row.exercise, row.region.as_str());
                let wins = best.get(&key).is_none_or(|b| {
                    (row.observed_at_ms, &row.id, &row.device) > (b.observed_at_ms, &b.id, &b.device)
                });
                if wins {
                    best.insert(key, row);
                }
            }
            let rows: Vec<&LatestRow> = best.into_values().collect();
            for chunk in rows.chunks(CHUNK) {
                let mut q = QueryBuilder::<$db>::new(
                    "INSERT INTO report_latest (incident, exercise, region, observed_at_ms, id, device, figures) ",
                );
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(&r.incident)
                        .push_bind(r.exercise)
                        .push_bind(&r.region)
                        .push_bind(r.observed_at_ms)
                        .push_bind(&r.id)
                        .push_bind(&r.device)
                        .push_bind(&r.figures);
                });
                q.push(
                    " ON CONFLICT (incident, exercise, region) DO UPDATE SET observed_at_ms = excluded.observed_at_ms, \
                     id = excluded.id, device = excluded.device, figures = excluded.figures \
                     WHERE (excluded.observed_at_ms, excluded.id, excluded.device) > \
                     (report_latest.observed_at_ms, report_latest.id, report_latest.device)",
                );
                q.build().execute(&mut **tx).await?;
            }
            Ok(())
        }

        /// Rows of `region, observed_at_ms, id, device, figures` as latest-report rows.
        fn latest_rows(
            rows: Vec<<$db as sqlx::Database>::Row>,
            incident: &str,
            exercise: bool,
        ) -> Result<Vec<LatestRow>, StoreError> {
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(LatestRow {
                    incident: incident.to_owned(),
                    exercise,
                    region: row.try_get("region")?,
                    observed_at_ms: row.try_get("observed_at_ms")?,
                    id: row.try_get("id")?,
                    device: row.try_get("device")?,
                    figures: row.try_get("figures")?,
                });
            }
            Ok(out)
        }

        pub(super) async fn latest<'e, E>(executor: E, incident: &str, exercise: bool) -> Result<Vec<LatestRow>, StoreError>
        where
            E: sqlx::Executor<'e, Database = $db>,
        {
            let rows = sqlx::query(
                "SELECT region, observed_at_ms, id, device, figures FROM report_latest \
                 WHERE incident = $1 AND exercise = $2 ORDER BY region",
            )
            .bind(incident)
            .bind(exercise)
            .fetch_all(executor)
            .await?;
            latest_rows(rows, incident, exercise)
        }

        pub(super) async fn retain(pool: &$pool, policy: &Retention) -> Result<Retained, StoreError> {
            let mut tx = pool.begin().await?;
            let mut done = Retained::default();
            // Blocks wholly before the raw horizon, a page at a time: their numeric readings fold
            // into the aggregates and the blocks go, in this one transaction, so a reading is
            // counted into its buckets exactly once.
            loop {
                let rows = sqlx::query(
                    "SELECT b.device, b.name, b.first_us, b.data FROM series s \
                     JOIN reading_blocks b ON b.device = s.device AND b.name = s.name \
                          AND b.first_us < $1 AND b.last_us < $1 \
                     LIMIT $2",
                )
                .bind(policy.raw_before_us)
                .bind(BLOCK_PAGE * 8)
                .fetch_all(&mut *tx)
                .await?;
                if rows.is_empty() {
                    break;
                }
                let mut minute = blocks::Buckets::new(60_000_000);
                let mut hour = blocks::Buckets::new(3_600_000_000);
                let mut gone = Vec::with_capacity(rows.len());
                for row in &rows {
                    let device: String = row.try_get(0)?;
                    let name: String = row.try_get(1)?;
                    let first: i64 = row.try_get(2)?;
                    let data: Vec<u8> = row.try_get(3)?;
                    for p in blocks::decode(first, &data).map_err(|e| StoreError::Damaged(e.to_string()))? {
                        done.raw_deleted += 1;
                        if let Some(value) = p.value.number() {
                            minute.add(&device, &name, p.time_us, value);
                            hour.add(&device, &name, p.time_us, value);
                        }
                    }
                    gone.push((device, name, first));
                }
                done.minute_buckets += minute.len() as u64;
                for (table, buckets) in [("readings_minute", minute), ("readings_hour", hour)] {
                    let buckets = buckets.into_rows();
                    for chunk in buckets.chunks(CHUNK) {
                        // The table name is one of two constants.
                        let mut q = QueryBuilder::<$db>::new(format!(
                            "INSERT INTO {table} (device, name, bucket_us, n, sum, min, max, last_time_us) "
                        ));
                        q.push_values(chunk, |mut b, ((device, name, bucket), a)| {
                            b.push_bind(device)
                                .push_bind(name)
                                .push_bind(*bucket)
                                .push_bind(a.n)
                                .push_bind(a.sum)
                                .push_bind(a.min)
                                .push_bind(a.max)
                                .push_bind(a.last_time_us);
                        });
                        q.push(format!(
                            " ON CONFLICT (device, name, bucket_us) DO UPDATE SET \
                               n = {table}.n + excluded.n, sum = {table}.sum + excluded.sum, \
                               min = {least}({table}.min, excluded.min), max = {greatest}({table}.max, excluded.max), \
                               last_time_us = {greatest}({table}.last_time_us, excluded.last_time_us)",
                            least = $least,
                            greatest = $greatest,
                        ));
                        q.build().execute(&mut *tx).await?;
                    }
                }
                for chunk in gone.chunks(CHUNK) {
                    let mut q = QueryBuilder::<$db>::new("DELETE FROM reading_blocks WHERE (device, name, first_us) IN (VALUES ");
                    let mut list = q.separated(", ");
                    for (device, name, first) in chunk {
                        list.push("(")
                            .push_bind_unseparated(device)
                            .push_unseparated(", ")
                            .push_bind_unseparated(name)
                            .push_unseparated(", ")
                            .push_bind_unseparated(*first)
                            .push_unseparated(")");
                    }
                    q.push(")");
                    q.build().execute(&mut *tx).await?;
                }
            }
            done.minute_deleted = sqlx::query("DELETE FROM readings_minute WHERE bucket_us < $1")
                .bind(policy.minute_before_us)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            done.hour_deleted = sqlx::query("DELETE FROM readings_hour WHERE bucket_us < $1")
                .bind(policy.hour_before_us)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok(done)
        }

        pub(super) async fn aggregates(pool: &$pool, query: &AggregateQuery) -> Result<Vec<Aggregate>, StoreError> {
            let table = if query.hourly { "readings_hour" } else { "readings_minute" };
            let sql = format!(
                "SELECT bucket_us, n, sum, min, max, last_time_us FROM {table} \
                 WHERE device = $1 AND name = $2 AND bucket_us >= $3 ORDER BY bucket_us LIMIT $4"
            );
            // `table` is one of two constants.
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&query.device)
                .bind(&query.name)
                .bind(query.since_us)
                .bind(query.limit)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let n: i64 = row.try_get("n")?;
                let sum: f64 = row.try_get("sum")?;
                out.push(Aggregate {
                    bucket_us: row.try_get("bucket_us")?,
                    n,
                    sum,
                    mean: if n > 0 { sum / n as f64 } else { 0.0 },
                    min: row.try_get("min")?,
                    max: row.try_get("max")?,
                    last_time_us: row.try_get("last_time_us")?,
                });
            }
            Ok(out)
        }

        pub(super) async fn facts(pool: &$pool, incident: &str, exercise: bool, at_ms: i64) -> Result<Vec<LatestRow>, StoreError> {
            let rows = sqlx::query(
                "SELECT region, observed_at_ms, id, device, figures FROM reports \
                 WHERE incident = $1 AND exercise = $2 AND observed_at_ms <= $3",
            )
            .bind(incident)
            .bind(exercise)
            .bind(at_ms)
            .fetch_all(pool)
            .await?;
            latest_rows(rows, incident, exercise)
        }

        pub(super) async fn filings(pool: &$pool, incident: &str, exercise: bool) -> Result<Vec<Filing>, StoreError> {
            let rows = sqlx::query(
                "SELECT region, stage, received_at_ms, observed_at_ms FROM reports \
                 WHERE incident = $1 AND exercise = $2 ORDER BY received_at_ms",
            )
            .bind(incident)
            .bind(exercise)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(Filing {
                    region: row.try_get("region")?,
                    stage: row.try_get("stage")?,
                    received_at_ms: row.try_get("received_at_ms")?,
                    observed_at_ms: row.try_get("observed_at_ms")?,
                });
            }
            Ok(out)
        }

        pub(super) async fn incidents(pool: &$pool) -> Result<Vec<IncidentSummary>, StoreError> {
            let rows = sqlx::query(
                "SELECT r.incident, r.exercise, MIN(r.observed_at_ms) AS first_ms, MAX(r.observed_at_ms) AS last_ms, \
                        COUNT(*) AS reports, COUNT(DISTINCT r.region) AS regions, \
                        (SELECT x.hazard FROM reports x WHERE x.incident = r.incident AND x.exercise = r.exercise \
                         ORDER BY x.observed_at_ms DESC, x.id DESC LIMIT 1) AS hazard, \
                        (SELECT x.stage FROM reports x WHERE x.incident = r.incident AND x.exercise = r.exercise \
                         ORDER BY x.observed_at_ms DESC, x.id DESC LIMIT 1) AS stage \
                 FROM reports r GROUP BY r.incident, r.exercise ORDER BY MAX(r.observed_at_ms) DESC",
            )
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(IncidentSummary {
                    incident: row.try_get("incident")?,
                    exercise: row.try_get("exercise")?,
                    hazard: row.try_get("hazard")?,
                    stage: row.try_get("stage")?,
                    first_observed_ms: row.try_get("first_ms")?,
                    last_observed_ms: row.try_get("last_ms")?,
                    reports: row.try_get("reports")?,
                    regions: row.try_get("regions")?,
                });
            }
            Ok(out)
        }

        pub(super) async fn recent_readings(pool: &$pool, since_us: i64) -> Result<Vec<(String, String, i64, f64)>, StoreError> {
            let rows = sqlx::query(
                "SELECT b.device, b.name, b.first_us, b.data FROM series s \
                 JOIN reading_blocks b ON b.device = s.device AND b.name = s.name \
                      AND b.first_us >= $1 - s.span_us AND b.last_us >= $1 \
                 WHERE s.name IN ('rain', 'water_level')",
            )
            .bind(since_us)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len() * 4 + 1024);
            for row in rows {
                let device: String = row.try_get(0)?;
                let name: String = row.try_get(1)?;
                let data: Vec<u8> = row.try_get(3)?;
                for p in blocks::decode(row.try_get(2)?, &data).map_err(|e| StoreError::Damaged(e.to_string()))? {
                    if let Some(value) = p.value.number().filter(|_| p.time_us >= since_us) {
                        out.push((device.clone(), name.clone(), p.time_us, value));
                    }
                }
            }
            // Every device's last word, so that a station silent since before the window is
            // still known (and can go offline).
            let seen = sqlx::query("SELECT device, last_seen_ms FROM devices").fetch_all(pool).await?;
            for row in seen {
                let last_seen_ms: i64 = row.try_get(1)?;
                out.push((row.try_get(0)?, "seen".to_owned(), last_seen_ms.saturating_mul(1000), 0.0));
            }
            Ok(out)
        }

        pub(super) async fn report_meta(
            tx: &mut sqlx::Transaction<'_, $db>,
            device: &str,
            id: &str,
        ) -> Result<Option<(String, bool)>, StoreError> {
            let row = sqlx::query("SELECT region, exercise FROM reports WHERE device = $1 AND id = $2")
                .bind(device)
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?;
            match row {
                Some(row) => Ok(Some((row.try_get("region")?, row.try_get("exercise")?))),
                None => Ok(None),
            }
        }

        pub(super) async fn outbox_reset(pool: &$pool) -> Result<(), StoreError> {
            sqlx::query("UPDATE outbox SET last_sent_ms = NULL WHERE last_sent_ms IS NOT NULL").execute(pool).await?;
            Ok(())
        }

        pub(super) async fn enqueue(tx: &mut sqlx::Transaction<'_, $db>, events: &[OutboxEvent]) -> Result<(), StoreError> {
            for e in events {
                if let Some(key) = &e.coalesce_key {
                    sqlx::query("DELETE FROM outbox WHERE coalesce_key = $1").bind(key).execute(&mut **tx).await?;
                }
            }
            for chunk in events.chunks(CHUNK) {
                let mut q = QueryBuilder::<$db>::new("INSERT INTO outbox (id, kind, coalesce_key, payload, created_ms) ");
                q.push_values(chunk, |mut b, e| {
                    b.push_bind(&e.id).push_bind(e.kind).push_bind(&e.coalesce_key).push_bind(&e.payload).push_bind(e.created_ms);
                });
                q.push(" ON CONFLICT (id) DO NOTHING");
                q.build().execute(&mut **tx).await?;
            }
            Ok(())
        }

        pub(super) async fn outbox_due(pool: &$pool, now_ms: i64, resend_ms: i64, limit: i64) -> Result<Vec<Pending>, StoreError> {
            // Never sent first (a partial index finds them), then what waited too long for its
            // receipt — only when there is room left.
            let mut rows = sqlx::query(
                "SELECT seq, id, kind, payload, attempts, created_ms FROM outbox \
                 WHERE last_sent_ms IS NULL ORDER BY seq LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let room = limit - rows.len() as i64;
            if room > 0 {
                rows.extend(
                    sqlx::query(
                        "SELECT seq, id, kind, payload, attempts, created_ms FROM outbox \
                         WHERE last_sent_ms IS NOT NULL \
                           AND last_sent_ms + (CASE WHEN attempts >= 5 THEN $2 * 32 ELSE ($2 << attempts) END) <= $1 \
                         ORDER BY seq LIMIT $3",
                    )
                    .bind(now_ms)
                    .bind(resend_ms)
                    .bind(room)
                    .fetch_all(pool)
                    .await?,
                );
            }
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                out.push(Pending {
                    seq: row.try_get("seq")?,
                    id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    payload: row.try_get("payload")?,
                    attempts: i64::from(row.try_get::<i32, _>("attempts")?),
                    created_ms: row.try_get("created_ms")?,
                });
            }
            Ok(out)
        }

        pub(super) async fn outbox_sent(pool: &$pool, seqs: &[i64], now_ms: i64) -> Result<(), StoreError> {
            for chunk in seqs.chunks(CHUNK) {
                let mut q = QueryBuilder::<$db>::new("UPDATE outbox SET attempts = attempts + 1, last_sent_ms = ");
                q.push_bind(now_ms).push(" WHERE seq IN (");
                let mut list = q.separated(", ");
                for seq in chunk {
                    list.push_bind(*seq);
                }
                q.push(")");
                q.build().execute(pool).await?;
            }
            Ok(())
        }

        pub(super) async fn outbox_receipted(pool: &$pool, ids: &[String]) -> Result<u64, StoreError> {
            let mut removed = 0;
            for chunk in ids.chunks(CHUNK) {
                let mut q = QueryBuilder::<$db>::new("DELETE FROM outbox WHERE id IN (");
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(id);
                }
                q.push(")");
                removed += q.build().execute(pool).await?.rows_affected();
            }
            Ok(removed)
        }

        pub(super) async fn outbox_depth(pool: &$pool) -> Result<(i64, Option<i64>), StoreError> {
            let row = sqlx::query("SELECT COUNT(*) AS n, MIN(created_ms) AS oldest FROM outbox").fetch_one(pool).await?;
            Ok((row.try_get("n")?, row.try_get("oldest")?))
        }

        pub(super) async fn outbox_trim(pool: &$pool, max: i64) -> Result<u64, StoreError> {
            let (depth, _) = outbox_depth(pool).await?;
            let mut over = depth - max;
            let mut dropped = 0;
            for kind in ["device", "media"] {
                if over <= 0 {
                    break;
                }
                let done = sqlx::query(
                    "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE kind = $1 ORDER BY seq LIMIT $2)",
                )
                .bind(kind)
                .bind(over)
                .execute(pool)
                .await?;
                over -= done.rows_affected() as i64;
                dropped += done.rows_affected();
            }
            Ok(dropped)
        }

        pub(super) async fn reports(pool: &$pool, query: &ReportQuery) -> Result<Page<StoredReport>, StoreError> {
            let mut q = QueryBuilder::<$db>::new(
                "SELECT seq, device, id, incident, stage, hazard, observed_at, lat, lon, region, region_source, figures, \
                 text, exercise, received_at_ms FROM reports WHERE 1 = 1",
            );
            if let Some(incident) = &query.incident {
                q.push(" AND incident = ").push_bind(incident);
            }
            if let Some(region) = &query.region {
                q.push(" AND region = ").push_bind(region);
            }
            if let Some(since) = query.since_ms {
                q.push(" AND received_at_ms >= ").push_bind(since);
            }
            if let Some(after) = query.after_seq {
                q.push(" AND seq > ").push_bind(after);
            }
            q.push(" ORDER BY seq LIMIT ").push_bind(query.limit + 1);
            let rows = q.build().fetch_all(pool).await?;
            let mut items = Vec::with_capacity(rows.len());
            let mut last_seq = None;
            for row in rows.iter().take(query.limit as usize) {
                last_seq = Some(row.try_get::<i64, _>("seq")?);
                let figures: String = row.try_get("figures")?;
                items.push(StoredReport {
                    device: row.try_get("device")?,
                    id: row.try_get("id")?,
                    incident: row.try_get("incident")?,
                    stage: row.try_get("stage")?,
                    hazard: row.try_get("hazard")?,
                    observed_at: row.try_get("observed_at")?,
                    lat: row.try_get("lat")?,
                    lon: row.try_get("lon")?,
                    region: row.try_get("region")?,
                    region_source: row.try_get("region_source")?,
                    figures: serde_json::from_str(&figures).unwrap_or(serde_json::Value::Null),
                    text: row.try_get("text")?,
                    exercise: row.try_get("exercise")?,
                    received_at_ms: row.try_get("received_at_ms")?,
                    media: Vec::new(),
                });
            }
            for report in &mut items {
                report.media = sqlx::query_scalar("SELECT sha256 FROM media WHERE device = $1 AND report_id = $2 ORDER BY sha256")
                    .bind(&report.device)
                    .bind(&report.id)
                    .fetch_all(pool)
                    .await?;
            }
            let next = if rows.len() > query.limit as usize { last_seq.map(|s| encode_cursor(&s)) } else { None };
            Ok(Page { items, next })
        }

        pub(super) async fn readings(pool: &$pool, query: &ReadingQuery) -> Result<Page<StoredReading>, StoreError> {
            // Walk the series in key order; in each, merge its blocks by time. Blocks come
            // ordered by first time, so once a block starting at F is read, every reading before
            // F is final (later blocks start after F).
            let want = query.limit.max(0) as usize + 1;
            let mut items: Vec<StoredReading> = Vec::with_capacity(want.min(10_000));
            let mut series_after: Option<(String, String)> = None;
            'series: loop {
                let mut q = QueryBuilder::<$db>::new("SELECT device, name, span_us FROM series WHERE 1 = 1");
                if let Some(device) = &query.device {
                    q.push(" AND device = ").push_bind(device);
                }
                if let Some(name) = &query.name {
                    q.push(" AND name = ").push_bind(name);
                }
                match (&series_after, &query.after) {
                    (Some((device, name)), _) => {
                        q.push(" AND (device, name) > (").push_bind(device).push(", ").push_bind(name).push(")");
                    }
                    (None, Some((device, name, _))) => {
                        q.push(" AND (device, name) >= (").push_bind(device).push(", ").push_bind(name).push(")");
                    }
                    (None, None) => {}
                }
                q.push(" ORDER BY device, name LIMIT ").push_bind(SERIES_PAGE);
                let series = q.build().fetch_all(pool).await?;
                if series.is_empty() {
                    break;
                }
                for row in &series {
                    let device: String = row.try_get(0)?;
                    let name: String = row.try_get(1)?;
                    series_after = Some((device.clone(), name.clone()));
                    let mut lower = query.since_us.unwrap_or(i64::MIN);
                    if let Some((d, n, t)) = &query.after {
                        if (d, n) == (&device, &name) {
                            lower = lower.max(t.saturating_add(1));
                        }
                    }
                    let span: i64 = row.try_get(2)?;
                    let mut pending: std::collections::BTreeMap<i64, StoredReading> = std::collections::BTreeMap::new();
                    // A block with a reading at or after `lower` starts at most `span` before it.
                    let mut block_after = lower.saturating_sub(span).saturating_sub(1);
                    loop {
                        let blocks = sqlx::query(
                            "SELECT first_us, registered, data FROM reading_blocks \
                             WHERE device = $1 AND name = $2 AND last_us >= $3 AND first_us > $4 \
                             ORDER BY first_us LIMIT $5",
                        )
                        .bind(&device)
                        .bind(&name)
                        .bind(lower)
                        .bind(block_after)
                        .bind(BLOCK_PAGE)
                        .fetch_all(pool)
                        .await?;
                        let more = blocks.len() as i64 == BLOCK_PAGE;
                        for block in &blocks {
                            let first: i64 = block.try_get(0)?;
                            let registered: bool = block.try_get(1)?;
                            let data: Vec<u8> = block.try_get(2)?;
                            block_after = first;
                            let packed = blocks::decode(first, &data).map_err(|e| StoreError::Damaged(e.to_string()))?;
                            for p in packed.into_iter().filter(|p| p.time_us >= lower) {
                                pending.insert(p.time_us, stored_reading(&device, &name, registered, p));
                            }
                        }
                        // Readings before the last block's start are final.
                        let rest = if more { pending.split_off(&block_after) } else { Default::default() };
                        items.extend(std::mem::replace(&mut pending, rest).into_values());
                        if items.len() >= want {
                            break 'series;
                        }
                        if !more {
                            break;
                        }
                    }
                }
                if (series.len() as i64) < SERIES_PAGE {
                    break;
                }
            }
            items.truncate(want);
            let next = if items.len() == want {
                items.pop();
                items.last().map(|r| encode_cursor(&(&r.device, &r.name, r.time_us)))
            } else {
                None
            };
            Ok(Page { items, next })
        }

        pub(super) async fn devices(pool: &$pool, query: &DeviceQuery) -> Result<Page<StoredDevice>, StoreError> {
            let mut q = QueryBuilder::<$db>::new(
                "SELECT device, registered, last_seen_ms, online, battery, status_at_ms FROM devices WHERE 1 = 1",
            );
            if let Some(after) = &query.after {
                q.push(" AND device > ").push_bind(after);
            }
            q.push(" ORDER BY device LIMIT ").push_bind(query.limit + 1);
            let rows = q.build().fetch_all(pool).await?;
            let mut items = Vec::with_capacity(rows.len());
            for row in rows.iter().take(query.limit as usize) {
                items.push(StoredDevice {
                    device: row.try_get("device")?,
                    registered: row.try_get("registered")?,
                    last_seen_ms: row.try_get("last_seen_ms")?,
                    online: row.try_get("online")?,
                    battery: row.try_get("battery")?,
                    status_at_ms: row.try_get("status_at_ms")?,
                });
            }
            let next = if rows.len() > query.limit as usize { items.last().map(|d| encode_cursor(&d.device)) } else { None };
            Ok(Page { items, next })
        }

        pub(super) async fn media(pool: &$pool, device: &str, report_id: &str, sha256: &str) -> Result<Option<StoredMedia>, StoreError> {
            let row = sqlx::query("SELECT content_type, bytes FROM media WHERE device = $1 AND report_id = $2 AND sha256 = $3")
                .bind(device)
                .bind(report_id)
                .bind(sha256)
                .fetch_optional(pool)
                .await?;
            match row {
                Some(row) => Ok(Some(StoredMedia { content_type: row.try_get("content_type")?, bytes: row.try_get("bytes")? })),
                None => Ok(None),
            }
        }

        pub(super) async fn counts(pool: &$pool) -> Result<Counts, StoreError> {
            let row = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM reports) AS reports, (SELECT COALESCE(SUM(n), 0) FROM reading_blocks) AS readings, \
                 (SELECT COUNT(*) FROM media) AS media, (SELECT COUNT(*) FROM devices) AS devices",
            )
            .fetch_one(pool)
            .await?;
            Ok(Counts {
                reports: row.try_get("reports")?,
                readings: row.try_get("readings")?,
                media: row.try_get("media")?,
                devices: row.try_get("devices")?,
            })
        }
    };
}

mod sqlite {
    store_impl!(Sqlite, SqlitePool, "max", "min");
}

mod postgres {
    store_impl!(Postgres, PgPool, "greatest", "least");
}
