use super::*;
use crate::catalog::{Allow, ParamSpec, ParamType};
use std::fs;

const PATH: &str = "/etc/chatops/catalog.toml";

fn parse(text: &str) -> Result<Catalog, CatalogError> {
    Catalog::parse(text, Path::new(PATH))
}

/// The error's Display, asserting the catalog was rejected.
fn error(text: &str) -> String {
    match parse(text) {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts the error is at `line:column` and mentions every one of `needles`.
fn assert_error(text: &str, line: usize, column: usize, needles: &[&str]) {
    let e = error(text);
    let prefix = format!("{PATH}:{line}:{column}: ");
    assert!(e.starts_with(&prefix), "expected {prefix}…, got {e}");
    for n in needles {
        assert!(e.contains(n), "{e:?} should mention {n:?}");
    }
}

/// A valid automation runbook table with `extra` lines added.
fn runbook(name: &str, extra: &str) -> String {
    format!("[runbooks.{name}]\nexecutor = \"automation\"\ntarget = \"Do-It\"\n{extra}")
}

/// A scratch directory for tests that need files, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("chatops-catalog-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("scripts")).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn full_example_loads() {
    let tmp = TempDir::new("full");
    fs::write(tmp.0.join("scripts/purge.sh"), "#!/bin/sh\n").unwrap();
    let text = r#"
[runbooks.restart-web]
description = "Restart the web tier"
executor = "automation"
target = "Restart-WebApp"
timeout = "30m"
params = [
  { name = "env", required = true, choices = ["dev", "prod"], description = "Target environment" },
  { name = "count", default = "1" },
]
allow = { users = ["U012AB3CD", "W0123ABC"], channels = ["C024BE91L", "G1X", "D0Z"] }

[runbooks.purge-cache]
executor = "local"
target = "scripts/purge.sh"
"#;
    let path = tmp.0.join("catalog.toml");
    fs::write(&path, text).unwrap();
    let catalog = Catalog::load(&path).unwrap();
    assert_eq!(catalog.path, path);
    assert_eq!(
        catalog.runbooks.keys().collect::<Vec<_>>(),
        ["purge-cache", "restart-web"]
    );

    let web = catalog.get("restart-web").unwrap();
    assert_eq!(web.name, "restart-web");
    assert_eq!(web.description, "Restart the web tier");
    assert_eq!(web.executor, ExecutorKind::Automation);
    assert_eq!(web.timeout, Duration::from_secs(30 * 60));
    assert_eq!(
        web.params,
        vec![
            ParamSpec {
                name: "env".into(),
                required: true,
                default: None,
                choices: Some(vec!["dev".into(), "prod".into()]),
                description: Some("Target environment".into()),
                ..ParamSpec::default()
            },
            ParamSpec {
                name: "count".into(),
                required: false,
                default: Some("1".into()),
                choices: None,
                description: None,
                ..ParamSpec::default()
            },
        ]
    );
    assert_eq!(
        web.allow,
        Some(Allow {
            users: vec!["U012AB3CD".into(), "W0123ABC".into()],
            usergroups: vec![],
            channels: Some(vec!["C024BE91L".into(), "G1X".into(), "D0Z".into()]),
        })
    );
    assert_eq!(catalog.resolve_target(web), "Restart-WebApp");

    let purge = catalog.get("purge-cache").unwrap();
    assert_eq!(purge.executor, ExecutorKind::Local);
    assert_eq!(purge.timeout, crate::catalog::DEFAULT_TIMEOUT);
    assert_eq!(purge.description, "");
    assert!(purge.params.is_empty());
    assert_eq!(purge.allow, None);
    assert_eq!(
        catalog.resolve_target(purge),
        tmp.0.join("scripts/purge.sh").to_string_lossy()
    );
    assert!(catalog.get("nope").is_none());
}

#[test]
fn empty_catalog_is_valid() {
    assert!(parse("").unwrap().runbooks.is_empty());
    assert!(
        parse("# nothing yet\n[runbooks]\n")
            .unwrap()
            .runbooks
            .is_empty()
    );
}

#[test]
fn missing_file_names_the_path_without_a_line() {
    let e = Catalog::load(Path::new("/nonexistent/catalog.toml")).unwrap_err();
    assert!(matches!(e, CatalogError::Read { .. }));
    let e = e.to_string();
    assert!(
        e.starts_with("/nonexistent/catalog.toml: cannot read the runbook catalog: "),
        "{e}"
    );
}

#[test]
fn syntax_errors_have_a_position() {
    assert_error("[runbooks.a\n", 1, 12, &["expected `]`"]);
    assert_error("\n\n[runbooks.a]\nexecutor = automation\n", 4, 12, &[]);
}

#[test]
fn unknown_keys_are_errors() {
    assert_error(
        "runbook = 1\n",
        1,
        1,
        &["unknown field `runbook`", "`runbooks`"],
    );
    assert_error(
        &runbook("a", "descripton = \"x\"\n"),
        4,
        1,
        &["unknown field `descripton`"],
    );
    assert_error(
        &runbook("a", "params = [{ name = \"x\", requird = true }]\n"),
        4,
        25,
        &["unknown field `requird`"],
    );
    assert_error(
        &runbook("a", "allow = { users = [\"U1A\"], group = [] }\n"),
        4,
        28,
        &["unknown field `group`"],
    );
}

#[test]
fn missing_and_mistyped_fields_are_errors() {
    assert_error(
        "\n[runbooks.a]\nexecutor = \"local\"\n",
        2,
        1,
        &["missing field `target`"],
    );
    assert_error(
        "[runbooks.a]\ntarget = \"x\"\n",
        1,
        1,
        &["missing field `executor`"],
    );
    assert_error(
        &runbook("a", "params = [{ required = true }]\n"),
        4,
        11,
        &["missing field `name`"],
    );
    assert_error(
        &runbook("a", "params = [{ name = \"n\", default = 1 }]\n"),
        4,
        35,
        &["expected a string"],
    );
}

#[test]
fn executor_must_be_known() {
    assert_error(
        "[runbooks.a]\nexecutor = \"lokal\"\ntarget = \"x\"\n",
        2,
        12,
        &["unknown variant `lokal`", "`automation` or `local`"],
    );
}

#[test]
fn timeout_must_be_a_positive_duration() {
    let c = parse(&runbook("a", "timeout = \"1h 30m\"\n")).unwrap();
    assert_eq!(c.runbooks["a"].timeout, Duration::from_secs(90 * 60));
    assert_error(
        &runbook("a", "timeout = \"soon\"\n"),
        4,
        11,
        &["timeout `soon` is not a duration like"],
    );
    assert_error(
        &runbook("a", "timeout = \"0s\"\n"),
        4,
        11,
        &["must be longer than zero"],
    );
    assert_error(
        &runbook("a", "timeout = \"20000y\"\n"),
        4,
        11,
        &["longer than the longest a job may run, 30 days"],
    );
    let c = parse(&runbook("a", "timeout = \"30days\"\n")).unwrap();
    assert_eq!(c.runbooks["a"].timeout, MAX_TIMEOUT);
    assert_error(
        &runbook("a", "timeout = 30\n"),
        4,
        11,
        &["expected a string"],
    );
}

#[test]
fn runbook_names_follow_the_rule() {
    let longest = format!("a{}", "b".repeat(62));
    assert!(parse(&runbook(&longest, "")).is_ok());
    assert!(parse(&runbook("a-1-b", "")).is_ok());
    for bad in [
        "Restart",
        "1abc",
        "-a",
        "a_b",
        "\"a b\"",
        &format!("{longest}c"),
    ] {
        assert_error(
            &runbook(bad, ""),
            1,
            11,
            &["must start with a lowercase letter"],
        );
    }
}

#[test]
fn reserved_words_cannot_name_a_runbook() {
    for word in RESERVED_WORDS {
        assert_error(
            &runbook(word, ""),
            1,
            11,
            &[&format!("`{word}` is a reserved word")],
        );
    }
}

#[test]
fn target_must_not_be_empty() {
    assert_error(
        "[runbooks.a]\nexecutor = \"automation\"\ntarget = \" \"\n",
        3,
        10,
        &["`target` is empty"],
    );
}

#[test]
fn automation_target_must_be_a_runbook_name() {
    assert!(parse("[runbooks.a]\nexecutor = \"automation\"\ntarget = \"Restart_Web-2\"\n").is_ok());
    for bad in ["1abc", "Restart Web", "a/b", "_x"] {
        let text = format!("[runbooks.a]\nexecutor = \"automation\"\ntarget = \"{bad}\"\n");
        assert_error(
            &text,
            3,
            10,
            &[&format!("`{bad}` is not an Azure Automation runbook name")],
        );
    }
}

#[test]
fn local_target_must_exist_next_to_the_catalog() {
    let tmp = TempDir::new("local");
    fs::write(tmp.0.join("scripts/ok.sh"), "").unwrap();
    let path = tmp.0.join("catalog.toml");
    let text = "[runbooks.a]\nexecutor = \"local\"\ntarget = \"scripts/ok.sh\"\n";
    assert!(Catalog::parse(text, &path).is_ok());

    let text = "[runbooks.a]\nexecutor = \"local\"\ntarget = \"scripts/missing.sh\"\n";
    let e = Catalog::parse(text, &path).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:3:10: ", path.display())), "{e}");
    assert!(e.contains("script `scripts/missing.sh` not found"), "{e}");
    assert!(
        e.contains(&tmp.0.join("scripts/missing.sh").display().to_string()),
        "{e}"
    );

    // A directory is not a script.
    let text = "[runbooks.a]\nexecutor = \"local\"\ntarget = \"scripts\"\n";
    assert!(Catalog::parse(text, &path).is_err());
}

#[test]
fn param_names_follow_the_rule_and_are_unique() {
    let ok = format!(
        "params = [{{ name = \"A{}\" }}, {{ name = \"b_c-d\" }}]\n",
        "x".repeat(63)
    );
    assert!(parse(&runbook("a", &ok)).is_ok());
    for bad in ["1x", "_x", "a b", "é", &"x".repeat(65)] {
        let text = runbook("a", &format!("params = [{{ name = \"{bad}\" }}]\n"));
        assert_error(
            &text,
            4,
            20,
            &["parameter name", "must start with a letter"],
        );
    }
    let text = runbook(
        "a",
        "params = [\n  { name = \"env\" },\n  { name = \"env\" },\n]\n",
    );
    assert_error(&text, 6, 12, &["parameter `env` is defined twice"]);
    // Different names that a script would see as the same variable.
    let text = runbook(
        "a",
        "params = [\n  { name = \"max-count\" },\n  { name = \"max_count\" },\n]\n",
    );
    assert_error(
        &text,
        6,
        12,
        &["`max-count` and `max_count`", "CHATOPS_PARAM_MAX_COUNT"],
    );
}

#[test]
fn params_also_work_as_an_array_of_tables() {
    let text = runbook(
        "a",
        "[[runbooks.a.params]]\nname = \"x\"\n[[runbooks.a.params]]\nname = \"x y\"\n",
    );
    assert_error(&text, 7, 8, &["parameter name `x y`"]);
}

#[test]
fn required_param_has_no_default() {
    let text = runbook(
        "a",
        "params = [{ name = \"env\", required = true, default = \"dev\" }]\n",
    );
    assert_error(
        &text,
        4,
        54,
        &["`env` is required", "remove `default` or `required`"],
    );
}

#[test]
fn default_must_be_a_choice() {
    let text = runbook(
        "a",
        "params = [{ name = \"mode\", choices = [\"fast\", \"slow\"], default = \"quick\" }]\n",
    );
    assert_error(
        &text,
        4,
        66,
        &["default `quick`", "not among its choices (fast, slow)"],
    );
    let ok = runbook(
        "a",
        "params = [{ name = \"mode\", choices = [\"fast\", \"slow\"], default = \"slow\" }]\n",
    );
    assert!(parse(&ok).is_ok());
}

#[test]
fn choices_must_not_be_empty() {
    let text = runbook("a", "params = [{ name = \"mode\", choices = [] }]\n");
    assert_error(&text, 4, 38, &["empty `choices` list"]);
}

#[test]
fn allow_users_must_be_slack_user_ids() {
    assert_error(
        &runbook("a", "allow = { users = [] }\n"),
        4,
        19,
        &["`allow.users` is empty", "U012AB3CD"],
    );
    for bad in ["alice", "@alice", "U1", "u123", "C024BE91L", "U12a", ""] {
        let text = runbook(
            "a",
            &format!("allow = {{ users = [\"U0OK\", \"{bad}\"] }}\n"),
        );
        assert_error(&text, 4, 28, &[&format!("`{bad}` is not a Slack user ID")]);
    }
}

#[test]
fn allow_channels_must_be_slack_channel_ids() {
    let text = runbook("a", "allow = { users = [\"U1A\"], channels = [] }\n");
    assert_error(
        &text,
        4,
        39,
        &["`allow.channels` is empty", "remove `channels`"],
    );
    for bad in ["general", "#ops", "U012AB3CD", "C1", "c024"] {
        let text = runbook(
            "a",
            &format!("allow = {{ users = [\"U1A\"], channels = [\"{bad}\"] }}\n"),
        );
        assert_error(
            &text,
            4,
            40,
            &[&format!("`{bad}` is not a Slack channel ID")],
        );
    }
}

#[test]
fn the_first_problem_in_the_file_is_reported() {
    // `b` sorts after `a` but comes first in the file.
    let text = format!(
        "{}{}",
        runbook("b", "params = [{ name = \"1\" }]\n"),
        runbook("a", "allow = { users = [\"bob\"] }\n")
    );
    assert_error(&text, 4, 20, &["parameter name `1`"]);
}

#[test]
fn inline_runbook_tables_are_located_too() {
    let text = "[runbooks]\nok = { executor = \"automation\", target = \"X\" }\nBad = { executor = \"automation\", target = \"X\" }\n";
    assert_error(text, 3, 1, &["runbook name `Bad`"]);
}

#[test]
fn line_column_counts_characters() {
    let text = "ab\né€x\n";
    assert_eq!(line_column(text, 0), (1, 1));
    assert_eq!(line_column(text, 2), (1, 3));
    assert_eq!(line_column(text, 3), (2, 1));
    assert_eq!(line_column(text, "ab\né€".len()), (2, 3));
    assert_eq!(line_column(text, 4), (2, 1), "inside a character");
    assert_eq!(line_column(text, 999), (3, 1));
}

#[test]
fn stop_allow_is_checked_like_allow() {
    let ok = runbook(
        "a",
        "stop_allow = { users = [\"U0ONCALL\"], channels = [\"COPS\"] }\n",
    );
    let catalog = parse(&ok).unwrap();
    assert_eq!(
        catalog.runbooks["a"].stop_allow,
        Some(Allow {
            users: vec!["U0ONCALL".into()],
            usergroups: vec![],
            channels: Some(vec!["COPS".into()]),
        })
    );
    assert_eq!(
        catalog.runbooks["a"].allow, None,
        "stop_allow grants no run"
    );
    assert_error(
        &runbook("a", "stop_allow = { users = [] }\n"),
        4,
        24,
        &["`stop_allow.users` is empty", "stop its jobs"],
    );
    assert_error(
        &runbook("a", "stop_allow = { users = [\"U0OK\", \"alice\"] }\n"),
        4,
        33,
        &["`alice` is not a Slack user ID"],
    );
    assert_error(
        &runbook(
            "a",
            "stop_allow = { users = [\"U1A\"], channels = [\"#ops\"] }\n",
        ),
        4,
        45,
        &["`#ops` is not a Slack channel ID"],
    );
    assert_error(
        &runbook("a", "stop_allow = { users = [\"U1A\"], everyone = true }\n"),
        4,
        33,
        &["unknown field `everyone`"],
    );
}

#[test]
fn parameter_rules_load() {
    let c = parse(&runbook(
        "scale",
        r#"params = [
  { name = "count", type = "int", min = -5, max = 5, default = "+03" },
  { name = "force", type = "bool", fixed = "TRUE" },
  { name = "host", max_len = 8, pattern = "web-[0-9]+" },
  { name = "tier", type = "choice", choices = ["a", "b"] },
  { name = "env", choices = ["dev"] },
]"#,
    ))
    .unwrap();
    let params = &c.get("scale").unwrap().params;
    assert_eq!(params[0].kind, ParamType::Int);
    assert_eq!((params[0].min, params[0].max), (Some(-5), Some(5)));
    // Defaults and fixed values are kept as the runbook receives them.
    assert_eq!(params[0].default.as_deref(), Some("3"));
    assert_eq!(params[1].fixed.as_deref(), Some("true"));
    assert_eq!(params[2].kind, ParamType::String);
    assert_eq!(params[2].max_len, Some(8));
    assert_eq!(params[2].pattern.as_deref(), Some("web-[0-9]+"));
    assert_eq!(params[3].kind, ParamType::Choice);
    // `choices` without `type` works as before.
    assert_eq!(params[4].kind, ParamType::String);
}

