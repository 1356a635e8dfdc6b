//! User groups in authorization: which groups a decision needs ([`Catalog::groups_to_ask`]),
//! and the answers about one caller that the checks read ([`Groups`]).
//!
//! The catalog stays synchronous: whoever checks a command first asks Slack about the groups
//! the decision needs (see [`crate::membership`]), then hands the answers in with the
//! [`super::Caller`]. A group without an answer counts as "could not be checked", so a
//! forgotten lookup refuses rather than allows (fail closed).

use super::{Allow, Caller, Catalog, Runbook};
use crate::command::ParsedCommand;
use std::collections::{BTreeMap, BTreeSet};

/// What is known about one caller's membership of user groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Groups {
    answers: BTreeMap<String, GroupAnswer>,
}

/// Whether the caller belongs to one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupAnswer {
    Member,
    NotMember,
    /// Slack could not be asked; the text says why (no secrets), for the caller.
    Unknown(String),
}

/// How [`Allow::decide`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Admission {
    Admitted,
    /// Neither listed by ID nor in a listed group.
    NotListed,
    /// In none of the groups that answered, and some could not be checked: why.
    Unknown(String),
    /// Listed, but the command came from another channel.
    WrongChannel,
}

impl Groups {
    /// No answers: every group counts as unchecked.
    pub const NONE: Groups = Groups {
        answers: BTreeMap::new(),
    };

    /// [`Groups::NONE`], borrowed for as long as needed.
    pub fn none() -> &'static Groups {
        static NONE: Groups = Groups::NONE;
        &NONE
    }

    /// Records the answer for `group`.
    pub fn insert(&mut self, group: impl Into<String>, answer: GroupAnswer) {
        self.answers.insert(group.into(), answer);
    }

    /// The answer for `group`; a group never looked up could not be checked.
    pub fn answer(&self, group: &str) -> GroupAnswer {
        self.answers
            .get(group)
            .cloned()
            .unwrap_or_else(|| GroupAnswer::Unknown("it was not looked up".to_owned()))
    }

    /// Why some group could not be checked, when one could not.
    pub fn problem(&self) -> Option<&str> {
        self.answers.values().find_map(|a| match a {
            GroupAnswer::Unknown(why) => Some(why.as_str()),
            _ => None,
        })
    }
}

impl Allow {
    /// The caller is listed by ID or is in a listed group and, when `channels` is given, the
    /// command came from one of them. A group that could not be checked never admits.
    pub(super) fn decide(&self, caller: &Caller) -> Admission {
        if !self.users.iter().any(|u| u == caller.user_id) {
            let mut unknown = None;
            let mut member = false;
            for group in &self.usergroups {
                match caller.groups.answer(group) {
                    GroupAnswer::Member => {
                        member = true;
                        break;
                    }
                    GroupAnswer::NotMember => {}
                    GroupAnswer::Unknown(why) => unknown = unknown.or(Some(why)),
                }
            }
            if !member {
                return match unknown {
                    Some(why) => Admission::Unknown(why),
                    None => Admission::NotListed,
                };
            }
        }
        match &self.channels {
            Some(channels) if !channels.iter().any(|c| c == caller.channel_id) => {
                Admission::WrongChannel
            }
            _ => Admission::Admitted,
        }
    }

    /// The groups worth asking about for `user`: none when the user is listed by ID.
    fn groups_for(&self, user_id: &str) -> impl Iterator<Item = &String> {
        let listed = self.users.iter().any(|u| u == user_id);
        self.usergroups.iter().filter(move |_| !listed)
    }

    /// Whether `channels` lets a command from `channel_id` through.
    fn channel_fits(&self, channel_id: &str) -> bool {
        self.channels
            .as_ref()
            .is_none_or(|channels| channels.iter().any(|c| c == channel_id))
    }
}

impl Runbook {
    /// The groups whose answers deciding whether `user_id` may run this runbook (and give each
    /// restricted value) needs.
    pub fn groups_to_ask(&self, user_id: &str) -> BTreeSet<String> {
        let allow = self.allow.iter().flat_map(|a| a.groups_for(user_id));
        let only = self
            .params
            .iter()
            .flat_map(|p| p.only.values())
            .flat_map(|a| a.groups_for(user_id));
        allow.chain(only).cloned().collect()
    }

    /// The groups whose answers deciding whether `stop_allow` admits `user_id` needs.
    pub fn stop_groups_to_ask(&self, user_id: &str) -> BTreeSet<String> {
        self.stop_allow
            .iter()
            .flat_map(|a| a.groups_for(user_id))
            .cloned()
            .collect()
    }

    /// Whether `stop_allow` lets a stop from `channel_id` through, groups aside: when it does
    /// not, the stopper's user groups need not be asked.
    pub fn stop_channel_fits(&self, channel_id: &str) -> bool {
        self.stop_allow
            .as_ref()
            .is_some_and(|a| a.channel_fits(channel_id))
    }

    /// Whether any of the runbook's rules names a user group.
    pub fn uses_usergroups(&self) -> bool {
        self.allow
            .iter()
            .chain(&self.stop_allow)
            .any(|a| !a.usergroups.is_empty())
            || self
                .params
                .iter()
                .flat_map(|p| p.only.values())
                .any(|a| !a.usergroups.is_empty())
    }
}

impl Catalog {
    /// The groups whose answers checking `parsed` for `user_id` in `channel_id` needs: the
    /// named runbook's, or, for help and unknown names, those of every runbook that may be run
    /// from this channel (help lists them, suggestions choose among them). Users listed by ID
    /// need none.
    pub fn groups_to_ask(
        &self,
        user_id: &str,
        channel_id: &str,
        parsed: &ParsedCommand,
    ) -> BTreeSet<String> {
        let name = parsed.runbook.as_deref().unwrap_or_default().to_lowercase();
        if let Some(rb) = self.get(&name) {
            return rb.groups_to_ask(user_id);
        }
        self.runbooks
            .values()
            .filter_map(|rb| rb.allow.as_ref())
            .filter(|a| a.channel_fits(channel_id))
            .flat_map(|a| a.groups_for(user_id))
            .cloned()
            .collect()
    }

    /// Whether any rule of the catalog names a user group (the service then needs the bot
    /// token to answer them).
    pub fn uses_usergroups(&self) -> bool {
        self.runbooks.values().any(Runbook::uses_usergroups)
    }
}

#[cfg(test)]
mod tests;
