//! A loaded model ready to run prompts: the engine's entry point.
//!
//! A [`Session`] validates the file with ggviz's own reader, loads it into
//! llama.cpp once, and then runs any number of prompts, each as one batch in
//! a context sized for it: [`Session::trace`] with the eval callback
//! capturing a [`Trace`], [`Session::logits`] on llama.cpp's plain path with
//! no callback, the reference the captured run is checked against. Contexts
//! are kept between prompts and only remade when a longer prompt comes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::capture::{
    Attention, CaptureOptions, CaptureTiming, HeadCapture, HeadContributions, Intervention,
    LayerTrace, Matrix, Token, Trace, TraceDims, first_non_finite,
};
use super::device::Device;
use super::error::EngineError;
use super::ffi::{Context, ContextParams, DeviceMatrix, EvalObserver, Model, ModelParams, TokenId};
use super::heads::{self, HeadGrams, HeadProjector, TensorBytes};
use super::observer::{Captured, Capturer, Node, RESULT_NORM};
use crate::anatomy::{Anatomy, runnable};
use crate::gguf::GgufModel;

/// The longest prompt accepted unless told otherwise. Attention grows with
/// the square of the length (SmolLM2 at 512 tokens: 283 MB of it), so the
/// limit keeps a trace's memory predictable.
pub const DEFAULT_MAX_TOKENS: usize = 512;

/// Contexts are sized in steps of this many tokens, so prompts of similar
/// length share one.
const CONTEXT_STEP: usize = 64;

/// How to load and run a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionOptions {
    /// Where the model runs.
    pub device: Device,
    /// Layers to offload to a GPU device (`None`: all). Not allowed on the CPU.
    pub gpu_layers: Option<u32>,
    /// CPU threads (0: all available cores).
    pub threads: usize,
    /// Longest prompt accepted, in tokens.
    pub max_tokens: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            device: Device::Cpu,
            gpu_layers: None,
            threads: 0,
            max_tokens: DEFAULT_MAX_TOKENS,
        }
    }
}

/// A model loaded into llama.cpp.
#[derive(Debug)]
pub struct Session {
    path: PathBuf,
    gguf: GgufModel,
    model: Arc<Model>,
    architecture: String,
    /// The model's shape (`n_tokens` is 0 here; see [`Session::dims`]).
    shape: TraceDims,
    options: SessionOptions,
    threads: usize,
    /// Context with the eval callback, for captured runs.
    observed: Option<Context>,
    /// Context without it, llama.cpp's plain path.
    plain: Option<Context>,
    /// Context as people run llama.cpp: no callback, flash attention where
    /// the backend has it (`-fa auto`).
    as_run: Option<Context>,
    /// Plain context for many short sequences at once.
    sequences: Option<Context>,
    /// The per-head Gram matrices of `W_o`, for head norms.
    grams: HeadGrams,
    load_ms: f64,
}

