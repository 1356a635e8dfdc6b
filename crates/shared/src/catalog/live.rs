//! The catalog a running service uses, reloaded when its file changes.
//!
//! [`LiveCatalog::current`] hands out the catalog in force as an `Arc<Catalog>`: a request or a
//! job keeps the one it started with while a reload swaps in the next one. The swap is a
//! `RwLock<Arc<Catalog>>` held only to clone or replace the `Arc` (no new dependency, and
//! reads are a few per command, not a hot path worth `arc-swap`).
//!
//! [`LiveCatalog::watch`] reloads every poll interval (`CHATOPS_CATALOG_POLL`) when the file's
//! content hash differs from the catalog in force, and at once on SIGHUP. Polling a hash, not
//! waiting for file-change notifications, because those do not fire on network mounts such as
//! Azure Files. A poll puts a changed text in force only once the next poll reads it the same
//! (a file read while it is being written could load, missing runbooks or an `allow` line);
//! SIGHUP, sent once the file is written, does not wait. A new catalog that does not load is
//! refused with its `file:line:column` in the log, and the old one stays in force; so is an
//! empty file (truncated by a writer), as one with no runbook at all must say so in a comment.

use super::{Catalog, CatalogError};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

/// How often the catalog file is read for changes when `CHATOPS_CATALOG_POLL` is not set.
pub const DEFAULT_POLL: Duration = Duration::from_secs(5);

/// What a service asks of a new catalog beyond loading (e.g. the runner: who scripts run as).
pub type Check = Box<dyn Fn(&Catalog) -> Result<(), String> + Send + Sync>;

/// The catalog in force, swapped whole when its file changes.
pub struct LiveCatalog {
    path: PathBuf,
    current: RwLock<Arc<Catalog>>,
    check: Option<Check>,
    /// The version of the last text refused, so that a bad file is logged once, not every poll.
    refused: Mutex<Option<String>>,
    /// A changed text one poll has read, put in force when the next one reads it the same.
    settling: Mutex<Option<String>>,
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// The file holds the catalog in force.
    Unchanged,
    /// A new catalog is in force, with this version.
    Changed { from: String, to: String },
    /// The file changed since the last poll: put in force if the next poll reads it the same.
    Settling,
}

/// Why a reload was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The poll interval passed.
    Poll,
    /// The process got SIGHUP.
    Signal,
}

impl LiveCatalog {
    /// Starts with `catalog` in force, reloading from the file it was read from.
    pub fn new(catalog: Catalog) -> Self {
        LiveCatalog {
            path: catalog.path.clone(),
            current: RwLock::new(Arc::new(catalog)),
            refused: Mutex::new(None),
            settling: Mutex::new(None),
            check: None,
        }
    }

    /// Refuses a new catalog that `check` finds unusable, as one that does not load.
    pub fn with_check(mut self, check: Check) -> Self {
        self.check = Some(check);
        self
    }

    /// The catalog in force now.
    pub fn current(&self) -> Arc<Catalog> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the file again and puts its catalog in force when its text changed. On error the
    /// catalog in force stays. Blocking (file reads): call it off the async threads.
    pub fn reload(&self) -> Result<Reloaded, CatalogError> {
        self.reload_once(false)
    }

    /// [`LiveCatalog::reload`]; with `settle`, a changed text is put in force only when the
    /// call before read it the same.
    fn reload_once(&self, settle: bool) -> Result<Reloaded, CatalogError> {
        let text = std::fs::read_to_string(&self.path).map_err(|error| CatalogError::Read {
            path: self.path.clone(),
            error,
        })?;
        let version = super::version_of(&text);
        let from = self.current();
        let mut settling = self.settling.lock().unwrap_or_else(PoisonError::into_inner);
        if from.version() == version {
            *settling = None;
            return Ok(Reloaded::Unchanged);
        }
        if settle && settling.as_deref() != Some(version.as_str()) {
            *settling = Some(version);
            return Ok(Reloaded::Settling);
        }
        *settling = None;
        drop(settling);
        if text.trim().is_empty() {
            return Err(CatalogError::Unusable {
                path: self.path.clone(),
                problem: "the file is empty (cut short while written?); a catalog with no runbook says so in a comment".to_owned(),
            });
        }
        let next = Catalog::parse(&text, &self.path)?;
        if let Some(check) = &self.check {
            check(&next).map_err(|problem| CatalogError::Unusable {
                path: self.path.clone(),
                problem,
            })?;
        }
        let to = next.version().to_owned();
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        Ok(Reloaded::Changed {
            from: from.version().to_owned(),
            to,
        })
    }

    /// Reloads and logs what happened: a change at info, a refused catalog at error with its
    /// place (once per bad text when polling; every time on SIGHUP).
    pub fn reload_and_log(&self, why: Trigger) {
        let signal = why == Trigger::Signal;
        let why = match why {
            Trigger::Poll => "changed",
            Trigger::Signal => "SIGHUP",
        };
        match self.reload_once(!signal) {
            Ok(Reloaded::Settling) => {}
            Ok(Reloaded::Unchanged) => {
                if signal {
                    tracing::info!(catalog = %self.path.display(), version = %self.current().version(), "catalog unchanged (SIGHUP)");
                }
            }
            Ok(Reloaded::Changed { from, to }) => {
                *self.refused.lock().unwrap_or_else(PoisonError::into_inner) = None;
                tracing::info!(catalog = %self.path.display(), %from, %to, reason = why, "catalog reloaded");
            }
            Err(e) => {
                let key = Some(e.to_string());
                let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
                if *refused != key || signal {
                    tracing::error!(
                        error = %e,
                        version = %self.current().version(),
                        reason = why,
                        "the changed catalog is refused; the previous one stays in force until the file is fixed"
                    );
                }
                *refused = key;
            }
        }
    }

    /// Reloads every `poll` and on SIGHUP, for as long as the returned future runs. The signal
    /// handler is installed before this returns, so a SIGHUP sent after it reloads instead of
    /// ending the process.
    pub fn watch(
        self: Arc<Self>,
        poll: Duration,
    ) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup())?;
        Ok(async move {
            let mut tick = tokio::time::interval(poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                let why = tokio::select! {
                    _ = tick.tick() => Trigger::Poll,
                    _ = hangup.recv() => Trigger::Signal,
                };
                let live = self.clone();
                let _ = tokio::task::spawn_blocking(move || live.reload_and_log(why)).await;
            }
        })
    }
}

impl std::fmt::Debug for LiveCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCatalog")
            .field("path", &self.path)
            .field("version", &self.current().version())
            .finish_non_exhaustive()
    }
}

impl From<Catalog> for Arc<LiveCatalog> {
    fn from(catalog: Catalog) -> Self {
        Arc::new(LiveCatalog::new(catalog))
    }
}

#[cfg(test)]
mod tests;
