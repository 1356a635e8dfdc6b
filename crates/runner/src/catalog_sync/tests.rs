use super::*;
use chatops_shared::catalog::Catalog;
use std::path::Path;

fn p(
    name: &str,
    kind: &str,
    mandatory: bool,
    position: Option<i64>,
    default: Option<&str>,
) -> RunbookParam {
    RunbookParam {
        name: name.into(),
        kind: kind.into(),
        mandatory,
        position,
        default: default.map(str::to_owned),
    }
}

fn runbooks() -> Vec<RunbookInfo> {
    vec![
        RunbookInfo {
            name: "Restart-WebApp".into(),
            description: "Restarts the web tier\nof one environment".into(),
            state: "Published".into(),
            runbook_type: "PowerShell".into(),
            parameters: vec![
                p("Force", "switch", false, Some(2), Some("$false")),
                p("Env", "System.String", true, Some(0), None),
                p("Count", "System.Int32", false, Some(1), Some("1")),
                p("Tags", "System.Object[]", false, None, Some("@('a')")),
                p(
                    "Note",
                    "System.String",
                    false,
                    Some(3),
                    Some("\"say \\\"hi\\\"\""),
                ),
                p("Limit", "int", false, Some(4), Some("many")),
            ],
        },
        RunbookInfo {
            name: "status".into(),
            description: String::new(),
            state: "New".into(),
            runbook_type: "Python3".into(),
            parameters: Vec::new(),
        },
        RunbookInfo {
            name: "restart_webapp".into(),
            description: "Another".into(),
            state: "Published".into(),
            runbook_type: "PowerShell".into(),
            parameters: Vec::new(),
        },
    ]
}

#[test]
fn the_entries_load_as_a_catalog_with_types_required_defaults_and_positions() {
    let text = render("aa-ops", &runbooks());
    let catalog = edited(&text);
    assert_eq!(
        catalog.runbooks.keys().collect::<Vec<_>>(),
        ["restart-webapp", "restart-webapp-2", "run-status"],
        "{text}"
    );
    let web = catalog.get("restart-webapp").unwrap();
    assert_eq!(web.target, "Restart-WebApp");
    assert_eq!(web.description, "Restarts the web tier of one environment");
    let shape: Vec<(&str, ParamType, bool, Option<&str>)> = web
        .params
        .iter()
        .map(|p| (p.name.as_str(), p.kind, p.required, p.default.as_deref()))
        .collect();
    assert_eq!(
        shape,
        [
            ("Env", ParamType::String, true, None),
            ("Count", ParamType::Int, false, Some("1")),
            ("Force", ParamType::Bool, false, Some("false")),
            ("Note", ParamType::String, false, Some("say \\\"hi\\\"")),
            ("Limit", ParamType::Int, false, None),
            ("Tags", ParamType::String, false, Some("@('a')")),
        ],
        "{text}"
    );
    assert!(text.contains("default `many` left out"), "{text}");
    assert!(
        text.contains("declared `System.Object[]`: passed as text"),
        "{text}"
    );
    assert!(text.contains("# state: New"), "{text}");
    assert_eq!(catalog.get("run-status").unwrap().target, "status");
}

/// The entries once an operator has said who may run them.
fn edited(text: &str) -> Catalog {
    let text = text.replace(WHO, "U012AB3CD");
    Catalog::parse(&text, Path::new("synced.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn authorization_is_never_generated() {
    let text = render("aa-ops", &runbooks());
    let refused = Catalog::parse(&text, Path::new("synced.toml"))
        .unwrap_err()
        .to_string();
    assert!(refused.contains(WHO), "{refused}");
    assert_eq!(
        text.matches(&format!("\nallow = {{ users = [\"{WHO}\"] }}"))
            .count(),
        3,
        "{text}"
    );
    assert!(text.contains("replace it with who may run the"));
    let catalog = edited(&text);
    assert!(catalog.runbooks.values().all(|rb| rb.stop_allow.is_none()));
}

#[test]
fn names_the_catalog_cannot_take_are_commented_out() {
    let rb = RunbookInfo {
        name: "Odd".into(),
        description: String::new(),
        state: "Published".into(),
        runbook_type: "PowerShell".into(),
        parameters: vec![
            p("_private", "string", false, Some(0), None),
            p("ok", "string", false, Some(1), None),
        ],
    };
    let text = render("aa", &[rb]);
    let catalog = edited(&text);
    let names: Vec<&str> = catalog
        .get("odd")
        .unwrap()
        .params
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["ok"], "{text}");
    assert!(text.contains("rename the parameter"), "{text}");
}
