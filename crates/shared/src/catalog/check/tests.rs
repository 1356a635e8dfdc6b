use super::*;
use crate::command::parse;
use std::path::Path;

const ALICE: Caller = Caller {
    user_id: "UALICE",
    channel_id: "COPS",
    groups: &crate::catalog::Groups::NONE,
};
const BOB: Caller = Caller {
    user_id: "UBOB",
    channel_id: "COPS",
    groups: &crate::catalog::Groups::NONE,
};
const NOBODY: Caller = Caller {
    user_id: "UNOBODY",
    channel_id: "COPS",
    groups: &crate::catalog::Groups::NONE,
};

fn catalog() -> Catalog {
    let text = r#"
[runbooks.restart-web]
description = "Restart the web tier"
executor = "automation"
target = "Restart-WebApp"
params = [
  { name = "env", required = true, choices = ["dev", "prod"], description = "Target environment" },
  { name = "count", default = "1" },
  { name = "reason" },
]
allow = { users = ["UALICE", "UBOB"] }

[runbooks.restart-db]
description = "Restart the database"
executor = "automation"
target = "Restart-Db"
allow = { users = ["UALICE"], channels = ["CDBA", "CSRE"] }

[runbooks.rotate-keys]
executor = "automation"
target = "Rotate-Keys"
allow = { users = ["UALICE"] }

[runbooks.secret-thing]
executor = "automation"
target = "Secret"
"#;
    Catalog::parse(text, Path::new("catalog.toml")).unwrap()
}

fn check(caller: &Caller, text: &str) -> Result<Accepted, Rejection> {
    catalog().check(caller, &parse(text).unwrap())
}

