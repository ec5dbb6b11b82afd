//! The web console: server-rendered pages (askama, htmx partials, no CDN), Japanese by default.
//! Every form carries the session's CSRF token; state never changes on GET.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Multipart, Query, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use mamori_core::auth::{Principal, SessionKind};
use mamori_core::directory::{
    BusinessRow, ClientRow, DepartmentRow, NewBusiness, NewClient, NewDepartment, NewPerson, NewSite, NewZone, PersonRow,
    SiteRow, ZoneRow,
};
use mamori_core::ledger::EntryRow;
use mamori_core::policy::Action;
use mamori_core::review::{ReviewKind, ReviewRow};
use mamori_core::types::{Code, Date, PersonKind, Role, Text, ZoneLevel};
use mamori_core::{CoreError, Mamori};

use crate::api::SearchQuery;
use crate::i18n::I18n;
use crate::{AppState, ConsoleSession};

const HTMX: &str = include_str!("../static/htmx.min.js");
const CSS: &str = include_str!("../static/app.css");
const JS: &str = include_str!("../static/app.js");

/// The unlocked session's principal, or the lock screen (shared with `console_doors` and
/// `console_vault` through `#[macro_use]`).
macro_rules! session {
    ($s:expr) => {
        match crate::console::unlocked(&$s) {
            Ok(p) => p.clone(),
            Err(r) => return r,
        }
    };
}

/// `session!` and the form's CSRF token checked.
macro_rules! session_csrf {
    ($s:expr, $form:expr) => {{
        let p = session!($s);
        if let Err(r) = crate::console::csrf_ok(&$s, &$form) {
            return r;
        }
        p
    }};
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/static/htmx.min.js", get(|| async { asset("text/javascript", HTMX) }))
        .route("/static/app.css", get(|| async { asset("text/css", CSS) }))
        .route("/static/app.js", get(|| async { asset("text/javascript", JS) }))
        .route("/login", get(login_page).post(login_submit))
        .route("/logout", post(logout))
        .route("/lock", get(lock_page).post(lock_now))
        .route("/unlock", post(unlock))
        .route("/reauth", post(reauth))
        .route("/lang", post(set_lang))
        .route("/", get(dashboard))
        .route("/people", get(people_page).post(people_create))
        .route("/people/import", post(people_import))
        .route("/places", get(places_page))
        .route("/places/zones", post(zone_create))
        .route("/places/sites", post(site_create))
        .route("/places/departments", post(department_create))
        .route("/org", get(org_page))
        .route("/org/clients", post(client_create))
        .route("/org/businesses", post(business_create))
        .route("/ledger", get(ledger_page))
        .route("/ledger/verify", post(ledger_verify))
        .route("/ledger/proof", get(ledger_proof))
        .route("/ledger/reviews", post(review_create))
        .route("/users", get(users_page).post(user_create))
        .route("/users/roles", post(user_roles))
        .route("/account", get(account_page))
        .route("/account/totp", post(totp_enable))
        .route("/account/passkeys/start", post(passkey_register_start))
        .route("/account/passkeys/finish", post(passkey_register_finish))
        .route("/login/passkey/start", post(passkey_login_start))
        .route("/login/passkey/finish", post(passkey_login_finish))
}

fn asset(ct: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"));
    r
}

/// What every page needs: translator, user, CSRF token, idle time, active nav item.
pub struct Chrome<'a> {
    pub i18n: &'a I18n,
    pub lang: String,
    pub user: String,
    pub csrf: String,
    pub idle_ms: i64,
    pub active: &'static str,
    pub signed_in: bool,
    /// Show the password re-check form (a sensitive action needs a fresh password check).
    pub reauth: bool,
}

impl Chrome<'_> {
    pub fn t(&self, key: &str) -> String {
        self.i18n.t(&self.lang, key)
    }
    /// The label of a value under a key prefix (`tk("task-state-", "open")`).
    pub fn tk(&self, prefix: &str, value: &str) -> String {
        self.i18n.t(&self.lang, &format!("{prefix}{}", value.replace('_', "-")))
    }
    /// The page to return to after switching language.
    pub fn back(&self) -> &'static str {
        match self.active {
            "people" => "/people",
            "places" => "/places",
            "org" => "/org",
            "ledger" => "/ledger",
            "users" => "/users",
            "account" => "/account",
            "doors" => "/doors",
            "credentials" => "/credentials",
            "monitor" => "/monitor",
            "visitors" => "/visitors",
            "vault" => "/vault",
            "isms" => "/registers/cycle",
            "registers" => "/registers/assets",
            "incidents" => "/incidents",
            "pledge" => "/pledge",
            _ => "/",
        }
    }
}

pub(crate) fn chrome<'a>(st: &'a AppState, s: &ConsoleSession, active: &'static str) -> Chrome<'a> {
    Chrome {
        i18n: &st.i18n,
        lang: s.state.lang.clone(),
        user: s.state.principal.display_name.clone(),
        csrf: s.state.csrf.clone(),
        idle_ms: st.app.settings.idle_timeout.num_milliseconds(),
        active,
        signed_in: true,
        reauth: false,
    }
}

/// The page's chrome, with the password re-check form when the page's error asks for one.
pub(crate) fn chrome_with_error<'a>(st: &'a AppState, s: &ConsoleSession, active: &'static str, error: &Option<String>) -> Chrome<'a> {
    let c = chrome(st, s, active);
    let reauth = error.as_deref() == Some(c.t("reauth-required").as_str());
    Chrome { reauth, ..c }
}

