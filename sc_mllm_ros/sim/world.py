"""The pull world: a scene's MuJoCo model, its RGB-D camera, ground truth, and the suction pull primitive.

The arm is driven kinematically along IK solutions (a stiff position-controlled robot); the object is
simulated.  The suction cup is a ``connect`` equality between the movable part and a mocap body that
follows the TCP.  It only seals when the cup meets the movable part within 30 deg of the plane normal
(a real cup's compliance limit) and lets go when stretched more than ``break_distance``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless; set MUJOCO_GL=osmesa where EGL is missing

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

from sc_mllm_ros.geometry import CameraIntrinsics, Pose, project, rotation_from_up_forward  # noqa: E402
from sc_mllm_ros.sim.labels import failure_cause, GroundTruth, ROTATION_LIMIT_DEG  # noqa: E402
from sc_mllm_ros.sim.objects import _yaw_matrix, SceneSpec  # noqa: E402
from sc_mllm_ros.sim.robot import (  # noqa: E402
    ARM_JOINTS,
    HOME_Q,
    panda_spec,
    PandaIK,
    ROBOT_GROUP,
    TCP_SITE,
)

PHASES = ("pre_pose", "approach", "attach", "pull", "done")
_OPTICAL_FROM_MJCAM = np.diag([1.0, -1.0, -1.0])  # MuJoCo cameras look down -z with +y up


@dataclass(frozen=True)
class PullConfig:
    pre_distance: float = 0.15  # paper: pre-pose at p - 0.15 up
    overshoot: float = 0.02  # how far past p the cup may travel looking for the surface
    pull_distance: float = 0.2
    approach_speed: float = 0.3  # m/s
    pull_speed: float = 0.25
    break_distance: float = 0.03  # the cup lets go when stretched this far
    success_distance: float = 0.03  # paper: moved > 0.03 ...
    success_alignment: float = 0.3  # ... and the motion agrees with the pull direction (cos > 0.3)
    timestep: float = 0.002
    settle_time: float = 0.1
    waypoint_spacing: float = 0.02


@dataclass(frozen=True)
class Observation:
    rgb: np.ndarray  # HxWx3 uint8
    depth: np.ndarray  # HxW float32 metres (z in the optical frame)
    intrinsics: CameraIntrinsics
    camera_pose: np.ndarray  # 4x4 world_from_camera_optical


@dataclass(frozen=True)
class ExecutionResult:
    success: bool
    articulation_delta: float  # joint motion in the opening direction (rad or m)
    end_obs: Observation
    ee_pose: Pose  # the TCP where the cup met the surface (or stopped), camera frame
    cause: (
        str  # the paper's label of the executed pose: success | position | rotation | position and rotation
    )
    message: str
    attached: bool = False
    moved: float = 0.0  # displacement of the pulled point (m)


def _quat_wxyz(rot: np.ndarray) -> list[float]:
    x, y, z, w = Rotation.from_matrix(rot).as_quat()
    return [w, x, y, z]


def look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """world_from_camera_optical rotation for a camera at ``position`` looking at ``target``, world z up."""
    fwd = np.asarray(target, float) - np.asarray(position, float)
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    return np.column_stack([right, down, fwd])


def _add_geoms(body, geoms, group: int = 0) -> None:
    for g in geoms:
        if g.kind == "box":
            body.add_geom(
                type=mujoco.mjtGeom.mjGEOM_BOX,
                pos=g.pos,
                size=g.size,
                rgba=g.rgba,
                group=group,
                contype=0,
                conaffinity=0,
                density=300.0,
            )
        else:  # cylinder with its axis along x: size = (radius, half length)
            body.add_geom(
                type=mujoco.mjtGeom.mjGEOM_CYLINDER,
                pos=g.pos,
                size=[g.size[0], g.size[1], 0.0],
                quat=[np.sqrt(0.5), 0.0, np.sqrt(0.5), 0.0],
                rgba=g.rgba,
                group=group,
                contype=0,
                conaffinity=0,
                density=300.0,
            )


def build_model(scene: SceneSpec, image_size: int) -> mujoco.MjModel:
    """Compile the Panda, the floor, the scene's object, the camera and the suction constraint."""
    spec = panda_spec()
    spec.option.timestep = PullConfig.timestep
    spec.visual.quality.shadowsize = 0
    spec.visual.quality.offsamples = 0
    spec.visual.global_.offwidth = max(640, image_size)
    spec.visual.global_.offheight = max(480, image_size)
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    spec.visual.headlight.diffuse = [0.35, 0.35, 0.35]
    world = spec.worldbody
    world.add_geom(
        type=mujoco.mjtGeom.mjGEOM_PLANE,
        size=[3, 3, 0.1],
        rgba=[0.55, 0.55, 0.58, 1],
        contype=0,
        conaffinity=0,
    )
    world.add_light(
        type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
        dir=scene.light_dir,
        pos=[0, 0, 3],
        diffuse=[0.6, 0.6, 0.6],
        castshadow=False,
    )
    rot_obj = _yaw_matrix(scene.object_yaw)
    obj = world.add_body(name="object", pos=scene.object_pos, quat=_quat_wxyz(rot_obj))
    _add_geoms(obj, scene.fixed_geoms)
    part = obj.add_body(name="part", pos=scene.part_pos)
    _add_geoms(part, scene.part_geoms)
    lo, hi = scene.joint_range
    hinge = scene.joint_type == "hinge"
    part.add_joint(
        name="part_joint",
        type=mujoco.mjtJoint.mjJNT_HINGE if hinge else mujoco.mjtJoint.mjJNT_SLIDE,
        axis=scene.joint_axis,
        range=[lo, hi],
        limited=mujoco.mjtLimited.mjLIMITED_TRUE,
        damping=0.3 if hinge else 2.0,
        armature=0.01,
    )
    world.add_body(name="suction_anchor", mocap=True)
    spec.add_equality(
        type=mujoco.mjtEq.mjEQ_CONNECT,
        name1="part",
        name2="suction_anchor",
        objtype=mujoco.mjtObj.mjOBJ_BODY,
        active=False,
        solref=[0.01, 1.0],
    )
    cam_rot = look_at(np.asarray(scene.camera_pos), np.asarray(scene.camera_target)) @ _OPTICAL_FROM_MJCAM
    world.add_camera(name="camera", pos=scene.camera_pos, quat=_quat_wxyz(cam_rot), fovy=scene.camera_fovy)
    return spec.compile()


