//! The group-commit writer on a SQLite file: one thread with a `rusqlite` connection of its
//! own, so that a batch is one synchronous run of prepared statements (`BEGIN IMMEDIATE`, the
//! batch's changes, its log reservations and rows, `COMMIT`) instead of one hand-off to
//! sqlx's worker thread and back per statement. The same plan (`reserve`, `lay_out`, `answer`)
//! as the sqlx writer, over the same SQL.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::mpsc;

use super::{
    accepted, after_failure, answer, by_client, fail_all, indexes, insert_sql, lay_out, Pending, Reserved, Row, CENTRE_LOG,
    CLIENT_LOG_SQL, LAST_TS_SQL, MAX_BATCH, RESERVE_SQL, ROWS_PER_INSERT,
};
use crate::error::{CoreError, Result};

/// Opens the writer's connection (durable commits, foreign keys as on the pool's) and starts
/// its thread, which ends when the service (every sender) is gone.
pub(super) fn spawn(path: &str, rx: mpsc::Receiver<Pending>) -> Result<()> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "wal_autocheckpoint", 8000)?;
    conn.set_prepared_statement_cache_capacity(64);
    std::thread::Builder::new()
        .name("ledger-writer".into())
        .spawn(move || run(conn, rx))
        .map_err(|e| CoreError::Internal(format!("ledger writer thread: {e}")))?;
    Ok(())
}

fn run(mut conn: Connection, mut rx: mpsc::Receiver<Pending>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        super::fill(&mut batch, &mut rx);
        if let Err(e) = commit(&mut conn, &mut batch) {
            for mut one in after_failure(&mut batch, &e) {
                if let Err(e) = commit(&mut conn, &mut one) {
                    fail_all(&mut one, &e);
                }
            }
        }
    }
}

/// One transaction for a batch, as `commit_batch` does through sqlx. A transaction that is not
/// committed rolls back when dropped.
fn commit(conn: &mut Connection, batch: &mut Vec<Pending>) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut refusals: Vec<Option<CoreError>> = Vec::with_capacity(batch.len());
    for p in batch.iter() {
        refusals.push(match &p.step {
            None => None,
            Some(step) => match step.apply_sqlite(&tx) {
                Ok(()) => None,
                Err(e @ (CoreError::Db(_) | CoreError::Sqlite(_))) => return Err(e),
                Err(e) => Some(e),
            },
        });
    }
    let (order, events, encoded) = accepted(batch, &refusals);
    let reserved = reserve_all(&tx, &events)?;
    let rows = lay_out(&events, encoded, &reserved);
    insert_rows(&tx, &rows)?;
    let idx = indexes(&reserved, events.len());
    drop(events);
    tx.commit()?;
    answer(batch, refusals, order, idx);
    Ok(())
}

fn reserve(conn: &Connection, log: i64, n: i64) -> Result<i64> {
    let size: i64 = conn.prepare_cached(RESERVE_SQL)?.query_row(rusqlite::params![n, log], |r| r.get(0))?;
    Ok(size - n)
}

fn last_ts(conn: &Connection, log: i64, next: i64) -> Result<i64> {
    if next == 0 {
        return Ok(i64::MIN);
    }
    let ts: Option<i64> = conn.prepare_cached(LAST_TS_SQL)?.query_row(rusqlite::params![log, next - 1], |r| r.get(0)).optional()?;
    Ok(ts.unwrap_or(i64::MIN))
}

fn reserve_all(conn: &Connection, events: &[&mamori_ledger::Event]) -> Result<Reserved> {
    let first = reserve(conn, CENTRE_LOG, events.len() as i64)?;
    let centre_floor = last_ts(conn, CENTRE_LOG, first)?;
    let mut clients = Vec::new();
    for (code, idxs) in by_client(events) {
        let log: Option<i64> = conn.prepare_cached(CLIENT_LOG_SQL)?.query_row([code], |r| r.get(0)).optional()?;
        let log = log.ok_or(CoreError::NotFound("client log"))?;
        let start = reserve(conn, log, idxs.len() as i64)?;
        let floor = last_ts(conn, log, start)?;
        clients.push((log, start, floor, idxs));
    }
    Ok(Reserved { first, centre_floor, clients })
}

fn insert_rows(conn: &Connection, rows: &[Row]) -> Result<()> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut args: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 8);
        for r in chunk {
            args.extend([&r.log as &dyn rusqlite::ToSql, &r.idx, &r.entry, &r.hash, &r.ts, &r.action, &r.actor, &r.object]);
        }
        conn.prepare_cached(&insert_sql(chunk.len()))?.execute(args.as_slice())?;
    }
    Ok(())
}