pub(crate) fn render<T: Template>(t: &T, status: StatusCode) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

/// A console session that is not locked; a locked one is sent to the lock screen.
pub(crate) fn unlocked(s: &ConsoleSession) -> Result<&Principal, Response> {
    if s.state.locked {
        return Err(Redirect::to("/lock").into_response());
    }
    Ok(&s.state.principal)
}

pub(crate) fn csrf_ok(s: &ConsoleSession, form: &HashMap<String, String>) -> Result<(), Response> {
    let given = form.get("csrf").map(String::as_str).unwrap_or("");
    if Mamori::csrf_ok(&s.state.csrf, given) {
        Ok(())
    } else {
        Err((StatusCode::FORBIDDEN, "CSRF token missing or wrong; reload the page").into_response())
    }
}

/// Field errors as templates read them.
#[derive(Default)]
pub struct FieldErrors(pub HashMap<String, String>);

impl FieldErrors {
    pub fn get(&self, k: &str) -> Option<&String> {
        self.0.get(k)
    }
}

/// Field errors for re-rendering a form next to its fields.
#[derive(Default)]
pub(crate) struct Errs(pub(crate) HashMap<String, String>);

impl Errs {
    pub(crate) fn take<T>(&mut self, field: &str, r: Result<T, CoreError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(CoreError::Invalid { message, .. }) => {
                self.0.insert(field.to_owned(), message);
                None
            }
            Err(e) => {
                self.0.insert(field.to_owned(), e.to_string());
                None
            }
        }
    }
    /// Places a domain error: next to its field when it names one, else as the page error.
    pub(crate) fn place(&mut self, e: CoreError, prefix: &str) -> Option<String> {
        match e {
            CoreError::Invalid { field, message } => {
                self.0.insert(format!("{prefix}{field}"), message);
                None
            }
            CoreError::Conflict(m) => {
                self.0.insert(format!("{prefix}code"), m.clone());
                None
            }
            CoreError::ReauthRequired => Some("reauth-required".into()),
            other => Some(crate::error::WebError::from(other).body.message),
        }
    }
}

/// A file to download (never cached), with any extra headers.
pub(crate) fn attachment(content_type: &'static str, file_name: &str, bytes: Vec<u8>, extra: &[(&'static str, String)]) -> Response {
    let mut r = (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file_name}\"")),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        bytes,
    )
        .into_response();
    for (k, v) in extra {
        if let (Ok(k), Ok(v)) = (axum::http::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

/// A CSV upload form (`csrf` and `file` fields) of an unlocked session: its principal and bytes.
pub(crate) async fn csv_upload(s: &ConsoleSession, mut mp: Multipart) -> Result<(Principal, Vec<u8>), Response> {
    let p = unlocked(s)?.clone();
    let (mut csrf, mut file) = (String::new(), Vec::new());
    while let Ok(Some(f)) = mp.next_field().await {
        match f.name() {
            Some("csrf") => csrf = f.text().await.unwrap_or_default(),
            Some("file") => file = f.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
            _ => {}
        }
    }
    csrf_ok(s, &HashMap::from([("csrf".to_owned(), csrf)]))?;
    Ok((p, file))
}

/// What to tell a person about a refused operation: the rule that refused it in their language,
/// the field at fault, the line of an import, or the API's safe message.
pub(crate) fn error_text(c: &Chrome<'_>, e: CoreError) -> String {
    match e {
        CoreError::Forbidden { rule: Some(r) } => {
            let k = format!("rule-{r}");
            let t = c.t(&k);
            if t == k { format!("{} ({r})", c.t("denied")) } else { t }
        }
        CoreError::Invalid { field, message } => format!("{field}: {message}"),
        CoreError::ReauthRequired => c.t("reauth-required"),
        CoreError::Import { line, message } => format!("{} {line}: {message}", c.t("vault-import-line")),
        other => crate::error::WebError::from(other).body.message,
    }
}

pub(crate) fn field(form: &HashMap<String, String>, k: &str) -> String {
    form.get(k).cloned().unwrap_or_default()
}

fn lang_of(headers: &HeaderMap, q: Option<&str>) -> String {
    if let Some(l) = q {
        return if l == "en" { "en".into() } else { "ja".into() };
    }
    if crate::cookie_in(headers, "mamori_lang") == Some("en") { "en".into() } else { "ja".into() }
}

// ---------- sign-in, lock, language ----------

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    c: Chrome<'a>,
    error: Option<String>,
    pre_csrf: String,
    login: String,
}

fn login_response(st: &AppState, lang: String, error: Option<String>, login: String, status: StatusCode) -> Response {
    let pre = mamori_core::auth::random_token("");
    let page = LoginPage {
        c: Chrome { i18n: &st.i18n, lang, user: String::new(), csrf: String::new(), idle_ms: 0, active: "", signed_in: false, reauth: false },
        error,
        pre_csrf: pre.clone(),
        login,
    };
    let mut r = render(&page, status);
    if let Ok(v) = HeaderValue::from_str(&format!("mamori_pre={pre}{}", st.cookie_attrs())) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn login_page(State(st): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    login_response(&st, lang_of(&headers, q.get("lang").map(String::as_str)), None, String::new(), StatusCode::OK)
}

async fn login_submit(
    State(st): State<AppState>,
    headers: HeaderMap,
    axum::extract::ConnectInfo(addr): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let lang = lang_of(&headers, form.get("lang").map(String::as_str));
    if !pre_csrf_ok(&headers, &field(&form, "csrf")) {
        return login_response(&st, lang, Some("CSRF".into()), String::new(), StatusCode::FORBIDDEN);
    }
    let login = field(&form, "login");
    let totp = form.get("totp").filter(|t| !t.trim().is_empty()).map(String::as_str);
    match st.app.sign_in(&login, &field(&form, "password"), totp, Some(addr.ip().to_string()), SessionKind::Console).await {
        Ok(s) => {
            let _ = st.app.set_session_lang(&s.token, &lang).await;
            let mut r = Redirect::to("/").into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("{}={}{}", st.session_cookie(), s.token, st.cookie_attrs())) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
        Err(CoreError::Locked) => {
            let msg = st.i18n.t(&lang, "login-locked");
            login_response(&st, lang, Some(msg), login, StatusCode::TOO_MANY_REQUESTS)
        }
        Err(CoreError::AuthFailed) => {
            let msg = st.i18n.t(&lang, "login-failed");
            login_response(&st, lang, Some(msg), login, StatusCode::UNAUTHORIZED)
        }
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

async fn logout(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Err(r) = csrf_ok(&s, &form) {
        return r;
    }
    let _ = st.app.sign_out(&s.token, &s.state.principal).await;
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("{}=; Max-Age=0{}", st.session_cookie(), st.cookie_attrs())) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// The lock screen shows no navigation and nothing of the session but the user's name.
fn lock_chrome<'a>(st: &'a AppState, s: &ConsoleSession) -> Chrome<'a> {
    Chrome { signed_in: false, idle_ms: 0, ..chrome(st, s, "") }
}

#[derive(Template)]
#[template(path = "lock.html")]
struct LockPage<'a> {
    c: Chrome<'a>,
    error: Option<String>,
}

/// The lock screen of a locked session (GET changes nothing; an unlocked session goes home).
async fn lock_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    if !s.state.locked {
        return Redirect::to("/").into_response();
    }
    render(&LockPage { c: lock_chrome(&st, &s), error: None }, StatusCode::OK)
}

