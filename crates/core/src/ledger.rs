//! The ledger service: stores events in the centre log and in the log of the client they touch,
//! in the caller's transaction ([`LedgerService::append_tx`]) or group-committed
//! ([`LedgerService::append`], or [`LedgerService::append_with`] for a change and its event
//! committed together in a group commit); signs checkpoints; builds proofs and client export bundles;
//! verifies everything from the stored rows.
//!
//! Index allocation is `UPDATE ledger_logs SET size = size + n … RETURNING size`, which takes the
//! row lock of the log for the rest of the transaction on PostgreSQL (the database-wide write lock
//! on SQLite): entries are committed in index order, with no gaps, by any number of processes.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use mamori_ledger::{
    check_bundle, leaf_hash, Bundle, BundleEntry, Checkpoint, Event, LogSummary, LogVerifier, NoteSigner,
    NoteVerifier, Tree, VerifyError, BUNDLE_FORMAT,
};
use serde::Serialize;
use sqlx::AnyConnection;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::clock::SharedClock;
use crate::db::Db;
use crate::error::{CoreError, Result};

pub const CENTRE_LOG: i64 = 1;
const MAX_BATCH: usize = 8192;
/// Rows per multi-row INSERT (8 parameters each; SQLite allows 32,766 per statement).
pub const ROWS_PER_INSERT: usize = 10;

/// One stored entry, as search returns it.
#[derive(Debug, Clone, Serialize)]
pub struct EntryRow {
    pub log: String,
    pub index: i64,
    pub ts: String,
    pub action: String,
    pub actor: String,
    pub object: String,
    pub event: Event,
}

/// Filters of a ledger search.
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    /// Client code: search that client's log instead of the centre log.
    pub client: Option<String>,
    pub action: Option<String>,
    /// `user:3`, `token:1`, …
    pub actor: Option<String>,
    /// `person:7`, `zone:2`, …
    pub object: Option<String>,
    pub zone: Option<String>,
    pub business: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub logs: Vec<LogSummary>,
    pub error: Option<String>,
    pub at: String,
}

/// A change committed in a group commit's transaction together with its event (a record's
/// rows, say). It runs before the batch's events are appended; an `Err` that is not a database
/// error refuses this change alone (nothing of it written, its event not appended); a database
/// error fails the batch, which is then retried one change per transaction.
///
/// A step is written twice over the same SQL: `apply` through sqlx (PostgreSQL), and
/// `apply_sqlite` on the SQLite writer's own connection (see [`sqlite`]).
pub trait BatchStep: Send + Sync {
    fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'c>>;
    fn apply_sqlite(&self, conn: &rusqlite::Connection) -> Result<()>;
}

mod sqlite;

/// A signed checkpoint's row, committed by the group-commit writer; refused (as a
/// [`CoreError::Conflict`]) when that log's checkpoint at that size is already stored.
struct SignedCheckpoint {
    log: i64,
    size: i64,
    note: String,
    at: i64,
}

impl SignedCheckpoint {
    const INSERT: &'static str =
        "INSERT INTO ledger_checkpoints (log_id, size, note, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";

    fn inserted(&self, rows: u64) -> Result<()> {
        match rows {
            0 => Err(CoreError::Conflict(format!("log {} already has its checkpoint at size {}", self.log, self.size))),
            _ => Ok(()),
        }
    }
}

impl BatchStep for SignedCheckpoint {
    fn apply<'c>(&'c self, conn: &'c mut AnyConnection) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'c>> {
        Box::pin(async move {
            let q = sqlx::query(Self::INSERT).bind(self.log).bind(self.size).bind(self.note.as_str()).bind(self.at);
            self.inserted(q.execute(&mut *conn).await?.rows_affected())
        })
    }

    fn apply_sqlite(&self, conn: &rusqlite::Connection) -> Result<()> {
        let rows = conn.prepare_cached(Self::INSERT)?.execute(rusqlite::params![self.log, self.size, self.note, self.at])?;
        self.inserted(rows as u64)
    }
}

struct Pending {
    /// The event to append; none for a change that is recorded by no event of its own (the
    /// centre log's checkpoint: its note is the record).
    entry: Option<Entry>,
    step: Option<Box<dyn BatchStep>>,
    done: oneshot::Sender<Result<u64>>,
}

struct Entry {
    event: Event,
    /// Canonical bytes and leaf hash, computed by the caller so that the one writer task only
    /// binds and commits (encoding runs in parallel across producers).
    bytes: Vec<u8>,
    hash: [u8; 32],
}

impl Entry {
    fn new(event: Event) -> Self {
        let bytes = event.encode();
        let hash = leaf_hash(&bytes);
        Self { event, bytes, hash }
    }
}

pub struct LedgerService {
    db: Db,
    signer: NoteSigner,
    centre: String,
    clock: SharedClock,
    trees: Mutex<HashMap<i64, Tree>>,
    /// Leaf hashes the group-commit writer committed, not yet in `trees`.
    fresh: Arc<Fresh>,
    writer: mpsc::Sender<Pending>,
    /// Wakes the SQLite writer when a batch it waits to grow is full (see [`Filling`]); none
    /// for the sqlx writer, which does not wait.
    filling: Option<Arc<Filling>>,
    disk: Arc<DiskTimes>,
}

/// How the SQLite writer waits for a batch to grow (its batch gap): parked until the gap ends,
/// and woken early by the append that brings the queue to the size it waits for. It used to
/// sleep in steps of 0.1 ms and look again: up to ten wake-ups of its thread per commit, each
/// a context switch on the two cores that serve the requests (in a `perf record` of the paced
/// reads of `mamori bench vault`, the writer's `clock_nanosleep` was 5.9% of the process's
/// samples, the writer's all 25.8%). With this and [`insert_sql`] made once, six interleaved
/// pairs of runs gave the writer 1.2-5.2 µs less CPU per paced reveal in each pair
/// (26.4-30.4 -> 23.3-28.3 µs).
#[derive(Debug, Default)]
struct Filling {
    /// How many queued appends end the wait; 0 while the writer is not waiting.
    want: std::sync::atomic::AtomicUsize,
    writer: std::sync::OnceLock<std::thread::Thread>,
}

impl Filling {
    /// The writer's side: parks the calling thread (the writer) for at most `left` or until
    /// `queued()` reaches `want`. A wake-up that is missed or comes early costs at most `left`:
    /// the caller looks at its queue again and decides.
    fn wait(&self, want: usize, left: std::time::Duration, queued: impl Fn() -> usize) {
        // The thread's handle is taken once, at its first wait, not at every one.
        self.writer.get_or_init(std::thread::current);
        self.want.store(want, Ordering::SeqCst);
        // Paired with the fence in `arrived`: either the appender sees `want`, or this sees
        // its append.
        std::sync::atomic::fence(Ordering::SeqCst);
        if queued() < want {
            std::thread::park_timeout(left);
        }
        self.want.store(0, Ordering::SeqCst);
    }

    /// The appenders' side, after each append: `queued` appends are waiting now.
    fn arrived(&self, queued: usize) {
        std::sync::atomic::fence(Ordering::SeqCst);
        let want = self.want.load(Ordering::SeqCst);
        if want != 0 && queued >= want {
            if let Some(t) = self.writer.get() {
                t.unpark();
            }
        }
    }
}

