//! The job card: the one message a job is shown in, rebuilt from scratch on every change.
//!
//! Block Kit: a headline section (state icon, runbook, parameters, state), a context line (who,
//! short job id, start, and once the job ended its duration: a running card is not rebuilt as
//! time passes, so it says since when, not for how long), the error's head when the job did not
//! complete, and for Automation jobs a link to the job in the Azure portal. `text` is the
//! notification fallback, a plain sentence that says the same in short. Every piece is
//! escaped and bounded (see `render`), so a card stays far below Slack's limits.

use super::super::Update;
use super::super::render::{emoji, escape_head, user, what};
use chatops_shared::job::{JobMessage, format_params};
use chatops_shared::mrkdwn;
use chatops_shared::slack_id::is_slack_id;
use serde_json::{Value, json};
use time::OffsetDateTime;

/// Upper bound of the error shown on the card (the whole error stream goes to the thread).
const MAX_CARD_ERROR_CHARS: usize = 500;
/// Upper bound of the plain fallback text.
const MAX_FALLBACK_CHARS: usize = 300;

/// The card for `update`, as a `chat.postMessage` / `chat.update` body (`text` and `blocks`).
pub fn card(job: &JobMessage, update: &Update, portal: Option<&str>) -> Value {
    let (icon, state) = match update {
        Update::Running { .. } => (":arrow_forward:", "Running"),
        Update::Waiting { .. } => (":hourglass_flowing_sand:", "Waiting"),
        Update::Finished(outcome) => (emoji(outcome.state), outcome.state.label()),
        Update::Notice(_) => (":information_source:", "Notice"),
    };
    let headline = format!("{icon} {} — *{state}*", what(job));
    let mut context = vec![
        format!("Requested by {}", user(job)),
        format!("job `{}`", job.short_id()),
    ];
    let mut blocks = vec![section(&headline)];
    let mut fallback = format!("{state}: {}", plain_what(job));
    match update {
        Update::Running { started_at } => {
            context.push(format!("started {}", mrkdwn::date(*started_at)));
            fallback.push_str(&format!(", running since {}", clock(*started_at)));
        }
        Update::Finished(outcome) => {
            match outcome.started_at {
                Some(started) => {
                    let took = mrkdwn::duration(outcome.ended_at - started);
                    context.push(format!("started {}", mrkdwn::date(started)));
                    context.push(format!("took {took}"));
                    fallback.push_str(&format!(" in {took}"));
                }
                None => context.push(format!("ended {}", mrkdwn::date(outcome.ended_at))),
            }
            if let Some(by) = outcome
                .stopped_by
                .as_deref()
                .filter(|u| is_slack_id(u, &['U', 'W']))
            {
                context.push(format!("stopped by <@{by}>"));
            }
            if let Some(error) = outcome.error.as_deref().filter(|e| !e.trim().is_empty()) {
                blocks.push(section(&format!(
                    "*Error:* {}",
                    escape_head(error.trim(), MAX_CARD_ERROR_CHARS)
                )));
            }
            if !outcome.output.trim().is_empty()
                || outcome
                    .error
                    .as_deref()
                    .is_some_and(|e| !e.trim().is_empty())
            {
                context.push("output in the thread".to_owned());
            }
        }
        Update::Waiting { reason } => {
            blocks.push(section(&escape_head(reason, MAX_CARD_ERROR_CHARS)));
            fallback.push_str(", not running yet");
        }
        Update::Notice(notice) => {
            blocks.push(section(&escape_head(notice, MAX_CARD_ERROR_CHARS)));
        }
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": context.join(" · ")}],
    }));
    if let Some(link) = portal {
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!("<{link}|Open the job in the Azure portal>")}],
        }));
    }
    fallback.push_str(&format!(" (job {})", job.short_id()));
    json!({
        "text": escape_head(&fallback, MAX_FALLBACK_CHARS),
        "blocks": blocks,
    })
}

/// A section block with mrkdwn text.
pub(super) fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

/// `runbook a=1 b=2 by ana`, unformatted (escaped by the caller); secret values masked, as in
/// the headline: this text is the message's notification and stays with it in Slack.
fn plain_what(job: &JobMessage) -> String {
    let mut what = job.runbook.clone();
    if !job.params.is_empty() {
        what.push(' ');
        what.push_str(&format_params(&job.shown_params()));
    }
    let who = job.user_name.trim();
    if !who.is_empty() {
        what.push_str(&format!(" by {who}"));
    }
    what
}

