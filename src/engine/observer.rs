//! The capture's side of llama.cpp's eval callback.
//!
//! [`Capturer`] decides, by tensor name pattern alone (`kq_soft_max-L`,
//! `kqv_out-L`, `l_out-L`, `attn_out-L`, `ffn_out-L`, `result_norm`), which
//! graph nodes to copy out, never by model name: the core names are the same
//! across llama.cpp's architectures (`src/llama-graph.cpp`, `src/models/`),
//! and whatever an architecture does not name is recorded as missing rather
//! than failing the run. It also applies interventions, writing zeros into
//! a node before the rest of the graph reads it, and turns each layer's
//! `kqv_out` into per-head contributions as it arrives. Every buffer is
//! allocated before the decode starts, at its final size.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::capture::{CaptureOptions, HeadCapture, Intervention, TraceDims};
use super::error::EngineError;
use super::ffi::{EvalObserver, ObservedTensor};
use super::heads::HeadProjector;

/// The graph nodes the capture knows, by base name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Node {
    /// `kq_soft_max-L`: ne = [n_kv (padded), n_tokens, n_head].
    Attention,
    /// `kqv_out-L`: ne = [head_dim · n_head, n_tokens]; read to compute
    /// per-head contributions, not kept.
    HeadOutputs,
    /// `l_out-L`: ne = [n_embd, n_tokens].
    Hidden,
    /// `attn_out-L`: ne = [n_embd, n_tokens].
    AttnOut,
    /// `ffn_out-L`: ne = [n_embd, n_tokens].
    FfnOut,
}

impl Node {
    const ALL: [Node; 5] = [
        Node::Attention,
        Node::HeadOutputs,
        Node::Hidden,
        Node::AttnOut,
        Node::FfnOut,
    ];

    /// llama.cpp's base name for the node (`cb(cur, "<name>", il)`).
    pub(crate) fn base(self) -> &'static str {
        match self {
            Node::Attention => "kq_soft_max",
            Node::HeadOutputs => "kqv_out",
            Node::Hidden => "l_out",
            Node::AttnOut => "attn_out",
            Node::FfnOut => "ffn_out",
        }
    }

    fn from_base(base: &str) -> Option<Node> {
        Node::ALL.into_iter().find(|n| n.base() == base)
    }
}

/// llama.cpp's name for the output-normed last hidden state.
pub(crate) const RESULT_NORM: &str = "result_norm";

/// Splits `kq_soft_max-12` into (`kq_soft_max`, Some(12)); graph-level
/// names (`result_norm`) have no layer.
fn split_name(name: &str) -> (&str, Option<usize>) {
    match name.rsplit_once('-') {
        Some((base, layer)) if !base.is_empty() => match layer.parse() {
            Ok(l) => (base, Some(l)),
            Err(_) => (name, None),
        },
        _ => (name, None),
    }
}

/// Names ggml makes up rather than the architecture: views get
/// "<name> (view)", "(permuted)", ...; nodes nobody named get `node_<i>` (in
/// `ggml_visit_parents`) or stay empty.
fn is_generated_name(name: &str) -> bool {
    let numbered = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    name.is_empty() || name.contains(' ') || numbered("node_") || numbered("leaf_")
}

/// A preallocated destination for one tensor.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) data: Vec<f32>,
    pub(crate) filled: bool,
}

impl Slot {
    fn new(len: usize) -> Slot {
        Slot {
            data: vec![0.0; len],
            filled: false,
        }
    }

    /// The data, when the tensor was captured.
    pub(crate) fn take(self) -> Option<Vec<f32>> {
        self.filled.then_some(self.data)
    }
}

/// One layer's destinations, `None` where nothing was asked for.
#[derive(Debug, Default)]
pub(crate) struct LayerSlots {
    pub(crate) attention: Option<Slot>,
    /// Per-head contributions computed from `kqv_out`.
    pub(crate) heads: Option<Slot>,
    pub(crate) hidden: Option<Slot>,
    pub(crate) attn_out: Option<Slot>,
    pub(crate) ffn_out: Option<Slot>,
    /// Heads whose `kqv_out` slices are zeroed.
    zero_heads: BTreeSet<usize>,
    /// Whether `attn_out` is zeroed.
    zero_attn_out: bool,
    /// Which interventions took place (the node was offered and rewritten).
    zeroed_heads: bool,
    zeroed_attn_out: bool,
}

impl LayerSlots {
    fn slot_mut(&mut self, node: Node) -> Option<&mut Slot> {
        match node {
            Node::Attention => self.attention.as_mut(),
            Node::HeadOutputs => self.heads.as_mut(),
            Node::Hidden => self.hidden.as_mut(),
            Node::AttnOut => self.attn_out.as_mut(),
            Node::FfnOut => self.ffn_out.as_mut(),
        }
    }

