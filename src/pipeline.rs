//! `ggviz build` end to end: read each model, run it through llama.cpp on
//! the prompts, analyse what it did, and write the site.
//!
//! The stages keep DESIGN.md's one direction: the GGUF reader and anatomy
//! give the structure report; the engine gives one trace per prompt; the
//! analysis turns traces into numbers; the report carries them; the site
//! renders. The time of each stage is kept, shown on the page and printed.
//! A model's run (the engine and the analyses of its traces) is one job,
//! [`analyse_behaviour`], which the CLI runs in a worker process (see
//! [`crate::worker`]) so that llama.cpp aborting on one file cannot take
//! the build down.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::analysis::behaviour::{Analyser, PromptKind, next_token_loss};
use crate::analysis::embeddings::{self, EmbeddingError, EmbeddingOptions, undertrained};
use crate::analysis::kernels;
use crate::analysis::lens::{NormKind, OutputHead};
use crate::analysis::prompts::{PromptError, PromptSpec, random_tokens};
use crate::analysis::quant_impact::output::EvalOptions;
use crate::anatomy::{Anatomy, runnable};
use crate::engine::QuantType;
use crate::engine::{
    CaptureOptions, Device, EngineError, HeadCapture, Intervention, Session, SessionOptions,
    TokenId,
};
use crate::family::{self, FamilyError};
use crate::fetch::graphistry;
use crate::report::behaviour::{BehaviourSection, shown_token_ids};
use crate::report::embeddings::EmbeddingsSection;
use crate::report::family::FamilyReport;
use crate::report::{HeadMetric, ModelReport};
use crate::site::{self, BuildOptions, BuildSummary, FamilyEntry, ModelEntry, Site, SiteError};
use crate::worker::{self, Event, Isolation, Job, Output, WorkerError};

/// How to run the models.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default)]
pub struct PipelineOptions {
    pub site: BuildOptions,
    /// `None` builds structure only (`--no-inference`).
    pub inference: Option<InferenceOptions>,
    /// Where llama.cpp's work runs: in a worker process (the CLI), so a
    /// model that makes llama.cpp abort fails alone, or in this process.
    pub isolation: Isolation,
    /// Upload the graphs to Graphistry and link them (`--graphistry`);
    /// `None`: no network at all.
    pub graphistry: Option<graphistry::Request>,
    /// The embeddings view's analysis (run with or without inference);
    /// `None` leaves the view out (`--no-embeddings`).
    pub embeddings: Option<EmbeddingOptions>,
}

/// Where one model's build time went, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageTimes {
    pub model: String,
    /// Stage name → milliseconds, in the order they ran.
    pub stages: Vec<(String, f64)>,
}

/// What running a model adds to its structure report: the behaviour
/// section, the head metrics it gives the head map, and the time of each
/// stage. It is made where llama.cpp runs (a worker process) and crosses
/// back as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelAnalysis {
    pub behaviour: BehaviourSection,
    pub head_metrics: Vec<HeadMetric>,
    /// The repetition probability of each under-trained candidate asked
    /// about, in the order asked.
    pub undertrained: Vec<f32>,
    pub stages: Vec<(String, f64)>,
}

impl ModelAnalysis {
    /// Adds the analysis to `report` and its stage times to `times`.
    pub fn apply(self, report: &mut ModelReport, times: &mut StageTimes) {
        report.heads.metrics.extend(self.head_metrics);
        report.behaviour = Some(self.behaviour);
        if let Some(section) = report.embeddings.as_mut()
            && !self.undertrained.is_empty()
        {
            section.set_verified(&self.undertrained);
        }
        times.stages.extend(self.stages);
    }
}

