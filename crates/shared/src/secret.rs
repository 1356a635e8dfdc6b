//! A string that never prints.
//!
//! Signing secrets, account keys, SAS tokens, bearer tokens, `response_url`s and webhook URLs are
//! all credentials. They live in [`Secret`], whose `Debug` and `Display` print a placeholder, so a
//! stray `{:?}` in a log line or an error cannot leak them. Only the client that needs the value
//! calls [`Secret::expose`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A credential held as a string. Prints as `[redacted]`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself. Call this only where the value is sent to the service that expects it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

/// Serialized as the plain string: the job message must carry `response_url` to the runner.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// Replaces the values of credential-bearing query parameters (`sig`, `code`, `token`, …) in a
/// text such as an SDK error that quotes a full request URL.
pub fn redact_url_secrets(text: &str) -> String {
    const KEYS: [&str; 5] = ["sig=", "code=", "token=", "access_token=", "client_secret="];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while !rest.is_empty() {
        for key in KEYS {
            if let Some(stripped) = rest.strip_prefix(key) {
                let at_boundary = out
                    .chars()
                    .last()
                    .is_none_or(|c| matches!(c, '?' | '&' | ' ' | '"' | '\''));
                if at_boundary {
                    out.push_str(key);
                    out.push_str("REDACTED");
                    let end = stripped
                        .find(['&', ' ', '"', '\'', '\n', ')', ','])
                        .unwrap_or(stripped.len());
                    rest = &stripped[end..];
                    continue 'scan;
                }
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn redacts_sas_signature_in_a_url() {
        let e = "request to http://127.0.0.1:1/devstoreaccount1/q/messages?sv=2022-11-02&sig=abc%2Fdef%3D&se=x failed";
        let r = redact_url_secrets(e);
        assert!(!r.contains("abc%2Fdef"), "{r}");
        assert!(r.contains("sig=REDACTED&se=x failed"), "{r}");
        assert!(r.contains("sv=2022-11-02"), "{r}");
    }

    #[test]
    fn leaves_words_that_merely_end_in_a_key_alone() {
        assert_eq!(redact_url_secrets("design=1"), "design=1");
    }
}
