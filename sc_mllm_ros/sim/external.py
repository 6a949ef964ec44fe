"""The external split: articulated objects authored by others, loaded at run time, evaluated only.

- robosuite's door (``robosuite/models/assets/objects/door.xml``, MIT licence, itself from Vikash Kumar's
  mj_envs): its panel, frame posts, handle and hinge (range, damping, friction) become the target part of
  a scene.  The file's joint range is read in radians, as robosuite's own world compiler does.
- Meta-World's drawer and door (``metaworld/assets/objects/drawer.xml`` and ``doorlockB.xml``, MIT
  licence): their collision primitives (the boxes, cylinders and capsules Meta-World simulates with; the
  STL meshes are only its looks) and their joint (range, damping) become the object.  Meta-World's window
  models are left out: their sashes slide in the plane of the glass, and no sash face that faces along the
  slide is as wide as the cup (the stiles and rails are 2.4 cm deep, the cup 2.6 cm), so no suction pull
  along a face's normal can open them.

Both packages are installed without their dependencies (they pin other MuJoCo versions) and never
imported: MuJoCo reads their XML files.  Image textures are replaced by the scene's procedural ones.
"""

from __future__ import annotations

from dataclasses import dataclass
import functools
import importlib.util
import os

import numpy as np

from sc_mllm_ros.sim.objects import _front_target, _Object, _Style, _Target, CUP_RADIUS, GeomSpec


def robosuite_door_xml() -> str:
    from sc_mllm_ros.sim.robot import robosuite_panda_xml

    robots = os.path.dirname(os.path.dirname(robosuite_panda_xml()))
    return os.path.join(os.path.dirname(robots), "objects", "door.xml")


def metaworld_xml(name: str) -> str:
    """Path of one of Meta-World's object models (metaworld is installed without its dependencies)."""
    found = importlib.util.find_spec("metaworld")
    if found is None or not found.submodule_search_locations:
        raise RuntimeError(
            "Meta-World's assets are missing: `pip install --no-deps metaworld` (tools/setup.sh does it)"
        )
    path = os.path.join(found.submodule_search_locations[0], "assets", "objects", name)
    if not os.path.exists(path):
        raise RuntimeError(f"metaworld is installed but has no object model at {path}")
    return path


@dataclass(frozen=True)
class _FileGeom:
    name: str
    kind: int  # mujoco.mjtGeom
    pos: np.ndarray  # the file's world frame, joint at 0
    size: np.ndarray
    rot: np.ndarray
    moves: bool  # on the jointed body (or below it)


@dataclass(frozen=True)
class _FileObject:
    geoms: tuple[_FileGeom, ...]
    anchor: np.ndarray
    axis: np.ndarray
    joint_range: tuple[float, float]
    damping: float
    friction: float


@functools.cache
def _compiled(path: str, joint: str, radians: bool = False, group: int | None = None) -> _FileObject:
    """The geoms (of ``joint``'s object, in ``group`` if given) and the joint of an MJCF file, as compiled."""
    import mujoco

    spec = mujoco.MjSpec.from_file(path)
    if radians:
        spec.compiler.degree = False
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    j = model.joint(joint)
    moving = int(model.jnt_bodyid[j.id])
    root = model.body_rootid[moving]  # the file may hold a table, walls, ...: keep the object's tree only

    def moves(b: int) -> bool:
        while b > 0 and b != moving:
            b = int(model.body_parentid[b])
        return b == moving

    geoms = tuple(
        _FileGeom(
            model.geom(g).name,
            int(model.geom_type[g]),
            data.geom_xpos[g].copy(),
            model.geom_size[g].copy(),
            data.geom_xmat[g].reshape(3, 3).copy(),
            moves(int(model.geom_bodyid[g])),
        )
        for g in range(model.ngeom)
        if model.body_rootid[model.geom_bodyid[g]] == root and (group is None or model.geom_group[g] == group)
    )
    return _FileObject(
        geoms,
        data.xanchor[j.id].copy(),
        data.xaxis[j.id].copy(),
        tuple(float(x) for x in model.jnt_range[j.id]),
        float(model.dof_damping[j.dofadr[0]]),
        float(model.dof_frictionloss[j.dofadr[0]]),
    )


