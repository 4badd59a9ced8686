//! Cross-checks ggviz's reader against llama.cpp's own Python reader.
//!
//! `tests/peers/gguf_py_dump.py` lists the real test model as the PyPI
//! `gguf` package (gguf-py) reads it; every tensor and every metadata key and
//! value must be identical in ggviz's [`GgufModel`] and in the tensors and
//! metadata of `ggviz inspect --json`. The ggml type table is compared with
//! gguf-py's `GGML_QUANT_SIZES` as well. Python 3 with `gguf` is a test
//! dependency (scripts/setup.sh installs it): without it these tests fail,
//! they never pass silently.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use ggviz::gguf::{GgmlType, GgufModel, Value};
use serde_json::Value as Json;

/// gguf-py's view of the test model, computed once for all tests here.
fn peer() -> &'static Json {
    static DUMP: OnceLock<Json> = OnceLock::new();
    DUMP.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/gguf_py_dump.py");
        let python = std::env::var("GGVIZ_PYTHON").unwrap_or_else(|_| "python3".into());
        let out = Command::new(&python)
            .arg(&script)
            .arg(common::smollm2())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `{python}` ({e}): the peer test needs Python 3 with the PyPI \
                     `gguf` package; run scripts/setup.sh or set GGVIZ_PYTHON"
                )
            });
        assert!(
            out.status.success(),
            "{} failed ({}): {}\nthe peer test needs the PyPI `gguf` package; run scripts/setup.sh",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("gguf_py_dump.py printed invalid JSON")
    })
}

fn model() -> GgufModel {
    GgufModel::open(common::smollm2()).expect("ggviz reads the test model")
}

/// Compares two JSON values exactly, except that non-integer numbers are
/// compared at f32 precision: the file stores f32, Python widens it to f64
/// exactly, but JSON parsing may be off by one f64 ulp. Returns where the
/// first difference is.
fn same(ours: &Json, theirs: &Json, at: &str) -> Result<(), String> {
    let differ = || Err(format!("{at}: ggviz has {ours}, gguf-py has {theirs}"));
    match (ours, theirs) {
        (Json::Number(a), Json::Number(b)) => {
            let equal = match (a.as_u64(), b.as_u64(), a.as_i64(), b.as_i64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => match (a.as_f64(), b.as_f64()) {
                    (Some(x), Some(y)) => (x as f32).to_bits() == (y as f32).to_bits(),
                    _ => false,
                },
            };
            if equal { Ok(()) } else { differ() }
        }
        (Json::Array(a), Json::Array(b)) => {
            if a.len() != b.len() {
                return Err(format!(
                    "{at}: ggviz has {} items, gguf-py {}",
                    a.len(),
                    b.len()
                ));
            }
            a.iter()
                .zip(b)
                .enumerate()
                .try_for_each(|(i, (x, y))| same(x, y, &format!("{at}[{i}]")))
        }
        (Json::Object(a), Json::Object(b)) => {
            let keys_a: Vec<&String> = a.keys().collect();
            let keys_b: Vec<&String> = b.keys().collect();
            if keys_a != keys_b {
                return Err(format!("{at}: keys {keys_a:?} vs {keys_b:?}"));
            }
            a.iter()
                .try_for_each(|(k, v)| same(v, &b[k], &format!("{at}.{k}")))
        }
        _ if ours == theirs => Ok(()),
        _ => differ(),
    }
}

fn type_name(v: &Value) -> &'static str {
    v.value_type().name()
}

#[test]
fn metadata_keys_types_and_values_match_gguf_py_in_file_order() {
    let model = model();
    let peer = peer()["metadata"].as_array().unwrap();
    let ours: Vec<&str> = model.metadata().keys().map(String::as_str).collect();
    let theirs: Vec<&str> = peer.iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(ours, theirs, "keys, in file order");
    // The real file has 33 keys, among them arrays of 49,152 strings and ints.
    assert_eq!(ours.len(), 33);
    for entry in peer {
        let key = entry["key"].as_str().unwrap();
        let value = model.get(key).unwrap();
        assert_eq!(type_name(value), entry["type"], "type of {key}");
        if let Value::Array(a) = value {
            assert_eq!(a.element_type().name(), entry["element_type"], "{key}");
        }
        // Full values, arrays included: no summaries on either side.
        let ours = serde_json::to_value(value).unwrap();
        same(&ours, &entry["value"], key).unwrap();
    }
    let tokens = model.get("tokenizer.ggml.tokens").unwrap().as_array();
    assert_eq!(tokens.map(|a| a.len()), Some(49152));
}

