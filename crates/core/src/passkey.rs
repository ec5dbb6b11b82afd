//! Passkeys (WebAuthn) through `webauthn-rs`: a signed-in user registers one from the console; a
//! passkey then signs that user in on its own (it is itself two factors: the device, and the
//! user verification the authenticator performs). Ceremony states live in the store for five
//! minutes and are used once. Every registration, sign-in and failure is a ledger event.

use mamori_ledger::{Actor, Event};
use serde_json::Value;
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid,
    Webauthn, WebauthnBuilder,
};

use crate::auth::{random_token, NewSession, Principal, SessionKind};
use crate::error::{CoreError, Result};
use crate::types::Text;
use crate::Mamori;

const STATE_TTL_MS: i64 = 5 * 60 * 1000;

/// Builds the relying party from the URL users browse to (its host is the RP ID).
pub fn relying_party(public_url: &str) -> Result<Webauthn> {
    let url = Url::parse(public_url).map_err(|_| CoreError::Config(format!("public_url {public_url:?} is not a URL")))?;
    let host = url.host_str().ok_or_else(|| CoreError::Config("public_url has no host".into()))?.to_owned();
    WebauthnBuilder::new(&host, &url)
        .and_then(|b| b.rp_name("mamori").build())
        .map_err(|e| CoreError::Config(format!("passkeys: {e} (the host of public_url must be a name such as localhost, not an IP address)")))
}

fn user_handle(user_id: i64) -> Uuid {
    Uuid::from_u64_pair(0x6d61_6d6f_7269, user_id as u64)
}

