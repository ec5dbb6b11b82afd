//! Console pages of the management registers (issue 6, first part): the asset register
//! (情報資産台帳) with its form, CSV import and export.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use mamori_core::registers::assets::{AssetRow, NewAsset};
use mamori_core::registers::risk::Rating;
use mamori_core::types::{Code, Text};
use mamori_core::CoreError;

use crate::console::{attachment, chrome, error_text, field, render, Chrome};
use crate::{AppState, ConsoleSession};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/registers/assets", get(assets_page).post(asset_create))
        .route("/registers/assets/import", axum::routing::post(asset_import))
        .route("/registers/assets/export", get(asset_export))
        .route("/registers/risks", get(risks_page).post(risk_create))
        .route("/incidents", get(incidents_page).post(incident_create))
        .route("/registers/documents", get(documents_page).post(document_draft))
        .route("/registers/documents/{code}/{version}/approve", axum::routing::post(document_approve))
        .route("/incidents/{id}", get(incident_page).post(incident_triage))
        .route("/registers/risks/{id}/accept", axum::routing::post(risk_accept))
}

/// Whether the registers may be listed, asked of the policy without recording a denial.
pub(crate) async fn can_read_registers(st: &AppState, p: &mamori_core::auth::Principal) -> bool {
    st.app.decide(p, mamori_core::policy::Action::RegistersRead).await.is_ok_and(|d| d.allowed)
}

/// The register as a CSV download.
pub(crate) fn assets_csv(bytes: Vec<u8>) -> Response {
    attachment("text/csv; charset=utf-8", "assets.csv", bytes, &[])
}

#[derive(Template)]
#[template(path = "assets.html")]
struct AssetsPage<'a> {
    c: Chrome<'a>,
    rows: Vec<AssetRow>,
    error: Option<String>,
    notice: Option<String>,
    /// What was typed, kept when it is refused.
    form: HashMap<String, String>,
}

impl AssetsPage<'_> {
    fn v(&self, k: &str) -> &str {
        self.form.get(k).map_or("", String::as_str)
    }
    fn checked(&self, k: &str) -> bool {
        self.form.contains_key(k)
    }
}

async fn render_page(st: &AppState, s: &ConsoleSession, error: Option<String>, notice: Option<String>, status: StatusCode) -> Response {
    render_with(st, s, error, notice, HashMap::new(), status).await
}

async fn render_with(st: &AppState, s: &ConsoleSession, error: Option<String>, notice: Option<String>, form: HashMap<String, String>, status: StatusCode) -> Response {
    match st.app.list_assets(&s.state.principal).await {
        Ok(rows) => render(&AssetsPage { c: chrome(st, s, "registers"), rows, error, notice, form }, status),
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}


async fn assets_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    let _ = session!(s);
    render_page(&st, &s, None, None, StatusCode::OK).await
}

fn parse(form: &HashMap<String, String>) -> Result<NewAsset, CoreError> {
    let rating = |k: &str| field(form, k).trim().parse::<u8>().ok().and_then(|v| Rating::try_from(v).ok()).ok_or_else(|| CoreError::invalid(k, "1, 2 or 3"));
    let zone = field(form, "zone");
    Ok(NewAsset {
        department: Code::parse("department", &field(form, "department"))?,
        name: Text::parse("name", &field(form, "name"))?,
        owner: Text::parse("owner", &field(form, "owner"))?,
        zone: if zone.trim().is_empty() { None } else { Some(Code::parse("zone", &zone)?) },
        medium: Text::parse("medium", &field(form, "medium"))?,
        c: rating("c")?,
        i: rating("i")?,
        a: rating("a")?,
        personal: form.contains_key("personal"),
        my_number: form.contains_key("my_number"),
        sensitive: form.contains_key("sensitive"),
        retention: Text::parse("retention", &field(form, "retention"))?,
        disposal: Text::parse("disposal", &field(form, "disposal"))?,
    })
}

