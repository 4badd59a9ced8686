//! Fuzzes the GGUF reader with arbitrary bytes.
//!
//! Whatever the bytes, parsing must return (no panic, no hang, no allocation
//! beyond the input's size plus 64 KiB, which libFuzzer's `-malloc_limit_mb`
//! can enforce). A file that parses must also survive everything built on
//! the reader: anatomy and both `inspect` outputs. And it must write back:
//! [`GgufWriter`] turns the parsed file into bytes that parse again and
//! write back to the same bytes, so the reader and the writer agree on
//! every field the reader accepted.

#![no_main]

use ggviz::anatomy::Anatomy;
use ggviz::gguf::{GgufFile, GgufModel, GgufWriter, TensorSpec};
use ggviz::inspect::{self, TextOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes("fuzz.gguf", data.to_vec()) else {
        return;
    };
    let written = rewrite(&file);
    let again = GgufFile::from_bytes("rewritten.gguf", written.clone())
        .unwrap_or_else(|e| panic!("the writer made a file the reader refuses: {e}"));
    assert!(rewrite(&again) == written, "writing is not stable");

    let model = GgufModel::from_file(file);
    if let Ok(anatomy) = Anatomy::from_model(&model) {
        let json = inspect::to_json(&model, &anatomy);
        assert!(json.is_ok(), "inspect --json failed: {json:?}");
        let opts = TextOptions {
            tensors: true,
            metadata: true,
        };
        inspect::to_text(&model, &anatomy, opts);
    }
});

/// `file` written back with the same version, byte order, keys and offsets.
fn rewrite(file: &GgufFile) -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.version(file.version).endian(file.endian);
    for (key, value) in &file.metadata {
        w.metadata(key.as_str(), value.clone());
    }
    for t in &file.tensors {
        w.raw_tensor(TensorSpec {
            name: t.name.clone(),
            dims: t.dims.clone(),
            type_id: t.ggml_type.id(),
            data: file.tensor_data(t).unwrap_or_default().to_vec(),
            offset: Some(t.relative_offset),
        });
    }
    w.to_bytes()
}
