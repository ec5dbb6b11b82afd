//! The ISMS cycle in the JSON API (issue 6): statement of applicability with live evidence,
//! treatment plan, objectives and monthly tasks with sign-off, people's records, vendors,
//! audits, chain of custody and the audit pack. Every handler is thin: the domain decides.

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mamori_core::policy::Action;
use mamori_core::registers::{audits, custody, cycle, evidence, people, soa, vendors};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{r, signed_in, ApiJson, RouteSpec};
use crate::error::WebResult;
use crate::{ApiPrincipal, AppState};

pub fn specs() -> Vec<RouteSpec> {
    use Action as A;
    use Method as M;
    vec![
        r(M::GET, "/api/v1/soa", "Statement of applicability with live evidence (?from=&to=, default this fiscal year)", Some(A::RegistersRead), get!(get_soa)),
        r(M::PUT, "/api/v1/soa/{control}", "Decide a control's applicability with its justification", Some(A::RegistersWrite), put!(set_soa)),
        r(M::GET, "/api/v1/evidence", "Every kind of live evidence for a period", Some(A::RegistersRead), get!(get_evidence)),
        r(M::GET, "/api/v1/treatments", "The risk treatment plan (リスク対応計画書)", Some(A::RegistersRead), get!(list_treatments)),
        r(M::POST, "/api/v1/treatments", "Add a treatment action (optionally a self-inspection item)", Some(A::RegistersWrite), post!(add_treatment)),
        r(M::POST, "/api/v1/treatments/{id}/done", "Mark a treatment action done", Some(A::RegistersWrite), post!(treatment_done)),
        r(M::GET, "/api/v1/objectives", "Information security objectives (MGMT-5)", Some(A::RegistersRead), get!(list_objectives)),
        r(M::POST, "/api/v1/objectives", "Add an objective", Some(A::RegistersWrite), post!(add_objective)),
        r(M::GET, "/api/v1/tasks", "Monthly and yearly tasks (?overdue=true for the overdue ones)", Some(A::RegistersRead), get!(list_tasks)),
        r(M::GET, "/api/v1/tasks/{id}", "A task with its items", Some(A::RegistersRead), get!(task)),
        r(M::PUT, "/api/v1/tasks/{id}/answers", "Answer every item of a task", Some(A::RegistersWrite), put!(answer_task)),
        r(M::POST, "/api/v1/tasks/{id}/sign-off", "The secretariat signs off (accept) or sends back a task", Some(A::RegistersSignOff), post!(sign_off)),
        r(M::PUT, "/api/v1/users/{login}/email", "Set the address reminder mail goes to", Some(A::UsersManage), put!(set_email)),
        signed_in(M::GET, "/api/v1/pledge-texts/{kind}", "The current pledge text of a kind (hire, yearly, leaving); any member of staff", get!(pledge_text)),
        r(M::POST, "/api/v1/pledge-texts", "A new version of a pledge text", Some(A::RegistersWrite), post!(add_pledge_text)),
        signed_in(M::POST, "/api/v1/pledges", "Sign one's own pledge (誓約書, HUMAN-1); any member of staff", post!(sign_pledge)),
        signed_in(M::GET, "/api/v1/me/records", "What the caller owes: pledges and training", get!(my_records)),
        r(M::GET, "/api/v1/people-records", "Everyone's pledges and training state, flags", Some(A::RegistersRead), get!(people_records)),
        r(M::GET, "/api/v1/courses", "Training courses (HUMAN-2)", Some(A::RegistersRead), get!(list_courses)),
        r(M::POST, "/api/v1/courses", "Add a course with its due rule", Some(A::RegistersWrite), post!(add_course)),
        r(M::POST, "/api/v1/attendances", "Record attendance and a test score", Some(A::RegistersWrite), post!(attend)),
        r(M::POST, "/api/v1/drills", "Record a drill or survey result (HUMAN-3)", Some(A::RegistersWrite), post!(drill)),
        r(M::PUT, "/api/v1/settings/block-flagged-grants", "Refuse data grants to people who owe a pledge or training", Some(A::RegistersWrite), put!(block_grants)),
        r(M::GET, "/api/v1/vendors", "Vendors with certificates, contracts and audits (VENDOR-1..3)", Some(A::RegistersRead), get!(list_vendors)),
        r(M::POST, "/api/v1/vendors", "Add a vendor", Some(A::RegistersWrite), post!(add_vendor)),
        r(M::PUT, "/api/v1/vendors/{code}/certificate", "Renew a vendor's certificate", Some(A::RegistersWrite), put!(renew_certificate)),
        r(M::POST, "/api/v1/vendors/{code}/contracts", "A new contract (refused if the certificate expired)", Some(A::RegistersWrite), post!(add_contract)),
        r(M::POST, "/api/v1/vendors/{code}/audits", "Record a vendor audit (yearly or a My Number stage)", Some(A::RegistersWrite), post!(vendor_audit)),
        r(M::POST, "/api/v1/contracts/{id}/start", "Work starts under a contract", Some(A::RegistersWrite), post!(start_work)),
        r(M::GET, "/api/v1/audits", "Audit programme with findings (MGMT-7)", Some(A::RegistersRead), get!(list_audits)),
        r(M::POST, "/api/v1/audits", "Plan an audit", Some(A::RegistersWrite), post!(plan_audit)),
        r(M::POST, "/api/v1/audits/{id}/done", "Record that an audit was done", Some(A::RegistersWrite), post!(audit_done)),
        r(M::POST, "/api/v1/audits/{id}/findings", "A finding (a nonconformity needs a corrective action)", Some(A::RegistersWrite), post!(add_finding)),
        r(M::POST, "/api/v1/findings/{id}/close", "Close a finding after follow-up", Some(A::RegistersWrite), post!(close_finding)),
        r(M::GET, "/api/v1/management-reviews", "Management review records", Some(A::RegistersRead), get!(list_reviews)),
        r(M::POST, "/api/v1/management-reviews", "Record a management review", Some(A::RegistersWrite), post!(add_review)),
        r(M::GET, "/api/v1/media", "Registered media (never reused)", Some(A::RegistersRead), get!(list_media)),
        r(M::POST, "/api/v1/media", "Register a medium", Some(A::RegistersWrite), post!(add_medium)),
        r(M::GET, "/api/v1/disposals", "Disposal records (LIFE-6)", Some(A::RegistersRead), get!(list_disposals)),
        r(M::POST, "/api/v1/disposals", "Record a disposal", Some(A::RegistersWrite), post!(add_disposal)),
        r(M::POST, "/api/v1/disposals/{id}/approve", "Approve an outsourced disposal", Some(A::RegistersWrite), post!(approve_disposal)),
        r(M::GET, "/api/v1/retention", "Retention schedules and their enforcement (PHY-11)", Some(A::RegistersRead), get!(retention)),
        r(M::GET, "/api/v1/audit-pack", "The audit pack for a period (?from=&to=&format=pdf|csv|json)", Some(A::RegistersRead), get!(audit_pack)),
    ]
}

