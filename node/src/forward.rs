//! Store-and-forward to the hub: the outbox is sent to `yingji/v1/node/{id}/event` at QoS 1
//! with a bounded number in flight, and an event leaves the outbox only when the hub's receipt
//! (`yingji/v1/node/{id}/receipt`) names it — not on the broker's PUBACK, since a broker may
//! drop what it queued for an absent subscriber. What stays unreceipted is sent again with
//! backoff (2 s, 4 s, … 64 s); after the hub link comes back, everything waiting is due at once.
//!
//! Team acknowledgements travel through the same outbox (rows of kind `ack`), published on
//! `yingji/v1/node/{id}/ack` and receipted by their relay id like events.
//!
//! The hub link also carries the node's retained status (`yingji/v1/node/{id}/status`), with a
//! will message that says `online: false` when the node dies, and brings the hub's dispatch
//! orders (`yingji/v1/node/{id}/dispatch`, subscribed here on every connection; the
//! [`crate::relay`] verifies and relays them).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rumqttc::{AsyncClient, Publish, QoS};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use yingji_proto::event::Receipt;
use yingji_proto::status::NodeStatus;
use yingji_proto::topic;

use crate::metrics::Metrics;
use crate::mqtt::Link;
use crate::store::Store;

/// The forwarder's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The most events sent and not yet receipted.
    pub max_inflight: usize,
    /// Past this many waiting events, device-status events and then media references are dropped
    /// (oldest first); reports, warnings and statistics never are.
    pub max_outbox: i64,
    /// How long an event waits for its receipt before it is sent again; doubled per attempt up
    /// to 32 times this.
    pub resend_after: Duration,
}

/// The node's status message.
pub fn status_payload(online: bool) -> Vec<u8> {
    status_with_outbox(online, None)
}

/// The node's status with its outbox: how many events wait for a receipt and how old the
/// oldest is (the hub shows it as the node's lag).
pub fn status_with_outbox(online: bool, outbox: Option<(u64, f64)>) -> Vec<u8> {
    let status = NodeStatus {
        online,
        at: Utc::now().fixed_offset(),
        version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        outbox: outbox.map(|o| o.0),
        outbox_oldest_s: outbox.map(|o| o.1),
    };
    serde_json::to_vec(&status).unwrap_or_default()
}

/// How often a connected node republishes its status with its outbox.
pub const STATUS_EVERY: Duration = Duration::from_secs(15);

pub struct Forwarder {
    pub node_id: String,
    pub store: Store,
    pub client: AsyncClient,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    /// Woken after every commit that queued events.
    pub wake: Arc<Notify>,
}

