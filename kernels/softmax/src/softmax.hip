// softmax.hip - row-wise softmax (HIP, reference kernels).
//
//   out[r, i] = exp(input[r, i] - m) / sum_j exp(input[r, j] - m),  m = max_j input[r, j]
// for r < rows, accumulated in f32 and rounded to the dtype once.
//
// Built to code objects by scripts/build-kernels.sh with clang-15 + lld-15
// alone (no ROCm install), once per target:
//   clang-15 -x hip --cuda-device-only --offload-arch=gfx90a -nogpuinc -nogpulib \
//            -O3 -fuse-ld=lld --no-gpu-bundle-output \
//            -o build/rocm/softmax_gfx90a.hsaco src/softmax.hip
// (gfx942: see the note in scripts/build-kernels.sh.) Without ROCm there are
// no headers and no device libraries, so this file defines the few HIP
// spellings it needs and uses clang's AMDGPU builtins for math (exp(x) is
// v_exp_f32(x * log2(e))).
//
// Launch (see kernel.toml): grid = [rows], block = [256]; one block per row,
// any cols. The row is read as 16-byte packs (4 f32 or 8 f16/bf16 elements,
// global_load/store_dwordx4), dealt out round-robin: thread t has packs t, t + 256, ...
// The elements before the row's first 16-byte boundary (the head) and after
// its last whole pack (the tail), at most 2 * 7, are read one by one, at most
// one per thread. When `input` and `out` are aligned differently modulo 16
// bytes (never for two whole allocations) the row is read element by element.
// - Rows of up to 256 * 32 elements (8192 columns) are read once: every
//   thread keeps its at most 32 elements in registers. The block reduces the
//   row maximum m (wavefront shuffles, then one LDS slot per wavefront), each
//   thread turns its elements into e = exp(x - m) in place and sums them, the
//   block reduces the sum s the same way, and the threads write e / s.
//   One exp per element.
// - Longer rows (and element-by-element rows) take two passes over global
//   memory, 16 elements per thread at a time (4 element by element): the first
//   keeps a running (online) maximum m_t and sum s_t of exp(x - m_t) per
//   thread, rescaling s_t when m_t grows; the block reduces m, rescales each
//   s_t to it and reduces s; the second pass (the row now mostly comes from
//   cache) writes exp(x - m) / s.
// Symbols: softmax_<dtype>, e.g. softmax_bf16. f16 and bf16 are stored as 16
// bits and computed in f32; bf16 is handled as raw bits (unsigned short).
//
// Special values give what exact arithmetic (the CPU reference) gives: a row
// holding a NaN or +inf, or only -inf, comes out all NaN; -inf elements of
// any other row come out 0. The maximum counts a NaN as +inf, so an infinite
// row maximum marks exactly those rows, and they are written as NaN.

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
#define KH_WARP 64u   // threads per wavefront (CDNA: always 64)
#define KH_WARPS (KH_BLOCK / KH_WARP)
#define KH_CACHE 32u // row elements per thread held in registers (rows up to 8192 are read once)
#define KH_STEP 16u  // row elements per thread per step of the two-pass path (longer rows)
#define KH_NONE 0xffffffffu
KH_DEVICE u32 thread_id() { return __builtin_amdgcn_workitem_id_x(); }
KH_DEVICE u32 block_id() { return __builtin_amdgcn_workgroup_id_x(); }
// __syncthreads(): make LDS writes visible across the workgroup, then barrier.
KH_DEVICE void sync_threads() {
    __builtin_amdgcn_fence(__ATOMIC_RELEASE, "workgroup");
    __builtin_amdgcn_s_barrier();
    __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "workgroup");
}
// v from the lane whose index is this lane's XOR lane_mask, within the
// wavefront (ds_bpermute_b32 reads lane addr / 4; all 64 lanes take part).
KH_DEVICE float shfl_xor(float v, u32 lane_mask) {
    int lane = (int)(thread_id() % KH_WARP); // 1-D workgroups: wavefront w holds threads 64w..64w+63
    int r = __builtin_amdgcn_ds_bpermute((lane ^ (int)lane_mask) << 2, __builtin_bit_cast(int, v));
    return __builtin_bit_cast(float, r);
}
// 2^x (v_exp_f32: 2^-inf = 0, 2^+inf = +inf, NaN stays NaN).
KH_DEVICE float exp2_f32(float x) { return __builtin_exp2f(x); }

#define KH_LOG2E 1.4426950408889634f
#define KH_INF __builtin_inff()
#define KH_NAN __builtin_nanf("") // quiet
// x, with a NaN counted as +inf (the running maximum never holds a NaN).
KH_DEVICE float no_nan(float x) { return x != x ? KH_INF : x; }

