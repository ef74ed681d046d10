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
// Launch (see kernel.toml): grid = [tokens, ceil_div(d, S)], block = [256],
// with S = KH_BLOCK * KH_PACKS * (elements per 16 bytes) columns per workgroup:
// 2048 for f32, 4096 for f16/bf16. Block (t, c) computes row t's columns
// [c S, (c + 1) S) (rows on x, so any token count; grid-y is at most 8 for
// d = 16384, far below CUDA's 65535).
// - When d * sizeof(T) is a multiple of 16 bytes and `input` and `out` are
//   aligned alike modulo 16 bytes, the gate half input[t, :d], the up half
//   input[t, d:] and out[t, :] are all aligned alike and are read and written
//   as 16-byte packs of 4 f32 or 8 f16/bf16 elements
//   (global_load/store_dwordx4): thread i of the block has packs i and i + 256 of the
//   block's span, and issues all four loads (two gate, two up) before using
//   any. The elements before the row's first 16-byte boundary (the head) and
//   after its last whole pack (the tail), at most 2 * 7, are done one by one
//   by block (t, 0), at most one per thread.
// - Otherwise (d not a multiple of a pack, input and out aligned differently,
//   or a row shorter than a pack plus its head) the block's span is read
//   element by element: 8 (f32) or 16 (f16/bf16) columns per thread, strided
//   by 256 so that a wavefront's loads are coalesced, in steps of 8 whose loads
//   are all issued before use.
// Symbols: <op>_<dtype>, e.g. silu_and_mul_f16. f16 and bf16 are stored as
// 16 bits and computed in f32; bf16 is handled as raw bits (unsigned short).

// launch_bounds does not reach AMDGPU code (the code object would say 1024 threads);
// amdgpu_flat_work_group_size makes it 256, so a larger launch is refused.
#define KH_KERNEL                                                                           \
    extern "C" __attribute__((global)) __attribute__((launch_bounds(256)))                  \
        __attribute__((amdgpu_flat_work_group_size(1, 256)))
#define KH_DEVICE static __attribute__((device)) inline __attribute__((always_inline))

typedef unsigned int u32;
typedef unsigned long long u64;
typedef _Float16 f16;        // IEEE half: loads/stores convert to/from f32
typedef unsigned short bf16; // raw bfloat16 bits
typedef float f32x4 __attribute__((ext_vector_type(4)));
typedef u32 u32x4 __attribute__((ext_vector_type(4)));

#define KH_BLOCK 256u // threads per workgroup; must equal `block` in kernel.toml
#define KH_PACKS 2u   // 16-byte packs per thread and half (kernel.toml: S = 256 * this * pack)
#define KH_STEP 8u    // columns per thread per step of the element path
#define KH_NONE 0xffffffffu
KH_DEVICE u32 thread_id() { return __builtin_amdgcn_workitem_id_x(); }
KH_DEVICE u32 block_x() { return __builtin_amdgcn_workgroup_id_x(); }
KH_DEVICE u32 block_y() { return __builtin_amdgcn_workgroup_id_y(); }

// ---- element storage <-> f32 ----
// One element's raw bits (zero-extended), and those bits as f32 (the
// pointer only names the dtype).
KH_DEVICE u32 load_bits(const float* p) { return __builtin_bit_cast(u32, *p); }
KH_DEVICE u32 load_bits(const f16* p) { return *(const unsigned short*)p; }
KH_DEVICE u32 load_bits(const bf16* p) { return *p; }
KH_DEVICE float to_f32(const float*, u32 bits) { return __builtin_bit_cast(float, bits); }
KH_DEVICE float to_f32(const f16*, u32 bits) { return (float)__builtin_bit_cast(f16, (unsigned short)bits); }
KH_DEVICE float to_f32(const bf16*, u32 bits) { return __builtin_bit_cast(float, bits << 16); }
// f32 -> bf16 bits, rounded to nearest, ties to even; a NaN stays a (quiet)
// NaN. Both results are computed and one selected: no branch.
KH_DEVICE u32 bf16_bits(float v) {
    u32 u = __builtin_bit_cast(u32, v);
    u32 quieted = (u >> 16) | 0x40u, rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return (u & 0x7fffffffu) > 0x7f800000u ? quieted : rounded;
}
KH_DEVICE void store(float* p, float v) { *p = v; }
KH_DEVICE void store(f16* p, float v) { *p = (f16)v; } // v_cvt_f16_f32, round to nearest even
KH_DEVICE void store(bf16* p, float v) { *p = (bf16)bf16_bits(v); }

