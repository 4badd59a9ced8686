//! A deterministic layered layout, top to bottom, so the page only draws.
//!
//! The graph is cut into horizontal bands: the inputs and embedding, one
//! band per layer, then the output. Inside a band, computations sit on rows
//! by longest path along the flow edges; the residual adds keep to a lane on
//! the left, so the residual stream reads as one vertical line; heads fan out
//! in one row, grouped by the KV head they read, with each KV head centred
//! above its group; inside a row the attention branch comes before the FFN
//! branch, so the two branches of a parallel block stand side by side;
//! tensors stack in a column just left of the computation that uses them,
//! one label per line, and a row is as tall as its tallest stack.
//! Positions are local to the band, and each layer band has an expanded and
//! a collapsed height: the page stacks bands with the heights of whatever is
//! expanded, so collapsing a layer needs no new layout.

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

use super::{EdgeKind, Node, NodeKind};

/// Vertical distance between rows of computations.
pub const ROW_HEIGHT: f32 = 64.0;
/// Room above the first row of a band, for its label.
pub const BAND_TOP: f32 = 44.0;
/// Room below the last row of a band.
pub const BAND_BOTTOM: f32 = 20.0;
/// Height of a collapsed layer band.
pub const COLLAPSED_HEIGHT: f32 = 56.0;
/// Horizontal distance between query heads of one KV group.
pub const HEAD_SPACING: f32 = 16.0;
/// Extra gap between two KV groups of heads.
pub const GROUP_GAP: f32 = 10.0;
/// Width a computation takes besides its tensors.
pub const COMPONENT_WIDTH: f32 = 130.0;
/// Room left of a computation for its column of tensors and their names.
pub const TENSOR_ROOM: f32 = 150.0;
/// Horizontal distance between a computation and its tensors.
pub const TENSOR_OFFSET: f32 = 34.0;
/// Vertical distance between the tensors of one computation.
pub const TENSOR_STACK: f32 = 14.0;
/// Horizontal distance between tensors in a row of their own.
pub const TENSOR_SPACING: f32 = 24.0;
/// Gap between the residual lane (x = 0) and the widest row.
pub const LANE_GAP: f32 = 120.0;

/// One horizontal band of the drawing.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    /// "input", "layer 5", "output".
    pub label: String,
    /// The block index of a layer band.
    pub layer: Option<u32>,
    /// Height with the band's nodes shown.
    pub height: f32,
    /// Height with the layer collapsed into its container (equal to
    /// `height` for bands that are not layers).
    pub collapsed_height: f32,
}

/// Node positions, by node index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Layout {
    /// Horizontal position; the residual lane is at 0.
    pub x: Vec<f32>,
    /// Vertical position inside the node's band, growing downwards.
    pub y: Vec<f32>,
    /// The band each node is drawn in.
    pub band: Vec<u32>,
    pub bands: Vec<Band>,
    /// The x of the centre of the main column.
    pub center_x: f32,
}

