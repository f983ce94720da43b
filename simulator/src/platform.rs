//! The platform a drill runs against: either one already running (`--hub URL` and the brokers
//! named on the command line) or one this process starts (`--platform embedded`, and the demo):
//! a hub and the scenario's nodes in-process, each with its own SQLite file (or PostgreSQL), on
//! in-process brokers on free ports, or all on the one broker `--mqtt` names.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;
use yingji_node::config::{Broker, MqttUrl};

use crate::scenario::Scenario;

/// Where one node's devices and teams publish: the node's regional broker, and the topic prefix
/// (the broker's mount point) under which that node listens when several nodes share a broker.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldBroker {
    pub url: MqttUrl,
    pub mount: String,
}

impl FieldBroker {
    /// `topic` as the devices of this node publish it.
    pub fn topic(&self, topic: &str) -> String {
        format!("{}{topic}", self.mount)
    }
}

/// What the embedded platform is built from.
#[derive(Debug, Clone)]
pub struct EmbeddedSpec {
    /// One broker for everything (hub and nodes); `None`: in-process brokers on free ports.
    pub mqtt: Option<MqttUrl>,
    /// The hub's database; `None`: a SQLite file in `data_dir`.
    pub hub_db: Option<String>,
    /// A PostgreSQL URL under which each node gets a database of its own is not offered: nodes
    /// keep SQLite files in `data_dir` (a node's database is its own, as in production).
    pub data_dir: PathBuf,
    /// The hub's HTTP address (port 0: any free port).
    pub hub_http: SocketAddr,
    /// The console's default mode for the hub ("exercise" in the demo).
    pub exercise_console: bool,
    /// The hub's `ack_within_s`.
    pub ack_within_s: i64,
}

/// A running platform.
pub struct Platform {
    /// The hub's base URL, e.g. `http://127.0.0.1:8080`.
    pub hub_url: String,
    /// An admin token for the hub's API.
    pub token: String,
    /// Each node's field broker, by node id.
    pub brokers: BTreeMap<String, FieldBroker>,
    /// Each node's HTTP address (embedded only).
    pub node_http: BTreeMap<String, SocketAddr>,
    /// The hub's store, when the hub runs in this process.
    pub hub_store: Option<yingji_hub::store::Store>,
    stop: CancellationToken,
    tasks: Vec<(String, JoinHandle<anyhow::Result<()>>)>,
}

/// A free TCP port on 127.0.0.1 (bound, read and released).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port on 127.0.0.1")?;
    Ok(listener.local_addr()?)
}

impl Platform {
    /// A platform that is already running: the hub at `hub_url` (with `token`), every node's
    /// devices on `mqtt` (shared broker: each node under its mount `n/{node}/`, unless `mounts`
    /// is false because every node has a broker of its own and `mqtt` is not used).
    pub fn external(hub_url: &str, token: &str, brokers: BTreeMap<String, FieldBroker>) -> Platform {
        Platform {
            hub_url: hub_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            brokers,
            node_http: BTreeMap::new(),
            hub_store: None,
            stop: CancellationToken::new(),
            tasks: Vec::new(),
        }
    }

