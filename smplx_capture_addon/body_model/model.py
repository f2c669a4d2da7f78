"""The differentiable body model: parameters in, vertices, joints and keypoints out.

`BodyModel` holds a model file's arrays as tensors (no other state) and runs the
functions of `lbs`. Its parameters follow the SMPL-X conventions of the `smplx` package:

    betas (B, S)  expression (B, E)  global_orient (B, 3)  body_pose (B, 63)
    jaw_pose (B, 3)  leye_pose (B, 3)  reye_pose (B, 3)  transl (B, 3)
    left_hand_pose / right_hand_pose (B, P): P PCA coefficients (hand_pca=P) or the
        full 15 x 3 axis-angle pose (hand_pca=None). The file's mean hand pose is added
        unless flat_hand_mean is True.

Keypoints come out in the order of `names.KEYPOINT_NAMES` (plus the face contour when
`face_contour=True`). With `vertices=False` only the vertices that keypoints need are
skinned: that is the fitter's fast path (about 200 vertices instead of the whole mesh).
With `face_landmarks=False` the keypoints stop before the face landmarks (for a fit
that does not weigh them: fewer operations).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from . import jacobian, lbs, pullback
from .model_file import BodyModelData
from .names import NUM_HAND_JOINTS, NUM_JOINTS, POSE_BLOCKS

NECK_JOINT = 12


@dataclass
class BodyOutput:
    """vertices (B, V, 3) or None; joints (B, 55, 3); keypoints (B, K, 3);
    full_pose (B, 55, 3) axis-angle, hand poses expanded and mean included."""

    vertices: Tensor | None
    joints: Tensor
    keypoints: Tensor
    full_pose: Tensor


@dataclass
class _Posed:
    """What a forward pass computed on the way, for `keypoint_jacobian` and `keypoint_vjp`:
    local and world rotations (B, 55, 3, 3), rest joints (B, 55, 3), the skinning
    transforms' translations (B, 55, 3, without `transl`), shaped rest points
    (B, P, 3) (shape and pose correctives applied), translation (B, 1, 3), and where the
    surface keypoints lie among the points (see `BodyModel._surface_embedding`)."""

    rotations: Tensor
    world_rotations: Tensor
    rest_joints: Tensor
    translations: Tensor
    shaped: Tensor
    transl: Tensor
    embedding: tuple[Tensor, Tensor, Tensor]


class BodyModel(nn.Module):
    def __init__(
        self,
        data: BodyModelData,
        num_betas: int = 10,
        num_expression: int = 10,
        hand_pca: int | None = 12,
        flat_hand_mean: bool = False,
        face_contour: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if face_contour and not data.has_face_contour:
            raise ValueError(f"{data.path} has no face-contour embedding")
        self.data = data
        self.num_betas = min(num_betas, data.num_shape)
        self.num_expression = min(num_expression, data.num_expression)
        self.hand_pca = hand_pca
        self.face_contour = face_contour

        def buffer(name: str, array, kind: torch.dtype = dtype) -> None:
            self.register_buffer(name, torch.as_tensor(array).to(kind), persistent=False)

        directions = torch.cat(
            [
                torch.as_tensor(data.shapedirs[:, :, : self.num_betas]),
                torch.as_tensor(data.exprdirs[:, :, : self.num_expression]),
            ],
            dim=2,
        ).double()  # (V, 3, K)
        template = torch.as_tensor(data.v_template).double()
        regressor = torch.as_tensor(data.j_regressor).double()
        num_vertices = template.shape[0]
        buffer("full_template", template.reshape(-1))
        buffer("full_directions", directions.permute(2, 0, 1).reshape(-1, num_vertices * 3))
        buffer("joint_template", (regressor @ template).reshape(-1))
        joint_directions = torch.einsum("jv,vck->kjc", regressor, directions)  # (K, J, 3)
        buffer("joint_directions", joint_directions.reshape(-1, NUM_JOINTS * 3))
        parents = torch.as_tensor(data.parents, dtype=torch.long)
        bones = joint_directions - joint_directions[:, parents.clamp(min=0)] * (parents >= 0)[None, :, None]
        buffer("bone_directions", bones.reshape(-1, NUM_JOINTS * 3))  # each rest joint less its parent's
        buffer("full_weights", data.weights)
        buffer("faces", data.faces, torch.long)
        if data.has_pose_correctives:
            buffer(
                "full_posedirs", torch.as_tensor(data.posedirs).permute(2, 0, 1).reshape(-1, num_vertices * 3)
            )
        else:
            self.register_buffer("full_posedirs", None)
        for side, components, mean in (
            ("left", data.hand_components_left, data.hand_mean_left),
            ("right", data.hand_components_right, data.hand_mean_right),
        ):
            # Full 45-d hand poses go through an identity basis: one code path for both.
            basis = components[:hand_pca] if hand_pca else torch.eye(3 * NUM_HAND_JOINTS)
            buffer(f"{side}_hand_components", basis)
            buffer(f"{side}_hand_mean", mean * (0.0 if flat_hand_mean else 1.0))
        buffer("full_keypoint_ids", data.vertex_keypoint_ids, torch.long)
        buffer("full_landmark_faces", data.faces[data.landmark_faces], torch.long)
        buffer("landmark_bary", data.landmark_bary)
        if face_contour:
            buffer("full_contour_faces", data.faces[data.contour_faces], torch.long)  # (79, 17, 3)
            buffer("contour_bary", data.contour_bary)
            neck_chain = [NECK_JOINT]
            while data.parents[neck_chain[-1]] >= 0:
                neck_chain.append(int(data.parents[neck_chain[-1]]))
            buffer("neck_chain", neck_chain, torch.long)
        self.tree = lbs.kinematic_tree(data.parents.tolist())
        buffer("subtree", jacobian.subtree_matrix(self.tree.parents))
        self._register_keypoint_subset(buffer)

    def _register_keypoint_subset(self, buffer) -> None:
        """Copies of the per-vertex buffers restricted to the vertices keypoints need,
        with the keypoint embedding re-indexed into that subset (the fitter's fast path)."""
        needed = [self.full_keypoint_ids, self.full_landmark_faces.reshape(-1)]
        if self.face_contour:
            needed.append(self.full_contour_faces.reshape(-1))
        subset = torch.unique(torch.cat(needed))
        columns = (subset[:, None] * 3 + torch.arange(3)).reshape(-1)
        buffer("kp_template", self.full_template[columns])
        buffer("kp_directions", self.full_directions[:, columns])
        buffer("kp_weights", self.full_weights[subset])
        if self.full_posedirs is None:
            self.register_buffer("kp_posedirs", None)
        else:
            buffer("kp_posedirs", self.full_posedirs[:, columns])
        buffer("kp_keypoint_ids", torch.searchsorted(subset, self.full_keypoint_ids), torch.long)
        buffer("kp_landmark_faces", torch.searchsorted(subset, self.full_landmark_faces), torch.long)
        if self.face_contour:
            buffer("kp_contour_faces", torch.searchsorted(subset, self.full_contour_faces), torch.long)
        self._register_lever_pairs(buffer, len(subset))

    def _register_lever_pairs(self, buffer, points: int) -> None:
        """The (keypoint, joint) pairs whose levers can be non-zero (`jacobian.moving_pairs`)
        for `keypoint_jacobian`, and how many of them the keypoints before the face
        landmarks have."""
        tables = [self.kp_keypoint_ids[:, None], self.kp_landmark_faces]  # each keypoint's points
        if self.face_contour:
            tables.append(self.kp_contour_faces.transpose(0, 1).flatten(1))  # every table's triangle

        def may_lie_on(table: Tensor) -> Tensor:
            lies_on = torch.zeros(len(table), points, dtype=torch.bool)
            lies_on[torch.arange(len(table))[:, None], table] = True
            return lies_on

        surface_points = torch.cat([may_lie_on(table) for table in tables])
        pairs = jacobian.moving_pairs(self.subtree.double(), (self.kp_weights != 0).double(), surface_points)
        buffer("lever_pairs", pairs, torch.long)
        self.pairs_before_face = int((pairs[0] < NUM_JOINTS + len(self.kp_keypoint_ids)).sum())

    def _apply(self, fn, recurse=True):  # keep the index tensors of the tree on our device
        super()._apply(fn, recurse)
        self.tree = self.tree.to(self.full_template.device)
        return self

    @property
    def num_hand_params(self) -> int:
        return self.hand_pca or 3 * NUM_HAND_JOINTS

    def full_pose(
        self,
        global_orient: Tensor,
        body_pose: Tensor,
        jaw_pose: Tensor,
        leye_pose: Tensor,
        reye_pose: Tensor,
        left_hand_pose: Tensor,
        right_hand_pose: Tensor,
    ) -> Tensor:
        """Axis-angle of all 55 joints (B, 55, 3), hands expanded from PCA or full."""
        left = left_hand_pose @ self.left_hand_components + self.left_hand_mean
        right = right_hand_pose @ self.right_hand_components + self.right_hand_mean
        pose = torch.cat([global_orient, body_pose, jaw_pose, leye_pose, reye_pose, left, right], dim=1)
        return pose.reshape(-1, NUM_JOINTS, 3)

    @property
    def parameter_sizes(self) -> dict[str, int]:
        """Every parameter block and its width, in the order of the module docstring."""
        poses = {name: 3 * joints for name, joints in POSE_BLOCKS}
        poses.update(left_hand_pose=self.num_hand_params, right_hand_pose=self.num_hand_params)
        return {"betas": self.num_betas, "expression": self.num_expression, **poses, "transl": 3}

    def zeros(self, batch_size: int) -> dict[str, Tensor]:
        """Neutral parameters for a batch (every parameter block, all zeros)."""
        device, dtype = self.full_template.device, self.full_template.dtype
        return {
            name: torch.zeros(batch_size, size, device=device, dtype=dtype)
            for name, size in self.parameter_sizes.items()
        }

    def forward(self, vertices: bool = True, face_landmarks: bool = True, **params: Tensor) -> BodyOutput:
        """Pose the body. Parameters left out are zero; see the module docstring."""
        return self._pose(vertices, params, face_landmarks)[0]

    def keypoint_jacobian(
        self, face_landmarks: bool = True, **params: Tensor
    ) -> tuple[BodyOutput, dict[str, Tensor]]:
        """The fast path's output (vertices=False, `face_landmarks` as in forward) and the
        exact derivatives of its keypoints with respect to each parameter block: name ->
        (B, K, 3, block size), in the block's own parameterisation (hand PCA coefficients
        when the model uses PCA). See `jacobian`; the face contour's choice of table is
        piecewise constant."""
        out, posed = self._pose(False, params, face_landmarks)
        batch_size = out.joints.shape[0]
        derivative, axes = jacobian.rotation_derivatives(out.full_pose, posed.rotations)
        above = jacobian.parent_rotations(posed.world_rotations, self.tree.parents)
        blended = jacobian.blended_rotations(posed.world_rotations, self.kp_weights)
        omega = jacobian.world_axes(axes, above)
        subtree = self.subtree.to(omega.dtype)
        posed_joints = out.joints - posed.transl
        joint_coefficients, point_coefficients = jacobian.coefficient_jacobians(
            posed.world_rotations, above, blended, self.tree.parents, subtree, self.kp_weights,
            self.joint_directions, self.kp_directions,
        )  # fmt: skip

        def surface(point_part: Tensor) -> Tensor:
            """Points' values (B, P, C...) -> the surface keypoints' (B, K - 55, C...): the
            surface embedding is linear."""
            mapped = _surface_keypoints(point_part.flatten(2), *posed.embedding)
            return mapped.view(batch_size, -1, *point_part.shape[2:])

        def keypoints(joint_part: Tensor, point_part: Tensor) -> Tensor:
            return torch.cat([joint_part, surface(point_part)], dim=1)

        # Levers map to the keypoints before the cross product: fewer points than vertices.
        levers = keypoints(
            jacobian.joint_levers(posed_joints, subtree),
            jacobian.point_levers(posed.world_rotations, posed_joints, posed.rest_joints, posed.shaped,
                                  self.kp_weights, subtree),
        )  # fmt: skip
        pairs = self.lever_pairs if face_landmarks else self.lever_pairs[:, : self.pairs_before_face]
        pose = jacobian.pose_jacobian(omega, levers, pairs)  # (B, K, 3, 55, 3)
        if self.kp_posedirs is not None:
            pose[:, NUM_JOINTS:, :, 1:] += jacobian.corrective_jacobian(
                derivative, blended, self.kp_posedirs, *posed.embedding
            )
        pose = pose.flatten(3)  # (B, K, 3, 55 * 3)
        coefficients = keypoints(joint_coefficients, point_coefficients)
        parts = pose.split([3 * count for _, count in POSE_BLOCKS], dim=-1)
        result = dict(zip([name for name, _ in POSE_BLOCKS], parts, strict=True))
        for side in ("left", "right"):  # full axis-angle -> the model's hand parameters
            components = getattr(self, f"{side}_hand_components")
            result[f"{side}_hand_pose"] = result[f"{side}_hand_pose"] @ components.T
        result["betas"] = coefficients[..., : self.num_betas]
        result["expression"] = coefficients[..., self.num_betas :]
        identity = torch.eye(3, dtype=pose.dtype, device=pose.device)
        result["transl"] = keypoints(identity.expand(batch_size, NUM_JOINTS, 3, 3),
                                     identity.expand(*posed.shaped.shape, 3))  # fmt: skip
        return out, result

    def keypoint_vjp(
        self, face_landmarks: bool = True, **params: Tensor
    ) -> tuple[BodyOutput, Callable[[Tensor], dict[str, Tensor]]]:
        """The fast path's output (vertices=False, `face_landmarks` as in forward) and its
        pullback: d loss / d keypoints (B, K, 3) -> d loss / d each parameter block, name ->
        (B, block size), keypoint_jacobian's blocks contracted with it, at a fraction of
        their cost (reverse mode in closed form, see `pullback`; no autograd graph)."""
        out, posed = self._pose(False, params, face_landmarks)
        return out, lambda grad: self._pull_back(out, posed, grad)

    def _pull_back(self, out: BodyOutput, posed: _Posed, grad: Tensor) -> dict[str, Tensor]:
        world = posed.world_rotations
        point_grad = pullback.surface_pullback(grad[:, NUM_JOINTS:], posed.shaped.shape[1], *posed.embedding)
        torques, forces, carried = pullback.joint_loads(
            world, out.joints - posed.transl, posed.translations, posed.shaped, self.kp_weights, self.subtree,
            grad[:, :NUM_JOINTS], point_grad,
        )  # fmt: skip
        above = jacobian.parent_rotations(world, self.tree.parents)
        local = lbs.small_matmul(above.transpose(-1, -2), torch.stack([torques, forces], -1))  # (B, J, 3, 2)
        rest_grad = pullback.rest_point_pullback(world, self.kp_weights, point_grad)
        feature_grad = None
        if self.kp_posedirs is not None:
            feature_grad = (rest_grad.flatten(1) @ self.kp_posedirs.T).view(len(grad), NUM_JOINTS - 1, 3, 3)
        axes = jacobian.rotation_axes(out.full_pose)
        pose = pullback.pose_pullback(axes, posed.rotations, local[..., 0], feature_grad).flatten(1)
        parts = pose.split([3 * count for _, count in POSE_BLOCKS], dim=-1)
        result = dict(zip([name for name, _ in POSE_BLOCKS], parts, strict=True))
        for side in ("left", "right"):  # full axis-angle -> the model's hand parameters
            components = getattr(self, f"{side}_hand_components")
            result[f"{side}_hand_pose"] = result[f"{side}_hand_pose"] @ components.T
        coefficients = pullback.coefficient_pullback(
            world, local[..., 1], carried, rest_grad, self.bone_directions, self.joint_directions,
            self.kp_directions,
        )  # fmt: skip
        result["betas"], result["expression"] = coefficients.split([self.num_betas, self.num_expression], 1)
        result["transl"] = grad[:, :NUM_JOINTS].sum(1) + point_grad.sum(1)
        return result

    def _pose(
        self, vertices: bool, params: dict[str, Tensor], face_landmarks: bool = True
    ) -> tuple[BodyOutput, _Posed]:
        batch_size = next((p.shape[0] for p in params.values() if p is not None), 1)
        sizes = self.parameter_sizes
        unknown = params.keys() - sizes.keys()
        if unknown:
            raise TypeError(f"unknown body parameters: {', '.join(sorted(unknown))}")
        template = self.full_template
        values = {
            name: params[name] if params.get(name) is not None
            else template.new_zeros(batch_size, size)
            for name, size in sizes.items()
        }  # fmt: skip
        coefficients = torch.cat([values["betas"], values["expression"]], dim=1)
        pose = self.full_pose(
            values["global_orient"], values["body_pose"], values["jaw_pose"], values["leye_pose"],
            values["reye_pose"], values["left_hand_pose"], values["right_hand_pose"],
        )  # fmt: skip
        rotations = lbs.axis_angle_to_matrix(pose)
        rest_joints = lbs.blend(coefficients, self.joint_directions, self.joint_template).view(
            -1, NUM_JOINTS, 3
        )
        world_r, posed_joints = lbs.forward_kinematics(rotations, rest_joints, self.tree)
        transforms = lbs.skinning_transforms(world_r, posed_joints, rest_joints)

        # "full_": every vertex; "kp_": only the vertices that keypoints need.
        part = "full_" if vertices else "kp_"
        shaped = lbs.blend(coefficients, getattr(self, part + "directions"), getattr(self, part + "template"))
        posedirs = getattr(self, part + "posedirs")
        if posedirs is not None:
            shaped = shaped + lbs.pose_feature(rotations) @ posedirs
        shaped = shaped.view(batch_size, -1, 3)
        transl = values["transl"][:, None, :]
        skinned = lbs.skin(shaped, getattr(self, part + "weights"), transforms) + transl
        embedding = self._surface_embedding(rotations, part, face_landmarks)
        surface = _surface_keypoints(skinned, *embedding)
        out = BodyOutput(
            vertices=skinned if vertices else None,
            joints=posed_joints + transl,
            keypoints=torch.cat([posed_joints + transl, surface], dim=1),
            full_pose=pose,
        )
        return out, _Posed(rotations, world_r, rest_joints, transforms[..., 9:], shaped, transl, embedding)

    def _surface_embedding(
        self, rotations: Tensor, part: str, face_landmarks: bool = True
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Where the surface keypoints lie among the points of `part` ("full_" or "kp_"):
        the vertex keypoints' ids (V,), then the face landmarks' (and contour's) triangles
        (B, L, 3) and barycentric weights (B, L, 3); L = 0 without `face_landmarks`."""
        batch_size = rotations.shape[0]
        faces = getattr(self, part + "landmark_faces")[None].expand(batch_size, -1, -1)
        bary = self.landmark_bary[None].expand(batch_size, -1, -1)
        if not face_landmarks:
            faces, bary = faces[:, :0], bary[:, :0]
        elif self.face_contour:
            bins = lbs.neck_yaw_bins(rotations, self.neck_chain, self.contour_bary.shape[0])
            faces = torch.cat([faces, getattr(self, part + "contour_faces")[bins]], dim=1)
            bary = torch.cat([bary, self.contour_bary[bins]], dim=1)
        return getattr(self, part + "keypoint_ids"), faces, bary


def _surface_keypoints(points: Tensor, vertex_ids: Tensor, faces: Tensor, bary: Tensor) -> Tensor:
    """The surface keypoints (vertex keypoints, then face landmarks and contour) of
    `points` (B, P, C), as `BodyModel._surface_embedding` places them -> (B, V + L, C)."""
    picked = points[:, vertex_ids]
    if faces.shape[1] == 0:
        return picked
    return torch.cat([picked, lbs.surface_points(points, faces, bary)], dim=1)