/// Lays out `g`, whose layer containers are `layers` in block order.
pub(super) fn compute(g: &DiGraph<Node, EdgeKind>, layers: &[NodeIndex]) -> Layout {
    let n = g.node_count();
    let n_layer = layers.len() as u32;
    let last = n_layer + 1;

    // Bands: the layer of a node inside a layer; for nodes outside, before
    // the layers if they feed the first one, after them otherwise.
    let mut band = vec![last; n];
    for i in g.node_indices() {
        let node = &g[i];
        band[i.index()] = match (node.parent, node.kind) {
            (Some(p), _) => g[p].layer.map_or(last, |l| l + 1),
            (None, NodeKind::Layer) => node.layer.map_or(last, |l| l + 1),
            (None, NodeKind::Input | NodeKind::Embedding) => 0,
            (None, _) if node.key == "embd_norm" => 0,
            _ => last,
        };
    }
    // Global tensors go where their first user is.
    for i in g.node_indices() {
        if g[i].kind == NodeKind::Tensor
            && g[i].parent.is_none()
            && let Some(user) = users(g, i).next()
        {
            band[i.index()] = band[user.index()];
        }
    }

    let mut rows: Vec<Vec<Vec<NodeIndex>>> = vec![Vec::new(); (last + 1) as usize];
    for (b, band_rows) in rows.iter_mut().enumerate() {
        let members: Vec<NodeIndex> = g
            .node_indices()
            .filter(|&i| band[i.index()] as usize == b)
            .collect();
        *band_rows = rank_rows(g, &members);
    }

    // Each computation's tensors in this band, in edge order.
    let mut stacks: Vec<Vec<NodeIndex>> = vec![Vec::new(); n];
    for i in g.node_indices() {
        if g[i].kind != NodeKind::Tensor {
            continue;
        }
        if let Some(user) = users(g, i).find(|u| band[u.index()] == band[i.index()]) {
            stacks[user.index()].push(i);
        }
    }
    // Half the height a row's tallest stack of tensors spans.
    let half_span = |row: &[NodeIndex]| {
        let tallest = row
            .iter()
            .map(|i| stacks[i.index()].len())
            .max()
            .unwrap_or(0);
        tallest.saturating_sub(1) as f32 * TENSOR_STACK / 2.0
    };

    // Row widths decide where the main column sits, right of the lane.
    let widest = rows
        .iter()
        .flatten()
        .map(|row| row_width(g, row, &stacks))
        .fold(0f32, f32::max);
    let center_x = LANE_GAP + widest / 2.0;

    let mut x = vec![0f32; n];
    let mut y = vec![0f32; n];
    let mut bands = Vec::new();
    for (b, band_rows) in rows.iter().enumerate() {
        let mut row_y = BAND_TOP;
        let mut below = ROW_HEIGHT / 2.0;
        for (r, row) in band_rows.iter().enumerate() {
            let half = half_span(row);
            if r > 0 {
                let prev = half_span(&band_rows[r - 1]);
                row_y += ROW_HEIGHT.max(prev + half + TENSOR_STACK * 2.0);
            }
            below = (ROW_HEIGHT / 2.0).max(half + TENSOR_STACK);
            place_row(g, row, &stacks, center_x, row_y, &mut x, &mut y);
        }
        let height = row_y + below + BAND_BOTTOM;
        let layer = (b > 0 && b as u32 <= n_layer).then(|| b as u32 - 1);
        bands.push(Band {
            label: match layer {
                Some(l) => format!("layer {l}"),
                None if b == 0 => "input".to_owned(),
                None => "output".to_owned(),
            },
            layer,
            height,
            collapsed_height: if layer.is_some() {
                COLLAPSED_HEIGHT
            } else {
                height
            },
        });
    }
    // KV heads sit centred above the heads that read them.
    for i in g.node_indices() {
        if g[i].kind == NodeKind::KvHead {
            let readers: Vec<f32> = g
                .edges(i)
                .filter(|e| g[e.target()].kind == NodeKind::Head)
                .map(|e| x[e.target().index()])
                .collect();
            if !readers.is_empty() {
                x[i.index()] = readers.iter().sum::<f32>() / readers.len() as f32;
            }
        }
    }
    // Tensors stand in a column left of their first user, centred on it.
    for (user, stack) in stacks.iter().enumerate() {
        let top = (stack.len().saturating_sub(1)) as f32 * TENSOR_STACK / 2.0;
        for (k, t) in stack.iter().enumerate() {
            x[t.index()] = x[user] - TENSOR_OFFSET;
            y[t.index()] = y[user] - top + TENSOR_STACK * k as f32;
        }
    }
    // Layer containers stand in the middle of their collapsed band.
    for &c in layers {
        x[c.index()] = center_x;
        y[c.index()] = COLLAPSED_HEIGHT / 2.0;
    }
    Layout {
        x,
        y,
        band,
        bands,
        center_x,
    }
}

/// The computations a tensor feeds, in edge order.
fn users(g: &DiGraph<Node, EdgeKind>, t: NodeIndex) -> impl Iterator<Item = NodeIndex> + '_ {
    let mut v: Vec<NodeIndex> = g
        .edges(t)
        .filter(|e| *e.weight() == EdgeKind::Weight && g[e.target()].kind != NodeKind::Layer)
        .map(|e| e.target())
        .collect();
    v.sort();
    v.into_iter()
}

