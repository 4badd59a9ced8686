//! Running llama.cpp's work in a child process, so nothing a model file
//! makes llama.cpp do can take ggviz down with it.
//!
//! llama.cpp answers some well-formed but wrong files with `GGML_ASSERT` →
//! `abort()`, and a signal cannot be caught in-process: a multi-model build
//! would lose every other model's work. So `ggviz build` and `ggviz run`
//! re-execute ggviz itself as a worker (`ggviz __worker`), hand it one
//! [`Job`] as JSON on stdin, and read back progress and the [`Output`] as
//! framed JSON lines on its stdout. The worker hands ggml's abort message to
//! the parent through ggml's abort callback just before it dies, so the
//! parent says `llama.cpp aborted on FILE: GGML_ASSERT(...) failed` instead
//! of dying by a signal. A Rust panic in the worker is reported the same
//! way. The worker's stderr (its log) is passed through, and its last lines
//! are kept for the error when it dies without a word.
//!
//! The jobs are the same functions the library runs in-process
//! ([`Isolation::InProcess`], what tests and benchmarks use): the worker is
//! a transport, not a second implementation.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;

use serde::{Deserialize, Serialize};

use crate::analysis::embeddings::EmbeddingOptions;
use crate::analysis::quant_impact::imatrix::{self, ImatrixOptions};
use crate::analysis::quant_impact::output::EvalOptions;
use crate::engine::{Device, Session, SessionOptions};
use crate::family::{self, Decoding, Family, FamilyMeasurements, Ladder, LadderOptions};
use crate::pipeline::{self, InferenceOptions, ModelAnalysis};
use crate::report::embeddings::EmbeddingsSection;
use crate::run::{self, RunOptions, RunReport};

/// The hidden subcommand that makes `ggviz` a worker.
pub const SUBCOMMAND: &str = "__worker";

/// Every protocol line on the worker's stdout starts with this; anything
/// else there (a stray `printf` in a library) is passed on as log.
const FRAME: &str = "\u{1e}ggviz ";

/// Lines of the worker's stderr kept for an error message.
const KEPT_LOG_LINES: usize = 40;

/// Environment variable a debug build's worker reads to abort through
/// ggml's own path after reading its job (the isolation's tests use it).
#[cfg(debug_assertions)]
pub const TEST_ABORT_ENV: &str = "GGVIZ_TEST_WORKER_ABORT";

/// With [`TEST_ABORT_ENV`]: abort only jobs of this kind ([`Job::kind`]).
#[cfg(debug_assertions)]
pub const TEST_ABORT_JOB_ENV: &str = "GGVIZ_TEST_WORKER_ABORT_JOB";

/// Where llama.cpp's work runs.
#[derive(Debug, Clone, Default)]
pub enum Isolation {
    /// In this process: what the library's tests and benchmarks use.
    #[default]
    InProcess,
    /// In a child process: what the CLI uses.
    Worker(WorkerCommand),
}

/// How to start a worker.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    /// The ggviz executable.
    pub exe: PathBuf,
    /// Arguments before the subcommand (`-v` flags).
    pub args: Vec<String>,
}

impl WorkerCommand {
    /// This executable as the worker, logging as verbosely as the parent.
    pub fn current(verbose: u8) -> std::io::Result<WorkerCommand> {
        Ok(WorkerCommand {
            exe: std::env::current_exe()?,
            args: (0..verbose).map(|_| "-v".to_owned()).collect(),
        })
    }
}

/// One piece of llama.cpp work.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    /// A model's embeddings stage of `ggviz build`.
    Embeddings {
        path: PathBuf,
        options: EmbeddingOptions,
    },
    /// A model's behaviour stage of `ggviz build`, with the verification of
    /// the under-trained candidates the embeddings stage found.
    Analyse {
        path: PathBuf,
        options: InferenceOptions,
        undertrained: Vec<u32>,
    },
    /// `ggviz run`.
    Run { path: PathBuf, options: RunOptions },
    /// Files quantized from `reference` with llama.cpp's quantizer (the
    /// importance matrix first when asked or needed).
    Ladder {
        reference: PathBuf,
        options: LadderOptions,
    },
    /// A family's batched measurements: every member scored and compared
    /// layer by layer against the reference ([`family::measure_batched`]).
    Family {
        family: Family,
        eval_text: String,
        prompts: Vec<String>,
        eval: EvalOptions,
        session: SessionOptions,
        /// Where the logit lens's products run.
        analytics_device: Device,
    },
    /// A family's token-by-token measurements: continuations and speed
    /// ([`family::measure_decoding`]), run without the passive wait policy.
    FamilyDecoding {
        family: Family,
        eval_text: String,
        prompts: Vec<String>,
        session: SessionOptions,
    },
    /// `ggviz imatrix`: the importance matrix of `path` on `text`, written
    /// to `out`.
    Imatrix {
        path: PathBuf,
        text: String,
        options: ImatrixOptions,
        session: SessionOptions,
        out: PathBuf,
    },
}

