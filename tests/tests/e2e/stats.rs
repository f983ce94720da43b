//! Disaster statistics (design §3.3): for each (incident, region) the latest report supersedes;
//! larger divisions sum the divisions inside them; duplicates, reordering and batching change
//! nothing — on SQLite and on PostgreSQL — and the hub side receives the same totals.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::json;
use yingji_node::regions::Regions;
use yingji_node::store::{Batch, NewReport, Seen, Store};
use yingji_tests::{
    DbKind, HubReceiver, Publisher, TestDb, TestNode, db_kinds, eventually, get_json, spawn_embedded_broker,
};

const REGIONS: [&str; 4] = ["330302", "330303", "330381", "330102"];

#[derive(Debug, Clone)]
struct R {
    device: usize,
    id: usize,
    region: usize,
    observed: i64,
    affected: Option<i64>,
    deaths: Option<i64>,
    exercise: bool,
}

fn new_report(r: &R) -> NewReport {
    let mut figures = serde_json::Map::new();
    if let Some(a) = r.affected {
        figures.insert("affected".into(), json!(a));
    }
    if let Some(d) = r.deaths {
        figures.insert("deaths".into(), json!(d));
    }
    NewReport {
        device: format!("d{}", r.device),
        id: format!("r{}", r.id),
        incident: "inc".into(),
        stage: "update".into(),
        hazard: "flood".into(),
        observed_at: String::new(),
        observed_at_ms: r.observed,
        lat: 28.0,
        lon: 120.0,
        region: REGIONS[r.region].into(),
        region_source: "given",
        figures: serde_json::Value::Object(figures).to_string(),
        text: None,
        exercise: r.exercise,
        received_at_ms: 0,
    }
}

/// The plain reference: distinct reports by (device, id) — the first stored wins, as the
/// node's unique key does — then per region the greatest (observed, id, device), then for
/// each division the sum over regions whose code lies inside it.
fn reference(reports: &[R], exercise: bool) -> BTreeMap<String, (Option<i64>, Option<i64>)> {
    let mut stored: BTreeMap<(usize, usize), &R> = BTreeMap::new();
    for r in reports {
        stored.entry((r.device, r.id)).or_insert(r);
    }
    let mut latest: BTreeMap<&str, &R> = BTreeMap::new();
    for r in stored.values().filter(|r| r.exercise == exercise) {
        let key = |x: &R| (x.observed, format!("r{}", x.id), format!("d{}", x.device));
        let region = REGIONS[r.region];
        if latest.get(region).is_none_or(|b| key(r) > key(b)) {
            latest.insert(region, r);
        }
    }
    let mut out: BTreeMap<String, (Option<i64>, Option<i64>)> = BTreeMap::new();
    for (region, r) in latest {
        for division in [region.to_owned(), format!("{}00", &region[..4]), format!("{}0000", &region[..2])] {
            let e = out.entry(division).or_default();
            if let Some(a) = r.affected {
                e.0 = Some(e.0.unwrap_or(0) + a);
            }
            if let Some(d) = r.deaths {
                e.1 = Some(e.1.unwrap_or(0) + d);
            }
        }
    }
    out
}

fn report_strategy() -> impl Strategy<Value = R> {
    (
        0..2usize,
        0..6usize,
        0..4usize,
        0..4i64,
        proptest::option::of(0..1000i64),
        proptest::option::of(0..5i64),
        proptest::bool::weighted(0.2),
    )
        .prop_map(|(device, id, region, observed, affected, deaths, exercise)| R {
            device,
            id,
            region,
            observed: 1_780_000_000_000 + observed * 3_600_000,
            affected,
            deaths,
            exercise,
        })
}

