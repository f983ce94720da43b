//! The drill's world: every station, reporting unit and team of a scenario, and the messages
//! they publish over scenario time — deterministic from the seed, pure (no IO, no clock).
//!
//! [`World::advance`] hands out what devices and units publish in the next span of scenario
//! time, as contract v1 payloads with the topic and the node whose broker carries them;
//! [`World::truth`] is what the platform should make of it. [`TeamSim::respond`] says what a
//! team does with an order.
//!
//! All drill traffic is marked as exercise: reports with `"exercise": true` (contract v1 §3.3);
//! SenML packs with an `"exercise": true` label on their first record and status messages with
//! an `"exercise": true` member — contract v1 defines no flag for those two, and receivers
//! ignore labels and members they do not know, so the marks are valid v1 and cost nothing.

pub mod seed;
mod stations;
mod teams;
mod units;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeDelta, Utc};
use yingji_node::monitor::{Colour, Thresholds};
use yingji_proto::report::{FieldReport, Hazard};

pub use stations::{Env, StationKind, StationSim, StationState, Tick};
pub use teams::{Behaviour, DEFAULT_DISTANCE_KM, ROAD_FACTOR, TeamPlan, TeamSim};
pub use units::{PlannedReport, figures, plan, severity_series, within};

use crate::hazard::LatLon;
use crate::scenario::Scenario;
use crate::truth::{self, ExpectedOutage, ExpectedWarning, MessageCounts, ReportTruth, Truth, TruthIncident};

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutKind {
    /// A field report on `yingji/v1/report/{device}`.
    Report,
    /// A SenML pack on `yingji/v1/senml/{device}`.
    Reading,
    /// A device status on `yingji/v1/status/{device}`.
    Status,
}

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Scenario time, ms since the drill's start.
    pub at_ms: u64,
    /// The node whose regional broker carries it.
    pub node: String,
    /// The contract v1 field topic.
    pub topic: String,
    pub payload: Vec<u8>,
    pub kind: OutKind,
    /// A stable id, for latency tracking: `{device}:{report id}` for reports (the hub's report
    /// event id is `{node}:report:{device}:{report id}`), `{device}@{at_ms}` for readings,
    /// `{device}:status@{at_ms}` for status.
    pub key: String,
}

/// The time zone payload times are written in (Beijing time).
fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("+08:00 is a valid offset")
}

/// Writes `epoch + at_ms` as RFC 3339 in Beijing time.
fn rfc3339(epoch: DateTime<Utc>, at_ms: u64) -> String {
    let t = epoch + TimeDelta::milliseconds(at_ms as i64);
    let format = if t.timestamp_subsec_millis() == 0 { SecondsFormat::Secs } else { SecondsFormat::Millis };
    t.with_timezone(&beijing()).to_rfc3339_opts(format, false)
}

