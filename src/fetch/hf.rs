//! `hf://OWNER/REPO/FILE.gguf[@REVISION]` references and their download.
//!
//! Downloads go through Hugging Face's own Rust client (`hf-hub`) into the
//! standard cache layout (`models--OWNER--REPO/{blobs,snapshots,refs}`), so
//! files fetched by `huggingface-cli`, llama.cpp or Python are reused and
//! nothing is fetched twice. The client is given its settings explicitly
//! ([`HfSettings`]), read from the environment by ggviz.

use std::io::Read;
use std::path::{Path, PathBuf};

use hf_hub::api::tokio::{ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};
use sha2::{Digest, Sha256};

use super::{FetchError, HF_SCHEME, runtime, status_hint};
use crate::gguf::split::parse_split_name;

/// The public Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// The revision used when a reference names none.
pub const DEFAULT_REVISION: &str = "main";

/// A parsed `hf://OWNER/REPO/PATH/FILE.gguf[@REVISION]` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfRef {
    /// `OWNER/REPO`.
    pub repo: String,
    /// The file's path inside the repository (may contain folders).
    pub file: String,
    /// A branch, tag or commit (`main` when absent).
    pub revision: String,
}

impl HfRef {
    /// Parses a reference, naming what is wrong when it is malformed.
    pub fn parse(reference: &str) -> Result<HfRef, FetchError> {
        let bad = |reason: &str| FetchError::BadReference {
            reference: reference.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = reference
            .strip_prefix(HF_SCHEME)
            .ok_or_else(|| bad("it must start with hf://"))?;
        let (path, revision) = match rest.find(".gguf@") {
            Some(i) => (&rest[..i + 5], &rest[i + 6..]),
            None => (rest, DEFAULT_REVISION),
        };
        if revision.is_empty() {
            return Err(bad("the revision after `@` is empty"));
        }
        if revision
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '\\'))
            || revision.split('/').any(|s| s.is_empty() || s == "..")
        {
            return Err(bad("the revision must be a branch, tag or commit name"));
        }
        let mut parts = path.splitn(3, '/');
        let owner = parts.next().unwrap_or_default();
        let repo = parts.next().unwrap_or_default();
        let file = parts.next().unwrap_or_default();
        if owner.is_empty() || repo.is_empty() || file.is_empty() {
            return Err(bad("expected hf://OWNER/REPO/FILE.gguf[@REVISION]"));
        }
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars().all(|c| {
                    !c.is_whitespace() && !c.is_control() && !matches!(c, '?' | '#' | '\\' | '@')
                })
        };
        if !segment_ok(owner) || !segment_ok(repo) {
            return Err(bad(
                "the owner and repository must be plain names (no spaces, `..`, `?`, `#`, `@`)",
            ));
        }
        if !file.split('/').all(segment_ok) {
            return Err(bad(
                "the file path has an empty, `.` or `..` segment or a character a URL path \
                 cannot hold",
            ));
        }
        if !file.ends_with(".gguf") {
            return Err(bad("the file must be a .gguf file"));
        }
        Ok(HfRef {
            repo: format!("{owner}/{repo}"),
            file: file.to_owned(),
            revision: revision.to_owned(),
        })
    }

    /// Every file of the model: each shard of a split model (named
    /// `<prefix>-00001-of-0000N.gguf`), else the file itself.
    pub fn files(&self) -> Vec<String> {
        match parse_split_name(Path::new(&self.file)) {
            Some((prefix, _, count)) => {
                let dir = self.file.rsplit_once('/').map(|(d, _)| d);
                (1..=count)
                    .map(|n| {
                        // `prefix` is the file name's, without the folder.
                        let name = format!("{prefix}-{n:05}-of-{count:05}.gguf");
                        match dir {
                            Some(d) => format!("{d}/{name}"),
                            None => name,
                        }
                    })
                    .collect()
            }
            None => vec![self.file.clone()],
        }
    }

    /// The URL of `file` of this repository at this revision.
    pub fn url(&self, endpoint: &str, file: &str) -> String {
        format!(
            "{}/{}/resolve/{}/{}",
            endpoint.trim_end_matches('/'),
            self.repo,
            self.revision.replace('/', "%2F"),
            file
        )
    }
}

impl std::fmt::Display for HfRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{HF_SCHEME}{}/{}", self.repo, self.file)?;
        if self.revision != DEFAULT_REVISION {
            write!(f, "@{}", self.revision)?;
        }
        Ok(())
    }
}

