//! Reading the catalog file and validating it, with errors that point at a line and column.
//!
//! Syntax, types, unknown keys and bad durations are caught while deserializing, and toml's
//! error span gives the place. The rules serde cannot express (names, targets, Slack IDs, …)
//! are checked afterwards; their place is found in toml's spanned document tree.

use super::{
    Allow, Catalog, Defaults, ExecutorKind, ParamSpec, ParamType, RESERVED_WORDS, Runbook,
    ValueProblem, value::anchored,
};
use crate::slack_id::is_slack_id;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::de::DeTable;

/// Why the catalog cannot be used. Display is `<path>:<line>:<column>: <problem>`, or
/// `<path>: <problem>` when the file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{}: cannot read the runbook catalog: {error}", .path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// `line` and `column` count from 1; `column` counts characters.
    #[error("{}:{line}:{column}: {problem}", .path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        problem: String,
    },
    /// A valid catalog this service cannot use (see `LiveCatalog::with_check`).
    #[error("{}: {problem}", .path.display())]
    Unusable { path: PathBuf, problem: String },
}

impl CatalogError {
    fn invalid(path: &Path, text: &str, offset: usize, problem: impl Into<String>) -> Self {
        let (line, column) = line_column(text, offset);
        CatalogError::Invalid {
            path: path.to_owned(),
            line,
            column,
            problem: problem.into(),
        }
    }
}

/// The file's top level.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    runbooks: BTreeMap<String, Runbook>,
}

pub(super) fn parse(text: &str, path: &Path) -> Result<Catalog, CatalogError> {
    let file: CatalogFile = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        CatalogError::invalid(path, text, offset, e.message())
    })?;
    let mut runbooks = file.runbooks;
    for (name, rb) in &mut runbooks {
        rb.name.clone_from(name);
    }
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut problems = Problems::new(text);
    let defaults = file.defaults;
    if let Some(allow) = &defaults.allow {
        validate_allow(
            Scope::Defaults,
            "allow",
            allow,
            "run a runbook",
            &mut problems,
        );
    }
    if let Some(stop_allow) = &defaults.stop_allow {
        validate_allow(
            Scope::Defaults,
            "stop_allow",
            stop_allow,
            "stop a runbook's jobs",
            &mut problems,
        );
    }
    for rb in runbooks.values_mut() {
        validate(rb, dir, &mut problems);
        // A runbook's own key replaces the default whole.
        if rb.allow.is_none() {
            rb.allow.clone_from(&defaults.allow);
        }
        if rb.stop_allow.is_none() {
            rb.stop_allow.clone_from(&defaults.stop_allow);
        }
    }
    // Report the problem that comes first in the file, as a parser would.
    if let Some((offset, problem)) = problems.found.into_iter().min_by_key(|(offset, _)| *offset) {
        return Err(CatalogError::invalid(path, text, offset, problem));
    }
    Ok(Catalog {
        path: path.to_owned(),
        runbooks,
        version: super::version_of(text),
    })
}

/// The longest `timeout`: 30 days, the default retention of job records (a job that runs
/// longer outlives its record), and far beyond any ChatOps job.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30 * 24 * 3600);

/// `timeout`: a humantime duration above zero, at most [`MAX_TIMEOUT`].
pub(super) fn deserialize_timeout<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Duration, D::Error> {
    let value = String::deserialize(d)?;
    let timeout = humantime::parse_duration(&value).map_err(|e| {
        serde::de::Error::custom(format!(
            "timeout `{value}` is not a duration like 90s, 30m or 3h ({e})"
        ))
    })?;
    if timeout.is_zero() {
        return Err(serde::de::Error::custom(format!(
            "timeout `{value}` must be longer than zero"
        )));
    }
    if timeout > MAX_TIMEOUT {
        return Err(serde::de::Error::custom(format!(
            "timeout `{value}` is longer than the longest a job may run, 30 days"
        )));
    }
    Ok(timeout)
}