impl Session {
    /// Validates and loads the GGUF file at `path`.
    pub fn load(path: impl AsRef<Path>, options: SessionOptions) -> Result<Session, EngineError> {
        let path = path.as_ref();
        let start = Instant::now();
        if options.max_tokens == 0 {
            return Err(EngineError::InvalidRequest(
                "the token limit must be at least 1".into(),
            ));
        }
        if options.device == Device::Cpu && options.gpu_layers.is_some_and(|n| n > 0) {
            return Err(EngineError::InvalidRequest(
                "GPU layers need a GPU device (--device cuda:N)".into(),
            ));
        }
        // ggviz's reader validates every byte of the index before llama.cpp
        // sees the file, and gives the engine the weights it dequantizes.
        let gguf = GgufModel::open(path)?;
        // Values llama.cpp would assert on (and abort) are refused here, with
        // the key that holds them.
        let anatomy = Anatomy::from_model(&gguf).map_err(|e| EngineError::NotRunnable {
            path: path.to_path_buf(),
            problems: vec![e.to_string()],
        })?;
        runnable::check(&anatomy, &gguf).map_err(|e| EngineError::NotRunnable {
            path: path.to_path_buf(),
            problems: e.problems,
        })?;
        let model = Model::load(
            path,
            &ModelParams {
                device: options.device,
                gpu_layers: options.gpu_layers,
            },
        )?;
        let n_head = model.n_head();
        let head_dim = Some(anatomy.hparams.head_dim_v as usize)
            .filter(|&d| d > 0)
            .unwrap_or_else(|| model.n_embd() / n_head.max(1));
        let shape = TraceDims {
            n_layer: model.n_layer(),
            n_head,
            n_head_kv: model.n_head_kv(),
            head_dim,
            n_embd: model.n_embd(),
            n_vocab: model.n_vocab(),
            n_tokens: 0,
        };
        let threads = match options.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        Ok(Session {
            path: path.to_path_buf(),
            architecture: model.meta("general.architecture").unwrap_or_default(),
            gguf,
            model: Arc::new(model),
            shape,
            options,
            threads,
            observed: None,
            plain: None,
            as_run: None,
            sequences: None,
            grams: HeadGrams::default(),
            load_ms: ms(start),
        })
    }

    /// The file the model came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// ggviz's validated view of the file (metadata, tensor index, bytes).
    pub fn gguf(&self) -> &GgufModel {
        &self.gguf
    }

    /// `general.architecture`, as llama.cpp read it.
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// The options the session was loaded with.
    pub fn options(&self) -> &SessionOptions {
        &self.options
    }

    /// CPU threads used for decoding and post-processing.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Milliseconds the load took (validation and llama.cpp's load).
    pub fn load_ms(&self) -> f64 {
        self.load_ms
    }

    /// The shape of a trace of `n_tokens` tokens.
    pub fn dims(&self, n_tokens: usize) -> TraceDims {
        TraceDims {
            n_tokens,
            ..self.shape
        }
    }

    /// Bytes of the trace `options` would capture for `n_tokens` tokens.
    pub fn trace_bytes(&self, n_tokens: usize, options: &CaptureOptions) -> u64 {
        options.trace_bytes(&self.dims(n_tokens))
    }

    /// Tokenizes `text` as llama.cpp does for a prompt: the model's special
    /// tokens added (BOS where its metadata asks for it) and special-token
    /// text such as `<|im_start|>` parsed into its token.
    pub fn tokenize(&self, text: &str) -> Result<Vec<Token>, EngineError> {
        self.model
            .tokenize(text, true, true)?
            .into_iter()
            .map(|id| self.token(id))
            .collect()
    }

    /// One token with its piece.
    pub fn token(&self, id: TokenId) -> Result<Token, EngineError> {
        Ok(Token {
            id,
            piece: piece_text(&self.model.token_bytes(id, true)?),
            special: self.model.is_control(id),
        })
    }

    /// Turns tokens back into text (the BOS the tokenizer added removed,
    /// special tokens written out), the inverse of [`Session::tokenize`].
    pub fn detokenize(&self, ids: &[TokenId]) -> Result<String, EngineError> {
        self.model.detokenize(ids, true, true)
    }

    /// The model's BOS token, if it has one.
    pub fn bos(&self) -> Option<TokenId> {
        self.model.bos()
    }

    /// The BOS token that starts each chunk of a long text, as
    /// llama-perplexity and llama-imatrix put it there: only where the
    /// vocabulary adds BOS to a text (SmolLM2's does not, so its chunks
    /// start with the text's own token).
    pub fn chunk_bos(&self) -> Option<TokenId> {
        self.model.bos().filter(|_| self.model.adds_bos())
    }

    /// Refuses prompts that are empty or longer than the session's limit.
    pub fn check_length(&self, n_tokens: usize) -> Result<(), EngineError> {
        if n_tokens == 0 {
            Err(EngineError::EmptyPrompt)
        } else if n_tokens > self.options.max_tokens {
            Err(EngineError::PromptTooLong {
                n_tokens,
                max_tokens: self.options.max_tokens,
            })
        } else {
            Ok(())
        }
    }

