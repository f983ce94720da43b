//! Summarized events (contract v1 §3.5) the node sends up to the hub, built from what a batch
//! stored. Ids are derived from what the event is about wherever that is unique (a report, an
//! image), so the same fact never becomes two events; snapshots and warnings get a fresh UUID
//! when they are made, and keep it across resends because the outbox row keeps it.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use yingji_proto::event::{Event, EventKind};

use crate::regions::Regions;
use crate::store::{NewMedia, NewReport, OutboxEvent};

pub fn at(ms: i64) -> DateTime<chrono::FixedOffset> {
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

/// The outbox kind of a team acknowledgement relayed to the hub: published on
/// `yingji/v1/node/{id}/ack` instead of the event topic, receipted by its relay id like an event.
pub const KIND_ACK: &str = "ack";

/// The outbox row of a team acknowledgement that [`yingji_proto::dispatch::Ack::parse`]
/// accepted: the team's JSON as received with `relay_id` in front; the relay id is the row's id.
pub fn ack(node: &str, team: &str, ack_id: &str, received: &[u8]) -> Result<OutboxEvent, yingji_proto::Invalid> {
    use yingji_proto::dispatch::RelayedAck;
    let relay_id = RelayedAck::relay_id(node, team, ack_id);
    let payload = RelayedAck::payload(received, &relay_id)?;
    let payload = String::from_utf8(payload)
        .map_err(|_| yingji_proto::Invalid::new(yingji_proto::Code::InvalidJson, "the acknowledgement is not UTF-8"))?;
    Ok(OutboxEvent {
        id: relay_id,
        kind: KIND_ACK,
        coalesce_key: None,
        payload,
        created_ms: Utc::now().timestamp_millis(),
    })
}

/// The warning event of a dispatch order the node refused: `{"type": "dispatch_refused",
/// "order", "team", "code", "reason"}`, with the order's id, team, incident, region and
/// exercise flag where the payload shows valid ones (`null`, `unknown`, `false` where not).
/// The id comes from the payload's bytes, so a redelivered order makes no second event.
pub fn dispatch_refused(node: &str, payload: &[u8], refusal: &yingji_proto::Invalid) -> OutboxEvent {
    use sha2::{Digest, Sha256};
    let peeked: serde_json::Value = if payload.len() <= yingji_proto::MAX_JSON_BYTES {
        serde_json::from_slice(payload).unwrap_or_default()
    } else {
        serde_json::Value::Null
    };
    let text = |field: &str| peeked.get(field).and_then(|v| v.as_str());
    let order = text("id").filter(|id| yingji_proto::valid_id(id).is_ok());
    let team = text("team").filter(|t| yingji_proto::topic::valid_device_id(t).is_ok());
    let incident = text("incident").filter(|i| yingji_proto::valid_id(i).is_ok());
    let region =
        text("region").filter(|r| yingji_proto::report::valid_region(r).is_ok()).unwrap_or(crate::regions::UNKNOWN);
    let exercise = peeked.get("exercise").and_then(|v| v.as_bool()).unwrap_or(false);
    let digest = Sha256::digest(payload);
    let hash: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let body = json!({
        "type": "dispatch_refused",
        "order": order,
        "team": team,
        "code": refusal.code.as_str(),
        "reason": refusal.reason,
    });
    event(
        node,
        format!("{node}:dispatch_refused:{hash}"),
        EventKind::Warning,
        Utc::now().timestamp_millis(),
        exercise,
        region,
        incident,
        body,
        None,
    )
}

/// The division hierarchy a node rolls statistics up by: the regions file where it knows a
/// code, the shape of the GB/T 2260 code elsewhere (a county's prefecture is its first four
/// digits and `00`), so that reports naming divisions missing from the file still add up.
pub struct NodeHierarchy<'a>(pub &'a Regions);

impl crate::stats::Hierarchy for NodeHierarchy<'_> {
    fn parent(&self, code: &str) -> Option<String> {
        match self.0.get(code) {
            Some(d) => d.parent.clone(),
            None => crate::stats::CodeHierarchy.parent(code),
        }
    }
}

/// Turns stored latest-report rows into statistics facts.
pub fn facts(rows: &[crate::store::LatestRow]) -> Vec<crate::stats::Fact> {
    rows.iter()
        .map(|r| crate::stats::Fact {
            incident: r.incident.clone(),
            region: r.region.clone(),
            device: r.device.clone(),
            id: r.id.clone(),
            observed_at_ms: r.observed_at_ms,
            figures: serde_json::from_str(&r.figures).unwrap_or_default(),
        })
        .collect()
}

/// Totals per division of one incident from its facts, as they stood at `at_ms` (all when
/// `None`).
pub fn totals(
    facts: &[crate::stats::Fact],
    at_ms: Option<i64>,
    regions: &Regions,
) -> std::collections::BTreeMap<String, crate::stats::DivisionTotals> {
    let latest = crate::stats::latest(facts, at_ms);
    crate::stats::rollup(&latest, &NodeHierarchy(regions))
}

/// Statistics snapshots of the divisions touched by `changed_regions` (each region and its
/// ancestors), one event per division, coalescing with any unreceipted snapshot of the same
/// (incident, exercise, division).
pub fn stats(
    node: &str,
    incident: &str,
    exercise: bool,
    rows: &[crate::store::LatestRow],
    changed_regions: &std::collections::BTreeSet<String>,
    regions: &Regions,
) -> Vec<OutboxEvent> {
    let by_division = totals(&facts(rows), None, regions);
    let hierarchy = NodeHierarchy(regions);
    let mut touched = std::collections::BTreeSet::new();
    for region in changed_regions {
        touched.extend(crate::stats::lineage(&hierarchy, region));
    }
    let now = Utc::now().timestamp_millis();
    touched
        .into_iter()
        .filter_map(|division| by_division.get(&division))
        .map(|d| {
            let body = json!({
                "division": d.division,
                "level": d.level,
                "totals": d.totals,
                "reporting_regions": d.reporting_regions,
                "last_observed_at": at(d.last_observed_at_ms).to_rfc3339(),
            });
            event(
                node,
                format!("{node}:stats:{}", uuid::Uuid::now_v7().simple()),
                EventKind::Stats,
                now,
                exercise,
                &d.division,
                Some(incident),
                body,
                Some(format!("stats:{incident}:{exercise}:{}", d.division)),
            )
        })
        .collect()
}
