//! The rules of the CAP 1.2 specification that the XML Schema does not check.

use chrono::{DateTime, Datelike, FixedOffset};

use super::area::normalise_ring;
use super::xml::{forbidden_in_token, is_absolute_uri, is_language, valid_circle};
use super::{Alert, CapError, Info, MsgType, Scope};

/// Every way in which `alert` breaks a rule of CAP 1.2 that [`super::to_xml`] would have to repair
/// or that no XML can express (the document is schema-valid either way):
///
/// - the identifier, the sender and each reference's parts must be non-empty, without white
///   space, `,`, `<` or `&`;
/// - times must have a year of four digits; an info block's `expires` must not be before its
///   `effective` or `onset`;
/// - `Update`, `Cancel`, `Ack` and `Error` must reference earlier messages;
/// - scope `Restricted` and `Private` need `restriction` and `addresses`, which this module does
///   not write (the hub publishes `Public` alerts);
/// - each info block needs a category, an event and a language tag of the `xs:language` form; its
///   `web` must be an absolute URI;
/// - each area needs a description; each polygon ring at least three distinct corners, an area,
///   and finite latitudes/longitudes in range; each circle a valid centre and a radius ≥ 0;
///   each geocode and parameter a `valueName`.
pub fn validate(alert: &Alert) -> Result<(), Vec<CapError>> {
    let mut problems = Vec::new();
    let mut problem =
        |field: String, reason: &str| problems.push(CapError::Invalid { field, reason: reason.to_owned() });

    for (field, value) in [("identifier", &alert.identifier), ("sender", &alert.sender)] {
        if let Some(reason) = token_problem(value) {
            problem(field.to_owned(), reason);
        }
    }
    if let Some(reason) = time_problem(&alert.sent) {
        problem("sent".to_owned(), reason);
    }
    for (i, reference) in alert.references.iter().enumerate() {
        for (part, value) in [("sender", &reference.sender), ("identifier", &reference.identifier)] {
            if let Some(reason) = token_problem(value) {
                problem(format!("references[{i}].{part}"), reason);
            }
        }
        if let Some(reason) = time_problem(&reference.sent) {
            problem(format!("references[{i}].sent"), reason);
        }
    }
    if alert.msg_type != MsgType::Alert && alert.references.is_empty() {
        problem("references".to_owned(), "an Update, Cancel, Ack or Error must reference the earlier message");
    }
    match alert.scope {
        Scope::Public => {}
        Scope::Restricted => problem("scope".to_owned(), "Restricted needs <restriction>, which is not written"),
        Scope::Private => problem("scope".to_owned(), "Private needs <addresses>, which are not written"),
    }
    for (i, name) in alert.incidents.iter().enumerate() {
        if name.trim().is_empty() || name.contains('"') {
            problem(format!("incidents[{i}]"), "an incident name must be non-empty and without double quotes");
        }
    }
    for (i, info) in alert.infos.iter().enumerate() {
        info_problems(&format!("infos[{i}]"), info, &mut problem);
    }

    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

fn info_problems(at: &str, info: &Info, problem: &mut impl FnMut(String, &str)) {
    if !is_language(&info.language) {
        problem(format!("{at}.language"), "not a language tag (xs:language)");
    }
    if info.categories.is_empty() {
        problem(format!("{at}.categories"), "at least one category is required");
    }
    if info.event.trim().is_empty() {
        problem(format!("{at}.event"), "the event is required");
    }
    for (name, time) in [("effective", &info.effective), ("onset", &info.onset), ("expires", &info.expires)] {
        if let Some(reason) = time.as_ref().and_then(time_problem) {
            problem(format!("{at}.{name}"), reason);
        }
    }
    if let Some(expires) = info.expires
        && (info.effective.is_some_and(|t| expires < t) || info.onset.is_some_and(|t| expires < t))
    {
        problem(format!("{at}.expires"), "expires before the info is effective or its onset");
    }
    if info.web.as_deref().is_some_and(|web| !is_absolute_uri(web.trim())) {
        problem(format!("{at}.web"), "not an absolute URI without spaces");
    }
    for (j, (name, _)) in info.parameters.iter().enumerate() {
        if name.trim().is_empty() {
            problem(format!("{at}.parameters[{j}]"), "the valueName is required");
        }
    }
    for (j, area) in info.areas.iter().enumerate() {
        let at = format!("{at}.areas[{j}]");
        if area.area_desc.trim().is_empty() {
            problem(format!("{at}.area_desc"), "the area description is required");
        }
        for (k, ring) in area.polygons.iter().enumerate() {
            if normalise_ring(ring).is_none() {
                problem(
                    format!("{at}.polygons[{k}]"),
                    "needs three distinct corners, an area, and latitudes/longitudes that are finite and in range",
                );
            }
        }
        for (k, &(lat, lon, radius)) in area.circles.iter().enumerate() {
            if !valid_circle(lat, lon, radius) {
                problem(format!("{at}.circles[{k}]"), "needs a valid centre and a finite radius ≥ 0");
            }
        }
        for (k, (name, _)) in area.geocodes.iter().enumerate() {
            if name.trim().is_empty() {
                problem(format!("{at}.geocodes[{k}]"), "the valueName is required");
            }
        }
    }
}

fn token_problem(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        Some("must not be empty")
    } else if value.chars().any(forbidden_in_token) {
        Some("must not contain white space, ',', '<' or '&'")
    } else {
        None
    }
}

fn time_problem(time: &DateTime<FixedOffset>) -> Option<&'static str> {
    (!(0..=9999).contains(&time.year())).then_some("the year must have four digits")
}
