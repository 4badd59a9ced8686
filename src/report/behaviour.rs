//! The behaviour section: what the model did with the prompts.
//!
//! Attention is the bulk of the data, so it is stored as the causal
//! triangle only, one byte per probability: the byte is round(255 · √p),
//! which keeps small probabilities visible (p = 0.001 is 8, not 0) while the
//! largest error, near p = 1, stays under 0.004. Everything else numeric is
//! a [`Packed`] typed array; the layout of each is documented in
//! `docs/report.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::analysis::behaviour::{Behaviour, ImportanceKind, PromptAnalysis, PromptKind};
use crate::analysis::clusters::{CLUSTER_FEATURES, Cluster};
use crate::analysis::heads::FEATURES;
use crate::analysis::kernels::KernelGap;
use crate::analysis::lens::{LensCell, TOP_K};
use crate::engine::Token;

use super::heads::{HeadMetric, MetricScale};
use super::packed::Packed;

/// Encodes a probability as round(255 · √p).
pub fn encode_prob(p: f32) -> u8 {
    (p.clamp(0.0, 1.0).sqrt() * 255.0).round() as u8
}

/// Decodes [`encode_prob`]'s byte.
pub fn decode_prob(b: u8) -> f32 {
    let r = f32::from(b) / 255.0;
    r * r
}

/// The logit lens (or the model's own prediction) as parallel arrays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LensSection {
    /// `cells × top_k` token ids, best first.
    pub top_ids: Packed,
    /// `cells × top_k` probabilities.
    pub top_probs: Packed,
    /// Rank of the model's final prediction in each cell (0 = top).
    pub target_rank: Packed,
    /// Probability of the model's final prediction in each cell.
    pub target_prob: Packed,
}

impl LensSection {
    fn new(cells: &[LensCell]) -> LensSection {
        let mut ids = Vec::with_capacity(cells.len() * TOP_K);
        let mut probs = Vec::with_capacity(cells.len() * TOP_K);
        for c in cells {
            for k in 0..TOP_K {
                let (id, p) = c.top.get(k).copied().unwrap_or((0, 0.0));
                ids.push(id);
                probs.push(p);
            }
        }
        LensSection {
            top_ids: Packed::u32(&ids),
            top_probs: Packed::f32(&probs),
            target_rank: Packed::u32(&cells.iter().map(|c| c.target_rank).collect::<Vec<_>>()),
            target_prob: Packed::f32(&cells.iter().map(|c| c.target_prob).collect::<Vec<_>>()),
        }
    }
}

/// Per layer and token statistics, each `n_layer × n_tokens`, layer-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackerSection {
    pub hidden_norm: Packed,
    pub attn_norm: Packed,
    pub ffn_norm: Packed,
    pub cos_prev: Packed,
}

/// One prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptSection {
    pub name: String,
    pub kind: PromptKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub n_tokens: usize,
    pub tokens: Vec<Token>,
    /// round(255·√p) bytes: for each layer, head and query `i`, keys `0..=i`.
    pub attention: Packed,
    pub tracker: TrackerSection,
    /// `n_layer × n_tokens` cells, layer-major.
    pub lens: LensSection,
    /// `n_tokens` cells: llama.cpp's own next-token distribution.
    pub prediction: LensSection,
    pub lens_error: f32,
    pub loss: f32,
    pub missing: Vec<String>,
    /// The gap between these next-token distributions and the same prompt
    /// decoded as people run llama.cpp (flash attention auto, no callback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernels: Option<KernelGap>,
}

/// The heads split into k clusters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionSection {
    pub k: usize,
    pub silhouette: f32,
    pub clusters: Vec<Cluster>,
    /// Cluster of each head (u8).
    pub labels: Packed,
}

/// Head clusters for every k tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSection {
    /// The k with the best silhouette, shown first.
    pub k: usize,
    /// The features clustered, in the order of each cluster's `centre`.
    pub features: Vec<String>,
    pub partitions: Vec<PartitionSection>,
    /// `heads × 2`: the heads placed on the two leading principal components.
    pub xy: Packed,
    pub explained: [f32; 2],
}

/// Heads on a plane: `heads × 2` coordinates (f32) and each axis's share
/// of the variance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaneSection {
    pub xy: Packed,
    pub explained: [f32; 2],
}

/// How importance was measured, for the page to say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportanceSection {
    pub kind: ImportanceKind,
    pub description: String,
}

/// Everything the behaviour views show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BehaviourSection {
    pub prompts: Vec<PromptSection>,
    /// Pieces of every token id the lens and predictions show.
    pub vocab: BTreeMap<u32, String>,
    pub importance: ImportanceSection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<ClusterSection>,
    /// `heads × heads` round(255 · cosine) bytes; absent for very large models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<Packed>,
    /// Heads placed by pattern similarity; present with `similarity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity_plane: Option<PlaneSection>,
    pub notes: Vec<String>,
    /// Where the build's time went, in milliseconds, by stage.
    pub timing: BTreeMap<String, f64>,
}

