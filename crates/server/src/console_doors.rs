//! Console pages for physical access control: doors, readers, cabinets, access levels and
//! approvals (入退室管理), credentials (カード・生体情報), the security monitor with live alarms,
//! events and occupancy (警備モニター) and the muster list, and the reception screen for
//! visitors (来訪者受付, usable on a tablet).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use mamori_core::directory::{PersonRow, ZoneRow};
use mamori_core::doors::visitors::{NewVisit, VisitRow};
use mamori_core::doors::{
    AlarmKind, AlarmRow, ApbMode, CabinetRow, CardNumber, CredentialRow, Direction, DoorRow, LevelRow, NewCabinet, NewCredential, NewDoor,
    NewLevel, NewReader, OccupantRow, ReaderMode, ReaderRow, ZoneApb,
};
use mamori_core::ledger::{EntryRow, SearchFilter};
use mamori_core::policy::Action;
use mamori_core::types::{Code, Date, Text};
use mamori_core::CoreError;

use crate::console::{chrome, field, opt_code, render, Chrome, Errs, FieldErrors};
use crate::{AppState, ConsoleSession};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/doors", get(doors_page))
        .route("/doors/doors", post(door_create))
        .route("/doors/readers", post(reader_create))
        .route("/doors/cabinets", post(cabinet_create))
        .route("/doors/levels", post(level_create))
        .route("/doors/apb", post(apb_set))
        .route("/doors/holidays", post(holiday_create))
        .route("/doors/approvals", post(approval_create))
        .route("/credentials", get(credentials_page).post(credential_issue))
        .route("/credentials/{id}/end", post(credential_end))
        .route("/monitor", get(monitor_page))
        .route("/monitor/alarms", get(monitor_alarms))
        .route("/monitor/events", get(monitor_events))
        .route("/monitor/alarms/{id}/ack", post(alarm_ack))
        .route("/monitor/muster", get(muster_page))
        .route("/visitors", get(visitors_page).post(visit_create))
        .route("/visitors/{id}/checkout", post(visit_checkout))
}

/// Milliseconds since the epoch as Japan time, as staff read it.
pub fn jst(ms: impl std::borrow::Borrow<i64>) -> String {
    DateTime::from_timestamp_millis(*ms.borrow()).map_or_else(String::new, |t| mamori_core::doors::rules::jst(t).format("%Y-%m-%d %H:%M:%S").to_string())
}

pub fn jst_opt(ms: &Option<i64>) -> String {
    ms.map(jst).unwrap_or_default()
}

fn err_response(e: CoreError) -> Response {
    crate::error::WebError::from(e).into_response()
}

async fn can(st: &AppState, p: &mamori_core::auth::Principal, a: Action) -> bool {
    st.app.decide(p, a).await.is_ok_and(|d| d.allowed)
}

// ---------- doors, readers, cabinets, levels ----------

#[derive(Template)]
#[template(path = "doors.html")]
struct DoorsPage<'a> {
    c: Chrome<'a>,
    doors: Vec<DoorRow>,
    readers: Vec<ReaderRow>,
    cabinets: Vec<CabinetRow>,
    levels: Vec<LevelRow>,
    zones: Vec<(ZoneRow, String, i64)>,
    people: Vec<PersonRow>,
    modes: &'static [ReaderMode],
    apb_modes: &'static [ApbMode],
    can_write: bool,
    can_approve: bool,
    errors: FieldErrors,
    form: HashMap<String, String>,
    error: Option<String>,
}

impl DoorsPage<'_> {
    fn v(&self, k: &str) -> &str {
        self.form.get(k).map_or("", String::as_str)
    }
    fn mode_label(&self, m: &ReaderMode) -> String {
        self.c.t(&format!("mode-{}", m.as_str().replace('_', "-")))
    }
    fn apb_label(&self, m: &str) -> String {
        self.c.t(&format!("apb-{m}"))
    }
}

