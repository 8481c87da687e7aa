#!/usr/bin/env python3
"""Writes the feature test scenes next to this file (re-run after editing: python3 make_feature_scenes.py).

uv_sets_and_vertex_colours.gltf — two Lambertian quads facing the camera under a white constant
background (every surface sees only the background, so each pixel is its albedo: a furnace in
which texture lookups show exactly):
  left:  a 4x4 checker of 16 colours (nearest, repeat) read through TEXCOORD_1, which differs
         from TEXCOORD_0, and a KHR_texture_transform (offset, rotation, scale);
  right: COLOR_0, a different colour at each corner, interpolated across the quad.
Its Cycles reference (render-pod/tests/reference/uv_colour_160x120.*) comes from
bench/render/cycles_reference.py; the test is in render-pod/tests/gltf_features.rs.

glass.gltf — a smooth and a rough (0.35) glass sphere, IOR 1.5, refracting into a volume,
in front of a checker backdrop, under a white background (reference glass_160x120.*).

environment.gltf + sky.hdr — a white diffuse, a rough gold metal and a glossy blue plastic
sphere on a grey ground, lit only by sky.hdr (128x64 Radiance RGBE: a blue sky, a brown ground
below the horizon and a small sun 300 times as bright as the sky, off to the camera's right),
which is also what the camera sees above the horizon (reference environment_160x120.*).

skin_morph.gltf — a tube skinned to two joints, its upper joint turned 40 degrees about z (the
tube bends, its middle blended between the joints), and a sphere with one morph target (its top
pulled up) at weight 0.6, on a grey ground under a white background; flat-shaded (no NORMAL),
since Blender recomputes normals of deformed meshes (reference skin_morph_160x120.*).
skin_morph_animated.gltf — the same with the pose animated: the joint turns 0 -> 80 degrees and
the weight goes 0 -> 1.2 over 0.5 s (linear), so at t = 0.25 s (frame 6) it is skin_morph.gltf's
pose; used by the operator's end-to-end scenario over frames 1-10.

motion_blur.gltf — an orange sphere sliding along x at 0.4 units a frame (linear, frames 0-12) beside
a still blue one, on a grey ground under a white background; rendered at frame 6 with a
shutter of one frame (reference motion_blur_160x120.*, Cycles' motion blur at the centre).

alpha_blend.gltf — two Lambertian quads with alphaMode BLEND before a checker backdrop under a
white background: a red one of alpha 0.3 (factor), a green one whose texture's alpha runs
0 -> 1 from left to right (reference alpha_blend_160x120.*).
"""

import base64
import json
import math
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def png_rgb(width, height, pixels, colour_type=2):
    """An 8-bit RGB PNG of `pixels` (rows top first, (r, g, b) each; (r, g, b, a) with
    colour_type 6)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = b"".join(b"\0" + bytes(v for px in row for v in px) for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


def checker():
    """16 distinct colours, 4x4."""
    levels = [30, 90, 160, 230]
    return [[(levels[x], levels[y], levels[(x + 2 * y) % 4]) for x in range(4)] for y in range(4)]


class Blob:
    """The accessors, buffer views and one embedded buffer of a scene being written."""

    def __init__(self):
        self.views, self.accessors, self.data = [], [], b""

    def add(self, data, accessor):
        """Appends `data` (4-byte aligned) with its accessor; returns the accessor's index."""
        self.views.append({"buffer": 0, "byteOffset": len(self.data), "byteLength": len(data)})
        accessor["bufferView"] = len(self.views) - 1
        self.accessors.append(accessor)
        self.data += data + b"\0" * (-len(data) % 4)
        return len(self.accessors) - 1

    def fields(self):
        uri = "data:application/octet-stream;base64," + base64.b64encode(self.data).decode()
        return {"buffers": [{"byteLength": len(self.data), "uri": uri}],
                "bufferViews": self.views, "accessors": self.accessors}


def pack(fmt, rows):
    return b"".join(struct.pack("<" + fmt, *r) for r in rows)


