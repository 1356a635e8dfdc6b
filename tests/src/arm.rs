//! A test server that plays Azure Resource Manager's Automation job API (per
//! `shared/reference/azure-automation.md`) and the Container Apps managed-identity token endpoint.
//!
//! - ARM paths live under
//!   `/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Automation/automationAccounts/{account}/jobs/{name}`
//!   and need `?api-version=2024-10-23` (400 otherwise) and `Authorization: Bearer <token>` with
//!   exactly the token the identity endpoint hands out (401 otherwise).
//! - Each runbook follows a [`Script`]: how many polls it stays `New` and `Running`, how it ends,
//!   its output and Error-stream records, or a refusal of the PUT. A runbook without a script
//!   does not exist (404).
//! - Knobs: [`ArmServer::fail_next`] (the next requests answer 500 or 429 with `Retry-After: 1`),
//!   [`ArmServer::fail_next_put_after_create`] (a PUT whose answer is lost), a page size for
//!   stream lists; counters of PUTs and stops per job, and every request recorded.
//! - Limits (all off by default): the subscription's read throttle (`arm/throttle.rs`:
//!   token bucket, `x-ms-ratelimit-remaining-subscription-reads`, 429 with `Retry-After`) and
//!   Automation's concurrent-jobs and new-jobs limits with wall-time job durations
//!   (`arm/limits.rs`).
//! - `GET …/runbooks` (paged) and `GET …/runbooks/{name}` answer the runbooks added with
//!   [`ArmServer::define_runbook`] (see `arm/runbooks.rs`).
//! - `GET /msi/token?api-version=2019-08-01&resource=…` with `X-IDENTITY-HEADER` answers like the
//!   App Service / Container Apps identity endpoint that `azure_identity` calls.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use chatops_runner::executor::arm::{API_VERSION, ArmConfig, DEFAULT_SCOPE};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use url::Url;

mod limits;
mod runbooks;
mod throttle;

pub use limits::{NEW_JOBS, NEW_JOBS_WINDOW, Offer};
pub use throttle::{READ_BUCKET, READ_REFILL};

pub const SUBSCRIPTION: &str = "00000000-0000-0000-0000-0000000000a1";
pub const RESOURCE_GROUP: &str = "rg-chatops";
pub const ACCOUNT: &str = "aa-chatops";
const MSI_API_VERSION: &str = "2019-08-01";

/// How a job ends once it has run its polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Completed,
    Failed,
    Suspended,
    Stopped,
    /// Runs until stopped.
    Never,
}

impl End {
    fn status(self) -> &'static str {
        match self {
            End::Completed => "Completed",
            End::Failed => "Failed",
            End::Suspended => "Suspended",
            End::Stopped => "Stopped",
            End::Never => "Running",
        }
    }
}

/// What a runbook does when a job of it is created and polled.
#[derive(Debug, Clone)]
pub struct Script {
    /// GETs of the job that answer `New` before it runs.
    pub queued_polls: u32,
    /// GETs that answer `Running` before it ends.
    pub running_polls: u32,
    pub end: End,
    /// The job's whole Output stream.
    pub output: String,
    /// While the job runs, its Output stream holds one more line of `output` per GET of the job
    /// (as a running job's output grows); all of it once it ended.
    pub growing_output: bool,
    /// Instead of `output`, an Output stream of this many bytes generated while it is sent (never
    /// held in memory): numbered lines `line N of M`, the last ending the stream.
    pub generated_output: Option<u64>,
    /// Error-stream records, in order.
    pub errors: Vec<String>,
    /// The job's `exception` once it ended.
    pub exception: Option<String>,
    /// Error records listed without a summary, so that a client must get each one's text.
    pub errors_without_summary: bool,
    /// The job keeps running after a stop request.
    pub ignores_stop: bool,
    /// The PUT is refused with this status and body.
    pub refuse: Option<(StatusCode, Value)>,
    /// Reads of the Output stream are refused with 403 `AuthorizationFailed` (a role without
    /// `jobs/output/read`).
    pub output_forbidden: bool,
    /// Runs for a wall time in this range (one per job, see `arm/limits.rs`) instead of
    /// `queued_polls` and `running_polls`.
    pub duration: Option<(std::time::Duration, std::time::Duration)>,
}

