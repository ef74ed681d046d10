// sim.h - the host side of the kernel simulation (see README.md).
//
// Why it exists: CI has no GPU, yet the native reference kernels
// (kernels/*/src/*.cu, *.hip) have indexing, alignment and reduction logic
// that only runs on one. This header lets the REAL kernel sources compile as
// host C++ (prepare.py only adds access checks): it defines the GPU builtins
// they call, runs a launch block by block with each block's 256 threads as
// fibers that meet at every barrier and shuffle, and checks every access.
//
// Included once per harness (activation.cpp, rmsnorm.cpp, ...), before the
// prepared kernel source. Single-threaded and deterministic: threads of a
// block run in order 0..255 between barriers.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cstdarg>
#include <functional>
#include <string>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>
#include <vector>

namespace sim {

constexpr unsigned BLOCK = 256; // threads per block, as every kernel.toml says

// ---- errors ----
// Per case: access / barrier errors counted, and the first few of them and of
// the value mismatches kept as detail lines, printed under the case's FAIL
// line. Over the run, the first 5 failing cases are shown (all with -v).
static int errors = 0;
static bool verbose = false;
static std::string details;
static int shown_cases = 0;
__attribute__((format(printf, 1, 2))) static void note(const char* fmt, ...) {
    char line[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    details += "    ", details += line, details += "\n";
}

// ---- block state ----
static unsigned tid, bx, by; // current thread and block
static unsigned epoch;       // __syncthreads() completed in this block (shared-memory race windows)
static unsigned long long block_linear() { return (unsigned long long)by * 65536ull + bx; }
static uint64_t who() { return block_linear() * BLOCK + tid + 1; } // 0 = nobody

static std::string where(const void* p); // the tensor and byte offset of p
static void fail(const char* what, const void* p, size_t n) {
    if (errors++ < 3) note("%s: %zu bytes at %s, block (%u,%u) thread %u", what, n, where(p).c_str(), bx, by, tid);
}
[[maybe_unused]] static void fail_shared(const char* what, unsigned i, unsigned n) {
    if (errors++ < 3) note("%s: element %u of a %u-element shared array, block (%u,%u) thread %u", what, i, n, bx, by, tid);
}
static void fail_block(const char* what, unsigned waiting) {
    if (errors++ < 3) note("%s: block (%u,%u), %u of %u threads waiting", what, bx, by, waiting, BLOCK);
}

// ---- global memory: registered tensors and a per-byte shadow ----
// A byte of a written tensor may be touched by several threads only if none
// writes it: the kernels promise "no thread reads what another writes" and
// no byte is written twice. Checked in both orders (a read before or after
// another thread's write), so the fixed thread order hides nothing.
struct Range {
    const char* name;
    uintptr_t lo, hi;
    bool writable;
    size_t shadow; // offset of the range's bytes in the shadow arrays
};
static std::vector<Range> ranges;
static std::vector<uint64_t> owner;   // first thread to touch the byte
static std::vector<uint8_t> state;    // bit 0: written; bit 1: touched by several threads
static unsigned long long reads16 = 0; // 16-byte (vector) reads in the current case

static void reset_memory() {
    ranges.clear();
    reads16 = 0;
    errors = 0;
}
static void add_range(const char* name, const void* p, size_t bytes, bool writable) {
    ranges.push_back({name, (uintptr_t)p, (uintptr_t)p + bytes, writable, 0});
}
static void reset_shadow() {
    size_t total = 0;
    for (auto& r : ranges)
        if (r.writable) r.shadow = total, total += r.hi - r.lo;
    owner.assign(total, 0);
    state.assign(total, 0);
}
static std::string where(const void* p) {
    const Range* best = nullptr;
    long long best_off = 0, best_dist = 0;
    for (auto& r : ranges) { // the range holding p, else the nearest
        long long off = (long long)((uintptr_t)p - r.lo), size = (long long)(r.hi - r.lo);
        long long dist = off < 0 ? -off : off >= size ? off - size + 1 : 0;
        if (!best || dist < best_dist) best = &r, best_off = off, best_dist = dist;
    }
    char buf[160];
    if (!best) snprintf(buf, sizeof buf, "%p", p);
    else snprintf(buf, sizeof buf, "`%s` byte %lld (of %lld)", best->name, best_off, (long long)(best->hi - best->lo));
    return buf;
}
static const Range* find(const void* p, size_t n) {
    uintptr_t a = (uintptr_t)p;
    for (auto& r : ranges)
        if (a >= r.lo && a + n <= r.hi) return &r;
    return nullptr;
}
// A bad access (out of bounds, misaligned, to a read-only tensor) is
// reported and then goes to a scratch buffer instead, so the run goes on
// (a misaligned 16-byte access faults on the host too): a read there sees
// the bytes in place when they are in bounds, else NaN bytes (0xff).
alignas(16) static unsigned char scratch[4][16];
static unsigned scratch_next = 0;
static void* to_scratch(const void* p, size_t n, bool copy) {
    unsigned char* s = scratch[scratch_next++ % 4];
    memset(s, 0xff, sizeof scratch[0]);
    if (copy) memcpy(s, p, n);
    return s;
}
static const void* read(const void* p, size_t n) {
    if (n == 16) reads16++;
    const Range* r = find(p, n);
    if (!r) return fail("read out of bounds", p, n), to_scratch(p, n, false);
    if ((uintptr_t)p % n) return fail(n == 16 ? "misaligned 16-byte read" : "misaligned read", p, n), to_scratch(p, n, true);
    if (!r->writable) return p;
    size_t at = r->shadow + ((uintptr_t)p - r->lo);
    for (size_t i = at; i < at + n; i++) {
        if ((state[i] & 1) && owner[i] != who()) return fail("read of a byte another thread wrote", p, n), p;
        if (owner[i] == 0) owner[i] = who();
        else if (owner[i] != who()) state[i] |= 2;
    }
    return p;
}
static void* write(void* p, size_t n) {
    const Range* r = find(p, n);
    if (!r) return fail("write out of bounds", p, n), to_scratch(p, n, false);
    if (!r->writable) return fail("write to a read-only tensor", p, n), to_scratch(p, n, false);
    if ((uintptr_t)p % n) return fail(n == 16 ? "misaligned 16-byte write" : "misaligned write", p, n), to_scratch(p, n, false);
    size_t at = r->shadow + ((uintptr_t)p - r->lo);
    for (size_t i = at; i < at + n; i++) {
        if (state[i] & 1) return fail("byte written twice", p, n), p;
        if ((state[i] & 2) || (owner[i] != 0 && owner[i] != who()))
            return fail("write of a byte another thread read", p, n), p;
        owner[i] = who(), state[i] |= 1;
    }
    return p;
}
// Whether every byte of [p, p + n) was written through the checked stores
// (an output the kernel wrote some other way would show here).
static bool written(const void* p, size_t n) {
    const Range* r = find(p, n);
    if (!r || !r->writable) return false;
    size_t at = r->shadow + ((uintptr_t)p - r->lo);
    for (size_t i = at; i < at + n; i++)
        if (!(state[i] & 1)) return false;
    return true;
}

// ---- shared memory ----
// `static __attribute__((shared)) T name[N]` becomes `static SimShared<T, N>
// name` (prepare.py). Poisoned at each block's start; an access races when
// another thread wrote (or, for a write, read) the element since the last
// __syncthreads(). Shuffles do not order shared memory, so they do not count.
struct SharedBase;
static std::vector<SharedBase*> shared_arrays;
struct SharedBase {
    SharedBase() { shared_arrays.push_back(this); }
    virtual void reset() = 0;
};
constexpr unsigned NONE = ~0u, MANY = ~1u;
template <class T, unsigned N> struct SimShared : SharedBase {
    T v[N];
    unsigned w_epoch[N], writer[N], r_epoch[N], reader[N];
    void reset() override {
        for (unsigned i = 0; i < N; i++) v[i] = (T)NAN, w_epoch[i] = NONE, r_epoch[i] = NONE;
    }
    SimShared() { reset(); }
    struct Ref {
        SimShared* s;
        unsigned i;
        operator T() const { return s->get(i); }
        Ref& operator=(T x) { s->set(i, x); return *this; }
    };
    Ref operator[](unsigned i) { return Ref{this, i}; }
    T get(unsigned i) {
        if (i >= N) return fail_shared("shared memory read out of bounds", i, N), (T)NAN;
        if (w_epoch[i] == NONE) fail_shared("read of shared memory not written in this block", i, N);
        else if (w_epoch[i] == epoch && writer[i] != tid) fail_shared("shared memory read races a write (no barrier between)", i, N);
        if (r_epoch[i] != epoch) r_epoch[i] = epoch, reader[i] = tid;
        else if (reader[i] != tid) reader[i] = MANY;
        return v[i];
    }
    void set(unsigned i, T x) {
        if (i >= N) return fail_shared("shared memory write out of bounds", i, N);
        if (w_epoch[i] == epoch && writer[i] != tid) fail_shared("shared memory written by two threads with no barrier between", i, N);
        if (r_epoch[i] == epoch && reader[i] != tid) fail_shared("shared memory write races a read (no barrier between)", i, N);
        w_epoch[i] = epoch, writer[i] = tid, v[i] = x;
    }
};

// ---- threads as fibers ----
// Each block: 256 ucontext fibers, run in order 0..255 up to the next
// barrier (or the end); when all have arrived, the next round. A barrier
// some threads skip, or threads meeting at different kinds of barrier
// (a __syncthreads() against a shuffle), is an error, as on a GPU.
enum Kind { SYNC = 1, SHUFFLE = 2 };
enum State { READY, WAITING, DONE };
struct Fiber {
    ucontext_t ctx;
    State st;
    int kind;
};
static Fiber fibers[BLOCK];
static char* stacks = nullptr;
static const size_t STACK = 128 * 1024;
static size_t page = 4096;
static ucontext_t scheduler;
static std::function<void()> body;
static bool in_block = false;

static void next_from(unsigned me) { // pass control to the next ready fiber, or the scheduler
    for (unsigned n = me + 1; n < BLOCK; n++)
        if (fibers[n].st == READY) {
            tid = n;
            swapcontext(&fibers[me].ctx, &fibers[n].ctx);
            return;
        }
    swapcontext(&fibers[me].ctx, &scheduler);
}
static void fiber_main() {
    body();
    fibers[tid].st = DONE;
    next_from(tid); // never resumed
}
static void barrier(int kind) {
    if (!in_block) { fprintf(stderr, "barrier outside a launch\n"); abort(); }
    fibers[tid].st = WAITING, fibers[tid].kind = kind;
    next_from(tid);
}
static void run_block() {
    if (!stacks) { // one stack per fiber, each above a guard page
        page = (size_t)sysconf(_SC_PAGESIZE);
        size_t one = STACK + page;
        stacks = (char*)mmap(nullptr, one * BLOCK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (stacks == MAP_FAILED) { perror("mmap"); abort(); }
        for (unsigned t = 0; t < BLOCK; t++) mprotect(stacks + t * one, page, PROT_NONE);
    }
    for (auto* s : shared_arrays) s->reset();
    epoch = 0;
    for (unsigned t = 0; t < BLOCK; t++) {
        Fiber& f = fibers[t];
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = stacks + t * (STACK + page) + page;
        f.ctx.uc_stack.ss_size = STACK;
        f.ctx.uc_link = nullptr;
        makecontext(&f.ctx, fiber_main, 0);
        f.st = READY;
    }
    in_block = true;
    for (;;) {
        tid = 0;
        swapcontext(&scheduler, &fibers[0].ctx);
        unsigned done = 0, waiting = 0;
        int kind = 0;
        bool mixed = false;
        for (unsigned t = 0; t < BLOCK; t++) {
            if (fibers[t].st == DONE) done++;
            else {
                waiting++;
                if (kind && fibers[t].kind != kind) mixed = true;
                kind = fibers[t].kind;
            }
        }
        if (done == BLOCK) break;
        if (done) { // the waiting fibers are dropped; the next block starts them afresh
            fail_block("a barrier or shuffle not reached by every thread (the others returned)", waiting);
            break;
        }
        if (mixed) {
            fail_block("threads at different barriers (a __syncthreads against a shuffle)", waiting);
            break;
        }
        if (kind == SYNC) epoch++;
        for (unsigned t = 0; t < BLOCK; t++) fibers[t].st = READY;
    }
    in_block = false;
}

// Runs a grid of gx * gy blocks of 256 threads; `kernel` is one thread's call.
// Writable tensors and read-only ones must be registered first (Tensor::reg).
template <class F> static void launch(unsigned gx, unsigned gy, F kernel) {
    reset_shadow();
    body = kernel;
    for (unsigned y = 0; y < gy; y++)
        for (unsigned x = 0; x < gx; x++) {
            bx = x, by = y;
            run_block();
        }
}

// Value exchange for shuffles: all 256 threads publish, meet, read, meet
// again (so no slot is overwritten before every thread has read it).
static uint32_t xchg[BLOCK];
static uint32_t exchange(uint32_t mine, unsigned from) {
    xchg[tid] = mine;
    barrier(SHUFFLE);
    uint32_t r = xchg[from];
    barrier(SHUFFLE);
    return r;
}

} // namespace sim

// ---- the GPU builtins the kernels call ----
// CUDA (NVVM builtins and the PTX shuffle, which prepare.py turns into host_shfl_xor)
unsigned __nvvm_read_ptx_sreg_tid_x() { return sim::tid; }
unsigned __nvvm_read_ptx_sreg_ctaid_x() { return sim::bx; }
unsigned __nvvm_read_ptx_sreg_ctaid_y() { return sim::by; }
void __syncthreads() { sim::barrier(sim::SYNC); }
float __nvvm_ex2_approx_f(float x) { return exp2f(x); }
float __nvvm_rsqrt_approx_f(float x) { return 1.0f / sqrtf(x); }
// shfl.sync.bfly.b32 with all 32 lanes of the warp (warps are 32 threads)
float host_shfl_xor(float v, unsigned lane_mask) {
    uint32_t bits, r;
    memcpy(&bits, &v, 4);
    r = sim::exchange(bits, (sim::tid & ~31u) | ((sim::tid ^ lane_mask) & 31u));
    float f;
    memcpy(&f, &r, 4);
    return f;
}
// HIP (clang's AMDGPU builtins; wavefronts are 64 threads)
unsigned __builtin_amdgcn_workitem_id_x() { return sim::tid; }
unsigned __builtin_amdgcn_workgroup_id_x() { return sim::bx; }
unsigned __builtin_amdgcn_workgroup_id_y() { return sim::by; }
void __builtin_amdgcn_s_barrier() { sim::barrier(sim::SYNC); }
void __builtin_amdgcn_fence(int, const char*) {}
float __builtin_amdgcn_rsqf(float x) { return 1.0f / sqrtf(x); }
// ds_bpermute_b32: the value of lane addr / 4 of this wavefront
int __builtin_amdgcn_ds_bpermute(int addr, int src) {
    return (int)sim::exchange((uint32_t)src, (sim::tid & ~63u) | ((unsigned)(addr >> 2) & 63u));
}
// The checked accesses prepare.py inserts into the kernels' load/store helpers.
// Each returns the pointer to use: p, or a scratch buffer after an error.
template <class P> static inline const P* kh_rd(const P* p, size_t n) { return (const P*)sim::read(p, n); }
template <class P> static inline P* kh_wr(P* p, size_t n) { return (P*)sim::write(p, n); }
template <class T, unsigned N> using SimShared = sim::SimShared<T, N>;

namespace sim {

// ---- dtypes, tolerances (crates/kernelhub/src/exercise.rs) ----
enum DT { F32, F16, BF16 };
static const char* dt_name[] = {"f32", "f16", "bf16"};
static int dt_size(DT d) { return d == F32 ? 4 : 2; }
static unsigned pack_elems(DT d) { return d == F32 ? 4 : 8; } // elements per 16 bytes
static float bf16_to_f(uint16_t b) { uint32_t u = (uint32_t)b << 16; float f; memcpy(&f, &u, 4); return f; }
static uint16_t f_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return (u >> 16) | 0x40;
    return (u + 0x7fff + ((u >> 16) & 1)) >> 16;
}
static float h_to_f(uint16_t b) { _Float16 h; memcpy(&h, &b, 2); return (float)h; }
static uint16_t f_to_h(float f) { _Float16 h = (_Float16)f; uint16_t b; memcpy(&b, &h, 2); return b; }

// Like `compare` in exercise.rs: |got - expected| <= abs + rel * |expected|;
// NaN matches NaN only, an infinity only itself.
static bool close(DT dt, double got, double expected) {
    double abs = dt == F32 ? 1e-5 : dt == F16 ? 1e-3 : 1e-2;
    double rel = dt == F32 ? 1e-4 : dt == F16 ? 2e-3 : 1.6e-2;
    if (std::isnan(got) || std::isnan(expected) || std::isinf(got) || std::isinf(expected))
        return (std::isnan(got) && std::isnan(expected)) || got == expected;
    return std::fabs(got - expected) <= abs + rel * std::fabs(expected);
}

// A tensor of n elements at element offset `off` past a 256-byte boundary,
// with G guard elements each side (outside the registered range: touching
// them is an out-of-bounds access, and changed guards are reported).
struct Tensor {
    static const size_t G = 40;
    DT dt;
    size_t n, off, total;
    char* buf;
    Tensor(DT d, size_t n_, size_t off_) : dt(d), n(n_), off(off_), total(n_ + off_ + 2 * G) {
        buf = (char*)aligned_alloc(256, (total * dt_size(d) + 255) / 256 * 256);
        for (size_t i = 0; i < total; i++) put_raw(i, NAN);
    }
    Tensor(const Tensor&) = delete;
    ~Tensor() { free(buf); }
    char* base() const { return buf + (G + off) * dt_size(dt); }
    void put_raw(size_t i, float v) {
        if (dt == F32) memcpy(buf + i * 4, &v, 4);
        else { uint16_t b = dt == BF16 ? f_to_bf16(v) : f_to_h(v); memcpy(buf + i * 2, &b, 2); }
    }
    float get_raw(size_t i) const {
        if (dt == F32) { float v; memcpy(&v, buf + i * 4, 4); return v; }
        uint16_t b; memcpy(&b, buf + i * 2, 2);
        return dt == BF16 ? bf16_to_f(b) : h_to_f(b);
    }
    uint32_t bits_raw(size_t i) const {
        if (dt == F32) { uint32_t v; memcpy(&v, buf + i * 4, 4); return v; }
        uint16_t b; memcpy(&b, buf + i * 2, 2); return b;
    }
    void set(size_t i, float v) { put_raw(G + off + i, v); }
    float get(size_t i) const { return get_raw(G + off + i); } // the stored value, in f32
    uint32_t bits(size_t i) const { return bits_raw(G + off + i); }
    const void* at(size_t i) const { return base() + i * dt_size(dt); }
    bool written(size_t i) const { return sim::written(at(i), dt_size(dt)); }
    void fill_guards(float v) {
        for (size_t i = 0; i < G + off; i++) put_raw(i, v);
        for (size_t i = G + off + n; i < total; i++) put_raw(i, v);
    }
    std::vector<uint32_t> guard_bits() const {
        std::vector<uint32_t> v;
        for (size_t i = 0; i < G + off; i++) v.push_back(bits_raw(i));
        for (size_t i = G + off + n; i < total; i++) v.push_back(bits_raw(i));
        return v;
    }
    void reg(const char* name, bool writable) const { add_range(name, base(), n * dt_size(dt), writable); }
};

// xorshift64: the same cases on every run
static uint64_t rng = 88172645463325252ull;
static double urand() {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (rng >> 11) * (1.0 / 9007199254740992.0);
}

// ---- the run's tally ----
static int cases = 0, failures = 0;
// Ends a case: `bad` value mismatches and the access errors counted above.
// `what` describes the case for the FAIL line.
static void finish(int bad, const char* what) {
    cases++;
    if (bad || errors) {
        failures++;
        if (verbose || shown_cases++ < 5) printf("FAIL %s: %d mismatches, %d access errors\n%s", what, bad, errors, details.c_str());
    }
    details.clear();
}
// Whether to keep a detail line for the mismatch counted so far as `bad`.
static bool show(int bad) { return bad < 3; }
static int parse_args(int argc, char** argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0); // lines survive a crash
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-v")) verbose = true;
        else if (!strcmp(argv[i], "--launch")) return 1;
        else { fprintf(stderr, "usage: %s [-v | --launch]\n", argv[0]); exit(2); }
    }
    return 0;
}
static int summary(const char* kernel) {
    if (failures > 5 && !verbose) printf("(%d more failing cases not shown; -v shows all)\n", failures - 5);
    printf("%s: %d cases, %d failures\n", kernel, cases, failures);
    return failures != 0;
}

} // namespace sim