/// Where the Hub is and who asks: the `HF_*` variables, read by ggviz and
/// passed to the client explicitly.
#[derive(Clone)]
pub struct HfSettings {
    /// The Hub's base URL (`HF_ENDPOINT`).
    pub endpoint: String,
    /// The hub cache folder (`HF_HUB_CACHE`, else `HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub`).
    pub cache_dir: PathBuf,
    /// The access token (`HF_TOKEN`, else the token file `HF_HOME/token`).
    pub token: Option<String>,
}

impl std::fmt::Debug for HfSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfSettings")
            .field("endpoint", &self.endpoint)
            .field("cache_dir", &self.cache_dir)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl HfSettings {
    /// The settings of this process's environment.
    pub fn from_env() -> HfSettings {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// The settings given by `var` (an environment lookup), with the
    /// defaults and precedence of Hugging Face's Python library.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> HfSettings {
        let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            let cache = var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|h| Path::new(&h).join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"));
            cache.join("huggingface")
        });
        let cache_dir = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("hub"));
        let token = var("HF_TOKEN").or_else(|| {
            let path = var("HF_TOKEN_PATH")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join("token"));
            std::fs::read_to_string(path)
                .ok()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
        });
        HfSettings {
            endpoint: var("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned()),
            cache_dir,
            token,
        }
    }
}

/// Reports download progress to an indicatif bar.
#[derive(Clone)]
struct Bar(indicatif::ProgressBar);

