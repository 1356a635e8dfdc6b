//! The job message: the only thing the ingress and the runner share at run time.
//!
//! On the queue a message is the base64 of UTF-8 JSON, the form Azure Functions' queue trigger
//! and the Python/.NET SDKs' default base64 policies read. The fields and their meaning are
//! documented in `docs/job-message.md` with a JSON Schema (`docs/job-message.schema.json`).
//! Readers ignore fields they do not know, so a writer may add optional fields within a schema
//! version; anything else needs a new `schema` number.
//!
//! Every message carries a `mac` ([`mac`]): [`JobMessage::encode`] signs and
//! [`JobMessage::decode`] verifies, so no message is written unsigned or read unverified.

pub mod mac;

use crate::secret::Secret;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
pub use mac::{JobKey, JobKeys, MacError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Namespace for deriving `job_id` from a Slack request (UUIDv5). Fixed forever: changing it
/// would give a replayed request a different job id.
const JOB_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6c3f_1a52_8d0e_4b7a_9f41_2e5d_c0b8_a917);

/// What the runner is asked to do. Later schema-1 writers may add kinds (approvals, stop, …);
/// a runner that meets a kind it does not know sends the message to the poison queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Run a runbook from the catalog.
    #[default]
    Run,
    /// Stop the job named by `target` (`/runbook stop`). Has its own `job_id`; `runbook` and
    /// `params` are the target's, for the messages shown about it.
    Stop,
}

/// One job, as put on the queue by the ingress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobMessage {
    /// Schema version of this message; [`SCHEMA_VERSION`].
    pub schema: u32,
    /// Deterministic id of the job (UUIDv5 of the Slack request signature): a replayed or
    /// redelivered request names the same job, and Azure Automation's job name is this id.
    pub job_id: Uuid,
    /// What to do; `run` when absent.
    #[serde(default)]
    pub kind: JobKind,
    /// Catalog key of the runbook.
    pub runbook: String,
    /// Parameters by name, as validated by the ingress (defaults not yet filled in).
    pub params: BTreeMap<String, String>,
    /// Slack user ID of the requester.
    pub user_id: String,
    /// Slack user name of the requester (display only; Slack deprecated it).
    pub user_name: String,
    /// Slack workspace ID.
    pub team_id: String,
    /// Slack channel ID the command came from.
    pub channel_id: String,
    /// Slack channel name, when Slack sent one (used to say where a webhook message came from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_name: Option<String>,
    /// The command's `response_url`: a credential, never logged. Absent for a job submitted
    /// from a modal (Slack sends no `response_url` with a `view_submission`): such a job is
    /// only ever reported through the bot token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_url: Option<Secret>,
    /// When the ingress accepted the command.
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// Enterprise Grid organization ID, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enterprise_id: Option<String>,
    /// W3C trace context of the ingress request, for distributed tracing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Written by the runner (Update Message) just before it starts a job that must never be
    /// started twice, a local script: a later delivery of this message knows the job was
    /// started, and reports it as interrupted instead of running it again.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub started_at: Option<OffsetDateTime>,
    /// The UTC day (`yyyy-mm-dd`) under which the job's record is filed. The ingress takes it
    /// from Slack's request timestamp, which every copy of one request carries, so that copies
    /// queued by different ingress replicas name one record; for a form, from the request that
    /// opened it, so that a form sent again after midnight names the same record. Absent in
    /// messages from older ingresses: the day of `requested_at`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "day_format::option"
    )]
    pub record_day: Option<Date>,
    /// `kind: stop`: the job to stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Uuid>,
    /// The job this one runs again (`/runbook rerun`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<Uuid>,
    /// A hash of the catalog the ingress checked the command against ([`Catalog::version`]), so
    /// that a runner refusing the job can say whether the catalog changed since.
    ///
    /// [`Catalog::version`]: crate::catalog::Catalog::version
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_version: Option<String>,
    /// The names of the runbook's secret parameters (`secret = true` in the catalog the ingress
    /// used): their values are shown as [`MASK`] ([`JobMessage::shown_params`]) in every
    /// message, record and log line. Absent when there are none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_params: Vec<String>,
}

/// What a secret parameter's value is shown as.
pub const MASK: &str = "•••";

// `yyyy-mm-dd`, as `record_day` is written (also for the ingress's form metadata).
time::serde::format_description!(pub day_format, Date, "[year]-[month]-[day]");

