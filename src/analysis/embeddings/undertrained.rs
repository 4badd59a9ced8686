//! Under-trained token candidates, by the indicator of "Fishing for
//! Magikarp" (Land & Bartolo, 2024), and their verification through
//! llama.cpp.
//!
//! A token that (almost) never occurred in training keeps an embedding row
//! that training barely moved. For an untied model that shows as a small
//! input-row norm; for a tied one (where the output head pulls every row)
//! as a row close to the mean row of tokens known to be unused. Low
//! indicator values are suspicious either way.

use serde::{Deserialize, Serialize};

use super::matrix::{Matrix, dot};
use super::tokens::{Vocabulary, token_type};
use crate::engine::ffi::Model;
use crate::engine::{EngineError, Session, TokenId};

/// At most this many candidates are listed (the first
/// [`VERIFY_DEFAULT`] of them verified by `ggviz build`).
pub const MAX_CANDIDATES: usize = 200;

/// Which indicator was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Indicator {
    /// L2 norm of the input-embedding row (untied models).
    RowNorm,
    /// Cosine distance of the row to the mean row of unused tokens (tied).
    UnusedDistance,
}

/// Every token's indicator and the candidates.
#[derive(Debug, Clone, PartialEq)]
pub struct Undertrained {
    pub indicator: Indicator,
    pub values: Vec<f32>,
    /// The 2nd percentile of the reachable tokens' values.
    pub threshold: Option<f32>,
    /// Reachable tokens at or below the threshold, lowest first, at most
    /// [`MAX_CANDIDATES`].
    pub candidates: Vec<u32>,
    pub notes: Vec<String>,
}

