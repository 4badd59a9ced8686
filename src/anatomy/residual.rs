//! How a block adds its attention and its FFN to the residual stream.
//!
//! Most blocks are sequential: `x += attn(norm(x))`, then
//! `x += ffn(norm(x))`, so the FFN sees the attention's result. Some run
//! both branches on the layer's input and add them once:
//! `x += attn(n1(x)) + ffn(n2(x))`. No key or tensor that every architecture
//! shares says which: llama.cpp decides in each architecture's graph
//! builder, so the truth is the table in [`residual_form`], with the key or
//! tensor that decides it where llama.cpp reads one.

use serde::Serialize;

use super::{HyperParams, TensorRole};

/// The shape of one block's residual additions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Residual {
    /// Attention adds to the stream, then the FFN reads the sum and adds.
    Sequential,
    /// Attention and FFN read the layer's input; one add takes both.
    Parallel,
}

/// The residual form llama.cpp builds for a layer of `arch` whose tensors
/// have the roles for which `has` is true.
pub fn residual_form(
    arch: &str,
    hparams: &HyperParams,
    has: impl Fn(TensorRole) -> bool,
) -> Residual {
    match arch {
        // The FFN reads the attention norm's output and both branches add
        // to the layer input: `build_ffn(attn_norm_output, …)` in
        // src/models/phi2.cpp, `build_ffn(attn_norm, …)` in falcon.cpp,
        // `ffn_inp = cur` after the norm in command-r.cpp, cohere2.cpp and
        // cohere2moe.cpp.
        "phi2" | "falcon" | "command-r" | "cohere2" | "cohere2moe" => Residual::Parallel,
        // gptneox.cpp: `if (hparams.use_par_res)`, read from
        // `gptneox.use_parallel_residual`.
        "gptneox" if hparams.use_parallel_residual == Some(true) => Residual::Parallel,
        // stablelm.cpp: a layer without `ffn_norm` feeds the attention
        // norm's output to the FFN ("parallel residual", StableLM 2 12B).
        "stablelm" if !has(TensorRole::FfnNorm) => Residual::Parallel,
        _ => Residual::Sequential,
    }
}
