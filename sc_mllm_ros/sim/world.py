"""The pull world: a scene's MuJoCo model, its RGB-D camera, ground truth, and the suction pull primitive.

The arm is driven kinematically along IK solutions (a stiff position-controlled robot); the object is
simulated.  The suction cup is a ``connect`` equality between the target part and a mocap body that
follows the commanded straight TCP path.  It seals only when its rim sits flat on the target part
(:meth:`PullWorld.seal_check`), holds ``seal_force`` below 15 deg of tilt and nothing at 30 deg
(:func:`seal_strength`), and lets go once the force that moves the part exceeds that.  The paper's 30 deg
rotation LABEL is separate code (:mod:`sc_mllm_ros.sim.labels`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
import os
import threading

os.environ.setdefault("MUJOCO_GL", "egl")  # headless; set MUJOCO_GL=osmesa where EGL is missing

import mujoco  # noqa: E402
from mujoco.rendering.classic import gl_context  # noqa: E402
import numpy as np  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

from sc_mllm_ros.geometry import (  # noqa: E402
    angle_between_deg,
    CameraIntrinsics,
    Pose,
    project,
    rotation_from_up_forward,
)
from sc_mllm_ros.sim.labels import failure_cause, GroundTruth  # noqa: E402
from sc_mllm_ros.sim.objects import _look_at, _yaw_matrix, CUP_RADIUS, SceneSpec  # noqa: E402
from sc_mllm_ros.sim.robot import (  # noqa: E402
    ARM_JOINTS,
    HOME_Q,
    panda_spec,
    PandaIK,
    ROBOT_GROUP,
    TCP_SITE,
)

PHASES = ("pre_pose", "approach", "attach", "pull", "done")
MAX_RANGE = 10.0  # metres: farther surfaces (the sky) return no depth, like a RealSense
_OPTICAL_FROM_MJCAM = np.diag([1.0, -1.0, -1.0])  # MuJoCo cameras look down -z with +y up


@dataclass(frozen=True)
class PullConfig:
    pre_distance: float = 0.15  # ManipLLM: pre-pose at p - 0.15 up
    overshoot: float = 0.02  # how far past p the cup may travel looking for the surface
    pull_distance: float = 0.5  # ManipLLM: pull to p - 0.5 up (as far as the arm reaches)
    approach_speed: float = 0.3  # m/s
    pull_speed: float = 0.25
    seal_force: float = 30.0  # N, the cup's holding force when it sits flat
    seal_full_deg: float = 15.0  # full holding force below this tilt ...
    seal_zero_deg: float = 30.0  # ... falling linearly to none at this one
    seal_flatness: float = 0.003  # m: rim contacts must lie this close to one plane
    rim_rays: int = 8
    success_joint: float = 0.03  # ManipLLM: the joint moved > 0.03 (rad or m) ...
    success_range_fraction: float = 0.5  # ... or > half its range ...
    success_alignment: float = 0.3  # ... and the motion agrees with the pull direction (cos > 0.3)
    opened_range_fraction: float = 0.25  # the stricter "opened": a quarter of the joint's range
    timestep: float = 0.002
    settle_time: float = 0.1
    waypoint_spacing: float = 0.02


@dataclass(frozen=True)
class Observation:
    rgb: np.ndarray  # HxWx3 uint8 (exposure and pixel noise applied)
    depth: np.ndarray  # HxW float32 metres (z in the optical frame), RealSense-like noise, NaN = dropout
    intrinsics: CameraIntrinsics
    camera_pose: np.ndarray  # 4x4 world_from_camera_optical


@dataclass(frozen=True)
class ExecutionResult:
    success: bool  # ManipLLM's rule
    articulation_delta: float  # joint motion in the opening direction (rad or m)
    end_obs: Observation
    ee_pose: Pose  # the TCP where the cup met the surface (or stopped), camera frame
    cause: (
        str  # the paper's label of the executed pose: success | position | rotation | position and rotation
    )
    message: str
    attached: bool = False  # the cup sealed
    moved: float = 0.0  # displacement of the pulled point (m)
    unreachable: bool = False  # the arm could not reach the pre-pose or the contact: nothing was tried
    opened: bool = False  # the stricter rate: the joint moved >= opened_range_fraction of its range


def _quat_wxyz(rot: np.ndarray) -> list[float]:
    x, y, z, w = Rotation.from_matrix(rot).as_quat()
    return [w, x, y, z]


def _add_geoms(body, geoms, group: int = 0) -> None:
    for g in geoms:
        common = {"rgba": g.rgba, "group": group, "contype": 0, "conaffinity": 0, "density": 300.0}
        if g.material:
            common["material"] = g.material
        if g.kind == "box":
            body.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, pos=g.pos, size=g.size, **common)
        else:  # cylinder with its axis along x: size = (radius, half length)
            body.add_geom(
                type=mujoco.mjtGeom.mjGEOM_CYLINDER,
                pos=g.pos,
                size=[g.size[0], g.size[1], 0.0],
                quat=[np.sqrt(0.5), 0.0, np.sqrt(0.5), 0.0],
                **common,
            )


_BUILTINS = {
    "checker": mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
    "gradient": mujoco.mjtBuiltin.mjBUILTIN_GRADIENT,
    "flat": mujoco.mjtBuiltin.mjBUILTIN_FLAT,
}
_MARKS = {
    "none": mujoco.mjtMark.mjMARK_NONE,
    "edge": mujoco.mjtMark.mjMARK_EDGE,
    "cross": mujoco.mjtMark.mjMARK_CROSS,
    "random": mujoco.mjtMark.mjMARK_RANDOM,
}


def _add_materials(spec: mujoco.MjSpec, scene: SceneSpec) -> None:
    for m in scene.materials:
        spec.add_texture(
            name=f"tex_{m.name}",
            type=mujoco.mjtTexture.mjTEXTURE_2D,
            builtin=_BUILTINS[m.builtin],
            width=64,
            height=64,
            rgb1=m.rgb1,
            rgb2=m.rgb2,
            mark=_MARKS[m.mark],
            markrgb=[1.0 - x for x in m.rgb1],
            random=m.random,
        )
        mat = spec.add_material(name=m.name, texrepeat=list(m.repeat))
        mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = f"tex_{m.name}"


def build_model(scene: SceneSpec, image_size: int) -> mujoco.MjModel:
    """Compile the Panda, floor, backdrop, the scene's object, distractors, lights, camera and suction."""
    spec = panda_spec()
    spec.option.timestep = PullConfig.timestep
    spec.visual.quality.shadowsize = 1024
    spec.visual.quality.offsamples = 0
    spec.visual.global_.offwidth = max(640, image_size)
    spec.visual.global_.offheight = max(480, image_size)
    spec.visual.headlight.ambient = [0.3, 0.3, 0.3]
    spec.visual.headlight.diffuse = [0.2, 0.2, 0.2]
    _add_materials(spec, scene)
    names = {m.name for m in scene.materials}
    world = spec.worldbody
    plain = {"contype": 0, "conaffinity": 0}
    world.add_geom(
        type=mujoco.mjtGeom.mjGEOM_PLANE,
        size=[3, 3, 0.1],
        rgba=[0.55, 0.55, 0.58, 1],
        material="floor" if "floor" in names else "",
        **plain,
    )
    rot_obj = _yaw_matrix(scene.object_yaw)
    back = np.asarray(scene.object_pos) - rot_obj @ np.array([1.2, 0.0, 0.0])
    world.add_geom(  # a backdrop wall behind the object
        type=mujoco.mjtGeom.mjGEOM_BOX,
        pos=[back[0], back[1], 1.5],
        quat=_quat_wxyz(rot_obj),
        size=[0.01, 2.5, 1.5],
        rgba=[0.7, 0.7, 0.7, 1],
        material="wall" if "wall" in names else "",
        **plain,
    )
    for light in scene.lights:
        world.add_light(
            type=mujoco.mjtLightType.mjLIGHT_SPOT,
            pos=light.pos,
            dir=light.direction,
            diffuse=light.diffuse,
            cutoff=60.0,
            castshadow=light.shadow,
        )
    _add_geoms(world, scene.distractors)
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
        damping=scene.joint_damping,
        frictionloss=scene.joint_friction,
        armature=0.01,
    )
    world.add_body(name="suction_anchor", mocap=True)
    spec.add_equality(
        type=mujoco.mjtEq.mjEQ_CONNECT,
        name1="part",
        name2="suction_anchor",
        objtype=mujoco.mjtObj.mjOBJ_BODY,
        active=False,
        solref=[0.02, 1.0],  # the cup's lip is compliant
    )
    cam_rot = _look_at(np.asarray(scene.camera_pos), np.asarray(scene.camera_target), scene.camera_roll)
    world.add_camera(
        name="camera",
        pos=scene.camera_pos,
        quat=_quat_wxyz(cam_rot @ _OPTICAL_FROM_MJCAM),
        fovy=scene.camera_fovy,
    )
    return spec.compile()


