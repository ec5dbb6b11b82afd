//! Backups (LIFE-5): a backup taken while writes go on restores to a database that verifies and
//! holds every write acknowledged before the backup began; only the newest N are kept.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mamori_core::{Mamori, OpenOptions};
use mamori_testkit::{both_backends, Backend, TestApp};
use serde_json::json;

both_backends! {
    backup_while_writing_restores => backup_while_writing_restores;
}

async fn backup_while_writing_restores(app: TestApp) {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let writer = {
        let (stop, acked, http, url, token) =
            (stop.clone(), acked.clone(), app.http.clone(), app.url("/api/v1/zones"), app.admin_token.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let code = format!("BK{i}");
                let r = http.post(&url).bearer_auth(&token).json(&json!({"code": code, "name": "z", "level": "work"})).send().await.unwrap();
                assert_eq!(r.status(), 201);
                acked.lock().unwrap().push(code);
                i += 1;
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before: Vec<String> = acked.lock().unwrap().clone();
    let backups = app.data_dir().join("backups");
    let first = app.app.backup(&backups, 1).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    app.clock.advance(chrono::Duration::seconds(1));
    let second = app.app.backup(&backups, 1).await.unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(before.len() > 3, "writes went on: {}", before.len());
    // only the newest is kept (LIFE-5: older backups are erased)
    let files = mamori_core::backup::list_backups(&backups).unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].to_string_lossy(), second.file);
    assert!(second.removed.iter().any(|r| first.file.ends_with(r.as_str())));
    // the file is encrypted: no plaintext SQL or names in it
    let raw = std::fs::read(&files[0]).unwrap();
    assert!(raw.starts_with(b"age-encryption.org/v1"));
    assert!(!raw.windows(6).any(|w| w == b"zone.c"));

    // restore into a fresh store with the same keys
    let target = tempfile::tempdir().unwrap();
    for k in ["ledger.key", "backup.key"] {
        std::fs::copy(app.data_dir().join(k), target.path().join(k)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(target.path().join(k), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
    let (url, pg) = match app.backend {
        Backend::Sqlite => (mamori_core::db::sqlite_url(target.path()), None),
        Backend::Postgres => {
            let (name, url) = mamori_testkit::fresh_pg_database().await.unwrap();
            (url, Some(name))
        }
    };
    mamori_core::backup::restore(target.path(), &url, &files[0], &target.path().join("backup.key")).await.unwrap();
    let mut o = OpenOptions::new(target.path());
    o.database_url = Some(url.clone());
    let restored = Mamori::open(o).await.unwrap();
    let rep = restored.ledger.verify_all(|_, _| {}).await.unwrap();
    assert!(rep.ok, "{:?}", rep.error);
    let zones: Vec<(String,)> = sqlx::query_as("SELECT code FROM zones").fetch_all(&restored.db.pool).await.unwrap();
    let zones: std::collections::HashSet<String> = zones.into_iter().map(|z| z.0).collect();
    for code in &before {
        assert!(zones.contains(code), "acknowledged write {code} missing from the restored backup");
    }
    // the backups are ledger events
    let actions = app.actions().await;
    assert_eq!(actions.iter().filter(|a| *a == "backup.create").count(), 2);
    restored.db.close().await;
    if let Some(name) = pg {
        mamori_testkit::drop_pg_database(&name);
    }
}

/// The first administrator is created from the command line, and an API token printed for it.
#[tokio::test]
async fn cli_user_and_token() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let bin = env!("CARGO_BIN_EXE_mamori");
    let run = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut c = std::process::Command::new(bin)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    };
    let o = run(&["--data-dir", d, "user", "add", "--login", "ciso", "--name", "情報 太郎", "--role", "ciso", "--password-stdin"], "short\n");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("at least 12"));
    let o = run(&["--data-dir", d, "user", "add", "--login", "ciso", "--name", "情報 太郎", "--role", "ciso", "--password-stdin"], "correct horse battery staple\n");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["--data-dir", d, "token", "create", "--login", "ciso"], "");
    let token = String::from_utf8(o.stdout).unwrap();
    assert!(token.trim().starts_with("mmt_"));
    // the key files are private
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ledger.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0);
        std::fs::set_permissions(dir.path().join("ledger.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let o = run(&["--data-dir", d, "ledger", "verify"], "");
        assert!(!o.status.success(), "must refuse a key file readable by others");
        assert!(String::from_utf8_lossy(&o.stderr).contains("chmod 600"));
    }
}
