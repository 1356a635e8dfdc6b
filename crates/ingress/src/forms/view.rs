//! The modal for one runbook: a select for each parameter with choices (and for `bool`s), a
//! text field for free values with the default (or the value already typed) filled in, the
//! description and the value rules as the hint. Parameters the catalog fixes are shown as
//! context, not editable (callers may not give them). A select lists only the values this caller
//! may choose (a parameter's `only` rules, user groups included). Block Kit JSON by hand, within
//! Slack's limits (title 24 characters, 100 blocks, 100 options of 75 characters).

use chatops_shared::catalog::{ParamSpec, ParamType, Runbook};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The `callback_id` of every runbook form: a submission with another one is not ours.
pub const CALLBACK_ID: &str = "runbook_form";
/// What prefixes a parameter's name in its input block's `block_id`.
const BLOCK_PREFIX: &str = "param:";
/// Slack's limits on a modal.
const MAX_TITLE: usize = 24;
const MAX_OPTIONS: usize = 100;
const MAX_OPTION_TEXT: usize = 75;
const MAX_OPTION_VALUE: usize = 150;
const MAX_INPUT: usize = 3000;
const MAX_HINT: usize = 2000;

/// What the view keeps for its submission. Slack signs the submission, this included, so it is
/// as trustworthy as a command's own `channel_id`; the submission is still checked (who may run
/// the runbook from that channel) as a typed command is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub runbook: String,
    pub channel_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_name: Option<String>,
    /// The slash command as configured, e.g. `/runbook`.
    pub command: String,
    /// The day the job's record is filed under (`record_day`): that of the command that opened
    /// the form, so that the form sent again after midnight UTC still names one job. Absent in
    /// forms opened by an older ingress: the submission's day.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "chatops_shared::job::day_format::option"
    )]
    pub record_day: Option<time::Date>,
}

/// The `block_id` of parameter `name`'s input.
pub fn block_id(name: &str) -> String {
    format!("{BLOCK_PREFIX}{name}")
}

/// The parameter an input's `block_id` is for.
pub fn param_of(block_id: &str) -> Option<&str> {
    block_id.strip_prefix(BLOCK_PREFIX)
}

/// Whether the caller may choose a value of a parameter (its `only` rules).
pub type MayChoose<'a> = &'a dyn Fn(&ParamSpec, &str) -> bool;

/// The modal for `rb`, with `prefill` (values already typed) in its fields; selects list the
/// values `may_choose` admits. `groups_unknown`: Slack could not say which user groups the
/// caller is in, so values limited to groups are left out for that reason, and the hint says so.
pub fn modal(
    rb: &Runbook,
    prefill: &BTreeMap<String, String>,
    meta: &Metadata,
    may_choose: MayChoose<'_>,
    groups_unknown: bool,
) -> Value {
    let mut intro = format!("*{}*", escape(&rb.name));
    if !rb.description.is_empty() {
        intro.push_str(&format!(": {}", escape(&rb.description)));
    }
    let intro = cut(&intro, MAX_INPUT);
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": intro}})];
    let fixed: Vec<String> = rb
        .params
        .iter()
        .filter_map(|p| {
            let value = p.fixed.as_deref()?;
            Some(format!(
                "`{}` = `{}`",
                escape(&p.name),
                escape(&p.shown(value))
            ))
        })
        .collect();
    if !fixed.is_empty() {
        let text = cut(
            &format!("Set by the catalog: {}", fixed.join(", ")),
            MAX_INPUT,
        );
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}));
    }
    for p in rb.params.iter().filter(|p| p.fixed.is_none()) {
        // A typed secret is not put back on screen: Slack has no masked input, so its field
        // starts empty (and is typed again, shown as typed).
        // Nor is a secret default: left empty, the field gets it.
        let typed = prefill.get(&p.name).filter(|_| !p.secret);
        let initial = typed.or(p.default.as_ref().filter(|_| !p.secret));
        let (element, hidden) = element(p, initial.map(String::as_str), may_choose);
        let mut block = json!({
            "type": "input",
            "block_id": block_id(&p.name),
            "optional": !p.required,
            "label": plain(&p.name),
            "element": element,
        });
        let mut hint = hint(p);
        if hidden {
            if !hint.is_empty() {
                hint.push(' ');
            }
            hint.push_str(if groups_unknown {
                "(some values are not listed: Slack could not say which user groups you are in; close the form and run the command again to see them)"
            } else {
                "(values you may not choose are not listed)"
            });
        }
        if !hint.is_empty() {
            block["hint"] = plain(&cut(&hint, MAX_HINT));
        }
        blocks.push(block);
    }
    // The metadata is a few short IDs and names, far below Slack's 3,000 characters.
    let private_metadata = serde_json::to_string(meta).unwrap_or_default();
    json!({
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "title": plain(&cut(&format!("Run {}", rb.name), MAX_TITLE)),
        "submit": plain("Run"),
        "close": plain("Cancel"),
        "private_metadata": private_metadata,
        "blocks": blocks,
    })
}

