// Tessera path tracer: one megakernel, one invocation per pixel of a tile row band, looping over
// a few samples per dispatch and adding them, in sample order, into its own accumulator slot.
//
// Conventions (docs/renderer.md):
// - glTF 2.0 metallic-roughness BRDF (spec Appendix B), single-scatter GGX, height-correlated
//   Smith, Schlick Fresnel; mirror of src/bsdf.rs.
// - "B bounces": vertices 0..B (0 = camera hit) sample lights (NEE) and the BSDF; the BSDF ray
//   of vertex B only collects emission/background. Emission found by BSDF rays is MIS-weighted
//   (power heuristic) against NEE; the constant background is found by BSDF rays only. An
//   environment map is a light like the others: sampled by NEE (src/environment.rs) and MIS
//   weighted when a BSDF ray escapes to it.
// - Randomness depends only on (seed, frame, pixel, sample, dimension): Owen-scrambled Sobol
//   (sample1 / sample2) or PCG streams; see pixel_key / src/sampling.rs.
// - No atomics: each invocation owns its pixel, so sums do not depend on scheduling.

struct Params {
    cam_pos: vec4f,      // w: tan(yfov / 2)
    cam_right: vec4f,    // w: aspect (width / height)
    cam_up: vec4f,
    cam_fwd: vec4f,
    background: vec4f,
    image: vec4u,        // image width, image height, tile x, tile y
    tile: vec4u,         // tile width, tile height, first row of this dispatch, rows in it
    samples: vec4u,      // first sample, samples in this dispatch, max bounces, accumulator row stride
    seed: vec4u,         // seed lo, seed hi, frame lo, frame hi
    counts: vec4u,       // lights, triangles, accumulate (0: overwrite), sample stride
}

struct Node {
    bmin: vec3f,
    left_or_first: u32,
    bmax: vec3f,
    count: u32,
}

struct TriPos {
    v0: vec4f,
    e1: vec4f,
    e2: vec4f,
}

struct TriAttr {
    n0: vec4f,       // xyz: vertex normal, w: u0
    n1: vec4f,       // w: u1
    n2: vec4f,       // w: u2
    v: vec4f,        // v0, v1, v2, light selection probability (0: not an emitter)
    tangent: vec4f,  // per-triangle tangent, w: bitangent sign
    material: u32,
    flags: u32,      // bit 0: has vertex normals; bit 1: TEXCOORD_1 or COLOR_0 in tri_extra[extra]
    extra: u32,
    object: u32,     // 1 + the glTF node of its mesh instance (object ID pass)
}

// Read by every shading point of its triangle, so kept to two loads there: COLOR_0 as
// 16-bit unorm pairs (rg, ba of vertex 0, rg, ba of vertex 1; of vertex 2, then 0, 0).
// TEXCOORD_1 is read only by a texture that uses it.
struct TriExtra {
    colors01: vec4u,
    colors2: vec4u,
    uv1_u: vec4f,    // TEXCOORD_1 u of the three vertices
    uv1_v: vec4f,
}

// KHR_texture_transform of a texture header: (dot(row0.xyz, (u, v, 1)), dot(row1.xyz, (u, v, 1))).
struct UvMap {
    row0: vec4f,
    row1: vec4f,
}

struct Material {
    base_color: vec4f,
    emissive: vec4f,        // w: 1 when double-sided
    params: vec4f,          // metallic, roughness, specular, normal scale
    specular_color: vec4f,  // w: alpha cutoff (MASK), -1 opaque, -2 BLEND
    textures: vec4i,        // headers of base colour, metallic-roughness, emissive, normal; -1: none
    transmission: vec4f,    // factor, ior, 1 when a volume (refracts), F0 of the ior
    absorption: vec4f,      // volume's absorption per unit length, w: transmission texture header
}

struct Light {
    kind: u32,              // 0: emissive triangle, 1: point, 2: spot, 3: directional
    index: u32,             // triangle index (kind 0)
    select_pdf: f32,
    cdf: f32,               // inclusive cumulative selection probability
    position: vec4f,
    direction: vec4f,       // w: cos inner cone
    intensity: vec4f,       // w: cos outer cone
}

@group(0) @binding(0) var<storage, read> nodes: array<Node>;
@group(0) @binding(1) var<storage, read> tri_pos: array<TriPos>;
@group(0) @binding(2) var<storage, read> tri_attr: array<TriAttr>;
@group(0) @binding(3) var<storage, read> materials: array<Material>;
@group(0) @binding(4) var<storage, read> lights: array<Light>;
// Header of 4 words per texture (texel offset, width, height, flags: wrap s bits 0-3, wrap t
// 4-7, nearest 8, TEXCOORD_1 9, uv map + 1 in 16-31), then texels as packed RGBA8. A texture
// read another way than TEXCOORD_0 as it is has a header of its own (src/gpu/layout.rs).
@group(0) @binding(5) var<storage, read> textures: array<u32>;
// False for scenes without vertex colours, TEXCOORD_1 or texture transforms: their code is
// compiled out (src/gpu/mod.rs says why).
override SCENE_EXTRAS: bool = true;
// False for scenes without a transmissive material: the glass code is compiled out.
override SCENE_TRANSMISSION: bool = true;

@group(0) @binding(6) var<storage, read> uv_maps: array<UvMap>;
@group(0) @binding(7) var<storage, read> tri_extra: array<TriExtra>;
// The compressed 8-wide BVH (src/wide_bvh.rs WideNode), 5 vec4u a node: origin.xyz and
// (exponents, inner mask) bytes; child base, triangle base, meta bytes; then the quantised
// child planes lo_x, lo_y, lo_z, hi_x, hi_y, hi_z (8 bytes each). One placeholder node when
// the scene uses the binary tree (`nodes`).
@group(0) @binding(8) var<storage, read> wide_nodes: array<vec4u>;
// Which tree the scene has (src/gpu/mod.rs bvh_layout_from).
override BVH_WIDE: bool = false;
// A storage buffer, not a uniform: lavapipe (Mesa 22.3) inlines uniform and push-constant
// values into a freshly compiled shader variant on every pipeline bind, i.e. per dispatch
// (≈ 14 ms and ≈ 2.3 MB kept each; docs/renderer.md, Profile); storage loads are not inlined.
@group(1) @binding(0) var<storage, read> params: Params;
@group(1) @binding(1) var<storage, read_write> accum: array<vec4f>;
// Compositing passes, 3 per pixel slot: (Σ normal, depth of sample 0), (Σ albedo, object of
// sample 0), (material of sample 0, 0, 0, 0). A placeholder when the render asks for none.
@group(1) @binding(2) var<storage, read_write> aov: array<vec4f>;
// False when no compositing pass is written: that code is compiled out.
override SCENE_AOVS: bool = true;
// The environment map (src/environment.rs Environment::pack): 8 header words (width, height,
// cos and sin of the rotation, 1 when sampleable), RGB texels, the row CDF, the column CDFs.
@group(2) @binding(0) var<storage, read> env: array<f32>;
// False without an environment map: the constant background instead, its code compiled out.
override SCENE_ENVIRONMENT: bool = true;

const PI: f32 = 3.14159265358979;
const INF: f32 = 3.0e38;
const NO_HIT: u32 = 0xffffffffu;
// The BVH builder caps the depth at 31 (src/bvh.rs MAX_DEPTH); we push at most one node per level.
const STACK_SIZE: u32 = 32u;
const RR_START: u32 = 3u;

// ---------------------------------------------------------------- random numbers (src/sampling.rs)

fn pcg_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// The hash of a pixel's samples (src/sampling.rs pixel_key).
fn pixel_key(x: u32, y: u32) -> u32 {
    var h = pcg_hash(params.seed.x);
    h = pcg_hash(h ^ params.seed.y);
    h = pcg_hash(h ^ params.seed.z);
    h = pcg_hash(h ^ params.seed.w);
    h = pcg_hash(h ^ x);
    return pcg_hash(h ^ y);
}

fn path_seed(x: u32, y: u32, s: u32) -> u32 {
    return pcg_hash(pixel_key(x, y) ^ s);
}

var<private> rng_state: u32;