fn rejection(caller: &Caller, text: &str) -> Rejection {
    check(caller, text).unwrap_err()
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const WEB_USAGE: &str = "restart-web env=<dev|prod> [count=1] [reason=<reason>]";

#[test]
fn accepts_a_valid_command_without_filling_defaults() {
    assert_eq!(
        check(&BOB, "restart-web prod reason=\"disk full\""),
        Ok(Accepted {
            runbook: "restart-web".into(),
            params: params(&[("env", "prod"), ("reason", "disk full")]),
        })
    );
}

#[test]
fn runbook_names_are_matched_ignoring_case() {
    assert_eq!(
        check(&BOB, "Restart-Web env=dev").unwrap().runbook,
        "restart-web"
    );
}

#[test]
fn no_runbook_or_help_words_ask_for_help() {
    for text in ["", "   ", "''", "help", "list", "HELP", "list restart-web"] {
        assert_eq!(rejection(&BOB, text), Rejection::Help, "{text:?}");
    }
    assert_eq!(
        rejection(&BOB, "help restart-web"),
        Rejection::HelpFor {
            runbook: "restart-web".into()
        }
    );
    assert!(Rejection::Help.to_string().contains("Send `help`"));
}

#[test]
fn reserved_words_are_not_yet_available() {
    for word in ["status", "stop", "rerun", "history", "approve"] {
        let r = rejection(&BOB, &format!("{word} 123"));
        assert_eq!(r, Rejection::NotYetAvailable { word: word.into() });
        assert!(
            r.to_string()
                .starts_with(&format!("`{word}` is not available yet."))
        );
    }
}

#[test]
fn unknown_runbook_suggests_only_runnable_names() {
    let r = rejection(&BOB, "restrat-web");
    assert_eq!(
        r,
        Rejection::UnknownRunbook {
            name: "restrat-web".into(),
            suggestion: Some("restart-web".into()),
        }
    );
    assert!(r.to_string().contains("Did you mean `restart-web`?"), "{r}");
    assert!(r.to_string().contains("Send `help`"), "{r}");

    // Bob may not run `rotate-keys` or `secret-thing`: they are never suggested to him.
    for typo in ["rotate-key", "secret-thin"] {
        let r = rejection(&BOB, typo);
        assert!(
            matches!(
                &r,
                Rejection::UnknownRunbook {
                    suggestion: None,
                    ..
                }
            ),
            "{r:?}"
        );
        assert!(!r.to_string().contains("Did you mean"), "{r}");
    }
    assert_eq!(
        rejection(&ALICE, "rotate-key"),
        Rejection::UnknownRunbook {
            name: "rotate-key".into(),
            suggestion: Some("rotate-keys".into()),
        }
    );
    // Alice may run `restart-db` only from its channels; from elsewhere it is not suggested.
    assert!(matches!(
        rejection(&ALICE, "restart-dv"),
        Rejection::UnknownRunbook {
            suggestion: None,
            ..
        }
    ));
}

#[test]
fn not_allowed_says_whom_to_ask() {
    for (caller, name) in [
        (&BOB, "rotate-keys"),
        (&ALICE, "secret-thing"),
        (&NOBODY, "restart-web"),
    ] {
        let r = rejection(caller, name);
        assert_eq!(
            r,
            Rejection::NotAllowed {
                runbook: name.into(),
                user_id: caller.user_id.into(),
            }
        );
        let m = r.to_string();
        assert!(
            m.contains(&format!("You are not allowed to run `{name}`")),
            "{m}"
        );
        assert!(
            m.contains(&format!(
                "ask an admin to add your Slack user ID {} to the runbook's allow list",
                caller.user_id
            )),
            "{m}"
        );
    }
}

#[test]
fn channel_restriction_names_the_channels() {
    let r = rejection(&ALICE, "restart-db");
    let m = r.to_string();
    assert!(matches!(r, Rejection::WrongChannel { .. }));
    assert!(m.contains("cannot be run from this channel"), "{m}");
    assert!(
        m.contains("(CDBA, CSRE)") && m.contains("this channel (COPS)"),
        "{m}"
    );
    let in_dba = Caller {
        user_id: "UALICE",
        channel_id: "CDBA",
        groups: &crate::catalog::Groups::NONE,
    };
    assert!(check(&in_dba, "restart-db").is_ok());
    // Bob is not listed, so the channel does not matter.
    let bob_in_dba = Caller {
        user_id: "UBOB",
        channel_id: "CDBA",
        groups: &crate::catalog::Groups::NONE,
    };
    assert!(matches!(
        rejection(&bob_in_dba, "restart-db"),
        Rejection::NotAllowed { .. }
    ));
}

#[test]
fn runnable_by_lists_what_the_caller_may_run_here_sorted() {
    let c = catalog();
    let names = |caller: &Caller| {
        c.runnable_by(caller)
            .iter()
            .map(|rb| rb.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&ALICE), ["restart-web", "rotate-keys"]);
    let in_dba = Caller {
        user_id: "UALICE",
        channel_id: "CDBA",
        groups: &crate::catalog::Groups::NONE,
    };
    assert_eq!(names(&in_dba), ["restart-db", "restart-web", "rotate-keys"]);
    assert_eq!(names(&BOB), ["restart-web"]);
    assert!(names(&NOBODY).is_empty());
}

#[test]
fn positionals_fill_params_in_order() {
    assert_eq!(
        check(&BOB, "restart-web dev 3 'why not'").unwrap().params,
        params(&[("env", "dev"), ("count", "3"), ("reason", "why not")])
    );
    assert_eq!(
        check(&BOB, "restart-web count=2 dev").unwrap().params,
        params(&[("env", "dev"), ("count", "2")])
    );
}

#[test]
fn too_many_values_shows_usage() {
    let r = rejection(&BOB, "restart-web dev 3 why not");
    assert_eq!(
        r,
        Rejection::TooManyValues {
            runbook: "restart-web".into(),
            max: 3,
            given: 4,
            usage: WEB_USAGE.into(),
        }
    );
    let m = r.to_string();
    assert!(m.contains("takes at most 3 values but got 4"), "{m}");
    assert!(m.contains("in quotes"), "{m}");
    assert!(m.ends_with(&format!("Usage: `{WEB_USAGE}`")), "{m}");
    let m = rejection(&ALICE, "rotate-keys now").to_string();
    assert!(m.contains("takes at most 0 values but got 1"), "{m}");
}

#[test]
fn unknown_parameter_suggests_a_close_name() {
    let r = rejection(&BOB, "restart-web env=dev cuont=2");
    let m = r.to_string();
    assert!(matches!(&r, Rejection::UnknownParameter { suggestion: Some(s), .. } if s == "count"));
    assert!(
        m.contains("`restart-web` has no parameter `cuont`. Did you mean `count`?"),
        "{m}"
    );
    assert!(m.contains(WEB_USAGE), "{m}");
    let m = rejection(&BOB, "restart-web env=dev zone=eu").to_string();
    assert!(
        m.contains("no parameter `zone`.") && !m.contains("Did you mean"),
        "{m}"
    );
    assert!(
        rejection(&BOB, "restart-web ENV=dev")
            .to_string()
            .contains("Did you mean `env`?")
    );
}

#[test]
fn repeated_parameter_is_rejected() {
    for text in ["restart-web dev env=prod", "restart-web env=dev env=dev"] {
        let r = rejection(&BOB, text);
        assert_eq!(
            r,
            Rejection::RepeatedParameter {
                name: "env".into(),
                usage: WEB_USAGE.into(),
            }
        );
        assert!(r.to_string().contains("`env` is given more than once"));
        assert!(r.to_string().contains(WEB_USAGE));
    }
}

#[test]
fn missing_required_parameter_is_rejected() {
    let r = rejection(&BOB, "restart-web count=2");
    assert_eq!(
        r,
        Rejection::MissingParameter {
            name: "env".into(),
            usage: WEB_USAGE.into(),
        }
    );
    let m = r.to_string();
    assert!(
        m.contains("`env` is required; add env=<value>") && m.contains(WEB_USAGE),
        "{m}"
    );
}

#[test]
fn empty_required_value_is_rejected() {
    let r = rejection(&BOB, "restart-web env=\"\"");
    assert_eq!(
        r,
        Rejection::EmptyValue {
            name: "env".into(),
            usage: WEB_USAGE.into(),
        }
    );
    assert!(r.to_string().contains("cannot be empty"));
    assert!(matches!(
        rejection(&BOB, "restart-web ''"),
        Rejection::EmptyValue { .. }
    ));
}

#[test]
fn optional_parameter_may_be_explicitly_empty() {
    assert_eq!(
        check(&BOB, "restart-web dev reason=").unwrap().params,
        params(&[("env", "dev"), ("reason", "")])
    );
}

#[test]
fn value_outside_choices_lists_the_choices() {
    let r = rejection(&BOB, "restart-web env=staging");
    let m = r.to_string();
    assert!(matches!(&r, Rejection::NotAChoice { value, .. } if value == "staging"));
    assert!(
        m.contains("`staging` is not a valid value for `env`; use one of: dev, prod."),
        "{m}"
    );
    assert!(m.contains(WEB_USAGE), "{m}");
    // Choices are case-sensitive.
    assert!(matches!(
        rejection(&BOB, "restart-web Prod"),
        Rejection::NotAChoice { .. }
    ));
}

#[test]
fn empty_value_for_an_optional_choice_is_not_a_choice() {
    let text = "[runbooks.a]\nexecutor = \"automation\"\ntarget = \"A\"\n\
                params = [{ name = \"mode\", choices = [\"fast\", \"slow\"] }]\n";
    let rb = Catalog::parse(text, Path::new("c.toml")).unwrap().runbooks["a"].clone();
    let r = rb.bind(&parse("a mode=").unwrap().args).unwrap_err();
    assert!(
        r.to_string()
            .starts_with("An empty value is not a valid value for `mode`"),
        "{r}"
    );
    assert_eq!(rb.bind(&[]), Ok(BTreeMap::new()));
}

#[test]
fn with_defaults_fills_in_catalog_order() {
    let c = catalog();
    let rb = c.get("restart-web").unwrap();
    let pairs = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        rb.with_defaults(&params(&[("env", "dev")])),
        pairs(&[("env", "dev"), ("count", "1")])
    );
    assert_eq!(
        rb.with_defaults(&params(&[("reason", "x"), ("count", "5"), ("env", "prod")])),
        pairs(&[("env", "prod"), ("count", "5"), ("reason", "x")])
    );
    assert_eq!(rb.with_defaults(&BTreeMap::new()), pairs(&[("count", "1")]));
}

