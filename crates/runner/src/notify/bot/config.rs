//! [`BotSettings`]: how fast the bot path may call Slack, read from the environment once.

use chatops_shared::config::{self, ConfigError, EnvSource};
use std::time::Duration;

/// `chat.postMessage`: about one message per second per channel (Slack's limit).
pub const DEFAULT_POST_INTERVAL: Duration = Duration::from_secs(1);
/// `chat.update` is Tier 3 (about 50 a minute per workspace): one per 1.2 s.
pub const DEFAULT_UPDATE_INTERVAL: Duration = Duration::from_millis(1200);
/// How often a running job's new output is posted in its thread.
pub const DEFAULT_TAIL_INTERVAL: Duration = Duration::from_secs(5);
/// How long one Slack call (with its 429 waits and retries) may take.
pub const DEFAULT_CALL_PATIENCE: Duration = Duration::from_secs(60);

/// Pacing of the bot path.
///
/// - `CHATOPS_SLACK_POST_INTERVAL`: at least this long between two `chat.postMessage` calls in
///   one channel, across jobs (default `1s`).
/// - `CHATOPS_SLACK_UPDATE_INTERVAL`: at least this long between two `chat.update` calls in one
///   workspace, across jobs (default `1200ms`).
/// - `CHATOPS_SLACK_TAIL_INTERVAL`: at most one reply of a running job's new output in its
///   thread per this interval (default `5s`; `0s` or `off`: no live tail, the output comes at
///   the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotSettings {
    pub post_interval: Duration,
    pub update_interval: Duration,
    /// The live tail's interval; zero: no live tail.
    pub tail_interval: Duration,
    /// How long one call may wait for Slack (429s, outages) before it counts as failed.
    pub call_patience: Duration,
    /// The Automation account's ARM resource id (`/subscriptions/…/automationAccounts/…`), for
    /// the card's link to the job in the Azure portal; `None` without Automation.
    pub automation_account: Option<String>,
}

impl Default for BotSettings {
    fn default() -> Self {
        BotSettings {
            post_interval: DEFAULT_POST_INTERVAL,
            update_interval: DEFAULT_UPDATE_INTERVAL,
            tail_interval: DEFAULT_TAIL_INTERVAL,
            call_patience: DEFAULT_CALL_PATIENCE,
            automation_account: None,
        }
    }
}

impl BotSettings {
    /// Reads the variables above; `automation_account` is set by the caller (from the
    /// Automation variables).
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Ok(BotSettings {
            post_interval: config::duration(
                env,
                "CHATOPS_SLACK_POST_INTERVAL",
                DEFAULT_POST_INTERVAL,
            )?,
            update_interval: config::duration(
                env,
                "CHATOPS_SLACK_UPDATE_INTERVAL",
                DEFAULT_UPDATE_INTERVAL,
            )?,
            tail_interval: tail_interval(env)?,
            ..BotSettings::default()
        })
    }

    /// The live tail's interval, when there is one.
    pub fn live_tail(&self) -> Option<Duration> {
        (!self.tail_interval.is_zero()).then_some(self.tail_interval)
    }

    /// The Azure portal's page of an Automation job.
    pub fn portal_link(&self, job_name: &str) -> Option<String> {
        let account = self.automation_account.as_deref()?;
        let ok = |c: char| c.is_ascii_alphanumeric() || c == '-';
        if job_name.is_empty() || !job_name.chars().all(ok) {
            return None;
        }
        Some(format!(
            "https://portal.azure.com/#resource{account}/jobs/{job_name}/overview"
        ))
    }
}

/// `CHATOPS_SLACK_TAIL_INTERVAL`: a duration, or `0s` / `0` / `off` for no live tail.
fn tail_interval(env: &dyn EnvSource) -> Result<Duration, ConfigError> {
    const VAR: &str = "CHATOPS_SLACK_TAIL_INTERVAL";
    match config::optional(env, VAR).as_deref().map(str::trim) {
        Some("0" | "0s" | "off") => Ok(Duration::ZERO),
        _ => config::duration(env, VAR, DEFAULT_TAIL_INTERVAL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn settings_from_env() {
        let c = BotSettings::from_env(&HashMap::<&str, &str>::new()).unwrap();
        assert_eq!(c, BotSettings::default());
        let env = HashMap::from([
            ("CHATOPS_SLACK_POST_INTERVAL", "20ms"),
            ("CHATOPS_SLACK_UPDATE_INTERVAL", "5ms"),
            ("CHATOPS_SLACK_TAIL_INTERVAL", "0s"),
        ]);
        let c = BotSettings::from_env(&env).unwrap();
        assert_eq!(c.live_tail(), None);
        assert_eq!(
            BotSettings::default().live_tail(),
            Some(DEFAULT_TAIL_INTERVAL)
        );
        assert_eq!(c.post_interval, Duration::from_millis(20));
        assert_eq!(c.update_interval, Duration::from_millis(5));
        let bad = HashMap::from([("CHATOPS_SLACK_POST_INTERVAL", "fast")]);
        assert!(BotSettings::from_env(&bad).is_err());
    }

    #[test]
    fn portal_link_only_for_plain_job_names() {
        let mut c = BotSettings::default();
        assert_eq!(c.portal_link("abc"), None);
        c.automation_account = Some("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Automation/automationAccounts/a".into());
        assert_eq!(
            c.portal_link("0b1c-2d").as_deref(),
            Some(
                "https://portal.azure.com/#resource/subscriptions/s/resourceGroups/rg/providers/Microsoft.Automation/automationAccounts/a/jobs/0b1c-2d/overview"
            )
        );
        assert_eq!(c.portal_link("a|b"), None);
    }
}