/// How long the group-commit writer's transactions (from `BEGIN` to the end of `COMMIT`, whose
/// fsync makes the batch durable) and the SQLite WAL checkpoints took: the longest of each, and
/// how many took more than [`DiskTimes::SLOW`], since the last [`DiskTimes::take`]; and where
/// the writer's time went, batch by batch ([`Phases`]).
/// `mamori bench vault` reads them over its paced reads, so that a p99 can be told apart as
/// a stall of the store's disk (one commit or checkpoint as long as the stall) or one elsewhere,
/// and a writer that waits for its disk from one that waits for work.
#[derive(Debug, Default)]
pub struct DiskTimes {
    commit_max_us: AtomicU64,
    commits_slow: AtomicU64,
    checkpoint_max_us: AtomicU64,
    checkpoints_slow: AtomicU64,
    batches: AtomicU64,
    appends: AtomicU64,
    turn_us: AtomicU64,
    work_us: AtomicU64,
    commit_us: AtomicU64,
}

/// Where one batch's time went: waiting for its turn to write (SQLite: the write gate and the
/// turn at the disk that checkpoints take too; PostgreSQL: a connection and `BEGIN`), its
/// statements (from `BEGIN` to the last `INSERT`), and its `COMMIT` (the WAL written and
/// fsynced).
#[derive(Debug, Clone, Copy, Default)]
struct Phases {
    turn: std::time::Duration,
    work: std::time::Duration,
    commit: std::time::Duration,
}

impl Phases {
    /// A batch that asked for its turn at `asked`, began at `began`, and began its `COMMIT` at
    /// `committing`, which has just ended.
    fn since(asked: std::time::Instant, began: std::time::Instant, committing: std::time::Instant) -> Self {
        Phases { turn: began - asked, work: committing - began, commit: committing.elapsed() }
    }
}

/// What [`DiskTimes::take`] returns.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DiskStalls {
    pub commit_ms_max: f64,
    pub commits_slow: u64,
    pub checkpoint_ms_max: f64,
    pub checkpoints_slow: u64,
    /// Batches committed, and the appends (and changes) they held.
    pub batches: u64,
    pub appends: u64,
    /// The writer's time, summed over its batches ([`Phases`]), in ms.
    pub turn_ms: f64,
    pub work_ms: f64,
    pub commit_ms: f64,
}

impl DiskTimes {
    pub const SLOW: std::time::Duration = std::time::Duration::from_millis(10);

    fn note(max: &AtomicU64, slow: &AtomicU64, took: std::time::Duration) {
        max.fetch_max(micros(took), Ordering::Relaxed);
        if took > Self::SLOW {
            slow.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A batch of `appends` committed, its time spent as `p`.
    fn batch(&self, appends: usize, p: Phases) {
        Self::note(&self.commit_max_us, &self.commits_slow, p.work + p.commit);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.appends.fetch_add(appends as u64, Ordering::Relaxed);
        for (sum, d) in [(&self.turn_us, p.turn), (&self.work_us, p.work), (&self.commit_us, p.commit)] {
            sum.fetch_add(micros(d), Ordering::Relaxed);
        }
    }

    fn checkpoint(&self, took: std::time::Duration) {
        Self::note(&self.checkpoint_max_us, &self.checkpoints_slow, took);
    }

    /// What was noted since the last call, and a fresh start.
    pub fn take(&self) -> DiskStalls {
        let ms = |a: &AtomicU64| a.swap(0, Ordering::Relaxed) as f64 / 1000.0;
        let n = |a: &AtomicU64| a.swap(0, Ordering::Relaxed);
        DiskStalls {
            commit_ms_max: ms(&self.commit_max_us),
            commits_slow: n(&self.commits_slow),
            checkpoint_ms_max: ms(&self.checkpoint_max_us),
            checkpoints_slow: n(&self.checkpoints_slow),
            batches: n(&self.batches),
            appends: n(&self.appends),
            turn_ms: ms(&self.turn_us),
            work_ms: ms(&self.work_us),
            commit_ms: ms(&self.commit_us),
        }
    }
}

fn micros(d: std::time::Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

/// How often the checkpointer hashes the committed entries into the proof trees.
const GROW_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

/// The leaf hashes of the rows a group-commit writer has committed, by log, in index order
/// (with gaps where another transaction appended), so that the proof trees catch up from
/// memory instead of reading back every leaf hash from the store. Bounded: past its bound a
/// log's hashes are dropped and the tree reads them from the store.
#[derive(Default)]
struct Fresh(std::sync::Mutex<HashMap<i64, LeafQueue>>);

/// (index, leaf hash), in index order.
type LeafQueue = std::collections::VecDeque<(i64, [u8; 32])>;

impl Fresh {
    const MAX_PER_LOG: usize = 1 << 20;

    /// Called after the rows' transaction committed.
    fn committed(&self, rows: &[Row]) {
        let Ok(mut m) = self.0.lock() else { return };
        for r in rows {
            let q = m.entry(r.log).or_default();
            if q.len() >= Self::MAX_PER_LOG {
                q.clear();
            }
            q.push_back((r.idx, r.hash));
        }
    }

    /// The committed hashes of `log` from index `from` on, without a gap (those before `from`
    /// are dropped); and the index of the next one known past a gap, if any.
    fn take(&self, log: i64, from: i64, until: i64) -> (Vec<[u8; 32]>, Option<i64>) {
        let Ok(mut m) = self.0.lock() else { return (Vec::new(), None) };
        let Some(q) = m.get_mut(&log) else { return (Vec::new(), None) };
        while q.front().is_some_and(|(i, _)| *i < from) {
            q.pop_front();
        }
        let mut out = Vec::new();
        let mut next = from;
        while let Some((i, h)) = q.front().copied() {
            if i != next || i >= until {
                break;
            }
            out.push(h);
            q.pop_front();
            next += 1;
        }
        (out, q.front().map(|(i, _)| *i))
    }

    /// The logs with committed hashes waiting.
    fn logs(&self) -> Vec<i64> {
        let Ok(m) = self.0.lock() else { return Vec::new() };
        m.iter().filter(|(_, q)| !q.is_empty()).map(|(log, _)| *log).collect()
    }
}

struct Row {
    log: i64,
    idx: i64,
    entry: Vec<u8>,
    hash: [u8; 32],
    ts: i64,
    action: String,
    actor: String,
    object: String,
}

fn row_with_hash(log: i64, idx: i64, ev: &Event, entry: Vec<u8>, hash: [u8; 32], ts: i64) -> Row {
    Row {
        log,
        idx,
        entry,
        hash,
        ts,
        action: ev.action.clone(),
        actor: format!("{}:{}", ev.actor.kind, ev.actor.id),
        object: ev.object.as_ref().map(|o| format!("{}:{}", o.kind, o.id)).unwrap_or_default(),
    }
}

/// The multi-row INSERT of `n` ledger rows (8 parameters each), for `n` from 1 to
/// [`ROWS_PER_INSERT`]: made once, not at every batch (the writer formatted them anew for each
/// chunk: 1.25% of the process's samples, ~5% of the writer's, in the profile named at
/// [`Filling`]).
fn insert_sql(n: usize) -> &'static str {
    static SQL: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        (1..=ROWS_PER_INSERT)
            .map(|n| {
                let mut sql = String::from("INSERT INTO ledger_entries (log_id, idx, entry, leaf_hash, ts, action, actor, object) VALUES ");
                for i in 0..n {
                    let b = i * 8;
                    if i > 0 {
                        sql.push(',');
                    }
                    sql.push_str(&format!("(${},${},${},${},${},${},${},${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8));
                }
                sql
            })
            .collect()
    });
    &SQL[n.clamp(1, ROWS_PER_INSERT) - 1]
}

const RESERVE_SQL: &str = "UPDATE ledger_logs SET size = size + $1 WHERE id = $2 RETURNING size";
const CLIENT_LOG_SQL: &str = "SELECT l.id FROM ledger_logs l JOIN clients c ON c.id = l.client_id WHERE c.code = $1";
const LAST_TS_SQL: &str = "SELECT ts FROM ledger_entries WHERE log_id = $1 AND idx = $2";

async fn insert_rows(conn: &mut AnyConnection, rows: &[Row]) -> Result<()> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut q = sqlx::query(insert_sql(chunk.len()));
        for r in chunk {
            q = q
                .bind(r.log)
                .bind(r.idx)
                .bind(r.entry.as_slice())
                .bind(r.hash.as_slice())
                .bind(r.ts)
                .bind(r.action.as_str())
                .bind(r.actor.as_str())
                .bind(r.object.as_str());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Reserves `n` indexes in `log` and returns the first.
async fn reserve(conn: &mut AnyConnection, log: i64, n: i64) -> Result<i64> {
    let (size,): (i64,) = sqlx::query_as(RESERVE_SQL).bind(n).bind(log).fetch_one(&mut *conn).await?;
    Ok(size - n)
}

async fn client_log(conn: &mut AnyConnection, code: &str) -> Result<i64> {
    let row: Option<(i64,)> = sqlx::query_as(CLIENT_LOG_SQL).bind(code).fetch_optional(&mut *conn).await?;
    row.map(|r| r.0).ok_or(CoreError::NotFound("client log"))
}

/// The number of entries committed to `log`.
async fn log_size(conn: &mut AnyConnection, log: i64) -> Result<i64> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT size FROM ledger_logs WHERE id = $1").bind(log).fetch_optional(&mut *conn).await?;
    row.map(|r| r.0).ok_or(CoreError::NotFound("ledger log"))
}

/// The first index in `lo..hi` of `log` whose entry was recorded at or after `ms` (`hi` if
/// none). Time never goes back within a log (see [`lay_out`]), so a period is a range of a
/// log's indexes, found by binary search on its key: an index on `(log_id, ts)` cost every
/// commit two more WAL pages and was dropped (migration 14).
async fn first_at(conn: &mut AnyConnection, log: i64, ms: i64, mut lo: i64, mut hi: i64) -> Result<i64> {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let row: Option<(i64,)> = sqlx::query_as(LAST_TS_SQL).bind(log).bind(mid).fetch_optional(&mut *conn).await?;
        let (ts,) = row.ok_or_else(|| CoreError::Ledger(format!("entry {mid} of log {log} is missing")))?;
        if ts < ms {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// The indexes `[start, end)` of the first `size` entries of `log` recorded in `[from, to)`
/// (ms since the epoch; an open end where `None`).
async fn period(conn: &mut AnyConnection, log: i64, size: i64, from: Option<i64>, to: Option<i64>) -> Result<(i64, i64)> {
    let start = match from {
        Some(ms) => first_at(conn, log, ms, 0, size).await?,
        None => 0,
    };
    let end = match to {
        Some(ms) => first_at(conn, log, ms, start, size).await?,
        None => size,
    };
    Ok((start, end))
}

/// [`period`] over all of `log` as committed now.
async fn period_now(conn: &mut AnyConnection, log: i64, from: Option<i64>, to: Option<i64>) -> Result<(i64, i64)> {
    let size = log_size(conn, log).await?;
    period(conn, log, size, from, to).await
}

/// Appends a batch of events: centre log first, then each touched client log.
async fn append_batch(conn: &mut AnyConnection, events: &[Event]) -> Result<Vec<u64>> {
    let refs: Vec<&Event> = events.iter().collect();
    let encoded: Vec<(Vec<u8>, [u8; 32])> = events
        .iter()
        .map(|e| {
            let b = e.encode();
            let h = leaf_hash(&b);
            (b, h)
        })
        .collect();
    Ok(append_encoded(conn, &refs, encoded).await?.0)
}

/// The time (ms) of the entry just before `next` in `log`, if any.
async fn last_ts(conn: &mut AnyConnection, log: i64, next: i64) -> Result<i64> {
    if next == 0 {
        return Ok(i64::MIN);
    }
    let row: Option<(i64,)> = sqlx::query_as(LAST_TS_SQL).bind(log).bind(next - 1).fetch_optional(&mut *conn).await?;
    Ok(row.map_or(i64::MIN, |r| r.0))
}

/// The indexes a batch of events was given, and the last time of each log before them.
struct Reserved {
    /// First index in the centre log, and the time of the entry before it.
    first: i64,
    centre_floor: i64,
    /// (log, first index, time of the entry before it, the batch's events in that log).
    clients: Vec<(i64, i64, i64, Vec<usize>)>,
}

/// The events of a batch that go to each client log, by client code.
fn by_client<'e>(events: &[&'e Event]) -> BTreeMap<&'e str, Vec<usize>> {
    let mut by: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, ev) in events.iter().enumerate() {
        if let Some(c) = &ev.client {
            by.entry(c.as_str()).or_default().push(i);
        }
    }
    by
}

