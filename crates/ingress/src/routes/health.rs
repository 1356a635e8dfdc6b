//! `GET /healthz` (the process is up) and `GET /readyz` (the queue answers).

use crate::app::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use std::time::Duration;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match tokio::time::timeout(Duration::from_secs(3), state.queue.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: queue check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "queue unreachable")
        }
        Err(_) => {
            tracing::warn!("not ready: queue check timed out");
            (StatusCode::SERVICE_UNAVAILABLE, "queue unreachable")
        }
    }
}