/// A failed build.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// Forming or measuring a family failed.
    #[error(transparent)]
    Family(Box<FamilyError>),
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
    #[error(
        "--graphistry=required, but no Graphistry credentials are in the environment \
             (GRAPHISTRY_USERNAME and GRAPHISTRY_PASSWORD, or GRAPHISTRY_PERSONAL_KEY_ID and \
             GRAPHISTRY_PERSONAL_KEY_SECRET)"
    )]
    GraphistryCredentials,
    #[error("{slug}: the Graphistry upload failed (--graphistry=required)")]
    Graphistry {
        slug: String,
        #[source]
        source: graphistry::GraphistryError,
    },
    #[error("cannot run {}: prompt `{prompt}`", path.display())]
    Prompt {
        path: PathBuf,
        prompt: String,
        #[source]
        source: Box<EngineError>,
    },
    #[error("cannot analyse the embeddings of {}", path.display())]
    Embeddings {
        path: PathBuf,
        #[source]
        source: EmbeddingError,
    },
    /// A model's run failed in its worker process (llama.cpp aborted, or
    /// the run failed there); the other models' work is not lost, but the
    /// site is not replaced.
    #[error("cannot analyse {}", path.display())]
    Worker {
        path: PathBuf,
        #[source]
        source: Box<WorkerError>,
    },
}

impl From<FamilyError> for PipelineError {
    fn from(e: FamilyError) -> Self {
        PipelineError::Family(Box::new(e))
    }
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
    build_named(opts, &[], progress)
}

/// [`build`], showing model `i` under `names[i]` when it is given (the
/// display names of `ggviz.toml`).
pub fn build_named(
    opts: &PipelineOptions,
    names: &[Option<String>],
    progress: &ProgressBar,
) -> Result<(BuildSummary, Vec<StageTimes>), PipelineError> {
    build_with_families(opts, names, None, progress)
}

/// [`build_named`], plus family pages for the files of one model among
/// `opts.site.models` when `families` is given (see [`family_entries`]).
pub fn build_with_families(
    opts: &PipelineOptions,
    names: &[Option<String>],
    families: Option<&FamilyOptions>,
    progress: &ProgressBar,
) -> Result<(BuildSummary, Vec<StageTimes>), PipelineError> {
    let start = Instant::now();
    if let Some(g) = &opts.graphistry
        && g.mode == graphistry::Mode::Required
        && g.credentials.is_none()
    {
        return Err(PipelineError::GraphistryCredentials);
    }
    let site = Site::prepare(&opts.site)?;
    let mut entries: Vec<ModelEntry> = Vec::new();
    let mut times = Vec::new();
    for (i, path) in opts.site.models.iter().enumerate() {
        let slug = site::slug_for(path, &site::slugs(&entries));
        let (mut entry, t) = analyse_model(path, &slug, opts, progress)?;
        if let Some(Some(name)) = names.get(i) {
            set_display_name(&mut entry, name);
        }
        entries.push(entry);
        times.push(t);
    }
    if let Some(g) = &opts.graphistry {
        graphistry_links(&mut entries, g, progress)?;
    }
    let family_pages = match families {
        Some(f) => family_entries(&opts.site.models, &entries, f, &opts.isolation, progress)?,
        None => Vec::new(),
    };
    progress.set_message("rendering the site");
    let render = Instant::now();
    let summary = site.write_with_families(&entries, &family_pages, start)?;
    if let Some(last) = times.last_mut() {
        last.stages.push(("render".into(), ms(render)));
    }
    Ok((summary, times))
}

/// Uploads every model's graphs to Graphistry and puts the links in its
/// report. Without credentials nothing is sent; a failed upload is a
/// warning naming the step and status, or an error when required.
fn graphistry_links(
    entries: &mut [ModelEntry],
    request: &graphistry::Request,
    progress: &ProgressBar,
) -> Result<(), PipelineError> {
    let Some(credentials) = &request.credentials else {
        tracing::warn!(
            "--graphistry: no Graphistry credentials in the environment; the pages have no \
             Graphistry links"
        );
        return Ok(());
    };
    for entry in entries {
        progress.set_message(format!("{}: uploading to Graphistry", entry.slug));
        match graphistry::upload(credentials, &entry.report, request.head_threshold) {
            Ok(links) => entry.report.graphistry = Some(links),
            Err(source) if request.mode == graphistry::Mode::Required => {
                return Err(PipelineError::Graphistry {
                    slug: entry.slug.clone(),
                    source,
                });
            }
            Err(e) => tracing::warn!("{}: {e}; the page has no Graphistry link", entry.slug),
        }
    }
    Ok(())
}

