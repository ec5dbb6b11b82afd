//! The group-commit writer on a SQLite file: one thread with a `rusqlite` connection of its
//! own, so that a batch is one synchronous run of prepared statements (`BEGIN IMMEDIATE`, the
//! batch's changes, its log reservations and rows, `COMMIT`) instead of one hand-off to
//! sqlx's worker thread and back per statement. The same plan (`reserve_all`, `lay_out`,
//! `accepted`, `refusal`, `answer`) as the sqlx writer, over the same SQL.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::mpsc;

use super::{
    accepted, after_failure, answer, by_client, fail_all, indexes, insert_sql, lay_out, refusal, DiskTimes, Filling, Fresh, Pending, Phases, Reserved, Row, CENTRE_LOG,
    CLIENT_LOG_SQL, LAST_TS_SQL, MAX_BATCH, ROWS_PER_INSERT,
};
use crate::error::{CoreError, Result};

/// How often the checkpointer copies the WAL into the database file: often, so that each
/// copy (and the database file's fsync) is small enough to fit between two commits. Every
/// 100 ms, each copy was ~1,100 pages (4.5 MB) under 10,000 reveals/s, and its fsync held
/// the disk for 3-8 ms (measured with a probe in `mamori bench vault`).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(10);

/// How long after a batch of several appends closed the next waits to grow (unless it holds
/// [`BATCH_FILL`] appends). Committing as soon as anything waits made ~2,000 commits a second
/// of ~5 appends under 11,000 reveals/s: each costs the writer its fixed work (locks, log
/// reservations, WAL frames, an fsync), and each empties every reader's page cache (a reader
/// that finds the database changed since its last read starts from nothing). Measured with
/// `mamori bench vault`: the writer's CPU per reveal 39 -> 25 µs, reveals saturated
/// ~11,000 -> ~12,900/s, paced p99 at 10,000/s 38-500 ms -> 8-12 ms; writes unchanged. The
/// price is at most this much more latency, and only under load. That gap was 1.5 ms; on a
/// later build the wait itself was most of a paced reveal's latency, and 0.5 ms gave a lower
/// paced p99 in each of five interleaved pairs of runs (median 22.5 -> 10.8 ms), p50
/// 2.3 -> 1.5 ms, the same saturated rates, and ~10 µs more writer CPU per paced reveal.
/// On a slower host, where 10,000 reveals/s kept its two cores ~90% busy, the queue that CPU
/// per reveal builds decided the p99 instead, and 1 ms (with a fill of 32, and reads on the
/// first free connection, see `db::HotReads`) took less CPU per paced reveal in each of seven
/// interleaved pairs of runs: the writer's 38-44 -> 29-37 µs, the whole process's 128-143 ->
/// 116-130 µs. The paced p99s of those pairs (18-1,733 ms) were lower in four and higher in
/// three: within the host's noise.
const BATCH_GAP: Duration = Duration::from_millis(1);
/// The batch size that needs no waiting.
const BATCH_FILL: usize = 32;

/// Opens the writer's connection (durable commits, foreign keys as on the pool's) and starts
/// its thread and the checkpointer's, which end when the service (every sender) is gone.
pub(super) fn spawn(path: &str, gate: Arc<tokio::sync::Mutex<()>>, rx: mpsc::Receiver<Pending>, fresh: Arc<Fresh>, filling: Arc<Filling>, times: Arc<DiskTimes>) -> Result<()> {
    let open = || -> Result<Connection> {
        let conn = Connection::open(path)?;
        // While another connection writes (a transaction through the pool), wait in short
        // steps, not SQLite's sleeps of milliseconds (a whole batch's latency).
        conn.busy_handler(Some(crate::db::busy))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        Ok(conn)
    };
    let conn = open()?;
    // Checkpoints by a thread of their own, between commits (see [`Disk`]).
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.set_prepared_statement_cache_capacity(64);
    let checkpointer = open()?;
    let disk: Disk = Arc::new(parking_lot::Mutex::new(()));
    let (alive, stopped) = std::sync::mpsc::channel::<()>();
    let (turns, checkpoint_times) = (disk.clone(), times.clone());
    std::thread::Builder::new()
        .name("ledger-checkpoint".into())
        .spawn(move || checkpoints(checkpointer, stopped, turns, &checkpoint_times))
        .map_err(|e| CoreError::Internal(format!("checkpointer thread: {e}")))?;
    std::thread::Builder::new()
        .name("ledger-writer".into())
        .spawn(move || run(Writer { conn, gate, fresh, disk, times }, rx, &filling, alive))
        .map_err(|e| CoreError::Internal(format!("ledger writer thread: {e}")))?;
    Ok(())
}

