//! The ingress application: state, router, listener, serving (see [`crate::serve`]).

use crate::config::IngressConfig;
use crate::readiness::ReadinessCache;
use crate::routes;
use crate::serve::{self, Limits};
use crate::slack::verify::{self, Verifier};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use chatops_shared::audit::{AuditLog, AuditWriter};
use chatops_shared::catalog::{Catalog, LiveCatalog};
use chatops_shared::job::JobKey;
use chatops_shared::membership::{self, Membership};
use chatops_shared::queue::JobQueue;
use chatops_shared::recent_ids::RecentIds;
use chatops_shared::records::Records;
use chatops_shared::slack_api::SlackApi;
use chatops_shared::workspaces::Workspaces;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::timeout::TimeoutLayer;

/// Slash-command bodies are a few hundred bytes, but the longest text the command language
/// takes ([`chatops_shared::command::MAX_CHARS`] characters) arrives percent-encoded: up to 12
/// bytes a character (an emoji). Room for that and the other fields, so that a command too long
/// is answered as such, not with a bare 413.
pub const BODY_LIMIT: usize = 64 * 1024;
/// An interaction carries the whole view it came from (up to 250 KB of JSON, more once
/// form-encoded).
pub const INTERACTION_BODY_LIMIT: usize = 1024 * 1024;
/// How long a queued request is remembered: a copy of it verifies while its timestamp is
/// within the window of our clock, either side, so two copies can arrive up to twice the
/// window apart. A minute more for clock steps.
pub const REPLAY_MEMORY: Duration =
    Duration::from_secs(2 * verify::WINDOW_SECS.unsigned_abs() + 60);
/// A bound on that memory if something floods us with valid requests.
const MAX_REPLAYS: usize = 100_000;
/// The longest a request may take, body included. Slack gives up after 3 s; the enqueue
/// budget is 2.1 s at worst.
pub const REQUEST_LIMIT: Duration = Duration::from_secs(5);
/// How long in-flight requests may take to finish after a shutdown signal.
pub const DRAIN_LIMIT: Duration = serve::DRAIN_LIMIT;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub verifier: Arc<Verifier>,
    /// The catalog in force, reloaded when its file changes (`current()` per command).
    pub catalog: Arc<LiveCatalog>,
    pub queue: Arc<dyn JobQueue>,
    /// Signs every job message put on the queue.
    pub job_key: Arc<JobKey>,
    /// Jobs this process queued in the last few minutes: a replayed request (same signature,
    /// inside Slack's 5-minute window) gets the same answer without a second message. Per
    /// process: a replay that lands on another replica is queued again under the same
    /// `job_id` (see docs/design.md).
    pub replays: Arc<RecentIds>,
    /// `/readyz`'s last answer, reused for a few seconds.
    pub readiness: Arc<ReadinessCache>,
    /// Job records, read (never written) by `status`, `stop`, `rerun` and `history`.
    pub records: Records,
    /// Where accepted, rejected and denied commands are recorded; never waits.
    pub audit: AuditLog,
    /// The Slack workspaces whose commands are served (all unless configured).
    pub workspaces: Arc<Workspaces>,
    /// The Slack Web API (bot token), when configured: modals and user-group lookups.
    pub slack_api: Option<SlackApi>,
    /// User-group membership, asked of Slack through `slack_api`, cached.
    pub membership: Membership,
}

impl AppState {
    pub fn new(
        verifier: Verifier,
        catalog: impl Into<Arc<LiveCatalog>>,
        queue: Arc<dyn JobQueue>,
        job_key: JobKey,
        records: Records,
        audit: AuditLog,
    ) -> Self {
        AppState {
            verifier: Arc::new(verifier),
            catalog: catalog.into(),
            queue,
            job_key: Arc::new(job_key),
            replays: Arc::new(RecentIds::new(REPLAY_MEMORY, MAX_REPLAYS)),
            readiness: Arc::new(ReadinessCache::default()),
            records,
            audit,
            workspaces: Arc::new(Workspaces::default()),
            slack_api: None,
            membership: Membership::new(None, membership::DEFAULT_TTL),
        }
    }

    /// Calls the Slack Web API with this client (bot token).
    pub fn with_slack_api(mut self, api: Option<SlackApi>) -> Self {
        self.membership = Membership::new(api.clone(), self.membership.ttl());
        self.slack_api = api;
        self
    }

    /// Keeps user groups' member lists for `ttl` (`CHATOPS_USERGROUP_TTL`).
    pub fn with_usergroup_ttl(mut self, ttl: Duration) -> Self {
        self.membership = Membership::new(self.slack_api.clone(), ttl);
        self
    }

