//! Simulated stations: what each one measures at each of its ticks, from the hazard fields at
//! its location, its own response (water bodies fill and drain) and seeded noise.
//!
//! A station ticks at `phase + k · interval` (the phase, drawn per station, spreads a fleet's
//! traffic over the interval). Its state is the little it must remember between ticks — the
//! rain its tipping bucket has not yet counted and the water it holds above normal — so a tick
//! depends only on the station, the tick number and the previous tick's state: the same for
//! any slicing of time by the caller, and replayable for the ground truth.

use yingji_node::devices::Device;

use super::seed::{normal, sub_seed, tick_key, unit};
use crate::hazard::{self, LatLon};
use crate::scenario::{LevelParams, Scenario};

/// What a station is, by its registry `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StationKind {
    /// `rain_gauge`: `rain`.
    RainGauge,
    /// `weather_station`: `rain` and `wind_speed`.
    WeatherStation,
    /// `water_level_gauge`: `water_level`.
    RiverGauge,
    /// `reservoir`: `water_level`.
    Reservoir,
    /// `seismometer`: `intensity` and `pga`.
    Seismometer,
    /// `gas_detector`: `gas`.
    GasDetector,
    /// Any other kind: status only.
    Other,
}

impl StationKind {
    pub fn from_registry(kind: &str) -> StationKind {
        match kind {
            "rain_gauge" => StationKind::RainGauge,
            "weather_station" => StationKind::WeatherStation,
            "water_level_gauge" => StationKind::RiverGauge,
            "reservoir" => StationKind::Reservoir,
            "seismometer" => StationKind::Seismometer,
            "gas_detector" => StationKind::GasDetector,
            _ => StationKind::Other,
        }
    }

    pub fn measures_rain(self) -> bool {
        matches!(self, StationKind::RainGauge | StationKind::WeatherStation)
    }

    pub fn measures_level(self) -> bool {
        matches!(self, StationKind::RiverGauge | StationKind::Reservoir)
    }
}

/// The hazards every station looks at, prepared once.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub typhoons: Vec<hazard::Typhoon>,
    pub floods: Vec<hazard::PlacedFlood>,
    pub quakes: Vec<hazard::Earthquake>,
    pub leaks: Vec<hazard::ChemicalLeak>,
}

impl Env {
    pub fn new(s: &Scenario) -> Env {
        let mut env = Env { floods: s.floods.clone(), ..Env::default() };
        for h in &s.hazards {
            match h {
                hazard::HazardSpec::Typhoon(t) => env.typhoons.push(t.clone()),
                hazard::HazardSpec::Earthquake(q) => env.quakes.push(q.clone()),
                hazard::HazardSpec::ChemicalLeak(c) => env.leaks.push(c.clone()),
                hazard::HazardSpec::Flood(_) => {}
            }
        }
        env
    }

    /// Storm wind (m/s, the strongest storm) and rain rate (mm/h, all storms) at a place.
    pub fn wind_rain(&self, at: LatLon, t_s: f64) -> (f64, f64) {
        let mut wind: f64 = 0.0;
        let mut rain = 0.0;
        for t in &self.typhoons {
            let (w, r) = t.wind_and_rain(at, t_s);
            wind = wind.max(w);
            rain += r;
        }
        (wind, rain)
    }
}

/// One station of the fleet.
#[derive(Debug, Clone)]
pub struct StationSim {
    pub id: String,
    /// Index of its node in the scenario.
    pub node: usize,
    pub kind: StationKind,
    pub at: LatLon,
    /// Its county (registry `region`, else where it stands; empty if outside every county).
    pub region: String,
    pub interval_ms: u64,
    pub phase_ms: u64,
    /// The station's own seed (noise, battery, outage).
    pub seed: u64,
    pub warning_level: Option<f64>,
    pub guarantee_level: Option<f64>,
    pub historic_max: Option<f64>,
    /// Normal water level (level stations).
    pub normal_level: f64,
    pub level: LevelParams,
    /// (flood index, chainage km) for each flood wave whose chain holds this gauge.
    pub floods: Vec<(usize, f64)>,
    /// A silent span, scenario ms [from, to).
    pub outage: Option<(u64, u64)>,
    pub status_every_ms: u64,
    pub battery0: f64,
    pub rain_noise: f64,
    pub wind_noise: f64,
    pub level_noise_m: f64,
}

