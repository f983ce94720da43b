//! Dispatch orders down (design §3.1, §3.2, §3.6): the hub publishes signed orders on
//! `yingji/v1/node/{id}/dispatch`; the node verifies each with `proto::sign::verify_order`
//! against the hub keys it trusts and that the order names this node, then publishes it at
//! QoS 1, byte for byte as received, on `yingji/v1/dispatch/{team}` on the field broker. An order
//! that fails is not relayed: it is counted by code, logged, and reported to the hub as a
//! `dispatch_refused` warning event through the outbox, so that the report is never lost.
//!
//! Acknowledgements go up through ingest and the outbox (see `ingest` and `forward`).
//!
//! This task runs beside the event loops and never inside one: it may wait for the field
//! client's request channel or for the database, the event loops never wait for it.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ed25519_dalek::VerifyingKey;
use rumqttc::{AsyncClient, Publish, QoS};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use yingji_proto::sign::verify_order;
use yingji_proto::{Code, Invalid, Limits, topic};

use crate::metrics::{CodeLabel, Metrics};
use crate::store::Store;

/// Splits what arrives on the hub link: receipts to the forwarder, dispatch orders to the relay.
pub async fn route(
    node_id: String,
    mut messages: mpsc::UnboundedReceiver<Publish>,
    receipts: mpsc::UnboundedSender<Publish>,
    orders: mpsc::UnboundedSender<Publish>,
) {
    let (receipt_topic, dispatch_topic) = (topic::node_receipt(&node_id), topic::node_dispatch(&node_id));
    while let Some(message) = messages.recv().await {
        let to = if message.topic == receipt_topic {
            &receipts
        } else if message.topic == dispatch_topic {
            &orders
        } else {
            debug!(topic = %message.topic, "a message on the hub link that is neither a receipt nor an order");
            continue;
        };
        if to.send(message).is_err() {
            break;
        }
    }
}

/// Verifies the hub's dispatch orders and relays the good ones to their teams.
pub struct OrderRelay {
    pub node_id: String,
    /// The hub keys trusted (several while the hub rotates); empty: every order is refused.
    pub keys: Arc<[VerifyingKey]>,
    /// The field broker's client (the node's ingest connection).
    pub field: AsyncClient,
    /// The field topic prefix (`--field-mount`); empty: none.
    pub mount: String,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// Woken when a refusal was queued for the hub.
    pub forward: Arc<Notify>,
    pub limits: Limits,
}

impl OrderRelay {
    pub async fn run(self, mut orders: mpsc::UnboundedReceiver<Publish>, stop: CancellationToken) {
        let ids: Vec<String> = self.keys.iter().map(yingji_proto::sign::key_id).collect();
        if ids.is_empty() {
            info!("no hub key configured (--hub-key): dispatch orders from the hub will be refused");
        } else {
            info!(keys = %ids.join(","), "dispatch orders are verified against these hub keys");
        }
        loop {
            let message = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                message = orders.recv() => match message {
                    Some(m) => m,
                    None => break,
                },
            };
            self.handle(&message, &stop).await;
        }
    }

    async fn handle(&self, message: &Publish, stop: &CancellationToken) {
        let payload = &message.payload[..];
        let verified = verify_order(payload, &self.keys, Utc::now(), &self.limits).and_then(|order| {
            if order.node == self.node_id {
                Ok(order)
            } else {
                Err(Invalid::new(
                    Code::DeviceMismatch,
                    format!("the order is for node {:?}, and this is node {:?}", order.node, self.node_id),
                ))
            }
        });
        match verified {
            Ok(order) => {
                let to = format!("{}{}", self.mount, topic::dispatch(&order.team));
                match self.field.publish(to, QoS::AtLeastOnce, false, payload.to_vec()).await {
                    Ok(()) => {
                        self.metrics.dispatch_relayed.inc();
                        info!(order = %order.id, team = %order.team, exercise = order.exercise, "dispatch order relayed");
                    }
                    Err(e) => {
                        warn!(order = %order.id, team = %order.team, error = %e,
                            "could not queue a verified dispatch order for its team (the node is stopping)")
                    }
                }
            }
            Err(refusal) => self.refuse(payload, refusal, stop).await,
        }
    }

    /// Counts, logs and reports a refused order; the report is committed to the outbox,
    /// retrying while the database fails.
    async fn refuse(&self, payload: &[u8], refusal: Invalid, stop: &CancellationToken) {
        self.metrics.dispatch_refused.get_or_create(&CodeLabel { code: refusal.code.as_str().to_owned() }).inc();
        let event = crate::events::dispatch_refused(&self.node_id, payload, &refusal);
        warn!(
            code = refusal.code.as_str(),
            reason = %refusal.reason,
            event = %event.id,
            "dispatch order refused: it is not relayed to any team, and the hub is told"
        );
        let mut backoff = Duration::from_millis(50);
        loop {
            let result = async {
                let mut tx = self.store.begin().await?;
                tx.enqueue(std::slice::from_ref(&event)).await?;
                tx.commit().await
            }
            .await;
            match result {
                Ok(()) => {
                    self.forward.notify_one();
                    return;
                }
                Err(e) => {
                    warn!(error = %e, retry_in_ms = backoff.as_millis() as u64,
                        "could not queue the report of a refused dispatch order; retrying. Check the database");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}
