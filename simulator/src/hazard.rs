//! Hazard fields: pure functions of (position, scenario time) that drive every reading and every
//! report of a drill.
//!
//! Each hazard is a value read from the scenario file (`[[hazard]]`, see docs/scenarios.md) and
//! answers, at a point and a time in seconds since the drill's start, what an instrument there
//! would measure: wind speed and rain rate (typhoon), water-level rise at a gauge (river flood
//! wave), seismic intensity and peak ground acceleration (earthquake), gas concentration
//! (chemical leak). No IO, no clock, no randomness: noise is the model's business.
//!
//! Distances use a local equirectangular projection around the point of interest
//! ([`km_between`]): within a few hundred kilometres it is within 1 % of the great circle, which
//! is far below the uncertainty of the models themselves, and it costs a few nanoseconds.

use serde::{Deserialize, Serialize};

/// A position, WGS 84 degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatLon {
    pub lat: f64,
    pub lon: f64,
}

/// Kilometres per degree of latitude (mean).
const KM_PER_DEG_LAT: f64 = 111.195;

/// East and north offsets in km of `to` from `from` (equirectangular around their mid-latitude).
pub fn km_offset(from: LatLon, to: LatLon) -> (f64, f64) {
    let mid = ((from.lat + to.lat) / 2.0).to_radians();
    ((to.lon - from.lon) * KM_PER_DEG_LAT * mid.cos(), (to.lat - from.lat) * KM_PER_DEG_LAT)
}

/// Distance in km between two positions (equirectangular approximation, see the module doc).
pub fn km_between(a: LatLon, b: LatLon) -> f64 {
    let (x, y) = km_offset(a, b);
    x.hypot(y)
}

/// Linear interpolation helper: the value at `t` between `(t0, a)` and `(t1, b)`.
fn lerp(t: f64, t0: f64, t1: f64, a: f64, b: f64) -> f64 {
    if t1 <= t0 { b } else { a + (b - a) * ((t - t0) / (t1 - t0)).clamp(0.0, 1.0) }
}

// ---------------------------------------------------------------------------------------------
// Typhoon

/// One point of a typhoon's best track (or forecast track).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackPoint {
    /// Seconds since the drill's start.
    pub t_s: f64,
    pub lat: f64,
    pub lon: f64,
    /// Maximum sustained wind, m/s.
    pub vmax_m_s: f64,
    /// Radius of maximum wind, km.
    pub rmw_km: f64,
    /// Central pressure, hPa (carried for the record and for reports' text; the wind profile
    /// uses `vmax_m_s`).
    #[serde(default = "default_pressure")]
    pub pressure_hpa: f64,
    /// Peak rain rate near the eye wall, mm/h.
    #[serde(default = "default_rain_max")]
    pub rain_max_mm_h: f64,
}

fn default_pressure() -> f64 {
    960.0
}
fn default_rain_max() -> f64 {
    40.0
}
fn default_holland_b() -> f64 {
    1.5
}
fn default_rain_decay_km() -> f64 {
    120.0
}

/// A typhoon: a track, a Holland (1980) wind profile and a rain field around the centre.
///
/// - Centre, `vmax`, `rmw` and rain peak are interpolated linearly between track points; before
///   the first point and after the last the storm does not exist (wind and rain 0).
/// - Wind at distance r from the centre: `vmax · sqrt((rmw/r)^B · exp(1 − (rmw/r)^B))`
///   (Holland's gradient-wind profile written in terms of vmax; it peaks at `vmax` at r = rmw),
///   plus half the storm's forward speed on the right of the track (the usual asymmetry of a
///   moving storm in the northern hemisphere), never below 0.
/// - Rain rate: `rain_max` inside the radius of maximum wind, decaying as
///   `exp(−(r − rmw)/rain_decay_km)` outside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Typhoon {
    /// The incident (disaster event id) whose reports this hazard's damage goes into.
    pub incident: String,
    /// Holland's B (1.0–2.5; larger is a more peaked profile).
    #[serde(default = "default_holland_b")]
    pub holland_b: f64,
    /// e-folding distance of the rain rate outside the radius of maximum wind, km.
    #[serde(default = "default_rain_decay_km")]
    pub rain_decay_km: f64,
    /// The track, by time.
    pub track: Vec<TrackPoint>,
}

