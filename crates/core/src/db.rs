//! The store: one `sqlx` Any pool over SQLite (default, embedded) or PostgreSQL (scale-out),
//! with embedded migrations run at start-up, one folder per backend.
//!
//! Queries are written once, with `$1, $2, …` placeholders in order of first use (which SQLite
//! accepts as well), and only the column types both backends share through the Any driver:
//! 64-bit integers, text and bytes.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::error::{CoreError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sqlite: include_str!("../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "passkeys",
        sqlite: include_str!("../migrations/sqlite/0002_passkeys.sql"),
        postgres: include_str!("../migrations/postgres/0002_passkeys.sql"),
    },
    Migration {
        version: 3,
        name: "doors",
        sqlite: include_str!("../migrations/sqlite/0003_doors.sql"),
        postgres: include_str!("../migrations/postgres/0003_doors.sql"),
    },
    Migration {
        version: 4,
        name: "vault",
        sqlite: include_str!("../migrations/sqlite/0004_vault.sql"),
        postgres: include_str!("../migrations/postgres/0004_vault.sql"),
    },
    Migration {
        version: 5,
        name: "vault_keys_entries_handover",
        sqlite: include_str!("../migrations/sqlite/0005_vault_keys_entries_handover.sql"),
        postgres: include_str!("../migrations/postgres/0005_vault_keys_entries_handover.sql"),
    },
    Migration {
        version: 6,
        name: "assets",
        sqlite: include_str!("../migrations/sqlite/0006_assets.sql"),
        postgres: include_str!("../migrations/postgres/0006_assets.sql"),
    },
    Migration {
        version: 7,
        name: "risks",
        sqlite: include_str!("../migrations/sqlite/0007_risks.sql"),
        postgres: include_str!("../migrations/postgres/0007_risks.sql"),
    },
    Migration {
        version: 8,
        name: "incidents",
        sqlite: include_str!("../migrations/sqlite/0008_incidents.sql"),
        postgres: include_str!("../migrations/postgres/0008_incidents.sql"),
    },
    Migration {
        version: 9,
        name: "policy_documents",
        sqlite: include_str!("../migrations/sqlite/0009_policy_documents.sql"),
        postgres: include_str!("../migrations/postgres/0009_policy_documents.sql"),
    },
    Migration {
        version: 10,
        name: "isms_cycle",
        sqlite: include_str!("../migrations/sqlite/0010_isms_cycle.sql"),
        postgres: include_str!("../migrations/postgres/0010_isms_cycle.sql"),
    },
];

#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    pub url: String,
}

/// The SQLite URL of the database inside a data directory.
pub fn sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join("mamori.db").display())
}

impl Db {
    /// Connects (creating a SQLite file if needed) and runs pending migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(CoreError::Config("database URL must start with sqlite: or postgres:".into()));
        };
        let opts = AnyConnectOptions::from_str(url).map_err(|_| CoreError::Config("invalid database URL".into()))?;
        let pool_opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        let pool = match backend {
            Backend::Sqlite => pool_opts
                .max_connections(8)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute("PRAGMA journal_mode=WAL").await?;
                        conn.execute("PRAGMA synchronous=FULL").await?;
                        conn.execute("PRAGMA foreign_keys=ON").await?;
                        conn.execute("PRAGMA busy_timeout=10000").await?;
                        Ok(())
                    })
                })
                .connect_with(opts)
                .await?,
            Backend::Postgres => pool_opts.max_connections(16).connect_with(opts).await?,
        };
        let db = Self { pool, backend, url: url.to_owned() };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<()> {
        self.pool
            .execute("CREATE TABLE IF NOT EXISTS mamori_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL)")
            .await?;
        for m in MIGRATIONS {
            let done: Option<(i64,)> = sqlx::query_as("SELECT version FROM mamori_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(&self.pool)
                .await?;
            if done.is_some() {
                continue;
            }
            let sql = match self.backend {
                Backend::Sqlite => m.sqlite,
                Backend::Postgres => m.postgres,
            };
            let mut tx = self.pool.begin().await?;
            for stmt in sql.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
                let stmt: String =
                    stmt.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
                if !stmt.trim().is_empty() {
                    tx.execute(stmt.as_str()).await?;
                }
            }
            sqlx::query("INSERT INTO mamori_migrations (version, name) VALUES ($1, $2)")
                .bind(m.version)
                .bind(m.name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version = m.version, name = m.name, "migration applied");
        }
        Ok(())
    }

    /// Begins a transaction. On SQLite it is `BEGIN IMMEDIATE`: the write lock is taken at the
    /// start (waiting up to the busy timeout), so a transaction that reads before it writes can
    /// never fail with SQLITE_BUSY when another writer got in between.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
