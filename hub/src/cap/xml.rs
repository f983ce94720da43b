//! The CAP 1.2 XML document of an alert.

use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset};
use quick_xml::escape::escape;

use super::area::{normalise_ring, valid_point};
use super::{Alert, Area, Category, Info, Reference};

/// The XML namespace of CAP 1.2.
pub const CAP_NAMESPACE: &str = "urn:oasis:names:tc:emergency:cap:1.2";

/// A time as CAP writes it: `YYYY-MM-DDThh:mm:ss+08:00`, in the value's own offset (never `Z`),
/// without fractions of a second. An offset with seconds (none in use since 1972) is written to the
/// minute, the time moved so that the instant stays the same. Years outside 0–9999 cannot be
/// written as CAP wants ([`super::validate`] reports them).
pub fn format_time(time: &DateTime<FixedOffset>) -> String {
    let offset_secs = time.offset().local_minus_utc();
    let time = match FixedOffset::east_opt(offset_secs / 60 * 60) {
        Some(offset) => time.with_timezone(&offset),
        None => *time,
    };
    let minutes = time.offset().local_minus_utc() / 60;
    let sign = if minutes < 0 { '-' } else { '+' };
    let mut out = String::with_capacity(25);
    let _ =
        write!(out, "{}{sign}{:02}:{:02}", time.format("%Y-%m-%dT%H:%M:%S"), minutes.abs() / 60, minutes.abs() % 60);
    out
}

/// The CAP 1.2 XML document of `alert`, UTF-8, elements in the order of the schema, two-space
/// indented, ending with a newline.
///
/// Every text is escaped, and the characters XML 1.0 forbids (control characters other than tab,
/// line feed and carriage return; U+FFFE, U+FFFF) are left out. The output is valid against the
/// CAP 1.2 schema whatever the input; where the input breaks a rule of the specification that the
/// schema does not check, it is repaired as follows (and [`super::validate`] reports it):
///
/// - in the identifier, the sender and references, white space, `,`, `<` and `&` become `_`;
/// - an incident name with white space in it is put in double quotes (its own quotes dropped);
/// - an info block without categories gets `Other`; an invalid language tag becomes `zh-CN`;
/// - a `web` that is not an absolute URI without spaces is left out;
/// - polygon rings are rounded to 6 decimals and closed; a ring with fewer than three distinct
///   corners, no area, or a coordinate that is not a finite latitude/longitude is left out, and
///   so is such a circle or one whose radius is negative or not finite.
pub fn to_xml(alert: &Alert) -> String {
    let mut doc = Doc::default();
    doc.out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    doc.out.push_str("<alert xmlns=\"");
    doc.out.push_str(CAP_NAMESPACE);
    doc.out.push_str("\">\n");
    doc.depth = 1;
    doc.leaf("identifier", &token(&alert.identifier));
    doc.leaf("sender", &token(&alert.sender));
    doc.leaf("sent", &format_time(&alert.sent));
    doc.leaf("status", alert.status.as_str());
    doc.leaf("msgType", alert.msg_type.as_str());
    if let Some(source) = &alert.source {
        doc.leaf("source", source);
    }
    doc.leaf("scope", alert.scope.as_str());
    if let Some(note) = &alert.note {
        doc.leaf("note", note);
    }
    if !alert.references.is_empty() {
        let references: Vec<String> = alert.references.iter().map(reference).collect();
        doc.leaf("references", &references.join(" "));
    }
    let incidents: Vec<String> = alert.incidents.iter().filter_map(|i| incident(i)).collect();
    if !incidents.is_empty() {
        doc.leaf("incidents", &incidents.join(" "));
    }
    for info in &alert.infos {
        write_info(&mut doc, info);
    }
    doc.out.push_str("</alert>\n");
    doc.out
}

fn write_info(doc: &mut Doc, info: &Info) {
    doc.open("info");
    doc.leaf("language", if is_language(&info.language) { &info.language } else { "zh-CN" });
    if info.categories.is_empty() {
        doc.leaf("category", Category::Other.as_str());
    }
    for category in &info.categories {
        doc.leaf("category", category.as_str());
    }
    doc.leaf("event", &info.event);
    for response in &info.response_types {
        doc.leaf("responseType", response.as_str());
    }
    doc.leaf("urgency", info.urgency.as_str());
    doc.leaf("severity", info.severity.as_str());
    doc.leaf("certainty", info.certainty.as_str());
    for (name, time) in [("effective", &info.effective), ("onset", &info.onset), ("expires", &info.expires)] {
        if let Some(time) = time {
            doc.leaf(name, &format_time(time));
        }
    }
    if let Some(sender_name) = &info.sender_name {
        doc.leaf("senderName", sender_name);
    }
    doc.leaf("headline", &info.headline);
    doc.leaf("description", &info.description);
    if let Some(instruction) = &info.instruction {
        doc.leaf("instruction", instruction);
    }
    if let Some(web) = info.web.as_deref().map(str::trim).filter(|w| is_absolute_uri(w)) {
        doc.leaf("web", web);
    }
    for (name, value) in &info.parameters {
        doc.pair("parameter", name, value);
    }
    for area in &info.areas {
        write_area(doc, area);
    }
    doc.close("info");
}

