//! `ggviz init [DIR]`: a starter project, as `mdbook init` and `zola init`
//! write one.
//!
//! The project is a commented `ggviz.toml`, a `content/` folder with one
//! example page, a `.gitignore` for the site and the cache, and the
//! standard GitHub Pages workflow that installs ggviz, builds the site and
//! publishes it. A non-empty folder is refused and no file is overwritten
//! unless `force` is set, so `init` never destroys work.

use std::path::{Path, PathBuf};

use crate::config::FILE_NAME;

/// What `init` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// The project folder (created if missing).
    pub dir: PathBuf,
    /// Models to list in `ggviz.toml`, as written there (relative to `dir`
    /// or absolute, or `hf://` references); none: a commented placeholder.
    pub models: Vec<String>,
    /// The site title.
    pub title: Option<String>,
    /// Write into a non-empty folder and overwrite existing files.
    pub force: bool,
}

/// Why a project could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    #[error(
        "{} is not empty; choose an empty folder or pass --force (existing files are then overwritten)",
        .0.display()
    )]
    NotEmpty(PathBuf),
    #[error("I/O error on {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InitError + '_ {
    move |source| InitError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where GitHub's workflow installs ggviz from.
const REPOSITORY: &str = match option_env!("GGVIZ_REPOSITORY") {
    Some(r) => r,
    None => "https://github.com/ggviz/ggviz",
};

