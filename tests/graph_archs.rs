//! The architecture graph of every architecture the synthetic writer
//! imitates, against how llama.cpp computes it (`src/models/<arch>.cpp`):
//! node counts per kind, the wiring of each family (parallel residual,
//! fused QKV, Q/K norms, post-norms, experts, sinks, biases, tied head),
//! nothing shared across layers, every tensor attached exactly once.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

use std::collections::BTreeMap;

use ggviz::anatomy::{Anatomy, TensorRole};
use ggviz::gguf::synthetic::{Architecture, SyntheticModel};
use ggviz::gguf::{GgmlType, GgufFile, GgufModel, GgufWriter, Value};
use ggviz::graph::{self, ArchGraph, EdgeKind, NodeKind};
use petgraph::Direction;
use petgraph::graph::NodeIndex;
use petgraph::visit::EdgeRef;

fn anatomy_of(bytes: Vec<u8>) -> Anatomy {
    let file = GgufFile::from_bytes("arch.gguf", bytes).unwrap();
    Anatomy::from_model(&GgufModel::from_file(file)).unwrap()
}

fn build(arch: Architecture) -> (Anatomy, ArchGraph) {
    let m = SyntheticModel {
        architecture: arch,
        ..SyntheticModel::default()
    };
    let a = anatomy_of(m.writer().to_bytes());
    let g = graph::build(&a);
    (a, g)
}

/// A file of `arch` with `keys` and F32 tensors of the given shapes.
fn handmade(arch: &str, keys: &[(&str, Value)], tensors: &[(&str, &[u64])]) -> ArchGraph {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", arch);
    for (k, v) in keys {
        w.metadata(format!("{arch}.{k}"), v.clone());
    }
    for (name, dims) in tensors {
        let n: u64 = dims.iter().product();
        w.tensor(*name, GgmlType::F32, dims, vec![0; n as usize * 4])
            .unwrap();
    }
    graph::build(&anatomy_of(w.to_bytes()))
}

fn node(g: &ArchGraph, key: &str) -> NodeIndex {
    g.find(key).unwrap_or_else(|| panic!("no node {key}"))
}

/// Whether activations flow from `a` to `b`.
fn flows(g: &ArchGraph, a: &str, b: &str) -> bool {
    let (a, b) = (node(g, a), node(g, b));
    g.graph
        .edges_connecting(a, b)
        .any(|e| *e.weight() == EdgeKind::Flow)
}

/// Keys of the computations feeding `key`.
fn inputs(g: &ArchGraph, key: &str) -> Vec<String> {
    let mut v: Vec<String> = g
        .graph
        .edges_directed(node(g, key), Direction::Incoming)
        .filter(|e| *e.weight() == EdgeKind::Flow)
        .map(|e| g.graph[e.source()].key.clone())
        .collect();
    v.sort();
    v
}

/// Names of the tensors attached to `key`.
fn tensors_of(g: &ArchGraph, key: &str) -> Vec<String> {
    let mut v: Vec<String> = g
        .graph
        .edges_directed(node(g, key), Direction::Incoming)
        .filter(|e| *e.weight() == EdgeKind::Weight)
        .map(|e| g.graph[e.source()].key.clone())
        .collect();
    v.sort();
    v
}

/// Nodes per kind inside layer `l` (the container excluded).
fn layer_counts(g: &ArchGraph, l: usize) -> BTreeMap<NodeKind, usize> {
    let mut m = BTreeMap::new();
    for i in g.graph.node_indices() {
        if g.graph[i].parent == Some(g.layers[l]) {
            *m.entry(g.graph[i].kind).or_default() += 1;
        }
    }
    m
}

