//! Tensor roles, recognised from tensor names.
//!
//! llama.cpp names tensors the same way for every architecture
//! (`LLM_TENSOR_NAMES` in `src/llama-arch.cpp`): globals such as
//! `token_embd.weight`, and per-block tensors `blk.<L>.<base>.<suffix>`.
//! Roles therefore come from the base name alone, never from a list of known
//! models; names we do not recognise keep their base name and are grouped by
//! prefix (`attn_*`, `ffn_*`), so no tensor is ever dropped.

use serde::Serialize;

/// What a tensor does in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TensorRole {
    TokenEmbedding,
    TokenEmbeddingNorm,
    PositionEmbedding,
    TokenTypes,
    AttnNorm,
    AttnQ,
    AttnK,
    AttnV,
    AttnQkv,
    AttnOutput,
    AttnQNorm,
    AttnKNorm,
    AttnPostNorm,
    AttnSinks,
    /// Other attention tensors (low-rank MLA pieces, sub-norms, ...).
    AttnOther,
    FfnNorm,
    FfnPostNorm,
    FfnGate,
    FfnUp,
    FfnDown,
    /// The expert router (`ffn_gate_inp`) and its biases.
    FfnRouter,
    FfnGateExperts,
    FfnUpExperts,
    FfnDownExperts,
    FfnGateUpExperts,
    FfnGateShared,
    FfnUpShared,
    FfnDownShared,
    /// The shared expert's gate input (`ffn_gate_inp_shexp`): a sigmoid of
    /// its product scales the shared expert's output (qwen2moe.cpp).
    FfnGateInpShared,
    /// Other feed-forward tensors.
    FfnOther,
    OutputNorm,
    Output,
    RopeFreqs,
    Other,
}

/// Coarse families of roles, used for colour and grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleGroup {
    Embedding,
    Norm,
    Attention,
    Ffn,
    Experts,
    Output,
    Other,
}

impl TensorRole {
    /// Stable snake_case name, as in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            TensorRole::TokenEmbedding => "token_embedding",
            TensorRole::TokenEmbeddingNorm => "token_embedding_norm",
            TensorRole::PositionEmbedding => "position_embedding",
            TensorRole::TokenTypes => "token_types",
            TensorRole::AttnNorm => "attn_norm",
            TensorRole::AttnQ => "attn_q",
            TensorRole::AttnK => "attn_k",
            TensorRole::AttnV => "attn_v",
            TensorRole::AttnQkv => "attn_qkv",
            TensorRole::AttnOutput => "attn_output",
            TensorRole::AttnQNorm => "attn_q_norm",
            TensorRole::AttnKNorm => "attn_k_norm",
            TensorRole::AttnPostNorm => "attn_post_norm",
            TensorRole::AttnSinks => "attn_sinks",
            TensorRole::AttnOther => "attn_other",
            TensorRole::FfnNorm => "ffn_norm",
            TensorRole::FfnPostNorm => "ffn_post_norm",
            TensorRole::FfnGate => "ffn_gate",
            TensorRole::FfnUp => "ffn_up",
            TensorRole::FfnDown => "ffn_down",
            TensorRole::FfnRouter => "ffn_router",
            TensorRole::FfnGateExperts => "ffn_gate_experts",
            TensorRole::FfnUpExperts => "ffn_up_experts",
            TensorRole::FfnDownExperts => "ffn_down_experts",
            TensorRole::FfnGateUpExperts => "ffn_gate_up_experts",
            TensorRole::FfnGateShared => "ffn_gate_shared",
            TensorRole::FfnUpShared => "ffn_up_shared",
            TensorRole::FfnDownShared => "ffn_down_shared",
            TensorRole::FfnGateInpShared => "ffn_gate_inp_shared",
            TensorRole::FfnOther => "ffn_other",
            TensorRole::OutputNorm => "output_norm",
            TensorRole::Output => "output",
            TensorRole::RopeFreqs => "rope_freqs",
            TensorRole::Other => "other",
        }
    }

    /// A human label for tables and tooltips.
    pub fn label(self) -> &'static str {
        match self {
            TensorRole::TokenEmbedding => "token embedding",
            TensorRole::TokenEmbeddingNorm => "embedding norm",
            TensorRole::PositionEmbedding => "position embedding",
            TensorRole::TokenTypes => "token types",
            TensorRole::AttnNorm => "attention norm",
            TensorRole::AttnQ => "attention Q",
            TensorRole::AttnK => "attention K",
            TensorRole::AttnV => "attention V",
            TensorRole::AttnQkv => "attention QKV",
            TensorRole::AttnOutput => "attention output",
            TensorRole::AttnQNorm => "Q norm",
            TensorRole::AttnKNorm => "K norm",
            TensorRole::AttnPostNorm => "attention post-norm",
            TensorRole::AttnSinks => "attention sinks",
            TensorRole::AttnOther => "attention (other)",
            TensorRole::FfnNorm => "FFN norm",
            TensorRole::FfnPostNorm => "FFN post-norm",
            TensorRole::FfnGate => "FFN gate",
            TensorRole::FfnUp => "FFN up",
            TensorRole::FfnDown => "FFN down",
            TensorRole::FfnRouter => "expert router",
            TensorRole::FfnGateExperts => "experts gate",
            TensorRole::FfnUpExperts => "experts up",
            TensorRole::FfnDownExperts => "experts down",
            TensorRole::FfnGateUpExperts => "experts gate+up",
            TensorRole::FfnGateShared => "shared expert gate",
            TensorRole::FfnUpShared => "shared expert up",
            TensorRole::FfnDownShared => "shared expert down",
            TensorRole::FfnGateInpShared => "shared expert weighting",
            TensorRole::FfnOther => "FFN (other)",
            TensorRole::OutputNorm => "output norm",
            TensorRole::Output => "output head",
            TensorRole::RopeFreqs => "RoPE frequencies",
            TensorRole::Other => "other",
        }
    }

    /// The family this role belongs to.
    pub fn group(self) -> RoleGroup {
        use TensorRole::*;
        match self {
            TokenEmbedding | PositionEmbedding | TokenTypes => RoleGroup::Embedding,
            TokenEmbeddingNorm | AttnNorm | AttnQNorm | AttnKNorm | AttnPostNorm | FfnNorm
            | FfnPostNorm | OutputNorm => RoleGroup::Norm,
            AttnQ | AttnK | AttnV | AttnQkv | AttnOutput | AttnSinks | AttnOther => {
                RoleGroup::Attention
            }
            FfnGate | FfnUp | FfnDown | FfnOther => RoleGroup::Ffn,
            FfnRouter | FfnGateExperts | FfnUpExperts | FfnDownExperts | FfnGateUpExperts
            | FfnGateShared | FfnUpShared | FfnDownShared | FfnGateInpShared => RoleGroup::Experts,
            Output => RoleGroup::Output,
            RopeFreqs | Other => RoleGroup::Other,
        }
    }
}

