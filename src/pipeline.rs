//! `ggviz build` end to end: read each model, run it through llama.cpp on
//! the prompts, analyse what it did, and write the site.
//!
//! The stages keep DESIGN.md's one direction: the GGUF reader and anatomy
//! give the structure report; the engine gives one trace per prompt; the
//! analysis turns traces into numbers; the report carries them; the site
//! renders. The time of each stage is kept, shown on the page and printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::ProgressBar;

use crate::analysis::behaviour::{Analyser, Behaviour, PromptKind, next_token_loss};
use crate::analysis::embeddings::{self, EmbeddingError, EmbeddingOptions, undertrained};
use crate::analysis::lens::{NormKind, OutputHead};
use crate::analysis::prompts::{PromptError, PromptSpec, random_tokens};
use crate::engine::{
    CaptureOptions, Device, EngineError, HeadCapture, Intervention, Session, SessionOptions,
    TokenId,
};
use crate::report::ModelInfo;
use crate::report::behaviour::{BehaviourSection, shown_token_ids};
use crate::report::embeddings::EmbeddingsSection;
use crate::site::{self, BuildOptions, BuildSummary, ModelEntry, Site, SiteError};

/// How to run the models.
#[derive(Debug, Clone)]
pub struct InferenceOptions {
    pub prompts: Vec<PromptSpec>,
    pub session: SessionOptions,
    /// Measure each head's importance by zeroing it (one extra forward pass
    /// per head and prompt).
    pub ablation: bool,
    /// Where the analytics' matrix products run (the logit lens); `None`:
    /// where the model runs.
    pub analytics_device: Option<Device>,
}

/// What `ggviz build` was asked to do.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    pub site: BuildOptions,
    /// `None` builds structure only (`--no-inference`).
    pub inference: Option<InferenceOptions>,
    /// The embeddings view's analysis (run with or without inference).
    pub embeddings: EmbeddingOptions,
}

/// Where one model's build time went, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageTimes {
    pub model: String,
    /// Stage name → milliseconds, in the order they ran.
    pub stages: Vec<(&'static str, f64)>,
}