def seal_strength(tilt_deg: float, cfg: PullConfig) -> float:
    """Holding force (N) of a cup tilted ``tilt_deg`` off the surface normal: full, then linear to 0."""
    span = cfg.seal_zero_deg - cfg.seal_full_deg
    return cfg.seal_force * float(np.clip((cfg.seal_zero_deg - tilt_deg) / span, 0.0, 1.0))


def depth_noise(depth: np.ndarray, rng: np.random.Generator, dropout: float) -> np.ndarray:
    """RealSense-like depth: sigma 1.2 mm + 1.9 mm (z - 0.4)^2; random, depth-edge and far dropout (NaN).

    Beyond ``MAX_RANGE`` nothing returns.
    """
    z = depth.astype(np.float32)
    noisy = z + rng.normal(size=z.shape).astype(np.float32) * (0.0012 + 0.0019 * (z - 0.4) ** 2)
    gy, gx = np.gradient(z)
    edges = np.hypot(gx, gy) > 0.02 * np.maximum(z, 0.1)  # depth discontinuities lose returns
    lost = (rng.random(z.shape) < dropout) | (edges & (rng.random(z.shape) < 0.7)) | (z > MAX_RANGE)
    noisy[lost] = np.nan
    return noisy


_THREAD_GL = threading.local()


