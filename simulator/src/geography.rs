//! The sample geography: fictional provinces, prefectures and counties that tile without gaps or
//! overlaps, with GB/T 2260-style codes, made reproducibly from a seed; and the reading of a
//! regions file into the divisions the model works with.
//!
//! # How the geography is made ([`generate`])
//! One lattice of `rows × Σ cols` cells, each cell a county. Every lattice vertex is moved by a
//! seeded jitter, and every lattice edge is a polyline through `edge_points` seeded points, so
//! that counties look like counties; since a vertex or an edge is computed once from its own
//! lattice position, two neighbours share it exactly and the counties tile the plane. Provinces
//! are runs of columns whose borders step one column left or right from row to row; a province's
//! rows are cut into bands of `band_rows` rows and each band into `splits` prefectures at fixed
//! columns. Every division's polygon is the union of its cells, made by cancelling the lattice
//! edges its cells share (exact, since shared edges are identical), so prefectures and provinces
//! fit their counties exactly. Codes: province `PP0000`, prefecture `PPFF00`, county `PPFFCC`.
//!
//! Pure: the command that writes the files lives in the binary (`yingji-sim geography --seed N
//! --out FILE`, docs/scenarios.md).

use std::collections::{BTreeMap, BTreeSet};

use geo::{Area, BoundingRect, Contains, InteriorPoint, MultiPolygon, Point, Polygon};
use serde_json::json;

use crate::hazard::LatLon;
use crate::model::seed::{sub_seed, unit};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoSpec {
    /// The south-west corner of the lattice.
    pub origin: LatLon,
    /// The size of a cell (a county), degrees.
    pub cell_deg: f64,
    /// Rows of cells (south to north).
    pub rows: usize,
    /// Provinces from west to east.
    pub provinces: Vec<ProvinceSpec>,
    /// Rows per band of prefectures.
    pub band_rows: usize,
    /// Prefectures per band.
    pub splits: usize,
    /// How far a lattice vertex may move, as a fraction of a cell (keep below 0.3).
    pub jitter: f64,
    /// Points inserted along each lattice edge.
    pub edge_points: usize,
    /// Decimal places of the coordinates written.
    pub decimals: i32,
}

/// One province of a [`GeoSpec`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProvinceSpec {
    /// The two-digit province prefix, e.g. `"91"`.
    pub prefix: String,
    pub name: String,
    /// Its width in columns (the border with the next province steps ±1 per row).
    pub cols: usize,
}

impl GeoSpec {
    /// The shipped sample: three provinces of 30–40 counties on the coast of a fictional sea,
    /// codes 91/92/93 (GB/T 2260 uses 11–65 and 71, 81, 82: no real division has these).
    pub fn sample() -> GeoSpec {
        let p = |prefix: &str, name: &str, cols| ProvinceSpec { prefix: prefix.into(), name: name.into(), cols };
        GeoSpec {
            origin: LatLon { lat: 26.0, lon: 117.0 },
            cell_deg: 0.35,
            rows: 6,
            provinces: vec![p("91", "青岚省", 6), p("92", "瀚海省", 6), p("93", "云泽省", 6)],
            band_rows: 2,
            splits: 2,
            jitter: 0.22,
            edge_points: 2,
            decimals: 4,
        }
    }
}

/// A tiny deterministic generator (one per purpose, from the seed and a label).
struct Draw {
    seed: u64,
}

impl Draw {
    fn f(&self, parts: &[&str]) -> f64 {
        unit(sub_seed(self.seed, parts))
    }
}

/// Lattice vertex id: (row, col) of the lattice point, rows 0..=rows, cols 0..=cols.
type Vertex = (usize, usize);

/// Generates the geography: a FeatureCollection of provinces, prefectures and counties (in that
/// order, each by code) with properties `code`, `name`, `parent` (not for provinces), `level`
/// and `population`. The same seed and spec give the same bytes.
pub fn generate(seed: u64, spec: &GeoSpec) -> geojson::FeatureCollection {
    let layout = Layout::new(seed, spec);
    let mut features = Vec::new();
    let draw = Draw { seed };
    let mut names = NamePool::new(seed);
    // Counties are made first (their populations sum upward) and written after their parents.
    let mut county_features = Vec::new();
    let mut prefecture_features = Vec::new();
    let mut province_features = Vec::new();
    for (p, province) in spec.provinces.iter().enumerate() {
        let province_code = format!("{}0000", province.prefix);
        let mut province_pop = 0;
        let prefectures: Vec<&(usize, usize)> = layout.prefectures.keys().filter(|k| k.0 == p).collect();
        for &&(_, f) in &prefectures {
            let prefecture_code = format!("{}{:02}00", province.prefix, f + 1);
            let prefecture_name = names.prefecture();
            let mut prefecture_pop = 0;
            for (c, cell) in layout.prefectures[&(p, f)].iter().enumerate() {
                let code = format!("{}{:02}{:02}", province.prefix, f + 1, c + 1);
                let pop = 150_000 + (draw.f(&["population", &code]) * 750_000.0) as u64;
                prefecture_pop += pop;
                let name = names.county(c < 2);
                county_features.push(feature(
                    &code,
                    &name,
                    Some(&prefecture_code),
                    "county",
                    pop,
                    layout.polygon(&[*cell], spec),
                ));
            }
            province_pop += prefecture_pop;
            prefecture_features.push(feature(
                &prefecture_code,
                &prefecture_name,
                Some(&province_code),
                "prefecture",
                prefecture_pop,
                layout.polygon(&layout.prefectures[&(p, f)], spec),
            ));
        }
        let cells: Vec<(usize, usize)> = layout.owner.iter().filter(|(_, o)| o.0 == p).map(|(c, _)| *c).collect();
        province_features.push(feature(
            &province_code,
            &province.name,
            None,
            "province",
            province_pop,
            layout.polygon(&cells, spec),
        ));
    }
    features.extend(province_features);
    features.extend(prefecture_features);
    features.extend(county_features);
    geojson::FeatureCollection { bbox: None, features, foreign_members: None }
}

