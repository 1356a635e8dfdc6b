//! One handler per route, thin: the work is in `slack`, `forms`, the catalog and the queue.

pub mod commands;
pub mod health;
pub mod interactions;