/// Shows `entry` under `name` (a display name from the project file).
pub fn set_display_name(entry: &mut ModelEntry, name: &str) {
    entry.report.model.name = name.to_owned();
}

/// One model's page data: its structure, and its behaviour unless
/// inference is off (run where `opts.isolation` says). `slug` is its folder
/// in the site.
pub fn analyse_model(
    path: &Path,
    slug: &str,
    opts: &PipelineOptions,
    progress: &ProgressBar,
) -> Result<(ModelEntry, StageTimes), PipelineError> {
    let mut t = StageTimes {
        model: slug.to_owned(),
        stages: Vec::new(),
    };
    progress.set_message(format!("{slug}: reading the file"));
    let read = Instant::now();
    let mut report = site::model_report(path)?;
    t.stages.push(("read".into(), ms(read)));
    let run = |job: &Job| {
        worker::run_job(job, &opts.isolation, &mut |event| match event {
            Event::Progress(m) => progress.set_message(format!("{slug}: {m}")),
            Event::Log(line) => progress.suspend(|| eprintln!("{line}")),
        })
        .map_err(|source| PipelineError::Worker {
            path: path.to_owned(),
            source: Box::new(source),
        })
    };
    let unexpected = || PipelineError::Worker {
        path: path.to_owned(),
        source: Box::new(WorkerError::Protocol {
            file: path.to_owned(),
            reason: "the answer to another job".into(),
        }),
    };
    // The embeddings need no prompts, so `--no-inference` has them too;
    // ggml dequantizes and multiplies, so they run where llama.cpp does.
    let mut candidates = Vec::new();
    if let Some(options) = &opts.embeddings {
        // The neighbour search's product runs on the analytics device.
        let mut options = options.clone();
        if let Some(inference) = &opts.inference {
            options.device = inference
                .analytics_device
                .unwrap_or(inference.session.device);
        }
        let Output::Embeddings(section, stages) = run(&Job::Embeddings {
            path: path.to_owned(),
            options,
        })?
        else {
            return Err(unexpected());
        };
        t.stages.extend(stages);
        candidates = section
            .undertrained
            .candidates
            .iter()
            .take(undertrained::VERIFY_DEFAULT)
            .map(|c| c.id)
            .collect();
        report.embeddings = Some(*section);
    }
    if let Some(inference) = &opts.inference {
        let Output::Analyse(analysis) = run(&Job::Analyse {
            path: path.to_owned(),
            options: inference.clone(),
            undertrained: candidates,
        })?
        else {
            return Err(unexpected());
        };
        analysis.apply(&mut report, &mut t);
    }
    let entry = ModelEntry {
        slug: slug.to_owned(),
        report,
    };
    Ok((entry, t))
}