async fn totals_via_store(
    kind: DbKind,
    batches: &[Vec<R>],
) -> (BTreeMap<String, (Option<i64>, Option<i64>)>, BTreeMap<String, (Option<i64>, Option<i64>)>) {
    let db = TestDb::new(kind).await;
    let store = Store::connect(&db.url).await.expect("connect");
    for batch in batches {
        let b = Batch {
            reports: batch.iter().map(new_report).collect(),
            seen: vec![Seen { device: "d0".into(), registered: false, at_ms: 0 }],
            ..Default::default()
        };
        store.write(&b).await.expect("write");
    }
    let regions = Regions::default();
    let mut out = Vec::new();
    for exercise in [false, true] {
        let rows = store.latest("inc", exercise).await.expect("latest");
        let totals = yingji_node::events::totals(&yingji_node::events::facts(&rows), None, &regions);
        out.push(totals.into_iter().map(|(k, d)| (k, (d.totals.affected, d.totals.deaths))).collect());
    }
    store.close().await;
    let exercise = out.pop().unwrap_or_default();
    (out.pop().unwrap_or_default(), exercise)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any interleaving, duplication and reordering of a set of reports, in any batches, gives
    /// the reference totals; drill reports never enter real totals.
    #[test]
    fn any_order_duplication_and_batching_gives_the_reference_totals(
        reports in proptest::collection::vec(report_strategy(), 1..25),
        order in Just(()).prop_perturb(|_, mut rng| rng.random::<u64>()),
        cuts in proptest::collection::vec(1..6usize, 1..8),
    ) {
        // Duplicate some reports, shuffle deterministically from `order`, cut into batches.
        let mut all: Vec<R> = reports.clone();
        all.extend(reports.iter().step_by(2).cloned());
        let mut state = order | 1;
        for i in (1..all.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            all.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut batches = Vec::new();
        let mut rest = all.as_slice();
        for cut in cuts.iter().cycle() {
            if rest.is_empty() { break; }
            let n = (*cut).min(rest.len());
            batches.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
        // The order in which reports are first stored decides which copy of a reused
        // (device, id) wins; the reference must see them in that order.
        let stored_order: Vec<R> = batches.iter().flatten().cloned().collect();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        for kind in db_kinds() {
            let (real, drill) = runtime.block_on(totals_via_store(kind, &batches));
            prop_assert_eq!(&real, &reference(&stored_order, false), "{:?} real", kind);
            prop_assert_eq!(&drill, &reference(&stored_order, true), "{:?} drill", kind);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_serves_totals_by_division_now_and_in_the_past_and_forwards_them() {
    let broker = spawn_embedded_broker();
    let receiver = HubReceiver::start(&broker, "stats-hub", None).await;
    let db = TestDb::new(DbKind::Sqlite).await;
    let node = TestNode::start("stats-node", &broker, &db).await;
    let mut publisher = Publisher::connect(&broker, "stats-pub").await;
    let report = |id: &str, region: &str, observed: &str, affected: i64, exercise: bool| {
        json!({"id": id, "incident": "typhoon-9", "stage": "update", "hazard": "typhoon", "observed_at": observed,
               "location": {"lat": 28.0, "lon": 120.6}, "region": region, "figures": {"affected": affected, "deaths": 1},
               "exercise": exercise})
        .to_string()
        .into_bytes()
    };
    // Out of order: the later update of 330302 comes first; a duplicate; a drill report.
    let msgs = [
        report("a2", "330302", "2026-09-14T12:00:00+08:00", 500, false),
        report("a1", "330302", "2026-09-14T08:00:00+08:00", 100, false),
        report("b1", "330303", "2026-09-14T09:00:00+08:00", 40, false),
        report("c1", "330102", "2026-09-14T10:00:00+08:00", 7, false),
        report("a1", "330302", "2026-09-14T08:00:00+08:00", 100, false),
        report("x1", "330302", "2026-09-14T13:00:00+08:00", 99_999, true),
    ];
    for m in msgs {
        publisher.publish("yingji/v1/report/unit-1", m).await;
    }
    publisher.wait_acked(Duration::from_secs(30)).await;
    let stats = eventually(Duration::from_secs(30), "statistics of four reports", || async {
        let s = get_json(&node.url("/api/v1/stats?incident=typhoon-9")).await;
        let province = s["divisions"].as_array()?.iter().find(|d| d["division"] == "330000")?.clone();
        (province["totals"]["affected"] == 547).then_some(s)
    })
    .await;
    let by: BTreeMap<String, serde_json::Value> = stats["divisions"]
        .as_array()
        .expect("divisions")
        .iter()
        .map(|d| (d["division"].as_str().unwrap_or_default().to_owned(), d["totals"]["affected"].clone()))
        .collect();
    let want: BTreeMap<String, serde_json::Value> =
        [("330000", 547), ("330100", 7), ("330102", 7), ("330300", 540), ("330302", 500), ("330303", 40)]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
    assert_eq!(by, want);
    let levels: Vec<&str> =
        stats["divisions"].as_array().expect("d").iter().filter_map(|d| d["level"].as_str()).collect();
    assert!(levels.contains(&"province") && levels.contains(&"prefecture") && levels.contains(&"county"), "{levels:?}");

    // As it stood at 10:30 Beijing time: 330302 still had its 08:00 figures.
    let past =
        get_json(&node.url("/api/v1/stats?incident=typhoon-9&region=330300&at=2026-09-14T10:30:00%2B08:00")).await;
    let prefecture =
        past["divisions"].as_array().expect("d").iter().find(|d| d["division"] == "330300").expect("330300").clone();
    assert_eq!(prefecture["totals"]["affected"], 140);
    assert!(
        past["divisions"].as_array().expect("d").iter().all(|d| d["division"] != "330000"),
        "filtered to 330300 and inside"
    );

    // Drill figures stay apart.
    let drill = get_json(&node.url("/api/v1/stats?incident=typhoon-9&exercise=true")).await;
    let drill_province =
        drill["divisions"].as_array().expect("d").iter().find(|d| d["division"] == "330000").expect("p").clone();
    assert_eq!(drill_province["totals"]["affected"], 99_999);

    let incidents = get_json(&node.url("/api/v1/incidents")).await;
    let real =
        incidents["items"].as_array().expect("items").iter().find(|i| i["exercise"] == false).expect("real").clone();
    assert_eq!(
        (real["incident"].as_str(), real["reports"].as_i64(), real["regions"].as_i64()),
        (Some("typhoon-9"), Some(4), Some(3))
    );
    assert_eq!(real["hazard"], "typhoon");

    let duties = get_json(&node.url("/api/v1/incidents/typhoon-9/discipline")).await;
    assert_eq!(duties["divisions"].as_array().map(Vec::len), Some(3));

    // The hub side ends up with a province snapshot holding the same totals.
    eventually(Duration::from_secs(30), "the province snapshot at the hub", || async {
        let found = receiver.events().into_iter().any(|e| {
            e["kind"] == "stats"
                && e["exercise"] == false
                && e["region"] == "330000"
                && e["body"]["totals"]["affected"] == 547
        });
        found.then_some(())
    })
    .await;
    node.shutdown().await;
}
