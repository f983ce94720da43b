//! Ingest benchmark: a bare subscriber that stores nothing, then the node, against the same
//! broker in the same run, for SenML at QoS 1 with packs of 1 and of 20 records.
//!
//! ```sh
//! cargo build --release --workspace
//! cargo run --release -p yingji-tests --bin yingji-bench-ingest
//! ```
//!
//! The broker is a Mosquitto of the benchmark's own (lossless: `max_queued_messages 0`,
//! `max_inflight_messages 1000`) unless `--broker embedded` picks the in-process rumqttd.
//! The load comes from several publisher connections; their own rate is reported so that a slow
//! generator cannot flatter the ratio. The node runs as the release `yingji-node` binary with
//! SQLite in a temporary directory; its peak RSS is read from /proc.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use yingji_node::config::MqttUrl;
use yingji_tests::{NodeProcess, free_port};

struct Options {
    publishers: usize,
    readings: usize,
    packs: Vec<usize>,
    broker: String,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut o = Options { publishers: 4, readings: 400_000, packs: vec![1, 20], broker: "mosquitto".into() };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--publishers" => o.publishers = value()?.parse()?,
            "--readings" => o.readings = value()?.parse()?,
            "--packs" => o.packs = value()?.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--broker" => o.broker = value()?,
            "--help" | "-h" => {
                println!(
                    "yingji-bench-ingest [--readings N (400000)] [--packs 1,20] [--publishers 4] [--broker mosquitto|embedded]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    Ok(o)
}

/// The messages of one run: SenML packs with a unique (device, time) per reading.
fn workload(readings: usize, pack: usize, run: usize) -> Vec<(String, Vec<u8>)> {
    let messages = readings / pack;
    let t0 = chrono::Utc::now().timestamp() as f64 - 86_400.0 + run as f64 * 10_000.0;
    (0..messages)
        .map(|i| {
            let device = format!("bench-{}", i % 1000);
            let base = t0 + (i / 1000 * pack) as f64 * 0.001;
            let mut records = Vec::with_capacity(pack);
            for j in 0..pack {
                if j == 0 {
                    records.push(format!(r#"{{"bn":"{device}:","bt":{base:.3},"bu":"mm","n":"rain","v":0.5}}"#));
                } else {
                    records.push(format!(r#"{{"n":"rain","t":{:.3},"v":0.5}}"#, j as f64 * 0.001));
                }
            }
            (format!("yingji/v1/senml/{device}"), format!("[{}]", records.join(",")).into_bytes())
        })
        .collect()
}

/// Publishes the workload over `n` connections at QoS 1; returns the time until the last PUBACK.
async fn publish(url: &MqttUrl, work: Vec<(String, Vec<u8>)>, n: usize, tag: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let chunk = work.len().div_ceil(n);
    let mut tasks = Vec::new();
    for (k, part) in work.chunks(chunk).map(<[_]>::to_vec).enumerate() {
        let url = url.clone();
        let tag = tag.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut options = MqttOptions::new(format!("bench-pub-{tag}-{k}"), url.host.clone(), url.port);
            options.set_inflight(500).set_max_packet_size(1 << 20, 1 << 20).set_keep_alive(Duration::from_secs(60));
            let (client, mut eventloop) = AsyncClient::new(options, 1000);
            let want = part.len();
            let poller = tokio::spawn(async move {
                let mut acked = 0;
                while acked < want {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                        Ok(_) => {}
                        Err(e) => return Err(anyhow::anyhow!("publisher connection failed: {e}")),
                    }
                }
                Ok(())
            });
            for (topic, payload) in part {
                client.publish(topic, QoS::AtLeastOnce, false, payload).await?;
            }
            poller.await??;
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed())
}

/// A subscriber that stores nothing: it counts messages and acknowledges them at once.
async fn bare_subscriber(
    url: &MqttUrl,
    expected: usize,
    pack: usize,
    work: Vec<(String, Vec<u8>)>,
    publishers: usize,
    run: usize,
) -> anyhow::Result<(f64, f64)> {
    let mut options = MqttOptions::new(format!("bench-bare-{run}"), url.host.clone(), url.port);
    options.set_clean_session(false).set_max_packet_size(1 << 20, 1 << 20).set_keep_alive(Duration::from_secs(60));
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    client.subscribe("yingji/v1/senml/+", QoS::AtLeastOnce).await?;
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await? {
            break;
        }
    }
    let url2 = url.clone();
    let tag = format!("bare{run}");
    let started = Instant::now();
    let publishing = tokio::spawn(async move { publish(&url2, work, publishers, &tag).await });
    let mut received = 0;
    while received < expected {
        if let Event::Incoming(Packet::Publish(_)) = eventloop.poll().await? {
            received += 1;
        }
    }
    let elapsed = started.elapsed();
    let publish_time = publishing.await??;
    let _ = client.disconnect().await;
    Ok(((expected * pack) as f64 / elapsed.as_secs_f64(), (expected * pack) as f64 / publish_time.as_secs_f64()))
}

fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

async fn stored_readings(http: u16) -> Option<u64> {
    let text = reqwest::get(format!("http://127.0.0.1:{http}/metrics")).await.ok()?.text().await.ok()?;
    text.lines().find_map(|l| l.strip_prefix("yingji_node_readings_new_total ")).and_then(|v| v.trim().parse().ok())
}

async fn node_run(
    url: &MqttUrl,
    expected_readings: usize,
    work: Vec<(String, Vec<u8>)>,
    publishers: usize,
    run: usize,
    monitor: bool,
) -> anyhow::Result<(f64, f64, Option<f64>)> {
    let dir = tempfile::tempdir()?;
    let http = free_port();
    let db = format!("sqlite://{}", dir.path().join("bench.db").display());
    let node = NodeProcess::start(&[
        "--id",
        &format!("bench-{run}"),
        "--mqtt",
        &format!("mqtt://{}:{}", url.host, url.port),
        "--db",
        &db,
        "--http",
        &format!("127.0.0.1:{http}"),
        "--log",
        "warn",
        "--monitor",
        if monitor { "true" } else { "false" },
    ])?;
    let health = format!("http://127.0.0.1:{http}/healthz");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = async { reqwest::get(&health).await.ok()?.json::<serde_json::Value>().await.ok() }.await;
        if ok.is_some_and(|b| b["subscribed"] == true) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the node did not subscribe within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url2 = url.clone();
    let tag = format!("node{run}");
    let started = Instant::now();
    let publishing = tokio::spawn(async move { publish(&url2, work, publishers, &tag).await });
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if stored_readings(http).await.is_some_and(|n| n as usize >= expected_readings) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the node did not store everything within 600 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    let publish_time = publishing.await??;
    let rss = peak_rss_mb(node.pid());
    drop(node);
    Ok((expected_readings as f64 / elapsed.as_secs_f64(), expected_readings as f64 / publish_time.as_secs_f64(), rss))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = parse_args()?;
    // The handle keeps the benchmark's own Mosquitto running until the end.
    let (url, _mosquitto) = yingji_tests::start_broker(&o.broker)?;
    println!(
        "broker: {} at {}:{}; publishers: {}; readings per run: {}",
        o.broker, url.host, url.port, o.publishers, o.readings
    );
    println!();
    println!(
        "| pack | bare subscriber readings/s | node readings/s (stored, acked after commit; monitoring on) | ratio | \
         node readings/s, monitoring off | publisher readings/s (bare / node on / node off) | node peak RSS (on / off) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for (run, &pack) in o.packs.iter().enumerate() {
        let messages = o.readings / pack;
        let (bare, bare_pub) =
            bare_subscriber(&url, messages, pack, workload(o.readings, pack, run * 3), o.publishers, run).await?;
        let (node, node_pub, rss) =
            node_run(&url, messages * pack, workload(o.readings, pack, run * 3 + 1), o.publishers, run * 2, true)
                .await?;
        let (off, off_pub, off_rss) =
            node_run(&url, messages * pack, workload(o.readings, pack, run * 3 + 2), o.publishers, run * 2 + 1, false)
                .await?;
        let mb = |r: Option<f64>| r.map(|r| format!("{r:.0} MB")).unwrap_or_else(|| "n/a".into());
        println!(
            "| {pack} | {bare:.0} | {node:.0} | {:.2} | {off:.0} | {bare_pub:.0} / {node_pub:.0} / {off_pub:.0} | {} / {} |",
            node / bare,
            mb(rss),
            mb(off_rss)
        );
    }
    Ok(())
}