def uv_colour_scene():
    corners = [(-0.5, -0.5, 0.0), (0.5, -0.5, 0.0), (0.5, 0.5, 0.0), (-0.5, 0.5, 0.0)]
    uv0 = [(0.0, 1.0), (1.0, 1.0), (1.0, 0.0), (0.0, 0.0)]
    uv1 = [(0.25, 0.9), (0.8, 1.0), (0.9, 0.1), (0.1, 0.2)]  # a skewed, mirrored-ish set
    colours = [(1.0, 0.1, 0.1, 1.0), (0.1, 1.0, 0.1, 1.0), (0.1, 0.1, 1.0, 1.0), (1.0, 1.0, 1.0, 1.0)]
    blob = Blob()
    add = blob.add

    position = add(pack("3f", corners), {"componentType": 5126, "count": 4, "type": "VEC3",
                                         "min": [-0.5, -0.5, 0.0], "max": [0.5, 0.5, 0.0]})
    normal = add(pack("3f", [(0.0, 0.0, 1.0)] * 4), {"componentType": 5126, "count": 4, "type": "VEC3"})
    tex0 = add(pack("2f", uv0), {"componentType": 5126, "count": 4, "type": "VEC2"})
    tex1 = add(pack("2f", uv1), {"componentType": 5126, "count": 4, "type": "VEC2"})
    colour = add(pack("4f", colours), {"componentType": 5126, "count": 4, "type": "VEC4"})
    indices = add(bytes([0, 1, 2, 0, 2, 3]), {"componentType": 5121, "count": 6, "type": "SCALAR"})
    lambert = {"KHR_materials_specular": {"specularFactor": 0.0}}
    texture = png_rgb(4, 4, checker())
    return {
        "asset": {"version": "2.0", "generator": "render-pod/tests/scenes/make_feature_scenes.py"},
        "extensionsUsed": ["KHR_materials_specular", "KHR_texture_transform"],
        "scene": 0,
        "scenes": [{"nodes": [0, 1, 2]}],
        "nodes": [
            {"name": "checker", "mesh": 0, "translation": [-0.55, 0.0, 0.0]},
            {"name": "colours", "mesh": 1, "translation": [0.55, 0.0, 0.0]},
            {"name": "camera", "camera": 0, "translation": [0.0, 0.0, 2.8]},
        ],
        "cameras": [{"name": "camera", "type": "perspective",
                     "perspective": {"yfov": 0.6, "znear": 0.05, "aspectRatio": 160 / 120}}],
        "meshes": [
            {"name": "checker", "primitives": [{"attributes": {
                "POSITION": position, "NORMAL": normal, "TEXCOORD_0": tex0, "TEXCOORD_1": tex1},
                "indices": indices, "material": 0}]},
            {"name": "colours", "primitives": [{"attributes": {
                "POSITION": position, "NORMAL": normal, "TEXCOORD_0": tex0, "COLOR_0": colour},
                "indices": indices, "material": 1}]},
        ],
        "materials": [
            {"name": "checker", "extensions": lambert, "pbrMetallicRoughness": {
                "metallicFactor": 0.0, "roughnessFactor": 1.0,
                "baseColorTexture": {"index": 0, "texCoord": 1, "extensions": {"KHR_texture_transform": {
                    "offset": [0.2, -0.1], "rotation": 0.4, "scale": [1.5, 1.25]}}}}},
            {"name": "colours", "extensions": lambert, "pbrMetallicRoughness": {
                "metallicFactor": 0.0, "roughnessFactor": 1.0}},
        ],
        "textures": [{"source": 0, "sampler": 0}],
        "samplers": [{"magFilter": 9728, "minFilter": 9728, "wrapS": 10497, "wrapT": 10497}],
        "images": [{"uri": "data:image/png;base64," + base64.b64encode(texture).decode()}],
        **blob.fields(),
    }


def uv_sphere(radius, rings=24, segments=48):
    """Positions, normals and counter-clockwise triangle indices of a sphere."""
    positions, normals, indices = [], [], []
    for i in range(rings + 1):
        theta = math.pi * i / rings
        for j in range(segments + 1):
            phi = 2.0 * math.pi * j / segments
            n = (math.sin(theta) * math.cos(phi), math.cos(theta), -math.sin(theta) * math.sin(phi))
            normals.append(n)
            positions.append(tuple(radius * c for c in n))
    for i in range(rings):
        for j in range(segments):
            a = i * (segments + 1) + j
            b = a + segments + 1
            indices += [(a, b, a + 1), (a + 1, b, b + 1)]
    return positions, normals, indices


