//! Store-and-forward: every summarized event reaches the hub side exactly once by id, whatever
//! the hub link does — a receiver that drops messages, a hub broker that is down for 30 s, a
//! node killed with events still in its outbox.

use std::collections::HashSet;
use std::time::Duration;

use yingji_node::config::Config;
use yingji_tests::{
    DbKind, HubReceiver, Mosquitto, NodeProcess, Publisher, TestDb, TestNode, eventually, external_broker_available,
    free_port, get_json, make, spawn_embedded_broker,
};

fn report_event_ids(node: &str, device: &str, n: usize) -> HashSet<String> {
    (0..n).map(|i| format!("{node}:report:{device}:r-{i}")).collect()
}

async fn publish_reports(publisher: &mut Publisher, device: &str, range: std::ops::Range<usize>) {
    for i in range {
        publisher
            .publish(
                format!("yingji/v1/report/{device}"),
                make::report(&format!("r-{i}"), "inc-fwd", "330302", i as i64),
            )
            .await;
    }
}

async fn outbox_empty(node: &TestNode) {
    let url = node.url("/metrics");
    eventually(Duration::from_secs(30), "an empty outbox", || async {
        let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
        let depth = crate::ingest::metric(&text, "yingji_node_outbox_events")?;
        (depth == 0.0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_reaches_the_hub_once_even_when_every_third_is_dropped() {
    let broker = spawn_embedded_broker();
    let receiver = HubReceiver::start(&broker, "hub-dropper", Some(3)).await;
    let db = TestDb::new(DbKind::Sqlite).await;
    let node = TestNode::start("fwd-drop", &broker, &db).await;
    let mut publisher = Publisher::connect(&broker, "fwd-drop-pub").await;
    publish_reports(&mut publisher, "unit-1", 0..300).await;
    publisher.wait_acked(Duration::from_secs(30)).await;
    let want = report_event_ids("fwd-drop", "unit-1", 300);
    eventually(Duration::from_secs(60), "all 300 report events despite drops", || async {
        let ids = receiver.ids_of("report");
        (ids.len() >= 300).then_some(())
    })
    .await;
    assert_eq!(receiver.ids_of("report"), want, "exactly the report events, once each by id");
    assert!(receiver.deliveries() > 300, "some deliveries were dropped and sent again");
    outbox_empty(&node).await;
    let one = receiver.events().into_iter().find(|e| e["id"] == "fwd-drop:report:unit-1:r-7").expect("r-7");
    assert_eq!(
        (one["kind"].as_str(), one["region"].as_str(), one["incident"].as_str()),
        (Some("report"), Some("330302"), Some("inc-fwd"))
    );
    assert_eq!(one["body"]["figures"]["affected"], 7);
    let status = get_json(&node.url("/healthz")).await;
    assert_eq!(status["status"], "ok");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_broker_outage_of_30_s_loses_nothing() {
    if !external_broker_available() {
        return;
    }
    let field = spawn_embedded_broker();
    let mut hub = Mosquitto::start();
    let db = TestDb::new(DbKind::Sqlite).await;
    let mut config = Config::for_tests("fwd-outage", field.clone(), db.url.clone());
    config.hub = Some(hub.url.clone());
    config.reconnect_max = Duration::from_millis(500);
    let node = TestNode::spawn(config).await;
    let receiver = HubReceiver::start(&hub.url, "hub-outage", None).await;
    let mut publisher = Publisher::connect(&field, "fwd-outage-pub").await;

    publish_reports(&mut publisher, "unit-2", 0..1000).await;
    hub.stop();
    // 3,000 reports flow during 30 s with the hub broker down.
    let started = tokio::time::Instant::now();
    let mut pace = tokio::time::interval(Duration::from_millis(100));
    for chunk in 0..30 {
        pace.tick().await;
        publish_reports(&mut publisher, "unit-2", 1000 + chunk * 100..1000 + (chunk + 1) * 100).await;
    }
    publisher.wait_acked(Duration::from_secs(30)).await;
    tokio::time::sleep_until(started + Duration::from_secs(30)).await;
    hub.restart();
    publish_reports(&mut publisher, "unit-2", 4000..5000).await;
    publisher.wait_acked(Duration::from_secs(30)).await;
    // The receiver's own session died with the broker; it comes back like the node does.
    let receiver_again = HubReceiver::start(&hub.url, "hub-outage-2", None).await;
    let want = report_event_ids("fwd-outage", "unit-2", 5000);
    eventually(Duration::from_secs(60), "all 5,000 report events after the outage", || async {
        let mut ids = receiver.ids_of("report");
        ids.extend(receiver_again.ids_of("report"));
        (ids.len() >= 5000).then_some(())
    })
    .await;
    let mut ids = receiver.ids_of("report");
    ids.extend(receiver_again.ids_of("report"));
    assert_eq!(ids, want, "every event exactly once by id");
    outbox_empty(&node).await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_a_full_outbox_sends_it_after_restart() {
    if !external_broker_available() {
        return;
    }
    let field = Mosquitto::start();
    let mut hub = Mosquitto::start();
    hub.stop();
    let db = TestDb::new(DbKind::Sqlite).await;
    let http = free_port();
    let (field_port, hub_port) = (field.url.port, hub.url.port);
    let args = |http: u16| {
        vec![
            "--id".to_owned(),
            "fwd-kill".to_owned(),
            "--mqtt".to_owned(),
            format!("mqtt://127.0.0.1:{field_port}"),
            "--hub-mqtt".to_owned(),
            format!("mqtt://127.0.0.1:{hub_port}"),
            "--db".to_owned(),
            db.url.clone(),
            "--http".to_owned(),
            format!("127.0.0.1:{http}"),
        ]
    };
    let start = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        NodeProcess::start(&refs).expect("start yingji-node")
    };
    let mut node = start(args(http));
    NodeProcess::wait_subscribed(http).await;
    let mut publisher = Publisher::connect(&field.url, "fwd-kill-pub").await;
    publish_reports(&mut publisher, "unit-3", 0..1000).await;
    publisher.wait_acked(Duration::from_secs(30)).await;
    let metrics = format!("http://127.0.0.1:{http}/metrics");
    eventually(Duration::from_secs(30), "1,000 reports stored, their events in the outbox", || async {
        let text = reqwest::get(&metrics).await.ok()?.text().await.ok()?;
        let stored = crate::ingest::metric(&text, "yingji_node_reports_new_total")?;
        // 1,000 report events and the statistics snapshots of their divisions.
        let waiting = crate::ingest::metric(&text, "yingji_node_outbox_events")?;
        (stored == 1000.0 && waiting >= 1000.0).then_some(())
    })
    .await;
    node.kill();

    hub.restart();
    let receiver = HubReceiver::start(&hub.url, "hub-after-kill", None).await;
    let _node = start(args(http));
    let want = report_event_ids("fwd-kill", "unit-3", 1000);
    eventually(Duration::from_secs(60), "all 1,000 events after the restart", || async {
        (receiver.ids_of("report").len() >= 1000).then_some(())
    })
    .await;
    assert_eq!(receiver.ids_of("report"), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_status_is_retained_and_its_will_says_offline() {
    if !external_broker_available() {
        return;
    }
    let broker = Mosquitto::start();
    let db = TestDb::new(DbKind::Sqlite).await;
    let http = free_port();
    let mut node = NodeProcess::start(&[
        "--id",
        "status-node",
        "--mqtt",
        &format!("mqtt://127.0.0.1:{}", broker.url.port),
        "--db",
        &db.url,
        "--http",
        &format!("127.0.0.1:{http}"),
        "--mqtt-keep-alive-s",
        "5",
    ])
    .expect("start yingji-node");
    NodeProcess::wait_subscribed(http).await;
    // A late subscriber gets the retained status.
    let status = |online: bool| {
        let url = broker.url.clone();
        async move {
            let mut watcher = yingji_tests::Subscriber::connect(
                &url,
                &format!("status-watch-{online}"),
                "yingji/v1/node/status-node/status",
            )
            .await;
            loop {
                let (_, payload) = watcher.next(Duration::from_secs(30)).await.expect("a status message");
                let value: serde_json::Value = serde_json::from_slice(&payload).expect("status JSON");
                if value["online"] == online {
                    return value;
                }
            }
        }
    };
    let up = eventually(Duration::from_secs(30), "the retained online status", || async {
        tokio::time::timeout(Duration::from_secs(5), status(true)).await.ok()
    })
    .await;
    assert!(up["version"].is_string() && up["at"].is_string(), "{up}");
    // Killed without a goodbye, the broker publishes the will, retained.
    node.kill();
    let down = status(false).await;
    assert_eq!(down["online"], false);
}
