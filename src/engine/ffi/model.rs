//! A model loaded into llama.cpp, with its vocabulary and tokenizer.
//!
//! The model is its own type, shared through an `Arc`, because one loaded
//! model serves several contexts (a captured one, a plain one, contexts
//! remade for longer prompts) and must outlive all of them; tokenization
//! needs only the model, so prompts are measured before any context exists.

use std::ffi::CString;
use std::path::Path;
use std::ptr::{self, NonNull};

use llama_cpp_sys_2 as sys;

use super::{TokenId, clear_last_error, init, resolve_device, take_last_error, to_usize};
use crate::engine::device::Device;
use crate::engine::error::EngineError;

/// How to load a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModelParams {
    /// Where the weights go.
    pub device: Device,
    /// Layers to offload to a GPU device; `None` offloads all of them.
    /// Ignored on the CPU.
    pub gpu_layers: Option<u32>,
}

/// A model loaded into llama.cpp (weights memory-mapped from the file).
#[derive(Debug)]
pub struct Model {
    pub(super) ptr: NonNull<sys::llama_model>,
    vocab: NonNull<sys::llama_vocab>,
    n_vocab: i32,
}

// SAFETY: a loaded llama_model is immutable; llama.cpp shares one model
// between contexts on different threads (its server does exactly that), and
// the vocab functions used here are documented as thread-safe.
unsafe impl Send for Model {}
// SAFETY: see above.
unsafe impl Sync for Model {}

impl Model {
    /// Loads the GGUF file at `path`, memory-mapped, onto `params.device`.
    pub fn load(path: &Path, params: &ModelParams) -> Result<Model, EngineError> {
        Model::load_with(path, params, false)
    }

    /// Loads only the vocabulary of the GGUF file at `path` (no tensor is
    /// read): enough to tokenize and detokenize without a session.
    pub fn load_vocab(path: &Path) -> Result<Model, EngineError> {
        Model::load_with(
            path,
            &ModelParams {
                device: Device::Cpu,
                gpu_layers: None,
            },
            true,
        )
    }

