//! The `ggviz` command line: parse, dispatch, report errors. All work lives
//! in the library, where tests call it directly.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use ggviz::anatomy::Anatomy;
use ggviz::commands::{init, serve};
use ggviz::engine::device::parse_supported;
use ggviz::engine::{CaptureOptions, DEFAULT_MAX_TOKENS, Device, HeadCapture, SessionOptions};
use ggviz::gguf::GgufModel;
use ggviz::worker::{self, Event, Isolation, Job, Output, WorkerCommand};
use ggviz::{config, fetch, inspect, pipeline, run};

/// Turn GGUF model files into self-contained, offline dashboards.
#[derive(Debug, Parser)]
#[command(name = "ggviz", version, about, max_term_width = 100)]
struct Cli {
    /// More log output (-v: info, -vv: debug, -vvv: trace); RUST_LOG also works.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Load llama.cpp's backend libraries (CPU variants, libggml-cuda.so,
    /// libggml-vulkan.so) from this folder (a build with the
    /// `dynamic-backends` feature; GGVIZ_BACKEND_DIR also works).
    #[arg(long, global = true, value_name = "DIR")]
    backend_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the offline site: one self-contained page per model, an index, content pages.
    Build(Box<BuildArgs>),
    /// Summarise a GGUF file: architecture, sizes, quantization mix, tensors.
    Inspect(InspectArgs),
    /// Run a prompt through the model with llama.cpp, capturing attention,
    /// hidden states and head contributions; print the tokens, the most
    /// probable next tokens and the timing.
    Run(RunArgs),
    /// Build the site, serve it on 127.0.0.1, rebuild when a source changes
    /// and reload the open pages.
    Serve(Box<ServeArgs>),
    /// Start a project: a commented ggviz.toml, an example content page, a
    /// .gitignore and a GitHub Pages workflow.
    Init(InitArgs),
    /// List what llama.cpp sees: its backends, devices (with memory) and the
    /// CPU features its CPU backend uses.
    Devices(DevicesArgs),
    /// Internal: run one job of llama.cpp work sent on stdin (ggviz starts
    /// itself this way so a model that makes llama.cpp abort cannot take
    /// the whole command down).
    #[command(name = "__worker", hide = true)]
    Worker,
    /// Compute an importance matrix (llama-imatrix's GGUF format) from
    /// ggviz's own capture, for the quantizer's low-bit types.
    Imatrix(ImatrixArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    build: BuildArgs,
    /// The port to listen on (0: any free port).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// The address to listen on; anything but loopback lets other machines
    /// read the site.
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Open the site in the default browser.
    #[arg(long)]
    open: bool,
}

#[derive(Debug, clap::Args)]
struct InitArgs {
    /// The project folder (created if missing; default: the current one).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// A model to list in ggviz.toml (a path relative to DIR, or
    /// hf://OWNER/REPO/FILE.gguf); repeatable.
    #[arg(long = "model", value_name = "MODEL")]
    models: Vec<String>,
    /// The site title.
    #[arg(long)]
    title: Option<String>,
    /// Write into a non-empty folder, overwriting the starter files.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, clap::Args)]
struct ImatrixArgs {
    /// The model (usually the reference a family is quantized from).
    model: PathBuf,
    /// Where to write the importance matrix (GGUF).
    #[arg(short, long, value_name = "FILE")]
    out: PathBuf,
    /// Calibration text (default: the bundled one, Exodus 1–8 of the King
    /// James Version).
    #[arg(long, value_name = "FILE")]
    calibration: Option<PathBuf>,
    /// Tokens per chunk (llama-imatrix's context size).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(16..))]
    chunk_size: u32,
    /// Use at most this many chunks.
    #[arg(long, value_name = "N")]
    chunks: Option<usize>,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Debug, clap::Args)]
struct BuildArgs {
    /// GGUF files (any shard of a split model) or
    /// `hf://OWNER/REPO/FILE.gguf[@REVISION]` references (downloaded into the
    /// Hugging Face cache); one page each. Replace the project file's
    /// `models` when given.
    #[arg(value_name = "MODEL")]
    models: Vec<PathBuf>,
    /// The project file (default: ./ggviz.toml if there is one); these
    /// flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The site folder (default: `site`); replaced as a whole, only when the
    /// build succeeds.
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// A folder whose files override the default theme's, path by path
    /// (templates/, css/, js/core/, js/views/).
    #[arg(long, value_name = "DIR")]
    theme: Option<PathBuf>,
    /// A folder of markdown pages that add to or replace the default content.
    #[arg(long, value_name = "DIR")]
    content: Option<PathBuf>,
    /// The site title shown on the index.
    #[arg(long, value_name = "T")]
    title: Option<String>,
    /// Structure only: do not run the models (no attention, logit lens or
    /// head analysis on the page).
    #[arg(long)]
    no_inference: bool,
    /// A prompt to run instead of the bundled set (repeatable).
    #[arg(long = "prompt", value_name = "TEXT")]
    prompts: Vec<String>,
    /// A file of prompts to run instead of the bundled set: TOML like
    /// content/prompts.toml, or plain text with prompts separated by `---` lines.
    #[arg(long = "prompts", value_name = "FILE")]
    prompts_file: Option<PathBuf>,
    /// Measure head importance by zeroing each head and measuring the rise
    /// in next-token loss (one extra forward pass per head and prompt).
    #[arg(long)]
    ablation: bool,
    /// Where the analytics' matrix products run (the logit lens over every
    /// layer): cpu, cuda:N or vulkan:N (default: the model's --device). With two GPUs,
    /// `--device cuda:0 --analytics-device cuda:1` keeps them apart.
    #[arg(long, value_name = "DEVICE", value_parser = parse_supported)]
    analytics_device: Option<Device>,
    /// Upload each model's architecture graph and head graph to Graphistry
    /// and link them from the page. Credentials come from the environment
    /// only (GRAPHISTRY_USERNAME/GRAPHISTRY_PASSWORD or
    /// GRAPHISTRY_PERSONAL_KEY_ID/GRAPHISTRY_PERSONAL_KEY_SECRET;
    /// GRAPHISTRY_SERVER). `auto`: a failed upload is a warning; `required`:
    /// an error. Without this flag nothing is sent.
    #[arg(long, value_name = "MODE", num_args = 0..=1, require_equals = true, default_missing_value = "auto")]
    graphistry: Option<GraphistryArg>,
    /// Leave the embeddings view out (its analysis of the whole vocabulary
    /// is the longest stage of a build on a CPU).
    #[arg(long)]
    no_embeddings: bool,
    /// Word analogies for the embeddings view instead of the bundled set:
    /// TOML `[[analogy]]` tables with `a`, `b`, `c`, `d` (a − b + c = d).
    #[arg(long, value_name = "FILE")]
    analogies: Option<PathBuf>,
    #[command(flatten)]
    family: FamilyArgs,
    #[command(flatten)]
    engine: EngineArgs,
}

/// `--graphistry` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum GraphistryArg {
    /// Upload when credentials are present; warn on failure.
    Auto,
    /// Upload, or fail the build.
    Required,
}

