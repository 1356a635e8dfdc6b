//! Slack's message markup ("mrkdwn"), for text the services put in Slack messages.
//!
//! `&`, `<` and `>` are Slack's control characters: unescaped, text a user typed (or a script
//! printed) could become a mention such as `<!channel>` or a link. Both services escape with
//! these functions.

/// The escape for one of Slack's control characters, `None` for any other character.
pub fn escape_char(c: char) -> Option<&'static str> {
    match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        _ => None,
    }
}

/// Escapes `&`, `<` and `>`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match escape_char(c) {
            Some(e) => out.push_str(e),
            None => out.push(c),
        }
    }
    out
}

/// Text that is safe inside an inline code span (`` `…` ``): a backtick or a line break would end
/// the span, so they become `'` and a space. Not escaped: pass the result to [`escape`].
pub fn inline_code(text: &str) -> String {
    text.replace('`', "'").replace(['\n', '\r'], " ")
}

/// A duration as people read it in a status line, two units at most: `45s`, `1m 12s`,
/// `2h 5m`, `3d 4h` (negative durations, from clocks that disagree, show as `0s`).
pub fn duration(d: time::Duration) -> String {
    let secs = d.whole_seconds().max(0);
    let (days, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (days, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{days}d {h}h"),
    }
}

/// Slack's date formatting, shown in the reader's time zone, with a UTC fallback. Never
/// panics: a time whose UTC form is out of range (year 9999 at a negative offset) falls back to
/// its Unix timestamp.
pub fn date(at: time::OffsetDateTime) -> String {
    let unix = at.unix_timestamp();
    let fallback = time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|utc| {
            utc.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| unix.to_string());
    format!("<!date^{unix}^{{date_short_pretty}} {{time}}|{fallback}>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_two_units() {
        let d = time::Duration::seconds;
        assert_eq!(duration(d(0)), "0s");
        assert_eq!(duration(d(45)), "45s");
        assert_eq!(duration(d(72)), "1m 12s");
        assert_eq!(duration(d(2 * 3600 + 5 * 60 + 9)), "2h 5m");
        assert_eq!(duration(d(3 * 86_400 + 4 * 3600 + 5)), "3d 4h");
        assert_eq!(duration(d(-3)), "0s");
    }

    #[test]
    fn escape_neutralizes_mentions_and_links() {
        assert_eq!(
            escape("<!channel> & <https://x|y>"),
            "&lt;!channel&gt; &amp; &lt;https://x|y&gt;"
        );
    }

    #[test]
    fn inline_code_cannot_be_closed_early() {
        assert_eq!(inline_code("a`b\nc"), "a'b c");
    }
}
