//! The device registry: the node's stations with their location and water-level lines.
//!
//! Loaded from CSV (`id,kind,name,lat,lon,region,warning_level,guarantee_level`, optionally
//! followed by `historic_max,interval_s,exercise`; header required, the columns after `lon` may be empty) or from GeoJSON (Point features with the same
//! properties). A reading from a device that is not in the registry is still kept, flagged as
//! unregistered and counted.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// One registered station.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    /// rain_gauge, water_level_gauge, seismometer, gas_detector, reporter, ...
    pub kind: String,
    pub name: String,
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub region: Option<String>,
    /// 警戒水位, metres, for water-level gauges.
    #[serde(default)]
    pub warning_level: Option<f64>,
    /// 保证水位, metres, for water-level gauges.
    #[serde(default)]
    pub guarantee_level: Option<f64>,
    /// The highest level ever recorded at the gauge, metres (the red flood signal).
    #[serde(default)]
    pub historic_max: Option<f64>,
    /// How often the station reports, seconds; it goes offline after a configured multiple of
    /// this without a word.
    #[serde(default)]
    pub interval_s: Option<f64>,
    /// A drill station (a simulator's, or a real one lent to an exercise): the warnings and
    /// health events of its readings are marked `exercise` and never reach real data.
    #[serde(default, deserialize_with = "flag")]
    pub exercise: bool,
}

/// A CSV/GeoJSON boolean: empty, `true`/`false`, `1`/`0`, `yes`/`no`.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bool(bool),
        Int(i64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(false),
        Some(Raw::Bool(b)) => Ok(b),
        Some(Raw::Int(0)) => Ok(false),
        Some(Raw::Int(1)) => Ok(true),
        Some(Raw::Int(n)) => Err(serde::de::Error::custom(format!("exercise {n}: true or false"))),
        Some(Raw::Text(t)) => match t.trim().to_ascii_lowercase().as_str() {
            "" | "false" | "0" | "no" => Ok(false),
            "true" | "1" | "yes" => Ok(true),
            other => Err(serde::de::Error::custom(format!("exercise {other:?}: true or false"))),
        },
    }
}

/// All registered devices by id.
#[derive(Debug, Default)]
pub struct Registry {
    devices: HashMap<String, Device>,
}

