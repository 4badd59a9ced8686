//! The vocabulary as the page shows it: each token's readable piece, its
//! type from the file and a script class, from the GGUF metadata alone (no
//! llama.cpp session needed, so `--no-inference` builds have them too).

use crate::gguf::GgufModel;
use crate::gguf::value::Array;

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
pub mod token_type {
    pub const UNDEFINED: u8 = 0;
    pub const NORMAL: u8 = 1;
    pub const UNKNOWN: u8 = 2;
    pub const CONTROL: u8 = 3;
    pub const USER_DEFINED: u8 = 4;
    pub const UNUSED: u8 = 5;
    pub const BYTE: u8 = 6;
}

/// Script classes, in the order the page names them.
pub const SCRIPTS: [&str; 10] = [
    "whitespace",
    "Latin",
    "digits",
    "punctuation",
    "code-like",
    "CJK",
    "Cyrillic",
    "other",
    "byte token",
    "control",
];

/// The vocabulary's pieces, types and script classes.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocabulary {
    /// Readable text of each token (`Ġ`/`▁` turned back into spaces).
    pub pieces: Vec<String>,
    /// `tokenizer.ggml.token_type`, [`token_type::NORMAL`] where absent.
    pub types: Vec<u8>,
    /// Index into [`SCRIPTS`].
    pub scripts: Vec<u8>,
    /// Whether the file gives token types.
    pub has_types: bool,
}

impl Vocabulary {
    /// The first `n_vocab` tokens of `gguf`'s vocabulary (rows past the
    /// vocabulary's end, if any, get empty pieces).
    pub fn from_gguf(gguf: &GgufModel, n_vocab: usize) -> Vocabulary {
        let byte_level = gguf
            .get("tokenizer.ggml.model")
            .and_then(|v| v.as_str())
            .is_some_and(|m| m == "gpt2");
        let raw: Vec<String> = match gguf.get("tokenizer.ggml.tokens").and_then(|v| v.as_array()) {
            Some(Array::String(s)) => s.iter().take(n_vocab).map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        let types_raw: Option<Vec<i64>> = match gguf
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.as_array())
        {
            Some(Array::I32(v)) => Some(v.iter().map(|&x| i64::from(x)).collect()),
            Some(Array::U32(v)) => Some(v.iter().map(|&x| i64::from(x)).collect()),
            Some(Array::I8(v)) => Some(v.iter().map(|&x| i64::from(x)).collect()),
            Some(Array::U8(v)) => Some(v.iter().map(|&x| i64::from(x)).collect()),
            _ => None,
        };
        let has_types = types_raw.is_some();
        let mut pieces = Vec::with_capacity(n_vocab);
        let mut types = Vec::with_capacity(n_vocab);
        let mut scripts = Vec::with_capacity(n_vocab);
        for i in 0..n_vocab {
            let ty = types_raw
                .as_ref()
                .and_then(|t| t.get(i))
                .and_then(|&t| u8::try_from(t).ok())
                .filter(|&t| t <= token_type::BYTE)
                .unwrap_or(token_type::NORMAL);
            let piece = raw.get(i).map_or_else(String::new, |p| {
                if byte_level && ty != token_type::CONTROL {
                    byte_level_text(p)
                } else {
                    p.replace('▁', " ")
                }
            });
            scripts.push(script(&piece, ty));
            pieces.push(piece);
            types.push(ty);
        }
        Vocabulary {
            pieces,
            types,
            scripts,
            has_types,
        }
    }

    /// Tokens that text can produce: normal and user-defined ones.
    pub fn reachable(&self, i: usize) -> bool {
        matches!(
            self.types.get(i),
            Some(&token_type::NORMAL | &token_type::USER_DEFINED | &token_type::UNDEFINED)
        )
    }
}

/// GPT-2's byte-level alphabet back to bytes (`bytes_to_unicode` in
/// OpenAI's encoder.py, which llama.cpp's `unicode_byte_to_utf8` mirrors):
/// printable bytes are themselves, the others were shifted to U+0100 and
/// up in order. Bytes that are not UTF-8 on their own are written `<0xE2>`
/// as the engine writes them.
fn byte_level_text(piece: &str) -> String {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let shifted: Vec<u8> = (0..=255u32)
        .filter(|&b| !printable(b))
        .map(|b| b as u8)
        .collect();
    let mut bytes = Vec::with_capacity(piece.len());
    for c in piece.chars() {
        let u = c as u32;
        if printable(u) {
            bytes.push(u as u8);
        } else if let Some(&b) = u.checked_sub(256).and_then(|k| shifted.get(k as usize)) {
            bytes.push(b);
        } else {
            return piece.to_owned();
        }
    }
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let mut out = String::new();
            for chunk in e.as_bytes().utf8_chunks() {
                out.push_str(chunk.valid());
                for b in chunk.invalid() {
                    out.push_str(&format!("<0x{b:02X}>"));
                }
            }
            out
        }
    }
}

/// The script class of a piece (an index into [`SCRIPTS`]).
pub fn script(piece: &str, ty: u8) -> u8 {
    if ty == token_type::BYTE {
        return 8;
    }
    if ty == token_type::CONTROL {
        return 9;
    }
    let t = piece.trim();
    if t.is_empty() {
        return 0;
    }
    let cjk = |c: char| matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF);
    if t.chars().any(cjk) {
        5
    } else if t.chars().any(|c| ('\u{0400}'..='\u{04FF}').contains(&c)) {
        6
    } else if t.chars().all(|c| c.is_ascii_digit()) {
        2
    } else if t
        .chars()
        .all(|c| c.is_alphabetic() && (c.is_ascii() || c <= '\u{024F}'))
    {
        1
    } else if t.chars().all(|c| c.is_ascii_punctuation())
        && !t.chars().any(|c| "{}()[];=<>_".contains(c))
    {
        3
    } else if t.chars().all(|c| c.is_ascii_graphic()) {
        4
    } else {
        7
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_pieces_become_text() {
        assert_eq!(byte_level_text("Ġthe"), " the");
        assert_eq!(byte_level_text("Ċ"), "\n");
        assert_eq!(byte_level_text("âĢ"), "<0xE2><0x80>");
    }

    #[test]
    fn scripts() {
        assert_eq!(SCRIPTS[script(" the", 1) as usize], "Latin");
        assert_eq!(SCRIPTS[script("123", 1) as usize], "digits");
        assert_eq!(SCRIPTS[script("  ", 1) as usize], "whitespace");
        assert_eq!(SCRIPTS[script("...", 1) as usize], "punctuation");
        assert_eq!(SCRIPTS[script("();", 1) as usize], "code-like");
        assert_eq!(SCRIPTS[script("x_1", 1) as usize], "code-like");
        assert_eq!(SCRIPTS[script("的", 1) as usize], "CJK");
        assert_eq!(SCRIPTS[script("при", 1) as usize], "Cyrillic");
        assert_eq!(SCRIPTS[script("<0x0A>", 6) as usize], "byte token");
        assert_eq!(SCRIPTS[script("<s>", 3) as usize], "control");
    }
}
