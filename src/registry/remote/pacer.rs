//! The pace of one registry: how many requests are in flight at once and
//! how many go out per second, learnt from the registry's answers.
//!
//! Quotas are per registry (Artifact Registry's are per region, per
//! minute, and writes are metered apart), so every transport has its own
//! [`Pacer`] and one slow or throttled registry never holds another. Two
//! budgets: one every request takes a slot in, and one writes take a slot
//! in as well. A configured rate is a budget's ceiling; without one a
//! budget starts unpaced and is paced only once the registry says 429.
//!
//! What is learnt, and why so:
//!
//! - **A 429 cuts the rate** of the budget it hit (a write's: the write
//!   budget; a read's: the whole registry's) to a little under what the
//!   registry accepted in the last second. A token bucket that answers 429
//!   is empty, and an empty bucket lets through exactly its refill rate, so
//!   that is the quota; halving instead would leave a quarter of it unused
//!   on average. Only a 429 to a request sent after the last cut is a new
//!   event: the requests already in flight when it came say the same thing.
//! - **Clean answers grow the rate**, slowly just after a cut (2% a
//!   second) and faster the longer answers stay clean (2% more for every
//!   clean second), and only while the pacer is what holds requests back:
//!   a rate nobody uses is no evidence, and would come back as a burst.
//! - **The in-flight limit** halves on a 429 event and on latency well above
//!   what the registry answered in before (a loaded registry answers slowly
//!   before it refuses), and grows by one every `limit` clean answers.
//!
//! A retry of a 429 waits for its slot here (and no earlier than its
//! `Retry-After`), not for a backoff of its own on top: a request answered
//! 429 is a request spent, and the pacer is what knows when the next one
//! will be let through.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::options::ResolvedOptions;

/// What the registry's accepted answers are counted over to learn its quota.
const DELIVERY_WINDOW: Duration = Duration::from_secs(1);
/// Fewer accepted answers than this in the window are no measure of a
/// quota: the last this many are, over however long they took.
const DELIVERY_SAMPLES: usize = 8;
/// A cut goes this far under the rate the registry accepted, so that the
/// bucket refills a little between probes.
const UNDER_QUOTA: f64 = 0.95;
/// How fast a rate grows while it holds requests back, per second, just
/// after a cut; each clean second adds as much again.
const GROWTH_PER_SECOND: f64 = 0.02;
/// The slowest a budget is cut to: one request every 20 s still finishes
/// a retry deadline's work on a registry that has almost nothing left.
const LOWEST_RATE: f64 = 0.05;
/// Latency above this many times the registry's usual is a slowdown...
const LATENCY_RISE: f64 = 4.0;
/// ...once it is above this too: on loopback, milliseconds come and go.
const LATENCY_FLOOR: Duration = Duration::from_millis(250);
/// The least a 429 event waits for the answers already on their way.
const SETTLE_LEAST: Duration = Duration::from_millis(50);
/// The in-flight limit a slowdown alone cuts to at the least (a 429 may
/// cut it to one).
const LATENCY_LOWEST_LIMIT: usize = 4;

/// Which budgets a request takes a slot in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// GET and HEAD: the registry's budget only.
    Read,
    /// Everything else: the write budget too.
    Write,
}

impl Class {
    pub(crate) fn of(method: &reqwest::Method) -> Class {
        if matches!(*method, reqwest::Method::GET | reqwest::Method::HEAD) {
            Class::Read
        } else {
            Class::Write
        }
    }
}

/// One budget of requests per second.
#[derive(Debug)]
struct Budget {
    /// The configured rate: never exceeded.
    ceiling: Option<f64>,
    /// The rate in force; `None`: unpaced.
    rate: Option<f64>,
    /// The next free slot.
    next: Instant,
    /// When the rate was last cut: 429s to requests sent before it are the
    /// same event.
    last_cut: Option<Instant>,
    /// A 429 event whose cut waits for the answers already on their way
    /// (a 429 comes back sooner than an accepted upload, so the count at
    /// the 429 itself is short): the event, and when to decide.
    settling: Option<(Instant, Instant)>,
    /// When a request last had to wait for a slot (the rate held it back).
    last_held: Option<Instant>,
    /// When the rate last grew.
    last_growth: Instant,
    /// When the registry accepted requests of this budget, over the last
    /// [`DELIVERY_WINDOW`].
    accepted: VecDeque<Instant>,
    /// Bumped on every cut, so that a request asleep until a slot of the
    /// old rate takes a new one.
    epoch: u64,
    lowest: Option<f64>,
    cuts: u64,
}