// The path's samples come from Owen-scrambled Sobol (true; src/sampling.rs Sobol, which this
// mirrors bit for bit) or from its PCG stream (false: `rand()` in a fixed order).
override SAMPLER_SOBOL: bool = true;
var<private> sobol_key: u32;
var<private> sobol_index: u32;
var<private> sobol_dimension: u32;

// Laine–Karras hash as tuned by Burley (JCGT 2020): output bits depend only on the same and
// lower input bits, so on bit-reversed values it is an Owen scramble.
fn lk_hash(x_in: u32, seed: u32) -> u32 {
    var x = x_in + seed;
    x ^= x * 0x6c50b47cu;
    x ^= x * 0xb82f1e52u;
    x ^= x * 0xc7afe638u;
    x ^= x * 0x8d22f6e6u;
    return x;
}

fn owen_scramble(x: u32, seed: u32) -> u32 {
    return reverseBits(lk_hash(reverseBits(x), seed));
}

// Sobol's second dimension without a loop (src/sampling.rs sobol_second).
fn sobol_second(index: u32) -> u32 {
    var a = index;
    a ^= (a >> 1u) & 0x55555555u;
    a ^= (a >> 2u) & 0x33333333u;
    a ^= (a >> 4u) & 0x0f0f0f0fu;
    a ^= (a >> 8u) & 0x00ff00ffu;
    a ^= (a >> 16u) & 0x0000ffffu;
    return reverseBits(a);
}

fn unit_float(x: u32) -> f32 {
    return f32(x >> 8u) * (1.0 / 16777216.0);
}

// The next draw's (seed, shuffled sample index).
fn sobol_next() -> vec2u {
    let seed = pcg_hash(sobol_key ^ pcg_hash(sobol_dimension));
    sobol_dimension += 1u;
    return vec2u(seed, owen_scramble(sobol_index, seed));
}

// One number of the path's next dimension.
fn sample1() -> f32 {
    if (SAMPLER_SOBOL) {
        let n = sobol_next();
        return unit_float(owen_scramble(reverseBits(n.y), pcg_hash(n.x ^ 0x9e3779b9u)));
    }
    return rand();
}

// Two numbers of the path's next dimension, stratified together.
fn sample2() -> vec2f {
    if (SAMPLER_SOBOL) {
        let n = sobol_next();
        return vec2f(unit_float(owen_scramble(reverseBits(n.y), pcg_hash(n.x ^ 0x9e3779b9u))),
                     unit_float(owen_scramble(sobol_second(n.y), pcg_hash(n.x ^ 0x85ebca6bu))));
    }
    let a = rand();
    let b = rand();
    return vec2f(a, b);
}

fn rand() -> f32 {
    rng_state = rng_state * 747796405u + 2891336453u;
    let s = rng_state;
    let word = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
    return f32(((word >> 22u) ^ word) >> 8u) * (1.0 / 16777216.0);
}

// ---------------------------------------------------------------- sampling helpers

fn basis(n: vec3f) -> mat3x3f {
    let sign = select(-1.0, 1.0, n.z >= 0.0);
    let a = -1.0 / (sign + n.z);
    let b = n.x * n.y * a;
    let t = vec3f(1.0 + sign * n.x * n.x * a, sign * b, -sign * n.x);
    let bt = vec3f(b, sign + n.y * n.y * a, -n.y);
    return mat3x3f(t, bt, n);
}

fn cosine_hemisphere(u1: f32, u2: f32) -> vec3f {
    let r = sqrt(u1);
    let phi = 2.0 * PI * u2;
    return vec3f(r * cos(phi), r * sin(phi), sqrt(max(0.0, 1.0 - u1)));
}

fn power_heuristic(a: f32, b: f32) -> f32 {
    let a2 = a * a;
    let b2 = b * b;
    if (a2 + b2 <= 0.0) {
        return 0.0;
    }
    return a2 / (a2 + b2);
}

// (1 - c)^5 by multiplication: pow() lowers to exp/log on CPUs (lavapipe).
fn schlick_weight(c: f32) -> f32 {
    let m = clamp(1.0 - c, 0.0, 1.0);
    let m2 = m * m;
    return m2 * m2 * m;
}

fn max3(v: vec3f) -> f32 {
    return max(v.x, max(v.y, v.z));
}

fn luminance(c: vec3f) -> f32 {
    return dot(c, vec3f(0.2126, 0.7152, 0.0722));
}

// ---------------------------------------------------------------- textures

fn wrap_coord(c: i32, size: i32, mode: u32) -> i32 {
    if (mode == 1u) {
        return clamp(c, 0, size - 1);
    }
    if (mode == 2u) {
        let period = 2 * size;
        var m = c % period;
        if (m < 0) {
            m += period;
        }
        return select(m, period - 1 - m, m >= size);
    }
    var m = c % size;
    if (m < 0) {
        m += size;
    }
    return m;
}

fn srgb_to_linear(c: vec3f) -> vec3f {
    let lo = c / 12.92;
    let hi = pow((c + 0.055) / 1.055, vec3f(2.4));
    return select(hi, lo, c <= vec3f(0.04045));
}

fn texel(offset: u32, w: i32, x: i32, y: i32, srgb: bool) -> vec4f {
    let v = unpack4x8unorm(textures[offset + u32(y * w + x)]);
    if (srgb) {
        return vec4f(srgb_to_linear(v.xyz), v.w);
    }
    return v;
}

// The coordinates a texture header reads: TEXCOORD_0 or _1, through its uv map if any.
fn header_uv(flags: u32, v: VertexData) -> vec2f {
    var uv = v.uv0;
    if ((flags & 512u) != 0u && v.extra != 0u) {
        let b = vec3f(1.0 - v.bary.x - v.bary.y, v.bary);
        uv = vec2f(dot(tri_extra[v.extra - 1u].uv1_u.xyz, b), dot(tri_extra[v.extra - 1u].uv1_v.xyz, b));
    }
    let map = flags >> 16u;
    if (map == 0u) {
        return uv;
    }
    let m = uv_maps[map - 1u];
    let h = vec3f(uv, 1.0);
    return vec2f(dot(m.row0.xyz, h), dot(m.row1.xyz, h));
}

// Bilinear (or nearest) lookup with the sampler's wrap modes; sRGB decoded per texel.
fn sample_texture(index: i32, v: VertexData, srgb: bool) -> vec4f {
    if (index < 0) {
        return vec4f(1.0);
    }
    let h = u32(index) * 4u;
    let offset = textures[h];
    let w = i32(textures[h + 1u]);
    let ht = i32(textures[h + 2u]);
    let flags = textures[h + 3u];
    var uv = v.uv0;
    if (SCENE_EXTRAS && flags >= 512u) {
        uv = header_uv(flags, v);
    }
    let wrap_s = flags & 15u;
    let wrap_t = (flags >> 4u) & 15u;
    if (((flags >> 8u) & 1u) == 1u) {
        let x = wrap_coord(i32(floor(uv.x * f32(w))), w, wrap_s);
        let y = wrap_coord(i32(floor(uv.y * f32(ht))), ht, wrap_t);
        return texel(offset, w, x, y, srgb);
    }
    let p = uv * vec2f(f32(w), f32(ht)) - 0.5;
    let f = fract(p);
    let x0 = i32(floor(p.x));
    let y0 = i32(floor(p.y));
    let xa = wrap_coord(x0, w, wrap_s);
    let xb = wrap_coord(x0 + 1, w, wrap_s);
    let ya = wrap_coord(y0, ht, wrap_t);
    let yb = wrap_coord(y0 + 1, ht, wrap_t);
    let top = mix(texel(offset, w, xa, ya, srgb), texel(offset, w, xb, ya, srgb), f.x);
    let bottom = mix(texel(offset, w, xa, yb, srgb), texel(offset, w, xb, yb, srgb), f.x);
    return mix(top, bottom, f.y);
}

// ---------------------------------------------------------------- intersection

struct Hit {
    t: f32,
    tri: u32,
    u: f32,
    v: f32,
}

fn safe_inverse(d: vec3f) -> vec3f {
    let tiny = 1e-30;
    return vec3f(
        select(1.0 / d.x, select(-1e30, 1e30, d.x >= 0.0), abs(d.x) < tiny),
        select(1.0 / d.y, select(-1e30, 1e30, d.y >= 0.0), abs(d.y) < tiny),
        select(1.0 / d.z, select(-1e30, 1e30, d.z >= 0.0), abs(d.z) < tiny),
    );
}