fn feature(
    code: &str,
    name: &str,
    parent: Option<&str>,
    level: &str,
    population: u64,
    ring: Vec<Vec<f64>>,
) -> geojson::Feature {
    let mut properties = serde_json::Map::new();
    properties.insert("code".into(), json!(code));
    properties.insert("name".into(), json!(name));
    if let Some(parent) = parent {
        properties.insert("parent".into(), json!(parent));
    }
    properties.insert("level".into(), json!(level));
    properties.insert("population".into(), json!(population));
    geojson::Feature {
        bbox: None,
        geometry: Some(geojson::Geometry::new(geojson::Value::Polygon(vec![ring]))),
        id: None,
        properties: Some(properties),
        foreign_members: None,
    }
}

/// Which cell belongs to which province and prefecture, and the jittered lattice.
struct Layout {
    /// (row, col) → (province index, prefecture index within the province).
    owner: BTreeMap<(usize, usize), (usize, usize)>,
    /// (province, prefecture) → its cells in (row, col) order.
    prefectures: BTreeMap<(usize, usize), Vec<(usize, usize)>>,
    seed: u64,
}

impl Layout {
    fn new(seed: u64, spec: &GeoSpec) -> Layout {
        let draw = Draw { seed };
        let total: usize = spec.provinces.iter().map(|p| p.cols).sum();
        let n = spec.provinces.len();
        // Border b (between province b and b + 1) at each row: the nominal column ± 1.
        let mut borders = vec![vec![0usize; spec.rows]; n + 1];
        let mut nominal = 0;
        for (b, p) in spec.provinces.iter().enumerate() {
            if b > 0 {
                for (r, slot) in borders[b].iter_mut().enumerate() {
                    let step = (draw.f(&["border", &b.to_string(), &r.to_string()]) * 3.0).floor() as isize - 1;
                    *slot = (nominal as isize + step).clamp(1, total as isize - 1) as usize;
                }
            }
            nominal += p.cols;
        }
        borders[n] = vec![total; spec.rows];
        let mut owner = BTreeMap::new();
        let mut prefectures: BTreeMap<(usize, usize), Vec<(usize, usize)>> = BTreeMap::new();
        let mut nominal_start = 0;
        for (p, province) in spec.provinces.iter().enumerate() {
            let band_rows = spec.band_rows.max(1);
            let splits = spec.splits.max(1);
            for (r, (&start, &end)) in borders[p].iter().zip(&borders[p + 1]).enumerate() {
                let band = r / band_rows;
                for c in start..end {
                    // Fixed split columns inside the nominal width, so that every prefecture's
                    // row runs overlap from row to row (no pinches, no holes).
                    let offset = c as isize - nominal_start as isize;
                    let part = ((offset.max(0) as usize * splits) / province.cols.max(1)).min(splits - 1);
                    let prefecture = band * splits + part;
                    owner.insert((r, c), (p, prefecture));
                    prefectures.entry((p, prefecture)).or_default().push((r, c));
                }
            }
            nominal_start += province.cols;
        }
        Layout { owner, prefectures, seed }
    }

    /// A lattice vertex's position (jittered).
    fn vertex(&self, v: Vertex, spec: &GeoSpec) -> (f64, f64) {
        let draw = Draw { seed: self.seed };
        let (r, c) = (v.0.to_string(), v.1.to_string());
        let jx = (draw.f(&["vx", &r, &c]) - 0.5) * 2.0 * spec.jitter;
        let jy = (draw.f(&["vy", &r, &c]) - 0.5) * 2.0 * spec.jitter;
        (spec.origin.lon + (v.1 as f64 + jx) * spec.cell_deg, spec.origin.lat + (v.0 as f64 + jy) * spec.cell_deg)
    }

