//! `ggviz run`: one prompt through llama.cpp with the capture on, shown as
//! its tokens, the next-token probabilities and where the time went.
//!
//! The JSON shape is documented in the README and is a contract: users and
//! tests compare it with other runtimes, so fields are only ever added.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::analysis::kernels::{self, KernelGap};
use crate::engine::{
    CaptureOptions, EngineError, HeadCapture, Session, SessionOptions, Token, TokenId, Trace,
};

/// Version of the JSON layout.
pub const JSON_VERSION: u32 = 1;

/// What to run and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOptions {
    /// The prompt, tokenized as llama.cpp tokenizes it.
    pub prompt: String,
    /// Candidates shown per position.
    pub top_k: usize,
    /// Show every position, not only the last.
    pub all_positions: bool,
    pub session: SessionOptions,
    /// What the capture keeps (the CLI keeps head contributions as norms).
    pub capture: CaptureOptions,
}

/// The model, as the run saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelSummary {
    pub path: String,
    pub architecture: String,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub n_vocab: usize,
}

/// One prompt token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenJson {
    pub id: TokenId,
    pub piece: String,
    /// A control token (BOS, chat markers).
    pub special: bool,
}

/// One candidate next token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub id: TokenId,
    pub piece: String,
    /// Softmax probability at temperature 1.
    pub prob: f64,
}

/// The candidates for the token after position `index`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionJson {
    pub index: usize,
    /// Sorted by probability, highest first.
    pub top: Vec<Candidate>,
}

/// Where the time went, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Validating the file and loading it into llama.cpp.
    pub load_ms: f64,
    pub tokenize_ms: f64,
    /// `llama_decode` of the whole prompt, the eval callback included.
    pub decode_ms: f64,
    /// The capture's own work inside `decode_ms`: the eval callback copying
    /// tensors out and computing per-head contributions.
    pub capture_ms: f64,
    /// Everything, from start to report.
    pub total_ms: f64,
}

/// What the capture kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureSummary {
    /// Size of the trace, computed before the run.
    pub trace_bytes: u64,
    /// How per-head contributions were kept: `norms`, `full` or `off`.
    pub heads: HeadCapture,
    /// Requested tensors the architecture's graph did not offer.
    pub missing: Vec<String>,
    /// Tensors offered but not usable, with the reason.
    pub notes: Vec<String>,
}

/// Everything `ggviz run` reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub ggviz_run_version: u32,
    pub model: ModelSummary,
    pub device: String,
    pub threads: usize,
    /// The prompt's tokens, BOS included when the model adds one.
    pub tokens: Vec<TokenJson>,
    /// The last position, or every one with `--all-positions`.
    pub positions: Vec<PositionJson>,
    pub timing: Timing,
    pub capture: CaptureSummary,
    /// The gap between these next-token distributions and the same prompt
    /// decoded as people run llama.cpp (flash attention auto, no callback).
    pub kernels: Option<KernelGap>,
}

/// Loads `model`, runs the prompt with the capture on and reports.
pub fn run(model: &Path, options: &RunOptions) -> Result<RunReport, EngineError> {
    let start = Instant::now();
    let mut session = Session::load(model, options.session)?;
    let t = Instant::now();
    let tokens = session.tokenize(&options.prompt)?;
    let tokenize_ms = t.elapsed().as_secs_f64() * 1e3;
    session.check_length(tokens.len())?;
    let trace_bytes = session.trace_bytes(tokens.len(), &options.capture);
    tracing::info!(
        tokens = tokens.len(),
        trace_bytes,
        scratch_bytes = options.capture.scratch_bytes(&session.dims(tokens.len())),
        "running the prompt with the capture on"
    );
    let ids: Vec<TokenId> = tokens.iter().map(|t| t.id).collect();
    let trace = session.trace_ids(&ids, &options.capture)?;
    let positions = positions(&session, &trace, options)?;
    let as_run = session.logits_as_run(&ids)?;
    let kernels = kernels::compare(&trace.logits.data, &as_run.data, trace.dims.n_vocab);
    let dims = trace.dims;
    Ok(RunReport {
        ggviz_run_version: JSON_VERSION,
        model: ModelSummary {
            path: model.display().to_string(),
            architecture: session.architecture().to_string(),
            n_layer: dims.n_layer,
            n_head: dims.n_head,
            n_embd: dims.n_embd,
            n_vocab: dims.n_vocab,
        },
        device: options.session.device.to_string(),
        threads: session.threads(),
        tokens: tokens.into_iter().map(token_json).collect(),
        positions,
        timing: Timing {
            load_ms: session.load_ms(),
            tokenize_ms,
            decode_ms: trace.timing.decode_ms,
            capture_ms: trace.timing.callback_ms,
            total_ms: start.elapsed().as_secs_f64() * 1e3,
        },
        capture: CaptureSummary {
            trace_bytes,
            heads: options.capture.heads,
            missing: trace.missing,
            notes: trace.notes,
        },
        kernels,
    })
}

