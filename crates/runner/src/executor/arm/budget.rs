//! [`ReadBudget`]: the one ARM read budget of a runner process, shared by every GET its
//! [`ArmClient`](super::ArmClient) makes, however many jobs it follows.
//!
//! ARM throttles reads per subscription and principal with a token bucket (250 reads, refilled
//! at 25 a second; `shared/reference/azure-automation.md`); every runner replica uses the same
//! identity, so each gets a share: `CHATOPS_ARM_READS_PER_SECOND`, the subscription's 25/s
//! divided by the replicas. Reads wait their turn here, first come first served, so polling
//! many jobs makes each job's polls rarer instead of making ARM answer 429.
//!
//! The share is a ceiling. When ARM says the subscription's bucket runs low
//! (`x-ms-ratelimit-remaining-subscription-reads` under [`LOW_SHARE`] of the most it has
//! reported: 50 of Azure's 250, 2,400 under the older hourly 12,000) or answers 429,
//! the rate is halved (at most once per [`CUT_INTERVAL`] for a low bucket; a 429 also pauses
//! every read for its `Retry-After`), and it grows back slowly, by a [`RECOVERY_PER_SECOND`]
//! share of the ceiling per second: N replicas that all see the shared bucket run low all slow
//! down, and stay inside it together (additive increase, multiplicative decrease).
//!
//! Reads made inside [`urgent`] (a job that has ended: its output and error records) go before
//! the polls waiting their turn: they are few, and the requester waits for them.
//!
//! A small token bucket of its own rather than a crate (`governor`): the rate changes while
//! reads wait, from ARM's answers, which a fixed-quota limiter does not do.

use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// ARM's bucket counts as running low under this share of the most remaining reads it has
/// reported (its size, as far as this runner can tell).
pub const LOW_SHARE: f64 = 1.0 / 5.0;
/// A low bucket halves the rate at most this often (the answers of reads already sent say the
/// same thing again).
pub const CUT_INTERVAL: Duration = Duration::from_secs(1);
/// The share of the ceiling regained per second after a cut: from the floor to the ceiling in
/// about half a minute.
pub const RECOVERY_PER_SECOND: f64 = 1.0 / 30.0;
/// The rate never drops under this share of the ceiling, so that jobs are still followed.
const FLOOR_SHARE: f64 = 1.0 / 32.0;
/// A 429 without `Retry-After` pauses reads this long.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause a `Retry-After` imposes.
const MAX_PAUSE: Duration = Duration::from_secs(60);

tokio::task_local! {
    static URGENT: bool;
}

/// Runs `reads` ahead of the polls waiting for the budget (see the module docs).
pub async fn urgent<F: Future>(reads: F) -> F::Output {
    URGENT.scope(true, reads).await
}

/// A process's ARM read budget; see the module docs.
#[derive(Debug)]
pub struct ReadBudget {
    /// The configured share, reads per second: the ceiling.
    ceiling: f64,
    /// Waiting reads queue here; tokio's mutex is fair, so they are served in order.
    turnstile: tokio::sync::Mutex<()>,
    /// The same for [`urgent`] reads, which polls let go first.
    urgent_turnstile: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Reads per second now, between the floor and the ceiling.
    rate: f64,
    /// Reads that may go now; at most one second's worth.
    tokens: f64,
    refilled: Instant,
    /// No read before then (a 429's `Retry-After`).
    paused_until: Option<Instant>,
    last_cut: Option<Instant>,
    /// The most remaining reads ARM has reported.
    most_remaining: u64,
    /// Urgent reads waiting for a token.
    urgent_waiting: usize,
}

impl ReadBudget {
    /// A budget of `reads_per_second` (more than 0), starting full.
    pub fn new(reads_per_second: f64) -> Self {
        let ceiling = if reads_per_second.is_finite() && reads_per_second > 0.0 {
            reads_per_second
        } else {
            1.0
        };
        crate::metrics::arm_read_budget(ceiling);
        ReadBudget {
            ceiling,
            turnstile: tokio::sync::Mutex::new(()),
            urgent_turnstile: tokio::sync::Mutex::new(()),
            state: Mutex::new(State {
                rate: ceiling,
                tokens: ceiling.max(1.0),
                refilled: Instant::now(),
                paused_until: None,
                last_cut: None,
                most_remaining: 0,
                urgent_waiting: 0,
            }),
        }
    }

