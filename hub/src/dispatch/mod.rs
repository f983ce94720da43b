//! Dispatch: from an assessment's recommended actions to signed orders, acknowledged, tracked
//! and escalated.
//!
//! - [`propose`] (pure) picks teams and stockpiles with explanations.
//! - [`propose_in`] makes a proposal inside the intake's transaction when a level is raised or
//!   upgraded (and when an order is declined or goes overdue: the next best team).
//! - [`Dispatcher::approve`] books the teams and the stock (conditional updates: never twice),
//!   signs each order (Ed25519 over RFC 8785 JSON without `sig`), records it and the audit entry
//!   in one transaction, then publishes to `yingji/v1/node/{node}/dispatch`.
//! - [`apply_ack`] moves an order along received → accepted → en_route → on_scene → completed
//!   (or declined) from the team's acknowledgements; the team's status follows.
//! - [`Dispatcher::tick`] finds orders not received or accepted within `ack_within_s`: the
//!   first time it resends them and gives them as long again; the second time the order is
//!   overdue, the team is released and excluded for the incident, and the next best team is
//!   proposed. Officers hear of it on the stream.

pub mod propose;

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use chrono::{FixedOffset, TimeZone, Utc};
use geo::{BoundingRect, Centroid, Distance, Haversine, Intersects};
use rumqttc::{AsyncClient, QoS};
use serde_json::json;
use tokio::sync::broadcast;
use yingji_node::regions::Regions;
use yingji_proto::dispatch::{Ack, AckStatus, DispatchOrder, ResourceLine};

use crate::picture;
use crate::rules::Action;
use crate::store::{NewAudit, OrderRow, Store, StoreError, Tx};
use propose::{Neighbours, Request, Resources, Stockpile, Team, TeamStatus};

/// How dispatch behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Seconds a team has to receive and accept an order.
    pub ack_within_s: i64,
    pub propose: propose::Settings,
}

impl Default for Settings {
    fn default() -> Settings {
        // 16 candidates per tree walk: the tree's order is already the great-circle order, so
        // the result is the same as with more, at half the cost (docs/dispatch.md).
        Settings { ack_within_s: 600, propose: propose::Settings { candidates: 16, ..propose::Settings::default() } }
    }
}

/// What proposals need besides the database: neighbouring provinces and the settings.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub neighbours: Neighbours,
    pub settings: Settings,
}

/// Who did something, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    pub who: String,
    pub role: String,
    pub remote: String,
}

impl Actor {
    pub fn system() -> Actor {
        Actor { who: "system".into(), role: "system".into(), remote: "-".into() }
    }
}

