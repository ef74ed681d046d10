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
// Launch (see kernel.toml): grid = [tokens], block = [256]; one block per row.
// Each thread sums the squares of columns tid, tid + 256, ... (so any hidden
// size works), the block reduces the partial sums in shared memory, then the
// same threads scale their columns.
// Symbols: rms_norm_<dtype>, e.g. rms_norm_bf16.
// f16 and bf16 are stored as 16 bits and computed in f32; bf16 is handled as
// raw bits (unsigned short).

#define KH_KERNEL extern "C" __attribute__((global)) __attribute__((launch_bounds(256)))
#define KH_DEVICE static __attribute__((device)) inline __attribute__((always_inline))

typedef unsigned int u32;
typedef unsigned long long u64;
typedef __fp16 f16;          // storage-only half: loads/stores convert to/from f32
typedef unsigned short bf16; // raw bfloat16 bits

#define KH_BLOCK 256u // threads per block; must equal `block` in kernel.toml
KH_DEVICE u32 thread_id() { return __nvvm_read_ptx_sreg_tid_x(); }
KH_DEVICE u32 block_id() { return __nvvm_read_ptx_sreg_ctaid_x(); }
KH_DEVICE void sync_threads() { __syncthreads(); } // bar.sync 0
KH_DEVICE float rsqrt_f32(float x) { return __nvvm_rsqrt_approx_f(x); }

// ---- 16-bit storage <-> f32 ----
KH_DEVICE float load(const float* p) { return *p; }
KH_DEVICE float load(const f16* p) { return (float)*p; }
KH_DEVICE float load(const bf16* p) { return __builtin_bit_cast(float, (u32)*p << 16); }
KH_DEVICE void store(float* p, float v) { *p = v; }
KH_DEVICE void store(f16* p, float v) { *p = (f16)v; } // cvt.rn.f16.f32
KH_DEVICE void store(bf16* p, float v) {
    u32 u = __builtin_bit_cast(u32, v);
    if ((u & 0x7fffffffu) > 0x7f800000u) { // NaN: keep it a (quiet) NaN
        *p = (bf16)((u >> 16) | 0x40u);
        return;
    }
    u += 0x7fffu + ((u >> 16) & 1u); // round to nearest, ties to even
    *p = (bf16)(u >> 16);
}

template <class T>
KH_DEVICE void rms_norm(T* __restrict__ out, const T* __restrict__ input,
                        const T* __restrict__ weight, float eps, u32 tokens, u32 hidden) {
    static __attribute__((shared)) float partial[KH_BLOCK];
    u32 tid = thread_id();
    u32 row = block_id();
    if (row >= tokens) return; // uniform across the block: no barrier is skipped by some threads only
    const T* x = input + (u64)row * hidden;
    T* o = out + (u64)row * hidden;

    float sum = 0.0f;
    for (u32 i = tid; i < hidden; i += KH_BLOCK) {
        float v = load(x + i);
        sum += v * v;
    }
    partial[tid] = sum;
    sync_threads();
    for (u32 s = KH_BLOCK / 2; s > 0; s >>= 1) { // tree reduction, KH_BLOCK is a power of two
        if (tid < s) partial[tid] += partial[tid + s];
        sync_threads();
    }
    float scale = rsqrt_f32(partial[0] / (float)hidden + eps);

    for (u32 i = tid; i < hidden; i += KH_BLOCK)
        store(o + i, load(x + i) * scale * load(weight + i));
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
