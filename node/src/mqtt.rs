//! The MQTT edge: the embedded broker, client options (TLS, credentials, persistent session),
//! and the task that drives rumqttc's event loop.
//!
//! The event loop task only hands messages off (to an unbounded channel whose depth the broker
//! bounds: it sends no more QoS 1 messages than its in-flight window until we acknowledge) and
//! reports connections; it never publishes and never waits on anything else, so it is never
//! blocked. Reconnection uses a capped exponential backoff with jitter.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, Packet, Publish, QoS, TlsConfiguration, Transport,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{Credentials, MqttUrl};
use crate::metrics::Metrics;

/// The largest MQTT packet the node sends or accepts: media is up to 4 MiB, and a larger
/// hostile message must reach the node (to be refused with a reason) rather than break the
/// connection. The embedded broker refuses anything over [`EMBEDDED_MAX_PAYLOAD`].
pub const MAX_PACKET: usize = 16 * 1024 * 1024;
/// The embedded broker's payload limit.
pub const EMBEDDED_MAX_PAYLOAD: usize = 8 * 1024 * 1024;

/// Starts an in-process broker (rumqttd) listening on `addr`, and waits until it accepts.
pub fn start_embedded_broker(addr: SocketAddr) -> anyhow::Result<()> {
    // rumqttd binds inside its own thread and cannot report a taken port, so find out first.
    match TcpListener::bind(addr) {
        Ok(listener) => drop(listener),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "cannot start the embedded MQTT broker: {addr} is already in use, probably by another broker. \
             Point the node at that broker with --mqtt mqtt://{addr}, or start the embedded broker \
             elsewhere with --embedded-broker 127.0.0.1:PORT"
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot start the embedded MQTT broker on {addr}")),
    }
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: EMBEDDED_MAX_PAYLOAD,
        max_inflight_count: 20_000,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "yingji-embedded".to_owned(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let config = rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 20_010,
            max_outgoing_packet_count: 5000,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("v4-1".to_owned(), server)])),
        ..Default::default()
    };
    // `Broker::start` blocks for ever and has no shutdown: it gets a thread of its own that
    // ends with the process.
    std::thread::Builder::new()
        .name("embedded-broker".to_owned())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "the embedded MQTT broker stopped");
            }
        })
        .context("cannot start the embedded broker's thread")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if std::time::Instant::now() > deadline {
            bail!("the embedded MQTT broker did not start listening on {addr} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    info!(%addr, "embedded MQTT broker listening");
    Ok(())
}

/// Installs ring as rustls' crypto provider, once per process. Both ring and aws-lc-rs can
/// end up in a build; without a chosen provider rustls panics at the first TLS connection.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Everything needed to connect one client.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub client_id: String,
    pub url: MqttUrl,
    pub ca: Option<std::path::PathBuf>,
    pub credentials: Option<Credentials>,
    pub keep_alive: Duration,
    pub inflight: u16,
    /// Manual acks and a persistent session: the node's ingest connection.
    pub durable: bool,
    /// A last will: (topic, payload), retained, QoS 1.
    pub last_will: Option<(String, Vec<u8>)>,
}

/// Builds rumqttc options from a spec.
pub fn options(spec: &ClientSpec) -> anyhow::Result<MqttOptions> {
    let mut options = MqttOptions::new(spec.client_id.clone(), spec.url.host.clone(), spec.url.port);
    options
        .set_keep_alive(spec.keep_alive)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET)
        .set_inflight(spec.inflight)
        .set_clean_session(!spec.durable)
        .set_manual_acks(spec.durable);
    if let Some(c) = &spec.credentials {
        options.set_credentials(c.username.clone(), c.password.clone());
    }
    if let Some((topic, payload)) = &spec.last_will {
        options.set_last_will(rumqttc::LastWill::new(topic.clone(), payload.clone(), QoS::AtLeastOnce, true));
    }
    if spec.url.tls {
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(tls_config(
            spec.ca.as_deref(),
        )?))));
    }
    Ok(options)
}

fn tls_config(ca: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("reading the CA file {}", path.display()))?;
            let mut added = 0;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.with_context(|| format!("the CA file {} is not PEM", path.display()))?;
                roots.add(cert).with_context(|| format!("a certificate in {} is not usable", path.display()))?;
                added += 1;
            }
            if added == 0 {
                bail!("the CA file {} holds no certificate", path.display());
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                bail!("no system CA certificates found: pass --mqtt-ca FILE");
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS setup")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// What the event loop task reports besides messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Connected; `session_present` says whether the broker kept our session.
    Up {
        session_present: bool,
    },
    /// The broker granted a subscription.
    Subscribed,
    Down,
}

/// Creates a client and its event loop. `cap` bounds the request channel (publishes, acks).
pub fn client(spec: &ClientSpec, cap: usize) -> anyhow::Result<(AsyncClient, EventLoop)> {
    let (client, mut eventloop) = AsyncClient::new(options(spec)?, cap);
    // Events and receipts are small packets that should leave at once; Nagle's algorithm holds
    // them back for the peer's delayed ACK (tens of milliseconds). The ingest connection is the
    // exception: it sends a PUBACK per message, each written and flushed on its own by rumqttc,
    // and under load Nagle packs them into a few segments (the broker then spent less on them
    // than on the publishes; BENCHMARKS.md, node ingest). Its acks are not waited on by anyone
    // but the broker's in-flight window, and incoming publishes carry TCP's ACKs back at once.
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(!spec.durable);
    eventloop.set_network_options(network);
    Ok((client, eventloop))
}

/// Drives the event loop until `stop` is cancelled: hands publishes to `messages`, link changes
/// to `links`, and reconnects with capped exponential backoff.
pub async fn drive(
    mut eventloop: EventLoop,
    name: &'static str,
    messages: Option<mpsc::UnboundedSender<Publish>>,
    links: mpsc::UnboundedSender<Link>,
    metrics: Option<Arc<Metrics>>,
    reconnect_max: Duration,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    let mut attempt: u64 = 0;
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                if ack.code == ConnectReturnCode::Success {
                    info!(link = name, session_present = ack.session_present, "connected to the MQTT broker");
                    backoff = Duration::from_millis(100);
                    attempt = 0;
                    if let Some(m) = &metrics {
                        m.broker_connected.set(1);
                        m.broker_connections.inc();
                    }
                    let _ = links.send(Link::Up { session_present: ack.session_present });
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if let Some(tx) = &messages
                    && tx.send(publish).is_err()
                {
                    debug!(link = name, "message arrived after ingest stopped; it stays unacknowledged");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                let _ = links.send(Link::Subscribed);
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                debug!(link = name, "disconnect sent");
                break;
            }
            Ok(_) => {}
            Err(error) => {
                if let Some(m) = &metrics {
                    m.broker_connected.set(0);
                }
                let _ = links.send(Link::Down);
                attempt += 1;
                // Jitter spreads the reconnections of many nodes after a broker restart.
                let jitter = Duration::from_millis(rand_jitter(backoff.as_millis() as u64 / 4 + 1));
                let wait = backoff + jitter;
                if attempt <= 3 || attempt.is_multiple_of(10) {
                    warn!(link = name, %error, attempt, retry_in_ms = wait.as_millis() as u64,
                        "MQTT connection failed; retrying. Check that the broker is running and the URL and credentials are right");
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                backoff = (backoff * 2).min(reconnect_max);
            }
        }
    }
}

fn rand_jitter(max: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(max);
    h.finish() % max.max(1)
}
