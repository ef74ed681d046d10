// rmsnorm.cpp - simulation harness for kernels/rmsnorm/src/rmsnorm.{cu,hip}.
//
// Why it exists: CI has no GPU; this runs the real rms_norm kernels on the CPU
// (sim.h, README.md), each block's 256 threads meeting at the shuffles and the
// barrier of the block reduction, over every dtype, ragged and empty rows,
// unaligned and differently aligned input / out / weight, rows with NaN, inf,
// zeros and eps = 0, and compares them with an f64 port of the CPU reference
// at the project's tolerances. Built by scripts/simulate-kernels.sh.
#include "sim.h"
#include KH_SIM_SOURCE

using namespace sim;

typedef void (*K)(void*, const void*, const void*, float, unsigned, unsigned);
static const K kernels[3] = {(K)rms_norm_f32, (K)rms_norm_f16, (K)rms_norm_bf16};

// kind 0: uniform [-4, 4); 1: rows with a NaN, +inf, -inf, all zeros, and an
// infinite weight; 2: rows of large and of small magnitude, alternating
static void run(DT dt, unsigned tokens, unsigned hidden, unsigned io, unsigned oo, unsigned wo, int kind, float eps) {
    size_t n = (size_t)tokens * hidden;
    Tensor in(dt, n, io), out(dt, n, oo), w(dt, hidden, wo);
    out.fill_guards(12345.0f);
    for (size_t i = 0; i < n; i++) out.set(i, -777.0f);
    for (size_t i = 0; i < n; i++) {
        double u = urand() * 8 - 4;
        if (kind == 2) u *= (i / hidden) % 2 ? 100 : 1e-3;
        in.set(i, (float)u);
    }
    for (size_t i = 0; i < hidden; i++) w.set(i, (float)(urand() * 8 - 4));
    if (kind == 1)
        for (unsigned t = 0; t < tokens && hidden; t++) switch (t % 6) {
            case 0: in.set((size_t)t * hidden + (t * 31) % hidden, NAN); break;
            case 1: in.set((size_t)t * hidden + (t * 17) % hidden, INFINITY); break;
            case 2: for (unsigned i = 0; i < hidden; i++) in.set((size_t)t * hidden + i, 0.0f); break;
            case 3: in.set((size_t)t * hidden + (t * 7) % hidden, -INFINITY); break;
            case 4: w.set((t * 13) % hidden, INFINITY); break; // one weight, every row
            default: break;
            }
    reset_memory();
    in.reg("input", false), out.reg("out", true), w.reg("weight", false);
    auto guards = out.guard_bits();
    void* o = out.base();
    const void *x = in.base(), *wp = w.base();
    K k = kernels[dt];
    // One block per token; with no tokens (an empty grid, skipped by the
    // runtime) one block anyway: it must do nothing.
    launch(tokens ? tokens : 1, 1, [&] { k(o, x, wp, eps, tokens, hidden); });

    int bad = 0;
    char what[200];
    snprintf(what, sizeof what, "rms_norm %s tokens=%u hidden=%u offsets in=%u out=%u weight=%u kind=%d eps=%g", dt_name[dt], tokens, hidden, io, oo, wo, kind, eps);
    if (out.guard_bits() != guards) {
        if (show(bad)) note("elements outside `out` changed");
        bad++;
    }
    bool vec = false;
    unsigned N = pack_elems(dt), s = dt_size(dt);
    for (unsigned t = 0; t < tokens; t++) {
        // The 16-byte path for a row: input, out and weight aligned alike and
        // a whole pack past the head.
        uintptr_t xa = (uintptr_t)in.at((size_t)t * hidden), oa = (uintptr_t)out.at((size_t)t * hidden), wa = (uintptr_t)w.base();
        unsigned head = (16 - xa % 16) % 16 / s;
        if (head > hidden) head = hidden;
        if ((xa - oa) % 16 == 0 && (xa - wa) % 16 == 0 && (hidden - head) / N > 0) vec = true;
        double sum = 0;
        for (unsigned i = 0; i < hidden; i++) {
            double v = in.get((size_t)t * hidden + i);
            sum += v * v;
        }
        double scale = 1.0 / std::sqrt(sum / hidden + (double)eps);
        for (unsigned i = 0; i < hidden; i++) {
            size_t at = (size_t)t * hidden + i;
            double e = (float)(in.get(at) * scale * w.get(i)), got = out.get(at);
            if (!out.written(at) || !close(dt, got, e)) {
                if (show(bad)) note("out[%u, %u] = %.9g%s, expected %.9g", t, i, got, out.written(at) ? "" : " (not written)", e);
                bad++;
            }
        }
    }
    if (vec != (reads16 > 0)) {
        if (show(bad)) note("16-byte path %s", reads16 ? "taken, not expected" : "expected, not taken");
        bad++;
    }
    finish(bad, what);
}

int main(int argc, char** argv) {
    if (parse_args(argc, argv)) {
        for (int d = 0; d < 3; d++) printf("rms_norm_%s|[\"tokens\"]|[256]\n", dt_name[d]);
        return 0;
    }
    // around packs, warps, the block, the register-held row limit and beyond
    static const unsigned hs[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 31, 33, 64, 100, 255, 256, 257, 1000, 1023, 1024,
                                  1025, 2047, 2048, 2049, 2056, 3000, 4095, 4096, 4097, 4100, 4104, 6000, 8191, 8192, 8193, 8200, 12288, 16384, 16389};
    for (int dti = 0; dti < 3; dti++) {
        DT dt = (DT)dti;
        unsigned N = pack_elems(dt);
        for (unsigned h : hs) {
            bool big = h > 5000;
            run(dt, 3, h, 0, 0, 0, 0, 1e-6f);
            run(dt, 6, h, 0, 0, 0, 1, 1e-5f);
            // element offsets of input / out / weight: alike (16-byte path with
            // a head) and differing (element path)
            const unsigned offs[][3] = {{1, 1, 1}, {3, 3, 3}, {N - 1, N - 1, N - 1}, {0, 1, 0}, {0, 0, 1}, {2, 2, 0}, {1, 0, 1}};
            for (auto& o : offs) {
                if (big && o[0] == 3) continue;
                run(dt, big ? 2 : 3, h, o[0], o[1], o[2], (h + o[0] + o[1]) % 3, 1e-6f);
            }
        }
        run(dt, 0, 128, 0, 0, 0, 0, 1e-6f); // no tokens
        run(dt, 4, 64, 0, 0, 0, 0, 0.0f);
        run(dt, 3, 2048, 0, 0, 0, 1, 0.0f); // a zero row with eps 0: 0 * inf = NaN, as the reference
        for (unsigned h = 1; h <= 40; h++)
            for (unsigned o = 0; o < N; o++) run(dt, 3, h, o, o, o, (h + o) % 3, 1e-6f);
        if (verbose) printf("rms_norm %s done (%d cases, %d failures)\n", dt_name[dt], cases, failures);
    }
    return summary("rmsnorm");
}
