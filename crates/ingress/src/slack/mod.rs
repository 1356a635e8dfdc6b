//! What the ingress knows about Slack's slash-command requests.
//!
//! - [`verify`]: the request signature and timestamp window, checked over the raw body first.
//! - [`form`]: the slash-command form, read only after the signature checked out.

pub mod form;
pub mod verify;
