//! Structure facts of the architecture graph on the real test model and on
//! synthetic models: counts per kind, heads with their KV groups, the tied
//! edge, nothing shared across layers, block level, layout.

mod common;

use std::collections::BTreeMap;

use ggviz::anatomy::Anatomy;
use ggviz::gguf::GgufModel;
use ggviz::gguf::synthetic::SyntheticModel;
use ggviz::graph::{self, ArchGraph, EdgeKind, NodeKind};
use petgraph::Direction;
use petgraph::visit::EdgeRef;

fn synthetic(m: &SyntheticModel) -> (Anatomy, ArchGraph) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, m.writer().to_bytes()).expect("write model");
    let model = GgufModel::open(&path).expect("open model");
    let a = Anatomy::from_model(&model).expect("anatomy");
    let g = graph::build(&a);
    (a, g)
}

fn kind_counts(g: &ArchGraph) -> BTreeMap<NodeKind, usize> {
    let mut m = BTreeMap::new();
    for i in g.graph.node_indices() {
        *m.entry(g.graph[i].kind).or_default() += 1;
    }
    m
}

#[test]
fn smollm2_graph_has_one_node_per_head_tensor_and_component() {
    let model = GgufModel::open(common::smollm2()).unwrap();
    let a = Anatomy::from_model(&model).unwrap();
    let g = graph::build(&a);
    let counts = kind_counts(&g);
    let expect = |k: NodeKind| counts.get(&k).copied().unwrap_or(0);
    assert_eq!(expect(NodeKind::Input), 1);
    assert_eq!(expect(NodeKind::Embedding), 1);
    assert_eq!(expect(NodeKind::Layer), 30);
    assert_eq!(expect(NodeKind::Head), 30 * 9);
    assert_eq!(expect(NodeKind::KvHead), 30 * 3);
    assert_eq!(expect(NodeKind::Tensor), 272);
    // attn + ffn norms per layer, plus the output norm.
    assert_eq!(expect(NodeKind::Norm), 30 * 2 + 1);
    assert_eq!(expect(NodeKind::AttnProjection), 30 * 4);
    assert_eq!(expect(NodeKind::FfnProjection), 30 * 3);
    assert_eq!(expect(NodeKind::Activation), 30);
    assert_eq!(expect(NodeKind::ResidualAdd), 30 * 2);
    assert_eq!(expect(NodeKind::OutputHead), 1);
    assert_eq!(expect(NodeKind::Experts), 0);

    // GQA: 9 query heads read 3 KV heads, three each, in order.
    for l in 0..30 {
        for h in 0..9u32 {
            let head = g.find(&format!("blk.{l}.head.{h}")).unwrap();
            assert_eq!(g.graph[head].kv_group, Some(h / 3));
            let kv = g.find(&format!("blk.{l}.kv.{}", h / 3)).unwrap();
            assert!(g.graph.find_edge(kv, head).is_some());
            // 64 rows of Q and 64 columns of O, 576 wide.
            assert_eq!(g.graph[head].params, 2 * 64 * 576);
        }
    }

    // Tied embeddings: the output head points at the embedding tensor, and
    // there is no output tensor.
    let out = g.find("output").unwrap();
    let embd = g.find("token_embd.weight").unwrap();
    assert_eq!(
        g.graph[g.graph.find_edge(out, embd).unwrap()],
        EdgeKind::Tied
    );
    assert!(g.find("output.weight").is_none());
    assert_eq!(
        g.graph[out].params,
        a.tensors
            .iter()
            .find(|t| t.name == "token_embd.weight")
            .unwrap()
            .params
    );

    // Every tensor is exactly one node, and attaches to computations of its
    // own layer only.
    for (i, t) in a.tensors.iter().enumerate() {
        let nodes: Vec<_> = g
            .graph
            .node_indices()
            .filter(|&n| g.graph[n].tensor == Some(i))
            .collect();
        assert_eq!(nodes.len(), 1, "{}", t.name);
        for e in g.graph.edges(nodes[0]) {
            if *e.weight() == EdgeKind::Weight {
                assert_eq!(g.graph[e.target()].layer, t.layer, "{}", t.name);
            }
        }
    }
}

#[test]
fn nothing_is_shared_across_layers() {
    let m = SyntheticModel {
        n_layer: 4,
        ..SyntheticModel::default()
    };
    let (_, g) = synthetic(&m);
    for e in g.graph.edge_references() {
        let (s, t) = (&g.graph[e.source()], &g.graph[e.target()]);
        match e.weight() {
            // Weights never cross a layer boundary.
            EdgeKind::Weight => assert_eq!(s.layer, t.layer, "{} -> {}", s.key, t.key),
            // Flow crosses only from one layer's output to the next layer.
            EdgeKind::Flow => {
                if let (Some(a), Some(b)) = (s.layer, t.layer) {
                    assert!(b == a || b == a + 1, "{} -> {}", s.key, t.key);
                    if b == a + 1 {
                        assert_eq!(s.key, format!("blk.{a}.ffn_add"));
                    }
                }
            }
            EdgeKind::Tied => panic!("untied model has a tied edge"),
        }
    }
    // Each layer container holds its own norms.
    for l in 0..4 {
        let norm = g.find(&format!("blk.{l}.attn_norm")).unwrap();
        assert_eq!(g.graph[norm].parent, Some(g.layers[l]));
    }
}

