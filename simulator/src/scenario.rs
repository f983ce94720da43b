//! The scenario file (TOML, documented field by field in docs/scenarios.md) and the files it
//! references: the geography, each node's regions and device registry, and the resource files.
//!
//! [`Scenario::load`] is the only function of the pure core that reads files; everything it
//! reads goes through [`Scenario::load_with`], so tests can give files from memory. Every error
//! names the file, and the line (TOML syntax and types) or the field (meaning) that is wrong.
//! Device registries are read with the node's own parser and team files with the hub's, so a
//! scenario that loads is one the node and the hub accept.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use yingji_hub::resources::{self, TeamRecord};
use yingji_node::devices::{Device, Registry};

use crate::geography::{Geography, Level};
use crate::hazard::{HazardSpec, LatLon, PlacedFlood};

/// A loaded scenario: its settings and the contents of the files it references.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Short name (file names, ids): `[a-z0-9_-]`.
    pub name: String,
    /// Title shown to people.
    pub title: String,
    pub description: String,
    /// The scenario file.
    pub path: PathBuf,
    /// The scenario file's directory: relative paths in the file start here.
    pub dir: PathBuf,
    /// Length of the drill in scenario seconds.
    pub duration_s: u64,
    /// A nominal wall-clock start (for a drill replayed at a fixed date); the caller may use
    /// any epoch.
    pub start: Option<DateTime<FixedOffset>>,
    /// The nodes of the drill, in file order.
    pub nodes: Vec<NodeSpec>,
    /// The whole geography (GeoJSON), for the hub's `--regions`.
    pub hub_regions: PathBuf,
    /// The incidents (disaster events) reports are filed under.
    pub incidents: Vec<IncidentSpec>,
    /// The hazards, in file order.
    pub hazards: Vec<HazardSpec>,
    /// Flood waves placed on their gauges (same order as the flood hazards).
    pub floods: Vec<PlacedFlood>,
    pub stations: StationParams,
    pub units: UnitParams,
    pub damage: DamageParams,
    pub teams: TeamParams,
    /// The divisions of `hub_regions`.
    pub geography: Geography,
    /// The teams, as the hub reads the teams file.
    pub team_records: Vec<TeamRecord>,
    resource_files: Vec<(String, PathBuf)>,
}

/// One node of the drill.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// The node id (`yingji-node --id`), `[A-Za-z0-9_.-]`.
    pub id: String,
    pub name: String,
    /// GeoJSON of the divisions this node covers (`yingji-node --regions`).
    pub regions: PathBuf,
    /// The node's device registry, CSV (`yingji-node --devices`).
    pub devices: PathBuf,
    /// Whether the reporting units of this node's counties report to it.
    pub units: bool,
    /// The codes of the divisions in `regions`.
    pub divisions: Vec<String>,
    /// The stations of `devices`, by id.
    pub stations: Vec<Device>,
}

/// An incident: the disaster event reports are filed under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentSpec {
    /// The incident id of contract v1 reports (a message id).
    pub id: String,
    /// The contract v1 hazard of its reports (`typhoon`, `flood`, `earthquake`, `hazmat`, …).
    pub hazard: yingji_proto::report::Hazard,
    /// A name for people.
    #[serde(default)]
    pub name: String,
}

fn d_interval() -> f64 {
    600.0
}
fn d_status() -> f64 {
    3600.0
}
fn d_outage_s() -> f64 {
    1800.0
}
fn d_rain_noise() -> f64 {
    0.15
}
fn d_wind_noise() -> f64 {
    0.08
}
fn d_level_noise() -> f64 {
    0.01
}

/// `[stations]`: how stations behave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationParams {
    /// Reporting interval of a station whose registry row gives no `interval_s`, seconds.
    #[serde(default = "d_interval")]
    pub default_interval_s: f64,
    /// How often a station sends its status (online, battery), seconds; 0: only at its start.
    #[serde(default = "d_status")]
    pub status_every_s: f64,
    /// Fraction of stations that go silent once during the drill.
    #[serde(default)]
    pub outage_fraction: f64,
    /// How long such an outage lasts, seconds.
    #[serde(default = "d_outage_s")]
    pub outage_s: f64,
    /// Relative noise of rain amounts (standard deviation).
    #[serde(default = "d_rain_noise")]
    pub rain_noise: f64,
    /// Relative noise of wind speeds.
    #[serde(default = "d_wind_noise")]
    pub wind_noise: f64,
    /// Noise of water levels, metres.
    #[serde(default = "d_level_noise")]
    pub level_noise_m: f64,
    /// River gauges (`water_level_gauge`): response to rain.
    #[serde(default = "LevelParams::gauge")]
    pub gauge: LevelParams,
    /// Reservoirs (`reservoir`): response to rain.
    #[serde(default = "LevelParams::reservoir")]
    pub reservoir: LevelParams,
}