#[test]
fn every_architecture_attaches_each_tensor_once_and_shares_nothing() {
    for arch in Architecture::ALL {
        let (a, g) = build(arch);
        let name = arch.name();
        for (i, t) in a.tensors.iter().enumerate() {
            let nodes: Vec<NodeIndex> = g
                .graph
                .node_indices()
                .filter(|&n| g.graph[n].tensor == Some(i))
                .collect();
            assert_eq!(nodes.len(), 1, "{name}: {}", t.name);
            let users: Vec<NodeIndex> = g
                .graph
                .edges(nodes[0])
                .filter(|e| *e.weight() == EdgeKind::Weight)
                .map(|e| e.target())
                .collect();
            // Each head reads its own sink logit; everything else has one
            // computation, never the layer container (an unknown use).
            let expect = if t.role == TensorRole::AttnSinks {
                4
            } else {
                1
            };
            assert_eq!(users.len(), expect, "{name}: {}", t.name);
            for u in users {
                let user = &g.graph[u];
                assert_ne!(user.kind, NodeKind::Layer, "{name}: {}", t.name);
                assert_eq!(user.layer, t.layer, "{name}: {}", t.name);
            }
        }
        // Flow stays inside a layer or steps from a layer's last add into
        // the next layer; the computations form no cycle.
        for e in g.graph.edge_references() {
            let (s, t) = (&g.graph[e.source()], &g.graph[e.target()]);
            if *e.weight() != EdgeKind::Flow {
                continue;
            }
            if let (Some(x), Some(y)) = (s.layer, t.layer) {
                assert!(y == x || y == x + 1, "{name}: {} -> {}", s.key, t.key);
                if y == x + 1 {
                    assert_eq!(s.kind, NodeKind::ResidualAdd, "{name}: {}", s.key);
                }
            }
        }
        let mut flow = g.graph.clone();
        flow.retain_edges(|f, e| f[e] == EdgeKind::Flow);
        assert!(!petgraph::algo::is_cyclic_directed(&flow), "{name}");
        // Layers are alike, each with its own components.
        assert_eq!(layer_counts(&g, 0), layer_counts(&g, 1), "{name}");
        // Weights add up: tensors to the total, layer tensors to layers.
        let tensor_params: u64 = g
            .nodes_of(NodeKind::Tensor)
            .map(|i| g.graph[i].params)
            .sum();
        assert_eq!(tensor_params, a.accounting.total_params, "{name}");
        for (l, &c) in g.layers.iter().enumerate() {
            let inside: u64 = g
                .nodes_of(NodeKind::Tensor)
                .filter(|&i| g.graph[i].parent == Some(c))
                .map(|i| g.graph[i].params)
                .sum();
            assert_eq!(inside, a.accounting.by_layer[l].params, "{name}");
        }
        // No two nodes of a band share a position.
        let l = &g.layout;
        let mut seen = std::collections::HashSet::new();
        for i in g.graph.node_indices() {
            if g.graph[i].kind != NodeKind::Layer {
                let k = (
                    l.band[i.index()],
                    (l.x[i.index()] * 4.0) as i64,
                    (l.y[i.index()] * 4.0) as i64,
                );
                assert!(seen.insert(k), "{name}: {} overlaps", g.graph[i].key);
            }
        }
    }
}

#[test]
fn node_counts_per_layer_follow_each_architecture() {
    use NodeKind::*;
    // (norms, attention projections, KV heads, heads, residual adds, FFN
    // projections, activations, routers, experts, shared experts)
    let expect = |arch| -> [usize; 10] {
        match arch {
            Architecture::Llama | Architecture::Qwen2 => [2, 4, 2, 4, 2, 3, 1, 0, 0, 0],
            // attention and FFN post-norms.
            Architecture::Gemma2 => [4, 4, 2, 4, 2, 3, 1, 0, 0, 0],
            // and the Q and K norms.
            Architecture::Gemma3 => [6, 4, 2, 4, 2, 3, 1, 0, 0, 0],
            Architecture::Qwen2Moe => [2, 4, 2, 4, 2, 0, 0, 1, 1, 1],
            // One norm, one projection for Q, K and V, one add.
            Architecture::Phi2 => [1, 2, 2, 4, 1, 2, 1, 0, 0, 0],
            Architecture::GptNeoX {
                parallel_residual: true,
            } => [2, 2, 2, 4, 1, 2, 1, 0, 0, 0],
            Architecture::GptNeoX { .. } => [2, 2, 2, 4, 2, 2, 1, 0, 0, 0],
            Architecture::GptOss => [2, 4, 2, 4, 2, 0, 0, 1, 1, 0],
            // One norm feeds attention and the gated FFN, one add.
            Architecture::CommandR => [1, 4, 2, 4, 1, 3, 1, 0, 0, 0],
            other => panic!("no expectation for {other:?}"),
        }
    };
    for arch in Architecture::ALL {
        let (_, g) = build(arch);
        let counts = layer_counts(&g, 1);
        let got = [
            Norm,
            AttnProjection,
            KvHead,
            Head,
            ResidualAdd,
            FfnProjection,
            Activation,
            Router,
            Experts,
            SharedExpert,
        ]
        .map(|k| counts.get(&k).copied().unwrap_or(0));
        assert_eq!(got, expect(arch), "{}", arch.name());
        assert_eq!(counts.get(&Unrecognised), None, "{}", arch.name());
        assert_eq!(g.nodes_of(Layer).count(), 2);
        assert_eq!(g.nodes_of(OutputHead).count(), 1);
    }
}

