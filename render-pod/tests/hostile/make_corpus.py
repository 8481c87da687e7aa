#!/usr/bin/env python3
"""Writes the hostile-scene corpus next to this file: one malformed or hostile glTF per class
of attack that render-pod must refuse as bad input (exit 3). render-pod/tests/hostile.rs runs
each one and names the message it expects. Re-run after editing: python3 make_corpus.py
"""
import base64
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
TRIANGLE = struct.pack("<9f", 0, 0, 0, 1, 0, 0, 0, 1, 0)


def data_uri(raw, mime="application/octet-stream"):
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def base():
    """A valid one-triangle scene with a camera; each case breaks one thing."""
    return {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0, 1]}],
        "nodes": [
            {"camera": 0, "translation": [0, 0, 3]},
            {"mesh": 0},
        ],
        "cameras": [{"type": "perspective", "perspective": {"yfov": 0.7, "znear": 0.1}}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
             "min": [0, 0, 0], "max": [1, 1, 0]}
        ],
        "bufferViews": [{"buffer": 0, "byteLength": 36}],
        "buffers": [{"byteLength": 36, "uri": data_uri(TRIANGLE)}],
    }


def png(width, height, rows=None):
    """A PNG: real zero pixels when rows is True, else its header and a first IDAT chunk of a
    few rows (enough for a header read; the size is a claim the data never backs)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    shown = height if rows else 2
    raw = (b"\0" + b"\0" * (width * 4)) * shown
    body = chunk(b"IDAT", zlib.compress(raw, 9))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + body + chunk(b"IEND", b"")


def jpeg_header(width, height):
    """A baseline greyscale JPEG's headers claiming the size (quantisation, frame, Huffman
    tables, scan start) and a few scan bytes: enough for a header read."""
    def segment(marker, payload):
        return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload
    dqt = segment(0xDB, b"\x00" + b"\x01" * 64)
    sof = segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
    one_code = b"\x01" + b"\x00" * 15 + b"\x00"
    dht = segment(0xC4, b"\x00" + one_code + b"\x10" + one_code)
    sos = segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    return b"\xff\xd8" + dqt + sof + dht + sos + b"\x00" * 16 + b"\xff\xd9"


def glb(doc, binary):
    js = json.dumps(doc).encode()
    js += b" " * (-len(js) % 4)
    out = struct.pack("<I", len(js)) + b"JSON" + js
    if binary is not None:
        binary += b"\0" * (-len(binary) % 4)
        out += struct.pack("<I", len(binary)) + b"BIN\0" + binary
    return struct.pack("<4sII", b"glTF", 2, 12 + len(out)) + out


def with_image(doc, image):
    doc["images"] = [image]
    doc["textures"] = [{"source": 0}]
    doc["materials"] = [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}}]
    doc["meshes"][0]["primitives"][0]["material"] = 0
    return doc


def cases():
    def buffer_uri(uri):
        d = base()
        d["buffers"][0]["uri"] = uri
        return d

    yield "escape-parent.gltf", buffer_uri("../secret.bin")
    yield "escape-absolute-path.gltf", buffer_uri("/etc/passwd")
    yield "escape-file-url.gltf", buffer_uri("file:///etc/passwd")
    yield "escape-other-bucket.gltf", buffer_uri("s3://other-tenant/scene.bin")
    yield "escape-metadata-endpoint.gltf", buffer_uri(
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/")
    yield "escape-encoded-dots.gltf", buffer_uri("%2e%2e/secret.bin")
    yield "escape-backslash.gltf", buffer_uri("..\\secret.bin")
    yield "escape-symlink.gltf", buffer_uri("link.bin")
    yield "escape-image.gltf", with_image(base(), {"uri": "../secret.png"})

    d = base()
    d["accessors"][0]["count"] = 1_000_000
    d["accessors"][0]["min"], d["accessors"][0]["max"] = [0, 0, 0], [1, 1, 0]
    yield "accessor-beyond-view.gltf", d

    d = base()
    d["accessors"][0]["byteOffset"] = 2**63
    yield "accessor-offset-overflow.gltf", d

    d = base()
    d["bufferViews"][0]["byteOffset"] = 1000
    yield "view-outside-buffer.gltf", d

    d = base()
    d["bufferViews"][0]["byteStride"] = 1000
    yield "view-stride-huge.gltf", d

    # 3 billion vertices from a sparse accessor without a view: one sparse value, all zeros.
    d = base()
    d["buffers"][0] = {"byteLength": 16, "uri": data_uri(b"\0" * 16)}
    d["bufferViews"] = [{"buffer": 0, "byteLength": 4}, {"buffer": 0, "byteOffset": 4, "byteLength": 12}]
    d["accessors"][0] = {"componentType": 5126, "count": 3_000_000_000, "type": "VEC3",
                         "min": [0, 0, 0], "max": [0, 0, 0],
                         "sparse": {"count": 1,
                                    "indices": {"bufferView": 0, "componentType": 5125},
                                    "values": {"bufferView": 1}}}
    yield "sparse-expands-to-billions.gltf", d

    d = base()
    d["buffers"][0] = {"byteLength": 40, "uri": data_uri(TRIANGLE + b"\0" * 4)}
    d["bufferViews"].append({"buffer": 0, "byteOffset": 36, "byteLength": 4})
    d["accessors"][0]["sparse"] = {"count": 3, "indices": {"bufferView": 1, "componentType": 5125},
                                   "values": {"bufferView": 0}}
    yield "sparse-indices-short.gltf", d

    d = base()
    d["accessors"][0].update({"type": "SCALAR", "count": 9, "min": [0], "max": [1]})
    yield "position-wrong-type.gltf", d

    d = base()
    d["accessors"].append({"bufferView": 0, "componentType": 5126, "count": 3, "type": "SCALAR"})
    d["meshes"][0]["primitives"][0]["indices"] = 1
    yield "indices-float.gltf", d

    d = base()
    d["nodes"][1]["children"] = [1]
    yield "node-own-child.gltf", d

    d = base()
    d["nodes"].append({"children": [1]})
    d["scenes"][0]["nodes"] = [0, 1, 2]
    d["nodes"][1]["children"] = [2]
    yield "node-cycle.gltf", d

    d = base()
    d["nodes"] += [{"children": [3]}, {"children": [2]}]
    yield "node-unreachable-cycle.gltf", d

    # Exponential sharing: 64 levels of diamonds would flatten to 2^64 instances.
    d = base()
    levels = 64
    first = len(d["nodes"])
    for level in range(levels):
        child = first + 2 * (level + 1)
        kids = [child, child + 1] if level + 1 < levels else []
        d["nodes"] += [{"children": kids}, {"children": kids}]
    for level in range(levels - 1, levels):
        d["nodes"][first + 2 * level]["mesh"] = 0
    d["scenes"][0]["nodes"] += [first, first + 1]
    yield "node-exponential-sharing.gltf", d

    # Budgets are checked from the JSON before any buffer is fetched: these name external
    # buffers that do not exist, and must be refused for their size, not for the missing file.
    def declared(doc, count):
        doc["buffers"][0] = {"byteLength": 12 * count, "uri": "never-fetched.bin"}
        doc["bufferViews"][0]["byteLength"] = 12 * count
        doc["accessors"][0]["count"] = count
        return doc

    yield "triangles-over-budget.gltf", declared(base(), 90_000_000)

    d = declared(base(), 60_000)
    d["nodes"] = [d["nodes"][0]] + [{"mesh": 0} for _ in range(2_000)]
    d["scenes"][0]["nodes"] = list(range(len(d["nodes"])))
    yield "instancing-over-budget.gltf", d

    d = base()
    d["accessors"].append({"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC2"})
    d["meshes"][0]["primitives"][0]["attributes"]["NORMAL"] = 1
    yield "normal-wrong-type.gltf", d

    d = base()
    d["accessors"].append({"bufferView": 0, "componentType": 5126, "count": 9, "type": "SCALAR"})
    d["meshes"][0]["primitives"][0]["attributes"]["COLOR_0"] = 1
    yield "color-wrong-type.gltf", d

    d = base()
    d["extensionsUsed"] = d["extensionsRequired"] = ["KHR_draco_mesh_compression"]
    yield "requires-unimplemented-extension.gltf", d

    d = base()
    d["extensionsUsed"] = ["KHR_materials_transmission"]
    d["materials"] = [{"extensions": {"KHR_materials_transmission": {
        "transmissionFactor": 1.0, "transmissionTexture": {"index": 99}}}}]
    d["meshes"][0]["primitives"][0]["material"] = 0
    yield "transmission-texture-missing.gltf", d

    def skinned(joint, joints, inverse_binds):
        """base() with each vertex weighted fully to `joint` of a skin of `joints` nodes."""
        d = base()
        influences = struct.pack("<4B", joint, 0, 0, 0) * 3 + struct.pack("<4f", 1, 0, 0, 0) * 3
        d["buffers"].append({"byteLength": len(influences), "uri": data_uri(influences)})
        d["bufferViews"] += [{"buffer": 1, "byteLength": 12},
                             {"buffer": 1, "byteOffset": 12, "byteLength": 48}]
        d["accessors"] += [{"bufferView": 1, "componentType": 5121, "count": 3, "type": "VEC4"},
                           {"bufferView": 2, "componentType": 5126, "count": 3, "type": "VEC4"}]
        d["meshes"][0]["primitives"][0]["attributes"].update({"JOINTS_0": 1, "WEIGHTS_0": 2})
        d["nodes"][1]["skin"] = 0
        d["skins"] = [{"joints": [1] * joints}]
        if inverse_binds is not None:
            matrices = struct.pack("<16f", *[1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1])
            d["buffers"].append({"byteLength": 64 * inverse_binds,
                                 "uri": data_uri(matrices * inverse_binds)})
            d["bufferViews"].append({"buffer": 2, "byteLength": 64 * inverse_binds})
            d["accessors"].append({"bufferView": 3, "componentType": 5126,
                                   "count": inverse_binds, "type": "MAT4"})
            d["skins"][0]["inverseBindMatrices"] = 3
        return d

    yield "skin-joint-out-of-range.gltf", skinned(9, 1, None)
    yield "skin-inverse-binds-short.gltf", skinned(0, 2, 1)

    d = base()
    d["accessors"].append({"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC2"})
    d["meshes"][0]["primitives"][0]["targets"] = [{"POSITION": 1}]
    d["meshes"][0]["weights"] = [1.0]
    yield "morph-target-wrong-type.gltf", d

    d = base()
    d["buffers"][0] = {"byteLength": 10 * 2**30, "uri": "huge.bin"}
    yield "buffers-over-budget.gltf", d

    d = base()
    d["buffers"][0] = {"byteLength": 36, "uri": "short.bin"}
    yield "buffer-shorter-than-declared.gltf", d

    d = base()
    d["buffers"][0]["uri"] = "data:application/octet-stream;base64,@@not base64@@"
    yield "data-uri-malformed.gltf", d

    yield "image-png-claims-10-gigapixels.gltf", with_image(
        base(), {"uri": data_uri(png(100_000, 100_000), "image/png")})
    yield "image-jpeg-claims-4-gigapixels.gltf", with_image(
        base(), {"uri": data_uri(jpeg_header(65_000, 65_000), "image/jpeg")})

    # One real 4096² image used by 100 textures: 6.4 GB of texture memory.
    d = with_image(base(), {"uri": data_uri(png(4096, 4096, rows=True), "image/png")})
    d["textures"] = [{"source": 0} for _ in range(100)]
    yield "texture-reuse-over-budget.gltf", d

    d = base()
    keys = 20_000_000
    d["buffers"].append({"byteLength": 16 * keys, "uri": "never-fetched.bin"})
    d["bufferViews"] += [{"buffer": 1, "byteLength": 4 * keys},
                         {"buffer": 1, "byteOffset": 4 * keys, "byteLength": 12 * keys}]
    d["animations"] = [{"channels": [{"sampler": 0, "target": {"node": 1, "path": "translation"}}],
                        "samplers": [{"input": 1, "output": 2}]}]
    d["accessors"] += [
        {"bufferView": 1, "componentType": 5126, "count": keys, "type": "SCALAR",
         "min": [0], "max": [0]},
        {"bufferView": 2, "componentType": 5126, "count": keys, "type": "VEC3"},
    ]
    yield "keyframes-over-budget.gltf", d

    d = base()
    d["asset"]["version"] = "1.0"
    yield "gltf-version-1.gltf", d

    depth = 100_000
    yield "json-nested-100k-deep.gltf", ('{"asset":{"version":"2.0"},"extensions":{"X":'
                                         + "[" * depth + "]" * depth + "}}")

    d = base()
    d["buffers"][0] = {"byteLength": 36}
    yield "glb-missing-bin.glb", glb(d, None)

    d = base()
    d["buffers"][0] = {"byteLength": 36}
    yield "glb-truncated.glb", glb(d, TRIANGLE)[:-20]


def main():
    for name, content in cases():
        if isinstance(content, dict):
            content = json.dumps(content, separators=(",", ":"))
        if isinstance(content, str):
            content = content.encode()
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(content)
    with open(os.path.join(HERE, "short.bin"), "wb") as f:
        f.write(b"\0" * 10)


if __name__ == "__main__":
    main()