/// Checks `rb`; writes its `default` and `fixed` values as the runbook receives them.
fn validate(rb: &mut Runbook, dir: &Path, problems: &mut Problems) {
    let name = rb.name.as_str();
    if RESERVED_WORDS.contains(&name) {
        problems.add(
            name,
            &[],
            format!("`{name}` is a reserved word of the command language and cannot name a runbook; pick another name"),
        );
    } else if !is_runbook_name(name) {
        problems.add(
            name,
            &[],
            format!(
                "runbook name `{name}` must start with a lowercase letter and hold only lowercase letters, digits and `-` (at most 63 characters)"
            ),
        );
    }

    let target = &[At::Key("target")];
    if rb.target.trim().is_empty() {
        problems.add(
            name,
            target,
            "`target` is empty; name the Automation runbook or the script to run",
        );
    } else {
        match rb.executor {
            ExecutorKind::Automation if !is_automation_name(&rb.target) => problems.add(
                name,
                target,
                format!(
                    "`{}` is not an Azure Automation runbook name: it must start with a letter and hold only letters, digits, `_` and `-`",
                    rb.target
                ),
            ),
            ExecutorKind::Local if !dir.join(&rb.target).is_file() => problems.add(
                name,
                target,
                format!(
                    "script `{}` not found (looked for `{}`; local targets are relative to the catalog file's directory)",
                    rb.target,
                    dir.join(&rb.target).display()
                ),
            ),
            _ => {}
        }
    }

    validate_params(&*rb, problems);
    let scope = Scope::Runbook(&rb.name);
    if let Some(allow) = &rb.allow {
        validate_allow(scope, "allow", allow, "run it", problems);
    }
    if let Some(stop_allow) = &rb.stop_allow {
        validate_allow(scope, "stop_allow", stop_allow, "stop its jobs", problems);
    }
    validate_only(rb, problems);
    for p in &mut rb.params {
        if let Some(default) = p.default.as_deref().and_then(|v| p.check_value(v).ok()) {
            p.default = Some(default);
        }
        if let Some(fixed) = p.fixed.as_deref().and_then(|v| p.check_value(v).ok()) {
            p.fixed = Some(fixed);
        }
    }
}

fn validate_params(rb: &Runbook, problems: &mut Problems) {
    let mut seen = BTreeSet::new();
    let mut env_names = std::collections::BTreeMap::new();
    for (i, p) in rb.params.iter().enumerate() {
        let at = |key| [At::Key("params"), At::Index(i), At::Key(key)];
        if !is_param_name(&p.name) {
            problems.add(
                &rb.name,
                &at("name"),
                format!(
                    "parameter name `{}` must start with a letter and hold only letters, digits, `_` and `-` (at most 64 characters)",
                    p.name
                ),
            );
        } else if !seen.insert(p.name.as_str()) {
            problems.add(
                &rb.name,
                &at("name"),
                format!("parameter `{}` is defined twice", p.name),
            );
        } else if let Some(other) = env_names.insert(super::param_env_var(&p.name), p.name.as_str())
        {
            problems.add(
                &rb.name,
                &at("name"),
                format!(
                    "parameters `{other}` and `{}` would both reach a script as {}; rename one",
                    p.name,
                    super::param_env_var(&p.name)
                ),
            );
        }
        if p.required && p.default.is_some() {
            problems.add(
                &rb.name,
                &at("default"),
                format!(
                    "parameter `{}` is required, so its default would never be used; remove `default` or `required`",
                    p.name
                ),
            );
        }
        match (&p.choices, &p.default) {
            (Some(choices), _) if choices.is_empty() => problems.add(
                &rb.name,
                &at("choices"),
                format!("parameter `{}` has an empty `choices` list; list the accepted values or remove `choices`", p.name),
            ),
            (Some(choices), Some(default)) if !choices.contains(default) => problems.add(
                &rb.name,
                &at("default"),
                format!(
                    "default `{default}` of parameter `{}` is not among its choices ({})",
                    p.name,
                    choices.join(", ")
                ),
            ),
            _ => {}
        }
        validate_rules(rb, i, p, problems);
    }
}