    /// Whether the intervention on `node` took place.
    pub(crate) fn applied(&self, node: Node) -> bool {
        match node {
            Node::HeadOutputs => self.zeroed_heads,
            Node::AttnOut => self.zeroed_attn_out,
            _ => false,
        }
    }

    fn intervenes_on(&self, node: Node) -> bool {
        match node {
            Node::HeadOutputs => !self.zero_heads.is_empty(),
            Node::AttnOut => self.zero_attn_out,
            _ => false,
        }
    }
}

/// What a capture leaves once the decode is over.
#[derive(Debug)]
pub(crate) struct Captured {
    pub(crate) layers: Vec<LayerSlots>,
    pub(crate) final_norm: Option<Slot>,
    /// Base name → layers that offered it (graph-level names: empty set).
    pub(crate) offered: BTreeMap<String, BTreeSet<usize>>,
    pub(crate) notes: Vec<String>,
    /// Time spent in the callback.
    pub(crate) busy: Duration,
    /// The part of `busy` spent computing per-head contributions.
    pub(crate) heads_busy: Duration,
}

/// Watches one decode and fills the trace's buffers.
#[derive(Debug)]
pub(crate) struct Capturer<'a> {
    dims: TraceDims,
    layers: Vec<LayerSlots>,
    final_norm: Option<Slot>,
    /// Turns `kqv_out` into per-head contributions, when asked for.
    projector: Option<HeadProjector<'a>>,
    /// Where `kqv_out` is read, and intervened nodes are read and rewritten
    /// when they are not captured themselves.
    scratch: Vec<f32>,
    offered: BTreeMap<String, BTreeSet<usize>>,
    notes: Vec<String>,
    /// Time spent in the callback: copying, rewriting, projecting heads.
    busy: Duration,
    heads_busy: Duration,
}

