//! Reporting units and the damage they report.
//!
//! Every county of a node with `units = true` (inside `[units] within`, when given) has one
//! reporting unit, device `unit-{code}`, at the county's interior point. For each incident the
//! county's **severity** s(t) ∈ [0, 1] is the running maximum, over time, of what the incident's
//! hazards do at that point (sampled every minute):
//!
//! | hazard | severity |
//! |---|---|
//! | typhoon | the larger of (wind − 17.2 m/s) / (51 − 17.2) and the rain fallen so far / 400 mm |
//! | flood | the rise felt (nearest gauge within reach) / 3 m |
//! | earthquake | (intensity − 5.5) / 4.5 |
//! | chemical leak | ppm / 500, the worst of the interior point and the plume's centreline where it crosses the county (a plume is narrow) |
//!
//! Being a running maximum, s never decreases, and every figure is a non-decreasing function of
//! s (`floor(population × rate × s^exponent × vulnerability × scale)`, rates per hazard family
//! below; the county's vulnerability is drawn once in 0.6..1.4), so the cumulative figures a
//! unit files never go down. A unit files its initial report (初报) some time after s first
//! reaches `min_severity`, updates (续报) every `update_every_s`, and its final report (核报) at
//! `final_at_s`; each carries all twelve indicators as of its `observed_at`.

use std::collections::BTreeMap;

use yingji_proto::report::{Figures, Hazard, Stage};

use super::seed::{rng, sub_seed, unit};
use super::stations::Env;
use crate::geography::Division;
use crate::hazard::{HazardSpec, LatLon};
use crate::scenario::{DamageParams, Scenario};

/// The step of the severity series, seconds.
pub const SEVERITY_STEP_S: u64 = 60;

/// One report a unit will file.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedReport {
    pub at_ms: u64,
    /// Device id `unit-{county}`.
    pub unit: String,
    /// Node index.
    pub node: usize,
    /// Report id, unique per unit.
    pub id: String,
    /// Incident index.
    pub incident: usize,
    pub stage: Stage,
    pub region: String,
    pub location: LatLon,
    pub figures: Figures,
    pub text: String,
}

/// (rate per person at s = 1, exponent of s) for each indicator, in the order of
/// [`Figures::counts`] then [`Figures::amounts`].
type Rates = [(f64, f64); 12];

/// Water: floods, rainstorms, typhoons, storm surges.
const WATER: Rates = [
    (0.5, 1.0),
    (4e-5, 3.0),
    (2e-5, 3.0),
    (4e-4, 2.0),
    (0.15, 1.5),
    (0.06, 1.5),
    (8e-4, 2.5),
    (2.5e-3, 2.0),
    (1.2e-2, 1.5),
    (0.03, 1.0),
    (0.008, 2.0),
    (2500.0, 2.0),
];
/// Earthquakes, landslides, debris flows.
const GEO: Rates = [
    (0.6, 1.0),
    (4e-4, 3.0),
    (5e-5, 3.0),
    (2e-3, 2.0),
    (0.2, 1.5),
    (0.1, 1.5),
    (8e-3, 2.5),
    (1.5e-2, 2.0),
    (4e-2, 1.5),
    (0.002, 1.0),
    (5e-4, 2.0),
    (8000.0, 2.0),
];
/// Chemical accidents and anything else.
const OTHER: Rates = [
    (0.05, 1.0),
    (2e-5, 3.0),
    (0.0, 1.0),
    (5e-4, 2.0),
    (0.03, 1.5),
    (0.01, 1.5),
    (0.0, 1.0),
    (0.0, 1.0),
    (1e-4, 1.5),
    (0.005, 1.0),
    (0.002, 2.0),
    (1000.0, 2.0),
];

fn rates(hazard: Hazard) -> &'static Rates {
    match hazard {
        Hazard::Flood | Hazard::Rainstorm | Hazard::Typhoon | Hazard::StormSurge => &WATER,
        Hazard::Earthquake | Hazard::Landslide | Hazard::DebrisFlow => &GEO,
        _ => &OTHER,
    }
}

