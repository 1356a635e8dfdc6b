//! Checking a parsed command against the catalog: which runbook, whether the caller may run
//! it, and which parameter values it gets.

use super::groups::Admission;
use super::suggest::closest;
use super::{Allow, Caller, Catalog, ParamSpec, RESERVED_WORDS, Runbook, ValueProblem};
use crate::command::{Arg, ParsedCommand, code_point, find_hidden};
use std::collections::BTreeMap;

/// Reserved words that show the help text.
const HELP_WORDS: &[&str] = &["help", "list"];

/// A command the caller may run, with the values they gave (defaults not filled in: the
/// runner does that, with [`Runbook::with_defaults`], against its own copy of the catalog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Catalog key of the runbook.
    pub runbook: String,
    /// Values the user gave, by parameter name.
    pub params: BTreeMap<String, String>,
}

/// Why a command is not run. Display is the answer for the Slack user: what is wrong and how
/// to fix it, with the runbook's usage where it helps. It is plain text: escape `&`, `<` and
/// `>` before sending it as Slack markup. `usage` fields hold the runbook's usage line without
/// the slash command, like `restart-web env=<dev|prod> [count=1]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No runbook named, or `help`/`list`: answer with [`Catalog::help_text`].
    #[error(
        "Give a runbook name and its values, like `restart-web env=dev`. Send `help` to list the runbooks you may run."
    )]
    Help,
    /// `help <runbook>` for a runbook the caller may run here: answer with
    /// [`Catalog::runbook_help`].
    #[error("Send `help {runbook}` to see its parameters.")]
    HelpFor { runbook: String },
    /// A reserved word for a feature that does not exist yet.
    #[error("`{word}` is not available yet. Send `help` to list the runbooks you may run.")]
    NotYetAvailable { word: String },
    /// The runbook name holds a hidden character ([`crate::command::is_hidden`]).
    #[error(
        "The runbook name contains the invisible character {code} at character {position}. Such characters can make a command look different from what runs; type the name again without it."
    )]
    HiddenCharacterInName { code: String, position: usize },
    /// A parameter name or value holds a hidden character ([`crate::command::is_hidden`]).
    /// `place` says where, like ``the value of `env` ``.
    #[error("{place} contains the invisible character {code} at character {position}. Such characters can make a command look different from what runs; type it again without it. Usage: `{usage}`", place = capitalized(.place))]
    HiddenCharacter {
        place: String,
        /// The parameter whose value it is in, when known.
        param: Option<String>,
        code: String,
        position: usize,
        usage: String,
    },
    #[error("There is no runbook `{name}` that you may run.{} Send `help` to list the runbooks you may run.", did_you_mean(.suggestion))]
    UnknownRunbook {
        name: String,
        suggestion: Option<String>,
    },
    #[error(
        "You are not allowed to run `{runbook}`. To get access, ask an admin to add your Slack user ID {user_id} to the runbook's allow list (or you to one of the user groups it names)."
    )]
    NotAllowed { runbook: String, user_id: String },
    /// The caller is not listed by ID and Slack could not say whether they are in a listed
    /// user group: refused (fail closed).
    #[error(
        "`{runbook}` was not run: your user groups could not be checked ({problem}), and only members of its user groups may run it. Try again in a moment; if this keeps happening, tell an admin."
    )]
    GroupsUnavailable { runbook: String, problem: String },
    /// A value of a parameter that the caller is not among the `only` list of.
    #[error(
        "You may not run `{runbook}` with {name}={value}: that value is limited to some people or channels (the parameter's `only` list). Use another value, or ask an admin for access. Usage: `{usage}`"
    )]
    ValueNotAllowed {
        runbook: String,
        name: String,
        value: String,
        usage: String,
    },
    /// A restricted value, and Slack could not say whether the caller is in its user groups.
    #[error(
        "`{runbook}` was not run: {name}={value} is limited to members of some user groups, and yours could not be checked ({problem}). Try again in a moment; if this keeps happening, tell an admin."
    )]
    ValueUnchecked {
        runbook: String,
        name: String,
        value: String,
        problem: String,
    },
    #[error("`{runbook}` cannot be run from this channel. Run it from one of its channels ({}), or ask an admin to add this channel ({channel_id}) to the runbook's allow list.", .channels.join(", "))]
    WrongChannel {
        runbook: String,
        channel_id: String,
        channels: Vec<String>,
    },
    #[error("`{runbook}` takes at most {max} value{} but got {given}. Put a value that contains spaces in quotes, like msg=\"hello world\". Usage: `{usage}`", if *.max == 1 { "" } else { "s" })]
    TooManyValues {
        runbook: String,
        max: usize,
        given: usize,
        usage: String,
    },
    #[error("`{runbook}` has no parameter `{name}`.{} Usage: `{usage}`", did_you_mean(.suggestion))]
    UnknownParameter {
        runbook: String,
        name: String,
        suggestion: Option<String>,
        usage: String,
    },
    #[error(
        "`{name}` is given more than once (a value given by position counts too); give it once. Usage: `{usage}`"
    )]
    RepeatedParameter { name: String, usage: String },
    #[error("`{name}` is required; add {name}=<value>. Usage: `{usage}`")]
    MissingParameter { name: String, usage: String },
    #[error("`{name}` is required and cannot be empty. Usage: `{usage}`")]
    EmptyValue { name: String, usage: String },
    #[error("{} is not a valid value for `{name}`; use one of: {}. Usage: `{usage}`", shown_value(.value), .choices.join(", "))]
    NotAChoice {
        name: String,
        value: String,
        choices: Vec<String>,
        usage: String,
    },
    /// A value that breaks its parameter's `type`, `min`/`max`, `max_len` or `pattern`.
    #[error("{} is not a valid value for `{name}`; {problem}. Usage: `{usage}`", shown_value(.value))]
    InvalidValue {
        name: String,
        value: String,
        problem: ValueProblem,
        usage: String,
    },
    /// A value given for a parameter the catalog fixes.
    #[error(
        "`{name}` is set by the catalog and cannot be given; remove {name}=… from the command. Usage: `{usage}`"
    )]
    FixedParameter { name: String, usage: String },
}

