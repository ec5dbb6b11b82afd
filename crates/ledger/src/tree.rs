//! The Merkle tree of RFC 6962 §2.1 / RFC 9162 §2.1: leaf hash `H(0x00 || leaf)`, node hash
//! `H(0x01 || left || right)`, SHA-256; inclusion and consistency proofs and their verification.
//!
//! [`Tree`] keeps, for every level `k`, the hashes of the complete, aligned subtrees of `2^k`
//! leaves. Appends are amortised O(1); a root, an inclusion proof or a consistency proof for any
//! earlier size costs O(log n) lookups and hashes, whatever the size of the tree.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// `H(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

/// `H(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Errors of proof construction and verification.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size {asked} is larger than the tree ({have})")]
    SizeOutOfRange { asked: u64, have: u64 },
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
    #[error("the proof has the wrong length")]
    WrongLength,
}

/// Largest power of two strictly smaller than `n` (n ≥ 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Hashes per chunk of a [`Level`]: 128 KiB.
const CHUNK: usize = 1 << 12;

/// One level of a [`Tree`], in chunks of [`CHUNK`] hashes that never move once allocated. As
/// one `Vec` per level, each doubling copied the whole level into fresh memory at once: at a
/// quarter of a million leaves, two logs' trees took 46 and 31 ms of one core to grow by a
/// hundred leaves (page faults on the new block, the old one unmapped), a cost that grows with
/// the log.
#[derive(Debug, Default, Clone)]
struct Level {
    /// Every chunk but the last is full.
    chunks: Vec<Vec<Hash>>,
}

impl Level {
    fn len(&self) -> usize {
        self.chunks.last().map_or(0, |c| (self.chunks.len() - 1) * CHUNK + c.len())
    }

    fn push(&mut self, h: Hash) {
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(h),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(h);
                self.chunks.push(c);
            }
        }
    }

    fn get(&self, i: usize) -> Option<&Hash> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }
}

impl std::ops::Index<usize> for Level {
    type Output = Hash;

    fn index(&self, i: usize) -> &Hash {
        &self.chunks[i / CHUNK][i % CHUNK]
    }
}

/// An append-only tree of leaf hashes.
#[derive(Debug, Default, Clone)]
pub struct Tree {
    /// levels[k][i] = hash of leaves [i·2^k, (i+1)·2^k)
    levels: Vec<Level>,
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends a leaf hash (not the leaf itself).
    pub fn push(&mut self, leaf_hash: Hash) {
        if self.levels.is_empty() {
            self.levels.push(Level::default());
        }
        self.levels[0].push(leaf_hash);
        let mut k = 0;
        while self.levels[k].len().is_multiple_of(2) {
            let n = self.levels[k].len();
            let h = node_hash(&self.levels[k][n - 2], &self.levels[k][n - 1]);
            if self.levels.len() == k + 1 {
                self.levels.push(Level::default());
            }
            self.levels[k + 1].push(h);
            k += 1;
        }
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels.first()?.get(index as usize).copied()
    }

    /// MTH(D[start : start+n]); `start` is always aligned to the largest power of two ≤ n by the
    /// RFC's recursion, so complete subtrees are looked up.
    fn subtree(&self, start: u64, n: u64) -> Hash {
        if n == 0 {
            return empty_root();
        }
        if n.is_power_of_two() {
            let k = n.trailing_zeros() as usize;
            return self.levels[k][(start >> k) as usize];
        }
        let k = split_point(n);
        node_hash(&self.subtree(start, k), &self.subtree(start + k, n - k))
    }

