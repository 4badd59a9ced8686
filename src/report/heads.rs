//! The heads section: every attention head of every layer, with the
//! per-head values the head map can colour by.
//!
//! Heads are listed layer by layer, head by head; `offsets[l]` is the
//! position of layer `l`'s head 0. Each [`HeadMetric`] holds one value per
//! head in that order, so analyses added later (entropy, induction score,
//! importance, cluster) are more entries of the same list.

use serde::{Deserialize, Serialize};

use crate::graph::{ArchGraph, NodeKind};

use super::packed::Packed;

/// How a head metric is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricScale {
    /// A quantity on a continuous scale.
    Continuous,
    /// Integer codes naming categories (see `categories`).
    Categorical,
}

/// One value per head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadMetric {
    pub id: String,
    pub label: String,
    pub description: String,
    pub scale: MetricScale,
    /// Names of the categories of a categorical metric, by code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    pub values: Packed,
}

/// The heads section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeadSection {
    /// Query heads per layer.
    pub n_head: Vec<u32>,
    /// KV heads per layer.
    pub n_head_kv: Vec<u32>,
    /// Position of each layer's first head in the per-head arrays.
    pub offsets: Vec<u32>,
    /// Total number of heads.
    pub count: usize,
    /// Graph node index of each head.
    pub node: Packed,
    /// The KV head each head reads.
    pub kv_group: Packed,
    pub metrics: Vec<HeadMetric>,
}

/// The heads section for `g`.
pub fn section(g: &ArchGraph) -> HeadSection {
    let n_layer = g.layers.len();
    let mut per_layer: Vec<Vec<petgraph::graph::NodeIndex>> = vec![Vec::new(); n_layer];
    let mut kv_count = vec![0u32; n_layer];
    for i in g.graph.node_indices() {
        let n = &g.graph[i];
        match (n.kind, n.layer) {
            (NodeKind::Head, Some(l)) => per_layer[l as usize].push(i),
            (NodeKind::KvHead, Some(l)) => kv_count[l as usize] += 1,
            _ => {}
        }
    }
    for heads in &mut per_layer {
        heads.sort_by_key(|&i| g.graph[i].head);
    }
    let mut offsets = Vec::with_capacity(n_layer);
    let mut order = Vec::new();
    for heads in &per_layer {
        offsets.push(order.len() as u32);
        order.extend(heads.iter().copied());
    }
    let metric = |f: &dyn Fn(petgraph::graph::NodeIndex) -> f32| {
        Packed::f32(&order.iter().map(|&i| f(i)).collect::<Vec<_>>())
    };
    let m = &g.metrics;
    let max_kv = kv_count.iter().copied().max().unwrap_or(0);
    HeadSection {
        n_head: per_layer.iter().map(|h| h.len() as u32).collect(),
        n_head_kv: kv_count,
        offsets,
        count: order.len(),
        node: Packed::u32(&order.iter().map(|i| i.index() as u32).collect::<Vec<_>>()),
        kv_group: Packed::u16(
            &order
                .iter()
                .map(|&i| g.graph[i].kv_group.unwrap_or(0).min(u32::from(u16::MAX)) as u16)
                .collect::<Vec<_>>(),
        ),
        metrics: vec![
            HeadMetric {
                id: "kv_group".into(),
                label: "KV group".into(),
                description: "The key/value head the query head reads; heads of one group share keys and values (GQA).".into(),
                scale: MetricScale::Categorical,
                categories: (0..max_kv).map(|g| format!("KV head {g}")).collect(),
                values: metric(&|i| g.graph[i].kv_group.unwrap_or(0) as f32),
            },
            HeadMetric {
                id: "bits_per_weight".into(),
                label: "bits per weight".into(),
                description: "Storage bits per weight of the head's own rows of Q and columns of the output projection.".into(),
                scale: MetricScale::Continuous,
                categories: Vec::new(),
                values: metric(&|i| {
                    g.graph[i]
                        .ggml_type
                        .map_or(f32::NAN, |t| t.bits_per_weight() as f32)
                }),
            },
            HeadMetric {
                id: "pagerank".into(),
                label: "PageRank (graph)".into(),
                description: "PageRank of the head's node in the architecture graph: a wiring fact, equal for heads wired alike.".into(),
                scale: MetricScale::Continuous,
                categories: Vec::new(),
                values: metric(&|i| m.pagerank[i.index()] as f32),
            },
            HeadMetric {
                id: "betweenness".into(),
                label: "betweenness (graph)".into(),
                description: "Betweenness of the head's node in the architecture graph: a wiring fact, equal for heads wired alike.".into(),
                scale: MetricScale::Continuous,
                categories: Vec::new(),
                values: metric(&|i| m.betweenness[i.index()] as f32),
            },
        ],
    }
}
