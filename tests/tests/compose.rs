//! The compose stack without Docker: `docker-compose.yml` is read as Compose reads it, and the
//! service binaries are started with each service's environment (the `azurite` service's
//! addresses mapped to the Azurite the harness starts on loopback, bind-mounted paths to this
//! checkout), then a signed command goes through ingress, queue and two runners (the file's
//! `--scale runner=N`). What the file sets is what the services accept. The images' health
//! probe (`docker/healthcheck.rs`, built with `rustc` as the Dockerfile does) is run against
//! both services.

// Test code: a failed step should stop the test with its message.
#![allow(clippy::expect_used)]

use chatops_e2e::app::SIGNING_SECRET;
use chatops_e2e::azurite::Azurite;
use chatops_e2e::compose::{Compose, ComposeService};
use chatops_e2e::process::{Service, running_as_root};
use chatops_e2e::slack::SlackServer;
use chatops_shared::job::JobKey;
use chatops_shared::queue::azure::RetryBudget;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The sample catalog's user (runbooks.toml allows U0DEMO).
const DEMO_USER: &str = "U0DEMO";
const DEMO_CHANNEL: &str = "C0DEMO";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// The compose file, interpolated with the variables its users export.
fn load(job_key: &str) -> Compose {
    let vars: HashMap<String, String> = [
        ("SLACK_SIGNING_SECRET", SIGNING_SECRET),
        ("CHATOPS_JOB_SIGNING_KEY", job_key),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Compose::load(&workspace().join("docker-compose.yml"), &vars).expect("docker-compose.yml")
}

/// The variables README.md's configuration table names (backquoted upper-case words in its rows).
fn documented_variables() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README.md");
    readme
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| l.split('`').skip(1).step_by(2).map(str::to_owned))
        .filter(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect()
}

/// A service's environment for its binary on this machine. Only what is the host's business
/// changes: the listen addresses (ports are published by Docker; here many tests run at once),
/// the Slack test server standing in for hooks.slack.com, the log format and filter (the harness
/// reads JSON lines), and who scripts run as when this test runs as root (the runner image runs
/// as an unprivileged user, which needs no such setting).
fn host_env(
    service: &ComposeService,
    azurite: &Azurite,
    slack: &SlackServer,
) -> Vec<(String, String)> {
    let addresses = [
        (
            "azurite:10000".to_owned(),
            format!("127.0.0.1:{}", blob_port(azurite)),
        ),
        (
            "azurite:10001".to_owned(),
            format!("127.0.0.1:{}", azurite.port()),
        ),
    ];
    let mut env = service.host_env(&addresses);
    env.retain(|(key, _)| key != "CHATOPS_LOG_FORMAT" && key != "RUST_LOG");
    for (key, value) in &mut env {
        if key == "CHATOPS_INGRESS_ADDR" || key == "CHATOPS_RUNNER_ADDR" {
            *value = "127.0.0.1:0".to_owned();
        }
    }
    env.push((
        "CHATOPS_SLACK_RESPONSE_URL_PREFIX".to_owned(),
        slack.base_url(),
    ));
    if running_as_root() {
        env.push(("CHATOPS_SCRIPT_USER".to_owned(), "root".to_owned()));
    }
    env
}

/// The blob service's port, from the harness's blob endpoint.
fn blob_port(azurite: &Azurite) -> u16 {
    azurite
        .blob_endpoint()
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("blob endpoint port")
}

/// The images' health probe, compiled as the Dockerfile compiles it.
fn build_healthcheck() -> PathBuf {
    let out = std::env::temp_dir().join(format!(
        "chatops-healthcheck-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let status = std::process::Command::new(rustc)
        .args(["--edition", "2021", "-O", "-o"])
        .arg(&out)
        .arg(workspace().join("docker/healthcheck.rs"))
        .status()
        .expect("run rustc");
    assert!(status.success(), "docker/healthcheck.rs compiles");
    out
}

/// Runs the probe like the images' HEALTHCHECK; true when it exits 0.
fn probe(healthcheck: &Path, addr: &str, path: &str) -> bool {
    std::process::Command::new(healthcheck)
        .args([addr, path])
        .status()
        .expect("run healthcheck")
        .success()
}

fn form(slack: &SlackServer, text: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("token", "unused"),
            ("team_id", "T0DEMO"),
            ("team_domain", "demo"),
            ("channel_id", DEMO_CHANNEL),
            ("channel_name", "ops"),
            ("user_id", DEMO_USER),
            ("user_name", "demo"),
            ("command", "/runbook"),
            ("text", text),
            ("response_url", &slack.response_url()),
            ("trigger_id", "1.2.3"),
            ("api_app_id", "A0DEMO"),
        ])
        .finish()
}

#[test]
fn the_compose_file_sets_only_documented_variables_and_publishes_no_runner_port() {
    let compose = load(&JobKey::generate().expect("key").to_base64());
    let documented = documented_variables();
    for name in ["ingress", "runner"] {
        let service = compose.services.get(name).expect("service in the file");
        for (key, _) in &service.environment {
            assert!(
                documented.contains(key),
                "{name} sets {key}, which README.md's configuration table does not name"
            );
        }
        assert!(
            service
                .var("CHATOPS_JOB_SIGNING_KEY")
                .is_some_and(|v| !v.is_empty()),
            "{name} gets the job signing key"
        );
    }
    assert!(
        compose.services["runner"].ports.is_empty(),
        "a published port would stop `--scale runner=N`"
    );
    assert!(compose.services.contains_key("azurite"));
}