impl Budget {
    fn new(ceiling: Option<f64>, now: Instant) -> Budget {
        Budget {
            ceiling,
            rate: ceiling,
            next: now,
            last_cut: None,
            settling: None,
            last_held: None,
            last_growth: now,
            accepted: VecDeque::new(),
            epoch: 0,
            lowest: ceiling,
            cuts: 0,
        }
    }

    /// The slot of a request that may go no earlier than `earliest`.
    fn reserve(&mut self, earliest: Instant, now: Instant) -> Instant {
        self.settle(now);
        let earliest = match self.settling {
            Some((_, until)) => earliest.max(until),
            None => earliest,
        };
        let Some(rate) = self.rate else {
            return earliest;
        };
        let slot = self.next.max(earliest);
        self.next = slot + Duration::from_secs_f64(1.0 / rate);
        if slot > now {
            // When the held request goes: its answer is then "lately".
            self.last_held = Some(slot);
        }
        slot
    }

    fn forget_before(&mut self, now: Instant) {
        // Two windows (a settling cut counts the one before its event), and
        // always the last few answers (a quiet registry's measure).
        while self.accepted.len() > DELIVERY_SAMPLES
            && self
                .accepted
                .front()
                .is_some_and(|at| now.saturating_duration_since(*at) > 2 * DELIVERY_WINDOW)
        {
            self.accepted.pop_front();
        }
    }

    /// A clean answer: counted for the quota estimate, and the rate grows
    /// if it is what holds requests back.
    fn accepted(&mut self, now: Instant) {
        self.forget_before(now);
        self.accepted.push_back(now);
        let Some(rate) = self.rate else { return };
        let held_lately = self
            .last_held
            .is_some_and(|at| now.saturating_duration_since(at) < DELIVERY_WINDOW);
        let since = now.saturating_duration_since(self.last_growth);
        self.last_growth = now;
        if held_lately {
            // Slow just after a cut (the quota is near), faster the longer
            // it has been clean: a lone 429 (a passing hiccup, the start of
            // a run) costs seconds, not the rest of the run.
            let clean = self
                .last_cut
                .map_or(0.0, |cut| now.saturating_duration_since(cut).as_secs_f64());
            let per_second = GROWTH_PER_SECOND * (1.0 + clean);
            let grown = rate * (1.0 + per_second * since.as_secs_f64().min(1.0));
            self.rate = Some(self.ceiling.map_or(grown, |c| grown.min(c)));
        }
    }

    /// A 429 to a request sent at `sent`: a new event unless an earlier
    /// cut already answered it (the request went before that cut). The
    /// budget then holds every request for `settle` (the answers on their
    /// way land), and [`Budget::settle`] cuts. Whether it was new.
    fn throttled(&mut self, sent: Instant, now: Instant, settle: Duration) -> bool {
        if self.last_cut.is_some_and(|cut| sent <= cut) {
            return false;
        }
        self.last_cut = Some(now);
        self.settling = Some((now, now + settle));
        self.epoch += 1;
        self.cuts += 1;
        true
    }

    /// A settled event's cut: to just under what the registry accepted in
    /// the second before the event (and the answers since, which were on
    /// their way at it). A token bucket that answers 429 is empty, and an
    /// empty bucket lets through its refill rate: that is the quota.
    fn settle(&mut self, now: Instant) {
        let Some((event, until)) = self.settling else {
            return;
        };
        if now < until {
            return;
        }
        self.settling = None;
        let Some((counted, delivered)) = self.delivered(event) else {
            // Nothing accepted to learn from: the in-flight cut alone.
            return;
        };
        // Never more than halved by one event: a quiet second before it
        // (every request waiting out a Retry-After) is no measure.
        let floor = self.rate.map_or(LOWEST_RATE, |r| r / 2.0);
        let sending = self.rate.unwrap_or(f64::INFINITY);
        let cut = (UNDER_QUOTA * delivered.min(sending))
            .max(floor)
            .max(LOWEST_RATE);
        let cut = self.ceiling.map_or(cut, |c| cut.min(c));
        self.rate = Some(cut);
        self.lowest = Some(self.lowest.map_or(cut, |l| l.min(cut)));
        // The bucket is empty: the first slot is one interval away, and
        // the slots handed out before are void.
        self.next = now + Duration::from_secs_f64(1.0 / cut);
        self.last_cut = Some(now);
        self.last_growth = now;
        self.epoch += 1;
        tracing::debug!(rate = cut, accepted = counted, "429: request rate cut");
    }

