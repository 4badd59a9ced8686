//! Where a model's parameters and bytes go: per tensor, role, layer and type.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::gguf::GgmlType;

use super::TensorEntry;
use super::roles::TensorRole;

/// Bytes and parameters of one ggml type across the file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TypeShare {
    #[serde(rename = "type")]
    pub ggml_type: GgmlType,
    pub tensors: usize,
    pub params: u64,
    pub bytes: u64,
    /// Fraction of all tensor bytes.
    pub share_of_bytes: f64,
    /// Fraction of all parameters.
    pub share_of_params: f64,
    /// Exact storage bits per weight of the type.
    pub bits_per_weight: f64,
}

/// Bytes and parameters of one role across the file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleShare {
    pub role: TensorRole,
    pub tensors: usize,
    pub params: u64,
    pub bytes: u64,
}

/// Bytes and parameters of one layer (or of the global tensors).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerShare {
    /// Block index; `None` for tensors outside the blocks.
    pub layer: Option<u32>,
    pub tensors: usize,
    pub params: u64,
    pub bytes: u64,
    /// Bytes per type, largest first, for stacked bars.
    pub bytes_by_type: Vec<(GgmlType, u64)>,
}

/// The whole file's accounting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accounting {
    pub total_params: u64,
    /// Bytes of tensor data.
    pub tensor_bytes: u64,
    /// Bytes of the file(s) on disk.
    pub file_bytes: u64,
    /// Header, metadata, tensor index and alignment padding.
    pub overhead_bytes: u64,
    /// Tensor bytes × 8 / parameters.
    pub avg_bits_per_weight: f64,
    /// Quantization mix, largest share of bytes first.
    pub by_type: Vec<TypeShare>,
    /// Per role, largest first.
    pub by_role: Vec<RoleShare>,
    /// Per block, in order.
    pub by_layer: Vec<LayerShare>,
    /// Tensors outside the blocks.
    pub global: LayerShare,
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn layer_share(layer: Option<u32>, entries: &[&TensorEntry]) -> LayerShare {
    let mut by_type: BTreeMap<GgmlType, u64> = BTreeMap::new();
    for t in entries {
        *by_type.entry(t.ggml_type).or_default() += t.bytes;
    }
    let mut bytes_by_type: Vec<(GgmlType, u64)> = by_type.into_iter().collect();
    bytes_by_type.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    LayerShare {
        layer,
        tensors: entries.len(),
        params: entries.iter().map(|t| t.params).sum(),
        bytes: entries.iter().map(|t| t.bytes).sum(),
        bytes_by_type,
    }
}

/// Adds up `tensors` for a model of `n_layer` blocks stored in `file_bytes`.
pub fn account(tensors: &[TensorEntry], n_layer: u32, file_bytes: u64) -> Accounting {
    let total_params: u64 = tensors.iter().map(|t| t.params).sum();
    let tensor_bytes: u64 = tensors.iter().map(|t| t.bytes).sum();

    let mut types: BTreeMap<GgmlType, (usize, u64, u64)> = BTreeMap::new();
    let mut roles: BTreeMap<TensorRole, (usize, u64, u64)> = BTreeMap::new();
    for t in tensors {
        for acc in [
            types.entry(t.ggml_type).or_default(),
            roles.entry(t.role).or_default(),
        ] {
            acc.0 += 1;
            acc.1 += t.params;
            acc.2 += t.bytes;
        }
    }
    let mut by_type: Vec<TypeShare> = types
        .into_iter()
        .map(|(ggml_type, (n, params, bytes))| TypeShare {
            ggml_type,
            tensors: n,
            params,
            bytes,
            share_of_bytes: share(bytes, tensor_bytes),
            share_of_params: share(params, total_params),
            bits_per_weight: ggml_type.bits_per_weight(),
        })
        .collect();
    by_type.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.ggml_type.cmp(&b.ggml_type)));
    let mut by_role: Vec<RoleShare> = roles
        .into_iter()
        .map(|(role, (n, params, bytes))| RoleShare {
            role,
            tensors: n,
            params,
            bytes,
        })
        .collect();
    by_role.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.role.cmp(&b.role)));

    let mut per_layer: Vec<Vec<&TensorEntry>> = vec![Vec::new(); n_layer as usize];
    let mut global = Vec::new();
    for t in tensors {
        match t.layer.and_then(|l| per_layer.get_mut(l as usize)) {
            Some(v) => v.push(t),
            None => global.push(t),
        }
    }
    let by_layer = per_layer
        .iter()
        .enumerate()
        .map(|(l, entries)| layer_share(Some(l as u32), entries))
        .collect();

    Accounting {
        total_params,
        tensor_bytes,
        file_bytes,
        overhead_bytes: file_bytes.saturating_sub(tensor_bytes),
        avg_bits_per_weight: if total_params == 0 {
            0.0
        } else {
            tensor_bytes as f64 * 8.0 / total_params as f64
        },
        by_type,
        by_role,
        by_layer,
        global: layer_share(None, &global),
    }
}