fn token_json(t: Token) -> TokenJson {
    TokenJson {
        id: t.id,
        piece: t.piece,
        special: t.special,
    }
}

fn positions(
    session: &Session,
    trace: &Trace,
    options: &RunOptions,
) -> Result<Vec<PositionJson>, EngineError> {
    let n = trace.tokens.len();
    let first = if options.all_positions { 0 } else { n - 1 };
    (first..n)
        .map(|index| {
            let top = top_k(trace.logits.row(index), options.top_k)
                .into_iter()
                .map(|(id, prob)| {
                    let id = TokenId::try_from(id)
                        .map_err(|_| EngineError::InvalidRequest("token id overflow".into()))?;
                    Ok(Candidate {
                        id,
                        piece: session.token(id)?.piece,
                        prob,
                    })
                })
                .collect::<Result<_, EngineError>>()?;
            Ok(PositionJson { index, top })
        })
        .collect()
}

/// The `k` most probable entries of softmax(`logits`) at temperature 1, as
/// (index, probability), most probable first (ties by index).
pub fn top_k(logits: &[f32], k: usize) -> Vec<(usize, f64)> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let by_prob = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]).then(a.cmp(b));
    let mut order: Vec<usize> = (0..logits.len()).collect();
    let k = k.min(order.len());
    if k > 0 && k < order.len() {
        order.select_nth_unstable_by(k - 1, by_prob);
    }
    order.truncate(k);
    order.sort_unstable_by(by_prob);
    order
        .into_iter()
        .map(|i| (i, f64::from(logits[i] - max).exp() / sum))
        .collect()
}

/// The report as pretty, stable JSON.
pub fn to_json(report: &RunReport) -> serde_json::Result<String> {
    serde_json::to_string_pretty(report)
}

/// The report as text for a terminal.
pub fn to_text(report: &RunReport) -> String {
    let mut out = String::new();
    let m = &report.model;
    let _ = writeln!(
        out,
        "model   {} ({}, {} layers × {} heads, n_embd {}, vocab {})",
        m.path, m.architecture, m.n_layer, m.n_head, m.n_embd, m.n_vocab
    );
    let _ = writeln!(
        out,
        "device  {}, {} threads\n",
        report.device, report.threads
    );
    let _ = writeln!(out, "tokens ({})", report.tokens.len());
    for (i, t) in report.tokens.iter().enumerate() {
        let special = if t.special { "  (special)" } else { "" };
        let _ = writeln!(out, "  {i:>4}  {:>7}  {:?}{special}", t.id, t.piece);
    }
    for p in &report.positions {
        let after = report
            .tokens
            .get(p.index)
            .map_or(String::new(), |t| format!(" {:?}", t.piece));
        let _ = writeln!(out, "\nnext token after position {}{after}", p.index);
        for (rank, c) in p.top.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {:>3}  {:>8.4}  {:>7}  {:?}",
                rank + 1,
                c.prob,
                c.id,
                c.piece
            );
        }
    }
    let t = &report.timing;
    let _ = writeln!(
        out,
        "\ntiming  load {:.0} ms · tokenize {:.1} ms · decode {:.0} ms · capture {:.0} ms · total {:.0} ms",
        t.load_ms, t.tokenize_ms, t.decode_ms, t.capture_ms, t.total_ms
    );
    let c = &report.capture;
    let heads = match c.heads {
        HeadCapture::Off => "off",
        HeadCapture::Norms => "norms",
        HeadCapture::Full => "full vectors",
    };
    let _ = writeln!(
        out,
        "trace   {:.1} MiB (head contributions: {heads})",
        c.trace_bytes as f64 / (1024.0 * 1024.0)
    );
    for name in &c.missing {
        let _ = writeln!(out, "        not offered by this architecture: {name}");
    }
    for note in &c.notes {
        let _ = writeln!(out, "        note: {note}");
    }
    if let Some(k) = &report.kernels {
        let _ = writeln!(
            out,
            "kernels as people run llama.cpp (flash attention auto): KL {:.2e} nats mean, \
             {:.2e} max; largest probability difference {:.4}; same top token at {:.0}% of {} positions",
            k.kl_mean,
            k.kl_max,
            k.max_prob_diff,
            100.0 * k.top1_agreement,
            k.positions
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_is_a_sorted_softmax() {
        let logits = [0.0f32, 2.0, 1.0, 2.0, -1.0];
        let top = top_k(&logits, 3);
        let ids: Vec<usize> = top.iter().map(|&(i, _)| i).collect();
        assert_eq!(ids, [1, 3, 2]);
        let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        assert!((top[0].1 - 2f64.exp() / z).abs() < 1e-12);
        assert_eq!(top[0].1, top[1].1);
        let all: f64 = top_k(&logits, 10).iter().map(|&(_, p)| p).sum();
        assert!((all - 1.0).abs() < 1e-12);
        assert!(top_k(&logits, 0).is_empty());
    }
}