#[test]
fn qwen2_biases_belong_to_their_projections() {
    let (_, g) = build(Architecture::Qwen2);
    for p in ["q", "k", "v"] {
        assert_eq!(
            tensors_of(&g, &format!("blk.1.{p}_proj")),
            [
                format!("blk.1.attn_{p}.bias"),
                format!("blk.1.attn_{p}.weight")
            ]
        );
    }
    assert_eq!(tensors_of(&g, "blk.1.o_proj"), ["blk.1.attn_output.weight"]);
}

#[test]
fn phi2_runs_attention_and_ffn_in_parallel_into_one_add() {
    let (a, g) = build(Architecture::Phi2);
    // phi2.cpp: `build_ffn(attn_norm_output, …)`, then
    // `cur = attn + ffn; cur = cur + inpL`.
    for l in 0..2 {
        let add = format!("blk.{l}.attn_ffn_add");
        let x = if l == 0 {
            "embedding"
        } else {
            "blk.0.attn_ffn_add"
        };
        let mut expect = [
            format!("blk.{l}.down_proj"),
            format!("blk.{l}.o_proj"),
            x.to_owned(),
        ];
        expect.sort();
        assert_eq!(inputs(&g, &add), expect);
        assert!(flows(&g, x, &format!("blk.{l}.attn_norm")));
        assert!(flows(
            &g,
            &format!("blk.{l}.attn_norm"),
            &format!("blk.{l}.qkv_proj")
        ));
        assert!(flows(
            &g,
            &format!("blk.{l}.attn_norm"),
            &format!("blk.{l}.up_proj")
        ));
        assert!(g.find(&format!("blk.{l}.ffn_norm")).is_none());
        assert!(g.find(&format!("blk.{l}.attn_add")).is_none());
    }
    // One fused projection, with its bias, feeds every KV head and head.
    assert_eq!(
        tensors_of(&g, "blk.0.qkv_proj"),
        ["blk.0.attn_qkv.bias", "blk.0.attn_qkv.weight"]
    );
    for h in 0..4 {
        assert!(flows(&g, "blk.0.qkv_proj", &format!("blk.0.head.{h}")));
    }
    for kv in 0..2 {
        assert!(flows(&g, "blk.0.qkv_proj", &format!("blk.0.kv.{kv}")));
    }
    // LayerNorms with biases; the head's bias sits on the head.
    assert_eq!(
        tensors_of(&g, "blk.0.attn_norm"),
        ["blk.0.attn_norm.bias", "blk.0.attn_norm.weight"]
    );
    assert_eq!(tensors_of(&g, "output"), ["output.bias", "output.weight"]);
    assert_eq!(
        tensors_of(&g, "output_norm"),
        ["output_norm.bias", "output_norm.weight"]
    );
    assert!(!a.tied_embeddings);
    assert!(
        g.graph
            .edge_references()
            .all(|e| *e.weight() != EdgeKind::Tied)
    );
    // The two branches stand side by side: attention left of the FFN.
    let x = |k: &str| g.layout.x[node(&g, k).index()];
    let y = |k: &str| g.layout.y[node(&g, k).index()];
    assert_eq!(y("blk.0.qkv_proj"), y("blk.0.up_proj"));
    assert!(x("blk.0.qkv_proj") < x("blk.0.up_proj"));
}

