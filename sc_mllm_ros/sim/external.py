"""The external split: articulated objects authored by others, loaded at run time, evaluated only.

robosuite's door (``robosuite/models/assets/objects/door.xml``, MIT licence, itself from Vikash Kumar's
mj_envs) is read from the installed robosuite package with MuJoCo: its panel, frame posts, handle and
hinge (range, damping, friction) become the target part of a scene; its image textures are replaced by
the scene's procedural ones.  The file's joint range is read in radians, as robosuite's own world
compiler does.  Meta-World's models need the ``metaworld`` package, which is not installed here.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from sc_mllm_ros.sim.objects import _Object, _Style, _Target, GeomSpec

EXTERNAL_CATEGORIES = ("robosuite_door",)


def robosuite_door_xml() -> str:
    from sc_mllm_ros.sim.robot import robosuite_panda_xml

    robots = os.path.dirname(os.path.dirname(robosuite_panda_xml()))
    return os.path.join(os.path.dirname(robots), "objects", "door.xml")


@functools.cache
def _door_geometry() -> dict:
    """Geoms (world frame of the file, door closed) and the hinge of robosuite's door."""
    import mujoco

    spec = mujoco.MjSpec.from_file(robosuite_door_xml())
    spec.compiler.degree = False  # robosuite compiles its objects with angles in radians
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    geoms = {}
    for g in range(model.ngeom):
        geoms[model.geom(g).name] = (
            int(model.geom_type[g]),
            data.geom_xpos[g].copy(),
            model.geom_size[g].copy(),
            data.geom_xmat[g].reshape(3, 3).copy(),
        )
    j = model.joint("hinge")
    return {
        "geoms": geoms,
        "anchor": data.xanchor[j.id].copy(),
        "axis": data.xaxis[j.id].copy(),
        "range": tuple(float(x) for x in model.jnt_range[j.id]),
        "damping": float(model.dof_damping[j.dofadr[0]]),
        "friction": float(model.dof_frictionloss[j.dofadr[0]]),
    }


def _box(pos, size, rot, flip: np.ndarray, rgba, material: str = "") -> GeomSpec:
    """An axis-aligned box in our object frame from a file geom (rotations are multiples of 90 deg)."""
    half = np.abs(flip @ rot) @ np.asarray(size)
    return GeomSpec("box", tuple(float(x) for x in flip @ pos), tuple(float(x) for x in half), rgba, material)


def robosuite_door(rng, scale, st: _Style) -> _Object:
    """Robosuite's door at its authored size (``scale`` unused), handle side to +x, standing on z = 0."""
    door = _door_geometry()
    g = door["geoms"]
    flip = np.diag([-1.0, -1.0, 1.0])  # the file's handle faces -x; ours face +x
    _, pos, size, rot = g["panel"]
    bottom = np.array([0.0, 0.0, 0.3])  # the frame posts reach 0.3 below the file's origin

    def place(p):
        return flip @ p + bottom

    fixed = []
    for name in ("r_frame", "l_frame"):  # posts (cylinders along z), drawn as square posts
        _, p, s, _ = g[name]
        fixed.append(GeomSpec("box", tuple(place(p)), (s[0], s[0], s[1]), st.body, st.body_mat))
    panel = _box(pos, [size[0], size[1], size[2]], rot, flip, st.part, st.part_mat)
    panel = GeomSpec("box", tuple(place(pos)), panel.size, st.part, st.part_mat)
    part = [panel]
    _, p, s, _ = g["handle_base"]
    part.append(GeomSpec("cylinder", tuple(place(p)), (s[0], s[1], 0.0), st.dark))
    _, p, s, r = g["handle"]
    hb = _box(p, s, r, flip, st.dark)
    part.append(GeomSpec("box", tuple(place(p)), hb.size, st.dark))
    centre = place(pos)
    front = centre[0] + panel.size[0]
    anchor = place(door["anchor"])
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
        flip @ door["axis"],
        door["range"],
        np.array([1.0, 0.0, 0.0]),
        contact,
        face,
    )
    depth = 2 * max(panel.size[0], fixed[0].size[0])
    return _Object(
        fixed, [target], width + 0.12, depth, 0.6, damping=door["damping"], friction=door["friction"]
    )