def glass_scene():
    """glass.gltf: a smooth and a rough glass sphere (KHR_materials_transmission, _ior 1.5,
    _volume without absorption) in front of a checker backdrop, under a white background."""
    blob = Blob()
    add = blob.add

    positions, normals, triangles = uv_sphere(0.45)
    r = 0.45
    sphere = {
        "POSITION": add(pack("3f", positions), {"componentType": 5126, "count": len(positions),
                        "type": "VEC3", "min": [-r, -r, -r], "max": [r, r, r]}),
        "NORMAL": add(pack("3f", normals), {"componentType": 5126, "count": len(normals),
                      "type": "VEC3"}),
    }
    sphere_indices = add(pack("3H", triangles), {"componentType": 5123,
                         "count": 3 * len(triangles), "type": "SCALAR"})
    corners = [(-1.6, -1.2, 0.0), (1.6, -1.2, 0.0), (1.6, 1.2, 0.0), (-1.6, 1.2, 0.0)]
    backdrop = {
        "POSITION": add(pack("3f", corners), {"componentType": 5126, "count": 4, "type": "VEC3",
                        "min": [-1.6, -1.2, 0.0], "max": [1.6, 1.2, 0.0]}),
        "NORMAL": add(pack("3f", [(0.0, 0.0, 1.0)] * 4), {"componentType": 5126, "count": 4,
                      "type": "VEC3"}),
        "TEXCOORD_0": add(pack("2f", [(0.0, 1.0), (1.0, 1.0), (1.0, 0.0), (0.0, 0.0)]),
                          {"componentType": 5126, "count": 4, "type": "VEC2"}),
    }
    quad = add(bytes([0, 1, 2, 0, 2, 3]), {"componentType": 5121, "count": 6, "type": "SCALAR"})
    dark, light = (40, 60, 160), (230, 200, 60)
    texture = png_rgb(8, 8, [[dark if (x + y) % 2 else light for x in range(8)] for y in range(8)])

    def glass(roughness):
        return {"name": f"glass {roughness}", "pbrMetallicRoughness": {
                    "baseColorFactor": [1, 1, 1, 1], "metallicFactor": 0.0,
                    "roughnessFactor": roughness},
                "extensions": {"KHR_materials_transmission": {"transmissionFactor": 1.0},
                               "KHR_materials_ior": {"ior": 1.5},
                               "KHR_materials_volume": {"thicknessFactor": 0.9}}}

    return {
        "asset": {"version": "2.0", "generator": "render-pod/tests/scenes/make_feature_scenes.py"},
        "extensionsUsed": ["KHR_materials_ior", "KHR_materials_specular",
                           "KHR_materials_transmission", "KHR_materials_volume"],
        "scene": 0,
        "scenes": [{"nodes": [0, 1, 2, 3]}],
        "nodes": [
            {"name": "smooth", "mesh": 0, "translation": [-0.55, 0.0, 0.0]},
            {"name": "rough", "mesh": 1, "translation": [0.55, 0.0, 0.0]},
            {"name": "backdrop", "mesh": 2, "translation": [0.0, 0.0, -1.0]},
            {"name": "camera", "camera": 0, "translation": [0.0, 0.0, 3.2]},
        ],
        "cameras": [{"name": "camera", "type": "perspective",
                     "perspective": {"yfov": 0.55, "znear": 0.05, "aspectRatio": 160 / 120}}],
        "meshes": [
            {"name": "smooth", "primitives": [{"attributes": sphere, "indices": sphere_indices,
                                               "material": 0}]},
            {"name": "rough", "primitives": [{"attributes": sphere, "indices": sphere_indices,
                                              "material": 1}]},
            {"name": "backdrop", "primitives": [{"attributes": backdrop, "indices": quad,
                                                 "material": 2}]},
        ],
        "materials": [
            glass(0.0),
            glass(0.35),
            {"name": "checker", "extensions": {"KHR_materials_specular": {"specularFactor": 0.0}},
             "pbrMetallicRoughness": {"metallicFactor": 0.0, "roughnessFactor": 1.0,
                                      "baseColorTexture": {"index": 0}}},
        ],
        "textures": [{"source": 0, "sampler": 0}],
        "samplers": [{"magFilter": 9728, "minFilter": 9728, "wrapS": 10497, "wrapT": 10497}],
        "images": [{"uri": "data:image/png;base64," + base64.b64encode(texture).decode()}],
        **blob.fields(),
    }


