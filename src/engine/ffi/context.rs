//! Inference contexts, one-batch decode and the eval callback.
//!
//! llama.cpp fixes the eval callback when a context is created, so a
//! context either always has it or never does; the callback reaches the
//! Rust observer of the decode in progress through a slot the context owns,
//! filled only while `decode` runs.

use std::any::Any;
use std::cell::Cell;
use std::ffi::{CStr, c_void};
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::Arc;

use llama_cpp_sys_2 as sys;

use super::model::Model;
use super::{TokenId, clear_last_error, init, take_last_error, to_usize};
use crate::engine::error::EngineError;

/// How to create a context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextParams {
    /// The most tokens one decode may hold. The context's KV cache, its batch
    /// and its micro-batch all get this size, so a prompt is always computed
    /// as one graph and the eval callback sees each tensor once.
    pub n_tokens: u32,
    /// CPU threads for the decode.
    pub n_threads: u32,
    /// Install the eval callback. A context without it is llama.cpp's plain
    /// path, used as the reference the captured run is checked against.
    pub observable: bool,
    /// Let llama.cpp choose flash attention as people run it (`-fa auto`).
    /// The capture needs it off (the attention probabilities exist as a
    /// tensor only then), so only an unobserved context may turn it on.
    pub flash_attention: bool,
}

/// Watches a decode through llama.cpp's eval callback
/// (`ggml_backend_sched_eval_callback`).
///
/// For every node of the compute graph the scheduler first asks whether the
/// node is wanted (`wants`); for each wanted node it computes the graph up to
/// that node, synchronises the backend and hands over the result
/// (`observe`). Writing into an observed tensor changes what the rest of the
/// graph computes from it: that is how heads are ablated.
pub trait EvalObserver {
    /// Whether the observer wants to see the node named `name` once computed.
    fn wants(&mut self, name: &str) -> bool;
    /// Whether the observer wants `node` once computed, asked before it is
    /// computed (its sources are known, its data is not). By default the
    /// name alone decides ([`EvalObserver::wants`]); observers that choose
    /// by operation (every matrix product, for the importance matrix)
    /// override it.
    fn wants_node(&mut self, node: &ObservedTensor<'_>) -> bool {
        self.wants(node.name())
    }
    /// Receives a wanted node, computed. Returning `false` stops the graph.
    fn observe(&mut self, tensor: &mut ObservedTensor<'_>) -> bool;
}

/// The observer of the decode in progress, reachable from the C callback.
/// It lives in a `Box` whose address is the callback's user data.
#[derive(Default)]
struct ObserverSlot {
    observer: Cell<Option<NonNull<dyn EvalObserver>>>,
    panic: Cell<Option<Box<dyn Any + Send>>>,
}

/// A llama.cpp inference context over a shared model.
pub struct Context {
    ptr: NonNull<sys::llama_context>,
    slot: Box<ObserverSlot>,
    params: ContextParams,
    model: Arc<Model>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

// SAFETY: a llama_context is not tied to the thread that made it; every use
// goes through `&mut self`, so it is never used from two threads at once.
// The observer slot is only touched during `decode`, on the calling thread
// (ggml's scheduler runs the eval callback on the thread that decodes).
unsafe impl Send for Context {}

impl Context {
    /// Creates a context for prompts of up to `params.n_tokens` tokens, with
    /// flash attention disabled so `kq_soft_max-L` is a node of the graph, and
    /// a full-size sliding-window cache so every layer's KV cells line up with
    /// token positions.
    pub fn new(model: Arc<Model>, params: ContextParams) -> Result<Context, EngineError> {
        init();
        let invalid = |what: &str| EngineError::InvalidRequest(format!("context: {what}"));
        if params.n_tokens == 0 {
            return Err(invalid("the token budget must be at least 1"));
        }
        let threads = i32::try_from(params.n_threads.max(1)).map_err(|_| invalid("threads"))?;
        let slot = Box::<ObserverSlot>::default();
        // SAFETY: returns a plain struct by value.
        let mut cp = unsafe { sys::llama_context_default_params() };
        cp.n_ctx = params.n_tokens;
        cp.n_batch = params.n_tokens;
        cp.n_ubatch = params.n_tokens;
        cp.n_seq_max = 1;
        cp.n_threads = threads;
        cp.n_threads_batch = threads;
        if params.flash_attention && params.observable {
            return Err(invalid("the capture needs flash attention off"));
        }
        cp.flash_attn_type = if params.flash_attention {
            sys::LLAMA_FLASH_ATTN_TYPE_AUTO
        } else {
            sys::LLAMA_FLASH_ATTN_TYPE_DISABLED
        };
        cp.swa_full = true;
        cp.no_perf = true;
        cp.embeddings = false;
        if params.observable {
            cp.cb_eval = Some(eval_trampoline);
            cp.cb_eval_user_data = ptr::from_ref::<ObserverSlot>(&slot).cast_mut().cast();
        }
        clear_last_error();
        // SAFETY: the model is live (held by the Arc stored below); the slot
        // is heap-allocated, so its address stays valid while the context
        // lives, and it is dropped after the context (see `Drop`).
        let raw = unsafe { sys::llama_init_from_model(model.ptr.as_ptr(), cp) };
        let ptr = NonNull::new(raw).ok_or_else(|| EngineError::Context {
            n_ctx: params.n_tokens,
            reason: take_last_error(),
        })?;
        Ok(Context {
            ptr,
            slot,
            params,
            model,
        })
    }

