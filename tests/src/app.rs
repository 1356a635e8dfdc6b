//! `TestApp`: a real Azurite, an in-process ingress on a free port, and test servers for Slack
//! and Azure Resource Manager, with helpers to send signed commands and to run worker steps.
//!
//! Every test ends with [`TestApp::finish`], which fails the test when messages were left on the
//! job queue or the poison queue (unless the test took them); dropping a `TestApp` without it
//! fails the test too.

use crate::arm::{ArmServer, Script};
use crate::azurite::{self, Azurite};
use crate::counting::CountingStore;
use crate::process::{binary, running_as_root};
use crate::slack::SlackServer;
use chatops_ingress::app::{AppState, Application};
use chatops_ingress::slack::verify::{Verifier, sign};
use chatops_runner::executor::arm::{ArmClient, RetryPolicy};
use chatops_runner::executor::automation::{AutomationExecutor, PollSchedule};
use chatops_runner::executor::local::LocalExecutor;
use chatops_runner::notify::Notifier;
use chatops_runner::notify::bot::{BotNotifier, BotSettings};
use chatops_runner::notify::slack::{SlackNotifier, SlackNotifierConfig};
use chatops_runner::worker::{Executors, Step, Worker, WorkerSettings};
use chatops_shared::audit::{AuditEvent, AuditLog, AuditWriter, DEFAULT_AUDIT_CONTAINER};
use chatops_shared::blob::BlobStore;
use chatops_shared::catalog::{Catalog, LiveCatalog};
use chatops_shared::job::{JobKey, JobKeys, JobMessage};
use chatops_shared::queue::azure::{AzureJobQueue, QueueSettings, QueueTarget, RetryBudget};
use chatops_shared::queue::connection::ConnectionString;
use chatops_shared::queue::{JobQueue, PoisonRecord, Received};
use chatops_shared::records::{DEFAULT_RECORDS_CONTAINER, DEFAULT_RETENTION_DAYS, Records};
use chatops_shared::secret::Secret;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const SIGNING_SECRET: &str = "e2e-signing-secret";
/// The writer id of the test ingress's audit lines.
const INGRESS_AUDIT_WRITER: &str = "e2e-ingress";
/// Allowed to run everything in the test catalog.
pub const ALICE: &str = "UALICE";
/// Allowed nowhere.
pub const BOB: &str = "UBOB";
/// May stop anyone's `deploy` jobs (its `stop_allow`), and run nothing.
pub const OPS_LEAD: &str = "UOPSLEAD";
/// The channel `restart-web` and `deploy` are limited to.
pub const OPS: &str = "COPS";
pub const RANDOM: &str = "CRANDOM";

/// The catalog every `TestApp` uses. `{dir}` is replaced by the temp dir holding the scripts.
const CATALOG: &str = r#"
[runbooks.echo]
description = "Prints its arguments and environment"
executor = "local"
target = "echo.sh"
timeout = "30s"
params = [
  { name = "first", required = true },
  { name = "second", default = "two" },
]
allow = { users = ["UALICE"] }

[runbooks.deploy]
description = "Deploys"
executor = "local"
target = "echo.sh"
params = [
  { name = "service", required = true, choices = ["web", "api"] },
  { name = "env", required = true, choices = ["dev", "prod"] },
]
allow = { users = ["UALICE"], channels = ["COPS"] }
stop_allow = { users = ["UOPSLEAD"] }

[runbooks.fail]
description = "Fails"
executor = "local"
target = "fail.sh"
allow = { users = ["UALICE"] }

[runbooks.slow]
description = "Runs past its timeout"
executor = "local"
target = "slow.sh"
timeout = "1s"
allow = { users = ["UALICE"] }

[runbooks.record]
description = "Appends its job id to a file, after a pause"
executor = "local"
target = "record.sh"
params = [ { name = "n", required = true }, { name = "pause", default = "0" } ]
allow = { users = ["UALICE"] }

[runbooks.restart-web]
description = "Restart the web tier"
executor = "automation"
target = "Restart-WebApp"
timeout = "30m"
params = [
  { name = "env", required = true, choices = ["dev", "prod"] },
  { name = "count", default = "1" },
]
allow = { users = ["UALICE"], channels = ["COPS"] }