    /// What the registry accepted up to the event and since: per second
    /// over the second before it when that holds enough answers to be a
    /// measure, else over the last few answers however long they took.
    /// `None` when nothing was ever accepted. Also the answers counted.
    fn delivered(&self, event: Instant) -> Option<(usize, f64)> {
        let from = event.checked_sub(DELIVERY_WINDOW).unwrap_or(event);
        let counted = self.accepted.iter().filter(|at| **at > from).count();
        if counted >= DELIVERY_SAMPLES {
            return Some((counted, counted as f64 / DELIVERY_WINDOW.as_secs_f64()));
        }
        let oldest = *self
            .accepted
            .iter()
            .rev()
            .nth(DELIVERY_SAMPLES - 1)
            .or(self.accepted.front())?;
        let n = self.accepted.len().min(DELIVERY_SAMPLES);
        let span = event.saturating_duration_since(oldest).max(DELIVERY_WINDOW);
        Some((n, n as f64 / span.as_secs_f64()))
    }

    fn report(&self) -> Option<RateReport> {
        let last = self.rate?;
        Some(RateReport {
            ceiling: self.ceiling,
            lowest: self.lowest.unwrap_or(last),
            last,
        })
    }
}

/// The in-flight limit: a semaphore of the most permits, some held back
/// while the limit is lower.
#[derive(Debug)]
struct Window {
    permits: Semaphore,
    most: usize,
    limit: AtomicUsize,
    /// Permits to forget as they come back (the limit was cut while they
    /// were out).
    owed: AtomicUsize,
    lowest: AtomicUsize,
    /// Clean answers since the limit last grew.
    clean: AtomicUsize,
}

impl Window {
    fn new(most: usize) -> Window {
        Window {
            permits: Semaphore::new(most),
            most,
            limit: AtomicUsize::new(most),
            owed: AtomicUsize::new(0),
            lowest: AtomicUsize::new(most),
            clean: AtomicUsize::new(0),
        }
    }

    fn shrink_to(&self, to: usize) {
        let to = to.max(1);
        let Ok(was) = self
            .limit
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| {
                (l > to).then_some(to)
            })
        else {
            return;
        };
        let cut = was - to;
        let forgotten = self.permits.forget_permits(cut);
        self.owed.fetch_add(cut - forgotten, Ordering::AcqRel);
        self.lowest.fetch_min(to, Ordering::Relaxed);
        self.clean.store(0, Ordering::Relaxed);
    }

    /// One clean answer: every `limit` of them, the limit grows by one.
    fn clean(&self) {
        let limit = self.limit.load(Ordering::Acquire);
        if limit >= self.most || self.clean.fetch_add(1, Ordering::AcqRel) + 1 < limit {
            return;
        }
        self.clean.store(0, Ordering::Relaxed);
        if self
            .limit
            .compare_exchange(limit, limit + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let owed = self
            .owed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |o| o.checked_sub(1));
        if owed.is_err() {
            self.permits.add_permits(1);
        }
    }

    /// A permit coming back: forgotten if the limit was cut meanwhile.
    fn give_back(&self, permit: SemaphorePermit<'_>) {
        let owed = self
            .owed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |o| o.checked_sub(1));
        if owed.is_ok() {
            permit.forget();
        }
    }
}

/// Latency of bodiless requests: the usual, and the recent.
#[derive(Debug, Default)]
struct Latency {
    /// The lowest smoothed latency seen: what this registry answers in.
    usual: Option<Duration>,
    recent: Option<Duration>,
    last_cut: Option<Instant>,
}

impl Latency {
    /// Whether `took` makes the recent latency a slowdown worth a cut.
    fn slowed(&mut self, took: Duration, now: Instant) -> bool {
        let recent = match self.recent {
            Some(r) => r.mul_f64(0.9) + took.mul_f64(0.1),
            None => took,
        };
        self.recent = Some(recent);
        let usual = *self.usual.get_or_insert(recent);
        self.usual = Some(usual.min(recent));
        let slow = recent > usual.mul_f64(LATENCY_RISE) && recent > LATENCY_FLOOR;
        let lately = self
            .last_cut
            .is_some_and(|at| now.saturating_duration_since(at) < recent.max(DELIVERY_WINDOW));
        if slow && !lately {
            self.last_cut = Some(now);
            return true;
        }
        false
    }
}

