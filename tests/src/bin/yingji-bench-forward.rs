//! Forwarding benchmark: field reports at a steady rate into a node, and the time from each
//! report's publish until its summarized event (`{node}:report:{device}:{id}`) reaches a
//! hub-side receiver, as p50 / p95 / p99 / max.
//!
//! ```sh
//! cargo build --release --workspace
//! cargo run --release -p yingji-tests --bin yingji-bench-forward                      # own Mosquitto
//! cargo run --release -p yingji-tests --bin yingji-bench-forward -- --broker embedded # in-process rumqttd
//! ```
//!
//! One broker serves both sides (the node's `--hub-mqtt` defaults to its field broker): a
//! Mosquitto of the benchmark's own (lossless, as in the ingest benchmark) unless
//! `--broker embedded` picks the in-process rumqttd. The node runs as the release `yingji-node`
//! binary with SQLite in a temporary directory.
//!
//! The publisher stamps each report with `Instant::now()` just before it hands it to its MQTT
//! client, and publishes on a 1 ms tick as many reports as are due by then, so the rate holds
//! on average even when a tick comes late. The hub-side receiver stamps each event when its
//! event loop returns it, hands it to another task, and that task commits it by id in memory and
//! sends the node its receipt, as the hub's intake does; the event loop itself never publishes.
//! Both stamps come from the same monotonic clock, so latency is simply arrival − publish.
//!
//! First, unless `--no-bare`, a bare relay that stores nothing takes the node's place: it turns
//! each report into an event at once over one rumqttc connection with the node's defaults, so
//! the table shows what the two broker hops cost on their own. The benchmark's own connections
//! (publisher, hub side) set `TCP_NODELAY`, so that they add no Nagle wait of their own.
//!
//! The node's own `yingji_node_forward_latency_seconds` (an event's creation in the commit's
//! transaction → its first publish to the hub) is read from `/metrics` before and after the
//! measured window, so that the warm-up report does not count.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, Publish, QoS};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use yingji_node::config::MqttUrl;
use yingji_proto::topic;
use yingji_tests::{NodeProcess, free_port};

/// The node's id: its events come on `yingji/v1/node/bench-fwd/event`.
const NODE: &str = "bench-fwd";

/// The bare relay's id, as if it were a node.
const RELAY: &str = "bench-relay";

/// Reports come from this many devices, in turn.
const DEVICES: u64 = 100;

/// Counties of one prefecture (浙江温州): each report updates one of them, so every batch also
/// gives statistics snapshots for a county, the prefecture and the province, as in the field.
const REGIONS: [&str; 8] = ["330302", "330303", "330304", "330305", "330324", "330326", "330327", "330381"];

