//! Job control from chat end to end: `status`, `history`, `stop` and `rerun` over signed
//! requests to the real router, answered from job records in a real Azurite's blob service,
//! with stops and reruns put on its real queue.
//!
//! Records are written here as the runner writes them (body and listing metadata); the
//! ingress's calls to the records store are counted ([`chatops_e2e::counting`]) to hold
//! `status` and `history` to a few round trips whatever the number of records.

// Test code: a failed step should stop the test with its message.
#![allow(clippy::expect_used)]

use chatops_e2e::app::{ALICE, BOB, OPS, OPS_LEAD, RANDOM, TestApp};
use chatops_shared::audit::AuditEvent;
use chatops_shared::blob::BlobStore;
use chatops_shared::job::{JobKind, JobMessage, SCHEMA_VERSION, short_id};
use chatops_shared::records::{JobRecord, JobState, record_name};
use chatops_shared::secret::Secret;
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// Runs jobs only in a channel nobody else is in.
const CAROL: &str = "UCAROL";
const SECRET: &str = "CSECRET";

/// One record to write.
#[derive(Clone)]
struct Seed {
    id: Uuid,
    user: &'static str,
    channel: &'static str,
    runbook: &'static str,
    params: Vec<(&'static str, &'static str)>,
    state: JobState,
    requested_at: OffsetDateTime,
}

impl Seed {
    fn new(
        user: &'static str,
        channel: &'static str,
        state: JobState,
        requested_at: OffsetDateTime,
    ) -> Self {
        Seed {
            id: Uuid::new_v4(),
            user,
            channel,
            runbook: "echo",
            params: vec![("first", "one")],
            state,
            // Listings carry whole seconds.
            requested_at: requested_at.replace_nanosecond(0).expect("0 ns"),
        }
    }

    fn runbook(mut self, runbook: &'static str, params: &[(&'static str, &'static str)]) -> Self {
        self.runbook = runbook;
        self.params = params.to_vec();
        self
    }

    fn short(&self) -> String {
        short_id(&self.id)
    }

    fn visible_to(&self, user: &str, channel: &str) -> bool {
        self.user == user || self.channel == channel
    }

    /// The record as a runner would have written it by now.
    fn record(&self) -> JobRecord {
        let job = JobMessage {
            schema: SCHEMA_VERSION,
            job_id: self.id,
            kind: JobKind::Run,
            runbook: self.runbook.to_owned(),
            params: self
                .params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            user_id: self.user.to_owned(),
            user_name: self.user.to_lowercase(),
            team_id: "T0TEST".into(),
            channel_id: self.channel.to_owned(),
            channel_name: None,
            response_url: Some(Secret::new("https://hooks.slack.com/commands/T0TEST/1/x")),
            requested_at: self.requested_at,
            enterprise_id: None,
            traceparent: None,
            started_at: None,
            record_day: Some(self.requested_at.date()),
            target: None,
            rerun_of: None,
            catalog_version: None,
            secret_params: Vec::new(),
        };
        let mut record = JobRecord::new(&job, "seed-runner", self.requested_at);
        if self.state != JobState::Pending {
            let started = self.requested_at + Duration::from_secs(1);
            record.started_at = Some(started);
            record.set_state(JobState::Running, "seed-runner", started, None);
        }
        if self.state.is_final() {
            record.set_output_tail(&format!("output of {}\n", self.id));
            record.set_state(
                self.state,
                "seed-runner",
                self.requested_at + Duration::from_secs(42),
                None,
            );
        }
        record
    }
}

/// Writes the records (many at once), as the runner writes them.
async fn write(app: &TestApp, seeds: &[Seed]) {
    let store: Arc<dyn BlobStore> =
        app.blob_store(chatops_shared::records::DEFAULT_RECORDS_CONTAINER);
    futures_util::stream::iter(seeds.iter().map(|seed| {
        let store = store.clone();
        let record = seed.record();
        async move {
            let body = serde_json::to_vec(&record).expect("json");
            store
                .create(
                    &record_name(record.requested_at.date(), &record.job_id),
                    body,
                    &record.metadata(),
                )
                .await
                .expect("record written");
        }
    }))
    .buffer_unordered(32)
    .collect::<Vec<()>>()
    .await;
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// `minutes` ago, but today (UTC): records filed under today's date.
fn today_minus(minutes: i64) -> OffsetDateTime {
    let now = now();
    let midnight = now.replace_time(time::Time::MIDNIGHT);
    (now - time::Duration::minutes(minutes)).max(midnight)
}

/// The short ids an answer lists, in order (the last `…` code span of each line).
fn listed(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let id = line.strip_suffix('`')?.rsplit('`').next()?;
            (id.len() == 8).then(|| id.to_owned())
        })
        .collect()
}

