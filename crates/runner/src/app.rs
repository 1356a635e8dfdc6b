//! The runner application: the worker loop plus a small HTTP server for health checks and
//! `/metrics`.

use crate::config::RunnerConfig;
use crate::executor::Executor;
use crate::executor::arm::ArmClient;
use crate::executor::automation::{AutomationExecutor, FAIR_SHARE};
use crate::executor::local::user::{self, ScriptMode};
use crate::executor::local::{Homes, LocalExecutor};
use crate::notify::Notifier;
use crate::notify::bot::BotNotifier;
use crate::notify::slack::SlackNotifier;
use crate::worker::{Executors, Worker};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use chatops_shared::audit::{AuditLog, AuditWriter};
use chatops_shared::catalog::{Catalog, ExecutorKind, LiveCatalog, Runbook};
use chatops_shared::membership::Membership;
use chatops_shared::queue::JobQueue;
use chatops_shared::records::Records;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// A runner ready to run: the worker and its bound health listener.
pub struct RunnerApp {
    listener: TcpListener,
    worker: Worker,
    queue: Arc<dyn JobQueue>,
    /// Writes the audit lines the worker records; flushed at shutdown.
    audit: AuditWriter,
}

/// How long waiting audit lines may take to be written at shutdown.
const AUDIT_FLUSH_LIMIT: Duration = Duration::from_secs(5);

impl RunnerApp {
    /// Loads the catalog, opens the queue (creating it if missing), builds the executors and
    /// the notifier, and binds the health listener.
    pub async fn build(config: RunnerConfig) -> anyhow::Result<Self> {
        let catalog = Catalog::load(&config.catalog_path)?;
        let euid = nix::unistd::geteuid().as_raw();
        let script_mode = user::decide(euid, config.script_user.as_deref(), &catalog)?;
        log_script_mode(&script_mode);
        let credential = config
            .credential
            .as_ref()
            .map(chatops_shared::credential::build)
            .transpose()?;
        let queue = chatops_shared::queue::open(config.queue, credential.clone())?;
        if let Err(e) = queue.ensure_exists().await {
            tracing::warn!(error = %e, "could not check or create the queue at start");
        }
        let records = Records::new(
            chatops_shared::blob::open(config.records, credential.clone())?,
            config.records_retention,
        );
        if let Err(e) = records.ensure_exists().await {
            tracing::warn!(error = %e, "could not check or create the job records container at start");
        }
        let audit_store = chatops_shared::blob::open(config.audit, credential.clone())?;
        if let Err(e) = audit_store.ensure_container().await {
            tracing::warn!(error = %e, "could not check or create the audit container at start");
        }
        // The live tail needs the bot path's thread.
        let live_tail = config
            .slack_api
            .as_ref()
            .and_then(|_| config.bot.live_tail());
        let automation: Option<Arc<dyn Executor>> = match (config.arm, credential) {
            (Some(arm), Some(credential)) => {
                let client = Arc::new(ArmClient::new(&arm, credential)?);
                Some(Arc::new(
                    AutomationExecutor::new(client)
                        .with_poll(config.poll)
                        .with_live_output(live_tail),
                ))
            }
            _ => None,
        };
        let executors = Executors {
            automation,
            local: Arc::new(
                LocalExecutor::new()
                    .with_homes(scripts_homes())
                    .with_script_user(script_mode.user().cloned())
                    // For the live tail and the kept whole output.
                    .with_live_output(true),
            ),
        };
        warn_about_unreported_ends(
            &catalog,
            config.slack.webhook_url.is_some() || config.slack_api.is_some(),
        );
        warn_about_missing_automation(&catalog, executors.automation.is_some());
        warn_about(
            &catalog,
            |rb| rb.executor == ExecutorKind::Automation && rb.timeout > FAIR_SHARE,
            "these Automation runbooks have a timeout over 3 hours, but Azure stops a job in its cloud sandbox at 3 hours (fair share): it ends Stopped then, with a note saying so",
        );
        let fallback = SlackNotifier::new(config.slack)?;
        let notifier: Arc<dyn Notifier> = match config.slack_api.clone() {
            Some(api) => {
                tracing::info!(
                    "SLACK_BOT_TOKEN is set: jobs get a card in their channel, updated in place, with the output in its thread"
                );
                Arc::new(BotNotifier::new(api, records.clone(), fallback, config.bot))
            }
            None => Arc::new(fallback),
        };
        let catalog_uses_usergroups = catalog.uses_usergroups();
        // A reloaded catalog must pass the same check of who its scripts run as.
        let script_user = config.script_user.clone();
        let catalog = Arc::new(LiveCatalog::new(catalog).with_check(Box::new(move |c| {
            user::decide(euid, script_user.as_deref(), c)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })));
        tokio::spawn(catalog.clone().watch(config.catalog_poll)?);
        let worker = Worker::new(
            queue.clone(),
            records,
            catalog,
            config.job_keys,
            executors,
            notifier,
            config.worker,
        );
        let (audit_log, audit) = AuditLog::new(audit_store, worker.runner_id().to_owned());
        if catalog_uses_usergroups && config.slack_api.is_none() {
            tracing::warn!(
                "the catalog names user groups but SLACK_BOT_TOKEN is not set: jobs that need them will be refused"
            );
        }
        let membership = Membership::new(config.slack_api.clone(), config.usergroup_ttl);
        let worker = worker.with_audit(audit_log).with_membership(membership);
        let listener = TcpListener::bind(config.addr).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} (CHATOPS_RUNNER_ADDR): {e}",
                config.addr
            )
        })?;
        Ok(RunnerApp {
            listener,
            worker,
            queue,
            audit,
        })
    }

    /// While metrics are pushed every `every` (OTLP), samples the queue depth as often; with
    /// only `/metrics`, each scrape samples it.
    pub fn sample_queue_depth_every(&self, every: Duration) {
        tokio::spawn(crate::metrics::sample_queue_depth_every(
            self.queue.clone(),
            every,
        ));
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Runs the worker and the health server until `shutdown` completes.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let router = health_router(self.queue);
        let server = axum::serve(self.listener, router).with_graceful_shutdown(stopped());
        let server = async {
            let mut server = std::pin::pin!(server.into_future());
            tokio::select! {
                served = &mut server => served,
                () = async {
                    stopped().await;
                    tokio::time::sleep(HEALTH_DRAIN_LIMIT).await;
                } => {
                    tracing::warn!(limit = ?HEALTH_DRAIN_LIMIT, "health checks still open after the drain limit; closing them");
                    Ok(())
                }
            }
        };
        let worker = self.worker.run_until_stopped(stopped());
        let (served, ()) = tokio::join!(server, worker);
        self.audit.shutdown(AUDIT_FLUSH_LIMIT).await;
        served
    }
}

