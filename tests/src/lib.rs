//! The end-to-end test harness: brokers, databases and nodes on free ports, each test with its
//! own, so that tests run in parallel.
//!
//! - [`TestDb`]: a fresh SQLite file, or a fresh PostgreSQL schema when `YINGJI_TEST_PG_URL`
//!   is set.
//! - [`Mosquitto`]: a Mosquitto process of the test's own on a free port, configured to lose
//!   nothing (`max_queued_messages 0`); used when `YINGJI_TEST_MQTT_URL` is set (that variable
//!   says an external broker is available to the suite).
//! - [`spawn_embedded_broker`]: an in-process rumqttd on a free port.
//! - [`TestNode`]: a node running in-process; [`NodeProcess`]: the `yingji-node` binary, for
//!   tests that kill it.
//! - [`Publisher`]: an ordinary MQTT client that publishes at QoS 1 and waits for every PUBACK.
//! - [`eventually`]: polls a condition with a deadline instead of sleeping.
//! - [`browser`]: headless Chromium through chromedriver, for the console's tests.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::bail;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use tokio_util::sync::CancellationToken;
use yingji_node::Node;
use yingji_node::config::{Config, MqttUrl};
use yingji_node::store::Store;

pub mod browser;

/// Logs go to the test output only when `TEST_LOG=1`.
pub fn init_logging() {
    if std::env::var("TEST_LOG").is_ok_and(|v| v == "1") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,rumqttd=warn"))
            .with_test_writer()
            .try_init();
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; the OS does not hand it out again at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Polls `check` every 20 ms until it returns `Some`, or fails after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match poll_until(within, check).await {
        Some(value) => value,
        None => panic!("timed out after {within:?} waiting for {what}"),
    }
}

/// Polls `check` every 20 ms until it returns `Some`; `None` after `within`, for callers that
/// clean up or say more before they fail. The one polling loop of the suite.
pub async fn poll_until<T, F, Fut>(within: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

/// The database kinds available here: SQLite always, PostgreSQL when `YINGJI_TEST_PG_URL` is set.
pub fn db_kinds() -> Vec<DbKind> {
    let mut kinds = vec![DbKind::Sqlite];
    if pg_url().is_some() {
        kinds.push(DbKind::Postgres);
    } else {
        eprintln!("YINGJI_TEST_PG_URL is not set: PostgreSQL cases are skipped here (CI sets it)");
    }
    kinds
}

fn pg_url() -> Option<String> {
    std::env::var("YINGJI_TEST_PG_URL").ok().filter(|u| !u.is_empty())
}

/// A database of the test's own.
pub struct TestDb {
    pub url: String,
    pub kind: DbKind,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(kind: DbKind) -> TestDb {
        match kind {
            DbKind::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("node.db").display());
                TestDb { url, kind, _dir: Some(dir) }
            }
            DbKind::Postgres => {
                let base = pg_url().expect("YINGJI_TEST_PG_URL");
                let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
                let pool = sqlx::PgPool::connect(&base).await.expect("connect to YINGJI_TEST_PG_URL");
                // The schema name is made here from a UUID: nothing outside the test is in it.
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&pool)
                    .await
                    .expect("create schema");
                pool.close().await;
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
                TestDb { url, kind, _dir: None }
            }
        }
    }
}

/// Starts an in-process broker on a free port and returns its URL.
pub fn spawn_embedded_broker() -> MqttUrl {
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    yingji_node::mqtt::start_embedded_broker(addr).expect("embedded broker");
    MqttUrl { host: "127.0.0.1".into(), port, tls: false }
}

/// Starts the broker a benchmark asks for: `mosquitto` (a process of its own, kept alive by the
/// returned handle) or `embedded` (in-process rumqttd).
pub fn start_broker(kind: &str) -> anyhow::Result<(MqttUrl, Option<Mosquitto>)> {
    match kind {
        "mosquitto" => {
            let m = Mosquitto::start();
            Ok((m.url.clone(), Some(m)))
        }
        "embedded" => Ok((spawn_embedded_broker(), None)),
        other => bail!("--broker {other:?}: mosquitto or embedded"),
    }
}

