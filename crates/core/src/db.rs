//! The store: one `sqlx` Any pool over SQLite (default, embedded) or PostgreSQL (scale-out),
//! with embedded migrations run at start-up, one folder per backend.
//!
//! Queries are written once, with `$1, $2, …` placeholders in order of first use (which SQLite
//! accepts as well), and only the column types both backends share through the Any driver:
//! 64-bit integers, text and bytes.
//!
//! The hot read paths (a bearer token, a business's schema, a data decision's facts, a record)
//! go through [`Db::read`]: on SQLite it runs the same SQL synchronously on one of a few
//! `rusqlite` connections of its own (WAL readers never wait for the writer, and a point query
//! takes microseconds, less than handing it to `sqlx`'s worker thread and back); on PostgreSQL
//! it is an ordinary pool query.

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
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
    Migration {
        version: 11,
        name: "cache_epoch",
        sqlite: include_str!("../migrations/sqlite/0011_cache_epoch.sql"),
        postgres: include_str!("../migrations/postgres/0011_cache_epoch.sql"),
    },
    Migration {
        version: 12,
        name: "ledger_rowid",
        sqlite: include_str!("../migrations/sqlite/0012_ledger_rowid.sql"),
        postgres: include_str!("../migrations/postgres/0012_ledger_rowid.sql"),
    },
    Migration {
        version: 13,
        name: "vault_values_clustered",
        sqlite: include_str!("../migrations/sqlite/0013_vault_values_clustered.sql"),
        postgres: include_str!("../migrations/postgres/0013_vault_values_clustered.sql"),
    },
    Migration {
        version: 14,
        name: "ledger_time_by_index",
        sqlite: include_str!("../migrations/sqlite/0014_ledger_time_by_index.sql"),
        postgres: include_str!("../migrations/postgres/0014_ledger_time_by_index.sql"),
    },
];

#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    pub url: String,
    /// SQLite only: the connections of [`Db::read`].
    hot: Option<Arc<HotReads>>,
    /// SQLite only: taken (first come, first served) by every writer of this process just
    /// while it acquires SQLite's write lock, so that the ledger's writer thread, which takes
    /// that lock batch after batch, cannot starve a pool transaction (SQLite's own busy
    /// handler polls in sleeps of 1 to 100 ms and would rarely find the lock free).
    gate: Arc<tokio::sync::Mutex<()>>,
}

/// The SQLite URL of the database inside a data directory.
pub fn sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join("mamori.db").display())
}

/// The file of a `sqlite:` URL (none for an in-memory database or another backend).
pub fn sqlite_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| path.to_owned())
}

/// A value bound to a [`Db::read`] query.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Int(i64),
    Text(&'a str),
    OptText(Option<&'a str>),
    OptInt(Option<i64>),
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Arg::Int(i) | Arg::OptInt(Some(i)) => ToSqlOutput::from(i),
            Arg::Text(t) | Arg::OptText(Some(t)) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Arg::OptText(None) | Arg::OptInt(None) => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

/// A row both stores decode the same way: a tuple of `i64`, `String`, `Vec<u8>` and their
/// options.
pub trait HotRow: Sized + Send + Unpin + for<'r> sqlx::FromRow<'r, AnyRow> {
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
}

macro_rules! hot_row {
    ($($t:ident $i:tt),+) => {
        impl<$($t),+> HotRow for ($($t,)+)
        where
            $($t: rusqlite::types::FromSql + Send + Unpin,)+
            ($($t,)+): for<'r> sqlx::FromRow<'r, AnyRow>,
        {
            fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
                Ok(($(row.get::<usize, $t>($i)?,)+))
            }
        }
    };
}
hot_row!(A 0);
hot_row!(A 0, B 1);
hot_row!(A 0, B 1, C 2);
hot_row!(A 0, B 1, C 2, D 3);
hot_row!(A 0, B 1, C 2, D 3, E 4);
hot_row!(A 0, B 1, C 2, D 3, E 4, F 5);
hot_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
hot_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
hot_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
hot_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
hot_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);

/// SQLite's busy handler for this process's own connections: waits 50 µs and tries again, for
/// about 10 s in all. SQLite's default handler sleeps 1, 2, 5, 10 … 100 ms between tries, each
/// sleep a stall of whatever waits on that connection.
pub(crate) fn busy(tries: i32) -> bool {
    std::thread::sleep(Duration::from_micros(50));
    tries < 200_000
}

