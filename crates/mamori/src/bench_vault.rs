//! `mamori bench vault`: over HTTP on this machine, with the load generator in the same process:
//! record writes that authorise, encrypt and durably record the input, and field reveals that
//! authorise, decrypt and durably record the access. The last line printed is one JSON object.
//!
//! Each operation is measured twice. *Saturated*: `clients` connections each send the next
//! request as soon as the last is answered; the rate reached is `read_per_s` / `write_per_s`.
//! *Paced*: requests are sent at a given rate (by default the issue's targets, 10,000 reads/s
//! and 5,000 writes/s: `--read-rate`, `--write-rate`) on a fixed schedule whatever the answers,
//! and each latency counts from the moment its request was due (so a stall delays, and is
//! charged to, every request scheduled behind it); its p99 is
//! `read_ms_p99` / `write_ms_p99`, and the rate served `read_paced_per_s` / `write_paced_per_s`.
//! A closed loop's latency is only its client count over its rate (Little's law): it says how
//! many clients were queued, not how fast a request is served at a given load.
//! `read_paced_steal_pct` is the share of the machine's CPU time the hypervisor took during the
//! paced reads (`/proc/stat`; null where there is none): on a shared host a stall that mamori
//! cannot cause or remove, so a p99 is read together with it. `read_paced_commit_ms_max` and
//! `read_paced_checkpoint_ms_max` are the longest group commit (`BEGIN` to the end of its
//! fsync) and WAL checkpoint during the paced reads: a stall of the store's disk shows there as
//! one as long as the stall, and every reveal due meanwhile waits for it.
//! `read_p99_episodes` and `read_p99_worst_episode_share` group the paced reads over their p99
//! by when they were due (see [`Episodes`]): one stall's backlog, or a queue again and again.
//! `read_paced_batch` and `read_paced_writer_{commit,turn,work}_pct` say how the ledger's one
//! writer spent the paced reads (see [`WriterTime`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mamori_core::types::Role;
use mamori_core::{Mamori, OpenOptions};
use serde_json::json;

use crate::bench::{core_err as e, percentile};

/// The pacer's step.
const PACE_STEP: Duration = Duration::from_micros(100);

/// Requests over the p99 whose due times lie closer than this belong to one episode.
const EPISODE_GAP_MS: f64 = 5.0;

/// What one measurement found.
struct Stats {
    rate: f64,
    p99: f64,
    fails: usize,
    /// Paced only: where the requests over the p99 fell in time.
    episodes: Option<Episodes>,
}

/// Where the slowest paced requests fell in time: those over the p99, grouped into episodes
/// (each due within [`EPISODE_GAP_MS`] of the one before). When one episode holds most of them,
/// the p99 was decided by one stall and the backlog it left (a slow fsync, a paused host);
/// many small ones are a queue that the load builds again and again, which only less work per
/// request removes.
#[derive(Debug, Default, PartialEq)]
struct Episodes {
    /// How many requests were over the p99, in how many episodes.
    over: usize,
    count: usize,
    /// The episode with the most of them: when its first was due (ms into the phase), how long
    /// until its last was due (ms), its share of the requests over the p99, and its slowest (ms).
    worst_at_ms: f64,
    worst_span_ms: f64,
    worst_share: f64,
    worst_ms: f64,
}

/// [`Episodes`] of `timed` (when each request was due, ms into the phase, and its latency in
/// ms, in any order) over the latency `p99`.
fn episodes(timed: &[(f64, f64)], p99: f64) -> Episodes {
    let mut slow: Vec<(f64, f64)> = timed.iter().copied().filter(|(_, lat)| *lat > p99).collect();
    slow.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Each episode: first due, last due, requests, slowest.
    let mut eps: Vec<(f64, f64, usize, f64)> = Vec::new();
    for (due, lat) in &slow {
        match eps.last_mut() {
            Some(e) if due - e.1 <= EPISODE_GAP_MS => *e = (e.0, *due, e.2 + 1, e.3.max(*lat)),
            _ => eps.push((*due, *due, 1, *lat)),
        }
    }
    let mut out = Episodes { over: slow.len(), count: eps.len(), ..Episodes::default() };
    if let Some(w) = eps.iter().max_by_key(|e| e.2) {
        (out.worst_at_ms, out.worst_span_ms, out.worst_ms) = (w.0, w.1 - w.0, w.3);
        out.worst_share = w.2 as f64 / slow.len() as f64;
    }
    out
}

