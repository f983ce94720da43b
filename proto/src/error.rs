//! The one error type of validation: a stable machine code and a human reason.

use std::fmt;

/// Why a message was refused. The `code` is part of wire contract v1 (it goes out in reject
/// notices and labels the node's metrics), so codes are only ever added, never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    /// The topic is not one of contract v1's field topics, or a level of it is malformed.
    InvalidTopic,
    /// The device id in the topic is empty, too long, or has characters outside `[A-Za-z0-9_.-]`.
    InvalidDeviceId,
    /// The payload names a different device than its topic.
    DeviceMismatch,
    /// The payload is larger than the topic allows.
    PayloadTooLarge,
    /// The payload is not JSON (syntax error, NaN, truncated, nested too deeply, not UTF-8).
    InvalidJson,
    /// The JSON is well formed but a field is missing or has the wrong type.
    InvalidField,
    /// The message id is empty, too long, or has control characters.
    InvalidId,
    /// A time is not RFC 3339 with an offset.
    InvalidTime,
    /// A time lies further in the future than the allowed clock skew.
    TimeInFuture,
    /// A time lies before 2000-01-01, which no real observation does.
    TimeTooOld,
    /// A latitude or longitude is out of range or not finite.
    CoordinatesOutOfRange,
    /// A disaster figure is negative.
    FigureNegative,
    /// A disaster figure is not finite or absurdly large.
    FigureInvalid,
    /// The free text is longer than 4 KiB.
    TextTooLong,
    /// A region code is not a six-digit division code.
    InvalidRegion,
    /// A device status has a battery level outside 0..=100.
    BatteryOutOfRange,
    /// A SenML pack has no records.
    SenmlEmpty,
    /// A SenML pack has more records than one message may carry.
    SenmlTooManyRecords,
    /// A SenML record resolves to an empty name.
    SenmlNameMissing,
    /// A SenML record's resolved name has characters RFC 8428 does not allow.
    SenmlNameInvalid,
    /// A SenML record has no absolute time (contract v1 requires one: a reading's identity
    /// is its device, name and time, which must be stable across resends).
    SenmlTimeMissing,
    /// A SenML record has no value and no sum.
    SenmlValueMissing,
    /// A SenML record has more than one of `v`, `vs`, `vb`, `vd`.
    SenmlValueAmbiguous,
    /// A recognised measurement carries a unit other than its contract unit.
    SenmlUnitMismatch,
    /// A recognised measurement has a value of the wrong kind or out of its physical range.
    SenmlValueInvalid,
    /// A `vd` data value is not base64url.
    SenmlBadBase64,
    /// A SenML version other than 10 (or a must-understand field) was used.
    SenmlUnsupportedVersion,
    /// Media is empty.
    MediaEmpty,
    /// Media is larger than 4 MiB.
    MediaTooLarge,
    /// Media is not JPEG, PNG or WebP.
    MediaTypeUnsupported,
    /// A stored report could not be accepted for a reason of the node's own (e.g. storage).
    Internal,
    /// A dispatch order has no `sig` member, or an empty one.
    MissingSignature,
    /// A dispatch order's `sig` is not 64 bytes of standard base64, or does not verify against
    /// any of the hub keys the receiver trusts (the order was changed, or signed by another key).
    BadSignature,
    /// The receiver has no hub key to verify a dispatch order with (a node without `hub_key`).
    NoTrustedKey,
}

impl Code {
    /// Every code, for documentation and metrics.
    pub const ALL: [Code; 34] = [
        Code::InvalidTopic,
        Code::InvalidDeviceId,
        Code::DeviceMismatch,
        Code::PayloadTooLarge,
        Code::InvalidJson,
        Code::InvalidField,
        Code::InvalidId,
        Code::InvalidTime,
        Code::TimeInFuture,
        Code::TimeTooOld,
        Code::CoordinatesOutOfRange,
        Code::FigureNegative,
        Code::FigureInvalid,
        Code::TextTooLong,
        Code::InvalidRegion,
        Code::BatteryOutOfRange,
        Code::SenmlEmpty,
        Code::SenmlTooManyRecords,
        Code::SenmlNameMissing,
        Code::SenmlNameInvalid,
        Code::SenmlTimeMissing,
        Code::SenmlValueMissing,
        Code::SenmlValueAmbiguous,
        Code::SenmlUnitMismatch,
        Code::SenmlValueInvalid,
        Code::SenmlBadBase64,
        Code::SenmlUnsupportedVersion,
        Code::MediaEmpty,
        Code::MediaTooLarge,
        Code::MediaTypeUnsupported,
        Code::Internal,
        Code::MissingSignature,
        Code::BadSignature,
        Code::NoTrustedKey,
    ];

