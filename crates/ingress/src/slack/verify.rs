//! Verifying that a request came from Slack (signing secret, `v0` scheme).
//!
//! Base string `v0:{timestamp}:{raw body}`, HMAC-SHA256 keyed with the signing secret, hex,
//! prefixed `v0=`. The comparison is constant time (`Mac::verify_slice`). Requests whose
//! timestamp is more than five minutes from our clock are refused (replay protection). During a
//! secret rotation the previous secret is accepted too.

use chatops_shared::secret::Secret;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a request's timestamp may be from our clock, in seconds.
pub const WINDOW_SECS: i64 = 5 * 60;

/// Why a request was refused. The `Display` text is what the caller gets with the 401.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("missing X-Slack-Request-Timestamp header")]
    MissingTimestamp,
    #[error("missing X-Slack-Signature header")]
    MissingSignature,
    #[error("X-Slack-Request-Timestamp is not a unix time")]
    BadTimestamp,
    #[error("request timestamp is outside the 5-minute window")]
    Expired,
    #[error("signature does not match")]
    Mismatch,
}

/// Checks signatures against the current and (during rotation) previous signing secrets.
#[derive(Clone)]
pub struct Verifier {
    secrets: Vec<Secret>,
}

impl Verifier {
    /// `secrets`: the current signing secret first, then any still accepted.
    pub fn new(secrets: Vec<Secret>) -> Self {
        Verifier { secrets }
    }

    /// Verifies one request. `now` is the server's unix time in seconds.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        let timestamp = timestamp.ok_or(VerifyError::MissingTimestamp)?.trim();
        let signature = signature.ok_or(VerifyError::MissingSignature)?.trim();
        let ts: i64 = timestamp.parse().map_err(|_| VerifyError::BadTimestamp)?;
        if now.abs_diff(ts) > WINDOW_SECS.unsigned_abs() {
            return Err(VerifyError::Expired);
        }
        let given = signature
            .strip_prefix("v0=")
            .and_then(|h| hex::decode(h).ok())
            .ok_or(VerifyError::Mismatch)?;
        let matches = self.secrets.iter().any(|secret| {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else {
                return false;
            };
            mac.update(b"v0:");
            mac.update(timestamp.as_bytes());
            mac.update(b":");
            mac.update(body);
            mac.verify_slice(&given).is_ok()
        });
        if matches {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}

/// Computes the `v0=` signature of a body: what Slack sends. Used by tests and the demo client.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this branch cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Published by Slack ("Verifying requests from Slack"), also in python-slack-sdk's tests.
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TS: i64 = 1_531_420_618;
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const EXPECTED: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn verifier(secrets: &[&str]) -> Verifier {
        Verifier::new(secrets.iter().map(|s| Secret::new(*s)).collect())
    }

    #[test]
    fn slack_published_test_vector() {
        assert_eq!(sign(SECRET, TS, BODY.as_bytes()), EXPECTED);
        let v = verifier(&[SECRET]);
        assert_eq!(
            v.verify(Some("1531420618"), Some(EXPECTED), BODY.as_bytes(), TS),
            Ok(())
        );
    }

    #[test]
    fn previous_secret_is_accepted_during_rotation() {
        let v = verifier(&["new-secret", SECRET]);
        assert_eq!(
            v.verify(Some("1531420618"), Some(EXPECTED), BODY.as_bytes(), TS + 10),
            Ok(())
        );
    }

    #[test]
    fn forged_body_or_signature_is_refused() {
        let v = verifier(&[SECRET]);
        let tampered = BODY.replace("roadrunner", "coyote");
        assert_eq!(
            v.verify(Some("1531420618"), Some(EXPECTED), tampered.as_bytes(), TS),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            v.verify(Some("1531420618"), Some("v0=zz"), BODY.as_bytes(), TS),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            v.verify(
                Some("1531420618"),
                Some(&EXPECTED[3..]),
                BODY.as_bytes(),
                TS
            ),
            Err(VerifyError::Mismatch)
        );
        let other = verifier(&["someone-else"]);
        assert_eq!(
            other.verify(Some("1531420618"), Some(EXPECTED), BODY.as_bytes(), TS),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn timestamp_window_is_five_minutes_both_ways() {
        let v = verifier(&[SECRET]);
        let ok = |now| v.verify(Some("1531420618"), Some(EXPECTED), BODY.as_bytes(), now);
        assert_eq!(ok(TS + 300), Ok(()));
        assert_eq!(ok(TS - 300), Ok(()));
        assert_eq!(ok(TS + 301), Err(VerifyError::Expired));
        assert_eq!(ok(TS - 301), Err(VerifyError::Expired));
    }

    #[test]
    fn missing_or_malformed_headers() {
        let v = verifier(&[SECRET]);
        assert_eq!(
            v.verify(None, Some(EXPECTED), b"", TS),
            Err(VerifyError::MissingTimestamp)
        );
        assert_eq!(
            v.verify(Some("1531420618"), None, b"", TS),
            Err(VerifyError::MissingSignature)
        );
        assert_eq!(
            v.verify(Some("yesterday"), Some(EXPECTED), b"", TS),
            Err(VerifyError::BadTimestamp)
        );
        // Extreme values are outside the window, not an overflow.
        for ts in [i64::MIN, i64::MAX] {
            assert_eq!(
                v.verify(Some(&ts.to_string()), Some(EXPECTED), b"", TS),
                Err(VerifyError::Expired)
            );
        }
    }
}
