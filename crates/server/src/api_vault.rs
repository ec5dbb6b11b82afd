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
        r(M::POST, "/api/v1/vault/grants/{id}/revoke", "Revoke a grant at once", Some(A::VaultUse), post!(revoke_grant)),
        r(M::GET, "/api/v1/vault/{business}/records", "Records, masked (a recorded access)", Some(A::VaultUse), get!(list_records)),
        r(M::POST, "/api/v1/vault/{business}/records", "Key in a record (fields above normal are encrypted)", Some(A::VaultUse), post!(create_record)),
        r(M::POST, "/api/v1/vault/{business}/records/import", "Batch import of records (CSV, UTF-8 or Shift_JIS)", Some(A::VaultUse), post!(import_records)),
        r(M::POST, "/api/v1/vault/{business}/records/{uid}/reveal", "Reveal one field, with a purpose (a recorded access)", Some(A::VaultUse), post!(reveal)),
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

async fn list_records(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(b): Path<String>) -> WebResult<Json<Value>> {
    Ok(Json(json!(st.app.list_records(&p, &b).await?)))
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
