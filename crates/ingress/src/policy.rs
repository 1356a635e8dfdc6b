//! Authorization on the ingress's side: the caller's user-group answers for a command, looked
//! up within the acknowledgement's deadline, and the one log line and audit event of every
//! denial.

use crate::run::Request;
use chatops_shared::audit::AuditEvent;
use chatops_shared::catalog::Groups;
use std::collections::BTreeSet;
use std::time::Duration;

/// The longest a user-group lookup may take on the answer's path (less when the request's
/// deadline comes first): what is left pays for the enqueue.
pub const LOOKUP_CAP: Duration = Duration::from_secs(1);

/// What Slack says of the caller's membership of `needed` (nothing asked when empty); groups
/// that could not be checked are answered "unknown", which refuses.
pub async fn groups(req: &Request<'_>, needed: &BTreeSet<String>) -> Groups {
    if needed.is_empty() {
        return Groups::default();
    }
    let deadline = req.deadline.min(tokio::time::Instant::now() + LOOKUP_CAP);
    req.state
        .membership
        .resolve(&req.cmd.user_id, needed, deadline)
        .await
}

/// Logs (`decision="deny"`) and audits a refusal by access rule `rule` for `runbook`.
pub fn denied(req: &Request<'_>, runbook: &str, rule: &str) {
    log_denied(req, runbook, rule);
    let cmd = req.cmd;
    req.state.audit.record(AuditEvent::Denied {
        user_id: cmd.user_id.clone(),
        channel_id: cmd.channel_id.clone(),
        runbook: runbook.to_owned(),
        rule: rule.to_owned(),
    });
}

/// The `decision="deny"` log line of a refusal by access rule `rule` for `runbook`.
pub fn log_denied(req: &Request<'_>, runbook: &str, rule: &str) {
    let cmd = req.cmd;
    tracing::info!(
        decision = "deny",
        user = %cmd.user_id,
        channel = %cmd.channel_id,
        runbook,
        rule,
        "command denied"
    );
}