def rgbe(r, g, b):
    """One Radiance RGBE pixel: a shared exponent, 8-bit mantissas."""
    v = max(r, g, b)
    if v < 1e-32:
        return bytes(4)
    mantissa, exponent = math.frexp(v)
    scale = mantissa * 256.0 / v
    return bytes([int(r * scale), int(g * scale), int(b * scale), exponent + 128])


def sky_hdr(width=128, height=64):
    """sky.hdr: rows top down, u = 0.5 + atan2(z, x) / 2pi, v = acos(y) / pi (glTF axes)."""
    sun_u, sun_v = 0.6, 0.3  # toward +x and +z (the camera's side), 36 degrees up
    rows = []
    for j in range(height):
        v = (j + 0.5) / height
        for i in range(width):
            u = (i + 0.5) / width
            if v < 0.5:
                t = v / 0.5  # 0 at the zenith, 1 at the horizon
                pixel = (0.25 + 0.45 * t, 0.4 + 0.4 * t, 0.9 + 0.1 * t)
            else:
                pixel = (0.18, 0.12, 0.07)
            if abs(u - sun_u) * width < 1.5 and abs(v - sun_v) * height < 1.5:
                pixel = (300.0, 280.0, 240.0)
            rows.append(rgbe(*pixel))
    header = f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {height} +X {width}\n".encode()
    return header + b"".join(rows)


def environment_scene():
    """environment.gltf: three spheres on a ground quad, no lights (sky.hdr lights it)."""
    blob = Blob()
    add = blob.add
    r = 0.4
    positions, normals, triangles = uv_sphere(r)
    sphere = {
        "POSITION": add(pack("3f", positions), {"componentType": 5126, "count": len(positions),
                        "type": "VEC3", "min": [-r, -r, -r], "max": [r, r, r]}),
        "NORMAL": add(pack("3f", normals), {"componentType": 5126, "count": len(normals),
                      "type": "VEC3"}),
    }
    sphere_indices = add(pack("3H", triangles), {"componentType": 5123,
                         "count": 3 * len(triangles), "type": "SCALAR"})
    corners = [(-4.0, 0.0, 4.0), (4.0, 0.0, 4.0), (4.0, 0.0, -4.0), (-4.0, 0.0, -4.0)]
    ground = {
        "POSITION": add(pack("3f", corners), {"componentType": 5126, "count": 4, "type": "VEC3",
                        "min": [-4.0, 0.0, -4.0], "max": [4.0, 0.0, 4.0]}),
        "NORMAL": add(pack("3f", [(0.0, 1.0, 0.0)] * 4), {"componentType": 5126, "count": 4,
                      "type": "VEC3"}),
    }
    quad = add(bytes([0, 1, 2, 0, 2, 3]), {"componentType": 5121, "count": 6, "type": "SCALAR"})

    def material(name, colour, metallic, roughness):
        return {"name": name, "pbrMetallicRoughness": {
            "baseColorFactor": colour + [1], "metallicFactor": metallic,
            "roughnessFactor": roughness}}

    # The camera 1.1 m up, looking 12 degrees down at the spheres (a rotation about x).
    angle = math.radians(-12.0)
    tilt = [math.sin(angle / 2), 0.0, 0.0, math.cos(angle / 2)]
    return {
        "asset": {"version": "2.0", "generator": "render-pod/tests/scenes/make_feature_scenes.py"},
        "scene": 0,
        "scenes": [{"nodes": [0, 1, 2, 3, 4]}],
        "nodes": [
            {"name": "white", "mesh": 0, "translation": [-0.9, r, 0.0]},
            {"name": "gold", "mesh": 1, "translation": [0.0, r, -0.3]},
            {"name": "blue", "mesh": 2, "translation": [0.9, r, 0.0]},
            {"name": "ground", "mesh": 3},
            {"name": "camera", "camera": 0, "translation": [0.0, 1.1, 3.4], "rotation": tilt},
        ],
        "cameras": [{"name": "camera", "type": "perspective",
                     "perspective": {"yfov": 0.6, "znear": 0.05, "aspectRatio": 160 / 120}}],
        "meshes": [
            {"name": name, "primitives": [{"attributes": sphere, "indices": sphere_indices,
                                           "material": k}]}
            for k, name in enumerate(["white", "gold", "blue"])
        ] + [{"name": "ground", "primitives": [{"attributes": ground, "indices": quad,
                                                "material": 3}]}],
        "materials": [
            material("white", [0.8, 0.8, 0.8], 0.0, 1.0),
            material("gold", [1.0, 0.78, 0.34], 1.0, 0.3),
            material("blue", [0.1, 0.2, 0.7], 0.0, 0.15),
            material("ground", [0.5, 0.5, 0.5], 0.0, 1.0),
        ],
        **blob.fields(),
    }


