//! The live tail in a job card's thread: each batch of new output (at most one per tail
//! interval, from the worker) becomes one reply of code blocks within Slack's limits (its
//! last lines when it holds more than one message; the reply says how many lines it leaves
//! out). A reply that cannot go out in time (the channel's posts are paced, Slack asked to wait)
//! or is refused is skipped, not retried: the lines are counted, and the closing note of the
//! job's output says how many were not shown live and where the whole output is.

use super::card::section;
use super::thread::{SECTIONS_PER_MESSAGE, code_block, tail_sections, thousands};
use chatops_shared::job::JobMessage;
use serde_json::{Value, json};

/// What the live tail did with one job's output.
#[derive(Debug, Clone, Default)]
pub(super) struct Shown {
    /// Output went to the live tail: the final status adds only what it did not show.
    pub(super) used: bool,
    /// Lines shown in the thread.
    pub(super) lines: usize,
    /// Lines not shown (cut from a batch too long for one message, or a reply skipped).
    pub(super) skipped: usize,
    /// A reply was refused for good (the thread is closed to the bot): the rest is skipped.
    pub(super) off: bool,
}

/// Lines in `text` (a last line without a line break counts).
pub(super) fn lines(text: &str) -> usize {
    text.matches('\n').count() + usize::from(!text.is_empty() && !text.ends_with('\n'))
}

/// The reply for one batch, and how many of its lines it leaves out.
pub(super) fn reply(job: &JobMessage, text: &str) -> (Value, usize) {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let cut = tail_sections(body, SECTIONS_PER_MESSAGE);
    let hidden = if cut.shown < cut.total {
        let left_out: String = body.chars().take(cut.total - cut.shown).collect();
        // A line cut in two counts as shown.
        left_out.matches('\n').count().max(1)
    } else {
        0
    };
    let mut blocks = Vec::with_capacity(cut.sections.len() + 1);
    if hidden > 0 {
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!(
                "… {} lines not shown live (more than one message holds came at once)",
                thousands(hidden)
            )}],
        }));
    }
    blocks.extend(cut.sections.iter().map(|s| section(&code_block(s))));
    let reply = json!({
        "text": format!("Output of job {} (live)", job.short_id()),
        "blocks": blocks,
    });
    (reply, hidden)
}

/// The note that closes a live-tailed output when some of it was not shown: how much was
/// shown, how much there was, and `whole`, where all of it is.
pub(super) fn closing(job: &JobMessage, shown: &Shown, whole: &str) -> Option<Value> {
    if shown.skipped == 0 {
        return None;
    }
    let text = format!(
        ":page_facing_up: *Output* — {} of {} lines shown in this thread; {} lines not shown live. {whole}",
        thousands(shown.lines),
        thousands(shown.lines + shown.skipped),
        thousands(shown.skipped),
    );
    Some(json!({
        "text": format!("Output of job {}: {} lines not shown live", job.short_id(), shown.skipped),
        "blocks": [{"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::slack::tests::job;

    #[test]
    fn counts_lines() {
        assert_eq!(lines(""), 0);
        assert_eq!(lines("a\n"), 1);
        assert_eq!(lines("a\nb"), 2);
    }

    #[test]
    fn a_long_batch_shows_its_end_and_says_how_many_lines_it_leaves_out() {
        let text: String = (0..2_000).map(|n| format!("line {n} żółć 🚀\n")).collect();
        let (reply, hidden) = reply(&job("", time::Duration::ZERO), &text);
        let all = reply.to_string();
        assert!(all.contains("line 1999 żółć"), "{all}");
        assert!(!all.contains("line 0 "), "{all}");
        assert!(hidden > 1_000 && hidden < 2_000, "{hidden}");
        assert!(all.contains(&format!("{} lines not shown live", thousands(hidden))));
        let blocks = reply["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), SECTIONS_PER_MESSAGE + 1);
        let units: usize = all.encode_utf16().count();
        assert!(units < 12_000, "{units}");
    }

    #[test]
    fn a_short_batch_is_shown_whole() {
        let (reply, hidden) = reply(&job("", time::Duration::ZERO), "a\nb\n");
        assert_eq!(hidden, 0);
        assert_eq!(reply["blocks"][0]["text"]["text"], "```\na\nb\n```");
    }
}
