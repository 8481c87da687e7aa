// The wavefront integrator's bookkeeping between kernels (see wavefront.wgsl): one invocation
// turns queue counts into indirect dispatch sizes, so a bounce never waits for the host.
// A module of its own: the indirect-arguments buffer may not be bound where it is read as
// dispatch arguments.

@group(0) @binding(0) var<storage, read_write> counts: array<u32, 8>;
// Workgroups (x, y, z) of extend and shade, then of shadow.
@group(0) @binding(1) var<storage, read_write> args: array<u32, 6>;

const Q_PARITY: u32 = 4u;
const WORKGROUP: u32 = 64u;

// After shade: the next bounce's extend/shade cover its queue, shadow covers its rays.
@compute @workgroup_size(1, 1, 1)
fn after_shade() {
    let input = counts[Q_PARITY] & 1u;
    args[0] = (counts[1u - input] + WORKGROUP - 1u) / WORKGROUP;
    args[1] = 1u;
    args[2] = 1u;
    args[3] = (counts[2u + input] + WORKGROUP - 1u) / WORKGROUP;
    args[4] = 1u;
    args[5] = 1u;
}

// After shadow: this bounce's input queue and shadow queue are spent; the output becomes the
// next input.
@compute @workgroup_size(1, 1, 1)
fn after_shadow() {
    let input = counts[Q_PARITY] & 1u;
    counts[input] = 0u;
    counts[2u + input] = 0u;
    counts[Q_PARITY] += 1u;
}
