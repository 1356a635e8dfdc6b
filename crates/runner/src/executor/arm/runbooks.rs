//! The runbooks of the Automation account and their parameters (`GET …/runbooks`, paged, and
//! `GET …/runbooks/{name}`), for `chatops-runner catalog sync`.

use super::client::ArmClient;
use super::error::ArmError;
use super::transport::{Body, Read, json_body};
use reqwest::Method;
use serde_json::Value;
use url::Url;

/// Most pages of the runbook list read.
const MAX_PAGES: usize = 50;

/// One runbook as the account describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookInfo {
    pub name: String,
    pub description: String,
    /// `Published`, `New` (never published), `Edit`.
    pub state: String,
    /// `PowerShell`, `Python3`, `Graph`, …
    pub runbook_type: String,
    /// In the account's order; empty in a list answer (get each runbook for them).
    pub parameters: Vec<RunbookParam>,
}

/// One parameter of a runbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookParam {
    pub name: String,
    /// The declared type, like `System.String`, `System.Int32`, `System.Boolean`, `switch`.
    pub kind: String,
    pub mandatory: bool,
    /// Where it goes when given by position; `None` when the account gives none (or -1).
    pub position: Option<i64>,
    /// The default as written in the runbook (PowerShell may quote it: `"dev"`, `$true`).
    pub default: Option<String>,
}

impl RunbookInfo {
    fn from_json(value: &Value) -> Self {
        let props = &value["properties"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let parameters = props["parameters"]
            .as_object()
            .map(|params| {
                params
                    .iter()
                    .map(|(name, p)| RunbookParam {
                        name: name.clone(),
                        kind: text(&p["type"]),
                        mandatory: p["isMandatory"].as_bool().unwrap_or(false),
                        position: p["position"].as_i64().filter(|n| *n >= 0),
                        default: p["defaultValue"]
                            .as_str()
                            .filter(|d| !d.is_empty())
                            .map(str::to_owned),
                    })
                    .collect()
            })
            .unwrap_or_default();
        RunbookInfo {
            name: text(&value["name"]),
            description: text(&props["description"]),
            state: text(&props["state"]),
            runbook_type: text(&props["runbookType"]),
            parameters,
        }
    }
}

impl ArmClient {
    /// Every runbook of the account (without parameters), following `nextLink`.
    pub async fn list_runbooks(&self) -> Result<Vec<RunbookInfo>, ArmError> {
        let listed = self.list_pages(self.runbook_url(None), MAX_PAGES).await?;
        if !listed.complete {
            return Err(ArmError::Unexpected(format!(
                "the runbook list goes on past {MAX_PAGES} pages"
            )));
        }
        Ok(listed.items.iter().map(RunbookInfo::from_json).collect())
    }

    /// One runbook with its parameters.
    pub async fn get_runbook(&self, name: &str) -> Result<RunbookInfo, ArmError> {
        let url = self.runbook_url(Some(name));
        let answer = self
            .send(Method::GET, url, Body::None, "application/json", Read::JSON)
            .await?;
        Ok(RunbookInfo::from_json(&json_body(&answer)?))
    }

    fn runbook_url(&self, name: Option<&str>) -> Url {
        let mut url = self.account_url.clone();
        // `new` made sure the URL is a base, so this always succeeds.
        if let Ok(mut path) = url.path_segments_mut() {
            path.push("runbooks").extend(name);
        }
        url.query_pairs_mut()
            .append_pair("api-version", super::API_VERSION);
        url
    }
}
