//! Permissioned ledger operations for people (search, verify, export) and the periodic review
//! of entry and data-access logs (定期的に確認, PHY-3, AUDIT-2): a manager signs off a time range,
//! and the sign-off is itself a ledger event.

use chrono::{DateTime, Utc};
use mamori_ledger::{Bundle, Event};
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::error::{CoreError, Result};
use crate::ledger::{VerifyReport, CENTRE_LOG};
use crate::policy::Action;
use crate::Mamori;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewKind {
    /// Door and entry logs (入退室記録).
    Entry,
    /// Customer-data access logs (アクセスログ).
    Data,
    /// Sign-ins and administration.
    Admin,
}

impl ReviewKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewKind::Entry => "entry",
            ReviewKind::Data => "data",
            ReviewKind::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "entry" => Ok(Self::Entry),
            "data" => Ok(Self::Data),
            "admin" => Ok(Self::Admin),
            _ => Err(CoreError::invalid("kind", "must be entry, data or admin")),
        }
    }
    /// The action prefixes a review of this kind covers.
    fn actions(self) -> &'static [&'static str] {
        match self {
            ReviewKind::Entry => &["door.", "visit.", "alarm.", "cabinet.", "reader.", "muster.", "credential."],
            ReviewKind::Data => &["data.", "grant."],
            ReviewKind::Admin => &["session.", "user.", "token.", "person.", "zone.", "site.", "department.", "client.", "business.", "people.", "backup."],
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReviewRow {
    pub id: i64,
    pub kind: String,
    pub from: String,
    pub to: String,
    pub reviewer: String,
    pub comment: String,
    pub events_seen: i64,
    pub at: String,
}

/// Parses `YYYY-MM-DD` (start of that day in Japan) or RFC 3339.
pub fn ledger_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    let jst = chrono::FixedOffset::east_opt(9 * 3600)?;
    d.and_hms_opt(0, 0, 0)?.and_local_timezone(jst).single().map(|t| t.with_timezone(&Utc))
}

impl Mamori {
    /// The log id of a client (or the centre's log for None).
    pub async fn log_id(&self, client: Option<&str>) -> Result<i64> {
        let Some(code) = client.filter(|c| !c.is_empty()) else { return Ok(CENTRE_LOG) };
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT l.id FROM ledger_logs l JOIN clients c ON c.id = l.client_id WHERE c.code = $1")
                .bind(code)
                .fetch_optional(&self.db.pool)
                .await?;
        row.map(|r| r.0).ok_or(CoreError::NotFound("client"))
    }

    /// Verifies the whole ledger and records the verification (its result too).
    pub async fn verify_ledger(&self, p: &Principal) -> Result<VerifyReport> {
        self.require(p, Action::LedgerVerify).await?;
        self.ledger.checkpoint_all().await?;
        let report = self.ledger.verify_all(|_, _| {}).await?;
        let entries: u64 = report.logs.iter().map(|l| l.entries).sum();
        let mut ev = Event::new(self.clock.now(), p.actor(), "ledger.verify").detail("entries", entries).detail("logs", report.logs.len());
        if let Some(e) = &report.error {
            ev = ev.denied(Some("verification-failed")).detail("error", e);
        }
        self.ledger.append(ev).await?;
        Ok(report)
    }

    /// Exports a client's bundle; the export itself is recorded in that client's log.
    pub async fn export_client(&self, p: &Principal, client: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Bundle> {
        self.require(p, Action::LedgerExport).await?;
        self.require_recent_auth(p)?;
        if to <= from {
            return Err(CoreError::invalid("to", "must be after from"));
        }
        self.log_id(Some(client)).await?;
        let ev = Event::new(self.clock.now(), p.actor(), "ledger.export")
            .object("client", client)
            .client(client)
            .detail("from", mamori_ledger::event::timestamps(from).0)
            .detail("to", mamori_ledger::event::timestamps(to).0);
        self.ledger.append(ev).await?;
        self.ledger.export_client(client, from, to).await
    }

    /// Signs off the review of a range of logs.
    pub async fn sign_off_review(
        &self,
        p: &Principal,
        kind: ReviewKind,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        comment: &str,
    ) -> Result<ReviewRow> {
        self.require(p, Action::LedgerReview).await?;
        if to <= from {
            return Err(CoreError::invalid("to", "must be after from"));
        }
        if to > self.clock.now() {
            return Err(CoreError::invalid("to", "cannot review a period that has not ended"));
        }
        let comment = comment.trim();
        if comment.chars().count() > 2000 || comment.chars().any(|c| c.is_control() && c != '\n' && c != '\r') {
            return Err(CoreError::invalid("comment", "must be at most 2000 characters of text"));
        }
        let (start, end) = self.ledger.centre_period(from.timestamp_millis(), to.timestamp_millis()).await?;
        let mut seen = 0i64;
        for prefix in kind.actions() {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM ledger_entries WHERE log_id = $1 AND idx >= $2 AND idx < $3 AND action LIKE $4",
            )
            .bind(CENTRE_LOG)
            .bind(start)
            .bind(end)
            .bind(format!("{prefix}%"))
            .fetch_one(&self.db.pool)
            .await?;
            seen += n;
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO ledger_reviews (kind, range_from, range_to, reviewer_id, comment, events_seen, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(kind.as_str())
        .bind(from.timestamp_millis())
        .bind(to.timestamp_millis())
        .bind(p.user_id)
        .bind(comment)
        .bind(seen)
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await?;
        let ev = Event::new(now, p.actor(), "ledger.review")
            .object("review", id)
            .detail("kind", kind.as_str())
            .detail("from", mamori_ledger::event::timestamps(from).0)
            .detail("to", mamori_ledger::event::timestamps(to).0)
            .detail("events_seen", seen);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(ReviewRow {
            id,
            kind: kind.as_str().into(),
            from: mamori_ledger::event::timestamps(from).1,
            to: mamori_ledger::event::timestamps(to).1,
            reviewer: p.display_name.clone(),
            comment: comment.into(),
            events_seen: seen,
            at: mamori_ledger::event::timestamps(now).1,
        })
    }

    pub async fn list_reviews(&self, p: &Principal) -> Result<Vec<ReviewRow>> {
        self.require(p, Action::LedgerRead).await?;
        let rows: Vec<(i64, String, i64, i64, String, String, i64, i64)> = sqlx::query_as(
            "SELECT r.id, r.kind, r.range_from, r.range_to, u.display_name, r.comment, r.events_seen, r.created_at \
             FROM ledger_reviews r JOIN users u ON u.id = r.reviewer_id ORDER BY r.id DESC LIMIT 500",
        )
        .fetch_all(&self.db.pool)
        .await?;
        let t = |ms: i64| DateTime::from_timestamp_millis(ms).map(|d| mamori_ledger::event::timestamps(d).1).unwrap_or_default();
        Ok(rows
            .into_iter()
            .map(|(id, kind, f, to, reviewer, comment, seen, at)| ReviewRow {
                id,
                kind,
                from: t(f),
                to: t(to),
                reviewer,
                comment,
                events_seen: seen,
                at: t(at),
            })
            .collect())
    }
}
