//! Graph metrics of the architecture graph: PageRank, betweenness, degree.
//!
//! These describe the wiring, not what the trained weights do: on a
//! transformer's data-flow graph, betweenness peaks on the residual adds
//! every path crosses, and PageRank piles up toward the output. The page
//! says so next to them.
//!
//! Metrics are computed on two graphs: the component graph (every node but
//! the layer containers, with flow, weight and tied edges) gives the value
//! of each component, head and tensor; the block level
//! ([`ArchGraph::block_level`](super::ArchGraph::block_level)) gives the
//! value of each layer container, so a collapsed layer shows a block-level
//! figure.
//!
//! Betweenness comes from `rustworkx-core` (Brandes' algorithm). PageRank is
//! the textbook power iteration here, because petgraph's `page_rank` costs
//! O(V²) per iteration and leaves the teleport term out for linked pairs;
//! ours matches networkx's `pagerank` (see the tests).

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use super::{EdgeKind, Node, NodeKind};

/// Per-node metrics, indexed by node index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// PageRank with damping 0.85 along the edges' direction; sums to 1 over
    /// each of the two graphs.
    pub pagerank: Vec<f64>,
    /// Betweenness centrality, normalised by (n−1)(n−2) for directed graphs.
    pub betweenness: Vec<f64>,
    /// Edges into the node.
    pub in_degree: Vec<u32>,
    /// Edges out of the node.
    pub out_degree: Vec<u32>,
}

/// PageRank damping factor (the probability of following an edge).
pub const DAMPING: f64 = 0.85;

/// PageRank by power iteration, as networkx computes it: teleport uniformly
/// with probability 1 − `damping`, and spread the rank of nodes without
/// out-edges uniformly. Stops when the L1 change falls below n·1e-10.
pub fn pagerank<N, E>(g: &DiGraph<N, E>, damping: f64) -> Vec<f64> {
    let n = g.node_count();
    if n == 0 {
        return Vec::new();
    }
    let nf = n as f64;
    let out: Vec<f64> = g
        .node_indices()
        .map(|i| g.edges(i).count() as f64)
        .collect();
    let mut rank = vec![1.0 / nf; n];
    let mut next = vec![0.0; n];
    for _ in 0..200 {
        let dangling: f64 = (0..n).filter(|&i| out[i] == 0.0).map(|i| rank[i]).sum();
        let base = (1.0 - damping) / nf + damping * dangling / nf;
        next.iter_mut().for_each(|x| *x = base);
        for e in g.edge_references() {
            let (s, t) = (e.source().index(), e.target().index());
            next[t] += damping * rank[s] / out[s];
        }
        let delta: f64 = rank.iter().zip(&next).map(|(a, b)| (a - b).abs()).sum();
        std::mem::swap(&mut rank, &mut next);
        if delta < nf * 1e-10 {
            break;
        }
    }
    rank
}

/// Betweenness of every node of `g`, normalised.
pub fn betweenness<N: Sync, E: Sync>(g: &DiGraph<N, E>) -> Vec<f64> {
    // Above ~2,000 nodes the all-sources loop is worth running in parallel.
    rustworkx_core::centrality::betweenness_centrality(g, false, true, 2000)
        .into_iter()
        .map(|v| v.unwrap_or(0.0))
        .collect()
}

/// Computes every metric for the graph being built.
pub(super) fn compute(g: &DiGraph<Node, EdgeKind>) -> Metrics {
    let n = g.node_count();
    let mut m = Metrics {
        pagerank: vec![0.0; n],
        betweenness: vec![0.0; n],
        in_degree: vec![0; n],
        out_degree: vec![0; n],
    };

    // The component graph: containers left out, the rest renumbered.
    let mut sub: DiGraph<NodeIndex, ()> = DiGraph::new();
    let mut map = vec![None; n];
    for i in g.node_indices() {
        if g[i].kind != NodeKind::Layer {
            map[i.index()] = Some(sub.add_node(i));
        }
    }
    for e in g.edge_references() {
        if let (Some(a), Some(b)) = (map[e.source().index()], map[e.target().index()]) {
            sub.add_edge(a, b, ());
        }
    }
    scatter(&sub, &mut m);

    // The block level: layers contracted into their containers.
    let mut blocks: DiGraph<NodeIndex, ()> = DiGraph::new();
    let mut bmap = vec![None; n];
    for i in g.node_indices() {
        if g[i].parent.is_none() && g[i].kind != NodeKind::Tensor {
            bmap[i.index()] = Some(blocks.add_node(i));
        }
    }
    for e in g.edge_references() {
        if *e.weight() != EdgeKind::Flow {
            continue;
        }
        let up = |i: NodeIndex| g[i].parent.unwrap_or(i).index();
        if let (Some(a), Some(b)) = (bmap[up(e.source())], bmap[up(e.target())])
            && a != b
            && blocks.find_edge(a, b).is_none()
        {
            blocks.add_edge(a, b, ());
        }
    }
    let mut block_metrics = Metrics {
        pagerank: vec![0.0; n],
        betweenness: vec![0.0; n],
        in_degree: vec![0; n],
        out_degree: vec![0; n],
    };
    scatter(&blocks, &mut block_metrics);
    for i in g.node_indices() {
        if g[i].kind == NodeKind::Layer {
            let k = i.index();
            m.pagerank[k] = block_metrics.pagerank[k];
            m.betweenness[k] = block_metrics.betweenness[k];
            m.in_degree[k] = block_metrics.in_degree[k];
            m.out_degree[k] = block_metrics.out_degree[k];
        }
    }
    m
}

/// Computes the metrics of `sub` and writes them at the original indices.
fn scatter(sub: &DiGraph<NodeIndex, ()>, m: &mut Metrics) {
    let pr = pagerank(sub, DAMPING);
    let bc = betweenness(sub);
    for i in sub.node_indices() {
        let k = sub[i].index();
        m.pagerank[k] = pr[i.index()];
        m.betweenness[k] = bc[i.index()];
        m.in_degree[k] = sub
            .neighbors_directed(i, petgraph::Direction::Incoming)
            .count() as u32;
        m.out_degree[k] = sub.edges(i).count() as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small directed graph with a cycle, a dangling node and a source.
    fn sample() -> DiGraph<(), ()> {
        DiGraph::from_edges([(0, 1), (1, 2), (2, 0), (2, 3), (4, 2), (4, 3)])
    }

    #[test]
    fn pagerank_matches_networkx() {
        // networkx 3.6.1: nx.pagerank(nx.DiGraph([(0,1),(1,2),(2,0),(2,3),(4,2),(4,3)]))
        let expected = [0.19126574, 0.22995953, 0.29148729, 0.21990379, 0.06738364];
        let pr = pagerank(&sample(), DAMPING);
        for (got, want) in pr.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{pr:?}");
        }
        assert!((pr.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn betweenness_matches_networkx() {
        // networkx 3.6.1: nx.betweenness_centrality(same graph)
        let expected = [0.16666667, 0.16666667, 0.41666667, 0.0, 0.0];
        let bc = betweenness(&sample());
        for (got, want) in bc.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{bc:?}");
        }
    }
}
