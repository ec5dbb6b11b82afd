//! `mamori bench ledger`: durable appends through the ledger against plain inserts of the same
//! rows with the same durability, verification against bare SHA-256 over the same bytes, and
//! inclusion-proof latency in a large tree. The last line printed is one JSON object.

use std::time::Instant;

use anyhow::Context;
use mamori_core::{Mamori, OpenOptions};
use mamori_ledger::{leaf_hash, Actor, Event, Tree};
use rand::Rng;
use sha2::{Digest, Sha256};

fn door_event(i: u64) -> Event {
    Event::new(chrono::Utc::now(), Actor { kind: "person".into(), id: (i % 50_000).to_string() }, "door.entry")
        .object("door", format!("D{:03}", i % 500))
        .detail("zone", format!("Z{:02}", i % 40))
        .detail("reader", "entry")
        .rule("level-work-area")
}

pub(crate) fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or(0.0)
}

pub async fn ledger(events: u64, proof_tree: u64) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let app = Mamori::open(OpenOptions::new(dir.join("ledger-bench"))).await.map_err(|e| anyhow::anyhow!("{e}"))?;

    // (a) durable, group-committed appends from concurrent producers.
    let producers = 4096u64;
    let per = events.div_ceil(producers);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let l = app.ledger.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..per {
                l.append(door_event(p * per + k)).await?;
            }
            Ok::<_, mamori_core::CoreError>(())
        }));
    }
    for t in tasks {
        t.await?.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let appended = producers * per;
    let append_s = t0.elapsed().as_secs_f64();
    let append_per_s = appended as f64 / append_s;
    eprintln!("ledger append: {appended} events in {append_s:.2}s = {append_per_s:.0}/s");

    // (b) the same rows into a plain table, same batches and durability, no hashing.
    let plain = Mamori::open(OpenOptions::new(dir.join("plain-bench"))).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    sqlx::query("CREATE TABLE plain (log_id BIGINT, idx BIGINT, entry BLOB, ts BIGINT, action TEXT, actor TEXT, object TEXT, PRIMARY KEY (log_id, idx))")
        .execute(&plain.db.pool)
        .await?;
    let rows: Vec<Vec<u8>> = (0..appended).map(|i| door_event(i).encode()).collect();
    let t0 = Instant::now();
    for (b, chunk) in rows.chunks(8192).enumerate() {
        let mut tx = plain.db.pool.begin().await?;
        for (c, sub) in chunk.chunks(mamori_core::ledger::ROWS_PER_INSERT).enumerate() {
            let mut sql = String::from("INSERT INTO plain VALUES ");
            for i in 0..sub.len() {
                let k = i * 7;
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("(${},${},${},${},${},${},${})", k + 1, k + 2, k + 3, k + 4, k + 5, k + 6, k + 7));
            }
            let mut q = sqlx::query(&sql);
            for (i, r) in sub.iter().enumerate() {
                let idx = (b * 8192 + c * mamori_core::ledger::ROWS_PER_INSERT + i) as i64;
                q = q.bind(1i64).bind(idx).bind(r.as_slice()).bind(idx).bind("door.entry").bind("person:1").bind("door:D001");
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    let plain_per_s = appended as f64 / t0.elapsed().as_secs_f64();
    eprintln!("plain insert: {plain_per_s:.0}/s");

    // (c) full verification from the store.
    app.ledger.checkpoint_all().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let t0 = Instant::now();
    let report = app.ledger.verify_all(|_, _| {}).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(report.ok, "verification failed: {:?}", report.error);
    let verified: u64 = report.logs.iter().map(|l| l.entries).sum();
    let verify_per_s = verified as f64 / t0.elapsed().as_secs_f64();
    eprintln!("verify: {verified} entries at {verify_per_s:.0}/s");

    // (d) bare SHA-256 over the same bytes.
    let t0 = Instant::now();
    let mut acc = 0u8;
    for r in &rows {
        acc ^= Sha256::digest(r)[0];
    }
    let sha_per_s = rows.len() as f64 / t0.elapsed().as_secs_f64();
    eprintln!("sha256: {sha_per_s:.0}/s ({acc})");

    // (e) inclusion proofs in a tree of `proof_tree` leaves.
    let mut tree = Tree::new();
    for i in 0..proof_tree {
        tree.push(leaf_hash(&i.to_be_bytes()));
    }
    let mut rng = rand::thread_rng();
    let mut lat = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let idx = rng.gen_range(0..proof_tree);
        let t = Instant::now();
        let p = tree.inclusion_proof(idx, proof_tree).context("proof")?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(p);
    }
    let p99 = percentile(&mut lat, 0.99);
    drop(tree);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{}",
        serde_json::json!({
            "bench": "ledger",
            "append_per_s": append_per_s.round(),
            "append_ratio_to_plain_insert": (append_per_s / plain_per_s * 1000.0).round() / 1000.0,
            "plain_insert_per_s": plain_per_s.round(),
            "verify_per_s": verify_per_s.round(),
            "verify_ratio_to_sha256": (verify_per_s / sha_per_s * 1000.0).round() / 1000.0,
            "sha256_per_s": sha_per_s.round(),
            "inclusion_proof_us_p99": (p99 * 100.0).round() / 100.0,
            "proof_tree_size": proof_tree,
            "events": appended,
        })
    );
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("mamori-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// A core error as an `anyhow` error, for the benchmarks.
pub(crate) fn core_err(x: mamori_core::CoreError) -> anyhow::Error {
    anyhow::anyhow!("{x}")
}
