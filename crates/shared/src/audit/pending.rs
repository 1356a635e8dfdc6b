//! The lines waiting to be written, shared by every [`AuditLog`](super::AuditLog) clone and the
//! writer task. Bounded: past the limit the oldest lines are dropped and counted, so a long
//! storage outage costs lines, never the service's memory.

use super::AuditEvent;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use time::OffsetDateTime;
use tokio::sync::Notify;

/// An event and when it was recorded.
#[derive(Debug, Clone)]
pub struct Entry {
    pub at: OffsetDateTime,
    pub event: AuditEvent,
}

#[derive(Default)]
struct Queue {
    lines: VecDeque<Entry>,
    /// Lines dropped since the writer last reported it.
    dropped: u64,
    closed: bool,
}

/// What the writer takes at once.
pub enum Taken {
    Lines {
        lines: Vec<Entry>,
        /// Lines dropped (oldest first) since the last take.
        dropped: u64,
    },
    /// Closed and nothing left.
    Finished,
}

pub struct Pending {
    queue: Mutex<Queue>,
    wake: Notify,
    /// Wakes a writer that waits out its minimum interval when the log is closed.
    closing: Notify,
    limit: usize,
    /// Lines taken by the writer and not yet written (counted as lost if it is stopped).
    pub in_flight: AtomicUsize,
}

impl Pending {
    pub fn new(limit: usize) -> Self {
        Pending {
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            closing: Notify::new(),
            limit: limit.max(1),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // The queue stays consistent whatever panicked while holding it.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a line; false when the writer has stopped (the line is not kept).
    pub fn push(&self, entry: Entry) -> bool {
        {
            let mut queue = self.lock();
            if queue.closed {
                return false;
            }
            queue.lines.push_back(entry);
            if queue.lines.len() > self.limit {
                queue.lines.pop_front();
                queue.dropped += 1;
            }
        }
        self.wake.notify_one();
        true
    }

    /// No more lines: the writer finishes what is waiting, then stops.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
        self.closing.notify_one();
    }

    /// Waits until `deadline`, or less when the log is (or gets) closed.
    pub async fn closed_or(&self, deadline: tokio::time::Instant) {
        if self.lock().closed {
            return;
        }
        // `notify_one` keeps a permit: a close between the check and this wait is not missed.
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {}
            () = self.closing.notified() => {}
        }
    }

    /// Lines waiting (not counting those in flight).
    pub fn waiting(&self) -> usize {
        self.lock().lines.len()
    }

    /// Waits for lines, then takes up to `max` of them whose UTC day is not after the first
    /// one's (a blob holds one day).
    pub async fn take(&self, max: usize) -> Taken {
        loop {
            {
                let mut queue = self.lock();
                if let Some(first) = queue.lines.front() {
                    let day = first.at.date();
                    let count = queue
                        .lines
                        .iter()
                        .take(max.max(1))
                        .take_while(|e| e.at.date() <= day)
                        .count();
                    let lines: Vec<Entry> = queue.lines.drain(..count).collect();
                    self.in_flight.store(lines.len(), Ordering::SeqCst);
                    let dropped = std::mem::take(&mut queue.dropped);
                    return Taken::Lines { lines, dropped };
                }
                if queue.closed {
                    return Taken::Finished;
                }
            }
            // `notify_one` keeps a permit when nobody waits: a push between the check above
            // and this wait is not missed.
            self.wake.notified().await;
        }
    }
}
