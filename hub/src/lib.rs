//! The Yingji hub: takes in the nodes' summarized events, keeps the national picture, judges
//! risk by operator-written rules and publishes CAP 1.2 warnings.
//!
//! # Layout
//! - [`config`]: flags, environment and config file → [`Config`]; the operator commands.
//! - [`intake`]: events committed once by id, then acknowledged and receipted; node status.
//! - [`store`]: one storage API over SQLite and PostgreSQL (sqlx `Any`, one SQL dialect).
//! - [`picture`] (pure): the division hierarchy up to the nation, statistics across nodes,
//!   warnings and the incidents they belong to.
//! - [`rules`] (pure core): the rules file, CEL conditions, evaluation with explanations, reload.
//! - [`assess`]: levels judged from the picture; every change recorded with its reasons.
//! - [`cap`] (pure): CAP 1.2 documents and GB/T 35965.1 identifiers; [`alerts`] maps warnings
//!   and assessments to them.
//! - [`http`]: the JSON API, tokens and roles ([`auth`]), the live stream, `/metrics`.
//! - [`console`]: the duty officer's web console at `/` (sessions, pages, map, drills).
//!
//! Like the node, startup is build-then-run: [`Hub::build`] opens everything that can fail and
//! reports it at once; [`Hub::run_until_stopped`] runs until the token is cancelled, then
//! commits, acknowledges and receipts the batch in progress before it disconnects.

pub mod alerts;
pub mod assess;
pub mod auth;
pub mod cap;
pub mod config;
pub mod console;
pub mod dispatch;
pub mod http;
pub mod intake;
pub mod metrics;
pub mod picture;
pub mod resources;
pub mod rules;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};
use yingji_node::config::{Broker, MqttUrl};
use yingji_node::mqtt;
use yingji_node::regions::Regions;

pub use config::Config;
pub use console::add_user;
use metrics::Metrics;
use rules::{RuleHandle, RuleSet};
use store::Store;

/// The topic filter of node events, plain or shared.
pub fn event_filter(shared_group: Option<&str>) -> String {
    match shared_group {
        Some(g) => format!("$share/{g}/yingji/v1/node/+/event"),
        None => "yingji/v1/node/+/event".to_owned(),
    }
}

/// The topic filter of node status (retained).
pub const STATUS_FILTER: &str = "yingji/v1/node/+/status";

/// The topic filter of team acknowledgements relayed by nodes.
pub fn ack_filter(shared_group: Option<&str>) -> String {
    match shared_group {
        Some(g) => format!("$share/{g}/yingji/v1/node/+/ack"),
        None => "yingji/v1/node/+/ack".to_owned(),
    }
}

/// A hub that has opened everything it needs and is ready to run.
pub struct Hub {
    config: Config,
    store: Store,
    metrics: Arc<Metrics>,
    regions: Arc<Regions>,
    rules: RuleHandle,
    rules_file: Option<std::path::PathBuf>,
    mqtt: MqttUrl,
    http: tokio::net::TcpListener,
    stream: broadcast::Sender<Arc<str>>,
}

impl Hub {
    /// Opens the database (applying migrations), loads the regions and rules, starts the
    /// embedded broker when no external one is configured, and binds the HTTP port.
    pub async fn build(config: Config) -> anyhow::Result<Hub> {
        mqtt::install_crypto_provider();
        let regions = match &config.regions {
            Some(path) => Regions::load(path)?,
            None => Regions::default(),
        };
        let rules = match &config.rules {
            Some(path) => {
                let set = RuleSet::load(path).map_err(|e| anyhow::anyhow!("the rules file is refused: {e}"))?;
                RuleHandle::new(set)
            }
            None => RuleHandle::new(RuleSet::defaults().map_err(|e| anyhow::anyhow!("the shipped rules: {e}"))?),
        };
        let store = Store::connect(&config.db)
            .await
            .with_context(|| format!("database {}", yingji_node::redact(&config.db)))?;
        let mqtt = match &config.broker {
            Broker::External(url) => url.clone(),
            Broker::Embedded(addr) => {
                mqtt::start_embedded_broker(*addr)?;
                MqttUrl { host: addr.ip().to_string(), port: addr.port(), tls: false }
            }
        };
        let http = tokio::net::TcpListener::bind(config.http).await.with_context(|| {
            format!("cannot listen for HTTP on {}; choose another address with --http", config.http)
        })?;
        info!(
            hub = %config.id,
            db = ?store.kind(),
            regions = regions.len(),
            rules = rules.current().len(),
            broker = %format!("{}:{}", mqtt.host, mqtt.port),
            "hub ready"
        );
        let (stream, _) = broadcast::channel(4096);
        Ok(Hub {
            rules_file: config.rules.clone(),
            config,
            store,
            metrics: Arc::new(Metrics::new()),
            regions: Arc::new(regions),
            rules,
            mqtt,
            http,
            stream,
        })
    }

