//! Live evidence (MGMT-8, issue 6 §4): what mamori itself recorded, computed for a period from
//! the ledger and the registers — never a file someone uploaded. Each kind answers "is this
//! control working, and where is the gap?" in words an auditor reads, e.g. "entry logs
//! reviewed: 10 of 11 months (missing: 2026-10)".

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use serde::Serialize;

use super::people::PersonFlags;
use crate::error::Result;
use crate::ledger::CENTRE_LOG;
use crate::Mamori;

/// Every evidence kind the catalogue may name.
pub const KINDS: &[&str] = &[
    "entry_log_review",
    "data_log_review",
    "access_holders",
    "grant_expiry",
    "leaver_revocation",
    "ledger_verification",
    "backups",
    "door_alarms",
    "incidents",
    "asset_inventory",
    "risk_assessment",
    "policy_documents",
    "self_inspections",
    "objectives",
    "pledges",
    "training",
    "drills",
    "vendors",
    "disposals",
    "deletion_certificates",
    "copy_control",
    "media_handover",
    "internal_audits",
    "encryption",
    "terminals",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Everything the period asks for is there.
    Ok,
    /// Some of it is there; the summary names the gap.
    Partial,
    /// Nothing recorded.
    Missing,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Partial => "partial",
            State::Missing => "missing",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub kind: String,
    pub state: State,
    /// The summary in Japanese and in English.
    pub ja: String,
    pub en: String,
}

/// A period [from, to) in UTC; `to` is capped at now when evidence is computed.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

pub(crate) use crate::doors::rules::jst_offset as jst;

