//! A [`JobQueue`] decorator for tests that need the real queue (Azurite) with one thing changed
//! at its boundary: sends or receives that take longer, an answer lost on its way back, and counts of what
//! was delivered and of the storage checks (`ping`) made, moves to the poison queue that fail. Everything not shaped goes straight to the queue underneath.

use async_trait::async_trait;
use chatops_shared::queue::{JobQueue, QueueError, Received};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub struct ShapedQueue {
    inner: Arc<dyn JobQueue>,
    send_delay: Duration,
    receive_delay: Duration,
    lose_extend_answer: AtomicBool,
    deliveries: Mutex<HashMap<String, u32>>,
    pings: AtomicUsize,
    failing_poison_sends: AtomicUsize,
}

impl ShapedQueue {
    /// `inner`, unchanged until shaped.
    pub fn over(inner: Arc<dyn JobQueue>) -> Self {
        ShapedQueue {
            inner,
            send_delay: Duration::ZERO,
            receive_delay: Duration::ZERO,
            lose_extend_answer: AtomicBool::new(false),
            deliveries: Mutex::default(),
            pings: AtomicUsize::new(0),
            failing_poison_sends: AtomicUsize::new(0),
        }
    }

    /// The next `n` moves to the poison queue fail as an unreachable queue would.
    pub fn failing_poison_sends(self, n: usize) -> Self {
        self.failing_poison_sends.store(n, Ordering::SeqCst);
        self
    }

    /// Every send waits `delay` before it goes to the queue.
    pub fn slow_sends(mut self, delay: Duration) -> Self {
        self.send_delay = delay;
        self
    }

    /// Every receive waits `delay` before it asks the queue (a slow storage account).
    pub fn slow_receives(mut self, delay: Duration) -> Self {
        self.receive_delay = delay;
        self
    }

    /// The first visibility extension is applied at the service while its answer is lost.
    /// Then, as `AzureJobQueue` does after a try that timed out, the update is tried again with
    /// the pop receipt the service has just replaced, and the caller gets the service's answer
    /// to that (`PopReceiptMismatch`, read as `MessageGone`).
    pub fn losing_one_extend_answer(self) -> Self {
        self.lose_extend_answer.store(true, Ordering::SeqCst);
        self
    }

    /// How many times each message was received through this queue.
    pub fn deliveries(&self) -> Vec<u32> {
        self.deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .copied()
            .collect()
    }

    /// Storage checks (`ping`) made through this queue.
    pub fn pings(&self) -> usize {
        self.pings.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl JobQueue for ShapedQueue {
    async fn ensure_exists(&self) -> Result<(), QueueError> {
        self.inner.ensure_exists().await
    }
    async fn ping(&self) -> Result<(), QueueError> {
        self.pings.fetch_add(1, Ordering::SeqCst);
        self.inner.ping().await
    }
    async fn send(&self, text: &str) -> Result<(), QueueError> {
        tokio::time::sleep(self.send_delay).await;
        self.inner.send(text).await
    }
    async fn receive(&self, max: u8, visibility: Duration) -> Result<Vec<Received>, QueueError> {
        tokio::time::sleep(self.receive_delay).await;
        let received = self.inner.receive(max, visibility).await?;
        let mut deliveries = self
            .deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for m in &received {
            *deliveries.entry(m.message_id.clone()).or_default() += 1;
        }
        Ok(received)
    }
    async fn extend(&self, message: &Received, visibility: Duration) -> Result<String, QueueError> {
        if self.lose_extend_answer.swap(false, Ordering::SeqCst) {
            let _never_seen = self.inner.extend(message, visibility).await?;
        }
        self.inner.extend(message, visibility).await
    }
    async fn replace(
        &self,
        message: &Received,
        text: &str,
        visibility: Duration,
    ) -> Result<String, QueueError> {
        self.inner.replace(message, text, visibility).await
    }
    async fn delete(&self, message: &Received) -> Result<(), QueueError> {
        self.inner.delete(message).await
    }
    async fn send_poison(&self, text: &str) -> Result<(), QueueError> {
        let fail = self
            .failing_poison_sends
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(QueueError::Unavailable(
                "shaped: poison queue unreachable".into(),
            ));
        }
        self.inner.send_poison(text).await
    }
    async fn approximate_len(&self, poison: bool) -> Result<u64, QueueError> {
        self.inner.approximate_len(poison).await
    }
}