impl Registry {
    /// Reads a CSV or GeoJSON registry, chosen by the file's extension
    /// (`.geojson`/`.json` or anything else for CSV).
    pub fn load(path: &Path) -> anyhow::Result<Registry> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading the device registry {}", path.display()))?;
        let is_json = matches!(path.extension().and_then(|e| e.to_str()), Some("geojson" | "json"));
        let parsed = if is_json { Registry::from_geojson(&text) } else { Registry::from_csv(&text) };
        parsed.with_context(|| format!("the device registry {} is not usable", path.display()))
    }

    pub fn from_csv(text: &str) -> anyhow::Result<Registry> {
        let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
        let mut devices = Vec::new();
        for (row, record) in reader.deserialize::<Device>().enumerate() {
            // Line numbers count the header as line 1.
            let device = record.with_context(|| format!("line {}", row + 2))?;
            devices.push(device);
        }
        Registry::new(devices)
    }

    pub fn from_geojson(text: &str) -> anyhow::Result<Registry> {
        let geojson: geojson::GeoJson = text.parse().context("not GeoJSON")?;
        let geojson::GeoJson::FeatureCollection(collection) = geojson else {
            bail!("expected a FeatureCollection");
        };
        let mut devices = Vec::with_capacity(collection.features.len());
        for (index, feature) in collection.features.into_iter().enumerate() {
            let Some(geojson::Geometry { value: geojson::Value::Point(coordinates), .. }) = feature.geometry.as_ref()
            else {
                bail!("feature {index} is not a Point");
            };
            let (Some(&lon), Some(&lat)) = (coordinates.first(), coordinates.get(1)) else {
                bail!("feature {index} has a Point without two coordinates");
            };
            let mut props = feature.properties.clone().unwrap_or_default();
            props.insert("lat".into(), lat.into());
            props.insert("lon".into(), lon.into());
            let device: Device =
                serde_json::from_value(serde_json::Value::Object(props)).with_context(|| format!("feature {index}"))?;
            devices.push(device);
        }
        Registry::new(devices)
    }

    fn new(list: Vec<Device>) -> anyhow::Result<Registry> {
        let mut devices = HashMap::with_capacity(list.len());
        for device in list {
            yingji_proto::topic::valid_device_id(&device.id).map_err(|e| anyhow::anyhow!("{}", e.reason))?;
            yingji_proto::Location { lat: device.lat, lon: device.lon }
                .validate()
                .map_err(|e| anyhow::anyhow!("device {}: {}", device.id, e.reason))?;
            if let (Some(w), Some(g)) = (device.warning_level, device.guarantee_level)
                && g < w
            {
                bail!("device {}: guarantee_level {g} is below warning_level {w}", device.id);
            }
            let id = device.id.clone();
            if devices.insert(id.clone(), device).is_some() {
                bail!("device {id} appears twice");
            }
        }
        Ok(Registry { devices })
    }

    pub fn get(&self, id: &str) -> Option<&Device> {
        self.devices.get(id)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.devices.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Device> {
        self.devices.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_csv_and_geojson() {
        let csv = "id,kind,name,lat,lon,region,warning_level,guarantee_level\n\
                   g1,water_level_gauge,Gauge 1,28.0,120.6,330302,4.5,5.2\n\
                   r1,rain_gauge,Rain 1,28.1,120.7,,,\n";
        let registry = Registry::from_csv(csv).expect("csv");
        assert_eq!(registry.len(), 2);
        assert!(registry.iter().all(|d| !d.exercise), "stations are real unless marked");
        let marked = "id,kind,name,lat,lon,region,warning_level,guarantee_level,historic_max,interval_s,exercise\n\
                      a,rain_gauge,A,28.0,120.6,,,,,,true\nb,rain_gauge,B,28.0,120.6,,,,,,0\nc,rain_gauge,C,28.0,120.6,,,,,,\n";
        let drill = Registry::from_csv(marked).expect("csv with exercise");
        let flags: Vec<bool> = ["a", "b", "c"].iter().map(|id| drill.get(id).is_some_and(|d| d.exercise)).collect();
        assert_eq!(flags, [true, false, false]);
        let bad = "id,kind,name,lat,lon,region,warning_level,guarantee_level,historic_max,interval_s,exercise\n\
                   a,rain_gauge,A,28.0,120.6,,,,,,perhaps\n";
        assert!(format!("{:#}", Registry::from_csv(bad).expect_err("refused")).contains("perhaps"));
        assert_eq!(registry.get("g1").and_then(|d| d.warning_level), Some(4.5));
        assert_eq!(registry.get("r1").and_then(|d| d.region.clone()), None);

        let json = r#"{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point","coordinates":[120.6,28.0]},"properties":{"id":"g1","kind":"water_level_gauge","name":"G","warning_level":4.5}}]}"#;
        let registry = Registry::from_geojson(json).expect("geojson");
        assert_eq!(registry.get("g1").map(|d| (d.lat, d.lon)), Some((28.0, 120.6)));
    }

    #[test]
    fn bad_rows_are_refused_with_their_line() {
        let cases = [
            ("id,kind,name,lat,lon,region,warning_level,guarantee_level\ng1,k,n,abc,1,,,\n", "line 2"),
            ("id,kind,name,lat,lon,region,warning_level,guarantee_level\ng1,k,n,95,1,,,\n", "outside"),
            ("id,kind,name,lat,lon,region,warning_level,guarantee_level\ng/1,k,n,1,1,,,\n", "character"),
            ("id,kind,name,lat,lon,region,warning_level,guarantee_level\ng1,k,n,1,1,,5,4\n", "below"),
            ("id,kind,name,lat,lon,region,warning_level,guarantee_level\ng1,k,n,1,1,,,\ng1,k,n,1,1,,,\n", "twice"),
        ];
        for (text, want) in cases {
            let err = Registry::from_csv(text).expect_err(text);
            assert!(format!("{err:#}").contains(want), "{text}: {err:#}");
        }
    }
}
