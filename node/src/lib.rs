//! A Yingji node: takes in what the field's devices publish over MQTT and stores it with
//! nothing lost.
//!
//! # Layout
//! - [`config`]: flags, environment and config file → [`Config`].
//! - [`mqtt`]: the embedded broker, client options, the event-loop task.
//! - [`ingest`]: validation, batching, commit-then-acknowledge, reject notices.
//! - [`store`]: one storage API with SQLite and PostgreSQL behind it.
//! - [`regions`]: division polygons and point-in-polygon placement.
//! - [`devices`]: the device registry.
//! - [`http`]: `/healthz`, `/metrics`, `/api/v1/...`.
//! - [`metrics`]: the Prometheus metrics.
//! - [`monitor`]: sensor windows, rainstorm and flood warnings, offline stations (pure).
//! - [`stats`]: disaster statistics: the report that counts per region, roll-up to divisions
//!   (pure).
//! - [`discipline`]: reporting discipline: initial, daily update and final report on time or
//!   late (pure).
//! - [`events`]: the summarized events sent to the hub; [`forward`]: the outbox's forwarder.
//! - [`relay`]: signed dispatch orders from the hub, verified and relayed to the teams (team
//!   acknowledgements go up through [`ingest`] and the outbox).
//! - [`retention`]: raw readings into aggregates, and expiry.
//!
//! Startup is build-then-run: [`Node::build`] opens everything that can fail (database, files,
//! broker, HTTP port) and reports it at once; [`Node::run_until_stopped`] runs the tasks until
//! the cancellation token fires, then drains: the batch in progress is committed and
//! acknowledged before the MQTT connection is closed.

pub mod config;
pub mod devices;
pub mod discipline;
pub mod events;
pub mod forward;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod monitor;
pub mod mqtt;
pub mod regions;
pub mod relay;
pub mod retention;
pub mod stats;
pub mod store;
pub mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use config::Config;
use config::{Broker, MqttUrl};
use devices::Registry;
use metrics::Metrics;
use regions::Regions;
use store::Store;

/// A node that has opened everything it needs and is ready to run.
pub struct Node {
    config: Config,
    store: Store,
    metrics: Arc<Metrics>,
    regions: Arc<Regions>,
    registry: Arc<Registry>,
    mqtt: MqttUrl,
    http: tokio::net::TcpListener,
    thresholds: monitor::Thresholds,
    hub_keys: Arc<[ed25519_dalek::VerifyingKey]>,
}

