//! The one retry driver for everything done to a registry (a transport's
//! sends, token fetches, and the operation-level retries of bad content and
//! upload restarts): when an operation is tried again, and for how long.
//! Nothing here knows HTTP; what a server's answer says about retrying
//! (`Retry-After`, which failures are passing) is the transport's
//! (`remote::retry`), and reaches the driver as a [`Failed`].

use std::time::{Duration, Instant};

use rand::Rng;

use crate::registry::RegistryError;

/// The wait a rate-limit error asked for, if any.
pub fn retry_hint(err: &RegistryError) -> Option<Duration> {
    match err {
        RegistryError::RateLimited {
            retry_after_secs: Some(secs),
            ..
        } => Some(Duration::from_secs(*secs)),
        _ => None,
    }
}

tokio::task_local! {
    /// When the edge being carried out first failed, if it has: every retry
    /// inside one edge (the source reads a destination upload re-opens
    /// included) shares one retry window from that moment.
    static EDGE_FIRST_FAILURE: std::cell::Cell<Option<Instant>>;
}

/// Run `work` as one edge: whatever retries it nests (an upload whose
/// retries re-open a source read that retries too), it retries for at most
/// one retry deadline in all, counted from its first failure. Without
/// this, nested retries multiply (a source failing forever under an
/// upload took 17 deadlines).
pub async fn one_edge<F: std::future::Future>(work: F) -> F::Output {
    EDGE_FIRST_FAILURE
        .scope(std::cell::Cell::new(None), work)
        .await
}

/// `waited` went by in a pacer's queue (a slot of a budget shared with
/// every request to the server): that is not time spent failing, so the
/// edge's retry window, if it has begun, moves on by as much. Without this,
/// a queue longer than the window (a quota's backlog) failed edges that
/// were never refused twice.
pub fn waited_for_pace(waited: Duration) {
    let _ = EDGE_FIRST_FAILURE.try_with(|first| {
        if let Some(at) = first.get() {
            first.set(Some(at + waited));
        }
    });
}

/// The end of the edge's retry window of `window`, once it has failed.
fn edge_deadline(window: Duration) -> Option<Instant> {
    EDGE_FIRST_FAILURE
        .try_with(|first| {
            let at = first.get().unwrap_or_else(|| {
                let now = Instant::now();
                first.set(Some(now));
                now
            });
            at + window
        })
        .ok()
}

/// Decides whether and when to try again: exponential backoff with jitter,
/// `Retry-After` when given, bounded by a deadline and an attempt count.
#[derive(Debug)]
pub struct RetryClock {
    deadline: Instant,
    /// The retry deadline this operation was given, for the edge's window.
    window: Duration,
    attempts: u32,
    max_attempts: u32,
}

impl RetryClock {
    const BASE: Duration = Duration::from_millis(200);
    const CAP: Duration = Duration::from_secs(10);

    /// A clock for an operation whose first attempt is under way: no attempt
    /// starts after `deadline`, and there are at most `max_attempts` in all.
    pub fn new(deadline: Instant, max_attempts: u32) -> RetryClock {
        RetryClock {
            deadline,
            window: deadline.saturating_duration_since(Instant::now()),
            attempts: 1,
            max_attempts,
        }
    }

