//! The Slack slash-command form (`crates/ingress/src/slack/form.rs`).
//!
//! Any body must be read or refused without a panic; a command that was read has the fields the
//! ingress relies on, and reads back the same from the body Slack would send for it (which also
//! checks that `text` is unescaped exactly once).

#![no_main]

use chatops_ingress::slack::form::{self, Form, SlashCommand};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let Ok(Form::Command(command)) = form::parse(body) else {
        return;
    };
    for required in [&command.team_id, &command.channel_id, &command.user_id] {
        assert!(!required.is_empty());
    }
    assert!(
        command
            .response_url
            .as_ref()
            .is_some_and(|url| !url.expose().is_empty())
    );
    let again = form::parse(slack_body(&command).as_bytes());
    assert_eq!(again, Ok(Form::Command(command)));
});

/// The body Slack would post for `command`.
fn slack_body(command: &SlashCommand) -> String {
    let mut body = url::form_urlencoded::Serializer::new(String::new());
    body.append_pair("team_id", &command.team_id)
        .append_pair("channel_id", &command.channel_id)
        .append_pair("user_id", &command.user_id)
        .append_pair("user_name", &command.user_name)
        .append_pair("command", &command.command)
        .append_pair("text", &slack_escape(&command.text));
    if let Some(url) = &command.response_url {
        body.append_pair("response_url", url.expose());
    }
    if let Some(trigger) = &command.trigger_id {
        body.append_pair("trigger_id", trigger);
    }
    if let Some(name) = &command.channel_name {
        body.append_pair("channel_name", name);
    }
    if let Some(id) = &command.enterprise_id {
        body.append_pair("enterprise_id", id);
    }
    body.finish()
}

/// Slack's escaping of message text: `&`, `<` and `>` as HTML entities.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
