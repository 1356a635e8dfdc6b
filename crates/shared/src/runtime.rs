//! The Tokio runtime a service runs on, sized by `TOKIO_WORKER_THREADS` (Tokio's own variable,
//! read here as configuration: Tokio itself panics at start on a bad value, and does not trim
//! it).

use crate::config::{self, ConfigError, EnvSource};

/// The variable, as Tokio names it.
pub const WORKER_THREADS_VAR: &str = "TOKIO_WORKER_THREADS";

/// `TOKIO_WORKER_THREADS`: a whole number of at least 1, or `None` when unset.
pub fn worker_threads(env: &dyn EnvSource) -> Result<Option<usize>, ConfigError> {
    config::at_least_one(env, WORKER_THREADS_VAR)
}

/// A multi-thread runtime with `worker_threads` workers (at least 1), or Tokio's default (one
/// per core the process may use) for `None`.
pub fn build(worker_threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = worker_threads {
        builder.worker_threads(n.max(1));
    }
    builder.enable_all().build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_variable_is_a_whole_number_of_at_least_one_or_unset() {
        let read =
            |value: &'static str| worker_threads(&HashMap::from([(WORKER_THREADS_VAR, value)]));
        assert_eq!(worker_threads(&HashMap::<&str, &str>::new()), Ok(None));
        assert_eq!(read(""), Ok(None));
        assert_eq!(read(" 3 "), Ok(Some(3)));
        for bad in ["0", "two", "-1", "1.5"] {
            let err = read(bad).unwrap_err();
            assert_eq!(err.var, WORKER_THREADS_VAR);
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn the_runtime_has_the_worker_threads_asked_for() {
        for n in [1, 3] {
            let runtime = build(Some(n)).unwrap();
            assert_eq!(runtime.metrics().num_workers(), n);
        }
        let default = std::thread::available_parallelism().map_or(1, usize::from);
        // Tokio's default, unless this test's environment sets the variable.
        if std::env::var_os(WORKER_THREADS_VAR).is_none() {
            assert_eq!(build(None).unwrap().metrics().num_workers(), default);
        }
    }
}
