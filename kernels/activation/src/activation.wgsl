// activation.wgsl - gated activations for MLP blocks, WGSL fallback.
//
// The one source of wgsl/activation_f32.wgsl and wgsl/activation_f16.wgsl:
// scripts/wgsl-variants.py makes them, declaring `elem`, the tensors' element
// type (f32, or f16 with `enable f16;` and the `shader-f16` feature). Values
// are converted to f32 for the arithmetic and rounded to `elem` once, on
// store; for f32 the conversions are the identity. bf16 is covered by the
// native (PTX / hsaco) artifacts only. `kernelhub check` validates the output.
// Bindings follow the kernelhub convention (docs/formats.md): the op's tensors
// in parameter order at @group(0) @binding(0..), `read_write` for written
// ones, then the scalar parameters as one uniform struct. Tensors are bound
// as arrays of vec4<elem> (16 bytes for f32, 8 for f16): kernelhub pads its
// buffers to 16 bytes, and no index here goes past the ceil(len / 4) vec4s
// that hold a tensor.

// out[t, c] = act(input[t, c]) * input[t, d + c], computed in f32.
//
// Launch (see kernel.toml): @workgroup_size(256), grid = min(ceil_div(tokens * d,
// 4096), 65535) workgroups. The tokens * d outputs are cut into tiles of 4096;
// workgroup w takes tiles w, w + num_workgroups, ... (grid-stride), so any
// size works within the 65535 workgroups-per-dimension limit.
// - d % 4 == 0 (fast path): a tile is 1024 output vec4s. Each invocation
//   loads 4 (gate, up) pairs of vec4s, 256 vec4s apart (coalesced vec4
//   loads, 8 in flight), then computes and stores its 4 output vec4s.
// - any other d: each invocation handles 16 single elements of the tile,
//   addressing vec4 components (v[i >> 2][i & 3]); slower, but exact for
//   every shape (d = 1, odd d, tokens * d not a multiple of 4).
// Which path runs depends only on the uniform `d`. Indices are u32:
// tokens * 2 * d always fits because the buffers must fit a binding.
// Entry points: silu_and_mul, gelu_and_mul, gelu_tanh_and_mul (same bindings).