    /// Root of the tree of the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        Ok(self.subtree(0, size))
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        if size > self.size() {
            return Err(ProofError::SizeOutOfRange { asked: size, have: self.size() });
        }
        Ok(())
    }

    /// PATH(index, D[size]) of RFC 6962 §2.1.1, deepest sibling first.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        let mut out = Vec::new();
        self.path(index, 0, size, &mut out);
        Ok(out)
    }

    fn path(&self, m: u64, start: u64, n: u64, out: &mut Vec<Hash>) {
        if n <= 1 {
            return;
        }
        let k = split_point(n);
        if m < k {
            self.path(m, start, k, out);
            out.push(self.subtree(start + k, n - k));
        } else {
            self.path(m - k, start + k, n - k, out);
            out.push(self.subtree(start, k));
        }
    }

    /// PROOF(old, D[new]) of RFC 6962 §2.1.2.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(new)?;
        if old > new {
            return Err(ProofError::SizeOutOfRange { asked: old, have: new });
        }
        let mut out = Vec::new();
        if old > 0 && old < new {
            self.subproof(old, 0, new, true, &mut out);
        }
        Ok(out)
    }

    fn subproof(&self, m: u64, start: u64, n: u64, whole: bool, out: &mut Vec<Hash>) {
        if m == n {
            if !whole {
                out.push(self.subtree(start, n));
            }
            return;
        }
        let k = split_point(n);
        if m <= k {
            self.subproof(m, start, k, whole, out);
            out.push(self.subtree(start + k, n - k));
        } else {
            self.subproof(m - k, start + k, n - k, false, out);
            out.push(self.subtree(start, k));
        }
    }
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if &r != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Verifies a consistency proof between two tree heads (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizeOutOfRange { asked: old_size, have: new_size });
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if old_root == new_root { Ok(()) } else { Err(ProofError::RootMismatch) };
    }
    if old_size == 0 {
        return if proof.is_empty() { Ok(()) } else { Err(ProofError::WrongLength) };
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err(ProofError::WrongLength);
    };
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return Err(ProofError::WrongLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongLength);
    }
    if &fr != old_root || &sr != new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    // RFC 6962 reference roots for sizes 0..=8 (as published with Certificate Transparency).
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn h(s: &str) -> Hash {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    fn rfc_tree() -> Tree {
        let mut t = Tree::new();
        for l in LEAVES {
            t.push(leaf_hash(&hex::decode(l).unwrap()));
        }
        t
    }

    #[test]
    fn roots_match_rfc6962_vectors() {
        let t = rfc_tree();
        for (size, want) in ROOTS.iter().enumerate() {
            assert_eq!(t.root(size as u64).unwrap(), h(want), "size {size}");
        }
    }

    #[test]
    fn inclusion_matches_published_vector() {
        // Leaf 0 in the tree of 8 (CT's reference inclusion vector).
        let t = rfc_tree();
        let want = [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ];
        let p = t.inclusion_proof(0, 8).unwrap();
        assert_eq!(p, want.iter().map(|s| h(s)).collect::<Vec<_>>());
        verify_inclusion(0, 8, &t.leaf(0).unwrap(), &p, &h(ROOTS[8])).unwrap();
    }

    // Reference implementation written straight from the RFC text over a slice of leaf hashes.
    fn mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => empty_root(),
            1 => d[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&mth(&d[..k]), &mth(&d[k..]))
            }
        }
    }
    fn ref_path(m: usize, d: &[Hash]) -> Vec<Hash> {
        if d.len() <= 1 {
            return vec![];
        }
        let k = split_point(d.len() as u64) as usize;
        if m < k {
            let mut p = ref_path(m, &d[..k]);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = ref_path(m - k, &d[k..]);
            p.push(mth(&d[..k]));
            p
        }
    }
    fn ref_subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { vec![] } else { vec![mth(d)] };
        }
        let k = split_point(n as u64) as usize;
        if m <= k {
            let mut p = ref_subproof(m, &d[..k], b);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = ref_subproof(m - k, &d[k..], false);
            p.push(mth(&d[..k]));
            p
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&(i as u64).to_be_bytes())).collect()
    }

    /// Levels are kept in chunks: roots and proofs across the chunk boundaries of the leaves
    /// and of the levels above them agree with the reference.
    #[test]
    fn levels_in_chunks_give_the_reference_roots_and_proofs() {
        let n = 2 * CHUNK + 3;
        let d = leaves(n);
        let mut t = Tree::new();
        for x in &d {
            t.push(*x);
        }
        assert_eq!(t.size(), n as u64);
        for size in [CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 1, n] {
            let root = t.root(size as u64).unwrap();
            assert_eq!(root, mth(&d[..size]), "size {size}");
            for idx in [0, CHUNK / 2 - 1, CHUNK / 2, CHUNK - 1, CHUNK, size - 1] {
                if idx >= size {
                    continue;
                }
                let p = t.inclusion_proof(idx as u64, size as u64).unwrap();
                assert_eq!(p, ref_path(idx, &d[..size]), "index {idx} of {size}");
                assert!(verify_inclusion(idx as u64, size as u64, &d[idx], &p, &root).is_ok());
            }
        }
        assert_eq!(t.leaf(CHUNK as u64), Some(d[CHUNK]));
        assert_eq!(t.leaf(n as u64), None);
    }

    proptest! {
        #[test]
        fn proofs_agree_with_reference_and_verify(n in 1usize..300, a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
            let d = leaves(n);
            let mut t = Tree::new();
            for x in &d { t.push(*x); }
            let size = b.index(n) + 1;
            let idx = a.index(size);
            let root = t.root(size as u64).unwrap();
            prop_assert_eq!(root, mth(&d[..size]));
            let p = t.inclusion_proof(idx as u64, size as u64).unwrap();
            prop_assert_eq!(&p, &ref_path(idx, &d[..size]));
            prop_assert!(verify_inclusion(idx as u64, size as u64, &d[idx], &p, &root).is_ok());
            // a wrong leaf, a wrong index or a truncated proof fails
            let other = leaf_hash(b"forged");
            prop_assert!(verify_inclusion(idx as u64, size as u64, &other, &p, &root).is_err());
            if size > 1 {
                prop_assert!(verify_inclusion(((idx + 1) % size) as u64, size as u64, &d[idx], &p, &root).is_err());
                prop_assert!(verify_inclusion(idx as u64, size as u64, &d[idx], &p[..p.len()-1], &root).is_err());
            }
            // consistency from every old size `idx+1` to `size`
            let old = idx + 1;
            let c = t.consistency_proof(old as u64, size as u64).unwrap();
            if old < size { prop_assert_eq!(&c, &ref_subproof(old, &d[..size], true)); }
            let old_root = t.root(old as u64).unwrap();
            prop_assert!(verify_consistency(old as u64, size as u64, &old_root, &root, &c).is_ok());
            if old < size {
                prop_assert!(verify_consistency(old as u64, size as u64, &other, &root, &c).is_err());
                prop_assert!(verify_consistency(old as u64, size as u64, &old_root, &other, &c).is_err());
                let mut bad = c.clone();
                bad[0][0] ^= 1;
                prop_assert!(verify_consistency(old as u64, size as u64, &old_root, &root, &bad).is_err());
            }
        }
    }
}
