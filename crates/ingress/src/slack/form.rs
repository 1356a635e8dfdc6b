//! The slash-command form Slack posts (`application/x-www-form-urlencoded`).
//!
//! Read only after the signature was verified. Unknown fields are ignored, as Slack adds fields
//! over time. `text` arrives with `&`, `<` and `>` escaped as HTML entities; [`SlashCommand::text`]
//! holds it unescaped, as the user typed it.

use chatops_shared::secret::Secret;

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
    pub response_url: Secret,
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

/// Parses the form body.
pub fn parse(body: &[u8]) -> Result<Form, MissingField> {
    let mut fields = std::collections::HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        fields
            .entry(k.into_owned())
            .or_insert_with(|| v.into_owned());
    }
    if fields.get("ssl_check").is_some_and(|v| v == "1") {
        return Ok(Form::SslCheck);
    }
    let mut take = |name: &'static str| fields.remove(name).filter(|v| !v.is_empty());
    let team_id = take("team_id").ok_or(MissingField("team_id"))?;
    let channel_id = take("channel_id").ok_or(MissingField("channel_id"))?;
    let user_id = take("user_id").ok_or(MissingField("user_id"))?;
    let response_url = take("response_url").ok_or(MissingField("response_url"))?;
    Ok(Form::Command(Box::new(SlashCommand {
        user_name: take("user_name").unwrap_or_else(|| user_id.clone()),
        command: take("command").unwrap_or_else(|| "/runbook".to_owned()),
        text: unescape(&take("text").unwrap_or_default()),
        enterprise_id: take("enterprise_id"),
        channel_name: take("channel_name"),
        response_url: Secret::new(response_url),
        team_id,
        channel_id,
        user_id,
    })))
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
            c.response_url.expose(),
            "https://hooks.slack.com/commands/T1/1/x"
        );
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
            Err(MissingField("response_url"))
        );
        assert_eq!(parse(b"text=hi"), Err(MissingField("team_id")));
    }

    #[test]
    fn unescapes_in_the_right_order() {
        assert_eq!(unescape("&amp;lt; &lt;@U1&gt;"), "&lt; <@U1>");
    }
}