async fn reserve_all(conn: &mut AnyConnection, events: &[&Event]) -> Result<Reserved> {
    let first = reserve(conn, CENTRE_LOG, events.len() as i64).await?;
    let centre_floor = last_ts(conn, CENTRE_LOG, first).await?;
    let mut clients = Vec::new();
    for (code, idxs) in by_client(events) {
        let log = client_log(conn, code).await?;
        let start = reserve(conn, log, idxs.len() as i64).await?;
        let floor = last_ts(conn, log, start).await?;
        clients.push((log, start, floor, idxs));
    }
    Ok(Reserved { first, centre_floor, clients })
}

/// Appends events with their precomputed encodings. Runs under the row locks of every log it
/// touches, which also makes time monotonic: an event is recorded no earlier than the last
/// entry of each of its logs (an event built a moment before another may commit after it), so
/// a client can rely on time order when it checks that an export left nothing out. Returns the
/// centre-log index of each event and the rows written.
async fn append_encoded(conn: &mut AnyConnection, events: &[&Event], encoded: Vec<(Vec<u8>, [u8; 32])>) -> Result<(Vec<u64>, Vec<Row>)> {
    let reserved = reserve_all(conn, events).await?;
    let rows = lay_out(events, encoded, &reserved);
    insert_rows(conn, &rows).await?;
    Ok((indexes(&reserved, events.len()), rows))
}

fn indexes(r: &Reserved, n: usize) -> Vec<u64> {
    (0..n).map(|i| (r.first + i as i64) as u64).collect()
}

