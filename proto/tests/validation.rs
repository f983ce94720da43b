//! The validation table of wire contract v1: every case is a topic, the payload bytes that
//! arrived on it, and what validation must make of them. All cases go through one `check`
//! helper, which dispatches on the topic exactly as a node does: parse the topic with
//! `FieldTopic::parse`, then hand the payload to the parser of that topic.
//!
//! Time is fixed (`NOW_S`), limits are contract v1's defaults. A failing case is reported by
//! name, with what validation did instead; a panic in validation is a failure, never a crash
//! of the table.

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value as Json, json};
use yingji_proto::dispatch::{Ack, AckStatus};
use yingji_proto::media::{self, MediaType};
use yingji_proto::report::{FieldReport, Hazard, Stage};
use yingji_proto::senml::{self, Reading, Value};
use yingji_proto::status::DeviceStatus;
use yingji_proto::topic::FieldTopic;
use yingji_proto::{Code, Limits};

/// 2026-09-14T02:00:00Z: the node's clock in every case.
const NOW_S: i64 = 1_789_351_200;
/// Ten minutes before `NOW_S`, as a SenML time.
const T0: f64 = (NOW_S - 600) as f64;

const REPORT: &str = "yingji/v1/report/unit-7";
const SENML: &str = "yingji/v1/senml/gauge-7";
const STATUS: &str = "yingji/v1/status/gauge-7";
const MEDIA: &str = "yingji/v1/media/unit-7/r-1";
const ACK: &str = "yingji/v1/ack/team-3";

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(NOW_S, 0).single().expect("NOW_S is a valid time")
}

// ---------------------------------------------------------------------------------------------
// The one helper.

/// What validation made of a payload.
#[derive(Debug)]
enum Parsed {
    Report(Box<FieldReport>),
    Senml(Vec<Reading>),
    Status(DeviceStatus),
    Media(MediaType),
    Ack(Ack),
}

impl Parsed {
    fn report(&self) -> &FieldReport {
        match self {
            Parsed::Report(r) => r,
            other => panic!("expected a report, got {other:?}"),
        }
    }
    fn readings(&self) -> &[Reading] {
        match self {
            Parsed::Senml(r) => r,
            other => panic!("expected SenML readings, got {other:?}"),
        }
    }
    fn status(&self) -> &DeviceStatus {
        match self {
            Parsed::Status(s) => s,
            other => panic!("expected a status, got {other:?}"),
        }
    }
    fn media(&self) -> MediaType {
        match self {
            Parsed::Media(m) => *m,
            other => panic!("expected media, got {other:?}"),
        }
    }
    fn ack(&self) -> &Ack {
        match self {
            Parsed::Ack(a) => a,
            other => panic!("expected an acknowledgement, got {other:?}"),
        }
    }
}

/// The expected outcome: accepted, with properties checked by a function, or refused with a code.
enum Want {
    Accept(fn(&Parsed)),
    Refuse(Code),
}

struct Case {
    name: &'static str,
    topic: String,
    payload: Vec<u8>,
    want: Want,
    /// Bad input: broken, malformed, oversized or malicious (whether refused or safely kept).
    hostile: bool,
}

/// A well-formed message that must be accepted.
fn good(name: &'static str, topic: &str, payload: Vec<u8>, props: fn(&Parsed)) -> Case {
    Case { name, topic: topic.to_owned(), payload, want: Want::Accept(props), hostile: false }
}

/// Bad input that must be refused with `code`.
fn bad(name: &'static str, topic: &str, payload: Vec<u8>, code: Code) -> Case {
    Case { name, topic: topic.to_owned(), payload, want: Want::Refuse(code), hostile: true }
}

/// Hostile-looking input that contract v1 accepts on purpose (and keeps as it came).
fn hostile_ok(name: &'static str, topic: &str, payload: Vec<u8>, props: fn(&Parsed)) -> Case {
    Case { name, topic: topic.to_owned(), payload, want: Want::Accept(props), hostile: true }
}

/// Dispatches a message as a node does: the topic decides the parser.
fn validate(topic: &str, payload: &[u8]) -> Result<Parsed, yingji_proto::Invalid> {
    let limits = Limits::default();
    match FieldTopic::parse(topic)? {
        FieldTopic::Report { device } => {
            FieldReport::parse(payload, &device, now(), &limits).map(|r| Parsed::Report(Box::new(r)))
        }
        FieldTopic::Senml { device } => senml::parse_pack(payload, &device, now(), &limits).map(Parsed::Senml),
        FieldTopic::Status { device } => DeviceStatus::parse(payload, &device, now(), &limits).map(Parsed::Status),
        FieldTopic::Media { .. } => media::sniff(payload, &limits).map(Parsed::Media),
        FieldTopic::Ack { team } => Ack::parse(payload, &team, now(), &limits).map(Parsed::Ack),
    }
}

/// Runs one case; `Err` says how it went wrong.
fn check(case: &Case) -> Result<(), String> {
    let got = catch_unwind(AssertUnwindSafe(|| validate(&case.topic, &case.payload)))
        .map_err(|p| format!("validation panicked: {}", panic_text(p.as_ref())))?;
    match (got, &case.want) {
        (Ok(parsed), Want::Accept(props)) => catch_unwind(AssertUnwindSafe(|| props(&parsed)))
            .map_err(|p| format!("accepted, but a property failed: {}", panic_text(p.as_ref()))),
        (Ok(parsed), Want::Refuse(code)) => Err(format!("accepted, want {code}: {}", short(&format!("{parsed:?}")))),
        (Err(e), Want::Refuse(code)) if e.code == *code => {
            if e.reason.trim().is_empty() {
                Err(format!("refused with {code} but no reason"))
            } else {
                Ok(())
            }
        }
        (Err(e), Want::Refuse(code)) => Err(format!("refused with {}, want {code}: {}", e.code, short(&e.reason))),
        (Err(e), Want::Accept(_)) => Err(format!("refused with {}, want accepted: {}", e.code, short(&e.reason))),
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "(no message)".to_owned())
}

