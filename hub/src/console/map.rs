//! The map's data: the division polygons simplified for the screen, and the current picture
//! (levels by division, incidents, active warnings, stations, teams) as markers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use geo::{BoundingRect, Simplify};
use serde::Deserialize;
use serde_json::json;
use yingji_node::regions::Regions;

use super::Ctx;
use crate::http::{ApiError, AppState};

/// Points per polygon ring the screen needs at most.
const RING_POINTS: usize = 300;

/// A ring of at most about [`RING_POINTS`] points: Ramer–Douglas–Peucker with a tolerance
/// doubled from a ten-thousandth of the ring's extent until it fits.
fn simplify_ring(ring: &geo::LineString<f64>) -> geo::LineString<f64> {
    if ring.0.len() <= RING_POINTS {
        return ring.clone();
    }
    let extent = ring.bounding_rect().map(|r| r.width().max(r.height())).unwrap_or(1.0);
    let mut epsilon = (extent / 10_000.0).max(1e-7);
    let mut out = ring.simplify(epsilon);
    while out.0.len() > RING_POINTS && epsilon < extent {
        epsilon *= 2.0;
        out = ring.simplify(epsilon);
    }
    out
}

fn ring_json(ring: &geo::LineString<f64>) -> serde_json::Value {
    let round = |v: f64| (v * 100_000.0).round() / 100_000.0;
    serde_json::Value::Array(ring.0.iter().map(|c| json!([round(c.x), round(c.y)])).collect())
}

/// The regions file as a GeoJSON FeatureCollection of simplified MultiPolygons, with `code`,
/// `name`, `parent` and `depth` (0 for provinces) in the properties; shallow divisions first,
/// so that a county's colour is drawn over its province's.
pub fn simplified_geojson(regions: &Regions) -> String {
    let depth = |code: &str| regions.path(code).len().saturating_sub(1);
    let mut divisions: Vec<_> = regions.divisions().iter().collect();
    divisions.sort_by_key(|d| (depth(&d.code), d.code.clone()));
    let features: Vec<_> = divisions
        .iter()
        .map(|d| {
            let polygons: Vec<_> = d
                .shape
                .0
                .iter()
                .map(|p| {
                    let mut rings = vec![ring_json(&simplify_ring(p.exterior()))];
                    rings.extend(p.interiors().iter().map(|r| ring_json(&simplify_ring(r))));
                    serde_json::Value::Array(rings)
                })
                .collect();
            json!({"type": "Feature",
                   "properties": {"code": d.code, "name": d.name, "parent": d.parent, "depth": depth(&d.code)},
                   "geometry": {"type": "MultiPolygon", "coordinates": polygons}})
        })
        .collect();
    json!({"type": "FeatureCollection", "features": features}).to_string()
}