/// 1,000 records over 30 days, users and channels; returns them with Alice's 24 of today first.
fn thousand_records() -> Vec<Seed> {
    let mut seeds = Vec::new();
    // Alice's jobs of today, in this channel and another one.
    for i in 0..24 {
        let channel = if i % 2 == 0 { OPS } else { RANDOM };
        let state = if i % 5 == 0 {
            JobState::Failed
        } else {
            JobState::Completed
        };
        seeds.push(Seed::new(ALICE, channel, state, today_minus(2 + i)));
    }
    // Bob's in this channel: running ones (shown by status) and ended ones (history only).
    for i in 0..3 {
        let state = if i == 0 {
            JobState::Pending
        } else {
            JobState::Running
        };
        seeds.push(Seed::new(BOB, OPS, state, today_minus(1 + i)));
    }
    for i in 0..5 {
        seeds.push(Seed::new(BOB, OPS, JobState::Completed, today_minus(3 + i)));
    }
    // Carol's in a channel Alice is not in: never shown to her, running or not.
    seeds.push(Seed::new(CAROL, SECRET, JobState::Running, today_minus(0)));
    seeds.push(Seed::new(
        CAROL,
        SECRET,
        JobState::Completed,
        today_minus(1),
    ));
    // Alice's older jobs, all more than 24 hours ago.
    for d in 1..30 {
        let at = now() - time::Duration::days(d) - time::Duration::hours(1);
        seeds.push(
            Seed::new(ALICE, OPS, JobState::Completed, at)
                .runbook("restart-web", &[("env", "dev")]),
        );
    }
    // Everyone else, elsewhere, over 30 days; some still running.
    let mut i = 0;
    while seeds.len() < 1000 {
        let at = now() - time::Duration::minutes(43 * i + 5);
        let (user, channel) =
            [(CAROL, SECRET), ("UDAVE", RANDOM), ("UERIN", "CDEV")][i as usize % 3];
        let state = if i % 17 == 0 {
            JobState::Running
        } else {
            JobState::Completed
        };
        seeds.push(Seed::new(user, channel, state, at));
        i += 1;
    }
    // Short ids are what people type: keep them unique in this data.
    let mut shorts = HashSet::new();
    for seed in &mut seeds {
        while !shorts.insert(seed.short()) {
            seed.id = Uuid::new_v4();
        }
    }
    seeds
}

