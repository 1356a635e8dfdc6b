//! Serving connections, independent of the routes: HTTP/1.1 (what Slack and load balancers
//! speak to a backend), a bounded time to send a request head, a cap on open connections, and
//! a graceful shutdown with a bounded drain.
//!
//! axum's own `serve` has no header-read timeout, so a client that sends half a request head
//! would hold a connection (and its task) forever. Here:
//!
//! - a connection whose request head has not fully arrived within [`Limits::header_read`] is
//!   closed, whether it sent nothing, part of a head, or went quiet between requests (hyper's
//!   timer starts whenever it waits for a head);
//! - at most [`Limits::max_connections`] connections are served at once. Over that, new ones
//!   are not accepted: they wait in the kernel's listen backlog (and the client's connect
//!   timeout), costing this process nothing, until a connection closes;
//! - on shutdown the listener closes, idle connections close, and requests in flight get
//!   [`Limits::drain`] to finish.
//!
//! Request bodies and handlers are bounded by the router's own time limit.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long a client may take to send a request head.
pub const HEADER_READ_LIMIT: Duration = Duration::from_secs(10);
/// Connections served at once unless `CHATOPS_MAX_CONNECTIONS` says otherwise.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long in-flight requests may take to finish after a shutdown signal.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// Worker threads unless `TOKIO_WORKER_THREADS` says otherwise.
///
/// One. A command costs the ingress about a quarter of a millisecond of CPU and a few
/// milliseconds of waiting on Storage, so one thread serves thousands of commands a second.
/// With more, each request was handed between threads: four futex calls per command with two
/// workers (`strace -c`), 266 µs of CPU per command against 226 with one, and on two cores
/// 0.75× raw Put Message's throughput at 1 connection against 0.82× with one
/// (docs/benchmarks.md, "One worker thread"). Scale out with replicas; raise it for a replica
/// with several cores.
pub const WORKER_THREADS: usize = 1;

/// Pause after a failed `accept` (out of file descriptors, say) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The bounds connection handling works within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_read: Duration,
    pub max_connections: usize,
    pub drain: Duration,
}

impl Limits {
    /// The production limits with `max_connections` connections at most.
    pub fn new(max_connections: usize) -> Self {
        Limits {
            header_read: HEADER_READ_LIMIT,
            max_connections,
            drain: DRAIN_LIMIT,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(MAX_CONNECTIONS)
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Taken before accepting: over the cap, connections wait in the backlog.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                // Never closed; stop serving rather than spin if it were.
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers are small and wanted at once.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let connection = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // Timeouts and clients going away: routine, not worth more than debug.
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain) => {
            tracing::warn!("requests still in flight after the drain limit; stopping anyway");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn get_root(stream: &mut TcpStream) -> String {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn past_the_cap_a_client_waits_until_a_connection_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits::new(1);
        let router = Router::new().route("/", get(|| async { "ok" }));
        tokio::spawn(serve(listener, router, limits, std::future::pending()));

        let first = TcpStream::connect(addr).await.unwrap();
        // Accepted (the kernel queues it), but not served while `first` holds the only slot.
        let mut second = TcpStream::connect(addr).await.unwrap();
        let waiting = tokio::spawn(async move { get_root(&mut second).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "served past the cap");

        drop(first);
        let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    /// A server whose `/slow` takes `takes`; returns its address, the stop switch and the
    /// serving task.
    async fn slow_server(
        takes: Duration,
        drain: Duration,
    ) -> (
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            drain,
            ..Limits::default()
        };
        let router = Router::new().route(
            "/",
            get(move || async move {
                tokio::time::sleep(takes).await;
                "done"
            }),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, limits, async move {
            let _ = stopped.await;
        }));
        (addr, stop, server)
    }

    #[tokio::test]
    async fn a_request_in_flight_at_shutdown_is_finished_then_serving_ends() {
        let (addr, stop, server) =
            slow_server(Duration::from_millis(500), Duration::from_secs(10)).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        let request = tokio::spawn(async move { get_root(&mut client).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        let answer = request.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("done"), "{answer}");
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn the_drain_is_bounded() {
        let (addr, stop, server) =
            slow_server(Duration::from_secs(60), Duration::from_millis(200)).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        let _request = tokio::spawn(async move { get_root(&mut client).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("serving ended after the drain limit, not after the request")
            .unwrap();
    }
}
