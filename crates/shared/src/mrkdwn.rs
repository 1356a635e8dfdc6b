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

#[cfg(test)]
mod tests {
    use super::*;

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
