//! The interaction Slack posts to `/slack/interactions`: a form with one field, `payload`,
//! holding JSON. Read only after the signature was verified.
//!
//! Only what the ingress acts on is read: a modal's submission (`view_submission`). Every other
//! type is named and left alone (`block_actions`, the approval buttons, come here next).
//! Unknown fields are ignored, as Slack adds fields over time.

use super::form::{FormError, MissingField, fields};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// A verified interaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interaction {
    /// A modal's submit button.
    ViewSubmission(Box<ViewSubmission>),
    /// A type the ingress does not act on (yet), by its `type`.
    Other { kind: String },
}

/// A modal's submission: who submitted which view, and the values of its inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewSubmission {
    pub team_id: String,
    pub enterprise_id: Option<String>,
    pub user_id: String,
    pub user_name: String,
    /// The view's `id`: one opened form, the same for every submission of it.
    pub view_id: String,
    /// The view's `callback_id`: which form this is.
    pub callback_id: String,
    /// What the app kept in the view when it opened it.
    pub private_metadata: String,
    /// Each input block's value by `block_id` (its first element's); `None` when left empty.
    pub values: BTreeMap<String, Option<String>>,
}

/// Why a verified body is not an interaction we can read (a 400: Slack always sends these).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InteractionError {
    #[error(transparent)]
    Form(#[from] FormError),
    #[error("the interaction payload is not the JSON Slack sends: {0}")]
    BadPayload(String),
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    kind: String,
    team: Option<Id>,
    enterprise: Option<Id>,
    user: Option<User>,
    view: Option<View>,
}

#[derive(Deserialize)]
struct Id {
    id: String,
}

#[derive(Deserialize)]
struct User {
    id: String,
    username: Option<String>,
    name: Option<String>,
    team_id: Option<String>,
}

#[derive(Deserialize)]
struct View {
    #[serde(default)]
    id: String,
    #[serde(default)]
    callback_id: String,
    #[serde(default)]
    private_metadata: String,
    #[serde(default)]
    state: State,
}

#[derive(Deserialize, Default)]
struct State {
    #[serde(default)]
    values: BTreeMap<String, BTreeMap<String, Value>>,
}

/// Parses the form body of an interaction.
pub fn parse(body: &[u8]) -> Result<Interaction, InteractionError> {
    let payload = match fields(body).remove("payload") {
        Some(Some(p)) if !p.is_empty() => p,
        Some(None) => return Err(FormError::NotUtf8("payload").into()),
        _ => return Err(FormError::from(MissingField("payload")).into()),
    };
    let raw: Raw =
        serde_json::from_str(&payload).map_err(|e| InteractionError::BadPayload(e.to_string()))?;
    if raw.kind != "view_submission" {
        return Ok(Interaction::Other { kind: raw.kind });
    }
    let missing = |what: &str| InteractionError::BadPayload(format!("no `{what}`"));
    let user = raw.user.ok_or_else(|| missing("user"))?;
    let view = raw.view.ok_or_else(|| missing("view"))?;
    let team_id = raw
        .team
        .map(|t| t.id)
        .or(user.team_id)
        .ok_or_else(|| missing("team"))?;
    let values = view
        .state
        .values
        .into_iter()
        .map(|(block, actions)| (block, actions.values().next().and_then(value_of)))
        .collect();
    Ok(Interaction::ViewSubmission(Box::new(ViewSubmission {
        team_id,
        enterprise_id: raw.enterprise.map(|e| e.id),
        user_name: user
            .username
            .or(user.name)
            .unwrap_or_else(|| user.id.clone()),
        user_id: user.id,
        view_id: view.id,
        callback_id: view.callback_id,
        private_metadata: view.private_metadata,
        values,
    })))
}

/// An input element's value: a text or number input's `value`, a select's `selected_option`.
fn value_of(element: &Value) -> Option<String> {
    let value = element
        .get("selected_option")
        .and_then(|o| o.get("value"))
        .or_else(|| element.get("value"))?;
    value.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(payload: &Value) -> Vec<u8> {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish()
            .into_bytes()
    }

    #[test]
    fn reads_a_view_submission() {
        let payload = serde_json::json!({
            "type": "view_submission",
            "team": {"id": "T1", "domain": "d"},
            "user": {"id": "U1", "username": "ana", "team_id": "T1"},
            "enterprise": null,
            "trigger_id": "1.2.3",
            "view": {
                "id": "V1", "type": "modal", "callback_id": "cb",
                "private_metadata": "{\"runbook\":\"x\"}",
                "state": {"values": {
                    "a": {"value": {"type": "plain_text_input", "value": "one"}},
                    "b": {"value": {"type": "static_select", "selected_option": {"text": {"type": "plain_text", "text": "Two"}, "value": "two"}}},
                    "c": {"value": {"type": "plain_text_input", "value": null}},
                    "d": {"value": {"type": "static_select", "selected_option": null}}
                }},
                "brand_new": 1
            }
        });
        let Ok(Interaction::ViewSubmission(s)) = parse(&body(&payload)) else {
            panic!("not a submission");
        };
        assert_eq!((s.team_id.as_str(), s.user_id.as_str()), ("T1", "U1"));
        assert_eq!(s.user_name, "ana");
        assert_eq!(s.callback_id, "cb");
        assert_eq!(s.private_metadata, "{\"runbook\":\"x\"}");
        let values: Vec<_> = s
            .values
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        assert_eq!(
            values,
            [
                ("a", Some("one")),
                ("b", Some("two")),
                ("c", None),
                ("d", None)
            ]
        );
    }

    #[test]
    fn other_types_are_named() {
        let payload = serde_json::json!({"type": "block_actions", "actions": []});
        assert_eq!(
            parse(&body(&payload)),
            Ok(Interaction::Other {
                kind: "block_actions".into()
            })
        );
    }

    #[test]
    fn a_body_without_a_json_payload_is_refused() {
        assert_eq!(
            parse(b"text=hi"),
            Err(FormError::from(MissingField("payload")).into())
        );
        assert!(matches!(
            parse(b"payload=%7Bnot-json"),
            Err(InteractionError::BadPayload(_))
        ));
        assert!(matches!(
            parse(&body(&serde_json::json!({"type": "view_submission"}))),
            Err(InteractionError::BadPayload(_))
        ));
    }
}