/// Locks the session now: the lock button, or the browser's idle timer (DATA-8).
async fn lock_now(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Err(r) = csrf_ok(&s, &form) {
        return r;
    }
    if let Err(e) = st.app.lock_session(&s.token).await {
        return json_error(e);
    }
    let ev = mamori_ledger::Event::new(st.app.clock.now(), s.state.principal.actor(), "session.lock");
    let _ = st.app.ledger.append(ev).await;
    Redirect::to("/lock").into_response()
}

async fn unlock(
    State(st): State<AppState>,
    s: ConsoleSession,
    axum::extract::ConnectInfo(addr): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(r) = csrf_ok(&s, &form) {
        return r;
    }
    match st.app.unlock(&s.token, &field(&form, "password"), Some(addr.ip().to_string())).await {
        Ok(()) => Redirect::to("/").into_response(),
        Err(_) => {
            let msg = st.i18n.t(&s.state.lang, "login-failed");
            render(&LockPage { c: lock_chrome(&st, &s), error: Some(msg) }, StatusCode::UNAUTHORIZED)
        }
    }
}

async fn set_lang(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    if let Err(r) = csrf_ok(&s, &form) {
        return r;
    }
    let lang = if field(&form, "lang") == "en" { "en" } else { "ja" };
    let _ = st.app.set_session_lang(&s.token, lang).await;
    // Only our own pages: a local path, never another origin.
    let back = form.get("back").map(String::as_str).filter(|b| b.starts_with('/') && !b.starts_with("//")).unwrap_or("/");
    let mut r = Redirect::to(back).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("mamori_lang={lang}; Path=/; SameSite=Strict")) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

// ---------- dashboard ----------

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage<'a> {
    c: Chrome<'a>,
    people: i64,
    zones: i64,
    clients: i64,
    events: i64,
    can_ledger: bool,
    recent: Vec<EntryRow>,
    /// Overdue ISMS tasks (MGMT-6), for those who keep or read the registers.
    overdue: Option<Vec<mamori_core::registers::cycle::TaskRow>>,
    /// What the signed-in person owes (pledge, training), if anything.
    owes: bool,
}


async fn dashboard(State(st): State<AppState>, s: ConsoleSession) -> Response {
    let p = match unlocked(&s) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let can_ledger = st.app.decide(p, Action::LedgerRead).await.is_ok_and(|d| d.allowed);
    let recent = if can_ledger {
        st.app
            .ledger
            .search(&mamori_core::ledger::SearchFilter { limit: Some(10), ..Default::default() })
            .await
            .unwrap_or_default()
    } else {
        vec![]
    };
    let counts = st.app.counts().await.unwrap_or_default();
    // Asked of the policy first: a refused `list_tasks` would record a denial on every visit.
    let overdue = if crate::console_registers::can_read_registers(&st, p).await { st.app.list_tasks(p, true).await.ok() } else { None };
    let owes = st.app.my_flags(p).await.ok().flatten().is_some_and(|f| f.flagged);
    let page = DashboardPage {
        c: chrome(&st, &s, "dashboard"),
        people: counts.people,
        zones: counts.zones,
        clients: counts.clients,
        events: counts.events,
        can_ledger,
        recent,
        overdue,
        owes,
    };
    render(&page, StatusCode::OK)
}

