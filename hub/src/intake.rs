//! Intake: the nodes' summarized events and status, committed once each, then receipted.
//!
//! One task owns the path, in batches: parse every message; in **one transaction** insert the
//! events (`ON CONFLICT (id) DO NOTHING RETURNING id` — the primary key, not a check, decides
//! what is new, so two hub processes sharing a subscription cannot both take an event), apply
//! the new ones to the picture, judge the subjects they touched with the rules and record any
//! level change with its CAP alert; commit; only then acknowledge the messages to the broker
//! (in order) and send each node the receipt of every event id of the batch, new or seen
//! before (a resend means the node missed the earlier receipt). A failed commit acknowledges
//! and receipts nothing and retries the same batch. After the commit, what changed goes out on
//! the live stream.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rumqttc::{AsyncClient, Publish, QoS};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};
use yingji_node::regions::Regions;
use yingji_proto::event::{Event, Receipt};
use yingji_proto::status::NodeStatus;

use crate::assess::{self, Subject};
use crate::metrics::Metrics;
use crate::rules::RuleHandle;
use crate::store::{NewEvent, ReportRow, Store, StoreError, Tx, WarningUpdate};

/// (incident, hazard, region) rows of open incidents, loaded once per batch and exercise flag.
type IncidentRegions = Vec<(String, String, String)>;

/// The largest event the hub reads.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// What the intake needs.
pub struct Intake {
    pub store: Store,
    pub client: AsyncClient,
    pub regions: Arc<Regions>,
    pub rules: RuleHandle,
    pub metrics: Arc<Metrics>,
    pub stream: broadcast::Sender<Arc<str>>,
    pub batch_max: usize,
    pub cap: Arc<crate::alerts::CapContext>,
    pub dispatch: Arc<crate::dispatch::Context>,
}

/// One parsed message.
enum Item {
    Event(Event),
    Status {
        node: String,
        status: NodeStatus,
    },
    /// A team's acknowledgement relayed by its node.
    Ack {
        node: String,
        ack: yingji_proto::dispatch::RelayedAck,
    },
    Refused,
}

/// What a committed batch changed, for receipts and the stream.
#[derive(Default)]
struct Outcome {
    receipts: BTreeMap<String, Vec<String>>,
    stream: Vec<serde_json::Value>,
}

