//! Door routes of the JSON API: configuration, credentials, approvals, the agent protocol
//! (decide, report, rules, push stream), alarms, occupancy and visits.

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::Json;
use mamori_core::doors::visitors::NewVisit;
use mamori_core::doors::{AgentReport, CardNumber, DecideRequest, NewCabinet, NewCredential, NewDoor, NewLevel, NewReader, ZoneApb};
use mamori_core::policy::Action;
use mamori_core::types::{Date, Text};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{query, r, ApiJson, Q, RouteSpec};
use crate::error::{WebError, WebResult};
use crate::{ApiPrincipal, AppState};

pub fn specs() -> Vec<RouteSpec> {
    use Action as A;
    use Method as M;
    vec![
        r(M::GET, "/api/v1/doors", "List doors", Some(A::DoorsRead), get!(list_doors)),
        r(M::POST, "/api/v1/doors", "Add a door joining two zones", Some(A::DoorsWrite), post!(create_door)),
        r(M::GET, "/api/v1/readers", "List readers", Some(A::DoorsRead), get!(list_readers)),
        r(M::POST, "/api/v1/readers", "Add a reader (entry or exit; card, card + palm vein, card + PIN)", Some(A::DoorsWrite), post!(create_reader)),
        r(M::GET, "/api/v1/cabinets", "List cabinets", Some(A::DoorsRead), get!(list_cabinets)),
        r(M::POST, "/api/v1/cabinets", "Add an electronic cabinet", Some(A::DoorsWrite), post!(create_cabinet)),
        r(M::GET, "/api/v1/access-levels", "List access levels", Some(A::DoorsRead), get!(list_levels)),
        r(M::POST, "/api/v1/access-levels", "Add an access level (zones, position, duty, schedule)", Some(A::DoorsWrite), post!(create_level)),
        r(M::POST, "/api/v1/access-levels/{code}/members", "Give a person a level directly", Some(A::DoorsWrite), post!(assign_level)),
        r(M::PUT, "/api/v1/zones/{code}/anti-passback", "Set a zone's anti-passback mode", Some(A::DoorsWrite), put!(set_apb)),
        r(M::POST, "/api/v1/holidays", "Add a holiday", Some(A::DoorsWrite), post!(add_holiday)),
        r(M::POST, "/api/v1/zone-approvals", "CISO approval for a high-security zone (PHY-4)", Some(A::DoorsApprove), post!(approve_zone)),
        r(M::GET, "/api/v1/credentials", "List credentials", Some(A::DoorsRead), get!(list_credentials)),
        r(M::POST, "/api/v1/credentials", "Issue a card, palm-vein enrolment or PIN (reissue replaces)", Some(A::DoorsCredentials), post!(issue_credential)),
        r(M::POST, "/api/v1/credentials/{id}/end", "Return, report lost or revoke a credential", Some(A::DoorsCredentials), post!(end_credential)),
        r(M::POST, "/api/v1/doors/decide", "Agent: decide a presentation (online)", Some(A::DoorsAgent), post!(decide)),
        r(M::POST, "/api/v1/doors/reports", "Agent: report offline decisions, door sensors, passages, readers, cabinets", Some(A::DoorsAgent), post!(reports)),
        r(M::GET, "/api/v1/doors/rules", "Agent: the rules for its offline cache", Some(A::DoorsAgent), get!(rules)),
        r(M::GET, "/api/v1/doors/stream", "Agent: server-sent pushes (revocations, rule changes)", Some(A::DoorsAgent), get!(stream)),
        r(M::GET, "/api/v1/alarms", "List alarms (?open=true for unacknowledged)", Some(A::DoorsMonitor), get!(list_alarms)),
        r(M::POST, "/api/v1/alarms/{id}/ack", "Acknowledge an alarm with a comment", Some(A::AlarmsAck), post!(ack_alarm)),
        r(M::GET, "/api/v1/occupancy", "Who is inside each zone now", Some(A::DoorsMonitor), get!(occupancy)),
        r(M::GET, "/api/v1/muster", "Muster list for evacuation (recorded)", Some(A::DoorsMonitor), get!(muster)),
        r(M::GET, "/api/v1/visits", "Visits of a day (?day=YYYY-MM-DD, default today)", Some(A::VisitorsManage), get!(list_visits)),
        r(M::POST, "/api/v1/visits", "Register a visitor (PHY-9)", Some(A::VisitorsManage), post!(register_visit)),
        r(M::POST, "/api/v1/visits/{id}/check-in", "Hand a visitor their temporary card", Some(A::VisitorsManage), post!(check_in)),
        r(M::POST, "/api/v1/visits/{id}/check-out", "Record a visitor's exit and card return", Some(A::VisitorsManage), post!(check_out)),
    ]
}

list_handler!(list_doors, list_doors);
list_handler!(list_readers, list_readers);
list_handler!(list_cabinets, list_cabinets);
list_handler!(list_levels, list_levels);
list_handler!(occupancy, occupancy);
list_handler!(muster, muster);
create_handler!(create_door, NewDoor, create_door);
create_handler!(create_reader, NewReader, create_reader);
create_handler!(create_cabinet, NewCabinet, create_cabinet);
create_handler!(create_level, NewLevel, create_level);
create_handler!(issue_credential, NewCredential, issue_credential);
create_handler!(register_visit, NewVisit, register_visit);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Member {
    employee_no: String,
}