def _box(pos, size, rot, flip: np.ndarray, rgba, material: str = "") -> GeomSpec:
    """An axis-aligned box in our object frame from a file geom (rotations are multiples of 90 deg)."""
    half = np.abs(flip @ rot) @ np.asarray(size)
    return GeomSpec("box", tuple(float(x) for x in flip @ pos), tuple(float(x) for x in half), rgba, material)


def robosuite_door(rng, scale, st: _Style) -> _Object:
    """Robosuite's door at its authored size (``scale`` unused), handle side to +x, standing on z = 0."""
    door = _compiled(robosuite_door_xml(), "hinge", radians=True)  # robosuite compiles angles in radians
    g = {x.name: x for x in door.geoms}
    flip = np.diag([-1.0, -1.0, 1.0])  # the file's handle faces -x; ours face +x
    pos, size, rot = g["panel"].pos, g["panel"].size, g["panel"].rot
    bottom = np.array([0.0, 0.0, 0.3])  # the frame posts reach 0.3 below the file's origin

    def place(p):
        return flip @ p + bottom

    fixed = []
    for name in ("r_frame", "l_frame"):  # posts (cylinders along z), drawn as square posts
        p, s = g[name].pos, g[name].size
        fixed.append(GeomSpec("box", tuple(place(p)), (s[0], s[0], s[1]), st.body, st.body_mat))
    panel = _box(pos, [size[0], size[1], size[2]], rot, flip, st.part, st.part_mat)
    panel = GeomSpec("box", tuple(place(pos)), panel.size, st.part, st.part_mat)
    part = [panel]
    p, s = g["handle_base"].pos, g["handle_base"].size
    part.append(GeomSpec("cylinder", tuple(place(p)), (s[0], s[1], 0.0), st.dark))
    p, s, r = g["handle"].pos, g["handle"].size, g["handle"].rot
    hb = _box(p, s, r, flip, st.dark)
    part.append(GeomSpec("box", tuple(place(p)), hb.size, st.dark))
    centre = place(pos)
    front = centre[0] + panel.size[0]
    anchor = place(door.anchor)
    width, height = 2 * panel.size[1], 2 * panel.size[2]
    s_hinge = np.sign(anchor[1] - centre[1])  # the hinge's side along y
    free_y = centre[1] - s_hinge * width / 2
    hz = place(p)[2]
    contact = np.array(
        [
            front,
            free_y + s_hinge * rng.uniform(0.3, 0.4) * width,
            hz + np.sign(rng.uniform(-1, 1)) * rng.uniform(0.12, 0.2) * height,
        ]
    )
    face = (
        np.array([front, centre[1], centre[2]]),
        np.array([0.0, width / 2, 0.0]),
        np.array([0.0, 0.0, height / 2]),
    )
    target = _Target(
        "door",
        part,
        anchor,
        "hinge",
        flip @ door.axis,
        door.joint_range,
        np.array([1.0, 0.0, 0.0]),
        contact,
        face,
    )
    depth = 2 * max(panel.size[0], fixed[0].size[0])
    return _Object(fixed, [target], width + 0.12, depth, 0.6, damping=door.damping, friction=door.friction)


# Meta-World's objects face -y (their handles stick out towards -y); ours face +x.
_FROM_METAWORLD = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
_METAWORLD_COLLISION_GROUP = 4  # its primitives; group 1 holds the STL meshes it draws


