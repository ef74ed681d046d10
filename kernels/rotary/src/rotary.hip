// rotary.hip - rotary position embedding, in place (HIP, reference kernels).
//
//   for each token t, p = positions[t], and each query / key head:
//     c = cos_sin_cache[p, r], s = cos_sin_cache[p, rot_dim / 2 + r], r < rot_dim / 2
//     (x, y) <- (x * c - y * s, y * c + x * s) for the pair
//       NeoX:  (head[r], head[r + rot_dim / 2])
//       GPT-J: (head[2 r], head[2 r + 1])
//   Only the first rot_dim elements of each head rotate; the rest are untouched.
//   A token whose position is >= max_position is left unchanged (never read out
//   of bounds), and so is everything when rot_dim > head_size.
//
// Built to code objects by scripts/build-kernels.sh with clang-15 + lld-15
// alone (no ROCm install), once per target:
//   clang-15 -x hip --cuda-device-only --offload-arch=gfx90a -nogpuinc -nogpulib \
//            -O3 -fuse-ld=lld --no-gpu-bundle-output \
//            -o build/rocm/rotary_gfx90a.hsaco src/rotary.hip
// (gfx942: see the note in scripts/build-kernels.sh.) Without ROCm there are
// no headers and no device libraries, so this file defines the few HIP
// spellings it needs and uses clang's AMDGPU builtins for math.
//
// Launch (see kernel.toml): grid = [tokens], block = [256]; one workgroup per token,
// its threads stride over the work items of the query's heads, then the key's.
// - When the token's query and key rows and its cos/sin cache row start on
//   16-byte boundaries, head_size and rot_dim / 2 are multiples of N (4 f32 or
//   8 f16/bf16 elements: 16 bytes), an item is N pairs of one head, read and
//   written as 16-byte packs (global_load/store_dwordx4): NeoX pairs r..r+N-1 are one
//   pack of x = head[r..], one of y = head[half + r..], one of cos and one of
//   sin; GPT-J pairs r..r+N-1 are the two packs head[2r..2r+2N) and one pack
//   each of cos and sin. Thread i has items i and i + 256 of each step of 512,
//   all of their loads (8 packs) issued before any is used.
// - Otherwise an item is one pair (as above, one element each), 4 items per
//   thread per step, all loads issued before use.
// A thread whose item of a step is past the end loads its own first item of
// the step again and does not store it: no thread reads what another writes.
// Symbols: rotary_neox_<dtype>, rotary_gptj_<dtype>.
// f16 and bf16 are stored as 16 bits and computed in f32; bf16 is handled as
// raw bits (unsigned short).

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
#define KH_ITEMS 2u   // vector items (N pairs each) per thread per step
#define KH_PAIRS 4u   // single pairs per thread per step of the element path
KH_DEVICE u32 thread_id() { return __builtin_amdgcn_workitem_id_x(); }
KH_DEVICE u32 block_id() { return __builtin_amdgcn_workgroup_id_x(); }

// ---- element storage <-> f32 ----
// One element's raw bits (zero-extended), and those bits as f32 (the
// pointer only names the dtype).
KH_DEVICE u32 load_bits(const u32* p) { return *p; }
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
template <class T> struct Pack { static const u32 N = 8; }; // f16, bf16: 8 elements
template <> struct Pack<float> { static const u32 N = 4; };
// p is 16-byte aligned.
template <class T> KH_DEVICE u32x4 load_pack(const T* p) { return *(const u32x4*)p; }
// Raw bits -> N elements in f32 (the pointer only names the dtype). The
// vector's elements are copied out first: clang 15's __builtin_bit_cast of
// an element such as r.y reads element 0.
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
// p is 16-byte aligned.
KH_DEVICE void store_pack(float* p, const float* v) { *(f32x4*)p = f32x4{v[0], v[1], v[2], v[3]}; }
template <class T> KH_DEVICE void store_pack(T* p, const float* v) { // 16-bit dtypes
    u32 w[4];
#pragma unroll
    for (u32 i = 0; i < 4; i++) w[i] = f32_to_half(p, v[2 * i]) | f32_to_half(p, v[2 * i + 1]) << 16;
    *(u32x4*)p = u32x4{w[0], w[1], w[2], w[3]};
}
// Loaded values pass through pin() once all of a step's loads are written:
// an empty asm that claims to change them, so that the compiler cannot sink
// a load into the branch that stores its result (which would wait for each
// load in turn). It emits no instruction (the wait for the loads lands there).
KH_DEVICE void pin(u32& v) { asm volatile("" : "+v"(v)); }
KH_DEVICE void pin(u32x4& v) { asm volatile("" : "+v"(v.x), "+v"(v.y), "+v"(v.z), "+v"(v.w)); }