impl<'a> Capturer<'a> {
    /// Allocates every destination `options` asks for; `projector` computes
    /// per-head contributions (needed unless `options.heads` is off).
    /// Interventions are checked against the model's shape here, before
    /// anything runs.
    pub(crate) fn new(
        dims: TraceDims,
        options: &CaptureOptions,
        projector: Option<HeadProjector<'a>>,
    ) -> Result<Capturer<'a>, EngineError> {
        let t = dims.n_tokens;
        let e = dims.n_embd;
        let projector = projector.filter(|_| options.heads != HeadCapture::Off);
        let heads_len = HeadProjector::layer_len(&dims, options.heads);
        let mut layers: Vec<LayerSlots> = (0..dims.n_layer)
            .map(|_| LayerSlots {
                attention: options.attention.then(|| Slot::new(dims.n_head * t * t)),
                heads: projector.as_ref().map(|_| Slot::new(heads_len)),
                hidden: options.hidden.then(|| Slot::new(t * e)),
                attn_out: options.blocks.then(|| Slot::new(t * e)),
                ffn_out: options.blocks.then(|| Slot::new(t * e)),
                ..LayerSlots::default()
            })
            .collect();
        let mut scratch_len = if projector.is_some() {
            t * dims.kqv_width()
        } else {
            0
        };
        for iv in &options.interventions {
            let layer = match iv {
                Intervention::ZeroHeads { layer, .. }
                | Intervention::ZeroAttentionOutput { layer } => *layer,
            };
            let slots = layers.get_mut(layer).ok_or_else(|| {
                EngineError::InvalidRequest(format!(
                    "intervention on layer {layer}, but the model has {} layers",
                    dims.n_layer
                ))
            })?;
            match iv {
                Intervention::ZeroHeads { heads, .. } => {
                    if let Some(&h) = heads.iter().find(|&&h| h >= dims.n_head) {
                        return Err(EngineError::InvalidRequest(format!(
                            "cannot zero head {h} of layer {layer}: it has {} heads",
                            dims.n_head
                        )));
                    }
                    slots.zero_heads.extend(heads.iter().copied());
                    scratch_len = scratch_len.max(t * dims.kqv_width());
                }
                Intervention::ZeroAttentionOutput { .. } => {
                    slots.zero_attn_out = true;
                    scratch_len = scratch_len.max(t * e);
                }
            }
        }
        Ok(Capturer {
            dims,
            layers,
            final_norm: options.final_norm.then(|| Slot::new(t * e)),
            projector,
            scratch: vec![0.0; scratch_len],
            offered: BTreeMap::new(),
            notes: Vec::new(),
            busy: Duration::ZERO,
            heads_busy: Duration::ZERO,
        })
    }

    /// Ends the capture: keeps what was captured, frees the working buffers.
    pub(crate) fn finish(self) -> Captured {
        Captured {
            layers: self.layers,
            final_norm: self.final_norm,
            offered: self.offered,
            notes: self.notes,
            busy: self.busy,
            heads_busy: self.heads_busy,
        }
    }

    fn record_offer(&mut self, base: &str, layer: Option<usize>) {
        let layers = match self.offered.get_mut(base) {
            Some(set) => set,
            None => self.offered.entry(base.to_string()).or_default(),
        };
        layers.extend(layer);
    }

    /// The shape the node must have: [width, n_tokens, 1, 1] for the
    /// per-token vectors; attention is checked in `capture_attention`.
    fn expected_width(&self, node: Node) -> usize {
        match node {
            Node::HeadOutputs => self.dims.kqv_width(),
            _ => self.dims.n_embd,
        }
    }

    fn capture_attention(
        dims: &TraceDims,
        tensor: &ObservedTensor<'_>,
        slot: &mut Slot,
    ) -> Result<(), EngineError> {
        let [n_kv, n_q, n_head, n_stream] = tensor.ne();
        let t = dims.n_tokens;
        let fits = usize::try_from(n_kv).is_ok_and(|k| k >= t)
            && usize::try_from(n_q) == Ok(t)
            && usize::try_from(n_head) == Ok(dims.n_head)
            && n_stream == 1;
        if !fits {
            return Err(shape_error(
                tensor,
                format!("[n_kv ≥ {t}, {t}, {}, 1]", dims.n_head),
            ));
        }
        // Head-major rows of n_kv keys; KV cell j holds position j (the cache
        // is cleared before each decode), so the first n_tokens keys of every
        // row are the prompt and the rest is padding.
        let n_kv = usize::try_from(n_kv).unwrap_or(t);
        tensor.read_rows(0, t, dims.n_head * t, n_kv, &mut slot.data)?;
        slot.filled = true;
        Ok(())
    }

    fn capture_vectors(
        &mut self,
        node: Node,
        layer: usize,
        tensor: &mut ObservedTensor<'_>,
    ) -> Result<(), EngineError> {
        let width = self.expected_width(node);
        let t = self.dims.n_tokens;
        let [w, n, one, one2] = tensor.ne();
        if usize::try_from(w) != Ok(width) || usize::try_from(n) != Ok(t) || one != 1 || one2 != 1 {
            return Err(shape_error(tensor, format!("[{width}, {t}, 1, 1]")));
        }
        let head_dim = self.dims.head_dim;
        let slots = &mut self.layers[layer];
        let intervene = slots.intervenes_on(node);
        if node == Node::HeadOutputs {
            // kqv_out is read into scratch, rewritten there for an ablation,
            // then turned into per-head contributions.
            let buf = &mut self.scratch[..width * t];
            tensor.read(buf)?;
            if intervene {
                for row in buf.chunks_exact_mut(width) {
                    for &h in &slots.zero_heads {
                        row[h * head_dim..(h + 1) * head_dim].fill(0.0);
                    }
                }
                tensor.write(buf)?;
                slots.zeroed_heads = true;
            }
            if let (Some(projector), Some(slot)) = (self.projector.as_mut(), slots.heads.as_mut()) {
                let start = Instant::now();
                let projected = projector.project(layer, buf, &mut slot.data);
                self.heads_busy += start.elapsed();
                projected?;
                slot.filled = true;
            }
            return Ok(());
        }
        let (buf, slot_filled) = match slots.slot_mut(node) {
            Some(slot) => (&mut slot.data, Some(&mut slot.filled)),
            None => (&mut self.scratch, None),
        };
        let buf = &mut buf[..width * t];
        if intervene {
            // Only attn_out is zeroed whole.
            buf.fill(0.0);
            tensor.write(buf)?;
        } else {
            tensor.read(buf)?;
        }
        if let Some(filled) = slot_filled {
            *filled = true;
        }
        if node == Node::AttnOut && intervene {
            slots.zeroed_attn_out = true;
        }
        Ok(())
    }
}

fn shape_error(tensor: &ObservedTensor<'_>, expected: String) -> EngineError {
    EngineError::CaptureShape {
        name: tensor.name().to_string(),
        ne: tensor.ne(),
        expected,
    }
}

