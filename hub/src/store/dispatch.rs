//! Storage of resources, proposals, orders, the audit log and the signing key.
//!
//! Booking is a conditional UPDATE checked by its row count: a team is taken only if it is
//! still `available`, stock only if enough is left (`qty >= n`, and a CHECK keeps it ≥ 0). On
//! PostgreSQL the UPDATE waits for a concurrent one on the same row and re-checks its condition
//! on the row as committed; on SQLite there is one writer. Two officers approving at once can
//! therefore never book one team or one unit of stock twice.

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError, Tx, json};
use crate::resources::Records;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TeamRow {
    pub id: String,
    pub name: String,
    pub node: String,
    pub province: String,
    pub lat: f64,
    pub lon: f64,
    pub capabilities: Vec<String>,
    pub size: i64,
    pub status: String,
    pub order_id: Option<String>,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StockpileRow {
    pub id: String,
    pub name: String,
    pub province: String,
    pub lat: f64,
    pub lon: f64,
    pub items: std::collections::BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProposalRow {
    pub id: String,
    pub incident: String,
    pub exercise: bool,
    pub assessment: Option<String>,
    pub region: String,
    pub dest_lat: f64,
    pub dest_lon: f64,
    pub status: String,
    pub body: serde_json::Value,
    pub ack_within_s: i64,
    pub automatic: bool,
    pub created_ms: i64,
    pub decided_ms: Option<i64>,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    pub escalated_from: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrderRow {
    pub id: String,
    pub proposal: String,
    pub incident: String,
    pub exercise: bool,
    pub team: String,
    pub node: String,
    pub capability: String,
    pub status: String,
    pub issued_ms: i64,
    pub due_ms: i64,
    pub ack_within_s: i64,
    pub status_ms: i64,
    pub resent: i64,
    pub escalated_to: Option<String>,
    pub signed: serde_json::Value,
    /// The order exactly as signed and sent (resends send these bytes again).
    #[serde(skip)]
    pub signed_raw: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub id: String,
    pub at_ms: i64,
    pub who: String,
    pub role: String,
    pub action: String,
    pub target: String,
    pub remote: String,
    pub detail: serde_json::Value,
}

/// One audit entry to append.
#[derive(Debug, Clone)]
pub struct NewAudit<'a> {
    pub who: &'a str,
    pub role: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub remote: &'a str,
    pub detail: serde_json::Value,
}

const TEAM_COLUMNS: &str = "id, name, node, province, lat, lon, capabilities, size, status, order_id, updated_ms";
const PROPOSAL_COLUMNS: &str = "id, incident, exercise, assessment, region, dest_lat, dest_lon, status, body, ack_within_s, \
     automatic, created_ms, decided_ms, decided_by, reason, escalated_from";
const ORDER_COLUMNS: &str = "id, proposal, incident, exercise, team, node, capability, status, issued_ms, due_ms, \
     ack_within_s, status_ms, resent, escalated_to, signed";

fn team(r: &sqlx::any::AnyRow) -> Result<TeamRow, StoreError> {
    Ok(TeamRow {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        node: r.try_get(2)?,
        province: r.try_get(3)?,
        lat: r.try_get(4)?,
        lon: r.try_get(5)?,
        capabilities: serde_json::from_str(&r.try_get::<String, _>(6)?).unwrap_or_default(),
        size: r.try_get(7)?,
        status: r.try_get(8)?,
        order_id: r.try_get(9)?,
        updated_ms: r.try_get(10)?,
    })
}

fn proposal(r: &sqlx::any::AnyRow) -> Result<ProposalRow, StoreError> {
    Ok(ProposalRow {
        id: r.try_get(0)?,
        incident: r.try_get(1)?,
        exercise: r.try_get::<i64, _>(2)? != 0,
        assessment: r.try_get(3)?,
        region: r.try_get(4)?,
        dest_lat: r.try_get(5)?,
        dest_lon: r.try_get(6)?,
        status: r.try_get(7)?,
        body: json(r.try_get(8)?),
        ack_within_s: r.try_get(9)?,
        automatic: r.try_get::<i64, _>(10)? != 0,
        created_ms: r.try_get(11)?,
        decided_ms: r.try_get(12)?,
        decided_by: r.try_get(13)?,
        reason: r.try_get(14)?,
        escalated_from: r.try_get(15)?,
    })
}

fn order(r: &sqlx::any::AnyRow) -> Result<OrderRow, StoreError> {
    Ok(OrderRow {
        id: r.try_get(0)?,
        proposal: r.try_get(1)?,
        incident: r.try_get(2)?,
        exercise: r.try_get::<i64, _>(3)? != 0,
        team: r.try_get(4)?,
        node: r.try_get(5)?,
        capability: r.try_get(6)?,
        status: r.try_get(7)?,
        issued_ms: r.try_get(8)?,
        due_ms: r.try_get(9)?,
        ack_within_s: r.try_get(10)?,
        status_ms: r.try_get(11)?,
        resent: r.try_get(12)?,
        escalated_to: r.try_get(13)?,
        signed_raw: r.try_get(14)?,
        signed: serde_json::Value::Null,
    })
    .map(|mut o: OrderRow| {
        o.signed = serde_json::from_str(&o.signed_raw).unwrap_or_default();
        o
    })
}

async fn stockpiles<'e, E>(e: E) -> Result<Vec<StockpileRow>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query(
        "SELECT s.id, s.name, s.province, s.lat, s.lon, k.item, k.qty FROM stockpiles s \
         LEFT JOIN stock k ON k.stockpile = s.id ORDER BY s.id, k.item",
    )
    .fetch_all(e)
    .await?;
    let mut out: Vec<StockpileRow> = Vec::new();
    for r in &rows {
        let id: String = r.try_get(0)?;
        if out.last().map(|s| s.id != id).unwrap_or(true) {
            out.push(StockpileRow {
                id,
                name: r.try_get(1)?,
                province: r.try_get(2)?,
                lat: r.try_get(3)?,
                lon: r.try_get(4)?,
                items: Default::default(),
            });
        }
        if let (Some(item), Some(qty)) = (r.try_get::<Option<String>, _>(5)?, r.try_get::<Option<i64>, _>(6)?)
            && let Some(s) = out.last_mut()
        {
            s.items.insert(item, qty);
        }
    }
    Ok(out)
}

