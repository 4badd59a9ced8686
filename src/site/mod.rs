//! Building the offline site: one self-contained page per model, an index
//! of models, the content pages, written atomically.
//!
//! Layout of the output:
//!
//! ```text
//! site/index.html            a card per model, linking to its page
//! site/<slug>/index.html     the model page: CSS, JS and data inline
//! site/docs/<page>.html      content pages (about, one per view, ...)
//! site/.nojekyll             GitHub Pages serves the folder as it is
//! ```
//!
//! Every link is relative, so the folder works from `file://`, from any
//! sub-path of a web server, and copied anywhere.

pub mod content;
pub mod error;
pub mod inline;
pub mod output;
pub mod render;
pub mod theme;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use minijinja::{Value, context};
use serde::Serialize;

use crate::anatomy::Anatomy;
use crate::gguf::GgufModel;
use crate::graph;
use crate::inspect::{human_bytes, human_count};
use crate::report::ModelReport;
use crate::report::family::FamilyReport;

pub use content::Page;
pub use error::SiteError;
pub use output::Staging;
pub use render::Renderer;
pub use theme::Theme;

/// What `ggviz build` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// GGUF files, one page each.
    pub models: Vec<PathBuf>,
    /// The site folder to (re)place.
    pub out: PathBuf,
    /// A folder overriding files of the default theme.
    pub theme: Option<PathBuf>,
    /// A folder adding or replacing content pages.
    pub content: Option<PathBuf>,
    /// The site's title; "ggviz" if none.
    pub title: Option<String>,
}

/// One page written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenPage {
    /// Path inside the site (`smollm2/index.html`).
    pub path: String,
    pub bytes: usize,
}

/// What a build wrote.
#[derive(Debug, Clone)]
pub struct BuildSummary {
    /// The site folder.
    pub out: PathBuf,
    /// Model pages, in the order of the models given.
    pub models: Vec<WrittenPage>,
    /// The index and content pages.
    pub other: Vec<WrittenPage>,
    pub elapsed: Duration,
}

/// A model's report with its place in the site.
#[derive(Debug, Clone)]
pub struct ModelEntry {
    pub slug: String,
    pub report: ModelReport,
}

/// Reads a model and gathers its structure report.
pub fn model_report(path: &Path) -> Result<ModelReport, SiteError> {
    let model = GgufModel::open(path).map_err(|source| SiteError::Model {
        path: path.to_owned(),
        source,
    })?;
    let anatomy = Anatomy::from_model(&model).map_err(|source| SiteError::Anatomy {
        path: path.to_owned(),
        source,
    })?;
    let g = graph::build(&anatomy);
    Ok(ModelReport::build(&anatomy, &g))
}

/// A folder name for a model file: lowercase letters, digits and dashes,
/// unique among `taken`, never `docs`.
pub fn slug_for(path: &Path, taken: &[String]) -> String {
    let stem = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem.strip_suffix(".gguf").unwrap_or(&stem);
    let mut slug = String::new();
    for c in stem.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let mut slug = slug.trim_matches('-').to_owned();
    if slug.is_empty() || slug == "docs" {
        slug = format!("{slug}-model").trim_start_matches('-').to_owned();
    }
    let mut candidate = slug.clone();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{slug}-{n}");
        n += 1;
    }
    candidate
}

/// The relative path from a page at `depth` folders below the root to it.
fn root_for(depth: usize) -> String {
    "../".repeat(depth)
}

#[derive(Serialize)]
struct NavLink {
    title: String,
    href: String,
}

fn nav(pages: &[Page], root: &str) -> Vec<NavLink> {
    pages
        .iter()
        .filter(|p| p.view.is_none())
        .map(|p| NavLink {
            title: p.title.clone(),
            href: format!("{root}docs/{}.html", p.slug),
        })
        .collect()
}

#[derive(Serialize)]
struct MixPart {
    name: String,
    color: String,
    percent: f64,
    bits_per_weight: f64,
}

