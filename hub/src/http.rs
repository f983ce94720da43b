//! The hub's HTTP API: `/healthz`, `/metrics`, and `/api/v1/…` (JSON, bearer tokens), with
//! the OpenAPI document at `/api/v1/openapi.json` and the live stream (server-sent events) at
//! `/api/v1/stream`.
//!
//! [`ROUTES`] lists every route with the role it needs; the router is built from the same
//! handlers and a test checks the OpenAPI document against the list.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use yingji_node::regions::Regions;

mod dispatch_api;

pub use dispatch_api::{import, to_csv, to_geojson};

use crate::auth::{self, Role};
use crate::metrics::Metrics;
use crate::picture;
use crate::rules::RuleHandle;
use crate::store::{AssessmentQuery, Store};

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub regions: Arc<Regions>,
    pub rules: RuleHandle,
    pub metrics: Arc<Metrics>,
    pub stream: broadcast::Sender<Arc<str>>,
    pub connected: Arc<AtomicBool>,
    /// Whether the broker granted the hub's subscriptions on the current connection.
    pub subscribed: Arc<AtomicBool>,
    /// The rules file, when the hub runs one (else the shipped rules).
    pub rules_file: Option<std::path::PathBuf>,
    /// Cancelled at shutdown: open streams end so that the server can stop.
    pub stop: tokio_util::sync::CancellationToken,
    /// Signs, books and publishes orders.
    pub dispatcher: Option<Arc<crate::dispatch::Dispatcher>>,
    /// The console's settings and caches.
    pub console: Arc<crate::console::Console>,
}

impl AppState {
    fn dispatcher(&self) -> Result<&crate::dispatch::Dispatcher, ApiError> {
        self.dispatcher
            .as_deref()
            .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "starting", "dispatch is not ready yet"))
    }
}

/// Every route: method, path (as in the OpenAPI document) and the least role it needs
/// (`None`: no token needed).
pub const ROUTES: &[(&str, &str, Option<Role>)] = &[
    ("get", "/healthz", None),
    ("get", "/metrics", None),
    ("get", "/api/v1/openapi.json", None),
    ("get", "/api/v1/incidents", Some(Role::Viewer)),
    ("get", "/api/v1/incidents/{id}", Some(Role::Viewer)),
    ("get", "/api/v1/stats", Some(Role::Viewer)),
    ("get", "/api/v1/warnings", Some(Role::Viewer)),
    ("get", "/api/v1/assessments", Some(Role::Viewer)),
    ("post", "/api/v1/assessments", Some(Role::Commander)),
    ("get", "/api/v1/assessments/{id}", Some(Role::Viewer)),
    ("get", "/api/v1/nodes", Some(Role::Viewer)),
    ("get", "/api/v1/stations", Some(Role::Viewer)),
    ("get", "/api/v1/events", Some(Role::Viewer)),
    ("get", "/api/v1/cap", Some(Role::Viewer)),
    ("get", "/api/v1/cap/{identifier}", Some(Role::Viewer)),
    ("get", "/api/v1/rules", Some(Role::Viewer)),
    ("post", "/api/v1/rules/reload", Some(Role::Commander)),
    ("get", "/api/v1/stream", Some(Role::Viewer)),
    ("get", "/api/v1/keys", None),
    ("get", "/api/v1/resources/{kind}", Some(Role::Viewer)),
    ("post", "/api/v1/resources/{kind}", Some(Role::Admin)),
    ("get", "/api/v1/proposals", Some(Role::Viewer)),
    ("get", "/api/v1/proposals/{id}", Some(Role::Viewer)),
    ("patch", "/api/v1/proposals/{id}", Some(Role::Officer)),
    ("post", "/api/v1/proposals/{id}/approve", Some(Role::Officer)),
    ("post", "/api/v1/proposals/{id}/reject", Some(Role::Officer)),
    ("get", "/api/v1/orders", Some(Role::Viewer)),
    ("get", "/api/v1/orders/{id}", Some(Role::Viewer)),
    ("get", "/api/v1/audit", Some(Role::Officer)),
    ("get", "/api/v1/drills", Some(Role::Viewer)),
    ("post", "/api/v1/drills", Some(Role::Officer)),
    ("get", "/api/v1/drills/{id}", Some(Role::Viewer)),
    ("get", "/api/v1/drills/{id}/report", Some(Role::Viewer)),
];