/// The reachable tokens whose decode→encode round trip through llama.cpp's
/// tokenizer does not give them back (Land & Bartolo's "unreachable"
/// tokens): each is detokenized alone and the text tokenized again, without
/// special tokens; a token that comes back as anything but itself is
/// listed. `model` may be a vocabulary-only load ([`Model::load_vocab`]).
///
/// [`Model::load_vocab`]: crate::engine::ffi::Model::load_vocab
pub fn round_trip_failures(model: &Model, vocab: &Vocabulary) -> Vec<u32> {
    let n = model.n_vocab().min(vocab.pieces.len());
    let fails = |i: usize| {
        let id = i as TokenId;
        match model.detokenize(&[id], false, false) {
            Ok(text) => model
                .tokenize(&text, false, false)
                .map_or(true, |back| back != [id]),
            // Not UTF-8 alone: no text can give it back by itself.
            Err(_) => true,
        }
    };
    // The vocabulary's functions are thread-safe; ranges of ids in order.
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .clamp(1, 8);
    let per = n.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let parts: Vec<_> = (0..n)
            .step_by(per)
            .map(|start| {
                let fails = &fails;
                s.spawn(move || {
                    (start..(start + per).min(n))
                        .filter(|&i| vocab.reachable(i) && fails(i))
                        .map(|i| i as u32)
                        .collect::<Vec<u32>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// The indicator for every row of `embd` (`tied`: the head reuses it).
/// `round_trip`: the tokens whose decode→encode round trip fails
/// ([`round_trip_failures`]), the reference set of a tied model whose file
/// marks no token unused; `None` when it was not computed.
pub fn indicator(
    embd: &Matrix,
    vocab: &Vocabulary,
    tied: bool,
    round_trip: Option<&[u32]>,
) -> Undertrained {
    let mut notes = Vec::new();
    let mut unused: Vec<usize> = (0..embd.n_rows)
        .filter(|&i| vocab.types.get(i) == Some(&token_type::UNUSED))
        .collect();
    let mut unreachable = vec![false; embd.n_rows];
    if tied
        && unused.is_empty()
        && let Some(failed) = round_trip.filter(|f| !f.is_empty())
    {
        unused = failed
            .iter()
            .map(|&i| i as usize)
            .filter(|&i| i < embd.n_rows)
            .collect();
        unused.iter().for_each(|&i| unreachable[i] = true);
        notes.push(format!(
            "the file marks no token unused (token_type 5), so the reference set is the {} \
                 tokens whose decode→encode round trip through llama.cpp's tokenizer does not \
                 give them back; they are not candidates",
            unused.len()
        ));
    }

    let (kind, values) = if tied && !unused.is_empty() {
        let mut mean = vec![0f32; embd.dim];
        for &i in &unused {
            mean.iter_mut().zip(embd.row(i)).for_each(|(m, x)| *m += x);
        }
        mean.iter_mut().for_each(|m| *m /= unused.len() as f32);
        let mn = dot(&mean, &mean).sqrt();
        let values = (0..embd.n_rows)
            .map(|i| {
                let r = embd.row(i);
                let rn = dot(r, r).sqrt();
                if rn == 0.0 || mn == 0.0 {
                    1.0
                } else {
                    1.0 - dot(r, &mean) / (rn * mn)
                }
            })
            .collect();
        (Indicator::UnusedDistance, values)
    } else {
        if tied {
            notes.push(
                match round_trip {
                    Some(_) => {
                        "the file marks no token unused (token_type 5) and every token \
                                survives the decode→encode round trip, so the tied model's \
                                indicator falls back to the row norm"
                    }
                    None => {
                        "the file marks no token unused (token_type 5), so the tied model's \
                             indicator falls back to the row norm; the decode→encode round trip \
                             was not run"
                    }
                }
                .to_owned(),
            );
        }
        (Indicator::RowNorm, embd.norms())
    };
    let mut reachable: Vec<(f32, u32)> = (0..embd.n_rows)
        .filter(|&i| vocab.reachable(i) && !unreachable[i])
        .map(|i| (values[i], i as u32))
        .filter(|(v, _)| v.is_finite())
        .collect();
    reachable.sort_by(|a, b| a.0.total_cmp(&b.0));
    // No reachable token with a finite value: no threshold, no candidate
    // (a NaN here would not survive JSON).
    let threshold = (!reachable.is_empty()).then(|| {
        let at = ((reachable.len() - 1) as f64 * 0.02).floor() as usize;
        reachable[at].0
    });
    let candidates = reachable
        .iter()
        .take_while(|(v, _)| threshold.is_some_and(|t| *v <= t))
        .take(MAX_CANDIDATES)
        .map(|&(_, i)| i)
        .collect();
    Undertrained {
        indicator: kind,
        values,
        threshold,
        candidates,
        notes,
    }
}

/// Candidates verified by default, lowest indicator first: each is one
/// forward pass, and 200 took 344 s in a debug build on the busy 2-core VM.
pub const VERIFY_DEFAULT: usize = 32;

/// Repetition prompts decoded together, as sequences of one batch.
pub const VERIFY_BATCH: usize = 32;

/// The repetition prompt around a candidate, tokenized once.
struct PromptParts {
    head: Vec<TokenId>,
    mid: Vec<TokenId>,
    tail: Vec<TokenId>,
}

impl PromptParts {
    fn new(session: &Session) -> Result<PromptParts, EngineError> {
        let bos = session.bos();
        let ids = |text: &str, keep_bos: bool| -> Result<Vec<TokenId>, EngineError> {
            Ok(session
                .tokenize(text)?
                .iter()
                .map(|t| t.id)
                .filter(|&id| keep_bos || Some(id) != bos)
                .collect())
        };
        Ok(PromptParts {
            head: ids("Please repeat the string: \"", true)?,
            mid: ids("\"\nString: \"", false)?,
            tail: ids("\"\nRepeat: \"", false)?,
        })
    }

    fn with(&self, candidate: u32) -> Vec<TokenId> {
        let id = candidate as TokenId;
        let mut ids = self.head.clone();
        ids.push(id);
        ids.extend(&self.mid);
        ids.push(id);
        ids.extend(&self.tail);
        ids
    }
}

/// The repetition prompt [`verify`] asks about `candidate` with.
pub fn prompt(session: &Session, candidate: u32) -> Result<Vec<TokenId>, EngineError> {
    Ok(PromptParts::new(session)?.with(candidate))
}

/// A token counts as confirmed when the model, asked to repeat it, gives
/// it less than this probability.
pub const CONFIRM_BELOW: f32 = 0.01;

/// The probability the model gives each candidate when asked to repeat it
/// (the repetition prompt of Land & Bartolo: the token between quotes,
/// twice, then an open quote), in candidate order.
pub fn verify(session: &mut Session, candidates: &[u32]) -> Result<Vec<f32>, EngineError> {
    let parts = PromptParts::new(session)?;
    let prompts: Vec<Vec<TokenId>> = candidates
        .iter()
        .map(|&c| parts.with(c)[parts.head.len()..].to_vec())
        .collect();
    // The prompts are independent sequences of one batch: 32 of them cost
    // about what one prompt costs alone on a CPU; their common head is
    // decoded once and shared.
    let mut probs = Vec::with_capacity(candidates.len());
    for (chunk, ids) in candidates
        .chunks(VERIFY_BATCH)
        .zip(prompts.chunks(VERIFY_BATCH))
    {
        let seqs: Vec<&[TokenId]> = ids.iter().map(Vec::as_slice).collect();
        for (&c, last) in chunk
            .iter()
            .zip(session.last_logits_after(&parts.head, &seqs)?)
        {
            let max = last.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = last.iter().map(|&l| (l - max).exp()).sum();
            let p = last.get(c as usize).map_or(0.0, |&l| (l - max).exp() / sum);
            probs.push(p);
        }
    }
    Ok(probs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(types: Vec<u8>) -> Vocabulary {
        let n = types.len();
        Vocabulary {
            pieces: vec![String::new(); n],
            scripts: vec![1; n],
            types,
            has_types: true,
        }
    }

    #[test]
    fn tokens_planted_near_the_unused_mean_are_found() {
        // 100 tokens in 4 dims; 0..5 are marked unused with rows near
        // (1, 1, 0, 0); 10 and 11 are normal tokens planted there too; the
        // rest point elsewhere.
        let n = 100;
        let mut data = Vec::new();
        let mut types = Vec::new();
        for i in 0..n {
            let j = i as f32 * 0.01;
            let row = match i {
                0..5 => [1.0 + j, 1.0 - j, 0.0, 0.0],
                10 | 11 => [1.0, 1.0 + j, j, 0.0],
                _ => [(i as f32).sin(), (i as f32).cos(), 1.0, 0.5 + j],
            };
            data.extend(row);
            types.push(if i < 5 {
                token_type::UNUSED
            } else {
                token_type::NORMAL
            });
        }
        let m = Matrix::new(n, 4, data).unwrap();
        let u = indicator(&m, &vocab(types), true, None);
        assert_eq!(u.indicator, Indicator::UnusedDistance);
        assert!(
            u.candidates.contains(&10) && u.candidates.contains(&11),
            "{:?}",
            u.candidates
        );
        assert!(!u.candidates.contains(&50));
        assert!(
            u.candidates.iter().all(|&c| c >= 5),
            "unused tokens are not reachable"
        );
        assert!(u.notes.is_empty());
    }

    #[test]
    fn without_unused_marks_the_round_trip_failures_are_the_reference() {
        // No token marked unused; 0..5 fail the round trip, rows near
        // (1, 1, 0, 0); 10 and 11 are planted there too.
        let n = 100;
        let mut data = Vec::new();
        for i in 0..n {
            let j = i as f32 * 0.01;
            data.extend(match i {
                0..5 => [1.0 + j, 1.0 - j, 0.0, 0.0],
                10 | 11 => [1.0, 1.0 + j, j, 0.0],
                _ => [(i as f32).sin(), (i as f32).cos(), 1.0, 0.5 + j],
            });
        }
        let m = Matrix::new(n, 4, data).unwrap();
        let v = vocab(vec![token_type::NORMAL; n]);
        let u = indicator(&m, &v, true, Some(&[0, 1, 2, 3, 4]));
        assert_eq!(u.indicator, Indicator::UnusedDistance);
        assert!(u.candidates.contains(&10) && u.candidates.contains(&11));
        assert!(u.candidates.iter().all(|&c| c >= 5), "{:?}", u.candidates);
        assert!(u.notes[0].contains("round trip"), "{:?}", u.notes);
        // Not computed, or nothing fails: the row norm.
        assert_eq!(indicator(&m, &v, true, None).indicator, Indicator::RowNorm);
        assert_eq!(
            indicator(&m, &v, true, Some(&[])).indicator,
            Indicator::RowNorm
        );
    }

    #[test]
    fn untied_models_use_the_row_norm() {
        let mut data: Vec<f32> = (0..200)
            .flat_map(|i| [1.0 + i as f32 * 0.01, 1.0])
            .collect();
        data[2 * 7] = 0.01;
        data[2 * 7 + 1] = 0.0;
        let m = Matrix::new(200, 2, data).unwrap();
        let u = indicator(&m, &vocab(vec![token_type::NORMAL; 200]), false, None);
        assert_eq!(u.indicator, Indicator::RowNorm);
        // The 2nd percentile of 200 values is the 4th lowest: token 7, then
        // the three smallest rows 0, 1, 2.
        assert_eq!(u.candidates, [7, 0, 1, 2]);
    }
}