    /// The wait before the next attempt, or `None` to give up. A server's
    /// `Retry-After` is obeyed as given (never shortened by jitter); when it
    /// reaches past the deadline we give up at once rather than sleep for
    /// nothing.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Option<Duration> {
        if self.attempts >= self.max_attempts {
            return None;
        }
        let delay = self.backoff(retry_after);
        if !self.within_deadline(delay) {
            return None;
        }
        self.attempts += 1;
        Some(delay)
    }

    /// Whether an attempt whose wait is another's (a pacer's, which holds
    /// every request to its server and knows when the next may go) may
    /// follow, no sooner than `retry_after`: only the deadline decides. It
    /// is not counted against the attempts: the pacer spaces them, and a
    /// quota that lets one request in ten through is no broken server.
    pub fn paced(&mut self, retry_after: Option<Duration>) -> bool {
        let wait = retry_after.unwrap_or(Duration::ZERO);
        match edge_deadline(self.window) {
            // In an edge, its window alone: it discounts the pacer's queue
            // ([`waited_for_pace`]), which this operation's deadline, fixed
            // when it began, cannot.
            Some(edge) => Instant::now()
                .checked_add(wait)
                .is_some_and(|at| at <= edge),
            None => self.within_deadline(wait),
        }
    }

    /// Whether an attempt `delay` from now still starts within the
    /// deadline (and the edge's window).
    fn within_deadline(&self, delay: Duration) -> bool {
        let deadline = match edge_deadline(self.window) {
            Some(edge) => edge.min(self.deadline),
            None => self.deadline,
        };
        Instant::now()
            .checked_add(delay)
            .is_some_and(|at| at <= deadline)
    }

    /// Our own wait before the next attempt: the server's, else
    /// exponential with jitter.
    fn backoff(&self, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(wait) => wait,
            None => {
                let exp = Self::BASE.saturating_mul(1u32 << (self.attempts - 1).min(16));
                let capped = exp.min(Self::CAP);
                // "Equal jitter": half fixed, half random, so retries from
                // many workers spread out but never collapse to zero.
                let half = capped / 2;
                half + half.mul_f64(rand::rng().random::<f64>())
            }
        }
    }
}

/// One attempt's failure, with the wait the server asked for (a
/// `Retry-After`), if any.
#[derive(Debug)]
pub struct Failed {
    /// What went wrong; the answer if no retry follows.
    pub error: RegistryError,
    /// How long the server asked us to wait; `None` for our own backoff.
    pub retry_after: Option<Duration>,
    /// The next attempt waits for a pacer (which holds every request to
    /// the server until its slot), no sooner than `retry_after`: the driver
    /// adds no backoff of its own, so that waits do not multiply.
    pub paced: bool,
}

impl From<RegistryError> for Failed {
    fn from(error: RegistryError) -> Failed {
        let retry_after = retry_hint(&error);
        Failed {
            error,
            retry_after,
            paced: false,
        }
    }
}

