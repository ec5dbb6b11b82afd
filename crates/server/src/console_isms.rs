//! Console pages of the ISMS cycle (issue 6): the cycle dashboard (overdue tasks, this
//! month's tasks, objectives, treatment plan, audit pack), a task's checklist with answers and
//! the secretariat's sign-off, the statement of applicability with live evidence, vendors,
//! people's records, one's own pledge, audits, and chain of custody.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use mamori_core::registers::{audits, custody, cycle, evidence, people, soa, vendors};
use mamori_core::types::{Code, Date, Role, Text};
use mamori_core::CoreError;

use crate::api_isms::PeriodQ;
use crate::console::{chrome, chrome_with_error, error_text, field, render, Chrome};
use crate::{AppState, ConsoleSession};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/registers/cycle", get(cycle_page))
        .route("/registers/objectives", post(objective_add))
        .route("/registers/treatments", post(treatment_add))
        .route("/registers/treatments/{id}/done", post(treatment_done))
        .route("/registers/tasks/{id}", get(task_page).post(task_answer))
        .route("/registers/tasks/{id}/sign-off", post(task_sign_off))
        .route("/registers/soa", get(soa_page))
        .route("/registers/soa/{id}", post(soa_set))
        .route("/registers/vendors", get(vendors_page).post(vendor_add))
        .route("/registers/vendors/{code}/contracts", post(contract_add))
        .route("/registers/vendors/{code}/audits", post(vendor_audit_add))
        .route("/registers/contracts/{id}/start", post(contract_start))
        .route("/registers/people", get(records_page))
        .route("/registers/people/{what}", get(person_page).post(records_post))
        .route("/pledge", get(pledge_page).post(pledge_sign))
        .route("/registers/audits", get(audits_page))
        .route("/registers/audits/{what}", post(audits_post))
        .route("/registers/custody", get(custody_page))
        .route("/registers/custody/{what}", post(custody_post))
        .route("/registers/pack", get(pack_download))
}

fn jst(ms: &i64) -> String {
    crate::console_doors::jst(*ms)
}

fn opt_jst(ms: &Option<i64>) -> String {
    crate::console_doors::jst_opt(ms)
}

/// Renders a page's result: a redirect on success, the page again with the error otherwise.
macro_rules! back {
    ($st:expr, $s:expr, $r:expr, $to:expr, $render:ident) => {
        match $r {
            Ok(_) => Redirect::to(&$to).into_response(),
            Err(e) => {
                let msg = error_text(&chrome(&$st, &$s, "registers"), e);
                $render(&$st, &$s, Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await
            }
        }
    };
}

fn date(form: &HashMap<String, String>, k: &str) -> Result<Date, CoreError> {
    Date::parse(k, &field(form, k))
}

// ---- The cycle dashboard ----------------------------------------------------------------

#[derive(Template)]
#[template(path = "isms.html")]
struct CyclePage<'a> {
    c: Chrome<'a>,
    overdue: Vec<cycle::TaskRow>,
    tasks: Vec<cycle::TaskRow>,
    objectives: Vec<cycle::ObjectiveRow>,
    treatments: Vec<soa::TreatmentRow>,
    period: evidence::Period,
    error: Option<String>,
}

impl CyclePage<'_> {
    fn when(&self, ms: &i64) -> String {
        jst(ms)
    }
    fn kind(&self, k: &cycle::TaskKind) -> String {
        self.c.t(&format!("task-{}", k.as_str().replace('_', "-")))
    }
    fn from(&self) -> String {
        evidence::jst_date(self.period.from)
    }
    fn to(&self) -> String {
        evidence::jst_date(self.period.to - chrono::Duration::days(1))
    }
}

