//! The API of resources, proposals, orders, the audit log and the hub's public keys.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState, Caller, query};
use crate::dispatch::{Actor, DispatchError};
use crate::resources::{self, Kind, Records};

fn actor(caller: &Caller, remote: SocketAddr) -> Actor {
    Actor { who: caller.name.clone(), role: caller.role.as_str().to_owned(), remote: remote.to_string() }
}

fn kind(text: &str) -> Result<Kind, ApiError> {
    Kind::parse(text)
        .ok_or_else(|| ApiError::not_found(format!("no resource {text:?}: teams, stockpiles, hazards or targets")))
}

impl From<DispatchError> for ApiError {
    fn from(e: DispatchError) -> ApiError {
        match e {
            DispatchError::NotFound(_) => ApiError::not_found(e.to_string()),
            DispatchError::Decided(_) | DispatchError::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            DispatchError::Invalid(_) => ApiError::bad_request(e.to_string()),
            DispatchError::Store(s) => ApiError::from(s),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportQuery {
    format: Option<String>,
}

pub(super) async fn list_resources(
    State(state): State<AppState>,
    Path(which): Path<String>,
    q: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let kind = kind(&which)?;
    let format = query(q)?.format.unwrap_or_else(|| "json".into());
    let items: Vec<serde_json::Value> = match kind {
        Kind::Teams => state.store.teams().await?.iter().map(|t| serde_json::to_value(t).unwrap_or_default()).collect(),
        Kind::Stockpiles => {
            state.store.stockpiles().await?.iter().map(|s| serde_json::to_value(s).unwrap_or_default()).collect()
        }
        Kind::Hazards | Kind::Targets => state.store.places(kind).await?,
    };
    match format.as_str() {
        "json" => Ok(Json(json!({"items": items})).into_response()),
        "csv" => Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], to_csv(kind, &items)).into_response()),
        "geojson" => {
            Ok(([(header::CONTENT_TYPE, "application/geo+json")], to_geojson(&items).to_string()).into_response())
        }
        other => Err(ApiError::bad_request(format!("format {other:?}: json, csv or geojson"))),
    }
}

/// The CSV a resource list exports as; it imports back unchanged.
pub fn to_csv(kind: Kind, items: &[serde_json::Value]) -> String {
    let columns: &[&str] = match kind {
        Kind::Teams => &["id", "name", "node", "lat", "lon", "capabilities", "size", "province", "status"],
        Kind::Stockpiles => &["id", "name", "lat", "lon", "items", "province"],
        Kind::Hazards => &["id", "name", "kind", "level", "lat", "lon"],
        Kind::Targets => &["id", "name", "kind", "lat", "lon", "people"],
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(columns);
    for item in items {
        let row: Vec<String> = columns
            .iter()
            .map(|c| match (&item[*c], *c) {
                (serde_json::Value::Array(a), _) => a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(";"),
                (serde_json::Value::Object(o), "items") => {
                    o.iter().map(|(k, v)| format!("{k}={}", v.as_i64().unwrap_or(0))).collect::<Vec<_>>().join(";")
                }
                // `assigned` is the hub's to set; it exports as what it imports as.
                (serde_json::Value::String(s), "status") if s == "assigned" => "available".to_owned(),
                (serde_json::Value::String(s), _) => s.clone(),
                (serde_json::Value::Null, _) => String::new(),
                (v, _) => v.to_string(),
            })
            .collect();
        let _ = w.write_record(&row);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// A FeatureCollection of a resource list (points, or a hazard's own geometry).
pub fn to_geojson(items: &[serde_json::Value]) -> serde_json::Value {
    let features: Vec<_> = items
        .iter()
        .map(|i| {
            let geometry = match i.get("geometry") {
                Some(g) if g.is_object() => g.clone(),
                _ => json!({"type": "Point", "coordinates": [i["lon"], i["lat"]]}),
            };
            let mut properties = i.clone();
            if let Some(o) = properties.as_object_mut() {
                for k in ["lat", "lon", "geometry", "order_id", "updated_ms"] {
                    o.remove(k);
                }
                if o.get("status").and_then(|s| s.as_str()) == Some("assigned") {
                    o.insert("status".into(), json!("available"));
                }
            }
            json!({"type": "Feature", "geometry": geometry, "properties": properties})
        })
        .collect();
    json!({"type": "FeatureCollection", "features": features})
}

pub(super) async fn import_resources(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(which): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let kind = kind(&which)?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
    let regions = state.regions.clone();
    let locate =
        move |lat: f64, lon: f64| regions.locate(lat, lon).map(|d| crate::picture::province_of(&regions, &d.code));
    let records = match resources::parse(kind, &content_type, text, &locate) {
        Ok(r) => r,
        Err(errors) => {
            return Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"error": "invalid_rows", "message": format!("{} rows refused; nothing was imported", errors.len()),
                            "errors": errors})),
            )
                .into_response());
        }
    };
    let count = import(&state.store, &records, &actor(&caller, remote), kind).await?;
    let _ = state
        .stream
        .send(std::sync::Arc::from(json!({"type": "resources", "kind": kind.as_str(), "count": count}).to_string()));
    Ok(Json(json!({"imported": count, "kind": kind.as_str()})).into_response())
}

