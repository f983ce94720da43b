//! Storage of the console: users, sessions, failed logins and drill results.
//!
//! Secrets are never stored: a user's password as an argon2id hash, a session by the SHA-256 of
//! its cookie. A session's role is read from `users` with every request (a join), so removing
//! a user or changing a role takes effect at once.

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreError, json};

/// A console user as listed (never with the hash).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UserRow {
    pub name: String,
    pub role: String,
    pub created_ms: i64,
}

/// A live session: who, with which role, and the token its forms and API calls must carry.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub username: String,
    pub role: String,
    pub csrf: String,
    pub expires_ms: i64,
}

/// A drill result as the simulator sends it.
#[derive(Debug, Clone)]
pub struct NewDrill {
    pub id: String,
    pub scenario: String,
    pub seed: u64,
    pub started_ms: i64,
    pub finished_ms: i64,
    pub passed: bool,
    pub summary: serde_json::Value,
    pub html: String,
}

/// A stored drill result, without its HTML report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DrillRow {
    pub id: String,
    pub scenario: String,
    /// Decimal text: a u64 does not fit every database's integers.
    pub seed: String,
    pub started_ms: i64,
    pub finished_ms: i64,
    pub passed: bool,
    pub summary: serde_json::Value,
    pub received_ms: i64,
}

const DRILL_COLUMNS: &str = "id, scenario, seed, started_ms, finished_ms, passed, summary, received_ms";

impl DrillRow {
    fn from_row(r: &sqlx::any::AnyRow) -> Result<DrillRow, StoreError> {
        Ok(DrillRow {
            id: r.try_get(0)?,
            scenario: r.try_get(1)?,
            seed: r.try_get(2)?,
            started_ms: r.try_get(3)?,
            finished_ms: r.try_get(4)?,
            passed: r.try_get::<i64, _>(5)? != 0,
            summary: json(r.try_get(6)?),
            received_ms: r.try_get(7)?,
        })
    }
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub exercise: Option<bool>,
    pub node: Option<String>,
    pub kind: Option<String>,
    pub limit: i64,
}

/// How far an incident's reports are: closed when every region's report that counts is final.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IncidentProgress {
    pub incident: String,
    pub exercise: bool,
    pub regions: i64,
    pub final_regions: i64,
}

impl Store {
    /// Adds a user; `false` if the name is taken (nothing changes then).
    pub async fn add_user(&self, name: &str, role: &str, hash: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO users (name, role, hash, created_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(role)
        .bind(hash)
        .bind(now_ms)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let rows =
            sqlx::query("SELECT name, role, created_ms FROM users ORDER BY name").fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| Ok(UserRow { name: r.try_get(0)?, role: r.try_get(1)?, created_ms: r.try_get(2)? }))
            .collect()
    }

    /// A user's role and password hash.
    pub async fn user_credentials(&self, name: &str) -> Result<Option<(String, String)>, StoreError> {
        let row =
            sqlx::query("SELECT role, hash FROM users WHERE name = $1").bind(name).fetch_optional(&self.reader).await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// Removes a user and ends their sessions; `false` if there was no such user.
    pub async fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE username = $1").bind(name).execute(&mut *tx.tx).await?;
        let done = sqlx::query("DELETE FROM users WHERE name = $1").bind(name).execute(&mut *tx.tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn create_session(
        &self,
        id_hash: &str,
        username: &str,
        csrf: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, username, csrf, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash)
        .bind(username)
        .bind(csrf)
        .bind(now_ms)
        .bind(expires_ms)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The session whose cookie hashes to `id_hash`, if it has not expired and its user exists.
    pub async fn session(&self, id_hash: &str, now_ms: i64) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(
            "SELECT s.username, u.role, s.csrf, s.expires_ms FROM sessions s JOIN users u ON u.name = s.username \
             WHERE s.id_hash = $1 AND s.expires_ms > $2",
        )
        .bind(id_hash)
        .bind(now_ms)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| {
            Ok(SessionRow {
                username: r.try_get(0)?,
                role: r.try_get(1)?,
                csrf: r.try_get(2)?,
                expires_ms: r.try_get(3)?,
            })
        })
        .transpose()
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1").bind(id_hash).execute(&self.writer).await?;
        Ok(())
    }

    /// Forgets expired sessions; returns how many.
    pub async fn purge_sessions(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM sessions WHERE expires_ms <= $1").bind(now_ms).execute(&self.writer).await?;
        Ok(done.rows_affected())
    }

    /// The most failed logins recorded for any of `subjects` since `since_ms`.
    pub async fn login_failures(&self, subjects: &[String], since_ms: i64) -> Result<i64, StoreError> {
        let mut most = 0;
        for s in subjects {
            let n: Option<i64> =
                sqlx::query_scalar("SELECT failures FROM login_failures WHERE subject = $1 AND last_ms > $2")
                    .bind(s)
                    .bind(since_ms)
                    .fetch_optional(&self.reader)
                    .await?;
            most = most.max(n.unwrap_or(0));
        }
        Ok(most)
    }

