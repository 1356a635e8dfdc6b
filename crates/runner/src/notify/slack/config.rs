//! [`SlackNotifierConfig`]: where the runner posts, read from the environment once.

use chatops_shared::config::{self, ConfigError, EnvSource};
use chatops_shared::secret::Secret;

/// Where Slack's `response_url`s live.
pub const DEFAULT_RESPONSE_URL_PREFIX: &str = "https://hooks.slack.com/";

/// Slack settings of the runner.
///
/// - `SLACK_WEBHOOK_URL`: incoming webhook, used once the `response_url` cannot be (optional;
///   without it, and without a usable `response_url`, messages go to the log).
/// - `CHATOPS_SLACK_RESPONSE_URL_PREFIX`: only `response_url`s starting with this are used
///   (default `https://hooks.slack.com/`; tests point it at their Slack double).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackNotifierConfig {
    /// The incoming webhook; a credential.
    pub webhook_url: Option<Secret>,
    /// Only `response_url`s that start with this are contacted. Ends with `/`, so that a host
    /// such as `hooks.slack.com.example.org` does not match.
    pub response_url_prefix: String,
}

impl Default for SlackNotifierConfig {
    fn default() -> Self {
        SlackNotifierConfig {
            webhook_url: None,
            response_url_prefix: DEFAULT_RESPONSE_URL_PREFIX.to_owned(),
        }
    }
}

impl SlackNotifierConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let webhook_url =
            config::url(env, "SLACK_WEBHOOK_URL")?.map(|u| Secret::new(String::from(u)));
        let response_url_prefix = config::url(env, "CHATOPS_SLACK_RESPONSE_URL_PREFIX")?
            .map(|u| with_trailing_slash(u.as_str()))
            .unwrap_or_else(|| DEFAULT_RESPONSE_URL_PREFIX.to_owned());
        Ok(SlackNotifierConfig {
            webhook_url,
            response_url_prefix,
        })
    }
}

pub(super) fn with_trailing_slash(prefix: &str) -> String {
    if prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn config_from_env() {
        let env = HashMap::from([
            (
                "SLACK_WEBHOOK_URL",
                "https://hooks.slack.com/services/T0/B0/X",
            ),
            ("CHATOPS_SLACK_RESPONSE_URL_PREFIX", "http://127.0.0.1:4000"),
        ]);
        let c = SlackNotifierConfig::from_env(&env).unwrap();
        assert_eq!(
            c.webhook_url.map(|s| s.expose().to_owned()).as_deref(),
            Some("https://hooks.slack.com/services/T0/B0/X")
        );
        assert_eq!(c.response_url_prefix, "http://127.0.0.1:4000/");

        let c = SlackNotifierConfig::from_env(&HashMap::<&str, &str>::new()).unwrap();
        assert_eq!(c, SlackNotifierConfig::default());

        let bad = HashMap::from([("SLACK_WEBHOOK_URL", "hooks.slack.com/services/secret")]);
        let e = SlackNotifierConfig::from_env(&bad).unwrap_err().to_string();
        assert!(
            e.starts_with("SLACK_WEBHOOK_URL: ") && !e.contains("secret"),
            "{e}"
        );
    }
}
