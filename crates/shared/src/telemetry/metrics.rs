//! The process's metrics: one registry per process, recorded with one-line calls at the call
//! sites and served as text by each service's `/metrics` (`prometheus-client`); with OTLP on,
//! the same values are also pushed ([`super::instruments`], [`super::otlp`]).
//!
//! Every metric is prefixed `chatops_`; label values come from small fixed sets (never a user,
//! channel or job id), so the number of series stays bounded. Which service records what:
//!
//! | metric | kind | labels | recorded by |
//! |---|---|---|---|
//! | `chatops_commands_total` | counter | `outcome` (accepted, replayed, rejected, denied, unverified, failed), `reason` | ingress |
//! | `chatops_ack_seconds` | histogram | | ingress: a slash command's arrival to its answer |
//! | `chatops_queue_depth` | gauge | `queue` (jobs, poison) | runner: sampled when `/metrics` is read |
//! | `chatops_jobs_in_flight` | gauge | | runner |
//! | `chatops_jobs_finished_total` | counter | `state` | runner |
//! | `chatops_dispatch_seconds` | histogram | | runner: the command's arrival to the job's start, first delivery only |
//! | `chatops_arm_requests_total` | counter | `status` (HTTP status, or `network`) | runner |
//! | `chatops_arm_read_budget` | gauge | | runner: ARM reads per second its budget allows now (`CHATOPS_ARM_READS_PER_SECOND`, lower after a 429 or a low subscription budget) |
//! | `chatops_slack_requests_total` | counter | `api` (web, post), `status` | both |
//! | `chatops_storage_requests_total` | counter | `status` (`ok`, HTTP status, `timeout`, `network`) | both: every queue and blob try |
//! | `chatops_retries_total` | counter | `target` (storage, arm, slack) | both |
//! | `chatops_poison_moves_total` | counter | | runner |

use super::instruments::{Count, Counters, Gauges, Level, Registrar, Seconds, UpDown};
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use std::sync::LazyLock;
use std::time::Duration;

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets in seconds: 1 ms to 10 s, fine where Slack's 3 s matters.
const LATENCY_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0,
];