async fn doors_render(st: &AppState, s: &ConsoleSession, errors: HashMap<String, String>, form: HashMap<String, String>, error: Option<String>, status: StatusCode) -> Response {
    let p = &s.state.principal;
    let doors = match st.app.list_doors(p).await {
        Ok(d) => d,
        Err(e) => return err_response(e),
    };
    let rules = st.app.doors.rules();
    let zones = st
        .app
        .list_zones(p)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|z| {
            let (apb, reset) = rules.zones.get(&z.id).map_or(("none".to_owned(), 0), |i| (i.apb.as_str().to_owned(), i.apb_reset_minutes));
            (z, apb, reset)
        })
        .collect();
    let can_approve = can(st, p, Action::DoorsApprove).await;
    let page = DoorsPage {
        c: chrome(st, s, "doors"),
        doors,
        readers: st.app.list_readers(p).await.unwrap_or_default(),
        cabinets: st.app.list_cabinets(p).await.unwrap_or_default(),
        levels: st.app.list_levels(p).await.unwrap_or_default(),
        zones,
        people: if can_approve { st.app.list_people(p).await.unwrap_or_default() } else { Vec::new() },
        modes: ReaderMode::ALL,
        apb_modes: ApbMode::ALL,
        can_write: can(st, p, Action::DoorsWrite).await,
        can_approve,
        errors: FieldErrors(errors),
        form,
        error,
    };
    render(&page, status)
}

async fn doors_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    let _ = session!(s);
    doors_render(&st, &s, HashMap::new(), HashMap::new(), None, StatusCode::OK).await
}


/// Runs a create action and re-renders the doors page with errors next to the fields.
async fn doors_result<T>(st: &AppState, s: &ConsoleSession, mut e: Errs, form: HashMap<String, String>, prefix: &str, r: Option<Result<T, CoreError>>) -> Response {
    let mut page_error = None;
    match r {
        Some(Ok(_)) => return Redirect::to("/doors").into_response(),
        Some(Err(err)) => page_error = e.place(err, prefix),
        None => {}
    }
    doors_render(st, s, e.0, form, page_error, StatusCode::UNPROCESSABLE_ENTITY).await
}

async fn door_create(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let mut e = Errs::default();
    let code = e.take("door_code", Code::parse("code", &field(&form, "code")));
    let name = e.take("door_name", Text::parse("name", &field(&form, "name")));
    let inside = e.take("door_inside", Code::parse("inside", &field(&form, "inside")));
    let outside = e.take("door_outside", opt_code(&form, "outside"));
    let held = e.take(
        "door_held_open_secs",
        field(&form, "held_open_secs").trim().parse::<i64>().map_err(|_| CoreError::invalid("held_open_secs", "a number of seconds")),
    );
    let r = match (code, name, inside, outside, held) {
        (Some(code), Some(name), Some(inside), Some(outside), Some(held)) => {
            Some(st.app.create_door(&p, NewDoor { code, name, outside, inside, held_open_secs: Some(held) }).await)
        }
        _ => None,
    };
    doors_result(&st, &s, e, form, "door_", r).await
}

async fn reader_create(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let mut e = Errs::default();
    let code = e.take("reader_code", Code::parse("code", &field(&form, "code")));
    let door = e.take("reader_door", Code::parse("door", &field(&form, "door")));
    let direction = e.take("reader_direction", field(&form, "direction").parse::<Direction>());
    let mode = e.take("reader_mode", field(&form, "mode").parse::<ReaderMode>());
    let addr = e.take(
        "reader_osdp_address",
        field(&form, "osdp_address").trim().parse::<u8>().map_err(|_| CoreError::invalid("osdp_address", "0 to 126")),
    );
    let r = match (code, door, direction, mode, addr) {
        (Some(code), Some(door), Some(direction), Some(mode), Some(a)) => {
            Some(st.app.create_reader(&p, NewReader { code, door, direction, mode, osdp_address: Some(a) }).await)
        }
        _ => None,
    };
    doors_result(&st, &s, e, form, "reader_", r).await
}

async fn cabinet_create(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let mut e = Errs::default();
    let code = e.take("cabinet_code", Code::parse("code", &field(&form, "code")));
    let name = e.take("cabinet_name", Text::parse("name", &field(&form, "name")));
    let zone = e.take("cabinet_zone", Code::parse("zone", &field(&form, "zone")));
    let r = match (code, name, zone) {
        (Some(code), Some(name), Some(zone)) => Some(st.app.create_cabinet(&p, NewCabinet { code, name, zone }).await),
        _ => None,
    };
    doors_result(&st, &s, e, form, "cabinet_", r).await
}

