//! The model's architecture as data.
//!
//! From the metadata and the tensor index alone (no weights are read), this
//! stage says what the model is: its hyperparameters, what every tensor does
//! and in which layer, and where the parameters and bytes go. It works for
//! any architecture llama.cpp writes, because roles come from tensor name
//! patterns and sizes from the type table, not from a list of known models.

pub mod accounting;
pub mod hparams;
pub mod residual;
pub mod roles;
pub mod runnable;

use serde::Serialize;

use crate::gguf::{GgmlType, GgufModel, Value};

pub use accounting::{Accounting, LayerShare, RoleShare, TypeShare};
pub use hparams::{HyperParams, Rope};
pub use residual::Residual;
pub use roles::{RoleGroup, TensorRole};

/// Why an anatomy could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnatomyError {
    #[error("metadata key `{0}` is missing")]
    MissingKey(String),
    #[error("{0}")]
    Invalid(String),
}

/// One tensor with its role and costs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorEntry {
    pub name: String,
    pub role: TensorRole,
    /// Block index, `None` for tensors outside the blocks.
    pub layer: Option<u32>,
    /// Expert index for per-expert tensors of older MoE files.
    pub expert: Option<u32>,
    /// The name's last part: `weight`, `bias`, ...
    pub suffix: Option<String>,
    /// The base name (`attn_q`), kept for tensors of role `other`.
    pub base: String,
    #[serde(rename = "type")]
    pub ggml_type: GgmlType,
    /// Shape in GGUF order, `ne[0]` first.
    pub shape: Vec<u64>,
    /// Number of weights.
    pub params: u64,
    /// Bytes of data.
    pub bytes: u64,
    /// Storage bits per weight.
    pub bits_per_weight: f64,
    /// Absolute byte offset of the data in its file.
    pub offset: u64,
    /// File of a split model holding the data.
    pub shard: usize,
}

/// What the tokenizer metadata says.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct TokenizerInfo {
    /// `tokenizer.ggml.model`: `gpt2` (BPE), `llama` (SentencePiece), ...
    pub model: Option<String>,
    /// `tokenizer.ggml.pre`: the pre-tokenizer llama.cpp applies.
    pub pre: Option<String>,
    pub tokens: usize,
    pub merges: usize,
    pub bos_token_id: Option<u64>,
    pub eos_token_id: Option<u64>,
    pub add_bos_token: Option<bool>,
    /// The Jinja chat template, if the file carries one.
    pub chat_template: Option<String>,
}

/// Everything the structure views show about one model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anatomy {
    /// `general.name`, or the file name without extension.
    pub name: String,
    /// File name of the (first) file.
    pub file_name: String,
    /// `general.architecture`.
    pub architecture: String,
    /// `general.file_type` as llama.cpp names it (`Q4_K_M`).
    pub file_type: Option<String>,
    /// `general.size_label` (`135M`).
    pub size_label: Option<String>,
    /// GGUF format version.
    pub gguf_version: u32,
    /// Number of files (more than one for split models).
    pub shards: usize,
    pub hparams: HyperParams,
    /// True when the output head reuses the token embedding (no `output.weight`).
    pub tied_embeddings: bool,
    pub tokenizer: TokenizerInfo,
    /// Every tensor, in file order.
    pub tensors: Vec<TensorEntry>,
    pub accounting: Accounting,
}

/// llama.cpp's `llama_ftype` names, by `general.file_type` value.
fn file_type_name(id: u64) -> Option<&'static str> {
    Some(match id {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        _ => return None,
    })
}

