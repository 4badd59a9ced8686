//! Making quantized members of a family from a reference file, with
//! llama.cpp's own quantizer, into a cache folder that is reused when the same
//! reference was already quantized with the same settings.
//!
//! The type names are llama-quantize's (`Q4_K_M`, `IQ3_XS`, ...). Which types
//! need an importance matrix follows llama.cpp's own gate
//! (`tensor_requires_imatrix` and the mixes of `llama_tensor_get_type` in
//! `src/llama-quant.cpp`): checking it here gives a message naming the type
//! before llama.cpp has read anything.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::EngineError;
use super::ffi::quantize::quantize_file;

/// A llama.cpp file type (`llama_ftype`), by llama-quantize's name.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum QuantType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q6_K,
    Q5_K_M,
    Q5_K_S,
    Q5_1,
    Q5_0,
    Q4_K_M,
    Q4_K_S,
    Q4_1,
    Q4_0,
    IQ4_NL,
    IQ4_XS,
    Q3_K_L,
    Q3_K_M,
    Q3_K_S,
    IQ3_M,
    IQ3_S,
    IQ3_XS,
    IQ3_XXS,
    Q2_K,
    Q2_K_S,
    IQ2_M,
    IQ2_S,
    IQ2_XS,
    IQ2_XXS,
    IQ1_M,
    IQ1_S,
}

impl QuantType {
    /// Every type, from the most bits to the fewest.
    pub const ALL: [QuantType; 30] = {
        use QuantType as Q;
        [
            Q::F32,
            Q::F16,
            Q::BF16,
            Q::Q8_0,
            Q::Q6_K,
            Q::Q5_K_M,
            Q::Q5_K_S,
            Q::Q5_1,
            Q::Q5_0,
            Q::Q4_K_M,
            Q::Q4_K_S,
            Q::Q4_1,
            Q::Q4_0,
            Q::IQ4_NL,
            Q::IQ4_XS,
            Q::Q3_K_L,
            Q::Q3_K_M,
            Q::Q3_K_S,
            Q::IQ3_M,
            Q::IQ3_S,
            Q::IQ3_XS,
            Q::IQ3_XXS,
            Q::Q2_K,
            Q::Q2_K_S,
            Q::IQ2_M,
            Q::IQ2_S,
            Q::IQ2_XS,
            Q::IQ2_XXS,
            Q::IQ1_M,
            Q::IQ1_S,
        ]
    };

    /// llama-quantize's name for the type.
    pub fn name(self) -> &'static str {
        use QuantType as Q;
        match self {
            Q::F32 => "F32",
            Q::F16 => "F16",
            Q::BF16 => "BF16",
            Q::Q8_0 => "Q8_0",
            Q::Q6_K => "Q6_K",
            Q::Q5_K_M => "Q5_K_M",
            Q::Q5_K_S => "Q5_K_S",
            Q::Q5_1 => "Q5_1",
            Q::Q5_0 => "Q5_0",
            Q::Q4_K_M => "Q4_K_M",
            Q::Q4_K_S => "Q4_K_S",
            Q::Q4_1 => "Q4_1",
            Q::Q4_0 => "Q4_0",
            Q::IQ4_NL => "IQ4_NL",
            Q::IQ4_XS => "IQ4_XS",
            Q::Q3_K_L => "Q3_K_L",
            Q::Q3_K_M => "Q3_K_M",
            Q::Q3_K_S => "Q3_K_S",
            Q::IQ3_M => "IQ3_M",
            Q::IQ3_S => "IQ3_S",
            Q::IQ3_XS => "IQ3_XS",
            Q::IQ3_XXS => "IQ3_XXS",
            Q::Q2_K => "Q2_K",
            Q::Q2_K_S => "Q2_K_S",
            Q::IQ2_M => "IQ2_M",
            Q::IQ2_S => "IQ2_S",
            Q::IQ2_XS => "IQ2_XS",
            Q::IQ2_XXS => "IQ2_XXS",
            Q::IQ1_M => "IQ1_M",
            Q::IQ1_S => "IQ1_S",
        }
    }

    /// Whether llama.cpp refuses to make this type without an importance
    /// matrix: the types whose mix puts IQ3_XXS, IQ2_XXS, IQ2_XS, IQ2_S,
    /// IQ1_M or IQ1_S on some tensor, and Q2_K_S.
    pub fn needs_imatrix(self) -> bool {
        use QuantType as Q;
        matches!(
            self,
            Q::IQ3_XS
                | Q::IQ3_XXS
                | Q::Q2_K_S
                | Q::IQ2_M
                | Q::IQ2_S
                | Q::IQ2_XS
                | Q::IQ2_XXS
                | Q::IQ1_M
                | Q::IQ1_S
        )
    }
}

impl fmt::Display for QuantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for QuantType {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        QuantType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| {
                EngineError::InvalidRequest(format!(
                    "unknown quantization type `{wanted}`; known: {}",
                    QuantType::ALL.map(QuantType::name).join(", ")
                ))
            })
    }
}

/// An importance matrix as the quantizer takes it: for each weight
/// (`blk.0.attn_q.weight`), one value per input column (per expert, experts
/// one after another), the mean squared activation that column met.
pub type ImatrixValues = Vec<(String, Vec<f32>)>;

/// One request to make a quantized file.
#[derive(Debug, Clone, Copy)]
pub struct QuantizeRequest<'a> {
    /// The reference file everything is made from.
    pub reference: &'a Path,
    /// The type to make.
    pub ty: QuantType,
    /// The cache root; the file goes to
    /// `<cache>/<key of reference and settings>/<TYPE>.gguf`.
    pub cache: &'a Path,
    /// Quantizer threads (0: llama.cpp's choice).
    pub threads: usize,
    /// The importance matrix, if any (required by [`QuantType::needs_imatrix`]).
    pub imatrix: Option<&'a ImatrixValues>,
}

