//! All-pairs nearest-neighbour candidates with 8-bit integer products, on
//! x86-64 CPUs with AVX-512 VNNI.
//!
//! Token-embedding matrices are hard for approximate search: the demo
//! model's 49,152 rows have a flat spectrum (64 PCA dimensions hold 28 % of
//! the variance) and a token's 10th and 11th neighbours differ by 0.001 in
//! cosine at the median, so inverted lists need to scan about half of the
//! vocabulary per token to find 95 % of the true neighbours. That is the
//! cost of the exact symmetric product. So the search here *is* the
//! all-pairs product, made cheap: every unit row is quantized to 8 bits
//! (one scale per row), each unordered pair is multiplied once with
//! `vpdpbusd` (64 multiply-adds per instruction), and the best
//! [`super::neighbours::CANDIDATES`] of every token by this estimate are
//! re-ranked with the f32 rows by the caller. The estimate's error (about
//! 1e-3) only reorders near-ties, which the re-ranking settles.
//!
//! ggml has such kernels too, but the llama.cpp that ggviz links is built for
//! any x86-64 with AVX2, without AVX-512; this kernel is chosen at run time
//! and the portable path (ggml's product on the analytics device) is used
//! where it is missing.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::matrix::Matrix;
use super::neighbours::TopK;

/// Columns of one packed block (one 512-bit vector of 32-bit sums).
const LANES: usize = 16;
/// Query rows of a micro-tile.
const MR: usize = 8;
/// Columns of a micro-tile: two vectors.
const NR: usize = 2 * LANES;
/// Query rows of one task (a panel, handed out to threads in turn).
const PANEL: usize = 256;

/// Whether this CPU runs the kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The rows quantized twice: as unsigned query bytes (`q + 128`, row-major)
/// and as signed bytes packed for the kernel (blocks of 16 rows, 4 bytes of
/// each row per 64-byte group).
#[derive(Debug)]
struct Quantized {
    n: usize,
    /// Bytes per row (the dimension rounded up to 4).
    width: usize,
    /// Groups of 4 bytes per row.
    groups: usize,
    a: Vec<u8>,
    b: Vec<i8>,
    /// Per row: the value of one step, so `q · scale` is the row.
    scale: Vec<f32>,
    /// Per row: `128 · Σ q`, what the unsigned query bytes add to a sum.
    bias: Vec<i32>,
}

impl Quantized {
    fn new(m: &Matrix) -> Quantized {
        let n = m.n_rows;
        let n_pad = n.div_ceil(NR) * NR;
        let width = m.dim.div_ceil(4) * 4;
        let groups = width / 4;
        let mut a = vec![128u8; n_pad * width];
        let mut b = vec![0i8; n_pad * width];
        let mut scale = vec![0f32; n_pad];
        let mut bias = vec![0i32; n_pad];
        for i in 0..n {
            let row = m.row(i);
            let max = row.iter().fold(0f32, |acc, x| acc.max(x.abs()));
            if !(max > 0.0 && max.is_finite()) {
                continue;
            }
            scale[i] = max / 127.0;
            let (block, col) = (i / LANES, i % LANES);
            let mut sum = 0i32;
            for (k, &x) in row.iter().enumerate() {
                // |x| ≤ max, so the value is in −127..=127.
                let q = (x * 127.0 / max).round() as i8;
                sum += i32::from(q);
                a[i * width + k] = (i16::from(q) + 128) as u8;
                b[(block * groups + k / 4) * 64 + col * 4 + k % 4] = q;
            }
            bias[i] = 128 * sum;
        }
        Quantized {
            n,
            width,
            groups,
            a,
            b,
            scale,
            bias,
        }
    }
}

/// Where one thread keeps what it found: the best `kk` partners of the
/// query rows of its panels, and of every token as a column.
struct Found<'a> {
    rows: &'a mut [TopK],
    row_thr: &'a mut [f32],
    /// First row of `rows`.
    r0: usize,
    cols: &'a mut [TopK],
    col_thr: &'a mut [f32],
}

