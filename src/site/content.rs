//! Markdown pages: the explanations shown beside each view and the site's
//! own pages (about, glossary).
//!
//! The default pages in `content/` are compiled into the binary;
//! `--content DIR` adds pages and replaces defaults with the same relative
//! path. A page starts with TOML front matter between `+++` lines:
//!
//! ```text
//! +++
//! title = "Quantization"
//! order = 40                # position in menus, lowest first
//! view = "quant"            # shown beside this view of the model page
//! +++
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use pulldown_cmark::{Options, Parser, html};
use rust_embed::RustEmbed;
use serde::Deserialize;
use walkdir::WalkDir;

use super::SiteError;

#[derive(RustEmbed)]
#[folder = "content/"]
struct DefaultContent;

/// A page's front matter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    /// The page title, shown as its heading and in menus.
    title: String,
    /// Position in menus, lowest first; ties sort by path.
    #[serde(default)]
    order: i64,
    /// The model-page view this page explains (`architecture`, `layer`,
    /// `heads`, `quant`, …), if any.
    #[serde(default)]
    view: Option<String>,
}

/// One rendered page.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Page {
    /// Path without `.md`, `/`-separated (`views/quant`).
    pub slug: String,
    pub title: String,
    pub order: i64,
    pub view: Option<String>,
    /// The body as HTML.
    pub html: String,
}

/// Splits front matter from the body and renders the page.
pub fn parse(slug: &str, text: &str) -> Result<Page, SiteError> {
    let err = |message: String| SiteError::Content {
        path: format!("{slug}.md"),
        message,
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rest = text
        .strip_prefix("+++\n")
        .or_else(|| text.strip_prefix("+++\r\n"))
        .ok_or_else(|| err("must start with `+++` front matter holding at least `title`".into()))?;
    let end = rest
        .find("\n+++")
        .ok_or_else(|| err("front matter has no closing `+++` line".into()))?;
    let front: FrontMatter =
        toml::from_str(&rest[..end]).map_err(|e| err(format!("front matter: {e}")))?;
    let body = rest[end + 4..].trim_start_matches(['\r', '\n']);
    let mut out = String::new();
    let opts = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    html::push_html(&mut out, Parser::new_ext(body, opts));
    Ok(Page {
        slug: slug.to_owned(),
        title: front.title,
        order: front.order,
        view: front.view,
        html: out,
    })
}

/// The default pages, then the user's pages from `user`, which replace
/// defaults of the same path; sorted by order, then path.
pub fn load(user: Option<&Path>) -> Result<Vec<Page>, SiteError> {
    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    for path in DefaultContent::iter().filter(|p| p.ends_with(".md")) {
        if let Some(file) = DefaultContent::get(&path) {
            let text =
                String::from_utf8(file.data.into_owned()).map_err(|_| SiteError::Content {
                    path: path.to_string(),
                    message: "not UTF-8".into(),
                })?;
            sources.insert(path.trim_end_matches(".md").to_owned(), text);
        }
    }
    if let Some(dir) = user {
        if !dir.is_dir() {
            return Err(SiteError::ContentDir(dir.to_owned()));
        }
        for entry in WalkDir::new(dir).sort_by_file_name() {
            let entry = entry.map_err(|e| SiteError::Io {
                path: dir.to_owned(),
                source: e.into(),
            })?;
            let p = entry.path();
            if !entry.file_type().is_file() || p.extension().is_none_or(|e| e != "md") {
                continue;
            }
            let rel = p.strip_prefix(dir).unwrap_or(p).with_extension("");
            let slug: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let text = std::fs::read_to_string(p).map_err(SiteError::io(p))?;
            sources.insert(slug.join("/"), text);
        }
    }
    let mut pages = sources
        .iter()
        .map(|(slug, text)| parse(slug, text))
        .collect::<Result<Vec<_>, _>>()?;
    pages.sort_by(|a, b| a.order.cmp(&b.order).then_with(|| a.slug.cmp(&b.slug)));
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_and_markdown_render() {
        let p = parse(
            "views/x",
            "+++\ntitle = \"X & Y\"\norder = 3\nview = \"quant\"\n+++\n# Head\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        )
        .unwrap();
        assert_eq!(
            (p.title.as_str(), p.order, p.view.as_deref()),
            ("X & Y", 3, Some("quant"))
        );
        assert!(p.html.contains("<h1>Head</h1>"), "{}", p.html);
        assert!(p.html.contains("<td>2</td>"), "{}", p.html);
    }

    #[test]
    fn bad_front_matter_is_reported_with_the_path() {
        let e = parse("a", "# no front matter").unwrap_err().to_string();
        assert!(e.contains("a.md") && e.contains("+++"), "{e}");
        let e = parse("b", "+++\ntitle = \"t\"\ncolour = 1\n+++\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("b.md") && e.contains("colour"), "{e}");
    }

    #[test]
    fn every_default_page_parses_and_each_view_has_an_explanation() {
        let pages = load(None).unwrap();
        for view in ["architecture", "layer", "heads", "quant"] {
            assert!(
                pages.iter().any(|p| p.view.as_deref() == Some(view)),
                "no explanation for {view}"
            );
        }
    }

    #[test]
    fn user_pages_add_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("views")).unwrap();
        std::fs::write(
            dir.path().join("views/quant.md"),
            "+++\ntitle = \"Mine\"\nview = \"quant\"\n+++\nmy words\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("extra.md"),
            "+++\ntitle = \"Extra\"\norder = -1\n+++\nhi\n",
        )
        .unwrap();
        let pages = load(Some(dir.path())).unwrap();
        let quant: Vec<_> = pages.iter().filter(|p| p.slug == "views/quant").collect();
        assert_eq!(quant.len(), 1);
        assert_eq!(quant[0].title, "Mine");
        assert_eq!(pages[0].slug, "extra");
    }
}
