//! The slash-command form Slack posts (`application/x-www-form-urlencoded`).
//!
//! Read only after the signature was verified. Unknown fields are ignored, as Slack adds fields
//! over time. `text` arrives with `&`, `<` and `>` escaped as HTML entities; [`SlashCommand::text`]
//! holds it unescaped, as the user typed it.

use chatops_shared::secret::Secret;

/// The slash command `slack/manifest.yml` creates, assumed when a request does not name one.
pub const COMMAND: &str = "/runbook";

/// The fields the ingress uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlashCommand {
    pub team_id: String,
    pub enterprise_id: Option<String>,
    pub channel_id: String,
    pub channel_name: Option<String>,
    pub user_id: String,
    pub user_name: String,
    /// The command as configured in Slack, e.g. `/runbook`.
    pub command: String,
    /// Everything after the command, unescaped.
    pub text: String,
    /// Where to answer later; absent only for a command that came from a form (a modal's
    /// submission carries none).
    pub response_url: Option<Secret>,
    /// Lets the app open a modal for the caller, once and within 3 s (`views.open`).
    pub trigger_id: Option<String>,
}

/// What the body of a verified request turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// Slack checking our certificate (`ssl_check=1`): answer 200, do nothing else.
    SslCheck,
    Command(Box<SlashCommand>),
}

/// A verified request without a field we need. Slack always sends them, so this is a 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("missing form field `{0}`")]
pub struct MissingField(pub &'static str);

/// Why a verified body is not a command we can read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormError {
    #[error(transparent)]
    Missing(#[from] MissingField),
    /// A field we read decodes to bytes that are not UTF-8. Decoding it lossily would queue
    /// something other than what was sent, so the caller is told instead.
    #[error("form field `{0}` is not valid UTF-8")]
    NotUtf8(&'static str),
}

/// Parses the form body. Fields we do not read are ignored, whatever they hold.
pub fn parse(body: &[u8]) -> Result<Form, FormError> {
    let mut fields = fields(body);
    if fields
        .get("ssl_check")
        .is_some_and(|v| v.as_deref() == Some("1"))
    {
        return Ok(Form::SslCheck);
    }
    let mut take = |name: &'static str| match fields.remove(name) {
        Some(Some(v)) if v.is_empty() => Ok(None),
        Some(Some(v)) => Ok(Some(v)),
        Some(None) => Err(FormError::NotUtf8(name)),
        None => Ok(None),
    };
    let team_id = take("team_id")?.ok_or(MissingField("team_id"))?;
    let channel_id = take("channel_id")?.ok_or(MissingField("channel_id"))?;
    let user_id = take("user_id")?.ok_or(MissingField("user_id"))?;
    let response_url = take("response_url")?.ok_or(MissingField("response_url"))?;
    Ok(Form::Command(Box::new(SlashCommand {
        user_name: take("user_name")?.unwrap_or_else(|| user_id.clone()),
        command: take("command")?.unwrap_or_else(|| COMMAND.to_owned()),
        text: unescape(&take("text")?.unwrap_or_default()),
        enterprise_id: take("enterprise_id")?,
        channel_name: take("channel_name")?,
        response_url: Some(Secret::new(response_url)),
        trigger_id: take("trigger_id")?,
        team_id,
        channel_id,
        user_id,
    })))
}

/// The fields of a form body by name (the first of repeated ones); `None` for a value that is
/// not UTF-8.
pub(super) fn fields(body: &[u8]) -> std::collections::HashMap<String, Option<String>> {
    let mut fields = std::collections::HashMap::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (key, value) = match pair.iter().position(|b| *b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &b""[..]),
        };
        let key = String::from_utf8_lossy(&decode(key)).into_owned();
        fields
            .entry(key)
            .or_insert_with(|| String::from_utf8(decode(value)).ok());
    }
    fields
}