impl Default for StationParams {
    fn default() -> Self {
        StationParams {
            default_interval_s: d_interval(),
            status_every_s: d_status(),
            outage_fraction: 0.0,
            outage_s: d_outage_s(),
            rain_noise: d_rain_noise(),
            wind_noise: d_wind_noise(),
            level_noise_m: d_level_noise(),
            gauge: LevelParams::gauge(),
            reservoir: LevelParams::reservoir(),
        }
    }
}

/// A water body's level as a linear reservoir: each tick the excess above normal decays by
/// `exp(−dt/τ)` and grows by `gain × rain`; flood waves add their rise on top.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelParams {
    /// Metres of rise per millimetre of rain at the station.
    pub gain_m_per_mm: f64,
    /// Time constant of the fall back to normal, hours.
    pub tau_h: f64,
    /// The normal level lies this far below the gauge's warning line, metres.
    pub normal_below_warning_m: f64,
}

impl LevelParams {
    fn gauge() -> LevelParams {
        LevelParams { gain_m_per_mm: 0.006, tau_h: 12.0, normal_below_warning_m: 1.5 }
    }
    fn reservoir() -> LevelParams {
        LevelParams { gain_m_per_mm: 0.012, tau_h: 72.0, normal_below_warning_m: 2.5 }
    }
}

fn d_min_severity() -> f64 {
    0.05
}
fn d_initial_after() -> [f64; 2] {
    [600.0, 1800.0]
}
fn d_update_every() -> f64 {
    1800.0
}

/// `[units]`: the reporting units (one per county of a node with `units = true`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitParams {
    /// Only counties inside these divisions have units (codes); empty: every county.
    #[serde(default)]
    pub within: Vec<String>,
    /// A unit reports once its county's severity reaches this (0..1).
    #[serde(default = "d_min_severity")]
    pub min_severity: f64,
    /// The initial report (初报) comes this long after the first impact, seconds [min, max].
    #[serde(default = "d_initial_after")]
    pub initial_after_s: [f64; 2],
    /// Updates (续报) follow every so often, seconds (±20 % per unit and report).
    #[serde(default = "d_update_every")]
    pub update_every_s: f64,
    /// When units file their final report (核报), seconds since the start; default: 10 minutes
    /// before the end. A unit adds up to 2 minutes of its own.
    #[serde(default)]
    pub final_at_s: Option<f64>,
}

impl Default for UnitParams {
    fn default() -> Self {
        UnitParams {
            within: Vec::new(),
            min_severity: d_min_severity(),
            initial_after_s: d_initial_after(),
            update_every_s: d_update_every(),
            final_at_s: None,
        }
    }
}

fn one() -> f64 {
    1.0
}

/// `[damage]`: scale factors over the built-in damage model (docs/scenarios.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DamageParams {
    /// Multiplies every indicator.
    #[serde(default = "one")]
    pub scale: f64,
    /// Multiplies deaths, missing and injured on top of `scale`.
    #[serde(default = "one")]
    pub casualties: f64,
}

impl Default for DamageParams {
    fn default() -> Self {
        DamageParams { scale: 1.0, casualties: 1.0 }
    }
}

fn d_accept() -> f64 {
    0.85
}
fn d_decline() -> f64 {
    0.10
}
fn d_no_show() -> f64 {
    0.05
}
fn d_ack() -> [f64; 2] {
    [20.0, 180.0]
}
fn d_muster() -> [f64; 2] {
    [300.0, 900.0]
}
fn d_speed() -> f64 {
    40.0
}
fn d_work() -> [f64; 2] {
    [1800.0, 3600.0]
}

