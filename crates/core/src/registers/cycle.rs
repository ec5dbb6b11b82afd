//! The monthly cycle (MGMT-3, MGMT-5, MGMT-6): information security objectives reviewed every
//! month; a self-inspection checklist (自主点検) per department every month whose items are the
//! check items of the risk treatment plan; a yearly re-inventory of each department's assets.
//! Tasks are created by the job loop from the clock (idempotent), answered in the console by
//! the department, checked and signed off by the secretariat (事務局) — never by the person who
//! answered — or sent back with a comment. Tasks past their due date without sign-off are
//! overdue: on the dashboard and in reminder mail through the outbox.

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use mamori_ledger::Event;
use serde::{Deserialize, Serialize};

use super::evidence::{jst, jst_text};
use super::long_text;
use crate::auth::{system_actor, Principal};
use crate::error::{CoreError, Result};
use crate::policy::Action;
use crate::types::{Role, Text};
use crate::Mamori;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewObjective {
    pub title: Text,
    /// How it is measured (指標).
    pub measure: Text,
    pub target: Text,
    pub owner: Text,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObjectiveRow {
    pub id: i64,
    pub title: String,
    pub measure: String,
    pub target: String,
    pub owner: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Inspection,
    ObjectiveReview,
    Inventory,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Inspection => "inspection",
            TaskKind::ObjectiveReview => "objective_review",
            TaskKind::Inventory => "inventory",
        }
    }
    fn parse(s: &str) -> Self {
        match s {
            "objective_review" => TaskKind::ObjectiveReview,
            "inventory" => TaskKind::Inventory,
            _ => TaskKind::Inspection,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskRow {
    pub id: i64,
    pub kind: TaskKind,
    /// The department code, or `*` for the centre.
    pub scope: String,
    pub period: String,
    pub due_at: i64,
    pub answered_by: Option<String>,
    pub answered_at: Option<i64>,
    pub signed_by: Option<String>,
    pub signed_at: Option<i64>,
    pub sign_comment: String,
    /// The secretariat's comment when it sent the answers back.
    pub returned_comment: String,
    /// `open`, `answered` or `signed`.
    pub state: &'static str,
    pub overdue: bool,
    /// Items answered "not OK".
    pub findings: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskItem {
    pub pos: i64,
    pub question: String,
    pub result: Option<String>,
    pub comment: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    pub task: TaskRow,
    pub items: Vec<TaskItem>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub pos: i64,
    /// `ok`, `ng` (not OK: say what in the comment) or `na`.
    pub result: String,
    #[serde(default)]
    pub comment: String,
}

/// The first instant (UTC) of the Japan month `y-m`.
fn month_start(y: i32, m: u32) -> Option<DateTime<Utc>> {
    jst().with_ymd_and_hms(y, m, 1, 0, 0, 0).single().map(|d| d.with_timezone(&Utc))
}

fn next_month(y: i32, m: u32) -> (i32, u32) {
    if m == 12 { (y + 1, 1) } else { (y, m + 1) }
}

type TaskTuple = (i64, String, String, String, i64, Option<String>, Option<i64>, Option<String>, Option<i64>, String, String, i64);

const TASK_SELECT: &str = "SELECT t.id, t.kind, t.scope, t.period, t.due_at, ua.display_name, t.answered_at, us.display_name, t.signed_at, t.sign_comment, \
     t.returned_comment, (SELECT COUNT(*) FROM task_items i WHERE i.task_id = t.id AND i.result = 'ng') \
     FROM tasks t LEFT JOIN users ua ON ua.id = t.answered_by LEFT JOIN users us ON us.id = t.signed_by";

fn task_row(r: TaskTuple, now: i64) -> TaskRow {
    let state = if r.8.is_some() {
        "signed"
    } else if r.6.is_some() {
        "answered"
    } else {
        "open"
    };
    TaskRow {
        id: r.0,
        kind: TaskKind::parse(&r.1),
        scope: r.2,
        period: r.3,
        due_at: r.4,
        answered_by: r.5,
        answered_at: r.6,
        signed_by: r.7,
        signed_at: r.8,
        sign_comment: r.9,
        returned_comment: r.10,
        state,
        overdue: r.8.is_none() && now >= r.4,
        findings: r.11,
    }
}

impl Mamori {
    pub async fn add_objective(&self, p: &Principal, o: NewObjective) -> Result<i64> {
        self.require(p, Action::RegistersWrite).await?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO objectives (title, measure, target, owner, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(o.title.as_str())
        .bind(o.measure.as_str())
        .bind(o.target.as_str())
        .bind(o.owner.as_str())
        .bind(p.user_id)
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await?;
        let ev = Event::new(now, p.actor(), "objective.add").object("objective", id);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn list_objectives(&self, p: &Principal) -> Result<Vec<ObjectiveRow>> {
        self.require(p, Action::RegistersRead).await?;
        let rows: Vec<(i64, String, String, String, String)> =
            sqlx::query_as("SELECT id, title, measure, target, owner FROM objectives WHERE active = 1 ORDER BY id").fetch_all(&self.db.pool).await?;
        Ok(rows.into_iter().map(|(id, title, measure, target, owner)| ObjectiveRow { id, title, measure, target, owner }).collect())
    }

    /// Creates the tasks of the month that `now` falls in (Japan time), once: a
    /// self-inspection per department (items from the treatment plan), the objectives' review,
    /// and in April the year's re-inventory per department (due at the end of June).
    pub async fn run_cycle(&self) -> Result<usize> {
        let now = self.clock.now();
        let local = now.with_timezone(&jst());
        let (y, m) = (local.year(), local.month());
        let period = format!("{y:04}-{m:02}");
        let (ny, nm) = next_month(y, m);
        let due = month_start(ny, nm).ok_or_else(|| CoreError::Internal("calendar".into()))?;
        let depts: Vec<(String,)> = sqlx::query_as("SELECT code FROM departments ORDER BY code").fetch_all(&self.db.pool).await?;
        let checks: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, check_item FROM treatment_actions WHERE check_item IS NOT NULL ORDER BY id").fetch_all(&self.db.pool).await?;
        let objectives: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT id, title, target FROM objectives WHERE active = 1 ORDER BY id").fetch_all(&self.db.pool).await?;
        let mut created = 0;
        for (d,) in &depts {
            let items: Vec<(String, String)> = checks.iter().map(|(id, q)| (format!("treatment:{id}"), q.clone())).collect();
            if !items.is_empty() && self.create_task(TaskKind::Inspection, d, &period, due, &items).await? {
                created += 1;
            }
        }
        if !objectives.is_empty() {
            let items: Vec<(String, String)> =
                objectives.iter().map(|(id, t, target)| (format!("objective:{id}"), format!("{t}（目標: {target}）"))).collect();
            if self.create_task(TaskKind::ObjectiveReview, "*", &period, due, &items).await? {
                created += 1;
            }
        }
        // The fiscal year starts in April: the re-inventory of the asset register (MGMT-3).
        let fy = if m >= 4 { y } else { y - 1 };
        if let Some(inv_due) = month_start(fy, 7) {
            for (d,) in &depts {
                let items = vec![
                    ("inventory:assets".to_owned(), "部門の情報資産を現物と照合し、情報資産台帳を更新した".to_owned()),
                    ("inventory:ratings".to_owned(), "機密性・完全性・可用性の評価と保存期間・廃棄方法を見直した".to_owned()),
                ];
                if self.create_task(TaskKind::Inventory, d, &format!("FY{fy}"), inv_due, &items).await? {
                    created += 1;
                }
            }
        }
        Ok(created)
    }

    async fn create_task(&self, kind: TaskKind, scope: &str, period: &str, due: DateTime<Utc>, items: &[(String, String)]) -> Result<bool> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let exists: Option<(i64,)> = sqlx::query_as("SELECT id FROM tasks WHERE kind = $1 AND scope = $2 AND period = $3")
            .bind(kind.as_str())
            .bind(scope)
            .bind(period)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Ok(false);
        }
        let (id,): (i64,) = sqlx::query_as("INSERT INTO tasks (kind, scope, period, due_at, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id")
            .bind(kind.as_str())
            .bind(scope)
            .bind(period)
            .bind(due.timestamp_millis())
            .bind(now.timestamp_millis())
            .fetch_one(&mut *tx)
            .await?;
        for (pos, (r, q)) in items.iter().enumerate() {
            sqlx::query("INSERT INTO task_items (task_id, pos, ref, question) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(pos as i64 + 1)
                .bind(r)
                .bind(q)
                .execute(&mut *tx)
                .await?;
        }
        let ev = Event::new(now, system_actor("cycle"), "task.create")
            .object("task", id)
            .detail("kind", kind.as_str())
            .detail("scope", scope)
            .detail("period", period);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Tasks, newest period first; `overdue_only` for the dashboard.
    pub async fn list_tasks(&self, p: &Principal, overdue_only: bool) -> Result<Vec<TaskRow>> {
        self.require(p, Action::RegistersRead).await?;
        let now = self.clock.now().timestamp_millis();
        let rows: Vec<TaskTuple> = if overdue_only {
            sqlx::query_as(&format!("{TASK_SELECT} WHERE t.signed_at IS NULL AND t.due_at <= $1 ORDER BY t.due_at, t.scope"))
                .bind(now)
                .fetch_all(&self.db.pool)
                .await?
        } else {
            sqlx::query_as(&format!("{TASK_SELECT} ORDER BY t.period DESC, t.kind, t.scope LIMIT 500")).fetch_all(&self.db.pool).await?
        };
        Ok(rows.into_iter().map(|r| task_row(r, now)).collect())
    }

    pub async fn task(&self, p: &Principal, id: i64) -> Result<TaskView> {
        self.require(p, Action::RegistersRead).await?;
        let now = self.clock.now().timestamp_millis();
        let row: Option<TaskTuple> = sqlx::query_as(&format!("{TASK_SELECT} WHERE t.id = $1")).bind(id).fetch_optional(&self.db.pool).await?;
        let task = task_row(row.ok_or(CoreError::NotFound("task"))?, now);
        let items: Vec<(i64, String, Option<String>, String)> =
            sqlx::query_as("SELECT pos, question, result, comment FROM task_items WHERE task_id = $1 ORDER BY pos").bind(id).fetch_all(&self.db.pool).await?;
        Ok(TaskView { task, items: items.into_iter().map(|(pos, question, result, comment)| TaskItem { pos, question, result, comment }).collect() })
    }

    /// The department code of the person linked to an account.
    async fn user_department(&self, user: i64) -> Result<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT d.code FROM users u JOIN people p ON p.id = u.person_id JOIN departments d ON d.id = p.department_id WHERE u.id = $1",
        )
        .bind(user)
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.map(|r| r.0))
    }

    /// Answers every item of a task (a department answers its own; the security office and
    /// the secretariat may answer any). "Not OK" needs a comment saying what was found.
    pub async fn answer_task(&self, p: &Principal, id: i64, answers: Vec<Answer>) -> Result<()> {
        self.require(p, Action::RegistersWrite).await?;
        let view = self.task(p, id).await?;
        if view.task.state == "signed" {
            return Err(CoreError::Conflict("this task is signed off already".into()));
        }
        let central = p.roles.iter().any(|r| matches!(r, Role::Ciso | Role::InfoManager | Role::Secretariat));
        if view.task.scope != "*" && !central && self.user_department(p.user_id).await?.as_deref() != Some(view.task.scope.as_str()) {
            return Err(CoreError::Forbidden { rule: Some("departments-answer-their-own-checklist".into()) });
        }
        let mut clean = Vec::with_capacity(view.items.len());
        for item in &view.items {
            let a = answers
                .iter()
                .find(|a| a.pos == item.pos)
                .ok_or_else(|| CoreError::invalid(&format!("item-{}", item.pos), format!("answer item {}: {}", item.pos, item.question)))?;
            let result = match a.result.as_str() {
                r @ ("ok" | "ng" | "na") => r,
                _ => return Err(CoreError::invalid(&format!("item-{}", item.pos), "ok, ng or na")),
            };
            let comment = long_text("comment", &a.comment, 1000)?;
            if result == "ng" && comment.is_empty() {
                return Err(CoreError::invalid(&format!("item-{}", item.pos), format!("say what was found for item {}", item.pos)));
            }
            clean.push((item.pos, result, comment));
        }
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        for (pos, result, comment) in &clean {
            sqlx::query("UPDATE task_items SET result = $1, comment = $2 WHERE task_id = $3 AND pos = $4")
                .bind(*result)
                .bind(comment)
                .bind(id)
                .bind(*pos)
                .execute(&mut *tx)
                .await?;
        }
        let n = sqlx::query("UPDATE tasks SET answered_by = $1, answered_at = $2 WHERE id = $3 AND signed_at IS NULL")
            .bind(p.user_id)
            .bind(now.timestamp_millis())
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(CoreError::Conflict("this task is signed off already".into()));
        }
        let ng = clean.iter().filter(|c| c.1 == "ng").count();
        let ev = Event::new(now, p.actor(), "task.answer").object("task", id).detail("period", &view.task.period).detail("scope", &view.task.scope).detail("not_ok", ng);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The secretariat checks the answers and signs off (not their own answers), or sends them
    /// back with a comment (`accept = false`).
    pub async fn sign_off_task(&self, p: &Principal, id: i64, accept: bool, comment: &str) -> Result<()> {
        self.require(p, Action::RegistersSignOff).await?;
        let comment = long_text("comment", comment, 1000)?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let row: Option<(Option<i64>, Option<i64>)> =
            sqlx::query_as("SELECT answered_by, signed_at FROM tasks WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
        let (answered_by, signed) = row.ok_or(CoreError::NotFound("task"))?;
        if signed.is_some() {
            return Err(CoreError::Conflict("this task is signed off already".into()));
        }
        let Some(answered_by) = answered_by else {
            return Err(CoreError::Conflict("the task has not been answered yet".into()));
        };
        if answered_by == p.user_id {
            return Err(CoreError::Forbidden { rule: Some("nobody-signs-off-their-own-answers".into()) });
        }
        if accept {
            sqlx::query("UPDATE tasks SET signed_by = $1, signed_at = $2, sign_comment = $3 WHERE id = $4")
                .bind(p.user_id)
                .bind(now.timestamp_millis())
                .bind(&comment)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        } else {
            if comment.is_empty() {
                return Err(CoreError::invalid("comment", "say why the answers go back"));
            }
            sqlx::query("UPDATE tasks SET answered_by = NULL, answered_at = NULL, returned_comment = $1 WHERE id = $2").bind(&comment).bind(id).execute(&mut *tx).await?;
        }
        let ev = Event::new(now, p.actor(), if accept { "task.sign_off" } else { "task.return" }).object("task", id);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Queues reminder mail for overdue tasks (at most every three days per task): the
    /// department's managers while it is unanswered, the secretariat while it waits for
    /// sign-off. Returns the number of messages queued.
    pub async fn queue_reminders(&self) -> Result<usize> {
        let now = self.clock.now();
        let n = now.timestamp_millis();
        let again = n - Duration::days(3).num_milliseconds();
        let rows: Vec<(i64, String, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT id, kind, scope, period, due_at, answered_at FROM tasks WHERE signed_at IS NULL AND due_at <= $1 AND (reminded_at IS NULL OR reminded_at <= $2)",
        )
        .bind(n)
        .bind(again)
        .fetch_all(&self.db.pool)
        .await?;
        let mut queued = 0;
        for (id, kind, scope, period, due, answered) in rows {
            let to: Vec<(String,)> = if answered.is_none() && scope != "*" {
                sqlx::query_as(
                    "SELECT DISTINCT u.email FROM users u JOIN role_assignments r ON r.user_id = u.id JOIN people p ON p.id = u.person_id \
                     JOIN departments d ON d.id = p.department_id WHERE r.role = 'dept_manager' AND d.code = $1 AND u.email IS NOT NULL AND u.disabled = 0",
                )
                .bind(&scope)
                .fetch_all(&self.db.pool)
                .await?
            } else {
                sqlx::query_as(
                    "SELECT DISTINCT u.email FROM users u JOIN role_assignments r ON r.user_id = u.id WHERE r.role = 'secretariat' AND u.email IS NOT NULL AND u.disabled = 0",
                )
                .fetch_all(&self.db.pool)
                .await?
            };
            let what = match TaskKind::parse(&kind) {
                TaskKind::Inspection => "自主点検",
                TaskKind::ObjectiveReview => "情報セキュリティ目標の月次レビュー",
                TaskKind::Inventory => "情報資産の棚卸し",
            };
            let step = if answered.is_none() { "回答" } else { "事務局の確認" };
            let subject = format!("【mamori】期限超過: {what} {period} {}", if scope == "*" { "" } else { scope.as_str() });
            let link = self.settings.public_url.as_deref().map(|u| format!("{}/registers/tasks/{id}", u.trim_end_matches('/'))).unwrap_or_default();
            let body = format!(
                "{what}（{period}、{}）の{step}が期限（{}）を過ぎています。\n\
                 The {kind} task {period} ({scope}) is overdue.\n\n{link}\n",
                if scope == "*" { "全社" } else { scope.as_str() },
                jst_text(due)
            );
            let mut tx = self.db.begin().await?;
            for (addr,) in &to {
                sqlx::query("INSERT INTO mail_outbox (task_id, recipient, subject, body, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(id)
                    .bind(addr)
                    .bind(&subject)
                    .bind(&body)
                    .bind(n)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("UPDATE tasks SET reminded_at = $1 WHERE id = $2").bind(n).bind(id).execute(&mut *tx).await?;
            let ev = Event::new(now, system_actor("cycle"), "task.overdue").object("task", id).detail("reminders", to.len());
            self.ledger.append_tx(&mut tx, &ev).await?;
            tx.commit().await?;
            queued += to.len();
        }
        Ok(queued)
    }

    /// Sends queued mail through the configured relay (none configured: it waits). Returns
    /// the number sent; a failure is retried later (up to 10 attempts).
    pub async fn send_outbox(&self) -> Result<usize> {
        let Some(mailer) = &self.mailer else { return Ok(0) };
        let rows: Vec<(i64, String, String, String)> =
            sqlx::query_as("SELECT id, recipient, subject, body FROM mail_outbox WHERE sent_at IS NULL AND attempts < 10 ORDER BY id LIMIT 100")
                .fetch_all(&self.db.pool)
                .await?;
        let mut sent = 0;
        for (id, to, subject, body) in rows {
            let now = self.clock.now().timestamp_millis();
            match mailer.send(&to, &subject, &body).await {
                Ok(()) => {
                    self.db.write(sqlx::query("UPDATE mail_outbox SET sent_at = $1, attempts = attempts + 1, error = NULL WHERE id = $2").bind(now).bind(id)).await?;
                    sent += 1;
                }
                Err(e) => {
                    tracing::warn!(mail = id, error = %e, "reminder mail not sent");
                    self.db.write(sqlx::query("UPDATE mail_outbox SET attempts = attempts + 1, error = $1 WHERE id = $2").bind(e.to_string()).bind(id)).await?;
                }
            }
        }
        Ok(sent)
    }

    /// The cycle's job: create the month's tasks, queue reminders, send mail.
    pub async fn cycle_jobs(&self) -> Result<()> {
        self.run_cycle().await?;
        self.queue_reminders().await?;
        self.send_outbox().await?;
        Ok(())
    }

    /// Sets the e-mail address reminders go to (an administrator, or the person themself).
    pub async fn set_user_email(&self, p: &Principal, login: &str, email: &str) -> Result<()> {
        if p.login != login {
            self.require(p, Action::UsersManage).await?;
        }
        let email = if email.trim().is_empty() { None } else { Some(crate::mail::parse_address(email)?) };
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let n = sqlx::query("UPDATE users SET email = $1 WHERE login = $2").bind(&email).bind(login).execute(&mut *tx).await?.rows_affected();
        if n == 0 {
            return Err(CoreError::NotFound("user"));
        }
        let ev = Event::new(now, p.actor(), "user.email").object("user", login).detail("set", email.is_some());
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(())
    }
}