    /// A plain context (no callback, flash attention off) that decodes up to
    /// `n_seq` independent sequences of `n_tokens` tokens in all at once
    /// ([`Context::decode_sequences`]): one graph for many short prompts.
    pub fn new_sequences(
        model: Arc<Model>,
        n_tokens: u32,
        n_seq: u32,
        n_threads: u32,
    ) -> Result<Context, EngineError> {
        init();
        let invalid = |what: &str| EngineError::InvalidRequest(format!("context: {what}"));
        if n_tokens == 0 || n_seq == 0 || n_seq > n_tokens {
            return Err(invalid("sequences need at least one token each"));
        }
        let threads = i32::try_from(n_threads.max(1)).map_err(|_| invalid("threads"))?;
        // SAFETY: returns a plain struct by value.
        let mut cp = unsafe { sys::llama_context_default_params() };
        cp.n_ctx = n_tokens;
        cp.n_batch = n_tokens;
        cp.n_ubatch = n_tokens;
        cp.n_seq_max = n_seq;
        // One cache for all sequences, each cell tagged with its sequence:
        // the total, not a per-sequence share, bounds the prompts.
        cp.kv_unified = true;
        cp.n_threads = threads;
        cp.n_threads_batch = threads;
        cp.flash_attn_type = sys::LLAMA_FLASH_ATTN_TYPE_DISABLED;
        cp.swa_full = true;
        cp.no_perf = true;
        cp.embeddings = false;
        clear_last_error();
        // SAFETY: the model is live (held by the Arc stored below).
        let raw = unsafe { sys::llama_init_from_model(model.ptr.as_ptr(), cp) };
        let ptr = NonNull::new(raw).ok_or_else(|| EngineError::Context {
            n_ctx: n_tokens,
            reason: take_last_error(),
        })?;
        Ok(Context {
            ptr,
            slot: Box::default(),
            params: ContextParams {
                n_tokens,
                n_threads: n_threads.max(1),
                observable: false,
                flash_attention: false,
            },
            model,
        })
    }

    /// The sequences this context holds at once.
    pub fn n_seq(&self) -> usize {
        // SAFETY: the context is live.
        usize::try_from(unsafe { sys::llama_n_seq_max(self.ptr.as_ptr()) }).unwrap_or(1)
    }

    /// Runs every sequence of `seqs` (each at positions 0, 1, ... of its own
    /// sequence id, so none sees another) as one batch and returns the
    /// logits of each sequence's last token. Needs a context made by
    /// [`Context::new_sequences`] with room for them.
    pub fn decode_sequences(&mut self, seqs: &[&[TokenId]]) -> Result<Vec<Vec<f32>>, EngineError> {
        self.decode_sequences_after(&[], seqs)
    }

