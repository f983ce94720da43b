//! Simulator benchmark: the largest fleet the simulator sustains, and the end-to-end latency of
//! reports, device to hub-visible.
//!
//! ```sh
//! cargo run --release -p yingji-tests --bin yingji-bench-sim                  # both parts
//! cargo run --release -p yingji-tests --bin yingji-bench-sim -- --part fleet --seconds 15
//! cargo run --release -p yingji-tests --bin yingji-bench-sim -- --part latency --rate 1000 --seconds 20
//! ```
//!
//! **fleet**: the shipped typhoon scenario's stations (its World, seed 1) publish through the
//! simulator's own fleet into a Mosquitto of the benchmark's own (`max_queued_messages 0`), with a
//! bare subscriber taking everything; the speed doubles from ×15 until publishing falls more than
//! a second behind its schedule or the subscriber gets less than 95% of what was scheduled. The
//! figure: stations and messages per second at the last speed that kept up.
//!
//! **latency**: a hub and one node run in-process (the short scenario's node and regions,
//! in-process brokers, SQLite); synthetic field reports for the node's counties are published at
//! `--rate` per second for `--seconds`, and each report's time from publish to the hub's event
//! stream carrying it is recorded. The figures: p50, p95, p99 and max.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use yingji_simulator::eval::{Dist, Watcher};
use yingji_simulator::fleet::Fleet;
use yingji_simulator::model::{OutKind, Outgoing, World};
use yingji_simulator::platform::{EmbeddedSpec, FieldBroker, Platform};
use yingji_simulator::scenario::Scenario;
use yingji_tests::Mosquitto;

struct Options {
    part: String,
    seconds: u64,
    rate: u64,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut o = Options { part: "both".into(), seconds: 15, rate: 1000 };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--part" => o.part = value()?,
            "--seconds" => o.seconds = value()?.parse().context("--seconds: wall seconds per step")?,
            "--rate" => o.rate = value()?.parse().context("--rate: reports per second")?,
            "--help" | "-h" => {
                println!("yingji-bench-sim [--part fleet|latency|both] [--seconds S] [--rate REPORTS_PER_S]");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown option {other:?} (see --help)"),
        }
    }
    Ok(o)
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// A subscriber that stores nothing and counts what it gets.
async fn bare_subscriber(url: &yingji_node::config::MqttUrl) -> anyhow::Result<Arc<AtomicU64>> {
    let mut options = MqttOptions::new("bench-bare", url.host.clone(), url.port);
    options.set_max_packet_size(8 << 20, 8 << 20).set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    client.subscribe("n/#", QoS::AtLeastOnce).await?;
    let count = Arc::new(AtomicU64::new(0));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let c = count.clone();
    tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        while let Ok(event) = eventloop.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Event::Incoming(Packet::Publish(_)) => {
                    c.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx).await.context("subscribing")??;
    Ok(count)
}

