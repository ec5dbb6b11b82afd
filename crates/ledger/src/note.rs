//! Checkpoints in the C2SP `tlog-checkpoint` format, carried in a C2SP `signed-note` signed with
//! Ed25519 (the key format of Go's `golang.org/x/mod/sumdb/note`).
//!
//! ```text
//! <origin>
//! <tree size>
//! <base64 root hash>
//!
//! — <key name> <base64(key id || signature)>
//! ```

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::tree::Hash;

const ALG_ED25519: u8 = 0x01;
const SIG_PREFIX: &str = "\u{2014} ";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    #[error("malformed key: {0}")]
    BadKey(&'static str),
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    #[error("no valid signature by key {0}")]
    NoSignature(String),
    #[error("origin is {found:?}, expected {expected:?}")]
    WrongOrigin { found: String, expected: String },
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('+') && !name.chars().any(char::is_whitespace)
}

/// The centre's signing key, with the key name that appears in every signature line.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
}

impl NoteSigner {
    pub fn new(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::BadKey("key name must be non-empty, without spaces or '+'"));
        }
        Ok(Self { name: name.to_owned(), key })
    }

    /// Generates a key with the given randomness source.
    pub fn generate<R: rand::CryptoRng + rand::RngCore>(name: &str, rng: &mut R) -> Result<Self, NoteError> {
        Self::new(name, SigningKey::generate(rng))
    }

    /// `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`, the private key file format.
    pub fn to_key_string(&self) -> String {
        let public = self.key.verifying_key().to_bytes();
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!("PRIVATE+KEY+{}+{}+{}", self.name, hex::encode(key_id(&self.name, &public)), B64.encode(raw))
    }

    pub fn from_key_string(s: &str) -> Result<Self, NoteError> {
        let parts: Vec<&str> = s.trim().splitn(5, '+').collect();
        let [p, k, name, id, b64] = parts.as_slice() else {
            return Err(NoteError::BadKey("expected PRIVATE+KEY+name+id+key"));
        };
        if *p != "PRIVATE" || *k != "KEY" {
            return Err(NoteError::BadKey("expected PRIVATE+KEY prefix"));
        }
        let raw = B64.decode(b64).map_err(|_| NoteError::BadKey("bad base64"))?;
        if raw.len() != 33 || raw[0] != ALG_ED25519 {
            return Err(NoteError::BadKey("not an Ed25519 key"));
        }
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&raw[1..]);
        let signer = Self::new(name, SigningKey::from_bytes(&seed))?;
        if hex::encode(key_id(name, &signer.key.verifying_key().to_bytes())) != *id {
            return Err(NoteError::BadKey("key id does not match"));
        }
        Ok(signer)
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier { name: self.name.clone(), key: self.key.verifying_key() }
    }

    /// Signs a note body (which must end in a newline) and returns the whole signed note.
    pub fn sign(&self, body: &str) -> String {
        let sig = self.key.sign(body.as_bytes());
        let mut raw = key_id(&self.name, &self.key.verifying_key().to_bytes()).to_vec();
        raw.extend_from_slice(&sig.to_bytes());
        format!("{body}\n{SIG_PREFIX}{} {}\n", self.name, B64.encode(raw))
    }

    pub fn sign_checkpoint(&self, cp: &Checkpoint) -> String {
        self.sign(&cp.body())
    }
}

/// A public key that verifies notes: `<name>+<hex id>+<base64(0x01 || public key)>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key: VerifyingKey,
}

impl NoteVerifier {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn to_key_string(&self) -> String {
        let public = self.key.to_bytes();
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(&public);
        format!("{}+{}+{}", self.name, hex::encode(key_id(&self.name, &public)), B64.encode(raw))
    }

    pub fn from_key_string(s: &str) -> Result<Self, NoteError> {
        let parts: Vec<&str> = s.trim().splitn(3, '+').collect();
        let [name, id, b64] = parts.as_slice() else {
            return Err(NoteError::BadKey("expected name+id+key"));
        };
        if !valid_name(name) {
            return Err(NoteError::BadKey("bad key name"));
        }
        let raw = B64.decode(b64).map_err(|_| NoteError::BadKey("bad base64"))?;
        if raw.len() != 33 || raw[0] != ALG_ED25519 {
            return Err(NoteError::BadKey("not an Ed25519 key"));
        }
        let mut public = [0u8; 32];
        public.copy_from_slice(&raw[1..]);
        if hex::encode(key_id(name, &public)) != *id {
            return Err(NoteError::BadKey("key id does not match"));
        }
        let key = VerifyingKey::from_bytes(&public).map_err(|_| NoteError::BadKey("invalid point"))?;
        Ok(Self { name: (*name).to_owned(), key })
    }

