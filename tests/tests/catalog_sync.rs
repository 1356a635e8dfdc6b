//! `chatops-runner catalog sync` as a process against the ARM double: it reads the account's
//! runbooks (every page of the list, then each runbook's parameters) and writes catalog
//! entries with types, required, defaults and positions, whose `allow` is a placeholder that
//! does not load until an operator replaces it.

// Test code: a failed step should stop the test with its message.
#![allow(clippy::expect_used)]

use chatops_e2e::arm::ArmServer;
use chatops_e2e::process::binary;
use chatops_runner::catalog_sync::WHO;
use chatops_shared::catalog::{Catalog, ParamType};
use serde_json::json;

#[tokio::test]
async fn catalog_sync_writes_entries_for_review_from_the_automation_account() {
    let arm = ArmServer::start().await;
    arm.define_runbook(
        "Restart-WebApp",
        "Restart the web tier",
        json!({
            "Count": { "type": "System.Int32", "isMandatory": false, "position": 1, "defaultValue": "1" },
            "Env": { "type": "System.String", "isMandatory": true, "position": 0 },
            "Force": { "type": "System.Management.Automation.SwitchParameter", "isMandatory": false, "position": 2, "defaultValue": "$false" },
        }),
    );
    arm.define_runbook("Purge-Cache", "", json!({}));
    // Three runbooks, two to a page: the list has a second page.
    arm.define_runbook(
        "Rotate_Keys",
        "Rotate the keys",
        json!({ "Vault": { "type": "System.String", "isMandatory": false, "position": 0, "defaultValue": "'kv-prod'" } }),
    );
    let dir = std::env::temp_dir().join(format!("chatops-sync-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let out = dir.join("synced.toml");

    let output = tokio::process::Command::new(binary("chatops-runner"))
        .args(["catalog", "sync", "--out"])
        .arg(&out)
        .envs(arm.env())
        .output()
        .await
        .expect("run catalog sync");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("3 runbook(s) written"), "{stderr}");

    let text = std::fs::read_to_string(&out).expect("the entries were written");
    // Who may run them is the operator's to say: as written, the entries do not load, even
    // under a `[defaults].allow` that would otherwise let its callers run every one.
    let defaults = format!("[defaults]\nallow = {{ usergroups = [\"S0DEVS001\"] }}\n{text}");
    for written in [&text, &defaults] {
        let refused = Catalog::parse(written, &out)
            .expect_err("the placeholders do not load")
            .to_string();
        assert!(refused.contains(WHO), "{refused}");
    }
    let edited = text.replace(WHO, "U012AB3CD");
    let catalog = Catalog::parse(&edited, &out).unwrap_or_else(|e| panic!("{e}\n{edited}"));
    assert_eq!(
        catalog.runbooks.keys().collect::<Vec<_>>(),
        ["purge-cache", "restart-webapp", "rotate-keys"]
    );
    let web = catalog.get("restart-webapp").expect("restart-webapp");
    assert_eq!(web.target, "Restart-WebApp");
    assert_eq!(web.description, "Restart the web tier");
    let params: Vec<(&str, ParamType, bool, Option<&str>)> = web
        .params
        .iter()
        .map(|p| (p.name.as_str(), p.kind, p.required, p.default.as_deref()))
        .collect();
    assert_eq!(
        params,
        [
            ("Env", ParamType::String, true, None),
            ("Count", ParamType::Int, false, Some("1")),
            ("Force", ParamType::Bool, false, Some("false")),
        ]
    );
    assert_eq!(
        catalog.get("rotate-keys").expect("rotate-keys").params[0]
            .default
            .as_deref(),
        Some("kv-prod")
    );
    assert_eq!(
        text.matches(&format!("allow = {{ users = [\"{WHO}\"] }}"))
            .count(),
        3,
        "authorization is never generated: {text}"
    );

    let gets: Vec<String> = arm
        .requests()
        .iter()
        .filter(|r| r.path.contains("/runbooks"))
        .map(|r| {
            format!(
                "{} {}",
                r.status.as_u16(),
                r.path.rsplit('/').next().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        gets,
        [
            "200 runbooks",
            "200 runbooks",
            "200 Purge-Cache",
            "200 Restart-WebApp",
            "200 Rotate_Keys"
        ],
        "the list's two pages, then each runbook"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn catalog_sync_without_an_account_is_a_configuration_error() {
    let output = tokio::process::Command::new(binary("chatops-runner"))
        .args(["catalog", "sync"])
        .env_remove("AZURE_SUBSCRIPTION_ID")
        .env_remove("AUTOMATION_RESOURCE_GROUP")
        .env_remove("AUTOMATION_ACCOUNT")
        .output()
        .await
        .expect("run catalog sync");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("AUTOMATION_ACCOUNT"), "{stderr}");
}