/// What [`quantize_cached`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantized {
    /// The quantized file.
    pub path: PathBuf,
    /// The type made.
    pub ty: QuantType,
    /// Whether the file was already in the cache.
    pub reused: bool,
    /// Whether an importance matrix was used.
    pub with_imatrix: bool,
    /// Time spent quantizing (0 when reused), in milliseconds.
    pub ms: f64,
}

/// The cache folder for `reference` with `imatrix`: a digest of the
/// reference's canonical path, size and modification time, of the importance
/// matrix's contents, and of the quantizer's version, so a changed reference,
/// a different matrix or another llama.cpp never reuses a stale file.
pub fn cache_dir(
    cache: &Path,
    reference: &Path,
    imatrix: Option<&ImatrixValues>,
) -> Result<PathBuf, EngineError> {
    let io = |e: std::io::Error| EngineError::Quantize {
        path: reference.to_path_buf(),
        ty: "-",
        reason: e.to_string(),
    };
    let meta = fs::metadata(reference).map_err(io)?;
    let canonical = fs::canonicalize(reference).map_err(io)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let mut h = Sha256::new();
    h.update(b"ggviz-quant-v1\0llama-cpp-sys-2 0.1.161\0");
    h.update(canonical.as_os_str().as_encoded_bytes());
    h.update(meta.len().to_le_bytes());
    h.update(mtime.to_le_bytes());
    match imatrix {
        None => h.update(b"\0no-imatrix"),
        Some(entries) => {
            for (name, values) in entries {
                h.update(name.as_bytes());
                h.update([0]);
                for v in values {
                    h.update(v.to_le_bytes());
                }
            }
        }
    }
    let digest = h.finalize();
    let key: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    Ok(cache.join(key))
}

/// Makes `request.ty` from the reference, or reuses the file a previous call
/// made with the same reference and settings. The file is written under a
/// temporary name and renamed when complete, so an interrupted run never
/// leaves a file the cache would take for finished.
pub fn quantize_cached(request: &QuantizeRequest<'_>) -> Result<Quantized, EngineError> {
    let ty = request.ty;
    if ty.needs_imatrix() && request.imatrix.is_none() {
        return Err(EngineError::Quantize {
            path: request.reference.to_path_buf(),
            ty: ty.name(),
            reason: format!(
                "{} needs an importance matrix (llama.cpp refuses to make it without one); \
                 add --imatrix or pick a type without the IQ1/IQ2/IQ3_XXS tensors",
                ty.name()
            ),
        });
    }
    // K- and legacy types use a matrix too when given one.
    let imatrix = request.imatrix;
    let dir = cache_dir(request.cache, request.reference, imatrix)?;
    let path = dir.join(format!("{}.gguf", ty.name()));
    let done = |reused: bool, ms: f64| Quantized {
        path: path.clone(),
        ty,
        reused,
        with_imatrix: imatrix.is_some(),
        ms,
    };
    if path.is_file() {
        return Ok(done(true, 0.0));
    }
    let io = |e: std::io::Error| EngineError::Quantize {
        path: dir.clone(),
        ty: ty.name(),
        reason: e.to_string(),
    };
    fs::create_dir_all(&dir).map_err(io)?;
    let partial = dir.join(format!(
        ".{}.gguf.partial-{}",
        ty.name(),
        std::process::id()
    ));
    let start = std::time::Instant::now();
    let made = quantize_file(
        request.reference,
        &partial,
        ty,
        request.threads,
        imatrix.map(Vec::as_slice),
    );
    if let Err(e) = made {
        let _ = fs::remove_file(&partial);
        return Err(e);
    }
    fs::rename(&partial, &path).map_err(io)?;
    Ok(done(false, start.elapsed().as_secs_f64() * 1e3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known_ones() {
        for t in QuantType::ALL {
            assert_eq!(t.name().parse::<QuantType>().ok(), Some(t));
        }
        assert_eq!("q4_k_m".parse::<QuantType>().ok(), Some(QuantType::Q4_K_M));
        let err = "Q4_K_X".parse::<QuantType>().unwrap_err().to_string();
        assert!(err.contains("Q4_K_X") && err.contains("IQ3_XS"), "{err}");
    }

    #[test]
    fn imatrix_types_are_refused_without_one_naming_the_type() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reference = dir.path().join("ref.gguf");
        fs::write(&reference, b"not read").expect("write");
        let err = quantize_cached(&QuantizeRequest {
            reference: &reference,
            ty: QuantType::IQ2_XS,
            cache: dir.path(),
            threads: 1,
            imatrix: None,
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("IQ2_XS") && err.contains("importance matrix"),
            "{err}"
        );
    }

    #[test]
    fn the_cache_key_changes_with_the_matrix_and_the_reference() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reference = dir.path().join("ref.gguf");
        fs::write(&reference, b"one").expect("write");
        let a = cache_dir(dir.path(), &reference, None).expect("key");
        assert_eq!(a, cache_dir(dir.path(), &reference, None).expect("key"));
        let m = vec![("blk.0.attn_q.weight".to_string(), vec![1.0f32, 2.0])];
        let b = cache_dir(dir.path(), &reference, Some(&m)).expect("key");
        assert_ne!(a, b);
        fs::write(&reference, b"other").expect("write");
        assert_ne!(a, cache_dir(dir.path(), &reference, None).expect("key"));
    }
}
