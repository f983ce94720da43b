//! Sensor readings as SenML JSON (RFC 8428), with base-field resolution (§4.6) and the
//! contract v1 profile: every record resolves to a name, an absolute time and one value.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Limits;
use crate::error::{Code, Invalid, parse_json};

/// One record as it appears in a pack (RFC 8428 §4.1 labels). Deserialized by hand (see the
/// `Deserialize` impl below): only from a JSON object, unknown labels skipped without
/// allocating, and a must-understand label (ending in `_`) remembered so that it is refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Record {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bv: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bver: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vb: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ut: Option<f64>,
    /// The first label this crate does not know that ends in `_`: such a label must be
    /// understood (RFC 8428 §4.4), so a record with one is refused. Other unknown labels are
    /// ignored.
    #[serde(skip)]
    pub must_understand: Option<String>,
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RecordVisitor)
    }
}

/// A record's label, matched without allocating.
enum Label {
    Bn,
    Bt,
    Bu,
    Bv,
    Bs,
    Bver,
    N,
    U,
    V,
    Vs,
    Vb,
    Vd,
    S,
    T,
    Ut,
    MustUnderstand(String),
    Other,
}

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LabelVisitor;
        impl serde::de::Visitor<'_> for LabelVisitor {
            type Value = Label;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a SenML label")
            }
            fn visit_str<E: serde::de::Error>(self, label: &str) -> Result<Label, E> {
                Ok(match label {
                    "bn" => Label::Bn,
                    "bt" => Label::Bt,
                    "bu" => Label::Bu,
                    "bv" => Label::Bv,
                    "bs" => Label::Bs,
                    "bver" => Label::Bver,
                    "n" => Label::N,
                    "u" => Label::U,
                    "v" => Label::V,
                    "vs" => Label::Vs,
                    "vb" => Label::Vb,
                    "vd" => Label::Vd,
                    "s" => Label::S,
                    "t" => Label::T,
                    "ut" => Label::Ut,
                    other if other.ends_with('_') => Label::MustUnderstand(other.to_owned()),
                    _ => Label::Other,
                })
            }
        }
        deserializer.deserialize_identifier(LabelVisitor)
    }
}

struct RecordVisitor;

impl<'de> serde::de::Visitor<'de> for RecordVisitor {
    type Value = Record;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a SenML record (a JSON object)")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
        use serde::de::Error;
        let mut r = Record::default();
        // A label given twice is ambiguous: refuse it rather than guess which one counts.
        fn set<T, E: Error>(slot: &mut Option<T>, value: T, label: &'static str) -> Result<(), E> {
            if slot.replace(value).is_some() {
                return Err(E::custom(format_args!("duplicate label `{label}`")));
            }
            Ok(())
        }
        while let Some(label) = map.next_key::<Label>()? {
            match label {
                Label::Bn => set(&mut r.bn, map.next_value()?, "bn")?,
                Label::Bt => set(&mut r.bt, map.next_value()?, "bt")?,
                Label::Bu => set(&mut r.bu, map.next_value()?, "bu")?,
                Label::Bv => set(&mut r.bv, map.next_value()?, "bv")?,
                Label::Bs => set(&mut r.bs, map.next_value()?, "bs")?,
                Label::Bver => set(&mut r.bver, map.next_value()?, "bver")?,
                Label::N => set(&mut r.n, map.next_value()?, "n")?,
                Label::U => set(&mut r.u, map.next_value()?, "u")?,
                Label::V => set(&mut r.v, map.next_value()?, "v")?,
                Label::Vs => set(&mut r.vs, map.next_value()?, "vs")?,
                Label::Vb => set(&mut r.vb, map.next_value()?, "vb")?,
                Label::Vd => set(&mut r.vd, map.next_value()?, "vd")?,
                Label::S => set(&mut r.s, map.next_value()?, "s")?,
                Label::T => set(&mut r.t, map.next_value()?, "t")?,
                Label::Ut => set(&mut r.ut, map.next_value()?, "ut")?,
                Label::MustUnderstand(name) => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    r.must_understand.get_or_insert(name);
                }
                Label::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(r)
    }
}

/// The value of a resolved reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    String(String),
    Bool(bool),
    Data(Vec<u8>),
}

/// A record after base-field resolution.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The full resolved name (`bn` + `n`).
    pub full_name: String,
    /// The measurement: the last segment of the resolved name after `:` or `/`
    /// (`urn:dev:ow:10e2:temp` → `temp`). Recognised names are listed in [`RECOGNISED`].
    pub name: String,
    pub unit: Option<String>,
    /// Absent when the record carries only a sum.
    pub value: Option<Value>,
    pub sum: Option<f64>,
    /// Absolute time, microseconds since the Unix epoch.
    pub time_us: i64,
}

