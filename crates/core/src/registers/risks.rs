//! Risk assessment records (MGMT-4): per asset, a threat and a vulnerability from the centre's
//! catalogue (which it extends), rated 1–3; the risk value by the seed's formula (asset value ×
//! threat × vulnerability) or the IPA method (importance × likelihood from the IPA table); the
//! controls and the residual risk after them; the level from the centre's acceptance bands; and
//! the acceptance, signed by a person (nobody accepts a risk they entered themselves).

use mamori_ledger::Event;
use serde::{Deserialize, Serialize};

use super::risk::{ipa_risk_value, risk_value, Bands, Cia, Level, Rating};
use crate::auth::Principal;
use crate::error::{CoreError, Result};
use crate::policy::Action;
use crate::types::{Code, Text};
use crate::Mamori;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// asset value × threat × vulnerability (1–27), levels by the bands.
    Seed,
    /// IPA: importance × likelihood (1–9).
    Ipa,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Seed => "seed",
            Method::Ipa => "ipa",
        }
    }
    /// The value for an asset, a threat and a vulnerability.
    pub fn value(self, cia: Cia, t: Rating, v: Rating) -> u8 {
        match self {
            Method::Seed => risk_value(cia.value(), t, v),
            Method::Ipa => ipa_risk_value(cia.value(), t, v),
        }
    }
    /// The level: the seed's bands, or for the IPA method the same bands scaled to 1–9 (a value
    /// of 9 is as high as 27).
    pub fn level(self, bands: &Bands, value: u8) -> Level {
        match self {
            Method::Seed => bands.level(value),
            Method::Ipa => bands.level(value.saturating_mul(3)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCatalogueEntry {
    /// `threat` or `vulnerability`
    pub kind: String,
    pub code: Code,
    pub name: Text,
}

#[derive(Debug, Clone, Serialize)]
pub struct CatalogueEntry {
    pub kind: String,
    pub code: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAssessment {
    pub asset: i64,
    pub threat: Code,
    pub vulnerability: Code,
    pub method: Method,
    pub threat_rating: Rating,
    pub vulnerability_rating: Rating,
    pub controls: Text,
    pub residual_threat: Rating,
    pub residual_vulnerability: Rating,
}

#[derive(Debug, Clone, Serialize)]
pub struct AssessmentRow {
    pub id: i64,
    pub asset: String,
    pub department: String,
    pub threat: String,
    pub vulnerability: String,
    pub method: String,
    pub value: i64,
    pub level: Level,
    pub controls: String,
    pub residual_value: i64,
    pub residual_level: Level,
    pub accepted_by: Option<String>,
}

fn rating(v: i64) -> Result<Rating> {
    u8::try_from(v).ok().and_then(|v| Rating::try_from(v).ok()).ok_or_else(|| CoreError::Internal("rating out of range".into()))
}

impl Mamori {
    pub async fn risk_bands(&self) -> Result<Bands> {
        let (m, h): (i64, i64) = sqlx::query_as("SELECT medium_from, high_from FROM risk_bands WHERE id = 1").fetch_one(&self.db.pool).await?;
        Bands::new(u8::try_from(m).unwrap_or(10), u8::try_from(h).unwrap_or(20))
    }

    /// Sets the acceptance bands (on the 1–27 scale).
    pub async fn set_risk_bands(&self, p: &Principal, b: Bands) -> Result<()> {
        self.require(p, Action::RegistersWrite).await?;
        let b = Bands::new(b.medium_from, b.high_from)?;
        let mut tx = self.db.begin().await?;
        sqlx::query("UPDATE risk_bands SET medium_from = $1, high_from = $2 WHERE id = 1")
            .bind(i64::from(b.medium_from))
            .bind(i64::from(b.high_from))
            .execute(&mut *tx)
            .await?;
        let ev = Event::new(self.clock.now(), p.actor(), "risk.bands").detail("medium_from", b.medium_from).detail("high_from", b.high_from);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn add_catalogue_entry(&self, p: &Principal, e: NewCatalogueEntry) -> Result<()> {
        self.require(p, Action::RegistersWrite).await?;
        if !["threat", "vulnerability"].contains(&e.kind.as_str()) {
            return Err(CoreError::invalid("kind", "threat or vulnerability"));
        }
        let mut tx = self.db.begin().await?;
        sqlx::query("INSERT INTO risk_catalogue (kind, code, name) VALUES ($1, $2, $3)")
            .bind(&e.kind)
            .bind(e.code.as_str())
            .bind(e.name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|x| CoreError::from_db_unique(x, "catalogue code"))?;
        let ev = Event::new(self.clock.now(), p.actor(), "risk.catalogue").object("risk_catalogue", e.code.as_str()).detail("kind", &e.kind);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn risk_catalogue(&self, p: &Principal) -> Result<Vec<CatalogueEntry>> {
        self.require(p, Action::RegistersRead).await?;
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT kind, code, name FROM risk_catalogue ORDER BY kind, code").fetch_all(&self.db.pool).await?;
        Ok(rows.into_iter().map(|(kind, code, name)| CatalogueEntry { kind, code, name }).collect())
    }

    /// Records an assessment; the values come from the asset's C/I/A and the ratings.
    pub async fn assess_risk(&self, p: &Principal, a: NewAssessment) -> Result<i64> {
        self.require(p, Action::RegistersWrite).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let row: Option<(i64, i64, i64)> = sqlx::query_as("SELECT c, i, a FROM assets WHERE id = $1").bind(a.asset).fetch_optional(&mut *tx).await?;
        let (c, i, av) = row.ok_or_else(|| CoreError::invalid("asset", "no such asset"))?;
        let cia = Cia { c: rating(c)?, i: rating(i)?, a: rating(av)? };
        let entry = |kind: &'static str, code: &Code| {
            let code = code.as_str().to_owned();
            async move {
                let r: Option<(i64,)> = sqlx::query_as("SELECT id FROM risk_catalogue WHERE kind = $1 AND code = $2").bind(kind).bind(&code).fetch_optional(&self.db.pool).await?;
                r.map(|x| x.0).ok_or_else(|| CoreError::invalid(kind, format!("not in the catalogue: {code}")))
            }
        };
        let (threat, vuln) = (entry("threat", &a.threat).await?, entry("vulnerability", &a.vulnerability).await?);
        let value = a.method.value(cia, a.threat_rating, a.vulnerability_rating);
        let residual = a.method.value(cia, a.residual_threat, a.residual_vulnerability);
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO risk_assessments (asset_id, threat_id, vulnerability_id, method, threat, vulnerability, value, controls, residual_threat, \
             residual_vulnerability, residual_value, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(a.asset)
        .bind(threat)
        .bind(vuln)
        .bind(a.method.as_str())
        .bind(i64::from(a.threat_rating.get()))
        .bind(i64::from(a.vulnerability_rating.get()))
        .bind(i64::from(value))
        .bind(a.controls.as_str())
        .bind(i64::from(a.residual_threat.get()))
        .bind(i64::from(a.residual_vulnerability.get()))
        .bind(i64::from(residual))
        .bind(p.user_id)
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await?;
        let ev = Event::new(now, p.actor(), "risk.assess").object("risk", id).detail("asset", a.asset).detail("value", value).detail("residual", residual);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Accepts the residual risk of an assessment, signed by the caller; never by its author.
    pub async fn accept_risk(&self, p: &Principal, id: i64) -> Result<()> {
        self.require(p, Action::RegistersWrite).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let row: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT created_by, accepted_by FROM risk_assessments WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
        let (author, accepted) = row.ok_or(CoreError::NotFound("risk assessment"))?;
        if author == p.user_id {
            return Err(CoreError::Forbidden { rule: Some("nobody-accepts-own-assessment".into()) });
        }
        if accepted.is_some() {
            return Err(CoreError::Conflict("this risk was accepted already".into()));
        }
        sqlx::query("UPDATE risk_assessments SET accepted_by = $1, accepted_at = $2 WHERE id = $3")
            .bind(p.user_id)
            .bind(now.timestamp_millis())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let ev = Event::new(now, p.actor(), "risk.accept").object("risk", id);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_risks(&self, p: &Principal) -> Result<Vec<AssessmentRow>> {
        self.require(p, Action::RegistersRead).await?;
        let bands = self.risk_bands().await?;
        #[allow(clippy::type_complexity)]
        let rows: Vec<(i64, String, String, String, String, String, i64, String, i64, Option<String>)> = sqlx::query_as(
            "SELECT r.id, a.name, d.code, t.name, v.name, r.method, r.value, r.controls, r.residual_value, u.login FROM risk_assessments r \
             JOIN assets a ON a.id = r.asset_id JOIN departments d ON d.id = a.department_id JOIN risk_catalogue t ON t.id = r.threat_id \
             JOIN risk_catalogue v ON v.id = r.vulnerability_id LEFT JOIN users u ON u.id = r.accepted_by ORDER BY r.residual_value DESC, r.id",
        )
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, asset, department, threat, vulnerability, method, value, controls, residual_value, accepted_by)| {
                let m = if method == "ipa" { Method::Ipa } else { Method::Seed };
                let lv = |v: i64| m.level(&bands, u8::try_from(v).unwrap_or(u8::MAX));
                AssessmentRow {
                    id,
                    asset,
                    department,
                    threat,
                    vulnerability,
                    method,
                    value,
                    level: lv(value),
                    controls,
                    residual_value,
                    residual_level: lv(residual_value),
                    accepted_by,
                }
            })
            .collect())
    }
}
