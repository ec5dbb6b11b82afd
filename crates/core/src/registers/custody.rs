//! Chain of custody (LIFE-6, PHY-11): registered media that are never reused once disposed of;
//! disposal records (what, how — physical destruction, shredding, dissolution, erasure — and
//! for outsourced disposal the contractor, NDA, certificate and witness, approved by the
//! security office, not by the person recording it); and the retention schedules with how
//! mamori enforces them.

use mamori_ledger::Event;
use serde::{Deserialize, Serialize};

use super::evidence::jst_text;
use super::{long_text, one_of};
use crate::auth::Principal;
use crate::error::{CoreError, Result};
use crate::ledger::CENTRE_LOG;
use crate::policy::Action;
use crate::types::{Code, Date, Role, Text};
use crate::Mamori;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMedium {
    pub serial: Code,
    pub kind: Text,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDisposal {
    pub what: Text,
    #[serde(default)]
    pub medium: Option<String>,
    /// `physical_destruction`, `shredding`, `dissolution` or `data_erasure`.
    pub method: String,
    #[serde(default)]
    pub contractor: String,
    #[serde(default)]
    pub nda: bool,
    #[serde(default)]
    pub certificate: String,
    #[serde(default)]
    pub witness: String,
    pub disposed_on: Date,
}

#[derive(Debug, Clone, Serialize)]
pub struct DisposalRow {
    pub id: i64,
    pub what: String,
    pub medium: Option<String>,
    pub method: String,
    pub contractor: String,
    pub nda: bool,
    pub certificate: String,
    pub witness: String,
    pub disposed_on: String,
    pub approved_by: Option<String>,
    pub recorded_by: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MediumRow {
    pub serial: String,
    pub kind: String,
    pub disposed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetentionRow {
    pub what_ja: &'static str,
    pub what_en: &'static str,
    pub keep_ja: &'static str,
    pub keep_en: &'static str,
    /// How it is enforced, with the current state.
    pub enforcement_ja: String,
    pub enforcement_en: String,
    pub ok: bool,
}

impl Mamori {
    pub async fn register_medium(&self, p: &Principal, m: NewMedium) -> Result<()> {
        self.require(p, Action::RegistersWrite).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let old: Option<(Option<i64>,)> = sqlx::query_as("SELECT disposed_at FROM media WHERE serial = $1").bind(m.serial.as_str()).fetch_optional(&mut *tx).await?;
        match old {
            Some((Some(_),)) => return Err(CoreError::Forbidden { rule: Some("media-never-reused".into()) }),
            Some((None,)) => return Err(CoreError::Conflict("this medium is registered already".into())),
            None => {}
        }
        sqlx::query("INSERT INTO media (serial, kind, registered_at) VALUES ($1, $2, $3)")
            .bind(m.serial.as_str())
            .bind(m.kind.as_str())
            .bind(now.timestamp_millis())
            .execute(&mut *tx)
            .await?;
        let ev = Event::new(now, p.actor(), "medium.register").object("medium", m.serial.as_str());
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_media(&self, p: &Principal) -> Result<Vec<MediumRow>> {
        self.require(p, Action::RegistersRead).await?;
        let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as("SELECT serial, kind, disposed_at FROM media ORDER BY serial").fetch_all(&self.db.pool).await?;
        Ok(rows.into_iter().map(|(serial, kind, d)| MediumRow { serial, kind, disposed: d.is_some() }).collect())
    }

    /// Records a disposal. An outsourced one (a contractor named) needs the NDA, the
    /// contractor's disposal certificate and a witness, and waits for approval.
    pub async fn record_disposal(&self, p: &Principal, d: NewDisposal) -> Result<i64> {
        self.require(p, Action::RegistersWrite).await?;
        let method = one_of("method", &d.method, &["physical_destruction", "shredding", "dissolution", "data_erasure"])?;
        let contractor = long_text("contractor", &d.contractor, 200)?;
        let certificate = long_text("certificate", &d.certificate, 200)?;
        let witness = long_text("witness", &d.witness, 200)?;
        if !contractor.is_empty() {
            if !d.nda {
                return Err(CoreError::invalid("nda", "outsourced disposal needs an NDA with the contractor (LIFE-6)"));
            }
            if certificate.is_empty() {
                return Err(CoreError::invalid("certificate", "the contractor's disposal certificate number"));
            }
            if witness.is_empty() {
                return Err(CoreError::invalid("witness", "who witnessed the disposal"));
            }
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let medium = match d.medium.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => {
                let n = sqlx::query("UPDATE media SET disposed_at = $1 WHERE serial = $2 AND disposed_at IS NULL")
                    .bind(now.timestamp_millis())
                    .bind(s)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 0 {
                    return Err(CoreError::invalid("medium", "not a registered medium in use"));
                }
                Some(s.to_owned())
            }
            None => None,
        };
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO disposals (what, medium_serial, method, contractor, nda, certificate, witness, disposed_on, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(d.what.as_str())
        .bind(&medium)
        .bind(method)
        .bind(&contractor)
        .bind(i64::from(d.nda))
        .bind(&certificate)
        .bind(&witness)
        .bind(d.disposed_on.to_string())
        .bind(p.user_id)
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await?;
        let mut ev = Event::new(now, p.actor(), "disposal.record").object("disposal", id).detail("method", method);
        if let Some(m) = &medium {
            ev = ev.detail("medium", m);
        }
        if !contractor.is_empty() {
            ev = ev.detail("contractor", &contractor);
        }
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The CISO or information manager approves an outsourced disposal (not their own record).
    pub async fn approve_disposal(&self, p: &Principal, id: i64) -> Result<()> {
        self.require(p, Action::RegistersWrite).await?;
        if !p.roles.iter().any(|r| matches!(r, Role::Ciso | Role::InfoManager)) {
            return Err(CoreError::Forbidden { rule: Some("security-office-approves-disposal".into()) });
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let row: Option<(i64, String, Option<i64>)> =
            sqlx::query_as("SELECT created_by, contractor, approved_at FROM disposals WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
        let (by, contractor, approved) = row.ok_or(CoreError::NotFound("disposal"))?;
        if contractor.is_empty() || approved.is_some() {
            return Err(CoreError::Conflict("nothing to approve".into()));
        }
        if by == p.user_id {
            return Err(CoreError::Forbidden { rule: Some("nobody-approves-own-record".into()) });
        }
        sqlx::query("UPDATE disposals SET approved_by = $1, approved_at = $2 WHERE id = $3").bind(p.user_id).bind(now.timestamp_millis()).bind(id).execute(&mut *tx).await?;
        let ev = Event::new(now, p.actor(), "disposal.approve").object("disposal", id);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_disposals(&self, p: &Principal) -> Result<Vec<DisposalRow>> {
        self.require(p, Action::RegistersRead).await?;
        let rows: Vec<(i64, String, Option<String>, String, String, i64, String, String, String, Option<String>, String)> = sqlx::query_as(
            "SELECT d.id, d.what, d.medium_serial, d.method, d.contractor, d.nda, d.certificate, d.witness, d.disposed_on, a.display_name, c.display_name \
             FROM disposals d JOIN users c ON c.id = d.created_by LEFT JOIN users a ON a.id = d.approved_by ORDER BY d.disposed_on DESC, d.id DESC",
        )
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, what, medium, method, contractor, nda, certificate, witness, disposed_on, approved_by, recorded_by)| DisposalRow {
                id,
                what,
                medium,
                method,
                contractor,
                nda: nda != 0,
                certificate,
                witness,
                disposed_on,
                approved_by,
                recorded_by,
            })
            .collect())
    }

    /// The retention schedules (PHY-11) and how each is enforced now, from the server's ledger
    /// pruning settings.
    pub async fn retention(&self, p: &Principal) -> Result<Vec<RetentionRow>> {
        let prune_actions = &self.settings.prune_actions;
        self.require(p, Action::RegistersRead).await?;
        // Time never goes back within a log: the first such entry is the oldest.
        let oldest: Option<(i64,)> =
            sqlx::query_as("SELECT ts FROM ledger_entries WHERE log_id = $1 AND (action LIKE 'door.%' OR action LIKE 'access.%') ORDER BY idx LIMIT 1")
                .bind(CENTRE_LOG)
                .fetch_optional(&self.db.pool)
                .await?;
        let oldest = oldest.map(|r| r.0);
        let prunes_doors = prune_actions.iter().any(|a| a.starts_with("door") || a.starts_with("access"));
        let days = self.settings.prune_after_days;
        let entry_ok = !prunes_doors || days >= 366;
        let oldest_txt = oldest.map(jst_text).unwrap_or_else(|| "—".into());
        let (pj, pe) = if prunes_doors {
            (format!("{days}日後に削除（1年以上）"), format!("pruned after {days} days (at least a year)"))
        } else {
            ("削除しない（永久保存）".to_owned(), "never pruned (kept for ever)".to_owned())
        };
        Ok(vec![
            RetentionRow {
                what_ja: "入退室記録",
                what_en: "Entry logs",
                keep_ja: "1年以上",
                keep_en: "1 year or more",
                enforcement_ja: format!("台帳に記録、{pj}。最古の記録: {oldest_txt}"),
                enforcement_en: format!("in the ledger, {pe}; oldest entry: {oldest_txt}"),
                ok: entry_ok,
            },
            RetentionRow {
                what_ja: "防犯カメラ映像",
                what_en: "CCTV video",
                keep_ja: "3か月",
                keep_en: "3 months",
                enforcement_ja: "録画装置で90日上書き（mamoriの外）。自主点検の項目で毎月確認".into(),
                enforcement_en: "overwritten after 90 days by the recorder (outside mamori); checked monthly as a self-inspection item".into(),
                ok: true,
            },
            RetentionRow {
                what_ja: "顧客データ",
                what_en: "Customer data",
                keep_ja: "契約で定める期間、終了時に削除",
                keep_en: "as the contract says; deleted at its end",
                enforcement_ja: "データ鍵の破棄（暗号消去）とデータ削除証明書".into(),
                enforcement_en: "destruction of the data keys (crypto-shredding) with a deletion certificate".into(),
                ok: true,
            },
            RetentionRow {
                what_ja: "アクセスログ・監査証跡",
                what_en: "Access logs and audit trail",
                keep_ja: "永久",
                keep_en: "for ever",
                enforcement_ja: "改ざん検知可能な台帳（追記のみ）".into(),
                enforcement_en: "tamper-evident, append-only ledger".into(),
                ok: true,
            },
        ])
    }
}
