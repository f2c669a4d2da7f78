"""Add-on preferences: where the user's SMPL-X files are, and which Python runs fits."""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

# The add-on's module name as Blender knows it (for an extension: bl_ext.REPO.ID).
ADDON_ID = __package__.rpartition(".")[0]


class SMPLXCapturePreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    smplx_folder: StringProperty(
        name="SMPL-X folder",
        description="Folder of the SMPL-X download (SMPLX_NEUTRAL.npz, ...); licensed, not bundled",
        subtype="DIR_PATH",
    )
    worker_python: StringProperty(
        name="Worker Python",
        description="A Python with the solver's packages (for example with a CUDA PyTorch). "
        "Empty: the Python that runs Blender, with the extension's bundled packages",
        subtype="FILE_PATH",
    )

    vposer: StringProperty(
        name="VPoser",
        description="Optional pose prior: your VPoser v1 or v2 folder (vposer_v1_0, V02_05); licensed, "
        "not bundled. Empty: joint limits and an L2 pose prior",
        subtype="DIR_PATH",
    )
    gmm: StringProperty(
        name="GMM pose prior",
        description="Optional pose prior: SMPLify's gmm_08.pkl, when you have it and no VPoser",
        subtype="FILE_PATH",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "smplx_folder")
        layout.prop(self, "worker_python")
        layout.prop(self, "vposer")
        layout.prop(self, "gmm")


def preferences(context: bpy.types.Context | None = None) -> SMPLXCapturePreferences | None:
    """This add-on's preferences (None when it is not registered as an add-on, e.g. in tests
    that register the classes directly)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None else None


CLASSES = (SMPLXCapturePreferences,)