// v rounded to the pointer's 16-bit dtype, as the low bits of a u32.
KH_DEVICE u32 f32_to_half(const f16*, float v) {
    return __builtin_bit_cast(unsigned short, (f16)v); // v_cvt_f16_f32, round to nearest even
}
KH_DEVICE u32 f32_to_half(const bf16*, float v) { return bf16_bits(v); }

// ---- 16-byte packs (global_load/store_dwordx4) ----
template <class T> struct Pack { // f16, bf16: 8 elements as 4 x 32 bits
    static const u32 N = 8;
    typedef u32x4 raw;
};
template <> struct Pack<float> {
    static const u32 N = 4;
    typedef f32x4 raw;
};
// p is 16-byte aligned.
template <class T> KH_DEVICE typename Pack<T>::raw load_pack(const T* p) {
    return *(const typename Pack<T>::raw*)p;
}
// Raw bits -> N elements in f32 (the pointer only names the dtype).
KH_DEVICE void unpack(const float*, f32x4 r, float* v) { v[0] = r.x, v[1] = r.y, v[2] = r.z, v[3] = r.w; }
template <class T> KH_DEVICE void unpack(const T* dtype, u32x4 r, float* v) { // 16-bit dtypes
    u32 w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (u32 i = 0; i < 4; i++) {
        v[2 * i] = to_f32(dtype, w[i] & 0xffffu);
        v[2 * i + 1] = to_f32(dtype, w[i] >> 16);
    }
}
// Loaded values pass through pin() once all of a thread's loads are written:
// an empty asm that claims to change them, so that the compiler cannot sink
// a load into the branch that stores its result (which would wait for each
// load in turn). It emits no instruction (the wait for the loads lands there).
KH_DEVICE void pin(u32& v) { asm volatile("" : "+v"(v)); }
KH_DEVICE void pin(float& v) { asm volatile("" : "+v"(v)); }
KH_DEVICE void pin(u32x4& v) {
    asm volatile("" : "+v"(v.x), "+v"(v.y), "+v"(v.z), "+v"(v.w));
}
KH_DEVICE void pin(f32x4& v) {
    asm volatile("" : "+v"(v.x), "+v"(v.y), "+v"(v.z), "+v"(v.w));
}
// p is 16-byte aligned.
KH_DEVICE void store_pack(float* p, const float* v) { *(f32x4*)p = f32x4{v[0], v[1], v[2], v[3]}; }
template <class T> KH_DEVICE void store_pack(T* p, const float* v) { // 16-bit dtypes
    u32 w[4];
#pragma unroll
    for (u32 i = 0; i < 4; i++) w[i] = f32_to_half(p, v[2 * i]) | f32_to_half(p, v[2 * i + 1]) << 16;
    *(u32x4*)p = u32x4{w[0], w[1], w[2], w[3]};
}

// ---- math (no device libs: built on v_exp_f32) ----
KH_DEVICE float exp_f32(float x) { return __builtin_exp2f(x * 1.4426950408889634f); }

// erf(x), |error| < 1e-7 in exact arithmetic (minimax fit, two intervals).
// Both intervals' polynomials are evaluated and one is selected: no branch
// (a wavefront holding both kinds of x would run both sides anyway).
KH_DEVICE float erf_f32(float a) {
    float t = __builtin_fabsf(a), s = a * a;
    float r = __builtin_fmaf(-1.72853470e-5f, t, 3.83197126e-4f); // |a| > 0.927734375
    float u = __builtin_fmaf(-3.88396438e-3f, t, 2.42546219e-2f);
    r = __builtin_fmaf(r, s, u);
    r = __builtin_fmaf(r, t, -1.06777877e-1f);
    r = __builtin_fmaf(r, t, -6.34846687e-1f);
    r = __builtin_fmaf(r, t, -1.28717512e-1f);
    r = __builtin_fmaf(r, t, -t);
    r = 1.0f - exp_f32(r);
    float large = __builtin_copysignf(r, a);
    r = -5.96761703e-4f; // |a| <= 0.927734375 (and NaN)
    r = __builtin_fmaf(r, s, 4.99119423e-3f);
    r = __builtin_fmaf(r, s, -2.67681349e-2f);
    r = __builtin_fmaf(r, s, 1.12819925e-1f);
    r = __builtin_fmaf(r, s, -3.76125336e-1f);
    r = __builtin_fmaf(r, s, 1.28379166e-1f);
    float small = __builtin_fmaf(r, a, a);
    return t > 0.927734375f ? large : small;
}

enum Act { SILU, GELU, GELU_TANH };