impl Forwarder {
    pub async fn run(
        self,
        mut receipts: mpsc::UnboundedReceiver<Publish>,
        mut links: mpsc::UnboundedReceiver<Link>,
        stop: CancellationToken,
    ) {
        let mut connected = false;
        let mut inflight: HashMap<String, Instant> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_gauge = Instant::now() - Duration::from_secs(60);
        let mut last_status = Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                link = links.recv() => match link {
                    Some(Link::Up { .. }) => {
                        connected = true;
                        self.metrics.hub_connected.set(1);
                        inflight.clear();
                        self.on_connect().await;
                    }
                    Some(Link::Down) => {
                        connected = false;
                        self.metrics.hub_connected.set(0);
                    }
                    Some(Link::Subscribed) => {}
                    None => break,
                },
                message = receipts.recv() => match message {
                    Some(first) => {
                        // Every receipt waiting now, in one DELETE: receipts can come one per
                        // event, and a turn per receipt would fall behind the events.
                        let mut batch = vec![first];
                        while let Ok(more) = receipts.try_recv() {
                            batch.push(more);
                            if batch.len() >= 1000 {
                                break;
                            }
                        }
                        self.on_receipts(&batch, &mut inflight).await;
                    }
                    None => break,
                },
                _ = self.wake.notified() => {}
                _ = tick.tick() => {}
            }
            if connected {
                self.send_due(&mut inflight).await;
            }
            if last_gauge.elapsed() >= Duration::from_secs(1) {
                last_gauge = Instant::now();
                let outbox = self.housekeeping().await;
                if connected && last_status.elapsed() >= STATUS_EVERY {
                    last_status = Instant::now();
                    let payload = status_with_outbox(true, outbox);
                    let _ = self.client.try_publish(topic::node_status(&self.node_id), QoS::AtLeastOnce, true, payload);
                }
            }
        }
        // Say goodbye: the retained status tells the hub the node stopped on purpose.
        let _ =
            self.client.publish(topic::node_status(&self.node_id), QoS::AtLeastOnce, true, status_payload(false)).await;
    }

    async fn on_connect(&self) {
        info!(node = %self.node_id, "hub link up: publishing status and resending what waits for a receipt");
        let _ =
            self.client.publish(topic::node_status(&self.node_id), QoS::AtLeastOnce, true, status_payload(true)).await;
        // A clean session forgets subscriptions: subscribe on every connection.
        let filters = [topic::node_receipt(&self.node_id), topic::node_dispatch(&self.node_id)]
            .map(|t| rumqttc::SubscribeFilter::new(t, QoS::AtLeastOnce));
        if let Err(e) = self.client.subscribe_many(filters).await {
            warn!(error = %e, "could not subscribe to receipts and dispatch orders");
        }
        if let Err(e) = self.store.outbox_reset().await {
            warn!(error = %e, "could not mark the outbox due");
        }
    }

    async fn on_receipts(&self, messages: &[Publish], inflight: &mut HashMap<String, Instant>) {
        let mut ids = Vec::new();
        for message in messages {
            match serde_json::from_slice::<Receipt>(&message.payload) {
                Ok(receipt) => ids.extend(receipt.ids),
                Err(e) => {
                    warn!(error = %e, topic = %message.topic, "a receipt that is not contract v1 JSON was ignored")
                }
            }
        }
        for id in &ids {
            inflight.remove(id);
        }
        match self.store.outbox_receipted(&ids).await {
            Ok(n) => {
                self.metrics.events_receipted.inc_by(n);
            }
            Err(e) => warn!(error = %e, "could not remove receipted events; they will be sent again"),
        }
    }

    async fn send_due(&self, inflight: &mut HashMap<String, Instant>) {
        // An event unreceipted after `resend_after` may be due again by the outbox's backoff;
        // stop counting it as in flight so that the bound does not stall the link.
        let resend_after = self.settings.resend_after;
        inflight.retain(|_, sent| sent.elapsed() < resend_after);
        let room = self.settings.max_inflight.saturating_sub(inflight.len());
        if room == 0 {
            return;
        }
        let now = Utc::now().timestamp_millis();
        let due = match self.store.outbox_due(now, self.settings.resend_after.as_millis() as i64, room as i64).await {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "could not read the outbox");
                return;
            }
        };
        let mut sent = Vec::with_capacity(due.len());
        for event in due {
            if inflight.contains_key(&event.id) {
                continue;
            }
            let to = if event.kind == crate::events::KIND_ACK {
                topic::node_ack(&self.node_id)
            } else {
                topic::node_event(&self.node_id)
            };
            match self.client.try_publish(to, QoS::AtLeastOnce, false, event.payload.into_bytes()) {
                Ok(()) => {
                    if event.attempts > 0 {
                        self.metrics.events_resent.inc();
                    } else {
                        self.metrics.forward_latency_seconds.observe((now - event.created_ms).max(0) as f64 / 1000.0);
                    }
                    self.metrics.events_sent.inc();
                    inflight.insert(event.id, Instant::now());
                    sent.push(event.seq);
                }
                // The request queue is full: the rest waits for the next round.
                Err(_) => break,
            }
        }
        if let Err(e) = self.store.outbox_sent(&sent, now).await {
            warn!(error = %e, "could not record sent events; they will be sent again");
        }
    }

    async fn housekeeping(&self) -> Option<(u64, f64)> {
        match self.store.outbox_trim(self.settings.max_outbox).await {
            Ok(0) => {}
            Ok(n) => {
                self.metrics.events_dropped.inc_by(n);
                warn!(
                    dropped = n,
                    max = self.settings.max_outbox,
                    "the outbox is full: dropped the oldest device-status and media events. Check the hub link"
                );
            }
            Err(e) => warn!(error = %e, "could not trim the outbox"),
        }
        let (depth, oldest) = self.store.outbox_depth().await.ok()?;
        self.metrics.outbox_depth.set(depth);
        let age = oldest.map(|o| (Utc::now().timestamp_millis() - o).max(0) as f64 / 1000.0).unwrap_or(0.0);
        self.metrics.outbox_oldest_seconds.set(age);
        Some((u64::try_from(depth).unwrap_or(0), age))
    }
}