#[test]
fn usage_shows_required_optional_defaults_choices_and_descriptions() {
    let c = catalog();
    assert_eq!(
        c.get("restart-web").unwrap().usage("/runbook"),
        format!("/runbook {WEB_USAGE}\n  env: Target environment")
    );
    assert_eq!(
        c.get("rotate-keys").unwrap().usage("/runbook"),
        "/runbook rotate-keys"
    );

    let text = r#"
[runbooks.deploy]
executor = "automation"
target = "Deploy"
params = [
  { name = "host", required = true },
  { name = "mode", choices = ["fast", "slow"], default = "slow" },
  { name = "msg", default = "hello world", description = "Shown in the log" },
  { name = "tag", default = "" },
]
"#;
    let c = Catalog::parse(text, Path::new("c.toml")).unwrap();
    assert_eq!(
        c.get("deploy").unwrap().usage("/ops"),
        "/ops deploy host=<host> [mode=<fast|slow>] [msg=\"hello world\"] [tag=\"\"]\n  \
         mode: (default: slow)\n  \
         msg: Shown in the log"
    );
}

#[test]
fn help_text_shows_only_runbooks_the_caller_may_run() {
    let c = catalog();
    let help = c.help_text(&BOB, "/runbook");
    assert!(
        help.starts_with("Usage: `/runbook <runbook> [value…] [name=value…]`"),
        "{help}"
    );
    assert!(help.contains("Runbooks you may run:"), "{help}");
    assert!(
        help.contains("• restart-web: Restart the web tier"),
        "{help}"
    );
    assert!(
        help.contains(&format!("    /runbook {WEB_USAGE}")),
        "{help}"
    );
    assert!(help.contains("    env: Target environment"), "{help}");
    for hidden in ["restart-db", "rotate-keys", "secret-thing"] {
        assert!(!help.contains(hidden), "{hidden} shown to Bob: {help}");
    }

    let help = c.help_text(&ALICE, "/runbook");
    assert!(
        help.contains("• rotate-keys\n    /runbook rotate-keys"),
        "{help}"
    );
    assert!(!help.contains("restart-db"), "{help}");
}

