//! Prometheus metrics of the node, served at `/metrics`. Names follow
//! `yingji_node_<what>_<unit>[_total]` (the client library adds `_total` to counters).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The field topic kind: report, senml, status, media, ack.
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The reject code (see docs/protocol.md).
    pub code: String,
}

/// Every metric of the node.
#[derive(Debug)]
pub struct Metrics {
    pub received: Family<KindLabel, Counter>,
    pub stored: Family<KindLabel, Counter>,
    pub rejected: Family<CodeLabel, Counter>,
    pub reports_new: Counter,
    pub readings_new: Counter,
    pub media_new: Counter,
    pub duplicates: Counter,
    pub unregistered_readings: Counter,
    pub unknown_region_reports: Counter,
    pub batch_messages: Histogram,
    pub commit_seconds: Histogram,
    pub commit_failures: Counter,
    pub broker_connected: Gauge,
    pub broker_connections: Counter,
    pub ingest_queue: Gauge,
    pub hub_connected: Gauge,
    pub events_sent: Counter,
    pub events_resent: Counter,
    pub events_receipted: Counter,
    pub events_dropped: Counter,
    pub outbox_depth: Gauge,
    pub outbox_oldest_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub forward_latency_seconds: Histogram,
    pub dispatch_relayed: Counter,
    pub dispatch_refused: Family<CodeLabel, Counter>,
    registry: Registry,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::default();
        let received = Family::<KindLabel, Counter>::default();
        let stored = Family::<KindLabel, Counter>::default();
        let rejected = Family::<CodeLabel, Counter>::default();
        let reports_new = Counter::default();
        let readings_new = Counter::default();
        let media_new = Counter::default();
        let duplicates = Counter::default();
        let unregistered_readings = Counter::default();
        let unknown_region_reports = Counter::default();
        let batch_messages = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        let commit_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        let commit_failures = Counter::default();
        let broker_connected = Gauge::default();
        let broker_connections = Counter::default();
        let ingest_queue = Gauge::default();
        let hub_connected = Gauge::default();
        let events_sent = Counter::default();
        let events_resent = Counter::default();
        let events_receipted = Counter::default();
        let events_dropped = Counter::default();
        let outbox_depth = Gauge::default();
        let outbox_oldest_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let forward_latency_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let dispatch_relayed = Counter::default();
        let dispatch_refused = Family::<CodeLabel, Counter>::default();
        registry.register(
            "yingji_node_messages_received",
            "MQTT messages received from devices, by topic kind",
            received.clone(),
        );
        registry.register(
            "yingji_node_messages_stored",
            "Messages committed to the database and then acknowledged, by topic kind",
            stored.clone(),
        );
        registry.register(
            "yingji_node_messages_rejected",
            "Messages refused with a reject notice, by code",
            rejected.clone(),
        );
        registry.register("yingji_node_reports_new", "Field reports stored for the first time", reports_new.clone());
        registry.register("yingji_node_readings_new", "SenML readings stored for the first time", readings_new.clone());
        registry.register("yingji_node_media_new", "Images stored for the first time", media_new.clone());
        registry.register(
            "yingji_node_duplicates",
            "Reports, readings and images received again and ignored (normal under QoS 1)",
            duplicates.clone(),
        );
        registry.register(
            "yingji_node_unregistered_readings",
            "Readings kept from devices missing from the device registry",
            unregistered_readings.clone(),
        );
        registry.register(
            "yingji_node_unknown_region_reports",
            "Reports whose location lies outside every division (kept with region `unknown`)",
            unknown_region_reports.clone(),
        );
        registry.register("yingji_node_batch_messages", "Messages per stored transaction", batch_messages.clone());
        registry.register("yingji_node_commit_seconds", "Time to store and commit one batch", commit_seconds.clone());
        registry.register(
            "yingji_node_commit_failures",
            "Batches whose transaction failed (the messages stay unacknowledged and are retried)",
            commit_failures.clone(),
        );
        registry.register(
            "yingji_node_broker_connected",
            "1 while connected to the field broker",
            broker_connected.clone(),
        );
        registry.register(
            "yingji_node_broker_connections",
            "Successful connections to the field broker",
            broker_connections.clone(),
        );
        registry.register(
            "yingji_node_ingest_queue_messages",
            "Messages received and not yet stored",
            ingest_queue.clone(),
        );
        registry.register("yingji_node_hub_connected", "1 while connected to the hub broker", hub_connected.clone());
        registry.register(
            "yingji_node_events_sent",
            "Summarized events published to the hub (first sends and resends)",
            events_sent.clone(),
        );
        registry.register(
            "yingji_node_events_resent",
            "Events published again because no receipt came in time",
            events_resent.clone(),
        );
        registry.register(
            "yingji_node_events_receipted",
            "Events the hub receipted and the outbox forgot",
            events_receipted.clone(),
        );
        registry.register(
            "yingji_node_events_dropped",
            "Device-status and media events dropped because the outbox was full",
            events_dropped.clone(),
        );
        registry.register("yingji_node_outbox_events", "Events waiting for the hub's receipt", outbox_depth.clone());
        registry.register(
            "yingji_node_outbox_oldest_seconds",
            "Age of the oldest event waiting for the hub's receipt",
            outbox_oldest_seconds.clone(),
        );
        registry.register(
            "yingji_node_forward_latency_seconds",
            "From an event's creation (its data's commit) to its first publish to the hub",
            forward_latency_seconds.clone(),
        );
        registry.register(
            "yingji_node_dispatch_relayed",
            "Dispatch orders whose signature verified, published to their team",
            dispatch_relayed.clone(),
        );
        registry.register(
            "yingji_node_dispatch_refused",
            "Dispatch orders refused (not relayed; reported to the hub), by code",
            dispatch_refused.clone(),
        );
        Arc::new(Metrics {
            received,
            stored,
            rejected,
            reports_new,
            readings_new,
            media_new,
            duplicates,
            unregistered_readings,
            unknown_region_reports,
            batch_messages,
            commit_seconds,
            commit_failures,
            broker_connected,
            broker_connections,
            ingest_queue,
            hub_connected,
            events_sent,
            events_resent,
            events_receipted,
            events_dropped,
            outbox_depth,
            outbox_oldest_seconds,
            forward_latency_seconds,
            dispatch_relayed,
            dispatch_refused,
            registry,
        })
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    pub fn kind(kind: &str) -> KindLabel {
        KindLabel { kind: kind.to_owned() }
    }
}