/// The rules of parameter `p` (number `i`) of `rb`: keys that fit its `type`, a range and a
/// pattern that can be met, and `default`, `fixed` and `choices` values that pass its rules.
fn validate_rules(rb: &Runbook, i: usize, p: &ParamSpec, problems: &mut Problems) {
    let at = |key| [At::Key("params"), At::Index(i), At::Key(key)];
    let (name, runbook) = (&p.name, &rb.name);
    let mut add = |key, problem: String| {
        problems.add(
            runbook,
            &at(key),
            format!("parameter `{name}` of runbook `{runbook}`: {problem}"),
        );
    };
    let kind = type_name(p.kind);
    if p.kind == ParamType::Choice && p.choices.is_none() {
        add(
            "type",
            "`type = \"choice\"` needs `choices`; list the accepted values".to_owned(),
        );
    }
    for (key, given, wants) in [
        ("min", p.min.is_some(), ParamType::Int),
        ("max", p.max.is_some(), ParamType::Int),
        ("max_len", p.max_len.is_some(), ParamType::String),
        ("pattern", p.pattern.is_some(), ParamType::String),
    ] {
        if given && p.kind != wants {
            let wants = type_name(wants);
            add(
                key,
                format!(
                    "`{key}` applies to `type = \"{wants}\"` only, not `{kind}`; remove it or change the type"
                ),
            );
        }
    }
    if let (Some(min), Some(max)) = (p.min, p.max)
        && min > max
    {
        add(
            "min",
            format!("`min` ({min}) is above `max` ({max}), so no value could pass; swap them"),
        );
    }
    if let Some(pattern) = &p.pattern
        && let Err(e) = anchored(pattern)
    {
        // A syntax error's last line says what is wrong; the lines above draw where.
        let error = e.to_string();
        let reason = error.lines().last().unwrap_or_default().trim().to_owned();
        add(
            "pattern",
            format!(
                "`{pattern}` is not a valid regular expression ({reason}); fix it (syntax: https://docs.rs/regex)"
            ),
        );
    }
    if let Some(fixed) = &p.fixed {
        if p.required {
            add(
                "fixed",
                "a `fixed` parameter cannot be `required` (callers may not give it); remove `required`".to_owned(),
            );
        }
        if p.default.is_some() {
            add(
                "default",
                "a `fixed` parameter never uses its `default`; remove `default`".to_owned(),
            );
        }
        if let Err(problem) = p.check_value(fixed) {
            add(
                "fixed",
                format!("fixed value `{fixed}` does not pass its own rules; {problem}"),
            );
        }
    }
    // A default outside the choices is reported above.
    if let Some(default) = &p.default
        && let Err(problem) = p.check_value(default)
        && !matches!(problem, ValueProblem::NotAChoice { .. })
    {
        add(
            "default",
            format!("default `{default}` does not pass its own rules; {problem}"),
        );
    }
    let open = ParamSpec {
        choices: None,
        ..p.clone()
    };
    for (j, choice) in p.choices.iter().flatten().enumerate() {
        let at = [
            At::Key("params"),
            At::Index(i),
            At::Key("choices"),
            At::Index(j),
        ];
        match open.check_value(choice) {
            Err(problem) => problems.add(
                runbook,
                &at,
                format!("parameter `{name}` of runbook `{runbook}`: choice `{choice}` does not pass its own rules; {problem}"),
            ),
            // A typed value is compared as the runbook receives it (`01` as `1`, `TRUE` as
            // `true`): a choice written otherwise could never be chosen.
            Ok(received) if received != *choice => problems.add(
                runbook,
                &at,
                format!("parameter `{name}` of runbook `{runbook}`: choice `{choice}` would never match, as values of type `{kind}` are received as `{received}`; write it `{received}`"),
            ),
            Ok(_) => {}
        }
    }
}