/// The rows of a batch of events at the indexes reserved for them, each event's time raised to
/// the last time of its logs where it was built earlier (and then encoded again).
fn lay_out(events: &[&Event], mut encoded: Vec<(Vec<u8>, [u8; 32])>, r: &Reserved) -> Vec<Row> {
    let mut floor: HashMap<i64, i64> = HashMap::new();
    floor.insert(CENTRE_LOG, r.centre_floor);
    for (log, _, f, _) in &r.clients {
        floor.insert(*log, *f);
    }
    let log_of: HashMap<usize, i64> = r.clients.iter().flat_map(|(log, _, _, idxs)| idxs.iter().map(move |i| (*i, *log))).collect();
    let mut events: Vec<std::borrow::Cow<'_, Event>> = events.iter().map(|e| std::borrow::Cow::Borrowed(*e)).collect();
    let mut times = Vec::with_capacity(events.len());
    for (i, ev) in events.iter_mut().enumerate() {
        let own = ev.at().map_or(0, |t| t.timestamp_millis());
        let client = log_of.get(&i).copied();
        let min = floor[&CENTRE_LOG].max(client.map_or(i64::MIN, |l| floor[&l]));
        let ms = if own < min {
            let at = DateTime::from_timestamp_millis(min).unwrap_or_default();
            let (ts, jst) = mamori_ledger::event::timestamps(at);
            let e = ev.to_mut();
            e.ts = ts;
            e.jst = jst;
            let b = e.encode();
            encoded[i] = (b.clone(), leaf_hash(&b));
            min
        } else {
            own
        };
        times.push(ms);
        floor.insert(CENTRE_LOG, ms);
        if let Some(l) = client {
            floor.insert(l, ms);
        }
    }
    let mut rows = Vec::with_capacity(events.len() + log_of.len());
    for (log, start, _, idxs) in &r.clients {
        for (k, i) in idxs.iter().enumerate() {
            let (b, h) = &encoded[*i];
            rows.push(row_with_hash(*log, start + k as i64, &events[*i], b.clone(), *h, times[*i]));
        }
    }
    for (i, (ev, (b, h))) in events.iter().zip(encoded).enumerate() {
        rows.push(row_with_hash(CENTRE_LOG, r.first + i as i64, ev, b, h, times[i]));
    }
    rows
}

fn origin_of(centre: &str, log_name: &str) -> String {
    format!("{centre}/{log_name}")
}

impl LedgerService {
    /// Starts the service and its group-commit writer task.
    pub fn start(db: Db, signer: NoteSigner, clock: SharedClock) -> Result<Arc<Self>> {
        let (tx, rx) = mpsc::channel::<Pending>(MAX_BATCH * 4);
        let centre = signer.verifier().name().to_owned();
        let fresh = Arc::new(Fresh::default());
        let disk = Arc::new(DiskTimes::default());
        let sqlite = crate::db::sqlite_path(&db.url).filter(|_| db.backend == crate::db::Backend::Sqlite);
        let filling = sqlite.is_some().then(|| Arc::new(Filling::default()));
        let svc = Arc::new(Self {
            db: db.clone(),
            signer,
            centre,
            clock,
            trees: Mutex::new(HashMap::new()),
            fresh: fresh.clone(),
            writer: tx,
            filling: filling.clone(),
            disk: disk.clone(),
        });
        match sqlite.zip(filling) {
            // On a SQLite file: a thread of its own on a rusqlite connection (no worker-thread
            // round trip per statement). An in-memory database has no second connection.
            Some((path, filling)) => sqlite::spawn(&path, db.gate(), rx, fresh, filling, disk)?,
            None => {
                tokio::spawn(writer_loop(db, rx, fresh, disk));
            }
        }
        Ok(svc)
    }

    /// The writer's commit and checkpoint times (see [`DiskTimes`]).
    pub fn disk_times(&self) -> &DiskTimes {
        &self.disk
    }

    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    /// Signs a document (a deletion certificate, say) with the centre's key, as a signed note
    /// that anyone holding the verifier key can check.
    pub fn sign_note(&self, body: &str) -> String {
        self.signer.sign(body)
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Appends `ev` inside the caller's transaction: it is durable exactly when the change is.
    pub async fn append_tx(&self, conn: &mut AnyConnection, ev: &Event) -> Result<u64> {
        let idx = append_batch(conn, std::slice::from_ref(ev)).await?;
        Ok(idx[0])
    }

    /// Appends `ev` on its own, group-committed with other appends; returns once durable.
    pub async fn append(&self, ev: Event) -> Result<u64> {
        self.submit(ev, None).await
    }

    /// Commits `step` and appends `ev` in one transaction shared with other appends (a group
    /// commit: one durable write for many changes); returns once both are durable, or the
    /// step's refusal with nothing written.
    pub async fn append_with(&self, ev: Event, step: Box<dyn BatchStep>) -> Result<u64> {
        self.submit(ev, Some(step)).await
    }

    async fn submit(&self, ev: Event, step: Option<Box<dyn BatchStep>>) -> Result<u64> {
        self.enqueue(Some(Entry::new(ev)), step).await
    }

    async fn enqueue(&self, entry: Option<Entry>, step: Option<Box<dyn BatchStep>>) -> Result<u64> {
        let (done, rx) = oneshot::channel();
        self.writer
            .send(Pending { entry, step, done })
            .await
            .map_err(|_| CoreError::Ledger("ledger writer stopped".into()))?;
        if let Some(filling) = &self.filling {
            filling.arrived(self.writer.max_capacity() - self.writer.capacity());
        }
        rx.await.map_err(|_| CoreError::Ledger("ledger writer stopped".into()))?
    }

    /// Creates the log of a new client, in the caller's transaction.
    pub async fn create_client_log(&self, conn: &mut AnyConnection, client_id: i64, code: &str) -> Result<()> {
        sqlx::query("INSERT INTO ledger_logs (origin, client_id, size) VALUES ($1, $2, 0)")
            .bind(format!("client/{code}"))
            .bind(client_id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn logs(&self) -> Result<Vec<(i64, String, i64)>> {
        Ok(sqlx::query_as("SELECT id, origin, size FROM ledger_logs ORDER BY id").fetch_all(&self.db.pool).await?)
    }

    /// Brings the cached tree of `log` up to `size` leaves: those the writer committed from
    /// memory (hashed on a blocking thread), the rest from the store.
    async fn tree_at<'a>(
        &self,
        trees: &'a mut HashMap<i64, Tree>,
        log: i64,
        size: u64,
    ) -> Result<&'a Tree> {
        let tree = trees.entry(log).or_default();
        while tree.size() < size {
            // What the group-commit writer committed, from memory; the rest (another
            // transaction's entries, or after a restart) from the store.
            let (known, next) = self.fresh.take(log, tree.size() as i64, size as i64);
            if !known.is_empty() {
                *tree = grown(std::mem::take(tree), known).await?;
                continue;
            }
            let until = next.map_or(size as i64, |n| n.min(size as i64));
            let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT idx, leaf_hash FROM ledger_entries WHERE log_id = $1 AND idx >= $2 AND idx < $3 ORDER BY idx LIMIT 50000",
            )
            .bind(log)
            .bind(tree.size() as i64)
            .bind(until)
            .fetch_all(&self.db.pool)
            .await?;
            if rows.is_empty() {
                return Err(CoreError::Ledger(format!("log {log} has fewer entries than its size {size}")));
            }
            for (idx, h) in rows {
                if idx as u64 != tree.size() {
                    return Err(CoreError::Ledger(format!("log {log}: entry {} missing", tree.size())));
                }
                let h: [u8; 32] = h.try_into().map_err(|_| CoreError::Ledger("bad leaf hash".into()))?;
                tree.push(h);
            }
        }
        Ok(tree)
    }

