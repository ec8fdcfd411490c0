//! Shutdown as a signal the library hears, not a process global: whoever
//! starts a run (the CLI on SIGTERM or Ctrl-C, a test, `watch` between
//! cycles) holds a [`Shutdown`] and requests it; the planner and executor
//! check it before each new repository and edge, so that the edges under
//! way finish and nothing is left half-written.

use tokio_util::sync::CancellationToken;

/// A shutdown that can be requested once and heard by every clone.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    /// A shutdown nobody has requested yet.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Ask everything holding a clone to stop starting new work.
    pub fn request(&self) {
        self.0.cancel();
    }

    /// Whether a shutdown was requested.
    pub fn requested(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Resolves once a shutdown is requested (at once if it already was).
    pub async fn wait(&self) {
        self.0.cancelled().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_hears_a_request_made_on_any_of_them() {
        let run = Shutdown::new();
        let executor = run.clone();
        assert!(!executor.requested());
        let waiting = tokio::spawn({
            let executor = executor.clone();
            async move { executor.wait().await }
        });
        run.request();
        waiting.await.unwrap();
        assert!(executor.requested());
        // Waiting after the request returns at once.
        executor.wait().await;
    }
}
