//! Verification of a whole log from its stored entries and checkpoints, and of an export bundle
//! handed to a client. Pure: the caller streams the entries in.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::note::{Checkpoint, NoteVerifier};
use crate::tree::{leaf_hash, node_hash, verify_inclusion, Hash};

/// What is wrong with a log, naming the first bad entry or checkpoint.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("log {log}: entry {expected} is missing (next stored entry is {found})")]
    Missing { log: String, expected: u64, found: u64 },
    #[error("log {log}: entry {index} is malformed: {reason}")]
    BadEntry { log: String, index: u64, reason: String },
    #[error("log {log}: entry {index} does not match its stored leaf hash (altered)")]
    HashMismatch { log: String, index: u64 },
    #[error("log {log}: checkpoint at size {size} is not validly signed: {reason}")]
    BadCheckpoint { log: String, size: u64, reason: String },
    #[error("log {log}: entries {from}..{to} do not match the checkpoint signed at size {to} (altered, reordered or replaced)")]
    RootMismatch { log: String, from: u64, to: u64 },
    #[error("log {log}: a checkpoint was signed at size {size} but the log ends at entry {len} (truncated)")]
    Truncated { log: String, size: u64, len: u64 },
    #[error("log {log}: entry {index} is not included in the checkpoint")]
    NotIncluded { log: String, index: u64 },
    #[error("bundle: {0}")]
    Bundle(String),
}

/// A compact range from index 0: the roots of the perfect subtrees that make up the tree, so
/// that the root of a tree of any size is computed in O(log n) memory.
#[derive(Debug, Default, Clone)]
pub struct Frontier {
    size: u64,
    stack: Vec<Hash>,
}

impl Frontier {
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut n = self.size;
        while n & 1 == 1 {
            if let Some(left) = self.stack.pop() {
                h = node_hash(&left, &h);
            }
            n >>= 1;
        }
        self.stack.push(h);
        self.size += 1;
    }
    pub fn size(&self) -> u64 {
        self.size
    }
    pub fn root(&self) -> Hash {
        let mut it = self.stack.iter().rev();
        let Some(last) = it.next() else { return crate::tree::empty_root() };
        it.fold(*last, |r, l| node_hash(l, &r))
    }
}

/// Streams one log's entries and checks every signed checkpoint against them.
pub struct LogVerifier<'a> {
    log: String,
    origin: String,
    key: &'a NoteVerifier,
    frontier: Frontier,
    /// (size, signed note), ascending by size.
    checkpoints: Vec<(u64, String)>,
    next_cp: usize,
    last_cp_size: u64,
    decode: bool,
    pruned: u64,
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogSummary {
    pub log: String,
    pub entries: u64,
    pub checkpoints: u64,
    /// Entries whose content was pruned by a retention policy (their leaf hashes remain).
    pub pruned: u64,
    pub root: String,
}

impl<'a> LogVerifier<'a> {
    pub fn new(log: &str, origin: &str, key: &'a NoteVerifier, mut checkpoints: Vec<(u64, String)>) -> Self {
        checkpoints.sort_by_key(|c| c.0);
        Self {
            log: log.to_owned(),
            origin: origin.to_owned(),
            key,
            frontier: Frontier::default(),
            checkpoints,
            next_cp: 0,
            last_cp_size: 0,
            decode: true,
            pruned: 0,
        }
    }

    /// Skip the canonical-decoding check of each entry (for raw benchmarks of the tree).
    pub fn without_decoding(mut self) -> Self {
        self.decode = false;
        self
    }

