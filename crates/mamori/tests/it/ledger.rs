//! Tamper tests (issue 3): each kind of change to the stored ledger is detected and named, by
//! the service on both backends and by `mamori ledger verify` on SQLite; export bundles are
//! checked offline by `mamori ledger check`; a writer killed with SIGKILL loses nothing it
//! acknowledged.

use std::process::Command;

use mamori_testkit::{both_backends, Backend, TestApp};
use serde_json::json;

both_backends! {
    tampering_is_detected => tampering_is_detected;
}

async fn entries(app: &TestApp) -> Vec<(i64, Vec<u8>, Vec<u8>)> {
    sqlx::query_as("SELECT idx, entry, leaf_hash FROM ledger_entries WHERE log_id = 1 ORDER BY idx")
        .fetch_all(&app.app.db.pool)
        .await
        .unwrap()
}

async fn put(app: &TestApp, idx: i64, entry: &[u8], hash: &[u8]) {
    sqlx::query("UPDATE ledger_entries SET entry = $1, leaf_hash = $2 WHERE log_id = 1 AND idx = $3")
        .bind(entry)
        .bind(hash)
        .bind(idx)
        .execute(&app.app.db.pool)
        .await
        .unwrap();
}

async fn verify_err(app: &TestApp) -> String {
    let r = app.app.ledger.verify_all(|_, _| {}).await.unwrap();
    assert!(!r.ok, "tampering went unnoticed");
    r.error.unwrap()
}

