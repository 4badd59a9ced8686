//! ggviz turns GGUF model files into self-contained, offline dashboards.
//!
//! The stages run in one direction: [`gguf`] reads and validates the file,
//! [`anatomy`] describes the architecture it contains, and later stages
//! build the graph, capture inference and render the site.

pub mod analysis;
pub mod anatomy;
pub mod gguf;
pub mod inspect;
