// activation.cpp - simulation harness for kernels/activation/src/activation.{cu,hip}.
//
// Why it exists: CI has no GPU; this runs the real activation kernels on the
// CPU (sim.h, README.md) over every dtype, ragged and empty sizes, unaligned
// offsets and special values, and compares them with an f64 port of the CPU
// reference (crates/kernelhub-runtime/src/reference.rs) at the project's
// tolerances. Built by scripts/simulate-kernels.sh with KH_SIM_SOURCE naming
// the prepared kernel source.
#include "sim.h"
#include KH_SIM_SOURCE

using namespace sim;

static double silu(double x) { return x / (1.0 + std::exp(-x)); }
static double erf_ref(double x) { // reference.rs: Abramowitz-Stegun 7.1.26
    if (std::isnan(x)) return x;
    double sign = x > 0 ? 1.0 : x < 0 ? -1.0 : (std::signbit(x) ? -1.0 : 1.0);
    x = std::fabs(x);
    double t = 1.0 / (1.0 + 0.3275911 * x);
    double poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return sign * (1.0 - poly * std::exp(-x * x));
}
static double gelu(double x) { return 0.5 * x * (1.0 + erf_ref(x / std::sqrt(2.0))); }
static double gelu_tanh(double x) {
    double k = std::sqrt(2.0 / M_PI);
    return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}

typedef void (*K)(void*, const void*, unsigned, unsigned);
struct Op {
    const char* name;
    double (*f)(double);
    K k[3];
};
#define KH_OP(name, f) {#name, f, {(K)name##_f32, (K)name##_f16, (K)name##_bf16}}
static const Op ops[] = {KH_OP(silu_and_mul, silu), KH_OP(gelu_and_mul, gelu), KH_OP(gelu_tanh_and_mul, gelu_tanh)};

// Columns per block: KH_BLOCK * KH_PACKS * (elements per 16 bytes); the
// kernel.toml grid is [tokens, ceil_div(d, S)] (checked by --launch).
static unsigned span(DT dt) { return 256 * 2 * pack_elems(dt); }

// One launch on `in` into `out`; the runtime skips an empty grid, but one
// block is run anyway: the kernel must then do nothing.
static void launch_op(const Op& op, DT dt, Tensor& out, const Tensor& in, unsigned tokens, unsigned d) {
    reset_memory();
    in.reg("input", false), out.reg("out", true);
    unsigned gy = (d + span(dt) - 1) / span(dt);
    K k = op.k[dt];
    void* o = out.base();
    const void* x = in.base();
    launch(tokens ? tokens : 1, gy ? gy : 1, [&] { k(o, x, tokens, d); });
}