fn type_name(kind: ParamType) -> &'static str {
    match kind {
        ParamType::String => "string",
        ParamType::Int => "int",
        ParamType::Bool => "bool",
        ParamType::Choice => "choice",
    }
}

/// `allow` and `stop_allow` (named `key`): Slack IDs, and lists that are not empty. `may` says
/// what the list grants, for the messages.
fn validate_allow(
    scope: Scope,
    key: &'static str,
    allow: &Allow,
    may: &str,
    problems: &mut Problems,
) {
    validate_who(scope, &[At::Key(key)], key, allow, may, problems);
}

/// A table of the shape of `allow` at `at` (shown as `key` in messages).
fn validate_who(
    scope: Scope,
    at: &[At],
    key: &str,
    allow: &Allow,
    may: &str,
    problems: &mut Problems,
) {
    let path = |tail: &[At<'static>]| -> Vec<At> { at.iter().chain(tail).copied().collect() };
    if allow.users.is_empty() && allow.usergroups.is_empty() {
        // What leaving the key out means instead, so that the advice is true where it is given.
        let without = if key.starts_with("only.") {
            format!("without `{key}`, everyone `allow` admits may give it")
        } else if matches!(scope, Scope::Defaults) {
            format!(
                "without `[defaults].{key}`, a runbook without its own `{key}` is open to nobody"
            )
        } else {
            format!(
                "without `{key}`, the runbook takes `[defaults].{key}`, and without that nobody may"
            )
        };
        problems.add_in(
            scope,
            &path(&[At::Key("users")]),
            format!("`{key}.users` is empty and there are no `usergroups`; list the Slack user IDs (like U012AB3CD) or user group IDs (like S0614TZR7) of who may {may} ({without})"),
        );
    }
    for (i, user) in allow.users.iter().enumerate() {
        if !is_slack_id(user, &['U', 'W']) {
            problems.add_in(
                scope,
                &path(&[At::Key("users"), At::Index(i)]),
                format!(
                    "`{user}` is not a Slack user ID (like U012AB3CD); copy it from the person's Slack profile (“Copy member ID”)"
                ),
            );
        }
    }
    for (i, group) in allow.usergroups.iter().enumerate() {
        if !is_slack_id(group, &['S']) {
            problems.add_in(
                scope,
                &path(&[At::Key("usergroups"), At::Index(i)]),
                format!(
                    "`{group}` is not a Slack user group ID (like S0614TZR7); a handle like @oncall is not an ID: find the ID with Slack's usergroups.list, or in the group's page URL"
                ),
            );
        }
    }
    let Some(channels) = &allow.channels else {
        return;
    };
    if channels.is_empty() {
        problems.add_in(
            scope,
            &path(&[At::Key("channels")]),
            format!("`{key}.channels` is empty, so nobody could {may}; list Slack channel IDs (like C024BE91L), or remove `channels` to allow any channel"),
        );
    }
    for (i, channel) in channels.iter().enumerate() {
        if !is_slack_id(channel, &['C', 'G', 'D']) {
            problems.add_in(
                scope,
                &path(&[At::Key("channels"), At::Index(i)]),
                format!(
                    "`{channel}` is not a Slack channel ID (like C024BE91L); copy it from the channel's details in Slack"
                ),
            );
        }
    }
}

/// `only` of parameter `p` (number `i`): each value one the parameter accepts, on a parameter
/// callers can give, with who may give it; the values are rewritten as the runbook receives
/// them.
fn validate_only(rb: &mut Runbook, problems: &mut Problems) {
    for (i, p) in rb.params.iter_mut().enumerate() {
        let mut only = BTreeMap::new();
        for (value, who) in std::mem::take(&mut p.only) {
            let at = [
                At::Key("params"),
                At::Index(i),
                At::Key("only"),
                At::Key(&value),
            ];
            let shown = format!("only.{value}");
            let problem = if p.fixed.is_some() {
                Some(format!(
                    "parameter `{}` is fixed, so callers never give it; remove `only`",
                    p.name
                ))
            } else if p.kind == ParamType::String && p.choices.is_none() {
                // Compared as typed, a free-text value could be given another way (`Prod`,
                // `prod `) that the runbook takes for the same.
                Some(format!(
                    "parameter `{}` takes any text, so `{value}` could be typed another way (other case, spaces) to get round `only`; give it `choices` that list its values",
                    p.name
                ))
            } else {
                p.check_value(&value).err().map(|why| format!("`{value}` is not a value parameter `{}` accepts ({why}); list only values it accepts", p.name))
            };
            if let Some(problem) = problem {
                problems.add(&rb.name, &at, problem);
            }
            let may = format!("give {}={value}", p.name);
            validate_who(Scope::Runbook(&rb.name), &at, &shown, &who, &may, problems);
            let value = p.check_value(&value).unwrap_or(value);
            only.insert(value, who);
        }
        p.only = only;
    }
}

/// `^[a-z][a-z0-9-]{0,62}$`
fn is_runbook_name(s: &str) -> bool {
    s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `^[a-zA-Z][a-zA-Z0-9_-]*$`
fn is_automation_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `^[A-Za-z][A-Za-z0-9_-]{0,63}$`
fn is_param_name(s: &str) -> bool {
    s.len() <= 64 && is_automation_name(s)
}

/// 1-based line and character column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Where in the file a problem is: below a runbook's table, or below `[defaults]`.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Runbook(&'a str),
    Defaults,
}

/// A step into the document below a runbook's table.
#[derive(Clone, Copy)]
enum At<'a> {
    Key(&'a str),
    Index(usize),
}

/// Semantic problems found, each with the byte offset it is about.
struct Problems<'t> {
    /// The document with spans; `None` only if it cannot be parsed, which deserializing
    /// has already ruled out.
    doc: Option<toml::Spanned<DeTable<'t>>>,
    found: Vec<(usize, String)>,
}