/// `[teams]`: how rescue teams answer orders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamParams {
    /// The teams file (hub import format), relative to the scenario file.
    pub file: String,
    /// Relative weights of accepting, declining and not answering an order.
    #[serde(default = "d_accept")]
    pub accept: f64,
    #[serde(default = "d_decline")]
    pub decline: f64,
    #[serde(default = "d_no_show")]
    pub no_show: f64,
    /// Delay to acknowledge (accept or decline), seconds [min, max].
    #[serde(default = "d_ack")]
    pub ack_s: [f64; 2],
    /// Time to set off after accepting, seconds [min, max].
    #[serde(default = "d_muster")]
    pub muster_s: [f64; 2],
    /// Road speed, km/h (over 1.3 × the straight distance).
    #[serde(default = "d_speed")]
    pub speed_kmh: f64,
    /// Time on scene until the task is done, seconds [min, max].
    #[serde(default = "d_work")]
    pub work_s: [f64; 2],
    /// Teams whose answer is fixed, whatever the draw.
    #[serde(default, rename = "override")]
    pub overrides: Vec<TeamOverride>,
}

/// A team whose answer to every order is fixed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamOverride {
    pub id: String,
    /// `accept`, `decline` or `no_show`.
    pub always: Disposition,
}

/// What a team does with an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    Accept,
    Decline,
    NoShow,
}

/// `[resources]`: the hub's resource files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceFiles {
    #[serde(default)]
    stockpiles: Option<String>,
    #[serde(default)]
    hazards: Option<String>,
    #[serde(default)]
    targets: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: String,
    #[serde(default)]
    name: String,
    regions: String,
    devices: String,
    #[serde(default = "yes")]
    units: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    duration_s: u64,
    #[serde(default)]
    start: Option<String>,
    geography: String,
    #[serde(rename = "incident", default)]
    incidents: Vec<IncidentSpec>,
    #[serde(rename = "node")]
    nodes: Vec<RawNode>,
    #[serde(rename = "hazard", default)]
    hazards: Vec<HazardSpec>,
    #[serde(default)]
    stations: StationParams,
    #[serde(default)]
    units: UnitParams,
    #[serde(default)]
    damage: DamageParams,
    teams: TeamParams,
    #[serde(default)]
    resources: ResourceFiles,
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len())).map_or(1, |t| t.matches('\n').count() + 1)
}

