use super::*;
use chatops_shared::blob::ETag;
use chatops_shared::records::{StateChange, StopRequest};
use std::collections::BTreeMap;
use uuid::Uuid;

const T0: i64 = 1_795_000_000; // 2026-11-18 11:06:40 UTC

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128((0x1a2b_3c4d_u128 << 96) | n)
}

fn summary(n: u128, state: JobState, user: &str, requested: i64) -> Summary {
    Summary {
        name: format!("jobs/2026-11-18/{}.json", id(n)),
        etag: ETag::new("0x1"),
        job_id: id(n),
        state,
        runbook: "deploy".into(),
        user_id: user.into(),
        channel_id: "COPS".into(),
        requested_at: at(requested),
        started_at: Some(at(requested + 5)),
        ended_at: state.is_final().then(|| at(requested + 77)),
    }
}

fn record() -> JobRecord {
    JobRecord {
        schema: 1,
        job_id: id(7),
        runbook: "deploy".into(),
        params: BTreeMap::from([("env".into(), "prod".into())]),
        secret_params: Vec::new(),
        user_id: "UALICE".into(),
        user_name: "alice".into(),
        team_id: "T1".into(),
        channel_id: "COPS".into(),
        channel_name: Some("ops".into()),
        requested_at: at(T0),
        rerun_of: None,
        state: JobState::Failed,
        history: vec![
            StateChange {
                state: JobState::Pending,
                at: at(T0 + 1),
                runner: "host-1".into(),
                note: None,
            },
            StateChange {
                state: JobState::Failed,
                at: at(T0 + 60),
                runner: "host-1".into(),
                note: Some("exit 3".into()),
            },
        ],
        holder: None,
        executor: None,
        started_at: Some(at(T0 + 2)),
        ended_at: Some(at(T0 + 60)),
        stop: None,
        error: Some("boom <!channel>".into()),
        output_tail: "line 1\nline ```2``` & <b>\n".into(),
        reported: true,
        slack_message: None,
    }
}

#[test]
fn a_status_line_has_state_runbook_who_age_and_short_id() {
    let jobs = [summary(1, JobState::Running, "UBOB", T0 - 300)];
    let text = status_list(&jobs, at(T0));
    let line = text.lines().nth(1).unwrap();
    assert_eq!(
        line,
        ":arrow_forward: running · *deploy* · <@UBOB> · 5m 0s ago · `1a2b3c4d`"
    );
    assert!(text.starts_with("Your jobs of the last 24 hours"), "{text}");
}

#[test]
fn an_empty_status_says_so() {
    assert!(status_list(&[], at(T0)).starts_with("You ran no job in the last 24 hours"));
}

#[test]
fn a_history_line_has_outcome_and_duration() {
    let jobs = [
        summary(1, JobState::Completed, "UALICE", T0),
        summary(2, JobState::Running, "UALICE", T0 - 100),
    ];
    let text = history_list(&jobs, Some("deploy"), 30, at(T0 + 200));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "The last 2 jobs of *deploy* you can see, newest first:"
    );
    assert!(
        lines[1].starts_with(
            ":white_check_mark: completed · *deploy* · <@UALICE> · <!date^1795000000^"
        ),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].ends_with(" · took 1m 12s · `1a2b3c4d`"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(" · running for 4m 55s · "),
        "{}",
        lines[2]
    );
    assert_eq!(
        history_list(&[], None, 30, at(T0)),
        "No jobs that you can see in the last 30 days (jobs run in this channel, and yours anywhere)."
    );
}

#[test]
fn long_lists_fit_slack_and_say_how_many_were_left_out() {
    let jobs: Vec<Summary> = (0..500)
        .map(|n| summary(n, JobState::Completed, "UALICE", T0 - n as i64))
        .collect();
    for text in [
        status_list(&jobs, at(T0)),
        history_list(&jobs, None, 30, at(T0)),
        candidates("1a2b3c4d", &jobs, at(T0)),
    ] {
        assert!(text.chars().count() <= MAX_TEXT_CHARS, "{}", text.len());
        let shown = text.lines().filter(|l| l.contains("deploy")).count();
        assert!(shown > 10, "{shown}");
        assert!(
            text.contains(&format!("…and {} more.", 500 - shown)),
            "{text}"
        );
    }
}

#[test]
fn candidates_show_full_ids_to_choose_from() {
    let jobs = [
        summary(1, JobState::Completed, "UALICE", T0),
        summary(2, JobState::Running, "UBOB", T0),
    ];
    let text = candidates(" 1a2b3c4d ", &jobs, at(T0));
    assert!(
        text.starts_with("`1a2b3c4d` names more than one job you can see"),
        "{text}"
    );
    assert!(
        text.contains(&format!("`{}` · *deploy* · <@UBOB>", id(2))),
        "{text}"
    );
}

#[test]
fn one_job_in_full() {
    let text = job_in_full(&record(), at(T0 + 3600));
    let expected_start = ":x: failed · job `1a2b3c4d` · *deploy* `env=prod`\n\
        Id `1a2b3c4d-0000-0000-0000-000000000007` · requested by <@UALICE> in <#COPS> · <!date^1795000000^";
    assert!(text.starts_with(expected_start), "{text}");
    assert!(text.contains(" · took 58s\n"), "{text}");
    assert!(text.contains("*Error:* boom &lt;!channel&gt;"), "{text}");
    assert!(text.contains("\n• pending · <!date^1795000001^"), "{text}");
    assert!(text.contains(" · runner `host-1` · exit 3"), "{text}");
    assert!(
        text.ends_with(
            "```\nline 1\nline `\u{200B}`\u{200B}`2`\u{200B}`\u{200B}` &amp; &lt;b&gt;\n```"
        ),
        "{text}"
    );
    assert!(!text.contains("<!channel>"));
}

#[test]
fn a_stop_and_a_rerun_are_told() {
    let mut r = record();
    r.state = JobState::Stopped;
    r.rerun_of = Some(id(3));
    r.stop = Some(StopRequest {
        by: "UBOB".into(),
        at: at(T0 + 30),
        stop_job_id: id(9),
    });
    let text = job_in_full(&r, at(T0 + 3600));
    assert!(text.contains(" · rerun of `1a2b3c4d`"), "{text}");
    assert!(
        text.contains("\nStopped at the request of <@UBOB> · "),
        "{text}"
    );
}

#[test]
fn a_long_output_keeps_its_end_and_the_answer_fits() {
    let mut r = record();
    r.output_tail = (0..2000).map(|i| format!("line {i}\n")).collect();
    let text = job_in_full(&r, at(T0));
    assert!(text.chars().count() <= MAX_TEXT_CHARS);
    assert!(
        text.ends_with("line 1999\n```"),
        "{}",
        &text[text.len() - 50..]
    );
    assert!(text.contains("*Error:*"));
}