    /// Dequantizes tensor `name` of the file to f32 with ggml's own
    /// dequantizer: the weights llama.cpp computes with (the output norm for
    /// the logit lens, weights for checks). Large matrices that analyses
    /// multiply by go to [`Session::device_matrix`] instead.
    pub fn dequantize(&self, name: &str) -> Result<Vec<f32>, EngineError> {
        let mut out = Vec::new();
        heads::dequantize_tensor(&self.gguf, name, &mut TensorBytes::default(), &mut out)?;
        Ok(out)
    }

    /// Tensor `name` (`n_out` rows of `n_in`, as GGUF's `[n_in, n_out]`)
    /// copied as stored to `device`, for products with ggml's own kernels
    /// there; the CPU backend uses this session's thread count.
    pub fn device_matrix(
        &self,
        name: &str,
        device: Device,
        n_in: usize,
        n_out: usize,
    ) -> Result<DeviceMatrix, EngineError> {
        let info = heads::tensor_info(&self.gguf, name)?;
        if info.dims != [n_in as u64, n_out as u64] {
            return Err(EngineError::Tensor {
                name: name.to_string(),
                reason: format!("shape {:?}, expected [{n_in}, {n_out}]", info.dims),
            });
        }
        let mut bytes = TensorBytes::default();
        let data = bytes.read(&self.gguf, info)?;
        DeviceMatrix::upload(
            device,
            name,
            info.ggml_type,
            data,
            n_in,
            n_out,
            self.threads,
        )
    }