/// Why a dispatch action was refused.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("no proposal {0:?}")]
    NotFound(String),
    #[error("proposal {0:?} was already decided")]
    Decided(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Neighbouring provinces from the regions file: top-level divisions whose shapes touch, nearest
/// centroid first.
pub fn neighbours(regions: &Regions) -> Neighbours {
    let provinces: Vec<_> = regions.divisions().iter().filter(|d| d.parent.is_none()).collect();
    let mut out = Neighbours::new();
    for a in &provinces {
        let mut near: Vec<(f64, String)> = Vec::new();
        for b in &provinces {
            if a.code == b.code {
                continue;
            }
            let boxes = match (a.shape.bounding_rect(), b.shape.bounding_rect()) {
                (Some(x), Some(y)) => x.intersects(&y),
                _ => false,
            };
            if boxes && a.shape.intersects(&b.shape) {
                let d = match (a.shape.centroid(), b.shape.centroid()) {
                    (Some(p), Some(q)) => Haversine.distance(p, q),
                    _ => f64::MAX,
                };
                near.push((d, b.code.clone()));
            }
        }
        near.sort_by(|x, y| x.0.total_cmp(&y.0).then_with(|| x.1.cmp(&y.1)));
        out.insert(a.code.clone(), near.into_iter().map(|(_, c)| c).collect());
    }
    out
}

/// Where teams go for a division: its polygon's centroid (lat, lon), or its nearest enclosing
/// division's when the regions file lacks it.
pub fn destination(regions: &Regions, division: &str) -> Option<(f64, f64)> {
    yingji_node::stats::lineage(&picture::HubHierarchy(regions), division).iter().find_map(|code| {
        let c = regions.get(code)?.shape.centroid()?;
        Some((c.y(), c.x()))
    })
}

async fn resources(tx: &mut Tx) -> Result<Resources, StoreError> {
    let teams = tx
        .teams()
        .await?
        .into_iter()
        .map(|t| Team {
            status: match t.status.as_str() {
                "available" => TeamStatus::Available,
                "assigned" => TeamStatus::Assigned,
                _ => TeamStatus::Unavailable,
            },
            id: t.id,
            name: t.name,
            node: t.node,
            province: t.province,
            lat: t.lat,
            lon: t.lon,
            capabilities: t.capabilities,
            size: u32::try_from(t.size).unwrap_or(u32::MAX),
        })
        .collect();
    let stockpiles = tx
        .stockpiles()
        .await?
        .into_iter()
        .map(|s| Stockpile {
            id: s.id,
            name: s.name,
            province: s.province,
            lat: s.lat,
            lon: s.lon,
            items: s.items.into_iter().map(|(k, v)| (k, u64::try_from(v).unwrap_or(0))).collect(),
        })
        .collect();
    Ok(Resources::new(teams, stockpiles))
}

/// What a proposal is for.
#[derive(Debug, Clone)]
pub struct ProposalFor<'a> {
    pub incident: &'a str,
    pub exercise: bool,
    pub assessment: Option<&'a str>,
    pub division: &'a str,
    pub actions: &'a [Action],
    pub escalated_from: Option<&'a str>,
}

/// Makes and stores a proposal inside `tx`. Returns its id, or `None` when there is nothing to
/// propose (no actions, or no place to send teams to).
pub async fn propose_in(
    tx: &mut Tx,
    regions: &Regions,
    neighbours: &Neighbours,
    settings: &Settings,
    what: &ProposalFor<'_>,
    now_ms: i64,
) -> Result<Option<String>, StoreError> {
    if what.actions.is_empty() {
        return Ok(None);
    }
    let Some(dest) = destination(regions, what.division) else {
        tracing::warn!(
            division = what.division,
            incident = what.incident,
            "no polygon for the division in the regions file: no dispatch proposal (give the hub --regions)"
        );
        return Ok(None);
    };
    let resources = resources(tx).await?;
    let request = Request {
        incident: what.incident.to_owned(),
        exercise: what.exercise,
        destination: dest,
        province: picture::province_of(regions, what.division),
        actions: what.actions.to_vec(),
        exclude_teams: tx.excluded_teams(what.incident, what.exercise).await?,
    };
    let proposal = propose::propose(&resources, &request, neighbours, &settings.propose);
    let automatic = what.actions.iter().any(|a| matches!(a, Action::Teams { automatic: true, .. }))
        && what.actions.iter().all(|a| !matches!(a, Action::Teams { automatic: false, .. }));
    let id = uuid::Uuid::now_v7().to_string();
    let body = json!({
        "actions": what.actions,
        "teams": proposal.teams,
        "items": proposal.items,
        "shortfalls": proposal.shortfalls,
        "notes": proposal.notes,
    });
    tx.insert_proposal(
        &id,
        what.incident,
        what.exercise,
        what.assessment,
        what.division,
        dest,
        &body,
        settings.ack_within_s,
        automatic,
        what.escalated_from,
        now_ms,
    )
    .await?;
    tx.audit(
        &NewAudit {
            who: "system",
            role: "system",
            action: if what.escalated_from.is_some() { "escalate" } else { "propose" },
            target: &id,
            remote: "-",
            detail: json!({"incident": what.incident, "exercise": what.exercise, "assessment": what.assessment,
                           "escalated_from": what.escalated_from, "teams": proposal.teams.len(),
                           "shortfalls": proposal.shortfalls}),
        },
        now_ms,
    )
    .await?;
    Ok(Some(id))
}