/// A modal that only says `text` (mrkdwn): what a refused submission is replaced with.
pub fn notice(title: &str, text: &str) -> Value {
    json!({
        "type": "modal",
        "title": plain(&cut(title, MAX_TITLE)),
        "close": plain("Close"),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": cut(text, MAX_INPUT)}}],
    })
}

/// The input for one parameter: a select where the values are few and short, else a text
/// field; and whether values the caller may not choose were left out of the select.
fn element(p: &ParamSpec, initial: Option<&str>, may_choose: MayChoose<'_>) -> (Value, bool) {
    let all: Option<Vec<String>> = match (&p.choices, p.kind) {
        (Some(choices), _) => Some(choices.clone()),
        (None, ParamType::Bool) => Some(vec!["true".into(), "false".into()]),
        (None, _) => None,
    };
    let total = all.as_ref().map_or(0, Vec::len);
    let choices: Option<Vec<String>> = all.map(|all| {
        all.into_iter()
            .filter(|v| may_choose(p, v))
            .collect::<Vec<_>>()
    });
    let hidden = choices.as_ref().is_some_and(|c| c.len() < total);
    let selectable = choices.filter(|c| {
        !c.is_empty()
            && c.len() <= MAX_OPTIONS
            && c.iter().all(|v| {
                !v.is_empty() && v.chars().count() <= MAX_OPTION_TEXT && v.len() <= MAX_OPTION_VALUE
            })
    });
    if let Some(choices) = selectable {
        let option = |v: &str| json!({"text": plain(v), "value": v});
        let mut select = json!({
            "type": "static_select",
            "action_id": "value",
            "placeholder": plain("Choose"),
            "options": choices.iter().map(|c| option(c)).collect::<Vec<_>>(),
        });
        if let Some(v) = initial.filter(|v| choices.iter().any(|c| c == v)) {
            select["initial_option"] = option(v);
        }
        return (select, hidden);
    }
    let mut input = json!({"type": "plain_text_input", "action_id": "value"});
    // Slack refuses a view whose initial value is longer than its field allows: a typed value
    // too long is left out (the field's hint says the limit).
    let most = p
        .max_len
        .filter(|m| *m > 0)
        .map_or(MAX_INPUT, |m| m.min(MAX_INPUT));
    let fits = |v: &&str| v.chars().count() <= most;
    if let Some(v) = initial.filter(|v| !v.is_empty()).filter(fits) {
        input["initial_value"] = Value::String(v.to_owned());
    }
    if let Some(max) = p.max_len.filter(|m| *m > 0 && *m <= MAX_INPUT) {
        input["max_length"] = json!(max);
    }
    (input, hidden)
}

/// The description, then the value rules: type and range, length, pattern, default.
fn hint(p: &ParamSpec) -> String {
    let mut notes = Vec::new();
    match p.kind {
        ParamType::Int => notes.push(match (p.min, p.max) {
            (Some(min), Some(max)) => format!("a whole number from {min} to {max}"),
            (Some(min), None) => format!("a whole number of at least {min}"),
            (None, Some(max)) => format!("a whole number of at most {max}"),
            (None, None) => "a whole number".to_owned(),
        }),
        ParamType::Bool => notes.push("true or false".to_owned()),
        ParamType::String | ParamType::Choice => {}
    }
    if let Some(max) = p.max_len {
        notes.push(format!("at most {max} characters"));
    }
    if let Some(pattern) = &p.pattern {
        notes.push(format!("must match {pattern}"));
    }
    if let Some(default) = &p.default {
        notes.push(format!("default {}", p.shown(default)));
    }
    let mut hint = p.description.clone().unwrap_or_default();
    if !notes.is_empty() {
        if !hint.is_empty() {
            hint.push(' ');
        }
        hint.push_str(&format!("({})", notes.join("; ")));
    }
    hint
}

fn plain(text: &str) -> Value {
    json!({"type": "plain_text", "text": text})
}

