//! Quantization impact: what each member of a family of files of one model
//! changes against the family's reference. [`stats`] holds llama-perplexity's
//! output statistics as pure functions, [`output`] scores members on an
//! evaluation text, [`imatrix`] computes the importance matrix the quantizer
//! uses for the low-bit types. Every result is a serde struct, so it can
//! cross a process boundary unchanged.

pub mod generations;
pub mod imatrix;
pub mod layers;
pub mod lens_kl;
pub mod neighbours;
pub mod output;
pub mod speed;
pub mod stats;
pub mod weights;
