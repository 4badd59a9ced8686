//! Scoring a family's members on an evaluation text, the way
//! `llama-perplexity --kl-divergence` does: the text cut into chunks of
//! `n_ctx` tokens, the model's BOS as each chunk's first token where its vocabulary adds
//! one, only the second half of each chunk scored (each position then has at
//! least `n_ctx / 2` tokens of context). The reference runs each chunk once
//! and every member is scored against it while its logits are at hand, so
//! the reference's distributions are never stored.

use serde::{Deserialize, Serialize};

use super::imatrix::chunks;
use super::stats::{OutputStats, Perplexity, TokenScore, score};
use crate::engine::{EngineError, Session, TokenId};

/// The evaluation text bundled with ggviz (see `data/eval/README.md`).
pub const EVALUATION_TEXT: &str = include_str!("../../../data/eval/evaluation.txt");

/// How to evaluate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalOptions {
    /// Tokens per chunk (llama-perplexity's `n_ctx`).
    pub n_ctx: usize,
    /// Use at most this many tokens of the text.
    pub max_tokens: Option<usize>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            n_ctx: 512,
            max_tokens: None,
        }
    }
}

/// The output statistics of a family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyOutputs {
    /// Chunks scored.
    pub n_chunks: usize,
    /// Tokens per chunk.
    pub n_ctx: usize,
    /// The reference's perplexity.
    pub reference: Perplexity,
    /// Each member against the reference, in the order given.
    pub members: Vec<OutputStats>,
}

/// The chunks `text` is scored in, for the model of `session`.
pub fn plan(
    session: &Session,
    text: &str,
    options: &EvalOptions,
) -> Result<Vec<Vec<TokenId>>, EngineError> {
    let mut ids: Vec<TokenId> = session.tokenize(text)?.into_iter().map(|t| t.id).collect();
    if let Some(max) = options.max_tokens {
        ids.truncate(max);
    }
    let plan = chunks(&ids, options.n_ctx, session.chunk_bos());
    if plan.is_empty() || options.n_ctx < 4 {
        return Err(EngineError::InvalidRequest(format!(
            "the evaluation text gives {} tokens, fewer than one chunk of {} \
             (lower the chunk size or give a longer text)",
            ids.len(),
            options.n_ctx
        )));
    }
    Ok(plan)
}

/// Scores every member against the reference on `text`. The members must
/// share the reference's vocabulary (a family does).
pub fn evaluate(
    reference: &mut Session,
    members: &mut [&mut Session],
    text: &str,
    options: &EvalOptions,
) -> Result<FamilyOutputs, EngineError> {
    let plan = plan(reference, text, options)?;
    let first = options.n_ctx / 2;
    let mut base_nll = Vec::new();
    let mut scores: Vec<Vec<TokenScore>> = vec![Vec::new(); members.len()];
    for chunk in &plan {
        let base = reference.logits_from(chunk, first)?;
        for j in first..chunk.len() - 1 {
            let target = usize::try_from(chunk[j + 1]).unwrap_or(usize::MAX);
            let row = base.row(j - first);
            let own = score(row, row, target).ok_or_else(|| mismatch(target))?;
            base_nll.push(own.nll);
        }
        for (member, out) in members.iter_mut().zip(&mut scores) {
            // The reference among the members is itself: its scores are
            // those of its own logits, not of a second decode.
            let logits = if member.path() == reference.path() {
                None
            } else {
                Some(member.logits_from(chunk, first)?)
            };
            let logits = logits.as_ref().unwrap_or(&base);
            for j in first..chunk.len() - 1 {
                let target = usize::try_from(chunk[j + 1]).unwrap_or(usize::MAX);
                out.push(
                    score(base.row(j - first), logits.row(j - first), target)
                        .ok_or_else(|| mismatch(target))?,
                );
            }
        }
    }
    Ok(FamilyOutputs {
        n_chunks: plan.len(),
        n_ctx: options.n_ctx,
        reference: Perplexity::of(base_nll.into_iter()),
        members: scores.iter().map(|s| OutputStats::of(s)).collect(),
    })
}

fn mismatch(target: usize) -> EngineError {
    EngineError::InvalidRequest(format!(
        "token {target} or the vocabulary differs between the reference and a member"
    ))
}