/// Why a queue message could not be read as a job.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("message is not valid base64: {0}")]
    Base64(String),
    #[error("message is not UTF-8 JSON: {0}")]
    Json(String),
    #[error("message has no numeric `schema` field")]
    MissingSchema,
    #[error("message schema {found} is not supported (this runner reads schema {SCHEMA_VERSION})")]
    UnsupportedSchema { found: u64 },
    #[error("{0}")]
    Mac(#[from] MacError),
}

/// Derives the job id from the Slack request signature (the `v0=…` header value). Hex is
/// read case-insensitively by the verifier, so the id is taken from the lower-cased form: a
/// replay with the signature's case changed names the same job.
pub fn job_id_from_signature(signature: &str) -> Uuid {
    Uuid::new_v5(
        &JOB_ID_NAMESPACE,
        signature.trim().to_ascii_lowercase().as_bytes(),
    )
}

impl JobMessage {
    /// The queue form: base64 of the JSON, signed with `key` (the `mac` field).
    pub fn encode(&self, key: &JobKey) -> String {
        // Serializing plain strings, maps and a timestamp cannot fail, and gives an object.
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            mac::sign(object, key);
        }
        BASE64.encode(value.to_string())
    }

    /// Reads a queue message and checks its `mac` against `keys`. The schema is checked first,
    /// so that a message from a newer writer is named as such; the fields are read only once
    /// the MAC verified.
    pub fn decode(text: &str, keys: &JobKeys) -> Result<Self, DecodeError> {
        let value = decode_object(text)?;
        let schema = value
            .get("schema")
            .and_then(serde_json::Value::as_u64)
            .ok_or(DecodeError::MissingSchema)?;
        if schema != u64::from(SCHEMA_VERSION) {
            return Err(DecodeError::UnsupportedSchema { found: schema });
        }
        mac::verify(&value, keys)?;
        serde_json::from_value(serde_json::Value::Object(value))
            .map_err(|e| DecodeError::Json(e.to_string()))
    }

    /// The UTC day of the job's record ([`JobMessage::record_day`]).
    pub fn record_day(&self) -> Date {
        self.record_day
            .unwrap_or_else(|| self.requested_at.to_offset(time::UtcOffset::UTC).date())
    }

    /// The parameters as they may be shown or stored: secret values as [`MASK`].
    pub fn shown_params(&self) -> BTreeMap<String, String> {
        mask_params(&self.params, &self.secret_params)
    }

    /// Whether a secret parameter was given a value. Slack shows a slash command as typed to
    /// everyone who sees an in-channel answer to it, so such a job is answered through the
    /// command (acknowledgement, `response_url`) to its requester only.
    pub fn has_secret_values(&self) -> bool {
        self.secret_params
            .iter()
            .any(|n| self.params.contains_key(n))
    }

    /// Short form of the job id for people: the first 8 hex digits.
    pub fn short_id(&self) -> String {
        short_id(&self.job_id)
    }
}