fn short(text: &str) -> String {
    if text.len() <= 300 {
        return text.to_owned();
    }
    let mut cut = 300;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} bytes)", &text[..cut], text.len())
}

// ---------------------------------------------------------------------------------------------
// Payload builders.

/// A valid report, as JSON, for cases to spoil.
fn base_report() -> Json {
    json!({
        "id": "r-1",
        "incident": "typhoon-2026-14",
        "stage": "initial",
        "hazard": "typhoon",
        "observed_at": "2026-09-14T08:00:00+08:00",
        "location": {"lat": 28.02, "lon": 120.65},
        "region": "330302",
        "figures": {"affected": 1200, "deaths": 0, "injured": 3, "crop_area_ha": 12.5},
        "text": "Levee breach near the east gate.",
        "exercise": false
    })
}

/// The base report with one change.
fn report(change: impl FnOnce(&mut Json)) -> Vec<u8> {
    let mut r = base_report();
    change(&mut r);
    serde_json::to_vec(&r).expect("a JSON value serialises")
}

/// The base report's JSON text with one textual replacement (for what `json!` cannot write).
fn report_text(from: &str, to: &str) -> Vec<u8> {
    let text = serde_json::to_string(&base_report()).expect("a JSON value serialises");
    assert!(text.contains(from), "the base report has no {from:?}");
    text.replacen(from, to, 1).into_bytes()
}

fn drop_field(r: &mut Json, field: &str) {
    r.as_object_mut().expect("the base is an object").remove(field);
}

fn status(change: impl FnOnce(&mut Json)) -> Vec<u8> {
    let mut s = json!({"online": true, "battery": 87.5, "at": "2026-09-14T01:59:00Z"});
    change(&mut s);
    serde_json::to_vec(&s).expect("a JSON value serialises")
}

/// A valid acknowledgement of team-3, with one change.
fn ack(change: impl FnOnce(&mut Json)) -> Vec<u8> {
    let mut a = json!({
        "id": "ack-1",
        "dispatch": "order-9",
        "team": "team-3",
        "status": "en_route",
        "at": "2026-09-14T09:58:00+08:00",
        "location": {"lat": 28.1, "lon": 120.7},
        "note": "two boats, ETA 40 min"
    });
    change(&mut a);
    serde_json::to_vec(&a).expect("a JSON value serialises")
}

fn pack(records: Json) -> Vec<u8> {
    serde_json::to_vec(&records).expect("a JSON value serialises")
}

