//! The statement of applicability (適用宣言書) and the risk treatment plan (リスク対応計画書),
//! MGMT-4 and MGMT-8. Each control of the catalogue is applicable or not, with a justification;
//! the SoA shows the control's live evidence for a period. Treatment actions name a control or
//! an assessed risk, an owner and a due date; an action can add a question to the monthly
//! self-inspection checklist (MGMT-6), which is where those items come from.

use std::collections::HashMap;

use mamori_ledger::Event;
use serde::{Deserialize, Serialize};

use super::catalogue::{control, CONTROLS};
use super::evidence::{Evidence, Period, State};
use super::long_text;
use crate::auth::Principal;
use crate::error::{CoreError, Result};
use crate::policy::Action;
use crate::types::{Date, Text};
use crate::Mamori;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoaUpdate {
    pub applicable: bool,
    pub justification: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoaRow {
    pub id: &'static str,
    pub theme: &'static str,
    pub title_ja: &'static str,
    pub title_en: &'static str,
    /// None: not yet decided.
    pub applicable: Option<bool>,
    pub justification: String,
    pub evidence: Vec<Evidence>,
    /// The weakest state of its evidence (None: mamori keeps no evidence for it).
    pub state: Option<State>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTreatment {
    #[serde(default)]
    pub risk: Option<i64>,
    #[serde(default)]
    pub control: Option<String>,
    pub action: Text,
    pub owner: Text,
    pub due: Date,
    /// A question for the monthly self-inspection (e.g. "離席中の端末の画面がロックされている").
    #[serde(default)]
    pub check_item: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TreatmentRow {
    pub id: i64,
    pub risk: Option<i64>,
    pub control: Option<String>,
    pub action: String,
    pub owner: String,
    pub due: String,
    pub check_item: Option<String>,
    pub done_at: Option<i64>,
    pub overdue: bool,
}

impl Mamori {
    /// The statement of applicability with the live evidence of each control for `period`.
    pub async fn soa(&self, p: &Principal, period: Period) -> Result<Vec<SoaRow>> {
        self.require(p, Action::RegistersRead).await?;
        let flags = self.people_flags_all().await?;
        let evidence = self.evidence_all(period, &flags).await?;
        self.soa_rows(&evidence).await
    }

    /// The SoA's rows over evidence already computed (`evidence_all`).
    pub(crate) async fn soa_rows(&self, evidence: &[Evidence]) -> Result<Vec<SoaRow>> {
        let rows: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT control, applicable, justification FROM soa_entries").fetch_all(&self.db.pool).await?;
        let decided: HashMap<String, (bool, String)> = rows.into_iter().map(|(c, a, j)| (c, (a != 0, j))).collect();
        let by_kind: HashMap<&str, &Evidence> = evidence.iter().map(|e| (e.kind.as_str(), e)).collect();
        Ok(CONTROLS
            .iter()
            .map(|c| {
                let evidence: Vec<Evidence> = c.evidence.iter().filter_map(|k| by_kind.get(k).map(|e| (*e).clone())).collect();
                // The weakest state of its evidence.
                let state = evidence.iter().map(|e| e.state).max_by_key(|s| match s {
                    State::Ok => 0,
                    State::Partial => 1,
                    State::Missing => 2,
                });
                let d = decided.get(c.id);
                SoaRow {
                    id: c.id,
                    theme: c.theme,
                    title_ja: c.ja,
                    title_en: c.en,
                    applicable: d.map(|d| d.0),
                    justification: d.map(|d| d.1.clone()).unwrap_or_default(),
                    evidence,
                    state,
                }
            })
            .collect())
    }

    /// Decides a control's applicability, with its justification (required either way).
    pub async fn set_soa(&self, p: &Principal, id: &str, u: SoaUpdate) -> Result<()> {
        self.require(p, Action::RegistersWrite).await?;
        let c = control(id).ok_or(CoreError::NotFound("control"))?;
        let j = long_text("justification", &u.justification, 2000)?;
        if j.is_empty() {
            return Err(CoreError::invalid("justification", "state why the control is (or is not) applicable"));
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        sqlx::query("DELETE FROM soa_entries WHERE control = $1").bind(c.id).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO soa_entries (control, applicable, justification, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(c.id)
            .bind(i64::from(u.applicable))
            .bind(&j)
            .bind(p.user_id)
            .bind(now.timestamp_millis())
            .execute(&mut *tx)
            .await?;
        let ev = Event::new(now, p.actor(), "soa.set").object("control", c.id).detail("applicable", u.applicable);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds an action to the risk treatment plan.
    pub async fn add_treatment(&self, p: &Principal, t: NewTreatment) -> Result<i64> {
        self.require(p, Action::RegistersWrite).await?;
        let control = match t.control.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            Some(c) => Some(control(c).ok_or_else(|| CoreError::invalid("control", format!("{c} is not a control of the catalogue")))?.id),
            None => None,
        };
        let check = match t.check_item.as_deref() {
            Some(c) => Some(long_text("check_item", c, 300)?).filter(|c| !c.is_empty()),
            None => None,
        };
        if control.is_none() && t.risk.is_none() {
            return Err(CoreError::invalid("control", "name the control or the risk the action treats"));
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        if let Some(r) = t.risk {
            let found: Option<(i64,)> = sqlx::query_as("SELECT id FROM risk_assessments WHERE id = $1").bind(r).fetch_optional(&mut *tx).await?;
            found.ok_or_else(|| CoreError::invalid("risk", "no such risk assessment"))?;
        }
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO treatment_actions (risk_id, control, action, owner, due, check_item, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(t.risk)
        .bind(control)
        .bind(t.action.as_str())
        .bind(t.owner.as_str())
        .bind(t.due.to_string())
        .bind(&check)
        .bind(p.user_id)
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await?;
        let mut ev = Event::new(now, p.actor(), "treatment.add").object("treatment", id).detail("due", t.due.to_string());
        if let Some(c) = control {
            ev = ev.detail("control", c);
        }
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Marks a treatment action done.
    pub async fn complete_treatment(&self, p: &Principal, id: i64) -> Result<()> {
        self.require(p, Action::RegistersWrite).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let n = sqlx::query("UPDATE treatment_actions SET done_at = $1, done_by = $2 WHERE id = $3 AND done_at IS NULL")
            .bind(now.timestamp_millis())
            .bind(p.user_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(CoreError::NotFound("open treatment action"));
        }
        let ev = Event::new(now, p.actor(), "treatment.done").object("treatment", id);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_treatments(&self, p: &Principal) -> Result<Vec<TreatmentRow>> {
        self.require(p, Action::RegistersRead).await?;
        let today = super::evidence::jst_date(self.clock.now());
        let rows: Vec<(i64, Option<i64>, Option<String>, String, String, String, Option<String>, Option<i64>)> = sqlx::query_as(
            "SELECT id, risk_id, control, action, owner, due, check_item, done_at FROM treatment_actions ORDER BY due, id",
        )
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, risk, control, action, owner, due, check_item, done_at)| TreatmentRow {
                overdue: done_at.is_none() && due < today,
                id,
                risk,
                control,
                action,
                owner,
                due,
                check_item,
                done_at,
            })
            .collect())
    }
}