    /// The points of the lattice edge from `a` to `b`, `a` included, `b` excluded. The interior
    /// points are computed from the edge's canonical direction (lower vertex first), so both
    /// cells that share an edge get exactly the same points.
    fn edge(&self, a: Vertex, b: Vertex, spec: &GeoSpec) -> Vec<(f64, f64)> {
        let (lo, hi, reversed) = if a <= b { (a, b, false) } else { (b, a, true) };
        let (x0, y0) = self.vertex(lo, spec);
        let (x1, y1) = self.vertex(hi, spec);
        let draw = Draw { seed: self.seed };
        let key = format!("{}-{}-{}-{}", lo.0, lo.1, hi.0, hi.1);
        let n = spec.edge_points;
        let mut inner: Vec<(f64, f64)> = (1..=n)
            .map(|k| {
                let f = k as f64 / (n + 1) as f64;
                let wiggle = (draw.f(&["edge", &key, &k.to_string()]) - 0.5) * 0.3 * spec.cell_deg;
                // Perpendicular to the edge.
                let (dx, dy) = (x1 - x0, y1 - y0);
                let len = dx.hypot(dy).max(1e-12);
                (x0 + dx * f - dy / len * wiggle, y0 + dy * f + dx / len * wiggle)
            })
            .collect();
        if reversed {
            inner.reverse();
        }
        let mut out = vec![self.vertex(a, spec)];
        out.extend(inner);
        out
    }

    /// The outer ring of the union of `cells` (counter-clockwise, closed, rounded).
    fn polygon(&self, cells: &[(usize, usize)], spec: &GeoSpec) -> Vec<Vec<f64>> {
        // Directed lattice edges of every cell, counter-clockwise; an edge whose reverse is
        // also there is shared inside the set and cancels.
        let mut edges: BTreeSet<(Vertex, Vertex)> = BTreeSet::new();
        for &(r, c) in cells {
            let corners = [(r, c), (r, c + 1), (r + 1, c + 1), (r + 1, c)];
            for i in 0..4 {
                let (a, b) = (corners[i], corners[(i + 1) % 4]);
                if !edges.remove(&(b, a)) {
                    edges.insert((a, b));
                }
            }
        }
        let next: BTreeMap<Vertex, Vertex> = edges.iter().copied().collect();
        let mut ring = Vec::new();
        let Some(&(start, _)) = edges.iter().next() else { return ring };
        let mut at = start;
        let round = |x: f64| {
            let k = 10f64.powi(spec.decimals);
            (x * k).round() / k
        };
        for _ in 0..=edges.len() {
            let Some(&to) = next.get(&at) else { break };
            for (x, y) in self.edge(at, to, spec) {
                ring.push(vec![round(x), round(y)]);
            }
            at = to;
            if at == start {
                break;
            }
        }
        if let Some(first) = ring.first().cloned() {
            ring.push(first);
        }
        ring
    }
}

/// Fictional place names: syllables combined without repeats.
struct NamePool {
    prefectures: Vec<String>,
    counties: Vec<String>,
}

const FIRST: [&str; 24] = [
    "清", "安", "临", "青", "永", "长", "宁", "平", "云", "瑞", "兴", "和", "江", "泰", "嘉", "景", "丰", "南", "东",
    "西", "北", "乐", "新", "文",
];
const SECOND: [&str; 24] = [
    "川", "阳", "溪", "源", "山", "湖", "州", "城", "江", "宁", "河", "口", "安", "原", "丘", "浦", "林", "泉", "水",
    "岭", "海", "都", "陵", "谷",
];

impl NamePool {
    fn new(seed: u64) -> NamePool {
        let mut all: Vec<(u64, String)> = FIRST
            .iter()
            .flat_map(|a| SECOND.iter().map(move |b| format!("{a}{b}")))
            .filter(|n| n.chars().next() != n.chars().nth(1))
            .map(|n| (sub_seed(seed, &["name", &n]), n))
            .collect();
        all.sort();
        let names: Vec<String> = all.into_iter().map(|(_, n)| n).collect();
        let (prefectures, counties) = names.split_at(40);
        NamePool { prefectures: prefectures.to_vec(), counties: counties.to_vec() }
    }

    fn prefecture(&mut self) -> String {
        format!("{}市", self.prefectures.pop().unwrap_or_else(|| "无名".into()))
    }

    fn county(&mut self, district: bool) -> String {
        let base = self.counties.pop().unwrap_or_else(|| "无名".into());
        format!("{base}{}", if district { "区" } else { "县" })
    }
}

// ---------------------------------------------------------------------------------------------
// Reading a regions file

/// The level of a division.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Province,
    Prefecture,
    County,
}

/// One division of a regions file.
#[derive(Debug, Clone)]
pub struct Division {
    pub code: String,
    pub name: String,
    pub parent: Option<String>,
    pub level: Level,
    /// From the `population` property; 0 when absent.
    pub population: u64,
    pub shape: MultiPolygon<f64>,
    /// A point inside the division (where its reporting unit files from).
    pub interior: LatLon,
    /// (min lon, min lat, max lon, max lat).
    pub bbox: (f64, f64, f64, f64),
    /// Area in square degrees (for sampling and checks).
    pub area: f64,
}

/// The divisions of a regions file, by code.
#[derive(Debug, Clone, Default)]
pub struct Geography {
    pub divisions: BTreeMap<String, Division>,
}

/// The level of a six-digit code from its shape.
pub fn level_of(code: &str) -> Level {
    if code.ends_with("0000") {
        Level::Province
    } else if code.ends_with("00") {
        Level::Prefecture
    } else {
        Level::County
    }
}