/// The store's one turn at the disk: a batch's transaction (whose `COMMIT` writes its WAL
/// frames and fsyncs them) and a checkpoint never run at once. Both end in an fsync, and the
/// disk serves them one after the other anyway: a commit's small WAL fsync that overlapped a
/// checkpoint waited for the checkpoint's megabytes to be written first (commits of 3-8 ms,
/// and 20-200 ms when the host's disk was slow, each time with a checkpoint under way, seen
/// with a probe in `mamori bench vault`). Taken in turn, a checkpoint runs while the writer
/// gathers its next batch or waits for a pool transaction. No commit runs meanwhile, so a
/// checkpoint copies every frame that no reader still needs, and the writer's next
/// transaction, begun after it, restarts the WAL from its beginning: the WAL stays at a few
/// MB without a restart of its own. (With turns for the `COMMIT` alone, the writer's
/// snapshots saw frames not yet copied, and the WAL grew to 35 MB.) In A/B runs, paced writes
/// (5,000/s) had a p99 of 18-27 ms without turns and 5-9 ms with them, in the runs that the
/// host's disk did not stall (both had outliers of 20-460 ms when it did). The price:
/// saturated writes 20-30% fewer (a commit waits out a checkpoint under way). The writer
/// hands the turn on fairly, so that a writer that always has a batch ready cannot keep the
/// checkpointer out.
type Disk = Arc<parking_lot::Mutex<()>>;

/// A passive checkpoint (it waits for no reader or writer).
fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}

/// The checkpointer: copies the WAL into the database file every [`CHECKPOINT_EVERY`], in its
/// turn at the disk, until the writer ends (`stopped` disconnects), and once more then.
fn checkpoints(conn: Connection, stopped: std::sync::mpsc::Receiver<()>, disk: Disk, times: &DiskTimes) {
    loop {
        let last = !matches!(stopped.recv_timeout(CHECKPOINT_EVERY), Err(std::sync::mpsc::RecvTimeoutError::Timeout));
        let copied = {
            let _turn = disk.lock();
            let began = std::time::Instant::now();
            let copied = checkpoint(&conn);
            times.checkpoint(began.elapsed());
            copied
        };
        if let Err(e) = copied {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
        if last {
            return;
        }
    }
}

struct Writer {
    conn: Connection,
    gate: Arc<tokio::sync::Mutex<()>>,
    fresh: Arc<Fresh>,
    disk: Disk,
    times: Arc<DiskTimes>,
}

fn run(mut w: Writer, mut rx: mpsc::Receiver<Pending>, filling: &Filling, _alive: std::sync::mpsc::Sender<()>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    // When the last batch closed and whether it held more than one append: only a batch that
    // follows a shared one closely waits to grow (one client appending in turn never waits).
    let (mut last, mut shared) = (std::time::Instant::now(), false);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        super::fill(&mut batch, &mut rx);
        // Under load (the last batch was shared and closed less than `BATCH_GAP` ago), a small
        // batch waits for more: fewer, larger commits. Otherwise it is committed at once. The
        // thread parks for the rest of the gap, woken early if the batch can fill meanwhile.
        while shared && batch.len() < BATCH_FILL {
            let Some(left) = BATCH_GAP.checked_sub(last.elapsed()) else { break };
            filling.wait(BATCH_FILL - batch.len(), left, || rx.len());
            super::fill(&mut batch, &mut rx);
        }
        (last, shared) = (std::time::Instant::now(), batch.len() > 1);
        if let Err(e) = commit(&mut w, &mut batch) {
            for mut one in after_failure(&mut batch, &e) {
                if let Err(e) = commit(&mut w, &mut one) {
                    fail_all(&mut one, &e);
                }
            }
        }
    }
}

/// One transaction for a batch, as `commit_batch` does through sqlx. A transaction that is not
/// committed rolls back when dropped.
fn commit(w: &mut Writer, batch: &mut Vec<Pending>) -> Result<()> {
    let asked = std::time::Instant::now();
    let turn = w.gate.blocking_lock();
    // The transaction, from its snapshot to its fsync, in its turn at the disk (see [`Disk`]):
    // begun after a checkpoint that copied everything, it restarts the WAL.
    let disk = w.disk.lock();
    let began = std::time::Instant::now();
    let tx = w.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    drop(turn);
    let mut refusals: Vec<Option<CoreError>> = Vec::with_capacity(batch.len());
    for p in batch.iter() {
        refusals.push(match &p.step {
            None => None,
            Some(step) => refusal(step.apply_sqlite(&tx))?,
        });
    }
    let (order, events, encoded) = accepted(batch, &refusals);
    let reserved = reserve_all(&tx, &events)?;
    let rows = lay_out(&events, encoded, &reserved);
    insert_rows(&tx, &rows)?;
    let idx = indexes(&reserved, events.len());
    drop(events);
    let committing = std::time::Instant::now();
    tx.commit()?;
    w.times.batch(batch.len(), Phases::since(asked, began, committing));
    parking_lot::MutexGuard::unlock_fair(disk);
    w.fresh.committed(&rows);
    answer(batch, refusals, order, idx);
    Ok(())
}

/// `RESERVE_SQL` as two statements: SQLite runs a RETURNING clause through an ephemeral
/// table, whose page cache is allocated and freed again in every statement (and a freed block
/// at the top of the thread's heap is given back to the kernel by glibc, whose `madvise` stops
/// the other core to flush its TLB).
fn reserve(conn: &Connection, log: i64, n: i64) -> Result<i64> {
    conn.prepare_cached("UPDATE ledger_logs SET size = size + $1 WHERE id = $2")?.execute(rusqlite::params![n, log])?;
    let size: i64 = conn.prepare_cached("SELECT size FROM ledger_logs WHERE id = $1")?.query_row([log], |r| r.get(0))?;
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
        conn.prepare_cached(insert_sql(chunk.len()))?.execute(args.as_slice())?;
    }
    Ok(())
}