/// A tensor name taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedName<'a> {
    /// Block index for `blk.<L>.` tensors.
    pub layer: Option<u32>,
    /// Encoder/decoder stack prefix (`enc`, `dec`) where the model has one.
    pub stack: Option<&'a str>,
    /// The base name, e.g. `attn_q`.
    pub base: &'a str,
    /// Expert index for per-expert tensors (`blk.0.ffn_gate.3.weight`).
    pub expert: Option<u32>,
    /// The last part: `weight`, `bias`, `scale`, ...
    pub suffix: Option<&'a str>,
}

/// Splits a tensor name into layer, base name, expert index and suffix.
pub fn parse_name(name: &str) -> ParsedName<'_> {
    let mut rest = name;
    let mut stack = None;
    for prefix in ["enc.", "dec."] {
        if let Some(r) = rest.strip_prefix(prefix) {
            stack = Some(&prefix[..3]);
            rest = r;
        }
    }
    let mut layer = None;
    if let Some(r) = rest.strip_prefix("blk.")
        && let Some((n, tail)) = r.split_once('.')
        && let Ok(n) = n.parse::<u32>()
    {
        layer = Some(n);
        rest = tail;
    }
    let mut parts: Vec<&str> = rest.split('.').collect();
    let suffix = if parts.len() > 1 { parts.pop() } else { None };
    let mut expert = None;
    if parts.len() > 1
        && let Some(Ok(e)) = parts.last().map(|p| p.parse::<u32>())
    {
        expert = Some(e);
        parts.pop();
    }
    // The base is everything before the expert index and suffix.
    let base_len = parts.iter().map(|p| p.len()).sum::<usize>() + parts.len().saturating_sub(1);
    ParsedName {
        layer,
        stack,
        base: &rest[..base_len],
        expert,
        suffix,
    }
}

