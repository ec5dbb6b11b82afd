//! Policy documents (MGMT-1): the policy set (基本方針, 個人情報保護方針, 規程 …), each document
//! versioned; a version is drafted by one person and approved by another (the CISO approves;
//! nobody approves their own draft); the approved version in force is reviewed at least once a
//! year, and a document whose last approval is older than a year is shown as overdue.

use chrono::Duration;
use mamori_ledger::Event;
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::error::{CoreError, Result};
use crate::policy::Action;
use crate::types::{Code, Role, Text};
use crate::Mamori;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDraft {
    pub code: Code,
    pub title: Text,
    /// The document's text (up to 100,000 characters).
    pub body: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DocumentRow {
    pub code: String,
    pub title: String,
    /// The version in force (the newest approved), if any.
    pub version: Option<i64>,
    pub approved_by: Option<String>,
    pub approved_at: Option<i64>,
    /// A newer draft waits for approval.
    pub draft: Option<i64>,
    /// Review due: a year after the last approval.
    pub review_due: Option<i64>,
    pub overdue: bool,
}

impl Mamori {
    /// Drafts a new version of a document (created on its first draft).
    pub async fn draft_document(&self, p: &Principal, d: NewDraft) -> Result<i64> {
        self.require(p, Action::RegistersWrite).await?;
        let body = d.body.trim();
        if body.is_empty() || body.chars().count() > 100_000 {
            return Err(CoreError::invalid("body", "1 to 100,000 characters"));
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let doc: Option<(i64,)> = sqlx::query_as("SELECT id FROM policy_documents WHERE code = $1").bind(d.code.as_str()).fetch_optional(&mut *tx).await?;
        let doc = match doc {
            Some((id,)) => {
                sqlx::query("UPDATE policy_documents SET title = $1 WHERE id = $2").bind(d.title.as_str()).bind(id).execute(&mut *tx).await?;
                id
            }
            None => {
                let (id,): (i64,) = sqlx::query_as("INSERT INTO policy_documents (code, title, created_at) VALUES ($1, $2, $3) RETURNING id")
                    .bind(d.code.as_str())
                    .bind(d.title.as_str())
                    .bind(now.timestamp_millis())
                    .fetch_one(&mut *tx)
                    .await?;
                id
            }
        };
        let (next,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(version), 0) + 1 FROM policy_versions WHERE document_id = $1").bind(doc).fetch_one(&mut *tx).await?;
        sqlx::query("INSERT INTO policy_versions (document_id, version, body, drafted_by, drafted_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(doc)
            .bind(next)
            .bind(body)
            .bind(p.user_id)
            .bind(now.timestamp_millis())
            .execute(&mut *tx)
            .await?;
        let ev = Event::new(now, p.actor(), "policy_doc.draft").object("policy_doc", d.code.as_str()).detail("version", next);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(next)
    }

    /// The CISO approves a drafted version (not their own draft); it comes into force.
    pub async fn approve_document(&self, p: &Principal, code: &str, version: i64) -> Result<()> {
        self.require(p, Action::RegistersWrite).await?;
        if !p.roles.contains(&Role::Ciso) {
            return Err(CoreError::Forbidden { rule: Some("ciso-approves-policy-documents".into()) });
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let row: Option<(i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT v.id, v.drafted_by, v.approved_by FROM policy_versions v JOIN policy_documents d ON d.id = v.document_id WHERE d.code = $1 AND v.version = $2",
        )
        .bind(code)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        let (vid, author, approved) = row.ok_or(CoreError::NotFound("policy document version"))?;
        if author == p.user_id {
            return Err(CoreError::Forbidden { rule: Some("nobody-approves-own-draft".into()) });
        }
        if approved.is_some() {
            return Err(CoreError::Conflict("this version is approved already".into()));
        }
        sqlx::query("UPDATE policy_versions SET approved_by = $1, approved_at = $2 WHERE id = $3").bind(p.user_id).bind(now.timestamp_millis()).bind(vid).execute(&mut *tx).await?;
        let ev = Event::new(now, p.actor(), "policy_doc.approve").object("policy_doc", code).detail("version", version);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The policy set with the version in force and the yearly review state.
    pub async fn list_documents(&self, p: &Principal) -> Result<Vec<DocumentRow>> {
        self.require(p, Action::RegistersRead).await?;
        let now = self.clock.now().timestamp_millis();
        let year = Duration::days(365).num_milliseconds();
        let docs: Vec<(i64, String, String)> = sqlx::query_as("SELECT id, code, title FROM policy_documents ORDER BY code").fetch_all(&self.db.pool).await?;
        let mut out = Vec::with_capacity(docs.len());
        for (id, code, title) in docs {
            let approved: Option<(i64, String, i64)> = sqlx::query_as(
                "SELECT v.version, u.login, v.approved_at FROM policy_versions v JOIN users u ON u.id = v.approved_by \
                 WHERE v.document_id = $1 AND v.approved_at IS NOT NULL ORDER BY v.version DESC LIMIT 1",
            )
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
            let draft: Option<(i64,)> =
                sqlx::query_as("SELECT MAX(version) FROM policy_versions WHERE document_id = $1 AND approved_at IS NULL HAVING COUNT(*) > 0")
                    .bind(id)
                    .fetch_optional(&self.db.pool)
                    .await?;
            let due = approved.as_ref().map(|(_, _, at)| at + year);
            out.push(DocumentRow {
                code,
                title,
                version: approved.as_ref().map(|a| a.0),
                approved_by: approved.as_ref().map(|a| a.1.clone()),
                approved_at: approved.as_ref().map(|a| a.2),
                draft: draft.map(|d| d.0),
                review_due: due,
                overdue: due.is_none_or(|d| d < now),
            })
        }
        Ok(out)
    }
}