/// Names of contract v1 with their one allowed unit.
pub const RECOGNISED: [(&str, &str); 11] = [
    ("rain", "mm"),
    ("water_level", "m"),
    ("flow", "m3/s"),
    ("wind_speed", "m/s"),
    ("temp", "Cel"),
    ("pga", "m/s2"),
    ("intensity", "/"),
    ("gas", "ppm"),
    ("lat", "lat"),
    ("lon", "lon"),
    ("battery", "%EL"),
];

/// The contract unit of a recognised name.
pub fn contract_unit(name: &str) -> Option<&'static str> {
    RECOGNISED.iter().find(|(n, _)| *n == name).map(|(_, u)| *u)
}

/// Times below 2^28 s are relative to "now" (RFC 8428 §4.5.3).
const RELATIVE_TIME_LIMIT: f64 = 268_435_456.0;
/// The longest resolved name.
pub const MAX_NAME_LEN: usize = 256;

/// Parses and resolves a SenML pack received on the topic of `topic_device`, at `now`.
pub fn parse_pack(
    payload: &[u8],
    topic_device: &str,
    now: DateTime<Utc>,
    limits: &Limits,
) -> Result<Vec<Reading>, Invalid> {
    if payload.len() > limits.max_json_bytes {
        return Err(Invalid::new(
            Code::PayloadTooLarge,
            format!("SenML pack is {} bytes; the limit is {}", payload.len(), limits.max_json_bytes),
        ));
    }
    let records: Vec<Record> = parse_json(payload)?;
    resolve(&records, topic_device, now, limits)
}

/// Resolves base fields over a pack (RFC 8428 §4.6) and validates each record.
pub fn resolve(
    records: &[Record],
    topic_device: &str,
    now: DateTime<Utc>,
    limits: &Limits,
) -> Result<Vec<Reading>, Invalid> {
    if records.is_empty() {
        return Err(Invalid::new(Code::SenmlEmpty, "SenML pack has no records"));
    }
    if records.len() > limits.max_senml_records {
        return Err(Invalid::new(
            Code::SenmlTooManyRecords,
            format!("SenML pack has {} records; the limit is {}", records.len(), limits.max_senml_records),
        ));
    }
    let max_time_us = (now + limits.max_future_skew).timestamp_micros();
    let min_time_us = limits.min_time.timestamp_micros();
    let mut base_name = String::new();
    let mut base_time = 0.0_f64;
    let mut base_unit: Option<String> = None;
    let mut base_value = 0.0_f64;
    let mut base_sum = 0.0_f64;
    let mut out = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        let at = |code: Code, reason: String| Invalid::new(code, format!("record {index}: {reason}"));
        if let Some(version) = record.bver
            && version != 10
        {
            return Err(at(Code::SenmlUnsupportedVersion, format!("bver {version} is not supported (10 is)")));
        }
        if let Some(label) = &record.must_understand {
            return Err(at(
                Code::SenmlUnsupportedVersion,
                format!("{label:?} is a must-understand field (RFC 8428 §4.4) that contract v1 does not know"),
            ));
        }
        if let Some(bn) = &record.bn {
            base_name.clone_from(bn);
        }
        if let Some(bt) = record.bt {
            base_time = finite(bt, "bt").map_err(|r| at(Code::SenmlValueInvalid, r))?;
        }
        if let Some(bu) = &record.bu {
            base_unit = Some(bu.clone());
        }
        if let Some(bv) = record.bv {
            base_value = finite(bv, "bv").map_err(|r| at(Code::SenmlValueInvalid, r))?;
        }
        if let Some(bs) = record.bs {
            base_sum = finite(bs, "bs").map_err(|r| at(Code::SenmlValueInvalid, r))?;
        }

        let mut full_name = base_name.clone();
        if let Some(n) = &record.n {
            full_name.push_str(n);
        }
        if full_name.is_empty() {
            return Err(at(Code::SenmlNameMissing, "no name: neither bn nor n is given".into()));
        }
        check_name(&full_name).map_err(|r| at(Code::SenmlNameInvalid, r))?;
        let (prefix, name) = split_name(&full_name);
        if let Some(owner) = prefix
            && owner != topic_device
        {
            return Err(at(
                Code::DeviceMismatch,
                format!("name {full_name:?} names device {owner:?} but the topic names {topic_device:?}"),
            ));
        }
        if name.is_empty() {
            return Err(at(
                Code::SenmlNameMissing,
                format!("name {full_name:?} has no measurement after the base name"),
            ));
        }

        let time = base_time + finite(record.t.unwrap_or(0.0), "t").map_err(|r| at(Code::SenmlValueInvalid, r))?;
        if time < RELATIVE_TIME_LIMIT {
            return Err(at(
                Code::SenmlTimeMissing,
                "no absolute time (bt + t must be seconds since 1970); contract v1 needs one so that a resent reading is recognised".into(),
            ));
        }
        let time_us = (time * 1e6).round() as i64;
        if time_us > max_time_us {
            return Err(at(Code::TimeInFuture, format!("time {time} lies in the future")));
        }
        if time_us < min_time_us {
            return Err(at(Code::TimeTooOld, format!("time {time} lies before {}", limits.min_time)));
        }

        let unit = record.u.clone().or_else(|| base_unit.clone());
        let given = [record.v.is_some(), record.vs.is_some(), record.vb.is_some(), record.vd.is_some()]
            .iter()
            .filter(|x| **x)
            .count();
        if given > 1 {
            return Err(at(Code::SenmlValueAmbiguous, "more than one of v, vs, vb, vd".into()));
        }
        let value = if let Some(v) = record.v {
            Some(Value::Number(
                finite(base_value + finite(v, "v").map_err(|r| at(Code::SenmlValueInvalid, r))?, "v")
                    .map_err(|r| at(Code::SenmlValueInvalid, r))?,
            ))
        } else if let Some(vs) = &record.vs {
            if vs.len() > limits.max_json_bytes {
                return Err(at(Code::PayloadTooLarge, "vs is too long".into()));
            }
            Some(Value::String(vs.clone()))
        } else if let Some(vb) = record.vb {
            Some(Value::Bool(vb))
        } else if let Some(vd) = &record.vd {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(vd.trim_end_matches('='))
                .map_err(|e| at(Code::SenmlBadBase64, format!("vd is not base64url: {e}")))?;
            Some(Value::Data(bytes))
        } else {
            None
        };
        let sum = match record.s {
            Some(s) => Some(
                finite(base_sum + finite(s, "s").map_err(|r| at(Code::SenmlValueInvalid, r))?, "s")
                    .map_err(|r| at(Code::SenmlValueInvalid, r))?,
            ),
            None => None,
        };
        if value.is_none() && sum.is_none() {
            return Err(at(Code::SenmlValueMissing, format!("{name}: no value (v, vs, vb, vd) and no sum (s)")));
        }
        check_recognised(name, unit.as_deref(), value.as_ref()).map_err(|(code, r)| at(code, r))?;
        out.push(Reading { name: name.to_owned(), full_name: full_name.clone(), unit, value, sum, time_us });
    }
    Ok(out)
}

