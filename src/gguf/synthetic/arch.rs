//! The architectures the synthetic writer can imitate: for each, the tensor
//! set and metadata keys that llama.cpp loads for it.
//!
//! Every layout below is read off the architecture's loader and graph in
//! llama.cpp (`load_arch_tensors` and `load_arch_hparams` in
//! `src/models/<arch>.cpp`, names from `LLM_TENSOR_NAMES` and
//! `LLM_KV_NAMES` in `src/llama-arch.cpp`), so a synthetic file has exactly
//! the tensors llama.cpp asks for: it refuses files with tensors it did not
//! ask for ("wrong number of tensors").

/// A llama.cpp architecture to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Architecture {
    /// `llama`: RMSNorm, separate Q/K/V, SwiGLU FFN, pre-norm blocks.
    Llama,
    /// `qwen2`: llama's block with biases on Q, K and V.
    Qwen2,
    /// `gemma2`: post-norms after attention and FFN, GELU-gated FFN,
    /// attention and final-logit soft-capping, always-tied output head.
    Gemma2,
    /// `gemma3`: gemma2's block plus Q and K norms, no soft-capping keys.
    Gemma3,
    /// `qwen2moe`: routed experts plus a shared expert with its own gate.
    Qwen2Moe,
    /// `phi2`: LayerNorm with biases, fused QKV with bias, attention and
    /// FFN in parallel off one norm, output bias.
    Phi2,
    /// `gptneox`: LayerNorm with biases, fused QKV, one norm per branch;
    /// `use_parallel_residual` decides whether the branches run in parallel.
    GptNeoX { parallel_residual: bool },
    /// `command-r` (Cohere): LayerNorm without biases, attention and gated
    /// FFN in parallel off one norm, always-tied output head, logit scale.
    CommandR,
    /// `gpt-oss` (llama.cpp's `LLM_ARCH_OPENAI_MOE`): attention sinks,
    /// biases everywhere, routed experts with biases, and a
    /// `post_attention_norm` that normalises the FFN input.
    GptOss,
}

/// Which norm feeds the FFN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FfnNorm {
    /// Its own `ffn_norm`.
    Own,
    /// None of its own: the FFN reads the attention norm's output.
    SharesAttnNorm,
    /// `post_attention_norm`, applied after the attention residual add.
    PostAttention,
}

/// The feed-forward block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ffn {
    /// gate, up, down.
    Gated,
    /// up, down (GELU), with biases.
    Plain,
    /// Router and stacked experts; `shared` adds a gated shared expert,
    /// `bias` biases on the router and the experts.
    Experts { shared: bool, bias: bool },
}

/// The output head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Output {
    /// `output.weight` unless the model ties it to the embedding.
    Optional,
    /// Always `output.weight`, with `output.bias` when `bias`.
    Required { bias: bool },
    /// Never `output.weight`: llama.cpp reuses `token_embd`.
    Tied,
}

/// What one architecture's blocks are made of.
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    /// LayerNorm (`LLM_NORM`) rather than RMSNorm.
    pub layer_norm: bool,
    /// Biases on the block and output norms.
    pub norm_bias: bool,
    pub fused_qkv: bool,
    pub qkv_bias: bool,
    pub out_bias: bool,
    pub qk_norm: bool,
    pub sinks: bool,
    /// gemma's norms after attention and after the FFN.
    pub post_norms: bool,
    pub ffn_norm: FfnNorm,
    pub ffn: Ffn,
    pub output: Output,
    /// Rotary dimensions as a fraction (numerator, denominator) of the head.
    pub rope_fraction: (u64, u64),
}

impl Architecture {
    /// The name llama.cpp knows the architecture by (`LLM_ARCH_NAMES`).
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
            Architecture::Gemma2 => "gemma2",
            Architecture::Gemma3 => "gemma3",
            Architecture::Qwen2Moe => "qwen2moe",
            Architecture::Phi2 => "phi2",
            Architecture::GptNeoX { .. } => "gptneox",
            Architecture::CommandR => "command-r",
            Architecture::GptOss => "gpt-oss",
        }
    }

    /// Every architecture, GPT-NeoX in both residual forms.
    pub const ALL: [Architecture; 10] = [
        Architecture::Llama,
        Architecture::Qwen2,
        Architecture::Gemma2,
        Architecture::Gemma3,
        Architecture::Qwen2Moe,
        Architecture::Phi2,
        Architecture::GptNeoX {
            parallel_residual: true,
        },
        Architecture::GptNeoX {
            parallel_residual: false,
        },
        Architecture::CommandR,
        Architecture::GptOss,
    ];

    pub(super) fn layout(self) -> Layout {
        let llama = Layout {
            layer_norm: false,
            norm_bias: false,
            fused_qkv: false,
            qkv_bias: false,
            out_bias: false,
            qk_norm: false,
            sinks: false,
            post_norms: false,
            ffn_norm: FfnNorm::Own,
            ffn: Ffn::Gated,
            output: Output::Optional,
            rope_fraction: (1, 1),
        };
        match self {
            Architecture::Llama => llama,
            // qwen2.cpp: create_tensor_qkv loads the Q/K/V biases Qwen2 has.
            Architecture::Qwen2 => Layout {
                qkv_bias: true,
                ..llama
            },
            // gemma2.cpp: `output` is always `token_embd` (TENSOR_DUPLICATED).
            Architecture::Gemma2 => Layout {
                post_norms: true,
                output: Output::Tied,
                ..llama
            },
            Architecture::Gemma3 => Layout {
                post_norms: true,
                qk_norm: true,
                ..llama
            },
            Architecture::Qwen2Moe => Layout {
                qkv_bias: true,
                ffn: Ffn::Experts {
                    shared: true,
                    bias: false,
                },
                output: Output::Required { bias: false },
                ..llama
            },
            // phi2.cpp: one LayerNorm per layer, no ffn_norm; Phi-2 rotates
            // 32 of its 80 head dimensions, here a half.
            Architecture::Phi2 => Layout {
                layer_norm: true,
                norm_bias: true,
                fused_qkv: true,
                qkv_bias: true,
                out_bias: true,
                ffn_norm: FfnNorm::SharesAttnNorm,
                ffn: Ffn::Plain,
                output: Output::Required { bias: true },
                rope_fraction: (1, 2),
                ..llama
            },
            // gptneox.cpp; Pythia rotates a quarter of each head.
            Architecture::GptNeoX { .. } => Layout {
                layer_norm: true,
                norm_bias: true,
                fused_qkv: true,
                qkv_bias: true,
                out_bias: true,
                ffn: Ffn::Plain,
                output: Output::Required { bias: false },
                rope_fraction: (1, 4),
                ..llama
            },
            // command-r.cpp: `output` is always `token_embd`; Q/K norms
            // only from 64 layers up.
            Architecture::CommandR => Layout {
                layer_norm: true,
                ffn_norm: FfnNorm::SharesAttnNorm,
                output: Output::Tied,
                ..llama
            },
            // openai-moe.cpp.
            Architecture::GptOss => Layout {
                qkv_bias: true,
                out_bias: true,
                sinks: true,
                ffn_norm: FfnNorm::PostAttention,
                ffn: Ffn::Experts {
                    shared: false,
                    bias: true,
                },
                output: Output::Required { bias: false },
                ..llama
            },
        }
    }
}