/// What a job gives back.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    Embeddings(Box<EmbeddingsSection>, Vec<(String, f64)>),
    Analyse(Box<ModelAnalysis>),
    Run(Box<RunReport>),
    Ladder(Box<Ladder>),
    Family(Box<FamilyMeasurements>),
    FamilyDecoding(Box<Decoding>),
    /// Weights, chunks and tokens per chunk of the matrix written.
    Imatrix {
        weights: usize,
        chunks: u32,
        chunk_size: u32,
    },
}

/// What the worker tells its parent, one frame a line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Message {
    Progress(String),
    Done(Output),
    /// The job failed: its error and the chain of causes.
    Failed(Vec<String>),
    /// ggml is aborting the process with this message.
    Aborted(String),
    /// ggviz itself panicked (a bug).
    Panicked(String),
}

/// What the parent sees while a worker runs.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// What the worker is doing now.
    Progress(&'a str),
    /// A line of the worker's log.
    Log(&'a str),
}

/// An error of a job run in a worker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    #[error("cannot start ggviz's worker process {}", exe.display())]
    Spawn {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// llama.cpp (ggml) aborted the worker.
    #[error("llama.cpp aborted on {}: {message}", file.display())]
    Aborted { file: PathBuf, message: String },
    /// ggviz's own code panicked in the worker.
    #[error("ggviz failed on {} (an internal error; please report it): {message}", file.display())]
    Panicked { file: PathBuf, message: String },
    /// The worker ended without a reply: killed by a signal (out of memory,
    /// say) or exited.
    #[error("ggviz's worker for {} {status}{}", file.display(), last_words(.log))]
    Died {
        file: PathBuf,
        status: String,
        log: Option<String>,
    },
    /// The job itself failed; the chain is the worker's error chain.
    #[error(transparent)]
    Failed(RemoteError),
    /// The worker's reply could not be read.
    #[error("ggviz's worker for {} answered something unreadable: {reason}", file.display())]
    Protocol { file: PathBuf, reason: String },
}

fn last_words(log: &Option<String>) -> String {
    log.as_deref()
        .map(|l| format!("; its last message: {l}"))
        .unwrap_or_default()
}

/// An error that happened in the worker, with its chain of causes, as text.
#[derive(Debug)]
pub struct RemoteError {
    message: String,
    source: Option<Box<RemoteError>>,
}

impl RemoteError {
    fn from_chain(chain: &[String]) -> RemoteError {
        let (first, rest) = chain
            .split_first()
            .map_or(("the job failed", &[][..]), |(f, r)| (f.as_str(), r));
        RemoteError {
            message: first.to_owned(),
            source: (!rest.is_empty()).then(|| Box::new(RemoteError::from_chain(rest))),
        }
    }
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RemoteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

type JobError = Box<dyn std::error::Error + Send + Sync>;

impl Job {
    /// The model file the job works on.
    pub fn file(&self) -> &Path {
        match self {
            Job::Embeddings { path, .. }
            | Job::Analyse { path, .. }
            | Job::Run { path, .. }
            | Job::Imatrix { path, .. }
            | Job::Ladder {
                reference: path, ..
            } => path,
            Job::Family { family, .. } | Job::FamilyDecoding { family, .. } => family
                .members
                .get(family.reference)
                .map_or(Path::new(""), |m| m.path.as_path()),
        }
    }

    /// The job's kind, as its JSON tag names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Job::Embeddings { .. } => "embeddings",
            Job::Analyse { .. } => "analyse",
            Job::Run { .. } => "run",
            Job::Ladder { .. } => "ladder",
            Job::Family { .. } => "family",
            Job::FamilyDecoding { .. } => "family_decoding",
            Job::Imatrix { .. } => "imatrix",
        }
    }

    /// Whether the worker runs llama.cpp's threads with the passive wait
    /// policy: every job but the one that decodes a token at a time to time
    /// it (a quiet machine's spin is what llama-bench measures; sleeping
    /// threads made those decodes 2–3× slower).
    pub fn passive_wait(&self) -> bool {
        !matches!(self, Job::FamilyDecoding { .. })
    }

    /// Runs the job in this process.
    pub fn execute(&self, progress: &dyn Fn(&str)) -> Result<Output, JobError> {
        match self {
            Job::Embeddings { path, options } => {
                let (section, stages) = pipeline::analyse_embeddings(path, options)?;
                Ok(Output::Embeddings(Box::new(section), stages))
            }
            Job::Analyse {
                path,
                options,
                undertrained,
            } => Ok(Output::Analyse(Box::new(pipeline::analyse_behaviour(
                path,
                options,
                undertrained,
                progress,
            )?))),
            Job::Run { path, options } => {
                Ok(Output::Run(Box::new(run::run(path, options).map_err(
                    |e| -> JobError { format!("cannot run {}", path.display()).into_chain(e) },
                )?)))
            }
            Job::Ladder { reference, options } => {
                progress(&format!("quantizing {} types", options.types.len()));
                Ok(Output::Ladder(Box::new(family::make_ladder(
                    reference, options,
                )?)))
            }
            Job::Family {
                family: fam,
                eval_text,
                prompts,
                eval,
                session,
                analytics_device,
            } => Ok(Output::Family(Box::new(family::measure_batched(
                fam,
                eval_text,
                prompts,
                eval,
                *session,
                *analytics_device,
            )?))),
            Job::FamilyDecoding {
                family: fam,
                eval_text,
                prompts,
                session,
            } => Ok(Output::FamilyDecoding(Box::new(family::measure_decoding(
                fam, eval_text, prompts, *session,
            )?))),
            Job::Imatrix {
                path,
                text,
                options,
                session,
                out,
            } => {
                let context = |what: &str| format!("cannot {what} {}", path.display());
                let mut s = Session::load(path, *session)
                    .map_err(|e| -> JobError { context("load").into_chain(e) })?;
                let m = imatrix::compute(&mut s, text, options).map_err(|e| -> JobError {
                    context("compute the importance matrix of").into_chain(e)
                })?;
                m.write(out).map_err(|e| -> JobError {
                    format!("cannot write {}", out.display()).into_chain(e)
                })?;
                Ok(Output::Imatrix {
                    weights: m.entries.len(),
                    chunks: m.chunk_count,
                    chunk_size: m.chunk_size,
                })
            }
        }
    }
}