impl Store {
    pub async fn teams(&self) -> Result<Vec<TeamRow>, StoreError> {
        let sql = format!("SELECT {TEAM_COLUMNS} FROM teams ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.reader).await?;
        rows.iter().map(team).collect()
    }

    pub async fn stockpiles(&self) -> Result<Vec<StockpileRow>, StoreError> {
        stockpiles(&self.reader).await
    }

    /// Hazards or targets as JSON objects.
    pub async fn places(&self, kind: crate::resources::Kind) -> Result<Vec<serde_json::Value>, StoreError> {
        use crate::resources::Kind;
        let rows = match kind {
            Kind::Hazards => sqlx::query("SELECT id, name, kind, level, lat, lon, geometry FROM hazards ORDER BY id")
                .fetch_all(&self.reader)
                .await?
                .iter()
                .map(|r| {
                    Ok(serde_json::json!({"id": r.try_get::<String, _>(0)?, "name": r.try_get::<String, _>(1)?,
                        "kind": r.try_get::<String, _>(2)?, "level": r.try_get::<String, _>(3)?,
                        "lat": r.try_get::<f64, _>(4)?, "lon": r.try_get::<f64, _>(5)?, "geometry": json(r.try_get(6)?)}))
                })
                .collect::<Result<Vec<_>, StoreError>>()?,
            Kind::Targets => sqlx::query("SELECT id, name, kind, lat, lon, people FROM targets ORDER BY id")
                .fetch_all(&self.reader)
                .await?
                .iter()
                .map(|r| {
                    Ok(serde_json::json!({"id": r.try_get::<String, _>(0)?, "name": r.try_get::<String, _>(1)?,
                        "kind": r.try_get::<String, _>(2)?, "lat": r.try_get::<f64, _>(3)?, "lon": r.try_get::<f64, _>(4)?,
                        "people": r.try_get::<i64, _>(5)?}))
                })
                .collect::<Result<Vec<_>, StoreError>>()?,
            _ => Vec::new(),
        };
        Ok(rows)
    }

    pub async fn proposals(&self, status: Option<&str>, limit: i64) -> Result<Vec<ProposalRow>, StoreError> {
        let sql = format!(
            "SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE ($1 IS NULL OR status = $1) ORDER BY created_ms DESC, id DESC LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(status.map(str::to_owned))
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(proposal).collect()
    }

    pub async fn proposal(&self, id: &str) -> Result<Option<ProposalRow>, StoreError> {
        let sql = format!("SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.reader).await?;
        row.as_ref().map(proposal).transpose()
    }

    pub async fn orders(&self, incident: Option<&str>, limit: i64) -> Result<Vec<OrderRow>, StoreError> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE ($1 IS NULL OR incident = $1) ORDER BY issued_ms DESC, id DESC LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(incident.map(str::to_owned))
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(order).collect()
    }

    pub async fn order(&self, id: &str) -> Result<Option<OrderRow>, StoreError> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&self.reader).await?;
        row.as_ref().map(order).transpose()
    }

