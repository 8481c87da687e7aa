// Wavefront integrator (Laine, Karras & Aila 2013, "Megakernels considered harmful"): the
// steps of trace_path (trace.wgsl) as separate kernels over a wave of paths, one invocation a
// path (pixel × sample), with the path state between kernels in structure-of-arrays buffers:
//
//   generate                      every path: camera ray; all paths queued
//   per bounce: extend            queued paths: nearest hit
//               shade             queued paths: path_vertex; survivors and shadow rays queued
//               after_shade       (settle.wgsl) indirect dispatch sizes from the queue counts
//               shadow            queued shadow rays: any hit; unoccluded light added
//               after_shadow      (settle.wgsl) queues swapped, the spent ones emptied
//   accumulate                    every pixel: its samples' radiance added in sample order
//
// Kernels only touch their own path's slots, each path runs the same steps as in the megakernel
// with the same random numbers, and the accumulate kernel adds a pixel's samples in ascending
// order: a pixel's sum does not depend on queue order, wave size or tile (tests hold it). This
// source is appended to trace.wgsl.
//
// A wave of N paths: path p is sample params.samples.x + (p / P) · stride of the band's pixel
// p mod P (P = band pixels). Field f of path p is paths[f · N + p]; queue q's item i is
// queue_items[q · N + i].

@group(3) @binding(0) var<storage, read_write> paths: array<vec4u>;
@group(3) @binding(1) var<storage, read_write> queue_counts: array<atomic<u32>, 8>;
@group(3) @binding(2) var<storage, read_write> queue_items: array<u32>;

// Path fields.
const F_ORIGIN: u32 = 0u;      // o, prev_pdf
const F_DIRECTION: u32 = 1u;   // d, vertex
const F_THROUGHPUT: u32 = 2u;
const F_RADIANCE: u32 = 3u;
const F_MEDIUM: u32 = 4u;
const F_SAMPLER: u32 = 5u;     // rng_state, sobol_key, sobol_index, sobol_dimension
const F_HIT: u32 = 6u;         // t, triangle, u, v
const F_SHADOW_O: u32 = 7u;    // o, tmax
const F_SHADOW_D: u32 = 8u;    // d, alpha seed
const F_SHADOW_C: u32 = 9u;
const F_FIRST_NORMAL: u32 = 10u; // compositing passes (SCENE_AOVS)
const F_FIRST_ALBEDO: u32 = 11u;
const F_FIRST_MATERIAL: u32 = 12u;

// Queues: 0 and 1 alternate as the bounce's input and output, 2 and 3 hold its shadow rays;
// queue_counts[4] counts bounces (its low bit: which of 0 and 1 is the input).
const Q_PARITY: u32 = 4u;

fn wave_pixels() -> u32 {
    return params.tile.x * params.tile.w;
}

fn wave_paths() -> u32 {
    return wave_pixels() * params.samples.y;
}

fn field(f: u32, p: u32) -> u32 {
    return f * wave_paths() + p;
}

fn put_field(f: u32, p: u32, v: vec4f) {
    paths[field(f, p)] = bitcast<vec4u>(v);
}

fn get_field(f: u32, p: u32) -> vec4f {
    return bitcast<vec4f>(paths[field(f, p)]);
}

fn load_sampler(p: u32) {
    let s = paths[field(F_SAMPLER, p)];
    rng_state = s.x;
    sobol_key = s.y;
    sobol_index = s.z;
    sobol_dimension = s.w;
}

fn load_path(p: u32) {
    let o = get_field(F_ORIGIN, p);
    let d = get_field(F_DIRECTION, p);
    path.o = o.xyz;
    path.prev_pdf = o.w;
    path.d = d.xyz;
    path.vertex = bitcast<u32>(d.w);
    path.throughput = get_field(F_THROUGHPUT, p).xyz;
    path.radiance = get_field(F_RADIANCE, p).xyz;
    path.medium = get_field(F_MEDIUM, p).xyz;
    path.alive = true;
    load_sampler(p);
    if (SCENE_AOVS) {
        first_normal = get_field(F_FIRST_NORMAL, p);
        first_albedo = get_field(F_FIRST_ALBEDO, p);
        first_material = get_field(F_FIRST_MATERIAL, p).x;
    }
}

fn store_path(p: u32) {
    put_field(F_ORIGIN, p, vec4f(path.o, path.prev_pdf));
    put_field(F_DIRECTION, p, vec4f(path.d, bitcast<f32>(path.vertex)));
    put_field(F_THROUGHPUT, p, vec4f(path.throughput, 0.0));
    put_field(F_RADIANCE, p, vec4f(path.radiance, 0.0));
    put_field(F_MEDIUM, p, vec4f(path.medium, 0.0));
    paths[field(F_SAMPLER, p)] = vec4u(rng_state, sobol_key, sobol_index, sobol_dimension);
    if (SCENE_AOVS) {
        put_field(F_FIRST_NORMAL, p, first_normal);
        put_field(F_FIRST_ALBEDO, p, first_albedo);
        put_field(F_FIRST_MATERIAL, p, vec4f(first_material, 0.0, 0.0, 0.0));
    }
}

// The queue this bounce reads (0 or 1).
fn input_queue() -> u32 {
    return atomicLoad(&queue_counts[Q_PARITY]) & 1u;
}

fn queue_len(q: u32) -> u32 {
    return atomicLoad(&queue_counts[q]);
}

fn queue_item(q: u32, i: u32) -> u32 {
    return queue_items[q * wave_paths() + i];
}