/// The ledger writer's time over a phase (from [`mamori_core::ledger::DiskStalls`]): how often
/// it committed, how many appends a batch held, and the shares (%) of the phase's wall time it
/// spent in `COMMIT`, waiting for its turn at the disk, and in its statements. A writer whose
/// `COMMIT` and turn fill most of its time is bound by the disk's fsyncs, and the appends wait
/// for the disk rather than for CPU; the rest of its time it gathers batches or is idle.
#[derive(Debug, Default, PartialEq)]
struct WriterTime {
    commits_per_s: f64,
    batch: f64,
    commit_pct: f64,
    turn_pct: f64,
    work_pct: f64,
}

impl WriterTime {
    fn of(s: &mamori_core::ledger::DiskStalls, phase: Duration) -> Self {
        let ms = (phase.as_secs_f64() * 1000.0).max(f64::EPSILON);
        WriterTime {
            commits_per_s: s.batches as f64 * 1000.0 / ms,
            batch: s.appends as f64 / s.batches.max(1) as f64,
            commit_pct: s.commit_ms * 100.0 / ms,
            turn_pct: s.turn_ms * 100.0 / ms,
            work_pct: s.work_ms * 100.0 / ms,
        }
    }
}

/// CPU time this process's threads have run, by thread name, in ns (Linux; empty elsewhere).
fn cpu_ns() -> BTreeMap<String, u64> {
    let mut by = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return by };
    for t in tasks.flatten() {
        let (Ok(stat), Ok(name)) = (std::fs::read_to_string(t.path().join("schedstat")), std::fs::read_to_string(t.path().join("comm"))) else { continue };
        if let Some(ns) = stat.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()) {
            *by.entry(name.trim().to_owned()).or_default() += ns;
        }
    }
    by
}

