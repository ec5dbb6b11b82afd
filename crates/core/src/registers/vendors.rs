//! Vendors (VENDOR-1 to VENDOR-3): subcontractors with their Privacy Mark / ISMS certificate
//! and its expiry, an NDA, contracts with the five clauses (confidentiality, re-subcontracting,
//! liability for incidents, data at contract end, right to audit) and the client's approval of
//! the subcontracting; yearly audits, and for My Number work the three-stage audit: before the
//! contract, before work starts, after it starts. An expired certificate blocks a new contract.

use mamori_ledger::Event;
use serde::{Deserialize, Serialize};

use super::evidence::jst_date;
use super::{long_text, one_of};
use crate::auth::Principal;
use crate::error::{CoreError, Result};
use crate::policy::Action;
use crate::types::{Code, Date, Text};
use crate::Mamori;

pub const CLAUSES: &[&str] = &["confidentiality", "resubcontracting", "incident_liability", "data_at_end", "audit_right"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewVendor {
    pub code: Code,
    pub name: Text,
    /// `pmark`, `isms` or `equivalent`.
    pub cert_kind: String,
    pub cert_number: Text,
    pub cert_expiry: Date,
    pub nda: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewContract {
    pub title: Text,
    /// The client whose work is subcontracted, if any: then its approval is required.
    #[serde(default)]
    pub client: Option<String>,
    /// Who at the client approved the subcontracting, and when (VENDOR-1).
    #[serde(default)]
    pub client_approval: String,
    pub my_number: bool,
    /// The clauses the contract contains; all five are required (VENDOR-2).
    pub clauses: Vec<String>,
    pub starts: Date,
    pub ends: Date,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewVendorAudit {
    /// `yearly`, `before_contract`, `before_work` or `after_start`.
    pub stage: String,
    #[serde(default)]
    pub contract: Option<i64>,
    pub audited_on: Date,
    pub passed: bool,
    #[serde(default)]
    pub notes: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContractRow {
    pub id: i64,
    pub title: String,
    pub client: Option<String>,
    pub my_number: bool,
    pub starts: String,
    pub ends: String,
    pub work_started: bool,
    /// My Number stages passed: before contract, before work, after start.
    pub stages: [bool; 3],
}

#[derive(Debug, Clone, Serialize)]
pub struct VendorRow {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub cert_kind: String,
    pub cert_number: String,
    pub cert_expiry: String,
    pub cert_expired: bool,
    pub nda: bool,
    pub last_audit: Option<String>,
    /// No passed audit within a year.
    pub audit_due: bool,
    pub contracts: Vec<ContractRow>,
}

impl Mamori {
    async fn vendor_id(&self, tx: &mut sqlx::AnyConnection, code: &str) -> Result<(i64, String, i64)> {
        let row: Option<(i64, String, i64)> =
            sqlx::query_as("SELECT id, cert_expiry, nda FROM vendors WHERE code = $1").bind(code).fetch_optional(&mut *tx).await?;
        row.ok_or(CoreError::NotFound("vendor"))
    }

    pub async fn add_vendor(&self, p: &Principal, v: NewVendor) -> Result<i64> {
        self.require(p, Action::RegistersWrite).await?;
        let kind = one_of("cert_kind", &v.cert_kind, &["pmark", "isms", "equivalent"])?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO vendors (code, name, cert_kind, cert_number, cert_expiry, nda, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(v.code.as_str())
        .bind(v.name.as_str())
        .bind(kind)
        .bind(v.cert_number.as_str())
        .bind(v.cert_expiry.to_string())
        .bind(i64::from(v.nda))
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| CoreError::from_db_unique(e, "vendor"))?;
        let ev = Event::new(now, p.actor(), "vendor.create").object("vendor", v.code.as_str()).detail("cert_expiry", v.cert_expiry.to_string());
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Renews a vendor's certificate (a new number and expiry).
    pub async fn renew_vendor_certificate(&self, p: &Principal, code: &str, number: Text, expiry: Date) -> Result<()> {
        self.require(p, Action::RegistersWrite).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        self.vendor_id(&mut tx, code).await?;
        sqlx::query("UPDATE vendors SET cert_number = $1, cert_expiry = $2 WHERE code = $3").bind(number.as_str()).bind(expiry.to_string()).bind(code).execute(&mut *tx).await?;
        let ev = Event::new(now, p.actor(), "vendor.certificate").object("vendor", code).detail("cert_expiry", expiry.to_string());
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A new contract with a vendor: refused when its certificate has expired (or expires
    /// before the contract starts), without an NDA, without all five clauses, without the
    /// client's approval for a client's work, and for My Number work without a passed
    /// before-contract audit.
    pub async fn add_contract(&self, p: &Principal, vendor: &str, c: NewContract) -> Result<i64> {
        self.require(p, Action::RegistersWrite).await?;
        if c.ends < c.starts {
            return Err(CoreError::invalid("ends", "must not be before the start"));
        }
        let missing: Vec<&str> = CLAUSES.iter().filter(|k| !c.clauses.iter().any(|x| x == *k)).copied().collect();
        if !missing.is_empty() {
            return Err(CoreError::invalid("clauses", format!("the contract lacks: {}", missing.join(", "))));
        }
        let approval = long_text("client_approval", &c.client_approval, 500)?;
        let now = self.clock.now();
        let today = jst_date(now);
        let mut tx = self.db.begin().await?;
        let (vid, expiry, nda) = self.vendor_id(&mut tx, vendor).await?;
        if expiry < today || expiry < c.starts.to_string() {
            let ev = Event::new(now, p.actor(), "vendor.contract").object("vendor", vendor).denied(Some("vendor-certificate-expired")).detail("cert_expiry", &expiry);
            self.ledger.append_tx(&mut tx, &ev).await?;
            tx.commit().await?;
            return Err(CoreError::Forbidden { rule: Some("vendor-certificate-expired".into()) });
        }
        if nda == 0 {
            return Err(CoreError::Forbidden { rule: Some("vendor-without-nda".into()) });
        }
        let client = match c.client.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(code) => {
                let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM clients WHERE code = $1").bind(code).fetch_optional(&mut *tx).await?;
                let id = row.ok_or_else(|| CoreError::invalid("client", "no such client"))?.0;
                if approval.is_empty() {
                    return Err(CoreError::invalid("client_approval", "subcontracting a client's work needs the client's approval (VENDOR-1)"));
                }
                Some(id)
            }
            None => None,
        };
        if c.my_number {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM vendor_audits WHERE vendor_id = $1 AND stage = 'before_contract' AND passed = 1")
                .bind(vid)
                .fetch_one(&mut *tx)
                .await?;
            if n == 0 {
                return Err(CoreError::Forbidden { rule: Some("my-number-audit-before-contract".into()) });
            }
        }
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO vendor_contracts (vendor_id, title, client_id, client_approval, my_number, clauses, starts, ends, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(vid)
        .bind(c.title.as_str())
        .bind(client)
        .bind(&approval)
        .bind(i64::from(c.my_number))
        .bind(CLAUSES.join(","))
        .bind(c.starts.to_string())
        .bind(c.ends.to_string())
        .bind(p.user_id)
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await?;
        let ev = Event::new(now, p.actor(), "vendor.contract").object("vendor", vendor).detail("contract", id).detail("my_number", c.my_number);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Work starts under a contract; My Number work needs its before-work audit passed.
    pub async fn start_contract_work(&self, p: &Principal, contract: i64) -> Result<()> {
        self.require(p, Action::RegistersWrite).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let row: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT my_number, work_started_at FROM vendor_contracts WHERE id = $1").bind(contract).fetch_optional(&mut *tx).await?;
        let (mn, started) = row.ok_or(CoreError::NotFound("contract"))?;
        if started.is_some() {
            return Err(CoreError::Conflict("work has started already".into()));
        }
        if mn != 0 {
            let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM vendor_audits WHERE contract_id = $1 AND stage = 'before_work' AND passed = 1")
                .bind(contract)
                .fetch_one(&mut *tx)
                .await?;
            if n == 0 {
                return Err(CoreError::Forbidden { rule: Some("my-number-audit-before-work".into()) });
            }
        }
        sqlx::query("UPDATE vendor_contracts SET work_started_at = $1 WHERE id = $2").bind(now.timestamp_millis()).bind(contract).execute(&mut *tx).await?;
        let ev = Event::new(now, p.actor(), "vendor.work_start").object("contract", contract);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn record_vendor_audit(&self, p: &Principal, vendor: &str, a: NewVendorAudit) -> Result<i64> {
        self.require(p, Action::RegistersWrite).await?;
        let stage = one_of("stage", &a.stage, &["yearly", "before_contract", "before_work", "after_start"])?;
        let notes = long_text("notes", &a.notes, 2000)?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let (vid, _, _) = self.vendor_id(&mut tx, vendor).await?;
        if matches!(stage, "before_work" | "after_start") {
            let Some(c) = a.contract else {
                return Err(CoreError::invalid("contract", "name the contract this stage belongs to"));
            };
            let row: Option<(i64, Option<i64>)> = sqlx::query_as("SELECT vendor_id, work_started_at FROM vendor_contracts WHERE id = $1")
                .bind(c)
                .fetch_optional(&mut *tx)
                .await?;
            let (owner, started) = row.ok_or_else(|| CoreError::invalid("contract", "no such contract"))?;
            if owner != vid {
                return Err(CoreError::invalid("contract", "the contract is another vendor's"));
            }
            if stage == "after_start" && started.is_none() {
                return Err(CoreError::Conflict("work has not started under this contract".into()));
            }
        }
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO vendor_audits (vendor_id, contract_id, stage, audited_on, passed, notes, recorded_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(vid)
        .bind(a.contract)
        .bind(stage)
        .bind(a.audited_on.to_string())
        .bind(i64::from(a.passed))
        .bind(&notes)
        .bind(p.user_id)
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await?;
        let ev = Event::new(now, p.actor(), "vendor.audit").object("vendor", vendor).detail("stage", stage).detail("passed", a.passed);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn list_vendors(&self, p: &Principal) -> Result<Vec<VendorRow>> {
        self.require(p, Action::RegistersRead).await?;
        let now = self.clock.now();
        let today = jst_date(now);
        let year_ago = jst_date(now - chrono::Duration::days(365));
        let vendors: Vec<(i64, String, String, String, String, String, i64)> =
            sqlx::query_as("SELECT id, code, name, cert_kind, cert_number, cert_expiry, nda FROM vendors ORDER BY code").fetch_all(&self.db.pool).await?;
        let mut out = Vec::with_capacity(vendors.len());
        for (id, code, name, cert_kind, cert_number, cert_expiry, nda) in vendors {
            let (last,): (Option<String>,) =
                sqlx::query_as("SELECT MAX(audited_on) FROM vendor_audits WHERE vendor_id = $1 AND passed = 1").bind(id).fetch_one(&self.db.pool).await?;
            let contracts: Vec<(i64, String, Option<String>, i64, String, String, Option<i64>)> = sqlx::query_as(
                "SELECT c.id, c.title, cl.code, c.my_number, c.starts, c.ends, c.work_started_at FROM vendor_contracts c LEFT JOIN clients cl ON cl.id = c.client_id \
                 WHERE c.vendor_id = $1 ORDER BY c.id",
            )
            .bind(id)
            .fetch_all(&self.db.pool)
            .await?;
            let mut cs = Vec::with_capacity(contracts.len());
            for (cid, title, client, mn, starts, ends, started) in contracts {
                let stages: Vec<(String,)> = sqlx::query_as(
                    "SELECT stage FROM vendor_audits WHERE vendor_id = $1 AND passed = 1 AND (stage = 'before_contract' OR contract_id = $2)",
                )
                .bind(id)
                .bind(cid)
                .fetch_all(&self.db.pool)
                .await?;
                let has = |s: &str| stages.iter().any(|(x,)| x == s);
                cs.push(ContractRow {
                    id: cid,
                    title,
                    client,
                    my_number: mn != 0,
                    starts,
                    ends,
                    work_started: started.is_some(),
                    stages: [has("before_contract"), has("before_work"), has("after_start")],
                });
            }
            out.push(VendorRow {
                id,
                code,
                name,
                cert_kind,
                cert_number,
                cert_expired: cert_expiry < today,
                cert_expiry,
                nda: nda != 0,
                audit_due: last.as_ref().is_none_or(|l| *l < year_ago),
                last_audit: last,
                contracts: cs,
            });
        }
        Ok(out)
    }
}
