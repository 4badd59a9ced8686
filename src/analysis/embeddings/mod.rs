//! The embeddings view's analysis: the model's own token-embedding matrix
//! (and the unembedding where it is separate), as stored in the GGUF file
//! and dequantized by ggml, for the whole vocabulary: neighbours, a PCA
//! projection and its faithfulness, k-means clusters, token properties,
//! under-trained candidates and word analogies.
//!
//! [`analyse`] needs only the file, so `--no-inference` builds have the view
//! too; [`undertrained::verify`] needs a llama.cpp session and fills in the
//! under-trained probabilities when inference is on.

pub mod analogies;
pub mod clusters;
pub mod int8;
pub mod matrix;
pub mod neighbours;
pub mod projection;
pub mod tokens;
pub mod umap;
pub mod undertrained;

use std::time::Instant;

use crate::engine::Device;
use crate::gguf::GgufModel;
use crate::report::embeddings::{EmbeddingsSection, MatrixSection};

use analogies::Quadruple;
use matrix::Matrix;
use tokens::Vocabulary;

/// What [`analyse`] computes and how.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EmbeddingOptions {
    /// Neighbours per token.
    pub k: usize,
    /// Dimensions of the reduced space the clusters and the page's free
    /// analogies work in.
    pub reduced_dims: usize,
    /// The analytics device: where the neighbour search's product runs when
    /// it is not the CPU's 8-bit kernel (see [`neighbours::search`]).
    #[serde(default)]
    pub device: Device,
    /// k-means groups.
    pub clusters: usize,
    /// Tokens the projection-quality figure is averaged over (all when the
    /// vocabulary is smaller: by default the whole vocabulary, which a k-d
    /// tree makes cheap).
    pub quality_sample: usize,
    /// Tokens the reduced search's recall is measured on.
    pub recall_sample: usize,
    /// Tokens in the reduced matrix the page answers free analogies with.
    pub analogy_subset: usize,
    pub analogies: Vec<Quadruple>,
    pub seed: u64,
    /// The UMAP layouts; `None` leaves them out (PCA only).
    #[serde(default = "default_umap")]
    pub umap: Option<umap::UmapOptions>,
}

fn default_umap() -> Option<umap::UmapOptions> {
    Some(umap::UmapOptions::default())
}

impl Default for EmbeddingOptions {
    fn default() -> Self {
        EmbeddingOptions {
            k: 10,
            reduced_dims: 64,
            device: Device::Cpu,
            clusters: 16,
            quality_sample: usize::MAX,
            recall_sample: 1000,
            analogy_subset: 2048,
            analogies: analogies::parse(analogies::BUNDLED, "content/analogies.toml")
                .unwrap_or_default(),
            seed: 0x6776,
            umap: default_umap(),
        }
    }
}

/// A failed embeddings analysis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbeddingError {
    #[error("tensor `{name}`: {reason}")]
    Tensor { name: String, reason: String },
    #[error("analogies {origin}: {reason}")]
    Analogies { origin: String, reason: String },
    #[error("{0}")]
    Analysis(String),
}

