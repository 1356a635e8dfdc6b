//! The policy, one table: users, user groups, channels, per-value `only` rules, a missing
//! `allow`, fixed values, and user groups that could not be checked (fail closed).

use super::*;
use crate::catalog::Rejection;
use crate::command::parse;
use std::path::Path;

const CATALOG: &str = r#"
[runbooks.by-user]
executor = "automation"
target = "A"
allow = { users = ["UALICE"] }

[runbooks.by-group]
executor = "automation"
target = "A"
allow = { usergroups = ["SONCALL", "SSRE"] }

[runbooks.by-group-in-channel]
executor = "automation"
target = "A"
allow = { users = ["UALICE"], usergroups = ["SONCALL"], channels = ["COPS"] }

[runbooks.nobody]
executor = "automation"
target = "A"

[runbooks.deploy]
executor = "automation"
target = "A"
params = [
  { name = "env", choices = ["dev", "prod"], default = "dev", only = { prod = { users = ["UALICE"], usergroups = ["SONCALL"] } } },
  { name = "rg", fixed = "rg-web" },
  { name = "force", type = "bool", default = "false", only = { true = { usergroups = ["SSRE"], channels = ["COPS"] } } },
]
allow = { users = ["UALICE", "UBOB", "UCAROL"] }

[runbooks.prod-by-default]
executor = "automation"
target = "A"
params = [
  { name = "env", choices = ["dev", "prod"], default = "prod", only = { prod = { usergroups = ["SONCALL"] } } },
]
allow = { users = ["UBOB"] }
"#;

fn catalog() -> Catalog {
    Catalog::parse(CATALOG, Path::new("runbooks.toml")).unwrap()
}

/// Builds the answers from `(group, answer)` with `m` member, `n` not, `?` unknown.
fn groups(answers: &[(&str, char)]) -> Groups {
    let mut g = Groups::default();
    for (group, a) in answers {
        let answer = match a {
            'm' => GroupAnswer::Member,
            'n' => GroupAnswer::NotMember,
            _ => GroupAnswer::Unknown("Slack timed out".into()),
        };
        g.insert(*group, answer);
    }
    g
}

/// (user, channel, group answers, command, expected: `Ok` or the denial rule).
type Row<'a> = (
    &'a str,
    &'a str,
    &'a [(&'a str, char)],
    &'a str,
    Result<(), &'a str>,
);