[runbooks.scale]
description = "Typed parameters: an int within a range, and a value the catalog fixes"
executor = "local"
target = "echo.sh"
params = [
  { name = "count", type = "int", min = 1, max = 10, required = true },
  { name = "group", fixed = "rg-prod" },
]
allow = { users = ["UALICE"] }

[runbooks.broken]
description = "Names an Automation runbook that does not exist"
executor = "automation"
target = "No-Such-Runbook"
allow = { users = ["UALICE"] }
"#;

/// What [`TestApp::spawn_opts`] varies.
#[derive(Debug, Default)]
pub struct Options {
    /// The workspaces the ingress serves (all by default).
    pub workspaces: chatops_shared::workspaces::Workspaces,
    /// The ingress has a bot token for the Slack double's Web API (`SLACK_BOT_TOKEN`).
    pub bot: bool,
    /// Catalog text added after the test catalog (more runbooks).
    pub extra_runbooks: &'static str,
}

pub struct TestApp {
    pub azurite: Azurite,
    pub slack: SlackServer,
    pub arm: ArmServer,
    pub queue_name: String,
    pub queue: Arc<dyn JobQueue>,
    /// The same queue, for what only the Azure implementation offers (message counts).
    pub azure_queue: Arc<AzureJobQueue>,
    /// The poison queue, read as a queue of its own.
    pub poison: Arc<dyn JobQueue>,
    /// The catalog as the app started with it.
    pub catalog: Arc<Catalog>,
    /// The catalog in force for the in-process ingress and the workers: `reload()` it after
    /// rewriting `dir/runbooks.toml`.
    pub live_catalog: Arc<LiveCatalog>,
    /// The job signing key this app's ingress and runners share, generated per app.
    pub job_keys: JobKeys,
    pub dir: PathBuf,
    pub ingress_url: String,
    pub client: reqwest::Client,
    /// The ingress's records store (the default container, as [`TestApp::records`]), counting
    /// its calls: storage round trips of job-control answers.
    pub records_calls: Arc<CountingStore>,
    /// The ingress's audit writer, on this Azurite's audit container ([`TestApp::audit_events`]).
    _audit_writer: AuditWriter,
    /// Audit lines of the ingress already returned by [`TestApp::audit_events`].
    audit_seen: std::sync::Mutex<usize>,
    ingress: tokio::task::JoinHandle<()>,
    finished: bool,
}

