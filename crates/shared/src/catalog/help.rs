//! `help <runbook>`: one runbook's description, usage, parameters (type, required, default,
//! allowed values, values limited to some people) and an example. Plain text, like the rest of
//! the help; the ingress escapes it and lays it out.

use super::usage::notes;
use super::{Allow, Caller, Catalog, ParamSpec, ParamType, Runbook};
use crate::command::quote;
use std::fmt::Write as _;

impl Catalog {
    /// The help of `runbook` for `caller` (who may run it: [`super::Rejection::HelpFor`]).
    pub fn runbook_help(&self, runbook: &str, caller: &Caller, command: &str) -> String {
        let Some(rb) = self.get(runbook) else {
            return self.help_text(caller, command);
        };
        let mut out = rb.name.clone();
        if !rb.description.is_empty() {
            let _ = write!(out, ": {}", rb.description);
        }
        let _ = write!(out, "\nUsage: `{}`", rb.usage_line(command));
        let open: Vec<&ParamSpec> = rb.params.iter().filter(|p| p.fixed.is_none()).collect();
        if open.is_empty() {
            out.push_str("\nIt takes no parameters.");
        } else {
            out.push_str("\nParameters:");
            for p in open {
                let _ = write!(out, "\n• {}", describe(p));
            }
        }
        let _ = write!(out, "\nExample: `{}`", example(rb, command));
        out
    }
}

/// `env (choice, required): Target environment. One of: dev, prod. prod: only for user group
/// S0ONCALL1.`
fn describe(p: &ParamSpec) -> String {
    let kind = match (p.kind, &p.choices) {
        (ParamType::Int, _) => "int",
        (ParamType::Bool, _) => "true or false",
        (_, Some(_)) => "one of the choices",
        (ParamType::String | ParamType::Choice, None) => "text",
    };
    let need = if p.required { "required" } else { "optional" };
    let mut out = format!("{} ({kind}, {need})", p.name);
    if let Some(description) = &p.description {
        let _ = write!(out, ": {description}");
    }
    if let Some(choices) = &p.choices {
        let _ = write!(out, ". One of: {}", choices.join(", "));
    }
    match (p.min, p.max) {
        (None, None) => {}
        (min, max) => {
            let _ = write!(
                out,
                ". From {} to {}",
                min.map_or("any".to_owned(), |n| n.to_string()),
                max.map_or("any".to_owned(), |n| n.to_string())
            );
        }
    }
    let mut notes = notes(p);
    if let Some(default) = &p.default
        && !notes.iter().any(|n| n.starts_with("default"))
    {
        notes.push(format!("default: {}", quote(&p.shown(default))));
    }
    if !notes.is_empty() {
        let _ = write!(out, " ({})", notes.join(", "));
    }
    for (value, who) in &p.only {
        let _ = write!(out, ". {}={value} only for {}", p.name, whom(who));
    }
    out
}

/// `user group S0ONCALL1, user U012AB3CD, in channel C024BE91L`.
fn whom(who: &Allow) -> String {
    let mut parts: Vec<String> = who
        .usergroups
        .iter()
        .map(|g| format!("user group {g}"))
        .chain(who.users.iter().map(|u| format!("user {u}")))
        .collect();
    if let Some(channels) = &who.channels {
        parts.push(format!("in channel {}", channels.join(" or ")));
    }
    parts.join(", ")
}