impl Geography {
    /// Reads a GeoJSON FeatureCollection of Polygon/MultiPolygon divisions with properties
    /// `code`, `name`, `parent` and optionally `population`. Errors say which feature.
    pub fn from_geojson(text: &str) -> Result<Geography, String> {
        let gj: geojson::GeoJson = text.parse().map_err(|e| format!("not GeoJSON: {e}"))?;
        let geojson::GeoJson::FeatureCollection(fc) = gj else {
            return Err("expected a FeatureCollection".into());
        };
        Geography::from_features(&fc)
    }

    /// As [`Geography::from_geojson`], from a parsed collection.
    pub fn from_features(fc: &geojson::FeatureCollection) -> Result<Geography, String> {
        let mut divisions = BTreeMap::new();
        for (index, f) in fc.features.iter().enumerate() {
            let prop = |name: &str| f.property(name).and_then(|v| v.as_str()).map(str::to_owned);
            let code = prop("code").ok_or_else(|| format!("feature {index} has no `code` property"))?;
            if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("feature {index}: code {code:?} is not six digits"));
            }
            let name = prop("name").unwrap_or_else(|| code.clone());
            let parent = prop("parent").filter(|p| !p.is_empty());
            let population = f.property("population").and_then(|v| v.as_u64()).unwrap_or(0);
            let geometry = f.geometry.clone().ok_or_else(|| format!("feature {index} ({code}) has no geometry"))?;
            let shape: MultiPolygon<f64> = match geo::Geometry::<f64>::try_from(geometry)
                .map_err(|e| format!("feature {index} ({code}): bad geometry: {e}"))?
            {
                geo::Geometry::Polygon(p) => MultiPolygon(vec![p]),
                geo::Geometry::MultiPolygon(m) => m,
                _ => return Err(format!("feature {index} ({code}) is not a Polygon or MultiPolygon")),
            };
            let rect = shape.bounding_rect().ok_or_else(|| format!("feature {index} ({code}) is empty"))?;
            let interior = shape.interior_point().ok_or_else(|| format!("feature {index} ({code}) is empty"))?;
            let division = Division {
                level: level_of(&code),
                area: shape.unsigned_area(),
                code: code.clone(),
                name,
                parent,
                population,
                interior: LatLon { lat: interior.y(), lon: interior.x() },
                bbox: (rect.min().x, rect.min().y, rect.max().x, rect.max().y),
                shape,
            };
            if divisions.insert(code.clone(), division).is_some() {
                return Err(format!("feature {index}: division {code} appears twice"));
            }
        }
        Ok(Geography { divisions })
    }

    pub fn get(&self, code: &str) -> Option<&Division> {
        self.divisions.get(code)
    }

    /// Counties, by code.
    pub fn counties(&self) -> impl Iterator<Item = &Division> {
        self.divisions.values().filter(|d| d.level == Level::County)
    }

    /// The county holding a point (boundary: the lower code), if any.
    pub fn county_at(&self, at: LatLon) -> Option<&Division> {
        let p = Point::new(at.lon, at.lat);
        self.counties().find(|d| {
            at.lon >= d.bbox.0 && at.lon <= d.bbox.2 && at.lat >= d.bbox.1 && at.lat <= d.bbox.3 && d.shape.contains(&p)
        })
    }

    /// A point drawn uniformly inside a division from `u`, a source of uniform numbers in
    /// [0, 1) (rejection sampling in its bounding box; the interior point after 1,000 misses).
    pub fn point_in(&self, code: &str, mut u: impl FnMut() -> f64) -> Option<LatLon> {
        let d = self.get(code)?;
        for _ in 0..1000 {
            let lon = d.bbox.0 + u() * (d.bbox.2 - d.bbox.0);
            let lat = d.bbox.1 + u() * (d.bbox.3 - d.bbox.1);
            if d.shape.contains(&Point::new(lon, lat)) {
                return Some(LatLon { lat, lon });
            }
        }
        Some(d.interior)
    }
}

/// The features of `fc` whose code starts with one of `prefixes` (a node's regions file: a
/// province with its prefectures and counties).
pub fn subset(fc: &geojson::FeatureCollection, prefixes: &[&str]) -> geojson::FeatureCollection {
    let features = fc
        .features
        .iter()
        .filter(|f| {
            f.property("code").and_then(|v| v.as_str()).is_some_and(|c| prefixes.iter().any(|p| c.starts_with(p)))
        })
        .cloned()
        .collect();
    geojson::FeatureCollection { bbox: None, features, foreign_members: None }
}

/// A polygon of a ring, for tests and checks.
pub fn ring_polygon(ring: &[Vec<f64>]) -> Polygon<f64> {
    Polygon::new(ring.iter().map(|p| geo::coord! { x: p[0], y: p[1] }).collect(), vec![])
}

// ---------------------------------------------------------------------------------------------
// The shipped sample data

/// A river for the sample data: a name, its gauges' id prefix, and its course (upstream first).
struct River {
    name: &'static str,
    prefix: &'static str,
    from: LatLon,
    to: LatLon,
    gauges: usize,
    /// Normal level at the first gauge, metres; it drops 2 m per gauge downstream.
    top_level: f64,
}

const QINGJIANG: River = River {
    name: "清江",
    prefix: "wl-qj",
    from: LatLon { lat: 27.05, lon: 119.4 },
    to: LatLon { lat: 26.95, lon: 123.1 },
    gauges: 12,
    top_level: 30.0,
};

