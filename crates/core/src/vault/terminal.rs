//! Terminals (DATA-7): customer data opens only on a terminal registered to the business and
//! to its secure zone. A terminal proves itself by a device key: a random secret issued once at
//! registration and installed on the terminal (a cookie set by the console's enrolment page, or
//! the `X-Mamori-Terminal` header of an API client). mamori keeps only its SHA-256; a request
//! carries the hash in its principal, and the vault's policy forbids any data operation whose
//! request comes from no terminal, a revoked one, or one registered elsewhere.

use mamori_ledger::Event;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::error::{CoreError, Result};
use crate::policy::Action;
use crate::types::{Code, Text};
use crate::Mamori;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTerminal {
    pub code: Code,
    pub name: Text,
    pub business: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TerminalRow {
    pub code: String,
    pub name: String,
    pub zone: String,
    pub business: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// The hash under which a device key is known (what a principal carries).
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.trim().as_bytes()))
}

impl Mamori {
    /// Registers a terminal to a business and that business's secure zone; returns its device
    /// key, shown once.
    pub async fn register_terminal(&self, p: &Principal, t: NewTerminal) -> Result<String> {
        self.require(p, Action::VaultSchema).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let b = self.business(&mut tx, t.business.trim()).await?;
        let zone = b.zone.ok_or_else(|| CoreError::invalid("business", "the business has no secure zone; set its zone first"))?;
        let key = crate::auth::random_token("mt_");
        sqlx::query("INSERT INTO terminals (code, name, zone_id, business_id, key_hash, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(t.code.as_str())
            .bind(t.name.as_str())
            .bind(zone)
            .bind(b.id)
            .bind(key_hash(&key))
            .bind(p.user_id)
            .bind(now.timestamp_millis())
            .execute(&mut *tx)
            .await
            .map_err(|e| CoreError::from_db_unique(e, "terminal"))?;
        let ev = Event::new(now, p.actor(), "terminal.register").object("terminal", t.code.as_str()).client(&b.client).detail("business", &b.code);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(key)
    }

    /// Revokes a terminal: its device key opens nothing from now on.
    pub async fn revoke_terminal(&self, p: &Principal, code: &str) -> Result<()> {
        self.require(p, Action::VaultSchema).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let n = sqlx::query("UPDATE terminals SET revoked_at = $1 WHERE code = $2 AND revoked_at IS NULL")
            .bind(now.timestamp_millis())
            .bind(code)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(CoreError::NotFound("terminal"));
        }
        let ev = Event::new(now, p.actor(), "terminal.revoke").object("terminal", code);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_terminals(&self, p: &Principal) -> Result<Vec<TerminalRow>> {
        self.require(p, Action::VaultUse).await?;
        let rows: Vec<(String, String, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT t.code, t.name, z.code, b.code, t.created_at, t.revoked_at FROM terminals t JOIN zones z ON z.id = t.zone_id \
             JOIN businesses b ON b.id = t.business_id ORDER BY t.code",
        )
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(code, name, zone, business, created_at, revoked_at)| TerminalRow { code, name, zone, business, created_at, revoked_at })
            .collect())
    }

    /// The terminal a device key belongs to (for the enrolment page), if it is live.
    pub async fn terminal_by_key(&self, key_hash: &str) -> Result<Option<TerminalRow>> {
        let row: Option<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT t.code, t.name, z.code, b.code, t.created_at FROM terminals t JOIN zones z ON z.id = t.zone_id \
             JOIN businesses b ON b.id = t.business_id WHERE t.key_hash = $1 AND t.revoked_at IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.map(|(code, name, zone, business, created_at)| TerminalRow { code, name, zone, business, created_at, revoked_at: None }))
    }
}
