//! mamori's HTTP layer: the JSON API under `/api/v1` (with its OpenAPI document), and the
//! server-rendered console. Only this crate knows HTTP; it calls `mamori-core` for everything.

#[macro_use]
pub mod api;
pub mod api_doors;
pub mod api_vault;
pub mod api_registers;
pub mod api_isms;
#[macro_use]
pub mod console;
pub mod console_doors;
pub mod console_vault;
pub mod console_registers;
pub mod console_isms;
pub mod error;
pub mod i18n;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use mamori_core::auth::{Principal, SessionState};
use mamori_core::Mamori;

use crate::error::WebError;

#[derive(Clone)]
pub struct AppState {
    pub app: Arc<Mamori>,
    pub i18n: Arc<i18n::I18n>,
    /// Served under TLS: cookies get `Secure` and the `__Host-` prefix, and HSTS is sent.
    pub tls: bool,
}

impl AppState {
    pub fn new(app: Arc<Mamori>, tls: bool) -> Self {
        Self { app, i18n: Arc::new(i18n::I18n::new()), tls }
    }
    pub fn session_cookie(&self) -> &'static str {
        if self.tls { "__Host-mamori_session" } else { "mamori_session" }
    }
    /// The cookie that holds a terminal's device key (DATA-7), set by the enrolment page.
    pub fn terminal_cookie(&self) -> &'static str {
        if self.tls { "__Host-mamori_terminal" } else { "mamori_terminal" }
    }
    pub fn cookie_attrs(&self) -> &'static str {
        if self.tls { "; Path=/; HttpOnly; SameSite=Strict; Secure" } else { "; Path=/; HttpOnly; SameSite=Strict" }
    }
}

/// The whole application router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(console::routes())
        .merge(console_doors::routes())
        .merge(console_vault::routes())
        .merge(console_registers::routes())
        .merge(console_isms::routes())
        .layer(axum::extract::DefaultBodyLimit::max(8 * 1024 * 1024))
        .layer(middleware::from_fn_with_state(state.clone(), security_headers))
        .with_state(state)
}

async fn security_headers(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    if st.tls {
        set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000; includeSubDomains");
    }
    res
}

pub fn client_addr(parts: &Parts) -> Option<String> {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string())
}

pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    cookie_in(&parts.headers, name)
}

/// A cookie's value from request headers.
pub fn cookie_in<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The hash of the device key a request presents: the `X-Mamori-Terminal` header, else the
/// terminal cookie.
fn terminal_of(parts: &Parts, st: &AppState) -> Option<String> {
    let key = parts.headers.get("x-mamori-terminal").and_then(|v| v.to_str().ok()).or_else(|| cookie(parts, st.terminal_cookie()))?;
    (!key.trim().is_empty()).then(|| mamori_core::vault::terminal::key_hash(key))
}

/// A caller of the API: a bearer token (API token or API session), or a console session
/// cookie, in which case a state-changing request must carry the session's CSRF token in
/// `X-CSRF-Token`.
pub struct ApiPrincipal(pub Principal);

impl FromRequestParts<AppState> for ApiPrincipal {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, WebError> {
        let addr = client_addr(parts);
        if let Some(auth) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
            let token = auth.strip_prefix("Bearer ").ok_or_else(WebError::unauthorized)?.trim();
            return match st.app.bearer(token, addr).await? {
                Some(mut p) => {
                    p.terminal = terminal_of(parts, st);
                    Ok(Self(p))
                }
                None => Err(WebError::unauthorized()),
            };
        }
        let Some(token) = cookie(parts, st.session_cookie()).map(str::to_owned) else {
            return Err(WebError::unauthorized());
        };
        let Some(s) = st.app.session(&token, addr).await? else { return Err(WebError::unauthorized()) };
        if s.locked {
            return Err(WebError::new(StatusCode::UNAUTHORIZED, "session_locked", "the session is locked; unlock it"));
        }
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            let given = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
            if !Mamori::csrf_ok(&s.csrf, given) {
                return Err(WebError::new(StatusCode::FORBIDDEN, "csrf", "missing or wrong CSRF token"));
            }
        }
        let mut p = s.principal;
        p.terminal = terminal_of(parts, st);
        Ok(Self(p))
    }
}

/// A console session (possibly locked), with its token.
pub struct ConsoleSession {
    pub token: String,
    pub state: SessionState,
}

impl FromRequestParts<AppState> for ConsoleSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        let to_login = || axum::response::Redirect::to("/login").into_response();
        let Some(token) = cookie(parts, st.session_cookie()).map(str::to_owned) else { return Err(to_login()) };
        match st.app.session(&token, client_addr(parts)).await {
            Ok(Some(mut state)) if state.kind == "console" => {
                state.principal.terminal = terminal_of(parts, st);
                Ok(Self { token, state })
            }
            Ok(_) => Err(to_login()),
            Err(e) => Err(WebError::from(e).into_response()),
        }
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // No Nagle delay: a small write that follows one not yet acknowledged, such as the next
    // event of an agent's push subscription, goes out at once, not after the peer's delayed
    // ACK (up to 40 ms).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
    });
    axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves over TLS (rustls) with a PEM certificate chain and key, until `shutdown` resolves.
pub async fn serve_tls(
    listener: std::net::TcpListener,
    state: AppState,
    cert: &std::path::Path,
    key: &std::path::Path,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key).await?;
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        h.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    listener.set_nonblocking(true)?;
    // No Nagle delay, as in [`serve`].
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(config).acceptor(axum_server::accept::NoDelayAcceptor::new());
    axum_server::from_tcp(listener)?
        .acceptor(acceptor)
        .handle(handle)
        .serve(router(state).into_make_service_with_connect_info::<SocketAddr>())
        .await
}