template <int A> KH_DEVICE float act(float x) {
    if (A == SILU) return x / (1.0f + exp_f32(-x));
    if (A == GELU) return 0.5f * x * (1.0f + erf_f32(x * 0.70710678118654752f));
    // GELU_TANH: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3),
    // computed as x / (1 + exp(-2u)) (the same value: 0.5 (1 + tanh(u)) is
    // the logistic function of 2u), which does not cancel where tanh(u)
    // nears -1 and saturates to 0 and x at the ends.
    float inner = 0.79788456080286536f * (x + 0.044715f * x * x * x);
    return x / (1.0f + exp_f32(-2.0f * inner));
}

// The vector path of one block: x is the row's gate half (x + d its up half)
// and o its output; packs of N elements start at element `head` of each and
// there are `packs` of them (at least one). This thread's packs are
// first + k * 256, k < KH_PACKS; `lone` is its single head or tail element
// (KH_NONE if it has none). A pack index past the row loads the row's last
// pack again (no branch before the loads) and is not stored.
template <int A, class T>
KH_DEVICE void act_packs(T* __restrict__ o, const T* __restrict__ x, u32 d, u32 head, u32 packs,
                         u32 first, u32 lone) {
    const u32 N = Pack<T>::N;
    const T* xp = x + head;
    const T* yp = x + d + head;
    T* op = o + head;
    typename Pack<T>::raw gate[KH_PACKS], up[KH_PACKS];
#pragma unroll
    for (u32 k = 0; k < KH_PACKS; k++) {
        u32 i = first + k * KH_BLOCK;
        u64 at = (u64)(i < packs ? i : packs - 1) * N;
        gate[k] = load_pack(xp + at);
        up[k] = load_pack(yp + at);
    }
    if (lone != KH_NONE) {
        float g = to_f32(x, load_bits(x + lone)), u = to_f32(x, load_bits(x + d + lone));
        store(o + lone, act<A>(g) * u);
    }
#pragma unroll
    for (u32 k = 0; k < KH_PACKS; k++) pin(gate[k]), pin(up[k]);
#pragma unroll
    for (u32 k = 0; k < KH_PACKS; k++) {
        u32 i = first + k * KH_BLOCK;
        if (i < packs) {
            float g[N], u[N];
            unpack(x, gate[k], g);
            unpack(x, up[k], u);
#pragma unroll
            for (u32 j = 0; j < N; j++) g[j] = act<A>(g[j]) * u[j];
            store_pack(op + (u64)i * N, g);
        }
    }
}

// The element path of one block: columns first + k * 256, k < E, of the
// row, in steps of KH_STEP columns per thread (a column past d loads column
// d - 1 again and is not stored).
template <int A, u32 E, class T>
KH_DEVICE void act_elements(T* __restrict__ o, const T* __restrict__ x, u32 d, u32 first) {
#pragma unroll 1
    for (u32 step = 0; step < E; step += KH_STEP) {
        u32 gate[KH_STEP], up[KH_STEP];
#pragma unroll
        for (u32 k = 0; k < KH_STEP; k++) {
            u32 i = first + (step + k) * KH_BLOCK;
            u32 at = i < d ? i : d - 1;
            gate[k] = load_bits(x + at);
            up[k] = load_bits(x + d + at);
        }
#pragma unroll
        for (u32 k = 0; k < KH_STEP; k++) pin(gate[k]), pin(up[k]);
#pragma unroll
        for (u32 k = 0; k < KH_STEP; k++) {
            u32 i = first + (step + k) * KH_BLOCK;
            if (i < d) store(o + i, act<A>(to_f32(x, gate[k])) * to_f32(x, up[k]));
        }
    }
}

template <int A, class T>
KH_DEVICE void act_and_mul(T* __restrict__ out, const T* __restrict__ input, u32 tokens, u32 d) {
    const u32 N = Pack<T>::N;
    u32 t = block_x(), c = block_y(), tid = thread_id();
    if (t >= tokens || d == 0) return;
    const T* x = input + (u64)t * 2 * d;
    T* o = out + (u64)t * d;
    u64 xa = (u64)x, oa = (u64)o;
    u32 head = (u32)((16 - xa % 16) % 16 / sizeof(T)); // elements before the first 16-byte boundary
    head = head < d ? head : d;
    u32 packs = (d - head) / N;
    if ((xa - oa) % 16 == 0 && d % N == 0 && packs > 0) {
        // Then d - head - packs * N (the tail) is N - head when head > 0, else 0.
        u32 tail = head + packs * N; // index of the first tail element
        u32 lone = tid < head ? tid : tid >= N && tid - N < d - tail ? tail + tid - N : KH_NONE;
        act_packs<A>(o, x, d, head, packs, c * KH_PACKS * KH_BLOCK + tid, c == 0 ? lone : KH_NONE);
    } else {
        act_elements<A, KH_PACKS * N>(o, x, d, c * KH_PACKS * N * KH_BLOCK + tid);
    }
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