// ---- 16-bit storage <-> f32 ----
KH_DEVICE float load(const float* p) { return *p; }
KH_DEVICE float load(const f16* p) { return (float)*p; }
KH_DEVICE float load(const bf16* p) { return __builtin_bit_cast(float, (u32)*p << 16); }
// f32 -> bf16 bits, rounded to nearest, ties to even; a NaN stays a (quiet)
// NaN. Both results are computed and one selected: no branch. (Here and below,
// a ?: whose arms are plain values becomes a select; arms that compute
// something may become branches.)
KH_DEVICE u32 bf16_bits(float v) {
    u32 u = __builtin_bit_cast(u32, v);
    u32 quieted = (u >> 16) | 0x40u, rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return (u & 0x7fffffffu) > 0x7f800000u ? quieted : rounded;
}
KH_DEVICE void store(float* p, float v) { *p = v; }
KH_DEVICE void store(f16* p, float v) { *p = (f16)v; } // v_cvt_f16_f32, round to nearest even
KH_DEVICE void store(bf16* p, float v) { *p = (bf16)bf16_bits(v); }

// The 16 low bits of `bits` as an element of the pointer's dtype, in f32.
KH_DEVICE float half_to_f32(const f16*, u32 bits) {
    return (float)__builtin_bit_cast(f16, (unsigned short)bits);
}
KH_DEVICE float half_to_f32(const bf16*, u32 bits) { return __builtin_bit_cast(float, bits << 16); }
// v rounded to the pointer's 16-bit dtype, as the low bits of a u32.
KH_DEVICE u32 f32_to_half(const f16*, float v) {
    return __builtin_bit_cast(unsigned short, (f16)v); // v_cvt_f16_f32
}
KH_DEVICE u32 f32_to_half(const bf16*, float v) { return bf16_bits(v); }

// ---- W consecutive elements: a 16-byte pack (W > 1, global_load/store_dwordx4) or one ----
template <class T> struct Pack { static const u32 N = 8; }; // f16, bf16: 8 elements
template <> struct Pack<float> { static const u32 N = 4; };
// -inf as a 16-bit dtype's bits.
KH_DEVICE u32 half_neg_inf(const f16*) { return 0xfc00u; }
KH_DEVICE u32 half_neg_inf(const bf16*) { return 0xff80u; }
// How W elements of T are loaded: their raw bits, one load instruction; and
// W elements of -inf in the same form.
template <class T, u32 W> struct Raw { // f16, bf16 packs
    typedef u32x4 type;
    KH_DEVICE type neg_inf() { return (u32x4)(half_neg_inf((const T*)0) * 0x10001u); }
};
template <> struct Raw<float, 4> {
    typedef f32x4 type;
    KH_DEVICE type neg_inf() { return (f32x4)(-__builtin_inff()); }
};
template <class T> struct Raw<T, 1> { // one f16, bf16
    typedef unsigned short type;
    KH_DEVICE type neg_inf() { return (unsigned short)half_neg_inf((const T*)0); }
};
template <> struct Raw<float, 1> {
    typedef float type;
    KH_DEVICE type neg_inf() { return -__builtin_inff(); }
};

// p is 16-byte aligned when W > 1.
template <u32 W, class T> KH_DEVICE typename Raw<T, W>::type load_raw(const T* p) {
    return *(const typename Raw<T, W>::type*)p;
}
// Raw bits -> W elements in f32 (the pointer only names the dtype).
KH_DEVICE void unpack(const float*, float r, float* v) { v[0] = r; }
template <class T> KH_DEVICE void unpack(const T* dtype, unsigned short r, float* v) { // 16-bit dtypes
    v[0] = half_to_f32(dtype, r);
}
KH_DEVICE void unpack(const float*, f32x4 r, float* v) { v[0] = r.x, v[1] = r.y, v[2] = r.z, v[3] = r.w; }
template <class T> KH_DEVICE void unpack(const T* dtype, u32x4 r, float* v) { // 16-bit dtypes
    u32 w[4] = {r.x, r.y, r.z, r.w};
#pragma unroll
    for (u32 i = 0; i < 4; i++) {
        v[2 * i] = half_to_f32(dtype, w[i] & 0xffffu);
        v[2 * i + 1] = half_to_f32(dtype, w[i] >> 16);
    }
}
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