/// A request let through: its permit (given back when dropped) and when
/// it went.
pub(crate) struct Admitted<'p> {
    pacer: &'p Pacer,
    permit: Option<SemaphorePermit<'p>>,
    class: Class,
    sent: Instant,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            self.pacer.window.give_back(permit);
        }
    }
}

/// The pace of one registry (see the module docs).
#[derive(Debug)]
pub(crate) struct Pacer {
    adaptive: bool,
    all: Mutex<Budget>,
    writes: Mutex<Budget>,
    window: Window,
    latency: Mutex<Latency>,
    answered: AtomicU64,
    throttled: AtomicU64,
    with_retry_after: AtomicU64,
    latency_cuts: AtomicU64,
    waited_micros: AtomicU64,
}

impl Pacer {
    pub(crate) fn new(opts: &ResolvedOptions) -> Pacer {
        let now = Instant::now();
        Pacer {
            adaptive: opts.adaptive,
            all: Mutex::new(Budget::new(opts.requests_per_second, now)),
            writes: Mutex::new(Budget::new(opts.write_requests_per_second, now)),
            window: Window::new(opts.max_in_flight),
            latency: Mutex::new(Latency::default()),
            answered: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            with_retry_after: AtomicU64::new(0),
            latency_cuts: AtomicU64::new(0),
            waited_micros: AtomicU64::new(0),
        }
    }

    /// Whether 429s are learnt from (and their retries wait for the pacer).
    pub(crate) fn adaptive(&self) -> bool {
        self.adaptive
    }

    /// Wait for an in-flight permit and a slot in every budget of `class`,
    /// no earlier than `not_before` (a `Retry-After`). `None`: closed.
    pub(crate) async fn admit(
        &self,
        class: Class,
        not_before: Option<std::time::Instant>,
    ) -> Option<Admitted<'_>> {
        let asked = Instant::now();
        let permit = self.window.permits.acquire().await.ok()?;
        let earliest = not_before.map(Instant::from_std);
        loop {
            let now = Instant::now();
            let earliest = earliest.map_or(now, |e| e.max(now));
            let (slot, epochs) = self.reserve(class, earliest, now);
            tokio::time::sleep_until(slot).await;
            // A cut while we slept voids the slot: take one at the new rate.
            if self.epochs() == epochs {
                break;
            }
        }
        let sent = Instant::now();
        let waited = sent.saturating_duration_since(asked);
        crate::registry::retry::waited_for_pace(waited);
        self.waited_micros
            .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        Some(Admitted {
            pacer: self,
            permit: Some(permit),
            class,
            sent,
        })
    }

    fn reserve(&self, class: Class, earliest: Instant, now: Instant) -> (Instant, (u64, u64)) {
        let mut writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let earliest = match class {
            Class::Write => writes.reserve(earliest, now),
            Class::Read => earliest,
        };
        let mut all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        let slot = all.reserve(earliest, now);
        (slot, (all.epoch, writes.epoch))
    }

    /// Both budgets' epochs (settling any cut that is due): a reservation
    /// made under other epochs is void.
    fn epochs(&self) -> (u64, u64) {
        let now = Instant::now();
        let mut writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        writes.settle(now);
        let mut all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        all.settle(now);
        (all.epoch, writes.epoch)
    }

    /// How long a 429 event waits for the answers on their way: a few of
    /// the registry's usual answer times.
    fn settle_time(&self) -> Duration {
        let recent = self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .recent
            .unwrap_or(SETTLE_LEAST);
        (recent * 3).clamp(SETTLE_LEAST, DELIVERY_WINDOW / 2)
    }

    /// The answer to `request` came: `status`, after `took`; `bodiless`
    /// requests' latency says whether the registry slows down.
    pub(crate) fn answered(
        &self,
        request: &Admitted<'_>,
        status: u16,
        retry_after: bool,
        bodiless: bool,
    ) {
        let now = Instant::now();
        self.answered.fetch_add(1, Ordering::Relaxed);
        if status == 429 {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            if retry_after {
                self.with_retry_after.fetch_add(1, Ordering::Relaxed);
            }
            if self.adaptive && self.cut(request, now) {
                let limit = self.window.limit.load(Ordering::Acquire);
                self.window.shrink_to(limit / 2);
            }
            return;
        }
        if !self.adaptive {
            return;
        }
        self.all
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .accepted(now);
        if request.class == Class::Write {
            self.writes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .accepted(now);
        }
        let took = now.saturating_duration_since(request.sent);
        let slowed = bodiless
            && self
                .latency
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .slowed(took, now);
        if slowed {
            let limit = self.window.limit.load(Ordering::Acquire);
            if limit > LATENCY_LOWEST_LIMIT {
                self.latency_cuts.fetch_add(1, Ordering::Relaxed);
                self.window
                    .shrink_to((limit * 3 / 4).max(LATENCY_LOWEST_LIMIT));
            }
        } else {
            self.window.clean();
        }
    }

    /// Cut the budget a 429 to `request` hit. Whether it was a new event.
    fn cut(&self, request: &Admitted<'_>, now: Instant) -> bool {
        let budget = match request.class {
            Class::Write => &self.writes,
            Class::Read => &self.all,
        };
        let settle = self.settle_time();
        let cut =
            budget
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .throttled(request.sent, now, settle);
        if cut {
            tracing::debug!(class = ?request.class, settle_ms = settle.as_millis() as u64,
                "429: a new event; the rate is cut once the answers on their way are in");
        }
        cut
    }

    /// What the pacer did so far, for the report and the log.
    pub(crate) fn report(&self, registry: &str) -> PacingReport {
        let _ = self.epochs();
        let all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        let writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        PacingReport {
            registry: registry.to_string(),
            adaptive: self.adaptive,
            requests: self.answered.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            throttled_with_retry_after: self.with_retry_after.load(Ordering::Relaxed),
            rate_cuts: all.cuts + writes.cuts,
            latency_cuts: self.latency_cuts.load(Ordering::Relaxed),
            waited_secs: self.waited_micros.load(Ordering::Relaxed) as f64 / 1e6,
            in_flight: InFlightReport {
                most: self.window.most,
                lowest: self.window.lowest.load(Ordering::Relaxed),
                last: self.window.limit.load(Ordering::Relaxed),
            },
            rate: all.report(),
            write_rate: writes.report(),
        }
    }
}

