//! The live tail end to end (real Azurite, the Slack double's Web API, the ARM double): a
//! running job's output goes into its card's thread while it runs, batched, within Slack's
//! limits, and the end of the job adds only what the tail has not shown; a refused live reply
//! never costs the final status.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chatops_e2e::app::{ALICE, OPS, Options, TestApp};
use chatops_e2e::arm::Script;
use chatops_e2e::process::binary;
use chatops_e2e::slack::{ChatMessage, Rate};
use chatops_runner::executor::arm::{ArmClient, RetryPolicy};
use chatops_runner::executor::automation::{AutomationExecutor, PollSchedule};
use chatops_runner::executor::local::LocalExecutor;
use chatops_runner::notify::bot::BotSettings;
use chatops_runner::worker::{Executors, Worker, WorkerSettings};
use chatops_shared::records::record_name_of;
use std::sync::Arc;
use std::time::Duration;

const TAIL: Duration = Duration::from_millis(300);

/// Where the scripts of [`RUNBOOKS`] are (the catalog checks they exist when it loads).
const SCRIPTS: &str = "/tmp/chatops-e2e-tail";

const RUNBOOKS: &str = r#"
[runbooks.ticker]
description = "Prints a line every 300 ms for a few seconds"
executor = "local"
target = "/tmp/chatops-e2e-tail/ticker.sh"
allow = { users = ["UALICE"] }

[runbooks.flood]
description = "Prints 200 KB at once: multi-byte characters, very long lines"
executor = "local"
target = "/tmp/chatops-e2e-tail/flood.sh"
allow = { users = ["UALICE"] }

[runbooks.typist]
description = "Types a secret token in two pieces, slower than the live tail's interval"
executor = "local"
target = "/tmp/chatops-e2e-tail/typist.sh"
params = [{ name = "token", required = true, secret = true }]
allow = { users = ["UALICE"] }
"#;

async fn spawn() -> TestApp {
    std::fs::create_dir_all(SCRIPTS).unwrap();
    script("ticker.sh", TICKER);
    script(
        "flood.sh",
        &format!("#!/bin/sh\ncat '{SCRIPTS}/flood.txt'\n"),
    );
    write_atomically("flood.txt", flood().as_bytes());
    script("typist.sh", TYPIST);
    let app = TestApp::spawn_opts(Options {
        extra_runbooks: RUNBOOKS,
        ..Default::default()
    })
    .await;
    app.slack.set_post_rate(Rate {
        interval: Duration::from_millis(16),
        burst: 5,
    });
    app.slack.set_update_rate(Rate {
        interval: Duration::from_millis(8),
        burst: 5,
    });
    app.slack.join(OPS);
    app
}

const TICKER: &str =
    "#!/bin/sh\ni=1\nwhile [ $i -le 10 ]; do echo \"tick $i\"; i=$((i+1)); sleep 0.3; done\n";

/// Prints the token's first 8 characters, then (after more than a tail interval) the rest
/// and a line of its own.
const TYPIST: &str = "#!/bin/sh\nprintf 'token: %s' \"$(printf '%s' \"$CHATOPS_PARAM_TOKEN\" | cut -c1-8)\"\nsleep 1\nprintf '%s\\nnext line\\n' \"$(printf '%s' \"$CHATOPS_PARAM_TOKEN\" | cut -c9-)\"\n";

/// Tests run in processes of their own, at once: each writes the same files, whole.
fn write_atomically(name: &str, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = format!("{SCRIPTS}/.{name}.{}", uuid::Uuid::new_v4().simple());
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, format!("{SCRIPTS}/{name}")).unwrap();
}

fn script(name: &str, text: &str) {
    write_atomically(name, text.as_bytes());
}

/// 200 KB of lines with multi-byte characters, and a very long line every thousand.
fn flood() -> String {
    let mut out = String::new();
    let mut n = 0;
    while out.len() < 200 * 1024 {
        out.push_str(&format!("line {n}: żółć 日本語 🚀 done\n"));
        if n % 1_000 == 500 {
            out.push_str(&"é".repeat(20_000));
            out.push('\n');
        }
        n += 1;
    }
    out
}

/// A runner's worker on the bot path with the live tail on (executors and notifier alike).
fn live_worker(app: &TestApp) -> Worker {
    live_worker_with(app, app.worker_settings())
}