    /// The configured share, reads per second.
    pub fn ceiling(&self) -> f64 {
        self.ceiling
    }

    /// The rate allowed now, reads per second.
    pub fn rate(&self) -> f64 {
        let mut state = self.lock();
        self.refill(&mut state, Instant::now());
        state.rate
    }

    /// Waits for this read's turn.
    pub async fn acquire(&self) {
        let urgent = URGENT.try_with(|u| *u).unwrap_or(false);
        let _waiting = urgent.then(|| UrgentWaiting::new(self));
        let _turn = if urgent {
            self.urgent_turnstile.lock().await
        } else {
            self.turnstile.lock().await
        };
        loop {
            let wait = {
                let now = Instant::now();
                let mut state = self.lock();
                self.refill(&mut state, now);
                let next_token =
                    Duration::from_secs_f64((1.0 - state.tokens).max(0.0) / state.rate);
                match state.paused_until.filter(|until| *until > now) {
                    Some(until) => until - now,
                    // A poll lets waiting urgent reads go first.
                    None if !urgent && state.urgent_waiting > 0 => {
                        next_token.max(Duration::from_secs_f64(1.0 / state.rate))
                    }
                    None if state.tokens >= 1.0 => {
                        state.tokens -= 1.0;
                        return;
                    }
                    None => next_token,
                }
            };
            // Re-checked after the sleep: a 429 meanwhile may have paused or slowed reads.
            tokio::time::sleep(wait).await;
        }
    }

    /// Learns from an ARM answer to a read: its status, the remaining subscription reads it
    /// reported, and its `Retry-After`.
    pub fn observe(&self, status: u16, remaining: Option<u64>, retry_after: Option<Duration>) {
        let now = Instant::now();
        let mut state = self.lock();
        self.refill(&mut state, now);
        if status == 429 {
            let pause = retry_after
                .unwrap_or(DEFAULT_PAUSE)
                .clamp(super::retry::MIN_RETRY_AFTER, MAX_PAUSE);
            state.paused_until = Some(
                state
                    .paused_until
                    .map_or(now + pause, |p| p.max(now + pause)),
            );
            state.tokens = 0.0;
            self.cut(&mut state, now, "ARM answered 429");
            return;
        }
        let Some(remaining) = remaining else {
            return;
        };
        state.most_remaining = state.most_remaining.max(remaining);
        if (remaining as f64) < state.most_remaining as f64 * LOW_SHARE
            && state
                .last_cut
                .is_none_or(|at| now.duration_since(at) >= CUT_INTERVAL)
        {
            self.cut(
                &mut state,
                now,
                "the subscription's ARM read budget runs low",
            );
        }
    }

    fn cut(&self, state: &mut State, now: Instant, why: &str) {
        let floor = self.ceiling * FLOOR_SHARE;
        state.rate = (state.rate / 2.0).max(floor);
        state.tokens = state.tokens.min(state.rate.max(1.0));
        state.last_cut = Some(now);
        crate::metrics::arm_read_budget(state.rate);
        tracing::warn!(
            reads_per_second = state.rate,
            ceiling = self.ceiling,
            "{why}: slowing this runner's ARM reads"
        );
    }

