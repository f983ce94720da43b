//! Warnings and assessments as CAP 1.2 alerts (see docs/cap.md).
//!
//! - A warning raised → `Alert`; its colour changed → `Update`; cleared → `Cancel`; the Update
//!   and Cancel reference the warning's previous alert.
//! - A subject's response level raised → `Alert`; changed → `Update`; cleared → `Cancel`.
//! - Drills are `status=Exercise`, everything else `Actual`.
//! - Identifiers follow GB/T 35965.1: the division, the sector code, Beijing time and a
//!   sequence digit that tells apart alerts of the same division in the same second.
//! - Areas are the division polygons from the regions file, simplified, with the GB/T 2260 code
//!   as geocode.
//!
//! The alert is stored in the same transaction as the change it reports.

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Offset, TimeZone, Utc};
use yingji_node::regions::Regions;

use crate::cap::{self, Alert, Area, Certainty, Info, MsgType, Reference, ResponseType, Status, Urgency};
use crate::store::{NewAssessment, NewCap, StoreError, Tx, WarningRow, WarningUpdate};

/// The most points of one polygon ring in an alert's area.
pub const MAX_AREA_POINTS: usize = 200;

/// What every alert needs from the configuration.
pub struct CapContext {
    pub sender: String,
    pub sector: String,
    pub regions: Arc<Regions>,
}

fn beijing(ms: i64) -> DateTime<FixedOffset> {
    let offset = FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix());
    // Whole seconds: CAP times have no fractions.
    Utc.timestamp_millis_opt(ms - ms.rem_euclid(1000)).single().unwrap_or_default().with_timezone(&offset)
}

fn area(ctx: &CapContext, code: &str) -> Area {
    let name = crate::picture::name_of(&ctx.regions, code);
    match ctx.regions.get(code) {
        Some(d) => cap::area_from_geometry(&name, &d.shape, MAX_AREA_POINTS, Some((cap::GEOCODE_GB2260, code))),
        None => Area {
            area_desc: name,
            geocodes: if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
                vec![(cap::GEOCODE_GB2260.to_owned(), code.to_owned())]
            } else {
                Vec::new()
            },
            ..Area::default()
        },
    }
}

/// A fresh identifier for an alert about `division` sent at `sent_ms`.
async fn new_identifier(
    ctx: &CapContext,
    tx: &mut Tx,
    division: &str,
    sent_ms: i64,
) -> Result<(String, DateTime<FixedOffset>), StoreError> {
    let code = if division.len() == 6 && division.bytes().all(|b| b.is_ascii_digit()) { division } else { "000000" };
    let mut ms = sent_ms;
    // Ten alerts per division and second; the eleventh moves to the next second.
    for _ in 0..1000 {
        let sent = beijing(ms);
        let Ok(probe) = cap::identifier(code, &ctx.sector, "", "", sent, 0) else { break };
        // `…_YYYYMMDDhhmmss_N`: everything but the sequence digit.
        let prefix = &probe[..probe.len() - 1];
        let used = tx.cap_count_with_prefix(prefix).await?;
        if used < 10
            && let Ok(id) = cap::identifier(code, &ctx.sector, "", "", sent, used as u8)
        {
            return Ok((id, sent));
        }
        ms += 1000;
    }
    let sent = beijing(sent_ms);
    Ok((format!("{code}{}000_{}", ctx.sector, uuid::Uuid::now_v7().simple()), sent))
}

async fn store(
    ctx: &CapContext,
    tx: &mut Tx,
    alert: &Alert,
    exercise: bool,
    source: &str,
    source_key: &str,
) -> Result<String, StoreError> {
    let _ = ctx;
    // `to_xml` repairs what the schema cannot check (and always writes a valid document); a
    // problem here is a bug of the mapping, worth a log line, never a lost alert.
    if let Err(problems) = cap::validate(alert) {
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        tracing::warn!(identifier = %alert.identifier, ?problems, "a CAP alert needed repairs");
    }
    tx.insert_cap(&NewCap {
        identifier: alert.identifier.clone(),
        sent_ms: alert.sent.timestamp_millis(),
        exercise,
        source: source.to_owned(),
        source_key: source_key.to_owned(),
        msg_type: alert.msg_type.as_str().to_owned(),
        summary: serde_json::to_string(&alert.summary()).unwrap_or_else(|_| "{}".to_owned()),
        xml: cap::to_xml(alert),
    })
    .await?;
    Ok(alert.identifier.clone())
}

fn colour_name(colour: &str) -> &'static str {
    match colour {
        "red" => "红色",
        "orange" => "橙色",
        "yellow" => "黄色",
        "blue" => "蓝色",
        _ => "",
    }
}

