//! Spacing calls that share a key (one channel's posts, one workspace's updates), across jobs:
//! each call starts at least the interval after the previous one under its key *actually*
//! started. `SlackApi::pace` reserves start times ahead instead; when this process is starved
//! (a busy host, a hundred jobs ending together) reserved times pass unnoticed and the late
//! calls go out together, a burst Slack answers with 429s. Here a call that starts late pushes
//! the next one back.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// Keys unused for this long are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, Default)]
pub(super) struct Spacer {
    /// Per key: when its last call started (`None`: never).
    keys: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Instant>>>>>,
}

impl Spacer {
    /// Runs `call` when its turn under `key` comes, `interval` after the previous call's start.
    pub(super) async fn run<T, F: Future<Output = T>>(
        &self,
        key: &str,
        interval: Duration,
        call: impl FnOnce() -> F,
    ) -> T {
        let slot = {
            let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
            if keys.len() > 1024 {
                let now = Instant::now();
                keys.retain(|_, last| {
                    Arc::strong_count(last) > 1
                        || last
                            .try_lock()
                            .is_ok_and(|at| at.is_none_or(|at| at + FORGET_AFTER > now))
                });
            }
            keys.entry(key.to_owned()).or_default().clone()
        };
        {
            let mut last = slot.lock().await;
            if let Some(at) = *last {
                tokio::time::sleep_until(at + interval).await;
            }
            *last = Some(Instant::now());
        }
        call().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_under_one_key_start_an_interval_apart() {
        let spacer = Arc::new(Spacer::default());
        let interval = Duration::from_millis(50);
        let starts = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for key in ["a", "a", "a", "b"] {
            let (spacer, starts) = (spacer.clone(), starts.clone());
            tasks.push(tokio::spawn(async move {
                spacer
                    .run(key, interval, || async {
                        starts.lock().unwrap().push((key, Instant::now()));
                        tokio::time::sleep(Duration::from_millis(30)).await;
                    })
                    .await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let starts = starts.lock().unwrap().clone();
        let mut a: Vec<Instant> = starts
            .iter()
            .filter(|(k, _)| *k == "a")
            .map(|(_, at)| *at)
            .collect();
        a.sort();
        assert_eq!(a.len(), 3);
        for pair in a.windows(2) {
            assert!(pair[1] - pair[0] >= interval, "{:?}", pair[1] - pair[0]);
        }
        assert!(starts.iter().any(|(k, _)| *k == "b"));
    }
}
