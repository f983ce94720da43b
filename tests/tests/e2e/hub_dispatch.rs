//! Dispatch at the hub: resources imported, a report crossing a rule's threshold becomes an
//! assessment and a proposal, an officer approves, signed orders go to the team's node, the
//! team acknowledges and completes, and the team is available again; overdue orders are resent
//! once and then escalated; two approvals at once never book one team or one tent twice.

use std::time::Duration;

use serde_json::json;
use yingji_tests::{Publisher, Subscriber, TestDb, TestHub, db_kinds, eventually, spawn_embedded_broker};

fn square(code: &str, parent: Option<&str>, lon: f64, lat: f64, size: f64) -> serde_json::Value {
    json!({"type": "Feature", "properties": {"code": code, "name": format!("division {code}"), "parent": parent},
           "geometry": {"type": "Polygon", "coordinates": [[[lon, lat], [lon + size, lat], [lon + size, lat + size],
                                                            [lon, lat + size], [lon, lat]]]}})
}

/// Two neighbouring provinces: 330000 (lon 118–122) with county 330302 in its south-west
/// corner, and 350000 (lon 114–118) to its west.
fn regions_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("regions.geojson");
    let features = vec![
        square("330000", None, 118.0, 27.0, 4.0),
        square("330300", Some("330000"), 118.0, 27.0, 2.0),
        square("330302", Some("330300"), 118.0, 27.0, 1.0),
        square("350000", None, 114.0, 27.0, 4.0),
    ];
    std::fs::write(&path, json!({"type": "FeatureCollection", "features": features}).to_string()).expect("regions");
    path
}

const TEAMS: &str = "id,name,node,lat,lon,capabilities,size\n\
    t-near,Near flood team,zj,27.6,118.6,flood_rescue;evacuation,30\n\
    t-far,Far flood team,zj,30.5,121.5,flood_rescue,20\n\
    t-nb,Neighbour flood team,fj,27.5,117.5,flood_rescue;evacuation,25\n\
    t-med,Medical team,zj,27.5,118.5,medical,10\n";

const STOCKPILES: &str = "id,name,lat,lon,items\n\
    s1,Depot 1,27.4,118.4,life_jacket=1000;tent=100;sandbag=50000;rubber_boat=20;food_ration=10000;drinking_water=10000;quilt=1000\n";

async fn hub_with_resources(
    broker: &yingji_node::config::MqttUrl,
    db: &TestDb,
    dir: &std::path::Path,
) -> (TestHub, String) {
    let mut config = yingji_hub::Config::for_tests(broker.clone(), db.url.clone());
    config.regions = Some(regions_file(dir));
    let hub = TestHub::spawn(config).await;
    let admin = hub.token("admin").await;
    let client = reqwest::Client::new();
    for (kind, body) in [("teams", TEAMS), ("stockpiles", STOCKPILES)] {
        let r = client
            .post(hub.url(&format!("/api/v1/resources/{kind}")))
            .bearer_auth(&admin)
            .header("content-type", "text/csv")
            .body(body)
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status().as_u16(), 200, "{kind}: {}", r.text().await.unwrap_or_default());
    }
    (hub, admin)
}

fn report_event(node: &str, id: &str, incident: &str, region: &str, deaths: i64) -> Vec<u8> {
    json!({"id": format!("{node}:report:u:{id}"), "node": node, "kind": "report", "at": "2026-09-14T08:00:00+08:00",
           "exercise": false, "region": region, "incident": incident,
           "body": {"device": "u", "id": id, "incident": incident, "stage": "update", "hazard": "flood",
                    "observed_at": "2026-09-14T08:00:00+08:00", "region": region, "figures": {"deaths": deaths}}})
    .to_string()
    .into_bytes()
}

fn ack(order: &str, team: &str, n: u32, status: &str) -> Vec<u8> {
    json!({"relay_id": format!("zj:ack:{team}:{order}-{n}"), "id": format!("{order}-{n}"), "dispatch": order, "team": team,
           "status": status, "at": chrono::Utc::now().to_rfc3339()})
    .to_string()
    .into_bytes()
}

