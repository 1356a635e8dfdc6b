//! The runbook catalog: which runbooks exist, how each one runs, which parameters it takes and
//! who may run it.
//!
//! The catalog is a TOML file kept by admins; its format is a public contract:
//!
//! ```toml
//! [defaults]                       # optional: for runbooks without their own key
//! allow = { users = ["U012AB3CD"] }
//!
//! [runbooks.restart-web]
//! description = "Restart the web tier"
//! executor = "automation"          # or "local"
//! target = "Restart-WebApp"        # Automation runbook name, or script path relative to this file
//! timeout = "30m"                  # optional, default 3h
//! params = [
//!   { name = "env", required = true, choices = ["dev", "prod"], description = "Target environment",
//!     only = { prod = { usergroups = ["S0ONCALL1"] } } },
//!   { name = "count", type = "int", min = 1, max = 10, default = "1" },
//!   { name = "host", max_len = 30, pattern = "web-[0-9]+" },
//!   { name = "force", type = "bool", default = "false" },
//!   { name = "resource_group", fixed = "rg-web-prod" },
//!   { name = "token", secret = true },   # masked wherever shown; a script gets it in its env only
//! ]
//! allow = { users = ["U012AB3CD"], usergroups = ["S0ONCALL1"], channels = ["C024BE91L"] }
//! stop_allow = { users = ["U0ONCALL1"] }   # optional: who else may stop its jobs
//! ```
//!
//! Unknown keys are errors so that typos are caught; new keys are added as new fields (with a
//! serde default) on the structs below. The catalog is validated when loaded, so the
//! rest of the service can trust it.
//!
//! Parameter rules ([`ParamSpec`], checked by [`ParamSpec::check_value`] for every value a
//! caller gives, in the ingress and again in the runner): `type` is `string` (the default),
//! `int` (i64, within `min`/`max`), `bool` (`true`/`false` in any case) or `choice` (needs
//! `choices`; `choices` without `type` works too); `max_len` (characters) and `pattern` (a
//! regex the whole value must match) apply to strings. `fixed` values are set by the catalog:
//! callers may not give them, and [`Runbook::with_defaults`] and [`Runbook::argv`] always
//! use them. Rules that cannot be met, and `default`, `fixed` or `choices` values that break
//! their parameter's rules, are load errors.
//!
//! `[defaults]` gives `allow` and `stop_allow` to every runbook without its own; a runbook's
//! own key replaces the default whole (lists are not merged). Loading applies them, so
//! [`Catalog::runbooks`] holds the result.
//!
//! `usergroups` admit the members of Slack user groups (IDs `S…`); whoever checks a command
//! looks the caller's groups up first ([`Catalog::groups_to_ask`], [`crate::membership`]) and
//! passes the answers in [`Caller::groups`]. `only` on a parameter limits values to some callers,
//! with the same shape as `allow`.
//!
//! Access is denied by default: a runbook without `allow` (its own or the default) can be run
//! by nobody. A job may be
//! stopped (`/runbook stop`) by the person who started it and by whom `stop_allow` names (same
//! shape and checks as `allow`: the users, and when `channels` is given, only from those
//! channels); nobody else, and no one else at all when `stop_allow` is absent.
//!
//! - `live`: the catalog in force, reloaded when its file changes ([`LiveCatalog`]).
//! - `secret`: secret parameters, masked wherever values are shown ([`Runbook::secret_params`]).
//! - `load`: reading and validating the file ([`Catalog::load`], [`CatalogError`]).
//! - `check`: checking a parsed command against the catalog ([`Catalog::check`], [`Rejection`]).
//! - `usage`: usage lines and the help text ([`Runbook::usage`], [`Catalog::help_text`]).
//! - `value`: one value against one parameter's rules ([`ParamSpec::check_value`]).
//! - `help`: `help <runbook>`, its parameters and an example ([`Catalog::runbook_help`]).
//! - `groups`: user groups in authorization ([`Groups`], [`Catalog::groups_to_ask`]).

