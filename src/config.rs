//! `ggviz.toml`, the project file read by `build` and `serve`.
//!
//! A project file saves writing long command lines and lets a site be
//! rebuilt the same way by anyone (or by CI). It is a strict serde struct:
//! an unknown or misspelt key is an error naming the key, the file and the
//! line, with the valid keys listed, so a typo never silently does nothing.
//! Paths in the file are relative to the folder holding it. Command-line
//! flags override the file ([`Overrides`], [`resolve`]).
//!
//! ```toml
//! title = "My models"
//! output = "site"
//! content = "content"
//!
//! [[models]]
//! path = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
//! name = "SmolLM2 135M (Q4_1)"
//!
//! [inference]
//! device = "cpu"
//! max_tokens = 512
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::analysis::prompts::{self, PromptError};
use crate::engine::device::parse_supported;
use crate::engine::{DEFAULT_MAX_TOKENS, Device, SessionOptions};
use crate::pipeline::{InferenceOptions, PipelineOptions};
use crate::site::BuildOptions;

/// The project file's name, looked for in the current folder.
pub const FILE_NAME: &str = "ggviz.toml";

/// The site folder when neither the file nor `--out` names one.
pub const DEFAULT_OUTPUT: &str = "site";

/// The contents of a `ggviz.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The site title shown on the index and in every page's top bar
    /// (default "ggviz").
    pub title: Option<String>,
    /// The address the site is published at (`https://me.github.io/models/`);
    /// `build` prints each page's public address with it. Pages keep
    /// relative links, so the site works without it.
    pub base_url: Option<Spanned<String>>,
    /// The site folder (default `site`), replaced as a whole by each build.
    pub output: Option<PathBuf>,
    /// A folder whose files override the default theme's, path by path.
    pub theme: Option<PathBuf>,
    /// A folder of markdown pages that add to or replace the default content.
    pub content: Option<PathBuf>,
    /// The models, one page each, in this order.
    pub models: Vec<ModelSource>,
    /// Prompts to run instead of the bundled set (each a plain text).
    pub prompts: Vec<String>,
    /// A file of prompts to run instead of the bundled set: TOML like
    /// `content/prompts.toml`, or plain text with prompts separated by `---`
    /// lines. Combined with `prompts` if both are given.
    pub prompts_file: Option<PathBuf>,
    /// How the models are run.
    pub inference: InferenceConfig,
    /// Optional "Open in Graphistry" links. Credentials come from the
    /// environment only, never from this file.
    pub graphistry: GraphistryConfig,
}

/// One model of the site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSource {
    /// A GGUF file (any shard of a split model), relative to the project
    /// folder, or a Hugging Face reference `hf://OWNER/REPO/FILE.gguf`.
    pub path: String,
    /// The name shown on the page and the index card (default: the name the
    /// file gives itself).
    #[serde(default)]
    pub name: Option<String>,
    /// The family the file belongs to (several quantizations of one model),
    /// for the quantization-impact comparison.
    #[serde(default)]
    pub family: Option<String>,
}

/// The `[inference]` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InferenceConfig {
    /// Structure only: do not run the models.
    pub no_inference: bool,
    /// Where the model runs: `cpu` (default) or `cuda:N`.
    pub device: Option<Spanned<String>>,
    /// Where the analytics' matrix products run (default: `device`).
    pub analytics_device: Option<Spanned<String>>,
    /// Layers offloaded to the GPU (default: all).
    pub gpu_layers: Option<u32>,
    /// CPU threads (default: all cores).
    pub threads: Option<usize>,
    /// Refuse prompts longer than this many tokens (default 512).
    pub max_tokens: Option<usize>,
    /// Measure head importance by ablation (one extra pass per head and prompt).
    pub ablation: bool,
}

/// The `[graphistry]` table: never secrets (they come from the environment).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphistryConfig {
    /// Upload the graphs and link them from the pages, when credentials are
    /// in the environment.
    pub enabled: bool,
    /// A failed upload fails the build instead of warning.
    pub required: bool,
    /// The Graphistry server (default `https://hub.graphistry.com`).
    pub server: Option<String>,
}

/// A project file that could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}:{line}: `{key}`: {message}", path.display())]
    Value {
        path: PathBuf,
        line: usize,
        key: &'static str,
        message: String,
    },
    #[error(
        "no models: give MODEL arguments, or list them in {FILE_NAME} as [[models]] tables with a `path`"
    )]
    NoModels,
    #[error(transparent)]
    Prompts(#[from] PromptError),
}

/// Line and column (1-based) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Serde speaks of fields; a TOML file has keys.
fn key_message(message: &str) -> String {
    message
        .trim_end()
        .replace("unknown field", "unknown key")
        .replace(", expected one of", "; the valid keys here are")
        .replace(", expected", "; the valid key here is")
}

