#!/usr/bin/env python3
"""Render a glTF scene with Blender Cycles (bpy 5.0.1), aligned with render-pod's conventions.

Alignment (docs/renderer.md, shared notes/renderer.md §1.1):
  one-sided emission (Emission Strength × (1 − Backfacing)), 1-px box filter, no clamping,
  no adaptive sampling, no denoising, no glossy blur, every bounce cap = B, single-scatter GGX,
  constant world colour or an equirectangular environment (--environment), camera = the glTF camera (vertical sensor fit), fixed seed.

Usage (venv with `pip install bpy==5.0.1 numpy`):
  python cycles_reference.py --scene ../../../shared/scenes/cbox.gltf --width 64 --height 64 \
      --spp 4096 --bounces 3 --exr out.exr --json out.json

Importable: `compare_cycles.py` uses `setup_scene`, `use_device` (CPU or a GPU) and `render`.
"""

import argparse
import json
import math
import os
import sys
import time

import bpy
import numpy as np


def one_sided_emission(material):
    """Multiply the Principled BSDF's Emission Strength by (1 - Backfacing)."""
    if not material.use_nodes:
        return
    tree = material.node_tree
    for node in list(tree.nodes):
        if node.type != "BSDF_PRINCIPLED":
            continue
        strength = node.inputs["Emission Strength"]
        colour = node.inputs["Emission Color"]
        if strength.is_linked:
            continue  # not produced by the glTF importer for our scenes
        value = strength.default_value
        if value == 0.0 and not colour.is_linked and max(colour.default_value[:3]) == 0.0:
            continue
        geometry = tree.nodes.new("ShaderNodeNewGeometry")
        front = tree.nodes.new("ShaderNodeMath")
        front.operation = "SUBTRACT"
        front.inputs[0].default_value = 1.0
        tree.links.new(geometry.outputs["Backfacing"], front.inputs[1])
        scaled = tree.nodes.new("ShaderNodeMath")
        scaled.operation = "MULTIPLY"
        scaled.inputs[1].default_value = value
        tree.links.new(front.outputs[0], scaled.inputs[0])
        tree.links.new(scaled.outputs[0], strength)


def single_scatter_ggx(material):
    if not material.use_nodes:
        return
    for node in material.node_tree.nodes:
        if node.type == "BSDF_PRINCIPLED":
            node.distribution = "GGX"


def environment_world(world, path, strength, rotation_degrees):
    """Light `world` with the equirectangular image at `path` as render-pod maps it: Blender's
    Environment Texture (linear interpolation) on a glTF import, turned by `rotation_degrees`
    counter-clockwise about the up axis (render-pod looks the image up at R(-rotation)·d)."""
    tree = world.node_tree
    image = bpy.data.images.load(os.path.abspath(path), check_existing=False)
    image.colorspace_settings.name = "Linear Rec.709"
    texture = tree.nodes.new("ShaderNodeTexEnvironment")
    texture.image = image
    texture.interpolation = "Linear"
    texture.projection = "EQUIRECTANGULAR"
    coordinates = tree.nodes.new("ShaderNodeTexCoord")
    mapping = tree.nodes.new("ShaderNodeMapping")
    mapping.inputs["Rotation"].default_value = (0.0, 0.0, -math.radians(rotation_degrees))
    tree.links.new(coordinates.outputs["Generated"], mapping.inputs["Vector"])
    tree.links.new(mapping.outputs["Vector"], texture.inputs["Vector"])
    background = tree.nodes.get("Background")
    tree.links.new(texture.outputs["Color"], background.inputs["Color"])
    background.inputs["Strength"].default_value = strength


def setup_scene(scene_path, width, height, spp, bounces, background, seed=7, threads=0,
                environment=None):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=os.path.abspath(scene_path))
    scene = bpy.context.scene
    cameras = [o for o in scene.objects if o.type == "CAMERA"]
    if not cameras:
        sys.exit(f"{scene_path}: no camera")
    scene.camera = cameras[0]
    for material in bpy.data.materials:
        one_sided_emission(material)
        single_scatter_ggx(material)

    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    bg = world.node_tree.nodes.get("Background")
    bg.inputs["Color"].default_value = (background[0], background[1], background[2], 1.0)
    bg.inputs["Strength"].default_value = 1.0
    if environment is not None:
        environment_world(world, *environment)
    scene.world = world

    render = scene.render
    render.engine = "CYCLES"
    render.resolution_x = width
    render.resolution_y = height
    render.resolution_percentage = 100
    render.film_transparent = False
    if threads:
        render.threads_mode = "FIXED"
        render.threads = threads
    cycles = scene.cycles
    cycles.device = "CPU"
    cycles.samples = spp
    cycles.seed = seed
    cycles.use_adaptive_sampling = False
    cycles.use_denoising = False
    cycles.max_bounces = bounces
    cycles.diffuse_bounces = bounces
    cycles.glossy_bounces = bounces
    cycles.transmission_bounces = bounces
    cycles.transparent_max_bounces = bounces
    cycles.volume_bounces = bounces
    cycles.sample_clamp_direct = 0.0
    cycles.sample_clamp_indirect = 0.0
    cycles.blur_glossy = 0.0
    cycles.caustics_reflective = True
    cycles.caustics_refractive = True
    cycles.pixel_filter_type = "BOX"
    cycles.filter_width = 1.0
    cycles.use_light_tree = True
    render.image_settings.file_format = "OPEN_EXR"
    render.image_settings.color_depth = "32"
    render.image_settings.exr_codec = "ZIP"
    scene.view_settings.view_transform = "Standard"
    return scene