/// Families: files of one model measured against a reference.
#[derive(Debug, clap::Args)]
struct FamilyArgs {
    /// The family's reference (default: the file with the most bits per
    /// weight). Also what --quantize quantizes from.
    #[arg(long, value_name = "FILE")]
    reference: Option<PathBuf>,
    /// Make these types from the reference with llama.cpp's quantizer and add
    /// them to the family, e.g. `F16,Q8_0,Q6_K,Q4_K_M,Q3_K_M,Q2_K,IQ3_XS`. A
    /// float type (F16, BF16, F32) in the list is made first and becomes the
    /// reference the others are made from.
    #[arg(long, value_name = "TYPES", value_delimiter = ',')]
    quantize: Vec<String>,
    /// Compute an importance matrix from ggviz's capture and quantize with it
    /// (done anyway for the types that need one).
    #[arg(long)]
    imatrix: bool,
    /// Calibration text for the importance matrix (default: bundled).
    #[arg(long, value_name = "FILE")]
    calibration: Option<PathBuf>,
    /// Evaluation text the members are scored on (default: bundled, Genesis
    /// 1–20 of the King James Version).
    #[arg(long, value_name = "FILE")]
    eval_text: Option<PathBuf>,
    /// Score at most this many tokens of the evaluation text.
    #[arg(long, value_name = "N")]
    eval_tokens: Option<usize>,
    /// Where quantized files are cached.
    #[arg(long, value_name = "DIR", default_value = ".cache/ggviz/quant")]
    quant_cache: PathBuf,
}