    /// [`Context::decode_sequences`] for sequences that all start with
    /// `prefix`: the prefix is decoded once, as sequence 0, and its cache
    /// cells are shared with every other sequence (`llama_memory_seq_cp`
    /// on the unified cache), so only the suffixes cost compute.
    pub fn decode_sequences_after(
        &mut self,
        prefix: &[TokenId],
        seqs: &[&[TokenId]],
    ) -> Result<Vec<Vec<f32>>, EngineError> {
        let total: usize = prefix.len() + seqs.iter().map(|s| s.len()).sum::<usize>();
        if seqs.is_empty() || seqs.iter().any(|s| s.is_empty()) {
            return Err(EngineError::EmptyPrompt);
        }
        if total > self.params.n_tokens as usize || seqs.len() > self.n_seq() {
            return Err(EngineError::InvalidRequest(format!(
                "{} sequences of {total} tokens do not fit a context made for {} sequences of {} tokens",
                seqs.len(),
                self.n_seq(),
                self.params.n_tokens
            )));
        }
        if let Some(&bad) = seqs
            .iter()
            .flat_map(|s| s.iter())
            .chain(prefix)
            .find(|&&t| !self.model.valid(t))
        {
            return Err(self.model.bad_token(bad));
        }
        // SAFETY: the context is live; clearing the memory starts every
        // sequence afresh.
        let memory = unsafe { sys::llama_get_memory(self.ptr.as_ptr()) };
        // SAFETY: as above.
        unsafe { sys::llama_memory_clear(memory, true) };
        if !prefix.is_empty() {
            self.decode_batch(&Batch::sequences(&[prefix], 0))?;
            for seq in 1..seqs.len() {
                let seq = i32::try_from(seq).unwrap_or(i32::MAX);
                // SAFETY: sequence ids below `n_seq` (checked above) of a
                // live context; the whole of sequence 0 is shared.
                unsafe { sys::llama_memory_seq_cp(memory, 0, seq, -1, -1) };
            }
        }
        self.decode_batch(&Batch::sequences(seqs, prefix.len()))?;
        let mut out = Vec::with_capacity(seqs.len());
        let mut at = 0;
        for s in seqs {
            at += s.len();
            let row = self.logits(at - 1).ok_or_else(|| EngineError::Decode {
                status: 0,
                reason: Some(format!("no logits for batch position {}", at - 1)),
            })?;
            out.push(row.to_vec());
        }
        Ok(out)
    }

    fn decode_batch(&mut self, batch: &Batch) -> Result<(), EngineError> {
        clear_last_error();
        // SAFETY: the batch is valid (made by `Batch::sequences` or
        // `Batch::at`) and lives until the call returns; no observer is
        // installed, so the callback (if the context has one) wants nothing.
        let status = unsafe { sys::llama_decode(self.ptr.as_ptr(), batch.raw) };
        if status != 0 {
            return Err(EngineError::Decode {
                status,
                reason: take_last_error(),
            });
        }
        Ok(())
    }

    /// The parameters the context was made with.
    pub fn params(&self) -> ContextParams {
        self.params
    }

    /// Runs `tokens` as one batch at positions 0, 1, ... of a fresh sequence,
    /// with logits for every position. With an observer (on a context made
    /// `observable`), the observer watches the graph; a panic inside it is
    /// re-raised here once llama.cpp has returned.
    pub fn decode(
        &mut self,
        tokens: &[TokenId],
        observer: Option<&mut dyn EvalObserver>,
    ) -> Result<(), EngineError> {
        let n = tokens.len();
        if n == 0 {
            return Err(EngineError::EmptyPrompt);
        }
        if n > self.params.n_tokens as usize {
            return Err(EngineError::InvalidRequest(format!(
                "{n} tokens do not fit a context made for {}",
                self.params.n_tokens
            )));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| !self.model.valid(t)) {
            return Err(self.model.bad_token(bad));
        }
        if observer.is_some() && !self.params.observable {
            return Err(EngineError::InvalidRequest(
                "this context was made without the eval callback".into(),
            ));
        }
        let batch = Batch::new(tokens);
        // SAFETY: the context is live; clearing the memory (KV cache cells and
        // data) makes the next batch start at cell 0, so KV cell j holds
        // position j, which the attention capture relies on.
        unsafe { sys::llama_memory_clear(sys::llama_get_memory(self.ptr.as_ptr()), true) };
        let installed = observer.map(|o| {
            let o: NonNull<dyn EvalObserver + '_> = NonNull::from(o);
            // SAFETY: only the lifetime bound changes. The pointer is removed
            // from the slot (by `guard`) before `decode` returns, so it is
            // never used after the borrow it came from ends.
            unsafe {
                std::mem::transmute::<NonNull<dyn EvalObserver + '_>, NonNull<dyn EvalObserver>>(o)
            }
        });
        self.slot.observer.set(installed);
        let guard = ClearSlot(&self.slot);
        clear_last_error();
        // SAFETY: the batch is valid (see `Batch::new`) and lives until the
        // call returns; the observer slot is set up as described above.
        let status = unsafe { sys::llama_decode(self.ptr.as_ptr(), batch.raw) };
        drop(guard);
        if let Some(payload) = self.slot.panic.take() {
            panic::resume_unwind(payload);
        }
        if status != 0 {
            return Err(EngineError::Decode {
                status,
                reason: take_last_error(),
            });
        }
        Ok(())
    }

