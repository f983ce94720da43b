//! Simulated rescue teams over MQTT, and the simulated duty officer.
//!
//! Teams listen where their node relays orders (`yingji/v1/dispatch/+` on the node's field
//! broker), verify every order's signature against the hub's published keys (a tampered or
//! unsigned order is refused: counted, logged, and not acted on), and then do what their
//! behaviour says: acknowledge after a delay, move, arrive and finish; or decline; or never
//! answer. A resent order is the same order: it gets the same answers again, never a second
//! plan. Acknowledgement ids are stable, so the hub sees duplicates as duplicates.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use ed25519_dalek::VerifyingKey;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use yingji_proto::dispatch::{AckStatus, DispatchOrder};

use crate::model::{TeamPlan, TeamSim};
use crate::platform::FieldBroker;

/// What the teams did, for the evaluation.
#[derive(Debug, Default)]
pub struct TeamCounts {
    pub orders: AtomicU64,
    pub duplicates: AtomicU64,
    pub refused: AtomicU64,
    pub accepted: AtomicU64,
    pub declined: AtomicU64,
    pub no_shows: AtomicU64,
    pub completed: AtomicU64,
}

/// The first time each order reached its team, and the time of each acknowledgement sent
/// (wall clock, Unix ms), by order id.
#[derive(Debug, Default, Clone)]
pub struct OrderTimes {
    pub received_ms: i64,
    pub accepted_ms: Option<i64>,
    pub declined_ms: Option<i64>,
}

/// The teams of every node.
pub struct Teams {
    pub counts: Arc<TeamCounts>,
    pub times: Arc<Mutex<BTreeMap<String, OrderTimes>>>,
    tasks: JoinSet<()>,
    stop: CancellationToken,
}

/// The hub's public keys, from its `/api/v1/keys`.
pub async fn hub_keys(hub_url: &str) -> anyhow::Result<Vec<VerifyingKey>> {
    let body: serde_json::Value = reqwest::get(format!("{hub_url}/api/v1/keys"))
        .await
        .context("asking the hub for its public keys")?
        .json()
        .await
        .context("the hub's /api/v1/keys is not JSON")?;
    let mut keys = Vec::new();
    for key in body["keys"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let text = key["public_key"].as_str().unwrap_or_default();
        keys.push(yingji_proto::sign::parse_public_key(text).map_err(|e| anyhow::anyhow!("hub key: {}", e.reason))?);
    }
    anyhow::ensure!(!keys.is_empty(), "the hub at {hub_url} publishes no signing key");
    Ok(keys)
}

struct Shared {
    teams: HashMap<String, TeamSim>,
    keys: Vec<VerifyingKey>,
    seed: u64,
    speed: f64,
    counts: Arc<TeamCounts>,
    times: Arc<Mutex<BTreeMap<String, OrderTimes>>>,
    /// Orders already planned (a resend is answered with what was sent before).
    planned: Mutex<HashMap<String, Vec<(AckStatus, i64)>>>,
}

