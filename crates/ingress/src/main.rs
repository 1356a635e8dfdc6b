//! `chatops-ingress`: reads its configuration, binds, serves until SIGINT/SIGTERM.
//! `chatops-ingress keygen` prints a fresh `CHATOPS_JOB_SIGNING_KEY`.

use chatops_ingress::app::Application;
use chatops_ingress::config::IngressConfig;
use chatops_shared::config::ProcessEnv;
use chatops_shared::{shutdown, telemetry};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("keygen") {
        return chatops_shared::job::mac::keygen();
    }
    let otlp = telemetry::init("chatops-ingress");
    let config = match IngressConfig::from_env(&ProcessEnv) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("chatops-ingress: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
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
    let code = match app.run_until_stopped(shutdown::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("server error: {e}");
            ExitCode::FAILURE
        }
    };
    otlp.shutdown().await;
    code
}
