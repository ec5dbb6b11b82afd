//! Field encryption (DATA-4): each business has a data key (DEK) that seals its field values
//! with XChaCha20-Poly1305 under a fresh random nonce and an AAD naming business, record and
//! field, so a value moved to another record or field fails to open. DEKs are stored only
//! wrapped by the key-encryption key (KEK), which lives outside the database behind
//! [`KeyProvider`] (a 0600 key file by default; an HSM or KMS can implement the trait).
//! Destroying a DEK makes every value it sealed unreadable, backups included (crypto-shredding).

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::error::{CoreError, Result};

const NONCE: usize = 24;
const VERSION: u8 = 1;

/// Wraps and unwraps data keys with a key that never enters the database.
pub trait KeyProvider: Send + Sync {
    fn wrap(&self, dek: &[u8; 32], aad: &[u8]) -> Result<Vec<u8>>;
    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<[u8; 32]>>;
}

/// The KEK in a key file (64 hex digits, mode 0600), created on first use.
pub struct FileKek {
    key: Zeroizing<[u8; 32]>,
}

impl FileKek {
    pub fn load_or_create(path: &Path) -> Result<Self> {
        let hexkey = crate::keys::load_or_create(path, || {
            let mut k = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut k);
            hex::encode(k)
        })?;
        let bytes = Zeroizing::new(hex::decode(hexkey.trim()).map_err(|_| CoreError::Config(format!("{}: not hexadecimal", path.display())))?);
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| CoreError::Config(format!("{}: must hold 32 bytes", path.display())))?;
        Ok(Self { key: Zeroizing::new(key) })
    }
}

impl KeyProvider for FileKek {
    fn wrap(&self, dek: &[u8; 32], aad: &[u8]) -> Result<Vec<u8>> {
        seal(&self.key, dek, aad)
    }
    fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let p = Zeroizing::new(open(&self.key, wrapped, aad)?);
        let k: [u8; 32] = p.as_slice().try_into().map_err(|_| CoreError::Internal("wrapped key of the wrong size".into()))?;
        Ok(Zeroizing::new(k))
    }
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