    /// Starts the hub and every node of `scenario` in this process, loads the scenario's
    /// resources into the hub, and waits until everything is connected.
    pub async fn start_embedded(scenario: &Scenario, spec: &EmbeddedSpec) -> anyhow::Result<Platform> {
        std::fs::create_dir_all(&spec.data_dir)
            .with_context(|| format!("creating the data directory {}", spec.data_dir.display()))?;
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();

        // The hub.
        let hub_db = match &spec.hub_db {
            Some(url) => url.clone(),
            None => sqlite_url(&spec.data_dir.join("hub.db")),
        };
        let (hub_broker, hub_mqtt) = match &spec.mqtt {
            Some(url) => (Broker::External(url.clone()), url.clone()),
            None => {
                let addr = free_addr()?;
                (Broker::Embedded(addr), MqttUrl { host: addr.ip().to_string(), port: addr.port(), tls: false })
            }
        };
        let mut hub_config = yingji_hub::Config::for_tests(hub_mqtt.clone(), hub_db);
        hub_config.broker = hub_broker;
        hub_config.http = spec.hub_http;
        hub_config.regions = Some(scenario.hub_regions.clone());
        hub_config.ack_within_s = spec.ack_within_s;
        hub_config.cap_sender = "yingji-sim@drill".to_owned();
        hub_config.rules_poll = Duration::from_secs(2);
        hub_config.console.default_mode = if spec.exercise_console {
            yingji_hub::config::ConsoleMode::Exercise
        } else {
            yingji_hub::config::ConsoleMode::Real
        };
        let hub = yingji_hub::Hub::build(hub_config)
            .await
            .with_context(|| format!("starting the hub on {}", spec.hub_http))?;
        let hub_http = hub.http_addr();
        let hub_store = hub.store().clone();
        tasks.push(("hub".to_owned(), tokio::spawn(hub.run_until_stopped(stop.clone()))));
        let hub_url = format!("http://{hub_http}");
        wait_healthy(&format!("{hub_url}/healthz"), "the hub").await?;

        // An admin token for the simulator itself.
        let token = yingji_hub::auth::new_token();
        hub_store
            .add_token(&yingji_hub::auth::hash(&token), "admin", "yingji-sim", chrono::Utc::now().timestamp_millis())
            .await
            .context("storing the simulator's API token")?;

        // The hub's public key, for the nodes to verify orders with.
        let keys = yingji_hub::dispatch::signing_key(&hub_store).await.context("reading the hub's signing key")?;
        let key_file = spec.data_dir.join("hub-keys.txt");
        std::fs::write(
            &key_file,
            format!(
                "# the hub's order signing key\n{}\n",
                yingji_proto::sign::public_key_base64(&keys.verifying_key())
            ),
        )
        .with_context(|| format!("writing {}", key_file.display()))?;

        // The nodes.
        let mut brokers = BTreeMap::new();
        let mut node_http = BTreeMap::new();
        for node in &scenario.nodes {
            let db = sqlite_url(&spec.data_dir.join(format!("node-{}.db", node.id)));
            let (broker, field) = match &spec.mqtt {
                Some(url) => {
                    (Broker::External(url.clone()), FieldBroker { url: url.clone(), mount: format!("n/{}/", node.id) })
                }
                None => {
                    let addr = free_addr()?;
                    (
                        Broker::Embedded(addr),
                        FieldBroker {
                            url: MqttUrl { host: addr.ip().to_string(), port: addr.port(), tls: false },
                            mount: String::new(),
                        },
                    )
                }
            };
            let mut config = yingji_node::Config::for_tests(&node.id, field.url.clone(), db);
            config.broker = broker;
            config.field_mount = field.mount.clone();
            config.regions = Some(node.regions.clone());
            config.devices = Some(node.devices.clone());
            config.hub = Some(hub_mqtt.clone());
            config.hub_key = Some(key_file.clone());
            config.forward_resend = Duration::from_secs(2);
            let built = yingji_node::Node::build(config).await.with_context(|| format!("starting node {}", node.id))?;
            let http = built.http_addr();
            tasks.push((format!("node {}", node.id), tokio::spawn(built.run_until_stopped(stop.clone()))));
            wait_healthy(&format!("http://{http}/healthz"), &format!("node {}", node.id)).await?;
            node_http.insert(node.id.clone(), http);
            brokers.insert(node.id.clone(), field);
        }
        info!(hub = %hub_url, nodes = scenario.nodes.len(), "platform started");

        let platform = Platform { hub_url, token, brokers, node_http, hub_store: Some(hub_store), stop, tasks };
        platform.load_resources(scenario).await?;
        Ok(platform)
    }

    /// Imports the scenario's teams, stockpiles, hazards and targets into the hub.
    pub async fn load_resources(&self, scenario: &Scenario) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        for (kind, path) in scenario.resources() {
            let body = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let content_type =
                if path.extension().is_some_and(|e| e == "csv") { "text/csv" } else { "application/geo+json" };
            let response = client
                .post(format!("{}/api/v1/resources/{kind}", self.hub_url))
                .bearer_auth(&self.token)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .with_context(|| format!("importing {kind} into the hub"))?;
            let status = response.status();
            if !status.is_success() {
                let text = response.text().await.unwrap_or_default();
                bail!("the hub refused {} ({kind}): {status} {text}", path.display());
            }
        }
        Ok(())
    }

    /// Stops everything this process started and waits for it.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        let mut first_error = None;
        for (name, task) in self.tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(anyhow::anyhow!("{name} stopped with an error: {e:#}"));
                }
                Err(e) => {
                    first_error.get_or_insert(anyhow::anyhow!("{name} failed: {e}"));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A token that is cancelled when the platform stops.
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

async fn wait_healthy(url: &str, what: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let client = reqwest::Client::new();
    loop {
        if let Ok(response) = client.get(url).send().await
            && let Ok(body) = response.json::<serde_json::Value>().await
            && body["subscribed"] == true
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{what} did not become ready within 60 s ({url})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
