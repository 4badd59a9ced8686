//! Generations side by side: a greedy continuation of each prompt by each
//! member, and the first generated token where it departs from the
//! reference's continuation.

use serde::{Deserialize, Serialize};

use crate::engine::{EngineError, Session, TokenId};

/// Tokens generated per prompt unless told otherwise.
pub const DEFAULT_TOKENS: usize = 32;

/// One member's continuation of one prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Continuation {
    pub ids: Vec<TokenId>,
    /// Each token's text (bytes that are not UTF-8 on their own as `<0xNN>`).
    pub pieces: Vec<String>,
    /// Index of the first generated token that differs from the
    /// reference's (a continuation that stops earlier or later than the
    /// reference's departs where the shorter one ends); `None` when the two
    /// are the same.
    pub diverges_at: Option<usize>,
}

/// Every member's continuation of one prompt (`members[i]` is member `i`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptGenerations {
    pub prompt: String,
    pub members: Vec<Continuation>,
}

/// The first index where `member` departs from `base`.
pub fn first_divergence(base: &[TokenId], member: &[TokenId]) -> Option<usize> {
    match base.iter().zip(member).position(|(a, b)| a != b) {
        Some(i) => Some(i),
        None if base.len() != member.len() => Some(base.len().min(member.len())),
        None => None,
    }
}

/// Greedy continuations of `n_tokens` tokens of every prompt (`prompts[i]`
/// its text, `ids[i]` its tokens) by the reference and every member (fewer
/// where the prompt nearly fills the sessions' token limit; a prompt that
/// fills it is left out).
pub fn generate(
    reference: &mut Session,
    members: &mut [&mut Session],
    prompts: &[String],
    ids: &[Vec<TokenId>],
    n_tokens: usize,
) -> Result<Vec<PromptGenerations>, EngineError> {
    let mut out = Vec::with_capacity(prompts.len());
    for (text, ids) in prompts.iter().zip(ids) {
        // A prompt near the session's token limit gets a shorter
        // continuation rather than failing the family.
        let limit = members
            .iter()
            .map(|m| m.options().max_tokens)
            .fold(reference.options().max_tokens, usize::min);
        let n_tokens = n_tokens.min(limit.saturating_sub(ids.len()));
        if ids.is_empty() || n_tokens == 0 {
            continue;
        }
        let base = reference.greedy(ids, n_tokens)?;
        let members = members
            .iter_mut()
            .map(|m| {
                // The reference among the members continues as it did.
                let got = if m.path() == reference.path() {
                    base.clone()
                } else {
                    m.greedy(ids, n_tokens)?
                };
                let pieces = got
                    .iter()
                    .map(|&id| Ok(m.token(id)?.piece))
                    .collect::<Result<Vec<_>, EngineError>>()?;
                Ok(Continuation {
                    diverges_at: first_divergence(&base, &got),
                    ids: got,
                    pieces,
                })
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        out.push(PromptGenerations {
            prompt: text.clone(),
            members,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divergence_is_the_first_differing_token_or_the_shorter_end() {
        assert_eq!(first_divergence(&[1, 2, 3], &[1, 2, 3]), None);
        assert_eq!(first_divergence(&[1, 2, 3], &[1, 5, 3]), Some(1));
        assert_eq!(first_divergence(&[1, 2, 3], &[1, 2]), Some(2));
        assert_eq!(first_divergence(&[], &[]), None);
    }
}