impl Script {
    /// One `New` poll, two `Running` polls, then `Completed` with this output.
    pub fn completes(output: &str) -> Self {
        Script {
            queued_polls: 1,
            running_polls: 2,
            end: End::Completed,
            output: output.to_owned(),
            growing_output: false,
            generated_output: None,
            errors: Vec::new(),
            exception: None,
            errors_without_summary: false,
            ignores_stop: false,
            refuse: None,
            output_forbidden: false,
            duration: None,
        }
    }

    /// Completes with this output after running between `min` and `max` (wall time, one
    /// duration per job), whether or not it is polled.
    pub fn runs_for(output: &str, min: std::time::Duration, max: std::time::Duration) -> Self {
        Script {
            duration: Some((min, max)),
            ..Script::completes(output)
        }
    }

    /// Ends `Failed` with these Error-stream records and exception.
    pub fn fails(errors: &[&str], exception: Option<&str>) -> Self {
        Script {
            end: End::Failed,
            errors: errors.iter().map(|e| (*e).to_owned()).collect(),
            exception: exception.map(str::to_owned),
            ..Script::completes("")
        }
    }

    /// Ends `Suspended` with this exception.
    pub fn suspends(exception: &str) -> Self {
        Script {
            end: End::Suspended,
            exception: Some(exception.to_owned()),
            ..Script::completes("")
        }
    }

    /// Runs until stopped.
    pub fn never_ends() -> Self {
        Script {
            end: End::Never,
            ..Script::completes("")
        }
    }

    /// The PUT is refused with 403 `AuthorizationFailed` in ARM's envelope.
    pub fn forbidden() -> Self {
        let message = format!(
            "The client 'runner' with object id '11111111-2222-3333-4444-555555555555' does not have authorization to perform action 'Microsoft.Automation/automationAccounts/jobs/write' over scope '/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Automation/automationAccounts/{ACCOUNT}' or the scope is invalid."
        );
        Script::refused(
            StatusCode::FORBIDDEN,
            json!({"error": {"code": "AuthorizationFailed", "message": message}}),
        )
    }

    /// The PUT is refused with this status and body.
    pub fn refused(status: StatusCode, body: Value) -> Self {
        Script {
            refuse: Some((status, body)),
            ..Script::completes("")
        }
    }

    /// Completes with an Output stream of `bytes` bytes, generated as it is sent.
    pub fn completes_with_generated_output(bytes: u64) -> Self {
        Script {
            generated_output: Some(bytes),
            ..Script::completes("")
        }
    }

    /// The Output stream grows by one line per GET while the job runs.
    pub fn growing(mut self) -> Self {
        self.growing_output = true;
        self
    }

    pub fn polls(mut self, queued: u32, running: u32) -> Self {
        self.queued_polls = queued;
        self.running_polls = running;
        self
    }
}

/// A job as the server holds it.
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub name: String,
    pub runbook: String,
    pub params: BTreeMap<String, String>,
    pub status: String,
    /// GETs of the job itself.
    pub gets: u32,
    pub stop_requested: bool,
    pub creation_time: OffsetDateTime,
    pub start_time: Option<OffsetDateTime>,
    pub end_time: Option<OffsetDateTime>,
    /// When the job took a slot of the account (created, or admitted from `Queued`).
    pub admitted_at: Option<OffsetDateTime>,
    /// How long it runs, for a script with a duration.
    pub duration: Option<std::time::Duration>,
    /// Creation order.
    seq: u64,
    script: Script,
    /// GETs since the stop request.
    gets_since_stop: u32,
}

/// One request the server answered.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub status: StatusCode,
    /// When the answer was sent.
    pub at: std::time::Instant,
}

#[derive(Default)]
struct Inner {
    scripts: HashMap<String, Script>,
    /// The account's runbooks as `GET …/runbooks/{name}` answers them ([`ArmServer::define_runbook`]).
    runbooks: BTreeMap<String, Value>,
    jobs: BTreeMap<String, JobRecord>,
    fail_next: VecDeque<StatusCode>,
    /// The `Retry-After` (seconds) of an injected 429.
    injected_retry_after: u64,
    fail_put_after_create: Option<StatusCode>,
    puts: HashMap<String, usize>,
    stops: HashMap<String, usize>,
    /// Stop requests still to answer 503 ([`ArmServer::fail_next_stops`]).
    failing_stops: usize,
    requests: Vec<RecordedRequest>,
    token_requests: usize,
    page_size: usize,
    /// The subscription's read bucket, when reads are throttled.
    read_bucket: Option<throttle::Bucket>,
    /// Every read answer reports this many remaining reads instead of the bucket's.
    remaining_reads_override: Option<u64>,
    /// Reads answered 429 by the throttle.
    throttled_reads: usize,
    limits: limits::Limits,
    next_seq: u64,
}