/// The storm's state at one time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StormState {
    pub centre: LatLon,
    pub vmax_m_s: f64,
    pub rmw_km: f64,
    pub pressure_hpa: f64,
    pub rain_max_mm_h: f64,
    /// Forward motion, km/h east and north.
    pub motion_kmh: (f64, f64),
}

impl Typhoon {
    /// The storm at `t_s`, or `None` outside its track's time span.
    pub fn state(&self, t_s: f64) -> Option<StormState> {
        let first = self.track.first()?;
        let last = self.track.last()?;
        if t_s < first.t_s || t_s > last.t_s {
            return None;
        }
        let i = self.track.windows(2).position(|w| t_s <= w[1].t_s).unwrap_or(0);
        let (a, b) = match (self.track.get(i), self.track.get(i + 1)) {
            (Some(a), Some(b)) => (a, b),
            (Some(a), None) => (a, a),
            _ => return None,
        };
        let f = |x: f64, y: f64| lerp(t_s, a.t_s, b.t_s, x, y);
        let hours = (b.t_s - a.t_s) / 3600.0;
        let motion_kmh = if hours > 0.0 {
            let (dx, dy) = km_offset(LatLon { lat: a.lat, lon: a.lon }, LatLon { lat: b.lat, lon: b.lon });
            (dx / hours, dy / hours)
        } else {
            (0.0, 0.0)
        };
        Some(StormState {
            centre: LatLon { lat: f(a.lat, b.lat), lon: f(a.lon, b.lon) },
            vmax_m_s: f(a.vmax_m_s, b.vmax_m_s),
            rmw_km: f(a.rmw_km, b.rmw_km).max(1.0),
            pressure_hpa: f(a.pressure_hpa, b.pressure_hpa),
            rain_max_mm_h: f(a.rain_max_mm_h, b.rain_max_mm_h),
            motion_kmh,
        })
    }

    /// Sustained wind speed (m/s) and rain rate (mm/h) at `at`, time `t_s`.
    pub fn wind_and_rain(&self, at: LatLon, t_s: f64) -> (f64, f64) {
        let Some(s) = self.state(t_s) else { return (0.0, 0.0) };
        let (x, y) = km_offset(s.centre, at);
        let r = x.hypot(y).max(0.1);
        let ratio = (s.rmw_km / r).powf(self.holland_b);
        let mut wind = s.vmax_m_s * (ratio * (1.0 - ratio).exp()).sqrt();
        // Right of the track (northern hemisphere): the storm's motion adds to the wind.
        let speed = s.motion_kmh.0.hypot(s.motion_kmh.1);
        if speed > 0.0 {
            // The cross product of motion and the offset is negative on the right.
            let side = -(s.motion_kmh.0 * y - s.motion_kmh.1 * x) / (speed * r);
            wind += 0.5 * (speed / 3.6) * side * (ratio * (1.0 - ratio).exp()).sqrt();
        }
        let rain = if r <= s.rmw_km {
            s.rain_max_mm_h
        } else {
            s.rain_max_mm_h * (-(r - s.rmw_km) / self.rain_decay_km.max(1.0)).exp()
        };
        (wind.max(0.0), rain.max(0.0))
    }
}

// ---------------------------------------------------------------------------------------------
// River flood wave

fn default_celerity() -> f64 {
    5.0
}
fn default_attenuation() -> f64 {
    300.0
}
fn default_rise_s() -> f64 {
    3.0 * 3600.0
}
fn default_fall_s() -> f64 {
    6.0 * 3600.0
}
fn default_spread() -> f64 {
    0.5
}
fn default_reach_km() -> f64 {
    15.0
}

