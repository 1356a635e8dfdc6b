//! Secret parameters (`secret = true`): a token or a password someone passes once. Their values
//! are shown as [`MASK`] in every answer, status message, job record, audit line, log line and
//! history; the job message carries the names of its secret parameters
//! (`JobMessage::secret_params`) so that every later reader masks them without the catalog.
//! A local script gets a secret value only in its environment (`CHATOPS_PARAM_<NAME>`): its
//! place in argv, which `ps` shows, is left empty.

use super::{Catalog, ParamSpec, Runbook};
use crate::command::{self, Arg};
pub use crate::job::MASK;

impl ParamSpec {
    /// `value` as it may be shown: [`MASK`] for a secret parameter.
    pub fn shown(&self, value: &str) -> String {
        if self.secret {
            MASK.to_owned()
        } else {
            value.to_owned()
        }
    }
}

impl Runbook {
    /// The values the catalog itself gives its secret parameters (`default`, `fixed`): the
    /// runner fills them in, so they are masked as given ones are.
    pub fn secret_catalog_values(&self) -> Vec<String> {
        self.params
            .iter()
            .filter(|p| p.secret)
            .flat_map(|p| p.default.iter().chain(&p.fixed))
            .cloned()
            .collect()
    }

    /// The names of its secret parameters, in catalog order.
    pub fn secret_params(&self) -> Vec<String> {
        self.params
            .iter()
            .filter(|p| p.secret)
            .map(|p| p.name.clone())
            .collect()
    }
}

impl Catalog {
    /// Command text as it may be recorded (the audit line of a refused command): unchanged
    /// when no runbook has secret parameters; else each value that is or may be secret is
    /// [`MASK`]: a secret parameter's, an unknown name's or one past the last place (a
    /// secret given to the wrong runbook, or mistyped). A name that is no runbook's may be one
    /// mistyped: every value is masked then. Text that does not parse keeps only its first
    /// word. `--form` takes no place.
    pub fn masked_command(&self, text: &str) -> String {
        let first = text.split_whitespace().next().unwrap_or_default();
        if !self
            .runbooks
            .values()
            .flat_map(|rb| &rb.params)
            .any(|p| p.secret)
        {
            return text.to_owned();
        }
        let Ok(parsed) = command::parse(text) else {
            return format!("{first} {MASK}");
        };
        // No runbook of that name: no place and no name is known, so every value is masked.
        let rb = self.get(&first.to_lowercase());
        let open: Vec<&ParamSpec> = rb
            .iter()
            .flat_map(|rb| &rb.params)
            .filter(|p| p.fixed.is_none())
            .collect();
        let mut positional = open.iter();
        let words = parsed.args.iter().map(|arg| match arg {
            Arg::Positional(flag) if rb.is_some() && flag == command::FORM_FLAG => flag.clone(),
            Arg::Positional(value) => match positional.next() {
                Some(p) if !p.secret => command::quote(value),
                // A secret's place, or a value past the last place (a misplaced secret?).
                _ => MASK.to_owned(),
            },
            Arg::Named { name, value } => match rb.and_then(|rb| rb.param(name)) {
                Some(p) if !p.secret => format!("{name}={}", command::quote(value)),
                // A secret's, or an unknown name's: perhaps a secret's, mistyped.
                _ => format!("{name}={MASK}"),
            },
        });
        std::iter::once(first.to_owned())
            .chain(words)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn catalog() -> Catalog {
        Catalog::parse(
            r#"
[runbooks.rotate]
executor = "automation"
target = "Rotate"
params = [
  { name = "env" },
  { name = "group", fixed = "rg" },
  { name = "token", secret = true, max_len = 8 },
  { name = "note" },
]
[runbooks.plain]
executor = "automation"
target = "Plain"
params = [ { name = "env" } ]
"#,
            Path::new("runbooks.toml"),
        )
        .unwrap()
    }

    #[test]
    fn a_catalog_names_its_secret_parameters() {
        let c = catalog();
        assert_eq!(c.get("rotate").unwrap().secret_params(), ["token"]);
        assert!(c.get("plain").unwrap().secret_params().is_empty());
    }

    #[test]
    fn command_text_is_masked_where_a_secret_is_or_may_be() {
        let c = catalog();
        for (text, masked) in [
            ("plain hunter2", "plain hunter2"),
            // A runbook without secrets given one (the wrong runbook, or a mistyped name).
            ("plain token=hunter2", "plain token=•••"),
            ("plain dev hunter2", "plain dev •••"),
            // `--form` is no value: the values after it keep their places.
            ("rotate --form dev hunter2", "rotate --form dev •••"),
            // No runbook's name: perhaps one mistyped, so every value is masked.
            ("nothing hunter2", "nothing •••"),
            ("rotat token=hunter2 env=dev", "rotat token=••• env=•••"),
            ("rotate dev hunter2 'a note'", "rotate dev ••• \"a note\""),
            ("rotate token=hunter2 env=dev", "rotate token=••• env=dev"),
            ("Rotate tokn=hunter2", "Rotate tokn=•••"),
            ("rotate a b c hunter2", "rotate a ••• c •••"),
            ("rotate dev 'hunter2", "rotate •••"),
        ] {
            assert_eq!(c.masked_command(text), masked, "{text}");
        }
    }

    #[test]
    fn a_refusal_does_not_quote_a_secret_value() {
        let c = catalog();
        let parsed = command::parse("rotate dev much-too-long-secret").unwrap();
        let rb = c.get("rotate").unwrap();
        let refusal = rb.bind(&parsed.args).unwrap_err().to_string();
        assert!(!refusal.contains("much-too-long"), "{refusal}");
        assert!(
            refusal.contains("`•••` is not a valid value for `token`"),
            "{refusal}"
        );
    }
}
