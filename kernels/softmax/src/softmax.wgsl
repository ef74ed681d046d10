// softmax.wgsl - row-wise softmax, WGSL fallback.
//
// The one source of wgsl/softmax_{f32,f16}{,_subgroups}.wgsl:
// scripts/wgsl-variants.py makes them, declaring `elem`, the tensors' element
// type (f32, or f16 with `enable f16;` and the `shader-f16` feature), and
// keeping the `//#if subgroups` parts only in the variants that need the
// `subgroups` feature. Values are converted to f32 for the arithmetic and
// rounded to `elem` once, on store; for f32 the conversions are the identity.
// bf16 is covered by the native (PTX / hsaco) artifacts only. `kernelhub
// check` validates the output.
// Bindings follow the kernelhub convention (docs/formats.md): the op's tensors
// in parameter order at @group(0) @binding(0..), `read_write` for written
// ones, then the scalar parameters as one uniform struct. Tensors are bound
// as arrays of vec4<elem> (16 bytes for f32, 8 for f16): kernelhub pads its
// buffers to 16 bytes, and no index here goes past the ceil(len / 4) vec4s
// that hold a tensor.

// out[r, i] = exp(x_i - m) / sum_j exp(x_j - m), m = max_j x_j, in f32.
//
// Launch (see kernel.toml): @workgroup_size(256), grid = min(rows, 65535)
// workgroups. A workgroup handles rows wid, wid + num_workgroups, ...:
// 1. one pass over the row: each invocation keeps a running maximum m and
//    s = sum exp(x - m), rescaling s whenever m grows (online softmax);
// 2. the (m, s) pairs are merged across the workgroup: without subgroups
//    the 256 of them as a tree in workgroup memory; with them, each subgroup
//    merges its pairs with subgroupMax and subgroupAdd, and one invocation of
//    it stores the result in a workgroup slot; after one barrier every
//    subgroup merges the slots the same way;
// 3. a second pass (the row now comes from cache) writes exp(x - m) / s.
// When cols % 4 == 0 every load and store is a whole vec4; otherwise single
// elements are addressed as vec4 components (v[i >> 2][i & 3]). Which path
// runs depends only on the uniform `cols`. Entry point: softmax.
//
// Special values give what the CPU reference (exact arithmetic on the same
// inputs) gives: a row holding a NaN or +inf, or only -inf, is all NaN;
// -inf elements of any other row are 0. The checks look at the bits, so no
// driver's fast-math assumptions can drop them: a NaN element counts as
// +inf (the running maximum never sees a NaN), and a row whose maximum is
// infinite is written as NaN.

struct Params {
    rows: u32,
    cols: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<vec4<elem>>;  // [rows, cols]
@group(0) @binding(1) var<storage, read> input: array<vec4<elem>>;      // [rows, cols]
@group(0) @binding(2) var<uniform> params: Params;

const WG: u32 = 256u; // @workgroup_size

//#if subgroups
// One (m, s) slot per subgroup (at most 256 / 4), two banks used by
// alternate rows.
var<workgroup> slots: array<array<vec2<f32>, 64>, 2>;
//#else
var<workgroup> red_m: array<f32, 256>;
var<workgroup> red_s: array<f32, 256>;
//#endif

// Special values, made at run time (a WGSL constant may not be infinite).
fn pos_inf() -> f32 {
    return bitcast<f32>(0x7f800000u | (params.cols & 0u));
}
fn neg_inf() -> f32 {
    return bitcast<f32>(0xff800000u | (params.cols & 0u));
}
fn nan() -> f32 {
    return bitcast<f32>(0x7fc00000u | (params.cols & 0u));
}
fn is_neg_inf(x: f32) -> bool {
    return bitcast<u32>(x) == 0xff800000u;
}
fn is_infinite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u;
}

// x with NaN components replaced by +inf.
fn no_nan4(x: vec4<f32>) -> vec4<f32> {
    let nan_lanes = (bitcast<vec4<u32>>(x) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u);
    return select(x, vec4<f32>(pos_inf()), nan_lanes);
}

// A running softmax state: maximum m and s = sum exp(x - m). While m is
// -inf (nothing but -inf seen) s is 0; m = +inf marks a row of NaNs.
struct Acc {
    m: f32,
    s: f32,
}

// The reference point for exp: m, or 0 while m is -inf (exp(-inf - 0) = 0,
// where exp(-inf - -inf) would be NaN).
fn pivot(m: f32) -> f32 {
    return select(m, 0.0, is_neg_inf(m));
}

fn merge(a: Acc, b: Acc) -> Acc {
    let m = max(a.m, b.m);
    let p = pivot(m);
    return Acc(m, a.s * exp(a.m - p) + b.s * exp(b.m - p));
}

//#if subgroups
// The merge of every invocation's `a` in this subgroup (each gets it).
fn subgroup_merge(a: Acc) -> Acc {
    let m = subgroupMax(a.m);
    let p = pivot(m);
    return Acc(m, subgroupAdd(a.s * exp(a.m - p)));
}
//#endif

fn add4(a: Acc, x: vec4<f32>) -> Acc {
    let y = no_nan4(x);
    let m = max(a.m, max(max(y.x, y.y), max(y.z, y.w)));
    let p = pivot(m);
    let e = exp(y - vec4<f32>(p));
    return Acc(m, a.s * exp(a.m - p) + ((e.x + e.y) + (e.z + e.w)));
}

