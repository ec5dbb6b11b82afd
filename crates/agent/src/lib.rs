//! mamori's door agent. It runs next to the doors, speaks OSDP v2.2 with the secure channel to
//! the readers ([`osdp_link`], on the pure-Rust `osdp` crate), asks the server for each
//! decision, pulses the lock relay, and reports door sensors, people counters and reader
//! supervision. When the server is unreachable it decides from a cached copy of the rules
//! (the same code as the server: [`mamori_core::doors::Rules`]) for at most `cache_ttl`,
//! queues what happened, and sends it when the link returns; offline decisions are marked as
//! such in the ledger. Revocations arrive by push (server-sent events), not by polling.

pub mod osdp_link;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use mamori_core::doors::{CardNumber, DoorDecision, DoorPolicy, Facts, Presented, ReaderMode, Rules, Target};
use osdp_link::{AcuLink, ReaderEvent};
use serde_json::{json, Value};
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("server: {0}")]
    Server(String),
}

/// How to reach a reader.
#[derive(Debug, Clone)]
pub enum Connect {
    /// OSDP over TCP (a terminal server, or the simulator).
    Tcp(String),
    /// RS-485 serial port at a baud rate.
    Serial { path: String, baud: u32 },
}

impl Connect {
    /// `tcp:HOST:PORT` or `serial:/dev/ttyUSB0@9600`.
    pub fn parse(s: &str) -> Result<Self, AgentError> {
        if let Some(a) = s.strip_prefix("tcp:") {
            return Ok(Self::Tcp(a.to_owned()));
        }
        if let Some(p) = s.strip_prefix("serial:") {
            let (path, baud) = p.split_once('@').unwrap_or((p, "9600"));
            let baud = baud.parse().map_err(|_| AgentError::Config(format!("bad baud rate in {s}")))?;
            return Ok(Self::Serial { path: path.to_owned(), baud });
        }
        Err(AgentError::Config(format!("{s}: expected tcp:HOST:PORT or serial:PATH@BAUD")))
    }
}

#[derive(Clone)]
pub struct ReaderConfig {
    /// The reader's code in mamori.
    pub code: String,
    pub connect: Connect,
    pub address: u8,
    /// Secure-channel base key of this reader.
    pub scbk: [u8; 16],
    /// Output driving the lock relay.
    pub relay_output: u8,
}

impl std::fmt::Debug for ReaderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("ReaderConfig").field("code", &self.code).field("connect", &self.connect).field("address", &self.address).finish()
    }
}

#[derive(Clone)]
pub struct AgentConfig {
    pub server: String,
    pub token: String,
    pub readers: Vec<ReaderConfig>,
    /// How long cached rules may decide offline (default 5 minutes).
    pub cache_ttl: Duration,
    pub unlock_ms: u32,
    /// How long to wait for the server before deciding offline.
    pub decide_timeout: Duration,
    /// Time between polls of each reader.
    pub poll_interval: Duration,
}

impl AgentConfig {
    pub fn new(server: &str, token: &str, readers: Vec<ReaderConfig>) -> Self {
        Self {
            server: server.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            readers,
            cache_ttl: Duration::from_secs(300),
            unlock_ms: 5000,
            decide_timeout: Duration::from_millis(1500),
            poll_interval: Duration::from_millis(5),
        }
    }
}

/// A lock command the agent gave, for tests and the benchmark.
#[derive(Debug, Clone)]
pub struct Unlocked {
    pub reader: String,
    pub at: Instant,
    pub decision: DoorDecision,
    pub offline: bool,
}

struct Cache {
    rules: Arc<Rules>,
    fetched: Instant,
}

