//! Plain-Rust implementations of the reference ops (`kernels/`), computed
//! in `f64` from `f32` inputs: the answers every backend is compared with.
//!
//! Each function follows its op's `description` in `kernel.toml` and the
//! edge cases its CUDA/HIP source documents (a position past the cache is
//! left unchanged; nothing rotates when `rot_dim > head_size`). NaN and
//! infinity propagate as IEEE arithmetic makes them.

/// `silu(x) = x / (1 + e^-x)`.
fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

/// The error function, Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7,
/// below half an `f32` ulp at 1).
fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let sign = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    sign * (1.0 - poly * (-x * x).exp())
}

/// Exact GELU: `0.5 x (1 + erf(x / √2))`.
fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

/// Tanh-approximated GELU: `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
fn gelu_tanh(x: f64) -> f64 {
    let k = (2.0 / std::f64::consts::PI).sqrt();
    0.5 * x * (1.0 + (k * (x + 0.044_715 * x * x * x)).tanh())
}

/// `out[t, i] = act(input[t, i]) * input[t, d + i]` for the gated activations.
fn gated(out: &mut [f32], input: &[f32], tokens: usize, d: usize, act: fn(f64) -> f64) {
    for t in 0..tokens {
        let row = &input[t * 2 * d..(t + 1) * 2 * d];
        for i in 0..d {
            out[t * d + i] = (act(f64::from(row[i])) * f64::from(row[d + i])) as f32;
        }
    }
}

/// `silu_and_mul`.
pub fn silu_and_mul(out: &mut [f32], input: &[f32], tokens: usize, d: usize) {
    gated(out, input, tokens, d, silu);
}

/// `gelu_and_mul` (exact, erf).
pub fn gelu_and_mul(out: &mut [f32], input: &[f32], tokens: usize, d: usize) {
    gated(out, input, tokens, d, gelu);
}

/// `gelu_tanh_and_mul`.
pub fn gelu_tanh_and_mul(out: &mut [f32], input: &[f32], tokens: usize, d: usize) {
    gated(out, input, tokens, d, gelu_tanh);
}

/// `rms_norm`: `out[t, :] = input[t, :] / sqrt(mean(input[t, :]²) + eps) * weight`.
pub fn rms_norm(
    out: &mut [f32],
    input: &[f32],
    weight: &[f32],
    eps: f32,
    tokens: usize,
    hidden: usize,
) {
    for t in 0..tokens {
        let row = &input[t * hidden..(t + 1) * hidden];
        let mean = row
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            / hidden as f64;
        let scale = 1.0 / (mean + f64::from(eps)).sqrt();
        for i in 0..hidden {
            out[t * hidden + i] = (f64::from(row[i]) * scale * f64::from(weight[i])) as f32;
        }
    }
}

/// The geometry of a rotary call.
#[derive(Debug, Clone, Copy)]
pub struct Rotary {
    /// Tokens.
    pub tokens: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key heads.
    pub num_kv_heads: usize,
    /// Elements per head.
    pub head_size: usize,
    /// Leading elements of each head that rotate (even).
    pub rot_dim: usize,
    /// Rows of the cos/sin cache.
    pub max_position: usize,
    /// NeoX pairs `(r, r + rot_dim / 2)`, or GPT-J pairs `(2 r, 2 r + 1)`.
    pub neox: bool,
}

/// `rotary_neox` / `rotary_gptj`, in place on `query` and `key`.
pub fn rotary(
    positions: &[u32],
    query: &mut [f32],
    key: &mut [f32],
    cos_sin_cache: &[f32],
    g: Rotary,
) {
    if g.rot_dim > g.head_size {
        return;
    }
    let half = g.rot_dim / 2;
    for t in 0..g.tokens {
        let position = positions[t] as usize;
        if position >= g.max_position {
            continue;
        }
        let cache = &cos_sin_cache[position * g.rot_dim..(position + 1) * g.rot_dim];
        for (tensor, heads) in [(&mut *query, g.num_heads), (&mut *key, g.num_kv_heads)] {
            for h in 0..heads {
                let head =
                    &mut tensor[(t * heads + h) * g.head_size..(t * heads + h + 1) * g.head_size];
                for r in 0..half {
                    let (c, s) = (f64::from(cache[r]), f64::from(cache[half + r]));
                    let (i, j) = if g.neox {
                        (r, r + half)
                    } else {
                        (2 * r, 2 * r + 1)
                    };
                    let (x, y) = (f64::from(head[i]), f64::from(head[j]));
                    head[i] = (x * c - y * s) as f32;
                    head[j] = (y * c + x * s) as f32;
                }
            }
        }
    }
}

