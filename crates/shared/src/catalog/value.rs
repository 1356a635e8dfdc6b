//! One value against one parameter's rules (`type`, `choices`, `min`/`max`, `max_len`,
//! `pattern`): the one check used for what callers give (in [`Runbook::bind`], by the ingress
//! and again by the runner) and for the catalog's own `default` and `fixed` values at load.
//!
//! [`Runbook::bind`]: super::Runbook::bind

use super::{ParamSpec, ParamType};

/// What is wrong with a value. Display says how to fix it, to follow "… is not a valid value
/// for `name`; ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueProblem {
    #[error("use one of: {}", .choices.join(", "))]
    NotAChoice { choices: Vec<String> },
    #[error("give a whole number{}", range(*.min, *.max))]
    NotAnInt { min: Option<i64>, max: Option<i64> },
    #[error("give a whole number{}", range(*.min, *.max))]
    OutOfRange { min: Option<i64>, max: Option<i64> },
    #[error("give true or false")]
    NotABool,
    #[error("it has {len} characters; give at most {max_len}")]
    TooLong { max_len: usize, len: usize },
    #[error("give a value that matches the pattern `{pattern}` as a whole")]
    NoMatch { pattern: String },
}

/// ` from 1 to 10`, ` of at least 1`, ` of at most 10`, or nothing.
fn range(min: Option<i64>, max: Option<i64>) -> String {
    match (min, max) {
        (Some(min), Some(max)) => format!(" from {min} to {max}"),
        (Some(min), None) => format!(" of at least {min}"),
        (None, Some(max)) => format!(" of at most {max}"),
        (None, None) => String::new(),
    }
}

/// `pattern` anchored so that the whole value must match.
pub(super) fn anchored(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
}

impl ParamSpec {
    /// The value as the runbook receives it, or what is wrong with it. `int` values are
    /// written plainly (`007` becomes `7`) and `bool` values in lowercase (`TRUE` becomes
    /// `true`), so that a script compares them simply.
    pub fn check_value(&self, value: &str) -> Result<String, ValueProblem> {
        let value = match self.kind {
            ParamType::String | ParamType::Choice => self.check_text(value)?,
            ParamType::Int => self.check_int(value)?,
            ParamType::Bool => match value.to_ascii_lowercase().as_str() {
                v @ ("true" | "false") => v.to_owned(),
                _ => return Err(ValueProblem::NotABool),
            },
        };
        match &self.choices {
            Some(choices) if !choices.contains(&value) => Err(ValueProblem::NotAChoice {
                choices: choices.clone(),
            }),
            _ => Ok(value),
        }
    }

    fn check_text(&self, value: &str) -> Result<String, ValueProblem> {
        let len = value.chars().count();
        if let Some(max_len) = self.max_len.filter(|max_len| len > *max_len) {
            return Err(ValueProblem::TooLong { max_len, len });
        }
        if let Some(pattern) = &self.pattern {
            // Loading has compiled the pattern already; one that fails here matches nothing.
            let matches = anchored(pattern).is_ok_and(|re| re.is_match(value));
            if !matches {
                return Err(ValueProblem::NoMatch {
                    pattern: pattern.clone(),
                });
            }
        }
        Ok(value.to_owned())
    }

    fn check_int(&self, value: &str) -> Result<String, ValueProblem> {
        let (min, max) = (self.min, self.max);
        let n: i64 = value
            .parse()
            .map_err(|_| ValueProblem::NotAnInt { min, max })?;
        if min.is_some_and(|min| n < min) || max.is_some_and(|max| n > max) {
            return Err(ValueProblem::OutOfRange { min, max });
        }
        Ok(n.to_string())
    }
}
