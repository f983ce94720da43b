//! Ingest benchmark: a bare subscriber that stores nothing, then the node, against the same
//! broker in the same run, for SenML at QoS 1 with packs of 1 and of 20 records.
//!
//! ```sh
//! cargo build --release --workspace
//! cargo run --release -p yingji-tests --bin yingji-bench-ingest
//! ```
//!
//! The broker is a Mosquitto of the benchmark's own (lossless: `max_queued_messages 0`,
//! `max_inflight_messages 20000`) unless `--broker embedded` picks the in-process rumqttd.
//! The load comes from several publisher connections, each station's packs over one of them in
//! time order (as a station publishes); their own rate is reported so that a slow generator
//! cannot flatter the ratio. The node runs as the release `yingji-node` binary with SQLite in a
//! temporary directory; its peak RSS and the CPU time it used per million readings stored are
//! read from /proc. On a small machine the broker, the publishers and the node share the cores,
//! so the CPU figure is the steadier one to compare builds by.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use yingji_node::config::MqttUrl;
use yingji_tests::{NodeProcess, free_port};

struct Options {
    publishers: usize,
    stations: usize,
    /// Readings per run; by default 400,000 for packs of 1 and 2,000,000 for packs of 20 (about
    /// the same number of seconds each).
    readings: Option<usize>,
    packs: Vec<usize>,
    broker: String,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut o =
        Options { publishers: 4, stations: 1000, readings: None, packs: vec![1, 20], broker: "mosquitto".into() };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--publishers" => o.publishers = value()?.parse()?,
            "--stations" => o.stations = value()?.parse::<usize>()?.max(1),
            "--readings" => o.readings = Some(value()?.parse()?),
            "--packs" => o.packs = value()?.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--broker" => o.broker = value()?,
            "--help" | "-h" => {
                println!(
                    "yingji-bench-ingest [--readings N (400000 × pack, at most 2000000)] [--packs 1,20] [--stations N (1000)] [--publishers 4] \
                     [--broker mosquitto|embedded]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    Ok(o)
}

/// The messages of one run: SenML packs with a unique (device, time) per reading, from
/// `stations` stations in turn.
fn workload(readings: usize, pack: usize, stations: usize, run: usize) -> Vec<(String, Vec<u8>)> {
    let messages = readings / pack;
    let t0 = chrono::Utc::now().timestamp() as f64 - 86_400.0 + run as f64 * 10_000.0;
    (0..messages)
        .map(|i| {
            let device = format!("bench-{}", i % stations);
            let base = t0 + (i / stations * pack) as f64 * 0.001;
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
/// Each station's packs go over one connection in time order, as a station publishes.
async fn publish(url: &MqttUrl, work: Vec<(String, Vec<u8>)>, n: usize, tag: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let n = n.max(1);
    let mut parts: Vec<Vec<(String, Vec<u8>)>> = vec![Vec::new(); n];
    for (topic, payload) in work {
        let station = topic.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(b)));
        parts[station % n].push((topic, payload));
    }
    let mut tasks = Vec::new();
    for (k, part) in parts.into_iter().enumerate() {
        let url = url.clone();
        let tag = tag.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut options = MqttOptions::new(format!("bench-pub-{tag}-{k}"), url.host.clone(), url.port);
            options.set_inflight(500).set_max_packet_size(1 << 20, 1 << 20).set_keep_alive(Duration::from_secs(60));
            let (client, mut eventloop) = AsyncClient::new(options, 1000);
            patient(&mut eventloop);
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
    patient(&mut eventloop);
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
    forget_session(url, &format!("bench-bare-{run}")).await?;
    Ok(((expected * pack) as f64 / elapsed.as_secs_f64(), (expected * pack) as f64 / publish_time.as_secs_f64()))
}

/// Gives a connection a minute, not rumqttc's 5 s, to write to a broker that is saturated by
/// the benchmark itself.
fn patient(eventloop: &mut rumqttc::EventLoop) {
    let mut network = eventloop.network_options();
    network.set_connection_timeout(60);
    eventloop.set_network_options(network);
}

/// Ends a persistent session at the broker: connects with its client id and a clean session,
/// then leaves. Otherwise the broker would go on queueing every later message of the benchmark
/// for a subscriber that is gone, and later runs would pay for it.
async fn forget_session(url: &MqttUrl, client_id: &str) -> anyhow::Result<()> {
    let mut options = MqttOptions::new(client_id, url.host.clone(), url.port);
    options.set_clean_session(true).set_keep_alive(Duration::from_secs(60));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    loop {
        if let Event::Incoming(Packet::ConnAck(_)) = eventloop.poll().await? {
            break;
        }
    }
    client.disconnect().await?;
    while eventloop.poll().await.is_ok() {}
    Ok(())
}

fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// CPU seconds (user + system) the process has used so far.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
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
) -> anyhow::Result<(f64, f64, Option<f64>, Option<f64>)> {
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
    let cpu_before = cpu_seconds(node.pid());
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
    // CPU seconds per million readings stored: what the node costs the machine, steadier than
    // a rate on a machine whose two cores the broker and the publishers share.
    let cpu = cpu_seconds(node.pid()).zip(cpu_before).map(|(a, b)| (a - b) / (expected_readings as f64 / 1e6));
    drop(node);
    forget_session(url, &format!("yingji-node-bench-{run}")).await?;
    Ok((
        expected_readings as f64 / elapsed.as_secs_f64(),
        expected_readings as f64 / publish_time.as_secs_f64(),
        rss,
        cpu,
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = parse_args()?;
    // The handle keeps the benchmark's own Mosquitto running until the end.
    let (url, _mosquitto) = yingji_tests::start_broker(&o.broker)?;
    println!(
        "broker: {} at {}:{}; publishers: {}; stations: {}; readings per run: {}",
        o.broker,
        url.host,
        url.port,
        o.publishers,
        o.stations,
        o.readings.map_or_else(|| "400,000 per record in a pack, at most 2,000,000".to_owned(), |r| r.to_string())
    );
    println!();
    println!(
        "| pack | bare subscriber readings/s | node readings/s (stored, acked after commit; monitoring on) | ratio | \
         node readings/s, monitoring off | ratio | publisher readings/s (bare / node on / node off) | \
         node peak RSS (on / off) | node CPU s per 1M readings (on / off) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (run, &pack) in o.packs.iter().enumerate() {
        let readings = o.readings.unwrap_or(400_000 * pack.min(5));
        let messages = readings / pack;
        let (bare, bare_pub) =
            bare_subscriber(&url, messages, pack, workload(readings, pack, o.stations, run * 3), o.publishers, run)
                .await?;
        let (node, node_pub, rss, cpu) = node_run(
            &url,
            messages * pack,
            workload(readings, pack, o.stations, run * 3 + 1),
            o.publishers,
            run * 2,
            true,
        )
        .await?;
        let (off, off_pub, off_rss, off_cpu) = node_run(
            &url,
            messages * pack,
            workload(readings, pack, o.stations, run * 3 + 2),
            o.publishers,
            run * 2 + 1,
            false,
        )
        .await?;
        let mb = |r: Option<f64>| r.map(|r| format!("{r:.0} MB")).unwrap_or_else(|| "n/a".into());
        let s = |c: Option<f64>| c.map(|c| format!("{c:.2}")).unwrap_or_else(|| "n/a".into());
        println!(
            "| {pack} | {bare:.0} | {node:.0} | {:.2} | {off:.0} | {:.2} | {bare_pub:.0} / {node_pub:.0} / {off_pub:.0} | {} / {} | {} / {} |",
            node / bare,
            off / bare,
            mb(rss),
            mb(off_rss),
            s(cpu),
            s(off_cpu)
        );
    }
    Ok(())
}