fn bytes(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

/// `depth` nested arrays: `[[[…]]]`.
fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// `depth` nested objects: `{"a":{"a":…{}}}`.
fn nested_objects(depth: usize) -> String {
    format!("{}{{}}{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}

const TEN_MB: usize = 10 * 1024 * 1024;
const JPEG: [u8; 4] = [0xFF, 0xD8, 0xFF, 0xE0];
const PNG: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

fn image(magic: &[u8], len: usize) -> Vec<u8> {
    let mut b = magic.to_vec();
    b.resize(len, 0x5A);
    b
}

fn number(r: &Reading) -> f64 {
    match r.value {
        Some(Value::Number(x)) => x,
        ref other => panic!("{}: expected a number, got {other:?}", r.full_name),
    }
}

// ---------------------------------------------------------------------------------------------
// The table.

fn cases() -> Vec<Case> {
    vec![
        // ---- field reports: accepted ----
        good("report: the design's example", REPORT, report(|_| {}), |p| {
            let r = p.report();
            assert_eq!(r.id, "r-1");
            assert_eq!(r.incident, "typhoon-2026-14");
            assert_eq!(r.stage, Stage::Initial);
            assert_eq!(r.hazard, Hazard::Typhoon);
            assert_eq!(r.observed_at.offset().local_minus_utc(), 8 * 3600, "the sender's offset is kept");
            assert_eq!(r.observed_at.timestamp(), NOW_S - 2 * 3600);
            assert_eq!((r.location.lat, r.location.lon), (28.02, 120.65));
            assert_eq!(r.region.as_deref(), Some("330302"));
            assert_eq!(r.figures.affected, Some(1200));
            assert_eq!(r.figures.deaths, Some(0), "zero is reported, not absent");
            assert_eq!(r.figures.missing, None, "absent is not zero");
            assert_eq!(r.figures.crop_area_ha, Some(12.5));
            assert!(!r.exercise);
            assert_eq!(r.device, None);
        }),
        good(
            "report: only the required fields",
            REPORT,
            bytes(
                r#"{"id":"r-2","incident":"eq-2026-3","stage":"final","hazard":"debris_flow",
                   "observed_at":"2026-09-14T01:00:00Z","location":{"lat":-90,"lon":180}}"#,
            ),
            |p| {
                let r = p.report();
                assert_eq!((r.stage, r.hazard), (Stage::Final, Hazard::DebrisFlow));
                assert_eq!(r.figures, Default::default());
                assert_eq!((r.region.as_ref(), r.text.as_ref()), (None, None));
                assert!(!r.exercise, "exercise defaults to false");
            },
        ),
        good("report: a drill", REPORT, report(|r| r["exercise"] = json!(true)), |p| assert!(p.report().exercise)),
        good(
            "report: observed_at exactly at the 10 minute skew",
            REPORT,
            report(|r| r["observed_at"] = json!("2026-09-14T02:10:00Z")),
            |p| assert_eq!(p.report().observed_at.timestamp(), NOW_S + 600),
        ),
        good(
            "report: device field naming the topic's device",
            REPORT,
            report(|r| r["device"] = json!("unit-7")),
            |p| assert_eq!(p.report().device.as_deref(), Some("unit-7")),
        ),
        good("report: text of exactly 4 KiB", REPORT, report(|r| r["text"] = json!("x".repeat(4096))), |p| {
            assert_eq!(p.report().text.as_ref().map(String::len), Some(4096))
        }),
        hostile_ok(
            "report: <script> in text is kept verbatim",
            REPORT,
            report(|r| r["text"] = json!("<script>alert('x')</script><img src=x onerror=alert(1)>")),
            |p| {
                assert_eq!(
                    p.report().text.as_deref(),
                    Some("<script>alert('x')</script><img src=x onerror=alert(1)>"),
                    "text is stored as it came; whoever shows it escapes it"
                );
            },
        ),
        hostile_ok(
            "report: unknown top-level fields are ignored",
            REPORT,
            report(|r| r["priority"] = json!({"$where": "1==1"})),
            |p| assert_eq!(p.report().id, "r-1"),
        ),
        // ---- field reports: not JSON ----
        bad("report: empty payload", REPORT, vec![], Code::InvalidJson),
        bad("report: not JSON at all", REPORT, bytes("id=r-1&stage=initial"), Code::InvalidJson),
        bad(
            "report: truncated JSON",
            REPORT,
            {
                let mut b = report(|_| {});
                b.truncate(b.len() / 2);
                b
            },
            Code::InvalidJson,
        ),
        bad("report: NaN literal", REPORT, report_text("28.02", "NaN"), Code::InvalidJson),
        bad("report: Infinity literal", REPORT, report_text("120.65", "Infinity"), Code::InvalidJson),
        bad("report: number beyond f64 (1e400)", REPORT, report_text("120.65", "1e400"), Code::InvalidJson),
        bad(
            "report: trailing second document",
            REPORT,
            {
                let mut b = report(|_| {});
                b.extend_from_slice(b" {}");
                b
            },
            Code::InvalidJson,
        ),
        bad(
            "report: invalid UTF-8 in a string",
            REPORT,
            {
                let mut b = report(|r| r["text"] = json!("AB"));
                let at = b.windows(4).position(|w| w == b"\"AB\"").expect("the text is there") + 1;
                b[at] = 0xFF;
                b
            },
            Code::InvalidJson,
        ),
        bad("report: lone surrogate escape", REPORT, report_text("Levee", "\\ud800Levee"), Code::InvalidJson),
        bad(
            "report: UTF-8 byte order mark",
            REPORT,
            {
                let mut b = vec![0xEF, 0xBB, 0xBF];
                b.extend(report(|_| {}));
                b
            },
            Code::InvalidJson,
        ),
        hostile_ok(
            "report: 10,000 nested objects in an ignored field are skipped without recursion",
            REPORT,
            report_text("\"exercise\":false", &format!("\"exercise\":false,\"x\":{}", nested_objects(10_000))),
            |p| assert_eq!(p.report().id, "r-1"),
        ),
        // ---- field reports: wrong shape ----
        bad("report: JSON null", REPORT, bytes("null"), Code::InvalidField),
        bad("report: a JSON string", REPORT, bytes("\"r-1\""), Code::InvalidField),
        bad("report: 10,000 nested arrays", REPORT, bytes(&nested_arrays(10_000)), Code::InvalidField),
        bad("report: missing id", REPORT, report(|r| drop_field(r, "id")), Code::InvalidField),
        bad("report: missing observed_at", REPORT, report(|r| drop_field(r, "observed_at")), Code::InvalidField),
        bad("report: missing location", REPORT, report(|r| drop_field(r, "location")), Code::InvalidField),
        bad("report: id is a number", REPORT, report(|r| r["id"] = json!(17)), Code::InvalidField),
        bad("report: lat is a string", REPORT, report(|r| r["location"]["lat"] = json!("28.02")), Code::InvalidField),
        bad("report: exercise is a string", REPORT, report(|r| r["exercise"] = json!("false")), Code::InvalidField),
        bad(
            "report: a figure is a string",
            REPORT,
            report(|r| r["figures"]["affected"] = json!("1200")),
            Code::InvalidField,
        ),
        bad("report: figures is null", REPORT, report(|r| r["figures"] = json!(null)), Code::InvalidField),
        bad(
            "report: observed_at as a Unix number",
            REPORT,
            report(|r| r["observed_at"] = json!(NOW_S)),
            Code::InvalidField,
        ),
        bad(
            "report: location as a [lon, lat] array (GeoJSON order)",
            REPORT,
            report(|r| r["location"] = json!([87.6, 43.8])),
            Code::InvalidField,
        ),
        bad(
            "report: figures as a positional array",
            REPORT,
            report(|r| r["figures"] = json!([1200, 3])),
            Code::InvalidField,
        ),
        bad(
            "report: the whole report as a positional array",
            REPORT,
            bytes(r#"["r-1","typhoon-2026-14","initial","typhoon","2026-09-14T01:00:00Z",{"lat":28.02,"lon":120.65}]"#),
            Code::InvalidField,
        ),
        bad("report: unknown figure name", REPORT, report(|r| r["figures"]["dead"] = json!(3)), Code::InvalidField),
        bad(
            "report: duplicate id key",
            REPORT,
            report_text("\"id\":\"r-1\"", "\"id\":\"r-1\",\"id\":\"r-2\""),
            Code::InvalidField,
        ),
        bad("report: unknown stage", REPORT, report(|r| r["stage"] = json!("preliminary")), Code::InvalidField),
        bad("report: unknown hazard", REPORT, report(|r| r["hazard"] = json!("tornado")), Code::InvalidField),
        bad("report: hazard in the wrong case", REPORT, report(|r| r["hazard"] = json!("Typhoon")), Code::InvalidField),
        bad(
            "report: fractional death count",
            REPORT,
            report(|r| r["figures"]["deaths"] = json!(1.5)),
            Code::InvalidField,
        ),
        bad(
            "report: death count beyond i64",
            REPORT,
            report_text("\"deaths\":0", "\"deaths\":99999999999999999999"),
            Code::InvalidField,
        ),
        // ---- field reports: values out of range ----
        bad("report: 10 MB payload", REPORT, report(|r| r["text"] = json!("x".repeat(TEN_MB))), Code::PayloadTooLarge),
        bad("report: lat 91", REPORT, report(|r| r["location"]["lat"] = json!(91)), Code::CoordinatesOutOfRange),
        bad("report: lon -181", REPORT, report(|r| r["location"]["lon"] = json!(-181)), Code::CoordinatesOutOfRange),
        bad("report: negative deaths", REPORT, report(|r| r["figures"]["deaths"] = json!(-1)), Code::FigureNegative),
        bad(
            "report: negative crop area",
            REPORT,
            report(|r| r["figures"]["crop_area_ha"] = json!(-0.5)),
            Code::FigureNegative,
        ),
        bad(
            "report: more people affected than live on Earth",
            REPORT,
            report(|r| r["figures"]["affected"] = json!(10_000_000_001_i64)),
            Code::FigureInvalid,
        ),
        bad(
            "report: absurd direct loss",
            REPORT,
            report(|r| r["figures"]["direct_loss_cny"] = json!(1e15)),
            Code::FigureInvalid,
        ),
        bad(
            "report: far-future observed_at",
            REPORT,
            report(|r| r["observed_at"] = json!("2099-01-01T00:00:00Z")),
            Code::TimeInFuture,
        ),
        bad(
            "report: one second past the skew",
            REPORT,
            report(|r| r["observed_at"] = json!("2026-09-14T10:10:01+08:00")),
            Code::TimeInFuture,
        ),
        bad(
            "report: observed_at before 2000",
            REPORT,
            report(|r| r["observed_at"] = json!("1999-12-31T23:59:59Z")),
            Code::TimeTooOld,
        ),
        bad(
            "report: observed_at without offset",
            REPORT,
            report(|r| r["observed_at"] = json!("2026-09-14T08:00:00")),
            Code::InvalidTime,
        ),
        bad(
            "report: observed_at as a date only",
            REPORT,
            report(|r| r["observed_at"] = json!("2026-09-14")),
            Code::InvalidTime,
        ),
        bad(
            "report: device field naming another device",
            REPORT,
            report(|r| r["device"] = json!("unit-8")),
            Code::DeviceMismatch,
        ),
        bad("report: text over 4 KiB", REPORT, report(|r| r["text"] = json!("x".repeat(4097))), Code::TextTooLong),
        bad(
            "report: text over 4 KiB in bytes, not chars",
            REPORT,
            report(|r| r["text"] = json!("灾".repeat(1366))),
            Code::TextTooLong,
        ),
        bad("report: five-digit region", REPORT, report(|r| r["region"] = json!("33030")), Code::InvalidRegion),
        bad(
            "report: region with fullwidth digits",
            REPORT,
            report(|r| r["region"] = json!("３３０３０２")),
            Code::InvalidRegion,
        ),
        bad("report: empty id", REPORT, report(|r| r["id"] = json!("")), Code::InvalidId),
        bad("report: id with a slash", REPORT, report(|r| r["id"] = json!("../../etc/passwd")), Code::InvalidId),
        bad("report: id of 129 bytes", REPORT, report(|r| r["id"] = json!("a".repeat(129))), Code::InvalidId),
        bad(
            "report: incident with an MQTT wildcard",
            REPORT,
            report(|r| r["incident"] = json!("typhoon-#")),
            Code::InvalidId,
        ),
        // ---- topics ----
        bad("topic: another version", "yingji/v2/report/unit-7", report(|_| {}), Code::InvalidTopic),
        bad("topic: unknown kind", "yingji/v1/reports/unit-7", report(|_| {}), Code::InvalidTopic),
        bad("topic: extra level", "yingji/v1/report/unit-7/extra", report(|_| {}), Code::InvalidTopic),
        bad("topic: empty", "", report(|_| {}), Code::InvalidTopic),
        bad("topic: media without a report id", "yingji/v1/media/unit-7", image(&JPEG, 64), Code::InvalidTopic),
        bad(
            "topic: media with a wildcard report id",
            "yingji/v1/media/unit-7/r+1",
            image(&JPEG, 64),
            Code::InvalidTopic,
        ),
        bad("topic: empty device id", "yingji/v1/report/", report(|_| {}), Code::InvalidDeviceId),
        bad("topic: device id with a space", "yingji/v1/status/gauge 7", status(|_| {}), Code::InvalidDeviceId),
        bad(
            "topic: device id of 65 characters",
            &format!("yingji/v1/senml/{}", "g".repeat(65)),
            pack(json!([])),
            Code::InvalidDeviceId,
        ),
        bad("topic: non-ASCII device id", "yingji/v1/report/设备1", report(|_| {}), Code::InvalidDeviceId),
        // ---- device status ----
        good("status: online with battery", STATUS, status(|_| {}), |p| {
            let s = p.status();
            assert!(s.online);
            assert_eq!(s.battery, Some(87.5));
            assert_eq!(s.at.timestamp(), NOW_S - 60);
        }),
        good("status: the will message", STATUS, bytes(r#"{"online":false,"at":"2026-09-14T09:58:00+08:00"}"#), |p| {
            assert_eq!((p.status().online, p.status().battery), (false, None))
        }),
        bad("status: battery 101", STATUS, status(|s| s["battery"] = json!(101)), Code::BatteryOutOfRange),
        bad("status: battery -1", STATUS, status(|s| s["battery"] = json!(-1)), Code::BatteryOutOfRange),
        bad(
            "status: device field naming another device",
            STATUS,
            status(|s| s["device"] = json!("gauge-8")),
            Code::DeviceMismatch,
        ),
        bad("status: online as a string", STATUS, status(|s| s["online"] = json!("yes")), Code::InvalidField),
        bad("status: missing at", STATUS, bytes(r#"{"online":true}"#), Code::InvalidField),
        bad("status: far-future at", STATUS, status(|s| s["at"] = json!("2036-09-14T02:00:00Z")), Code::TimeInFuture),
        bad("status: a positional array", STATUS, bytes(r#"[true, 50, "2026-09-14T01:59:00Z"]"#), Code::InvalidField),
        bad("status: 10,000 nested arrays", STATUS, bytes(&nested_arrays(10_000)), Code::InvalidField),
        // ---- SenML: accepted ----
        good(
            "senml: one record with a full name",
            SENML,
            pack(json!([{"n": "urn:dev:x:gauge-7:rain", "u": "mm", "v": 2.5, "t": T0}])),
            |p| {
                let r = &p.readings()[0];
                assert_eq!((r.full_name.as_str(), r.name.as_str()), ("urn:dev:x:gauge-7:rain", "rain"));
                assert_eq!(r.unit.as_deref(), Some("mm"));
                assert_eq!(number(r), 2.5);
                assert_eq!(r.time_us, (NOW_S - 600) * 1_000_000);
            },
        ),
        good(
            "senml: RFC 8428 §4.6 base-field resolution, field by field",
            SENML,
            pack(json!([
                {"bn": "urn:dev:x:gauge-7:", "bt": T0, "bu": "m", "bv": 10.0, "bs": 100.0, "bver": 10,
                 "n": "water_level", "v": 0.25, "t": 0},
                {"n": "water_level", "v": -0.5, "t": 60},
                {"n": "rain", "u": "mm", "s": 4.5, "t": 120},
                {"n": "temp", "u": "Cel", "v": 16.0},
                {"bn": "gauge-7/", "bt": T0 + 300.0, "n": "door", "vb": true},
                {"n": "label", "vs": "east", "t": -30}
            ])),
            |p| {
                let r = p.readings();
                assert_eq!(r.len(), 6);
                // bn + n, per record; a later bn replaces the earlier one.
                let names: Vec<&str> = r.iter().map(|x| x.full_name.as_str()).collect();
                assert_eq!(
                    names,
                    [
                        "urn:dev:x:gauge-7:water_level",
                        "urn:dev:x:gauge-7:water_level",
                        "urn:dev:x:gauge-7:rain",
                        "urn:dev:x:gauge-7:temp",
                        "gauge-7/door",
                        "gauge-7/label"
                    ]
                );
                // bt + t, with t absent meaning 0 and negative t meaning before bt.
                let times: Vec<i64> = r.iter().map(|x| x.time_us / 1_000_000).collect();
                let t0 = NOW_S - 600;
                assert_eq!(times, [t0, t0 + 60, t0 + 120, t0, t0 + 300, t0 + 270]);
                // bu applies where u is absent; u overrides it.
                let units: Vec<Option<&str>> = r.iter().map(|x| x.unit.as_deref()).collect();
                assert_eq!(units, [Some("m"), Some("m"), Some("mm"), Some("Cel"), Some("m"), Some("m")]);
                // bv + v for numbers only; bs + s for sums.
                assert_eq!(number(&r[0]), 10.25);
                assert_eq!(number(&r[1]), 9.5);
                assert_eq!((r[2].value.as_ref(), r[2].sum), (None, Some(104.5)));
                assert_eq!(number(&r[3]), 26.0, "bv is added to every later v, whatever its name");
                assert_eq!(r[4].value, Some(Value::Bool(true)));
                assert_eq!(r[5].value, Some(Value::String("east".into())));
                assert!(r.iter().enumerate().all(|(i, x)| i == 2 || x.sum.is_none()));
            },
        ),
        good(
            "senml: a bare name with an absolute t",
            SENML,
            pack(json!([{"n": "flow", "u": "m3/s", "v": 310.0, "t": T0}])),
            |p| assert_eq!(p.readings()[0].name, "flow"),
        ),
        good(
            "senml: unit may be omitted for a recognised name",
            SENML,
            pack(json!([{"n": "gauge-7/intensity", "v": 7, "t": T0}])),
            |p| assert_eq!((p.readings()[0].name.as_str(), p.readings()[0].unit.as_ref()), ("intensity", None)),
        ),
        good("senml: vd as base64url", SENML, pack(json!([{"n": "camera-log", "vd": "aGkgCg", "t": T0}])), |p| {
            assert_eq!(p.readings()[0].value, Some(Value::Data(b"hi \n".to_vec())))
        }),
        hostile_ok(
            "senml: unknown names are passed through",
            SENML,
            pack(json!([
                {"bn": "urn:dev:x:gauge-7:", "bt": T0, "n": "turbidity", "u": "NTU", "v": 41.0},
                {"n": "firmware", "vs": "2.4.1"}
            ])),
            |p| {
                let r = p.readings();
                assert_eq!((r[0].name.as_str(), r[0].unit.as_deref(), number(&r[0])), ("turbidity", Some("NTU"), 41.0));
                assert_eq!(r[1].value, Some(Value::String("2.4.1".into())));
            },
        ),
        hostile_ok(
            "senml: unknown fields without a trailing _ are ignored (RFC 8428 §4.4)",
            SENML,
            pack(json!([{"n": "rain", "u": "mm", "v": 1.0, "t": T0, "ct": "60", "colour": "red"}])),
            |p| assert_eq!(number(&p.readings()[0]), 1.0),
        ),
        // ---- SenML: refused ----
        bad("senml: empty pack", SENML, pack(json!([])), Code::SenmlEmpty),
        bad("senml: an object, not an array", SENML, pack(json!({"n": "rain", "v": 1, "t": T0})), Code::InvalidField),
        bad("senml: NaN literal", SENML, bytes(&format!(r#"[{{"n":"rain","v":NaN,"t":{T0}}}]"#)), Code::InvalidJson),
        bad("senml: truncated", SENML, bytes(&format!(r#"[{{"n":"rain","v":1,"t":{T0}"#)), Code::InvalidJson),
        bad("senml: v as a string", SENML, pack(json!([{"n": "rain", "v": "1.0", "t": T0}])), Code::InvalidField),
        bad(
            "senml: bver as a string",
            SENML,
            pack(json!([{"n": "rain", "v": 1.0, "t": T0, "bver": "10"}])),
            Code::InvalidField,
        ),
        bad(
            "senml: a record as a positional array",
            SENML,
            bytes(&format!(r#"[["gauge-7/",{T0}]]"#)),
            Code::InvalidField,
        ),
        bad("senml: 10,000 nested arrays", SENML, bytes(&nested_arrays(10_000)), Code::InvalidField),
        hostile_ok(
            "senml: 10,000 nested objects in an unknown field are skipped, never built",
            SENML,
            bytes(&format!(r#"[{{"n":"rain","v":1,"t":{T0},"x":{}}}]"#, nested_objects(10_000))),
            |p| assert_eq!(number(&p.readings()[0]), 1.0),
        ),
        bad(
            "senml: a label given twice",
            SENML,
            bytes(&format!(r#"[{{"n":"rain","v":1,"v":2,"t":{T0}}}]"#)),
            Code::InvalidField,
        ),
        bad(
            "senml: 10 MB pack",
            SENML,
            {
                let record = format!(r#"{{"n":"rain","u":"mm","v":0.5,"t":{T0}}}"#);
                let mut text = String::from("[");
                while text.len() < TEN_MB {
                    text.push_str(&record);
                    text.push(',');
                }
                text.push_str(&record);
                text.push(']');
                text.into_bytes()
            },
            Code::PayloadTooLarge,
        ),
        bad(
            "senml: 10,001 records",
            SENML,
            bytes(&format!("[{}{{}}]", "{},".repeat(10_000))),
            Code::SenmlTooManyRecords,
        ),
        bad("senml: no bn and no n", SENML, pack(json!([{"v": 1.0, "t": T0}])), Code::SenmlNameMissing),
        bad(
            "senml: bn alone names no measurement",
            SENML,
            pack(json!([{"bn": "urn:dev:x:gauge-7:", "v": 1.0, "t": T0}])),
            Code::SenmlNameMissing,
        ),
        bad(
            "senml: name with a space",
            SENML,
            pack(json!([{"n": "rain fall", "v": 1.0, "t": T0}])),
            Code::SenmlNameInvalid,
        ),
        bad(
            "senml: <script> as a name",
            SENML,
            pack(json!([{"n": "<script>", "v": 1.0, "t": T0}])),
            Code::SenmlNameInvalid,
        ),
        bad(
            "senml: name starting with a dash",
            SENML,
            pack(json!([{"n": "-rain", "v": 1.0, "t": T0}])),
            Code::SenmlNameInvalid,
        ),
        bad(
            "senml: name over 256 bytes",
            SENML,
            pack(json!([{"n": "r".repeat(257), "v": 1.0, "t": T0}])),
            Code::SenmlNameInvalid,
        ),
        bad(
            "senml: base name naming another device",
            SENML,
            pack(json!([{"bn": "urn:dev:x:other-dev:", "n": "rain", "u": "mm", "v": 1.0, "bt": T0}])),
            Code::DeviceMismatch,
        ),
        bad(
            "senml: a later base name switching to another device",
            SENML,
            pack(json!([
                {"bn": "gauge-7/", "bt": T0, "n": "rain", "v": 1.0},
                {"bn": "gauge-8/", "n": "rain", "v": 1.0}
            ])),
            Code::DeviceMismatch,
        ),
        bad("senml: no bt and no t", SENML, pack(json!([{"n": "rain", "u": "mm", "v": 1.0}])), Code::SenmlTimeMissing),
        bad(
            "senml: relative time",
            SENML,
            pack(json!([{"n": "rain", "u": "mm", "v": 1.0, "t": -60}])),
            Code::SenmlTimeMissing,
        ),
        bad(
            "senml: time a day ahead",
            SENML,
            pack(json!([{"n": "rain", "v": 1.0, "t": T0 + 86_400.0}])),
            Code::TimeInFuture,
        ),
        bad(
            "senml: time before 2000 (1998)",
            SENML,
            pack(json!([{"n": "rain", "v": 1.0, "t": 896_659_200}])),
            Code::TimeTooOld,
        ),
        bad(
            "senml: bad base64 in vd",
            SENML,
            pack(json!([{"n": "blob", "vd": "!!not base64!!", "t": T0}])),
            Code::SenmlBadBase64,
        ),
        bad(
            "senml: v and vs in one record",
            SENML,
            pack(json!([{"n": "rain", "v": 1.0, "vs": "1", "t": T0}])),
            Code::SenmlValueAmbiguous,
        ),
        bad(
            "senml: no value and no sum",
            SENML,
            pack(json!([{"n": "rain", "u": "mm", "t": T0}])),
            Code::SenmlValueMissing,
        ),
        bad(
            "senml: rain in inches",
            SENML,
            pack(json!([{"n": "rain", "u": "in", "v": 0.1, "t": T0}])),
            Code::SenmlUnitMismatch,
        ),
        bad(
            "senml: water_level in feet through bu",
            SENML,
            pack(json!([{"bu": "ft", "n": "water_level", "v": 3.0, "t": T0}])),
            Code::SenmlUnitMismatch,
        ),
        bad(
            "senml: negative rain",
            SENML,
            pack(json!([{"n": "rain", "u": "mm", "v": -2.0, "t": T0}])),
            Code::SenmlValueInvalid,
        ),
        bad(
            "senml: string value for water_level",
            SENML,
            pack(json!([{"n": "water_level", "u": "m", "vs": "high", "t": T0}])),
            Code::SenmlValueInvalid,
        ),
        bad(
            "senml: lat 91 for a moving device",
            SENML,
            pack(json!([{"n": "lat", "u": "lat", "v": 91.0, "t": T0}])),
            Code::SenmlValueInvalid,
        ),
        bad(
            "senml: intensity 13",
            SENML,
            pack(json!([{"n": "intensity", "u": "/", "v": 13, "t": T0}])),
            Code::SenmlValueInvalid,
        ),
        bad(
            "senml: bver 11",
            SENML,
            pack(json!([{"bver": 11, "n": "rain", "v": 1.0, "t": T0}])),
            Code::SenmlUnsupportedVersion,
        ),
        bad(
            "senml: a must-understand field (ending in _)",
            SENML,
            pack(json!([{"n": "rain", "u": "mm", "v": 1.0, "t": T0, "ct_": "60"}])),
            Code::SenmlUnsupportedVersion,
        ),
        // ---- media ----
        good("media: JPEG", MEDIA, image(&JPEG, 2048), |p| assert_eq!(p.media(), MediaType::Jpeg)),
        good("media: PNG", MEDIA, image(&PNG, 2048), |p| assert_eq!(p.media(), MediaType::Png)),
        good("media: WebP", MEDIA, image(b"RIFF\x24\x08\x00\x00WEBPVP8 ", 2048), |p| {
            assert_eq!(p.media(), MediaType::Webp);
            assert_eq!(p.media().content_type(), "image/webp");
        }),
        good("media: exactly 4 MiB", MEDIA, image(&JPEG, 4 * 1024 * 1024), |p| assert_eq!(p.media(), MediaType::Jpeg)),
        bad("media: empty", MEDIA, vec![], Code::MediaEmpty),
        bad("media: 5 MiB", MEDIA, image(&JPEG, 5 * 1024 * 1024), Code::MediaTooLarge),
        bad(
            "media: HTML",
            MEDIA,
            bytes("<!DOCTYPE html><html><script>alert(1)</script></html>"),
            Code::MediaTypeUnsupported,
        ),
        bad(
            "media: SVG with script",
            MEDIA,
            bytes("<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>"),
            Code::MediaTypeUnsupported,
        ),
        bad("media: plain text", MEDIA, bytes("this is not an image"), Code::MediaTypeUnsupported),
        bad("media: GIF", MEDIA, image(b"GIF89a", 64), Code::MediaTypeUnsupported),
        bad(
            "media: RIFF that is WAVE, not WEBP",
            MEDIA,
            image(b"RIFF\x24\x08\x00\x00WAVEfmt ", 64),
            Code::MediaTypeUnsupported,
        ),
        bad("media: a PNG magic cut short", MEDIA, PNG[..4].to_vec(), Code::MediaTypeUnsupported),
        // ---- acknowledgements ----
        good("ack: en route with location and note", ACK, ack(|_| {}), |p| {
            let a = p.ack();
            assert_eq!((a.id.as_str(), a.dispatch.as_str(), a.team.as_str()), ("ack-1", "order-9", "team-3"));
            assert_eq!(a.status, AckStatus::EnRoute);
            assert_eq!(a.at.to_rfc3339(), "2026-09-14T09:58:00+08:00");
            assert!(a.location.is_some() && a.note.is_some());
        }),
        good(
            "ack: only the required members",
            ACK,
            ack(|a| {
                let o = a.as_object_mut().expect("object");
                o.remove("location");
                o.remove("note");
                o.insert("status".into(), json!("received"));
            }),
            |p| assert_eq!(p.ack().status, AckStatus::Received),
        ),
        bad("ack: team differs from the topic", ACK, ack(|a| a["team"] = json!("team-4")), Code::DeviceMismatch),
        bad("ack: unknown status", ACK, ack(|a| a["status"] = json!("lost")), Code::InvalidField),
        bad("ack: status in capitals", ACK, ack(|a| a["status"] = json!("ACCEPTED")), Code::InvalidField),
        bad(
            "ack: no dispatch",
            ACK,
            ack(|a| {
                a.as_object_mut().expect("object").remove("dispatch");
            }),
            Code::InvalidField,
        ),
        bad("ack: dispatch id with a slash", ACK, ack(|a| a["dispatch"] = json!("o/1")), Code::InvalidId),
        bad("ack: team id with a space", ACK, ack(|a| a["team"] = json!("team 3")), Code::InvalidDeviceId),
        bad("ack: at without offset", ACK, ack(|a| a["at"] = json!("2026-09-14T09:58:00")), Code::InvalidTime),
        bad("ack: at next year", ACK, ack(|a| a["at"] = json!("2027-09-14T09:58:00+08:00")), Code::TimeInFuture),
        bad("ack: at in 1999", ACK, ack(|a| a["at"] = json!("1999-09-14T09:58:00+08:00")), Code::TimeTooOld),
        bad(
            "ack: location out of range",
            ACK,
            ack(|a| a["location"] = json!({"lat": 128.1, "lon": 120.7})),
            Code::CoordinatesOutOfRange,
        ),
        bad("ack: location as an array", ACK, ack(|a| a["location"] = json!([120.7, 28.1])), Code::InvalidField),
        bad("ack: note over 4 KiB", ACK, ack(|a| a["note"] = json!("x".repeat(4097))), Code::TextTooLong),
        bad("ack: relay_id from a team", ACK, ack(|a| a["relay_id"] = json!("n:ack:team-3:ack-1")), Code::InvalidField),
        bad("ack: an array", ACK, bytes("[\"ack-1\", \"order-9\"]"), Code::InvalidField),
        bad("ack: not JSON", ACK, bytes("{\"id\": \"ack-1\","), Code::InvalidJson),
        bad("ack: 300 KiB", ACK, ack(|a| a["pad"] = json!("x".repeat(300 * 1024))), Code::PayloadTooLarge),
    ]
}

#[test]
fn validation_table() {
    let cases = cases();
    let mut names = HashSet::new();
    for case in &cases {
        assert!(names.insert(case.name), "two cases are named {:?}", case.name);
    }
    let hostile = cases.iter().filter(|c| c.hostile).count();
    assert!(cases.len() >= 50, "the table has only {} cases", cases.len());
    assert!(2 * hostile >= cases.len(), "only {hostile} of {} cases are hostile", cases.len());

    let failures: Vec<String> =
        cases.iter().filter_map(|case| check(case).err().map(|why| format!("  {}: {why}", case.name))).collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    eprintln!("validation table: {} cases, {hostile} hostile", cases.len());
}

// ---------------------------------------------------------------------------------------------
// Codes.

/// The wire names of contract v1, pinned: a code is never renamed. The match is exhaustive, so
/// a new variant does not compile until it is added here (and, by the test below, to
/// `Code::ALL`).
macro_rules! pinned_codes {
    ($($variant:ident => $wire:literal,)*) => {
        fn pinned(code: Code) -> &'static str {
            match code {
                $(Code::$variant => $wire,)*
            }
        }
        const EVERY: &[Code] = &[$(Code::$variant,)*];
    };
}

pinned_codes! {
    InvalidTopic => "invalid_topic",
    InvalidDeviceId => "invalid_device_id",
    DeviceMismatch => "device_mismatch",
    PayloadTooLarge => "payload_too_large",
    InvalidJson => "invalid_json",
    InvalidField => "invalid_field",
    InvalidId => "invalid_id",
    InvalidTime => "invalid_time",
    TimeInFuture => "time_in_future",
    TimeTooOld => "time_too_old",
    CoordinatesOutOfRange => "coordinates_out_of_range",
    FigureNegative => "figure_negative",
    FigureInvalid => "figure_invalid",
    TextTooLong => "text_too_long",
    InvalidRegion => "invalid_region",
    BatteryOutOfRange => "battery_out_of_range",
    SenmlEmpty => "senml_empty",
    SenmlTooManyRecords => "senml_too_many_records",
    SenmlNameMissing => "senml_name_missing",
    SenmlNameInvalid => "senml_name_invalid",
    SenmlTimeMissing => "senml_time_missing",
    SenmlValueMissing => "senml_value_missing",
    SenmlValueAmbiguous => "senml_value_ambiguous",
    SenmlUnitMismatch => "senml_unit_mismatch",
    SenmlValueInvalid => "senml_value_invalid",
    SenmlBadBase64 => "senml_bad_base64",
    SenmlUnsupportedVersion => "senml_unsupported_version",
    MediaEmpty => "media_empty",
    MediaTooLarge => "media_too_large",
    MediaTypeUnsupported => "media_type_unsupported",
    Internal => "internal",
    MissingSignature => "missing_signature",
    BadSignature => "bad_signature",
    NoTrustedKey => "no_trusted_key",
}

#[test]
fn every_code_has_a_distinct_stable_name() {
    let all: HashSet<Code> = Code::ALL.iter().copied().collect();
    assert_eq!(all.len(), Code::ALL.len(), "Code::ALL lists a code twice");
    let every: HashSet<Code> = EVERY.iter().copied().collect();
    assert_eq!(all, every, "Code::ALL must list every variant exactly once");

    let mut seen = HashSet::new();
    for code in Code::ALL {
        let wire = code.as_str();
        assert_eq!(wire, pinned(code), "{code:?} was renamed");
        assert!(seen.insert(wire), "{wire:?} names two codes");
        assert!(
            !wire.is_empty()
                && wire.starts_with(|c: char| c.is_ascii_lowercase())
                && wire.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{wire:?} is not snake_case"
        );
        assert_eq!(code.to_string(), wire, "Display of {code:?} differs from as_str");
    }
}
