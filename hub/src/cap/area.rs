//! Areas: polygon rings as CAP wants them, and areas made from division polygons.

use geo::{Coord, LineString, MultiPolygon, Simplify};

use super::Area;

/// The `valueName` of a geocode holding a GB/T 2260 division code.
pub const GEOCODE_GB2260: &str = "GB/T 2260";

/// The fewest points of a CAP polygon: three corners and the first one again.
const MIN_RING_POINTS: usize = 4;

/// Below this area (square degrees, about 0.01 m²) a ring is a line or a point.
const MIN_RING_AREA: f64 = 1e-12;

/// An `area` for the division `desc` from its polygons (`geo`'s x is the longitude, y the
/// latitude): the outer ring of each polygon (holes are not kept: CAP polygons have none, and the
/// area then covers them too), each simplified by Ramer–Douglas–Peucker with an epsilon grown
/// until it has at most `max_points` points (at least 4 are always allowed), closed, and with
/// coordinates rounded to 6 decimals. Rings that are degenerate (fewer than three distinct
/// corners, no area) or have a coordinate that is not a finite WGS 84 latitude/longitude are
/// dropped. `geocode` is `(valueName, value)`, e.g. `(GEOCODE_GB2260, "330302")`.
pub fn area_from_geometry(
    desc: &str,
    geometry: &MultiPolygon<f64>,
    max_points: usize,
    geocode: Option<(&str, &str)>,
) -> Area {
    let max_points = max_points.max(MIN_RING_POINTS);
    Area {
        area_desc: desc.to_owned(),
        polygons: geometry.iter().filter_map(|polygon| simplified_ring(polygon.exterior(), max_points)).collect(),
        circles: Vec::new(),
        geocodes: geocode.map(|(name, value)| (name.to_owned(), value.to_owned())).into_iter().collect(),
    }
}

/// `ring` as `(lat, lon)` points, closed, with at most `max_points` points; `None` when degenerate.
fn simplified_ring(ring: &LineString<f64>, max_points: usize) -> Option<Vec<(f64, f64)>> {
    let points: Vec<(f64, f64)> = ring.coords().map(|c| (c.y, c.x)).collect();
    let ring = normalise_ring(&points)?;
    if ring.len() <= max_points {
        return Some(ring);
    }
    let line = LineString::from(ring.iter().map(|&(lat, lon)| Coord { x: lon, y: lat }).collect::<Vec<_>>());
    let simplify = |epsilon: f64| -> Vec<(f64, f64)> { line.simplify(epsilon).coords().map(|c| (c.y, c.x)).collect() };

    // The ring's extent bounds the useful epsilons: past it everything collapses to the first point.
    let (mut min_lat, mut max_lat, mut min_lon, mut max_lon) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(lat, lon) in &ring {
        min_lat = min_lat.min(lat);
        max_lat = max_lat.max(lat);
        min_lon = min_lon.min(lon);
        max_lon = max_lon.max(lon);
    }
    let extent = (max_lat - min_lat).hypot(max_lon - min_lon);

    // Grow epsilon until the ring is small enough, then narrow it down to keep as many points as
    // allowed.
    let mut high = extent * 1e-7;
    let mut best = simplify(high);
    let mut grown = 0;
    while best.len() > max_points && grown < 64 {
        high *= 2.0;
        best = simplify(high);
        grown += 1;
    }
    let mut low = high / 2.0;
    for _ in 0..24 {
        let middle = (low + high) / 2.0;
        let candidate = simplify(middle);
        if candidate.len() <= max_points {
            high = middle;
            best = candidate;
        } else {
            low = middle;
        }
    }
    match normalise_ring(&best) {
        Some(simplified) if simplified.len() <= max_points => Some(simplified),
        // Collapsed to a line, or (never seen) still too big: keep evenly spaced corners instead.
        _ => normalise_ring(&decimate(&ring, max_points)),
    }
}

/// `max_points - 1` evenly spaced corners of the closed `ring`, closed again.
fn decimate(ring: &[(f64, f64)], max_points: usize) -> Vec<(f64, f64)> {
    let corners = ring.len().saturating_sub(1);
    let keep = max_points.saturating_sub(1).min(corners);
    let mut out: Vec<(f64, f64)> = (0..keep).filter_map(|i| ring.get(i * corners / keep.max(1)).copied()).collect();
    if let Some(&first) = out.first() {
        out.push(first);
    }
    out
}

/// A ring as CAP wants it, from `(lat, lon)` points: coordinates rounded to 6 decimals, repeated
/// consecutive points removed, closed (the first point again at the end), at least 4 points.
/// `None` when a coordinate is not finite or out of range (|lat| ≤ 90, |lon| ≤ 180), or when the
/// ring has fewer than three distinct corners or no area.
pub(crate) fn normalise_ring(points: &[(f64, f64)]) -> Option<Vec<(f64, f64)>> {
    let mut ring: Vec<(f64, f64)> = Vec::with_capacity(points.len() + 1);
    for &(lat, lon) in points {
        if !valid_point(lat, lon) {
            return None;
        }
        let point = (round6(lat), round6(lon));
        if ring.last() != Some(&point) {
            ring.push(point);
        }
    }
    while ring.len() > 1 && ring.last() == ring.first() {
        ring.pop();
    }
    let first = *ring.first()?;
    if ring.len() + 1 < MIN_RING_POINTS || twice_area(&ring).abs() < 2.0 * MIN_RING_AREA {
        return None;
    }
    ring.push(first);
    Some(ring)
}

/// Whether `(lat, lon)` is a finite WGS 84 position.
pub(crate) fn valid_point(lat: f64, lon: f64) -> bool {
    lat.is_finite() && lon.is_finite() && (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)
}

fn round6(x: f64) -> f64 {
    let rounded = (x * 1e6).round() / 1e6;
    // No "-0": it would be written "-0".
    if rounded == 0.0 { 0.0 } else { rounded }
}

/// Twice the signed area of an open ring (shoelace), in square degrees; measured from the first
/// point so that small rings far from (0, 0) keep their precision.
fn twice_area(ring: &[(f64, f64)]) -> f64 {
    let Some(&(y0, x0)) = ring.first() else { return 0.0 };
    let mut sum = 0.0;
    for (i, &(y1, x1)) in ring.iter().enumerate() {
        let (y2, x2) = ring.get(i + 1).copied().unwrap_or((y0, x0));
        sum += (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0);
    }
    sum
}