impl Config {
    /// Parses the text of a project file read from `path` (for messages).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map_or((1, 1), |span| line_column(text, span.start));
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                column,
                message: key_message(e.message()),
            }
        })?;
        config.check(text, path)?;
        Ok(config)
    }

    /// Reads and parses the project file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Checks the values serde cannot: devices and the base URL.
    fn check(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        let value_err = |key, at: usize, message: String| ConfigError::Value {
            path: path.to_owned(),
            line: line_column(text, at).0,
            key,
            message,
        };
        for (key, device) in [
            ("inference.device", &self.inference.device),
            (
                "inference.analytics_device",
                &self.inference.analytics_device,
            ),
        ] {
            if let Some(d) = device {
                parse_supported(d.get_ref())
                    .map_err(|e| value_err(key, d.span().start, e.to_string()))?;
            }
        }
        if let Some(url) = &self.base_url {
            let u = url.get_ref();
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                return Err(value_err(
                    "base_url",
                    url.span().start,
                    format!("`{u}` is not an http:// or https:// address"),
                ));
            }
        }
        Ok(())
    }
}

/// A project file found and parsed, with the folder its paths are relative to.
#[derive(Debug, Clone)]
pub struct Project {
    /// The file itself.
    pub path: PathBuf,
    /// The folder holding it.
    pub dir: PathBuf,
    pub config: Config,
}

impl Project {
    /// Loads `explicit` (which must exist), or `./ggviz.toml` if there is
    /// one; `None` when neither applies.
    pub fn discover(explicit: Option<&Path>) -> Result<Option<Project>, ConfigError> {
        let path = match explicit {
            Some(p) => p.to_owned(),
            None if Path::new(FILE_NAME).is_file() => PathBuf::from(FILE_NAME),
            None => return Ok(None),
        };
        let config = Config::load(&path)?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_owned);
        Ok(Some(Project { path, dir, config }))
    }

    fn join(&self, p: &Path) -> PathBuf {
        relative_to(&self.dir, p)
    }
}

/// What the command line says, overriding the project file. Empty or
/// `None`/`false` fields leave the file's value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub models: Vec<PathBuf>,
    pub out: Option<PathBuf>,
    pub theme: Option<PathBuf>,
    pub content: Option<PathBuf>,
    pub title: Option<String>,
    pub no_inference: bool,
    pub prompts: Vec<String>,
    pub prompts_file: Option<PathBuf>,
    pub ablation: bool,
    pub device: Option<Device>,
    pub analytics_device: Option<Device>,
    pub gpu_layers: Option<u32>,
    pub threads: Option<usize>,
    pub max_tokens: Option<usize>,
}

/// A build fully described: what to run, and what to watch when serving.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub pipeline: PipelineOptions,
    /// Display names, one per model (`None`: the file's own name).
    pub names: Vec<Option<String>>,
    /// The prompt file in use, if any (watched by `serve`).
    pub prompts_file: Option<PathBuf>,
    /// The project file, if any (watched by `serve`).
    pub config_file: Option<PathBuf>,
    /// The published address, ending in `/`.
    pub base_url: Option<String>,
    pub graphistry: GraphistryConfig,
}

impl Resolved {
    /// Every file or folder whose change should rebuild the site.
    pub fn watched(&self) -> Vec<PathBuf> {
        let site = &self.pipeline.site;
        let mut paths: Vec<PathBuf> = site.models.clone();
        paths.extend(self.config_file.iter().cloned());
        paths.extend(site.content.iter().cloned());
        paths.extend(site.theme.iter().cloned());
        paths.extend(self.prompts_file.iter().cloned());
        paths
    }
}

/// `p` as seen from the current folder, when it is relative to `dir`
/// (`./site` is written `site`).
fn relative_to(dir: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() || dir == Path::new(".") {
        p.to_owned()
    } else {
        dir.join(p)
    }
}

/// A model reference as a path: a local path relative to the project
/// folder, or an `hf://` reference kept as it is, which the build downloads
/// ([`crate::fetch::resolve_model_path`]) when it runs.
pub fn model_path(source: &str, dir: &Path) -> Result<PathBuf, ConfigError> {
    if crate::fetch::is_remote(source) {
        return Ok(PathBuf::from(source));
    }
    Ok(relative_to(dir, Path::new(source)))
}

fn parse_device(d: &Option<Spanned<String>>) -> Option<Device> {
    // Checked by `Config::check` already.
    d.as_ref().and_then(|s| s.get_ref().parse().ok())
}