#[test]
fn without_its_required_secrets_the_compose_file_does_not_interpolate() {
    let vars = HashMap::new();
    let err = Compose::load(&workspace().join("docker-compose.yml"), &vars)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("CHATOPS_JOB_SIGNING_KEY") || err.contains("SLACK_SIGNING_SECRET"),
        "{err}"
    );
}

/// The catalog the Azure deployment mounts (infra/bicep/catalog.toml) loads, with its local
/// targets (absolute paths in the images' /app/runbooks) found in this checkout's runbooks/,
/// which the Dockerfile copies there.
#[test]
fn the_azure_deployments_catalog_loads_with_the_scripts_the_images_carry() {
    let text = std::fs::read_to_string(workspace().join("infra/bicep/catalog.toml"))
        .expect("infra/bicep/catalog.toml");
    assert!(
        text.contains("\"/app/runbooks/"),
        "local targets are image paths"
    );
    let dir = std::env::temp_dir().join(format!(
        "chatops-azure-catalog-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("runbooks.toml");
    let here = format!("\"{}/", workspace().join("runbooks").display());
    std::fs::write(&path, text.replace("\"/app/runbooks/", &here)).expect("write");
    let loaded = chatops_shared::catalog::Catalog::load(&path);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(loaded.is_ok(), "{:?}", loaded.err());
}

#[tokio::test]
async fn the_compose_services_run_a_signed_command_with_their_own_environment() {
    let azurite = Azurite::start().await;
    let slack = SlackServer::start().await;
    let key = JobKey::generate().expect("key").to_base64();
    let compose = load(&key);
    let ingress_env = host_env(&compose.services["ingress"], &azurite, &slack);
    let runner_env = host_env(&compose.services["runner"], &azurite, &slack);
    let catalog = runner_env
        .iter()
        .find(|(k, _)| k == "CHATOPS_CATALOG")
        .map(|(_, v)| PathBuf::from(v))
        .expect("CHATOPS_CATALOG");
    assert!(
        catalog.is_file(),
        "the mounted catalog: {}",
        catalog.display()
    );

    let mut ingress = Service::start("chatops-ingress", &ingress_env);
    let mut runners = [
        Service::start("chatops-runner", &runner_env),
        Service::start("chatops-runner", &runner_env),
    ];
    let addr = ingress.bound_addr().await;
    let healthcheck = build_healthcheck();
    assert!(probe(&healthcheck, &addr, "/healthz"), "ingress healthy");
    let client = reqwest::Client::new();
    for runner in &runners {
        let runner_addr = runner.bound_addr().await;
        assert!(
            probe(&healthcheck, &runner_addr, "/healthz"),
            "runner healthy"
        );
        assert!(
            !probe(&healthcheck, &runner_addr, "/no-such-route"),
            "a 404 is not healthy"
        );
        for path in ["healthz", "readyz"] {
            let status = client
                .get(format!("http://{runner_addr}/{path}"))
                .send()
                .await
                .expect("runner answers")
                .status();
            assert_eq!(status.as_u16(), 200, "runner /{path}");
        }
    }

    let body = form(&slack, "hello compose");
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let answer: serde_json::Value = client
        .post(format!("http://{addr}/slack/commands"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", ts.to_string())
        .header(
            "x-slack-signature",
            chatops_ingress::slack::verify::sign(SIGNING_SECRET, ts, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .expect("ingress answers")
        .json()
        .await
        .expect("JSON answer");
    assert_eq!(answer["response_type"], "in_channel", "{answer}");
    let done = slack
        .wait_for(
            |all| {
                all.iter().any(|m| {
                    m.text().contains("*Completed*") && m.text().contains("Hello, compose!")
                })
            },
            Duration::from_secs(30),
        )
        .await;
    assert!(!done.is_empty());

    assert_eq!(ingress.terminate(Duration::from_secs(15)).await, Some(0));
    for runner in &mut runners {
        assert_eq!(runner.terminate(Duration::from_secs(40)).await, Some(0));
    }
    assert!(
        !probe(&healthcheck, &addr, "/healthz"),
        "nothing listens: not healthy"
    );
    let _ = std::fs::remove_file(&healthcheck);
    // The job's message was deleted from the compose file's queue; nothing went to poison.
    let queue_name = compose.services["runner"]
        .var("CHATOPS_QUEUE_NAME")
        .expect("queue name")
        .to_owned();
    for name in [queue_name.clone(), format!("{queue_name}-poison")] {
        let queue = chatops_e2e::app::queue_for(&azurite, &name, RetryBudget::interactive());
        let left = queue
            .receive(32, Duration::from_secs(1))
            .await
            .expect("receive");
        assert!(left.is_empty(), "{} message(s) left on {name}", left.len());
    }
}