#[test]
fn command_r_shares_one_norm_between_parallel_branches_and_ties_its_head() {
    let (_, g) = build(Architecture::CommandR);
    // command-r.cpp: `ffn_inp = cur` after the attention norm; the FFN, the
    // attention and the layer input are summed once.
    for p in ["q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"] {
        assert_eq!(
            inputs(&g, &format!("blk.1.{p}")),
            ["blk.1.attn_norm"],
            "{p}"
        );
    }
    assert_eq!(
        inputs(&g, "blk.1.attn_ffn_add"),
        ["blk.0.attn_ffn_add", "blk.1.down_proj", "blk.1.o_proj"]
    );
    assert_eq!(
        tensors_of(&g, "blk.1.attn_norm"),
        ["blk.1.attn_norm.weight"]
    );
    let (out, embd) = (node(&g, "output"), node(&g, "token_embd.weight"));
    assert_eq!(
        g.graph.find_edge(out, embd).map(|e| g.graph[e]),
        Some(EdgeKind::Tied)
    );
}

#[test]
fn gptneox_follows_use_parallel_residual() {
    // gptneox.cpp: `if (hparams.use_par_res)`: both branches normalise the
    // layer input with their own norm and add once.
    let (_, g) = build(Architecture::GptNeoX {
        parallel_residual: true,
    });
    assert_eq!(inputs(&g, "blk.1.ffn_norm"), ["blk.0.attn_ffn_add"]);
    assert_eq!(inputs(&g, "blk.1.attn_norm"), ["blk.0.attn_ffn_add"]);
    assert_eq!(inputs(&g, "blk.1.up_proj"), ["blk.1.ffn_norm"]);
    assert_eq!(
        inputs(&g, "blk.1.attn_ffn_add"),
        ["blk.0.attn_ffn_add", "blk.1.down_proj", "blk.1.o_proj"]
    );
    // Sequential: the FFN norm reads the attention's sum.
    let (_, g) = build(Architecture::GptNeoX {
        parallel_residual: false,
    });
    assert_eq!(inputs(&g, "blk.1.ffn_norm"), ["blk.1.attn_add"]);
    assert_eq!(
        inputs(&g, "blk.1.ffn_add"),
        ["blk.1.attn_add", "blk.1.down_proj"]
    );
    assert!(g.find("blk.1.attn_ffn_add").is_none());
}

#[test]
fn gemma_post_norms_come_before_the_adds_and_the_head_is_tied() {
    for arch in [Architecture::Gemma2, Architecture::Gemma3] {
        let (a, g) = build(arch);
        // gemma2.cpp: norm(attn) + inpL, norm(ffn) + sa_out.
        assert_eq!(inputs(&g, "blk.0.attn_post_norm"), ["blk.0.o_proj"]);
        assert_eq!(
            inputs(&g, "blk.0.attn_add"),
            ["blk.0.attn_post_norm", "embedding"]
        );
        assert_eq!(inputs(&g, "blk.0.ffn_post_norm"), ["blk.0.down_proj"]);
        assert_eq!(
            inputs(&g, "blk.0.ffn_add"),
            ["blk.0.attn_add", "blk.0.ffn_post_norm"]
        );
        assert_eq!(inputs(&g, "blk.0.ffn_norm"), ["blk.0.attn_add"]);
        assert_eq!(
            tensors_of(&g, "blk.0.attn_post_norm"),
            ["blk.0.post_attention_norm.weight"]
        );
        let tied = a.tied_embeddings;
        let out = node(&g, "output");
        let embd = node(&g, "token_embd.weight");
        assert_eq!(
            g.graph.find_edge(out, embd).map(|e| g.graph[e]),
            tied.then_some(EdgeKind::Tied),
            "{arch:?}"
        );
    }
    let (a, g) = build(Architecture::Gemma2);
    assert!(a.tied_embeddings);
    assert_eq!(
        g.graph[node(&g, "output")].label,
        "output head, logits soft-capped at 30"
    );
    let (_, g) = build(Architecture::Gemma3);
    assert_eq!(g.graph[node(&g, "output")].label, "output head");
    // gemma3.cpp: Q and K are normalised per head before RoPE; V is not.
    assert_eq!(inputs(&g, "blk.0.q_norm"), ["blk.0.q_proj"]);
    assert_eq!(inputs(&g, "blk.0.k_norm"), ["blk.0.k_proj"]);
    assert_eq!(inputs(&g, "blk.0.head.3"), ["blk.0.kv.1", "blk.0.q_norm"]);
    assert_eq!(inputs(&g, "blk.0.kv.1"), ["blk.0.k_norm", "blk.0.v_proj"]);
}