    /// Counts a failed login for each subject; a count older than `since_ms` starts again.
    pub async fn record_login_failure(
        &self,
        subjects: &[String],
        now_ms: i64,
        since_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        for s in subjects {
            sqlx::query(
                "INSERT INTO login_failures (subject, failures, last_ms) VALUES ($1, 1, $2) \
                 ON CONFLICT (subject) DO UPDATE SET last_ms = excluded.last_ms, failures = CASE \
                 WHEN login_failures.last_ms > $3 THEN login_failures.failures + 1 ELSE 1 END",
            )
            .bind(s)
            .bind(now_ms)
            .bind(since_ms)
            .execute(&mut *tx.tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn clear_login_failures(&self, subjects: &[String]) -> Result<(), StoreError> {
        for s in subjects {
            sqlx::query("DELETE FROM login_failures WHERE subject = $1").bind(s).execute(&self.writer).await?;
        }
        Ok(())
    }

    /// Stores a drill result with its audit entry; `false` (and nothing written) if the id is
    /// known.
    pub async fn insert_drill(
        &self,
        d: &NewDrill,
        audit: &super::NewAudit<'_>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "INSERT INTO drills (id, scenario, seed, started_ms, finished_ms, passed, summary, html, received_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&d.id)
        .bind(&d.scenario)
        .bind(d.seed.to_string())
        .bind(d.started_ms)
        .bind(d.finished_ms)
        .bind(i64::from(d.passed))
        .bind(d.summary.to_string())
        .bind(&d.html)
        .bind(now_ms)
        .execute(&mut *tx.tx)
        .await?;
        let new = done.rows_affected() == 1;
        if new {
            tx.audit(audit, now_ms).await?;
        }
        tx.commit().await?;
        Ok(new)
    }

    /// Drill results, latest first.
    pub async fn drills(&self, limit: i64) -> Result<Vec<DrillRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DRILL_COLUMNS} FROM drills ORDER BY started_ms DESC, id DESC LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(DrillRow::from_row).collect()
    }

    pub async fn drill(&self, id: &str) -> Result<Option<DrillRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {DRILL_COLUMNS} FROM drills WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(DrillRow::from_row).transpose()
    }

    pub async fn drill_html(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT html FROM drills WHERE id = $1").bind(id).fetch_optional(&self.reader).await?)
    }

    /// Appends one entry to the audit log in a transaction of its own.
    pub async fn audit_one(&self, audit: &super::NewAudit<'_>, now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        tx.audit(audit, now_ms).await?;
        tx.commit().await
    }

    /// Events, newest first, optionally of one exercise flag, node and kind.
    pub async fn events_filtered(&self, f: &EventFilter) -> Result<Vec<super::EventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, node, kind, at_ms, exercise, region, incident, body, received_ms FROM events \
             WHERE ($1 IS NULL OR exercise = $1) AND ($2 IS NULL OR node = $2) AND ($3 IS NULL OR kind = $3) \
             ORDER BY received_ms DESC, id DESC LIMIT $4",
        )
        .bind(f.exercise.map(i64::from))
        .bind(f.node.clone())
        .bind(f.kind.clone())
        .bind(f.limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(super::EventRow::from_row).collect()
    }

    /// Per incident, how many regions have a report that counts and how many of those are final.
    pub async fn incident_progress(&self) -> Result<Vec<IncidentProgress>, StoreError> {
        let rows = sqlx::query(
            "SELECT incident, exercise, CAST(COUNT(*) AS BIGINT), \
             CAST(SUM(CASE WHEN stage = 'final' THEN 1 ELSE 0 END) AS BIGINT) \
             FROM report_latest GROUP BY incident, exercise ORDER BY incident, exercise",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(IncidentProgress {
                    incident: r.try_get(0)?,
                    exercise: r.try_get::<i64, _>(1)? != 0,
                    regions: r.try_get(2)?,
                    final_regions: r.try_get::<Option<i64>, _>(3)?.unwrap_or(0),
                })
            })
            .collect()
    }

    /// The levels in force: (subject, exercise, level, division of the assessment that set it).
    pub async fn levels_in_force(&self, exercise: bool) -> Result<Vec<(String, u8, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT l.subject, l.level, a.division FROM levels l JOIN assessments a ON a.id = l.assessment \
             WHERE l.exercise = $1 AND l.level IS NOT NULL ORDER BY l.subject",
        )
        .bind(i64::from(exercise))
        .fetch_all(&self.reader)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let level: Option<i64> = r.try_get(1)?;
            if let Some(level) = level.and_then(|l| u8::try_from(l).ok()) {
                out.push((r.try_get(0)?, level, r.try_get(2)?));
            }
        }
        Ok(out)
    }
}
