//! Figures of one measured point (one repeat), and the median and spread over repeats.

use std::time::Duration;

/// What one run of one point gave.
#[derive(Debug, Clone)]
pub struct Run {
    /// Requests answered as expected.
    pub ok: usize,
    /// Requests that failed or got an unexpected answer.
    pub errors: usize,
    /// Messages that reached the queue during the run.
    pub queued: u64,
    pub elapsed: Duration,
    /// Latencies of every request, sorted.
    pub latencies: Vec<Duration>,
    /// CPU the process between the bench and Azurite (the hop or the ingress) used per request
    /// during the run; `None` for the paths with no such process.
    pub server_cpu: Option<Duration>,
}

impl Run {
    /// Messages queued per second.
    pub fn queued_per_sec(&self) -> f64 {
        self.queued as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The latency at quantile `q` (0..=1), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let rank = ((self.latencies.len() as f64) * q).ceil() as usize;
        let index = rank.clamp(1, self.latencies.len()) - 1;
        self.latencies[index].as_secs_f64() * 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.latencies
            .last()
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
}

/// The median of repeats and their spread (lowest, highest).
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub median: f64,
    pub low: f64,
    pub high: f64,
}

impl Summary {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Summary {
        let mut v: Vec<f64> = values.into_iter().collect();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return Summary {
                median: 0.0,
                low: 0.0,
                high: 0.0,
            };
        }
        let median = if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        Summary {
            median,
            low: v[0],
            high: v[v.len() - 1],
        }
    }

    /// `median (low–high)` with `decimals` decimals.
    pub fn show(&self, decimals: usize) -> String {
        format!(
            "{:.d$} ({:.d$}–{:.d$})",
            self.median,
            self.low,
            self.high,
            d = decimals
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank_and_the_median_is_of_the_repeats() {
        let run = Run {
            ok: 100,
            errors: 0,
            queued: 100,
            elapsed: Duration::from_secs(2),
            latencies: (1..=100).map(Duration::from_millis).collect(),
            server_cpu: None,
        };
        assert_eq!(run.quantile_ms(0.5), 50.0);
        assert_eq!(run.quantile_ms(0.99), 99.0);
        assert_eq!(run.max_ms(), 100.0);
        assert_eq!(run.queued_per_sec(), 50.0);
        let s = Summary::of([3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.low, s.high), (2.0, 1.0, 3.0));
        assert_eq!(Summary::of([1.0, 2.0]).median, 1.5);
    }
}