fn cred_key(p: &Passkey) -> String {
    serde_json::to_value(p.cred_id()).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PasskeyRow {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: i64,
}

impl Mamori {
    fn webauthn(&self) -> Result<&Webauthn> {
        self.webauthn.as_ref().ok_or_else(|| CoreError::Config("passkeys need public_url to be set".into()))
    }

    async fn save_state(&self, user_id: i64, kind: &str, state: &impl serde::Serialize) -> Result<String> {
        let id = random_token("");
        let json = serde_json::to_string(state).map_err(|e| CoreError::Internal(e.to_string()))?;
        let now = self.clock.now_ms();
        self.db.write(sqlx::query("DELETE FROM webauthn_states WHERE created_at < $1").bind(now - STATE_TTL_MS)).await?;
        self.db.write(sqlx::query("INSERT INTO webauthn_states (id, user_id, kind, state, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(user_id)
            .bind(kind)
            .bind(json)
            .bind(now))
            .await?;
        Ok(id)
    }

    /// Takes (and deletes) a ceremony state: used once, and only within its time.
    async fn take_state<T: serde::de::DeserializeOwned>(&self, id: &str, kind: &str) -> Result<(i64, T)> {
        let row: Option<(i64, String, i64)> =
            sqlx::query_as("SELECT user_id, state, created_at FROM webauthn_states WHERE id = $1 AND kind = $2")
                .bind(id)
                .bind(kind)
                .fetch_optional(&self.db.pool)
                .await?;
        self.db.write(sqlx::query("DELETE FROM webauthn_states WHERE id = $1").bind(id)).await?;
        let (user_id, state, created) = row.ok_or(CoreError::AuthFailed)?;
        if self.clock.now_ms() - created > STATE_TTL_MS {
            return Err(CoreError::AuthFailed);
        }
        let state = serde_json::from_str(&state).map_err(|e| CoreError::Internal(e.to_string()))?;
        Ok((user_id, state))
    }

    async fn passkeys_of(&self, user_id: i64) -> Result<Vec<(i64, Passkey)>> {
        let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, passkey FROM passkeys WHERE user_id = $1 ORDER BY id")
            .bind(user_id)
            .fetch_all(&self.db.pool)
            .await?;
        rows.into_iter()
            .map(|(id, j)| serde_json::from_str(&j).map(|p| (id, p)).map_err(|e| CoreError::Internal(e.to_string())))
            .collect()
    }

    pub async fn list_passkeys(&self, p: &Principal) -> Result<Vec<PasskeyRow>> {
        let rows: Vec<(i64, String, i64, i64)> =
            sqlx::query_as("SELECT id, name, created_at, last_used_at FROM passkeys WHERE user_id = $1 ORDER BY id")
                .bind(p.user_id)
                .fetch_all(&self.db.pool)
                .await?;
        Ok(rows.into_iter().map(|(id, name, created_at, last_used_at)| PasskeyRow { id, name, created_at, last_used_at }).collect())
    }

    /// Starts registering a passkey for the signed-in user: returns the ceremony id and the
    /// options for `navigator.credentials.create`.
    pub async fn passkey_register_start(&self, p: &Principal) -> Result<(String, Value)> {
        let existing = self.passkeys_of(p.user_id).await?;
        let exclude = existing.iter().map(|(_, k)| k.cred_id().clone()).collect::<Vec<_>>();
        let (ccr, state): (_, PasskeyRegistration) = self
            .webauthn()?
            .start_passkey_registration(user_handle(p.user_id), &p.login, &p.display_name, Some(exclude))
            .map_err(|e| CoreError::invalid("passkey", e.to_string()))?;
        let id = self.save_state(p.user_id, "register", &state).await?;
        Ok((id, serde_json::to_value(ccr).map_err(|e| CoreError::Internal(e.to_string()))?))
    }

    pub async fn passkey_register_finish(&self, p: &Principal, ceremony: &str, credential: Value, name: &str) -> Result<i64> {
        let name = Text::parse("name", if name.trim().is_empty() { "passkey" } else { name })?;
        let (user_id, state): (i64, PasskeyRegistration) = self.take_state(ceremony, "register").await?;
        if user_id != p.user_id {
            return Err(CoreError::AuthFailed);
        }
        let cred: RegisterPublicKeyCredential =
            serde_json::from_value(credential).map_err(|_| CoreError::invalid("credential", "not a WebAuthn registration"))?;
        let now = self.clock.now();
        let passkey = match self.webauthn()?.finish_passkey_registration(&cred, &state) {
            Ok(k) => k,
            Err(e) => {
                let ev = Event::new(now, p.actor(), "user.passkey_rejected").denied(Some("webauthn")).detail("reason", e);
                self.ledger.append(ev).await?;
                return Err(CoreError::invalid("credential", "the passkey could not be verified"));
            }
        };
        let json = serde_json::to_string(&passkey).map_err(|e| CoreError::Internal(e.to_string()))?;
        let mut tx = self.db.begin().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO passkeys (user_id, cred_id, name, passkey, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(p.user_id)
        .bind(cred_key(&passkey))
        .bind(name.as_str())
        .bind(json)
        .bind(now.timestamp_millis())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| CoreError::from_db_unique(e, "passkey"))?;
        let ev = Event::new(now, p.actor(), "user.passkey_added").object("passkey", id);
        self.ledger.append_tx(&mut tx, &ev).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Starts a passkey sign-in for `login`: options for `navigator.credentials.get`.
    pub async fn passkey_login_start(&self, login: &str, addr: Option<String>) -> Result<(String, Value)> {
        let row: Option<(i64, i64, i64)> = sqlx::query_as("SELECT id, locked_until, disabled FROM users WHERE login = $1")
            .bind(login)
            .fetch_optional(&self.db.pool)
            .await?;
        let now = self.clock.now();
        let keys = match row {
            Some((id, locked, disabled)) if locked <= now.timestamp_millis() && disabled == 0 => {
                Some((id, self.passkeys_of(id).await?))
            }
            _ => None,
        };
        let Some((user_id, keys)) = keys.filter(|(_, k)| !k.is_empty()) else {
            let ev = Event::new(now, Actor { kind: "anonymous".into(), id: "-".into() }, "session.login_failed")
                .denied(Some("no-passkey"))
                .detail("login", login.chars().take(100).collect::<String>())
                .addr(addr);
            self.ledger.append(ev).await?;
            return Err(CoreError::AuthFailed);
        };
        let keys: Vec<Passkey> = keys.into_iter().map(|(_, k)| k).collect();
        let (rcr, state): (_, PasskeyAuthentication) =
            self.webauthn()?.start_passkey_authentication(&keys).map_err(|e| CoreError::Internal(e.to_string()))?;
        let id = self.save_state(user_id, "login", &state).await?;
        Ok((id, serde_json::to_value(rcr).map_err(|e| CoreError::Internal(e.to_string()))?))
    }

    /// Finishes a passkey sign-in and opens a session.
    pub async fn passkey_login_finish(
        &self,
        ceremony: &str,
        credential: Value,
        addr: Option<String>,
        kind: SessionKind,
    ) -> Result<NewSession> {
        let (user_id, state): (i64, PasskeyAuthentication) = self.take_state(ceremony, "login").await?;
        let actor = Actor { kind: "user".into(), id: user_id.to_string() };
        let now = self.clock.now();
        let cred: Option<PublicKeyCredential> = serde_json::from_value(credential).ok();
        let result = cred.ok_or(()).and_then(|c| self.webauthn().map_err(|_| ()).and_then(|w| w.finish_passkey_authentication(&c, &state).map_err(|_| ())));
        let Ok(result) = result else {
            let ev = Event::new(now, actor, "session.login_failed").denied(Some("passkey-invalid")).addr(addr);
            self.ledger.append(ev).await?;
            return Err(CoreError::AuthFailed);
        };
        // Keep the signature counter current (a cloned authenticator shows up as a step back).
        for (id, mut key) in self.passkeys_of(user_id).await? {
            if key.update_credential(&result).is_some() {
                let json = serde_json::to_string(&key).map_err(|e| CoreError::Internal(e.to_string()))?;
                self.db.write(sqlx::query("UPDATE passkeys SET passkey = $1, last_used_at = $2 WHERE id = $3")
                    .bind(json)
                    .bind(now.timestamp_millis())
                    .bind(id))
                    .await?;
            }
        }
        self.open_session(user_id, kind, "passkey", addr).await
    }
}