/// The OpenAPI document.
pub const OPENAPI: &str = include_str!("openapi.json");

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/v1/incidents", get(incidents))
        .route("/api/v1/incidents/{id}", get(incident))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/warnings", get(warnings))
        .route("/api/v1/assessments", get(assessments).post(set_level))
        .route("/api/v1/assessments/{id}", get(assessment))
        .route("/api/v1/nodes", get(nodes))
        .route("/api/v1/stations", get(stations))
        .route("/api/v1/events", get(events))
        .route("/api/v1/cap", get(cap_index))
        .route("/api/v1/cap/{identifier}", get(cap_xml))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/rules/reload", post(reload_rules))
        .route("/api/v1/stream", get(stream))
        .route("/api/v1/resources/{kind}", get(dispatch_api::list_resources).post(dispatch_api::import_resources))
        .route("/api/v1/proposals", get(dispatch_api::proposals))
        .route("/api/v1/proposals/{id}", get(dispatch_api::proposal).patch(dispatch_api::edit))
        .route("/api/v1/proposals/{id}/approve", post(dispatch_api::approve))
        .route("/api/v1/proposals/{id}/reject", post(dispatch_api::reject))
        .route("/api/v1/orders", get(dispatch_api::orders))
        .route("/api/v1/orders/{id}", get(dispatch_api::order))
        .route("/api/v1/audit", get(dispatch_api::audit))
        .route("/api/v1/drills", get(crate::console::drills::list).post(crate::console::drills::post))
        .route("/api/v1/drills/{id}", get(crate::console::drills::get_one))
        .route("/api/v1/drills/{id}/report", get(crate::console::drills::report))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }))
        .route("/api/v1/keys", get(dispatch_api::keys))
        .merge(api)
        .merge(crate::console::router())
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route; see /api/v1/openapi.json")
        })
        .with_state(state)
}

/// An error the API returns as `{"error": code, "message": …}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into() }
    }
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The message shown to the caller.
    pub fn message(&self) -> &str {
        &self.message
    }
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({"error": self.code, "message": self.message}))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        tracing::error!(error = %e, "an API request failed in the database");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", "the database did not answer; try again")
    }
}

/// The caller, as authenticated.
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: Role,
    /// The token's name (who it was made for), or the console user's, for the audit log.
    pub name: String,
}

/// The least role a route needs, from [`ROUTES`].
fn required_role(method: &str, path: &str) -> Option<Role> {
    ROUTES.iter().find(|(m, p, _)| m.eq_ignore_ascii_case(method) && template_matches(p, path)).and_then(|(_, _, r)| *r)
}

fn template_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p)
}

/// Whether a method changes something (and so needs the CSRF token when a cookie
/// authenticates it).
fn changes_state(method: &axum::http::Method) -> bool {
    !matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS)
}

/// Authenticates an API request by its bearer token or, for the console, by its session cookie
/// (with the `X-CSRF-Token` header on every state-changing call), and checks the role.
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let need = required_role(request.method().as_str(), request.uri().path()).unwrap_or(Role::Admin);
    let token = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(auth::bearer);
    let (role, name) = match token {
        Some(token) => {
            let found = match state.store.token_role(&auth::hash(token)).await {
                Ok(Some((role, name))) => role.parse::<Role>().ok().map(|r| (r, name)),
                Ok(None) => None,
                Err(e) => return ApiError::from(e).into_response(),
            };
            let Some((role, name)) = found else {
                state.metrics.auth_refused.get_or_create(&Metrics::reason("bad_token")).inc();
                return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the token is not known to this hub")
                    .into_response();
            };
            (role, if name.is_empty() { format!("{}-token", role.as_str()) } else { name })
        }
        None => {
            let user = match crate::console::session_of(&state, request.headers()).await {
                Ok(u) => u,
                Err(response) => return response,
            };
            let Some(user) = user else {
                let had_cookie =
                    crate::console::session::cookie(request.headers(), crate::console::session::COOKIE).is_some();
                state
                    .metrics
                    .auth_refused
                    .get_or_create(&Metrics::reason(if had_cookie { "bad_session" } else { "no_token" }))
                    .inc();
                let message = if had_cookie {
                    "the console session has ended; log in again"
                } else {
                    "send Authorization: Bearer TOKEN (yingji-hub token create), or log in to the console"
                };
                return ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
            };
            if changes_state(request.method()) {
                let sent = request.headers().get(crate::console::session::CSRF_HEADER).and_then(|v| v.to_str().ok());
                if !crate::console::session::csrf_matches(&user.csrf, sent) {
                    state.metrics.auth_refused.get_or_create(&Metrics::reason("csrf")).inc();
                    return ApiError::new(
                        StatusCode::FORBIDDEN,
                        "csrf",
                        "a console call that changes something carries the session's X-CSRF-Token header",
                    )
                    .into_response();
                }
            }
            (user.role, user.name)
        }
    };
    if role < need {
        state.metrics.auth_refused.get_or_create(&Metrics::reason("role")).inc();
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this needs the {} role; the caller is a {}", need.as_str(), role.as_str()),
        )
        .into_response();
    }
    request.extensions_mut().insert(Caller { role, name });
    next.run(request).await
}

