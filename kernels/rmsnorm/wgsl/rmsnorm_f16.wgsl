enable f16;

// rmsnorm_f16.wgsl - RMS normalisation, WGSL fallback, f16 tensors.
// Needs the `shader-f16` feature (declared in kernel.toml); values are
// converted to f32 for the arithmetic. wgpu buffer sizes are multiples of 4
// bytes, so an odd-length f16 tensor lives in a buffer padded by 2 bytes.
//
// Hand-written (nothing builds it); validated by `kernelhub check`. bf16 is
// covered by the native (PTX / hsaco) artifacts only.
// Bindings follow the kernelhub convention (docs/formats.md): the op's tensors
// in parameter order at @group(0) @binding(0..), `read_write` for written
// ones, then the scalar parameters as one uniform struct.

// Launch (see kernel.toml): @workgroup_size(256), grid = min(tokens, 65535)
// workgroups. A workgroup normalises rows wid, wid + num_workgroups, ...; its
// invocations stride over the columns, sum squares in f32 and reduce them in
// workgroup memory. Entry point: rms_norm.

struct Params {
    eps: f32,
    tokens: u32,
    hidden: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<f16>;  // [tokens, hidden]
@group(0) @binding(1) var<storage, read> input: array<f16>;      // [tokens, hidden]
@group(0) @binding(2) var<storage, read> weight: array<f16>;     // [hidden]
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn rms_norm(@builtin(local_invocation_index) lid: u32,
            @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let hidden = params.hidden;
    // The row loop and the barriers inside it are uniform: they depend only on
    // workgroup_id, num_workgroups and the uniform buffer.
    for (var row = wid.x; row < params.tokens; row += nwg.x) {
        let base = row * hidden;
        var sum = 0.0;
        for (var i = lid; i < hidden; i += 256u) {
            let v = f32(input[base + i]);
            sum += v * v;
        }
        partial[lid] = sum;
        workgroupBarrier();
        for (var s = 128u; s > 0u; s >>= 1u) {
            if (lid < s) {
                partial[lid] += partial[lid + s];
            }
            workgroupBarrier();
        }
        let scale = inverseSqrt(partial[0] / f32(hidden) + params.eps);
        workgroupBarrier(); // all have read partial[0] before the next row reuses it
        for (var i = lid; i < hidden; i += 256u) {
            out[base + i] = f16(f32(input[base + i]) * scale * f32(weight[i]));
        }
    }
}
