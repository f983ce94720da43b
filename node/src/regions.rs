//! Division polygons and point-in-polygon placement of reports.
//!
//! The regions file is a GeoJSON FeatureCollection of Polygon or MultiPolygon features with the
//! properties `code` (six-digit GB/T 2260 code), `name` and `parent` (the code of the enclosing
//! division, absent for a province). Placement takes candidates from an R-tree over the
//! polygons' bounding boxes, keeps those whose polygon holds the point (its boundary included,
//! so a point on a shared border is not lost) and picks the smallest: the county rather than
//! its prefecture or province.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use geo::{Area, BoundingRect, Intersects, MultiPolygon, Point};
use rstar::{AABB, RTree, primitives::GeomWithData, primitives::Rectangle};

/// The region given to a report whose point lies outside every division.
pub const UNKNOWN: &str = "unknown";

/// One division.
#[derive(Debug, Clone)]
pub struct Division {
    pub code: String,
    pub name: String,
    pub parent: Option<String>,
    pub shape: MultiPolygon<f64>,
    area: f64,
}

/// All divisions with a spatial index.
#[derive(Debug, Default)]
pub struct Regions {
    divisions: Vec<Division>,
    by_code: HashMap<String, usize>,
    index: RTree<GeomWithData<Rectangle<[f64; 2]>, usize>>,
}

impl Regions {
    /// Reads a regions file.
    pub fn load(path: &Path) -> anyhow::Result<Regions> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading the regions file {}", path.display()))?;
        Regions::from_geojson(&text).with_context(|| format!("the regions file {} is not usable", path.display()))
    }

    /// Parses a GeoJSON FeatureCollection of divisions.
    pub fn from_geojson(text: &str) -> anyhow::Result<Regions> {
        let geojson: geojson::GeoJson = text.parse().context("not GeoJSON")?;
        let geojson::GeoJson::FeatureCollection(collection) = geojson else {
            bail!("expected a FeatureCollection");
        };
        let mut divisions = Vec::with_capacity(collection.features.len());
        for (index, feature) in collection.features.into_iter().enumerate() {
            let prop = |name: &str| -> Option<String> {
                feature.property(name).and_then(|v| match v {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
            };
            let code = prop("code").with_context(|| format!("feature {index} has no `code` property"))?;
            yingji_proto::report::valid_region(&code).map_err(|e| anyhow::anyhow!("feature {index}: {}", e.reason))?;
            let name = prop("name").unwrap_or_else(|| code.clone());
            let parent = prop("parent").filter(|p| !p.is_empty());
            let geometry = feature.geometry.with_context(|| format!("feature {index} ({code}) has no geometry"))?;
            let shape: MultiPolygon<f64> = match geo::Geometry::<f64>::try_from(geometry)
                .with_context(|| format!("feature {index} ({code}) has a bad geometry"))?
            {
                geo::Geometry::Polygon(p) => MultiPolygon(vec![p]),
                geo::Geometry::MultiPolygon(m) => m,
                _ => bail!("feature {index} ({code}) is not a Polygon or MultiPolygon"),
            };
            let area = shape.unsigned_area();
            divisions.push(Division { code, name, parent, shape, area });
        }
        Regions::new(divisions)
    }

    fn new(divisions: Vec<Division>) -> anyhow::Result<Regions> {
        let mut by_code = HashMap::with_capacity(divisions.len());
        let mut boxes = Vec::with_capacity(divisions.len());
        for (i, d) in divisions.iter().enumerate() {
            if by_code.insert(d.code.clone(), i).is_some() {
                bail!("division {} appears twice", d.code);
            }
            if let Some(rect) = d.shape.bounding_rect() {
                let rect = Rectangle::from_corners([rect.min().x, rect.min().y], [rect.max().x, rect.max().y]);
                boxes.push(GeomWithData::new(rect, i));
            }
        }
        for d in &divisions {
            if let Some(parent) = &d.parent
                && !by_code.contains_key(parent)
            {
                bail!("division {} names parent {parent}, which is not in the file", d.code);
            }
        }
        Ok(Regions { divisions, by_code, index: RTree::bulk_load(boxes) })
    }

    /// The smallest division holding the point, if any.
    pub fn locate(&self, lat: f64, lon: f64) -> Option<&Division> {
        let point = Point::new(lon, lat);
        let probe = AABB::from_point([lon, lat]);
        self.index
            .locate_in_envelope_intersecting(&probe)
            .map(|entry| &self.divisions[entry.data])
            .filter(|d| d.shape.intersects(&point))
            .min_by(|a, b| a.area.total_cmp(&b.area).then_with(|| a.code.cmp(&b.code)))
    }

    /// A division by code.
    pub fn get(&self, code: &str) -> Option<&Division> {
        self.by_code.get(code).map(|&i| &self.divisions[i])
    }

    /// The division and its ancestors, innermost first.
    pub fn path(&self, code: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut next = Some(code.to_owned());
        while let Some(code) = next {
            if out.contains(&code) {
                break;
            }
            next = self.get(&code).and_then(|d| d.parent.clone());
            out.push(code);
        }
        out
    }

    /// Every division, in file order.
    pub fn divisions(&self) -> &[Division] {
        &self.divisions
    }

    pub fn len(&self) -> usize {
        self.divisions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.divisions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(code: &str, parent: Option<&str>, x0: f64, y0: f64, size: f64) -> String {
        let parent = parent.map(|p| format!(",\"parent\":\"{p}\"")).unwrap_or_default();
        format!(
            r#"{{"type":"Feature","properties":{{"code":"{code}","name":"n{code}"{parent}}},"geometry":{{"type":"Polygon","coordinates":[[[{x0},{y0}],[{x1},{y0}],[{x1},{y1}],[{x0},{y1}],[{x0},{y0}]]]}}}}"#,
            x1 = x0 + size,
            y1 = y0 + size
        )
    }

    fn sample() -> Regions {
        let features = [
            square("330000", None, 118.0, 27.0, 4.0),
            square("330300", Some("330000"), 120.0, 27.0, 2.0),
            square("330302", Some("330300"), 120.0, 27.0, 1.0),
            square("330303", Some("330300"), 121.0, 27.0, 1.0),
        ];
        Regions::from_geojson(&format!(r#"{{"type":"FeatureCollection","features":[{}]}}"#, features.join(",")))
            .expect("sample regions")
    }

    #[test]
    fn places_points_in_the_smallest_division() {
        let regions = sample();
        let cases = [
            ((27.5, 120.5), Some("330302")),
            ((27.5, 121.5), Some("330303")),
            ((28.5, 120.5), Some("330300")),
            ((27.5, 118.5), Some("330000")),
            ((27.5, 121.0), Some("330302")), // on the shared border: the smaller code wins a tie
            ((10.0, 10.0), None),
        ];
        for ((lat, lon), want) in cases {
            assert_eq!(regions.locate(lat, lon).map(|d| d.code.as_str()), want, "({lat}, {lon})");
        }
    }

    #[test]
    fn paths_go_up_to_the_province() {
        let regions = sample();
        assert_eq!(regions.path("330302"), ["330302", "330300", "330000"]);
        assert_eq!(regions.path("999999"), ["999999"]);
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let cases = [
            ("not json", "not GeoJSON"),
            (r#"{"type":"Point","coordinates":[1,2]}"#, "FeatureCollection"),
            (
                r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":null}]}"#,
                "no `code`",
            ),
        ];
        for (text, want) in cases {
            let err = Regions::from_geojson(text).expect_err(text);
            assert!(format!("{err:#}").contains(want), "{text}: {err:#}");
        }
    }
}
