// activation.hip - gated activations for MLP blocks (HIP, reference kernels).
//
//   out[t, i] = act(input[t, i]) * input[t, d + i]      t < tokens, i < d
//   act = silu | gelu (exact, erf) | gelu_tanh
//
// Built to code objects by scripts/build-kernels.sh with clang-15 + lld-15
// alone (no ROCm install), once per target:
//   clang-15 -x hip --cuda-device-only --offload-arch=gfx90a -nogpuinc -nogpulib \
//            -O3 -fuse-ld=lld --no-gpu-bundle-output \
//            -o build/rocm/activation_gfx90a.hsaco src/activation.hip
// (gfx942: see the note in scripts/build-kernels.sh.) Without ROCm there are
// no headers and no device libraries, so this file defines the few HIP
// spellings it needs and uses clang's AMDGPU builtins for math.
//
// Launch (see kernel.toml): grid = [tokens], block = [256]; one workgroup per
// row, the workgroup's threads stride over the d columns.
// Symbols: <op>_<dtype>, e.g. silu_and_mul_f16. f16 and bf16 are stored as
// 16 bits and computed in f32; bf16 is handled as raw bits (unsigned short).

#define KH_KERNEL extern "C" __attribute__((global)) __attribute__((launch_bounds(256)))
#define KH_DEVICE static __attribute__((device)) inline __attribute__((always_inline))

typedef unsigned int u32;
typedef unsigned long long u64;
typedef _Float16 f16;        // IEEE half: loads/stores convert to/from f32
typedef unsigned short bf16; // raw bfloat16 bits

#define KH_BLOCK 256u // threads per workgroup; must equal `block` in kernel.toml
KH_DEVICE u32 thread_id() { return __builtin_amdgcn_workitem_id_x(); }
KH_DEVICE u32 block_id() { return __builtin_amdgcn_workgroup_id_x(); }

// ---- 16-bit storage <-> f32 ----
KH_DEVICE float load(const float* p) { return *p; }
KH_DEVICE float load(const f16* p) { return (float)*p; }
KH_DEVICE float load(const bf16* p) { return __builtin_bit_cast(float, (u32)*p << 16); }
KH_DEVICE void store(float* p, float v) { *p = v; }
KH_DEVICE void store(f16* p, float v) { *p = (f16)v; } // v_cvt_f16_f32, round to nearest even
KH_DEVICE void store(bf16* p, float v) {
    u32 u = __builtin_bit_cast(u32, v);
    if ((u & 0x7fffffffu) > 0x7f800000u) { // NaN: keep it a (quiet) NaN
        *p = (bf16)((u >> 16) | 0x40u);
        return;
    }
    u += 0x7fffu + ((u >> 16) & 1u); // round to nearest, ties to even
    *p = (bf16)(u >> 16);
}

// ---- math (no device libs: built on v_exp_f32) ----
KH_DEVICE float exp_f32(float x) { return __builtin_exp2f(x * 1.4426950408889634f); }

// erf(x), |error| < 1e-7 in exact arithmetic (minimax fit, two intervals).
KH_DEVICE float erf_f32(float a) {
    float t = __builtin_fabsf(a), s = a * a, r;
    if (t > 0.927734375f) {
        r = __builtin_fmaf(-1.72853470e-5f, t, 3.83197126e-4f);
        float u = __builtin_fmaf(-3.88396438e-3f, t, 2.42546219e-2f);
        r = __builtin_fmaf(r, s, u);
        r = __builtin_fmaf(r, t, -1.06777877e-1f);
        r = __builtin_fmaf(r, t, -6.34846687e-1f);
        r = __builtin_fmaf(r, t, -1.28717512e-1f);
        r = __builtin_fmaf(r, t, -t);
        r = 1.0f - exp_f32(r);
        r = __builtin_copysignf(r, a);
    } else {
        r = -5.96761703e-4f;
        r = __builtin_fmaf(r, s, 4.99119423e-3f);
        r = __builtin_fmaf(r, s, -2.67681349e-2f);
        r = __builtin_fmaf(r, s, 1.12819925e-1f);
        r = __builtin_fmaf(r, s, -3.76125336e-1f);
        r = __builtin_fmaf(r, s, 1.28379166e-1f);
        r = __builtin_fmaf(r, a, a);
    }
    return r;
}

// tanh(x) = 1 - 2 / (exp(2x) + 1); saturates correctly to +-1.
KH_DEVICE float tanh_f32(float x) { return 1.0f - 2.0f / (exp_f32(2.0f * x) + 1.0f); }

enum Act { SILU, GELU, GELU_TANH };

template <int A> KH_DEVICE float act(float x) {
    if (A == SILU) return x / (1.0f + exp_f32(-x));
    if (A == GELU) return 0.5f * x * (1.0f + erf_f32(x * 0.70710678118654752f));
    // GELU_TANH: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    float inner = 0.79788456080286536f * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanh_f32(inner));
}

template <int A, class T>
KH_DEVICE void act_and_mul(T* __restrict__ out, const T* __restrict__ input, u32 tokens, u32 d) {
    u32 t = block_id();
    if (t >= tokens) return;
    const T* x = input + (u64)t * 2 * d;
    T* o = out + (u64)t * d;
    for (u32 i = thread_id(); i < d; i += KH_BLOCK)
        store(o + i, act<A>(load(x + i)) * load(x + d + i));
}

// One extern "C" entry point per (op, dtype); parameters in manifest order.
#define KH_ACT(op, A, T, dt)                                                       \
    KH_KERNEL void op##_##dt(T* __restrict__ out, const T* __restrict__ input, u32 tokens, \
                             u32 d) {                                              \
        act_and_mul<A>(out, input, tokens, d);                                     \
    }
#define KH_ACT_ALL_DTYPES(op, A) \
    KH_ACT(op, A, float, f32)    \
    KH_ACT(op, A, f16, f16)      \
    KH_ACT(op, A, bf16, bf16)

KH_ACT_ALL_DTYPES(silu_and_mul, SILU)
KH_ACT_ALL_DTYPES(gelu_and_mul, GELU)
KH_ACT_ALL_DTYPES(gelu_tanh_and_mul, GELU_TANH)