/// A flood wave travelling down a river past a chain of gauges.
///
/// The river is the chain of `gauges` (device ids, upstream first); their positions come from
/// the device registry, and the distance along the river is the sum of the straight distances
/// between consecutive gauges. At the first gauge the level rises above its normal level by
/// `peak_m`, starting at `start_s`: linearly up to the peak over `rise_s`, then back down
/// linearly over `fall_s`. At distance d downstream the wave arrives `d / celerity_kmh` later,
/// its peak is `peak_m · exp(−d / attenuation_km)` and its rise and fall last
/// `(1 + spread · d / 100 km)` times longer (the hydrograph flattens as it travels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloodWave {
    /// The incident (disaster event id) whose reports this hazard's damage goes into.
    pub incident: String,
    /// River name (for reports' text).
    #[serde(default)]
    pub river: String,
    /// Gauge device ids along the river, upstream first.
    pub gauges: Vec<String>,
    /// When the rise starts at the first gauge, seconds since the drill's start.
    pub start_s: f64,
    /// The rise above normal at the first gauge at the peak, metres.
    pub peak_m: f64,
    /// Time from start to peak at the first gauge, seconds.
    #[serde(default = "default_rise_s")]
    pub rise_s: f64,
    /// Time from peak back to normal at the first gauge, seconds.
    #[serde(default = "default_fall_s")]
    pub fall_s: f64,
    /// Wave speed along the river, km/h.
    #[serde(default = "default_celerity")]
    pub celerity_kmh: f64,
    /// e-folding distance of the peak, km.
    #[serde(default = "default_attenuation")]
    pub attenuation_km: f64,
    /// How much longer rise and fall last per 100 km travelled (0: no flattening).
    #[serde(default = "default_spread")]
    pub spread_per_100km: f64,
    /// How far from the river (from its nearest gauge) a place counts as flooded, km (for
    /// the damage to divisions; gauges themselves are on the river).
    #[serde(default = "default_reach_km")]
    pub reach_km: f64,
}

impl FloodWave {
    /// The rise (m) above normal at chainage `d_km` (distance downstream of the first gauge).
    pub fn rise_at_chainage(&self, d_km: f64, t_s: f64) -> f64 {
        let d = d_km.max(0.0);
        let arrive = self.start_s + d / self.celerity_kmh.max(0.01) * 3600.0;
        let stretch = 1.0 + self.spread_per_100km.max(0.0) * d / 100.0;
        let rise = (self.rise_s * stretch).max(1.0);
        let fall = (self.fall_s * stretch).max(1.0);
        let peak = self.peak_m * (-d / self.attenuation_km.max(0.01)).exp();
        let dt = t_s - arrive;
        if dt <= 0.0 || dt >= rise + fall {
            0.0
        } else if dt <= rise {
            peak * dt / rise
        } else {
            peak * (1.0 - (dt - rise) / fall)
        }
    }

    /// The time (s) the peak passes chainage `d_km`.
    pub fn peak_time_at(&self, d_km: f64) -> f64 {
        let d = d_km.max(0.0);
        self.start_s
            + d / self.celerity_kmh.max(0.01) * 3600.0
            + self.rise_s * (1.0 + self.spread_per_100km * d / 100.0)
    }
}

/// A flood wave with its gauges placed: chainages and positions.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedFlood {
    pub wave: FloodWave,
    /// (gauge id, position, chainage km), upstream first.
    pub gauges: Vec<(String, LatLon, f64)>,
}

impl PlacedFlood {
    /// Places a wave's gauges; `position` gives a gauge's registry position. Errors name the
    /// gauge that is not in the registry.
    pub fn place(wave: &FloodWave, position: impl Fn(&str) -> Option<LatLon>) -> Result<PlacedFlood, String> {
        let mut gauges = Vec::with_capacity(wave.gauges.len());
        let mut chainage = 0.0;
        let mut previous: Option<LatLon> = None;
        for id in &wave.gauges {
            let at = position(id).ok_or_else(|| format!("gauge {id:?} is not in any node's device registry"))?;
            if let Some(p) = previous {
                chainage += km_between(p, at);
            }
            previous = Some(at);
            gauges.push((id.clone(), at, chainage));
        }
        if gauges.is_empty() {
            return Err("a flood wave needs at least one gauge".into());
        }
        Ok(PlacedFlood { wave: wave.clone(), gauges })
    }