impl EvalObserver for Capturer<'_> {
    fn wants(&mut self, name: &str) -> bool {
        if is_generated_name(name) {
            return false;
        }
        let (base, layer) = split_name(name);
        self.record_offer(base, layer);
        match (Node::from_base(base), layer) {
            (Some(node), Some(l)) => self.layers.get_mut(l).is_some_and(|slots| {
                let intervene = slots.intervenes_on(node);
                // The first node of a name wins: llama.cpp names the FFN's
                // output `ffn_out-L`, and on some graphs reuses the name for
                // the residual sum after it.
                let fresh = slots.slot_mut(node).is_some_and(|s| !s.filled);
                fresh || intervene
            }),
            (None, None) if base == RESULT_NORM => {
                self.final_norm.as_ref().is_some_and(|s| !s.filled)
            }
            _ => false,
        }
    }

    fn observe(&mut self, tensor: &mut ObservedTensor<'_>) -> bool {
        let start = Instant::now();
        let name = tensor.name().to_string();
        let (base, layer) = split_name(&name);
        let result = match (Node::from_base(base), layer) {
            // `wants` only accepts layers that exist; this keeps it so.
            (Some(_), Some(l)) if l >= self.layers.len() => Ok(()),
            (Some(Node::Attention), Some(l)) => {
                let dims = self.dims;
                match self.layers[l].attention.as_mut() {
                    Some(slot) => Self::capture_attention(&dims, tensor, slot),
                    None => Ok(()),
                }
            }
            (Some(node), Some(l)) => self.capture_vectors(node, l, tensor),
            _ => {
                let width = self.dims.n_embd * self.dims.n_tokens;
                match self.final_norm.as_mut() {
                    Some(slot) if tensor.n_elements() == width => {
                        let r = tensor.read(&mut slot.data);
                        slot.filled = r.is_ok();
                        r
                    }
                    _ => Err(shape_error(
                        tensor,
                        format!("[{}, {}]", self.dims.n_embd, self.dims.n_tokens),
                    )),
                }
            }
        };
        if let Err(e) = result {
            self.notes.push(e.to_string());
        }
        self.busy += start.elapsed();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_base_and_layer() {
        assert_eq!(split_name("kq_soft_max-12"), ("kq_soft_max", Some(12)));
        assert_eq!(split_name("result_norm"), ("result_norm", None));
        assert_eq!(split_name("ffn_moe_out-0"), ("ffn_moe_out", Some(0)));
        assert_eq!(split_name("weird-x"), ("weird-x", None));
        assert_eq!(split_name("-3"), ("-3", None));
        assert_eq!(Node::from_base("kqv_out"), Some(Node::HeadOutputs));
        assert_eq!(Node::from_base("kqv"), None);
    }

    fn dims() -> TraceDims {
        TraceDims {
            n_layer: 2,
            n_head: 4,
            n_head_kv: 2,
            head_dim: 16,
            n_embd: 64,
            n_vocab: 300,
            n_tokens: 5,
        }
    }

    #[test]
    fn wants_only_requested_names_and_records_offers() {
        let opts = CaptureOptions {
            attention: true,
            ..CaptureOptions::logits_only()
        };
        let mut c = Capturer::new(dims(), &opts, None).unwrap();
        assert!(c.wants("kq_soft_max-1"));
        assert!(!c.wants("kq_soft_max-2"), "no such layer");
        assert!(!c.wants("l_out-0"), "not requested");
        assert!(!c.wants("result_norm"));
        assert!(!c.wants("cache_k_l0 (view)"));
        assert!(!c.wants("node_1076"));
        assert!(!c.wants(""));
        let offered: Vec<_> = c.offered.keys().map(String::as_str).collect();
        assert_eq!(offered, ["kq_soft_max", "l_out", "result_norm"]);
        assert_eq!(c.offered["kq_soft_max"], BTreeSet::from([1, 2]));
    }

    #[test]
    fn interventions_are_checked_and_make_nodes_wanted() {
        let bad_layer = CaptureOptions {
            interventions: vec![Intervention::ZeroAttentionOutput { layer: 2 }],
            ..CaptureOptions::logits_only()
        };
        assert!(Capturer::new(dims(), &bad_layer, None).is_err());
        let bad_head = CaptureOptions {
            interventions: vec![Intervention::ZeroHeads {
                layer: 0,
                heads: vec![4],
            }],
            ..CaptureOptions::logits_only()
        };
        assert!(Capturer::new(dims(), &bad_head, None).is_err());
        let ok = CaptureOptions {
            interventions: vec![Intervention::ZeroHeads {
                layer: 1,
                heads: vec![0, 3],
            }],
            ..CaptureOptions::logits_only()
        };
        let mut c = Capturer::new(dims(), &ok, None).unwrap();
        assert!(c.wants("kqv_out-1"));
        assert!(!c.wants("kqv_out-0"));
        assert!(!c.wants("attn_out-1"));
    }
}
