//! The floor of any ingress: a pass-through HTTP hop ([`Proxy`]) in a process of its own,
//! between the load and Azurite. Raw Put Message through it measures what one more process and
//! two more loopback crossings cost on this machine, with no work done in between, so that the
//! report can tell the cost of having a hop from the cost of what the ingress does in it.
//!
//! `chatops-bench hop <upstream>` (not for users: the bench starts it) prints its address as the
//! first line on stdout and serves until its stdin closes, which it does when the bench exits,
//! however it exits.

use crate::proxy::Proxy;
use anyhow::Context as _;
use chatops_shared::runtime::WORKER_THREADS_VAR;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// The argument that makes this binary a hop.
pub const ARG: &str = "hop";

/// Serves as a hop to `upstream` until stdin closes.
pub async fn serve(upstream: &str) -> anyhow::Result<()> {
    let proxy = Proxy::start(upstream).await?;
    println!("{}", proxy.url());
    // Reading stdin blocks: on a thread of its own, while the runtime serves.
    tokio::task::spawn_blocking(|| {
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut rest)
    })
    .await??;
    drop(proxy);
    Ok(())
}

/// A hop process; killed when dropped (and it stops by itself when this process is gone: it
/// holds the hop's stdin).
pub struct Hop {
    url: String,
    child: Child,
}

impl Hop {
    /// Starts this binary as a hop to `upstream` and waits for its address. Its runtime is
    /// sized as the ingress's: by `TOKIO_WORKER_THREADS` in `ingress_env`, else the ingress's
    /// default (not by this process's own environment).
    pub async fn start(upstream: &str, ingress_env: &[(String, String)]) -> anyhow::Result<Hop> {
        let mut command = Command::new(std::env::current_exe()?);
        command.env_remove(WORKER_THREADS_VAR);
        if let Some((_, threads)) = ingress_env.iter().find(|(k, _)| k == WORKER_THREADS_VAR) {
            command.env(WORKER_THREADS_VAR, threads);
        }
        let mut child = command
            .args([ARG, upstream])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("start the hop process")?;
        let stdout = child.stdout.take().context("the hop's stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).await?;
        let url = line.trim().to_owned();
        anyhow::ensure!(url.starts_with("http://"), "the hop printed `{url}`");
        Ok(Hop { url, child })
    }

    /// The hop's process id (while this `Hop` holds it).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }
}