/// Read-only SQLite connections (`query_only`), each with its cache of prepared statements.
///
/// A read takes the first free connection, in their order, not the next in turn: every commit
/// empties each reader's page cache (SQLite drops it when it finds the WAL changed), so under
/// load a read that goes to the connection the last read used finds the index and table pages
/// that read brought in, where reads spread over all of them started cold each time (a page
/// is a `pread` and a page allocation: 30% of the runtime workers' CPU in a saturated reveal
/// phase, half of it reading pages). Measured with `mamori bench vault`: reveals saturated
/// 11.0k -> 11.6k, 9.7k -> 10.9k and 11.2k -> 12.3k/s in three interleaved pairs, with 2-15%
/// less CPU per reveal. The others serve the reads that run at the same time.
struct HotReads {
    conns: Vec<Mutex<rusqlite::Connection>>,
    /// Which connection a read waits for when every one is busy.
    next: AtomicUsize,
}

impl std::fmt::Debug for HotReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotReads").field("connections", &self.conns.len()).finish()
    }
}

impl HotReads {
    fn open(path: &str, n: usize) -> Result<Self> {
        let conns = (0..n)
            .map(|_| {
                let c = rusqlite::Connection::open(path)?;
                // These run on the async runtime's threads: wait in short steps (see `busy`).
                c.busy_handler(Some(busy))?;
                c.pragma_update(None, "query_only", true)?;
                c.set_prepared_statement_cache_capacity(64);
                Ok(Mutex::new(c))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { conns, next: AtomicUsize::new(0) })
    }

    /// Runs a query on the first free connection (or waits for one, in turn: each holds it for
    /// microseconds).
    fn rows<T: HotRow>(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>> {
        let conn = match self.conns.iter().find_map(|c| c.try_lock().ok()) {
            Some(c) => c,
            None => {
                let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
                self.conns[turn].lock().map_err(|_| CoreError::Internal("read connection poisoned".into()))?
            }
        };
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(T::from_sqlite(r)?);
        }
        Ok(out)
    }
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
                        conn.execute("PRAGMA wal_autocheckpoint=8000").await?;
                        conn.execute("PRAGMA foreign_keys=ON").await?;
                        conn.execute("PRAGMA busy_timeout=10000").await?;
                        Ok(())
                    })
                })
                .connect_with(opts)
                .await?,
            Backend::Postgres => pool_opts.max_connections(16).connect_with(opts).await?,
        };
        let mut db = Self { pool, backend, url: url.to_owned(), hot: None, gate: Arc::new(tokio::sync::Mutex::new(())) };
        db.migrate().await?;
        if let Some(path) = sqlite_path(url).filter(|_| backend == Backend::Sqlite) {
            db.hot = Some(Arc::new(HotReads::open(&path, 4)?));
        }
        Ok(db)
    }

    /// A read-only query outside any transaction, for the hot paths (see the module's notes).
    /// It sees everything committed before it starts.
    pub async fn read<T: HotRow>(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>> {
        self.rows(None, sql, args).await
    }

    /// The store's cache epoch now (see `cache.rs`), outside any transaction.
    pub async fn epoch(&self) -> Result<i64> {
        let row: Option<(i64,)> = self.row(None, "SELECT n FROM cache_epoch WHERE id = 1", &[]).await?;
        row.map(|r| r.0).ok_or(CoreError::Internal("cache epoch missing".into()))
    }

    /// A query in `conn` (a transaction, say), or with `None` as [`Db::read`].
    pub async fn rows<T: HotRow>(&self, conn: Option<&mut sqlx::AnyConnection>, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>> {
        if let (None, Some(hot)) = (&conn, &self.hot) {
            return hot.rows(sql, args);
        }
        let mut q = sqlx::query_as::<_, T>(sql);
        for a in args {
            q = match *a {
                Arg::Int(i) => q.bind(i),
                Arg::Text(t) => q.bind(t),
                Arg::OptText(t) => q.bind(t),
                Arg::OptInt(i) => q.bind(i),
            };
        }
        Ok(match conn {
            Some(c) => q.fetch_all(c).await?,
            None => q.fetch_all(&self.pool).await?,
        })
    }

    /// [`Db::rows`] of at most one row.
    pub async fn row<T: HotRow>(&self, conn: Option<&mut sqlx::AnyConnection>, sql: &str, args: &[Arg<'_>]) -> Result<Option<T>> {
        Ok(self.rows(conn, sql, args).await?.into_iter().next())
    }

    async fn migrate(&self) -> Result<()> {
        self.migrate_to(i64::MAX).await
    }

    /// Applies the pending migrations up to version `last`.
    async fn migrate_to(&self, last: i64) -> Result<()> {
        self.pool
            .execute("CREATE TABLE IF NOT EXISTS mamori_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL)")
            .await?;
        for m in MIGRATIONS.iter().filter(|m| m.version <= last) {
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
            Backend::Sqlite => {
                // A connection first (not holding the turn while the pool is exhausted).
                let conn = self.pool.acquire().await?;
                let _turn = self.gate.lock().await;
                sqlx::Transaction::begin(conn, Some("BEGIN IMMEDIATE".into())).await?
            }
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// One statement outside a transaction that writes (SQLite takes its write lock for it), in
    /// its turn with the process's other writers (see `gate`).
    pub async fn write<'q>(&self, q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>) -> Result<sqlx::any::AnyQueryResult> {
        let _turn = match self.backend {
            Backend::Sqlite => Some(self.gate.lock().await),
            Backend::Postgres => None,
        };
        Ok(q.execute(&self.pool).await?)
    }

    /// The turn of the ledger's writer thread (see `gate`).
    pub(crate) fn gate(&self) -> Arc<tokio::sync::Mutex<()>> {
        self.gate.clone()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundled SQLite is the one `.cargo/config.toml` asks for (ARCHITECTURE.md, "The
    /// bundled SQLite is built without process-wide locks on its hot paths"): a build that lost
    /// `LIBSQLITE3_FLAGS` would still pass every other test, only slower.
    #[test]
    fn bundled_sqlite_has_the_workspace_flags() -> rusqlite::Result<()> {
        let conn = rusqlite::Connection::open_in_memory()?;
        let opts: Vec<String> = conn.prepare("PRAGMA compile_options")?.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        for want in ["DEFAULT_MEMSTATUS=0", "DEFAULT_PCACHE_INITSZ=256"] {
            assert!(opts.iter().any(|o| o == want), "{want} missing from {opts:?}");
        }
        assert!(!opts.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"), "{opts:?}");
        Ok(())
    }

    /// A SQLite store in a fresh directory (kept alive by the returned guard) with the
    /// migrations up to `version` applied, on one connection, to test the next migration on.
    async fn sqlite_store_at(version: i64) -> Result<(tempfile::TempDir, Db)> {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().map_err(|e| CoreError::Internal(e.to_string()))?;
        let url = sqlite_url(dir.path());
        let pool = AnyPoolOptions::new().max_connections(1).connect(&url).await?;
        let db = Db { pool, backend: Backend::Sqlite, url, hot: None, gate: Arc::new(tokio::sync::Mutex::new(())) };
        db.migrate_to(version).await?;
        Ok((dir, db))
    }

    /// Migration 12 moves the ledger's entries out of a WITHOUT ROWID table: every entry of a
    /// store made before it is still there, byte for byte, and appends go on after it.
    #[tokio::test]
    async fn ledger_entries_survive_the_move_to_a_rowid_table() -> Result<()> {
        let (_dir, db) = sqlite_store_at(11).await?;
        let rows: [(i64, i64, Vec<u8>, i64); 3] = [(1, 0, vec![1, 2, 3], 10), (2, 0, vec![4, 5], 11), (1, 1, vec![6], 12)];
        for (log, idx, entry, ts) in &rows {
            sqlx::query("INSERT INTO ledger_entries (log_id, idx, entry, leaf_hash, ts, action, actor, object) VALUES ($1, $2, $3, $4, $5, 'a', 'b', 'c')")
                .bind(log)
                .bind(idx)
                .bind(entry.clone())
                .bind(vec![*ts as u8; 32])
                .bind(ts)
                .execute(&db.pool)
                .await?;
        }
        db.migrate().await?;
        let (sql,): (String,) = sqlx::query_as("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'ledger_entries'").fetch_one(&db.pool).await?;
        assert!(!sql.to_uppercase().contains("WITHOUT ROWID"), "{sql}");
        let got: Vec<(i64, i64, Vec<u8>, i64)> =
            sqlx::query_as("SELECT log_id, idx, entry, ts FROM ledger_entries ORDER BY ts").fetch_all(&db.pool).await?;
        assert_eq!(got, rows.to_vec());
        // The key still holds: an index taken twice is refused.
        let again = sqlx::query("INSERT INTO ledger_entries (log_id, idx, entry, leaf_hash, ts, action, actor) VALUES (1, 1, x'00', x'00', 13, 'a', 'b')").execute(&db.pool).await;
        assert!(again.is_err(), "a duplicate (log_id, idx) must be refused");
        // Its index on time went with migration 14 (periods are found by index).
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'ledger_entries_ts'").fetch_one(&db.pool).await?;
        assert_eq!(n, 0);
        Ok(())
    }

    /// Migration 13 moves the sealed values into a WITHOUT ROWID table: every value of a store
    /// made before it is still there, byte for byte (DATA-4), its key still holds, and a search
    /// by keyed blind index still goes through its index.
    #[tokio::test]
    async fn sealed_values_survive_the_move_to_a_without_rowid_table() -> Result<()> {
        let (_dir, db) = sqlite_store_at(12).await?;
        for parent in [
            "INSERT INTO clients (id, code, name, created_at) VALUES (1, 'C', 'C', 0)",
            "INSERT INTO businesses (id, code, name, client_id, created_at) VALUES (1, 'B', 'B', 1, 0)",
            "INSERT INTO vault_keys (id, business_id, wrapped, created_at) VALUES (1, 1, x'00', 0)",
        ] {
            sqlx::query(parent).execute(&db.pool).await?;
        }
        for (id, uid) in [(1, "R1"), (2, "R2")] {
            sqlx::query("INSERT INTO vault_records (id, uid, business_id, key_id, normal, created_by, created_at) VALUES ($1, $2, 1, 1, '{}', 1, 0)")
                .bind(id)
                .bind(uid)
                .execute(&db.pool)
                .await?;
        }
        type Value = (i64, String, Vec<u8>, String, Option<String>);
        let values: Vec<Value> = vec![
            (1, "card".into(), vec![9, 8, 7], "1234".into(), None),
            (1, "phone".into(), vec![1, 2, 3], "5678".into(), Some("b1".into())),
            (2, "phone".into(), vec![4, 5], "0000".into(), Some("b2".into())),
        ];
        for (record, field, sealed, hint, blind) in &values {
            sqlx::query("INSERT INTO vault_values (record_id, field, sealed, hint, blind) VALUES ($1, $2, $3, $4, $5)")
                .bind(record)
                .bind(field.as_str())
                .bind(sealed.clone())
                .bind(hint.as_str())
                .bind(blind.clone())
                .execute(&db.pool)
                .await?;
        }
        db.migrate().await?;
        let (sql,): (String,) = sqlx::query_as("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'vault_values'").fetch_one(&db.pool).await?;
        assert!(sql.to_uppercase().contains("WITHOUT ROWID"), "{sql}");
        let got: Vec<Value> =
            sqlx::query_as("SELECT record_id, field, sealed, hint, blind FROM vault_values ORDER BY record_id, field").fetch_all(&db.pool).await?;
        assert_eq!(got, values);
        let again = sqlx::query("INSERT INTO vault_values (record_id, field, sealed, hint) VALUES (1, 'phone', x'00', '')").execute(&db.pool).await;
        assert!(again.is_err(), "a second value of one record's field must be refused");
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
            "EXPLAIN QUERY PLAN SELECT r.id FROM vault_records r JOIN vault_values v ON v.record_id = r.id \
             WHERE r.business_id = 1 AND v.field = 'phone' AND v.blind = 'b2'",
        )
        .fetch_all(&db.pool)
        .await?;
        assert!(plan.iter().any(|p| p.3.contains("vault_values_blind")), "{plan:?}");
        let (uid,): (String,) = sqlx::query_as(
            "SELECT r.uid FROM vault_records r JOIN vault_values v ON v.record_id = r.id WHERE r.business_id = 1 AND v.field = 'phone' AND v.blind = 'b2'",
        )
        .fetch_one(&db.pool)
        .await?;
        assert_eq!(uid, "R2");
        Ok(())
    }
}
