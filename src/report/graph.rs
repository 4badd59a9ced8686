//! The architecture graph as the page draws it: columns of node
//! attributes, edges, bands and metrics, packed.

use petgraph::visit::EdgeRef;
use serde::Serialize;

use crate::anatomy::Anatomy;
use crate::graph::{ArchGraph, EdgeKind, NodeKind};

use super::packed::Packed;
use super::tensors::type_index;

/// A node or edge kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindInfo {
    pub id: &'static str,
    pub label: &'static str,
}

/// Node attributes as columns, by node index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeColumns {
    pub count: usize,
    /// Stable ids (`blk.5.q_proj`, `blk.5.head.3`, tensor names).
    pub key: Vec<String>,
    pub label: Vec<String>,
    /// Index into `kinds`.
    pub kind: Packed,
    /// Block index, −1 outside the layers.
    pub layer: Packed,
    /// Head index (query or KV head), −1 for other nodes.
    pub head: Packed,
    /// The KV head a query head reads (a KV head's own index), −1 otherwise.
    pub kv_group: Packed,
    /// Node index of the layer container, −1 outside the layers.
    pub parent: Packed,
    /// Index into the tensor table for tensor nodes, −1 otherwise.
    pub tensor: Packed,
    /// Index into the report's `types`, −1 when mixed or none.
    #[serde(rename = "type")]
    pub ggml_type: Packed,
    pub params: Packed,
    pub bytes: Packed,
    /// Band the node is drawn in.
    pub band: Packed,
    /// Position inside the band (see `bands`).
    pub x: Packed,
    pub y: Packed,
}

/// Edges as columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EdgeColumns {
    pub count: usize,
    pub source: Packed,
    pub target: Packed,
    /// Index into `edge_kinds`.
    pub kind: Packed,
}

/// One horizontal band of the layout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BandInfo {
    pub label: String,
    pub layer: Option<u32>,
    pub height: f32,
    pub collapsed_height: f32,
}

/// One per-node metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeMetric {
    pub id: &'static str,
    pub label: &'static str,
    pub description: &'static str,
    pub values: Packed,
}

/// The graph section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphSection {
    pub kinds: Vec<KindInfo>,
    pub edge_kinds: Vec<&'static str>,
    pub nodes: NodeColumns,
    pub edges: EdgeColumns,
    pub bands: Vec<BandInfo>,
    /// x of the main column's centre; the residual lane is at x = 0.
    pub center_x: f32,
    pub metrics: Vec<NodeMetric>,
}

fn opt(v: Option<u32>) -> i32 {
    v.map_or(-1, |x| x as i32)
}

/// The graph section for `g`.
pub fn section(a: &Anatomy, g: &ArchGraph) -> GraphSection {
    let nodes: Vec<_> = g.graph.node_indices().map(|i| &g.graph[i]).collect();
    let kind_index = |k: NodeKind| NodeKind::ALL.iter().position(|&x| x == k).unwrap_or(0) as u8;
    let col_i32 = |f: &dyn Fn(&crate::graph::Node) -> i32| {
        Packed::i32(&nodes.iter().map(|n| f(n)).collect::<Vec<_>>())
    };
    let m = &g.metrics;
    let to_f32 = |v: &[f64]| Packed::f32(&v.iter().map(|&x| x as f32).collect::<Vec<_>>());
    let degree: Vec<f64> = m
        .in_degree
        .iter()
        .zip(&m.out_degree)
        .map(|(a, b)| f64::from(a + b))
        .collect();
    let edges: Vec<_> = g.graph.edge_references().collect();
    GraphSection {
        kinds: NodeKind::ALL
            .iter()
            .map(|k| KindInfo {
                id: k.id(),
                label: k.label(),
            })
            .collect(),
        edge_kinds: EdgeKind::ALL.iter().map(|k| k.id()).collect(),
        nodes: NodeColumns {
            count: nodes.len(),
            key: nodes.iter().map(|n| n.key.clone()).collect(),
            label: nodes.iter().map(|n| n.label.clone()).collect(),
            kind: Packed::u8(&nodes.iter().map(|n| kind_index(n.kind)).collect::<Vec<_>>()),
            layer: col_i32(&|n| opt(n.layer)),
            head: col_i32(&|n| opt(n.head)),
            kv_group: col_i32(&|n| opt(n.kv_group)),
            parent: col_i32(&|n| n.parent.map_or(-1, |p| p.index() as i32)),
            tensor: col_i32(&|n| n.tensor.map_or(-1, |t| t as i32)),
            ggml_type: Packed::i16(
                &nodes
                    .iter()
                    .map(|n| {
                        n.ggml_type
                            .and_then(|t| type_index(a, t))
                            .map_or(-1, |i| i as i16)
                    })
                    .collect::<Vec<_>>(),
            ),
            params: Packed::f64(&nodes.iter().map(|n| n.params as f64).collect::<Vec<_>>()),
            bytes: Packed::f64(&nodes.iter().map(|n| n.bytes as f64).collect::<Vec<_>>()),
            band: Packed::u16(
                &g.layout
                    .band
                    .iter()
                    .map(|&b| b.min(u32::from(u16::MAX)) as u16)
                    .collect::<Vec<_>>(),
            ),
            x: Packed::f32(&g.layout.x),
            y: Packed::f32(&g.layout.y),
        },
        edges: EdgeColumns {
            count: edges.len(),
            source: Packed::u32(
                &edges
                    .iter()
                    .map(|e| e.source().index() as u32)
                    .collect::<Vec<_>>(),
            ),
            target: Packed::u32(
                &edges
                    .iter()
                    .map(|e| e.target().index() as u32)
                    .collect::<Vec<_>>(),
            ),
            kind: Packed::u8(
                &edges
                    .iter()
                    .map(|e| {
                        EdgeKind::ALL
                            .iter()
                            .position(|k| k == e.weight())
                            .unwrap_or(0) as u8
                    })
                    .collect::<Vec<_>>(),
            ),
        },
        bands: g
            .layout
            .bands
            .iter()
            .map(|b| BandInfo {
                label: b.label.clone(),
                layer: b.layer,
                height: b.height,
                collapsed_height: b.collapsed_height,
            })
            .collect(),
        center_x: g.layout.center_x,
        metrics: vec![
            NodeMetric {
                id: "pagerank",
                label: "PageRank",
                description: "Share of a random walk along the edges (damping 0.85) that sits on this node. Grows toward the output of a feed-forward graph; says nothing about what the weights learned.",
                values: to_f32(&m.pagerank),
            },
            NodeMetric {
                id: "betweenness",
                label: "betweenness",
                description: "Share of shortest paths between other nodes that pass through this node. Highest on the residual adds every path crosses; a wiring fact, not importance.",
                values: to_f32(&m.betweenness),
            },
            NodeMetric {
                id: "degree",
                label: "degree",
                description: "Edges in and out of the node: inputs, weights and consumers.",
                values: to_f32(&degree),
            },
        ],
    }
}