#[tokio::test]
async fn status_and_history_with_1000_records_show_what_the_caller_may_see_in_a_few_round_trips() {
    let app = TestApp::spawn().await;
    let seeds = thousand_records();
    write(&app, &seeds).await;
    let carol: Vec<String> = seeds
        .iter()
        .filter(|s| s.user == CAROL || s.channel == SECRET)
        .map(Seed::short)
        .collect();

    // status: Alice's jobs of the last 24 hours (here and elsewhere) and what runs here.
    app.records_calls.take();
    let answer = app.command(ALICE, OPS, "status").await;
    let status_calls = app.records_calls.take();
    assert_eq!(answer.response_type(), "ephemeral", "{answer:?}");
    let text = answer.text();
    let mut expected: Vec<&Seed> = seeds
        .iter()
        .filter(|s| {
            let yours = s.user == ALICE && now() - s.requested_at < time::Duration::DAY;
            let running_here = s.channel == OPS && !s.state.is_final();
            yours || running_here
        })
        .collect();
    expected.sort_by(|a, b| b.requested_at.cmp(&a.requested_at).then(a.id.cmp(&b.id)));
    let expected: Vec<String> = expected.iter().map(|s| s.short()).collect();
    assert_eq!(expected.len(), 27);
    assert_eq!(listed(&text), expected, "{text}");
    assert!(
        text.contains(":arrow_forward: running · *echo* · <@UBOB> · "),
        "{text}"
    );
    assert!(
        text.contains(":x: failed · *echo* · <@UALICE> · "),
        "{text}"
    );
    assert!(carol.iter().all(|id| !text.contains(id.as_str())), "{text}");
    assert!(
        (1..=3).contains(&status_calls),
        "status made {status_calls} storage calls"
    );

    // history: the last 20 Alice may see, all of today: one listing.
    let answer = app.command(ALICE, OPS, "history").await;
    let history_calls = app.records_calls.take();
    assert_eq!(answer.response_type(), "ephemeral");
    let text = answer.text();
    let mut visible: Vec<&Seed> = seeds.iter().filter(|s| s.visible_to(ALICE, OPS)).collect();
    visible.sort_by(|a, b| b.requested_at.cmp(&a.requested_at).then(a.id.cmp(&b.id)));
    let newest: Vec<String> = visible.iter().take(20).map(|s| s.short()).collect();
    assert_eq!(listed(&text), newest, "{text}");
    assert!(text.starts_with("The last 20 jobs you can see"), "{text}");
    assert!(text.contains(" · took 41s · "), "{text}");
    assert!(carol.iter().all(|id| !text.contains(id.as_str())), "{text}");
    assert!(
        (1..=3).contains(&history_calls),
        "history made {history_calls} storage calls"
    );

    // history of one runbook: back over the days until 20 are found, still no read per record.
    let answer = app.command(ALICE, OPS, "history restart-web").await;
    let filtered_calls = app.records_calls.take();
    let text = answer.text();
    let restarts: Vec<String> = visible
        .iter()
        .filter(|s| s.runbook == "restart-web")
        .take(20)
        .map(|s| s.short())
        .collect();
    assert_eq!(listed(&text), restarts, "{text}");
    assert!(
        filtered_calls <= 30,
        "one listing per day at most, not one read per record: {filtered_calls}"
    );

    // One job in full: found by its short id, then its record read.
    let alice = &seeds[0];
    let answer = app
        .command(ALICE, OPS, &format!("status {}", alice.short()))
        .await;
    let one_calls = app.records_calls.take();
    let text = answer.text();
    assert_eq!(answer.response_type(), "ephemeral");
    assert!(text.contains(&format!("Id `{}`", alice.id)), "{text}");
    assert!(text.contains(&format!("output of {}", alice.id)), "{text}");
    assert!((1..=3).contains(&one_calls), "{one_calls}");
    // The figures, for the record (run with --nocapture).
    println!(
        "storage round trips with 1,000 records: status {status_calls}, history {history_calls}, \
         history <runbook> {filtered_calls}, status <job> {one_calls}"
    );
    app.finish().await;
}

#[tokio::test]
async fn someone_elses_job_from_another_channel_is_never_shown() {
    let app = TestApp::spawn().await;
    let secret = Seed::new(CAROL, SECRET, JobState::Running, today_minus(1));
    let alice_elsewhere = Seed::new(ALICE, RANDOM, JobState::Running, today_minus(2));
    let carol_here = Seed::new(CAROL, OPS, JobState::Completed, today_minus(3));
    write(
        &app,
        &[secret.clone(), alice_elsewhere.clone(), carol_here.clone()],
    )
    .await;

    for text in [
        app.command(ALICE, OPS, "status").await.text(),
        app.command(ALICE, OPS, "history").await.text(),
    ] {
        assert!(!text.contains(&secret.short()), "{text}");
        assert!(
            text.contains(&alice_elsewhere.short()),
            "her own, from anywhere: {text}"
        );
    }
    assert!(
        app.command(ALICE, OPS, "history")
            .await
            .text()
            .contains(&carol_here.short()),
        "a job run in this channel"
    );

    // Named directly, it is answered like a job that does not exist.
    let missing = "0badf00d";
    for word in ["status", "stop", "rerun"] {
        for id in [secret.short(), secret.id.to_string()] {
            let answer = app.command(ALICE, OPS, &format!("{word} {id}")).await;
            assert_eq!(answer.response_type(), "ephemeral");
            let nothing = app
                .command(ALICE, OPS, &format!("{word} {missing}"))
                .await
                .text();
            assert_eq!(
                answer.text().replace(&id, "<id>"),
                nothing.replace(missing, "<id>"),
                "{word} {id}"
            );
            assert!(answer.text().contains("no job"), "{}", answer.text());
        }
    }
    // Carol sees it, from anywhere.
    let text = app
        .command(CAROL, RANDOM, &format!("status {}", secret.short()))
        .await
        .text();
    assert!(text.contains(&format!("Id `{}`", secret.id)), "{text}");
    assert!(app.take_jobs().await.is_empty(), "nothing was queued");
    app.finish().await;
}