    /// Runs `tokens` as one batch at positions `pos0`, `pos0 + 1`, ... of
    /// the context's sequence, keeping what earlier decodes put in the KV
    /// cache (`pos0 == 0` starts a fresh sequence): incremental decoding
    /// for generation. With `all_logits` every position gets logits, else
    /// only the last (index `tokens.len() - 1` of [`Context::logits`]), as
    /// llama.cpp's own tools decode. No observer.
    pub fn decode_at(
        &mut self,
        tokens: &[TokenId],
        pos0: usize,
        all_logits: bool,
    ) -> Result<(), EngineError> {
        let first = if all_logits { 0 } else { tokens.len() };
        self.decode_positions(tokens, pos0, first)
    }

    /// Runs `tokens` as a fresh sequence at positions 0, 1, ... with logits
    /// only from index `first` on (and at the last token), as
    /// llama-perplexity asks for the scored half of a chunk: llama.cpp then
    /// skips the last layer's feed-forward and the output head for the
    /// other rows. Row `i` of [`Context::logits`] is position `i`. No
    /// observer.
    pub fn decode_logits_from(
        &mut self,
        tokens: &[TokenId],
        first: usize,
    ) -> Result<(), EngineError> {
        self.decode_positions(tokens, 0, first)
    }

    fn decode_positions(
        &mut self,
        tokens: &[TokenId],
        pos0: usize,
        first_logit: usize,
    ) -> Result<(), EngineError> {
        let n = tokens.len();
        if n == 0 {
            return Err(EngineError::EmptyPrompt);
        }
        if pos0 + n > self.params.n_tokens as usize {
            return Err(EngineError::InvalidRequest(format!(
                "{n} tokens at position {pos0} do not fit a context made for {}",
                self.params.n_tokens
            )));
        }
        if let Some(&bad) = tokens.iter().find(|&&t| !self.model.valid(t)) {
            return Err(self.model.bad_token(bad));
        }
        let batch = Batch::at(tokens, pos0, first_logit);
        if pos0 == 0 {
            // SAFETY: the context is live; see `decode`.
            unsafe { sys::llama_memory_clear(sys::llama_get_memory(self.ptr.as_ptr()), true) };
        }
        self.decode_batch(&batch)
    }

    /// The logits of position `i` of the last decode.
    pub fn logits(&self, i: usize) -> Option<&[f32]> {
        let i = i32::try_from(i).ok()?;
        // SAFETY: llama.cpp returns null for an invalid index, else a row of
        // n_vocab floats that stays valid until the next decode, which needs
        // `&mut self` and so cannot happen while the slice is borrowed.
        unsafe {
            let p = sys::llama_get_logits_ith(self.ptr.as_ptr(), i);
            (!p.is_null()).then(|| std::slice::from_raw_parts(p, self.model.n_vocab()))
        }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the context is owned here; it is freed before the slot and
        // the model Arc (fields drop after this body runs).
        unsafe { sys::llama_free(self.ptr.as_ptr()) };
    }
}

/// Empties the observer slot when the decode ends, however it ends.
struct ClearSlot<'a>(&'a ObserverSlot);

impl Drop for ClearSlot<'_> {
    fn drop(&mut self) {
        self.0.observer.set(None);
    }
}

/// A batch made with `llama_batch_init`, freed on drop.
struct Batch {
    raw: sys::llama_batch,
}

impl Batch {
    /// One sequence (id 0), positions 0..n, logits requested everywhere.
    fn new(tokens: &[TokenId]) -> Batch {
        Batch::at(tokens, 0, 0)
    }

