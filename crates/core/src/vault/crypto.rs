//! Field encryption (DATA-4): each business has a data key (DEK) that seals its field values
//! with XChaCha20-Poly1305 under a fresh random nonce and an AAD naming business, record and
//! field, so a value moved to another record or field fails to open. DEKs are kept only
//! wrapped by the key-encryption key (KEK), and both live outside the database behind
//! [`KeyProvider`]: by default a 0600 KEK file and a 0700 directory of wrapped data keys, each
//! under a random name that the database refers to; an HSM or KMS can implement the trait.
//! Because no data key is in the database, a database backup holds none: destroying a DEK in
//! the key store makes every value it sealed unreadable, in backups taken before too
//! (crypto-shredding).

use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::error::{CoreError, Result};

const NONCE: usize = 24;
const VERSION: u8 = 1;

/// Wraps, keeps and destroys data keys, outside the database.
pub trait KeyProvider: Send + Sync {
    fn wrap(&self, dek: &[u8; 32], aad: &[u8]) -> Result<Vec<u8>>;
    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<[u8; 32]>>;
    /// Keeps a wrapped data key under `kid` (a random name), durably.
    fn store(&self, kid: &str, wrapped: &[u8]) -> Result<()>;
    /// The wrapped data key named `kid`, or None when it was destroyed (or never existed here).
    fn load(&self, kid: &str) -> Result<Option<Vec<u8>>>;
    /// Destroys a data key for good.
    fn destroy(&self, kid: &str) -> Result<()>;
    /// Re-wraps every stored data key under a new KEK (KEK rotation), returning how many.
    fn rotate(&self) -> Result<usize>;
}

/// The KEK in a key file (64 hex digits, mode 0600), created on first use, and the wrapped
/// data keys in a directory beside it (mode 0700, one 0600 file per key).
pub struct FileKek {
    path: PathBuf,
    key: std::sync::RwLock<Zeroizing<[u8; 32]>>,
    dir: PathBuf,
}

fn kid_ok(kid: &str) -> Result<()> {
    if kid.len() == 32 && kid.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(CoreError::Internal("malformed data key name".into()))
    }
}

/// A fresh random name for a data key.
pub fn new_kid() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("partial");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A key file's 64 hexadecimal digits as a key.
fn key_from_hex(path: &Path, hexkey: &str) -> Result<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(hex::decode(hexkey.trim()).map_err(|_| CoreError::Config(format!("{}: not hexadecimal", path.display())))?);
    let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| CoreError::Config(format!("{}: must hold 32 bytes", path.display())))?;
    Ok(Zeroizing::new(key))
}

impl FileKek {
    /// Loads the KEK at `path` (or creates it) with the key store in `<path>.d/`.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        let mut key = key_from_hex(path, &crate::keys::load_or_create(path, || hex::encode(new_dek().as_slice()))?)?;
        let mut dir = path.as_os_str().to_owned();
        dir.push(".d");
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        // A rotation that stopped half-way is finished before anything else.
        let next = path.with_extension("kek.next");
        if next.exists() {
            let new = key_from_hex(&next, &crate::keys::read_secret(&next)?)?;
            rewrap_all(&dir, &key, &new)?;
            std::fs::rename(&next, path)?;
            key = new;
        }
        Ok(Self { path: path.to_owned(), key: std::sync::RwLock::new(key), dir })
    }

    fn kek(&self) -> Result<Zeroizing<[u8; 32]>> {
        self.key.read().map(|k| k.clone()).map_err(|_| CoreError::Internal("key lock poisoned".into()))
    }
}