    fn load_with(
        path: &Path,
        params: &ModelParams,
        vocab_only: bool,
    ) -> Result<Model, EngineError> {
        init();
        // A NULL-terminated device list: empty means CPU only (a null *list*
        // would mean "every device llama.cpp found").
        let mut devices: Vec<sys::ggml_backend_dev_t> = Vec::with_capacity(2);
        devices.extend(resolve_device(params.device)?);
        devices.push(ptr::null_mut());
        let c_path = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| {
            EngineError::ModelLoad {
                path: path.to_path_buf(),
                reason: Some("the path contains a NUL byte".into()),
            }
        })?;
        // SAFETY: returns a plain struct by value.
        let mut mp = unsafe { sys::llama_model_default_params() };
        mp.devices = devices.as_mut_ptr();
        mp.split_mode = sys::LLAMA_SPLIT_MODE_NONE;
        mp.main_gpu = 0;
        mp.load_mode = sys::LLAMA_LOAD_MODE_MMAP;
        mp.vocab_only = vocab_only;
        mp.n_gpu_layers = match params.device {
            Device::Cpu => 0,
            Device::Cuda(_) | Device::Vulkan(_) => params
                .gpu_layers
                .map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX)),
        };
        clear_last_error();
        // SAFETY: the path and the device list outlive the call; llama.cpp
        // copies the device list into the model.
        let raw = unsafe { sys::llama_model_load_from_file(c_path.as_ptr(), mp) };
        let ptr = NonNull::new(raw).ok_or_else(|| EngineError::ModelLoad {
            path: path.to_path_buf(),
            reason: take_last_error(),
        })?;
        // SAFETY: `ptr` is a live model; the vocab it returns lives as long.
        let (vocab, n_vocab) = unsafe {
            let vocab = sys::llama_model_get_vocab(ptr.as_ptr());
            (vocab, sys::llama_vocab_n_tokens(vocab))
        };
        let Some(vocab) = NonNull::new(vocab.cast_mut()) else {
            // SAFETY: `ptr` is live and owned here.
            unsafe { sys::llama_model_free(ptr.as_ptr()) };
            return Err(EngineError::ModelLoad {
                path: path.to_path_buf(),
                reason: Some("the model has no vocabulary".into()),
            });
        };
        Ok(Model {
            ptr,
            vocab,
            n_vocab,
        })
    }

    /// Number of transformer blocks.
    pub fn n_layer(&self) -> usize {
        // SAFETY: `self.ptr` is a live model (here and in the getters below).
        to_usize(unsafe { sys::llama_model_n_layer(self.ptr.as_ptr()) })
    }

    /// Query heads per layer (of layer 0 where layers differ).
    pub fn n_head(&self) -> usize {
        // SAFETY: see `n_layer`.
        to_usize(unsafe { sys::llama_model_n_head(self.ptr.as_ptr()) })
    }

    /// Key/value heads per layer (of layer 0 where layers differ).
    pub fn n_head_kv(&self) -> usize {
        // SAFETY: see `n_layer`.
        to_usize(unsafe { sys::llama_model_n_head_kv(self.ptr.as_ptr()) })
    }

    /// Width of the residual stream.
    pub fn n_embd(&self) -> usize {
        // SAFETY: see `n_layer`.
        to_usize(unsafe { sys::llama_model_n_embd(self.ptr.as_ptr()) })
    }

    /// Vocabulary size.
    pub fn n_vocab(&self) -> usize {
        to_usize(self.n_vocab)
    }

    /// A metadata string (`general.architecture`, ...), as llama.cpp read it.
    pub fn meta(&self, key: &str) -> Option<String> {
        let key = CString::new(key).ok()?;
        let mut buf = vec![0u8; 256];
        loop {
            // SAFETY: `buf` is writable for its length; llama.cpp writes at most
            // that many bytes, NUL included, and returns the full length.
            let n = unsafe {
                sys::llama_model_meta_val_str(
                    self.ptr.as_ptr(),
                    key.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            let n = usize::try_from(n).ok()?;
            if n < buf.len() {
                buf.truncate(n);
                return Some(String::from_utf8_lossy(&buf).into_owned());
            }
            buf.resize(n + 1, 0);
        }
    }

    /// The beginning-of-sequence token, if the vocabulary has one.
    pub fn bos(&self) -> Option<TokenId> {
        // SAFETY: `self.vocab` lives as long as the model.
        let t = unsafe { sys::llama_vocab_bos(self.vocab.as_ptr()) };
        self.valid(t).then_some(t)
    }

    /// Whether the vocabulary's tokenizer adds BOS at the start of a text
    /// (`tokenizer.ggml.add_bos_token`, or the tokenizer type's default).
    pub fn adds_bos(&self) -> bool {
        // SAFETY: `self.vocab` lives as long as the model.
        unsafe { sys::llama_vocab_get_add_bos(self.vocab.as_ptr()) }
    }

    /// Whether `token` ends a generation (EOS, EOT and the like).
    pub fn is_eog(&self, token: TokenId) -> bool {
        // SAFETY: the id is checked against the vocabulary first.
        self.valid(token) && unsafe { sys::llama_vocab_is_eog(self.vocab.as_ptr(), token) }
    }

    /// Bytes of the model's tensors as llama.cpp holds them
    /// (`llama_model_size`).
    pub fn size_bytes(&self) -> u64 {
        // SAFETY: `self.ptr` is a live model.
        unsafe { sys::llama_model_size(self.ptr.as_ptr()) }
    }

    /// Whether `token` is a control token (BOS, EOS, chat markers).
    pub fn is_control(&self, token: TokenId) -> bool {
        // SAFETY: the id is checked against the vocabulary first.
        self.valid(token) && unsafe { sys::llama_vocab_is_control(self.vocab.as_ptr(), token) }
    }

    pub(super) fn valid(&self, token: TokenId) -> bool {
        (0..self.n_vocab).contains(&token)
    }

    /// Tokenizes `text` exactly as llama.cpp does: with the model's special
    /// tokens added (BOS where the model asks for it) when `add_special`, and
    /// with special-token text (`<|im_start|>`) parsed when `parse_special`.
    pub fn tokenize(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<TokenId>, EngineError> {
        let text_len = i32::try_from(text.len())
            .map_err(|_| EngineError::Tokenizer("the text is longer than 2 GiB".into()))?;
        // One token per byte at most, plus BOS/EOS; retried if llama.cpp
        // says it needs more.
        let mut tokens: Vec<TokenId> = vec![0; text.len() + 8];
        loop {
            let cap = i32::try_from(tokens.len()).unwrap_or(i32::MAX);
            // SAFETY: `text` is valid for `text_len` bytes; `tokens` is
            // writable for `cap` entries.
            let n = unsafe {
                sys::llama_tokenize(
                    self.vocab.as_ptr(),
                    text.as_ptr().cast(),
                    text_len,
                    tokens.as_mut_ptr(),
                    cap,
                    add_special,
                    parse_special,
                )
            };
            match n {
                i32::MIN => return Err(EngineError::Tokenizer("too many tokens".into())),
                n if n < 0 => tokens.resize(to_usize(-n), 0),
                n => {
                    tokens.truncate(to_usize(n));
                    return Ok(tokens);
                }
            }
        }
    }

    /// The bytes of one token as llama.cpp renders it (`special`: show
    /// control tokens such as `<|im_start|>` instead of nothing). Byte-level
    /// tokens may be a fragment of a UTF-8 character.
    pub fn token_bytes(&self, token: TokenId, special: bool) -> Result<Vec<u8>, EngineError> {
        if !self.valid(token) {
            return Err(self.bad_token(token));
        }
        let mut buf = vec![0u8; 32];
        loop {
            let cap = i32::try_from(buf.len()).unwrap_or(i32::MAX);
            // SAFETY: the id is valid; `buf` is writable for `cap` bytes.
            let n = unsafe {
                sys::llama_token_to_piece(
                    self.vocab.as_ptr(),
                    token,
                    buf.as_mut_ptr().cast(),
                    cap,
                    0,
                    special,
                )
            };
            if n < 0 {
                buf.resize(to_usize(-n), 0);
            } else {
                buf.truncate(to_usize(n));
                return Ok(buf);
            }
        }
    }

    /// Turns tokens back into text, as llama.cpp's `llama_detokenize` does
    /// (`remove_special`: drop the BOS/EOS the model adds; `unparse_special`:
    /// render control tokens as text).
    pub fn detokenize(
        &self,
        tokens: &[TokenId],
        remove_special: bool,
        unparse_special: bool,
    ) -> Result<String, EngineError> {
        if let Some(&bad) = tokens.iter().find(|&&t| !self.valid(t)) {
            return Err(self.bad_token(bad));
        }
        let n_tokens = i32::try_from(tokens.len())
            .map_err(|_| EngineError::Tokenizer("too many tokens".into()))?;
        let mut buf = vec![0u8; tokens.len() * 8 + 16];
        loop {
            let cap = i32::try_from(buf.len()).unwrap_or(i32::MAX);
            // SAFETY: every id is valid; `tokens` is readable for `n_tokens`
            // entries and `buf` writable for `cap` bytes.
            let n = unsafe {
                sys::llama_detokenize(
                    self.vocab.as_ptr(),
                    tokens.as_ptr(),
                    n_tokens,
                    buf.as_mut_ptr().cast(),
                    cap,
                    remove_special,
                    unparse_special,
                )
            };
            if n < 0 {
                buf.resize(to_usize(-n), 0);
            } else {
                buf.truncate(to_usize(n));
                return String::from_utf8(buf).map_err(|e| {
                    EngineError::Tokenizer(format!("detokenized text is not UTF-8: {e}"))
                });
            }
        }
    }

    pub(super) fn bad_token(&self, token: TokenId) -> EngineError {
        EngineError::Tokenizer(format!(
            "token id {token} is outside the vocabulary of {} tokens",
            self.n_vocab
        ))
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: the model is owned here; contexts hold an `Arc<Model>`, so
        // none outlives it.
        unsafe { sys::llama_model_free(self.ptr.as_ptr()) };
    }
}