    /// One sequence (id 0), positions `pos0..pos0 + n`, logits from index
    /// `first_logit` on and at the last token.
    fn at(tokens: &[TokenId], pos0: usize, first_logit: usize) -> Batch {
        let n = i32::try_from(tokens.len()).unwrap_or(i32::MAX);
        let last = to_usize(n).saturating_sub(1);
        // SAFETY: allocates arrays of `n` entries (one seq id each), which are
        // filled completely below before the batch is used.
        unsafe {
            let mut raw = sys::llama_batch_init(n, 0, 1);
            for (i, &t) in tokens.iter().enumerate().take(to_usize(n)) {
                *raw.token.add(i) = t;
                *raw.pos.add(i) = i32::try_from(pos0 + i).unwrap_or(i32::MAX);
                *raw.n_seq_id.add(i) = 1;
                **raw.seq_id.add(i) = 0;
                *raw.logits.add(i) = i8::from(i >= first_logit || i == last);
            }
            raw.n_tokens = n;
            Batch { raw }
        }
    }
}

impl Batch {
    /// Each of `seqs` as its own sequence (ids 0, 1, ...) at positions
    /// `start..start + len`, logits requested at each sequence's last token
    /// only. The caller checked that the total fits an `i32`.
    fn sequences(seqs: &[&[TokenId]], start: usize) -> Batch {
        let total: usize = seqs.iter().map(|s| s.len()).sum();
        let n = i32::try_from(total).unwrap_or(i32::MAX);
        // SAFETY: allocates arrays of `n` entries (one seq id each), which are
        // filled completely below before the batch is used.
        unsafe {
            let mut raw = sys::llama_batch_init(n, 0, 1);
            let mut i = 0usize;
            for (seq, tokens) in seqs.iter().enumerate() {
                for (pos, &t) in tokens.iter().enumerate() {
                    if i >= to_usize(n) {
                        break;
                    }
                    *raw.token.add(i) = t;
                    *raw.pos.add(i) = i32::try_from(start + pos).unwrap_or(i32::MAX);
                    *raw.n_seq_id.add(i) = 1;
                    **raw.seq_id.add(i) = i32::try_from(seq).unwrap_or(i32::MAX);
                    *raw.logits.add(i) = i8::from(pos + 1 == tokens.len());
                    i += 1;
                }
            }
            raw.n_tokens = n;
            Batch { raw }
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        // SAFETY: made by `llama_batch_init`, freed once.
        unsafe { sys::llama_batch_free(self.raw) };
    }
}

unsafe extern "C" fn eval_trampoline(
    t: *mut sys::ggml_tensor,
    ask: bool,
    user: *mut c_void,
) -> bool {
    // SAFETY: `user` is the boxed slot of a live context (set in
    // `Context::new`); it is only read on the decoding thread.
    let slot = unsafe { &*user.cast::<ObserverSlot>() };
    let (Some(mut observer), Some(t)) = (slot.observer.get(), NonNull::new(t)) else {
        // No observer: want nothing, and let the graph run on.
        return !ask;
    };
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the observer was installed by `Context::decode` for the
        // duration of this decode, from a `&mut` it holds exclusively.
        let observer = unsafe { observer.as_mut() };
        let mut tensor = ObservedTensor {
            t,
            _borrow: PhantomData,
        };
        if ask {
            observer.wants_node(&tensor)
        } else {
            observer.observe(&mut tensor)
        }
    }));
    result.unwrap_or_else(|payload| {
        slot.panic.set(Some(payload));
        // Stop observing: nothing more is wanted, and the current computation
        // is told to stop.
        slot.observer.set(None);
        false
    })
}

/// A graph node handed to an [`EvalObserver`], valid for one callback.
pub struct ObservedTensor<'a> {
    t: NonNull<sys::ggml_tensor>,
    _borrow: PhantomData<&'a mut sys::ggml_tensor>,
}

impl std::fmt::Debug for ObservedTensor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedTensor")
            .field("name", &self.name())
            .field("ne", &self.ne())
            .finish()
    }
}

