//! A pass-through HTTP proxy in front of a test service, for scenarios that must see or shape
//! the traffic at a boundary: it counts the requests it forwards (by method and kind of path,
//! e.g. `GET messages` for Get Messages on a queue) and can hold each one for a set delay
//! before forwarding it (a slow backend).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use url::Url;

struct Shared {
    upstream: Url,
    client: reqwest::Client,
    delay: Mutex<Duration>,
    counts: Mutex<BTreeMap<String, u64>>,
}

/// See the module doc. Stops when dropped.
pub struct Proxy {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Forwards to `upstream` (scheme, host and port; paths are kept as requested).
    pub async fn start(upstream: &str) -> anyhow::Result<Proxy> {
        let shared = Arc::new(Shared {
            upstream: Url::parse(upstream)?,
            client: reqwest::Client::builder().tcp_nodelay(true).build()?,
            delay: Mutex::new(Duration::ZERO),
            counts: Mutex::new(BTreeMap::new()),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Proxy { addr, shared, task })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on every request waits `delay` before it is forwarded.
    pub fn set_delay(&self, delay: Duration) {
        *self
            .shared
            .delay
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = delay;
    }

    /// The requests forwarded since the last call, by `METHOD kind`; counting starts again.
    pub fn take_counts(&self) -> BTreeMap<String, u64> {
        std::mem::take(
            &mut *self
                .shared
                .counts
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

/// What a request asks, as far as counting needs: the last path segment for queue messages,
/// `comp=…` for queue operations, else `other`.
fn kind(uri: &Uri) -> String {
    let path = uri.path();
    if path.ends_with("/messages") {
        return "messages".to_owned();
    }
    if path.contains("/messages/") {
        return "message".to_owned();
    }
    let comp = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "comp")
        .map(|(_, v)| v.into_owned());
    comp.map_or_else(|| "other".to_owned(), |c| format!("comp={c}"))
}

async fn forward(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    *shared
        .counts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(format!("{method} {}", kind(&uri)))
        .or_default() += 1;
    let delay = *shared.delay.lock().unwrap_or_else(PoisonError::into_inner);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    chatops_e2e::proxy::send_on(
        &shared.client,
        &shared.upstream,
        method,
        &uri,
        &headers,
        body,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_queue_operation() {
        let kind_of = |uri: &str| kind(&uri.parse::<Uri>().unwrap_or_default());
        assert_eq!(
            kind_of("/devstoreaccount1/q/messages?numofmessages=8"),
            "messages"
        );
        assert_eq!(
            kind_of("/devstoreaccount1/q/messages/id?popreceipt=x"),
            "message"
        );
        assert_eq!(
            kind_of("/devstoreaccount1/q?comp=metadata"),
            "comp=metadata"
        );
        assert_eq!(kind_of("/devstoreaccount1/q"), "other");
    }
}
