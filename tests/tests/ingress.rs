//! The ingress end to end: signed requests over HTTP to the real router, a real Azurite queue.
//! Every rejection must answer without queueing anything; every accepted command queues one
//! message.

use chatops_e2e::app::{ALICE, BOB, OPS, RANDOM, SIGNING_SECRET, TestApp};
use chatops_e2e::shaped_queue::ShapedQueue;
use chatops_ingress::slack::verify::sign;
use chatops_shared::job::{JobKind, SCHEMA_VERSION};
use std::time::{Duration, Instant};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn requests_not_from_slack_get_401_and_nothing_is_queued() {
    let app = TestApp::spawn().await;
    let body = app.form(ALICE, OPS, "echo hi");
    let ts = now();

    let forged = sign("not-the-secret", ts, body.as_bytes());
    let cases = [
        (
            Some(ts.to_string()),
            Some(forged),
            "signature does not match",
        ),
        (Some(ts.to_string()), None, "missing X-Slack-Signature"),
        (
            None,
            Some(sign(SIGNING_SECRET, ts, body.as_bytes())),
            "missing X-Slack-Request-Timestamp",
        ),
        (
            Some((ts - 301).to_string()),
            Some(sign(SIGNING_SECRET, ts - 301, body.as_bytes())),
            "outside the 5-minute window",
        ),
    ];
    for (timestamp, signature, reason) in cases {
        let answer = app.post_raw(body.clone(), timestamp, signature).await;
        assert_eq!(answer.status, 401, "{answer:?}");
        assert!(
            answer.body.contains(reason),
            "expected {reason:?} in {answer:?}"
        );
    }
    // A body changed after signing.
    let signature = sign(SIGNING_SECRET, ts, body.as_bytes());
    let tampered = body.replace("UALICE", "UMALLORY");
    let answer = app
        .post_raw(tampered, Some(ts.to_string()), Some(signature))
        .await;
    assert_eq!(answer.status, 401);
    assert!(app.peek_jobs().await.is_empty());
    app.finish().await;
}

#[tokio::test]
async fn oversized_body_gets_413_and_ssl_check_gets_200() {
    let app = TestApp::spawn().await;
    let big = format!(
        "{}&pad={}",
        app.form(ALICE, OPS, "echo hi"),
        "x".repeat(65 * 1024)
    );
    let answer = app.post_signed(big, now()).await;
    assert_eq!(answer.status, 413, "{answer:?}");

    // The longest text the command language refuses in words, in the widest characters
    // Slack percent-encodes (4 bytes each, 12 encoded), is answered, not cut off with a 413.
    let wide = format!("echo {}", "😀".repeat(chatops_shared::command::MAX_CHARS));
    let answer = app.post_signed(app.form(ALICE, OPS, &wide), now()).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        answer.body.contains("The command is too long") && answer.body.contains("ephemeral"),
        "{answer:?}"
    );

    let answer = app
        .post_signed("ssl_check=1&token=x".to_owned(), now())
        .await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.body.is_empty(),
        "ssl_check answers nothing: {answer:?}"
    );
    assert!(app.peek_jobs().await.is_empty());
    app.finish().await;
}

