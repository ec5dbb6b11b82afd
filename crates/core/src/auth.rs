//! Accounts, sign-in, sessions and API tokens.
//!
//! - Passwords: argon2id (PHC strings); the same work is done for an unknown login as for a
//!   wrong password, and both answer [`CoreError::AuthFailed`].
//! - Lockout: after `lockout_threshold` failures an account is locked for `lockout_for`; a source
//!   address with `addr_threshold` failures in `lockout_for` is refused for the rest of it. Every
//!   failure and lockout is a ledger event in the same transaction as the counter.
//! - Sessions: random 256-bit tokens, only their SHA-256 stored; idle time locks a console
//!   session (the password unlocks it) and expires an API one; an absolute limit ends both.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64U;
use base64::Engine;
use chrono::Duration;
use mamori_ledger::{Actor, Event};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::db::Arg;
use crate::error::{CoreError, Result};
use crate::policy::{Action, Decision};
use crate::types::{Code, Password, Role, Text};
use crate::Mamori;

/// Who is acting: a signed-in user through a session or an API token, or the system itself.
#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    pub user_id: i64,
    pub login: String,
    pub display_name: String,
    pub roles: Vec<Role>,
    pub disabled: bool,
    /// `session` or `token:<id>` or `cli`.
    pub via: String,
    /// When the password was last checked in this session (ms), for re-authentication.
    pub auth_at: i64,
    pub addr: Option<String>,
    /// SHA-256 of the device key of the terminal the request came from (DATA-7), if any.
    pub terminal: Option<String>,
    /// The store's cache epoch when this request was authenticated: values cached at this epoch
    /// are current for it (`cache.rs`). None: nothing cached is used.
    pub epoch: Option<i64>,
}

impl Principal {
    pub fn actor(&self) -> Actor {
        if let Some(t) = self.via.strip_prefix("token:") {
            return Actor { kind: "token".into(), id: format!("{}/{}", self.user_id, t) };
        }
        Actor { kind: "user".into(), id: self.user_id.to_string() }
    }
    pub fn has(&self, r: Role) -> bool {
        self.roles.contains(&r)
    }
}

pub fn system_actor(what: &str) -> Actor {
    Actor { kind: "system".into(), id: what.into() }
}

/// An account's principal from its rows (login, name, disabled, role) — one row per role, or
/// one with no role; None when the account is missing or disabled.
fn principal_of_rows(user_id: i64, rows: Vec<(String, String, i64, Option<String>)>, via: String, auth_at: i64, addr: Option<String>) -> Option<Principal> {
    let (login, display_name, disabled, _) = rows.first().cloned()?;
    if disabled != 0 {
        return None;
    }
    let roles = rows.into_iter().filter_map(|r| r.3.and_then(|x| x.parse().ok())).collect();
    Some(Principal { user_id, login, display_name, roles, disabled: false, via, auth_at, addr, terminal: None, epoch: None })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    Console,
    Api,
}

impl SessionKind {
    fn as_str(self) -> &'static str {
        match self {
            SessionKind::Console => "console",
            SessionKind::Api => "api",
        }
    }
}

/// A new session: the token goes to the client once and is never stored.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf: String,
    pub user_id: i64,
    pub expires_at: i64,
}

/// A session as resolved for a request.
#[derive(Debug, Clone)]
pub struct SessionState {
    pub principal: Principal,
    pub csrf: String,
    pub locked: bool,
    pub lang: String,
    pub kind: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserRow {
    pub id: i64,
    pub login: String,
    pub display_name: String,
    pub roles: Vec<Role>,
    pub totp: bool,
    pub locked: bool,
    pub disabled: bool,
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

pub fn random_token(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("{prefix}{}", B64U.encode(b))
}

pub fn hash_password(p: &Password) -> Result<String> {
    hash_secret(p.expose())
}

/// Hashes a short secret such as a door PIN with argon2id and a fresh salt.
pub fn hash_secret(secret: &str) -> Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| CoreError::Internal("hashing failed".into()))
}

/// Checks a secret against an argon2 PHC string.
pub fn verify_secret(secret: &str, hash: &str) -> bool {
    check_password(hash, secret)
}

fn check_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