/// The machine's CPU ticks from `/proc/stat` (Linux; None elsewhere): (stolen by the
/// hypervisor, all).
fn host_ticks() -> Option<(u64, u64)> {
    parse_ticks(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// [`host_ticks`] of the text of `/proc/stat`: its first line, `cpu` and the ticks spent in
/// user, nice, system, idle, iowait, irq, softirq and steal (guest time is inside user).
fn parse_ticks(stat: &str) -> Option<(u64, u64)> {
    let mut words = stat.lines().next()?.split_whitespace();
    if words.next()? != "cpu" {
        return None;
    }
    let ticks: Vec<u64> = words.take(8).map(|t| t.parse().ok()).collect::<Option<_>>()?;
    (ticks.len() == 8).then(|| (ticks[7], ticks.iter().sum()))
}

/// The share (%) of the machine's CPU time stolen since `before` ([`host_ticks`]).
fn steal_pct(before: Option<(u64, u64)>) -> Option<f64> {
    let ((s0, t0), (s1, t1)) = (before?, host_ticks()?);
    (t1 > t0).then(|| (s1.saturating_sub(s0)) as f64 * 100.0 / (t1 - t0) as f64)
}

/// The disk's own floor in the store's directory, before any load: a 16 KB write and its
/// `fdatasync`, one after another for `dur`; the latencies in ms. A durable read can be no
/// faster than this, and a slow sync here is one the server's commits meet too.
fn disk_syncs(dir: &std::path::Path, dur: Duration) -> std::io::Result<Vec<f64>> {
    use std::io::{Seek, Write};
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path)?;
    let block = vec![0x5a_u8; 16 * 1024];
    let (mut lat, until) = (Vec::new(), Instant::now() + dur);
    while Instant::now() < until {
        // Over the same 4 MB again and again, as a WAL that restarts from its beginning.
        f.seek(std::io::SeekFrom::Start((lat.len() as u64 % 256) * block.len() as u64))?;
        f.write_all(&block)?;
        let t = Instant::now();
        f.sync_data()?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    drop(f);
    std::fs::remove_file(&path)?;
    Ok(lat)
}

/// The host's pauses, before any load: one thread per core that only reads the clock for
/// `dur`; each stretch longer than 0.5 ms between two readings is a time that thread did not
/// run (the hypervisor or the kernel took the core). Returns the ms of pauses per second per
/// core and the longest pause in ms: stalls that no server on this machine can hide, and that
/// `/proc/stat`'s steal does not always show.
fn host_pauses(dur: Duration) -> (f64, f64) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let spinners: Vec<_> = (0..cores)
        .map(|_| {
            std::thread::spawn(move || {
                let (start, mut last, mut gaps) = (Instant::now(), Instant::now(), Vec::new());
                while last.duration_since(start) < dur {
                    let now = Instant::now();
                    let gap = now.duration_since(last);
                    if gap > Duration::from_micros(500) {
                        gaps.push(gap.as_secs_f64() * 1000.0);
                    }
                    last = now;
                }
                gaps
            })
        })
        .collect();
    let gaps: Vec<f64> = spinners.into_iter().flat_map(|s| s.join().unwrap_or_default()).collect();
    pause_summary(&gaps, dur.as_secs_f64() * cores as f64)
}

/// [`host_pauses`]' figures of the pauses (ms) seen over `core_secs` seconds of all cores.
fn pause_summary(gaps: &[f64], core_secs: f64) -> (f64, f64) {
    (gaps.iter().sum::<f64>() / core_secs.max(f64::EPSILON), gaps.iter().copied().fold(0.0, f64::max))
}

/// CPU µs per request between two [`cpu_ns`] readings: all threads, and the ledger's writer
/// and checkpointer. (Threads that ended between them are not counted.)
fn cpu_per_request(before: &BTreeMap<String, u64>, n: usize) -> String {
    let after = cpu_ns();
    let used = |pick: &dyn Fn(&str) -> bool| -> f64 {
        let ns: u64 = after.iter().filter(|(k, _)| pick(k)).map(|(k, v)| v.saturating_sub(before.get(k).copied().unwrap_or(0))).sum();
        ns as f64 / 1000.0 / n.max(1) as f64
    };
    format!("CPU µs/request {:.1} (ledger writer {:.1}, checkpointer {:.1})", used(&|_| true), used(&|k| k == "ledger-writer"), used(&|k| k == "ledger-checkpoi"))
}

fn summarise(what: &str, mut lat: Vec<f64>, secs: f64, fails: usize, cpu: &BTreeMap<String, u64>) -> Stats {
    let rate = lat.len() as f64 / secs;
    let p99 = percentile(&mut lat, 0.99);
    eprintln!(
        "{what}: {rate:.0}/s ({fails} failed), latency ms p50 {:.2}, p90 {:.2}, p99 {p99:.2}, p99.9 {:.2}, max {:.2}; {}",
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.9),
        percentile(&mut lat, 0.999),
        percentile(&mut lat, 1.0),
        cpu_per_request(cpu, lat.len() + fails)
    );
    Stats { rate, p99, fails, episodes: None }
}