    /// The output head's tensor: `output.weight`, or the token embeddings
    /// where the model ties them (llama.cpp does the same fallback).
    pub fn output_weight_name(&self) -> &'static str {
        if self.gguf.tensor("output.weight").is_some() {
            "output.weight"
        } else {
            "token_embd.weight"
        }
    }

    /// Tokenizes `prompt` and runs it with the capture; see
    /// [`Session::trace_ids`].
    pub fn trace(&mut self, prompt: &str, options: &CaptureOptions) -> Result<Trace, EngineError> {
        let ids: Vec<TokenId> = self.model.tokenize(prompt, true, true)?;
        self.trace_ids(&ids, options)
    }

    /// Runs `ids` as one batch with the eval callback, capturing what
    /// `options` asks for and applying its interventions.
    pub fn trace_ids(
        &mut self,
        ids: &[TokenId],
        options: &CaptureOptions,
    ) -> Result<Trace, EngineError> {
        self.check_length(ids.len())?;
        let dims = self.dims(ids.len());
        let tokens = ids
            .iter()
            .map(|&id| self.token(id))
            .collect::<Result<Vec<_>, _>>()?;
        let projector = HeadProjector::new(
            &self.gguf,
            dims,
            options.heads == HeadCapture::Full,
            self.options.device == Device::Cpu,
            &mut self.grams,
        );
        let mut capturer = Capturer::new(dims, options, Some(projector))?;
        let ctx = context(
            &mut self.observed,
            &self.model,
            self.threads,
            Route::Observed,
            ids.len(),
        )?;
        let start = Instant::now();
        ctx.decode(ids, Some(&mut capturer))?;
        let decode_ms = ms(start);
        // Working buffers go before the logits are copied out.
        let captured = capturer.finish();
        check_interventions(&captured, options)?;
        let missing = missing_nodes(&captured, options);
        let mut notes = captured.notes.clone();
        notes.extend(partial_offers(&captured, dims.n_layer));
        let offered = captured
            .offered
            .iter()
            .map(|(name, layers)| (name.clone(), layers.len()))
            .collect();
        let callback_ms = captured.busy.as_secs_f64() * 1e3;
        let heads_ms = captured.heads_busy.as_secs_f64() * 1e3;
        let mut layers = Vec::with_capacity(dims.n_layer);
        let (t, e) = (dims.n_tokens, dims.n_embd);
        let matrix = |data: Vec<f32>| Matrix {
            rows: t,
            cols: e,
            data,
        };
        let heads = |data: Vec<f32>| match options.heads {
            HeadCapture::Full => HeadContributions::Full {
                n_head: dims.n_head,
                n_tokens: t,
                n_embd: e,
                data,
            },
            HeadCapture::Norms | HeadCapture::Off => HeadContributions::Norms {
                n_head: dims.n_head,
                n_tokens: t,
                data,
            },
        };
        for slots in captured.layers {
            layers.push(LayerTrace {
                attention: slots
                    .attention
                    .and_then(|s| s.take())
                    .map(|data| Attention {
                        n_head: dims.n_head,
                        n_tokens: t,
                        data,
                    }),
                hidden: slots.hidden.and_then(|s| s.take()).map(matrix),
                attn_out: slots.attn_out.and_then(|s| s.take()).map(matrix),
                ffn_out: slots.ffn_out.and_then(|s| s.take()).map(matrix),
                heads: slots.heads.and_then(|s| s.take()).map(heads),
            });
        }
        let final_norm = captured.final_norm.and_then(|s| s.take()).map(matrix);
        let logits = copy_logits(ctx, ids.len(), dims.n_vocab)?;
        let trace = Trace {
            dims,
            tokens,
            options: options.clone(),
            layers,
            final_norm,
            logits,
            offered,
            missing,
            notes,
            timing: CaptureTiming {
                decode_ms,
                callback_ms,
                heads_ms,
            },
        };
        // NaN cannot travel in the worker's JSON nor mean anything on a
        // page: say where it starts instead.
        match trace.first_non_finite() {
            Some(at) => Err(EngineError::NotFinite { at }),
            None => Ok(trace),
        }
    }

    /// Runs `ids` as one batch with the eval callback, handing the graph to
    /// `observer` (the importance-matrix collector chooses nodes by
    /// operation, which [`Session::trace_ids`]'s capture does not).
    pub fn observe_ids(
        &mut self,
        ids: &[TokenId],
        observer: &mut dyn EvalObserver,
    ) -> Result<(), EngineError> {
        self.check_length(ids.len())?;
        let ctx = context(
            &mut self.observed,
            &self.model,
            self.threads,
            Route::Observed,
            ids.len(),
        )?;
        ctx.decode(ids, Some(observer))
    }

    /// Runs `ids` as one batch on llama.cpp's plain path (no eval callback)
    /// and returns the logits at every position (`n_tokens × n_vocab`).
    pub fn logits(&mut self, ids: &[TokenId]) -> Result<Matrix, EngineError> {
        self.check_length(ids.len())?;
        let n_vocab = self.shape.n_vocab;
        let ctx = context(
            &mut self.plain,
            &self.model,
            self.threads,
            Route::Plain,
            ids.len(),
        )?;
        ctx.decode(ids, None)?;
        let logits = copy_logits(ctx, ids.len(), n_vocab)?;
        match first_non_finite(&logits.data, n_vocab) {
            Some((row, v)) => Err(EngineError::NotFinite {
                at: format!("the logits at token {row}: {v}"),
            }),
            None => Ok(logits),
        }
    }

    /// The logits of positions `first..` of `ids`, decoded as one batch on
    /// the plain path with outputs asked for those positions only (row `i`
    /// of the result is position `first + i`), as llama-perplexity scores
    /// the second half of a chunk.
    pub fn logits_from(&mut self, ids: &[TokenId], first: usize) -> Result<Matrix, EngineError> {
        self.check_length(ids.len())?;
        if first >= ids.len() {
            return Err(EngineError::InvalidRequest(format!(
                "logits from position {first} of {} tokens",
                ids.len()
            )));
        }
        let n_vocab = self.shape.n_vocab;
        let ctx = context(
            &mut self.plain,
            &self.model,
            self.threads,
            Route::Plain,
            ids.len(),
        )?;
        ctx.decode_logits_from(ids, first)?;
        copy_logit_rows(ctx, first..ids.len(), n_vocab)
    }

    /// A greedy continuation of `ids`: `n` times the most probable next
    /// token (the lowest id among equals), stopping early after a token
    /// that ends a generation (EOS, EOT). Decoded incrementally on
    /// llama.cpp's plain path, the prompt as one batch and then one token
    /// at a time with the KV cache kept, as llama.cpp generates.
    pub fn greedy(&mut self, ids: &[TokenId], n: usize) -> Result<Vec<TokenId>, EngineError> {
        self.check_length(ids.len() + n)?;
        let ctx = context(
            &mut self.plain,
            &self.model,
            self.threads,
            Route::Plain,
            ids.len() + n,
        )?;
        ctx.decode_at(ids, 0, false)?;
        let mut out = Vec::with_capacity(n);
        let mut at = ids.len() - 1;
        while out.len() < n {
            let row = ctx.logits(at).ok_or_else(|| EngineError::Decode {
                status: 0,
                reason: Some(format!("no logits for position {at}")),
            })?;
            let next = argmax(row);
            out.push(next);
            if self.model.is_eog(next) || out.len() == n {
                break;
            }
            ctx.decode_at(&[next], ids.len() + out.len() - 1, false)?;
            at = 0;
        }
        Ok(out)
    }

    /// One timed run as llama-bench does it, on the path people run
    /// (`-fa auto`, no callback): `prompt` decoded as one batch (logits of
    /// the last token only), then `n_gen` tokens decoded one at a time
    /// after it. Returns the seconds of each part.
    pub fn time_decode(
        &mut self,
        prompt: &[TokenId],
        n_gen: usize,
    ) -> Result<(f64, f64), EngineError> {
        self.check_length(prompt.len() + n_gen)?;
        let ctx = context(
            &mut self.as_run,
            &self.model,
            self.threads,
            Route::AsRun,
            prompt.len() + n_gen,
        )?;
        let start = Instant::now();
        ctx.decode_at(prompt, 0, false)?;
        let pp = start.elapsed().as_secs_f64();
        let token = prompt.last().copied().unwrap_or_default();
        let start = Instant::now();
        for i in 0..n_gen {
            ctx.decode_at(&[token], prompt.len() + i, false)?;
        }
        Ok((pp, start.elapsed().as_secs_f64()))
    }

    /// Bytes of the model's tensors as llama.cpp holds them
    /// (`llama_model_size`).
    pub fn model_bytes(&self) -> u64 {
        self.model.size_bytes()
    }

    /// Runs each of `seqs` as its own sequence, all in one batch on
    /// llama.cpp's plain path, and returns the logits after each one's last
    /// token: many short prompts for the price of one graph.
    pub fn last_logits(&mut self, seqs: &[&[TokenId]]) -> Result<Vec<Vec<f32>>, EngineError> {
        self.last_logits_after(&[], seqs)
    }

    /// [`Session::last_logits`] of `prefix` followed by each of `seqs`, the
    /// shared prefix decoded once.
    pub fn last_logits_after(
        &mut self,
        prefix: &[TokenId],
        seqs: &[&[TokenId]],
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        let total: usize = prefix.len() + seqs.iter().map(|s| s.len()).sum::<usize>();
        for s in seqs {
            self.check_length(prefix.len() + s.len())?;
        }
        let n_tokens = u32::try_from(total.div_ceil(CONTEXT_STEP).max(1) * CONTEXT_STEP)
            .map_err(|_| EngineError::InvalidRequest("prompts too long".into()))?;
        let n_seq = u32::try_from(seqs.len().max(1))
            .map_err(|_| EngineError::InvalidRequest("too many prompts".into()))?;
        if self
            .sequences
            .as_ref()
            .is_none_or(|c| c.params().n_tokens < n_tokens || c.n_seq() < n_seq as usize)
        {
            self.sequences = None;
            self.sequences = Some(Context::new_sequences(
                Arc::clone(&self.model),
                n_tokens,
                n_seq,
                u32::try_from(self.threads).unwrap_or(u32::MAX),
            )?);
        }
        let ctx = self
            .sequences
            .as_mut()
            .ok_or_else(|| EngineError::InvalidRequest("no context".into()))?;
        ctx.decode_sequences_after(prefix, seqs)
    }

    /// Runs `ids` as people run llama.cpp (`-fa auto`: flash attention where
    /// the backend supports it, no eval callback) and returns the logits at
    /// every position: how far the page's numbers, computed with flash
    /// attention off, are from what users of llama.cpp get.
    pub fn logits_as_run(&mut self, ids: &[TokenId]) -> Result<Matrix, EngineError> {
        self.check_length(ids.len())?;
        let n_vocab = self.shape.n_vocab;
        let ctx = context(
            &mut self.as_run,
            &self.model,
            self.threads,
            Route::AsRun,
            ids.len(),
        )?;
        ctx.decode(ids, None)?;
        copy_logits(ctx, ids.len(), n_vocab)
    }
}

