//! Management registers of the JSON API (issue 6, first part): the asset register.

use axum::extract::State;
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
    ]
}

list_handler!(list_assets, list_assets);
create_handler!(create_asset, mamori_core::registers::assets::NewAsset, create_asset);

async fn import_assets(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, body: axum::body::Bytes) -> WebResult<(StatusCode, Json<Value>)> {
    Ok((StatusCode::CREATED, Json(json!({"imported": st.app.import_assets(&p, &body).await?}))))
}

async fn export_assets(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal) -> WebResult<axum::response::Response> {
    Ok(crate::console_registers::assets_csv(st.app.export_assets(&p).await?))
}