async fn level_create(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<Vec<(String, String)>>) -> Response {
    let zones_raw: Vec<String> = form.iter().filter(|(k, _)| k == "zones").map(|(_, v)| v.clone()).collect();
    let form: HashMap<String, String> = form.into_iter().filter(|(k, _)| k != "zones").collect();
    let p = session_csrf!(s, form);
    let mut e = Errs::default();
    let code = e.take("level_code", Code::parse("code", &field(&form, "code")));
    let name = e.take("level_name", Text::parse("name", &field(&form, "name")));
    let zones = e.take("level_zones", zones_raw.iter().map(|z| Code::parse("zones", z)).collect::<Result<Vec<_>, _>>());
    let days: String = ["1", "2", "3", "4", "5", "6", "7"].iter().filter(|d| form.contains_key(&format!("day{d}"))).copied().collect();
    let r = match (code, name, zones) {
        (Some(code), Some(name), Some(zones)) => Some(
            st.app
                .create_level(
                    &p,
                    NewLevel {
                        code,
                        name,
                        zones,
                        position: Some(field(&form, "position")),
                        duty: Some(field(&form, "duty")),
                        days: Some(days),
                        from: Some(field(&form, "from")),
                        to: Some(field(&form, "to")),
                        on_holidays: Some(form.contains_key("on_holidays")),
                    },
                )
                .await,
        ),
        _ => None,
    };
    doors_result(&st, &s, e, form, "level_", r).await
}

async fn apb_set(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let mut e = Errs::default();
    let mode = e.take("apb_mode", field(&form, "mode").parse::<ApbMode>());
    let reset = e.take(
        "apb_reset_minutes",
        Some(field(&form, "reset_minutes")).filter(|x| !x.trim().is_empty()).map_or(Ok(0), |x| x.trim().parse::<i64>().map_err(|_| CoreError::invalid("reset_minutes", "a number of minutes"))),
    );
    let r = match (mode, reset) {
        (Some(mode), Some(reset)) => Some(st.app.set_zone_apb(&p, &field(&form, "zone"), ZoneApb { mode, reset_minutes: Some(reset) }).await),
        _ => None,
    };
    doors_result(&st, &s, e, form, "apb_", r).await
}

async fn holiday_create(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let mut e = Errs::default();
    let day = e.take("holiday_day", Date::parse("day", &field(&form, "day")));
    let name = e.take("holiday_name", Text::parse("name", &field(&form, "name")));
    let r = match (day, name) {
        (Some(day), Some(name)) => Some(st.app.add_holiday(&p, day, name).await),
        _ => None,
    };
    doors_result(&st, &s, e, form, "holiday_", r).await
}

async fn approval_create(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let mut e = Errs::default();
    let until = e.take("approval_until", Date::parse_opt("until", &field(&form, "until")));
    let r = match until {
        Some(until) => Some(st.app.approve_zone(&p, &field(&form, "employee_no"), &field(&form, "zone"), until).await),
        None => None,
    };
    doors_result(&st, &s, e, form, "approval_", r).await
}

// ---------- credentials ----------

#[derive(Template)]
#[template(path = "credentials.html")]
struct CredentialsPage<'a> {
    c: Chrome<'a>,
    rows: Vec<CredentialRow>,
    query: String,
    can_issue: bool,
    errors: FieldErrors,
    form: HashMap<String, String>,
    error: Option<String>,
}

impl CredentialsPage<'_> {
    fn v(&self, k: &str) -> &str {
        self.form.get(k).map_or("", String::as_str)
    }
    fn kind_is(&self, k: &str) -> bool {
        self.v("kind") == k
    }
    fn status_label(&self, s: &str) -> String {
        self.c.t(&format!("cred-{s}"))
    }
}

#[derive(serde::Deserialize, Default)]
struct CredQuery {
    #[serde(default)]
    employee_no: Option<String>,
}

