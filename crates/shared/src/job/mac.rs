//! The job message's `mac`: proof that the ingress wrote the message.
//!
//! Anyone who can write to the queue (a SAS with add rights, the account key, either service's
//! identity) could otherwise queue a job for an allowed user and have the runner run it. The
//! ingress signs what it writes with HMAC-SHA256 under `CHATOPS_JOB_SIGNING_KEY`; the runner
//! runs nothing whose `mac` does not verify under its key (or `CHATOPS_JOB_SIGNING_KEY_PREVIOUS`,
//! during a rotation).
//!
//! The MAC covers the message's **canonical form**: the JSON object without `mac` and without
//! the fields a runner writes itself ([`RUNNER_WRITTEN`]), keys sorted at every level, no
//! whitespace, strings escaped as JSON requires and nothing more (what Python's
//! `json.dumps(m, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` writes). Every
//! other field is covered, including fields a later writer adds, without a new rule. The `mac`
//! field is the standard base64 of the 32-byte HMAC.

use crate::config::{ConfigError, EnvSource, optional};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac as _};
use serde_json::Value;
use sha2::Sha256;
use std::fmt;

/// Fields that runners write into a message already on the queue (Update Message), so they
/// cannot be covered by the ingress's MAC. Adding a forged `started_at` can only stop a job from
/// running (it is then reported as interrupted); removing it from a copy of a message is a
/// replay, which the MAC cannot stop (see docs/security.md).
pub const RUNNER_WRITTEN: &[&str] = &["started_at"];

/// The field that carries the MAC.
pub const MAC_FIELD: &str = "mac";

/// The shortest key accepted: 32 bytes, the HMAC-SHA256 block's half and the hash's size.
pub const MIN_KEY_BYTES: usize = 32;

/// The variable holding the key the ingress signs with and the runner verifies with.
pub const KEY_VAR: &str = "CHATOPS_JOB_SIGNING_KEY";
/// The variable holding the key a runner also accepts while the key is rotated.
pub const PREVIOUS_KEY_VAR: &str = "CHATOPS_JOB_SIGNING_KEY_PREVIOUS";

/// A job signing key. Never prints.
#[derive(Clone)]
pub struct JobKey {
    bytes: Vec<u8>,
    /// HMAC-SHA256 keyed with `bytes`, ready to clone for each message.
    mac: Hmac<Sha256>,
}

impl PartialEq for JobKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for JobKey {}

/// Why a key was refused. Never quotes the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("is not base64 (standard alphabet, with `=` padding)")]
    NotBase64,
    #[error("decodes to {0} bytes; at least {MIN_KEY_BYTES} random bytes are needed")]
    TooShort(usize),
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

impl JobKey {
    /// Reads a key written as standard base64 of at least [`MIN_KEY_BYTES`] bytes.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| KeyError::NotBase64)?;
        Self::from_bytes(bytes)
    }

    fn from_bytes(bytes: Vec<u8>) -> Result<Self, KeyError> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort(bytes.len()));
        }
        // HMAC takes keys of any length, so this does not fail; the error is kept all the same.
        let mac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(&bytes)
            .map_err(|_| KeyError::TooShort(bytes.len()))?;
        Ok(JobKey { bytes, mac })
    }

    /// A fresh key of 32 bytes from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = vec![0u8; MIN_KEY_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        Self::from_bytes(bytes)
    }

    /// The key as it is configured: standard base64. Only for `keygen` and tests.
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.bytes)
    }

    /// The key from `var`, which must be set.
    pub fn from_env(env: &dyn EnvSource, var: &str) -> Result<Self, ConfigError> {
        let text = optional(env, var).ok_or_else(|| {
            ConfigError::new(
                var,
                "is required but not set; make one with `chatops-runner keygen` and give the same value to the ingress and the runners",
            )
        })?;
        Self::from_base64(&text).map_err(|e| ConfigError::new(var, e.to_string()))
    }

    fn hmac(&self) -> Hmac<Sha256> {
        self.mac.clone()
    }
}

impl fmt::Debug for JobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JobKey([redacted])")
    }
}

