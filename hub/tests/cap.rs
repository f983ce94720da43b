//! CAP 1.2: documents checked against the OASIS XML Schema with xmllint (libxml2-utils), parsed
//! back with quick-xml, and the identifier, area and mapping rules.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;

use chrono::{DateTime, Duration, FixedOffset, TimeZone, Utc};
use geo::{Area as _, Coord, LineString, MultiPolygon, Polygon};
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use yingji_hub::cap::{
    Alert, AlertSummary, Area, CAP_NAMESPACE, CapError, Category, Certainty, GEOCODE_GB2260, Info, MsgType, Reference,
    ResponseType, Scope, Severity, Status, Urgency, area_from_geometry, category_of_hazard, format_time, identifier,
    severity_of_colour, severity_of_response_level, to_xml, validate,
};

// ---------------------------------------------------------------------------------------------
// Helpers: times, fixtures, the validator and the parser.

fn offset(hours: i32, minutes: i32) -> FixedOffset {
    FixedOffset::east_opt(hours * 3600 + hours.signum() * minutes * 60).unwrap()
}

fn beijing(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<FixedOffset> {
    offset(8, 0).with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// A division outline from a GeoJSON fixture, as the hub would load it.
fn division(name: &str) -> MultiPolygon<f64> {
    let text = std::fs::read_to_string(data(name)).unwrap();
    let geojson: geojson::GeoJson = text.parse().unwrap();
    match geo::Geometry::<f64>::try_from(geojson).unwrap() {
        geo::Geometry::Polygon(polygon) => MultiPolygon::new(vec![polygon]),
        geo::Geometry::MultiPolygon(multi) => multi,
        other => panic!("{name}: not a polygon: {other:?}"),
    }
}

/// A county-sized outline (永嘉县-like, 120.7°E 28.3°N) with `n` points: a wobbly shore at three
/// scales, as a surveyed boundary has.
fn detailed_outline(n: usize) -> MultiPolygon<f64> {
    let coords: Vec<Coord<f64>> = (0..=n)
        .map(|i| {
            let a = std::f64::consts::TAU * (i % n) as f64 / n as f64;
            let r = 0.25 * (1.0 + 0.08 * (7.0 * a).sin() + 0.03 * (53.0 * a).sin() + 0.01 * (397.0 * a).sin());
            Coord { x: 120.69 + 1.1 * r * a.cos(), y: 28.35 + 0.9 * r * a.sin() }
        })
        .collect();
    MultiPolygon::new(vec![Polygon::new(LineString::new(coords), vec![])])
}

enum Lint {
    Valid,
    Invalid(String),
    Missing,
}

/// `xmllint --noout --nonet --schema CAP-v1.2.xsd` on `xml`.
fn xmllint(xml: &str) -> Lint {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alert.xml");
    std::fs::write(&file, xml).unwrap();
    let output = Command::new("xmllint")
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(data("CAP-v1.2.xsd"))
        .arg(&file)
        .output();
    match output {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Lint::Missing,
        Err(e) => panic!("xmllint could not run: {e}"),
        Ok(out) if out.status.success() => Lint::Valid,
        Ok(out) => Lint::Invalid(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// Without xmllint: fails when YINGJI_REQUIRE_XMLLINT is set, otherwise says so and goes on.
fn xmllint_missing(what: &str) {
    if std::env::var_os("YINGJI_REQUIRE_XMLLINT").is_some() {
        panic!(
            "xmllint not found but YINGJI_REQUIRE_XMLLINT is set: install libxml2-utils (apt-get install -y libxml2-utils)"
        );
    }
    // Straight to the process's stderr: the test harness captures eprintln! of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: xmllint not found, {what} not checked against the CAP 1.2 schema (install libxml2-utils)"
    );
}

fn assert_schema_valid(name: &str, xml: &str) {
    match xmllint(xml) {
        Lint::Valid => {}
        Lint::Invalid(errors) => panic!("{name}: not valid CAP 1.2:\n{errors}\n{xml}"),
        Lint::Missing => xmllint_missing(name),
    }
}

/// The leaves of a parsed document: (path like `alert/info/area/polygon`, text).
struct Doc(Vec<(String, String)>);

impl Doc {
    fn all(&self, path: &str) -> Vec<&str> {
        self.0.iter().filter(|(p, _)| p == path).map(|(_, t)| t.as_str()).collect()
    }

    fn one(&self, path: &str) -> &str {
        let all = self.all(path);
        assert_eq!(all.len(), 1, "{path}: {all:?}");
        all[0]
    }

    fn paths(&self) -> Vec<&str> {
        self.0.iter().map(|(p, _)| p.as_str()).collect()
    }
}

/// Parses `xml` with quick-xml (well-formed, end names checked, references resolved).
fn parse(xml: &str) -> Doc {
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<(String, String, bool)> = Vec::new();
    let mut leaves = Vec::new();
    let mut saw_root = false;
    loop {
        match reader.read_event().unwrap_or_else(|e| panic!("not well-formed: {e}\n{xml}")) {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_owned();
                if stack.is_empty() {
                    assert!(!saw_root, "two root elements");
                    saw_root = true;
                    assert_eq!(name, "alert");
                    let xmlns = e.try_get_attribute("xmlns").unwrap().unwrap();
                    assert_eq!(&*xmlns.value, CAP_NAMESPACE);
                }
                if let Some(parent) = stack.last_mut() {
                    parent.2 = true;
                }
                stack.push((name, String::new(), false));
            }
            Event::End(_) => {
                let path: Vec<&str> = stack.iter().map(|(n, _, _)| n.as_str()).collect();
                let path = path.join("/");
                let (_, text, has_children) = stack.pop().unwrap();
                if !has_children {
                    leaves.push((path, text));
                }
            }
            Event::Text(e) => {
                let text = e.xml10_content();
                match stack.last_mut() {
                    Some(top) => top.1.push_str(&text),
                    None => assert!(text.trim().is_empty(), "text outside the root: {text:?}"),
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().unwrap() {
                    Some(c) => c.to_string(),
                    None => resolve_predefined_entity(&r).unwrap_or_else(|| panic!("unknown entity &{};", &*r)).into(),
                };
                stack.last_mut().unwrap().1.push_str(&resolved);
            }
            Event::Decl(d) => {
                assert_eq!(d.version().unwrap().as_ref(), "1.0");
                assert_eq!(d.encoding().unwrap().unwrap().as_ref(), "UTF-8");
            }
            Event::Eof => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(saw_root && stack.is_empty());
    Doc(leaves)
}

/// Whether `time` is written as CAP wants: `YYYY-MM-DDThh:mm:ss±hh:mm`.
fn is_cap_time(time: &str) -> bool {
    let b = time.as_bytes();
    b.len() == 25
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 | 22 => c == b':',
            19 => c == b'+' || c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// Rules every generated document keeps, whatever the case.
fn check_common(name: &str, xml: &str, doc: &Doc) {
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"), "{name}");
    for path in ["alert/sent", "alert/info/effective", "alert/info/onset", "alert/info/expires"] {
        for time in doc.all(path) {
            assert!(is_cap_time(time), "{name}: {path} {time:?}");
        }
    }
    for refs in doc.all("alert/references") {
        for reference in refs.split(' ') {
            let parts: Vec<&str> = reference.split(',').collect();
            assert_eq!(parts.len(), 3, "{name}: reference {reference:?}");
            assert!(is_cap_time(parts[2]), "{name}: reference time {reference:?}");
        }
    }
    for polygon in doc.all("alert/info/area/polygon") {
        let points: Vec<&str> = polygon.split(' ').collect();
        assert!(points.len() >= 4, "{name}: polygon with {} points", points.len());
        assert_eq!(points.first(), points.last(), "{name}: polygon not closed");
        for point in points {
            let (lat, lon) = point.split_once(',').unwrap();
            for number in [lat, lon] {
                let value: f64 = number.parse().unwrap();
                assert!(value.is_finite());
                let decimals = number.split_once('.').map_or(0, |(_, d)| d.len());
                assert!(decimals <= 6, "{name}: {number} has {decimals} decimals");
            }
            assert!((-90.0..=90.0).contains(&lat.parse::<f64>().unwrap()), "{name}: latitude {lat}");
            assert!((-180.0..=180.0).contains(&lon.parse::<f64>().unwrap()), "{name}: longitude {lon}");
        }
    }
    let identifier = doc.one("alert/identifier");
    assert!(!identifier.contains([' ', ',', '<', '&']), "{name}: identifier {identifier:?}");
}

// ---------------------------------------------------------------------------------------------
// The alerts of the table.

const SENDER: &str = "yingji-hub@330302.example.cn";

fn t0() -> DateTime<FixedOffset> {
    beijing(2024, 6, 15, 14, 30, 0)
}

fn rainstorm_info(colour: &str, areas: Vec<Area>) -> Info {
    Info {
        categories: category_of_hazard("rainstorm"),
        event: "暴雨预警".into(),
        response_types: vec![ResponseType::Prepare, ResponseType::Monitor],
        urgency: Urgency::Expected,
        severity: severity_of_colour(colour),
        certainty: Certainty::Likely,
        sender_name: Some("温州市鹿城区应急管理局".into()),
        headline: format!("鹿城区暴雨{}预警", if colour == "red" { "红色" } else { "橙色" }),
        description: "过去3小时鹿城区已出现50毫米以上降雨，且降雨将持续。".into(),
        instruction: Some("停止户外作业，远离河道、低洼地带，注意防范山洪和地质灾害。".into()),
        web: Some("https://yingji.example.cn/cap/33030200100000_20240615143000_0".into()),
        effective: Some(t0()),
        onset: Some(t0()),
        expires: Some(t0() + Duration::hours(6)),
        parameters: vec![("warning_colour".into(), colour.into()), ("rain_3h_mm".into(), "62.5".into())],
        areas,
        ..Info::default()
    }
}

fn lucheng_area() -> Area {
    let mut area = area_from_geometry(
        "浙江省温州市鹿城区",
        &division("lucheng-330302.geojson"),
        64,
        Some((GEOCODE_GB2260, "330302")),
    );
    // A rain gauge's neighbourhood as well.
    area.circles.push((28.0215, 120.6558, 5.0));
    area
}

fn warning() -> Alert {
    let id = identifier("330302", "001", "", "", t0(), 0).unwrap();
    let mut alert = Alert::new(id, SENDER, t0(), Status::Actual, MsgType::Alert);
    alert.source = Some("node 330302-n1, gauge 鹿城-02".into());
    alert.infos = vec![rainstorm_info("orange", vec![lucheng_area()])];
    alert
}

fn drill() -> Alert {
    let mut alert = warning();
    alert.identifier = identifier("330302", "001", "", "", t0(), 1).unwrap();
    alert.status = Status::Exercise;
    alert.note = Some("演练：2024年汛期防汛应急演练，非真实预警".into());
    alert
}

fn update() -> Alert {
    let sent = t0() + Duration::hours(2);
    let mut alert = Alert::new(
        identifier("330302", "001", "", "", sent, 0).unwrap(),
        SENDER,
        sent,
        Status::Actual,
        MsgType::Update,
    );
    alert.references = vec![Reference::to(&warning())];
    alert.infos = vec![rainstorm_info("red", vec![lucheng_area()])];
    alert.infos[0].urgency = Urgency::Immediate;
    alert.infos[0].certainty = Certainty::Observed;
    alert
}

fn cancel() -> Alert {
    let sent = t0() + Duration::hours(9);
    let mut alert = Alert::new(
        identifier("330302", "001", "", "", sent, 0).unwrap(),
        SENDER,
        sent,
        Status::Actual,
        MsgType::Cancel,
    );
    alert.references = vec![Reference::to(&warning()), Reference::to(&update())];
    alert.infos = vec![Info {
        categories: category_of_hazard("rainstorm"),
        event: "暴雨预警".into(),
        response_types: vec![ResponseType::AllClear],
        urgency: Urgency::Past,
        severity: Severity::Minor,
        certainty: Certainty::Observed,
        headline: "鹿城区暴雨预警解除".into(),
        description: "降雨已减弱，暴雨预警解除。".into(),
        areas: vec![lucheng_area()],
        ..Info::default()
    }];
    alert
}

const MAX_POINTS: usize = 100;

fn assessment() -> Alert {
    let sent = beijing(2024, 7, 26, 9, 0, 0);
    let mut alert = Alert::new(
        identifier("330300", "002", "001", "00", sent, 0).unwrap(),
        SENDER,
        sent,
        Status::Actual,
        MsgType::Alert,
    );
    alert.incidents = vec!["2024-浙-洪涝-001".into(), "Typhoon Gaemi".into()];
    alert.infos = vec![Info {
        categories: category_of_hazard("flood"),
        event: "响应等级 Ⅱ".into(),
        response_types: vec![ResponseType::Evacuate, ResponseType::Execute],
        urgency: Urgency::Immediate,
        severity: severity_of_response_level(2),
        certainty: Certainty::Observed,
        sender_name: Some("温州市应急管理局".into()),
        headline: "温州市启动防汛Ⅱ级应急响应".into(),
        description: "鹿城区、洞头区、永嘉县洪涝灾害：因灾死亡（含失踪）6人，紧急转移安置12,400人。".into(),
        parameters: vec![("response_level".into(), "2".into()), ("relocated".into(), "12400".into())],
        areas: vec![
            lucheng_area(),
            area_from_geometry(
                "浙江省温州市洞头区",
                &division("dongtou-330305.geojson"),
                MAX_POINTS,
                Some((GEOCODE_GB2260, "330305")),
            ),
            area_from_geometry(
                "浙江省温州市永嘉县",
                &detailed_outline(6000),
                MAX_POINTS,
                Some((GEOCODE_GB2260, "330324")),
            ),
        ],
        ..Info::default()
    }];
    alert
}

const HOSTILE: &str = "<script>alert(1)</script> & \"quotes\" 'apostrophes' ]]> &amp; \u{7}bell\r\nnext line";

fn hostile() -> Alert {
    let mut alert = warning();
    alert.note = Some(format!("NUL\u{0} and {HOSTILE}"));
    alert.source = Some("<b>node</b> \u{1b}[31m".into());
    let info = &mut alert.infos[0];
    info.headline = HOSTILE.into();
    info.description = format!("{HOSTILE}\u{FFFE}\u{FFFF}\u{8}end");
    info.instruction = Some("</instruction><instruction>injected".into());
    info.sender_name = Some("A & B \"Co\"".into());
    info.parameters.push(("a<b".into(), "x>y & z".into()));
    info.areas[0].area_desc = "<area>&lt;鹿城&gt;</area>".into();
    info.areas[0].geocodes.push(("name\"with\"quotes".into(), "<&>".into()));
    alert
}

fn chinese() -> Alert {
    let mut alert = warning();
    let info = &mut alert.infos[0];
    info.event = "台风预警".into();
    info.categories = category_of_hazard("typhoon");
    info.severity = severity_of_colour("红色");
    info.headline = "台风“格美”红色预警：鹿城区沿海风力达１２级".into();
    info.description = "受第3号台风“格美”影响，预计今天夜里到明天，鹿城区将出现１０～１２级大风，\
                        局部阵风１４级；请做好防御。生僻字：𠀀𪚥，表情：🌀⚠️。"
        .into();
    info.areas[0].area_desc = "浙江省·温州市·鹿城区（含七都街道、双屿街道）".into();
    alert
}

/// Input that breaks the specification's rules: the document must still be schema-valid.
fn repaired() -> Alert {
    let mut alert = Alert::new("id with spaces,commas<&", "send er", t0(), Status::Test, MsgType::Alert);
    alert.incidents = vec![String::new(), "  ".into(), "\"quoted\" name".into()];
    alert.infos = vec![Info {
        language: "中文".into(),
        event: String::new(),
        web: Some("not a uri at all".into()),
        areas: vec![Area {
            area_desc: String::new(),
            polygons: vec![
                vec![(f64::NAN, 120.0), (28.0, 120.1), (28.1, 120.1)],
                vec![(28.0, 120.0), (28.1, 120.1)],
                vec![(28.0, 120.0), (28.1, 120.1), (28.2, 120.2), (28.0, 120.0)],
                vec![(91.0, 120.0), (28.1, 120.1), (28.1, 120.2)],
                // The only ring to keep: open, with too many decimals.
                vec![(28.123_456_789, 120.0), (28.2, 120.000_000_4), (28.2, 120.3)],
            ],
            circles: vec![(28.0, 120.0, -1.0), (28.0, f64::INFINITY, 1.0), (28.0, 120.0, 0.5)],
            geocodes: vec![],
        }],
        ..Info::default()
    }];
    alert
}

type Check = fn(&Alert, &str, &Doc);

fn cases() -> Vec<(&'static str, Alert, Check)> {
    vec![
        ("new warning", warning(), |alert, xml, doc| {
            assert_eq!(doc.one("alert/status"), "Actual");
            assert_eq!(doc.one("alert/msgType"), "Alert");
            assert_eq!(doc.one("alert/scope"), "Public");
            assert_eq!(doc.one("alert/identifier"), "33030200100000_20240615143000_0");
            assert_eq!(doc.one("alert/sent"), "2024-06-15T14:30:00+08:00");
            assert_eq!(doc.one("alert/info/language"), "zh-CN");
            assert_eq!(doc.one("alert/info/category"), "Met");
            assert_eq!(doc.one("alert/info/event"), "暴雨预警");
            assert_eq!(doc.all("alert/info/responseType"), ["Prepare", "Monitor"]);
            assert_eq!(doc.one("alert/info/severity"), "Severe");
            assert_eq!(doc.one("alert/info/expires"), "2024-06-15T20:30:00+08:00");
            assert_eq!(doc.all("alert/info/parameter/valueName"), ["warning_colour", "rain_3h_mm"]);
            assert_eq!(doc.all("alert/info/parameter/value"), ["orange", "62.5"]);
            assert_eq!(doc.one("alert/info/area/areaDesc"), "浙江省温州市鹿城区");
            assert_eq!(doc.one("alert/info/area/circle"), "28.0215,120.6558 5");
            assert_eq!(doc.one("alert/info/area/geocode/valueName"), "GB/T 2260");
            assert_eq!(doc.one("alert/info/area/geocode/value"), "330302");
            assert_eq!(doc.all("alert/info/area/polygon").len(), 1);
            assert!(doc.all("alert/references").is_empty());
            assert_eq!(validate(alert), Ok(()));
            // The sample of docs/cap.md, kept in tests/data.
            if std::env::var_os("YINGJI_BLESS_CAP").is_some() {
                std::fs::write(data("warning.xml"), xml).unwrap();
            }
            let expected = std::fs::read_to_string(data("warning.xml")).unwrap();
            assert_eq!(xml, expected, "tests/data/warning.xml differs from the document");
        }),
        ("drill", drill(), |alert, _, doc| {
            assert_eq!(doc.one("alert/status"), "Exercise");
            assert_eq!(doc.one("alert/msgType"), "Alert");
            assert_eq!(doc.one("alert/note"), "演练：2024年汛期防汛应急演练，非真实预警");
            assert!(doc.one("alert/identifier").ends_with("_1"));
            assert_eq!(validate(alert), Ok(()));
        }),
        ("update", update(), |alert, _, doc| {
            assert_eq!(doc.one("alert/msgType"), "Update");
            assert_eq!(
                doc.one("alert/references"),
                format!("{SENDER},33030200100000_20240615143000_0,2024-06-15T14:30:00+08:00")
            );
            assert_eq!(doc.one("alert/info/severity"), "Extreme");
            assert_eq!(validate(alert), Ok(()));
        }),
        ("cancel", cancel(), |alert, _, doc| {
            assert_eq!(doc.one("alert/msgType"), "Cancel");
            let references: Vec<&str> = doc.one("alert/references").split(' ').collect();
            assert_eq!(
                references,
                [
                    format!("{SENDER},33030200100000_20240615143000_0,2024-06-15T14:30:00+08:00"),
                    format!("{SENDER},33030200100000_20240615163000_0,2024-06-15T16:30:00+08:00"),
                ]
            );
            assert_eq!(doc.one("alert/info/responseType"), "AllClear");
            assert_eq!(validate(alert), Ok(()));
        }),
        ("assessment over several divisions", assessment(), |alert, _, doc| {
            assert_eq!(doc.one("alert/info/event"), "响应等级 Ⅱ");
            assert_eq!(doc.one("alert/info/severity"), "Severe");
            assert_eq!(doc.one("alert/incidents"), "2024-浙-洪涝-001 \"Typhoon Gaemi\"");
            assert_eq!(
                doc.all("alert/info/area/areaDesc"),
                ["浙江省温州市鹿城区", "浙江省温州市洞头区", "浙江省温州市永嘉县"]
            );
            assert_eq!(doc.all("alert/info/area/geocode/value"), ["330302", "330305", "330324"]);
            // 鹿城 one ring, 洞头 three islands (the sliver dropped), 永嘉 one simplified ring.
            let polygons = doc.all("alert/info/area/polygon");
            assert_eq!(polygons.len(), 5);
            let yongjia = polygons[4].split(' ').count();
            assert!((4..=MAX_POINTS).contains(&yongjia), "永嘉县: {yongjia} points");
            assert_eq!(validate(alert), Ok(()));
        }),
        ("hostile text", hostile(), |alert, xml, doc| {
            assert!(!xml.contains("<script>"), "unescaped script");
            assert!(xml.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;"));
            assert!(!xml.contains("</instruction><instruction>"));
            for forbidden in ['\u{0}', '\u{7}', '\u{8}', '\u{1b}', '\u{FFFE}', '\u{FFFF}'] {
                assert!(!xml.contains(forbidden), "{forbidden:?} written");
            }
            let clean = "<script>alert(1)</script> & \"quotes\" 'apostrophes' ]]> &amp; bell\r\nnext line";
            assert_eq!(doc.one("alert/info/headline"), clean);
            assert_eq!(doc.one("alert/info/description"), format!("{clean}end"));
            assert_eq!(doc.one("alert/note"), format!("NUL and {clean}"));
            assert_eq!(doc.one("alert/source"), "<b>node</b> [31m");
            assert_eq!(doc.one("alert/info/instruction"), "</instruction><instruction>injected");
            assert_eq!(doc.one("alert/info/senderName"), "A & B \"Co\"");
            assert_eq!(doc.one("alert/info/area/areaDesc"), "<area>&lt;鹿城&gt;</area>");
            assert_eq!(doc.all("alert/info/parameter/valueName")[2], "a<b");
            assert_eq!(doc.all("alert/info/parameter/value")[2], "x>y & z");
            assert_eq!(doc.all("alert/info/area/geocode/value")[1], "<&>");
            assert_eq!(validate(alert), Ok(()));
        }),
        ("Chinese text", chinese(), |alert, xml, doc| {
            let info = &alert.infos[0];
            assert_eq!(doc.one("alert/info/headline"), info.headline);
            assert_eq!(doc.one("alert/info/description"), info.description);
            assert_eq!(doc.one("alert/info/area/areaDesc"), info.areas[0].area_desc);
            assert_eq!(doc.one("alert/info/severity"), "Extreme");
            // Written as UTF-8, not as character references.
            assert!(xml.contains("生僻字：𠀀𪚥"));
        }),
        ("rules broken, document repaired", repaired(), |alert, _, doc| {
            assert_eq!(doc.one("alert/identifier"), "id_with_spaces_commas__");
            assert_eq!(doc.one("alert/sender"), "send_er");
            assert_eq!(doc.one("alert/incidents"), "\"quoted name\"");
            assert_eq!(doc.one("alert/info/language"), "zh-CN");
            assert_eq!(doc.one("alert/info/category"), "Other");
            assert!(doc.all("alert/info/web").is_empty());
            assert_eq!(doc.one("alert/info/area/polygon"), "28.123457,120 28.2,120 28.2,120.3 28.123457,120");
            assert_eq!(doc.one("alert/info/area/circle"), "28,120 0.5");
            let problems = validate(alert).unwrap_err();
            let fields: Vec<String> = problems
                .iter()
                .map(|p| match p {
                    CapError::Invalid { field, .. } => field.clone(),
                    other => panic!("{other}"),
                })
                .collect();
            for field in [
                "identifier",
                "sender",
                "incidents[0]",
                "incidents[1]",
                "incidents[2]",
                "infos[0].language",
                "infos[0].categories",
                "infos[0].event",
                "infos[0].web",
                "infos[0].areas[0].area_desc",
                "infos[0].areas[0].polygons[0]",
                "infos[0].areas[0].polygons[1]",
                "infos[0].areas[0].polygons[2]",
                "infos[0].areas[0].polygons[3]",
                "infos[0].areas[0].circles[0]",
                "infos[0].areas[0].circles[1]",
            ] {
                assert!(fields.iter().any(|f| f == field), "{field} not reported: {fields:?}");
            }
            assert!(
                !fields.iter().any(|f| f == "infos[0].areas[0].polygons[4]" || f == "infos[0].areas[0].circles[2]")
            );
        }),
    ]
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn the_schema_is_the_oasis_cap_1_2_one() {
    let xsd = std::fs::read_to_string(data("CAP-v1.2.xsd")).unwrap();
    assert!(xsd.contains("Copyright OASIS Open 2010"));
    assert!(xsd.contains("targetNamespace=\"urn:oasis:names:tc:emergency:cap:1.2\""));
    assert!(xsd.contains("version=\"1.2\""));
    assert_eq!(CAP_NAMESPACE, "urn:oasis:names:tc:emergency:cap:1.2");
}

#[test]
fn every_case_is_well_formed_and_valid_cap_1_2() {
    for (name, alert, check) in cases() {
        let xml = to_xml(&alert);
        let doc = parse(&xml);
        check_common(name, &xml, &doc);
        check(&alert, &xml, &doc);
        assert_schema_valid(name, &xml);
    }
}

#[test]
fn elements_come_in_the_schema_order() {
    let doc = parse(&to_xml(&assessment()));
    let order = [
        "alert/identifier",
        "alert/sender",
        "alert/sent",
        "alert/status",
        "alert/msgType",
        "alert/scope",
        "alert/incidents",
        "alert/info/language",
        "alert/info/category",
        "alert/info/event",
        "alert/info/responseType",
        "alert/info/urgency",
        "alert/info/severity",
        "alert/info/certainty",
        "alert/info/senderName",
        "alert/info/headline",
        "alert/info/description",
        "alert/info/parameter/valueName",
        "alert/info/area/areaDesc",
        "alert/info/area/polygon",
        "alert/info/area/circle",
        "alert/info/area/geocode/valueName",
    ];
    let paths = doc.paths();
    let firsts: Vec<usize> = order.iter().map(|p| paths.iter().position(|q| q == p).unwrap()).collect();
    assert!(firsts.windows(2).all(|w| w[0] < w[1]), "{paths:?}");
}

#[test]
fn the_validator_rejects_a_broken_document() {
    let good = to_xml(&warning());
    let broken = [
        ("a wrong status", good.replace("<status>Actual</status>", "<status>Real</status>")),
        ("a time in Z", good.replace("<sent>2024-06-15T14:30:00+08:00</sent>", "<sent>2024-06-15T06:30:00Z</sent>")),
        ("a missing event", good.replace("<event>暴雨预警</event>", "")),
        (
            "elements out of order",
            good.replace("<scope>Public</scope>", "")
                .replace("</msgType>", "</msgType><scope>Public</scope><source>x</source>")
                .replace("<source>node 330302-n1, gauge 鹿城-02</source>", ""),
        ),
        ("another namespace", good.replace(CAP_NAMESPACE, "urn:oasis:names:tc:emergency:cap:1.1")),
    ];
    assert_schema_valid("the unbroken document", &good);
    for (what, xml) in broken {
        assert_ne!(xml, good, "{what}: nothing was broken");
        match xmllint(&xml) {
            Lint::Invalid(_) => {}
            Lint::Valid => panic!("{what}: xmllint accepted a broken document"),
            Lint::Missing => xmllint_missing(what),
        }
    }
}

#[test]
fn identifiers_follow_gb_t_35965_1() {
    let id = identifier("330302", "001", "", "", t0(), 0).unwrap();
    assert_eq!(id, "33030200100000_20240615143000_0");
    assert_eq!(identifier("330302", "001", "000", "00", t0(), 0).unwrap(), id);
    assert_eq!(identifier("110105", "123", "045", "07", t0(), 9).unwrap(), "11010512304507_20240615143000_9");
    // Any offset comes in; Beijing time goes out, across midnight too.
    let utc = Utc.with_ymd_and_hms(2024, 6, 30, 20, 0, 5).unwrap().fixed_offset();
    assert_eq!(identifier("330302", "001", "", "", utc, 3).unwrap(), "33030200100000_20240701040005_3");
    let new_york = offset(-5, 0).with_ymd_and_hms(2024, 12, 31, 11, 0, 0).unwrap();
    assert_eq!(identifier("330302", "001", "", "", new_york, 0).unwrap(), "33030200100000_20250101000000_0");

    let bad = |division: &str, sector: &str, unit: &str, ext: &str| {
        identifier(division, sector, unit, ext, t0(), 0).map_err(|e| match e {
            CapError::IdentifierPart { part, len, ref value } => {
                assert!(e.to_string().contains(value.as_str()));
                (part, len)
            }
            other => panic!("{other}"),
        })
    };
    for division in ["", "33030", "3303020", "33O302", "33 302", "３３０３０２", "-33030"] {
        assert_eq!(bad(division, "001", "", ""), Err(("division code (GB/T 2260)", 6)), "{division:?}");
    }
    for sector in ["", "01", "0001", "0a1", "1,2"] {
        assert_eq!(bad("330302", sector, "", ""), Err(("sector code", 3)), "{sector:?}");
    }
    for unit in ["1", "12", "1234", "1 2", "x00"] {
        assert_eq!(bad("330302", "001", unit, ""), Err(("unit code", 3)), "{unit:?}");
    }
    for ext in ["7", "007", "x7", "<&"] {
        assert_eq!(bad("330302", "001", "", ext), Err(("extension code", 2)), "{ext:?}");
    }
    assert_eq!(identifier("330302", "001", "", "", t0(), 10), Err(CapError::Sequence(10)));
    assert_eq!(identifier("330302", "001", "", "", t0(), 255), Err(CapError::Sequence(255)));
    let far = beijing(10000, 1, 1, 0, 0, 0);
    assert!(matches!(identifier("330302", "001", "", "", far, 0), Err(CapError::Year { year: 10000, .. })));
    let message = identifier("33030", "001", "", "", t0(), 0).unwrap_err().to_string();
    assert!(message.contains("division code") && message.contains("6 ASCII digits"), "{message}");
}

#[test]
fn times_keep_their_offset_and_never_say_z() {
    assert_eq!(format_time(&t0()), "2024-06-15T14:30:00+08:00");
    let utc = Utc.with_ymd_and_hms(2024, 6, 15, 6, 30, 0).unwrap().fixed_offset();
    assert_eq!(format_time(&utc), "2024-06-15T06:30:00+00:00");
    let new_york = offset(-5, 0).with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
    assert_eq!(format_time(&new_york), "2024-01-02T03:04:05-05:00");
    let kathmandu = offset(5, 45).with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
    assert_eq!(format_time(&kathmandu), "2024-01-02T03:04:05+05:45");
    let st_johns = offset(-3, 30).with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
    assert_eq!(format_time(&st_johns), "2024-01-02T03:04:05-03:30");
    // Fractions of a second are dropped.
    assert_eq!(format_time(&(t0() + Duration::milliseconds(987))), "2024-06-15T14:30:00+08:00");
    // An offset with seconds (Shanghai's local mean time) is written to the minute, same instant.
    let lmt = FixedOffset::east_opt(8 * 3600 + 5 * 60 + 43).unwrap().with_ymd_and_hms(1900, 1, 1, 12, 0, 0).unwrap();
    let written = format_time(&lmt);
    assert_eq!(written, "1900-01-01T11:59:17+08:05");
    assert_eq!(DateTime::parse_from_rfc3339(&written).unwrap(), lmt);

    let mut alert = warning();
    alert.sent = utc;
    alert.infos[0].expires = Some(new_york);
    let xml = to_xml(&alert);
    let doc = parse(&xml);
    assert_eq!(doc.one("alert/sent"), "2024-06-15T06:30:00+00:00");
    assert_eq!(doc.one("alert/info/expires"), "2024-01-02T03:04:05-05:00");
    assert!(!xml.contains(":00Z<"));
    assert_schema_valid("UTC and -05:00 times", &xml);
}

#[test]
fn polygon_rings_are_closed_with_at_least_four_points() {
    let area = |rings: Vec<Vec<(f64, f64)>>| {
        let mut alert = warning();
        alert.infos[0].areas = vec![Area { area_desc: "测试".into(), polygons: rings, ..Area::default() }];
        let xml = to_xml(&alert);
        assert_schema_valid("rings", &xml);
        parse(&xml).all("alert/info/area/polygon").iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    // Open ring: closed. Already closed: left alone. Repeated points: dropped.
    assert_eq!(area(vec![vec![(28.0, 120.0), (28.0, 120.1), (28.1, 120.1)]]), ["28,120 28,120.1 28.1,120.1 28,120"]);
    assert_eq!(
        area(vec![vec![(28.0, 120.0), (28.0, 120.1), (28.1, 120.1), (28.1, 120.0), (28.0, 120.0)]]),
        ["28,120 28,120.1 28.1,120.1 28.1,120 28,120"]
    );
    assert_eq!(
        area(vec![vec![(28.0, 120.0), (28.0, 120.0), (28.0, 120.1), (28.1, 120.1), (28.1, 120.1), (28.0, 120.0)]]),
        ["28,120 28,120.1 28.1,120.1 28,120"]
    );
    // Negative coordinates, and no "-0".
    assert_eq!(
        area(vec![vec![(-0.000_000_1, -0.5), (-33.9, 18.4), (-33.9, -0.5)]]),
        ["0,-0.5 -33.9,18.4 -33.9,-0.5 0,-0.5"]
    );
    // Degenerate rings are left out: empty, one point, two points, a line, points rounding together.
    let degenerate = vec![
        vec![],
        vec![(28.0, 120.0)],
        vec![(28.0, 120.0), (28.1, 120.1), (28.0, 120.0)],
        vec![(28.0, 120.0), (28.1, 120.1), (28.2, 120.2)],
        vec![(28.0, 120.0), (28.000_000_1, 120.0), (28.0, 120.000_000_1)],
    ];
    assert!(area(degenerate).is_empty());
}

fn ring_area(ring: &[(f64, f64)]) -> f64 {
    let coords: Vec<Coord<f64>> = ring.iter().map(|&(lat, lon)| Coord { x: lon, y: lat }).collect();
    Polygon::new(LineString::new(coords), vec![]).unsigned_area()
}

#[test]
fn division_polygons_become_small_closed_rings() {
    // Small enough already: kept point for point.
    let lucheng = division("lucheng-330302.geojson");
    let area = area_from_geometry("鹿城区", &lucheng, 64, Some((GEOCODE_GB2260, "330302")));
    assert_eq!(area.area_desc, "鹿城区");
    assert_eq!(area.geocodes, [("GB/T 2260".to_string(), "330302".to_string())]);
    assert_eq!(area.polygons.len(), 1);
    assert_eq!(area.polygons[0].len(), lucheng.0[0].exterior().0.len());
    assert_eq!(area.polygons[0][0], (lucheng.0[0].exterior().0[0].y, lucheng.0[0].exterior().0[0].x));

    // A multipolygon: one ring per island, the hole not kept, the degenerate sliver dropped.
    let dongtou = division("dongtou-330305.geojson");
    assert_eq!(dongtou.0.len(), 4);
    assert_eq!(dongtou.0[0].interiors().len(), 1);
    let area = area_from_geometry("洞头区", &dongtou, 20, None);
    assert!(area.geocodes.is_empty());
    assert_eq!(area.polygons.len(), 3);
    for ring in &area.polygons {
        assert!((4..=20).contains(&ring.len()), "{} points", ring.len());
        assert_eq!(ring.first(), ring.last());
    }

    // Thousands of points: simplified to at most max_points, keeping the shape.
    let outline = detailed_outline(6000);
    let original = outline.unsigned_area();
    for max_points in [4, 5, 10, 50, 100, 500, 2000] {
        let area = area_from_geometry("永嘉县", &outline, max_points, Some((GEOCODE_GB2260, "330324")));
        assert_eq!(area.polygons.len(), 1);
        let ring = &area.polygons[0];
        assert!(ring.len() <= max_points && ring.len() >= 4, "max {max_points}: {} points", ring.len());
        assert!(ring.len() * 2 > max_points, "max {max_points}: only {} points kept", ring.len());
        assert_eq!(ring.first(), ring.last());
        if max_points >= 50 {
            let kept = ring_area(ring);
            assert!((kept - original).abs() / original < 0.03, "max {max_points}: area {kept} vs {original}");
        }
    }
    // Fewer than 4 points cannot make a ring: 4 it is.
    for max_points in [0, 1, 3] {
        let area = area_from_geometry("永嘉县", &outline, max_points, None);
        assert_eq!(area.polygons[0].len(), 4);
    }

    // Nothing usable: no rings, no panic.
    let nan = MultiPolygon::new(vec![Polygon::new(
        LineString::new(vec![
            Coord { x: f64::NAN, y: 28.0 },
            Coord { x: 120.0, y: 28.1 },
            Coord { x: 120.1, y: 28.1 },
            Coord { x: f64::NAN, y: 28.0 },
        ]),
        vec![],
    )]);
    assert!(area_from_geometry("x", &nan, 10, None).polygons.is_empty());
    assert!(area_from_geometry("x", &MultiPolygon::new(vec![]), 10, None).polygons.is_empty());
    let swapped = MultiPolygon::new(vec![Polygon::new(
        LineString::new(vec![
            Coord { x: 28.0, y: 120.0 },
            Coord { x: 28.1, y: 120.0 },
            Coord { x: 28.1, y: 120.1 },
            Coord { x: 28.0, y: 120.0 },
        ]),
        vec![],
    )]);
    assert!(area_from_geometry("lat/lon swapped", &swapped, 10, None).polygons.is_empty());
}

#[test]
fn grades_and_hazards_map_to_cap() {
    assert_eq!(
        (1..=6).map(severity_of_response_level).collect::<Vec<_>>(),
        [
            Severity::Extreme,
            Severity::Severe,
            Severity::Moderate,
            Severity::Minor,
            Severity::Unknown,
            Severity::Unknown
        ]
    );
    assert_eq!(severity_of_response_level(0), Severity::Unknown);
    for (colour, severity) in [
        ("red", Severity::Extreme),
        ("Orange", Severity::Severe),
        (" YELLOW ", Severity::Moderate),
        ("blue", Severity::Minor),
        ("红色", Severity::Extreme),
        ("橙", Severity::Severe),
        ("黄色", Severity::Moderate),
        ("蓝色", Severity::Minor),
        ("green", Severity::Unknown),
        ("", Severity::Unknown),
    ] {
        assert_eq!(severity_of_colour(colour), severity, "{colour:?}");
    }
    for (hazard, category) in [
        ("flood", Category::Met),
        ("rainstorm", Category::Met),
        ("typhoon", Category::Met),
        ("storm_surge", Category::Met),
        ("Storm-Surge", Category::Met),
        ("drought", Category::Met),
        ("snow", Category::Met),
        ("hail", Category::Met),
        ("earthquake", Category::Geo),
        ("landslide", Category::Geo),
        ("debris_flow", Category::Geo),
        ("debris flow", Category::Geo),
        ("wildfire", Category::Fire),
        ("hazmat", Category::Cbrne),
        ("biological", Category::Env),
        ("alien invasion", Category::Other),
        ("", Category::Other),
    ] {
        assert_eq!(category_of_hazard(hazard), [category], "{hazard:?}");
    }
}

#[test]
fn enumerations_use_their_cap_names() {
    fn round_trip<T>(all: &[T])
    where
        T: Copy + PartialEq + std::fmt::Debug + std::fmt::Display + serde::Serialize + std::str::FromStr,
    {
        for &value in all {
            let name = value.to_string();
            assert_eq!(serde_json::to_value(value).unwrap(), serde_json::Value::String(name.clone()));
            assert!(name.parse::<T>().ok() == Some(value), "{name}");
        }
    }
    round_trip(Status::ALL);
    round_trip(MsgType::ALL);
    round_trip(Scope::ALL);
    round_trip(Category::ALL);
    round_trip(Urgency::ALL);
    round_trip(Severity::ALL);
    round_trip(Certainty::ALL);
    round_trip(ResponseType::ALL);
    assert_eq!(Category::Cbrne.as_str(), "CBRNE");
    assert_eq!(ResponseType::AllClear.as_str(), "AllClear");
    assert_eq!(Status::ALL.len(), 5);
    assert_eq!(Category::ALL.len(), 12);
    assert_eq!(ResponseType::ALL.len(), 9);
    assert!(matches!("actual".parse::<Status>(), Err(CapError::UnknownValue { kind: "status", .. })));
}

#[test]
fn summaries_index_the_alerts() {
    let summary: AlertSummary = assessment().summary();
    assert_eq!(summary.identifier, "33030000200100_20240726090000_0");
    assert_eq!(summary.status, Status::Actual);
    assert_eq!(summary.msg_type, MsgType::Alert);
    assert_eq!(summary.event.as_deref(), Some("响应等级 Ⅱ"));
    assert_eq!(summary.severity, Some(Severity::Severe));
    assert_eq!(summary.area_descs, ["浙江省温州市鹿城区", "浙江省温州市洞头区", "浙江省温州市永嘉县"]);
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "identifier": "33030000200100_20240726090000_0",
            "sent": "2024-07-26T09:00:00+08:00",
            "status": "Actual",
            "msg_type": "Alert",
            "event": "响应等级 Ⅱ",
            "severity": "Severe",
            "area_descs": ["浙江省温州市鹿城区", "浙江省温州市洞头区", "浙江省温州市永嘉县"],
        })
    );

    // The gravest severity of several infos; areas once each.
    let mut alert = warning();
    let mut second = alert.infos[0].clone();
    second.severity = Severity::Extreme;
    second.language = "en-US".into();
    alert.infos.push(second);
    let summary = AlertSummary::from(&alert);
    assert_eq!(summary.severity, Some(Severity::Extreme));
    assert_eq!(summary.area_descs, ["浙江省温州市鹿城区"]);
    assert_schema_valid("two infos", &to_xml(&alert));

    let bare = Alert::new("x", "y", t0(), Status::System, MsgType::Ack);
    let summary = bare.summary();
    assert_eq!((summary.event, summary.severity, summary.area_descs.len()), (None, None, 0));
}

#[test]
fn the_specification_rules_are_checked() {
    assert_eq!(validate(&warning()), Ok(()));
    let mut no_reference = update();
    no_reference.references.clear();
    let problems = validate(&no_reference).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(
        problems[0].to_string(),
        "references: an Update, Cancel, Ack or Error must reference the earlier message"
    );

    let mut private = warning();
    private.scope = Scope::Private;
    private.infos[0].expires = Some(t0() - Duration::hours(1));
    private.references = vec![Reference { sender: "a b".into(), identifier: "x&y".into(), sent: t0() }];
    let fields: Vec<String> = validate(&private).unwrap_err().iter().map(ToString::to_string).collect();
    assert!(fields.iter().any(|f| f.starts_with("scope: Private")), "{fields:?}");
    assert!(fields.iter().any(|f| f.starts_with("infos[0].expires")), "{fields:?}");
    assert!(fields.iter().any(|f| f.starts_with("references[0].sender")), "{fields:?}");
    assert!(fields.iter().any(|f| f.starts_with("references[0].identifier")), "{fields:?}");
    let doc = parse(&to_xml(&private));
    assert!(doc.one("alert/references").starts_with("a_b,x_y,2024-06-15T14:30:00+08:00"));

    // A bare alert: valid without infos.
    let bare = Alert::new("x", "y", t0(), Status::Draft, MsgType::Alert);
    assert_eq!(validate(&bare), Ok(()));
    let xml = to_xml(&bare);
    parse(&xml);
    assert_schema_valid("bare alert", &xml);
}

#[test]
fn odd_inputs_do_not_panic() {
    let extremes = [
        DateTime::<Utc>::MAX_UTC.with_timezone(&offset(14, 0)),
        DateTime::<Utc>::MIN_UTC.with_timezone(&offset(-12, 0)),
        beijing(-1, 1, 1, 0, 0, 0),
    ];
    for time in extremes {
        let mut alert = warning();
        alert.sent = time;
        alert.references = vec![Reference { sender: String::new(), identifier: String::new(), sent: time }];
        alert.infos[0].expires = Some(time);
        parse(&to_xml(&alert));
        assert!(validate(&alert).is_err());
        assert!(identifier("330302", "001", "", "", time, 0).is_err());
        let _ = format_time(&time);
    }
    let wild = MultiPolygon::new(vec![Polygon::new(
        LineString::new(vec![
            Coord { x: f64::INFINITY, y: 0.0 },
            Coord { x: f64::MAX, y: f64::MIN },
            Coord { x: 1e-300, y: -1e-300 },
        ]),
        vec![],
    )]);
    for max_points in [0, 4, usize::MAX] {
        assert!(area_from_geometry("", &wild, max_points, Some(("", ""))).polygons.is_empty());
        let area = area_from_geometry("", &detailed_outline(50), max_points, None);
        assert_eq!(area.polygons.len(), 1);
    }
    let mut alert = warning();
    alert.infos[0].areas[0].circles = vec![(f64::NAN, f64::NAN, f64::NAN), (90.0, 180.0, f64::MAX)];
    alert.infos[0].areas[0].polygons =
        vec![vec![(f64::NEG_INFINITY, 0.0); 10], vec![(-90.0, -180.0), (90.0, 180.0), (90.0, -180.0)]];
    let xml = to_xml(&alert);
    parse(&xml);
    assert_schema_valid("odd numbers", &xml);
}