struct Shared {
    base: Url,
    token: String,
    identity_header: String,
    client_id: String,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The ARM and identity test server. Stops when dropped.
pub struct ArmServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for ArmServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ArmServer {
    /// Starts the server on a free loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the ARM test server");
        let addr = listener.local_addr().expect("ARM test server address");
        let shared = Arc::new(Shared {
            base: Url::parse(&format!("http://{addr}")).expect("server URL"),
            token: format!("arm-test-token-{}", uuid::Uuid::new_v4().simple()),
            identity_header: format!("identity-header-{}", uuid::Uuid::new_v4().simple()),
            client_id: "6f1c1a6e-0000-4000-8000-00000000c11d".to_owned(),
            inner: Mutex::new(Inner {
                page_size: 2,
                injected_retry_after: 1,
                ..Inner::default()
            }),
        });
        let app = router(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("ARM test server");
        });
        ArmServer { addr, shared, task }
    }

    /// The ARM base URL (`CHATOPS_ARM_ENDPOINT`).
    pub fn url(&self) -> Url {
        self.shared.base.clone()
    }

    /// The managed-identity endpoint (`IDENTITY_ENDPOINT`).
    pub fn msi_endpoint(&self) -> String {
        format!("http://{}/msi/token", self.addr)
    }

    /// The secret the identity endpoint wants in `X-IDENTITY-HEADER` (`IDENTITY_HEADER`).
    pub fn identity_header(&self) -> &str {
        &self.shared.identity_header
    }

    /// The only bearer token ARM accepts.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// A runner config pointing at this server.
    pub fn config(&self) -> ArmConfig {
        ArmConfig {
            endpoint: self.url(),
            subscription_id: SUBSCRIPTION.to_owned(),
            resource_group: RESOURCE_GROUP.to_owned(),
            account: ACCOUNT.to_owned(),
            scope: DEFAULT_SCOPE.to_owned(),
            reads_per_second: None,
        }
    }

    /// The environment a runner process needs to use this server with a managed identity.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("CHATOPS_ARM_ENDPOINT", self.url().to_string()),
            ("AZURE_SUBSCRIPTION_ID", SUBSCRIPTION.to_owned()),
            ("AUTOMATION_RESOURCE_GROUP", RESOURCE_GROUP.to_owned()),
            ("AUTOMATION_ACCOUNT", ACCOUNT.to_owned()),
            ("CHATOPS_AZURE_CREDENTIAL", "managed-identity".to_owned()),
            ("IDENTITY_ENDPOINT", self.msi_endpoint()),
            ("IDENTITY_HEADER", self.identity_header().to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// A credential that hands out this server's token without asking the identity endpoint.
    pub fn credential(&self) -> Arc<dyn TokenCredential> {
        Arc::new(StaticToken(self.shared.token.clone()))
    }

    /// Makes `runbook` exist and behave like `script`.
    pub fn script(&self, runbook: &str, script: Script) {
        self.shared
            .lock()
            .scripts
            .insert(runbook.to_owned(), script);
    }

    /// Adds a published runbook to the account, with its parameters as ARM describes them
    /// (name → `{type, isMandatory, position, defaultValue}`), for `GET …/runbooks`. Jobs of
    /// it still need a [`Script`].
    pub fn define_runbook(&self, name: &str, description: &str, parameters: Value) {
        self.shared.lock().runbooks.insert(
            name.to_owned(),
            runbooks::resource(name, description, &parameters),
        );
    }

    /// The next `n` ARM requests (after the auth and api-version checks) answer `status`; a 429
    /// carries `Retry-After: 1`.
    pub fn fail_next(&self, n: usize, status: u16) {
        let status = StatusCode::from_u16(status).expect("an HTTP status");
        self.shared
            .lock()
            .fail_next
            .extend(std::iter::repeat_n(status, n));
    }

    /// From now on an injected 429 ([`ArmServer::fail_next`]) asks for `Retry-After: seconds`
    /// (default 1).
    pub fn set_retry_after(&self, seconds: u64) {
        self.shared.lock().injected_retry_after = seconds;
    }

    /// Answers again: the failures [`ArmServer::fail_next`] queued and not yet given are
    /// dropped.
    pub fn recover(&self) {
        self.shared.lock().fail_next.clear();
    }

    /// The next `n` stop requests answer 503 (counted in [`ArmServer::stop_count`]).
    pub fn fail_next_stops(&self, n: usize) {
        self.shared.lock().failing_stops = n;
    }

    /// The next PUT creates its job and then answers `status`, as when an answer is lost.
    pub fn fail_next_put_after_create(&self, status: u16) {
        self.shared.lock().fail_put_after_create =
            Some(StatusCode::from_u16(status).expect("an HTTP status"));
    }

    /// How many stream records a list page holds (default 2).
    pub fn set_page_size(&self, n: usize) {
        self.shared.lock().page_size = n.max(1);
    }

    /// Creates a job directly, as if an earlier runner had started it.
    pub fn seed_job(&self, name: &str, runbook: &str) {
        let mut inner = self.shared.lock();
        let script = inner
            .scripts
            .get(runbook)
            .cloned()
            .expect("script the runbook first");
        let job = new_job(&mut inner, name, runbook, BTreeMap::new(), script);
        inner.jobs.insert(name.to_owned(), job);
    }

    /// PUTs of this job name that reached the jobs API (refused ones included).
    pub fn put_count(&self, job_name: &str) -> usize {
        self.shared.lock().puts.get(job_name).copied().unwrap_or(0)
    }

    /// Stop requests for this job name.
    pub fn stop_count(&self, job_name: &str) -> usize {
        self.shared.lock().stops.get(job_name).copied().unwrap_or(0)
    }

    pub fn jobs(&self) -> Vec<JobRecord> {
        self.shared.lock().jobs.values().cloned().collect()
    }

    pub fn job(&self, name: &str) -> Option<JobRecord> {
        self.shared.lock().jobs.get(name).cloned()
    }

    /// Every request, in order (identity endpoint included).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Tokens handed out by the identity endpoint.
    pub fn token_requests(&self) -> usize {
        self.shared.lock().token_requests
    }

    /// Throttles reads like ARM: a token bucket of `bucket` reads refilled at `per_second`
    /// ([`READ_BUCKET`], [`READ_REFILL`] in Azure).
    pub fn throttle_reads(&self, bucket: f64, per_second: f64) {
        self.shared.lock().read_bucket = Some(throttle::Bucket::new(bucket, per_second));
    }

    /// Every read answer says `remaining` reads are left (`None`: the bucket's own count).
    pub fn report_remaining_reads(&self, remaining: Option<u64>) {
        self.shared.lock().remaining_reads_override = remaining;
    }

    /// Reads refused with 429 by the throttle so far.
    pub fn throttled_reads(&self) -> usize {
        self.shared.lock().throttled_reads
    }

    /// Holds jobs beyond `max` running at once in `Queued` ([`Offer::concurrent_jobs`]).
    pub fn limit_concurrent_jobs(&self, max: usize) {
        self.shared.lock().limits.concurrent = Some(max);
    }

    /// Refuses a PUT that would create more than `max` jobs within `window`
    /// ([`NEW_JOBS`] per [`NEW_JOBS_WINDOW`] in Azure).
    pub fn limit_new_jobs(&self, max: usize, window: std::time::Duration) {
        self.shared.lock().limits.new_jobs = Some((max, window));
    }

    /// PUTs refused at the new-jobs limit so far.
    pub fn refused_puts(&self) -> usize {
        self.shared.lock().limits.refused_puts
    }

    /// Jobs held back (`Queued`) now.
    pub fn queued_jobs(&self) -> usize {
        let mut inner = self.shared.lock();
        limits::settle(&mut inner);
        inner.jobs.values().filter(|j| j.status == "Queued").count()
    }
}

