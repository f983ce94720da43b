//! The node's storage: one API, with SQLite and PostgreSQL behind it.
//!
//! Writes come as a [`Batch`] stored in one transaction; everything is keyed by its natural
//! identity and inserted with `ON CONFLICT DO NOTHING`, so storing a batch twice changes nothing.
//! The SQL is written once (the `store_impl!` macro) and expanded for each database; where the
//! dialects differ (the `greatest` function) the backend passes its own spelling.

use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, QueryBuilder, Row, Sqlite, SqlitePool};

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
#[derive(Debug, Clone, PartialEq)]
pub struct NewReading {
    pub device: String,
    pub name: String,
    pub time_us: i64,
    pub unit: Option<String>,
    pub value_num: Option<f64>,
    pub value_str: Option<String>,
    pub value_bool: Option<bool>,
    pub value_data: Option<Vec<u8>>,
    pub sum: Option<f64>,
    pub registered: bool,
    pub received_at_ms: i64,
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

    /// Stores a batch in one transaction. Returns only after the commit.
    pub async fn write(&self, batch: &Batch) -> Result<Written, StoreError> {
        match self {
            Store::Sqlite { writer, .. } => {
                // BEGIN IMMEDIATE takes the write lock up front, so the transaction never fails
                // half-way with "database is locked".
                let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
                let written = sqlite::write(&mut tx, batch).await?;
                tx.commit().await?;
                Ok(written)
            }
            Store::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let written = postgres::write(&mut tx, batch).await?;
                tx.commit().await?;
                Ok(written)
            }
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

/// The SQL of the store, written once and expanded per database.
macro_rules! store_impl {
    ($db:ty, $pool:ty, $greatest:literal) => {
        use super::*;

        pub(super) async fn write(tx: &mut sqlx::Transaction<'_, $db>, batch: &Batch) -> Result<Written, StoreError> {
            let mut written = Written::default();
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
                q.push(" ON CONFLICT (device, id) DO NOTHING");
                written.reports += q.build().execute(&mut **tx).await?.rows_affected();
            }
            for chunk in batch.readings.chunks(CHUNK) {
                let mut q = QueryBuilder::<$db>::new(
                    "INSERT INTO readings (device, name, time_us, unit, value_num, value_str, value_bool, value_data, \
                     sum, registered, received_at_ms) ",
                );
                q.push_values(chunk, |mut b, r| {
                    b.push_bind(&r.device)
                        .push_bind(&r.name)
                        .push_bind(r.time_us)
                        .push_bind(&r.unit)
                        .push_bind(r.value_num)
                        .push_bind(&r.value_str)
                        .push_bind(r.value_bool)
                        .push_bind(&r.value_data)
                        .push_bind(r.sum)
                        .push_bind(r.registered)
                        .push_bind(r.received_at_ms);
                });
                q.push(" ON CONFLICT (device, name, time_us) DO NOTHING");
                written.readings += q.build().execute(&mut **tx).await?.rows_affected();
            }
            for m in &batch.media {
                let done = sqlx::query(
                    "INSERT INTO media (device, report_id, sha256, content_type, size, bytes, received_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (device, report_id, sha256) DO NOTHING",
                )
                .bind(&m.device)
                .bind(&m.report_id)
                .bind(&m.sha256)
                .bind(&m.content_type)
                .bind(m.bytes.len() as i64)
                .bind(&m.bytes)
                .bind(m.received_at_ms)
                .execute(&mut **tx)
                .await?;
                written.media += done.rows_affected();
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
            Ok(written)
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
            let mut q = QueryBuilder::<$db>::new(
                "SELECT device, name, time_us, unit, value_num, value_str, value_bool, value_data, sum, registered \
                 FROM readings WHERE 1 = 1",
            );
            if let Some(device) = &query.device {
                q.push(" AND device = ").push_bind(device);
            }
            if let Some(name) = &query.name {
                q.push(" AND name = ").push_bind(name);
            }
            if let Some(since) = query.since_us {
                q.push(" AND time_us >= ").push_bind(since);
            }
            if let Some((device, name, time_us)) = &query.after {
                q.push(" AND (device, name, time_us) > (")
                    .push_bind(device)
                    .push(", ")
                    .push_bind(name)
                    .push(", ")
                    .push_bind(*time_us)
                    .push(")");
            }
            q.push(" ORDER BY device, name, time_us LIMIT ").push_bind(query.limit + 1);
            let rows = q.build().fetch_all(pool).await?;
            let mut items = Vec::with_capacity(rows.len());
            for row in rows.iter().take(query.limit as usize) {
                let data: Option<Vec<u8>> = row.try_get("value_data")?;
                items.push(StoredReading {
                    device: row.try_get("device")?,
                    name: row.try_get("name")?,
                    time_us: row.try_get("time_us")?,
                    unit: row.try_get("unit")?,
                    value: row.try_get("value_num")?,
                    value_str: row.try_get("value_str")?,
                    value_bool: row.try_get("value_bool")?,
                    value_data: data.map(|d| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d)),
                    sum: row.try_get("sum")?,
                    registered: row.try_get("registered")?,
                });
            }
            let next = if rows.len() > query.limit as usize {
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
                "SELECT (SELECT COUNT(*) FROM reports) AS reports, (SELECT COUNT(*) FROM readings) AS readings, \
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
    store_impl!(Sqlite, SqlitePool, "max");
}

mod postgres {
    store_impl!(Postgres, PgPool, "greatest");
}