/// The rank of an order status along its way; declined and overdue end it.
fn rank(status: &str) -> i32 {
    match status {
        "issued" => 0,
        "received" => 1,
        "accepted" => 2,
        "en_route" => 3,
        "on_scene" => 4,
        "completed" => 5,
        _ => 6,
    }
}

fn ack_status(s: AckStatus) -> &'static str {
    match s {
        AckStatus::Received => "received",
        AckStatus::Accepted => "accepted",
        AckStatus::Declined => "declined",
        AckStatus::EnRoute => "en_route",
        AckStatus::OnScene => "on_scene",
        AckStatus::Completed => "completed",
    }
}

/// What an acknowledgement changed.
#[derive(Debug)]
pub struct AckOutcome {
    pub stream: serde_json::Value,
    /// A declined order's replacement proposal.
    pub proposal: Option<String>,
}

/// Applies a team's acknowledgement inside `tx` (idempotent on the ack's id). An ack for an
/// unknown order or from another team than the order's is refused (`Err` text, nothing
/// changed).
pub async fn apply_ack(
    tx: &mut Tx,
    ack: &Ack,
    regions: &Regions,
    neighbours: &Neighbours,
    settings: &Settings,
    now_ms: i64,
) -> Result<Result<Option<AckOutcome>, String>, StoreError> {
    let Some(order) = tx.order(&ack.dispatch).await? else {
        return Ok(Err(format!("no order {:?}", ack.dispatch)));
    };
    if order.team != ack.team {
        return Ok(Err(format!("order {:?} is for team {:?}, not {:?}", order.id, order.team, ack.team)));
    }
    let status = ack_status(ack.status);
    if !tx
        .insert_order_event(&order.id, &ack.id, status, ack.at.timestamp_millis(), ack.note.as_deref(), now_ms)
        .await?
    {
        return Ok(Ok(None));
    }
    let current = rank(&order.status);
    let mut proposal = None;
    if current >= 5 {
        // Completed, declined or overdue: the answer is recorded, the order stays as it is.
    } else if status == "declined" {
        tx.set_order_status(&order.id, "declined", None, now_ms).await?;
        tx.release_team(&order.team, &order.id, now_ms).await?;
        proposal = replace(tx, &order, regions, neighbours, settings, now_ms).await?;
    } else if rank(status) > current {
        tx.set_order_status(&order.id, status, None, now_ms).await?;
        if status == "completed" {
            tx.release_team(&order.team, &order.id, now_ms).await?;
        }
    }
    let stream = json!({"type": "order", "order": order.id, "team": order.team, "status": status,
                        "incident": order.incident, "proposal": proposal, "exercise": order.exercise, "node": order.node});
    Ok(Ok(Some(AckOutcome { stream, proposal })))
}

/// Proposes the next best team for an order that was declined or went overdue.
async fn replace(
    tx: &mut Tx,
    order: &OrderRow,
    regions: &Regions,
    neighbours: &Neighbours,
    settings: &Settings,
    now_ms: i64,
) -> Result<Option<String>, StoreError> {
    let region = order.signed.get("region").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    let actions = [Action::Teams { capability: order.capability.clone(), teams: 1, automatic: false }];
    propose_in(
        tx,
        regions,
        neighbours,
        settings,
        &ProposalFor {
            incident: &order.incident,
            exercise: order.exercise,
            assessment: None,
            division: &region,
            actions: &actions,
            escalated_from: Some(&order.id),
        },
        now_ms,
    )
    .await
}

/// Signs, books, publishes.
pub struct Dispatcher {
    pub store: Store,
    pub client: AsyncClient,
    pub key: ed25519_dalek::SigningKey,
    pub regions: Arc<Regions>,
    pub neighbours: Arc<Neighbours>,
    pub settings: Settings,
    pub stream: broadcast::Sender<Arc<str>>,
    pub postgres: bool,
}