impl KeyProvider for FileKek {
    fn wrap(&self, dek: &[u8; 32], aad: &[u8]) -> Result<Vec<u8>> {
        // The AAD travels with the wrapped key so that rotation can re-wrap it unseen.
        let mut out = Vec::with_capacity(2 + aad.len() + 80);
        out.extend_from_slice(&u16::try_from(aad.len()).map_err(|_| CoreError::Internal("aad too long".into()))?.to_be_bytes());
        out.extend_from_slice(aad);
        out.extend_from_slice(&seal(&*self.kek()?, dek, aad)?);
        Ok(out)
    }
    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let (stored_aad, sealed) = split_wrapped(wrapped)?;
        if stored_aad != aad {
            return Err(CoreError::Internal("data key belongs to another business or key".into()));
        }
        let p = Zeroizing::new(open(&*self.kek()?, sealed, aad)?);
        let k: [u8; 32] = p.as_slice().try_into().map_err(|_| CoreError::Internal("wrapped key of the wrong size".into()))?;
        Ok(Zeroizing::new(k))
    }
    fn store(&self, kid: &str, wrapped: &[u8]) -> Result<()> {
        kid_ok(kid)?;
        write_private(&self.dir.join(kid), wrapped)
    }
    fn load(&self, kid: &str) -> Result<Option<Vec<u8>>> {
        kid_ok(kid)?;
        match std::fs::read(self.dir.join(kid)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    fn destroy(&self, kid: &str) -> Result<()> {
        kid_ok(kid)?;
        let p = self.dir.join(kid);
        match std::fs::metadata(&p) {
            Ok(m) => {
                // Overwrite before unlinking (best effort on journaling or copy-on-write file
                // systems; the key was only ever stored wrapped by the KEK).
                let len = usize::try_from(m.len()).unwrap_or(0);
                write_private(&p, &vec![0u8; len])?;
                std::fs::remove_file(&p)?;
                std::fs::File::open(&self.dir)?.sync_all()?;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
    fn rotate(&self) -> Result<usize> {
        let mut guard = self.key.write().map_err(|_| CoreError::Internal("key lock poisoned".into()))?;
        let new = new_dek();
        // The new KEK is written beside the old one first; keys are re-wrapped one file at a
        // time (each rename is atomic, and unwrapping tries both KEKs until the swap).
        let next = self.path.with_extension("kek.next");
        write_private(&next, hex::encode(new.as_slice()).as_bytes())?;
        let n = rewrap_all(&self.dir, &guard, &new)?;
        std::fs::rename(&next, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        *guard = new;
        Ok(n)
    }
}

/// Re-wraps every data key in `dir` from `old` to `new`; keys already under `new` (a rotation
/// that was interrupted and resumed) are left as they are.
fn rewrap_all(dir: &Path, old: &[u8; 32], new: &[u8; 32]) -> Result<usize> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else { continue };
        if kid_ok(name).is_err() {
            continue;
        }
        let wrapped = std::fs::read(&p)?;
        let (aad, sealed) = split_wrapped(&wrapped)?;
        let dek = match open(old, sealed, aad) {
            Ok(d) => Zeroizing::new(d),
            Err(_) if open(new, sealed, aad).is_ok() => continue,
            Err(e) => return Err(e),
        };
        let mut out = Vec::with_capacity(wrapped.len());
        out.extend_from_slice(&wrapped[..2 + aad.len()]);
        out.extend_from_slice(&seal(new, &dek, aad)?);
        write_private(&p, &out)?;
        n += 1;
    }
    Ok(n)
}

fn split_wrapped(w: &[u8]) -> Result<(&[u8], &[u8])> {
    let bad = || CoreError::Internal("wrapped data key malformed".into());
    let len = usize::from(u16::from_be_bytes([*w.first().ok_or_else(bad)?, *w.get(1).ok_or_else(bad)?]));
    let aad = w.get(2..2 + len).ok_or_else(bad)?;
    Ok((aad, w.get(2 + len..).ok_or_else(bad)?))
}

/// A fresh random data key.
pub fn new_dek() -> Zeroizing<[u8; 32]> {
    let mut k = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(k.as_mut());
    k
}

/// `version ‖ nonce ‖ ciphertext+tag`.
pub fn seal(key: &[u8; 32], plain: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let mut nonce = [0u8; NONCE];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
        .map_err(|_| CoreError::Internal("encryption failed".into()))?;
    let mut out = Vec::with_capacity(1 + NONCE + ct.len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens a sealed value; any change to it, its nonce or its AAD is detected.
pub fn open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < 1 + NONCE + 16 || sealed[0] != VERSION {
        return Err(CoreError::Internal("sealed value malformed".into()));
    }
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt(XNonce::from_slice(&sealed[1..1 + NONCE]), Payload { msg: &sealed[1 + NONCE..], aad })
        .map_err(|_| CoreError::Internal("sealed value does not verify (tampered, or the key is wrong)".into()))
}

/// Normalises a value for equality search: full-width ASCII to half-width, letters lowercased,
/// and only letters and digits kept (so `090-1234-5678`, `０９０ １２３４ ５６７８` and
/// `09012345678` are the same).
pub fn normalise_for_search(v: &str) -> String {
    v.chars()
        .map(|c| match u32::from(c) {
            u @ 0xFF01..=0xFF5E => char::from_u32(u - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A keyed blind index (HMAC-SHA256 under the business's index key) of a field's value.
pub fn blind_index(key: &[u8; 32], field: &str, value: &str) -> Result<String> {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key).map_err(|_| CoreError::Internal("index key".into()))?;
    mac.update(field.as_bytes());
    mac.update(&[0]);
    mac.update(normalise_for_search(value).as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// The AAD of one field value.
pub fn field_aad(business: i64, record_uid: &str, field: &str) -> Vec<u8> {
    format!("mamori-vault/v1|{business}|{record_uid}|{field}").into_bytes()
}

/// The AAD of a wrapped data key.
pub fn key_aad(business: i64, key_id: i64) -> Vec<u8> {
    format!("mamori-dek/v1|{business}|{key_id}").into_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn key_store_rotation_and_destruction() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("vault.kek");
        let kek = FileKek::load_or_create(&path).unwrap();
        let dek = new_dek();
        let kid = new_kid();
        kek.store(&kid, &kek.wrap(&dek, b"b1").unwrap()).unwrap();
        let before = std::fs::read(&path).unwrap();
        assert_eq!(kek.rotate().unwrap(), 1);
        assert_ne!(std::fs::read(&path).unwrap(), before, "a new KEK");
        // The same process and a fresh load both open the re-wrapped key.
        assert_eq!(*kek.unwrap(&kek.load(&kid).unwrap().unwrap(), b"b1").unwrap(), *dek);
        let again = FileKek::load_or_create(&path).unwrap();
        assert_eq!(*again.unwrap(&again.load(&kid).unwrap().unwrap(), b"b1").unwrap(), *dek);
        assert!(again.unwrap(&again.load(&kid).unwrap().unwrap(), b"b2").is_err(), "bound to its business");
        again.destroy(&kid).unwrap();
        assert!(again.load(&kid).unwrap().is_none());
        assert!(again.load("../vault.kek").is_err(), "names are checked");
    }

    #[test]
    fn blind_indexes_are_keyed_and_normalised() {
        let k = new_dek();
        let a = blind_index(&k, "phone", "090-1234-5678").unwrap();
        assert_eq!(a, blind_index(&k, "phone", "０９０ １２３４ ５６７８").unwrap());
        assert_eq!(a, blind_index(&k, "phone", "09012345678").unwrap());
        assert_ne!(a, blind_index(&k, "phone", "09012345679").unwrap());
        assert_ne!(a, blind_index(&k, "fax", "09012345678").unwrap(), "per field");
        assert_ne!(a, blind_index(&new_dek(), "phone", "09012345678").unwrap(), "per key");
    }

    #[test]
    fn nonces_are_fresh_and_aad_binds() {
        let k = new_dek();
        let a = seal(&k, b"090-1234-5678", b"x").unwrap();
        let b = seal(&k, b"090-1234-5678", b"x").unwrap();
        assert_ne!(a, b, "same plaintext, different ciphertexts");
        assert_eq!(open(&k, &a, b"x").unwrap(), b"090-1234-5678");
        assert!(open(&k, &a, b"y").is_err(), "moved to another field or record");
        assert!(open(&new_dek(), &a, b"x").is_err(), "another key");
    }

    proptest! {
        #[test]
        fn any_flipped_bit_is_detected(msg in proptest::collection::vec(any::<u8>(), 0..64), pos in any::<usize>(), bit in 0u8..8) {
            let k = new_dek();
            let mut s = seal(&k, &msg, b"aad").unwrap();
            let i = pos % s.len();
            s[i] ^= 1 << bit;
            prop_assert!(open(&k, &s, b"aad").is_err());
        }
    }
}
