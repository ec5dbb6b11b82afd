//! Configuration, layered: defaults, then a TOML file (`--config` or `MAMORI_CONFIG`), then
//! `MAMORI_*` environment variables (`MAMORI_BACKUP__KEEP` for nested keys), then command-line
//! flags. Secrets can be given as files: `database_url_file` (`MAMORI_DATABASE_URL_FILE`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Duration, NaiveTime, Utc};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use mamori_core::{Mamori, Settings};
use serde::{Deserialize, Serialize};

use crate::StoreArgs;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// When set, `serve` takes a backup into this directory every day.
    pub dir: Option<PathBuf>,
    pub keep: usize,
    /// Japan time of the daily backup, HH:MM.
    pub daily_at: String,
}

/// Retention of ledger entries (issue 3 item 7). Nothing is pruned by default; a site may name
/// door-event kinds of the video-like sort (e.g. `door.sensor_`) whose content is pruned after
/// `prune_after_days`. Pruning keeps each entry's leaf hash, so the ledger still verifies.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    pub prune_actions: Vec<String>,
    pub prune_after_days: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub database_url_file: Option<PathBuf>,
    pub ledger_key_file: Option<PathBuf>,
    /// PEM certificate chain and private key: when both are set, `serve` speaks HTTPS only.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub centre_name: String,
    /// The address people type to reach the console; its host name is the passkey
    /// relying-party id (a name such as `localhost` or `mamori.example.co.jp`, not an IP).
    pub public_url: String,
    pub idle_timeout_secs: i64,
    pub absolute_timeout_secs: i64,
    pub lockout_threshold: i64,
    pub lockout_secs: i64,
    pub checkpoint_interval_ms: u64,
    pub backup: BackupConfig,
    pub retention: RetentionConfig,
    /// SMTP relay for reminder mail: `smtp://host:25`, `smtp://host:587?tls=required`,
    /// `smtps://user:password@host`. A URL with a password belongs in `smtp_url_file`.
    pub smtp_url: Option<String>,
    pub smtp_url_file: Option<PathBuf>,
    /// The sender of reminder mail.
    pub mail_from: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("mamori-data"),
            database_url: None,
            database_url_file: None,
            ledger_key_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            centre_name: "mamori.local".into(),
            public_url: "http://localhost:8080".into(),
            idle_timeout_secs: 300,
            absolute_timeout_secs: 12 * 3600,
            lockout_threshold: 5,
            lockout_secs: 900,
            checkpoint_interval_ms: 1000,
            backup: BackupConfig { dir: None, keep: 1, daily_at: "03:00".into() },
            retention: RetentionConfig { prune_actions: vec![], prune_after_days: 366 },
            smtp_url: None,
            smtp_url_file: None,
            mail_from: "mamori <mamori@localhost>".into(),
        }
    }
}

#[derive(Serialize)]
struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    database_url: Option<String>,
}

impl Config {
    pub fn load(args: &StoreArgs) -> anyhow::Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        let file = args.config.clone().or_else(|| std::env::var_os("MAMORI_CONFIG").map(PathBuf::from));
        if let Some(f) = file {
            anyhow::ensure!(f.exists(), "configuration file {} not found", f.display());
            fig = fig.merge(Toml::file(f));
        }
        fig = fig
            .merge(Env::prefixed("MAMORI_").ignore(&["CONFIG", "PASSWORD", "LOG"]).split("__"))
            .merge(Serialized::defaults(Overrides { data_dir: args.data_dir.clone(), database_url: args.database_url.clone() }));
        fig.extract().context("invalid configuration")
    }

    /// The database URL: flag, variable or file; None means SQLite in the data directory.
    pub fn database_url(&self) -> anyhow::Result<Option<String>> {
        if let Some(u) = &self.database_url {
            return Ok(Some(u.clone()));
        }
        match &self.database_url_file {
            Some(f) => {
                let s = mamori_core::keys::read_secret(f).map_err(|e| anyhow::anyhow!("{e}"))?;
                Ok(Some(s.trim().to_owned()))
            }
            None => Ok(None),
        }
    }

    /// The reminder mail relay, if one is configured.
    pub fn mailer(&self) -> anyhow::Result<Option<mamori_core::mail::Mailer>> {
        let url = match (&self.smtp_url, &self.smtp_url_file) {
            (Some(u), _) => u.clone(),
            (None, Some(f)) => mamori_core::keys::read_secret(f).map_err(|e| anyhow::anyhow!("{e}"))?.trim().to_owned(),
            (None, None) => return Ok(None),
        };
        Ok(Some(mamori_core::mail::Mailer::new(&url, &self.mail_from).map_err(|e| anyhow::anyhow!("{e}"))?))
    }

    pub fn settings(&self) -> Settings {
        Settings {
            centre_name: self.centre_name.clone(),
            idle_timeout: Duration::seconds(self.idle_timeout_secs.max(30)),
            absolute_timeout: Duration::seconds(self.absolute_timeout_secs.max(60)),
            lockout_threshold: self.lockout_threshold.max(1),
            lockout_for: Duration::seconds(self.lockout_secs.max(1)),
            public_url: Some(self.public_url.clone()).filter(|u| !u.is_empty()),
            prune_actions: self.retention.prune_actions.clone(),
            prune_after_days: self.retention.prune_after_days,
            ..Settings::default()
        }
    }
}