/// The hub's signing key from the database, made on first start.
pub async fn signing_key(store: &Store) -> Result<ed25519_dalek::SigningKey, StoreError> {
    let mut secret = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
    let fresh = ed25519_dalek::SigningKey::from_bytes(&secret);
    let public = fresh.verifying_key();
    let b64 = base64::engine::general_purpose::STANDARD;
    let (_, stored) = store
        .signing_key(
            (yingji_proto::sign::key_id(&public), b64.encode(secret), yingji_proto::sign::public_key_base64(&public)),
            Utc::now().timestamp_millis(),
        )
        .await?;
    let bytes: [u8; 32] = b64
        .decode(stored.trim())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt("the stored signing key is not 32 bytes of base64".into()))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&bytes))
}

fn beijing(ms: i64) -> chrono::DateTime<FixedOffset> {
    let offset = FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| chrono::Offset::fix(&Utc));
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default().with_timezone(&offset)
}

impl Dispatcher {
    fn emit(&self, value: serde_json::Value) {
        let _ = self.stream.send(Arc::from(value.to_string()));
    }

    async fn publish(&self, node: &str, signed: &str) {
        if let Err(e) = self
            .client
            .publish(yingji_proto::topic::node_dispatch(node), QoS::AtLeastOnce, false, signed.as_bytes().to_vec())
            .await
        {
            tracing::warn!(error = %e, node, "could not queue an order for its node; the overdue check will resend it");
        }
    }

    /// Approves a proposal: books every team and item, signs and records the orders, audits,
    /// commits, then publishes. Nothing is booked if anything cannot be.
    pub async fn approve(&self, id: &str, actor: &Actor, now_ms: i64) -> Result<Vec<String>, DispatchError> {
        let mut tx = self.store.begin().await?;
        let Some(proposal) = tx.open_proposal(id, self.postgres).await? else {
            return Err(match self.store.proposal(id).await? {
                Some(_) => DispatchError::Decided(id.to_owned()),
                None => DispatchError::NotFound(id.to_owned()),
            });
        };
        let teams = proposal.body.get("teams").and_then(|v| v.as_array()).cloned().unwrap_or_default();
        let items = proposal.body.get("items").and_then(|v| v.as_array()).cloned().unwrap_or_default();
        if teams.is_empty() && items.is_empty() {
            return Err(DispatchError::Invalid("the proposal names no team and no item: edit it or reject it".into()));
        }
        let mut lines: Vec<ResourceLine> = Vec::new();
        for i in &items {
            let (item, stockpile) =
                (i["item"].as_str().unwrap_or_default(), i["stockpile"].as_str().unwrap_or_default());
            let qty = i["qty"].as_i64().unwrap_or(0);
            if qty <= 0 {
                continue;
            }
            if !tx.take_stock(stockpile, item, qty).await? {
                return Err(DispatchError::Conflict(format!(
                    "stockpile {stockpile:?} no longer holds {qty} {item}: edit the proposal"
                )));
            }
            lines.push(ResourceLine { item: item.to_owned(), qty });
        }
        let region = proposal.region.clone();
        let mut orders = Vec::new();
        for (n, t) in teams.iter().enumerate() {
            let (team, node, capability) = (
                t["team"].as_str().unwrap_or_default(),
                t["node"].as_str().unwrap_or_default(),
                t["capability"].as_str().unwrap_or_default(),
            );
            let order_id = uuid::Uuid::now_v7().to_string();
            if !tx.book_team(team, &order_id, now_ms).await? {
                return Err(DispatchError::Conflict(format!(
                    "team {team:?} is no longer available (another order took it, or it became unavailable): edit the proposal"
                )));
            }
            let order = DispatchOrder {
                id: order_id.clone(),
                incident: proposal.incident.clone(),
                team: team.to_owned(),
                node: node.to_owned(),
                task: format!("{capability} — {} ({})", picture::name_of(&self.regions, &region), proposal.incident),
                destination: yingji_proto::Location { lat: proposal.dest_lat, lon: proposal.dest_lon },
                region: region.clone(),
                // The relief items travel with the first order.
                resources: if n == 0 { lines.clone() } else { Vec::new() },
                issued_at: beijing(now_ms - now_ms.rem_euclid(1000)),
                ack_within_s: u32::try_from(proposal.ack_within_s).unwrap_or(600),
                exercise: proposal.exercise,
                sig: String::new(),
            };
            let signed = yingji_proto::sign::sign_order(&order, &self.key);
            let signed = serde_json::to_string(&signed).unwrap_or_default();
            tx.insert_order(
                &order_id,
                &proposal.id,
                &proposal.incident,
                proposal.exercise,
                team,
                node,
                capability,
                now_ms,
                proposal.ack_within_s,
                &signed,
            )
            .await?;
            orders.push((order_id, node.to_owned(), signed));
        }
        if !tx.decide_proposal(id, "approved", &actor.who, None, now_ms).await? {
            return Err(DispatchError::Decided(id.to_owned()));
        }
        tx.audit(
            &NewAudit {
                who: &actor.who,
                role: &actor.role,
                action: "approve",
                target: id,
                remote: &actor.remote,
                detail: json!({"orders": orders.iter().map(|o| &o.0).collect::<Vec<_>>(), "items": lines}),
            },
            now_ms,
        )
        .await?;
        tx.commit().await?;
        for (order_id, node, signed) in &orders {
            self.publish(node, signed).await;
            self.emit(json!({"type": "order", "order": order_id, "status": "issued", "proposal": id,
                             "incident": proposal.incident, "exercise": proposal.exercise, "node": node}));
        }
        Ok(orders.into_iter().map(|o| o.0).collect())
    }