async fn post(hub: &TestHub, token: &str, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new().post(hub.url(path)).bearer_auth(token).json(&body).send().await.expect("POST");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

async fn first_proposal(hub: &TestHub, token: &str, incident: &str) -> serde_json::Value {
    eventually(Duration::from_secs(20), "a dispatch proposal", || async {
        let p = hub.try_get(token, &format!("/api/v1/proposals?incident={incident}&status=proposed")).await?;
        p["items"].as_array()?.first().cloned()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_leads_to_a_signed_order_that_the_team_completes() {
    let broker = spawn_embedded_broker();
    let db = TestDb::new(yingji_tests::DbKind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub, _admin) = hub_with_resources(&broker, &db, dir.path()).await;
    let officer = hub.token("officer").await;
    let viewer = hub.token("viewer").await;
    let mut node_inbox = Subscriber::connect(&broker, "zj-dispatch", "yingji/v1/node/zj/dispatch").await;
    let mut node = Publisher::connect(&broker, "zj-node").await;
    node.publish("yingji/v1/node/zj/event", report_event("zj", "r1", "flood-9", "330302", 25)).await;
    node.wait_acked(Duration::from_secs(10)).await;

    let proposal = first_proposal(&hub, &viewer, "flood-9").await;
    let teams = proposal["body"]["teams"].as_array().expect("teams");
    assert_eq!(teams[0]["team"], "t-near", "the nearest available flood team first: {proposal}");
    assert!(teams[0]["explanation"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(teams.iter().all(|t| t["team"] != "t-med"), "no team without the capability");
    let id = proposal["id"].as_str().expect("id").to_owned();

    // A viewer may not approve; an officer may.
    let (status, _) = post(&hub, &viewer, &format!("/api/v1/proposals/{id}/approve"), json!({})).await;
    assert_eq!(status, 403);
    // Keep the order to one team for the walk-through.
    let r = reqwest::Client::new()
        .patch(hub.url(&format!("/api/v1/proposals/{id}")))
        .bearer_auth(&officer)
        .json(&json!({"teams": [{"team": "t-near", "capability": "flood_rescue"}]}))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(r.status().as_u16(), 200);
    let (status, approved) = post(&hub, &officer, &format!("/api/v1/proposals/{id}/approve"), json!({})).await;
    assert_eq!(status, 200, "{approved}");
    let order_id = approved["orders"][0].as_str().expect("an order").to_owned();
    let (status, _) = post(&hub, &officer, &format!("/api/v1/proposals/{id}/approve"), json!({})).await;
    assert_eq!(status, 409, "approved once only");

    // The node gets the order, signed by the key the hub publishes.
    let (_, payload) = tokio::time::timeout(Duration::from_secs(10), node_inbox.messages.recv())
        .await
        .expect("the order in time")
        .expect("an order");
    let keys: serde_json::Value = reqwest::get(hub.url("/api/v1/keys")).await.expect("GET").json().await.expect("json");
    let key =
        yingji_proto::sign::parse_public_key(keys["keys"][0]["public_key"].as_str().expect("key")).expect("a key");
    let order = yingji_proto::sign::verify_order(&payload, &[key], chrono::Utc::now(), &Default::default())
        .expect("the order's signature verifies");
    assert_eq!((order.id.as_str(), order.team.as_str(), order.node.as_str()), (order_id.as_str(), "t-near", "zj"));
    let mut tampered = payload.clone();
    let at = String::from_utf8_lossy(&payload).find("t-near").expect("team in payload");
    tampered[at] = b'T';
    assert!(yingji_proto::sign::verify_order(&tampered, &[key], chrono::Utc::now(), &Default::default()).is_err());
    let teams = hub.get(&viewer, "/api/v1/resources/teams").await;
    let near = teams["items"].as_array().expect("items").iter().find(|t| t["id"] == "t-near").cloned().expect("t-near");
    assert_eq!(near["status"], "assigned");

    // The team acknowledges and progresses; the order follows; completion frees the team.
    let mut receipts = Subscriber::connect(&broker, "zj-receipts", "yingji/v1/node/zj/receipt").await;
    for (n, s) in ["received", "accepted", "en_route", "on_scene", "completed"].iter().enumerate() {
        node.publish("yingji/v1/node/zj/ack", ack(&order_id, "t-near", n as u32, s)).await;
        // A resend of the same acknowledgement changes nothing.
        node.publish("yingji/v1/node/zj/ack", ack(&order_id, "t-near", n as u32, s)).await;
    }
    node.wait_acked(Duration::from_secs(10)).await;
    let done = eventually(Duration::from_secs(20), "the order completed", || async {
        let o = hub.try_get(&viewer, &format!("/api/v1/orders/{order_id}")).await?;
        (o["order"]["status"] == "completed").then_some(o)
    })
    .await;
    assert_eq!(done["events"].as_array().map(Vec::len), Some(5), "each acknowledgement once: {done}");
    let (_, receipt) =
        tokio::time::timeout(Duration::from_secs(10), receipts.messages.recv()).await.expect("receipt").expect("r");
    assert!(String::from_utf8_lossy(&receipt).contains(":ack:t-near:"), "relayed acks are receipted");
    let teams = hub.get(&viewer, "/api/v1/resources/teams").await;
    let near = teams["items"].as_array().expect("items").iter().find(|t| t["id"] == "t-near").cloned().expect("t-near");
    assert_eq!(near["status"], "available", "the team's status follows its order");
    // Stock went down by what the order carries, never below zero.
    let stock = hub.get(&viewer, "/api/v1/resources/stockpiles").await;
    let carried: i64 = order.resources.iter().filter(|r| r.item == "life_jacket").map(|r| r.qty).sum();
    assert_eq!(stock["items"][0]["items"]["life_jacket"], 1000 - carried);
    // The audit log names who approved.
    let audit = hub.get(&officer, "/api/v1/audit").await;
    let entry =
        audit["items"].as_array().expect("items").iter().find(|a| a["action"] == "approve").cloned().expect("approve");
    assert_eq!(entry["role"], "officer");
    assert!(entry["remote"].as_str().is_some_and(|r| r.starts_with("127.0.0.1:")));
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_order_is_resent_once_then_escalated_to_the_next_team() {
    let broker = spawn_embedded_broker();
    let db = TestDb::new(yingji_tests::DbKind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub, _) = hub_with_resources(&broker, &db, dir.path()).await;
    let officer = hub.token("officer").await;
    let mut node_inbox = Subscriber::connect(&broker, "zj-dispatch-2", "yingji/v1/node/zj/dispatch").await;
    let mut node = Publisher::connect(&broker, "zj-node-2").await;
    node.publish("yingji/v1/node/zj/event", report_event("zj", "r1", "flood-10", "330302", 25)).await;
    let proposal = first_proposal(&hub, &officer, "flood-10").await;
    let id = proposal["id"].as_str().expect("id").to_owned();
    reqwest::Client::new()
        .patch(hub.url(&format!("/api/v1/proposals/{id}")))
        .bearer_auth(&officer)
        .json(&json!({"teams": [{"team": "t-near", "capability": "flood_rescue"}]}))
        .send()
        .await
        .expect("PATCH");
    let (status, approved) = post(&hub, &officer, &format!("/api/v1/proposals/{id}/approve"), json!({})).await;
    assert_eq!(status, 200, "{approved}");
    let order_id = approved["orders"][0].as_str().expect("order").to_owned();
    let first =
        tokio::time::timeout(Duration::from_secs(10), node_inbox.messages.recv()).await.expect("order").expect("o");

    // Time is ours: the overdue check runs at chosen instants past the deadline.
    let client = Publisher::connect(&broker, "test-dispatcher").await;
    let dispatcher = yingji_hub::dispatch::Dispatcher {
        store: hub.store.clone(),
        client: client.client.clone(),
        key: yingji_hub::dispatch::signing_key(&hub.store).await.expect("key"),
        regions: std::sync::Arc::new(
            yingji_node::regions::Regions::load(&dir.path().join("regions.geojson")).expect("regions"),
        ),
        neighbours: std::sync::Arc::new(Default::default()),
        settings: Default::default(),
        stream: tokio::sync::broadcast::channel(16).0,
        postgres: false,
    };
    let issued = hub.store.order(&order_id).await.expect("order").expect("exists");
    dispatcher.tick(issued.due_ms + 1).await.expect("tick");
    let again =
        tokio::time::timeout(Duration::from_secs(10), node_inbox.messages.recv()).await.expect("resent").expect("o");
    assert_eq!(first.1, again.1, "the same signed order, resent");
    let resent = hub.store.order(&order_id).await.expect("order").expect("exists");
    assert_eq!((resent.status.as_str(), resent.resent), ("issued", 1));
    dispatcher.tick(resent.due_ms + 1).await.expect("tick");
    let overdue = hub.store.order(&order_id).await.expect("order").expect("exists");
    assert_eq!(overdue.status, "overdue");
    let replacement = overdue.escalated_to.expect("a replacement proposal");
    let p = hub.store.proposal(&replacement).await.expect("proposal").expect("exists");
    assert_eq!(p.escalated_from.as_deref(), Some(order_id.as_str()));
    let teams = p.body["teams"].as_array().expect("teams");
    assert!(
        !teams.is_empty() && teams.iter().all(|t| t["team"] != "t-near"),
        "the silent team is not proposed again: {p:?}"
    );
    let audit = hub.get(&officer, "/api/v1/audit").await;
    let actions: Vec<&str> =
        audit["items"].as_array().expect("items").iter().filter_map(|a| a["action"].as_str()).collect();
    assert!(
        actions.contains(&"resend") && actions.contains(&"overdue") && actions.contains(&"escalate"),
        "{actions:?}"
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_officers_approving_at_once_never_book_a_team_or_stock_twice() {
    for kind in db_kinds() {
        let broker = spawn_embedded_broker();
        let db = TestDb::new(kind).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let (hub, _) = hub_with_resources(&broker, &db, dir.path()).await;
        let officer = hub.token("officer").await;
        let mut node = Publisher::connect(&broker, "race-node").await;
        let mut ids = Vec::new();
        for (n, incident) in ["race-a", "race-b", "race-c", "race-d"].iter().enumerate() {
            node.publish("yingji/v1/node/zj/event", report_event("zj", &format!("r{n}"), incident, "330302", 25)).await;
            let p = first_proposal(&hub, &officer, incident).await;
            ids.push(p["id"].as_str().expect("id").to_owned());
        }
        // a and b want the same team; c and d want 60 of the 100 tents each.
        let client = reqwest::Client::new();
        for (id, body) in [
            (&ids[0], json!({"teams": [{"team": "t-far", "capability": "flood_rescue"}], "items": []})),
            (&ids[1], json!({"teams": [{"team": "t-far", "capability": "flood_rescue"}], "items": []})),
            (&ids[2], json!({"teams": [], "items": [{"item": "tent", "stockpile": "s1", "qty": 60}]})),
            (&ids[3], json!({"teams": [], "items": [{"item": "tent", "stockpile": "s1", "qty": 60}]})),
        ] {
            let r = client
                .patch(hub.url(&format!("/api/v1/proposals/{id}")))
                .bearer_auth(&officer)
                .json(&body)
                .send()
                .await
                .expect("PATCH");
            assert_eq!(r.status().as_u16(), 200);
        }
        for pair in [[&ids[0], &ids[1]], [&ids[2], &ids[3]]] {
            let (path_a, path_b) =
                (format!("/api/v1/proposals/{}/approve", pair[0]), format!("/api/v1/proposals/{}/approve", pair[1]));
            let (a, b) =
                tokio::join!(post(&hub, &officer, &path_a, json!({})), post(&hub, &officer, &path_b, json!({})));
            let mut statuses = [a.0, b.0];
            statuses.sort();
            assert_eq!(statuses, [200, 409], "{kind:?}: one approval wins, the other is told why: {a:?} {b:?}");
        }
        let orders = hub.get(&officer, "/api/v1/orders").await;
        let far: Vec<_> = orders["items"].as_array().expect("items").iter().filter(|o| o["team"] == "t-far").collect();
        assert_eq!(far.len(), 1, "{kind:?}: t-far booked once");
        let stock = hub.get(&officer, "/api/v1/resources/stockpiles").await;
        assert_eq!(stock["items"][0]["items"]["tent"], 40, "{kind:?}: 60 tents taken once, never below zero");
        hub.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_resource_file_names_every_bad_row_and_imports_nothing() {
    let broker = spawn_embedded_broker();
    let db = TestDb::new(yingji_tests::DbKind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub, admin) = hub_with_resources(&broker, &db, dir.path()).await;
    let bad = "id,name,node,lat,lon,capabilities,size\nt-new,New,zj,27.5,118.5,flood_rescue,3\nt-bad,Bad,zj,95,118.5,flood_rescue,3\nt-cap,Cap,zj,27,118,juggling,3\n";
    let r = reqwest::Client::new()
        .post(hub.url("/api/v1/resources/teams"))
        .bearer_auth(&admin)
        .header("content-type", "text/csv")
        .body(bad)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 422);
    let body: serde_json::Value = r.json().await.expect("json");
    let errors: Vec<(i64, String)> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| (e["line"].as_i64().unwrap_or(0), e["field"].as_str().unwrap_or_default().to_owned()))
        .collect();
    assert_eq!(errors, [(3, "lat".to_owned()), (4, "capabilities".to_owned())]);
    let teams = hub.get(&admin, "/api/v1/resources/teams").await;
    assert!(teams["items"].as_array().expect("items").iter().all(|t| t["id"] != "t-new"), "nothing half-imported");
    // The export imports back unchanged.
    let csv = reqwest::Client::new()
        .get(hub.url("/api/v1/resources/teams?format=csv"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("csv");
    assert!(csv.starts_with("id,name,node,lat,lon,capabilities,size"));
    let r = reqwest::Client::new()
        .post(hub.url("/api/v1/resources/teams"))
        .bearer_auth(&admin)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 200);
    let viewer = hub.token("viewer").await;
    let r = reqwest::Client::new()
        .post(hub.url("/api/v1/resources/teams"))
        .bearer_auth(&viewer)
        .header("content-type", "text/csv")
        .body(TEAMS)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 403, "only an admin imports");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_through_a_real_node_the_team_verifies_acknowledges_and_completes() {
    let broker = spawn_embedded_broker();
    let db = TestDb::new(yingji_tests::DbKind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub, _) = hub_with_resources(&broker, &db, dir.path()).await;
    let officer = hub.token("officer").await;
    // The node trusts the key the hub publishes.
    let keys: serde_json::Value = reqwest::get(hub.url("/api/v1/keys")).await.expect("GET").json().await.expect("json");
    let public = keys["keys"][0]["public_key"].as_str().expect("key").to_owned();
    let key_file = dir.path().join("hub.key");
    std::fs::write(&key_file, format!("# the hub's key\n{public}\n")).expect("key file");
    let node_db = TestDb::new(yingji_tests::DbKind::Sqlite).await;
    let mut config = yingji_node::config::Config::for_tests("zj", broker.clone(), node_db.url.clone());
    config.hub_key = Some(key_file);
    let node = yingji_tests::TestNode::spawn(config).await;

    // A field report through the node crosses the relief threshold at the hub.
    let mut unit = Publisher::connect(&broker, "e2e-unit").await;
    let report = json!({"id": "e1", "incident": "flood-e2e", "stage": "initial", "hazard": "flood",
        "observed_at": "2026-09-14T08:00:00+08:00", "location": {"lat": 27.5, "lon": 118.5}, "region": "330302",
        "figures": {"deaths": 22}});
    unit.publish("yingji/v1/report/unit-1", report.to_string().into_bytes()).await;
    let proposal = first_proposal(&hub, &officer, "flood-e2e").await;
    let id = proposal["id"].as_str().expect("id").to_owned();
    reqwest::Client::new()
        .patch(hub.url(&format!("/api/v1/proposals/{id}")))
        .bearer_auth(&officer)
        .json(&json!({"teams": [{"team": "t-near", "capability": "flood_rescue"}]}))
        .send()
        .await
        .expect("PATCH");
    let mut team = Subscriber::connect(&broker, "team-t-near", "yingji/v1/dispatch/t-near").await;
    let (status, approved) = post(&hub, &officer, &format!("/api/v1/proposals/{id}/approve"), json!({})).await;
    assert_eq!(status, 200, "{approved}");
    let order_id = approved["orders"][0].as_str().expect("order").to_owned();

    // The team gets the order from its node and checks the hub's signature itself.
    let (_, payload) =
        tokio::time::timeout(Duration::from_secs(20), team.messages.recv()).await.expect("in time").expect("order");
    let key = yingji_proto::sign::parse_public_key(&public).expect("key");
    let order =
        yingji_proto::sign::verify_order(&payload, &[key], chrono::Utc::now(), &Default::default()).expect("verifies");
    assert_eq!(order.id, order_id);
    for (n, s) in ["received", "accepted", "en_route", "on_scene", "completed"].iter().enumerate() {
        let ack = json!({"id": format!("a{n}"), "dispatch": order.id, "team": "t-near", "status": s,
                         "at": chrono::Utc::now().to_rfc3339()});
        unit.publish("yingji/v1/ack/t-near", ack.to_string().into_bytes()).await;
    }
    eventually(Duration::from_secs(30), "the order completed at the hub", || async {
        let o = hub.try_get(&officer, &format!("/api/v1/orders/{order_id}")).await?;
        (o["order"]["status"] == "completed").then_some(())
    })
    .await;
    let teams = hub.get(&officer, "/api/v1/resources/teams").await;
    let near = teams["items"].as_array().expect("items").iter().find(|t| t["id"] == "t-near").cloned().expect("t-near");
    assert_eq!(near["status"], "available", "the team is available again");
    // The node's outbox empties: the hub receipted the relayed acknowledgements too.
    let url = node.url("/metrics");
    eventually(Duration::from_secs(30), "the node's outbox to empty", || async {
        let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
        (crate::ingest::metric(&text, "yingji_node_outbox_events")? == 0.0).then_some(())
    })
    .await;
    node.shutdown().await;
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automatic_action_is_issued_without_an_officer() {
    let broker = spawn_embedded_broker();
    let db = TestDb::new(yingji_tests::DbKind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"auto-flood\"\nwhen = 'stats.deaths_missing >= 1'\nlevel = 4\nreason = \"any death\"\n\
         [[rule.actions]]\ncapability = \"flood_rescue\"\nteams = 1\nautomatic = true\n",
    )
    .expect("rules");
    let mut config = yingji_hub::Config::for_tests(broker.clone(), db.url.clone());
    config.regions = Some(regions_file(dir.path()));
    config.rules = Some(rules);
    let hub = TestHub::spawn(config).await;
    let admin = hub.token("admin").await;
    let r = reqwest::Client::new()
        .post(hub.url("/api/v1/resources/teams"))
        .bearer_auth(&admin)
        .header("content-type", "text/csv")
        .body(TEAMS)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 200);
    let mut node = Publisher::connect(&broker, "auto-node").await;
    node.publish("yingji/v1/node/zj/event", report_event("zj", "r1", "auto-1", "330302", 1)).await;
    let order = eventually(Duration::from_secs(20), "an order issued by the hub itself", || async {
        let o = hub.try_get(&admin, "/api/v1/orders?incident=auto-1").await?;
        o["items"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(order["team"], "t-near");
    let audit = hub.get(&admin, "/api/v1/audit").await;
    let approve =
        audit["items"].as_array().expect("items").iter().find(|a| a["action"] == "approve").cloned().expect("approve");
    assert_eq!(approve["who"], "system", "the automatic issue is audited as the system's");
    let incident = hub.get(&admin, "/api/v1/incidents/auto-1").await;
    assert!(
        incident["timeline"].as_array().expect("timeline").iter().any(|t| t["type"] == "order"),
        "orders on the timeline"
    );
    hub.shutdown().await;
}
