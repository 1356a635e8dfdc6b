//! A script's `HOME`: a fresh empty directory per job, owned by the script's user and removed
//! when the job is over (also when the runner drops the job), so no script sees the runner's
//! home or what an earlier job left there.
//!
//! The homes of one runner process are in a directory of its own ([`Homes`]), locked (`flock`
//! on the directory) for as long as the process lives: a runner killed with SIGKILL cannot
//! remove its jobs' homes, and the next runner to start on the machine does, as nobody holds
//! their lock any more.

use std::fs::File;
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// The start of a [`Homes`] directory's name.
const HOMES_PREFIX: &str = "chatops-homes-";
/// A [`Homes`] directory's name until it is locked.
const STAGING_PREFIX: &str = "chatops-staging-";

/// One runner's directory of job homes: `chatops-homes-<random>` in the temp directory, mode
/// 0711 (a script's user may reach its home in it, nobody else may list it or add to it),
/// removed on drop.
#[derive(Debug)]
pub struct Homes {
    dir: PathBuf,
    /// The directory, open and locked for the process's life. Opened close-on-exec, so a
    /// script never holds it; and a script's user cannot open it (no read permission).
    _lock: File,
}

impl Homes {
    /// Makes this process's directory in the temp directory.
    pub fn claim() -> std::io::Result<Homes> {
        Self::claim_in(&std::env::temp_dir())
    }

    fn claim_in(base: &Path) -> std::io::Result<Homes> {
        let name = Uuid::new_v4().simple();
        let staged = base.join(format!("{STAGING_PREFIX}{name}"));
        std::fs::DirBuilder::new().mode(0o711).create(&staged)?;
        // Locked before it has the name a sweep looks for: a sweep never finds it unlocked.
        let claimed = || {
            // Whatever the umask: the script's user must be able to pass through.
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o711))?;
            let lock = File::open(&staged)?;
            lock.lock()?;
            let dir = base.join(format!("{HOMES_PREFIX}{name}"));
            std::fs::rename(&staged, &dir)?;
            Ok(Homes { dir, _lock: lock })
        };
        claimed().inspect_err(|_| {
            let _ = std::fs::remove_dir(&staged);
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Removes the homes of runners that are gone: every other homes directory next to this
    /// one that this process's user owns and whose lock nobody holds. Answers how many. It
    /// blocks (a home may be a large tree): call it off the async threads.
    pub fn sweep_left(&self) -> usize {
        let Some(base) = self.dir.parent() else {
            return 0;
        };
        let Ok(entries) = std::fs::read_dir(base) else {
            return 0;
        };
        let me = nix::unistd::geteuid().as_raw();
        let mut removed = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            let ours = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(HOMES_PREFIX));
            // Only directories this user made: never walk a tree someone else could have put
            // there for a privileged runner to change.
            let owned = std::fs::symlink_metadata(&path)
                .is_ok_and(|m| m.is_dir() && m.uid() == me && m.mode() & 0o7777 == 0o711);
            if !ours || !owned || path == self.dir {
                continue;
            }
            let Ok(lock) = File::open(&path) else {
                continue;
            };
            if lock.try_lock().is_ok() {
                match remove_tree(&path) {
                    Ok(()) => removed += 1,
                    Err(e) => {
                        tracing::warn!(error = %e, dir = %path.display(), "could not remove the homes a stopped runner left");
                    }
                }
            }
        }
        removed
    }
}

impl Drop for Homes {
    fn drop(&mut self) {
        if let Err(e) = remove_tree(&self.dir) {
            tracing::warn!(error = %e, dir = %self.dir.display(), "could not remove the scripts' homes");
        }
    }
}

/// The directory; removed on drop.
#[derive(Debug)]
pub(super) struct JobHome(PathBuf);

impl JobHome {
    /// Creates `chatops-home-<job id>-<random>` in `parent`, mode 0700, owned by `owner` (uid,
    /// gid) when given. The random part keeps the name unguessable, so nobody can put something
    /// in its place beforehand.
    pub(super) fn create(
        parent: &Path,
        job_id: &Uuid,
        owner: Option<(u32, u32)>,
    ) -> std::io::Result<JobHome> {
        let path = parent.join(format!(
            "chatops-home-{}-{}",
            job_id.simple(),
            Uuid::new_v4().simple()
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        let home = JobHome(path);
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&home.0, Some(uid), Some(gid))?;
        }
        Ok(home)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }

