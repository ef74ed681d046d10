// rotary.cpp - simulation harness for kernels/rotary/src/rotary.{cu,hip}.
//
// Why it exists: CI has no GPU; this runs the real rotary kernels (NeoX and
// GPT-J layouts, in place on query and key) on the CPU (sim.h, README.md)
// over every dtype, head geometries with and without packs, partial, odd and
// zero rot_dim, rot_dim > head_size, no query or no key heads, positions past
// the cache, unaligned tensors and special values, and compares them with an
// f64 port of the CPU reference at the project's tolerances.
// Built by scripts/simulate-kernels.sh.
#include "sim.h"
#include KH_SIM_SOURCE

using namespace sim;

typedef void (*K)(const unsigned*, void*, void*, const void*, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned);
static const K kernels[2][3] = {{(K)rotary_neox_f32, (K)rotary_neox_f16, (K)rotary_neox_bf16},
                                {(K)rotary_gptj_f32, (K)rotary_gptj_f16, (K)rotary_gptj_bf16}};
struct Geometry {
    unsigned nh, nkv, hs, rot; // query heads, key heads, head_size, rot_dim
};

struct Launch {
    K k;
    unsigned tokens, maxpos;
    Geometry g;
    const unsigned* pos;
};
// One block per token; with no tokens (an empty grid, skipped by the
// runtime) one block anyway: it must do nothing.
static void launch_rotary(const Launch& l, Tensor& q, Tensor& k, const Tensor& c) {
    reset_memory();
    add_range("positions", l.pos, l.tokens * sizeof(unsigned), false);
    q.reg("query", true), k.reg("key", true), c.reg("cos_sin_cache", false);
    void *qb = q.base(), *kb = k.base();
    const void* cb = c.base();
    launch(l.tokens ? l.tokens : 1, 1, [&] { l.k(l.pos, qb, kb, cb, l.tokens, l.g.nh, l.g.nkv, l.g.hs, l.g.rot, l.maxpos); });
}

// kind 0: uniform [-4, 4) and a true cos/sin table; 1: with NaN, +-inf, 0,
// 1e30; 2: an arbitrary table
static void run(bool neox, DT dt, unsigned tokens, Geometry g, unsigned maxpos, unsigned qo, unsigned ko, unsigned co, int kind) {
    size_t nq = (size_t)tokens * g.nh * g.hs, nk = (size_t)tokens * g.nkv * g.hs, nc = (size_t)maxpos * g.rot;
    Tensor q(dt, nq, qo), k(dt, nk, ko), c(dt, nc, co);
    // positions, some past the cache (those tokens stay as they are)
    std::vector<unsigned> pos(tokens + 1);
    for (unsigned t = 0; t < tokens; t++) pos[t] = (unsigned)(urand() * (maxpos + 3)) + (t % 5 == 4 ? 1000000 : 0);
    for (size_t i = 0; i < nq; i++) q.set(i, (float)(urand() * 8 - 4));
    for (size_t i = 0; i < nk; i++) k.set(i, (float)(urand() * 8 - 4));
    unsigned half = g.rot / 2;
    for (unsigned p = 0; p < maxpos; p++)
        for (unsigned r = 0; r < g.rot; r++) {
            double a = p * std::pow(10000.0, -(double)(r % (half ? half : 1)) / (half ? half : 1));
            float v = r < half ? std::cos(a) : r < 2 * half ? std::sin(a) : 777.0; // 777: an odd rot_dim's unused last
            c.set((size_t)p * g.rot + r, kind == 2 ? (float)(urand() * 2 - 1) : v);
        }
    if (kind == 1) {
        const float sp[] = {NAN, INFINITY, -INFINITY, 0.0f, 1e30f};
        for (size_t i = 0; i < nq; i += 37) q.set(i, sp[i % 5]);
        for (size_t i = 0; i < nk; i += 41) k.set(i, sp[(i / 41) % 5]);
    }
    // the reference, on the stored values; `rotated` marks what must be written
    std::vector<double> rq(nq), rk(nk);
    std::vector<char> wq(nq), wk(nk);
    for (size_t i = 0; i < nq; i++) rq[i] = q.get(i);
    for (size_t i = 0; i < nk; i++) rk[i] = k.get(i);
    if (g.rot <= g.hs)
        for (unsigned t = 0; t < tokens; t++) {
            unsigned p = pos[t];
            if (p >= maxpos) continue;
            for (int key = 0; key < 2; key++) {
                std::vector<double>& ten = key ? rk : rq;
                std::vector<char>& wr = key ? wk : wq;
                unsigned heads = key ? g.nkv : g.nh;
                for (unsigned h = 0; h < heads; h++) {
                    size_t hb = ((size_t)t * heads + h) * g.hs;
                    for (unsigned r = 0; r < half; r++) {
                        double cs = c.get((size_t)p * g.rot + r), sn = c.get((size_t)p * g.rot + half + r);
                        size_t i = hb + (neox ? r : 2 * r), j = hb + (neox ? r + half : 2 * r + 1);
                        double x = ten[i], y = ten[j];
                        ten[i] = (float)(x * cs - y * sn), ten[j] = (float)(y * cs + x * sn);
                        wr[i] = wr[j] = 1;
                    }
                }
            }
        }
    q.fill_guards(12345.0f), k.fill_guards(12345.0f);
    // the same values at offset 0, for the bitwise check below
    Tensor q0(dt, nq, 0), k0(dt, nk, 0), c0(dt, nc, 0);
    for (size_t i = 0; i < nq; i++) q0.set(i, q.get(i));
    for (size_t i = 0; i < nk; i++) k0.set(i, k.get(i));
    for (size_t i = 0; i < nc; i++) c0.set(i, c.get(i));
    auto gq = q.guard_bits(), gk = k.guard_bits(), gc = c.guard_bits();

    Launch l = {kernels[neox ? 0 : 1][dt], tokens, maxpos, g, pos.data()};
    launch_rotary(l, q, k, c);
    int bad = 0;
    char what[240];
    snprintf(what, sizeof what, "%s %s tokens=%u heads=%u/%u head_size=%u rot_dim=%u max_position=%u offsets q=%u k=%u cache=%u kind=%d",
             neox ? "rotary_neox" : "rotary_gptj", dt_name[dt], tokens, g.nh, g.nkv, g.hs, g.rot, maxpos, qo, ko, co, kind);
    if (q.guard_bits() != gq || k.guard_bits() != gk || c.guard_bits() != gc) {
        if (show(bad)) note("elements outside the tensors changed");
        bad++;
    }
    for (int key = 0; key < 2; key++) {
        Tensor& got = key ? k : q;
        std::vector<double>& ref = key ? rk : rq;
        std::vector<char>& wr = key ? wk : wq;
        for (size_t i = 0; i < ref.size(); i++) {
            double v = got.get(i);
            // rotated elements written (once: sim.h), the rest untouched
            if (got.written(i) != (bool)wr[i] || !close(dt, v, ref[i])) {
                if (show(bad)) note("%s[%zu] = %.9g, expected %.9g%s", key ? "key" : "query", i, v, ref[i],
                                    got.written(i) == (bool)wr[i] ? "" : wr[i] ? " (not written)" : " (written, should be untouched)");
                bad++;
            }
        }
    }
    // The 16-byte path, for a rotated token: its query, key and cache rows
    // 16-byte aligned and head_size and rot_dim / 2 multiples of a pack.
    unsigned N = pack_elems(dt);
    bool vec = false;
    for (unsigned t = 0; t < tokens; t++) {
        if (pos[t] >= maxpos || g.rot > g.hs || half == 0 || g.nh + g.nkv == 0) continue;
        uintptr_t qa = (uintptr_t)q.at((size_t)t * g.nh * g.hs), ka = (uintptr_t)k.at((size_t)t * g.nkv * g.hs), ca = (uintptr_t)c.at((size_t)pos[t] * g.rot);
        if (half % N == 0 && g.hs % N == 0 && (qa | ka | ca) % 16 == 0) vec = true;
    }
    if (vec != (reads16 > 0)) {
        if (show(bad)) note("16-byte path %s", reads16 ? "taken, not expected" : "expected, not taken");
        bad++;
    }
    // Elementwise, so the same values at offset 0 (the other path, or the
    // same one) must give the same bits.
    if ((qo || ko || co) && nq + nk) {
        int before = errors;
        launch_rotary(l, q0, k0, c0);
        errors += before;
        for (int key = 0; key < 2; key++) {
            Tensor &a = key ? k : q, &b = key ? k0 : q0;
            for (size_t i = 0; i < a.n; i++)
                if (a.bits(i) != b.bits(i) && !(std::isnan(a.get(i)) && std::isnan(b.get(i)))) {
                    if (show(bad)) note("%s[%zu] bits %08x, at offset 0 %08x", key ? "key" : "query", i, a.bits(i), b.bits(i));
                    bad++;
                }
        }
    }
    finish(bad, what);
}