const YUANXI: River = River {
    name: "沅溪",
    prefix: "wl-yx",
    from: LatLon { lat: 27.75, lon: 117.3 },
    to: LatLon { lat: 27.2, lon: 121.0 },
    gauges: 14,
    top_level: 40.0,
};

/// One row of a device registry (the node's CSV columns).
struct StationRow {
    id: String,
    kind: &'static str,
    name: String,
    at: LatLon,
    region: String,
    lines: Option<(f64, f64, f64)>,
    interval_s: u32,
}

/// Every simulated station is a drill station (`exercise`): its warnings are exercise data.
const DEVICE_HEADER: &str =
    "id,kind,name,lat,lon,region,warning_level,guarantee_level,historic_max,interval_s,exercise\n";

fn r5(x: f64) -> f64 {
    (x * 1e5).round() / 1e5
}

fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn devices_csv(rows: &[StationRow]) -> String {
    let mut out = String::from(DEVICE_HEADER);
    for r in rows {
        let (w, g, h) = match r.lines {
            Some((w, g, h)) => (w.to_string(), g.to_string(), h.to_string()),
            None => (String::new(), String::new(), String::new()),
        };
        out.push_str(&format!(
            "{},{},{},{},{},{},{w},{g},{h},{},true\n",
            r.id,
            r.kind,
            r.name,
            r5(r.at.lat),
            r5(r.at.lon),
            r.region,
            r.interval_s
        ));
    }
    out
}

/// `(kind, name suffix, id prefix, per county, interval s)`.
type Mix = (&'static str, &'static str, &'static str, usize, u32);

/// Stations scattered over counties: each mix gives `per county` stations in every county.
fn scatter(geo: &Geography, counties: &[&Division], mixes: &[Mix], seed: u64, tag: &str) -> Vec<StationRow> {
    use rand::Rng;
    let mut rows = Vec::new();
    for &(kind, label, prefix, per_county, interval_s) in mixes {
        let mut n = 0;
        for county in counties {
            let mut r = crate::model::seed::rng(seed, &["scatter", tag, prefix, &county.code]);
            for i in 0..per_county {
                n += 1;
                let at = geo.point_in(&county.code, || r.random::<f64>()).unwrap_or(county.interior);
                rows.push(StationRow {
                    id: format!("{prefix}-{n:05}"),
                    kind,
                    name: format!("{}{label}{}", county.name, i + 1),
                    at,
                    region: county.code.clone(),
                    lines: None,
                    interval_s,
                });
            }
        }
    }
    rows
}

/// Gauges along a river: evenly spaced with a gentle meander, lines from a falling normal level.
fn river_gauges(geo: &Geography, river: &River, seed: u64, interval_s: u32) -> Vec<StationRow> {
    let mut rows = Vec::new();
    for i in 0..river.gauges {
        let f = i as f64 / (river.gauges - 1).max(1) as f64;
        let meander = 0.06 * (f * 9.0 + unit(sub_seed(seed, &["meander", river.prefix])) * 6.0).sin();
        let at = LatLon {
            lat: river.from.lat + (river.to.lat - river.from.lat) * f + meander,
            lon: river.from.lon + (river.to.lon - river.from.lon) * f,
        };
        let county = geo.county_at(at);
        let normal = river.top_level - 2.0 * i as f64;
        let warning = r2(normal + 1.5);
        rows.push(StationRow {
            id: format!("{}-{:02}", river.prefix, i + 1),
            kind: "water_level_gauge",
            name: format!("{}{}水文站", river.name, county.map_or("", |c| c.name.trim_end_matches(['县', '区']))),
            at,
            region: county.map(|c| c.code.clone()).unwrap_or_default(),
            lines: Some((warning, r2(warning + 1.0), r2(warning + 2.2))),
            interval_s,
        });
    }
    rows
}

/// Reservoirs: `per_county` in each county, normal levels 60–160 m.
fn reservoirs(geo: &Geography, counties: &[&Division], per_county: usize, seed: u64) -> Vec<StationRow> {
    let mut rows = scatter(geo, counties, &[("reservoir", "水库", "rs", per_county, 60)], seed, "reservoir");
    for r in &mut rows {
        let normal = 60.0 + (unit(sub_seed(seed, &["reservoir-level", &r.id])) * 100.0).round();
        let warning = r2(normal + 2.5);
        r.lines = Some((warning, r2(warning + 1.5), r2(warning + 3.0)));
    }
    rows
}

fn counties_of<'a>(geo: &'a Geography, prefixes: &[&str]) -> Vec<&'a Division> {
    geo.counties().filter(|c| prefixes.iter().any(|p| c.code.starts_with(p))).collect()
}

