//! Hostile input through the broker: each bad message gets a reject notice with its code, is
//! counted, and disturbs none of the good messages around it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use yingji_tests::{
    DbKind, Publisher, Subscriber, TestDb, TestNode, eventually, get_json, make, spawn_embedded_broker,
};

fn hostile(i: usize) -> (String, Vec<u8>, Option<&'static str>) {
    let d = "field-unit";
    let report = |v: serde_json::Value| v.to_string().into_bytes();
    let base = || {
        json!({"id": format!("h-{i}"), "incident": "inc-h", "stage": "initial", "hazard": "flood",
               "observed_at": "2026-09-14T08:00:00+08:00", "location": {"lat": 28.0, "lon": 120.6}, "region": "330302"})
    };
    let rt = format!("yingji/v1/report/{d}");
    match i % 12 {
        0 => (rt, b"{\"id\": \"x\", ".to_vec(), Some("invalid_json")),
        // NaN is not JSON; where a number is expected serde reports the wrong type.
        1 => (rt, br#"{"id":"x","figures":{"deaths":NaN}}"#.to_vec(), Some("invalid_field")),
        // Nested far past serde_json's recursion limit, inside an ignored field.
        2 => (
            rt,
            format!("{{\"extra\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
            Some("invalid_json"),
        ),
        3 => {
            let mut v = base();
            v["figures"] = json!({"deaths": -3});
            (rt, report(v), Some("figure_negative"))
        }
        4 => {
            let mut v = base();
            v["device"] = json!("someone-else");
            (rt, report(v), Some("device_mismatch"))
        }
        5 => {
            let mut v = base();
            v["observed_at"] = json!("2099-01-01T00:00:00+08:00");
            (rt, report(v), Some("time_in_future"))
        }
        6 => {
            let mut v = base();
            v["location"] = json!({"lat": 123.0, "lon": 720.0});
            (rt, report(v), Some("coordinates_out_of_range"))
        }
        7 => (
            format!("yingji/v1/media/{d}/h-{i}"),
            b"<html><script>alert(1)</script></html>".to_vec(),
            Some("media_type_unsupported"),
        ),
        8 => {
            let mut big = vec![0xFF, 0xD8, 0xFF];
            big.resize(4 * 1024 * 1024 + 100, 0);
            (format!("yingji/v1/media/{d}/h-{i}"), big, Some("media_too_large"))
        }
        9 => (
            format!("yingji/v1/senml/{d}"),
            br#"[{"bn":"field-unit:","n":"rain","u":"mm","v":3}]"#.to_vec(),
            Some("senml_time_missing"),
        ),
        10 => (rt, vec![b' '; 300 * 1024], Some("payload_too_large")),
        _ => {
            // Script in the text is accepted and kept as text: it is never trusted as HTML.
            let mut v = base();
            v["text"] = json!("<script>alert('x')</script>");
            (rt, report(v), None)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_are_refused_and_good_ones_around_them_are_stored() {
    let broker = spawn_embedded_broker();
    let db = TestDb::new(DbKind::Sqlite).await;
    let node = TestNode::start("hostile", &broker, &db).await;
    let mut rejects = Subscriber::connect(&broker, "reject-watcher", "yingji/v1/reject/+").await;
    let mut publisher = Publisher::connect(&broker, "hostile-publisher").await;

    let rounds = 48;
    let t0 = yingji_tests::recent_t0();
    let mut expected: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut accepted_hostile = 0;
    for i in 0..rounds {
        publisher
            .publish("yingji/v1/report/good-unit", make::report(&format!("g-{i}"), "inc-good", "330302", i as i64))
            .await;
        let (topic, payload, code) = hostile(i);
        match code {
            Some(c) => *expected.entry(c).or_default() += 1,
            None => accepted_hostile += 1,
        }
        publisher.publish(topic, payload).await;
        publisher.publish("yingji/v1/senml/good-gauge", make::rain_pack("good-gauge", t0 + i as f64 * 10.0, 3)).await;
    }
    publisher.wait_acked(Duration::from_secs(60)).await;

    let total: usize = expected.values().sum();
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..total {
        let (topic, payload) =
            rejects.next(Duration::from_secs(30)).await.expect("a reject notice for every hostile message");
        assert_eq!(topic, "yingji/v1/reject/field-unit");
        let notice: serde_json::Value = serde_json::from_slice(&payload).expect("notice is JSON");
        assert!(notice["reason"].as_str().is_some_and(|r| !r.is_empty()), "a reason: {notice}");
        *got.entry(notice["code"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = expected.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    assert_eq!(got, expected, "reject notices by code");

    let counts = eventually(Duration::from_secs(30), "good messages stored", || async {
        let c = node.store.counts().await.ok()?;
        (c.reports == (rounds + accepted_hostile) as i64 && c.readings == (rounds * 3) as i64).then_some(c)
    })
    .await;
    assert_eq!(counts.media, 0, "no hostile media stored");

    let scripted = get_json(&node.url("/api/v1/reports?incident=inc-h")).await;
    let texts: Vec<&str> =
        scripted["items"].as_array().expect("items").iter().filter_map(|r| r["text"].as_str()).collect();
    assert_eq!(texts.len(), accepted_hostile);
    assert!(texts.iter().all(|t| *t == "<script>alert('x')</script>"), "text kept verbatim: {texts:?}");

    let metrics = reqwest::get(node.url("/metrics")).await.expect("metrics").text().await.expect("text");
    for (code, n) in &expected {
        let line = format!("yingji_node_messages_rejected_total{{code=\"{code}\"}} {n}");
        assert!(metrics.contains(&line), "missing `{line}` in\n{metrics}");
    }
    let health = get_json(&node.url("/healthz")).await;
    assert_eq!(health["status"], "ok");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_refuses_bad_parameters_with_a_reason() {
    let broker = spawn_embedded_broker();
    let db = TestDb::new(DbKind::Sqlite).await;
    let node = TestNode::start("api-params", &broker, &db).await;
    for path in [
        "/api/v1/readings?limit=0",
        "/api/v1/readings?limit=100001",
        "/api/v1/reports?since=yesterday",
        "/api/v1/readings?cursor=!!",
        "/api/v1/devices?cursor=eyJ4Ijox",
    ] {
        let response = reqwest::get(node.url(path)).await.expect("request");
        assert_eq!(response.status(), 400, "{path}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{path}: {body}");
    }
    let missing = reqwest::get(node.url("/api/v1/media/a/b/c")).await.expect("request");
    assert_eq!(missing.status(), 404);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_is_kept_with_its_type_and_linked_to_its_report() {
    let broker = spawn_embedded_broker();
    let db = TestDb::new(DbKind::Sqlite).await;
    let node = TestNode::start("media-node", &broker, &db).await;
    let mut publisher = Publisher::connect(&broker, "media-pub").await;
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    png.extend_from_slice(&[7u8; 1000]);
    publisher.publish("yingji/v1/report/cam-1", make::report("r-img", "inc-img", "330302", 5)).await;
    publisher.publish("yingji/v1/media/cam-1/r-img", png.clone()).await;
    // The same image again (a QoS 1 resend) is stored once.
    publisher.publish("yingji/v1/media/cam-1/r-img", png.clone()).await;
    publisher.wait_acked(Duration::from_secs(30)).await;
    let report = eventually(Duration::from_secs(30), "the report with its image", || async {
        let page = get_json(&node.url("/api/v1/reports?incident=inc-img")).await;
        let r = page["items"].as_array()?.first()?.clone();
        (r["media"].as_array()?.len() == 1).then_some(r)
    })
    .await;
    let sha = report["media"][0].as_str().expect("sha256").to_owned();
    let response = reqwest::get(node.url(&format!("/api/v1/media/cam-1/r-img/{sha}"))).await.expect("media");
    assert_eq!(response.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("image/png"));
    assert_eq!(response.headers().get("x-content-type-options").and_then(|v| v.to_str().ok()), Some("nosniff"));
    assert_eq!(response.bytes().await.expect("bytes").as_ref(), png.as_slice());
    assert_eq!(node.store.counts().await.expect("counts").media, 1);
    node.shutdown().await;
}