/// True when the suite may use an external broker (`YINGJI_TEST_MQTT_URL` is set).
pub fn external_broker_available() -> bool {
    let set = std::env::var("YINGJI_TEST_MQTT_URL").is_ok_and(|u| !u.is_empty());
    if !set {
        eprintln!("YINGJI_TEST_MQTT_URL is not set: external-broker cases are skipped here (CI sets it)");
    }
    set
}

/// A Mosquitto process of the test's own, configured to lose nothing.
pub struct Mosquitto {
    pub url: MqttUrl,
    child: Option<Child>,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts `mosquitto` (from PATH or /usr/sbin) on a free port.
    pub fn start() -> Mosquitto {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 20000\n\
                 persistence false\nlog_dest none\nset_tcp_nodelay true\n"
            ),
        )
        .expect("write mosquitto.conf");
        let mut m =
            Mosquitto { url: MqttUrl { host: "127.0.0.1".into(), port, tls: false }, child: None, config, _dir: dir };
        m.restart();
        m
    }

    fn binary() -> String {
        for candidate in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
            if std::path::Path::new(candidate).exists() {
                return candidate.to_owned();
            }
        }
        "mosquitto".to_owned()
    }

    /// Stops the broker (SIGKILL): its sessions and queues are gone, as after a crash.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts the broker on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new(Self::binary())
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto (apt-get install mosquitto)");
        self.child = Some(child);
        let addr: SocketAddr = ([127, 0, 0, 1], self.url.port).into();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A node running in this process.
