//! Speed and memory of a member, measured through llama.cpp on the build's
//! device with the build's threads, the way llama-bench measures: a prompt
//! decoded as one batch (prompt processing) and tokens decoded one at a time
//! after it (generation), each the median of several runs after a short
//! warm-up run.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::engine::{Device, EngineError, Session, SessionOptions, TokenId, ffi};

/// How to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpeedOptions {
    /// Tokens of the prompt-processing run.
    pub prompt_tokens: usize,
    /// Tokens generated per run.
    pub gen_tokens: usize,
    /// Timed runs (after one warm-up); the median is reported.
    pub runs: usize,
}

impl Default for SpeedOptions {
    fn default() -> Self {
        SpeedOptions {
            prompt_tokens: 128,
            gen_tokens: 32,
            runs: 3,
        }
    }
}

/// One member's speed and memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speed {
    /// Prompt tokens per second (median).
    pub prompt_tok_s: f64,
    pub prompt_tokens: usize,
    /// Generated tokens per second (median).
    pub gen_tok_s: f64,
    pub gen_tokens: usize,
    pub runs: usize,
    pub threads: usize,
    pub device: String,
    /// Bytes of the model's tensors as llama.cpp holds them
    /// (`llama_model_size`).
    pub model_bytes: u64,
    /// How much the build process's resident memory (VmRSS) grew while the
    /// member was loaded and run: weights paged in from the mapped file,
    /// KV cache and compute buffers (`None` where `/proc` is missing).
    pub rss_increase: Option<u64>,
    /// On a GPU: how much the device's used memory grew while the member
    /// was loaded and run (its free memory before the load minus after the
    /// runs, as the backend reports it: weights, KV cache, compute
    /// buffers). `None` on the CPU, whose memory `rss_increase` covers.
    #[serde(default)]
    pub device_memory: Option<u64>,
}

/// The free memory llama.cpp reports for `device` (`None` for the CPU or a
/// device it does not list).
fn device_free(device: Device) -> Option<u64> {
    let name = device.ggml_name()?;
    ffi::system_report()
        .devices
        .into_iter()
        .find(|d| d.name == name)
        .map(|d| d.memory_free)
}

/// The resident memory of this process (`VmRSS` of `/proc/self/status`).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// Loads the model at `path` afresh, times it on `prompt` (cut to
/// `options.prompt_tokens`) and frees it.
pub fn measure(
    path: &Path,
    session: SessionOptions,
    prompt: &[TokenId],
    options: &SpeedOptions,
) -> Result<Speed, EngineError> {
    let prompt = &prompt[..prompt.len().min(options.prompt_tokens)];
    if prompt.is_empty() {
        return Err(EngineError::EmptyPrompt);
    }
    let before = rss_bytes();
    let device_before = device_free(session.device);
    let mut s = Session::load(
        path,
        SessionOptions {
            max_tokens: session.max_tokens.max(prompt.len() + options.gen_tokens),
            ..session
        },
    )?;
    // A short warm-up (pages the weights in, makes the context).
    s.time_decode(&prompt[..prompt.len().min(8)], options.gen_tokens.min(2))?;
    let (mut pp, mut tg) = (Vec::new(), Vec::new());
    for _ in 0..options.runs.max(1) {
        let (p, g) = s.time_decode(prompt, options.gen_tokens)?;
        pp.push(prompt.len() as f64 / p.max(1e-9));
        tg.push(options.gen_tokens as f64 / g.max(1e-9));
    }
    let after = rss_bytes();
    let device_after = device_free(session.device);
    Ok(Speed {
        prompt_tok_s: median(&pp),
        prompt_tokens: prompt.len(),
        gen_tok_s: median(&tg),
        gen_tokens: options.gen_tokens,
        runs: pp.len(),
        threads: s.threads(),
        device: s.options().device.to_string(),
        model_bytes: s.model_bytes(),
        rss_increase: before.zip(after).map(|(b, a)| a.saturating_sub(b)),
        device_memory: device_before
            .zip(device_after)
            .map(|(b, a)| b.saturating_sub(a)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        assert!(rss_bytes().is_none_or(|b| b > 0));
    }
}