impl<'t> Problems<'t> {
    fn new(text: &'t str) -> Self {
        Problems {
            doc: DeTable::parse(text).ok(),
            found: Vec::new(),
        }
    }

    fn add(&mut self, runbook: &str, path: &[At], problem: impl Into<String>) {
        self.add_in(Scope::Runbook(runbook), path, problem);
    }

    fn add_in(&mut self, scope: Scope, path: &[At], problem: impl Into<String>) {
        let offset = self.locate(scope, path).start;
        self.found.push((offset, problem.into()));
    }

    /// The span of the value at `path` in `scope`, or of the nearest thing above it that
    /// exists (the runbook's or `defaults` key at worst).
    fn locate(&self, scope: Scope, path: &[At]) -> Range<usize> {
        let Some(doc) = &self.doc else { return 0..0 };
        let (table, name) = match scope {
            Scope::Runbook(runbook) => ("runbooks", Some(runbook)),
            Scope::Defaults => ("defaults", None),
        };
        let Some((key, table)) = doc.get_ref().get_key_value(table) else {
            return 0..0;
        };
        let (key, mut value) = match name {
            None => (key, table),
            Some(name) => {
                let Some(found) = table
                    .get_ref()
                    .as_table()
                    .and_then(|t| t.get_key_value(name))
                else {
                    return table.span();
                };
                found
            }
        };
        let mut span = key.span();
        for step in path {
            let next = match step {
                At::Key(k) => value.get_ref().get(*k),
                At::Index(i) => value.get_ref().get(*i),
            };
            let Some(next) = next else { break };
            span = next.span();
            value = next;
        }
        span
    }
}

#[cfg(test)]
mod tests;