/// Saturated: runs `make(i)` from `clients` concurrent clients for `secs`, each sending its next
/// request when the last is answered.
async fn saturated<F, Fut>(what: &str, clients: usize, secs: u64, make: F) -> anyhow::Result<Stats>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let make = Arc::new(make);
    let (cpu, start) = (cpu_ns(), Instant::now());
    let until = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut fails = 0usize;
            let mut i = c;
            while Instant::now() < until {
                let t = Instant::now();
                if make(i).await {
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                } else {
                    fails += 1;
                }
                i += clients;
            }
            (lat, fails)
        }));
    }
    let mut all = Vec::new();
    let mut fails = 0;
    for t in tasks {
        let (l, f) = t.await?;
        all.extend(l);
        fails += f;
    }
    Ok(summarise(what, all, start.elapsed().as_secs_f64(), fails, &cpu))
}

/// Paced: sends `make(i)` at `rate` per second for `secs` on a fixed schedule, each latency
/// counted from when its request was due. The schedule is kept by a thread of its own that
/// sleeps in steps of [`PACE_STEP`] (the runtime's timers tick by the millisecond, too coarse)
/// and queues each request as it falls due. As `wrk2` does, over a fixed number of connections:
/// `clients` senders take the queued requests in turn, so a request due while every sender is
/// busy waits in the queue, and that wait is part of its latency.
async fn paced<F, Fut>(what: &str, clients: usize, rate: f64, secs: u64, make: F) -> anyhow::Result<Stats>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let total = (rate * secs as f64) as usize;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let make = Arc::new(make);
    let (cpu, start) = (cpu_ns(), Instant::now());
    let mut senders = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (rx, make) = (rx.clone(), make.clone());
        senders.push(tokio::spawn(async move {
            let (mut lat, mut fails) = (Vec::with_capacity(total / clients + 1), 0usize);
            loop {
                let next = rx.lock().await.recv().await;
                let Some((i, at)) = next else { break };
                if make(i).await {
                    lat.push((at.duration_since(start).as_secs_f64() * 1000.0, at.elapsed().as_secs_f64() * 1000.0));
                } else {
                    fails += 1;
                }
            }
            (lat, fails)
        }));
    }
    let pacer = std::thread::spawn(move || {
        let mut sent = 0usize;
        while sent < total {
            let due = ((start.elapsed().as_secs_f64() * rate) as usize + 1).min(total);
            while sent < due {
                let at = start + Duration::from_secs_f64(sent as f64 / rate);
                if tx.send((sent, at)).is_err() {
                    return;
                }
                sent += 1;
            }
            std::thread::sleep(PACE_STEP);
        }
    });
    let (mut lat, mut fails) = (Vec::with_capacity(total), 0);
    for s in senders {
        let (l, f) = s.await?;
        lat.extend(l);
        fails += f;
    }
    pacer.join().map_err(|_| anyhow::anyhow!("pacer panicked"))?;
    let mut stats = summarise(what, lat.iter().map(|t| t.1).collect(), start.elapsed().as_secs_f64(), fails, &cpu);
    let eps = episodes(&lat, stats.p99);
    eprintln!(
        "  over its p99: {} requests in {} episodes; the largest began {:.0} ms in, lasted {:.1} ms, held {:.0}% of them, slowest {:.2} ms",
        eps.over,
        eps.count,
        eps.worst_at_ms,
        eps.worst_span_ms,
        eps.worst_share * 100.0,
        eps.worst_ms
    );
    stats.episodes = Some(eps);
    Ok(stats)
}

/// The load of `mamori bench vault`.
pub struct Load {
    /// Seconds of each phase.
    pub secs: u64,
    /// Connections of the saturated phases, each sending its next request when the last is
    /// answered.
    pub clients: usize,
    /// Connections of the paced phases. Requests come on a schedule, as from a population of
    /// operators at their own terminals, and one due while every connection is busy waits in
    /// the generator, that wait counted in its latency: a queue that many independent clients
    /// would not have. At 10,000/s, 32 connections are all busy once the mean latency passes
    /// 3.2 ms, so after any stall of the server the generator itself held the backlog. In four
    /// interleaved pairs of runs on one host (2026-12-08) the paced read p99 was 11.4, 7.4,
    /// 48.5 and 10.4 ms with 128 connections and 25.9, 56.4, 45.6 and 17.9 ms with 32; both
    /// still had stalls of ~100 ms, which more connections do not prevent.
    pub connections: usize,
    /// Reveals per second of the paced reads.
    pub read_rate: f64,
    /// Records per second of the paced writes.
    pub write_rate: f64,
}

