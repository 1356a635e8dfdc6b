//! What the queue and the blob clients share about reaching Azure Storage: how one failed try
//! is classified ([`failure`]), how requests are authorized and when our own SAS is renewed
//! ([`auth`]), and the bounded retry loop ([`retry::run`]).

pub(crate) mod auth;
pub(crate) mod failure;
pub(crate) mod retry;