async fn credentials_render(st: &AppState, s: &ConsoleSession, query: String, errors: HashMap<String, String>, form: HashMap<String, String>, error: Option<String>, status: StatusCode) -> Response {
    let p = &s.state.principal;
    let q = Some(query.trim()).filter(|x| !x.is_empty());
    let rows = match st.app.list_credentials(p, q).await {
        Ok(r) => r,
        Err(e) => return err_response(e),
    };
    let page = CredentialsPage {
        c: chrome(st, s, "credentials"),
        rows,
        query,
        can_issue: can(st, p, Action::DoorsCredentials).await,
        errors: FieldErrors(errors),
        form,
        error,
    };
    render(&page, status)
}

async fn credentials_page(State(st): State<AppState>, s: ConsoleSession, q: Result<Query<CredQuery>, axum::extract::rejection::QueryRejection>) -> Response {
    let _ = session!(s);
    let q = q.ok().and_then(|q| q.0.employee_no).unwrap_or_default();
    credentials_render(&st, &s, q, HashMap::new(), HashMap::new(), None, StatusCode::OK).await
}

async fn credential_issue(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let mut e = Errs::default();
    let emp = e.take("employee_no", Code::parse("employee_no", &field(&form, "employee_no")));
    let mut page_error = None;
    if let Some(employee_no) = emp.clone() {
        let n = NewCredential { employee_no, kind: field(&form, "kind"), number: field(&form, "number") };
        match st.app.issue_credential(&p, n).await {
            Ok(_) => return Redirect::to(&format!("/credentials?employee_no={}", urlencoding::encode(&field(&form, "employee_no")))).into_response(),
            Err(err) => page_error = e.place(err, ""),
        }
    }
    let mut form = form;
    form.remove("number");
    credentials_render(&st, &s, String::new(), e.0, form, page_error, StatusCode::UNPROCESSABLE_ENTITY).await
}

async fn credential_end(State(st): State<AppState>, s: ConsoleSession, Path(id): Path<i64>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    match st.app.end_credential(&p, id, &field(&form, "status"), &field(&form, "reason")).await {
        Ok(()) => Redirect::to("/credentials").into_response(),
        Err(e) => {
            let mut errs = Errs::default();
            let msg = errs.place(e, "end_").or_else(|| errs.0.values().next().cloned());
            credentials_render(&st, &s, String::new(), errs.0, HashMap::new(), msg, StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

// ---------- monitor: alarms, events, occupancy, muster ----------

#[derive(Template)]
#[template(path = "monitor.html")]
struct MonitorPage<'a> {
    c: Chrome<'a>,
    alarms: AlarmsPartial<'a>,
    events: EventsPartial<'a>,
    occupancy: Vec<OccupantRow>,
}

#[derive(Template)]
#[template(path = "monitor_alarms.html")]
struct AlarmsPartial<'a> {
    c: Chrome<'a>,
    alarms: Vec<AlarmRow>,
    can_ack: bool,
    error: Option<(i64, String)>,
}

impl AlarmsPartial<'_> {
    fn kind_label(&self, k: &str) -> String {
        AlarmKind::parse(k).map_or_else(|_| k.to_owned(), |k| k.label(&self.c.lang).to_owned())
    }
    fn err_for(&self, id: &i64) -> Option<&str> {
        self.error.as_ref().filter(|(i, _)| i == id).map(|(_, m)| m.as_str())
    }
}

#[derive(Template)]
#[template(path = "monitor_events.html")]
struct EventsPartial<'a> {
    c: Chrome<'a>,
    events: Vec<EntryRow>,
}

impl EventsPartial<'_> {
    fn when(&self, e: &EntryRow) -> String {
        e.event.jst.get(..19).unwrap_or(&e.event.jst).replace('T', " ")
    }
    fn place(&self, e: &EntryRow) -> String {
        e.event.place.as_ref().map(|p| [p.door.as_deref(), p.terminal.as_deref(), p.zone.as_deref()].iter().flatten().copied().collect::<Vec<_>>().join(" / ")).unwrap_or_default()
    }
    fn who(&self, e: &EntryRow) -> String {
        format!("{}:{}", e.event.actor.kind, e.event.actor.id)
    }
}