pub(super) async fn regions(State(state): State<AppState>, ctx: Ctx) -> Response {
    let text = ctx.console.regions_geojson.get_or_init(|| Arc::from(simplified_geojson(&state.regions))).clone();
    let response = (
        [(header::CONTENT_TYPE, "application/geo+json"), (header::CACHE_CONTROL, "private, max-age=300")],
        text.to_string(),
    )
        .into_response();
    super::secure(response, &ctx.console)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MapQuery {
    exercise: Option<bool>,
}

/// A small, stable offset (±0.02°) from an id, so that stations placed at their division's
/// centre do not all sit on one point.
fn jitter(id: &str) -> (f64, f64) {
    let h = crate::auth::hash(id);
    let a = u16::from_str_radix(h.get(0..4).unwrap_or("0"), 16).unwrap_or(0);
    let b = u16::from_str_radix(h.get(4..8).unwrap_or("0"), 16).unwrap_or(0);
    ((f64::from(a) / 65535.0 - 0.5) * 0.04, (f64::from(b) / 65535.0 - 0.5) * 0.04)
}

fn location_of(body: &serde_json::Value) -> Option<(f64, f64)> {
    let loc = body.get("location")?;
    let (lat, lon) = (loc.get("lat")?.as_f64()?, loc.get("lon")?.as_f64()?);
    ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some((lat, lon))
}

/// The picture of one mode (real or exercise) as the map draws it.
pub(super) async fn data(
    State(state): State<AppState>,
    ctx: Ctx,
    q: Result<Query<MapQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = q.map(|Query(q)| q).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    let exercise = q.exercise.unwrap_or(ctx.exercise());
    let regions = &state.regions;
    let centre = |code: &str| crate::dispatch::destination(regions, code);

    // Levels by division: a region's own level, and each incident's at the division its
    // assessment judged (a level set by hand judges none: then the provinces it reports from).
    let mut levels: BTreeMap<String, u8> = BTreeMap::new();
    let mut undivided: HashMap<String, u8> = HashMap::new();
    let raise = |levels: &mut BTreeMap<String, u8>, code: String, level: u8| {
        let e = levels.entry(code).or_insert(level);
        *e = (*e).min(level);
    };
    for (subject, level, division) in state.store.levels_in_force(exercise).await? {
        match subject.strip_prefix("region:") {
            Some(code) => raise(&mut levels, code.to_owned(), level),
            None if division.is_empty() => {
                undivided.insert(subject, level);
            }
            None => raise(&mut levels, division, level),
        }
    }

    let mut markers = Vec::new();
    for i in state.store.incidents(Some(exercise)).await? {
        let rows = state.store.report_rows(&i.id, exercise).await?;
        if let Some(&level) = undivided.get(&i.id) {
            for r in &rows {
                raise(&mut levels, crate::picture::province_of(regions, &r.region), level);
            }
        }
        // The region hit hardest (deaths and missing, then affected) marks the incident.
        let weight = |figures: &str| {
            let f: serde_json::Value = serde_json::from_str(figures).unwrap_or_default();
            let n = |k: &str| f.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0);
            (n("deaths") + n("missing"), n("affected"))
        };
        let mut ranked: Vec<_> = rows.iter().map(|r| (weight(&r.figures), r.region.clone())).collect();
        ranked.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(&b.1)));
        let mut at = ranked.iter().find_map(|(_, code)| centre(code));
        if at.is_none() {
            let events = state.store.incident_events(&i.id, exercise, 1).await?;
            at = events.first().and_then(|e| location_of(&e.body));
        }
        if let Some((lat, lon)) = at {
            markers.push(json!({"kind": "incident", "id": i.id, "label": i.id, "hazard": i.hazard, "level": i.level,
                                "reports": i.reports, "lat": lat, "lon": lon}));
        }
    }
    for w in state.store.warnings(true, Some(exercise)).await? {
        let at = location_of(&w.body).or_else(|| {
            centre(&w.region).map(|(lat, lon)| {
                let (dy, dx) = jitter(&w.key);
                (lat + dy, lon + dx)
            })
        });
        if let Some((lat, lon)) = at {
            markers.push(
                json!({"kind": "warning", "id": w.key, "label": w.station.clone().unwrap_or_else(|| w.kind.clone()),
                                "colour": w.colour, "warning": w.kind, "region": w.region, "incident": w.incident,
                                "lat": lat, "lon": lon}),
            );
        }
    }
    // Stations and teams are the same in both modes: the real network.
    for s in state.store.stations(None).await? {
        let at = location_of(&s.body).or_else(|| {
            centre(&s.region).map(|(lat, lon)| {
                let (dy, dx) = jitter(&format!("{}/{}", s.node, s.station));
                (lat + dy, lon + dx)
            })
        });
        if let Some((lat, lon)) = at {
            markers.push(json!({"kind": "station", "id": format!("{}/{}", s.node, s.station), "label": s.station,
                                "node": s.node, "online": s.online, "lat": lat, "lon": lon}));
        }
    }
    for t in state.store.teams().await? {
        if t.lat.is_finite() && t.lon.is_finite() {
            markers.push(json!({"kind": "team", "id": t.id, "label": t.name, "status": t.status, "node": t.node,
                                "capabilities": t.capabilities, "lat": t.lat, "lon": t.lon}));
        }
    }
    let body = json!({"exercise": exercise, "levels": levels, "markers": markers});
    Ok(super::secure(([(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response(), &ctx.console))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_are_simplified_to_a_few_hundred_points() {
        let n = 5000;
        let ring: geo::LineString<f64> = (0..=n)
            .map(|i| {
                let a = std::f64::consts::TAU * f64::from(i) / f64::from(n);
                let r = 1.0 + 0.01 * (a * 40.0).sin();
                geo::coord! { x: 120.0 + r * a.cos(), y: 30.0 + r * a.sin() }
            })
            .collect();
        let out = simplify_ring(&ring);
        assert!(out.0.len() <= RING_POINTS && out.0.len() > 50, "{}", out.0.len());
        assert_eq!(out.0.first(), out.0.last(), "still closed");
    }

    #[test]
    fn jitter_is_small_and_stable() {
        let (a, b) = jitter("n/s1");
        assert_eq!((a, b), jitter("n/s1"));
        assert!(a.abs() <= 0.02 && b.abs() <= 0.02);
    }
}
