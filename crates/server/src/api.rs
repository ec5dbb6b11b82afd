//! The JSON API under `/api/v1`. Routes are declared once in [`ROUTES`]-style specs from which
//! both the router and the OpenAPI document are built, so the document lists every route and
//! who may call it (`x-mamori-action`; `public` for the two open routes).

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use mamori_core::auth::SessionKind;
use mamori_core::directory::{NewBusiness, NewClient, NewDepartment, NewPerson, NewSite, NewZone};
use mamori_core::ledger::SearchFilter;
use mamori_core::policy::Action;
use mamori_core::types::Role;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{WebError, WebResult};
use crate::{ApiPrincipal, AppState};

/// JSON body extractor whose rejections are JSON errors with a stable code.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = WebError;
    async fn from_request(req: Request, state: &S) -> Result<Self, WebError> {
        let ct = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !ct.starts_with("application/json") {
            return Err(WebError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send application/json"));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|_| WebError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "request body too large"))?;
        if bytes.len() > 256 * 1024 {
            return Err(WebError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", "request body too large"));
        }
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| {
            let code = if e.is_syntax() || e.is_eof() { "malformed_json" } else { "invalid_body" };
            // serde's message names the field and the expected values; it holds no secret.
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
            WebError::bad_request(code, msg)
        })
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone, signed in or not.
    Public,
    /// Any signed-in account, whatever its roles (sign-out, who am I).
    SignedIn,
    /// Accounts the policy permits this action.
    Action(Action),
}

impl Auth {
    pub fn as_str(self) -> &'static str {
        match self {
            Auth::Public => "public",
            Auth::SignedIn => "signed-in",
            Auth::Action(a) => a.as_str(),
        }
    }
}

pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub summary: &'static str,
    pub auth: Auth,
    pub handler: MethodRouter<AppState>,
}

pub(crate) fn r(method: Method, path: &'static str, summary: &'static str, auth: Option<Action>, h: MethodRouter<AppState>) -> RouteSpec {
    let auth = match auth {
        None => Auth::Public,
        Some(a) => Auth::Action(a),
    };
    RouteSpec { method, path, summary, auth, handler: h }
}

/// A route open to every signed-in caller (their own session, pledge and records); the handler
/// may still refuse some roles.
pub(crate) fn signed_in(method: Method, path: &'static str, summary: &'static str, h: MethodRouter<AppState>) -> RouteSpec {
    RouteSpec { method, path, summary, auth: Auth::SignedIn, handler: h }
}

// Route and handler macros, shared with `api_doors` and `api_vault` (`#[macro_use]`).
macro_rules! get { ($h:expr) => { axum::routing::on(axum::routing::MethodFilter::GET, $h) }; }
macro_rules! post { ($h:expr) => { axum::routing::on(axum::routing::MethodFilter::POST, $h) }; }
macro_rules! put { ($h:expr) => { axum::routing::on(axum::routing::MethodFilter::PUT, $h) }; }
macro_rules! delete { ($h:expr) => { axum::routing::on(axum::routing::MethodFilter::DELETE, $h) }; }