/// The role of a tensor, from its parsed name.
pub fn role_of(parsed: &ParsedName<'_>) -> TensorRole {
    use TensorRole::*;
    let base = parsed.base;
    if parsed.layer.is_none() {
        return match base {
            "token_embd" => TokenEmbedding,
            "token_embd_norm" => TokenEmbeddingNorm,
            "position_embd" | "pos_embd" => PositionEmbedding,
            "token_types" => TokenTypes,
            "output_norm" => OutputNorm,
            "output" => Output,
            "rope_freqs" | "rope_factors_long" | "rope_factors_short" => RopeFreqs,
            _ => Other,
        };
    }
    if parsed.expert.is_some() {
        // Older MoE files store one tensor per expert: `ffn_gate.<e>`.
        match base {
            "ffn_gate" => return FfnGateExperts,
            "ffn_up" => return FfnUpExperts,
            "ffn_down" => return FfnDownExperts,
            _ => {}
        }
    }
    match base {
        "attn_norm" | "attn_norm_2" => AttnNorm,
        "attn_q" => AttnQ,
        "attn_k" => AttnK,
        "attn_v" => AttnV,
        "attn_qkv" => AttnQkv,
        "attn_output" => AttnOutput,
        "attn_q_norm" => AttnQNorm,
        "attn_k_norm" => AttnKNorm,
        "post_attention_norm" | "attn_post_norm" | "attn_output_norm" => AttnPostNorm,
        "attn_sinks" => AttnSinks,
        "attn_rot_embd" => RopeFreqs,
        "ffn_norm" => FfnNorm,
        "post_ffw_norm" | "ffn_post_norm" | "layer_output_norm" => FfnPostNorm,
        "ffn_gate" => FfnGate,
        "ffn_up" => FfnUp,
        "ffn_down" => FfnDown,
        "ffn_gate_inp" | "exp_probs_b" | "ffn_exp_probs_b" => FfnRouter,
        "ffn_gate_inp_shexp" => FfnGateInpShared,
        "ffn_gate_exps" => FfnGateExperts,
        "ffn_up_exps" => FfnUpExperts,
        "ffn_down_exps" => FfnDownExperts,
        "ffn_gate_up_exps" => FfnGateUpExperts,
        "ffn_gate_shexp" => FfnGateShared,
        "ffn_up_shexp" => FfnUpShared,
        "ffn_down_shexp" => FfnDownShared,
        b if b.starts_with("attn_") => AttnOther,
        b if b.starts_with("ffn_") => FfnOther,
        _ => Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str) -> TensorRole {
        role_of(&parse_name(name))
    }

    #[test]
    fn names_parse_into_layer_base_expert_suffix() {
        let p = parse_name("blk.12.attn_q.weight");
        assert_eq!(
            (p.layer, p.base, p.suffix),
            (Some(12), "attn_q", Some("weight"))
        );
        let p = parse_name("blk.3.ffn_gate.7.weight");
        assert_eq!((p.base, p.expert), ("ffn_gate", Some(7)));
        let p = parse_name("enc.blk.0.attn_k.bias");
        assert_eq!((p.stack, p.layer, p.base), (Some("enc"), Some(0), "attn_k"));
        let p = parse_name("output");
        assert_eq!((p.base, p.suffix), ("output", None));
    }

    #[test]
    fn roles_cover_llama_gemma_moe_and_unknowns() {
        assert_eq!(role("token_embd.weight"), TensorRole::TokenEmbedding);
        assert_eq!(role("output.weight"), TensorRole::Output);
        assert_eq!(role("blk.0.attn_output.weight"), TensorRole::AttnOutput);
        assert_eq!(role("blk.0.attn_q.bias"), TensorRole::AttnQ);
        assert_eq!(
            role("blk.4.post_attention_norm.weight"),
            TensorRole::AttnPostNorm
        );
        assert_eq!(role("blk.4.post_ffw_norm.weight"), TensorRole::FfnPostNorm);
        assert_eq!(
            role("blk.1.ffn_gate_exps.weight"),
            TensorRole::FfnGateExperts
        );
        assert_eq!(role("blk.1.ffn_gate.3.weight"), TensorRole::FfnGateExperts);
        assert_eq!(role("blk.1.ffn_gate_inp.weight"), TensorRole::FfnRouter);
        assert_eq!(
            role("blk.1.ffn_gate_inp_shexp.weight"),
            TensorRole::FfnGateInpShared
        );
        assert_eq!(
            role("blk.1.ffn_gate_shexp.weight"),
            TensorRole::FfnGateShared
        );
        assert_eq!(role("blk.1.attn_kv_a_mqa.weight"), TensorRole::AttnOther);
        assert_eq!(role("blk.1.ssm_conv1d.weight"), TensorRole::Other);
        assert_eq!(role("blk.1.ssm_conv1d.weight").group(), RoleGroup::Other);
        assert_eq!(role("rope_freqs.weight"), TensorRole::RopeFreqs);
    }
}