struct Shared {
    cfg: AgentConfig,
    http: reqwest::Client,
    policy: DoorPolicy,
    cache: RwLock<Option<Cache>>,
    /// Cards revoked by push since the cache was fetched (applied at once, without copying
    /// the cached rules); dropped when fetched rules agree.
    revoked: RwLock<std::collections::HashSet<String>>,
    queue: Mutex<Vec<Value>>,
    online: AtomicBool,
    /// Presence the agent has seen (person → zone, ms), for offline anti-passback and interlock.
    presence: Mutex<HashMap<i64, (i64, i64)>>,
    decisions: AtomicU64,
    unlocked: mpsc::UnboundedSender<Unlocked>,
}

/// A running agent.
pub struct AgentHandle {
    shared: Arc<Shared>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub unlocked: mpsc::UnboundedReceiver<Unlocked>,
}

impl AgentHandle {
    /// Whether the cached rules hold `card` as active (None: unknown card or no cache).
    pub fn card_active(&self, card: &str) -> Option<bool> {
        if self.shared.revoked.read().is_ok_and(|r| r.contains(card)) {
            return Some(false);
        }
        let c = self.shared.cache.read().ok()?;
        c.as_ref()?.rules.cards.get(card).map(|x| x.active)
    }
    pub fn rules_version(&self) -> u64 {
        self.shared.cache.read().ok().and_then(|c| c.as_ref().map(|c| c.rules.version)).unwrap_or(0)
    }
    pub fn queued(&self) -> usize {
        self.shared.queue.lock().map(|q| q.len()).unwrap_or(0)
    }
    pub fn online(&self) -> bool {
        self.shared.online.load(Ordering::SeqCst)
    }
    pub fn decisions(&self) -> u64 {
        self.shared.decisions.load(Ordering::Relaxed)
    }
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Starts the agent: the rules sync and push subscription, the report flusher, and one bus
/// thread per reader.
pub fn start(cfg: AgentConfig) -> Result<AgentHandle, AgentError> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(500))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| AgentError::Config(e.to_string()))?;
    let policy = DoorPolicy::new().map_err(|e| AgentError::Config(e.to_string()))?;
    let (utx, urx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        http,
        policy,
        cache: RwLock::new(None),
        revoked: RwLock::new(std::collections::HashSet::new()),
        queue: Mutex::new(Vec::new()),
        online: AtomicBool::new(false),
        presence: Mutex::new(HashMap::new()),
        decisions: AtomicU64::new(0),
        unlocked: utx,
    });
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = vec![
        tokio::spawn(sync_loop(shared.clone(), stop_rx.clone())),
        tokio::spawn(flush_loop(shared.clone(), stop_rx.clone())),
    ];
    for r in cfg.readers.clone() {
        let (ev_tx, ev_rx) = mpsc::unbounded_channel::<BusEvent>();
        let (cmd_tx, cmd_rx) = std::sync::mpsc::channel::<BusCommand>();
        let stop_flag = stop_rx.clone();
        let rc = r.clone();
        let poll = cfg.poll_interval;
        std::thread::Builder::new()
            .name(format!("osdp-{}", r.code))
            .spawn(move || bus_thread(rc, poll, ev_tx, cmd_rx, stop_flag))
            .map_err(|e| AgentError::Config(e.to_string()))?;
        tasks.push(tokio::spawn(reader_loop(shared.clone(), r, ev_rx, cmd_tx)));
    }
    Ok(AgentHandle { shared, stop, tasks, unlocked: urx })
}

// ---- the bus thread: OSDP polling ------------------------------------------------------------

enum BusEvent {
    Reader(ReaderEvent),
    Online(bool),
}

enum BusCommand {
    Pulse { output: u8, ms: u32 },
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

fn open(c: &Connect) -> std::io::Result<Box<dyn Stream>> {
    match c {
        Connect::Tcp(a) => {
            let s = std::net::TcpStream::connect(a)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_millis(2)))?;
            Ok(Box::new(s))
        }
        Connect::Serial { path, .. } => {
            // The RS-485 adapter is configured for the line (e.g. `stty -F PATH 9600 raw`);
            // the agent reads and writes the device like a stream.
            let f = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
            Ok(Box::new(f))
        }
    }
}