/// Imports records in one transaction with its audit entry.
pub async fn import(
    store: &crate::store::Store,
    records: &Records,
    actor: &Actor,
    kind: Kind,
) -> Result<usize, crate::store::StoreError> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut tx = store.begin().await?;
    tx.import(records, now_ms).await?;
    tx.audit(
        &crate::store::NewAudit {
            who: &actor.who,
            role: &actor.role,
            action: "import",
            target: kind.as_str(),
            remote: &actor.remote,
            detail: json!({"rows": records.len()}),
        },
        now_ms,
    )
    .await?;
    tx.commit().await?;
    Ok(records.len())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    status: Option<String>,
    incident: Option<String>,
    exercise: Option<bool>,
    limit: Option<i64>,
}

pub(super) async fn proposals(
    State(state): State<AppState>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let mut rows = state.store.proposals(q.status.as_deref(), limit).await?;
    if let Some(i) = &q.incident {
        rows.retain(|p| &p.incident == i);
    }
    if let Some(e) = q.exercise {
        rows.retain(|p| p.exercise == e);
    }
    Ok(Json(json!({"items": rows})).into_response())
}

pub(super) async fn proposal(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    match state.store.proposal(&id).await? {
        Some(p) => Ok(Json(p).into_response()),
        None => Err(ApiError::not_found(format!("no proposal {id:?}"))),
    }
}

pub(super) async fn approve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let orders = state.dispatcher()?.approve(&id, &actor(&caller, remote), now_ms).await?;
    Ok(Json(json!({"proposal": id, "orders": orders})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RejectBody {
    reason: String,
}

pub(super) async fn reject(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    body: Result<Json<RejectBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if body.reason.trim().is_empty() || body.reason.len() > 2000 {
        return Err(ApiError::bad_request("a reason (1..=2000 bytes) is required"));
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    state.dispatcher()?.reject(&id, &actor(&caller, remote), &body.reason, now_ms).await?;
    Ok(Json(json!({"proposal": id, "status": "rejected"})).into_response())
}

pub(super) async fn edit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    body: Result<Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if !body.is_object() || body.as_object().is_some_and(|o| o.keys().any(|k| k != "teams" && k != "items")) {
        return Err(ApiError::bad_request("the body is {\"teams\": [...], \"items\": [...]} (either or both)"));
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let updated = state.dispatcher()?.edit(&id, &actor(&caller, remote), &body, now_ms).await?;
    Ok(Json(json!({"proposal": id, "body": updated})).into_response())
}

pub(super) async fn orders(
    State(state): State<AppState>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let mut rows = state.store.orders(q.incident.as_deref(), limit).await?;
    if let Some(s) = &q.status {
        rows.retain(|o| &o.status == s);
    }
    if let Some(e) = q.exercise {
        rows.retain(|o| o.exercise == e);
    }
    Ok(Json(json!({"items": rows})).into_response())
}

pub(super) async fn order(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let Some(order) = state.store.order(&id).await? else {
        return Err(ApiError::not_found(format!("no order {id:?}")));
    };
    let events = state.store.order_events(&id).await?;
    Ok(Json(json!({"order": order, "events": events})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    limit: Option<i64>,
}

pub(super) async fn audit(
    State(state): State<AppState>,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let limit = query(q)?.limit.unwrap_or(200).clamp(1, 10_000);
    Ok(Json(json!({"items": state.store.audit(limit).await?})).into_response())
}

pub(super) async fn keys(State(state): State<AppState>) -> Result<Response, ApiError> {
    let keys: Vec<_> = state
        .store
        .public_keys()
        .await?
        .into_iter()
        .map(|(kid, public, created_ms)| json!({"kid": kid, "alg": "Ed25519", "public_key": public, "created_ms": created_ms}))
        .collect();
    Ok(Json(json!({"keys": keys, "signature": "Ed25519 over the RFC 8785 (JCS) form of the order without `sig`, standard base64"}))
        .into_response())
}