mod check;
mod groups;
mod help;
mod live;
mod load;
mod secret;
mod suggest;
mod usage;
mod value;

pub use check::{Accepted, Rejection};
pub use groups::{GroupAnswer, Groups};
pub use live::{DEFAULT_POLL, LiveCatalog, Reloaded, Trigger};
pub use load::CatalogError;
pub use value::ValueProblem;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Words of the command language that cannot name a runbook.
pub const RESERVED_WORDS: &[&str] = &[
    "help", "list", "status", "stop", "rerun", "history", "approve",
];

/// How long a runbook may run when its entry gives no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3 * 60 * 60);

/// A validated runbook catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    /// The file the catalog was read from; local script targets are relative to its directory.
    pub path: PathBuf,
    /// The runbooks by name, with the `[defaults]` already applied.
    pub runbooks: BTreeMap<String, Runbook>,
    /// A hash of the catalog's text ([`Catalog::version`]).
    pub version: String,
}

/// The `[defaults]` table: what a runbook gets for the keys it does not set itself. A
/// runbook's own key replaces the default as a whole (lists are not merged).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// `allow` of every runbook without its own.
    #[serde(default)]
    pub allow: Option<Allow>,
    /// `stop_allow` of every runbook without its own.
    #[serde(default)]
    pub stop_allow: Option<Allow>,
}

/// One runbook: a `[runbooks.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runbook {
    /// The table's key; what users type to run it.
    #[serde(skip)]
    pub name: String,
    /// One line for the help text.
    #[serde(default)]
    pub description: String,
    /// What runs it.
    pub executor: ExecutorKind,
    /// The Azure Automation runbook name, or the script path relative to the catalog file
    /// (see [`Catalog::resolve_target`]).
    pub target: String,
    /// How long a run may take before it is stopped; [`DEFAULT_TIMEOUT`] when not given.
    #[serde(
        default = "default_timeout",
        deserialize_with = "load::deserialize_timeout"
    )]
    pub timeout: Duration,
    /// Parameters in catalog order, which is the order positional values fill them.
    #[serde(default)]
    pub params: Vec<ParamSpec>,
    /// Who may run it; nobody when absent.
    #[serde(default)]
    pub allow: Option<Allow>,
    /// Who may stop its jobs besides the person who started each one; nobody else when absent.
    #[serde(default)]
    pub stop_allow: Option<Allow>,
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

/// What runs a runbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// An Azure Automation runbook, started as a job.
    Automation,
    /// A script on the runner's machine.
    Local,
}

/// One parameter of a runbook.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// What users write before `=`, and the name the executor receives.
    pub name: String,
    /// Whether the user must give a value (a required parameter has no default).
    #[serde(default)]
    pub required: bool,
    /// The value the runner uses when the user gives none.
    #[serde(default)]
    pub default: Option<String>,
    /// The only values accepted, when given.
    #[serde(default)]
    pub choices: Option<Vec<String>>,
    /// One line for the usage text.
    #[serde(default)]
    pub description: Option<String>,
    /// What kind of value it takes; `string` when not given.
    #[serde(default, rename = "type")]
    pub kind: ParamType,
    /// The smallest value an `int` parameter accepts.
    #[serde(default)]
    pub min: Option<i64>,
    /// The largest value an `int` parameter accepts.
    #[serde(default)]
    pub max: Option<i64>,
    /// The most characters a `string` parameter accepts.
    #[serde(default)]
    pub max_len: Option<usize>,
    /// A regular expression the whole value of a `string` parameter must match (anchored).
    #[serde(default)]
    pub pattern: Option<String>,
    /// The value the catalog sets; callers may not give one.
    #[serde(default)]
    pub fixed: Option<String>,
    /// Values only some callers may give (or get as the default), each with who: like
    /// `only = { prod = { usergroups = ["S0ONCALL1"] } }`.
    #[serde(default)]
    pub only: BTreeMap<String, Allow>,
    /// The value is a secret: masked wherever it is shown or stored, and given to a local
    /// script only in its environment (see `secret`).
    #[serde(default)]
    pub secret: bool,
}