fn bus_thread(
    r: ReaderConfig,
    poll: Duration,
    ev: mpsc::UnboundedSender<BusEvent>,
    cmds: std::sync::mpsc::Receiver<BusCommand>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut online = false;
    let mut failures = 0u32;
    while !*stop.borrow() {
        let io = match open(&r.connect) {
            Ok(io) => io,
            Err(e) => {
                tracing::debug!(reader = r.code, error = %e, "reader unreachable");
                if online || failures == 0 {
                    let _ = ev.send(BusEvent::Online(false));
                    online = false;
                }
                failures += 1;
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        let mut link = AcuLink::new(io, r.address, r.scbk);
        if let Err(e) = link.start() {
            tracing::warn!(reader = r.code, error = %e, "secure channel not established");
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        failures = 0;
        if !online {
            online = true;
            let _ = ev.send(BusEvent::Online(true));
        }
        let mut errors = 0;
        while !*stop.borrow() {
            while let Ok(BusCommand::Pulse { output, ms }) = cmds.try_recv() {
                if let Err(e) = link.pulse_output(output, ms) {
                    tracing::warn!(reader = r.code, error = %e, "lock command failed");
                }
            }
            if !link.is_secure() {
                break;
            }
            match link.poll() {
                Ok(Some(e)) => {
                    errors = 0;
                    let _ = ev.send(BusEvent::Reader(e));
                    continue;
                }
                Ok(None) => errors = 0,
                Err(e) => {
                    // Bad CRC, wrong sequence, a replayed or forged secure message: refused.
                    tracing::warn!(reader = r.code, error = %e, "bad reply from reader");
                    errors += 1;
                    if errors >= 3 || !link.is_secure() {
                        break;
                    }
                }
            }
            std::thread::sleep(poll);
        }
        if online && !*stop.borrow() {
            online = false;
            let _ = ev.send(BusEvent::Online(false));
        }
    }
}

// ---- decisions -------------------------------------------------------------------------------

fn now() -> DateTime<Utc> {
    Utc::now()
}

struct Pending {
    presented: Presented,
    since: Instant,
    keys: Vec<u8>,
}

struct DoorSensor {
    open_since: Option<Instant>,
    held_reported: bool,
    counter: bool,
    last_unlock: Option<Instant>,
}

async fn reader_loop(
    sh: Arc<Shared>,
    r: ReaderConfig,
    mut ev: mpsc::UnboundedReceiver<BusEvent>,
    cmds: std::sync::mpsc::Sender<BusCommand>,
) {
    let mut pending: Option<Pending> = None;
    let mut sensor = DoorSensor { open_since: None, held_reported: false, counter: false, last_unlock: None };
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        let e = tokio::select! {
            e = ev.recv() => match e { Some(e) => e, None => return },
            _ = tick.tick() => {
                check_held(&sh, &r, &mut sensor);
                if pending.as_ref().is_some_and(|p| p.since.elapsed() > Duration::from_secs(10)) {
                    // The second factor never came: decide with what there is (denied).
                    if let Some(p) = pending.take() {
                        decide_and_act(&sh, &r, p.presented, &cmds, &mut sensor).await;
                    }
                }
                continue;
            }
        };
        match e {
            BusEvent::Online(on) => {
                queue(&sh, json!({"type": "reader", "at": now(), "reader": r.code, "state": if on { "online" } else { "offline" }}));
            }
            BusEvent::Reader(ReaderEvent::Card { reader_no: 0, bits, data }) => {
                let card = match CardNumber::from_raw_bits(bits, &data) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::info!(reader = r.code, error = %e, "unreadable card");
                        continue;
                    }
                };
                let presented = Presented { card: Some(card), palm: None, pin: None };
                match reader_mode(&sh, &r.code) {
                    ReaderMode::Card => decide_and_act(&sh, &r, presented, &cmds, &mut sensor).await,
                    _ => pending = Some(Pending { presented, since: Instant::now(), keys: Vec::new() }),
                }
            }
            BusEvent::Reader(ReaderEvent::Card { data, .. }) => {
                // The palm-vein unit reports the matched enrolment reference.
                if let Some(mut p) = pending.take() {
                    p.presented.palm = Some(hex::encode_upper(&data));
                    decide_and_act(&sh, &r, p.presented, &cmds, &mut sensor).await;
                }
            }
            BusEvent::Reader(ReaderEvent::Keys { keys, .. }) => {
                if let Some(p) = pending.as_mut() {
                    for k in keys {
                        if k == b'#' || k == 0x0D {
                            let mut p = pending.take().unwrap_or_else(|| Pending { presented: Presented::default(), since: Instant::now(), keys: vec![] });
                            p.presented.pin = Some(String::from_utf8_lossy(&p.keys).into_owned());
                            zeroize::Zeroize::zeroize(&mut p.keys);
                            decide_and_act(&sh, &r, p.presented, &cmds, &mut sensor).await;
                            break;
                        } else if k.is_ascii_digit() && p.keys.len() < 12 {
                            p.keys.push(k);
                        }
                    }
                }
            }
            BusEvent::Reader(ReaderEvent::Inputs(inputs)) => on_inputs(&sh, &r, &inputs, &mut sensor),
            BusEvent::Reader(ReaderEvent::Local { tamper, .. }) => {
                if tamper {
                    queue(&sh, json!({"type": "reader", "at": now(), "reader": r.code, "state": "tamper"}));
                }
            }
        }
    }
}