def quaternion_z(degrees):
    half = math.radians(degrees) / 2
    return [0.0, 0.0, math.sin(half), math.cos(half)]


def indices(triangles, vertices):
    """Packed triangle indices and their accessor fields (16-bit while they fit)."""
    if vertices <= 65535:
        return pack("3H", triangles), {"componentType": 5123}
    return pack("3I", triangles), {"componentType": 5125}


def skin_morph_scene(animated, rings=13, segments=16, sphere_rings=16, sphere_segments=24):
    """skin_morph(_animated).gltf: a bent, skinned tube and a morphed sphere (see the header).
    bench/render/deform_cost.py asks for finer meshes."""
    blob = Blob()
    add = blob.add

    # The tube: 13 rings of 16 around the y axis from y = 0 to 2, bound at x = -0.7.
    radius, x0 = 0.22, -0.7
    tube_positions, joints, weights, tube_triangles = [], [], [], []
    for i in range(rings):
        y = 2.0 * i / (rings - 1)
        upper = min(1.0, max(0.0, (y - 0.7) / 0.6))  # 0 below y = 0.7, 1 above 1.3
        for j in range(segments):
            phi = 2 * math.pi * j / segments
            tube_positions.append((x0 + radius * math.cos(phi), y, -radius * math.sin(phi)))
            joints.append((0, 1, 0, 0))
            weights.append((1.0 - upper, upper, 0.0, 0.0))
    for i in range(rings - 1):
        for j in range(segments):
            a, b = i * segments + j, i * segments + (j + 1) % segments
            c, d = a + segments, b + segments
            tube_triangles += [(a, b, d), (a, d, c)]
    n = len(tube_positions)
    lo = [min(p[k] for p in tube_positions) for k in range(3)]
    hi = [max(p[k] for p in tube_positions) for k in range(3)]
    tube = {
        "POSITION": add(pack("3f", tube_positions), {"componentType": 5126, "count": n,
                        "type": "VEC3", "min": lo, "max": hi}),
        "JOINTS_0": add(pack("4B", joints), {"componentType": 5121, "count": n, "type": "VEC4"}),
        "WEIGHTS_0": add(pack("4f", weights), {"componentType": 5126, "count": n,
                         "type": "VEC4"}),
    }
    data, fields = indices(tube_triangles, n)
    tube_indices = add(data, {**fields, "count": 3 * len(tube_triangles), "type": "SCALAR"})
    # Inverse bind matrices (column-major): the joints sit at (x0, 0, 0) and (x0, 1, 0).
    def translation(x, y, z):
        return (1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, x, y, z, 1)
    inverse_binds = add(pack("16f", [translation(-x0, 0, 0), translation(-x0, -1, 0)]),
                        {"componentType": 5126, "count": 2, "type": "MAT4"})

    # The sphere, 0.45 across at (0.8, 0.45, 0), one target lifting its upper half.
    positions, _, triangles = uv_sphere(0.45, rings=sphere_rings, segments=sphere_segments)
    lift = [(0.0, 0.6 * max(0.0, p[1] / 0.45) ** 2, 0.0) for p in positions]
    r = 0.45
    sphere = {
        "POSITION": add(pack("3f", positions), {"componentType": 5126, "count": len(positions),
                        "type": "VEC3", "min": [-r, -r, -r], "max": [r, r, r]}),
    }
    target = {"POSITION": add(pack("3f", lift), {"componentType": 5126, "count": len(lift),
              "type": "VEC3", "min": [0.0, 0.0, 0.0], "max": [0.0, 0.6, 0.0]})}
    data, fields = indices(triangles, len(positions))
    sphere_indices = add(data, {**fields, "count": 3 * len(triangles), "type": "SCALAR"})
    corners = [(-3.0, 0.0, 3.0), (3.0, 0.0, 3.0), (3.0, 0.0, -3.0), (-3.0, 0.0, -3.0)]
    ground = {"POSITION": add(pack("3f", corners), {"componentType": 5126, "count": 4,
              "type": "VEC3", "min": [-3.0, 0.0, -3.0], "max": [3.0, 0.0, 3.0]})}
    quad = add(bytes([0, 1, 2, 0, 2, 3]), {"componentType": 5121, "count": 6, "type": "SCALAR"})

    bend, weight = (0.0, 0.0) if animated else (40.0, 0.6)
    nodes = [
        {"name": "tube", "mesh": 0, "skin": 0},
        {"name": "root joint", "translation": [x0, 0.0, 0.0], "children": [2]},
        {"name": "bend joint", "translation": [0.0, 1.0, 0.0], "rotation": quaternion_z(bend)},
        {"name": "blob", "mesh": 1, "translation": [0.8, 0.45, 0.0], "weights": [weight]},
        {"name": "ground", "mesh": 2},
        {"name": "camera", "camera": 0, "translation": [0.0, 1.3, 4.2],
         "rotation": [math.sin(math.radians(-8) / 2), 0.0, 0.0, math.cos(math.radians(-8) / 2)]},
    ]
    document = {
        "asset": {"version": "2.0", "generator": "render-pod/tests/scenes/make_feature_scenes.py"},
        "scene": 0,
        "scenes": [{"nodes": [0, 1, 3, 4, 5]}],
        "nodes": nodes,
        "skins": [{"joints": [1, 2], "inverseBindMatrices": inverse_binds, "skeleton": 1}],
        "cameras": [{"name": "camera", "type": "perspective",
                     "perspective": {"yfov": 0.6, "znear": 0.05, "aspectRatio": 160 / 120}}],
        "meshes": [
            {"name": "tube", "primitives": [{"attributes": tube, "indices": tube_indices,
                                             "material": 0}]},
            {"name": "blob", "primitives": [{"attributes": sphere, "indices": sphere_indices,
                                             "material": 1, "targets": [target]}],
             "weights": [0.0]},
            {"name": "ground", "primitives": [{"attributes": ground, "indices": quad,
                                               "material": 2}]},
        ],
        "materials": [
            {"name": "orange", "pbrMetallicRoughness": {"baseColorFactor": [0.9, 0.45, 0.1, 1],
                                                        "metallicFactor": 0.0, "roughnessFactor": 1.0}},
            {"name": "blue", "pbrMetallicRoughness": {"baseColorFactor": [0.2, 0.45, 0.9, 1],
                                                      "metallicFactor": 0.0, "roughnessFactor": 1.0}},
            {"name": "ground", "pbrMetallicRoughness": {"baseColorFactor": [0.5, 0.5, 0.5, 1],
                                                        "metallicFactor": 0.0, "roughnessFactor": 1.0}},
        ],
    }
    if animated:
        times = add(pack("f", [(0.0,), (0.5,)]), {"componentType": 5126, "count": 2,
                    "type": "SCALAR", "min": [0.0], "max": [0.5]})
        turn = add(pack("4f", [quaternion_z(0.0), quaternion_z(80.0)]),
                   {"componentType": 5126, "count": 2, "type": "VEC4"})
        grow = add(pack("f", [(0.0,), (1.2,)]), {"componentType": 5126, "count": 2,
                   "type": "SCALAR"})
        document["animations"] = [{
            "name": "pose",
            "samplers": [{"input": times, "output": turn}, {"input": times, "output": grow}],
            "channels": [{"sampler": 0, "target": {"node": 2, "path": "rotation"}},
                         {"sampler": 1, "target": {"node": 3, "path": "weights"}}],
        }]
    document.update(blob.fields())
    return document


