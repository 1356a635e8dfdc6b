//! The Slack messages for a job's updates: pure functions from a job and an update to JSON.
//!
//! Everything a user or a script wrote is escaped (`&`, `<`, `>` are Slack's control
//! characters; characters that reorder or hide text are shown as `<U+XXXX>`) and bounded, so the whole `text` stays under [`MAX_TEXT_CHARS`]; of the output,
//! the tail is kept, because the end of a log is what tells what happened.

use super::Update;
use crate::executor::{FinalState, Outcome};
use chatops_shared::job::{JobMessage, format_params};
use chatops_shared::mrkdwn::{self, escape_char};
use chatops_shared::slack_id::is_slack_id;
use serde_json::{Value, json};
use std::borrow::Cow;

/// Upper bound of a message's `text`, in characters (Slack advises under 4,000).
pub const MAX_TEXT_CHARS: usize = 3500;
/// Upper bound of the error shown, in characters after escaping.
const MAX_ERROR_CHARS: usize = 800;
/// Upper bound of the parameters shown, in characters after escaping.
const MAX_PARAMS_CHARS: usize = 300;
/// Upper bound of a runbook, user or channel name shown.
const MAX_NAME_CHARS: usize = 100;
/// Breaks a run of backticks so output cannot close its code block.
pub(super) const ZERO_WIDTH_SPACE: char = '\u{200B}';

/// The body for the command's `response_url`: replaces the previous status message, visible to
/// the whole channel; to the requester only when a secret parameter has a value, since Slack
/// shows the command as typed above an in-channel answer to it.
pub fn response_url_message(job: &JobMessage, update: &Update) -> Value {
    let audience = if job.has_secret_values() {
        "ephemeral"
    } else {
        "in_channel"
    };
    json!({
        "response_type": audience,
        "replace_original": true,
        "text": text(job, update),
    })
}

/// The body for the incoming webhook, whose channel is fixed by Slack: the text says where the
/// command came from.
pub fn webhook_message(job: &JobMessage, update: &Update) -> Value {
    let prefix = format!("from {}: ", channel(job));
    json!({ "text": compose(job, update, &prefix) })
}

/// The message text (mrkdwn), at most [`MAX_TEXT_CHARS`] characters.
pub fn text(job: &JobMessage, update: &Update) -> String {
    compose(job, update, "")
}

fn compose(job: &JobMessage, update: &Update, prefix: &str) -> String {
    let who = user(job);
    let what = what(job);
    let id = job.short_id();
    let mut text = String::from(prefix);
    match update {
        Update::Running { started_at } => {
            text.push_str(&format!(
                ":arrow_forward: {who} started {what} — running (job `{id}`)\nStarted {}",
                mrkdwn::date(*started_at)
            ));
        }
        Update::Finished(outcome) => {
            let verb = if outcome.started_at.is_some() {
                "ran"
            } else {
                "asked for"
            };
            text.push_str(&format!(
                "{} {who} {verb} {what} — *{}*",
                emoji(outcome.state),
                outcome.state.label()
            ));
            if let Some(started) = outcome.started_at {
                text.push_str(&format!(
                    " in {}",
                    mrkdwn::duration(outcome.ended_at - started)
                ));
            }
            text.push_str(&format!(" (job `{id}`)\n"));
            match outcome.started_at {
                Some(started) => text.push_str(&format!(
                    "Started {} · ended {}",
                    mrkdwn::date(started),
                    mrkdwn::date(outcome.ended_at)
                )),
                None => text.push_str(&format!("Ended {}", mrkdwn::date(outcome.ended_at))),
            }
            if let Some(by) = outcome
                .stopped_by
                .as_deref()
                .filter(|u| is_slack_id(u, &['U', 'W']))
            {
                text.push_str(&format!("\nStopped by <@{by}>"));
            }
            if let Some(error) = outcome.error.as_deref().filter(|e| !e.trim().is_empty()) {
                text.push_str("\n*Error:* ");
                text.push_str(&escape_head(error.trim(), MAX_ERROR_CHARS));
            }
            push_output(&mut text, outcome);
        }
        Update::Waiting { reason } => {
            text.push_str(&format!(
                ":hourglass_flowing_sand: {who} asked for {what} — *waiting* (job `{id}`)\n{}",
                escape_head(reason, MAX_ERROR_CHARS)
            ));
        }
        Update::Notice(notice) => {
            text.push_str(&format!(
                ":information_source: {} (job `{id}`, {what})",
                escape_head(notice, MAX_ERROR_CHARS)
            ));
        }
    }
    // By construction the pieces fit; this guards the limit should that ever change.
    if text.chars().count() > MAX_TEXT_CHARS {
        text = text.chars().take(MAX_TEXT_CHARS - 1).collect();
        text.push('…');
    }
    text
}

