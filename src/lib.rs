//! ggviz turns GGUF model files into self-contained, offline dashboards.
//!
//! The stages run in one direction: [`gguf`] reads and validates the file,
//! [`anatomy`] describes the architecture it contains, [`engine`] runs it
//! through llama.cpp and captures what it computes, and later stages build
//! the graph and render the site.

pub mod anatomy;
pub mod engine;
pub mod gguf;
pub mod inspect;
pub mod run;
