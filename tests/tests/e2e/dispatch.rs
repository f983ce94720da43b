//! Dispatch orders down and acknowledgements up through a node: a signed order reaches its
//! team byte for byte, a changed or foreign one never does and the hub is told; a team's
//! acknowledgement reaches the hub and is receipted, a malformed one gets a reject notice.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use yingji_node::config::Config;
use yingji_proto::dispatch::{DispatchOrder, RelayedAck, ResourceLine};
use yingji_proto::sign::{public_key_base64, sign_order};
use yingji_proto::{Limits, Location};
use yingji_tests::{DbKind, HubReceiver, Publisher, Subscriber, TestDb, TestNode, eventually, spawn_embedded_broker};

use crate::ingest::metric;

const WAIT: Duration = Duration::from_secs(30);

/// The hub's current key and the one it is rotating away from; the node trusts both.
fn hub_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn old_hub_key() -> SigningKey {
    SigningKey::from_bytes(&[41; 32])
}

fn order(node: &str, id: &str, team: &str) -> DispatchOrder {
    DispatchOrder {
        id: id.to_owned(),
        incident: "typhoon-2026-14".into(),
        team: team.to_owned(),
        node: node.to_owned(),
        task: "转移东门群众 / evacuate the east gate".into(),
        destination: Location { lat: 28.0215, lon: 120.6543 },
        region: "330302".into(),
        resources: vec![
            ResourceLine { item: "assault boat".into(), qty: 4 },
            ResourceLine { item: "life jacket".into(), qty: 120 },
        ],
        issued_at: chrono::Utc::now().fixed_offset(),
        ack_within_s: 300,
        exercise: true,
        sig: String::new(),
    }
}

fn signed(order: &DispatchOrder, key: &SigningKey) -> Value {
    serde_json::to_value(sign_order(order, key)).expect("an order serialises")
}

fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("JSON")
}

/// A node whose hub key file trusts `keys` (none: no `hub_key` at all), on its own broker, with
/// a hub-side receiver.
struct Site {
    id: String,
    broker: yingji_node::config::MqttUrl,
    node: TestNode,
    receiver: HubReceiver,
    publisher: Publisher,
    _db: TestDb,
    _keys: tempfile::TempDir,
}

impl Site {
    async fn start(id: &str, keys: &[&SigningKey]) -> Site {
        let broker = spawn_embedded_broker();
        let receiver = HubReceiver::start(&broker, &format!("{id}-hub"), None).await;
        let db = TestDb::new(DbKind::Sqlite).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::for_tests(id, broker.clone(), db.url.clone());
        if !keys.is_empty() {
            let path = dir.path().join("hub.keys");
            let mut text = String::from("# the hub's public keys, newest first\n\n");
            for k in keys {
                text.push_str(&format!("{}  # rotation\n", public_key_base64(&k.verifying_key())));
            }
            std::fs::write(&path, text).expect("write the key file");
            config.hub_key = Some(path);
        }
        let node = TestNode::spawn(config).await;
        let publisher = Publisher::connect(&broker, &format!("{id}-pub")).await;
        let mut site = Site { id: id.to_owned(), broker, node, receiver, publisher, _db: db, _keys: dir };
        site.wait_for_the_dispatch_subscription().await;
        site
    }

    /// The hub link subscribes once it connects, apart from the field link the harness waits
    /// for: probe with unsigned orders until one is refused (and so was received).
    async fn wait_for_the_dispatch_subscription(&mut self) {
        let topic = yingji_proto::topic::node_dispatch(&self.id);
        for n in 0.. {
            let probe = format!("probe-{n}");
            self.publisher.publish(topic.clone(), bytes(&json!({"id": probe}))).await;
            let seen = yingji_tests::poll_until(Duration::from_millis(500), || async {
                self.refusals().iter().any(|e| e["body"]["order"] == probe.as_str()).then_some(())
            })
            .await;
            if seen.is_some() {
                return;
            }
            assert!(n < 60, "the node never took a dispatch order");
        }
    }

    /// Publishes on the hub side, as the hub does.
    async fn send_order(&mut self, payload: Vec<u8>) {
        self.publisher.publish(yingji_proto::topic::node_dispatch(&self.id), payload).await;
    }