def _thread_gl_context(size: int) -> gl_context.GLContext:
    """This thread's GL context for ``size``-pixel images (a context is current in one thread at a time)."""
    contexts = _THREAD_GL.__dict__.setdefault("contexts", {})
    if size not in contexts:
        contexts[size] = gl_context.GLContext(size, size)
    return contexts[size]


class _Renderer(mujoco.Renderer):
    """``mujoco.Renderer`` on its thread's one GL context, shared by the worlds built in that thread.

    A fresh GL context per world cost about a quarter of a dataset scene's time (the context, and the
    driver's set-up on the first ``MjrContext`` made in it); each world still gets its own ``MjrContext``
    (its textures), ~10 ms.  This is ``mujoco.Renderer.__init__`` (mujoco is pinned) except where the
    context comes from, and a scene of 1000 geoms instead of 10000 (ours have tens; 20-40 ms less).
    """

    def __init__(self, model: mujoco.MjModel, size: int) -> None:
        self._gl_context = self._mjr_context = None  # close() is safe if this fails part way
        self._width = self._height = size
        self._model = model
        self._scene = mujoco.MjvScene(model=model, maxgeom=1000)
        self._scene_option = mujoco.MjvOption()
        self._rect = mujoco.MjrRect(0, 0, size, size)
        self._gl_context = _thread_gl_context(size)
        self._gl_context.make_current()
        self._mjr_context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150.value)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self._mjr_context)
        self._mjr_context.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        self._depth_rendering = self._segmentation_rendering = False

    def render(self, *, out: np.ndarray | None = None) -> np.ndarray:
        self._gl_context.make_current()
        # Into this world's framebuffer: the thread's other worlds bind theirs on the shared context.
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self._mjr_context)
        return super().render(out=out)

    def close(self) -> None:
        """Free this world's ``MjrContext``; the GL context stays for the thread's next world."""
        if self._mjr_context is not None:
            self._gl_context.make_current()
            self._mjr_context.free()
        self._mjr_context = None


