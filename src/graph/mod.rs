//! The model's real structure as a graph.
//!
//! Netron draws a GGUF file as unconnected weight boxes; this stage draws
//! what the model computes. Built from the [`Anatomy`](crate::anatomy::Anatomy)
//! alone, it has two granularities in one graph: layer containers (the block
//! level, recovered by contracting each layer, see [`ArchGraph::block_level`])
//! and, inside each layer, the components that really exist in the file:
//! norms, projections, one node per attention head with the KV head it reads,
//! the FFN, the residual adds, and every tensor attached to the computation
//! that uses it. Nothing is invented: a node is a tensor, a head, a
//! computation the tensors imply, or a container.
//!
//! Metrics ([`metrics`]) and a deterministic layout ([`layout`]) are computed
//! here, so the page only draws.

mod block;
pub mod build;
pub mod layout;
pub mod metrics;
mod shares;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use serde::Serialize;

use crate::gguf::GgmlType;

pub use build::build;
pub use layout::{Band, Layout};
pub use metrics::Metrics;

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NodeKind {
    /// The token ids entering the model.
    Input,
    /// The embedding lookup (token embedding, plus positions or token types
    /// where the file has those tensors).
    Embedding,
    /// One transformer block: the container of its components.
    Layer,
    /// A normalisation with its scale (and bias) tensor.
    Norm,
    /// A linear projection of the attention: Q, K, V, fused QKV or output.
    AttnProjection,
    /// One key/value head, read by a group of query heads (GQA/MQA).
    KvHead,
    /// One query head: scores against its KV head, softmax, weighted values.
    Head,
    /// A residual addition onto the stream.
    ResidualAdd,
    /// A dense FFN projection: gate, up or down.
    FfnProjection,
    /// The FFN nonlinearity (times the gate in GLU models).
    Activation,
    /// The MoE router choosing experts per token.
    Router,
    /// The routed experts of an MoE layer.
    Experts,
    /// The always-active shared expert of an MoE layer.
    SharedExpert,
    /// The output head producing the logits.
    OutputHead,
    /// A layer computation made of tensors whose role ggviz does not know
    /// (state-space blocks, for instance).
    Unrecognised,
    /// A tensor stored in the file.
    Tensor,
}

impl NodeKind {
    /// Every kind, in drawing-legend order.
    pub const ALL: [NodeKind; 16] = [
        NodeKind::Input,
        NodeKind::Embedding,
        NodeKind::Layer,
        NodeKind::Norm,
        NodeKind::AttnProjection,
        NodeKind::KvHead,
        NodeKind::Head,
        NodeKind::ResidualAdd,
        NodeKind::FfnProjection,
        NodeKind::Activation,
        NodeKind::Router,
        NodeKind::Experts,
        NodeKind::SharedExpert,
        NodeKind::OutputHead,
        NodeKind::Unrecognised,
        NodeKind::Tensor,
    ];

    /// The name used in the report and the page.
    pub fn id(self) -> &'static str {
        match self {
            NodeKind::Input => "input",
            NodeKind::Embedding => "embedding",
            NodeKind::Layer => "layer",
            NodeKind::Norm => "norm",
            NodeKind::AttnProjection => "attn_projection",
            NodeKind::KvHead => "kv_head",
            NodeKind::Head => "head",
            NodeKind::ResidualAdd => "residual_add",
            NodeKind::FfnProjection => "ffn_projection",
            NodeKind::Activation => "activation",
            NodeKind::Router => "router",
            NodeKind::Experts => "experts",
            NodeKind::SharedExpert => "shared_expert",
            NodeKind::OutputHead => "output_head",
            NodeKind::Unrecognised => "unrecognised",
            NodeKind::Tensor => "tensor",
        }
    }

    /// A human label for legends.
    pub fn label(self) -> &'static str {
        match self {
            NodeKind::Input => "input tokens",
            NodeKind::Embedding => "embedding",
            NodeKind::Layer => "layer",
            NodeKind::Norm => "norm",
            NodeKind::AttnProjection => "attention projection",
            NodeKind::KvHead => "KV head",
            NodeKind::Head => "attention head",
            NodeKind::ResidualAdd => "residual add",
            NodeKind::FfnProjection => "FFN projection",
            NodeKind::Activation => "activation",
            NodeKind::Router => "expert router",
            NodeKind::Experts => "experts",
            NodeKind::SharedExpert => "shared expert",
            NodeKind::OutputHead => "output head",
            NodeKind::Unrecognised => "unrecognised",
            NodeKind::Tensor => "tensor",
        }
    }
}

