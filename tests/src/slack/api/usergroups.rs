//! `usergroups.users.list`: the members of a user group set with
//! [`SlackServer::set_usergroup`]; an unknown group is `no_such_subgroup`.

use super::super::SlackServer;
use super::arg;
use serde_json::{Value, json};
use std::collections::HashMap;

#[derive(Debug, Default)]
pub(super) struct UsergroupsState {
    groups: HashMap<String, Vec<String>>,
}

impl UsergroupsState {
    pub(super) fn users_list(&mut self, body: &Value) -> Result<Value, &'static str> {
        let group = arg(body, "usergroup").ok_or("invalid_arguments")?;
        let users = self.groups.get(group).ok_or("no_such_subgroup")?;
        Ok(json!({ "users": users }))
    }
}

impl SlackServer {
    /// User group `group` (an `S…` ID) has exactly `members` from now on.
    pub fn set_usergroup(&self, group: &str, members: &[&str]) {
        self.lock().api.usergroups.groups.insert(
            group.to_owned(),
            members.iter().map(|m| (*m).to_owned()).collect(),
        );
    }
}
