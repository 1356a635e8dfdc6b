//! The small pieces every job-control answer is made of: who, where, which runbook, which
//! state, how long ago. Everything that came from a user or a record is escaped here.

use chatops_shared::job::format_params;
use chatops_shared::mrkdwn::{escape, inline_code};
use chatops_shared::records::JobState;
use chatops_shared::slack_id::is_slack_id;

/// Upper bound of an answer's `text`, in characters (Slack advises under 4,000).
pub const MAX_TEXT_CHARS: usize = 3500;
/// Upper bound of a runbook name or a parameter list shown.
const MAX_NAME_CHARS: usize = 100;
const MAX_PARAMS_CHARS: usize = 300;

/// A mention for a Slack user ID, else the ID as text (records are not trusted to hold only
/// what Slack sent).
pub fn user(id: &str) -> String {
    if is_slack_id(id, &['U', 'W']) {
        format!("<@{id}>")
    } else {
        format!("`{}`", head(&escape(&inline_code(id)), MAX_NAME_CHARS))
    }
}

/// A link to a channel, or what it is when it cannot be linked.
pub fn channel(id: &str) -> String {
    if is_slack_id(id, &['C', 'G']) {
        format!("<#{id}>")
    } else if id.starts_with('D') {
        "a direct message".to_owned()
    } else {
        format!("`{}`", head(&escape(&inline_code(id)), MAX_NAME_CHARS))
    }
}

/// `*runbook*`.
pub fn runbook(name: &str) -> String {
    format!(
        "*{}*",
        head(
            &escape(&name.replace(['*', '\n', '\r'], "")),
            MAX_NAME_CHARS
        )
    )
}

/// `*runbook* `env=prod``: the runbook and its parameters as a user would type them.
pub fn what(name: &str, params: &std::collections::BTreeMap<String, String>) -> String {
    if params.is_empty() {
        return runbook(name);
    }
    let params = escape(&inline_code(&format_params(params)));
    format!("{} `{}`", runbook(name), head(&params, MAX_PARAMS_CHARS))
}

/// `` `1a2b3c4d` ``.
pub fn short(id: &uuid::Uuid) -> String {
    format!("`{}`", chatops_shared::job::short_id(id))
}

/// The state as a word with its emoji: `:arrow_forward: running`.
pub fn state(state: JobState) -> String {
    let emoji = match state {
        JobState::Pending => ":hourglass_flowing_sand:",
        JobState::Running => ":arrow_forward:",
        JobState::Completed => ":white_check_mark:",
        JobState::Failed => ":x:",
        JobState::Stopped => ":octagonal_sign:",
        JobState::Suspended => ":double_vertical_bar:",
        JobState::TimedOut => ":hourglass:",
        JobState::Refused => ":no_entry:",
        JobState::Expired => ":alarm_clock:",
        JobState::Interrupted => ":warning:",
    };
    format!("{emoji} {}", state_word(state))
}

/// `running`, `timed out`.
pub fn state_word(state: JobState) -> String {
    state.as_str().replace('_', " ")
}

pub use chatops_shared::mrkdwn::{date, duration};

/// At most `max` characters of `text`, ending in `…` when cut; never inside an escape
/// (`&amp;`), so the cut text stays valid markup.
pub fn head(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    if let Some(amp) = out.rfind('&')
        && !out[amp..].contains(';')
    {
        out.truncate(amp);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_are_not_slack_ids_are_shown_as_text_never_as_markup() {
        assert_eq!(user("U123ABC"), "<@U123ABC>");
        assert_eq!(user("<!channel>"), "`&lt;!channel&gt;`");
        assert_eq!(channel("C024BE91L"), "<#C024BE91L>");
        assert_eq!(channel("D0123"), "a direct message");
        assert_eq!(channel("#ops`x"), "`#ops'x`");
    }

    #[test]
    fn runbook_and_params_are_escaped_and_bounded() {
        let params = [("msg".to_owned(), "<!here> `x`".to_owned())].into();
        assert_eq!(
            what("deploy", &params),
            "*deploy* `msg=\"&lt;!here&gt; 'x'\"`"
        );
        assert_eq!(runbook("a*b"), "*ab*");
        let long = "x".repeat(500);
        assert_eq!(runbook(&long).chars().count(), MAX_NAME_CHARS + 2);
    }

    #[test]
    fn a_cut_never_splits_an_escape() {
        assert_eq!(head("abc&amp;", 6), "abc…");
        assert_eq!(head("abcdef", 6), "abcdef");
        assert_eq!(head("abcdefg", 6), "abcde…");
    }
}