#[test]
fn qwen2moe_routes_to_experts_beside_a_gated_shared_expert() {
    let (a, g) = build(Architecture::Qwen2Moe);
    assert_eq!(inputs(&g, "blk.0.router"), ["blk.0.ffn_norm"]);
    assert_eq!(
        inputs(&g, "blk.0.experts"),
        ["blk.0.ffn_norm", "blk.0.router"]
    );
    assert_eq!(inputs(&g, "blk.0.shared_expert"), ["blk.0.ffn_norm"]);
    assert_eq!(
        inputs(&g, "blk.0.ffn_add"),
        ["blk.0.attn_add", "blk.0.experts", "blk.0.shared_expert"]
    );
    assert_eq!(
        tensors_of(&g, "blk.0.router"),
        ["blk.0.ffn_gate_inp.weight"]
    );
    assert_eq!(
        tensors_of(&g, "blk.0.experts"),
        [
            "blk.0.ffn_down_exps.weight",
            "blk.0.ffn_gate_exps.weight",
            "blk.0.ffn_up_exps.weight"
        ]
    );
    // qwen2moe.cpp: sigmoid(ffn_gate_inp_shexp · x) scales the shared
    // expert, so that tensor is the shared expert's, not the router's.
    assert_eq!(
        tensors_of(&g, "blk.0.shared_expert"),
        [
            "blk.0.ffn_down_shexp.weight",
            "blk.0.ffn_gate_inp_shexp.weight",
            "blk.0.ffn_gate_shexp.weight",
            "blk.0.ffn_up_shexp.weight"
        ]
    );
    assert_eq!(
        g.graph[node(&g, "blk.0.experts")].label,
        "experts (4, 2 active, weighted sum)"
    );
    let experts = &g.graph[node(&g, "blk.0.experts")];
    let expert_params: u64 = a
        .layer_tensors(0)
        .filter(|t| t.role.name().ends_with("_experts"))
        .map(|t| t.params)
        .sum();
    assert_eq!(experts.params, expert_params);
    assert_eq!(expert_params, 3 * 64 * 128 * 4);
}

#[test]
fn gpt_oss_has_sinks_on_every_head_and_normalises_the_ffn_after_the_add() {
    let (_, g) = build(Architecture::GptOss);
    let sinks = node(&g, "blk.0.attn_sinks.weight");
    for h in 0..4 {
        let head = node(&g, &format!("blk.0.head.{h}"));
        assert_eq!(
            g.graph.find_edge(sinks, head).map(|e| g.graph[e]),
            Some(EdgeKind::Weight)
        );
    }
    // openai-moe.cpp: `build_norm(ffn_inp, attn_post_norm)` feeds the MoE;
    // the attention output itself is not normalised.
    assert!(g.find("blk.0.attn_post_norm").is_none());
    assert_eq!(inputs(&g, "blk.0.attn_add"), ["blk.0.o_proj", "embedding"]);
    assert_eq!(inputs(&g, "blk.0.ffn_norm"), ["blk.0.attn_add"]);
    assert_eq!(
        tensors_of(&g, "blk.0.ffn_norm"),
        ["blk.0.post_attention_norm.weight"]
    );
    assert_eq!(inputs(&g, "blk.0.router"), ["blk.0.ffn_norm"]);
    assert_eq!(
        tensors_of(&g, "blk.0.router"),
        ["blk.0.ffn_gate_inp.bias", "blk.0.ffn_gate_inp.weight"]
    );
    assert_eq!(tensors_of(&g, "blk.0.experts").len(), 6);
    assert_eq!(
        tensors_of(&g, "blk.0.o_proj"),
        ["blk.0.attn_output.bias", "blk.0.attn_output.weight"]
    );
}

