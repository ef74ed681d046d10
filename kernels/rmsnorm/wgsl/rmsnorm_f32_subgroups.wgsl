// rmsnorm_f32_subgroups.wgsl: the f32, subgroups variant of src/rmsnorm.wgsl,
// made by scripts/wgsl-variants.py; edit the source, not this file.
alias elem = f32;

// rmsnorm.wgsl - RMS normalisation, WGSL fallback.
//
// The one source of wgsl/rmsnorm_{f32,f16}{,_subgroups}.wgsl:
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

// Launch (see kernel.toml): @workgroup_size(256), grid = min(tokens, 65535)
// workgroups. A workgroup normalises rows wid, wid + num_workgroups, ...: its
// invocations stride over the row's columns and sum squares in f32, the sums
// are added across the workgroup (below), then the row is read again (from
// cache) and scaled. When hidden % 4 == 0 every load and store is a whole
// vec4 (4 per invocation in flight); otherwise single elements are addressed
// as vec4 components (v[i >> 2][i & 3]). Which path runs depends only on the
// uniform `hidden`. Entry point: rms_norm.
//
// Without subgroups, the 256 partial sums are added as a tree in workgroup
// memory. With them, each subgroup adds its sums with subgroupAdd and one
// invocation of it stores the result in a workgroup slot; after one barrier
// every subgroup adds the slots (again with subgroupAdd).

struct Params {
    eps: f32,
    tokens: u32,
    hidden: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<vec4<elem>>;  // [tokens, hidden]
@group(0) @binding(1) var<storage, read> input: array<vec4<elem>>;      // [tokens, hidden]
@group(0) @binding(2) var<storage, read> weight: array<vec4<elem>>;     // [hidden]
@group(0) @binding(3) var<uniform> params: Params;

const WG: u32 = 256u; // @workgroup_size

// One slot per subgroup (at most 256 / 4), two banks used by alternate rows.
var<workgroup> slots: array<array<f32, 64>, 2>;

// This invocation's share of the sum of squares of row `row`.
fn sum_squares(row: u32, lid: u32) -> f32 {
    let hidden = params.hidden;
    var sum = 0.0;
    if (hidden % 4u == 0u) {
        let hv = hidden / 4u;
        let base = row * hv;
        var i = lid;
        for (; i + 3u * WG < hv; i += 4u * WG) {
            let a = vec4<f32>(input[base + i]);
            let b = vec4<f32>(input[base + i + WG]);
            let c = vec4<f32>(input[base + i + 2u * WG]);
            let d = vec4<f32>(input[base + i + 3u * WG]);
            sum += (dot(a, a) + dot(b, b)) + (dot(c, c) + dot(d, d));
        }
        for (; i < hv; i += WG) {
            let a = vec4<f32>(input[base + i]);
            sum += dot(a, a);
        }
    } else {
        let base = row * hidden;
        for (var i = lid; i < hidden; i += WG) {
            let j = base + i;
            let v = f32(input[j >> 2u][j & 3u]);
            sum += v * v;
        }
    }
    return sum;
}

// out[row, :] = input[row, :] * scale * weight.
fn write_row(row: u32, lid: u32, scale: f32) {
    let hidden = params.hidden;
    if (hidden % 4u == 0u) {
        let hv = hidden / 4u;
        let base = row * hv;
        var i = lid;
        for (; i + 3u * WG < hv; i += 4u * WG) {
            let a = vec4<f32>(input[base + i]);
            let b = vec4<f32>(input[base + i + WG]);
            let c = vec4<f32>(input[base + i + 2u * WG]);
            let d = vec4<f32>(input[base + i + 3u * WG]);
            let wa = vec4<f32>(weight[i]);
            let wb = vec4<f32>(weight[i + WG]);
            let wc = vec4<f32>(weight[i + 2u * WG]);
            let wd = vec4<f32>(weight[i + 3u * WG]);
            out[base + i] = vec4<elem>(a * scale * wa);
            out[base + i + WG] = vec4<elem>(b * scale * wb);
            out[base + i + 2u * WG] = vec4<elem>(c * scale * wc);
            out[base + i + 3u * WG] = vec4<elem>(d * scale * wd);
        }
        for (; i < hv; i += WG) {
            out[base + i] = vec4<elem>(vec4<f32>(input[base + i]) * scale * vec4<f32>(weight[i]));
        }
    } else {
        let base = row * hidden;
        for (var i = lid; i < hidden; i += WG) {
            let j = base + i;
            out[j >> 2u][j & 3u] = elem(f32(input[j >> 2u][j & 3u]) * scale * f32(weight[i >> 2u][i & 3u]));
        }
    }
}

// No subgroup size is assumed: it comes from @builtin(subgroup_size) (any
// power of two WebGPU allows, 4 to 128: lavapipe 8, NVIDIA 32, AMD 32 or 64),
// so the 256 invocations form 256 / subgroup_size <= 64 subgroups, and
// subgroup k is invocations k * subgroup_size .. (k + 1) * subgroup_size - 1
// (the layout every Vulkan, Metal and D3D12 driver uses for compute). The
// slots are double-buffered by row, so a row needs one barrier, not two.
// There is no `enable subgroups;`: naga (wgpu 30) rejects it as not yet
// implemented and allows the subgroup builtins without it.
@compute @workgroup_size(256)
fn rms_norm(@builtin(local_invocation_index) lid: u32,
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
    for (var row = wid.x; row < params.tokens; row += nwg.x) {
        let sum = subgroupAdd(sum_squares(row, lid));
        if (sg_lane == 0u) {
            slots[bank][slot] = sum;
        }
        workgroupBarrier();
        // Every subgroup adds all the slots, in the same order.
        var part = 0.0;
        for (var k = sg_lane; k < subgroups; k += sg_size) {
            part += slots[bank][k];
        }
        let total = subgroupAdd(part);
        // The next row writes the other bank; the row after it writes this
        // one only after the next row's barrier, when every invocation has
        // read this bank.
        bank ^= 1u;
        let scale = inverseSqrt(total / f32(params.hidden) + params.eps);
        write_row(row, lid, scale);
    }
}
