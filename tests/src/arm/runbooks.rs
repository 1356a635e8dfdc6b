//! The double's runbook API: `GET …/runbooks` (paged by `nextLink`, no parameters in the list)
//! and `GET …/runbooks/{name}` (with `properties.parameters`: name → `{type, isMandatory,
//! position, defaultValue}`), per `shared/reference/azure-automation.md`.

use super::{ACCOUNT, RESOURCE_GROUP, SUBSCRIPTION, Shared, flat, job_name};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// A runbook of the account as ARM shows it, parameters included.
pub(super) fn resource(name: &str, description: &str, parameters: &Value) -> Value {
    json!({
        "id": format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Automation/automationAccounts/{ACCOUNT}/runbooks/{name}"),
        "name": name,
        "type": "Microsoft.Automation/AutomationAccounts/Runbooks",
        "location": "westeurope",
        "properties": {
            "runbookType": "PowerShell",
            "state": "Published",
            "description": description,
            "logVerbose": false,
            "logProgress": false,
            "parameters": parameters,
        }
    })
}

pub(super) async fn list_runbooks(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(wrong) = job_name(&path) {
        return wrong.into_response();
    }
    let inner = shared.lock();
    let all: Vec<Value> = inner
        .runbooks
        .values()
        .map(|rb| {
            let mut rb = rb.clone();
            if let Some(props) = rb["properties"].as_object_mut() {
                props.remove("parameters");
            }
            rb
        })
        .collect();
    let list = format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Automation/automationAccounts/{ACCOUNT}/runbooks"
    );
    let answer = super::page(&shared.base, &list, &query, inner.page_size, &all);
    Json(answer).into_response()
}

pub(super) async fn get_runbook(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<HashMap<String, String>>,
) -> Response {
    if let Err(wrong) = job_name(&path) {
        return wrong.into_response();
    }
    let name = path.get("runbook").cloned().unwrap_or_default();
    match shared.lock().runbooks.get(&name) {
        Some(rb) => Json(rb.clone()).into_response(),
        None => flat(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("The Runbook '{name}' was not found."),
        ),
    }
}