    /// Orders past their due time that still wait for a team's answer.
    pub async fn orders_due(&self, now_ms: i64) -> Result<Vec<OrderRow>, StoreError> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE status IN ('issued', 'received') AND due_ms <= $1 ORDER BY due_ms, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now_ms).fetch_all(&self.reader).await?;
        rows.iter().map(order).collect()
    }

    pub async fn order_events(&self, order_id: &str) -> Result<Vec<serde_json::Value>, StoreError> {
        let rows = sqlx::query(
            "SELECT ack_id, status, at_ms, received_ms, note FROM order_events WHERE order_id = $1 ORDER BY at_ms, ack_id",
        )
        .bind(order_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(serde_json::json!({"ack": r.try_get::<String, _>(0)?, "status": r.try_get::<String, _>(1)?,
                    "at_ms": r.try_get::<i64, _>(2)?, "received_ms": r.try_get::<i64, _>(3)?,
                    "note": r.try_get::<Option<String>, _>(4)?}))
            })
            .collect()
    }

    pub async fn audit(&self, limit: i64) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at_ms, who, role, action, target, remote, detail FROM audit ORDER BY at_ms DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    id: r.try_get(0)?,
                    at_ms: r.try_get(1)?,
                    who: r.try_get(2)?,
                    role: r.try_get(3)?,
                    action: r.try_get(4)?,
                    target: r.try_get(5)?,
                    remote: r.try_get(6)?,
                    detail: json(r.try_get(7)?),
                })
            })
            .collect()
    }

    /// The hub's signing key (kid, base64 secret), making and keeping `fresh` if there is none.
    /// Two hub processes starting at once agree on one key: the first insert wins.
    pub async fn signing_key(
        &self,
        fresh: (String, String, String),
        now_ms: i64,
    ) -> Result<(String, String), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, secret, public, created_ms) \
             SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM signing_keys)",
        )
        .bind(&fresh.0)
        .bind(&fresh.1)
        .bind(&fresh.2)
        .bind(now_ms)
        .execute(&self.writer)
        .await?;
        let row = sqlx::query("SELECT kid, secret FROM signing_keys ORDER BY created_ms, kid LIMIT 1")
            .fetch_one(&self.writer)
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// Every public key the hub has signed with (kid, base64).
    pub async fn public_keys(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT kid, public, created_ms FROM signing_keys ORDER BY created_ms, kid")
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))).collect()
    }
}

