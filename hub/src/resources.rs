//! The resource databases' files: rescue teams, stockpiles, risk hazards and protection targets
//! as CSV or GeoJSON, parsed whole with an error per bad row (line, field, reason) so that a
//! file is imported entirely or not at all. Pure: no IO.
//!
//! CSV columns (header row required, any order, extra columns refused):
//! - teams: `id,name,node,lat,lon,capabilities,size` (+ optional `province`, `status`);
//!   capabilities separated by `;`.
//! - stockpiles: `id,name,lat,lon,items` (+ optional `province`); items as `tent=100;quilt=50`.
//! - hazards: `id,name,kind,level,lat,lon`.
//! - targets: `id,name,kind,lat,lon,people`.
//!
//! GeoJSON: a FeatureCollection whose features carry the same names as properties and a Point
//! geometry for the location (hazards may have any geometry: its centroid is their location);
//! `capabilities` may be an array, `items` an object.

use std::collections::{BTreeMap, BTreeSet};

use geo::Centroid;
use serde::Serialize;
use serde_json::json;

use crate::rules::vocab::{CAPABILITIES, ITEMS};

/// Which resource database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Teams,
    Stockpiles,
    Hazards,
    Targets,
}

impl Kind {
    pub fn parse(text: &str) -> Option<Kind> {
        match text {
            "teams" => Some(Kind::Teams),
            "stockpiles" => Some(Kind::Stockpiles),
            "hazards" => Some(Kind::Hazards),
            "targets" => Some(Kind::Targets),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Teams => "teams",
            Kind::Stockpiles => "stockpiles",
            Kind::Hazards => "hazards",
            Kind::Targets => "targets",
        }
    }

    fn columns(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Kind::Teams => (&["id", "name", "node", "lat", "lon", "capabilities", "size"], &["province", "status"]),
            Kind::Stockpiles => (&["id", "name", "lat", "lon", "items"], &["province"]),
            Kind::Hazards => (&["id", "name", "kind", "level", "lat", "lon"], &[]),
            Kind::Targets => (&["id", "name", "kind", "lat", "lon", "people"], &[]),
        }
    }
}

