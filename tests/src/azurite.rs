//! A real Azurite (queue and blob services) for the end-to-end tests.
//!
//! How it works:
//!
//! 1. **Install once.** `npm install azurite@3` goes into `<workspace>/.cache/azurite`
//!    (git-ignored) and is reused by every later run. Test binaries run in parallel (cargo-nextest
//!    runs one process per test), so the install is guarded twice: a lock file created with
//!    `create_new` lets one process install while the others wait, and the install happens in a
//!    temporary folder that is renamed into place, so a folder that exists is complete. A lock
//!    left by a dead process (its pid is gone, or it is older than 10 minutes) is removed. To
//!    upgrade Azurite, delete `.cache/azurite`.
//! 2. **Start.** Each [`Azurite`] is its own `azurite-queue` and `azurite-blob` processes on
//!    127.0.0.1 with `--queuePort 0` / `--blobPort 0`: each binds a free port and prints
//!    `successfully listens on http://127.0.0.1:PORT`, which we read from its stdout. Unlike choosing a free port
//!    ourselves and passing it, this cannot clash with a parallel test. Then we wait until the
//!    port accepts connections. The whole start is bounded (20 s); a failure panics with
//!    Azurite's output. Data lives in a fresh folder under the system temp dir (`--location`, not
//!    `--inMemoryPersistence`, which slows down after many deletes). `--skipApiVersionCheck` is
//!    needed because the SDK sends a newer `x-ms-version` than Azurite knows.
//! 3. **Stop.** [`Azurite::stop`] kills both processes and waits for them; dropping an `Azurite`
//!    kills it too. Its data folder is removed either way.
//!
//! Azurite's output is discarded unless `TEST_LOG` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chatops_shared::queue::connection::{DEVSTORE_ACCOUNT, DEVSTORE_KEY};
use chatops_shared::queue::sas::{SasProtocol, account_sas};
use chatops_shared::secret::Secret;
use std::fs::OpenOptions;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// The npm package installed into the cache.
const PACKAGE: &str = "azurite@3";
/// How long [`Azurite::start`] may take once installed.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long to wait for another process's install.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
/// A lock older than this is taken to be left over from a crash.
const STALE_LOCK_AGE: Duration = Duration::from_secs(600);

/// A running Azurite queue and blob service. Killed on drop.
pub struct Azurite {
    child: Option<Child>,
    blob_child: Option<Child>,
    port: u16,
    blob_port: u16,
    data_dir: PathBuf,
}

