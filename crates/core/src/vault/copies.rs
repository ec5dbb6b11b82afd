//! Copies of customer data (DATA-5, LIFE-4). Copying, duplicating, downloading or printing
//! customer data is never a free action of the console: it is a request with a purpose and an
//! expiry, approved beforehand by the information manager (情報管理責任者; nobody approves their
//! own), used once by its requester within the policy's permissions (the operation itself —
//! `download`, `print`, `copy`, `duplicate` — must be held or granted), and closed by a
//! destruction record: by the person who destroyed it, or, once it has expired, recorded as
//! destroyed at expiry by the system so that no copy stays open in the register.

use std::collections::BTreeMap;

use chrono::Duration;
use mamori_ledger::Event;
use serde::{Deserialize, Serialize};

use crate::auth::{system_actor, Principal};
use crate::error::{CoreError, Result};
use crate::policy::Action;
use crate::types::{Op, Sensitivity, Text};
use crate::Mamori;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCopy {
    /// `copy`, `duplicate`, `download` or `print`.
    pub op: Op,
    pub purpose: Text,
    /// How long the copy may exist, in hours (1 to 720); destroyed by then.
    pub hours: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CopyRow {
    pub id: i64,
    pub business: String,
    pub login: String,
    pub op: String,
    pub purpose: String,
    pub requested_at: i64,
    pub expires_at: i64,
    pub approved_by: Option<String>,
    pub used_at: Option<i64>,
    pub destroyed_at: Option<i64>,
    pub destruction: Option<String>,
    /// waiting, approved, used, destroyed
    pub state: String,
}

/// Records in the clear for an approved download or print.
#[derive(Debug, Clone, Serialize)]
pub struct CopyContent {
    pub id: i64,
    pub fields: Vec<(String, String)>,
    pub rows: Vec<(String, BTreeMap<String, String>)>,
    /// Printed on every page and line: who, which approval, until when.
    pub watermark: String,
}

const COPY_OPS: [Op; 4] = [Op::Copy, Op::Duplicate, Op::Download, Op::Print];

type CopyDb = (i64, String, String, String, String, i64, i64, Option<String>, Option<i64>, Option<i64>, Option<String>);

impl Mamori {
    /// A request to copy, duplicate, download or print a business's data.
    pub async fn request_copy(&self, p: &Principal, business: &str, c: NewCopy) -> Result<i64> {
        self.require(p, Action::VaultUse).await?;
        if !COPY_OPS.contains(&c.op) {
            return Err(CoreError::invalid("op", "copy, duplicate, download or print"));
        }
        if !(1..=720).contains(&c.hours) {
            return Err(CoreError::invalid("hours", "1 to 720 hours"));
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let b = self.business(&mut tx, business).await?;
        let expires = now + Duration::hours(c.hours);
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO vault_copies (business_id, user_id, op, purpose, requested_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(b.id)
        .bind(p.user_id)
        .bind(c.op.as_str())
        .bind(c.purpose.as_str())
        .bind(now.timestamp_millis())
        .bind(expires.timestamp_millis())
        .fetch_one(&mut *tx)
        .await?;
        let ev = Event::new(now, p.actor(), "data.copy_request")
            .object("copy", id)
            .client(&b.client)
            .purpose(c.purpose.as_str())
            .detail("business", &b.code)
            .detail("op", c.op.as_str())
            .detail("until", expires.to_rfc3339());
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn copy_client(&self, conn: &mut sqlx::AnyConnection, id: i64) -> Result<(i64, String, String, i64, String, i64, Option<i64>, Option<i64>, Option<i64>)> {
        let row: Option<(i64, String, String, i64, String, i64, Option<i64>, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT b.id, b.code, c.code, v.user_id, v.op, v.expires_at, v.approved_by, v.used_at, v.destroyed_at FROM vault_copies v \
             JOIN businesses b ON b.id = v.business_id JOIN clients c ON c.id = b.client_id WHERE v.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        row.ok_or(CoreError::NotFound("copy request"))
    }

    /// The information manager's prior approval (never of their own request).
    pub async fn approve_copy(&self, p: &Principal, id: i64) -> Result<()> {
        self.require(p, Action::VaultCopies).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let (_, _, client, requester, _, expires, approved, _, destroyed) = self.copy_client(&mut tx, id).await?;
        if requester == p.user_id {
            return Err(CoreError::Forbidden { rule: Some("nobody-approves-own-copy".into()) });
        }
        if approved.is_some() || destroyed.is_some() || expires <= now.timestamp_millis() {
            return Err(CoreError::Conflict("this request is no longer waiting for approval".into()));
        }
        sqlx::query("UPDATE vault_copies SET approved_by = $1, approved_at = $2 WHERE id = $3")
            .bind(p.user_id)
            .bind(now.timestamp_millis())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let ev = Event::new(now, p.actor(), "data.copy_approve").object("copy", id).client(&client);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Uses an approved download or print once: the records in the clear with a watermark. The
    /// use is recorded in the same transaction that marks the approval used.
    pub async fn use_copy(&self, p: &Principal, id: i64, expect: Op) -> Result<CopyContent> {
        self.require(p, Action::VaultUse).await?;
        self.require_recent_auth(p)?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let (bid, bcode, client, requester, op, expires, approved, used, destroyed) = self.copy_client(&mut tx, id).await?;
        let op: Op = op.parse()?;
        if requester != p.user_id {
            return Err(CoreError::Forbidden { rule: Some("copy-is-for-its-requester".into()) });
        }
        if !matches!(op, Op::Download | Op::Print) {
            return Err(CoreError::invalid("op", "only downloads and prints are produced by mamori; record a copy's destruction when done"));
        }
        if op != expect {
            return Err(CoreError::invalid("op", format!("this approval is for {}", op.as_str())));
        }
        if approved.is_none() {
            return Err(CoreError::Forbidden { rule: Some("copy-needs-prior-approval".into()) });
        }
        if used.is_some() || destroyed.is_some() || expires <= now.timestamp_millis() {
            return Err(CoreError::Conflict("this approval was used already or has expired".into()));
        }
        let b = self.business(&mut tx, &bcode).await?;
        let fields = self.fields_of(&mut tx, bid).await?;
        let has_mn = fields.iter().any(|f| f.sensitivity == Sensitivity::MyNumber);
        let (ok, rule) = self.decide_op(Some(&mut *tx), p, &b, op, has_mn, now).await?;
        if !ok {
            drop(tx);
            return Err(self.denied(p, &b, op, rule, None).await);
        }
        let rows = self.open_all_records(&mut tx, &b, 10_000).await?;
        sqlx::query("UPDATE vault_copies SET used_at = $1 WHERE id = $2").bind(now.timestamp_millis()).bind(id).execute(&mut *tx).await?;
        let (_, jst) = mamori_ledger::event::timestamps(chrono::DateTime::from_timestamp_millis(expires).unwrap_or(now));
        let watermark = format!("{} / {} #{id} / 期限 {jst}", p.login, op.as_str());
        let ev = Event::new(now, p.actor(), &format!("data.{}", op.as_str()))
            .object("copy", id)
            .client(&client)
            .rule(&rule)
            .detail("business", &bcode)
            .detail("records", rows.len())
            .addr(p.addr.clone());
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(CopyContent { id, fields: fields.into_iter().map(|f| (f.name, f.label)).collect(), rows, watermark })
    }

    /// Records that a copy was destroyed (by its requester or the information manager).
    pub async fn destroy_copy(&self, p: &Principal, id: i64, method: &str) -> Result<()> {
        self.require(p, Action::VaultUse).await?;
        let method = Text::parse("method", method)?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let (_, _, client, requester, _, _, _, _, destroyed) = self.copy_client(&mut tx, id).await?;
        if requester != p.user_id && self.require(p, Action::VaultCopies).await.is_err() {
            return Err(CoreError::Forbidden { rule: Some("copy-is-for-its-requester".into()) });
        }
        if destroyed.is_some() {
            return Err(CoreError::Conflict("its destruction is recorded already".into()));
        }
        sqlx::query("UPDATE vault_copies SET destroyed_at = $1, destroyed_by = $2, destruction = $3 WHERE id = $4")
            .bind(now.timestamp_millis())
            .bind(p.user_id)
            .bind(method.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let ev = Event::new(now, p.actor(), "data.copy_destroyed").object("copy", id).client(&client).detail("method", method.as_str());
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Closes every copy past its expiry as destroyed at expiry (LIFE-4). Run by the job loop;
    /// returns how many were closed.
    pub async fn expire_copies(&self) -> Result<usize> {
        let now = self.clock.now();
        let due: Vec<(i64, String)> = sqlx::query_as(
            "SELECT v.id, c.code FROM vault_copies v JOIN businesses b ON b.id = v.business_id JOIN clients c ON c.id = b.client_id \
             WHERE v.destroyed_at IS NULL AND v.expires_at <= $1",
        )
        .bind(now.timestamp_millis())
        .fetch_all(&self.db.pool)
        .await?;
        for (id, client) in &due {
            let mut tx = self.db.begin().await?;
            let n = sqlx::query("UPDATE vault_copies SET destroyed_at = expires_at, destruction = $1 WHERE id = $2 AND destroyed_at IS NULL")
                .bind("期限到来により廃棄扱い (expired)")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 1 {
                let ev = Event::new(now, system_actor("copy-expiry"), "data.copy_expired").object("copy", *id).client(client);
                self.ledger.append_tx(&mut tx, &ev).await?;
            }
            tx.commit().await?;
        }
        Ok(due.len())
    }

    /// The copy register of a business: everyone's for the information manager, one's own for others.
    pub async fn list_copies(&self, p: &Principal, business: &str) -> Result<Vec<CopyRow>> {
        self.require(p, Action::VaultUse).await?;
        let all = self.require(p, Action::VaultCopies).await.is_ok();
        let now = self.clock.now().timestamp_millis();
        let rows: Vec<CopyDb> = sqlx::query_as(
            "SELECT v.id, b.code, u.login, v.op, v.purpose, v.requested_at, v.expires_at, a.login, v.used_at, v.destroyed_at, v.destruction \
             FROM vault_copies v JOIN businesses b ON b.id = v.business_id JOIN users u ON u.id = v.user_id LEFT JOIN users a ON a.id = v.approved_by \
             WHERE b.code = $1 AND ($2 = 1 OR v.user_id = $3) ORDER BY v.id DESC LIMIT 500",
        )
        .bind(business)
        .bind(i64::from(all))
        .bind(p.user_id)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, business, login, op, purpose, requested_at, expires_at, approved_by, used_at, destroyed_at, destruction)| {
                let state = if destroyed_at.is_some() {
                    "destroyed"
                } else if used_at.is_some() {
                    "used"
                } else if approved_by.is_some() && expires_at > now {
                    "approved"
                } else if expires_at <= now {
                    "expired"
                } else {
                    "waiting"
                };
                CopyRow { id, business, login, op, purpose, requested_at, expires_at, approved_by, used_at, destroyed_at, destruction, state: state.into() }
            })
            .collect())
    }
}

/// A download as CSV (UTF-8 with BOM, for Excel), its watermark as the first line.
pub fn copy_csv(c: &CopyContent) -> Result<Vec<u8>> {
    let watermark = vec![format!("# {}", c.watermark)];
    let header = std::iter::once("ID".to_owned()).chain(c.fields.iter().map(|(_, l)| l.clone())).collect::<Vec<_>>();
    let rows = c.rows.iter().map(|(uid, values)| std::iter::once(uid.clone()).chain(c.fields.iter().map(|(n, _)| values.get(n).cloned().unwrap_or_default())).collect::<Vec<_>>());
    crate::directory::encode_csv([watermark, header].into_iter().chain(rows))
}
