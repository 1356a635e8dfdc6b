//! Which [`QueueError`] a failed queue call becomes ([`into_error`]), and the operation it was
//! ([`Op`]). Whether a try is worth retrying is shared with blobs: [`Failure`].

use super::QueueError;
use crate::secret::redact_url_secrets;
pub(super) use crate::storage::failure::{Failure, error_chain};
use std::fmt;

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

/// A queue error met before any request: not retried.
pub(super) fn permanent(e: QueueError) -> Failure {
    let message = match e {
        QueueError::Other(m) | QueueError::Unavailable(m) | QueueError::Forbidden(m) => m,
        QueueError::MessageGone => e.to_string(),
    };
    Failure::permanent(&message)
}

/// The error the caller of `op` on `queue` gets for its last failed try.
pub(super) fn into_error(failure: Failure, op: Op, queue: &str) -> QueueError {
    let text = redact_url_secrets(&format!("{op} `{queue}`: {}", failure.message));
    if let Some(n) = failure.exhausted_after {
        return QueueError::Unavailable(format!("{text} (gave up after {n} tries)"));
    }
    match failure.status {
        // Azure answers 404 MessageNotFound; Azurite (and Azure, per its error code list)
        // 400 PopReceiptMismatch when the receipt was replaced by a later update.
        Some(404) if matches!(op, Op::Extend | Op::Delete) => QueueError::MessageGone,
        Some(400)
            if matches!(op, Op::Extend | Op::Delete)
                && failure.code.as_deref() == Some("PopReceiptMismatch") =>
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
