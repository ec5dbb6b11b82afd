//! Console pages of the vault (業務データ): a business's access-holder list and grants, records
//! masked by default with one-field reveals (htmx) that ask for a purpose, and the input form.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use mamori_core::directory::BusinessRow;
use mamori_core::types::{Op, Text};
use mamori_core::vault::entry::{EntryOutcome, Mismatch, MismatchDetail};
use mamori_core::vault::copies::{CopyContent, CopyRow, NewCopy};
use mamori_core::vault::handover::{Export, HandoverRow, NewHandover};
use mamori_core::vault::terminal::{NewTerminal, TerminalRow};
use mamori_core::types::Code;
use mamori_core::vault::{AccessList, FieldRow, NewGrant, RecordRow};
use mamori_core::CoreError;

use crate::console::{attachment, chrome, error_text, field, render, Chrome};
use crate::{AppState, ConsoleSession};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/vault", get(vault_index))
        .route("/vault/{business}", get(business_page))
        .route("/vault/{business}/records", post(record_create))
        .route("/vault/{business}/import", post(record_import))
        .route("/vault/{business}/reveal", post(reveal))
        .route("/vault/{business}/grants", post(grant_create))
        .route("/vault/{business}/grants/{id}/revoke", post(grant_revoke))
        .route("/vault/{business}/grants/{id}/approve", post(grant_approve))
        .route("/vault/{business}/entries", post(entry_submit))
        .route("/vault/{business}/export", post(export))
        .route("/vault/{business}/delete", post(delete_all))
        .route("/deletion-certificates/{id}/pdf", get(certificate_pdf))
        .route("/vault/{business}/my-number-report.csv", get(my_number_report))
        .route("/vault/{business}/copies", post(copy_request))
        .route("/vault/{business}/copies/{id}/approve", post(copy_approve))
        .route("/vault/{business}/copies/{id}/use", post(copy_use))
        .route("/vault/{business}/copies/{id}/destroyed", post(copy_destroyed))
        .route("/handovers", get(handovers_page).post(handover_create))
        .route("/terminals", get(terminals_page).post(terminal_create))
        .route("/terminals/enrol", post(terminal_enrol))
        .route("/terminals/{code}/revoke", post(terminal_revoke))
        .route("/handovers/{id}/sign", post(handover_sign))
        .route("/vault/{business}/entries/{id}", get(entry_page).post(entry_resolve))
}

#[derive(Template)]
#[template(path = "vault.html")]
struct IndexPage<'a> {
    c: Chrome<'a>,
    businesses: Vec<BusinessRow>,
}

async fn vault_index(State(st): State<AppState>, s: ConsoleSession) -> Response {
    let p = session!(s);
    match st.app.list_businesses(&p).await {
        Ok(businesses) => render(&IndexPage { c: chrome(&st, &s, "vault"), businesses }, StatusCode::OK),
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

#[derive(Template)]
#[template(path = "vault_business.html")]
struct BusinessPage<'a> {
    c: Chrome<'a>,
    business: String,
    fields: Vec<FieldRow>,
    records: Vec<RecordRow>,
    records_error: Option<String>,
    access: Option<AccessList>,
    ops: &'static [Op],
    error: Option<String>,
    notice: Option<String>,
    double_entry: bool,
    mismatches: Vec<Mismatch>,
    /// The equality search shown (field, value).
    search: Option<(String, String)>,
    copies: Vec<CopyRow>,
    can_approve_copies: bool,
    my_number: bool,
    /// The security office (schema, terminals, deletion at contract end).
    can_manage: bool,
    /// A deletion certificate just issued.
    certificate: Option<i64>,
    copy_ops: [Op; 4],
}

impl BusinessPage<'_> {
    fn searchable(&self) -> Vec<&FieldRow> {
        self.fields.iter().filter(|f| f.searchable).collect()
    }
    fn search_value(&self) -> &str {
        self.search.as_ref().map_or("", |(_, v)| v.as_str())
    }
    fn search_field(&self) -> &str {
        self.search.as_ref().map_or("", |(f, _)| f.as_str())
    }
    fn cell<'r>(&self, r: &'r RecordRow, f: &str) -> &'r str {
        r.fields.get(f).map_or("", String::as_str)
    }
    fn when(&self, ms: &i64) -> String {
        crate::console_doors::jst(*ms)
    }
    fn masked(&self, f: &FieldRow) -> bool {
        f.sensitivity != mamori_core::types::Sensitivity::Normal
    }
}