/// The CAP alert for a warning's change, if it is one that officers and the public must hear
/// about (raised, colour changed, cleared). Returns the alert's identifier.
pub async fn warning_alert(
    ctx: &CapContext,
    tx: &mut Tx,
    w: &WarningUpdate,
    before: Option<&WarningRow>,
    now_ms: i64,
) -> Result<Option<String>, StoreError> {
    let was = before.and_then(|b| b.colour.clone());
    let source_key = format!("warning:{}:{}", w.key, w.exercise);
    let previous = tx.last_cap(&source_key).await?;
    let msg_type = match (&was, &w.colour, &previous) {
        (None, Some(_), _) => MsgType::Alert,
        (Some(a), Some(b), Some(_)) if a != b => MsgType::Update,
        (Some(_), None, Some(_)) => MsgType::Cancel,
        _ => return Ok(None),
    };
    let (identifier, sent) = new_identifier(ctx, tx, &w.region, now_ms).await?;
    let mut alert = Alert::new(
        identifier,
        ctx.sender.clone(),
        sent,
        if w.exercise { Status::Exercise } else { Status::Actual },
        msg_type,
    );
    if let Some((id, sent_ms, _)) = &previous
        && msg_type != MsgType::Alert
    {
        alert.references.push(Reference {
            sender: ctx.sender.clone(),
            identifier: id.clone(),
            sent: beijing(*sent_ms),
        });
    }
    if let Some(i) = &w.incident {
        alert.incidents.push(i.clone());
    }
    let colour = w.colour.clone().or(was.clone()).unwrap_or_default();
    let (event, hazard) = match w.kind.as_str() {
        "rain" => ("暴雨预警", "rainstorm"),
        "water_level" => ("洪水预警", "flood"),
        "report_overdue" => ("灾情报告超时", "other"),
        other => (other, "other"),
    };
    let place = crate::picture::name_of(&ctx.regions, &w.region);
    let station = w.station.clone().unwrap_or_default();
    let headline = match msg_type {
        MsgType::Cancel => format!("{place} {station} {event}解除"),
        _ => format!("{place} {station} {event} {}", colour_name(&colour)),
    };
    let mut description = format!("{event}（{}）", colour_name(&colour));
    if let (Some(v), Some(t)) = (w.value, w.threshold) {
        description.push_str(&format!("：当前值 {v}，阈值 {t}"));
    }
    let mut parameters = vec![("colour".to_owned(), colour.clone()), ("node".to_owned(), w.node.clone())];
    if !station.is_empty() {
        parameters.push(("station".to_owned(), station.clone()));
    }
    if let Some(v) = w.value {
        parameters.push(("value".to_owned(), v.to_string()));
    }
    if let Some(t) = w.threshold {
        parameters.push(("threshold".to_owned(), t.to_string()));
    }
    alert.infos.push(Info {
        categories: cap::category_of_hazard(hazard),
        event: event.to_owned(),
        response_types: vec![if msg_type == MsgType::Cancel { ResponseType::AllClear } else { ResponseType::Monitor }],
        urgency: if matches!(colour.as_str(), "red" | "orange") { Urgency::Immediate } else { Urgency::Expected },
        severity: cap::severity_of_colour(&colour),
        certainty: Certainty::Observed,
        sender_name: Some("应急指挥平台".to_owned()),
        headline,
        description,
        parameters,
        areas: vec![area(ctx, &w.region)],
        ..Info::default()
    });
    store(ctx, tx, &alert, w.exercise, "warning", &source_key).await.map(Some)
}

/// The CAP alert for a change of a subject's response level. Returns the alert's identifier.
pub async fn assessment_alert(
    ctx: &CapContext,
    tx: &mut Tx,
    a: &NewAssessment,
    hazard: Option<&str>,
    now_ms: i64,
) -> Result<Option<String>, StoreError> {
    let source_key = format!("level:{}:{}", a.subject, a.exercise);
    let previous = tx.last_cap(&source_key).await?;
    let msg_type = match (a.level, &previous) {
        (Some(_), None) => MsgType::Alert,
        (Some(_), Some((_, _, kind))) if kind == "Cancel" => MsgType::Alert,
        (Some(_), Some(_)) => MsgType::Update,
        (None, Some((_, _, kind))) if kind != "Cancel" => MsgType::Cancel,
        (None, _) => return Ok(None),
    };
    let (identifier, sent) = new_identifier(ctx, tx, &a.division, now_ms).await?;
    let mut alert = Alert::new(
        identifier,
        ctx.sender.clone(),
        sent,
        if a.exercise { Status::Exercise } else { Status::Actual },
        msg_type,
    );
    if let Some((id, sent_ms, _)) = &previous
        && msg_type != MsgType::Alert
    {
        alert.references.push(Reference {
            sender: ctx.sender.clone(),
            identifier: id.clone(),
            sent: beijing(*sent_ms),
        });
    }
    if let Some(i) = &a.incident {
        alert.incidents.push(i.clone());
    }
    let level = a.level.map(crate::http::level_name).unwrap_or("");
    let place = crate::picture::name_of(&ctx.regions, &a.division);
    let what = a.incident.clone().unwrap_or_else(|| place.clone());
    let headline = match a.level {
        Some(_) => format!("{what}：启动 {level} 级应急响应"),
        None => format!("{what}：应急响应终止"),
    };
    let mut description = a.reason.clone();
    if let Some(rule) = &a.rule {
        description.push_str(&format!("（规则 {rule}）"));
    }
    let mut parameters = vec![("change".to_owned(), a.change.clone())];
    if let Some(l) = a.level {
        parameters.push(("response_level".to_owned(), l.to_string()));
    }
    if let Some(rule) = &a.rule {
        parameters.push(("rule".to_owned(), rule.clone()));
    }
    alert.infos.push(Info {
        categories: cap::category_of_hazard(hazard.unwrap_or("other")),
        event: format!("应急响应{level}"),
        response_types: vec![match (msg_type, a.level) {
            (MsgType::Cancel, _) => ResponseType::AllClear,
            (_, Some(1 | 2)) => ResponseType::Execute,
            _ => ResponseType::Prepare,
        }],
        urgency: Urgency::Immediate,
        severity: a.level.map(cap::severity_of_response_level).unwrap_or(cap::Severity::Unknown),
        certainty: Certainty::Likely,
        sender_name: Some("应急指挥平台".to_owned()),
        headline,
        description,
        parameters,
        areas: vec![area(ctx, &a.division)],
        ..Info::default()
    });
    store(ctx, tx, &alert, a.exercise, "assessment", &source_key).await.map(Some)
}
