//! The node's watch over its stations and its reporting units: applies the pure cores
//! ([`crate::monitor`], [`crate::discipline`]) to what ingest stores and to the passing of
//! time, and turns what changes into summarized events (warnings, device online/offline,
//! overdue reports).
//!
//! The committer task owns the watch, so station states change in one place. A batch's
//! readings are observed once, before its transaction; the events they raise go into that
//! transaction, and a retried commit carries the same events again. States live in memory
//! and are rebuilt from the stored readings at start, so after a crash they match what was
//! committed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::json;
use yingji_proto::event::EventKind;

use crate::devices::Registry;
use crate::events::event;
use crate::monitor::{self, StationInfo, StationState, Thresholds, Transition};
use crate::regions::{self, Regions};
use crate::store::{NewReading, OutboxEvent};

/// What the API shows of a station.
#[derive(Debug, Clone, Serialize)]
pub struct StationView {
    pub station: String,
    pub online: bool,
    pub last_seen_us: Option<i64>,
    pub rain_colour: Option<monitor::Colour>,
    pub flood_colour: Option<monitor::Colour>,
    /// Rain sums (mm) over 1, 3, 6, 12 and 24 h.
    pub rain_mm: BTreeMap<u32, f64>,
    pub water_level_m: Option<f64>,
    pub rise_m_per_h: Option<f64>,
}

/// Station states, shared read-only with the API.
pub type Stations = Arc<Mutex<HashMap<String, StationState>>>;

pub struct Watch {
    pub node_id: String,
    pub thresholds: Thresholds,
    pub registry: Arc<Registry>,
    pub regions: Arc<Regions>,
    pub stations: Stations,
    /// Overdue-report events already raised (ids), so that each is raised once per run.
    raised_late: HashSet<String>,
}

impl Watch {
    pub fn new(node_id: String, thresholds: Thresholds, registry: Arc<Registry>, regions: Arc<Regions>) -> Watch {
        Watch {
            node_id,
            thresholds,
            registry,
            regions,
            stations: Arc::new(Mutex::new(HashMap::new())),
            raised_late: HashSet::new(),
        }
    }

    fn info(&self, device: &str) -> StationInfo {
        self.registry.get(device).map(StationInfo::from).unwrap_or(StationInfo {
            warning_level: None,
            guarantee_level: None,
            historic_max: None,
            interval_s: None,
        })
    }

    /// Whether `device` is a drill station (its events are exercise data).
    fn exercise(&self, device: &str) -> bool {
        self.registry.get(device).is_some_and(|d| d.exercise)
    }

    fn region(&self, device: &str) -> String {
        self.registry
            .get(device)
            .and_then(|d| d.region.clone().or_else(|| self.regions.locate(d.lat, d.lon).map(|r| r.code.clone())))
            .unwrap_or_else(|| regions::UNKNOWN.to_owned())
    }

    /// Rebuilds station states from the readings of the last day (after a restart).
    pub fn rebuild(&self, readings: &[(String, String, i64, f64)]) {
        let mut by_device: HashMap<&str, Vec<(&str, i64, f64)>> = HashMap::new();
        for (device, name, time_us, value) in readings {
            by_device.entry(device).or_default().push((name, *time_us, *value));
        }
        let rebuilt: HashMap<String, StationState> = by_device
            .into_iter()
            .map(|(device, rs)| (device.to_owned(), StationState::rebuild(rs, &self.info(device), &self.thresholds)))
            .collect();
        if let Ok(mut stations) = self.stations.lock() {
            *stations = rebuilt;
        }
    }

    /// Observes a batch's readings (in place) and returns the events they raise.
    pub fn observe(&self, readings: &[NewReading], now_ms: i64) -> Vec<OutboxEvent> {
        let mut events = Vec::new();
        let Ok(mut stations) = self.stations.lock() else { return events };
        // Readings of one device come together in a batch (a pack's records): look its registry
        // entry and its state up once per run.
        for run in readings.chunk_by(|a, b| a.device == b.device) {
            let device: &str = &run[0].device;
            let info = self.info(device);
            let state = match stations.get_mut(device) {
                Some(state) => state,
                None => stations.entry(device.to_owned()).or_default(),
            };
            for r in run {
                let value = r.value_num.unwrap_or(f64::NAN);
                for t in monitor::observe(state, &r.name, r.time_us, value, &info, &self.thresholds) {
                    events.push(self.transition_event(device, &t, r.time_us / 1000, now_ms));
                }
            }
        }
        events
    }

    /// Lets time pass for every station: windows slide, silent stations go offline.
    pub fn tick(&self, now_ms: i64) -> Vec<OutboxEvent> {
        let mut events = Vec::new();
        let Ok(mut stations) = self.stations.lock() else { return events };
        for (device, state) in stations.iter_mut() {
            for t in monitor::tick(state, now_ms * 1000, &self.info(device), &self.thresholds) {
                events.push(self.transition_event(device, &t, now_ms, now_ms));
            }
        }
        events
    }