/// Appends the output's tail as a code block, with a note when it was cut.
fn push_output(text: &mut String, outcome: &Outcome) {
    let output = outcome.output.trim_end();
    if output.is_empty() {
        return;
    }
    const FENCES: usize = "\n```\n".len() + "\n```".len();
    let total = output.chars().count();
    let room = MAX_TEXT_CHARS.saturating_sub(text.chars().count() + FENCES);
    let (mut shown, mut count) = escape_tail(output, room);
    if count < total {
        // Sized for the largest counts the note can hold, so it fits whatever is shown.
        let note_len = truncation_note(total, total).chars().count();
        (shown, count) = escape_tail(output, room.saturating_sub(note_len));
        text.push_str(&truncation_note(count, total));
    }
    text.push_str("\n```\n");
    text.push_str(&shown);
    text.push_str("\n```");
}

fn truncation_note(shown: usize, total: usize) -> String {
    format!("\n(output truncated: last {shown} of {total} characters shown)")
}

pub(super) fn emoji(state: FinalState) -> &'static str {
    match state {
        FinalState::Completed => ":white_check_mark:",
        FinalState::Failed => ":x:",
        FinalState::TimedOut => ":hourglass:",
        FinalState::Refused => ":no_entry:",
        FinalState::Stopped => ":octagonal_sign:",
        FinalState::Suspended => ":double_vertical_bar:",
        FinalState::Expired => ":alarm_clock:",
        FinalState::Interrupted => ":zap:",
    }
}

/// `*runbook*` and the parameters as the user typed them, `name=value` in name order.
pub(super) fn what(job: &JobMessage) -> String {
    let runbook = format!(
        "*{}*",
        escape_head(&job.runbook.replace('*', ""), MAX_NAME_CHARS)
    );
    if job.params.is_empty() {
        return runbook;
    }
    let params = mrkdwn::inline_code(&format_params(&job.shown_params()));
    format!("{runbook} `{}`", escape_head(&params, MAX_PARAMS_CHARS))
}

/// A mention when the ID looks like a Slack user ID, else the (escaped) name: the message came
/// off a queue and is not trusted to hold only what Slack sent.
pub(super) fn user(job: &JobMessage) -> String {
    if is_slack_id(&job.user_id, &['U', 'W']) {
        format!("<@{}>", job.user_id)
    } else if !job.user_name.trim().is_empty() {
        escape_head(job.user_name.trim(), MAX_NAME_CHARS)
    } else {
        "someone".to_owned()
    }
}

fn channel(job: &JobMessage) -> String {
    if is_slack_id(&job.channel_id, &['C', 'G']) {
        format!("<#{}>", job.channel_id)
    } else if job.channel_id.starts_with('D') {
        "a direct message".to_owned()
    } else {
        match job.channel_name.as_deref().map(str::trim) {
            Some(name) if !name.is_empty() => format!("#{}", escape_head(name, MAX_NAME_CHARS)),
            _ => "an unknown channel".to_owned(),
        }
    }
}