async fn assign_level(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(code): Path<String>, ApiJson(b): ApiJson<Member>) -> WebResult<StatusCode> {
    st.app.assign_level(&p, &b.employee_no, &code).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_apb(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(code): Path<String>, ApiJson(b): ApiJson<ZoneApb>) -> WebResult<StatusCode> {
    st.app.set_zone_apb(&p, &code, b).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Holiday {
    day: Date,
    name: Text,
}

async fn add_holiday(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, ApiJson(b): ApiJson<Holiday>) -> WebResult<StatusCode> {
    st.app.add_holiday(&p, b.day, b.name).await?;
    Ok(StatusCode::CREATED)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Approval {
    employee_no: String,
    zone: String,
    #[serde(default)]
    until: Option<Date>,
}

async fn approve_zone(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, ApiJson(b): ApiJson<Approval>) -> WebResult<(StatusCode, Json<Value>)> {
    let id = st.app.approve_zone(&p, &b.employee_no, &b.zone, b.until).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredQuery {
    #[serde(default)]
    employee_no: Option<String>,
}

async fn list_credentials(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, q: Q<CredQuery>) -> WebResult<Json<Value>> {
    st.app.require(&p, Action::DoorsRead).await?;
    let q = query(q)?;
    Ok(Json(json!(st.app.list_credentials(&p, q.employee_no.as_deref()).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndCred {
    status: String,
    #[serde(default)]
    reason: String,
}

async fn end_credential(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(id): Path<i64>, ApiJson(b): ApiJson<EndCred>) -> WebResult<StatusCode> {
    st.app.end_credential(&p, id, &b.status, &b.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn decide(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, ApiJson(b): ApiJson<DecideRequest>) -> WebResult<Json<Value>> {
    Ok(Json(json!(st.app.door_decide(&p, b).await?)))
}

async fn reports(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, ApiJson(b): ApiJson<Vec<AgentReport>>) -> WebResult<Json<Value>> {
    Ok(Json(json!({"recorded": st.app.door_report(&p, b).await?})))
}

async fn rules(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal) -> WebResult<Json<Value>> {
    let r = st.app.door_rules_for_agent(&p).await?;
    Ok(Json(json!(*r)))
}

async fn stream(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal) -> WebResult<Sse<impl futures_core::Stream<Item = Result<SseEvent, Infallible>>>> {
    let rx = st.app.door_subscribe(&p).await?;
    let version = st.app.doors.rules().version;
    let first = Some(SseEvent::default().data(json!({"type": "rules", "version": version}).to_string()));
    let s = futures_util::stream::unfold((rx, first), |(mut rx, first)| async move {
        if let Some(f) = first {
            return Some((Ok(f), (rx, None)));
        }
        let data = match rx.recv().await {
            Ok(push) => serde_json::to_string(&push).unwrap_or_default(),
            // A slow agent missed pushes: tell it to refetch everything.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => json!({"type": "rules", "version": 0}).to_string(),
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(SseEvent::default().data(data)), (rx, None)))
    });
    Ok(Sse::new(s).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(10))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlarmQuery {
    #[serde(default)]
    open: Option<bool>,
}

async fn list_alarms(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, q: Q<AlarmQuery>) -> WebResult<Json<Value>> {
    st.app.require(&p, Action::DoorsMonitor).await?;
    let q = query(q)?;
    Ok(Json(json!(st.app.list_alarms(&p, q.open.unwrap_or(false)).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ack {
    comment: String,
}

async fn ack_alarm(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(id): Path<i64>, ApiJson(b): ApiJson<Ack>) -> WebResult<StatusCode> {
    st.app.ack_alarm(&p, id, &b.comment).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DayQuery {
    #[serde(default)]
    day: Option<String>,
}

async fn list_visits(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, q: Q<DayQuery>) -> WebResult<Json<Value>> {
    st.app.require(&p, Action::VisitorsManage).await?;
    let q = query(q)?;
    let day = match q.day.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => Date::parse("day", d).map_err(WebError::from)?.naive(),
        None => mamori_core::doors::rules::jst(st.app.clock.now()).date_naive(),
    };
    Ok(Json(json!(st.app.list_visits(&p, day).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckIn {
    card: CardNumber,
}

async fn check_in(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(id): Path<i64>, ApiJson(b): ApiJson<CheckIn>) -> WebResult<StatusCode> {
    st.app.check_in_visit(&p, id, b.card).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckOut {
    card_returned: bool,
}

async fn check_out(State(st): State<AppState>, ApiPrincipal(p): ApiPrincipal, Path(id): Path<i64>, ApiJson(b): ApiJson<CheckOut>) -> WebResult<StatusCode> {
    st.app.check_out_visit(&p, id, b.card_returned).await?;
    Ok(StatusCode::NO_CONTENT)
}