    /// The stable snake_case name used on the wire and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidTopic => "invalid_topic",
            Code::InvalidDeviceId => "invalid_device_id",
            Code::DeviceMismatch => "device_mismatch",
            Code::PayloadTooLarge => "payload_too_large",
            Code::InvalidJson => "invalid_json",
            Code::InvalidField => "invalid_field",
            Code::InvalidId => "invalid_id",
            Code::InvalidTime => "invalid_time",
            Code::TimeInFuture => "time_in_future",
            Code::TimeTooOld => "time_too_old",
            Code::CoordinatesOutOfRange => "coordinates_out_of_range",
            Code::FigureNegative => "figure_negative",
            Code::FigureInvalid => "figure_invalid",
            Code::TextTooLong => "text_too_long",
            Code::InvalidRegion => "invalid_region",
            Code::BatteryOutOfRange => "battery_out_of_range",
            Code::SenmlEmpty => "senml_empty",
            Code::SenmlTooManyRecords => "senml_too_many_records",
            Code::SenmlNameMissing => "senml_name_missing",
            Code::SenmlNameInvalid => "senml_name_invalid",
            Code::SenmlTimeMissing => "senml_time_missing",
            Code::SenmlValueMissing => "senml_value_missing",
            Code::SenmlValueAmbiguous => "senml_value_ambiguous",
            Code::SenmlUnitMismatch => "senml_unit_mismatch",
            Code::SenmlValueInvalid => "senml_value_invalid",
            Code::SenmlBadBase64 => "senml_bad_base64",
            Code::SenmlUnsupportedVersion => "senml_unsupported_version",
            Code::MediaEmpty => "media_empty",
            Code::MediaTooLarge => "media_too_large",
            Code::MediaTypeUnsupported => "media_type_unsupported",
            Code::Internal => "internal",
            Code::MissingSignature => "missing_signature",
            Code::BadSignature => "bad_signature",
            Code::NoTrustedKey => "no_trusted_key",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused message: the stable [`Code`] and a reason a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct Invalid {
    pub code: Code,
    pub reason: String,
}

impl Invalid {
    pub fn new(code: Code, reason: impl Into<String>) -> Self {
        Invalid { code, reason: reason.into() }
    }
}

/// Turns a serde_json error (with the path where it happened) into a refusal: syntax errors
/// are `invalid_json`, type and shape errors are `invalid_field`.
pub(crate) fn from_json_error(err: serde_path_to_error::Error<serde_json::Error>) -> Invalid {
    use serde_json::error::Category;
    let path = err.path().to_string();
    let inner = err.into_inner();
    match inner.classify() {
        Category::Data => {
            let at = if path == "." || path.is_empty() { String::new() } else { format!("{path}: ") };
            Invalid::new(Code::InvalidField, format!("{at}{inner}"))
        }
        Category::Syntax | Category::Eof | Category::Io => {
            Invalid::new(Code::InvalidJson, format!("not valid JSON: {inner}"))
        }
    }
}

/// Parses JSON into `T`, mapping errors to refusals with the path of the bad field.
///
/// Good input is parsed once, without tracking the path (which cost a node under load about a
/// tenth of its time); only refused input is parsed again to say where it went wrong.
pub(crate) fn parse_json<'de, T: serde::Deserialize<'de>>(payload: &'de [u8]) -> Result<T, Invalid> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    if let Ok(value) = T::deserialize(&mut de).and_then(|value| de.end().map(|()| value)) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(payload);
    let value = serde_path_to_error::deserialize(&mut de).map_err(from_json_error)?;
    de.end().map_err(|e| Invalid::new(Code::InvalidJson, format!("not valid JSON: {e}")))?;
    Ok(value)
}

/// Deserializes `T` from a JSON object only. A derived `Deserialize` of a struct also reads an
/// array of its fields in declaration order, which contract v1 never sends: `"figures": [1200, 3]`
/// would become 3 deaths and `"location": [87.6, 43.8]` (GeoJSON order) a point in the Arctic.
/// For `#[serde(deserialize_with = "...")]` and for the wire structs' own impls.
pub(crate) fn object_only<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    struct ObjectOnly<T>(std::marker::PhantomData<T>);
    impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for ObjectOnly<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    deserializer.deserialize_map(ObjectOnly(std::marker::PhantomData))
}

/// Parses a JSON object into `T`, as [`parse_json`] does, refusing any other JSON value.
pub(crate) fn parse_json_object<'de, T: serde::Deserialize<'de>>(payload: &'de [u8]) -> Result<T, Invalid> {
    struct Object<T>(T);
    impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Object<T> {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            object_only(deserializer).map(Object)
        }
    }
    parse_json::<Object<T>>(payload).map(|o| o.0)
}