// Entry distance of the ray into the node's box, or INF when it misses within tmax.
fn box_entry(i: u32, o: vec3f, inv: vec3f, tmax: f32) -> f32 {
    let n = nodes[i];
    let a = (n.bmin - o) * inv;
    let b = (n.bmax - o) * inv;
    let t0 = max(max3(min(a, b)), 0.0);
    let t1 = min(min(max(a, b).x, max(a, b).y), min(max(a, b).z, tmax));
    return select(INF, t0, t0 <= t1);
}

// Set by each trace() from the path's random state without advancing it: BLEND decisions of
// one ray, one per triangle, whatever order traversal meets the triangles in.
var<private> alpha_seed: u32;

// alpha = factor × base-colour texture alpha × vertex colour alpha at the hit. MASK: against
// the cutoff (specular_color.w). BLEND (w = -2): seen with probability alpha.
fn alpha_passes(i: u32, b1: f32, b2: f32) -> bool {
    let at = tri_attr[i];
    let m = materials[at.material];
    let v = vertex_data(at, 1.0 - b1 - b2, b1, b2);
    let alpha = m.base_color.w * sample_texture(m.textures.x, v, false).w * v.color.w;
    if (m.specular_color.w < -1.5) {
        let u = f32(pcg_hash(alpha_seed ^ pcg_hash(i)) >> 8u) * (1.0 / 16777216.0);
        return alpha > u;
    }
    return alpha >= m.specular_color.w;
}

// Möller–Trumbore, two-sided; mirrors src/bvh.rs intersect_triangle.
fn hit_triangle(i: u32, o: vec3f, d: vec3f, tmax: f32, hit: ptr<function, Hit>) -> bool {
    let tri = tri_pos[i];
    let e1 = tri.e1.xyz;
    let e2 = tri.e2.xyz;
    let p = cross(d, e2);
    let det = dot(e1, p);
    if (abs(det) < 1e-12) {
        return false;
    }
    let inv = 1.0 / det;
    let s = o - tri.v0.xyz;
    let u = dot(s, p) * inv;
    if (u < 0.0 || u > 1.0) {
        return false;
    }
    let q = cross(s, e1);
    let v = dot(d, q) * inv;
    if (v < 0.0 || u + v > 1.0) {
        return false;
    }
    let t = dot(e2, q) * inv;
    if (t <= 0.0 || t >= tmax) {
        return false;
    }
    if (tri.v0.w != 0.0 && !alpha_passes(i, u, v)) {
        return false;
    }
    (*hit).t = t;
    (*hit).tri = i;
    (*hit).u = u;
    (*hit).v = v;
    return true;
}

// Nearest hit (any_hit = false) or any hit (shadow rays) closer than tmax, in the scene's
// tree (BVH_WIDE: trace_wide, else trace_binary).
fn trace(o: vec3f, d: vec3f, tmax: f32, any_hit: bool) -> Hit {
    return trace_seeded(o, d, tmax, any_hit, ray_alpha_seed());
}

// The seed of a ray's BLEND decisions: from the path's random state when the ray is made.
fn ray_alpha_seed() -> u32 {
    return pcg_hash(rng_state ^ 0x6a09e667u);
}

// trace() with the BLEND seed given (a shadow ray traced after its path moved on).
fn trace_seeded(o: vec3f, d: vec3f, tmax: f32, any_hit: bool, seed: u32) -> Hit {
    alpha_seed = seed;
    if (params.counts.y == 0u) {
        return Hit(tmax, NO_HIT, 0.0, 0.0);
    }
    if (BVH_WIDE) {
        return trace_wide(o, d, tmax, any_hit);
    }
    return trace_binary(o, d, tmax, any_hit);
}

// trace() on the binary tree; mirrors src/bvh.rs Bvh::trace: nearest child first, the far one
// pushed with its entry distance; popped nodes farther than the current hit are skipped.
fn trace_binary(o: vec3f, d: vec3f, tmax: f32, any_hit: bool) -> Hit {
    var hit = Hit(tmax, NO_HIT, 0.0, 0.0);
    let inv = safe_inverse(d);
    var stack: array<u32, 32>;
    var dist: array<f32, 32>;
    var sp = 0u;
    if (box_entry(0u, o, inv, hit.t) >= INF) {
        return hit;
    }
    var node = 0u;
    loop {
        let n = nodes[node];
        if (n.count > 0u) {
            for (var k = n.left_or_first; k < n.left_or_first + n.count; k++) {
                if (hit_triangle(k, o, d, hit.t, &hit) && any_hit) {
                    return hit;
                }
            }
        } else {
            var near = n.left_or_first;
            var far = near + 1u;
            var d_near = box_entry(near, o, inv, hit.t);
            var d_far = box_entry(far, o, inv, hit.t);
            if (d_far < d_near) {
                let tn = near;
                near = far;
                far = tn;
                let td = d_near;
                d_near = d_far;
                d_far = td;
            }
            if (d_near < INF) {
                if (d_far < INF && sp < STACK_SIZE) {
                    stack[sp] = far;
                    dist[sp] = d_far;
                    sp += 1u;
                }
                node = near;
                continue;
            }
        }
        // Pop the next node still closer than the current hit.
        var found = false;
        while (sp > 0u) {
            sp -= 1u;
            if (dist[sp] < hit.t) {
                node = stack[sp];
                found = true;
                break;
            }
        }
        if (!found) {
            break;
        }
    }
    return hit;
}

// Byte `slot` (0-7) of the 8 bytes held by two words.
fn byte8(lo: u32, hi: u32, slot: u32) -> u32 {
    return (select(lo, hi, slot >= 4u) >> ((slot & 3u) * 8u)) & 0xffu;
}

// Child `slot`'s contribution to the hit mask of a wide node (n1-n4: its words 1-4; the ray
// in the node's grid: t = q * scale + shift); mirrors src/wide_bvh.rs WideNode::intersect:
// inner children set bit 24 + slot XOR the ray's octant (nearest highest), leaf children
// their triangles' bits 0-23.
fn wide_child(slot: u32, n1: vec4u, n2: vec4u, n3: vec4u, n4: vec4u, scale: vec3f, shift: vec3f,
              oct_inv4: u32, tmax: f32) -> u32 {
    let info = byte8(n1.z, n1.w, slot);
    let lo = vec3f(f32(byte8(n2.x, n2.y, slot)), f32(byte8(n2.z, n2.w, slot)), f32(byte8(n3.x, n3.y, slot)));
    let hi = vec3f(f32(byte8(n3.z, n3.w, slot)), f32(byte8(n4.x, n4.y, slot)), f32(byte8(n4.z, n4.w, slot)));
    let t_lo = lo * scale + shift;
    let t_hi = hi * scale + shift;
    let near = max(max3(min(t_lo, t_hi)), 0.0);
    let t_far = max(t_lo, t_hi);
    let far = min(min(t_far.x, t_far.y), min(t_far.z, tmax));
    // An empty slot (info 0) sets no bit.
    let inner = (info & 0x18u) == 0x18u;
    let index = select(info & 31u, (info ^ (oct_inv4 & 7u)) & 31u, inner);
    return select(0u, (info >> 5u) << index, near <= far);
}

// The hit mask of the ray against wide node `i`'s eight children. Written out slot by slot,
// not as a loop: llvmpipe counts every loop iteration of an invocation against one budget
// (src/gpu/mod.rs cpu_samples_per_dispatch), and a loop of 8 per node would spend it 8 times
// as fast as the binary traversal's steps.
fn wide_hits(i: u32, o: vec3f, inv: vec3f, oct_inv4: u32, tmax: f32) -> u32 {
    let n0 = wide_nodes[i * 5u];
    let n1 = wide_nodes[i * 5u + 1u];
    let n2 = wide_nodes[i * 5u + 2u];
    let n3 = wide_nodes[i * 5u + 3u];
    let n4 = wide_nodes[i * 5u + 4u];
    let exponent = vec3u(n0.w & 0xffu, (n0.w >> 8u) & 0xffu, (n0.w >> 16u) & 0xffu);
    let scale = bitcast<vec3f>(exponent << vec3u(23u)) * inv;
    let shift = (bitcast<vec3f>(n0.xyz) - o) * inv;
    return wide_child(0u, n1, n2, n3, n4, scale, shift, oct_inv4, tmax)
        | wide_child(1u, n1, n2, n3, n4, scale, shift, oct_inv4, tmax)
        | wide_child(2u, n1, n2, n3, n4, scale, shift, oct_inv4, tmax)
        | wide_child(3u, n1, n2, n3, n4, scale, shift, oct_inv4, tmax)
        | wide_child(4u, n1, n2, n3, n4, scale, shift, oct_inv4, tmax)
        | wide_child(5u, n1, n2, n3, n4, scale, shift, oct_inv4, tmax)
        | wide_child(6u, n1, n2, n3, n4, scale, shift, oct_inv4, tmax)
        | wide_child(7u, n1, n2, n3, n4, scale, shift, oct_inv4, tmax);
}