#[derive(Deserialize)]
pub(crate) struct PeriodQ {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub overdue: Option<bool>,
}

impl PeriodQ {
    pub(crate) fn period(&self, now: chrono::DateTime<chrono::Utc>) -> mamori_core::Result<evidence::Period> {
        match (self.from.as_deref().filter(|s| !s.is_empty()), self.to.as_deref().filter(|s| !s.is_empty())) {
            (Some(f), Some(t)) => evidence::Period::parse(f, t),
            (None, None) => Ok(evidence::Period::fiscal_year(now)),
            _ => Err(mamori_core::CoreError::invalid("to", "give both from and to, or neither")),
        }
    }
}

macro_rules! with_id {
    ($name:ident, $method:ident) => {
        async fn $name(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(id): Path<i64>) -> WebResult<StatusCode> {
            st.app.$method(&p, id).await?;
            Ok(StatusCode::NO_CONTENT)
        }
    };
}
macro_rules! path_body {
    ($name:ident, $pt:ty, $ty:ty, $method:ident) => {
        async fn $name(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(k): Path<$pt>, ApiJson(b): ApiJson<$ty>) -> WebResult<(StatusCode, Json<Value>)> {
            let v = st.app.$method(&p, &k, b).await?;
            Ok((StatusCode::CREATED, Json(json!({"id": v}))))
        }
    };
}