/// For every row of `unit` (unit rows), its `kk` best other rows by the
/// 8-bit estimate of the dot product, best first; `None` where the CPU lacks
/// AVX-512 VNNI.
pub fn candidates(unit: &Matrix, kk: usize, threads: usize) -> Option<Vec<Vec<(f32, u32)>>> {
    if !available() || unit.n_rows == 0 || unit.dim == 0 {
        return None;
    }
    let q = Quantized::new(unit);
    let n = q.n;
    let panels = n.div_ceil(PANEL);
    let next = AtomicUsize::new(0);
    let threads = threads.clamp(1, panels);
    type Part = (Vec<(usize, Vec<TopK>)>, Vec<TopK>);
    let parts: Vec<Part> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut cols: Vec<TopK> = (0..n).map(|_| TopK::new(kk)).collect();
                    let mut col_thr = vec![f32::NEG_INFINITY; n.div_ceil(NR) * NR];
                    let mut mine = Vec::new();
                    loop {
                        let p = next.fetch_add(1, Ordering::Relaxed);
                        if p >= panels {
                            break;
                        }
                        let r0 = p * PANEL;
                        let r1 = n.min(r0 + PANEL);
                        let mut rows: Vec<TopK> = (r0..r1).map(|_| TopK::new(kk)).collect();
                        let mut row_thr = vec![f32::NEG_INFINITY; r1 - r0];
                        let mut found = Found {
                            rows: &mut rows,
                            row_thr: &mut row_thr,
                            r0,
                            cols: &mut cols,
                            col_thr: &mut col_thr,
                        };
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: `available()` checked the CPU features the
                        // kernel is compiled for.
                        unsafe {
                            vnni::panel(&q, r0, r1, &mut found);
                        }
                        #[cfg(not(target_arch = "x86_64"))]
                        let _ = &mut found;
                        mine.push((r0, rows));
                    }
                    (mine, cols)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    if parts.len() != threads {
        return None;
    }
    // Each unordered pair was seen once: by its lower row as a query and by
    // its higher row as a column. Merge both sides of every token.
    let mut merged: Vec<TopK> = (0..n).map(|_| TopK::new(kk)).collect();
    for (panels, cols) in parts {
        for (r0, rows) in panels {
            for (i, top) in rows.into_iter().enumerate() {
                merged[r0 + i].extend(top);
            }
        }
        for (i, top) in cols.into_iter().enumerate() {
            merged[i].extend(top);
        }
    }
    Some(merged.into_iter().map(TopK::into_items).collect())
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use std::arch::x86_64::*;

    use super::{Found, LANES, MR, NR, Quantized};

    /// Query rows `r0..r1` against every column `j > i`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn panel(q: &Quantized, r0: usize, r1: usize, found: &mut Found<'_>) {
        let mut j0 = (r0 / NR) * NR;
        while j0 < q.n {
            let mut i0 = r0;
            while i0 < r1 {
                // A tile whose columns all lie at or below its first row's
                // diagonal holds no pair j > i.
                if j0 + NR > i0 + 1 {
                    // SAFETY: rows up to i0 + MR and columns up to j0 + NR
                    // lie in the padded arrays (n_pad is a multiple of NR,
                    // and of MR, and PANEL is a multiple of MR).
                    unsafe { micro(q, i0, (r1 - i0).min(MR), j0, found) };
                }
                i0 += MR;
            }
            j0 += NR;
        }
    }

    /// Bits of the columns `jb..jb + 16` that pair with row `i`: `i < j < n`.
    #[inline(always)]
    fn pair_mask(i: usize, jb: usize, n: usize) -> u16 {
        let lo = (i + 1).saturating_sub(jb).min(LANES);
        let hi = n.saturating_sub(jb).min(LANES);
        if hi <= lo {
            return 0;
        }
        let upto = (1u32 << hi) - 1;
        let from = (1u32 << lo) - 1;
        (upto & !from) as u16
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn micro(q: &Quantized, i0: usize, mr: usize, j0: usize, found: &mut Found<'_>) {
        let g = q.groups;
        let mut acc = [[_mm512_setzero_si512(); 2]; MR];
        // SAFETY (whole block): `a` has n_pad · width bytes and i0 + MR ≤
        // n_pad; `b` has n_pad / 16 blocks of g · 64 bytes and j0 / 16 + 1 <
        // n_pad / 16; `scale`, `bias` and `col_thr` have n_pad entries.
        unsafe {
            let a = q.a.as_ptr().add(i0 * q.width);
            let b0 = q.b.as_ptr().add((j0 / LANES) * g * 64);
            let b1 = b0.add(g * 64);
            for k in 0..g {
                let v0 = _mm512_loadu_si512(b0.add(k * 64).cast());
                let v1 = _mm512_loadu_si512(b1.add(k * 64).cast());
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = a.add(r * q.width + k * 4).cast::<i32>().read_unaligned();
                    let x = _mm512_set1_epi32(x);
                    acc[0] = _mm512_dpbusd_epi32(acc[0], x, v0);
                    acc[1] = _mm512_dpbusd_epi32(acc[1], x, v1);
                }
            }
            let mut sims = [0f32; LANES];
            for (r, acc) in acc.iter().enumerate().take(mr) {
                let i = i0 + r;
                let si = _mm512_set1_ps(q.scale[i]);
                for (h, &sum) in acc.iter().enumerate() {
                    let jb = j0 + h * LANES;
                    let valid = pair_mask(i, jb, q.n);
                    if valid == 0 {
                        continue;
                    }
                    let bias = _mm512_loadu_si512(q.bias.as_ptr().add(jb).cast());
                    let scale = _mm512_loadu_ps(q.scale.as_ptr().add(jb));
                    let s = _mm512_mul_ps(
                        _mm512_cvtepi32_ps(_mm512_sub_epi32(sum, bias)),
                        _mm512_mul_ps(si, scale),
                    );
                    let ri = i - found.r0;
                    let row_thr = _mm512_set1_ps(found.row_thr[ri]);
                    let col_thr = _mm512_loadu_ps(found.col_thr.as_ptr().add(jb));
                    let mut to_row = _mm512_mask_cmp_ps_mask::<_CMP_GT_OQ>(valid, s, row_thr);
                    let mut to_col = _mm512_mask_cmp_ps_mask::<_CMP_GT_OQ>(valid, s, col_thr);
                    if (to_row | to_col) == 0 {
                        continue;
                    }
                    _mm512_storeu_ps(sims.as_mut_ptr(), s);
                    while to_row != 0 {
                        let c = to_row.trailing_zeros() as usize;
                        to_row &= to_row - 1;
                        let top = &mut found.rows[ri];
                        top.push(sims[c], (jb + c) as u32);
                        found.row_thr[ri] = top.threshold();
                    }
                    while to_col != 0 {
                        let c = to_col.trailing_zeros() as usize;
                        to_col &= to_col - 1;
                        let top = &mut found.cols[jb + c];
                        top.push(sims[c], i as u32);
                        found.col_thr[jb + c] = top.threshold();
                    }
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::pair_mask;

        #[test]
        fn pair_masks_keep_columns_above_the_row_and_inside_the_vocabulary() {
            assert_eq!(pair_mask(0, 16, 100), 0xFFFF);
            assert_eq!(pair_mask(20, 16, 100), 0xFFE0);
            assert_eq!(pair_mask(40, 16, 100), 0);
            assert_eq!(pair_mask(3, 16, 20), 0x000F);
            assert_eq!(pair_mask(17, 16, 20), 0x000C);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::matrix::dot;
    use super::super::neighbours::tests::random_unit;
    use super::*;

    #[test]
    fn the_estimates_are_close_and_every_pair_is_seen_from_both_sides() {
        if !available() {
            eprintln!("this CPU has no AVX-512 VNNI: the kernel is not used here");
            return;
        }
        // Odd sizes: a partial last panel, tile and 4-byte group.
        let u = random_unit(700, 37, 5);
        let kk = 699;
        let c = candidates(&u, kk, 2).unwrap();
        assert_eq!(c.len(), 700);
        for (i, list) in c.iter().enumerate() {
            assert_eq!(list.len(), 699, "token {i} sees every other token");
            assert!(list.iter().all(|&(_, j)| j as usize != i));
            for &(s, j) in list {
                let exact = dot(u.row(i), u.row(j as usize));
                assert!((s - exact).abs() < 0.02, "{i},{j}: {s} vs {exact}");
            }
        }
    }

    #[test]
    fn the_best_candidates_hold_the_exact_neighbours() {
        if !available() {
            eprintln!("this CPU has no AVX-512 VNNI: the kernel is not used here");
            return;
        }
        let u = random_unit(1500, 64, 9);
        let c = candidates(&u, 24, 2).unwrap();
        for i in (0..1500).step_by(7) {
            let mut all: Vec<(f32, usize)> = (0..1500)
                .filter(|&j| j != i)
                .map(|j| (dot(u.row(i), u.row(j)), j))
                .collect();
            all.sort_by(|a, b| b.0.total_cmp(&a.0));
            for &(_, j) in &all[..5] {
                assert!(
                    c[i].iter().any(|&(_, x)| x as usize == j),
                    "token {i}: neighbour {j} missing"
                );
            }
        }
    }
}