/// What a business page shows besides its data.
#[derive(Default)]
struct Extras {
    error: Option<String>,
    notice: Option<String>,
    /// The equality search shown (field, value).
    search: Option<(String, String)>,
    /// A deletion certificate just issued.
    certificate: Option<i64>,
}

async fn business_render(st: &AppState, s: &ConsoleSession, business: &str, error: Option<String>, status: StatusCode) -> Response {
    business_view(st, s, business, Extras { error, ..Extras::default() }, status).await
}

async fn business_view(st: &AppState, s: &ConsoleSession, business: &str, x: Extras, status: StatusCode) -> Response {
    let Extras { error, notice, search, certificate } = x;
    let p = &s.state.principal;
    let c = chrome(st, s, "vault");
    let fields = match st.app.list_fields(p, business).await {
        Ok(f) => f,
        Err(e) => return crate::error::WebError::from(e).into_response(),
    };
    let listed = match &search {
        Some((f, v)) => st.app.search_records(p, business, f, v).await,
        None => st.app.list_records(p, business).await,
    };
    let (records, records_error) = match listed {
        Ok(r) => (r, None),
        Err(e) => (Vec::new(), Some(error_text(&c, e))),
    };
    let (double_entry, my_number) = st.app.business_flags(p, business).await.unwrap_or((false, false));
    let page = BusinessPage {
        c,
        business: business.to_owned(),
        fields,
        records,
        records_error,
        access: st.app.access_list(p, business).await.ok(),
        ops: Op::ALL,
        error,
        notice,
        double_entry,
        mismatches: st.app.list_mismatches(p, business).await.unwrap_or_default(),
        search,
        copies: st.app.list_copies(p, business).await.unwrap_or_default(),
        can_approve_copies: st.app.require(p, mamori_core::policy::Action::VaultCopies).await.is_ok(),
        copy_ops: [Op::Download, Op::Print, Op::Copy, Op::Duplicate],
        my_number,
        can_manage: st.app.require(p, mamori_core::policy::Action::VaultSchema).await.is_ok(),
        certificate,
    };
    render(&page, status)
}

async fn business_page(State(st): State<AppState>, s: ConsoleSession, Path(business): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    let _ = session!(s);
    // The outcome of the last double entry, after its redirect.
    let notice = q.get("entry").and_then(|e| match e.as_str() {
        "waiting" | "accepted" | "mismatch" | "resolved" => Some(chrome(&st, &s, "vault").t(&format!("entry-{e}"))),
        _ => None,
    });
    let search = match (q.get("field"), q.get("eq")) {
        (Some(f), Some(v)) if !v.trim().is_empty() => Some((f.clone(), v.clone())),
        _ => None,
    };
    business_view(&st, &s, &business, Extras { notice, search, ..Extras::default() }, StatusCode::OK).await
}

fn values_of(form: &HashMap<String, String>) -> BTreeMap<String, String> {
    form.iter().filter_map(|(k, v)| k.strip_prefix("f_").map(|k| (k.to_owned(), v.clone()))).filter(|(_, v)| !v.trim().is_empty()).collect()
}

async fn entry_submit(State(st): State<AppState>, s: ConsoleSession, Path(business): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    match st.app.submit_entry(&p, &business, &field(&form, "form_no"), values_of(&form)).await {
        Ok(o) => {
            let state = match o {
                EntryOutcome::Waiting => "waiting",
                EntryOutcome::Accepted { .. } => "accepted",
                EntryOutcome::Mismatch { .. } => "mismatch",
            };
            Redirect::to(&format!("/vault/{}?entry={state}", urlencoding::encode(&business))).into_response()
        }
        Err(e) => back_or_error(&st, &s, &business, Err::<(), _>(e)).await,
    }
}

