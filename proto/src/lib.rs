//! Wire contract v1 of Yingji: topic names, payload types and their validation.
//!
//! This is the only crate that defines wire (serde) types. It does no IO: every check is a pure
//! function of the bytes, the topic and the current time, and returns a typed [`Invalid`] with
//! a stable [`Code`] and a reason a person can act on. Nothing in here panics on input.
//!
//! # Layout
//! - [`topic`]: topic names and the parsing of field topics.
//! - [`report`]: field reports (§3.3) and their figures.
//! - [`senml`]: SenML packs (§3.4) with RFC 8428 base-field resolution.
//! - [`status`]: device and node status (§3.1, §3.2).
//! - [`media`]: images attached to reports.
//! - [`dispatch`]: dispatch orders (§3.6) and acknowledgements (§3.7).
//! - [`sign`]: signing and verifying dispatch orders (Ed25519 over JCS), hub keys.
//! - [`event`]: summarized events (§3.5), receipts and reject notices.

pub mod dispatch;
pub mod error;
pub mod event;
pub mod media;
pub mod report;
pub mod senml;
pub mod sign;
pub mod status;
pub mod topic;

pub use error::{Code, Invalid};

use chrono::{DateTime, FixedOffset, TimeDelta, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// Bounds that validation enforces. The defaults are contract v1's.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest JSON payload (reports, SenML packs, status).
    pub max_json_bytes: usize,
    /// The largest media payload.
    pub max_media_bytes: usize,
    /// The most records in one SenML pack.
    pub max_senml_records: usize,
    /// How far in the future a time may lie (device clocks drift).
    pub max_future_skew: TimeDelta,
    /// The earliest time accepted.
    pub min_time: DateTime<Utc>,
}

/// The largest JSON payload of contract v1: 256 KiB.
pub const MAX_JSON_BYTES: usize = 256 * 1024;
/// The largest media payload of contract v1: 4 MiB.
pub const MAX_MEDIA_BYTES: usize = 4 * 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_json_bytes: MAX_JSON_BYTES,
            max_media_bytes: MAX_MEDIA_BYTES,
            max_senml_records: 10_000,
            max_future_skew: TimeDelta::minutes(10),
            min_time: Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single().unwrap_or_default(),
        }
    }
}

/// A WGS 84 position. On the wire it is the object `{"lat": …, "lon": …}` and nothing else: a
/// derived `Deserialize` would also read an array `[a, b]` as (lat, lon), so a position sent in
/// GeoJSON order `[lon, lat]` would be stored, silently, somewhere else.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
}

impl<'de> Deserialize<'de> for Location {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Object {
            lat: f64,
            lon: f64,
        }
        let Object { lat, lon } = error::object_only(deserializer)?;
        Ok(Location { lat, lon })
    }
}

impl Location {
    /// Latitude in [-90, 90], longitude in [-180, 180], both finite.
    pub fn validate(&self) -> Result<(), Invalid> {
        let ok = self.lat.is_finite()
            && self.lon.is_finite()
            && (-90.0..=90.0).contains(&self.lat)
            && (-180.0..=180.0).contains(&self.lon);
        if ok {
            Ok(())
        } else {
            Err(Invalid::new(
                Code::CoordinatesOutOfRange,
                format!("location ({}, {}) is outside lat [-90, 90], lon [-180, 180]", self.lat, self.lon),
            ))
        }
    }
}

/// The longest message id.
pub const MAX_ID_LEN: usize = 128;

/// A message id: 1..=128 characters, no control characters, no `/`, `+` or `#` (ids appear in
/// topics and URLs).
pub fn valid_id(id: &str) -> Result<String, Invalid> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(Invalid::new(Code::InvalidId, format!("id must have 1 to {MAX_ID_LEN} bytes, got {}", id.len())));
    }
    if let Some(c) = id.chars().find(|c| c.is_control() || matches!(c, '/' | '+' | '#') || c.is_whitespace()) {
        return Err(Invalid::new(Code::InvalidId, format!("id {id:?} has the character {c:?}")));
    }
    Ok(id.to_owned())
}

/// Parses an RFC 3339 time with offset and checks it against `now` and the limits.
pub fn check_time(
    field: &str,
    text: &str,
    now: DateTime<Utc>,
    limits: &Limits,
) -> Result<DateTime<FixedOffset>, Invalid> {
    let time = DateTime::parse_from_rfc3339(text).map_err(|e| {
        Invalid::new(Code::InvalidTime, format!("{field} {text:?} is not an RFC 3339 time with offset: {e}"))
    })?;
    if time.with_timezone(&Utc) > now + limits.max_future_skew {
        return Err(Invalid::new(
            Code::TimeInFuture,
            format!("{field} {text} lies in the future (now is {})", now.to_rfc3339()),
        ));
    }
    if time.with_timezone(&Utc) < limits.min_time {
        return Err(Invalid::new(Code::TimeTooOld, format!("{field} {text} lies before {}", limits.min_time)));
    }
    Ok(time)
}

/// A payload that names its device must name the topic's device.
pub fn check_device(payload_device: Option<&str>, topic_device: &str) -> Result<(), Invalid> {
    match payload_device {
        Some(d) if d != topic_device => Err(Invalid::new(
            Code::DeviceMismatch,
            format!("payload names device {d:?} but the topic names {topic_device:?}"),
        )),
        _ => Ok(()),
    }
}