struct Options {
    rate: u64,
    seconds: u64,
    broker: String,
    /// Whether to measure a bare relay first (on by default).
    bare: bool,
    /// Where to write one line per report (publish offset, latency, its first part), if anywhere.
    csv: Option<std::path::PathBuf>,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut o = Options { rate: 1000, seconds: 30, broker: "mosquitto".into(), bare: true, csv: None };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--rate" => o.rate = value()?.parse().context("--rate: reports per second")?,
            "--seconds" => o.seconds = value()?.parse().context("--seconds: how long to publish")?,
            "--broker" => o.broker = value()?,
            "--csv" => o.csv = Some(value()?.into()),
            "--no-bare" => o.bare = false,
            "--help" | "-h" => {
                println!(
                    "yingji-bench-forward [--rate REPORTS_PER_S (1000)] [--seconds S (30)] [--broker mosquitto|embedded] [--no-bare] [--csv FILE]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    if o.rate == 0 || o.seconds == 0 {
        bail!("--rate and --seconds must be at least 1");
    }
    Ok(o)
}

/// Report `n`: its topic, payload, and the id of the event `node` should make of it.
fn report(node: &str, n: u64, tag: &str) -> (String, Vec<u8>, String) {
    let device = format!("bench-{}", n % DEVICES);
    let id = format!("{tag}-{n:07}");
    let region = REGIONS[(n % REGIONS.len() as u64) as usize];
    let payload = serde_json::json!({
        "id": id,
        "incident": "bench-typhoon",
        "stage": "update",
        "hazard": "typhoon",
        "observed_at": chrono::Utc::now().fixed_offset().to_rfc3339(),
        "location": {"lat": 28.02, "lon": 120.65},
        "region": region,
        "figures": {"affected": 1000 + n % 500, "deaths": 0, "relocated": n % 100, "crop_area_ha": 1.5},
        "text": "roads flooded; power out in two villages",
        "exercise": false
    });
    let event_id = format!("{node}:report:{device}:{id}");
    (format!("yingji/v1/report/{device}"), payload.to_string().into_bytes(), event_id)
}

/// Turns Nagle's algorithm off on the benchmark's own connections, so that they add no wait of
/// their own to what is measured (the node's connections keep the rumqttc default).
fn no_delay(eventloop: &mut rumqttc::EventLoop) {
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
}

/// The field side: one MQTT connection publishing reports at QoS 1.
struct Field {
    client: AsyncClient,
    acked: watch::Receiver<u64>,
    published: u64,
    poller: JoinHandle<anyhow::Result<()>>,
}

impl Field {
    async fn connect(url: &MqttUrl, client_id: &str) -> anyhow::Result<Field> {
        let mut options = MqttOptions::new(client_id, url.host.clone(), url.port);
        options.set_inflight(1000).set_max_packet_size(1 << 20, 1 << 20).set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(options, 10_000);
        no_delay(&mut eventloop);
        let (acked_tx, acked) = watch::channel(0u64);
        let (connected_tx, connected) = oneshot::channel();
        let mut connected_tx = Some(connected_tx);
        let poller = tokio::spawn(async move {
            let mut count = 0u64;
            loop {
                match eventloop.poll().await.context("the field publisher lost its broker connection")? {
                    Event::Incoming(Packet::ConnAck(_)) => {
                        if let Some(tx) = connected_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Event::Incoming(Packet::PubAck(_)) => {
                        count += 1;
                        let _ = acked_tx.send(count);
                    }
                    Event::Outgoing(Outgoing::Disconnect) => return Ok(()),
                    _ => {}
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), connected)
            .await
            .context("the field publisher did not connect within 10 s")?
            .context("the field publisher's connection failed")?;
        Ok(Field { client, acked, published: 0, poller })
    }

    async fn publish(&mut self, topic: String, payload: Vec<u8>) -> anyhow::Result<()> {
        self.client.publish(topic, QoS::AtLeastOnce, false, payload).await.context("publish a report")?;
        self.published += 1;
        Ok(())
    }

    /// Waits until the broker has acknowledged everything published so far.
    async fn wait_acked(&mut self, within: Duration) -> anyhow::Result<()> {
        let want = self.published;
        tokio::time::timeout(within, self.acked.wait_for(|n| *n >= want))
            .await
            .with_context(|| format!("the broker did not acknowledge {want} reports within {within:?}"))?
            .context("the field publisher stopped")?;
        Ok(())
    }

    async fn close(self) -> anyhow::Result<()> {
        let _ = self.client.disconnect().await;
        tokio::time::timeout(Duration::from_secs(5), self.poller).await.ok();
        Ok(())
    }
}

/// What the paced run published.
struct Published {
    /// When each report was handed to the client, by the id of the event it should become: the
    /// monotonic instant, and the wall clock in µs (to compare with the node's `received_at`).
    sent_at: HashMap<String, (Instant, i64)>,
    /// The first publish.
    started: Instant,
    /// From the first publish to the last.
    span: Duration,
}

/// Publishes `rate × seconds` reports for `node`, as many per 1 ms tick as are due by then.
async fn publish_paced(field: &mut Field, node: &str, rate: u64, seconds: u64) -> anyhow::Result<Published> {
    let total = rate * seconds;
    let mut sent_at = HashMap::with_capacity(total as usize);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut last = started;
    let mut sent = 0;
    while sent < total {
        tick.tick().await;
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(total);
        while sent < due {
            let (topic, payload, event_id) = report(node, sent, "r");
            last = Instant::now();
            let wall = chrono::Utc::now().timestamp_micros();
            field.publish(topic, payload).await?;
            sent_at.insert(event_id, (last, wall));
            sent += 1;
        }
    }
    Ok(Published { sent_at, started, span: last.duration_since(started) })
}

/// What the hub-side receiver saw.
#[derive(Default)]
struct Arrivals {
    /// The first arrival of each event id, with the `received_at` of a report event's body (when
    /// the node took the report in), in µs of the wall clock.
    first: HashMap<String, (Instant, Option<i64>)>,
    /// Distinct events that were not reports (statistics snapshots).
    others: u64,
    /// Deliveries of an id already seen.
    duplicates: u64,
    /// Deliveries that were not a contract v1 event.
    unreadable: u64,
    /// Receipt messages sent.
    receipts: u64,
}

/// The part of an event the receiver needs.
#[derive(serde::Deserialize)]
struct EventHead {
    id: String,
    node: String,
    kind: String,
    #[serde(default)]
    body: BodyHead,
}

/// The part of an event's body the receiver needs.
#[derive(serde::Deserialize, Default)]
struct BodyHead {
    received_at: Option<chrono::DateTime<chrono::FixedOffset>>,
}

/// A hub-side receiver of the benchmark's own: stamps events on arrival and receipts them.
struct HubSide {
    /// Distinct report events so far.
    reports: watch::Receiver<u64>,
    stop: CancellationToken,
    poller: JoinHandle<anyhow::Result<()>>,
    committer: JoinHandle<anyhow::Result<Arrivals>>,
}

impl HubSide {
    async fn start(url: &MqttUrl, node: &str, client_id: &str) -> anyhow::Result<HubSide> {
        let mut options = MqttOptions::new(client_id, url.host.clone(), url.port);
        options.set_inflight(1000).set_max_packet_size(1 << 20, 1 << 20).set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(options, 10_000);
        no_delay(&mut eventloop);
        // Queued now, sent right after CONNECT by the first poll.
        client.subscribe(topic::node_event(node), QoS::AtLeastOnce).await.context("subscribe to events")?;
        let stop = CancellationToken::new();
        let (deliveries_tx, mut deliveries) = mpsc::unbounded_channel::<(Instant, Publish)>();
        let (subscribed_tx, subscribed) = oneshot::channel();
        let mut subscribed_tx = Some(subscribed_tx);
        // The event loop only stamps and hands off.
        let token = stop.clone();
        let poller = tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    _ = token.cancelled() => return Ok(()),
                    e = eventloop.poll() => e,
                };
                let arrived = Instant::now();
                match event.context("the hub-side receiver lost its broker connection")? {
                    Event::Incoming(Packet::Publish(p)) => {
                        let _ = deliveries_tx.send((arrived, p));
                    }
                    Event::Incoming(Packet::SubAck(_)) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    _ => {}
                }
            }
        });
        // Commits by id in memory and publishes receipts: everything waiting goes in one receipt.
        let (reports_tx, reports) = watch::channel(0u64);
        let token = stop.clone();
        let committer = tokio::spawn(async move {
            let mut arrivals = Arrivals::default();
            let mut reports = 0u64;
            loop {
                let first = tokio::select! {
                    biased;
                    _ = token.cancelled() => break,
                    d = deliveries.recv() => match d {
                        Some(d) => d,
                        None => break,
                    },
                };
                let mut by_node: HashMap<String, Vec<String>> = HashMap::new();
                let mut next = Some(first);
                while let Some((arrived, publish)) = next {
                    match serde_json::from_slice::<EventHead>(&publish.payload) {
                        Ok(head) => {
                            by_node.entry(head.node).or_default().push(head.id.clone());
                            match arrivals.first.entry(head.id) {
                                Entry::Occupied(_) => arrivals.duplicates += 1,
                                Entry::Vacant(v) => {
                                    v.insert((arrived, head.body.received_at.map(|t| t.timestamp_micros())));
                                    if head.kind == "report" {
                                        reports += 1;
                                    } else {
                                        arrivals.others += 1;
                                    }
                                }
                            }
                        }
                        Err(_) => arrivals.unreadable += 1,
                    }
                    next = deliveries.try_recv().ok();
                }
                let _ = reports_tx.send(reports);
                for (node, ids) in by_node {
                    let payload = serde_json::to_vec(&yingji_proto::event::Receipt { ids }).context("receipt JSON")?;
                    client
                        .publish(topic::node_receipt(&node), QoS::AtLeastOnce, false, payload)
                        .await
                        .context("publish a receipt")?;
                    arrivals.receipts += 1;
                }
            }
            Ok(arrivals)
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed)
            .await
            .context("the hub-side receiver did not subscribe within 10 s")?
            .context("the hub-side receiver's connection failed")?;
        Ok(HubSide { reports, stop, poller, committer })
    }

