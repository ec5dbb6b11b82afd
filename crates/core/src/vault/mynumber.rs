//! The My Number report (MYNUM-1): for a business marked for My Number, its designated staff
//! (事務取扱担当者: the standing holders and everyone granted access) and every recorded access to
//! its data in a period, allowed or denied, read from the client's log, as a separate report.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::auth::Principal;
use crate::error::{CoreError, Result};
use crate::ledger::SearchFilter;
use crate::policy::Action;
use crate::Mamori;

#[derive(Debug, Clone, Serialize)]
pub struct MyNumberReport {
    pub business: String,
    pub client: String,
    /// Standing holders and grantees (with the grant's period), the designated staff.
    pub designated: Vec<(String, String, String)>,
    pub accesses: Vec<AccessLine>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccessLine {
    pub jst: String,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub allowed: bool,
    pub rule: String,
    pub purpose: String,
    pub field: String,
}

impl Mamori {
    pub async fn my_number_report(&self, p: &Principal, business: &str, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<MyNumberReport> {
        self.require(p, Action::VaultSchema).await?;
        let mut conn = self.db.pool.acquire().await?;
        let b = self.business(&mut conn, business).await?;
        if !b.my_number {
            return Err(CoreError::invalid("business", "not a My Number business"));
        }
        let access = self.access_list(p, business).await?;
        let mut designated: Vec<(String, String, String)> =
            access.holders.iter().map(|h| (h.login.clone(), h.name.clone(), "常設 (standing)".to_owned())).collect();
        for g in &access.grants {
            let (_, s) = mamori_ledger::event::timestamps(DateTime::from_timestamp_millis(g.starts_at).unwrap_or_default());
            let (_, e) = mamori_ledger::event::timestamps(DateTime::from_timestamp_millis(g.ends_at).unwrap_or_default());
            designated.push((g.login.clone(), g.name.clone(), format!("{} {s} – {e}", g.ops.join(","))));
        }
        drop(conn);
        let rows = self
            .ledger
            .search(&SearchFilter {
                client: Some(b.client.clone()),
                action: Some("data.%".into()),
                business: Some(b.code.clone()),
                from,
                to,
                limit: Some(100_000),
                ..Default::default()
            })
            .await?;
        let accesses = rows
            .into_iter()
            .map(|r| AccessLine {
                jst: r.event.jst.clone(),
                actor: r.actor,
                action: r.action,
                object: r.object,
                allowed: r.event.outcome.allowed,
                rule: r.event.outcome.rule.clone().unwrap_or_default(),
                purpose: r.event.why.as_ref().and_then(|w| w.purpose.clone()).unwrap_or_default(),
                field: r.event.detail.get("field").cloned().unwrap_or_default(),
            })
            .collect();
        Ok(MyNumberReport { business: b.code, client: b.client, designated, accesses })
    }
}

/// The report as CSV (UTF-8 with BOM, for Excel).
pub fn report_csv(r: &MyNumberReport) -> Result<Vec<u8>> {
    let mut rows: Vec<Vec<String>> = vec![vec!["特定個人情報 取扱状況報告".into(), r.business.clone(), r.client.clone()], vec!["事務取扱担当者".into(), "氏名".into(), "権限".into()]];
    rows.extend(r.designated.iter().map(|(login, name, how)| vec![login.clone(), name.clone(), how.clone()]));
    rows.push(vec![String::new()]);
    rows.push(["日時 (JST)", "操作者", "操作", "対象", "結果", "規則", "目的", "項目"].map(String::from).to_vec());
    rows.extend(r.accesses.iter().map(|a| {
        let allowed = if a.allowed { "許可" } else { "拒否" };
        [&a.jst, &a.actor, &a.action, &a.object, allowed, &a.rule, &a.purpose, &a.field].map(String::from).to_vec()
    }));
    crate::directory::encode_csv(rows)
}