class PullWorld:
    """One scene, ready to render, label and execute pull attempts on (``reset`` restores it).

    Observations are noisy (exposure, pixel noise, RealSense-like depth); the ground truth is computed from
    the clean render.  ``affordance=True`` executes a grid of contacts to find where a pull with the
    ground-truth direction really succeeds (seconds per scene, see :mod:`sc_mllm_ros.sim.affordance`);
    otherwise ``ground_truth.affordance_mask`` is the target part's mask.
    """

    def __init__(
        self,
        scene: SceneSpec,
        image_size: int = 224,
        config: PullConfig | None = None,
        affordance: bool = False,
    ):
        if image_size < 16:
            raise ValueError(f"image_size must be >= 16 pixels, got {image_size}")
        self.scene = scene
        self.config = config or PullConfig()
        self.image_size = image_size
        self.model = build_model(scene, image_size)
        self.model.opt.timestep = self.config.timestep
        self.data = mujoco.MjData(self.model)
        try:
            self.renderer = _Renderer(self.model, image_size)
        except mujoco.FatalError as err:
            raise RuntimeError(
                f"headless rendering failed ({err}); MUJOCO_GL must be egl or osmesa before mujoco is first "
                "imported: import sc_mllm_ros.sim first or export MUJOCO_GL=egl"
            ) from err
        for flag in (mujoco.mjtRndFlag.mjRND_REFLECTION, mujoco.mjtRndFlag.mjRND_SKYBOX):
            self.renderer.scene.flags[flag] = 0
        self.ik = PandaIK(self.model)
        self.arm_qpos = self.ik.arm_qpos
        self.arm_dof = np.array([self.model.joint(n).dofadr[0] for n in ARM_JOINTS])
        self.part_body = self.model.body("part").id
        self.part_joint = self.model.joint("part_joint")
        self.part_dof = int(self.part_joint.dofadr[0])
        self.anchor_mocap = self.model.body("suction_anchor").mocapid[0]
        self.tcp_site = self.model.site(TCP_SITE).id
        self.camera_id = self.model.camera("camera").id
        # The arm rests turned away from the object, out of the camera's way.
        self.home_q = HOME_Q.copy()
        self.home_q[0] = -np.sign(scene.object_pos[1] or 1.0) * 1.3
        self._hold_against_gravity()
        self.intrinsics = CameraIntrinsics.from_fov(scene.camera_fovy, image_size, image_size)
        self._n_obs = 0
        self._set_initial_state()
        self.camera_pose = np.eye(4)
        self.camera_pose[:3, :3] = self.data.cam_xmat[self.camera_id].reshape(3, 3) @ _OPTICAL_FROM_MJCAM
        self.camera_pose[:3, 3] = self.data.cam_xpos[self.camera_id]
        self._camera_from_world = np.linalg.inv(self.camera_pose)
        # The initial state's clean frame, rendered once: the first observation and any attempt that ends
        # before the arm moves show it (each with its own noise).
        self._initial_clean = (self._render("rgb"), self._render("depth"))
        self.clean_depth = self._initial_clean[1]
        self._initial_obs = self._observe(self._initial_clean)
        self.ground_truth = self._ground_truth()
        if affordance:
            from sc_mllm_ros.sim.affordance import affordance_mask

            self.ground_truth = replace(self.ground_truth, affordance_mask=affordance_mask(self))

    def _hold_against_gravity(self) -> None:
        """Hinge friction that holds a horizontal-axis part (lid, oven door) where it is left."""
        j = self.part_joint.id
        if self.scene.joint_type != "hinge" or abs(self.scene.joint_axis[2]) > 0.5:
            return
        com = self.model.body_ipos[self.part_body]
        lever = np.linalg.norm(np.cross(com, np.asarray(self.scene.joint_axis)))
        self.model.dof_frictionloss[self.model.jnt_dofadr[j]] += (
            1.1 * self.model.body_mass[self.part_body] * 9.81 * lever
        )

    # -- state and rendering -------------------------------------------------------------------------------
    @property
    def object_name(self) -> str:
        """The target part as the task names it ("top drawer", "left door of the cabinet", ...)."""
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
        self.data.qpos[self.part_joint.qposadr[0]] = self.scene.initial_q
        self.data.eq_active[0] = 0
        mujoco.mj_forward(self.model, self.data)

    def reset(self) -> Observation:
        """Back to the initial state (arm tucked, part as it started, cup released); the initial image."""
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

    def _observe(self, clean: tuple[np.ndarray, np.ndarray] | None = None) -> Observation:
        """A noisy RGB-D frame of the current state (or of its ``clean`` RGB and depth, rendered already).

        The noise is drawn from (scene seed, frame count), so runs repeat exactly.
        """
        rng = np.random.default_rng([self.scene.seed, 4242, self._n_obs])
        self._n_obs += 1
        clean_rgb, clean_depth = clean or (self._render("rgb"), self._render("depth"))
        rgb = clean_rgb.astype(np.float32) * self.scene.exposure
        rgb += rng.normal(0.0, self.scene.pixel_noise, size=rgb.shape)
        return Observation(
            rgb=np.clip(rgb, 0, 255).astype(np.uint8),
            depth=depth_noise(clean_depth, rng, self.scene.depth_dropout),
            intrinsics=self.intrinsics,
            camera_pose=self.camera_pose.copy(),
        )

    def render_segmentation(self) -> np.ndarray:
        """Per-pixel geom id (-1 for background)."""
        seg = self._render("segmentation")
        # int(): comparing an array with the enum itself goes pixel by pixel in Python (~0.1 s)
        return np.where(seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1)

    def part_mask(self) -> np.ndarray:
        """Pixels of the target part in the current state."""
        seg = self.render_segmentation()
        return (seg >= 0) & (self.model.geom_bodyid[np.maximum(seg, 0)] == self.part_body)

    def _to_camera(self, position: np.ndarray, rotation: np.ndarray) -> Pose:
        c = self._camera_from_world
        return Pose(position=c[:3, :3] @ position + c[:3, 3], rotation=c[:3, :3] @ rotation)

    def _part_point_world(self, local: np.ndarray) -> np.ndarray:
        return self.data.xpos[self.part_body] + self.data.xmat[self.part_body].reshape(3, 3) @ local

    def _ground_truth(self) -> GroundTruth:
        mask = self.part_mask()
        rot_part = self.data.xmat[self.part_body].reshape(3, 3)
        c = self._camera_from_world[:3, :3]
        normal = c @ rot_part @ np.asarray(self.scene.plane_normal)
        point = self._to_camera(self._part_point_world(np.asarray(self.scene.contact)), np.eye(3)).position
        forward = c @ rot_part @ np.asarray(self.scene.forward)
        rot = rotation_from_up_forward(-normal, forward)
        return GroundTruth(
            affordance_mask=mask,
            plane_normal=normal,
            contact=project(point, self.intrinsics),
            contact_point=point,
            up=rot[:, 2],
            forward=rot[:, 0],
            part_mask=mask,
        )

    # -- the pull primitive --------------------------------------------------------------------------------
    def _solve_path(
        self, start: np.ndarray, end: np.ndarray, rotation: np.ndarray, q: np.ndarray, nominal: np.ndarray
    ):
        """IK along the straight TCP segment; stops at the first unreachable waypoint.

        Returns the joint path and the commanded straight-line waypoints: the cup (physics) follows the
        straight line, the drawn arm the IK solutions, which may be a few millimetres off it.
        """
        n = max(1, int(np.ceil(np.linalg.norm(end - start) / self.config.waypoint_spacing)))
        qs, tcps = [q], [start]
        for s in np.linspace(0.0, 1.0, n + 1)[1:]:
            waypoint = start + s * (end - start)
            q, ok = self.ik.solve(waypoint, rotation, q, nominal=nominal, max_iters=20)
            if not ok:
                return qs, tcps, False
            qs.append(q)
            tcps.append(waypoint)
        return qs, tcps, True

    def _seal_rows(self) -> np.ndarray:
        return (self.data.efc_type == mujoco.mjtConstraint.mjCNSTR_EQUALITY) & (self.data.efc_id == 0)

    def _follow(self, qs, tcps, duration: float, seal: _Seal | None = None, on_tick=None) -> bool:
        """Step physics while the arm tracks the joint path (smoothstep timing); False once the seal broke.

        The seal breaks when the force the cup transmits to move the part (smoothed over ~10 ms) exceeds its
        holding force at the current tilt between the cup and the part's surface.
        """
        n_steps = max(1, int(round(duration / self.config.timestep)))
        seg = len(qs) - 1
        holding = seal is not None
        force = 0.0
        for i in range(1, n_steps + 1):
            x = i / n_steps
            u = seg * (3 * x * x - 2 * x * x * x)
            k = min(int(u), seg - 1) if seg > 0 else 0
            f = u - k if seg > 0 else 0.0
            q = qs[k] if seg == 0 else (1 - f) * qs[k] + f * qs[k + 1]
            tcp = tcps[k] if seg == 0 else (1 - f) * tcps[k] + f * tcps[k + 1]
            self.data.qpos[self.arm_qpos] = q
            self.data.qvel[self.arm_dof] = 0.0
            self.data.mocap_pos[self.anchor_mocap] = tcp
            mujoco.mj_step(self.model, self.data)
            if holding:
                # The force that moves the part: the constraint force along the sealed point's direction of
                # motion (the connect rows' Jacobian column of the part's joint).  The other components only
                # fight the rigid joint, which a compliant arm would not.
                rows = self._seal_rows()
                tangent = self.data.efc_J.reshape(self.data.nefc, self.model.nv)[rows, self.part_dof]
                now = abs(float(self.data.efc_force[rows] @ tangent)) / max(
                    float(np.linalg.norm(tangent)), 1e-9
                )
                force += 0.2 * (now - force)
                normal = self.data.xmat[self.part_body].reshape(3, 3) @ seal.normal_local
                tilt = angle_between_deg(seal.axis, -normal)
                if force > seal_strength(tilt, self.config):
                    self.data.eq_active[0] = 0
                    holding = False
            if on_tick is not None and i % 25 == 0:
                on_tick(i / n_steps)
        mujoco.mj_forward(self.model, self.data)
        return holding

    def seal_check(self, centre: np.ndarray, axis: np.ndarray) -> tuple[bool, float, str, np.ndarray]:
        """Whether a cup touching at ``centre`` with approach ``axis`` (world) seals.

        Returns (sealed, tilt in degrees, why not, the rim plane's outward normal in the world).

        Physics, not the paper's label: the rim rays must all hit the target part and lie on one plane
        within ``seal_flatness``; the tilt is measured against that plane.
        """
        cfg = self.config
        e1 = np.cross(axis, [0.0, 0.0, 1.0] if abs(axis[2]) < 0.9 else [1.0, 0.0, 0.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(axis, e1)
        groups = np.array([int(g != ROBOT_GROUP) for g in range(6)], dtype=np.uint8)
        geom = np.array([-1], dtype=np.int32)
        hits = []
        for a in np.linspace(0.0, 2 * np.pi, cfg.rim_rays, endpoint=False):
            start = centre - 0.03 * axis + CUP_RADIUS * (np.cos(a) * e1 + np.sin(a) * e2)
            dist = mujoco.mj_ray(self.model, self.data, start, axis, groups, 1, -1, geom, None)
            if dist < 0 or dist > 0.08 or self.model.geom_bodyid[geom[0]] != self.part_body:
                return False, 90.0, "the cup's rim is not all on the part (an edge or a gap)", -axis
            hits.append(start + dist * axis)
        hits = np.asarray(hits)
        mean = hits.mean(axis=0)
        _, _, vt = np.linalg.svd(hits - mean)
        normal = vt[2] if np.dot(vt[2], axis) < 0 else -vt[2]
        if np.max(np.abs((hits - mean) @ normal)) > cfg.seal_flatness:
            return False, 90.0, "the cup's rim does not sit flat (a handle or a step under it)", normal
        tilt = angle_between_deg(axis, -normal)
        if seal_strength(tilt, cfg) <= 0.0:
            return (
                False,
                tilt,
                f"the cup meets the surface {tilt:.0f} deg off its normal and does not seal",
                normal,
            )
        return True, tilt, "", normal

    def execute(
        self, pose: Pose, on_phase: Callable[[str, float], None] | None = None, render_end: bool = True
    ) -> ExecutionResult:
        """Run ManipLLM's pull primitive for a TCP ``pose`` (camera optical frame) from the initial state.

        ``render_end=False`` skips the end-state frame (``end_obs`` is then the initial one): labelling
        grids only need the outcome.
        """
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
        if not ok:  # nothing moved (IK has its own data): the end frame is the initial one
            return self._unreachable(
                pose, "inverse kinematics cannot reach the pre-pose", render_end, self._initial_clean
            )
        rot = self.ik.tcp_rotation()  # the roll about the cup's axis is IK's choice
        up = rot[:, 2]
        self.data.qpos[self.arm_qpos] = q_pre
        mujoco.mj_forward(self.model, self.data)
        phase("pre_pose", 1.0)

        # The cup travels along its axis until it meets the first surface (or p + overshoot).
        geom = np.array([-1], dtype=np.int32)
        groups = np.array([int(g != ROBOT_GROUP) for g in range(6)], dtype=np.uint8)
        hit = mujoco.mj_ray(self.model, self.data, pre, up, groups, 1, -1, geom, None)
        reach = cfg.pre_distance + cfg.overshoot
        travel = hit if 0.0 <= hit <= reach else reach
        touch = pre + travel * up
        qs, tcps, ok = self._solve_path(self.ik.tcp_position(), touch, rot, q_pre, q_pre)
        if not ok:
            return self._unreachable(pose, "inverse kinematics cannot reach the contact point", render_end)
        self._follow(qs, tcps, travel / cfg.approach_speed, None, lambda s: phase("approach", s))
        contact_pose = (
            self.data.site_xpos[self.tcp_site].copy(),
            self.data.site_xmat[self.tcp_site].reshape(3, 3),
        )
        on_part = 0.0 <= hit <= reach and self.model.geom_bodyid[geom[0]] == self.part_body
        sealed, tilt, why, surface = self.seal_check(touch, up) if on_part else (False, 90.0, "", -up)
        seal = None
        xmat = self.data.xmat[self.part_body].reshape(3, 3)
        if sealed:
            attached_local = xmat.T @ (contact_pose[0] - self.data.xpos[self.part_body])
            self.model.eq_data[0, 0:3] = attached_local
            self.model.eq_data[0, 3:6] = 0.0
            self.data.mocap_pos[self.anchor_mocap] = contact_pose[0]
            self.data.eq_active[0] = 1
            seal = _Seal(axis=up.copy(), normal_local=xmat.T @ surface)
        phase("attach", 1.0)

        probe = (
            xmat.T @ (contact_pose[0] - self.data.xpos[self.part_body])
            if on_part
            else np.asarray(self.scene.contact)
        )
        start_point = self._part_point_world(probe)
        start_q = self.data.qpos[self.part_joint.qposadr[0]]
        end = contact_pose[0] - cfg.pull_distance * up
        qs, tcps, reached = self._solve_path(contact_pose[0], end, rot, qs[-1], q_pre)
        dist = np.linalg.norm(tcps[-1] - contact_pose[0])
        held = self._follow(qs, tcps, max(dist, 1e-3) / cfg.pull_speed, seal, lambda s: phase("pull", s))
        self._follow(qs[-1:], tcps[-1:], cfg.settle_time, seal if held else None)
        moved_vec = self._part_point_world(probe) - start_point
        moved = float(np.linalg.norm(moved_vec))
        align = float(np.dot(moved_vec, -up) / moved) if moved > 1e-9 else 0.0
        delta = float(self.data.qpos[self.part_joint.qposadr[0]] - start_q)
        lo, hi = self.scene.joint_range
        success = judge_success(delta, hi - lo, align, cfg)
        opened = delta >= cfg.opened_range_fraction * (hi - lo)
        if success:
            msg = f"pulled the {self.object_name}: the joint moved {delta:.3f}"
        elif not on_part:
            msg = f"the suction cup did not touch the {self.object_name}"
        elif not sealed:
            msg = why
        elif not held and delta < cfg.success_joint:
            msg = f"the seal broke: the {self.object_name} resisted more than the cup holds at {tilt:.0f} deg"
        else:
            msg = f"the {self.object_name} moved only {delta:.3f} (alignment {align:.2f})"
        if not reached:
            msg += "; the arm stopped early (pull path out of reach)"
        phase("done", 1.0)
        return self._result(
            success,
            delta,
            self._to_camera(*contact_pose),
            msg,
            render_end,
            attached=sealed,
            moved=moved,
            opened=opened,
        )

    def _unreachable(
        self, pose: Pose, message: str, render_end: bool, clean: tuple[np.ndarray, np.ndarray] | None = None
    ) -> ExecutionResult:
        return self._result(False, 0.0, pose, message, render_end, clean, unreachable=True)

    def _result(
        self,
        success: bool,
        delta: float,
        ee: Pose,
        message: str,
        render_end: bool,
        clean: tuple[np.ndarray, np.ndarray] | None = None,
        **extra,
    ) -> ExecutionResult:
        """Package an outcome; ``ee`` is where the cup met the surface (the commanded pose if unreachable).

        ``clean``: the end state's clean frame when it is known already.
        """
        try:
            pixel = project(ee.position, self.intrinsics)
        except ValueError:
            pixel = (-1.0, -1.0)
        cause = failure_cause(self.ground_truth, pixel, ee.up)
        return ExecutionResult(
            success=bool(success),
            articulation_delta=delta,
            end_obs=self._observe(clean) if render_end else self._initial_obs,
            ee_pose=ee,
            cause=cause,
            message=message,
            **extra,
        )

    def close(self) -> None:
        """Free the renderer's resources (its thread's GL context stays for the next world)."""
        self.renderer.close()

    def __enter__(self) -> PullWorld:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class _Seal:
    axis: np.ndarray  # the cup's approach axis (world), fixed during the pull
    normal_local: np.ndarray  # the sealed surface's outward normal in the part frame


def judge_success(delta: float, joint_range: float, alignment: float, cfg: PullConfig) -> bool:
    """Judge a pull by ManipLLM's rule: the joint moved > 0.03 (rad or m) or > half its range, along it."""
    moved = delta > cfg.success_joint or delta > cfg.success_range_fraction * joint_range
    return bool(moved and alignment > cfg.success_alignment)
