//! Who is in which Slack user group, for authorization: Slack's `usergroups.users.list`
//! through the one Web API client, with each group's member list kept for a while
//! (`CHATOPS_USERGROUP_TTL`, default 60 s).
//!
//! Only the groups a decision needs are asked about ([`crate::catalog::Catalog::groups_to_ask`]
//! says which; a user listed by ID needs none). When Slack cannot be asked (no bot token, a
//! timeout, a 429 past the deadline, `ok: false`), the answer is
//! [`GroupAnswer::Unknown`] with the reason, and the checks refuse (fail closed).

use crate::catalog::{GroupAnswer, Groups};
use crate::config::{self, ConfigError, EnvSource};
use crate::slack_api::SlackApi;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long a group's member list is used before Slack is asked again.
pub const TTL_VAR: &str = "CHATOPS_USERGROUP_TTL";
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// `CHATOPS_USERGROUP_TTL`, or [`DEFAULT_TTL`].
pub fn ttl_from_env(env: &dyn EnvSource) -> Result<Duration, ConfigError> {
    config::duration(env, TTL_VAR, DEFAULT_TTL)
}

/// Answers "is this user in these groups?" from Slack, with a cache. Cheap to clone: clones
/// share the cache.
#[derive(Clone, Debug)]
pub struct Membership {
    api: Option<SlackApi>,
    ttl: Duration,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
    /// Per group, the turn to ask Slack: callers that miss the cache together ask once, the
    /// others find the list it brought (`usergroups.users.list` is rate-limited, Tier 2).
    asking: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

#[derive(Debug)]
struct Cached {
    at: Instant,
    members: Arc<HashSet<String>>,
}

impl Membership {
    /// Asks Slack through `api`; without one, every group is [`GroupAnswer::Unknown`].
    pub fn new(api: Option<SlackApi>, ttl: Duration) -> Self {
        Membership {
            api,
            ttl,
            cache: Arc::default(),
            asking: Arc::default(),
        }
    }

    /// How long a member list is used.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Whether Slack can be asked at all (a bot token is configured).
    pub fn can_ask(&self) -> bool {
        self.api.is_some()
    }

    /// What is known of `user_id`'s membership of `groups`, asking Slack (all at once) about
    /// the groups not cached, until `deadline`.
    pub async fn resolve(
        &self,
        user_id: &str,
        groups: &BTreeSet<String>,
        deadline: Instant,
    ) -> Groups {
        let answers = futures::future::join_all(
            groups
                .iter()
                .map(|group| async move { (group, self.members(group, deadline).await) }),
        )
        .await;
        let mut known = Groups::default();
        for (group, members) in answers {
            let answer = match members {
                Ok(members) if members.contains(user_id) => GroupAnswer::Member,
                Ok(_) => GroupAnswer::NotMember,
                Err(why) => {
                    tracing::warn!(usergroup = %group, problem = %why, "user group could not be looked up");
                    GroupAnswer::Unknown(why)
                }
            };
            known.insert(group.clone(), answer);
        }
        known
    }

    /// The members of `group`, cached or from Slack; `Err` says why Slack could not tell.
    async fn members(
        &self,
        group: &str,
        deadline: Instant,
    ) -> Result<Arc<HashSet<String>>, String> {
        if let Some(members) = self.cached(group) {
            return Ok(members);
        }
        let Some(api) = &self.api else {
            return Err(
                "no Slack bot token (SLACK_BOT_TOKEN) is configured to look user groups up"
                    .to_owned(),
            );
        };
        let turn = self.turn_to_ask(group);
        let Ok(_turn) = tokio::time::timeout_at(deadline, turn.lock()).await else {
            return Err(format!(
                "Slack could not be asked about user group {group} in time (another lookup of it was under way)"
            ));
        };
        // Asked by the caller that had the turn before this one.
        if let Some(members) = self.cached(group) {
            return Ok(members);
        }
        let members: Arc<HashSet<String>> = Arc::new(
            api.usergroup_members(group, None, deadline)
                .await
                .map_err(|e| format!("Slack could not be asked about user group {group}: {e}"))?
                .into_iter()
                .collect(),
        );
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(
                group.to_owned(),
                Cached {
                    at: Instant::now(),
                    members: members.clone(),
                },
            );
        }
        Ok(members)
    }

    fn turn_to_ask(&self, group: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut asking = self
            .asking
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        asking.entry(group.to_owned()).or_default().clone()
    }

    fn cached(&self, group: &str) -> Option<Arc<HashSet<String>>> {
        let cache = self.cache.lock().ok()?;
        let entry = cache.get(group)?;
        (entry.at.elapsed() < self.ttl).then(|| entry.members.clone())
    }
}
