// rmsnorm.cu - RMS normalisation (CUDA C++, reference kernels).
//
//   out[t, :] = input[t, :] * rsqrt(mean(input[t, :]^2) + eps) * weight[:]
// for t < tokens, accumulated in f32 and rounded to the dtype once.
//
// Built to PTX by scripts/build-kernels.sh with clang-15 alone (no CUDA toolkit):
//   clang-15 -x cuda --cuda-device-only --cuda-gpu-arch=sm_80 -nocudainc \
//            -nocudalib -O3 -S -o build/cuda/rmsnorm_sm80.ptx src/rmsnorm.cu
// Without the toolkit there are no headers and no libdevice, so this file
// defines the few CUDA spellings it needs and uses NVVM builtins for math.
//
// Launch (see kernel.toml): grid = [tokens], block = [256]; one block per
// row, any hidden size. The row, the weights and the output are read and
// written as 16-byte packs of 4 f32 or 8 f16/bf16 elements
// (ld/st.global.v4), dealt out round-robin: thread i has packs i, i + 256, ...
// The elements before the row's first 16-byte boundary (the head) and after
// its last whole pack (the tail), at most 2 * 7, are read one by one, at most
// one per thread. When `input`, `out` and `weight` are not all aligned alike
// modulo 16 bytes for a row (never for whole allocations and a hidden size
// that is a multiple of 8), that row is read element by element.
// - Rows of up to 256 * 4 packs (4096 f32 or 8192 f16/bf16 elements) are
//   read once: every thread keeps its at most 4 packs in registers (1, 2 or 4
//   of them, the fewest that hold the row). It sums their squares, issues the
//   loads of its weights, and the block reduces the sum (warp shuffles, then
//   one shared-memory slot per warp) while those loads are in flight; then
//   the threads scale and write their packs.
// - Longer rows (and element-by-element rows) take two passes over global
//   memory, 4 packs (8 elements element by element) per thread at a time: the
//   first sums the squares, the second (the row now mostly comes from cache)
//   reads the row and the weights again and writes the output.
// All loads of a step are issued before any of their values is used.
// Symbols: rms_norm_<dtype>, e.g. rms_norm_bf16.
// f16 and bf16 are stored as 16 bits and computed in f32; bf16 is handled as
// raw bits (unsigned short).

#define KH_KERNEL extern "C" __attribute__((global)) __attribute__((launch_bounds(256)))
#define KH_DEVICE static __attribute__((device)) inline __attribute__((always_inline))

typedef unsigned int u32;
typedef unsigned long long u64;
typedef __fp16 f16;          // storage-only half: loads/stores convert to/from f32
typedef unsigned short bf16; // raw bfloat16 bits
typedef float f32x4 __attribute__((ext_vector_type(4)));
typedef u32 u32x4 __attribute__((ext_vector_type(4)));

#define KH_BLOCK 256u // threads per block; must equal `block` in kernel.toml
#define KH_WARP 32u   // threads per warp
#define KH_WARPS (KH_BLOCK / KH_WARP)
#define KH_CACHE 4u // 16-byte packs per thread held in registers (rows read once)
#define KH_STEP 4u  // 16-byte packs per thread per step of the two-pass path
#define KH_STEP1 8u // elements per thread per step of the element-by-element path
#define KH_NONE 0xffffffffu
KH_DEVICE u32 thread_id() { return __nvvm_read_ptx_sreg_tid_x(); }
KH_DEVICE u32 block_id() { return __nvvm_read_ptx_sreg_ctaid_x(); }
KH_DEVICE void sync_threads() { __syncthreads(); } // bar.sync 0
// v from the lane whose index is this lane's XOR lane_mask, all 32 lanes taking
// part. Inline PTX: clang enables __nvvm_shfl_sync_* only with a CUDA toolkit's
// PTX version, though the output (.version 7.0 for sm_80) has shfl.sync.
KH_DEVICE float shfl_xor(float v, u32 lane_mask) {
    float r;
    asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=f"(r) : "f"(v), "r"(lane_mask));
    return r;
}
KH_DEVICE float rsqrt_f32(float x) { return __nvvm_rsqrt_approx_f(x); }

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
KH_DEVICE void store(f16* p, float v) { *p = (f16)v; } // cvt.rn.f16.f32
KH_DEVICE void store(bf16* p, float v) { *p = (bf16)bf16_bits(v); }
// v rounded to the pointer's 16-bit dtype, as the low bits of a u32.
KH_DEVICE u32 f32_to_half(const f16*, float v) {
    return __builtin_bit_cast(unsigned short, (f16)v); // cvt.rn.f16.f32
}
KH_DEVICE u32 f32_to_half(const bf16*, float v) { return bf16_bits(v); }