#[test]
fn every_tensor_matches_gguf_py() {
    let model = model();
    let peer = peer()["tensors"].as_array().unwrap();
    assert_eq!(model.tensors().len(), peer.len());
    assert_eq!(peer.len(), 272);
    for (t, p) in model.tensors().iter().zip(peer) {
        assert_eq!(t.name, p["name"], "tensor order");
        let name = &t.name;
        assert_eq!(t.ggml_type.name(), p["type"], "{name}: type");
        assert_eq!(serde_json::json!(t.dims), p["shape"], "{name}: shape");
        assert_eq!(t.offset, p["offset"], "{name}: absolute data offset");
        assert_eq!(t.n_bytes, p["bytes"], "{name}: bytes");
    }
}

/// `ggviz inspect --json` on the test model, run by the binary Cargo built.
fn inspect_json() -> Json {
    let out = Command::new(env!("CARGO_BIN_EXE_ggviz"))
        .args(["inspect", "--json"])
        .arg(common::smollm2())
        .output()
        .expect("cannot run the ggviz binary");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("inspect --json printed invalid JSON")
}

#[test]
fn inspect_json_tensors_and_metadata_match_gguf_py() {
    let doc = inspect_json();
    let peer = peer();

    let ours = doc["tensors"].as_array().unwrap();
    let theirs = peer["tensors"].as_array().unwrap();
    assert_eq!(ours.len(), theirs.len());
    for (t, p) in ours.iter().zip(theirs) {
        for field in ["name", "type", "shape", "offset", "bytes"] {
            assert_eq!(t[field], p[field], "{}: {field}", p["name"]);
        }
    }

    // The JSON summarises arrays longer than 32 items; everything else must
    // be the full value, in file order.
    let ours = doc["metadata"].as_object().unwrap();
    let theirs = peer["metadata"].as_array().unwrap();
    let keys: Vec<&str> = ours.keys().map(String::as_str).collect();
    let peer_keys: Vec<&str> = theirs.iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(keys, peer_keys);
    let mut summarised = 0;
    for entry in theirs {
        let key = entry["key"].as_str().unwrap();
        let expected = match entry["value"].as_array() {
            Some(items) if items.len() > ggviz::inspect::MAX_INLINE_ARRAY => {
                summarised += 1;
                serde_json::json!({"type": entry["element_type"], "len": items.len()})
            }
            _ => entry["value"].clone(),
        };
        same(&ours[key], &expected, key).unwrap();
    }
    assert_eq!(
        summarised, 3,
        "tokens, token types and merges are summarised"
    );
}

/// A ggml type's id, block size and bytes per block.
type TypeRow = (u32, u32, u32);

/// gguf-py's `GGML_QUANT_SIZES` says 40 bytes per Q8_1 block; ggml's
/// `block_q8_1` is `ggml_half2 ds` + 32 × `int8_t`, i.e. 36 bytes. ggviz
/// follows ggml, which is what runs the file.
const KNOWN_DIFFERENCES: &[(&str, TypeRow, TypeRow)] = &[("Q8_1", (9, 32, 36), (9, 32, 40))];

#[test]
fn ggml_type_table_matches_gguf_py_except_q8_1() {
    let table = peer()["quant_sizes"].as_object().unwrap();
    let mut differences = Vec::new();
    for (name, row) in table {
        let n = |i: usize| row[i].as_u64().unwrap() as u32;
        let theirs = (n(0), n(1), n(2));
        let t = GgmlType::from_name(name)
            .unwrap_or_else(|| panic!("gguf-py knows ggml type {name}, ggviz does not"));
        let ours = (t.id(), t.block_size(), t.type_size());
        if ours != theirs {
            differences.push((name.as_str(), ours, theirs));
        }
    }
    assert_eq!(differences, KNOWN_DIFFERENCES);
    for t in GgmlType::all() {
        assert!(
            table.contains_key(t.name()),
            "ggviz knows ggml type {t}, gguf-py does not"
        );
    }
    assert_eq!(table.len(), GgmlType::all().count());
}