/// Which of llama.cpp's paths a context takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// With the eval callback and flash attention off: the capture.
    Observed,
    /// No callback, flash attention off: the capture's own reference.
    Plain,
    /// No callback, flash attention as llama.cpp chooses (`-fa auto`).
    AsRun,
}

/// The context in `slot`, made (or remade, when too small) for `n_tokens`.
fn context<'s>(
    slot: &'s mut Option<Context>,
    model: &Arc<Model>,
    threads: usize,
    route: Route,
    n_tokens: usize,
) -> Result<&'s mut Context, EngineError> {
    let params = ContextParams {
        n_tokens: u32::try_from(n_tokens.div_ceil(CONTEXT_STEP) * CONTEXT_STEP)
            .map_err(|_| EngineError::InvalidRequest("prompt too long".into()))?,
        n_threads: u32::try_from(threads).unwrap_or(u32::MAX),
        observable: route == Route::Observed,
        flash_attention: route == Route::AsRun,
    };
    if slot
        .as_ref()
        .is_none_or(|c| (c.params().n_tokens as usize) < n_tokens)
    {
        // Free the old context before making the bigger one.
        *slot = None;
        *slot = Some(Context::new(Arc::clone(model), params)?);
    }
    slot.as_mut()
        .ok_or_else(|| EngineError::InvalidRequest("no context".into()))
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// The index of the largest logit, the lowest among equals.
fn argmax(row: &[f32]) -> TokenId {
    let mut best = 0;
    for (i, &l) in row.iter().enumerate() {
        if l > row[best] {
            best = i;
        }
    }
    TokenId::try_from(best).unwrap_or_default()
}