/// What one registry's pacer did over a run (the JSON report's
/// `execution.pacing`, and one log line at -v).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacingReport {
    /// The registry, `host[:port]`.
    pub registry: String,
    /// Whether the pacer learnt from the registry's answers.
    pub adaptive: bool,
    /// Answers received (every attempt of every request).
    pub requests: u64,
    /// Of them, 429s.
    pub throttled: u64,
    /// Of the 429s, those that carried `Retry-After`.
    pub throttled_with_retry_after: u64,
    /// Times a request rate was cut for a 429.
    pub rate_cuts: u64,
    /// Times the in-flight limit was cut for rising latency.
    pub latency_cuts: u64,
    /// Time requests waited for a permit or a slot, summed over requests.
    pub waited_secs: f64,
    /// The in-flight limit.
    pub in_flight: InFlightReport,
    /// Every request's rate, if it was ever paced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateReport>,
    /// Writes' rate, if they were ever paced apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_rate: Option<RateReport>,
}

/// The in-flight limit over a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlightReport {
    /// `max_in_flight`: where it starts, and the most it grows to.
    pub most: usize,
    /// The lowest it was cut to.
    pub lowest: usize,
    /// Where it ended.
    pub last: usize,
}

/// A request rate over a run, in requests per second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateReport {
    /// The configured ceiling, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ceiling: Option<f64>,
    /// The lowest it was cut to.
    pub lowest: f64,
    /// Where it ended.
    pub last: f64,
}