// ---- W consecutive elements: a 16-byte pack (W > 1, ld/st.global.v4) or one ----
template <class T> struct Pack { static const u32 N = 8; }; // f16, bf16: 8 elements
template <> struct Pack<float> { static const u32 N = 4; };
// p is 16-byte aligned.
template <class T> KH_DEVICE u32x4 load_pack(const T* p) { return *(const u32x4*)p; }
// How W elements are loaded: their raw bits, one load instruction.
template <u32 W> struct Raw { // a pack
    typedef u32x4 type;
    template <class T> KH_DEVICE type load(const T* p) { return load_pack(p); }
};
template <> struct Raw<1> { // one element, zero-extended
    typedef u32 type;
    template <class T> KH_DEVICE type load(const T* p) { return load_bits(p); }
};
template <u32 W, class T> KH_DEVICE typename Raw<W>::type load_raw(const T* p) { return Raw<W>::load(p); }
// Raw bits -> W elements in f32 (the pointer only names the dtype).
template <class T> KH_DEVICE void unpack(const T* dtype, u32 r, float* v) { v[0] = to_f32(dtype, r); }
// (The vector's elements are copied out first: clang 15's __builtin_bit_cast
// of an element such as r.y reads element 0.)
KH_DEVICE void unpack(const float* dtype, u32x4 r, float* v) {
    u32 w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (u32 i = 0; i < 4; i++) v[i] = to_f32(dtype, w[i]);
}
template <class T> KH_DEVICE void unpack(const T* dtype, u32x4 r, float* v) { // 16-bit dtypes
    u32 w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (u32 i = 0; i < 4; i++) {
        v[2 * i] = to_f32(dtype, w[i] & 0xffffu);
        v[2 * i + 1] = to_f32(dtype, w[i] >> 16);
    }
}
// Loaded values pass through pin() once all of a step's loads are written:
// an empty asm that claims to change them, so that the compiler cannot sink
// a load into the branch that stores its result (which would wait for each
// load in turn). It emits no instruction.
KH_DEVICE void pin(u32& v) { asm volatile("" : "+r"(v)); }
KH_DEVICE void pin(u32x4& v) { asm volatile("" : "+r"(v.x), "+r"(v.y), "+r"(v.z), "+r"(v.w)); }
// p is 16-byte aligned.
KH_DEVICE void store_pack(float* p, const float* v) { *(f32x4*)p = f32x4{v[0], v[1], v[2], v[3]}; }
template <class T> KH_DEVICE void store_pack(T* p, const float* v) { // 16-bit dtypes
    u32 w[4];
#pragma unroll
    for (u32 i = 0; i < 4; i++) w[i] = f32_to_half(p, v[2 * i]) | f32_to_half(p, v[2 * i + 1]) << 16;
    *(u32x4*)p = u32x4{w[0], w[1], w[2], w[3]};
}
// W is a constant, so the branch not taken is compiled out.
template <u32 W, class T> KH_DEVICE void store_w(T* p, const float* v) {
    if (W == 1) store(p, v[0]);
    else store_pack(p, v);
}

// ---- block reduction (every thread gets the result) ----
// Butterfly within each warp, then one shared slot per warp, read by all.
// Called once per block (one row per block), so its slots are never reused.
KH_DEVICE float block_sum(float v) {
    static __attribute__((shared)) float slot[KH_WARPS];
#pragma unroll
    for (u32 d = KH_WARP / 2; d > 0; d >>= 1) v += shfl_xor(v, d);
    u32 tid = thread_id();
    if (tid % KH_WARP == 0) slot[tid / KH_WARP] = v;
    sync_threads();
    v = slot[0];
#pragma unroll
    for (u32 w = 1; w < KH_WARPS; w++) v += slot[w];
    return v;
}