// trace() on the wide tree; mirrors src/wide_bvh.rs WideBvh::trace (Ylitie et al. 2017): a
// node group is (first inner child, hit bits 24-31 | the parent's inner mask); the nearest
// hit child of the current group is visited, the rest of the group pushed, then the
// triangles its leaf children hit are tested (the inner loop), until no group is left.
fn trace_wide(o: vec3f, d: vec3f, tmax: f32, any_hit: bool) -> Hit {
    var hit = Hit(tmax, NO_HIT, 0.0, 0.0);
    let inv = safe_inverse(d);
    let oct_inv4 = select(0u, 0x04040404u, d.x >= 0.0) | select(0u, 0x02020202u, d.y >= 0.0)
        | select(0u, 0x01010101u, d.z >= 0.0);
    var stack: array<vec2u, 32>;
    var sp = 0u;
    // The root, as the only inner child (slot 7) of a virtual parent.
    var group = vec2u(0u, 0x80000000u);
    loop {
        let hits = group.y;
        let bit = firstLeadingBit(hits);
        group.y &= ~(1u << bit);
        if ((group.y & 0xff000000u) != 0u && sp < STACK_SIZE) {
            stack[sp] = group;
            sp += 1u;
        }
        let slot = (bit - 24u) ^ (oct_inv4 & 0xffu);
        let node = group.x + countOneBits(hits & 0xffu & ~(0xffffffffu << slot));
        let mask = wide_hits(node, o, inv, oct_inv4, hit.t);
        let first = wide_nodes[node * 5u + 1u].xy;
        group = vec2u(first.x, (mask & 0xff000000u) | (wide_nodes[node * 5u].w >> 24u));
        var triangles = mask & 0x00ffffffu;
        while (triangles != 0u) {
            let b = firstLeadingBit(triangles);
            triangles &= ~(1u << b);
            if (hit_triangle(first.y + b, o, d, hit.t, &hit) && any_hit) {
                return hit;
            }
        }
        if ((group.y & 0xff000000u) == 0u) {
            if (sp == 0u) {
                break;
            }
            sp -= 1u;
            group = stack[sp];
        }
    }
    return hit;
}

// ---------------------------------------------------------------- BSDF (mirror of src/bsdf.rs)

struct Surface {
    base: vec3f,
    metallic: f32,
    roughness: f32,
    specular: f32,
    specular_color: vec3f,
    f0: f32,                // of the ior
    ior: f32,
    transmission: f32,
    thin: bool,
    entering: bool,         // the ray arrives at the front face
}

fn ggx_alpha(roughness: f32) -> f32 {
    return max(roughness * roughness, 1e-3);
}

fn ggx_d(n_dot_h: f32, a: f32) -> f32 {
    let a2 = a * a;
    let d = n_dot_h * n_dot_h * (a2 - 1.0) + 1.0;
    return a2 / (PI * d * d);
}

fn smith_visibility(n_dot_l: f32, n_dot_v: f32, a: f32) -> f32 {
    let a2 = a * a;
    let gv = n_dot_l * sqrt(n_dot_v * n_dot_v * (1.0 - a2) + a2);
    let gl = n_dot_v * sqrt(n_dot_l * n_dot_l * (1.0 - a2) + a2);
    let denom = gv + gl;
    return select(0.0, 0.5 / denom, denom > 0.0);
}

fn smith_g1(n_dot_v: f32, a: f32) -> f32 {
    let a2 = a * a;
    return 2.0 * n_dot_v / (n_dot_v + sqrt(a2 + (1.0 - a2) * n_dot_v * n_dot_v));
}

fn dielectric_f0(s: Surface) -> vec3f {
    return min(s.specular_color * s.f0, vec3f(1.0)) * s.specular;
}

fn specular_probability(s: Surface, n_dot_v: f32) -> f32 {
    let f0 = max3(dielectric_f0(s));
    let fresnel = f0 + (s.specular - f0) * schlick_weight(n_dot_v);
    let spec = s.metallic + (1.0 - s.metallic) * fresnel;
    let diff = (1.0 - s.metallic) * luminance(s.base) * (1.0 - fresnel);
    if (spec + diff <= 0.0) {
        return 0.0;
    }
    return clamp(spec / (spec + diff), 0.0, 1.0);
}

fn bsdf_eval(s: Surface, wo: vec3f, wi: vec3f) -> vec3f {
    if (SCENE_TRANSMISSION && s.transmission > 0.0) {
        return glass_eval(s, wo, wi);
    }
    if (wo.z <= 0.0 || wi.z <= 0.0) {
        return vec3f(0.0);
    }
    let hs = wo + wi;
    if (dot(hs, hs) <= 1e-20) {
        return vec3f(0.0);
    }
    let h = normalize(hs);
    let a = ggx_alpha(s.roughness);
    let v_dot_h = clamp(dot(wo, h), 0.0, 1.0);
    let spec = ggx_d(h.z, a) * smith_visibility(wi.z, wo.z, a);
    let fw = schlick_weight(v_dot_h);
    let metal_f = s.base + (vec3f(1.0) - s.base) * fw;
    let f0 = dielectric_f0(s);
    let diel_f = f0 + (vec3f(s.specular) - f0) * fw;
    let dielectric = diel_f * spec + s.base / PI * (1.0 - max3(diel_f));
    let metal = metal_f * spec;
    return dielectric * (1.0 - s.metallic) + metal * s.metallic;
}

fn bsdf_pdf(s: Surface, wo: vec3f, wi: vec3f) -> f32 {
    if (SCENE_TRANSMISSION && s.transmission > 0.0) {
        return glass_pdf(s, wo, wi);
    }
    if (wo.z <= 0.0 || wi.z <= 0.0) {
        return 0.0;
    }
    let ps = specular_probability(s, wo.z);
    let a = ggx_alpha(s.roughness);
    let hs = wo + wi;
    var spec_pdf = 0.0;
    if (dot(hs, hs) > 1e-20) {
        let h = normalize(hs);
        spec_pdf = ggx_d(h.z, a) * smith_g1(wo.z, a) / (4.0 * wo.z);
    }
    return ps * spec_pdf + (1.0 - ps) * wi.z / PI;
}

fn sample_vndf(wo: vec3f, a: f32, u1: f32, u2: f32) -> vec3f {
    let vh = normalize(vec3f(a * wo.x, a * wo.y, wo.z));
    let lensq = vh.x * vh.x + vh.y * vh.y;
    var t1 = vec3f(1.0, 0.0, 0.0);
    if (lensq > 0.0) {
        t1 = vec3f(-vh.y, vh.x, 0.0) / sqrt(lensq);
    }
    let t2v = cross(vh, t1);
    let r = sqrt(u1);
    let phi = 2.0 * PI * u2;
    let t1s = r * cos(phi);
    var t2s = r * sin(phi);
    let sv = 0.5 * (1.0 + vh.z);
    t2s = (1.0 - sv) * sqrt(max(0.0, 1.0 - t1s * t1s)) + sv * t2s;
    let nh = t1 * t1s + t2v * t2s + vh * sqrt(max(0.0, 1.0 - t1s * t1s - t2s * t2s));
    return normalize(vec3f(a * nh.x, a * nh.y, max(nh.z, 1e-6)));
}

// ---------------------------------------------------------------- transmission (mirror of src/bsdf/transmissive.rs)