// ---------- people ----------

#[derive(Template)]
#[template(path = "people.html")]
struct PeoplePage<'a> {
    c: Chrome<'a>,
    people: Vec<PersonRow>,
    departments: Vec<DepartmentRow>,
    kinds: &'static [PersonKind],
    can_write: bool,
    errors: FieldErrors,
    form: HashMap<String, String>,
    error: Option<String>,
    flash: Option<String>,
}

impl PeoplePage<'_> {
    fn v(&self, k: &str) -> &str {
        self.form.get(k).map_or("", String::as_str)
    }
}

async fn people_render(
    st: &AppState,
    s: &ConsoleSession,
    errors: HashMap<String, String>,
    form: HashMap<String, String>,
    error: Option<String>,
    flash: Option<String>,
    status: StatusCode,
) -> Response {
    let p = &s.state.principal;
    let people = match st.app.list_people(p).await {
        Ok(v) => v,
        Err(e) => return crate::error::WebError::from(e).into_response(),
    };
    let page = PeoplePage {
        c: chrome(st, s, "people"),
        people,
        departments: st.app.list_departments(p).await.unwrap_or_default(),
        kinds: PersonKind::ALL,
        can_write: st.app.decide(p, Action::PeopleWrite).await.is_ok_and(|d| d.allowed),
        errors: FieldErrors(errors),
        form,
        error,
        flash,
    };
    render(&page, status)
}

async fn people_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    if let Err(r) = unlocked(&s) {
        return r;
    }
    people_render(&st, &s, HashMap::new(), HashMap::new(), None, None, StatusCode::OK).await
}

async fn people_create(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = match unlocked(&s) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    if let Err(r) = csrf_ok(&s, &form) {
        return r;
    }
    let mut e = Errs::default();
    let employee_no = e.take("employee_no", Code::parse("employee_no", &field(&form, "employee_no")));
    let name = e.take("name", Text::parse("name", &field(&form, "name")));
    let kind = e.take("kind", field(&form, "kind").parse::<PersonKind>());
    let department = e.take(
        "department",
        Some(field(&form, "department")).filter(|d| !d.is_empty()).map(|d| Code::parse("department", &d)).transpose(),
    );
    let start_date = e.take("start_date", Date::parse_opt("start_date", &field(&form, "start_date")));
    let end_date = e.take("end_date", Date::parse_opt("end_date", &field(&form, "end_date")));
    let mut page_error = None;
    if let (Some(employee_no), Some(name), Some(kind), Some(department), Some(start_date), Some(end_date)) =
        (employee_no, name, kind, department, start_date, end_date)
    {
        let opt = |k: &str| Some(field(&form, k)).filter(|v| !v.trim().is_empty());
        let n = NewPerson {
            employee_no,
            name,
            kana: opt("kana"),
            kind,
            department,
            position: opt("position"),
            duties: opt("duties"),
            start_date,
            end_date,
            status: None,
        };
        match st.app.create_person(&p, n).await {
            Ok(_) => return Redirect::to("/people").into_response(),
            Err(CoreError::Conflict(m)) => {
                e.0.insert("employee_no".into(), m);
            }
            Err(err) => page_error = e.place(err, ""),
        }
    }
    let page_error = page_error.map(|k| if k == "reauth-required" { st.i18n.t(&s.state.lang, &k) } else { k });
    people_render(&st, &s, e.0, form, page_error, None, StatusCode::UNPROCESSABLE_ENTITY).await
}