#[test]
fn help_text_says_how_to_get_access_when_nothing_is_runnable() {
    let help = catalog().help_text(&NOBODY, "/runbook");
    assert!(help.starts_with("Usage: `/runbook "), "{help}");
    assert!(
        !help.contains("Runbooks you may run") && !help.contains("restart"),
        "{help}"
    );
    assert!(
        help.contains("ask an admin to add your Slack user ID UNOBODY to a runbook's allow list"),
        "{help}"
    );
}

#[test]
fn script_arguments_keep_their_positions_when_an_optional_value_is_missing() {
    let c = catalog();
    let rb = c.get("restart-web").unwrap();
    // `count` has a default, `reason` has none: a script still gets three arguments.
    assert_eq!(
        rb.argv(&params(&[("env", "dev")])),
        vec![
            ("env".to_owned(), "dev".to_owned()),
            ("count".to_owned(), "1".to_owned()),
            ("reason".to_owned(), String::new()),
        ]
    );
    // By name (Automation), what has no value is left out.
    assert_eq!(
        rb.with_defaults(&params(&[("env", "dev")])),
        vec![
            ("env".to_owned(), "dev".to_owned()),
            ("count".to_owned(), "1".to_owned()),
        ]
    );
}

#[test]
fn with_command_puts_the_slash_command_in_usage_lines() {
    let alice = Caller {
        user_id: "UALICE",
        channel_id: "CANY",
        groups: &crate::catalog::Groups::NONE,
    };
    let r = rejection(&alice, "restart-web env=staging").with_command("/runbook");
    assert!(
        r.to_string()
            .contains(&format!("Usage: `/runbook {WEB_USAGE}`")),
        "{r}"
    );
    // Rejections without a usage line are unchanged.
    let r = rejection(&alice, "status");
    assert_eq!(
        r.clone().with_command("/runbook").to_string(),
        r.to_string()
    );
}

