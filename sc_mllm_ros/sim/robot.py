"""The Franka Panda from robosuite's shipped assets, with a suction-cup end, and mink inverse kinematics."""

from __future__ import annotations

from dataclasses import dataclass
import functools
import importlib.util
import os

import mink
import mujoco
import numpy as np

ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
TCP_SITE = "tcp"
ROBOT_GROUP = 1  # geom group of the robot (excluded from the suction ray cast)
# Where the arm rests in the initial image (tucked up, joint 1 turned away from the object).
HOME_Q = np.array([0.0, -1.2, 0.0, -2.9, 0.0, 1.9, 0.785])
# IK seeds (joint 1 is turned towards the target): tool horizontal and tool pointing down.
SEED_HORIZONTAL = np.array([0.0, 0.0, 0.0, -2.0, 0.0, 3.4, 0.785])
SEED_DOWN = np.array([0.0, 0.0, 0.0, -1.9, 0.0, 1.9, 0.785])
SUCTION_LENGTH = 0.1  # flange to the cup's lip (the TCP)


def robosuite_panda_xml() -> str:
    """Path of robosuite's Panda model (robosuite is installed without its dependencies; never imported)."""
    found = importlib.util.find_spec("robosuite")
    if found is None or not found.submodule_search_locations:
        raise RuntimeError(
            "robosuite's assets are missing: `pip install --no-deps robosuite` (tools/setup.sh does it)"
        )
    path = os.path.join(
        found.submodule_search_locations[0], "models", "assets", "robots", "panda", "robot.xml"
    )
    if not os.path.exists(path):
        raise RuntimeError(f"robosuite is installed but has no Panda model at {path}")
    return path


@functools.cache
def _panda_spec() -> mujoco.MjSpec:
    """The Panda with a suction tool, drawn with its shipped collision meshes (10x fewer triangles)."""
    spec = mujoco.MjSpec.from_file(robosuite_panda_xml())
    for geom in list(spec.geoms):
        if geom.name.endswith("_collision"):
            # The arm is driven kinematically, so it needs no contacts; it only has to be seen.
            geom.contype, geom.conaffinity, geom.group = 0, 0, ROBOT_GROUP
            geom.rgba = [0.92, 0.92, 0.92, 1.0] if geom.name[4] in "0246" else [0.3, 0.3, 0.32, 1.0]
        else:
            spec.delete(geom)
    for mesh in list(spec.meshes):
        if "_vis" in mesh.name:
            spec.delete(mesh)
    for material in list(spec.materials):
        spec.delete(material)
    for actuator in list(spec.actuators):
        spec.delete(actuator)
    hand = spec.body("right_hand")
    common = {"contype": 0, "conaffinity": 0, "group": ROBOT_GROUP, "type": mujoco.mjtGeom.mjGEOM_CYLINDER}
    hand.add_geom(
        name="suction_stem", size=[0.018, 0.04, 0], pos=[0, 0, 0.04], rgba=[0.5, 0.5, 0.52, 1], **common
    )
    hand.add_geom(
        name="suction_cup",
        size=[0.026, 0.01, 0],
        pos=[0, 0, SUCTION_LENGTH - 0.01],
        rgba=[0.15, 0.15, 0.15, 1],
        **common,
    )
    hand.add_site(name=TCP_SITE, pos=[0, 0, SUCTION_LENGTH], group=4)
    return spec


def panda_spec() -> mujoco.MjSpec:
    """A fresh copy of the Panda spec to add a scene to."""
    return _panda_spec().copy()


@dataclass(frozen=True)
class IKConfig:
    pos_tol: float = 0.003  # metres
    axis_tol_deg: float = 2.0  # approach axis
    max_iters: int = 60
    dt: float = 0.1
    damping: float = 1e-3
    posture_cost: float = 1e-2
    path_pos_tol: float = 0.01  # waypoints between the pre-pose and the end of the pull
    roll_cost: float = 0.05  # a suction cup is symmetric: the requested roll is only a preference