/// Writes `epoch + at_ms` as SenML seconds (exact to the millisecond).
fn senml_time(epoch: DateTime<Utc>, at_ms: u64) -> String {
    let ms = epoch.timestamp_millis() + at_ms as i64;
    let (s, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    if frac == 0 { s.to_string() } else { format!("{s}.{frac:03}") }
}

/// The drill's world.
#[derive(Debug)]
pub struct World {
    name: String,
    seed: u64,
    duration_ms: u64,
    node_ids: Vec<String>,
    incidents: Vec<(String, Hazard, Vec<String>)>,
    env: Env,
    stations: Vec<StationSim>,
    states: Vec<StationState>,
    reports: Vec<PlannedReport>,
    incident_ids: Vec<String>,
    next_report: usize,
    now_ms: u64,
    teams: Vec<TeamSim>,
    thresholds: Thresholds,
    truth: OnceLock<Truth>,
}

impl World {
    /// Builds the world of a scenario for a seed. Pure: the scenario holds everything read.
    pub fn new(scenario: &Scenario, seed: u64) -> anyhow::Result<World> {
        let env = Env::new(scenario);
        let mut stations = Vec::with_capacity(scenario.station_count());
        for (n, node) in scenario.nodes.iter().enumerate() {
            for device in &node.stations {
                let region = device
                    .region
                    .clone()
                    .filter(|r| !r.is_empty())
                    .or_else(|| {
                        scenario
                            .geography
                            .county_at(LatLon { lat: device.lat, lon: device.lon })
                            .map(|c| c.code.clone())
                    })
                    .unwrap_or_default();
                stations.push(StationSim::new(device, n, scenario, seed, region));
            }
        }
        let states = vec![StationState::default(); stations.len()];
        let reports = units::plan(scenario, &env, seed);
        let teams = scenario.team_records.iter().map(|t| TeamSim::new(t, &scenario.teams)).collect();
        let incidents = scenario
            .incidents
            .iter()
            .map(|i| {
                let kinds =
                    scenario.hazards.iter().filter(|h| h.incident() == i.id).map(|h| h.kind().to_owned()).collect();
                (i.id.clone(), i.hazard, kinds)
            })
            .collect();
        Ok(World {
            name: scenario.name.clone(),
            seed,
            duration_ms: scenario.duration_s * 1000,
            node_ids: scenario.nodes.iter().map(|n| n.id.clone()).collect(),
            incident_ids: scenario.incidents.iter().map(|i| i.id.clone()).collect(),
            incidents,
            env,
            stations,
            states,
            reports,
            next_report: 0,
            now_ms: 0,
            teams,
            thresholds: Thresholds::default(),
            truth: OnceLock::new(),
        })
    }

    /// The drill's length, scenario ms.
    pub fn duration_ms(&self) -> u64 {
        self.duration_ms
    }

    /// How many stations the fleet has.
    pub fn stations(&self) -> usize {
        self.stations.len()
    }

    /// The stations, in node order then id order.
    pub fn station_list(&self) -> &[StationSim] {
        &self.stations
    }

    /// The teams.
    pub fn teams(&self) -> &[TeamSim] {
        &self.teams
    }

    /// Every report units will file, in time order.
    pub fn planned_reports(&self) -> &[PlannedReport] {
        &self.reports
    }

    /// The seed the world was built with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Everything devices and reporting units publish in scenario time [previous call's
    /// `to_ms`, `to_ms`), sorted by `at_ms` then `key`. `epoch` is the wall-clock time of
    /// scenario time 0: payload times are `epoch + at_ms`. Nothing is published at or after
    /// the drill's end.
    pub fn advance(&mut self, to_ms: u64, epoch: DateTime<Utc>) -> Vec<Outgoing> {
        let to = to_ms.min(self.duration_ms);
        let mut out = Vec::new();
        if to <= self.now_ms {
            return out;
        }
        for (station, state) in self.stations.iter().zip(self.states.iter_mut()) {
            while station.tick_ms(state.next_k) < to {
                let tick = station.step(state, &self.env);
                let node = &self.node_ids[station.node];
                if let Some((online, battery)) = tick.status {
                    out.push(status_message(station, node, &tick, online, battery, epoch));
                }
                if !tick.records.is_empty() {
                    out.push(reading_message(station, node, &tick, epoch));
                }
            }
        }
        while let Some(report) = self.reports.get(self.next_report) {
            if report.at_ms >= to {
                break;
            }
            out.push(report_message(report, &self.node_ids, &self.incident_ids, &self.incidents, epoch));
            self.next_report += 1;
        }
        self.now_ms = to;
        out.sort_by(|a, b| (a.at_ms, &a.key).cmp(&(b.at_ms, &b.key)));
        out
    }

    /// The ground truth of the whole drill (valid at any time: it comes from the model's plan,
    /// not from what has been handed out so far).
    pub fn truth(&self) -> Truth {
        self.truth.get_or_init(|| self.compute_truth()).clone()
    }

    fn compute_truth(&self) -> Truth {
        let mut messages = MessageCounts::default();
        let mut incidents = Vec::new();
        for (i, (id, hazard, kinds)) in self.incidents.iter().enumerate() {
            let mut latest: BTreeMap<String, (truth::Figures, u64)> = BTreeMap::new();
            let mut reports = Vec::new();
            for r in self.reports.iter().filter(|r| r.incident == i) {
                // Reports are in time order and a unit's times increase: the last one stays.
                latest.insert(r.region.clone(), (r.figures, r.at_ms));
                reports.push(ReportTruth {
                    at_ms: r.at_ms,
                    unit: r.unit.clone(),
                    node: self.node_ids[r.node].clone(),
                    id: r.id.clone(),
                    region: r.region.clone(),
                    stage: r.stage.as_str().to_owned(),
                    figures: r.figures,
                });
            }
            let (divisions, reporting) = truth::roll_up(&latest);
            incidents.push(TruthIncident {
                id: id.clone(),
                hazard: hazard.as_str().to_owned(),
                hazards: kinds.clone(),
                divisions,
                reporting,
                divisions_reporting: latest.keys().cloned().collect(),
                first_report_ms: reports.first().map(|r| r.at_ms),
                reports,
            });
        }
        messages.reports = self.reports.len() as u64;

        let mut warnings = Vec::new();
        let mut outages = Vec::new();
        for station in &self.stations {
            let node = &self.node_ids[station.node];
            let mut state = StationState::default();
            let mut watch = WarningWatch::new(station, &self.thresholds);
            while station.tick_ms(state.next_k) < self.duration_ms {
                let tick = station.step(&mut state, &self.env);
                if tick.status.is_some() {
                    messages.statuses += 1;
                }
                if !tick.records.is_empty() {
                    messages.readings += 1;
                    messages.records += tick.records.len() as u64;
                }
                watch.observe(&tick);
            }
            for w in watch.found {
                warnings.push(ExpectedWarning { node: node.clone(), region: station.region.clone(), ..w });
            }
            if let Some((from_ms, to_ms)) = station.outage {
                let to_ms = to_ms.min(self.duration_ms);
                if from_ms < self.duration_ms {
                    outages.push(ExpectedOutage {
                        node: node.clone(),
                        station: station.id.clone(),
                        from_ms,
                        to_ms,
                        offline_expected: (to_ms - from_ms) as f64
                            > self.thresholds.offline_after_intervals * station.interval_ms as f64
                                + station.interval_ms as f64,
                    });
                }
            }
        }
        warnings.sort_by(|a, b| {
            (a.first_crossing_ms, &a.station, &a.colour).cmp(&(b.first_crossing_ms, &b.station, &b.colour))
        });
        let first = incidents.first();
        Truth {
            scenario: self.name.clone(),
            seed: self.seed,
            duration_ms: self.duration_ms,
            incident: first.map(|i| i.id.clone()).unwrap_or_default(),
            divisions: first.map(|i| i.divisions.clone()).unwrap_or_default(),
            incidents,
            warnings,
            outages,
            messages,
        }
    }
}

fn status_message(
    station: &StationSim,
    node: &str,
    tick: &Tick,
    online: bool,
    battery: f64,
    epoch: DateTime<Utc>,
) -> Outgoing {
    let payload = format!(
        r#"{{"online":{online},"battery":{battery},"at":"{}","device":"{}","exercise":true}}"#,
        rfc3339(epoch, tick.at_ms),
        station.id
    );
    Outgoing {
        at_ms: tick.at_ms,
        node: node.to_owned(),
        topic: format!("yingji/v1/status/{}", station.id),
        payload: payload.into_bytes(),
        kind: OutKind::Status,
        key: format!("{}:status@{}", station.id, tick.at_ms),
    }
}

fn reading_message(station: &StationSim, node: &str, tick: &Tick, epoch: DateTime<Utc>) -> Outgoing {
    let mut payload = String::with_capacity(160);
    payload.push('[');
    for (i, (name, unit, value)) in tick.records.iter().enumerate() {
        if i == 0 {
            let _ = write!(
                payload,
                r#"{{"bn":"urn:dev:yingji:{}:","bt":{},"exercise":true,"n":"{name}","u":"{unit}","v":{value}}}"#,
                station.id,
                senml_time(epoch, tick.at_ms)
            );
        } else {
            let _ = write!(payload, r#",{{"n":"{name}","u":"{unit}","v":{value}}}"#);
        }
    }
    payload.push(']');
    Outgoing {
        at_ms: tick.at_ms,
        node: node.to_owned(),
        topic: format!("yingji/v1/senml/{}", station.id),
        payload: payload.into_bytes(),
        kind: OutKind::Reading,
        key: format!("{}@{}", station.id, tick.at_ms),
    }
}

fn report_message(
    r: &PlannedReport,
    node_ids: &[String],
    incident_ids: &[String],
    incidents: &[(String, Hazard, Vec<String>)],
    epoch: DateTime<Utc>,
) -> Outgoing {
    let hazard = incidents.get(r.incident).map_or(yingji_proto::report::Hazard::Other, |i| i.1);
    let observed_at = (epoch + TimeDelta::milliseconds(r.at_ms as i64)).with_timezone(&beijing());
    let report = FieldReport {
        id: r.id.clone(),
        incident: incident_ids.get(r.incident).cloned().unwrap_or_default(),
        stage: r.stage,
        hazard,
        observed_at,
        location: yingji_proto::Location { lat: r.location.lat, lon: r.location.lon },
        region: Some(r.region.clone()),
        figures: r.figures,
        text: Some(r.text.clone()),
        exercise: true,
        device: Some(r.unit.clone()),
    };
    Outgoing {
        at_ms: r.at_ms,
        node: node_ids.get(r.node).cloned().unwrap_or_default(),
        topic: format!("yingji/v1/report/{}", r.unit),
        payload: serde_json::to_vec(&report).unwrap_or_default(),
        kind: OutKind::Report,
        key: format!("{}:{}", r.unit, r.id),
    }
}

/// The node's warning rules applied to one station's readings, independently of the node's
/// code: the first time each colour (or a higher one) holds.
struct WarningWatch<'a> {
    station: &'a StationSim,
    thresholds: &'a Thresholds,
    /// Rain samples (ms, tenths of mm) and running sums.
    times: Vec<u64>,
    prefix: Vec<u64>,
    found: Vec<ExpectedWarning>,
    reached: Option<Colour>,
}

impl<'a> WarningWatch<'a> {
    fn new(station: &'a StationSim, thresholds: &'a Thresholds) -> WarningWatch<'a> {
        WarningWatch { station, thresholds, times: Vec::new(), prefix: Vec::new(), found: Vec::new(), reached: None }
    }

    fn observe(&mut self, tick: &Tick) {
        if let Some(tenths) = tick.rain_tenths {
            self.times.push(tick.at_ms);
            let total = self.prefix.last().copied().unwrap_or(0) + tenths;
            self.prefix.push(total);
            // Holding rules: (colour, window, sum mm as the node computes it, threshold).
            let mut holding: Vec<(Colour, u32, f64, f64)> = Vec::new();
            for rule in &self.thresholds.rain {
                let window_ms = u64::from(rule.window_h) * 3_600_000;
                let start = tick.at_ms.saturating_sub(window_ms);
                // Samples in (t − w, t].
                let first = self.times.partition_point(|t| *t <= start && tick.at_ms >= window_ms);
                let before = if first == 0 { 0 } else { self.prefix[first - 1] };
                let sum_tenths = total - before;
                let sum_mm = (sum_tenths * 100_000) as f64 / 1e6;
                if sum_mm >= rule.mm {
                    holding.push((rule.colour, rule.window_h, sum_mm, rule.mm));
                }
            }
            self.record(&holding, tick.at_ms, "rain");
        }
        if let (Some(level), Some(warning)) = (tick.level_m, self.station.warning_level) {
            let mut holding: Vec<(Colour, u32, f64, f64)> = Vec::new();
            let blue = warning - self.thresholds.flood.blue_margin_m;
            if level >= blue {
                holding.push((Colour::Blue, 0, level, blue));
            }
            if level >= warning {
                holding.push((Colour::Yellow, 0, level, warning));
            }
            if let Some(g) = self.station.guarantee_level.filter(|g| level >= *g) {
                holding.push((Colour::Orange, 0, level, g));
            }
            if let Some(h) = self.station.historic_max.filter(|h| level >= *h) {
                holding.push((Colour::Red, 0, level, h));
            }
            self.record(&holding, tick.at_ms, "water_level");
        }
    }

    fn record(&mut self, holding: &[(Colour, u32, f64, f64)], at_ms: u64, metric: &str) {
        let Some(top) = holding.iter().map(|h| h.0).max() else { return };
        for colour in Colour::ALL {
            if colour > top || self.reached.is_some_and(|r| colour <= r) {
                continue;
            }
            // The rule of this colour that holds, else that of the colour shown.
            let rule = holding.iter().find(|h| h.0 == colour).or_else(|| holding.iter().find(|h| h.0 == top));
            let Some(&(_, window, value, threshold)) = rule else { continue };
            self.found.push(ExpectedWarning {
                node: String::new(),
                station: self.station.id.clone(),
                region: String::new(),
                metric: metric.to_owned(),
                window_h: (metric == "rain").then_some(window),
                colour: colour.as_str().to_owned(),
                first_crossing_ms: at_ms,
                value,
                threshold,
            });
        }
        self.reached = Some(self.reached.map_or(top, |r| r.max(top)));
    }
}