/// The one retry loop. Runs `attempt` until it succeeds, fails in a way
/// `may_retry` refuses to try again, or `clock` runs out; then the last
/// error is the answer. Every retried request goes through here: the
/// transport's sends, token fetches, and the operation-level retries of a
/// manifest read or a blob upload that came back wrong. `what` names the
/// operation in the debug line each retry logs.
pub async fn with_retries<T, Fut>(
    mut clock: RetryClock,
    what: &(dyn Fn() -> String + Sync),
    mut may_retry: impl FnMut(&RegistryError) -> bool,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, RegistryError>
where
    Fut: std::future::Future<Output = Result<T, Failed>>,
{
    let mut refused = 0;
    loop {
        let failed = match attempt().await {
            Ok(done) => return Ok(done),
            Err(failed) => failed,
        };
        if !may_retry(&failed.error) {
            return Err(failed.error);
        }
        if let RegistryError::Refused { .. } = failed.error {
            refused += 1;
            if refused >= crate::limits::REFUSED_ATTEMPTS {
                return Err(failed.error);
            }
        }
        if failed.paced {
            if !clock.paced(failed.retry_after) {
                return Err(failed.error);
            }
            // The pacer holds the next attempt at least as long as the
            // registry asked: that wait is what progress shows.
            let wait_ms = failed.retry_after.map(|w| w.as_millis() as u64);
            tracing::debug!(operation = %what(), error = %failed.error, wait_ms,
                "retrying at the pacer's pace");
            continue;
        }
        match clock.next_delay(failed.retry_after) {
            Some(wait) => {
                tracing::debug!(operation = %what(), error = %failed.error,
                    wait_ms = wait.as_millis() as u64, "retrying");
                tokio::time::sleep(wait).await;
            }
            None => return Err(failed.error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_retries_of_one_edge_share_one_window_from_its_first_failure() {
        let window = Duration::from_millis(300);
        let fresh = || RetryClock::new(Instant::now() + window, 1000);
        // Alone, an operation that starts after another's failures gets
        // its own window.
        let mut first = fresh();
        assert!(first.next_delay(None).is_some());
        tokio::time::sleep(window).await;
        assert!(fresh().next_delay(None).is_some());
        // In one edge (a source read, then the upload that re-opens it),
        // the window runs from the edge's first failure: spent, the next
        // operation does not retry at all.
        one_edge(async {
            let mut first = fresh();
            assert!(first.next_delay(None).is_some());
            tokio::time::sleep(window).await;
            assert!(fresh().next_delay(None).is_none());
        })
        .await;
        // A new edge starts with its window whole.
        one_edge(async { assert!(fresh().next_delay(None).is_some()) }).await;
    }

    #[test]
    fn backoff_grows_is_jittered_and_stops_at_the_deadline_or_count() {
        let mut clock = RetryClock::new(Instant::now() + Duration::from_secs(3600), 5);
        let delays: Vec<Duration> = std::iter::from_fn(|| clock.next_delay(None)).collect();
        assert_eq!(delays.len(), 4);
        for (i, d) in delays.iter().enumerate() {
            let full = RetryClock::BASE * (1 << i);
            assert!(*d >= full / 2 && *d <= full, "{i}: {d:?}");
        }
        let mut short = RetryClock::new(Instant::now() + Duration::from_secs(2), 100);
        assert_eq!(short.next_delay(Some(Duration::from_secs(5))), None);
        assert_eq!(
            short.next_delay(Some(Duration::from_secs(1))),
            Some(Duration::from_secs(1))
        );
    }

    fn unavailable() -> RegistryError {
        RegistryError::Status {
            method: "GET".into(),
            url: "u".into(),
            status: 503,
            code: None,
            detail: None,
        }
    }

    #[tokio::test]
    async fn the_driver_retries_what_may_be_retried_until_it_works() {
        let clock = RetryClock::new(Instant::now() + Duration::from_secs(60), 5);
        let mut calls = 0;
        let got = with_retries(
            clock,
            &|| "op".to_string(),
            RegistryError::is_retryable,
            || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 3 {
                        Err(Failed {
                            error: unavailable(),
                            retry_after: Some(Duration::ZERO),
                            paced: false,
                        })
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .await;
        assert_eq!(got.unwrap(), 3);
    }

    #[tokio::test]
    async fn the_driver_gives_up_on_refusal_or_when_the_clock_runs_out() {
        let clock = RetryClock::new(Instant::now() + Duration::from_secs(60), 3);
        let mut calls = 0;
        let got: Result<(), _> = with_retries(
            clock,
            &|| "op".to_string(),
            |_| true,
            || {
                calls += 1;
                async {
                    Err(Failed {
                        error: unavailable(),
                        retry_after: Some(Duration::ZERO),
                        paced: false,
                    })
                }
            },
        )
        .await;
        assert!(got.is_err());
        assert_eq!(calls, 3, "max_attempts bounds the attempts");

        let clock = RetryClock::new(Instant::now() + Duration::from_secs(60), 3);
        let mut calls = 0;
        let got: Result<(), _> = with_retries(
            clock,
            &|| "op".to_string(),
            |_| false,
            || {
                calls += 1;
                async { Err(Failed::from(unavailable())) }
            },
        )
        .await;
        assert!(got.is_err());
        assert_eq!(calls, 1, "a refused error is final");
    }

    #[tokio::test]
    async fn paced_attempts_are_bounded_by_the_deadline_not_the_count() {
        let clock = RetryClock::new(Instant::now() + Duration::from_secs(60), 2);
        let mut calls = 0;
        let got = with_retries(
            clock,
            &|| "op".to_string(),
            |_| true,
            || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 6 {
                        Err(Failed {
                            error: unavailable(),
                            retry_after: None,
                            paced: true,
                        })
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .await;
        assert_eq!(got.unwrap(), 6, "five paced retries, past max_attempts 2");
        // A Retry-After past the deadline still fails at once.
        let mut clock = RetryClock::new(Instant::now() + Duration::from_secs(2), 100);
        assert!(!clock.paced(Some(Duration::from_secs(5))));
        assert!(clock.paced(Some(Duration::from_secs(1))));
    }
}