/// The answer the ingress gave a command.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
    pub fn text(&self) -> String {
        self.json()["text"].as_str().unwrap_or_default().to_owned()
    }
    pub fn response_type(&self) -> String {
        self.json()["response_type"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(Default::default()).await
    }

    /// Like [`TestApp::spawn`], with an ingress that serves only these workspaces.
    pub async fn spawn_with(workspaces: chatops_shared::workspaces::Workspaces) -> TestApp {
        Self::spawn_opts(Options {
            workspaces,
            ..Options::default()
        })
        .await
    }

    /// An app as `options` say (see [`Options`]).
    pub async fn spawn_opts(options: Options) -> TestApp {
        let Options {
            workspaces,
            bot,
            extra_runbooks,
        } = options;
        init_test_log();
        let azurite = Azurite::start().await;
        let slack = SlackServer::start().await;
        let arm = ArmServer::start().await;
        arm.script(
            "Restart-WebApp",
            Script::completes("Restart-WebApp: restarted 2 of 2 instances").polls(1, 2),
        );
        let queue_name = azurite::unique_queue_name("e2e").await;
        let azure_queue = azure_queue_for(&azurite, &queue_name, RetryBudget::interactive());
        let queue: Arc<dyn JobQueue> = azure_queue.clone();
        let poison = queue_for(
            &azurite,
            &format!("{queue_name}-poison"),
            RetryBudget::interactive(),
        );
        queue.ensure_exists().await.expect("create queues");
        azurite::blob_store_for(
            &azurite,
            DEFAULT_RECORDS_CONTAINER,
            RetryBudget::interactive(),
        )
        .ensure_container()
        .await
        .expect("create the records container");

        let dir =
            std::env::temp_dir().join(format!("chatops-e2e-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        write_scripts(&dir);
        let catalog_path = dir.join("runbooks.toml");
        std::fs::write(&catalog_path, format!("{CATALOG}{extra_runbooks}")).expect("write catalog");
        let catalog = Catalog::load(&catalog_path).expect("test catalog loads");
        let live_catalog = Arc::new(LiveCatalog::new(catalog.clone()));

        let job_keys = JobKeys::new(JobKey::generate().expect("job key"), None);
        // The ingress reads records as it does in production: interactive budget; counted.
        let records_calls = Arc::new(CountingStore::new(Arc::new(azurite::blob_store_for(
            &azurite,
            DEFAULT_RECORDS_CONTAINER,
            RetryBudget::interactive(),
        ))));
        let records = Records::new(records_calls.clone(), DEFAULT_RETENTION_DAYS);
        let audit_store = TestApp::audit_store_on(&azurite);
        audit_store
            .ensure_container()
            .await
            .expect("create the audit container");
        let (audit_log, audit_writer) = AuditLog::new(audit_store, INGRESS_AUDIT_WRITER.to_owned());
        let state = AppState::new(
            Verifier::new(vec![Secret::new(SIGNING_SECRET)]),
            live_catalog.clone(),
            queue.clone(),
            job_keys.current().clone(),
            records,
            audit_log,
        )
        .with_workspaces(workspaces)
        .with_slack_api(bot.then(|| slack.api_client()));
        let app = Application::with_state("127.0.0.1:0".parse().expect("addr"), state)
            .await
            .expect("bind ingress");
        let ingress_url = format!("http://{}", app.local_addr().expect("addr"));
        let ingress = tokio::spawn(async move {
            let _ = app.run_until_stopped(std::future::pending()).await;
        });
        TestApp {
            azurite,
            slack,
            arm,
            queue_name,
            queue,
            azure_queue,
            poison,
            catalog: Arc::new(catalog),
            live_catalog,
            job_keys,
            dir,
            ingress_url,
            client: reqwest::Client::new(),
            records_calls,
            _audit_writer: audit_writer,
            audit_seen: std::sync::Mutex::new(0),
            ingress,
            finished: false,
        }
    }

    /// Posts a slash command as Slack would: signed, now, from `user` in `channel`.
    pub async fn command(&self, user: &str, channel: &str, text: &str) -> Answer {
        let body = self.form(user, channel, text);
        self.post_signed(body, time::OffsetDateTime::now_utc().unix_timestamp())
            .await
    }

    /// A signed command carrying a trigger the Slack double takes (once, for 3 s), as Slack
    /// sends one: what a form needs.
    pub async fn command_with_trigger(&self, user: &str, channel: &str, text: &str) -> Answer {
        let body = self.form(user, channel, text).replace(
            "trigger_id=1.2.3",
            &format!("trigger_id={}", self.slack.trigger_id()),
        );
        self.post_signed(body, time::OffsetDateTime::now_utc().unix_timestamp())
            .await
    }

    /// The form body Slack would send, with a fresh response_url on the Slack test server.
    /// Adds local runbook `name` (for Alice), running `script`, written executable as
    /// `<name>.sh` beside the catalog; the catalog is reloaded (the in-process ingress and
    /// workers use it at once, runner processes started after this read it).
    pub fn add_script_runbook(&self, name: &str, description: &str, script: &str) {
        let path = self.dir.join(format!("{name}.sh"));
        std::fs::write(&path, script).expect("write script");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let catalog = self.dir.join("runbooks.toml");
        let mut text = std::fs::read_to_string(&catalog).expect("read catalog");
        text.push_str(&format!(
            "\n[runbooks.{name}]\ndescription = \"{description}\"\nexecutor = \"local\"\ntarget = \"{name}.sh\"\nallow = {{ users = [\"UALICE\"] }}\n"
        ));
        std::fs::write(&catalog, text).expect("write catalog");
        self.live_catalog.reload().expect("the new catalog loads");
    }

    pub fn form(&self, user: &str, channel: &str, text: &str) -> String {
        let pairs = [
            ("token", "unused"),
            ("team_id", "T0TEST"),
            ("team_domain", "test"),
            ("channel_id", channel),
            ("channel_name", "ops"),
            ("user_id", user),
            ("user_name", "alice"),
            ("command", "/runbook"),
            ("text", text),
            ("response_url", &self.slack.response_url()),
            ("trigger_id", "1.2.3"),
            ("api_app_id", "A0TEST"),
        ];
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }

    /// Posts a signed slash command form to the ingress process at `addr` (a binary started
    /// with [`TestApp::service_env`]); returns its JSON answer.
    pub async fn command_to(&self, addr: &str, body: String) -> serde_json::Value {
        let ts = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = sign(SIGNING_SECRET, ts, body.as_bytes());
        self.client
            .post(format!("http://{addr}/slack/commands"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", ts.to_string())
            .header("x-slack-signature", signature)
            .body(body)
            .send()
            .await
            .expect("ingress answers")
            .json()
            .await
            .expect("JSON answer")
    }

    pub async fn post_signed(&self, body: String, timestamp: i64) -> Answer {
        let signature = sign(SIGNING_SECRET, timestamp, body.as_bytes());
        self.post_raw(body, Some(timestamp.to_string()), Some(signature))
            .await
    }

    pub async fn post_raw(
        &self,
        body: String,
        timestamp: Option<String>,
        signature: Option<String>,
    ) -> Answer {
        let mut request = self
            .client
            .post(format!("{}/slack/commands", self.ingress_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(ts) = timestamp {
            request = request.header("x-slack-request-timestamp", ts);
        }
        if let Some(sig) = signature {
            request = request.header("x-slack-signature", sig);
        }
        let response = request.send().await.expect("ingress answers");
        Answer {
            status: response.status().as_u16(),
            body: response.text().await.unwrap_or_default(),
        }
    }

    /// A worker like the runner's, wired to this app's queue, Slack and ARM test servers.
    pub fn worker(&self) -> Worker {
        self.worker_with(self.worker_settings())
    }

    pub fn worker_settings(&self) -> WorkerSettings {
        WorkerSettings {
            visibility: Duration::from_secs(5),
            max_dequeue: 5,
            concurrency: 4,
            max_idle_poll: Duration::from_millis(200),
            final_notify_patience: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(5),
            max_job_age: Duration::from_secs(3600),
            runner_id: chatops_runner::worker::new_runner_id(),
            record_poll: Duration::from_millis(300),
            output_keep: chatops_runner::worker::DEFAULT_OUTPUT_KEEP,
            workspaces: Default::default(),
        }
    }

    /// The job records, in this app's Azurite (the default container).
    pub fn records(&self) -> Records {
        Records::new(
            self.blob_store(DEFAULT_RECORDS_CONTAINER),
            DEFAULT_RETENTION_DAYS,
        )
    }

    pub fn worker_with(&self, settings: WorkerSettings) -> Worker {
        self.worker_on(self.runner_queue(), settings)
    }

    /// The job queue as a runner opens it (the runner's retry budget), for tests that wrap it.
    pub fn runner_queue(&self) -> Arc<dyn JobQueue> {
        queue_for(&self.azurite, &self.queue_name, RetryBudget::background())
    }

    /// A worker like [`TestApp::worker_with`] that reaches the queue through `queue`.
    /// Each worker is a runner of its own in the job records (a fresh `runner_id`), as each
    /// runner process is, whatever settings it is given.
    pub fn worker_on(&self, queue: Arc<dyn JobQueue>, settings: WorkerSettings) -> Worker {
        self.worker_on_records(queue, self.records(), settings)
    }

    /// A worker like [`TestApp::worker_with`] whose job records are `records` (e.g. counted).
    pub fn worker_on_records(
        &self,
        queue: Arc<dyn JobQueue>,
        records: Records,
        settings: WorkerSettings,
    ) -> Worker {
        let notifier = Arc::new(self.notifier());
        self.assemble(queue, records, self.executors(), notifier, settings)
    }

    /// A worker of these parts and this app's catalog and job keys, a runner of its own in the
    /// job records (a fresh `runner_id`), as each runner process is.
    fn assemble(
        &self,
        queue: Arc<dyn JobQueue>,
        records: Records,
        executors: Executors,
        notifier: Arc<dyn Notifier>,
        mut settings: WorkerSettings,
    ) -> Worker {
        settings.runner_id = chatops_runner::worker::new_runner_id();
        Worker::new(
            queue,
            records,
            self.live_catalog.clone(),
            self.job_keys.clone(),
            executors,
            notifier,
            settings,
        )
    }

    pub fn executors(&self) -> Executors {
        // Quick retries, so that tests of ARM failures do not wait for production backoffs.
        let retry = RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            max_retry_after: Duration::from_secs(2),
        };
        let client = ArmClient::new(&self.arm.config(), self.arm.credential())
            .expect("arm client")
            .with_retry(retry);
        Executors {
            automation: Some(Arc::new(
                AutomationExecutor::new(Arc::new(client))
                    .with_poll(PollSchedule::fixed(Duration::from_millis(30))),
            )),
            // Scripts start through the real supervisor, as the runner's user (no switch).
            local: Arc::new(LocalExecutor::new().with_supervisor(binary("chatops-runner"))),
        }
    }

    /// Executors like [`TestApp::executors`] whose ARM client paces its reads with `budget`,
    /// as a runner process does (`CHATOPS_ARM_READS_PER_SECOND`), polling every `poll`.
    pub fn executors_paced(
        &self,
        budget: Arc<chatops_runner::executor::arm::ReadBudget>,
        poll: Duration,
    ) -> Executors {
        let retry = RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            max_retry_after: Duration::from_secs(2),
        };
        let client = ArmClient::new(&self.arm.config(), self.arm.credential())
            .expect("arm client")
            .with_retry(retry)
            .with_budget(budget);
        Executors {
            automation: Some(Arc::new(
                AutomationExecutor::new(Arc::new(client)).with_poll(PollSchedule::fixed(poll)),
            )),
            local: Arc::new(LocalExecutor::new().with_supervisor(binary("chatops-runner"))),
        }
    }

    /// A worker with these executors, reporting through `notifier`.
    pub fn worker_using(
        &self,
        executors: Executors,
        settings: WorkerSettings,
        notifier: Arc<dyn Notifier>,
    ) -> Worker {
        self.assemble(
            self.runner_queue(),
            self.records(),
            executors,
            notifier,
            settings,
        )
    }

    pub fn notifier(&self) -> SlackNotifier {
        SlackNotifier::new(SlackNotifierConfig {
            webhook_url: Some(Secret::new(self.slack.webhook_url())),
            response_url_prefix: self.slack.base_url(),
        })
        .expect("notifier")
    }

    /// A bot-path notifier (`SLACK_BOT_TOKEN`) on the Slack double's Web API, falling back to
    /// [`TestApp::notifier`]; `settings` without an Automation account get this app's.
    pub fn bot_notifier(&self, mut settings: BotSettings) -> BotNotifier {
        if settings.automation_account.is_none() {
            let arm = self.arm.config();
            settings.automation_account = Some(format!(
                "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Automation/automationAccounts/{}",
                arm.subscription_id, arm.resource_group, arm.account
            ));
        }
        BotNotifier::new(
            self.slack.api_client(),
            self.records(),
            self.notifier(),
            settings,
        )
    }

    /// A worker like [`TestApp::worker_with`] that reports through `notifier`.
    pub fn worker_notifying(
        &self,
        settings: WorkerSettings,
        notifier: Arc<dyn Notifier>,
    ) -> Worker {
        self.worker_using(self.executors(), settings, notifier)
    }

    /// `n` runners, each a worker running its polling loop, as `chatops-runner` processes do.
    pub fn spawn_runners(&self, n: usize, settings: WorkerSettings) -> Runners {
        self.spawn_workers((0..n).map(|_| self.worker_with(settings.clone())).collect())
    }

    /// Each worker running its polling loop, as a `chatops-runner` process does.
    pub fn spawn_workers(&self, workers: Vec<Worker>) -> Runners {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let handles = workers
            .into_iter()
            .map(|worker| {
                let mut stopped = stopped.clone();
                tokio::spawn(worker.run_until_stopped(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                }))
            })
            .collect();
        Runners { stop, handles }
    }

    /// Runs worker steps until the queue is empty; returns how many messages were processed.
    pub async fn drain(&self, worker: &Worker) -> usize {
        let mut processed = 0;
        loop {
            match worker.process_next().await.expect("queue answers") {
                Step::Processed => processed += 1,
                Step::Empty => return processed,
            }
        }
    }

    /// Runs worker steps (pausing while no message is visible) until `done` holds; fails the
    /// test with `what` after `within`.
    pub async fn process_until(
        &self,
        worker: &Worker,
        within: Duration,
        what: &str,
        done: impl Fn() -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + within;
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            if worker.process_next().await != Ok(Step::Processed) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// After a runner died holding a message: runs worker steps until that message has come
    /// back (when the invisibility of its last extension ends) and been processed, then until
    /// the queue is empty; returns how many messages were processed. Waiting for the message
    /// itself, not a fixed time: an extension sent just before the runner died may still reach
    /// a loaded Azurite after it.
    pub async fn drain_after_crash(&self, worker: &Worker) -> usize {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match worker.process_next().await.expect("queue answers") {
                Step::Processed => return 1 + self.drain(worker).await,
                Step::Empty => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "the dead runner's message never came back"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// The job messages now on the queue (taken for a second, then left to come back).
    pub async fn peek_jobs(&self) -> Vec<JobMessage> {
        let taken = self
            .queue
            .receive(32, Duration::from_secs(1))
            .await
            .expect("receive");
        let jobs = taken
            .iter()
            .filter_map(|m| JobMessage::decode(&m.text, &self.job_keys).ok())
            .collect();
        for m in &taken {
            // Make them visible again at once.
            let _ = self.queue.extend(m, Duration::ZERO).await;
        }
        jobs
    }

    /// Takes every message on the job queue, decoded (each one's `mac` verified).
    pub async fn take_jobs(&self) -> Vec<JobMessage> {
        let mut jobs = Vec::new();
        loop {
            let taken = self
                .queue
                .receive(32, Duration::from_secs(30))
                .await
                .expect("receive");
            if taken.is_empty() {
                return jobs;
            }
            for m in taken {
                jobs.push(self.decode(&m.text));
                self.queue.delete(&m).await.expect("delete");
            }
        }
    }

    /// Takes every message on the poison queue.
    pub async fn take_poison(&self) -> Vec<PoisonRecord> {
        let mut records = Vec::new();
        loop {
            let taken = self
                .poison
                .receive(32, Duration::from_secs(30))
                .await
                .expect("receive poison");
            if taken.is_empty() {
                return records;
            }
            for m in taken {
                records.push(PoisonRecord::decode(&m.text).expect("poison record decodes"));
                self.poison.delete(&m).await.expect("delete poison");
            }
        }
    }

    /// The queue text of `job` as this app's ingress writes it: signed with its key.
    pub fn queue_text(&self, job: &JobMessage) -> String {
        job.encode(self.job_keys.current())
    }

    /// Reads a message as this app's runners do (its `mac` checked).
    pub fn decode(&self, text: &str) -> JobMessage {
        JobMessage::decode(text, &self.job_keys).expect("a job message signed with this app's key")
    }

    /// Puts a raw message on the job queue, as a foreign writer could.
    pub async fn put_raw(&self, text: &str) {
        self.queue.send(text).await.expect("send");
    }

    /// A run message for `runbook` with `params`, from Alice in #ops with a `response_url` on
    /// the Slack double, as the ingress would queue it (a fresh job id, no catalog version):
    /// for tests that write jobs straight to the queue.
    pub fn run_message(&self, runbook: &str, params: &[(&str, &str)]) -> JobMessage {
        JobMessage {
            schema: chatops_shared::job::SCHEMA_VERSION,
            job_id: uuid::Uuid::new_v4(),
            kind: chatops_shared::job::JobKind::Run,
            runbook: runbook.into(),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            user_id: ALICE.into(),
            user_name: "alice".into(),
            team_id: "T0TEST".into(),
            channel_id: OPS.into(),
            channel_name: None,
            response_url: Some(Secret::new(self.slack.response_url())),
            requested_at: time::OffsetDateTime::now_utc(),
            enterprise_id: None,
            traceparent: None,
            started_at: None,
            record_day: None,
            target: None,
            rerun_of: None,
            catalog_version: None,
            secret_params: Vec::new(),
        }
    }

    /// Fails when anything is left on the job or the poison queue.
    pub async fn finish(mut self) {
        self.finished = true;
        let left: Vec<Received> = self
            .queue
            .receive(32, Duration::from_secs(1))
            .await
            .expect("receive");
        assert!(
            left.is_empty(),
            "{} message(s) left on the job queue",
            left.len()
        );
        let poison: Vec<Received> = self
            .poison
            .receive(32, Duration::from_secs(1))
            .await
            .expect("receive");
        assert!(
            poison.is_empty(),
            "{} message(s) left on the poison queue",
            poison.len()
        );
        // Messages someone took and neither deleted nor handed back are invisible: count them.
        for poison in [false, true] {
            let n = self
                .azure_queue
                .approximate_len(poison)
                .await
                .expect("queue properties");
            let which = if poison { "poison" } else { "job" };
            assert_eq!(n, 0, "{n} message(s) left invisible on the {which} queue");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.ingress.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
        if !self.finished && !std::thread::panicking() {
            panic!(
                "TestApp dropped without finish(): call app.finish().await to check no message was left behind"
            );
        }
    }
}

/// Runners started by [`TestApp::spawn_runners`].
pub struct Runners {
    stop: tokio::sync::watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Runners {
    /// Signals shutdown and waits for every runner to stop.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for handle in self.handles {
            handle.await.expect("runner stops");
        }
    }
}

/// An `AzureJobQueue` on this Azurite.
pub fn queue_for(azurite: &Azurite, name: &str, budget: RetryBudget) -> Arc<dyn JobQueue> {
    azure_queue_for(azurite, name, budget)
}

fn azure_queue_for(azurite: &Azurite, name: &str, budget: RetryBudget) -> Arc<AzureJobQueue> {
    let settings = QueueSettings {
        target: QueueTarget::ConnectionString(
            azurite
                .connection_string()
                .parse::<ConnectionString>()
                .expect("connection string"),
        ),
        name: name.to_owned(),
        budget,
    };
    Arc::new(AzureJobQueue::new(settings, None).expect("queue"))
}

fn write_scripts(dir: &Path) {
    let record_file = dir.join("record.log");
    let scripts = [
        (
            "echo.sh",
            "#!/bin/sh\necho \"args: $*\"\nenv | sort | grep -v '^_=' | sed 's/^/env: /'\n"
                .to_owned(),
        ),
        (
            "fail.sh",
            "#!/bin/sh\necho 'starting'\necho 'boom: disk full' >&2\nexit 3\n".to_owned(),
        ),
        (
            "slow.sh",
            "#!/bin/sh\necho 'sleeping'\nsleep 30\necho 'woke up'\n".to_owned(),
        ),
        (
            "record.sh",
            format!(
                "#!/bin/sh\necho \"$CHATOPS_JOB_ID $1\" >> '{}'\nsleep \"$2\"\necho \"$CHATOPS_JOB_ID $1\" >> '{}'\necho recorded\n",
                dir.join("started.log").display(),
                record_file.display()
            ),
        ),
    ];
    for (name, text) in scripts {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write script");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

/// Logs go to the test output only when `TEST_LOG` is set.
pub fn init_test_log() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_test_writer()
            .try_init();
    }
}

impl TestApp {
    /// Waits until a `record … pause=…` job's script has started (it writes `started.log`).
    pub async fn wait_for_script_start(&self) {
        let started = self.dir.join("started.log");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !started.exists() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the script never started"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// For tests that took the queue down on purpose: skips the left-behind check.
    pub fn forget_queue(mut self) {
        self.finished = true;
    }

    /// Waits until Slack received a message for `job_short_id` that contains `needle`.
    pub async fn wait_for_slack(
        &self,
        job_short_id: &str,
        needle: &str,
    ) -> Vec<crate::slack::Message> {
        let id = job_short_id.to_owned();
        let needle = needle.to_owned();
        self.slack
            .wait_for(
                move |all| {
                    all.iter()
                        .any(|m| m.text().contains(&id) && m.text().contains(&needle))
                },
                Duration::from_secs(20),
            )
            .await
            .into_iter()
            .filter(|m| m.text().contains(job_short_id))
            .collect()
    }

    /// How many Slack messages so far name the job and contain `needle`.
    pub fn slack_count(&self, job_short_id: &str, needle: &str) -> usize {
        self.slack
            .messages()
            .iter()
            .filter(|m| m.text().contains(job_short_id) && m.text().contains(needle))
            .count()
    }

    /// The text of the last Slack message for a job, once one contains `needle`.
    pub async fn final_text(&self, job_short_id: &str, needle: &str) -> String {
        self.wait_for_slack(job_short_id, needle)
            .await
            .last()
            .map(|m| m.text().to_owned())
            .unwrap_or_default()
    }

    /// A blob store on `container` of this app's Azurite (runner budget); call
    /// `ensure_container` before use.
    pub fn blob_store(&self, container: &str) -> Arc<dyn chatops_shared::blob::BlobStore> {
        Arc::new(azurite::blob_store_for(
            &self.azurite,
            container,
            RetryBudget::background(),
        ))
    }

    /// The environment a service binary needs to join this app: same queue, catalog and Slack.
    pub fn service_env(&self) -> Vec<(String, String)> {
        [
            (
                "AZURE_STORAGE_CONNECTION_STRING",
                self.azurite.connection_string(),
            ),
            ("CHATOPS_QUEUE_NAME", self.queue_name.clone()),
            (
                "CHATOPS_CATALOG",
                self.dir.join("runbooks.toml").display().to_string(),
            ),
            ("CHATOPS_SLACK_RESPONSE_URL_PREFIX", self.slack.base_url()),
            ("SLACK_SIGNING_SECRET", SIGNING_SECRET.to_owned()),
            ("SLACK_API_BASE_URL", self.slack.api_base_url()),
            (
                "CHATOPS_JOB_SIGNING_KEY",
                self.job_keys.current().to_base64(),
            ),
            ("CHATOPS_INGRESS_ADDR", "127.0.0.1:0".to_owned()),
            ("CHATOPS_RUNNER_ADDR", "127.0.0.1:0".to_owned()),
            ("CHATOPS_METRICS_ADDR", "127.0.0.1:0".to_owned()),
        ]
        .into_iter()
        // A root runner with local runbooks must say who scripts run as; these tests accept root.
        .chain(running_as_root().then(|| ("CHATOPS_SCRIPT_USER", "root".to_owned())))
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn audit_store_on(azurite: &Azurite) -> Arc<dyn BlobStore> {
        Arc::new(azurite::blob_store_for(
            azurite,
            DEFAULT_AUDIT_CONTAINER,
            RetryBudget::interactive(),
        ))
    }

    /// The audit events the ingress wrote since the last call, oldest first, read back from its
    /// audit blob: once at least `expected` new ones are there (the writer appends in the
    /// background), or after 10 s; with `expected` 0, after a moment for lines still on their way.
    pub async fn audit_events(&self, expected: usize) -> Vec<AuditEvent> {
        let store = TestApp::audit_store_on(&self.azurite);
        let seen = *self.audit_seen.lock().expect("audit lock");
        let deadline = tokio::time::Instant::now()
            + if expected == 0 {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(10)
            };
        loop {
            let mut lines = Vec::new();
            let listed = store.list("", None).await.expect("list audit blobs");
            for blob in listed
                .blobs
                .iter()
                .filter(|b| b.name.contains(INGRESS_AUDIT_WRITER))
            {
                let body = store.read(&blob.name).await.expect("read").map(|b| b.body);
                for line in body.unwrap_or_default().split(|b| *b == b'\n') {
                    if !line.is_empty() {
                        lines.push(serde_json::from_slice::<AuditEvent>(line).expect("an event"));
                    }
                }
            }
            let new = lines.split_off(seen.min(lines.len()));
            let done = tokio::time::Instant::now() >= deadline;
            if (expected > 0 && new.len() >= expected) || done {
                *self.audit_seen.lock().expect("audit lock") = seen + new.len();
                return new;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The job id named in an in-channel acknowledgement.
    pub fn short_id(answer: &Answer) -> String {
        let text = answer.text();
        text.rsplit("job `")
            .next()
            .and_then(|s| s.split('`').next())
            .unwrap_or_default()
            .to_owned()
    }
}

/// Posts `body` signed to `path` at `addr` over a plain connection, sending the headers and
/// the first half of the body, then the rest after `pause`. The answer's status, and how long
/// it took from the first byte sent.
pub async fn post_slowly(addr: &str, path: &str, body: &str, pause: Duration) -> (u16, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = sign(SIGNING_SECRET, timestamp, body.as_bytes());
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let started = std::time::Instant::now();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-www-form-urlencoded\r\nx-slack-request-timestamp: {timestamp}\r\nx-slack-signature: {signature}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(body.len() / 2);
    stream.write_all(head.as_bytes()).await.expect("send");
    stream.write_all(first.as_bytes()).await.expect("send");
    tokio::time::sleep(pause).await;
    stream.write_all(rest.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("answer");
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, took)
}