    /// Feeds the entry stored at `index`; `stored_hash` is the leaf hash the store kept beside it.
    pub fn push(&mut self, index: u64, entry: &[u8], stored_hash: Option<&[u8]>) -> Result<(), VerifyError> {
        let log = || self.log.clone();
        if index != self.frontier.size() {
            return Err(VerifyError::Missing { log: log(), expected: self.frontier.size(), found: index });
        }
        // A pruned entry (retention policy) keeps only its leaf hash; the signed checkpoints
        // still commit to it, so the tree verifies as before.
        if entry.is_empty() {
            let h: Hash = stored_hash
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| VerifyError::BadEntry { log: log(), index, reason: "pruned without its leaf hash".into() })?;
            self.pruned += 1;
            self.frontier.push(h);
            return self.check_due();
        }
        if self.decode {
            Event::decode(entry).map_err(|e| VerifyError::BadEntry { log: log(), index, reason: e.to_string() })?;
        }
        let h = leaf_hash(entry);
        if let Some(s) = stored_hash {
            if s != h {
                return Err(VerifyError::HashMismatch { log: log(), index });
            }
        }
        self.frontier.push(h);
        self.check_due()
    }

    fn check_due(&mut self) -> Result<(), VerifyError> {
        while let Some((size, note)) = self.checkpoints.get(self.next_cp) {
            if *size != self.frontier.size() {
                break;
            }
            let cp = self.key.open_checkpoint(note, &self.origin).map_err(|e| VerifyError::BadCheckpoint {
                log: self.log.clone(),
                size: *size,
                reason: e.to_string(),
            })?;
            if cp.size != *size {
                return Err(VerifyError::BadCheckpoint {
                    log: self.log.clone(),
                    size: *size,
                    reason: format!("note says size {}", cp.size),
                });
            }
            if cp.root != self.frontier.root() {
                return Err(VerifyError::RootMismatch { log: self.log.clone(), from: self.last_cp_size, to: *size });
            }
            self.last_cp_size = *size;
            self.next_cp += 1;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<LogSummary, VerifyError> {
        self.check_due()?;
        if let Some((size, _)) = self.checkpoints.get(self.next_cp) {
            return Err(VerifyError::Truncated { log: self.log.clone(), size: *size, len: self.frontier.size() });
        }
        Ok(LogSummary {
            log: self.log,
            entries: self.frontier.size(),
            checkpoints: self.checkpoints.len() as u64,
            pruned: self.pruned,
            root: hex::encode(self.frontier.root()),
        })
    }
}

pub const BUNDLE_FORMAT: &str = "mamori-ledger-bundle/1";

/// An export for a client: a contiguous run of its log's entries with an inclusion proof each,
/// against one signed checkpoint. The run starts at the last entry before `from` (or at 0) and
/// ends at the first entry at or after `to` (or at the checkpoint), so the client can see that
/// nothing inside the range was left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub format: String,
    pub origin: String,
    /// The centre's verifier key (informational: `check` uses the key the client was given).
    pub key: String,
    pub from: String,
    pub to: String,
    pub checkpoint: String,
    pub entries: Vec<BundleEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleEntry {
    pub index: u64,
    /// The entry's canonical bytes, base64; empty when pruned by a retention policy.
    pub entry: String,
    /// The leaf hash of a pruned entry (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned_leaf: Option<String>,
    /// Inclusion proof against the checkpoint, hex hashes, deepest first.
    pub proof: Vec<String>,
}

/// The result of checking a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleReport {
    pub origin: String,
    pub tree_size: u64,
    pub root: String,
    pub events_in_range: u64,
    pub first_index: Option<u64>,
    pub last_index: Option<u64>,
}

fn bundle_err(s: impl Into<String>) -> VerifyError {
    VerifyError::Bundle(s.into())
}

