//! The theme: templates, CSS and JavaScript, embedded and overridable.
//!
//! The default theme is compiled into the binary (rust-embed), so the binary
//! alone builds a site. `--theme DIR` overrides it file by file: a lookup
//! tries the user's folder first, then the embedded default, as mdBook and
//! zola do. Listing a folder merges both, so a user can add a view by
//! dropping a file into `js/views/`.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use rust_embed::RustEmbed;

use super::SiteError;

#[derive(RustEmbed)]
#[folder = "themes/default/"]
struct DefaultTheme;

/// A theme: an optional user folder over the embedded default.
#[derive(Debug, Clone, Default)]
pub struct Theme {
    user: Option<PathBuf>,
}

/// Checks that `path` is relative and stays inside the theme.
fn checked(path: &str) -> Result<&Path, SiteError> {
    let p = Path::new(path);
    if p.components().all(|c| matches!(c, Component::Normal(_))) && !path.is_empty() {
        Ok(p)
    } else {
        Err(SiteError::ThemePath(path.to_owned()))
    }
}

impl Theme {
    /// The default theme, overridden by the files in `user` if given.
    pub fn new(user: Option<&Path>) -> Result<Theme, SiteError> {
        if let Some(dir) = user
            && !dir.is_dir()
        {
            return Err(SiteError::ThemeDir(dir.to_owned()));
        }
        Ok(Theme {
            user: user.map(Path::to_owned),
        })
    }

    /// The bytes of the theme file `path` (`templates/base.html`).
    pub fn read(&self, path: &str) -> Result<Cow<'static, [u8]>, SiteError> {
        let rel = checked(path)?;
        if let Some(dir) = &self.user {
            let p = dir.join(rel);
            if p.is_file() {
                return std::fs::read(&p).map(Cow::Owned).map_err(SiteError::io(p));
            }
        }
        DefaultTheme::get(path)
            .map(|f| f.data)
            .ok_or_else(|| SiteError::ThemeFileMissing(path.to_owned()))
    }

    /// The theme file `path` as text.
    pub fn read_text(&self, path: &str) -> Result<String, SiteError> {
        String::from_utf8(self.read(path)?.into_owned()).map_err(|_| SiteError::ThemeEncoding {
            path: path.to_owned(),
        })
    }

    /// The files directly in folder `dir` of the user's theme and the
    /// default, merged and sorted by path.
    pub fn list(&self, dir: &str) -> Result<Vec<String>, SiteError> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        checked(dir.trim_end_matches('/'))?;
        let mut files: BTreeSet<String> = DefaultTheme::iter()
            .filter(|p| {
                p.strip_prefix(&prefix)
                    .is_some_and(|rest| !rest.contains('/'))
            })
            .map(Cow::into_owned)
            .collect();
        if let Some(user) = &self.user {
            let folder = user.join(dir);
            if folder.is_dir() {
                for entry in std::fs::read_dir(&folder).map_err(SiteError::io(&folder))? {
                    let entry = entry.map_err(SiteError::io(&folder))?;
                    if entry.path().is_file()
                        && let Some(name) = entry.file_name().to_str()
                    {
                        files.insert(format!("{prefix}{name}"));
                    }
                }
            }
        }
        Ok(files.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_files_override_and_extend_the_default() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("css")).unwrap();
        std::fs::create_dir_all(dir.path().join("js/views")).unwrap();
        std::fs::write(dir.path().join("css/base.css"), "body{color:red}").unwrap();
        std::fs::write(dir.path().join("js/views/zz-extra.js"), "1").unwrap();
        let t = Theme::new(Some(dir.path())).unwrap();
        assert_eq!(t.read_text("css/base.css").unwrap(), "body{color:red}");
        // Files the user did not override still come from the default.
        assert!(
            t.read_text("templates/base.html")
                .unwrap()
                .contains("<html")
        );
        let views = t.list("js/views").unwrap();
        assert!(views.contains(&"js/views/architecture.js".to_owned()));
        assert_eq!(
            views.last().map(String::as_str),
            Some("js/views/zz-extra.js")
        );
    }

    #[test]
    fn paths_cannot_leave_the_theme() {
        let t = Theme::default();
        assert!(matches!(
            t.read("../Cargo.toml"),
            Err(SiteError::ThemePath(_))
        ));
        assert!(matches!(
            t.read("/etc/passwd"),
            Err(SiteError::ThemePath(_))
        ));
        assert!(matches!(
            t.read("nope.css"),
            Err(SiteError::ThemeFileMissing(_))
        ));
    }
}