fn fresnel_dielectric(cos_i_in: f32, eta: f32) -> f32 {
    let cos_i = clamp(cos_i_in, 0.0, 1.0);
    let sin2_t = (1.0 - cos_i * cos_i) / (eta * eta);
    if (sin2_t >= 1.0) {
        return 1.0;
    }
    let cos_t = sqrt(1.0 - sin2_t);
    let rs = (cos_i - eta * cos_t) / (cos_i + eta * cos_t);
    let rp = (eta * cos_i - cos_t) / (eta * cos_i + cos_t);
    return 0.5 * (rs * rs + rp * rp);
}

fn glass_eta(s: Surface) -> f32 {
    return select(1.0 / s.ior, s.ior, s.thin || s.entering);
}

// Transmission goes straight on: thin-walled, or an IOR of 1 (no refraction half vector).
fn passes_straight(s: Surface) -> bool {
    return s.thin || abs(s.ior - 1.0) < 1e-3;
}

// wo refracted through the microfacet h; z = 2 (not a direction) on total internal reflection.
fn refract_dir(wo: vec3f, h: vec3f, eta: f32) -> vec3f {
    let cos_i = dot(wo, h);
    let sin2_t = max(0.0, 1.0 - cos_i * cos_i) / (eta * eta);
    if (sin2_t >= 1.0) {
        return vec3f(0.0, 0.0, 2.0);
    }
    let cos_t = sqrt(1.0 - sin2_t);
    return -wo / eta + h * (cos_i / eta - cos_t);
}

// Probabilities of the metal, the dielectric's microfacets (reflecting or transmitting, by
// glass_reflect_share of the microfacet sampled) and the diffuse lobe.
fn glass_lobes(s: Surface, wo_z: f32) -> vec3f {
    let f = s.specular * fresnel_dielectric(wo_z, glass_eta(s));
    let dielectric = 1.0 - s.metallic;
    let base = luminance(s.base);
    let w = vec3f(s.metallic, dielectric * (f + (1.0 - f) * s.transmission * base),
        dielectric * (1.0 - f) * (1.0 - s.transmission) * base);
    let sum = w.x + w.y + w.z;
    if (sum <= 0.0) {
        return vec3f(0.0);
    }
    return w / sum;
}

// Of the microfacet lobe, the share that reflects off microfacet h.
fn glass_reflect_share(s: Surface, wo: vec3f, h: vec3f) -> f32 {
    let f = s.specular * fresnel_dielectric(dot(wo, h), glass_eta(s));
    let t = (1.0 - f) * s.transmission * luminance(s.base);
    return select(f / (f + t), 1.0, f + t <= 0.0);
}

// The half vector of a refraction from wo to wi, facing wo's side; w = 0 when the pair cannot
// refract through it.
fn refraction_half(wo: vec3f, wi: vec3f, eta: f32) -> vec4f {
    let hs = wo + wi * eta;
    if (dot(hs, hs) <= 1e-20) {
        return vec4f(0.0);
    }
    var h = normalize(hs);
    if (h.z < 0.0) {
        h = -h;
    }
    return vec4f(h, select(0.0, 1.0, dot(wo, h) > 0.0 && dot(wi, h) < 0.0));
}

fn glass_eval(s: Surface, wo: vec3f, wi: vec3f) -> vec3f {
    if (wo.z <= 0.0 || wi.z == 0.0) {
        return vec3f(0.0);
    }
    let a = ggx_alpha(s.roughness);
    let eta = glass_eta(s);
    let dielectric = 1.0 - s.metallic;
    if (wi.z > 0.0) {
        let hs = wo + wi;
        if (dot(hs, hs) <= 1e-20) {
            return vec3f(0.0);
        }
        let h = normalize(hs);
        let v_dot_h = clamp(dot(wo, h), 0.0, 1.0);
        let spec = ggx_d(h.z, a) * smith_visibility(wi.z, wo.z, a);
        let fw = schlick_weight(v_dot_h);
        let metal = (s.base + (vec3f(1.0) - s.base) * fw) * spec;
        let f = s.specular * fresnel_dielectric(v_dot_h, eta);
        let diffuse = s.base * ((1.0 - f) * (1.0 - s.transmission) / PI);
        return metal * s.metallic + (vec3f(f * spec) + diffuse) * dielectric;
    }
    let tint = s.base * (dielectric * s.transmission);
    if (passes_straight(s)) {
        let mirrored = vec3f(wi.xy, -wi.z);
        let hs = wo + mirrored;
        if (dot(hs, hs) <= 1e-20) {
            return vec3f(0.0);
        }
        let h = normalize(hs);
        let f = s.specular * fresnel_dielectric(dot(wo, h), eta);
        return tint * ((1.0 - f) * ggx_d(h.z, a) * smith_visibility(mirrored.z, wo.z, a));
    }
    let half = refraction_half(wo, wi, eta);
    if (half.w == 0.0) {
        return vec3f(0.0);
    }
    let o_h = dot(wo, half.xyz);
    let i_h = dot(wi, half.xyz);
    let f = s.specular * fresnel_dielectric(o_h, eta);
    let g2 = 4.0 * wo.z * -wi.z * smith_visibility(-wi.z, wo.z, a);
    let denom = i_h + o_h / eta;
    let ft = ggx_d(half.z, a) * g2 * (1.0 - f) * abs(i_h * o_h)
        / (wo.z * -wi.z * denom * denom * eta * eta);
    return tint * ft;
}

fn glass_pdf(s: Surface, wo: vec3f, wi: vec3f) -> f32 {
    if (wo.z <= 0.0 || wi.z == 0.0) {
        return 0.0;
    }
    let lobes = glass_lobes(s, wo.z);
    let a = ggx_alpha(s.roughness);
    if (wi.z > 0.0 || passes_straight(s)) {
        // Reflected into wr (a thin sheet's transmission: wi mirrored back).
        let wr = vec3f(wi.xy, abs(wi.z));
        let hs = wo + wr;
        if (dot(hs, hs) <= 1e-20) {
            return 0.0;
        }
        let h = normalize(hs);
        let pdf = ggx_d(h.z, a) * smith_g1(wo.z, a) / (4.0 * wo.z);
        let share = glass_reflect_share(s, wo, h);
        if (wi.z > 0.0) {
            return (lobes.x + lobes.y * share) * pdf + lobes.z * wi.z / PI;
        }
        return lobes.y * (1.0 - share) * pdf;
    }
    let eta = glass_eta(s);
    let half = refraction_half(wo, wi, eta);
    if (half.w == 0.0) {
        return 0.0;
    }
    let o_h = dot(wo, half.xyz);
    let i_h = dot(wi, half.xyz);
    let denom = i_h + o_h / eta;
    let visible_normals = ggx_d(half.z, a) * smith_g1(wo.z, a) * o_h / wo.z;
    return lobes.y * (1.0 - glass_reflect_share(s, wo, half.xyz)) * visible_normals * -i_h
        / (denom * denom);
}

// A direction sampled from the glass BSDF; z = 2 (not a direction) when the path ends here.
fn glass_sample(s: Surface, wo: vec3f, u0: f32, u1: f32, u2: f32) -> vec3f {
    let lobes = glass_lobes(s, wo.z);
    if (u0 >= lobes.x + lobes.y) {
        return cosine_hemisphere(u1, u2);
    }
    let h = sample_vndf(wo, ggx_alpha(s.roughness), u1, u2);
    // The lobe's own share of u0, reused for reflect-or-transmit.
    let transmitted = u0 >= lobes.x && (u0 - lobes.x) / lobes.y >= glass_reflect_share(s, wo, h);
    if (transmitted && !passes_straight(s)) {
        let wi = refract_dir(wo, h, glass_eta(s));
        return select(vec3f(0.0, 0.0, 2.0), wi, wi.z < 0.0);
    }
    let reflected = h * (2.0 * dot(wo, h)) - wo;
    if (reflected.z <= 0.0) {
        return vec3f(0.0, 0.0, 2.0);
    }
    // A thin sheet passes the reflected ray on, mirrored through the surface.
    return select(reflected, vec3f(reflected.xy, -reflected.z), transmitted);
}

// ---------------------------------------------------------------- shading points

// What a hit interpolates from its triangle's vertices for shading.
struct VertexData {
    uv0: vec2f,
    color: vec4f,    // COLOR_0 (white without)
    extra: u32,      // tri_extra index + 1, 0: none
    bary: vec2f,     // the hit's barycentrics b1, b2 (for TEXCOORD_1)
}

