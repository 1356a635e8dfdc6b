//! Usage lines and the help text shown to Slack users.

use super::{Caller, Catalog, ParamSpec, Runbook};
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
            let hidden_default = p.default.as_ref().filter(|_| p.choices.is_some());
            if p.description.is_none() && hidden_default.is_none() {
                continue;
            }
            let _ = write!(out, "\n  {}:", p.name);
            if let Some(description) = &p.description {
                let _ = write!(out, " {description}");
            }
            if let Some(default) = hidden_default {
                let _ = write!(out, " (default: {})", quote(default));
            }
        }
        out
    }

    /// `command name params…`: required parameters plain, optional ones in brackets with their
    /// default, choices as `<a|b>`. Without a command, starts at the runbook name.
    pub(super) fn usage_line(&self, command: &str) -> String {
        let mut out = String::new();
        if !command.is_empty() {
            out.push_str(command);
            out.push(' ');
        }
        out.push_str(&self.name);
        for p in &self.params {
            out.push(' ');
            out.push_str(&synopsis(p));
        }
        out
    }
}

/// `env=<dev|prod>`, `host=<host>`, `[count=1]`, `[mode=<fast|slow>]`.
fn synopsis(p: &ParamSpec) -> String {
    let value = match (&p.choices, &p.default) {
        (Some(choices), _) => format!("<{}>", choices.join("|")),
        (None, Some(default)) if !p.required => quote(default),
        (None, _) => format!("<{}>", p.name),
    };
    if p.required {
        format!("{}={value}", p.name)
    } else {
        format!("[{}={value}]", p.name)
    }
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
        out
    }
}