    /// The rise at a gauge of the chain (by id), or `None` if it is not on this river.
    pub fn rise_at_gauge(&self, id: &str, t_s: f64) -> Option<f64> {
        self.gauges.iter().find(|g| g.0 == id).map(|g| self.wave.rise_at_chainage(g.2, t_s))
    }

    /// The rise felt at a place: that of the nearest gauge if it lies within `reach_km`, fading
    /// linearly to 0 at `reach_km`.
    pub fn rise_near(&self, at: LatLon, t_s: f64) -> f64 {
        let nearest = self.gauges.iter().map(|g| (km_between(g.1, at), g.2)).min_by(|a, b| a.0.total_cmp(&b.0));
        match nearest {
            Some((d, chainage)) if d < self.wave.reach_km => {
                self.wave.rise_at_chainage(chainage, t_s) * (1.0 - d / self.wave.reach_km)
            }
            _ => 0.0,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Earthquake

fn default_depth() -> f64 {
    10.0
}
fn default_duration() -> f64 {
    60.0
}

/// An earthquake: epicentre, magnitude, focal depth and origin time.
///
/// Intensity (China seismic intensity scale, GB/T 17742) at epicentral distance R km follows
/// the attenuation relation of Wang Suyun et al. (2000) for eastern China, long axis:
/// `I = 6.046 + 1.480 M − 2.081 ln(R + 25)`, clamped to 0..=12 (isotropic here: no fault
/// orientation). Shaking reaches a place with the S wave, `sqrt(R² + depth²) / 3.5 km/s` after
/// the origin time, and lasts `shaking_s`. Peak ground acceleration follows from intensity by
/// GB/T 17742-2020's instrumental relation `I = 3.17 lg(PGA) + 6.59` (PGA in m/s²).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Earthquake {
    /// The incident (disaster event id) whose reports this hazard's damage goes into.
    pub incident: String,
    /// Origin time, seconds since the drill's start.
    pub origin_s: f64,
    pub lat: f64,
    pub lon: f64,
    /// Surface-wave magnitude.
    pub magnitude: f64,
    /// Focal depth, km.
    #[serde(default = "default_depth")]
    pub depth_km: f64,
    /// How long strong shaking lasts at a place, seconds.
    #[serde(default = "default_duration")]
    pub shaking_s: f64,
}

/// S-wave speed, km/s.
pub const S_WAVE_KM_S: f64 = 3.5;

impl Earthquake {
    pub fn epicentre(&self) -> LatLon {
        LatLon { lat: self.lat, lon: self.lon }
    }

    /// The intensity the quake reaches at `at` (its peak, whenever it comes).
    pub fn peak_intensity(&self, at: LatLon) -> f64 {
        let r = km_between(self.epicentre(), at);
        intensity_at_distance(self.magnitude, r)
    }

    /// When shaking starts at `at`, seconds since the drill's start.
    pub fn arrival_s(&self, at: LatLon) -> f64 {
        let r = km_between(self.epicentre(), at);
        self.origin_s + r.hypot(self.depth_km) / S_WAVE_KM_S
    }

    /// The intensity felt at `at` during `[t0_s, t1_s)`: the peak if shaking overlaps the span,
    /// else 0.
    pub fn intensity_during(&self, at: LatLon, t0_s: f64, t1_s: f64) -> f64 {
        let start = self.arrival_s(at);
        if start < t1_s && start + self.shaking_s > t0_s { self.peak_intensity(at) } else { 0.0 }
    }
}

/// Intensity at epicentral distance `r_km` for magnitude `m` (see [`Earthquake`]).
pub fn intensity_at_distance(m: f64, r_km: f64) -> f64 {
    (6.046 + 1.480 * m - 2.081 * (r_km.max(0.0) + 25.0).ln()).clamp(0.0, 12.0)
}

/// Peak ground acceleration (m/s²) for an instrumental intensity (GB/T 17742-2020).
pub fn pga_for_intensity(intensity: f64) -> f64 {
    10f64.powf((intensity - 6.59) / 3.17)
}

// ---------------------------------------------------------------------------------------------
// Chemical leak

fn default_stability() -> char {
    'D'
}
fn default_molar_mass() -> f64 {
    17.03
}
fn default_release_height() -> f64 {
    5.0
}

/// A continuous release of gas: a Gaussian plume (ground reflection included) carried by a
/// steady wind, with Pasquill–Gifford dispersion from Briggs' rural formulas.
///
/// Ground-level concentration at downwind distance x and crosswind distance y:
/// `C = Q / (π u σy σz) · exp(−y² / 2σy²) · exp(−H² / 2σz²)` in g/m³, converted to ppm at 25 °C
/// as `C[mg/m³] · 24.45 / molar mass`. The plume's front travels with the wind, so a place x km
/// downwind sees gas only from `start_s + x/u` on, and its tail leaves `x/u` after `end_s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChemicalLeak {
    /// The incident (disaster event id) whose reports this hazard's damage goes into.
    pub incident: String,
    pub lat: f64,
    pub lon: f64,
    /// Release starts, seconds since the drill's start.
    pub start_s: f64,
    /// Release ends.
    pub end_s: f64,
    /// Emission rate, g/s.
    pub rate_g_s: f64,
    /// Wind speed, m/s (at least 0.5 is used).
    pub wind_m_s: f64,
    /// Direction the wind blows *from*, degrees clockwise from north (meteorological).
    pub wind_from_deg: f64,
    /// Pasquill stability class, A (very unstable) to F (very stable).
    #[serde(default = "default_stability")]
    pub stability: char,
    /// Effective release height, m.
    #[serde(default = "default_release_height")]
    pub height_m: f64,
    /// Molar mass of the gas, g/mol (ammonia 17.03, chlorine 70.9).
    #[serde(default = "default_molar_mass")]
    pub molar_mass: f64,
    /// Name of the gas, for reports' text.
    #[serde(default)]
    pub gas: String,
}

/// Briggs (1973) rural σy and σz in metres at downwind distance x metres.
pub fn briggs_rural(stability: char, x_m: f64) -> (f64, f64) {
    let x = x_m.max(1.0);
    let (a, c) = match stability.to_ascii_uppercase() {
        'A' => (0.22, (0.20, 0.0, 0.0)),
        'B' => (0.16, (0.12, 0.0, 0.0)),
        'C' => (0.11, (0.08, 0.0002, -0.5)),
        'E' => (0.06, (0.03, 0.0003, -1.0)),
        'F' => (0.04, (0.016, 0.0003, -1.0)),
        _ => (0.08, (0.06, 0.0015, -0.5)),
    };
    let sy = a * x / (1.0 + 0.0001 * x).sqrt();
    let sz = match stability.to_ascii_uppercase() {
        'A' | 'B' => c.0 * x,
        _ => c.0 * x * (1.0 + c.1 * x).powf(c.2),
    };
    (sy, sz.max(0.1))
}

impl ChemicalLeak {
    pub fn source(&self) -> LatLon {
        LatLon { lat: self.lat, lon: self.lon }
    }