impl Azurite {
    /// Installs Azurite if needed, starts it on a free port and waits until it accepts
    /// connections.
    pub async fn start() -> Azurite {
        let install_dir = tokio::task::spawn_blocking(ensure_installed)
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let data_dir =
            std::env::temp_dir().join(format!("chatops-azurite-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&data_dir).expect("create azurite data dir");

        let (child, port) = start_service(&install_dir, "queue", &data_dir.join("queue")).await;
        let (blob_child, blob_port) =
            start_service(&install_dir, "blob", &data_dir.join("blob")).await;
        Azurite {
            child: Some(child),
            blob_child: Some(blob_child),
            port,
            blob_port,
            data_dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1` (no trailing slash).
    pub fn queue_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{DEVSTORE_ACCOUNT}", self.port)
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1` of the blob service (no trailing slash).
    pub fn blob_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{DEVSTORE_ACCOUNT}", self.blob_port)
    }

    /// Account-key connection string for this instance (queue and blob).
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={DEVSTORE_ACCOUNT};AccountKey={DEVSTORE_KEY};QueueEndpoint={};BlobEndpoint={};",
            self.queue_endpoint(),
            self.blob_endpoint()
        )
    }

    /// SAS connection string for this instance, with an account SAS valid for 24 h.
    pub fn sas_connection_string(&self) -> String {
        let expiry = time::OffsetDateTime::now_utc() + Duration::from_secs(24 * 3600);
        let sas = account_sas(
            DEVSTORE_ACCOUNT,
            &Secret::new(DEVSTORE_KEY),
            expiry,
            SasProtocol::HttpsAndHttp,
        )
        .expect("sign account SAS");
        format!(
            "QueueEndpoint={};BlobEndpoint={};SharedAccessSignature={}",
            self.queue_endpoint(),
            self.blob_endpoint(),
            sas.expose()
        )
    }

    /// Kills Azurite and waits until it has exited (the ports are then closed).
    pub async fn stop(&mut self) {
        for mut child in [self.child.take(), self.blob_child.take()]
            .into_iter()
            .flatten()
        {
            let _ = child.kill().await;
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        for mut child in [self.child.take(), self.blob_child.take()]
            .into_iter()
            .flatten()
        {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// An `AzureBlobStore` on container `container` of this Azurite (account key), not yet created.
pub fn blob_store_for(
    azurite: &Azurite,
    container: &str,
    budget: chatops_shared::queue::retry::RetryBudget,
) -> chatops_shared::blob::azure::AzureBlobStore {
    blob_store_with(&azurite.connection_string(), container, budget)
}

/// An `AzureBlobStore` from a connection string with a blob endpoint.
pub fn blob_store_with(
    connection_string: &str,
    container: &str,
    budget: chatops_shared::queue::retry::RetryBudget,
) -> chatops_shared::blob::azure::AzureBlobStore {
    use chatops_shared::blob::settings::{BlobSettings, BlobTarget};
    let c: chatops_shared::queue::connection::ConnectionString =
        connection_string.parse().expect("connection string");
    let settings = BlobSettings {
        target: BlobTarget::ConnectionString {
            endpoint: c.blob_endpoint().expect("blob endpoint").clone(),
            auth: c.auth,
        },
        container: container.to_owned(),
        budget,
    };
    chatops_shared::blob::azure::AzureBlobStore::new(settings, None).expect("blob store")
}

/// A valid queue name, unique per call: `<prefix>-<12 hex>`, with the prefix reduced to
/// lowercase letters, digits and single hyphens, short enough for `<name>-poison`.
pub async fn unique_queue_name(prefix: &str) -> String {
    let mut clean = String::new();
    for c in prefix.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            clean.push(c);
        } else if !clean.is_empty() && !clean.ends_with('-') {
            clean.push('-');
        }
    }
    clean.truncate(40);
    let clean = clean.trim_end_matches('-');
    let clean = if clean.is_empty() { "q" } else { clean };
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{clean}-{}", &id[..12])
}

/// Starts one Azurite service (`queue` or `blob`) on a free port, data in `data_dir`; returns
/// it once it accepts connections.
async fn start_service(install_dir: &Path, service: &str, data_dir: &Path) -> (Child, u16) {
    std::fs::create_dir_all(data_dir).expect("create azurite data dir");
    let mut child = Command::new("node")
        .arg(main_js(install_dir, service))
        .args([
            format!("--{service}Host"),
            "127.0.0.1".into(),
            format!("--{service}Port"),
            "0".into(),
        ])
        .args([
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--loose",
            "--silent",
        ])
        .arg("--location")
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("spawn `node` for azurite-{service} (is Node.js installed?): {e}")
        });

    // Both pipes are read to the end by background tasks, so Azurite never blocks on a
    // full pipe; the lines are kept for the panic message if the start fails.
    let output = Arc::new(Mutex::new(String::new()));
    let (port_tx, port_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(drain(
        child.stdout.take().expect("stdout"),
        output.clone(),
        Some(port_tx),
    ));
    tokio::spawn(drain(
        child.stderr.take().expect("stderr"),
        output.clone(),
        None,
    ));

    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    let port = match tokio::time::timeout_at(deadline, port_rx).await {
        Ok(Ok(port)) => port,
        Ok(Err(_)) => fail(&mut child, &output, "exited before listening").await,
        Err(_) => fail(&mut child, &output, "did not report its port in time").await,
    };
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            fail(&mut child, &output, "does not accept connections").await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (child, port)
}

/// Reads lines into `output`; reports the port from the "listens on" line through `port`.
async fn drain(
    stream: impl AsyncRead + Unpin,
    output: Arc<Mutex<String>>,
    mut port: Option<tokio::sync::oneshot::Sender<u16>>,
) {
    let echo = std::env::var_os("TEST_LOG").is_some();
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if echo {
            eprintln!("azurite: {line}");
        }
        if let Some(p) = port.take() {
            match listening_port(&line) {
                Some(n) => {
                    let _ = p.send(n);
                }
                None => port = Some(p),
            }
        }
        let mut out = output.lock().unwrap();
        if out.len() < 64 * 1024 {
            out.push_str(&line);
            out.push('\n');
        }
    }
}

/// The port in `Azurite Queue service successfully listens on http://127.0.0.1:PORT`.
fn listening_port(line: &str) -> Option<u16> {
    if !line.contains("listens on") {
        return None;
    }
    let url = line.split_whitespace().find(|w| w.starts_with("http"))?;
    url::Url::parse(url).ok()?.port()
}

async fn fail(child: &mut Child, output: &Mutex<String>, what: &str) -> ! {
    let _ = child.kill().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    panic!(
        "Azurite {what} (within {START_TIMEOUT:?}). Its output:\n{}",
        output.lock().unwrap()
    );
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

fn main_js(install_dir: &Path, service: &str) -> PathBuf {
    install_dir.join(format!("node_modules/azurite/dist/src/{service}/main.js"))
}

fn queue_main_js(install_dir: &Path) -> PathBuf {
    main_js(install_dir, "queue")
}

/// Returns the install folder, installing Azurite first if no process has yet. Blocking.
fn ensure_installed() -> PathBuf {
    let cache = workspace_root().join(".cache");
    let dir = cache.join("azurite");
    let lock = cache.join("azurite.lock");
    std::fs::create_dir_all(&cache).expect("create .cache");
    let waiting_since = Instant::now();
    loop {
        if queue_main_js(&dir).exists() {
            return dir;
        }
        match OpenOptions::new().write(true).create_new(true).open(&lock) {
            Ok(mut file) => {
                let _guard = RemoveOnDrop(lock.clone());
                let _ = writeln!(file, "{}", std::process::id());
                if !queue_main_js(&dir).exists() {
                    install(&cache, &dir);
                }
                return dir;
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                if lock_is_stale(&lock) {
                    let _ = std::fs::remove_file(&lock);
                    continue;
                }
                assert!(
                    waiting_since.elapsed() < INSTALL_TIMEOUT,
                    "waited {INSTALL_TIMEOUT:?} for another process to install Azurite; \
                     remove {} if no test is running",
                    lock.display()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("cannot create {}: {e}", lock.display()),
        }
    }
}

/// `npm install` into a temporary folder, then an atomic rename to `dir`.
fn install(cache: &Path, dir: &Path) {
    let tmp = cache.join(format!("azurite.tmp-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&tmp).expect("create temporary install folder");
    let started = Instant::now();
    let out = std::process::Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--no-save",
            "--prefix",
        ])
        .arg(&tmp)
        .arg(PACKAGE)
        .stdin(Stdio::null())
        .output()
        .expect("run `npm` (is Node.js installed?)");
    if !out.status.success() || !queue_main_js(&tmp).exists() {
        let _ = std::fs::remove_dir_all(&tmp);
        panic!(
            "`npm install {PACKAGE}` failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Only a folder without Azurite in it can be here (a complete one would have been used).
    if dir.exists() && !queue_main_js(dir).exists() {
        let _ = std::fs::remove_dir_all(dir);
    }
    if let Err(e) = std::fs::rename(&tmp, dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another process that took over a stale lock may have won the race.
        assert!(
            queue_main_js(dir).exists(),
            "cannot move the Azurite install into {}: {e}",
            dir.display()
        );
    }
    eprintln!(
        "installed {PACKAGE} into {} in {:.1?}",
        dir.display(),
        started.elapsed()
    );
}

/// The lock's process is gone (Linux: no `/proc/<pid>`), or the lock is too old.
fn lock_is_stale(lock: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(lock) else {
        return false;
    };
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    if age > STALE_LOCK_AGE {
        return true;
    }
    let pid = std::fs::read_to_string(lock)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    match pid {
        Some(pid) if Path::new("/proc/self").exists() => {
            !Path::new(&format!("/proc/{pid}")).exists()
        }
        _ => false,
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_port_from_azurites_banner() {
        assert_eq!(
            listening_port("Azurite Queue service successfully listens on http://127.0.0.1:40783"),
            Some(40783)
        );
        assert_eq!(
            listening_port("Azurite Queue service is starting on 127.0.0.1:0"),
            None
        );
    }

    #[tokio::test]
    async fn unique_names_are_valid_queue_names() {
        for prefix in ["Round Trip", "", "--x--", &"long".repeat(30)] {
            let name = unique_queue_name(prefix).await;
            chatops_shared::queue::azure::validate_queue_name(&name)
                .unwrap_or_else(|e| panic!("{prefix}: {e}"));
        }
        assert_ne!(unique_queue_name("a").await, unique_queue_name("a").await);
    }
}