async fn restore(app: &TestApp, orig: &[(i64, Vec<u8>, Vec<u8>)]) {
    sqlx::query("DELETE FROM ledger_entries WHERE log_id = 1").execute(&app.app.db.pool).await.unwrap();
    for (i, e, h) in orig {
        sqlx::query("INSERT INTO ledger_entries (log_id, idx, entry, leaf_hash, ts, action, actor, object) VALUES (1, $1, $2, $3, 0, 'x', 'x', '')")
            .bind(*i)
            .bind(e.as_slice())
            .bind(h.as_slice())
            .execute(&app.app.db.pool)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE ledger_logs SET size = $1 WHERE id = 1").bind(orig.len() as i64).execute(&app.app.db.pool).await.unwrap();
    let r = app.app.ledger.verify_all(|_, _| {}).await.unwrap();
    assert!(r.ok, "restore failed: {:?}", r.error);
}

async fn tampering_is_detected(app: TestApp) {
    for i in 0..30 {
        app.post("/api/v1/zones", &json!({"code": format!("Z{i}"), "name": "ゾーン", "level": "work"})).await;
        if i % 5 == 4 {
            app.app.ledger.checkpoint_all().await.unwrap();
        }
    }
    app.app.ledger.checkpoint_all().await.unwrap();
    let orig = entries(&app).await;
    let n = orig.len() as i64;
    assert!(n >= 32);
    let (_, e12, h12) = orig[12].clone();

    // 1. one byte of a stored event changed
    let mut e = e12.clone();
    let pos = e.iter().position(|b| *b == b'Z').unwrap();
    e[pos] = b'Y';
    put(&app, 12, &e, &h12).await;
    let err = verify_err(&app).await;
    assert!(err.contains("entry 12"), "{err}");
    // ... and with its leaf hash recomputed by the attacker: the signed checkpoint catches it
    put(&app, 12, &e, &mamori_ledger::leaf_hash(&e)).await;
    let err = verify_err(&app).await;
    assert!(err.contains("do not match the checkpoint"), "{err}");
    let range = err.split("entries ").nth(1).unwrap().split(' ').next().unwrap();
    let (a, b) = range.split_once("..").unwrap();
    assert!(a.parse::<i64>().unwrap() <= 12 && 12 < b.parse::<i64>().unwrap(), "{err} names the range holding entry 12");
    restore(&app, &orig).await;

    // 2. an event deleted
    sqlx::query("DELETE FROM ledger_entries WHERE log_id = 1 AND idx = 12").execute(&app.app.db.pool).await.unwrap();
    let err = verify_err(&app).await;
    assert!(err.contains("entry 12 is missing"), "{err}");
    restore(&app, &orig).await;

    // 3. two events reordered (with their hashes)
    let (_, e13, h13) = orig[13].clone();
    put(&app, 12, &e13, &h13).await;
    put(&app, 13, &e12, &h12).await;
    let err = verify_err(&app).await;
    assert!(err.contains("do not match the checkpoint"), "{err}");
    restore(&app, &orig).await;

    // 4. tail truncated, then forged events appended in its place
    sqlx::query("DELETE FROM ledger_entries WHERE log_id = 1 AND idx >= $1").bind(n - 5).execute(&app.app.db.pool).await.unwrap();
    sqlx::query("UPDATE ledger_logs SET size = $1 WHERE id = 1").bind(n - 5).execute(&app.app.db.pool).await.unwrap();
    let err = verify_err(&app).await;
    assert!(err.contains("truncated"), "{err}");
    for i in (n - 5)..n {
        let forged = mamori_ledger::Event::new(mamori_testkit::start_time(), mamori_core::auth::system_actor("forger"), "zone.create").encode();
        sqlx::query("INSERT INTO ledger_entries (log_id, idx, entry, leaf_hash, ts, action, actor, object) VALUES (1, $1, $2, $3, 0, 'x', 'x', '')")
            .bind(i)
            .bind(forged.as_slice())
            .bind(mamori_ledger::leaf_hash(&forged).as_slice())
            .execute(&app.app.db.pool)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE ledger_logs SET size = $1 WHERE id = 1").bind(n).execute(&app.app.db.pool).await.unwrap();
    let err = verify_err(&app).await;
    assert!(err.contains("do not match the checkpoint"), "{err}");
    restore(&app, &orig).await;

    // 5. a checkpoint replaced by one signed with another key
    let other = mamori_ledger::NoteSigner::generate("mamori.local", &mut rand::rngs::OsRng).unwrap();
    let (size, old): (i64, String) = sqlx::query_as("SELECT size, note FROM ledger_checkpoints WHERE log_id = 1 ORDER BY size LIMIT 1 OFFSET 1")
        .fetch_one(&app.app.db.pool)
        .await
        .unwrap();
    let cp = mamori_ledger::Checkpoint { origin: "mamori.local/centre".into(), size: size as u64, root: [7; 32] };
    sqlx::query("UPDATE ledger_checkpoints SET note = $1 WHERE log_id = 1 AND size = $2")
        .bind(other.sign_checkpoint(&cp))
        .bind(size)
        .execute(&app.app.db.pool)
        .await
        .unwrap();
    let err = verify_err(&app).await;
    assert!(err.contains(&format!("checkpoint at size {size} is not validly signed")), "{err}");
    sqlx::query("UPDATE ledger_checkpoints SET note = $1 WHERE log_id = 1 AND size = $2")
        .bind(old)
        .bind(size)
        .execute(&app.app.db.pool)
        .await
        .unwrap();

    // The command line names the same first bad entry (SQLite data dir; PostgreSQL by URL).
    if app.backend == Backend::Sqlite || app.backend == Backend::Postgres {
        let mut e = e12.clone();
        e[pos] = b'Y';
        put(&app, 12, &e, &h12).await;
        let out = Command::new(env!("CARGO_BIN_EXE_mamori"))
            .args(["--data-dir", app.data_dir().to_str().unwrap(), "--database-url", &app.database_url, "ledger", "verify"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("entry 12"), "{stderr}");
        put(&app, 12, &e12, &h12).await;
        let out = Command::new(env!("CARGO_BIN_EXE_mamori"))
            .args(["--data-dir", app.data_dir().to_str().unwrap(), "--database-url", &app.database_url, "ledger", "verify"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("ledger verified"));
    }
}

/// `mamori ledger export` and `mamori ledger check`: a client checks its bundle offline; a
/// changed, dropped or forged entry fails the check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_offline_check() {
    let app = mamori_testkit::spawn_app(Backend::Sqlite).await.unwrap();
    app.post("/api/v1/clients", &json!({"code": "CARDCO", "name": "カード会社A"})).await;
    for i in 0..6 {
        app.clock.advance(chrono::Duration::days(1));
        app.post("/api/v1/businesses", &json!({"code": format!("B{i}"), "name": "業務", "client": "CARDCO"})).await;
    }
    let dir = app.data_dir();
    let out = dir.join("bundle.json");
    let bin = env!("CARGO_BIN_EXE_mamori");
    let o = Command::new(bin)
        .args(["--data-dir", dir.to_str().unwrap(), "ledger", "export", "--client", "CARDCO", "--from", "2026-04-03", "--to", "2026-04-06", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let key = String::from_utf8(Command::new(bin).args(["--data-dir", dir.to_str().unwrap(), "ledger", "key"]).output().unwrap().stdout).unwrap();
    let key = key.trim();
    let check = |file: &std::path::Path| Command::new(bin).args(["ledger", "check", file.to_str().unwrap(), "--key", key]).output().unwrap();
    let o = check(&out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("OK: 3 events in range"), "{}", String::from_utf8_lossy(&o.stdout));

    let bundle: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let tampered = |name: &str, f: &dyn Fn(&mut serde_json::Value)| {
        let mut b = bundle.clone();
        f(&mut b);
        let p = dir.join(name);
        std::fs::write(&p, serde_json::to_vec(&b).unwrap()).unwrap();
        let o = check(&p);
        assert!(!o.status.success(), "{name} passed the check");
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let err = tampered("dropped.json", &|b| {
        b["entries"].as_array_mut().unwrap().remove(2);
    });
    assert!(err.contains("missing"), "{err}");
    let err = tampered("altered.json", &|b| {
        let e = b["entries"][1]["entry"].as_str().unwrap().to_owned();
        let mut raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, e).unwrap();
        let last = raw.len() - 3;
        raw[last] ^= 1;
        b["entries"][1]["entry"] = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw).into();
    });
    assert!(err.contains("entry"), "{err}");
    let err = tampered("checkpoint.json", &|b| {
        let mut lines: Vec<String> = b["checkpoint"].as_str().unwrap().split('\n').map(String::from).collect();
        lines[1] = (lines[1].parse::<u64>().unwrap() + 1).to_string();
        b["checkpoint"] = lines.join("\n").into();
    });
    assert!(err.contains("signed") || err.contains("signature"), "{err}");
    let err = tampered("truncated.json", &|b| {
        let n = b["entries"].as_array().unwrap().len();
        b["entries"].as_array_mut().unwrap().truncate(n - 1);
    });
    assert!(err.contains("left out"), "{err}");
}

/// A writer killed with SIGKILL while appending: after restart every acknowledged write is
/// present and the ledger verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_owned();
    let bin = env!("CARGO_BIN_EXE_mamori");
    let mut add = Command::new(bin)
        .args(["--data-dir", &d, "user", "add", "--login", "admin", "--name", "admin", "--role", "admin", "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    add.stdin.take().unwrap().write_all(b"correct horse battery staple\n").unwrap();
    assert!(add.wait().unwrap().success());
    let token = String::from_utf8(Command::new(bin).args(["--data-dir", &d, "token", "create", "--login", "admin"]).output().unwrap().stdout).unwrap();
    let token = token.trim().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(bin)
        .args(["--data-dir", &d, "serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if http.get(format!("{base}/api/v1/health")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (http, base, token, acked) = (http.clone(), base.clone(), token.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let code = format!("W{w}-{i}");
                let r = http
                    .post(format!("{base}/api/v1/zones"))
                    .bearer_auth(&token)
                    .json(&json!({"code": code, "name": "z", "level": "work"}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 201 => acked.lock().unwrap().push(code),
                    _ => break,
                }
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 10, "only {} writes acknowledged", acked.len());

    let o = Command::new(bin).args(["--data-dir", &d, "ledger", "verify"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new(bin).args(["--data-dir", &d, "ledger", "search", "--action", "zone.create", "--limit", "100000"]).output().unwrap();
    let found: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let found: std::collections::HashSet<String> =
        found.as_array().unwrap().iter().map(|e| e["object"].as_str().unwrap().trim_start_matches("zone:").to_owned()).collect();
    for code in &acked {
        assert!(found.contains(code), "acknowledged zone {code} lost");
    }
}

both_backends! {
    retention_prunes_but_tree_verifies => retention_prunes_but_tree_verifies;
}

/// Retention (issue 3 item 7): only configured, unprotected kinds are pruned, by a recorded
/// policy; the tree and a client's export still verify.
async fn retention_prunes_but_tree_verifies(app: TestApp) {
    use mamori_ledger::Event;
    let sys = || mamori_core::auth::system_actor("door-agent");
    app.post("/api/v1/clients", &json!({"code": "CARDCO", "name": "カード会社A"})).await;
    for i in 0..5 {
        app.app.ledger.append(Event::new(app.app.clock.now(), sys(), "door.sensor_sample").detail("i", i).client("CARDCO")).await.unwrap();
        app.app.ledger.append(Event::new(app.app.clock.now(), sys(), "door.entry").detail("i", i)).await.unwrap();
    }
    app.app.ledger.checkpoint_all().await.unwrap();
    app.clock.advance(chrono::Duration::days(100));
    app.app.ledger.append(Event::new(app.app.clock.now(), sys(), "door.sensor_sample").client("CARDCO")).await.unwrap();
    // protected records cannot be pruned
    for bad in ["data.", "session.login", "ledger.", "da"] {
        assert!(app.app.ledger.prune(&[bad.to_owned()], app.app.clock.now()).await.is_err(), "{bad}");
    }
    let before = app.app.clock.now() - chrono::Duration::days(90);
    let n = app.app.ledger.prune(&["door.sensor_".to_owned()], before).await.unwrap();
    assert_eq!(n, 10, "5 in the centre log and 5 in the client's");
    app.app.ledger.checkpoint_all().await.unwrap();
    let rep = app.app.ledger.verify_all(|_, _| {}).await.unwrap();
    assert!(rep.ok, "{:?}", rep.error);
    assert_eq!(rep.logs.iter().map(|l| l.pruned).sum::<u64>(), 10);
    let actions = app.actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "door.entry").count(), 5, "other kinds kept");
    assert_eq!(actions.iter().filter(|a| *a == "door.sensor_sample").count(), 1, "the recent one kept");
    assert!(actions.iter().any(|a| a == "ledger.prune"));
    let bundle = app.app.ledger.export_client("CARDCO", mamori_testkit::start_time(), app.app.clock.now() + chrono::Duration::days(1)).await.unwrap();
    assert!(bundle.entries.iter().any(|e| e.pruned_leaf.is_some()));
    mamori_ledger::check_bundle(&bundle, &app.app.ledger.verifier()).unwrap();
}

both_backends! {
    time_in_a_log_never_goes_back => time_in_a_log_never_goes_back;
}

/// An event built a moment before another can commit after it; the ledger records it no
/// earlier than the entry before it, so that exports keep checking (their completeness rests
/// on time order).
async fn time_in_a_log_never_goes_back(app: TestApp) {
    use mamori_ledger::Event;
    app.post("/api/v1/clients", &json!({"code": "CARDCO", "name": "カード会社A"})).await;
    let t = app.app.clock.now();
    let sys = || mamori_core::auth::system_actor("test");
    app.app.ledger.append(Event::new(t + chrono::Duration::seconds(10), sys(), "door.entry").client("CARDCO")).await.unwrap();
    // built earlier, committed later: in both logs
    app.app.ledger.append(Event::new(t, sys(), "door.exit").client("CARDCO")).await.unwrap();
    app.app.ledger.append(Event::new(t + chrono::Duration::seconds(5), sys(), "door.exit")).await.unwrap();
    for client in [None, Some("CARDCO".to_owned())] {
        let rows = app.app.ledger.search(&mamori_core::ledger::SearchFilter { client, ..Default::default() }).await.unwrap();
        let ts: Vec<_> = rows.iter().rev().map(|r| r.event.at().unwrap()).collect();
        assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
    }
    let rep = app.app.ledger.verify_all(|_, _| {}).await.unwrap();
    assert!(rep.ok, "{:?}", rep.error);
    let b = app.app.ledger.export_client("CARDCO", t - chrono::Duration::hours(1), t + chrono::Duration::hours(1)).await.unwrap();
    mamori_ledger::check_bundle(&b, &app.app.ledger.verifier()).unwrap();
}

both_backends! {
    group_commit_isolates_each_change => group_commit_isolates_each_change;
}

/// A change written in a group commit with its event (`append_with`, as a keyed-in record is,
/// DATA-4 and AUDIT-1): a refused change and a change that fails in the database each fail
/// alone, with nothing of them written and no event; the others commit with their events.
async fn group_commit_isolates_each_change(app: TestApp) {
    use mamori_core::error::CoreError;
    use mamori_core::ledger::{BatchStep, SearchFilter};
    use mamori_ledger::Event;
    struct Put(&'static str);
    impl BatchStep for Put {
        fn apply<'c>(
            &'c self,
            conn: &'c mut sqlx::AnyConnection,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = mamori_core::error::Result<()>> + Send + 'c>> {
            Box::pin(async move {
                if self.0 == "refuse" {
                    return Err(CoreError::Conflict("refused".into()));
                }
                sqlx::query("INSERT INTO register_settings (key, value) VALUES ($1, 'x')").bind(self.0).execute(&mut *conn).await?;
                Ok(())
            })
        }
        // The SQLite writer's own connection (the same change, the same refusal).
        fn apply_sqlite(&self, conn: &rusqlite::Connection) -> mamori_core::error::Result<()> {
            if self.0 == "refuse" {
                return Err(CoreError::Conflict("refused".into()));
            }
            conn.execute("INSERT INTO register_settings (key, value) VALUES ($1, 'x')", [self.0])?;
            Ok(())
        }
    }
    sqlx::query("INSERT INTO register_settings (key, value) VALUES ('dup', 'x')").execute(&app.app.db.pool).await.unwrap();
    let t = app.app.clock.now();
    let sys = || mamori_core::auth::system_actor("test");
    let ledger = &app.app.ledger;
    for _round in 0..3 {
        let _ = sqlx::query("DELETE FROM register_settings WHERE key IN ('a', 'b')").execute(&app.app.db.pool).await.unwrap();
        let (a, refused, dup, plain, b) = tokio::join!(
            ledger.append_with(Event::new(t, sys(), "test.a"), Box::new(Put("a"))),
            ledger.append_with(Event::new(t, sys(), "test.refused"), Box::new(Put("refuse"))),
            ledger.append_with(Event::new(t, sys(), "test.dup"), Box::new(Put("dup"))),
            ledger.append(Event::new(t, sys(), "test.plain")),
            ledger.append_with(Event::new(t, sys(), "test.b"), Box::new(Put("b"))),
        );
        assert!(a.is_ok() && plain.is_ok() && b.is_ok(), "{a:?} {plain:?} {b:?}");
        assert!(matches!(refused, Err(CoreError::Conflict(_))), "{refused:?}");
        assert!(dup.is_err());
    }
    let keys: Vec<(String,)> = sqlx::query_as("SELECT key FROM register_settings ORDER BY key").fetch_all(&app.app.db.pool).await.unwrap();
    assert_eq!(keys.into_iter().map(|k| k.0).collect::<Vec<_>>(), ["a", "b", "dup"]);
    for (action, n) in [("test.a", 3), ("test.b", 3), ("test.plain", 3), ("test.refused", 0), ("test.dup", 0)] {
        let f = SearchFilter { action: Some(action.into()), ..Default::default() };
        assert_eq!(ledger.search(&f).await.unwrap().len(), n, "{action}");
    }
    // Checkpoints signed over the proof trees (fed from the writer's committed hashes, and from
    // the store for entries appended in a caller's transaction) agree with the stored rows.
    for code in ["GC1", "GC2"] {
        let r = app.post("/api/v1/clients", &serde_json::json!({"code": code, "name": code})).await;
        assert!(r.status().is_success());
        ledger.append(Event::new(t, sys(), "test.after").client(code)).await.unwrap();
        assert!(ledger.checkpoint_all().await.unwrap() > 0);
    }
    let rep = ledger.verify_all(|_, _| {}).await.unwrap();
    assert!(rep.ok, "{:?}", rep.error);
}

both_backends! {
    checkpoints_are_signed_once_through_the_group_commit => checkpoints_are_signed_once_through_the_group_commit;
}

/// Checkpoint signing (AUDIT-1) goes through the group-commit writer: callers racing each other
/// store each log's checkpoint at a size once, record each client checkpoint by exactly one
/// `ledger.checkpoint` event in the centre log, and the centre's checkpoint covers those events.
async fn checkpoints_are_signed_once_through_the_group_commit(app: TestApp) {
    use mamori_ledger::Event;
    let sys = || mamori_core::auth::system_actor("door-agent");
    let ledger = &app.app.ledger;
    for code in ["CP1", "CP2"] {
        assert!(app.post("/api/v1/clients", &json!({"code": code, "name": code})).await.status().is_success());
    }
    for round in 0..3 {
        for code in ["CP1", "CP2"] {
            for i in 0..4 {
                ledger.append(Event::new(app.app.clock.now(), sys(), "door.entry").detail("i", i).client(code)).await.unwrap();
            }
        }
        let (a, b, c) = tokio::join!(ledger.checkpoint_all(), ledger.checkpoint_all(), ledger.checkpoint_all());
        let signed = a.unwrap() + b.unwrap() + c.unwrap();
        // Both client logs and the centre log grew: three checkpoints, whoever signed them.
        assert!(signed >= 3, "round {round}: {signed} signed");
    }
    let per_size: Vec<(i64, i64, i64)> =
        sqlx::query_as("SELECT log_id, size, COUNT(*) FROM ledger_checkpoints GROUP BY log_id, size HAVING COUNT(*) > 1")
            .fetch_all(&app.app.db.pool)
            .await
            .unwrap();
    assert!(per_size.is_empty(), "{per_size:?}");
    let mut client_cps: Vec<(String, i64)> = sqlx::query_as(
        "SELECT l.origin, c.size FROM ledger_checkpoints c JOIN ledger_logs l ON l.id = c.log_id WHERE c.log_id <> 1",
    )
    .fetch_all(&app.app.db.pool)
    .await
    .unwrap();
    let f = mamori_core::ledger::SearchFilter { action: Some("ledger.checkpoint".into()), limit: Some(1000), ..Default::default() };
    let events = ledger.search(&f).await.unwrap();
    let mut recorded: Vec<(String, i64)> = events
        .iter()
        .map(|e| {
            let log = e.event.object.as_ref().map(|o| o.id.clone()).unwrap_or_default();
            (log, e.event.detail.get("size").and_then(|v| v.parse().ok()).unwrap_or(-1))
        })
        .collect();
    client_cps.sort();
    recorded.sort();
    assert_eq!(client_cps.len(), 6, "three rounds of two client logs");
    assert_eq!(recorded, client_cps, "one event per client checkpoint");
    // The centre's latest checkpoint covers the last client checkpoint's event.
    let (centre, _) = ledger.latest_checkpoint(1).await.unwrap().unwrap();
    let last_event = events.iter().map(|e| e.index).max().unwrap();
    assert!(centre > last_event, "centre checkpoint at {centre}, last checkpoint event at {last_event}");
    let rep = ledger.verify_all(|_, _| {}).await.unwrap();
    assert!(rep.ok, "{:?}", rep.error);
}

both_backends! {
    proof_trees_grown_between_checkpoints_match_the_store => proof_trees_grown_between_checkpoints_match_the_store;
}

/// Between checkpoints the checkpointer hashes what the group-commit writer committed into the
/// proof trees (`grow_trees`), in small steps. Grown across gaps (entries appended in a
/// caller's own transaction, which the writer never saw) and in several steps, the trees still
/// give the roots the stored rows give (AUDIT-1) and inclusion proofs that verify.
async fn proof_trees_grown_between_checkpoints_match_the_store(app: TestApp) {
    use mamori_ledger::Event;
    let sys = || mamori_core::auth::system_actor("door-agent");
    let ledger = &app.app.ledger;
    assert!(app.post("/api/v1/clients", &json!({"code": "GT1", "name": "GT1"})).await.status().is_success());
    for round in 0..4 {
        for i in 0..5 {
            ledger.append(Event::new(app.app.clock.now(), sys(), "door.entry").detail("i", i).client("GT1")).await.unwrap();
            ledger.append(Event::new(app.app.clock.now(), sys(), "door.entry").detail("i", i)).await.unwrap();
            if i == 2 {
                ledger.grow_trees().await.unwrap();
            }
        }
        // An entry of the centre log from a transaction of its own: a gap for the trees.
        let r = app.post("/api/v1/zones", &json!({"code": format!("GZ{round}"), "name": "ゾーン", "level": "work"})).await;
        assert!(r.status().is_success());
        ledger.grow_trees().await.unwrap();
        if round == 1 {
            assert!(ledger.checkpoint_all().await.unwrap() >= 2, "round {round}");
        }
    }
    assert!(ledger.checkpoint_all().await.unwrap() >= 2, "the client log and the centre log grew");
    let rep = ledger.verify_all(|_, _| {}).await.unwrap();
    assert!(rep.ok, "{:?}", rep.error);
    let logs: Vec<(i64, i64)> = sqlx::query_as("SELECT id, size FROM ledger_logs").fetch_all(&app.app.db.pool).await.unwrap();
    for (log, size) in logs.into_iter().filter(|l| l.1 > 0) {
        for index in [0, size / 2, size - 1] {
            let p = ledger.proof(log, index as u64).await.unwrap();
            assert_eq!(p["verified"], true, "log {log} entry {index}: {p}");
        }
    }
}