fn finite(x: f64, what: &str) -> Result<f64, String> {
    if x.is_finite() { Ok(x) } else { Err(format!("{what} is not a finite number")) }
}

/// RFC 8428 §4.5.1: names start with a letter or digit and hold only `A-Z a-z 0-9 - : . / _`.
fn check_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_NAME_LEN {
        return Err(format!("name is {} bytes; the limit is {MAX_NAME_LEN}", name.len()));
    }
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok {
        return Err(format!("name {name:?} must start with a letter or digit"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | '/' | '_'))) {
        return Err(format!("name {name:?} has the character {c:?}"));
    }
    Ok(())
}

/// Splits a resolved name into the segment that names the device (if any) and the measurement.
/// `urn:dev:ow:10e2:temp` → (`10e2`, `temp`); `gauge-1/rain` → (`gauge-1`, `rain`); `rain` → (None, `rain`).
fn split_name(full: &str) -> (Option<&str>, &str) {
    match full.rfind([':', '/']) {
        None => (None, full),
        Some(cut) => {
            let name = &full[cut + 1..];
            let head = &full[..cut];
            let owner = match head.rfind([':', '/']) {
                Some(c) => &head[c + 1..],
                None => head,
            };
            (Some(owner), name)
        }
    }
}

fn check_recognised(name: &str, unit: Option<&str>, value: Option<&Value>) -> Result<(), (Code, String)> {
    let Some(want) = contract_unit(name) else {
        return Ok(());
    };
    if let Some(unit) = unit
        && unit != want
    {
        return Err((Code::SenmlUnitMismatch, format!("{name} must be in {want:?}, got {unit:?}")));
    }
    let number = match value {
        None => return Ok(()),
        Some(Value::Number(x)) => *x,
        Some(_) => {
            return Err((Code::SenmlValueInvalid, format!("{name} must be a number (v)")));
        }
    };
    let range = match name {
        "rain" | "flow" | "wind_speed" | "pga" | "gas" => 0.0..=1.0e9,
        "intensity" => 0.0..=12.0,
        "battery" => 0.0..=100.0,
        "lat" => -90.0..=90.0,
        "lon" => -180.0..=180.0,
        "temp" => -273.15..=1.0e4,
        _ => f64::MIN..=f64::MAX,
    };
    if range.contains(&number) {
        Ok(())
    } else {
        Err((Code::SenmlValueInvalid, format!("{name} = {number} is outside {}..={}", range.start(), range.end())))
    }
}
