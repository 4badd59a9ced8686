//! The weights that belong to each attention head, for head nodes.
//!
//! A head owns rows of the Q projection and columns of the output
//! projection; a KV head owns rows of K and V. Their bytes are that share
//! at each tensor's exact storage rate, since a quantization block can span
//! heads.

use crate::anatomy::{Anatomy, TensorRole};
use crate::gguf::GgmlType;

use super::Node;

/// The weights that belong to one head: its rows of Q (and of fused QKV)
/// and its columns of the output projection; for a KV head, its rows of K
/// and V. Bytes are the share at each tensor's exact storage rate.
pub(super) struct HeadShares {
    q: (u64, f64),
    kv: (u64, f64),
    ty_q: Option<GgmlType>,
    ty_kv: Option<GgmlType>,
}

impl HeadShares {
    pub(super) fn new(a: &Anatomy, tensors: &[(usize, TensorRole)]) -> HeadShares {
        use TensorRole::*;
        let hp = &a.hparams;
        let (dk, dv, embd) = (
            u64::from(hp.head_dim_k),
            u64::from(hp.head_dim_v),
            hp.n_embd,
        );
        // (params, bytes, type) of the weight matrices of `roles`, per head.
        let share = |roles: &[TensorRole], per_head: &dyn Fn(TensorRole) -> u64| {
            let mut params = 0u64;
            let mut bytes = 0f64;
            let mut ty: Option<Option<GgmlType>> = None;
            for (i, r) in tensors {
                let t = &a.tensors[*i];
                if !roles.contains(r) || t.suffix.as_deref() != Some("weight") || t.params == 0 {
                    continue;
                }
                let p = per_head(*r).min(t.params);
                params += p;
                bytes += p as f64 * t.bytes as f64 / t.params as f64;
                ty = Some(match ty {
                    None => Some(t.ggml_type),
                    Some(prev) => prev.filter(|&x| x == t.ggml_type),
                });
            }
            (params, bytes, ty.flatten())
        };
        let (qp, qb, ty_q) = share(&[AttnQ, AttnOutput, AttnQkv], &|r| match r {
            AttnOutput => dv * embd,
            _ => dk * embd,
        });
        let (kp, kb, ty_kv) = share(&[AttnK, AttnV, AttnQkv], &|r| match r {
            AttnK => dk * embd,
            AttnV => dv * embd,
            _ => (dk + dv) * embd,
        });
        HeadShares {
            q: (qp, qb),
            kv: (kp, kb),
            ty_q,
            ty_kv,
        }
    }

    pub(super) fn apply_q(&self, n: &mut Node) {
        n.params = self.q.0;
        n.bytes = self.q.1.round() as u64;
        n.ggml_type = self.ty_q;
    }

    pub(super) fn apply_kv(&self, n: &mut Node) {
        n.params = self.kv.0;
        n.bytes = self.kv.1.round() as u64;
        n.ggml_type = self.ty_kv;
    }
}
