//! What the ingress knows about Slack's requests.
//!
//! - [`verify`]: the request signature and timestamp window, checked over the raw body first.
//! - [`signed`]: a verified request and what every route takes from it (commands and
//!   interactions are verified alike).
//! - [`form`]: the slash-command form, read only after the signature checked out.
//! - [`interaction`]: the `payload` of an interaction (a modal's submission, …), likewise.

pub mod form;
pub mod interaction;
pub mod signed;
pub mod verify;
