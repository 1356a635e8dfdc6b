//! What the queue and the blob clients share about reaching Azure Storage: how one failed try
//! is classified ([`failure`]), how requests are authorized and when our own SAS is renewed
//! ([`auth`]), and the bounded retry loop ([`retry::run`]).

pub(crate) mod auth;
pub(crate) mod failure;
pub(crate) mod retry;

/// Azure's rules for queue and container names (lowercase letters, digits and single hyphens;
/// no hyphen first or last), up to `max` characters (63 at most); `why_max` explains a lower
/// bound than Azure's own.
pub(crate) fn validate_name(name: &str, max: usize, why_max: &str) -> Result<(), String> {
    if name.len() < 3 || name.len() > max {
        return Err(format!(
            "`{name}` must be 3 to {max} characters long{why_max}"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!(
            "`{name}` may contain only lowercase letters, digits and hyphens"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err(format!(
            "`{name}` must not start or end with a hyphen nor contain two in a row"
        ));
    }
    Ok(())
}