impl PacingReport {
    /// Whether the pacer had anything to do (a 429, a cut, a configured
    /// rate): the log line is worth printing.
    pub fn eventful(&self) -> bool {
        self.throttled > 0
            || self.latency_cuts > 0
            || self.rate.is_some()
            || self.write_rate.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(adjust: impl FnOnce(&mut super::super::RegistryOptions)) -> ResolvedOptions {
        let mut o = super::super::RegistryOptions::default();
        adjust(&mut o);
        o.resolve("registry.example")
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_cuts_to_just_under_what_the_registry_accepted() {
        let pacer = Pacer::new(&options(|_| {}));
        // Unpaced: 30 requests answered within the last second.
        for _ in 0..30 {
            let a = pacer.admit(Class::Read, None).await.unwrap();
            pacer.answered(&a, 200, false, true);
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        let a = pacer.admit(Class::Read, None).await.unwrap();
        let b = pacer.admit(Class::Read, None).await.unwrap();
        pacer.answered(&a, 429, false, true);
        // b was sent before the cut: the same event, no second cut.
        pacer.answered(&b, 429, true, true);
        // The cut waits for the answers on their way.
        assert!(pacer.report("r").rate.is_none());
        tokio::time::advance(Duration::from_millis(500)).await;
        let report = pacer.report("r");
        assert_eq!(report.throttled, 2);
        assert_eq!(report.throttled_with_retry_after, 1);
        assert_eq!(report.rate_cuts, 1);
        let rate = report.rate.unwrap();
        assert!((rate.last - 30.0 * UNDER_QUOTA).abs() < 1e-9, "{rate:?}");
        assert_eq!(report.in_flight.lowest, 8, "halved from 16");
        assert!(report.write_rate.is_none(), "a read's 429 is not a write's");
    }

    #[tokio::test(start_paused = true)]
    async fn a_paced_budget_spaces_requests_and_grows_while_it_holds_them_back() {
        let pacer = Pacer::new(&options(|o| o.requests_per_second = Some(100.0)));
        let started = Instant::now();
        for _ in 0..11 {
            let a = pacer.admit(Class::Read, None).await.unwrap();
            pacer.answered(&a, 200, false, true);
        }
        // Ten intervals of 10 ms: never faster than the ceiling.
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert_eq!(pacer.report("r").rate.unwrap().last, 100.0, "capped");
        // Learnt rates grow, while they hold requests back.
        let learnt = Pacer::new(&options(|_| {}));
        let a = learnt.admit(Class::Write, None).await.unwrap();
        learnt.answered(&a, 200, false, false);
        let a = learnt.admit(Class::Write, None).await.unwrap();
        learnt.answered(&a, 429, false, false);
        tokio::time::advance(Duration::from_millis(500)).await;
        let cut = learnt.report("r").write_rate.unwrap().last;
        for _ in 0..50 {
            let a = learnt.admit(Class::Write, None).await.unwrap();
            learnt.answered(&a, 201, false, false);
        }
        let grown = learnt.report("r").write_rate.unwrap().last;
        assert!(grown > cut, "{cut} -> {grown}");
        assert!(learnt.report("r").rate.is_none(), "only writes were cut");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_holds_the_retry_and_not_the_others() {
        let pacer = Pacer::new(&options(|_| {}));
        let later = std::time::Instant::now() + Duration::from_secs(2);
        let asked = Instant::now();
        let held = pacer.admit(Class::Read, Some(later)).await.unwrap();
        assert!(held.sent.duration_since(asked) >= Duration::from_secs(2));
        drop(held);
        let other = pacer.admit(Class::Read, None).await.unwrap();
        assert_eq!(other.sent, Instant::now());
    }

    #[tokio::test(start_paused = true)]
    async fn the_in_flight_limit_is_cut_and_grows_back() {
        let pacer = Pacer::new(&options(|o| o.max_in_flight = Some(4)));
        let held: Vec<_> =
            futures::future::join_all((0..4).map(|_| pacer.admit(Class::Read, None)))
                .await
                .into_iter()
                .map(Option::unwrap)
                .collect();
        pacer.answered(&held[0], 429, false, true);
        assert_eq!(pacer.window.limit.load(Ordering::Relaxed), 2);
        drop(held);
        assert_eq!(
            pacer.window.permits.available_permits(),
            2,
            "the cut permits were forgotten as they came back"
        );
        for _ in 0..20 {
            let a = pacer.admit(Class::Read, None).await.unwrap();
            pacer.answered(&a, 200, false, true);
        }
        assert_eq!(pacer.window.limit.load(Ordering::Relaxed), 4);
        assert_eq!(pacer.window.permits.available_permits(), 4);
        assert_eq!(pacer.report("r").in_flight.lowest, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn without_adaptation_only_the_ceiling_holds() {
        let pacer = Pacer::new(&options(|o| o.adaptive = Some(false)));
        let a = pacer.admit(Class::Read, None).await.unwrap();
        pacer.answered(&a, 429, false, true);
        let report = pacer.report("r");
        assert_eq!((report.throttled, report.rate_cuts), (1, 0));
        assert!(report.rate.is_none());
        assert!(!pacer.adaptive());
    }
}
