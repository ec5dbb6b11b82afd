//! The `mamori` binary: a thin shell over `mamori-core` and `mamori-server`.

mod bench;
mod bench_doors;
mod bench_http;
mod bench_vault;
mod config;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use mamori_core::ledger::SearchFilter;
use mamori_core::types::Role;
use mamori_core::{Mamori, OpenOptions};

use crate::config::Config;

#[derive(Parser)]
#[command(name = "mamori", version, about = "mamori (守り): doors, data and records of a personal-data processing centre")]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone, Default)]
pub struct StoreArgs {
    /// Data directory (SQLite database, keys). Default ./mamori-data
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// postgres://… to use PostgreSQL instead of SQLite
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// TOML configuration file
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (API and console)
    Serve {
        /// Address to listen on. Default 127.0.0.1:8080
        #[arg(long)]
        listen: Option<String>,
    },
    /// Manage accounts
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// Manage API tokens
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
    /// Take an encrypted backup now
    Backup {
        /// Directory for backups
        #[arg(long)]
        to: PathBuf,
        /// How many backups to keep (default 1)
        #[arg(long)]
        keep: Option<usize>,
    },
    /// Restore an encrypted backup (stop the server first)
    Restore {
        #[arg(long)]
        from: PathBuf,
        /// age identity file (default <data-dir>/backup.key)
        #[arg(long)]
        identity: Option<PathBuf>,
    },
    /// The tamper-evident ledger
    Ledger {
        #[command(subcommand)]
        cmd: LedgerCmd,
    },
    /// Door agent: OSDP readers next to the doors, decisions from the server, offline cache
    DoorAgent(DoorAgentArgs),
    /// Deletion certificates (データ削除証明書)
    Certificate {
        #[command(subcommand)]
        cmd: CertificateCmd,
    },
    /// Benchmarks
    Bench {
        #[command(subcommand)]
        cmd: BenchCmd,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add an account (the first administrator is created this way)
    Add {
        #[arg(long)]
        login: String,
        #[arg(long)]
        name: String,
        /// Role(s): admin, ciso, info_manager, dept_manager, business_lead, operator, secretariat, auditor, reception
        #[arg(long, required = true)]
        role: Vec<String>,
        /// Read the password from standard input (otherwise MAMORI_PASSWORD)
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Create an API token for a login and print it
    Create {
        #[arg(long)]
        login: String,
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

#[derive(Subcommand)]
enum LedgerCmd {
    /// Recompute every log and check every checkpoint; non-zero exit names the first bad entry
    Verify,
    /// Export a client's records with proofs
    Export {
        #[arg(long)]
        client: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Check an export bundle offline with the centre's public key
    Check {
        file: PathBuf,
        /// The centre's verifier key (name+id+key), or @FILE
        #[arg(long)]
        key: String,
    },
    /// Print the centre's public verifier key
    Key,
    /// Apply the configured retention policy now (nothing is pruned unless configured)
    Prune,
    /// Search the ledger
    Search {
        #[arg(long)]
        client: Option<String>,
        #[arg(long)]
        action: Option<String>,
        #[arg(long)]
        actor: Option<String>,
        /// Person id: events about that person
        #[arg(long)]
        person: Option<String>,
        #[arg(long)]
        object: Option<String>,
        #[arg(long)]
        zone: Option<String>,
        #[arg(long)]
        business: Option<String>,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 1000)]
        limit: i64,
        /// csv or json
        #[arg(long, default_value = "json")]
        format: String,
    },
}

#[derive(Subcommand)]
enum CertificateCmd {
    /// Check a deletion certificate offline with the centre's public key
    Check {
        file: PathBuf,
        /// The centre's verifier key (name+id+key), or @FILE
        #[arg(long)]
        key: String,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Ledger append, verify and proof figures (last line: one JSON object)
    Ledger {
        /// Events appended in the durable-append runs
        #[arg(long, default_value_t = 200_000)]
        events: u64,
        /// Tree size for the inclusion-proof measurement
        #[arg(long, default_value_t = 10_000_000)]
        proof_tree: u64,
    },
    /// Vault record writes and field reveals over HTTP, each authorised, encrypted or decrypted,
    /// and durably recorded
    Vault {
        /// Seconds of each run
        #[arg(long, default_value_t = 10)]
        secs: u64,
        /// Concurrent clients of the saturated runs
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Connections of the paced runs: enough that a request due seldom waits in the load
        /// generator for a free one (at 10,000/s, 32 are all busy once latency passes 3.2 ms)
        #[arg(long, default_value_t = 128)]
        connections: usize,
        /// Reveals per second of the paced run (whose p99 is `read_ms_p99`)
        #[arg(long, default_value_t = 10_000.0)]
        read_rate: f64,
        /// Records per second of the paced run (whose p99 is `write_ms_p99`)
        #[arg(long, default_value_t = 5_000.0)]
        write_rate: f64,
    },
    /// Door decision latency, card-to-unlock through simulated OSDP readers (needs the
    /// `door-sim` feature) and revocation reach, with 50,000 people and 500 doors
    Doors {
        /// Cards presented in the card-to-unlock run (at 200 per second)
        #[arg(long, default_value_t = 4000)]
        presentations: usize,
    },
}

#[derive(Args)]
struct DoorAgentArgs {
    /// The mamori server, e.g. https://mamori.example:8443
    #[arg(long, env = "MAMORI_AGENT_SERVER")]
    server: String,
    /// File holding the agent's API token (an account with the door_agent role)
    #[arg(long, env = "MAMORI_AGENT_TOKEN_FILE")]
    token_file: PathBuf,
    /// File holding the readers' secure-channel key (32 hex digits)
    #[arg(long, env = "MAMORI_AGENT_SCBK_FILE")]
    scbk_file: PathBuf,
    /// A reader: CODE=ADDRESS@tcp:HOST:PORT or CODE=ADDRESS@serial:/dev/ttyUSB0@9600 (repeat)
    #[arg(long = "reader", required = true)]
    readers: Vec<String>,
    /// How long cached rules may decide while the server is unreachable
    #[arg(long, default_value_t = 300)]
    cache_ttl_secs: u64,
    /// How long the lock stays released after a grant
    #[arg(long, default_value_t = 5000)]
    unlock_ms: u32,
}

async fn door_agent(a: DoorAgentArgs) -> anyhow::Result<()> {
    let token = mamori_core::keys::read_secret(&a.token_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = mamori_core::keys::read_secret(&a.scbk_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = hex::decode(key.trim()).context("the SCBK file must hold 32 hex digits")?;
    let scbk: [u8; 16] = key.as_slice().try_into().map_err(|_| anyhow::anyhow!("the SCBK must be 16 bytes (32 hex digits)"))?;
    let mut readers = Vec::new();
    for spec in &a.readers {
        let (code, rest) = spec.split_once('=').ok_or_else(|| anyhow::anyhow!("--reader {spec}: expected CODE=ADDRESS@CONNECT"))?;
        let (addr, conn) = rest.split_once('@').ok_or_else(|| anyhow::anyhow!("--reader {spec}: expected CODE=ADDRESS@CONNECT"))?;
        let address: u8 = addr.parse().ok().filter(|a| *a <= 126).ok_or_else(|| anyhow::anyhow!("--reader {spec}: address is 0 to 126"))?;
        let connect = mamori_agent::Connect::parse(conn).map_err(|e| anyhow::anyhow!("{e}"))?;
        readers.push(mamori_agent::ReaderConfig { code: code.to_owned(), connect, address, scbk, relay_output: 0 });
    }
    let mut cfg = mamori_agent::AgentConfig::new(&a.server, token.trim(), readers);
    cfg.cache_ttl = std::time::Duration::from_secs(a.cache_ttl_secs);
    cfg.unlock_ms = a.unlock_ms;
    let mut h = mamori_agent::start(cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    tracing::info!(server = a.server, readers = a.readers.len(), "door agent running");
    loop {
        tokio::select! {
            u = h.unlocked.recv() => match u {
                Some(u) => tracing::info!(reader = u.reader, allowed = u.decision.allowed, rule = u.decision.rule, offline = u.offline, "decision"),
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    h.stop().await;
    Ok(())
}

/// mimalloc instead of glibc's allocator. A profile of saturated reveals (`perf record` during
/// `mamori bench vault`) spent ~10% of the process in glibc's malloc and free (`_int_malloc`,
/// `_int_free`, `malloc_consolidate`, ...; by the code, not measured per call site: request
/// buffers, SQLite's page cache emptied and filled again after every commit, events and their
/// encodings). In three interleaved pairs of full runs on one host (glibc / mimalloc):
/// saturated reveals 9,132 / 10,423, 10,220 / 11,669 and 11,016 / 12,096 per second; CPU µs per
/// saturated reveal 159 / 138, 149 / 132, 130 / 120.
/// Keys are wiped by `zeroize` where they are dropped, not by the allocator, under either.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("MAMORI_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(cli))
}

async fn open(cfg: &Config) -> anyhow::Result<Arc<Mamori>> {
    let mut o = OpenOptions::new(&cfg.data_dir);
    o.database_url = cfg.database_url()?;
    o.settings = cfg.settings();
    o.ledger_key_file = cfg.ledger_key_file.clone();
    o.mailer = cfg.mailer()?;
    Mamori::open(o).await.map_err(|e| anyhow::anyhow!("{e}"))
}

fn parse_roles(v: &[String]) -> anyhow::Result<Vec<Role>> {
    v.iter().flat_map(|r| r.split(',')).map(|r| r.parse::<Role>().map_err(|e| anyhow::anyhow!("{e}"))).collect()
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let cfg = Config::load(&cli.store)?;
    match cli.cmd {
        Cmd::Serve { listen } => serve(cfg, listen).await,
        Cmd::User { cmd: UserCmd::Add { login, name, role, password_stdin } } => {
            let roles = parse_roles(&role)?;
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_owned()
            } else {
                std::env::var("MAMORI_PASSWORD").context("give the password on standard input with --password-stdin")?
            };
            let app = open(&cfg).await?;
            let id = app.create_user(None, &login, &name, &roles, &password).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            app.ledger.checkpoint_all().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("created user {login} (id {id})");
            Ok(())
        }
        Cmd::Token { cmd: TokenCmd::Create { login, name } } => {
            let app = open(&cfg).await?;
            let t = app.create_token(None, &login, &name).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            app.ledger.checkpoint_all().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{t}");
            Ok(())
        }
        Cmd::Backup { to, keep } => {
            let app = open(&cfg).await?;
            let r = app.backup(&to, keep.unwrap_or(cfg.backup.keep)).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            app.ledger.checkpoint_all().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            Ok(())
        }
        Cmd::Restore { from, identity } => {
            let identity = identity.unwrap_or_else(|| cfg.data_dir.join("backup.key"));
            let url = cfg.database_url()?.unwrap_or_else(|| mamori_core::db::sqlite_url(&cfg.data_dir));
            mamori_core::backup::restore(&cfg.data_dir, &url, &from, &identity).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let app = open(&cfg).await?;
            let report = app.ledger.verify_all(|_, _| {}).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let file = from.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
            app.record_system("backup.restore", &[("file", file), ("verified", report.ok.to_string())])
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            app.ledger.checkpoint_all().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            if !report.ok {
                bail!("restored, but the ledger does not verify: {}", report.error.unwrap_or_default());
            }
            println!("restored {}; ledger verified ({} logs)", from.display(), report.logs.len());
            Ok(())
        }
        Cmd::Ledger { cmd } => ledger_cmd(cfg, cmd).await,
        Cmd::Bench { cmd: BenchCmd::Ledger { events, proof_tree } } => bench::ledger(events, proof_tree).await,
        Cmd::Bench { cmd: BenchCmd::Doors { presentations } } => bench_doors::doors(presentations).await,
        Cmd::Bench { cmd: BenchCmd::Vault { secs, clients, connections, read_rate, write_rate } } => {
            bench_vault::vault(bench_vault::Load { secs, clients, connections, read_rate, write_rate }, cfg.database_url()?).await
        }
        Cmd::DoorAgent(a) => door_agent(a).await,
        Cmd::Certificate { cmd: CertificateCmd::Check { file, key } } => {
            let key = if let Some(p) = key.strip_prefix('@') { std::fs::read_to_string(p)? } else { key };
            let verifier = mamori_ledger::NoteVerifier::from_key_string(key.trim()).map_err(|e| anyhow::anyhow!("{e}"))?;
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            // A PDF certificate carries its signed note; its page must be the one the note makes.
            let (text, pdf) = if bytes.starts_with(b"%PDF") {
                (mamori_core::pdf::note_of_pdf(&bytes).context("FAILED: not a mamori certificate PDF")?, true)
            } else {
                (String::from_utf8(bytes.clone()).context("FAILED: not text")?, false)
            };
            match verifier.open(&text) {
                Ok(_) if pdf && mamori_core::pdf::certificate_pdf(&text) != bytes => bail!("FAILED: the PDF's page does not match its signed note"),
                Ok(body) => {
                    print!("{body}");
                    println!("OK: signed by {}", verifier.name());
                    Ok(())
                }
                Err(e) => bail!("FAILED: {e}"),
            }
        }

    }
}

async fn ledger_cmd(cfg: Config, cmd: LedgerCmd) -> anyhow::Result<()> {
    match cmd {
        LedgerCmd::Check { file, key } => {
            let key = if let Some(p) = key.strip_prefix('@') { std::fs::read_to_string(p)? } else { key };
            let verifier = mamori_ledger::NoteVerifier::from_key_string(&key).map_err(|e| anyhow::anyhow!("{e}"))?;
            let bundle: mamori_ledger::Bundle =
                serde_json::from_slice(&std::fs::read(&file)?).context("the file is not a mamori ledger bundle")?;
            match mamori_ledger::check_bundle(&bundle, &verifier) {
                Ok(r) => {
                    println!("OK: {} events in range, log {} at size {} (root {})", r.events_in_range, r.origin, r.tree_size, r.root);
                    Ok(())
                }
                Err(e) => bail!("FAILED: {e}"),
            }
        }
        LedgerCmd::Verify => {
            // Read-only: verification signs nothing, so it can never bless altered rows.
            let app = open(&cfg).await?;
            let bar = if std::io::stderr().is_terminal() {
                let b = indicatif::ProgressBar::new(0);
                b.set_style(
                    indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} entries ({per_sec})")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                Some(b)
            } else {
                None
            };
            let report = app
                .ledger
                .verify_all(|done, total| {
                    if let Some(b) = &bar {
                        b.set_length(total);
                        b.set_position(done);
                    }
                })
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            for l in &report.logs {
                println!("ok  {:<24} {:>10} entries {:>6} checkpoints root {}", l.log, l.entries, l.checkpoints, l.root);
            }
            match report.error {
                None => {
                    println!("ledger verified");
                    Ok(())
                }
                Some(e) => bail!("ledger verification FAILED: {e}"),
            }
        }
        LedgerCmd::Export { client, from, to, out } => {
            let app = open(&cfg).await?;
            let from = mamori_core::ledger_time(&from).context("--from: YYYY-MM-DD or RFC 3339")?;
            let to = mamori_core::ledger_time(&to).context("--to: YYYY-MM-DD or RFC 3339")?;
            let ev = mamori_ledger::Event::new(app.clock.now(), mamori_core::auth::system_actor("cli"), "ledger.export")
                .object("client", &client)
                .client(&client);
            app.ledger.append(ev).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let b = app.ledger.export_client(&client, from, to).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            std::fs::write(&out, serde_json::to_vec_pretty(&b)?)?;
            println!("wrote {} entries to {}; the client checks it with: mamori ledger check {} --key '{}'", b.entries.len(), out.display(), out.display(), b.key);
            Ok(())
        }
        LedgerCmd::Prune => {
            let app = open(&cfg).await?;
            let n = config::prune(&app, &cfg).await?;
            app.ledger.checkpoint_all().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("pruned {n} entries (policy: {:?} older than {} days)", cfg.retention.prune_actions, cfg.retention.prune_after_days);
            Ok(())
        }
        LedgerCmd::Key => {
            let app = open(&cfg).await?;
            println!("{}", app.ledger.verifier().to_key_string());
            Ok(())
        }
        LedgerCmd::Search { client, action, actor, person, object, zone, business, from, to, limit, format } => {
            let app = open(&cfg).await?;
            let t = |s: &Option<String>| -> anyhow::Result<_> {
                s.as_deref().map(|s| mamori_core::ledger_time(s).context("time: YYYY-MM-DD or RFC 3339")).transpose()
            };
            let f = SearchFilter {
                client,
                action,
                actor,
                object: person.map(|p| format!("person:{p}")).or(object),
                zone,
                business,
                from: t(&from)?,
                to: t(&to)?,
                limit: Some(limit),
            };
            let rows = app.ledger.search(&f).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            if format == "csv" {
                // UTF-8 with BOM, so that Excel opens the Japanese text correctly.
                print!("\u{FEFF}");
                let mut w = csv::Writer::from_writer(std::io::stdout());
                w.write_record(["log", "index", "time_utc", "time_jst", "action", "actor", "object", "allowed", "rule"])?;
                for r in rows {
                    w.write_record([
                        r.log.as_str(),
                        &r.index.to_string(),
                        &r.event.ts,
                        &r.event.jst,
                        &r.action,
                        &r.actor,
                        &r.object,
                        &r.event.outcome.allowed.to_string(),
                        r.event.outcome.rule.as_deref().unwrap_or(""),
                    ])?;
                }
                w.flush()?;
            } else {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            }
            Ok(())
        }
    }
}

async fn serve(cfg: Config, listen: Option<String>) -> anyhow::Result<()> {
    let app = open(&cfg).await?;
    let listen = listen.unwrap_or_else(|| cfg.listen.clone());
    let listener = tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    app.record_system("server.start", &[("listen", addr.to_string()), ("version", env!("CARGO_PKG_VERSION").into())])
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let cp = tokio::spawn(app.ledger.clone().run_checkpointer(std::time::Duration::from_millis(cfg.checkpoint_interval_ms), stop_rx.clone()));
    tokio::spawn(app.clone().run_door_jobs(stop_rx.clone()));
    if cfg.backup.dir.is_some() || !cfg.retention.prune_actions.is_empty() {
        tokio::spawn(config::daily_jobs(app.clone(), cfg.clone(), stop_rx));
    }
    let tls = match (&cfg.tls_cert_file, &cfg.tls_key_file) {
        (Some(c), Some(k)) => {
            // The private key is a secret: refuse one that others can read.
            mamori_core::keys::read_secret(k).map_err(|e| anyhow::anyhow!("{e}"))?;
            Some((c.clone(), k.clone()))
        }
        (None, None) => None,
        _ => bail!("set both tls_cert_file and tls_key_file, or neither"),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, scheme, "mamori listening");
    println!("mamori listening on {scheme}://{addr}");
    let state = mamori_server::AppState::new(app.clone(), tls.is_some());
    match tls {
        Some((cert, key)) => mamori_server::serve_tls(listener.into_std()?, state, &cert, &key, shutdown_signal()).await?,
        None => mamori_server::serve(listener, state, shutdown_signal()).await?,
    }
    let _ = app.record_system("server.stop", &[]).await;
    let _ = stop_tx.send(true);
    let _ = cp.await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
