//! Hub intake benchmark: events per second from the broker to the hub's commit and back to the
//! nodes as receipts, with PostgreSQL (or SQLite).
//!
//! ```sh
//! cargo run --release -p yingji-tests --bin yingji-bench-hub                     # PostgreSQL, own Mosquitto
//! cargo run --release -p yingji-tests --bin yingji-bench-hub -- --db sqlite      # SQLite in a temp dir
//! cargo run --release -p yingji-tests --bin yingji-bench-hub -- --broker embedded --events 100000
//! ```
//!
//! Several fake nodes publish summarized events at QoS 1 as fast as the broker takes them: report
//! events (each a new report for one of 40 counties of the node's province, so every batch
//! updates statistics and the rules judge the incident) and one warning event in ten
//! (`--warnings-every N`, 0 for none; each changes a station's colour, so each is a CAP alert).
//! Each node
//! counts the distinct ids receipted on its receipt topic. The figure is events committed and
//! receipted per second, from the first publish to the last receipt. PostgreSQL is
//! `YINGJI_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`), in a fresh schema.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use yingji_tests::{DbKind, TestDb, TestHub, start_broker};

struct Options {
    events: usize,
    nodes: usize,
    db: String,
    broker: String,
    /// One event in this many is a warning (0: none).
    warnings_every: usize,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut o =
        Options { events: 40_000, nodes: 4, db: "postgres".into(), broker: "mosquitto".into(), warnings_every: 10 };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--events" => o.events = value()?.parse().context("--events: how many events in all")?,
            "--nodes" => o.nodes = value()?.parse().context("--nodes: how many publishing nodes")?,
            "--db" => o.db = value()?,
            "--broker" => o.broker = value()?,
            "--warnings-every" => o.warnings_every = value()?.parse().context("--warnings-every: N (0 for none)")?,
            "--help" | "-h" => {
                println!(
                    "yingji-bench-hub [--events N] [--nodes K] [--db postgres|sqlite] [--broker mosquitto|embedded]"
                );
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown option {other:?} (see --help)"),
        }
    }
    Ok(o)
}

fn event(node: &str, province: u32, i: usize, warnings_every: usize) -> (String, Vec<u8>) {
    let county = format!("{province}{:02}{:02}", 1 + (i / 10) % 4, 1 + i % 10);
    if warnings_every > 0 && i % warnings_every == warnings_every - 1 {
        let id = format!("{node}:warning:{i}");
        let colour = ["blue", "yellow", "orange", "red"][(i / 10) % 4];
        let body = json!({"station": format!("g{}", i % 50), "metric": {"kind": "rain", "window_h": 3},
            "colour": colour, "cleared": false, "value": 60.0, "threshold": 50.0, "episode": 1});
        let e = json!({"id": id, "node": node, "kind": "warning", "at": "2026-09-14T08:00:00+08:00",
            "exercise": false, "region": county, "body": body});
        return (id, e.to_string().into_bytes());
    }
    let id = format!("{node}:report:u{}:{i}", i % 100);
    let body = json!({"device": format!("u{}", i % 100), "id": i.to_string(), "incident": format!("bench-{node}"),
        "stage": "update", "hazard": "flood", "observed_at": format!("2026-09-14T{:02}:{:02}:00+08:00", (i / 60) % 24, i % 60),
        "region": county, "figures": {"deaths": i % 3, "affected": i % 1000, "relocated": i % 500}});
    let e = json!({"id": id, "node": node, "kind": "report", "at": "2026-09-14T08:00:00+08:00",
        "exercise": false, "region": county, "incident": format!("bench-{node}"), "body": body});
    (id, e.to_string().into_bytes())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = parse_args()?;
    let (broker, _mosquitto) = start_broker(&o.broker)?;
    let db = match o.db.as_str() {
        "postgres" => {
            if std::env::var("YINGJI_TEST_PG_URL").is_err() {
                anyhow::bail!(
                    "set YINGJI_TEST_PG_URL (e.g. postgres://postgres@127.0.0.1:5432/test) or pass --db sqlite"
                );
            }
            TestDb::new(DbKind::Postgres).await
        }
        "sqlite" => TestDb::new(DbKind::Sqlite).await,
        other => anyhow::bail!("--db {other:?}: postgres or sqlite"),
    };
    let hub = TestHub::start(&broker, &db).await;
    let per_node = o.events / o.nodes.max(1);
    println!(
        "hub intake: {} events from {} nodes, broker {}, database {}",
        per_node * o.nodes,
        o.nodes,
        o.broker,
        o.db
    );
    let mut tasks = Vec::new();
    let started = Instant::now();
    for n in 0..o.nodes {
        let url = broker.clone();
        let warnings_every = o.warnings_every;
        tasks.push(tokio::spawn(async move {
            let node = format!("bench{n}");
            let mut options = MqttOptions::new(format!("{node}-client"), url.host.clone(), url.port);
            options.set_inflight(500).set_keep_alive(Duration::from_secs(30)).set_max_packet_size(1 << 20, 1 << 20);
            let (client, mut eventloop) = AsyncClient::new(options, 20_000);
            client.subscribe(yingji_proto::topic::node_receipt(&node), QoS::AtLeastOnce).await?;
            let province = 31 + n as u32;
            let publisher = {
                let client = client.clone();
                let node = node.clone();
                tokio::spawn(async move {
                    for i in 0..per_node {
                        let (_, payload) = event(&node, province, i, warnings_every);
                        if client
                            .publish(yingji_proto::topic::node_event(&node), QoS::AtLeastOnce, false, payload)
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                })
            };
            let mut receipted = HashSet::with_capacity(per_node);
            let deadline = Instant::now() + Duration::from_secs(600);
            while receipted.len() < per_node && Instant::now() < deadline {
                if let Ok(Event::Incoming(Packet::Publish(p))) = eventloop.poll().await {
                    let r: yingji_proto::event::Receipt = serde_json::from_slice(&p.payload)?;
                    receipted.extend(r.ids);
                }
            }
            publisher.abort();
            anyhow::Ok((receipted.len(), Instant::now()))
        }));
    }
    let mut total = 0;
    let mut last = started;
    for t in tasks {
        let (n, done) = t.await??;
        total += n;
        last = last.max(done);
    }
    let secs = last.duration_since(started).as_secs_f64();
    println!("receipted {total} events in {secs:.2} s: {:.0} events/s", total as f64 / secs);
    let text = reqwest::get(hub.url("/metrics")).await?.text().await?;
    for line in text.lines().filter(|l| {
        l.starts_with("yingji_hub_commit_seconds_sum")
            || l.starts_with("yingji_hub_commit_seconds_count")
            || l.starts_with("yingji_hub_batch_size_sum")
            || l.starts_with("yingji_hub_batch_size_count")
            || l.starts_with("yingji_hub_assessments_total")
    }) {
        println!("  {line}");
    }
    hub.shutdown().await;
    Ok(())
}