/// A time in ms as Japan time `YYYY-MM-DD HH:MM`.
pub fn jst_text(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map(|d| d.with_timezone(&jst()).format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default()
}

/// Today's date in Japan, `YYYY-MM-DD`.
pub fn jst_date(at: DateTime<Utc>) -> String {
    at.with_timezone(&jst()).format("%Y-%m-%d").to_string()
}

impl Period {
    /// The Japanese fiscal year (April to March) that contains `at`.
    pub fn fiscal_year(at: DateTime<Utc>) -> Period {
        let local = at.with_timezone(&jst());
        let y = if local.month() >= 4 { local.year() } else { local.year() - 1 };
        let start = |y: i32| jst().with_ymd_and_hms(y, 4, 1, 0, 0, 0).single().map(|d| d.with_timezone(&Utc)).unwrap_or(at);
        Period { from: start(y), to: start(y + 1) }
    }
    /// Parses `YYYY-MM-DD` dates (Japan days) as [from, to].
    pub fn parse(from: &str, to: &str) -> Result<Period> {
        let f = crate::review::ledger_time(from).ok_or_else(|| crate::CoreError::invalid("from", "a date YYYY-MM-DD"))?;
        let t = crate::review::ledger_time(to).ok_or_else(|| crate::CoreError::invalid("to", "a date YYYY-MM-DD"))? + Duration::days(1);
        if t <= f {
            return Err(crate::CoreError::invalid("to", "must not be before from"));
        }
        Ok(Period { from: f, to: t })
    }
    pub fn label(&self) -> String {
        let f = self.from.with_timezone(&jst()).format("%Y-%m-%d");
        let t = (self.to - Duration::milliseconds(1)).with_timezone(&jst()).format("%Y-%m-%d");
        format!("{f} – {t}")
    }
}

/// The months (Japan time) of a period that have ended by `now`: (label, start, end) in ms.
pub fn complete_months(p: Period, now: DateTime<Utc>) -> Vec<(String, i64, i64)> {
    let mut out = Vec::new();
    let local = p.from.with_timezone(&jst());
    let (mut y, mut m) = (local.year(), local.month());
    while let Some(start) = jst().with_ymd_and_hms(y, m, 1, 0, 0, 0).single() {
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        let Some(end) = jst().with_ymd_and_hms(ny, nm, 1, 0, 0, 0).single() else { break };
        let (s, e) = (start.with_timezone(&Utc), end.with_timezone(&Utc));
        if e > p.to || e > now {
            break;
        }
        if s >= p.from {
            out.push((format!("{y:04}-{m:02}"), s.timestamp_millis(), e.timestamp_millis()));
        }
        (y, m) = (ny, nm);
    }
    out
}

/// Whether the union of `ranges` covers [s, e).
fn covered(ranges: &[(i64, i64)], s: i64, e: i64) -> bool {
    let mut rs: Vec<(i64, i64)> = ranges.iter().filter(|(a, b)| *b > s && *a < e).copied().collect();
    rs.sort_unstable();
    let mut at = s;
    for (a, b) in rs {
        if a > at {
            return false;
        }
        at = at.max(b);
        if at >= e {
            return true;
        }
    }
    at >= e
}

fn ev(kind: &str, state: State, ja: String, en: String) -> Evidence {
    Evidence { kind: kind.into(), state, ja, en }
}

fn state_of(done: i64, total: i64) -> State {
    if total > 0 && done >= total {
        State::Ok
    } else if done > 0 {
        State::Partial
    } else {
        State::Missing
    }
}

/// Pledges or training: how many of the staff owe nothing.
fn people_evidence(kind: &str, flags: &[PersonFlags]) -> Evidence {
    let total = flags.len() as i64;
    let bad = flags.iter().filter(|f| if kind == "pledges" { f.pledge_due } else { f.training_due }).count() as i64;
    let (ja, en) = if kind == "pledges" { ("誓約書が有効な従業者", "staff with a valid pledge") } else { ("必須教育を修了している従業者", "staff up to date with required training") };
    ev(
        kind,
        if total == 0 { State::Missing } else if bad == 0 { State::Ok } else { State::Partial },
        format!("{ja}: {}/{total}名", total - bad),
        format!("{en}: {} of {total}", total - bad),
    )
}

impl Mamori {
    async fn count_events(&self, prefix: &str, from: i64, to: i64) -> Result<i64> {
        let (start, end) = self.ledger.centre_period(from, to).await?;
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM ledger_entries WHERE log_id = $1 AND idx >= $2 AND idx < $3 AND action LIKE $4")
            .bind(CENTRE_LOG)
            .bind(start)
            .bind(end)
            .bind(format!("{prefix}%"))
            .fetch_one(&self.db.pool)
            .await?;
        Ok(n)
    }

    async fn last_event(&self, action: &str, from: i64, to: i64) -> Result<Option<mamori_ledger::Event>> {
        let (start, end) = self.ledger.centre_period(from, to).await?;
        let row: Option<(Vec<u8>,)> = sqlx::query_as(
            "SELECT entry FROM ledger_entries WHERE log_id = $1 AND idx >= $2 AND idx < $3 AND action = $4 ORDER BY idx DESC LIMIT 1",
        )
        .bind(CENTRE_LOG)
        .bind(start)
        .bind(end)
        .bind(action)
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.and_then(|(b,)| mamori_ledger::Event::decode(&b).ok()))
    }

    async fn scalar(&self, sql: &str, binds: &[i64]) -> Result<i64> {
        let mut q = sqlx::query_as::<_, (i64,)>(sql);
        for b in binds {
            q = q.bind(*b);
        }
        Ok(q.fetch_one(&self.db.pool).await?.0)
    }

    /// Every kind of evidence for a period, in `KINDS` order, each computed once; `flags` are
    /// the staff's pledge and training flags (`people_flags_all`), which the caller may need too.
    pub async fn evidence_all(&self, p: Period, flags: &[PersonFlags]) -> Result<Vec<Evidence>> {
        let mut out = Vec::with_capacity(KINDS.len());
        for k in KINDS {
            out.push(match *k {
                "pledges" | "training" => people_evidence(k, flags),
                _ => self.evidence_of(k, p).await?,
            });
        }
        Ok(out)
    }

    /// The evidence of one kind (other than the people's) for a period.
    async fn evidence_of(&self, kind: &str, p: Period) -> Result<Evidence> {
        let now = self.clock.now();
        // Up to now, inclusive of an event recorded at this very instant.
        let (f, t) = (p.from.timestamp_millis(), p.to.min(now + Duration::milliseconds(1)).timestamp_millis());
        let n = now.timestamp_millis();
        Ok(match kind {
            "entry_log_review" | "data_log_review" => {
                let k = if kind == "entry_log_review" { "entry" } else { "data" };
                let ranges: Vec<(i64, i64)> =
                    sqlx::query_as("SELECT range_from, range_to FROM ledger_reviews WHERE kind = $1").bind(k).fetch_all(&self.db.pool).await?;
                let months = complete_months(p, now);
                let missing: Vec<&str> = months.iter().filter(|(_, s, e)| !covered(&ranges, *s, *e)).map(|(l, _, _)| l.as_str()).collect();
                let done = months.len() - missing.len();
                let (what_ja, what_en) = if k == "entry" { ("入退室記録の確認", "entry logs reviewed") } else { ("アクセスログの確認", "data-access logs reviewed") };
                let gap = |sep: &str, none: &str| if missing.is_empty() { none.to_owned() } else { missing.join(sep) };
                let st = if months.is_empty() { State::Missing } else { state_of(done as i64, months.len() as i64) };
                ev(
                    kind,
                    st,
                    format!("{what_ja}: {done}/{}か月（未確認: {}）", months.len(), gap("、", "なし")),
                    format!("{what_en}: {done} of {} months (missing: {})", months.len(), gap(", ", "none")),
                )
            }
            "access_holders" => {
                let b = self.scalar("SELECT COUNT(*) FROM businesses", &[]).await?;
                let h = self.scalar("SELECT COUNT(*) FROM vault_holders", &[]).await?;
                let without = self.scalar("SELECT COUNT(*) FROM businesses b WHERE NOT EXISTS (SELECT 1 FROM vault_holders h WHERE h.business_id = b.id)", &[]).await?;
                let g = self
                    .scalar("SELECT COUNT(*) FROM vault_grants WHERE revoked_at IS NULL AND starts_at <= $1 AND ends_at > $1", &[n])
                    .await?;
                let st = if b == 0 { State::Missing } else if without == 0 { State::Ok } else { State::Partial };
                ev(
                    kind,
                    st,
                    format!("業務 {b}件、常任のアクセス権限者 {h}名（権限者のいない業務 {without}件）、有効な期限付き権限 {g}件"),
                    format!("{b} businesses, {h} standing holders ({without} businesses without one), {g} time-limited grants in force"),
                )
            }
            "grant_expiry" => {
                let total = self.scalar("SELECT COUNT(*) FROM vault_grants WHERE created_at >= $1 AND created_at < $2", &[f, t]).await?;
                let ended = self
                    .scalar("SELECT COUNT(*) FROM vault_grants WHERE created_at >= $1 AND created_at < $2 AND (ends_at <= $3 OR revoked_at IS NOT NULL)", &[f, t, n])
                    .await?;
                let revoked =
                    self.scalar("SELECT COUNT(*) FROM vault_grants WHERE created_at >= $1 AND created_at < $2 AND revoked_at IS NOT NULL", &[f, t]).await?;
                ev(
                    kind,
                    if total > 0 { State::Ok } else { State::Missing },
                    format!("期限付き権限 {total}件（すべて期限付き）、終了 {ended}件（うち取消 {revoked}件）"),
                    format!("{total} time-limited grants (all with an end), {ended} ended ({revoked} revoked)"),
                )
            }
            "leaver_revocation" => {
                let left = self.scalar("SELECT COUNT(*) FROM people WHERE status = 'left'", &[]).await?;
                let open = self
                    .scalar(
                        "SELECT COUNT(DISTINCT p.id) FROM people p JOIN credentials c ON c.person_id = p.id WHERE p.status = 'left' AND c.status = 'active'",
                        &[],
                    )
                    .await?;
                let revs = self.count_events("credential.revoke_all", f, t).await?;
                let st = if open > 0 { State::Partial } else { State::Ok };
                ev(
                    kind,
                    st,
                    format!("退職者 {left}名、有効な認証手段が残る退職者 {open}名、期間中の一括失効 {revs}件"),
                    format!("{left} leavers, {open} with a credential still active, {revs} bulk revocations in the period"),
                )
            }
            "ledger_verification" => {
                let c = self.count_events("ledger.verify", f, t).await?;
                let last = self.last_event("ledger.verify", f, t).await?;
                match last {
                    None => ev(kind, State::Missing, "台帳の検証記録なし".into(), "no ledger verification recorded".into()),
                    Some(e) => {
                        let ok = e.outcome.allowed;
                        ev(
                            kind,
                            if ok { State::Ok } else { State::Partial },
                            format!("台帳の検証 {c}回、最新 {}: {}", e.jst, if ok { "改ざんなし" } else { "失敗" }),
                            format!("ledger verified {c} times, last {}: {}", e.ts, if ok { "intact" } else { "FAILED" }),
                        )
                    }
                }
            }
            "backups" => {
                let c = self.count_events("backup", f, t).await?;
                let (start, end) = self.ledger.centre_period(f, t).await?;
                let last: Option<(i64,)> = sqlx::query_as(
                    "SELECT ts FROM ledger_entries WHERE log_id = $1 AND idx >= $2 AND idx < $3 AND action LIKE 'backup%' ORDER BY idx DESC LIMIT 1",
                )
                .bind(CENTRE_LOG)
                .bind(start)
                .bind(end)
                .fetch_optional(&self.db.pool)
                .await?;
                match last {
                    None => ev(kind, State::Missing, "バックアップの記録なし".into(), "no backup recorded".into()),
                    Some((at,)) => {
                        let fresh = t - at <= Duration::days(2).num_milliseconds();
                        let when = jst_text(at);
                        ev(
                            kind,
                            if fresh { State::Ok } else { State::Partial },
                            format!("バックアップ {c}回、最新 {when}"),
                            format!("{c} backups, last {when}"),
                        )
                    }
                }
            }
            "door_alarms" => {
                let raised = self.scalar("SELECT COUNT(*) FROM alarms WHERE raised_at >= $1 AND raised_at < $2", &[f, t]).await?;
                let open = self.scalar("SELECT COUNT(*) FROM alarms WHERE raised_at >= $1 AND raised_at < $2 AND acked_at IS NULL", &[f, t]).await?;
                ev(
                    kind,
                    if open == 0 { State::Ok } else { State::Partial },
                    format!("ドア警報 {raised}件、未確認 {open}件（確認はコメント付き）"),
                    format!("{raised} door alarms, {open} not acknowledged (acknowledged with a comment)"),
                )
            }
            "incidents" => {
                let total = self.scalar("SELECT COUNT(*) FROM incidents WHERE known_at >= $1 AND known_at < $2", &[f, t]).await?;
                let open = self.scalar("SELECT COUNT(*) FROM incidents WHERE known_at >= $1 AND known_at < $2 AND state = 'open'", &[f, t]).await?;
                ev(
                    kind,
                    if open == 0 { State::Ok } else { State::Partial },
                    format!("インシデント {total}件、未評価 {open}件"),
                    format!("{total} incidents, {open} not yet triaged"),
                )
            }
            "asset_inventory" => {
                let assets = self.scalar("SELECT COUNT(*) FROM assets", &[]).await?;
                let depts = self.scalar("SELECT COUNT(*) FROM departments", &[]).await?;
                let signed = self
                    .scalar("SELECT COUNT(*) FROM tasks WHERE kind = 'inventory' AND due_at > $1 AND due_at <= $2 AND signed_at IS NOT NULL", &[f, p.to.timestamp_millis()])
                    .await?;
                // A register with entries but re-inventories outstanding has gaps, not nothing.
                let st = if assets == 0 { State::Missing } else if signed >= depts.max(1) { State::Ok } else { State::Partial };
                ev(
                    kind,
                    st,
                    format!("情報資産 {assets}件、棚卸し完了 {signed}/{depts}部門"),
                    format!("{assets} assets, re-inventory signed off by {signed} of {depts} departments"),
                )
            }
            "risk_assessment" => {
                let a = self.scalar("SELECT COUNT(*) FROM risk_assessments", &[]).await?;
                let acc = self.scalar("SELECT COUNT(*) FROM risk_assessments WHERE accepted_by IS NOT NULL", &[]).await?;
                let plan = self.scalar("SELECT COUNT(*) FROM treatment_actions", &[]).await?;
                let done = self.scalar("SELECT COUNT(*) FROM treatment_actions WHERE done_at IS NOT NULL", &[]).await?;
                ev(
                    kind,
                    if a == 0 { State::Missing } else { State::Ok },
                    format!("リスク評価 {a}件（残留リスク受容 {acc}件）、リスク対応計画 {plan}件（完了 {done}件）"),
                    format!("{a} risk assessments ({acc} residual risks accepted), {plan} treatment actions ({done} done)"),
                )
            }
            "policy_documents" => {
                let year = Duration::days(365).num_milliseconds();
                let docs = self.scalar("SELECT COUNT(*) FROM policy_documents", &[]).await?;
                let current = self
                    .scalar(
                        "SELECT COUNT(*) FROM policy_documents d WHERE EXISTS (SELECT 1 FROM policy_versions v WHERE v.document_id = d.id AND v.approved_at >= $1)",
                        &[n - year],
                    )
                    .await?;
                ev(
                    kind,
                    if docs == 0 { State::Missing } else { state_of(current, docs) },
                    format!("規程類 {docs}件、1年以内に承認・見直し済み {current}件"),
                    format!("{docs} policy documents, {current} approved or reviewed within a year"),
                )
            }
            "self_inspections" | "objectives" => {
                let k = if kind == "self_inspections" { "inspection" } else { "objective_review" };
                let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
                    "SELECT scope, period, signed_at FROM tasks WHERE kind = $1 AND due_at > $2 AND due_at <= $3 AND due_at <= $4 ORDER BY period, scope",
                )
                .bind(k)
                .bind(f)
                .bind(p.to.timestamp_millis())
                .bind(n)
                .fetch_all(&self.db.pool)
                .await?;
                let total = rows.len() as i64;
                let missing: Vec<String> = rows.iter().filter(|r| r.2.is_none()).map(|r| if r.0 == "*" { r.1.clone() } else { format!("{} {}", r.0, r.1) }).collect();
                let done = total - missing.len() as i64;
                let (ja, en) = if k == "inspection" { ("自主点検の事務局確認", "self-inspections signed off") } else { ("目標の月次レビュー確認", "objective reviews signed off") };
                let gap = |sep: &str, none: &str| if missing.is_empty() { none.to_owned() } else { missing.join(sep) };
                ev(
                    kind,
                    state_of(done, total),
                    format!("{ja}: {done}/{total}件（未了: {}）", gap("、", "なし")),
                    format!("{en}: {done} of {total} (outstanding: {})", gap(", ", "none")),
                )
            }
            "drills" => {
                let counts: Vec<(String, i64)> =
                    sqlx::query_as("SELECT kind, COUNT(*) FROM drills WHERE held_at >= $1 AND held_at < $2 GROUP BY kind").bind(f).bind(t).fetch_all(&self.db.pool).await?;
                let by = |k: &str| counts.iter().find(|(x, _)| x == k).map_or(0, |c| c.1);
                let (ph, ex, su) = (by("phishing"), by("exercise"), by("survey"));
                ev(
                    kind,
                    state_of(i64::from(ph > 0) + i64::from(su > 0), 2),
                    format!("標的型メール訓練 {ph}件、演習 {ex}件、意識調査 {su}件"),
                    format!("{ph} phishing-drill results, {ex} exercises, {su} awareness-survey answers"),
                )
            }
            "vendors" => {
                let today = now.with_timezone(&jst()).format("%Y-%m-%d").to_string();
                let v = self.scalar("SELECT COUNT(*) FROM vendors", &[]).await?;
                let (expired,): (i64,) =
                    sqlx::query_as("SELECT COUNT(*) FROM vendors WHERE cert_expiry < $1").bind(&today).fetch_one(&self.db.pool).await?;
                let year_ago = (now - Duration::days(365)).with_timezone(&jst()).format("%Y-%m-%d").to_string();
                let (audited,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM vendors v WHERE EXISTS (SELECT 1 FROM vendor_audits a WHERE a.vendor_id = v.id AND a.passed = 1 AND a.audited_on >= $1)",
                )
                .bind(&year_ago)
                .fetch_one(&self.db.pool)
                .await?;
                let st = if v == 0 { State::Missing } else if expired == 0 && audited == v { State::Ok } else { State::Partial };
                ev(
                    kind,
                    st,
                    format!("委託先 {v}社、認証期限切れ {expired}社、1年以内の監査済み {audited}社"),
                    format!("{v} vendors, {expired} with an expired certificate, {audited} audited within a year"),
                )
            }
            "disposals" => {
                let d = self.scalar("SELECT COUNT(*) FROM disposals WHERE created_at >= $1 AND created_at < $2", &[f, t]).await?;
                let pending = self
                    .scalar("SELECT COUNT(*) FROM disposals WHERE created_at >= $1 AND created_at < $2 AND contractor <> '' AND approved_at IS NULL", &[f, t])
                    .await?;
                ev(
                    kind,
                    if d == 0 { State::Missing } else if pending == 0 { State::Ok } else { State::Partial },
                    format!("廃棄記録 {d}件、委託廃棄の承認待ち {pending}件"),
                    format!("{d} disposal records, {pending} outsourced disposals awaiting approval"),
                )
            }
            "deletion_certificates" => {
                let c = self.scalar("SELECT COUNT(*) FROM deletion_certificates WHERE created_at >= $1 AND created_at < $2", &[f, t]).await?;
                ev(
                    kind,
                    if c > 0 { State::Ok } else { State::Missing },
                    format!("データ削除証明書 {c}件（署名付き、検証可能）"),
                    format!("{c} signed data deletion certificates"),
                )
            }
            "copy_control" => {
                let req = self.scalar("SELECT COUNT(*) FROM vault_copies WHERE requested_at >= $1 AND requested_at < $2", &[f, t]).await?;
                let used_unapproved = self
                    .scalar("SELECT COUNT(*) FROM vault_copies WHERE requested_at >= $1 AND requested_at < $2 AND used_at IS NOT NULL AND approved_at IS NULL", &[f, t])
                    .await?;
                let open = self
                    .scalar(
                        "SELECT COUNT(*) FROM vault_copies WHERE requested_at >= $1 AND requested_at < $2 AND used_at IS NOT NULL AND destroyed_at IS NULL AND expires_at <= $3",
                        &[f, t, n],
                    )
                    .await?;
                let denied = self.count_events("access.denied", f, t).await?;
                ev(
                    kind,
                    if used_unapproved == 0 && open == 0 { State::Ok } else { State::Partial },
                    format!("複製・印刷等の申請 {req}件（事前承認なしの使用 {used_unapproved}件、期限切れ未廃棄 {open}件）、拒否されたアクセス {denied}件"),
                    format!("{req} copy/print requests ({used_unapproved} used without approval, {open} past expiry not destroyed), {denied} denied accesses"),
                )
            }
            "media_handover" => {
                let c = self.scalar("SELECT COUNT(*) FROM media_handovers WHERE at >= $1 AND at < $2", &[f, t]).await?;
                let unsigned =
                    self.scalar("SELECT COUNT(*) FROM media_handovers WHERE at >= $1 AND at < $2 AND (signed_by IS NULL OR signed_by = '')", &[f, t]).await?;
                ev(
                    kind,
                    if c == 0 { State::Missing } else if unsigned == 0 { State::Ok } else { State::Partial },
                    format!("媒体の授受記録 {c}件、受領署名なし {unsigned}件"),
                    format!("{c} media handovers, {unsigned} without the receiver's signature"),
                )
            }
            "internal_audits" => {
                let fs = p.from.with_timezone(&jst()).format("%Y-%m-%d").to_string();
                let ts = p.to.with_timezone(&jst()).format("%Y-%m-%d").to_string();
                let (done,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audits WHERE done_on >= $1 AND done_on < $2")
                    .bind(&fs)
                    .bind(&ts)
                    .fetch_one(&self.db.pool)
                    .await?;
                let open = self.scalar("SELECT COUNT(*) FROM findings WHERE kind = 'nonconformity' AND closed_at IS NULL", &[]).await?;
                let (mr,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM management_reviews WHERE held_on >= $1 AND held_on < $2")
                    .bind(&fs)
                    .bind(&ts)
                    .fetch_one(&self.db.pool)
                    .await?;
                ev(
                    kind,
                    if done == 0 { State::Missing } else if open == 0 && mr > 0 { State::Ok } else { State::Partial },
                    format!("実施した監査 {done}件、未完了の是正処置 {open}件、マネジメントレビュー {mr}回"),
                    format!("{done} audits done, {open} corrective actions open, {mr} management reviews"),
                )
            }
            "encryption" => {
                let keys = self.scalar("SELECT COUNT(*) FROM vault_keys WHERE destroyed_at IS NULL", &[]).await?;
                let rot = self.count_events("vault.kek_rotate", f, t).await? + self.count_events("vault.dek_rotate", f, t).await?;
                ev(
                    kind,
                    if keys > 0 { State::Ok } else { State::Missing },
                    format!("業務ごとのデータ鍵 {keys}本（鍵暗号化鍵で保護）、期間中の鍵更新 {rot}回"),
                    format!("{keys} per-business data keys (wrapped by the KEK), {rot} key rotations in the period"),
                )
            }
            "terminals" => {
                let act = self.scalar("SELECT COUNT(*) FROM terminals WHERE revoked_at IS NULL", &[]).await?;
                let rev = self.scalar("SELECT COUNT(*) FROM terminals WHERE revoked_at IS NOT NULL", &[]).await?;
                ev(
                    kind,
                    if act > 0 { State::Ok } else { State::Missing },
                    format!("登録端末 {act}台（失効 {rev}台）"),
                    format!("{act} registered terminals ({rev} revoked)"),
                )
            }
            other => return Err(crate::CoreError::invalid("evidence", format!("unknown evidence kind {other}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_coverage() {
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        let p = Period::fiscal_year(now);
        let m = complete_months(p, now);
        assert_eq!(m.len(), 7, "April to October have ended");
        assert_eq!(m[0].0, "2026-04");
        assert_eq!(m[6].0, "2026-10");
        let (s, e) = (m[0].1, m[0].2);
        assert!(covered(&[(s - 5, s + 10), (s + 10, e)], s, e));
        assert!(!covered(&[(s - 5, s + 10), (s + 11, e)], s, e));
        assert!(!covered(&[], s, e));
    }
}
