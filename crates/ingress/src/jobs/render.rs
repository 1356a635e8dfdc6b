//! The longer job-control answers: the `status` list, one job in full, `history`, and the
//! candidates of an ambiguous id. Pure functions from records to mrkdwn, bounded to
//! [`MAX_TEXT_CHARS`]: a list that does not fit says how many it left out; of a job's output,
//! the end is kept.

use super::words::{
    MAX_TEXT_CHARS, channel, date, duration, head, runbook, short, state, state_word, user, what,
};
use chatops_shared::command::is_hidden;
use chatops_shared::mrkdwn::escape;
use chatops_shared::records::{JobRecord, JobState, Summary};
use time::OffsetDateTime;

/// The most state changes shown of one job (the newest).
const MAX_HISTORY: usize = 10;
/// Upper bound of the error shown.
const MAX_ERROR_CHARS: usize = 800;
/// Breaks a run of backticks so output cannot close its code block.
const ZERO_WIDTH_SPACE: char = '\u{200B}';

/// `/runbook status`: the caller's recent jobs and what runs in this channel, newest first.
pub fn status_list(jobs: &[Summary], now: OffsetDateTime) -> String {
    if jobs.is_empty() {
        return "You ran no job in the last 24 hours, and no job is running in this channel. `/runbook history` lists older jobs.".to_owned();
    }
    let head = "Your jobs of the last 24 hours and the jobs running in this channel, newest first:";
    let lines = jobs.iter().map(|s| {
        format!(
            "{} · {} · {} · {} ago · {}",
            state(s.state),
            runbook(&s.runbook),
            user(&s.user_id),
            duration(now - s.requested_at),
            short(&s.job_id)
        )
    });
    list(head, lines, "`/runbook status <job>` shows one in full.")
}

/// `/runbook history [runbook]`: the newest jobs the caller may see, with outcome and duration.
pub fn history_list(
    jobs: &[Summary],
    filter: Option<&str>,
    days: u16,
    now: OffsetDateTime,
) -> String {
    let of = filter
        .map(|r| format!(" of {}", runbook(r)))
        .unwrap_or_default();
    if jobs.is_empty() {
        return format!(
            "No jobs{of} that you can see in the last {days} days (jobs run in this channel, and yours anywhere)."
        );
    }
    let head = format!(
        "The last {} jobs{of} you can see, newest first:",
        jobs.len()
    );
    let lines = jobs.iter().map(|s| {
        format!(
            "{} · {} · {} · {} · {} · {}",
            state(s.state),
            runbook(&s.runbook),
            user(&s.user_id),
            date(s.requested_at),
            took(s.state, s.started_at, s.ended_at, now),
            short(&s.job_id)
        )
    });
    list(&head, lines, "`/runbook status <job>` shows one in full.")
}

/// The jobs an ambiguous id names, so the caller can give more of it.
pub fn candidates(typed: &str, jobs: &[Summary], now: OffsetDateTime) -> String {
    let head = format!(
        "`{}` names more than one job you can see; give more of its id:",
        escape(&chatops_shared::mrkdwn::inline_code(typed.trim()))
    );
    let lines = jobs.iter().map(|s| {
        format!(
            "`{}` · {} · {} · {} ago · {}",
            s.job_id,
            runbook(&s.runbook),
            user(&s.user_id),
            duration(now - s.requested_at),
            state_word(s.state)
        )
    });
    list(&head, lines, "")
}

