//! The audit pack (issue 6 §12): for a period, one export of the registers, the statement of
//! applicability with its live evidence, the inspections, audits and incidents, readable by an
//! auditor without access to mamori: a PDF in Japanese and the same rows as Excel CSV. The
//! export itself is recorded in the ledger.

use mamori_ledger::Event;
use serde::Serialize;

use super::evidence::{jst_text, Period};
use crate::auth::Principal;
use crate::error::Result;
use crate::policy::Action;
use crate::Mamori;

/// One row of the pack: section, item, state, detail.
#[derive(Debug, Clone, Serialize)]
pub struct PackRow {
    pub section: String,
    pub item: String,
    pub state: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditPack {
    pub centre: String,
    pub period: String,
    pub generated_at: String,
    pub rows: Vec<PackRow>,
}

fn row(section: &str, item: impl Into<String>, state: impl Into<String>, detail: impl Into<String>) -> PackRow {
    PackRow { section: section.into(), item: item.into(), state: state.into(), detail: detail.into() }
}

fn yn(b: bool) -> &'static str {
    if b { "有" } else { "無" }
}

fn ev_state(s: super::evidence::State) -> &'static str {
    match s {
        super::evidence::State::Ok => "充足",
        super::evidence::State::Partial => "一部不足",
        super::evidence::State::Missing => "記録なし",
    }
}

