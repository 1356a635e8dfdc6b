//! The process's Prometheus metrics (`prometheus-client`): one registry per process, recorded
//! with one-line calls at the call sites and served as text by each service's `/metrics`.
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
//! | `chatops_slack_requests_total` | counter | `api` (web, post), `status` | both |
//! | `chatops_storage_requests_total` | counter | `status` (`ok`, HTTP status, `timeout`, `network`) | both: every queue and blob try |
//! | `chatops_retries_total` | counter | `target` (storage, arm, slack) | both |
//! | `chatops_poison_moves_total` | counter | | runner |

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
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
    commands: Family<Labels2, Counter>,
    ack: Histogram,
    queue_depth: Family<Labels1, Gauge>,
    jobs_in_flight: Gauge,
    jobs_finished: Family<Labels1, Counter>,
    dispatch: Histogram,
    arm: Family<StatusLabels, Counter>,
    slack: Family<[(&'static str, String); 2], Counter>,
    storage: Family<StatusLabels, Counter>,
    retries: Family<Labels1, Counter>,
    poison_moves: Counter,
}

impl Metrics {
    fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("chatops"),
            commands: Family::default(),
            ack: Histogram::new(LATENCY_BUCKETS),
            queue_depth: Family::default(),
            jobs_in_flight: Gauge::default(),
            jobs_finished: Family::default(),
            dispatch: Histogram::new(LATENCY_BUCKETS),
            arm: Family::default(),
            slack: Family::default(),
            storage: Family::default(),
            retries: Family::default(),
            poison_moves: Counter::default(),
        };
        let r = &mut m.registry;
        r.register(
            "commands",
            "Slash commands by outcome and reason",
            m.commands.clone(),
        );
        r.register(
            "ack_seconds",
            "Time from a slash command's arrival to its answer",
            m.ack.clone(),
        );
        r.register(
            "queue_depth",
            "Approximate messages on the queue, sampled when scraped",
            m.queue_depth.clone(),
        );
        r.register(
            "jobs_in_flight",
            "Jobs this runner is running or reporting",
            m.jobs_in_flight.clone(),
        );
        r.register(
            "jobs_finished",
            "Jobs ended, by final state",
            m.jobs_finished.clone(),
        );
        r.register(
            "dispatch_seconds",
            "Time from a command's arrival to its job's start (first delivery)",
            m.dispatch.clone(),
        );
        r.register(
            "arm_requests",
            "Azure Resource Manager answers by HTTP status",
            m.arm.clone(),
        );
        r.register(
            "slack_requests",
            "Slack answers by API and HTTP status",
            m.slack.clone(),
        );
        r.register(
            "storage_requests",
            "Azure Storage (queue and blob) tries by outcome",
            m.storage.clone(),
        );
        r.register(
            "retries",
            "Calls tried again after a transient failure",
            m.retries.clone(),
        );
        r.register(
            "poison_moves",
            "Messages moved to the poison queue",
            m.poison_moves.clone(),
        );
        m
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
        .get_or_create(&[("outcome", outcome), ("reason", reason)])
        .inc();
}

/// A slash command's answer took `elapsed` from its arrival.
pub fn ack(elapsed: Duration) {
    METRICS.ack.observe(elapsed.as_secs_f64());
}

/// `queue` (`jobs` or `poison`) held about `messages` messages when last sampled.
pub fn queue_depth(queue: &'static str, messages: u64) {
    let value = i64::try_from(messages).unwrap_or(i64::MAX);
    METRICS
        .queue_depth
        .get_or_create(&[("queue", queue)])
        .set(value);
}

/// A job is running here until the returned guard is dropped.
#[must_use = "the job counts as in flight until this is dropped"]
pub fn job_in_flight() -> InFlight {
    METRICS.jobs_in_flight.inc();
    InFlight(())
}

/// Counts a job in flight while it lives (see [`job_in_flight`]).
pub struct InFlight(());

impl Drop for InFlight {
    fn drop(&mut self) {
        METRICS.jobs_in_flight.dec();
    }
}

/// A job ended in `state`.
pub fn job_finished(state: &'static str) {
    METRICS
        .jobs_finished
        .get_or_create(&[("state", state)])
        .inc();
}

/// A job started `latency` after its command arrived.
pub fn dispatch(latency: Duration) {
    METRICS.dispatch.observe(latency.as_secs_f64());
}

/// Azure Resource Manager answered with `status` (`None`: no answer, a network failure).
pub fn arm_answer(status: Option<u16>) {
    METRICS
        .arm
        .get_or_create(&[("status", label(status))])
        .inc();
}

/// Slack's `api` (`web` for the Web API, `post` for response_url and webhook posts) answered
/// with `status` (`None`: no answer).
pub fn slack_answer(api: &'static str, status: Option<u16>) {
    METRICS
        .slack
        .get_or_create(&[("api", api.to_owned()), ("status", label(status))])
        .inc();
}

/// One try at Azure Storage ended: `ok`, an HTTP status, `timeout` or `network`.
pub fn storage_try(outcome: &str) {
    METRICS
        .storage
        .get_or_create(&[("status", outcome.to_owned())])
        .inc();
}

/// A call to `target` (`storage`, `arm`, `slack`) is tried again.
pub fn retry(target: &'static str) {
    METRICS.retries.get_or_create(&[("target", target)]).inc();
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
