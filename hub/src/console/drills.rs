//! Drill results: the simulator's after-action evaluation, kept by the hub and listed in the
//! console. `POST /api/v1/drills` (officer) is idempotent on the drill's id; the HTML report is
//! served under a CSP sandbox so that nothing in it runs.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use crate::http::{ApiError, AppState, Caller};
use crate::store::{NewAudit, NewDrill};

/// The largest HTML report kept.
pub const MAX_REPORT_BYTES: usize = 8 * 1024 * 1024;

/// A drill result as posted.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillBody {
    pub id: String,
    pub scenario: String,
    pub seed: u64,
    pub started_at: String,
    pub finished_at: String,
    pub passed: bool,
    pub summary: serde_json::Value,
    pub html: String,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// Checks a posted drill result and turns it into a row.
pub fn validate(body: DrillBody) -> Result<NewDrill, ApiError> {
    let id_ok = !body.id.is_empty()
        && body.id.len() <= 200
        && body.id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if !id_ok {
        return Err(bad("id is 1..=200 characters of A-Z a-z 0-9 - _ . :"));
    }
    if body.scenario.trim().is_empty() || body.scenario.len() > 500 {
        return Err(bad("scenario is 1..=500 bytes"));
    }
    let time = |field: &str, text: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.timestamp_millis())
            .map_err(|e| bad(format!("{field} is not an RFC 3339 time: {e}")))
    };
    let started_ms = time("started_at", &body.started_at)?;
    let finished_ms = time("finished_at", &body.finished_at)?;
    if finished_ms < started_ms {
        return Err(bad("finished_at is before started_at"));
    }
    if !body.summary.is_object() {
        return Err(bad("summary is a JSON object"));
    }
    if body.summary.to_string().len() > 1024 * 1024 {
        return Err(bad("summary is at most 1 MiB"));
    }
    if body.html.len() > MAX_REPORT_BYTES {
        return Err(bad(format!("html is at most {MAX_REPORT_BYTES} bytes")));
    }
    Ok(NewDrill {
        id: body.id,
        scenario: body.scenario,
        seed: body.seed,
        started_ms,
        finished_ms,
        passed: body.passed,
        summary: body.summary,
        html: body.html,
    })
}

pub async fn post(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    body: Result<Json<DrillBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| bad(e.body_text()))?;
    let drill = validate(body)?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let audit = NewAudit {
        who: &caller.name,
        role: caller.role.as_str(),
        action: "drill_result",
        target: &drill.id,
        remote: &remote.to_string(),
        detail: json!({"scenario": drill.scenario, "passed": drill.passed, "seed": drill.seed.to_string()}),
    };
    let created = state.store.insert_drill(&drill, &audit, now_ms).await?;
    if created {
        let _ = state.stream.send(std::sync::Arc::from(
            json!({"type": "drill", "id": drill.id, "passed": drill.passed, "exercise": true}).to_string(),
        ));
    }
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(json!({"id": drill.id, "created": created}))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = q.map(|Query(q)| q).map_err(|e| bad(e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(bad("limit is 1..=10000"));
    }
    let items: Vec<_> = state
        .store
        .drills(limit)
        .await?
        .into_iter()
        .map(|d| {
            let href = format!("/api/v1/drills/{}/report", d.id);
            let mut v = serde_json::to_value(d).unwrap_or_default();
            v["report"] = json!(href);
            v
        })
        .collect();
    Ok(Json(json!({"items": items})).into_response())
}

pub async fn get_one(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    match state.store.drill(&id).await? {
        Some(d) => Ok(Json(d).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no drill {id:?}"))),
    }
}

/// The stored HTML, sandboxed: no script runs, no form submits, nothing is fetched from
/// elsewhere.
pub async fn report(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let Some(html) = state.store.drill_html(&id).await? else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no drill {id:?}")));
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        html,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> DrillBody {
        DrillBody {
            id: "drill-1".into(),
            scenario: "typhoon".into(),
            seed: u64::MAX,
            started_at: "2026-09-14T08:00:00+08:00".into(),
            finished_at: "2026-09-14T09:00:00+08:00".into(),
            passed: true,
            summary: json!({"orders_overdue": 0}),
            html: "<p>ok</p>".into(),
        }
    }

    #[test]
    fn drill_results_are_checked() {
        let d = validate(body()).expect("valid");
        assert_eq!(d.seed, u64::MAX);
        assert_eq!(d.finished_ms - d.started_ms, 3_600_000);
        for broken in [
            DrillBody { id: "a b".into(), ..body() },
            DrillBody { id: String::new(), ..body() },
            DrillBody { started_at: "yesterday".into(), ..body() },
            DrillBody { finished_at: "2026-09-14T07:00:00+08:00".into(), ..body() },
            DrillBody { summary: json!([1]), ..body() },
            DrillBody { scenario: " ".into(), ..body() },
        ] {
            assert!(validate(broken).is_err());
        }
    }
}
