//! Rendering theme templates with minijinja.
//!
//! Templates load at run time from the [`Theme`], so users restyle pages
//! without recompiling. Autoescaping is on for every `.html` template: a
//! string from a model file reaches the page only escaped. Templates pull
//! assets in with functions, each escaped for the element it lands in:
//!
//! - `csp()`: where the Content-Security-Policy meta tag goes (first in
//!   `<head>`); it is filled in after rendering with the hash of every
//!   script the page inlined;
//! - `style(path)`, `script(path)`: a theme file inlined as `<style>` or
//!   `<script>`;
//! - `theme_files(dir)`: the files of a theme folder, sorted, so a template
//!   can inline every view in `js/views/`;
//! - filters `bytes` and `count`: human-readable sizes and counts.

use std::sync::{Arc, Mutex, PoisonError};

use minijinja::{Environment, Error, ErrorKind, Value};

use super::inline;
use super::{SiteError, Theme};
use crate::inspect::{human_bytes, human_count};

/// Renders pages of one theme, one page at a time.
#[derive(Debug)]
pub struct Renderer {
    env: Environment<'static>,
    /// CSP hashes of the scripts inlined by the page being rendered.
    hashes: Arc<Mutex<Vec<String>>>,
}

fn template_error(e: SiteError) -> Error {
    Error::new(ErrorKind::InvalidOperation, e.to_string()).with_source(e)
}

impl Renderer {
    /// A renderer for `theme`.
    pub fn new(theme: &Theme) -> Renderer {
        let mut env = Environment::new();
        let loader_theme = theme.clone();
        env.set_loader(
            move |name| match loader_theme.read_text(&format!("templates/{name}")) {
                Ok(text) => Ok(Some(text)),
                Err(SiteError::ThemeFileMissing(_)) => Ok(None),
                Err(e) => Err(template_error(e)),
            },
        );
        let hashes = Arc::new(Mutex::new(Vec::new()));

        env.add_function("csp", || {
            Value::from_safe_string(inline::CSP_PLACEHOLDER.to_owned())
        });
        let t = theme.clone();
        env.add_function("style", move |path: String| -> Result<Value, Error> {
            let css = t.read_text(&path).map_err(template_error)?;
            Ok(Value::from_safe_string(format!(
                "<style>{}</style>",
                inline::style_text(&css)
            )))
        });
        let t = theme.clone();
        let h = Arc::clone(&hashes);
        env.add_function("script", move |path: String| -> Result<Value, Error> {
            let js = t.read_text(&path).map_err(template_error)?;
            let text = inline::script_text(&js);
            h.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(inline::script_hash(&text));
            Ok(Value::from_safe_string(format!("<script>{text}</script>")))
        });
        let t = theme.clone();
        env.add_function(
            "theme_files",
            move |dir: String| -> Result<Vec<String>, Error> {
                t.list(&dir).map_err(template_error)
            },
        );
        env.add_filter("bytes", |v: f64| human_bytes(v.max(0.0) as u64));
        env.add_filter("count", |v: f64| human_count(v.max(0.0) as u64));
        Renderer { env, hashes }
    }

    /// Renders `template` (a file in the theme's `templates/`) with `ctx`
    /// and fills in the CSP.
    pub fn render(&mut self, template: &str, ctx: Value) -> Result<String, SiteError> {
        let err = |source| SiteError::Template {
            template: template.to_owned(),
            source,
        };
        self.hashes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let html = self
            .env
            .get_template(template)
            .and_then(|t| t.render(ctx))
            .map_err(err)?;
        let hashes =
            std::mem::take(&mut *self.hashes.lock().unwrap_or_else(PoisonError::into_inner));
        inline::finish(&html, &hashes).map_err(|found| SiteError::Csp {
            template: template.to_owned(),
            found,
        })
    }
}
