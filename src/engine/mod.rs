//! Running a model through llama.cpp and capturing what it computes.
//!
//! ggviz shows what a quantized model really computes, so the computing is
//! done by llama.cpp itself, in-process, and the engine listens to its
//! compute graph through the eval callback. [`Session`] loads a model once
//! and runs prompts; each captured run returns a [`Trace`]. All `unsafe`
//! code lives in [`ffi`]; `unsafe` is denied everywhere else in the engine.
//!
//! ```no_run
//! use ggviz::engine::{CaptureOptions, Session, SessionOptions};
//!
//! # fn main() -> Result<(), ggviz::engine::EngineError> {
//! let mut session = Session::load("model.gguf", SessionOptions::default())?;
//! let trace = session.trace("The capital of France is", &CaptureOptions::default())?;
//! let last = trace.logits.row(trace.tokens.len() - 1);
//! println!("{} tokens, {} logits at the last one", trace.tokens.len(), last.len());
//! # Ok(())
//! # }
//! ```
#![deny(unsafe_code)]

pub mod capture;
pub mod device;
pub mod error;
pub mod ffi;
mod heads;
mod observer;
pub mod quantize;
pub mod session;

pub use capture::{
    Attention, CaptureOptions, CaptureTiming, HeadCapture, HeadContributions, Intervention,
    LayerTrace, Matrix, Token, Trace, TraceDims,
};
pub use device::Device;
pub use error::{DeviceError, EngineError};
pub use ffi::TokenId;
pub use quantize::{QuantType, QuantizeRequest, Quantized, quantize_cached};
pub use session::{DEFAULT_MAX_TOKENS, Session, SessionOptions};

use crate::gguf::GgufModel;

/// Dequantizes tensor `name` of `gguf` to f32 with ggml's own dequantizer,
/// without loading the model into llama.cpp: analyses of the stored
/// weights (the embeddings view) need them with inference off too.
pub fn dequantize(gguf: &GgufModel, name: &str) -> Result<Vec<f32>, EngineError> {
    let mut out = Vec::new();
    heads::dequantize_tensor(gguf, name, &mut heads::TensorBytes::default(), &mut out)?;
    Ok(out)
}