def motion_blur_scene():
    """motion_blur.gltf: see the header."""
    blob = Blob()
    add = blob.add
    r = 0.35
    positions, normals, triangles = uv_sphere(r)
    sphere = {
        "POSITION": add(pack("3f", positions), {"componentType": 5126, "count": len(positions),
                        "type": "VEC3", "min": [-r, -r, -r], "max": [r, r, r]}),
        "NORMAL": add(pack("3f", normals), {"componentType": 5126, "count": len(normals),
                      "type": "VEC3"}),
    }
    data, fields = indices(triangles, len(positions))
    sphere_indices = add(data, {**fields, "count": 3 * len(triangles), "type": "SCALAR"})
    corners = [(-3.0, 0.0, 3.0), (3.0, 0.0, 3.0), (3.0, 0.0, -3.0), (-3.0, 0.0, -3.0)]
    ground = {"POSITION": add(pack("3f", corners), {"componentType": 5126, "count": 4,
              "type": "VEC3", "min": [-3.0, 0.0, -3.0], "max": [3.0, 0.0, 3.0]})}
    quad = add(bytes([0, 1, 2, 0, 2, 3]), {"componentType": 5121, "count": 6, "type": "SCALAR"})
    times = add(pack("f", [(0.0,), (0.5,)]), {"componentType": 5126, "count": 2,
                "type": "SCALAR", "min": [0.0], "max": [0.5]})
    # 0.4 units a frame: from x = -2.6 at frame 0 to 2.2 at frame 12; x = -0.2 at frame 6.
    slide = add(pack("3f", [(-2.6, r, 0.0), (2.2, r, 0.0)]),
                {"componentType": 5126, "count": 2, "type": "VEC3"})

    def lambertian(name, colour):
        return {"name": name, "pbrMetallicRoughness": {"baseColorFactor": colour + [1],
                "metallicFactor": 0.0, "roughnessFactor": 1.0}}

    return {
        "asset": {"version": "2.0", "generator": "render-pod/tests/scenes/make_feature_scenes.py"},
        "scene": 0,
        "scenes": [{"nodes": [0, 1, 2, 3]}],
        "nodes": [
            {"name": "sliding", "mesh": 0, "translation": [-0.2, r, 0.0]},
            {"name": "still", "mesh": 1, "translation": [0.9, r, -0.6]},
            {"name": "ground", "mesh": 2},
            {"name": "camera", "camera": 0, "translation": [0.0, 1.0, 3.6],
             "rotation": [math.sin(math.radians(-10) / 2), 0.0, 0.0,
                          math.cos(math.radians(-10) / 2)]},
        ],
        "cameras": [{"name": "camera", "type": "perspective",
                     "perspective": {"yfov": 0.6, "znear": 0.05, "aspectRatio": 160 / 120}}],
        "meshes": [
            {"name": "sliding", "primitives": [{"attributes": sphere, "indices": sphere_indices,
                                                "material": 0}]},
            {"name": "still", "primitives": [{"attributes": sphere, "indices": sphere_indices,
                                              "material": 1}]},
            {"name": "ground", "primitives": [{"attributes": ground, "indices": quad,
                                               "material": 2}]},
        ],
        "materials": [lambertian("orange", [0.9, 0.45, 0.1]), lambertian("blue", [0.2, 0.45, 0.9]),
                      lambertian("ground", [0.5, 0.5, 0.5])],
        "animations": [{"name": "slide", "samplers": [{"input": times, "output": slide}],
                        "channels": [{"sampler": 0, "target": {"node": 0,
                                                               "path": "translation"}}]}],
        **blob.fields(),
    }