/// The command with a value for each required parameter: its first choice, its lowest
/// allowed number, `true`, or `<name>`.
fn example(rb: &Runbook, command: &str) -> String {
    let mut out = if command.is_empty() {
        rb.name.clone()
    } else {
        format!("{command} {}", rb.name)
    };
    for p in rb.params.iter().filter(|p| p.required && p.fixed.is_none()) {
        let value = match (&p.choices, p.kind) {
            (Some(choices), _) => choices.first().cloned().unwrap_or_default(),
            (None, ParamType::Int) => p.min.unwrap_or(1).to_string(),
            (None, ParamType::Bool) => "true".to_owned(),
            (None, _) => format!("<{}>", p.name),
        };
        let _ = write!(out, " {}={value}", p.name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Groups, Rejection};
    use crate::command::parse;
    use std::path::Path;

    const CATALOG: &str = r#"
[runbooks.deploy]
description = "Deploy a service"
executor = "automation"
target = "Deploy"
params = [
  { name = "env", required = true, choices = ["dev", "prod"], description = "Where", only = { prod = { usergroups = ["S0ONCALL1"] } } },
  { name = "count", type = "int", min = 1, max = 5, default = "1" },
  { name = "rg", fixed = "rg-web" },
]
allow = { users = ["UALICE"] }

[runbooks.secret]
executor = "automation"
target = "Secret"
allow = { users = ["UBOB"] }
"#;

    fn alice() -> Caller<'static> {
        Caller {
            user_id: "UALICE",
            channel_id: "COPS",
            groups: Groups::none(),
        }
    }

    #[test]
    fn help_for_a_runbook_shows_its_parameters_and_an_example() {
        let c = Catalog::parse(CATALOG, Path::new("c.toml")).unwrap();
        let asked = c.check(&alice(), &parse("help deploy").unwrap());
        assert_eq!(
            asked,
            Err(Rejection::HelpFor {
                runbook: "deploy".into()
            })
        );
        let help = c.runbook_help("deploy", &alice(), "/runbook");
        for expected in [
            "deploy: Deploy a service",
            "Usage: `/runbook deploy env=<dev|prod> [count=<1..5>]`",
            "• env (one of the choices, required): Where. One of: dev, prod. env=prod only for user group S0ONCALL1",
            "• count (int, optional). From 1 to 5 (default: 1)",
            "Example: `/runbook deploy env=dev`",
        ] {
            assert!(help.contains(expected), "{expected}\n{help}");
        }
        assert!(
            !help.contains("rg-web"),
            "fixed values are not the caller's: {help}"
        );
    }

    #[test]
    fn a_secret_parameters_default_is_masked_in_help_and_usage() {
        let text = r#"
[runbooks.login]
executor = "automation"
target = "Login"
params = [
  { name = "user", required = true },
  { name = "token", secret = true, default = "s3cr3t-default" },
  { name = "key", secret = true, choices = ["k1", "k2"], default = "k1" },
]
allow = { users = ["UALICE"] }
"#;
        let c = Catalog::parse(text, Path::new("c.toml")).unwrap();
        let help = c.runbook_help("login", &alice(), "/runbook");
        assert!(help.contains("[token=•••]"), "{help}");
        assert!(help.contains("default: •••"), "{help}");
        let refused = c
            .check(&alice(), &parse("login").unwrap())
            .unwrap_err()
            .to_string();
        assert!(refused.contains("[token=•••]"), "{refused}");
        for shown in [&help, &refused] {
            assert!(!shown.contains("s3cr3t-default"), "{shown}");
            assert!(!shown.contains("default: k1"), "{shown}");
        }
    }

    #[test]
    fn help_never_names_a_runbook_the_caller_may_not_see() {
        let c = Catalog::parse(CATALOG, Path::new("c.toml")).unwrap();
        for text in ["help secret", "help secrets", "secrets"] {
            let refused = c.check(&alice(), &parse(text).unwrap()).unwrap_err();
            assert!(
                matches!(
                    &refused,
                    Rejection::UnknownRunbook {
                        suggestion: None,
                        ..
                    }
                ),
                "{text}: {refused:?}"
            );
            assert!(!refused.to_string().contains("Did you mean"), "{refused}");
        }
        let refused = c
            .check(&alice(), &parse("help deplyo").unwrap())
            .unwrap_err();
        assert!(
            refused.to_string().contains("Did you mean `deploy`?"),
            "{refused}"
        );
    }
}