    /// Signs a checkpoint for every log that grew since its last one. Client logs go first, and
    /// each client checkpoint is also recorded as an event of the centre log, so the centre's
    /// own checkpoint commits to every client's.
    ///
    /// Each checkpoint row (and its event) is committed by the group-commit writer, in the
    /// batch that happens to be forming: signing costs no transaction of its own, which on
    /// SQLite held the writer back for 1-3 ms per log once a second.
    pub async fn checkpoint_all(&self) -> Result<usize> {
        let mut signed = 0;
        // Every log's size and the size of its last checkpoint, in one query.
        const STATE: &str = "SELECT l.id, l.origin, l.size, \
             COALESCE((SELECT MAX(c.size) FROM ledger_checkpoints c WHERE c.log_id = l.id), 0) FROM ledger_logs l";
        let mut logs: Vec<(i64, String, i64, i64)> = sqlx::query_as(STATE).fetch_all(&self.db.pool).await?;
        logs.sort_by_key(|l| (l.0 == CENTRE_LOG, l.0));
        for (id, name, mut size, mut last) in logs {
            if id == CENTRE_LOG {
                // Read again: the centre log has grown by the client checkpoints just recorded.
                let now: (i64, String, i64, i64) =
                    sqlx::query_as(&format!("{STATE} WHERE l.id = $1")).bind(id).fetch_one(&self.db.pool).await?;
                (size, last) = (now.2, now.3);
            }
            if size == 0 || size <= last {
                continue;
            }
            let root = {
                let mut trees = self.trees.lock().await;
                self.tree_at(&mut trees, id, size as u64).await?.root(size as u64).map_err(|e| CoreError::Ledger(e.to_string()))?
            };
            let cp = Checkpoint { origin: origin_of(&self.centre, &name), size: size as u64, root };
            let note = self.signer.sign_checkpoint(&cp);
            let now = self.clock.now();
            let step = Box::new(SignedCheckpoint { log: id, size, note: note.clone(), at: now.timestamp_millis() });
            let entry = (id != CENTRE_LOG).then(|| {
                let ev = Event::new(now, mamori_ledger::Actor { kind: "system".into(), id: "ledger".into() }, "ledger.checkpoint")
                    .object("log", &name)
                    .detail("size", size)
                    .detail("root", hex::encode(root))
                    .detail("note", &note);
                Entry::new(ev)
            });
            match self.enqueue(entry, Some(step)).await {
                Ok(_) => signed += 1,
                // Signed meanwhile by another caller: nothing written.
                Err(CoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(signed)
    }

    /// The latest signed checkpoint of a log: (size, note).
    pub async fn latest_checkpoint(&self, log: i64) -> Result<Option<(i64, String)>> {
        Ok(sqlx::query_as("SELECT size, note FROM ledger_checkpoints WHERE log_id = $1 ORDER BY size DESC LIMIT 1")
            .bind(log)
            .fetch_optional(&self.db.pool)
            .await?)
    }

    /// An inclusion proof of entry `index` of `log` against its latest checkpoint.
    pub async fn proof(&self, log: i64, index: u64) -> Result<serde_json::Value> {
        let (size, note) = match self.latest_checkpoint(log).await? {
            Some((s, n)) if s as u64 > index => (s as u64, n),
            _ => {
                self.checkpoint_all().await?;
                self.latest_checkpoint(log).await?.map(|(s, n)| (s as u64, n)).ok_or(CoreError::NotFound("checkpoint"))?
            }
        };
        if index >= size {
            return Err(CoreError::NotFound("entry"));
        }
        let mut trees = self.trees.lock().await;
        let tree = self.tree_at(&mut trees, log, size).await?;
        let proof = tree.inclusion_proof(index, size).map_err(|e| CoreError::Ledger(e.to_string()))?;
        let leaf = tree.leaf(index).map(hex::encode);
        // Verify before handing it out.
        let cp = self.signer.verifier().open(&note).map_err(|e| CoreError::Ledger(e.to_string()))?;
        let cp = Checkpoint::parse(cp).map_err(|e| CoreError::Ledger(e.to_string()))?;
        let ok = tree
            .leaf(index)
            .map(|l| mamori_ledger::verify_inclusion(index, size, &l, &proof, &cp.root).is_ok())
            .unwrap_or(false);
        Ok(serde_json::json!({
            "log_id": log, "index": index, "tree_size": size, "leaf_hash": leaf,
            "proof": proof.iter().map(hex::encode).collect::<Vec<_>>(),
            "checkpoint": note, "verified": ok,
        }))
    }

    /// The indexes `[start, end)` of the centre log recorded in `[from, to)` (ms), as committed
    /// now ([`period`]).
    pub(crate) async fn centre_period(&self, from: i64, to: i64) -> Result<(i64, i64)> {
        let mut conn = self.db.pool.acquire().await?;
        period_now(&mut conn, CENTRE_LOG, Some(from), Some(to)).await
    }

    /// Searches stored entries, newest first.
    pub async fn search(&self, f: &SearchFilter) -> Result<Vec<EntryRow>> {
        let mut conn = self.db.pool.acquire().await?;
        let (log, log_name) = match &f.client {
            Some(c) => {
                let id = client_log(&mut conn, c).await?;
                (id, format!("client/{c}"))
            }
            None => (CENTRE_LOG, "centre".to_owned()),
        };
        let mut sql = String::from("SELECT idx, entry FROM ledger_entries WHERE log_id = $1");
        let mut n = 1;
        let mut push = |sql: &mut String, cond: &str| {
            n += 1;
            sql.push_str(&cond.replace('?', &format!("${n}")));
        };
        let range = match (f.from, f.to) {
            (None, None) => None,
            (from, to) => Some(period_now(&mut conn, log, from.map(|t| t.timestamp_millis()), to.map(|t| t.timestamp_millis())).await?),
        };
        if range.is_some() {
            push(&mut sql, " AND idx >= ?");
            push(&mut sql, " AND idx < ?");
        }
        if f.action.is_some() {
            push(&mut sql, " AND action LIKE ?");
        }
        if f.actor.is_some() {
            push(&mut sql, " AND actor = ?");
        }
        if f.object.is_some() {
            push(&mut sql, " AND object = ?");
        }
        let limit = f.limit.unwrap_or(200).clamp(1, 100_000);
        let post = f.zone.is_some() || f.business.is_some();
        sql.push_str(&format!(" ORDER BY idx DESC LIMIT {}", if post { limit * 20 } else { limit }));
        let mut q = sqlx::query_as::<_, (i64, Vec<u8>)>(&sql).bind(log);
        if let Some((start, end)) = range {
            q = q.bind(start).bind(end);
        }
        if let Some(a) = &f.action {
            q = q.bind(format!("{}%", a.replace('%', "")));
        }
        if let Some(a) = &f.actor {
            q = q.bind(a.clone());
        }
        if let Some(o) = &f.object {
            q = q.bind(o.clone());
        }
        let rows = q.fetch_all(&mut *conn).await?;
        let mut out = Vec::new();
        for (idx, entry) in rows {
            if entry.is_empty() {
                continue; // pruned by a retention policy
            }
            let ev = Event::decode(&entry).map_err(|e| CoreError::Ledger(format!("entry {idx}: {e}")))?;
            if let Some(z) = &f.zone {
                if ev.place.as_ref().and_then(|p| p.zone.as_ref()) != Some(z) && ev.detail.get("zone") != Some(z) {
                    continue;
                }
            }
            if let Some(b) = &f.business {
                if ev.detail.get("business") != Some(b) {
                    continue;
                }
            }
            out.push(EntryRow {
                log: log_name.clone(),
                index: idx,
                ts: ev.ts.clone(),
                action: ev.action.clone(),
                actor: format!("{}:{}", ev.actor.kind, ev.actor.id),
                object: ev.object.as_ref().map(|o| format!("{}:{}", o.kind, o.id)).unwrap_or_default(),
                event: ev,
            });
            if out.len() as i64 >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Recomputes every log from the stored rows and checks every checkpoint, including the
    /// client checkpoints that the centre log attests. `progress(done, total)` is called as
    /// entries are read.
    pub async fn verify_all(&self, mut progress: impl FnMut(u64, u64)) -> Result<VerifyReport> {
        let at = mamori_ledger::event::timestamps(self.clock.now()).1;
        let logs = self.logs().await?;
        let total: u64 = logs.iter().map(|l| l.2 as u64).sum();
        let mut done = 0u64;
        let key = self.signer.verifier();
        // Client checkpoints attested by the centre log, by log name.
        let mut attested: HashMap<String, Vec<(u64, String)>> = HashMap::new();
        let mut summaries = Vec::new();
        let mut ordered = logs.clone();
        ordered.sort_by_key(|l| l.0 != CENTRE_LOG); // the centre first
        for (id, name, size) in ordered {
            let mut cps: Vec<(u64, String)> =
                sqlx::query_as::<_, (i64, String)>("SELECT size, note FROM ledger_checkpoints WHERE log_id = $1")
                    .bind(id)
                    .fetch_all(&self.db.pool)
                    .await?
                    .into_iter()
                    .map(|(s, n)| (s as u64, n))
                    .collect();
            cps.extend(attested.remove(&name).unwrap_or_default());
            let origin = origin_of(&self.centre, &name);
            // Hashing is the check: every signed root commits to the exact bytes of every entry,
            // so decoding each event would add cost and no assurance.
            let mut v = LogVerifier::new(&name, &origin, &key, cps).without_decoding();
            // The next page is read while this one is hashed: the store and the hashing each
            // get a core.
            let fetch = |from: i64| {
                let pool = self.db.pool.clone();
                tokio::spawn(async move {
                    sqlx::query_as::<_, (i64, Vec<u8>, Vec<u8>, String)>(
                        "SELECT idx, entry, leaf_hash, action FROM ledger_entries WHERE log_id = $1 AND idx >= $2 ORDER BY idx LIMIT 20000",
                    )
                    .bind(id)
                    .bind(from)
                    .fetch_all(&pool)
                    .await
                })
            };
            let mut pending = fetch(0);
            loop {
                let rows = pending.await.map_err(|e| CoreError::Internal(e.to_string()))??;
                let Some(last) = rows.last() else { break };
                pending = fetch(last.0 + 1);
                for (idx, entry, hash, action) in &rows {
                    if let Err(e) = v.push(*idx as u64, entry, Some(hash)) {
                        return Ok(VerifyReport { ok: false, logs: summaries, error: Some(e.to_string()), at });
                    }
                    if id == CENTRE_LOG && action == "ledger.checkpoint" {
                        if let Ok(ev) = Event::decode(entry) {
                            if ev.action == "ledger.checkpoint" {
                                if let (Some(o), Some(s), Some(n)) =
                                    (&ev.object, ev.detail.get("size"), ev.detail.get("note"))
                                {
                                    if let Ok(s) = s.parse() {
                                        attested.entry(o.id.clone()).or_default().push((s, n.clone()));
                                    }
                                }
                            }
                        }
                    }
                }
                done += rows.len() as u64;
                progress(done, total);
            }
            // The log's own size counter must match what is stored.
            let result = v.finish().and_then(|s| {
                if s.entries != size as u64 {
                    Err(VerifyError::Truncated { log: name.clone(), size: size as u64, len: s.entries })
                } else {
                    Ok(s)
                }
            });
            match result {
                Ok(s) => summaries.push(s),
                Err(e) => return Ok(VerifyReport { ok: false, logs: summaries, error: Some(e.to_string()), at }),
            }
        }
        if let Some((name, _)) = attested.into_iter().next() {
            return Ok(VerifyReport {
                ok: false,
                logs: summaries,
                error: Some(format!("log {name} is attested by the centre log but is missing")),
                at,
            });
        }
        Ok(VerifyReport { ok: true, logs: summaries, error: None, at })
    }

    /// A client's records for `[from, to)`, with proofs against a fresh checkpoint.
    pub async fn export_client(&self, code: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Bundle> {
        self.checkpoint_all().await?;
        let mut conn = self.db.pool.acquire().await?;
        let log = client_log(&mut conn, code).await?;
        drop(conn);
        let (size, note) = self.latest_checkpoint(log).await?.unwrap_or((0, String::new()));
        let size = size as u64;
        let cp_note = if note.is_empty() {
            // An empty log still gets a signed statement that it is empty.
            self.signer.sign_checkpoint(&Checkpoint {
                origin: origin_of(&self.centre, &format!("client/{code}")),
                size: 0,
                root: mamori_ledger::tree::empty_root(),
            })
        } else {
            note
        };
        let mut entries = Vec::new();
        if size > 0 {
            // The period, and the entry on each side of it (when there is one): the client
            // sees that nothing between them was left out.
            let mut conn = self.db.pool.acquire().await?;
            let (first, after) = period(&mut conn, log, size as i64, Some(from.timestamp_millis()), Some(to.timestamp_millis())).await?;
            drop(conn);
            let start = (first - 1).max(0);
            let end = after.min(size as i64 - 1);
            let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = sqlx::query_as(
                "SELECT idx, entry, leaf_hash FROM ledger_entries WHERE log_id = $1 AND idx >= $2 AND idx <= $3 ORDER BY idx",
            )
            .bind(log)
            .bind(start)
            .bind(end)
            .fetch_all(&self.db.pool)
            .await?;
            let mut trees = self.trees.lock().await;
            let tree = self.tree_at(&mut trees, log, size).await?;
            for (idx, entry, hash) in rows {
                let proof = tree.inclusion_proof(idx as u64, size).map_err(|e| CoreError::Ledger(e.to_string()))?;
                entries.push(BundleEntry {
                    index: idx as u64,
                    pruned_leaf: entry.is_empty().then(|| hex::encode(&hash)),
                    entry: B64.encode(&entry),
                    proof: proof.iter().map(hex::encode).collect(),
                });
            }
        }
        let bundle = Bundle {
            format: BUNDLE_FORMAT.into(),
            origin: origin_of(&self.centre, &format!("client/{code}")),
            key: self.signer.verifier().to_key_string(),
            from: mamori_ledger::event::timestamps(from).0,
            to: mamori_ledger::event::timestamps(to).0,
            checkpoint: cp_note,
            entries,
        };
        // Never hand out a bundle that does not check.
        check_bundle(&bundle, &self.signer.verifier()).map_err(|e| CoreError::Ledger(e.to_string()))?;
        Ok(bundle)
    }

    /// Prunes, by a recorded retention policy, the content of entries whose action starts with
    /// one of `prefixes` and that are older than `before`. Each pruned entry keeps its index and
    /// leaf hash, so every signed checkpoint still verifies; the pruning is itself an event.
    /// Records of access to customer data, grants, sign-ins, accounts and the ledger's own
    /// events can never be pruned (AUDIT-1: kept semi-permanently).
    pub async fn prune(&self, prefixes: &[String], before: DateTime<Utc>) -> Result<u64> {
        const PROTECTED: &[&str] = &["data.", "grant.", "ledger.", "session.", "user.", "token.", "person.", "backup."];
        for p in prefixes {
            if p.len() < 3 || PROTECTED.iter().any(|x| p.starts_with(x) || x.starts_with(p.as_str())) {
                return Err(CoreError::invalid("retention", format!("{p:?} names records that must be kept")));
            }
        }
        if prefixes.is_empty() {
            return Ok(0);
        }
        let mut tx = self.db.begin().await?;
        let mut n = 0;
        for p in prefixes {
            n += sqlx::query("UPDATE ledger_entries SET entry = $1 WHERE action LIKE $2 AND ts < $3 AND length(entry) > 0")
                .bind(Vec::<u8>::new())
                .bind(format!("{}%", p.replace('%', "")))
                .bind(before.timestamp_millis())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        let ev = Event::new(self.clock.now(), mamori_ledger::Actor { kind: "system".into(), id: "retention".into() }, "ledger.prune")
            .detail("actions", prefixes.join(","))
            .detail("before", mamori_ledger::event::timestamps(before).0)
            .detail("entries", n);
        append_batch(&mut tx, std::slice::from_ref(&ev)).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Grows the cached proof trees by what the group-commit writer committed since, from
    /// memory and on a blocking thread. Run every [`GROW_EVERY`] by the checkpointer, it hashes
    /// a second's worth of entries (some milliseconds of SHA-256 at 10,000 reveals a second) in
    /// small steps, where in one step at signing time it competed with the requests for the
    /// cores once a second. What it leaves (an entry another transaction appended, or those
    /// before a restart) the signing reads from the store, as before.
    pub async fn grow_trees(&self) -> Result<()> {
        let mut trees = self.trees.lock().await;
        for log in self.fresh.logs() {
            let tree = trees.entry(log).or_default();
            let (known, _) = self.fresh.take(log, tree.size() as i64, i64::MAX);
            if !known.is_empty() {
                *tree = grown(std::mem::take(tree), known).await?;
            }
        }
        Ok(())
    }

    /// Runs the checkpointer: every `every` while events flow, and once more when `stop` fires.
    /// Between checkpoints it keeps the proof trees up to date ([`Self::grow_trees`]).
    pub async fn run_checkpointer(self: Arc<Self>, every: std::time::Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(every);
        let mut grow = tokio::time::interval(GROW_EVERY);
        grow.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = grow.tick() => {
                    if let Err(e) = self.grow_trees().await {
                        tracing::error!(error = %e, "growing the proof trees failed");
                    }
                    continue;
                }
                _ = stop.changed() => {
                    if let Err(e) = self.checkpoint_all().await { tracing::error!(error = %e, "final checkpoint failed"); }
                    return;
                }
            }
            if let Err(e) = self.checkpoint_all().await {
                tracing::error!(error = %e, "checkpoint failed");
            }
        }
    }
}

/// `tree` with `known` leaf hashes pushed, on a blocking thread: a second's worth of reveals
/// is some milliseconds of SHA-256, which on a runtime worker would hold back every request
/// queued behind it. (Should it fail, the tree starts again from the store.)
async fn grown(mut tree: Tree, known: Vec<[u8; 32]>) -> Result<Tree> {
    tokio::task::spawn_blocking(move || {
        for h in known {
            tree.push(h);
        }
        tree
    })
    .await
    .map_err(|e| CoreError::Internal(format!("tree hashing: {e}")))
}

async fn writer_loop(db: Db, mut rx: mpsc::Receiver<Pending>, fresh: Arc<Fresh>, disk: Arc<DiskTimes>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        fill(&mut batch, &mut rx);
        if let Err(e) = commit_batch(&db, &mut batch, &fresh, &disk).await {
            for mut one in after_failure(&mut batch, &e) {
                if let Err(e) = commit_batch(&db, &mut one, &fresh, &disk).await {
                    fail_all(&mut one, &e);
                }
            }
        }
    }
}

/// Takes whatever else is waiting into the batch, up to its bound.
fn fill(batch: &mut Vec<Pending>, rx: &mut mpsc::Receiver<Pending>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(p) => batch.push(p),
            Err(_) => break,
        }
    }
}

/// After a batch failed with `e`: when one of its changes may have failed the whole
/// transaction, the batch's pendings to commit one by one (so that only that one fails);
/// otherwise every pending is answered with the error and nothing is left to retry.
fn after_failure(batch: &mut Vec<Pending>, e: &CoreError) -> Vec<Vec<Pending>> {
    if batch.len() > 1 && batch.iter().any(|p| p.step.is_some()) {
        tracing::warn!(error = %e, "group commit failed; retrying one by one");
        std::mem::take(batch).into_iter().map(|p| vec![p]).collect()
    } else {
        fail_all(batch, e);
        Vec::new()
    }
}

/// Answers every pending of a batch that could not be committed with the error.
fn fail_all(batch: &mut Vec<Pending>, e: &CoreError) {
    for p in batch.drain(..) {
        let _ = p.done.send(Err(CoreError::Ledger(e.to_string())));
    }
}

/// One transaction for a batch: its changes in arrival order, then its events in time order,
/// so that only stragglers from before the previous batch need their time raised (and
/// re-encoding; `ts` strings, fixed-width UTC, sort chronologically). Answers and drains every
/// pending on success; on a database error leaves the batch for a retry.
async fn commit_batch(db: &Db, batch: &mut Vec<Pending>, fresh: &Fresh, times: &DiskTimes) -> Result<()> {
    let asked = std::time::Instant::now();
    let mut tx = db.begin().await?;
    let began = std::time::Instant::now();
    // Per pending: the refusal of its change, if refused.
    let mut refusals: Vec<Option<CoreError>> = Vec::with_capacity(batch.len());
    for p in batch.iter() {
        refusals.push(match &p.step {
            None => None,
            Some(step) => refusal(step.apply(&mut tx).await)?,
        });
    }
    let (order, events, encoded) = accepted(batch, &refusals);
    let (idx, rows) = append_encoded(&mut tx, &events, encoded).await?;
    drop(events);
    let committing = std::time::Instant::now();
    tx.commit().await?;
    times.batch(batch.len(), Phases::since(asked, began, committing));
    fresh.committed(&rows);
    answer(batch, refusals, order, idx);
    Ok(())
}

/// A batch step's outcome: its refusal (that change alone is dropped), or a database error (the
/// batch fails, to be retried one by one).
fn refusal(applied: Result<()>) -> Result<Option<CoreError>> {
    match applied {
        Ok(()) => Ok(None),
        Err(e @ (CoreError::Db(_) | CoreError::Sqlite(_))) => Err(e),
        Err(e) => Ok(Some(e)),
    }
}

/// The pendings of a batch that carry an event and whose change was not refused, in time order:
/// (their positions, their events, their encodings).
#[allow(clippy::type_complexity)]
fn accepted<'b>(batch: &'b [Pending], refusals: &[Option<CoreError>]) -> (Vec<usize>, Vec<&'b Event>, Vec<(Vec<u8>, [u8; 32])>) {
    let mut order: Vec<(usize, &Entry)> =
        batch.iter().enumerate().filter(|(i, _)| refusals[*i].is_none()).filter_map(|(i, p)| Some((i, p.entry.as_ref()?))).collect();
    order.sort_by(|a, b| a.1.event.ts.cmp(&b.1.event.ts));
    let events = order.iter().map(|(_, e)| &e.event).collect();
    let encoded = order.iter().map(|(_, e)| (e.bytes.clone(), e.hash)).collect();
    (order.into_iter().map(|(i, _)| i).collect(), events, encoded)
}

/// Answers and drains every pending of a committed batch: its index (0 for a change without an
/// event), or its refusal.
fn answer(batch: &mut Vec<Pending>, refusals: Vec<Option<CoreError>>, order: Vec<usize>, idx: Vec<u64>) {
    let mut index = vec![0u64; batch.len()];
    for (i, n) in order.into_iter().zip(idx) {
        index[i] = n;
    }
    for ((p, refusal), n) in batch.drain(..).zip(refusals).zip(index) {
        let _ = p.done.send(refusal.map_or(Ok(n), Err));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_times_keep_the_longest_and_count_the_slow_until_taken() {
        let t = DiskTimes::default();
        let ms = std::time::Duration::from_millis;
        for (n, work) in [(1, 2), (4, 25), (2, 11), (3, 4)] {
            t.batch(n, Phases { turn: ms(1), work: ms(work), commit: ms(0) });
        }
        t.batch(10, Phases { turn: ms(3), work: ms(1), commit: ms(9) });
        t.checkpoint(std::time::Duration::from_micros(3_500));
        let want = DiskStalls {
            commit_ms_max: 25.0,
            commits_slow: 2,
            checkpoint_ms_max: 3.5,
            checkpoints_slow: 0,
            batches: 5,
            appends: 20,
            turn_ms: 7.0,
            work_ms: 43.0,
            commit_ms: 9.0,
        };
        assert_eq!(t.take(), want);
        assert_eq!(t.take(), DiskStalls::default(), "taking starts afresh");
    }

    /// The SQLite file's writer times its commits, which `mamori bench vault` reports.
    #[tokio::test]
    #[allow(clippy::unwrap_used)]
    async fn the_writer_times_its_commits() {
        let dir = tempfile::tempdir().unwrap();
        let app = crate::Mamori::open(crate::OpenOptions::new(dir.path())).await.unwrap();
        app.ledger.disk_times().take();
        app.ledger.append(Event::new(chrono::Utc::now(), crate::auth::system_actor("test"), "test.timed")).await.unwrap();
        let taken = app.ledger.disk_times().take();
        assert!(taken.commit_ms_max > 0.0, "{taken:?}");
        assert_eq!((taken.batches, taken.appends), (1, 1), "{taken:?}");
        assert!(taken.commit_ms > 0.0 && taken.work_ms > 0.0, "{taken:?}");
    }

    /// A period of a log is found by binary search on its indexes (time never goes back within
    /// a log): for every bound on a grid around the entries' times, including times shared by
    /// several entries, before the first and after the last, it is the range a scan finds.
    #[tokio::test]
    #[allow(clippy::unwrap_used)]
    async fn a_period_is_the_range_of_indexes_a_scan_finds() {
        let dir = tempfile::tempdir().unwrap();
        let app = crate::Mamori::open(crate::OpenOptions::new(dir.path())).await.unwrap();
        let t0 = chrono::Utc::now();
        // Built out of order: the later append is raised to the time of the log's last entry.
        for secs in [0, 0, 5, 5, 5, 3, 9, 20, 20, 21] {
            let at = t0 + chrono::Duration::seconds(secs);
            app.ledger.append(Event::new(at, crate::auth::system_actor("test"), "test.period")).await.unwrap();
        }
        let mut conn = app.db.pool.acquire().await.unwrap();
        let rows: Vec<(i64, i64)> =
            sqlx::query_as("SELECT idx, ts FROM ledger_entries WHERE log_id = $1 ORDER BY idx").bind(CENTRE_LOG).fetch_all(&mut *conn).await.unwrap();
        assert!(rows.windows(2).all(|w| w[0].1 <= w[1].1), "time goes back in {rows:?}");
        let size = rows.len() as i64;
        let scan = |ms: i64| rows.iter().find(|r| r.1 >= ms).map_or(size, |r| r.0);
        let base = t0.timestamp_millis();
        let grid: Vec<i64> = (-2..=23).map(|s| base + s * 1000).chain([base - 1, base + 1, i64::MIN, i64::MAX]).collect();
        for &from in &grid {
            for &to in &grid {
                let got = period_now(&mut conn, CENTRE_LOG, Some(from), Some(to)).await.unwrap();
                let want = (scan(from), scan(to).max(scan(from)));
                assert_eq!(got, want, "from {from} to {to}");
            }
            assert_eq!(period_now(&mut conn, CENTRE_LOG, Some(from), None).await.unwrap(), (scan(from), size));
            assert_eq!(period_now(&mut conn, CENTRE_LOG, None, Some(from)).await.unwrap(), (0, scan(from)));
        }
        // Within a checkpoint's size: entries after it are not in the period.
        assert_eq!(period(&mut conn, CENTRE_LOG, 3, None, Some(i64::MAX)).await.unwrap(), (0, 3));
    }

    #[test]
    fn the_insert_of_n_rows_has_eight_parameters_a_row() {
        for n in 1..=ROWS_PER_INSERT {
            let sql = insert_sql(n);
            assert_eq!(sql.matches('$').count(), 8 * n, "{sql}");
            assert!(sql.ends_with(&format!("${})", 8 * n)), "{sql}");
            assert_eq!(sql.matches("),(").count(), n - 1, "{sql}");
        }
    }

    /// The SQLite writer's wait for a batch to grow ends as soon as an append fills it, not at
    /// the end of its gap (here a minute, which the test would notice).
    #[test]
    #[allow(clippy::unwrap_used)]
    fn the_writer_wakes_when_its_batch_can_fill() {
        use std::sync::atomic::AtomicUsize;
        let (filling, queued) = (Arc::new(Filling::default()), Arc::new(AtomicUsize::new(0)));
        let gap = std::time::Duration::from_secs(60);
        let began = std::time::Instant::now();
        let waiter = {
            let (filling, queued) = (filling.clone(), queued.clone());
            std::thread::spawn(move || filling.wait(3, gap, || queued.load(Ordering::SeqCst)))
        };
        while filling.want.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        // One short of the batch: no reason to wake it.
        queued.store(2, Ordering::SeqCst);
        filling.arrived(2);
        queued.store(3, Ordering::SeqCst);
        filling.arrived(3);
        waiter.join().unwrap();
        assert!(began.elapsed() < gap / 2, "woken by the append, not by the end of the gap");
        assert_eq!(filling.want.load(Ordering::SeqCst), 0, "no longer waiting");
        // A batch that can fill already does not wait at all.
        let began = std::time::Instant::now();
        filling.wait(2, gap, || 5);
        assert!(began.elapsed() < gap / 2);
    }

    fn row(log: i64, idx: i64) -> Row {
        Row { log, idx, entry: Vec::new(), hash: [idx as u8; 32], ts: 0, action: String::new(), actor: String::new(), object: String::new() }
    }

    #[test]
    fn fresh_hashes_serve_only_a_run_without_gaps() {
        let f = Fresh::default();
        // Entries 3 and 4 were appended by another transaction: the writer knows 0-2 and 5-6.
        f.committed(&[row(1, 0), row(1, 1), row(1, 2), row(7, 0)]);
        f.committed(&[row(1, 5), row(1, 6)]);
        let (known, next) = f.take(1, 0, 10);
        assert_eq!(known, vec![[0u8; 32], [1u8; 32], [2u8; 32]]);
        assert_eq!(next, Some(5), "the gap is read from the store, up to the next known index");
        assert_eq!(f.take(1, 3, 10), (Vec::new(), Some(5)));
        // Up to the size asked for only; what is older than asked is dropped.
        assert_eq!(f.take(1, 5, 6), (vec![[5u8; 32]], Some(6)));
        assert_eq!(f.take(1, 7, 10), (Vec::new(), None));
        assert_eq!(f.take(7, 0, 1), (vec![[0u8; 32]], None), "each log on its own");
        assert_eq!(f.take(2, 0, 1), (Vec::new(), None));
    }
}