// The layout of one row of `cols` elements: `head` single elements, then
// `packs` (at least one) packs of W elements from x + head (16-byte aligned
// when W > 1), then the single elements of the tail. Thread tid's share:
// packs tid, tid + 256, ..., and at most one single element (`lone`): head
// element tid (threads 0..head-1) or tail element tid - W (threads W.., as
// head < W).
struct Row {
    u32 head, packs, lone;
};
template <u32 W> KH_DEVICE Row row_layout(u32 cols, u32 head, u32 tid) {
    u32 packs = (cols - head) / W;
    u32 tail = head + packs * W; // index of the first tail element
    u32 lone = tid < head ? tid : tid >= W && tid - W < cols - tail ? tail + tid - W : KH_NONE;
    return Row{head, packs, lone};
}

// The loads are not written behind branches, so that all of a thread's loads
// are in flight at once: a pack index past the row reads the row's last pack
// again (from cache), its squares are not counted and it is not stored; a
// thread with no single element reads element 0 and discards it.

// x * scale * w for W elements, stored at o.
template <u32 W, class T>
KH_DEVICE void scale_store(T* o, typename Raw<W>::type xr, typename Raw<W>::type wr, float scale) {
    float v[W], w[W];
    unpack(o, xr, v);
    unpack(o, wr, w);
#pragma unroll
    for (u32 j = 0; j < W; j++) v[j] = v[j] * scale * w[j];
    store_w<W>(o, v);
}

// Rows of up to 256 * C packs: each thread keeps its packs in registers, so
// the row is read once. The barrier (in block_sum) is reached by every thread.
template <class T, u32 W, u32 C>
KH_DEVICE void rms_cached(T* __restrict__ o, const T* __restrict__ x, const T* __restrict__ w,
                          float eps, u32 hidden, Row row) {
    u32 tid = thread_id();
    const T* xp = x + row.head;
    const T* wp = w + row.head;
    T* op = o + row.head;
    typename Raw<W>::type xr[C], wr[C];
    u32 at = row.lone != KH_NONE ? row.lone : 0;

    u32 lone_x = load_bits(x + at);
#pragma unroll
    for (u32 k = 0; k < C; k++) {
        u32 i = tid + k * KH_BLOCK;
        xr[k] = load_raw<W>(xp + (u64)(i < row.packs ? i : row.packs - 1) * W);
    }
    float lx = row.lone != KH_NONE ? to_f32(x, lone_x) : 0.0f;
    float s = lx * lx;
#pragma unroll
    for (u32 k = 0; k < C; k++) {
        float v[W];
        unpack(x, xr[k], v);
        float sk = 0.0f;
#pragma unroll
        for (u32 j = 0; j < W; j++) sk += v[j] * v[j];
        s += tid + k * KH_BLOCK < row.packs ? sk : 0.0f;
    }
    // The weights' loads, in flight during the reduction.
    u32 lone_w = load_bits(w + at);
#pragma unroll
    for (u32 k = 0; k < C; k++) {
        u32 i = tid + k * KH_BLOCK;
        wr[k] = load_raw<W>(wp + (u64)(i < row.packs ? i : row.packs - 1) * W);
    }
    float scale = rsqrt_f32(block_sum(s) / (float)hidden + eps);
    pin(lone_w);
#pragma unroll
    for (u32 k = 0; k < C; k++) pin(xr[k]), pin(wr[k]);
#pragma unroll
    for (u32 k = 0; k < C; k++) {
        u32 i = tid + k * KH_BLOCK;
        if (i < row.packs) scale_store<W>(op + (u64)i * W, xr[k], wr[k], scale);
    }
    if (row.lone != KH_NONE) store(o + row.lone, lx * scale * to_f32(x, lone_w));
}

