//! The node's MQTT connection: a taken port for the embedded broker is a clear error, and after
//! a broker restart (sessions lost) the node reconnects, subscribes again and takes in data.

use std::time::Duration;

use yingji_node::Node;
use yingji_node::config::{Broker, Config, MqttUrl};
use yingji_tests::{
    DbKind, Mosquitto, Publisher, TestDb, TestNode, eventually, external_broker_available, get_json, make,
};

#[tokio::test]
async fn a_taken_embedded_broker_port_says_how_to_use_the_running_broker() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let db = TestDb::new(DbKind::Sqlite).await;
    let mut config =
        Config::for_tests("taken", MqttUrl { host: "127.0.0.1".into(), port: 1, tls: false }, db.url.clone());
    config.broker = Broker::Embedded(addr);
    let err = Node::build(config).await.err().expect("refused");
    let message = format!("{err:#}");
    assert!(
        message.contains("already in use")
            && message.contains("--mqtt mqtt://")
            && message.contains("--embedded-broker"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_broker_restart_the_node_subscribes_again() {
    if !external_broker_available() {
        return;
    }
    let mut broker = Mosquitto::start();
    let db = TestDb::new(DbKind::Sqlite).await;
    let mut config = Config::for_tests("restart", broker.url.clone(), db.url.clone());
    config.reconnect_max = Duration::from_millis(500);
    let node = TestNode::spawn(config).await;
    let mut publisher = Publisher::connect(&broker.url, "restart-pub-1").await;
    publisher.publish("yingji/v1/report/u1", make::report("before", "restart", "330302", 1)).await;
    publisher.wait_acked(Duration::from_secs(10)).await;
    eventually(Duration::from_secs(10), "the first report", || async {
        (node.store.counts().await.ok()?.reports == 1).then_some(())
    })
    .await;

    // The test broker keeps nothing across a restart: the node's session and subscriptions are gone.
    broker.restart();
    let health = node.url("/healthz");
    eventually(Duration::from_secs(30), "the node to subscribe again", || async {
        let body = get_json(&health).await;
        (body["subscribed"] == true && body["broker"] == "connected").then_some(())
    })
    .await;
    let mut publisher = Publisher::connect(&broker.url, "restart-pub-2").await;
    publisher.publish("yingji/v1/report/u1", make::report("after", "restart", "330302", 2)).await;
    publisher.wait_acked(Duration::from_secs(10)).await;
    eventually(Duration::from_secs(30), "the report sent after the restart", || async {
        (node.store.counts().await.ok()?.reports == 2).then_some(())
    })
    .await;
    node.shutdown().await;
}