/// Wraps an error under a message, keeping it as the source.
trait IntoChain {
    fn into_chain<E: std::error::Error + Send + Sync + 'static>(self, source: E) -> JobError;
}

impl IntoChain for String {
    fn into_chain<E: std::error::Error + Send + Sync + 'static>(self, source: E) -> JobError {
        #[derive(Debug, thiserror::Error)]
        #[error("{message}")]
        struct Context<E: std::error::Error + 'static> {
            message: String,
            #[source]
            source: E,
        }
        Box::new(Context {
            message: self,
            source,
        })
    }
}

/// Runs `job` where `isolation` says, reporting progress and log lines to
/// `events`. In-process errors keep their chain as [`RemoteError`] text, so
/// both ways fail alike.
pub fn run_job(
    job: &Job,
    isolation: &Isolation,
    events: &mut dyn FnMut(Event),
) -> Result<Output, WorkerError> {
    match isolation {
        Isolation::InProcess => {
            let progress = std::cell::RefCell::new(&mut *events);
            job.execute(&|m| (progress.borrow_mut())(Event::Progress(m)))
                .map_err(|e| WorkerError::Failed(RemoteError::from_chain(&chain(e.as_ref()))))
        }
        Isolation::Worker(cmd) => run_in_worker(job, cmd, events),
    }
}

/// What one of the reader threads saw.
enum Seen {
    Frame(Result<Message, String>),
    Log(String),
}