#[test]
fn hidden_characters_are_refused_naming_the_code_point_and_where() {
    let r = rejection(&ALICE, "restart-web env=prod reason=\"ok\u{202E}txt.exe\"");
    assert_eq!(
        r,
        Rejection::HiddenCharacter {
            place: "the value of `reason`".into(),
            param: Some("reason".into()),
            code: "U+202E".into(),
            position: 3,
            usage: "restart-web env=<dev|prod> [count=1] [reason=<reason>]".into(),
        }
    );
    let text = r.with_command("/runbook").to_string();
    assert!(
        text.starts_with(
            "The value of `reason` contains the invisible character U+202E at character 3."
        ),
        "{text}"
    );
    assert!(text.contains("Usage: `/runbook restart-web"), "{text}");

    // Positional values are named by the parameter they fill.
    let r = rejection(&ALICE, "restart-web pr\u{200B}od");
    assert!(
        matches!(&r, Rejection::HiddenCharacter { place, code, position: 3, .. }
            if place == "the value of `env`" && code == "U+200B"),
        "{r:?}"
    );
    // Refused before anything else is said about the value, also in an unknown runbook's name.
    let r = rejection(&ALICE, "restart\u{2066}-web env=prod");
    assert_eq!(
        r,
        Rejection::HiddenCharacterInName {
            code: "U+2066".into(),
            position: 8,
        }
    );
    assert!(r.to_string().contains("U+2066 at character 8"), "{r}");
}

#[test]
fn the_runners_re_check_refuses_hidden_characters_too() {
    // The runner binds the parameters of a queued message, by name.
    let catalog = catalog();
    let rb = catalog.get("restart-web").unwrap();
    for (name, value, place) in [
        ("env", "prod\u{FEFF}", "the value of `env`"),
        ("rea\u{200D}son", "x", "a parameter name"),
    ] {
        let args = [Arg::Named {
            name: name.into(),
            value: value.into(),
        }];
        let r = rb.bind(&args).unwrap_err();
        assert!(
            matches!(&r, Rejection::HiddenCharacter { place: p, .. } if p == place),
            "{r:?}"
        );
    }
}

#[test]
fn stop_allowed_follows_stop_allow_users_and_channels() {
    let text = r#"
[runbooks.open]
executor = "automation"
target = "Open"
allow = { users = ["UALICE"] }
stop_allow = { users = ["UBOB"] }

[runbooks.narrow]
executor = "automation"
target = "Narrow"
allow = { users = ["UALICE"] }
stop_allow = { users = ["UBOB"], channels = ["CDBA"] }

[runbooks.none]
executor = "automation"
target = "None"
allow = { users = ["UALICE", "UBOB"] }
"#;
    let c = Catalog::parse(text, Path::new("catalog.toml")).unwrap();
    let bob_in_dba = Caller {
        user_id: "UBOB",
        channel_id: "CDBA",
        groups: &crate::catalog::Groups::NONE,
    };
    assert!(c.runbooks["open"].stop_allowed(&BOB));
    assert!(
        !c.runbooks["open"].stop_allowed(&ALICE),
        "allow grants no stop"
    );
    assert!(!c.runbooks["narrow"].stop_allowed(&BOB), "wrong channel");
    assert!(c.runbooks["narrow"].stop_allowed(&bob_in_dba));
    assert!(
        !c.runbooks["none"].stop_allowed(&BOB),
        "no stop_allow: nobody"
    );
}

/// A runbook with one parameter of each kind of rule, and a fixed one.
fn typed() -> Runbook {
    let text = r#"
[runbooks.scale]
executor = "automation"
target = "Scale"
params = [
  { name = "count", type = "int", min = 1, max = 10, required = true },
  { name = "force", type = "bool", default = "false" },
  { name = "host", max_len = 8, pattern = "web-[0-9]+" },
  { name = "tier", type = "choice", choices = ["a", "b"] },
  { name = "group", fixed = "rg-prod" },
  { name = "note" },
]
allow = { users = ["UALICE"] }
"#;
    let catalog = Catalog::parse(text, Path::new("catalog.toml")).unwrap();
    catalog.get("scale").unwrap().clone()
}