#[test]
fn the_policy_table() {
    // (user, channel, groups, command, expected: Ok or the denial rule / rejection kind)
    let rows: &[Row] = &[
        // Users alone.
        ("UALICE", "CANY", &[], "by-user", Ok(())),
        ("UBOB", "CANY", &[], "by-user", Err("allow.users")),
        // Groups alone: any listed group admits; none → not listed.
        ("UBOB", "CANY", &[("SONCALL", 'm')], "by-group", Ok(())),
        (
            "UBOB",
            "CANY",
            &[("SONCALL", 'n'), ("SSRE", 'm')],
            "by-group",
            Ok(()),
        ),
        (
            "UBOB",
            "CANY",
            &[("SONCALL", 'n'), ("SSRE", 'n')],
            "by-group",
            Err("allow.users"),
        ),
        // Fail closed: unknown never admits, unless another group already does.
        (
            "UBOB",
            "CANY",
            &[("SONCALL", '?'), ("SSRE", 'n')],
            "by-group",
            Err("usergroup_lookup"),
        ),
        (
            "UBOB",
            "CANY",
            &[("SONCALL", '?'), ("SSRE", 'm')],
            "by-group",
            Ok(()),
        ),
        ("UBOB", "CANY", &[], "by-group", Err("usergroup_lookup")),
        // Combinations with channels.
        ("UALICE", "COPS", &[], "by-group-in-channel", Ok(())),
        (
            "UALICE",
            "CDEV",
            &[],
            "by-group-in-channel",
            Err("allow.channels"),
        ),
        (
            "UBOB",
            "COPS",
            &[("SONCALL", 'm')],
            "by-group-in-channel",
            Ok(()),
        ),
        (
            "UBOB",
            "CDEV",
            &[("SONCALL", 'm')],
            "by-group-in-channel",
            Err("allow.channels"),
        ),
        (
            "UBOB",
            "CDEV",
            &[("SONCALL", 'n')],
            "by-group-in-channel",
            Err("allow.users"),
        ),
        // Missing allow: nobody, whatever their groups.
        (
            "UALICE",
            "COPS",
            &[("SONCALL", 'm')],
            "nobody",
            Err("allow.users"),
        ),
        // Per-group values.
        (
            "UBOB",
            "CANY",
            &[("SONCALL", 'n')],
            "deploy env=dev",
            Ok(()),
        ),
        ("UBOB", "CANY", &[("SONCALL", 'n')], "deploy", Ok(())),
        (
            "UBOB",
            "CANY",
            &[("SONCALL", 'n')],
            "deploy env=prod",
            Err("params.only"),
        ),
        (
            "UBOB",
            "CANY",
            &[("SONCALL", 'm')],
            "deploy env=prod",
            Ok(()),
        ),
        ("UALICE", "CANY", &[], "deploy env=prod", Ok(())),
        (
            "UBOB",
            "CANY",
            &[("SONCALL", '?')],
            "deploy env=prod",
            Err("usergroup_lookup"),
        ),
        // A bool value compared in its standard form, with a channel on the value.
        (
            "UCAROL",
            "COPS",
            &[("SSRE", 'm')],
            "deploy force=TRUE",
            Ok(()),
        ),
        (
            "UCAROL",
            "CDEV",
            &[("SSRE", 'm')],
            "deploy force=true",
            Err("params.only"),
        ),
        (
            "UCAROL",
            "COPS",
            &[("SSRE", 'n')],
            "deploy force=true",
            Err("params.only"),
        ),
        // A restricted default counts as given.
        (
            "UBOB",
            "CANY",
            &[("SONCALL", 'n')],
            "prod-by-default",
            Err("params.only"),
        ),
        (
            "UBOB",
            "CANY",
            &[("SONCALL", 'n')],
            "prod-by-default env=dev",
            Ok(()),
        ),
        // Fixed parameters stay fixed, for group members too.
        (
            "UBOB",
            "CANY",
            &[("SONCALL", 'm')],
            "deploy rg=other",
            Err("fixed"),
        ),
    ];
    let catalog = catalog();
    for (user, channel, answers, text, expected) in rows {
        let g = groups(answers);
        let caller = Caller {
            user_id: user,
            channel_id: channel,
            groups: &g,
        };
        let got = catalog.check(&caller, &parse(text).unwrap());
        let got = match &got {
            Ok(_) => Ok(()),
            Err(Rejection::FixedParameter { .. }) => Err("fixed"),
            Err(r) => Err(r.denial().map(|(_, rule)| rule).unwrap_or("other")),
        };
        assert_eq!(
            &got, expected,
            "{user} in {channel} with {answers:?}: {text}"
        );
    }
}

#[test]
fn groups_are_asked_only_when_the_decision_needs_them() {
    let catalog = catalog();
    let ask = |user, channel, text| {
        let asked: Vec<String> = catalog
            .groups_to_ask(user, channel, &parse(text).unwrap())
            .into_iter()
            .collect();
        asked
    };
    // Listed by ID: no lookup for `allow`; per-value groups still matter to others.
    assert!(ask("UALICE", "COPS", "by-user").is_empty());
    assert!(ask("UALICE", "COPS", "by-group-in-channel").is_empty());
    assert_eq!(ask("UBOB", "COPS", "by-group"), ["SONCALL", "SSRE"]);
    assert_eq!(ask("UBOB", "COPS", "deploy"), ["SONCALL", "SSRE"]);
    assert_eq!(ask("UALICE", "COPS", "deploy"), ["SSRE"]);
    // Help: the groups of runbooks that may be run from this channel.
    assert_eq!(ask("UBOB", "CDEV", "help"), ["SONCALL", "SSRE"]);
    assert_eq!(ask("UALICE", "CDEV", ""), ["SONCALL", "SSRE"]);
}