async fn cycle_render(st: &AppState, s: &ConsoleSession, error: Option<String>, status: StatusCode) -> Response {
    let p = &s.state.principal;
    let loaded = async {
        Ok::<_, CoreError>((
            st.app.list_tasks(p, true).await?,
            st.app.list_tasks(p, false).await?,
            st.app.list_objectives(p).await?,
            st.app.list_treatments(p).await?,
        ))
    }
    .await;
    match loaded {
        Ok((overdue, mut tasks, objectives, treatments)) => {
            tasks.truncate(60);
            let period = evidence::Period::fiscal_year(st.app.clock.now());
            render(&CyclePage { c: chrome_with_error(st, s, "isms", &error), overdue, tasks, objectives, treatments, period, error }, status)
        }
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

async fn cycle_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    let _ = session!(s);
    cycle_render(&st, &s, None, StatusCode::OK).await
}

async fn objective_add(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let r = async {
        let o = cycle::NewObjective {
            title: Text::parse("title", &field(&form, "title"))?,
            measure: Text::parse("measure", &field(&form, "measure"))?,
            target: Text::parse("target", &field(&form, "target"))?,
            owner: Text::parse("owner", &field(&form, "owner"))?,
        };
        st.app.add_objective(&p, o).await
    }
    .await;
    back!(st, s, r, "/registers/cycle", cycle_render)
}

async fn treatment_add(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let r = async {
        let risk = field(&form, "risk");
        let t = soa::NewTreatment {
            risk: if risk.trim().is_empty() { None } else { Some(risk.trim().parse().map_err(|_| CoreError::invalid("risk", "the number of a risk assessment"))?) },
            control: Some(field(&form, "control")),
            action: Text::parse("action", &field(&form, "action"))?,
            owner: Text::parse("owner", &field(&form, "owner"))?,
            due: date(&form, "due")?,
            check_item: Some(field(&form, "check_item")),
        };
        st.app.add_treatment(&p, t).await
    }
    .await;
    back!(st, s, r, "/registers/cycle", cycle_render)
}

async fn treatment_done(State(st): State<AppState>, s: ConsoleSession, Path(id): Path<i64>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let r = st.app.complete_treatment(&p, id).await;
    back!(st, s, r, "/registers/cycle", cycle_render)
}

// ---- A task's checklist ----------------------------------------------------------------

#[derive(Template)]
#[template(path = "task.html")]
struct TaskPage<'a> {
    c: Chrome<'a>,
    v: cycle::TaskView,
    can_sign: bool,
    error: Option<String>,
    /// What was typed, kept when it is refused.
    form: HashMap<String, String>,
}

impl TaskPage<'_> {
    fn when(&self, ms: &Option<i64>) -> String {
        opt_jst(ms)
    }
    fn due(&self) -> String {
        jst(&self.v.task.due_at)
    }
    fn kind(&self) -> String {
        self.c.t(&format!("task-{}", self.v.task.kind.as_str().replace('_', "-")))
    }
    /// The result shown for an item: typed (when refused) or stored.
    /// Whether the answer shown for `item` (the form's, after a refused submit, or the stored
    /// one) is `val`.
    fn result_is(&self, item: &cycle::TaskItem, val: &str) -> bool {
        self.form.get(&format!("r{}", item.pos)).or(item.result.as_ref()).is_some_and(|r| r == val)
    }
    fn comment(&self, item: &cycle::TaskItem) -> String {
        self.form.get(&format!("c{}", item.pos)).cloned().unwrap_or_else(|| item.comment.clone())
    }
    fn result_label(&self, r: &Option<String>) -> String {
        r.as_deref().map(|r| self.c.t(&format!("task-result-{r}"))).unwrap_or_default()
    }
}

