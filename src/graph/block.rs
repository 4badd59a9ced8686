//! One transformer block: its norms, attention, FFN and residual adds,
//! wired the way llama.cpp computes them.
//!
//! Components come from the tensor roles present in the layer, so the
//! graph follows the file rather than a list of known models. The wiring
//! follows llama.cpp's graph builders (`src/models/<arch>.cpp`):
//! - sequential blocks (`llama.cpp`): norm → attention → add, then
//!   norm → FFN → add onto that sum;
//! - parallel blocks (phi2, falcon, command-r, gptneox with
//!   `use_parallel_residual`, see [`Residual`]): both branches read the
//!   layer input, through their own norms or one shared norm, and one add
//!   takes the input and both outputs;
//! - projections feed the heads, fused QKV as one projection; Q/K norms sit
//!   between the projections and the heads; query head `h` reads KV head
//!   `h / (n_head / n_head_kv)`, as ggml's broadcasting `ggml_mul_mat` does
//!   for grouped-query attention;
//! - post-norms (gemma2.cpp) normalise a branch's output before its add;
//! - the router picks and weights the experts, whose weighted sum and the
//!   shared expert's output both add to the stream (qwen2moe.cpp);
//! - a bias belongs to its projection: it has the projection's role.

use petgraph::graph::NodeIndex;

use crate::anatomy::{Residual, TensorRole};

use super::build::Builder;
use super::shares::HeadShares;
use super::{EdgeKind, NodeKind};

/// Builds the components of one layer.
pub(super) struct LayerBuilder<'b, 'a> {
    pub(super) b: &'b mut Builder<'a>,
    pub(super) l: u32,
    pub(super) container: NodeIndex,
    /// The layer's tensors with their roles, in file order.
    pub(super) tensors: Vec<(usize, TensorRole)>,
}