class PandaIK:
    """Differential IK (mink + daqp) for the TCP site on a scene model, arm joints only.

    The approach axis (TCP z) and position are hard targets; the roll about the axis is a soft preference,
    since a suction cup works at any roll, which widens the Panda's usable workspace a lot.
    """

    def __init__(self, model: mujoco.MjModel, config: IKConfig | None = None):
        self.config = config or IKConfig()
        self.model = model
        self.configuration = mink.Configuration(model)
        self.arm_qpos = np.array([model.joint(n).qposadr[0] for n in ARM_JOINTS])
        self.frame = mink.FrameTask(
            TCP_SITE, "site", position_cost=1.0, orientation_cost=self.config.roll_cost, lm_damping=1e-3
        )
        self.axis = mink.AxisAlignTask(TCP_SITE, "site", axis=(0.0, 0.0, 1.0), cost=1.0, lm_damping=1e-3)
        self.posture = mink.PostureTask(model, cost=self.config.posture_cost)
        self.limits = [mink.ConfigurationLimit(model)]

    def solve(
        self,
        position: np.ndarray,
        rotation: np.ndarray,
        q_start: np.ndarray,
        nominal: np.ndarray | None = None,
        max_iters: int | None = None,
    ) -> tuple[np.ndarray, bool]:
        """Arm joint angles putting the TCP at ``position`` with its z along ``rotation[:, 2]`` (world).

        ``nominal`` (for waypoints of a path, default ``q_start``) resolves the arm's redundancy: one
        nominal along a path keeps joints 1 and 3 from drifting against each other near the shoulder
        singularity (q2 = 0).  Path waypoints get the looser ``path_pos_tol``: a few millimetres there
        only shift where the cup lands, which the ray cast and the labels account for.
        """
        cfg = self.config
        q = self.model.qpos0.copy()
        q[self.arm_qpos] = q_start if nominal is None else nominal
        self.posture.set_target(q)
        q[self.arm_qpos] = q_start
        self.configuration.update(q)
        self.frame.set_target(
            mink.SE3.from_rotation_and_translation(mink.SO3.from_matrix(rotation), position)
        )
        self.axis.set_target(rotation[:, 2])
        tasks = [self.frame, self.axis, self.posture]
        ok = False
        for _ in range(max_iters or cfg.max_iters):
            if self._converged(position, rotation[:, 2]):
                ok = True
                break
            vel = mink.solve_ik(
                self.configuration, tasks, cfg.dt, "daqp", damping=cfg.damping, limits=self.limits
            )
            self.configuration.integrate_inplace(vel, cfg.dt)
        if not ok and nominal is not None:
            ok = self._converged(position, rotation[:, 2], cfg.path_pos_tol)
        return self.configuration.q[self.arm_qpos].copy(), ok

    def _converged(self, position: np.ndarray, axis: np.ndarray, pos_tol: float | None = None) -> bool:
        site = self.configuration.data.site(TCP_SITE)
        cos = float(np.dot(site.xmat.reshape(3, 3)[:, 2], axis))
        return np.linalg.norm(site.xpos - position) < (pos_tol or self.config.pos_tol) and cos > np.cos(
            np.deg2rad(self.config.axis_tol_deg)
        )

    def solve_from_seeds(
        self, position: np.ndarray, rotation: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """Solve from seeds suited to the approach direction, turned towards the target.

        Returns the solution, the seed that gave it (the nominal posture for the rest of the path) and ``ok``.
        """
        q1 = np.arctan2(position[1], position[0])
        seeds = [SEED_DOWN, SEED_HORIZONTAL] if rotation[2, 2] < -0.7 else [SEED_HORIZONTAL, SEED_DOWN]
        for seed in seeds:
            seed = np.concatenate([[q1], seed[1:]])
            q, ok = self.solve(position, rotation, seed)
            if ok:
                return q, seed, True
        return q, seed, False

    def tcp_position(self) -> np.ndarray:
        """TCP position of the last solution (world)."""
        return self.configuration.data.site(TCP_SITE).xpos.copy()

    def tcp_rotation(self) -> np.ndarray:
        """TCP rotation of the last solution (world)."""
        return self.configuration.data.site(TCP_SITE).xmat.reshape(3, 3).copy()


@functools.cache
def _bare_ik() -> PandaIK:
    return PandaIK(panda_spec().compile())


def pull_reachable(contact: np.ndarray, up: np.ndarray, forward: np.ndarray, pre: float = 0.15) -> bool:
    """Whether the Panda reaches the pre-pose, the contact and 10 cm of the pull for an approach ``up``.

    World frame; uses the bare arm (IK ignores collisions), so scenes can be rejected before they are built.
    """
    from sc_mllm_ros.geometry import rotation_from_up_forward

    ik = _bare_ik()
    rot = rotation_from_up_forward(up, forward)
    q, seed, ok = ik.solve_from_seeds(contact - pre * rot[:, 2], rot)
    if not ok:
        return False
    rot = ik.tcp_rotation()
    for point in (contact, contact - 0.1 * rot[:, 2]):
        q, ok = ik.solve(point, rot, q, nominal=seed)
        if not ok:
            return False
    return True
