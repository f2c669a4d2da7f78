"""Read an FBX file with ufbx (an FBX reader independent of Blender) and print what the
export tests check, as JSON: `python ufbx_facts.py FILE.fbx`.

It runs in a process of its own: ufbx 0.0.5's Python binding sometimes crashes when
its objects are released inside a process that also holds Blender, so the tests keep
it apart from the bpy module and read its answer.
"""

from __future__ import annotations

import json
import sys

import ufbx


def held(sequence) -> list:
    """ufbx's lists and elements live only while referenced: hold each one."""
    return [sequence[i] for i in range(len(sequence))]


def facts(path: str) -> dict:
    scene = ufbx.load_file(path)
    nodes = held(scene.nodes)
    by_name = {node.name: node for node in nodes}
    transforms = {node.name: node.local_transform for node in nodes}
    scales = {name: transform.scale for name, transform in transforms.items()}
    worlds = {node.name: node.node_to_world for node in nodes}
    columns = {name: world.c3 for name, world in worlds.items()}
    meshes = held(scene.meshes)
    skins = [held(mesh.skin_deformers) for mesh in meshes]
    clusters = [held(skin[0].clusters) if skin else [] for skin in skins]
    blends = [held(mesh.blend_deformers) for mesh in meshes]
    channels = [held(blend[0].channels) if blend else [] for blend in blends]
    stacks = held(scene.anim_stacks)
    return {
        "unit_meters": scene.settings.unit_meters,
        "nodes": sorted(by_name),
        "bones": sorted(node.name for node in nodes if node.bone is not None),
        "parents": {node.name: node.parent.name if node.parent is not None else None for node in nodes},
        "scale": {name: [s.x, s.y, s.z] for name, s in scales.items()},
        "position": {name: [c.x, c.y, c.z] for name, c in columns.items()},
        "meshes": [
            {
                "name": mesh.name,
                "vertices": mesh.num_vertices,
                "clusters": sorted(cluster.bone_node.name for cluster in mesh_clusters),
                "channels": [channel.name for channel in mesh_channels],
            }
            for mesh, mesh_clusters, mesh_channels in zip(meshes, clusters, channels, strict=True)
        ],
        "anim_stacks": [[stack.time_begin, stack.time_end] for stack in stacks],
    }


if __name__ == "__main__":
    print(json.dumps(facts(sys.argv[1])))