pub struct TestNode {
    pub http: SocketAddr,
    pub store: Store,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestNode {
    /// Builds and runs a node with `config`.
    pub async fn spawn(config: Config) -> TestNode {
        init_logging();
        let node = Node::build(config).await.expect("node builds");
        let http = node.http_addr();
        let store = node.store().clone();
        let stop = CancellationToken::new();
        let task = tokio::spawn(node.run_until_stopped(stop.clone()));
        let health = format!("http://{http}/healthz");
        eventually(Duration::from_secs(30), "the node to subscribe to the field topics", || async {
            let body: serde_json::Value = reqwest::get(&health).await.ok()?.json().await.ok()?;
            (body["subscribed"] == true).then_some(())
        })
        .await;
        TestNode { http, store, stop, task: Some(task) }
    }

    /// A node `id` on `mqtt` with database `db`, everything else default.
    pub async fn start(id: &str, mqtt: &MqttUrl, db: &TestDb) -> TestNode {
        TestNode::spawn(Config::for_tests(id, mqtt.clone(), db.url.clone())).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// Stops gracefully and waits.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("node task").expect("node stops cleanly");
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A hub running in-process, for tests.
pub struct TestHub {
    pub http: SocketAddr,
    pub store: yingji_hub::store::Store,
    pub rules: yingji_hub::rules::RuleHandle,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestHub {
    /// Builds and runs a hub with `config`, and waits until its broker link is up.
    pub async fn spawn(config: yingji_hub::Config) -> TestHub {
        init_logging();
        let hub = yingji_hub::Hub::build(config).await.expect("hub builds");
        let http = hub.http_addr();
        let store = hub.store().clone();
        let rules = hub.rules().clone();
        let stop = CancellationToken::new();
        let task = tokio::spawn(hub.run_until_stopped(stop.clone()));
        let health = format!("http://{http}/healthz");
        eventually(Duration::from_secs(30), "the hub to subscribe to the node topics", || async {
            let body: serde_json::Value = reqwest::get(&health).await.ok()?.json().await.ok()?;
            (body["subscribed"] == true).then_some(())
        })
        .await;
        TestHub { http, store, rules, stop, task: Some(task) }
    }

    /// A hub on `mqtt` with database `db`, everything else default.
    pub async fn start(mqtt: &MqttUrl, db: &TestDb) -> TestHub {
        TestHub::spawn(yingji_hub::Config::for_tests(mqtt.clone(), db.url.clone())).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// A new API token with `role`, stored as `yingji-hub token create` does.
    pub async fn token(&self, role: &str) -> String {
        let token = yingji_hub::auth::new_token();
        self.store.add_token(&yingji_hub::auth::hash(&token), role, "test", 0).await.expect("store token");
        token
    }

    /// A console user `name` with `role` and `password`, made as `yingji-hub user add` does.
    pub async fn user(&self, name: &str, role: &str, password: &str) {
        let role = role.parse::<yingji_hub::auth::Role>().expect("a role");
        yingji_hub::add_user(&self.store, name, role, password).await.expect("add the user");
    }

    /// GET `path` with `token`; the JSON body (panics on a non-2xx answer).
    pub async fn get(&self, token: &str, path: &str) -> serde_json::Value {
        let response = reqwest::Client::new().get(self.url(path)).bearer_auth(token).send().await.expect("GET");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert!(status.is_success(), "GET {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    }

    /// GET `path` with `token`: the JSON body of a 2xx answer, `None` otherwise (for polling
    /// until something appears).
    pub async fn try_get(&self, token: &str, path: &str) -> Option<serde_json::Value> {
        let response = reqwest::Client::new().get(self.url(path)).bearer_auth(token).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    /// Stops gracefully and waits.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("hub task").expect("hub stops cleanly");
        }
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The `yingji-node` binary as a child process.
pub struct NodeProcess {
    child: Child,
}

impl NodeProcess {
    /// The binary built next to this test binary (`cargo test --workspace` builds it).
    pub fn binary() -> anyhow::Result<PathBuf> {
        // Tests live in target/<profile>/deps/, binaries (and the benchmark) in target/<profile>/.
        let exe = std::env::current_exe()?;
        let name = format!("yingji-node{}", std::env::consts::EXE_SUFFIX);
        let mut dir = exe.parent();
        while let Some(d) = dir {
            if d.join(&name).exists() {
                return Ok(d.join(&name));
            }
            if d.file_name().is_some_and(|n| n == "target") {
                break;
            }
            dir = d.parent();
        }
        bail!(
            "{name} is missing next to {}: build it (`cargo test --workspace` and `cargo build --release --workspace` do)",
            exe.display()
        )
    }

    pub fn start(args: &[&str]) -> anyhow::Result<NodeProcess> {
        let log = std::env::var("TEST_LOG").is_ok_and(|v| v == "1");
        let child = Command::new(Self::binary()?)
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(if log { Stdio::inherit() } else { Stdio::null() })
            .stderr(if log { Stdio::inherit() } else { Stdio::null() })
            .spawn()?;
        Ok(NodeProcess { child })
    }

    /// Waits until the node listening for HTTP on `http` has its field subscriptions.
    pub async fn wait_subscribed(http: u16) {
        let url = format!("http://127.0.0.1:{http}/healthz");
        eventually(Duration::from_secs(60), "the node process to subscribe", || async {
            let body: serde_json::Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
            (body["subscribed"] == true).then_some(())
        })
        .await;
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An ordinary MQTT client for tests: publishes at QoS 1 and can wait for every PUBACK.
pub struct Publisher {
    pub client: AsyncClient,
    acked: tokio::sync::watch::Receiver<u64>,
    published: u64,
    stop: CancellationToken,
}

impl Publisher {
    pub async fn connect(url: &MqttUrl, client_id: &str) -> Publisher {
        let mut options = MqttOptions::new(client_id, url.host.clone(), url.port);
        options
            .set_max_packet_size(32 * 1024 * 1024, 32 * 1024 * 1024)
            .set_inflight(200)
            .set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(options, 10_000);
        let (tx, acked) = tokio::sync::watch::channel(0u64);
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            let mut count = 0u64;
            loop {
                let event = tokio::select! {
                    _ = token.cancelled() => break,
                    e = eventloop.poll() => e,
                };
                match event {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        count += 1;
                        let _ = tx.send(count);
                    }
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        Publisher { client, acked, published: 0, stop }
    }

    /// Publishes at QoS 1 (does not wait for the PUBACK; see [`Publisher::wait_acked`]).
    pub async fn publish(&mut self, topic: impl Into<String>, payload: impl Into<Vec<u8>>) {
        self.client.publish(topic, QoS::AtLeastOnce, false, payload.into()).await.expect("publish queued");
        self.published += 1;
    }

    /// Waits until the broker has acknowledged everything published so far.
    pub async fn wait_acked(&mut self, within: Duration) {
        let want = self.published;
        let mut rx = self.acked.clone();
        tokio::time::timeout(within, rx.wait_for(|n| *n >= want))
            .await
            .expect("PUBACKs in time")
            .expect("publisher alive");
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A subscriber that collects every message on a filter.
pub struct Subscriber {
    pub messages: tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    stop: CancellationToken,
}

impl Subscriber {
    pub async fn connect(url: &MqttUrl, client_id: &str, filter: &str) -> Subscriber {
        let mut options = MqttOptions::new(client_id, url.host.clone(), url.port);
        options.set_max_packet_size(32 * 1024 * 1024, 32 * 1024 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let (tx, messages) = tokio::sync::mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        let filter = filter.to_owned();
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    _ = token.cancelled() => break,
                    e = eventloop.poll() => e,
                };
                match event {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(r) = ready_tx.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        client.subscribe(filter, QoS::AtLeastOnce).await.expect("subscribe");
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("SUBACK in time")
            .expect("subscriber alive");
        Subscriber { messages, stop }
    }

    /// The next message, or None after `within`.
    pub async fn next(&mut self, within: Duration) -> Option<(String, Vec<u8>)> {
        tokio::time::timeout(within, self.messages.recv()).await.ok().flatten()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Fetches JSON from a node's API.
pub async fn get_json(url: &str) -> serde_json::Value {
    let response = reqwest::get(url).await.expect("HTTP request");
    assert!(response.status().is_success(), "GET {url}: {}", response.status());
    response.json().await.expect("JSON body")
}

/// A SenML base time an hour ago, in whole seconds: recent enough for the node's raw-reading
/// horizon, old enough that a few thousand seconds after it are not in the future.
pub fn recent_t0() -> f64 {
    (chrono::Utc::now().timestamp() - 3600) as f64
}

/// Builders of valid messages.
pub mod make {
    use serde_json::json;

    /// A valid report `id` for `incident` in `region` with `affected` people.
    pub fn report(id: &str, incident: &str, region: &str, affected: i64) -> Vec<u8> {
        json!({
            "id": id,
            "incident": incident,
            "stage": "initial",
            "hazard": "typhoon",
            "observed_at": "2026-09-14T08:00:00+08:00",
            "location": {"lat": 28.02, "lon": 120.65},
            "region": region,
            "figures": {"affected": affected, "deaths": 0, "crop_area_ha": 1.5},
            "text": "roads flooded",
            "exercise": false
        })
        .to_string()
        .into_bytes()
    }

    /// A SenML pack of `n` rain readings from `device`, starting at `t0` seconds, 1 s apart.
    pub fn rain_pack(device: &str, t0: f64, n: usize) -> Vec<u8> {
        let mut records = Vec::with_capacity(n);
        for i in 0..n {
            if i == 0 {
                records.push(json!({"bn": format!("{device}:"), "bt": t0, "bu": "mm", "n": "rain", "v": 0.5}));
            } else {
                records.push(json!({"n": "rain", "t": i as f64, "v": 0.5}));
            }
        }
        serde_json::to_vec(&records).unwrap_or_default()
    }
}

/// A hub-side receiver for tests (not a hub): takes the nodes' events and relayed team
/// acknowledgements, "commits" them by id (an ack by its `relay_id`) in memory, and sends each
/// node its receipts, as the hub's intake will. It can drop every n-th delivery unreceipted, to
/// show that the node's outbox resends what no receipt acknowledged.
pub struct HubReceiver {
    events: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, serde_json::Value>>>,
    acks: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, serde_json::Value>>>,
    deliveries: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: CancellationToken,
}

impl HubReceiver {
    /// Connects to `url` and takes `yingji/v1/node/+/event` and `yingji/v1/node/+/ack`; with
    /// `drop_every = Some(n)` every n-th delivery is neither committed nor receipted.
    pub async fn start(url: &MqttUrl, client_id: &str, drop_every: Option<u64>) -> HubReceiver {
        use std::sync::atomic::Ordering;
        let mut options = MqttOptions::new(client_id, url.host.clone(), url.port);
        options.set_max_packet_size(32 * 1024 * 1024, 32 * 1024 * 1024).set_keep_alive(Duration::from_secs(5));
        let (client, mut eventloop) = AsyncClient::new(options, 10_000);
        let events = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
        let acks = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
        let deliveries = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = CancellationToken::new();
        let (to_receipt, mut receipts) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
        let (connected_tx, mut connected_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel::<()>();
        let mut subscribed_tx = Some(subscribed_tx);
        // The event loop only hands off; subscribing and publishing happen in another task.
        {
            let events = events.clone();
            let acks = acks.clone();
            let deliveries = deliveries.clone();
            let token = stop.clone();
            tokio::spawn(async move {
                loop {
                    let event = tokio::select! {
                        _ = token.cancelled() => break,
                        e = eventloop.poll() => e,
                    };
                    match event {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            let _ = connected_tx.send(());
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            if let Some(tx) = subscribed_tx.take() {
                                let _ = tx.send(());
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let n = deliveries.fetch_add(1, Ordering::SeqCst) + 1;
                            if drop_every.is_some_and(|k| n.is_multiple_of(k)) {
                                continue;
                            }
                            let Ok(value) = serde_json::from_slice::<serde_json::Value>(&p.payload) else { continue };
                            // yingji/v1/node/{node}/ack carries {"relay_id", ...the team's ack}.
                            if p.topic.ends_with("/ack") {
                                let (Some(id), Some(node)) = (value["relay_id"].as_str(), p.topic.split('/').nth(3))
                                else {
                                    continue;
                                };
                                let (id, node) = (id.to_owned(), node.to_owned());
                                if let Ok(mut map) = acks.lock() {
                                    map.entry(id.clone()).or_insert(value);
                                }
                                let _ = to_receipt.send((node, id));
                                continue;
                            }
                            let (Some(id), Some(node)) = (value["id"].as_str(), value["node"].as_str()) else {
                                continue;
                            };
                            let (id, node) = (id.to_owned(), node.to_owned());
                            if let Ok(mut map) = events.lock() {
                                map.entry(id.clone()).or_insert(value);
                            }
                            let _ = to_receipt.send((node, id));
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            });
        }
        {
            let token = stop.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = token.cancelled() => break,
                        c = connected_rx.recv() => {
                            if c.is_none() { break }
                            let filters = ["yingji/v1/node/+/event", "yingji/v1/node/+/ack"]
                                .map(|f| rumqttc::SubscribeFilter::new(f.to_owned(), QoS::AtLeastOnce));
                            let _ = client.subscribe_many(filters).await;
                        }
                        r = receipts.recv() => {
                            let Some((node, id)) = r else { break };
                            let mut by_node: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
                            by_node.entry(node).or_default().push(id);
                            while let Ok((node, id)) = receipts.try_recv() {
                                by_node.entry(node).or_default().push(id);
                            }
                            for (node, ids) in by_node {
                                let receipt = yingji_proto::event::Receipt { ids };
                                let payload = serde_json::to_vec(&receipt).unwrap_or_default();
                                let _ = client.publish(yingji_proto::topic::node_receipt(&node), QoS::AtLeastOnce, false, payload).await;
                            }
                        }
                    }
                }
            });
        }
        tokio::time::timeout(Duration::from_secs(10), subscribed_rx)
            .await
            .expect("receiver subscribed")
            .expect("receiver alive");
        HubReceiver { events, acks, deliveries, stop }
    }

    /// The relayed acknowledgements committed so far, by relay id.
    pub fn acks(&self) -> std::collections::HashMap<String, serde_json::Value> {
        self.acks.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// The distinct event ids committed so far.
    pub fn ids(&self) -> std::collections::HashSet<String> {
        self.events.lock().map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    /// The distinct ids of committed events of one kind (`report`, `stats`, ...).
    pub fn ids_of(&self, kind: &str) -> std::collections::HashSet<String> {
        self.events
            .lock()
            .map(|m| m.iter().filter(|(_, e)| e["kind"] == kind).map(|(id, _)| id.clone()).collect())
            .unwrap_or_default()
    }

    /// The committed events.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.events.lock().map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// Deliveries including duplicates and dropped ones.
    pub fn deliveries(&self) -> u64 {
        self.deliveries.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for HubReceiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