const SCALE_USAGE: &str =
    "scale count=<1..10> [force=<true|false>] [host=<host>] [tier=<a|b>] [note=<note>]";

/// What [`Runbook::bind`] returns.
type Bound = Result<BTreeMap<String, String>, Rejection>;

fn bind(text: &str) -> Bound {
    typed().bind(&parse(&format!("scale {text}")).unwrap().args)
}

fn invalid(
    name: &str,
    value: &str,
    problem: ValueProblem,
) -> Result<BTreeMap<String, String>, Rejection> {
    Err(Rejection::InvalidValue {
        name: name.into(),
        value: value.into(),
        problem,
        usage: SCALE_USAGE.into(),
    })
}

#[test]
fn each_parameter_rule_alone() {
    let range = ValueProblem::OutOfRange {
        min: Some(1),
        max: Some(10),
    };
    let not_int = ValueProblem::NotAnInt {
        min: Some(1),
        max: Some(10),
    };
    let cases: Vec<(&str, Bound)> = vec![
        // int: parsed, written plainly, within min and max (both inclusive).
        ("count=1", Ok(params(&[("count", "1")]))),
        ("count=10", Ok(params(&[("count", "10")]))),
        ("count=007", Ok(params(&[("count", "7")]))),
        ("count=0", invalid("count", "0", range.clone())),
        ("count=11", invalid("count", "11", range.clone())),
        ("count=-3", invalid("count", "-3", range)),
        ("count=three", invalid("count", "three", not_int.clone())),
        ("count=1.5", invalid("count", "1.5", not_int.clone())),
        (
            "count=99999999999999999999",
            invalid("count", "99999999999999999999", not_int),
        ),
        // bool: true or false in any case, written in lowercase.
        (
            "1 force=TRUE",
            Ok(params(&[("count", "1"), ("force", "true")])),
        ),
        (
            "1 force=False",
            Ok(params(&[("count", "1"), ("force", "false")])),
        ),
        (
            "1 force=yes",
            invalid("force", "yes", ValueProblem::NotABool),
        ),
        // max_len counts characters, not bytes.
        (
            "1 host=web-1234",
            Ok(params(&[("count", "1"), ("host", "web-1234")])),
        ),
        (
            "1 host=web-12345",
            invalid(
                "host",
                "web-12345",
                ValueProblem::TooLong { max_len: 8, len: 9 },
            ),
        ),
        // pattern: the whole value must match.
        (
            "1 host=xweb-1",
            invalid(
                "host",
                "xweb-1",
                ValueProblem::NoMatch {
                    pattern: "web-[0-9]+".into(),
                },
            ),
        ),
        (
            "1 host=web-1x",
            invalid(
                "host",
                "web-1x",
                ValueProblem::NoMatch {
                    pattern: "web-[0-9]+".into(),
                },
            ),
        ),
        // choice
        ("1 tier=b", Ok(params(&[("count", "1"), ("tier", "b")]))),
        (
            "1 tier=c",
            Err(Rejection::NotAChoice {
                name: "tier".into(),
                value: "c".into(),
                choices: vec!["a".into(), "b".into()],
                usage: SCALE_USAGE.into(),
            }),
        ),
        // fixed: never given by the caller, by name or by position.
        (
            "1 group=rg-dev",
            Err(Rejection::FixedParameter {
                name: "group".into(),
                usage: SCALE_USAGE.into(),
            }),
        ),
        (
            "1 group=rg-prod",
            Err(Rejection::FixedParameter {
                name: "group".into(),
                usage: SCALE_USAGE.into(),
            }),
        ),
        (
            "1 true web-1 a hello",
            Ok(params(&[
                ("count", "1"),
                ("force", "true"),
                ("host", "web-1"),
                ("tier", "a"),
                ("note", "hello"),
            ])),
        ),
        (
            "1 true web-1 a hello extra",
            Err(Rejection::TooManyValues {
                runbook: "scale".into(),
                max: 5,
                given: 6,
                usage: SCALE_USAGE.into(),
            }),
        ),
        // A parameter without rules takes anything.
        ("1 note=ü", Ok(params(&[("count", "1"), ("note", "ü")]))),
    ];
    for (text, want) in cases {
        assert_eq!(bind(text), want, "scale {text}");
    }
}

