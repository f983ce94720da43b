//! The fleet: the scenario's stations and reporting units publishing over MQTT.
//!
//! Each node's devices publish through a few connections to that node's field broker (a
//! device always on the same connection, so its messages stay in order), at QoS 1, with a clean
//! session. The driver maps wall time to scenario time (`--speed`), asks the model for what is
//! due, and hands it to the connections; when the brokers cannot keep up, publishing waits and the
//! lag behind the schedule is reported rather than hidden.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::model::{OutKind, Outgoing};
use crate::platform::FieldBroker;

/// Live counts of the fleet, read by the progress display and the evaluation.
#[derive(Debug, Default)]
pub struct FleetCounts {
    pub published: AtomicU64,
    pub acked: AtomicU64,
    pub reports: AtomicU64,
    pub readings: AtomicU64,
    pub statuses: AtomicU64,
    /// How far publishing is behind the schedule, in wall milliseconds (the latest figure).
    pub lag_ms: AtomicU64,
    pub max_lag_ms: AtomicU64,
}

/// The connections of one node's devices.
struct NodeLink {
    clients: Vec<AsyncClient>,
    mount: String,
}

/// Publishes the fleet's messages.
pub struct Fleet {
    links: BTreeMap<String, NodeLink>,
    pub counts: Arc<FleetCounts>,
    tasks: JoinSet<()>,
    stop: CancellationToken,
}

impl Fleet {
    /// Connects `per_node` clients to each node's field broker.
    pub async fn connect(
        brokers: &BTreeMap<String, FieldBroker>,
        per_node: usize,
        run_id: &str,
    ) -> anyhow::Result<Fleet> {
        let counts = Arc::new(FleetCounts::default());
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut links = BTreeMap::new();
        for (node, broker) in brokers {
            let mut clients = Vec::new();
            for i in 0..per_node.max(1) {
                let client_id = format!("yingji-sim-{run_id}-{node}-{i}");
                let mut options = MqttOptions::new(client_id.clone(), broker.url.host.clone(), broker.url.port);
                options.set_keep_alive(Duration::from_secs(30));
                options.set_clean_session(true);
                options.set_inflight(1000);
                options.set_max_packet_size(8 * 1024 * 1024, 8 * 1024 * 1024);
                let (client, mut eventloop) = AsyncClient::new(options, 4096);
                let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
                let counts = counts.clone();
                let stop = stop.clone();
                tasks.spawn(async move {
                    let mut ready = Some(ready_tx);
                    loop {
                        let event = tokio::select! {
                            _ = stop.cancelled() => break,
                            e = eventloop.poll() => e,
                        };
                        match event {
                            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                                if let Some(r) = ready.take() {
                                    let _ = r.send(Ok(()));
                                }
                            }
                            Ok(Event::Incoming(Packet::PubAck(_))) => {
                                counts.acked.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(_) => {}
                            Err(e) => {
                                if let Some(r) = ready.take() {
                                    let _ = r.send(Err(e.to_string()));
                                    break;
                                }
                                warn!(client = %client_id, error = %e, "fleet connection lost; reconnecting");
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                        }
                    }
                });
                match tokio::time::timeout(Duration::from_secs(20), ready_rx).await {
                    Ok(Ok(Ok(()))) => {}
                    Ok(Ok(Err(e))) => {
                        anyhow::bail!("the fleet cannot connect to {}:{}: {e}", broker.url.host, broker.url.port)
                    }
                    _ => anyhow::bail!("the fleet got no answer from {}:{}", broker.url.host, broker.url.port),
                }
                clients.push(client);
            }
            links.insert(node.clone(), NodeLink { clients, mount: broker.mount.clone() });
        }
        Ok(Fleet { links, counts, tasks, stop })
    }

    /// Publishes one message on the connection of its device.
    pub async fn publish(&self, message: &Outgoing) -> anyhow::Result<()> {
        let link = self.links.get(&message.node).with_context(|| {
            format!("the scenario sends to node {:?}, which the platform does not have", message.node)
        })?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        device_of(&message.topic).hash(&mut hasher);
        let client = &link.clients[(hasher.finish() % link.clients.len() as u64) as usize];
        let topic = format!("{}{}", link.mount, message.topic);
        client
            .publish(topic, QoS::AtLeastOnce, false, message.payload.clone())
            .await
            .context("publishing a fleet message")?;
        self.counts.published.fetch_add(1, Ordering::Relaxed);
        let counter = match message.kind {
            OutKind::Report => &self.counts.reports,
            OutKind::Reading => &self.counts.readings,
            OutKind::Status => &self.counts.statuses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Waits until every published message has been acknowledged by its broker (or `within`).
    pub async fn flush(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let published = self.counts.published.load(Ordering::Relaxed);
            let acked = self.counts.acked.load(Ordering::Relaxed);
            if acked >= published {
                return true;
            }
            if tokio::time::Instant::now() > deadline {
                debug!(published, acked, "fleet flush timed out");
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Disconnects every connection.
    pub async fn close(mut self) {
        for link in self.links.values() {
            for client in &link.clients {
                let _ = client.try_disconnect();
            }
        }
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// The device level of a field topic (`yingji/v1/{kind}/{device}/...`).
pub fn device_of(topic: &str) -> &str {
    topic.split('/').nth(3).unwrap_or(topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_is_the_fourth_level() {
        assert_eq!(device_of("yingji/v1/senml/st-1"), "st-1");
        assert_eq!(device_of("yingji/v1/media/cam-2/ph-1"), "cam-2");
        assert_eq!(device_of("odd"), "odd");
    }
}