async fn get_soa(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Query(q): Query<PeriodQ>) -> WebResult<Json<Value>> {
    let period = q.period(st.app.clock.now())?;
    Ok(Json(json!({"period": period.label(), "controls": st.app.soa(&p, period).await?})))
}

async fn set_soa(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(c): Path<String>, ApiJson(u): ApiJson<soa::SoaUpdate>) -> WebResult<StatusCode> {
    st.app.set_soa(&p, &c, u).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_evidence(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Query(q): Query<PeriodQ>) -> WebResult<Json<Value>> {
    st.app.require(&p, Action::RegistersRead).await?;
    let period = q.period(st.app.clock.now())?;
    let flags = st.app.people_flags_all().await?;
    Ok(Json(json!({"period": period.label(), "evidence": st.app.evidence_all(period, &flags).await?})))
}

list_handler!(list_treatments, list_treatments);
create_handler!(add_treatment, soa::NewTreatment, add_treatment);
with_id!(treatment_done, complete_treatment);
list_handler!(list_objectives, list_objectives);
create_handler!(add_objective, cycle::NewObjective, add_objective);

async fn list_tasks(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Query(q): Query<PeriodQ>) -> WebResult<Json<Value>> {
    Ok(Json(json!(st.app.list_tasks(&p, q.overdue.unwrap_or(false)).await?)))
}

async fn task(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(id): Path<i64>) -> WebResult<Json<Value>> {
    Ok(Json(json!(st.app.task(&p, id).await?)))
}

async fn answer_task(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(id): Path<i64>, ApiJson(a): ApiJson<Vec<cycle::Answer>>) -> WebResult<StatusCode> {
    st.app.answer_task(&p, id, a).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignOff {
    accept: bool,
    #[serde(default)]
    comment: String,
}

async fn sign_off(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(id): Path<i64>, ApiJson(b): ApiJson<SignOff>) -> WebResult<StatusCode> {
    st.app.sign_off_task(&p, id, b.accept, &b.comment).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Email {
    email: String,
}

async fn set_email(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(login): Path<String>, ApiJson(b): ApiJson<Email>) -> WebResult<StatusCode> {
    st.app.set_user_email(&p, &login, &b.email).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn pledge_text(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(kind): Path<String>) -> WebResult<Json<Value>> {
    st.app.require(&p, Action::PledgesSign).await?;
    let t = st.app.pledge_text(&kind).await?.ok_or(mamori_core::CoreError::NotFound("pledge text"))?;
    Ok(Json(json!(t)))
}

async fn add_pledge_text(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, ApiJson(t): ApiJson<people::NewPledgeText>) -> WebResult<(StatusCode, Json<Value>)> {
    Ok((StatusCode::CREATED, Json(json!({"version": st.app.add_pledge_text(&p, t).await?}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignPledge {
    kind: String,
    version: i64,
}

async fn sign_pledge(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, ApiJson(b): ApiJson<SignPledge>) -> WebResult<StatusCode> {
    st.app.sign_pledge(&p, &b.kind, b.version).await?;
    Ok(StatusCode::CREATED)
}

async fn my_records(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal) -> WebResult<Json<Value>> {
    Ok(Json(json!(st.app.my_flags(&p).await?)))
}

list_handler!(people_records, list_people_flags);
list_handler!(list_courses, list_courses);

async fn add_course(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, ApiJson(c): ApiJson<people::NewCourse>) -> WebResult<StatusCode> {
    st.app.add_course(&p, c).await?;
    Ok(StatusCode::CREATED)
}

async fn attend(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, ApiJson(a): ApiJson<people::NewAttendance>) -> WebResult<(StatusCode, Json<Value>)> {
    Ok((StatusCode::CREATED, Json(json!({"passed": st.app.record_attendance(&p, a).await?}))))
}

async fn drill(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, ApiJson(d): ApiJson<people::NewDrill>) -> WebResult<StatusCode> {
    st.app.record_drill(&p, d).await?;
    Ok(StatusCode::CREATED)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct On {
    on: bool,
}

async fn block_grants(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, ApiJson(b): ApiJson<On>) -> WebResult<StatusCode> {
    st.app.set_block_flagged_grants(&p, b.on).await?;
    Ok(StatusCode::NO_CONTENT)
}

list_handler!(list_vendors, list_vendors);
create_handler!(add_vendor, vendors::NewVendor, add_vendor);
path_body!(add_contract, String, vendors::NewContract, add_contract);
path_body!(vendor_audit, String, vendors::NewVendorAudit, record_vendor_audit);
with_id!(start_work, start_contract_work);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Renewal {
    cert_number: mamori_core::types::Text,
    cert_expiry: mamori_core::types::Date,
}

async fn renew_certificate(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(code): Path<String>, ApiJson(b): ApiJson<Renewal>) -> WebResult<StatusCode> {
    st.app.renew_vendor_certificate(&p, &code, b.cert_number, b.cert_expiry).await?;
    Ok(StatusCode::NO_CONTENT)
}

list_handler!(list_audits, list_audits);
create_handler!(plan_audit, audits::NewAudit, plan_audit);
with_id!(close_finding, close_finding);
list_handler!(list_reviews, list_management_reviews);
create_handler!(add_review, audits::NewReview, add_management_review);

async fn audit_done(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(id): Path<i64>, ApiJson(b): ApiJson<audits::AuditDone>) -> WebResult<StatusCode> {
    st.app.complete_audit(&p, id, b).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn add_finding(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(id): Path<i64>, ApiJson(b): ApiJson<audits::NewFinding>) -> WebResult<(StatusCode, Json<Value>)> {
    Ok((StatusCode::CREATED, Json(json!({"id": st.app.add_finding(&p, id, b).await?}))))
}

list_handler!(list_media, list_media);
list_handler!(list_disposals, list_disposals);
list_handler!(retention, retention);
create_handler!(add_disposal, custody::NewDisposal, record_disposal);
with_id!(approve_disposal, approve_disposal);

async fn add_medium(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, ApiJson(m): ApiJson<custody::NewMedium>) -> WebResult<StatusCode> {
    st.app.register_medium(&p, m).await?;
    Ok(StatusCode::CREATED)
}

/// The pack as PDF (default), CSV or JSON.
pub(crate) async fn pack_response(st: &AppState, p: &mamori_core::auth::Principal, q: &PeriodQ) -> WebResult<Response> {
    let period = q.period(st.app.clock.now())?;
    let pack = st.app.audit_pack(p, period).await?;
    let name = format!("audit-pack-{}", period.from.format("%Y%m%d"));
    Ok(match q.format.as_deref().unwrap_or("pdf") {
        "csv" => crate::console::attachment("text/csv; charset=utf-8", &format!("{name}.csv"), pack.csv()?, &[]),
        "json" => Json(json!(pack)).into_response(),
        _ => crate::console::attachment("application/pdf", &format!("{name}.pdf"), pack.pdf(), &[]),
    })
}

async fn audit_pack(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Query(q): Query<PeriodQ>) -> WebResult<Response> {
    pack_response(&st, &p, &q).await
}