type Labels1 = [(&'static str, &'static str); 1];
type Labels2 = [(&'static str, &'static str); 2];
type StatusLabels = [(&'static str, String); 1];

struct Metrics {
    registry: Registry,
    commands: Counters<Labels2>,
    ack: Seconds,
    queue_depth: Gauges<Labels1>,
    jobs_in_flight: UpDown,
    jobs_finished: Counters<Labels1>,
    dispatch: Seconds,
    arm: Counters<StatusLabels>,
    arm_read_budget: Level,
    slack: Counters<[(&'static str, String); 2]>,
    storage: Counters<StatusLabels>,
    retries: Counters<Labels1>,
    poison_moves: Count,
}

impl Metrics {
    /// Each metric, declared once: its `/metrics` series and, with OTLP on, its instrument.
    fn new() -> Self {
        let mut r = Registrar::new();
        Metrics {
            commands: r.counters("commands", "Slash commands by outcome and reason"),
            ack: r.seconds(
                "ack_seconds",
                "Time from a slash command's arrival to its answer",
                &LATENCY_BUCKETS,
            ),
            queue_depth: r.gauges(
                "queue_depth",
                "Approximate messages on the queue, sampled when scraped",
            ),
            jobs_in_flight: r.up_down("jobs_in_flight", "Jobs this runner is running or reporting"),
            jobs_finished: r.counters("jobs_finished", "Jobs ended, by final state"),
            dispatch: r.seconds(
                "dispatch_seconds",
                "Time from a command's arrival to its job's start (first delivery)",
                &LATENCY_BUCKETS,
            ),
            arm: r.counters(
                "arm_requests",
                "Azure Resource Manager answers by HTTP status",
            ),
            arm_read_budget: r.level(
                "arm_read_budget",
                "ARM reads per second this runner's budget allows now",
            ),
            slack: r.counters("slack_requests", "Slack answers by API and HTTP status"),
            storage: r.counters(
                "storage_requests",
                "Azure Storage (queue and blob) tries by outcome",
            ),
            retries: r.counters("retries", "Calls tried again after a transient failure"),
            poison_moves: r.counter("poison_moves", "Messages moved to the poison queue"),
            registry: r.registry,
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The metrics in the text exposition format, for `/metrics`.
pub fn render() -> String {
    let mut text = String::new();
    if encode(&mut text, &METRICS.registry).is_err() {
        // Writing to a String cannot fail; an empty page is the honest answer if it did.
        text.clear();
    }
    text
}

/// One slash command's outcome; `reason` is a short fixed word (`""` when there is none).
pub fn command(outcome: &'static str, reason: &'static str) {
    METRICS
        .commands
        .inc([("outcome", outcome), ("reason", reason)]);
}

/// A slash command's answer took `elapsed` from its arrival.
pub fn ack(elapsed: Duration) {
    METRICS.ack.observe(elapsed.as_secs_f64());
}

/// `queue` (`jobs` or `poison`) held about `messages` messages when last sampled.
pub fn queue_depth(queue: &'static str, messages: u64) {
    let value = i64::try_from(messages).unwrap_or(i64::MAX);
    METRICS.queue_depth.set([("queue", queue)], value);
}

/// The runner's ARM read budget allows `reads_per_second` now.
pub fn arm_read_budget(reads_per_second: f64) {
    METRICS.arm_read_budget.set(reads_per_second);
}

/// A job is running here until the returned guard is dropped.
#[must_use = "the job counts as in flight until this is dropped"]
pub fn job_in_flight() -> InFlight {
    METRICS.jobs_in_flight.add(1);
    InFlight(())
}

/// Counts a job in flight while it lives (see [`job_in_flight`]).
pub struct InFlight(());

impl Drop for InFlight {
    fn drop(&mut self) {
        METRICS.jobs_in_flight.add(-1);
    }
}

/// A job ended in `state`.
pub fn job_finished(state: &'static str) {
    METRICS.jobs_finished.inc([("state", state)]);
}

/// A job started `latency` after its command arrived.
pub fn dispatch(latency: Duration) {
    METRICS.dispatch.observe(latency.as_secs_f64());
}

/// Azure Resource Manager answered with `status` (`None`: no answer, a network failure).
pub fn arm_answer(status: Option<u16>) {
    METRICS.arm.inc([("status", label(status))]);
}

/// Slack's `api` (`web` for the Web API, `post` for response_url and webhook posts) answered
/// with `status` (`None`: no answer).
pub fn slack_answer(api: &'static str, status: Option<u16>) {
    METRICS
        .slack
        .inc([("api", api.to_owned()), ("status", label(status))]);
}

/// One try at Azure Storage ended: `ok`, an HTTP status, `timeout` or `network`.
pub fn storage_try(outcome: &str) {
    METRICS.storage.inc([("status", outcome.to_owned())]);
}

/// A call to `target` (`storage`, `arm`, `slack`) is tried again.
pub fn retry(target: &'static str) {
    METRICS.retries.inc([("target", target)]);
}

/// A message went to the poison queue.
pub fn poison_moved() {
    METRICS.poison_moves.inc();
}

fn label(status: Option<u16>) -> String {
    status.map_or_else(|| "network".to_owned(), |s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_show_in_the_text_format() {
        command("rejected", "unknown_runbook");
        arm_answer(Some(429));
        slack_answer("web", None);
        ack(Duration::from_millis(3));
        {
            let _job = job_in_flight();
            assert!(render().contains("chatops_jobs_in_flight 1"));
        }
        let text = render();
        assert!(
            text.contains(
                r#"chatops_commands_total{outcome="rejected",reason="unknown_runbook"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"chatops_arm_requests_total{status="429"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"chatops_slack_requests_total{api="web",status="network"} 1"#),
            "{text}"
        );
        assert!(text.contains("chatops_ack_seconds_count 1"), "{text}");
        assert!(text.contains("chatops_jobs_in_flight 0"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