/// Decodes one `application/x-www-form-urlencoded` name or value to bytes: `+` is a space,
/// `%XX` a byte; a `%` not followed by two hex digits stays as it is (as browsers and the
/// `url` crate do).
fn decode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'+' => out.push(b' '),
            b'%' => match tail.get(..2).and_then(|h| hex::decode(h).ok()) {
                Some(byte) => {
                    out.extend_from_slice(&byte);
                    rest = &tail[2..];
                }
                None => out.push(b'%'),
            },
            b => out.push(b),
        }
    }
    out
}

/// Undoes Slack's escaping of `&`, `<` and `>` in message text.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "token=x&team_id=T1&team_domain=d&channel_id=C1&channel_name=ops&user_id=U1&user_name=ana&command=%2Frunbook&text=restart-web+env%3Dprod+msg%3D%22a+%26amp%3B+b%22&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1%2F1%2Fx&trigger_id=1.2.3&api_app_id=A1&is_enterprise_install=false&brand_new_field=1";

    #[test]
    fn reads_the_fields_and_ignores_unknown_ones() {
        let Ok(Form::Command(c)) = parse(BODY.as_bytes()) else {
            panic!("not a command");
        };
        assert_eq!(
            (
                c.team_id.as_str(),
                c.channel_id.as_str(),
                c.user_id.as_str()
            ),
            ("T1", "C1", "U1")
        );
        assert_eq!(c.command, "/runbook");
        assert_eq!(c.text, "restart-web env=prod msg=\"a & b\"");
        assert_eq!(
            c.response_url.as_ref().map(Secret::expose),
            Some("https://hooks.slack.com/commands/T1/1/x")
        );
        assert_eq!(c.trigger_id.as_deref(), Some("1.2.3"));
        assert_eq!(c.channel_name.as_deref(), Some("ops"));
        assert_eq!(c.enterprise_id, None);
    }

    #[test]
    fn ssl_check() {
        assert_eq!(parse(b"ssl_check=1&token=x"), Ok(Form::SslCheck));
    }

    #[test]
    fn missing_fields_are_named() {
        assert_eq!(
            parse(b"team_id=T1&channel_id=C1&user_id=U1"),
            Err(MissingField("response_url").into())
        );
        assert_eq!(parse(b"text=hi"), Err(MissingField("team_id").into()));
    }

    #[test]
    fn unescapes_in_the_right_order() {
        assert_eq!(unescape("&amp;lt; &lt;@U1&gt;"), "&lt; <@U1>");
    }

    #[test]
    fn decodes_as_form_urlencoded() {
        assert_eq!(decode(b"a+b%20c%3D%2b"), b"a b c=+");
        assert_eq!(decode(b"100%+%zz%4"), b"100% %zz%4");
        assert_eq!(decode("%C3%A9é".as_bytes()), "éé".as_bytes());
        let Ok(Form::Command(c)) = parse(BODY.as_bytes()) else {
            panic!("not a command");
        };
        let reference: std::collections::HashMap<_, _> =
            url::form_urlencoded::parse(BODY.as_bytes()).collect();
        assert_eq!(c.user_name, reference["user_name"]);
        assert_eq!(
            c.response_url.as_ref().map(Secret::expose),
            Some(&*reference["response_url"])
        );
    }

    #[test]
    fn a_field_we_read_that_is_not_utf8_is_refused_not_decoded_lossily() {
        let body = BODY.replace("text=restart-web", "text=echo%FF%FE");
        assert_eq!(parse(body.as_bytes()), Err(FormError::NotUtf8("text")));
        let body = BODY.replace("user_name=ana", "user_name=an%E9");
        assert_eq!(parse(body.as_bytes()), Err(FormError::NotUtf8("user_name")));
        // A character that really is U+FFFD is text like any other.
        let body = BODY.replace("text=restart-web", "text=%EF%BF%BD");
        assert!(parse(body.as_bytes()).is_ok());
        // Fields we ignore may hold anything.
        let body = BODY.replace("brand_new_field=1", "brand_new_field=%FF");
        assert!(parse(body.as_bytes()).is_ok());
    }
}