/// `12:34 UTC`, for the plain fallback (which cannot use Slack's date formatting).
fn clock(at: OffsetDateTime) -> String {
    // Out of range in UTC (a date near the year 9999 in another offset, from ARM): as given.
    let at = at.checked_to_offset(time::UtcOffset::UTC).unwrap_or(at);
    format!("{:02}:{:02} UTC", at.hour(), at.minute())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::{FinalState, Outcome};
    use crate::notify::slack::tests::{completed_at, extreme_instants, job};

    fn texts(card: &Value) -> String {
        card.to_string()
    }

    #[test]
    fn running_card_says_who_what_state_and_since_when() {
        let j = job("", time::Duration::ZERO);
        let started = OffsetDateTime::now_utc() - time::Duration::seconds(75);
        let c = card(
            &j,
            &Update::Running {
                started_at: started,
            },
            None,
        );
        let all = texts(&c);
        assert!(
            all.contains(":arrow_forward:") && all.contains("*Running*"),
            "{all}"
        );
        assert!(
            all.contains("Requested by ana") && all.contains(&j.short_id()),
            "{all}"
        );
        assert!(all.contains("started <!date^"), "{all}");
        assert!(!all.contains("running for"), "it would not change: {all}");
        let text = c["text"].as_str().unwrap();
        assert!(text.starts_with("Running: restart-web by ana"), "{text}");
        assert!(!all.contains("portal"));
    }

    #[test]
    fn no_timestamp_panics() {
        for at in extreme_instants() {
            for update in [Update::Running { started_at: at }, completed_at(at)] {
                let c = card(&job("", time::Duration::ZERO), &update, None);
                assert!(c["text"].as_str().is_some_and(|t| !t.is_empty()));
            }
        }
    }

    #[test]
    fn waiting_card_says_waiting_and_why() {
        let j = job("", time::Duration::ZERO);
        let c = card(
            &j,
            &Update::Waiting {
                reason: "Azure Automation holds the job back".into(),
            },
            None,
        );
        let all = texts(&c);
        assert!(
            all.contains(":hourglass_flowing_sand:") && all.contains("*Waiting*"),
            "{all}"
        );
        assert!(all.contains("holds the job back"), "{all}");
        let text = c["text"].as_str().unwrap();
        assert!(
            text.starts_with("Waiting: restart-web by ana, not running yet"),
            "{text}"
        );
    }

    #[test]
    fn a_secret_value_is_in_neither_the_card_nor_its_notification_text() {
        let mut j = job("", time::Duration::ZERO);
        j.params = std::collections::BTreeMap::from([
            ("env".into(), "prod".into()),
            ("token".into(), "hunter2".into()),
        ]);
        j.secret_params = vec!["token".into()];
        let now = OffsetDateTime::now_utc();
        for update in [
            Update::Running { started_at: now },
            Update::Waiting {
                reason: "held back".into(),
            },
            Update::Notice("a notice".into()),
        ] {
            let c = card(&j, &update, None);
            let all = texts(&c);
            assert!(!all.contains("hunter2"), "{all}");
            let text = c["text"].as_str().unwrap_or_default();
            assert!(text.contains("env=prod token=•••"), "{text}");
        }
    }

    #[test]
    fn finished_card_has_outcome_duration_error_and_portal_link() {
        let j = job("", time::Duration::ZERO);
        let now = OffsetDateTime::now_utc();
        let outcome = Outcome {
            state: FinalState::Failed,
            output: "x".into(),
            error: Some("boom <b>".into()),
            started_at: Some(now - time::Duration::seconds(72)),
            ended_at: now,
            stopped_by: None,
        };
        let c = card(
            &j,
            &Update::Finished(outcome),
            Some("https://portal.azure.com/#resource/x"),
        );
        let all = texts(&c);
        assert!(all.contains(":x:") && all.contains("*Failed*"), "{all}");
        assert!(
            all.contains("took 1m 12s") && all.contains("boom &lt;b&gt;"),
            "{all}"
        );
        assert!(
            all.contains("<https://portal.azure.com/#resource/x|Open the job"),
            "{all}"
        );
        assert!(all.contains("output in the thread"), "{all}");
        assert!(
            c["text"]
                .as_str()
                .unwrap()
                .starts_with("Failed: restart-web")
        );
    }
}