/// Copies the logits of every position out of llama.cpp's output buffer.
fn copy_logits(ctx: &Context, n_tokens: usize, n_vocab: usize) -> Result<Matrix, EngineError> {
    copy_logit_rows(ctx, 0..n_tokens, n_vocab)
}

/// Copies the logits of `positions` (asked for in the last decode) out of
/// llama.cpp's output buffer, one row each.
fn copy_logit_rows(
    ctx: &Context,
    positions: std::ops::Range<usize>,
    n_vocab: usize,
) -> Result<Matrix, EngineError> {
    let mut data = Vec::with_capacity(positions.len() * n_vocab);
    for i in positions.clone() {
        let row = ctx.logits(i).ok_or_else(|| EngineError::Decode {
            status: 0,
            reason: Some(format!("no logits for position {i}")),
        })?;
        data.extend_from_slice(row);
    }
    Ok(Matrix {
        rows: positions.len(),
        cols: n_vocab,
        data,
    })
}

/// Writes a token's bytes as text; bytes that are not UTF-8 on their own
/// (a byte-fallback token holding part of a character) become `<0xE2>`.
fn piece_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("<0x{b:02X}>"));
        }
    }
    out
}

/// The graph nodes `options` needs.
fn requested(options: &CaptureOptions) -> Vec<&'static str> {
    let mut names = Vec::new();
    if options.attention {
        names.push(Node::Attention.base());
    }
    if options.heads != HeadCapture::Off {
        names.push(Node::HeadOutputs.base());
    }
    if options.hidden {
        names.push(Node::Hidden.base());
    }
    if options.blocks {
        names.extend([Node::AttnOut.base(), Node::FfnOut.base()]);
    }
    if options.final_norm {
        names.push(RESULT_NORM);
    }
    names
}

