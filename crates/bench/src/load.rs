//! A closed-loop load generator: `concurrency` workers, each sending its next request as soon
//! as the last is answered, until `total` requests were sent. Every request is distinct: the
//! closure gets the request's number.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Latencies (sorted), the number of failed requests and the wall time of the whole run.
pub struct Outcome {
    pub latencies: Vec<Duration>,
    pub errors: usize,
    pub elapsed: Duration,
}

/// Sends requests `first..first + total` with `concurrency` at once; `send(n)` says whether
/// request `n` was answered as expected.
pub async fn run<F, Fut>(concurrency: usize, first: usize, total: usize, send: F) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let send = Arc::new(send);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let next = next.clone();
            let send = send.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(total / concurrency.max(1) + 1);
                let mut errors = 0;
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        break;
                    }
                    let sent = Instant::now();
                    let ok = send(first + n).await;
                    latencies.push(sent.elapsed());
                    if !ok {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    for worker in workers {
        match worker.await {
            Ok((l, e)) => {
                latencies.extend(l);
                errors += e;
            }
            Err(_) => errors += 1,
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Outcome {
        latencies,
        errors,
        elapsed,
    }
}