pub fn specs() -> Vec<RouteSpec> {
    use Action as A;
    use Method as M;
    vec![
        r(M::GET, "/api/v1/openapi.json", "This document", None, get!(openapi)),
        r(M::GET, "/api/v1/health", "Liveness", None, get!(health)),
        r(M::POST, "/api/v1/sessions", "Sign in; returns a bearer token", None, post!(sign_in)),
        signed_in(M::DELETE, "/api/v1/sessions/current", "Sign out", delete!(sign_out)),
        signed_in(M::GET, "/api/v1/me", "The caller and its roles", get!(me)),
        r(M::GET, "/api/v1/sites", "List sites", Some(A::DirectoryRead), get!(list_sites)),
        r(M::POST, "/api/v1/sites", "Add a site", Some(A::DirectoryWrite), post!(create_site)),
        r(M::GET, "/api/v1/departments", "List departments", Some(A::DirectoryRead), get!(list_departments)),
        r(M::POST, "/api/v1/departments", "Add a department", Some(A::DirectoryWrite), post!(create_department)),
        r(M::GET, "/api/v1/zones", "List zones", Some(A::DirectoryRead), get!(list_zones)),
        r(M::POST, "/api/v1/zones", "Add a zone", Some(A::DirectoryWrite), post!(create_zone)),
        r(M::GET, "/api/v1/people", "List people", Some(A::PeopleRead), get!(list_people)),
        r(M::POST, "/api/v1/people", "Add a person", Some(A::PeopleWrite), post!(create_person)),
        r(M::PUT, "/api/v1/people/{employee_no}", "Replace a person's record", Some(A::PeopleWrite), put!(update_person)),
        r(M::POST, "/api/v1/people/import", "Import a staff roster (CSV, UTF-8 or Shift_JIS)", Some(A::PeopleImport), post!(import_people)),
        r(M::GET, "/api/v1/clients", "List clients (委託元)", Some(A::DirectoryRead), get!(list_clients)),
        r(M::POST, "/api/v1/clients", "Add a client", Some(A::DirectoryWrite), post!(create_client)),
        r(M::GET, "/api/v1/businesses", "List businesses (業務)", Some(A::DirectoryRead), get!(list_businesses)),
        r(M::POST, "/api/v1/businesses", "Add a business", Some(A::DirectoryWrite), post!(create_business)),
        r(M::GET, "/api/v1/users", "List accounts", Some(A::UsersManage), get!(list_users)),
        r(M::POST, "/api/v1/users", "Add an account", Some(A::UsersManage), post!(create_user)),
        r(M::PUT, "/api/v1/users/{id}/roles", "Replace an account's roles", Some(A::UsersManage), put!(set_roles)),
        r(M::POST, "/api/v1/tokens", "Create an API token", Some(A::UsersManage), post!(create_token)),
        r(M::GET, "/api/v1/ledger/events", "Search the ledger", Some(A::LedgerRead), get!(search_ledger)),
        r(M::GET, "/api/v1/ledger/proof", "Inclusion proof of an entry", Some(A::LedgerRead), get!(ledger_proof)),
        r(M::GET, "/api/v1/ledger/key", "The centre's checkpoint verifier key", Some(A::LedgerRead), get!(ledger_key)),
        r(M::POST, "/api/v1/ledger/verify", "Verify the whole ledger now", Some(A::LedgerVerify), post!(verify_ledger)),
        r(M::GET, "/api/v1/ledger/export", "Export a client's bundle", Some(A::LedgerExport), get!(export_ledger)),
        r(M::GET, "/api/v1/ledger/reviews", "List log reviews (定期的に確認)", Some(A::LedgerRead), get!(list_reviews)),
        r(M::POST, "/api/v1/ledger/reviews", "Sign off a log review", Some(A::LedgerReview), post!(create_review)),
    ]
    .into_iter()
    .chain(crate::api_doors::specs())
    .chain(crate::api_vault::specs())
    .chain(crate::api_registers::specs())
    .chain(crate::api_isms::specs())
    .collect()
}

pub fn routes() -> Router<AppState> {
    let mut router = Router::new();
    for s in specs() {
        router = router.route(s.path, s.handler);
    }
    router
}

/// The OpenAPI 3.1 document, built from the same specs as the router.
pub fn openapi_doc() -> Value {
    let mut paths = serde_json::Map::new();
    for s in specs() {
        let entry = paths.entry(s.path.to_owned()).or_insert_with(|| json!({}));
        let params: Vec<Value> = s
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|x| x.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": s.summary,
            "x-mamori-action": s.auth.as_str(),
            "parameters": params,
            "responses": {
                "200": {"description": "OK"},
                "400": {"description": "Malformed request", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                "401": {"description": "No or bad credentials"},
                "403": {"description": "Not permitted by policy"},
                "422": {"description": "Invalid field"}
            }
        });
        if s.auth != Auth::Public {
            op["security"] = json!([{"bearer": []}, {"session": []}]);
        } else {
            op["security"] = json!([]);
        }
        if let Some(o) = entry.as_object_mut() {
            o.insert(s.method.as_str().to_lowercase(), op);
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "mamori API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "mamori_session"}
            },
            "schemas": {"Error": {"type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}, "line": {"type": "integer"}}}}
        }
    })
}

async fn openapi() -> Json<Value> {
    Json(openapi_doc())
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    login: String,
    password: String,
    #[serde(default)]
    totp: Option<String>,
}

