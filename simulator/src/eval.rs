//! The after-action evaluation: what the platform shows against what the simulator knows.
//!
//! [`Watcher`] follows the hub's event stream during the drill (when each report and warning
//! became visible at the hub); [`evaluate`] reads the hub's API at the end and compares it with
//! the model's [`Truth`]. The comparison itself ([`compare_statistics`], [`Dist`]) is pure.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::truth::Truth;

/// A distribution summary (nearest-rank percentiles).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    pub n: usize,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl Dist {
    pub fn of(values: &[f64]) -> Dist {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| -> Option<f64> {
            if v.is_empty() {
                return None;
            }
            let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            Some(v[i])
        };
        Dist { n: v.len(), p50: rank(0.50), p95: rank(0.95), p99: rank(0.99), max: v.last().copied() }
    }
}

/// One indicator of one division that differs from the truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mismatch {
    pub incident: String,
    pub division: String,
    pub indicator: String,
    pub expected: Option<i64>,
    pub got: Option<i64>,
}

/// One division's figures, expected and served.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DivisionRow {
    pub incident: String,
    pub division: String,
    pub name: String,
    pub expected: BTreeMap<String, i64>,
    pub got: BTreeMap<String, i64>,
    pub equal: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Statistics {
    pub passed: bool,
    pub divisions: usize,
    pub indicators: usize,
    pub mismatches: Vec<Mismatch>,
    pub rows: Vec<DivisionRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WarningRow {
    pub station: String,
    pub metric: String,
    pub expected_s: Option<f64>,
    pub raised_s: Option<f64>,
    pub late_s: Option<f64>,
    pub colour: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Warnings {
    /// (station, colour) pairs the readings should raise.
    pub expected: usize,
    /// (station, colour) pairs the hub carried.
    pub raised: usize,
    pub matched: usize,
    pub missed: Vec<String>,
    pub unexpected: Vec<String>,
    /// How late each expected warning became visible at the hub, in scenario seconds.
    pub late_s: Dist,
    pub rows: Vec<WarningRow>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Response {
    /// From a report being published to the level change it triggered at the hub, wall seconds.
    pub report_to_assessment_s: Dist,
    /// From an incident's first report to each of its orders being issued, wall seconds.
    pub report_to_order_s: Dist,
    /// From an order being issued to its team's first acknowledgement, wall seconds.
    pub order_to_ack_s: Dist,
    /// From an incident's first report to each acknowledgement, wall seconds.
    pub report_to_ack_s: Dist,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Orders {
    pub issued: usize,
    pub acknowledged: usize,
    pub accepted: usize,
    pub completed: usize,
    pub declined: usize,
    pub overdue: usize,
    pub escalated: usize,
    pub resent: usize,
    /// Orders neither acknowledged nor escalated at the end of the drill.
    pub unanswered: Vec<String>,
    /// Orders the simulated teams refused because their signature did not verify.
    pub refused_by_teams: u64,
    pub by_status: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Fleet {
    pub stations: usize,
    pub teams: usize,
    pub published: u64,
    pub reports: u64,
    pub readings: u64,
    pub statuses: u64,
    pub max_lag_ms: u64,
    pub rate_per_s: f64,
}

/// The after-action report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Evaluation {
    pub id: String,
    pub scenario: String,
    pub title: String,
    pub seed: u64,
    pub speed: f64,
    pub started_at: String,
    pub finished_at: String,
    pub wall_s: f64,
    /// True when the statistics match the truth exactly (the drill's exit status).
    pub passed: bool,
    pub statistics: Statistics,
    pub warnings: Warnings,
    pub response: Response,
    pub orders: Orders,
    /// Device to hub-visible latency of reports, milliseconds.
    pub report_latency_ms: Dist,
    pub fleet: Fleet,
    /// Levels the hub assessed, per subject: (scenario seconds, level) steps, for the chart.
    pub levels: BTreeMap<String, Vec<(f64, Option<u8>)>>,
    /// Reports visible at the hub per scenario minute, for the chart.
    pub reports_per_minute: Vec<(f64, u64)>,
}

/// Compares the truth's figures with the hub's, indicator by indicator. `served` maps
/// (incident, division) to the hub's totals as JSON.
pub fn compare_statistics(truth: &Truth, served: &BTreeMap<(String, String), (String, Value)>) -> Statistics {
    let mut stats = Statistics::default();
    for ((incident, division), expected) in truth_figures(truth) {
        let expected = to_map(&expected);
        let (name, got) = match served.get(&(incident.clone(), division.clone())) {
            Some((name, totals)) => (name.clone(), to_map(totals)),
            None => (String::new(), BTreeMap::new()),
        };
        let mut equal = true;
        let mut keys: Vec<&String> = expected.keys().chain(got.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            stats.indicators += 1;
            let (e, g) = (expected.get(key).copied(), got.get(key).copied());
            if e != g {
                equal = false;
                stats.mismatches.push(Mismatch {
                    incident: incident.clone(),
                    division: division.clone(),
                    indicator: key.clone(),
                    expected: e,
                    got: g,
                });
            }
        }
        stats.divisions += 1;
        stats.rows.push(DivisionRow { incident, division, name, expected, got, equal });
    }
    stats.passed = stats.mismatches.is_empty() && stats.divisions > 0;
    stats
}

/// The truth's figures by (incident, division).
pub fn truth_figures(truth: &Truth) -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for incident in &truth.incidents {
        for (division, figures) in &incident.divisions {
            out.insert((incident.id.clone(), division.clone()), serde_json::to_value(figures).unwrap_or_default());
        }
    }
    out
}

fn to_map(value: &Value) -> BTreeMap<String, i64> {
    value
        .as_object()
        .map(|o| o.iter().filter_map(|(k, v)| v.as_i64().map(|n| (k.clone(), n))).collect())
        .unwrap_or_default()
}

/// When things became visible at the hub, from its event stream (wall clock, Unix ms).
#[derive(Debug, Default)]
pub struct Seen {
    pub reports: HashMap<String, i64>,
    /// By (station, colour): the first time the hub carried that colour for that station.
    pub warnings: HashMap<(String, String), i64>,
    pub assessments: Vec<(i64, Value)>,
    pub events: u64,
}

/// Follows the hub's server-sent events for the whole drill.
pub struct Watcher {
    pub seen: Arc<Mutex<Seen>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    pub async fn start(hub_url: &str, token: &str) -> anyhow::Result<Watcher> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = CancellationToken::new();
        let response = reqwest::Client::new()
            .get(format!("{hub_url}/api/v1/stream"))
            .bearer_auth(token)
            .send()
            .await
            .context("opening the hub's event stream")?;
        anyhow::ensure!(response.status().is_success(), "the hub's event stream answered {}", response.status());
        let mut body = response.bytes_stream();
        let task = {
            let seen = seen.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut buffer = String::new();
                loop {
                    let chunk = tokio::select! {
                        _ = stop.cancelled() => break,
                        c = body.next() => c,
                    };
                    let Some(Ok(chunk)) = chunk else {
                        debug!("the hub's event stream ended");
                        break;
                    };
                    buffer.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(end) = buffer.find("\n\n") {
                        let message: String = buffer.drain(..end + 2).collect();
                        let now = chrono::Utc::now().timestamp_millis();
                        for line in message.lines() {
                            if let Some(data) = line.strip_prefix("data:")
                                && let Ok(value) = serde_json::from_str::<Value>(data.trim())
                            {
                                record(&seen, now, &value);
                            }
                        }
                    }
                }
            })
        };
        Ok(Watcher { seen, stop, task })
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

fn record(seen: &Mutex<Seen>, now: i64, value: &Value) {
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    match value["type"].as_str() {
        Some("event") => {
            seen.events += 1;
            let event = &value["event"];
            match event["kind"].as_str() {
                Some("report") => {
                    // Keyed as the fleet keys a report: `{device}:{report id}`.
                    if let (Some(device), Some(id)) = (event["body"]["device"].as_str(), event["body"]["id"].as_str()) {
                        seen.reports.entry(format!("{device}:{id}")).or_insert(now);
                    }
                }
                Some("warning") => {
                    if let (Some(station), Some(colour)) =
                        (event["body"]["station"].as_str(), event["body"]["to"].as_str())
                    {
                        seen.warnings.entry((station.to_owned(), colour.to_owned())).or_insert(now);
                    }
                }
                _ => {}
            }
        }
        Some("assessment") => seen.assessments.push((now, value["assessment"].clone())),
        _ => {}
    }
}

/// A GET of the hub's API, as JSON.
pub async fn get(client: &reqwest::Client, hub_url: &str, token: &str, path: &str) -> anyhow::Result<Value> {
    let response = client
        .get(format!("{hub_url}{path}"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .with_context(|| format!("GET {path}"))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(Value::Null);
    }
    let text = response.text().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "GET {path}: {status} {text}");
    serde_json::from_str(&text).with_context(|| format!("GET {path}: not JSON"))
}

/// The hub's statistics for every (incident, division) the truth has.
pub async fn served_statistics(
    client: &reqwest::Client,
    hub_url: &str,
    token: &str,
    truth: &Truth,
) -> anyhow::Result<BTreeMap<(String, String), (String, Value)>> {
    let mut served = BTreeMap::new();
    for (incident, division) in truth_figures(truth).into_keys() {
        let path = format!("/api/v1/stats?incident={incident}&exercise=true&region={division}");
        let body = get(client, hub_url, token, &path).await?;
        if body.is_null() {
            continue;
        }
        let name = body["division"]["name"].as_str().unwrap_or_default().to_owned();
        served.insert((incident, division), (name, body["division"]["totals"].clone()));
    }
    Ok(served)
}

/// The orders of this drill, from the hub.
pub async fn orders(client: &reqwest::Client, hub_url: &str, token: &str) -> anyhow::Result<Vec<Value>> {
    let body = get(client, hub_url, token, "/api/v1/orders?limit=10000").await?;
    Ok(body["items"].as_array().cloned().unwrap_or_default().into_iter().filter(|o| o["exercise"] == true).collect())
}

/// Whether an order has been answered: acknowledged by its team, or escalated by the hub.
pub fn answered(order: &Value) -> bool {
    let status = order["status"].as_str().unwrap_or_default();
    matches!(status, "received" | "accepted" | "en_route" | "on_scene" | "completed" | "declined")
        || !order["escalated_to"].is_null()
}

/// Sums up the orders.
pub fn summarize_orders(orders: &[Value], refused_by_teams: u64) -> Orders {
    let mut out = Orders { issued: orders.len(), refused_by_teams, ..Orders::default() };
    for o in orders {
        let status = o["status"].as_str().unwrap_or_default().to_owned();
        *out.by_status.entry(status.clone()).or_default() += 1;
        match status.as_str() {
            "received" | "accepted" | "en_route" | "on_scene" | "completed" => out.acknowledged += 1,
            "declined" => {
                out.acknowledged += 1;
                out.declined += 1;
            }
            "overdue" => out.overdue += 1,
            _ => {}
        }
        if matches!(status.as_str(), "accepted" | "en_route" | "on_scene" | "completed") {
            out.accepted += 1;
        }
        if status == "completed" {
            out.completed += 1;
        }
        if !o["escalated_to"].is_null() {
            out.escalated += 1;
        }
        if o["resent"].as_i64().unwrap_or(0) > 0 {
            out.resent += 1;
        }
        if !answered(o) {
            out.unanswered.push(o["id"].as_str().unwrap_or_default().to_owned());
        }
    }
    out
}

/// Logs and returns an error as a warning (the evaluation goes on with what it has).
pub fn soft<T: Default>(what: &str, result: anyhow::Result<T>) -> T {
    result.unwrap_or_else(|e| {
        warn!(error = %format!("{e:#}"), "{what}");
        T::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let d = Dist::of(&(1..=100).map(f64::from).collect::<Vec<_>>());
        assert_eq!((d.n, d.p50, d.p95, d.p99, d.max), (100, Some(50.0), Some(95.0), Some(99.0), Some(100.0)));
        let d = Dist::of(&[3.0, f64::NAN, 1.0]);
        assert_eq!((d.n, d.p50, d.max), (2, Some(1.0), Some(3.0)));
        assert_eq!(Dist::of(&[]), Dist::default());
    }

    #[test]
    fn statistics_pass_only_when_every_indicator_of_every_division_is_equal() {
        use crate::truth::TruthIncident;
        let figures = |affected: i64, deaths: Option<i64>| yingji_proto::report::Figures {
            affected: Some(affected),
            deaths,
            ..Default::default()
        };
        let truth = Truth {
            incidents: vec![TruthIncident {
                id: "inc".into(),
                divisions: [("910101".to_owned(), figures(10, Some(1))), ("000000".to_owned(), figures(10, Some(1)))]
                    .into_iter()
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let served = |a: Value, b: Value| -> BTreeMap<(String, String), (String, Value)> {
            let mut m = BTreeMap::new();
            if !a.is_null() {
                m.insert(("inc".to_owned(), "910101".to_owned()), ("county".to_owned(), a));
            }
            m.insert(("inc".to_owned(), "000000".to_owned()), ("nation".to_owned(), b));
            m
        };
        let same = serde_json::json!({"affected": 10, "deaths": 1});
        let cases = [
            ("equal", served(same.clone(), same.clone()), 0),
            ("one figure off", served(serde_json::json!({"affected": 11, "deaths": 1}), same.clone()), 1),
            ("an indicator missing", served(serde_json::json!({"affected": 10}), same.clone()), 1),
            (
                "an extra indicator",
                served(same.clone(), serde_json::json!({"affected": 10, "deaths": 1, "missing": 0})),
                1,
            ),
            ("a division missing", served(Value::Null, same.clone()), 2),
        ];
        for (name, served, mismatches) in cases {
            let s = compare_statistics(&truth, &served);
            assert_eq!(s.mismatches.len(), mismatches, "{name}: {:?}", s.mismatches);
            assert_eq!(s.passed, mismatches == 0, "{name}");
            assert_eq!(s.divisions, 2, "{name}");
        }
        assert!(!compare_statistics(&Truth::default(), &BTreeMap::new()).passed, "nothing compared is no pass");
    }

    #[test]
    fn orders_are_answered_when_acknowledged_or_escalated() {
        let cases = [
            (serde_json::json!({"status": "issued", "escalated_to": null}), false),
            (serde_json::json!({"status": "overdue", "escalated_to": null}), false),
            (serde_json::json!({"status": "overdue", "escalated_to": "p-2"}), true),
            (serde_json::json!({"status": "received"}), true),
            (serde_json::json!({"status": "declined"}), true),
            (serde_json::json!({"status": "completed"}), true),
        ];
        for (order, want) in cases {
            assert_eq!(answered(&order), want, "{order}");
        }
        let orders: Vec<Value> = vec![
            serde_json::json!({"id": "a", "status": "completed", "resent": 0}),
            serde_json::json!({"id": "b", "status": "declined", "escalated_to": "p", "resent": 0}),
            serde_json::json!({"id": "c", "status": "issued", "resent": 1}),
        ];
        let s = summarize_orders(&orders, 2);
        assert_eq!((s.issued, s.acknowledged, s.completed, s.declined, s.escalated, s.resent), (3, 2, 1, 1, 1, 1));
        assert_eq!(s.unanswered, vec!["c".to_owned()]);
        assert_eq!(s.refused_by_teams, 2);
    }
}
