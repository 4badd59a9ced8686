//! The storage sections of the report: ggml types, every tensor, layers.

use serde::Serialize;

use crate::anatomy::{Anatomy, RoleGroup, TensorRole};
use crate::gguf::GgmlType;

use super::packed::Packed;

/// One ggml type present in the file, for legends and the quant mix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypeInfo {
    /// llama.cpp's name (`Q4_K`).
    pub name: String,
    /// Exact storage bits per weight, scales and minimums included.
    pub bits_per_weight: f64,
    /// Weights per block.
    pub block_size: u32,
    /// Bytes per block.
    pub type_size: u32,
    pub tensors: usize,
    pub params: u64,
    pub bytes: u64,
    pub share_of_bytes: f64,
    pub share_of_params: f64,
    /// The colour every view uses for this type, as `#rrggbb`.
    pub color: String,
}

/// One tensor role, for labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleInfo {
    pub id: &'static str,
    pub label: &'static str,
    /// The family: embedding, norm, attention, ffn, experts, output, other.
    pub group: RoleGroup,
}

/// Every tensor of the file in file order, as columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorTable {
    pub name: Vec<String>,
    /// Index into [`TensorTable::roles`].
    pub role: Vec<u8>,
    pub roles: Vec<RoleInfo>,
    /// Block index, −1 outside the blocks.
    pub layer: Packed,
    /// Index into the report's `types`.
    #[serde(rename = "type")]
    pub ggml_type: Packed,
    /// Shape in GGUF order, `ne[0]` first.
    pub shape: Vec<Vec<u64>>,
    pub params: Packed,
    pub bytes: Packed,
    /// Absolute byte offset of the data in its file.
    pub offset: Packed,
}

/// One transformer block.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerInfo {
    pub layer: u32,
    pub tensors: usize,
    pub params: u64,
    pub bytes: u64,
    /// `[type index, bytes]`, largest first.
    pub bytes_by_type: Vec<(usize, u64)>,
    pub n_head: u32,
    pub n_head_kv: u32,
    pub n_ff: u64,
}

/// The colour of a type, used by every view and the site index. Fewer bits
/// read warmer: reds for 1–2 bits, oranges for 3, yellows to limes for 4,
/// greens for 5, teal for 6, blues for 8, violet for 16-bit floats and
/// slate for F32. Types that share a rate (Q4_0, Q4_K, IQ4_NL) get
/// different hues of their band, since files that mix them are common.
pub fn type_color(t: GgmlType) -> String {
    use GgmlType::*;
    let fixed = match t {
        Iq1S | Iq1M | Tq1_0 | Q1_0 => "#8f2d56",
        Q2K | Tq2_0 => "#d62839",
        Iq2Xxs => "#e05263",
        Iq2Xs | Iq2S => "#ef6f6c",
        Q3K => "#f2711c",
        Iq3Xxs | Iq3S => "#f59e4c",
        Q4_0 => "#f6c945",
        Q4_1 => "#d4e157",
        Q4K => "#9ccc65",
        Iq4Nl | Iq4Xs => "#e6d96b",
        Mxfp4 | Nvfp4 => "#c9b458",
        Q5_0 => "#4caf7d",
        Q5_1 => "#2e9e6a",
        Q5K => "#3fbf8f",
        Q6K => "#26b5c4",
        Q8_0 => "#3d8fe0",
        Q8_1 | Q8K => "#6a7fe8",
        F16 => "#9b7ee8",
        Bf16 => "#c27ee0",
        F32 => "#8d99ae",
        _ => "",
    };
    if !fixed.is_empty() {
        return fixed.to_owned();
    }
    // Anything else (integer and f64 tensors, types added later): a neutral
    // tone placed by its bits per weight.
    let bpw = t.bits_per_weight().clamp(1.0, 64.0);
    let f = bpw.log2() / 6.0;
    let (r, g, b) = hsl_to_rgb(200.0 + 60.0 * f, 0.12, 0.45 + 0.2 * f);
    format!("#{r:02x}{g:02x}{b:02x}")
}

