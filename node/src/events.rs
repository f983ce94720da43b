//! Summarized events (contract v1 §3.5) the node sends up to the hub, built from what a batch
//! stored. Ids are derived from what the event is about wherever that is unique (a report, an
//! image), so the same fact never becomes two events; snapshots and warnings get a fresh UUID
//! when they are made, and keep it across resends because the outbox row keeps it.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use yingji_proto::event::{Event, EventKind};

use crate::regions::Regions;
use crate::store::{NewMedia, NewReport, OutboxEvent};

fn at(ms: i64) -> DateTime<chrono::FixedOffset> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default().fixed_offset()
}

fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Report => "report",
        EventKind::Warning => "warning",
        EventKind::Stats => "stats",
        EventKind::Device => "device",
        EventKind::Media => "media",
    }
}

/// Wraps a body into an outbox event.
#[allow(clippy::too_many_arguments)]
pub fn event(
    node: &str,
    id: String,
    kind: EventKind,
    at_ms: i64,
    exercise: bool,
    region: &str,
    incident: Option<&str>,
    body: serde_json::Value,
    coalesce_key: Option<String>,
) -> OutboxEvent {
    let event = Event {
        id: id.clone(),
        node: node.to_owned(),
        kind,
        at: at(at_ms),
        exercise,
        region: region.to_owned(),
        incident: incident.map(str::to_owned),
        body,
    };
    OutboxEvent {
        id,
        kind: kind_name(kind),
        coalesce_key,
        payload: serde_json::to_string(&event).unwrap_or_default(),
        created_ms: Utc::now().timestamp_millis(),
    }
}

/// The event of a newly stored report: the report as stored, with its region's path up to the
/// province.
pub fn report(node: &str, r: &NewReport, regions: &Regions) -> OutboxEvent {
    let figures: serde_json::Value = serde_json::from_str(&r.figures).unwrap_or_else(|_| json!({}));
    let body = json!({
        "device": r.device,
        "id": r.id,
        "incident": r.incident,
        "stage": r.stage,
        "hazard": r.hazard,
        "observed_at": r.observed_at,
        "location": {"lat": r.lat, "lon": r.lon},
        "region": r.region,
        "region_source": r.region_source,
        "region_path": regions.path(&r.region),
        "figures": figures,
        "text": r.text,
        "received_at": at(r.received_at_ms).to_rfc3339(),
    });
    event(
        node,
        format!("{node}:report:{}:{}", r.device, r.id),
        EventKind::Report,
        r.received_at_ms,
        r.exercise,
        &r.region,
        Some(&r.incident),
        body,
        None,
    )
}

/// The event of a newly stored image: a reference the hub can fetch from the node's API.
pub fn media(node: &str, m: &NewMedia, region: &str, exercise: bool) -> OutboxEvent {
    let body = json!({
        "device": m.device,
        "report": m.report_id,
        "sha256": m.sha256,
        "content_type": m.content_type,
        "size": m.bytes.len(),
        "path": format!("/api/v1/media/{}/{}/{}", m.device, m.report_id, m.sha256),
    });
    event(
        node,
        format!("{node}:media:{}:{}:{}", m.device, m.report_id, m.sha256),
        EventKind::Media,
        m.received_at_ms,
        exercise,
        region,
        None,
        body,
        None,
    )
}