/// Where and how llama.cpp runs (shared by `run` and `build`).
#[derive(Debug, clap::Args)]
struct EngineArgs {
    /// Run llama.cpp inside this process instead of a worker process: a
    /// little faster to start (for debugging and benchmarks), but a model
    /// that makes llama.cpp abort then takes ggviz down with it.
    #[arg(long)]
    in_process: bool,
    /// Where the model runs: cpu (default), cuda:N or vulkan:N (a GPU
    /// backend library loaded at run time, from --backend-dir; see
    /// `ggviz devices` and scripts/build-backend.sh).
    #[arg(long, value_parser = parse_supported)]
    device: Option<Device>,
    /// Layers to offload to the GPU (default: all; needs a GPU --device).
    #[arg(long)]
    gpu_layers: Option<u32>,
    /// CPU threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Refuse prompts longer than this many tokens (the trace grows with the
    /// square of the length; default 512).
    #[arg(long)]
    max_tokens: Option<usize>,
}

impl EngineArgs {
    fn session(&self) -> SessionOptions {
        SessionOptions {
            device: self.device.unwrap_or_default(),
            gpu_layers: self.gpu_layers,
            threads: self.threads.unwrap_or(0),
            max_tokens: self.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        }
    }
}

#[derive(Debug, clap::Args)]
struct InspectArgs {
    /// The GGUF file (any shard of a split model), or an
    /// `hf://OWNER/REPO/FILE.gguf[@REVISION]` reference, read remotely: only
    /// the header and tensor index are fetched (HTTP range requests).
    file: PathBuf,
    /// Print stable JSON instead of text (documented in the README).
    #[arg(long)]
    json: bool,
    /// List every tensor, grouped by layer and role.
    #[arg(long)]
    tensors: bool,
    /// List every metadata key (long arrays summarised).
    #[arg(long)]
    metadata: bool,
}

#[derive(Debug, clap::Args)]
struct DevicesArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The GGUF model file, or an `hf://OWNER/REPO/FILE.gguf[@REVISION]`
    /// reference (downloaded into the Hugging Face cache).
    model: PathBuf,
    /// The prompt, tokenized exactly as llama.cpp does (BOS added when the
    /// model asks for it, special-token text such as <|im_start|> parsed).
    #[arg(short, long)]
    prompt: String,
    /// Candidate next tokens to show per position.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    top_k: u32,
    /// Print stable JSON instead of text (documented in the README).
    #[arg(long)]
    json: bool,
    /// Show the candidates after every position, not only the last.
    #[arg(long)]
    all_positions: bool,
    #[command(flatten)]
    engine: EngineArgs,
    /// How per-head contributions to the residual stream are kept.
    #[arg(long, value_enum, default_value_t = HeadsArg::Norms)]
    heads: HeadsArg,
}

