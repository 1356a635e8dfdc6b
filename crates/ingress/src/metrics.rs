//! The ingress's metrics: what each slash command came to, how long its answer took, and the
//! separate listener that serves them (`CHATOPS_METRICS_ADDR`), so that `/metrics` is not
//! exposed with the Slack endpoint. The metrics themselves are in
//! [`chatops_shared::telemetry::metrics`].

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use chatops_shared::catalog::Rejection;
use chatops_shared::telemetry::metrics;
use std::future::Future;
use tokio::net::TcpListener;
use tokio::time::Instant;

/// Records the time to answer a slash command when dropped (the answer is on its way then).
pub struct AckTimer(Instant);

impl AckTimer {
    /// Counting from `arrived` (the request's [`crate::run::Arrived`]).
    pub fn since(arrived: Instant) -> Self {
        AckTimer(arrived)
    }
}

impl Drop for AckTimer {
    fn drop(&mut self) {
        metrics::ack(self.0.elapsed());
    }
}

/// The command was queued.
pub fn accepted() {
    metrics::command("accepted", "");
}

/// A replay of a command queued a few minutes ago: answered again, not queued.
pub fn replayed() {
    metrics::command("replayed", "");
}

/// The caller asked for help (or gave no runbook).
pub fn help() {
    metrics::command("help", "");
}

/// The request's Slack signature or timestamp did not verify.
pub fn unverified() {
    metrics::command("unverified", "");
}

/// Refused before the catalog: `reason` is `not_utf8`, `unparsable`, ….
pub fn rejected(reason: &'static str) {
    metrics::command("rejected", reason);
}

/// Refused by the workspace allow-list.
pub fn denied_workspace() {
    metrics::command("denied", "workspace");
}

/// Valid, but the queue could not take it.
pub fn queue_unavailable() {
    metrics::command("failed", "queue_unavailable");
}

/// Valid, but the queue did not confirm it before the acknowledgement deadline.
pub fn queue_deadline() {
    metrics::command("failed", "queue_deadline");
}

/// Any other `outcome` and `reason` (job control's, see `jobs::answer::JobRefusal::metric`).
pub fn command(outcome: &'static str, reason: &'static str) {
    metrics::command(outcome, reason);
}

/// Refused by the catalog: `denied` for who or where, `rejected` with the reason otherwise.
pub fn refused(rejection: &Rejection) {
    let (outcome, reason) = match rejection {
        Rejection::NotAllowed { .. } => ("denied", "not_allowed"),
        Rejection::WrongChannel { .. } => ("denied", "wrong_channel"),
        Rejection::ValueNotAllowed { .. } => ("denied", "value_not_allowed"),
        // Fail closed: refused because Slack could not say who is in the groups.
        Rejection::GroupsUnavailable { .. } | Rejection::ValueUnchecked { .. } => {
            ("denied", "groups_unavailable")
        }
        Rejection::Help | Rejection::HelpFor { .. } => ("help", ""),
        Rejection::NotYetAvailable { .. } => ("rejected", "not_yet_available"),
        Rejection::HiddenCharacterInName { .. } | Rejection::HiddenCharacter { .. } => {
            ("rejected", "hidden_character")
        }
        Rejection::UnknownRunbook { .. } => ("rejected", "unknown_runbook"),
        Rejection::TooManyValues { .. } => ("rejected", "too_many_values"),
        Rejection::UnknownParameter { .. } => ("rejected", "unknown_parameter"),
        Rejection::RepeatedParameter { .. } => ("rejected", "repeated_parameter"),
        Rejection::MissingParameter { .. } => ("rejected", "missing_parameter"),
        Rejection::EmptyValue { .. } => ("rejected", "empty_value"),
        Rejection::NotAChoice { .. } => ("rejected", "not_a_choice"),
        Rejection::InvalidValue { .. } => ("rejected", "invalid_value"),
        Rejection::FixedParameter { .. } => ("rejected", "fixed_parameter"),
        // A refusal added later counts as `other` until it is named here.
        #[allow(unreachable_patterns)]
        _ => ("rejected", "other"),
    };
    metrics::command(outcome, reason);
}

/// `GET /metrics` alone.
pub fn router() -> Router {
    Router::new().route(
        "/metrics",
        get(|| async { ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], metrics::render()) }),
    )
}

/// Serves [`router`] on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) {
    if let Err(e) = axum::serve(listener, router())
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "the metrics listener failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The count of `chatops_commands_total` for `outcome` and `reason` in the rendered text.
    fn count(outcome: &str, reason: &str) -> f64 {
        let labels = format!("outcome=\"{outcome}\",reason=\"{reason}\"");
        metrics::render()
            .lines()
            .find(|l| l.starts_with("chatops_commands_total{") && l.contains(&labels))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    #[test]
    fn denials_by_a_value_rule_or_unknown_groups_count_as_denied() {
        let cases = [
            (
                Rejection::ValueNotAllowed {
                    runbook: "deploy".into(),
                    name: "env".into(),
                    value: "prod".into(),
                    usage: String::new(),
                },
                "value_not_allowed",
            ),
            (
                Rejection::GroupsUnavailable {
                    runbook: "deploy".into(),
                    problem: "timeout".into(),
                },
                "groups_unavailable",
            ),
        ];
        for (rejection, reason) in cases {
            let before = count("denied", reason);
            refused(&rejection);
            assert_eq!(count("denied", reason), before + 1.0, "{reason}");
        }
        let before = count("failed", "queue_deadline");
        queue_deadline();
        assert_eq!(count("failed", "queue_deadline"), before + 1.0);
    }
}