    /// Waits until `want` distinct report events have come, or `within` has passed; returns how
    /// many came.
    async fn wait_reports(&mut self, want: u64, within: Duration) -> anyhow::Result<u64> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let have = *self.reports.borrow();
            if have >= want || tokio::time::Instant::now() >= deadline {
                return Ok(have);
            }
            if self.poller.is_finished() || self.committer.is_finished() {
                bail!("the hub-side receiver stopped early");
            }
            let _ = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(100)),
                self.reports.changed(),
            )
            .await;
        }
    }

    async fn finish(self) -> anyhow::Result<Arrivals> {
        self.stop.cancel();
        self.poller.await.context("the receiver's event loop task")??;
        self.committer.await.context("the receiver's commit task")?
    }
}

/// The node's `/metrics` text.
async fn scrape(http: u16) -> anyhow::Result<String> {
    reqwest::get(format!("http://127.0.0.1:{http}/metrics"))
        .await
        .context("GET /metrics")?
        .text()
        .await
        .context("read /metrics")
}

/// The value of an unlabelled sample, e.g. `yingji_node_events_sent_total`.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The cumulative buckets of a histogram, as (upper bound, count).
fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, rest) = rest.split_once("\"}")?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, rest.split_whitespace().next()?.parse().ok()?))
        })
        .collect()
}