/// The cumulative figures of a county of `population` at severity `s`.
pub fn figures(hazard: Hazard, s: f64, population: u64, vulnerability: f64, damage: &DamageParams) -> Figures {
    let r = rates(hazard);
    let s = s.clamp(0.0, 1.0);
    let pop = population as f64;
    let value = |i: usize, extra: f64| -> f64 {
        let (rate, exponent) = r[i];
        (pop * rate * s.powf(exponent) * vulnerability * damage.scale.max(0.0) * extra).floor().max(0.0)
    };
    let count = |i: usize, extra: f64| Some(value(i, extra).min(1e12) as i64);
    let casualties = damage.casualties.max(0.0);
    Figures {
        affected: count(0, 1.0),
        deaths: count(1, casualties),
        missing: count(2, casualties),
        injured: count(3, casualties),
        relocated: count(4, 1.0),
        needing_aid: count(5, 1.0),
        houses_collapsed: count(6, 1.0),
        houses_severely_damaged: count(7, 1.0),
        houses_damaged: count(8, 1.0),
        crop_area_ha: Some(value(9, 1.0).min(1e8)),
        crop_failure_ha: Some(value(10, 1.0).min(1e8)),
        direct_loss_cny: Some(value(11, 1.0).min(1e13)),
    }
}

/// The severity an incident's hazards cause at `at`, time `t_s`, given the rain fallen there so
/// far (mm). `plume_points[i]` are the points of the i-th hazard's plume centreline inside the
/// county (empty for other hazards).
fn severity_now(
    hazards: &[&HazardSpec],
    env: &Env,
    at: LatLon,
    plume_points: &[Vec<LatLon>],
    t_s: f64,
    rain_mm: f64,
) -> f64 {
    let mut s: f64 = 0.0;
    for (i, h) in hazards.iter().enumerate() {
        let v = match h {
            HazardSpec::Typhoon(t) => {
                let (wind, _) = t.wind_and_rain(at, t_s);
                ((wind - 17.2) / (51.0 - 17.2)).max(rain_mm / 400.0)
            }
            HazardSpec::Flood(f) => {
                env.floods.iter().find(|p| p.wave == *f).map_or(0.0, |p| p.rise_near(at, t_s) / 3.0)
            }
            HazardSpec::Earthquake(q) => {
                if t_s >= q.arrival_s(at) {
                    (q.peak_intensity(at) - 5.5) / 4.5
                } else {
                    0.0
                }
            }
            HazardSpec::ChemicalLeak(c) => {
                let points = plume_points.get(i).map(Vec::as_slice).unwrap_or_default();
                points.iter().map(|p| c.ppm(*p, t_s)).fold(c.ppm(at, t_s), f64::max) / 500.0
            }
        };
        s = s.max(v);
    }
    s.clamp(0.0, 1.0)
}

/// Distances downwind (km) at which a plume's centreline is looked at.
const PLUME_KM: [f64; 10] = [0.3, 0.6, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0];