fn run_in_worker(
    job: &Job,
    cmd: &WorkerCommand,
    events: &mut dyn FnMut(Event),
) -> Result<Output, WorkerError> {
    let file = job.file().to_path_buf();
    let input = serde_json::to_vec(job).map_err(|e| WorkerError::Protocol {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    let mut command = Command::new(&cmd.exe);
    command
        .args(&cmd.args)
        .arg(SUBCOMMAND)
        // ggml prints a gdb backtrace before aborting unless this is set,
        // and reads it at start-up, so it must be in the environment.
        .env("GGML_NO_BACKTRACE", "1");
    // llama.cpp's OpenMP threads spin while they wait; on a machine whose
    // cores are busy with other work they starve each other (a capture
    // pass 20-60x slower). OpenMP reads this once, at start-up, which is
    // one more reason the work runs in a process of its own. A user's own
    // setting wins. bench/busy_machine.py measures the difference.
    if std::env::var_os("OMP_WAIT_POLICY").is_none() && job.passive_wait() {
        command.env("OMP_WAIT_POLICY", "passive");
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| WorkerError::Spawn {
            exe: cmd.exe.clone(),
            source,
        })?;
    let (tx, rx) = mpsc::channel();
    let mut readers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let seen = match line.strip_prefix(FRAME) {
                    Some(json) => {
                        Seen::Frame(serde_json::from_str(json).map_err(|e| unreadable_reason(&e)))
                    }
                    None if line.is_empty() => continue,
                    None => Seen::Log(line),
                };
                if tx.send(seen).is_err() {
                    break;
                }
            }
        }));
    }
    if let Some(stderr) = child.stderr.take() {
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(Seen::Log(line)).is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);
    // A worker that dies before reading its job closes the pipe: that shows
    // in its exit status, so a failed write is not an error of its own.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&input);
    }

    let mut log: VecDeque<String> = VecDeque::with_capacity(KEPT_LOG_LINES);
    let mut last: Option<Message> = None;
    let mut unreadable = None;
    for seen in rx {
        match seen {
            Seen::Log(line) => {
                events(Event::Log(&line));
                if log.len() == KEPT_LOG_LINES {
                    log.pop_front();
                }
                log.push_back(line);
            }
            Seen::Frame(Ok(Message::Progress(m))) => events(Event::Progress(&m)),
            Seen::Frame(Ok(m)) => last = Some(m),
            Seen::Frame(Err(e)) => unreadable = Some(e),
        }
    }
    for r in readers {
        let _ = r.join();
    }
    let status = child.wait().map_err(|source| WorkerError::Spawn {
        exe: cmd.exe.clone(),
        source,
    })?;
    match last {
        Some(Message::Done(out)) if status.success() => Ok(out),
        Some(Message::Failed(chain)) => Err(WorkerError::Failed(RemoteError::from_chain(&chain))),
        Some(Message::Aborted(message)) => Err(WorkerError::Aborted {
            file,
            message: tidy_abort(&message),
        }),
        Some(Message::Panicked(message)) => Err(WorkerError::Panicked { file, message }),
        _ => match unreadable {
            Some(reason) => Err(WorkerError::Protocol { file, reason }),
            None => Err(WorkerError::Died {
                file,
                status: describe(status),
                log: last_meaningful(&log),
            }),
        },
    }
}

/// `…/ggml/src/ggml.c:1234: GGML_ASSERT(x) failed` →
/// `GGML_ASSERT(x) failed (ggml.c:1234)`.
fn tidy_abort(message: &str) -> String {
    let message = message.trim();
    // The location is "<path>:<line>: "; a path may hold colons, a line not.
    if let Some((location, text)) = message.split_once(": ")
        && let Some((path, line)) = location.rsplit_once(':')
        && !line.is_empty()
        && line.chars().all(|c| c.is_ascii_digit())
    {
        let name = Path::new(path)
            .file_name()
            .map_or(path.into(), |n| n.to_string_lossy());
        return format!("{text} ({name}:{line})");
    }
    message.to_owned()
}

fn describe(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                6 => " (SIGABRT)",
                9 => " (SIGKILL: out of memory?)",
                11 => " (SIGSEGV)",
                _ => "",
            };
            return format!("was killed by signal {signal}{name}");
        }
    }
    match status.code() {
        Some(code) => format!("exited with status {code} without an answer"),
        None => "ended without an answer".to_owned(),
    }
}