#[tokio::test]
async fn user_mistakes_get_an_ephemeral_answer_with_usage_and_nothing_is_queued() {
    let app = TestApp::spawn().await;
    // (user, channel, text, what the answer must say)
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            ALICE,
            OPS,
            "restart-wbe env=dev",
            &["no runbook `restart-wbe`", "restart-web"],
        ),
        (BOB, OPS, "echo hi", &["not allowed to run `echo`", "UBOB"]),
        (
            ALICE,
            RANDOM,
            "restart-web env=dev",
            &["cannot be run from this channel", "COPS"],
        ),
        (
            ALICE,
            OPS,
            "restart-web",
            &[
                "`env` is required",
                "Usage: `/runbook restart-web env=&lt;dev|prod&gt; [count=1]`",
            ],
        ),
        (
            ALICE,
            OPS,
            "restart-web env=\"\"",
            &["`env` is required and cannot be empty"],
        ),
        (
            ALICE,
            OPS,
            "restart-web env=dev colour=red",
            &["no parameter `colour`", "Usage:"],
        ),
        (
            ALICE,
            OPS,
            "restart-web env=dev cuont=2",
            &["no parameter `cuont`", "count"],
        ),
        (
            ALICE,
            OPS,
            "restart-web dev env=prod",
            &["`env` is given more than once"],
        ),
        (
            ALICE,
            OPS,
            "restart-web env=staging",
            &["not a valid value for `env`", "dev, prod"],
        ),
        (
            ALICE,
            OPS,
            "restart-web dev 2 3",
            &["takes at most 2 values"],
        ),
        (
            ALICE,
            OPS,
            "echo \"unclosed",
            &["quote", "Usage: `/runbook &lt;runbook&gt;"],
        ),
        (ALICE, OPS, "approve", &["`approve` is not available yet"]),
    ];
    for (user, channel, text, expected) in cases {
        let answer = app.command(user, channel, text).await;
        assert_eq!(answer.status, 200, "{text}: {answer:?}");
        assert_eq!(answer.response_type(), "ephemeral", "{text}: {answer:?}");
        assert!(
            answer.text().contains("Usage: `/runbook "),
            "{text}: no usage in {:?}",
            answer.text()
        );
        for needle in *expected {
            assert!(
                answer.text().contains(needle),
                "{text}: expected {needle:?} in {:?}",
                answer.text()
            );
        }
    }
    assert!(
        app.peek_jobs().await.is_empty(),
        "a rejected command was queued"
    );
    app.finish().await;
}

#[tokio::test]
async fn help_lists_only_what_the_caller_may_run() {
    let app = TestApp::spawn().await;
    for text in ["", "help", "  "] {
        let answer = app.command(ALICE, OPS, text).await;
        assert_eq!(answer.response_type(), "ephemeral");
        let help = answer.text();
        assert!(
            help.contains("restart-web") && help.contains("echo"),
            "{help}"
        );
    }
    // From a channel where restart-web is not allowed, it is not offered.
    let help = app.command(ALICE, RANDOM, "help").await.text();
    assert!(
        help.contains("echo") && !help.contains("restart-web"),
        "{help}"
    );
    // Bob may run nothing and is told how to get access.
    let help = app.command(BOB, OPS, "help").await.text();
    assert!(
        !help.contains("echo") && !help.contains("restart-web"),
        "{help}"
    );
    assert!(help.contains("UBOB"), "{help}");
    assert!(app.peek_jobs().await.is_empty());
    app.finish().await;
}

#[tokio::test]
async fn accepted_command_is_queued_once_and_acknowledged_in_channel() {
    let app = TestApp::spawn().await;
    let started = Instant::now();
    let answer = app.command(ALICE, OPS, "restart-web prod note=x").await;
    // `note` is not a parameter: first the mistake...
    assert_eq!(answer.response_type(), "ephemeral");
    let answer = app.command(ALICE, OPS, "restart-web prod count=3").await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(answer.status, 200);
    assert_eq!(answer.response_type(), "in_channel", "{answer:?}");
    let text = answer.text();
    assert!(
        text.contains("<@UALICE>") && text.contains("*restart-web*"),
        "{text}"
    );
    assert!(text.contains("`count=3 env=prod`"), "{text}");

    let jobs = app.peek_jobs().await;
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job.schema, SCHEMA_VERSION);
    assert_eq!(job.kind, JobKind::Run);
    assert_eq!(job.runbook, "restart-web");
    assert_eq!(job.params.get("env").map(String::as_str), Some("prod"));
    assert_eq!(job.params.get("count").map(String::as_str), Some("3"));
    assert_eq!(
        (
            job.user_id.as_str(),
            job.channel_id.as_str(),
            job.team_id.as_str()
        ),
        (ALICE, OPS, "T0TEST")
    );
    assert!(
        job.response_url
            .as_ref()
            .unwrap()
            .expose()
            .starts_with(&app.slack.base_url())
    );
    assert!(
        text.contains(&job.short_id()),
        "the answer names the job: {text}"
    );
    app.drain(&app.worker()).await;
    app.finish().await;
}