impl Anatomy {
    /// Describes `model`.
    pub fn from_model(model: &GgufModel) -> Result<Anatomy, AnatomyError> {
        let str_key = |k: &str| model.get(k).and_then(Value::as_str).map(str::to_owned);
        let architecture = str_key("general.architecture")
            .ok_or_else(|| AnatomyError::MissingKey("general.architecture".into()))?;
        let tensors: Vec<TensorEntry> = model
            .tensors()
            .iter()
            .map(|t| {
                let parsed = roles::parse_name(&t.name);
                TensorEntry {
                    role: roles::role_of(&parsed),
                    layer: parsed.layer,
                    expert: parsed.expert,
                    suffix: parsed.suffix.map(str::to_owned),
                    base: parsed.base.to_owned(),
                    name: t.name.clone(),
                    ggml_type: t.ggml_type,
                    shape: t.dims.clone(),
                    params: t.n_elements,
                    bytes: t.n_bytes,
                    bits_per_weight: t.ggml_type.bits_per_weight(),
                    offset: t.offset,
                    shard: t.shard,
                }
            })
            .collect();
        let layers_in_names = tensors
            .iter()
            .filter_map(|t| t.layer)
            .max()
            .map_or(0, |l| l + 1);
        let hparams = hparams::read(model, &architecture, layers_in_names)?;
        let has = |role| tensors.iter().any(|t| t.role == role);
        let tied_embeddings = !has(TensorRole::Output) && has(TensorRole::TokenEmbedding);
        let accounting = accounting::account(&tensors, hparams.n_layer, model.file_size());
        let file_name = model
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = str_key("general.name").unwrap_or_else(|| {
            file_name
                .strip_suffix(".gguf")
                .unwrap_or(&file_name)
                .to_owned()
        });
        let array_len = |k: &str| {
            model
                .get(k)
                .and_then(Value::as_array)
                .map_or(0, |a| a.len())
        };
        let tokenizer = TokenizerInfo {
            model: str_key("tokenizer.ggml.model"),
            pre: str_key("tokenizer.ggml.pre"),
            tokens: array_len("tokenizer.ggml.tokens"),
            merges: array_len("tokenizer.ggml.merges"),
            bos_token_id: model
                .get("tokenizer.ggml.bos_token_id")
                .and_then(Value::as_u64),
            eos_token_id: model
                .get("tokenizer.ggml.eos_token_id")
                .and_then(Value::as_u64),
            add_bos_token: model
                .get("tokenizer.ggml.add_bos_token")
                .and_then(Value::as_bool),
            chat_template: str_key("tokenizer.chat_template"),
        };
        Ok(Anatomy {
            name,
            file_name,
            architecture,
            file_type: model
                .get("general.file_type")
                .and_then(Value::as_u64)
                .and_then(file_type_name)
                .map(str::to_owned),
            size_label: str_key("general.size_label"),
            gguf_version: model.first().version,
            shards: model.shards().len(),
            hparams,
            tied_embeddings,
            tokenizer,
            tensors,
            accounting,
        })
    }

    /// Tensors of block `layer`, in file order.
    pub fn layer_tensors(&self, layer: u32) -> impl Iterator<Item = &TensorEntry> {
        self.tensors.iter().filter(move |t| t.layer == Some(layer))
    }

    /// How block `layer` adds its attention and FFN to the residual stream.
    pub fn residual(&self, layer: u32) -> Residual {
        residual::residual_form(&self.architecture, &self.hparams, |role| {
            self.layer_tensors(layer).any(|t| t.role == role)
        })
    }