/// At most `max` characters, with an ellipsis when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn escape(text: &str) -> String {
    chatops_shared::mrkdwn::escape(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn runbook(toml: &str) -> Runbook {
        let catalog =
            chatops_shared::catalog::Catalog::parse(toml, Path::new("/tmp/runbooks.toml"))
                .unwrap_or_else(|e| panic!("{e}"));
        catalog
            .runbooks
            .into_values()
            .next()
            .unwrap_or_else(|| panic!("no runbook"))
    }

    const CATALOG: &str = r#"
[runbooks.a-rather-long-runbook-name]
description = "Scales <it>"
executor = "automation"
target = "Scale"
params = [
  { name = "env", required = true, choices = ["dev", "prod"], description = "Where" },
  { name = "count", type = "int", min = 1, max = 10, default = "2" },
  { name = "dry", type = "bool", default = "true" },
  { name = "note", max_len = 40 },
  { name = "group", fixed = "rg-prod" },
]
"#;

    fn meta() -> Metadata {
        Metadata {
            runbook: "a-rather-long-runbook-name".into(),
            channel_id: "C1".into(),
            channel_name: None,
            command: "/runbook".into(),
            record_day: Some(time::macros::date!(2026 - 11 - 29)),
        }
    }

    #[test]
    fn one_input_per_open_parameter_with_selects_defaults_and_hints() {
        let rb = runbook(CATALOG);
        let prefill = BTreeMap::from([("note".to_owned(), "typed".to_owned())]);
        let view = modal(&rb, &prefill, &meta(), &|_, _| true, false);
        assert_eq!(view["callback_id"], CALLBACK_ID);
        assert!(
            view["title"]["text"]
                .as_str()
                .is_some_and(|t| t.chars().count() <= 24)
        );
        let blocks = view["blocks"].as_array().cloned().unwrap_or_default();
        let inputs: Vec<&Value> = blocks.iter().filter(|b| b["type"] == "input").collect();
        let ids: Vec<&str> = inputs
            .iter()
            .filter_map(|b| b["block_id"].as_str())
            .collect();
        assert_eq!(ids, ["param:env", "param:count", "param:dry", "param:note"]);
        assert_eq!(inputs[0]["element"]["type"], "static_select");
        assert_eq!(inputs[0]["optional"], false);
        assert_eq!(inputs[0]["hint"]["text"], "Where");
        assert_eq!(inputs[1]["element"]["initial_value"], "2");
        assert_eq!(
            inputs[1]["hint"]["text"],
            "(a whole number from 1 to 10; default 2)"
        );
        assert_eq!(inputs[2]["element"]["initial_option"]["value"], "true");
        assert_eq!(inputs[3]["element"]["initial_value"], "typed");
        assert_eq!(inputs[3]["element"]["max_length"], 40);
        // The fixed value is shown, not editable; the description is escaped.
        let text = view.to_string();
        assert!(text.contains("`group` = `rg-prod`"), "{text}");
        assert!(text.contains("Scales &lt;it&gt;"), "{text}");
        let back: Metadata =
            serde_json::from_str(view["private_metadata"].as_str().unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, meta());
    }

    #[test]
    fn a_form_slack_would_refuse_is_not_built() {
        // A typed value longer than its field allows, and a description over a section's
        // 3000 characters: Slack refuses such a view (`invalid_arguments`) whenever it is asked.
        let long = "d".repeat(5000);
        let rb = runbook(&CATALOG.replace("Scales <it>", &long));
        let prefill = BTreeMap::from([("note".to_owned(), "n".repeat(41))]);
        let view = modal(&rb, &prefill, &meta(), &|_, _| true, false);
        let blocks = view["blocks"].as_array().cloned().unwrap_or_default();
        let intro = blocks[0]["text"]["text"].as_str().unwrap_or_default();
        assert!(intro.chars().count() <= MAX_INPUT, "{}", intro.len());
        assert!(intro.ends_with('…'));
        let note = blocks
            .iter()
            .find(|b| b["block_id"] == "param:note")
            .cloned()
            .unwrap_or_default();
        assert_eq!(note["element"]["max_length"], 40);
        assert!(note["element"].get("initial_value").is_none(), "{note}");
        let prefill = BTreeMap::from([("note".to_owned(), "n".repeat(40))]);
        let view = modal(&rb, &prefill, &meta(), &|_, _| true, false);
        assert!(
            view.to_string().contains(&"n".repeat(40)),
            "a value that fits stays"
        );
    }

    #[test]
    fn a_typed_secret_is_not_put_back_on_screen() {
        let rb = runbook(
            r#"
[runbooks.rotate]
executor = "automation"
target = "Rotate"
params = [
  { name = "token", secret = true },
  { name = "note" },
  { name = "key", secret = true, default = "d3fault-key" },
  { name = "pin", secret = true, fixed = "f1xed-pin" },
]
"#,
        );
        let prefill = BTreeMap::from([
            ("token".to_owned(), "s3cr3t".to_owned()),
            ("note".to_owned(), "typed".to_owned()),
        ]);
        let view = modal(&rb, &prefill, &meta(), &|_, _| true, false);
        // Neither typed, nor the catalog's default or fixed value.
        for secret in ["s3cr3t", "d3fault-key", "f1xed-pin"] {
            assert!(!view.to_string().contains(secret), "{secret}: {view}");
        }
        assert!(view.to_string().contains("typed"), "{view}");
        assert!(view.to_string().contains("default •••"), "{view}");
    }

    #[test]
    fn block_ids_name_their_parameter() {
        assert_eq!(param_of(&block_id("env")), Some("env"));
        assert_eq!(param_of("other"), None);
    }
}