// ---- block reductions (every thread gets the result) ----
// Butterfly within each wavefront, then one LDS slot per wavefront, read by all.
// Each is called once per block (one row per block), so its slots are never reused.
KH_DEVICE float block_max(float v) {
    static __attribute__((shared)) float slot[KH_WARPS];
#pragma unroll
    for (u32 d = KH_WARP / 2; d > 0; d >>= 1) v = __builtin_fmaxf(v, shfl_xor(v, d));
    u32 tid = thread_id();
    if (tid % KH_WARP == 0) slot[tid / KH_WARP] = v;
    sync_threads();
    v = slot[0];
#pragma unroll
    for (u32 w = 1; w < KH_WARPS; w++) v = __builtin_fmaxf(v, slot[w]);
    return v;
}
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
template <u32 W> struct Row {
    u32 head, packs, lone;
};
template <u32 W> KH_DEVICE Row<W> row_layout(u32 cols, u32 head, u32 tid) {
    u32 packs = (cols - head) / W;
    u32 tail = head + packs * W; // index of the first tail element
    u32 lone = tid < head ? tid : tid >= W && tid - W < cols - tail ? tail + tid - W : KH_NONE;
    return Row<W>{head, packs, lone};
}

// The loads of a step are not written behind branches, so that all of a
// thread's loads are in flight at once: a pack index past the row reads the
// row's last pack again (from cache) and its bits are replaced by -inf, which
// adds nothing (exp(-inf) = 0); a thread with no single element reads element
// 0 and discards it.

// Rows of up to 256 * KH_CACHE elements (packs <= 256 * KH_CACHE / W): each
// thread keeps its elements in registers, so the row is read once. The
// barriers (in block_max and block_sum) are reached by every thread.
template <class T, u32 W>
KH_DEVICE void softmax_cached(T* __restrict__ o, const T* __restrict__ x, Row<W> row) {
    const u32 C = KH_CACHE / W; // packs per thread
    u32 tid = thread_id();
    const T* xp = x + row.head;
    T* op = o + row.head;
    typename Raw<T, W>::type raw[C], none = Raw<T, W>::neg_inf();
    float v[C][W]; // this thread's elements, in f32; -inf past the end of the row

    float lone = load(x + (row.lone != KH_NONE ? row.lone : 0));
#pragma unroll
    for (u32 k = 0; k < C; k++) {
        u32 i = tid + k * KH_BLOCK;
        raw[k] = load_raw<W>(xp + (i < row.packs ? i : row.packs - 1) * W);
    }
    lone = no_nan(lone);
    lone = row.lone != KH_NONE ? lone : -KH_INF;
    float m = lone;
#pragma unroll
    for (u32 k = 0; k < C; k++) {
        unpack(x, tid + k * KH_BLOCK < row.packs ? raw[k] : none, v[k]);
#pragma unroll
        for (u32 j = 0; j < W; j++) {
            v[k][j] = no_nan(v[k][j]);
            m = __builtin_fmaxf(m, v[k][j]);
        }
    }
    m = block_max(m);
    // A row with a NaN or +inf (m = +inf) or only -inf (m = -inf) is all NaN:
    // whatever is computed from m there is discarded through inv = NaN.
    bool poisoned = __builtin_fabsf(m) == KH_INF;
    float s = 0.0f;
#pragma unroll
    for (u32 k = 0; k < C; k++) {
#pragma unroll
        for (u32 j = 0; j < W; j++) {
            v[k][j] = exp2_f32((v[k][j] - m) * KH_LOG2E); // -inf -> 0
            s += v[k][j];
        }
    }
    lone = exp2_f32((lone - m) * KH_LOG2E);
    s = block_sum(s + lone);
    float inv = 1.0f / s; // s >= 1: the maximum adds exp(0)
    inv = poisoned ? KH_NAN : inv;
#pragma unroll
    for (u32 k = 0; k < C; k++) {
        u32 i = tid + k * KH_BLOCK;
        if (i < row.packs) {
#pragma unroll
            for (u32 j = 0; j < W; j++) v[k][j] *= inv;
            store_w<W>(op + i * W, v[k]);
        }
    }
    if (row.lone != KH_NONE) store(o + row.lone, lone * inv);
}

