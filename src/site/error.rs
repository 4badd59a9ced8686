//! Why a site could not be built.

use std::path::PathBuf;

use crate::anatomy::AnatomyError;
use crate::gguf::GgufError;

/// A failed site build. The previous site, if any, is left as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SiteError {
    #[error("cannot read the model {}", path.display())]
    Model {
        path: PathBuf,
        #[source]
        source: GgufError,
    },
    #[error("cannot describe the model in {}", path.display())]
    Anatomy {
        path: PathBuf,
        #[source]
        source: AnatomyError,
    },
    #[error("theme file `{0}` is neither in the theme folder nor in the default theme")]
    ThemeFileMissing(String),
    #[error("theme folder {} is not a directory", .0.display())]
    ThemeDir(PathBuf),
    #[error("theme path `{0}` leaves the theme folder")]
    ThemePath(String),
    #[error("theme file `{path}` is not UTF-8")]
    ThemeEncoding { path: String },
    #[error("cannot render template `{template}`")]
    Template {
        template: String,
        #[source]
        source: minijinja::Error,
    },
    #[error(
        "template `{template}` must emit the CSP placeholder `{{{{ csp() }}}}` exactly once, in <head> (found {found})"
    )]
    Csp { template: String, found: usize },
    #[error("content folder {} is not a directory", .0.display())]
    ContentDir(PathBuf),
    #[error("content page {path}: {message}")]
    Content { path: String, message: String },
    #[error("refusing to replace {}: it is not empty and has no .ggviz-site marker, so it may not be a ggviz site; remove it or choose another output folder", .0.display())]
    NotASite(PathBuf),
    #[error("I/O error on {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serialise the report")]
    Json(#[from] serde_json::Error),
}

impl SiteError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SiteError {
        let path = path.into();
        move |source| SiteError::Io { path, source }
    }
}