/// `--heads` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum HeadsArg {
    /// One norm per layer, head and token.
    Norms,
    /// Full vectors (n_embd floats per layer, head and token).
    Full,
    /// Not computed.
    Off,
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Opens the model to inspect: a local file, or a remote one's header only.
fn open_for_inspect(file: &std::path::Path) -> anyhow::Result<GgufModel> {
    match file.to_str().filter(|s| fetch::is_remote(s)) {
        Some(reference) => {
            let reference = fetch::HfRef::parse(reference)?;
            let remote = fetch::remote::open(&reference, &fetch::HfSettings::from_env())
                .with_context(|| format!("cannot read the header of {reference}"))?;
            tracing::info!(
                "{reference}: header read with {} range request(s), {} bytes",
                remote.requests,
                remote.bytes_transferred
            );
            Ok(remote.model)
        }
        None => Ok(GgufModel::open(file)?),
    }
}

/// A model argument as a local path, downloading `hf://` references.
fn local_model(model: &std::path::Path) -> anyhow::Result<PathBuf> {
    fetch::resolve_model_path(model)
        .with_context(|| format!("cannot fetch the model {}", model.display()))
}

/// llama.cpp's work runs in a child ggviz (see `ggviz::worker`) unless
/// `--in-process` says otherwise.
fn isolation(engine: &EngineArgs, verbose: u8) -> anyhow::Result<Isolation> {
    if engine.in_process {
        return Ok(Isolation::InProcess);
    }
    let mut cmd = WorkerCommand::current(verbose)
        .context("cannot find ggviz's own executable to start its worker")?;
    // The worker loads the same backends.
    if let Some(dir) = ggviz::engine::ffi::backend_dir() {
        cmd.args.push("--backend-dir".into());
        cmd.args.push(dir.display().to_string());
    }
    Ok(Isolation::Worker(cmd))
}

/// The Graphistry upload asked for: `--graphistry` wins over the project
/// file's `[graphistry]`; credentials come from the environment only.
fn graphistry_request(
    flag: Option<GraphistryArg>,
    project: &config::GraphistryConfig,
) -> Option<fetch::graphistry::Request> {
    let mode = match flag {
        Some(GraphistryArg::Auto) => fetch::graphistry::Mode::Auto,
        Some(GraphistryArg::Required) => fetch::graphistry::Mode::Required,
        None if project.required => fetch::graphistry::Mode::Required,
        None if project.enabled => fetch::graphistry::Mode::Auto,
        None => return None,
    };
    let mut credentials = fetch::graphistry::Credentials::from_env();
    if let (Some(c), Some(server), None) = (
        credentials.as_mut(),
        &project.server,
        std::env::var_os("GRAPHISTRY_SERVER"),
    ) {
        c.server = server.trim_end_matches('/').to_owned();
    }
    Some(fetch::graphistry::Request {
        mode,
        credentials,
        head_threshold: fetch::graphistry::DEFAULT_HEAD_THRESHOLD,
    })
}

fn run_inspect(args: &InspectArgs) -> anyhow::Result<()> {
    let model = open_for_inspect(&args.file)?;
    let anatomy = Anatomy::from_model(&model)
        .with_context(|| format!("cannot describe the model in {}", args.file.display()))?;
    let out = if args.json {
        inspect::to_json(&model, &anatomy)?
    } else {
        let opts = inspect::TextOptions {
            tensors: args.tensors,
            metadata: args.metadata,
        };
        inspect::to_text(&model, &anatomy, opts)
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| if args.json { writeln!(stdout) } else { Ok(()) })
        .context("cannot write to standard output")
}

/// The embeddings analysis' settings, with `--analogies FILE` read.
fn embedding_options(
    analogies: Option<&std::path::Path>,
) -> anyhow::Result<ggviz::analysis::embeddings::EmbeddingOptions> {
    use ggviz::analysis::embeddings::{EmbeddingOptions, analogies::parse};
    let mut opts = EmbeddingOptions::default();
    if let Some(path) = analogies {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        opts.analogies = parse(&text, &path.display().to_string())?;
    }
    Ok(opts)
}