async fn fleet_part(o: &Options) -> anyhow::Result<()> {
    let scenario = Scenario::load(&yingji_simulator::demo::shipped("typhoon.toml"))?;
    let mosquitto = Mosquitto::start();
    let brokers: BTreeMap<String, FieldBroker> = scenario
        .nodes
        .iter()
        .map(|n| (n.id.clone(), FieldBroker { url: mosquitto.url.clone(), mount: format!("n/{}/", n.id) }))
        .collect();
    let received = bare_subscriber(&mosquitto.url).await?;
    println!(
        "fleet: typhoon scenario, own Mosquitto (max_queued_messages 0), bare subscriber, {} s per speed",
        o.seconds
    );
    println!(
        "| speed | stations | scheduled msg/s | published msg/s | received msg/s | max lag ms | advance µs/msg | verdict |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut speed = 15.0_f64;
    let mut best: Option<(f64, usize, f64)> = None;
    loop {
        let mut world = World::new(&scenario, 1)?;
        let fleet = Fleet::connect(&brokers, 4, &format!("bench{speed}")).await?;
        let epoch = chrono::Utc::now() - chrono::Duration::hours(6);
        let received_before = received.load(Ordering::Relaxed);
        let start = Instant::now();
        let mut done = 0u64;
        let mut scheduled = 0u64;
        let mut advance_ns = 0u128;
        let limit_ms = ((o.seconds * 1000) as f64 * speed) as u64;
        while done < limit_ms.min(world.duration_ms()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let target =
                ((start.elapsed().as_secs_f64() * 1000.0 * speed) as u64).min(limit_ms).min(world.duration_ms());
            if target <= done {
                continue;
            }
            let t = Instant::now();
            let messages = world.advance(target, epoch);
            advance_ns += t.elapsed().as_nanos();
            scheduled += messages.len() as u64;
            for m in &messages {
                fleet.publish(m).await?;
                let due = start + Duration::from_secs_f64(m.at_ms as f64 / speed / 1000.0);
                let lag = Instant::now().saturating_duration_since(due).as_millis() as u64;
                fleet.counts.max_lag_ms.fetch_max(lag, Ordering::Relaxed);
            }
            done = target;
        }
        let wall = start.elapsed().as_secs_f64();
        fleet.flush(Duration::from_secs(30)).await;
        let settle = Instant::now();
        while received.load(Ordering::Relaxed) - received_before < scheduled
            && settle.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let got = received.load(Ordering::Relaxed) - received_before;
        let published = fleet.counts.published.load(Ordering::Relaxed);
        let max_lag = fleet.counts.max_lag_ms.load(Ordering::Relaxed);
        let kept_up = max_lag <= 1000 && got as f64 >= 0.95 * scheduled as f64;
        println!(
            "| ×{speed} | {} | {:.0} | {:.0} | {:.0} | {max_lag} | {:.1} | {} |",
            world.stations(),
            scheduled as f64 / wall,
            published as f64 / wall,
            got as f64 / wall,
            advance_ns as f64 / 1000.0 / scheduled.max(1) as f64,
            if kept_up { "kept up" } else { "fell behind" }
        );
        fleet.close().await;
        if !kept_up || speed >= 3840.0 {
            break;
        }
        best = Some((speed, world.stations(), published as f64 / wall));
        speed *= 2.0;
    }
    match best {
        Some((speed, stations, rate)) => println!(
            "fleet sustained: {stations} stations at ×{speed} = {rate:.0} messages/s; peak RSS {:.0} MB",
            rss_mb()
        ),
        None => println!("the fleet fell behind even at ×15"),
    }
    Ok(())
}

async fn latency_part(o: &Options) -> anyhow::Result<()> {
    let scenario = Scenario::load(&yingji_simulator::demo::shipped("short.toml"))?;
    let dir = tempfile::tempdir()?;
    let spec = EmbeddedSpec {
        mqtt: None,
        hub_db: None,
        data_dir: dir.path().to_owned(),
        hub_http: ([127, 0, 0, 1], 0).into(),
        exercise_console: true,
        ack_within_s: 600,
    };
    let platform = Platform::start_embedded(&scenario, &spec).await?;
    let node = scenario.nodes.first().context("the short scenario has a node")?;
    let counties: Vec<(String, f64, f64)> = scenario
        .geography
        .counties()
        .filter(|c| node.divisions.contains(&c.code))
        .filter_map(|c| scenario.geography.point_in(&c.code, || 0.5).map(|p| (c.code.clone(), p.lat, p.lon)))
        .collect();
    anyhow::ensure!(!counties.is_empty(), "no counties");
    let watcher = Watcher::start(&platform.hub_url, &platform.token).await?;
    let fleet = Fleet::connect(&platform.brokers, 4, "bench-latency").await?;
    let total = o.rate * o.seconds;
    let mut published: Vec<(String, i64)> = Vec::with_capacity(total as usize);
    let start = Instant::now();
    let observed = chrono::Utc::now().fixed_offset().to_rfc3339();
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / o.rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let (county, lat, lon) = &counties[i as usize % counties.len()];
        let id = format!("bench-{i}");
        let payload = json!({
            "id": id, "incident": "bench-latency", "stage": "update", "hazard": "typhoon",
            "observed_at": observed, "region": county, "location": {"lat": lat, "lon": lon},
            "figures": {"affected": i}, "exercise": true
        });
        let device = format!("unit-bench-{}", i % 200);
        let message = Outgoing {
            at_ms: 0,
            node: node.id.clone(),
            topic: format!("yingji/v1/report/{device}"),
            payload: serde_json::to_vec(&payload)?,
            kind: OutKind::Report,
            key: format!("{device}:{id}"),
        };
        fleet.publish(&message).await?;
        published.push((message.key, chrono::Utc::now().timestamp_millis()));
    }
    let achieved = total as f64 / start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = watcher.seen.lock().map(|s| s.reports.len()).unwrap_or(0);
        if seen as u64 >= total || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = watcher.seen.lock().map(|s| s.reports.clone()).unwrap_or_default();
    let latencies: Vec<f64> = published.iter().filter_map(|(id, at)| seen.get(id).map(|s| (s - at) as f64)).collect();
    let d = Dist::of(&latencies);
    println!(
        "latency: {total} reports at {achieved:.0}/s (asked {}/s) through one node to the hub (in-process brokers, SQLite): \
         seen {} ; device → hub-visible p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        o.rate,
        d.n,
        d.p50.unwrap_or(f64::NAN),
        d.p95.unwrap_or(f64::NAN),
        d.p99.unwrap_or(f64::NAN),
        d.max.unwrap_or(f64::NAN)
    );
    fleet.close().await;
    watcher.stop().await;
    platform.stop().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = parse_args()?;
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,rumqttd=off".into());
    let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(filter)).try_init();
    if matches!(o.part.as_str(), "fleet" | "both") {
        fleet_part(&o).await?;
    }
    if matches!(o.part.as_str(), "latency" | "both") {
        latency_part(&o).await?;
    }
    Ok(())
}