impl Scenario {
    /// Reads a scenario file and every file it references.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        Scenario::load_with(path, &|p: &Path| {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
        })
    }

    /// [`Scenario::load`] with the files read by `read` (a path → its text).
    pub fn load_with(path: &Path, read: &dyn Fn(&Path) -> anyhow::Result<String>) -> anyhow::Result<Scenario> {
        let file = path.display().to_string();
        let text = read(path)?;
        let raw: RawScenario = toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| line_of(&text, s.start));
            match line {
                Some(line) => anyhow!("{file}:{line}: {}", e.message().trim()),
                None => anyhow!("{file}: {}", e.message().trim()),
            }
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let at = |field: &str, msg: String| anyhow!("{file}: {field}: {msg}");

        if raw.name.is_empty() || !raw.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(at("name", format!("{:?} must be a-z 0-9 - _ and not empty", raw.name)));
        }
        if raw.duration_s == 0 {
            return Err(at("duration_s", "must be above 0".into()));
        }
        let start = match &raw.start {
            Some(s) => {
                Some(DateTime::parse_from_rfc3339(s).map_err(|e| at("start", format!("{s:?} is not RFC 3339: {e}")))?)
            }
            None => None,
        };
        let hub_regions = dir.join(&raw.geography);
        let geography = Geography::from_geojson(&read(&hub_regions)?)
            .map_err(|e| at("geography", format!("{}: {e}", hub_regions.display())))?;
        for d in geography.divisions.values() {
            let want = match d.level {
                Level::Province => None,
                Level::Prefecture => Some(format!("{}0000", &d.code[..2])),
                Level::County => Some(format!("{}00", &d.code[..4])),
            };
            if d.parent != want {
                return Err(at(
                    "geography",
                    format!(
                        "{}: division {} has parent {:?}; the drill's truth needs parents that follow the code's shape ({want:?})",
                        hub_regions.display(),
                        d.code,
                        d.parent
                    ),
                ));
            }
        }

        // Incidents.
        let mut incident_ids = BTreeSet::new();
        for (i, incident) in raw.incidents.iter().enumerate() {
            yingji_proto::valid_id(&incident.id).map_err(|e| at(&format!("incident[{i}].id"), e.reason))?;
            if !incident_ids.insert(incident.id.clone()) {
                return Err(at(&format!("incident[{i}].id"), format!("{:?} appears twice", incident.id)));
            }
        }
        if raw.incidents.is_empty() {
            return Err(at("incident", "a scenario needs at least one [[incident]]".into()));
        }

        // Nodes and their stations.
        let mut nodes = Vec::new();
        let mut station_ids: BTreeMap<String, usize> = BTreeMap::new();
        for (i, node) in raw.nodes.iter().enumerate() {
            let field = |f: &str| format!("node[{i}].{f}");
            yingji_proto::topic::valid_device_id(&node.id).map_err(|e| at(&field("id"), e.reason))?;
            if nodes.iter().any(|n: &NodeSpec| n.id == node.id) {
                return Err(at(&field("id"), format!("node {:?} appears twice", node.id)));
            }
            let regions = dir.join(&node.regions);
            let covered = Geography::from_geojson(&read(&regions)?)
                .map_err(|e| at(&field("regions"), format!("{}: {e}", regions.display())))?;
            yingji_node::regions::Regions::from_geojson(&read(&regions)?)
                .map_err(|e| at(&field("regions"), format!("{}: the node refuses it: {e:#}", regions.display())))?;
            for code in covered.divisions.keys() {
                if geography.get(code).is_none() {
                    return Err(at(&field("regions"), format!("division {code} is not in the geography")));
                }
            }
            let devices = dir.join(&node.devices);
            let registry = Registry::from_csv(&read(&devices)?)
                .map_err(|e| at(&field("devices"), format!("{}: {e:#}", devices.display())))?;
            let mut stations: Vec<Device> = registry.iter().cloned().collect();
            stations.sort_by(|a, b| a.id.cmp(&b.id));
            for s in &stations {
                if let Some(other) = station_ids.insert(s.id.clone(), i) {
                    return Err(at(
                        &field("devices"),
                        format!(
                            "station {} is also in node[{other}]'s registry; ids are topic levels and must be unique",
                            s.id
                        ),
                    ));
                }
            }
            nodes.push(NodeSpec {
                id: node.id.clone(),
                name: if node.name.is_empty() { node.id.clone() } else { node.name.clone() },
                regions,
                devices,
                units: node.units,
                divisions: covered.divisions.keys().cloned().collect(),
                stations,
            });
        }
        if nodes.is_empty() {
            return Err(at("node", "a scenario needs at least one [[node]]".into()));
        }

        // Hazards.
        let position = |id: &str| -> Option<LatLon> {
            nodes.iter().flat_map(|n| n.stations.iter()).find(|s| s.id == id).map(|s| LatLon { lat: s.lat, lon: s.lon })
        };
        let mut floods = Vec::new();
        for (i, hazard) in raw.hazards.iter().enumerate() {
            if !incident_ids.contains(hazard.incident()) {
                return Err(at(
                    &format!("hazard[{i}].incident"),
                    format!("{:?} is not an [[incident]] of this scenario", hazard.incident()),
                ));
            }
            match hazard {
                HazardSpec::Typhoon(t) => {
                    if t.track.len() < 2 {
                        return Err(at(
                            &format!("hazard[{i}].track"),
                            "a typhoon needs two track points or more".into(),
                        ));
                    }
                    if t.track.windows(2).any(|w| w[1].t_s <= w[0].t_s) {
                        return Err(at(&format!("hazard[{i}].track"), "track times must increase".into()));
                    }
                }
                HazardSpec::Flood(f) => {
                    floods.push(PlacedFlood::place(f, position).map_err(|e| at(&format!("hazard[{i}].gauges"), e))?);
                }
                HazardSpec::Earthquake(q) => {
                    if !(0.0..=10.0).contains(&q.magnitude) {
                        return Err(at(
                            &format!("hazard[{i}].magnitude"),
                            format!("{} is outside 0..=10", q.magnitude),
                        ));
                    }
                }
                HazardSpec::ChemicalLeak(c) => {
                    if c.end_s < c.start_s {
                        return Err(at(&format!("hazard[{i}].end_s"), "the release ends before it starts".into()));
                    }
                }
            }
        }

        // Units.
        for code in &raw.units.within {
            if geography.get(code).is_none() {
                return Err(at("units.within", format!("division {code} is not in the geography")));
            }
        }
        if raw.units.initial_after_s[0] > raw.units.initial_after_s[1] || raw.units.update_every_s <= 0.0 {
            return Err(at("units", "initial_after_s must be [min, max] and update_every_s above 0".into()));
        }

        // Teams, read as the hub reads them.
        let teams_path = dir.join(&raw.teams.file);
        let locate =
            |lat: f64, lon: f64| geography.county_at(LatLon { lat, lon }).map(|c| format!("{}0000", &c.code[..2]));
        let team_records = match resources::parse(resources::Kind::Teams, "text/csv", &read(&teams_path)?, &locate) {
            Ok(resources::Records::Teams(t)) => t,
            Ok(_) => Vec::new(),
            Err(errors) => {
                let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
                return Err(at("teams.file", format!("{}: {}", teams_path.display(), list.join("; "))));
            }
        };
        for team in &team_records {
            if !nodes.iter().any(|n| n.id == team.node) {
                return Err(at(
                    "teams.file",
                    format!(
                        "{}: team {} names node {:?}, which is not a [[node]]",
                        teams_path.display(),
                        team.id,
                        team.node
                    ),
                ));
            }
        }
        for (i, o) in raw.teams.overrides.iter().enumerate() {
            if !team_records.iter().any(|t| t.id == o.id) {
                return Err(at(&format!("teams.override[{i}].id"), format!("{:?} is not in the teams file", o.id)));
            }
        }
        let weights = [raw.teams.accept, raw.teams.decline, raw.teams.no_show];
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) || weights.iter().sum::<f64>() <= 0.0 {
            return Err(at("teams", "accept, decline and no_show are weights of 0 or more, not all 0".into()));
        }

        let mut resource_files = vec![("teams".to_owned(), teams_path)];
        for (kind, file) in [
            ("stockpiles", &raw.resources.stockpiles),
            ("hazards", &raw.resources.hazards),
            ("targets", &raw.resources.targets),
        ] {
            if let Some(file) = file {
                let p = dir.join(file);
                let body = read(&p)?;
                let content_type = if file.ends_with("json") { "application/geo+json" } else { "text/csv" };
                let k = resources::Kind::parse(kind).ok_or_else(|| at("resources", format!("unknown kind {kind}")))?;
                if let Err(errors) = resources::parse(k, content_type, &body, &locate) {
                    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    return Err(at(&format!("resources.{kind}"), format!("{}: {}", p.display(), list.join("; "))));
                }
                resource_files.push((kind.to_owned(), p));
            }
        }

        Ok(Scenario {
            name: raw.name,
            title: raw.title,
            description: raw.description,
            path: path.to_path_buf(),
            dir,
            duration_s: raw.duration_s,
            start,
            nodes,
            hub_regions,
            incidents: raw.incidents,
            hazards: raw.hazards,
            floods,
            stations: raw.stations,
            units: raw.units,
            damage: raw.damage,
            teams: raw.teams,
            geography,
            team_records,
            resource_files,
        })
    }

    /// The resource files to import into the hub: (kind — `teams`, `stockpiles`, `hazards`,
    /// `targets` — and the file, CSV or GeoJSON in the hub's import format).
    pub fn resources(&self) -> Vec<(String, PathBuf)> {
        self.resource_files.clone()
    }

    /// Every station of every node.
    pub fn station_count(&self) -> usize {
        self.nodes.iter().map(|n| n.stations.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GEO: &str = r#"{"type":"FeatureCollection","features":[
      {"type":"Feature","properties":{"code":"910000","name":"P"},"geometry":{"type":"Polygon","coordinates":[[[120,25],[122,25],[122,27],[120,27],[120,25]]]}},
      {"type":"Feature","properties":{"code":"910100","name":"F","parent":"910000"},"geometry":{"type":"Polygon","coordinates":[[[120,25],[122,25],[122,27],[120,27],[120,25]]]}},
      {"type":"Feature","properties":{"code":"910101","name":"C1","parent":"910100","population":100000},"geometry":{"type":"Polygon","coordinates":[[[120,25],[121,25],[121,27],[120,27],[120,25]]]}},
      {"type":"Feature","properties":{"code":"910102","name":"C2","parent":"910100","population":200000},"geometry":{"type":"Polygon","coordinates":[[[121,25],[122,25],[122,27],[121,27],[121,25]]]}}
    ]}"#;
    const DEVICES: &str = "id,kind,name,lat,lon,region,warning_level,guarantee_level,historic_max,interval_s\n\
        rg-1,rain_gauge,R1,26,120.5,910101,,,,60\n\
        wl-1,water_level_gauge,W1,26,121.5,910102,5.0,6.0,7.0,60\n";
    const TEAMS: &str = "id,name,node,lat,lon,capabilities,size\nt-1,T1,n91,26,120.5,flood_rescue;evacuation,20\n";
    const SCENARIO: &str = r#"