impl Tx {
    /// Imports records (insert or update by id), all in this transaction. A team that holds an
    /// order keeps its status and order; a stockpile's items are replaced.
    pub async fn import(&mut self, records: &Records, now_ms: i64) -> Result<(), StoreError> {
        match records {
            Records::Teams(teams) => {
                for t in teams {
                    sqlx::query(
                        "INSERT INTO teams (id, name, node, province, lat, lon, capabilities, size, status, order_id, updated_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10) \
                         ON CONFLICT (id) DO UPDATE SET name = excluded.name, node = excluded.node, \
                         province = excluded.province, lat = excluded.lat, lon = excluded.lon, \
                         capabilities = excluded.capabilities, size = excluded.size, updated_ms = excluded.updated_ms, \
                         status = CASE WHEN teams.status = 'assigned' THEN teams.status ELSE excluded.status END",
                    )
                    .bind(&t.id)
                    .bind(&t.name)
                    .bind(&t.node)
                    .bind(&t.province)
                    .bind(t.lat)
                    .bind(t.lon)
                    .bind(serde_json::to_string(&t.capabilities).unwrap_or_else(|_| "[]".into()))
                    .bind(i64::from(t.size))
                    .bind(&t.status)
                    .bind(now_ms)
                    .execute(&mut *self.tx)
                    .await?;
                }
            }
            Records::Stockpiles(stockpiles) => {
                for s in stockpiles {
                    sqlx::query(
                        "INSERT INTO stockpiles (id, name, province, lat, lon, updated_ms) VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (id) DO UPDATE SET name = excluded.name, province = excluded.province, \
                         lat = excluded.lat, lon = excluded.lon, updated_ms = excluded.updated_ms",
                    )
                    .bind(&s.id)
                    .bind(&s.name)
                    .bind(&s.province)
                    .bind(s.lat)
                    .bind(s.lon)
                    .bind(now_ms)
                    .execute(&mut *self.tx)
                    .await?;
                    sqlx::query("DELETE FROM stock WHERE stockpile = $1").bind(&s.id).execute(&mut *self.tx).await?;
                    for (item, qty) in &s.items {
                        sqlx::query("INSERT INTO stock (stockpile, item, qty) VALUES ($1, $2, $3)")
                            .bind(&s.id)
                            .bind(item)
                            .bind(i64::try_from(*qty).unwrap_or(i64::MAX))
                            .execute(&mut *self.tx)
                            .await?;
                    }
                }
            }
            Records::Hazards(hazards) => {
                for h in hazards {
                    sqlx::query(
                        "INSERT INTO hazards (id, name, kind, level, lat, lon, geometry, updated_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
                         kind = excluded.kind, level = excluded.level, lat = excluded.lat, lon = excluded.lon, \
                         geometry = excluded.geometry, updated_ms = excluded.updated_ms",
                    )
                    .bind(&h.id)
                    .bind(&h.name)
                    .bind(&h.kind)
                    .bind(&h.level)
                    .bind(h.lat)
                    .bind(h.lon)
                    .bind(h.geometry.to_string())
                    .bind(now_ms)
                    .execute(&mut *self.tx)
                    .await?;
                }
            }
            Records::Targets(targets) => {
                for t in targets {
                    sqlx::query(
                        "INSERT INTO targets (id, name, kind, lat, lon, people, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (id) DO UPDATE SET name = excluded.name, kind = excluded.kind, lat = excluded.lat, \
                         lon = excluded.lon, people = excluded.people, updated_ms = excluded.updated_ms",
                    )
                    .bind(&t.id)
                    .bind(&t.name)
                    .bind(&t.kind)
                    .bind(t.lat)
                    .bind(t.lon)
                    .bind(t.people)
                    .bind(now_ms)
                    .execute(&mut *self.tx)
                    .await?;
                }
            }
        }
        Ok(())
    }

    pub async fn teams(&mut self) -> Result<Vec<TeamRow>, StoreError> {
        let sql = format!("SELECT {TEAM_COLUMNS} FROM teams ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *self.tx).await?;
        rows.iter().map(team).collect()
    }

    pub async fn stockpiles(&mut self) -> Result<Vec<StockpileRow>, StoreError> {
        stockpiles(&mut *self.tx).await
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn insert_proposal(
        &mut self,
        id: &str,
        incident: &str,
        exercise: bool,
        assessment: Option<&str>,
        region: &str,
        destination: (f64, f64),
        body: &serde_json::Value,
        ack_within_s: i64,
        automatic: bool,
        escalated_from: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO proposals (id, incident, exercise, assessment, region, dest_lat, dest_lon, status, body, \
             ack_within_s, automatic, created_ms, escalated_from) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'proposed', $8, $9, $10, $11, $12)",
        )
        .bind(id)
        .bind(incident)
        .bind(i64::from(exercise))
        .bind(assessment.map(str::to_owned))
        .bind(region)
        .bind(destination.0)
        .bind(destination.1)
        .bind(body.to_string())
        .bind(ack_within_s)
        .bind(i64::from(automatic))
        .bind(now_ms)
        .bind(escalated_from.map(str::to_owned))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// The proposal, if it is still `proposed` (locked for this transaction on PostgreSQL).
    pub async fn open_proposal(&mut self, id: &str, postgres: bool) -> Result<Option<ProposalRow>, StoreError> {
        let lock = if postgres { " FOR UPDATE" } else { "" };
        let sql = format!("SELECT {PROPOSAL_COLUMNS} FROM proposals WHERE id = $1 AND status = 'proposed'{lock}");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut *self.tx).await?;
        row.as_ref().map(proposal).transpose()
    }

