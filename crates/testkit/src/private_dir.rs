//! The demo's folder of generated files (the TLS key, certificates, config and policy): readable
//! only by the user who runs the demo (folder 0700, files 0600), and removed when the demo ends,
//! however it ends (its `Drop` runs on Ctrl-C and SIGTERM too, see `demo::run`).

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh private folder under the system's temp dir, removed on drop.
#[derive(Debug)]
pub struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    /// Creates `scopegate-demo-<pid>-<nanos>`. The folder must not exist yet: a path someone
    /// else created in the shared temp dir is refused rather than written into.
    pub fn create() -> std::io::Result<PrivateDir> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("scopegate-demo-{}-{nanos}", std::process::id()));
        DirBuilder::new().mode(0o700).create(&path)?;
        Ok(PrivateDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), %error, "cannot remove the demo's files");
        }
    }
}

/// Writes a file only its owner can read: the demo's files include a private key.
pub fn write_private(path: &Path, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_ref())
}