fn live_worker_with(app: &TestApp, worker_settings: WorkerSettings) -> Worker {
    let settings = BotSettings {
        post_interval: Duration::from_millis(20),
        update_interval: Duration::from_millis(10),
        tail_interval: TAIL,
        call_patience: Duration::from_secs(10),
        automation_account: None,
    };
    let retry = RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(2),
    };
    let client = ArmClient::new(&app.arm.config(), app.arm.credential())
        .unwrap()
        .with_retry(retry);
    let executors = Executors {
        automation: Some(Arc::new(
            AutomationExecutor::new(Arc::new(client))
                .with_poll(PollSchedule::fixed(Duration::from_millis(100)))
                .with_live_output(Some(TAIL)),
        )),
        local: Arc::new(
            LocalExecutor::new()
                .with_supervisor(binary("chatops-runner"))
                .with_live_output(true),
        ),
    };
    Worker::new(
        app.runner_queue(),
        app.records(),
        app.live_catalog.clone(),
        app.job_keys.clone(),
        executors,
        Arc::new(app.bot_notifier(settings)),
        worker_settings,
    )
}

fn card(app: &TestApp) -> Option<ChatMessage> {
    app.slack
        .channel_messages(OPS)
        .into_iter()
        .find(|m| m.thread_ts.is_none())
}

fn replies(app: &TestApp, card: &ChatMessage) -> Vec<ChatMessage> {
    let mut replies: Vec<ChatMessage> = app
        .slack
        .channel_messages(&card.channel)
        .into_iter()
        .filter(|m| m.thread_ts.as_deref() == Some(card.ts.as_str()))
        .collect();
    replies.sort_by(|a, b| a.ts.cmp(&b.ts));
    replies
}

fn is_live(reply: &ChatMessage) -> bool {
    reply.body["text"].as_str().unwrap().ends_with("(live)")
}

/// The output a live reply shows, as the script printed it.
fn live_text(reply: &ChatMessage) -> String {
    let mut text = String::new();
    for block in reply.body["blocks"].as_array().unwrap() {
        if block["type"] == "section" {
            let fenced = block["text"]["text"].as_str().unwrap();
            let body = fenced
                .strip_prefix("```\n")
                .and_then(|b| b.strip_suffix("\n```"))
                .unwrap();
            text.push_str(body);
        }
    }
    text.push('\n');
    text
}

/// The output the live replies among `replies` show, in order.
fn shown_live(replies: &[ChatMessage]) -> String {
    replies
        .iter()
        .filter(|r| is_live(r))
        .map(live_text)
        .collect()
}

/// How many lines a reply says it did not show.
fn not_shown(reply: &ChatMessage) -> usize {
    let all = reply.body.to_string();
    all.split(" lines not shown live")
        .next()
        .filter(|_| all.contains(" lines not shown live"))
        .and_then(|head| head.rsplit(['…', ' ', '*', ';']).find(|w| !w.is_empty()))
        .map(|n| n.replace(',', "").parse().unwrap())
        .unwrap_or(0)
}

fn is_final(card: &ChatMessage) -> bool {
    let text = card.body.to_string();
    text.contains("*Completed*") || text.contains("*Failed*")
}