impl Rejection {
    /// The same rejection with usage lines that start with the slash command (`/runbook …`),
    /// as the user would type them.
    pub fn with_command(mut self, command: &str) -> Self {
        match &mut self {
            Rejection::TooManyValues { usage, .. }
            | Rejection::UnknownParameter { usage, .. }
            | Rejection::RepeatedParameter { usage, .. }
            | Rejection::MissingParameter { usage, .. }
            | Rejection::EmptyValue { usage, .. }
            | Rejection::NotAChoice { usage, .. }
            | Rejection::InvalidValue { usage, .. }
            | Rejection::FixedParameter { usage, .. }
            | Rejection::ValueNotAllowed { usage, .. }
            | Rejection::HiddenCharacter { usage, .. } => *usage = format!("{command} {usage}"),
            Rejection::Help
            | Rejection::HelpFor { .. }
            | Rejection::NotYetAvailable { .. }
            | Rejection::HiddenCharacterInName { .. }
            | Rejection::UnknownRunbook { .. }
            | Rejection::NotAllowed { .. }
            | Rejection::GroupsUnavailable { .. }
            | Rejection::ValueUnchecked { .. }
            | Rejection::WrongChannel { .. } => {}
        }
        self
    }

    /// For a refusal on who is asking (not on what was typed): the runbook and the rule that
    /// denied it, for the `decision=deny` log line and the audit log's `Denied`.
    pub fn denial(&self) -> Option<(&str, &'static str)> {
        match self {
            Rejection::NotAllowed { runbook, .. } => Some((runbook, "allow.users")),
            Rejection::WrongChannel { runbook, .. } => Some((runbook, "allow.channels")),
            Rejection::GroupsUnavailable { runbook, .. }
            | Rejection::ValueUnchecked { runbook, .. } => Some((runbook, "usergroup_lookup")),
            Rejection::ValueNotAllowed { runbook, .. } => Some((runbook, "params.only")),
            _ => None,
        }
    }
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" Did you mean `{s}`?"))
        .unwrap_or_default()
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn shown_value(value: &str) -> String {
    if value.is_empty() {
        "An empty value".to_owned()
    } else {
        format!("`{value}`")
    }
}