#[tokio::test]
async fn a_job_no_runner_took_up_yet_is_not_found_and_the_answer_says_why() {
    let app = TestApp::spawn().await;
    let id = TestApp::short_id(&app.command(ALICE, OPS, "echo hi").await);
    for word in ["status", "stop"] {
        let text = app
            .command(ALICE, OPS, &format!("{word} {id}"))
            .await
            .text();
        assert!(
            text.contains(&format!("There is no job `{id}`"))
                && text.contains("A job just queued shows once a runner has taken it up"),
            "{word}: {text}"
        );
    }
    assert_eq!(
        app.take_jobs().await.len(),
        1,
        "only the job; no stop queued"
    );
    app.finish().await;
}

#[tokio::test]
async fn job_ids_too_short_or_ambiguous_are_explained() {
    let app = TestApp::spawn().await;
    let mut a = Seed::new(ALICE, OPS, JobState::Completed, today_minus(1));
    let mut b = Seed::new(ALICE, OPS, JobState::Running, today_minus(2));
    a.id = Uuid::parse_str("abcdef01-1111-4000-8000-000000000001").expect("uuid");
    b.id = Uuid::parse_str("abcdef01-2222-4000-8000-000000000002").expect("uuid");
    write(&app, &[a.clone(), b.clone()]).await;

    let answer = app.command(ALICE, OPS, "status abcdef0").await;
    assert_eq!(answer.response_type(), "ephemeral");
    assert!(
        answer
            .text()
            .contains("give at least 8 characters of the job id, as shown in status messages"),
        "{}",
        answer.text()
    );
    let text = app.command(ALICE, OPS, "stop abcdef01").await.text();
    assert!(text.contains("names more than one job"), "{text}");
    assert!(
        text.contains(&a.id.to_string()) && text.contains(&b.id.to_string()),
        "{text}"
    );
    // More of the id, with or without its dashes, picks one.
    for id in ["abcdef01-2222", "ABCDEF012222"] {
        let text = app
            .command(ALICE, OPS, &format!("status {id}"))
            .await
            .text();
        assert!(text.contains(&format!("Id `{}`", b.id)), "{id}: {text}");
    }
    let text = app.command(ALICE, OPS, "stop").await.text();
    assert!(text.starts_with("Usage: `/runbook stop <job>`"), "{text}");
    assert!(app.take_jobs().await.is_empty());
    app.finish().await;
}