/// A [`TokenCredential`] that returns one fixed token.
#[derive(Debug, Clone)]
pub struct StaticToken(pub String);

#[async_trait::async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            self.0.clone(),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let job = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Automation/automationAccounts/{account}/jobs/{job}";
    let runbooks = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Automation/automationAccounts/{account}/runbooks";
    let arm = Router::new()
        .route(runbooks, get(runbooks::list_runbooks))
        .route(
            &format!("{runbooks}/{{runbook}}"),
            get(runbooks::get_runbook),
        )
        .route(job, get(get_job).put(put_job))
        .route(&format!("{job}/output"), get(get_output))
        .route(&format!("{job}/streams"), get(list_streams))
        .route(&format!("{job}/streams/{{stream}}"), get(get_stream))
        .route(&format!("{job}/stop"), post(stop_job))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            throttle::reads,
        ))
        .layer(middleware::from_fn_with_state(shared.clone(), arm_gate));
    Router::new()
        .route("/msi/token", get(msi_token))
        .merge(arm)
        .layer(middleware::from_fn_with_state(shared.clone(), record))
        .with_state(shared)
}

/// Records every request with the status it got.
async fn record(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let response = next.run(request).await;
    shared.lock().requests.push(RecordedRequest {
        method,
        path,
        query,
        status: response.status(),
        at: std::time::Instant::now(),
    });
    response
}