/// The `keygen` subcommand of both binaries: prints a fresh key (standard base64) on stdout.
pub fn keygen() -> std::process::ExitCode {
    match JobKey::generate() {
        Ok(key) => {
            println!("{}", key.to_base64());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keygen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The keys a runner accepts: the current one and, during a rotation, the previous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobKeys {
    current: JobKey,
    previous: Option<JobKey>,
}

impl JobKeys {
    pub fn new(current: JobKey, previous: Option<JobKey>) -> Self {
        JobKeys { current, previous }
    }

    /// The key messages are signed with.
    pub fn current(&self) -> &JobKey {
        &self.current
    }

    /// `CHATOPS_JOB_SIGNING_KEY` (required) and `CHATOPS_JOB_SIGNING_KEY_PREVIOUS` (optional).
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let current = JobKey::from_env(env, KEY_VAR)?;
        let previous = match optional(env, PREVIOUS_KEY_VAR) {
            None => None,
            Some(_) => Some(JobKey::from_env(env, PREVIOUS_KEY_VAR)?),
        };
        Ok(JobKeys { current, previous })
    }
}

/// Why a message's MAC was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum MacError {
    #[error("message has no `mac`: it was not written by an ingress holding the signing key")]
    Missing,
    #[error(
        "message `mac` does not verify under the runner's signing keys: it was forged, altered, or signed with another key"
    )]
    Invalid,
}

/// Adds `mac` to a job message object (replacing any there).
pub fn sign(object: &mut serde_json::Map<String, Value>, key: &JobKey) {
    let mut mac = key.hmac();
    mac.update(&canonical(object));
    let tag = mac.finalize().into_bytes();
    object.insert(MAC_FIELD.to_owned(), Value::String(BASE64.encode(tag)));
}

/// Checks a job message object's `mac` against the current key, then the previous one. The
/// comparison takes the same time whatever the bytes.
pub fn verify(object: &serde_json::Map<String, Value>, keys: &JobKeys) -> Result<(), MacError> {
    let tag = object
        .get(MAC_FIELD)
        .and_then(Value::as_str)
        .ok_or(MacError::Missing)?;
    let tag = BASE64.decode(tag).map_err(|_| MacError::Invalid)?;
    let canonical = canonical(object);
    let verifies = |key: &JobKey| {
        let mut mac = key.hmac();
        mac.update(&canonical);
        mac.verify_slice(&tag).is_ok()
    };
    if verifies(&keys.current) || keys.previous.as_ref().is_some_and(verifies) {
        Ok(())
    } else {
        Err(MacError::Invalid)
    }
}

/// The bytes the MAC covers (see the module doc).
pub fn canonical(object: &serde_json::Map<String, Value>) -> Vec<u8> {
    let mut out = String::new();
    out.push('{');
    let mut first = true;
    for (k, v) in sorted(object) {
        if k == MAC_FIELD || RUNNER_WRITTEN.contains(&k.as_str()) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        write_string(&mut out, k);
        out.push(':');
        write_value(&mut out, v);
    }
    out.push('}');
    out.into_bytes()
}

/// Written by hand rather than by `serde_json::to_string`: that keeps insertion order when any
/// crate in the build turns on serde_json's `preserve_order` feature, and the MAC must not
/// depend on the build.
fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in sorted(map).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_value(out, v);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, v);
            }
            out.push(']');
        }
        Value::String(s) => write_string(out, s),
        // Null, booleans and numbers print the same in every JSON writer we care about.
        other => out.push_str(&other.to_string()),
    }
}

fn write_string(out: &mut String, s: &str) {
    // serde_json escapes `"`, `\` and control characters only, as Python's ensure_ascii=False.
    out.push_str(&Value::String(s.to_owned()).to_string());
}