    /// Removes it off the async threads (a script may leave a large tree: a clone, a cache).
    pub(super) async fn remove(self) {
        let _ = tokio::task::spawn_blocking(move || drop(self)).await;
    }
}

impl Drop for JobHome {
    fn drop(&mut self) {
        if let Err(e) = remove_tree(&self.0) {
            tracing::warn!(error = %e, home = %self.0.display(), "could not remove a script's HOME");
        }
    }
}

/// Removes `dir` and all in it; gone already is fine.
fn remove_tree(dir: &Path) -> std::io::Result<()> {
    let mut removed = std::fs::remove_dir_all(dir);
    if removed
        .as_ref()
        .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
    {
        // A directory the script made read-only (`chmod -R a-w`, Go's module cache): a runner
        // that is not root cannot empty it until it is writable again. The script ran as the
        // runner's user then, so its directories are the runner's to change.
        make_writable(dir);
        removed = std::fs::remove_dir_all(dir);
    }
    match removed {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Gives the owner full access to `dir` and every directory below it, without following
/// symbolic links: each directory is opened as such (`O_NOFOLLOW`, `O_DIRECTORY`) and changed
/// through that handle, so one swapped for a link meanwhile is not changed. Best effort: what
/// cannot be changed stays as it is.
fn make_writable(dir: &Path) {
    let flags = nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_DIRECTORY;
    let Ok(opened) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits())
        .open(dir)
    else {
        return;
    };
    let Ok(meta) = opened.metadata() else {
        return;
    };
    let mut permissions = meta.permissions();
    permissions.set_mode(permissions.mode() | 0o700);
    let _ = opened.set_permissions(permissions);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            make_writable(&entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory for one test's homes directories, removed at the end.
    struct Base(PathBuf);

    impl Base {
        fn new() -> Base {
            let dir = std::env::temp_dir().join(format!("chatops-sweep-test-{}", Uuid::new_v4()));
            std::fs::create_dir(&dir).unwrap();
            Base(dir)
        }

        /// What a runner killed with SIGKILL leaves: its homes directory, unlocked, and a
        /// job's home in it, with a read-only directory the script made.
        fn left_by_a_killed_runner(&self) -> PathBuf {
            let dir = self
                .0
                .join(format!("{HOMES_PREFIX}{}", Uuid::new_v4().simple()));
            std::fs::DirBuilder::new().mode(0o711).create(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();
            let home = JobHome::create(&dir, &Uuid::new_v4(), None).unwrap();
            let cache = home.path().join("cache");
            std::fs::create_dir(&cache).unwrap();
            std::fs::write(cache.join("token"), "left").unwrap();
            std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o500)).unwrap();
            std::mem::forget(home);
            dir
        }
    }

    impl Drop for Base {
        fn drop(&mut self) {
            make_writable(&self.0);
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_runner_sweeps_the_homes_of_killed_runners_and_no_others() {
        let base = Base::new();
        let live = Homes::claim_in(&base.0).unwrap();
        let live_home = JobHome::create(live.path(), &Uuid::new_v4(), None).unwrap();
        let dead = base.left_by_a_killed_runner();
        let other_dead = base.left_by_a_killed_runner();
        // Being made (not locked yet), and not made by a runner (another mode).
        let unlocked = base.0.join(format!("{STAGING_PREFIX}new"));
        std::fs::DirBuilder::new()
            .mode(0o711)
            .create(&unlocked)
            .unwrap();
        std::fs::set_permissions(&unlocked, std::fs::Permissions::from_mode(0o711)).unwrap();
        let foreign = base.0.join(format!("{HOMES_PREFIX}other"));
        std::fs::create_dir(&foreign).unwrap();
        std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o755)).unwrap();

        let me = Homes::claim_in(&base.0).unwrap();
        assert_eq!(std::fs::metadata(me.path()).unwrap().mode() & 0o7777, 0o711);
        assert_eq!(me.sweep_left(), 2);
        assert!(!dead.exists() && !other_dead.exists());
        assert!(live_home.path().is_dir(), "a live runner's homes stay");
        assert!(me.path().is_dir() && unlocked.is_dir() && foreign.is_dir());
        assert_eq!(me.sweep_left(), 0);

        let live_dir = live.path().to_owned();
        drop(live_home);
        drop(live);
        assert!(!live_dir.exists(), "a runner's homes go with it");
    }
}
