// rotary.wgsl - rotary position embedding, WGSL fallback.
//
// The one source of wgsl/rotary_f32.wgsl and wgsl/rotary_f16.wgsl:
// scripts/wgsl-variants.py makes them, declaring `elem`, the tensors' element
// type (f32, or f16 with `enable f16;` and the `shader-f16` feature). Values
// are converted to f32 for the arithmetic and rounded to `elem` on store; for
// f32 the conversions are the identity. wgpu buffer sizes are multiples of 4
// bytes, so an odd-length f16 tensor lives in a buffer padded by 2 bytes.
// bf16 is covered by the native (PTX / hsaco) artifacts only. `kernelhub
// check` validates the output.
// Bindings follow the kernelhub convention (docs/formats.md): the op's tensors
// in parameter order at @group(0) @binding(0..), `read_write` for written
// ones, then the scalar parameters as one uniform struct.

// In place: for each token t (p = positions[t]) and each query / key head,
// the pair (x, y) becomes (x * c - y * s, y * c + x * s) with
// c = cos_sin_cache[p, r], s = cos_sin_cache[p, rot_dim / 2 + r], r < rot_dim / 2.
// NeoX pairs (r, r + rot_dim / 2), GPT-J pairs (2 r, 2 r + 1). Only the first
// rot_dim elements of a head rotate. Tokens with positions[t] >= max_position
// are left unchanged, and so is everything when rot_dim > head_size.
//
// Launch (see kernel.toml): @workgroup_size(256), a 2-D grid of
// [min(ceil_div((num_heads + num_kv_heads) * (rot_dim / 2), 256), 65535),
//  min(tokens, 65535)] workgroups. Workgroup (x, y) takes tokens y,
// y + num_workgroups.y, ...; in each it reads the position once and its
// invocations stride over the token's (head, pair) items x * 256 + lid,
// + num_workgroups.x * 256, ... (pair index fastest, so a NeoX head's loads
// and stores are contiguous across invocations; one integer division per
// item). Entry points: rotary_neox, rotary_gptj (same bindings).

struct Params {
    tokens: u32,
    num_heads: u32,
    num_kv_heads: u32,
    head_size: u32,
    rot_dim: u32,
    max_position: u32,
}

@group(0) @binding(0) var<storage, read> positions: array<u32>;           // [tokens]
@group(0) @binding(1) var<storage, read_write> query: array<elem>;        // [tokens, num_heads * head_size]
@group(0) @binding(2) var<storage, read_write> key: array<elem>;          // [tokens, num_kv_heads * head_size]
@group(0) @binding(3) var<storage, read> cos_sin_cache: array<elem>;      // [max_position, rot_dim]
@group(0) @binding(4) var<uniform> params: Params;

fn rotary(lid: u32, wid: vec3<u32>, nwg: vec3<u32>, neox: bool) {
    let half = params.rot_dim / 2u;
    if (params.rot_dim > params.head_size) {
        return;
    }
    let n = (params.num_heads + params.num_kv_heads) * half; // items per token
    let q_row = params.num_heads * params.head_size;
    let k_row = params.num_kv_heads * params.head_size;
    for (var t = wid.y; t < params.tokens; t += nwg.y) {
        let pos = positions[t];
        if (pos >= params.max_position) {
            continue;
        }
        let cache = pos * params.rot_dim;
        for (var i = wid.x * 256u + lid; i < n; i += nwg.x * 256u) {
            let h = i / half; // query heads first, then key heads
            let r = i - h * half;
            let c = f32(cos_sin_cache[cache + r]);
            let s = f32(cos_sin_cache[cache + half + r]);
            let xi = select(2u * r, r, neox);
            let yi = select(2u * r + 1u, r + half, neox);
            if (h < params.num_heads) {
                let b = t * q_row + h * params.head_size;
                let x = f32(query[b + xi]);
                let y = f32(query[b + yi]);
                query[b + xi] = elem(x * c - y * s);
                query[b + yi] = elem(y * c + x * s);
            } else {
                let b = t * k_row + (h - params.num_heads) * params.head_size;
                let x = f32(key[b + xi]);
                let y = f32(key[b + yi]);
                key[b + xi] = elem(x * c - y * s);
                key[b + yi] = elem(y * c + x * s);
            }
        }
    }
}

@compute @workgroup_size(256)
fn rotary_neox(@builtin(local_invocation_index) lid: u32,
               @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    rotary(lid, wid, nwg, true);
}

@compute @workgroup_size(256)
fn rotary_gptj(@builtin(local_invocation_index) lid: u32,
               @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    rotary(lid, wid, nwg, false);
}