fn write_area(doc: &mut Doc, area: &Area) {
    doc.open("area");
    doc.leaf("areaDesc", &area.area_desc);
    for ring in area.polygons.iter().filter_map(|ring| normalise_ring(ring)) {
        let points: Vec<String> = ring.iter().map(|&(lat, lon)| format!("{},{}", number(lat), number(lon))).collect();
        doc.leaf("polygon", &points.join(" "));
    }
    for &(lat, lon, radius_km) in &area.circles {
        if valid_circle(lat, lon, radius_km) {
            doc.leaf("circle", &format!("{},{} {}", number(lat), number(lon), number(radius_km)));
        }
    }
    for (name, value) in &area.geocodes {
        doc.pair("geocode", name, value);
    }
    doc.close("area");
}

/// An XML document being written, one element a line.
#[derive(Default)]
struct Doc {
    out: String,
    depth: usize,
}

impl Doc {
    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    fn open(&mut self, name: &str) {
        self.indent();
        let _ = writeln!(self.out, "<{name}>");
        self.depth += 1;
    }

    fn close(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        let _ = writeln!(self.out, "</{name}>");
    }

    /// `<name>text</name>`, the text escaped.
    fn leaf(&mut self, name: &str, text: &str) {
        self.indent();
        let _ = writeln!(self.out, "<{name}>{}</{name}>", escape_text(text));
    }

    /// `<name><valueName>…</valueName><value>…</value></name>`.
    fn pair(&mut self, name: &str, value_name: &str, value: &str) {
        self.open(name);
        self.leaf("valueName", value_name);
        self.leaf("value", value);
        self.close(name);
    }
}

/// `text` as XML character data: `&`, `<`, `>`, `'` and `"` escaped, carriage returns as
/// character references (so that a parser keeps them), characters XML 1.0 forbids left out.
pub(crate) fn escape_text(text: &str) -> String {
    let allowed: String = text.chars().filter(|&c| xml_char(c)).collect();
    escape(allowed.as_str()).replace('\r', "&#13;")
}

/// Whether XML 1.0 allows `c` in a document (surrogates are no `char`).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// An identifier, sender or reference part as CAP allows it: white space, `,`, `<` and `&` become
/// `_`.
pub(crate) fn token(text: &str) -> String {
    text.chars().map(|c| if forbidden_in_token(c) { '_' } else { c }).collect()
}

pub(crate) fn forbidden_in_token(c: char) -> bool {
    c.is_whitespace() || matches!(c, ',' | '<' | '&')
}

fn reference(reference: &Reference) -> String {
    format!("{},{},{}", token(&reference.sender), token(&reference.identifier), format_time(&reference.sent))
}

/// An incident name for the space-separated list: quoted when it has white space in it.
fn incident(name: &str) -> Option<String> {
    let name: String = name.trim().chars().filter(|&c| c != '"').collect();
    if name.is_empty() {
        None
    } else if name.contains(char::is_whitespace) {
        Some(format!("\"{name}\""))
    } else {
        Some(name)
    }
}

/// Whether `tag` is an `xs:language`: `[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*`.
pub(crate) fn is_language(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let first_ok =
        parts.next().is_some_and(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    first_ok && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Whether `uri` looks like an absolute URI: a scheme, `:`, and no white space or control
/// characters.
pub(crate) fn is_absolute_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else { return false };
    let mut scheme_chars = scheme.chars();
    scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !rest.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'))
}

pub(crate) fn valid_circle(lat: f64, lon: f64, radius_km: f64) -> bool {
    valid_point(lat, lon) && radius_km.is_finite() && radius_km >= 0.0
}

/// A number with at most 6 decimals, trailing zeros dropped (`30.5`, `120`), never `-0`.
fn number(x: f64) -> String {
    let mut text = format!("{x:.6}");
    if text.contains('.') {
        let trimmed = text.trim_end_matches('0').trim_end_matches('.').len();
        text.truncate(trimmed);
    }
    if text == "-0" { "0".to_owned() } else { text }
}
