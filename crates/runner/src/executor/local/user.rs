//! Who a script runs as, decided once at start from the runner's own user and
//! `CHATOPS_SCRIPT_USER` (see `docs/security.md`, "What a script can reach"):
//!
//! - runner not root: scripts run as the runner's user (the runner is non-dumpable);
//! - runner root with a script user: scripts run as that user, who must be able to reach and
//!   run every local script;
//! - runner root without one: refused when the catalog has local runbooks; `root` accepts
//!   that scripts run as root and can read the runner's secrets.

use chatops_shared::catalog::{Catalog, ExecutorKind};
use nix::unistd::{Uid, User};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// The user and group a script runs as when the runner switches users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// How scripts run, by the runner's user and `CHATOPS_SCRIPT_USER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptMode {
    /// Same user as the runner, which is not root.
    RunnerUser,
    /// Switched to this user by the (root) runner.
    Switched(ScriptUser),
    /// As root, accepted with `CHATOPS_SCRIPT_USER=root`: scripts can read the runner's secrets.
    RootAccepted,
    /// The runner is root and has no local runbooks to run.
    NoLocalRunbooks,
}

impl ScriptMode {
    /// The user to switch to, if any.
    pub fn user(&self) -> Option<&ScriptUser> {
        match self {
            ScriptMode::Switched(user) => Some(user),
            _ => None,
        }
    }
}

/// Why the runner refuses to start with this script user.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScriptUserError {
    #[error(
        "the runner runs as root and the catalog has local runbooks ({0}): set CHATOPS_SCRIPT_USER to the user (name or uid) scripts run as, or to `root` to accept that scripts can read the runner's secrets"
    )]
    RootWithoutUser(String),
    #[error("CHATOPS_SCRIPT_USER: there is no user `{0}` on this machine")]
    NoSuchUser(String),
    #[error("CHATOPS_SCRIPT_USER: could not look up user `{0}`: {1}")]
    Lookup(String, String),
    #[error(
        "CHATOPS_SCRIPT_USER is `{0}`, but only a runner started as root can run scripts as another user (this runner runs as uid {1})"
    )]
    NotRoot(String, u32),
    #[error("CHATOPS_SCRIPT_USER: user `{user}` cannot run these local scripts: {problems}")]
    Unreachable { user: String, problems: String },
}

/// Decides how scripts run; `runner_uid` is the runner's effective uid.
pub fn decide(
    runner_uid: u32,
    setting: Option<&str>,
    catalog: &Catalog,
) -> Result<ScriptMode, ScriptUserError> {
    let user = setting.map(lookup).transpose()?;
    if runner_uid != 0 {
        return match user {
            Some(user) if user.uid != runner_uid => {
                Err(ScriptUserError::NotRoot(user.name, runner_uid))
            }
            _ => Ok(ScriptMode::RunnerUser),
        };
    }
    match user {
        Some(user) if user.uid == 0 => Ok(ScriptMode::RootAccepted),
        Some(user) => {
            check_reachable(&user, catalog)?;
            Ok(ScriptMode::Switched(user))
        }
        None => {
            let local = local_scripts(catalog);
            if local.is_empty() {
                Ok(ScriptMode::NoLocalRunbooks)
            } else {
                let names: Vec<&str> = local.iter().map(|(name, _)| name.as_str()).collect();
                Err(ScriptUserError::RootWithoutUser(names.join(", ")))
            }
        }
    }
}

/// A user name, or a uid (a uid without an entry in the user database runs with gid = uid).
fn lookup(setting: &str) -> Result<ScriptUser, ScriptUserError> {
    let setting = setting.trim();
    let lookup_error = |e: nix::Error| ScriptUserError::Lookup(setting.to_owned(), e.to_string());
    if let Ok(uid) = setting.parse::<u32>() {
        return Ok(
            match User::from_uid(Uid::from_raw(uid)).map_err(lookup_error)? {
                Some(user) => from_entry(user),
                None => ScriptUser {
                    name: setting.to_owned(),
                    uid,
                    gid: uid,
                },
            },
        );
    }
    User::from_name(setting)
        .map_err(lookup_error)?
        .map(from_entry)
        .ok_or_else(|| ScriptUserError::NoSuchUser(setting.to_owned()))
}

fn from_entry(user: User) -> ScriptUser {
    ScriptUser {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    }
}

/// Every local runbook's name and resolved script path.
fn local_scripts(catalog: &Catalog) -> Vec<(String, PathBuf)> {
    catalog
        .runbooks
        .values()
        .filter(|rb| rb.executor == ExecutorKind::Local)
        .map(|rb| (rb.name.clone(), PathBuf::from(catalog.resolve_target(rb))))
        .collect()
}

/// Fails naming every local script `user` cannot reach (search every directory above it) and
/// run (read and execute it).
fn check_reachable(user: &ScriptUser, catalog: &Catalog) -> Result<(), ScriptUserError> {
    let problems: Vec<String> = local_scripts(catalog)
        .into_iter()
        .filter_map(|(name, path)| {
            reachable(&path, user.uid, user.gid)
                .err()
                .map(|why| format!("{name} ({}: {why})", path.display()))
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ScriptUserError::Unreachable {
            user: user.name.clone(),
            problems: problems.join("; "),
        })
    }
}