fn reader_mode(sh: &Shared, code: &str) -> ReaderMode {
    sh.cache
        .read()
        .ok()
        .and_then(|c| c.as_ref().and_then(|c| c.rules.readers.get(code).map(|r| r.mode)))
        .unwrap_or(ReaderMode::Card)
}

fn door_of(sh: &Shared, reader: &str) -> Option<(String, i64)> {
    let c = sh.cache.read().ok()?;
    let rules = &c.as_ref()?.rules;
    let d = rules.doors.get(&rules.readers.get(reader)?.door)?;
    Some((d.code.clone(), d.held_open_secs))
}

fn on_inputs(sh: &Shared, r: &ReaderConfig, inputs: &[u8], s: &mut DoorSensor) {
    let Some((door, _)) = door_of(sh, &r.code) else { return };
    let open = inputs.first().is_some_and(|v| *v != 0);
    let counter = inputs.get(1).is_some_and(|v| *v != 0);
    if open && s.open_since.is_none() {
        s.open_since = Some(Instant::now());
        s.held_reported = false;
        let granted = s.last_unlock.is_some_and(|t| t.elapsed() < Duration::from_millis(u64::from(sh.cfg.unlock_ms)));
        queue(sh, json!({"type": "door", "at": now(), "door": door, "state": if granted { "opened" } else { "forced" }}));
    } else if !open && s.open_since.is_some() {
        s.open_since = None;
        queue(sh, json!({"type": "door", "at": now(), "door": door, "state": "closed"}));
    }
    if counter && !s.counter {
        queue(sh, json!({"type": "passage", "at": now(), "door": door, "count": 1}));
    }
    s.counter = counter;
}

fn check_held(sh: &Shared, r: &ReaderConfig, s: &mut DoorSensor) {
    let Some((door, held)) = door_of(sh, &r.code) else { return };
    if let Some(t) = s.open_since {
        if !s.held_reported && t.elapsed() > Duration::from_secs(held.max(1) as u64) {
            s.held_reported = true;
            queue(sh, json!({"type": "door", "at": now(), "door": door, "state": "held_open"}));
        }
    }
}

fn queue(sh: &Shared, v: Value) {
    if let Ok(mut q) = sh.queue.lock() {
        q.push(v);
    }
}