#[derive(Template)]
#[template(path = "vault_entry.html")]
struct EntryPage<'a> {
    c: Chrome<'a>,
    business: String,
    detail: Option<MismatchDetail>,
    error: Option<String>,
}

async fn entry_render(st: &AppState, s: &ConsoleSession, business: &str, id: i64, error: Option<String>, status: StatusCode) -> Response {
    let p = &s.state.principal;
    let c = chrome(st, s, "vault");
    let (detail, error) = match st.app.mismatch_detail(p, business, id).await {
        Ok(d) => (Some(d), error),
        Err(e) => (None, Some(error.unwrap_or_else(|| error_text(&c, e)))),
    };
    render(&EntryPage { c, business: business.to_owned(), detail, error }, status)
}

async fn entry_page(State(st): State<AppState>, s: ConsoleSession, Path((business, id)): Path<(String, i64)>) -> Response {
    let _ = session!(s);
    entry_render(&st, &s, &business, id, None, StatusCode::OK).await
}

async fn entry_resolve(State(st): State<AppState>, s: ConsoleSession, Path((business, id)): Path<(String, i64)>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    // Every disagreeing field is decided here, even when the decision is to leave it empty.
    let values: BTreeMap<String, String> = form.iter().filter_map(|(k, v)| k.strip_prefix("f_").map(|k| (k.to_owned(), v.clone()))).collect();
    match st.app.resolve_mismatch(&p, &business, id, values).await {
        Ok(_) => Redirect::to(&format!("/vault/{}?entry=resolved", urlencoding::encode(&business))).into_response(),
        Err(e) => {
            let msg = error_text(&chrome(&st, &s, "vault"), e);
            entry_render(&st, &s, &business, id, Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

async fn record_create(State(st): State<AppState>, s: ConsoleSession, Path(business): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let r = st.app.create_record(&p, &business, values_of(&form)).await;
    back_or_error(&st, &s, &business, r).await
}

#[derive(Template)]
#[template(path = "vault_reveal.html")]
struct RevealPartial {
    value: Option<String>,
    error: Option<String>,
}

/// An htmx partial: the revealed value in place of the mask, or why not (always 200, so that
/// htmx swaps it into the cell).
async fn reveal(State(st): State<AppState>, s: ConsoleSession, Path(business): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let c = chrome(&st, &s, "vault");
    let (value, error) = match st.app.reveal(&p, &business, &field(&form, "uid"), &field(&form, "field"), &field(&form, "purpose")).await {
        Ok(v) => (Some(v.value), None),
        Err(e) => (None, Some(error_text(&c, e))),
    };
    render(&RevealPartial { value, error }, StatusCode::OK)
}

async fn grant_create(State(st): State<AppState>, s: ConsoleSession, Path(business): Path<String>, Form(form): Form<Vec<(String, String)>>) -> Response {
    let ops: Vec<Op> = form.iter().filter(|(k, _)| k == "ops").filter_map(|(_, v)| v.parse().ok()).collect();
    let form: HashMap<String, String> = form.into_iter().filter(|(k, _)| k != "ops").collect();
    let p = session_csrf!(s, form);
    let r = match (Text::parse("purpose", &field(&form, "purpose")), field(&form, "hours").trim().parse::<i64>()) {
        (Ok(purpose), Ok(hours)) => st.app.grant(&p, &business, NewGrant { login: field(&form, "login"), ops, purpose, hours, second_approver: form.contains_key("second_approver") }).await,
        (Err(e), _) => Err(e),
        (_, Err(_)) => Err(CoreError::invalid("hours", "a number of hours")),
    };
    back_or_error(&st, &s, &business, r).await
}

async fn grant_approve(State(st): State<AppState>, s: ConsoleSession, Path((business, id)): Path<(String, i64)>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let r = st.app.approve_grant(&p, id).await;
    back_or_error(&st, &s, &business, r).await
}

async fn grant_revoke(State(st): State<AppState>, s: ConsoleSession, Path((business, id)): Path<(String, i64)>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let r = st.app.revoke_grant(&p, id).await;
    back_or_error(&st, &s, &business, r).await
}

/// An encrypted export as a download; its SHA-256 and register line travel in headers.
pub(crate) fn age_download(x: Export) -> Response {
    let extra = [("x-mamori-sha256", x.sha256), ("x-mamori-handover", x.handover_id.to_string()), ("x-mamori-records", x.records.to_string())];
    attachment("application/octet-stream", &x.file_name, x.bytes, &extra)
}

async fn export(State(st): State<AppState>, s: ConsoleSession, Path(business): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    match st.app.export_for_client(&p, &business, &field(&form, "counterpart"), &field(&form, "medium")).await {
        Ok(x) => age_download(x),
        Err(e) => back_or_error(&st, &s, &business, Err::<(), _>(e)).await,
    }
}

#[derive(Template)]
#[template(path = "handovers.html")]
struct HandoversPage<'a> {
    c: Chrome<'a>,
    rows: Vec<HandoverRow>,
    error: Option<String>,
}

impl HandoversPage<'_> {
    fn when(&self, ms: &i64) -> String {
        crate::console_doors::jst(*ms)
    }
}

async fn handovers_render(st: &AppState, s: &ConsoleSession, error: Option<String>, status: StatusCode) -> Response {
    match st.app.handovers(&s.state.principal).await {
        Ok(rows) => render(&HandoversPage { c: chrome(st, s, "vault"), rows, error }, status),
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

async fn handovers_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    let _ = session!(s);
    handovers_render(&st, &s, None, StatusCode::OK).await
}

async fn handover_create(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let text = |k: &str| Text::parse(k, &field(&form, k));
    let result = match (text("medium"), text("description"), text("counterpart")) {
        (Ok(medium), Ok(description), Ok(counterpart)) => {
            let opt = |k: &str| Some(field(&form, k)).filter(|v| !v.trim().is_empty());
            let h = NewHandover {
                client: field(&form, "client"),
                business: opt("business"),
                direction: field(&form, "direction"),
                medium,
                description,
                counterpart,
                sha256: opt("sha256").map(|v| v.trim().to_owned()),
                signed_by: opt("signed_by"),
            };
            st.app.record_handover(&p, h).await.map(|_| ())
        }
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
    };
    match result {
        Ok(()) => Redirect::to("/handovers").into_response(),
        Err(e) => {
            let msg = error_text(&chrome(&st, &s, "vault"), e);
            handovers_render(&st, &s, Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

async fn handover_sign(State(st): State<AppState>, s: ConsoleSession, Path(id): Path<i64>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    match st.app.sign_handover(&p, id, &field(&form, "signed_by")).await {
        Ok(()) => Redirect::to("/handovers").into_response(),
        Err(e) => {
            let msg = error_text(&chrome(&st, &s, "vault"), e);
            handovers_render(&st, &s, Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

/// A deletion certificate PDF as a download.
pub(crate) fn pdf_download(id: i64, pdf: Vec<u8>) -> Response {
    attachment("application/pdf", &format!("deletion-certificate-{id}.pdf"), pdf, &[])
}

#[derive(Template)]
#[template(path = "terminals.html")]
struct TerminalsPage<'a> {
    c: Chrome<'a>,
    rows: Vec<TerminalRow>,
    /// This browser's terminal, if it is one.
    this: Option<TerminalRow>,
    /// A device key just issued (shown once).
    issued: Option<(String, String)>,
    error: Option<String>,
}

impl TerminalsPage<'_> {
    fn when(&self, ms: &i64) -> String {
        crate::console_doors::jst(*ms)
    }
}

async fn terminals_render(st: &AppState, s: &ConsoleSession, issued: Option<(String, String)>, error: Option<String>, status: StatusCode) -> Response {
    let p = &s.state.principal;
    let rows = match st.app.list_terminals(p).await {
        Ok(r) => r,
        Err(e) => return crate::error::WebError::from(e).into_response(),
    };
    let this = match &p.terminal {
        Some(h) => st.app.terminal_by_key(h).await.ok().flatten(),
        None => None,
    };
    render(&TerminalsPage { c: chrome(st, s, "vault"), rows, this, issued, error }, status)
}

async fn terminals_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    let _ = session!(s);
    terminals_render(&st, &s, None, None, StatusCode::OK).await
}

async fn terminal_create(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let result = match (Code::parse("code", &field(&form, "code")), Text::parse("name", &field(&form, "name"))) {
        (Ok(code), Ok(name)) => {
            let c = code.as_str().to_owned();
            st.app.register_terminal(&p, NewTerminal { code, name, business: field(&form, "business") }).await.map(|k| (c, k))
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    match result {
        Ok(issued) => terminals_render(&st, &s, Some(issued), None, StatusCode::OK).await,
        Err(e) => {
            let msg = error_text(&chrome(&st, &s, "vault"), e);
            terminals_render(&st, &s, None, Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

/// Installs a device key in this browser (an HttpOnly cookie), after checking that it belongs
/// to a live terminal.
async fn terminal_enrol(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let _ = session_csrf!(s, form);
    let key = field(&form, "key").trim().to_owned();
    let known = if key.is_empty() { Ok(None) } else { st.app.terminal_by_key(&mamori_core::vault::terminal::key_hash(&key)).await };
    match known {
        Ok(Some(_)) => {
            let mut r = Redirect::to("/terminals").into_response();
            let cookie = format!("{}={key}; Max-Age=31536000{}", st.terminal_cookie(), st.cookie_attrs());
            if let Ok(v) = axum::http::HeaderValue::from_str(&cookie) {
                r.headers_mut().append(axum::http::header::SET_COOKIE, v);
            }
            r
        }
        Ok(None) => {
            let msg = chrome(&st, &s, "vault").t("terminal-unknown-key");
            terminals_render(&st, &s, None, Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await
        }
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

async fn terminal_revoke(State(st): State<AppState>, s: ConsoleSession, Path(code): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    match st.app.revoke_terminal(&p, &code).await {
        Ok(()) => Redirect::to("/terminals").into_response(),
        Err(e) => {
            let msg = error_text(&chrome(&st, &s, "vault"), e);
            terminals_render(&st, &s, None, Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

/// A watermarked CSV download of an approved copy.
pub(crate) fn csv_download(id: i64, c: CopyContent) -> Response {
    match mamori_core::vault::copies::copy_csv(&c) {
        Ok(b) => attachment("text/csv; charset=utf-8", &format!("copy-{id}.csv"), b, &[]),
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

/// Back to the business page when `r` succeeded, or the page again with why not.
async fn back_or_error<T>(st: &AppState, s: &ConsoleSession, business: &str, r: Result<T, CoreError>) -> Response {
    match r {
        Ok(_) => Redirect::to(&format!("/vault/{}", urlencoding::encode(business))).into_response(),
        Err(e) => {
            let msg = error_text(&chrome(st, s, "vault"), e);
            business_render(st, s, business, Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

async fn copy_request(State(st): State<AppState>, s: ConsoleSession, Path(business): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let r = match (field(&form, "op").parse::<Op>(), Text::parse("purpose", &field(&form, "purpose")), field(&form, "hours").trim().parse::<i64>()) {
        (Ok(op), Ok(purpose), Ok(hours)) => st.app.request_copy(&p, &business, NewCopy { op, purpose, hours }).await.map(|_| ()),
        (Err(e), _, _) | (_, Err(e), _) => Err(e),
        (_, _, Err(_)) => Err(CoreError::invalid("hours", "a number of hours")),
    };
    back_or_error(&st, &s, &business, r).await
}

async fn copy_approve(State(st): State<AppState>, s: ConsoleSession, Path((business, id)): Path<(String, i64)>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let r = st.app.approve_copy(&p, id).await;
    back_or_error(&st, &s, &business, r).await
}

async fn copy_destroyed(State(st): State<AppState>, s: ConsoleSession, Path((business, id)): Path<(String, i64)>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let r = st.app.destroy_copy(&p, id, &field(&form, "method")).await;
    back_or_error(&st, &s, &business, r).await
}

#[derive(Template)]
#[template(path = "vault_print.html")]
struct PrintPage<'a> {
    c: Chrome<'a>,
    business: String,
    content: CopyContent,
}

impl PrintPage<'_> {
    fn cell<'r>(&self, r: &'r BTreeMap<String, String>, f: &str) -> &'r str {
        r.get(f).map_or("", String::as_str)
    }
}

/// Uses an approved download (a CSV) or print (a print view, watermarked on every row).
async fn copy_use(State(st): State<AppState>, s: ConsoleSession, Path((business, id)): Path<(String, i64)>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let op = field(&form, "op").parse::<Op>().unwrap_or(Op::Download);
    match st.app.use_copy(&p, id, op).await {
        Ok(content) if op == Op::Print => render(&PrintPage { c: chrome(&st, &s, "vault"), business: business.clone(), content }, StatusCode::OK),
        Ok(content) => csv_download(id, content),
        Err(e) => back_or_error(&st, &s, &business, Err::<(), _>(e)).await,
    }
}

/// The My Number report as a CSV download.
pub(crate) fn report_download(r: &mamori_core::vault::mynumber::MyNumberReport) -> Response {
    match mamori_core::vault::mynumber::report_csv(r) {
        Ok(b) => attachment("text/csv; charset=utf-8", &format!("my-number-report-{}.csv", r.business), b, &[]),
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

async fn my_number_report(State(st): State<AppState>, s: ConsoleSession, Path(business): Path<String>) -> Response {
    let p = session!(s);
    match st.app.my_number_report(&p, &business, None, None).await {
        Ok(r) => report_download(&r),
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

/// Deletion of all of a business's data at contract end (LIFE-3, LIFE-7): the business code
/// typed again as confirmation; the page then offers the certificate as a PDF.
async fn delete_all(State(st): State<AppState>, s: ConsoleSession, Path(business): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let c = chrome(&st, &s, "vault");
    if field(&form, "confirm").trim() != business {
        let msg = c.t("delete-confirm-mismatch");
        return business_render(&st, &s, &business, Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    match st.app.delete_business_data(&p, &business, &field(&form, "reason")).await {
        Ok(cert) => {
            let notice = Some(c.t("delete-done"));
            business_view(&st, &s, &business, Extras { notice, certificate: Some(cert.id), ..Extras::default() }, StatusCode::OK).await
        }
        Err(e) => back_or_error(&st, &s, &business, Err::<(), _>(e)).await,
    }
}

async fn certificate_pdf(State(st): State<AppState>, s: ConsoleSession, Path(id): Path<i64>) -> Response {
    let p = session!(s);
    match st.app.deletion_certificate(&p, id).await {
        Ok((_, pdf)) => pdf_download(id, pdf),
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

/// Batch import of records from a CSV file (UTF-8 or Shift_JIS) uploaded in the console.
async fn record_import(State(st): State<AppState>, s: ConsoleSession, Path(business): Path<String>, mp: axum::extract::Multipart) -> Response {
    let (p, file) = match crate::console::csv_upload(&s, mp).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match st.app.import_records(&p, &business, &file).await {
        Ok(n) => {
            let notice = Some(format!("{}: {n}", chrome(&st, &s, "vault").t("vault-imported")));
            business_view(&st, &s, &business, Extras { notice, ..Extras::default() }, StatusCode::OK).await
        }
        Err(e) => back_or_error(&st, &s, &business, Err::<(), _>(e)).await,
    }
}