fn sorted(map: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(byte: u8) -> JobKey {
        JobKey::from_bytes(vec![byte; 32]).unwrap()
    }

    fn object(v: Value) -> serde_json::Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn canonical_form_sorts_keys_and_skips_mac_and_runner_fields() {
        let o = object(json!({
            "z": 1, "a": {"y": [true, null, "é\n"], "b": "x"},
            "mac": "ignored", "started_at": "2026-01-01T00:00:00Z"
        }));
        assert_eq!(
            String::from_utf8(canonical(&o)).unwrap(),
            r#"{"a":{"b":"x","y":[true,null,"é\n"]},"z":1}"#
        );
    }

    #[test]
    fn matches_an_independent_computation() {
        // Python: m = {"b": "é", "a": 1, "schema": 1}
        //   base64.b64encode(hmac.new(b"\x07" * 32, json.dumps(m, sort_keys=True,
        //   separators=(",", ":"), ensure_ascii=False).encode(), hashlib.sha256).digest())
        let mut o = object(json!({"b": "é", "a": 1, "schema": 1}));
        sign(&mut o, &key(7));
        assert_eq!(
            o[MAC_FIELD],
            json!("wSyHuYT87BdrSKtaSVJp+vgAVB5xsS6uwa+bZ93AUiY=")
        );
    }

    #[test]
    fn signs_and_verifies_and_refuses_any_change() {
        let keys = JobKeys::new(key(1), None);
        let mut o = object(json!({"schema": 1, "runbook": "deploy", "params": {"env": "dev"}}));
        sign(&mut o, keys.current());
        assert_eq!(verify(&o, &keys), Ok(()));

        // A runner-written field may change without breaking the MAC.
        o.insert("started_at".into(), json!("2026-11-28T00:00:00Z"));
        assert_eq!(verify(&o, &keys), Ok(()));

        for (field, value) in [
            ("runbook", json!("wipe")),
            ("params", json!({"env": "prod"})),
            ("future", json!("added later")),
        ] {
            let mut changed = o.clone();
            changed.insert(field.into(), value);
            assert_eq!(verify(&changed, &keys), Err(MacError::Invalid), "{field}");
        }
        let mut unsigned = o.clone();
        unsigned.remove(MAC_FIELD);
        assert_eq!(verify(&unsigned, &keys), Err(MacError::Missing));
        let mut garbage = o.clone();
        garbage.insert(MAC_FIELD.into(), json!("%%%"));
        assert_eq!(verify(&garbage, &keys), Err(MacError::Invalid));
    }

    #[test]
    fn previous_key_is_accepted_and_other_keys_are_not() {
        let mut o = object(json!({"schema": 1}));
        sign(&mut o, &key(1));
        assert_eq!(verify(&o, &JobKeys::new(key(2), Some(key(1)))), Ok(()));
        assert_eq!(
            verify(&o, &JobKeys::new(key(2), Some(key(3)))),
            Err(MacError::Invalid)
        );
        assert_eq!(
            verify(&o, &JobKeys::new(key(2), None)),
            Err(MacError::Invalid)
        );
    }

    #[test]
    fn keys_are_base64_of_at_least_32_bytes_and_never_print() {
        let k = JobKey::generate().unwrap();
        assert_eq!(JobKey::from_base64(&k.to_base64()), Ok(k.clone()));
        assert_ne!(JobKey::generate().unwrap(), k, "two keys must differ");
        assert_eq!(
            JobKey::from_base64(&BASE64.encode([0u8; 31])),
            Err(KeyError::TooShort(31))
        );
        assert_eq!(JobKey::from_base64("not base64!"), Err(KeyError::NotBase64));
        assert!(!format!("{k:?}").contains(&k.to_base64()));
    }

    #[test]
    fn config_errors_name_the_variable_and_never_quote_the_key() {
        use std::collections::HashMap;
        let short = BASE64.encode([9u8; 16]);
        let env: HashMap<&str, &str> = HashMap::from([(KEY_VAR, short.as_str())]);
        let e = JobKeys::from_env(&env).unwrap_err();
        assert_eq!(e.var, KEY_VAR);
        assert!(!e.to_string().contains(&short), "{e}");

        let e = JobKeys::from_env(&HashMap::<&str, &str>::new()).unwrap_err();
        assert_eq!(e.var, KEY_VAR);
        assert!(e.problem.contains("keygen"), "{e}");

        let good = key(5).to_base64();
        let env: HashMap<&str, &str> =
            HashMap::from([(KEY_VAR, good.as_str()), (PREVIOUS_KEY_VAR, "nope")]);
        assert_eq!(JobKeys::from_env(&env).unwrap_err().var, PREVIOUS_KEY_VAR);
        let env: HashMap<&str, &str> =
            HashMap::from([(KEY_VAR, good.as_str()), (PREVIOUS_KEY_VAR, good.as_str())]);
        assert!(JobKeys::from_env(&env).is_ok());
    }
}