#[tokio::test]
async fn a_replay_gets_the_same_answer_and_job_id_and_is_not_queued_twice() {
    let app = TestApp::spawn().await;
    let body = app.form(ALICE, OPS, "echo hi");
    let ts = now();
    let first = app.post_signed(body.clone(), ts).await;
    let second = app.post_signed(body, ts).await;
    assert_eq!(first.response_type(), "in_channel");
    assert_eq!(first.body, second.body, "same acknowledgement");
    assert_eq!(
        app.peek_jobs().await.len(),
        1,
        "one job for a replayed request"
    );
    app.drain(&app.worker()).await;
    // Looked at by peek_jobs (taken and handed back) but never started: it runs normally.
    app.final_text(&TestApp::short_id(&first), "*Completed*")
        .await;
    app.finish().await;
}

#[tokio::test]
async fn queue_down_gets_a_try_again_answer_within_slacks_3_seconds() {
    let mut app = TestApp::spawn().await;
    app.azurite.stop().await;
    let started = Instant::now();
    let answer = app.command(ALICE, OPS, "echo hi").await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.response_type(), "ephemeral");
    assert!(answer.text().contains("Could not queue"), "{answer:?}");
    assert!(answer.text().contains("try again"), "{answer:?}");

    let ready = app
        .client
        .get(format!("{}/readyz", app.ingress_url))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status().as_u16(), 503);
    let healthy = app
        .client
        .get(format!("{}/healthz", app.ingress_url))
        .send()
        .await
        .expect("healthz");
    assert_eq!(healthy.status().as_u16(), 200);
    app.forget_queue();
}

#[tokio::test]
async fn health_and_readiness_answer_when_the_queue_is_up() {
    let app = TestApp::spawn().await;
    for path in ["/healthz", "/readyz"] {
        let r = app
            .client
            .get(format!("{}{path}", app.ingress_url))
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status().as_u16(), 200, "{path}");
    }
    app.finish().await;
}

#[tokio::test]
async fn concurrent_and_re_cased_replays_queue_one_job() {
    let app = TestApp::spawn().await;
    let body = app.form(ALICE, OPS, "echo hi");
    let ts = now();
    let (a, b, c) = tokio::join!(
        app.post_signed(body.clone(), ts),
        app.post_signed(body.clone(), ts),
        app.post_signed(body.clone(), ts),
    );
    // Hex is read case-insensitively, so the same signature in upper case is the same request.
    let upper = sign(SIGNING_SECRET, ts, body.as_bytes())
        .to_uppercase()
        .replacen("V0=", "v0=", 1);
    let d = app.post_raw(body, Some(ts.to_string()), Some(upper)).await;
    for answer in [&a, &b, &c, &d] {
        assert_eq!(answer.response_type(), "in_channel", "{answer:?}");
        assert_eq!(answer.body, a.body, "every copy names the same job");
    }
    assert_eq!(
        app.peek_jobs().await.len(),
        1,
        "one job for four copies of a request"
    );
    app.drain(&app.worker()).await;
    app.finish().await;
}

#[tokio::test]
async fn a_client_that_stalls_mid_request_gets_408_instead_of_holding_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let addr = app.ingress_url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /slack/commands HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ntoken=x"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut answer = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("the ingress answers within its request limit")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    app.finish().await;
}

#[tokio::test]
async fn half_open_connections_do_not_block_commands_and_are_closed_within_15_seconds() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let addr = app.ingress_url.trim_start_matches("http://").to_owned();
    let opened = tokio::time::Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..200 {
        let mut stream = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        stream
            .write_all(b"POST /slack/commands HTTP/1.1\r\nHost: ingress\r\nContent-Ty")
            .await
            .expect("write half a head");
        stalled.push(stream);
    }

    let started = Instant::now();
    let answer = app.command(ALICE, OPS, "echo hi").await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(answer.response_type(), "in_channel", "{answer:?}");

    let deadline = opened + Duration::from_secs(15);
    let mut closing = tokio::task::JoinSet::new();
    for mut stream in stalled {
        closing.spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                    Err(_) => return false,
                    Ok(Ok(0) | Err(_)) => return true,
                    Ok(Ok(_)) => {}
                }
            }
        });
    }
    let closed = closing
        .join_all()
        .await
        .into_iter()
        .filter(|closed| *closed)
        .count();
    assert_eq!(closed, 200, "half-open connections still open after 15 s");
    app.drain(&app.worker()).await;
    app.finish().await;
}