/// A TOML basic string holding `s` (JSON's escapes are all valid TOML).
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// The starter `ggviz.toml`.
pub fn config_text(models: &[String], title: Option<&str>) -> String {
    let title = toml_string(title.unwrap_or("My models"));
    let models = if models.is_empty() {
        "# [[models]]\n\
         # path = \"models/SmolLM2-135M-Instruct.Q4_1.gguf\"   # or \"hf://OWNER/REPO/FILE.gguf\"\n\
         # name = \"SmolLM2 135M (Q4_1)\"                     # optional display name\n\
         # family = \"smollm2-135m\"                          # optional: quantizations of one model\n"
            .to_owned()
    } else {
        models
            .iter()
            .map(|m| {
                format!(
                    "[[models]]\npath = {}   # or \"hf://OWNER/REPO/FILE.gguf\"\n# name = \"shown name\"\n# family = \"model family\"\n",
                    toml_string(m)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        r#"# The ggviz project file: `ggviz build` and `ggviz serve` read it from this
# folder (or from --config FILE); command-line flags override it. Paths are
# relative to this file. Every key is described in ggviz's README.

# The site title, shown on the index and every page.
title = {title}
# Where the site is published (printed after each page by `ggviz build`).
# base_url = "https://OWNER.github.io/REPO/"
# The site folder, replaced as a whole by each build.
output = "site"
# Markdown pages that add to or replace the default ones.
content = "content"
# A folder whose files override the default theme's, path by path.
# theme = "theme"

# Prompts to run instead of the bundled set (inline, a file, or both).
# prompts = ["The capital of France is"]
# prompts_file = "prompts.toml"

# One page per model, in this order.
{models}
[inference]
# Structure only: do not run the models.
no_inference = false
# Where the model runs: "cpu" or "cuda:N"; analytics_device defaults to it.
device = "cpu"
# analytics_device = "cpu"
# gpu_layers = 99
# threads = 4
# Prompts longer than this many tokens are refused.
max_tokens = 512
# Head importance by ablation (one extra forward pass per head and prompt).
ablation = false

[graphistry]
# "Open in Graphistry" links; credentials come from the environment
# (GRAPHISTRY_USERNAME/GRAPHISTRY_PASSWORD or GRAPHISTRY_PERSONAL_KEY_ID/
# GRAPHISTRY_PERSONAL_KEY_SECRET), never from this file.
enabled = false
# required = false
# server = "https://hub.graphistry.com"
"#
    )
}

const EXAMPLE_PAGE: &str = r#"+++
title = "About these models"
order = 5
+++

# About these models

This page comes from `content/about-these-models.md`. Edit it, or add more
markdown files beside it: each becomes a page of the site, listed in the
menu by its `order`. A page with `view = "quant"` (or `architecture`,
`layer`, `heads`, `attention`, `tracker`, `comparator`) in its front matter
is shown beside that view of every model page instead.

Run `ggviz serve` and this page reloads in the browser as you save it.
"#;

const GITIGNORE: &str =
    "# ggviz build output and caches\n/site/\n/.site.building-*/\n/.ggviz-old-*/\n/.cache/\n";

fn workflow_text() -> String {
    format!(
        r#"# Builds the ggviz site and publishes it on GitHub Pages.
# In the repository's settings, set Pages > Source to "GitHub Actions".
name: Publish the site

on:
  push:
    branches: [main]
  workflow_dispatch:

permissions:
  contents: read
  pages: write
  id-token: write

concurrency:
  group: pages
  cancel-in-progress: false

jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/configure-pages@v5
      - name: Install the tools ggviz builds with
        run: sudo apt-get update && sudo apt-get install -y cmake libclang-dev
      - uses: dtolnay/rust-toolchain@stable
      - name: Cache ggviz and downloaded models
        uses: actions/cache@v4
        with:
          path: |
            ~/.cargo/bin/ggviz
            ~/.cache/huggingface
          key: ggviz-${{{{ runner.os }}}}-${{{{ hashFiles('ggviz.toml') }}}}
      - name: Install ggviz
        run: command -v ggviz || cargo install --locked --git {REPOSITORY} ggviz
      - name: Build the site
        run: ggviz build
      - uses: actions/upload-pages-artifact@v3
        with:
          path: site

  deploy:
    needs: build
    runs-on: ubuntu-latest
    environment:
      name: github-pages
      url: ${{{{ steps.deployment.outputs.page_url }}}}
    steps:
      - id: deployment
        uses: actions/deploy-pages@v4
"#
    )
}

/// The files of a starter project, relative to its folder.
pub fn files(opts: &InitOptions) -> Vec<(&'static str, String)> {
    vec![
        (FILE_NAME, config_text(&opts.models, opts.title.as_deref())),
        ("content/about-these-models.md", EXAMPLE_PAGE.to_owned()),
        (".gitignore", GITIGNORE.to_owned()),
        (".github/workflows/pages.yml", workflow_text()),
    ]
}

/// Writes the starter project; returns the files written.
pub fn init(opts: &InitOptions) -> Result<Vec<PathBuf>, InitError> {
    let dir = &opts.dir;
    if dir.exists() && !opts.force {
        let mut entries = std::fs::read_dir(dir).map_err(io(dir))?;
        if entries.next().is_some() {
            return Err(InitError::NotEmpty(dir.clone()));
        }
    }
    let mut written = Vec::new();
    for (rel, text) in files(opts) {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, text).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn the_starter_config_parses_with_and_without_models() {
        for models in [
            vec![],
            vec!["m.gguf".to_owned(), "hf://o/r/f.gguf".to_owned()],
        ] {
            let text = config_text(&models, Some("Q \"quoted\""));
            let c = Config::parse(&text, Path::new("ggviz.toml")).expect("starter parses");
            assert_eq!(c.models.len(), models.len());
            assert_eq!(c.title.as_deref(), Some("Q \"quoted\""));
            assert_eq!(c.output, Some(PathBuf::from("site")));
        }
    }

    #[test]
    fn the_workflow_publishes_the_site_folder_with_the_pages_permissions() {
        let w = workflow_text();
        for needed in [
            "actions/checkout@",
            "actions/configure-pages@",
            "actions/upload-pages-artifact@",
            "actions/deploy-pages@",
            "pages: write",
            "id-token: write",
            "ggviz build",
            "path: site",
            "${{ steps.deployment.outputs.page_url }}",
        ] {
            assert!(w.contains(needed), "workflow lacks {needed}");
        }
    }

    #[test]
    fn init_refuses_a_non_empty_folder_and_never_overwrites_without_force() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("p");
        let opts = InitOptions {
            dir: dir.clone(),
            ..InitOptions::default()
        };
        let written = init(&opts).expect("empty folder");
        assert_eq!(written.len(), 4);
        assert!(dir.join(".github/workflows/pages.yml").is_file());
        std::fs::write(dir.join(FILE_NAME), "title = \"mine\"\n").expect("edit");
        let err = init(&opts).expect_err("not empty");
        assert!(matches!(err, InitError::NotEmpty(_)), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.join(FILE_NAME)).expect("read"),
            "title = \"mine\"\n"
        );
        init(&InitOptions {
            force: true,
            ..opts
        })
        .expect("forced");
        assert!(
            std::fs::read_to_string(dir.join(FILE_NAME))
                .expect("read")
                .contains("[inference]")
        );
    }
}