impl Intake {
    pub async fn run(self, mut messages: mpsc::UnboundedReceiver<Publish>, stop: CancellationToken) {
        loop {
            let first = tokio::select! {
                _ = stop.cancelled() => break,
                m = messages.recv() => match m { Some(m) => m, None => break },
            };
            let mut batch = vec![first];
            while batch.len() < self.batch_max {
                match messages.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            // A batch that cannot be stored is retried; it is never acknowledged half-way.
            let mut backoff = Duration::from_millis(100);
            let outcome = loop {
                match self.commit(&batch).await {
                    Ok(o) => break Some(o),
                    Err(e) => {
                        self.metrics.commit_failures.inc();
                        error!(error = %e, messages = batch.len(), retry_in_ms = backoff.as_millis() as u64,
                            "committing events failed; nothing was acknowledged or receipted, retrying. Check the database");
                        tokio::select! {
                            _ = stop.cancelled() => break None,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            };
            let Some(outcome) = outcome else { break };
            for publish in &batch {
                if let Err(e) = self.client.ack(publish).await {
                    warn!(error = %e, "could not acknowledge a message; the broker will send it again");
                }
            }
            for (node, ids) in outcome.receipts {
                for chunk in ids.chunks(500) {
                    let payload = serde_json::to_vec(&Receipt { ids: chunk.to_vec() }).unwrap_or_default();
                    match self
                        .client
                        .publish(yingji_proto::topic::node_receipt(&node), QoS::AtLeastOnce, false, payload)
                        .await
                    {
                        Ok(()) => {
                            self.metrics.receipts_sent.inc();
                        }
                        Err(e) => {
                            warn!(error = %e, node, "could not send a receipt; the node will resend and be receipted then")
                        }
                    }
                }
            }
            for item in outcome.stream {
                let _ = self.stream.send(Arc::from(item.to_string()));
            }
        }
        debug!("intake stopped");
    }

    async fn commit(&self, batch: &[Publish]) -> Result<Outcome, StoreError> {
        let now_ms = Utc::now().timestamp_millis();
        let items: Vec<Item> = batch.iter().map(|p| self.parse(p)).collect();
        let mut outcome = Outcome::default();
        let mut events: Vec<NewEvent> = Vec::new();
        let mut parsed: BTreeMap<String, &Event> = BTreeMap::new();
        for item in &items {
            if let Item::Event(e) = item {
                outcome.receipts.entry(e.node.clone()).or_default().push(e.id.clone());
                self.metrics.events_received.get_or_create(&Metrics::kind(&kind_name(e))).inc();
                if parsed.insert(e.id.clone(), e).is_some() {
                    // Delivered twice within this batch.
                    self.metrics.events_duplicate.inc();
                } else {
                    events.push(NewEvent {
                        id: e.id.clone(),
                        node: e.node.clone(),
                        kind: kind_name(e),
                        at_ms: e.at.timestamp_millis(),
                        exercise: e.exercise,
                        region: e.region.clone(),
                        incident: e.incident.clone(),
                        body: e.body.to_string(),
                    });
                }
            }
        }
        // One order for every hub process: concurrent transactions on PostgreSQL then lock the
        // same keys in the same order.
        events.sort_by(|a, b| a.id.cmp(&b.id));
        let started = Instant::now();
        let mut tx = self.store.begin().await?;
        let new: HashSet<String> = tx.insert_events(&events, now_ms).await?.into_iter().collect();
        let mut subjects: BTreeSet<(Subject, bool)> = BTreeSet::new();
        let mut per_node: BTreeMap<&str, i64> = BTreeMap::new();
        let mut incident_regions: [Option<IncidentRegions>; 2] = [None, None];
        // Reports first, reduced to what counts: per (incident, exercise, region) only the
        // superseding report of the batch is upserted, and each incident is touched once.
        let mut latest: BTreeMap<(String, bool, String), ReportRow> = BTreeMap::new();
        let mut touched: BTreeMap<(String, bool), (String, i64, i64, i64)> = BTreeMap::new();
        let mut rest = Vec::new();
        for e in &events {
            let kind = Metrics::kind(&e.kind);
            if !new.contains(&e.id) {
                self.metrics.events_duplicate.inc();
                continue;
            }
            *per_node.entry(e.node.as_str()).or_default() += 1;
            self.metrics.events_new.get_or_create(&kind).inc();
            let Some(event) = parsed.get(&e.id) else { continue };
            outcome.stream.push(json!({"type": "event", "event": event}));
            match report_row(event) {
                Some(row) => {
                    let t = touched
                        .entry((row.incident.clone(), row.exercise))
                        .or_insert_with(|| (row.hazard.clone(), row.observed_ms, row.observed_ms, 0));
                    t.1 = t.1.min(row.observed_ms);
                    t.2 = t.2.max(row.observed_ms);
                    t.3 += 1;
                    let key = (row.incident.clone(), row.exercise, row.region.clone());
                    match latest.get(&key) {
                        Some(current)
                            if (current.observed_ms, &current.report_id, &current.device)
                                >= (row.observed_ms, &row.report_id, &row.device) => {}
                        _ => {
                            latest.insert(key, row);
                        }
                    }
                }
                None => rest.push(*event),
            }
        }
        for ((incident, exercise), (hazard, first, last, count)) in &touched {
            tx.touch_incident(incident, *exercise, hazard, *first, *last, *count).await?;
            subjects.insert((Subject::Incident(incident.clone()), *exercise));
        }
        for row in latest.values() {
            tx.upsert_report(row).await?;
        }
        for event in rest {
            self.apply(&mut tx, event, &mut subjects, &mut incident_regions, &mut outcome, now_ms).await?;
        }
        for (node, count) in per_node {
            tx.node_seen(node, count, now_ms).await?;
        }
        for item in &items {
            if let Item::Status { node, status } = item {
                tx.node_status(
                    node,
                    status.online,
                    status.at.timestamp_millis(),
                    status.version.as_deref(),
                    status.outbox.map(|o| o as i64),
                    status.outbox_oldest_s,
                    now_ms,
                )
                .await?;
                outcome.stream.push(json!({"type": "node", "node": node, "status": status}));
            }
        }
        for item in &items {
            if let Item::Ack { node, ack } = item {
                outcome.receipts.entry(node.clone()).or_default().push(ack.relay_id.clone());
                match crate::dispatch::apply_ack(
                    &mut tx,
                    &ack.ack,
                    &self.regions,
                    &self.dispatch.neighbours,
                    &self.dispatch.settings,
                    now_ms,
                )
                .await?
                {
                    Ok(Some(o)) => outcome.stream.push(o.stream),
                    Ok(None) => {
                        self.metrics.events_duplicate.inc();
                    }
                    Err(reason) => {
                        self.metrics.refused.get_or_create(&Metrics::reason("ack_order")).inc();
                        warn!(node, ack = %ack.ack.id, reason, "an acknowledgement was refused; it is receipted and dropped");
                    }
                }
            }
        }
        let rules = self.rules.current();
        for (subject, exercise) in &subjects {
            let trigger = events.iter().rev().find(|e| new.contains(&e.id)).map(|e| e.id.as_str());
            if let Some(change) = assess::judge(
                &mut tx,
                subject,
                *exercise,
                &rules,
                &self.regions,
                &self.cap,
                &self.dispatch,
                now_ms,
                trigger,
            )
            .await?
            {
                self.metrics.assessments.inc();
                self.metrics.rule_errors.inc_by(change.rule_errors);
                if change.cap.is_some() {
                    self.metrics.cap_alerts.inc();
                }
                outcome.stream.push(json!({"type": "assessment", "assessment": change.summary}));
            }
        }
        tx.commit().await?;
        self.metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
        self.metrics.batch_size.observe(events.len() as f64);
        Ok(outcome)
    }

    /// Applies one new event to the picture, noting the subjects whose level must be judged.
    async fn apply(
        &self,
        tx: &mut Tx,
        event: &Event,
        subjects: &mut BTreeSet<(Subject, bool)>,
        incident_regions: &mut [Option<IncidentRegions>; 2],
        outcome: &mut Outcome,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let body = &event.body;
        let str_of = |k: &str| body.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        match kind_name(event).as_str() {
            "warning" if body.get("type").and_then(|v| v.as_str()) == Some("dispatch_refused") => {
                // A node refused an order (bad signature, unknown key…): officers must know.
                warn!(node = %event.node, order = ?body.get("order"), code = ?body.get("code"),
                    "a node refused a dispatch order; check the hub key the node trusts");
                tx.audit(
                    &crate::store::NewAudit {
                        who: &event.node,
                        role: "node",
                        action: "dispatch_refused",
                        target: body.get("order").and_then(|v| v.as_str()).unwrap_or("-"),
                        remote: "mqtt",
                        detail: body.clone(),
                    },
                    now_ms,
                )
                .await?;
                outcome.stream.push(json!({"type": "dispatch_refused", "node": event.node, "body": body}));
            }
            "warning" => {
                let Some(key) = crate::picture::warning_key(&event.node, event.incident.as_deref(), body) else {
                    return Ok(());
                };
                let slot = &mut incident_regions[usize::from(event.exercise)];
                if slot.is_none() {
                    *slot = Some(tx.incident_regions(event.exercise).await?);
                }
                let incident = event.incident.clone().or_else(|| {
                    crate::picture::incident_for_warning(
                        &event.region,
                        &key.kind,
                        slot.as_deref().unwrap_or_default(),
                        &self.regions,
                    )
                });
                let update = WarningUpdate {
                    key: key.key.clone(),
                    exercise: event.exercise,
                    node: event.node.clone(),
                    kind: key.kind.clone(),
                    station: key.station.clone(),
                    region: event.region.clone(),
                    incident: incident.clone(),
                    colour: key.colour.clone(),
                    value: key.value,
                    threshold: key.threshold,
                    at_ms: event.at.timestamp_millis(),
                    event_id: event.id.clone(),
                    body: body.to_string(),
                };
                let before = tx.warning(&key.key, event.exercise).await?;
                if tx.upsert_warning(&update).await? {
                    if let Some(cap) =
                        crate::alerts::warning_alert(&self.cap, tx, &update, before.as_ref(), now_ms).await?
                    {
                        tx.set_warning_cap(&key.key, event.exercise, &cap).await?;
                        self.metrics.cap_alerts.inc();
                        outcome.stream.push(json!({"type": "cap", "identifier": cap}));
                    }
                    let subject = match incident {
                        Some(i) => Subject::Incident(i),
                        None => Subject::Region(crate::picture::province_of(&self.regions, &event.region)),
                    };
                    subjects.insert((subject, event.exercise));
                }
            }
            "device" => {
                let station = str_of("station");
                if !station.is_empty() {
                    let online = body.get("online").and_then(|v| v.as_bool()).unwrap_or(false);
                    tx.station(
                        &event.node,
                        &station,
                        &event.region,
                        online,
                        event.at.timestamp_millis(),
                        &body.to_string(),
                    )
                    .await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn parse(&self, publish: &Publish) -> Item {
        let topic: &str = &publish.topic;
        let parts: Vec<&str> = topic.split('/').collect();
        let refuse = |reason: &str, detail: String| {
            self.metrics.refused.get_or_create(&Metrics::reason(reason)).inc();
            warn!(%topic, reason, detail, "refused a message from a node; it is acknowledged and dropped");
            Item::Refused
        };
        let (node, what) = match parts.as_slice() {
            ["yingji", "v1", "node", node, what] => (*node, *what),
            _ => return refuse("topic", "not yingji/v1/node/{node}/{event|status}".into()),
        };
        if publish.payload.len() > MAX_EVENT_BYTES {
            return refuse("too_large", format!("{} bytes", publish.payload.len()));
        }
        match what {
            "event" => match serde_json::from_slice::<Event>(&publish.payload) {
                Ok(e) if e.node != node => refuse("node_mismatch", format!("event names node {:?}", e.node)),
                Ok(e) if e.id.is_empty() || e.id.len() > 512 => refuse("bad_id", "an event id is 1..=512 bytes".into()),
                Ok(e) => Item::Event(e),
                Err(err) => refuse("bad_event", err.to_string()),
            },
            "ack" => match yingji_proto::dispatch::RelayedAck::parse(&publish.payload, Utc::now(), &Default::default())
            {
                Ok(ack) => Item::Ack { node: node.to_owned(), ack },
                Err(err) => refuse("bad_ack", format!("{}: {}", err.code.as_str(), err.reason)),
            },
            "status" if publish.payload.is_empty() => Item::Refused,
            "status" => match serde_json::from_slice::<NodeStatus>(&publish.payload) {
                Ok(status) => Item::Status { node: node.to_owned(), status },
                Err(err) => refuse("bad_status", err.to_string()),
            },
            _ => refuse("topic", format!("unexpected {what:?}")),
        }
    }
}

/// The statistics row of a report event; `None` for any other event (or a report without an
/// incident).
fn report_row(event: &Event) -> Option<ReportRow> {
    if event.kind != yingji_proto::event::EventKind::Report {
        return None;
    }
    let body = &event.body;
    let str_of = |k: &str| body.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    let incident =
        event.incident.clone().or_else(|| body.get("incident").and_then(|v| v.as_str()).map(str::to_owned))?;
    let observed_ms = chrono::DateTime::parse_from_rfc3339(&str_of("observed_at"))
        .map(|t| t.timestamp_millis())
        .unwrap_or_else(|_| event.at.timestamp_millis());
    Some(ReportRow {
        incident,
        exercise: event.exercise,
        region: if event.region.is_empty() { str_of("region") } else { event.region.clone() },
        node: event.node.clone(),
        device: str_of("device"),
        report_id: str_of("id"),
        observed_ms,
        stage: str_of("stage"),
        hazard: str_of("hazard"),
        figures: body.get("figures").map(|f| f.to_string()).unwrap_or_else(|| "{}".to_owned()),
    })
}

fn kind_name(e: &Event) -> String {
    serde_json::to_value(e.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}