#[tokio::test]
async fn readiness_checks_are_cached_so_a_flood_of_them_costs_one_storage_check() {
    use chatops_ingress::app::{AppState, Application};
    use chatops_ingress::readiness::READY_FOR;
    use chatops_ingress::slack::verify::Verifier;
    use chatops_shared::secret::Secret;

    let app = TestApp::spawn().await;
    let counting = std::sync::Arc::new(ShapedQueue::over(app.queue.clone()));
    let state = AppState::new(
        Verifier::new(vec![Secret::new(SIGNING_SECRET)]),
        (*app.catalog).clone(),
        counting.clone(),
        app.job_keys.current().clone(),
        app.records(),
        chatops_shared::audit::AuditLog::discard(),
    );
    let ingress = Application::with_state("127.0.0.1:0".parse().expect("addr"), state)
        .await
        .expect("bind");
    let url = format!("http://{}/readyz", ingress.local_addr().expect("addr"));
    let server = tokio::spawn(ingress.run_until_stopped(std::future::pending()));

    let ready = |client: reqwest::Client, url: String| async move {
        client
            .get(url)
            .send()
            .await
            .expect("readyz")
            .status()
            .as_u16()
    };
    // Twenty at once, then twenty one after another.
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..20 {
        flood.spawn(ready(app.client.clone(), url.clone()));
    }
    assert!(flood.join_all().await.iter().all(|status| *status == 200));
    for _ in 0..20 {
        assert_eq!(ready(app.client.clone(), url.clone()).await, 200);
    }
    // One check; two if a loaded machine took longer than the cache period for all forty.
    let checks = counting.pings();
    assert!(
        (1..=2).contains(&checks),
        "{checks} storage checks for 40 requests"
    );

    // Not cached forever: once the answer is stale, the queue is checked again.
    tokio::time::sleep(READY_FOR).await;
    assert_eq!(ready(app.client.clone(), url.clone()).await, 200);
    assert_eq!(counting.pings(), checks + 1);
    server.abort();
    app.finish().await;
}

#[tokio::test]
async fn accepted_rejected_and_denied_commands_are_audited() {
    use chatops_shared::audit::AuditEvent;
    let app = TestApp::spawn().await;
    let answer = app.command(ALICE, OPS, "echo hi").await;
    assert_eq!(answer.response_type(), "in_channel", "{answer:?}");
    let queued = app.take_jobs().await;
    assert_eq!(queued.len(), 1);
    assert_eq!(
        app.audit_events(1).await,
        [AuditEvent::Accepted {
            job_id: queued[0].job_id,
            runbook: "echo".into(),
            params: [("first".to_owned(), "hi".to_owned())].into(),
            user_id: ALICE.into(),
            channel_id: OPS.into(),
            rerun_of: None,
        }]
    );

    let rejected = [
        ("echo \"unclosed", "is never closed"),
        ("nosuch", "There is no runbook `nosuch`"),
        ("echo", "`first` is required"),
    ];
    for (text, reason) in rejected {
        let answer = app.command(ALICE, OPS, text).await;
        match app.audit_events(1).await.as_slice() {
            [
                AuditEvent::Rejected {
                    user_id,
                    channel_id,
                    text: typed,
                    reason: recorded,
                },
            ] => {
                assert_eq!((user_id.as_str(), channel_id.as_str()), (ALICE, OPS));
                assert_eq!(typed, text);
                assert!(recorded.contains(reason), "{recorded}");
                assert!(
                    answer.text().contains(reason),
                    "the reason the user saw: {answer:?}"
                );
            }
            other => panic!("{text}: {other:?}"),
        }
    }

    for (user, channel, text, rule) in [
        (BOB, OPS, "echo hi", "allow.users"),
        (ALICE, RANDOM, "deploy web prod", "allow.channels"),
    ] {
        app.command(user, channel, text).await;
        let runbook = text.split(' ').next().unwrap_or_default();
        assert_eq!(
            app.audit_events(1).await,
            [AuditEvent::Denied {
                user_id: user.into(),
                channel_id: channel.into(),
                runbook: runbook.into(),
                rule: rule.into(),
            }],
            "{user} {channel} {text}"
        );
    }
    app.command(ALICE, OPS, "help").await;
    assert_eq!(app.audit_events(0).await, [], "help is no event");
    assert_eq!(
        app.records_calls.calls(),
        0,
        "a runbook command's only storage call is the enqueue"
    );
    assert!(app.take_jobs().await.is_empty());
    app.finish().await;
}