async fn healthz(State(state): State<AppState>) -> Response {
    let db = state.store.ping().await.is_ok();
    let broker = state.connected.load(Ordering::Relaxed);
    let rules = rules_status(&state);
    let ok = db && broker;
    let body = json!({
        "status": if ok { "ok" } else { "degraded" },
        "database": db,
        "broker": broker,
        "subscribed": state.subscribed.load(Ordering::Relaxed),
        "rules": rules,
    });
    (if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
        .into_response()
}

fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t).map_err(|e| ApiError::bad_request(e.body_text()))
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExerciseQuery {
    exercise: Option<bool>,
}

async fn incidents(
    State(state): State<AppState>,
    q: Result<Query<ExerciseQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let rows = state.store.incidents(q.exercise).await?;
    Ok(Json(json!({"items": rows})).into_response())
}

async fn incident(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<ExerciseQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let exercise = query(q)?.exercise.unwrap_or(false);
    let Some(row) = state.store.incident(&id, exercise).await? else {
        return Err(ApiError::not_found(format!("no incident {id:?} (exercise={exercise})")));
    };
    let reports = state.store.report_rows(&id, exercise).await?;
    let rolled = picture::rollup(&reports, &state.regions);
    let events = state.store.incident_events(&id, exercise, 2000).await?;
    let assessments = state
        .store
        .assessments(&AssessmentQuery { subject: Some(id.clone()), exercise: Some(exercise), limit: 1000 })
        .await?;
    let warnings: Vec<_> = state
        .store
        .warnings(false, Some(exercise))
        .await?
        .into_iter()
        .filter(|w| w.incident.as_deref() == Some(id.as_str()))
        .collect();
    let mut timeline: Vec<serde_json::Value> = events
        .iter()
        .map(|e| json!({"at_ms": e.at_ms, "type": e.kind, "id": e.id, "node": e.node, "region": e.region, "body": e.body}))
        .collect();
    timeline.extend(assessments.iter().map(|a| {
        json!({"at_ms": a.at_ms, "type": "assessment", "id": a.id, "level": a.level, "previous": a.previous,
               "change": a.change, "rule": a.rule, "reason": a.reason, "cap": a.cap_id})
    }));
    let orders = state.store.orders(Some(&id), 1000).await?;
    let orders: Vec<_> = orders.into_iter().filter(|o| o.exercise == exercise).collect();
    timeline.extend(orders.iter().map(|o| {
        json!({"at_ms": o.issued_ms, "type": "order", "id": o.id, "team": o.team, "node": o.node,
               "capability": o.capability, "status": o.status})
    }));
    timeline.sort_by_key(|t| t.get("at_ms").and_then(|v| v.as_i64()).unwrap_or_default());
    let divisions: Vec<_> = rolled.values().collect();
    let affected: Vec<&str> = reports.iter().map(|r| r.region.as_str()).collect();
    let cap: Vec<_> = assessments
        .iter()
        .filter_map(|a| a.cap_id.clone())
        .chain(warnings.iter().filter_map(|w| w.cap_id.clone()))
        .collect();
    Ok(Json(json!({
        "incident": row,
        "level_name": row.level.map(level_name),
        "divisions_affected": affected,
        "statistics": divisions,
        "warnings": warnings,
        "assessments": assessments,
        "cap": cap,
        "orders": orders,
        "timeline": timeline,
    }))
    .into_response())
}

