//! One handler per route, thin: the work is in `slack`, the catalog and the queue.

pub mod commands;
pub mod health;