impl ObservedTensor<'_> {
    fn raw(&self) -> &sys::ggml_tensor {
        // SAFETY: the scheduler hands a live tensor for the callback's duration.
        unsafe { self.t.as_ref() }
    }

    /// The node's name (`kq_soft_max-3`, `result_norm`, ...).
    pub fn name(&self) -> &str {
        let bytes: &[u8] = {
            let name = &self.raw().name;
            // SAFETY: c_char and u8 have the same size and alignment.
            unsafe { std::slice::from_raw_parts(name.as_ptr().cast(), name.len()) }
        };
        CStr::from_bytes_until_nul(bytes)
            .ok()
            .and_then(|c| c.to_str().ok())
            .unwrap_or("")
    }

    /// Elements per dimension, ggml order (`ne[0]` is contiguous).
    pub fn ne(&self) -> [i64; 4] {
        self.raw().ne
    }

    /// Whether the node is a matrix product (`GGML_OP_MUL_MAT`): source 0 is
    /// the weight, source 1 the activations (one row per token).
    pub fn is_mul_mat(&self) -> bool {
        self.raw().op == sys::GGML_OP_MUL_MAT
    }

    /// Whether the node is an indirect matrix product (`GGML_OP_MUL_MAT_ID`,
    /// a mixture of experts): source 0 holds the experts' weights
    /// `[cols, rows, n_expert]`, source 1 the activations `[cols, n_used or
    /// 1, n_tokens]`, source 2 the chosen experts `[n_used, n_tokens]` (i32).
    pub fn is_mul_mat_id(&self) -> bool {
        self.raw().op == sys::GGML_OP_MUL_MAT_ID
    }

    /// Reads an i32 tensor of two dimensions (`ne[2] = ne[3] = 1`), strided
    /// or not (the experts' ids are a view of a wider sort), into `out`,
    /// densely, `ne[0]` a row.
    pub fn read_i32_2d(&self, out: &mut Vec<i32>) -> Result<(), EngineError> {
        let raw = self.raw();
        let bad = |reason: String| EngineError::Tensor {
            name: self.name().to_string(),
            reason,
        };
        let [ne0, ne1, ne2, ne3] = raw.ne;
        let has_buffer = !raw.buffer.is_null()
            // SAFETY: `view_src` is null or a live tensor of the same graph.
            || unsafe { raw.view_src.as_ref() }.is_some_and(|v| !v.buffer.is_null());
        if raw.type_ != sys::GGML_TYPE_I32
            || ne2 != 1
            || ne3 != 1
            || !has_buffer
            || raw.data.is_null()
        {
            return Err(bad(format!(
                "not a 2-d i32 tensor (type {}, ne {:?})",
                raw.type_, raw.ne
            )));
        }
        let (Ok(ne0), Ok(ne1)) = (usize::try_from(ne0), usize::try_from(ne1)) else {
            return Err(bad(format!("negative shape {:?}", raw.ne)));
        };
        let (nb0, nb1) = (raw.nb[0], raw.nb[1]);
        // SAFETY: a live tensor.
        let n_bytes = unsafe { sys::ggml_nbytes(self.t.as_ptr()) };
        let last = ne0
            .checked_sub(1)
            .and_then(|a| a.checked_mul(nb0))
            .zip(ne1.checked_sub(1).and_then(|b| b.checked_mul(nb1)))
            .and_then(|(a, b)| a.checked_add(b))
            .and_then(|x| x.checked_add(4));
        if ne0 == 0 || ne1 == 0 || nb0 % 4 != 0 || nb1 % 4 != 0 || last.is_none_or(|l| l > n_bytes)
        {
            return Err(bad(format!(
                "strides {:?} outside its {n_bytes} bytes",
                raw.nb
            )));
        }
        let mut bytes = vec![0u8; n_bytes];
        // SAFETY: reads exactly the tensor's `ggml_nbytes` bytes.
        unsafe {
            sys::ggml_backend_tensor_get(self.t.as_ptr(), bytes.as_mut_ptr().cast(), 0, n_bytes);
        }
        out.clear();
        for r in 0..ne1 {
            for c in 0..ne0 {
                let at = r * nb1 + c * nb0;
                out.push(i32::from_le_bytes([
                    bytes[at],
                    bytes[at + 1],
                    bytes[at + 2],
                    bytes[at + 3],
                ]));
            }
        }
        Ok(())
    }

    /// Source `i` of the node (an operand of its operation), if it has one.
    /// Sources are computed before the node, so their data can be read when
    /// the node is observed.
    pub fn source(&self, i: usize) -> Option<ObservedTensor<'_>> {
        let t = NonNull::new(*self.raw().src.get(i)?)?;
        Some(ObservedTensor {
            t,
            _borrow: PhantomData,
        })
    }

    /// Whether the data is dense f32 that [`ObservedTensor::read`] can copy.
    pub fn is_dense_f32(&self) -> bool {
        self.check_f32().is_ok()
    }

    /// Number of elements.
    pub fn n_elements(&self) -> usize {
        self.ne()
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))
            .unwrap_or(0)
    }

    /// Whether the data is dense f32 with data behind it, the only layout the
    /// capture reads or writes.
    fn check_f32(&self) -> Result<(), EngineError> {
        let raw = self.raw();
        let has_buffer = !raw.buffer.is_null()
            // SAFETY: `view_src` is null or a live tensor of the same graph.
            || unsafe { raw.view_src.as_ref() }.is_some_and(|v| !v.buffer.is_null());
        // SAFETY: a live tensor.
        let contiguous = unsafe { sys::ggml_is_contiguous(self.t.as_ptr()) };
        if raw.type_ != sys::GGML_TYPE_F32 || !contiguous || !has_buffer || raw.data.is_null() {
            return Err(EngineError::Tensor {
                name: self.name().to_string(),
                reason: format!(
                    "not a dense, allocated f32 tensor (type {}, contiguous {contiguous})",
                    raw.type_
                ),
            });
        }
        Ok(())
    }

    fn out_of_bounds(&self, what: &str) -> EngineError {
        EngineError::Tensor {
            name: self.name().to_string(),
            reason: format!("{what} outside the tensor's {} elements", self.n_elements()),
        }
    }

    /// Copies the whole tensor into `out` (`out.len()` = element count), from
    /// wherever it lives (`ggml_backend_tensor_get` works for GPU memory too).
    pub fn read(&self, out: &mut [f32]) -> Result<(), EngineError> {
        self.check_f32()?;
        if out.len() != self.n_elements() {
            return Err(self.out_of_bounds("a read of a different size"));
        }
        // SAFETY: the tensor is dense f32 of exactly `out.len()` elements.
        unsafe {
            sys::ggml_backend_tensor_get(
                self.t.as_ptr(),
                out.as_mut_ptr().cast(),
                0,
                std::mem::size_of_val(out),
            );
        }
        Ok(())
    }

    /// Copies `n_rows` runs of `row_len` elements, the first starting at
    /// element `first` and each next one `stride` elements further, densely
    /// into `out` (used to crop the padded KV dimension of attention).
    pub fn read_rows(
        &self,
        first: usize,
        row_len: usize,
        n_rows: usize,
        stride: usize,
        out: &mut [f32],
    ) -> Result<(), EngineError> {
        self.check_f32()?;
        let end = n_rows
            .checked_sub(1)
            .and_then(|r| r.checked_mul(stride))
            .and_then(|x| x.checked_add(first))
            .and_then(|x| x.checked_add(row_len));
        if n_rows == 0 || end.is_none_or(|e| e > self.n_elements()) || stride < row_len {
            return Err(self.out_of_bounds("a strided read"));
        }
        if out.len() != n_rows * row_len {
            return Err(self.out_of_bounds("a strided read into a buffer of another size"));
        }
        let f = std::mem::size_of::<f32>();
        // SAFETY: bounds checked above against the tensor's element count;
        // `out` holds exactly `n_rows * row_len` floats.
        unsafe {
            sys::ggml_backend_tensor_get_2d(
                self.t.as_ptr(),
                out.as_mut_ptr().cast(),
                first * f,
                row_len * f,
                n_rows,
                stride * f,
                row_len * f,
            );
        }
        Ok(())
    }

    /// Overwrites the whole tensor with `data`; the rest of the graph then
    /// computes from the new values.
    pub fn write(&mut self, data: &[f32]) -> Result<(), EngineError> {
        self.check_f32()?;
        if data.len() != self.n_elements() {
            return Err(self.out_of_bounds("a write of a different size"));
        }
        // SAFETY: the tensor is dense f32 of exactly `data.len()` elements.
        unsafe {
            sys::ggml_backend_tensor_set(
                self.t.as_ptr(),
                data.as_ptr().cast(),
                0,
                std::mem::size_of_val(data),
            );
        }
        Ok(())
    }
}
