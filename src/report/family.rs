//! The data of a family page: one row per member with llama-perplexity's
//! output statistics against the reference, and the Pareto front of bits
//! per weight against mean KL divergence. Documented in `docs/report.md`.

use serde::{Deserialize, Serialize};

use crate::analysis::quant_impact::generations::PromptGenerations;
use crate::analysis::quant_impact::layers::MemberLayers;
use crate::analysis::quant_impact::neighbours::NeighbourOverlap;
use crate::analysis::quant_impact::speed::Speed;
use crate::analysis::quant_impact::stats::{OutputStats, Perplexity};
use crate::analysis::quant_impact::weights::TensorError;
use crate::family::FamilyMeasurements;

/// One member, as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyMemberRow {
    /// The file name.
    pub file_name: String,
    /// Link to the member's model page, relative to the family page.
    pub href: String,
    /// The type ggviz made it as (`Q4_K_M`), when ggviz made it.
    pub made_as: Option<String>,
    pub bits_per_weight: f64,
    pub file_size: u64,
    /// Whether this member is the reference.
    pub reference: bool,
    /// Whether no other member has both fewer bits per weight and a lower
    /// mean KL divergence.
    pub pareto: bool,
    /// Output statistics against the reference.
    pub stats: OutputStats,
    /// Layer by layer against the reference, on the page's prompts.
    pub layers: MemberLayers,
    /// Per tensor weight error against the reference, in file order.
    pub weights: Vec<TensorError>,
    /// Speed and memory through llama.cpp.
    pub speed: Option<Speed>,
    /// Token-embedding neighbour overlap with the reference.
    pub neighbours: Option<NeighbourOverlap>,
}

/// A family page's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyReport {
    pub generator: String,
    /// The family's name (the reference's file stem).
    pub name: String,
    pub architecture: String,
    /// What the reference is, in words (e.g. that it is the F16 form of a
    /// quantized file).
    pub reference_note: String,
    pub reference_ppl: Perplexity,
    /// Chunks scored and their length.
    pub n_chunks: usize,
    pub n_ctx: usize,
    /// Where the evaluation text came from.
    pub eval_text: String,
    pub members: Vec<FamilyMemberRow>,
    /// Greedy continuations of each prompt, `members[i]` member `i`'s.
    pub generations: Vec<PromptGenerations>,
    /// Stage times in milliseconds (`quantize`, `imatrix`, `evaluation`).
    pub stages: Vec<(String, f64)>,
}

/// Marks the members on the Pareto front of (bits per weight, mean KLD):
/// lower is better on both.
pub fn pareto(points: &[(f64, f64)]) -> Vec<bool> {
    points
        .iter()
        .map(|&(b, k)| {
            !points
                .iter()
                .any(|&(b2, k2)| b2 <= b && k2 <= k && (b2 < b || k2 < k))
        })
        .collect()
}

impl FamilyReport {
    /// The page data for `m`; `hrefs[i]` links member `i`'s model page.
    pub fn build(
        m: &FamilyMeasurements,
        hrefs: &[String],
        reference_note: String,
        eval_text: String,
        stages: Vec<(String, f64)>,
    ) -> FamilyReport {
        let fam = &m.family;
        let points: Vec<(f64, f64)> = fam
            .members
            .iter()
            .zip(&m.outputs.members)
            .map(|(mem, s)| (mem.bits_per_weight, s.kld.mean.value))
            .collect();
        let front = pareto(&points);
        let file_name = |p: &std::path::Path| {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let members = fam
            .members
            .iter()
            .zip(&m.outputs.members)
            .enumerate()
            .map(|(i, (mem, s))| FamilyMemberRow {
                file_name: file_name(&mem.path),
                href: hrefs.get(i).cloned().unwrap_or_default(),
                made_as: mem.made_as.map(|t| t.name().to_string()),
                bits_per_weight: mem.bits_per_weight,
                file_size: mem.file_size,
                reference: i == fam.reference,
                pareto: front[i],
                stats: s.clone(),
                layers: m.layers.get(i).cloned().unwrap_or_default(),
                weights: m.weights.get(i).cloned().unwrap_or_default(),
                speed: m.speed.get(i).cloned(),
                neighbours: m.neighbours.get(i).cloned().flatten(),
            })
            .collect();
        let reference = &fam.members[fam.reference].path;
        FamilyReport {
            generator: format!("ggviz {}", env!("CARGO_PKG_VERSION")),
            name: reference
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            architecture: fam.architecture.clone(),
            reference_note,
            reference_ppl: m.outputs.reference,
            n_chunks: m.outputs.n_chunks,
            n_ctx: m.outputs.n_ctx,
            eval_text,
            members,
            generations: m.generations.clone(),
            stages,
        }
    }

    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_front_keeps_members_nobody_beats_on_both() {
        // (bpw, kld): 16/0 reference, 8.5/0.001, 4.5/0.03, 5/0.05 (beaten by
        // 4.5/0.03), 2.6/0.4.
        let p = [
            (16.0, 0.0),
            (8.5, 0.001),
            (4.5, 0.03),
            (5.0, 0.05),
            (2.6, 0.4),
        ];
        assert_eq!(pareto(&p), vec![true, true, true, false, true]);
    }
}
