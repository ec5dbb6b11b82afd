//! `mamori bench vault`: over HTTP on this machine, with the load generator in the same process:
//! record writes that authorise, encrypt and durably record the input, and field reveals that
//! authorise, decrypt and durably record the access. The last line printed is one JSON object.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mamori_core::types::Role;
use mamori_core::{Mamori, OpenOptions};
use serde_json::json;

use crate::bench::{core_err as e, percentile};



/// Runs `make(i)` from `clients` concurrent clients for `secs`; returns (per second, p99 ms).
async fn load<F, Fut>(clients: usize, secs: u64, make: F) -> anyhow::Result<(f64, f64, usize)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let make = Arc::new(make);
    let start = Instant::now();
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
    let rate = all.len() as f64 / start.elapsed().as_secs_f64();
    let p99 = percentile(&mut all, 0.99);
    eprintln!(
        "  latency ms: p50 {:.2}, p90 {:.2}, p99 {p99:.2}, p99.9 {:.2}, max {:.2}",
        percentile(&mut all, 0.5),
        percentile(&mut all, 0.9),
        percentile(&mut all, 0.999),
        percentile(&mut all, 1.0)
    );
    Ok((rate, p99, fails))
}

pub async fn vault(secs: u64, clients: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("mamori-bench-vault-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let app = Mamori::open(OpenOptions::new(&dir)).await.map_err(e)?;
    app.create_user(None, "admin", "admin", &[Role::Admin], "correct horse battery staple 7").await.map_err(e)?;
    app.create_user(None, "op", "op", &[Role::Operator], "correct horse battery staple 8").await.map_err(e)?;
    let admin = app.create_token(None, "admin", "bench").await.map_err(e)?;
    let op = app.create_token(None, "op", "bench").await.map_err(e)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let state = mamori_server::AppState::new(app.clone(), false);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = mamori_server::serve(listener, state, async {
            let _ = stop_rx.await;
        })
        .await;
    });
    let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build()?;
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

    // The ceiling: the same load on the liveness route (HTTP, routing and headers only).
    let (h_rate, h_p99, _) = {
        let (http, url) = (http.clone(), format!("{base}/api/v1/health"));
        load(clients, secs.min(3), move |_| {
            let (http, url) = (http.clone(), url.clone());
            async move { http.get(url).send().await.is_ok_and(|r| r.status().is_success()) }
        })
        .await?
    };
    eprintln!("HTTP baseline (health): {h_rate:.0}/s, p99 {h_p99:.2} ms");
    // Writes.
    let (w_rate, w_p99, w_fail) = {
        let (http, base, op, terminal) = (http.clone(), base.clone(), op.clone(), terminal.clone());
        load(clients, secs, move |i| {
            let (http, url, op, terminal) = (http.clone(), format!("{base}/api/v1/vault/CARD/records"), op.clone(), terminal.clone());
            async move {
                let body = json!({"values": {"app_no": format!("A{i:07}"), "name": "顧客 太郎", "phone": "090-1234-5678", "card": "4111 1111 1111 1234"}});
                http.post(url).bearer_auth(op).header("x-mamori-terminal", terminal).json(&body).send().await.is_ok_and(|r| r.status().is_success())
            }
        })
        .await?
    };
    eprintln!("writes: {w_rate:.0}/s, p99 {w_p99:.2} ms ({w_fail} failed) with {clients} clients");
    let uids: Vec<(String,)> = sqlx::query_as("SELECT uid FROM vault_records ORDER BY id LIMIT 10000").fetch_all(&app.db.pool).await?;
    let uids = Arc::new(uids.into_iter().map(|u| u.0).collect::<Vec<_>>());
    anyhow::ensure!(!uids.is_empty(), "no records written");
    // Reads: reveal one sealed field.
    let (r_rate, r_p99, r_fail) = {
        let (http, base, op, uids) = (http.clone(), base.clone(), op.clone(), uids.clone());
        load(clients, secs, move |i| {
            let uid = &uids[i % uids.len()];
            let (http, url, op, terminal) = (http.clone(), format!("{base}/api/v1/vault/CARD/records/{uid}/reveal"), op.clone(), terminal.clone());
            async move {
                http.post(url).bearer_auth(op).header("x-mamori-terminal", terminal).json(&json!({"field": "phone", "purpose": "照合"})).send().await.is_ok_and(|r| r.status().is_success())
            }
        })
        .await?
    };
    eprintln!("reads: {r_rate:.0}/s, p99 {r_p99:.2} ms ({r_fail} failed)");
    let _ = stop_tx.send(());
    app.ledger.checkpoint_all().await.map_err(e)?;
    let size = |f: &str| std::fs::metadata(dir.join(f)).map(|m| m.len() / 1_000_000).unwrap_or(0);
    eprintln!("store: {} MB, WAL {} MB", size("mamori.db"), size("mamori.db-wal"));
    let _ = std::fs::remove_dir_all(&dir);
    let r2 = |x: f64| (x * 100.0).round() / 100.0;
    println!(
        "{}",
        json!({"bench": "vault", "clients": clients, "read_per_s": r2(r_rate), "read_ms_p99": r2(r_p99), "write_per_s": r2(w_rate), "write_ms_p99": r2(w_p99),
               "http_baseline_per_s": r2(h_rate), "read_vs_baseline": r2(r_rate / h_rate.max(1.0)), "write_vs_baseline": r2(w_rate / h_rate.max(1.0))})
    );
    Ok(())
}