fn missing_nodes(captured: &Captured, options: &CaptureOptions) -> Vec<String> {
    requested(options)
        .into_iter()
        .filter(|n| !captured.offered.contains_key(*n))
        .map(str::to_string)
        .collect()
}

/// Notes for per-layer nodes that only some layers offered (hybrid models
/// whose recurrent layers have no attention, for instance).
fn partial_offers(captured: &Captured, n_layer: usize) -> Vec<String> {
    [
        Node::Attention,
        Node::HeadOutputs,
        Node::Hidden,
        Node::AttnOut,
        Node::FfnOut,
    ]
    .into_iter()
    .filter_map(|node| {
        let layers = captured.offered.get(node.base())?;
        (layers.len() < n_layer).then(|| {
            format!(
                "{} is offered by {} of {n_layer} layers",
                node.base(),
                layers.len()
            )
        })
    })
    .collect()
}

/// An intervention that could not be applied would make the run look like
/// an ablation when it was not, so it is an error.
fn check_interventions(captured: &Captured, options: &CaptureOptions) -> Result<(), EngineError> {
    for iv in &options.interventions {
        let (layer, node) = match iv {
            Intervention::ZeroHeads { layer, .. } => (*layer, Node::HeadOutputs),
            Intervention::ZeroAttentionOutput { layer } => (*layer, Node::AttnOut),
        };
        let applied = captured
            .layers
            .get(layer)
            .is_some_and(|slots| slots.applied(node));
        if !applied {
            let reason = captured
                .notes
                .iter()
                .find(|n| n.contains(&format!("{}-{layer}", node.base())))
                .cloned()
                .unwrap_or_else(|| format!("the graph has no {}-{layer}", node.base()));
            return Err(EngineError::InvalidRequest(format!(
                "intervention {iv:?} could not be applied: {reason}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_escape_bytes_that_are_not_utf8() {
        assert_eq!(piece_text(b" Paris"), " Paris");
        assert_eq!(piece_text(&[0xE2]), "<0xE2>");
        assert_eq!(piece_text("é".as_bytes()), "é");
        assert_eq!(piece_text(&[b'a', 0xFF, b'b']), "a<0xFF>b");
    }

    #[test]
    fn missing_and_partial_nodes_are_reported() {
        let captured = Captured {
            layers: Vec::new(),
            final_norm: None,
            offered: [
                ("kq_soft_max".to_string(), [0].into()),
                ("l_out".to_string(), [0, 1].into()),
                ("result_norm".to_string(), Default::default()),
            ]
            .into(),
            notes: Vec::new(),
            busy: Default::default(),
            heads_busy: Default::default(),
        };
        let missing = missing_nodes(&captured, &CaptureOptions::default());
        assert_eq!(missing, ["kqv_out", "attn_out", "ffn_out"]);
        assert_eq!(
            partial_offers(&captured, 2),
            ["kq_soft_max is offered by 1 of 2 layers"]
        );
        let ablation = CaptureOptions {
            interventions: vec![Intervention::ZeroAttentionOutput { layer: 0 }],
            ..CaptureOptions::logits_only()
        };
        let err = check_interventions(&captured, &ablation).unwrap_err();
        assert!(
            err.to_string().contains("the graph has no attn_out-0"),
            "{err}"
        );
    }

    #[test]
    fn requested_nodes_follow_the_options() {
        assert!(requested(&CaptureOptions::logits_only()).is_empty());
        assert_eq!(
            requested(&CaptureOptions::default()),
            [
                "kq_soft_max",
                "kqv_out",
                "l_out",
                "attn_out",
                "ffn_out",
                "result_norm"
            ]
        );
    }
}