struct ShadePoint {
    p: vec3f,
    ng: vec3f,       // geometric normal, facing the incoming ray
    ns: vec3f,       // shading normal, same side as ng
    front: bool,     // the ray hit the front (counter-clockwise) face
    vertex: VertexData,
    material: u32,
}

fn interpolate_uv(a: TriAttr, b0: f32, b1: f32, b2: f32) -> vec2f {
    return vec2f(a.n0.w, a.v.x) * b0 + vec2f(a.n1.w, a.v.y) * b1 + vec2f(a.n2.w, a.v.z) * b2;
}

fn vertex_data(a: TriAttr, b0: f32, b1: f32, b2: f32) -> VertexData {
    var v: VertexData;
    v.uv0 = interpolate_uv(a, b0, b1, b2);
    v.color = vec4f(1.0);
    v.extra = 0u;
    v.bary = vec2f(b1, b2);
    if (SCENE_EXTRAS && (a.flags & 2u) != 0u) {
        v.extra = a.extra + 1u;
        let c01 = tri_extra[a.extra].colors01;
        let c2 = tri_extra[a.extra].colors2;
        let color0 = vec4f(unpack2x16unorm(c01.x), unpack2x16unorm(c01.y));
        let color1 = vec4f(unpack2x16unorm(c01.z), unpack2x16unorm(c01.w));
        let color2 = vec4f(unpack2x16unorm(c2.x), unpack2x16unorm(c2.y));
        v.color = color0 * b0 + color1 * b1 + color2 * b2;
    }
    return v;
}

fn shade_point(o: vec3f, d: vec3f, hit: Hit) -> ShadePoint {
    var sp: ShadePoint;
    let tp = tri_pos[hit.tri];
    let at = tri_attr[hit.tri];
    let b1 = hit.u;
    let b2 = hit.v;
    let b0 = 1.0 - b1 - b2;
    sp.p = tp.v0.xyz + tp.e1.xyz * b1 + tp.e2.xyz * b2;
    var ng = normalize(cross(tp.e1.xyz, tp.e2.xyz));
    sp.front = dot(ng, d) < 0.0;
    var ns = ng;
    if ((at.flags & 1u) != 0u) {
        let n = at.n0.xyz * b0 + at.n1.xyz * b1 + at.n2.xyz * b2;
        if (dot(n, n) > 1e-20) {
            ns = normalize(n);
        }
    }
    sp.vertex = vertex_data(at, b0, b1, b2);
    sp.material = at.material;
    let m = materials[at.material];
    if (m.textures.w >= 0) {
        let t = at.tangent.xyz - ns * dot(ns, at.tangent.xyz);
        if (dot(t, t) > 1e-20) {
            let tn = normalize(t);
            let bn = cross(ns, tn) * at.tangent.w;
            var mapped = sample_texture(m.textures.w, sp.vertex, false).xyz * 2.0 - 1.0;
            mapped = vec3f(mapped.xy * m.params.w, mapped.z);
            let n = tn * mapped.x + bn * mapped.y + ns * mapped.z;
            if (dot(n, n) > 1e-20) {
                ns = normalize(n);
            }
        }
    }
    // No back-face culling: a back face shades with the flipped normals.
    if (!sp.front) {
        ng = -ng;
        ns = -ns;
    }
    if (dot(ns, -d) <= 0.0) {
        ns = ng;
    }
    sp.ng = ng;
    sp.ns = ns;
    return sp;
}

fn surface_of(m: Material, v: VertexData, entering: bool) -> Surface {
    var s: Surface;
    s.base = m.base_color.xyz * sample_texture(m.textures.x, v, true).xyz * v.color.xyz;
    let mr = sample_texture(m.textures.y, v, false);
    s.metallic = clamp(m.params.x * mr.z, 0.0, 1.0);
    s.roughness = clamp(m.params.y * mr.y, 0.0, 1.0);
    s.specular = m.params.z;
    s.specular_color = m.specular_color.xyz;
    s.f0 = m.transmission.w;
    s.ior = m.transmission.y;
    s.transmission = 0.0;
    s.thin = m.transmission.z == 0.0;
    s.entering = entering;
    if (SCENE_TRANSMISSION && m.transmission.x > 0.0) {
        s.transmission = m.transmission.x * sample_texture(i32(m.absorption.w), v, false).x;
    }
    return s;
}

fn emission_of(m: Material, v: VertexData) -> vec3f {
    if (max3(m.emissive.xyz) <= 0.0) {
        return vec3f(0.0);
    }
    return m.emissive.xyz * sample_texture(m.textures.z, v, true).xyz;
}

// Scale-aware offset along the normal so secondary rays leave the surface.
fn offset_point(p: vec3f, n: vec3f) -> vec3f {
    let scale = max(1.0, max3(abs(p)));
    return p + n * (1e-4 * scale);
}

fn pick_light(u: f32) -> u32 {
    var lo = 0u;
    var hi = params.counts.x - 1u;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (u < lights[mid].cdf) {
            hi = mid;
        } else {
            lo = mid + 1u;
        }
    }
    return lo;
}

// A shadow ray of next-event estimation: what its light adds (times the path's throughput
// once path_vertex has it) unless something lies within tmax. valid = false: no ray.
struct ShadowRay {
    o: vec3f,
    tmax: f32,
    d: vec3f,
    seed: u32,
    c: vec3f,
    valid: bool,
}

fn no_shadow() -> ShadowRay {
    return ShadowRay(vec3f(0.0), 0.0, vec3f(0.0), 0u, vec3f(0.0), false);
}

// Next-event estimation at a shading point: one light, MIS against the BSDF for area lights.
fn sample_light(sp: ShadePoint, s: Surface, wo: vec3f, frame: mat3x3f) -> ShadowRay {
    let u_pick = sample1();
    let u12 = sample2();
    let u1 = u12.x;
    let u2 = u12.y;
    let env_share = environment_share();
    if (u_pick < env_share) {
        return sample_environment(sp, s, wo, frame, u1, u2, env_share);
    }
    if (params.counts.x == 0u) {
        return no_shadow();
    }
    // The rest of the samples pick among the scene's lights.
    let scene_share = 1.0 - env_share;
    let light = lights[pick_light(min((u_pick - env_share) / scene_share, 0.99999994))];
    let origin = offset_point(sp.p, sp.ng);
    var wi: vec3f;
    var dist: f32;
    var radiance: vec3f;
    var light_pdf: f32;
    var is_delta = true;
    if (light.kind == 0u) {
        let tp = tri_pos[light.index];
        let at = tri_attr[light.index];
        let sq = sqrt(u1);
        let b1 = 1.0 - sq;
        let b2 = u2 * sq;
        let b0 = 1.0 - b1 - b2;
        let q = tp.v0.xyz + tp.e1.xyz * b1 + tp.e2.xyz * b2;
        let c = cross(tp.e1.xyz, tp.e2.xyz);
        let area = 0.5 * length(c);
        let nl = normalize(c);
        let to_light = q - origin;
        let dist2 = dot(to_light, to_light);
        if (dist2 <= 0.0 || area <= 0.0) {
            return no_shadow();
        }
        dist = sqrt(dist2);
        wi = to_light / dist;
        let cos_l = dot(nl, -wi);
        let m = materials[at.material];
        if (cos_l <= 0.0 && m.emissive.w == 0.0) {
            return no_shadow(); // one-sided emitter seen from behind
        }
        let cos_abs = abs(cos_l);
        if (cos_abs <= 1e-7) {
            return no_shadow();
        }
        radiance = emission_of(m, vertex_data(at, b0, b1, b2));
        light_pdf = light.select_pdf * scene_share * dist2 / (area * cos_abs);
        is_delta = false;
        dist = dist * (1.0 - 1e-4);
    } else if (light.kind == 3u) {
        wi = -light.direction.xyz;
        dist = INF;
        radiance = light.intensity.xyz;
        light_pdf = light.select_pdf * scene_share;
    } else {
        let to_light = light.position.xyz - origin;
        let dist2 = dot(to_light, to_light);
        if (dist2 <= 0.0) {
            return no_shadow();
        }
        dist = sqrt(dist2);
        wi = to_light / dist;
        radiance = light.intensity.xyz / dist2;
        if (light.kind == 2u) {
            let cos_inner = light.direction.w;
            let cos_outer = light.intensity.w;
            let scale = 1.0 / max(0.001, cos_inner - cos_outer);
            let cd = dot(light.direction.xyz, -wi);
            let att = clamp((cd - cos_outer) * scale, 0.0, 1.0);
            radiance *= att * att;
        }
        light_pdf = light.select_pdf * scene_share;
    }
    if (dot(wi, sp.ng) <= 0.0 || max3(radiance) <= 0.0) {
        return no_shadow();
    }
    let wi_local = wi * frame;
    let f = bsdf_eval(s, wo, wi_local) * wi_local.z;
    if (max3(f) <= 0.0) {
        return no_shadow();
    }
    var weight = 1.0;
    if (!is_delta) {
        weight = power_heuristic(light_pdf, bsdf_pdf(s, wo, wi_local));
    }
    return ShadowRay(origin, dist, wi, ray_alpha_seed(), f * radiance * (weight / light_pdf), true);
}

