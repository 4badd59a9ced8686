//! Analytics over captured inference: head features, clusters, pattern
//! similarity and the logit lens. Everything here is computed from what
//! llama.cpp produced on the model's own quantized weights.

pub mod behaviour;
pub mod clusters;
pub mod embeddings;
pub mod heads;
pub mod kernels;
pub mod lens;
pub mod prompts;
pub mod quant_impact;
pub mod similarity;