GPU_DEVICE_TYPES = ("CUDA", "OPTIX")


def use_device(scene, device_type="CPU"):
    """Make Cycles render `scene` on `device_type` (CPU, CUDA or OPTIX); returns a description of
    the devices it will use. Call it after `setup_scene`: reading the factory settings resets the
    preferences. Exits non-zero when a GPU type has no device, because Cycles itself would quietly
    render on the CPU instead."""
    if device_type == "CPU":
        scene.cycles.device = "CPU"
        return f"CPU ({scene.render.threads} threads)"
    if device_type not in GPU_DEVICE_TYPES:
        sys.exit(f"unknown Cycles device type {device_type!r}; use CPU, {', '.join(GPU_DEVICE_TYPES)}")
    prefs = bpy.context.preferences.addons["cycles"].preferences
    try:
        prefs.compute_device_type = device_type
    except TypeError:
        sys.exit(f"Cycles {bpy.app.version_string}: this build has no {device_type} support")
    prefs.refresh_devices()  # what get_devices() did; it is deprecated and returns None in 5.0
    devices = prefs.get_devices_for_type(device_type)
    gpus = [d for d in devices if d.type == device_type]
    if not gpus:
        found = ", ".join(f"{d.name} ({d.type})" for d in prefs.devices) or "none"
        sys.exit(f"Cycles {bpy.app.version_string}: no {device_type} device available (found: {found}); "
                 "refusing to fall back to the CPU. Check the NVIDIA driver (nvidia-smi) and, in a "
                 "container, the GPU runtime (--gpus all).")
    # The GPUs only: get_devices_for_type also lists the CPU, which would join the render.
    for d in devices:
        d.use = d.type == device_type
    scene.cycles.device = "GPU"
    if not prefs.has_active_device():
        sys.exit(f"Cycles: could not enable the {device_type} devices")
    return ", ".join(f"{d.name} ({d.type})" for d in gpus)


def render(scene, exr_path, spp=None):
    """Render to `exr_path`; returns (seconds, pixels as float32 [h, w, 3], top row first)."""
    if spp is not None:
        scene.cycles.samples = spp
    scene.render.filepath = os.path.abspath(exr_path)
    start = time.perf_counter()
    bpy.ops.render.render(write_still=True)
    seconds = time.perf_counter() - start
    image = bpy.data.images.load(os.path.abspath(exr_path), check_existing=False)
    w, h = image.size
    pixels = np.array(image.pixels[:], dtype=np.float32).reshape(h, w, 4)[::-1, :, :3]
    bpy.data.images.remove(image)
    return seconds, pixels


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", required=True)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--spp", type=int, default=4096)
    parser.add_argument("--bounces", type=int, default=3)
    parser.add_argument("--background", default="0,0,0")
    parser.add_argument("--environment", help="equirectangular .hdr/.exr instead of --background")
    parser.add_argument("--environment-strength", type=float, default=1.0)
    parser.add_argument("--environment-rotation", type=float, default=0.0,
                        help="degrees counter-clockwise about the up axis, seen from above")
    parser.add_argument("--frame", type=int, help="render this frame of the scene's animation "
                        "(glTF time = frame / 24 s, as the importer keys it)")
    parser.add_argument("--motion-blur", type=float, default=0.0,
                        help="shutter in frames, centred on the frame (0: none)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--exr", required=True)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    background = [float(v) for v in args.background.split(",")]
    environment = None
    if args.environment:
        environment = (args.environment, args.environment_strength, args.environment_rotation)
    scene = setup_scene(args.scene, args.width, args.height, args.spp, args.bounces, background,
                        args.seed, environment=environment)
    if args.frame is not None:
        scene.frame_set(args.frame)
    if args.motion_blur > 0:
        scene.render.use_motion_blur = True
        scene.render.motion_blur_shutter = args.motion_blur
        scene.render.motion_blur_position = "CENTER"
        for obj in scene.objects:
            obj.cycles.motion_steps = 4  # 2^(4-1) = 8 steps of deformation, when any
    seconds, pixels = render(scene, args.exr)
    mean = pixels.reshape(-1, 3).mean(axis=0)
    result = {
        "renderer": f"Blender Cycles {bpy.app.version_string} (CPU)",
        "scene": os.path.basename(args.scene),
        "width": args.width,
        "height": args.height,
        "samplesPerPixel": args.spp,
        "maxBounces": args.bounces,
        "background": background,
        **({"environment": {"file": os.path.basename(args.environment),
                            "strength": args.environment_strength,
                            "rotationDegrees": args.environment_rotation}}
           if args.environment else {}),
        **({"frame": args.frame} if args.frame is not None else {}),
        **({"motionBlur": args.motion_blur} if args.motion_blur > 0 else {}),
        "seed": args.seed,
        "mean": [float(v) for v in mean],
        "renderSeconds": seconds,
        "settings": "one-sided emission, box filter 1px, no clamp/adaptive/denoise/blur-glossy, "
        "all bounce caps = maxBounces, single-scatter GGX",
    }
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