impl Teams {
    /// Connects one listener per node and starts answering orders.
    pub async fn start(
        brokers: &BTreeMap<String, FieldBroker>,
        teams: &[TeamSim],
        keys: Vec<VerifyingKey>,
        seed: u64,
        speed: f64,
        run_id: &str,
    ) -> anyhow::Result<Teams> {
        let counts = Arc::new(TeamCounts::default());
        let times = Arc::new(Mutex::new(BTreeMap::new()));
        let shared = Arc::new(Shared {
            teams: teams.iter().map(|t| (t.id.clone(), t.clone())).collect(),
            keys,
            seed,
            speed: speed.max(1e-3),
            counts: counts.clone(),
            times: times.clone(),
            planned: Mutex::new(HashMap::new()),
        });
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        for (node, broker) in brokers {
            let client_id = format!("yingji-sim-{run_id}-teams-{node}");
            let mut options = MqttOptions::new(client_id, broker.url.host.clone(), broker.url.port);
            options.set_keep_alive(Duration::from_secs(30));
            options.set_clean_session(true);
            let (client, mut eventloop) = AsyncClient::new(options, 1024);
            let filter = broker.topic("yingji/v1/dispatch/+");
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
            let shared = shared.clone();
            let stop = stop.clone();
            let mount = broker.mount.clone();
            let answer = client.clone();
            tasks.spawn(async move {
                let mut ready = Some(ready_tx);
                loop {
                    let event = tokio::select! {
                        _ = stop.cancelled() => break,
                        e = eventloop.poll() => e,
                    };
                    match event {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            if let Err(e) = answer.subscribe(filter.clone(), QoS::AtLeastOnce).await {
                                warn!(error = %e, "teams could not subscribe");
                            }
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            if let Some(r) = ready.take() {
                                let _ = r.send(Ok(()));
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            on_order(&shared, &answer, &mount, &p.topic, &p.payload, &stop);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            if let Some(r) = ready.take() {
                                let _ = r.send(Err(e.to_string()));
                                break;
                            }
                            warn!(error = %e, "teams lost their connection; reconnecting");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
            });
            match tokio::time::timeout(Duration::from_secs(20), ready_rx).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => anyhow::bail!("the teams of {node} cannot connect: {e}"),
                _ => anyhow::bail!("the teams of {node} got no subscription from their broker"),
            }
        }
        Ok(Teams { counts, times, tasks, stop })
    }

    /// Stops answering.
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

fn on_order(
    shared: &Arc<Shared>,
    client: &AsyncClient,
    mount: &str,
    topic: &str,
    payload: &[u8],
    stop: &CancellationToken,
) {
    let team_id = topic.rsplit('/').next().unwrap_or_default().to_owned();
    let order = match yingji_proto::sign::verify_order(
        payload,
        &shared.keys,
        Utc::now(),
        &yingji_proto::Limits::default(),
    ) {
        Ok(o) if o.team == team_id => o,
        Ok(o) => {
            shared.counts.refused.fetch_add(1, Ordering::Relaxed);
            warn!(order = %o.id, team = %team_id, "refused an order addressed to another team");
            return;
        }
        Err(e) => {
            shared.counts.refused.fetch_add(1, Ordering::Relaxed);
            warn!(team = %team_id, code = e.code.as_str(), reason = %e.reason, "refused an order that does not verify");
            return;
        }
    };
    let Some(team) = shared.teams.get(&order.team) else {
        warn!(order = %order.id, team = %order.team, "an order for a team this drill does not have");
        return;
    };
    let now_ms = Utc::now().timestamp_millis();
    let mut planned = shared.planned.lock().unwrap_or_else(|e| e.into_inner());
    let steps = if let Some(steps) = planned.get(&order.id) {
        shared.counts.duplicates.fetch_add(1, Ordering::Relaxed);
        // A resend: answer again what was already due (same ids), nothing new.
        steps.iter().filter(|(_, at)| *at <= now_ms).map(|(s, _)| (*s, 0)).collect::<Vec<_>>()
    } else {
        shared.counts.orders.fetch_add(1, Ordering::Relaxed);
        shared
            .times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(order.id.clone(), OrderTimes { received_ms: now_ms, ..OrderTimes::default() });
        let plan = team.respond_to(&order.id, shared.seed, Some(destination(&order)));
        let wall = |scenario_s: f64| ((scenario_s.max(0.0) / shared.speed) * 1000.0) as i64;
        let steps: Vec<(AckStatus, i64)> = match &plan {
            TeamPlan::NoShow => {
                shared.counts.no_shows.fetch_add(1, Ordering::Relaxed);
                Vec::new()
            }
            TeamPlan::Decline { after_s, .. } => {
                shared.counts.declined.fetch_add(1, Ordering::Relaxed);
                vec![(AckStatus::Received, 0), (AckStatus::Declined, wall(*after_s))]
            }
            TeamPlan::Accept { ack_after_s, arrive_after_s, done_after_s } => {
                shared.counts.accepted.fetch_add(1, Ordering::Relaxed);
                let accept = wall(*ack_after_s);
                vec![
                    (AckStatus::Received, 0),
                    (AckStatus::Accepted, accept),
                    (AckStatus::EnRoute, accept + 1),
                    (AckStatus::OnScene, wall(*arrive_after_s).max(accept + 2)),
                    (AckStatus::Completed, wall(*done_after_s).max(accept + 3)),
                ]
            }
        };
        info!(order = %order.id, team = %order.team, plan = ?plan, "order received");
        planned.insert(order.id.clone(), steps.iter().map(|(s, d)| (*s, now_ms + d)).collect());
        steps
    };
    drop(planned);
    let note = match team.respond_to(&order.id, shared.seed, Some(destination(&order))) {
        TeamPlan::Decline { reason, .. } => Some(reason),
        _ => None,
    };
    for (status, delay_ms) in steps {
        let ack = ack_payload(&order, status, note.as_deref().filter(|_| status == AckStatus::Declined));
        let topic = format!("{mount}yingji/v1/ack/{}", order.team);
        let client = client.clone();
        let stop = stop.clone();
        let shared = shared.clone();
        let order_id = order.id.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(delay_ms.max(0) as u64)) => {}
            }
            if let Err(e) = client.publish(topic, QoS::AtLeastOnce, false, ack).await {
                warn!(error = %e, order = %order_id, "could not send an acknowledgement");
                return;
            }
            let mut times = shared.times.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(t) = times.get_mut(&order_id) {
                let now = Utc::now().timestamp_millis();
                match status {
                    AckStatus::Accepted => {
                        t.accepted_ms.get_or_insert(now);
                    }
                    AckStatus::Declined => {
                        t.declined_ms.get_or_insert(now);
                    }
                    AckStatus::Completed => {
                        shared.counts.completed.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        });
    }
}

fn destination(order: &DispatchOrder) -> crate::hazard::LatLon {
    crate::hazard::LatLon { lat: order.destination.lat, lon: order.destination.lon }
}

/// An acknowledgement of `order` with a stable id (a resend is a duplicate, not a new ack).
fn ack_payload(order: &DispatchOrder, status: AckStatus, note: Option<&str>) -> Vec<u8> {
    let status_text = serde_json::to_value(status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let mut ack = serde_json::json!({
        "id": format!("{}-{}", order.id, status_text),
        "dispatch": order.id,
        "team": order.team,
        "status": status_text,
        "at": Utc::now().to_rfc3339(),
    });
    if let Some(note) = note {
        ack["note"] = serde_json::Value::String(note.to_owned());
    }
    serde_json::to_vec(&ack).unwrap_or_default()
}

/// The simulated duty officer: approves every pending drill proposal after `delay`, through the
/// hub's API, as an officer at a console would.
pub async fn officer(hub_url: String, token: String, delay: Duration, stop: CancellationToken) {
    let client = reqwest::Client::new();
    let mut seen: HashMap<String, tokio::time::Instant> = HashMap::new();
    // Proposals the hub would not approve (no team left, already decided): not asked again.
    let mut refused: std::collections::HashSet<String> = std::collections::HashSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let Ok(response) = client
            .get(format!("{hub_url}/api/v1/proposals?status=proposed&limit=1000"))
            .bearer_auth(&token)
            .send()
            .await
        else {
            continue;
        };
        let Ok(body) = response.json::<serde_json::Value>().await else { continue };
        let now = tokio::time::Instant::now();
        for p in body["items"].as_array().map(Vec::as_slice).unwrap_or_default() {
            if p["exercise"] != true {
                continue; // the simulated officer never touches real proposals
            }
            let Some(id) = p["id"].as_str() else { continue };
            if refused.contains(id) {
                continue;
            }
            let first = *seen.entry(id.to_owned()).or_insert(now);
            if now.duration_since(first) < delay {
                continue;
            }
            match client.post(format!("{hub_url}/api/v1/proposals/{id}/approve")).bearer_auth(&token).send().await {
                Ok(r) if r.status().is_success() => info!(proposal = id, "the simulated officer approved a proposal"),
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    warn!(proposal = id, %status, reason = %text, "the hub refused the simulated officer's approval; it stays for a person to decide");
                    refused.insert(id.to_owned());
                }
                Err(e) => warn!(proposal = id, error = %e, "could not approve a proposal"),
            }
        }
    }
}
