//! Weight values and their encodings for synthetic models.

use half::{bf16, f16};

use crate::gguf::types::GgmlType;

/// Deterministic xorshift64* values in [-scale, scale].
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self, scale: f32) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
    }
}

/// Encodes f32 values as `ggml_type`, quantizing per 32-element block.
pub fn encode(values: &[f32], ggml_type: GgmlType) -> Vec<u8> {
    let mut out = Vec::new();
    match ggml_type {
        GgmlType::F32 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        GgmlType::F16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
        GgmlType::Bf16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&bf16::from_f32(*v).to_le_bytes())),
        GgmlType::Q8_0 => {
            for block in values.chunks(32) {
                let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let id = if d > 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
            }
        }
        GgmlType::Q4_0 => {
            for block in values.chunks(32) {
                // ggml's quantize_row_q4_0_ref: scale from the signed extreme.
                let max = block
                    .iter()
                    .fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
                let d = max / -8.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                let q = |v: f32| ((v * id + 8.5) as i32).clamp(0, 15) as u8;
                for j in 0..16 {
                    out.push(q(block[j]) | (q(block[j + 16]) << 4));
                }
            }
        }
        GgmlType::Q4_1 => {
            for block in values.chunks(32) {
                let min = block.iter().copied().fold(f32::INFINITY, f32::min);
                let max = block.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let d = (max - min) / 15.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend_from_slice(&f16::from_f32(min).to_le_bytes());
                let q = |v: f32| (((v - min) * id + 0.5) as i32).clamp(0, 15) as u8;
                for j in 0..16 {
                    out.push(q(block[j]) | (q(block[j + 16]) << 4));
                }
            }
        }
        other => {
            let n = other.bytes_for(values.len() as u64).unwrap_or(0);
            out.resize(n as usize, 0);
        }
    }
    out
}

/// The type a tensor is stored in when `chosen` was asked for, as llama.cpp's
/// quantizer decides it: only 2-D and 3-D tensors named `*.weight` are
/// quantized, everything else stays F32 (`tensor_allows_quantization` in
/// `src/llama-quant.cpp`), and a tensor whose rows are not a whole number of
/// the type's blocks falls back to F16 (`tensor_type_fallback`, same file).
pub(super) fn storage_type(chosen: GgmlType, dims: &[u64], suffix: &str) -> GgmlType {
    if suffix != "weight" || dims.len() < 2 {
        return GgmlType::F32;
    }
    let block = u64::from(chosen.block_size()).max(1);
    if !dims[0].is_multiple_of(block) {
        return GgmlType::F16;
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_encoding_round_trips_closely() {
        let values: Vec<f32> = (0..32).map(|i| (i as f32 - 16.0) / 10.0).collect();
        let bytes = encode(&values, GgmlType::Q8_0);
        assert_eq!(bytes.len(), 34);
        let d = f16::from_le_bytes([bytes[0], bytes[1]]).to_f32();
        for (i, v) in values.iter().enumerate() {
            let q = bytes[2 + i] as i8 as f32 * d;
            assert!((q - v).abs() <= d, "{q} vs {v}");
        }
    }

    #[test]
    fn storage_follows_the_quantizer_rules() {
        use GgmlType::*;
        assert_eq!(storage_type(Q4_0, &[64, 32], "weight"), Q4_0);
        // Biases and 1-D weights (norms, sinks) stay F32.
        assert_eq!(storage_type(Q4_0, &[64], "bias"), F32);
        assert_eq!(storage_type(Q8_0, &[64, 4], "bias"), F32);
        assert_eq!(storage_type(F16, &[16], "weight"), F32);
        // Rows of 48 are not whole 32-blocks, nor 256-blocks.
        assert_eq!(storage_type(Q8_0, &[48, 64], "weight"), F16);
        assert_eq!(storage_type(Q4K, &[64, 64], "weight"), F16);
        assert_eq!(storage_type(Q4K, &[256, 8, 4], "weight"), Q4K);
        assert_eq!(storage_type(F32, &[48, 64], "weight"), F32);
    }
}
