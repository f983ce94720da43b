//! Simulated teams over MQTT: a tampered order is refused and never acted on; a genuine one is
//! answered as the team's behaviour says, and a resend gets the same answers again.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use yingji_node::config::MqttUrl;
use yingji_proto::Location;
use yingji_proto::dispatch::{DispatchOrder, ResourceLine};
use yingji_simulator::hazard::LatLon;
use yingji_simulator::model::{Behaviour, TeamSim};
use yingji_simulator::platform::FieldBroker;
use yingji_simulator::scenario::Disposition;
use yingji_simulator::teams::Teams;

fn broker() -> MqttUrl {
    let port = TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
    yingji_node::mqtt::start_embedded_broker(([127, 0, 0, 1], port).into()).expect("embedded broker");
    MqttUrl { host: "127.0.0.1".into(), port, tls: false }
}

fn team(id: &str, always: Disposition) -> TeamSim {
    TeamSim {
        id: id.into(),
        name: id.into(),
        node: "n1".into(),
        home: LatLon { lat: 28.0, lon: 120.6 },
        capabilities: vec!["water_rescue".into()],
        behaviour: Behaviour {
            always: Some(always),
            weights: [1.0, 0.0, 0.0],
            ack_s: [1.0, 2.0],
            muster_s: [1.0, 2.0],
            speed_kmh: 60.0,
            work_s: [10.0, 20.0],
        },
    }
}

fn order(id: &str, team: &str) -> DispatchOrder {
    DispatchOrder {
        id: id.to_owned(),
        incident: "typhoon-drill".into(),
        team: team.to_owned(),
        node: "n1".into(),
        task: "转移群众 / evacuate".into(),
        destination: Location { lat: 28.02, lon: 120.65 },
        region: "810101".into(),
        resources: vec![ResourceLine { item: "assault boat".into(), qty: 2 }],
        issued_at: chrono::Utc::now().fixed_offset(),
        ack_within_s: 300,
        exercise: true,
        sig: String::new(),
    }
}

async fn listener(url: &MqttUrl, filter: &str) -> tokio::sync::mpsc::UnboundedReceiver<(String, serde_json::Value)> {
    let mut options = MqttOptions::new("test-listener", url.host.clone(), url.port);
    options.set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    client.subscribe(filter, QoS::AtLeastOnce).await.expect("subscribe");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        while let Ok(event) = eventloop.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let value = serde_json::from_slice(&p.payload).unwrap_or_default();
                    let _ = tx.send((p.topic.clone(), value));
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx).await.expect("subscribed in time").expect("subscribed");
    rx
}

async fn publisher(url: &MqttUrl) -> AsyncClient {
    let (client, mut eventloop) = AsyncClient::new(MqttOptions::new("test-hub-side", url.host.clone(), url.port), 100);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_order_is_refused_and_a_genuine_one_answered() {
    let url = broker();
    let key = SigningKey::from_bytes(&[42; 32]);
    let brokers: BTreeMap<_, _> = [("n1".to_owned(), FieldBroker { url: url.clone(), mount: String::new() })].into();
    let teams =
        Teams::start(&brokers, &[team("t-1", Disposition::Accept)], vec![key.verifying_key()], 7, 100.0, "test")
            .await
            .expect("teams start");
    let mut acks = listener(&url, "yingji/v1/ack/+").await;
    let hub = publisher(&url).await;

    // Tampered: signed, then the task changed.
    let mut tampered =
        serde_json::to_value(yingji_proto::sign::sign_order(&order("o-bad", "t-1"), &key)).expect("json");
    tampered["task"] = "把物资送到别处 / deliver elsewhere".into();
    hub.publish("yingji/v1/dispatch/t-1", QoS::AtLeastOnce, false, serde_json::to_vec(&tampered).expect("json"))
        .await
        .expect("publish");
    // Signed by a key the hub does not have.
    let forged = yingji_proto::sign::sign_order(&order("o-forged", "t-1"), &SigningKey::from_bytes(&[7; 32]));
    hub.publish("yingji/v1/dispatch/t-1", QoS::AtLeastOnce, false, serde_json::to_vec(&forged).expect("json"))
        .await
        .expect("publish");
    // Genuine, sent twice (a resend).
    let genuine = serde_json::to_vec(&yingji_proto::sign::sign_order(&order("o-good", "t-1"), &key)).expect("json");
    for _ in 0..2 {
        hub.publish("yingji/v1/dispatch/t-1", QoS::AtLeastOnce, false, genuine.clone()).await.expect("publish");
    }

    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.iter().any(|(_, a): &(String, serde_json::Value)| a["status"] == "completed") {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let (topic, ack) = tokio::time::timeout(left, acks.recv()).await.expect("acks in time").expect("ack");
        assert_eq!(topic, "yingji/v1/ack/t-1");
        seen.push((topic, ack));
    }
    assert!(seen.iter().all(|(_, a)| a["dispatch"] == "o-good"), "only the genuine order is answered: {seen:?}");
    let statuses: Vec<&str> = seen.iter().filter_map(|(_, a)| a["status"].as_str()).collect();
    for status in ["received", "accepted", "en_route", "on_scene", "completed"] {
        assert!(statuses.contains(&status), "{status} missing from {statuses:?}");
    }
    // The resend was answered with the same ack ids, never a second plan.
    let mut ids: Vec<&str> = seen.iter().filter_map(|(_, a)| a["id"].as_str()).collect();
    let total = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert!(total >= ids.len() && ids.len() == 5, "{seen:?}");
    let counts = &teams.counts;
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(counts.refused.load(Relaxed), 2, "the tampered and the forged order are refused");
    assert_eq!(counts.orders.load(Relaxed), 1);
    assert_eq!(counts.duplicates.load(Relaxed), 1);
    teams.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declining_and_absent_teams_answer_as_their_behaviour_says() {
    let url = broker();
    let key = SigningKey::from_bytes(&[42; 32]);
    let brokers: BTreeMap<_, _> = [("n1".to_owned(), FieldBroker { url: url.clone(), mount: String::new() })].into();
    let teams = Teams::start(
        &brokers,
        &[team("t-no", Disposition::Decline), team("t-gone", Disposition::NoShow)],
        vec![key.verifying_key()],
        7,
        100.0,
        "test2",
    )
    .await
    .expect("teams start");
    let mut acks = listener(&url, "yingji/v1/ack/+").await;
    let hub = publisher(&url).await;
    for (id, t) in [("o-1", "t-gone"), ("o-2", "t-no")] {
        let bytes = serde_json::to_vec(&yingji_proto::sign::sign_order(&order(id, t), &key)).expect("json");
        hub.publish(format!("yingji/v1/dispatch/{t}"), QoS::AtLeastOnce, false, bytes).await.expect("publish");
    }
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !seen.iter().any(|a: &serde_json::Value| a["status"] == "declined") {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let (_, ack) = tokio::time::timeout(left, acks.recv()).await.expect("acks in time").expect("ack");
        seen.push(ack);
    }
    assert!(seen.iter().all(|a| a["team"] == "t-no"), "the absent team never answers: {seen:?}");
    let declined = seen.iter().find(|a| a["status"] == "declined").expect("declined");
    assert!(declined["note"].as_str().is_some_and(|n| !n.is_empty()), "a decline gives a reason: {declined}");
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(teams.counts.no_shows.load(Relaxed), 1);
    assert_eq!(teams.counts.declined.load(Relaxed), 1);
    teams.stop().await;
}