impl Catalog {
    /// Checks a command: the runbook exists, the caller may run it, and the values fit its
    /// parameters. Runbooks the caller may not run are never suggested.
    pub fn check(&self, caller: &Caller, parsed: &ParsedCommand) -> Result<Accepted, Rejection> {
        let typed = parsed.runbook.as_deref().unwrap_or_default();
        if let Some((c, position)) = find_hidden(typed) {
            return Err(Rejection::HiddenCharacterInName {
                code: code_point(c),
                position,
            });
        }
        // Runbook names are lowercase; accept `Restart-Web` from a phone's autocapitalization.
        let name = typed.to_lowercase();
        if name == "help"
            && let Some(Arg::Positional(asked)) = parsed.args.first()
        {
            return Err(self.help_for(caller, asked));
        }
        if name.is_empty() || HELP_WORDS.contains(&name.as_str()) {
            return Err(Rejection::Help);
        }
        if RESERVED_WORDS.contains(&name.as_str()) {
            return Err(Rejection::NotYetAvailable { word: name });
        }
        let Some(rb) = self.get(&name) else {
            let runnable = self.runnable_by(caller);
            return Err(Rejection::UnknownRunbook {
                name: typed.to_owned(),
                suggestion: closest(&name, runnable.iter().map(|rb| rb.name.as_str()))
                    .map(str::to_owned),
            });
        };
        rb.authorize(caller)?;
        let params = rb.bind(&parsed.args)?;
        rb.check_only(&params, caller)?;
        Ok(Accepted {
            runbook: rb.name.clone(),
            params,
        })
    }
}

impl Catalog {
    /// `help <asked>`: the runbook's help when the caller may run it here; otherwise the same
    /// answer as for a runbook that does not exist, so that help never names what the caller
    /// may not see.
    fn help_for(&self, caller: &Caller, asked: &str) -> Rejection {
        let name = asked.to_lowercase();
        match self.get(&name) {
            Some(rb) if rb.authorize(caller).is_ok() => Rejection::HelpFor {
                runbook: rb.name.clone(),
            },
            _ => Rejection::UnknownRunbook {
                name: asked.to_owned(),
                suggestion: closest(
                    &name,
                    self.runnable_by(caller).iter().map(|rb| rb.name.as_str()),
                )
                .map(str::to_owned),
            },
        }
    }
}

impl Runbook {
    /// Whether the caller may run this runbook: their user ID is in `allow.users` or they are in
    /// one of `allow.usergroups` and, when `allow.channels` is given, the command came from one
    /// of those channels. Without `allow`, nobody may. A user group that could not be checked
    /// never admits.
    pub fn authorize(&self, caller: &Caller) -> Result<(), Rejection> {
        let Some(allow) = &self.allow else {
            return Err(self.not_allowed(caller));
        };
        match allow.decide(caller) {
            Admission::Admitted => Ok(()),
            Admission::NotListed => Err(self.not_allowed(caller)),
            Admission::Unknown(problem) => Err(Rejection::GroupsUnavailable {
                runbook: self.name.clone(),
                problem,
            }),
            Admission::WrongChannel => Err(Rejection::WrongChannel {
                runbook: self.name.clone(),
                channel_id: caller.channel_id.to_owned(),
                channels: allow.channels.clone().unwrap_or_default(),
            }),
        }
    }