// The rotation of one pair.
KH_DEVICE void rotate(float& x, float& y, float c, float s) {
    float rx = x * c - y * s, ry = y * c + x * s;
    x = rx, y = ry;
}

// One token's heads: query heads 0..nq-1, then key heads 0..nk-1 (q, k: the
// token's rows), each of head_size elements whose first 2 * half rotate.
struct Heads {
    u32 nq, nk, head_size, half;
};
// The head of item i of `per_head` items per head, and i's index in it.
template <class T>
KH_DEVICE T* item_head(T* q, T* k, Heads g, u32 per_head, u32 i, u32& within) {
    u32 nq = g.nq * per_head;
    bool key = i >= nq;
    u32 j = key ? i - nq : i;
    u32 h = j / per_head;
    within = j - h * per_head;
    return (key ? k : q) + (u64)h * g.head_size;
}

// Vector items: N pairs of one head (see the header). q, k and cos (hence sin
// = cos + half) are 16-byte aligned, and head_size and half are multiples of N.
template <bool NEOX, class T>
KH_DEVICE void rotate_packs(T* __restrict__ q, T* __restrict__ k, const T* __restrict__ cos, Heads g) {
    const u32 N = Pack<T>::N;
    u32 per_head = g.half / N, items = (g.nq + g.nk) * per_head;
    const T* sin = cos + g.half;
    for (u32 base = thread_id(); base < items; base += KH_ITEMS * KH_BLOCK) {
        T* head[KH_ITEMS];
        u32 at[KH_ITEMS]; // the item's first pair
        u32x4 a[KH_ITEMS], b[KH_ITEMS], c[KH_ITEMS], s[KH_ITEMS];
#pragma unroll
        for (u32 j = 0; j < KH_ITEMS; j++) {
            u32 i = base + j * KH_BLOCK;
            head[j] = item_head(q, k, g, per_head, i < items ? i : base, at[j]);
            at[j] *= N;
            // NeoX: x = head[at..], y = head[half + at..]; GPT-J: head[2 at .. 2 at + 2N).
            a[j] = load_pack(head[j] + (NEOX ? at[j] : 2 * at[j]));
            b[j] = load_pack(head[j] + (NEOX ? g.half + at[j] : 2 * at[j] + N));
            c[j] = load_pack(cos + at[j]);
            s[j] = load_pack(sin + at[j]);
        }
#pragma unroll
        for (u32 j = 0; j < KH_ITEMS; j++) pin(a[j]), pin(b[j]), pin(c[j]), pin(s[j]);
#pragma unroll
        for (u32 j = 0; j < KH_ITEMS; j++) {
            if (base + j * KH_BLOCK < items) {
                float x[2 * N], cf[N], sf[N]; // x: the pack(s) of a, then of b
                unpack(cos, a[j], x);
                unpack(cos, b[j], x + N);
                unpack(cos, c[j], cf);
                unpack(cos, s[j], sf);
#pragma unroll
                for (u32 r = 0; r < N; r++) {
                    if (NEOX) rotate(x[r], x[N + r], cf[r], sf[r]);
                    else rotate(x[2 * r], x[2 * r + 1], cf[r], sf[r]);
                }
                store_pack(head[j] + (NEOX ? at[j] : 2 * at[j]), x);
                store_pack(head[j] + (NEOX ? g.half + at[j] : 2 * at[j] + N), x + N);
            }
        }
    }
}