async fn people_import(State(st): State<AppState>, s: ConsoleSession, mp: Multipart) -> Response {
    let (p, file) = match csv_upload(&s, mp).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match st.app.import_people(&p, &file).await {
        Ok(rep) => {
            let msg = format!("{}: +{} / {}", st.i18n.t(&s.state.lang, "people-imported"), rep.created, rep.updated);
            people_render(&st, &s, HashMap::new(), HashMap::new(), None, Some(msg), StatusCode::OK).await
        }
        Err(e) => {
            let msg = crate::error::WebError::from(e).body.message;
            people_render(&st, &s, HashMap::new(), HashMap::new(), Some(msg), None, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

// ---------- places ----------

#[derive(Template)]
#[template(path = "places.html")]
struct PlacesPage<'a> {
    c: Chrome<'a>,
    zones: Vec<ZoneRow>,
    sites: Vec<SiteRow>,
    departments: Vec<DepartmentRow>,
    levels: &'static [ZoneLevel],
    can_write: bool,
    errors: FieldErrors,
    form: HashMap<String, String>,
    error: Option<String>,
}

impl PlacesPage<'_> {
    fn v(&self, k: &str) -> &str {
        self.form.get(k).map_or("", String::as_str)
    }
}

async fn places_render(st: &AppState, s: &ConsoleSession, errors: HashMap<String, String>, form: HashMap<String, String>, error: Option<String>, status: StatusCode) -> Response {
    let p = &s.state.principal;
    let zones = match st.app.list_zones(p).await {
        Ok(z) => z,
        Err(e) => return crate::error::WebError::from(e).into_response(),
    };
    let page = PlacesPage {
        c: chrome(st, s, "places"),
        zones,
        sites: st.app.list_sites(p).await.unwrap_or_default(),
        departments: st.app.list_departments(p).await.unwrap_or_default(),
        levels: ZoneLevel::ALL,
        can_write: st.app.decide(p, Action::DirectoryWrite).await.is_ok_and(|d| d.allowed),
        errors: FieldErrors(errors),
        form,
        error,
    };
    render(&page, status)
}

async fn places_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    if let Err(r) = unlocked(&s) {
        return r;
    }
    places_render(&st, &s, HashMap::new(), HashMap::new(), None, StatusCode::OK).await
}

pub(crate) fn opt_code(form: &HashMap<String, String>, k: &str) -> Result<Option<Code>, CoreError> {
    Some(field(form, k)).filter(|v| !v.is_empty()).map(|v| Code::parse(k, &v)).transpose()
}

async fn zone_create(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = match unlocked(&s) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    if let Err(r) = csrf_ok(&s, &form) {
        return r;
    }
    let mut e = Errs::default();
    let code = e.take("code", Code::parse("code", &field(&form, "code")));
    let name = e.take("name", Text::parse("name", &field(&form, "name")));
    let level = e.take("level", field(&form, "level").parse::<ZoneLevel>());
    let parent = e.take("parent", opt_code(&form, "parent"));
    let site = e.take("site", opt_code(&form, "site"));
    let mut page_error = None;
    if let (Some(code), Some(name), Some(level), Some(parent), Some(site)) = (code, name, level, parent, site) {
        match st.app.create_zone(&p, NewZone { code, name, level, parent, site }).await {
            Ok(_) => return Redirect::to("/places").into_response(),
            Err(err) => page_error = e.place(err, ""),
        }
    }
    places_render(&st, &s, e.0, form, page_error, StatusCode::UNPROCESSABLE_ENTITY).await
}

async fn site_create(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = match unlocked(&s) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    if let Err(r) = csrf_ok(&s, &form) {
        return r;
    }
    let mut e = Errs::default();
    let code = e.take("site_code", Code::parse("code", &field(&form, "code")));
    let name = e.take("site_name", Text::parse("name", &field(&form, "name")));
    let mut page_error = None;
    if let (Some(code), Some(name)) = (code, name) {
        match st.app.create_site(&p, NewSite { code, name, address: Some(field(&form, "address")) }).await {
            Ok(_) => return Redirect::to("/places").into_response(),
            Err(err) => page_error = e.place(err, "site_"),
        }
    }
    places_render(&st, &s, e.0, HashMap::new(), page_error, StatusCode::UNPROCESSABLE_ENTITY).await
}

async fn department_create(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = match unlocked(&s) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    if let Err(r) = csrf_ok(&s, &form) {
        return r;
    }
    let mut e = Errs::default();
    let code = e.take("department_code", Code::parse("code", &field(&form, "code")));
    let name = e.take("department_name", Text::parse("name", &field(&form, "name")));
    let site = e.take("department_site", opt_code(&form, "site"));
    let mut page_error = None;
    if let (Some(code), Some(name), Some(site)) = (code, name, site) {
        match st.app.create_department(&p, NewDepartment { code, name, site }).await {
            Ok(_) => return Redirect::to("/places").into_response(),
            Err(err) => page_error = e.place(err, "department_"),
        }
    }
    places_render(&st, &s, e.0, HashMap::new(), page_error, StatusCode::UNPROCESSABLE_ENTITY).await
}

// ---------- clients and businesses ----------

#[derive(Template)]
#[template(path = "org.html")]
struct OrgPage<'a> {
    c: Chrome<'a>,
    clients: Vec<ClientRow>,
    businesses: Vec<BusinessRow>,
    zones: Vec<ZoneRow>,
    can_write: bool,
    errors: FieldErrors,
    error: Option<String>,
}

async fn org_render(st: &AppState, s: &ConsoleSession, errors: HashMap<String, String>, error: Option<String>, status: StatusCode) -> Response {
    let p = &s.state.principal;
    let clients = match st.app.list_clients(p).await {
        Ok(c) => c,
        Err(e) => return crate::error::WebError::from(e).into_response(),
    };
    let page = OrgPage {
        c: chrome(st, s, "org"),
        clients,
        businesses: st.app.list_businesses(p).await.unwrap_or_default(),
        zones: st.app.list_zones(p).await.unwrap_or_default(),
        can_write: st.app.decide(p, Action::DirectoryWrite).await.is_ok_and(|d| d.allowed),
        errors: FieldErrors(errors),
        error,
    };
    render(&page, status)
}

async fn org_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    if let Err(r) = unlocked(&s) {
        return r;
    }
    org_render(&st, &s, HashMap::new(), None, StatusCode::OK).await
}

async fn client_create(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = match unlocked(&s) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    if let Err(r) = csrf_ok(&s, &form) {
        return r;
    }
    let mut e = Errs::default();
    let code = e.take("client_code", Code::parse("code", &field(&form, "code")));
    let name = e.take("client_name", Text::parse("name", &field(&form, "name")));
    let mut page_error = None;
    if let (Some(code), Some(name)) = (code, name) {
        match st.app.create_client(&p, NewClient { code, name }).await {
            Ok(_) => return Redirect::to("/org").into_response(),
            Err(err) => page_error = e.place(err, "client_"),
        }
    }
    org_render(&st, &s, e.0, page_error, StatusCode::UNPROCESSABLE_ENTITY).await
}

