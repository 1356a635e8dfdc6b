//! The HTTP client the OTLP exporters send with: the workspace's `reqwest` (its rustls, no
//! second TLS stack), each request run on the process's Tokio runtime. The SDK's exporter
//! threads have no runtime of their own; they wait for the answer there.

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use std::time::Duration;
use tokio::runtime::Handle;

/// How long one export request may take (the SDK's own timeout, `OTEL_EXPORTER_OTLP_TIMEOUT`,
/// bounds its retries on top of this).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `reqwest` on the runtime that was current when it was made.
#[derive(Debug)]
pub struct RuntimeClient {
    client: reqwest::Client,
    runtime: Handle,
}

/// Why no client could be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("not started inside a Tokio runtime")]
    NoRuntime,
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

impl RuntimeClient {
    /// A client for the current runtime.
    pub fn new() -> Result<Self, ClientError> {
        let runtime = Handle::try_current().map_err(|_| ClientError::NoRuntime)?;
        let client = crate::tls::http_client()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| ClientError::Build(e.without_url().to_string()))?;
        Ok(RuntimeClient { client, runtime })
    }
}

#[async_trait::async_trait]
impl HttpClient for RuntimeClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self
            .runtime
            .spawn(async move { client.send_bytes(request).await });
        sent.await?
    }
}
