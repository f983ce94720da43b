//! The node's HTTP API: health, metrics, and paged lists of what it stored.
//!
//! Lists take `limit` (1..=100000, default 1000) and `cursor` (the `next` of the previous page)
//! and return `{"items": [...], "next": "..."|null}`. Errors are `{"error": "..."}` with a 4xx
//! or 5xx status and never leak internals.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::DateTime;
use serde::Deserialize;
use serde_json::json;

use crate::devices::Registry;
use crate::metrics::Metrics;
use crate::store::{DeviceQuery, ReadingQuery, ReportQuery, Store, StoreError, decode_cursor};

/// The largest page.
pub const MAX_LIMIT: i64 = 100_000;
/// The page size when none is asked for.
pub const DEFAULT_LIMIT: i64 = 1000;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct ApiContext {
    pub node_id: String,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub registry: Arc<Registry>,
    pub regions: Arc<crate::regions::Regions>,
    /// Station states, when monitoring is on.
    pub stations: Option<crate::watch::Stations>,
    pub broker_up: Arc<AtomicBool>,
    /// True once the broker has granted the field subscriptions on the current connection.
    pub subscribed: Arc<AtomicBool>,
}

pub fn router(ctx: ApiContext) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/reports", get(reports))
        .route("/api/v1/readings", get(readings))
        .route("/api/v1/readings/aggregates", get(aggregates))
        .route("/api/v1/devices", get(devices))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/stations", get(stations))
        .route("/api/v1/incidents", get(incidents))
        .route("/api/v1/incidents/{incident}/discipline", get(discipline))
        .route("/api/v1/media/{device}/{report}/{sha256}", get(media))
        .with_state(ctx)
}

/// An API error: a status and a message fit to show.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, message.into())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::BadCursor(reason) => ApiError::bad_request(format!("cursor: {reason}")),
            other => {
                tracing::error!(error = %other, "API query failed");
                ApiError(StatusCode::SERVICE_UNAVAILABLE, "the database did not answer; try again".to_owned())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

async fn healthz(State(ctx): State<ApiContext>) -> Response {
    let db_ok = ctx.store.ping().await.is_ok();
    let broker = if ctx.broker_up.load(Ordering::Relaxed) { "connected" } else { "disconnected" };
    let body = json!({
        "node": ctx.node_id,
        "status": if db_ok { "ok" } else { "degraded" },
        "database": if db_ok { "ok" } else { "unreachable" },
        "broker": broker,
        "subscribed": ctx.subscribed.load(Ordering::Relaxed),
        "version": env!("CARGO_PKG_VERSION"),
    });
    let status = if db_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

async fn metrics(State(ctx): State<ApiContext>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], ctx.metrics.encode())
        .into_response()
}

fn limit(asked: Option<i64>) -> Result<i64, ApiError> {
    match asked {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!("limit {n} is outside 1..={MAX_LIMIT}"))),
    }
}

fn since_ms(text: Option<&str>) -> Result<Option<i64>, ApiError> {
    text.map(|t| {
        DateTime::parse_from_rfc3339(t)
            .map(|d| d.timestamp_millis())
            .map_err(|e| ApiError::bad_request(format!("since {t:?} is not an RFC 3339 time: {e}")))
    })
    .transpose()
}