    pub async fn reject(&self, id: &str, actor: &Actor, reason: &str, now_ms: i64) -> Result<(), DispatchError> {
        let mut tx = self.store.begin().await?;
        if !tx.decide_proposal(id, "rejected", &actor.who, Some(reason), now_ms).await? {
            return Err(match self.store.proposal(id).await? {
                Some(_) => DispatchError::Decided(id.to_owned()),
                None => DispatchError::NotFound(id.to_owned()),
            });
        }
        tx.audit(
            &NewAudit {
                who: &actor.who,
                role: &actor.role,
                action: "reject",
                target: id,
                remote: &actor.remote,
                detail: json!({"reason": reason}),
            },
            now_ms,
        )
        .await?;
        tx.commit().await?;
        self.emit(json!({"type": "proposal", "proposal": id, "status": "rejected"}));
        Ok(())
    }

    /// Replaces a proposal's teams and/or items before approval. Teams are checked to exist.
    pub async fn edit(
        &self,
        id: &str,
        actor: &Actor,
        edit: &serde_json::Value,
        now_ms: i64,
    ) -> Result<serde_json::Value, DispatchError> {
        let mut tx = self.store.begin().await?;
        let Some(proposal) = tx.open_proposal(id, self.postgres).await? else {
            return Err(match self.store.proposal(id).await? {
                Some(_) => DispatchError::Decided(id.to_owned()),
                None => DispatchError::NotFound(id.to_owned()),
            });
        };
        let mut body = proposal.body.clone();
        let known: BTreeMap<String, crate::store::TeamRow> =
            tx.teams().await?.into_iter().map(|t| (t.id.clone(), t)).collect();
        if let Some(teams) = edit.get("teams") {
            let Some(list) = teams.as_array() else {
                return Err(DispatchError::Invalid("teams: a list of {\"team\", \"capability\"}".into()));
            };
            let mut chosen = Vec::new();
            for t in list {
                let team = t["team"].as_str().unwrap_or_default();
                let Some(row) = known.get(team) else {
                    return Err(DispatchError::Invalid(format!("no team {team:?}")));
                };
                let capability = t["capability"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| row.capabilities.first().cloned())
                    .unwrap_or_default();
                if !row.capabilities.contains(&capability) {
                    return Err(DispatchError::Invalid(format!("team {team:?} lacks {capability:?}")));
                }
                chosen.push(json!({"team": team, "name": row.name, "node": row.node, "capability": capability,
                                   "explanation": format!("chosen by {}", actor.who)}));
            }
            body["teams"] = json!(chosen);
        }
        if let Some(items) = edit.get("items") {
            let ok = items.as_array().is_some_and(|l| {
                l.iter().all(|i| {
                    i["item"].is_string() && i["stockpile"].is_string() && i["qty"].as_i64().is_some_and(|q| q >= 0)
                })
            });
            if !ok {
                return Err(DispatchError::Invalid("items: a list of {\"item\", \"stockpile\", \"qty\" ≥ 0}".into()));
            }
            body["items"] = items.clone();
        }
        tx.set_proposal_body(id, &body).await?;
        tx.audit(
            &NewAudit {
                who: &actor.who,
                role: &actor.role,
                action: "edit",
                target: id,
                remote: &actor.remote,
                detail: edit.clone(),
            },
            now_ms,
        )
        .await?;
        tx.commit().await?;
        self.emit(json!({"type": "proposal", "proposal": id, "status": "edited"}));
        Ok(body)
    }