async fn business_create(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = match unlocked(&s) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    if let Err(r) = csrf_ok(&s, &form) {
        return r;
    }
    let mut e = Errs::default();
    let code = e.take("business_code", Code::parse("code", &field(&form, "code")));
    let name = e.take("business_name", Text::parse("name", &field(&form, "name")));
    let client = e.take("client", Code::parse("client", &field(&form, "client")));
    let zone = e.take("zone", opt_code(&form, "zone"));
    let mut page_error = None;
    if let (Some(code), Some(name), Some(client), Some(zone)) = (code, name, client, zone) {
        let b = NewBusiness { code, name, client, zone, my_number: field(&form, "my_number") == "1" };
        match st.app.create_business(&p, b).await {
            Ok(_) => return Redirect::to("/org").into_response(),
            Err(err) => page_error = e.place(err, "business_"),
        }
    }
    org_render(&st, &s, e.0, page_error, StatusCode::UNPROCESSABLE_ENTITY).await
}

// ---------- ledger ----------

#[derive(Template)]
#[template(path = "ledger.html")]
struct LedgerPage<'a> {
    c: Chrome<'a>,
    q: SearchQuery,
    rows: Vec<EntryRow>,
    clients: Vec<ClientRow>,
    reviews: Vec<ReviewRow>,
    key: String,
    can_verify: bool,
    can_review: bool,
    errors: FieldErrors,
    error: Option<String>,
    flash: Option<String>,
}

async fn ledger_render(st: &AppState, s: &ConsoleSession, q: SearchQuery, errors: HashMap<String, String>, flash: Option<String>, status: StatusCode) -> Response {
    let p = &s.state.principal;
    if let Err(e) = st.app.require(p, Action::LedgerRead).await {
        return crate::error::WebError::from(e).into_response();
    }
    let (rows, error) = match q.filter() {
        Ok(f) => match st.app.ledger.search(&f).await {
            Ok(r) => (r, None),
            Err(e) => (vec![], Some(crate::error::WebError::from(e).body.message)),
        },
        Err(e) => (vec![], Some(e.body.message)),
    };
    let page = LedgerPage {
        c: chrome(st, s, "ledger"),
        q,
        rows,
        clients: st.app.list_clients(p).await.unwrap_or_default(),
        reviews: st.app.list_reviews(p).await.unwrap_or_default(),
        key: st.app.ledger.verifier().to_key_string(),
        can_verify: st.app.decide(p, Action::LedgerVerify).await.is_ok_and(|d| d.allowed),
        can_review: st.app.decide(p, Action::LedgerReview).await.is_ok_and(|d| d.allowed),
        errors: FieldErrors(errors),
        error,
        flash,
    };
    render(&page, status)
}

async fn ledger_page(State(st): State<AppState>, s: ConsoleSession, q: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>) -> Response {
    if let Err(r) = unlocked(&s) {
        return r;
    }
    let q = q.map(|q| q.0).unwrap_or_default();
    ledger_render(&st, &s, q, HashMap::new(), None, StatusCode::OK).await
}

async fn ledger_verify(State(st): State<AppState>, s: ConsoleSession, headers: HeaderMap) -> Response {
    let p = match unlocked(&s) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    let given = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !Mamori::csrf_ok(&s.state.csrf, given) {
        return (StatusCode::FORBIDDEN, "CSRF").into_response();
    }
    let lang = &s.state.lang;
    match st.app.verify_ledger(&p).await {
        Ok(r) if r.ok => {
            let n: u64 = r.logs.iter().map(|l| l.entries).sum();
            Html(format!(
                "<div class=\"ok\" id=\"verify-ok\">{} — {} logs, {} entries ({})</div>",
                st.i18n.t(lang, "ledger-verify-ok"),
                r.logs.len(),
                n,
                r.at
            ))
            .into_response()
        }
        Ok(r) => Html(format!(
            "<div class=\"error\" id=\"verify-bad\">{}: {}</div>",
            st.i18n.t(lang, "ledger-verify-bad"),
            html_escape(&r.error.unwrap_or_default())
        ))
        .into_response(),
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

async fn ledger_proof(State(st): State<AppState>, s: ConsoleSession, Query(q): Query<HashMap<String, String>>) -> Response {
    let p = match unlocked(&s) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    if let Err(e) = st.app.require(&p, Action::LedgerRead).await {
        return crate::error::WebError::from(e).into_response();
    }
    let Some(index) = q.get("index").and_then(|i| i.parse::<u64>().ok()) else {
        return (StatusCode::BAD_REQUEST, "index").into_response();
    };
    let client = q.get("client").map(String::as_str).filter(|c| !c.is_empty());
    let log = match st.app.log_id(client).await {
        Ok(l) => l,
        Err(e) => return crate::error::WebError::from(e).into_response(),
    };
    match st.app.ledger.proof(log, index).await {
        Ok(v) => {
            let proof = v["proof"].as_array().map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join("<br>")).unwrap_or_default();
            Html(format!(
                "<div class=\"proof\">tree {} · {}<br>leaf {}<br>{}</div>",
                v["tree_size"],
                if v["verified"].as_bool() == Some(true) { "✔ verified" } else { "✘" },
                html_escape(v["leaf_hash"].as_str().unwrap_or("")),
                proof
            ))
            .into_response()
        }
        Err(e) => crate::error::WebError::from(e).into_response(),
    }
}

async fn review_create(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = match unlocked(&s) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    if let Err(r) = csrf_ok(&s, &form) {
        return r;
    }
    let mut e = Errs::default();
    let kind = e.take("kind", ReviewKind::parse(&field(&form, "kind")));
    let from = e.take("from", mamori_core::ledger_time(&field(&form, "from")).ok_or_else(|| CoreError::invalid("from", "date required")));
    let to = e.take("to", mamori_core::ledger_time(&field(&form, "to")).ok_or_else(|| CoreError::invalid("to", "date required")));
    if let (Some(kind), Some(from), Some(to)) = (kind, from, to) {
        match st.app.sign_off_review(&p, kind, from, to, &field(&form, "comment")).await {
            Ok(r) => {
                let msg = format!("{} #{} ({} events)", st.i18n.t(&s.state.lang, "review-done"), r.id, r.events_seen);
                return ledger_render(&st, &s, SearchQuery::default(), HashMap::new(), Some(msg), StatusCode::OK).await;
            }
            Err(err) => {
                if let Some(m) = e.place(err, "") {
                    e.0.insert("comment".into(), m);
                }
            }
        }
    }
    ledger_render(&st, &s, SearchQuery::default(), e.0, None, StatusCode::UNPROCESSABLE_ENTITY).await
}

// ---------- accounts ----------

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage<'a> {
    c: Chrome<'a>,
    users: Vec<mamori_core::auth::UserRow>,
    roles: &'static [Role],
    errors: FieldErrors,
    error: Option<String>,
}