#[test]
fn falcon_40b_and_stablelm_split_their_norms_as_llama_cpp_does() {
    let e: &[u64] = &[32];
    let common = [
        ("block_count", Value::U32(1)),
        ("attention.head_count", Value::U32(2)),
        ("attention.head_count_kv", Value::U32(1)),
        ("embedding_length", Value::U32(32)),
    ];
    // falcon.cpp (Falcon-40B): `attn_norm_2` normalises the attention
    // input, `attn_norm` the FFN's; one add takes both.
    let g = handmade(
        "falcon",
        &common,
        &[
            ("blk.0.attn_norm.weight", e),
            ("blk.0.attn_norm.bias", e),
            ("blk.0.attn_norm_2.weight", e),
            ("blk.0.attn_norm_2.bias", e),
            ("blk.0.attn_qkv.weight", &[32, 64]),
            ("blk.0.attn_output.weight", &[32, 32]),
            ("blk.0.ffn_up.weight", &[32, 64]),
            ("blk.0.ffn_down.weight", &[64, 32]),
        ],
    );
    assert_eq!(
        tensors_of(&g, "blk.0.attn_norm"),
        ["blk.0.attn_norm_2.bias", "blk.0.attn_norm_2.weight"]
    );
    assert_eq!(
        tensors_of(&g, "blk.0.ffn_norm"),
        ["blk.0.attn_norm.bias", "blk.0.attn_norm.weight"]
    );
    assert_eq!(inputs(&g, "blk.0.qkv_proj"), ["blk.0.attn_norm"]);
    assert_eq!(inputs(&g, "blk.0.up_proj"), ["blk.0.ffn_norm"]);
    assert_eq!(
        inputs(&g, "blk.0.attn_ffn_add"),
        ["blk.0.down_proj", "blk.0.o_proj", "embedding"]
    );
    // stablelm.cpp: a layer without `ffn_norm` is parallel, sharing the
    // attention norm; a layer with one is sequential.
    let layer = |l: u32, ffn_norm: bool| {
        let mut v: Vec<(String, Vec<u64>)> = vec![
            (format!("blk.{l}.attn_norm.weight"), vec![32]),
            (format!("blk.{l}.attn_q.weight"), vec![32, 32]),
            (format!("blk.{l}.attn_k.weight"), vec![32, 16]),
            (format!("blk.{l}.attn_v.weight"), vec![32, 16]),
            (format!("blk.{l}.attn_output.weight"), vec![32, 32]),
            (format!("blk.{l}.ffn_gate.weight"), vec![32, 64]),
            (format!("blk.{l}.ffn_up.weight"), vec![32, 64]),
            (format!("blk.{l}.ffn_down.weight"), vec![64, 32]),
        ];
        if ffn_norm {
            v.push((format!("blk.{l}.ffn_norm.weight"), vec![32]));
        }
        v
    };
    let all: Vec<(String, Vec<u64>)> = [layer(0, true), layer(1, false)].concat();
    let tensors: Vec<(&str, &[u64])> = all
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let mut keys = common.to_vec();
    keys[0] = ("block_count", Value::U32(2));
    let g = handmade("stablelm", &keys, &tensors);
    assert_eq!(inputs(&g, "blk.0.ffn_norm"), ["blk.0.attn_add"]);
    assert_eq!(inputs(&g, "blk.1.gate_proj"), ["blk.1.attn_norm"]);
    assert_eq!(
        inputs(&g, "blk.1.attn_ffn_add"),
        ["blk.0.ffn_add", "blk.1.down_proj", "blk.1.o_proj"]
    );
}