/// The embeddings view's section for the model at `path` and the time of
/// its parts: the embeddings stage of a build, run where llama.cpp runs.
pub fn analyse_embeddings(
    path: &Path,
    opts: &EmbeddingOptions,
) -> Result<(EmbeddingsSection, Vec<(String, f64)>), PipelineError> {
    let start = Instant::now();
    let err = |source| PipelineError::Embeddings {
        path: path.to_owned(),
        source,
    };
    let gguf = crate::gguf::GgufModel::open(path)
        .map_err(|e| err(EmbeddingError::Analysis(e.to_string())))?;
    // A matrix whose shape disagrees with the hyperparameters would be read
    // row by wrong row: refuse it with the shapes, as the engine would.
    Anatomy::from_model(&gguf)
        .map_err(|e| e.to_string())
        .and_then(|a| runnable::check_embedding(&a).map_err(|e| e.to_string()))
        .map_err(|e| err(EmbeddingError::Analysis(e)))?;
    // A tied model whose file marks no token unused: the under-trained
    // indicator's reference set is the tokens whose decode→encode round
    // trip fails, through llama.cpp's tokenizer (vocabulary only, no
    // weights). A vocabulary llama.cpp cannot load leaves the row norm.
    let round_trip = if embeddings::needs_round_trip(&gguf) {
        let t = Instant::now();
        let vocab = embeddings::tokens::Vocabulary::from_gguf(&gguf, gguf_vocab_rows(&gguf));
        let failed = crate::engine::ffi::Model::load_vocab(path)
            .map(|m| undertrained::round_trip_failures(&m, &vocab));
        tracing::debug!("embeddings round trip: {:.0} ms", ms(t));
        match failed {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!("decode→encode round trip not run: {e}");
                None
            }
        }
    } else {
        None
    };
    let (section, parts) =
        embeddings::analyse_with(&gguf, opts, round_trip.as_deref()).map_err(err)?;
    for (name, ms) in parts {
        tracing::debug!("embeddings {name}: {ms:.0} ms");
    }
    Ok((section, vec![("embeddings".into(), ms(start))]))
}

