//! Crash: the node process is killed with SIGKILL in the middle of 20,000 QoS 1 messages sent
//! through Mosquitto, then restarted; every message ends up stored exactly once.

use std::time::Duration;

use yingji_node::store::Store;
use yingji_tests::{
    Mosquitto, NodeProcess, Publisher, TestDb, db_kinds, eventually, external_broker_available, free_port,
};

const MESSAGES: usize = 20_000;

fn start_node(id: &str, broker: &Mosquitto, db: &TestDb, http: u16) -> NodeProcess {
    NodeProcess::start(&[
        "--id",
        id,
        "--mqtt",
        &format!("mqtt://127.0.0.1:{}", broker.url.port),
        "--db",
        &db.url,
        "--http",
        &format!("127.0.0.1:{http}"),
    ])
    .expect("start yingji-node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_nothing_and_counts_nothing_twice() {
    if !external_broker_available() {
        return;
    }
    for kind in db_kinds() {
        let broker = Mosquitto::start();
        let db = TestDb::new(kind).await;
        let id = format!("crash-{}", uuid::Uuid::now_v7().simple());
        let http = free_port();
        let mut node = start_node(&id, &broker, &db, http);
        NodeProcess::wait_subscribed(http).await;
        let store = Store::connect(&db.url).await.expect("open the node's database");

        let url = broker.url.clone();
        let t0 = yingji_tests::recent_t0() - MESSAGES as f64;
        let publishing = tokio::spawn(async move {
            let mut publisher = Publisher::connect(&url, "crash-publisher").await;
            // About 10,000 messages/s: fast, but slow enough that the kill lands mid-stream.
            let mut pace = tokio::time::interval(Duration::from_millis(20));
            for i in 0..MESSAGES {
                let device = format!("g{}", i % 50);
                let pack = format!(
                    r#"[{{"bn":"{device}:","n":"water_level","u":"m","v":{},"t":{}}}]"#,
                    i as f64 / 1000.0,
                    t0 + i as f64
                );
                publisher.publish(format!("yingji/v1/senml/{device}"), pack.into_bytes()).await;
                if i % 200 == 0 {
                    pace.tick().await;
                }
            }
            publisher.wait_acked(Duration::from_secs(120)).await;
        });

        let at_kill = eventually(Duration::from_secs(60), "the node to store a few thousand", || async {
            let n = store.counts().await.ok()?.readings;
            (n >= 3_000).then_some(n)
        })
        .await;
        node.kill();
        eprintln!("{kind:?}: killed the node with {at_kill} of {MESSAGES} readings stored");
        assert!(at_kill < MESSAGES as i64, "{kind:?}: the kill must land mid-stream (stored {at_kill})");

        let mut node = start_node(&id, &broker, &db, http);
        publishing.await.expect("publisher");
        let stored = eventually(Duration::from_secs(120), "all 20,000 readings", || async {
            let n = store.counts().await.ok()?.readings;
            (n >= MESSAGES as i64).then_some(n)
        })
        .await;
        // Each message has its own (device, name, time): more rows than messages would mean
        // something stored twice, fewer that something was lost.
        assert_eq!(stored, MESSAGES as i64, "{kind:?}: exactly once");
        node.kill();
        store.close().await;
    }
}