#[derive(Serialize)]
struct Card {
    name: String,
    href: String,
    file_name: String,
    architecture: String,
    file_type: Option<String>,
    params: String,
    file_size: String,
    layers: u32,
    heads: String,
    avg_bits_per_weight: f64,
    mix: Vec<MixPart>,
}

fn card(entry: &ModelEntry) -> Card {
    let m = &entry.report.model;
    let hp = &m.hparams;
    let heads = match (hp.uniform_heads(), hp.uniform_kv_heads()) {
        (Some(h), Some(kv)) if kv != h => format!("{h} heads, {kv} KV heads"),
        (Some(h), _) => format!("{h} heads"),
        _ => "heads vary by layer".to_owned(),
    };
    Card {
        name: m.name.clone(),
        href: format!("{}/index.html", entry.slug),
        file_name: m.file_name.clone(),
        architecture: m.architecture.clone(),
        file_type: m.file_type.clone(),
        params: human_count(m.params),
        file_size: human_bytes(m.file_bytes),
        layers: hp.n_layer,
        heads,
        avg_bits_per_weight: m.avg_bits_per_weight,
        mix: entry
            .report
            .types
            .iter()
            .map(|t| MixPart {
                name: t.name.clone(),
                color: t.color.clone(),
                percent: t.share_of_bytes * 100.0,
                bits_per_weight: t.bits_per_weight,
            })
            .collect(),
    }
}

/// A family page to write: its slug, the slugs of its members' model pages
/// and its data.
#[derive(Debug, Clone)]
pub struct FamilyEntry {
    pub slug: String,
    pub member_slugs: Vec<String>,
    pub report: FamilyReport,
}

/// The family page for `family`.
pub fn render_family_page(
    r: &mut Renderer,
    family: &FamilyEntry,
    pages: &[Page],
    site_title: &str,
) -> Result<String, SiteError> {
    let root = root_for(2);
    let json = inline::json_for_script(&family.report.to_json()?);
    r.render(
        "family.html",
        context! {
            site_title => site_title,
            root => root,
            nav => nav(pages, &root),
            family => Value::from_serialize(&family.report),
            report_json => Value::from_safe_string(json),
        },
    )
}

/// The model page for `entry`.
pub fn render_model_page(
    r: &mut Renderer,
    entry: &ModelEntry,
    pages: &[Page],
    site_title: &str,
) -> Result<String, SiteError> {
    render_model_page_with(r, entry, pages, site_title, None)
}

/// The model page, linking to its family page (`(name, href)`) if it has one.
fn render_model_page_with(
    r: &mut Renderer,
    entry: &ModelEntry,
    pages: &[Page],
    site_title: &str,
    family: Option<(&str, String)>,
) -> Result<String, SiteError> {
    let root = root_for(1);
    let json = inline::json_for_script(&entry.report.to_json()?);
    let explanations: Vec<Value> = pages
        .iter()
        .filter_map(|p| {
            p.view.as_ref().map(|view| {
                context! {
                    view => view,
                    title => p.title,
                    href => format!("{root}docs/{}.html", p.slug),
                    html => Value::from_safe_string(p.html.clone()),
                }
            })
        })
        .collect();
    r.render(
        "model.html",
        context! {
            site_title => site_title,
            root => root,
            nav => nav(pages, &root),
            model => Value::from_serialize(&entry.report.model),
            report_json => Value::from_safe_string(json),
            explanations => explanations,
            generator => entry.report.generator,
            family => family.map(|(name, href)| context! { name => name, href => href }),
        },
    )
}

/// Builds the whole site described by `opts`, structure only.
pub fn build(opts: &BuildOptions) -> Result<BuildSummary, SiteError> {
    let start = Instant::now();
    let site = Site::prepare(opts)?;
    let mut entries: Vec<ModelEntry> = Vec::new();
    for path in &opts.models {
        tracing::info!(model = %path.display(), "reading");
        let slug = slug_for(path, &slugs(&entries));
        entries.push(ModelEntry {
            slug,
            report: model_report(path)?,
        });
    }
    site.write(&entries, start)
}

/// The slugs already taken by `entries`.
pub fn slugs(entries: &[ModelEntry]) -> Vec<String> {
    entries.iter().map(|e| e.slug.clone()).collect()
}