/// Row-wise numerically stable softmax: `out[t, i] = e^(x_i - max) / Σ e^(x_j - max)`.
pub fn softmax(out: &mut [f32], input: &[f32], rows: usize, cols: usize) {
    for r in 0..rows {
        let row = &input[r * cols..(r + 1) * cols];
        let max = row
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
        let sum: f64 = row.iter().map(|&v| (f64::from(v) - max).exp()).sum();
        for i in 0..cols {
            out[r * cols + i] = ((f64::from(row[i]) - max).exp() / sum) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_at_known_points() {
        let input = [1.0, -2.0, 0.0, 3.0, 2.0, 4.0, 5.0, 0.5];
        let mut out = [0.0f32; 4];
        silu_and_mul(&mut out, &input, 1, 4);
        // silu(1) = 0.7310586, silu(-2) = -0.2384058
        assert!((out[0] - 0.731_058_6 * 2.0).abs() < 1e-6, "{out:?}");
        assert!((out[1] - (-0.238_405_8 * 4.0)).abs() < 1e-6, "{out:?}");
        assert_eq!(out[2], 0.0);
        gelu_and_mul(&mut out, &input, 1, 4);
        // gelu(1) = 0.8413447, gelu(3) = 2.9959502
        assert!((out[0] - 0.841_344_7 * 2.0).abs() < 1e-6, "{out:?}");
        assert!((out[3] - 2.995_950_2 * 0.5).abs() < 1e-6, "{out:?}");
        gelu_tanh_and_mul(&mut out, &input, 1, 4);
        assert!((out[0] - 0.841_191_9 * 2.0).abs() < 1e-6, "{out:?}");
        let nan = [f32::NAN, 1.0];
        let mut one = [0.0f32];
        silu_and_mul(&mut one, &nan, 1, 1);
        assert!(one[0].is_nan());
    }

    #[test]
    fn rms_norm_and_softmax() {
        let mut out = [0.0f32; 2];
        rms_norm(&mut out, &[3.0, 4.0], &[1.0, 2.0], 0.0, 1, 2);
        // rms = sqrt(12.5) = 3.5355339
        assert!(
            (out[0] - 0.848_528_1).abs() < 1e-6 && (out[1] - 2.262_741_7).abs() < 1e-6,
            "{out:?}"
        );
        let mut p = [0.0f32; 3];
        softmax(&mut p, &[1000.0, 1000.0, f32::NEG_INFINITY], 1, 3);
        assert_eq!(p, [0.5, 0.5, 0.0], "stable for large inputs");
    }

    #[test]
    fn rotary_rotates_the_right_pairs_and_skips_out_of_range_positions() {
        let angle = std::f32::consts::FRAC_PI_2;
        // One position, rot_dim 2: cos = 0, sin = 1 (a quarter turn).
        let cache = [angle.cos(), angle.sin()];
        let g = Rotary {
            tokens: 2,
            num_heads: 1,
            num_kv_heads: 1,
            head_size: 4,
            rot_dim: 2,
            max_position: 1,
            neox: true,
        };
        let mut q = [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0];
        let mut k = q;
        rotary(&[0, 7], &mut q, &mut k, &cache, g);
        // NeoX pair (0, 1): (1, 2) -> (1 c - 2 s, 2 c + 1 s) = (-2, 1).
        assert!(
            (q[0] + 2.0).abs() < 1e-6 && (q[1] - 1.0).abs() < 1e-6,
            "{q:?}"
        );
        assert_eq!(&q[2..4], &[3.0, 4.0], "beyond rot_dim untouched");
        assert_eq!(
            &q[4..],
            &[1.0, 2.0, 3.0, 4.0],
            "position 7 is past the cache"
        );
        let mut gq = [1.0, 2.0, 3.0, 4.0];
        let mut gk = gq;
        let cache4 = [1.0, 0.0, 0.0, 1.0]; // r=0: angle 0; r=1: quarter turn
        let gptj = Rotary {
            tokens: 1,
            rot_dim: 4,
            neox: false,
            ..g
        };
        rotary(&[0], &mut gq, &mut gk, &cache4, gptj);
        // GPT-J pairs (0,1) unrotated, (2,3): (3, 4) -> (-4, 3).
        assert_eq!(gq, [1.0, 2.0, -4.0, 3.0]);
    }
}
