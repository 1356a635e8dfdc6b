//! `chatops-ingress`: reads its configuration, binds, serves until SIGINT/SIGTERM.
//! `chatops-ingress keygen` prints a fresh `CHATOPS_JOB_SIGNING_KEY`.

use chatops_ingress::app::Application;
use chatops_ingress::config::{self, IngressConfig};
use chatops_shared::config::ProcessEnv;
use chatops_shared::{shutdown, telemetry};
use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("keygen") {
        return chatops_shared::job::mac::keygen();
    }
    // The runtime's size is a setting (`TOKIO_WORKER_THREADS`), so it is read first.
    let runtime = match config::worker_threads(&ProcessEnv) {
        Ok(threads) => chatops_shared::runtime::build(Some(threads)),
        Err(e) => {
            eprintln!("chatops-ingress: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chatops-ingress: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // On a worker, accept loop included: with one worker, one thread serves everything.
    runtime.block_on(async {
        tokio::spawn(run()).await.unwrap_or_else(|e| {
            eprintln!("chatops-ingress: {e}");
            ExitCode::FAILURE
        })
    })
}

async fn run() -> ExitCode {
    let otlp = telemetry::init("chatops-ingress");
    let config = match IngressConfig::from_env(&ProcessEnv) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("chatops-ingress: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let code = serve(config).await;
    otlp.shutdown().await;
    code
}

async fn serve(config: IngressConfig) -> ExitCode {
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("chatops-ingress: cannot start: {e:#}");
            return ExitCode::from(2);
        }
    };
    match app.local_addr() {
        Ok(addr) => tracing::info!(%addr, "chatops-ingress listening"),
        Err(e) => tracing::warn!(error = %e, "cannot read the bound address"),
    }
    if let Some(Ok(metrics_addr)) = app.metrics_addr() {
        tracing::info!(%metrics_addr, "metrics listening on /metrics");
    }
    match app.run_until_stopped(shutdown::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("server error: {e}");
            ExitCode::FAILURE
        }
    }
}