    /// Downwind and crosswind distances (m) of `at` from the source.
    pub fn plume_coordinates(&self, at: LatLon) -> (f64, f64) {
        let (east, north) = km_offset(self.source(), at);
        // The wind blows towards wind_from + 180°.
        let to = (self.wind_from_deg + 180.0).to_radians();
        let (ux, uy) = (to.sin(), to.cos());
        let downwind = (east * ux + north * uy) * 1000.0;
        let crosswind = (east * uy - north * ux) * 1000.0;
        (downwind, crosswind)
    }

    /// Ground-level concentration in ppm at `at`, time `t_s`.
    pub fn ppm(&self, at: LatLon, t_s: f64) -> f64 {
        let (x, y) = self.plume_coordinates(at);
        if x <= 0.0 {
            return 0.0;
        }
        let u = self.wind_m_s.max(0.5);
        let travel = x / u;
        if t_s < self.start_s + travel || t_s > self.end_s + travel {
            return 0.0;
        }
        let (sy, sz) = briggs_rural(self.stability, x);
        let c = self.rate_g_s / (std::f64::consts::PI * u * sy * sz)
            * (-(y * y) / (2.0 * sy * sy)).exp()
            * (-(self.height_m * self.height_m) / (2.0 * sz * sz)).exp();
        // g/m³ → mg/m³ → ppm at 25 °C.
        (c * 1000.0 * 24.45 / self.molar_mass.max(1.0)).max(0.0)
    }
}

// ---------------------------------------------------------------------------------------------
// The scenario's list of hazards

/// One `[[hazard]]` of a scenario, by its `kind`: `typhoon`, `flood`, `earthquake` or
/// `chemical_leak`. Each names the incident its damage is reported under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HazardSpec {
    Typhoon(Typhoon),
    Flood(FloodWave),
    Earthquake(Earthquake),
    ChemicalLeak(ChemicalLeak),
}