    fn transition_event(&self, device: &str, t: &Transition, at_ms: i64, now_ms: i64) -> OutboxEvent {
        let region = self.region(device);
        match t {
            Transition::Warning { metric, from, to, value, threshold, episode, rise_m_per_h } => {
                let body = json!({
                    "station": device,
                    "metric": metric,
                    "from": from,
                    "to": to,
                    "colour": to,
                    "cleared": to.is_none(),
                    "value": value,
                    "threshold": threshold,
                    "episode": episode,
                    "rise_m_per_h": rise_m_per_h,
                    "observed_at": crate::events::at(at_ms).to_rfc3339(),
                });
                event(
                    &self.node_id,
                    format!("{}:warning:{}", self.node_id, uuid::Uuid::now_v7().simple()),
                    EventKind::Warning,
                    now_ms,
                    self.exercise(device),
                    &region,
                    None,
                    body,
                    None,
                )
            }
            Transition::Offline { .. } | Transition::Online => {
                let body = match t {
                    Transition::Offline { silent_for_s } => {
                        json!({"station": device, "online": false, "silent_for_s": silent_for_s})
                    }
                    _ => json!({"station": device, "online": true}),
                };
                event(
                    &self.node_id,
                    format!("{}:device:{}", self.node_id, uuid::Uuid::now_v7().simple()),
                    EventKind::Device,
                    now_ms,
                    self.exercise(device),
                    &region,
                    None,
                    body,
                    None,
                )
            }
        }
    }

    /// Overdue-report events for the duties that are late now and were not raised before.
    pub fn overdue(
        &mut self,
        incident: &str,
        exercise: bool,
        filings: &[crate::store::Filing],
        now_ms: i64,
    ) -> Vec<OutboxEvent> {
        let mut events = Vec::new();
        for duty in crate::discipline::from_filings(filings, now_ms) {
            for (which, d) in [("initial", &duty.initial), ("update", &duty.update)] {
                if let crate::discipline::Duty::Late { since_ms } = d {
                    let id =
                        format!("{}:overdue:{incident}:{exercise}:{}:{which}:{since_ms}", self.node_id, duty.division);
                    if !self.raised_late.insert(id.clone()) {
                        continue;
                    }
                    let body = json!({
                        "type": "report_overdue",
                        "division": duty.division,
                        "duty": which,
                        "due": crate::events::at(*since_ms).to_rfc3339(),
                    });
                    events.push(event(
                        &self.node_id,
                        id,
                        EventKind::Warning,
                        now_ms,
                        exercise,
                        &duty.division,
                        Some(incident),
                        body,
                        None,
                    ));
                }
            }
        }
        events
    }

    /// Every station as the API shows it.
    pub fn view(stations: &Stations) -> Vec<StationView> {
        let Ok(stations) = stations.lock() else { return Vec::new() };
        let mut out: Vec<StationView> = stations
            .iter()
            .map(|(id, s)| StationView {
                station: id.clone(),
                online: s.is_online(),
                last_seen_us: s.last_seen_us(),
                rain_colour: s.rain_colour(),
                flood_colour: s.flood_colour(),
                rain_mm: monitor::WINDOWS_H.iter().map(|w| (*w, s.rain_sum_mm(*w))).collect(),
                water_level_m: s.water_level().map(|(_, v)| v),
                rise_m_per_h: s.rise_m_per_h(),
            })
            .collect();
        out.sort_by(|a, b| a.station.cmp(&b.station));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Filing;

    #[test]
    fn events_of_drill_stations_are_exercise_data() {
        let csv = "id,kind,name,lat,lon,region,warning_level,guarantee_level,historic_max,interval_s,exercise\n\
                   real,rain_gauge,Real,28.0,120.6,330302,,,,,\n\
                   drill,rain_gauge,Drill,28.0,120.6,330302,,,,,true\n";
        let registry = Arc::new(Registry::from_csv(csv).expect("registry"));
        let watch = Watch::new("n1".into(), Thresholds::default(), registry, Arc::new(Regions::default()));
        let warning = Transition::Warning {
            metric: monitor::Metric::Rain { window_h: 1 },
            from: None,
            to: Some(monitor::Colour::Blue),
            value: 51.0,
            threshold: 50.0,
            episode: 1,
            rise_m_per_h: None,
        };
        for (device, exercise) in [("real", false), ("drill", true), ("unregistered", false)] {
            for t in [&warning, &Transition::Online] {
                let e: serde_json::Value =
                    serde_json::from_str(&watch.transition_event(device, t, 0, 0).payload).expect("json");
                assert_eq!(e["exercise"], exercise, "{device}: {e}");
            }
        }
    }

    #[test]
    fn an_overdue_daily_update_is_raised_once() {
        let mut watch =
            Watch::new("n1".into(), Thresholds::default(), Arc::new(Registry::default()), Arc::new(Regions::default()));
        let hour = 3_600_000;
        // 2026-09-14T00:00Z, 08:00 in Beijing.
        let start = 1_789_344_000_000;
        let filing = |region: &str, stage: &str, at: i64| Filing {
            region: region.into(),
            stage: stage.into(),
            received_at_ms: at,
            observed_at_ms: at,
        };
        // Both counties file their initial report at once; 330302 also its update on the 15th
        // before 09:00 Beijing time (01:00Z); 330303 never updates.
        let filings = [
            filing("330302", "initial", start),
            filing("330303", "initial", start),
            filing("330302", "update", start + 24 * hour),
        ];
        assert!(watch.overdue("inc", false, &filings, start + 3 * hour).is_empty(), "nothing due yet");
        // The 15th, 10:00 Beijing (02:00Z): 330303's first daily update is late.
        let now = start + 26 * hour;
        let events: Vec<serde_json::Value> = watch
            .overdue("inc", false, &filings, now)
            .iter()
            .map(|e| serde_json::from_str(&e.payload).unwrap_or_default())
            .collect();
        assert_eq!(events.len(), 1, "{events:#?}");
        let e = &events[0];
        assert_eq!((e["kind"].as_str(), e["region"].as_str()), (Some("warning"), Some("330303")));
        assert_eq!((e["body"]["type"].as_str(), e["body"]["duty"].as_str()), (Some("report_overdue"), Some("update")));
        assert_eq!(e["body"]["due"], "2026-09-15T01:00:00+00:00");
        assert!(watch.overdue("inc", false, &filings, now + 60_000).is_empty(), "raised once");
    }
}