async fn task_render(st: &AppState, s: &ConsoleSession, id: i64, error: Option<String>, form: HashMap<String, String>, status: StatusCode) -> Response {
    let p = &s.state.principal;
    match st.app.task(p, id).await {
        Ok(v) => {
            let can_sign = st.app.decide(p, mamori_core::policy::Action::RegistersSignOff).await.map(|d| d.allowed).unwrap_or(false);
            render(&TaskPage { c: chrome(st, s, "isms"), v, can_sign, error, form }, status)
        }
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

async fn task_page(State(st): State<AppState>, s: ConsoleSession, Path(id): Path<i64>) -> Response {
    let _ = session!(s);
    task_render(&st, &s, id, None, HashMap::new(), StatusCode::OK).await
}

async fn task_answer(State(st): State<AppState>, s: ConsoleSession, Path(id): Path<i64>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let mut answers = Vec::new();
    for (k, v) in &form {
        if let Some(pos) = k.strip_prefix('r').and_then(|n| n.parse::<i64>().ok()) {
            answers.push(cycle::Answer { pos, result: v.clone(), comment: field(&form, &format!("c{pos}")) });
        }
    }
    match st.app.answer_task(&p, id, answers).await {
        Ok(()) => Redirect::to(&format!("/registers/tasks/{id}")).into_response(),
        Err(e) => {
            let msg = error_text(&chrome(&st, &s, "isms"), e);
            let mut form = form;
            form.remove("csrf");
            task_render(&st, &s, id, Some(msg), form, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

async fn task_sign_off(State(st): State<AppState>, s: ConsoleSession, Path(id): Path<i64>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let accept = field(&form, "decision") != "return";
    match st.app.sign_off_task(&p, id, accept, &field(&form, "comment")).await {
        Ok(()) => Redirect::to(&format!("/registers/tasks/{id}")).into_response(),
        Err(e) => {
            let msg = error_text(&chrome(&st, &s, "isms"), e);
            task_render(&st, &s, id, Some(msg), HashMap::new(), StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

// ---- Statement of applicability ---------------------------------------------------------

#[derive(Template)]
#[template(path = "soa.html")]
struct SoaPage<'a> {
    c: Chrome<'a>,
    rows: Vec<soa::SoaRow>,
    period: evidence::Period,
    error: Option<String>,
}

impl SoaPage<'_> {
    fn en(&self) -> bool {
        self.c.lang == "en"
    }
    fn from(&self) -> String {
        evidence::jst_date(self.period.from)
    }
    fn to(&self) -> String {
        evidence::jst_date(self.period.to - chrono::Duration::days(1))
    }
    fn theme(&self, t: &str) -> String {
        self.c.t(&format!("soa-theme-{t}"))
    }
    fn state(&self, s: &Option<evidence::State>) -> String {
        s.map(|s| s.as_str()).unwrap_or("none").to_owned()
    }
}

async fn soa_render_with(st: &AppState, s: &ConsoleSession, q: &PeriodQ, error: Option<String>, status: StatusCode) -> Response {
    let p = &s.state.principal;
    let period = match q.period(st.app.clock.now()) {
        Ok(x) => x,
        Err(e) => return crate::error::WebError::from(e).into_response(),
    };
    match st.app.soa(p, period).await {
        Ok(rows) => render(&SoaPage { c: chrome(st, s, "isms"), rows, period, error }, status),
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

async fn soa_render(st: &AppState, s: &ConsoleSession, error: Option<String>, status: StatusCode) -> Response {
    soa_render_with(st, s, &PeriodQ { from: None, to: None, format: None, overdue: None }, error, status).await
}

async fn soa_page(State(st): State<AppState>, s: ConsoleSession, Query(q): Query<PeriodQ>) -> Response {
    let _ = session!(s);
    soa_render_with(&st, &s, &q, None, StatusCode::OK).await
}

async fn soa_set(State(st): State<AppState>, s: ConsoleSession, Path(id): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let r = match field(&form, "applicable").as_str() {
        a @ ("yes" | "no") => st.app.set_soa(&p, &id, soa::SoaUpdate { applicable: a == "yes", justification: field(&form, "justification") }).await,
        _ => Err(CoreError::invalid("applicable", "choose applicable or excluded")),
    };
    back!(st, s, r, format!("/registers/soa#c-{}", id.replace('.', "-")), soa_render)
}

// ---- Vendors ----------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "vendors.html")]
struct VendorsPage<'a> {
    c: Chrome<'a>,
    rows: Vec<vendors::VendorRow>,
    clauses: &'static [&'static str],
    error: Option<String>,
}

async fn vendors_render(st: &AppState, s: &ConsoleSession, error: Option<String>, status: StatusCode) -> Response {
    match st.app.list_vendors(&s.state.principal).await {
        Ok(rows) => render(&VendorsPage { c: chrome(st, s, "isms"), rows, clauses: vendors::CLAUSES, error }, status),
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

async fn vendors_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    let _ = session!(s);
    vendors_render(&st, &s, None, StatusCode::OK).await
}

async fn vendor_add(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let r = async {
        let v = vendors::NewVendor {
            code: Code::parse("code", &field(&form, "code"))?,
            name: Text::parse("name", &field(&form, "name"))?,
            cert_kind: field(&form, "cert_kind"),
            cert_number: Text::parse("cert_number", &field(&form, "cert_number"))?,
            cert_expiry: date(&form, "cert_expiry")?,
            nda: form.contains_key("nda"),
        };
        st.app.add_vendor(&p, v).await
    }
    .await;
    back!(st, s, r, "/registers/vendors", vendors_render)
}

async fn contract_add(State(st): State<AppState>, s: ConsoleSession, Path(code): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let r = async {
        let c = vendors::NewContract {
            title: Text::parse("title", &field(&form, "title"))?,
            client: Some(field(&form, "client")),
            client_approval: field(&form, "client_approval"),
            my_number: form.contains_key("my_number"),
            clauses: vendors::CLAUSES.iter().filter(|k| form.contains_key(&format!("clause_{k}"))).map(|k| (*k).to_owned()).collect(),
            starts: date(&form, "starts")?,
            ends: date(&form, "ends")?,
        };
        st.app.add_contract(&p, &code, c).await
    }
    .await;
    back!(st, s, r, "/registers/vendors", vendors_render)
}

async fn vendor_audit_add(State(st): State<AppState>, s: ConsoleSession, Path(code): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let r = async {
        let a = vendors::NewVendorAudit {
            stage: field(&form, "stage"),
            contract: field(&form, "contract").trim().parse().ok(),
            audited_on: date(&form, "audited_on")?,
            passed: field(&form, "passed") == "yes",
            notes: field(&form, "notes"),
        };
        st.app.record_vendor_audit(&p, &code, a).await
    }
    .await;
    back!(st, s, r, "/registers/vendors", vendors_render)
}

async fn contract_start(State(st): State<AppState>, s: ConsoleSession, Path(id): Path<i64>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let r = st.app.start_contract_work(&p, id).await;
    back!(st, s, r, "/registers/vendors", vendors_render)
}

// ---- People's records -------------------------------------------------------------------

#[derive(Template)]
#[template(path = "records.html")]
struct RecordsPage<'a> {
    c: Chrome<'a>,
    rows: Vec<people::PersonFlags>,
    courses: Vec<people::CourseRow>,
    blocking: bool,
    error: Option<String>,
}

impl RecordsPage<'_> {
    fn when(&self, ms: &Option<i64>) -> String {
        opt_jst(ms)
    }
}

async fn records_render(st: &AppState, s: &ConsoleSession, error: Option<String>, status: StatusCode) -> Response {
    let p = &s.state.principal;
    let loaded = async { Ok::<_, CoreError>((st.app.list_people_flags(p).await?, st.app.list_courses(p).await?, st.app.block_flagged_grants().await?)) }.await;
    match loaded {
        Ok((rows, courses, blocking)) => render(&RecordsPage { c: chrome_with_error(st, s, "isms", &error), rows, courses, blocking, error }, status),
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

async fn records_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    let _ = session!(s);
    records_render(&st, &s, None, StatusCode::OK).await
}

async fn records_post(State(st): State<AppState>, s: ConsoleSession, Path(what): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let score = || field(&form, "score").trim().parse::<i64>().ok();
    let r: Result<(), CoreError> = async {
        match what.as_str() {
            "pledge-text" => st.app.add_pledge_text(&p, people::NewPledgeText { kind: field(&form, "kind"), body: field(&form, "body") }).await.map(|_| ()),
            "course" => {
                let role = match field(&form, "role").trim() {
                    "" => None,
                    r => Some(r.parse::<Role>()?),
                };
                let pass = field(&form, "pass_score");
                let pass_score = if pass.trim().is_empty() { None } else { Some(pass.trim().parse().map_err(|_| CoreError::invalid("pass_score", "0 to 100"))?) };
                let c = people::NewCourse { code: Code::parse("code", &field(&form, "code"))?, title: Text::parse("title", &field(&form, "title"))?, due_rule: field(&form, "due_rule"), role, pass_score };
                st.app.add_course(&p, c).await
            }
            "attendance" => st.app.record_attendance(&p, people::NewAttendance { course: field(&form, "course"), employee_no: field(&form, "employee_no"), score: score() }).await.map(|_| ()),
            "drill" => {
                let d = people::NewDrill {
                    kind: field(&form, "kind"),
                    name: Text::parse("name", &field(&form, "name"))?,
                    employee_no: field(&form, "employee_no"),
                    result: Text::parse("result", &field(&form, "result"))?,
                };
                st.app.record_drill(&p, d).await
            }
            "blocking" => st.app.set_block_flagged_grants(&p, field(&form, "on") == "yes").await,
            _ => Err(CoreError::NotFound("form")),
        }
    }
    .await;
    back!(st, s, r, "/registers/people", records_render)
}

#[derive(Template)]
#[template(path = "person_record.html")]
struct PersonPage<'a> {
    c: Chrome<'a>,
    r: people::PersonRecord,
}

impl PersonPage<'_> {
    fn when(&self, ms: &i64) -> String {
        jst(ms)
    }
    fn last(&self) -> String {
        opt_jst(&self.r.flags.last_pledge_at)
    }
}

/// A person's page (HUMAN-1..3): what they owe, and their pledges, training and drills.
async fn person_page(State(st): State<AppState>, s: ConsoleSession, Path(no): Path<String>) -> Response {
    let p = session!(s);
    match st.app.person_record(&p, &no).await {
        Ok(r) => render(&PersonPage { c: chrome(&st, &s, "isms"), r }, StatusCode::OK),
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

#[derive(Template)]
#[template(path = "pledge.html")]
struct PledgePage<'a> {
    c: Chrome<'a>,
    flags: Option<people::PersonFlags>,
    text: Option<people::PledgeText>,
    error: Option<String>,
}

async fn pledge_render(st: &AppState, s: &ConsoleSession, error: Option<String>, status: StatusCode) -> Response {
    let p = &s.state.principal;
    let flags = match st.app.my_flags(p).await {
        Ok(f) => f,
        Err(e) => return crate::error::WebError::from(e).into_response(),
    };
    let kind = flags.as_ref().and_then(|f| f.pledge_next.clone());
    let text = match kind {
        Some(k) => st.app.pledge_text(&k).await.ok().flatten(),
        None => None,
    };
    render(&PledgePage { c: chrome(st, s, "pledge"), flags, text, error }, status)
}

async fn pledge_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    let _ = session!(s);
    pledge_render(&st, &s, None, StatusCode::OK).await
}

async fn pledge_sign(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let r = if form.contains_key("agree") {
        st.app.sign_pledge(&p, &field(&form, "kind"), field(&form, "version").parse().unwrap_or(0)).await
    } else {
        Err(CoreError::invalid("agree", "tick the box to confirm you have read and agree to the pledge"))
    };
    back!(st, s, r, "/pledge", pledge_render)
}

// ---- Audits -----------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "audits.html")]
struct AuditsPage<'a> {
    c: Chrome<'a>,
    rows: Vec<audits::AuditRow>,
    reviews: Vec<audits::ReviewRecord>,
    error: Option<String>,
}

async fn audits_render(st: &AppState, s: &ConsoleSession, error: Option<String>, status: StatusCode) -> Response {
    let p = &s.state.principal;
    let loaded = async { Ok::<_, CoreError>((st.app.list_audits(p).await?, st.app.list_management_reviews(p).await?)) }.await;
    match loaded {
        Ok((rows, reviews)) => render(&AuditsPage { c: chrome(st, s, "isms"), rows, reviews, error }, status),
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

async fn audits_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    let _ = session!(s);
    audits_render(&st, &s, None, StatusCode::OK).await
}

async fn audits_post(State(st): State<AppState>, s: ConsoleSession, Path(what): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let id = || field(&form, "id").trim().parse::<i64>().map_err(|_| CoreError::invalid("id", "which one"));
    let r: Result<(), CoreError> = async {
        match what.as_str() {
            "plan" => {
                let a = audits::NewAudit {
                    kind: field(&form, "kind"),
                    title: Text::parse("title", &field(&form, "title"))?,
                    scope: Text::parse("scope", &field(&form, "scope"))?,
                    planned_on: date(&form, "planned_on")?,
                    auditor: Text::parse("auditor", &field(&form, "auditor"))?,
                };
                st.app.plan_audit(&p, a).await.map(|_| ())
            }
            "done" => st.app.complete_audit(&p, id()?, audits::AuditDone { done_on: date(&form, "done_on")?, summary: field(&form, "summary") }).await,
            "finding" => {
                let f = audits::NewFinding {
                    kind: field(&form, "kind"),
                    text: field(&form, "text"),
                    action: field(&form, "action"),
                    owner: field(&form, "owner"),
                    due: Date::parse_opt("due", &field(&form, "due"))?,
                };
                st.app.add_finding(&p, id()?, f).await.map(|_| ())
            }
            "close" => st.app.close_finding(&p, id()?).await,
            "review" => {
                let r = audits::NewReview {
                    held_on: date(&form, "held_on")?,
                    attendees: Text::parse("attendees", &field(&form, "attendees"))?,
                    inputs: field(&form, "inputs"),
                    decisions: field(&form, "decisions"),
                };
                st.app.add_management_review(&p, r).await.map(|_| ())
            }
            _ => Err(CoreError::NotFound("form")),
        }
    }
    .await;
    back!(st, s, r, "/registers/audits", audits_render)
}

// ---- Chain of custody -------------------------------------------------------------------

#[derive(Template)]
#[template(path = "custody.html")]
struct CustodyPage<'a> {
    c: Chrome<'a>,
    media: Vec<custody::MediumRow>,
    disposals: Vec<custody::DisposalRow>,
    retention: Vec<custody::RetentionRow>,
    error: Option<String>,
}

impl CustodyPage<'_> {
    fn en(&self) -> bool {
        self.c.lang == "en"
    }
}

async fn custody_render(st: &AppState, s: &ConsoleSession, error: Option<String>, status: StatusCode) -> Response {
    let p = &s.state.principal;
    let loaded = async { Ok::<_, CoreError>((st.app.list_media(p).await?, st.app.list_disposals(p).await?, st.app.retention(p).await?)) }.await;
    match loaded {
        Ok((media, disposals, retention)) => render(&CustodyPage { c: chrome(st, s, "isms"), media, disposals, retention, error }, status),
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

async fn custody_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    let _ = session!(s);
    custody_render(&st, &s, None, StatusCode::OK).await
}

async fn custody_post(State(st): State<AppState>, s: ConsoleSession, Path(what): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let r: Result<(), CoreError> = async {
        match what.as_str() {
            "medium" => st.app.register_medium(&p, custody::NewMedium { serial: Code::parse("serial", &field(&form, "serial"))?, kind: Text::parse("kind", &field(&form, "kind"))? }).await,
            "disposal" => {
                let d = custody::NewDisposal {
                    what: Text::parse("what", &field(&form, "what"))?,
                    medium: Some(field(&form, "medium")),
                    method: field(&form, "method"),
                    contractor: field(&form, "contractor"),
                    nda: form.contains_key("nda"),
                    certificate: field(&form, "certificate"),
                    witness: field(&form, "witness"),
                    disposed_on: date(&form, "disposed_on")?,
                };
                st.app.record_disposal(&p, d).await.map(|_| ())
            }
            "approve" => st.app.approve_disposal(&p, field(&form, "id").trim().parse().map_err(|_| CoreError::invalid("id", "which one"))?).await,
            _ => Err(CoreError::NotFound("form")),
        }
    }
    .await;
    back!(st, s, r, "/registers/custody", custody_render)
}

// ---- The audit pack ---------------------------------------------------------------------

/// The pack is an export: a password check older than five minutes is asked again on the
/// dashboard, then the download is tried again.
async fn pack_download(State(st): State<AppState>, s: ConsoleSession, Query(q): Query<PeriodQ>) -> Response {
    let p = session!(s);
    if let Err(e) = st.app.require_recent_auth(&p) {
        let msg = error_text(&chrome(&st, &s, "isms"), e);
        return cycle_render(&st, &s, Some(msg), StatusCode::FORBIDDEN).await;
    }
    match crate::api_isms::pack_response(&st, &p, &q).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}
