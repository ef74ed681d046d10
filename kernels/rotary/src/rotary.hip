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
// Launch (see kernel.toml): grid = [tokens], block = [256]; one block per token,
// its threads stride over the (head, pair) work items of the query, then the key.
// Symbols: rotary_neox_<dtype>, rotary_gptj_<dtype>.
// f16 and bf16 are stored as 16 bits and computed in f32; bf16 is handled as
// raw bits (unsigned short).

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

template <bool NEOX, class T>
KH_DEVICE void rotate_heads(T* __restrict__ heads, u32 num_heads, u32 head_size, u32 half,
                            const T* __restrict__ cos, const T* __restrict__ sin) {
    u32 n = num_heads * half;
    for (u32 i = thread_id(); i < n; i += KH_BLOCK) {
        u32 h = i / half;
        u32 r = i - h * half;
        T* p = heads + (u64)h * head_size;
        u32 xi = NEOX ? r : 2 * r;
        u32 yi = NEOX ? r + half : 2 * r + 1;
        float c = load(cos + r), s = load(sin + r);
        float x = load(p + xi), y = load(p + yi);
        store(p + xi, x * c - y * s);
        store(p + yi, y * c + x * s);
    }
}

template <bool NEOX, class T>
KH_DEVICE void rotary(const u32* __restrict__ positions, T* __restrict__ query,
                      T* __restrict__ key, const T* __restrict__ cos_sin_cache, u32 tokens,
                      u32 num_heads, u32 num_kv_heads, u32 head_size, u32 rot_dim,
                      u32 max_position) {
    u32 t = block_id();
    if (t >= tokens || rot_dim > head_size) return;
    u32 pos = positions[t];
    if (pos >= max_position) return;
    u32 half = rot_dim / 2;
    const T* cos = cos_sin_cache + (u64)pos * rot_dim;
    const T* sin = cos + half;
    rotate_heads<NEOX>(query + (u64)t * num_heads * head_size, num_heads, head_size, half, cos, sin);
    rotate_heads<NEOX>(key + (u64)t * num_kv_heads * head_size, num_kv_heads, head_size, half, cos, sin);
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
