//! Audits (MGMT-7): the audit programme (internal audits across departments, unit-level
//! checks, yearly on-site monitoring, personal-information audit and follow-up audit), their
//! findings — nonconformities with corrective actions, owners and due dates, closed only by
//! someone other than the owner recording it — and management review records.

use mamori_ledger::Event;
use serde::{Deserialize, Serialize};

use super::evidence::jst_date;
use super::{long_text, one_of};
use crate::auth::Principal;
use crate::error::{CoreError, Result};
use crate::policy::Action;
use crate::types::{Date, Text};
use crate::Mamori;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAudit {
    /// `internal`, `unit`, `onsite`, `personal_info` or `follow_up`.
    pub kind: String,
    pub title: Text,
    /// Departments or units audited.
    pub scope: Text,
    pub planned_on: Date,
    pub auditor: Text,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditDone {
    pub done_on: Date,
    pub summary: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewFinding {
    /// `nonconformity` or `observation`.
    pub kind: String,
    pub text: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub due: Option<Date>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewReview {
    pub held_on: Date,
    pub attendees: Text,
    pub inputs: String,
    pub decisions: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FindingRow {
    pub id: i64,
    pub kind: String,
    pub text: String,
    pub action: String,
    pub owner: String,
    pub due: Option<String>,
    pub closed_at: Option<i64>,
    pub overdue: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub kind: String,
    pub title: String,
    pub scope: String,
    pub planned_on: String,
    pub done_on: Option<String>,
    pub auditor: String,
    pub summary: String,
    pub findings: Vec<FindingRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReviewRecord {
    pub id: i64,
    pub held_on: String,
    pub attendees: String,
    pub inputs: String,
    pub decisions: String,
}

impl Mamori {
    pub async fn plan_audit(&self, p: &Principal, a: NewAudit) -> Result<i64> {
        self.require(p, Action::RegistersWrite).await?;
        let kind = one_of("kind", &a.kind, &["internal", "unit", "onsite", "personal_info", "follow_up"])?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO audits (kind, title, scope, planned_on, auditor, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(kind)
        .bind(a.title.as_str())
        .bind(a.scope.as_str())
        .bind(a.planned_on.to_string())
        .bind(a.auditor.as_str())
        .bind(p.user_id)
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await?;
        let ev = Event::new(now, p.actor(), "audit.plan").object("audit", id).detail("kind", kind);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn complete_audit(&self, p: &Principal, id: i64, d: AuditDone) -> Result<()> {
        self.require(p, Action::RegistersWrite).await?;
        let summary = long_text("summary", &d.summary, 5000)?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let n = sqlx::query("UPDATE audits SET done_on = $1, summary = $2 WHERE id = $3 AND done_on IS NULL")
            .bind(d.done_on.to_string())
            .bind(&summary)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(CoreError::NotFound("planned audit"));
        }
        let ev = Event::new(now, p.actor(), "audit.done").object("audit", id);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn add_finding(&self, p: &Principal, audit: i64, f: NewFinding) -> Result<i64> {
        self.require(p, Action::RegistersWrite).await?;
        let kind = one_of("kind", &f.kind, &["nonconformity", "observation"])?;
        let text = long_text("text", &f.text, 2000)?;
        if text.is_empty() {
            return Err(CoreError::invalid("text", "describe the finding"));
        }
        let action = long_text("action", &f.action, 2000)?;
        let owner = long_text("owner", &f.owner, 200)?;
        if kind == "nonconformity" && (action.is_empty() || owner.is_empty() || f.due.is_none()) {
            return Err(CoreError::invalid("action", "a nonconformity needs a corrective action, its owner and a due date"));
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let exists: Option<(i64,)> = sqlx::query_as("SELECT id FROM audits WHERE id = $1").bind(audit).fetch_optional(&mut *tx).await?;
        exists.ok_or(CoreError::NotFound("audit"))?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO findings (audit_id, kind, text, action, owner, due, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(audit)
        .bind(kind)
        .bind(&text)
        .bind(&action)
        .bind(&owner)
        .bind(f.due.map(|d| d.to_string()))
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await?;
        let ev = Event::new(now, p.actor(), "audit.finding").object("finding", id).detail("audit", audit).detail("kind", kind);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Closes a finding after the follow-up confirmed the corrective action.
    pub async fn close_finding(&self, p: &Principal, id: i64) -> Result<()> {
        self.require(p, Action::RegistersWrite).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let n = sqlx::query("UPDATE findings SET closed_at = $1, closed_by = $2 WHERE id = $3 AND closed_at IS NULL")
            .bind(now.timestamp_millis())
            .bind(p.user_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(CoreError::NotFound("open finding"));
        }
        let ev = Event::new(now, p.actor(), "audit.finding_closed").object("finding", id);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_audits(&self, p: &Principal) -> Result<Vec<AuditRow>> {
        self.require(p, Action::RegistersRead).await?;
        let today = jst_date(self.clock.now());
        let audits: Vec<(i64, String, String, String, String, Option<String>, String, String)> =
            sqlx::query_as("SELECT id, kind, title, scope, planned_on, done_on, auditor, summary FROM audits ORDER BY planned_on DESC, id DESC").fetch_all(&self.db.pool).await?;
        let mut out = Vec::with_capacity(audits.len());
        for (id, kind, title, scope, planned_on, done_on, auditor, summary) in audits {
            let fs: Vec<(i64, String, String, String, String, Option<String>, Option<i64>)> =
                sqlx::query_as("SELECT id, kind, text, action, owner, due, closed_at FROM findings WHERE audit_id = $1 ORDER BY id").bind(id).fetch_all(&self.db.pool).await?;
            let findings = fs
                .into_iter()
                .map(|(id, kind, text, action, owner, due, closed_at)| FindingRow {
                    overdue: closed_at.is_none() && due.as_ref().is_some_and(|d| *d < today),
                    id,
                    kind,
                    text,
                    action,
                    owner,
                    due,
                    closed_at,
                })
                .collect();
            out.push(AuditRow { id, kind, title, scope, planned_on, done_on, auditor, summary, findings });
        }
        Ok(out)
    }

    pub async fn add_management_review(&self, p: &Principal, r: NewReview) -> Result<i64> {
        self.require(p, Action::RegistersWrite).await?;
        let inputs = long_text("inputs", &r.inputs, 10_000)?;
        let decisions = long_text("decisions", &r.decisions, 10_000)?;
        if inputs.is_empty() || decisions.is_empty() {
            return Err(CoreError::invalid("decisions", "record the inputs and the decisions"));
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO management_reviews (held_on, attendees, inputs, decisions, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(r.held_on.to_string())
        .bind(r.attendees.as_str())
        .bind(&inputs)
        .bind(&decisions)
        .bind(p.user_id)
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await?;
        let ev = Event::new(now, p.actor(), "management_review.record").object("management_review", id);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn list_management_reviews(&self, p: &Principal) -> Result<Vec<ReviewRecord>> {
        self.require(p, Action::RegistersRead).await?;
        let rows: Vec<(i64, String, String, String, String)> =
            sqlx::query_as("SELECT id, held_on, attendees, inputs, decisions FROM management_reviews ORDER BY held_on DESC").fetch_all(&self.db.pool).await?;
        Ok(rows.into_iter().map(|(id, held_on, attendees, inputs, decisions)| ReviewRecord { id, held_on, attendees, inputs, decisions }).collect())
    }
}