def alpha_blend_scene():
    """alpha_blend.gltf: see the header."""
    blob = Blob()
    add = blob.add

    def quad(half_w, half_h):
        corners = [(-half_w, -half_h, 0.0), (half_w, -half_h, 0.0), (half_w, half_h, 0.0),
                   (-half_w, half_h, 0.0)]
        return {
            "POSITION": add(pack("3f", corners), {"componentType": 5126, "count": 4,
                            "type": "VEC3", "min": [-half_w, -half_h, 0.0],
                            "max": [half_w, half_h, 0.0]}),
            "NORMAL": add(pack("3f", [(0.0, 0.0, 1.0)] * 4), {"componentType": 5126, "count": 4,
                          "type": "VEC3"}),
            "TEXCOORD_0": add(pack("2f", [(0.0, 1.0), (1.0, 1.0), (1.0, 0.0), (0.0, 0.0)]),
                              {"componentType": 5126, "count": 4, "type": "VEC2"}),
        }

    indices = add(bytes([0, 1, 2, 0, 2, 3]), {"componentType": 5121, "count": 6, "type": "SCALAR"})
    backdrop, front = quad(1.6, 1.2), quad(0.45, 0.6)
    lambert = {"KHR_materials_specular": {"specularFactor": 0.0}}
    dark, light = (40, 60, 160), (230, 200, 60)
    checker_png = png_rgb(8, 8, [[dark if (x + y) % 2 else light for x in range(8)]
                                 for y in range(8)])
    ramp_png = png_rgb(8, 1, [[(255, 255, 255, round(255 * x / 7)) for x in range(8)]], 6)

    def lambertian(name, colour, texture=None, blend=True):
        material = {"name": name, "extensions": lambert, "pbrMetallicRoughness": {
            "baseColorFactor": colour, "metallicFactor": 0.0, "roughnessFactor": 1.0}}
        if texture is not None:
            material["pbrMetallicRoughness"]["baseColorTexture"] = {"index": texture}
        if blend:
            material["alphaMode"] = "BLEND"
        return material

    return {
        "asset": {"version": "2.0", "generator": "render-pod/tests/scenes/make_feature_scenes.py"},
        "extensionsUsed": ["KHR_materials_specular"],
        "scene": 0,
        "scenes": [{"nodes": [0, 1, 2, 3]}],
        "nodes": [
            {"name": "red", "mesh": 0, "translation": [-0.55, 0.0, 0.0]},
            {"name": "green ramp", "mesh": 1, "translation": [0.55, 0.0, 0.0]},
            {"name": "backdrop", "mesh": 2, "translation": [0.0, 0.0, -1.0]},
            {"name": "camera", "camera": 0, "translation": [0.0, 0.0, 3.2]},
        ],
        "cameras": [{"name": "camera", "type": "perspective",
                     "perspective": {"yfov": 0.55, "znear": 0.05, "aspectRatio": 160 / 120}}],
        "meshes": [
            {"name": "red", "primitives": [{"attributes": front, "indices": indices,
                                            "material": 0}]},
            {"name": "green ramp", "primitives": [{"attributes": front, "indices": indices,
                                                   "material": 1}]},
            {"name": "backdrop", "primitives": [{"attributes": backdrop, "indices": indices,
                                                 "material": 2}]},
        ],
        "materials": [
            lambertian("red", [0.9, 0.1, 0.1, 0.3]),
            lambertian("green ramp", [0.1, 0.8, 0.2, 1.0], texture=1),
            lambertian("checker", [1, 1, 1, 1], texture=0, blend=False),
        ],
        "textures": [{"source": 0, "sampler": 0}, {"source": 1, "sampler": 1}],
        "samplers": [{"magFilter": 9728, "minFilter": 9728, "wrapS": 10497, "wrapT": 10497},
                     {"magFilter": 9729, "minFilter": 9729, "wrapS": 33071, "wrapT": 33071}],
        "images": [{"uri": "data:image/png;base64," + base64.b64encode(checker_png).decode()},
                   {"uri": "data:image/png;base64," + base64.b64encode(ramp_png).decode()}],
        **blob.fields(),
    }


def main():
    with open(os.path.join(HERE, "sky.hdr"), "wb") as f:
        f.write(sky_hdr())
    for name, scene in [("uv_sets_and_vertex_colours.gltf", uv_colour_scene()),
                        ("glass.gltf", glass_scene()),
                        ("environment.gltf", environment_scene()),
                        ("skin_morph.gltf", skin_morph_scene(False)),
                        ("skin_morph_animated.gltf", skin_morph_scene(True)),
                        ("alpha_blend.gltf", alpha_blend_scene()),
                        ("motion_blur.gltf", motion_blur_scene())]:
        path = os.path.join(HERE, name)
        with open(path, "w") as f:
            json.dump(scene, f, indent=1)
            f.write("\n")
        print(path)


if __name__ == "__main__":
    main()
