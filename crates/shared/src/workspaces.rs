//! Which Slack workspaces may use this app: `SLACK_TEAM_ID` and `SLACK_ENTERPRISE_ID`, each a
//! comma-separated list of IDs (`T…` workspaces, `E…` Enterprise Grid organizations). When a
//! list is set, a command from a workspace (or organization) not on it is refused; when unset,
//! that dimension allows every workspace. The ingress checks every command; the runner checks
//! every job again.

use crate::config::{self, ConfigError, EnvSource};
use crate::slack_id::is_slack_id;
use std::collections::BTreeSet;

pub const TEAM_VAR: &str = "SLACK_TEAM_ID";
pub const ENTERPRISE_VAR: &str = "SLACK_ENTERPRISE_ID";

/// The workspaces and organizations allowed; `None` allows all on that dimension.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workspaces {
    teams: Option<BTreeSet<String>>,
    enterprises: Option<BTreeSet<String>>,
}

/// Which list refused a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Team,
    Enterprise,
}

impl Rule {
    /// The rule's name in audit events and log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Team => "team",
            Rule::Enterprise => "enterprise",
        }
    }
}

/// A command from a workspace this app does not serve. Display is what the caller is told: it
/// names their own ID (when it looks like one), never the IDs that are allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.text())]
pub struct NotAllowed {
    pub rule: Rule,
    /// The caller's team or enterprise ID, when it is a well-formed one.
    pub theirs: Option<String>,
}

impl NotAllowed {
    fn text(&self) -> String {
        let what = match self.rule {
            Rule::Team => "This Slack workspace",
            Rule::Enterprise => "This Slack organization",
        };
        let id = self
            .theirs
            .as_deref()
            .map(|id| format!(" ({id})"))
            .unwrap_or_default();
        format!(
            "{what}{id} is not allowed to use this app. Nothing was started. Ask the app's administrators to add it if it should be."
        )
    }
}

impl Workspaces {
    /// Reads both variables; a malformed ID is an error naming the variable.
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        Ok(Workspaces {
            teams: list(env, TEAM_VAR, 'T')?,
            enterprises: list(env, ENTERPRISE_VAR, 'E')?,
        })
    }

    /// Allows only these teams and, when `enterprises` is given, these organizations.
    pub fn new<T: Into<String>, E: Into<String>>(
        teams: Option<Vec<T>>,
        enterprises: Option<Vec<E>>,
    ) -> Self {
        Workspaces {
            teams: teams.map(|t| t.into_iter().map(Into::into).collect()),
            enterprises: enterprises.map(|e| e.into_iter().map(Into::into).collect()),
        }
    }

    /// Whether a command from `team_id` (in `enterprise_id`, if any) may be served. An absent
    /// enterprise ID is not on any enterprise list.
    pub fn check(&self, team_id: &str, enterprise_id: Option<&str>) -> Result<(), NotAllowed> {
        if let Some(teams) = &self.teams
            && !teams.contains(team_id)
        {
            return Err(NotAllowed {
                rule: Rule::Team,
                theirs: Some(team_id)
                    .filter(|t| is_slack_id(t, &['T']))
                    .map(Into::into),
            });
        }
        if let Some(enterprises) = &self.enterprises
            && !enterprise_id.is_some_and(|e| enterprises.contains(e))
        {
            return Err(NotAllowed {
                rule: Rule::Enterprise,
                theirs: enterprise_id
                    .filter(|e| is_slack_id(e, &['E']))
                    .map(Into::into),
            });
        }
        Ok(())
    }
}

/// `var` as a set of IDs starting with `first`, or `None` when unset.
fn list(
    env: &dyn EnvSource,
    var: &str,
    first: char,
) -> Result<Option<BTreeSet<String>>, ConfigError> {
    let Some(value) = config::optional(env, var) else {
        return Ok(None);
    };
    let mut ids = BTreeSet::new();
    for id in value.split(',').map(str::trim) {
        if !is_slack_id(id, &[first]) {
            return Err(ConfigError::new(
                var,
                format!(
                    "`{id}` is not a Slack ID starting with `{first}`: give comma-separated IDs such as `{first}012AB3CD`"
                ),
            ));
        }
        ids.insert(id.to_owned());
    }
    Ok(Some(ids))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&'static str, &'static str)]) -> Result<Workspaces, ConfigError> {
        let env: HashMap<&str, &str> = pairs.iter().copied().collect();
        Workspaces::from_env(&env)
    }

    #[test]
    fn unset_allows_every_workspace() {
        let all = from(&[]).unwrap();
        assert_eq!(all, Workspaces::default());
        assert_eq!(all.check("T0ANY", None), Ok(()));
        assert_eq!(all.check("T0ANY", Some("E0ANY")), Ok(()));
    }

    #[test]
    fn a_team_list_refuses_other_teams() {
        let ws = from(&[(TEAM_VAR, "T0AAA, T0BBB")]).unwrap();
        assert_eq!(ws.check("T0AAA", None), Ok(()));
        assert_eq!(ws.check("T0BBB", Some("E0ANY")), Ok(()));
        let denied = ws.check("T0CCC", None).unwrap_err();
        assert_eq!(denied.rule, Rule::Team);
        let text = denied.to_string();
        assert!(
            text.contains("T0CCC") && text.contains("not allowed"),
            "{text}"
        );
        assert!(!text.contains("T0AAA") && !text.contains("T0BBB"), "{text}");
    }

    #[test]
    fn an_enterprise_list_refuses_other_and_missing_enterprises() {
        let ws = from(&[(ENTERPRISE_VAR, "E0AAA")]).unwrap();
        assert_eq!(ws.check("T0ANY", Some("E0AAA")), Ok(()));
        let other = ws.check("T0ANY", Some("E0BBB")).unwrap_err();
        assert_eq!(other.rule, Rule::Enterprise);
        assert!(!other.to_string().contains("E0AAA"), "{other}");
        let missing = ws.check("T0ANY", None).unwrap_err();
        assert_eq!(missing.rule, Rule::Enterprise);
    }

    #[test]
    fn both_lists_must_allow() {
        let ws = from(&[(TEAM_VAR, "T0AAA"), (ENTERPRISE_VAR, "E0AAA")]).unwrap();
        assert_eq!(ws.check("T0AAA", Some("E0AAA")), Ok(()));
        assert_eq!(
            ws.check("T0BBB", Some("E0AAA")).map_err(|e| e.rule),
            Err(Rule::Team)
        );
        assert_eq!(
            ws.check("T0AAA", Some("E0BBB")).map_err(|e| e.rule),
            Err(Rule::Enterprise)
        );
    }

    #[test]
    fn malformed_ids_are_refused_at_start() {
        for (var, bad) in [
            (TEAM_VAR, "E0AAA"),
            (TEAM_VAR, "T0AAA,"),
            (TEAM_VAR, "t0aaa"),
            (TEAM_VAR, "T0AAA;T0BBB"),
            (ENTERPRISE_VAR, "T0AAA"),
            (ENTERPRISE_VAR, "E0AAA, x"),
        ] {
            let error = from(&[(var, bad)]).unwrap_err().to_string();
            assert!(error.contains(var), "{bad}: {error}");
        }
    }

    #[test]
    fn a_malformed_caller_id_is_not_echoed() {
        let ws = Workspaces::new(Some(vec!["T0AAA"]), None::<Vec<String>>);
        let denied = ws.check("<!here>", None).unwrap_err();
        assert_eq!(denied.theirs, None);
        assert!(!denied.to_string().contains("here"), "{denied}");
    }
}