// Appending to a queue takes one global atomic per workgroup, not one per path: the
// workgroup's appends are counted in shared memory first (portable: no subgroup feature
// needed). Call from uniform control flow.
var<workgroup> appended: atomic<u32>;
var<workgroup> append_base: u32;

fn append(q: u32, p: u32, wanted: bool, local: u32) {
    if (local == 0u) {
        atomicStore(&appended, 0u);
    }
    workgroupBarrier();
    var slot = 0u;
    if (wanted) {
        slot = atomicAdd(&appended, 1u);
    }
    workgroupBarrier();
    if (local == 0u) {
        append_base = atomicAdd(&queue_counts[q], atomicLoad(&appended));
    }
    let base = workgroupUniformLoad(&append_base);
    if (wanted) {
        queue_items[q * wave_paths() + base + slot] = p;
    }
}

@compute @workgroup_size(64, 1, 1)
fn wave_generate(@builtin(global_invocation_id) gid: vec3u) {
    let p = gid.x;
    if (p >= wave_paths()) {
        return;
    }
    let pixels = wave_pixels();
    let pixel = p % pixels;
    let x = params.image.z + pixel % params.tile.x;
    let y = params.image.w + params.tile.z + pixel / params.tile.x;
    start_path(x, y, params.samples.x + (p / pixels) * params.counts.w);
    store_path(p);
    queue_items[p] = p; // queue 0, counted by the host
}

@compute @workgroup_size(64, 1, 1)
fn wave_extend(@builtin(global_invocation_id) gid: vec3u) {
    let q = input_queue();
    if (gid.x >= queue_len(q)) {
        return;
    }
    let p = queue_item(q, gid.x);
    load_sampler(p);
    let hit = trace(get_field(F_ORIGIN, p).xyz, get_field(F_DIRECTION, p).xyz, INF, false);
    put_field(F_HIT, p, vec4f(hit.t, bitcast<f32>(hit.tri), hit.u, hit.v));
}

@compute @workgroup_size(64, 1, 1)
fn wave_shade(@builtin(global_invocation_id) gid: vec3u,
              @builtin(local_invocation_index) local: u32) {
    let q = input_queue();
    var p = 0u;
    var shadow = no_shadow();
    var alive = false;
    if (gid.x < queue_len(q)) {
        p = queue_item(q, gid.x);
        load_path(p);
        let h = get_field(F_HIT, p);
        shadow = path_vertex(Hit(h.x, bitcast<u32>(h.y), h.z, h.w));
        alive = path.alive;
        store_path(p);
        if (shadow.valid) {
            put_field(F_SHADOW_O, p, vec4f(shadow.o, shadow.tmax));
            put_field(F_SHADOW_D, p, vec4f(shadow.d, bitcast<f32>(shadow.seed)));
            put_field(F_SHADOW_C, p, vec4f(shadow.c, 0.0));
        }
    }
    append(1u - q, p, alive, local);
    append(2u + q, p, shadow.valid, local);
}

@compute @workgroup_size(64, 1, 1)
fn wave_shadow(@builtin(global_invocation_id) gid: vec3u) {
    let q = 2u + input_queue();
    if (gid.x >= queue_len(q)) {
        return;
    }
    let p = queue_item(q, gid.x);
    let o = get_field(F_SHADOW_O, p);
    let d = get_field(F_SHADOW_D, p);
    let ray = ShadowRay(o.xyz, o.w, d.xyz, bitcast<u32>(d.w), get_field(F_SHADOW_C, p).xyz, true);
    if (unoccluded(ray)) {
        put_field(F_RADIANCE, p, vec4f(get_field(F_RADIANCE, p).xyz + ray.c, 0.0));
    }
}

// Adds each pixel's samples, in sample order, to its accumulator slot (as main does).
@compute @workgroup_size(64, 1, 1)
fn wave_accumulate(@builtin(global_invocation_id) gid: vec3u) {
    let pixels = wave_pixels();
    let pixel = gid.x;
    if (pixel >= pixels) {
        return;
    }
    let slot = (params.tile.z + pixel / params.tile.x) * params.samples.w + pixel % params.tile.x;
    let carry = params.counts.z != 0u;
    var sum = vec3f(0.0);
    if (carry) {
        sum = accum[slot].xyz;
    }
    for (var k = 0u; k < params.samples.y; k++) {
        sum += finite_or_black(get_field(F_RADIANCE, k * pixels + pixel).xyz);
    }
    accum[slot] = vec4f(sum, 1.0);
    if (!SCENE_AOVS) {
        return;
    }
    var normal = vec4f(0.0);
    var albedo = vec4f(0.0);
    var material = vec4f(0.0);
    if (carry) {
        normal = aov[slot * 3u];
        albedo = aov[slot * 3u + 1u];
        material = aov[slot * 3u + 2u];
    }
    for (var k = 0u; k < params.samples.y; k++) {
        let p = k * pixels + pixel;
        let n = get_field(F_FIRST_NORMAL, p);
        let a = get_field(F_FIRST_ALBEDO, p);
        normal = vec4f(normal.xyz + n.xyz, normal.w);
        albedo = vec4f(albedo.xyz + a.xyz, albedo.w);
        if (params.samples.x + k * params.counts.w == 0u) {
            normal.w = n.w;
            albedo.w = a.w;
            material.x = get_field(F_FIRST_MATERIAL, p).x;
        }
    }
    aov[slot * 3u] = normal;
    aov[slot * 3u + 1u] = albedo;
    aov[slot * 3u + 2u] = material;
}
