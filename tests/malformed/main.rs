//! Malformed GGUF input: every case must be refused with an error that names
//! the right field at the right byte offset, without panicking, hanging or
//! allocating more memory than the file's size.
//!
//! Fixtures are made in code: a small file with a value of every type and
//! tensors of several types written by `GgufWriter`, and the real test
//! model, cut and mutated. Truncations are checked against an independent
//! model of the reader's order of reads (`layout.rs`) at every byte of the
//! small file and at sampled bytes of the real one.

#[path = "../common/mod.rs"]
mod common;
mod fixture;
mod header;
mod layout;
mod metadata;
mod real_file;
mod tensor_index;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use ggviz::gguf::{FormatError, GgufError, GgufFile};

// ---------------------------------------------------------------------------
// Memory meter: a counting allocator, per thread, so that a parse can be
// measured while other tests allocate on their own threads.

struct Meter;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn track(delta: i64) {
    // `try_with`: allocations while a thread's locals are torn down are not
    // counted (and must not panic).
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call goes to the system allocator unchanged; the meter only
// adds bookkeeping in const-initialised thread locals, which never allocate.
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            track(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            track(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

#[global_allocator]
static METER: Meter = Meter;

/// Runs `f` and returns its result with the most heap memory it held at once
/// on this thread, beyond what was live before (so an input buffer made
/// beforehand is not counted).
fn peak_memory<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get) - base;
    (out, peak.max(0) as u64)
}

/// What a parse may allocate beyond the file's size. Tiny files need a few
/// KiB more than their bytes for maps, entries and the error message; the
/// reader documents the same 64 KiB (`reader::MEMORY_SLACK`). For files above
/// a few hundred KiB the bound is essentially the file's size.
const ALLOWED_OVERHEAD: u64 = 64 * 1024;
/// A parse of these files takes milliseconds; this long means a hang.
const HANG_LIMIT: Duration = Duration::from_secs(60);

/// Parses `bytes` on a watched thread: the parse must not panic, must end
/// within [`HANG_LIMIT`] and must not allocate more than the file's size
/// plus [`ALLOWED_OVERHEAD`].
fn parse(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
    let len = bytes.len() as u64;
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let measured = peak_memory(|| GgufFile::from_bytes("bad.gguf", bytes));
        let _ = tx.send(measured);
    });
    let (result, peak) = match rx.recv_timeout(HANG_LIMIT) {
        Ok(measured) => measured,
        Err(RecvTimeoutError::Timeout) => panic!("the reader hung on a {len}-byte file"),
        Err(RecvTimeoutError::Disconnected) => {
            panic!("the reader panicked: {:?}", worker.join().err())
        }
    };
    assert!(
        peak <= len + ALLOWED_OVERHEAD,
        "parsing a {len}-byte file allocated {peak} bytes"
    );
    result
}

/// Asserts that `bytes` are refused for `kind` at `field`, byte `offset`,
/// and that the message says so.
#[track_caller]
fn refused(bytes: Vec<u8>, field: &str, offset: u64, kind: FormatError) {
    let expected = format!("{kind:?}");
    refused_with(bytes, field, offset, |k| *k == kind, &expected);
}

#[track_caller]
fn refused_with(
    bytes: Vec<u8>,
    field: &str,
    offset: u64,
    kind: impl Fn(&FormatError) -> bool,
    expected: &str,
) {
    let err = match parse(bytes) {
        Ok(f) => panic!("accepted a malformed file: {f:?}"),
        Err(err) => err,
    };
    let what = (err.field(), err.offset());
    assert_eq!(what, (Some(field), Some(offset)), "{err}");
    let found = err.format_kind();
    assert!(found.is_some_and(&kind), "expected {expected}, got {err}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("bad.gguf: {field} at byte offset {offset}: ")),
        "{message}"
    );
}