int main(int argc, char** argv) {
    if (parse_args(argc, argv)) {
        for (const char* l : {"neox", "gptj"})
            for (int d = 0; d < 3; d++) printf("rotary_%s_%s|[\"tokens\"]|[256]\n", l, dt_name[d]);
        return 0;
    }
    // real models (Llama 32/8/128, GQA, partial rotary), sizes with and
    // without whole packs, odd / zero / tiny rot_dim, rot_dim > head_size,
    // no query or no key heads, more items than a block
    static const Geometry gs[] = {{32, 8, 128, 128}, {4, 2, 64, 64}, {2, 1, 128, 64}, {3, 1, 80, 80}, {2, 2, 96, 32}, {1, 1, 64, 96},
                                  {2, 1, 32, 31}, {2, 1, 16, 0}, {2, 1, 16, 2}, {2, 1, 16, 1}, {2, 1, 36, 32}, {2, 1, 24, 24},
                                  {3, 2, 20, 17}, {0, 3, 64, 64}, {3, 0, 64, 64}, {8, 8, 256, 256}, {5, 3, 40, 40}, {1, 1, 8, 8},
                                  {1, 1, 16, 16}, {2, 3, 48, 16}, {64, 8, 128, 128}, {1, 1, 512, 256}, {3, 1, 18, 16}};
    for (int layout = 0; layout < 2; layout++)
        for (int dti = 0; dti < 3; dti++) {
            DT dt = (DT)dti;
            bool neox = layout == 0;
            for (auto& g : gs) {
                unsigned tokens = g.nh * g.hs > 4000 ? 3 : 7;
                for (int kind = 0; kind < 3; kind++) run(neox, dt, tokens, g, 16, 0, 0, 0, kind);
                // element offsets of query / key / cache: one misaligned, all, whole packs
                const unsigned offs[][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {3, 3, 3}, {8, 8, 8}, {4, 4, 4}, {0, 0, 8}};
                for (auto& o : offs) run(neox, dt, tokens, g, 16, o[0], o[1], o[2], (o[0] + o[2]) % 3);
            }
            run(neox, dt, 0, gs[0], 16, 0, 0, 0, 0); // no tokens
            run(neox, dt, 40, gs[1], 4096, 0, 0, 0, 0);
            if (verbose) printf("%s %s done (%d cases, %d failures)\n", neox ? "neox" : "gptj", dt_name[dt], cases, failures);
        }
    return summary("rotary");
}