const ATTN_PROJECTIONS: [TensorRole; 5] = [
    TensorRole::AttnQ,
    TensorRole::AttnK,
    TensorRole::AttnV,
    TensorRole::AttnQkv,
    TensorRole::AttnOutput,
];
/// Heads drawn one node each, per layer, up to this many (released models
/// have at most a few hundred). More is a file's claim that would otherwise
/// cost a node and an edge per head (4 billion for `u32::MAX`).
const MAX_DRAWN_HEADS: u32 = 1024;
const DENSE_FFN: [TensorRole; 3] = [TensorRole::FfnGate, TensorRole::FfnUp, TensorRole::FfnDown];
const EXPERTS: [TensorRole; 4] = [
    TensorRole::FfnGateExperts,
    TensorRole::FfnUpExperts,
    TensorRole::FfnDownExperts,
    TensorRole::FfnGateUpExperts,
];
const SHARED_EXPERT: [TensorRole; 4] = [
    TensorRole::FfnGateShared,
    TensorRole::FfnUpShared,
    TensorRole::FfnDownShared,
    TensorRole::FfnGateInpShared,
];

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

    /// The layer's tensors of `role` whose base name is (or, with
    /// `is = false`, is not) `base`.
    fn of_base(&self, role: TensorRole, base: &str, is: bool) -> Vec<usize> {
        self.of(&[role])
            .into_iter()
            .filter(|&i| (self.b.a.tensors[i].base == base) == is)
            .collect()
    }

    fn node(&mut self, kind: NodeKind, name: &str, label: &str) -> NodeIndex {
        let key = format!("blk.{}.{name}", self.l);
        let i = self.b.node(kind, &key, label, Some(self.l));
        self.b.g[i].parent = Some(self.container);
        i
    }

    /// A component holding `tensors`, or `None` when there are none.
    fn component_with(
        &mut self,
        kind: NodeKind,
        name: &str,
        label: &str,
        tensors: &[usize],
    ) -> Option<NodeIndex> {
        if tensors.is_empty() {
            return None;
        }
        let i = self.node(kind, name, label);
        for &t in tensors {
            self.b.attach(i, t);
            let tn = self.b.tensor_node(t);
            self.b.g[tn].parent = Some(self.container);
        }
        Some(i)
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
        self.component_with(kind, name, label, &tensors)
    }

    fn flow(&mut self, from: NodeIndex, to: NodeIndex) {
        self.b.flow(from, to);
    }

    /// A norm of `tensors` reading `x`; `x` itself when there are none.
    fn norm(&mut self, x: NodeIndex, name: &str, label: &str, tensors: &[usize]) -> NodeIndex {
        match self.component_with(NodeKind::Norm, name, label, tensors) {
            Some(n) => {
                self.flow(x, n);
                n
            }
            None => x,
        }
    }

    /// A residual add of the stream `x` and the branch outputs `outs`.
    fn add(&mut self, name: &str, label: &str, x: NodeIndex, outs: &[NodeIndex]) -> NodeIndex {
        let add = self.node(NodeKind::ResidualAdd, name, label);
        self.flow(x, add);
        for &s in outs {
            self.flow(s, add);
        }
        add
    }

    fn has_attention(&self) -> bool {
        let n_head = self.b.a.hparams.n_head.get(self.l as usize);
        n_head.is_some_and(|&h| h > 0) && self.has(&ATTN_PROJECTIONS)
    }

    fn has_ffn(&self) -> bool {
        self.has(&DENSE_FFN)
            || self.has(&EXPERTS)
            || self.has(&[TensorRole::FfnRouter])
            || self.has(&SHARED_EXPERT)
    }

    /// Builds the layer reading the residual stream from `x`; returns the
    /// node whose output is the layer's output.
    pub(super) fn build(&mut self, x: NodeIndex) -> NodeIndex {
        let out = match self.b.a.residual(self.l) {
            Residual::Sequential => self.sequential(x),
            Residual::Parallel => self.parallel(x),
        };
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

    /// Attention, add, then FFN on the sum, add.
    fn sequential(&mut self, x: NodeIndex) -> NodeIndex {
        use TensorRole::*;
        // A `post_attention_norm` (or dbrx's `attn_output_norm`) with
        // neither an FFN norm nor an FFN post-norm beside it is the FFN's
        // input norm, applied to the stream after the attention add:
        // openai-moe.cpp, glm4-moe.cpp, seed-oss.cpp, qwen3next.cpp,
        // dbrx.cpp. Beside gemma's FFN norms it normalises the attention
        // output before the add (gemma2.cpp, gemma3.cpp, olmo2.cpp).
        let post_attn_is_ffn_norm = self.has(&[AttnPostNorm]) && !self.has(&[FfnNorm, FfnPostNorm]);
        let mut stream = x;
        if self.has_attention() {
            let norm = self.of(&[AttnNorm]);
            let attn_in = self.norm(x, "attn_norm", "attention norm", &norm);
            let outs = self.attention(attn_in, !post_attn_is_ffn_norm);
            stream = self.add("attn_add", "residual add (attention)", x, &outs);
        }
        if self.has_ffn() {
            let ffn_in = if post_attn_is_ffn_norm {
                let norm = self.of(&[AttnPostNorm]);
                self.norm(stream, "ffn_norm", "FFN norm (post_attention_norm)", &norm)
            } else {
                let norm = self.of(&[FfnNorm]);
                self.norm(stream, "ffn_norm", "FFN norm", &norm)
            };
            let outs = self.ffn(ffn_in);
            stream = self.add("ffn_add", "residual add (FFN)", stream, &outs);
        }
        stream
    }

    /// Attention and FFN both off the layer input, one add.
    fn parallel(&mut self, x: NodeIndex) -> NodeIndex {
        use TensorRole::*;
        let (has_attn, has_ffn) = (self.has_attention(), self.has_ffn());
        if !has_attn && !has_ffn {
            return x;
        }
        // Falcon-40B has two input norms: `attn_norm_2` for the attention
        // and `attn_norm` for the FFN (falcon.cpp). No other parallel
        // architecture loads `attn_norm_2`.
        let second = self.of_base(AttnNorm, "attn_norm_2", true);
        let (attn_in, ffn_in) = if second.is_empty() {
            let norm = self.of(&[AttnNorm]);
            let attn_in = self.norm(x, "attn_norm", "attention norm", &norm);
            // GPT-NeoX normalises the FFN input on its own (`ffn_norm`);
            // phi2, falcon-7B, command-r feed it the attention norm's output.
            let ffn_norm = self.of(&[FfnNorm]);
            let ffn_in = if ffn_norm.is_empty() {
                attn_in
            } else {
                self.norm(x, "ffn_norm", "FFN norm", &ffn_norm)
            };
            (attn_in, ffn_in)
        } else {
            let attn_in = self.norm(x, "attn_norm", "attention norm (attn_norm_2)", &second);
            let first = self.of_base(AttnNorm, "attn_norm_2", false);
            let ffn_in = self.norm(x, "ffn_norm", "FFN norm (attn_norm)", &first);
            (attn_in, ffn_in)
        };
        let mut outs = Vec::new();
        if has_attn {
            outs.extend(self.attention(attn_in, true));
        }
        if has_ffn {
            outs.extend(self.ffn(ffn_in));
        }
        self.add("attn_ffn_add", "residual add (attention + FFN)", x, &outs)
    }

    /// Projections → heads → output projection (→ post-norm when
    /// `post_norm`), reading `attn_in`. Returns the branch's outputs.
    fn attention(&mut self, attn_in: NodeIndex, post_norm: bool) -> Vec<NodeIndex> {
        use TensorRole::*;
        let hp = &self.b.a.hparams;
        let l = self.l as usize;
        let n_head = hp.n_head.get(l).copied().unwrap_or(0);
        let n_kv = match hp.n_head_kv.get(l).copied().unwrap_or(0) {
            0 => n_head,
            k => k.min(n_head),
        };
        let group = (n_head / n_kv).max(1);

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
        if n_head > MAX_DRAWN_HEADS {
            // A count no released model comes near (a file's claim, not
            // checked against the tensors here: llama.cpp's own check is
            // `anatomy::runnable`): the projections meet the output
            // projection without a node per head, rather than millions.
            if !self.b.heads_not_drawn {
                self.b.heads_not_drawn = true;
                tracing::warn!(
                    "layer {l}: {n_head} attention heads; the graph draws at most \
                     {MAX_DRAWN_HEADS} a layer one by one, and these not at all"
                );
            }
            let mut outs: Vec<NodeIndex> = [q_src, k_src, v_src].into_iter().flatten().collect();
            outs.sort();
            outs.dedup();
            if let Some(o) = o {
                for &s in &outs {
                    self.flow(s, o);
                }
                outs = vec![o];
            }
            return self.attention_post_norm(outs, post_norm);
        }
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
                // Every head reads its own sink logit (openai-moe.cpp passes
                // `attn_sinks` to the softmax); its share is one value, so
                // the head's weights are left as they are.
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
        let outs = match o {
            Some(o) => vec![o],
            None => heads,
        };
        self.attention_post_norm(outs, post_norm)
    }

    /// The attention branch's outputs `outs`, through the post-norm when
    /// `post_norm` and the layer has one.
    fn attention_post_norm(&mut self, outs: Vec<NodeIndex>, post_norm: bool) -> Vec<NodeIndex> {
        use TensorRole::*;
        if !post_norm {
            return outs;
        }
        let post = self.of(&[AttnPostNorm]);
        match self.component_with(
            NodeKind::Norm,
            "attn_post_norm",
            "attention post-norm",
            &post,
        ) {
            Some(n) => {
                for s in outs {
                    self.flow(s, n);
                }
                vec![n]
            }
            None => outs,
        }
    }

    /// Dense FFN and/or router → experts and shared expert (→ post-norm),
    /// reading `ffn_in`. Returns the branch's outputs.
    fn ffn(&mut self, ffn_in: NodeIndex) -> Vec<NodeIndex> {
        use TensorRole::*;
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
        let hp = &self.b.a.hparams;
        // build_moe_ffn (llama-graph.cpp) returns the router-weighted sum
        // of the chosen experts' outputs: this node is that sum.
        let experts_label = if hp.n_expert > 0 {
            format!(
                "experts ({}, {} active, weighted sum)",
                hp.n_expert, hp.n_expert_used
            )
        } else {
            "experts (weighted sum)".to_owned()
        };
        let experts = self.component(NodeKind::Experts, "experts", &experts_label, &EXPERTS);
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
        // qwen2moe.cpp scales the shared expert's output by
        // sigmoid(ffn_gate_inp_shexp · x): that tensor belongs to it.
        if let Some(s) = self.component(
            NodeKind::SharedExpert,
            "shared_expert",
            "shared expert",
            &SHARED_EXPERT,
        ) {
            self.flow(ffn_in, s);
            outs.push(s);
        }
        let post = self.of(&[FfnPostNorm]);
        match self.component_with(NodeKind::Norm, "ffn_post_norm", "FFN post-norm", &post) {
            Some(n) => {
                for s in outs {
                    self.flow(s, n);
                }
                vec![n]
            }
            None => outs,
        }
    }
}