fn hsl_to_rgb(h: f64, s: f64, l: f64) -> (u8, u8, u8) {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let hp = (h / 60.0).rem_euclid(6.0);
    let x = c * (1.0 - (hp % 2.0 - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let to = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    (to(r), to(g), to(b))
}

/// The types of the file, largest share of bytes first.
pub fn types(a: &Anatomy) -> Vec<TypeInfo> {
    a.accounting
        .by_type
        .iter()
        .map(|s| TypeInfo {
            name: s.ggml_type.name().to_owned(),
            bits_per_weight: s.bits_per_weight,
            block_size: s.ggml_type.block_size(),
            type_size: s.ggml_type.type_size(),
            tensors: s.tensors,
            params: s.params,
            bytes: s.bytes,
            share_of_bytes: s.share_of_bytes,
            share_of_params: s.share_of_params,
            color: type_color(s.ggml_type),
        })
        .collect()
}

/// Index of `t` in the report's `types`.
pub fn type_index(a: &Anatomy, t: GgmlType) -> Option<usize> {
    a.accounting.by_type.iter().position(|s| s.ggml_type == t)
}

/// The tensor table.
pub fn tensors(a: &Anatomy) -> TensorTable {
    let mut roles: Vec<TensorRole> = Vec::new();
    let mut role = Vec::with_capacity(a.tensors.len());
    for t in &a.tensors {
        let i = match roles.iter().position(|&r| r == t.role) {
            Some(i) => i,
            None => {
                roles.push(t.role);
                roles.len() - 1
            }
        };
        role.push(i.min(u8::MAX as usize) as u8);
    }
    TensorTable {
        name: a.tensors.iter().map(|t| t.name.clone()).collect(),
        role,
        roles: roles
            .iter()
            .map(|&r| RoleInfo {
                id: r.name(),
                label: r.label(),
                group: r.group(),
            })
            .collect(),
        layer: Packed::i32(
            &a.tensors
                .iter()
                .map(|t| t.layer.map_or(-1, |l| l as i32))
                .collect::<Vec<_>>(),
        ),
        ggml_type: Packed::u8(
            &a.tensors
                .iter()
                .map(|t| type_index(a, t.ggml_type).unwrap_or(0) as u8)
                .collect::<Vec<_>>(),
        ),
        shape: a.tensors.iter().map(|t| t.shape.clone()).collect(),
        params: Packed::f64(
            &a.tensors
                .iter()
                .map(|t| t.params as f64)
                .collect::<Vec<_>>(),
        ),
        bytes: Packed::f64(&a.tensors.iter().map(|t| t.bytes as f64).collect::<Vec<_>>()),
        offset: Packed::f64(
            &a.tensors
                .iter()
                .map(|t| t.offset as f64)
                .collect::<Vec<_>>(),
        ),
    }
}

/// The layers with their accounting and head counts.
pub fn layers(a: &Anatomy) -> Vec<LayerInfo> {
    let hp = &a.hparams;
    a.accounting
        .by_layer
        .iter()
        .enumerate()
        .map(|(l, s)| LayerInfo {
            layer: l as u32,
            tensors: s.tensors,
            params: s.params,
            bytes: s.bytes,
            bytes_by_type: s
                .bytes_by_type
                .iter()
                .filter_map(|&(t, b)| type_index(a, t).map(|i| (i, b)))
                .collect(),
            n_head: hp.n_head.get(l).copied().unwrap_or(0),
            n_head_kv: hp.n_head_kv.get(l).copied().unwrap_or(0),
            n_ff: hp.n_ff.get(l).copied().unwrap_or(0),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_colours_are_distinct_for_the_common_mixes() {
        use GgmlType::*;
        let mix = [
            F32, F16, Q8_0, Q6K, Q5K, Q4K, Q4_0, Q4_1, Q3K, Q2K, Iq4Xs, Iq2Xxs,
        ];
        let colours: std::collections::BTreeSet<String> =
            mix.iter().map(|&t| type_color(t)).collect();
        assert_eq!(colours.len(), mix.len());
        assert!(colours.iter().all(|c| c.len() == 7 && c.starts_with('#')));
    }
}