    /// The `dispatch_refused` warning events the hub has received.
    fn refusals(&self) -> Vec<Value> {
        self.receiver
            .events()
            .into_iter()
            .filter(|e| e["kind"] == "warning" && e["body"]["type"] == "dispatch_refused")
            .collect()
    }

    async fn metrics(&self) -> String {
        reqwest::get(self.node.url("/metrics")).await.expect("metrics").text().await.expect("text")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_order_reaches_its_team_byte_for_byte() {
    let (new, old) = (hub_key(), old_hub_key());
    let mut site = Site::start("disp-ok", &[&new, &old]).await;
    let mut team = Subscriber::connect(&site.broker, "disp-ok-team", "yingji/v1/dispatch/+").await;

    // Any JSON spelling of a signed order verifies; the team gets exactly the bytes the hub sent.
    let pretty = serde_json::to_string_pretty(&signed(&order("disp-ok", "o-1", "zj-rescue-3"), &new))
        .expect("JSON")
        .into_bytes();
    site.send_order(pretty.clone()).await;
    let (topic, payload) = team.next(WAIT).await.expect("the order reaches its team");
    assert_eq!(topic, "yingji/v1/dispatch/zj-rescue-3");
    assert_eq!(payload, pretty, "relayed byte for byte");
    let verified =
        yingji_proto::sign::verify_order(&payload, &[new.verifying_key()], chrono::Utc::now(), &Limits::default())
            .expect("the team can verify what it got");
    assert_eq!(verified.id, "o-1");

    // An order signed with the key being rotated away still goes through.
    let by_old = bytes(&signed(&order("disp-ok", "o-2", "zj-rescue-4"), &old));
    site.send_order(by_old.clone()).await;
    assert_eq!(team.next(WAIT).await, Some(("yingji/v1/dispatch/zj-rescue-4".to_owned(), by_old)));

    let text = site.metrics().await;
    assert_eq!(metric(&text, "yingji_node_dispatch_relayed_total"), Some(2.0), "{text}");
    site.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_or_foreign_orders_never_reach_a_team_and_the_hub_is_told() {
    let key = hub_key();
    let mut site = Site::start("disp-bad", &[&key]).await;
    let mut teams = Subscriber::connect(&site.broker, "disp-bad-teams", "yingji/v1/dispatch/#").await;

    // Each case: a valid signed order of its own id, then one change; (order id after the
    // change, team after the change, the code the node must give).
    type Change = fn(&mut Value);
    let changes: Vec<(&str, Change, &str, &str)> = vec![
        ("o-id-a", |o| o["id"] = json!("o-id-b"), "o-id-b", "bad_signature"),
        ("o-team", |o| o["team"] = json!("zj-rescue-9"), "o-team", "bad_signature"),
        ("o-lat", |o| o["destination"]["lat"] = json!(28.0216), "o-lat", "bad_signature"),
        ("o-qty", |o| o["resources"][1]["qty"] = json!(1200), "o-qty", "bad_signature"),
        ("o-task", |o| o["task"] = json!("stand down"), "o-task", "bad_signature"),
        ("o-exercise", |o| o["exercise"] = json!(false), "o-exercise", "bad_signature"),
        ("o-added", |o| o["priority"] = json!("override"), "o-added", "bad_signature"),
        ("o-unsigned", |o| drop(o.as_object_mut().map(|m| m.remove("sig"))), "o-unsigned", "missing_signature"),
        ("o-garbled", |o| o["sig"] = json!("AAAA"), "o-garbled", "bad_signature"),
        ("o-future", |o| o["issued_at"] = json!("2099-01-01T00:00:00Z"), "o-future", "time_in_future"),
    ];
    let mut want: Vec<(String, String)> = Vec::new();
    for (id, change, after, code) in &changes {
        let mut value = signed(&order("disp-bad", id, "zj-rescue-3"), &key);
        change(&mut value);
        site.send_order(bytes(&value)).await;
        want.push(((*after).to_owned(), (*code).to_owned()));
    }
    // A byte flipped in the raw text, not through JSON: "zj-rescue-3" → "zj-rescue-2".
    let text = String::from_utf8(bytes(&signed(&order("disp-bad", "o-byte", "zj-rescue-3"), &key))).expect("UTF-8");
    site.send_order(text.replacen("zj-rescue-3", "zj-rescue-2", 1).into_bytes()).await;
    want.push(("o-byte".into(), "bad_signature".into()));
    // Well signed, but by a key the node does not trust.
    let stranger = SigningKey::from_bytes(&[7; 32]);
    site.send_order(bytes(&signed(&order("disp-bad", "o-stranger", "zj-rescue-3"), &stranger))).await;
    want.push(("o-stranger".into(), "bad_signature".into()));
    // Well signed by the hub, but for another node.
    site.send_order(bytes(&signed(&order("other-node", "o-other", "zj-rescue-3"), &key))).await;
    want.push(("o-other".into(), "device_mismatch".into()));
    // Not JSON at all.
    site.send_order(b"\xff\xfe not an order".to_vec()).await;

    let got = eventually(WAIT, "a dispatch_refused warning for every bad order", || async {
        let refusals = site.refusals();
        let found: Vec<(String, String)> = want
            .iter()
            .filter_map(|(id, _)| {
                refusals
                    .iter()
                    .find(|e| e["body"]["order"] == id.as_str())
                    .map(|e| (id.clone(), e["body"]["code"].as_str().unwrap_or_default().to_owned()))
            })
            .collect();
        let garbage = refusals.iter().any(|e| e["body"]["order"].is_null() && e["body"]["code"] == "invalid_json");
        (found.len() == want.len() && garbage).then_some(found)
    })
    .await;
    assert_eq!(got, want, "each bad order refused with its code");
    let one = site.refusals().into_iter().find(|e| e["body"]["order"] == "o-team").expect("o-team");
    assert_eq!(one["node"], "disp-bad");
    assert_eq!(one["body"]["team"], "zj-rescue-9", "the team the changed order named");
    assert_eq!((one["region"].as_str(), one["exercise"].as_bool()), (Some("330302"), Some(true)));
    assert_eq!(one["incident"], "typhoon-2026-14");
    assert!(one["body"]["reason"].as_str().is_some_and(|r| !r.is_empty()));

    // Orders are handled in the order they come: once a good order sent after all the bad ones
    // has reached its team, nothing else did before it.
    let good = bytes(&signed(&order("disp-bad", "o-good", "zj-rescue-3"), &key));
    site.send_order(good.clone()).await;
    assert_eq!(teams.next(WAIT).await, Some(("yingji/v1/dispatch/zj-rescue-3".to_owned(), good)));

    let text = site.metrics().await;
    let refused = |code: &str| metric(&text, &format!("yingji_node_dispatch_refused_total{{code=\"{code}\"}}"));
    assert_eq!(refused("bad_signature"), Some(10.0), "{text}");
    assert_eq!(refused("missing_signature"), Some(1.0));
    assert_eq!(refused("device_mismatch"), Some(1.0));
    assert_eq!(metric(&text, "yingji_node_dispatch_relayed_total"), Some(1.0));
    site.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_hub_key_relays_no_order() {
    let mut site = Site::start("disp-nokey", &[]).await;
    site.send_order(bytes(&signed(&order("disp-nokey", "o-1", "zj-rescue-3"), &hub_key()))).await;
    let refusal = eventually(WAIT, "the refusal at the hub", || async {
        site.refusals().into_iter().find(|e| e["body"]["order"] == "o-1")
    })
    .await;
    assert_eq!(refusal["body"]["code"], "no_trusted_key");
    // The relay decides before it reports: by now the order would have been counted.
    let text = site.metrics().await;
    assert_eq!(metric(&text, "yingji_node_dispatch_relayed_total"), Some(0.0), "{text}");
    assert_eq!(metric(&text, "yingji_node_dispatch_refused_total{code=\"no_trusted_key\"}"), Some(1.0));
    site.node.shutdown().await;
}

fn ack(id: &str, team: &str, status: &str) -> Vec<u8> {
    json!({
        "id": id,
        "dispatch": "o-1",
        "team": team,
        "status": status,
        "at": chrono::Utc::now().to_rfc3339(),
        "location": {"lat": 28.1, "lon": 120.7},
        "note": "两艘冲锋舟，40 分钟到达"
    })
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_acknowledgements_reach_the_hub_and_are_receipted() {
    let mut site = Site::start("ack-ok", &[&hub_key()]).await;
    let mut hub_side = Subscriber::connect(&site.broker, "ack-ok-hub", "yingji/v1/node/ack-ok/ack").await;
    let sent = ack("ack-1", "zj-rescue-3", "en_route");
    site.publisher.publish("yingji/v1/ack/zj-rescue-3", sent.clone()).await;

    let (topic, payload) = hub_side.next(WAIT).await.expect("the ack reaches the hub side");
    assert_eq!(topic, "yingji/v1/node/ack-ok/ack");
    let relayed = RelayedAck::parse(&payload, chrono::Utc::now(), &Limits::default()).expect("a relayed ack");
    assert_eq!(relayed.relay_id, "ack-ok:ack:zj-rescue-3:ack-1");
    assert_eq!((relayed.ack.id.as_str(), relayed.ack.team.as_str()), ("ack-1", "zj-rescue-3"));
    let prefix = b"{\"relay_id\":\"ack-ok:ack:zj-rescue-3:ack-1\",";
    assert_eq!(&payload[..prefix.len()], prefix);
    assert_eq!(&payload[prefix.len()..], &sent[1..], "the team's JSON as it was sent");

    // The hub-side receiver receipts it by relay id, and the outbox forgets it.
    eventually(WAIT, "the ack committed at the hub side", || async {
        site.receiver.acks().contains_key("ack-ok:ack:zj-rescue-3:ack-1").then_some(())
    })
    .await;
    let url = site.node.url("/metrics");
    eventually(WAIT, "an empty outbox", || async {
        let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
        // The probe's refusal is in the outbox too: both go once receipted.
        (metric(&text, "yingji_node_outbox_events")? == 0.0).then_some(())
    })
    .await;
    site.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_naming_another_team_is_refused_with_a_reject_notice() {
    let mut site = Site::start("ack-bad", &[&hub_key()]).await;
    let mut hub_side = Subscriber::connect(&site.broker, "ack-bad-hub", "yingji/v1/node/ack-bad/ack").await;
    let mut rejects = Subscriber::connect(&site.broker, "ack-bad-team", "yingji/v1/reject/zj-rescue-3").await;

    site.publisher.publish("yingji/v1/ack/zj-rescue-3", ack("ack-1", "zj-rescue-4", "accepted")).await;
    let (_, notice) = rejects.next(WAIT).await.expect("a reject notice");
    let notice: Value = serde_json::from_slice(&notice).expect("JSON");
    assert_eq!(notice["topic"], "yingji/v1/ack/zj-rescue-3");
    assert_eq!(notice["id"], "ack-1");
    assert_eq!(notice["code"], "device_mismatch");

    // A bad status and a forged relay id are refused too; then a good ack, which is the first
    // and only thing that reaches the hub side.
    site.publisher.publish("yingji/v1/ack/zj-rescue-3", ack("ack-2", "zj-rescue-3", "lost")).await;
    let mut forged: Value = serde_json::from_slice(&ack("ack-3", "zj-rescue-3", "accepted")).expect("JSON");
    forged["relay_id"] = json!("ack-bad:ack:zj-rescue-3:ack-9");
    site.publisher.publish("yingji/v1/ack/zj-rescue-3", bytes(&forged)).await;
    for want in ["invalid_field", "invalid_field"] {
        let (_, notice) = rejects.next(WAIT).await.expect("a reject notice");
        let notice: Value = serde_json::from_slice(&notice).expect("JSON");
        assert_eq!(notice["code"], want);
    }
    site.publisher.publish("yingji/v1/ack/zj-rescue-3", ack("ack-4", "zj-rescue-3", "accepted")).await;
    let (_, payload) = hub_side.next(WAIT).await.expect("the good ack");
    let relayed = RelayedAck::parse(&payload, chrono::Utc::now(), &Limits::default()).expect("a relayed ack");
    assert_eq!(relayed.ack.id, "ack-4");
    let text = site.metrics().await;
    assert_eq!(metric(&text, "yingji_node_messages_rejected_total{code=\"device_mismatch\"}"), Some(1.0), "{text}");
    site.node.shutdown().await;
}
