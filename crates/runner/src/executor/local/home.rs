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
}

impl Drop for JobHome {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, home = %self.0.display(), "could not remove a script's HOME");
        }
    }
}