/// Combines the project file (if any) with the command line.
pub fn resolve(project: Option<&Project>, o: &Overrides) -> Result<Resolved, ConfigError> {
    let empty = Config::default();
    let c = project.map_or(&empty, |p| &p.config);
    let join = |p: &Option<PathBuf>| -> Option<PathBuf> {
        p.as_ref()
            .map(|p| project.map_or_else(|| p.clone(), |pr| pr.join(p)))
    };
    let dir = project.map_or_else(|| PathBuf::from("."), |p| p.dir.clone());

    let (models, names) = if o.models.is_empty() {
        let mut models = Vec::new();
        let mut names = Vec::new();
        for m in &c.models {
            models.push(model_path(&m.path, &dir)?);
            names.push(m.name.clone());
        }
        (models, names)
    } else {
        (o.models.clone(), vec![None; o.models.len()])
    };
    if models.is_empty() {
        return Err(ConfigError::NoModels);
    }

    let (prompt_texts, prompts_file) = if o.prompts.is_empty() && o.prompts_file.is_none() {
        (c.prompts.clone(), join(&c.prompts_file))
    } else {
        (o.prompts.clone(), o.prompts_file.clone())
    };

    let inf = &c.inference;
    let inference = if o.no_inference || inf.no_inference {
        None
    } else {
        let device = o
            .device
            .or_else(|| parse_device(&inf.device))
            .unwrap_or_default();
        Some(InferenceOptions {
            prompts: prompts::select(&prompt_texts, prompts_file.as_deref())?,
            session: SessionOptions {
                device,
                gpu_layers: o.gpu_layers.or(inf.gpu_layers),
                threads: o.threads.or(inf.threads).unwrap_or(0),
                max_tokens: o
                    .max_tokens
                    .or(inf.max_tokens)
                    .unwrap_or(DEFAULT_MAX_TOKENS),
            },
            ablation: o.ablation || inf.ablation,
            analytics_device: o
                .analytics_device
                .or_else(|| parse_device(&inf.analytics_device)),
        })
    };

    let prompts_file = inference.as_ref().and(prompts_file);
    let site = BuildOptions {
        models,
        out: o
            .out
            .clone()
            .or_else(|| join(&c.output))
            .unwrap_or_else(|| relative_to(&dir, Path::new(DEFAULT_OUTPUT))),
        theme: o.theme.clone().or_else(|| join(&c.theme)),
        content: o.content.clone().or_else(|| join(&c.content)),
        title: o.title.clone().or_else(|| c.title.clone()),
    };
    let base_url = c.base_url.as_ref().map(|u| {
        let u = u.get_ref();
        if u.ends_with('/') {
            u.clone()
        } else {
            format!("{u}/")
        }
    });
    Ok(Resolved {
        pipeline: PipelineOptions {
            site,
            inference,
            isolation: Default::default(),
            graphistry: None,
            embeddings: Some(Default::default()),
        },
        names,
        prompts_file,
        config_file: project.map(|p| p.path.clone()),
        base_url,
        graphistry: c.graphistry.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("proj/ggviz.toml"))
    }

    #[test]
    fn a_full_file_parses() {
        let c = parse(
            r#"
title = "Models"
base_url = "https://example.org/models"
output = "public"
theme = "theme"
content = "content"
prompts = ["The capital of France is"]
prompts_file = "prompts.txt"

[[models]]
path = "a.gguf"
name = "A"
family = "a"

[[models]]
path = "hf://org/repo/b.gguf"

[inference]
device = "cpu"
analytics_device = "cpu"
gpu_layers = 10
threads = 2
max_tokens = 64
ablation = true

[graphistry]
enabled = true
server = "https://graphistry.example.org"
"#,
        )
        .expect("valid file");
        assert_eq!(c.title.as_deref(), Some("Models"));
        assert_eq!(c.models.len(), 2);
        assert_eq!(c.models[0].family.as_deref(), Some("a"));
        assert_eq!(c.models[1].path, "hf://org/repo/b.gguf");
        assert_eq!(c.inference.max_tokens, Some(64));
        assert!(c.inference.ablation && c.graphistry.enabled && !c.graphistry.required);
    }

    #[test]
    fn an_unknown_key_names_the_key_the_line_the_file_and_the_valid_keys() {
        let err = parse("title = \"x\"\n\n[inference]\nthread = 4\n")
            .expect_err("misspelt key")
            .to_string();
        assert!(err.starts_with("proj/ggviz.toml:4:1: "), "{err}");
        assert!(err.contains("unknown key `thread`"), "{err}");
        assert!(
            err.contains("`threads`") && err.contains("`max_tokens`"),
            "{err}"
        );

        let err = parse("titel = \"x\"\n").expect_err("misspelt").to_string();
        assert!(err.contains(":1:1: unknown key `titel`"), "{err}");
        assert!(err.contains("`title`") && err.contains("`models`"), "{err}");

        let err = parse("[[models]]\npath = \"a.gguf\"\nnmae = \"A\"\n")
            .expect_err("misspelt model key")
            .to_string();
        assert!(err.contains(":3:1: unknown key `nmae`"), "{err}");
    }

    #[test]
    fn secrets_have_no_place_in_the_file() {
        let err = parse("[graphistry]\npassword = \"hunter2\"\n")
            .expect_err("no secrets")
            .to_string();
        assert!(err.contains("unknown key `password`"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key_and_line() {
        let err = parse("[inference]\n\ndevice = \"tpu:0\"\n")
            .expect_err("bad device")
            .to_string();
        assert!(
            err.starts_with("proj/ggviz.toml:3: `inference.device`"),
            "{err}"
        );
        let err = parse("base_url = \"example.org\"\n")
            .expect_err("bad url")
            .to_string();
        assert!(err.contains(":1: `base_url`"), "{err}");
        let err = parse("max_tokens = 5\n")
            .expect_err("top level")
            .to_string();
        assert!(err.contains("unknown key `max_tokens`"), "{err}");
        let err = parse("[inference]\nmax_tokens = \"many\"\n")
            .expect_err("type")
            .to_string();
        assert!(err.starts_with("proj/ggviz.toml:2:"), "{err}");
    }

    fn project(text: &str) -> Project {
        Project {
            path: PathBuf::from("proj/ggviz.toml"),
            dir: PathBuf::from("proj"),
            config: parse(text).expect("valid"),
        }
    }

    #[test]
    fn the_command_line_overrides_the_file_and_paths_are_relative_to_it() {
        let p = project(
            "title = \"T\"\noutput = \"public\"\ncontent = \"c\"\nprompts = [\"hi\"]\n\
             [[models]]\npath = \"m.gguf\"\nname = \"M\"\n[inference]\nthreads = 3\nmax_tokens = 9\n",
        );
        let r = resolve(Some(&p), &Overrides::default()).expect("resolves");
        let site = &r.pipeline.site;
        assert_eq!(site.models, vec![PathBuf::from("proj/m.gguf")]);
        assert_eq!(site.out, PathBuf::from("proj/public"));
        assert_eq!(site.content, Some(PathBuf::from("proj/c")));
        assert_eq!(r.names, vec![Some("M".to_owned())]);
        let inf = r.pipeline.inference.as_ref().expect("inference on");
        assert_eq!((inf.session.threads, inf.session.max_tokens), (3, 9));
        assert_eq!(inf.prompts.len(), 1);

        let o = Overrides {
            models: vec![PathBuf::from("x.gguf")],
            out: Some(PathBuf::from("elsewhere")),
            title: Some("U".into()),
            threads: Some(1),
            no_inference: false,
            ..Overrides::default()
        };
        let r = resolve(Some(&p), &o).expect("resolves");
        assert_eq!(r.pipeline.site.models, vec![PathBuf::from("x.gguf")]);
        assert_eq!(r.pipeline.site.out, PathBuf::from("elsewhere"));
        assert_eq!(r.pipeline.site.title.as_deref(), Some("U"));
        assert_eq!(r.names, vec![None]);
        let inf = r.pipeline.inference.as_ref().expect("inference on");
        assert_eq!((inf.session.threads, inf.session.max_tokens), (1, 9));

        let o = Overrides {
            no_inference: true,
            ..Overrides::default()
        };
        assert!(
            resolve(Some(&p), &o)
                .expect("ok")
                .pipeline
                .inference
                .is_none()
        );
    }

    #[test]
    fn without_a_project_file_the_site_goes_to_site() {
        let o = Overrides {
            models: vec![PathBuf::from("m.gguf")],
            ..Overrides::default()
        };
        let r = resolve(None, &o).expect("resolves");
        assert_eq!(r.pipeline.site.out, PathBuf::from("site"));
        assert!(r.config_file.is_none() && r.names == vec![None]);
    }

    #[test]
    fn no_models_anywhere_is_an_error() {
        let err = resolve(None, &Overrides::default()).expect_err("no models");
        assert!(matches!(err, ConfigError::NoModels));
        // An hf:// reference stays a reference; the build downloads it.
        let p = project("[[models]]\npath = \"hf://o/r/f.gguf\"\n");
        let r = resolve(Some(&p), &Overrides::default()).expect("hf");
        assert_eq!(r.pipeline.site.models, [PathBuf::from("hf://o/r/f.gguf")]);
    }
}