#[test]
fn parameter_rules_are_checked_at_load() {
    // (parameter, where on its line the problem is, words the error must hold)
    let cases: &[(&str, &str, &[&str])] = &[
        (
            r#"{ name = "n", type = "float" }"#,
            r#""float""#,
            &["unknown variant `float`"],
        ),
        (
            r#"{ name = "n", typ = "int" }"#,
            r#"typ "#,
            &["unknown field `typ`"],
        ),
        (
            r#"{ name = "n", type = "int", min = 5, max = 1 }"#,
            r#"5, max"#,
            &[
                "`n` of runbook `rb`",
                "`min` (5) is above `max` (1)",
                "swap",
            ],
        ),
        (
            r#"{ name = "n", pattern = "web-(" }"#,
            r#""web-(""#,
            &[
                "`n` of runbook `rb`",
                "`web-(` is not a valid regular expression",
                "unclosed group",
            ],
        ),
        (
            r#"{ name = "n", type = "choice" }"#,
            r#""choice""#,
            &["`n` of runbook `rb`", "needs `choices`"],
        ),
        (
            r#"{ name = "n", fixed = "x", required = true }"#,
            r#""x", req"#,
            &["`n` of runbook `rb`", "cannot be `required`"],
        ),
        (
            r#"{ name = "n", fixed = "x", default = "y" }"#,
            r#""y""#,
            &["`n` of runbook `rb`", "never uses its `default`"],
        ),
        (
            r#"{ name = "n", fixed = "c", choices = ["a", "b"] }"#,
            r#""c""#,
            &["`n` of runbook `rb`", "fixed value `c`", "use one of: a, b"],
        ),
        (
            r#"{ name = "n", type = "bool", fixed = "yes" }"#,
            r#""yes""#,
            &["fixed value `yes`", "give true or false"],
        ),
        (
            r#"{ name = "n", type = "bool", default = "1" }"#,
            r#""1""#,
            &["default `1`", "give true or false"],
        ),
        (
            r#"{ name = "n", type = "bool", choices = ["true", "maybe"] }"#,
            r#""maybe""#,
            &["choice `maybe`", "give true or false"],
        ),
        (
            r#"{ name = "n", type = "int", choices = ["1", "02"] }"#,
            r#""02""#,
            &[
                "choice `02` would never match",
                "received as `2`",
                "write it `2`",
            ],
        ),
        (
            r#"{ name = "n", type = "bool", choices = ["True", "false"] }"#,
            r#""True""#,
            &["choice `True` would never match", "write it `true`"],
        ),
        (
            r#"{ name = "n", type = "int", max = 3, default = "4" }"#,
            r#""4""#,
            &["default `4`", "of at most 3"],
        ),
        (
            r#"{ name = "n", type = "int", default = "four" }"#,
            r#""four""#,
            &["default `four`", "whole number"],
        ),
        (
            r#"{ name = "n", max_len = 2, default = "abc" }"#,
            r#""abc""#,
            &["default `abc`", "at most 2"],
        ),
        (
            r#"{ name = "n", pattern = "[a-z]+", fixed = "A" }"#,
            r#""A""#,
            &["fixed value `A`", "pattern"],
        ),
        (
            r#"{ name = "n", type = "int", min = 1, max = 9999999999999999999 }"#,
            r#"9999999999999999999"#,
            &["9999999999999999999"],
        ),
        (
            r#"{ name = "n", type = "bool", min = 1 }"#,
            r#"1 }"#,
            &["`min` applies to `type = \"int\"` only, not `bool`"],
        ),
        (
            r#"{ name = "n", type = "int", pattern = "[0-9]" }"#,
            r#""[0-9]""#,
            &["`pattern` applies to `type = \"string\"` only"],
        ),
        (
            r#"{ name = "n", type = "int", max_len = 3 }"#,
            r#"3 }"#,
            &["`max_len` applies"],
        ),
    ];
    for (param, at, needles) in cases {
        // The parameter is on line 5, after two spaces.
        let column = 3 + param.find(at).unwrap();
        let text = runbook("rb", &format!("params = [\n  {param},\n]"));
        let e = error(&text);
        let prefix = format!("{PATH}:5:{column}: ");
        assert!(
            e.starts_with(&prefix),
            "{param}: expected {prefix}…, got {e}"
        );
        for n in *needles {
            assert!(e.contains(n), "{param}: {e:?} should mention {n:?}");
        }
    }
}

