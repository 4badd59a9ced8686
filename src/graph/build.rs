//! Building the architecture graph from the anatomy.
//!
//! Components come from the tensor roles present in each layer, so the
//! graph follows the file rather than a list of known models. The wiring is
//! the pre-norm transformer block llama.cpp builds for llama-style models
//! (`llm_build_llama` in `src/models/`): norm → projections → heads → output
//! projection → residual add, then norm → FFN → residual add. Query head `h`
//! reads KV head `h / (n_head / n_head_kv)`, as ggml's broadcasting
//! `ggml_mul_mat` does for grouped-query attention.

use petgraph::graph::{DiGraph, NodeIndex};

use crate::anatomy::{Anatomy, TensorEntry, TensorRole};

use super::shares::HeadShares;
use super::{ArchGraph, EdgeKind, Node, NodeKind, layout, metrics};

/// Builds the graph, its metrics and its layout for `anatomy`.
pub fn build(anatomy: &Anatomy) -> ArchGraph {
    let mut b = Builder {
        a: anatomy,
        g: DiGraph::new(),
        tensor_nodes: vec![None; anatomy.tensors.len()],
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
        let head = b.component(NodeKind::OutputHead, "output", "output head", None, &output);
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

struct Builder<'a> {
    a: &'a Anatomy,
    g: DiGraph<Node, EdgeKind>,
    /// The node of each tensor, by tensor index, once created.
    tensor_nodes: Vec<Option<NodeIndex>>,
}

impl Builder<'_> {
    fn node(&mut self, kind: NodeKind, key: &str, label: &str, layer: Option<u32>) -> NodeIndex {
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
    fn tensor_node(&mut self, t: usize) -> NodeIndex {
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

    fn flow(&mut self, from: NodeIndex, to: NodeIndex) {
        self.g.add_edge(from, to, EdgeKind::Flow);
    }

    /// Adds tensor `t`'s weights to `node`'s totals and type.
    fn add_weights(&mut self, node: NodeIndex, t: usize) {
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
    fn attach(&mut self, node: NodeIndex, t: usize) {
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

/// Builds the components of one layer.
struct LayerBuilder<'b, 'a> {
    b: &'b mut Builder<'a>,
    l: u32,
    container: NodeIndex,
    /// The layer's tensors with their roles, in file order.
    tensors: Vec<(usize, TensorRole)>,
}

impl LayerBuilder<'_, '_> {
    fn of(&self, roles: &[TensorRole]) -> Vec<usize> {
        self.tensors
            .iter()
            .filter(|(_, r)| roles.contains(r))
            .map(|(i, _)| *i)
            .collect()
    }

    fn has(&self, roles: &[TensorRole]) -> bool {
        self.tensors.iter().any(|(_, r)| roles.contains(r))
    }

    fn node(&mut self, kind: NodeKind, name: &str, label: &str) -> NodeIndex {
        let key = format!("blk.{}.{name}", self.l);
        let i = self.b.node(kind, &key, label, Some(self.l));
        self.b.g[i].parent = Some(self.container);
        i
    }

    /// A component holding the layer's tensors of `roles`, or `None` when
    /// the layer has none.
    fn component(
        &mut self,
        kind: NodeKind,
        name: &str,
        label: &str,
        roles: &[TensorRole],
    ) -> Option<NodeIndex> {
        let tensors = self.of(roles);
        if tensors.is_empty() {
            return None;
        }
        let i = self.node(kind, name, label);
        for t in tensors {
            self.b.attach(i, t);
            let tn = self.b.tensor_node(t);
            self.b.g[tn].parent = Some(self.container);
        }
        Some(i)
    }

    fn flow(&mut self, from: NodeIndex, to: NodeIndex) {
        self.b.flow(from, to);
    }

    /// Norm → projections → heads → output projection → residual add.
    /// Returns the node carrying the residual stream afterwards.
    fn attention(&mut self, x: NodeIndex) -> NodeIndex {
        use TensorRole::*;
        let hp = &self.b.a.hparams;
        let l = self.l as usize;
        let n_head = hp.n_head.get(l).copied().unwrap_or(0);
        let projections = [AttnQ, AttnK, AttnV, AttnQkv, AttnOutput];
        if n_head == 0 || !self.has(&projections) {
            return x;
        }
        let n_kv = match hp.n_head_kv.get(l).copied().unwrap_or(0) {
            0 => n_head,
            k => k.min(n_head),
        };
        let group = (n_head / n_kv).max(1);

        let norm = self.component(NodeKind::Norm, "attn_norm", "attention norm", &[AttnNorm]);
        let attn_in = norm.unwrap_or(x);
        if let Some(n) = norm {
            self.flow(x, n);
        }
        let kind = NodeKind::AttnProjection;
        let qkv = self.component(kind, "qkv_proj", "QKV projection", &[AttnQkv]);
        let q = self.component(kind, "q_proj", "Q projection", &[AttnQ]);
        let k = self.component(kind, "k_proj", "K projection", &[AttnK]);
        let v = self.component(kind, "v_proj", "V projection", &[AttnV]);
        for p in [qkv, q, k, v].into_iter().flatten() {
            self.flow(attn_in, p);
        }
        let mut q_src = q.or(qkv);
        let mut k_src = k.or(qkv);
        let v_src = v.or(qkv);
        if let Some(n) = self.component(NodeKind::Norm, "q_norm", "Q norm", &[AttnQNorm]) {
            if let Some(s) = q_src {
                self.flow(s, n);
            }
            q_src = Some(n);
        }
        if let Some(n) = self.component(NodeKind::Norm, "k_norm", "K norm", &[AttnKNorm]) {
            if let Some(s) = k_src {
                self.flow(s, n);
            }
            k_src = Some(n);
        }

        let o = self.component(kind, "o_proj", "output projection", &[AttnOutput]);
        let shares = HeadShares::new(self.b.a, &self.tensors);
        let kv_heads: Vec<NodeIndex> = (0..n_kv)
            .map(|g| {
                let i = self.node(
                    NodeKind::KvHead,
                    &format!("kv.{g}"),
                    &format!("KV head {g}"),
                );
                shares.apply_kv(&mut self.b.g[i]);
                self.b.g[i].head = Some(g);
                self.b.g[i].kv_group = Some(g);
                for s in [k_src, v_src].into_iter().flatten() {
                    if self.b.g.find_edge(s, i).is_none() {
                        self.flow(s, i);
                    }
                }
                i
            })
            .collect();
        let sinks = self.of(&[AttnSinks]);
        let mut heads = Vec::new();
        for h in 0..n_head {
            let i = self.node(NodeKind::Head, &format!("head.{h}"), &format!("head {h}"));
            let g = (h / group).min(n_kv - 1);
            shares.apply_q(&mut self.b.g[i]);
            self.b.g[i].head = Some(h);
            self.b.g[i].kv_group = Some(g);
            if let Some(s) = q_src {
                self.flow(s, i);
            }
            self.flow(kv_heads[g as usize], i);
            for &t in &sinks {
                // Every head reads the sink logits; its own share is one
                // value, so the head's weights are left as they are.
                let tn = self.b.tensor_node(t);
                self.b.g.add_edge(tn, i, EdgeKind::Weight);
            }
            if let Some(o) = o {
                self.flow(i, o);
            }
            heads.push(i);
        }
        for &t in &sinks {
            let tn = self.b.tensor_node(t);
            self.b.g[tn].parent = Some(self.container);
        }
        let mut outs = match o {
            Some(o) => vec![o],
            None => heads,
        };
        if let Some(n) = self.component(
            NodeKind::Norm,
            "attn_post_norm",
            "attention post-norm",
            &[AttnPostNorm],
        ) {
            for s in outs {
                self.flow(s, n);
            }
            outs = vec![n];
        }
        let add = self.node(
            NodeKind::ResidualAdd,
            "attn_add",
            "residual add (attention)",
        );
        self.flow(x, add);
        for s in outs {
            self.flow(s, add);
        }
        add
    }

    /// Norm → dense FFN or experts → residual add.
    fn ffn(&mut self, x: NodeIndex) -> NodeIndex {
        use TensorRole::*;
        let dense = [FfnGate, FfnUp, FfnDown];
        let moe = [
            FfnRouter,
            FfnGateExperts,
            FfnUpExperts,
            FfnDownExperts,
            FfnGateUpExperts,
            FfnGateShared,
            FfnUpShared,
            FfnDownShared,
        ];
        if !self.has(&dense) && !self.has(&moe) {
            return x;
        }
        let norm = self.component(NodeKind::Norm, "ffn_norm", "FFN norm", &[FfnNorm]);
        let ffn_in = norm.unwrap_or(x);
        if let Some(n) = norm {
            self.flow(x, n);
        }
        let mut outs = Vec::new();
        let kind = NodeKind::FfnProjection;
        let gate = self.component(kind, "gate_proj", "gate projection", &[FfnGate]);
        let up = self.component(kind, "up_proj", "up projection", &[FfnUp]);
        let down = self.component(kind, "down_proj", "down projection", &[FfnDown]);
        let act = if gate.is_some() || up.is_some() {
            let label = if gate.is_some() {
                "activation × gate"
            } else {
                "activation"
            };
            let act = self.node(NodeKind::Activation, "act", label);
            for p in [gate, up].into_iter().flatten() {
                self.flow(ffn_in, p);
                self.flow(p, act);
            }
            Some(act)
        } else {
            None
        };
        match (act, down) {
            (Some(a), Some(d)) => {
                self.flow(a, d);
                outs.push(d);
            }
            (None, Some(d)) => {
                self.flow(ffn_in, d);
                outs.push(d);
            }
            (Some(a), None) => outs.push(a),
            (None, None) => {}
        }
        let router = self.component(NodeKind::Router, "router", "expert router", &[FfnRouter]);
        let n_expert = self.b.a.hparams.n_expert;
        let experts_label = if n_expert > 0 {
            format!(
                "experts ({n_expert}, {} active)",
                self.b.a.hparams.n_expert_used
            )
        } else {
            "experts".to_owned()
        };
        let experts = self.component(
            NodeKind::Experts,
            "experts",
            &experts_label,
            &[
                FfnGateExperts,
                FfnUpExperts,
                FfnDownExperts,
                FfnGateUpExperts,
            ],
        );
        if let Some(r) = router {
            self.flow(ffn_in, r);
            if let Some(e) = experts {
                self.flow(r, e);
            }
        }
        if let Some(e) = experts {
            self.flow(ffn_in, e);
            outs.push(e);
        }
        if let Some(s) = self.component(
            NodeKind::SharedExpert,
            "shared_expert",
            "shared expert",
            &[FfnGateShared, FfnUpShared, FfnDownShared],
        ) {
            self.flow(ffn_in, s);
            outs.push(s);
        }
        if let Some(n) = self.component(
            NodeKind::Norm,
            "ffn_post_norm",
            "FFN post-norm",
            &[FfnPostNorm],
        ) {
            for s in outs {
                self.flow(s, n);
            }
            outs = vec![n];
        }
        let add = self.node(NodeKind::ResidualAdd, "ffn_add", "residual add (FFN)");
        self.flow(x, add);
        for s in outs {
            self.flow(s, add);
        }
        add
    }

    fn build(&mut self, x: NodeIndex) -> NodeIndex {
        let mid = self.attention(x);
        let out = self.ffn(mid);
        let rest: Vec<usize> = self
            .tensors
            .iter()
            .map(|(i, _)| *i)
            .filter(|&i| self.b.tensor_nodes[i].is_none())
            .collect();
        if out == x && !rest.is_empty() {
            // A layer with neither attention nor FFN that ggviz knows: its
            // tensors still compute the layer, so they form one computation.
            let other = self.node(NodeKind::Unrecognised, "other", "unrecognised computation");
            for &t in &rest {
                self.b.attach(other, t);
                let tn = self.b.tensor_node(t);
                self.b.g[tn].parent = Some(self.container);
            }
            self.flow(x, other);
            return other;
        }
        // Tensors whose use inside the layer is unknown attach to the layer.
        for t in rest {
            let tn = self.b.tensor_node(t);
            self.b.g[tn].parent = Some(self.container);
            self.b.g.add_edge(tn, self.container, EdgeKind::Weight);
        }
        out
    }
}