/// The next run of a daily job at `at` (HH:MM, Japan time) strictly after `now`.
pub fn next_daily(now: DateTime<Utc>, at: &str) -> Option<DateTime<Utc>> {
    let t = NaiveTime::parse_from_str(at, "%H:%M").ok()?;
    let jst = chrono::FixedOffset::east_opt(9 * 3600)?;
    let local = now.with_timezone(&jst);
    let today = local.date_naive().and_time(t).and_local_timezone(jst).single()?;
    let next = if today > local { today } else { today + Duration::days(1) };
    Some(next.with_timezone(&Utc))
}

/// Daily jobs at `backup.daily_at` (Japan time): the retention policy, then the backup.
pub async fn daily_jobs(app: Arc<Mamori>, cfg: Config, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let now = app.clock.now();
        let Some(next) = next_daily(now, &cfg.backup.daily_at) else {
            tracing::error!(at = cfg.backup.daily_at, "backup.daily_at must be HH:MM; daily jobs are off");
            return;
        };
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = prune(&app, &cfg).await {
            tracing::error!(error = %e, "retention pruning failed");
        }
        if let Some(dir) = &cfg.backup.dir {
            match app.backup(dir, cfg.backup.keep).await {
                Ok(r) => tracing::info!(file = %r.file, "daily backup taken"),
                Err(e) => tracing::error!(error = %e, "daily backup failed"),
            }
        }
    }
}

/// Applies the configured retention policy; returns how many entries were pruned.
pub async fn prune(app: &Mamori, cfg: &Config) -> anyhow::Result<u64> {
    if cfg.retention.prune_actions.is_empty() {
        return Ok(0);
    }
    anyhow::ensure!(cfg.retention.prune_after_days >= 1, "retention.prune_after_days must be at least 1");
    let before = app.clock.now() - Duration::days(cfg.retention.prune_after_days);
    app.ledger.prune(&cfg.retention.prune_actions, before).await.map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn daily_schedule_is_in_japan_time() {
        // 2026-04-01 17:00 UTC = 02:00 JST on the 2nd: next 03:00 JST is one hour later.
        let now = Utc.with_ymd_and_hms(2026, 4, 1, 17, 0, 0).unwrap();
        assert_eq!(next_daily(now, "03:00").unwrap(), Utc.with_ymd_and_hms(2026, 4, 1, 18, 0, 0).unwrap());
        // just after: the next day
        let now = Utc.with_ymd_and_hms(2026, 4, 1, 18, 0, 1).unwrap();
        assert_eq!(next_daily(now, "03:00").unwrap(), Utc.with_ymd_and_hms(2026, 4, 2, 18, 0, 0).unwrap());
        assert!(next_daily(now, "25:00").is_none());
    }

    #[test]
    fn layers_env_over_file_over_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("m.toml", "listen = \"0.0.0.0:9000\"\n[backup]\nkeep = 3\n")?;
            jail.set_env("MAMORI_BACKUP__KEEP", "5");
            let args = StoreArgs { config: Some("m.toml".into()), ..Default::default() };
            let c = Config::load(&args).unwrap();
            assert_eq!(c.listen, "0.0.0.0:9000");
            assert_eq!(c.backup.keep, 5);
            assert_eq!(c.data_dir, PathBuf::from("mamori-data"));
            Ok(())
        });
    }
}