/// The last log line that says something went wrong, else the last line.
fn last_meaningful(log: &VecDeque<String>) -> Option<String> {
    let wrong = |l: &&String| {
        let lower = l.to_ascii_lowercase();
        lower.contains("error") || lower.contains("assert") || lower.contains("panicked")
    };
    log.iter()
        .rev()
        .find(wrong)
        .or_else(|| log.iter().rev().find(|l| !l.trim().is_empty()))
        .map(|l| l.trim().to_owned())
}

fn chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out
}

/// Why a frame could not be read, with the likely cause where JSON's lack
/// of NaN shows (serde_json writes a non-finite float as `null`; the engine
/// refuses non-finite traces, so this is a value computed after them).
fn unreadable_reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if text.contains("invalid type: null, expected f") {
        format!("{text} (a NaN or infinite number, which JSON cannot carry)")
    } else {
        text
    }
}

fn send(message: &Message) {
    // The frame goes out whole, in one write, so a ggml thread aborting at
    // the same time cannot cut into it.
    if let Ok(json) = serde_json::to_string(message) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(format!("\n{FRAME}{json}\n").as_bytes());
        let _ = out.flush();
    }
}

fn on_ggml_abort(message: &str) {
    send(&Message::Aborted(message.to_owned()));
}

/// The worker's main: reads one job from stdin, runs it, answers on stdout.
/// Returns the process's exit code.
pub fn serve() -> u8 {
    crate::engine::ffi::on_abort(on_ggml_abort);
    std::panic::set_hook(Box::new(|info| {
        let message = match info.payload().downcast_ref::<&str>() {
            Some(s) => (*s).to_owned(),
            None => info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "panic".to_owned()),
        };
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        send(&Message::Panicked(format!("{message}{at}")));
    }));
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        send(&Message::Failed(vec![format!(
            "the worker cannot read its job: {e}"
        )]));
        return 2;
    }
    let job: Job = match serde_json::from_str(&input) {
        Ok(job) => job,
        Err(e) => {
            send(&Message::Failed(vec![format!(
                "the worker cannot read its job: {e}"
            )]));
            return 2;
        }
    };
    #[cfg(debug_assertions)]
    if let Ok(message) = std::env::var(TEST_ABORT_ENV)
        && std::env::var(TEST_ABORT_JOB_ENV)
            .ok()
            .is_none_or(|k| k == job.kind())
    {
        crate::engine::ffi::ggml_abort_for_test(&message);
    }
    match job.execute(&|m| send(&Message::Progress(m.to_owned()))) {
        Ok(out) => {
            send(&Message::Done(out));
            0
        }
        Err(e) => {
            send(&Message::Failed(chain(e.as_ref())));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abort_messages_lose_their_build_paths() {
        assert_eq!(
            tidy_abort("/root/src/llama.cpp/ggml/src/ggml.c:1234: GGML_ASSERT(eps >= 0.0f) failed"),
            "GGML_ASSERT(eps >= 0.0f) failed (ggml.c:1234)"
        );
        assert_eq!(
            tidy_abort("C:/x/llama-model.cpp:77: fatal error: bad: thing"),
            "fatal error: bad: thing (llama-model.cpp:77)"
        );
        assert_eq!(tidy_abort("no location here"), "no location here");
    }

    #[test]
    fn remote_errors_keep_their_chain() {
        let e = RemoteError::from_chain(&["cannot run m.gguf".into(), "llama.cpp said no".into()]);
        assert_eq!(e.to_string(), "cannot run m.gguf");
        let source = std::error::Error::source(&e).map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("llama.cpp said no"));
        assert_eq!(chain(&e), ["cannot run m.gguf", "llama.cpp said no"]);
    }

    #[test]
    fn the_last_meaningful_line_is_an_error_if_any() {
        let log: VecDeque<String> = ["loading", "ERROR llama.cpp: bad eps", "freeing", ""]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            last_meaningful(&log).as_deref(),
            Some("ERROR llama.cpp: bad eps")
        );
        let quiet: VecDeque<String> = ["a", "b", " "].into_iter().map(String::from).collect();
        assert_eq!(last_meaningful(&quiet).as_deref(), Some("b"));
    }
}