/// The JSON object inside a queue message's base64.
fn decode_object(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, DecodeError> {
    let bytes = BASE64
        .decode(text.trim())
        .map_err(|e| DecodeError::Base64(e.to_string()))?;
    match serde_json::from_slice(&bytes).map_err(|e| DecodeError::Json(e.to_string()))? {
        serde_json::Value::Object(object) => Ok(object),
        _ => Err(DecodeError::Json("not a JSON object".into())),
    }
}

/// Parameters as a user would type them: `env=prod msg="two words"`, sorted by name. The
/// command parser reads the result back as the same parameters.
pub fn format_params(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={}", crate::command::quote(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `params` with the values of the parameters named in `secret` as [`MASK`].
pub fn mask_params(
    params: &BTreeMap<String, String>,
    secret: &[String],
) -> BTreeMap<String, String> {
    params
        .iter()
        .map(|(name, value)| {
            let value = if secret.contains(name) {
                MASK.to_owned()
            } else {
                value.clone()
            };
            (name.clone(), value)
        })
        .collect()
}

/// The first 8 hex digits of a job id.
pub fn short_id(id: &Uuid) -> String {
    id.simple().to_string().chars().take(8).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample() -> JobMessage {
        JobMessage {
            schema: SCHEMA_VERSION,
            job_id: job_id_from_signature("v0=abc"),
            kind: JobKind::Run,
            runbook: "restart-web".into(),
            params: BTreeMap::from([("env".into(), "prod".into())]),
            user_id: "U1".into(),
            user_name: "ana".into(),
            team_id: "T1".into(),
            channel_id: "C1".into(),
            channel_name: Some("ops".into()),
            response_url: Some(Secret::new("https://hooks.slack.com/commands/T1/1/x")),
            requested_at: OffsetDateTime::from_unix_timestamp(1_700_000_000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            enterprise_id: None,
            traceparent: None,
            started_at: None,
            record_day: None,
            target: None,
            rerun_of: None,
            catalog_version: None,
            secret_params: Vec::new(),
        }
    }

    #[test]
    fn shown_params_mask_the_secret_values_only() {
        let m = JobMessage {
            params: BTreeMap::from([
                ("env".into(), "prod".into()),
                ("token".into(), "hunter2".into()),
            ]),
            secret_params: vec!["token".into(), "unused".into()],
            ..sample()
        };
        assert_eq!(
            m.shown_params(),
            BTreeMap::from([("env".into(), "prod".into()), ("token".into(), MASK.into())])
        );
        assert_eq!(sample().shown_params(), sample().params);
        assert!(m.has_secret_values());
        let unused = JobMessage {
            secret_params: vec!["unused".into()],
            ..m.clone()
        };
        assert!(!unused.has_secret_values() && !sample().has_secret_values());
    }

    #[test]
    fn secret_param_names_are_covered_by_the_mac() {
        let m = JobMessage {
            secret_params: vec!["token".into()],
            ..sample()
        };
        let text = m.encode(keys().current());
        assert_eq!(JobMessage::decode(&text, &keys()), Ok(m));
        // Removing the names (to have the value shown) breaks the MAC.
        let mut value = decode_object(&text).unwrap();
        value.remove("secret_params");
        let forged = BASE64.encode(serde_json::Value::Object(value).to_string());
        assert!(matches!(
            JobMessage::decode(&forged, &keys()),
            Err(DecodeError::Mac(_))
        ));
        // Absent when there are none.
        assert!(
            !serde_json::to_string(&sample())
                .unwrap()
                .contains("secret_params")
        );
    }

    pub fn keys() -> JobKeys {
        JobKeys::new(
            JobKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap(),
            None,
        )
    }

    /// Base64 of a JSON value, signed with the test key.
    fn signed(mut v: serde_json::Value) -> String {
        if let Some(o) = v.as_object_mut() {
            mac::sign(o, keys().current());
        }
        BASE64.encode(v.to_string())
    }

    #[test]
    fn round_trips_through_base64_json() {
        let m = sample();
        assert_eq!(
            JobMessage::decode(&m.encode(keys().current()), &keys()),
            Ok(m)
        );
    }

    #[test]
    fn the_documented_example_verifies_under_its_documented_key() {
        let doc = include_str!("../../../../docs/job-message.md");
        let example = doc
            .split("```json\n")
            .nth(1)
            .and_then(|rest| rest.split("\n```").next())
            .unwrap();
        let key = JobKey::from_base64("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=").unwrap();
        let job = JobMessage::decode(&BASE64.encode(example), &JobKeys::new(key, None));
        assert_eq!(job.map(|j| j.runbook), Ok("deploy".to_owned()));
    }

    #[test]
    fn unsigned_forged_or_altered_messages_are_refused() {
        let v = serde_json::to_value(sample()).unwrap();
        let unsigned = BASE64.encode(v.to_string());
        assert_eq!(
            JobMessage::decode(&unsigned, &keys()),
            Err(DecodeError::Mac(MacError::Missing))
        );
        let other = JobKey::generate().unwrap();
        assert_eq!(
            JobMessage::decode(&sample().encode(&other), &keys()),
            Err(DecodeError::Mac(MacError::Invalid))
        );
        let mut altered: serde_json::Value =
            serde_json::from_slice(&BASE64.decode(sample().encode(keys().current())).unwrap())
                .unwrap();
        altered["user_id"] = serde_json::json!("UADMIN");
        assert_eq!(
            JobMessage::decode(&BASE64.encode(altered.to_string()), &keys()),
            Err(DecodeError::Mac(MacError::Invalid))
        );
    }

    #[test]
    fn job_id_is_deterministic_per_signature() {
        assert_eq!(job_id_from_signature("v0=1"), job_id_from_signature("v0=1"));
        assert_eq!(
            job_id_from_signature("v0=ab12"),
            job_id_from_signature("V0=AB12")
        );
        assert_ne!(job_id_from_signature("v0=1"), job_id_from_signature("v0=2"));
        assert_eq!(job_id_from_signature("v0=1").get_version_num(), 5);
    }

    #[test]
    fn ignores_unknown_fields_and_defaults_kind() {
        let mut v = serde_json::to_value(sample()).unwrap_or_default();
        v["future_field"] = serde_json::json!({"x": 1});
        if let Some(o) = v.as_object_mut() {
            o.remove("kind");
        }
        let m = JobMessage::decode(&signed(v), &keys());
        assert_eq!(m.map(|m| m.kind), Ok(JobKind::Run));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        let k = keys();
        assert!(matches!(
            JobMessage::decode("%%%", &k),
            Err(DecodeError::Base64(_))
        ));
        assert!(matches!(
            JobMessage::decode(&BASE64.encode("not json"), &k),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            JobMessage::decode(&BASE64.encode("[1]"), &k),
            Err(DecodeError::Json(_))
        ));
        assert_eq!(
            JobMessage::decode(&BASE64.encode("{}"), &k),
            Err(DecodeError::MissingSchema)
        );
        assert_eq!(
            JobMessage::decode(&BASE64.encode(r#"{"schema":2}"#), &k),
            Err(DecodeError::UnsupportedSchema { found: 2 })
        );
        let mut v = serde_json::to_value(sample()).unwrap_or_default();
        v["kind"] = serde_json::json!("approve");
        assert!(matches!(
            JobMessage::decode(&signed(v), &k),
            Err(DecodeError::Json(_))
        ));
    }

    #[test]
    fn params_are_shown_in_a_form_the_parser_reads_back() {
        let p = BTreeMap::from([
            ("a".to_owned(), "it's".to_owned()),
            ("b".to_owned(), "‘smart’ “quotes”".to_owned()),
            ("c".to_owned(), "x=y".to_owned()),
            ("d".to_owned(), r"back\slash".to_owned()),
            ("e".to_owned(), String::new()),
        ]);
        let parsed = crate::command::parse(&format!("rb {}", format_params(&p))).unwrap();
        let back: BTreeMap<String, String> = parsed
            .args
            .into_iter()
            .map(|a| match a {
                crate::command::Arg::Named { name, value } => (name, value),
                crate::command::Arg::Positional(v) => panic!("positional {v}"),
            })
            .collect();
        assert_eq!(back, p);
    }

    #[test]
    fn params_read_back_as_typed() {
        let p = BTreeMap::from([
            ("a".to_owned(), "x".to_owned()),
            ("b".to_owned(), "two words".to_owned()),
            ("c".to_owned(), String::new()),
            ("d".to_owned(), r#"say "hi""#.to_owned()),
        ]);
        assert_eq!(
            format_params(&p),
            r#"a=x b="two words" c="" d="say \"hi\"""#
        );
    }

    /// What runners before job records did just before a local script started: `started_at`
    /// written into the message, every other field kept. Such messages may still be on a queue
    /// during an upgrade, and must verify (`started_at` is outside the MAC).
    fn mark_started(text: &str, at: OffsetDateTime) -> Result<String, DecodeError> {
        let mut object = decode_object(text)?;
        let stamp = at
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| DecodeError::Json(e.to_string()))?;
        object.insert("started_at".into(), serde_json::Value::String(stamp));
        Ok(BASE64.encode(serde_json::Value::Object(object).to_string()))
    }

    #[test]
    fn an_older_runners_start_mark_keeps_fields_and_the_mac() {
        let mut v = serde_json::to_value(sample()).unwrap_or_default();
        v["from_a_newer_writer"] = serde_json::json!([1, 2]);
        let text = signed(v);
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_100)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let marked = mark_started(&text, at).unwrap_or_default();
        let back: serde_json::Value =
            serde_json::from_slice(&BASE64.decode(&marked).unwrap_or_default()).unwrap_or_default();
        assert_eq!(back["from_a_newer_writer"], serde_json::json!([1, 2]));
        // The mark is outside the MAC: the marked message still verifies.
        assert_eq!(
            JobMessage::decode(&marked, &keys()).map(|j| j.started_at),
            Ok(Some(at))
        );
        assert!(mark_started("%%%", at).is_err());
    }

    #[test]
    fn response_url_does_not_print() {
        assert!(!format!("{:?}", sample()).contains("hooks.slack.com"));
    }
}