class PullWorld:
    """One scene, ready to render, label and execute pull attempts on (``reset`` restores it)."""

    def __init__(self, scene: SceneSpec, image_size: int = 112, config: PullConfig | None = None):
        if image_size < 16:
            raise ValueError(f"image_size must be >= 16 pixels, got {image_size}")
        self.scene = scene
        self.config = config or PullConfig()
        self.image_size = image_size
        self.model = build_model(scene, image_size)
        self.model.opt.timestep = self.config.timestep
        self.data = mujoco.MjData(self.model)
        try:
            self.renderer = mujoco.Renderer(self.model, image_size, image_size)
        except mujoco.FatalError as err:
            raise RuntimeError(
                f"headless rendering failed ({err}); MUJOCO_GL must be egl or osmesa before mujoco is first "
                "imported: import sc_mllm_ros.sim first or export MUJOCO_GL=egl"
            ) from err
        for flag in (
            mujoco.mjtRndFlag.mjRND_SHADOW,
            mujoco.mjtRndFlag.mjRND_REFLECTION,
            mujoco.mjtRndFlag.mjRND_SKYBOX,
        ):
            self.renderer.scene.flags[flag] = 0
        self.ik = PandaIK(self.model)
        self.arm_qpos = self.ik.arm_qpos
        self.arm_dof = np.array([self.model.joint(n).dofadr[0] for n in ARM_JOINTS])
        self.part_body = self.model.body("part").id
        self.part_joint = self.model.joint("part_joint")
        self.anchor_mocap = self.model.body("suction_anchor").mocapid[0]
        self.tcp_site = self.model.site(TCP_SITE).id
        self.camera_id = self.model.camera("camera").id
        # The arm rests turned away from the object, out of the camera's way.
        self.home_q = HOME_Q.copy()
        self.home_q[0] = -np.sign(scene.object_pos[1]) * 1.3
        self._hold_against_gravity()
        self.intrinsics = CameraIntrinsics.from_fov(scene.camera_fovy, image_size, image_size)
        self._set_initial_state()
        self.camera_pose = np.eye(4)
        self.camera_pose[:3, :3] = self.data.cam_xmat[self.camera_id].reshape(3, 3) @ _OPTICAL_FROM_MJCAM
        self.camera_pose[:3, 3] = self.data.cam_xpos[self.camera_id]
        self._camera_from_world = np.linalg.inv(self.camera_pose)
        self._initial_obs = self._observe()
        self.ground_truth = self._ground_truth()

    def _hold_against_gravity(self) -> None:
        """Hinge friction that holds a horizontal-axis part (lid, oven door) where it is left."""
        j = self.part_joint.id
        if self.scene.joint_type != "hinge" or abs(self.scene.joint_axis[2]) > 0.5:
            return
        com = self.model.body_ipos[self.part_body]
        lever = np.linalg.norm(np.cross(com, np.asarray(self.scene.joint_axis)))
        self.model.dof_frictionloss[self.model.jnt_dofadr[j]] = (
            1.3 * self.model.body_mass[self.part_body] * 9.81 * lever
        )

    # -- state and rendering -------------------------------------------------------------------------------
    @property
    def object_name(self) -> str:
        return self.scene.object_name

    @property
    def joint_names(self) -> list[str]:
        return [*ARM_JOINTS, "part_joint"]

    def joint_positions(self) -> np.ndarray:
        return np.append(self.data.qpos[self.arm_qpos], self.data.qpos[self.part_joint.qposadr[0]])

    def ee_pose(self) -> Pose:
        """Current TCP pose in the camera optical frame."""
        return self._to_camera(
            self.data.site_xpos[self.tcp_site], self.data.site_xmat[self.tcp_site].reshape(3, 3)
        )

    def _set_initial_state(self) -> None:
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self.arm_qpos] = self.home_q
        self.data.eq_active[0] = 0
        mujoco.mj_forward(self.model, self.data)

    def reset(self) -> Observation:
        """Back to the initial state (arm tucked, part closed, cup released); returns the initial image."""
        self._set_initial_state()
        return self._initial_obs

    def _render(self, mode: str) -> np.ndarray:
        r = self.renderer
        r.disable_depth_rendering()
        r.disable_segmentation_rendering()
        if mode == "depth":
            r.enable_depth_rendering()
        elif mode == "segmentation":
            r.enable_segmentation_rendering()
        r.update_scene(self.data, camera=self.camera_id)
        return r.render()

    def _observe(self) -> Observation:
        return Observation(
            rgb=self._render("rgb").copy(),
            depth=self._render("depth").astype(np.float32),
            intrinsics=self.intrinsics,
            camera_pose=self.camera_pose.copy(),
        )

    def render_segmentation(self) -> np.ndarray:
        """Per-pixel geom id (-1 for background)."""
        seg = self._render("segmentation")
        return np.where(seg[..., 1] == mujoco.mjtObj.mjOBJ_GEOM, seg[..., 0], -1)

    def _to_camera(self, position: np.ndarray, rotation: np.ndarray) -> Pose:
        c = self._camera_from_world
        return Pose(position=c[:3, :3] @ position + c[:3, 3], rotation=c[:3, :3] @ rotation)

    def _part_point_world(self, local: np.ndarray) -> np.ndarray:
        return self.data.xpos[self.part_body] + self.data.xmat[self.part_body].reshape(3, 3) @ local

    def _ground_truth(self) -> GroundTruth:
        seg = self.render_segmentation()
        mask = (seg >= 0) & (self.model.geom_bodyid[np.maximum(seg, 0)] == self.part_body)
        rot_obj = self.data.xmat[self.model.body("object").id].reshape(3, 3)
        c = self._camera_from_world[:3, :3]
        normal = c @ rot_obj @ np.asarray(self.scene.plane_normal)
        point = self._to_camera(self._part_point_world(np.asarray(self.scene.contact)), np.eye(3)).position
        forward = c @ rot_obj @ np.asarray(self.scene.forward)
        rot = rotation_from_up_forward(-normal, forward)
        return GroundTruth(
            affordance_mask=mask,
            plane_normal=normal,
            contact=project(point, self.intrinsics),
            contact_point=point,
            up=rot[:, 2],
            forward=rot[:, 0],
        )

    # -- the pull primitive --------------------------------------------------------------------------------
    def _solve_path(
        self, start: np.ndarray, end: np.ndarray, rotation: np.ndarray, q: np.ndarray, nominal: np.ndarray
    ):
        """IK along the straight TCP segment; stops at the first unreachable waypoint."""
        n = max(1, int(np.ceil(np.linalg.norm(end - start) / self.config.waypoint_spacing)))
        qs, tcps = [q], [self.ik.tcp_position()]
        for s in np.linspace(0.0, 1.0, n + 1)[1:]:
            q, ok = self.ik.solve(start + s * (end - start), rotation, q, nominal=nominal, max_iters=20)
            if not ok:
                return qs, tcps, False
            qs.append(q)
            tcps.append(self.ik.tcp_position())
        return qs, tcps, True

    def _follow(self, qs, tcps, duration: float, attached_local: np.ndarray | None, on_tick=None) -> bool:
        """Step physics while the arm tracks the joint path; returns False when the cup let go."""
        n_steps = max(1, int(round(duration / self.config.timestep)))
        seg = len(qs) - 1
        holding = attached_local is not None
        for i in range(1, n_steps + 1):
            u = seg * i / n_steps
            k = min(int(u), seg - 1) if seg > 0 else 0
            f = u - k if seg > 0 else 0.0
            q = qs[k] if seg == 0 else (1 - f) * qs[k] + f * qs[k + 1]
            tcp = tcps[k] if seg == 0 else (1 - f) * tcps[k] + f * tcps[k + 1]
            self.data.qpos[self.arm_qpos] = q
            self.data.qvel[self.arm_dof] = 0.0
            self.data.mocap_pos[self.anchor_mocap] = tcp
            mujoco.mj_step(self.model, self.data)
            if holding and i % 10 == 0:
                stretch = np.linalg.norm(self._part_point_world(attached_local) - tcp)
                if stretch > self.config.break_distance:
                    self.data.eq_active[0] = 0
                    holding = False
            if on_tick is not None and i % 25 == 0:
                on_tick(i / n_steps)
        mujoco.mj_forward(self.model, self.data)
        return holding

    def execute(self, pose: Pose, on_phase: Callable[[str, float], None] | None = None) -> ExecutionResult:
        """Run the pull primitive for a TCP ``pose`` (camera optical frame) from the initial state."""
        cfg = self.config
        self._set_initial_state()
        phase = on_phase or (lambda name, progress: None)
        t = self.camera_pose
        p = t[:3, :3] @ np.asarray(pose.position, float) + t[:3, 3]
        rot = t[:3, :3] @ rotation_from_up_forward(pose.up, pose.forward)
        up = rot[:, 2]
        pre = p - cfg.pre_distance * up
        phase("pre_pose", 0.0)
        q_pre, _, ok = self.ik.solve_from_seeds(pre, rot)
        if not ok:
            return self._result(False, 0.0, pose, "inverse kinematics cannot reach the pre-pose")
        rot = self.ik.tcp_rotation()  # the roll about the cup's axis is IK's choice
        up = rot[:, 2]
        self.data.qpos[self.arm_qpos] = q_pre
        mujoco.mj_forward(self.model, self.data)
        phase("pre_pose", 1.0)

        # The cup travels along its axis until it meets the first surface (or p + overshoot).
        geom = np.array([-1], dtype=np.int32)
        normal = np.zeros(3)
        groups = np.array([int(g != ROBOT_GROUP) for g in range(6)], dtype=np.uint8)
        hit = mujoco.mj_ray(self.model, self.data, pre, up, groups, 1, -1, geom, normal)
        reach = cfg.pre_distance + cfg.overshoot
        travel = hit if 0.0 <= hit <= reach else reach
        touch = pre + travel * up
        qs, tcps, ok = self._solve_path(self.ik.tcp_position(), touch, rot, q_pre, q_pre)
        if not ok:
            return self._result(False, 0.0, pose, "inverse kinematics cannot reach the contact point")
        self._follow(qs, tcps, travel / cfg.approach_speed, None, lambda s: phase("approach", s))
        contact_pose = (
            self.data.site_xpos[self.tcp_site].copy(),
            self.data.site_xmat[self.tcp_site].reshape(3, 3),
        )
        cup_axis = contact_pose[1][:, 2]

        on_part = 0.0 <= hit <= reach and self.model.geom_bodyid[geom[0]] == self.part_body
        plane_normal = self.data.xmat[self.part_body].reshape(3, 3) @ np.asarray(self.scene.plane_normal)
        tilt = np.degrees(np.arccos(np.clip(np.dot(cup_axis, -plane_normal), -1.0, 1.0)))
        sealed = on_part and tilt <= ROTATION_LIMIT_DEG
        attached_local = None
        if sealed:
            xmat = self.data.xmat[self.part_body].reshape(3, 3)
            attached_local = xmat.T @ (contact_pose[0] - self.data.xpos[self.part_body])
            self.model.eq_data[0, 0:3] = attached_local
            self.model.eq_data[0, 3:6] = 0.0
            self.data.mocap_pos[self.anchor_mocap] = contact_pose[0]
            self.data.eq_active[0] = 1
        phase("attach", 1.0)

        probe = attached_local if sealed else np.asarray(self.scene.contact)
        start_point = self._part_point_world(probe)
        start_q = self.data.qpos[self.part_joint.qposadr[0]]
        end = contact_pose[0] - cfg.pull_distance * up
        qs, tcps, reached = self._solve_path(contact_pose[0], end, rot, qs[-1], q_pre)
        dist = np.linalg.norm(tcps[-1] - contact_pose[0])
        held = self._follow(
            qs, tcps, max(dist, 1e-3) / cfg.pull_speed, attached_local, lambda s: phase("pull", s)
        )
        self._follow(qs[-1:], tcps[-1:], cfg.settle_time, attached_local if held else None)
        moved_vec = self._part_point_world(probe) - start_point
        moved = float(np.linalg.norm(moved_vec))
        align = float(np.dot(moved_vec, -up) / moved) if moved > 1e-9 else 0.0
        delta = float(self.data.qpos[self.part_joint.qposadr[0]] - start_q)
        success = moved > cfg.success_distance and align > cfg.success_alignment
        if success:
            msg = f"pulled the {self.object_name}: moved {moved:.3f} m"
        elif not on_part:
            msg = "the suction cup did not touch the movable part"
        elif not sealed:
            msg = f"the suction cup met the part {tilt:.0f} deg off its normal and did not seal"
        else:
            msg = f"the part moved only {moved:.3f} m (alignment {align:.2f})"
        if not reached:
            msg += "; the arm stopped early (pull path out of reach)"
        phase("done", 1.0)
        return self._result(success, delta, self._to_camera(*contact_pose), msg, attached=sealed, moved=moved)

    def _result(
        self, success: bool, delta: float, ee: Pose, message: str, attached: bool = False, moved: float = 0.0
    ) -> ExecutionResult:
        """Package an outcome; ``ee`` is where the cup met the surface (the commanded pose if unreachable)."""
        try:
            pixel = project(ee.position, self.intrinsics)
        except ValueError:
            pixel = (-1.0, -1.0)
        cause = failure_cause(self.ground_truth, pixel, ee.up)
        return ExecutionResult(
            success=bool(success),
            articulation_delta=delta,
            end_obs=self._observe(),
            ee_pose=ee,
            cause=cause,
            message=message,
            attached=attached,
            moved=moved,
        )

    def close(self) -> None:
        """Free the renderer's GL context."""
        self.renderer.close()

    def __enter__(self) -> PullWorld:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