/// `/runbook status <job>`: everything the record tells.
pub fn job_in_full(r: &JobRecord, now: OffsetDateTime) -> String {
    let mut text = format!(
        "{} · job {} · {}\nId `{}` · requested by {} in {} · {}",
        state(r.state),
        short(&r.job_id),
        what(&r.runbook, &r.params),
        r.job_id,
        user(&r.user_id),
        channel(&r.channel_id),
        date(r.requested_at)
    );
    if let Some(original) = r.rerun_of {
        text.push_str(&format!(" · rerun of {}", short(&original)));
    }
    match (r.started_at, r.ended_at) {
        (Some(started), Some(ended)) => text.push_str(&format!(
            "\nStarted {} · ended {} · took {}",
            date(started),
            date(ended),
            duration(ended - started)
        )),
        (Some(started), None) => text.push_str(&format!(
            "\nStarted {} · running for {}",
            date(started),
            duration(now - started)
        )),
        (None, Some(ended)) => text.push_str(&format!("\nEnded {} without starting", date(ended))),
        (None, None) => text.push_str("\nNot started yet"),
    }
    if let Some(stop) = &r.stop {
        let verb = if r.state == JobState::Stopped {
            "Stopped at the request of"
        } else {
            "Stop asked by"
        };
        text.push_str(&format!("\n{verb} {} · {}", user(&stop.by), date(stop.at)));
    }
    if let Some(error) = r.error.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        text.push_str(&format!(
            "\n*Error:* {}",
            head(&escape(error), MAX_ERROR_CHARS)
        ));
    }
    if !r.history.is_empty() {
        text.push_str("\n*States:*");
        let skip = r.history.len().saturating_sub(MAX_HISTORY);
        if skip > 0 {
            text.push_str(&format!(" ({skip} earlier left out)"));
        }
        for change in &r.history[skip..] {
            text.push_str(&format!(
                "\n• {} · {} · runner `{}`",
                state_word(change.state),
                date(change.at),
                head(&escape(&change.runner.replace('`', "'")), 80)
            ));
            if let Some(note) = change.note.as_deref().filter(|n| !n.trim().is_empty()) {
                text.push_str(&format!(" · {}", head(&escape(note.trim()), 200)));
            }
        }
    }
    push_output(&mut text, &r.output_tail);
    head(&text, MAX_TEXT_CHARS)
}

/// How long a job took, or how it stands.
fn took(
    state: JobState,
    started: Option<OffsetDateTime>,
    ended: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> String {
    match (started, ended) {
        (Some(started), Some(ended)) => format!("took {}", duration(ended - started)),
        (Some(started), None) => format!("running for {}", duration(now - started)),
        (None, _) if state.is_final() => "never started".to_owned(),
        (None, _) => "not started yet".to_owned(),
    }
}

/// `head`, then as many lines as fit with the closing `tail`, and a count of those left out.
fn list(head: &str, lines: impl ExactSizeIterator<Item = String>, tail: &str) -> String {
    let total = lines.len();
    // Room for the note on what was left out, at its longest.
    let note_room = format!("\n…and {total} more.").chars().count();
    let mut text = head.to_owned();
    let mut used = text.chars().count() + tail.chars().count() + 1 + note_room;
    let mut shown = 0;
    for line in lines {
        let len = line.chars().count() + 1;
        if used + len > MAX_TEXT_CHARS {
            break;
        }
        used += len;
        text.push('\n');
        text.push_str(&line);
        shown += 1;
    }
    if shown < total {
        text.push_str(&format!("\n…and {} more.", total - shown));
    }
    if !tail.is_empty() {
        text.push('\n');
        text.push_str(tail);
    }
    text
}

/// Appends the end of the output as a code block, as much as fits.
fn push_output(text: &mut String, output: &str) {
    let output = output.trim_end();
    if output.is_empty() {
        return;
    }
    const LABEL: &str = "\n*Output* (the end):\n```\n";
    const CLOSE: &str = "\n```";
    let room = MAX_TEXT_CHARS
        .saturating_sub(text.chars().count() + LABEL.chars().count() + CLOSE.chars().count());
    if room < 40 {
        return;
    }
    text.push_str(LABEL);
    text.push_str(&escape_tail(output, room));
    text.push_str(CLOSE);
}

/// The escaped end of `text` in at most `max` characters: Slack's control characters escaped,
/// hidden characters shown as `<U+XXXX>`, backtick runs broken so the block stays closed.
fn escape_tail(text: &str, max: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut pieces: Vec<String> = Vec::new();
    let mut len = 0;
    for i in (0..chars.len()).rev() {
        let c = chars[i];
        let piece = if c == '`' && i > 0 && chars[i - 1] == '`' {
            format!("{ZERO_WIDTH_SPACE}`")
        } else if is_hidden(c) && c != '\n' && c != '\t' {
            format!("&lt;U+{:04X}&gt;", u32::from(c))
        } else {
            escape(c.encode_utf8(&mut [0; 4]))
        };
        let piece_len = piece.chars().count();
        if len + piece_len > max {
            break;
        }
        len += piece_len;
        pieces.push(piece);
    }
    pieces.reverse();
    pieces.concat()
}

#[cfg(test)]
mod tests;