#[test]
fn block_level_is_the_residual_chain() {
    let m = SyntheticModel {
        n_layer: 3,
        tied_embeddings: true,
        ..SyntheticModel::default()
    };
    let (_, g) = synthetic(&m);
    let b = g.block_level();
    let keys: Vec<&str> = b
        .node_indices()
        .map(|i| g.graph[b[i]].key.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "input",
            "embedding",
            "blk.0",
            "blk.1",
            "blk.2",
            "output_norm",
            "output"
        ]
    );
    for w in 0..keys.len() - 1 {
        let (x, y) = (
            petgraph::graph::NodeIndex::new(w),
            petgraph::graph::NodeIndex::new(w + 1),
        );
        assert!(
            b.find_edge(x, y).is_some(),
            "{} -> {}",
            keys[w],
            keys[w + 1]
        );
    }
    assert_eq!(b.edge_count(), keys.len() - 1);
}

#[test]
fn large_model_has_thousands_of_heads_and_a_clean_layout() {
    let m = common::large_model();
    let (_, g) = synthetic(&m);
    assert_eq!(g.nodes_of(NodeKind::Head).count(), 80 * 64);
    assert_eq!(g.nodes_of(NodeKind::KvHead).count(), 80 * 8);
    let l = &g.layout;
    // No two nodes of one band share a position.
    let mut seen = std::collections::HashSet::new();
    for i in g.graph.node_indices() {
        if g.graph[i].kind == NodeKind::Layer {
            continue;
        }
        let k = (
            l.band[i.index()],
            (l.x[i.index()] * 4.0) as i64,
            (l.y[i.index()] * 4.0) as i64,
        );
        assert!(seen.insert(k), "{} overlaps", g.graph[i].key);
    }
    // Heads of a layer fan out in one row; each KV head is centred over its
    // eight heads.
    let row: Vec<f32> = (0..64)
        .map(|h| l.y[g.find(&format!("blk.7.head.{h}")).unwrap().index()])
        .collect();
    assert!(row.iter().all(|&y| y == row[0]));
    let kv = g.find("blk.7.kv.2").unwrap();
    let xs: Vec<f32> = (16..24)
        .map(|h| l.x[g.find(&format!("blk.7.head.{h}")).unwrap().index()])
        .collect();
    assert!((l.x[kv.index()] - xs.iter().sum::<f32>() / 8.0).abs() < 1e-3);
    assert!(l.y[kv.index()] < row[0]);
    // Deterministic: the same model gives the same layout.
    let (_, again) = synthetic(&m);
    assert_eq!(again.layout, g.layout);
    assert_eq!(again.metrics, g.metrics);
}

#[test]
fn metrics_describe_the_wiring() {
    let (_, g) = synthetic(&SyntheticModel::default());
    let m = &g.metrics;
    let bc = |k: &str| m.betweenness[g.find(k).unwrap().index()];
    // Every path from the first layer to the output crosses the residual
    // adds, and no path runs through a tensor.
    assert!(bc("blk.0.ffn_add") > bc("blk.0.q_proj"));
    assert_eq!(bc("blk.0.attn_q.weight"), 0.0);
    let sum: f64 = g
        .graph
        .node_indices()
        .filter(|&i| g.graph[i].kind != NodeKind::Layer)
        .map(|i| m.pagerank[i.index()])
        .sum();
    assert!((sum - 1.0).abs() < 1e-9);
    let q = g.find("blk.1.q_proj").unwrap();
    assert_eq!(m.in_degree[q.index()], 2); // attn_norm and its weight
    assert_eq!(
        m.out_degree[q.index()] as usize,
        g.graph.neighbors_directed(q, Direction::Outgoing).count()
    );
}

/// A file may claim any head count; the graph must not spend a node per
/// claimed head (`u32::MAX` heads once took a structure-only build to the
/// out-of-memory killer). Past the limit the projections meet the output
/// projection directly, and the rest of the layer is drawn as usual.
#[test]
fn an_absurd_head_count_is_not_drawn_head_by_head() {
    let base = SyntheticModel::default();
    let (_, normal) = synthetic(&base);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let mut w = base.writer();
    w.set_metadata("llama.attention.head_count", u32::MAX);
    std::fs::write(&path, w.to_bytes()).unwrap();
    let model = GgufModel::open(&path).unwrap();
    let a = Anatomy::from_model(&model).unwrap();
    let g = graph::build(&a);
    let counts = kind_counts(&g);
    assert_eq!(counts.get(&NodeKind::Head), None, "{counts:?}");
    assert_eq!(counts.get(&NodeKind::KvHead), None, "{counts:?}");
    let heads = kind_counts(&normal)[&NodeKind::Head] + kind_counts(&normal)[&NodeKind::KvHead];
    assert_eq!(
        g.graph.node_count() + heads,
        normal.graph.node_count(),
        "only the head nodes are left out"
    );
    // Every layer's output projection still reads the projections.
    for i in g.graph.node_indices() {
        if g.graph[i].key.ends_with("o_proj") {
            let inputs = g.graph.edges_directed(i, Direction::Incoming).count();
            assert!(inputs >= 3, "{}: {inputs} inputs", g.graph[i].key);
        }
    }
    assert!(
        g.graph
            .node_indices()
            .any(|i| g.graph[i].key.ends_with("o_proj"))
    );
}
