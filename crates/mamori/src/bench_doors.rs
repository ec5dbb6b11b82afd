//! `mamori bench doors`: 50,000 people, 500 doors (1,000 readers), 40 zones and a realistic
//! policy (levels by position and duty with schedules, CISO approvals for high-security
//! zones, anti-passback on work areas, visitors). Measures the engine's decision latency and,
//! with the `door-sim` feature, card presented at a simulated OSDP reader → lock command at
//! that reader through the agent and the server, at a sustained rate, every decision durable
//! in the ledger; and how long a revocation takes to reach the running agent.
//! The last line printed is one JSON object.

use std::collections::HashMap;
use std::time::Instant;

use mamori_core::doors::{CardNumber, Facts, Presented, Target};
use mamori_core::types::Role;
use mamori_core::{Mamori, OpenOptions};
use rand::Rng;
use serde_json::json;

use crate::bench::{core_err as e, percentile};

pub const PEOPLE: usize = 50_000;
pub const DOORS: usize = 500;
const ZONES: usize = 40;
const POSITIONS: [&str; 4] = ["一般", "主任", "係長", "課長"];
const DUTIES: [&str; 8] = ["カード申込入力", "給与計算", "マイナンバー", "データ入力", "検品", "発送", "照合", "総務"];

pub fn card_of(i: usize) -> String {
    format!("felica:{:016X}", 0x0100_0000_0000_0000u64 + i as u64)
}