async fn decide_and_act(sh: &Arc<Shared>, r: &ReaderConfig, presented: Presented, cmds: &std::sync::mpsc::Sender<BusCommand>, s: &mut DoorSensor) {
    let (decision, offline) = decide(sh, &r.code, presented).await;
    sh.decisions.fetch_add(1, Ordering::Relaxed);
    if decision.allowed {
        let _ = cmds.send(BusCommand::Pulse { output: r.relay_output, ms: sh.cfg.unlock_ms });
        s.last_unlock = Some(Instant::now());
        if let (Some(p), true) = (decision.person, decision.moves) {
            if let Ok(mut pr) = sh.presence.lock() {
                pr.insert(p, (decision.to_zone, now().timestamp_millis()));
            }
        }
    }
    let _ = sh.unlocked.send(Unlocked { reader: r.code.clone(), at: Instant::now(), decision, offline });
}

/// Online first; offline from the cache when the server does not answer in time.
async fn decide(sh: &Arc<Shared>, reader: &str, presented: Presented) -> (DoorDecision, bool) {
    let body = json!({"reader": reader, "card": presented.card, "palm": presented.palm, "pin": presented.pin});
    let url = format!("{}/api/v1/doors/decide", sh.cfg.server);
    let resp = sh.http.post(&url).bearer_auth(&sh.cfg.token).timeout(sh.cfg.decide_timeout).json(&body).send().await;
    if let Ok(resp) = resp {
        if resp.status().is_success() {
            if let Ok(d) = resp.json::<DoorDecision>().await {
                sh.online.store(true, Ordering::SeqCst);
                return (d, false);
            }
        } else if resp.status().is_client_error() {
            tracing::warn!(status = %resp.status(), "server refused the decision request");
        }
    }
    sh.online.store(false, Ordering::SeqCst);
    let at = now();
    let d = decide_offline(sh, reader, &presented, at);
    queue(sh, json!({"type": "offline_decision", "at": at, "decision": d}));
    (d, true)
}

fn decide_offline(sh: &Shared, reader: &str, presented: &Presented, at: DateTime<Utc>) -> DoorDecision {
    let deny = |rule: &str| DoorDecision {
        allowed: false,
        rule: rule.to_owned(),
        action: "door.present".into(),
        person: None,
        credential: None,
        door: None,
        reader: None,
        cabinet: None,
        from_zone: 0,
        to_zone: 0,
        apb_violation: false,
        visitor: false,
        moves: false,
    };
    let Ok(cache) = sh.cache.read() else { return deny("offline-no-rules") };
    let Some(c) = cache.as_ref() else { return deny("offline-no-rules") };
    if c.fetched.elapsed() > sh.cfg.cache_ttl {
        let mut d = deny("offline-cache-expired");
        if let Some(r) = c.rules.readers.get(reader) {
            d.reader = Some(r.id);
            d.door = Some(r.door);
        }
        return d;
    }
    if let Some(card) = presented.card.as_ref().filter(|k| sh.revoked.read().is_ok_and(|r| r.contains(k.key()))) {
        return c.rules.revoked_decision(Target::Reader(reader), card.key()).unwrap_or_else(|_| deny("credential-revoked"));
    }
    let seen = |person| Facts { presence: sh.presence.lock().ok().and_then(|p| p.get(&person).copied()), host_escorting: false };
    c.rules
        .decide_presented(&sh.policy, Target::Reader(reader), presented, seen, at)
        .unwrap_or_else(|e| deny(&format!("offline-error: {e}")))
}

// ---- rules sync, push, flush -----------------------------------------------------------------

