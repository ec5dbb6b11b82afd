//! Key files in the data directory: created with mode 0600; mamori refuses to start if one is
//! readable by others. Contents never reach a log or an error message.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{CoreError, Result};

#[cfg(unix)]
fn check_mode(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(CoreError::Config(format!(
            "key file {} is readable by group or others (mode {:o}); run chmod 600 on it",
            path.display(),
            mode & 0o777
        )));
    }
    Ok(())
}
#[cfg(not(unix))]
fn check_mode(_: &Path) -> Result<()> {
    Ok(())
}

/// Reads a secret file, refusing one that others can read.
pub fn read_secret(path: &Path) -> Result<zeroize::Zeroizing<String>> {
    check_mode(path)?;
    Ok(zeroize::Zeroizing::new(fs::read_to_string(path)?))
}

/// Reads the secret at `path`, or creates it with `make()` and mode 0600.
pub fn load_or_create(path: &Path, make: impl FnOnce() -> String) -> Result<zeroize::Zeroizing<String>> {
    if path.exists() {
        return read_secret(path);
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let secret = zeroize::Zeroizing::new(make());
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(secret.as_bytes())?;
    f.sync_all()?;
    Ok(secret)
}