    /// Adds the tokens and the recovered rate since the last refill.
    fn refill(&self, state: &mut State, now: Instant) {
        let elapsed = now.duration_since(state.refilled).as_secs_f64();
        state.refilled = now;
        state.tokens = (state.tokens + elapsed * state.rate).min(state.rate.max(1.0));
        if state.rate < self.ceiling {
            state.rate =
                (state.rate + elapsed * self.ceiling * RECOVERY_PER_SECOND).min(self.ceiling);
            crate::metrics::arm_read_budget(state.rate);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counts an urgent read as waiting until it has its token (or is dropped).
struct UrgentWaiting<'a>(&'a ReadBudget);

impl<'a> UrgentWaiting<'a> {
    fn new(budget: &'a ReadBudget) -> Self {
        budget.lock().urgent_waiting += 1;
        UrgentWaiting(budget)
    }
}

impl Drop for UrgentWaiting<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.urgent_waiting = state.urgent_waiting.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every budget sets the one `chatops_arm_read_budget` gauge of the process: the tests
    /// that make budgets take turns, so that the gauge test reads its own budget's value.
    static GAUGE: Mutex<()> = Mutex::new(());

    fn gauge_turn() -> std::sync::MutexGuard<'static, ()> {
        GAUGE.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value of `chatops_arm_read_budget` on `/metrics`.
    fn gauge() -> f64 {
        chatops_shared::telemetry::metrics::render()
            .lines()
            .find_map(|l| l.strip_prefix("chatops_arm_read_budget "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(f64::NAN)
    }

    #[test]
    fn the_gauge_shows_the_rate_allowed_now() {
        let _turn = gauge_turn();
        let budget = ReadBudget::new(12.0);
        assert_eq!(gauge(), 12.0);
        budget.observe(429, None, None);
        let cut = gauge();
        assert!((6.0..6.1).contains(&cut), "{cut}");
        // Recovering, it follows the rate up.
        std::thread::sleep(Duration::from_millis(200));
        let now = budget.rate();
        assert!(now > cut && gauge() == now, "{cut} {now} {}", gauge());
    }

    #[test]
    fn a_429_halves_the_rate_down_to_a_floor() {
        let _turn = gauge_turn();
        let budget = ReadBudget::new(8.0);
        assert_eq!(budget.rate(), 8.0);
        budget.observe(429, Some(0), Some(Duration::from_secs(2)));
        let cut = budget.rate();
        assert!((4.0..4.1).contains(&cut), "{cut}");
        budget.observe(429, None, None);
        assert!(budget.rate() < 2.1);
        for _ in 0..20 {
            budget.observe(429, None, None);
        }
        assert!(budget.rate() >= 8.0 * FLOOR_SHARE);
    }

    #[test]
    fn a_429_asking_for_no_wait_still_pauses_reads_a_second() {
        let _turn = gauge_turn();
        let budget = ReadBudget::new(8.0);
        let before = Instant::now();
        budget.observe(429, None, Some(Duration::ZERO));
        let until = budget.lock().paused_until.expect("paused");
        assert!(
            until >= before + Duration::from_secs(1),
            "{:?}",
            until - before
        );
    }

    #[test]
    fn a_low_bucket_halves_the_rate_once_per_interval() {
        let _turn = gauge_turn();
        let budget = ReadBudget::new(8.0);
        budget.observe(200, Some(250), None);
        budget.observe(200, Some(100), None);
        assert_eq!(budget.rate(), 8.0, "100 of 250 is not low");
        budget.observe(200, Some(20), None);
        assert!(budget.rate() < 4.1);
        // Answers to reads already sent say the same again: no second cut within the interval.
        budget.observe(200, Some(10), None);
        assert!(budget.rate() > 3.9);
    }

    #[tokio::test]
    async fn urgent_reads_go_before_waiting_polls() {
        // Only its creation sets the gauge: its rate never drops.
        let budget = {
            let _turn = gauge_turn();
            std::sync::Arc::new(ReadBudget::new(10.0))
        };
        for _ in 0..10 {
            budget.acquire().await;
        }
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let read = |name: &'static str, is_urgent: bool| {
            let (budget, order) = (budget.clone(), order.clone());
            tokio::spawn(async move {
                if is_urgent {
                    urgent(budget.acquire()).await;
                } else {
                    budget.acquire().await;
                }
                order.lock().unwrap().push(name);
            })
        };
        let poll = read("poll", false);
        tokio::task::yield_now().await;
        let end = read("end of a job", true);
        poll.await.unwrap();
        end.await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["end of a job", "poll"]);
    }

    #[test]
    fn healthy_answers_change_nothing() {
        let _turn = gauge_turn();
        let budget = ReadBudget::new(3.0);
        budget.observe(200, Some(249), None);
        budget.observe(200, None, None);
        assert_eq!(budget.rate(), 3.0);
    }
}