// ---------------------------------------------------------------- environment (mirror of src/environment.rs)

const ENV_HEADER: u32 = 8u;

fn env_size() -> vec2u {
    return vec2u(u32(env[0]), u32(env[1]));
}

// The share of next-event samples that go to the environment: all of them without other
// lights, half with.
fn environment_share() -> f32 {
    if (!SCENE_ENVIRONMENT || env[4] == 0.0) {
        return 0.0;
    }
    return select(0.5, 1.0, params.counts.x == 0u);
}

// Scene direction -> the image's frame (rotation undone) and back.
fn env_to_image(d: vec3f) -> vec3f {
    let c = env[2];
    let s = env[3];
    return vec3f(c * d.x - s * d.z, d.y, s * d.x + c * d.z);
}

fn env_to_scene(d: vec3f) -> vec3f {
    let c = env[2];
    let s = env[3];
    return vec3f(c * d.x + s * d.z, d.y, -s * d.x + c * d.z);
}

fn env_uv(local: vec3f) -> vec2f {
    let u = 0.5 + atan2(local.z, local.x) / (2.0 * PI);
    return vec2f(u - floor(u), acos(clamp(local.y, -1.0, 1.0)) / PI);
}

fn env_texel(x: i32, y: i32, size: vec2u) -> vec3f {
    let w = i32(size.x);
    var xi = x % w;
    if (xi < 0) {
        xi += w;
    }
    let yi = clamp(y, 0, i32(size.y) - 1);
    let k = ENV_HEADER + 3u * (u32(yi) * size.x + u32(xi));
    return vec3f(env[k], env[k + 1u], env[k + 2u]);
}

// Bilinear radiance along the unit direction d.
fn env_radiance(d: vec3f) -> vec3f {
    let size = env_size();
    let p = env_uv(env_to_image(d)) * vec2f(size) - 0.5;
    let f = fract(p);
    let x = i32(floor(p.x));
    let y = i32(floor(p.y));
    let top = mix(env_texel(x, y, size), env_texel(x + 1, y, size), f.x);
    let bottom = mix(env_texel(x, y + 1, size), env_texel(x + 1, y + 1, size), f.x);
    return mix(top, bottom, f.y);
}

// Probability of texel (i, j) from the row and column CDFs.
fn env_probability(i: u32, j: u32, size: vec2u) -> f32 {
    let marginal = ENV_HEADER + 3u * size.x * size.y;
    let conditional = marginal + size.y;
    let row = env[marginal + j] - select(0.0, env[marginal + j - 1u], j > 0u);
    let k = conditional + j * size.x + i;
    let column = env[k] - select(0.0, env[k - 1u], i > 0u);
    return row * column;
}

// Solid-angle density of env_sample at the unit direction d.
fn env_pdf(d: vec3f) -> f32 {
    let local = env_to_image(d);
    let sin_theta = sqrt(max(0.0, 1.0 - local.y * local.y));
    if (env[4] == 0.0 || sin_theta <= 0.0) {
        return 0.0;
    }
    let size = env_size();
    let uv = env_uv(local);
    let i = min(u32(uv.x * f32(size.x)), size.x - 1u);
    let j = min(u32(uv.y * f32(size.y)), size.y - 1u);
    return env_probability(i, j, size) * f32(size.x) * f32(size.y) / (2.0 * PI * PI * sin_theta);
}

// First index in env[first .. first + n) whose inclusive CDF exceeds u (in xy: the index and
// u's place within its bin).
fn env_invert(first: u32, n: u32, u: f32) -> vec2f {
    var lo = 0u;
    var hi = n - 1u;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (env[first + mid] <= u) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    let below = select(0.0, env[first + lo - 1u], lo > 0u);
    let width = env[first + lo] - below;
    let within = select(0.5, clamp((u - below) / width, 0.0, 1.0), width > 0.0);
    return vec2f(f32(lo), within);
}

// A direction drawn from the environment's distribution, w: its density (0: none).
fn env_sample(u1: f32, u2: f32) -> vec4f {
    let size = env_size();
    let marginal = ENV_HEADER + 3u * size.x * size.y;
    let row = env_invert(marginal, size.y, u1);
    let j = u32(row.x);
    let column = env_invert(marginal + size.y + j * size.x, size.x, u2);
    let uv = vec2f((column.x + column.y) / f32(size.x), (row.x + row.y) / f32(size.y));
    let phi = 2.0 * PI * (uv.x - 0.5);
    let theta = PI * uv.y;
    let local = vec3f(sin(theta) * cos(phi), cos(theta), sin(theta) * sin(phi));
    let d = env_to_scene(local);
    return vec4f(d, env_pdf(d));
}

// Next-event estimation toward the environment, MIS against the BSDF.
fn sample_environment(sp: ShadePoint, s: Surface, wo: vec3f, frame: mat3x3f, u1: f32, u2: f32,
                      share: f32) -> ShadowRay {
    let e = env_sample(u1, u2);
    let wi = e.xyz;
    if (e.w <= 0.0 || dot(wi, sp.ng) <= 0.0) {
        return no_shadow();
    }
    let wi_local = wi * frame;
    let f = bsdf_eval(s, wo, wi_local) * wi_local.z;
    if (max3(f) <= 0.0) {
        return no_shadow();
    }
    let origin = offset_point(sp.p, sp.ng);
    let light_pdf = e.w * share;
    let weight = power_heuristic(light_pdf, bsdf_pdf(s, wo, wi_local));
    return ShadowRay(origin, INF, wi, ray_alpha_seed(), f * env_radiance(wi) * (weight / light_pdf),
                     true);
}

// What a ray that leaves the scene along d finds; bsdf_pdf: the density its direction was
// sampled with (0: a camera or transmitted ray, counted in full).
fn escaped(d: vec3f, bsdf_pdf: f32) -> vec3f {
    if (!SCENE_ENVIRONMENT) {
        return params.background.xyz;
    }
    let share = environment_share();
    var weight = 1.0;
    if (bsdf_pdf > 0.0 && share > 0.0) {
        weight = power_heuristic(bsdf_pdf, env_pdf(d) * share);
    }
    return env_radiance(d) * weight;
}

// What the camera ray of the current path found first (compositing passes): shading normal
// and distance, base colour and object ID, material ID. Misses keep the defaults.
var<private> first_normal: vec4f;
var<private> first_albedo: vec4f;
var<private> first_material: f32;

// A path between two vertices: the ray it follows next and what it carries. The megakernel
// keeps it in registers for a whole path; the wavefront kernels (wavefront.wgsl) load it from
// and store it to their path buffers around each step. Either way every step is the same code,
// in the same order, with the same random numbers.
struct PathState {
    o: vec3f,
    d: vec3f,
    throughput: vec3f,
    radiance: vec3f,
    prev_pdf: f32,   // 0: camera ray or transmitted (emission counted in full)
    medium: vec3f,   // absorption per unit length where the ray travels
    vertex: u32,
    alive: bool,     // false: the path has ended
}

var<private> path: PathState;

