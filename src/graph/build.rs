//! Building the architecture graph from the anatomy: the input, the
//! embedding, one container per layer (its inside is built by
//! the `block` module), the output norm and the output head, with the
//! residual stream as flow between them.

use petgraph::graph::{DiGraph, NodeIndex};

use crate::anatomy::{Anatomy, TensorEntry, TensorRole};

use super::block::LayerBuilder;
use super::{ArchGraph, EdgeKind, Node, NodeKind, layout, metrics};

/// Builds the graph, its metrics and its layout for `anatomy`.
pub fn build(anatomy: &Anatomy) -> ArchGraph {
    let mut b = Builder {
        a: anatomy,
        g: DiGraph::new(),
        tensor_nodes: vec![None; anatomy.tensors.len()],
        heads_not_drawn: false,
    };
    let mut layers = Vec::new();

    let input = b.node(NodeKind::Input, "input", "input tokens", None);
    let globals = |roles: &[TensorRole]| -> Vec<usize> {
        anatomy
            .tensors
            .iter()
            .enumerate()
            .filter(|(_, t)| t.layer.is_none() && roles.contains(&t.role))
            .map(|(i, _)| i)
            .collect()
    };
    let embd_tensors = globals(&[
        TensorRole::TokenEmbedding,
        TensorRole::PositionEmbedding,
        TensorRole::TokenTypes,
    ]);
    let embedding = b.component(
        NodeKind::Embedding,
        "embedding",
        "embedding lookup",
        None,
        &embd_tensors,
    );
    b.flow(input, embedding);
    let mut stream = embedding;
    let embd_norm = globals(&[TensorRole::TokenEmbeddingNorm]);
    if !embd_norm.is_empty() {
        let n = b.component(
            NodeKind::Norm,
            "embd_norm",
            "embedding norm",
            None,
            &embd_norm,
        );
        b.flow(stream, n);
        stream = n;
    }

    for l in 0..anatomy.hparams.n_layer {
        let (container, out) = b.layer(l, stream);
        layers.push(container);
        stream = out;
    }

    let out_norm = globals(&[TensorRole::OutputNorm]);
    if !out_norm.is_empty() {
        let n = b.component(
            NodeKind::Norm,
            "output_norm",
            "output norm",
            None,
            &out_norm,
        );
        b.flow(stream, n);
        stream = n;
    }
    let output = globals(&[TensorRole::Output]);
    if !output.is_empty() || anatomy.tied_embeddings {
        // The logits are c · tanh(logits / c) where the model soft-caps
        // them (gemma2.cpp), so the head says so.
        let label = match anatomy.hparams.final_logit_softcapping {
            Some(c) => format!("output head, logits soft-capped at {c}"),
            None => "output head".to_owned(),
        };
        let head = b.component(NodeKind::OutputHead, "output", &label, None, &output);
        b.flow(stream, head);
        if anatomy.tied_embeddings {
            for &t in &embd_tensors {
                if anatomy.tensors[t].role == TensorRole::TokenEmbedding {
                    let tensor = b.tensor_node(t);
                    b.g.add_edge(head, tensor, EdgeKind::Tied);
                    b.add_weights(head, t);
                }
            }
        }
    }
    // Global tensors no computation above claims (RoPE frequency factors,
    // unknown roles) stay in the graph, unattached, so no tensor is dropped.
    for (i, t) in anatomy.tensors.iter().enumerate() {
        if t.layer.is_none() {
            b.tensor_node(i);
        }
    }

    let graph = b.g;
    let metrics = metrics::compute(&graph);
    let layout = layout::compute(&graph, &layers);
    ArchGraph {
        graph,
        layers,
        metrics,
        layout,
    }
}

pub(super) struct Builder<'a> {
    pub(super) a: &'a Anatomy,
    pub(super) g: DiGraph<Node, EdgeKind>,
    /// The node of each tensor, by tensor index, once created.
    pub(super) tensor_nodes: Vec<Option<NodeIndex>>,
    /// Whether a layer's heads were too many to draw (said once).
    pub(super) heads_not_drawn: bool,
}

impl Builder<'_> {
    pub(super) fn node(
        &mut self,
        kind: NodeKind,
        key: &str,
        label: &str,
        layer: Option<u32>,
    ) -> NodeIndex {
        self.g.add_node(Node {
            key: key.to_owned(),
            kind,
            label: label.to_owned(),
            layer,
            head: None,
            kv_group: None,
            parent: None,
            tensor: None,
            params: 0,
            bytes: 0,
            ggml_type: None,
        })
    }

    /// The node of tensor `t`, created on first use.
    pub(super) fn tensor_node(&mut self, t: usize) -> NodeIndex {
        if let Some(i) = self.tensor_nodes[t] {
            return i;
        }
        let e: &TensorEntry = &self.a.tensors[t];
        let i = self.node(NodeKind::Tensor, &e.name, &e.name, e.layer);
        let n = &mut self.g[i];
        n.tensor = Some(t);
        n.params = e.params;
        n.bytes = e.bytes;
        n.ggml_type = Some(e.ggml_type);
        self.tensor_nodes[t] = Some(i);
        i
    }

    pub(super) fn flow(&mut self, from: NodeIndex, to: NodeIndex) {
        self.g.add_edge(from, to, EdgeKind::Flow);
    }

    /// Adds tensor `t`'s weights to `node`'s totals and type.
    pub(super) fn add_weights(&mut self, node: NodeIndex, t: usize) {
        let e = &self.a.tensors[t];
        let n = &mut self.g[node];
        n.ggml_type = if n.params == 0 {
            Some(e.ggml_type)
        } else {
            n.ggml_type.filter(|&ty| ty == e.ggml_type)
        };
        n.params += e.params;
        n.bytes += e.bytes;
    }

    /// Attaches tensor `t` to `node` with a weight edge.
    pub(super) fn attach(&mut self, node: NodeIndex, t: usize) {
        let tensor = self.tensor_node(t);
        self.g.add_edge(tensor, node, EdgeKind::Weight);
        self.add_weights(node, t);
    }

    /// A computation with its tensors.
    fn component(
        &mut self,
        kind: NodeKind,
        key: &str,
        label: &str,
        layer: Option<u32>,
        tensors: &[usize],
    ) -> NodeIndex {
        let i = self.node(kind, key, label, layer);
        for &t in tensors {
            self.attach(i, t);
        }
        i
    }

    /// Builds layer `l` reading the residual stream from `x`; returns the
    /// container and the node whose output is the layer's output.
    fn layer(&mut self, l: u32, x: NodeIndex) -> (NodeIndex, NodeIndex) {
        let a = self.a;
        let container = self.node(
            NodeKind::Layer,
            &format!("blk.{l}"),
            &format!("layer {l}"),
            Some(l),
        );
        if let Some(share) = a.accounting.by_layer.get(l as usize) {
            let n = &mut self.g[container];
            n.params = share.params;
            n.bytes = share.bytes;
            let mut types = share.bytes_by_type.iter().map(|(t, _)| *t);
            n.ggml_type = types.next().filter(|_| share.bytes_by_type.len() == 1);
        }
        let tensors: Vec<(usize, TensorRole)> = a
            .tensors
            .iter()
            .enumerate()
            .filter(|(_, t)| t.layer == Some(l))
            .map(|(i, t)| (i, t.role))
            .collect();
        let mut layer = LayerBuilder {
            b: self,
            l,
            container,
            tensors,
        };
        let out = layer.build(x);
        (container, out)
    }
}