/// A histogram's change between two scrapes.
struct HistogramDelta {
    sum: f64,
    count: f64,
    buckets: Vec<(f64, f64)>,
}

impl HistogramDelta {
    fn between(before: &str, after: &str, name: &str) -> HistogramDelta {
        let (b, a) = (buckets(before, name), buckets(after, name));
        HistogramDelta {
            sum: sample(after, &format!("{name}_sum")) - sample(before, &format!("{name}_sum")),
            count: sample(after, &format!("{name}_count")) - sample(before, &format!("{name}_count")),
            buckets: a
                .iter()
                .map(|(le, n)| (*le, n - b.iter().find(|(l, _)| l == le).map_or(0.0, |(_, m)| *m)))
                .collect(),
        }
    }

    fn mean(&self) -> f64 {
        if self.count > 0.0 { self.sum / self.count } else { 0.0 }
    }

    /// The upper bound of the bucket that holds quantile `q`.
    fn quantile_bound(&self, q: f64) -> f64 {
        let want = q * self.count;
        self.buckets.iter().find(|(_, n)| *n >= want).map_or(f64::NAN, |(le, _)| *le)
    }
}

/// Nearest-rank percentile of sorted durations.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn wait_subscribed(http: u16) -> anyhow::Result<()> {
    let health = format!("http://127.0.0.1:{http}/healthz");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = async { reqwest::get(&health).await.ok()?.json::<serde_json::Value>().await.ok() }.await;
        if ok.is_some_and(|b| b["subscribed"] == true) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the node did not subscribe within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the node's metrics until `done` holds, or gives up after `within`; returns the last text.