impl Mamori {
    /// Builds the pack for `period` (and records that it was exported).
    pub async fn audit_pack(&self, p: &Principal, period: Period) -> Result<AuditPack> {
        self.require(p, Action::RegistersRead).await?;
        // An export (SECURITY-BASELINE): a fresh password check in the console.
        self.require_recent_auth(p)?;
        let now = self.clock.now();
        let mut rows = Vec::new();

        // Each kind of evidence and the staff's flags once, for every section that shows them.
        let flags = self.people_flags_all().await?;
        let evidence = self.evidence_all(period, &flags).await?;
        const S_EVIDENCE: &str = "証跡の状態";
        for e in &evidence {
            rows.push(row(S_EVIDENCE, e.kind.clone(), ev_state(e.state), e.ja.clone()));
        }
        const S_SOA: &str = "適用宣言書";
        for c in self.soa_rows(&evidence).await? {
            let applicable = match c.applicable {
                Some(true) => "適用",
                Some(false) => "適用除外",
                None => "未判定",
            };
            let evidence = c.evidence.iter().map(|e| format!("[{}] {}", ev_state(e.state), e.ja)).collect::<Vec<_>>().join(" / ");
            let detail = if c.justification.is_empty() { evidence } else { format!("{}｜{}", c.justification, evidence) };
            rows.push(row(S_SOA, format!("{} {}", c.id, c.title_ja), applicable, detail));
        }
        const S_ASSETS: &str = "情報資産台帳";
        for a in self.list_assets(p).await? {
            rows.push(row(
                S_ASSETS,
                format!("{} {}", a.department, a.name),
                format!("資産価値 {}", a.value),
                format!(
                    "管理責任者 {}、保管場所 {}、媒体 {}、C{} I{} A{}、個人情報 {}、マイナンバー {}、要配慮 {}、保存期間 {}、廃棄方法 {}",
                    a.owner,
                    a.zone.as_deref().unwrap_or("—"),
                    a.medium,
                    a.c,
                    a.i,
                    a.a,
                    yn(a.personal),
                    yn(a.my_number),
                    yn(a.sensitive),
                    a.retention,
                    a.disposal
                ),
            ));
        }
        const S_RISK: &str = "リスク評価";
        for r in self.list_risks(p).await? {
            rows.push(row(
                S_RISK,
                format!("{} / {}", r.asset, r.threat),
                format!("{} → 残留 {}", r.value, r.residual_value),
                format!("脆弱性 {}、方式 {}、管理策 {}、受容 {}", r.vulnerability, r.method, r.controls, r.accepted_by.as_deref().unwrap_or("未")),
            ));
        }
        const S_PLAN: &str = "リスク対応計画書";
        for t in self.list_treatments(p).await? {
            let state = if t.done_at.is_some() { "完了" } else if t.overdue { "期限超過" } else { "実施中" };
            rows.push(row(S_PLAN, t.action, state, format!("管理策 {}、責任者 {}、期限 {}", t.control.as_deref().unwrap_or("—"), t.owner, t.due)));
        }
        const S_OBJ: &str = "情報セキュリティ目標";
        for o in self.list_objectives(p).await? {
            rows.push(row(S_OBJ, o.title, o.target, format!("指標 {}、責任者 {}", o.measure, o.owner)));
        }
        const S_TASKS: &str = "自主点検・月次レビュー・棚卸し";
        let (f, t) = (period.from.timestamp_millis(), period.to.timestamp_millis());
        for task in self.list_tasks(p, false).await?.into_iter().filter(|x| x.due_at > f && x.due_at <= t) {
            let kind = match task.kind {
                super::cycle::TaskKind::Inspection => "自主点検",
                super::cycle::TaskKind::ObjectiveReview => "目標レビュー",
                super::cycle::TaskKind::Inventory => "棚卸し",
            };
            let state = match (task.state, task.overdue) {
                ("signed", _) => "事務局確認済",
                (_, true) => "期限超過",
                ("answered", _) => "確認待ち",
                _ => "未回答",
            };
            rows.push(row(
                S_TASKS,
                format!("{kind} {} {}", task.period, task.scope),
                state,
                format!(
                    "回答 {} {}、確認 {} {}、不適合 {}件",
                    task.answered_by.as_deref().unwrap_or("—"),
                    task.answered_at.map(jst_text).unwrap_or_default(),
                    task.signed_by.as_deref().unwrap_or("—"),
                    task.signed_at.map(jst_text).unwrap_or_default(),
                    task.findings
                ),
            ));
        }
        const S_AUDIT: &str = "監査";
        for a in self.list_audits(p).await? {
            rows.push(row(S_AUDIT, format!("{} ({})", a.title, a.kind), a.done_on.clone().map_or("計画".into(), |d| format!("実施 {d}")), format!("対象 {}、監査員 {}、{}", a.scope, a.auditor, a.summary)));
            for fi in a.findings {
                let st = if fi.closed_at.is_some() { "完了" } else if fi.overdue { "期限超過" } else { "対応中" };
                rows.push(row(S_AUDIT, format!("  指摘 {} ({})", fi.id, fi.kind), st, format!("{}｜是正処置 {}、責任者 {}、期限 {}", fi.text, fi.action, fi.owner, fi.due.unwrap_or_default())));
            }
        }
        for m in self.list_management_reviews(p).await? {
            rows.push(row(S_AUDIT, format!("マネジメントレビュー {}", m.held_on), "記録", format!("出席 {}｜インプット {}｜決定 {}", m.attendees, m.inputs, m.decisions)));
        }
        const S_INC: &str = "インシデント";
        for i in self.list_incidents(p).await?.into_iter().filter(|i| i.known_at >= f && i.known_at < t) {
            rows.push(row(S_INC, format!("#{} {}", i.id, i.title), i.state.clone(), format!("認知 {}、{}", jst_text(i.known_at), i.summary)));
        }
        const S_VENDOR: &str = "委託先";
        for v in self.list_vendors(p).await? {
            let st = if v.cert_expired { "認証期限切れ" } else if v.audit_due { "監査期限超過" } else { "有効" };
            rows.push(row(S_VENDOR, format!("{} {}", v.code, v.name), st, format!("{} {}（有効期限 {}）、NDA {}、最終監査 {}、契約 {}件", v.cert_kind, v.cert_number, v.cert_expiry, yn(v.nda), v.last_audit.as_deref().unwrap_or("—"), v.contracts.len())));
        }
        const S_PEOPLE: &str = "従業者の誓約・教育";
        for f in flags {
            let st = if f.flagged { "要対応" } else { "充足" };
            rows.push(row(S_PEOPLE, format!("{} {}", f.employee_no, f.name), st, format!("誓約書 {}、未修了の教育 {}", f.last_pledge_at.map(jst_text).unwrap_or_else(|| "未提出".into()), if f.courses_due.is_empty() { "なし".into() } else { f.courses_due.join("、") })));
        }
        const S_DISPOSAL: &str = "廃棄記録";
        for d in self.list_disposals(p).await? {
            rows.push(row(S_DISPOSAL, d.what, d.method, format!("媒体 {}、業者 {}、証明書 {}、立会 {}、実施日 {}、承認 {}", d.medium.as_deref().unwrap_or("—"), d.contractor, d.certificate, d.witness, d.disposed_on, d.approved_by.as_deref().unwrap_or("—"))));
        }
        const S_DOCS: &str = "規程類";
        for d in self.list_documents(p).await? {
            rows.push(row(S_DOCS, format!("{} {}", d.code, d.title), if d.overdue { "見直し期限超過" } else { "有効" }, format!("版 {}、承認 {}", d.version.map(|v| format!("v{v}")).unwrap_or_else(|| "—".into()), d.approved_by.unwrap_or_default())));
        }
        let ev = Event::new(now, p.actor(), "audit_pack.export").detail("period", period.label()).detail("rows", rows.len());
        self.ledger.append(ev).await?;
        Ok(AuditPack {
            centre: self.settings.centre_name.clone(),
            period: period.label(),
            generated_at: jst_text(now.timestamp_millis()),
            rows,
        })
    }
}

impl AuditPack {
    /// Excel CSV (UTF-8 with BOM): 区分, 項目, 状態, 内容.
    pub fn csv(&self) -> Result<Vec<u8>> {
        let head = vec![vec!["区分".to_owned(), "項目".into(), "状態".into(), "内容".into()]];
        let rows = self.rows.iter().map(|r| vec![r.section.clone(), r.item.clone(), r.state.clone(), r.detail.clone()]);
        crate::directory::encode_csv(head.into_iter().chain(rows))
    }

    /// The pack as a Japanese PDF.
    pub fn pdf(&self) -> Vec<u8> {
        let mut lines = vec![format!("対象期間: {}", self.period), format!("作成日時: {}（{}）", self.generated_at, self.centre), String::new()];
        let mut section = "";
        for r in &self.rows {
            if r.section != section {
                section = &r.section;
                lines.push(format!("# {section}"));
            }
            lines.push(format!("・{}【{}】 {}", r.item, r.state, r.detail));
        }
        crate::pdf::document_pdf("ISMS・プライバシーマーク 監査パック", &lines)
    }
}