/// The kind of value a parameter takes (`type = "…"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// Any text, within `max_len` and `pattern` when given.
    #[default]
    String,
    /// A whole number (64-bit), within `min` and `max` when given.
    Int,
    /// `true` or `false`, in any case.
    Bool,
    /// One of `choices`, which it requires.
    Choice,
}

/// Who may run a runbook (`allow`), or stop its jobs (`stop_allow`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allow {
    /// Slack user IDs (`U…` or `W…`) of the people who may run it.
    #[serde(default)]
    pub users: Vec<String>,
    /// Slack user group IDs (`S…`) whose members may run it, as Slack's
    /// `usergroups.users.list` says.
    #[serde(default)]
    pub usergroups: Vec<String>,
    /// Slack channel IDs it may be run from; any channel when absent.
    #[serde(default)]
    pub channels: Option<Vec<String>>,
}

/// Who is asking, from where: the Slack IDs of a slash command's sender and channel, and what
/// is known of the sender's user groups ([`Groups::NONE`] when no rule needs them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller<'a> {
    pub user_id: &'a str,
    pub channel_id: &'a str,
    pub groups: &'a Groups,
}

impl Catalog {
    /// Reads and validates the catalog file.
    pub fn load(path: &Path) -> Result<Catalog, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|error| CatalogError::Read {
            path: path.to_owned(),
            error,
        })?;
        let catalog = Self::parse(&text, path)?;
        if catalog.runbooks.is_empty() {
            tracing::warn!(
                catalog = %path.display(),
                "the catalog lists no runbooks: every command will be answered with help"
            );
        }
        Ok(catalog)
    }

    /// Validates catalog text read from `path`. `path` names the file in errors and anchors
    /// local script targets, which must exist.
    pub fn parse(text: &str, path: &Path) -> Result<Catalog, CatalogError> {
        load::parse(text, path)
    }

    /// Which catalog this is: the first 16 hex digits of the SHA-256 of its text, so that two
    /// services (or one before and after a change) can tell whether they hold the same one.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The runbook with this exact name.
    pub fn get(&self, name: &str) -> Option<&Runbook> {
        self.runbooks.get(name)
    }

    /// The runbooks this caller may run from this channel, sorted by name.
    pub fn runnable_by(&self, caller: &Caller) -> Vec<&Runbook> {
        self.runbooks
            .values()
            .filter(|rb| rb.authorize(caller).is_ok())
            .collect()
    }

    /// What the executor runs: for a local script, its path joined to the catalog file's
    /// directory; for Automation, the runbook name unchanged.
    pub fn resolve_target(&self, rb: &Runbook) -> String {
        match rb.executor {
            ExecutorKind::Automation => rb.target.clone(),
            ExecutorKind::Local => self.dir().join(&rb.target).to_string_lossy().into_owned(),
        }
    }

    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new(""))
    }
}

impl Runbook {
    /// The parameter with this exact name.
    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// [`Catalog::version`] of catalog text.
fn version_of(text: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The environment variable through which a local script gets parameter `name`:
/// `CHATOPS_PARAM_` and the name upper-cased, every character but letters and digits as `_`.
pub fn param_env_var(name: &str) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("CHATOPS_PARAM_{name}")
}

#[cfg(test)]
mod version_tests {
    use super::*;

    #[test]
    fn the_version_is_a_short_hash_of_the_text() {
        let path = Path::new("runbooks.toml");
        let a = Catalog::parse("", path).unwrap();
        let b = Catalog::parse("# a comment\n", path).unwrap();
        // SHA-256 of the empty string.
        assert_eq!(a.version(), "e3b0c44298fc1c14");
        assert_ne!(a.version(), b.version());
        assert_eq!(
            b.version(),
            Catalog::parse("# a comment\n", path).unwrap().version()
        );
    }
}