#[tokio::test]
async fn stop_is_for_the_requester_and_stop_allow_and_queues_one_signed_stop_message() {
    let app = TestApp::spawn().await;
    let running = Seed::new(ALICE, OPS, JobState::Running, today_minus(1))
        .runbook("deploy", &[("env", "prod"), ("service", "web")]);
    let ended = Seed::new(ALICE, OPS, JobState::Completed, today_minus(2))
        .runbook("deploy", &[("env", "dev"), ("service", "api")]);
    write(&app, &[running.clone(), ended.clone()]).await;

    // Bob sees the job (it ran here) but may not stop it: refused, nothing queued.
    let answer = app
        .command(BOB, OPS, &format!("stop {}", running.short()))
        .await;
    assert_eq!(answer.response_type(), "ephemeral");
    let text = answer.text();
    assert!(
        text.contains(&format!("You may not stop job `{}`", running.short())),
        "{text}"
    );
    assert!(
        text.contains("`stop_allow`") && text.contains("<@UALICE>"),
        "{text}"
    );
    assert!(
        app.take_jobs().await.is_empty(),
        "a refused stop queues nothing"
    );
    assert_eq!(
        app.audit_events(1).await,
        [AuditEvent::Denied {
            user_id: BOB.into(),
            channel_id: OPS.into(),
            runbook: "deploy".into(),
            rule: "stop_allow".into(),
        }]
    );

    // Alice started it: the channel sees her ask, and one signed stop message names the job.
    let answer = app
        .command(ALICE, OPS, &format!("stop {}", running.short()))
        .await;
    assert_eq!(answer.response_type(), "in_channel", "{answer:?}");
    assert_eq!(
        answer.text(),
        format!(
            ":octagonal_sign: <@UALICE> asked to stop job `{}` (*deploy* `env=prod service=web`)",
            running.short()
        )
    );
    let queued = app.take_jobs().await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    let stop = &queued[0];
    assert_eq!(stop.kind, JobKind::Stop);
    assert_eq!(stop.target, Some(running.id));
    assert_ne!(stop.job_id, running.id, "a stop has its own job id");
    assert_eq!(stop.runbook, "deploy");
    assert_eq!(
        stop.params,
        BTreeMap::from([
            ("env".to_owned(), "prod".to_owned()),
            ("service".to_owned(), "web".to_owned())
        ])
    );
    assert_eq!(
        (stop.user_id.as_str(), stop.channel_id.as_str()),
        (ALICE, OPS)
    );
    assert_eq!(stop.record_day, Some(now().date()));
    assert_eq!(stop.rerun_of, None);
    assert_eq!(
        app.audit_events(1).await,
        [AuditEvent::StopRequested {
            job_id: running.id,
            by: ALICE.into(),
            stop_job_id: stop.job_id,
        }]
    );

    // The runbook's stop_allow names the ops lead: allowed too, as themselves.
    let answer = app
        .command(OPS_LEAD, OPS, &format!("stop {}", running.id))
        .await;
    assert_eq!(answer.response_type(), "in_channel", "{answer:?}");
    assert!(
        answer
            .text()
            .starts_with(":octagonal_sign: <@UOPSLEAD> asked to stop job")
    );
    let queued = app.take_jobs().await;
    assert_eq!(queued.len(), 1);
    assert_eq!(
        (queued[0].kind, queued[0].target, queued[0].user_id.as_str()),
        (JobKind::Stop, Some(running.id), OPS_LEAD)
    );
    assert_eq!(
        app.audit_events(1).await,
        [AuditEvent::StopRequested {
            job_id: running.id,
            by: OPS_LEAD.into(),
            stop_job_id: queued[0].job_id,
        }]
    );

    // A job that ended has nothing to stop.
    let text = app
        .command(ALICE, OPS, &format!("stop {}", ended.short()))
        .await
        .text();
    assert_eq!(
        text,
        format!(
            "Job `{}` (*deploy* `env=dev service=api`) already ended (completed); there is nothing to stop.",
            ended.short()
        )
    );
    assert!(app.take_jobs().await.is_empty());
    let events = app.audit_events(1).await;
    assert!(
        matches!(events.as_slice(), [AuditEvent::Rejected { reason, .. }] if reason.contains("already ended")),
        "{events:?}"
    );
    app.finish().await;
}

