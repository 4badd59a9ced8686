//! Writing the site atomically.
//!
//! The site is written into a temporary folder beside the target and swapped
//! in only when every page rendered, so a failed build leaves the previous
//! site as it was. The swap is two renames within one folder (old site
//! aside, new site in, old site removed); if the second fails, the old site
//! is put back. An existing target is replaced only if it carries the
//! marker file ggviz writes, so `-o ~` cannot wipe a home folder.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::SiteError;

/// The file that marks a folder as a ggviz site.
pub const MARKER: &str = ".ggviz-site";

/// A site being written.
#[derive(Debug)]
pub struct Staging {
    dir: TempDir,
    target: PathBuf,
}

fn is_replaceable(target: &Path) -> Result<bool, SiteError> {
    if !target.exists() {
        return Ok(true);
    }
    if !target.is_dir() {
        return Ok(false);
    }
    if target.join(MARKER).is_file() {
        return Ok(true);
    }
    let mut entries = std::fs::read_dir(target).map_err(SiteError::io(target))?;
    Ok(entries.next().is_none())
}

/// Splits `target` into its parent folder (created if missing) and name.
fn parent_and_name(target: &Path) -> Result<(PathBuf, String), SiteError> {
    let abs = if target.is_absolute() {
        target.to_owned()
    } else {
        std::env::current_dir()
            .map_err(SiteError::io("."))?
            .join(target)
    };
    let name = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| SiteError::NotASite(target.to_owned()))?;
    let parent = abs
        .parent()
        .map(Path::to_owned)
        .ok_or_else(|| SiteError::NotASite(target.to_owned()))?;
    std::fs::create_dir_all(&parent).map_err(SiteError::io(&parent))?;
    Ok((parent, name))
}

impl Staging {
    /// Starts a site that will replace `target`.
    pub fn new(target: &Path) -> Result<Staging, SiteError> {
        if !is_replaceable(target)? {
            return Err(SiteError::NotASite(target.to_owned()));
        }
        let (parent, name) = parent_and_name(target)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!(".{name}.building-"))
            .tempdir_in(&parent)
            .map_err(SiteError::io(&parent))?;
        Ok(Staging {
            dir,
            target: parent.join(name),
        })
    }

    /// The folder being written.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `bytes` at `rel` (a `/`-separated path) inside the site.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> Result<(), SiteError> {
        let path = self.dir.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(SiteError::io(parent))?;
        }
        std::fs::write(&path, bytes).map_err(SiteError::io(path))
    }

    /// Swaps the new site in; returns where it is.
    pub fn commit(self) -> Result<PathBuf, SiteError> {
        self.write(
            MARKER,
            b"Written by ggviz; this folder is replaced on the next build.\n",
        )?;
        let target = self.target.clone();
        let parent = target.parent().map(Path::to_owned).unwrap_or_default();
        // Still checked here: the target may have appeared during the build.
        if !is_replaceable(&target)? {
            return Err(SiteError::NotASite(target));
        }
        let staged = self.dir.keep();
        if target.exists() {
            let old = tempfile::Builder::new()
                .prefix(".ggviz-old-")
                .tempdir_in(&parent)
                .map_err(SiteError::io(&parent))?;
            let aside = old.path().join("site");
            std::fs::rename(&target, &aside).map_err(SiteError::io(&target))?;
            if let Err(e) = std::fs::rename(&staged, &target) {
                // Put the old site back before reporting.
                let _ = std::fs::rename(&aside, &target);
                let _ = std::fs::remove_dir_all(&staged);
                return Err(SiteError::Io {
                    path: target,
                    source: e,
                });
            }
            // `old` removes the previous site when dropped.
            drop(old);
        } else if let Err(e) = std::fs::rename(&staged, &target) {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(SiteError::Io {
                path: target,
                source: e,
            });
        }
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_replaces_a_site_and_leaves_no_temporary_folders() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("site");
        let s = Staging::new(&target).unwrap();
        s.write("a/index.html", b"one").unwrap();
        s.commit().unwrap();
        let s = Staging::new(&target).unwrap();
        s.write("b.html", b"two").unwrap();
        s.commit().unwrap();
        assert!(!target.join("a/index.html").exists());
        assert_eq!(std::fs::read(target.join("b.html")).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["site"]);
    }

    #[test]
    fn dropping_a_staging_leaves_the_old_site() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("site");
        let s = Staging::new(&target).unwrap();
        s.write("index.html", b"old").unwrap();
        s.commit().unwrap();
        let s = Staging::new(&target).unwrap();
        s.write("index.html", b"new").unwrap();
        drop(s);
        assert_eq!(std::fs::read(target.join("index.html")).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_folder_that_is_not_a_site_is_never_replaced() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("precious.txt"), b"keep").unwrap();
        let err = Staging::new(root.path()).unwrap_err();
        assert!(matches!(err, SiteError::NotASite(_)));
        assert!(root.path().join("precious.txt").exists());
    }
}
