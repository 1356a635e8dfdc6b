//! Configuration plumbing shared by both services.
//!
//! Each service has one typed config, loaded once at start from an [`EnvSource`]: the process
//! environment in the binaries, a map in tests (tests never change the process environment).
//! Everything is validated before a listener is bound or a queue is polled.

use std::collections::HashMap;
use std::time::Duration;

/// Where configuration values come from.
pub trait EnvSource {
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl EnvSource for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

impl EnvSource for HashMap<&str, &str> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).map(|v| (*v).to_owned())
    }
}

/// A configuration value that is missing or wrong. The message names the variable and never
/// quotes a secret's value.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(var: &str, problem: impl Into<String>) -> Self {
        ConfigError {
            var: var.to_owned(),
            problem: problem.into(),
        }
    }
}

/// A variable's value, treating an empty or blank value as unset.
pub fn optional(env: &dyn EnvSource, var: &str) -> Option<String> {
    env.get(var)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A variable that must be set.
pub fn required(env: &dyn EnvSource, var: &str) -> Result<String, ConfigError> {
    optional(env, var).ok_or_else(|| ConfigError::new(var, "is required but not set"))
}

/// A whole number of at least 1, or `None` when unset.
pub fn at_least_one<T: std::str::FromStr + PartialOrd + From<u8>>(
    env: &dyn EnvSource,
    var: &str,
) -> Result<Option<T>, ConfigError> {
    let Some(value) = optional(env, var) else {
        return Ok(None);
    };
    match value.parse::<T>() {
        Ok(n) if n >= T::from(1) => Ok(Some(n)),
        _ => Err(ConfigError::new(
            var,
            format!("`{value}` is not a whole number of at least 1"),
        )),
    }
}

/// A humantime duration (`60s`, `5m`, `3h`), or `default` when unset.
pub fn duration(
    env: &dyn EnvSource,
    var: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match optional(env, var) {
        None => Ok(default),
        Some(v) => parse_duration(&v).map_err(|p| ConfigError::new(var, p)),
    }
}

/// Parses a humantime duration that must be above zero.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(value)
        .map_err(|e| format!("`{value}` is not a duration like 30s, 5m or 3h ({e})"))?;
    if d.is_zero() {
        return Err(format!("`{value}` must be longer than zero"));
    }
    Ok(d)
}

/// A socket address, or `default` when unset.
pub fn socket_addr(
    env: &dyn EnvSource,
    var: &str,
    default: &str,
) -> Result<std::net::SocketAddr, ConfigError> {
    let v = optional(env, var).unwrap_or_else(|| default.to_owned());
    v.parse()
        .map_err(|_| ConfigError::new(var, format!("`{v}` is not an address like 0.0.0.0:3000")))
}

/// An http(s) URL, or `None` when unset.
pub fn url(env: &dyn EnvSource, var: &str) -> Result<Option<url::Url>, ConfigError> {
    match optional(env, var) {
        None => Ok(None),
        Some(v) => {
            let u = url::Url::parse(&v)
                .map_err(|e| ConfigError::new(var, format!("not a URL ({e})")))?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err(ConfigError::new(var, "must be an http or https URL"));
            }
            Ok(Some(u))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_counts_as_unset() {
        let env = HashMap::from([("A", "  ")]);
        assert_eq!(optional(&env, "A"), None);
        assert!(required(&env, "A").is_err());
    }

    #[test]
    fn durations_parse_with_defaults_and_errors() {
        let env = HashMap::from([("D", "90s"), ("Z", "0s"), ("X", "soon")]);
        assert_eq!(
            duration(&env, "D", Duration::ZERO),
            Ok(Duration::from_secs(90))
        );
        assert_eq!(
            duration(&env, "U", Duration::from_secs(5)),
            Ok(Duration::from_secs(5))
        );
        assert!(duration(&env, "Z", Duration::ZERO).is_err());
        let e = duration(&env, "X", Duration::ZERO)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.starts_with("X: `soon` is not a duration"), "{e}");
    }
}
