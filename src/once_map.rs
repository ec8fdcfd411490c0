//! The one once-per-key map: a value computed by the first task that asks
//! for its key, and shared by every task that asks while it is computed
//! and after. The in-flight dedup of blob transfers and source reads, of
//! repository listings, attachment reads and gate verdicts.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// Values computed once per key.
#[derive(Debug)]
pub struct OnceMap<K, V> {
    cells: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K, V> Default for OnceMap<K, V> {
    fn default() -> Self {
        OnceMap {
            cells: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq, V: Clone> OnceMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`: computed by `make` if nobody has (or is doing
    /// so), else what they computed. Errors are values like any other: a
    /// failed read is not repeated by the next task that asks.
    pub async fn get_or_compute<F, Fut>(&self, key: K, make: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
            cells.entry(key).or_default().clone()
        };
        cell.get_or_init(make).await.clone()
    }

    /// The value of `key`, if it has been computed.
    pub fn get(&self, key: &K) -> Option<V> {
        let cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        cells.get(key).and_then(|cell| cell.get().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_askers_share_one_computation_per_key() {
        let map: OnceMap<&str, usize> = OnceMap::new();
        let runs = AtomicUsize::new(0);
        let ask = |key| {
            let (map, runs) = (&map, &runs);
            async move {
                map.get_or_compute(key, || async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    key.len()
                })
                .await
            }
        };
        let (a, b, c) = tokio::join!(ask("blob"), ask("blob"), ask("other"));
        assert_eq!((a, b, c), (4, 4, 5));
        assert_eq!(runs.load(Ordering::SeqCst), 2, "once per key");
        assert_eq!(map.get(&"blob"), Some(4));
        assert_eq!(map.get(&"absent"), None);
    }
}
