#!/usr/bin/env python3
"""Derive kernels/<k>/src/<k>.hip from <k>.cu for the reference kernels whose
HIP source is a mechanical translation of the CUDA one (activation, rmsnorm,
rotary; softmax.hip is written by hand).

The translation swaps the NVVM builtins for AMDGPU ones (work-item ids,
ex2/rsqrt, shuffles via ds_bpermute over a 64-lane wavefront, the barrier
with its workgroup fences), states the 256-thread workgroup limit in the code
object, and rewrites the comments that name PTX. Every replacement asserts
that it found what it expects, so a changed .cu fails loudly here instead of
producing a wrong .hip.

    python3 scripts/hip-from-cu.py activation   # from the repo root

Then rebuild with scripts/build-kernels.sh and refresh the hashes. A second
argument writes the .hip there instead (`scripts/build-kernels.sh --check`
uses it to fail when a committed .hip is not what its .cu gives).
"""
import sys, re
k = sys.argv[1]
s = open(f'kernels/{k}/src/{k}.cu').read()
def rep(old, new, count=1):
    global s
    n = s.count(old)
    assert n == count if count else n >= 1, (old, n)
    s = s.replace(old, new)
first = s.split('\n', 1)[0]
rep(first, first.replace(f'{k}.cu', f'{k}.hip').replace('(CUDA C++,', '(HIP,'))
m = re.search(r"// Built to PTX by scripts/build-kernels.sh.*?\n(?=//\n)", s, re.S)
old = m.group(0)
tail = old.split('\n')[-2]  # last line, e.g. "... NVVM builtins for math." or with a suffix
hip = f'''// Built to code objects by scripts/build-kernels.sh with clang-15 + lld-15
// alone (no ROCm install), once per target:
//   clang-15 -x hip --cuda-device-only --offload-arch=gfx90a -nogpuinc -nogpulib \\
//            -O3 -fuse-ld=lld --no-gpu-bundle-output \\
//            -o build/rocm/{k}_gfx90a.hsaco src/{k}.hip
// (gfx942: see the note in scripts/build-kernels.sh.) Without ROCm there are
// no headers and no device libraries, so this file defines the few HIP
// spellings it needs and uses clang's AMDGPU builtins for math.
'''
rep(old, hip)
rep('#define KH_KERNEL extern "C" __attribute__((global)) __attribute__((launch_bounds(256)))',
    '// launch_bounds does not reach AMDGPU code (the code object would say 1024 threads);\n'
    '// amdgpu_flat_work_group_size makes it 256, so a larger launch is refused.\n'
    '#define KH_KERNEL                                                                           \\\n'
    '    extern "C" __attribute__((global)) __attribute__((launch_bounds(256)))                  \\\n'
    '        __attribute__((amdgpu_flat_work_group_size(1, 256)))')
rep("typedef __fp16 f16;          // storage-only half: loads/stores convert to/from f32",
    "typedef _Float16 f16;        // IEEE half: loads/stores convert to/from f32")
rep("#define KH_BLOCK 256u // threads per block; must equal `block` in kernel.toml",
    "#define KH_BLOCK 256u // threads per workgroup; must equal `block` in kernel.toml")
rep("__nvvm_read_ptx_sreg_tid_x()", "__builtin_amdgcn_workitem_id_x()")
rep("__nvvm_read_ptx_sreg_ctaid_x()", "__builtin_amdgcn_workgroup_id_x()")
if "__nvvm_read_ptx_sreg_ctaid_y()" in s:
    rep("__nvvm_read_ptx_sreg_ctaid_y()", "__builtin_amdgcn_workgroup_id_y()")
if "KH_DEVICE void sync_threads() { __syncthreads(); } // bar.sync 0" in s:
    rep("KH_DEVICE void sync_threads() { __syncthreads(); } // bar.sync 0", '''// __syncthreads(): make LDS writes visible across the workgroup, then barrier.
KH_DEVICE void sync_threads() {
    __builtin_amdgcn_fence(__ATOMIC_RELEASE, "workgroup");
    __builtin_amdgcn_s_barrier();
    __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "workgroup");
}''')
if "#define KH_WARP 32u   // threads per warp" in s:
    rep("#define KH_WARP 32u   // threads per warp", "#define KH_WARP 64u   // threads per wavefront (CDNA: always 64)")
    rep('''// v from the lane whose index is this lane's XOR lane_mask, all 32 lanes taking
// part. Inline PTX: clang enables __nvvm_shfl_sync_* only with a CUDA toolkit's
// PTX version, though the output (.version 7.0 for sm_80) has shfl.sync.
KH_DEVICE float shfl_xor(float v, u32 lane_mask) {
    float r;
    asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=f"(r) : "f"(v), "r"(lane_mask));
    return r;
}''', '''// v from the lane whose index is this lane's XOR lane_mask, within the
// wavefront (ds_bpermute_b32 reads lane addr / 4; all 64 lanes take part).
KH_DEVICE float shfl_xor(float v, u32 lane_mask) {
    int lane = (int)(thread_id() % KH_WARP); // 1-D workgroups: wavefront w holds threads 64w..64w+63
    int r = __builtin_amdgcn_ds_bpermute((lane ^ (int)lane_mask) << 2, __builtin_bit_cast(int, v));
    return __builtin_bit_cast(float, r);
}''')
if "__nvvm_ex2_approx_f(" in s: rep("__nvvm_ex2_approx_f(", "__builtin_exp2f(", 0)
if "__nvvm_rsqrt_approx_f(" in s:
    rep("__nvvm_rsqrt_approx_f(", "__builtin_amdgcn_rsqf(")
rep("// cvt.rn.f16.f32", "// v_cvt_f16_f32, round to nearest even", 0)
if "ld/st.global.v4" in s: rep("ld/st.global.v4", "global_load/store_dwordx4", 0)
s = re.sub(r'asm volatile\(""( : "\+[rf]"\([^;]*)\);', lambda m: 'asm volatile(""' + re.sub(r'"\+[rf]"', '"+v"', m.group(1)) + ');', s)
rep("// ---- math (no libdevice: built on ex2.approx) ----", "// ---- math (no device libs: built on v_exp_f32) ----", 0) if "built on ex2.approx" in s else None
for a, b in [("a warp holding", "a wavefront holding"), ("a warp's loads", "a wavefront's loads"),
             ("(ex2.approx.f32:", "(v_exp_f32:"), ("shared-memory slot per warp", "LDS slot per wavefront"),
             ("warp shuffles", "wavefront shuffles"), ("one shared slot per warp", "one LDS slot per wavefront"),
             ("Butterfly within each warp", "Butterfly within each wavefront"),
             ("It emits no instruction.", "It emits no instruction (the wait for the loads lands there)."),
             ("(rsqrt.approx.f32", "(v_rsq_f32"),
             ("per block", "per workgroup"), ("one block per", "one workgroup per")]:
    if a in s: s = s.replace(a, b)
for w in ["nvvm", "PTX", "ptx", "cvt.", "ld.global", "shfl.sync"]:
    assert w not in s, w
open(sys.argv[2] if len(sys.argv) > 2 else f'kernels/{k}/src/{k}.hip', 'w').write(s)
