//! Making a page self-contained and safe to open: inline scripts, styles
//! and data, and a Content-Security-Policy that forbids the network.
//!
//! Everything the page needs sits inside the HTML, so it works from disk or
//! as an email attachment. Inline text is escaped for the element it sits
//! in: nothing inside a `<script>` may close it early, which matters most for
//! the JSON data, where a model's name or chat template can hold
//! `</script>`. The CSP then lists the SHA-256 of each inline script, so even
//! markup that slipped through could not run, and allows no request of any
//! kind (`default-src 'none'`, `connect-src 'none'`).

use base64::Engine;
use sha2::{Digest, Sha256};

/// What a template emits (via `csp()`) where the CSP meta tag goes; replaced
/// once the page's scripts are known. Model strings cannot produce it: they
/// are escaped, so a `<` from a model never reaches the page.
pub const CSP_PLACEHOLDER: &str = "<!--ggviz:csp-->";

/// JSON made safe inside `<script type="application/json">`: `<`, `>` and
/// `&` become `\u003c`, `\u003e`, `\u0026`, which `JSON.parse` reads back
/// as the same characters.
pub fn json_for_script(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            // Valid in JSON, but line terminators in older JavaScript.
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Replaces every ASCII-case-insensitive `needle` (starting with `<`) with
/// `<\` plus the rest, which JavaScript and CSS read as the same text but
/// an HTML parser does not take for a closing tag.
fn break_tag(text: &str, needle: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (i, _) in lower.match_indices(needle) {
        out.push_str(&text[last..i]);
        out.push_str("<\\");
        last = i + 1;
    }
    out.push_str(&text[last..]);
    out
}

/// JavaScript made safe inside `<script>`.
pub fn script_text(js: &str) -> String {
    break_tag(&break_tag(js, "</script"), "<!--")
}

/// CSS made safe inside `<style>`.
pub fn style_text(css: &str) -> String {
    break_tag(css, "</style")
}

/// The CSP source expression for an inline script's text.
pub fn script_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The CSP meta tag for a page whose inline scripts have `hashes`.
pub fn csp_meta(hashes: &[String]) -> String {
    let scripts = if hashes.is_empty() {
        "'none'".to_owned()
    } else {
        hashes.join(" ")
    };
    format!(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         script-src {scripts}; style-src 'unsafe-inline'; img-src data: blob:; \
         connect-src 'none'; font-src 'none'; media-src 'none'; object-src 'none'; \
         frame-src 'none'; worker-src 'none'; manifest-src 'none'; base-uri 'none'; \
         form-action 'none'\">"
    )
}

/// Puts the CSP meta tag in place of the placeholder, which must occur
/// exactly once; returns the number found otherwise.
pub fn finish(html: &str, hashes: &[String]) -> Result<String, usize> {
    let found = html.matches(CSP_PLACEHOLDER).count();
    if found != 1 {
        return Err(found);
    }
    Ok(html.replacen(CSP_PLACEHOLDER, &csp_meta(hashes), 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_cannot_close_its_script_element() {
        let hostile = r#"{"name":"</script><script>window.__pwned=1</script><!--"}"#;
        let safe = json_for_script(hostile);
        assert!(!safe.contains('<') && !safe.contains('>'));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        let orig: serde_json::Value = serde_json::from_str(hostile).unwrap();
        assert_eq!(back, orig);
    }

    #[test]
    fn scripts_and_styles_cannot_close_their_element() {
        assert_eq!(script_text("a='</SCRIPT>'"), "a='<\\/SCRIPT>'");
        assert_eq!(script_text("x<!--y"), "x<\\!--y");
        assert_eq!(
            style_text("a{content:'</style>'}"),
            "a{content:'<\\/style>'}"
        );
        assert_eq!(script_text("a < b"), "a < b");
    }

    #[test]
    fn csp_lists_hashes_and_forbids_the_network() {
        let h = script_hash("alert(1)");
        // echo -n 'alert(1)' | openssl dgst -sha256 -binary | base64
        assert_eq!(h, "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='");
        let page = finish("<head><!--ggviz:csp--></head>", std::slice::from_ref(&h)).unwrap();
        assert!(page.contains("connect-src 'none'"));
        assert!(page.contains("default-src 'none'"));
        assert!(page.contains(&format!("script-src {h};")));
        assert_eq!(finish("<head></head>", &[]), Err(0));
        assert_eq!(finish("<!--ggviz:csp--><!--ggviz:csp-->", &[]), Err(2));
    }
}