async fn asset_create(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let r = match parse(&form) {
        Ok(a) => st.app.create_asset(&p, a).await.map(|_| ()),
        Err(e) => Err(e),
    };
    match r {
        Ok(()) => Redirect::to("/registers/assets").into_response(),
        Err(e) => {
            let mut form = form;
            form.remove("csrf");
            render_with(&st, &s, Some(error_text(&chrome(&st, &s, "registers"), e)), None, form, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

async fn asset_import(State(st): State<AppState>, s: ConsoleSession, mp: axum::extract::Multipart) -> Response {
    let (p, file) = match crate::console::csv_upload(&s, mp).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let c = chrome(&st, &s, "registers");
    match st.app.import_assets(&p, &file).await {
        Ok(n) => {
            let notice = Some(format!("{}: {n}", c.t("vault-imported")));
            render_page(&st, &s, None, notice, StatusCode::OK).await
        }
        Err(e) => render_page(&st, &s, Some(error_text(&chrome(&st, &s, "registers"), e)), None, StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}

async fn asset_export(State(st): State<AppState>, s: ConsoleSession) -> Response {
    let p = session!(s);
    match st.app.export_assets(&p).await {
        Ok(b) => assets_csv(b),
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

#[derive(Template)]
#[template(path = "risks.html")]
struct RisksPage<'a> {
    c: Chrome<'a>,
    rows: Vec<mamori_core::registers::risks::AssessmentRow>,
    assets: Vec<AssetRow>,
    catalogue: Vec<mamori_core::registers::risks::CatalogueEntry>,
    bands: mamori_core::registers::risk::Bands,
    error: Option<String>,
}

async fn risks_render(st: &AppState, s: &ConsoleSession, error: Option<String>, status: StatusCode) -> Response {
    let p = &s.state.principal;
    let loaded = async { Ok::<_, CoreError>((st.app.list_risks(p).await?, st.app.list_assets(p).await?, st.app.risk_catalogue(p).await?, st.app.risk_bands().await?)) }.await;
    match loaded {
        Ok((rows, assets, catalogue, bands)) => render(&RisksPage { c: chrome(st, s, "registers"), rows, assets, catalogue, bands, error }, status),
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

async fn risks_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    let _ = session!(s);
    risks_render(&st, &s, None, StatusCode::OK).await
}

async fn risk_create(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    use mamori_core::registers::risks::{Method, NewAssessment};
    let p = session_csrf!(s, form);
    let rating = |k: &str| field(&form, k).trim().parse::<u8>().ok().and_then(|v| Rating::try_from(v).ok()).ok_or_else(|| CoreError::invalid(k, "1, 2 or 3"));
    let parsed = (|| {
        Ok::<_, CoreError>(NewAssessment {
            asset: field(&form, "asset").trim().parse().map_err(|_| CoreError::invalid("asset", "choose an asset"))?,
            threat: Code::parse("threat", &field(&form, "threat"))?,
            vulnerability: Code::parse("vulnerability", &field(&form, "vulnerability"))?,
            method: if field(&form, "method") == "ipa" { Method::Ipa } else { Method::Seed },
            threat_rating: rating("threat_rating")?,
            vulnerability_rating: rating("vulnerability_rating")?,
            controls: Text::parse("controls", &field(&form, "controls"))?,
            residual_threat: rating("residual_threat")?,
            residual_vulnerability: rating("residual_vulnerability")?,
        })
    })();
    let r = match parsed {
        Ok(a) => st.app.assess_risk(&p, a).await.map(|_| ()),
        Err(e) => Err(e),
    };
    match r {
        Ok(()) => Redirect::to("/registers/risks").into_response(),
        Err(e) => risks_render(&st, &s, Some(error_text(&chrome(&st, &s, "registers"), e)), StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}

async fn risk_accept(State(st): State<AppState>, s: ConsoleSession, Path(id): Path<i64>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    match st.app.accept_risk(&p, id).await {
        Ok(()) => Redirect::to("/registers/risks").into_response(),
        Err(e) => risks_render(&st, &s, Some(error_text(&chrome(&st, &s, "registers"), e)), StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}

#[derive(Template)]
#[template(path = "incidents.html")]
struct IncidentsPage<'a> {
    c: Chrome<'a>,
    /// None for staff who may report but not read the register.
    rows: Option<Vec<mamori_core::registers::incidents::IncidentRow>>,
    error: Option<String>,
    notice: Option<String>,
}

impl IncidentsPage<'_> {
    fn when(&self, ms: &i64) -> String {
        crate::console_doors::jst(*ms)
    }
}

async fn incidents_render(st: &AppState, s: &ConsoleSession, error: Option<String>, notice: Option<String>, status: StatusCode) -> Response {
    // Staff who may report but not read see the form only (asked of the policy first, so that
    // their visit records no denial).
    let p = &s.state.principal;
    let rows = if can_read_registers(st, p).await { st.app.list_incidents(p).await.ok() } else { None };
    render(&IncidentsPage { c: chrome(st, s, "incidents"), rows, error, notice }, status)
}

async fn incidents_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    let _ = session!(s);
    incidents_render(&st, &s, None, None, StatusCode::OK).await
}

async fn incident_create(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    use mamori_core::registers::incidents::NewIncident;
    let p = session_csrf!(s, form);
    let parsed = (|| {
        Ok::<_, CoreError>(NewIncident {
            title: Text::parse("title", &field(&form, "title"))?,
            summary: Text::parse("summary", &field(&form, "summary"))?,
            reporter: Text::parse("reporter", &field(&form, "reporter"))?,
            known_at: None,
        })
    })();
    match parsed {
        Ok(i) => match st.app.report_incident(&p, i, "console").await {
            Ok(id) => {
                if can_read_registers(&st, &p).await {
                    Redirect::to(&format!("/incidents/{id}")).into_response()
                } else {
                    let n = Some(format!("{} #{id}", chrome(&st, &s, "incidents").t("incident-received")));
                    incidents_render(&st, &s, None, n, StatusCode::OK).await
                }
            }
            Err(e) => incidents_render(&st, &s, Some(error_text(&chrome(&st, &s, "registers"), e)), None, StatusCode::UNPROCESSABLE_ENTITY).await,
        },
        Err(e) => incidents_render(&st, &s, Some(error_text(&chrome(&st, &s, "registers"), e)), None, StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}

#[derive(Template)]
#[template(path = "incident.html")]
struct IncidentPage<'a> {
    c: Chrome<'a>,
    v: mamori_core::registers::incidents::IncidentView,
    error: Option<String>,
}

impl IncidentPage<'_> {
    fn when(&self, ms: &i64) -> String {
        crate::console_doors::jst(*ms)
    }
    fn at(&self, d: &Option<chrono::DateTime<chrono::Utc>>) -> String {
        d.map_or_else(String::new, |d| crate::console_doors::jst(d.timestamp_millis()))
    }
    fn grounds(&self) -> String {
        self.v.clock.grounds.iter().map(|g| self.c.t(&format!("appi-{}", serde_json::to_value(g).ok().and_then(|v| v.as_str().map(|s| s.replace('_', "-"))).unwrap_or_default()))).collect::<Vec<_>>().join("、")
    }
}

async fn incident_render(st: &AppState, s: &ConsoleSession, id: i64, error: Option<String>, status: StatusCode) -> Response {
    match st.app.incident(&s.state.principal, id).await {
        Ok(v) => render(&IncidentPage { c: chrome(st, s, "incidents"), v, error }, status),
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

async fn incident_page(State(st): State<AppState>, s: ConsoleSession, Path(id): Path<i64>) -> Response {
    let _ = session!(s);
    incident_render(&st, &s, id, None, StatusCode::OK).await
}

async fn incident_triage(State(st): State<AppState>, s: ConsoleSession, Path(id): Path<i64>, Form(form): Form<HashMap<String, String>>) -> Response {
    use mamori_core::registers::appi::LeakFacts;
    use mamori_core::registers::incidents::Triage;
    let p = session_csrf!(s, form);
    let people = field(&form, "people").trim().parse::<u64>();
    let r = match people {
        Ok(people) => {
            let on = |k: &str| form.contains_key(k);
            let facts = LeakFacts {
                sensitive: on("sensitive"),
                financial_damage: on("financial_damage"),
                improper_purpose: on("improper_purpose"),
                people,
                my_number: on("my_number"),
                highly_encrypted: on("highly_encrypted"),
                processor: on("processor"),
            };
            st.app.triage_incident(&p, id, Triage { facts, items: field(&form, "items"), cause: field(&form, "cause") }).await
        }
        Err(_) => Err(CoreError::invalid("people", "a number of people")),
    };
    match r {
        Ok(()) => Redirect::to(&format!("/incidents/{id}")).into_response(),
        Err(e) => incident_render(&st, &s, id, Some(error_text(&chrome(&st, &s, "registers"), e)), StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}

#[derive(Template)]
#[template(path = "documents.html")]
struct DocumentsPage<'a> {
    c: Chrome<'a>,
    rows: Vec<mamori_core::registers::documents::DocumentRow>,
    error: Option<String>,
}

impl DocumentsPage<'_> {
    fn when(&self, ms: &Option<i64>) -> String {
        crate::console_doors::jst_opt(ms)
    }
}

async fn documents_render(st: &AppState, s: &ConsoleSession, error: Option<String>, status: StatusCode) -> Response {
    match st.app.list_documents(&s.state.principal).await {
        Ok(rows) => render(&DocumentsPage { c: chrome(st, s, "registers"), rows, error }, status),
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

async fn documents_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    let _ = session!(s);
    documents_render(&st, &s, None, StatusCode::OK).await
}

async fn document_draft(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    use mamori_core::registers::documents::NewDraft;
    let p = session_csrf!(s, form);
    let r = match (Code::parse("code", &field(&form, "code")), Text::parse("title", &field(&form, "title"))) {
        (Ok(code), Ok(title)) => st.app.draft_document(&p, NewDraft { code, title, body: field(&form, "body") }).await.map(|_| ()),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    match r {
        Ok(()) => Redirect::to("/registers/documents").into_response(),
        Err(e) => documents_render(&st, &s, Some(error_text(&chrome(&st, &s, "registers"), e)), StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}

async fn document_approve(State(st): State<AppState>, s: ConsoleSession, Path((code, version)): Path<(String, i64)>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    match st.app.approve_document(&p, &code, version).await {
        Ok(()) => Redirect::to("/registers/documents").into_response(),
        Err(e) => documents_render(&st, &s, Some(error_text(&chrome(&st, &s, "registers"), e)), StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}