impl hf_hub::api::tokio::Progress for Bar {
    async fn init(&mut self, size: usize, filename: &str) {
        let style = indicatif::ProgressStyle::with_template(
            "{msg} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ({eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        self.0.set_style(style);
        self.0.reset();
        self.0.set_length(size as u64);
        self.0.set_message(format!("downloading {filename}"));
    }
    async fn update(&mut self, size: usize) {
        self.0.inc(size as u64);
    }
    async fn finish(&mut self) {}
}

/// Downloads every file of the model `reference` names (every shard of a
/// split model) into the cache, or finds them there, and returns the local
/// path of the file it names. A file already in the cache costs no request.
pub fn download(
    reference: &HfRef,
    settings: &HfSettings,
    progress: &indicatif::ProgressBar,
) -> Result<PathBuf, FetchError> {
    let api = ApiBuilder::from_cache(Cache::new(settings.cache_dir.clone()))
        .with_endpoint(settings.endpoint.trim_end_matches('/').to_owned())
        .with_token(settings.token.clone())
        .with_progress(false)
        .build()
        .map_err(|e| api_error(e, &reference.to_string(), reference))?;
    let repo = api.repo(Repo::with_revision(
        reference.repo.clone(),
        RepoType::Model,
        reference.revision.clone(),
    ));
    let cache = Cache::new(settings.cache_dir.clone()).repo(Repo::with_revision(
        reference.repo.clone(),
        RepoType::Model,
        reference.revision.clone(),
    ));
    let rt = runtime()?;
    let mut wanted = None;
    for file in reference.files() {
        let path = match cache.get(&file) {
            Some(path) => path,
            None => {
                let url = reference.url(&settings.endpoint, &file);
                let path = rt
                    .block_on(repo.download_with_progress(&file, Bar(progress.clone())))
                    .map_err(|e| api_error(e, &url, reference))?;
                verify(&path)?;
                path
            }
        };
        if file == reference.file {
            wanted = Some(path);
        }
    }
    wanted.ok_or_else(|| FetchError::BadReference {
        reference: reference.to_string(),
        reason: "the file is not among the model's shards".into(),
    })
}

/// Checks a freshly downloaded file against its blob name: the Hub names
/// blobs of large (LFS) files by the SHA-256 of their content. A file that
/// does not match (a download cut short and padded, a wrong answer) is
/// removed, pointer and blob, so it is never used as a model.
fn verify(pointer: &Path) -> Result<(), FetchError> {
    let io = |path: &Path, action| {
        let path = path.to_path_buf();
        move |source| FetchError::Io {
            path,
            action,
            source,
        }
    };
    let blob = std::fs::canonicalize(pointer).map_err(io(pointer, "cannot resolve the link"))?;
    let Some(expected) = blob
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
    else {
        return Ok(());
    };
    let mut file = std::fs::File::open(&blob).map_err(io(&blob, "cannot open the download"))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(io(&blob, "cannot read the download"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let got: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if got == expected {
        return Ok(());
    }
    let _ = std::fs::remove_file(pointer);
    let _ = std::fs::remove_file(&blob);
    Err(FetchError::Corrupt {
        path: pointer.to_path_buf(),
        reason: format!("its SHA-256 is {got}, the server announced {expected}"),
    })
}

/// An `hf-hub` error as ours, with the status and what it means.
fn api_error(err: ApiError, url: &str, reference: &HfRef) -> FetchError {
    match err {
        ApiError::TooManyRetries(inner) => api_error(*inner, url, reference),
        ApiError::RequestError(e) => {
            let url = e.url().map_or_else(|| url.to_owned(), |u| u.to_string());
            match e.status() {
                Some(status) => FetchError::Http {
                    hint: status_hint(status.as_u16(), &reference.to_string()),
                    status: status.as_u16(),
                    url,
                },
                None => FetchError::Request {
                    url,
                    action: "the download failed".into(),
                    source: Box::new(e),
                },
            }
        }
        ApiError::MissingHeader(h) => FetchError::Protocol {
            url: url.to_owned(),
            reason: format!(
                "the answer has no `{h}` header, so this is not a Hugging Face Hub (check \
                 HF_ENDPOINT)"
            ),
        },
        ApiError::InvalidHeader(h) => FetchError::Protocol {
            url: url.to_owned(),
            reason: format!("the answer's `{h}` header is malformed"),
        },
        ApiError::IoError(source) => FetchError::Io {
            path: PathBuf::from(url),
            action: "cannot write the download into the cache",
            source,
        },
        other => FetchError::Request {
            url: url.to_owned(),
            action: "the download failed".into(),
            source: Box::new(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        let r = HfRef::parse("hf://org/repo/model.Q4_K_M.gguf").unwrap();
        assert_eq!(r.repo, "org/repo");
        assert_eq!(r.file, "model.Q4_K_M.gguf");
        assert_eq!(r.revision, "main");
        let r = HfRef::parse("hf://org/repo/q4/model-00001-of-00002.gguf@v1.0").unwrap();
        assert_eq!(r.file, "q4/model-00001-of-00002.gguf");
        assert_eq!(r.revision, "v1.0");
        assert_eq!(
            r.files(),
            [
                "q4/model-00001-of-00002.gguf",
                "q4/model-00002-of-00002.gguf"
            ]
        );
        assert_eq!(
            r.to_string(),
            "hf://org/repo/q4/model-00001-of-00002.gguf@v1.0"
        );
        assert_eq!(
            r.url("http://127.0.0.1:1/", "f.gguf"),
            "http://127.0.0.1:1/org/repo/resolve/v1.0/f.gguf"
        );
        let r = HfRef::parse("hf://o/r/m.gguf@refs/pr/1").unwrap();
        assert_eq!(
            r.url("http://h", "m.gguf"),
            "http://h/o/r/resolve/refs%2Fpr%2F1/m.gguf"
        );
    }

    #[test]
    fn bad_references_say_why() {
        for (bad, why) in [
            ("org/repo/m.gguf", "hf://"),
            ("hf://org/m.gguf", "OWNER/REPO/FILE"),
            ("hf://org/repo/model.bin", ".gguf"),
            ("hf://org/repo/m.gguf@", "revision"),
            ("hf://org/repo/../m.gguf", "segment"),
            ("hf://org/repo//m.gguf", "segment"),
            ("hf://o r/repo/m.gguf", "plain names"),
            ("hf://org/repo/m.gguf@a b", "revision"),
        ] {
            let err = HfRef::parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad) && err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn settings_follow_the_hf_variables() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let s = HfSettings::from_vars(vars(&[("HOME", "/home/u")]));
        assert_eq!(s.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(s.cache_dir, Path::new("/home/u/.cache/huggingface/hub"));
        let s = HfSettings::from_vars(vars(&[("HF_HOME", "/hf"), ("HF_TOKEN", "hf_x")]));
        assert_eq!(s.cache_dir, Path::new("/hf/hub"));
        assert_eq!(s.token.as_deref(), Some("hf_x"));
        assert!(!format!("{s:?}").contains("hf_x"), "the token is redacted");
        let s = HfSettings::from_vars(vars(&[
            ("HF_HOME", "/hf"),
            ("HF_HUB_CACHE", "/c"),
            ("HF_ENDPOINT", "http://127.0.0.1:9"),
        ]));
        assert_eq!(s.cache_dir, Path::new("/c"));
        assert_eq!(s.endpoint, "http://127.0.0.1:9");
        assert_eq!(s.token, None);
    }
}
