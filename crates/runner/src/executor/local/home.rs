//! A script's `HOME`: a fresh empty directory per job, owned by the script's user and removed
//! when the job is over (also when the runner drops the job), so no script sees the runner's
//! home or what an earlier job left there.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// The directory; removed on drop.
#[derive(Debug)]
pub(super) struct JobHome(PathBuf);

impl JobHome {
    /// Creates `chatops-home-<job id>-<random>` in the temp directory, mode 0700, owned by
    /// `owner` (uid, gid) when given. The random part keeps the name unguessable, so nobody can
    /// put something in its place beforehand.
    pub(super) fn create(job_id: &Uuid, owner: Option<(u32, u32)>) -> std::io::Result<JobHome> {
        let path = std::env::temp_dir().join(format!(
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
        let mut removed = std::fs::remove_dir_all(&self.0);
        if removed
            .as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
        {
            // A directory the script made read-only (`chmod -R a-w`, Go's module cache): a
            // runner that is not root cannot empty it until it is writable again. The script
            // ran as the runner's user then, so its directories are the runner's to change.
            make_writable(&self.0);
            removed = std::fs::remove_dir_all(&self.0);
        }
        if let Err(e) = removed
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, home = %self.0.display(), "could not remove a script's HOME");
        }
    }
}

/// Gives the owner full access to `dir` and every directory below it, without following
/// symbolic links. Best effort: what cannot be changed stays as it is.
fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let mut permissions = meta.permissions();
    permissions.set_mode(permissions.mode() | 0o700);
    let _ = std::fs::set_permissions(dir, permissions);
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            make_writable(&entry.path());
        }
    }
}
