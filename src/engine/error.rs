//! Errors of the inference engine.
//!
//! llama.cpp reports most failures by returning null or a status code and
//! explains them only in its log; the engine turns each into a typed error
//! that names what was being done and, where llama.cpp logged a reason, says
//! it, so the CLI can print an actionable message instead of a bare code.

use std::path::PathBuf;

use crate::gguf::GgufError;

/// An error while loading a model into llama.cpp or running it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The GGUF file failed ggviz's own validation (done before llama.cpp
    /// sees it).
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// The file is well-formed but holds values llama.cpp cannot run with
    /// (it would assert and abort on some of them).
    #[error("{} cannot be run: {}", path.display(), problems.join("; "))]
    NotRunnable {
        path: PathBuf,
        problems: Vec<String>,
    },
    /// llama.cpp refused to load the model.
    #[error("llama.cpp could not load {path}{}", reason_suffix(.reason))]
    ModelLoad {
        path: PathBuf,
        /// The last error llama.cpp logged, if any.
        reason: Option<String>,
    },
    /// llama.cpp could not create an inference context.
    #[error("llama.cpp could not create a context for {n_ctx} tokens{}", reason_suffix(.reason))]
    Context { n_ctx: u32, reason: Option<String> },
    /// `llama_decode` returned a non-zero status.
    #[error("llama.cpp failed to decode the prompt (status {status}){}", reason_suffix(.reason))]
    Decode { status: i32, reason: Option<String> },
    /// The prompt tokenizes to more tokens than the run allows.
    #[error(
        "the prompt is {n_tokens} tokens long, more than the limit of {max_tokens}; \
         shorten it or raise --max-tokens (the trace grows with the square of the length)"
    )]
    PromptTooLong { n_tokens: usize, max_tokens: usize },
    /// The prompt tokenizes to nothing.
    #[error("the prompt is empty after tokenization")]
    EmptyPrompt,
    /// Text could not be tokenized or tokens turned back into text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The requested device does not exist or this build cannot use it.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A tensor ggviz reads itself (for per-head contributions or the output
    /// head) has a shape or type it cannot use.
    #[error("tensor {name}: {reason}")]
    Tensor { name: String, reason: String },
    /// A captured tensor did not have the shape the capture expected.
    #[error("captured tensor {name} has shape {ne:?}, expected {expected}")]
    CaptureShape {
        name: String,
        ne: [i64; 4],
        expected: String,
    },
    /// llama.cpp's quantizer could not make a file.
    #[error("quantizing {path} to {ty}: {reason}")]
    Quantize {
        path: PathBuf,
        ty: &'static str,
        reason: String,
    },
    /// llama.cpp's results hold NaN or infinite values (NaN or infinite
    /// weights or scales, or an overflow); `at` is the first place seen, in
    /// the order the model computes.
    #[error(
        "llama.cpp computed values that are not finite numbers, first in {at}: \
         the weights (or their quantization scales) hold NaN or infinite values, \
         or a computation overflows"
    )]
    NotFinite { at: String },
    /// A request that makes no sense for this model (a layer or head out of
    /// range, zero threads, ...).
    #[error("{0}")]
    InvalidRequest(String),
}

/// A device string that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceError {
    /// Not `cpu`, `cuda:N` or `vulkan:N`.
    #[error("unknown device `{0}`: expected `cpu`, `cuda:N` or `vulkan:N` (N = 0, 1, ...)")]
    Syntax(String),
    /// `vulkan:N` asked of a binary that links its backends statically.
    #[error(
        "device `{0}` comes from a backend library loaded at run time; rebuild ggviz \
         with `--features dynamic-backends` and build the library with \
         `scripts/build-backend.sh vulkan`"
    )]
    NeedsDynamicBackends(String),
    /// `cuda:N` asked of a binary built without the `cuda` feature.
    #[error(
        "device `{0}` needs CUDA, but this ggviz was built without it; \
         rebuild with `cargo build --release --features cuda`"
    )]
    CudaNotBuilt(String),
    /// The device is not among those llama.cpp found.
    #[error("device `{requested}` not found; llama.cpp sees: {}{}", list_or_none(.available), .hint)]
    NotFound {
        requested: String,
        available: Vec<String>,
        /// What to do about it (where the backend library comes from), or
        /// empty.
        hint: String,
    },
}

fn reason_suffix(reason: &Option<String>) -> String {
    reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default()
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "no accelerator".into()
    } else {
        names.join(", ")
    }
}
