//! The anatomy of the real test model matches what the file says.

mod common;

use ggviz::anatomy::{Anatomy, TensorRole};
use ggviz::gguf::{GgmlType, GgufModel};

#[test]
fn smollm2_anatomy_has_the_published_shape_and_exact_bytes() {
    let model = GgufModel::open(common::smollm2()).unwrap();
    let a = Anatomy::from_model(&model).unwrap();
    let h = &a.hparams;
    assert_eq!(a.architecture, "llama");
    assert_eq!(h.n_layer, 30);
    assert_eq!(h.uniform_heads(), Some(9));
    assert_eq!(h.uniform_kv_heads(), Some(3));
    assert_eq!(h.gqa_group(0), 3);
    assert_eq!((h.head_dim_k, h.head_dim_v), (64, 64));
    assert_eq!(h.n_embd, 576);
    assert_eq!(h.uniform_ff(), Some(1536));
    assert_eq!(h.n_vocab, 49152);
    assert_eq!(h.n_ctx_train, Some(8192));
    assert_eq!(h.rope.freq_base, Some(100000.0));
    assert_eq!(a.tensors.len(), 272);
    assert!(a.tied_embeddings);
    assert_eq!(a.file_type.as_deref(), Some("Q4_1"));

    // Quant mix: exact bytes per type, summed independently from shapes.
    let mix: Vec<(GgmlType, usize, u64)> = a
        .accounting
        .by_type
        .iter()
        .map(|s| (s.ggml_type, s.tensors, s.bytes))
        .collect();
    assert_eq!(
        mix,
        vec![
            (GgmlType::Q4_1, 210, 66_355_200),
            (GgmlType::Q8_0, 1, 30_081_024),
            (GgmlType::F32, 61, 140_544),
        ]
    );
    let acc = &a.accounting;
    assert_eq!(acc.tensor_bytes, 96_576_768);
    assert_eq!(acc.file_bytes, 98_362_432);
    assert_eq!(acc.total_params, 134_515_008);
    assert!((acc.avg_bits_per_weight - 96_576_768.0 * 8.0 / 134_515_008.0).abs() < 1e-12);

    // Every layer has the same nine tensors with the roles of a llama block.
    for l in 0..30 {
        let mut roles: Vec<TensorRole> = a.layer_tensors(l).map(|t| t.role).collect();
        roles.sort();
        assert_eq!(
            roles,
            vec![
                TensorRole::AttnNorm,
                TensorRole::AttnQ,
                TensorRole::AttnK,
                TensorRole::AttnV,
                TensorRole::AttnOutput,
                TensorRole::FfnNorm,
                TensorRole::FfnGate,
                TensorRole::FfnUp,
                TensorRole::FfnDown,
            ],
            "layer {l}"
        );
    }
    let embd = model.tensor("token_embd.weight").unwrap();
    assert_eq!(embd.dims, vec![576, 49152]);
    assert_eq!(embd.offset, 1_785_664);
    // gate/up/down 3 × 552,960 + q/o 2 × 207,360 + k/v 2 × 69,120 + 2 norms × 2,304.
    assert_eq!(
        a.accounting.by_layer[0].bytes,
        3 * 552_960 + 2 * 207_360 + 2 * 69_120 + 2 * 2_304
    );
}