/// ARM's checks before any handler: bearer token, api-version, then injected failures.
async fn arm_gate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let auth = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth {
        None => {
            return envelope(
                StatusCode::UNAUTHORIZED,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            );
        }
        Some(value) if value != format!("Bearer {}", shared.token) => {
            return envelope(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            );
        }
        Some(_) => {}
    }
    let api_version = url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "api-version")
        .map(|(_, v)| v.into_owned());
    match api_version.as_deref() {
        Some(API_VERSION) => {}
        None => {
            return envelope(
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        }
        Some(other) => {
            return envelope(
                StatusCode::BAD_REQUEST,
                "InvalidApiVersionParameter",
                &format!(
                    "The api-version '{other}' is invalid. The supported versions are '{API_VERSION}'."
                ),
            );
        }
    }
    let (injected, retry_after) = {
        let mut inner = shared.lock();
        (inner.fail_next.pop_front(), inner.injected_retry_after)
    };
    if let Some(status) = injected {
        return failure(status, retry_after);
    }
    next.run(request).await
}

fn failure(status: StatusCode, retry_after: u64) -> Response {
    let mut response = envelope(
        status,
        if status == StatusCode::TOO_MANY_REQUESTS {
            "TooManyRequests"
        } else {
            "InternalServerError"
        },
        "Injected failure from the ARM test server.",
    );
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    }
    response
}

