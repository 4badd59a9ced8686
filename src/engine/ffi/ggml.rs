//! ggml's own number formats: dequantizing weights and rounding
//! activations exactly as llama.cpp's kernels do.

use std::ffi::c_char;

use llama_cpp_sys_2 as sys;

use super::{init, lossy};
use crate::gguf::GgmlType;

/// Dequantizes `bytes` of type `ggml_type` into `out` with ggml's own
/// row dequantizer (`ggml_get_type_traits(type)->to_float`), so ggviz sees
/// exactly the weights llama.cpp's kernels see. `out.len()` must be a whole
/// number of blocks and `bytes` exactly their size.
pub fn dequantize(ggml_type: GgmlType, bytes: &[u8], out: &mut [f32]) -> Result<(), String> {
    init();
    let id = ggml_type.id();
    if id >= sys::GGML_TYPE_COUNT {
        return Err(format!(
            "type {} is unknown to this llama.cpp",
            ggml_type.name()
        ));
    }
    // SAFETY: the id is below GGML_TYPE_COUNT, so it indexes ggml's static
    // table, which lives for the whole process.
    let traits = unsafe { &*sys::ggml_get_type_traits(id) };
    let block = usize::try_from(traits.blck_size).unwrap_or(0);
    if block == 0 {
        return Err(format!(
            "type {} is no longer supported by ggml",
            ggml_type.name()
        ));
    }
    if !out.len().is_multiple_of(block) || bytes.len() != out.len() / block * traits.type_size {
        return Err(format!(
            "{} bytes of {} do not hold {} values",
            bytes.len(),
            ggml_type.name(),
            out.len()
        ));
    }
    if id == sys::GGML_TYPE_F32 {
        // ggml has no to_float for f32 itself.
        for (v, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        return Ok(());
    }
    let Some(to_float) = traits.to_float else {
        return Err(format!("ggml has no dequantizer for {}", ggml_type.name()));
    };
    let n = i64::try_from(out.len()).map_err(|_| "too many values".to_string())?;
    // SAFETY: `bytes` holds exactly the blocks for `n` values of this type
    // (checked above) and `out` has room for `n` floats.
    unsafe { to_float(bytes.as_ptr().cast(), out.as_mut_ptr(), n) };
    Ok(())
}

/// Rounds activations the way llama.cpp's CPU matrix product does before
/// multiplying them with weights of type `weight`.
///
/// ggml's CPU `mul_mat` first converts every row of the activations to the
/// weight type's `vec_dot_type` (`ggml_get_type_traits_cpu(type)`: Q8_0 for
/// Q8_0 and Q4_0 weights, Q8_1 for Q4_1, Q8_K for the k-quants, F16 for
/// F16) with that type's CPU quantizer, and computes the dot products from
/// the result. This converts `x` (rows of `row_len` values) the same way and
/// back, in place, so an f32 product with the dequantized weights gives what
/// the kernel computes up to summation order. Quantization is per element
/// with a per-block scale, so slices of a row (one head's part of
/// `kqv_out`) stay slices of the rounded row.
pub fn round_like_cpu_matmul(
    weight: GgmlType,
    row_len: usize,
    x: &mut [f32],
) -> Result<(), String> {
    init();
    let id = weight.id();
    if id >= sys::GGML_TYPE_COUNT {
        return Err(format!(
            "type {} is unknown to this llama.cpp",
            weight.name()
        ));
    }
    // SAFETY: ids below GGML_TYPE_COUNT index ggml's static tables.
    let dot_type = match unsafe { cpu_traits(id).as_ref() } {
        Some(cpu) => cpu.vec_dot_type,
        None => return Err(format!("no CPU kernel for {}", weight.name())),
    };
    if dot_type == sys::GGML_TYPE_F32 {
        return Ok(());
    }
    if dot_type >= sys::GGML_TYPE_COUNT {
        return Err(format!("unknown vec_dot_type {dot_type}"));
    }
    // SAFETY: as above, for the vec_dot_type.
    let (traits, cpu) = unsafe {
        (
            &*sys::ggml_get_type_traits(dot_type),
            cpu_traits(dot_type).as_ref(),
        )
    };
    let block = usize::try_from(traits.blck_size).unwrap_or(0);
    if block == 0
        || row_len == 0
        || !row_len.is_multiple_of(block)
        || !x.len().is_multiple_of(row_len)
    {
        return Err(format!(
            "rows of {row_len} values do not split into {} blocks of {block}",
            lossy_static(traits.type_name)
        ));
    }
    let Some(quantize) = cpu.and_then(|c| c.from_float).or(traits.from_float_ref) else {
        return Err(format!(
            "no quantizer for {}",
            lossy_static(traits.type_name)
        ));
    };
    let n_bytes = row_len / block * traits.type_size;
    // u64 storage keeps the blocks' f16/f32 fields aligned.
    let mut storage = vec![0u64; n_bytes.div_ceil(8)];
    let n = i64::try_from(row_len).map_err(|_| "row too long".to_string())?;
    for row in x.chunks_exact_mut(row_len) {
        // SAFETY: `row` holds `n` floats; `storage` holds the `n_bytes` the
        // quantized row takes (whole blocks of the vec_dot_type).
        let bytes = unsafe {
            quantize(row.as_ptr(), storage.as_mut_ptr().cast(), n);
            std::slice::from_raw_parts(storage.as_ptr().cast::<u8>(), n_bytes)
        };
        match (traits.to_float, dot_type) {
            // SAFETY: `bytes` holds whole blocks for `n` values; `row` has room.
            (Some(to_float), _) => unsafe { to_float(bytes.as_ptr().cast(), row.as_mut_ptr(), n) },
            // block_q8_1 (ggml-common.h): f16 d, f16 s = d·Σq, then 32 int8.
            (None, sys::GGML_TYPE_Q8_1) => decode_q8(bytes, 36, 4, row, |b| {
                half::f16::from_le_bytes([b[0], b[1]]).to_f32()
            }),
            // block_q8_K: f32 d, 256 int8, then 16 int16 block sums.
            (None, sys::GGML_TYPE_Q8_K) => decode_q8(bytes, 292, 4, row, |b| {
                f32::from_le_bytes([b[0], b[1], b[2], b[3]])
            }),
            _ => {
                return Err(format!(
                    "no way to read back {}",
                    lossy_static(traits.type_name)
                ));
            }
        }
    }
    Ok(())
}

/// Reads blocks of `size` bytes holding a scale (read by `scale` from the
/// block's start) and int8 quants from byte `quants_at` on, into `out`.
fn decode_q8(
    bytes: &[u8],
    size: usize,
    quants_at: usize,
    out: &mut [f32],
    scale: impl Fn(&[u8]) -> f32,
) {
    let per_block = out.len() / (bytes.len() / size).max(1);
    for (block, values) in bytes
        .chunks_exact(size)
        .zip(out.chunks_exact_mut(per_block))
    {
        let d = scale(block);
        let quants = &block[quants_at..quants_at + per_block];
        for (v, &q) in values.iter_mut().zip(quants) {
            *v = d * f32::from(q as i8);
        }
    }
}

/// A type name from ggml's static table.
fn lossy_static(s: *const c_char) -> String {
    // SAFETY: ggml's type names are static NUL-terminated strings or null.
    unsafe { lossy(s) }
}

/// The CPU kernels' traits of `ty`: linked in, or from the CPU module loaded
/// at run time (`dynamic-backends`).
///
/// # Safety
/// `ty` must be below `GGML_TYPE_COUNT`.
unsafe fn cpu_traits(ty: sys::ggml_type) -> *const sys::ggml_type_traits_cpu {
    #[cfg(feature = "dynamic-backends")]
    {
        super::backends::cpu_type_traits(ty)
    }
    #[cfg(not(feature = "dynamic-backends"))]
    // SAFETY: the caller checked `ty`.
    unsafe {
        sys::ggml_get_type_traits_cpu(ty)
    }
}