/// One refused row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowError {
    /// The CSV line (1 is the header) or the feature's number (from 1).
    pub line: usize,
    pub field: String,
    pub reason: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.field, self.reason)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamRecord {
    pub id: String,
    pub name: String,
    pub node: String,
    /// Empty when neither given nor found from the location.
    pub province: String,
    pub lat: f64,
    pub lon: f64,
    pub capabilities: Vec<String>,
    pub size: u32,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StockpileRecord {
    pub id: String,
    pub name: String,
    pub province: String,
    pub lat: f64,
    pub lon: f64,
    pub items: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HazardRecord {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub level: String,
    pub lat: f64,
    pub lon: f64,
    /// The GeoJSON geometry (a Point for CSV rows).
    pub geometry: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetRecord {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub lat: f64,
    pub lon: f64,
    pub people: i64,
}

/// A parsed file: records of one kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Records {
    Teams(Vec<TeamRecord>),
    Stockpiles(Vec<StockpileRecord>),
    Hazards(Vec<HazardRecord>),
    Targets(Vec<TargetRecord>),
}

impl Records {
    pub fn len(&self) -> usize {
        match self {
            Records::Teams(v) => v.len(),
            Records::Stockpiles(v) => v.len(),
            Records::Hazards(v) => v.len(),
            Records::Targets(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The most rows one file may hold.
pub const MAX_ROWS: usize = 500_000;

/// Finds a division's province for a location (the caller's regions lookup).
pub type Locate<'a> = &'a dyn Fn(f64, f64) -> Option<String>;

/// A row's fields by column name.
type Row = BTreeMap<String, serde_json::Value>;

/// Parses a CSV or GeoJSON body (by `content_type`, or by a leading `{` when it says nothing).
pub fn parse(kind: Kind, content_type: &str, body: &str, locate: Locate<'_>) -> Result<Records, Vec<RowError>> {
    let geojson = content_type.contains("json") || (content_type.is_empty() && body.trim_start().starts_with('{'));
    let rows = if geojson { geojson_rows(kind, body)? } else { csv_rows(kind, body)? };
    if rows.len() > MAX_ROWS {
        return Err(vec![RowError { line: 0, field: "file".into(), reason: format!("more than {MAX_ROWS} rows") }]);
    }
    let mut errors = Vec::new();
    let mut ids = BTreeSet::new();
    let mut out = match kind {
        Kind::Teams => Records::Teams(Vec::new()),
        Kind::Stockpiles => Records::Stockpiles(Vec::new()),
        Kind::Hazards => Records::Hazards(Vec::new()),
        Kind::Targets => Records::Targets(Vec::new()),
    };
    for (line, row) in rows {
        let mut r = RowReader { line, row: &row, errors: &mut errors };
        let id = r.id();
        if !id.is_empty() && !ids.insert(id.clone()) {
            r.error("id", format!("{id:?} appears twice in the file"));
        }
        let name = r.text("name", true);
        let (lat, lon) = (r.number("lat", -90.0, 90.0), r.number("lon", -180.0, 180.0));
        let before = r.errors.len();
        match &mut out {
            Records::Teams(v) => {
                let node = r.text("node", true);
                if !node.is_empty() && yingji_proto::topic::valid_device_id(&node).is_err() {
                    r.error("node", "a node id is A-Z a-z 0-9 _ . - only".into());
                }
                let capabilities = r.list("capabilities", CAPABILITIES);
                if capabilities.is_empty() && r.errors.len() == before {
                    r.error("capabilities", "at least one capability".into());
                }
                let size = r.number("size", 1.0, 1_000_000.0) as u32;
                let status = match r.text("status", false).as_str() {
                    "" => "available".to_owned(),
                    s @ ("available" | "unavailable") => s.to_owned(),
                    other => {
                        r.error("status", format!("{other:?}: available or unavailable"));
                        String::new()
                    }
                };
                let province = r.province(lat, lon, locate);
                if r.errors.len() == before {
                    v.push(TeamRecord { id, name, node, province, lat, lon, capabilities, size, status });
                }
            }
            Records::Stockpiles(v) => {
                let items = r.items();
                let province = r.province(lat, lon, locate);
                if r.errors.len() == before {
                    v.push(StockpileRecord { id, name, province, lat, lon, items });
                }
            }
            Records::Hazards(v) => {
                let kind = r.text("kind", true);
                let level = r.text("level", true);
                let geometry = row
                    .get("_geometry")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "Point", "coordinates": [lon, lat]}));
                if r.errors.len() == before {
                    v.push(HazardRecord { id, name, kind, level, lat, lon, geometry });
                }
            }
            Records::Targets(v) => {
                let kind = r.text("kind", true);
                let people = r.number("people", 0.0, 1e9) as i64;
                if r.errors.len() == before {
                    v.push(TargetRecord { id, name, kind, lat, lon, people });
                }
            }
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

struct RowReader<'a> {
    line: usize,
    row: &'a Row,
    errors: &'a mut Vec<RowError>,
}

impl RowReader<'_> {
    fn error(&mut self, field: &str, reason: String) {
        self.errors.push(RowError { line: self.line, field: field.to_owned(), reason });
    }

    fn raw(&self, field: &str) -> Option<&serde_json::Value> {
        self.row.get(field).filter(|v| !v.is_null() && v.as_str() != Some(""))
    }

    fn text(&mut self, field: &str, required: bool) -> String {
        match self.raw(field) {
            Some(serde_json::Value::String(s)) if s.len() > 200 => {
                self.error(field, "longer than 200 bytes".into());
                String::new()
            }
            Some(serde_json::Value::String(s)) => s.trim().to_owned(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(_) => {
                self.error(field, "expected text".into());
                String::new()
            }
            None if required => {
                self.error(field, "missing".into());
                String::new()
            }
            None => String::new(),
        }
    }

    fn id(&mut self) -> String {
        let id = self.text("id", true);
        if !id.is_empty() && yingji_proto::topic::valid_device_id(&id).is_err() {
            self.error("id", format!("{id:?}: an id is 1-128 of A-Z a-z 0-9 _ . -"));
        }
        id
    }

    fn number(&mut self, field: &str, min: f64, max: f64) -> f64 {
        let value = match self.raw(field) {
            Some(serde_json::Value::Number(n)) => n.as_f64(),
            Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
            None => {
                self.error(field, "missing".into());
                return 0.0;
            }
            _ => None,
        };
        match value {
            Some(v) if v.is_finite() && (min..=max).contains(&v) => v,
            Some(v) => {
                self.error(field, format!("{v} is outside {min}..={max}"));
                0.0
            }
            None => {
                self.error(field, "not a number".into());
                0.0
            }
        }
    }

    fn list(&mut self, field: &str, vocabulary: &[&str]) -> Vec<String> {
        let names: Vec<String> = match self.raw(field) {
            Some(serde_json::Value::String(s)) => {
                s.split(';').map(str::trim).filter(|x| !x.is_empty()).map(str::to_owned).collect()
            }
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            Some(_) => {
                self.error(field, "expected names separated by ';'".into());
                return Vec::new();
            }
            None => {
                self.error(field, "missing".into());
                return Vec::new();
            }
        };
        let mut out: Vec<String> = Vec::new();
        for name in names {
            if !vocabulary.contains(&name.as_str()) {
                self.error(field, format!("{name:?} is not in the vocabulary ({})", vocabulary.join(", ")));
            } else if !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }

    fn items(&mut self) -> BTreeMap<String, u64> {
        let pairs: Vec<(String, Option<u64>)> = match self.raw("items") {
            Some(serde_json::Value::String(s)) => s
                .split(';')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(|pair| match pair.split_once('=') {
                    Some((k, v)) => (k.trim().to_owned(), v.trim().parse::<u64>().ok()),
                    None => (pair.to_owned(), None),
                })
                .collect(),
            Some(serde_json::Value::Object(o)) => o.iter().map(|(k, v)| (k.clone(), v.as_u64())).collect(),
            Some(_) => {
                self.error("items", "expected item=qty pairs separated by ';'".into());
                return BTreeMap::new();
            }
            None => {
                self.error("items", "missing".into());
                return BTreeMap::new();
            }
        };
        let mut out = BTreeMap::new();
        for (item, qty) in pairs {
            match qty {
                _ if !ITEMS.contains(&item.as_str()) => {
                    self.error("items", format!("{item:?} is not in the vocabulary ({})", ITEMS.join(", ")))
                }
                Some(q) if q <= 1_000_000_000 => {
                    *out.entry(item).or_insert(0) += q;
                }
                _ => self.error("items", format!("{item}: the quantity is a whole number 0..=1000000000")),
            }
        }
        out
    }

    fn province(&mut self, lat: f64, lon: f64, locate: Locate<'_>) -> String {
        let given = self.text("province", false);
        if !given.is_empty() {
            if given.len() != 6 || !given.bytes().all(|b| b.is_ascii_digit()) {
                self.error("province", format!("{given:?} is not a six-digit division code"));
            }
            return given;
        }
        locate(lat, lon).unwrap_or_default()
    }
}

fn csv_rows(kind: Kind, body: &str) -> Result<Vec<(usize, Row)>, Vec<RowError>> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(false).from_reader(body.as_bytes());
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_owned).collect(),
        Err(e) => return Err(vec![RowError { line: 1, field: "header".into(), reason: e.to_string() }]),
    };
    let (required, optional) = kind.columns();
    let mut errors = Vec::new();
    for column in required {
        if !header.iter().any(|h| h == column) {
            errors.push(RowError { line: 1, field: (*column).to_owned(), reason: "missing column".into() });
        }
    }
    for h in &header {
        if !required.contains(&h.as_str()) && !optional.contains(&h.as_str()) {
            errors.push(RowError {
                line: 1,
                field: h.clone(),
                reason: format!("unknown column for {}", kind.as_str()),
            });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        match record {
            Ok(r) => {
                let line = r.position().map(|p| p.line() as usize).unwrap_or(0);
                let row: Row = header
                    .iter()
                    .zip(r.iter())
                    .map(|(h, v)| (h.clone(), serde_json::Value::String(v.to_owned())))
                    .collect();
                rows.push((line, row));
            }
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                errors.push(RowError { line, field: "row".into(), reason: e.to_string() });
            }
        }
        if rows.len() > MAX_ROWS {
            break;
        }
    }
    if errors.is_empty() { Ok(rows) } else { Err(errors) }
}

fn geojson_rows(kind: Kind, body: &str) -> Result<Vec<(usize, Row)>, Vec<RowError>> {
    let fail = |reason: String| vec![RowError { line: 0, field: "file".into(), reason }];
    let gj: geojson::GeoJson = body.parse().map_err(|e: geojson::Error| fail(format!("not GeoJSON: {e}")))?;
    let geojson::GeoJson::FeatureCollection(fc) = gj else {
        return Err(fail("expected a FeatureCollection".into()));
    };
    let (required, optional) = kind.columns();
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (index, feature) in fc.features.into_iter().enumerate() {
        let line = index + 1;
        let mut row: Row = feature.properties.clone().unwrap_or_default().into_iter().collect();
        if let Some(id) = &feature.id {
            row.entry("id".into()).or_insert_with(|| match id {
                geojson::feature::Id::String(s) => json!(s),
                geojson::feature::Id::Number(n) => json!(n.to_string()),
            });
        }
        for k in row.keys() {
            if !required.contains(&k.as_str()) && !optional.contains(&k.as_str()) && k != "lat" && k != "lon" {
                errors.push(RowError {
                    line,
                    field: k.clone(),
                    reason: format!("unknown property for {}", kind.as_str()),
                });
            }
        }
        match &feature.geometry {
            Some(g) => match (&g.value, kind) {
                (geojson::Value::Point(p), _) if p.len() >= 2 => {
                    row.insert("lon".into(), json!(p[0]));
                    row.insert("lat".into(), json!(p[1]));
                }
                (_, Kind::Hazards) => {
                    let centroid = geo::Geometry::<f64>::try_from(g.clone()).ok().and_then(|geo| geo.centroid());
                    match centroid {
                        Some(c) => {
                            row.insert("lon".into(), json!(c.x()));
                            row.insert("lat".into(), json!(c.y()));
                            row.insert("_geometry".into(), serde_json::to_value(g).unwrap_or_default());
                        }
                        None => {
                            errors.push(RowError { line, field: "geometry".into(), reason: "an empty geometry".into() })
                        }
                    }
                }
                _ => errors.push(RowError { line, field: "geometry".into(), reason: "expected a Point".into() }),
            },
            None => errors.push(RowError { line, field: "geometry".into(), reason: "missing".into() }),
        }
        rows.push((line, row));
    }
    if errors.is_empty() { Ok(rows) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn none(_: f64, _: f64) -> Option<String> {
        Some("330000".into())
    }

    #[test]
    fn teams_from_csv_and_geojson() {
        let csv = "id,name,node,lat,lon,capabilities,size\nt1,Team 1,zj,28.0,120.6,flood_rescue;evacuation,30\n";
        let Records::Teams(t) = parse(Kind::Teams, "text/csv", csv, &none).unwrap() else { panic!() };
        assert_eq!(t[0].capabilities, ["flood_rescue", "evacuation"]);
        assert_eq!((t[0].province.as_str(), t[0].status.as_str(), t[0].size), ("330000", "available", 30));
        let gj = r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point","coordinates":[120.6,28.0]},
            "properties":{"id":"t2","name":"T2","node":"zj","capabilities":["medical"],"size":5}}]}"#;
        let Records::Teams(t) = parse(Kind::Teams, "application/geo+json", gj, &none).unwrap() else { panic!() };
        assert_eq!((t[0].lat, t[0].lon), (28.0, 120.6));
    }

    #[test]
    fn every_bad_row_is_named_and_nothing_is_kept() {
        let csv = "id,name,node,lat,lon,capabilities,size\n\
                   t1,ok,zj,28,120,flood_rescue,3\n\
                   t2,bad lat,zj,95,120,flood_rescue,3\n\
                   t3,bad cap,zj,28,120,swimming,3\n\
                   t1,dup,zj,28,120,medical,3\n\
                   t5,no size,zj,28,120,medical,\n";
        let errors = parse(Kind::Teams, "text/csv", csv, &none).unwrap_err();
        let got: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.field.as_str())).collect();
        assert_eq!(got, [(3, "lat"), (4, "capabilities"), (5, "id"), (6, "size")]);
        let header = parse(Kind::Teams, "text/csv", "id,name\nx,y\n", &none).unwrap_err();
        assert!(header.iter().any(|e| e.field == "node" && e.reason == "missing column"));
    }

    #[test]
    fn stockpiles_and_targets_and_hazards() {
        let csv = "id,name,lat,lon,items\ns1,Depot,28,120,tent=100;quilt=50\n";
        let Records::Stockpiles(s) = parse(Kind::Stockpiles, "text/csv", csv, &none).unwrap() else { panic!() };
        assert_eq!(s[0].items["tent"], 100);
        assert!(parse(Kind::Stockpiles, "text/csv", "id,name,lat,lon,items\ns1,D,28,120,tent=-1\n", &none).is_err());
        assert!(parse(Kind::Stockpiles, "text/csv", "id,name,lat,lon,items\ns1,D,28,120,gold=1\n", &none).is_err());
        let t = "id,name,kind,lat,lon,people\nh1,School,school,28,120,800\n";
        assert_eq!(parse(Kind::Targets, "text/csv", t, &none).unwrap().len(), 1);
        let gj = r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[120,28],[121,28],[121,29],[120,29],[120,28]]]},
            "properties":{"id":"z1","name":"Slope","kind":"landslide","level":"high"}}]}"#;
        let Records::Hazards(h) = parse(Kind::Hazards, "application/json", gj, &none).unwrap() else { panic!() };
        assert!((h[0].lat - 28.5).abs() < 1e-9 && h[0].geometry["type"] == "Polygon");
        assert!(parse(Kind::Hazards, "application/json", "[1,2]", &none).is_err());
    }
}