#[tokio::test]
async fn rerun_is_checked_like_the_command_typed_again() {
    let app = TestApp::spawn().await;
    let deploy = Seed::new(ALICE, OPS, JobState::Completed, today_minus(1))
        .runbook("deploy", &[("env", "prod"), ("service", "web")]);
    // A parameter `echo` no longer takes.
    let old_echo = Seed::new(ALICE, OPS, JobState::Failed, today_minus(2))
        .runbook("echo", &[("first", "a"), ("third", "gone")]);
    write(&app, &[deploy.clone(), old_echo.clone()]).await;

    // Bob may see it (it ran here) but not run `deploy`.
    let text = app
        .command(BOB, OPS, &format!("rerun {}", deploy.short()))
        .await
        .text();
    assert!(
        text.contains("You are not allowed to run `deploy`"),
        "{text}"
    );
    // Alice, from a channel `deploy` may not be run from.
    let text = app
        .command(ALICE, RANDOM, &format!("rerun {}", deploy.short()))
        .await
        .text();
    assert!(
        text.contains("`deploy` cannot be run from this channel"),
        "{text}"
    );
    let text = app
        .command(ALICE, OPS, &format!("rerun {}", old_echo.short()))
        .await
        .text();
    assert!(
        text.starts_with(&format!(
            "Cannot rerun job `{}`: `echo` has no parameter `third`",
            old_echo.short()
        )),
        "{text}"
    );
    assert!(
        app.take_jobs().await.is_empty(),
        "refused reruns queue nothing"
    );
    let events = app.audit_events(3).await;
    assert!(
        matches!(
            events.as_slice(),
            [
                AuditEvent::Denied { rule: r1, user_id: bob, .. },
                AuditEvent::Denied { rule: r2, .. },
                AuditEvent::Rejected { reason, .. },
            ] if r1 == "allow.users" && r2 == "allow.channels" && bob == BOB && reason.contains("no parameter `third`")
        ),
        "{events:?}"
    );

    // Alice, here: acknowledged like the typed command, queued as a new job naming the old.
    let answer = app
        .command(ALICE, OPS, &format!("rerun {}", deploy.short()))
        .await;
    assert_eq!(answer.response_type(), "in_channel", "{answer:?}");
    let queued = app.take_jobs().await;
    assert_eq!(queued.len(), 1);
    let job = &queued[0];
    assert_eq!(
        answer.text(),
        format!(
            ":inbox_tray: <@UALICE> queued *deploy* `env=prod service=web` (job `{}`, rerun of `{}`)",
            job.short_id(),
            deploy.short()
        )
    );
    assert_eq!(job.kind, JobKind::Run);
    assert_eq!(job.rerun_of, Some(deploy.id));
    assert_ne!(job.job_id, deploy.id);
    assert_eq!(job.runbook, "deploy");
    assert_eq!(job.params, deploy.record().params);
    assert_eq!(job.record_day, Some(now().date()));
    assert_eq!(
        app.audit_events(1).await,
        [AuditEvent::Accepted {
            job_id: job.job_id,
            runbook: "deploy".into(),
            params: job.params.clone(),
            user_id: ALICE.into(),
            channel_id: OPS.into(),
            rerun_of: Some(deploy.id),
        }]
    );
    app.finish().await;
}