#[derive(Debug, Deserialize)]
struct ReportParams {
    incident: Option<String>,
    region: Option<String>,
    /// Reports received at or after this RFC 3339 time.
    since: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn reports(State(ctx): State<ApiContext>, Query(p): Query<ReportParams>) -> Result<Response, ApiError> {
    let query = ReportQuery {
        incident: p.incident,
        region: p.region,
        since_ms: since_ms(p.since.as_deref())?,
        after_seq: p.cursor.as_deref().map(decode_cursor::<i64>).transpose()?,
        limit: limit(p.limit)?,
    };
    Ok(Json(ctx.store.reports(&query).await?).into_response())
}

#[derive(Debug, Deserialize)]
struct ReadingParams {
    device: Option<String>,
    name: Option<String>,
    /// Readings taken at or after this RFC 3339 time.
    since: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn readings(State(ctx): State<ApiContext>, Query(p): Query<ReadingParams>) -> Result<Response, ApiError> {
    let query = ReadingQuery {
        device: p.device,
        name: p.name,
        since_us: since_ms(p.since.as_deref())?.map(|ms| ms.saturating_mul(1000)),
        after: p.cursor.as_deref().map(decode_cursor::<(String, String, i64)>).transpose()?,
        limit: limit(p.limit)?,
    };
    Ok(Json(ctx.store.readings(&query).await?).into_response())
}

#[derive(Debug, Deserialize)]
struct AggregateParams {
    device: String,
    name: String,
    /// `minute` (default) or `hour`.
    resolution: Option<String>,
    since: Option<String>,
    limit: Option<i64>,
}

async fn aggregates(State(ctx): State<ApiContext>, Query(p): Query<AggregateParams>) -> Result<Response, ApiError> {
    let hourly = match p.resolution.as_deref() {
        None | Some("minute") => false,
        Some("hour") => true,
        Some(other) => return Err(ApiError::bad_request(format!("resolution {other:?} is not minute or hour"))),
    };
    let query = crate::store::AggregateQuery {
        device: p.device,
        name: p.name,
        hourly,
        since_us: since_ms(p.since.as_deref())?.map(|ms| ms.saturating_mul(1000)).unwrap_or(0),
        limit: limit(p.limit)?,
    };
    Ok(Json(json!({ "items": ctx.store.aggregates(&query).await? })).into_response())
}

#[derive(Debug, Deserialize)]
struct StatsParams {
    incident: String,
    /// Only this division and the divisions inside it.
    region: Option<String>,
    /// Statistics as they stood at this RFC 3339 time (reports observed up to it).
    at: Option<String>,
    /// Drill statistics instead of real ones (never mixed).
    #[serde(default)]
    exercise: bool,
}

async fn stats(State(ctx): State<ApiContext>, Query(p): Query<StatsParams>) -> Result<Response, ApiError> {
    let at_ms = since_ms(p.at.as_deref())?;
    let rows = match at_ms {
        None => ctx.store.latest(&p.incident, p.exercise).await?,
        Some(at) => ctx.store.facts(&p.incident, p.exercise, at).await?,
    };
    let all = crate::events::totals(&crate::events::facts(&rows), at_ms, &ctx.regions);
    let hierarchy = crate::events::NodeHierarchy(&ctx.regions);
    let divisions: Vec<_> = all
        .into_values()
        .filter(|d| match &p.region {
            None => true,
            Some(r) => crate::stats::lineage(&hierarchy, &d.division).contains(r),
        })
        .collect();
    Ok(Json(json!({
        "incident": p.incident,
        "exercise": p.exercise,
        "at": p.at,
        "divisions": divisions,
    }))
    .into_response())
}

async fn stations(State(ctx): State<ApiContext>) -> Result<Response, ApiError> {
    match &ctx.stations {
        Some(s) => Ok(Json(json!({ "items": crate::watch::Watch::view(s) })).into_response()),
        None => Err(ApiError(StatusCode::NOT_FOUND, "monitoring is off on this node (--monitor false)".to_owned())),
    }
}

async fn incidents(State(ctx): State<ApiContext>) -> Result<Response, ApiError> {
    let list = ctx.store.incidents().await?;
    Ok(Json(json!({ "items": list })).into_response())
}

#[derive(Debug, Deserialize)]
struct DisciplineParams {
    #[serde(default)]
    exercise: bool,
}

async fn discipline(
    State(ctx): State<ApiContext>,
    Path(incident): Path<String>,
    Query(p): Query<DisciplineParams>,
) -> Result<Response, ApiError> {
    let filings = ctx.store.filings(&incident, p.exercise).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let duties = crate::discipline::from_filings(&filings, now);
    Ok(Json(json!({ "incident": incident, "exercise": p.exercise, "divisions": duties })).into_response())
}

#[derive(Debug, Deserialize)]
struct DeviceParams {
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn devices(State(ctx): State<ApiContext>, Query(p): Query<DeviceParams>) -> Result<Response, ApiError> {
    let query =
        DeviceQuery { after: p.cursor.as_deref().map(decode_cursor::<String>).transpose()?, limit: limit(p.limit)? };
    let page = ctx.store.devices(&query).await?;
    // Each heard device with its registry entry (kind, name, location, lines) when it has one.
    let items: Vec<serde_json::Value> = page
        .items
        .into_iter()
        .map(|d| {
            let registered = ctx.registry.get(&d.device).cloned();
            let mut value = serde_json::to_value(&d).unwrap_or_default();
            if let (Some(obj), Some(reg)) = (value.as_object_mut(), registered) {
                obj.insert("registry".to_owned(), serde_json::to_value(reg).unwrap_or_default());
            }
            value
        })
        .collect();
    Ok(Json(json!({ "items": items, "next": page.next })).into_response())
}

async fn media(
    State(ctx): State<ApiContext>,
    Path((device, report, sha256)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    match ctx.store.media(&device, &report, &sha256).await? {
        Some(m) => Ok((
            [
                (header::CONTENT_TYPE, m.content_type),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
                (header::CONTENT_SECURITY_POLICY, "default-src 'none'".to_owned()),
            ],
            m.bytes,
        )
            .into_response()),
        None => Err(ApiError(StatusCode::NOT_FOUND, "no such media".to_owned())),
    }
}