fn prompt_section(p: &PromptAnalysis) -> PromptSection {
    PromptSection {
        name: p.name.clone(),
        kind: p.kind,
        text: p.text.clone(),
        n_tokens: p.tokens.len(),
        tokens: p.tokens.clone(),
        attention: Packed::u8(
            &p.attention
                .iter()
                .map(|&x| encode_prob(x))
                .collect::<Vec<_>>(),
        ),
        tracker: TrackerSection {
            hidden_norm: Packed::f32(&p.tracker.hidden_norm),
            attn_norm: Packed::f32(&p.tracker.attn_norm),
            ffn_norm: Packed::f32(&p.tracker.ffn_norm),
            cos_prev: Packed::f32(&p.tracker.cos_prev),
        },
        lens: LensSection::new(&p.lens),
        prediction: LensSection::new(&p.prediction),
        lens_error: p.lens_error,
        loss: p.loss,
        missing: p.missing.clone(),
        kernels: None,
    }
}

/// Every token id a lens or prediction cell shows.
pub fn shown_token_ids(b: &Behaviour) -> Vec<u32> {
    let mut ids: Vec<u32> = b
        .prompts
        .iter()
        .flat_map(|p| p.lens.iter().chain(&p.prediction))
        .flat_map(|c| c.top.iter().map(|&(id, _)| id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

impl BehaviourSection {
    /// The section for `b`; `vocab` maps the ids of [`shown_token_ids`] to
    /// their pieces.
    pub fn new(
        b: &Behaviour,
        vocab: BTreeMap<u32, String>,
        timing: BTreeMap<String, f64>,
    ) -> BehaviourSection {
        let clusters = b.clustering.as_ref().map(|c| ClusterSection {
            k: c.k,
            features: CLUSTER_FEATURES.iter().map(|f| (*f).to_owned()).collect(),
            partitions: c
                .partitions
                .iter()
                .map(|p| PartitionSection {
                    k: p.k,
                    silhouette: p.silhouette,
                    clusters: p.clusters.clone(),
                    labels: Packed::u8(&p.labels),
                })
                .collect(),
            xy: Packed::f32(&c.xy.iter().flatten().copied().collect::<Vec<_>>()),
            explained: c.explained,
        });
        let similarity = b.similarity.as_ref().map(|s| {
            Packed::u8(
                &s.iter()
                    .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
                    .collect::<Vec<_>>(),
            )
        });
        let similarity_plane = b.similarity_plane.as_ref().map(|p| PlaneSection {
            xy: Packed::f32(&p.xy.iter().flatten().copied().collect::<Vec<_>>()),
            explained: p.explained,
        });
        BehaviourSection {
            prompts: b.prompts.iter().map(prompt_section).collect(),
            vocab,
            importance: ImportanceSection {
                kind: b.importance_kind,
                description: match b.importance_kind {
                    ImportanceKind::Contribution => {
                        "mean norm of the head's contribution to the residual stream \
                         (run with --ablation to measure the loss increase instead)"
                    }
                    ImportanceKind::Ablation => {
                        "increase in mean next-token loss over the prompts when the head's \
                         output is zeroed before the output projection"
                    }
                }
                .to_owned(),
            },
            clusters,
            similarity,
            similarity_plane,
            notes: b.notes.clone(),
            timing,
        }
    }

    /// The per-head features, importance and cluster as head metrics, for
    /// the head map (and every view that colours heads) to use.
    pub fn head_metrics(b: &Behaviour) -> Vec<HeadMetric> {
        let mut metrics = Vec::new();
        let column =
            |i: usize| -> Vec<f32> { b.features.iter().map(|f| f.to_array()[i]).collect() };
        for (i, (id, label, description)) in FEATURES.iter().enumerate() {
            metrics.push(HeadMetric {
                id: (*id).to_owned(),
                label: (*label).to_owned(),
                description: (*description).to_owned(),
                scale: MetricScale::Continuous,
                categories: Vec::new(),
                values: Packed::f32(&column(i)),
            });
        }
        metrics.push(HeadMetric {
            id: "importance".into(),
            label: match b.importance_kind {
                ImportanceKind::Contribution => "importance (contribution)".into(),
                ImportanceKind::Ablation => "importance (ablation Δ loss)".into(),
            },
            description: match b.importance_kind {
                ImportanceKind::Contribution => {
                    "Mean norm of the head's contribution to the residual stream.".into()
                }
                ImportanceKind::Ablation => {
                    "Increase in next-token loss when the head's output is zeroed.".into()
                }
            },
            scale: MetricScale::Continuous,
            categories: Vec::new(),
            values: Packed::f32(&b.importance),
        });
        if let Some(c) = b.clustering.as_ref().map(|c| c.best()) {
            metrics.push(HeadMetric {
                id: "cluster".into(),
                label: "cluster".into(),
                description: format!(
                    "k-means cluster (k = {}, the best silhouette) of the head's attention \
                     features, named by the feature its centre stands out on most.",
                    c.k
                ),
                scale: MetricScale::Categorical,
                categories: c.clusters.iter().map(|c| c.name.clone()).collect(),
                values: Packed::f32(&c.labels.iter().map(|&l| f32::from(l)).collect::<Vec<_>>()),
            });
        }
        metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_bytes_keep_small_values_and_bound_the_error() {
        assert_eq!(encode_prob(0.0), 0);
        assert_eq!(encode_prob(1.0), 255);
        assert!(encode_prob(0.001) >= 8);
        for i in 0..=1000 {
            let p = i as f32 / 1000.0;
            let err = (decode_prob(encode_prob(p)) - p).abs();
            assert!(err < 0.004, "{p}: {err}");
        }
    }
}