    /// Verifies a signed note and returns its body.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let split = note.rfind("\n\n").ok_or(NoteError::Malformed("no blank line before signatures"))?;
        let body = &note[..split + 1];
        let sigs = &note[split + 2..];
        let want_id = key_id(&self.name, &self.key.to_bytes());
        for line in sigs.lines() {
            let Some(rest) = line.strip_prefix(SIG_PREFIX) else {
                return Err(NoteError::Malformed("signature line without em dash"));
            };
            let Some((name, b64)) = rest.split_once(' ') else {
                return Err(NoteError::Malformed("signature line without space"));
            };
            if name != self.name {
                continue;
            }
            let Ok(raw) = B64.decode(b64) else { continue };
            if raw.len() != 68 || raw[..4] != want_id {
                continue;
            }
            let Ok(sig) = Signature::from_slice(&raw[4..]) else { continue };
            if self.key.verify_strict(body.as_bytes(), &sig).is_ok() {
                return Ok(body);
            }
        }
        Err(NoteError::NoSignature(self.name.clone()))
    }

    /// Verifies a signed checkpoint and parses it.
    pub fn open_checkpoint(&self, note: &str, origin: &str) -> Result<Checkpoint, NoteError> {
        let cp = Checkpoint::parse(self.open(note)?)?;
        if cp.origin != origin {
            return Err(NoteError::WrongOrigin { found: cp.origin, expected: origin.to_owned() });
        }
        Ok(cp)
    }
}

/// A tree head: the log's origin line, its size and its root hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root))
    }

    pub fn parse(body: &str) -> Result<Self, NoteError> {
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|l| !l.is_empty()).ok_or(NoteError::Malformed("no origin"))?;
        let size = lines
            .next()
            .and_then(|l| if l.starts_with('0') && l.len() > 1 { None } else { l.parse::<u64>().ok() })
            .ok_or(NoteError::Malformed("bad tree size"))?;
        let root: Hash = lines
            .next()
            .and_then(|l| B64.decode(l).ok())
            .and_then(|v| v.try_into().ok())
            .ok_or(NoteError::Malformed("bad root hash"))?;
        Ok(Self { origin: origin.to_owned(), size, root })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn signer() -> NoteSigner {
        NoteSigner::new("mamori.test", SigningKey::from_bytes(&[7u8; 32])).unwrap()
    }

    #[test]
    fn sign_and_open_roundtrip() {
        let s = signer();
        let cp = Checkpoint { origin: "mamori.test/centre".into(), size: 42, root: [9u8; 32] };
        let note = s.sign_checkpoint(&cp);
        assert!(note.contains("\n\n\u{2014} mamori.test "));
        let v = NoteVerifier::from_key_string(&s.verifier().to_key_string()).unwrap();
        assert_eq!(v.open_checkpoint(&note, "mamori.test/centre").unwrap(), cp);
        assert!(matches!(v.open_checkpoint(&note, "other"), Err(NoteError::WrongOrigin { .. })));
    }

    #[test]
    fn tampered_note_fails() {
        let s = signer();
        let cp = Checkpoint { origin: "o".into(), size: 42, root: [9u8; 32] };
        let note = s.sign_checkpoint(&cp).replace("\n42\n", "\n43\n");
        assert!(matches!(s.verifier().open(&note), Err(NoteError::NoSignature(_))));
        let other = NoteSigner::new("mamori.test", SigningKey::from_bytes(&[8u8; 32])).unwrap();
        let forged = other.sign_checkpoint(&cp);
        assert!(s.verifier().open(&forged).is_err());
    }

    #[test]
    fn key_strings_roundtrip_for_any_key() {
        // base64 of a key may itself contain '+': parsing must split with a limit
        for seed in 0u8..64 {
            let s = NoteSigner::new("mamori.test", SigningKey::from_bytes(&[seed; 32])).unwrap();
            let back = NoteSigner::from_key_string(&s.to_key_string()).unwrap();
            assert_eq!(back.verifier(), s.verifier());
            assert_eq!(NoteVerifier::from_key_string(&s.verifier().to_key_string()).unwrap(), s.verifier());
        }
    }

    #[test]
    fn key_strings_roundtrip() {
        let s = signer();
        let back = NoteSigner::from_key_string(&s.to_key_string()).unwrap();
        assert_eq!(back.verifier(), s.verifier());
        assert!(NoteVerifier::from_key_string("x+00000000+AAAA").is_err());
    }
}
