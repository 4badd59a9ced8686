//! ggviz turns GGUF model files into self-contained, offline dashboards.
//!
//! The stages run in one direction: [`gguf`] reads and validates the file,
//! [`anatomy`] describes the architecture it contains, [`graph`] turns it
//! into the graph of what the model computes, [`engine`] runs it through
//! llama.cpp and captures what it computes, [`report`] gathers everything a
//! page shows, and [`site`] renders the offline site. [`fetch`] brings
//! models from the Hugging Face Hub and, optionally, uploads graphs to
//! Graphistry.

pub mod analysis;
pub mod anatomy;
pub mod commands;
pub mod config;
pub mod engine;
pub mod family;
pub mod fetch;
pub mod gguf;
pub mod graph;
pub mod inspect;
pub mod pipeline;
pub mod report;
pub mod run;
pub mod site;
pub mod worker;
