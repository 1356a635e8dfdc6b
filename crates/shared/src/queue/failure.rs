//! [`Failure`]: what one failed try of a queue call was, already redacted: whether it is worth
//! retrying (connection and I/O errors, timeouts, 408, 429, 5xx), and which [`QueueError`] it
//! becomes when the caller gets it.

use super::QueueError;
use crate::secret::redact_url_secrets;
use azure_core::error::ErrorKind;
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub(super) enum Op {
    Create,
    Ping,
    Send,
    Receive,
    Extend,
    Delete,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Create => "create queue",
            Op::Ping => "get properties of queue",
            Op::Send => "put message on queue",
            Op::Receive => "get messages from queue",
            Op::Extend => "update message on queue",
            Op::Delete => "delete message from queue",
        })
    }
}

/// One failed try, already redacted.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) status: Option<u16>,
    /// The service's error code (`x-ms-error-code`), e.g. `AuthorizationPermissionMismatch`.
    pub(super) code: Option<String>,
    pub(super) transient: bool,
    pub(super) message: String,
    /// Set when the failure was transient and the budget ran out.
    pub(super) exhausted_after: Option<u32>,
}

impl Failure {
    pub(super) fn from_sdk(e: &azure_core::Error) -> Self {
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

    pub(super) fn timeout(after: Duration) -> Self {
        Failure {
            status: None,
            code: None,
            transient: true,
            message: format!("no answer within {after:?}"),
            exhausted_after: None,
        }
    }

    pub(super) fn permanent(e: QueueError) -> Self {
        let message = match e {
            QueueError::Other(m) | QueueError::Unavailable(m) | QueueError::Forbidden(m) => m,
            QueueError::MessageGone => e.to_string(),
        };
        Failure {
            status: None,
            code: None,
            transient: false,
            message: redact_url_secrets(&message),
            exhausted_after: None,
        }
    }

    pub(super) fn into_error(self, op: Op, queue: &str) -> QueueError {
        let text = redact_url_secrets(&format!("{op} `{queue}`: {}", self.message));
        if let Some(n) = self.exhausted_after {
            return QueueError::Unavailable(format!("{text} (gave up after {n} tries)"));
        }
        match self.status {
            // Azure answers 404 MessageNotFound; Azurite (and Azure, per its error code list)
            // 400 PopReceiptMismatch when the receipt was replaced by a later update.
            Some(404) if matches!(op, Op::Extend | Op::Delete) => QueueError::MessageGone,
            Some(400)
                if matches!(op, Op::Extend | Op::Delete)
                    && self.code.as_deref() == Some("PopReceiptMismatch") =>
            {
                QueueError::MessageGone
            }
            Some(401 | 403) => QueueError::Forbidden(text),
            Some(404) => QueueError::Other(format!(
                "{text}: the queue does not exist (create it in the deployment, or call ensure_exists)"
            )),
            _ => QueueError::Other(text),
        }
    }
}

/// `e` and its sources, joined with `: ` (azure_core's `Display` omits the cause, which is
/// where the useful part, such as "Connection refused", is).
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
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
    fn xml_error_message_is_extracted() {
        let body = "<?xml version=\"1.0\"?><Error><Code>X</Code><Message>Not allowed.\nRequestId:1</Message></Error>";
        assert_eq!(xml_message(body).as_deref(), Some("Not allowed."));
        assert_eq!(xml_message("nothing"), None);
    }
}
