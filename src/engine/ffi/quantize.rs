//! llama.cpp's own quantizer (`llama_model_quantize`), through the typed C
//! structs of the vendored `llama.h`: the file type as `llama_ftype`, and the
//! importance matrix as a list of `llama_model_imatrix_data` ended by an
//! entry whose name is NULL. No C++ is involved.

use std::ffi::CString;
use std::path::Path;
use std::ptr;

use llama_cpp_sys_2 as sys;

use super::{clear_last_error, init, take_last_error};
use crate::engine::error::EngineError;
use crate::engine::quantize::QuantType;

/// llama.cpp's file type for `ty`.
fn ftype(ty: QuantType) -> sys::llama_ftype {
    use QuantType as Q;
    match ty {
        Q::F32 => sys::LLAMA_FTYPE_ALL_F32,
        Q::F16 => sys::LLAMA_FTYPE_MOSTLY_F16,
        Q::BF16 => sys::LLAMA_FTYPE_MOSTLY_BF16,
        Q::Q8_0 => sys::LLAMA_FTYPE_MOSTLY_Q8_0,
        Q::Q6_K => sys::LLAMA_FTYPE_MOSTLY_Q6_K,
        Q::Q5_K_M => sys::LLAMA_FTYPE_MOSTLY_Q5_K_M,
        Q::Q5_K_S => sys::LLAMA_FTYPE_MOSTLY_Q5_K_S,
        Q::Q5_1 => sys::LLAMA_FTYPE_MOSTLY_Q5_1,
        Q::Q5_0 => sys::LLAMA_FTYPE_MOSTLY_Q5_0,
        Q::Q4_K_M => sys::LLAMA_FTYPE_MOSTLY_Q4_K_M,
        Q::Q4_K_S => sys::LLAMA_FTYPE_MOSTLY_Q4_K_S,
        Q::Q4_1 => sys::LLAMA_FTYPE_MOSTLY_Q4_1,
        Q::Q4_0 => sys::LLAMA_FTYPE_MOSTLY_Q4_0,
        Q::IQ4_NL => sys::LLAMA_FTYPE_MOSTLY_IQ4_NL,
        Q::IQ4_XS => sys::LLAMA_FTYPE_MOSTLY_IQ4_XS,
        Q::Q3_K_L => sys::LLAMA_FTYPE_MOSTLY_Q3_K_L,
        Q::Q3_K_M => sys::LLAMA_FTYPE_MOSTLY_Q3_K_M,
        Q::Q3_K_S => sys::LLAMA_FTYPE_MOSTLY_Q3_K_S,
        Q::IQ3_M => sys::LLAMA_FTYPE_MOSTLY_IQ3_M,
        Q::IQ3_S => sys::LLAMA_FTYPE_MOSTLY_IQ3_S,
        Q::IQ3_XS => sys::LLAMA_FTYPE_MOSTLY_IQ3_XS,
        Q::IQ3_XXS => sys::LLAMA_FTYPE_MOSTLY_IQ3_XXS,
        Q::Q2_K => sys::LLAMA_FTYPE_MOSTLY_Q2_K,
        Q::Q2_K_S => sys::LLAMA_FTYPE_MOSTLY_Q2_K_S,
        Q::IQ2_M => sys::LLAMA_FTYPE_MOSTLY_IQ2_M,
        Q::IQ2_S => sys::LLAMA_FTYPE_MOSTLY_IQ2_S,
        Q::IQ2_XS => sys::LLAMA_FTYPE_MOSTLY_IQ2_XS,
        Q::IQ2_XXS => sys::LLAMA_FTYPE_MOSTLY_IQ2_XXS,
        Q::IQ1_M => sys::LLAMA_FTYPE_MOSTLY_IQ1_M,
        Q::IQ1_S => sys::LLAMA_FTYPE_MOSTLY_IQ1_S,
    }
}

/// Quantizes the GGUF file `input` into `output` as `ty`, with `threads`
/// threads (0: llama.cpp's choice), requantizing already quantized tensors
/// (the reference may itself be quantized), and with `imatrix` (weight name →
/// one importance per input column, per expert) when given.
pub fn quantize_file(
    input: &Path,
    output: &Path,
    ty: QuantType,
    threads: usize,
    imatrix: Option<&[(String, Vec<f32>)]>,
) -> Result<(), EngineError> {
    init();
    let c_path = |p: &Path| {
        CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| EngineError::Quantize {
            path: p.to_path_buf(),
            ty: ty.name(),
            reason: "the path contains a NUL byte".into(),
        })
    };
    let c_in = c_path(input)?;
    let c_out = c_path(output)?;
    // The names and the list must outlive the call; the data is borrowed
    // from `imatrix`, which does too.
    let names: Vec<CString> = imatrix
        .unwrap_or_default()
        .iter()
        .map(|(name, _)| CString::new(name.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|_| EngineError::Quantize {
            path: input.to_path_buf(),
            ty: ty.name(),
            reason: "an importance-matrix entry name contains a NUL byte".into(),
        })?;
    let mut list: Vec<sys::llama_model_imatrix_data> = imatrix
        .unwrap_or_default()
        .iter()
        .zip(&names)
        .map(|((_, data), name)| sys::llama_model_imatrix_data {
            name: name.as_ptr(),
            data: data.as_ptr(),
            size: data.len(),
        })
        .collect();
    list.push(sys::llama_model_imatrix_data {
        name: ptr::null(),
        data: ptr::null(),
        size: 0,
    });
    // SAFETY: returns a plain struct by value.
    let mut params = unsafe { sys::llama_model_quantize_default_params() };
    params.ftype = ftype(ty);
    params.nthread = i32::try_from(threads).unwrap_or(0);
    params.allow_requantize = true;
    if imatrix.is_some() {
        params.imatrix = list.as_ptr();
    }
    clear_last_error();
    // SAFETY: both paths are NUL-terminated; `params` and everything it
    // points to (the imatrix list, its names and data) live until the call
    // returns; llama.cpp copies the imatrix into its own map at the start.
    // Its C++ exceptions are caught inside `llama_model_quantize`.
    let status = unsafe { sys::llama_model_quantize(c_in.as_ptr(), c_out.as_ptr(), &params) };
    if status != 0 {
        return Err(EngineError::Quantize {
            path: input.to_path_buf(),
            ty: ty.name(),
            reason: take_last_error().unwrap_or_else(|| format!("status {status}")),
        });
    }
    Ok(())
}
