//! [`Failure`]: what one failed try of a storage call (queue or blob) was, already redacted:
//! whether it is worth retrying (connection and I/O errors, timeouts, 408, 429, 5xx), its status
//! and error code. Each service turns it into its own error type.

use crate::secret::redact_url_secrets;
use azure_core::error::ErrorKind;
use std::time::Duration;

/// One failed try, already redacted.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: Option<u16>,
    /// The service's error code (`x-ms-error-code`), e.g. `AuthorizationPermissionMismatch`.
    pub(crate) code: Option<String>,
    pub(crate) transient: bool,
    pub(crate) message: String,
    /// Set when the failure was transient and the budget ran out.
    pub(crate) exhausted_after: Option<u32>,
}

/// 403 error codes that refuse every call, not one operation: a bad key or SAS, a network rule
/// (the account's firewall: `AuthorizationFailure`), a SAS for another service, address or
/// protocol, shared keys turned off. Any other 403 (`AuthorizationPermissionMismatch`: the
/// least-privilege roles may not create queues and containers, nor read queue metadata) refuses
/// that operation only.
const REFUSES_EVERY_CALL: &[&str] = &[
    "AuthenticationFailed",
    "AuthorizationFailure",
    "AuthorizationSourceIPMismatch",
    "AuthorizationProtocolMismatch",
    "AuthorizationServiceMismatch",
    "KeyBasedAuthenticationNotPermitted",
];

impl Failure {
    /// A 403 for this operation only (see [`REFUSES_EVERY_CALL`]): the start-up checks and
    /// readiness take it as "the deployment created it" / "the service answers".
    pub(crate) fn forbidden_for_this_operation_only(&self) -> bool {
        self.status == Some(403)
            && !self
                .code
                .as_deref()
                .is_some_and(|code| REFUSES_EVERY_CALL.contains(&code))
    }

    pub(crate) fn from_sdk(e: &azure_core::Error) -> Self {
        match e.kind() {
            ErrorKind::HttpResponse {
                status,
                error_code,
                raw_response,
            } => {
                let status = u16::from(*status);
                let mut message = format!("HTTP {status}");
                if let Some(code) = error_code {
                    message.push_str(&format!(" {code}"));
                }
                let detail = raw_response
                    .as_ref()
                    .and_then(|r| xml_message(&String::from_utf8_lossy(r.body())));
                if let Some(detail) = detail {
                    message.push_str(&format!(" ({detail})"));
                }
                Failure {
                    status: Some(status),
                    code: error_code.clone(),
                    transient: status == 408 || status == 429 || status >= 500,
                    message: redact_url_secrets(&message),
                    exhausted_after: None,
                }
            }
            kind => Failure {
                status: None,
                code: None,
                transient: matches!(kind, ErrorKind::Connection | ErrorKind::Io),
                message: redact_url_secrets(&error_chain(e)),
                exhausted_after: None,
            },
        }
    }

    /// The `status` label of this try in `chatops_storage_requests_total`.
    pub(crate) fn metric_label(&self) -> String {
        match self.status {
            Some(status) => status.to_string(),
            None if self.message.starts_with("no answer within") => "timeout".to_owned(),
            None => "network".to_owned(),
        }
    }

    pub(crate) fn timeout(after: Duration) -> Self {
        Failure {
            status: None,
            code: None,
            transient: true,
            message: format!("no answer within {after:?}"),
            exhausted_after: None,
        }
    }

    /// A failure before any request (e.g. signing a SAS): not retried.
    pub(crate) fn permanent(message: &str) -> Self {
        Failure {
            status: None,
            code: None,
            transient: false,
            message: redact_url_secrets(message),
            exhausted_after: None,
        }
    }
}

/// `e` and its sources, joined with `: ` (azure_core's `Display` omits the cause, which is
/// where the useful part, such as "Connection refused", is).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// The `<Message>` of a Storage XML error body, first line, at most 200 characters.
fn xml_message(body: &str) -> Option<String> {
    let start = body.find("<Message>")? + "<Message>".len();
    let end = start + body[start..].find("</Message>")?;
    let line = body[start..end].lines().next()?.trim();
    Some(line.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_403_for_one_operation_passes_for_a_deployment_without_that_right() {
        let failure = |status: u16, code: Option<&str>| Failure {
            status: Some(status),
            code: code.map(str::to_owned),
            transient: false,
            message: String::new(),
            exhausted_after: None,
        };
        assert!(
            failure(403, Some("AuthorizationPermissionMismatch"))
                .forbidden_for_this_operation_only()
        );
        assert!(failure(403, None).forbidden_for_this_operation_only());
        for code in [
            "AuthenticationFailed",
            "AuthorizationFailure",
            "AuthorizationServiceMismatch",
            "KeyBasedAuthenticationNotPermitted",
        ] {
            assert!(
                !failure(403, Some(code)).forbidden_for_this_operation_only(),
                "{code}"
            );
        }
        assert!(!failure(404, None).forbidden_for_this_operation_only());
    }

    #[test]
    fn xml_error_message_is_extracted() {
        let body = "<?xml version=\"1.0\"?><Error><Code>X</Code><Message>Not allowed.\nRequestId:1</Message></Error>";
        assert_eq!(xml_message(body).as_deref(), Some("Not allowed."));
        assert_eq!(xml_message("nothing"), None);
    }
}
