//! `POST /slack/interactions`: verify (exactly as commands: same signature check, same replay
//! rules through the job id) → parse the `payload` → dispatch on its type. A form's submission
//! is checked and queued ([`crate::forms::submit`]); every other type is answered 200 with a
//! note that nothing was done (the approval buttons' `block_actions` will be dispatched here).
//! Answered within the one acknowledgement deadline, as commands are.

use crate::app::AppState;
use crate::forms::submit;
use crate::reply::RequestError;
use crate::run;
use crate::slack::interaction::{self, Interaction};
use crate::slack::signed;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

#[tracing::instrument(skip_all, fields(job_id, user_id, runbook, kind))]
pub async fn interaction(
    State(state): State<AppState>,
    arrived: Option<Extension<run::Arrived>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, RequestError> {
    let arrived = run::Arrived::or_now(arrived);
    let _ack = crate::metrics::AckTimer::since(arrived);
    let deadline = arrived + run::ACK_DEADLINE;
    let signed = signed::verify(&state.verifier, &headers, &body, deadline)
        .inspect_err(|_| crate::metrics::unverified())?;
    match interaction::parse(&body)? {
        Interaction::ViewSubmission(sub) => {
            let span = tracing::Span::current();
            span.record("kind", "view_submission");
            span.record("user_id", sub.user_id.as_str());
            Ok(submit::submit(&state, &signed, &sub).await.into_response())
        }
        Interaction::Other { kind } => {
            tracing::info!(%kind, "interaction type not handled: nothing done");
            let note = format!("This app does not handle `{kind}` interactions; nothing was done.");
            Ok((StatusCode::OK, note).into_response())
        }
    }
}
