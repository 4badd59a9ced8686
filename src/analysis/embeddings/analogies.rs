//! Word analogies `a − b + c ≈ d` in the embedding space, the classic
//! probe of linear structure (Mikolov et al., 2013), evaluated on a bundled
//! set (`content/analogies.toml`) or the user's (`--analogies FILE`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::EmbeddingError;
use super::matrix::{Matrix, dot};
use super::neighbours::TopK;

/// The bundled set.
pub const BUNDLED: &str = include_str!("../../../content/analogies.toml");

/// One quadruple: `a − b + c` should land on `d` ("Paris − France + Italy
/// = Rome").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quadruple {
    /// A group name (`capital`, `gender`, `plural`, ...).
    #[serde(default)]
    pub kind: String,
    pub a: String,
    pub b: String,
    pub c: String,
    pub d: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    analogy: Vec<Quadruple>,
}

/// Parses an analogies file (`[[analogy]]` tables); `origin` names it in
/// errors.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Quadruple>, EmbeddingError> {
    toml::from_str::<File>(text)
        .map(|f| f.analogy)
        .map_err(|e| EmbeddingError::Analogies {
            origin: origin.to_owned(),
            reason: e.to_string(),
        })
}

/// One evaluated quadruple.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalogyResult {
    pub quad: Quadruple,
    /// Token ids of a, b, c, d; `None` when a word is not a token.
    pub ids: Option<[u32; 4]>,
    /// The 5 best answers (inputs excluded), best first.
    pub top: Vec<u32>,
    pub sims: Vec<f32>,
}

/// The token for a word: the piece ` word` (a word after a space, how
/// words mostly occur), else `word`.
pub fn word_ids(pieces: &[String]) -> HashMap<&str, u32> {
    let mut map = HashMap::new();
    for (i, p) in pieces.iter().enumerate().rev() {
        map.insert(p.as_str(), i as u32);
    }
    map
}

fn lookup(map: &HashMap<&str, u32>, word: &str) -> Option<u32> {
    map.get(format!(" {word}").as_str())
        .or_else(|| map.get(word))
        .copied()
}

/// The `k` nearest rows of `unit` to `a − b + c`, the inputs excluded.
pub fn solve(unit: &Matrix, a: u32, b: u32, c: u32, k: usize) -> Vec<(f32, u32)> {
    let q: Vec<f32> = (0..unit.dim)
        .map(|j| unit.row(a as usize)[j] - unit.row(b as usize)[j] + unit.row(c as usize)[j])
        .collect();
    let qn = dot(&q, &q).sqrt().max(f32::MIN_POSITIVE);
    let mut top = TopK::new(k);
    for i in 0..unit.n_rows {
        let id = i as u32;
        if id != a && id != b && id != c {
            top.push(dot(&q, unit.row(i)) / qn, id);
        }
    }
    top.into_items()
}

/// Evaluates every quadruple on the unit rows.
pub fn evaluate(unit: &Matrix, pieces: &[String], quads: &[Quadruple]) -> Vec<AnalogyResult> {
    let map = word_ids(pieces);
    quads
        .iter()
        .map(|q| {
            let ids = (|| {
                Some([
                    lookup(&map, &q.a)?,
                    lookup(&map, &q.b)?,
                    lookup(&map, &q.c)?,
                    lookup(&map, &q.d)?,
                ])
            })();
            let (top, sims) = match ids {
                Some([a, b, c, _]) => solve(unit, a, b, c, 5)
                    .into_iter()
                    .map(|(s, i)| (i, s))
                    .unzip(),
                None => (Vec::new(), Vec::new()),
            };
            AnalogyResult {
                quad: q.clone(),
                ids,
                top,
                sims,
            }
        })
        .collect()
}

/// Top-1 and top-5 accuracy over the quadruples whose words are all
/// tokens, and how many those are.
pub fn accuracy(results: &[AnalogyResult]) -> (f32, f32, usize) {
    let scored: Vec<_> = results
        .iter()
        .filter_map(|r| Some((r.ids?[3], &r.top)))
        .collect();
    let n = scored.len();
    let top1 = scored
        .iter()
        .filter(|(d, top)| top.first() == Some(d))
        .count();
    let top5 = scored.iter().filter(|(d, top)| top.contains(d)).count();
    let share = |x: usize| if n == 0 { 0.0 } else { x as f32 / n as f32 };
    (share(top1), share(top5), n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_set_parses_with_enough_quadruples() {
        let quads = parse(BUNDLED, "bundled").unwrap();
        assert!(quads.len() >= 20);
        for kind in ["capital", "gender", "plural", "tense", "comparative"] {
            assert!(quads.iter().any(|q| q.kind == kind), "{kind}");
        }
        let err = parse("[[analogy]]\na = 1", "mine.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mine.toml"), "{err}");
    }

    #[test]
    fn an_exact_analogy_is_solved() {
        // Unit rows with king − man = queen − woman = (0, 1.6, 0, …):
        // king − man + woman is queen exactly; the others lie elsewhere.
        let dim = 8;
        let e = |j: usize| {
            (0..dim)
                .map(|i| if i == j { 1.0f32 } else { 0.0 })
                .collect::<Vec<_>>()
        };
        let v = |xs: [f32; 3]| {
            let mut r = vec![0.0f32; dim];
            r[..3].copy_from_slice(&xs);
            r
        };
        let rows = [
            v([0.6, -0.8, 0.0]),
            v([0.0, -0.8, 0.6]),
            v([0.6, 0.8, 0.0]),
            v([0.0, 0.8, 0.6]),
            e(4),
            e(5),
            e(6),
        ];
        let pieces: Vec<String> = [" man", " woman", " king", " queen", " x", " y", " z"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let m = Matrix::new(rows.len(), dim, rows.concat())
            .unwrap()
            .unit_rows();
        let quads = vec![Quadruple {
            kind: "gender".into(),
            a: "king".into(),
            b: "man".into(),
            c: "woman".into(),
            d: "queen".into(),
        }];
        let res = evaluate(&m, &pieces, &quads);
        assert_eq!(res[0].ids, Some([2, 0, 1, 3]));
        assert_eq!(res[0].top[0], 3);
        assert!((res[0].sims[0] - 1.0).abs() < 1e-5, "{:?}", res[0].sims);
        assert_eq!(accuracy(&res), (1.0, 1.0, 1));
        let missing = Quadruple {
            a: "emperor".into(),
            ..quads[0].clone()
        };
        assert_eq!(accuracy(&evaluate(&m, &pieces, &[missing])).2, 0);
    }
}
