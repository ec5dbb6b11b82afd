//! The one web error: maps each domain error to an HTTP status, a stable code and a safe
//! message. Internal details go to the log (without secrets), never to the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mamori_core::CoreError;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The policy rule that refused a forbidden request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

#[derive(Debug)]
pub struct WebError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl WebError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, body: ErrorBody { code, message: message.into(), field: None, line: None, rule: None } }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", "sign in first")
    }
}

impl From<CoreError> for WebError {
    fn from(e: CoreError) -> Self {
        use StatusCode as S;
        match e {
            CoreError::NotFound(what) => Self::new(S::NOT_FOUND, "not_found", format!("{what} not found")),
            CoreError::Invalid { field, message } => {
                let mut w = Self::new(S::UNPROCESSABLE_ENTITY, "invalid_field", format!("{field} {message}"));
                w.body.field = Some(field);
                w
            }
            CoreError::Conflict(m) => Self::new(S::CONFLICT, "conflict", m),
            CoreError::AuthFailed => Self::new(S::UNAUTHORIZED, "sign_in_failed", "wrong login, password or code"),
            CoreError::Locked => Self::new(S::TOO_MANY_REQUESTS, "locked", "too many failures; try again later"),
            CoreError::Unauthenticated => Self::unauthorized(),
            CoreError::ReauthRequired => Self::new(S::FORBIDDEN, "reauth_required", "confirm your password again"),
            CoreError::Forbidden { rule } => {
                let rule = rule.unwrap_or_else(|| "default-deny".into());
                let mut w = Self::new(S::FORBIDDEN, "forbidden", format!("not permitted ({rule})"));
                w.body.rule = Some(rule);
                w
            }
            CoreError::Import { line, message } => {
                let mut w = Self::new(S::UNPROCESSABLE_ENTITY, "import_rejected", format!("line {line}: {message}"));
                w.body.line = Some(line);
                w
            }
            other => {
                tracing::error!(error = %other, "internal error");
                Self::new(S::INTERNAL_SERVER_ERROR, "internal", "internal error; the event was logged")
            }
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

pub type WebResult<T> = Result<T, WebError>;