impl BuildArgs {
    /// What the command line says, over the project file.
    fn overrides(&self) -> config::Overrides {
        config::Overrides {
            models: self.models.clone(),
            out: self.out.clone(),
            theme: self.theme.clone(),
            content: self.content.clone(),
            title: self.title.clone(),
            no_inference: self.no_inference,
            prompts: self.prompts.clone(),
            prompts_file: self.prompts_file.clone(),
            ablation: self.ablation,
            device: self.engine.device,
            analytics_device: self.analytics_device,
            gpu_layers: self.engine.gpu_layers,
            threads: self.engine.threads,
            max_tokens: self.engine.max_tokens,
        }
    }

    /// The project file and the flags, combined.
    fn resolve(&self) -> anyhow::Result<config::Resolved> {
        let project = config::Project::discover(self.config.as_deref())?;
        Ok(config::resolve(project.as_ref(), &self.overrides())?)
    }
}

fn run_build(args: &BuildArgs, verbose: u8) -> anyhow::Result<()> {
    let mut resolved = args.resolve()?;
    resolved.pipeline.site.models = resolved
        .pipeline
        .site
        .models
        .iter()
        .map(|m| local_model(m))
        .collect::<anyhow::Result<Vec<_>>>()?;
    resolved.pipeline.isolation = isolation(&args.engine, verbose)?;
    resolved.pipeline.graphistry = graphistry_request(args.graphistry, &resolved.graphistry);
    resolved.pipeline.embeddings = if args.no_embeddings {
        None
    } else {
        Some(embedding_options(args.analogies.as_deref())?)
    };
    let out = resolved.pipeline.site.out.clone();
    let progress = indicatif::ProgressBar::new_spinner();
    progress.enable_steady_tick(std::time::Duration::from_millis(120));
    let families = match &resolved.pipeline.inference {
        Some(i) => family_options(
            args,
            &mut resolved.pipeline.site.models,
            &i.prompts,
            i.analytics_device,
            &resolved.pipeline.isolation,
            &progress,
        )?,
        None => None,
    };
    let result = pipeline::build_with_families(
        &resolved.pipeline,
        &resolved.names,
        families.as_ref(),
        &progress,
    );
    progress.finish_and_clear();
    if let Some(f) = &families {
        let stages: Vec<String> = f
            .stages
            .iter()
            .map(|(n, ms)| format!("{n} {:.2} s", ms / 1e3))
            .collect();
        if !stages.is_empty() {
            writeln!(std::io::stderr().lock(), "  family: {}", stages.join(", "))?;
        }
    }
    let (summary, times) =
        result.with_context(|| format!("cannot build the site in {}", out.display()))?;
    let mut stderr = std::io::stderr().lock();
    for (page, t) in summary.models.iter().zip(&times) {
        let stages: Vec<String> = t
            .stages
            .iter()
            .map(|(name, ms)| format!("{name} {:.2} s", ms / 1e3))
            .collect();
        writeln!(
            stderr,
            "  {} ({}): {}",
            page.path,
            inspect::human_bytes(page.bytes as u64),
            stages.join(", ")
        )?;
        if let Some(base) = &resolved.base_url {
            let dir = page.path.strip_suffix("index.html").unwrap_or(&page.path);
            writeln!(stderr, "    {base}{dir}")?;
        }
    }
    writeln!(
        stderr,
        "wrote {} with {} model page(s) and {} other page(s) in {:.2} s",
        summary.out.display(),
        summary.models.len(),
        summary.other.len(),
        summary.elapsed.as_secs_f64()
    )?;
    Ok(())
}