/// Runs on SQLite in a fresh directory, or on the PostgreSQL database of `database_url`, which
/// must be empty (the bench makes its own users, business and records).
pub async fn vault(load: Load, database_url: Option<String>) -> anyhow::Result<()> {
    let Load { secs, clients, connections, read_rate, write_rate } = load;
    anyhow::ensure!(read_rate >= 1.0 && write_rate >= 1.0, "the paced rates must be at least 1 per second");
    anyhow::ensure!(clients >= 1 && connections >= 1, "--clients and --connections must be at least 1");
    let dir = std::env::temp_dir().join(format!("mamori-bench-vault-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let on_sqlite = database_url.is_none();
    let store = if on_sqlite { "sqlite" } else { "postgres" };
    let mut options = OpenOptions::new(&dir);
    options.database_url = database_url;
    let app = Mamori::open(options).await.map_err(e)?;
    let (users,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users").fetch_one(&app.db.pool).await?;
    anyhow::ensure!(users == 0, "bench vault needs an empty database: this one has {users} users");
    eprintln!("store under test: {store}");
    // The machine's floor, measured in this run before the load (blocking work, off the runtime).
    let (mut syncs, pauses) = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || disk_syncs(&dir, Duration::from_secs(2)).map(|s| (s, host_pauses(Duration::from_secs(2))))).await??
    };
    let (disk_p50, disk_p99, disk_max) = (percentile(&mut syncs, 0.5), percentile(&mut syncs, 0.99), percentile(&mut syncs, 1.0));
    eprintln!(
        "machine floor: disk fdatasync of 16 KB ms p50 {disk_p50:.2}, p99 {disk_p99:.2}, max {disk_max:.2} ({} syncs); host pauses {:.1} ms/s per core, longest {:.2} ms",
        syncs.len(),
        pauses.0,
        pauses.1
    );
    app.create_user(None, "admin", "admin", &[Role::Admin], "correct horse battery staple 7").await.map_err(e)?;
    app.create_user(None, "op", "op", &[Role::Operator], "correct horse battery staple 8").await.map_err(e)?;
    let admin = app.create_token(None, "admin", "bench").await.map_err(e)?;
    let op = app.create_token(None, "op", "bench").await.map_err(e)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    let state = mamori_server::AppState::new(app.clone(), false);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = mamori_server::serve(listener, state, async {
            let _ = stop_rx.await;
        })
        .await;
    });
    let http = reqwest::Client::builder().build()?;
    let post = |path: &str, token: &str, body: serde_json::Value| {
        let (http, url, token) = (http.clone(), format!("{base}{path}"), token.to_owned());
        async move { http.post(url).bearer_auth(token).json(&body).send().await }
    };
    for (path, body) in [
        ("/api/v1/zones", json!({"code": "HS", "name": "HS", "level": "high"})),
        ("/api/v1/clients", json!({"code": "CARDCO", "name": "カード会社"})),
        ("/api/v1/businesses", json!({"code": "CARD", "name": "カード申込", "client": "CARDCO", "zone": "HS"})),
        ("/api/v1/people", json!({"employee_no": "E1", "name": "op", "kind": "employee"})),
    ] {
        anyhow::ensure!(post(path, &admin, body).await?.status().is_success(), "setup {path}");
    }
    let r = post(
        "/api/v1/vault/CARD/fields",
        &admin,
        json!([{"name": "app_no", "label": "申込番号", "sensitivity": "normal"}, {"name": "name", "label": "氏名", "sensitivity": "personal"},
               {"name": "phone", "label": "電話", "sensitivity": "personal"}, {"name": "card", "label": "カード番号", "sensitivity": "card_number"}]),
    )
    .await?;
    anyhow::ensure!(r.status().is_success(), "fields");
    // A terminal registered to the business and its room (DATA-7).
    let r = post("/api/v1/terminals", &admin, json!({"code": "T1", "name": "端末1", "business": "CARD"})).await?;
    anyhow::ensure!(r.status().is_success(), "terminal");
    let terminal = r.json::<serde_json::Value>().await?["device_key"].as_str().unwrap_or_default().to_owned();
    // The operator holds the business and is inside its room.
    sqlx::query("UPDATE users SET person_id = 1 WHERE login = 'op'").execute(&app.db.pool).await?;
    sqlx::query("INSERT INTO vault_holders (business_id, user_id, approved_by, approved_at) VALUES (1, 2, 1, 0)").execute(&app.db.pool).await?;
    sqlx::query("INSERT INTO presence (person_id, zone_id, since) VALUES (1, 1, 0)").execute(&app.db.pool).await?;

    // The ledger signs checkpoints every second while the load runs, as `serve` does.
    let (cp_stop, cp_rx) = tokio::sync::watch::channel(false);
    let cp = tokio::spawn(app.ledger.clone().run_checkpointer(Duration::from_secs(1), cp_rx));
    // Per request the client does only what a client must (`bench_http`): each request's bytes
    // are made before it is due; each answer is read whole, and a reveal must return the value.
    let client = crate::bench_http::Client::new(addr);
    let auth = format!("Bearer {op}");
    // The headers of every vault request: the operator's token and the terminal's key.
    fn headers<'a>(auth: &'a str, terminal: &'a str) -> [(&'static str, &'a str); 3] {
        [("Authorization", auth), ("x-mamori-terminal", terminal), ("Content-Type", "application/json")]
    }
    let write = {
        let (client, auth, terminal) = (client.clone(), auth.clone(), terminal.clone());
        move |i: usize| {
            let body = format!(r#"{{"values":{{"app_no":"A{i:08}","name":"顧客 太郎","phone":"090-1234-5678","card":"4111 1111 1111 1234"}}}}"#);
            let req = crate::bench_http::request("POST", addr, "/api/v1/vault/CARD/records", &headers(&auth, &terminal), body.as_bytes());
            let client = client.clone();
            async move { client.send(&req, |b| b.starts_with(b"{")).await }
        }
    };

    // The ceiling: the same load on the liveness route (HTTP, routing and headers only).
    let health = {
        let (client, req) = (client.clone(), Arc::new(crate::bench_http::request("GET", addr, "/api/v1/health", &[], b"")));
        move |_: usize| {
            let (client, req) = (client.clone(), req.clone());
            async move { client.send(&req, |_| true).await }
        }
    };
    let h = saturated("HTTP baseline (health)", clients, secs.min(3), health.clone()).await?;
    let w = saturated(&format!("writes, saturated ({clients} clients)"), clients, secs, write.clone()).await?;
    let w_paced = {
        let offset = 100_000_000; // application numbers of their own
        paced(&format!("writes, paced at {write_rate}/s ({connections} connections)"), connections, write_rate, secs, move |i| write(offset + i)).await?
    };
    let uids: Vec<(String,)> = sqlx::query_as("SELECT uid FROM vault_records ORDER BY id LIMIT 10000").fetch_all(&app.db.pool).await?;
    anyhow::ensure!(!uids.is_empty(), "no records written");
    // Reads: reveal one sealed field.
    const REVEAL: &str = r#"{"field":"phone","purpose":"照合"}"#;
    let reveals: Arc<Vec<Vec<u8>>> = Arc::new(
        uids.iter().map(|u| crate::bench_http::request("POST", addr, &format!("/api/v1/vault/CARD/records/{}/reveal", u.0), &headers(&auth, &terminal), REVEAL.as_bytes())).collect(),
    );
    let read = {
        let client = client.clone();
        move |i: usize| {
            let (client, reveals) = (client.clone(), reveals.clone());
            async move { client.send(&reveals[i % reveals.len()], |b| b.windows(13).any(|w| w == b"090-1234-5678")).await }
        }
    };
    let r = saturated(&format!("reads, saturated ({clients} clients)"), clients, secs, read.clone()).await?;
    // The floor of a paced p99 on this machine now: the liveness route paced as the reads are
    // (same rate, connections and pacer, just before them), whose p99 is what the host, the
    // pacer and the HTTP stack give a request that does nothing.
    let floor = paced(&format!("HTTP baseline (health), paced at {read_rate}/s ({connections} connections)"), connections, read_rate, secs, health).await?;
    let ticks = host_ticks();
    app.ledger.disk_times().take();
    let phase = Instant::now();
    let r_paced = paced(&format!("reads, paced at {read_rate}/s ({connections} connections)"), connections, read_rate, secs, read).await?;
    let stalls = app.ledger.disk_times().take();
    let writer = WriterTime::of(&stalls, phase.elapsed());
    let steal = steal_pct(ticks);
    if let Some(st) = steal {
        eprintln!("CPU time stolen from this machine during the paced reads: {st:.1}%");
    }
    let slow = mamori_core::ledger::DiskTimes::SLOW.as_millis();
    eprintln!(
        "the store's disk during the paced reads: longest commit {:.1} ms ({} over {slow} ms), longest WAL checkpoint {:.1} ms ({} over {slow} ms)",
        stalls.commit_ms_max, stalls.commits_slow, stalls.checkpoint_ms_max, stalls.checkpoints_slow
    );
    eprintln!(
        "the ledger's writer during the paced reads: {:.0} commits/s of {:.1} appends; of its time {:.0}% in COMMIT (WAL written and fsynced), {:.0}% waiting for its turn to write (SQLite: checkpoints), {:.0}% in its statements",
        writer.commits_per_s,
        writer.batch,
        writer.commit_pct,
        writer.turn_pct,
        writer.work_pct
    );
    let _ = stop_tx.send(());
    let _ = cp_stop.send(true);
    cp.await?;
    let size = |f: &str| std::fs::metadata(dir.join(f)).map(|m| m.len() / 1_000_000).unwrap_or(0);
    if on_sqlite {
        eprintln!("store: {} MB, WAL {} MB", size("mamori.db"), size("mamori.db-wal"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let fails = w.fails + w_paced.fails + r.fails + r_paced.fails + floor.fails;
    let eps = r_paced.episodes.unwrap_or_default();
    let r2 = |x: f64| (x * 100.0).round() / 100.0;
    println!(
        "{}",
        json!({"bench": "vault", "store": store, "clients": clients, "connections": connections,
               "read_per_s": r2(r.rate), "read_ms_p99": r2(r_paced.p99), "write_per_s": r2(w.rate), "write_ms_p99": r2(w_paced.p99),
               "read_paced_per_s": r2(r_paced.rate), "write_paced_per_s": r2(w_paced.rate), "read_rate": read_rate, "write_rate": write_rate,
               "read_ms_p99_saturated": r2(r.p99), "write_ms_p99_saturated": r2(w.p99),
               "http_baseline_per_s": r2(h.rate), "read_ms_p99_floor": r2(floor.p99), "read_vs_baseline": r2(r.rate / h.rate.max(1.0)), "write_vs_baseline": r2(w.rate / h.rate.max(1.0)),
               "read_paced_steal_pct": steal.map(r2), "read_paced_commit_ms_max": r2(stalls.commit_ms_max), "read_paced_checkpoint_ms_max": r2(stalls.checkpoint_ms_max),
               "read_paced_batch": r2(writer.batch), "read_paced_writer_commit_pct": r2(writer.commit_pct), "read_paced_writer_turn_pct": r2(writer.turn_pct),
               "read_paced_writer_work_pct": r2(writer.work_pct),
               "read_p99_episodes": eps.count, "read_p99_worst_episode_share": r2(eps.worst_share), "disk_fsync_ms_p99": r2(disk_p99), "disk_fsync_ms_max": r2(disk_max),
               "host_pause_ms_per_s": r2(pauses.0), "host_pause_ms_max": r2(pauses.1), "failed": fails})
    );
    anyhow::ensure!(fails == 0, "{fails} requests failed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_over_the_p99_are_grouped_into_episodes_by_when_they_were_due() {
        // A stall at 100 ms (its backlog over 30 ms), a lone slow request at 500 ms, and
        // requests under the p99 (2 ms) in between, which split nothing.
        let mut timed: Vec<(f64, f64)> = (0..1000).map(|i| (i as f64, 1.0)).collect();
        for (k, due) in (100..=130).step_by(2).enumerate() {
            timed[due].1 = 40.0 - k as f64;
        }
        timed[500].1 = 9.0;
        timed.reverse();
        let e = episodes(&timed, 2.0);
        assert_eq!((e.over, e.count), (17, 2));
        assert_eq!((e.worst_at_ms, e.worst_span_ms, e.worst_ms), (100.0, 30.0, 40.0));
        assert!((e.worst_share - 16.0 / 17.0).abs() < 1e-9);
        // Over a p99 that nothing exceeds: no episode.
        assert_eq!(episodes(&timed, 50.0), Episodes::default());
        // Two slow requests farther apart than the gap are two episodes.
        assert_eq!(episodes(&[(0.0, 9.0), (EPISODE_GAP_MS + 0.5, 9.0)], 2.0).count, 2);
    }

    #[test]
    fn the_writer_time_is_shared_out_over_the_phase() {
        let s = mamori_core::ledger::DiskStalls { batches: 500, appends: 5_000, turn_ms: 150.0, work_ms: 100.0, commit_ms: 500.0, ..Default::default() };
        let w = WriterTime::of(&s, Duration::from_secs(1));
        assert_eq!(w, WriterTime { commits_per_s: 500.0, batch: 10.0, commit_pct: 50.0, turn_pct: 15.0, work_pct: 10.0 });
        // A phase without a batch divides by nothing.
        assert_eq!(WriterTime::of(&Default::default(), Duration::from_secs(2)), WriterTime::default());
    }

    #[test]
    fn steal_is_read_from_the_first_line_of_proc_stat() {
        let stat = "cpu  323804 0 79750 175376 16323 0 14101 15320 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        assert_eq!(parse_ticks(stat), Some((15320, 323804 + 79750 + 175376 + 16323 + 14101 + 15320)));
        // An older kernel's line without steal, or another file, gives nothing rather than a guess.
        assert_eq!(parse_ticks("cpu  1 2 3 4 5 6 7\n"), None);
        assert_eq!(parse_ticks("intr 1 2 3 4 5 6 7 8 9\n"), None);
        assert_eq!(parse_ticks(""), None);
    }

    #[test]
    fn host_pauses_are_summed_per_core_second_and_the_longest_kept() {
        // Two cores for two seconds (4 core-seconds) with pauses of 1, 3 and 6 ms.
        assert_eq!(pause_summary(&[1.0, 3.0, 6.0], 4.0), (2.5, 6.0));
        assert_eq!(pause_summary(&[], 4.0), (0.0, 0.0));
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn the_disk_probe_syncs_and_leaves_nothing_behind() {
        let dir = std::env::temp_dir().join(format!("mamori-disk-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lat = disk_syncs(&dir, Duration::from_millis(50)).unwrap();
        assert!(!lat.is_empty() && lat.iter().all(|l| *l >= 0.0));
        assert!(std::fs::read_dir(&dir).unwrap().next().is_none(), "the probe file is removed");
        std::fs::remove_dir(&dir).unwrap();
    }
}