/// Builds the centre; returns the app and an admin principal's token.
pub async fn build(dir: &std::path::Path) -> anyhow::Result<(std::sync::Arc<Mamori>, String)> {
    let app = Mamori::open(OpenOptions::new(dir)).await.map_err(e)?;
    app.create_user(None, "bench", "bench", &[Role::Admin], "correct horse battery staple 7").await.map_err(e)?;
    let token = app.create_token(None, "bench", "bench").await.map_err(e)?;
    let t0 = Instant::now();
    // Zones: 10 general, 20 work (hard anti-passback), 8 high security, 2 server rooms.
    let level = |z: usize| match z {
        0..=9 => "general",
        10..=29 => "work",
        30..=37 => "high",
        _ => "server",
    };
    let mut tx = app.db.pool.begin().await?;
    for z in 0..ZONES {
        let apb = if level(z) == "work" { "hard" } else { "none" };
        sqlx::query("INSERT INTO zones (code, name, level, created_at, apb_mode, apb_reset_minutes) VALUES ($1, $2, $3, 0, $4, 720)")
            .bind(format!("Z{z:02}"))
            .bind(format!("ゾーン{z}"))
            .bind(level(z))
            .bind(apb)
            .execute(&mut *tx)
            .await?;
    }
    // Doors: each joins a general zone (or outside) to an inner zone; one entry and one exit reader.
    for d in 0..DOORS {
        let inside = 1 + (d % (ZONES - 1)) as i64;
        let outside: Option<i64> = if inside <= 10 { None } else { Some(1 + (d % 10) as i64) };
        sqlx::query("INSERT INTO doors (code, name, outside_zone_id, inside_zone_id, held_open_secs, created_at) VALUES ($1, $1, $2, $3, 30, 0)")
            .bind(format!("D{d:03}"))
            .bind(outside)
            .bind(inside)
            .execute(&mut *tx)
            .await?;
        for (k, dir) in ["entry", "exit"].iter().enumerate() {
            let mode = if *dir == "entry" && inside > 30 { "card_palm" } else { "card" };
            sqlx::query("INSERT INTO readers (code, door_id, direction, mode, osdp_address, created_at) VALUES ($1, $2, $3, $4, $5, 0)")
                .bind(format!("R{d:03}{}", if k == 0 { "I" } else { "O" }))
                .bind(d as i64 + 1)
                .bind(*dir)
                .bind(mode)
                .bind(1 + k as i64)
                .execute(&mut *tx)
                .await?;
        }
    }
    // Levels: one per duty (its work and high zones, weekdays 07:00–22:00), one per position
    // (general zones, every day), one for managers (everything, 24 h).
    let mut lid = 0i64;
    let mut add_level = async |tx: &mut sqlx::Transaction<'_, sqlx::Any>, pos: &str, duty: &str, days: &str, from: &str, to: &str, zones: Vec<usize>| -> anyhow::Result<()> {
        lid += 1;
        sqlx::query("INSERT INTO access_levels (code, name, position, duty, days, time_from, time_to, on_holidays, created_at) VALUES ($1, $1, $2, $3, $4, $5, $6, 0, 0)")
            .bind(format!("L{lid}"))
            .bind(pos)
            .bind(duty)
            .bind(days)
            .bind(from)
            .bind(to)
            .execute(&mut **tx)
            .await?;
        for z in zones {
            sqlx::query("INSERT INTO access_level_zones (level_id, zone_id) VALUES ($1, $2)").bind(lid).bind(z as i64 + 1).execute(&mut **tx).await?;
        }
        Ok(())
    };
    for (i, d) in DUTIES.iter().enumerate() {
        let zones = (10..38).filter(|z| z % DUTIES.len() == i || z % 5 == 0).collect();
        add_level(&mut tx, "", d, "12345", "07:00", "22:00", zones).await?;
    }
    for pos in POSITIONS {
        add_level(&mut tx, pos, "", "1234567", "00:00", "24:00", (0..10).collect()).await?;
    }
    add_level(&mut tx, "課長", "", "1234567", "00:00", "24:00", (0..ZONES).collect()).await?;
    tx.commit().await?;
    // People and their cards, in batches.
    let mut rng = rand::thread_rng();
    for chunk in 0..PEOPLE / 1000 {
        let mut tx = app.db.pool.begin().await?;
        for k in 0..1000 {
            let i = chunk * 1000 + k;
            let pos = POSITIONS[i % POSITIONS.len()];
            let duties = format!("{}、{}", DUTIES[i % DUTIES.len()], DUTIES[rng.gen_range(0..DUTIES.len())]);
            sqlx::query(
                "INSERT INTO people (employee_no, name, kana, kind, position, duties, status, created_at, updated_at) \
                 VALUES ($1, $2, '', 'employee', $3, $4, 'active', 0, 0)",
            )
            .bind(format!("P{i:05}"))
            .bind(format!("社員{i}"))
            .bind(pos)
            .bind(duties)
            .execute(&mut *tx)
            .await?;
            let card = card_of(i);
            sqlx::query("INSERT INTO credentials (person_id, kind, number, status, issued_at) VALUES ($1, 'felica', $2, 'active', 0)")
                .bind(i as i64 + 1)
                .bind(card.trim_start_matches("felica:"))
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO credentials (person_id, kind, number, status, issued_at) VALUES ($1, 'palm', $2, 'active', 0)")
                .bind(i as i64 + 1)
                .bind(format!("{:08X}", i))
                .execute(&mut *tx)
                .await?;
            if i % 10 == 0 {
                for z in 31..=ZONES {
                    sqlx::query("INSERT INTO zone_approvals (person_id, zone_id, approved_by, approved_at) VALUES ($1, $2, 1, 0)")
                        .bind(i as i64 + 1)
                        .bind(z as i64)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
    }
    app.reload_door_rules().await.map_err(e)?;
    eprintln!("centre built: {PEOPLE} people, {DOORS} doors, {} readers in {:.1}s", DOORS * 2, t0.elapsed().as_secs_f64());
    Ok((app, token))
}

pub async fn doors(presentations: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("mamori-bench-doors-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let (app, token) = build(&dir).await?;
    let rules = app.doors.rules();
    let policy = &app.doors.policy;
    // (a) the engine: identify + facts + Cedar, random person at a random reader, with
    // presence from a map as the server reads it.
    let readers: Vec<String> = rules.readers.keys().cloned().collect();
    let mut presence: HashMap<i64, (i64, i64)> = HashMap::new();
    let now = chrono::Utc::now();
    let mut rng = rand::thread_rng();
    let n = 200_000;
    let mut lat = Vec::with_capacity(n);
    let mut allowed = 0usize;
    for _ in 0..n {
        let i = rng.gen_range(0..PEOPLE);
        let reader = &readers[rng.gen_range(0..readers.len())];
        let card: CardNumber = card_of(i).try_into().map_err(e)?;
        let pr = Presented { card: Some(card), palm: Some(format!("{:08X}", i)), pin: None };
        let t = Instant::now();
        let d = rules
            .decide_presented(policy, Target::Reader(reader), &pr, |p| Facts { presence: presence.get(&p).copied(), host_escorting: false }, now)
            .map_err(e)?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        if d.allowed {
            allowed += 1;
            if let Some(p) = d.person {
                presence.insert(p, (d.to_zone, 0));
            }
        }
    }
    let decide_p50 = percentile(&mut lat, 0.50);
    let decide_p99 = percentile(&mut lat, 0.99);
    eprintln!("engine: p50 {decide_p50:.1} µs, p99 {decide_p99:.1} µs over {n} decisions ({allowed} allowed)");

    let (c2u_p50, c2u_p99, rate, revocation_ms) = card_to_unlock(&app, &token, presentations).await?;
    let out = json!({
        "bench": "doors", "people": PEOPLE, "doors": DOORS, "readers": DOORS * 2,
        "decide_us_p50": (decide_p50 * 10.0).round() / 10.0, "decide_us_p99": (decide_p99 * 10.0).round() / 10.0,
        "card_to_unlock_ms_p50": c2u_p50, "card_to_unlock_ms_p99": c2u_p99, "rate_per_s": rate,
        "revocation_ms": revocation_ms,
    });
    app.ledger.checkpoint_all().await.map_err(e)?;
    let _ = std::fs::remove_dir_all(&dir);
    println!("{out}");
    Ok(())
}

#[cfg(not(feature = "door-sim"))]
async fn card_to_unlock(_: &Mamori, _: &str, _: usize) -> anyhow::Result<(Option<f64>, Option<f64>, Option<f64>, Option<f64>)> {
    eprintln!("card-to-unlock needs the simulated readers: cargo run --release --features door-sim -- bench doors");
    Ok((None, None, None, None))
}

#[cfg(feature = "door-sim")]
async fn card_to_unlock(app: &std::sync::Arc<Mamori>, token: &str, presentations: usize) -> anyhow::Result<(Option<f64>, Option<f64>, Option<f64>, Option<f64>)> {
    use std::time::Duration;

    use mamori_agent::{AgentConfig, Connect, ReaderConfig};
    use mamori_doorsim::SimReader;

    let scbk: [u8; 16] = rand::random();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = mamori_server::AppState::new(app.clone(), false);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = mamori_server::serve(listener, state, async {
            let _ = stop_rx.await;
        })
        .await;
    });
    let cp_stop = tokio::sync::watch::channel(false);
    tokio::spawn(app.ledger.clone().run_checkpointer(Duration::from_secs(1), cp_stop.1.clone()));
    app.create_user(None, "agent", "agent", &[Role::DoorAgent], "correct horse battery staple 8").await.map_err(e)?;
    let agent_token = app.create_token(None, "agent", "bench").await.map_err(e)?;
    // 10 entry readers on general-zone doors (card only), one simulated PD each.
    let rules = app.doors.rules();
    let mut codes: Vec<String> = rules
        .readers
        .values()
        .filter(|r| r.direction == mamori_core::doors::Direction::Entry && r.mode == mamori_core::doors::ReaderMode::Card)
        .filter(|r| rules.doors.get(&r.door).is_some_and(|d| d.outside == 0))
        .map(|r| r.code.clone())
        .collect();
    codes.sort();
    codes.truncate(10);
    let mut sims = Vec::new();
    let mut cfgs = Vec::new();
    for (k, code) in codes.iter().enumerate() {
        let s = SimReader::start("127.0.0.1:0", 1 + k as u8, scbk)?;
        cfgs.push(ReaderConfig { code: code.clone(), connect: Connect::Tcp(s.addr.to_string()), address: 1 + k as u8, scbk, relay_output: 0 });
        sims.push(s);
    }
    let mut cfg = AgentConfig::new(&format!("http://{addr}"), &agent_token, cfgs);
    cfg.poll_interval = Duration::from_millis(2);
    let h = mamori_agent::start(cfg).map_err(|x| anyhow::anyhow!("{x}"))?;
    let t = Instant::now();
    while h.rules_version() == 0 && t.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Everyone may enter general zones (position levels, every day): present at 200/s in total,
    // round robin over the readers, and pair each presentation with the reader's next lock pulse.
    let interval = Duration::from_micros(5_000);
    let mut sent: Vec<Vec<Instant>> = vec![Vec::new(); sims.len()];
    let start = Instant::now();
    let mut rng = rand::thread_rng();
    for k in 0..presentations {
        let due = start + interval * k as u32;
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(w).await;
        }
        let r = k % sims.len();
        let i = rng.gen_range(0..PEOPLE);
        let card: CardNumber = card_of(i).try_into().map_err(e)?;
        let (bits, data) = card.to_raw_bits();
        sent[r].push(Instant::now());
        sims[r].card(bits, data);
    }
    let mut lat = Vec::new();
    for (r, s) in sims.iter().enumerate() {
        for at in &sent[r] {
            match s.next_output(Duration::from_secs(5)) {
                Some(o) => lat.push(o.at.duration_since(*at).as_secs_f64() * 1000.0),
                None => break,
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let rate = presentations as f64 / elapsed.max(1e-9);
    eprintln!("card to unlock: {} of {presentations} presentations unlocked at {rate:.0}/s", lat.len());
    let (p50, p99) = (percentile(&mut lat, 0.5), percentile(&mut lat, 0.99));
    // Revocation: a lost card, from the API call to the running agent's cache.
    let admin = app.bearer(token, None).await.map_err(e)?.ok_or_else(|| anyhow::anyhow!("token"))?;
    let creds = app.list_credentials(&admin, Some("P00007")).await.map_err(e)?;
    let id = creds.iter().find(|c| c.kind == "felica").map(|c| c.id).ok_or_else(|| anyhow::anyhow!("card"))?;
    // The call itself also rebuilds the rules for 50,000 people after the push; the agent's
    // side is watched from the moment the call starts.
    let t = Instant::now();
    let app2 = app.clone();
    let call = tokio::spawn(async move { app2.end_credential(&admin, id, "lost", "bench").await });
    let key = card_of(7);
    while h.card_active(&key) != Some(false) && t.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let revocation_ms = t.elapsed().as_secs_f64() * 1000.0;
    call.await?.map_err(e)?;
    eprintln!("revocation reached the agent in {revocation_ms:.1} ms (the call returned after {:.1} ms)", t.elapsed().as_secs_f64() * 1000.0);
    h.stop().await;
    let _ = stop_tx.send(());
    let _ = cp_stop.0.send(true);
    let r2 = |x: f64| (x * 100.0).round() / 100.0;
    Ok((Some(r2(p50)), Some(r2(p99)), Some(r2(rate)), Some(r2(revocation_ms))))
}
