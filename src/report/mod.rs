//! Everything a model page shows, as one serde struct.
//!
//! [`ModelReport`] is the only contract between the Rust stages and the
//! page: the front end reads nothing else about the model. Its JSON shape is
//! documented in `docs/report.md`. Large numeric columns are [`Packed`]
//! typed arrays. Later stages add optional sections (attention, logit lens,
//! head features) as `Option` fields that are left out of the JSON when
//! absent, and the page shows a view only when its section is present.

pub mod behaviour;
pub mod embeddings;
pub mod family;
pub mod graph;
pub mod heads;
pub mod neighbour_code;
pub mod packed;
pub mod tensors;

use serde::Serialize;

use crate::anatomy::{Anatomy, HyperParams, TokenizerInfo};
use crate::graph::ArchGraph;

pub use behaviour::BehaviourSection;
pub use graph::GraphSection;
pub use heads::{HeadMetric, HeadSection, MetricScale};
pub use packed::{DType, Packed};
pub use tensors::{LayerInfo, TensorTable, TypeInfo, type_color};

/// Version of the report format, raised on incompatible changes.
pub const FORMAT: u32 = 1;

/// What the statistics panel and the site index show about the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub file_name: String,
    pub architecture: String,
    /// `general.file_type` as llama.cpp names it (`Q4_K_M`).
    pub file_type: Option<String>,
    pub size_label: Option<String>,
    pub gguf_version: u32,
    pub shards: usize,
    pub params: u64,
    pub file_bytes: u64,
    pub tensor_bytes: u64,
    /// Header, metadata, tensor index and padding.
    pub overhead_bytes: u64,
    pub avg_bits_per_weight: f64,
    pub tied_embeddings: bool,
    pub hparams: HyperParams,
    pub tokenizer: TokenizerInfo,
}

/// Everything a model page shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelReport {
    /// [`FORMAT`].
    pub format: u32,
    /// `ggviz <version>`.
    pub generator: String,
    pub model: ModelInfo,
    /// The ggml types in the file, largest share of bytes first.
    pub types: Vec<TypeInfo>,
    pub tensors: TensorTable,
    pub layers: Vec<LayerInfo>,
    pub graph: GraphSection,
    pub heads: HeadSection,
    /// What the model did with the prompts; absent for structure-only builds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behaviour: Option<BehaviourSection>,
    /// "Open in Graphistry" links, when the build uploaded the graphs
    /// (`--graphistry`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graphistry: Option<crate::fetch::graphistry::Links>,
    /// The embeddings view's data (token embeddings, neighbours, layout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embeddings: Option<embeddings::EmbeddingsSection>,
}

impl ModelReport {
    /// Gathers the structure report from the anatomy and its graph.
    pub fn build(a: &Anatomy, g: &ArchGraph) -> ModelReport {
        let acc = &a.accounting;
        ModelReport {
            format: FORMAT,
            generator: format!("ggviz {}", env!("CARGO_PKG_VERSION")),
            model: ModelInfo {
                name: a.name.clone(),
                file_name: a.file_name.clone(),
                architecture: a.architecture.clone(),
                file_type: a.file_type.clone(),
                size_label: a.size_label.clone(),
                gguf_version: a.gguf_version,
                shards: a.shards,
                params: acc.total_params,
                file_bytes: acc.file_bytes,
                tensor_bytes: acc.tensor_bytes,
                overhead_bytes: acc.overhead_bytes,
                avg_bits_per_weight: acc.avg_bits_per_weight,
                tied_embeddings: a.tied_embeddings,
                hparams: a.hparams.clone(),
                tokenizer: a.tokenizer.clone(),
            },
            types: tensors::types(a),
            tensors: tensors::tensors(a),
            layers: tensors::layers(a),
            graph: graph::section(a, g),
            heads: heads::section(g),
            behaviour: None,
            graphistry: None,
            embeddings: None,
        }
    }

    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }
}