async fn users_render(st: &AppState, s: &ConsoleSession, errors: HashMap<String, String>, error: Option<String>, status: StatusCode) -> Response {
    let users = match st.app.list_users(&s.state.principal).await {
        Ok(u) => u,
        Err(e) => return crate::error::WebError::from(e).into_response(),
    };
    let c = chrome_with_error(st, s, "users", &error);
    render(&UsersPage { c, users, roles: Role::ALL, errors: FieldErrors(errors), error }, status)
}

async fn users_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    if let Err(r) = unlocked(&s) {
        return r;
    }
    users_render(&st, &s, HashMap::new(), None, StatusCode::OK).await
}

async fn user_create(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = match unlocked(&s) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    if let Err(r) = csrf_ok(&s, &form) {
        return r;
    }
    let mut e = Errs::default();
    let role = e.take("role", field(&form, "role").parse::<Role>());
    let mut page_error = None;
    if let Some(role) = role {
        match st.app.create_user(Some(&p), &field(&form, "login"), &field(&form, "name"), &[role], &field(&form, "password")).await {
            Ok(_) => return Redirect::to("/users").into_response(),
            Err(CoreError::Conflict(m)) => {
                e.0.insert("login".into(), m);
            }
            Err(err) => page_error = e.place(err, ""),
        }
    }
    let page_error = page_error.map(|k| if k == "reauth-required" { st.i18n.t(&s.state.lang, &k) } else { k });
    users_render(&st, &s, e.0, page_error, StatusCode::UNPROCESSABLE_ENTITY).await
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    c: Chrome<'a>,
    passkeys: Vec<mamori_core::passkey::PasskeyRow>,
    totp_enabled: bool,
    secret: String,
    url: String,
    errors: FieldErrors,
}

async fn account_render(st: &AppState, s: &ConsoleSession, errors: HashMap<String, String>, secret: Option<String>) -> Response {
    let p = &s.state.principal;
    let enabled = st.app.has_totp(p.user_id).await.unwrap_or(false);
    let (secret, url) = match secret {
        Some(sec) => {
            let url = format!("otpauth://totp/mamori:{}?secret={sec}&issuer=mamori", p.login);
            (sec, url)
        }
        None => mamori_core::auth::new_totp_secret(&p.login).unwrap_or_default(),
    };
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let passkeys = st.app.list_passkeys(p).await.unwrap_or_default();
    render(&AccountPage { c: chrome(st, s, "account"), passkeys, totp_enabled: enabled, secret, url, errors: FieldErrors(errors) }, status)
}

async fn account_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    if let Err(r) = unlocked(&s) {
        return r;
    }
    account_render(&st, &s, HashMap::new(), None).await
}

async fn totp_enable(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = match unlocked(&s) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    if let Err(r) = csrf_ok(&s, &form) {
        return r;
    }
    let secret = field(&form, "secret");
    match st.app.enable_totp(&p, &secret, &field(&form, "code")).await {
        Ok(()) => Redirect::to("/account").into_response(),
        Err(err) => {
            let mut e = Errs::default();
            let _ = e.take::<()>("totp", Err(err));
            account_render(&st, &s, e.0, Some(secret)).await
        }
    }
}

// ---------- passkeys ----------

fn header_csrf_ok(s: &ConsoleSession, headers: &HeaderMap) -> bool {
    let given = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
    Mamori::csrf_ok(&s.state.csrf, given)
}

fn json_error(e: CoreError) -> Response {
    crate::error::WebError::from(e).into_response()
}

async fn passkey_register_start(State(st): State<AppState>, s: ConsoleSession, headers: HeaderMap) -> Response {
    let p = match unlocked(&s) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    if !header_csrf_ok(&s, &headers) {
        return (StatusCode::FORBIDDEN, "CSRF").into_response();
    }
    match st.app.passkey_register_start(&p).await {
        Ok((ceremony, options)) => axum::Json(serde_json::json!({"ceremony": ceremony, "options": options})).into_response(),
        Err(e) => json_error(e),
    }
}