/// How a character of user or script text is shown: Slack's control characters escaped, and
/// characters that reorder or hide text (bidirectional overrides and isolates, zero-width
/// characters, the BOM) made visible as `<U+XXXX>`, so that what is shown is what was written.
pub(super) fn shown(c: char) -> Cow<'static, str> {
    match escape_char(c) {
        Some(e) => Cow::Borrowed(e),
        None if is_invisible(c) => Cow::Owned(format!("&lt;U+{:04X}&gt;", u32::from(c))),
        None => Cow::Owned(c.to_string()),
    }
}

/// The characters the command language refuses as hidden (bidi controls, format characters,
/// control characters other than tab and line breaks): one list for what is refused and what
/// is made visible.
fn is_invisible(c: char) -> bool {
    chatops_shared::command::is_hidden(c)
}

/// Each character of `text` as shown: escaped ([`shown`]), and every backtick that follows
/// another preceded by a zero-width space, so that no run of backticks can open or close a
/// code block.
pub(super) fn shown_pieces(text: &str) -> Vec<Cow<'static, str>> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if c == '`' && i > 0 && chars[i - 1] == '`' {
                Cow::Owned(format!("{ZERO_WIDTH_SPACE}`"))
            } else {
                shown(c)
            }
        })
        .collect()
}

/// The escaped head of `text`, at most `max` characters, ending in `…` when cut.
pub(super) fn escape_head(text: &str, max: usize) -> String {
    // Runs of backticks broken as in output: an error quoting ``` cannot open a code block
    // that the output's own block would then close (single backticks stay inline code).
    let pieces = shown_pieces(text);
    let total: usize = pieces.iter().map(|p| p.chars().count()).sum();
    if total <= max {
        return pieces.concat();
    }
    let mut out = String::new();
    let mut len = 0;
    for piece in pieces {
        let piece_len = piece.chars().count();
        if len + piece_len > max.saturating_sub(1) {
            break;
        }
        len += piece_len;
        out.push_str(&piece);
    }
    out.push('…');
    out
}