/// Rows of a band: computations by longest flow path from the band's
/// sources; then one row for tensors no computation of the band uses.
fn rank_rows(g: &DiGraph<Node, EdgeKind>, members: &[NodeIndex]) -> Vec<Vec<NodeIndex>> {
    let inside = |i: NodeIndex| members.binary_search(&i).is_ok();
    let placed = |i: NodeIndex| !matches!(g[i].kind, NodeKind::Tensor | NodeKind::Layer);
    // Kahn's algorithm over the flow edges between computations of the band.
    let mut indegree: Vec<usize> = vec![0; g.node_count()];
    for &i in members {
        if placed(i) {
            for e in g.edges(i) {
                if *e.weight() == EdgeKind::Flow && inside(e.target()) && placed(e.target()) {
                    indegree[e.target().index()] += 1;
                }
            }
        }
    }
    let mut queue: Vec<NodeIndex> = members
        .iter()
        .copied()
        .filter(|&i| placed(i) && indegree[i.index()] == 0)
        .collect();
    let mut rank = vec![0usize; g.node_count()];
    let mut head = 0;
    while head < queue.len() {
        let i = queue[head];
        head += 1;
        for e in g.edges(i) {
            let t = e.target();
            if *e.weight() == EdgeKind::Flow && inside(t) && placed(t) {
                rank[t.index()] = rank[t.index()].max(rank[i.index()] + 1);
                indegree[t.index()] -= 1;
                if indegree[t.index()] == 0 {
                    queue.push(t);
                }
            }
        }
    }
    let mut rows: Vec<Vec<NodeIndex>> = Vec::new();
    for &i in &queue {
        let r = rank[i.index()];
        if rows.len() <= r {
            rows.resize(r + 1, Vec::new());
        }
        rows[r].push(i);
    }
    // Tensors with no user in this band (unknown use, or unattached).
    let loose: Vec<NodeIndex> = members
        .iter()
        .copied()
        .filter(|&i| g[i].kind == NodeKind::Tensor)
        .filter(|&i| {
            !g.edges(i).any(|e| {
                *e.weight() == EdgeKind::Weight && inside(e.target()) && placed(e.target())
            })
        })
        .collect();
    if !loose.is_empty() {
        rows.push(loose);
    }
    for row in &mut rows {
        row.sort_by_key(|&i| (order_of(&g[i]), i));
    }
    rows
}

/// Left-to-right order inside a row: the attention branch, then the FFN
/// branch (they share rows only in parallel blocks), then by kind and head.
fn order_of(n: &Node) -> (u8, u8, u32) {
    let ffn_branch = match n.kind {
        NodeKind::FfnProjection
        | NodeKind::Activation
        | NodeKind::Router
        | NodeKind::Experts
        | NodeKind::SharedExpert => 1,
        NodeKind::Norm if n.key.ends_with("ffn_norm") || n.key.ends_with("ffn_post_norm") => 1,
        _ => 0,
    };
    let kind = match n.kind {
        NodeKind::ResidualAdd => 0,
        NodeKind::Router => 1,
        NodeKind::AttnProjection | NodeKind::FfnProjection => 2,
        NodeKind::Experts => 3,
        NodeKind::SharedExpert => 4,
        _ => 5,
    };
    (ffn_branch, kind, n.head.unwrap_or(0))
}

/// The main-column slots of a row as `(node, start, width)`, starting at
/// 0; residual adds are left out, they sit in the lane.
fn slots(
    g: &DiGraph<Node, EdgeKind>,
    row: &[NodeIndex],
    stacks: &[Vec<NodeIndex>],
) -> Vec<(NodeIndex, f32, f32)> {
    let mut out = Vec::with_capacity(row.len());
    let mut cursor = 0f32;
    let mut prev_group = None;
    for &i in row {
        let n = &g[i];
        let width = match n.kind {
            NodeKind::ResidualAdd => continue,
            NodeKind::Head => {
                if prev_group.is_some_and(|p| Some(p) != n.kv_group) {
                    cursor += GROUP_GAP;
                }
                prev_group = n.kv_group;
                HEAD_SPACING
            }
            NodeKind::Tensor => TENSOR_SPACING + 6.0,
            _ if stacks[i.index()].is_empty() => COMPONENT_WIDTH,
            _ => COMPONENT_WIDTH + TENSOR_ROOM,
        };
        out.push((i, cursor, width));
        cursor += width;
    }
    out
}

/// Width of the row's main-column part.
fn row_width(g: &DiGraph<Node, EdgeKind>, row: &[NodeIndex], stacks: &[Vec<NodeIndex>]) -> f32 {
    slots(g, row, stacks)
        .last()
        .map_or(0.0, |&(_, start, w)| start + w)
}

/// Places one row centred on `center_x`, residual adds on the lane.
fn place_row(
    g: &DiGraph<Node, EdgeKind>,
    row: &[NodeIndex],
    stacks: &[Vec<NodeIndex>],
    center_x: f32,
    row_y: f32,
    x: &mut [f32],
    y: &mut [f32],
) {
    for &i in row {
        y[i.index()] = row_y;
        x[i.index()] = 0.0;
    }
    let left = center_x - row_width(g, row, stacks) / 2.0;
    for (i, start, width) in slots(g, row, stacks) {
        // Tensors hang left of a computation, so it sits at its slot's right.
        let offset = match g[i].kind {
            NodeKind::Head | NodeKind::Tensor => width / 2.0,
            _ => width - COMPONENT_WIDTH / 2.0,
        };
        x[i.index()] = left + start + offset;
    }
}
