//! Forms for parameters: a modal built from the catalog, opened from a command and submitted
//! through `/slack/interactions`.
//!
//! - [`offer`]: on the command path, whether a command gets a form (`--form`, or required values
//!   missing, with a bot token) and opening it with `views.open` inside the deadline.
//! - [`view`]: the modal's blocks from a runbook's parameters, and what it keeps in
//!   `private_metadata` (the runbook, the channel, the command).
//! - [`submit`]: a submission checked and queued exactly like a typed command, its errors shown
//!   next to the fields.

pub mod offer;
pub mod submit;
pub mod view;

pub use offer::{offer, take_flag};