async fn alarms_partial<'a>(st: &'a AppState, s: &ConsoleSession, error: Option<(i64, String)>) -> Result<AlarmsPartial<'a>, CoreError> {
    let p = &s.state.principal;
    Ok(AlarmsPartial { c: chrome(st, s, "monitor"), alarms: st.app.list_alarms(p, true).await?, can_ack: can(st, p, Action::AlarmsAck).await, error })
}

async fn events_partial<'a>(st: &'a AppState, s: &ConsoleSession) -> Result<EventsPartial<'a>, CoreError> {
    let p = &s.state.principal;
    st.app.require(p, Action::DoorsMonitor).await?;
    let f = SearchFilter { action: Some("door.".into()), limit: Some(30), ..SearchFilter::default() };
    Ok(EventsPartial { c: chrome(st, s, "monitor"), events: st.app.ledger.search(&f).await? })
}

async fn monitor_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    let p = session!(s);
    let alarms = match alarms_partial(&st, &s, None).await {
        Ok(a) => a,
        Err(e) => return err_response(e),
    };
    let events = match events_partial(&st, &s).await {
        Ok(a) => a,
        Err(e) => return err_response(e),
    };
    let page = MonitorPage { c: chrome(&st, &s, "monitor"), alarms, events, occupancy: st.app.occupancy(&p).await.unwrap_or_default() };
    render(&page, StatusCode::OK)
}

async fn monitor_alarms(State(st): State<AppState>, s: ConsoleSession) -> Response {
    let _ = session!(s);
    match alarms_partial(&st, &s, None).await {
        Ok(a) => render(&a, StatusCode::OK),
        Err(e) => err_response(e),
    }
}

async fn monitor_events(State(st): State<AppState>, s: ConsoleSession) -> Response {
    let _ = session!(s);
    match events_partial(&st, &s).await {
        Ok(a) => render(&a, StatusCode::OK),
        Err(e) => err_response(e),
    }
}

async fn alarm_ack(State(st): State<AppState>, s: ConsoleSession, Path(id): Path<i64>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let error = match st.app.ack_alarm(&p, id, &field(&form, "comment")).await {
        Ok(()) => None,
        Err(CoreError::Invalid { message, .. }) => Some((id, message)),
        Err(e) => return err_response(e),
    };
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    match alarms_partial(&st, &s, error).await {
        // htmx swaps the list (it swaps only 2xx answers, so the error comes back as 200 with
        // the message next to the comment field); without htmx, the whole page.
        Ok(a) if form.contains_key("hx") => render(&a, StatusCode::OK),
        Ok(_) if status == StatusCode::OK => Redirect::to("/monitor").into_response(),
        Ok(a) => render(&a, status),
        Err(e) => err_response(e),
    }
}

#[derive(Template)]
#[template(path = "muster.html")]
struct MusterPage<'a> {
    c: Chrome<'a>,
    rows: Vec<OccupantRow>,
    printed_at: String,
}

async fn muster_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    let p = session!(s);
    match st.app.muster(&p).await {
        Ok(rows) => render(&MusterPage { c: chrome(&st, &s, "monitor"), rows, printed_at: jst(st.app.clock.now().timestamp_millis()) }, StatusCode::OK),
        Err(e) => err_response(e),
    }
}

// ---------- visitors (reception) ----------

#[derive(Template)]
#[template(path = "visitors.html")]
struct VisitorsPage<'a> {
    c: Chrome<'a>,
    visits: Vec<VisitRow>,
    zones: Vec<ZoneRow>,
    today: String,
    errors: FieldErrors,
    form: HashMap<String, String>,
    error: Option<String>,
}

impl VisitorsPage<'_> {
    fn v(&self, k: &str) -> &str {
        self.form.get(k).map_or("", String::as_str)
    }
    fn zone_checked(&self, code: &str) -> bool {
        self.form.get("zones_list").is_some_and(|z| z.split(',').any(|x| x == code))
    }
}