/// Runs the queued job on `worker` in the background and watches the channel until the card
/// shows the final state: the most live replies seen while it did not yet.
async fn run_watching(app: &TestApp, worker: Worker) -> usize {
    let run = tokio::spawn(async move {
        while worker.process_next().await.unwrap() == chatops_runner::worker::Step::Processed {}
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut live_before_final = 0;
    loop {
        if let Some(card) = card(app) {
            if is_final(&card) {
                break;
            }
            let live = replies(app, &card).iter().filter(|r| is_live(r)).count();
            live_before_final = live_before_final.max(live);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    run.await.unwrap();
    live_before_final
}

/// Every message in the channel within Slack's limits, and every post accepted.
fn assert_within_limits(app: &TestApp) {
    let units = |s: &str| s.encode_utf16().count();
    let messages = app.slack.channel_messages(OPS);
    for m in &messages {
        let blocks = m.body["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50);
        let mut total = units(m.body["text"].as_str().unwrap());
        for b in blocks {
            for t in [&b["text"]["text"], &b["elements"][0]["text"]] {
                if let Some(t) = t.as_str() {
                    assert!(units(t) <= 3_000, "a section of {}", units(t));
                    total += units(t);
                }
            }
        }
        assert!(total <= 12_000, "a message of {total}");
    }
    assert_eq!(
        app.slack.api_calls("chat.postMessage").len(),
        messages.len(),
        "a post was refused"
    );
}

#[tokio::test]
async fn a_running_scripts_output_is_tailed_in_its_thread_and_shown_once() {
    let app = spawn().await;
    app.command(ALICE, OPS, "ticker").await;
    let live_before_final = run_watching(&app, live_worker(&app)).await;
    assert!(
        live_before_final >= 2,
        "{live_before_final} live replies before the final state"
    );

    let card = card(&app).unwrap();
    assert!(card.body.to_string().contains("*Completed*"));
    let replies = replies(&app, &card);
    // The union of the replies is the output, each line once; nothing else follows.
    let shown = shown_live(&replies);
    let expected: String = (1..=10).map(|i| format!("tick {i}\n")).collect();
    assert_eq!(shown, expected, "{replies:#?}");
    assert!(replies.iter().all(is_live), "{replies:#?}");
    assert_within_limits(&app);
    app.finish().await;
}

#[tokio::test]
async fn two_hundred_kilobytes_at_once_stay_within_slacks_limits_and_are_counted() {
    let app = spawn().await;
    let out = flood();
    app.command(ALICE, OPS, "flood").await;
    let job = app.peek_jobs().await.remove(0);
    run_watching(&app, live_worker(&app)).await;

    assert_within_limits(&app);
    let card = card(&app).unwrap();
    let replies = replies(&app, &card);
    let shown = shown_live(&replies);
    assert!(
        out.ends_with(&shown),
        "the live tail shows the end of the output"
    );
    // The closing note counts what was not shown: with what was, every line.
    let closing = replies.last().unwrap();
    assert!(!is_live(closing), "{closing:#?}");
    let total = out.lines().count();
    let shown_lines = shown.lines().count();
    assert_eq!(not_shown(closing), total - shown_lines, "{closing:#?}");
    assert!(
        closing
            .body
            .to_string()
            .contains("lines shown in this thread"),
        "{closing:#?}"
    );
    // Where the whole output is, and the whole output read from there.
    let command = format!("chatops-runner output {}", job.short_id());
    assert!(closing.body.to_string().contains(&command), "{closing:#?}");
    assert!(
        kept_output(&app, &job.short_id()) == out.as_bytes(),
        "the whole output, byte for byte"
    );
    app.finish().await;
}

/// `chatops-runner output <short id>`, its stdout.
fn kept_output(app: &TestApp, short_id: &str) -> Vec<u8> {
    let read = std::process::Command::new(binary("chatops-runner"))
        .args(["output", short_id])
        .env_clear()
        .envs(app.service_env())
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    read.stdout
}

#[tokio::test]
async fn a_secret_printed_in_pieces_across_live_batches_is_masked_whole() {
    const TOKEN: &str = "s3cr3t-T0k3n-in-two-pieces";
    let app = spawn().await;
    app.command(ALICE, OPS, &format!("typist token={TOKEN}"))
        .await;
    let job = app.peek_jobs().await.remove(0);
    let live_before_final = run_watching(&app, live_worker(&app)).await;
    assert!(live_before_final >= 1, "tailed while it ran");

    let card = card(&app).unwrap();
    let replies = replies(&app, &card);
    let shown = shown_live(&replies);
    // Its first piece was printed a second before the rest, without a line break: it waited
    // for the rest, and the whole value was masked.
    assert!(shown.contains("•••\nnext line\n"), "{replies:#?}");
    let everything: String = app
        .slack
        .channel_messages(OPS)
        .iter()
        .map(|m| m.body.to_string())
        .collect();
    assert!(!everything.contains(&TOKEN[..8]), "{everything}");
    let kept = String::from_utf8(kept_output(&app, &job.short_id())).unwrap();
    assert_eq!(kept, "token: •••\nnext line\n");
    app.finish().await;
}

#[tokio::test]
async fn output_past_the_cap_is_kept_up_to_it_and_says_it_was_cut() {
    let app = spawn().await;
    let out = flood();
    app.command(ALICE, OPS, "flood").await;
    let job = app.peek_jobs().await.remove(0);
    let mut settings = app.worker_settings();
    settings.output_keep = 10_000;
    run_watching(&app, live_worker_with(&app, settings)).await;
    let kept = String::from_utf8(kept_output(&app, &job.short_id())).unwrap();
    let (head, note) = kept.rsplit_once("[output cut here").unwrap();
    // Cut inside a line, the kept part ends with a line break of its own.
    let head = head.strip_suffix('\n').unwrap();
    assert!(out.starts_with(head) && head.len() <= 10_000, "{kept}");
    assert!(head.len() > 9_000);
    assert_eq!(note, ": only the first 10000 bytes are kept]\n");
    app.finish().await;
}

#[tokio::test]
async fn an_automation_jobs_output_is_tailed_from_its_stream() {
    let app = spawn().await;
    app.arm.set_page_size(3);
    let lines: Vec<String> = (1..=10).map(|i| format!("step {i} done")).collect();
    app.arm.script(
        "Restart-WebApp",
        Script::completes(&lines.join("\n")).polls(1, 12).growing(),
    );
    app.command(ALICE, OPS, "restart-web prod").await;
    let job = app.peek_jobs().await.remove(0);
    let live_before_final = run_watching(&app, live_worker(&app)).await;
    // The stream grows a line per poll: more than one reply while it ran means it was read on
    // from where the last read ended, as it grew.
    assert!(
        live_before_final >= 2,
        "tailed while it ran: {live_before_final}"
    );

    let card = card(&app).unwrap();
    let replies = replies(&app, &card);
    let shown = shown_live(&replies);
    assert_eq!(shown, format!("{}\n", lines.join("\n")), "{replies:#?}");
    assert!(
        replies.iter().all(is_live),
        "nothing shown twice: {replies:#?}"
    );
    // Reads go on from the last page: after the first read (4 pages of 3), one page a read,
    // never the whole list again.
    let reads = app
        .arm
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/streams"))
        .count();
    let polls = app
        .arm
        .job(&job.job_id.hyphenated().to_string())
        .unwrap()
        .gets as usize;
    assert!(reads <= 4 + polls, "{reads} stream reads for {polls} polls");
    app.finish().await;
}

#[tokio::test]
async fn a_card_posted_anew_at_the_end_gets_the_output_in_its_own_thread() {
    let app = spawn().await;
    app.command(ALICE, OPS, "ticker").await;
    let worker = live_worker(&app);
    let run = tokio::spawn(async move {
        while worker.process_next().await.unwrap() == chatops_runner::worker::Step::Processed {}
    });
    // Once live output shows under the card, the card is deleted: its final update is refused.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while card(&app).is_none_or(|c| !replies(&app, &c).iter().any(is_live)) {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.slack.fail_method_next(
        "chat.update",
        1,
        200,
        r#"{"ok":false,"error":"message_not_found"}"#,
    );
    run.await.unwrap();

    let cards: Vec<ChatMessage> = app
        .slack
        .channel_messages(OPS)
        .into_iter()
        .filter(|m| m.thread_ts.is_none())
        .collect();
    assert_eq!(cards.len(), 2, "posted anew: {cards:#?}");
    let new = &cards[1];
    assert!(is_final(new), "{new:#?}");
    let thread = replies(&app, new)
        .iter()
        .map(|r| r.body.to_string())
        .collect::<String>();
    assert!(
        thread.contains("tick 1") && thread.contains("tick 10"),
        "{thread}"
    );
    app.finish().await;
}

#[tokio::test]
async fn a_refused_live_reply_is_skipped_and_the_final_status_still_shows() {
    let app = spawn().await;
    app.command(ALICE, OPS, "ticker").await;
    let job = app.peek_jobs().await.remove(0);
    let worker = live_worker(&app);
    let run = tokio::spawn(async move {
        while worker.process_next().await.unwrap() == chatops_runner::worker::Step::Processed {}
    });
    // Once the card is up, Slack refuses the next post (a live reply) with a 429 that asks
    // for longer than a batch may wait.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while card(&app).is_none() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.slack.set_retry_after(1);
    app.slack.fail_method_next(
        "chat.postMessage",
        1,
        429,
        r#"{"ok":false,"error":"ratelimited"}"#,
    );
    run.await.unwrap();

    let card = card(&app).unwrap();
    assert!(card.body.to_string().contains("*Completed*"), "{card:#?}");
    let record = app
        .records()
        .read(&record_name_of(&job))
        .await
        .unwrap()
        .unwrap()
        .record;
    assert!(record.reported, "the final status was delivered");
    let replies = replies(&app, &card);
    let shown = shown_live(&replies);
    let closing = replies.last().unwrap();
    let skipped = not_shown(closing);
    assert!(skipped >= 1, "{replies:#?}");
    assert_eq!(shown.lines().count() + skipped, 10, "{replies:#?}");
    app.finish().await;
}