#[test]
fn defaults_allow_applies_to_runbooks_without_their_own() {
    let c = parse(&format!(
        "[defaults]\nallow = {{ users = [\"UDEFAULT\"] }}\nstop_allow = {{ users = [\"UONCALL\"] }}\n\n{}\n{}allow = {{ users = [\"UOWN\"], channels = [\"COPS\"] }}\n",
        runbook("plain", ""),
        runbook("own", ""),
    ))
    .unwrap();
    let default_allow = Allow {
        users: vec!["UDEFAULT".into()],
        usergroups: vec![],
        channels: None,
    };
    let plain = c.get("plain").unwrap();
    assert_eq!(plain.allow, Some(default_allow));
    assert_eq!(plain.stop_allow.as_ref().unwrap().users, ["UONCALL"]);
    // Replaced, not merged: the default's users may not run `own`.
    let own = c.get("own").unwrap();
    assert_eq!(
        own.allow,
        Some(Allow {
            users: vec!["UOWN".into()],
            usergroups: vec![],
            channels: Some(vec!["COPS".into()]),
        })
    );
    let at = |user_id| crate::catalog::Caller {
        user_id,
        channel_id: "COPS",
        groups: crate::catalog::Groups::none(),
    };
    assert!(own.authorize(&at("UDEFAULT")).is_err());
    assert!(own.authorize(&at("UOWN")).is_ok());
    assert!(plain.authorize(&at("UDEFAULT")).is_ok());
    assert!(plain.authorize(&at("UOWN")).is_err());
}

#[test]
fn without_defaults_or_allow_nobody_may_run_a_runbook() {
    for text in [
        runbook("rb", ""),
        format!("[defaults]\n\n{}", runbook("rb", "")),
    ] {
        let c = parse(&text).unwrap();
        let rb = c.get("rb").unwrap();
        assert_eq!(rb.allow, None);
        assert!(
            rb.authorize(&crate::catalog::Caller {
                user_id: "UALICE",
                channel_id: "COPS",
                groups: crate::catalog::Groups::none(),
            })
            .is_err()
        );
    }
}

#[test]
fn defaults_are_checked_like_a_runbook_allow() {
    assert_error(
        "[defaults]\nallow = { users = [\"alice\"] }\n",
        2,
        20,
        &["`alice` is not a Slack user ID"],
    );
    assert_error(
        "[defaults]\nstop_allow = { users = [] }\n",
        2,
        24,
        &["`stop_allow.users` is empty"],
    );
    assert_error("[defaults]\nallw = {}\n", 2, 1, &["unknown field `allw`"]);
}
