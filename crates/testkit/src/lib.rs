//! Test kit: boots the real server on port 0 with a fresh SQLite or PostgreSQL database and a
//! test clock, and drives headless Chromium through a small WebDriver client.
//!
//! PostgreSQL: `MAMORI_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/postgres`) is the
//! admin connection; each app gets its own uniquely named database, dropped afterwards. When it
//! cannot be reached the test is skipped, except under `CI=true`, where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod smtp;
pub mod webdriver;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::TimeZone;
use mamori_core::clock::TestClock;
use mamori_core::types::Role;
use mamori_core::{Mamori, OpenOptions, Settings};
use serde_json::Value;
use sqlx::Connection;

pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn pg_admin_url() -> String {
    std::env::var("MAMORI_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Creates a fresh PostgreSQL database; None (skip) when the server is unreachable outside CI.
pub async fn fresh_pg_database() -> Option<(String, String)> {
    let admin = pg_admin_url();
    let mut conn = match sqlx::PgConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) => {
            if in_ci() {
                panic!("CI=true and PostgreSQL at {admin} is unreachable: {e}");
            }
            eprintln!("SKIP: PostgreSQL at {admin} unreachable ({e}); set CI=true to fail instead");
            return None;
        }
    };
    let name = format!("mamori_test_{}_{}", std::process::id(), rand::random::<u32>());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin.clone());
    Some((name.clone(), format!("{base}/{name}")))
}

pub fn drop_pg_database(name: &str) {
    let name = name.to_owned();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            if let Ok(mut c) = sqlx::PgConnection::connect(&pg_admin_url()).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut c).await;
            }
        });
    })
    .join();
}

/// A running mamori for one test.
pub struct TestApp {
    pub backend: Backend,
    pub addr: SocketAddr,
    pub base: String,
    pub app: Arc<Mamori>,
    pub clock: TestClock,
    pub dir: tempfile::TempDir,
    /// API token of the `admin` account.
    pub admin_token: String,
    pub http: reqwest::Client,
    pub database_url: String,
    pg_db: Option<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    /// Device key sent by `get_as`/`post_as` (DATA-7 terminals).
    terminal: std::sync::Mutex<Option<String>>,
}

pub fn start_time() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap()
}

/// Boots the server on 127.0.0.1:0 with a fresh database. None: PostgreSQL skipped.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// As [`spawn_app`], with a chance to change the options (a mail relay, settings) first.
pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut OpenOptions)) -> Option<TestApp> {
    let dir = tempfile::tempdir().unwrap();
    let (pg_db, url) = match backend {
        Backend::Sqlite => (None, mamori_core::db::sqlite_url(dir.path())),
        Backend::Postgres => {
            let (name, url) = fresh_pg_database().await?;
            (Some(name), url)
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let clock = TestClock::new(start_time());
    let mut opts = OpenOptions::new(dir.path());
    opts.database_url = Some(url.clone());
    opts.clock = Arc::new(clock.clone());
    // Passkeys need a host name, not an IP: browsers reach the test server as localhost.
    opts.settings = Settings { public_url: Some(format!("http://localhost:{}", addr.port())), ..Settings::default() };
    configure(&mut opts);
    let app = Mamori::open(opts).await.expect("open mamori");
    app.create_user(None, "admin", "管理者", &[Role::Admin], ADMIN_PASSWORD).await.expect("admin");
    let admin_token = app.create_token(None, "admin", "tests").await.expect("token");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let state = mamori_server::AppState::new(app.clone(), false);
    tokio::spawn(async move {
        let _ = mamori_server::serve(listener, state, async {
            let _ = rx.await;
        })
        .await;
    });
    let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
    Some(TestApp {
        backend,
        addr,
        base: format!("http://{addr}"),
        app,
        clock,
        dir,
        admin_token,
        http,
        database_url: url,
        pg_db,
        shutdown: Some(tx),
        terminal: Default::default(),
    })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
    /// The same server by host name (the origin passkeys are bound to).
    pub fn localhost_url(&self, path: &str) -> String {
        format!("http://localhost:{}{}", self.addr.port(), path)
    }
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_as(&self.admin_token, path).await
    }
    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.with_terminal(self.http.get(self.url(path)).bearer_auth(token)).send().await.unwrap()
    }
    /// Adds the device key of the terminal the tests act from (DATA-7), once one is set.
    pub fn with_terminal(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.terminal.lock().ok().and_then(|t| t.clone()) {
            Some(k) => r.header("x-mamori-terminal", k),
            None => r,
        }
    }
    pub fn terminal(&self) -> Option<String> {
        self.terminal.lock().ok().and_then(|t| t.clone())
    }
    /// From now on, requests come from the terminal with this device key (None: from none).
    pub fn set_terminal(&self, key: Option<String>) {
        if let Ok(mut t) = self.terminal.lock() {
            *t = key;
        }
    }
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.post_as(&self.admin_token, path, body).await
    }
    pub async fn post_as(&self, token: &str, path: &str, body: &Value) -> reqwest::Response {
        self.with_terminal(self.http.post(self.url(path)).bearer_auth(token).json(body)).send().await.unwrap()
    }
    /// POST with a raw body and content type.
    pub async fn post_raw(&self, path: &str, ct: &str, body: Vec<u8>) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.admin_token)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap()
    }
    pub async fn json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Creates an account with roles and returns an API token for it.
    pub async fn user_with(&self, login: &str, roles: &[Role]) -> String {
        self.app.create_user(None, login, login, roles, ADMIN_PASSWORD).await.unwrap();
        self.app.create_token(None, login, "tests").await.unwrap()
    }

    /// Ledger actions of the centre log, newest first.
    pub async fn actions(&self) -> Vec<String> {
        let rows = self
            .app
            .ledger
            .search(&mamori_core::ledger::SearchFilter { limit: Some(10_000), ..Default::default() })
            .await
            .unwrap();
        rows.into_iter().map(|r| r.action).collect()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(name) = self.pg_db.take() {
            drop_pg_database(&name);
        }
    }
}

/// Runs a test body against SQLite and PostgreSQL as two tests.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident => $body:ident;)+) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let app = $crate::spawn_app($crate::Backend::Sqlite).await.expect("sqlite");
                    super::$body(app).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(app) = $crate::spawn_app($crate::Backend::Postgres).await {
                        super::$body(app).await;
                    }
                }
            }
        )+
    };
}