/// The escaped tail of `text` that fits in `max` characters, with backtick runs broken, and
/// how many characters of `text` it shows.
fn escape_tail(text: &str, max: usize) -> (String, usize) {
    // Escaping never shortens, so at most `max` characters of the tail can fit.
    let chars: Vec<char> = text.chars().collect();
    let start = chars.len().saturating_sub(max);
    let mut pieces: Vec<(usize, Cow<'static, str>)> = Vec::with_capacity(chars.len() - start);
    for i in start..chars.len() {
        let c = chars[i];
        let piece = if c == '`' && i > 0 && chars[i - 1] == '`' {
            Cow::Owned(format!("{ZERO_WIDTH_SPACE}`"))
        } else {
            shown(c)
        };
        pieces.push((piece.chars().count(), piece));
    }
    let mut len = 0;
    let mut keep = 0;
    for (piece_len, _) in pieces.iter().rev() {
        if len + piece_len > max {
            break;
        }
        len += piece_len;
        keep += 1;
    }
    let shown: String = pieces[pieces.len() - keep..]
        .iter()
        .map(|(_, p)| p.as_ref())
        .collect();
    (shown, keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatops_shared::job::{JobKind, SCHEMA_VERSION};
    use chatops_shared::secret::Secret;
    use std::collections::BTreeMap;
    use time::OffsetDateTime;
    use uuid::Uuid;

    const T0: i64 = 1_700_000_000; // 2023-11-14 22:13:20 UTC

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    fn job() -> JobMessage {
        JobMessage {
            schema: SCHEMA_VERSION,
            job_id: Uuid::parse_str("1a2b3c4d-0000-5000-8000-000000000000").unwrap(),
            kind: JobKind::Run,
            runbook: "restart-web".into(),
            params: BTreeMap::from([("env".into(), "prod".into()), ("count".into(), "1".into())]),
            user_id: "U123".into(),
            user_name: "ana".into(),
            team_id: "T1".into(),
            channel_id: "C123".into(),
            channel_name: Some("ops".into()),
            response_url: Some(Secret::new("https://hooks.slack.com/commands/T1/1/x")),
            requested_at: at(T0),
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

    fn finished(state: FinalState, output: &str, error: Option<&str>) -> Update {
        Update::Finished(Outcome {
            state,
            output: output.into(),
            error: error.map(Into::into),
            started_at: Some(at(T0)),
            ended_at: at(T0 + 72),
            stopped_by: None,
        })
    }

    #[test]
    fn running() {
        let t = text(&job(), &Update::Running { started_at: at(T0) });
        assert_eq!(
            t,
            ":arrow_forward: <@U123> started *restart-web* `count=1 env=prod` — running (job `1a2b3c4d`)\n\
             Started <!date^1700000000^{date_short_pretty} {time}|2023-11-14 22:13 UTC>"
        );
    }

    #[test]
    fn an_error_quoting_a_code_fence_cannot_open_a_code_block() {
        let t = text(
            &job(),
            &finished(FinalState::Failed, "the output", Some("bad ```x `y`")),
        );
        // Only the output's own block opens and closes one.
        assert_eq!(t.matches("```").count(), 2, "{t}");
        assert!(t.contains("`y`"), "single backticks stay: {t}");
    }

    #[test]
    fn waiting_says_why_escaped() {
        let t = text(
            &job(),
            &Update::Waiting {
                reason: "held back <until> a slot frees".into(),
            },
        );
        assert_eq!(
            t,
            ":hourglass_flowing_sand: <@U123> asked for *restart-web* `count=1 env=prod` — *waiting* (job `1a2b3c4d`)\n\
             held back &lt;until&gt; a slot frees"
        );
    }

    #[test]
    fn completed_with_output() {
        let t = text(
            &job(),
            &finished(FinalState::Completed, "restarted 3 pods\n", None),
        );
        assert_eq!(
            t,
            ":white_check_mark: <@U123> ran *restart-web* `count=1 env=prod` — *Completed* in 1m 12s (job `1a2b3c4d`)\n\
             Started <!date^1700000000^{date_short_pretty} {time}|2023-11-14 22:13 UTC> · \
             ended <!date^1700000072^{date_short_pretty} {time}|2023-11-14 22:14 UTC>\n\
             ```\nrestarted 3 pods\n```"
        );
    }

    #[test]
    fn every_state_has_its_emoji_and_label() {
        for (state, start) in [
            (FinalState::Completed, ":white_check_mark: "),
            (FinalState::Failed, ":x: "),
            (FinalState::TimedOut, ":hourglass: "),
            (FinalState::Refused, ":no_entry: "),
            (FinalState::Stopped, ":octagonal_sign: "),
            (FinalState::Suspended, ":double_vertical_bar: "),
            (FinalState::Expired, ":alarm_clock: "),
            (FinalState::Interrupted, ":zap: "),
        ] {
            let t = text(&job(), &finished(state, "", Some("boom")));
            assert!(t.starts_with(start), "{t}");
            assert!(
                t.contains(&format!("— *{}* in 1m 12s", state.label())),
                "{t}"
            );
            assert!(t.ends_with("\n*Error:* boom"), "{t}");
        }
    }

    #[test]
    fn not_started_has_no_duration() {
        let update = Update::Finished(Outcome {
            state: FinalState::Refused,
            output: String::new(),
            error: Some("not allowed in <#C9>".into()),
            started_at: None,
            ended_at: at(T0),
            stopped_by: None,
        });
        let t = text(&job(), &update);
        assert!(t.starts_with(":no_entry: <@U123> asked for *restart-web* `count=1 env=prod` — *Refused* (job `1a2b3c4d`)\nEnded <!date^1700000000^"), "{t}");
        assert!(t.ends_with("*Error:* not allowed in &lt;#C9&gt;"), "{t}");
    }

    #[test]
    fn escapes_user_and_script_text() {
        let mut j = job();
        j.runbook = "a<b>&*c".into();
        j.params = BTreeMap::from([("msg".into(), "<!channel> & `x`".into())]);
        j.user_id = "U1> <!here".into();
        j.user_name = "<eve>".into();
        let t = text(
            &j,
            &finished(FinalState::Failed, "<!everyone> & done", Some("bad <@U2>")),
        );
        assert!(
            !t.contains("<!channel>") && !t.contains("<!everyone>") && !t.contains("<!here"),
            "{t}"
        );
        assert!(
            t.contains(
                ":x: &lt;eve&gt; ran *a&lt;b&gt;&amp;c* `msg=\"&lt;!channel&gt; &amp; 'x'\"`"
            ),
            "{t}"
        );
        assert!(t.contains("*Error:* bad &lt;@U2&gt;"), "{t}");
        assert!(t.contains("```\n&lt;!everyone&gt; &amp; done\n```"), "{t}");
    }

    #[test]
    fn output_cannot_close_its_code_block() {
        let t = text(
            &job(),
            &finished(FinalState::Completed, "a```b\n```\n````", None),
        );
        assert_eq!(t.matches("```").count(), 2, "{t}");
        assert!(
            t.ends_with(&format!(
                "```\na`{z}`{z}`b\n`{z}`{z}`\n`{z}`{z}`{z}`\n```",
                z = ZERO_WIDTH_SPACE
            )),
            "{t}"
        );
    }

    /// The longest output of `unit` repeated that is shown whole.
    fn longest_whole(unit: &str) -> usize {
        (1..MAX_TEXT_CHARS)
            .rev()
            .find(|n| {
                !text(
                    &job(),
                    &finished(FinalState::Completed, &unit.repeat(*n), None),
                )
                .contains("(output truncated")
            })
            .unwrap()
    }

    #[test]
    fn truncation_boundary_keeps_the_tail() {
        let n = longest_whole("x");
        let whole = text(
            &job(),
            &finished(FinalState::Completed, &"x".repeat(n), None),
        );
        assert_eq!(whole.chars().count(), MAX_TEXT_CHARS);

        let output = format!("{}END", "x".repeat(n - 2));
        let cut = text(&job(), &finished(FinalState::Completed, &output, None));
        let total = n + 1;
        assert!(cut.chars().count() <= MAX_TEXT_CHARS);
        let shown = cut.split("```\n").nth(1).unwrap().trim_end_matches("\n```");
        assert!(shown.ends_with("END"));
        assert!(
            cut.contains(&format!(
                "(output truncated: last {} of {total} characters shown)",
                shown.chars().count()
            )),
            "{cut}"
        );
    }

    #[test]
    fn truncation_counts_escaped_characters() {
        let n = longest_whole("x");
        let output = "<".repeat(2000);
        let t = text(&job(), &finished(FinalState::Completed, &output, None));
        assert!(t.chars().count() <= MAX_TEXT_CHARS);
        let shown = t.split("```\n").nth(1).unwrap().trim_end_matches("\n```");
        assert_eq!(shown.len() % 4, 0);
        assert!(shown.len() / 4 >= (n - 80) / 4, "{} of {n}", shown.len());
        assert!(t.contains(&format!("last {} of 2000 characters", shown.len() / 4)));
    }

    #[test]
    fn huge_everything_stays_under_the_limit() {
        let mut j = job();
        j.runbook = "r".repeat(5000);
        j.user_name = "<".repeat(5000);
        j.user_id = String::new();
        j.params = BTreeMap::from([("p".into(), "&".repeat(5000))]);
        let update = finished(
            FinalState::Failed,
            &"o\n".repeat(100_000),
            Some(&">".repeat(5000)),
        );
        for t in [
            text(&j, &update),
            webhook_message(&j, &update)["text"]
                .as_str()
                .unwrap()
                .to_owned(),
        ] {
            assert!(t.chars().count() <= MAX_TEXT_CHARS, "{}", t.chars().count());
            assert!(t.contains("(output truncated: last "), "{t}");
            assert!(t.contains("*Error:* &gt;&gt;"));
            assert!(
                !t.contains("&g…") && !t.contains("&am…"),
                "an escape was cut"
            );
        }
    }

    #[test]
    fn no_timestamp_panics() {
        use crate::notify::slack::tests::{completed_at, extreme_instants, odd_offsets};
        use time::PrimitiveDateTime;
        let offsets = odd_offsets();
        for at in extreme_instants() {
            let shown = mrkdwn::date(at);
            assert!(
                shown.starts_with(&format!("<!date^{}^", at.unix_timestamp())),
                "{shown}"
            );
            text(&job(), &completed_at(at));
        }
        // Out of range in UTC: the Unix timestamp stands in.
        let late = PrimitiveDateTime::MAX.assume_offset(offsets[1]);
        assert!(mrkdwn::date(late).ends_with(&format!("|{}>", late.unix_timestamp())));
        // An odd offset is shown in UTC.
        let odd = at(T0).to_offset(offsets[4]);
        assert!(mrkdwn::date(odd).ends_with("|2023-11-14 22:13 UTC>"));
    }

    #[test]
    fn characters_that_reorder_or_hide_text_are_made_visible() {
        let hidden: Vec<char> = ('\u{202A}'..='\u{202E}')
            .chain('\u{2066}'..='\u{2069}')
            .chain('\u{200B}'..='\u{200F}')
            .chain(['\u{2060}', '\u{FEFF}'])
            .collect();
        let sneaky: String = hidden.iter().map(|c| format!("a{c}")).collect();
        let mut j = job();
        j.user_id = String::new();
        j.user_name = "eve\u{202E}lin".into();
        let t = text(
            &j,
            &finished(FinalState::Failed, &sneaky, Some("err\u{2067}or")),
        );
        for c in &hidden {
            assert!(!t.contains(*c), "U+{:04X} hidden in {t}", u32::from(*c));
            assert!(
                t.contains(&format!("a&lt;U+{:04X}&gt;", u32::from(*c))),
                "{t}"
            );
        }
        assert!(t.contains(":x: eve&lt;U+202E&gt;lin ran"), "{t}");
        assert!(t.contains("*Error:* err&lt;U+2067&gt;or"), "{t}");
        // Our own backtick breaker is still a zero-width space.
        let fence = text(&job(), &finished(FinalState::Completed, "``", None));
        assert!(fence.contains(&format!("`{ZERO_WIDTH_SPACE}`")), "{fence}");
    }

    #[test]
    fn mentions_only_ids_the_catalog_accepts() {
        let mut j = job();
        j.user_id = "U1".into();
        let t = text(&j, &Update::Running { started_at: at(T0) });
        assert!(t.starts_with(":arrow_forward: ana started"), "{t}");
        j.user_id = format!("W{}", "9".repeat(31));
        let t = text(&j, &Update::Running { started_at: at(T0) });
        assert!(
            t.starts_with(&format!(":arrow_forward: <@{}> started", j.user_id)),
            "{t}"
        );
    }

    #[test]
    fn message_shapes() {
        let u = Update::Running { started_at: at(T0) };
        let r = response_url_message(&job(), &u);
        assert_eq!(r["response_type"], "in_channel");
        assert_eq!(r["replace_original"], true);
        assert_eq!(r["text"], text(&job(), &u));
        let mut secret = job();
        secret.params = BTreeMap::from([("token".into(), "hunter2".into())]);
        secret.secret_params = vec!["token".into()];
        let r = response_url_message(&secret, &u);
        assert_eq!(r["response_type"], "ephemeral");
        assert!(!r.to_string().contains("hunter2"), "{r}");

        let w = webhook_message(&job(), &u);
        assert_eq!(w.as_object().unwrap().len(), 1);
        assert_eq!(w["text"], format!("from <#C123>: {}", text(&job(), &u)));

        let mut dm = job();
        dm.channel_id = "D42".into();
        assert!(
            webhook_message(&dm, &u)["text"]
                .as_str()
                .unwrap()
                .starts_with("from a direct message: ")
        );
        let mut odd = job();
        odd.channel_id = "C1><!here".into();
        assert!(
            webhook_message(&odd, &u)["text"]
                .as_str()
                .unwrap()
                .starts_with("from #ops: ")
        );
    }
}