async fn sign_in(
    State(st): State<AppState>,
    axum::extract::ConnectInfo(addr): axum::extract::ConnectInfo<std::net::SocketAddr>,
    ApiJson(b): ApiJson<SignIn>,
) -> WebResult<Response> {
    let s = st.app.sign_in(&b.login, &b.password, b.totp.as_deref(), Some(addr.ip().to_string()), SessionKind::Api).await?;
    Ok((StatusCode::CREATED, Json(json!({"token": s.token, "user_id": s.user_id, "expires_at": s.expires_at}))).into_response())
}

async fn sign_out(State(st): State<AppState>, headers: HeaderMap, ApiPrincipal(p): ApiPrincipal) -> WebResult<StatusCode> {
    if let Some(t) = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")) {
        st.app.sign_out(t.trim(), &p).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn me(ApiPrincipal(p): ApiPrincipal) -> WebResult<Json<Value>> {
    Ok(Json(json!({"user_id": p.user_id, "login": p.login, "name": p.display_name, "roles": p.roles})))
}

macro_rules! list_handler {
    ($name:ident, $method:ident) => {
        async fn $name(
            axum::extract::State(st): axum::extract::State<crate::AppState>,
            crate::ApiPrincipal(p): crate::ApiPrincipal,
        ) -> crate::error::WebResult<axum::Json<serde_json::Value>> {
            Ok(axum::Json(serde_json::json!(st.app.$method(&p).await?)))
        }
    };
}
macro_rules! create_handler {
    ($name:ident, $ty:ty, $method:ident) => {
        async fn $name(
            axum::extract::State(st): axum::extract::State<crate::AppState>,
            crate::ApiPrincipal(p): crate::ApiPrincipal,
            crate::api::ApiJson(b): crate::api::ApiJson<$ty>,
        ) -> crate::error::WebResult<(axum::http::StatusCode, axum::Json<serde_json::Value>)> {
            let id = st.app.$method(&p, b).await?;
            Ok((axum::http::StatusCode::CREATED, axum::Json(serde_json::json!({"id": id}))))
        }
    };
}

list_handler!(list_sites, list_sites);
list_handler!(list_departments, list_departments);
list_handler!(list_zones, list_zones);
list_handler!(list_people, list_people);
list_handler!(list_clients, list_clients);
list_handler!(list_businesses, list_businesses);
list_handler!(list_users, list_users);
create_handler!(create_site, NewSite, create_site);
create_handler!(create_department, NewDepartment, create_department);
create_handler!(create_zone, NewZone, create_zone);
create_handler!(create_person, NewPerson, create_person);
create_handler!(create_client, NewClient, create_client);
create_handler!(create_business, NewBusiness, create_business);

async fn update_person(
    State(st): State<AppState>,
    ApiPrincipal(p): ApiPrincipal,
    Path(employee_no): Path<String>,
    ApiJson(b): ApiJson<NewPerson>,
) -> WebResult<Json<Value>> {
    if b.employee_no.as_str() != employee_no {
        return Err(WebError::bad_request("invalid_body", "employee_no in the body differs from the path"));
    }
    Ok(Json(json!({"id": st.app.update_person(&p, b).await?})))
}

async fn import_people(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, body: Bytes) -> WebResult<Json<Value>> {
    Ok(Json(json!(st.app.import_people(&p, &body).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    login: String,
    name: String,
    roles: Vec<Role>,
    password: String,
}

async fn create_user(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, ApiJson(b): ApiJson<NewUser>) -> WebResult<(StatusCode, Json<Value>)> {
    let id = st.app.create_user(Some(&p), &b.login, &b.name, &b.roles, &b.password).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Roles {
    roles: Vec<Role>,
}

async fn set_roles(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(id): Path<i64>, ApiJson(b): ApiJson<Roles>) -> WebResult<StatusCode> {
    st.app.set_roles(&p, id, &b.roles).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    login: String,
    name: String,
}

async fn create_token(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, ApiJson(b): ApiJson<NewToken>) -> WebResult<(StatusCode, Json<Value>)> {
    let t = st.app.create_token(Some(&p), &b.login, &b.name).await?;
    Ok((StatusCode::CREATED, Json(json!({"token": t}))))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    pub client: Option<String>,
    pub action: Option<String>,
    pub actor: Option<String>,
    pub object: Option<String>,
    pub person: Option<String>,
    pub zone: Option<String>,
    pub business: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<i64>,
}

pub fn parse_time(field: &str, s: &Option<String>) -> WebResult<Option<DateTime<Utc>>> {
    let Some(s) = s.as_deref().filter(|s| !s.trim().is_empty()) else { return Ok(None) };
    mamori_core::ledger_time(s)
        .map(Some)
        .ok_or_else(|| WebError::bad_request("invalid_field", format!("{field} is not a date or time (YYYY-MM-DD or RFC 3339)")))
}

impl SearchQuery {
    pub fn filter(&self) -> WebResult<SearchFilter> {
        let nonempty = |o: &Option<String>| o.clone().filter(|s| !s.trim().is_empty());
        // A person is found as the object of the events about them.
        let object = nonempty(&self.person).map(|pid| format!("person:{pid}")).or_else(|| nonempty(&self.object));
        let actor = nonempty(&self.actor);
        Ok(SearchFilter {
            client: nonempty(&self.client),
            action: nonempty(&self.action),
            actor,
            object,
            zone: nonempty(&self.zone),
            business: nonempty(&self.business),
            from: parse_time("from", &self.from)?,
            to: parse_time("to", &self.to)?,
            limit: self.limit,
        })
    }
}

async fn search_ledger(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, q: Q<SearchQuery>) -> WebResult<Json<Value>> {
    st.app.require(&p, Action::LedgerRead).await?;
    let q = query(q)?;
    Ok(Json(json!(st.app.ledger.search(&q.filter()?).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofQuery {
    #[serde(default)]
    client: Option<String>,
    index: u64,
}

pub(crate) type Q<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

/// Query strings are parsed after the authorisation check, so that an unauthorised caller
/// learns nothing from validation errors.
pub(crate) fn query<T>(q: Q<T>) -> WebResult<T> {
    q.map(|q| q.0).map_err(|e| WebError::bad_request("invalid_query", e.body_text()))
}

async fn ledger_proof(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, q: Q<ProofQuery>) -> WebResult<Json<Value>> {
    st.app.require(&p, Action::LedgerRead).await?;
    let q = query(q)?;
    let log = st.app.log_id(q.client.as_deref()).await?;
    Ok(Json(st.app.ledger.proof(log, q.index).await?))
}

async fn ledger_key(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal) -> WebResult<Json<Value>> {
    st.app.require(&p, Action::LedgerRead).await?;
    Ok(Json(json!({"key": st.app.ledger.verifier().to_key_string()})))
}

async fn verify_ledger(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal) -> WebResult<Json<Value>> {
    Ok(Json(json!(st.app.verify_ledger(&p).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    client: String,
    from: String,
    to: String,
}

async fn export_ledger(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, q: Q<ExportQuery>) -> WebResult<Json<Value>> {
    st.app.require(&p, Action::LedgerExport).await?;
    let q = query(q)?;
    let from = parse_time("from", &Some(q.from))?.ok_or_else(|| WebError::bad_request("invalid_field", "from is required"))?;
    let to = parse_time("to", &Some(q.to))?.ok_or_else(|| WebError::bad_request("invalid_field", "to is required"))?;
    Ok(Json(json!(st.app.export_client(&p, &q.client, from, to).await?)))
}

async fn list_reviews(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal) -> WebResult<Json<Value>> {
    Ok(Json(json!(st.app.list_reviews(&p).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewReview {
    pub kind: mamori_core::review::ReviewKind,
    pub from: String,
    pub to: String,
    pub comment: String,
}

async fn create_review(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, ApiJson(b): ApiJson<NewReview>) -> WebResult<(StatusCode, Json<Value>)> {
    let from = parse_time("from", &Some(b.from))?.ok_or_else(|| WebError::bad_request("invalid_field", "from is required"))?;
    let to = parse_time("to", &Some(b.to))?.ok_or_else(|| WebError::bad_request("invalid_field", "to is required"))?;
    let r = st.app.sign_off_review(&p, b.kind, from, to, &b.comment).await?;
    Ok((StatusCode::CREATED, Json(json!(r))))
}
