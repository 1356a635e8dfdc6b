//! The job's output as replies in its card's thread: code blocks, split across messages, each
//! message within Slack's limits (at most 50 blocks, 3,000 characters per section text, 12,000
//! characters in all; see `/work/shared/reference/slack.md` and bolt-js #2509).
//!
//! Output longer than [`MAX_OUTPUT_MESSAGES`] messages is cut at its start (the end of a log
//! tells what happened) and the first reply says how much is shown, how much there was, and
//! where the rest is. The error stream follows in replies of its own. Lengths are counted in
//! UTF-16 units, which is never less than Slack's character count, so multi-byte characters
//! cannot push a message over a limit; very long lines are split where the room ends.

use super::super::render::{escape_head, shown_pieces};
use super::card::section;
use crate::executor::Outcome;
use chatops_shared::job::JobMessage;
use serde_json::{Value, json};

/// Escaped output in one code section; with its fences it stays under 3,000 characters.
const SECTION_BODY: usize = 2_900;
/// Code sections per reply: 3 × 2,900 with the notes stays under 12,000 characters in all.
pub(super) const SECTIONS_PER_MESSAGE: usize = 3;
/// Replies for the output stream at most.
pub const MAX_OUTPUT_MESSAGES: usize = 4;
/// Replies for the error stream at most.
pub const MAX_ERROR_MESSAGES: usize = 1;
/// A section is cut after a line break when there is one this close to where it would start.
const LINE_ALIGN: usize = 400;

/// The replies for a finished job's output and error stream, in order (none when both are
/// empty).
pub fn replies(job: &JobMessage, outcome: &Outcome, portal: Option<&str>) -> Vec<Value> {
    let mut replies = stream(
        job,
        outcome.output.trim_end(),
        ":page_facing_up: *Output*",
        "Output",
        MAX_OUTPUT_MESSAGES,
        portal,
    );
    replies.extend(error_replies(job, outcome, portal));
    replies
}

/// The replies for a finished job's error stream alone (none when it is empty).
pub fn error_replies(job: &JobMessage, outcome: &Outcome, portal: Option<&str>) -> Vec<Value> {
    match outcome.error.as_deref() {
        Some(error) => stream(
            job,
            error.trim_end(),
            ":warning: *Error stream*",
            "Error stream",
            MAX_ERROR_MESSAGES,
            portal,
        ),
        None => Vec::new(),
    }
}

fn stream(
    job: &JobMessage,
    text: &str,
    title: &str,
    plain_title: &str,
    max_messages: usize,
    portal: Option<&str>,
) -> Vec<Value> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    // The executor keeps a bounded tail of long output and says so on its first line.
    let (kept_note, text) = match text.split_once('\n') {
        Some((first, rest)) if first.starts_with("[output truncated:") => (Some(first), rest),
        _ => (None, text),
    };
    let cut = tail_sections(text, max_messages * SECTIONS_PER_MESSAGE);
    let mut header = title.to_owned();
    if let Some(note) = kept_note {
        header.push_str(&format!(
            " ({})",
            escape_head(note.trim_start_matches('[').trim_end_matches(']'), 200)
        ));
    }
    if cut.shown < cut.total {
        header.push_str(&format!(
            " — cut: the last {} of {} characters are shown",
            thousands(cut.shown),
            thousands(cut.total),
        ));
    } else {
        header.push_str(&format!(" — {} characters", thousands(cut.total)));
    }
    if kept_note.is_some() || cut.shown < cut.total {
        header.push_str(&format!(
            ". The job record keeps the end of it (`/runbook status {}`)",
            job.short_id()
        ));
        match portal {
            Some(link) => header.push_str(&format!("; all of it is in <{link}|the Azure portal>.")),
            None => header.push('.'),
        }
    }
    let parts = cut.sections.chunks(SECTIONS_PER_MESSAGE).count();
    cut.sections
        .chunks(SECTIONS_PER_MESSAGE)
        .enumerate()
        .map(|(i, sections)| {
            let mut blocks = Vec::with_capacity(sections.len() + 1);
            if i == 0 {
                blocks.push(json!({
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": header}],
                }));
            }
            blocks.extend(sections.iter().map(|body| section(&code_block(body))));
            json!({
                "text": format!("{plain_title} of job {} (part {} of {parts})", job.short_id(), i + 1),
                "blocks": blocks,
            })
        })
        .collect()
}

/// The tail of a text, escaped, in sections of at most [`SECTION_BODY`] units.
#[derive(Debug)]
pub(super) struct Cut {
    /// In text order.
    pub(super) sections: Vec<String>,
    /// Characters of the text shown, and in all.
    pub(super) shown: usize,
    pub(super) total: usize,
}

