//! `chatops-runner`: reads its configuration, then takes jobs off the queue until SIGINT/SIGTERM.
//! `chatops-runner keygen` prints a fresh `CHATOPS_JOB_SIGNING_KEY`; `chatops-runner supervise`
//! is the supervisor the runner starts each local script through (not for people to call).
//! `chatops-runner audit verify|export` checks or exports the audit log (`audit_cli`).
//! `chatops-runner catalog sync` writes catalog entries from the Automation account (`catalog_cli`).
//! `chatops-runner output <job-id>` prints a local script's kept whole output (`output_cli`).

mod audit_cli;
mod catalog_cli;
mod output_cli;

/// Writes `bytes` whole to stdout and flushes, for the operator commands: an error (a closed
/// pipe, `| head`; a full disk) is the caller's to report, not a panic as `print!` makes it.
fn write_stdout(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).and_then(|()| out.flush())
}

use chatops_runner::app::RunnerApp;
use chatops_runner::config::RunnerConfig;
use chatops_shared::config::ProcessEnv;
use chatops_shared::{shutdown, telemetry};
use std::process::ExitCode;

fn main() -> ExitCode {
    // Tokio's default size (a worker per core) unless `TOKIO_WORKER_THREADS` says otherwise,
    // checked here: Tokio itself would panic on a bad value.
    let runtime = match chatops_shared::runtime::worker_threads(&ProcessEnv) {
        Ok(threads) => chatops_shared::runtime::build(threads),
        Err(e) => {
            eprintln!("chatops-runner: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("chatops-runner: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    // First, for every subcommand (an operator's `chatops-runner output` in the container has
    // its secrets too): processes of the same user (the scripts, when the runner is not root)
    // then cannot read this process's environment or memory.
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        eprintln!("chatops-runner: cannot make itself non-dumpable: {e}");
        return ExitCode::from(2);
    }
    if std::env::args().nth(1).as_deref() == Some("keygen") {
        return chatops_shared::job::mac::keygen();
    }
    if std::env::args().nth(1).as_deref() == Some("audit") {
        return audit_cli::main(std::env::args().skip(2).collect()).await;
    }
    if std::env::args().nth(1).as_deref() == Some("output") {
        return output_cli::main(std::env::args().skip(2).collect()).await;
    }
    if std::env::args().nth(1).as_deref() == Some("catalog") {
        return catalog_cli::main(std::env::args().skip(2).collect()).await;
    }
    if std::env::args().nth(1).as_deref() == Some("supervise") {
        return chatops_runner::executor::local::supervisor::main().await;
    }
    let otlp = telemetry::init("chatops-runner");
    let config = match RunnerConfig::from_env(&ProcessEnv) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("chatops-runner: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let app = match RunnerApp::build(config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("chatops-runner: cannot start: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Some(every) = otlp.metrics_pushed_every() {
        app.sample_queue_depth_every(every);
    }
    match app.local_addr() {
        Ok(addr) => tracing::info!(%addr, "chatops-runner started; health checks listening"),
        Err(e) => tracing::warn!(error = %e, "cannot read the bound address"),
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