def _aabb_half(kind: int, size: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Half extents of the axis-aligned box around a box, cylinder or capsule."""
    import mujoco

    if kind == mujoco.mjtGeom.mjGEOM_BOX:
        return np.abs(rot) @ size
    radius, half = size[0], size[1] + (size[0] if kind == mujoco.mjtGeom.mjGEOM_CAPSULE else 0.0)
    axis = np.abs(rot[:, 2])
    return half * axis + radius * np.sqrt(np.clip(1.0 - axis**2, 0.0, 1.0))


def _metaworld(file: str, joint: str, name: str, rng: np.random.Generator, st: _Style) -> _Object:
    """A Meta-World object at its authored size, built from its collision primitives.

    Boxes stay boxes, round parts along x stay cylinders, other round parts become their bounding boxes;
    the round moving parts are its handle.
    """
    import mujoco

    obj = _compiled(metaworld_xml(file), joint, group=_METAWORLD_COLLISION_GROUP)
    placed = []
    for g in obj.geoms:
        rot = _FROM_METAWORLD @ g.rot
        placed.append((g, _FROM_METAWORLD @ g.pos, _aabb_half(g.kind, g.size, rot), rot))
    lo = np.min([p - h for _, p, h, _ in placed], axis=0)
    hi = np.max([p + h for _, p, h, _ in placed], axis=0)
    shift = -np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])  # bottom centre to the origin

    fixed, part, handles, front = [], [], [], None
    for g, p, h, rot in placed:
        p = p + shift
        round_ = g.kind != mujoco.mjtGeom.mjGEOM_BOX
        if not g.moves:
            fixed.append(GeomSpec("box", tuple(p), tuple(h), st.body, st.body_mat))
        elif round_:
            handles.append((p, h))
            if abs(rot[0, 2]) > 0.99:  # along x: drawn as the cylinder it is
                r, half = g.size[0], h[0]
                part.append(GeomSpec("cylinder", tuple(p), (r, half, 0.0), st.dark))
            else:
                part.append(GeomSpec("box", tuple(p), tuple(h), st.dark))
        else:
            part.append(GeomSpec("box", tuple(p), tuple(h), st.part, st.part_mat))
            if front is None or p[0] + h[0] > front[0][0] + front[1][0]:
                front = (p, h)  # the pullable face: the moving box reaching farthest forward
    (fp, fh), width, height = front, 2 * front[1][1], 2 * front[1][2]
    # Positive motion opens (the world's convention); Meta-World's drawer and door open towards -q.
    lo_q, hi_q = obj.joint_range
    sign = -1.0 if hi_q <= 0.0 else 1.0
    axis = sign * _FROM_METAWORLD @ obj.axis
    anchor = _FROM_METAWORLD @ obj.anchor + shift
    hinge = not np.allclose(np.abs(axis), [1.0, 0.0, 0.0])
    # A contact where the whole cup sits on the face, off the handle, and (hinges) far enough from the axis.
    margin = CUP_RADIUS + 0.004
    for _ in range(200):
        y, z = fp[1:] + rng.uniform(-1.0, 1.0, 2) * (fh[1:] - margin)
        off_handles = all(np.any(np.abs([y, z] - hp[1:]) > hh[1:] + margin) for hp, hh in handles)
        if off_handles and (not hinge or abs(y - anchor[1]) >= 0.55 * width):
            break
    else:
        raise RuntimeError(f"no contact off the handle on Meta-World's {file}")
    target = _front_target(
        name,
        part,
        anchor,
        axis,
        (lo_q, hi_q) if sign > 0 else (0.0 - hi_q, -lo_q),
        np.array([fp[0] + fh[0], y, z]),
        (fp[0] + fh[0], fp[1], fp[2], width, height),
    )
    size = hi - lo
    # The file's damping; Meta-World's joints have no friction, so the scene draws its own (a hinge then
    # still needs a lever).
    friction = obj.friction or None
    return _Object(fixed, [target], size[1], size[0], size[2], damping=obj.damping, friction=friction)


def metaworld_drawer(rng, scale, st: _Style) -> _Object:
    """Meta-World's drawer (``drawer.xml``) at its authored size (``scale`` unused)."""
    return _metaworld("drawer.xml", "goal_slidey", "drawer", rng, st)


def metaworld_door(rng, scale, st: _Style) -> _Object:
    """Meta-World's door of a safe (``doorlockB.xml``, its door-open task) at its authored size."""
    return _metaworld("doorlockB.xml", "doorjoint", "door", rng, st)


EXTERNAL_BUILDERS = {
    "robosuite_door": robosuite_door,
    "metaworld_drawer": metaworld_drawer,
    "metaworld_door": metaworld_door,
}
EXTERNAL_CATEGORIES = tuple(EXTERNAL_BUILDERS)