// Starts the path of sample `sample` of pixel (px, py): its random numbers and camera ray.
fn start_path(px: u32, py: u32, sample: u32) {
    if (SCENE_AOVS) {
        first_normal = vec4f(0.0, 0.0, 0.0, 1e10);
        first_albedo = vec4f(0.0);
        first_material = 0.0;
    }
    rng_state = path_seed(px, py, sample);
    sobol_key = pixel_key(px, py);
    sobol_index = sample;
    sobol_dimension = 0u;
    let width = f32(params.image.x);
    let height = f32(params.image.y);
    let jitter = sample2();
    let ndc = vec2f((f32(px) + jitter.x) / width * 2.0 - 1.0, 1.0 - (f32(py) + jitter.y) / height * 2.0);
    let tan_half = params.cam_pos.w;
    let aspect = params.cam_right.w;
    path.d = normalize(params.cam_fwd.xyz
        + params.cam_right.xyz * (ndc.x * tan_half * aspect)
        + params.cam_up.xyz * (ndc.y * tan_half));
    path.o = params.cam_pos.xyz;
    path.throughput = vec3f(1.0);
    path.radiance = vec3f(0.0);
    path.prev_pdf = 0.0;
    path.medium = vec3f(0.0);
    path.vertex = 0u;
    path.alive = true;
}

// One step of the path: what its ray found at `hit` (emission, or the background on a miss),
// then, unless the path ends there, the shadow ray of next-event estimation (already weighted
// by the throughput) and the next ray, sampled from the BSDF. Sets path.alive.
fn path_vertex(hit: Hit) -> ShadowRay {
    var shadow = no_shadow();
    path.alive = false;
    if (SCENE_TRANSMISSION && max3(path.medium) > 0.0) {
        path.throughput *= exp(-path.medium * hit.t); // Beer–Lambert; nothing escapes an absorbing medium
    }
    if (hit.tri == NO_HIT) {
        path.radiance += path.throughput * escaped(path.d, path.prev_pdf);
        return shadow;
    }
    let sp = shade_point(path.o, path.d, hit);
    let m = materials[sp.material];
    if (sp.front || m.emissive.w != 0.0) {
        let le = emission_of(m, sp.vertex);
        if (max3(le) > 0.0) {
            var weight = 1.0;
            if (path.prev_pdf > 0.0) {
                let tp = tri_pos[hit.tri];
                let c = cross(tp.e1.xyz, tp.e2.xyz);
                let area = 0.5 * length(c);
                let cos_l = abs(dot(normalize(c), path.d));
                let select_pdf = tri_attr[hit.tri].v.w * (1.0 - environment_share());
                if (cos_l > 1e-7 && area > 0.0 && select_pdf > 0.0) {
                    let light_pdf = select_pdf * hit.t * hit.t / (area * cos_l);
                    weight = power_heuristic(path.prev_pdf, light_pdf);
                }
            }
            path.radiance += path.throughput * le * weight;
        }
    }
    if (path.vertex > params.samples.z) {
        return shadow;
    }
    let s = surface_of(m, sp.vertex, sp.front);
    if (SCENE_AOVS && path.vertex == 0u) {
        first_normal = vec4f(sp.ns, hit.t);
        first_albedo = vec4f(s.base, f32(tri_attr[hit.tri].object));
        first_material = f32(sp.material + 1u);
    }
    let frame = basis(sp.ns);
    let wo = -path.d * frame;
    shadow = sample_light(sp, s, wo, frame);
    shadow.c = path.throughput * shadow.c;

    // BSDF sampling (always draws three numbers so streams stay aligned).
    let u0 = sample1();
    let u12 = sample2();
    let u1 = u12.x;
    let u2 = u12.y;
    var wi_local: vec3f;
    if (SCENE_TRANSMISSION && s.transmission > 0.0) {
        wi_local = glass_sample(s, wo, u0, u1, u2);
        if (wi_local.z > 1.5) {
            return shadow;
        }
    } else {
        let ps = specular_probability(s, wo.z);
        if (u0 < ps) {
            let h = sample_vndf(wo, ggx_alpha(s.roughness), u1, u2);
            wi_local = h * (2.0 * dot(wo, h)) - wo;
        } else {
            wi_local = cosine_hemisphere(u1, u2);
        }
        if (wi_local.z <= 0.0) {
            return shadow;
        }
    }
    let transmitted = wi_local.z < 0.0;
    let pdf = bsdf_pdf(s, wo, wi_local);
    let wi = frame * wi_local;
    let side = select(sp.ng, -sp.ng, transmitted);
    if (pdf <= 0.0 || dot(wi, side) <= 0.0) {
        return shadow;
    }
    path.throughput *= bsdf_eval(s, wo, wi_local) * (abs(wi_local.z) / pdf);
    // Light sampling never looks through a surface: what a transmitted ray finds counts
    // in full.
    path.prev_pdf = select(pdf, 0.0, transmitted);
    path.o = offset_point(sp.p, side);
    path.d = wi;
    if (SCENE_TRANSMISSION && transmitted && !s.thin) {
        path.medium = select(vec3f(0.0), m.absorption.xyz, sp.front);
    }
    path.vertex += 1u;
    if (path.vertex >= RR_START) {
        let q = min(max3(path.throughput), 0.95);
        if (sample1() >= q) {
            return shadow;
        }
        path.throughput /= q;
    }
    path.alive = max3(path.throughput) > 0.0;
    return shadow;
}

// Whether a shadow ray reaches its light.
fn unoccluded(ray: ShadowRay) -> bool {
    return trace_seeded(ray.o, ray.d, ray.tmax, true, ray.seed).tri == NO_HIT;
}

// A NaN or Inf sample would poison the pixel's sum; drop it (counted as black).
fn finite_or_black(radiance: vec3f) -> vec3f {
    if (any(radiance != radiance) || any(abs(radiance) > vec3f(1e30))) {
        return vec3f(0.0);
    }
    return radiance;
}

// The megakernel's path: every step in one invocation.
fn trace_path(px: u32, py: u32, sample: u32) -> vec3f {
    start_path(px, py, sample);
    loop {
        let shadow = path_vertex(trace(path.o, path.d, INF, false));
        if (shadow.valid && unoccluded(shadow)) {
            path.radiance += shadow.c;
        }
        if (!path.alive) {
            break;
        }
    }
    return finite_or_black(path.radiance);
}

// 8×8 workgroups: square blocks keep neighbouring (coherent) camera rays together and 64
// invocations fill a SIMD group on every vendor; the 2-D grid avoids the 65,535-groups cap.
@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) gid: vec3u) {
    let local_x = gid.x;
    let local_y = params.tile.z + gid.y;
    if (local_x >= params.tile.x || gid.y >= params.tile.w || local_y >= params.tile.y) {
        return;
    }
    let px = params.image.z + local_x;
    let py = params.image.w + local_y;
    let slot = local_y * params.samples.w + local_x;
    var sum = vec3f(0.0);
    if (params.counts.z != 0u) {
        sum = accum[slot].xyz;
    }
    // Samples first, first + stride, … (a motion-blur time step's share of a range).
    let stride = params.counts.w;
    if (!SCENE_AOVS) {
        for (var k = 0u; k < params.samples.y; k++) {
            sum += trace_path(px, py, params.samples.x + k * stride);
        }
        accum[slot] = vec4f(sum, 1.0);
        return;
    }
    // Normal and albedo are summed like the beauty pass; depth and IDs are sample 0's (a
    // shard without sample 0 leaves them 0).
    var normal = vec4f(0.0);
    var albedo = vec4f(0.0);
    var material = vec4f(0.0);
    if (params.counts.z != 0u) {
        normal = aov[slot * 3u];
        albedo = aov[slot * 3u + 1u];
        material = aov[slot * 3u + 2u];
    }
    for (var k = 0u; k < params.samples.y; k++) {
        let sample = params.samples.x + k * stride;
        sum += trace_path(px, py, sample);
        normal = vec4f(normal.xyz + first_normal.xyz, normal.w);
        albedo = vec4f(albedo.xyz + first_albedo.xyz, albedo.w);
        if (sample == 0u) {
            normal.w = first_normal.w;
            albedo.w = first_albedo.w;
            material.x = first_material;
        }
    }
    accum[slot] = vec4f(sum, 1.0);
    aov[slot * 3u] = normal;
    aov[slot * 3u + 1u] = albedo;
    aov[slot * 3u + 2u] = material;
}