struct Params {
    tokens: u32,
    d: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<vec4<elem>>;  // [tokens, d]
@group(0) @binding(1) var<storage, read> input: array<vec4<elem>>;      // [tokens, 2 * d]
@group(0) @binding(2) var<uniform> params: Params;

const WG: u32 = 256u;           // @workgroup_size
const TILE: u32 = 4096u;        // outputs per tile (the grid's divisor)
const TILE_VEC4: u32 = 1024u;   // TILE / 4: output vec4s per tile, 4 per invocation

// x * sigmoid(x), without overflowing exp for large |x|.
fn silu(x: f32) -> f32 {
    let e = exp(-abs(x));
    return x * select(e, 1.0, x >= 0.0) / (1.0 + e);
}

// erf(x), |error| < 1e-7 in exact arithmetic (minimax fit, two intervals).
fn erf_f32(a: f32) -> f32 {
    let t = abs(a);
    let s = a * a;
    if (t > 0.927734375) {
        var r = fma(-1.72853470e-5, t, 3.83197126e-4);
        let u = fma(-3.88396438e-3, t, 2.42546219e-2);
        r = fma(r, s, u);
        r = fma(r, t, -1.06777877e-1);
        r = fma(r, t, -6.34846687e-1);
        r = fma(r, t, -1.28717512e-1);
        r = fma(r, t, -t);
        return select(-1.0, 1.0, a >= 0.0) * (1.0 - exp(r));
    }
    var r = -5.96761703e-4;
    r = fma(r, s, 4.99119423e-3);
    r = fma(r, s, -2.67681349e-2);
    r = fma(r, s, 1.12819925e-1);
    r = fma(r, s, -3.76125336e-1);
    r = fma(r, s, 1.28379166e-1);
    return fma(r, a, a);
}

fn gelu(x: f32) -> f32 {
    return 0.5 * x * (1.0 + erf_f32(x * 0.70710678118654752));
}

// tanh via exp(-2|x|), which never overflows (the builtin tanh may give NaN
// for large inputs on some drivers).
fn tanh_f32(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}

fn gelu_tanh(x: f32) -> f32 {
    let inner = 0.79788456080286536 * (x + 0.044715 * x * x * x);
    return 0.5 * x * (1.0 + tanh_f32(inner));
}

// The activation `op` (0 silu, 1 gelu, 2 gelu_tanh); every call passes a
// constant, so the switch folds away once the driver inlines it.
fn act(op: u32, x: f32) -> f32 {
    switch op {
        case 0u: { return silu(x); }
        case 1u: { return gelu(x); }
        default: { return gelu_tanh(x); }
    }
}

// act(gate) * up, one vec4, in f32.
fn gated4(op: u32, gate_in: vec4<elem>, up_in: vec4<elem>) -> vec4<elem> {
    let gate = vec4<f32>(gate_in);
    let up = vec4<f32>(up_in);
    return vec4<elem>(vec4<f32>(act(op, gate.x), act(op, gate.y), act(op, gate.z), act(op, gate.w)) * up);
}

// Index of input[t, c] for the flat index k = t * n + c of an [tokens, n]
// output (both counted in the same units, elements or vec4s).
fn gate_index(k: u32, n: u32) -> u32 {
    return k + (k / n) * n; // t * 2n + (k - t * n)
}

fn gated(op: u32, lid: u32, wid: u32, nwg: u32) {
    let d = params.d;
    let n = params.tokens * d;
    if (d % 4u == 0u) {
        // Fast path: whole vec4s; a row's d / 4 vec4s never straddle a token.
        let dv = d / 4u;
        let nv = n / 4u;
        for (var base = wid * TILE_VEC4; base < nv; base += nwg * TILE_VEC4) {
            let k0 = base + lid;
            if (base + TILE_VEC4 <= nv) {
                // A whole tile: all loads first, then the math and stores.
                let k1 = k0 + WG;
                let k2 = k1 + WG;
                let k3 = k2 + WG;
                let j0 = gate_index(k0, dv);
                let j1 = gate_index(k1, dv);
                let j2 = gate_index(k2, dv);
                let j3 = gate_index(k3, dv);
                let g0 = input[j0];
                let u0 = input[j0 + dv];
                let g1 = input[j1];
                let u1 = input[j1 + dv];
                let g2 = input[j2];
                let u2 = input[j2 + dv];
                let g3 = input[j3];
                let u3 = input[j3 + dv];
                out[k0] = gated4(op, g0, u0);
                out[k1] = gated4(op, g1, u1);
                out[k2] = gated4(op, g2, u2);
                out[k3] = gated4(op, g3, u3);
            } else {
                // The last, partial tile.
                for (var k = k0; k < nv; k += WG) {
                    let j = gate_index(k, dv);
                    out[k] = gated4(op, input[j], input[j + dv]);
                }
            }
        }
    } else {
        // Any d: single elements, as components of the vec4s.
        for (var base = wid * TILE; base < n; base += nwg * TILE) {
            let end = min(base + TILE, n);
            for (var i = base + lid; i < end; i += WG) {
                let j = gate_index(i, d);
                let u = j + d;
                out[i >> 2u][i & 3u] = elem(act(op, f32(input[j >> 2u][j & 3u])) * f32(input[u >> 2u][u & 3u]));
            }
        }
    }
}

@compute @workgroup_size(256)
fn silu_and_mul(@builtin(local_invocation_index) lid: u32,
                @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    gated(0u, lid, wid.x, nwg.x);
}

@compute @workgroup_size(256)
fn gelu_and_mul(@builtin(local_invocation_index) lid: u32,
                @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    gated(1u, lid, wid.x, nwg.x);
}

@compute @workgroup_size(256)
fn gelu_tanh_and_mul(@builtin(local_invocation_index) lid: u32,
                     @builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    gated(2u, lid, wid.x, nwg.x);
}