fn run_serve(args: &ServeArgs, verbose: u8) -> anyhow::Result<()> {
    if args.build.graphistry.is_some() {
        anyhow::bail!(
            "ggviz serve does not upload to Graphistry (every rebuild would upload again); \
             publish with `ggviz build --graphistry`"
        );
    }
    let bind = std::net::SocketAddr::new(args.bind, args.port);
    if !args.bind.is_loopback() {
        eprintln!("warning: listening on {bind}: other machines on the network can read the site");
    }
    let opts = serve::ServeOptions {
        config: args.build.config.clone(),
        overrides: args.build.overrides(),
        bind,
        isolation: isolation(&args.build.engine, verbose)?,
        embeddings: if args.build.no_embeddings {
            None
        } else {
            Some(embedding_options(args.build.analogies.as_deref())?)
        },
    };
    let log = std::sync::Arc::new(|line: String| eprintln!("{line}"));
    let server = serve::start(opts, log).context("cannot serve the site")?;
    let url = format!("http://{}/", server.addr);
    eprintln!("serving on {url} (Ctrl-C to stop)");
    if args.open {
        open_browser(&url);
    }
    server.wait();
    Ok(())
}

/// Opens `url` with the system's handler; a failure is only a warning.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    if let Err(e) = std::process::Command::new(opener).arg(url).spawn() {
        eprintln!("warning: cannot open a browser ({opener}: {e}); open {url} yourself");
    }
}

fn run_init(args: &InitArgs) -> anyhow::Result<()> {
    let written = init::init(&init::InitOptions {
        dir: args.dir.clone(),
        models: args.models.clone(),
        title: args.title.clone(),
        force: args.force,
    })?;
    for path in written {
        eprintln!("  wrote {}", path.display());
    }
    eprintln!(
        "next: list your models in {}, then `ggviz serve` or `ggviz build`",
        args.dir.join(config::FILE_NAME).display()
    );
    Ok(())
}