async fn wait_metrics(http: u16, within: Duration, done: impl Fn(&str) -> bool) -> anyhow::Result<(String, bool)> {
    let deadline = Instant::now() + within;
    loop {
        let text = scrape(http).await?;
        if done(&text) {
            return Ok((text, true));
        }
        if Instant::now() > deadline {
            return Ok((text, false));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A relay that stores nothing: it turns each report into an event at once, over one MQTT
/// connection with the rumqttc defaults the node uses (QoS 1, Nagle's algorithm on). What it
/// gets is what two broker hops cost without a node: the baseline for the node's figure.
struct Relay {
    stop: CancellationToken,
    poller: JoinHandle<anyhow::Result<()>>,
    publisher: JoinHandle<anyhow::Result<()>>,
}

impl Relay {
    async fn start(url: &MqttUrl, node: &str) -> anyhow::Result<Relay> {
        let mut options = MqttOptions::new(format!("{node}-relay"), url.host.clone(), url.port);
        options.set_inflight(500).set_max_packet_size(1 << 20, 1 << 20).set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(options, 4096);
        client.subscribe("yingji/v1/report/+", QoS::AtLeastOnce).await.context("subscribe to reports")?;
        let stop = CancellationToken::new();
        let (reports_tx, mut reports) = mpsc::unbounded_channel::<Publish>();
        let (subscribed_tx, subscribed) = oneshot::channel();
        let mut subscribed_tx = Some(subscribed_tx);
        let token = stop.clone();
        let poller = tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    _ = token.cancelled() => return Ok(()),
                    e = eventloop.poll() => e,
                };
                match event.context("the relay lost its broker connection")? {
                    Event::Incoming(Packet::Publish(p)) => {
                        let _ = reports_tx.send(p);
                    }
                    Event::Incoming(Packet::SubAck(_)) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    _ => {}
                }
            }
        });
        let token = stop.clone();
        let node = node.to_owned();
        let publisher = tokio::spawn(async move {
            #[derive(serde::Deserialize)]
            struct IdOnly {
                id: String,
            }
            loop {
                let report = tokio::select! {
                    _ = token.cancelled() => return Ok(()),
                    r = reports.recv() => match r {
                        Some(r) => r,
                        None => return Ok(()),
                    },
                };
                let device = report.topic.rsplit('/').next().unwrap_or_default();
                let Ok(IdOnly { id }) = serde_json::from_slice(&report.payload) else { continue };
                let event = serde_json::json!({
                    "id": format!("{node}:report:{device}:{id}"),
                    "node": node,
                    "kind": "report",
                    "body": {},
                });
                client
                    .publish(topic::node_event(&node), QoS::AtLeastOnce, false, event.to_string())
                    .await
                    .context("relay an event")?;
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed)
            .await
            .context("the relay did not subscribe within 10 s")?
            .context("the relay's connection failed")?;
        Ok(Relay { stop, poller, publisher })
    }

    async fn finish(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.poller.await.context("the relay's event loop task")??;
        self.publisher.await.context("the relay's publish task")?
    }
}

/// The figures of one run.
struct Measured {
    total: u64,
    /// Reports per second from the first publish to the last.
    achieved: f64,
    /// Distinct report events that reached the hub side.
    received: u64,
    arrivals: Arrivals,
    /// Publish → first arrival, sorted.
    latencies: Vec<Duration>,
    /// The same in two parts, split at the node's `received_at` (empty for the bare relay).
    to_node: Vec<Duration>,
    to_hub: Vec<Duration>,
}

impl Measured {
    fn new(
        total: u64,
        received: u64,
        published: &Published,
        arrivals: Arrivals,
        csv: Option<&std::path::Path>,
    ) -> anyhow::Result<Measured> {
        let mut latencies = Vec::with_capacity(published.sent_at.len());
        let (mut to_node, mut to_hub) = (Vec::new(), Vec::new());
        let mut rows = Vec::new();
        for (id, (sent, sent_wall)) in &published.sent_at {
            let Some((arrived, received_at)) = arrivals.first.get(id) else { continue };
            let latency = arrived.saturating_duration_since(*sent);
            latencies.push(latency);
            // The node stamps `received_at` in whole ms of its wall clock, so each part is only
            // good to about a millisecond.
            let first_leg =
                received_at.map(|r| Duration::from_micros(r.saturating_sub(*sent_wall).max(0) as u64).min(latency));
            if let Some(first_leg) = first_leg {
                to_node.push(first_leg);
                to_hub.push(latency - first_leg);
            }
            if csv.is_some() {
                rows.push((sent.duration_since(published.started), latency, first_leg));
            }
        }
        if let Some(path) = csv {
            rows.sort_unstable_by_key(|r| r.0);
            let mut text = String::from("publish_offset_ms,latency_ms,publish_to_node_ms\n");
            for (offset, latency, first_leg) in rows {
                let first_leg = first_leg.map(|d| format!("{:.3}", d.as_secs_f64() * 1000.0)).unwrap_or_default();
                text.push_str(&format!(
                    "{:.3},{:.3},{first_leg}\n",
                    offset.as_secs_f64() * 1000.0,
                    latency.as_secs_f64() * 1000.0
                ));
            }
            std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
        }
        if latencies.is_empty() {
            bail!("no report event reached the hub side");
        }
        latencies.sort_unstable();
        to_node.sort_unstable();
        to_hub.sort_unstable();
        let achieved = total.saturating_sub(1) as f64 / published.span.as_secs_f64().max(f64::MIN_POSITIVE);
        Ok(Measured { total, achieved, received, arrivals, latencies, to_node, to_hub })
    }

    fn row(&self, what: &str) -> String {
        let mean = self.latencies.iter().sum::<Duration>() / self.latencies.len().max(1) as u32;
        format!(
            "| {what} | {} | {:.0}/s | {} | {} | {} | {} | {} | {} | {} |",
            self.total,
            self.achieved,
            self.received,
            self.arrivals.duplicates,
            ms(percentile(&self.latencies, 0.50)),
            ms(percentile(&self.latencies, 0.95)),
            ms(percentile(&self.latencies, 0.99)),
            ms(percentile(&self.latencies, 1.0)),
            ms(mean),
        )
    }
}

/// The bare relay in place of the node.
async fn bare_run(url: &MqttUrl, o: &Options) -> anyhow::Result<Measured> {
    let mut hub = HubSide::start(url, RELAY, "bench-hub-bare").await?;
    let relay = Relay::start(url, RELAY).await?;
    let mut field = Field::connect(url, "bench-field-bare").await?;
    let (topic, payload, _) = report(RELAY, 0, "warmup");
    field.publish(topic, payload).await?;
    if hub.wait_reports(1, Duration::from_secs(30)).await? < 1 {
        bail!("the warm-up report did not come through the relay within 30 s");
    }
    let total = o.rate * o.seconds;
    let published = publish_paced(&mut field, RELAY, o.rate, o.seconds).await?;
    field.wait_acked(Duration::from_secs(60)).await?;
    let received = hub.wait_reports(total + 1, Duration::from_secs(60)).await?.saturating_sub(1);
    field.close().await?;
    relay.finish().await?;
    let arrivals = hub.finish().await?;
    Measured::new(total, received, &published, arrivals, None)
}

/// What the node's `/metrics` said before and after the measured window.
struct NodeMetrics {
    before: String,
    after: String,
    /// Whether the outbox was empty, everything receipted, at the end.
    drained: bool,
}

/// The `yingji-node` process, its hub link on the same broker.
async fn node_run(url: &MqttUrl, o: &Options) -> anyhow::Result<(Measured, NodeMetrics)> {
    let mut hub = HubSide::start(url, NODE, "bench-hub").await?;
    let dir = tempfile::tempdir().context("a temporary directory for the database")?;
    let http = free_port();
    let db = format!("sqlite://{}", dir.path().join("bench.db").display());
    let mqtt = format!("mqtt://{}:{}", url.host, url.port);
    let listen = format!("127.0.0.1:{http}");
    let node = NodeProcess::start(&["--id", NODE, "--mqtt", &mqtt, "--db", &db, "--http", &listen, "--log", "warn"])
        .context("start yingji-node")?;
    wait_subscribed(http).await?;
    let mut field = Field::connect(url, "bench-field").await?;

    // Warm-up: one report all the way round, receipt included, so that the node's hub link is
    // up and subscribed to receipts before the clock starts.
    let (topic, payload, _) = report(NODE, 0, "warmup");
    field.publish(topic, payload).await?;
    if hub.wait_reports(1, Duration::from_secs(30)).await? < 1 {
        bail!("the warm-up report's event did not reach the hub side within 30 s");
    }
    let (before, receipted) =
        wait_metrics(http, Duration::from_secs(30), |m| sample(m, "yingji_node_events_receipted_total") >= 1.0).await?;
    if !receipted {
        bail!("the node took no receipt for the warm-up event within 30 s");
    }

    let total = o.rate * o.seconds;
    let published = publish_paced(&mut field, NODE, o.rate, o.seconds).await?;
    field.wait_acked(Duration::from_secs(60)).await?;
    let received = hub.wait_reports(total + 1, Duration::from_secs(60)).await?.saturating_sub(1);
    // Let the last receipts land, so that a resend would show up as a duplicate.
    let (after, drained) = wait_metrics(http, Duration::from_secs(10), |m| {
        sample(m, "yingji_node_outbox_events") == 0.0
            && sample(m, "yingji_node_events_receipted_total") >= (total + 1) as f64
    })
    .await?;
    field.close().await?;
    let arrivals = hub.finish().await?;
    drop(node);
    let measured = Measured::new(total, received, &published, arrivals, o.csv.as_deref())?;
    Ok((measured, NodeMetrics { before, after, drained }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = parse_args()?;
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build measures the debug node; run with --release");
    }
    // The handle keeps the benchmark's own Mosquitto running until the end.
    let (url, _mosquitto) = yingji_tests::start_broker(&o.broker)?;
    println!(
        "broker: {} at {}:{}; {} reports/s for {} s; the node runs yingji-node with SQLite, its hub link on the same broker",
        o.broker, url.host, url.port, o.rate, o.seconds
    );
    let bare = if o.bare { Some(bare_run(&url, &o).await?) } else { None };
    let (node, metrics) = node_run(&url, &o).await?;

    println!();
    println!(
        "| path | reports published | publish rate | report events received | duplicates | p50 | p95 | p99 | max | mean |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    if let Some(bare) = &bare {
        println!("{}", bare.row("bare relay (stores nothing)"));
    }
    println!("{}", node.row("yingji-node"));

    println!();
    println!(
        "The node's latency in two parts, split at the report's `received_at` in its event (the node's clock, whole ms):"
    );
    println!();
    println!("| part | p50 | p95 | p99 | max |");
    println!("|---|---:|---:|---:|---:|");
    for (part, sorted) in [
        ("publish → node took it in (field broker, node's MQTT client, ingest queue)", &node.to_node),
        ("node took it in → hub side (batch, commit, forwarder, hub broker)", &node.to_hub),
    ] {
        println!(
            "| {part} | {} | {} | {} | {} |",
            ms(percentile(sorted, 0.50)),
            ms(percentile(sorted, 0.95)),
            ms(percentile(sorted, 0.99)),
            ms(percentile(sorted, 1.0)),
        );
    }

    let (before, after) = (&metrics.before, &metrics.after);
    let forward = HistogramDelta::between(before, after, "yingji_node_forward_latency_seconds");
    let commit = HistogramDelta::between(before, after, "yingji_node_commit_seconds");
    let batch = HistogramDelta::between(before, after, "yingji_node_batch_messages");
    let delta = |name: &str| sample(after, name) - sample(before, name);
    println!();
    println!("Inside the node over the same window (from /metrics):");
    println!();
    println!(
        "| forward latency (commit → first publish): sum / count | mean | p50 ≤ | p99 ≤ | events sent / resent | commits | mean batch | commit mean / p99 ≤ |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {:.3} s / {:.0} | {:.1} ms | {:.1} ms | {:.1} ms | {:.0} / {:.0} | {:.0} | {:.1} msgs | {:.2} ms / {:.1} ms |",
        forward.sum,
        forward.count,
        forward.mean() * 1000.0,
        forward.quantile_bound(0.50) * 1000.0,
        forward.quantile_bound(0.99) * 1000.0,
        delta("yingji_node_events_sent_total"),
        delta("yingji_node_events_resent_total"),
        commit.count,
        batch.mean(),
        commit.mean() * 1000.0,
        commit.quantile_bound(0.99) * 1000.0,
    );
    println!();
    println!(
        "other events (statistics snapshots) received: {}; receipts sent: {}; unreadable: {}; outbox empty at the end: {}",
        node.arrivals.others,
        node.arrivals.receipts,
        node.arrivals.unreadable,
        if metrics.drained { "yes" } else { "no" },
    );
    for (what, m) in bare.iter().map(|b| ("bare relay", b)).chain([("node", &node)]) {
        if m.received < m.total {
            println!(
                "MISSING ({what}): {} report events did not arrive within 60 s of the last publish",
                m.total - m.received
            );
        }
    }
    Ok(())
}
