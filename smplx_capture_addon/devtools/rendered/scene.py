"""Render one case with Blender (Cycles on the CPU): the picture and its map of who is where.

Everything is built in the case's camera space: Blender's camera sits at the origin
looking down -z with y up, so a point (x, y, z) of OpenCV's camera space is (x, -y, -z)
here. Two renders on a transparent film:
- the picture: people in skin and plain clothes (shirt, trousers, shoes by each vertex's
  strongest skinning weight), props, a sun and grey ambient light;
- the id map: every person and every prop a flat colour of ID_COLOURS (one sample per
  pixel, no filtering, no colour transform), so each pixel says which of them it shows.
The background is laid in afterwards (`pictures.compose`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import bpy
import numpy as np
from mathutils import Vector

from ...blender_builders.placement import camera_intrinsics
from ...body_model.names import JOINT_NAMES
from .cases import BoxSpec, CaseSpec, PersonSpec
from .pictures import ID_COLOURS, PROP_ID_COLOUR

SAMPLES = 16
_OPENCV_TO_BLENDER = np.array([1.0, -1.0, -1.0])
_BOX_FACES = ((0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3))

# Regions of the body by the joint that carries each vertex most; the rest is skin.
_SHIRT = ("spine1", "spine2", "spine3", "left_collar", "right_collar", "left_shoulder", "right_shoulder")
_SLEEVES = ("left_elbow", "right_elbow")
_TROUSERS = ("pelvis", "left_hip", "right_hip")
_TROUSER_LEGS = ("left_knee", "right_knee")
_SHOES = ("left_ankle", "right_ankle", "left_foot", "right_foot")
SKIN, SHIRT, TROUSERS, SHOES = range(4)


def face_regions(faces: np.ndarray, owner: np.ndarray, person: PersonSpec) -> np.ndarray:
    """(F,) region of each face (SKIN, SHIRT, TROUSERS, SHOES) by its first vertex's owner
    joint; sleeves and trouser legs reach the forearms and shins when long."""
    regions = np.full(len(owner), SKIN)
    parts = ((SHIRT, _SHIRT + (_SLEEVES if person.long_sleeves else ())),
             (TROUSERS, _TROUSERS + (_TROUSER_LEGS if person.long_trousers else ())),
             (SHOES, _SHOES))  # fmt: skip
    for region, joints in parts:
        regions[np.isin(owner, [JOINT_NAMES.index(name) for name in joints])] = region
    return regions[faces[:, 0]]


def render_case(
    case: CaseSpec, vertices: list[np.ndarray], faces: np.ndarray, regions: list[np.ndarray], folder: Path
) -> tuple[Path, Path]:
    """Render the picture (RGBA, transparent where nothing is) and the id map into
    `folder`: people's camera-space vertices (V, 3) each, the body's faces (F, 3) and
    each person's face regions (F,). Returns (picture, id map)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    _set_camera(scene, case)
    people = [_add_mesh(f"person {k + 1}", v, faces, scene) for k, v in enumerate(vertices)]
    props = [_add_box(box, scene) for box in case.boxes]
    for person, spec, region in zip(people, case.people, regions, strict=True):
        _dress(person, spec, region)
    for prop, box in zip(props, case.boxes, strict=True):
        prop.data.materials.append(_material(f"{box.role}", box.colour, roughness=0.7))
    _add_light(case.light, scene)
    picture = _render(scene, folder / "picture.png", SAMPLES)
    for number, person in enumerate(people):
        _flat(person, ID_COLOURS[number])
    for prop in props:
        _flat(prop, PROP_ID_COLOUR)
    scene.view_settings.view_transform = "Standard"
    scene.cycles.filter_width = 0.01
    scene.cycles.max_bounces = 0
    return picture, _render(scene, folder / "ids.png", 1)


def _set_camera(scene: bpy.types.Scene, case: CaseSpec) -> None:
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    for key, value in camera_intrinsics(case.focal_px, case.principal_point, case.width, case.height).items():
        setattr(camera.data, key, value)
    camera.data.clip_start, camera.data.clip_end = 0.01, 1000.0
    scene.collection.objects.link(camera)
    scene.camera = camera
    scene.render.resolution_x, scene.render.resolution_y = case.width, case.height
    scene.render.resolution_percentage = 100
    world = bpy.data.worlds.new("world")
    world.color = (case.light["ambient"],) * 3
    scene.world = world
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.use_denoising = False
    scene.cycles.max_bounces = 4
    scene.render.film_transparent = True
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"


def _add_mesh(name: str, vertices: np.ndarray, faces: np.ndarray, scene: bpy.types.Scene) -> bpy.types.Object:
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata((vertices * _OPENCV_TO_BLENDER).tolist(), [], np.asarray(faces).tolist())
    mesh.shade_smooth()
    obj = bpy.data.objects.new(name, mesh)
    scene.collection.objects.link(obj)
    return obj


def _add_box(box: BoxSpec, scene: bpy.types.Scene) -> bpy.types.Object:
    mesh = bpy.data.meshes.new(box.role)
    mesh.from_pydata((box.corners() * _OPENCV_TO_BLENDER).tolist(), [], _BOX_FACES)
    obj = bpy.data.objects.new(box.role, mesh)
    scene.collection.objects.link(obj)
    return obj


def _srgb_to_linear(colour) -> tuple[float, float, float]:
    c = np.asarray(colour, dtype=np.float64)
    return tuple(np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4))


def _material(name: str, colour, roughness: float) -> bpy.types.Material:
    material = bpy.data.materials.new(name)
    shader = material.node_tree.nodes["Principled BSDF"]
    shader.inputs["Base Color"].default_value = (*_srgb_to_linear(colour), 1.0)
    shader.inputs["Roughness"].default_value = roughness
    return material


def _dress(obj: bpy.types.Object, person: PersonSpec, regions: np.ndarray) -> None:
    """Skin, shirt, trousers and shoes as the mesh's four materials, by face region."""
    looks = (("skin", person.skin, 0.5), ("shirt", person.shirt, 0.8), ("trousers", person.trousers, 0.8),
             ("shoes", person.shoes, 0.4))  # fmt: skip
    for name, colour, roughness in looks:
        obj.data.materials.append(_material(name, colour, roughness))
    obj.data.polygons.foreach_set("material_index", regions.astype(np.int32))


def _flat(obj: bpy.types.Object, colour: tuple[float, float, float]) -> None:
    """Every material of `obj` becomes one flat colour, lit by nothing (for the id map)."""
    material = bpy.data.materials.new(f"{obj.name} id")
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Color"].default_value = (*colour, 1.0)
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    obj.data.materials.clear()
    obj.data.materials.append(material)


def _add_light(light: dict, scene: bpy.types.Scene) -> None:
    """The sun, shining along the case's direction (a sun shines along its own -z)."""
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    sun.data.energy = light["energy"]
    direction = Vector(np.asarray(light["direction"]) * _OPENCV_TO_BLENDER)
    sun.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
    scene.collection.objects.link(sun)


def _render(scene: bpy.types.Scene, path: Path, samples: int) -> Path:
    scene.cycles.samples = samples
    scene.render.filepath = str(path)
    with _output_to_stderr():
        bpy.ops.render.render(write_still=True)
    return path


@contextlib.contextmanager
def _output_to_stderr() -> Iterator[None]:
    """Blender's render log goes to stderr, as the benchmark's own log: stdout keeps
    only the figures (and their JSON line)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