async fn visitors_render(st: &AppState, s: &ConsoleSession, errors: HashMap<String, String>, form: HashMap<String, String>, error: Option<String>, status: StatusCode) -> Response {
    let p = &s.state.principal;
    let today = mamori_core::doors::rules::jst(st.app.clock.now()).date_naive();
    let visits = match st.app.list_visits(p, today).await {
        Ok(v) => v,
        Err(e) => return err_response(e),
    };
    let zones = st.app.list_zones(p).await.unwrap_or_default().into_iter().filter(|z| z.level != mamori_core::types::ZoneLevel::Server).collect();
    render(&VisitorsPage { c: chrome(st, s, "visitors"), visits, zones, today: today.to_string(), errors: FieldErrors(errors), form, error }, status)
}

async fn visitors_page(State(st): State<AppState>, s: ConsoleSession) -> Response {
    let _ = session!(s);
    visitors_render(&st, &s, HashMap::new(), HashMap::new(), None, StatusCode::OK).await
}

/// `YYYY-MM-DDTHH:MM` from a datetime-local input, read as Japan time.
fn parse_local(field_name: &str, v: &str) -> Result<DateTime<Utc>, CoreError> {
    let t = NaiveDateTime::parse_from_str(v.trim(), "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(v.trim(), "%Y-%m-%d %H:%M"))
        .map_err(|_| CoreError::invalid(field_name, "date and time, e.g. 2026-04-01T09:30"))?;
    let off = chrono::FixedOffset::east_opt(9 * 3600).ok_or_else(|| CoreError::Internal("offset".into()))?;
    off.from_local_datetime(&t).single().map(|x| x.with_timezone(&Utc)).ok_or_else(|| CoreError::invalid(field_name, "not a valid time"))
}

async fn visit_create(State(st): State<AppState>, s: ConsoleSession, Form(form): Form<Vec<(String, String)>>) -> Response {
    let zones_raw: Vec<String> = form.iter().filter(|(k, _)| k == "zones").map(|(_, v)| v.clone()).collect();
    let mut form: HashMap<String, String> = form.into_iter().filter(|(k, _)| k != "zones").collect();
    form.insert("zones_list".into(), zones_raw.join(","));
    let p = session_csrf!(s, form);
    let mut e = Errs::default();
    let name = e.take("name", Text::parse("name", &field(&form, "name")));
    let host = e.take("host", Code::parse("host", &field(&form, "host")));
    let purpose = e.take("purpose", Text::parse("purpose", &field(&form, "purpose")));
    let zones = e.take("zones", zones_raw.iter().map(|z| Code::parse("zones", z)).collect::<Result<Vec<_>, _>>());
    let from = e.take("expected_from", parse_local("expected_from", &field(&form, "expected_from")));
    let to = e.take("expected_to", parse_local("expected_to", &field(&form, "expected_to")));
    let card = e.take(
        "card",
        Some(field(&form, "card_number")).filter(|x| !x.trim().is_empty()).map(|n| CardNumber::try_from(format!("{}:{}", field(&form, "card_format"), n.trim()))).transpose(),
    );
    let mut page_error = None;
    if let (Some(name), Some(host), Some(purpose), Some(zones), Some(from), Some(to), Some(card)) = (name, host, purpose, zones, from, to, card) {
        let v = NewVisit { name, company: Some(field(&form, "company")), host, purpose, zones, expected_from: from, expected_to: to, card };
        match st.app.register_visit(&p, v).await {
            Ok(_) => return Redirect::to("/visitors").into_response(),
            Err(err) => page_error = e.place(err, ""),
        }
    }
    visitors_render(&st, &s, e.0, form, page_error, StatusCode::UNPROCESSABLE_ENTITY).await
}

async fn visit_checkout(State(st): State<AppState>, s: ConsoleSession, Path(id): Path<i64>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    match st.app.check_out_visit(&p, id, field(&form, "card_returned") == "yes").await {
        Ok(()) => Redirect::to("/visitors").into_response(),
        Err(e) => visitors_render(&st, &s, HashMap::new(), HashMap::new(), Some(crate::error::WebError::from(e).body.message), StatusCode::UNPROCESSABLE_ENTITY).await,
    }
}