/// Whether `uid`/`gid` (and no supplementary group: the switch drops them) can search every
/// directory above `path` and read and execute the file, by mode bits.
pub fn reachable(path: &Path, uid: u32, gid: u32) -> Result<(), String> {
    let path = std::path::absolute(path).map_err(|e| e.to_string())?;
    let mut dirs: Vec<&Path> = path.ancestors().skip(1).collect();
    dirs.reverse();
    for dir in dirs {
        let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if !allows(meta.mode(), meta.uid(), meta.gid(), uid, gid, EXECUTE) {
            return Err(format!("cannot enter directory {}", dir.display()));
        }
    }
    let meta = std::fs::metadata(&path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a file".into());
    }
    if !allows(
        meta.mode(),
        meta.uid(),
        meta.gid(),
        uid,
        gid,
        READ | EXECUTE,
    ) {
        return Err("cannot read and execute the file".into());
    }
    Ok(())
}

const READ: u32 = 0o4;
const EXECUTE: u32 = 0o1;

/// The permission class that applies (owner, else group, else others) grants all of `want`.
fn allows(mode: u32, owner: u32, group: u32, uid: u32, gid: u32, want: u32) -> bool {
    if uid == 0 {
        return true;
    }
    let bits = if owner == uid {
        mode >> 6
    } else if group == gid {
        mode >> 3
    } else {
        mode
    };
    bits & want == want
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_class_that_applies_decides() {
        // Owner bits apply to the owner even when others may do more.
        assert!(!allows(0o075, 5, 6, 5, 9, EXECUTE));
        assert!(allows(0o710, 5, 6, 5, 9, EXECUTE));
        assert!(allows(0o750, 1, 6, 5, 6, READ | EXECUTE));
        assert!(!allows(0o740, 1, 6, 5, 6, READ | EXECUTE));
        assert!(allows(0o755, 1, 2, 5, 6, READ | EXECUTE));
        assert!(!allows(0o751, 1, 2, 5, 6, READ | EXECUTE));
        assert!(
            allows(0o000, 1, 2, 0, 0, READ | EXECUTE),
            "root reaches all"
        );
    }

    fn catalog(dir: &Path, body: &str) -> Catalog {
        let script = dir.join("hello.sh");
        if !script.exists() {
            std::fs::write(&script, "#!/bin/sh\n").unwrap();
        }
        let path = dir.join("runbooks.toml");
        std::fs::write(&path, body).unwrap();
        Catalog::load(&path).unwrap()
    }

    const LOCAL: &str = "[runbooks.hello]\ndescription = \"x\"\nexecutor = \"local\"\ntarget = \"hello.sh\"\nallow = { users = [\"U012AB3CD\"] }\n";
    const AUTOMATION: &str = "[runbooks.far]\ndescription = \"x\"\nexecutor = \"automation\"\ntarget = \"Far\"\nallow = { users = [\"U012AB3CD\"] }\n";

    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("chatops-user-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_root_runner_needs_a_script_user_for_local_runbooks() {
        let dir = scratch();
        let local = catalog(&dir, LOCAL);
        let e = decide(0, None, &local).unwrap_err();
        assert_eq!(e, ScriptUserError::RootWithoutUser("hello".into()));
        assert!(e.to_string().contains("CHATOPS_SCRIPT_USER"), "{e}");
        assert_eq!(
            decide(0, Some("root"), &local).unwrap(),
            ScriptMode::RootAccepted
        );
        assert_eq!(
            decide(0, Some("0"), &local).unwrap(),
            ScriptMode::RootAccepted
        );
        let remote = catalog(&dir, AUTOMATION);
        assert_eq!(
            decide(0, None, &remote).unwrap(),
            ScriptMode::NoLocalRunbooks
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_runner_that_is_not_root_runs_scripts_as_itself() {
        let dir = scratch();
        let local = catalog(&dir, LOCAL);
        assert_eq!(decide(1000, None, &local).unwrap(), ScriptMode::RunnerUser);
        assert_eq!(
            decide(1000, Some("1000"), &local).unwrap(),
            ScriptMode::RunnerUser
        );
        assert!(matches!(
            decide(1000, Some("root"), &local),
            Err(ScriptUserError::NotRoot(..))
        ));
        assert_eq!(
            decide(0, Some("no-such-user-here"), &local),
            Err(ScriptUserError::NoSuchUser("no-such-user-here".into()))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unreachable_scripts_are_named() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = scratch();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let script = dir.join("hello.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let local = catalog(&dir, LOCAL);
        let user = ScriptUser {
            name: "someone".into(),
            uid: 54321,
            gid: 54321,
        };
        let e = check_reachable(&user, &local).unwrap_err().to_string();
        assert!(e.contains("hello ("), "{e}");
        assert!(e.contains("cannot enter directory"), "{e}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(check_reachable(&user, &local), Ok(()));
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
        let e = check_reachable(&user, &local).unwrap_err().to_string();
        assert!(e.contains("cannot read and execute"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