    /// Decides a proposal that is still `proposed`; false if someone decided it first.
    pub async fn decide_proposal(
        &mut self,
        id: &str,
        status: &str,
        who: &str,
        reason: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE proposals SET status = $1, decided_by = $2, reason = $3, decided_ms = $4 \
             WHERE id = $5 AND status = 'proposed'",
        )
        .bind(status)
        .bind(who)
        .bind(reason.map(str::to_owned))
        .bind(now_ms)
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn set_proposal_body(&mut self, id: &str, body: &serde_json::Value) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE proposals SET body = $1 WHERE id = $2 AND status = 'proposed'")
            .bind(body.to_string())
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes a team for an order if it is still available.
    pub async fn book_team(&mut self, team: &str, order: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE teams SET status = 'assigned', order_id = $1, updated_ms = $2 WHERE id = $3 AND status = 'available'",
        )
        .bind(order)
        .bind(now_ms)
        .bind(team)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Frees a team held by `order` (its order ended).
    pub async fn release_team(&mut self, team: &str, order: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE teams SET status = 'available', order_id = NULL, updated_ms = $1 WHERE id = $2 AND order_id = $3",
        )
        .bind(now_ms)
        .bind(team)
        .bind(order)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Takes `qty` of an item from a stockpile if that much is there.
    pub async fn take_stock(&mut self, stockpile: &str, item: &str, qty: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE stock SET qty = qty - $1 WHERE stockpile = $2 AND item = $3 AND qty >= $1")
            .bind(qty)
            .bind(stockpile)
            .bind(item)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn insert_order(
        &mut self,
        id: &str,
        proposal: &str,
        incident: &str,
        exercise: bool,
        team: &str,
        node: &str,
        capability: &str,
        issued_ms: i64,
        ack_within_s: i64,
        signed: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO orders (id, proposal, incident, exercise, team, node, capability, status, issued_ms, due_ms, \
             ack_within_s, status_ms, resent, signed) VALUES ($1, $2, $3, $4, $5, $6, $7, 'issued', $8, $9, $10, $8, 0, $11)",
        )
        .bind(id)
        .bind(proposal)
        .bind(incident)
        .bind(i64::from(exercise))
        .bind(team)
        .bind(node)
        .bind(capability)
        .bind(issued_ms)
        .bind(issued_ms + ack_within_s * 1000)
        .bind(ack_within_s)
        .bind(signed)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    pub async fn order(&mut self, id: &str) -> Result<Option<OrderRow>, StoreError> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut *self.tx).await?;
        row.as_ref().map(order).transpose()
    }

    /// Records one acknowledgement once (by its id). False if it was seen before.
    pub async fn insert_order_event(
        &mut self,
        order_id: &str,
        ack_id: &str,
        status: &str,
        at_ms: i64,
        note: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO order_events (order_id, ack_id, status, at_ms, received_ms, note) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (order_id, ack_id) DO NOTHING",
        )
        .bind(order_id)
        .bind(ack_id)
        .bind(status)
        .bind(at_ms)
        .bind(now_ms)
        .bind(note.map(str::to_owned))
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves an order to `status`; `due_ms` is the new deadline (or unchanged when `None`).
    pub async fn set_order_status(
        &mut self,
        id: &str,
        status: &str,
        due_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE orders SET status = $1, status_ms = $2, due_ms = COALESCE($3, due_ms) WHERE id = $4")
            .bind(status)
            .bind(now_ms)
            .bind(due_ms)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Marks an overdue order resent, with a new deadline; false if it is no longer waiting.
    pub async fn mark_resent(&mut self, id: &str, due_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE orders SET resent = resent + 1, due_ms = $1 WHERE id = $2 AND status IN ('issued', 'received') AND resent = 0",
        )
        .bind(due_ms)
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks a waiting order overdue; false if it is no longer waiting.
    pub async fn mark_overdue(&mut self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE orders SET status = 'overdue', status_ms = $1 WHERE id = $2 AND status IN ('issued', 'received')",
        )
        .bind(now_ms)
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Names the proposal that replaced an order.
    pub async fn set_escalated_to(&mut self, id: &str, proposal: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE orders SET escalated_to = $1 WHERE id = $2")
            .bind(proposal)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Teams that declined or missed an order of this incident: not proposed for it again.
    pub async fn excluded_teams(&mut self, incident: &str, exercise: bool) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT team FROM orders WHERE incident = $1 AND exercise = $2 AND status IN ('declined', 'overdue') ORDER BY team",
        )
        .bind(incident)
        .bind(i64::from(exercise))
        .fetch_all(&mut *self.tx)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Appends to the audit log.
    pub async fn audit(&mut self, a: &NewAudit<'_>, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit (id, at_ms, who, role, action, target, remote, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(now_ms)
        .bind(a.who)
        .bind(a.role)
        .bind(a.action)
        .bind(a.target)
        .bind(a.remote)
        .bind(a.detail.to_string())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}
