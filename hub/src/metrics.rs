//! The hub's Prometheus metrics (`yingji_hub_*`), served at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

pub struct Metrics {
    pub registry: Registry,
    /// Events received, by kind (duplicates included).
    pub events_received: Family<KindLabel, Counter>,
    /// Events committed for the first time, by kind.
    pub events_new: Family<KindLabel, Counter>,
    /// Events seen before (a resend): committed nothing, receipted again.
    pub events_duplicate: Counter,
    /// Messages refused, by reason.
    pub refused: Family<ReasonLabel, Counter>,
    /// Events per committed batch.
    pub batch_size: Histogram,
    /// Seconds from the start of a transaction to its commit.
    pub commit_seconds: Histogram,
    /// Failed commits (the batch is retried; nothing was acknowledged).
    pub commit_failures: Counter,
    /// Receipt messages sent to nodes.
    pub receipts_sent: Counter,
    /// Level changes recorded.
    pub assessments: Counter,
    /// CAP alerts published.
    pub cap_alerts: Counter,
    /// Rule evaluation errors (a rule that failed on an input did not match).
    pub rule_errors: Counter,
    /// Rule file reloads, by outcome.
    pub rule_reloads: Family<ReasonLabel, Counter>,
    /// 1 while the hub is connected to its broker.
    pub broker_connected: Gauge,
    /// Clients of the live stream.
    pub stream_clients: Gauge,
    /// HTTP requests refused for missing or wrong credentials (401) or role (403).
    pub auth_refused: Family<ReasonLabel, Counter>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("yingji_hub");
        let events_received = Family::<KindLabel, Counter>::default();
        registry.register(
            "events_received",
            "Events received from nodes, duplicates included",
            events_received.clone(),
        );
        let events_new = Family::<KindLabel, Counter>::default();
        registry.register("events_new", "Events committed for the first time", events_new.clone());
        let events_duplicate = Counter::default();
        registry.register(
            "events_duplicate",
            "Events already committed (resends), receipted again",
            events_duplicate.clone(),
        );
        let refused = Family::<ReasonLabel, Counter>::default();
        registry.register("refused", "Messages refused (not a valid event or status)", refused.clone());
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register("batch_size", "Events per committed batch", batch_size.clone());
        let commit_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register("commit_seconds", "Transaction time per batch", commit_seconds.clone());
        let commit_failures = Counter::default();
        registry.register("commit_failures", "Failed commits (retried; nothing acknowledged)", commit_failures.clone());
        let receipts_sent = Counter::default();
        registry.register("receipts_sent", "Receipt messages sent to nodes", receipts_sent.clone());
        let assessments = Counter::default();
        registry.register("assessments", "Response level changes recorded", assessments.clone());
        let cap_alerts = Counter::default();
        registry.register("cap_alerts", "CAP alerts published", cap_alerts.clone());
        let rule_errors = Counter::default();
        registry.register("rule_errors", "Rule evaluations that failed (the rule did not match)", rule_errors.clone());
        let rule_reloads = Family::<ReasonLabel, Counter>::default();
        registry.register("rule_reloads", "Rules file reloads by outcome (ok, refused)", rule_reloads.clone());
        let broker_connected = Gauge::default();
        registry.register("broker_connected", "1 while connected to the hub broker", broker_connected.clone());
        let stream_clients = Gauge::default();
        registry.register("stream_clients", "Clients of /api/v1/stream", stream_clients.clone());
        let auth_refused = Family::<ReasonLabel, Counter>::default();
        registry.register("auth_refused", "API requests refused (401 or 403)", auth_refused.clone());
        Metrics {
            registry,
            events_received,
            events_new,
            events_duplicate,
            refused,
            batch_size,
            commit_seconds,
            commit_failures,
            receipts_sent,
            assessments,
            cap_alerts,
            rule_errors,
            rule_reloads,
            broker_connected,
            stream_clients,
            auth_refused,
        }
    }

    pub fn kind(kind: &str) -> KindLabel {
        KindLabel { kind: kind.to_owned() }
    }

    pub fn reason(reason: &str) -> ReasonLabel {
        ReasonLabel { reason: reason.to_owned() }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