/// A site ready to be written: theme and content loaded and checked, so a
/// broken theme fails before any model is run.
#[derive(Debug)]
pub struct Site {
    out: PathBuf,
    theme: Theme,
    pages: Vec<Page>,
    title: String,
}

impl Site {
    /// Loads the theme and the content pages for `opts`.
    pub fn prepare(opts: &BuildOptions) -> Result<Site, SiteError> {
        Ok(Site {
            out: opts.out.clone(),
            theme: Theme::new(opts.theme.as_deref())?,
            pages: content::load(opts.content.as_deref())?,
            title: opts.title.clone().unwrap_or_else(|| "ggviz".to_owned()),
        })
    }

    /// Renders every page into a staging folder and swaps it in; a failure
    /// leaves the previous site as it was. `start` is when the build began.
    pub fn write(&self, entries: &[ModelEntry], start: Instant) -> Result<BuildSummary, SiteError> {
        self.write_with_families(entries, &[], start)
    }

    /// [`Site::write`] with family pages (`families/<slug>/index.html`),
    /// linked from the index and from each member's page.
    pub fn write_with_families(
        &self,
        entries: &[ModelEntry],
        families: &[FamilyEntry],
        start: Instant,
    ) -> Result<BuildSummary, SiteError> {
        let (pages, title) = (&self.pages, &self.title);
        let mut renderer = Renderer::new(&self.theme);
        let staging = Staging::new(&self.out)?;
        let mut models = Vec::new();
        let mut other = Vec::new();
        for family in families {
            let html = render_family_page(&mut renderer, family, pages, title)?;
            let path = format!("families/{}/index.html", family.slug);
            staging.write(&path, html.as_bytes())?;
            other.push(WrittenPage {
                path,
                bytes: html.len(),
            });
        }
        for entry in entries {
            let family = families
                .iter()
                .find(|f| f.member_slugs.contains(&entry.slug))
                .map(|f| {
                    (
                        f.report.name.as_str(),
                        format!("../families/{}/index.html", f.slug),
                    )
                });
            let html = render_model_page_with(&mut renderer, entry, pages, title, family)?;
            let path = format!("{}/index.html", entry.slug);
            staging.write(&path, html.as_bytes())?;
            models.push(WrittenPage {
                path,
                bytes: html.len(),
            });
        }

        let index = renderer.render(
            "index.html",
            context! {
                site_title => title,
                root => "",
                nav => nav(pages, ""),
                cards => entries.iter().map(card).collect::<Vec<_>>(),
                families => families.iter().map(|f| context! {
                    name => f.report.name,
                    href => format!("families/{}/index.html", f.slug),
                    members => f.report.members.len(),
                }).collect::<Vec<_>>(),
            },
        )?;
        staging.write("index.html", index.as_bytes())?;
        other.push(WrittenPage {
            path: "index.html".into(),
            bytes: index.len(),
        });
        for page in pages {
            let depth = 1 + page.slug.matches('/').count();
            let root = root_for(depth);
            let html = renderer.render(
                "page.html",
                context! {
                    site_title => title,
                    root => root,
                    nav => nav(pages, &root),
                    page_title => page.title,
                    body => Value::from_safe_string(page.html.clone()),
                },
            )?;
            let path = format!("docs/{}.html", page.slug);
            staging.write(&path, html.as_bytes())?;
            other.push(WrittenPage {
                path,
                bytes: html.len(),
            });
        }
        staging.write(".nojekyll", b"")?;
        let out = staging.commit()?;
        Ok(BuildSummary {
            out,
            models,
            other,
            elapsed: start.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_safe_unique_and_never_docs() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            slug_for(&p("/m/SmolLM2-135M.Q4_1.gguf"), &[]),
            "smollm2-135m-q4-1"
        );
        assert_eq!(slug_for(&p("a b.gguf"), &["a-b".into()]), "a-b-2");
        assert_eq!(slug_for(&p("docs.gguf"), &[]), "docs-model");
        assert_eq!(slug_for(&p("__.gguf"), &[]), "model");
    }
}