impl HazardSpec {
    /// The incident (disaster event id) whose reports this hazard's damage goes into.
    pub fn incident(&self) -> &str {
        match self {
            HazardSpec::Typhoon(h) => &h.incident,
            HazardSpec::Flood(h) => &h.incident,
            HazardSpec::Earthquake(h) => &h.incident,
            HazardSpec::ChemicalLeak(h) => &h.incident,
        }
    }

    /// The `kind` as written in the scenario file.
    pub fn kind(&self) -> &'static str {
        match self {
            HazardSpec::Typhoon(_) => "typhoon",
            HazardSpec::Flood(_) => "flood",
            HazardSpec::Earthquake(_) => "earthquake",
            HazardSpec::ChemicalLeak(_) => "chemical_leak",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    fn typhoon() -> Typhoon {
        let p = |t_s: f64, lat: f64, lon: f64| TrackPoint {
            t_s,
            lat,
            lon,
            vmax_m_s: 40.0,
            rmw_km: 30.0,
            pressure_hpa: 950.0,
            rain_max_mm_h: 50.0,
        };
        Typhoon {
            incident: "t".into(),
            holland_b: 1.5,
            rain_decay_km: 100.0,
            track: vec![p(0.0, 25.0, 125.0), p(36_000.0, 25.0, 121.0)],
        }
    }

    #[test]
    fn distances() {
        let a = LatLon { lat: 25.0, lon: 120.0 };
        let cases = [
            (LatLon { lat: 25.0, lon: 120.0 }, 0.0, 0.01),
            (LatLon { lat: 26.0, lon: 120.0 }, 111.2, 0.5),
            (LatLon { lat: 25.0, lon: 121.0 }, 100.8, 0.5),
            (LatLon { lat: 28.0, lon: 123.0 }, 447.0, 5.0),
        ];
        for (b, want, tol) in cases {
            let got = km_between(a, b);
            assert!(close(got, want, tol), "{b:?}: {got} km, want {want}");
        }
    }

    #[test]
    fn typhoon_wind_and_rain() {
        let t = typhoon();
        // Centre at t = 18,000 s: lon 123.0. Motion is west at ~40 km/h; its right is north.
        let centre = LatLon { lat: 25.0, lon: 123.0 };
        let north = |km: f64| LatLon { lat: 25.0 + km / KM_PER_DEG_LAT, lon: 123.0 };
        let south = |km: f64| LatLon { lat: 25.0 - km / KM_PER_DEG_LAT, lon: 123.0 };
        // (place, time, wind range, rain range)
        type Case = (&'static str, LatLon, f64, (f64, f64), (f64, f64));
        let cases: [Case; 7] = [
            ("eye", centre, 18_000.0, (0.0, 8.0), (49.9, 50.1)),
            ("eye wall, right", north(30.0), 18_000.0, (44.0, 47.0), (49.9, 50.1)),
            ("eye wall, left", south(30.0), 18_000.0, (33.0, 36.0), (49.9, 50.1)),
            ("100 km right", north(100.0), 18_000.0, (25.0, 33.0), (24.0, 26.0)),
            ("400 km", north(400.0), 18_000.0, (5.0, 15.0), (1.1, 1.4)),
            ("before the track", centre, -1.0, (0.0, 0.0), (0.0, 0.0)),
            ("after the track", centre, 36_001.0, (0.0, 0.0), (0.0, 0.0)),
        ];
        for (name, at, t_s, wind, rain) in cases {
            let (w, r) = t.wind_and_rain(at, t_s);
            assert!((wind.0..=wind.1).contains(&w), "{name}: wind {w}, want {wind:?}");
            assert!((rain.0..=rain.1).contains(&r), "{name}: rain {r}, want {rain:?}");
        }
        // Wind falls off outside the radius of maximum wind.
        let mut last = f64::MAX;
        for km in [30.0, 50.0, 100.0, 200.0, 400.0] {
            let (w, _) = t.wind_and_rain(north(km), 18_000.0);
            assert!(w < last, "{km} km: {w} not below {last}");
            last = w;
        }
        let s = t.state(18_000.0).expect("storm exists");
        assert!(close(s.centre.lon, 123.0, 1e-9) && close(s.motion_kmh.0, -40.3, 0.5), "{s:?}");
    }

    #[test]
    fn flood_wave_travels_and_attenuates() {
        let wave = FloodWave {
            incident: "f".into(),
            river: "清江".into(),
            gauges: vec![],
            start_s: 0.0,
            peak_m: 4.0,
            rise_s: 3600.0,
            fall_s: 7200.0,
            celerity_kmh: 10.0,
            attenuation_km: 100.0,
            spread_per_100km: 0.0,
            reach_km: 10.0,
        };
        // (chainage km, time s, rise m)
        let cases = [
            (0.0, -1.0, 0.0),
            (0.0, 1800.0, 2.0),
            (0.0, 3600.0, 4.0),
            (0.0, 7200.0, 2.0),
            (0.0, 10_800.0, 0.0),
            (50.0, 18_000.0, 0.0),
            (50.0, 21_600.0, 4.0 * (-0.5f64).exp()),
            (100.0, 39_600.0, 4.0 * (-1.0f64).exp()),
        ];
        for (d, t, want) in cases {
            let got = wave.rise_at_chainage(d, t);
            assert!(close(got, want, 1e-9), "d {d} t {t}: {got}, want {want}");
        }
        assert!(close(wave.peak_time_at(50.0), 21_600.0, 1e-9));
        let spread = FloodWave { spread_per_100km: 1.0, ..wave.clone() };
        assert!(close(spread.peak_time_at(100.0), 36_000.0 + 7200.0, 1e-9));

        let gauges = [("g1", 25.0, 120.0), ("g2", 25.0, 120.5), ("g3", 25.0, 121.0)];
        let wave = FloodWave { gauges: gauges.iter().map(|g| g.0.to_owned()).collect(), ..wave };
        let placed =
            PlacedFlood::place(&wave, |id| gauges.iter().find(|g| g.0 == id).map(|g| LatLon { lat: g.1, lon: g.2 }))
                .expect("placed");
        assert!(close(placed.gauges[2].2, 100.8, 0.5), "{:?}", placed.gauges);
        assert_eq!(placed.rise_at_gauge("g1", 3600.0), Some(4.0));
        assert_eq!(placed.rise_at_gauge("nope", 3600.0), None);
        assert!(close(placed.rise_near(LatLon { lat: 25.0 + 5.0 / KM_PER_DEG_LAT, lon: 120.0 }, 3600.0), 2.0, 0.01));
        assert_eq!(placed.rise_near(LatLon { lat: 26.0, lon: 120.0 }, 3600.0), 0.0);
        let missing = PlacedFlood::place(&wave, |_| None).expect_err("no registry");
        assert!(missing.contains("g1"), "{missing}");
    }

    #[test]
    fn earthquake_intensity_falls_off_with_distance() {
        // (magnitude, distance km, intensity range)
        let cases = [
            (7.0, 0.0, (9.5, 10.0)),
            (7.0, 50.0, (7.3, 7.5)),
            (7.0, 200.0, (4.8, 5.2)),
            (6.0, 0.0, (8.1, 8.4)),
            (6.0, 50.0, (5.8, 6.1)),
            (5.0, 100.0, (3.2, 3.6)),
            (3.0, 500.0, (0.0, 0.1)),
            (9.5, 0.0, (12.0, 12.0)),
        ];
        for (m, r, (lo, hi)) in cases {
            let i = intensity_at_distance(m, r);
            assert!((lo..=hi).contains(&i), "M{m} at {r} km: {i}, want {lo}..={hi}");
        }
        let pga = [(6.59, 1.0, 0.001), (9.76, 10.0, 0.01), (3.42, 0.1, 0.001)];
        for (i, want, tol) in pga {
            assert!(close(pga_for_intensity(i), want, tol), "I {i}: {}", pga_for_intensity(i));
        }
        let quake = Earthquake {
            incident: "q".into(),
            origin_s: 100.0,
            lat: 25.0,
            lon: 120.0,
            magnitude: 6.5,
            depth_km: 10.0,
            shaking_s: 60.0,
        };
        let at = LatLon { lat: 25.0, lon: 120.0 + 70.0 / (KM_PER_DEG_LAT * 25f64.to_radians().cos()) };
        assert!(close(quake.arrival_s(at), 100.0 + 70.7 / 3.5, 0.1));
        assert_eq!(quake.intensity_during(at, 0.0, 60.0), 0.0);
        assert!(quake.intensity_during(at, 60.0, 180.0) > 5.0);
        assert_eq!(quake.intensity_during(at, 200.0, 260.0), 0.0);
    }

    #[test]
    fn chemical_plume_goes_downwind() {
        let leak = ChemicalLeak {
            incident: "c".into(),
            lat: 25.0,
            lon: 120.0,
            start_s: 0.0,
            end_s: 3600.0,
            rate_g_s: 1000.0,
            wind_m_s: 2.0,
            wind_from_deg: 270.0, // from the west: the plume goes east
            stability: 'D',
            height_m: 5.0,
            molar_mass: 17.03,
            gas: "氨".into(),
        };
        let east = |km: f64| LatLon { lat: 25.0, lon: 120.0 + km / (KM_PER_DEG_LAT * 25f64.to_radians().cos()) };
        let west = LatLon { lat: 25.0, lon: 119.99 };
        let north_of_plume = LatLon { lat: 25.0 + 2.0 / KM_PER_DEG_LAT, lon: east(1.0).lon };
        // (place, time, ppm range)
        let cases = [
            ("1 km downwind", east(1.0), 1800.0, (50.0, 5000.0)),
            ("5 km downwind", east(5.0), 3000.0, (2.0, 400.0)),
            ("front not there yet", east(5.0), 1000.0, (0.0, 0.0)),
            ("upwind", west, 1800.0, (0.0, 0.0)),
            ("2 km crosswind", north_of_plume, 1800.0, (0.0, 0.5)),
            ("after the tail passed", east(1.0), 4200.0, (0.0, 0.0)),
        ];
        for (name, at, t, (lo, hi)) in cases {
            let ppm = leak.ppm(at, t);
            assert!((lo..=hi).contains(&ppm), "{name}: {ppm} ppm, want {lo}..={hi}");
        }
        assert!(leak.ppm(east(1.0), 1800.0) > leak.ppm(east(5.0), 3000.0));
        let (sy, sz) = briggs_rural('D', 1000.0);
        assert!(close(sy, 76.3, 0.1) && close(sz, 37.9, 0.1), "{sy} {sz}");
    }
}