// Element items: one pair each, any sizes and alignment.
template <bool NEOX, class T>
KH_DEVICE void rotate_pairs(T* __restrict__ q, T* __restrict__ k, const T* __restrict__ cos, Heads g) {
    u32 items = (g.nq + g.nk) * g.half;
    const T* sin = cos + g.half;
    for (u32 base = thread_id(); base < items; base += KH_PAIRS * KH_BLOCK) {
        T* x[KH_PAIRS];
        T* y[KH_PAIRS];
        u32 xr[KH_PAIRS], yr[KH_PAIRS], cr[KH_PAIRS], sr[KH_PAIRS];
#pragma unroll
        for (u32 j = 0; j < KH_PAIRS; j++) {
            u32 i = base + j * KH_BLOCK, r;
            T* head = item_head(q, k, g, g.half, i < items ? i : base, r);
            x[j] = head + (NEOX ? r : 2 * r);
            y[j] = head + (NEOX ? g.half + r : 2 * r + 1);
            xr[j] = load_bits(x[j]);
            yr[j] = load_bits(y[j]);
            cr[j] = load_bits(cos + r);
            sr[j] = load_bits(sin + r);
        }
#pragma unroll
        for (u32 j = 0; j < KH_PAIRS; j++) pin(xr[j]), pin(yr[j]), pin(cr[j]), pin(sr[j]);
#pragma unroll
        for (u32 j = 0; j < KH_PAIRS; j++) {
            if (base + j * KH_BLOCK < items) {
                float xv = to_f32(cos, xr[j]), yv = to_f32(cos, yr[j]);
                rotate(xv, yv, to_f32(cos, cr[j]), to_f32(cos, sr[j]));
                store(x[j], xv);
                store(y[j], yv);
            }
        }
    }
}

template <bool NEOX, class T>
KH_DEVICE void rotary(const u32* __restrict__ positions, T* __restrict__ query,
                      T* __restrict__ key, const T* __restrict__ cos_sin_cache, u32 tokens,
                      u32 num_heads, u32 num_kv_heads, u32 head_size, u32 rot_dim,
                      u32 max_position) {
    const u32 N = Pack<T>::N;
    u32 t = block_id();
    if (t >= tokens || rot_dim > head_size) return;
    u32 pos = load_bits(positions + t);
    if (pos >= max_position) return;
    Heads g = {num_heads, num_kv_heads, head_size, rot_dim / 2};
    const T* cos = cos_sin_cache + (u64)pos * rot_dim;
    T* q = query + (u64)t * num_heads * head_size;
    T* k = key + (u64)t * num_kv_heads * head_size;
    if (g.half > 0 && g.half % N == 0 && head_size % N == 0 && ((u64)q | (u64)k | (u64)cos) % 16 == 0)
        rotate_packs<NEOX>(q, k, cos, g);
    else
        rotate_pairs<NEOX>(q, k, cos, g);
}

// One extern "C" entry point per (op, dtype); parameters in manifest order.
#define KH_ROTARY(op, NEOX, T, dt)                                                       \
    KH_KERNEL void op##_##dt(const u32* __restrict__ positions, T* __restrict__ query,   \
                             T* __restrict__ key, const T* __restrict__ cos_sin_cache,   \
                             u32 tokens, u32 num_heads, u32 num_kv_heads, u32 head_size, \
                             u32 rot_dim, u32 max_position) {                            \
        rotary<NEOX>(positions, query, key, cos_sin_cache, tokens, num_heads,            \
                     num_kv_heads, head_size, rot_dim, max_position);                    \
    }
#define KH_ROTARY_ALL_DTYPES(op, NEOX) \
    KH_ROTARY(op, NEOX, float, f32)    \
    KH_ROTARY(op, NEOX, f16, f16)      \
    KH_ROTARY(op, NEOX, bf16, bf16)

KH_ROTARY_ALL_DTYPES(rotary_neox, true)
KH_ROTARY_ALL_DTYPES(rotary_gptj, false)
