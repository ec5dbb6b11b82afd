//! Management registers of the JSON API (issue 6, first part): the asset register.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::Json;
use mamori_core::policy::Action;
use serde_json::{json, Value};

use crate::api::{r, RouteSpec};
use crate::error::WebResult;
use crate::{ApiPrincipal, AppState};

pub fn specs() -> Vec<RouteSpec> {
    use Action as A;
    use Method as M;
    vec![
        r(M::GET, "/api/v1/assets", "The asset register (情報資産台帳, MGMT-3)", Some(A::RegistersRead), get!(list_assets)),
        r(M::POST, "/api/v1/assets", "Add an asset", Some(A::RegistersWrite), post!(create_asset)),
        r(M::POST, "/api/v1/assets/import", "Import assets (CSV, UTF-8 or Shift_JIS; a bad row rejects the file)", Some(A::RegistersWrite), post!(import_assets)),
        r(M::GET, "/api/v1/assets/export", "The asset register as CSV for Excel", Some(A::RegistersRead), get!(export_assets)),
        r(M::GET, "/api/v1/risk/catalogue", "Threats and vulnerabilities of the risk catalogue", Some(A::RegistersRead), get!(risk_catalogue)),
        r(M::POST, "/api/v1/risk/catalogue", "Extend the catalogue", Some(A::RegistersWrite), post!(add_catalogue_entry)),
        r(M::GET, "/api/v1/risk/bands", "The acceptance bands (1–27 scale)", Some(A::RegistersRead), get!(risk_bands)),
        r(M::PUT, "/api/v1/risk/bands", "Set the acceptance bands", Some(A::RegistersWrite), put!(set_risk_bands)),
        r(M::GET, "/api/v1/risk/assessments", "Risk assessments with residual risk and acceptance (MGMT-4)", Some(A::RegistersRead), get!(list_risks)),
        r(M::POST, "/api/v1/risk/assessments", "Assess a risk of an asset", Some(A::RegistersWrite), post!(assess_risk)),
        r(M::POST, "/api/v1/risk/assessments/{id}/accept", "Accept a residual risk (signed by the caller, not its author)", Some(A::RegistersWrite), post!(accept_risk)),
        r(M::POST, "/api/v1/incidents", "Report an incident, any hour (intake for staff and the emergency contact centre, INC-1)", Some(A::IncidentsReport), post!(report_incident)),
        r(M::GET, "/api/v1/incidents", "Incidents", Some(A::RegistersRead), get!(list_incidents)),
        r(M::GET, "/api/v1/incidents/{id}", "An incident with its APPI clock, draft report and timeline (INC-2)", Some(A::RegistersRead), get!(incident)),
        r(M::PUT, "/api/v1/incidents/{id}/triage", "Triage: the facts the APPI clock needs", Some(A::RegistersWrite), put!(triage_incident)),
        r(M::GET, "/api/v1/policy-documents", "The policy set with versions in force and yearly review (MGMT-1)", Some(A::RegistersRead), get!(list_documents)),
        r(M::POST, "/api/v1/policy-documents", "Draft a new version of a policy document", Some(A::RegistersWrite), post!(draft_document)),
        r(M::POST, "/api/v1/policy-documents/{code}/versions/{version}/approve", "The CISO approves a version (not their own draft)", Some(A::RegistersWrite), post!(approve_document)),
    ]
}

list_handler!(list_documents, list_documents);

async fn draft_document(
    State(st): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    crate::api::ApiJson(d): crate::api::ApiJson<mamori_core::registers::documents::NewDraft>,
) -> WebResult<(StatusCode, Json<Value>)> {
    Ok((StatusCode::CREATED, Json(json!({"version": st.app.draft_document(&p, d).await?}))))
}

async fn approve_document(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path((code, version)): Path<(String, i64)>) -> WebResult<StatusCode> {
    st.app.approve_document(&p, &code, version).await?;
    Ok(StatusCode::NO_CONTENT)
}

list_handler!(list_incidents, list_incidents);

async fn report_incident(
    State(st): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    crate::api::ApiJson(i): crate::api::ApiJson<mamori_core::registers::incidents::NewIncident>,
) -> WebResult<(StatusCode, Json<Value>)> {
    Ok((StatusCode::CREATED, Json(json!({"id": st.app.report_incident(&p, i, "api").await?}))))
}

async fn incident(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(id): Path<i64>) -> WebResult<Json<Value>> {
    Ok(Json(json!(st.app.incident(&p, id).await?)))
}

async fn triage_incident(
    State(st): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    Path(id): Path<i64>,
    crate::api::ApiJson(t): crate::api::ApiJson<mamori_core::registers::incidents::Triage>,
) -> WebResult<StatusCode> {
    st.app.triage_incident(&p, id, t).await?;
    Ok(StatusCode::NO_CONTENT)
}

list_handler!(list_assets, list_assets);
create_handler!(create_asset, mamori_core::registers::assets::NewAsset, create_asset);

async fn import_assets(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, body: axum::body::Bytes) -> WebResult<(StatusCode, Json<Value>)> {
    Ok((StatusCode::CREATED, Json(json!({"imported": st.app.import_assets(&p, &body).await?}))))
}

async fn export_assets(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal) -> WebResult<axum::response::Response> {
    Ok(crate::console_registers::assets_csv(st.app.export_assets(&p).await?))
}

list_handler!(risk_catalogue, risk_catalogue);
list_handler!(list_risks, list_risks);
create_handler!(assess_risk, mamori_core::registers::risks::NewAssessment, assess_risk);

async fn add_catalogue_entry(
    State(st): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    crate::api::ApiJson(e): crate::api::ApiJson<mamori_core::registers::risks::NewCatalogueEntry>,
) -> WebResult<StatusCode> {
    st.app.add_catalogue_entry(&p, e).await?;
    Ok(StatusCode::CREATED)
}

async fn risk_bands(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal) -> WebResult<Json<Value>> {
    st.app.require(&p, mamori_core::policy::Action::RegistersRead).await?;
    Ok(Json(json!(st.app.risk_bands().await?)))
}

async fn set_risk_bands(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, crate::api::ApiJson(b): crate::api::ApiJson<mamori_core::registers::risk::Bands>) -> WebResult<StatusCode> {
    st.app.set_risk_bands(&p, b).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn accept_risk(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(id): Path<i64>) -> WebResult<StatusCode> {
    st.app.accept_risk(&p, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