/// Stage times inside the analysis, milliseconds, for the bench output.
pub type Timings = Vec<(&'static str, f64)>;

/// Everything one matrix gives: neighbours, projection, clusters.
#[derive(Debug, Clone)]
pub struct MatrixAnalysis {
    pub name: String,
    pub norms: Vec<f32>,
    pub neighbours: neighbours::Neighbours,
    /// How the neighbours were found.
    pub method: neighbours::Method,
    /// Recall@k of the neighbours against an exact search on a sample of
    /// tokens (1 for the exact search), and the sample's size.
    pub recall: (f32, usize),
    pub coords: Matrix,
    pub explained: Vec<f32>,
    /// kNN preservation @k of the 3D and 2D PCA layouts.
    pub quality: [f32; 2],
    pub quality_sample: usize,
    /// UMAP of the neighbour graph, 3D and 2D, when asked for.
    pub umap: Option<UmapLayouts>,
    pub clusters: clusters::Clusters,
    /// Reduced unit rows (the candidate space), kept for free analogies.
    pub reduced: Matrix,
}

/// The UMAP layouts of one matrix and their faithfulness.
#[derive(Debug, Clone)]
pub struct UmapLayouts {
    /// `n × 3`.
    pub three: Matrix,
    /// `n × 2`.
    pub two: Matrix,
    /// kNN preservation @k of the 3D and 2D layouts (same sample as PCA's).
    pub quality: [f32; 2],
    pub epochs: usize,
}

/// Analyses one embedding matrix.
pub fn analyse_matrix(
    m: &Matrix,
    name: &str,
    opts: &EmbeddingOptions,
    timings: &mut Timings,
) -> Result<(MatrixAnalysis, Matrix), EmbeddingError> {
    let t = Instant::now();
    let unit = m.unit_rows();
    let basis = projection::pca(&unit, opts.reduced_dims, false)?;
    let reduced = basis.project(&unit);
    timings.push(("reduce", ms(t)));
    let t = Instant::now();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (nb, method) = neighbours::search(&unit, opts.k, opts.device, threads)?;
    timings.push(("neighbours", ms(t)));
    // The search's recall, measured on a sample against an exact f32
    // search (a few GFLOP), so the page can say how far to trust it.
    let t = Instant::now();
    let recall = if method == neighbours::Method::Exact {
        (1.0, m.n_rows)
    } else {
        let sample = projection::sample(m.n_rows, opts.recall_sample);
        let truth = neighbours::exact_for(&unit, &sample, opts.k);
        (
            neighbours::recall(&nb, &truth, &sample) as f32,
            sample.len(),
        )
    };
    timings.push(("recall", ms(t)));
    let t = Instant::now();
    let layout = projection::pca(m, 3, true)?;
    let coords = layout.project(m);
    let sample = projection::sample(m.n_rows, opts.quality_sample);
    let quality = [
        projection::knn_preservation(&coords, 3, &nb, &sample),
        projection::knn_preservation(&coords, 2, &nb, &sample),
    ];
    timings.push(("projection", ms(t)));
    let umap = match &opts.umap {
        Some(u) => {
            let t = Instant::now();
            let (three, two) = umap::layouts(&nb, &coords, u);
            timings.push(("umap", ms(t)));
            let t = Instant::now();
            let quality = [
                projection::knn_preservation(&three, 3, &nb, &sample),
                projection::knn_preservation(&two, 2, &nb, &sample),
            ];
            timings.push(("umap quality", ms(t)));
            Some(UmapLayouts {
                three,
                two,
                quality,
                epochs: u.epochs.unwrap_or_else(|| umap::default_epochs(m.n_rows)),
            })
        }
        None => None,
    };
    let t = Instant::now();
    let clusters = clusters::kmeans(&reduced, opts.clusters, opts.seed, 8)?;
    timings.push(("clusters", ms(t)));
    Ok((
        MatrixAnalysis {
            name: name.to_owned(),
            norms: m.norms(),
            neighbours: nb,
            method,
            recall,
            coords,
            explained: layout.explained,
            quality,
            quality_sample: sample.len(),
            umap,
            clusters,
            reduced,
        },
        unit,
    ))
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// The embeddings section of `gguf`'s page, and where its time went.
pub fn analyse(
    gguf: &GgufModel,
    opts: &EmbeddingOptions,
) -> Result<(EmbeddingsSection, Timings), EmbeddingError> {
    analyse_with(gguf, opts, None)
}

/// Whether the under-trained indicator needs the decode→encode round trip:
/// a tied model (no `output.weight`) whose file marks no token unused.
pub fn needs_round_trip(gguf: &GgufModel) -> bool {
    let n = gguf
        .get("tokenizer.ggml.tokens")
        .and_then(|v| v.as_array())
        .map_or(0, |a| a.len());
    let vocab = Vocabulary::from_gguf(gguf, n);
    gguf.tensor("output.weight").is_none() && !vocab.types.contains(&tokens::token_type::UNUSED)
}

/// [`analyse`], with the tokens whose decode→encode round trip fails
/// ([`undertrained::round_trip_failures`]) when the caller could compute
/// them (it needs llama.cpp's tokenizer).
pub fn analyse_with(
    gguf: &GgufModel,
    opts: &EmbeddingOptions,
    round_trip: Option<&[u32]>,
) -> Result<(EmbeddingsSection, Timings), EmbeddingError> {
    let mut timings = Timings::new();
    let t = Instant::now();
    let embd = Matrix::load(gguf, "token_embd.weight")?;
    let output = if gguf.tensor("output.weight").is_some() {
        Some(Matrix::load(gguf, "output.weight")?)
    } else {
        None
    };
    let vocab = Vocabulary::from_gguf(gguf, embd.n_rows);
    timings.push(("dequantize", ms(t)));
    let tied = output.is_none();
    let (input, unit) = analyse_matrix(&embd, "token_embd.weight", opts, &mut timings)?;
    let t = Instant::now();
    let under = undertrained::indicator(&embd, &vocab, tied, round_trip);
    let results = analogies::evaluate(&unit, &vocab.pieces, &opts.analogies);
    timings.push(("analogies", ms(t)));
    drop(unit);
    let output = match &output {
        Some(o) if o.n_rows == embd.n_rows && o.dim == embd.dim => {
            Some(analyse_matrix(o, "output.weight", opts, &mut timings)?.0)
        }
        _ => None,
    };
    let t = Instant::now();
    let mut matrices = vec![MatrixSection::new(&input, "input embedding")];
    if let Some(o) = &output {
        matrices.push(MatrixSection::new(o, "output (unembedding)"));
    }
    let section = EmbeddingsSection::new(
        &vocab,
        embd.dim,
        tied,
        matrices,
        &input.reduced,
        &under,
        &results,
        opts.analogy_subset,
    );
    timings.push(("encode", ms(t)));
    Ok((section, timings))
}