fn add1(a: Acc, x: f32) -> Acc {
    let y = no_nan4(vec4<f32>(x)).x;
    let m = max(a.m, y);
    let p = pivot(m);
    return Acc(m, a.s * exp(a.m - p) + exp(y - p));
}

// This invocation's share of row `row`.
fn row_acc(row: u32, lid: u32) -> Acc {
    let cols = params.cols;
    var acc = Acc(neg_inf(), 0.0);
    if (cols % 4u == 0u) {
        let cv = cols / 4u;
        let base = row * cv;
        var i = lid;
        for (; i + WG < cv; i += 2u * WG) {
            let a = vec4<f32>(input[base + i]);
            let b = vec4<f32>(input[base + i + WG]);
            acc = add4(acc, a);
            acc = add4(acc, b);
        }
        if (i < cv) {
            acc = add4(acc, vec4<f32>(input[base + i]));
        }
    } else {
        let base = row * cols;
        for (var i = lid; i < cols; i += WG) {
            let j = base + i;
            acc = add1(acc, f32(input[j >> 2u][j & 3u]));
        }
    }
    return acc;
}

// out[row, :] = exp(input[row, :] - total.m) / total.s.
fn write_row(row: u32, lid: u32, total: Acc) {
    let cols = params.cols;
    // A row with a NaN or +inf, or only -infs: NaN, as exact arithmetic gives.
    let poisoned = is_infinite(total.m);
    let m = total.m;
    let inv = 1.0 / total.s;
    if (cols % 4u == 0u) {
        let cv = cols / 4u;
        let base = row * cv;
        if (poisoned) {
            for (var i = lid; i < cv; i += WG) {
                out[base + i] = vec4<elem>(vec4<f32>(nan()));
            }
        } else {
            var i = lid;
            for (; i + WG < cv; i += 2u * WG) {
                let a = vec4<f32>(input[base + i]);
                let b = vec4<f32>(input[base + i + WG]);
                out[base + i] = vec4<elem>(exp(a - vec4<f32>(m)) * inv);
                out[base + i + WG] = vec4<elem>(exp(b - vec4<f32>(m)) * inv);
            }
            if (i < cv) {
                out[base + i] = vec4<elem>(exp(vec4<f32>(input[base + i]) - vec4<f32>(m)) * inv);
            }
        }
    } else {
        let base = row * cols;
        for (var i = lid; i < cols; i += WG) {
            let j = base + i;
            out[j >> 2u][j & 3u] = select(elem(exp(f32(input[j >> 2u][j & 3u]) - m) * inv), elem(nan()), poisoned);
        }
    }
}

//#if subgroups
// No subgroup size is assumed: it comes from @builtin(subgroup_size) (any
// power of two WebGPU allows, 4 to 128: lavapipe 8, NVIDIA 32, AMD 32 or 64),
// so the 256 invocations form 256 / subgroup_size <= 64 subgroups, and
// subgroup k is invocations k * subgroup_size .. (k + 1) * subgroup_size - 1
// (the layout every Vulkan, Metal and D3D12 driver uses for compute). The
// slots are double-buffered by row, so a row needs one barrier, not two.
// There is no `enable subgroups;`: naga (wgpu 30) rejects it as not yet
// implemented and allows the subgroup builtins without it.
@compute @workgroup_size(256)
fn softmax(@builtin(local_invocation_index) lid: u32,
           @builtin(workgroup_id) wid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(subgroup_size) sg_size: u32,
           @builtin(subgroup_invocation_id) sg_lane: u32) {
    let subgroups = (WG + sg_size - 1u) / sg_size;
    let slot = lid / sg_size;
    var bank = 0u;
    // The row loop, the barrier and the subgroup operations inside it are
    // uniform: they depend only on workgroup_id, num_workgroups and the
    // uniform buffer.
    for (var row = wid.x; row < params.rows; row += nwg.x) {
        let part = subgroup_merge(row_acc(row, lid));
        if (sg_lane == 0u) {
            slots[bank][slot] = vec2<f32>(part.m, part.s);
        }
        workgroupBarrier();
        // Every subgroup merges all the slots, in the same order.
        var acc = Acc(neg_inf(), 0.0);
        for (var k = sg_lane; k < subgroups; k += sg_size) {
            let v = slots[bank][k];
            acc = merge(acc, Acc(v.x, v.y));
        }
        let total = subgroup_merge(acc);
        // The next row writes the other bank; the row after it writes this
        // one only after the next row's barrier, when every invocation has
        // read this bank.
        bank ^= 1u;
        write_row(row, lid, total);
    }
}
//#else
@compute @workgroup_size(256)
fn softmax(@builtin(local_invocation_index) lid: u32,
           @builtin(workgroup_id) wid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    // The row loop and the barriers inside it are uniform: they depend only on
    // workgroup_id, num_workgroups and the uniform buffer.
    for (var row = wid.x; row < params.rows; row += nwg.x) {
        let acc = row_acc(row, lid);
        red_m[lid] = acc.m;
        red_s[lid] = acc.s;
        workgroupBarrier();
        for (var s = WG / 2u; s > 0u; s >>= 1u) {
            if (lid < s) {
                let merged = merge(Acc(red_m[lid], red_s[lid]), Acc(red_m[lid + s], red_s[lid + s]));
                red_m[lid] = merged.m;
                red_s[lid] = merged.s;
            }
            workgroupBarrier();
        }
        let total = Acc(red_m[0], red_s[0]);
        workgroupBarrier(); // all have read the total before the next row reuses the arrays
        write_row(row, lid, total);
    }
}
//#endif