/// The severity series of one county for one incident: s at 0, 60, 120, … s (running maximum),
/// at the county's interior point; a gas plume, being narrow, is looked at along its centreline
/// where that crosses the county.
pub fn severity_series(hazards: &[&HazardSpec], env: &Env, county: &Division, duration_s: u64) -> Vec<f64> {
    use geo::Contains;
    let at = county.interior;
    let plume_points: Vec<Vec<LatLon>> = hazards
        .iter()
        .map(|h| match h {
            HazardSpec::ChemicalLeak(c) => {
                let to = (c.wind_from_deg + 180.0).to_radians();
                PLUME_KM
                    .iter()
                    .map(|km| LatLon {
                        lat: c.lat + km * to.cos() / 111.195,
                        lon: c.lon + km * to.sin() / (111.195 * c.lat.to_radians().cos()),
                    })
                    .filter(|p| county.shape.contains(&geo::Point::new(p.lon, p.lat)))
                    .collect()
            }
            _ => Vec::new(),
        })
        .collect();
    let typhoons: Vec<&crate::hazard::Typhoon> = hazards
        .iter()
        .filter_map(|h| match h {
            HazardSpec::Typhoon(t) => Some(t),
            _ => None,
        })
        .collect();
    let steps = duration_s / SEVERITY_STEP_S + 1;
    let mut out = Vec::with_capacity(steps as usize);
    let mut rain_mm = 0.0;
    let mut running: f64 = 0.0;
    for i in 0..steps {
        let t = (i * SEVERITY_STEP_S) as f64;
        if i > 0 {
            let mid = t - SEVERITY_STEP_S as f64 / 2.0;
            let rate: f64 = typhoons.iter().map(|ty| ty.wind_and_rain(at, mid).1).sum();
            rain_mm += rate * SEVERITY_STEP_S as f64 / 3600.0;
        }
        running = running.max(severity_now(hazards, env, at, &plume_points, t, rain_mm));
        out.push(running);
    }
    out
}

/// The severity at `t_ms` from a series.
fn severity_at(series: &[f64], t_ms: u64) -> f64 {
    let i = (t_ms / 1000 / SEVERITY_STEP_S) as usize;
    series.get(i).or(series.last()).copied().unwrap_or(0.0)
}

/// The stage names in Chinese, for the report text.
fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::Initial => "初报",
        Stage::Update => "续报",
        Stage::Final => "核报",
    }
}

/// Plans every report of every unit.
pub fn plan(s: &Scenario, env: &Env, seed: u64) -> Vec<PlannedReport> {
    let duration_ms = s.duration_s * 1000;
    let final_default = (s.duration_s as f64 - 600.0).max(s.duration_s as f64 * 0.9);
    let final_at_s = s.units.final_at_s.unwrap_or(final_default);
    // Counties with units, and the node each reports to.
    let mut counties: BTreeMap<&str, (usize, &Division)> = BTreeMap::new();
    for (n, node) in s.nodes.iter().enumerate().filter(|(_, n)| n.units) {
        for code in &node.divisions {
            let Some(d) = s.geography.get(code) else { continue };
            if d.level != crate::geography::Level::County {
                continue;
            }
            let inside = s.units.within.is_empty() || s.units.within.iter().any(|w| within(code, w));
            if inside {
                counties.entry(d.code.as_str()).or_insert((n, d));
            }
        }
    }
    let mut out = Vec::new();
    for (i, incident) in s.incidents.iter().enumerate() {
        let hazards: Vec<&HazardSpec> = s.hazards.iter().filter(|h| h.incident() == incident.id).collect();
        if hazards.is_empty() {
            continue;
        }
        for (code, (node, d)) in &counties {
            let series = severity_series(&hazards, env, d, s.duration_s);
            let Some(first) = series.iter().position(|v| *v >= s.units.min_severity) else { continue };
            let unit_id = format!("unit-{code}");
            let mut r = rng(seed, &["unit", code, &incident.id]);
            let vulnerability = 0.6 + 0.8 * unit(sub_seed(seed, &["vulnerability", code]));
            let [lo, hi] = s.units.initial_after_s;
            let first_ms = first as u64 * SEVERITY_STEP_S * 1000;
            let initial_ms = first_ms + (uniform(&mut r, lo, hi) * 1000.0) as u64;
            let final_ms = ((final_at_s + uniform(&mut r, 0.0, 120.0)) * 1000.0) as u64;
            let final_ms = final_ms.min(duration_ms.saturating_sub(1));
            if initial_ms >= duration_ms {
                continue;
            }
            let mut times = vec![(initial_ms, Stage::Initial)];
            let mut t = initial_ms;
            loop {
                t += (s.units.update_every_s * uniform(&mut r, 0.8, 1.2) * 1000.0) as u64;
                if t >= final_ms {
                    break;
                }
                times.push((t, Stage::Update));
            }
            if final_ms > initial_ms {
                times.push((final_ms, Stage::Final));
            }
            for (seq, (at_ms, stage)) in times.into_iter().enumerate() {
                let severity = severity_at(&series, at_ms);
                let figures = figures(incident.hazard, severity, d.population, vulnerability, &s.damage);
                let text = format!(
                    "{} {}{}（第{}次）：受灾{}人，死亡{}人，失踪{}人，紧急转移安置{}人。",
                    d.name,
                    if incident.name.is_empty() { &incident.id } else { &incident.name },
                    stage_name(stage),
                    seq + 1,
                    figures.affected.unwrap_or(0),
                    figures.deaths.unwrap_or(0),
                    figures.missing.unwrap_or(0),
                    figures.relocated.unwrap_or(0),
                );
                out.push(PlannedReport {
                    at_ms,
                    unit: unit_id.clone(),
                    node: *node,
                    id: format!("{}.{:03}", incident.id, seq + 1),
                    incident: i,
                    stage,
                    region: code.to_string(),
                    location: d.interior,
                    figures,
                    text,
                });
            }
        }
    }
    out.sort_by(|a, b| (a.at_ms, &a.unit, &a.id).cmp(&(b.at_ms, &b.unit, &b.id)));
    out
}

