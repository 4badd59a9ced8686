//! The prompts a build runs: the bundled set, or the user's.
//!
//! A prompt is text, tokenized by llama.cpp exactly as the model would be,
//! or a repeated sequence of random vocabulary tokens (BOS + n tokens + the
//! same n tokens), which is how induction heads are found: text rarely
//! repeats a long span verbatim, random tokens cannot be predicted except by
//! copying, so the second half isolates the copying behaviour.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The bundled default prompt set.
pub const DEFAULT_PROMPTS: &str = include_str!("../../content/prompts.toml");

/// Longest random sequence accepted (it is repeated, so twice this many tokens).
pub const MAX_RANDOM_LENGTH: u32 = 1024;

/// One prompt to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSpec {
    /// A short name for the prompt selector.
    pub name: String,
    /// The text, tokenized by the model's own tokenizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Random tokens repeated twice instead of text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_repeat: Option<RandomRepeat>,
}

/// BOS + `length` random tokens + the same tokens again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomRepeat {
    pub length: u32,
    #[serde(default)]
    pub seed: u64,
}

/// Why prompts could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    #[error("cannot read prompts file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("prompts file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("prompt `{name}`: {message}")]
    Invalid { name: String, message: String },
    #[error("no prompts to run")]
    Empty,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptFile {
    prompt: Vec<PromptSpec>,
}

impl PromptSpec {
    /// A text prompt named after its first words.
    pub fn text(text: &str) -> PromptSpec {
        let name: String = text
            .split_whitespace()
            .take(4)
            .collect::<Vec<_>>()
            .join(" ");
        PromptSpec {
            name: if name.is_empty() {
                "prompt".into()
            } else {
                name
            },
            text: Some(text.to_owned()),
            random_repeat: None,
        }
    }

    fn check(&self) -> Result<(), PromptError> {
        let invalid = |message: &str| PromptError::Invalid {
            name: self.name.clone(),
            message: message.to_owned(),
        };
        match (&self.text, &self.random_repeat) {
            (Some(t), None) if !t.is_empty() => Ok(()),
            (Some(_), None) => Err(invalid("the text is empty")),
            (None, Some(r)) if (1..=MAX_RANDOM_LENGTH).contains(&r.length) => Ok(()),
            (None, Some(_)) => Err(invalid(&format!(
                "random_repeat.length must be 1 to {MAX_RANDOM_LENGTH}"
            ))),
            _ => Err(invalid("give exactly one of `text` and `random_repeat`")),
        }
    }
}

/// Parses a TOML prompt list (`[[prompt]]` tables, as in the bundled set).
pub fn parse_toml(source: &str, path: &Path) -> Result<Vec<PromptSpec>, PromptError> {
    let file: PromptFile = toml::from_str(source).map_err(|e| PromptError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    for p in &file.prompt {
        p.check()?;
    }
    Ok(file.prompt)
}

/// Parses plain text: prompts separated by lines holding only `---`.
pub fn parse_text(source: &str) -> Vec<PromptSpec> {
    let mut prompts = Vec::new();
    let mut current = String::new();
    let mut flush = |current: &mut String| {
        let text = current.trim_matches('\n');
        if !text.trim().is_empty() {
            prompts.push(PromptSpec::text(text));
        }
        current.clear();
    };
    for line in source.lines() {
        if line.trim_end() == "---" {
            flush(&mut current);
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    flush(&mut current);
    prompts
}

/// The bundled prompts.
pub fn defaults() -> Result<Vec<PromptSpec>, PromptError> {
    parse_toml(DEFAULT_PROMPTS, Path::new("content/prompts.toml"))
}

/// The prompts for a build: `--prompt` texts and a `--prompts` file replace
/// the bundled set; with neither, the bundled set runs.
pub fn select(texts: &[String], file: Option<&Path>) -> Result<Vec<PromptSpec>, PromptError> {
    let mut prompts: Vec<PromptSpec> = texts.iter().map(|t| PromptSpec::text(t)).collect();
    if let Some(path) = file {
        let source = std::fs::read_to_string(path).map_err(|source| PromptError::Read {
            path: path.to_owned(),
            source,
        })?;
        if path.extension().is_some_and(|e| e == "toml") {
            prompts.extend(parse_toml(&source, path)?);
        } else {
            prompts.extend(parse_text(&source));
        }
    }
    if texts.is_empty() && file.is_none() {
        return defaults();
    }
    for p in &prompts {
        p.check()?;
    }
    if prompts.is_empty() {
        return Err(PromptError::Empty);
    }
    Ok(prompts)
}

/// `length` token ids drawn from `0..n_vocab` with a fixed xorshift
/// generator, skipping ids `skip` rejects (control tokens).
pub fn random_tokens(length: u32, seed: u64, n_vocab: u32, skip: impl Fn(u32) -> bool) -> Vec<u32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(length as usize);
    // A vocabulary of only control tokens would loop forever: give up after
    // many rejections and return what was found.
    let mut tries = 0u64;
    while out.len() < length as usize && tries < 1000 * u64::from(length) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        tries += 1;
        let id = (state % u64::from(n_vocab.max(1))) as u32;
        if !skip(id) {
            out.push(id);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_prompts_cover_the_behaviours() {
        let p = defaults().unwrap();
        assert_eq!(p.len(), 5);
        assert!(p.iter().any(|p| p.random_repeat.is_some()));
        assert!(
            p.iter()
                .any(|p| p.text.as_deref().is_some_and(|t| t.contains("def ")))
        );
    }

    #[test]
    fn text_files_split_on_dashes_and_keep_inner_lines() {
        let p = parse_text("one\n---\ntwo\n\nlines\n---\n\n");
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].text.as_deref(), Some("two\n\nlines"));
    }

    #[test]
    fn user_prompts_replace_the_defaults_and_are_checked() {
        let p = select(&["Hello there".into()], None).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "Hello there");
        let bad = parse_toml(
            "[[prompt]]\nname = \"x\"\ntext = \"a\"\nrandom_repeat = { length = 3 }\n",
            Path::new("p.toml"),
        );
        assert!(bad.unwrap_err().to_string().contains("exactly one"));
        let unknown = parse_toml(
            "[[prompt]]\nname = \"x\"\ntxt = \"a\"\n",
            Path::new("p.toml"),
        );
        assert!(unknown.unwrap_err().to_string().contains("p.toml"));
    }

    #[test]
    fn random_tokens_are_deterministic_and_skip_rejected_ids() {
        let a = random_tokens(25, 7, 1000, |id| id < 10);
        assert_eq!(a, random_tokens(25, 7, 1000, |id| id < 10));
        assert_eq!(a.len(), 25);
        assert!(a.iter().all(|&id| (10..1000).contains(&id)));
        assert_ne!(a, random_tokens(25, 8, 1000, |id| id < 10));
    }
}