/// Quantizes `reference` into `options.types` where `isolation` says (a
/// worker for the CLI: llama.cpp's quantizer aborting is an error).
fn make_ladder(
    reference: &std::path::Path,
    options: ggviz::family::LadderOptions,
    isolation: &Isolation,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<ggviz::family::Ladder> {
    let job = Job::Ladder {
        reference: reference.to_path_buf(),
        options,
    };
    let out = worker::run_job(&job, isolation, &mut |event| match event {
        Event::Log(line) => progress.suspend(|| eprintln!("{line}")),
        Event::Progress(m) => progress.set_message(m.to_owned()),
    })
    .with_context(|| format!("cannot quantize {}", reference.display()))?;
    let Output::Ladder(ladder) = out else {
        anyhow::bail!("ggviz's worker answered a quantization with something else");
    };
    Ok(*ladder)
}

/// Makes the quantization ladder (adding its files to `models`) and the
/// family options, when there can be a family.
fn family_options(
    args: &BuildArgs,
    models: &mut Vec<PathBuf>,
    prompts: &[ggviz::analysis::prompts::PromptSpec],
    analytics_device: Option<Device>,
    isolation: &Isolation,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Option<pipeline::FamilyOptions>> {
    use ggviz::analysis::quant_impact::output::{EVALUATION_TEXT, EvalOptions};
    use ggviz::engine::QuantType;
    let f = &args.family;
    let types = f
        .quantize
        .iter()
        .map(|t| t.parse::<QuantType>())
        .collect::<Result<Vec<_>, _>>()?;
    if models.len() < 2 && types.is_empty() {
        return Ok(None);
    }
    let read = |p: &PathBuf, what: &str| {
        std::fs::read_to_string(p)
            .with_context(|| format!("cannot read the {what} {}", p.display()))
    };
    let session = args.engine.session();
    let mut source = match &f.reference {
        Some(r) => r.clone(),
        None => {
            let mut best = (f64::MIN, models[0].clone());
            for m in models.iter() {
                let bpw = ggviz::family::bits_per_weight(&GgufModel::open(m)?);
                if bpw > best.0 {
                    best = (bpw, m.clone());
                }
            }
            best.1
        }
    };
    let mut made = Vec::new();
    let mut stages = Vec::new();
    let mut reference_note = None;
    let (floats, rest): (Vec<QuantType>, Vec<QuantType>) = types
        .into_iter()
        .partition(|t| matches!(t, QuantType::F16 | QuantType::BF16 | QuantType::F32));
    let ladder_options = |types: Vec<QuantType>| -> anyhow::Result<ggviz::family::LadderOptions> {
        Ok(ggviz::family::LadderOptions {
            types,
            imatrix: f.imatrix,
            calibration: f
                .calibration
                .as_ref()
                .map(|p| read(p, "calibration text"))
                .transpose()?,
            calibration_chunks: None,
            cache: f.quant_cache.clone(),
            session,
        })
    };
    let mut quantize_ms = 0.0;
    if let Some(&float) = floats.first() {
        progress.set_message(format!("making the {float} reference"));
        let ladder = make_ladder(
            &source,
            ggviz::family::LadderOptions {
                imatrix: false,
                ..ladder_options(vec![float])?
            },
            isolation,
            progress,
        )?;
        let q = &ladder.made[0];
        quantize_ms += q.ms;
        reference_note = Some(format!(
            "The reference is the {float} form of {} ({}), made by ggviz with llama.cpp's \
             quantizer; every figure is measured against it, not against the original \
             full-precision model.",
            source
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            GgufModel::open(&source)
                .ok()
                .and_then(|m| m.get("general.file_type").and_then(|v| v.as_u64()))
                .map_or_else(
                    || "its type unknown".to_string(),
                    |t| format!("llama.cpp file type {t}")
                )
        ));
        made.push((q.path.clone(), float));
        models.push(q.path.clone());
        source = q.path.clone();
    }
    if !rest.is_empty() {
        progress.set_message(format!("quantizing {} types", rest.len()));
        let ladder = make_ladder(&source, ladder_options(rest)?, isolation, progress)?;
        if ladder.imatrix.is_some() {
            stages.push(("imatrix".to_string(), ladder.imatrix_ms));
        }
        for q in &ladder.made {
            quantize_ms += q.ms;
            made.push((q.path.clone(), q.ty));
            models.push(q.path.clone());
        }
    }
    stages.insert(0, ("quantize".to_string(), quantize_ms));
    let (eval_text, eval_source) = match &f.eval_text {
        Some(p) => (read(p, "evaluation text")?, p.display().to_string()),
        None => (
            EVALUATION_TEXT.to_string(),
            "the bundled evaluation text (Genesis 1–20, King James Version)".to_string(),
        ),
    };
    Ok(Some(pipeline::FamilyOptions {
        reference: Some(source),
        eval_text,
        eval_source,
        eval: EvalOptions {
            n_ctx: 512,
            max_tokens: f.eval_tokens,
        },
        prompts: prompts.iter().filter_map(|p| p.text.clone()).collect(),
        session,
        analytics_device,
        made,
        reference_note,
        stages,
    }))
}

fn run_run(args: &RunArgs, verbose: u8) -> anyhow::Result<()> {
    let options = run::RunOptions {
        prompt: args.prompt.clone(),
        top_k: args.top_k as usize,
        all_positions: args.all_positions,
        session: args.engine.session(),
        capture: CaptureOptions {
            heads: match args.heads {
                HeadsArg::Norms => HeadCapture::Norms,
                HeadsArg::Full => HeadCapture::Full,
                HeadsArg::Off => HeadCapture::Off,
            },
            ..CaptureOptions::default()
        },
    };
    let job = Job::Run {
        path: local_model(&args.model)?,
        options,
    };
    let out = worker::run_job(
        &job,
        &isolation(&args.engine, verbose)?,
        &mut |event| match event {
            Event::Log(line) => eprintln!("{line}"),
            Event::Progress(_) => {}
        },
    )?;
    let Output::Run(report) = out else {
        anyhow::bail!("ggviz's worker answered a run with something else");
    };
    let out = if args.json {
        run::to_json(&report)? + "\n"
    } else {
        run::to_text(&report)
    };
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .context("cannot write to standard output")
}

fn run_devices(args: &DevicesArgs) -> anyhow::Result<()> {
    let report = ggviz::engine::ffi::system_report();
    let out = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        let mut out = String::from("backends\n");
        for (name, n) in &report.backends {
            out += &format!("  {name:<10} {n} device(s)\n");
        }
        if let Some(lib) = &report.llama_library {
            out += &format!("llama.cpp\n  {}\n", lib.display());
        }
        if !report.libraries.is_empty() {
            out += "backend libraries\n";
            for lib in &report.libraries {
                let score = if lib.score > 0 {
                    format!(" (score {})", lib.score)
                } else {
                    String::new()
                };
                match &lib.error {
                    None => out += &format!("  {:<10} {}{score}\n", lib.kind, lib.path.display()),
                    Some(e) => {
                        out += &format!(
                            "  {:<10} {}: not loaded: {e}\n",
                            lib.kind,
                            lib.path.display()
                        )
                    }
                }
            }
        }
        out += "devices\n";
        for d in &report.devices {
            let memory = if d.memory_total > 0 {
                format!(
                    ", {} free of {}",
                    inspect::human_bytes(d.memory_free),
                    inspect::human_bytes(d.memory_total)
                )
            } else {
                String::new()
            };
            out += &format!(
                "  {:<10} {} ({}, {} backend{memory})\n",
                d.name, d.description, d.kind, d.backend
            );
        }
        out += &format!("llama.cpp system info\n  {}\n", report.system_info);
        out
    };
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .context("cannot write to standard output")
}

fn run_imatrix(args: &ImatrixArgs, verbose: u8) -> anyhow::Result<()> {
    use ggviz::analysis::quant_impact::imatrix;
    let (text, dataset) = match &args.calibration {
        Some(path) => (
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the calibration text {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (
            imatrix::CALIBRATION_TEXT.to_string(),
            imatrix::ImatrixOptions::default().dataset,
        ),
    };
    let options = imatrix::ImatrixOptions {
        chunk_size: args.chunk_size as usize,
        max_chunks: args.chunks,
        dataset,
    };
    let start = std::time::Instant::now();
    let job = Job::Imatrix {
        path: local_model(&args.model)?,
        text,
        options,
        session: args.engine.session(),
        out: args.out.clone(),
    };
    let out = worker::run_job(&job, &isolation(&args.engine, verbose)?, &mut |event| {
        if let Event::Log(line) = event {
            eprintln!("{line}");
        }
    })?;
    let Output::Imatrix {
        weights,
        chunks,
        chunk_size,
    } = out
    else {
        anyhow::bail!("ggviz's worker answered an importance matrix with something else");
    };
    writeln!(
        std::io::stderr().lock(),
        "wrote {}: {} weights, {} chunks of {} tokens in {:.2} s",
        args.out.display(),
        weights,
        chunks,
        chunk_size,
        start.elapsed().as_secs_f64()
    )?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    if let Some(dir) = &cli.backend_dir
        && let Err(e) = ggviz::engine::ffi::set_backend_dir(dir.clone())
    {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let result = match &cli.command {
        Command::Build(args) => run_build(args, cli.verbose),
        Command::Inspect(args) => run_inspect(args),
        Command::Run(args) => run_run(args, cli.verbose),
        Command::Serve(args) => run_serve(args, cli.verbose),
        Command::Init(args) => run_init(args),
        Command::Devices(args) => run_devices(args),
        Command::Worker => return ExitCode::from(worker::serve()),
        Command::Imatrix(args) => run_imatrix(args, cli.verbose),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A closed pipe (`ggviz inspect x | head`) is not an error.
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  Caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