    /// The ggml types that occur, by share of bytes.
    pub fn quant_types(&self) -> Vec<GgmlType> {
        self.accounting
            .by_type
            .iter()
            .map(|s| s.ggml_type)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::synthetic::{Architecture, SyntheticModel};
    use crate::gguf::{GgufFile, GgufWriter};

    fn anatomy_of(w: &GgufWriter, file_name: &str) -> Anatomy {
        let file = GgufFile::from_bytes(file_name, w.to_bytes()).unwrap();
        Anatomy::from_model(&GgufModel::from_file(file)).unwrap()
    }

    /// A model of `arch` with only the given F32 tensors (and a block count).
    fn with_tensors(arch: &str, n_layer: u32, tensors: &[(&str, &[u64])]) -> GgufWriter {
        let mut w = GgufWriter::new();
        w.metadata("general.architecture", arch)
            .metadata(format!("{arch}.block_count"), n_layer);
        for (name, dims) in tensors {
            let n: u64 = dims.iter().product();
            w.tensor(*name, GgmlType::F32, dims, vec![0; n as usize * 4])
                .unwrap();
        }
        w
    }

    fn role_of(a: &Anatomy, name: &str) -> (TensorRole, Option<u32>) {
        let t = a.tensors.iter().find(|t| t.name == name).unwrap();
        (t.role, t.layer)
    }

    #[test]
    fn synthetic_llama_has_gqa_roles_and_exact_accounting() {
        let m = SyntheticModel::default();
        let a = anatomy_of(&m.writer(), "synthetic.gguf");
        assert_eq!(a.architecture, "llama");
        assert_eq!(a.name, "ggviz synthetic llama");
        assert_eq!(a.hparams.gqa_group(0), 2);
        assert!(!a.tied_embeddings);
        assert_eq!(a.tokenizer.tokens as u64, m.n_vocab());
        assert_eq!(a.tokenizer.bos_token_id, Some(1));
        for l in 0..2 {
            assert_eq!(a.layer_tensors(l).count(), 9);
        }
        assert_eq!(
            role_of(&a, "blk.1.attn_k.weight"),
            (TensorRole::AttnK, Some(1))
        );
        assert_eq!(role_of(&a, "output.weight"), (TensorRole::Output, None));
        // Every tensor is counted once: in a layer or in the global share.
        let acc = &a.accounting;
        let in_layers: usize = acc.by_layer.iter().map(|l| l.tensors).sum();
        assert_eq!(in_layers + acc.global.tensors, a.tensors.len());
        let bytes: u64 = acc.by_layer.iter().map(|l| l.bytes).sum::<u64>() + acc.global.bytes;
        assert_eq!(bytes, acc.tensor_bytes);
        let share: f64 = acc.by_type.iter().map(|t| t.share_of_bytes).sum();
        assert!((share - 1.0).abs() < 1e-12);
        // Q8_0 attention, Q4_0/Q4_1 FFN, F16 embedding, F32 norms.
        let types = a.quant_types();
        for t in [
            GgmlType::Q8_0,
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::F16,
        ] {
            assert!(types.contains(&t), "{t} in {types:?}");
        }
        let q4_1: u64 = a
            .tensors
            .iter()
            .filter(|t| t.ggml_type == GgmlType::Q4_1)
            .map(|t| t.params)
            .sum();
        let share = acc.by_type.iter().find(|s| s.ggml_type == GgmlType::Q4_1);
        assert_eq!(share.map(|s| s.bytes), Some(q4_1 / 32 * 20));
    }

    #[test]
    fn every_synthetic_architecture_has_known_roles_and_exact_accounting() {
        for arch in Architecture::ALL {
            let m = SyntheticModel {
                architecture: arch,
                ..SyntheticModel::default()
            };
            let a = anatomy_of(&m.writer(), "arch.gguf");
            let name = arch.name();
            assert_eq!(a.architecture, name);
            assert_eq!(a.hparams.n_layer, 2, "{name}");
            // Every tensor llama.cpp loads for these has a role of its own.
            for t in &a.tensors {
                let vague = [
                    TensorRole::Other,
                    TensorRole::AttnOther,
                    TensorRole::FfnOther,
                ];
                assert!(
                    !vague.contains(&t.role),
                    "{name}: {} is {:?}",
                    t.name,
                    t.role
                );
            }
            let acc = &a.accounting;
            let in_layers: usize = acc.by_layer.iter().map(|l| l.tensors).sum();
            assert_eq!(in_layers + acc.global.tensors, a.tensors.len(), "{name}");
            let params: u64 = a.tensors.iter().map(|t| t.params).sum();
            assert_eq!(acc.total_params, params, "{name}");
            let by_role: u64 = acc.by_role.iter().map(|r| r.bytes).sum();
            assert_eq!(by_role, acc.tensor_bytes, "{name}");
            let tied = matches!(arch, Architecture::Gemma2 | Architecture::CommandR);
            assert_eq!(a.tied_embeddings, tied, "{name}");
            let moe = matches!(arch, Architecture::Qwen2Moe | Architecture::GptOss);
            let h = &a.hparams;
            assert_eq!(
                (h.n_expert, h.n_expert_used, h.n_ff_expert),
                if moe { (4, 2, Some(128)) } else { (0, 0, None) },
                "{name}"
            );
            assert_eq!(
                h.n_ff_shared_expert,
                (arch == Architecture::Qwen2Moe).then_some(128),
                "{name}"
            );
            let layer_norm = matches!(
                arch,
                Architecture::Phi2 | Architecture::GptNeoX { .. } | Architecture::CommandR
            );
            assert_eq!(h.norm_eps.is_some(), layer_norm, "{name}");
            assert_eq!(h.norm_rms_eps.is_some(), !layer_norm, "{name}");
        }
        let role = |arch, name: &str| {
            let m = SyntheticModel {
                architecture: arch,
                ..SyntheticModel::default()
            };
            role_of(&anatomy_of(&m.writer(), "arch.gguf"), name).0
        };
        use Architecture::*;
        assert_eq!(role(Phi2, "blk.0.attn_qkv.bias"), TensorRole::AttnQkv);
        assert_eq!(role(Phi2, "output.bias"), TensorRole::Output);
        assert_eq!(role(Phi2, "output_norm.bias"), TensorRole::OutputNorm);
        assert_eq!(role(Qwen2, "blk.1.attn_v.bias"), TensorRole::AttnV);
        assert_eq!(
            role(Qwen2Moe, "blk.1.ffn_gate_inp_shexp.weight"),
            TensorRole::FfnGateInpShared
        );
        assert_eq!(
            role(GptOss, "blk.0.attn_sinks.weight"),
            TensorRole::AttnSinks
        );
        assert_eq!(
            role(GptOss, "blk.0.ffn_gate_inp.bias"),
            TensorRole::FfnRouter
        );
        assert_eq!(
            role(GptOss, "blk.0.ffn_up_exps.bias"),
            TensorRole::FfnUpExperts
        );
        assert_eq!(
            role(Gemma3, "blk.0.attn_k_norm.weight"),
            TensorRole::AttnKNorm
        );
    }

    #[test]
    fn residual_form_is_llama_cpps_per_architecture() {
        let form = |arch| {
            let m = SyntheticModel {
                architecture: arch,
                ..SyntheticModel::default()
            };
            let a = anatomy_of(&m.writer(), "arch.gguf");
            (a.residual(0), a.residual(1))
        };
        use Architecture::*;
        use Residual::*;
        for arch in [
            Phi2,
            CommandR,
            GptNeoX {
                parallel_residual: true,
            },
        ] {
            assert_eq!(form(arch), (Parallel, Parallel), "{arch:?}");
        }
        for arch in [
            Llama,
            Gemma2,
            Qwen2Moe,
            GptOss,
            GptNeoX {
                parallel_residual: false,
            },
        ] {
            assert_eq!(form(arch), (Sequential, Sequential), "{arch:?}");
        }
        // StableLM decides per layer, by the FFN norm; Falcon always.
        let e: &[u64] = &[32];
        let w = with_tensors(
            "stablelm",
            2,
            &[("blk.0.ffn_norm.weight", e), ("blk.1.attn_norm.weight", e)],
        );
        let a = anatomy_of(&w, "stablelm.gguf");
        assert_eq!((a.residual(0), a.residual(1)), (Sequential, Parallel));
        let a = anatomy_of(&with_tensors("falcon", 1, &[]), "falcon.gguf");
        assert_eq!(a.residual(0), Parallel);
    }

    #[test]
    fn no_output_weight_means_tied_embeddings() {
        let m = SyntheticModel {
            tied_embeddings: true,
            ..SyntheticModel::default()
        };
        let a = anatomy_of(&m.writer(), "tied.gguf");
        assert!(a.tied_embeddings);
        assert!(a.tensors.iter().all(|t| t.role != TensorRole::Output));
    }

    #[test]
    fn gemma_style_norms_and_qk_norms_get_their_roles() {
        let e: &[u64] = &[32];
        let w = with_tensors(
            "gemma3",
            1,
            &[
                ("token_embd.weight", &[32, 16]),
                ("blk.0.attn_norm.weight", e),
                ("blk.0.attn_q_norm.weight", &[8]),
                ("blk.0.attn_k_norm.weight", &[8]),
                ("blk.0.post_attention_norm.weight", e),
                ("blk.0.ffn_norm.weight", e),
                ("blk.0.post_ffw_norm.weight", e),
                ("output_norm.weight", e),
            ],
        );
        let a = anatomy_of(&w, "gemma.gguf");
        let expect = [
            ("blk.0.attn_q_norm.weight", TensorRole::AttnQNorm),
            ("blk.0.attn_k_norm.weight", TensorRole::AttnKNorm),
            ("blk.0.post_attention_norm.weight", TensorRole::AttnPostNorm),
            ("blk.0.post_ffw_norm.weight", TensorRole::FfnPostNorm),
            ("output_norm.weight", TensorRole::OutputNorm),
        ];
        for (name, role) in expect {
            assert_eq!(role_of(&a, name).0, role, "{name}");
            assert_eq!(role.group(), RoleGroup::Norm);
        }
        assert!(a.tied_embeddings);
        // No name in the file: the file name stands in.
        assert_eq!(a.name, "gemma");
    }

    #[test]
    fn moe_experts_routers_and_shared_experts_get_their_roles() {
        let w = with_tensors(
            "qwen2moe",
            1,
            &[
                ("blk.0.ffn_gate_inp.weight", &[32, 4]),
                ("blk.0.ffn_gate_exps.weight", &[32, 16, 4]),
                ("blk.0.ffn_up_exps.weight", &[32, 16, 4]),
                ("blk.0.ffn_down_exps.weight", &[16, 32, 4]),
                ("blk.0.ffn_gate_shexp.weight", &[32, 16]),
                ("blk.0.ffn_up_shexp.weight", &[32, 16]),
                ("blk.0.ffn_down_shexp.weight", &[16, 32]),
                // Older Mixtral files: one tensor per expert.
                ("blk.0.ffn_gate.3.weight", &[32, 16]),
            ],
        );
        let a = anatomy_of(&w, "moe.gguf");
        assert_eq!(a.hparams.n_expert, 4);
        assert_eq!(a.hparams.uniform_ff(), Some(16));
        let expect = [
            ("blk.0.ffn_gate_inp.weight", TensorRole::FfnRouter),
            ("blk.0.ffn_gate_exps.weight", TensorRole::FfnGateExperts),
            ("blk.0.ffn_up_exps.weight", TensorRole::FfnUpExperts),
            ("blk.0.ffn_down_exps.weight", TensorRole::FfnDownExperts),
            ("blk.0.ffn_gate_shexp.weight", TensorRole::FfnGateShared),
            ("blk.0.ffn_up_shexp.weight", TensorRole::FfnUpShared),
            ("blk.0.ffn_down_shexp.weight", TensorRole::FfnDownShared),
            ("blk.0.ffn_gate.3.weight", TensorRole::FfnGateExperts),
        ];
        for (name, role) in expect {
            assert_eq!(role_of(&a, name), (role, Some(0)), "{name}");
        }
        let per_expert = a.tensors.iter().find(|t| t.expert.is_some()).unwrap();
        assert_eq!(per_expert.expert, Some(3));
        let experts = a
            .accounting
            .by_role
            .iter()
            .find(|r| r.role == TensorRole::FfnGateExperts)
            .unwrap();
        assert_eq!(
            (experts.tensors, experts.params),
            (2, 32 * 16 * 4 + 32 * 16)
        );
    }

    #[test]
    fn unknown_tensors_are_kept_never_dropped() {
        let w = with_tensors(
            "mamba",
            1,
            &[
                ("blk.0.ssm_conv1d.weight", &[4, 32]),
                ("blk.0.ssm_a", &[16, 32]),
                ("enc.blk.0.attn_k.weight", &[32, 32]),
                // A block beyond block_count: still listed, counted globally.
                ("blk.7.ffn_up.weight", &[32, 8]),
                ("mystery", &[3]),
            ],
        );
        let a = anatomy_of(&w, "mamba.gguf");
        assert_eq!(a.tensors.len(), 5);
        let conv = a.tensors.iter().find(|t| t.name.contains("conv")).unwrap();
        assert_eq!(
            (conv.role, conv.base.as_str()),
            (TensorRole::Other, "ssm_conv1d")
        );
        assert_eq!(role_of(&a, "blk.0.ssm_a"), (TensorRole::Other, Some(0)));
        assert_eq!(role_of(&a, "enc.blk.0.attn_k.weight").0, TensorRole::AttnK);
        assert_eq!(role_of(&a, "mystery"), (TensorRole::Other, None));
        let acc = &a.accounting;
        assert_eq!(acc.by_layer.len(), 1);
        assert_eq!(acc.by_layer[0].tensors, 3);
        assert_eq!(acc.global.tensors, 2);
        assert_eq!(acc.total_params, 4 * 32 + 16 * 32 + 32 * 32 + 32 * 8 + 3);
    }

    #[test]
    fn a_model_without_an_architecture_is_refused() {
        let file = GgufFile::from_bytes("none.gguf", GgufWriter::new().to_bytes()).unwrap();
        let err = Anatomy::from_model(&GgufModel::from_file(file)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "metadata key `general.architecture` is missing"
        );
    }
}