name = "tiny"
title = "Tiny"
duration_s = 600
geography = "geo.geojson"

[[incident]]
id = "typhoon-1"
hazard = "typhoon"

[[node]]
id = "n91"
regions = "geo.geojson"
devices = "devices.csv"

[[hazard]]
kind = "typhoon"
incident = "typhoon-1"
track = [
  { t_s = 0, lat = 25.5, lon = 123.0, vmax_m_s = 40, rmw_km = 30 },
  { t_s = 600, lat = 26.0, lon = 121.0, vmax_m_s = 40, rmw_km = 30 },
]

[[hazard]]
kind = "flood"
incident = "typhoon-1"
gauges = ["wl-1"]
start_s = 0
peak_m = 2

[teams]
file = "teams.csv"
"#;

    fn files(overrides: &[(&str, &str)]) -> impl Fn(&Path) -> anyhow::Result<String> {
        let mut map: BTreeMap<String, String> = BTreeMap::from([
            ("s/tiny.toml".to_owned(), SCENARIO.to_owned()),
            ("s/geo.geojson".to_owned(), GEO.to_owned()),
            ("s/devices.csv".to_owned(), DEVICES.to_owned()),
            ("s/teams.csv".to_owned(), TEAMS.to_owned()),
        ]);
        for (k, v) in overrides {
            map.insert(format!("s/{k}"), (*v).to_owned());
        }
        move |p: &Path| {
            let key = p.to_string_lossy().replace('\\', "/");
            map.get(&key).cloned().ok_or_else(|| anyhow!("reading {key}: no such file"))
        }
    }

    #[test]
    fn loads_a_minimal_scenario() {
        let s = Scenario::load_with(Path::new("s/tiny.toml"), &files(&[])).expect("loads");
        assert_eq!((s.name.as_str(), s.duration_s, s.nodes.len(), s.station_count()), ("tiny", 600, 1, 2));
        assert_eq!(s.nodes[0].divisions, ["910000", "910100", "910101", "910102"]);
        assert_eq!(s.floods[0].gauges[0].0, "wl-1");
        assert_eq!(s.team_records[0].province, "910000");
        assert_eq!(s.resources(), [("teams".to_owned(), PathBuf::from("s/teams.csv"))]);
        assert_eq!(s.hub_regions, PathBuf::from("s/geo.geojson"));
    }

    #[test]
    fn errors_name_the_file_and_the_line_or_field() {
        let bad_gauge = SCENARIO.replace(r#"gauges = ["wl-1"]"#, r#"gauges = ["wl-9"]"#);
        let bad_incident = SCENARIO.replace("incident = \"typhoon-1\"\ntrack", "incident = \"nope\"\ntrack");
        let unknown_key = SCENARIO.replace("duration_s = 600", "duration_s = 600\nspeed = 60");
        let bad_type = SCENARIO.replace("duration_s = 600", "duration_s = \"long\"");
        let bad_hazard = SCENARIO.replace("kind = \"flood\"", "kind = \"tsunami\"");
        let bad_team = TEAMS.replace("n91", "n99");
        let bad_device = DEVICES.replace("26,120.5,910101", "95,120.5,910101");
        type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            ("unknown gauge", vec![("tiny.toml", &bad_gauge)], vec!["s/tiny.toml", "hazard[1].gauges", "wl-9"]),
            ("unknown incident", vec![("tiny.toml", &bad_incident)], vec!["hazard[0].incident", "nope"]),
            ("unknown key", vec![("tiny.toml", &unknown_key)], vec!["s/tiny.toml:5", "speed"]),
            ("wrong type", vec![("tiny.toml", &bad_type)], vec!["s/tiny.toml:4"]),
            ("unknown hazard kind", vec![("tiny.toml", &bad_hazard)], vec!["s/tiny.toml", "tsunami"]),
            ("team at an unknown node", vec![("teams.csv", &bad_team)], vec!["teams.file", "n99"]),
            ("bad device row", vec![("devices.csv", &bad_device)], vec!["node[0].devices", "s/devices.csv", "outside"]),
            ("missing file", vec![("geo.geojson", "")], vec!["geography"]),
        ];
        for (name, overrides, wants) in cases {
            let err = Scenario::load_with(Path::new("s/tiny.toml"), &files(&overrides)).expect_err(name);
            let text = format!("{err:#}");
            for want in wants {
                assert!(text.contains(want), "{name}: {text:?} lacks {want:?}");
            }
        }
    }
}