/// Teams at the prefecture seats of `provinces` (two per prefecture), for the nodes `n{PP}`.
fn teams_csv(geo: &Geography, provinces: &[&str], seed: u64) -> String {
    const SECOND: [(&str, &str); 5] = [
        ("search_rescue;medical", "地震救援队"),
        ("medical", "医疗救护队"),
        ("engineering;logistics", "工程抢险队"),
        ("hazmat;fire", "危化品救援队"),
        ("comms;evacuation", "应急通信保障队"),
    ];
    let mut out = String::from("id,name,node,lat,lon,capabilities,size\n");
    for province in provinces {
        let mut n = 0;
        for prefecture in geo.divisions.values().filter(|d| d.parent.as_deref() == Some(&format!("{province}0000"))) {
            let base = prefecture.name.trim_end_matches('市');
            for (i, (capabilities, label)) in
                [("flood_rescue;evacuation", "防汛抢险队"), SECOND[n / 2 % SECOND.len()]].into_iter().enumerate()
            {
                n += 1;
                let size = 20 + (unit(sub_seed(seed, &["team-size", province, &n.to_string()])) * 60.0) as u32;
                let dx = if i == 0 { 0.01 } else { -0.01 };
                out.push_str(&format!(
                    "t{province}-{n:02},{base}{label},n{province},{},{},{capabilities},{size}\n",
                    r5(prefecture.interior.lat + dx),
                    r5(prefecture.interior.lon + dx)
                ));
            }
        }
    }
    out
}

fn stockpiles_csv(geo: &Geography, seed: u64) -> String {
    let mut out = String::from("id,name,lat,lon,items\n");
    for (n, prefecture) in geo.divisions.values().filter(|d| d.level == Level::Prefecture).enumerate() {
        let k = |item: &str, base: f64| {
            let x = base * (0.5 + unit(sub_seed(seed, &["stock", &prefecture.code, item])));
            (x / 10.0).round() as u64 * 10
        };
        out.push_str(&format!(
            "s-{:03},{}应急物资储备库,{},{},tent={};quilt={};folding_bed={};food_ration={};drinking_water={};life_jacket={};rubber_boat={};water_pump={};generator={};sandbag={};excavator={}\n",
            n + 1,
            prefecture.name.trim_end_matches('市'),
            r5(prefecture.interior.lat - 0.02),
            r5(prefecture.interior.lon + 0.02),
            k("tent", 2000.0),
            k("quilt", 6000.0),
            k("folding_bed", 1500.0),
            k("food_ration", 30_000.0),
            k("drinking_water", 30_000.0),
            k("life_jacket", 2000.0),
            k("rubber_boat", 40.0),
            k("water_pump", 30.0),
            k("generator", 40.0),
            k("sandbag", 50_000.0),
            k("excavator", 20.0),
        ));
    }
    out
}

fn targets_csv(geo: &Geography, seed: u64) -> String {
    let mut out = String::from("id,name,kind,lat,lon,people\n");
    let kinds = [("school", "中学", 1500.0), ("hospital", "人民医院", 800.0), ("nursing_home", "敬老院", 200.0)];
    let mut n = 0;
    for county in geo.counties() {
        let base = county.name.trim_end_matches(['县', '区']);
        for (i, (kind, label, people)) in kinds.iter().enumerate() {
            n += 1;
            let f = unit(sub_seed(seed, &["target", &county.code, kind]));
            let at = LatLon { lat: county.interior.lat + 0.01 * (i as f64 - 1.0), lon: county.interior.lon + 0.01 };
            out.push_str(&format!(
                "g-{n:04},{base}{label},{kind},{},{},{}\n",
                r5(at.lat),
                r5(at.lon),
                (people * (0.5 + f)).round()
            ));
        }
    }
    out
}

fn hazards_geojson(geo: &Geography, seed: u64) -> String {
    let mut features = Vec::new();
    let mut n = 0;
    for county in geo.counties() {
        let f = unit(sub_seed(seed, &["risk", &county.code]));
        n += 1;
        let (lat, lon) = (r5(county.interior.lat + 0.03), r5(county.interior.lon - 0.03));
        if f < 0.3 {
            let d = 0.02;
            features.push(json!({"type": "Feature", "properties": {"id": format!("h-{n:04}"), "name": format!("{}滑坡隐患点", county.name),
                "kind": "landslide", "level": if f < 0.1 { "high" } else { "medium" }},
                "geometry": {"type": "Polygon", "coordinates": [[[lon, lat], [r5(lon + d), lat], [r5(lon + d), r5(lat + d)], [lon, r5(lat + d)], [lon, lat]]]}}));
        } else if f < 0.45 {
            features.push(json!({"type": "Feature", "properties": {"id": format!("h-{n:04}"), "name": format!("{}化工园区", county.name),
                "kind": "chemical_plant", "level": "high"},
                "geometry": {"type": "Point", "coordinates": [lon, lat]}}));
        }
    }
    let lines: Vec<String> = features.iter().map(|f| f.to_string()).collect();
    format!("{{\"type\":\"FeatureCollection\",\"features\":[\n{}\n]}}\n", lines.join(",\n"))
}

/// A FeatureCollection written one feature per line (small diffs, still one JSON value).
pub fn write_collection(fc: &geojson::FeatureCollection) -> String {
    let lines: Vec<String> = fc.features.iter().map(|f| serde_json::to_string(f).unwrap_or_default()).collect();
    format!("{{\"type\":\"FeatureCollection\",\"features\":[\n{}\n]}}\n", lines.join(",\n"))
}