/// What an edge means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// Activations flow from one computation to the next.
    Flow,
    /// A computation uses a tensor's weights (tensor → computation).
    Weight,
    /// The output head reuses the token embedding's weights.
    Tied,
}

impl EdgeKind {
    /// Every kind, in report order.
    pub const ALL: [EdgeKind; 3] = [EdgeKind::Flow, EdgeKind::Weight, EdgeKind::Tied];

    /// The name used in the report and the page.
    pub fn id(self) -> &'static str {
        match self {
            EdgeKind::Flow => "flow",
            EdgeKind::Weight => "weight",
            EdgeKind::Tied => "tied",
        }
    }
}

/// One node of the architecture graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Stable, unique id: the tensor name for tensors, `blk.5.q_proj`,
    /// `blk.5.head.3`, `blk.5.kv.1`, `blk.5` for containers, `input`, ...
    pub key: String,
    pub kind: NodeKind,
    /// Human label ("Q projection", "head 3", the tensor name).
    pub label: String,
    /// Block index for nodes inside a layer (and for the container itself).
    pub layer: Option<u32>,
    /// Query-head index for heads, KV-head index for KV heads.
    pub head: Option<u32>,
    /// For a query head, the KV head it reads; for a KV head, its own index.
    pub kv_group: Option<u32>,
    /// The layer container this node sits in.
    pub parent: Option<NodeIndex>,
    /// Index into [`Anatomy::tensors`](crate::anatomy::Anatomy::tensors) for tensor nodes.
    pub tensor: Option<usize>,
    /// Weights of this node: a tensor's own, a computation's tensors, a
    /// head's share of its projections, a container's whole layer.
    pub params: u64,
    /// Bytes of those weights (a head's share at its tensors' exact rate).
    pub bytes: u64,
    /// The storage type, when all of the node's weights share one.
    pub ggml_type: Option<GgmlType>,
}

/// The graph, its metrics and its layout.
#[derive(Debug, Clone)]
pub struct ArchGraph {
    /// Every node and edge; node indices are stable and index the metric
    /// and layout vectors.
    pub graph: DiGraph<Node, EdgeKind>,
    /// The container of each layer, by block index.
    pub layers: Vec<NodeIndex>,
    pub metrics: Metrics,
    pub layout: Layout,
}

impl ArchGraph {
    /// The node with this key.
    pub fn find(&self, key: &str) -> Option<NodeIndex> {
        self.graph
            .node_indices()
            .find(|&i| self.graph[i].key == key)
    }

    /// Nodes of one kind, in index order.
    pub fn nodes_of(&self, kind: NodeKind) -> impl Iterator<Item = NodeIndex> + '_ {
        self.graph
            .node_indices()
            .filter(move |&i| self.graph[i].kind == kind)
    }

    /// The node standing for `node` when every layer is collapsed: its
    /// container, or itself outside the layers.
    pub fn block_of(&self, node: NodeIndex) -> NodeIndex {
        self.graph[node].parent.unwrap_or(node)
    }

    /// The block level: every layer contracted into its container, keeping
    /// the computations outside the layers (input, embedding, output norm,
    /// output head) and the flow between them, which is the residual stream.
    /// Tensor nodes are left out. Node weights are indices into [`Self::graph`].
    pub fn block_level(&self) -> DiGraph<NodeIndex, ()> {
        let mut g = DiGraph::new();
        let mut map = vec![None; self.graph.node_count()];
        for i in self.graph.node_indices() {
            let n = &self.graph[i];
            if n.parent.is_none() && n.kind != NodeKind::Tensor {
                map[i.index()] = Some(g.add_node(i));
            }
        }
        for e in self.graph.edge_references() {
            if *e.weight() != EdgeKind::Flow {
                continue;
            }
            let (a, b) = (self.block_of(e.source()), self.block_of(e.target()));
            if let (Some(a), Some(b)) = (map[a.index()], map[b.index()])
                && a != b
                && g.find_edge(a, b).is_none()
            {
                g.add_edge(a, b, ());
            }
        }
        g
    }
}