async fn fetch_rules(sh: &Shared) -> Result<(), AgentError> {
    let url = format!("{}/api/v1/doors/rules", sh.cfg.server);
    let resp = sh.http.get(&url).bearer_auth(&sh.cfg.token).timeout(Duration::from_secs(30)).send().await.map_err(|e| AgentError::Server(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(AgentError::Server(format!("rules: {}", resp.status())));
    }
    let rules: Rules = resp.json().await.map_err(|e| AgentError::Server(e.to_string()))?;
    if let Ok(mut c) = sh.cache.write() {
        let newer = c.as_ref().is_none_or(|c| c.rules.version <= rules.version);
        if newer {
            if let Ok(mut rev) = sh.revoked.write() {
                rev.retain(|k| rules.cards.get(k).is_some_and(|x| x.active));
            }
            *c = Some(Cache { rules: Arc::new(rules), fetched: Instant::now() });
        } else if let Some(c) = c.as_mut() {
            c.fetched = Instant::now();
        }
    }
    Ok(())
}

fn apply_revoke(sh: &Shared, cards: &[String]) {
    if let Ok(mut r) = sh.revoked.write() {
        r.extend(cards.iter().cloned());
    }
}

async fn sync_loop(sh: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let url = format!("{}/api/v1/doors/stream", sh.cfg.server);
        match sh.http.get(&url).bearer_auth(&sh.cfg.token).send().await {
            Ok(resp) if resp.status().is_success() => {
                sh.online.store(true, Ordering::SeqCst);
                if let Err(e) = fetch_rules(&sh).await {
                    tracing::warn!(error = %e, "rules fetch failed");
                }
                let mut body = resp.bytes_stream();
                let mut buf = String::new();
                loop {
                    let chunk = tokio::select! {
                        c = body.next() => c,
                        _ = stop.changed() => return,
                    };
                    let Some(Ok(chunk)) = chunk else { break };
                    buf.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(end) = buf.find("\n\n") {
                        let msg: String = buf.drain(..end + 2).collect();
                        let data: String = msg.lines().filter_map(|l| l.strip_prefix("data:")).map(str::trim).collect();
                        let Ok(v) = serde_json::from_str::<Value>(&data) else { continue };
                        match v["type"].as_str() {
                            Some("revoke") => {
                                let cards: Vec<String> = v["cards"].as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()).unwrap_or_default();
                                apply_revoke(&sh, &cards);
                                let _ = fetch_rules(&sh).await;
                            }
                            Some("rules") => {
                                let v = v["version"].as_u64().unwrap_or(0);
                                let have = sh.cache.read().ok().and_then(|c| c.as_ref().map(|c| c.rules.version)).unwrap_or(0);
                                if v == 0 || v > have {
                                    let _ = fetch_rules(&sh).await;
                                } else if let Ok(mut c) = sh.cache.write() {
                                    if let Some(c) = c.as_mut() {
                                        c.fetched = Instant::now();
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            Ok(resp) => tracing::warn!(status = %resp.status(), "push stream refused"),
            Err(e) => tracing::debug!(error = %e, "server unreachable"),
        }
        sh.online.store(false, Ordering::SeqCst);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn flush_loop(sh: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.changed() => return,
        }
        let batch: Vec<Value> = match sh.queue.lock() {
            Ok(q) if !q.is_empty() => q.iter().take(1000).cloned().collect(),
            _ => continue,
        };
        let url = format!("{}/api/v1/doors/reports", sh.cfg.server);
        match sh.http.post(&url).bearer_auth(&sh.cfg.token).timeout(Duration::from_secs(10)).json(&batch).send().await {
            Ok(r) if r.status().is_success() => {
                if let Ok(mut q) = sh.queue.lock() {
                    let n = batch.len().min(q.len());
                    q.drain(..n);
                }
            }
            Ok(r) if r.status().is_client_error() => {
                // A batch the server refuses would block the queue forever: log and drop it.
                tracing::error!(status = %r.status(), n = batch.len(), "server refused reports; dropped");
                if let Ok(mut q) = sh.queue.lock() {
                    let n = batch.len().min(q.len());
                    q.drain(..n);
                }
            }
            _ => {}
        }
    }
}
