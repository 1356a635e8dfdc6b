//! `GET /healthz` (the process is up) and `GET /readyz` (the queue answers, cached briefly:
//! see [`crate::readiness`]).

use crate::app::AppState;
use crate::readiness::Readiness;
use axum::extract::State;
use axum::http::StatusCode;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.readiness.check(state.queue.as_ref()).await {
        Readiness::Ready => (StatusCode::OK, "ready"),
        Readiness::QueueUnreachable => (StatusCode::SERVICE_UNAVAILABLE, "queue unreachable"),
    }
}