    /// Serves only commands from these workspaces.
    pub fn with_workspaces(mut self, workspaces: Workspaces) -> Self {
        self.workspaces = Arc::new(workspaces);
        self
    }
}

/// All routes. Separate from [`Application`] so tests can drive it in-process.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/slack/commands", post(routes::commands::slash_command))
        .route(
            "/slack/interactions",
            post(routes::interactions::interaction)
                .layer(DefaultBodyLimit::max(INTERACTION_BODY_LIMIT)),
        )
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_LIMIT,
        ))
        // Outermost: the time a request arrived, before its body is read.
        .layer(axum::middleware::from_fn(crate::run::stamp_arrival))
        .with_state(state)
}

/// A bound listener and the router it will serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
    limits: Limits,
    /// Writes the state's audit lines; flushed after the last request (absent in tests that
    /// bring their own state).
    audit: Option<AuditWriter>,
    /// Where `/metrics` is served (absent in tests that bring their own state).
    metrics: Option<TcpListener>,
}

/// How long an open `/metrics` scrape may take to finish at shutdown.
const METRICS_DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// How long waiting audit lines may take to be written at shutdown.
const AUDIT_FLUSH_LIMIT: Duration = Duration::from_secs(5);

impl Application {
    /// Loads the catalog, opens the queue (creating it if missing) and the job records, and
    /// binds the listener.
    pub async fn build(config: IngressConfig) -> anyhow::Result<Self> {
        let catalog = Arc::new(LiveCatalog::new(Catalog::load(&config.catalog_path)?));
        tokio::spawn(catalog.clone().watch(config.catalog_poll)?);
        let credential = config
            .credential
            .as_ref()
            .map(chatops_shared::credential::build)
            .transpose()?;
        let queue = chatops_shared::queue::open(config.queue, credential.clone())?;
        // Read-only: the ingress never creates the container (the runner or the deployment
        // does) and starts without it; job control answers "try again" while it is missing.
        let records = Records::new(
            chatops_shared::blob::open(config.records, credential.clone())?,
            config.records_retention_days,
        );
        // Append-only: the ingress may add to the audit container, not create or read it.
        let (audit, audit_writer) = AuditLog::new(
            chatops_shared::blob::open(config.audit, credential)?,
            chatops_shared::audit::writer_id(),
        );
        if let Err(e) = queue.ensure_exists().await {
            // Not fatal: /readyz reports it, and commands get a clear "try again".
            tracing::warn!(error = %e, "could not check or create the queue at start");
        }
        let state = AppState::new(
            Verifier::new(config.signing_secrets),
            catalog,
            queue,
            config.job_key,
            records,
            audit,
        )
        .with_workspaces(config.workspaces)
        .with_slack_api(config.slack_api)
        .with_usergroup_ttl(config.usergroup_ttl);
        if state.catalog.current().uses_usergroups() && !state.membership.can_ask() {
            tracing::warn!(
                "the catalog names user groups but SLACK_BOT_TOKEN is not set: their members will be refused until it is"
            );
        }
        let mut app = Self::with_state(config.addr, state)
            .await?
            .with_max_connections(config.max_connections);
        app.audit = Some(audit_writer);
        let metrics = TcpListener::bind(config.metrics_addr).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} (CHATOPS_METRICS_ADDR): {e}",
                config.metrics_addr
            )
        })?;
        app.metrics = Some(metrics);
        Ok(app)
    }

    /// Binds `addr` (port 0 picks a free port) for a prepared state.
    pub async fn with_state(addr: SocketAddr, state: AppState) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (CHATOPS_INGRESS_ADDR): {e}"))?;
        Ok(Application {
            listener,
            router: router(state),
            limits: Limits::default(),
            audit: None,
            metrics: None,
        })
    }

    /// Caps the connections open at once (`CHATOPS_MAX_CONNECTIONS`).
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.limits.max_connections = max;
        self
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address `/metrics` is served on, when it has its listener.
    pub fn metrics_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.metrics.as_ref().map(TcpListener::local_addr)
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish for at most
    /// [`DRAIN_LIMIT`]. Connection handling is in [`crate::serve`].
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        // `/metrics` stops with the Slack endpoint.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let metrics = self.metrics.map(|listener| {
            let mut stopped = stopped.clone();
            tokio::spawn(crate::metrics::serve(listener, async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }))
        });
        serve::serve(self.listener, self.router, self.limits, shutdown).await;
        let _ = stop.send(true);
        if let Some(metrics) = metrics {
            let _ = tokio::time::timeout(METRICS_DRAIN_LIMIT, metrics).await;
        }
        if let Some(audit) = self.audit {
            audit.shutdown(AUDIT_FLUSH_LIMIT).await;
        }
        Ok(())
    }
}
