//! GB/T 35965.1-2018 style identifiers: `ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N`.

use chrono::{DateTime, Datelike, FixedOffset};

use super::CapError;

/// Beijing time, UTC+08:00, in seconds.
const BEIJING_OFFSET_SECS: i32 = 8 * 3600;

/// The identifier `ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N` of a message sent at `sent` (any offset: it is
/// written in Beijing time):
///
/// - `division_code`: the 6-digit GB/T 2260 code of the issuing division (`ZZZZZZ`);
/// - `sector`: the 3-digit code of the issuing sector (`DDD`);
/// - `unit`: the 3-digit unit within the sector (`UUU`), `""` for the default `000`;
/// - `ext`: the 2-digit extension (`XX`), `""` for the default `00`;
/// - `seq`: the sequence number 0–9 (`N`) telling apart messages sent in the same second.
///
/// Every part must be exactly that many ASCII digits; the result has only digits and `_`, so it
/// meets CAP's rule (no spaces, commas, `<` or `&`).
pub fn identifier(
    division_code: &str,
    sector: &str,
    unit: &str,
    ext: &str,
    sent_beijing: DateTime<FixedOffset>,
    seq: u8,
) -> Result<String, CapError> {
    let unit = if unit.is_empty() { "000" } else { unit };
    let ext = if ext.is_empty() { "00" } else { ext };
    digits("division code (GB/T 2260)", division_code, 6)?;
    digits("sector code", sector, 3)?;
    digits("unit code", unit, 3)?;
    digits("extension code", ext, 2)?;
    if seq > 9 {
        return Err(CapError::Sequence(seq));
    }
    let Some(beijing) = FixedOffset::east_opt(BEIJING_OFFSET_SECS) else {
        return Err(CapError::Invalid { field: "identifier".into(), reason: "no Beijing offset".into() });
    };
    let local = sent_beijing.with_timezone(&beijing);
    if !(0..=9999).contains(&local.year()) {
        return Err(CapError::Year { field: "identifier", year: local.year() });
    }
    Ok(format!("{division_code}{sector}{unit}{ext}_{}_{seq}", local.format("%Y%m%d%H%M%S")))
}

fn digits(part: &'static str, value: &str, len: usize) -> Result<(), CapError> {
    if value.len() == len && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(CapError::IdentifierPart { part, len, value: value.to_owned() })
    }
}