/// Every file of `simulator/data/` for the shipped scenarios, from `seed`: (path under
/// `simulator/`, contents). The shipped files are this with seed 1; a test checks that they
/// still are, and `UPDATE_DATA=1 cargo test -p yingji-simulator --test core` writes them again.
pub fn sample_files(seed: u64) -> Vec<(String, String)> {
    let fc = generate(seed, &GeoSpec::sample());
    let geo = match Geography::from_features(&fc) {
        Ok(g) => g,
        Err(e) => return vec![("data/ERROR".into(), e)],
    };
    let mut files = vec![("data/geography.geojson".to_owned(), write_collection(&fc))];
    for p in ["91", "92", "93"] {
        files.push((format!("data/regions/{p}.geojson"), write_collection(&subset(&fc, &[p]))));
    }
    files.push(("data/stockpiles.csv".into(), stockpiles_csv(&geo, seed)));
    files.push(("data/targets.csv".into(), targets_csv(&geo, seed)));
    files.push(("data/hazards.geojson".into(), hazards_geojson(&geo, seed)));

    // Typhoon: provinces 92 and 93, about 4,100 stations each, and the water-resources
    // department's river gauges, reservoirs and hydrological rain gauges (about 2,000).
    for p in ["92", "93"] {
        let counties = counties_of(&geo, &[p]);
        let per_county = 4100 / counties.len().max(1);
        let weather = per_county / 6;
        let mixes: [Mix; 2] = [
            ("rain_gauge", "雨量站", "rg", per_county - weather, 60),
            ("weather_station", "气象站", "ws", weather, 60),
        ];
        let mut rows = scatter(&geo, &counties, &mixes, seed, &format!("typhoon-{p}"));
        for r in &mut rows {
            r.id = format!("{}{p}{}", &r.id[..2], &r.id[2..]);
        }
        files.push((format!("data/typhoon/devices-{p}.csv"), devices_csv(&rows)));
    }
    let basin = counties_of(&geo, &["92", "93"]);
    let mut water = river_gauges(&geo, &QINGJIANG, seed, 60);
    water.extend(reservoirs(&geo, &basin, 1, seed));
    let hydro_per_county = (2000 - water.len()) / basin.len().max(1);
    water.extend(scatter(
        &geo,
        &basin,
        &[("rain_gauge", "水文雨量站", "hy", hydro_per_county, 60)],
        seed,
        "typhoon-slt",
    ));
    files.push(("data/typhoon/devices-slt.csv".into(), devices_csv(&water)));
    files.push(("data/typhoon/teams.csv".into(), teams_csv(&geo, &["92", "93"], seed)));

    // Flood: the 沅溪 through provinces 91 and 92; rain gauges at the province nodes.
    for p in ["91", "92"] {
        let counties = counties_of(&geo, &[p]);
        let mut rows =
            scatter(&geo, &counties, &[("rain_gauge", "雨量站", "rg", 10, 300)], seed, &format!("flood-{p}"));
        for r in &mut rows {
            r.id = format!("rg{p}{}", &r.id[2..]);
        }
        files.push((format!("data/flood/devices-{p}.csv"), devices_csv(&rows)));
    }
    let mut water = river_gauges(&geo, &YUANXI, seed, 300);
    water.extend(reservoirs(&geo, &counties_of(&geo, &["91", "92"]), 1, seed));
    files.push(("data/flood/devices-slt.csv".into(), devices_csv(&water)));
    files.push(("data/flood/teams.csv".into(), teams_csv(&geo, &["91", "92"], seed)));

    // Earthquake: seismometers in provinces 91 and 92, gas detectors around a chemical park.
    for (p, per_county) in [("91", 15), ("92", 8)] {
        let counties = counties_of(&geo, &[p]);
        let mut rows =
            scatter(&geo, &counties, &[("seismometer", "地震台", "sz", per_county, 60)], seed, &format!("quake-{p}"));
        for r in &mut rows {
            r.id = format!("sz{p}{}", &r.id[2..]);
        }
        if p == "91" {
            let park = LatLon { lat: 26.95, lon: 118.2 };
            for i in 0..24 {
                // Rings of detectors around the park, 1–6 km out.
                let ring = 1.0 + (i / 8) as f64 * 2.5;
                let angle = (i % 8) as f64 * std::f64::consts::TAU / 8.0;
                let at = LatLon {
                    lat: park.lat + ring / 111.2 * angle.cos(),
                    lon: park.lon + ring / (111.2 * park.lat.to_radians().cos()) * angle.sin(),
                };
                rows.push(StationRow {
                    id: format!("gd91-{:03}", i + 1),
                    kind: "gas_detector",
                    name: format!("化工园区气体监测点{}", i + 1),
                    at,
                    region: geo.county_at(at).map(|c| c.code.clone()).unwrap_or_default(),
                    lines: None,
                    interval_s: 30,
                });
            }
        }
        files.push((format!("data/earthquake/devices-{p}.csv"), devices_csv(&rows)));
    }
    files.push(("data/earthquake/teams.csv".into(), teams_csv(&geo, &["91", "92"], seed)));

    // Short: province 91's first two prefectures, five stations per county, three teams.
    let counties = counties_of(&geo, &["9101", "9102"]);
    let mixes: [Mix; 2] = [("rain_gauge", "雨量站", "rg91s", 4, 30), ("weather_station", "气象站", "ws91s", 1, 30)];
    files.push(("data/short/devices.csv".into(), devices_csv(&scatter(&geo, &counties, &mixes, seed, "short"))));
    let seat = geo.get("910100").map_or(LatLon { lat: 26.3, lon: 117.5 }, |d| d.interior);
    files.push((
        "data/short/teams.csv".into(),
        format!(
            "id,name,node,lat,lon,capabilities,size\n\
             ts-01,青岚省防汛抢险一队,n91,{},{},flood_rescue;evacuation,40\n\
             ts-02,青岚省防汛抢险二队,n91,{},{},flood_rescue;evacuation,35\n\
             ts-03,青岚省医疗救护队,n91,{},{},medical;logistics,20\n",
            r5(seat.lat),
            r5(seat.lon),
            r5(seat.lat + 0.05),
            r5(seat.lon + 0.05),
            r5(seat.lat - 0.05),
            r5(seat.lon - 0.05)
        ),
    ));
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (geojson::FeatureCollection, Geography) {
        let fc = generate(1, &GeoSpec::sample());
        let geo = Geography::from_features(&fc).expect("parses");
        (fc, geo)
    }

    #[test]
    fn sample_has_three_provinces_of_20_to_40_counties() {
        let (_, geo) = sample();
        let provinces: Vec<&Division> = geo.divisions.values().filter(|d| d.level == Level::Province).collect();
        assert_eq!(provinces.iter().map(|p| p.code.as_str()).collect::<Vec<_>>(), ["910000", "920000", "930000"]);
        for p in provinces {
            let counties = geo.counties().filter(|c| c.code.starts_with(&p.code[..2])).count();
            assert!((20..=40).contains(&counties), "{}: {counties} counties", p.code);
            let prefectures = geo.divisions.values().filter(|d| d.parent.as_deref() == Some(&p.code)).count();
            assert!(prefectures >= 4, "{}: {prefectures} prefectures", p.code);
        }
        for d in geo.divisions.values() {
            if let Some(parent) = &d.parent {
                let want = match d.level {
                    Level::County => format!("{}00", &d.code[..4]),
                    _ => format!("{}0000", &d.code[..2]),
                };
                assert_eq!(parent, &want, "{}", d.code);
                assert!(geo.get(parent).is_some(), "{} names a missing parent", d.code);
            }
            assert!(d.population > 0, "{}", d.code);
            assert_eq!(d.shape.0.len(), 1, "{} is one polygon", d.code);
        }
        let names: BTreeSet<&str> = geo.divisions.values().map(|d| d.name.as_str()).collect();
        assert_eq!(names.len(), geo.divisions.len(), "names are unique");
    }

    #[test]
    fn children_tile_their_parent_without_gaps_or_overlaps() {
        let (_, geo) = sample();
        for parent in geo.divisions.values().filter(|d| d.level != Level::County) {
            let children: Vec<&Division> =
                geo.divisions.values().filter(|d| d.parent.as_deref() == Some(&parent.code)).collect();
            let sum: f64 = children.iter().map(|c| c.area).sum();
            assert!(
                (sum - parent.area).abs() < 1e-9 * parent.area.max(1.0) + 1e-9,
                "{}: {sum} vs {}",
                parent.code,
                parent.area
            );
            assert_eq!(
                children.iter().map(|c| c.population).sum::<u64>(),
                parent.population,
                "{} population",
                parent.code
            );
        }
        // Equal areas could still hide an overlap balanced by a gap: points inside the parent
        // lie in exactly one child.
        let mut state = 7u64;
        let mut u = || {
            state = sub_seed(state, &["u"]);
            unit(state)
        };
        for province in geo.divisions.values().filter(|d| d.level == Level::Province) {
            for _ in 0..300 {
                let Some(at) = geo.point_in(&province.code, &mut u) else { continue };
                let holders = geo.counties().filter(|c| c.shape.contains(&Point::new(at.lon, at.lat))).count();
                // A point exactly on a border lies in none (contains excludes the boundary).
                assert!(holders <= 1, "{at:?} lies in {holders} counties");
                assert_eq!(holders, 1, "{at:?} in {} lies in no county", province.code);
            }
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_shapes() {
        let a = serde_json::to_string(&generate(1, &GeoSpec::sample())).expect("json");
        let b = serde_json::to_string(&generate(1, &GeoSpec::sample())).expect("json");
        let c = serde_json::to_string(&generate(2, &GeoSpec::sample())).expect("json");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn the_node_reads_the_geography_and_places_points() {
        let (fc, geo) = sample();
        let text = serde_json::to_string(&fc).expect("json");
        let regions = yingji_node::regions::Regions::from_geojson(&text).expect("the node reads it");
        for county in geo.counties() {
            let placed = regions.locate(county.interior.lat, county.interior.lon).map(|d| d.code.clone());
            assert_eq!(placed.as_deref(), Some(county.code.as_str()));
        }
        let one = subset(&fc, &["92"]);
        let text = serde_json::to_string(&one).expect("json");
        let regions = yingji_node::regions::Regions::from_geojson(&text).expect("a province alone is usable");
        assert!(regions.divisions().iter().all(|d| d.code.starts_with("92")));
    }
}
