//! Field reports (contract v1 §3.3): a reporting unit's cumulative figures for an incident.

use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Code, Invalid, object_only, parse_json_object};
use crate::{Limits, Location, check_device, check_time, valid_id};

/// The reporting stage (初报 / 续报 / 核报).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Initial,
    Update,
    Final,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Initial => "initial",
            Stage::Update => "update",
            Stage::Final => "final",
        }
    }
}

/// The hazard kinds of contract v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hazard {
    Flood,
    Rainstorm,
    Typhoon,
    Earthquake,
    Landslide,
    DebrisFlow,
    Drought,
    Wildfire,
    Snow,
    Hail,
    StormSurge,
    Hazmat,
    Other,
}

impl Hazard {
    pub fn as_str(self) -> &'static str {
        match self {
            Hazard::Flood => "flood",
            Hazard::Rainstorm => "rainstorm",
            Hazard::Typhoon => "typhoon",
            Hazard::Earthquake => "earthquake",
            Hazard::Landslide => "landslide",
            Hazard::DebrisFlow => "debris_flow",
            Hazard::Drought => "drought",
            Hazard::Wildfire => "wildfire",
            Hazard::Snow => "snow",
            Hazard::Hail => "hail",
            Hazard::StormSurge => "storm_surge",
            Hazard::Hazmat => "hazmat",
            Hazard::Other => "other",
        }
    }
}

/// The GB/T 24438 indicators a report carries: cumulative for its (incident, region) as of
/// `observed_at`. Absent means "not reported", which is different from zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Figures {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affected: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deaths: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injured: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relocated: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needing_aid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub houses_collapsed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub houses_severely_damaged: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub houses_damaged: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop_area_ha: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop_failure_ha: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_loss_cny: Option<f64>,
}

/// The largest count any indicator may carry (more people than live on Earth is a typo).
pub const MAX_COUNT: i64 = 10_000_000_000;
/// The largest area in hectares (the land area of China is about 9.6e8 ha).
pub const MAX_AREA_HA: f64 = 1.0e9;
/// The largest direct loss in yuan (100 trillion).
pub const MAX_LOSS_CNY: f64 = 1.0e14;

impl Figures {
    /// The integer indicators with their names.
    pub fn counts(&self) -> [(&'static str, Option<i64>); 9] {
        [
            ("affected", self.affected),
            ("deaths", self.deaths),
            ("missing", self.missing),
            ("injured", self.injured),
            ("relocated", self.relocated),
            ("needing_aid", self.needing_aid),
            ("houses_collapsed", self.houses_collapsed),
            ("houses_severely_damaged", self.houses_severely_damaged),
            ("houses_damaged", self.houses_damaged),
        ]
    }

    /// The real-valued indicators with their names and upper bounds.
    pub fn amounts(&self) -> [(&'static str, Option<f64>, f64); 3] {
        [
            ("crop_area_ha", self.crop_area_ha, MAX_AREA_HA),
            ("crop_failure_ha", self.crop_failure_ha, MAX_AREA_HA),
            ("direct_loss_cny", self.direct_loss_cny, MAX_LOSS_CNY),
        ]
    }

    /// Checks every figure: not negative, finite, and not absurd.
    pub fn validate(&self) -> Result<(), Invalid> {
        for (name, value) in self.counts() {
            match value {
                Some(v) if v < 0 => {
                    return Err(Invalid::new(
                        Code::FigureNegative,
                        format!("figures.{name} is {v}; figures are counts and cannot be negative"),
                    ));
                }
                Some(v) if v > MAX_COUNT => {
                    return Err(Invalid::new(
                        Code::FigureInvalid,
                        format!("figures.{name} is {v}, more than {MAX_COUNT}"),
                    ));
                }
                _ => {}
            }
        }
        for (name, value, max) in self.amounts() {
            match value {
                Some(v) if !v.is_finite() || v > max => {
                    return Err(Invalid::new(
                        Code::FigureInvalid,
                        format!("figures.{name} is {v}; it must be finite and at most {max}"),
                    ));
                }
                Some(v) if v < 0.0 => {
                    return Err(Invalid::new(
                        Code::FigureNegative,
                        format!("figures.{name} is {v}; figures cannot be negative"),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A field report as it travels on `yingji/v1/report/{device_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldReport {
    /// Unique per device and stable across resends: the node is idempotent on (device, id).
    pub id: String,
    /// The disaster event this report belongs to.
    pub incident: String,
    pub stage: Stage,
    pub hazard: Hazard,
    pub observed_at: DateTime<FixedOffset>,
    pub location: Location,
    /// A six-digit division code; when absent the node finds it from `location`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default)]
    pub figures: Figures,
    /// Shown to officers as text, never as HTML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// True for drills; drill data never mixes with real data.
    #[serde(default)]
    pub exercise: bool,
    /// Optional: the device that filed it. When present it must match the topic's device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// The wire shape before validation: times as strings so that a bad one gets its own code.
#[derive(Deserialize)]
struct RawReport {
    id: String,
    incident: String,
    stage: Stage,
    hazard: Hazard,
    observed_at: String,
    location: Location,
    #[serde(default)]
    region: Option<String>,
    #[serde(default, deserialize_with = "object_only")]
    figures: Figures,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    exercise: bool,
    #[serde(default)]
    device: Option<String>,
}

/// The largest free text of a report, in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;

/// A division code: six ASCII digits (GB/T 2260).
pub fn valid_region(code: &str) -> Result<(), Invalid> {
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Invalid::new(Code::InvalidRegion, format!("region {code:?} is not a six-digit division code")))
    }
}

impl FieldReport {
    /// Parses and validates a report received on the topic of `topic_device`, at `now`.
    pub fn parse(
        payload: &[u8],
        topic_device: &str,
        now: DateTime<Utc>,
        limits: &Limits,
    ) -> Result<FieldReport, Invalid> {
        if payload.len() > limits.max_json_bytes {
            return Err(Invalid::new(
                Code::PayloadTooLarge,
                format!("report is {} bytes; the limit is {}", payload.len(), limits.max_json_bytes),
            ));
        }
        let raw: RawReport = parse_json_object(payload)?;
        let id = valid_id(&raw.id)?;
        let incident = valid_id(&raw.incident).map_err(|e| Invalid::new(e.code, format!("incident: {}", e.reason)))?;
        check_device(raw.device.as_deref(), topic_device)?;
        let observed_at = check_time("observed_at", &raw.observed_at, now, limits)?;
        raw.location.validate()?;
        if let Some(region) = &raw.region {
            valid_region(region)?;
        }
        raw.figures.validate()?;
        if let Some(text) = &raw.text
            && text.len() > MAX_TEXT_BYTES
        {
            return Err(Invalid::new(
                Code::TextTooLong,
                format!("text is {} bytes; the limit is {MAX_TEXT_BYTES}", text.len()),
            ));
        }
        Ok(FieldReport {
            id,
            incident,
            stage: raw.stage,
            hazard: raw.hazard,
            observed_at,
            location: raw.location,
            region: raw.region,
            figures: raw.figures,
            text: raw.text,
            exercise: raw.exercise,
            device: raw.device,
        })
    }
}