/// Whether `code` lies inside division `outer` (by the shape of the codes).
pub fn within(code: &str, outer: &str) -> bool {
    if code == outer {
        return true;
    }
    if outer.ends_with("0000") {
        code.get(..2) == outer.get(..2)
    } else if outer.ends_with("00") {
        code.get(..4) == outer.get(..4)
    } else {
        false
    }
}

fn uniform(r: &mut rand_chacha::ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    use rand::Rng;
    if hi > lo { r.random_range(lo..hi) } else { lo }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_grow_with_severity_and_differ_by_hazard() {
        let d = DamageParams::default();
        let mut last = figures(Hazard::Typhoon, 0.0, 500_000, 1.0, &d);
        assert_eq!(last.deaths, Some(0));
        for k in 1..=20 {
            let now = figures(Hazard::Typhoon, k as f64 / 20.0, 500_000, 1.0, &d);
            for ((name, a), (_, b)) in last.counts().into_iter().zip(now.counts()) {
                assert!(a <= b, "{name} fell from {a:?} to {b:?} at s = {}", k as f64 / 20.0);
            }
            last = now;
        }
        // (hazard, s, deaths, relocated)
        let cases = [
            (Hazard::Typhoon, 1.0, 20, 75_000),
            (Hazard::Typhoon, 0.5, 2, 26_516),
            (Hazard::Earthquake, 1.0, 200, 100_000),
            (Hazard::Hazmat, 1.0, 10, 15_000),
        ];
        for (hazard, s, deaths, relocated) in cases {
            let f = figures(hazard, s, 500_000, 1.0, &d);
            assert_eq!((f.deaths, f.relocated), (Some(deaths), Some(relocated)), "{hazard:?} at {s}");
            assert!(f.validate().is_ok());
        }
        let doubled = figures(Hazard::Typhoon, 1.0, 500_000, 1.0, &DamageParams { scale: 2.0, casualties: 1.5 });
        assert_eq!((doubled.deaths, doubled.relocated), (Some(60), Some(150_000)));
    }

    #[test]
    fn codes_inside_divisions() {
        let cases = [
            ("910101", "910000", true),
            ("910101", "910100", true),
            ("910101", "910101", true),
            ("910201", "910100", false),
            ("920101", "910000", false),
        ];
        for (code, outer, want) in cases {
            assert_eq!(within(code, outer), want, "{code} in {outer}");
        }
    }
}