fn totp_for(secret_b32: &str, account: &str) -> Result<totp_rs::TOTP> {
    let bytes = totp_rs::Secret::Encoded(secret_b32.to_owned())
        .to_bytes()
        .map_err(|_| CoreError::invalid("totp", "bad secret"))?;
    let _ = account;
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes)
        .map_err(|_| CoreError::invalid("totp", "bad secret"))
}

/// A fresh TOTP secret (base32) and its `otpauth://` URL for an authenticator app.
pub fn new_totp_secret(account: &str) -> Result<(String, String)> {
    let mut b = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let secret = totp_rs::Secret::Raw(b.to_vec()).to_encoded().to_string();
    totp_for(&secret, account)?;
    let url = format!("otpauth://totp/mamori:{account}?secret={secret}&issuer=mamori&algorithm=SHA1&digits=6&period=30");
    Ok((secret, url))
}

/// The current code for a secret (for tests and the CLI).
pub fn totp_code(secret_b32: &str, at_secs: u64) -> Result<String> {
    Ok(totp_for(secret_b32, "x")?.generate(at_secs))
}

type UserAuthRow = (i64, String, String, String, Option<String>, i64, i64, i64);

impl Mamori {
    async fn roles_of(&self, user_id: i64) -> Result<Vec<Role>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT role FROM role_assignments WHERE user_id = $1 ORDER BY role")
            .bind(user_id)
            .fetch_all(&self.db.pool)
            .await?;
        Ok(rows.into_iter().filter_map(|r| r.0.parse().ok()).collect())
    }

    /// Creates an account. `by` is None for the first administrator created from the CLI.
    pub async fn create_user(
        &self,
        by: Option<&Principal>,
        login: &str,
        display_name: &str,
        roles: &[Role],
        password: &str,
    ) -> Result<i64> {
        if let Some(p) = by {
            self.require(p, Action::UsersManage).await?;
            self.require_recent_auth(p)?;
        }
        let login = Code::parse("login", login)?;
        let name = Text::parse("name", display_name)?;
        let pw = Password::new(password, login.as_str())?;
        if roles.is_empty() {
            return Err(CoreError::invalid("role", "at least one role is required"));
        }
        if roles.contains(&Role::Admin) && by.is_some_and(|p| !p.has(Role::Admin)) {
            return Err(CoreError::Forbidden { rule: Some("only-admin-adds-admin".into()) });
        }
        let hash = hash_password(&pw)?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO users (login, display_name, password_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(login.as_str())
        .bind(name.as_str())
        .bind(hash)
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| CoreError::from_db_unique(e, "login"))?;
        for r in roles {
            sqlx::query("INSERT INTO role_assignments (user_id, role, created_at) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(r.as_str())
                .bind(now.timestamp_millis())
                .execute(&mut *tx)
                .await?;
        }
        let actor = by.map_or_else(|| system_actor("cli"), Principal::actor);
        let ev = Event::new(now, actor, "user.create")
            .object("user", id)
            .detail("roles", roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(","));
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn list_users(&self, by: &Principal) -> Result<Vec<UserRow>> {
        self.require(by, Action::UsersManage).await?;
        let now = self.clock.now_ms();
        let rows: Vec<(i64, String, String, Option<String>, i64, i64)> = sqlx::query_as(
            "SELECT id, login, display_name, totp_secret, locked_until, disabled FROM users ORDER BY login",
        )
        .fetch_all(&self.db.pool)
        .await?;
        let mut out = Vec::new();
        for (id, login, display_name, totp, locked_until, disabled) in rows {
            out.push(UserRow {
                id,
                login,
                display_name,
                roles: self.roles_of(id).await?,
                totp: totp.is_some(),
                locked: locked_until > now,
                disabled: disabled != 0,
            });
        }
        Ok(out)
    }

    /// Decides and, on denial, records the denial in the ledger.
    pub async fn decide(&self, p: &Principal, action: Action) -> Result<Decision> {
        self.authz.decide(p.user_id, &p.roles, p.disabled, action)
    }

    pub async fn require(&self, p: &Principal, action: Action) -> Result<()> {
        let d = self.decide(p, action).await?;
        if d.allowed {
            return Ok(());
        }
        let ev = Event::new(self.clock.now(), p.actor(), "access.denied")
            .denied(Some(&d.rule))
            .detail("action", action.as_str())
            .addr(p.addr.clone());
        self.ledger.append(ev).await?;
        Err(CoreError::Forbidden { rule: Some(d.rule) })
    }

    /// Sensitive operations need a password check within `reauth_after`.
    pub fn require_recent_auth(&self, p: &Principal) -> Result<()> {
        if p.via == "cli" || p.via.starts_with("token:") {
            return Ok(());
        }
        if self.clock.now_ms() - p.auth_at > self.settings.reauth_after.num_milliseconds() {
            return Err(CoreError::ReauthRequired);
        }
        Ok(())
    }

    async fn addr_blocked(&self, addr: &str, now: i64) -> Result<bool> {
        let row: Option<(i64, i64)> = sqlx::query_as("SELECT failures, window_start FROM addr_throttle WHERE addr = $1")
            .bind(addr)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.is_some_and(|(f, start)| {
            now - start < self.settings.lockout_for.num_milliseconds() && f >= self.settings.addr_threshold
        }))
    }

    async fn note_addr_failure(&self, conn: &mut sqlx::AnyConnection, addr: &str, now: i64) -> Result<()> {
        let window = self.settings.lockout_for.num_milliseconds();
        sqlx::query(
            "INSERT INTO addr_throttle (addr, failures, window_start) VALUES ($1, 1, $2) \
             ON CONFLICT (addr) DO UPDATE SET \
               failures = CASE WHEN $3 - addr_throttle.window_start >= $4 THEN 1 ELSE addr_throttle.failures + 1 END, \
               window_start = CASE WHEN $5 - addr_throttle.window_start >= $6 THEN $7 ELSE addr_throttle.window_start END",
        )
        .bind(addr)
        .bind(now)
        .bind(now)
        .bind(window)
        .bind(now)
        .bind(window)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Signs in with a password and, when enrolled, a TOTP code.
    pub async fn sign_in(
        &self,
        login: &str,
        password: &str,
        totp: Option<&str>,
        addr: Option<String>,
        kind: SessionKind,
    ) -> Result<NewSession> {
        let now = self.clock.now();
        let now_ms = now.timestamp_millis();
        let anon = Actor { kind: "anonymous".into(), id: "-".into() };
        if login.chars().count() > 200 || password.chars().count() > 1024 {
            return Err(CoreError::AuthFailed);
        }
        if let Some(a) = &addr {
            if self.addr_blocked(a, now_ms).await? {
                let ev = Event::new(now, anon, "session.addr_blocked").denied(Some("addr-throttle")).addr(addr.clone());
                self.ledger.append(ev).await?;
                return Err(CoreError::Locked);
            }
        }
        let row: Option<UserAuthRow> = sqlx::query_as(
            "SELECT id, login, display_name, password_hash, totp_secret, failed_count, locked_until, disabled FROM users WHERE login = $1",
        )
        .bind(login)
        .fetch_optional(&self.db.pool)
        .await?;
        let Some((id, login, display_name, hash, totp_secret, failed, locked_until, disabled)) = row else {
            // Same work as a wrong password: no enumeration by timing.
            let _ = check_password(&self.dummy_hash, password);
            let mut tx = self.db.begin().await?;
            if let Some(a) = &addr {
                self.note_addr_failure(&mut tx, a, now_ms).await?;
            }
            let ev = Event::new(now, anon, "session.login_failed")
                .denied(Some("unknown-login"))
                .detail("login", login)
                .addr(addr.clone());
            self.ledger.append_tx(&mut tx, &ev).await?;
            tx.commit().await?;
            return Err(CoreError::AuthFailed);
        };
        let password_ok = check_password(&hash, password);
        let user_actor = Actor { kind: "user".into(), id: id.to_string() };
        if locked_until > now_ms {
            let ev = Event::new(now, user_actor, "session.login_locked").denied(Some("account-locked")).addr(addr.clone());
            self.ledger.append(ev).await?;
            return Err(CoreError::Locked);
        }
        let totp_ok = match &totp_secret {
            None => true,
            Some(s) => totp.is_some_and(|code| {
                totp_for(s, &login).is_ok_and(|t| t.check(code.trim(), now.timestamp().max(0) as u64))
            }),
        };
        if !password_ok || !totp_ok || disabled != 0 {
            let failed = failed + 1;
            let lock = failed >= self.settings.lockout_threshold;
            let until = if lock { now_ms + self.settings.lockout_for.num_milliseconds() } else { 0 };
            let mut tx = self.db.begin().await?;
            sqlx::query("UPDATE users SET failed_count = $1, locked_until = $2 WHERE id = $3")
                .bind(if lock { 0 } else { failed })
                .bind(until)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if let Some(a) = &addr {
                self.note_addr_failure(&mut tx, a, now_ms).await?;
            }
            let reason = if disabled != 0 {
                "account-disabled"
            } else if !password_ok {
                "wrong-password"
            } else {
                "wrong-totp"
            };
            let ev = Event::new(now, user_actor.clone(), "session.login_failed").denied(Some(reason)).addr(addr.clone());
            self.ledger.append_tx(&mut tx, &ev).await?;
            if lock {
                let ev = Event::new(now, user_actor, "user.locked_out")
                    .object("user", id)
                    .denied(Some("lockout-threshold"))
                    .detail("until", mamori_ledger::event::timestamps(now + self.settings.lockout_for).0);
                self.ledger.append_tx(&mut tx, &ev).await?;
            }
            tx.commit().await?;
            return Err(CoreError::AuthFailed);
        }
        let _ = (display_name, user_actor);
        self.open_session(id, kind, if totp_secret.is_some() { "totp" } else { "none" }, addr).await
    }

    /// Opens a session for a user who has just proved who they are; records the sign-in.
    pub(crate) async fn open_session(&self, id: i64, kind: SessionKind, second_factor: &str, addr: Option<String>) -> Result<NewSession> {
        let now = self.clock.now();
        let now_ms = now.timestamp_millis();
        let user_actor = Actor { kind: "user".into(), id: id.to_string() };
        let token = random_token(if kind == SessionKind::Api { "mms_" } else { "" });
        let csrf = random_token("");
        let mut tx = self.db.begin().await?;
        sqlx::query("UPDATE users SET failed_count = 0 WHERE id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, kind, csrf, created_at, last_seen_at, auth_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(sha256_hex(&token))
        .bind(id)
        .bind(kind.as_str())
        .bind(csrf.as_str())
        .bind(now_ms)
        .bind(now_ms)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        let ev = Event::new(now, user_actor, "session.login")
            .detail("kind", kind.as_str())
            .detail("second_factor", second_factor)
            .addr(addr);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(NewSession { token, csrf, user_id: id, expires_at: now_ms + self.settings.absolute_timeout.num_milliseconds() })
    }

    async fn principal_for(&self, user_id: i64, via: String, auth_at: i64, addr: Option<String>) -> Result<Option<Principal>> {
        // The account and its roles in one query (this runs on every request).
        let rows: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
            "SELECT u.login, u.display_name, u.disabled, r.role FROM users u LEFT JOIN role_assignments r ON r.user_id = u.id WHERE u.id = $1 ORDER BY r.role",
        )
        .bind(user_id)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(principal_of_rows(user_id, rows, via, auth_at, addr))
    }

    /// Resolves a session token; applies the idle lock and the absolute timeout.
    pub async fn session(&self, token: &str, addr: Option<String>) -> Result<Option<SessionState>> {
        let now = self.clock.now_ms();
        let th = sha256_hex(token);
        let row: Option<(i64, String, String, i64, i64, i64, i64, String)> = sqlx::query_as(
            "SELECT user_id, kind, csrf, created_at, last_seen_at, auth_at, locked, lang FROM sessions WHERE token_hash = $1",
        )
        .bind(&th)
        .fetch_optional(&self.db.pool)
        .await?;
        let Some((user_id, kind, csrf, created, last_seen, auth_at, locked, lang)) = row else { return Ok(None) };
        if now - created > self.settings.absolute_timeout.num_milliseconds() {
            self.db.write(sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(&th)).await?;
            return Ok(None);
        }
        let idle = now - last_seen > self.settings.idle_timeout.num_milliseconds();
        let mut locked = locked != 0;
        if idle && !locked {
            if kind == "api" {
                self.db.write(sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(&th)).await?;
                return Ok(None);
            }
            locked = true;
            self.db.write(sqlx::query("UPDATE sessions SET locked = 1 WHERE token_hash = $1").bind(&th)).await?;
            let ev = Event::new(self.clock.now(), Actor { kind: "user".into(), id: user_id.to_string() }, "session.idle_lock");
            self.ledger.append(ev).await?;
        }
        if !locked {
            self.db.write(sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2")
                .bind(now)
                .bind(&th))
                .await?;
        }
        let Some(principal) = self.principal_for(user_id, "session".into(), auth_at, addr).await? else {
            return Ok(None);
        };
        Ok(Some(SessionState { principal, csrf, locked, lang, kind }))
    }

    /// Unlocks an idle-locked console session with the password.
    pub async fn unlock(&self, token: &str, password: &str, addr: Option<String>) -> Result<()> {
        let th = sha256_hex(token);
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT s.user_id, u.password_hash FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1",
        )
        .bind(&th)
        .fetch_optional(&self.db.pool)
        .await?;
        let Some((user_id, hash)) = row else { return Err(CoreError::Unauthenticated) };
        let now = self.clock.now();
        let actor = Actor { kind: "user".into(), id: user_id.to_string() };
        if !check_password(&hash, password) {
            let ev = Event::new(now, actor, "session.unlock_failed").denied(Some("wrong-password")).addr(addr);
            self.ledger.append(ev).await?;
            return Err(CoreError::AuthFailed);
        }
        let mut tx = self.db.begin().await?;
        sqlx::query("UPDATE sessions SET locked = 0, last_seen_at = $1, auth_at = $2 WHERE token_hash = $3")
            .bind(now.timestamp_millis())
            .bind(now.timestamp_millis())
            .bind(&th)
            .execute(&mut *tx)
            .await?;
        self.ledger.append_tx(&mut tx, &Event::new(now, actor, "session.unlock").addr(addr)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Re-checks the password of a live session (for sensitive operations).
    pub async fn reauthenticate(&self, token: &str, password: &str, addr: Option<String>) -> Result<()> {
        self.unlock(token, password, addr).await
    }

    pub async fn set_session_lang(&self, token: &str, lang: &str) -> Result<()> {
        let lang = if lang == "en" { "en" } else { "ja" };
        self.db.write(sqlx::query("UPDATE sessions SET lang = $1 WHERE token_hash = $2")
            .bind(lang)
            .bind(sha256_hex(token)))
            .await?;
        Ok(())
    }

    pub async fn sign_out(&self, token: &str, p: &Principal) -> Result<()> {
        let mut tx = self.db.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(sha256_hex(token)).execute(&mut *tx).await?;
        self.ledger.append_tx(&mut tx, &Event::new(self.clock.now(), p.actor(), "session.logout")).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates an API token for `login` (for scripts and door agents). Returns the token once.
    pub async fn create_token(&self, by: Option<&Principal>, login: &str, name: &str) -> Result<String> {
        if let Some(p) = by {
            self.require(p, Action::UsersManage).await?;
            self.require_recent_auth(p)?;
        }
        let name = Text::parse("name", name)?;
        let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM users WHERE login = $1")
            .bind(login)
            .fetch_optional(&self.db.pool)
            .await?;
        let (user_id,) = row.ok_or(CoreError::NotFound("user"))?;
        let token = random_token("mmt_");
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(user_id)
        .bind(name.as_str())
        .bind(sha256_hex(&token))
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await?;
        let actor = by.map_or_else(|| system_actor("cli"), Principal::actor);
        let ev = Event::new(now, actor, "token.create").object("token", id).detail("user", user_id);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Resolves a bearer credential: an API token (`mmt_…`) or an API session (`mms_…`).
    pub async fn bearer(&self, token: &str, addr: Option<String>) -> Result<Option<Principal>> {
        if token.starts_with("mmt_") {
            let hash = sha256_hex(token);
            // Every API request reads the epoch; the principal comes from memory while it holds.
            let epoch = self.db.epoch().await?;
            let p = self
                .tokens
                .through(hash.as_str(), Some(epoch), || async {
                    // The token, its account and the account's roles in one query, with the epoch
                    // of its snapshot: (epoch, token id, user id, login, name, disabled, role).
                    type TokenRow = (i64, i64, i64, String, String, i64, Option<String>);
                    let rows: Vec<TokenRow> = self
                        .db
                        .read(
                            "SELECT (SELECT n FROM cache_epoch WHERE id = 1), t.id, t.user_id, u.login, u.display_name, u.disabled, r.role \
                             FROM api_tokens t JOIN users u ON u.id = t.user_id \
                             LEFT JOIN role_assignments r ON r.user_id = u.id WHERE t.token_hash = $1 AND t.revoked_at IS NULL ORDER BY r.role",
                            &[Arg::Text(&hash)],
                        )
                        .await?;
                    let Some(&(read_at, id, user_id, ..)) = rows.first() else { return Ok((None, None)) };
                    let rows = rows.into_iter().map(|(_, _, _, login, name, disabled, role)| (login, name, disabled, role)).collect();
                    // An unknown token or a disabled account is not kept (no one fills the cache
                    // by trying tokens).
                    let p = principal_of_rows(user_id, rows, format!("token:{id}"), 0, None);
                    Ok((p.as_ref().map(|_| read_at), p))
                })
                .await?;
            // Values the request reads later must be no older than this epoch (the principal
            // itself may be newer).
            return Ok(p.map(|p| Principal { addr, epoch: Some(epoch), ..p }));
        }
        match self.session(token, addr).await? {
            Some(s) if s.kind == "api" && !s.locked => Ok(Some(s.principal)),
            _ => Ok(None),
        }
    }

    /// Enrols TOTP for the signed-in user after checking a code from the secret.
    pub async fn enable_totp(&self, p: &Principal, secret_b32: &str, code: &str) -> Result<()> {
        let totp = totp_for(secret_b32, &p.login)?;
        let now = self.clock.now();
        if !totp.check(code.trim(), now.timestamp().max(0) as u64) {
            return Err(CoreError::invalid("totp", "the code does not match; check the device's time"));
        }
        let mut tx = self.db.begin().await?;
        sqlx::query("UPDATE users SET totp_secret = $1 WHERE id = $2")
            .bind(secret_b32)
            .bind(p.user_id)
            .execute(&mut *tx)
            .await?;
        self.ledger.append_tx(&mut tx, &Event::new(now, p.actor(), "user.totp_enabled").object("user", p.user_id)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Compares a CSRF token in constant time.
    pub fn csrf_ok(expected: &str, given: &str) -> bool {
        expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
    }

    /// Test helper used by the CLI: the current TOTP code of a user.
    pub fn totp_now(&self, secret: &str) -> Result<String> {
        totp_code(secret, self.clock.now().timestamp().max(0) as u64)
    }

    pub fn lockout_duration(&self) -> Duration {
        self.settings.lockout_for
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub people: i64,
    pub zones: i64,
    pub clients: i64,
    pub events: i64,
}

impl Mamori {
    /// Locks a console session at once (the lock button, or the browser's idle timer).
    pub async fn lock_session(&self, token: &str) -> Result<()> {
        self.db.write(sqlx::query("UPDATE sessions SET locked = 1 WHERE token_hash = $1")
            .bind(sha256_hex(token)))
            .await?;
        Ok(())
    }

    pub async fn has_totp(&self, user_id: i64) -> Result<bool> {
        let r: Option<(Option<String>,)> =
            sqlx::query_as("SELECT totp_secret FROM users WHERE id = $1").bind(user_id).fetch_optional(&self.db.pool).await?;
        Ok(r.is_some_and(|r| r.0.is_some()))
    }

    /// Figures for the dashboard.
    pub async fn counts(&self) -> Result<Counts> {
        let one = |sql: &'static str| async move {
            sqlx::query_as::<_, (i64,)>(sql).fetch_one(&self.db.pool).await.map(|r| r.0)
        };
        Ok(Counts {
            people: one("SELECT COUNT(*) FROM people").await?,
            zones: one("SELECT COUNT(*) FROM zones").await?,
            clients: one("SELECT COUNT(*) FROM clients").await?,
            events: one("SELECT size FROM ledger_logs WHERE id = 1").await?,
        })
    }
}