/// As much of the end of `text` as fits in `max_sections` sections.
pub(super) fn tail_sections(text: &str, max_sections: usize) -> Cut {
    let chars: Vec<char> = text.chars().collect();
    let pieces = shown_pieces(text);
    let cost: Vec<usize> = pieces
        .iter()
        .map(|p| p.chars().map(char::len_utf16).sum())
        .collect();
    let mut bounds = Vec::new();
    let mut end = chars.len();
    while end > 0 && bounds.len() < max_sections {
        let mut start = end;
        let mut used = 0;
        while start > 0 && used + cost[start - 1] <= SECTION_BODY {
            start -= 1;
            used += cost[start];
        }
        if start == end {
            // A single piece larger than a section cannot happen (pieces are a few units).
            break;
        }
        if start > 0
            && let Some(nl) = (start..end.min(start + LINE_ALIGN)).find(|&i| chars[i] == '\n')
            && nl + 1 < end
        {
            start = nl + 1;
        }
        bounds.push((start, end));
        end = start;
    }
    bounds.reverse();
    Cut {
        sections: bounds.iter().map(|&(s, e)| pieces[s..e].concat()).collect(),
        shown: chars.len() - end,
        total: chars.len(),
    }
}

/// A code block around `body`; a backtick at either end is kept off the fence.
pub(super) fn code_block(body: &str) -> String {
    let lead = if body.starts_with('`') {
        "\u{200B}"
    } else {
        ""
    };
    let trail = if body.ends_with('`') { "\u{200B}" } else { "" };
    format!("```\n{lead}{body}{trail}\n```")
}

/// `204800` as `204,800`.
pub(super) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::executor::FinalState;
    use crate::notify::slack::tests::job;

    fn outcome(output: String, error: Option<String>) -> Outcome {
        Outcome {
            state: FinalState::Completed,
            output,
            error,
            started_at: None,
            ended_at: time::OffsetDateTime::now_utc(),
            stopped_by: None,
        }
    }

    fn units(s: &str) -> usize {
        s.chars().map(char::len_utf16).sum()
    }

    /// Every reply within Slack's limits.
    fn assert_within_limits(reply: &Value) {
        let blocks = reply["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50);
        let mut total = units(reply["text"].as_str().unwrap());
        for b in blocks {
            let t = b["text"]["text"]
                .as_str()
                .or_else(|| b["elements"][0]["text"].as_str())
                .unwrap();
            assert!(units(t) <= 3000, "section of {}", units(t));
            total += units(t);
        }
        assert!(total <= 12_000, "message of {total}");
    }

    #[test]
    fn short_output_is_one_reply_whole() {
        let r = replies(
            &job("", time::Duration::ZERO),
            &outcome("hello\n".into(), None),
            None,
        );
        assert_eq!(r.len(), 1);
        let all = r[0].to_string();
        assert!(
            all.contains("```\\nhello\\n```") && all.contains("5 characters"),
            "{all}"
        );
        assert!(!all.contains("cut"));
    }

    #[test]
    fn large_multibyte_output_is_cut_at_its_start_and_stays_within_limits() {
        // 200 KB: lines of mixed widths, one line of 50,000 characters, emoji (two UTF-16 units).
        let mut out = String::new();
        let mut n = 0;
        while out.len() < 200 * 1024 {
            out.push_str(&format!("line {n}: żółć 日本語 🚀 <tag> & ``` done\n"));
            if n == 500 {
                out.push_str(&"x".repeat(50_000));
                out.push('\n');
            }
            n += 1;
        }
        out.push_str("THE END");
        let r = replies(
            &job("", time::Duration::ZERO),
            &outcome(out.clone(), Some("bad\n".repeat(3))),
            Some("https://portal.azure.com/#resource/x"),
        );
        assert_eq!(r.len(), MAX_OUTPUT_MESSAGES + 1);
        for reply in &r {
            assert_within_limits(reply);
        }
        let first = r[0].to_string();
        let total = thousands(out.chars().count());
        assert!(
            first.contains(&format!("of {total} characters are shown")),
            "{first}"
        );
        assert!(first.contains("the Azure portal"));
        assert!(r[MAX_OUTPUT_MESSAGES - 1].to_string().contains("THE END"));
        assert!(r[MAX_OUTPUT_MESSAGES].to_string().contains("Error stream"));
        // Output cannot close its code block.
        assert!(!first.contains("``` done"));
    }

    #[test]
    fn a_very_long_line_is_split_into_sections() {
        let r = replies(
            &job("", time::Duration::ZERO),
            &outcome("é".repeat(20_000), None),
            None,
        );
        for reply in &r {
            assert_within_limits(reply);
        }
        let shown: usize = r
            .iter()
            .flat_map(|m| m["blocks"].as_array().unwrap().clone())
            .filter_map(|b| b["text"]["text"].as_str().map(|t| t.matches('é').count()))
            .sum();
        assert_eq!(shown, 20_000);
    }

    #[test]
    fn the_executors_note_on_a_kept_tail_goes_to_the_header() {
        let out = "[output truncated: last 10 of 204800 bytes kept]\nabc\n".to_owned();
        let r = replies(&job("", time::Duration::ZERO), &outcome(out, None), None);
        let header = r[0]["blocks"][0]["elements"][0]["text"].as_str().unwrap();
        assert!(
            header.contains("(output truncated: last 10 of 204800 bytes kept"),
            "{header}"
        );
        assert_eq!(r[0]["blocks"][1]["text"]["text"], "```\nabc\n```");
    }

    #[test]
    fn numbers_read_with_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(204_800), "204,800");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