/// This runner's directory of scripts' homes; the homes of runners killed before they could
/// remove them are removed in the background. `None` (homes straight in the temp directory)
/// when the directory cannot be made: a script's start then says why.
fn scripts_homes() -> Option<Arc<Homes>> {
    let homes = match Homes::claim() {
        Ok(homes) => Arc::new(homes),
        Err(e) => {
            tracing::warn!(error = %e, dir = %std::env::temp_dir().display(), "could not make a directory for scripts' homes");
            return None;
        }
    };
    let sweeping = homes.clone();
    tokio::task::spawn_blocking(move || {
        let removed = sweeping.sweep_left();
        if removed > 0 {
            tracing::info!(
                runners = removed,
                "removed the scripts' homes of runners that were killed"
            );
        }
    });
    Some(homes)
}

/// How long open health-check connections may take to finish after shutdown begins.
pub const HEALTH_DRAIN_LIMIT: Duration = Duration::from_secs(3);

/// Says at start who scripts run as; running them as root is worth a warning.
fn log_script_mode(mode: &ScriptMode) {
    match mode {
        ScriptMode::RunnerUser => {
            tracing::info!("local scripts run as the runner's user; the runner is non-dumpable");
        }
        ScriptMode::Switched(user) => {
            tracing::info!(user = %user.name, uid = user.uid, "local scripts run as CHATOPS_SCRIPT_USER");
        }
        ScriptMode::RootAccepted => tracing::warn!(
            "CHATOPS_SCRIPT_USER=root: local scripts run as root and can read this runner's secrets"
        ),
        ScriptMode::NoLocalRunbooks => {}
    }
}

/// A command's `response_url` works for 30 minutes. Runbooks that may run longer need the
/// webhook for their final status; without one it reaches only the log. Say so at start.
fn warn_about_unreported_ends(catalog: &Catalog, has_webhook: bool) {
    if !has_webhook {
        warn_about(
            catalog,
            |rb| rb.timeout > Duration::from_secs(25 * 60),
            "these runbooks may run past the 30 minutes a response_url lasts; set SLACK_WEBHOOK_URL or their final status reaches only this log",
        );
    }
}

/// Automation runbooks in the catalog need the Automation variables; without them every such
/// command ends Failed. Say so at start rather than in the channel.
fn warn_about_missing_automation(catalog: &Catalog, configured: bool) {
    if !configured {
        warn_about(
            catalog,
            |rb| rb.executor == ExecutorKind::Automation,
            "these runbooks run in Azure Automation, which is not configured (AZURE_SUBSCRIPTION_ID, AUTOMATION_RESOURCE_GROUP, AUTOMATION_ACCOUNT): they will end Failed",
        );
    }
}

/// Logs `warning` with the names of the runbooks that match, if any do.
fn warn_about(catalog: &Catalog, matches: impl Fn(&Runbook) -> bool, warning: &str) {
    let names: Vec<&str> = catalog
        .runbooks
        .values()
        .filter(|rb| matches(rb))
        .map(|rb| rb.name.as_str())
        .collect();
    if !names.is_empty() {
        tracing::warn!(runbooks = %names.join(", "), "{warning}");
    }
}

/// `/healthz` (the process is up), `/readyz` (the queue answers) and `/metrics`.
pub fn health_router(queue: Arc<dyn JobQueue>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(crate::metrics::scrape))
        .with_state(queue)
}

async fn readyz(State(queue): State<Arc<dyn JobQueue>>) -> (StatusCode, &'static str) {
    match tokio::time::timeout(Duration::from_secs(3), queue.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "queue unreachable"),
    }
}
