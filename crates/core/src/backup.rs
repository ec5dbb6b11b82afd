//! Encrypted backups (LIFE-5): a consistent snapshot taken while the server runs (SQLite
//! `VACUUM INTO`; PostgreSQL `pg_dump`, which reads one snapshot), encrypted with `age` to the
//! centre's backup key, the newest `keep` kept and older ones erased; each backup and each
//! restore is a ledger event.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use mamori_ledger::Event;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::auth::system_actor;
use crate::db::Backend;
use crate::error::{CoreError, Result};
use crate::Mamori;

pub const BACKUP_PREFIX: &str = "mamori-backup-";
pub const BACKUP_SUFFIX: &str = ".age";

#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
    pub removed: Vec<String>,
}

/// Loads (or creates, mode 0600) the age identity that backups are encrypted to.
pub fn backup_identity(path: &Path) -> Result<age::x25519::Identity> {
    let s = crate::keys::load_or_create(path, || age::x25519::Identity::generate().to_string().expose_secret().to_owned())?;
    age::x25519::Identity::from_str(s.trim()).map_err(|_| CoreError::Config(format!("{} is not an age identity", path.display())))
}

fn encrypt_file(plain: &Path, out: &Path, recipient: &age::x25519::Recipient) -> Result<()> {
    let enc = age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
        .map_err(|e| CoreError::Internal(format!("age: {e}")))?;
    let tmp = out.with_extension("partial");
    let file = fs::File::create(&tmp)?;
    let mut w = enc.wrap_output(file)?;
    let mut r = fs::File::open(plain)?;
    std::io::copy(&mut r, &mut w)?;
    let file = w.finish()?;
    file.sync_all()?;
    fs::rename(&tmp, out)?;
    Ok(())
}

/// Decrypts a backup file into `out`.
pub fn decrypt_file(input: &Path, out: &Path, identity: &age::x25519::Identity) -> Result<()> {
    let f = fs::File::open(input)?;
    let dec = age::Decryptor::new(std::io::BufReader::new(f)).map_err(|e| CoreError::invalid("backup", format!("not an age file: {e}")))?;
    let mut r = dec
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .map_err(|_| CoreError::invalid("backup", "cannot decrypt with this backup key"))?;
    let mut o = fs::File::create(out)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        o.write_all(&buf[..n])?;
    }
    o.sync_all()?;
    Ok(())
}

fn sha256_file(p: &Path) -> Result<String> {
    let mut f = fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Backups in `dir`, oldest first (their names sort by time).
pub fn list_backups(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(BACKUP_PREFIX) && n.ends_with(BACKUP_SUFFIX))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    v.sort();
    Ok(v)
}

fn run(cmd: &str, args: &[&str]) -> Result<()> {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| CoreError::Config(format!("cannot run {cmd}: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or("").to_owned();
        return Err(CoreError::Internal(format!("{cmd} failed: {first}")));
    }
    Ok(())
}

impl Mamori {
    /// Takes an encrypted snapshot into `dir` and keeps the newest `keep`.
    pub async fn backup(&self, dir: &Path, keep: usize) -> Result<BackupReport> {
        fs::create_dir_all(dir)?;
        let identity = backup_identity(&self.backup_key_path())?;
        let now = self.clock.now();
        let stamp = now.format("%Y%m%dT%H%M%S%.3fZ").to_string();
        let plain = dir.join(format!(".{BACKUP_PREFIX}{stamp}.tmp"));
        let out = dir.join(format!("{BACKUP_PREFIX}{stamp}{BACKUP_SUFFIX}"));
        let _ = fs::remove_file(&plain);
        match self.db.backend {
            Backend::Sqlite => {
                sqlx::query("VACUUM INTO $1").bind(plain.to_string_lossy().to_string()).execute(&self.db.pool).await?;
            }
            Backend::Postgres => {
                let url = self.db.url.clone();
                let p = plain.to_string_lossy().to_string();
                tokio::task::spawn_blocking(move || run("pg_dump", &["--format=custom", "--no-owner", "--dbname", &url, "--file", &p]))
                    .await
                    .map_err(|e| CoreError::Internal(e.to_string()))??;
            }
        }
        let (p2, o2, r) = (plain.clone(), out.clone(), identity.to_public());
        let enc = tokio::task::spawn_blocking(move || encrypt_file(&p2, &o2, &r)).await;
        let _ = fs::remove_file(&plain);
        enc.map_err(|e| CoreError::Internal(e.to_string()))??;
        let sha = sha256_file(&out)?;
        let bytes = fs::metadata(&out)?.len();
        let mut removed = Vec::new();
        let all = list_backups(dir)?;
        let keep = keep.max(1);
        if all.len() > keep {
            for old in &all[..all.len() - keep] {
                fs::remove_file(old)?;
                removed.push(old.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default());
            }
        }
        let file = out.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let ev = Event::new(now, system_actor("backup"), "backup.create")
            .object("backup", &file)
            .detail("sha256", &sha)
            .detail("bytes", bytes)
            .detail("removed", removed.join(","));
        self.ledger.append(ev).await?;
        Ok(BackupReport { file: out.to_string_lossy().to_string(), sha256: sha, bytes, removed })
    }
}

/// Restores a backup into the store at `url` (the server must be stopped). For SQLite the
/// database file in `data_dir` is replaced; for PostgreSQL the dump is restored over it.
pub async fn restore(data_dir: &Path, url: &str, file: &Path, identity_path: &Path) -> Result<()> {
    let identity = backup_identity(identity_path)?;
    let tmp = data_dir.join(".mamori-restore.tmp");
    let (f, t) = (file.to_path_buf(), tmp.clone());
    tokio::task::spawn_blocking(move || decrypt_file(&f, &t, &identity))
        .await
        .map_err(|e| CoreError::Internal(e.to_string()))??;
    if url.starts_with("sqlite:") {
        let path = crate::db::sqlite_path(url).ok_or_else(|| CoreError::Config("restore needs a SQLite database file".into()))?;
        for ext in ["-wal", "-shm"] {
            let _ = fs::remove_file(format!("{path}{ext}"));
        }
        fs::rename(&tmp, &path)?;
    } else {
        let u = url.to_owned();
        let t = tmp.to_string_lossy().to_string();
        let r = tokio::task::spawn_blocking(move || {
            run("pg_restore", &["--clean", "--if-exists", "--no-owner", "--single-transaction", "--dbname", &u, &t])
        })
        .await
        .map_err(|e| CoreError::Internal(e.to_string()));
        let _ = fs::remove_file(&tmp);
        r??;
    }
    Ok(())
}
