//! Values read from the store and kept in memory while the store's cache epoch is unchanged.
//!
//! The store keeps one counter, `cache_epoch.n`, that triggers raise in the same transaction as
//! every change to the tables behind a request's identity and a data decision (tokens, accounts,
//! roles, businesses and their fields, presence, holders, grants, terminals, data keys;
//! migration 0011).
//! A request reads the epoch once when it is authenticated ([`crate::auth::Principal::epoch`]);
//! a cached value is used for it only if it was read at that same epoch, so a request sees
//! nothing older than what the store held when it started, exactly as if it had read every value
//! itself. A value read on a miss comes with the epoch of its own snapshot (read in the same
//! statement) and is kept under that one. Changes made by another process (the CLI, another
//! instance on PostgreSQL) raise the same counter, so no cache outlives them.
//!
//! Time-dependent facts (a grant's start and end) are cached as data and judged at the request's
//! time, never as a yes or a no.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Mutex;

use crate::error::Result;

/// The epoch a read may be cached under: none inside a transaction (`conn`), whose reads may
/// yet be rolled back.
pub(crate) fn outside<C>(epoch: Option<i64>, conn: &Option<C>) -> Option<i64> {
    epoch.filter(|_| conn.is_none())
}

/// A bounded map of values tagged with the epoch they were read at; emptied when it grows past
/// its bound.
pub(crate) struct EpochCache<K, V> {
    map: Mutex<HashMap<K, (i64, V)>>,
}

impl<K: Hash + Eq, V: Clone> EpochCache<K, V> {
    const MAX: usize = 4096;

    pub(crate) fn new() -> Self {
        Self { map: Mutex::new(HashMap::new()) }
    }

    /// The value of `key` if it was read at `epoch`.
    pub(crate) fn get<Q>(&self, key: &Q, epoch: i64) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let m = self.map.lock().ok()?;
        m.get(key).filter(|(e, _)| *e == epoch).map(|(_, v)| v.clone())
    }

    /// The value of `key` read at `epoch` (None: nothing cached may serve), from memory or
    /// else from `read`, which returns it with the epoch of its own snapshot (None: not to be
    /// kept).
    pub(crate) async fn through<Q, F, Fut>(&self, key: &Q, epoch: Option<i64>, read: F) -> Result<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Option<i64>, V)>>,
    {
        if let Some(hit) = epoch.and_then(|e| self.get(key, e)) {
            return Ok(hit);
        }
        let (read_at, value) = read().await?;
        if let (Some(_), Some(at)) = (epoch, read_at) {
            self.put(key.to_owned(), at, value.clone());
        }
        Ok(value)
    }

    /// Keeps `value` as read at `epoch` (an older reading of the key is replaced).
    pub(crate) fn put(&self, key: K, epoch: i64, value: V) {
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= Self::MAX && !m.contains_key(&key) {
                m.clear();
            }
            match m.get(&key) {
                Some((e, _)) if *e > epoch => {}
                _ => {
                    m.insert(key, (epoch, value));
                }
            }
        }
    }
}

impl<K, V> std::fmt::Debug for EpochCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochCache").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_serves_only_its_own_epoch() {
        let c: EpochCache<&str, i32> = EpochCache::new();
        assert_eq!(c.get(&"a", 1), None);
        c.put("a", 1, 10);
        assert_eq!(c.get(&"a", 1), Some(10));
        assert_eq!(c.get(&"a", 2), None, "a later epoch must not see a value read before it");
        assert_eq!(c.get(&"a", 0), None, "an earlier epoch must not see a value read after it");
        c.put("a", 3, 30);
        c.put("a", 2, 20); // an older reading does not replace a newer one
        assert_eq!(c.get(&"a", 3), Some(30));
        assert_eq!(c.get(&"a", 2), None);
    }

    #[test]
    fn it_stays_bounded() {
        let c: EpochCache<usize, usize> = EpochCache::new();
        for i in 0..(EpochCache::<usize, usize>::MAX * 3) {
            c.put(i, 0, i);
        }
        assert!(c.map.lock().map(|m| m.len()).unwrap_or(0) <= EpochCache::<usize, usize>::MAX);
    }
}
