//! Console pages of the vault (業務データ): a business's access-holder list and grants, records
//! masked by default with one-field reveals (htmx) that ask for a purpose, and the input form.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use mamori_core::directory::BusinessRow;
use mamori_core::types::{Op, Text};
use mamori_core::vault::{AccessList, FieldRow, NewGrant, RecordRow};
use mamori_core::CoreError;

use crate::console::{chrome, field, render, Chrome};
use crate::{AppState, ConsoleSession};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/vault", get(vault_index))
        .route("/vault/{business}", get(business_page))
        .route("/vault/{business}/records", post(record_create))
        .route("/vault/{business}/reveal", post(reveal))
        .route("/vault/{business}/grants", post(grant_create))
        .route("/vault/{business}/grants/{id}/revoke", post(grant_revoke))
}

fn message(c: &Chrome<'_>, e: &CoreError) -> String {
    match e {
        CoreError::Forbidden { rule: Some(r) } => {
            let k = format!("rule-{r}");
            let t = c.t(&k);
            if t == k { format!("{} ({r})", c.t("denied")) } else { t }
        }
        CoreError::Invalid { field, message } => format!("{field}: {message}"),
        other => crate::error::WebError::from(match other {
            CoreError::NotFound(w) => CoreError::NotFound(w),
            CoreError::Conflict(m) => CoreError::Conflict(m.clone()),
            _ => CoreError::Internal(String::new()),
        })
        .body
        .message,
    }
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
}

impl BusinessPage<'_> {
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

async fn business_render(st: &AppState, s: &ConsoleSession, business: &str, error: Option<String>, status: StatusCode) -> Response {
    let p = &s.state.principal;
    let c = chrome(st, s, "vault");
    let fields = match st.app.list_fields(p, business).await {
        Ok(f) => f,
        Err(e) => return crate::error::WebError::from(e).into_response(),
    };
    let (records, records_error) = match st.app.list_records(p, business).await {
        Ok(r) => (r, None),
        Err(e) => (Vec::new(), Some(message(&c, &e))),
    };
    let page = BusinessPage {
        c,
        business: business.to_owned(),
        fields,
        records,
        records_error,
        access: st.app.access_list(p, business).await.ok(),
        ops: Op::ALL,
        error,
    };
    render(&page, status)
}

async fn business_page(State(st): State<AppState>, s: ConsoleSession, Path(business): Path<String>) -> Response {
    let _ = session!(s);
    business_render(&st, &s, &business, None, StatusCode::OK).await
}

async fn record_create(State(st): State<AppState>, s: ConsoleSession, Path(business): Path<String>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    let values: BTreeMap<String, String> =
        form.iter().filter_map(|(k, v)| k.strip_prefix("f_").map(|k| (k.to_owned(), v.clone()))).filter(|(_, v)| !v.trim().is_empty()).collect();
    match st.app.create_record(&p, &business, values).await {
        Ok(_) => Redirect::to(&format!("/vault/{}", urlencoding::encode(&business))).into_response(),
        Err(e) => {
            let msg = message(&chrome(&st, &s, "vault"), &e);
            business_render(&st, &s, &business, Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
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
        Err(e) => (None, Some(message(&c, &e))),
    };
    render(&RevealPartial { value, error }, StatusCode::OK)
}

async fn grant_create(State(st): State<AppState>, s: ConsoleSession, Path(business): Path<String>, Form(form): Form<Vec<(String, String)>>) -> Response {
    let ops: Vec<Op> = form.iter().filter(|(k, _)| k == "ops").filter_map(|(_, v)| v.parse().ok()).collect();
    let form: HashMap<String, String> = form.into_iter().filter(|(k, _)| k != "ops").collect();
    let p = session_csrf!(s, form);
    let c = chrome(&st, &s, "vault");
    let result = match (Text::parse("purpose", &field(&form, "purpose")), field(&form, "hours").trim().parse::<i64>()) {
        (Ok(purpose), Ok(hours)) => st.app.grant(&p, &business, NewGrant { login: field(&form, "login"), ops, purpose, hours }).await.map(|_| ()),
        (Err(e), _) => Err(e),
        (_, Err(_)) => Err(CoreError::invalid("hours", "a number of hours")),
    };
    match result {
        Ok(()) => Redirect::to(&format!("/vault/{}", urlencoding::encode(&business))).into_response(),
        Err(e) => {
            let msg = message(&c, &e);
            business_render(&st, &s, &business, Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}

async fn grant_revoke(State(st): State<AppState>, s: ConsoleSession, Path((business, id)): Path<(String, i64)>, Form(form): Form<HashMap<String, String>>) -> Response {
    let p = session_csrf!(s, form);
    match st.app.revoke_grant(&p, id).await {
        Ok(()) => Redirect::to(&format!("/vault/{}", urlencoding::encode(&business))).into_response(),
        Err(e) => {
            let msg = message(&chrome(&st, &s, "vault"), &e);
            business_render(&st, &s, &business, Some(msg), StatusCode::UNPROCESSABLE_ENTITY).await
        }
    }
}