/// Checks a bundle offline, with the centre's public key only.
pub fn check_bundle(bundle: &Bundle, key: &NoteVerifier) -> Result<BundleReport, VerifyError> {
    if bundle.format != BUNDLE_FORMAT {
        return Err(bundle_err(format!("unknown format {:?}", bundle.format)));
    }
    let log = bundle.origin.clone();
    let cp: Checkpoint = key.open_checkpoint(&bundle.checkpoint, &bundle.origin).map_err(|e| {
        VerifyError::BadCheckpoint { log: log.clone(), size: 0, reason: e.to_string() }
    })?;
    let from = chrono::DateTime::parse_from_rfc3339(&bundle.from).map_err(|_| bundle_err("bad 'from' time"))?;
    let to = chrono::DateTime::parse_from_rfc3339(&bundle.to).map_err(|_| bundle_err("bad 'to' time"))?;
    let mut in_range = 0;
    let mut prev_ts = None;
    let first = bundle.entries.first().map(|e| e.index);
    for (i, e) in bundle.entries.iter().enumerate() {
        let index = e.index;
        if let Some(f) = first {
            if index != f + i as u64 {
                return Err(VerifyError::Missing { log: log.clone(), expected: f + i as u64, found: index });
            }
        }
        let proof: Vec<Hash> = e
            .proof
            .iter()
            .map(|p| hex::decode(p).ok().and_then(|v| Hash::try_from(v).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| VerifyError::BadEntry { log: log.clone(), index, reason: "bad proof hash".into() })?;
        if e.entry.is_empty() {
            let h: Hash = e
                .pruned_leaf
                .as_ref()
                .and_then(|p| hex::decode(p).ok())
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| VerifyError::BadEntry { log: log.clone(), index, reason: "pruned without its leaf hash".into() })?;
            verify_inclusion(index, cp.size, &h, &proof, &cp.root).map_err(|_| VerifyError::NotIncluded { log: log.clone(), index })?;
            continue;
        }
        let bytes = B64
            .decode(&e.entry)
            .map_err(|_| VerifyError::BadEntry { log: log.clone(), index, reason: "bad base64".into() })?;
        let ev = Event::decode(&bytes).map_err(|r| VerifyError::BadEntry { log: log.clone(), index, reason: r.to_string() })?;
        verify_inclusion(index, cp.size, &leaf_hash(&bytes), &proof, &cp.root)
            .map_err(|_| VerifyError::NotIncluded { log: log.clone(), index })?;
        let ts = ev.at().ok_or_else(|| VerifyError::BadEntry { log: log.clone(), index, reason: "bad time".into() })?;
        if prev_ts.is_some_and(|p| ts < p) {
            return Err(VerifyError::BadEntry { log: log.clone(), index, reason: "time goes backwards".into() });
        }
        prev_ts = Some(ts);
        if ts >= from && ts < to {
            in_range += 1;
        }
    }
    // Completeness at both ends: the run must reach outside the range, or the end of the log.
    let last = bundle.entries.last().map(|e| e.index);
    match (bundle.entries.first(), bundle.entries.last()) {
        (Some(f), Some(l)) => {
            let ts = |e: &BundleEntry| {
                B64.decode(&e.entry).ok().and_then(|b| Event::decode(&b).ok()).and_then(|ev| ev.at())
            };
            if f.index > 0 && ts(f).is_some_and(|t| t >= from) {
                return Err(bundle_err(format!("entries before index {} were left out", f.index)));
            }
            if l.index + 1 < cp.size && ts(l).is_some_and(|t| t < to) {
                return Err(bundle_err(format!("entries after index {} were left out", l.index)));
            }
        }
        _ => {
            if cp.size > 0 {
                return Err(bundle_err("no entries, but the log is not empty"));
            }
        }
    }
    Ok(BundleReport {
        origin: cp.origin,
        tree_size: cp.size,
        root: hex::encode(cp.root),
        events_in_range: in_range,
        first_index: first,
        last_index: last,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::event::Actor;
    use crate::note::NoteSigner;
    use crate::tree::Tree;
    use chrono::{Duration, TimeZone, Utc};

    fn entries(n: usize) -> Vec<Vec<u8>> {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        (0..n)
            .map(|i| {
                Event::new(t0 + Duration::minutes(i as i64), Actor { kind: "user".into(), id: "1".into() }, "x")
                    .detail("i", i)
                    .encode()
            })
            .collect()
    }

    fn signed_log(n: usize, cps: &[u64]) -> (NoteSigner, Vec<Vec<u8>>, Vec<(u64, String)>, Tree) {
        let s = NoteSigner::new("test", ed25519_dalek::SigningKey::from_bytes(&[1; 32])).unwrap();
        let es = entries(n);
        let mut t = Tree::new();
        for e in &es {
            t.push(leaf_hash(e));
        }
        let notes = cps
            .iter()
            .map(|&size| (size, s.sign_checkpoint(&Checkpoint { origin: "o".into(), size, root: t.root(size).unwrap() })))
            .collect();
        (s, es, notes, t)
    }

    fn run(es: &[Vec<u8>], cps: Vec<(u64, String)>, key: &NoteVerifier) -> Result<LogSummary, VerifyError> {
        let mut v = LogVerifier::new("centre", "o", key, cps);
        for (i, e) in es.iter().enumerate() {
            v.push(i as u64, e, Some(&leaf_hash(e)))?;
        }
        v.finish()
    }

    #[test]
    fn frontier_matches_tree() {
        let mut t = Tree::new();
        let mut f = Frontier::default();
        for i in 0..100u32 {
            let h = leaf_hash(&i.to_be_bytes());
            t.push(h);
            f.push(h);
            assert_eq!(f.root(), t.root(t.size()).unwrap());
        }
    }

    #[test]
    fn good_log_verifies_and_tampering_is_named() {
        let (s, es, cps, _) = signed_log(20, &[5, 12, 20]);
        let key = s.verifier();
        assert_eq!(run(&es, cps.clone(), &key).unwrap().entries, 20);
        // reorder two entries (hashes recomputed by the attacker)
        let mut r = es.clone();
        r.swap(6, 7);
        assert!(matches!(run(&r, cps.clone(), &key), Err(VerifyError::RootMismatch { from: 5, to: 12, .. })));
        // truncate
        assert!(matches!(run(&es[..15], cps.clone(), &key), Err(VerifyError::Truncated { size: 20, len: 15, .. })));
        // replaced checkpoint
        let mut bad = cps.clone();
        bad[1].1 = bad[1].1.replace("\n12\n", "\n13\n");
        assert!(matches!(run(&es, bad, &key), Err(VerifyError::BadCheckpoint { size: 12, .. })));
    }

    #[test]
    fn bundle_checks_and_detects_omission() {
        let (s, es, _, t) = signed_log(10, &[]);
        let cp = s.sign_checkpoint(&Checkpoint { origin: "o".into(), size: 10, root: t.root(10).unwrap() });
        let mk = |range: std::ops::Range<u64>| Bundle {
            format: BUNDLE_FORMAT.into(),
            origin: "o".into(),
            key: s.verifier().to_key_string(),
            from: "2026-01-01T00:03:00Z".into(),
            to: "2026-01-01T00:06:00Z".into(),
            checkpoint: cp.clone(),
            entries: range
                .map(|i| BundleEntry {
                    index: i,
                    pruned_leaf: None,
                    entry: B64.encode(&es[i as usize]),
                    proof: t.inclusion_proof(i, 10).unwrap().iter().map(hex::encode).collect(),
                })
                .collect(),
        };
        let rep = check_bundle(&mk(2..7), &s.verifier()).unwrap();
        assert_eq!(rep.events_in_range, 3);
        assert!(check_bundle(&mk(3..7), &s.verifier()).is_err(), "left edge inside range");
        assert!(check_bundle(&mk(2..6), &s.verifier()).is_err(), "right edge inside range");
        let mut gap = mk(2..7);
        gap.entries.remove(2);
        assert!(matches!(check_bundle(&gap, &s.verifier()), Err(VerifyError::Missing { expected: 4, .. })));
        let mut altered = mk(2..7);
        altered.entries[1].entry = B64.encode(&es[8]);
        assert!(matches!(check_bundle(&altered, &s.verifier()), Err(VerifyError::NotIncluded { index: 3, .. })));
    }
}