#[test]
fn denials_name_what_to_do() {
    let catalog = catalog();
    let g = groups(&[("SONCALL", '?'), ("SSRE", 'n')]);
    let bob = Caller {
        user_id: "UBOB",
        channel_id: "COPS",
        groups: &g,
    };
    let m = catalog
        .check(&bob, &parse("by-group").unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("your user groups could not be checked (Slack timed out)"),
        "{m}"
    );
    let m = catalog
        .check(&bob, &parse("deploy env=prod").unwrap())
        .unwrap_err()
        .to_string();
    assert!(m.contains("env=prod"), "{m}");
    let g = groups(&[("SONCALL", 'n')]);
    let bob = Caller { groups: &g, ..bob };
    let m = catalog
        .check(&bob, &parse("deploy env=prod").unwrap())
        .unwrap_err()
        .with_command("/runbook")
        .to_string();
    assert!(m.contains("You may not run `deploy` with env=prod"), "{m}");
    assert!(m.contains("Usage: `/runbook deploy"), "{m}");
}

#[test]
fn a_refused_secret_value_is_not_quoted() {
    let catalog = Catalog::parse(
        r#"
[runbooks.login]
executor = "automation"
target = "A"
params = [ { name = "key", secret = true, choices = ["k-blue-1", "k-red-2"], default = "k-blue-1", only = { k-blue-1 = { usergroups = ["SONCALL"] } } } ]
allow = { users = ["UBOB"] }
"#,
        Path::new("runbooks.toml"),
    )
    .unwrap();
    for (answer, typed) in [('n', "login"), ('?', "login"), ('n', "login key=k-blue-1")] {
        let g = groups(&[("SONCALL", answer)]);
        let bob = Caller {
            user_id: "UBOB",
            channel_id: "COPS",
            groups: &g,
        };
        // The choices are in the usage line; which one was refused is not said.
        let refusal = catalog.check(&bob, &parse(typed).unwrap()).unwrap_err();
        let m = refusal.to_string();
        assert!(
            !m.contains("key=k-blue-1") && m.contains("key=•••"),
            "{typed}: {m}"
        );
        match refusal {
            Rejection::ValueNotAllowed { value, .. } | Rejection::ValueUnchecked { value, .. } => {
                assert_eq!(value, "•••");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn bad_usergroups_and_only_rules_are_load_errors() {
    let cases = [
        (
            "allow = { usergroups = [\"oncall\"] }",
            "`oncall` is not a Slack user group ID",
        ),
        (
            "allow = { usergroups = [] }",
            "`allow.users` is empty and there are no `usergroups`",
        ),
        (
            "allow = { users = [\"UAA1\"] }\nparams = [{ name = \"env\", choices = [\"dev\"], only = { prod = { users = [\"UAA1\"] } } }]",
            "`prod` is not a value parameter `env` accepts",
        ),
        (
            "allow = { users = [\"UAA1\"] }\nparams = [{ name = \"rg\", fixed = \"x\", only = { x = { users = [\"UAA1\"] } } }]",
            "parameter `rg` is fixed",
        ),
        (
            "allow = { users = [\"UAA1\"] }\nparams = [{ name = \"env\", choices = [\"prod\"], only = { prod = { usergroups = [\"@oncall\"] } } }]",
            "`@oncall` is not a Slack user group ID",
        ),
        (
            "allow = { users = [\"UAA1\"] }\nparams = [{ name = \"env\", choices = [\"prod\"], only = { prod = { } } }]",
            "`only.prod.users` is empty",
        ),
        (
            "allow = { users = [\"UAA1\"] }\nparams = [{ name = \"env\", only = { prod = { users = [\"UAA1\"] } } }]",
            "parameter `env` takes any text, so `prod` could be typed another way",
        ),
    ];
    for (body, expected) in cases {
        let text = format!("[runbooks.r]\nexecutor = \"automation\"\ntarget = \"A\"\n{body}\n");
        let e = Catalog::parse(&text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(expected), "{body}: {e}");
    }
}