    fn not_allowed(&self, caller: &Caller) -> Rejection {
        Rejection::NotAllowed {
            runbook: self.name.clone(),
            user_id: caller.user_id.to_owned(),
        }
    }

    /// Whether the caller may choose `value` for `param`: its `only` does not restrict the
    /// value, or admits the caller (a group that could not be checked does not).
    pub fn may_choose(&self, param: &ParamSpec, value: &str, caller: &Caller) -> bool {
        param
            .only
            .get(value)
            .is_none_or(|who| matches!(who.decide(caller), Admission::Admitted))
    }

    /// Whether the caller may have each value that a parameter's `only` restricts: the value
    /// given, or else the default the runner would use.
    pub fn check_only(
        &self,
        given: &BTreeMap<String, String>,
        caller: &Caller,
    ) -> Result<(), Rejection> {
        for p in self.params.iter().filter(|p| !p.only.is_empty()) {
            let Some(value) = given.get(&p.name).or(p.default.as_ref()) else {
                continue;
            };
            let Some(who) = p.only.get(value) else {
                continue;
            };
            match who.decide(caller) {
                Admission::Admitted => {}
                Admission::Unknown(problem) => {
                    return Err(Rejection::ValueUnchecked {
                        runbook: self.name.clone(),
                        name: p.name.clone(),
                        value: p.shown(value),
                        problem,
                    });
                }
                Admission::NotListed | Admission::WrongChannel => {
                    return Err(Rejection::ValueNotAllowed {
                        runbook: self.name.clone(),
                        name: p.name.clone(),
                        value: p.shown(value),
                        usage: self.usage_line(""),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether `stop_allow` lets the caller stop this runbook's jobs: their user ID is listed
    /// and, when `stop_allow.channels` is given, the command came from one of those channels.
    /// Without `stop_allow`, nobody may (the person who started a job may always stop it: the
    /// caller checks that, it knows the job).
    pub fn stop_allowed(&self, caller: &Caller) -> bool {
        self.stop_allow.as_ref().is_some_and(|a| a.admits(caller))
    }

    /// Matches the arguments to the parameters: positional values fill them in catalog order
    /// (skipping `fixed` ones), then named values; a parameter may get one value only, and a
    /// `fixed` one none. Every value must pass its parameter's rules
    /// ([`ParamSpec::check_value`]). Returns the values given, by name, as the runbook receives
    /// them (`int` and `bool` values written plainly), without defaults and fixed values.
    pub fn bind(&self, args: &[Arg]) -> Result<BTreeMap<String, String>, Rejection> {
        let usage = || self.usage_line("");
        self.refuse_hidden(args)?;
        let open = self.open_params();
        let positional: Vec<&String> = args
            .iter()
            .filter_map(|a| match a {
                Arg::Positional(v) => Some(v),
                Arg::Named { .. } => None,
            })
            .collect();
        if positional.len() > open.len() {
            return Err(Rejection::TooManyValues {
                runbook: self.name.clone(),
                max: open.len(),
                given: positional.len(),
                usage: usage(),
            });
        }
        let mut given: BTreeMap<String, String> = open
            .iter()
            .zip(positional)
            .map(|(p, v)| (p.name.clone(), v.clone()))
            .collect();
        for arg in args {
            let Arg::Named { name, value } = arg else {
                continue;
            };
            let Some(p) = self.param(name) else {
                return Err(Rejection::UnknownParameter {
                    runbook: self.name.clone(),
                    name: name.clone(),
                    suggestion: closest(name, open.iter().map(|p| p.name.as_str()))
                        .map(str::to_owned),
                    usage: usage(),
                });
            };
            if p.fixed.is_some() {
                return Err(Rejection::FixedParameter {
                    name: name.clone(),
                    usage: usage(),
                });
            }
            if given.insert(name.clone(), value.clone()).is_some() {
                return Err(Rejection::RepeatedParameter {
                    name: name.clone(),
                    usage: usage(),
                });
            }
        }
        for p in &self.params {
            match given.get_mut(&p.name) {
                None if p.required => {
                    return Err(Rejection::MissingParameter {
                        name: p.name.clone(),
                        usage: usage(),
                    });
                }
                Some(v) if p.required && v.is_empty() => {
                    return Err(Rejection::EmptyValue {
                        name: p.name.clone(),
                        usage: usage(),
                    });
                }
                Some(v) => match p.check_value(v) {
                    Ok(checked) => *v = checked,
                    Err(ValueProblem::NotAChoice { choices }) => {
                        return Err(Rejection::NotAChoice {
                            name: p.name.clone(),
                            value: p.shown(v),
                            choices,
                            usage: usage(),
                        });
                    }
                    Err(problem) => {
                        return Err(Rejection::InvalidValue {
                            name: p.name.clone(),
                            value: p.shown(v),
                            problem,
                            usage: usage(),
                        });
                    }
                },
                None => {}
            }
        }
        Ok(given)
    }

    /// The parameters a caller may give: all but the `fixed` ones, in catalog order.
    fn open_params(&self) -> Vec<&ParamSpec> {
        self.params.iter().filter(|p| p.fixed.is_none()).collect()
    }

    /// Refuses hidden characters ([`crate::command::is_hidden`]) in parameter names and values,
    /// naming the first one found and where it is.
    fn refuse_hidden(&self, args: &[Arg]) -> Result<(), Rejection> {
        let open = self.open_params();
        let mut positional = 0;
        for arg in args {
            let (found, place, param) = match arg {
                Arg::Positional(value) => {
                    positional += 1;
                    let param = open.get(positional - 1).map(|p| p.name.clone());
                    let place = match &param {
                        Some(name) => format!("the value of `{name}`"),
                        None => format!("value {positional}"),
                    };
                    (find_hidden(value), place, param)
                }
                Arg::Named { name, value } => match find_hidden(name) {
                    Some(found) => (Some(found), "a parameter name".to_owned(), None),
                    None => (
                        find_hidden(value),
                        format!("the value of `{name}`"),
                        Some(name.clone()),
                    ),
                },
            };
            if let Some((c, position)) = found {
                return Err(Rejection::HiddenCharacter {
                    place,
                    param,
                    code: code_point(c),
                    position,
                    usage: self.usage_line(""),
                });
            }
        }
        Ok(())
    }

    /// Every parameter in catalog order with its fixed value, or else the value given, or else
    /// its default; parameters with none of these are left out.
    pub fn with_defaults(&self, given: &BTreeMap<String, String>) -> Vec<(String, String)> {
        self.params
            .iter()
            .filter_map(|p| {
                let value = p
                    .fixed
                    .as_ref()
                    .or(given.get(&p.name))
                    .or(p.default.as_ref())?;
                Some((p.name.clone(), value.clone()))
            })
            .collect()
    }

    /// Every parameter in catalog order with its fixed value, else the value given, else its
    /// default, else empty: what a local script gets, by position, so that a missing optional
    /// value never shifts the ones after it.
    pub fn argv(&self, given: &BTreeMap<String, String>) -> Vec<(String, String)> {
        self.params
            .iter()
            .map(|p| {
                let value = p
                    .fixed
                    .as_ref()
                    .or(given.get(&p.name))
                    .or(p.default.as_ref())
                    .cloned()
                    .unwrap_or_default();
                (p.name.clone(), value)
            })
            .collect()
    }
}

impl Allow {
    /// The caller's user ID is listed or they are in a listed user group and, when `channels`
    /// is given, they are in one of them. A group that could not be checked does not admit.
    pub fn admits(&self, caller: &Caller) -> bool {
        self.decide(caller) == Admission::Admitted
    }
}

#[cfg(test)]
mod tests;