/// What a station remembers between ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StationState {
    /// The next tick to make.
    pub next_k: u64,
    /// Rain fallen but not yet counted by the bucket (below 0.1 mm, or during an outage), mm.
    pub rain_pending_mm: f64,
    /// Water above normal from rain, m.
    pub level_excess_m: f64,
}

/// One tick's measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub k: u64,
    pub at_ms: u64,
    /// (name, unit, value) records; empty while silent.
    pub records: Vec<(&'static str, &'static str, f64)>,
    /// Rain counted at this tick, in tenths of a millimetre (rain stations).
    pub rain_tenths: Option<u64>,
    /// The level sent (level stations).
    pub level_m: Option<f64>,
    /// A status to send with this tick: (online, battery %).
    pub status: Option<(bool, f64)>,
}

fn round_to(x: f64, step: f64) -> f64 {
    (x / step).round() * step
}

/// Rounds to `decimals` places so that the printed value is short and exact in decimal.
fn round_dec(x: f64, decimals: i32) -> f64 {
    let k = 10f64.powi(decimals);
    (x * k).round() / k
}

impl StationSim {
    /// A station from its registry row.
    pub fn new(device: &Device, node: usize, s: &Scenario, seed: u64, region: String) -> StationSim {
        let kind = StationKind::from_registry(&device.kind);
        let own = sub_seed(seed, &["station", &device.id]);
        let interval_s =
            device.interval_s.filter(|i| i.is_finite() && *i >= 1.0).unwrap_or(s.stations.default_interval_s);
        let interval_ms = (interval_s * 1000.0).round().max(1000.0) as u64;
        // Whole seconds, so that times print short.
        let phase_ms = ((unit(sub_seed(own, &["phase"])) * interval_ms as f64 / 1000.0).floor() * 1000.0) as u64;
        let level = if kind == StationKind::Reservoir { s.stations.reservoir } else { s.stations.gauge };
        let normal_level = match device.warning_level {
            Some(w) => w - level.normal_below_warning_m,
            None => 2.0,
        };
        let floods = s
            .floods
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.gauges.iter().find(|g| g.0 == device.id).map(|g| (i, g.2)))
            .collect();
        let duration_ms = s.duration_s * 1000;
        let outage = (unit(sub_seed(own, &["outage"])) < s.stations.outage_fraction).then(|| {
            let len = (s.stations.outage_s * 1000.0) as u64;
            let latest = duration_ms.saturating_sub(len).max(1);
            let from = (unit(sub_seed(own, &["outage-start"])) * latest as f64) as u64;
            (from, from + len)
        });
        StationSim {
            id: device.id.clone(),
            node,
            kind,
            at: LatLon { lat: device.lat, lon: device.lon },
            region,
            interval_ms,
            phase_ms,
            seed: own,
            warning_level: device.warning_level,
            guarantee_level: device.guarantee_level,
            historic_max: device.historic_max,
            normal_level,
            level,
            floods,
            outage,
            status_every_ms: (s.stations.status_every_s.max(0.0) * 1000.0) as u64,
            battery0: 60.0 + 40.0 * unit(sub_seed(own, &["battery"])),
            rain_noise: s.stations.rain_noise,
            wind_noise: s.stations.wind_noise,
            level_noise_m: s.stations.level_noise_m,
        }
    }

    /// The time of tick `k`.
    pub fn tick_ms(&self, k: u64) -> u64 {
        self.phase_ms + k * self.interval_ms
    }

    fn silent(&self, t_ms: u64) -> bool {
        self.outage.is_some_and(|(a, b)| t_ms >= a && t_ms < b)
    }

    /// Makes tick `state.next_k` and moves the state on.
    pub fn step(&self, state: &mut StationState, env: &Env) -> Tick {
        let k = state.next_k;
        state.next_k += 1;
        let at_ms = self.tick_ms(k);
        let t_s = at_ms as f64 / 1000.0;
        let dt_s = self.interval_ms as f64 / 1000.0;
        let key = tick_key(self.seed, k);
        let silent = self.silent(at_ms);
        let mut records = Vec::new();
        let mut rain_tenths = None;
        let mut level_m = None;

        if self.kind.measures_rain() || self.kind.measures_level() {
            // Rain over (t − dt, t], at the middle of the span, with multiplicative noise.
            let (_, rate) = env.wind_rain(self.at, t_s - dt_s / 2.0);
            let fallen = (rate * dt_s / 3600.0 * (1.0 + self.rain_noise * normal(key ^ 1))).max(0.0);
            if self.kind.measures_level() {
                let decay = (-dt_s / (self.level.tau_h.max(0.01) * 3600.0)).exp();
                state.level_excess_m = state.level_excess_m * decay + self.level.gain_m_per_mm * fallen;
            } else {
                state.rain_pending_mm += fallen;
            }
        }
        if !silent {
            match self.kind {
                StationKind::RainGauge | StationKind::WeatherStation => {
                    let tenths = (state.rain_pending_mm * 10.0 + 1e-9).floor().max(0.0);
                    state.rain_pending_mm = (state.rain_pending_mm - tenths / 10.0).max(0.0);
                    rain_tenths = Some(tenths as u64);
                    records.push(("rain", "mm", tenths / 10.0));
                    if self.kind == StationKind::WeatherStation {
                        let (storm, _) = env.wind_rain(self.at, t_s);
                        let background = 2.0 + normal(key ^ 2).abs();
                        let wind = storm.hypot(background) * (1.0 + self.wind_noise * normal(key ^ 3));
                        records.push(("wind_speed", "m/s", round_dec(wind.max(0.0), 1)));
                    }
                }
                StationKind::RiverGauge | StationKind::Reservoir => {
                    let rise: f64 = self
                        .floods
                        .iter()
                        .filter_map(|(i, chainage)| env.floods.get(*i).map(|f| f.wave.rise_at_chainage(*chainage, t_s)))
                        .sum();
                    let level = self.normal_level + state.level_excess_m + rise + self.level_noise_m * normal(key ^ 4);
                    let level = round_dec(round_to(level, 0.01), 2);
                    level_m = Some(level);
                    records.push(("water_level", "m", level));
                }
                StationKind::Seismometer => {
                    let shaking =
                        env.quakes.iter().map(|q| q.intensity_during(self.at, t_s - dt_s, t_s)).fold(0.0, f64::max);
                    let intensity =
                        if shaking > 0.0 { shaking + 0.15 * normal(key ^ 5) } else { 0.05 * normal(key ^ 5).abs() };
                    let intensity = round_dec(intensity.clamp(0.0, 12.0), 1);
                    let pga = if intensity >= 1.0 {
                        hazard::pga_for_intensity(intensity)
                    } else {
                        0.001 + 0.004 * unit(key ^ 6)
                    };
                    records.push(("intensity", "/", intensity));
                    records.push(("pga", "m/s2", round_dec(pga, 4)));
                }
                StationKind::GasDetector => {
                    let plume: f64 = env.leaks.iter().map(|l| l.ppm(self.at, t_s)).sum();
                    let background = 0.1 + 0.05 * normal(key ^ 7).abs();
                    let gas = plume * (1.0 + 0.1 * normal(key ^ 8)) + background;
                    records.push(("gas", "ppm", round_dec(gas.max(0.0), 1)));
                }
                StationKind::Other => {}
            }
        }

        let battery = round_dec((self.battery0 - 0.5 * t_s / 3600.0).clamp(5.0, 100.0), 1);
        let was_silent = k > 0 && self.silent(self.tick_ms(k - 1));
        let status = if silent {
            (!was_silent).then_some((false, battery))
        } else if k == 0
            || was_silent
            || (self.status_every_ms > 0 && at_ms / self.status_every_ms > self.tick_ms(k - 1) / self.status_every_ms)
        {
            Some((true, battery))
        } else {
            None
        };
        Tick { k, at_ms, records, rain_tenths, level_m, status }
    }
}