// Any row, in steps of C packs per thread: an online pass, then a write pass
// that reads the row again. The barriers (in block_max and block_sum) are
// outside the loops and reached by every thread.
template <class T, u32 W, u32 C>
KH_DEVICE void softmax_stream(T* __restrict__ o, const T* __restrict__ x, Row<W> row) {
    u32 tid = thread_id();
    const T* xp = x + row.head;
    T* op = o + row.head;
    typename Raw<T, W>::type raw[C], none = Raw<T, W>::neg_inf();
    float v[C][W]; // this thread's elements of the current step, in f32

    // m: this thread's running maximum; s: the sum of exp(x - m) over its
    // elements so far (0 while m = -inf).
    float m = no_nan(load(x + (row.lone != KH_NONE ? row.lone : 0)));
    m = row.lone != KH_NONE ? m : -KH_INF;
    float s = m == -KH_INF ? 0.0f : 1.0f;
    for (u32 base = tid; base < row.packs; base += C * KH_BLOCK) {
#pragma unroll
        for (u32 k = 0; k < C; k++) {
            u32 i = base + k * KH_BLOCK;
            raw[k] = load_raw<W>(xp + (i < row.packs ? i : row.packs - 1) * W);
        }
        float step_max = -KH_INF;
#pragma unroll
        for (u32 k = 0; k < C; k++) {
            unpack(x, base + k * KH_BLOCK < row.packs ? raw[k] : none, v[k]);
#pragma unroll
            for (u32 j = 0; j < W; j++) {
                v[k][j] = no_nan(v[k][j]);
                step_max = __builtin_fmaxf(step_max, v[k][j]);
            }
        }
        float next = __builtin_fmaxf(m, step_max);
        // Exponents are taken relative to `pivot`: the new maximum, or 0 while
        // it is -inf (where x - m would be -inf - -inf = NaN; exp(-inf - 0) = 0).
        float pivot = next == -KH_INF ? 0.0f : next;
        float step_sum = 0.0f;
#pragma unroll
        for (u32 k = 0; k < C; k++) {
#pragma unroll
            for (u32 j = 0; j < W; j++) step_sum += exp2_f32((v[k][j] - pivot) * KH_LOG2E);
        }
        s = s * exp2_f32((m - pivot) * KH_LOG2E) + step_sum;
        m = next;
    }
    float row_max = block_max(m);
    bool poisoned = __builtin_fabsf(row_max) == KH_INF; // as in softmax_cached
    // m <= row_max; with a finite row_max, m = -inf gives s * 0 = 0.
    float sum = block_sum(s * exp2_f32((m - row_max) * KH_LOG2E));
    float inv = 1.0f / sum;
    inv = poisoned ? KH_NAN : inv; // NaN * anything = NaN
    if (row.lone != KH_NONE)
        store(o + row.lone, exp2_f32((load(x + row.lone) - row_max) * KH_LOG2E) * inv);
    for (u32 base = tid; base < row.packs; base += C * KH_BLOCK) {
#pragma unroll
        for (u32 k = 0; k < C; k++) {
            u32 i = base + k * KH_BLOCK;
            raw[k] = load_raw<W>(xp + (i < row.packs ? i : row.packs - 1) * W);
        }
#pragma unroll
        for (u32 k = 0; k < C; k++) {
            u32 i = base + k * KH_BLOCK;
            if (i < row.packs) {
                unpack(x, raw[k], v[k]);
#pragma unroll
                for (u32 j = 0; j < W; j++) v[k][j] = exp2_f32((v[k][j] - row_max) * KH_LOG2E) * inv;
                store_w<W>(op + i * W, v[k]);
            }
        }
    }
}

template <class T>
KH_DEVICE void softmax(T* __restrict__ out, const T* __restrict__ input, u32 rows, u32 cols) {
    const u32 N = Pack<T>::N;
    u32 row = block_id();
    if (row >= rows || cols == 0) return; // uniform across the block: no barrier is skipped by some threads only
    const T* x = input + (u64)row * cols;
    T* o = out + (u64)row * cols;
    u64 xa = (u64)x, oa = (u64)o;
    u32 head = (u32)((16 - xa % 16) % 16 / sizeof(T)); // elements before the first 16-byte boundary
    Row<N> r = row_layout<N>(cols, head < cols ? head : cols, thread_id());
    if ((xa - oa) % 16 != 0 || r.packs == 0) {
        // input and out aligned differently (rare), or a row shorter than a
        // pack: element by element, two passes.
        softmax_stream<T, 1, 4>(o, x, row_layout<1>(cols, 0, thread_id()));
    } else if (r.packs <= KH_CACHE / N * KH_BLOCK) {
        softmax_cached<T, N>(o, x, r);
    } else {
        softmax_stream<T, N, KH_STEP / N>(o, x, r);
    }
}

// One extern "C" entry point per dtype; parameters in manifest order.
#define KH_SOFTMAX(T, dt)                                                                      \
    KH_KERNEL void softmax_##dt(T* __restrict__ out, const T* __restrict__ input, u32 rows,     \
                                u32 cols) {                                                    \
        softmax(out, input, rows, cols);                                                       \
    }

KH_SOFTMAX(float, f32)
KH_SOFTMAX(f16, f16)
KH_SOFTMAX(bf16, bf16)