#[derive(serde::Deserialize)]
struct PasskeyFinish {
    ceremony: String,
    credential: serde_json::Value,
    #[serde(default)]
    name: String,
}

async fn passkey_register_finish(
    State(st): State<AppState>,
    s: ConsoleSession,
    headers: HeaderMap,
    body: Result<axum::Json<PasskeyFinish>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let p = match unlocked(&s) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    if !header_csrf_ok(&s, &headers) {
        return (StatusCode::FORBIDDEN, "CSRF").into_response();
    }
    let Ok(axum::Json(b)) = body else { return (StatusCode::BAD_REQUEST, "bad request").into_response() };
    match st.app.passkey_register_finish(&p, &b.ceremony, b.credential, &b.name).await {
        Ok(id) => axum::Json(serde_json::json!({"id": id})).into_response(),
        Err(e) => json_error(e),
    }
}

#[derive(serde::Deserialize)]
struct PasskeyLoginStart {
    login: String,
    csrf: String,
}

/// Before sign-in there is no session: the sign-in forms use a double-submit token, a random
/// value in a SameSite=Strict cookie that the form must repeat.
fn pre_csrf_ok(headers: &HeaderMap, given: &str) -> bool {
    let cookie_pre = crate::cookie_in(headers, "mamori_pre").unwrap_or("");
    !cookie_pre.is_empty() && Mamori::csrf_ok(cookie_pre, given)
}

async fn passkey_login_start(
    State(st): State<AppState>,
    headers: HeaderMap,
    axum::extract::ConnectInfo(addr): axum::extract::ConnectInfo<std::net::SocketAddr>,
    body: Result<axum::Json<PasskeyLoginStart>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(axum::Json(b)) = body else { return (StatusCode::BAD_REQUEST, "bad request").into_response() };
    if !pre_csrf_ok(&headers, &b.csrf) {
        return (StatusCode::FORBIDDEN, "CSRF").into_response();
    }
    match st.app.passkey_login_start(&b.login, Some(addr.ip().to_string())).await {
        Ok((ceremony, options)) => axum::Json(serde_json::json!({"ceremony": ceremony, "options": options})).into_response(),
        Err(e) => json_error(e),
    }
}

#[derive(serde::Deserialize)]
struct PasskeyLoginFinish {
    ceremony: String,
    credential: serde_json::Value,
    csrf: String,
    #[serde(default)]
    lang: String,
}

async fn passkey_login_finish(
    State(st): State<AppState>,
    headers: HeaderMap,
    axum::extract::ConnectInfo(addr): axum::extract::ConnectInfo<std::net::SocketAddr>,
    body: Result<axum::Json<PasskeyLoginFinish>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(axum::Json(b)) = body else { return (StatusCode::BAD_REQUEST, "bad request").into_response() };
    if !pre_csrf_ok(&headers, &b.csrf) {
        return (StatusCode::FORBIDDEN, "CSRF").into_response();
    }
    match st.app.passkey_login_finish(&b.ceremony, b.credential, Some(addr.ip().to_string()), SessionKind::Console).await {
        Ok(session) => {
            let _ = st.app.set_session_lang(&session.token, if b.lang == "en" { "en" } else { "ja" }).await;
            let mut r = axum::Json(serde_json::json!({"redirect": "/"})).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("{}={}{}", st.session_cookie(), session.token, st.cookie_attrs())) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
        Err(e) => json_error(e),
    }
}

async fn user_roles(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = match unlocked(&s) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    if let Err(r) = csrf_ok(&s, &form) {
        return r;
    }
    let Some(user_id) = form.get("user_id").and_then(|v| v.parse::<i64>().ok()) else {
        return (StatusCode::BAD_REQUEST, "user_id").into_response();
    };
    let roles: Vec<Role> = Role::ALL.iter().copied().filter(|r| form.contains_key(&format!("role_{}", r.as_str()))).collect();
    match st.app.set_roles(&p, user_id, &roles).await {
        // Changing one's own roles ends one's own sessions too: sign in again.
        Ok(()) if user_id == p.user_id => Redirect::to("/login").into_response(),
        Ok(()) => Redirect::to("/users").into_response(),
        Err(err) => {
            let mut e = Errs::default();
            let page_error = match err {
                CoreError::ReauthRequired => Some(st.i18n.t(&s.state.lang, "reauth-required")),
                other => {
                    e.0.insert("roles".into(), crate::error::WebError::from(other).body.message);
                    None
                }
            };
            users_render(&st, &s, e.0, page_error, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

/// Re-checks the password of the live session for sensitive actions, then returns to the page.
async fn reauth(
    State(st): State<AppState>,
    s: ConsoleSession,
    axum::extract::ConnectInfo(addr): axum::extract::ConnectInfo<std::net::SocketAddr>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(r) = unlocked(&s) {
        return r;
    }
    if let Err(r) = csrf_ok(&s, &form) {
        return r;
    }
    let back = form.get("back").map(String::as_str).filter(|b| b.starts_with('/') && !b.starts_with("//")).unwrap_or("/");
    match st.app.reauthenticate(&s.token, &field(&form, "password"), Some(addr.ip().to_string())).await {
        Ok(()) => Redirect::to(back).into_response(),
        Err(_) => Redirect::to(back).into_response(),
    }
}
