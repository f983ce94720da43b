//! Drills end to end: the short scenario played by the simulator against a platform it starts,
//! ending with statistics equal to the truth and every order answered.

use std::net::SocketAddr;
use std::time::Duration;

use yingji_simulator::drill::{self, DrillOptions};
use yingji_simulator::eval::Evaluation;
use yingji_simulator::platform::{EmbeddedSpec, Platform};
use yingji_simulator::scenario::Scenario;
use yingji_tests::{DbKind, Mosquitto, TestDb, external_broker_available, init_logging};

fn short() -> Scenario {
    Scenario::load(&yingji_simulator::demo::shipped("short.toml")).expect("the short scenario loads")
}

async fn play(mqtt: Option<yingji_node::config::MqttUrl>, hub_db: Option<String>) -> Evaluation {
    init_logging();
    let scenario = short();
    let dir = tempfile::tempdir().expect("tempdir");
    let speed = 60.0;
    let spec = EmbeddedSpec {
        mqtt,
        hub_db,
        data_dir: dir.path().join("data"),
        hub_http: SocketAddr::from(([127, 0, 0, 1], 0)),
        exercise_console: true,
        ack_within_s: yingji_simulator::cli::ack_within_s(speed),
    };
    let platform = Platform::start_embedded(&scenario, &spec).await.expect("the platform starts");
    let options = DrillOptions {
        seed: 7,
        speed,
        out: Some(dir.path().join("out")),
        quiet: true,
        connections: 2,
        officer_delay: Duration::from_millis(500),
        settle: Duration::from_secs(90),
    };
    let evaluation = drill::run(&scenario, &platform, &options).await.expect("the drill runs");
    // The evaluation is the hub's drill result too (the console lists it).
    let stored: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v1/drills/{}", platform.hub_url, evaluation.id))
        .bearer_auth(&platform.token)
        .send()
        .await
        .expect("GET the drill")
        .json()
        .await
        .expect("JSON");
    assert_eq!(stored["passed"], evaluation.passed, "{stored}");
    platform.stop().await.expect("the platform stops cleanly");
    assert!(dir.path().join("out/evaluation.json").is_file() && dir.path().join("out/report.html").is_file());
    evaluation
}

fn assert_drill_passed(e: &Evaluation) {
    let s = &e.statistics;
    assert!(s.divisions > 0 && s.indicators > 0, "nothing was compared: {s:?}");
    assert!(s.mismatches.is_empty(), "statistics differ from the truth: {:#?}", s.mismatches);
    assert!(e.passed);
    assert!(e.orders.issued > 0, "the drill issued no order: {:?}", e.orders);
    assert!(e.orders.unanswered.is_empty(), "orders neither acknowledged nor escalated: {:?}", e.orders);
    assert_eq!(e.orders.refused_by_teams, 0, "a genuine order was refused by its team");
    assert!(e.report_latency_ms.n > 0, "no report was seen arriving at the hub");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_drill_on_embedded_brokers_and_sqlite_matches_the_truth() {
    let evaluation = play(None, None).await;
    assert_drill_passed(&evaluation);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_drill_on_mosquitto_and_a_postgresql_hub_matches_the_truth() {
    if !external_broker_available() || !yingji_tests::db_kinds().contains(&DbKind::Postgres) {
        eprintln!("YINGJI_TEST_MQTT_URL and YINGJI_TEST_PG_URL are needed for this case (CI sets them)");
        return;
    }
    let mosquitto = Mosquitto::start();
    let db = TestDb::new(DbKind::Postgres).await;
    let evaluation = play(Some(mosquitto.url.clone()), Some(db.url.clone())).await;
    assert_drill_passed(&evaluation);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drill_against_a_running_platform_matches_the_truth() {
    // A platform started beforehand (here in-process, on one shared broker whose nodes listen
    // under their field mounts), then driven as `yingji-sim drill --hub URL --mqtt URL` does.
    init_logging();
    let scenario = short();
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = yingji_tests::spawn_embedded_broker();
    let spec = EmbeddedSpec {
        mqtt: Some(broker.clone()),
        hub_db: None,
        data_dir: dir.path().join("data"),
        hub_http: SocketAddr::from(([127, 0, 0, 1], 0)),
        exercise_console: true,
        ack_within_s: 10,
    };
    let running = Platform::start_embedded(&scenario, &spec).await.expect("the platform starts");
    let brokers = scenario
        .nodes
        .iter()
        .map(|n| {
            let field = yingji_simulator::platform::FieldBroker { url: broker.clone(), mount: format!("n/{}/", n.id) };
            (n.id.clone(), field)
        })
        .collect();
    let external = Platform::external(&running.hub_url, &running.token, brokers);
    external.load_resources(&scenario).await.expect("resources import again, idempotently");
    let options = DrillOptions {
        seed: 11,
        speed: 60.0,
        out: None,
        quiet: true,
        connections: 1,
        officer_delay: Duration::from_millis(500),
        settle: Duration::from_secs(90),
    };
    let evaluation = drill::run(&scenario, &external, &options).await.expect("the drill runs");
    external.stop().await.expect("an external platform has nothing of ours to stop");
    running.stop().await.expect("the platform stops cleanly");
    assert_drill_passed(&evaluation);
}