/// ARM's error envelope.
fn envelope(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// Automation's flat error body.
fn flat(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

async fn not_found() -> Response {
    envelope(
        StatusCode::NOT_FOUND,
        "NotFound",
        "The requested resource was not found.",
    )
}

/// A path outside the server's subscription, resource group or account.
struct WrongAccount {
    code: &'static str,
    message: &'static str,
}

impl IntoResponse for WrongAccount {
    fn into_response(self) -> Response {
        envelope(StatusCode::NOT_FOUND, self.code, self.message)
    }
}

/// The job name from the path, after checking the path names the server's account.
fn job_name(path: &HashMap<String, String>) -> Result<String, WrongAccount> {
    let is = |key: &str, value: &str| path.get(key).map(String::as_str) == Some(value);
    if !is("sub", SUBSCRIPTION) {
        return Err(WrongAccount {
            code: "SubscriptionNotFound",
            message: "The subscription could not be found.",
        });
    }
    if !is("rg", RESOURCE_GROUP) {
        return Err(WrongAccount {
            code: "ResourceGroupNotFound",
            message: "Resource group could not be found.",
        });
    }
    if !is("account", ACCOUNT) {
        return Err(WrongAccount {
            code: "ResourceNotFound",
            message: "The Resource 'Microsoft.Automation/automationAccounts' was not found.",
        });
    }
    Ok(path.get("job").cloned().unwrap_or_default())
}

/// A job as created now: `New`, or `Queued` when the account is at its concurrent-jobs limit.
fn new_job(
    inner: &mut Inner,
    name: &str,
    runbook: &str,
    params: BTreeMap<String, String>,
    script: Script,
) -> JobRecord {
    limits::settle(inner);
    let status = limits::first_status(inner);
    let now = OffsetDateTime::now_utc();
    inner.next_seq += 1;
    JobRecord {
        name: name.to_owned(),
        runbook: runbook.to_owned(),
        params,
        status: status.to_owned(),
        gets: 0,
        stop_requested: false,
        creation_time: now,
        start_time: None,
        end_time: None,
        admitted_at: (status == "New").then_some(now),
        duration: script.duration.map(|range| limits::pick(name, range)),
        seq: inner.next_seq,
        script,
        gets_since_stop: 0,
    }
}

fn rfc3339(t: Option<OffsetDateTime>) -> Value {
    t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .map_or(Value::Null, Value::String)
}

fn job_json(job: &JobRecord) -> Value {
    let ended = matches!(
        job.status.as_str(),
        "Completed" | "Failed" | "Stopped" | "Suspended"
    );
    json!({
        "id": format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Automation/automationAccounts/{ACCOUNT}/jobs/{}", job.name),
        "name": job.name,
        "type": "Microsoft.Automation/AutomationAccounts/Jobs",
        "properties": {
            "jobId": job.name,
            "runbook": {"name": job.runbook},
            "provisioningState": if ended { "Succeeded" } else { "Processing" },
            "status": job.status,
            "statusDetails": "None",
            "creationTime": rfc3339(Some(job.creation_time)),
            "startTime": rfc3339(job.start_time),
            "endTime": rfc3339(job.end_time),
            "lastStatusModifiedTime": rfc3339(Some(OffsetDateTime::now_utc())),
            "exception": if ended { job.script.exception.clone() } else { None },
            "parameters": job.params,
            "runOn": "",
        }
    })
}

async fn put_job(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let name = match job_name(&path) {
        Ok(name) => name,
        Err(wrong) => return wrong.into_response(),
    };
    let mut inner = shared.lock();
    *inner.puts.entry(name.clone()).or_default() += 1;
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return flat(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The request body is not valid JSON.",
        );
    };
    let props = &body["properties"];
    let Some(runbook) = props["runbook"]["name"].as_str() else {
        return flat(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "properties.runbook.name is required.",
        );
    };
    let mut params = BTreeMap::new();
    if let Some(map) = props["parameters"].as_object() {
        for (k, v) in map {
            let Some(v) = v.as_str() else {
                return flat(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("The value of parameter '{k}' must be a string."),
                );
            };
            params.insert(k.clone(), v.to_owned());
        }
    }
    if inner.jobs.contains_key(&name) {
        return flat(
            StatusCode::CONFLICT,
            "Conflict",
            &format!("Job with specified id already exists. Job id: {name}"),
        );
    }
    let Some(script) = inner.scripts.get(runbook).cloned() else {
        return flat(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("The Runbook '{runbook}' was not found in the Automation account."),
        );
    };
    if let Some((status, body)) = &script.refuse {
        return (*status, Json(body.clone())).into_response();
    }
    if let Some(refused) = limits::refuse_put(&mut inner, std::time::Instant::now()) {
        return refused;
    }
    let job = new_job(&mut inner, &name, runbook, params, script);
    let answer = job_json(&job);
    inner.jobs.insert(name, job);
    if let Some(status) = inner.fail_put_after_create.take() {
        return failure(status, 1);
    }
    (StatusCode::CREATED, Json(answer)).into_response()
}

async fn get_job(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<HashMap<String, String>>,
) -> Response {
    let name = match job_name(&path) {
        Ok(name) => name,
        Err(wrong) => return wrong.into_response(),
    };
    let mut inner = shared.lock();
    limits::settle(&mut inner);
    let Some(job) = inner.jobs.get_mut(&name) else {
        return flat(StatusCode::NOT_FOUND, "NotFound", "The job does not exist.");
    };
    advance(job);
    Json(job_json(job)).into_response()
}

/// Moves a job one poll along its script.
fn advance(job: &mut JobRecord) {
    let ended = matches!(
        job.status.as_str(),
        "Completed" | "Failed" | "Stopped" | "Suspended"
    );
    // A held-back job waits for a slot (`limits::settle`); its polls do not move it on.
    if ended {
        return;
    }
    if job.status == "Queued" {
        if job.stop_requested {
            job.status = "Stopped".to_owned();
            job.end_time = Some(OffsetDateTime::now_utc());
        }
        return;
    }
    job.gets += 1;
    let now = OffsetDateTime::now_utc();
    if job.duration.is_some() && !job.stop_requested {
        limits::timed(job, now);
        return;
    }
    let script = &job.script;
    let status = if job.stop_requested && !script.ignores_stop {
        job.gets_since_stop += 1;
        if job.gets_since_stop == 1 {
            "Stopping"
        } else {
            "Stopped"
        }
    } else if job.gets <= script.queued_polls {
        "New"
    } else if script.end == End::Never || job.gets <= script.queued_polls + script.running_polls {
        "Running"
    } else {
        script.end.status()
    };
    if status != "New" && job.start_time.is_none() {
        job.start_time = Some(now);
    }
    if matches!(status, "Completed" | "Failed" | "Stopped" | "Suspended") {
        job.end_time = Some(now);
    }
    job.status = status.to_owned();
}

async fn get_output(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<HashMap<String, String>>,
) -> Response {
    let name = match job_name(&path) {
        Ok(name) => name,
        Err(wrong) => return wrong.into_response(),
    };
    let inner = shared.lock();
    let Some(job) = inner.jobs.get(&name) else {
        return flat(StatusCode::NOT_FOUND, "NotFound", "The job does not exist.");
    };
    if job.script.output_forbidden {
        return envelope(
            StatusCode::FORBIDDEN,
            "AuthorizationFailed",
            &format!(
                "The client 'runner' with object id '11111111-2222-3333-4444-555555555555' does not have authorization to perform action 'Microsoft.Automation/automationAccounts/jobs/output/read' over scope '/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Automation/automationAccounts/{ACCOUNT}/jobs/{name}' or the scope is invalid."
            ),
        );
    }
    let body = match job.script.generated_output {
        Some(bytes) => Body::from_stream(generated_output(bytes)),
        None => Body::from(job.script.output.clone()),
    };
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// The lines of a generated output, the last one of exactly `line N of M` closing the stream.
pub fn generated_line(n: u64, total_lines: u64) -> String {
    format!("line {n:09} of {total_lines:09}\n")
}

/// `bytes` bytes (rounded down to whole lines) of [`generated_line`]s, made chunk by chunk.
fn generated_output(
    bytes: u64,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    let line_len = generated_line(0, 0).len() as u64;
    let total_lines = bytes / line_len;
    const LINES_PER_CHUNK: u64 = 4096;
    futures_util::stream::unfold(1u64, move |next| async move {
        if next > total_lines {
            return None;
        }
        let last = (next + LINES_PER_CHUNK - 1).min(total_lines);
        let mut chunk = Vec::with_capacity(((last - next + 1) * line_len) as usize);
        for n in next..=last {
            chunk.extend_from_slice(generated_line(n, total_lines).as_bytes());
        }
        Some((Ok(chunk), last + 1))
    })
}

/// The job's stream records: one Output record per output line, then the Error records.
fn records(job: &JobRecord) -> Vec<Value> {
    let base = job.creation_time;
    let ended = job.end_time.is_some();
    let shown = if job.script.growing_output && !ended {
        job.gets.saturating_sub(job.script.queued_polls) as usize
    } else {
        usize::MAX
    };
    let output = job
        .script
        .output
        .lines()
        .take(shown)
        .map(|l| ("Output", l.to_owned(), true));
    let errors = job
        .script
        .errors
        .iter()
        .map(|e| ("Error", e.clone(), !job.script.errors_without_summary));
    output
        .chain(errors)
        .enumerate()
        .map(|(i, (kind, text, with_summary))| {
            let id = format!("{}:{:020}", job.name, i + 1);
            let millis = i64::try_from(i).unwrap_or(0);
            json!({
                "id": format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Automation/automationAccounts/{ACCOUNT}/jobs/{}/streams/{id}", job.name),
                "properties": {
                    "jobStreamId": id,
                    "time": rfc3339(Some(base + time::Duration::milliseconds(millis))),
                    "streamType": kind,
                    "summary": if with_summary { Value::String(text.clone()) } else { Value::Null },
                    "streamText": text,
                    "value": if kind == "Error" { json!({"Exception": text}) } else { json!({}) },
                }
            })
        })
        .collect()
}

/// One page of an ARM list (`value`, and a `nextLink` with a `$skiptoken` while more are left;
/// `$filter` carried over), at `list` under `base`.
pub(super) fn page(
    base: &url::Url,
    list: &str,
    query: &HashMap<String, String>,
    page_size: usize,
    all: &[Value],
) -> Value {
    let skip: usize = query
        .get("$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let items: Vec<Value> = all.iter().skip(skip).take(page_size).cloned().collect();
    let mut answer = json!({ "value": items });
    if skip + page_size < all.len() {
        let mut next = base.join(list).expect("nextLink");
        {
            let mut pairs = next.query_pairs_mut();
            pairs.append_pair("api-version", API_VERSION);
            if let Some(filter) = query.get("$filter") {
                pairs.append_pair("$filter", filter);
            }
            pairs.append_pair("$skiptoken", &(skip + page_size).to_string());
        }
        answer["nextLink"] = Value::String(next.to_string());
    }
    answer
}

async fn list_streams(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let name = match job_name(&path) {
        Ok(name) => name,
        Err(wrong) => return wrong.into_response(),
    };
    let inner = shared.lock();
    let Some(job) = inner.jobs.get(&name) else {
        return flat(StatusCode::NOT_FOUND, "NotFound", "The job does not exist.");
    };
    let wanted = query.get("$filter").map(|f| {
        f.split("streamType eq '")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap_or("")
            .to_owned()
    });
    let all: Vec<Value> = records(job)
        .into_iter()
        .filter(|r| {
            wanted
                .as_deref()
                .is_none_or(|w| r["properties"]["streamType"].as_str() == Some(w))
        })
        // Lists carry no text, only the summary.
        .map(|mut r| {
            if let Some(props) = r["properties"].as_object_mut() {
                props.remove("streamText");
                props.remove("value");
            }
            r
        })
        .collect();
    let list = format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Automation/automationAccounts/{ACCOUNT}/jobs/{name}/streams"
    );
    let answer = page(&shared.base, &list, &query, inner.page_size, &all);
    Json(answer).into_response()
}

async fn get_stream(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<HashMap<String, String>>,
) -> Response {
    let name = match job_name(&path) {
        Ok(name) => name,
        Err(wrong) => return wrong.into_response(),
    };
    let inner = shared.lock();
    let Some(job) = inner.jobs.get(&name) else {
        return flat(StatusCode::NOT_FOUND, "NotFound", "The job does not exist.");
    };
    let wanted = path.get("stream").cloned().unwrap_or_default();
    match records(job)
        .into_iter()
        .find(|r| r["properties"]["jobStreamId"].as_str() == Some(wanted.as_str()))
    {
        Some(record) => Json(record).into_response(),
        None => flat(
            StatusCode::NOT_FOUND,
            "NotFound",
            "The job stream does not exist.",
        ),
    }
}

async fn stop_job(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<HashMap<String, String>>,
) -> Response {
    let name = match job_name(&path) {
        Ok(name) => name,
        Err(wrong) => return wrong.into_response(),
    };
    let mut inner = shared.lock();
    *inner.stops.entry(name.clone()).or_default() += 1;
    if inner.failing_stops > 0 {
        inner.failing_stops -= 1;
        return envelope(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The service is temporarily unavailable.",
        );
    }
    let Some(job) = inner.jobs.get_mut(&name) else {
        return flat(StatusCode::NOT_FOUND, "NotFound", "The job does not exist.");
    };
    job.stop_requested = true;
    StatusCode::OK.into_response()
}

/// The App Service / Container Apps identity endpoint (`IDENTITY_ENDPOINT`).
async fn msi_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let secret = headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok());
    if secret != Some(shared.identity_header.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"statusCode": 401, "message": "Unauthorized: missing or wrong X-IDENTITY-HEADER"})),
        )
            .into_response();
    }
    if query.get("api-version").map(String::as_str) != Some(MSI_API_VERSION) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"statusCode": 400, "message": "api-version must be 2019-08-01"})),
        )
            .into_response();
    }
    let Some(resource) = query.get("resource").filter(|r| !r.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"statusCode": 400, "message": "resource is required"})),
        )
            .into_response();
    };
    shared.lock().token_requests += 1;
    let expires_on = OffsetDateTime::now_utc().unix_timestamp() + 3600;
    Json(json!({
        "access_token": shared.token,
        "expires_on": expires_on.to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": query.get("client_id").cloned().unwrap_or_else(|| shared.client_id.clone()),
    }))
    .into_response()
}