    /// The address the HTTP API listens on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().unwrap_or(self.config.http)
    }

    /// The broker the hub connects to.
    pub fn mqtt_url(&self) -> &MqttUrl {
        &self.mqtt
    }

    /// The hub's storage (tests and operator commands use it directly).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The rules in force.
    pub fn rules(&self) -> &RuleHandle {
        &self.rules
    }

    /// Runs until `stop` is cancelled, then shuts down gracefully.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        let tasks = TaskTracker::new();
        let spec = mqtt::ClientSpec {
            client_id: format!("yingji-hub-{}", self.config.id),
            url: self.mqtt.clone(),
            ca: self.config.mqtt_ca.clone(),
            credentials: self.config.credentials.clone(),
            keep_alive: Duration::from_secs(30),
            inflight: self.config.mqtt_inflight,
            durable: true,
            last_will: None,
        };
        let (client, eventloop) = mqtt::client(&spec, 16_384)?;
        let (messages_tx, messages_rx) = mpsc::unbounded_channel();
        let (links_tx, mut links_rx) = mpsc::unbounded_channel();
        let link_stop = CancellationToken::new();
        tasks.spawn(mqtt::drive(
            eventloop,
            "hub",
            Some(messages_tx),
            links_tx,
            None,
            self.config.reconnect_max,
            link_stop.clone(),
        ));
        let connected = Arc::new(AtomicBool::new(false));
        let subscribed = Arc::new(AtomicBool::new(false));
        {
            let client = client.clone();
            let connected = connected.clone();
            let subscribed = subscribed.clone();
            let metrics = self.metrics.clone();
            let filter = event_filter(self.config.shared_group.as_deref());
            let acks = ack_filter(self.config.shared_group.as_deref());
            let stop = stop.clone();
            tasks.spawn(async move {
                loop {
                    let link = tokio::select! {
                        _ = stop.cancelled() => break,
                        link = links_rx.recv() => match link { Some(l) => l, None => break },
                    };
                    match link {
                        mqtt::Link::Up { .. } => {
                            connected.store(true, Ordering::Relaxed);
                            metrics.broker_connected.set(1);
                            let filters = [filter.clone(), acks.clone(), STATUS_FILTER.to_owned()]
                                .into_iter()
                                .map(|t| rumqttc::SubscribeFilter::new(t, rumqttc::QoS::AtLeastOnce));
                            if let Err(e) = client.subscribe_many(filters).await {
                                warn!(error = %e, "could not subscribe to the node topics");
                            }
                        }
                        mqtt::Link::Subscribed => subscribed.store(true, Ordering::Relaxed),
                        mqtt::Link::Down => {
                            connected.store(false, Ordering::Relaxed);
                            subscribed.store(false, Ordering::Relaxed);
                            metrics.broker_connected.set(0);
                        }
                    }
                }
            });
        }
        if let Some(path) = &self.rules_file {
            let watcher = rules::spawn_watcher(self.rules.clone(), path.clone(), self.config.rules_poll, stop.clone());
            tasks.spawn(async move {
                let _ = watcher.await;
            });
        }
        let cap = Arc::new(alerts::CapContext {
            sender: self.config.cap_sender.clone(),
            sector: self.config.cap_sector.clone(),
            regions: self.regions.clone(),
        });
        let dispatch_context = Arc::new(dispatch::Context {
            neighbours: dispatch::neighbours(&self.regions),
            settings: dispatch::Settings { ack_within_s: self.config.ack_within_s, ..Default::default() },
        });
        let key = dispatch::signing_key(&self.store).await.context("the hub's signing key")?;
        let dispatcher = Arc::new(dispatch::Dispatcher {
            store: self.store.clone(),
            client: client.clone(),
            key,
            regions: self.regions.clone(),
            neighbours: Arc::new(dispatch_context.neighbours.clone()),
            settings: dispatch_context.settings.clone(),
            stream: self.stream.clone(),
            postgres: self.store.kind() == store::Kind::Postgres,
        });
        {
            let dispatcher = dispatcher.clone();
            let stop = stop.clone();
            tasks.spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(1));
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = every.tick() => {}
                    }
                    if let Err(e) = dispatcher.tick(chrono::Utc::now().timestamp_millis()).await {
                        warn!(error = %e, "the overdue check failed; it runs again in a second");
                    }
                }
            });
        }
        let intake_stop = CancellationToken::new();
        let intake = intake::Intake {
            store: self.store.clone(),
            client: client.clone(),
            regions: self.regions.clone(),
            rules: self.rules.clone(),
            metrics: self.metrics.clone(),
            stream: self.stream.clone(),
            batch_max: self.config.batch_max,
            cap,
            dispatch: dispatch_context,
        };
        let intake_task = tokio::spawn(intake.run(messages_rx, intake_stop.clone()));

        let state = http::AppState {
            store: self.store.clone(),
            regions: self.regions.clone(),
            rules: self.rules.clone(),
            metrics: self.metrics.clone(),
            stream: self.stream.clone(),
            connected,
            subscribed,
            rules_file: self.rules_file.clone(),
            stop: stop.clone(),
            dispatcher: Some(dispatcher.clone()),
            console: Arc::new(console::Console::new(self.config.console.clone())),
        };
        let http_stop = stop.clone();
        let server = axum::serve(self.http, http::router(state).into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { http_stop.cancelled().await });
        tasks.spawn(async move {
            if let Err(e) = server.await {
                warn!(error = %e, "the HTTP server stopped");
            }
        });
        tasks.close();

        stop.cancelled().await;
        info!("shutting down: committing, acknowledging and receipting the batch in progress");
        intake_stop.cancel();
        if let Err(e) = intake_task.await {
            warn!(error = %e, "intake task ended abnormally");
        }
        let _ = client.disconnect().await;
        if tokio::time::timeout(Duration::from_secs(5), tasks.wait()).await.is_err() {
            link_stop.cancel();
            tasks.wait().await;
        }
        self.store.close().await;
        info!("hub stopped");
        Ok(())
    }
}