/// Ⅰ..Ⅳ for a level.
pub fn level_name(level: u8) -> &'static str {
    match level {
        1 => "Ⅰ",
        2 => "Ⅱ",
        3 => "Ⅲ",
        4 => "Ⅳ",
        _ => "?",
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    incident: String,
    region: Option<String>,
    exercise: Option<bool>,
}

async fn stats(
    State(state): State<AppState>,
    q: Result<Query<StatsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let exercise = q.exercise.unwrap_or(false);
    let region = q.region.unwrap_or_else(|| picture::NATION.to_owned());
    let reports = state.store.report_rows(&q.incident, exercise).await?;
    if reports.is_empty() {
        return Err(ApiError::not_found(format!("no reports for incident {:?} (exercise={exercise})", q.incident)));
    }
    let rolled = picture::rollup(&reports, &state.regions);
    let children: Vec<_> = rolled.values().filter(|d| d.parent.as_deref() == Some(region.as_str())).collect();
    let own = reports.iter().find(|r| r.region == region).map(|r| {
        json!({"node": r.node, "device": r.device, "id": r.report_id, "observed_ms": r.observed_ms, "stage": r.stage,
               "figures": serde_json::from_str::<serde_json::Value>(&r.figures).unwrap_or_default()})
    });
    let division = rolled.get(&region).cloned().unwrap_or_else(|| picture::DivisionStats {
        division: region.clone(),
        name: picture::name_of(&state.regions, &region),
        scope: picture::scope_of(&state.regions, &region),
        parent: None,
        totals: Default::default(),
        reporting_regions: 0,
        last_observed_ms: 0,
    });
    Ok(Json(json!({
        "incident": q.incident,
        "exercise": exercise,
        "division": division,
        "own_report": own,
        "children": children,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WarningsQuery {
    active: Option<bool>,
    exercise: Option<bool>,
}

async fn warnings(
    State(state): State<AppState>,
    q: Result<Query<WarningsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let rows = state.store.warnings(q.active.unwrap_or(true), q.exercise).await?;
    let mut by_division: BTreeMap<String, Vec<&crate::store::WarningRow>> = BTreeMap::new();
    for w in &rows {
        by_division.entry(w.region.clone()).or_default().push(w);
    }
    Ok(Json(json!({"items": rows, "by_division": by_division})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssessmentsQuery {
    incident: Option<String>,
    subject: Option<String>,
    exercise: Option<bool>,
    limit: Option<i64>,
}

async fn assessments(
    State(state): State<AppState>,
    q: Result<Query<AssessmentsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request("limit is 1..=10000"));
    }
    let rows = state
        .store
        .assessments(&AssessmentQuery { subject: q.incident.or(q.subject), exercise: q.exercise, limit })
        .await?;
    Ok(Json(json!({"items": rows})).into_response())
}

async fn assessment(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    match state.store.assessment(&id).await? {
        Some(a) => Ok(Json(a).into_response()),
        None => Err(ApiError::not_found(format!("no assessment {id:?}"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetLevel {
    incident: String,
    #[serde(default)]
    exercise: bool,
    /// 1..=4, or null to clear.
    level: Option<u8>,
    reason: String,
}

/// A commander sets an incident's level by hand; recorded like any assessment, with the
/// caller's role as the rule.
async fn set_level(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(remote): ConnectInfo<std::net::SocketAddr>,
    body: Result<Json<SetLevel>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let summary =
        apply_level(&state, &caller, &remote.to_string(), &body.incident, body.exercise, body.level, &body.reason)
            .await?;
    Ok((StatusCode::CREATED, Json(summary)).into_response())
}

/// Sets an incident's level by hand (the API's and the console's way), in one transaction with
/// its audit entry, and tells the stream.
pub async fn apply_level(
    state: &AppState,
    caller: &Caller,
    remote: &str,
    incident: &str,
    exercise: bool,
    level: Option<u8>,
    reason: &str,
) -> Result<serde_json::Value, ApiError> {
    if level.is_some_and(|l| !(1..=4).contains(&l)) {
        return Err(ApiError::bad_request("level is 1..=4 (Ⅰ..Ⅳ) or null"));
    }
    if reason.trim().is_empty() || reason.len() > 2000 {
        return Err(ApiError::bad_request("a reason (1..=2000 bytes) is required"));
    }
    if state.store.incident(incident, exercise).await?.is_none() {
        return Err(ApiError::not_found(format!("no incident {incident:?}")));
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut tx = state.store.begin().await?;
    let previous = tx.level(incident, exercise).await?;
    let change = match (previous, level) {
        (None, Some(_)) => "raise",
        (Some(a), Some(b)) if b < a => "upgrade",
        (Some(a), Some(b)) if b == a => "confirm",
        (Some(_), Some(_)) => "lower",
        _ => "clear",
    };
    let a = crate::store::NewAssessment {
        id: uuid::Uuid::now_v7().to_string(),
        subject: incident.to_owned(),
        exercise,
        incident: Some(incident.to_owned()),
        division: String::new(),
        at_ms: now_ms,
        level,
        previous,
        change: change.to_owned(),
        rule: Some(format!("manual:{}", caller.role.as_str())),
        reason: reason.to_owned(),
        inputs: "{}".to_owned(),
        actions: "[]".to_owned(),
        matched: "[]".to_owned(),
        trigger_event: None,
        cap_id: None,
    };
    tx.insert_assessment(&a).await?;
    tx.audit(
        &crate::store::NewAudit {
            who: &caller.name,
            role: caller.role.as_str(),
            action: "set_level",
            target: incident,
            remote,
            detail: json!({"exercise": exercise, "level": level, "previous": previous, "reason": reason, "assessment": a.id}),
        },
        now_ms,
    )
    .await?;
    tx.commit().await?;
    let summary = json!({"id": a.id, "subject": a.subject, "exercise": a.exercise, "incident": a.incident,
                         "level": a.level, "previous": previous, "change": change, "rule": a.rule, "reason": a.reason});
    let _ = state.stream.send(Arc::from(json!({"type": "assessment", "assessment": summary}).to_string()));
    Ok(summary)
}

async fn nodes(State(state): State<AppState>) -> Result<Response, ApiError> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let rows = state.store.nodes().await?;
    let items: Vec<_> = rows
        .iter()
        .map(|n| {
            let mut v = serde_json::to_value(n).unwrap_or_default();
            v["last_seen_s_ago"] = json!((now_ms - n.last_seen_ms) as f64 / 1000.0);
            v
        })
        .collect();
    Ok(Json(json!({"items": items})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StationsQuery {
    node: Option<String>,
}

async fn stations(
    State(state): State<AppState>,
    q: Result<Query<StationsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let rows = state.store.stations(q.node.as_deref()).await?;
    Ok(Json(json!({"items": rows})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    limit: Option<i64>,
    exercise: Option<bool>,
    node: Option<String>,
    kind: Option<String>,
}

async fn events(
    State(state): State<AppState>,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request("limit is 1..=10000"));
    }
    let filter = crate::store::EventFilter { exercise: q.exercise, node: q.node, kind: q.kind, limit };
    Ok(Json(json!({"items": state.store.events_filtered(&filter).await?})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CapQuery {
    exercise: Option<bool>,
    limit: Option<i64>,
}

async fn cap_index(
    State(state): State<AppState>,
    q: Result<Query<CapQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request("limit is 1..=10000"));
    }
    let rows = state.store.cap_index(q.exercise, limit).await?;
    let items: Vec<_> = rows
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            v["href"] = json!(format!("/api/v1/cap/{}.xml", r.identifier));
            v
        })
        .collect();
    Ok(Json(json!({"items": items})).into_response())
}

async fn cap_xml(State(state): State<AppState>, Path(file): Path<String>) -> Result<Response, ApiError> {
    let Some(identifier) = file.strip_suffix(".xml") else {
        return Err(ApiError::not_found("CAP documents are at /api/v1/cap/{identifier}.xml"));
    };
    match state.store.cap_xml(identifier).await? {
        Some(xml) => Ok(([(header::CONTENT_TYPE, "application/cap+xml; charset=utf-8")], xml).into_response()),
        None => Err(ApiError::not_found(format!("no CAP alert {identifier:?}"))),
    }
}

async fn rules(State(state): State<AppState>) -> Result<Response, ApiError> {
    let current = state.rules.current();
    Ok(Json(json!({"status": rules_status(&state), "rules": current.rules()})).into_response())
}

fn rules_status(state: &AppState) -> serde_json::Value {
    json!({
        "file": state.rules_file.as_ref().map(|p| p.display().to_string()),
        "count": state.rules.current().len(),
        "reloads": state.rules.stats(),
    })
}

async fn reload_rules(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(remote): ConnectInfo<std::net::SocketAddr>,
) -> Result<Response, ApiError> {
    let count = reload_rules_now(&state, &caller, &remote.to_string()).await?;
    Ok(Json(json!({"rules": count})).into_response())
}

/// Reloads the rules file (the API's and the console's way); the attempt is audited.
pub async fn reload_rules_now(state: &AppState, caller: &Caller, remote: &str) -> Result<usize, ApiError> {
    let Some(path) = state.rules_file.clone() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_rules_file",
            "this hub runs the shipped rules; start it with --rules FILE to load and reload a file",
        ));
    };
    let handle = state.rules.clone();
    let result = tokio::task::spawn_blocking(move || handle.reload_from(&path))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let audit = |outcome: serde_json::Value| crate::store::NewAudit {
        who: &caller.name,
        role: caller.role.as_str(),
        action: "rules_reload",
        target: "rules",
        remote,
        detail: outcome,
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    match result {
        Ok(count) => {
            state.metrics.rule_reloads.get_or_create(&Metrics::reason("ok")).inc();
            state.store.audit_one(&audit(json!({"rules": count})), now_ms).await?;
            Ok(count)
        }
        Err(e) => {
            state.metrics.rule_reloads.get_or_create(&Metrics::reason("refused")).inc();
            state.store.audit_one(&audit(json!({"refused": e.to_string()})), now_ms).await?;
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "rules_refused",
                format!("{e}; the old rules stay in force"),
            ))
        }
    }
}

async fn stream(
    State(state): State<AppState>,
    _headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let metrics = state.metrics.clone();
    metrics.stream_clients.inc();
    let guard = StreamGuard(metrics);
    let receiver = state.stream.subscribe();
    let hello = futures_util::stream::once(async { Ok(SseEvent::default().event("hello").data("{}")) });
    let updates = BroadcastStream::new(receiver).map(move |item| {
        let _keep = &guard;
        Ok(match item {
            Ok(data) => {
                let kind = serde_json::from_str::<serde_json::Value>(&data)
                    .ok()
                    .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
                    .unwrap_or_else(|| "message".to_owned());
                SseEvent::default().event(kind).data(&*data)
            }
            // A client too slow for the stream missed changes: tell it to fetch a fresh picture.
            Err(BroadcastStreamRecvError::Lagged(n)) => {
                SseEvent::default().event("resync").data(json!({"missed": n}).to_string())
            }
        })
    });
    // The stream ends at shutdown; otherwise the server's graceful shutdown would wait for it.
    let stop = state.stop.clone().cancelled_owned();
    Sse::new(hello.chain(updates).take_until(stop)).keep_alive(KeepAlive::default())
}

struct StreamGuard(Arc<Metrics>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.stream_clients.dec();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_openapi_document_matches_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true));
        let paths = doc["paths"].as_object().unwrap();
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, item) in paths {
            for method in item.as_object().unwrap().keys().filter(|k| *k != "parameters") {
                documented.push((method.clone(), path.clone()));
            }
        }
        documented.sort();
        let mut routes: Vec<(String, String)> = ROUTES.iter().map(|(m, p, _)| (m.to_string(), p.to_string())).collect();
        routes.sort();
        assert_eq!(documented, routes);
        for (m, p, role) in ROUTES {
            let op = &doc["paths"][p][m];
            // Public routes say `security: []`; the others inherit the document's bearer scheme.
            let public = op["security"].as_array().is_some_and(|a| a.is_empty());
            assert_eq!(public, role.is_none(), "{m} {p}");
            assert!(public || op["security"].is_null(), "{m} {p}");
            assert!(op["responses"].is_object(), "{m} {p} documents its responses");
        }
    }

    #[test]
    fn templates_match_paths() {
        assert!(template_matches("/api/v1/incidents/{id}", "/api/v1/incidents/x"));
        assert!(!template_matches("/api/v1/incidents/{id}", "/api/v1/incidents/"));
        assert!(!template_matches("/api/v1/incidents", "/api/v1/incidents/x"));
        assert_eq!(required_role("POST", "/api/v1/rules/reload"), Some(Role::Commander));
        assert_eq!(required_role("GET", "/api/v1/cap/x.xml"), Some(Role::Viewer));
    }
}
