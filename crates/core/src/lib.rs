//! mamori's domain. Knows nothing of HTTP: the server and the CLI call these services.
//!
//! Invariants kept here:
//! - every state change appends its ledger event in the same database transaction;
//! - time comes from the [`clock::Clock`] passed in, never from the system directly;
//! - every authorisation decision goes through [`policy::Authz`] (Cedar);
//! - secrets (passwords, tokens, keys) are never logged, stored in the clear or put in events.

pub mod auth;
pub mod backup;
pub(crate) mod cache;
pub mod clock;
pub mod db;
pub mod directory;
pub mod doors;
pub mod error;
pub mod keys;
pub mod ledger;
pub mod mail;
pub mod passkey;
pub mod pdf;
pub mod policy;
pub mod registers;
pub mod review;
pub mod types;
pub mod vault;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Duration;
use mamori_ledger::{Event, NoteSigner};

pub use error::{CoreError, Result};
pub use review::ledger_time;

/// Tunable limits (SECURITY-BASELINE defaults).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Name of the centre: the key name of checkpoint signatures and the prefix of log origins.
    pub centre_name: String,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    pub reauth_after: Duration,
    pub lockout_threshold: i64,
    pub lockout_for: Duration,
    pub addr_threshold: i64,
    /// The URL people browse to; its host is the passkey relying-party id. None: no passkeys.
    pub public_url: Option<String>,
    /// Ledger pruning (shown with the retention schedules, PHY-11).
    pub prune_actions: Vec<String>,
    pub prune_after_days: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            centre_name: "mamori.local".into(),
            idle_timeout: Duration::minutes(5),
            absolute_timeout: Duration::hours(12),
            reauth_after: Duration::minutes(5),
            lockout_threshold: 5,
            lockout_for: Duration::minutes(15),
            addr_threshold: 20,
            public_url: Some("http://localhost:8080".into()),
            prune_actions: Vec::new(),
            prune_after_days: 366,
        }
    }
}

/// The application: store, ledger, policy, clock and settings.
pub struct Mamori {
    pub db: db::Db,
    pub ledger: Arc<ledger::LedgerService>,
    pub clock: clock::SharedClock,
    pub authz: policy::Authz,
    pub settings: Settings,
    pub data_dir: PathBuf,
    /// Live door rules, the door policy and the push channel to door agents.
    pub doors: doors::DoorState,
    /// The vault's key-encryption key and data policy.
    pub vault: vault::VaultState,
    /// The SMTP relay for reminder mail (MGMT-6); None: mail waits in the outbox.
    pub mailer: Option<mail::Mailer>,
    dummy_hash: String,
    /// API tokens' principals by token hash, while the cache epoch holds (see `cache.rs`).
    tokens: cache::EpochCache<String, Option<auth::Principal>>,
    webauthn: Option<webauthn_rs::Webauthn>,
}

/// Where and how to open mamori.
pub struct OpenOptions {
    pub data_dir: PathBuf,
    /// None: SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// None: `<data_dir>/ledger.key`.
    pub ledger_key_file: Option<PathBuf>,
    pub clock: clock::SharedClock,
    pub settings: Settings,
    pub mailer: Option<mail::Mailer>,
}

impl OpenOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database_url: None,
            ledger_key_file: None,
            clock: Arc::new(clock::SystemClock),
            settings: Settings::default(),
            mailer: None,
        }
    }
    pub fn url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| db::sqlite_url(&self.data_dir))
    }
}

impl Mamori {
    /// Opens the store (running migrations) and the ledger. Must run inside a Tokio runtime.
    pub async fn open(opts: OpenOptions) -> Result<Arc<Self>> {
        std::fs::create_dir_all(&opts.data_dir)?;
        let key_path = opts.ledger_key_file.clone().unwrap_or_else(|| opts.data_dir.join("ledger.key"));
        let name = opts.settings.centre_name.clone();
        let key = keys::load_or_create(&key_path, || {
            NoteSigner::generate(&name, &mut rand::rngs::OsRng).map(|s| s.to_key_string()).unwrap_or_default()
        })?;
        let signer = NoteSigner::from_key_string(&key)
            .map_err(|e| CoreError::Config(format!("ledger key {}: {e}", key_path.display())))?;
        let db = db::Db::connect(&opts.url()).await?;
        let ledger = ledger::LedgerService::start(db.clone(), signer, opts.clock.clone())?;
        let dummy = types::Password::new("not-a-real-password-ever", "-")?;
        let webauthn = opts.settings.public_url.as_deref().map(passkey::relying_party).transpose()?;
        // The vault's key-encryption key lives beside the ledger key, never in the database.
        let kek = vault::crypto::FileKek::load_or_create(&opts.data_dir.join("vault.kek"))?;
        let vault = vault::VaultState::new(Arc::new(kek))?;
        let app = Arc::new(Self {
            db,
            ledger,
            clock: opts.clock,
            authz: policy::Authz::new()?,
            settings: opts.settings,
            data_dir: opts.data_dir,
            doors: doors::DoorState::new()?,
            vault,
            mailer: opts.mailer,
            dummy_hash: auth::hash_password(&dummy)?,
            tokens: cache::EpochCache::new(),
            webauthn,
        });
        app.reload_door_rules().await?;
        Ok(app)
    }

    pub fn backup_key_path(&self) -> PathBuf {
        self.data_dir.join("backup.key")
    }

    /// Records a configuration or lifecycle event (server start, stop, restore).
    pub async fn record_system(&self, action: &str, detail: &[(&str, String)]) -> Result<u64> {
        let mut ev = Event::new(self.clock.now(), auth::system_actor("mamori"), action);
        for (k, v) in detail {
            ev = ev.detail(k, v);
        }
        self.ledger.append(ev).await
    }

    pub fn data_path(&self, p: &str) -> PathBuf {
        Path::new(&self.data_dir).join(p)
    }
}