/// An ingress like the app's, whose records store is at `blob_endpoint`.
async fn ingress_with_records_at(app: &TestApp, blob_endpoint: &str) -> String {
    use chatops_ingress::app::{AppState, Application};
    use chatops_ingress::slack::verify::Verifier;
    let connection = app
        .azurite
        .connection_string()
        .split(';')
        .map(|part| {
            if part.starts_with("BlobEndpoint=") {
                format!("BlobEndpoint={blob_endpoint}")
            } else {
                part.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(";");
    let store = chatops_e2e::azurite::blob_store_with(
        &connection,
        chatops_shared::records::DEFAULT_RECORDS_CONTAINER,
        chatops_shared::queue::retry::RetryBudget::interactive(),
    );
    let state = AppState::new(
        Verifier::new(vec![Secret::new(chatops_e2e::app::SIGNING_SECRET)]),
        (*app.catalog).clone(),
        app.queue.clone(),
        app.job_keys.current().clone(),
        chatops_shared::records::Records::new(Arc::new(store), 30),
        chatops_shared::audit::AuditLog::discard(),
    );
    let ingress = Application::with_state("127.0.0.1:0".parse().expect("addr"), state)
        .await
        .expect("bind");
    let url = format!(
        "http://{}/slack/commands",
        ingress.local_addr().expect("addr")
    );
    tokio::spawn(ingress.run_until_stopped(std::future::pending()));
    url
}

/// Posts a signed command to `url`; the answer's JSON and how long it took.
async fn post(app: &TestApp, url: &str, text: &str) -> (serde_json::Value, Duration) {
    let body = app.form(ALICE, OPS, text);
    let ts = now().unix_timestamp();
    let signature =
        chatops_ingress::slack::verify::sign(chatops_e2e::app::SIGNING_SECRET, ts, body.as_bytes());
    let started = std::time::Instant::now();
    let response = app
        .client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts.to_string())
        .header("x-slack-signature", signature)
        .body(body)
        .send()
        .await
        .expect("ingress answers");
    assert_eq!(response.status().as_u16(), 200);
    let json = response.json().await.expect("json answer");
    (json, started.elapsed())
}

#[tokio::test]
async fn when_records_cannot_be_read_job_control_says_so_in_time_and_runbooks_still_run() {
    let app = TestApp::spawn().await;
    // A port nothing listens on, and a server that accepts connections and never answers.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let _silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    // Refused at once: an outage; never answered: too slow to tell from a long search.
    for (port, says) in [
        (closed, "Job records cannot be read right now"),
        (silent_port, "took too long"),
    ] {
        let url =
            ingress_with_records_at(&app, &format!("http://127.0.0.1:{port}/devstoreaccount1"))
                .await;
        for text in [
            "status",
            "status 1a2b3c4d",
            "history",
            "stop 1a2b3c4d",
            "rerun 1a2b3c4d",
        ] {
            let (answer, took) = post(&app, &url, text).await;
            assert_eq!(answer["response_type"], "ephemeral", "{text}: {answer}");
            let said = answer["text"].as_str().unwrap_or_default();
            assert!(
                said.contains(says) && said.contains("try again in a minute"),
                "{text}: {said}"
            );
            if text.contains("1a2b3c4d") {
                assert!(said.contains("`1a2b3c4d`"), "names the job: {said}");
            }
            // Within the records deadline (1.5 s): a storage call alone may retry for 2.1 s.
            assert!(took < Duration::from_secs(2), "{text} took {took:?}");
        }
        // A body that comes slowly (2 s): the records get what is left of the 3 s, not 1.5 s
        // more.
        let body = app.form(ALICE, OPS, "status");
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches("/slack/commands");
        let (status, took) =
            chatops_e2e::app::post_slowly(addr, "/slack/commands", &body, Duration::from_secs(2))
                .await;
        assert_eq!(status, 200);
        assert!(took < Duration::from_secs(3), "status took {took:?}");
        let (answer, took) = post(&app, &url, "echo hi").await;
        assert_eq!(answer["response_type"], "in_channel", "{answer}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert_eq!(
            app.take_jobs().await.len(),
            1,
            "the runbook command was queued"
        );
    }
    app.finish().await;
}

#[tokio::test]
async fn a_job_a_runner_ran_is_shown_cannot_be_stopped_and_is_rerun_from_its_record() {
    let app = TestApp::spawn().await;
    let answer = app.command(ALICE, OPS, "echo \"hello <world>\"").await;
    let id = TestApp::short_id(&answer);
    let worker = app.worker();
    assert_eq!(app.drain(&worker).await, 1);

    let text = app
        .command(ALICE, OPS, &format!("status {id}"))
        .await
        .text();
    assert!(
        text.starts_with(&format!(
            ":white_check_mark: completed · job `{id}` · *echo* `first=\"hello &lt;world&gt;\"`"
        )),
        "{text}"
    );
    assert!(
        text.contains("args: hello &lt;world&gt; two"),
        "the output's end: {text}"
    );
    let text = app.command(ALICE, OPS, "history echo").await.text();
    assert!(
        text.contains(&format!("`{id}`")) && text.contains(" · took "),
        "{text}"
    );
    let text = app.command(ALICE, OPS, &format!("stop {id}")).await.text();
    assert!(text.contains("already ended (completed)"), "{text}");

    let answer = app.command(ALICE, OPS, &format!("rerun {id}")).await;
    assert_eq!(answer.response_type(), "in_channel", "{answer:?}");
    let again = TestApp::short_id(&answer);
    assert_ne!(again, id);
    assert_eq!(app.drain(&worker).await, 1);
    let text = app
        .command(ALICE, OPS, &format!("status {again}"))
        .await
        .text();
    assert!(text.contains(&format!(" · rerun of `{id}`")), "{text}");
    app.finish().await;
}

/// Someone else's newer job whose id starts like the caller's own older one neither hides it
/// nor shows: the search goes on past days whose matches the caller may not see.
#[tokio::test]
async fn a_job_id_prefix_finds_the_callers_own_job_behind_someone_elses() {
    let app = TestApp::spawn().await;
    let mut mine = Seed::new(ALICE, OPS, JobState::Completed, today_minus(5));
    let mut theirs = Seed::new(CAROL, SECRET, JobState::Running, today_minus(1));
    mine.id = Uuid::parse_str("1a2b3c4d-0000-4000-8000-000000000001").expect("uuid");
    theirs.id = Uuid::parse_str("1a2b3c4d-0000-4000-8000-000000000002").expect("uuid");
    write(&app, &[mine.clone(), theirs.clone()]).await;
    let answer = app.command(ALICE, OPS, "status 1a2b3c4d").await;
    let text = answer.text();
    assert!(text.contains(&format!("Id `{}`", mine.id)), "{text}");
    assert!(!text.contains(&theirs.id.to_string()), "{text}");
    app.finish().await;
}