impl Node {
    /// Opens the database (applying migrations), loads the regions and device files, starts the
    /// embedded broker when no external one is configured, and binds the HTTP port.
    pub async fn build(config: Config) -> anyhow::Result<Node> {
        mqtt::install_crypto_provider();
        let regions = match &config.regions {
            Some(path) => Regions::load(path)?,
            None => Regions::default(),
        };
        let registry = match &config.devices {
            Some(path) => Registry::load(path)?,
            None => Registry::default(),
        };
        let thresholds = match &config.thresholds {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the thresholds file {}", path.display()))?;
                monitor::Thresholds::from_toml(&text)
                    .with_context(|| format!("the thresholds file {} is not valid", path.display()))?
            }
            None => monitor::Thresholds::default(),
        };
        let hub_keys: Arc<[ed25519_dalek::VerifyingKey]> = match &config.hub_key {
            Some(path) => config::load_hub_keys(path)?.into(),
            None => Arc::from(Vec::new()),
        };
        let store = Store::connect(&config.db).await.with_context(|| format!("database {}", redact(&config.db)))?;
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
            node = %config.id,
            db = store.kind(),
            regions = regions.len(),
            devices = registry.len(),
            broker = %format!("{}:{}", mqtt.host, mqtt.port),
            "node ready"
        );
        Ok(Node {
            config,
            store,
            metrics: Metrics::new(),
            regions: Arc::new(regions),
            registry: Arc::new(registry),
            mqtt,
            http,
            thresholds,
            hub_keys,
        })
    }

    /// The address the HTTP API listens on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().unwrap_or(self.config.http)
    }

    /// The broker the node connects to.
    pub fn mqtt_url(&self) -> &MqttUrl {
        &self.mqtt
    }

    /// The node's storage (tests read it directly).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs until `stop` is cancelled, then shuts down gracefully.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> anyhow::Result<()> {
        let tasks = TaskTracker::new();
        let spec = mqtt::ClientSpec {
            client_id: format!("yingji-node-{}", self.config.id),
            url: self.mqtt.clone(),
            ca: self.config.mqtt_ca.clone(),
            credentials: self.config.credentials.clone(),
            keep_alive: self.config.mqtt_keep_alive,
            inflight: self.config.mqtt_inflight,
            durable: true,
            last_will: None,
        };
        // The request channel carries our acknowledgements; it is drained by the event loop,
        // which never waits on us, so a full channel only slows ingest down.
        let (client, eventloop) = mqtt::client(&spec, 16_384)?;
        let (messages_tx, messages_rx) = mpsc::unbounded_channel();
        // Behind a field mount, messages come in under the prefix: ingest sees them without it.
        let mount = self.config.field_mount.clone();
        let messages_tx = if mount.is_empty() {
            messages_tx
        } else {
            let (mounted_tx, mut mounted_rx) = mpsc::unbounded_channel::<rumqttc::Publish>();
            let mount = mount.clone();
            tasks.spawn(async move {
                while let Some(mut publish) = mounted_rx.recv().await {
                    if let Some(rest) = publish.topic.strip_prefix(mount.as_str()) {
                        publish.topic = rest.to_owned();
                    }
                    if messages_tx.send(publish).is_err() {
                        break;
                    }
                }
            });
            mounted_tx
        };
        let (links_tx, mut links_rx) = mpsc::unbounded_channel();
        let link_stop = CancellationToken::new();
        tasks.spawn(mqtt::drive(
            eventloop,
            "field",
            Some(messages_tx),
            links_tx,
            Some(self.metrics.clone()),
            self.config.reconnect_max,
            link_stop.clone(),
        ));

        // Subscribes on every connection: with a kept session this is harmless, without one
        // (broker restarted, session expired) it is what brings the subscriptions back.
        let broker_up = Arc::new(AtomicBool::new(false));
        let subscribed = Arc::new(AtomicBool::new(false));
        {
            let client = client.clone();
            let broker_up = broker_up.clone();
            let subscribed = subscribed.clone();
            let stop = stop.clone();
            let mount = mount.clone();
            tasks.spawn(async move {
                loop {
                    let link = tokio::select! {
                        _ = stop.cancelled() => break,
                        link = links_rx.recv() => match link { Some(l) => l, None => break },
                    };
                    match link {
                        mqtt::Link::Up { .. } => {
                            broker_up.store(true, Ordering::Relaxed);
                            let filters = yingji_proto::topic::FIELD_SUBSCRIPTIONS
                                .iter()
                                .chain([&yingji_proto::topic::ACK_SUBSCRIPTION])
                                .map(|t| {
                                    rumqttc::SubscribeFilter::new(format!("{mount}{t}"), rumqttc::QoS::AtLeastOnce)
                                });
                            if let Err(e) = client.subscribe_many(filters).await {
                                warn!(error = %e, "could not subscribe to the field topics");
                            }
                        }
                        mqtt::Link::Subscribed => subscribed.store(true, Ordering::Relaxed),
                        mqtt::Link::Down => {
                            broker_up.store(false, Ordering::Relaxed);
                            subscribed.store(false, Ordering::Relaxed);
                        }
                    }
                }
            });
        }

        // The hub link: events and acknowledgements up, receipts and dispatch orders down, the
        // node's retained status with its will.
        let hub_spec = mqtt::ClientSpec {
            client_id: format!("yingji-node-{}-hub", self.config.id),
            url: self.config.hub.clone().unwrap_or_else(|| self.mqtt.clone()),
            ca: self.config.mqtt_ca.clone(),
            credentials: self.config.credentials.clone(),
            keep_alive: self.config.mqtt_keep_alive,
            inflight: u16::try_from(self.config.forward_inflight).unwrap_or(u16::MAX),
            durable: false,
            last_will: Some((yingji_proto::topic::node_status(&self.config.id), forward::status_payload(false))),
        };
        let (hub_client, hub_eventloop) = mqtt::client(&hub_spec, 4096)?;
        let (hub_messages_tx, hub_messages_rx) = mpsc::unbounded_channel();
        let (receipts_tx, receipts_rx) = mpsc::unbounded_channel();
        let (orders_tx, orders_rx) = mpsc::unbounded_channel();
        let (hub_links_tx, hub_links_rx) = mpsc::unbounded_channel();
        tasks.spawn(relay::route(self.config.id.clone(), hub_messages_rx, receipts_tx, orders_tx));
        tasks.spawn(mqtt::drive(
            hub_eventloop,
            "hub",
            Some(hub_messages_tx),
            hub_links_tx,
            None,
            self.config.reconnect_max,
            link_stop.clone(),
        ));
        let wake_forwarder = Arc::new(tokio::sync::Notify::new());
        let forwarder = forward::Forwarder {
            node_id: self.config.id.clone(),
            store: self.store.clone(),
            client: hub_client.clone(),
            metrics: self.metrics.clone(),
            settings: forward::Settings {
                max_inflight: self.config.forward_inflight,
                max_outbox: self.config.outbox_max,
                resend_after: self.config.forward_resend,
            },
            wake: wake_forwarder.clone(),
        };
        let forward_stop = CancellationToken::new();
        let forward_task = tokio::spawn(forwarder.run(receipts_rx, hub_links_rx, forward_stop.clone()));
        let order_relay = relay::OrderRelay {
            node_id: self.config.id.clone(),
            keys: self.hub_keys.clone(),
            field: client.clone(),
            mount: mount.clone(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            forward: wake_forwarder.clone(),
            limits: yingji_proto::Limits::default(),
        };
        tasks.spawn(order_relay.run(orders_rx, stop.clone()));

        // The watch over stations and reporting units, its station states rebuilt from the last
        // day of readings so that windows and warnings survive a restart.
        let watch = if self.config.monitor {
            let w = watch::Watch::new(
                self.config.id.clone(),
                self.thresholds.clone(),
                self.registry.clone(),
                self.regions.clone(),
            );
            let since = chrono::Utc::now().timestamp_micros() - 26 * 3_600_000_000;
            match self.store.recent_readings(since).await {
                Ok(readings) => w.rebuild(&readings),
                Err(e) => warn!(error = %e, "could not rebuild station states; windows start empty"),
            }
            Some(w)
        } else {
            None
        };
        let stations = watch.as_ref().map(|w| w.stations.clone());

        let ingest_stop = CancellationToken::new();
        let ingest = ingest::Ingest {
            node_id: self.config.id.clone(),
            forward: wake_forwarder,
            store: self.store.clone(),
            regions: self.regions.clone(),
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
            client: client.clone(),
            mount: mount.clone(),
            limits: yingji_proto::Limits::default(),
            batch_max: self.config.batch_max,
            batch_linger: self.config.batch_linger,
            raw_retention: self.config.raw_retention,
            watch: tokio::sync::Mutex::new(watch),
        };
        let ingest_task = tokio::spawn(ingest.run(messages_rx, ingest_stop.clone()));
        tasks.spawn(retention::run(
            self.store.clone(),
            self.config.raw_retention,
            self.config.minute_retention,
            self.config.hour_retention,
            self.config.retention_interval,
            stop.clone(),
        ));

        let ctx = http::ApiContext {
            node_id: self.config.id.clone(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            registry: self.registry.clone(),
            regions: self.regions.clone(),
            stations,
            broker_up,
            subscribed,
        };
        let http_stop = stop.clone();
        let server = axum::serve(self.http, http::router(ctx))
            .with_graceful_shutdown(async move { http_stop.cancelled().await });
        tasks.spawn(async move {
            if let Err(e) = server.await {
                warn!(error = %e, "the HTTP server stopped");
            }
        });
        tasks.close();

        stop.cancelled().await;
        info!("shutting down: committing and acknowledging the batch in progress");
        ingest_stop.cancel();
        if let Err(e) = ingest_task.await {
            warn!(error = %e, "ingest task ended abnormally");
        }
        // Let the event loop send the last acknowledgements, then disconnect cleanly.
        forward_stop.cancel();
        if let Err(e) = forward_task.await {
            warn!(error = %e, "forwarder task ended abnormally");
        }
        // The disconnect requests queue behind the acknowledgements and the offline status, so
        // those go out first; each event loop task ends once it has sent its disconnect.
        let _ = client.disconnect().await;
        let _ = hub_client.disconnect().await;
        let drained = tokio::time::timeout(Duration::from_secs(5), tasks.wait()).await;
        if drained.is_err() {
            link_stop.cancel();
            tasks.wait().await;
        }
        self.store.close().await;
        info!("node stopped");
        Ok(())
    }
}

/// A database URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
