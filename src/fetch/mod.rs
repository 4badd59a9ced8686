//! Models from the network, and graphs to it.
//!
//! A model argument may be a local path or an `hf://OWNER/REPO/FILE.gguf`
//! reference ([`HfRef`]). [`resolve_model`] turns either into a local path,
//! downloading into the standard Hugging Face cache with Hugging Face's own
//! client ([`hf`]); [`remote`] reads only a remote file's header and tensor
//! index through HTTP range requests, for `ggviz inspect`. [`graphistry`]
//! uploads the graphs a page shows, when the user asks for it. Nothing here
//! runs unless a reference or a flag asks for the network.

pub mod graphistry;
pub mod hf;
pub mod remote;

use std::path::{Path, PathBuf};

pub use hf::{HfRef, HfSettings};

/// The scheme of a Hugging Face model reference.
pub const HF_SCHEME: &str = "hf://";

/// An error while resolving, downloading or reading a remote model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The `hf://` reference is malformed.
    #[error("`{reference}` is not a valid model reference: {reason}")]
    BadReference { reference: String, reason: String },
    /// The server answered with an error status.
    #[error("{url}: HTTP {status}: {hint}")]
    Http {
        url: String,
        status: u16,
        hint: String,
    },
    /// The request failed before a status came back (connection, TLS, a
    /// body cut short).
    #[error("{url}: {action}")]
    Request {
        url: String,
        action: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server's answer lacks something the download needs.
    #[error("{url}: {reason}")]
    Protocol { url: String, reason: String },
    /// A downloaded file does not match what the server announced; it was
    /// removed from the cache.
    #[error("{path}: {reason}; the file was removed from the cache")]
    Corrupt { path: PathBuf, reason: String },
    /// A local file or folder could not be read or written.
    #[error("{path}: {action}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The remote file's header is not valid GGUF.
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
}

impl FetchError {
    /// The HTTP status of an error answer, if that is what this is.
    pub fn status(&self) -> Option<u16> {
        match self {
            FetchError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Whether a model argument is a Hugging Face reference.
pub fn is_remote(model: &str) -> bool {
    model.starts_with(HF_SCHEME)
}

/// A model argument as a local path: a path is returned unchanged, an
/// `hf://` reference is downloaded (or found in the Hugging Face cache) with
/// the settings of the environment (`HF_HOME`, `HF_HUB_CACHE`,
/// `HF_ENDPOINT`, `HF_TOKEN`), showing a progress bar on a terminal.
pub fn resolve_model(model: &str) -> Result<PathBuf, FetchError> {
    if !is_remote(model) {
        return Ok(PathBuf::from(model));
    }
    let reference = HfRef::parse(model)?;
    let settings = HfSettings::from_env();
    let progress = indicatif::ProgressBar::new(0);
    let path = hf::download(&reference, &settings, &progress);
    progress.finish_and_clear();
    path
}

/// [`resolve_model`] for a path argument (clap gives paths).
pub fn resolve_model_path(model: &Path) -> Result<PathBuf, FetchError> {
    match model.to_str() {
        Some(s) if is_remote(s) => resolve_model(s),
        _ => Ok(model.to_path_buf()),
    }
}

/// A single-threaded tokio runtime for one blocking call into async code.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, FetchError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| FetchError::Io {
            path: PathBuf::from("<tokio runtime>"),
            action: "cannot start the async runtime",
            source,
        })
}

/// What an error status most likely means, for the message.
pub(crate) fn status_hint(status: u16, what: &str) -> String {
    match status {
        401 => format!(
            "{what} needs authentication: set HF_TOKEN to a token with access (or log in with \
             `hf auth login`)"
        ),
        403 => format!("{what}: access denied (a gated repository? accept its terms first)"),
        404 => format!("{what} does not exist (check the owner, repository, file and revision)"),
        416 => format!("{what}: the server refused the byte range"),
        s if s >= 500 => format!("{what}: the server failed; try again later"),
        _ => format!("{what}: unexpected answer"),
    }
}
