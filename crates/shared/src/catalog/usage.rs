//! Usage lines and the help text shown to Slack users.

use super::{Caller, Catalog, ParamSpec, ParamType, Runbook};
use crate::command::quote;
use std::fmt::Write as _;

impl Runbook {
    /// The usage line, then one line per parameter that has a description (or a default the
    /// line does not show), e.g.
    ///
    /// ```text
    /// /runbook restart-web env=<dev|prod> [count=1]
    ///   env: Target environment
    /// ```
    pub fn usage(&self, command: &str) -> String {
        let mut out = self.usage_line(command);
        for p in &self.params {
            let notes = notes(p);
            if p.description.is_none() && notes.is_empty() {
                continue;
            }
            let _ = write!(out, "\n  {}:", p.name);
            if let Some(description) = &p.description {
                let _ = write!(out, " {description}");
            }
            if !notes.is_empty() {
                let _ = write!(out, " ({})", notes.join(", "));
            }
        }
        out
    }

    /// `command name params…`: required parameters plain, optional ones in brackets with their
    /// default, choices as `<a|b>`, ints as `<int>` or their range `<1..10>`, bools as
    /// `<true|false>`; `fixed` ones are left out (callers cannot give them). Without a
    /// command, starts at the runbook name.
    pub(super) fn usage_line(&self, command: &str) -> String {
        let mut out = String::new();
        if !command.is_empty() {
            out.push_str(command);
            out.push(' ');
        }
        out.push_str(&self.name);
        for p in self.params.iter().filter(|p| p.fixed.is_none()) {
            out.push(' ');
            out.push_str(&synopsis(p));
        }
        out
    }
}

/// `env=<dev|prod>`, `host=<host>`, `[count=1]`, `[mode=<fast|slow>]`, `[n=<1..10>]`,
/// `[force=<true|false>]`.
fn synopsis(p: &ParamSpec) -> String {
    let value = match (&p.choices, p.kind, &p.default) {
        (Some(choices), _, _) => format!("<{}>", choices.join("|")),
        (None, ParamType::Int, _) => match (p.min, p.max) {
            (None, None) => "<int>".to_owned(),
            (min, max) => format!(
                "<{}..{}>",
                min.map(|n| n.to_string()).unwrap_or_default(),
                max.map(|n| n.to_string()).unwrap_or_default()
            ),
        },
        (None, ParamType::Bool, _) => "<true|false>".to_owned(),
        (None, _, Some(default)) if !p.required => quote(&p.shown(default)),
        (None, _, _) => format!("<{}>", p.name),
    };
    if p.required {
        format!("{}={value}", p.name)
    } else {
        format!("[{}={value}]", p.name)
    }
}

/// What the synopsis does not show: a default it hides, the length and pattern a string must
/// have, a fixed value.
pub(super) fn notes(p: &ParamSpec) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(fixed) = &p.fixed {
        notes.push(format!("fixed: {}", quote(&p.shown(fixed))));
        return notes;
    }
    if let Some(max_len) = p.max_len {
        notes.push(format!("at most {max_len} characters"));
    }
    if let Some(pattern) = &p.pattern {
        notes.push(format!("matching `{pattern}`"));
    }
    let default_hidden = p.choices.is_some() || matches!(p.kind, ParamType::Int | ParamType::Bool);
    if let Some(default) = p.default.as_ref().filter(|_| default_hidden) {
        notes.push(format!("default: {}", quote(&p.shown(default))));
    }
    notes
}

impl Catalog {
    /// How to use the command, then the runbooks this caller may run here with their
    /// description and usage. Runbooks the caller may not run are not shown.
    pub fn help_text(&self, caller: &Caller, command: &str) -> String {
        let mut out = format!(
            "Usage: `{command} <runbook> [value…] [name=value…]`\n\
             Values fill the runbook's parameters in order; name=value sets one by name. \
             Put a value with spaces in quotes: msg=\"hello world\".\n"
        );
        let runnable = self.runnable_by(caller);
        if let Some(problem) = caller.groups.problem() {
            let _ = write!(
                out,
                "\nRunbooks open to user groups are not shown: your user groups could not be checked ({problem}).\n"
            );
        }
        if runnable.is_empty() {
            let _ = write!(
                out,
                "\nYou may not run any runbook from here yet. To get access, ask an admin to add your Slack user ID {} to a runbook's allow list.",
                caller.user_id
            );
            return out;
        }
        out.push_str("\nRunbooks you may run:");
        for rb in runnable {
            let _ = write!(out, "\n• {}", rb.name);
            if !rb.description.is_empty() {
                let _ = write!(out, ": {}", rb.description);
            }
            for line in rb.usage(command).lines() {
                let _ = write!(out, "\n    {line}");
            }
        }
        let _ = write!(
            out,
            "\n\nSend `{command} help <runbook>` for one runbook's parameters and an example."
        );
        out
    }
}
