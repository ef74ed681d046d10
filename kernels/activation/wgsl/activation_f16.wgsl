enable f16;

// activation_f16.wgsl - gated activations for MLP blocks, WGSL fallback, f16 tensors.
// Needs the `shader-f16` feature (declared in kernel.toml); values are
// converted to f32 for the arithmetic. wgpu buffer sizes are multiples of 4
// bytes, so an odd-length f16 tensor lives in a buffer padded by 2 bytes.
//
// Hand-written (nothing builds it); validated by `kernelhub check`. bf16 is
// covered by the native (PTX / hsaco) artifacts only.
// Bindings follow the kernelhub convention (docs/formats.md): the op's tensors
// in parameter order at @group(0) @binding(0..), `read_write` for written
// ones, then the scalar parameters as one uniform struct.

// Launch (see kernel.toml): @workgroup_size(256), grid = min(ceil_div(tokens * d,
// 256), 65535) workgroups; each invocation strides over the tokens * d outputs,
// so any size works within the 65535 workgroups-per-dimension limit. Indices
// are u32: tokens * 2 * d always fits because the buffers must fit a binding.
// Entry points: silu_and_mul, gelu_and_mul, gelu_tanh_and_mul (same bindings).

struct Params {
    tokens: u32,
    d: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f16>;  // [tokens, d]
@group(0) @binding(1) var<storage, read> input: array<f16>;      // [tokens, 2 * d]
@group(0) @binding(2) var<uniform> params: Params;

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

// Index of input[t, c] for the flat output index i = t * d + c.
fn input_index(i: u32) -> u32 {
    let t = i / params.d;
    return i + t * params.d; // t * 2d + (i - t * d)
}

@compute @workgroup_size(256)
fn silu_and_mul(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = params.tokens * params.d;
    for (var i = gid.x; i < n; i += nwg.x * 256u) {
        let j = input_index(i);
        out[i] = f16(silu(f32(input[j])) * f32(input[j + params.d]));
    }
}

@compute @workgroup_size(256)
fn gelu_and_mul(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = params.tokens * params.d;
    for (var i = gid.x; i < n; i += nwg.x * 256u) {
        let j = input_index(i);
        out[i] = f16(gelu(f32(input[j])) * f32(input[j + params.d]));
    }
}

@compute @workgroup_size(256)
fn gelu_tanh_and_mul(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = params.tokens * params.d;
    for (var i = gid.x; i < n; i += nwg.x * 256u) {
        let j = input_index(i);
        out[i] = f16(gelu_tanh(f32(input[j])) * f32(input[j + params.d]));
    }
}
