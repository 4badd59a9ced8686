//! Opening a model reads its header and tensor index, never its weights.
//!
//! An 8 GiB model is made as a sparse file (its data section is a hole, so it
//! takes no disk space), then opened and described. Touching its weights
//! through the memory map faults at least once per 64 KiB (the kernel maps
//! up to 16 pages around a fault): over 130,000 times for 8 GiB, about 360
//! times for one 32 MiB tensor. Opening it takes about 60. This binary holds
//! one test only, because page faults are counted for the whole process.

#![cfg(target_os = "linux")]

use ggviz::anatomy::Anatomy;
use ggviz::gguf::{GgmlType, GgufModel, GgufWriter, TensorSpec};

const ROWS: u64 = 4096;
const COLS: u64 = 4096;
/// One F16 tensor of ROWS × COLS: 32 MiB.
const TENSOR_BYTES: u64 = ROWS * COLS * 2;
const TENSORS: u64 = 256;

/// Minor plus major page faults of this process so far (`/proc/self/stat`
/// fields 10 and 12, after the parenthesised command name).
fn page_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let after_name = &stat[stat.rfind(')').expect("command name") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // Field 3 (state) is fields[0] here, so field N is fields[N - 3].
    let field = |n: usize| fields[n - 3].parse::<u64>().expect("a count");
    field(10) + field(12)
}

#[test]
fn an_8_gib_model_opens_without_touching_its_weights() {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", "llama")
        .metadata("llama.block_count", TENSORS as u32);
    for i in 0..TENSORS {
        // No data and no offset: the writer stops at the data section, and
        // the real offsets are patched in below.
        w.raw_tensor(TensorSpec {
            name: format!("blk.{i}.ffn_up.weight"),
            dims: vec![ROWS, COLS],
            type_id: GgmlType::F16.id(),
            data: Vec::new(),
            offset: None,
        });
    }
    let (mut header, spans) = w.to_bytes_with_layout();
    for (i, span) in spans
        .iter()
        .filter(|s| s.field.ends_with(".offset"))
        .enumerate()
    {
        let at = span.start as usize;
        header[at..at + 8].copy_from_slice(&(i as u64 * TENSOR_BYTES).to_le_bytes());
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse.gguf");
    std::fs::write(&path, &header).unwrap();
    let size = header.len() as u64 + TENSORS * TENSOR_BYTES;
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(size)
        .unwrap();
    assert_eq!(size, 8 * (1 << 30) + header.len() as u64);

    let before = page_faults();
    let model = GgufModel::open(&path).unwrap();
    let anatomy = Anatomy::from_model(&model).unwrap();
    let faults = page_faults() - before;

    assert_eq!(anatomy.accounting.tensor_bytes, TENSORS * TENSOR_BYTES);
    assert_eq!(model.file_size(), size);
    // Reading six of the 256 tensors would already pass this bound.
    assert!(
        faults < 2_000,
        "{faults} page faults to open an 8 GiB model"
    );
}
