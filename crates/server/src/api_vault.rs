//! Vault routes of the JSON API (issue 5, first part): record schemas, standing holders,
//! time-limited grants, records in, masked lists, and field reveals.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::Json;
use mamori_core::policy::Action;
use mamori_core::vault::{NewField, NewGrant};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{r, ApiJson, RouteSpec};
use crate::error::WebResult;
use crate::{ApiPrincipal, AppState};

pub fn specs() -> Vec<RouteSpec> {
    use Action as A;
    use Method as M;
    vec![
        r(M::PUT, "/api/v1/users/{id}/person", "Link an account to its person (presence for data access)", Some(A::UsersManage), put!(link_person)),
        r(M::GET, "/api/v1/vault/{business}/fields", "A business's record schema", Some(A::VaultUse), get!(list_fields)),
        r(M::POST, "/api/v1/vault/{business}/fields", "Add fields to a business's record schema", Some(A::VaultSchema), post!(define_fields)),
        r(M::POST, "/api/v1/vault/{business}/holders", "CISO approval of a standing holder (DATA-1)", Some(A::VaultHolders), post!(approve_holder)),
        r(M::POST, "/api/v1/vault/{business}/grants", "A standing holder grants operations for a time (DATA-2)", Some(A::VaultUse), post!(grant)),
        r(M::POST, "/api/v1/vault/{business}/delete", "Delete all of a business's data (crypto-shredding) and get the signed deletion certificate", Some(A::VaultSchema), post!(delete_all)),
        r(M::GET, "/api/v1/vault/{business}/access", "The access-holder list (アクセス権限者リスト) and grant history", Some(A::VaultUse), get!(access_list)),
        r(M::POST, "/api/v1/vault/grants/{id}/approve", "A second standing holder approves a grant", Some(A::VaultUse), post!(approve_grant)),
        r(M::POST, "/api/v1/vault/grants/{id}/revoke", "Revoke a grant at once", Some(A::VaultUse), post!(revoke_grant)),
        r(M::GET, "/api/v1/vault/{business}/records", "Records, masked (a recorded access); ?field=&eq= searches a searchable field by its blind index", Some(A::VaultUse), get!(list_records)),
        r(M::POST, "/api/v1/vault/{business}/records", "Key in a record (fields above normal are encrypted)", Some(A::VaultUse), post!(create_record)),
        r(M::POST, "/api/v1/vault/{business}/records/import", "Batch import of records (CSV, UTF-8 or Shift_JIS)", Some(A::VaultUse), post!(import_records)),
        r(M::POST, "/api/v1/vault/{business}/records/{uid}/reveal", "Reveal one field, with a purpose (a recorded access)", Some(A::VaultUse), post!(reveal)),
        r(M::PUT, "/api/v1/clients/{client}/recipient", "The client's age recipient key for encrypted exports (LIFE-1)", Some(A::VaultSchema), put!(set_recipient)),
        r(M::POST, "/api/v1/vault/{business}/export", "Encrypted export for the client (age), entered in the media handover register (LIFE-1, LIFE-2)", Some(A::VaultUse), post!(export)),
        r(M::GET, "/api/v1/media-handovers", "The media handover register (媒体の授受記録)", Some(A::VaultSchema), get!(list_handovers)),
        r(M::POST, "/api/v1/media-handovers", "Enter a medium that left or arrived", Some(A::VaultSchema), post!(record_handover)),
        r(M::POST, "/api/v1/media-handovers/{id}/sign", "Record who signed for a handover", Some(A::VaultSchema), post!(sign_handover)),
        r(M::GET, "/api/v1/deletion-certificates/{id}/pdf", "A deletion certificate as a PDF in Japanese (LIFE-7)", Some(A::VaultSchema), get!(certificate_pdf)),
        r(M::GET, "/api/v1/terminals", "Terminals registered to a business and its zone (DATA-7)", Some(A::VaultUse), get!(list_terminals)),
        r(M::POST, "/api/v1/terminals", "Register a terminal; its device key is returned once", Some(A::VaultSchema), post!(register_terminal)),
        r(M::POST, "/api/v1/terminals/{code}/revoke", "Revoke a terminal", Some(A::VaultSchema), post!(revoke_terminal)),
        r(M::POST, "/api/v1/vault/kek/rotate", "Rotate the key-encryption key (re-wraps every data key, no downtime)", Some(A::VaultSchema), post!(rotate_kek)),
        r(M::POST, "/api/v1/vault/{business}/keys/rotate", "Start a new data key for a business's new records", Some(A::VaultSchema), post!(rotate_dek)),
        r(M::POST, "/api/v1/vault/{business}/copies", "Request a copy, duplicate, download or print (DATA-5)", Some(A::VaultUse), post!(request_copy)),
        r(M::GET, "/api/v1/vault/{business}/copies", "The copy register of a business", Some(A::VaultUse), get!(list_copies)),
        r(M::POST, "/api/v1/vault/copies/{id}/approve", "The information manager's prior approval of a copy", Some(A::VaultCopies), post!(approve_copy)),
        r(M::GET, "/api/v1/vault/copies/{id}/download", "Use an approved download once (CSV, watermarked; a recorded access)", Some(A::VaultUse), get!(download_copy)),
        r(M::POST, "/api/v1/vault/copies/{id}/destroyed", "Record a copy's destruction (LIFE-4)", Some(A::VaultUse), post!(destroy_copy)),
        r(M::GET, "/api/v1/vault/{business}/my-number-report", "My Number report: designated staff and every access (MYNUM-1); ?format=csv", Some(A::VaultSchema), get!(my_number_report)),
        r(M::PUT, "/api/v1/vault/{business}/double-entry", "Require double entry for a business (DATA-10)", Some(A::VaultSchema), put!(set_double_entry)),
        r(M::POST, "/api/v1/vault/{business}/entries", "One operator's entry of a form (double entry, DATA-10)", Some(A::VaultUse), post!(submit_entry)),
        r(M::GET, "/api/v1/vault/{business}/entries/mismatches", "Forms whose two entries disagree (field names only)", Some(A::VaultUse), get!(list_mismatches)),
        r(M::GET, "/api/v1/vault/{business}/entries/{id}", "Both entries of a disagreeing form, for a third person (a recorded access)", Some(A::VaultUse), get!(mismatch_detail)),
        r(M::POST, "/api/v1/vault/{business}/entries/{id}/resolve", "A third person decides the disagreeing fields; the record is created", Some(A::VaultUse), post!(resolve_mismatch)),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Link {
    employee_no: String,
}

async fn link_person(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(id): Path<i64>, ApiJson(b): ApiJson<Link>) -> WebResult<StatusCode> {
    st.app.link_user_person(&p, id, &b.employee_no).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_fields(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(b): Path<String>) -> WebResult<Json<Value>> {
    Ok(Json(json!(st.app.list_fields(&p, &b).await?)))
}

async fn define_fields(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(b): Path<String>, ApiJson(f): ApiJson<Vec<NewField>>) -> WebResult<StatusCode> {
    st.app.define_fields(&p, &b, f).await?;
    Ok(StatusCode::CREATED)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Holder {
    login: String,
}

async fn approve_holder(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(b): Path<String>, ApiJson(h): ApiJson<Holder>) -> WebResult<StatusCode> {
    st.app.approve_holder(&p, &b, &h.login).await?;
    Ok(StatusCode::CREATED)
}

async fn grant(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(b): Path<String>, ApiJson(g): ApiJson<NewGrant>) -> WebResult<(StatusCode, Json<Value>)> {
    let id = st.app.grant(&p, &b, g).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

async fn revoke_grant(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(id): Path<i64>) -> WebResult<StatusCode> {
    st.app.revoke_grant(&p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordQuery {
    /// Equality search on a searchable field: `?field=phone&eq=09012345678`.
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    eq: Option<String>,
}

async fn list_records(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(b): Path<String>, q: crate::api::Q<RecordQuery>) -> WebResult<Json<Value>> {
    let q = crate::api::query(q)?;
    Ok(Json(json!(match (q.field, q.eq) {
        (Some(f), Some(v)) => st.app.search_records(&p, &b, &f, &v).await?,
        (None, None) => st.app.list_records(&p, &b).await?,
        _ => return Err(mamori_core::CoreError::invalid("eq", "field and eq go together").into()),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRecord {
    values: BTreeMap<String, String>,
}

async fn create_record(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(b): Path<String>, ApiJson(r): ApiJson<NewRecord>) -> WebResult<(StatusCode, Json<Value>)> {
    let uid = st.app.create_record(&p, &b, r.values).await?;
    Ok((StatusCode::CREATED, Json(json!({"uid": uid}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reveal {
    field: String,
    purpose: String,
}

async fn reveal(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path((b, uid)): Path<(String, String)>, ApiJson(r): ApiJson<Reveal>) -> WebResult<Json<Value>> {
    Ok(Json(json!(st.app.reveal(&p, &b, &uid, &r.field, &r.purpose).await?)))
}

async fn access_list(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(b): Path<String>) -> WebResult<Json<Value>> {
    Ok(Json(json!(st.app.access_list(&p, &b).await?)))
}

async fn import_records(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(b): Path<String>, body: axum::body::Bytes) -> WebResult<(StatusCode, Json<Value>)> {
    let n = st.app.import_records(&p, &b, &body).await?;
    Ok((StatusCode::CREATED, Json(json!({"imported": n}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteAll {
    reason: String,
}

async fn delete_all(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(b): Path<String>, ApiJson(d): ApiJson<DeleteAll>) -> WebResult<Json<Value>> {
    Ok(Json(json!(st.app.delete_business_data(&p, &b, &d.reason).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DoubleEntry {
    on: bool,
}

async fn set_double_entry(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(b): Path<String>, ApiJson(d): ApiJson<DoubleEntry>) -> WebResult<StatusCode> {
    st.app.set_double_entry(&p, &b, d.on).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEntry {
    form_no: String,
    values: BTreeMap<String, String>,
}

async fn submit_entry(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(b): Path<String>, ApiJson(e): ApiJson<NewEntry>) -> WebResult<(StatusCode, Json<Value>)> {
    Ok((StatusCode::CREATED, Json(json!(st.app.submit_entry(&p, &b, &e.form_no, e.values).await?))))
}

async fn list_mismatches(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(b): Path<String>) -> WebResult<Json<Value>> {
    Ok(Json(json!(st.app.list_mismatches(&p, &b).await?)))
}

async fn mismatch_detail(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path((b, id)): Path<(String, i64)>) -> WebResult<Json<Value>> {
    Ok(Json(json!(st.app.mismatch_detail(&p, &b, id).await?)))
}

async fn resolve_mismatch(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path((b, id)): Path<(String, i64)>, ApiJson(r): ApiJson<NewRecord>) -> WebResult<(StatusCode, Json<Value>)> {
    let uid = st.app.resolve_mismatch(&p, &b, id, r.values).await?;
    Ok((StatusCode::CREATED, Json(json!({"uid": uid}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Recipient {
    recipient: String,
}

async fn set_recipient(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(c): Path<String>, ApiJson(r): ApiJson<Recipient>) -> WebResult<StatusCode> {
    st.app.set_client_recipient(&p, &c, &r.recipient).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportReq {
    counterpart: String,
    medium: String,
}

/// The export itself: an age file, with its SHA-256 and register line in headers.
async fn export(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(b): Path<String>, ApiJson(e): ApiJson<ExportReq>) -> WebResult<axum::response::Response> {
    let x = st.app.export_for_client(&p, &b, &e.counterpart, &e.medium).await?;
    Ok(crate::console_vault::age_download(x))
}

async fn list_handovers(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal) -> WebResult<Json<Value>> {
    Ok(Json(json!(st.app.handovers(&p).await?)))
}

create_handler!(record_handover, mamori_core::vault::handover::NewHandover, record_handover);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sign {
    signed_by: String,
}

async fn sign_handover(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(id): Path<i64>, ApiJson(s): ApiJson<Sign>) -> WebResult<StatusCode> {
    st.app.sign_handover(&p, id, &s.signed_by).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn approve_grant(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(id): Path<i64>) -> WebResult<StatusCode> {
    st.app.approve_grant(&p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn certificate_pdf(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(id): Path<i64>) -> WebResult<axum::response::Response> {
    let (_, pdf) = st.app.deletion_certificate(&p, id).await?;
    Ok(crate::console_vault::pdf_download(id, pdf))
}

list_handler!(list_terminals, list_terminals);

async fn register_terminal(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, ApiJson(t): ApiJson<mamori_core::vault::terminal::NewTerminal>) -> WebResult<(StatusCode, Json<Value>)> {
    let key = st.app.register_terminal(&p, t).await?;
    Ok((StatusCode::CREATED, Json(json!({"device_key": key}))))
}

async fn revoke_terminal(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(code): Path<String>) -> WebResult<StatusCode> {
    st.app.revoke_terminal(&p, &code).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate_kek(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal) -> WebResult<Json<Value>> {
    Ok(Json(json!({"rewrapped": st.app.rotate_kek(&p).await?})))
}

async fn rotate_dek(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(b): Path<String>) -> WebResult<(StatusCode, Json<Value>)> {
    Ok((StatusCode::CREATED, Json(json!({"key": st.app.rotate_data_key(&p, &b).await?}))))
}

async fn request_copy(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(b): Path<String>, ApiJson(c): ApiJson<mamori_core::vault::copies::NewCopy>) -> WebResult<(StatusCode, Json<Value>)> {
    Ok((StatusCode::CREATED, Json(json!({"id": st.app.request_copy(&p, &b, c).await?}))))
}

async fn list_copies(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(b): Path<String>) -> WebResult<Json<Value>> {
    Ok(Json(json!(st.app.list_copies(&p, &b).await?)))
}

async fn approve_copy(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(id): Path<i64>) -> WebResult<StatusCode> {
    st.app.approve_copy(&p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn download_copy(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(id): Path<i64>) -> WebResult<axum::response::Response> {
    let c = st.app.use_copy(&p, id, mamori_core::types::Op::Download).await?;
    Ok(crate::console_vault::csv_download(id, c))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Destroyed {
    method: String,
}

async fn destroy_copy(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(id): Path<i64>, ApiJson(d): ApiJson<Destroyed>) -> WebResult<StatusCode> {
    st.app.destroy_copy(&p, id, &d.method).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    #[serde(default)]
    from: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    to: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    format: Option<String>,
}

async fn my_number_report(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(b): Path<String>, q: crate::api::Q<ReportQuery>) -> WebResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let q = crate::api::query(q)?;
    let r = st.app.my_number_report(&p, &b, q.from, q.to).await?;
    Ok(if q.format.as_deref() == Some("csv") {
        crate::console_vault::report_download(&r)
    } else {
        Json(json!(r)).into_response()
    })
}
