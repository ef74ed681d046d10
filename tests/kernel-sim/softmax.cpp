// softmax.cpp - simulation harness for kernels/softmax/src/softmax.{cu,hip}.
//
// Why it exists: CI has no GPU; this runs the real softmax kernels on the CPU
// (sim.h, README.md), each block's 256 threads meeting at the shuffles and
// barriers of the two block reductions, over every dtype, ragged and empty
// rows, both sides of the register-held row limit (8192 columns), unaligned
// and differently aligned input / out, and rows with NaN, +inf, all -inf and
// mostly -inf, and compares them with an f64 reference at the project's
// tolerances. Built by scripts/simulate-kernels.sh.
#include "sim.h"
#include KH_SIM_SOURCE

using namespace sim;

typedef void (*K)(void*, const void*, unsigned, unsigned);
static const K kernels[3] = {(K)softmax_f32, (K)softmax_f16, (K)softmax_bf16};

// kind 0: uniform [-4, 4); 1: +1000 (exp overflows without the max); 2: -1000
// (underflows); 3: special rows; 4: uniform [-100, 100)
static void run(DT dt, unsigned rows, unsigned cols, unsigned io, unsigned oo, int kind) {
    size_t n = (size_t)rows * cols;
    Tensor in(dt, n, io), out(dt, n, oo);
    out.fill_guards(12345.0f);
    for (size_t i = 0; i < n; i++) out.set(i, -777.0f);
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) {
        double u = urand() * 8 - 4;
        v[i] = (float)(kind == 1 ? u + 1000 : kind == 2 ? u - 1000 : kind == 4 ? u * 25 : u);
    }
    if (kind == 3)
        for (unsigned r = 0; r < rows && cols; r++) {
            float* row = &v[(size_t)r * cols];
            switch (r % 7) {
            case 0: row[(r * 31) % cols] = NAN; break;                               // all NaN
            case 1: row[(r * 17) % cols] = INFINITY; break;                          // all NaN
            case 2: for (unsigned i = 0; i < cols; i++) row[i] = -INFINITY; break;   // all NaN
            case 3: for (unsigned i = 0; i < cols; i += 3) row[i] = -INFINITY; break; // zeros there
            case 4: for (unsigned i = 0; i < cols; i++) if (i != cols / 2) row[i] = -INFINITY; break; // one 1
            case 5: for (unsigned i = 0; i < cols; i++) row[i] = -INFINITY; row[cols - 1] = -5000.f; break;
            default: break;
            }
        }
    for (size_t i = 0; i < n; i++) in.set(i, v[i]);
    reset_memory();
    in.reg("input", false), out.reg("out", true);
    auto guards = out.guard_bits();
    void* o = out.base();
    const void* x = in.base();
    K k = kernels[dt];
    // One block per row; with no rows (an empty grid, skipped by the
    // runtime) one block anyway: it must do nothing.
    launch(rows ? rows : 1, 1, [&] { k(o, x, rows, cols); });

    int bad = 0;
    char what[200];
    snprintf(what, sizeof what, "softmax %s rows=%u cols=%u offsets in=%u out=%u kind=%d", dt_name[dt], rows, cols, io, oo, kind);
    if (out.guard_bits() != guards) {
        if (show(bad)) note("elements outside `out` changed");
        bad++;
    }
    bool vec = false;
    unsigned N = pack_elems(dt), s = dt_size(dt);
    for (unsigned r = 0; r < rows; r++) {
        // The 16-byte path: input and out aligned alike, a whole pack past the head.
        uintptr_t xa = (uintptr_t)in.at((size_t)r * cols), oa = (uintptr_t)out.at((size_t)r * cols);
        unsigned head = (16 - xa % 16) % 16 / s;
        if (head > cols) head = cols;
        if ((xa - oa) % 16 == 0 && (cols - head) / N > 0) vec = true;
        // f64 on the stored values: NaN and +inf rows come out NaN through
        // inf - inf and NaN arithmetic, all -inf rows through -inf - -inf.
        double m = -INFINITY, sum = 0;
        for (unsigned i = 0; i < cols; i++) m = std::fmax(m, (double)in.get((size_t)r * cols + i));
        for (unsigned i = 0; i < cols; i++) sum += std::exp((double)in.get((size_t)r * cols + i) - m);
        for (unsigned i = 0; i < cols; i++) {
            size_t at = (size_t)r * cols + i;
            double x = in.get(at), e = (float)(std::exp(x - m) / sum), got = out.get(at);
            bool ok = close(dt, got, e);
            if (e == 0 && x == -INFINITY) ok = got == 0; // exactly 0, not merely small
            if (!out.written(at) || !ok) {
                if (show(bad)) note("out[%u, %u] = %.9g%s, expected %.9g (x = %g)", r, i, got, out.written(at) ? "" : " (not written)", e, x);
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
        for (int d = 0; d < 3; d++) printf("softmax_%s|[\"rows\"]|[256]\n", dt_name[d]);
        return 0;
    }
    // around packs, warps, the block, the 8192-column register limit, and long rows
    static const unsigned colss[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 31, 100, 255, 256, 257, 1000, 1023, 1024,
                                     1025, 2051, 4096, 8191, 8192, 8193, 8199, 8200, 16389, 20000, 40000};
    for (int dti = 0; dti < 3; dti++) {
        DT dt = (DT)dti;
        for (unsigned cols : colss) {
            run(dt, 3, cols, 0, 0, 0);
            run(dt, 7, cols, 0, 0, 3);
            if (cols == 1000 || cols == 17 || cols == 8193 || cols == 20000) {
                // element offsets of input and out, alike and not
                for (unsigned io = 0; io < 4; io++)
                    for (unsigned oo = 0; oo < 4; oo++) run(dt, 2, cols, io, oo, 0);
                run(dt, 7, cols, 1, 3, 3);
                run(dt, 7, cols, 3, 3, 3);
                run(dt, 2, cols, 0, 0, 1);
                run(dt, 2, cols, 1, 1, 2);
            }
        }
        run(dt, 0, 100, 0, 0, 0); // no rows
        for (unsigned cols = 1; cols <= 40; cols++)
            for (unsigned io = 0; io < 8; io++) run(dt, 2, cols, io, io, (cols + io) % 5);
        for (unsigned cols : {4097u, 6000u, 8192u, 12000u, 30001u}) run(dt, 3, cols, 1, 1, 4);
        if (verbose) printf("softmax %s done (%d cases, %d failures)\n", dt_name[dt], cases, failures);
    }
    return summary("softmax");
}