// Any row, in steps of C packs per thread: a pass summing the squares, then
// a pass that reads the row again and writes it. The barrier (in block_sum)
// is outside the loops and reached by every thread.
template <class T, u32 W, u32 C>
KH_DEVICE void rms_stream(T* __restrict__ o, const T* __restrict__ x, const T* __restrict__ w,
                          float eps, u32 hidden, Row row) {
    u32 tid = thread_id();
    const T* xp = x + row.head;
    const T* wp = w + row.head;
    T* op = o + row.head;
    typename Raw<W>::type xr[C], wr[C];
    u32 at = row.lone != KH_NONE ? row.lone : 0;

    float lx = row.lone != KH_NONE ? to_f32(x, load_bits(x + at)) : 0.0f;
    float s = lx * lx;
    for (u32 base = tid; base < row.packs; base += C * KH_BLOCK) {
#pragma unroll
        for (u32 k = 0; k < C; k++) {
            u32 i = base + k * KH_BLOCK;
            xr[k] = load_raw<W>(xp + (u64)(i < row.packs ? i : row.packs - 1) * W);
        }
#pragma unroll
        for (u32 k = 0; k < C; k++) {
            float v[W];
            unpack(x, xr[k], v);
            float sk = 0.0f;
#pragma unroll
            for (u32 j = 0; j < W; j++) sk += v[j] * v[j];
            s += base + k * KH_BLOCK < row.packs ? sk : 0.0f;
        }
    }
    float scale = rsqrt_f32(block_sum(s) / (float)hidden + eps);
    if (row.lone != KH_NONE) store(o + row.lone, lx * scale * to_f32(x, load_bits(w + at)));
    for (u32 base = tid; base < row.packs; base += C * KH_BLOCK) {
#pragma unroll
        for (u32 k = 0; k < C; k++) {
            u32 i = base + k * KH_BLOCK;
            u64 p = (u64)(i < row.packs ? i : row.packs - 1) * W;
            xr[k] = load_raw<W>(xp + p);
            wr[k] = load_raw<W>(wp + p);
        }
#pragma unroll
        for (u32 k = 0; k < C; k++) pin(xr[k]), pin(wr[k]);
#pragma unroll
        for (u32 k = 0; k < C; k++) {
            u32 i = base + k * KH_BLOCK;
            if (i < row.packs) scale_store<W>(op + (u64)i * W, xr[k], wr[k], scale);
        }
    }
}

template <class T>
KH_DEVICE void rms_norm(T* __restrict__ out, const T* __restrict__ input,
                        const T* __restrict__ weight, float eps, u32 tokens, u32 hidden) {
    const u32 N = Pack<T>::N;
    u32 t = block_id(), tid = thread_id();
    if (t >= tokens || hidden == 0) return; // uniform across the block: no barrier is skipped by some threads only
    const T* x = input + (u64)t * hidden;
    T* o = out + (u64)t * hidden;
    u64 xa = (u64)x, oa = (u64)o, wa = (u64)weight;
    u32 head = (u32)((16 - xa % 16) % 16 / sizeof(T)); // elements before the first 16-byte boundary
    Row r = row_layout<N>(hidden, head < hidden ? head : hidden, tid);
    if ((xa - oa) % 16 != 0 || (xa - wa) % 16 != 0 || r.packs == 0) {
        // input, out and weight aligned differently (rare), or a row shorter
        // than a pack: element by element, two passes.
        rms_stream<T, 1, KH_STEP1>(o, x, weight, eps, hidden, row_layout<1>(hidden, 0, tid));
    } else if (r.packs <= KH_BLOCK) {
        rms_cached<T, N, 1>(o, x, weight, eps, hidden, r);
    } else if (r.packs <= 2 * KH_BLOCK) {
        rms_cached<T, N, 2>(o, x, weight, eps, hidden, r);
    } else if (r.packs <= KH_CACHE * KH_BLOCK) {
        rms_cached<T, N, KH_CACHE>(o, x, weight, eps, hidden, r);
    } else {
        rms_stream<T, N, KH_STEP>(o, x, weight, eps, hidden, r);
    }
}

// One extern "C" entry point per dtype; parameters in manifest order.
#define KH_RMS_NORM(T, dt)                                                               \
    KH_KERNEL void rms_norm_##dt(T* __restrict__ out, const T* __restrict__ input,      \
                                 const T* __restrict__ weight, float eps, u32 tokens,   \
                                 u32 hidden) {                                          \
        rms_norm(out, input, weight, eps, tokens, hidden);                              \
    }

KH_RMS_NORM(float, f32)
KH_RMS_NORM(f16, f16)
KH_RMS_NORM(bf16, bf16)
