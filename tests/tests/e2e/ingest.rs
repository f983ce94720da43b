//! Ingest end to end: what an ordinary MQTT client publishes at QoS 1 is stored exactly once,
//! through the embedded broker and through Mosquitto, on SQLite and PostgreSQL.

use std::time::Duration;

use yingji_node::config::MqttUrl;
use yingji_tests::{
    Mosquitto, Publisher, TestDb, TestNode, db_kinds, eventually, external_broker_available, get_json, make,
    spawn_embedded_broker,
};

const REPORTS: usize = 1_000;
const PACKS: usize = 2_000;
const PER_PACK: usize = 5; // 10,000 readings

/// Publishes 1,000 reports and 10,000 readings, checks the rows, then publishes everything
/// again in another order and checks that nothing changed.
async fn exact_rows(broker: &MqttUrl, db: &TestDb, label: &str) {
    let node = TestNode::start(&format!("n-{}", uuid::Uuid::now_v7().simple()), broker, db).await;
    let mut publisher = Publisher::connect(broker, &format!("pub-{}", uuid::Uuid::now_v7().simple())).await;

    let reports: Vec<(String, Vec<u8>)> = (0..REPORTS)
        .map(|i| {
            let device = format!("unit-{}", i % 20);
            (
                format!("yingji/v1/report/{device}"),
                make::report(&format!("r-{i}"), "typhoon-2026-14", "330302", i as i64),
            )
        })
        .collect();
    let t0 = yingji_tests::recent_t0();
    let packs: Vec<(String, Vec<u8>)> = (0..PACKS)
        .map(|i| {
            let device = format!("gauge-{}", i % 100);
            let t0 = t0 + (i / 100 * PER_PACK) as f64;
            (format!("yingji/v1/senml/{device}"), make::rain_pack(&device, t0, PER_PACK))
        })
        .collect();
    for (topic, payload) in reports.iter().chain(packs.iter()) {
        publisher.publish(topic.clone(), payload.clone()).await;
    }
    publisher.wait_acked(Duration::from_secs(60)).await;

    let want = (REPORTS as i64, (PACKS * PER_PACK) as i64);
    let counts = eventually(Duration::from_secs(60), "all rows stored", || async {
        let c = node.store.counts().await.ok()?;
        ((c.reports, c.readings) == want).then_some(c)
    })
    .await;
    assert_eq!(counts.devices, 120, "{label}: 20 reporting units and 100 gauges");

    // Everything again, in reverse order: duplicates and reordering change nothing.
    for (topic, payload) in packs.iter().rev().chain(reports.iter().rev()) {
        publisher.publish(topic.clone(), payload.clone()).await;
    }
    publisher.wait_acked(Duration::from_secs(60)).await;
    let metrics_url = node.url("/metrics");
    eventually(Duration::from_secs(60), "duplicates counted", || async {
        let text = reqwest::get(&metrics_url).await.ok()?.text().await.ok()?;
        let dups = metric(&text, "yingji_node_duplicates_total")?;
        (dups >= (REPORTS + PACKS * PER_PACK) as f64).then_some(())
    })
    .await;
    let c = node.store.counts().await.expect("counts");
    assert_eq!((c.reports, c.readings), want, "{label}: duplicates added rows");

    // The API pages through the same rows.
    let mut total = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut url = node.url("/api/v1/readings?limit=3000");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = get_json(&url).await;
        total += page["items"].as_array().map(Vec::len).unwrap_or(0);
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(total, PACKS * PER_PACK, "{label}: readings through the API");
    let one = get_json(&node.url("/api/v1/reports?incident=typhoon-2026-14&region=330302&limit=1")).await;
    assert_eq!(one["items"][0]["incident"], "typhoon-2026-14");
    assert!(one["next"].is_string(), "{label}: a cursor for the next page");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_stored_once_through_the_embedded_broker() {
    let broker = spawn_embedded_broker();
    for kind in db_kinds() {
        let db = TestDb::new(kind).await;
        exact_rows(&broker, &db, &format!("embedded/{kind:?}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_stored_once_through_mosquitto() {
    if !external_broker_available() {
        return;
    }
    // A Mosquitto of the test's own (lossless queue settings, nobody else's traffic).
    let broker = Mosquitto::start();
    for kind in db_kinds() {
        let db = TestDb::new(kind).await;
        exact_rows(&broker.url, &db, &format!("mosquitto/{kind:?}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_external_broker_carries_reports_and_rejects() {
    if !external_broker_available() {
        return;
    }
    let url = yingji_node::config::MqttUrl::parse(&std::env::var("YINGJI_TEST_MQTT_URL").unwrap_or_default())
        .expect("YINGJI_TEST_MQTT_URL");
    // Other tests' nodes may share this broker: everything here has ids of its own and is
    // looked up by them.
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let db = TestDb::new(db_kinds().pop().unwrap_or(yingji_tests::DbKind::Sqlite)).await;
    let node = TestNode::start(&format!("n-{tag}"), &url, &db).await;
    let device = format!("dev-{tag}");
    let mut rejects =
        yingji_tests::Subscriber::connect(&url, &format!("sub-{tag}"), &format!("yingji/v1/reject/{device}")).await;
    let mut publisher = Publisher::connect(&url, &format!("pub-{tag}")).await;
    let incident = format!("inc-{tag}");
    // The node subscribes once connected; publish until the first report is stored.
    eventually(Duration::from_secs(30), "the node to subscribe", || {
        let topic = format!("yingji/v1/report/{device}");
        let payload = make::report("r-0", &incident, "330302", 1).to_vec();
        let store = node.store.clone();
        let incident = incident.clone();
        let client = publisher.client.clone();
        async move {
            client.publish(topic, rumqttc::QoS::AtLeastOnce, false, payload).await.ok()?;
            let page = store
                .reports(&yingji_node::store::ReportQuery { incident: Some(incident), limit: 10, ..Default::default() })
                .await
                .ok()?;
            (!page.items.is_empty()).then_some(())
        }
    })
    .await;
    for i in 1..50 {
        publisher
            .publish(format!("yingji/v1/report/{device}"), make::report(&format!("r-{i}"), &incident, "330302", i))
            .await;
    }
    publisher.publish(format!("yingji/v1/report/{device}"), b"{not json".to_vec()).await;
    publisher.wait_acked(Duration::from_secs(30)).await;
    let (topic, payload) = rejects.next(Duration::from_secs(30)).await.expect("a reject notice");
    assert_eq!(topic, format!("yingji/v1/reject/{device}"));
    let notice: serde_json::Value = serde_json::from_slice(&payload).expect("notice JSON");
    assert_eq!(notice["code"], "invalid_json");
    eventually(Duration::from_secs(30), "50 reports", || async {
        let page = node
            .store
            .reports(&yingji_node::store::ReportQuery {
                incident: Some(incident.clone()),
                limit: 100,
                ..Default::default()
            })
            .await
            .ok()?;
        (page.items.len() == 50).then_some(())
    })
    .await;
    node.shutdown().await;
}

/// The value of an unlabelled metric in an OpenMetrics text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
}
