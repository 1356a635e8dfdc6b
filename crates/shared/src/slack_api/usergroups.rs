//! `usergroups.users.list` (scope `usergroups:read`): the members of a user group.

use super::{SlackApi, SlackApiError};
use serde_json::Value;
use tokio::time::Instant;

impl SlackApi {
    /// The user IDs in user group `group` (an `S…` ID). `team` is needed by org-wide apps on
    /// Enterprise Grid and ignored otherwise.
    pub async fn usergroup_members(
        &self,
        group: &str,
        team: Option<&str>,
        deadline: Instant,
    ) -> Result<Vec<String>, SlackApiError> {
        const METHOD: &str = "usergroups.users.list";
        let mut args = vec![("usergroup", group)];
        if let Some(team) = team {
            args.push(("team_id", team));
        }
        let answer = self.call_form(METHOD, &args, deadline).await?;
        let users = answer
            .get("users")
            .and_then(Value::as_array)
            .ok_or_else(|| SlackApiError::BadAnswer(METHOD.to_string()))?;
        Ok(users
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect())
    }
}
