//! Handover (LIFE-1, LIFE-2): an export of a business's records for its client is a CSV
//! (UTF-8 with BOM, Japanese headers) encrypted with `age` to the client's own recipient key, so
//! that only the client can open it; every export, and every medium that leaves or arrives by
//! hand, is a line of the media handover register (媒体の授受記録) naming what, which medium, to
//! or from whom, when, its SHA-256, and who signed for it.

use std::io::Write;
use std::str::FromStr;

use mamori_ledger::Event;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::error::{CoreError, Result};
use crate::policy::Action;
use crate::types::{Op, Sensitivity, Text};
use crate::Mamori;

/// An encrypted export, ready to hand over.
#[derive(Debug, Clone)]
pub struct Export {
    pub file_name: String,
    pub bytes: Vec<u8>,
    pub sha256: String,
    pub records: usize,
    pub handover_id: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewHandover {
    pub client: String,
    #[serde(default)]
    pub business: Option<String>,
    /// `out` (left the centre) or `in` (arrived).
    pub direction: String,
    /// 媒体: paper, USB memory, DVD, electronic transfer …
    pub medium: Text,
    pub description: Text,
    /// To whom (out) or from whom (in).
    pub counterpart: Text,
    #[serde(default)]
    pub sha256: Option<String>,
    /// Who signed for it (受領者), when known at once.
    #[serde(default)]
    pub signed_by: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HandoverRow {
    pub id: i64,
    pub client: String,
    pub business: Option<String>,
    pub direction: String,
    pub medium: String,
    pub description: String,
    pub counterpart: String,
    pub sha256: Option<String>,
    pub signed_by: Option<String>,
    pub recorded_by: String,
    pub at: i64,
}

fn parse_recipient(s: &str) -> Result<age::x25519::Recipient> {
    age::x25519::Recipient::from_str(s.trim()).map_err(|_| CoreError::invalid("recipient", "an age recipient key (age1…)"))
}

impl Mamori {
    /// Sets the client's age recipient key (its own public key; mamori never holds its identity).
    pub async fn set_client_recipient(&self, p: &Principal, client: &str, recipient: &str) -> Result<()> {
        self.require(p, Action::VaultSchema).await?;
        let r = parse_recipient(recipient)?;
        let mut tx = self.db.begin().await?;
        let n = sqlx::query("UPDATE clients SET age_recipient = $1 WHERE code = $2").bind(r.to_string()).bind(client).execute(&mut *tx).await?.rows_affected();
        if n == 0 {
            return Err(CoreError::NotFound("client"));
        }
        let ev = Event::new(self.clock.now(), p.actor(), "client.recipient").object("client", client).client(client).detail("recipient", r.to_string());
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Exports every record of a business for its client (op `export`), encrypted to the
    /// client's recipient key, and enters it in the media handover register.
    pub async fn export_for_client(&self, p: &Principal, business: &str, counterpart: &str, medium: &str) -> Result<Export> {
        self.require(p, Action::VaultUse).await?;
        // An export is a sensitive operation: a fresh password check (SECURITY-BASELINE).
        self.require_recent_auth(p)?;
        let counterpart = Text::parse("counterpart", counterpart)?;
        let medium = Text::parse("medium", medium)?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let (b, fields) = self.business_fields(Some(&mut *tx), None, business).await?;
        let has_mn = fields.iter().any(|f| f.sensitivity == Sensitivity::MyNumber);
        let (ok, rule) = self.decide_op(Some(&mut *tx), p, &b, Op::Export, has_mn, now).await?;
        if !ok {
            drop(tx);
            return Err(self.denied(p, &b, Op::Export, rule, None).await);
        }
        let (recipient,): (Option<String>,) =
            sqlx::query_as("SELECT c.age_recipient FROM clients c WHERE c.code = $1").bind(&b.client).fetch_one(&mut *tx).await?;
        let recipient = parse_recipient(&recipient.ok_or_else(|| CoreError::invalid("client", "the client has no recipient key for encrypted exports yet"))?)?;
        let recs = self.open_all_records(&mut tx, &b, i64::MAX).await?;
        let header = std::iter::once("ID".to_owned()).chain(fields.iter().map(|f| f.label.clone())).collect::<Vec<_>>();
        let rows = recs.iter().map(|(uid, values)| std::iter::once(uid.clone()).chain(fields.iter().map(|f| values.get(&f.name).cloned().unwrap_or_default())).collect::<Vec<_>>());
        let plain = zeroize::Zeroizing::new(crate::directory::encode_csv(std::iter::once(header).chain(rows))?);
        let enc = age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient)).map_err(|e| CoreError::Internal(format!("age: {e}")))?;
        let mut bytes = Vec::new();
        let mut w = enc.wrap_output(&mut bytes)?;
        w.write_all(&plain)?;
        w.finish()?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let file_name = format!("{}-{}.csv.age", b.code, now.format("%Y%m%dT%H%M%SZ"));
        let description = format!("{file_name}: {} records of {}", recs.len(), b.code);
        let handover_id = self.insert_handover(&mut tx, p, &b.client, Some(b.id), "out", medium.as_str(), &description, counterpart.as_str(), Some(&sha256), None, now).await?;
        let ev = Event::new(now, p.actor(), "data.export")
            .object("handover", handover_id)
            .client(&b.client)
            .rule(&rule)
            .detail("business", &b.code)
            .detail("records", recs.len())
            .detail("sha256", &sha256)
            .detail("to", counterpart.as_str())
            .addr(p.addr.clone());
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(Export { file_name, bytes, sha256, records: recs.len(), handover_id })
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_handover(
        &self,
        conn: &mut sqlx::AnyConnection,
        p: &Principal,
        client: &str,
        business: Option<i64>,
        direction: &str,
        medium: &str,
        description: &str,
        counterpart: &str,
        sha256: Option<&str>,
        signed_by: Option<&str>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<i64> {
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO media_handovers (client_id, business_id, direction, medium, description, counterpart, sha256, signed_by, recorded_by, at) \
             SELECT id, $1, $2, $3, $4, $5, $6, $7, $8, $9 FROM clients WHERE code = $10 RETURNING id",
        )
        .bind(business)
        .bind(direction)
        .bind(medium)
        .bind(description)
        .bind(counterpart)
        .bind(sha256)
        .bind(signed_by)
        .bind(p.user_id)
        .bind(now.timestamp_millis())
        .bind(client)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(CoreError::NotFound("client"))?;
        Ok(id)
    }

    /// Enters a medium that left or arrived by hand in the register (the security office).
    pub async fn record_handover(&self, p: &Principal, h: NewHandover) -> Result<i64> {
        self.require(p, Action::VaultSchema).await?;
        if !["out", "in"].contains(&h.direction.as_str()) {
            return Err(CoreError::invalid("direction", "out or in"));
        }
        if let Some(s) = &h.sha256 {
            if s.len() != 64 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(CoreError::invalid("sha256", "64 hexadecimal digits"));
            }
        }
        let signed_by = h.signed_by.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(|s| Text::parse("signed_by", s)).transpose()?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let business = match &h.business {
            Some(code) if !code.trim().is_empty() => Some(self.business(&mut tx, code.trim()).await?.id),
            _ => None,
        };
        let sha = h.sha256.as_deref().map(str::to_ascii_lowercase);
        let id = self
            .insert_handover(&mut tx, p, &h.client, business, &h.direction, h.medium.as_str(), h.description.as_str(), h.counterpart.as_str(), sha.as_deref(), signed_by.as_ref().map(Text::as_str), now)
            .await?;
        let ev = Event::new(now, p.actor(), "media.handover")
            .object("handover", id)
            .client(&h.client)
            .detail("direction", &h.direction)
            .detail("medium", h.medium.as_str())
            .detail("counterpart", h.counterpart.as_str());
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Records who signed for a handover (受領者の署名), once.
    pub async fn sign_handover(&self, p: &Principal, id: i64, signed_by: &str) -> Result<()> {
        self.require(p, Action::VaultSchema).await?;
        let signed_by = Text::parse("signed_by", signed_by)?;
        let mut tx = self.db.begin().await?;
        let row: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT c.code, h.signed_by FROM media_handovers h JOIN clients c ON c.id = h.client_id WHERE h.id = $1").bind(id).fetch_optional(&mut *tx).await?;
        let (client, already) = row.ok_or(CoreError::NotFound("handover"))?;
        if already.is_some() {
            return Err(CoreError::Conflict("this handover was already signed for".into()));
        }
        sqlx::query("UPDATE media_handovers SET signed_by = $1 WHERE id = $2").bind(signed_by.as_str()).bind(id).execute(&mut *tx).await?;
        let ev = Event::new(self.clock.now(), p.actor(), "media.signed").object("handover", id).client(&client).detail("signed_by", signed_by.as_str());
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The media handover register, newest first.
    pub async fn handovers(&self, p: &Principal) -> Result<Vec<HandoverRow>> {
        self.require(p, Action::VaultSchema).await?;
        let rows: Vec<(i64, String, Option<String>, String, String, String, String, Option<String>, Option<String>, String, i64)> = sqlx::query_as(
            "SELECT h.id, c.code, b.code, h.direction, h.medium, h.description, h.counterpart, h.sha256, h.signed_by, u.login, h.at \
             FROM media_handovers h JOIN clients c ON c.id = h.client_id LEFT JOIN businesses b ON b.id = h.business_id \
             JOIN users u ON u.id = h.recorded_by ORDER BY h.id DESC LIMIT 1000",
        )
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, client, business, direction, medium, description, counterpart, sha256, signed_by, recorded_by, at)| HandoverRow {
                id,
                client,
                business,
                direction,
                medium,
                description,
                counterpart,
                sha256,
                signed_by,
                recorded_by,
                at,
            })
            .collect())
    }
}