// kind 0: uniform [-4, 4); 1: with NaN, +-inf, +-0 and erf's interval edge; 2: wide range
static void run(const Op& op, DT dt, unsigned tokens, unsigned d, unsigned io, unsigned oo, int kind) {
    size_t n_in = (size_t)tokens * 2 * d, n_out = (size_t)tokens * d;
    Tensor in(dt, n_in, io), out(dt, n_out, oo);
    out.fill_guards(12345.0f);
    for (size_t i = 0; i < n_out; i++) out.set(i, -777.0f);
    static const float up_specials[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1.0f};
    static const float specials[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 30.0f, -30.0f,
                                     1e-3f, -1e-3f, 0.9277f, -0.9278f, 88.0f, -88.0f};
    for (size_t i = 0; i < n_in; i++) {
        float v = (float)(urand() * 8 - 4);
        if (kind == 2) v = (float)((urand() * 2 - 1) * (dt == F16 ? 12 : 60));
        bool gate = i % (2 * (size_t)d) < d;
        if (kind == 1 && urand() < 0.1) v = gate ? specials[(size_t)(urand() * 13) % 13] : up_specials[(size_t)(urand() * 6) % 6];
        in.set(i, v);
    }
    auto guards = out.guard_bits();
    launch_op(op, dt, out, in, tokens, d);
    int bad = 0;
    char what[200];
    snprintf(what, sizeof what, "%s %s tokens=%u d=%u offsets in=%u out=%u kind=%d", op.name, dt_name[dt], tokens, d, io, oo, kind);
    if (out.guard_bits() != guards) {
        if (show(bad)) note("elements outside `out` changed");
        bad++;
    }
    for (unsigned t = 0; t < tokens; t++)
        for (unsigned i = 0; i < d; i++) {
            size_t at = (size_t)t * d + i;
            double g = in.get((size_t)t * 2 * d + i), u = in.get((size_t)t * 2 * d + d + i);
            double e = (float)(op.f(g) * u), got = out.get(at);
            if (!out.written(at) || !close(dt, got, e)) {
                if (show(bad)) note("out[%u, %u] = %.9g%s, expected %.9g (gate %g, up %g)", t, i, got, out.written(at) ? "" : " (not written)", e, g, u);
                bad++;
            }
        }
    // The 16-byte path is taken exactly when d is a multiple of a pack,
    // input and out are aligned alike and a row has a whole pack past its head.
    unsigned N = pack_elems(dt), head = (N - io % N) % N;
    bool vec = tokens > 0 && d % N == 0 && io % N == oo % N && d > head && (d - head) / N > 0;
    if (vec != (reads16 > 0)) {
        if (show(bad)) note("16-byte path %s", reads16 ? "taken, not expected" : "expected, not taken");
        bad++;
    }
    // The same values at offset 0 (the other path, or the same one): the
    // results are elementwise, so they must agree bit for bit.
    if ((io || oo) && n_out) {
        Tensor in0(dt, n_in, 0), out0(dt, n_out, 0);
        for (size_t i = 0; i < n_in; i++) in0.set(i, in.get(i));
        int before = errors;
        launch_op(op, dt, out0, in0, tokens, d);
        errors += before;
        for (size_t i = 0; i < n_out; i++)
            if (out0.bits(i) != out.bits(i) && !(std::isnan(out0.get(i)) && std::isnan(out.get(i)))) {
                if (show(bad)) note("out[%zu] bits %08x, at offset 0 %08x", i, out.bits(i), out0.bits(i));
                bad++;
            }
    }
    finish(bad, what);
}

int main(int argc, char** argv) {
    if (parse_args(argc, argv)) { // --launch: symbol|grid|block as kernel.toml spells them
        for (auto& op : ops)
            for (int d = 0; d < 3; d++)
                printf("%s_%s|[\"tokens\", \"ceil_div(d, %u)\"]|[256]\n", op.name, dt_name[d], span((DT)d));
        return 0;
    }
    // ragged sizes around packs, warps, blocks and the block span; large ones
    static const unsigned ds[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 24, 31, 32, 33, 100, 255, 256, 257, 1000, 1023,
                                  1024, 1025, 2047, 2048, 2049, 2056, 4095, 4096, 4097, 4100, 4104, 6144, 8192, 11008, 12345, 16384};
    for (auto& op : ops)
        for (int dti = 0; dti < 3; dti++) {
            DT dt = (DT)dti;
            unsigned N = pack_elems(dt);
            for (unsigned d : ds) {
                bool big = d > 5000;
                // element offsets of input and out: every head length, alike and not
                for (unsigned io = 0; io < (big ? 2 : N); io++)
                    for (unsigned oo = 0; oo < (big ? 2 : N); oo += big || N == 4 ? 1 : 3)
                        run(op, dt, big ? 2 : 3, d, io, oo, (d + io + oo) % 3);
            }
            run(op, dt, 0, 64, 0, 0, 0); // no tokens
            run(op, dt, 7, 4096, 0, 0, 1);
            run(op, dt, 5, 4096, 3, 3, 1);
            if (verbose) printf("%s %s done (%d cases, %d failures)\n", op.name, dt_name[dt], cases, failures);
        }
    return summary("activation");
}