/// Rows of `token_embd.weight` (the vocabulary the view shows).
fn gguf_vocab_rows(gguf: &crate::gguf::GgufModel) -> usize {
    gguf.tensor("token_embd.weight")
        .and_then(|t| t.dims.get(1).copied())
        .map_or(0, |d| d as usize)
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

/// Runs the prompts through the model at `path` and analyses the traces:
/// the model stage of a build, run where llama.cpp runs (see
/// [`crate::worker`]). `progress` hears what it is doing.
pub fn analyse_behaviour(
    path: &Path,
    opts: &InferenceOptions,
    undertrained_candidates: &[u32],
    progress: &dyn Fn(&str),
) -> Result<ModelAnalysis, PipelineError> {
    let mut stages: Vec<(String, f64)> = Vec::new();
    let engine_err = |source| PipelineError::Engine {
        path: path.to_owned(),
        source: Box::new(source),
    };
    progress("loading the model into llama.cpp");
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
    let anatomy = Anatomy::from_model(session.gguf()).map_err(|source| {
        PipelineError::Site(SiteError::Anatomy {
            path: path.to_owned(),
            source,
        })
    })?;
    let hp = &anatomy.hparams;
    let dims = session.dims(1);
    let (n_layer, n_head, n_embd, n_vocab) = (dims.n_layer, dims.n_head, dims.n_embd, dims.n_vocab);
    // The head stays as stored (quantized) and goes to the analytics device,
    // where ggml multiplies by it as llama.cpp does for the real output.
    let analytics_device = opts.analytics_device.unwrap_or(opts.session.device);
    let head_matrix = session
        .device_matrix(head_name, analytics_device, n_embd, n_vocab)
        .map_err(engine_err)?;
    stages.push(("load".into(), ms(load)));

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
    let (mut inference_ms, mut analytics_ms, mut kernel_ms) = (0.0, 0.0, 0.0);
    let mut gaps = Vec::with_capacity(opts.prompts.len());
    let mut all_ids = Vec::new();
    for (i, p) in opts.prompts.iter().enumerate() {
        let prompt_err = |source| PipelineError::Prompt {
            path: path.to_owned(),
            prompt: p.name.clone(),
            source: Box::new(source),
        };
        progress(&format!(
            "prompt {}/{} `{}`",
            i + 1,
            opts.prompts.len(),
            p.name
        ));
        let run = Instant::now();
        let (ids, kind) = prompt_ids(&session, p).map_err(prompt_err)?;
        let trace = session.trace_ids(&ids, &capture).map_err(prompt_err)?;
        inference_ms += ms(run);
        let as_run = Instant::now();
        let reference = session.logits_as_run(&ids).map_err(prompt_err)?;
        kernel_ms += ms(as_run);
        gaps.push(kernels::compare(
            &trace.logits.data,
            &reference.data,
            n_vocab,
        ));
        let analyse = Instant::now();
        analyser
            .add(&p.name, kind, p.text.as_deref(), &trace)
            .map_err(prompt_err)?;
        analytics_ms += ms(analyse);
        all_ids.push(ids);
    }
    stages.push(("inference".into(), inference_ms));
    stages.push(("kernel check".into(), kernel_ms));

    let ablation = if opts.ablation {
        let run = Instant::now();
        let deltas =
            ablate(&mut session, &all_ids, n_layer, n_head, progress).map_err(engine_err)?;
        stages.push(("ablation".into(), ms(run)));
        Some(deltas)
    } else {
        None
    };

    let mut repeated = Vec::new();
    if !undertrained_candidates.is_empty() {
        progress("verifying under-trained tokens");
        let run = Instant::now();
        repeated =
            undertrained::verify(&mut session, undertrained_candidates).map_err(engine_err)?;
        stages.push(("undertrained".into(), ms(run)));
    }

    progress("analysing");
    let analyse = Instant::now();
    let mut behaviour = analyser.finish(ablation);
    behaviour.notes.extend(notes);
    let vocab: BTreeMap<u32, String> = shown_token_ids(&behaviour)
        .into_iter()
        .filter_map(|id| session.token(id as TokenId).ok().map(|tok| (id, tok.piece)))
        .collect();
    analytics_ms += ms(analyse);
    stages.push(("analytics".into(), analytics_ms));
    let timing = stages.iter().cloned().collect();
    let mut section = BehaviourSection::new(&behaviour, vocab, timing);
    for (prompt, gap) in section.prompts.iter_mut().zip(gaps) {
        prompt.kernels = gap;
    }
    Ok(ModelAnalysis {
        behaviour: section,
        head_metrics: BehaviourSection::head_metrics(&behaviour),
        undertrained: repeated,
        stages,
    })
}

/// The increase in mean next-token loss, averaged over prompts, when each
/// head's output is zeroed (layer-major).
fn ablate(
    session: &mut Session,
    prompts: &[Vec<TokenId>],
    n_layer: usize,
    n_head: usize,
    progress: &dyn Fn(&str),
) -> Result<Vec<f32>, EngineError> {
    let n_vocab = session.dims(1).n_vocab;
    let mut baseline = Vec::with_capacity(prompts.len());
    for ids in prompts {
        let logits = session.logits(ids)?;
        baseline.push(next_token_loss(&logits.data, n_vocab, ids));
    }
    let mut deltas = vec![0f32; n_layer * n_head];
    for l in 0..n_layer {
        progress(&format!("ablating the heads of layer {l}/{n_layer}"));
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

/// How `ggviz build` measures families.
#[derive(Debug, Clone)]
pub struct FamilyOptions {
    /// The reference, when the user names it (else the most bits per weight).
    pub reference: Option<PathBuf>,
    /// The evaluation text and where it came from.
    pub eval_text: String,
    pub eval_source: String,
    pub eval: EvalOptions,
    /// Prompts the members are compared on layer by layer.
    pub prompts: Vec<String>,
    pub session: SessionOptions,
    /// Where the logit lens's products run (`None`: the model's device).
    pub analytics_device: Option<Device>,
    /// Files ggviz made in this build, with their type.
    pub made: Vec<(PathBuf, QuantType)>,
    /// What the reference is, when ggviz made it (shown on the page).
    pub reference_note: Option<String>,
    /// Times of the stages done before the build (`quantize`, `imatrix`), ms.
    pub stages: Vec<(String, f64)>,
}

/// Groups `models` into families and measures each one (evaluation of every
/// member against the reference); `entries` are the model pages, in the
/// same order as `models`, for the links.
pub fn family_entries(
    models: &[PathBuf],
    entries: &[ModelEntry],
    options: &FamilyOptions,
    isolation: &Isolation,
    progress: &ProgressBar,
) -> Result<Vec<FamilyEntry>, PipelineError> {
    let mut out: Vec<FamilyEntry> = Vec::new();
    for mut fam in family::group(models, options.reference.as_deref())? {
        for m in &mut fam.members {
            m.made_as = options
                .made
                .iter()
                .find(|(p, _)| *p == m.path)
                .map(|(_, t)| *t);
        }
        let reference = fam.members[fam.reference].path.clone();
        progress.set_message(format!(
            "family of {}: scoring {} files",
            reference.display(),
            fam.members.len()
        ));
        // In workers, like every model page: llama.cpp aborting on one
        // member ends the build with an error naming the family. The
        // batched measurements first, then the token-by-token ones (in a
        // worker of their own: see `Job::passive_wait`).
        let jobs = [
            Job::Family {
                family: fam.clone(),
                eval_text: options.eval_text.clone(),
                prompts: options.prompts.clone(),
                eval: options.eval.clone(),
                session: options.session,
                analytics_device: options.analytics_device.unwrap_or(options.session.device),
            },
            Job::FamilyDecoding {
                family: fam.clone(),
                eval_text: options.eval_text.clone(),
                prompts: options.prompts.clone(),
                session: options.session,
            },
        ];
        let mut answers = Vec::with_capacity(jobs.len());
        for job in &jobs {
            answers.push(
                worker::run_job(job, isolation, &mut |event| match event {
                    Event::Progress(m) => progress.set_message(m.to_owned()),
                    Event::Log(line) => progress.suspend(|| eprintln!("{line}")),
                })
                .map_err(|source| PipelineError::Worker {
                    path: reference.clone(),
                    source: Box::new(source),
                })?,
            );
        }
        let (Some(Output::FamilyDecoding(decoding)), Some(Output::Family(mut measured))) =
            (answers.pop(), answers.pop())
        else {
            return Err(PipelineError::Worker {
                path: reference.clone(),
                source: Box::new(WorkerError::Protocol {
                    file: reference,
                    reason: "the answer to another job".into(),
                }),
            });
        };
        decoding.apply(&mut measured);
        let member_slugs: Vec<String> = fam
            .members
            .iter()
            .filter_map(|m| models.iter().position(|p| *p == m.path))
            .filter_map(|i| entries.get(i).map(|e| e.slug.clone()))
            .collect();
        let hrefs: Vec<String> = member_slugs
            .iter()
            .map(|s| format!("../../{s}/index.html"))
            .collect();
        let mut stages = options.stages.clone();
        stages.push(("evaluation".into(), measured.evaluation_ms));
        stages.push(("capture".into(), measured.capture_ms));
        stages.push(("weights".into(), measured.weights_ms));
        stages.push(("generation".into(), measured.generation_ms));
        stages.push(("neighbours".into(), measured.neighbours_ms));
        stages.push(("speed".into(), measured.speed_ms));
        let note = options.reference_note.clone().unwrap_or_else(|| {
            format!(
                "The reference is {}, the member with the most bits per weight or the one named \
                 with --reference; every figure is measured against it, not against the \
                 original full-precision model.",
                reference
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            )
        });
        let report =
            FamilyReport::build(&measured, &hrefs, note, options.eval_source.clone(), stages);
        let taken: Vec<String> = out.iter().map(|f| f.slug.clone()).collect();
        out.push(FamilyEntry {
            slug: site::slug_for(&reference, &taken),
            member_slugs,
            report,
        });
    }
    Ok(out)
}