/// A failed build.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    #[error(transparent)]
    Site(#[from] SiteError),
    #[error(transparent)]
    Prompts(#[from] PromptError),
    #[error("cannot run {}", path.display())]
    Engine {
        path: PathBuf,
        #[source]
        source: Box<EngineError>,
    },
    #[error("cannot analyse the embeddings of {}", path.display())]
    Embeddings {
        path: PathBuf,
        #[source]
        source: EmbeddingError,
    },
    #[error("cannot run {}: prompt `{prompt}`", path.display())]
    Prompt {
        path: PathBuf,
        prompt: String,
        #[source]
        source: Box<EngineError>,
    },
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// Builds the site: every model's structure, and its behaviour unless
/// inference is off. Returns the summary and the time of every stage.
pub fn build(
    opts: &PipelineOptions,
    progress: &ProgressBar,
) -> Result<(BuildSummary, Vec<StageTimes>), PipelineError> {
    let start = Instant::now();
    let site = Site::prepare(&opts.site)?;
    let mut entries: Vec<ModelEntry> = Vec::new();
    let mut times = Vec::new();
    for path in &opts.site.models {
        let slug = site::slug_for(path, &site::slugs(&entries));
        let mut t = StageTimes {
            model: slug.clone(),
            stages: Vec::new(),
        };
        progress.set_message(format!("{slug}: reading the file"));
        let read = Instant::now();
        let mut report = site::model_report(path)?;
        t.stages.push(("read", ms(read)));
        progress.set_message(format!("{slug}: analysing the embeddings"));
        report.embeddings = Some(embeddings_section(path, &opts.embeddings, &mut t)?);
        if let Some(inference) = &opts.inference {
            let behaviour = behaviour(
                path,
                &report.model,
                inference,
                progress,
                &slug,
                &mut t,
                report.embeddings.as_mut(),
            )?;
            let (section, behaviour) = behaviour;
            BehaviourSection::add_head_metrics(&behaviour, &mut report.heads);
            report.behaviour = Some(section);
        }
        entries.push(ModelEntry { slug, report });
        times.push(t);
    }
    progress.set_message("rendering the site");
    let render = Instant::now();
    let summary = site.write(&entries, start)?;
    if let Some(last) = times.last_mut() {
        last.stages.push(("render", ms(render)));
    }
    Ok((summary, times))
}

/// The embeddings view's section for `path`, timed as stage `embeddings`
/// (its parts are logged at debug level).
fn embeddings_section(
    path: &Path,
    opts: &EmbeddingOptions,
    t: &mut StageTimes,
) -> Result<EmbeddingsSection, PipelineError> {
    let start = Instant::now();
    let err = |source| PipelineError::Embeddings {
        path: path.to_owned(),
        source,
    };
    let gguf = crate::gguf::GgufModel::open(path)
        .map_err(|e| err(EmbeddingError::Analysis(e.to_string())))?;
    let (section, parts) = embeddings::analyse(&gguf, opts).map_err(err)?;
    for (name, ms) in parts {
        tracing::debug!("embeddings {name}: {ms:.0} ms");
    }
    t.stages.push(("embeddings", ms(start)));
    Ok(section)
}

/// Token ids for a prompt, exactly as the model will see them.
fn prompt_ids(
    session: &Session,
    p: &PromptSpec,
) -> Result<(Vec<TokenId>, PromptKind), EngineError> {
    if let Some(r) = p.random_repeat {
        let n_vocab = session.dims(1).n_vocab as u32;
        // Control tokens (BOS, chat markers) would not be "random text".
        let seq = random_tokens(r.length, r.seed, n_vocab, |id| {
            session.token(id as TokenId).map_or(true, |t| t.special)
        });
        let mut ids: Vec<TokenId> = session.bos().into_iter().collect();
        for _ in 0..2 {
            ids.extend(seq.iter().map(|&id| id as TokenId));
        }
        return Ok((ids, PromptKind::RandomRepeat));
    }
    let text = p.text.as_deref().unwrap_or_default();
    let ids = session.tokenize(text)?.into_iter().map(|t| t.id).collect();
    Ok((ids, PromptKind::Text))
}

/// Runs the prompts through `path` and analyses the traces.
fn behaviour(
    path: &Path,
    model: &ModelInfo,
    opts: &InferenceOptions,
    progress: &ProgressBar,
    slug: &str,
    t: &mut StageTimes,
    embeddings: Option<&mut EmbeddingsSection>,
) -> Result<(BehaviourSection, Behaviour), PipelineError> {
    let engine_err = |source| PipelineError::Engine {
        path: path.to_owned(),
        source: Box::new(source),
    };
    progress.set_message(format!("{slug}: loading the model into llama.cpp"));
    let load = Instant::now();
    let mut session = Session::load(path, opts.session).map_err(engine_err)?;
    let head_name = session.output_weight_name();
    let gguf = session.gguf();
    let has = |name: &str| gguf.tensor(name).is_some();
    let (norm_weight, norm_bias) = (has("output_norm.weight"), has("output_norm.bias"));
    let norm_weight = if norm_weight {
        Some(
            session
                .dequantize("output_norm.weight")
                .map_err(engine_err)?,
        )
    } else {
        None
    };
    let norm_bias = if norm_bias {
        Some(session.dequantize("output_norm.bias").map_err(engine_err)?)
    } else {
        None
    };
    let hp = &model.hparams;
    let dims = session.dims(1);
    let (n_layer, n_head, n_embd, n_vocab) = (dims.n_layer, dims.n_head, dims.n_embd, dims.n_vocab);
    // The head stays as stored (quantized) and goes to the analytics device,
    // where ggml multiplies by it as llama.cpp does for the real output.
    let analytics_device = opts.analytics_device.unwrap_or(opts.session.device);
    let head_matrix = session
        .device_matrix(head_name, analytics_device, n_embd, n_vocab)
        .map_err(engine_err)?;
    t.stages.push(("load", ms(load)));

    let ones = vec![1f32; n_embd];
    let mut notes = Vec::new();
    let norm = match (&norm_weight, hp.norm_rms_eps, hp.norm_eps) {
        (None, _, _) => NormKind::Identity,
        (Some(_), Some(_), _) => NormKind::Rms,
        (Some(_), None, Some(_)) => NormKind::Layer,
        (Some(_), None, None) => {
            notes.push("no norm epsilon in the file: the lens assumes RMS norm, eps 1e-5".into());
            NormKind::Rms
        }
    };
    let head = OutputHead {
        product: head_matrix,
        norm_weight: norm_weight.as_deref().unwrap_or(&ones),
        norm_bias: norm_bias.as_deref(),
        norm,
        eps: hp.norm_rms_eps.or(hp.norm_eps).unwrap_or(1e-5) as f32,
        softcap: hp.final_logit_softcapping.map(|c| c as f32),
    };
    let mut analyser = Analyser::new(head, n_layer, n_head);
    let capture = CaptureOptions {
        heads: HeadCapture::Norms,
        final_norm: false,
        ..CaptureOptions::default()
    };
    let (mut inference_ms, mut analytics_ms) = (0.0, 0.0);
    let mut all_ids = Vec::new();
    for (i, p) in opts.prompts.iter().enumerate() {
        let prompt_err = |source| PipelineError::Prompt {
            path: path.to_owned(),
            prompt: p.name.clone(),
            source: Box::new(source),
        };
        progress.set_message(format!(
            "{slug}: prompt {}/{} `{}`",
            i + 1,
            opts.prompts.len(),
            p.name
        ));
        let run = Instant::now();
        let (ids, kind) = prompt_ids(&session, p).map_err(prompt_err)?;
        let trace = session.trace_ids(&ids, &capture).map_err(prompt_err)?;
        inference_ms += ms(run);
        let analyse = Instant::now();
        analyser
            .add(&p.name, kind, p.text.as_deref(), &trace)
            .map_err(prompt_err)?;
        analytics_ms += ms(analyse);
        all_ids.push(ids);
    }
    t.stages.push(("inference", inference_ms));

    let ablation = if opts.ablation {
        let run = Instant::now();
        let deltas =
            ablate(&mut session, &all_ids, n_layer, n_head, progress, slug).map_err(engine_err)?;
        t.stages.push(("ablation", ms(run)));
        Some(deltas)
    } else {
        None
    };

    if let Some(section) = embeddings {
        progress.set_message(format!("{slug}: verifying under-trained tokens"));
        let run = Instant::now();
        let ids: Vec<u32> = section
            .undertrained
            .candidates
            .iter()
            .take(undertrained::VERIFY_DEFAULT)
            .map(|c| c.id)
            .collect();
        let probabilities = undertrained::verify(&mut session, &ids).map_err(engine_err)?;
        section.set_verified(&probabilities);
        t.stages.push(("undertrained", ms(run)));
    }

    progress.set_message(format!("{slug}: analysing"));
    let analyse = Instant::now();
    let mut behaviour = analyser.finish(ablation);
    behaviour.notes.extend(notes);
    let vocab: BTreeMap<u32, String> = shown_token_ids(&behaviour)
        .into_iter()
        .filter_map(|id| session.token(id as TokenId).ok().map(|tok| (id, tok.piece)))
        .collect();
    analytics_ms += ms(analyse);
    t.stages.push(("analytics", analytics_ms));
    let timing = t
        .stages
        .iter()
        .map(|(name, ms)| ((*name).to_owned(), *ms))
        .collect();
    let section = BehaviourSection::new(&behaviour, vocab, timing);
    Ok((section, behaviour))
}

/// The increase in mean next-token loss, averaged over prompts, when each
/// head's output is zeroed (layer-major).
fn ablate(
    session: &mut Session,
    prompts: &[Vec<TokenId>],
    n_layer: usize,
    n_head: usize,
    progress: &ProgressBar,
    slug: &str,
) -> Result<Vec<f32>, EngineError> {
    let n_vocab = session.dims(1).n_vocab;
    let mut baseline = Vec::with_capacity(prompts.len());
    for ids in prompts {
        let logits = session.logits(ids)?;
        baseline.push(next_token_loss(&logits.data, n_vocab, ids));
    }
    let mut deltas = vec![0f32; n_layer * n_head];
    for l in 0..n_layer {
        progress.set_message(format!("{slug}: ablating the heads of layer {l}/{n_layer}"));
        for h in 0..n_head {
            let opts = CaptureOptions {
                interventions: vec![Intervention::ZeroHeads {
                    layer: l,
                    heads: vec![h],
                }],
                ..CaptureOptions::logits_only()
            };
            let mut sum = 0f32;
            for (ids, base) in prompts.iter().zip(&baseline) {
                let trace = session.trace_ids(ids, &opts)?;
                sum += next_token_loss(&trace.logits.data, n_vocab, ids) - base;
            }
            deltas[l * n_head + h] = sum / prompts.len().max(1) as f32;
        }
    }
    Ok(deltas)
}
