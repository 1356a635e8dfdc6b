//! `slack/manifest.yml` against the code: its slash command is the one the ingress assumes, its
//! request URLs are routes the ingress serves (and verifies), and its bot scopes are exactly
//! those the Web API methods the code calls need, nothing broader.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chatops_e2e::app::TestApp;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

fn manifest() -> String {
    std::fs::read_to_string(root().join("slack/manifest.yml")).expect("slack/manifest.yml")
}

/// The values of every `key: value` line (comments skipped), in order.
fn values<'a>(manifest: &'a str, key: &str) -> Vec<&'a str> {
    manifest
        .lines()
        .map(|l| l.trim_start().trim_start_matches("- "))
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().trim_matches('"'))
        .collect()
}

/// The list items under `bot:` in `oauth_config.scopes`.
fn bot_scopes(manifest: &str) -> BTreeSet<String> {
    let mut lines = manifest.lines().skip_while(|l| l.trim() != "bot:").skip(1);
    let mut scopes = BTreeSet::new();
    for line in lines.by_ref() {
        let Some(scope) = line.trim().strip_prefix("- ") else {
            break;
        };
        scopes.insert(scope.trim().to_owned());
    }
    scopes
}

/// The Slack Web API namespaces a method name can start with.
const NAMESPACES: &[&str] = &[
    "admin",
    "apps",
    "auth",
    "bots",
    "chat",
    "conversations",
    "dnd",
    "emoji",
    "files",
    "pins",
    "reactions",
    "reminders",
    "search",
    "team",
    "usergroups",
    "users",
    "views",
];

/// The scope each method the code calls needs (`None`: no scope of its own). A method the code
/// starts calling must be added here, and its scope to the manifest.
fn scope_of(method: &str) -> Option<Option<&'static str>> {
    Some(match method {
        "chat.postMessage" | "chat.update" | "chat.postEphemeral" | "chat.delete" => {
            Some("chat:write")
        }
        "views.open" | "views.update" | "views.push" => None,
        "usergroups.users.list" | "usergroups.list" => Some("usergroups:read"),
        _ => return None,
    })
}

/// Every string literal in the crates' sources that names a Web API method.
fn methods_called() -> BTreeSet<String> {
    let mut methods = BTreeSet::new();
    let mut dirs = vec![root().join("crates")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    dirs.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            for literal in text.split('"').skip(1).step_by(2) {
                let Some((namespace, rest)) = literal.split_once('.') else {
                    continue;
                };
                let shaped = !rest.is_empty()
                    && literal
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.');
                if shaped && NAMESPACES.contains(&namespace) {
                    methods.insert(literal.to_owned());
                }
            }
        }
    }
    methods
}

#[test]
fn the_slash_command_is_the_one_the_ingress_assumes() {
    let manifest = manifest();
    assert_eq!(
        values(&manifest, "command"),
        [chatops_ingress::slack::form::COMMAND]
    );
}

#[test]
fn the_bot_scopes_are_exactly_what_the_called_methods_need() {
    let called = methods_called();
    assert!(
        called.contains("chat.postMessage") && called.contains("views.open"),
        "the scan finds the methods the code calls: {called:?}"
    );
    let mut needed = BTreeSet::from(["commands".to_owned()]);
    for method in &called {
        let scope = scope_of(method).unwrap_or_else(|| {
            panic!("the code calls {method}: add its scope to scope_of and to slack/manifest.yml")
        });
        needed.extend(scope.map(str::to_owned));
    }
    let manifest = manifest();
    let asked = bot_scopes(&manifest);
    assert_eq!(asked, needed, "manifest bot scopes vs what {called:?} need");
    assert!(
        asked
            .iter()
            .all(|s| !s.contains("history") && !s.starts_with("admin")),
        "{asked:?}"
    );
    assert!(
        !manifest.lines().any(|l| l.trim() == "user:"),
        "no user-token scopes"
    );
}

#[tokio::test]
async fn the_request_urls_are_routes_the_ingress_serves() {
    let manifest = manifest();
    let urls: Vec<&str> = values(&manifest, "url")
        .into_iter()
        .chain(values(&manifest, "request_url"))
        .collect();
    let paths: Vec<String> = urls
        .iter()
        .map(|u| url::Url::parse(u).expect("a URL").path().to_owned())
        .collect();
    assert_eq!(paths, ["/slack/commands", "/slack/interactions"]);
    let app = TestApp::spawn().await;
    let status = |path: String| {
        let request = app
            .client
            .post(format!("{}{path}", app.ingress_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("payload=%7B%7D");
        async move {
            request
                .send()
                .await
                .expect("ingress answers")
                .status()
                .as_u16()
        }
    };
    for path in paths {
        // Served, and refused without Slack's signature.
        assert_eq!(status(path.clone()).await, 401, "{path}");
    }
    assert_eq!(status("/slack/not-a-route".to_owned()).await, 404);
    app.finish().await;
}