    /// The overdue check: resend once, then escalate. Also approves automatic proposals.
    pub async fn tick(&self, now_ms: i64) -> Result<(), DispatchError> {
        for order in self.store.orders_due(now_ms).await? {
            let mut tx = self.store.begin().await?;
            if order.resent == 0 {
                if tx.mark_resent(&order.id, now_ms + order.ack_within_s * 1000).await? {
                    tx.audit(
                        &NewAudit {
                            who: "system",
                            role: "system",
                            action: "resend",
                            target: &order.id,
                            remote: "-",
                            detail: json!({"team": order.team, "status": order.status}),
                        },
                        now_ms,
                    )
                    .await?;
                    tx.commit().await?;
                    self.publish(&order.node, &order.signed_raw).await;
                    self.emit(json!({"type": "order", "order": order.id, "status": order.status, "event": "resent",
                                     "team": order.team, "incident": order.incident, "exercise": order.exercise}));
                }
                continue;
            }
            // Overdue after a resend: release the team, exclude it, propose the next best.
            let region = order.signed.get("region").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            if !tx.mark_overdue(&order.id, now_ms).await? {
                continue;
            }
            tx.release_team(&order.team, &order.id, now_ms).await?;
            let replacement = replace(&mut tx, &order, &self.regions, &self.neighbours, &self.settings, now_ms).await?;
            if let Some(p) = &replacement {
                tx.set_escalated_to(&order.id, p).await?;
            }
            tx.audit(
                &NewAudit {
                    who: "system",
                    role: "system",
                    action: "overdue",
                    target: &order.id,
                    remote: "-",
                    detail: json!({"team": order.team, "region": region, "proposal": replacement}),
                },
                now_ms,
            )
            .await?;
            tx.commit().await?;
            tracing::warn!(order = %order.id, team = %order.team, proposal = ?replacement,
                "an order went unanswered after a resend: overdue, the next best team is proposed");
            self.emit(json!({"type": "escalation", "order": order.id, "team": order.team, "incident": order.incident,
                             "proposal": replacement, "exercise": order.exercise}));
        }
        for p in self.store.proposals(Some("proposed"), 100).await? {
            if p.automatic {
                match self.approve(&p.id, &Actor::system(), now_ms).await {
                    Ok(_) | Err(DispatchError::Decided(_)) => {}
                    Err(e) => {
                        tracing::warn!(proposal = %p.id, error = %e, "an automatic proposal could not be issued; it waits for an officer")
                    }
                }
            }
        }
        Ok(())
    }
}
