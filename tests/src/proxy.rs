//! A pass-through HTTP proxy in front of a real service (Azurite's queue), for tests that must
//! stop a process at an exact point: it forwards every request unchanged, except that it can
//! hold Delete Message requests without answering, and tells which ones it holds (with their
//! pop receipts), so that a test can kill the caller while its delete hangs.

#![allow(clippy::expect_used)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};
use url::Url;

/// A Delete Message the proxy holds: the message id and the pop receipt it named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldDelete {
    pub message_id: String,
    pub pop_receipt: String,
}

#[derive(Default)]
struct Shared {
    hold_deletes: bool,
    held: Vec<HeldDelete>,
}

#[derive(Clone)]
struct ProxyState {
    upstream: Url,
    client: reqwest::Client,
    shared: Arc<Mutex<Shared>>,
}

/// See the module doc. Stops with the test.
pub struct Proxy {
    addr: std::net::SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Forwards to `upstream` (scheme, host and port; paths are kept as requested).
    pub async fn start(upstream: Url) -> Proxy {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let state = ProxyState {
            upstream,
            client: reqwest::Client::new(),
            shared: shared.clone(),
        };
        let app = axum::Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy { addr, shared, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on, Delete Message requests are held, never answered.
    pub fn hold_deletes(&self) {
        self.shared.lock().expect("proxy lock").hold_deletes = true;
    }

    /// The deletes held so far.
    pub fn held(&self) -> Vec<HeldDelete> {
        self.shared.lock().expect("proxy lock").held.clone()
    }
}

async fn forward(
    State(state): State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method == Method::DELETE && uri.path().contains("/messages/") {
        let held = {
            let mut shared = state.shared.lock().expect("proxy lock");
            if shared.hold_deletes {
                let message_id = uri.path().rsplit('/').next().unwrap_or_default().to_owned();
                let pop_receipt = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                    .find(|(k, _)| k == "popreceipt")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                shared.held.push(HeldDelete {
                    message_id,
                    pop_receipt,
                });
                true
            } else {
                false
            }
        };
        if held {
            std::future::pending::<()>().await;
        }
    }
    send_on(&state.client, &state.upstream, method, &uri, &headers, body).await
}

/// Sends a request on to `upstream` as it came (same method, path and query, headers but
/// `host` and `content-length`, body) and answers with what came back (502 when nothing did).
/// The proxies of the tests and of the benchmark forward through it.
pub async fn send_on(
    client: &reqwest::Client,
    upstream: &Url,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(url) = upstream.join(path_and_query) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut request = client.request(method, url).body(body);
    for (name, value) in headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let headers = answer.headers().clone();
            let body = answer.bytes().await.unwrap_or_default();
            let mut response = (status, body).into_response();
            for (name, value) in &headers {
                if name != "content-length" && name != "transfer-encoding" {
                    response.headers_mut().insert(name, value.clone());
                }
            }
            response
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}