#[test]
fn rules_in_combination_report_the_first_broken_parameter() {
    let cases: Vec<(&str, &str)> = vec![
        ("count=0 force=maybe", "count"),
        ("count=5 force=maybe host=nope", "force"),
        ("count=5 force=true host=nope tier=z", "host"),
        ("count=5 host=web-1 tier=z", "tier"),
    ];
    for (text, name) in cases {
        match bind(text) {
            Err(
                Rejection::InvalidValue { name: n, .. } | Rejection::NotAChoice { name: n, .. },
            ) => {
                assert_eq!(n, name, "scale {text}")
            }
            other => panic!("scale {text}: {other:?}"),
        }
    }
    assert_eq!(
        bind("count=+5 force=TRUE host=web-9 tier=a"),
        Ok(params(&[
            ("count", "5"),
            ("force", "true"),
            ("host", "web-9"),
            ("tier", "a"),
        ]))
    );
}

#[test]
fn rule_refusals_say_what_is_wrong_and_how_to_fix_it() {
    let cases = [
        (
            "count=0",
            "`0` is not a valid value for `count`; give a whole number from 1 to 10. Usage: `/runbook scale count=<1..10>",
        ),
        (
            "1 force=yes",
            "`yes` is not a valid value for `force`; give true or false. Usage:",
        ),
        (
            "1 host=web-12345",
            "`web-12345` is not a valid value for `host`; it has 9 characters; give at most 8. Usage:",
        ),
        (
            "1 host=db-1",
            "`db-1` is not a valid value for `host`; give a value that matches the pattern `web-[0-9]+` as a whole. Usage:",
        ),
        (
            "1 group=x",
            "`group` is set by the catalog and cannot be given; remove group=… from the command. Usage: `/runbook scale",
        ),
    ];
    for (text, want) in cases {
        let text = bind(text).unwrap_err().with_command("/runbook").to_string();
        assert!(text.starts_with(want), "{text}");
    }
}

#[test]
fn fixed_values_reach_the_runner_whatever_was_given() {
    let rb = typed();
    let given = bind("count=2").unwrap();
    assert_eq!(
        rb.with_defaults(&given),
        vec![
            ("count".to_owned(), "2".to_owned()),
            ("force".to_owned(), "false".to_owned()),
            ("group".to_owned(), "rg-prod".to_owned()),
        ]
    );
    assert_eq!(
        rb.argv(&given),
        vec![
            ("count".to_owned(), "2".to_owned()),
            ("force".to_owned(), "false".to_owned()),
            ("host".to_owned(), String::new()),
            ("tier".to_owned(), String::new()),
            ("group".to_owned(), "rg-prod".to_owned()),
            ("note".to_owned(), String::new()),
        ]
    );
    // Even a map that holds another value (bind never returns one) cannot override it.
    let forged = params(&[("count", "2"), ("group", "rg-dev")]);
    assert!(
        rb.with_defaults(&forged)
            .contains(&("group".into(), "rg-prod".into()))
    );
    assert!(
        rb.argv(&forged)
            .contains(&("group".into(), "rg-prod".into()))
    );
}

#[test]
fn usage_shows_types_ranges_patterns_and_fixed_values() {
    assert_eq!(
        typed().usage("/runbook"),
        "/runbook scale count=<1..10> [force=<true|false>] [host=<host>] [tier=<a|b>] [note=<note>]\n  \
         force: (default: false)\n  \
         host: (at most 8 characters, matching `web-[0-9]+`)\n  \
         group: (fixed: rg-prod)"
    );
}
