"""Procedural multi-part articulated objects and the randomized scene description (numpy; IK for reach).

A :class:`SceneSpec` is plain data: the object's static geoms, its one movable TARGET part (geoms, joint,
the movable plane's normal, the best contact point), the camera, lights, textures and distractors, all
drawn from one seed.  Objects have several parts (a chest of drawers, double doors, a door above a
drawer); only the part the task names moves, the others are drawn but fixed.  The world
(:mod:`sc_mllm_ros.sim.world`) turns the spec into a MuJoCo model.

Object frame: origin at the bottom centre of the carcass, +x out of the front face (towards the robot),
+z up, so a viewer facing the object has +y on the right.  The part frame has the object frame's
orientation and its origin on the joint axis.

Seen and unseen categories share no builder and no handle template (only the box-panel helper
``_carcass`` and the texture/camera sampling); every unseen category has a part topology no seen one has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Vec3 = tuple[float, float, float]
RGBA = tuple[float, float, float, float]

SPLITS = ("train", "test_seen", "test_unseen", "test_external")
SEEN_CATEGORIES = ("chest", "cabinet", "double_cabinet", "microwave", "oven", "storage_box")
UNSEEN_CATEGORIES = ("washing_machine", "toilet", "fridge")
SEEN_HANDLES = ("none", "knob", "bar", "recessed")

# Every target name a category can ask for ("pull the {name}").
OBJECT_NAMES = {
    "chest": ("top drawer", "second drawer", "third drawer", "middle drawer", "bottom drawer"),
    "cabinet": ("cabinet door",),
    "double_cabinet": ("left door of the cabinet", "right door of the cabinet"),
    "microwave": ("microwave door",),
    "oven": ("oven door", "oven drawer"),
    "storage_box": ("box lid",),
    "washing_machine": ("washing machine door",),
    "toilet": ("toilet lid", "toilet seat"),
    "fridge": ("refrigerator door", "freezer drawer"),
    "robosuite_door": ("door",),
    "metaworld_drawer": ("drawer",),
    "metaworld_door": ("door",),
}
CUP_RADIUS = 0.013  # the suction cup is about 2.6 cm across
MIN_PART_FRACTION = 0.005  # reject views where the target shows on less than 0.5 % of the image
MIN_VISIBLE = 0.5  # ... or is more than half occluded


@dataclass(frozen=True)
class GeomSpec:
    """One primitive: ``kind`` is "box" or "cylinder" (axis along local x); sizes are MuJoCo half sizes."""

    kind: str
    pos: Vec3
    size: Vec3
    rgba: RGBA
    material: str = ""  # name of one of the scene's materials ("" = plain colour)


@dataclass(frozen=True)
class MaterialSpec:
    """A MuJoCo built-in procedural texture (no asset files) and the material using it."""

    name: str
    builtin: str  # "checker" | "gradient" | "flat"
    rgb1: Vec3
    rgb2: Vec3
    mark: str  # "none" | "edge" | "cross" | "random"
    random: float
    repeat: tuple[float, float]


@dataclass(frozen=True)
class LightSpec:
    pos: Vec3
    direction: Vec3
    diffuse: Vec3
    shadow: bool


@dataclass(frozen=True)
class SceneSpec:
    """Everything needed to rebuild one scene exactly; equal seeds give equal specs."""

    seed: int
    split: str
    category: str
    object_name: str  # the target part, as the task names it
    object_pos: Vec3  # world_from_object translation ...
    object_yaw: float  # ... and yaw about +z
    fixed_geoms: tuple[GeomSpec, ...]
    part_geoms: tuple[GeomSpec, ...]
    part_pos: Vec3  # joint anchor in the object frame
    joint_type: str  # "hinge" | "slide"
    joint_axis: Vec3  # in the part frame; positive motion opens
    joint_range: tuple[float, float]
    plane_normal: Vec3  # outward normal of the movable plane, object frame
    contact: Vec3  # best contact point on the movable plane, part frame
    forward: Vec3  # ground-truth gripper x axis, object frame
    camera_pos: Vec3  # world
    camera_target: Vec3  # world
    camera_fovy: float
    camera_roll: float = 0.0  # degrees about the optical axis
    joint_damping: float = 1.0
    joint_friction: float = 1.0
    initial_q: float = 0.0  # the part may start partly open
    handle: str = "none"
    materials: tuple[MaterialSpec, ...] = ()
    lights: tuple[LightSpec, ...] = (LightSpec((0.0, 0.0, 3.0), (0.3, 0.2, -1.0), (0.6, 0.6, 0.6), False),)
    distractors: tuple[GeomSpec, ...] = ()  # world frame
    exposure: float = 1.0
    pixel_noise: float = 0.0  # std of the RGB noise (0-255 scale)
    depth_dropout: float = 0.0  # fraction of depth pixels lost at random
    part_names: tuple[str, ...] = field(default=())  # all named parts of the object

    @property
    def seen(self) -> bool:
        return self.category in SEEN_CATEGORIES


def _t(v) -> Vec3:
    return tuple(float(x) for x in v)


def _colour(rng: np.random.Generator, lo: float = 0.2, hi: float = 0.95) -> RGBA:
    return (*_t(rng.uniform(lo, hi, size=3)), 1.0)


def _shade(rgba, f: float) -> RGBA:
    return (*_t(np.clip(np.asarray(rgba[:3]) * f, 0.0, 1.0)), 1.0)


def _carcass(
    w: float, d: float, h: float, t: float, rgba, mat: str, open_side: str = "front"
) -> list[GeomSpec]:
    """Five panels of a box of outer size ``d`` x ``w`` x ``h`` (x, y, z), open on ``open_side``."""
    panels = {
        "back": GeomSpec("box", (-d / 2 + t / 2, 0.0, h / 2), (t / 2, w / 2, h / 2), rgba, mat),
        "left": GeomSpec("box", (0.0, -w / 2 + t / 2, h / 2), (d / 2, t / 2, h / 2), rgba, mat),
        "right": GeomSpec("box", (0.0, w / 2 - t / 2, h / 2), (d / 2, t / 2, h / 2), rgba, mat),
        "bottom": GeomSpec("box", (0.0, 0.0, t / 2), (d / 2, w / 2, t / 2), rgba, mat),
        "top": GeomSpec("box", (0.0, 0.0, h - t / 2), (d / 2, w / 2, t / 2), rgba, mat),
    }
    return [g for side, g in panels.items() if side != open_side]


@dataclass
class _Target:
    """One named movable part, in the object frame."""

    name: str
    geoms: list[GeomSpec]
    anchor: np.ndarray
    joint_type: str
    axis: np.ndarray  # sign fixed later so that positive motion opens
    joint_range: tuple[float, float]
    normal: np.ndarray
    contact: np.ndarray
    face: tuple[np.ndarray, np.ndarray, np.ndarray]  # centre, half-extent vectors u, v of the pullable face


@dataclass
class _Object:
    fixed: list[GeomSpec]
    targets: list[_Target]
    width: float
    depth: float
    height: float
    damping: float | None = None  # an authored joint's own values (external objects)
    friction: float | None = None


@dataclass
class _Style:
    """Colours and materials a builder draws with."""

    body: RGBA
    part: RGBA
    body_mat: str
    part_mat: str
    handle: str

    @property
    def dark(self) -> RGBA:
        return _shade(self.part, 0.3)


# -- seen handle template ---------------------------------------------------------------------------------
def _seen_handle(kind: str, out: float, y: float, z: float, span: float, vertical: bool, st: _Style):
    """Handle geoms on a front face whose outer plane is at x = ``out`` (none, knob, bar, recessed)."""
    if kind == "knob":
        return [GeomSpec("box", (out + 0.015, y, z), (0.015, 0.014, 0.014), st.dark)]
    if kind == "bar":
        half = min(0.3 * span, 0.1)
        size = (0.018, 0.01, half) if vertical else (0.018, half, 0.01)
        return [GeomSpec("box", (out + 0.018, y, z), size, st.dark)]
    if kind == "recessed":  # a dark grip plate, nearly flush: only its colour shows it
        size = (0.001, 0.01, min(0.25 * span, 0.06)) if vertical else (0.001, min(0.25 * span, 0.06), 0.01)
        return [GeomSpec("box", (out + 0.001, y, z), size, _shade(st.part, 0.15))]
    return []


def _panel(x: float, y: float, z: float, w: float, h: float, t: float, st: _Style) -> GeomSpec:
    return GeomSpec("box", (x, y, z), (t / 2, w / 2 - 0.003, h / 2 - 0.003), st.part, st.part_mat)


_X, _Y, _Z = np.eye(3)


def _front_target(name, geoms, anchor, axis, joint_range, contact, face) -> _Target:
    """A target whose pullable face is a front rectangle ``face`` = (x, y, z, w, h) with normal +x.

    It slides along +x (a drawer) or turns about ``axis`` (a door).
    """
    x, y, z, w, h = face
    return _Target(
        name,
        geoms,
        np.asarray(anchor, float),
        "slide" if np.allclose(axis, _X) else "hinge",
        np.asarray(axis, float),
        joint_range,
        np.array([1.0, 0.0, 0.0]),
        contact,
        (np.array([x, y, z]), np.array([0.0, w / 2, 0.0]), np.array([0.0, 0.0, h / 2])),
    )


def _drawer_target(name, rng, d, y, z, w, h, t, st: _Style, handle: str) -> _Target:
    """A drawer front at (front of the carcass, y, z) of size w x h, with its tray behind."""
    front = d / 2 + t / 2
    geoms = [
        _panel(front, y, z, w, h, t, st),
        GeomSpec("box", (0.0, y, z - h / 2 + 0.015), (d / 2 - t, w / 2 - t, 0.005), _shade(st.part, 0.8)),
    ]
    hz = z + rng.uniform(0.2, 0.3) * h
    geoms += _seen_handle(handle, front + t / 2, y, hz, w, False, st)
    contact = np.array([front + t / 2, y + rng.uniform(-0.25, 0.25) * w, z - rng.uniform(0.1, 0.25) * h])
    return _front_target(
        name, geoms, [front, y, z], _X, (0.0, 0.75 * d), contact, (front + t / 2, y, z, w, h)
    )


def _side_hinged_target(name, rng, d, y, z, w, h, t, hinge: str, st: _Style, handle: str) -> _Target:
    """A door hinged on its ``hinge`` ("left" | "right") edge as the viewer sees it."""
    front = d / 2 + t / 2
    s = -1.0 if hinge == "left" else 1.0  # the hinge is at y + s * w / 2
    free_y = y - s * w / 2
    hz = z + rng.uniform(-0.2, 0.2) * h
    geoms = [_panel(front, y, z, w, h, t, st)]
    geoms += _seen_handle(handle, front + t / 2, free_y + s * 0.05, hz, h, True, st)
    # Contact well away from the hinge (the friction torque needs a lever) and off the handle.
    contact = np.array(
        [front + t / 2, free_y + s * rng.uniform(0.2, 0.3) * w, hz + rng.uniform(-0.15, 0.15) * h]
    )
    return _front_target(
        name, geoms, [front, y + s * w / 2, z], _Z, (0.0, 1.6), contact, (front + t / 2, y, z, w, h)
    )


def _bottom_hinged_target(name, rng, d, y, z, w, h, t, st: _Style, handle: str) -> _Target:
    front = d / 2 + t / 2
    bottom = z - h / 2
    hz = bottom + rng.uniform(0.82, 0.9) * h
    geoms = [_panel(front, y, z, w, h, t, st)]
    geoms += _seen_handle(handle, front + t / 2, y, hz, w, False, st)
    contact = np.array([front + t / 2, y + rng.uniform(-0.2, 0.2) * w, bottom + rng.uniform(0.55, 0.7) * h])
    return _front_target(
        name, geoms, [front, y, bottom], _Y, (0.0, 1.4), contact, (front + t / 2, y, z, w, h)
    )


# -- seen builders ----------------------------------------------------------------------------------------
def _chest(rng, scale, st: _Style) -> _Object:
    n = int(rng.integers(2, 5))
    w, d = scale * rng.uniform(0.38, 0.6), scale * rng.uniform(0.32, 0.42)
    dh = scale * rng.uniform(0.13, 0.2)
    t = 0.02
    h = n * dh + 2 * t
    names = {2: ("top drawer", "bottom drawer"), 3: ("top drawer", "middle drawer", "bottom drawer")}.get(
        n, ("top drawer", "second drawer", "third drawer", "bottom drawer")
    )
    targets = [
        _drawer_target(name, rng, d, 0.0, h - t - (i + 0.5) * dh, w - 2 * t, dh, t, st, st.handle)
        for i, name in enumerate(names)
    ]
    return _Object(_carcass(w, d, h, t, st.body, st.body_mat), targets, w, d, h)


def _cabinet(rng, scale, st: _Style) -> _Object:
    w, d, h = scale * rng.uniform(0.3, 0.46), scale * rng.uniform(0.3, 0.4), scale * rng.uniform(0.45, 0.75)
    t = 0.02
    hinge = "left" if rng.random() < 0.5 else "right"
    door = _side_hinged_target("cabinet door", rng, d, 0.0, h / 2, w, h, t, hinge, st, st.handle)
    return _Object(_carcass(w, d, h, t, st.body, st.body_mat), [door], w, d, h)


def _double_cabinet(rng, scale, st: _Style) -> _Object:
    w, d, h = scale * rng.uniform(0.5, 0.8), scale * rng.uniform(0.3, 0.4), scale * rng.uniform(0.45, 0.7)
    t = 0.02
    targets = [
        _side_hinged_target(
            "left door of the cabinet", rng, d, -w / 4, h / 2, w / 2, h, t, "left", st, st.handle
        ),
        _side_hinged_target(
            "right door of the cabinet", rng, d, w / 4, h / 2, w / 2, h, t, "right", st, st.handle
        ),
    ]
    return _Object(_carcass(w, d, h, t, st.body, st.body_mat), targets, w, d, h)


def _microwave(rng, scale, st: _Style) -> _Object:
    w, d, h = scale * rng.uniform(0.42, 0.6), scale * rng.uniform(0.3, 0.36), scale * rng.uniform(0.26, 0.34)
    t = 0.02
    panel = rng.uniform(0.2, 0.28) * w  # control panel on the right
    door_w = w - panel
    door = _side_hinged_target(
        "microwave door",
        rng,
        d,
        -panel / 2,
        h / 2,
        door_w,
        h,
        t,
        "left",
        st,
        "bar" if st.handle == "none" else st.handle,
    )
    door.geoms.append(
        GeomSpec(
            "box",
            (d / 2 + t + 0.001, -panel / 2 - 0.05 * door_w, h / 2),
            (0.001, door_w * 0.28, h * 0.3),
            (0.08, 0.08, 0.1, 1.0),
        )
    )
    fixed = _carcass(w, d, h, t, st.body, st.body_mat)
    fixed.append(
        GeomSpec(
            "box", (d / 2 + t / 2, w / 2 - panel / 2, h / 2), (t / 2, panel / 2, h / 2), _shade(st.body, 0.6)
        )
    )
    return _Object(fixed, [door], w, d, h)


def _oven(rng, scale, st: _Style) -> _Object:
    w, d, h = scale * rng.uniform(0.45, 0.6), scale * rng.uniform(0.4, 0.48), scale * rng.uniform(0.55, 0.7)
    t = 0.02
    drawer_h, strip = 0.2 * h, 0.12 * h
    door_h = h - drawer_h - strip
    door = _bottom_hinged_target("oven door", rng, d, 0.0, drawer_h + door_h / 2, w, door_h, t, st, "bar")
    drawer = _drawer_target(
        "oven drawer", rng, d, 0.0, drawer_h / 2, w - 2 * t, drawer_h - t, t, st, st.handle
    )
    fixed = _carcass(w, d, h, t, st.body, st.body_mat)
    fixed.append(
        GeomSpec("box", (d / 2 + t / 2, 0.0, h - strip / 2), (t / 2, w / 2, strip / 2), _shade(st.body, 0.5))
    )
    return _Object(fixed, [door, drawer], w, d, h)


def _storage_box(rng, scale, st: _Style) -> _Object:
    w, d, h = scale * rng.uniform(0.34, 0.55), scale * rng.uniform(0.28, 0.4), scale * rng.uniform(0.2, 0.32)
    t = 0.02
    fixed = _carcass(w, d, h, t, st.body, st.body_mat, open_side="top")
    fixed.append(GeomSpec("box", (d / 2 - t / 2, 0.0, h / 2), (t / 2, w / 2, h / 2), st.body, st.body_mat))
    top = h + t / 2
    geoms = [GeomSpec("box", (0.0, 0.0, top), (d / 2 + 0.01, w / 2 + 0.01, t / 2), st.part, st.part_mat)]
    if st.handle in ("knob", "bar"):
        geoms.append(GeomSpec("box", (d / 2 + 0.02, 0.0, top), (0.012, 0.04, 0.01), st.dark))
    contact = np.array([rng.uniform(0.15, 0.3) * d, rng.uniform(-0.25, 0.25) * w, top + t / 2])
    face = (np.array([0.0, 0.0, top + t / 2]), np.array([d / 2, 0.0, 0.0]), np.array([0.0, w / 2, 0.0]))
    lid = _Target(
        "box lid",
        geoms,
        np.array([-d / 2, 0.0, top]),
        "hinge",
        np.array([0.0, 1.0, 0.0]),
        (0.0, 1.6),
        np.array([0.0, 0.0, 1.0]),
        contact,
        face,
    )
    return _Object(fixed, [lid], w, d, h)


# -- unseen builders (their own geometry and handle templates) ---------------------------------------------
def _ring_pull(x: float, y: float, z: float, colour: RGBA) -> list[GeomSpec]:
    """Unseen handle template: a round pull ring standing off the surface."""
    return [GeomSpec("cylinder", (x + 0.012, y, z), (0.022, 0.012, 0.0), colour)]


def _edge_lip(x: float, y: float, z: float, length: float, vertical: bool, colour: RGBA) -> list[GeomSpec]:
    """Unseen handle template: a thin lip along a door's free edge."""
    size = (0.01, 0.004, length / 2) if vertical else (0.01, length / 2, 0.004)
    return [GeomSpec("box", (x + 0.01, y, z), size, colour)]


def _washing_machine(rng, scale, st: _Style) -> _Object:
    """A round door (new topology) on a front plate; hinged on the left of the porthole."""
    w, d, h = scale * rng.uniform(0.44, 0.56), scale * rng.uniform(0.4, 0.5), scale * rng.uniform(0.5, 0.62)
    t = 0.02
    fixed = _carcass(w, d, h, t, st.body, st.body_mat)
    fixed.append(GeomSpec("box", (d / 2 + 0.005, 0.0, h / 2), (0.005, w / 2, h / 2), st.body, st.body_mat))
    r = rng.uniform(0.3, 0.38) * w
    zc = rng.uniform(0.42, 0.5) * h
    front = d / 2 + 0.01 + t / 2
    geoms = [
        GeomSpec("cylinder", (front, 0.0, zc), (r, t / 2, 0.0), st.part, st.part_mat),
        GeomSpec(
            "cylinder", (front + t / 2 + 0.001, 0.0, zc), (0.55 * r, 0.001, 0.0), (0.15, 0.2, 0.25, 1.0)
        ),
    ]
    geoms += _ring_pull(front + t / 2, 0.85 * r, zc, st.dark)
    # the flat rim between the glass and the edge is where a cup seals
    side = 1.0 if rng.random() < 0.5 else -1.0
    contact = np.array([front + t / 2, 0.7 * r, zc + side * rng.uniform(0.3, 0.45) * r])
    door = _Target(
        "washing machine door",
        geoms,
        np.array([front, -r, zc]),
        "hinge",
        np.array([0.0, 0.0, 1.0]),
        (0.0, 1.6),
        np.array([1.0, 0.0, 0.0]),
        contact,
        (np.array([front + t / 2, 0.0, zc]), np.array([0.0, 0.7 * r, 0.0]), np.array([0.0, 0.0, 0.7 * r])),
    )
    return _Object(fixed, [door], w, d, h)


def _toilet(rng, scale, st: _Style) -> _Object:
    """Seat + lid on a bowl, both hinged at the back (new topology: two stacked hinged layers)."""
    w, d, h = (
        scale * rng.uniform(0.36, 0.44),
        scale * rng.uniform(0.42, 0.52),
        scale * rng.uniform(0.34, 0.42),
    )
    t = 0.02
    fixed = [
        GeomSpec("box", (0.0, 0.0, h / 2), (d / 2, w / 2, h / 2), st.body, st.body_mat),
        GeomSpec("box", (-d / 2 - 0.08, 0.0, h + 0.15), (0.08, 0.45 * w, 0.2), st.body, st.body_mat),  # tank
    ]
    seat_top = h + t
    lid_top = seat_top + t
    target_lid = rng.random() < 0.5
    seat = GeomSpec("box", (0.01, 0.0, h + t / 2), (d / 2, w / 2, t / 2), _shade(st.part, 0.9), st.part_mat)
    lid_colour = st.part
    if target_lid:
        geoms = [
            GeomSpec(
                "box",
                (0.01, 0.0, seat_top + t / 2),
                (d / 2 - 0.01, w / 2 - 0.01, t / 2),
                lid_colour,
                st.part_mat,
            )
        ]
        geoms += _edge_lip(d / 2 + 0.0, 0.0, seat_top + t / 2, 0.3 * w, False, st.dark)
        fixed.append(seat)
        contact = np.array([rng.uniform(0.1, 0.25) * d, rng.uniform(-0.2, 0.2) * w, lid_top])
        face = (
            np.array([0.01, 0.0, lid_top]),
            np.array([d / 2 - 0.02, 0.0, 0.0]),
            np.array([0.0, w / 2 - 0.02, 0.0]),
        )
        anchor = np.array([-d / 2, 0.0, seat_top + t / 2])
        name = "toilet lid"
    else:
        # the lid stands open against the tank; the seat (a ring: front band + side bands) is the target
        fixed.append(
            GeomSpec(
                "box",
                (-d / 2 - 0.01, 0.0, seat_top + d / 2),
                (t / 2, w / 2 - 0.01, d / 2 - 0.01),
                lid_colour,
                st.part_mat,
            )
        )
        band = 0.3 * w
        geoms = [
            GeomSpec(
                "box", (d / 2 - band / 2, 0.0, h + t / 2), (band / 2, w / 2, t / 2), st.part, st.part_mat
            ),
            GeomSpec(
                "box",
                (0.0, -w / 2 + band / 4, h + t / 2),
                (d / 2 - band, band / 4, t / 2),
                st.part,
                st.part_mat,
            ),
            GeomSpec(
                "box",
                (0.0, w / 2 - band / 4, h + t / 2),
                (d / 2 - band, band / 4, t / 2),
                st.part,
                st.part_mat,
            ),
        ]
        fixed.append(
            GeomSpec(
                "box", (0.0, 0.0, h + 0.001), (d / 2 - band, w / 2 - band / 2, 0.001), (0.1, 0.15, 0.2, 1.0)
            )
        )
        contact = np.array([d / 2 - band / 2, rng.uniform(-0.15, 0.15) * w, seat_top])
        face = (
            np.array([d / 2 - band / 2, 0.0, seat_top]),
            np.array([band / 2, 0.0, 0.0]),
            np.array([0.0, w / 2, 0.0]),
        )
        anchor = np.array([-d / 2, 0.0, h + t / 2])
        name = "toilet seat"
    part = _Target(
        name,
        geoms,
        anchor,
        "hinge",
        np.array([0.0, 1.0, 0.0]),
        (0.0, 1.5),
        np.array([0.0, 0.0, 1.0]),
        contact,
        face,
    )
    return _Object(fixed, [part], w, d, h + 2 * t)


def _fridge(rng, scale, st: _Style) -> _Object:
    """A tall side-hinged door above a freezer drawer (new topology: hinge over slide), edge-lip handles."""
    w, d, h = scale * rng.uniform(0.42, 0.55), scale * rng.uniform(0.4, 0.5), scale * rng.uniform(0.8, 1.0)
    t = 0.025
    drawer_h = rng.uniform(0.28, 0.36) * h
    door_h = h - drawer_h
    front = d / 2 + t / 2
    hinge = "left" if rng.random() < 0.5 else "right"
    s = -1.0 if hinge == "left" else 1.0
    zc = drawer_h + door_h / 2
    free_y = -s * w / 2
    door_geoms = [
        GeomSpec("box", (front, 0.0, zc), (t / 2, w / 2 - 0.003, door_h / 2 - 0.003), st.part, st.part_mat)
    ]
    door_geoms += _edge_lip(front + t / 2, free_y + s * 0.02, zc, 0.5 * door_h, True, st.dark)
    contact = np.array(
        [front + t / 2, free_y + s * rng.uniform(0.2, 0.3) * w, zc + rng.uniform(-0.2, 0.2) * door_h]
    )
    door = _front_target(
        "refrigerator door",
        door_geoms,
        [front, s * w / 2, zc],
        _Z,
        (0.0, 1.6),
        contact,
        (front + t / 2, 0.0, zc, w, door_h),
    )
    dz = drawer_h / 2
    drawer_geoms = [
        GeomSpec("box", (front, 0.0, dz), (t / 2, w / 2 - 0.003, drawer_h / 2 - 0.003), st.part, st.part_mat),
        GeomSpec("box", (0.0, 0.0, 0.03), (d / 2 - t, w / 2 - t, 0.005), _shade(st.part, 0.8)),
    ]
    drawer_geoms += _edge_lip(front + t / 2, 0.0, drawer_h - 0.03, 0.6 * w, False, st.dark)
    dcontact = np.array([front + t / 2, rng.uniform(-0.25, 0.25) * w, dz - rng.uniform(0.0, 0.2) * drawer_h])
    drawer = _front_target(
        "freezer drawer",
        drawer_geoms,
        [front, 0.0, dz],
        _X,
        (0.0, 0.6 * d),
        dcontact,
        (front + t / 2, 0.0, dz, w, drawer_h),
    )
    fixed = _carcass(w, d, h, t, st.body, st.body_mat)
    return _Object(fixed, [door, drawer], w, d, h)


_BUILDERS: dict[str, Callable[..., _Object]] = {
    "chest": _chest,
    "cabinet": _cabinet,
    "double_cabinet": _double_cabinet,
    "microwave": _microwave,
    "oven": _oven,
    "storage_box": _storage_box,
    "washing_machine": _washing_machine,
    "toilet": _toilet,
    "fridge": _fridge,
}


def _yaw_matrix(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(angle * np.asarray(axis, float)).as_matrix()


def categories_for(split: str) -> tuple[str, ...]:
    """Categories of a split: seen (train, test_seen), held-out (test_unseen), others' (test_external)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "test_external":
        from sc_mllm_ros.sim.external import EXTERNAL_CATEGORIES

        return EXTERNAL_CATEGORIES
    return UNSEEN_CATEGORIES if split == "test_unseen" else SEEN_CATEGORIES


def _builder(category: str) -> Callable[..., _Object]:
    if category in _BUILDERS:
        return _BUILDERS[category]
    from sc_mllm_ros.sim.external import EXTERNAL_BUILDERS

    return EXTERNAL_BUILDERS[category]


def _materials(rng: np.random.Generator, body: RGBA, part: RGBA) -> tuple[MaterialSpec, ...]:
    """Procedural textures for carcass, part, floor and backdrop."""
    out = []
    for name, rgba in (
        ("body", body),
        ("part", part),
        ("floor", _colour(rng, 0.2, 0.8)),
        ("wall", _colour(rng, 0.3, 0.9)),
    ):
        builtin = ("checker", "gradient", "flat")[int(rng.integers(3))]
        out.append(
            MaterialSpec(
                name=name,
                builtin=builtin,
                rgb1=_t(rgba[:3]),
                rgb2=_t(np.clip(np.asarray(rgba[:3]) * rng.uniform(0.6, 1.3), 0, 1)),
                mark=("none", "edge", "cross", "random")[int(rng.integers(4))],
                random=float(rng.uniform(0.0, 0.05)),
                repeat=_t(rng.uniform(1.0, 6.0, size=2)),
            )
        )
    return tuple(out)


def _ray_hits_box(p0: np.ndarray, p1: np.ndarray, centre: np.ndarray, half: np.ndarray) -> bool:
    """Whether the segment p0-p1 passes through an axis-aligned box (slab test)."""
    d = p1 - p0
    lo, hi = 0.0, 1.0
    for k in range(3):
        if abs(d[k]) < 1e-12:
            if abs(p0[k] - centre[k]) > half[k]:
                return False
            continue
        a, b = (centre[k] - half[k] - p0[k]) / d[k], (centre[k] + half[k] - p0[k]) / d[k]
        lo, hi = max(lo, min(a, b)), min(hi, max(a, b))
        if lo > hi:
            return False
    return True


def _look_at(position: np.ndarray, target: np.ndarray, roll_deg: float) -> np.ndarray:
    """world_from_camera_optical rotation for a camera at ``position`` looking at ``target``, world z up."""
    fwd = np.asarray(target, float) - np.asarray(position, float)
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    rot = np.column_stack([right, down, fwd])
    return rot @ _axis_rotation(np.array([0.0, 0.0, 1.0]), np.deg2rad(roll_deg))


def view_of_face(
    cam_pos: np.ndarray, cam_rot: np.ndarray, fovy: float, face: np.ndarray, normal: np.ndarray, occluders
) -> tuple[float, float]:
    """Image fraction and unoccluded fraction of a planar face (5x5 grid of world points, 4 corners).

    ``occluders`` are world axis-aligned boxes (centre, half size); the robot is one of them.
    """
    centre, u, v = face
    f = 0.5 / np.tan(np.deg2rad(fovy) / 2)  # focal length in image heights
    cam_from_world = cam_rot.T
    if np.dot(normal, cam_pos - centre) <= 0:
        return 0.0, 0.0
    pts = [centre + a * u + b * v for a in np.linspace(-0.9, 0.9, 5) for b in np.linspace(-0.9, 0.9, 5)]
    seen = 0
    for p in pts:
        c = cam_from_world @ (p - cam_pos)
        if c[2] <= 0.05 or abs(c[0] / c[2] * f) > 0.5 or abs(c[1] / c[2] * f) > 0.5:
            continue
        if any(
            _ray_hits_box(cam_pos, p - 0.01 * (p - cam_pos) / np.linalg.norm(p - cam_pos), oc, oh)
            for oc, oh in occluders
        ):
            continue
        seen += 1
    corners = [
        cam_from_world @ (centre + a * u + b * v - cam_pos) for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))
    ]
    if min(c[2] for c in corners) <= 0.05:
        return 0.0, 0.0
    xy = np.array([[c[0] / c[2] * f, c[1] / c[2] * f] for c in corners])
    area = 0.5 * abs(np.dot(xy[:, 0], np.roll(xy[:, 1], 1)) - np.dot(xy[:, 1], np.roll(xy[:, 0], 1)))
    visible = seen / len(pts)
    return float(area * visible), float(visible)


# The robot's tucked arm and base as seen from the camera: a box around the base.
_ROBOT_BOX = (np.array([0.0, 0.0, 0.5]), np.array([0.2, 0.2, 0.55]))


def sample_scene(seed: int, split: str = "train", category: str | None = None) -> SceneSpec:
    """Draw one scene deterministically from ``seed`` (redrawing until it is visible and reachable).

    ``train`` and ``test_seen`` use the seen categories but independent random streams (held-out
    instances); ``test_unseen`` uses only the held-out categories.  ``category`` pins the category
    (it must belong to the split).
    """
    cats = categories_for(split)
    if category is not None and category not in cats:
        raise ValueError(f"category {category!r} is not in split {split!r} (choose from {cats})")
    for attempt in range(200):
        rng = np.random.default_rng([int(seed), SPLITS.index(split), 7919, attempt])
        scene = _draw_scene(rng, int(seed), split, category or cats[int(rng.integers(len(cats)))])
        if scene is not None:
            return scene
    raise RuntimeError(f"no visible, reachable scene for seed {seed} in split {split}")


def _draw_scene(rng: np.random.Generator, seed: int, split: str, category: str) -> SceneSpec | None:
    from sc_mllm_ros.sim.robot import pull_reachable

    scale = rng.uniform(0.7, 1.2)  # ManipLLM
    body = _colour(rng)
    shared = rng.random() < 0.3  # the part shares the carcass texture: only seams and handles show it
    part = body if shared else _colour(rng)
    st = _Style(body, part, "body", "body" if shared else "part", SEEN_HANDLES[int(rng.integers(4))])
    obj = _builder(category)(rng, scale, st)
    target = obj.targets[int(rng.integers(len(obj.targets)))]
    fixed = list(obj.fixed)
    for other in obj.targets:
        if other is not target:
            fixed += other.geoms

    # Orient the joint so that positive motion moves the contact point outwards.
    if target.joint_type == "hinge":
        if np.dot(np.cross(target.axis, target.contact - target.anchor), target.normal) < 0:
            target.axis = -target.axis
    top_face = target.normal[2] > 0.5

    # A plinth lifts the contact to where the Panda reaches well (horizontal approach ~0.7 m, downward
    # below 0.5 m); it belongs to the object (the camera frames it too).
    contact_height = rng.uniform(0.3, 0.45) if top_face else rng.uniform(0.6, 0.8)
    plinth = max(0.0, contact_height - target.contact[2])
    lift = np.array([0.0, 0.0, plinth])
    fixed = [GeomSpec(g.kind, _t(np.asarray(g.pos) + lift), g.size, g.rgba, g.material) for g in fixed]
    if plinth > 0.0:
        fixed.append(
            GeomSpec(
                "box",
                (0.0, 0.0, plinth / 2),
                (obj.depth / 2, obj.width / 2, plinth / 2),
                _shade(body, 0.5),
                "body",
            )
        )
    anchor = target.anchor + lift
    contact_obj = target.contact + lift
    part_geoms = [
        GeomSpec(g.kind, _t(np.asarray(g.pos) - anchor + lift), g.size, g.rgba, g.material)
        for g in target.geoms
    ]

    # Facing the robot (base at the origin, +x ahead) with a yaw of up to 60 deg, contact within reach.
    yaw = np.pi + np.deg2rad(rng.uniform(-60, 60))
    rot = _yaw_matrix(yaw)
    reach = rng.uniform(0.4, 0.55) if top_face else rng.uniform(0.5, 0.68)
    bearing = rng.uniform(-0.5, 0.5)
    contact_w = np.array([reach * np.cos(bearing), reach * np.sin(bearing), contact_obj[2]])
    obj_pos = contact_w - rot @ contact_obj
    obj_pos[2] = 0.0

    lo, hi = target.joint_range
    initial_q = float(rng.uniform(0.05, 0.2) * (hi - lo)) if rng.random() < 0.5 else 0.0
    if target.joint_type == "hinge":
        part_rot = _axis_rotation(target.axis, initial_q)
        offset = np.zeros(3)
    else:
        part_rot, offset = np.eye(3), initial_q * target.axis
    normal_obj = part_rot @ target.normal

    def to_world(p_obj):
        p_part = np.asarray(p_obj) + lift - anchor
        return rot @ (anchor + part_rot @ p_part + offset) + obj_pos

    normal_w = rot @ normal_obj
    contact_w = to_world(target.contact)
    forward_obj = rot.T @ np.array([1.0, 0.0, 0.0]) if top_face else np.array([0.0, 0.0, 1.0])
    forward_obj = forward_obj - np.dot(forward_obj, normal_obj) * normal_obj
    forward_obj /= np.linalg.norm(forward_obj)
    if not pull_reachable(contact_w, -normal_w, rot @ forward_obj):
        return None

    # Distractors on the floor beside the object.
    distractors = []
    for _ in range(int(rng.integers(1, 4))):
        ang = rng.uniform(0, 2 * np.pi)
        r = max(obj.width, obj.depth) / 2 + rng.uniform(0.15, 0.5)
        half = rng.uniform(0.03, 0.1, size=3)
        c = obj_pos + np.array([r * np.cos(ang), r * np.sin(ang), half[2]])
        kind = "box" if rng.random() < 0.6 else "cylinder"
        distractors.append(GeomSpec(kind, _t(c), _t(half), _colour(rng)))
    occluders = [_ROBOT_BOX] + [
        (np.asarray(g.pos), np.asarray(g.size) if g.kind == "box" else np.full(3, max(g.size[:2])))
        for g in distractors
    ]

    # Object-centric camera: look at the bounding box's centre (+ noise) from the front half-space.
    height = obj.height + plinth
    bbox_centre = obj_pos + rot @ np.array([0.0, 0.0, height / 2])
    radius = 0.5 * np.linalg.norm([obj.width, obj.depth, height])
    front_w = rot @ np.array([1.0, 0.0, 0.0])
    face = target.face
    face_w = (to_world(face[0]), rot @ part_rot @ face[1], rot @ part_rot @ face[2])
    for _ in range(20):
        azim, elev = np.deg2rad(rng.uniform(-70, 70)), np.deg2rad(rng.uniform(5, 65))
        roll, fovy = rng.uniform(-10, 10), rng.uniform(35, 60)
        horiz = _yaw_matrix(azim) @ front_w
        view = np.cos(elev) * horiz + np.array([0.0, 0.0, np.sin(elev)])
        dist = radius / np.sin(np.deg2rad(fovy) / 2) * rng.uniform(1.1, 1.6)
        cam_target = bbox_centre + rng.normal(0.0, 0.3, size=3) * radius
        cam_pos = cam_target + dist * view
        if cam_pos[2] < 0.15:
            continue
        area, visible = view_of_face(
            cam_pos, _look_at(cam_pos, cam_target, roll), fovy, face_w, normal_w, occluders
        )
        if area >= MIN_PART_FRACTION and visible >= MIN_VISIBLE:
            break
    else:
        return None

    lights = []
    for k in range(int(rng.integers(1, 4))):
        pos = obj_pos + np.array([*rng.uniform(-1.5, 1.5, size=2), rng.uniform(1.5, 3.0)])
        lights.append(
            LightSpec(_t(pos), _t(bbox_centre - pos), _t(np.full(3, rng.uniform(0.25, 0.6))), k == 0)
        )
    hinge = target.joint_type == "hinge"
    return SceneSpec(
        seed=seed,
        split=split,
        category=category,
        object_name=target.name,
        object_pos=_t(obj_pos),
        object_yaw=float(yaw),
        fixed_geoms=tuple(fixed),
        part_geoms=tuple(part_geoms),
        part_pos=_t(anchor),
        joint_type=target.joint_type,
        joint_axis=_t(target.axis),
        joint_range=_t(target.joint_range),
        plane_normal=_t(target.normal),
        contact=_t(contact_obj - anchor),
        forward=_t(rot.T @ np.array([1.0, 0.0, 0.0]) if top_face else np.array([0.0, 0.0, 1.0])),
        camera_pos=_t(cam_pos),
        camera_target=_t(cam_target),
        camera_fovy=float(fovy),
        camera_roll=float(roll),
        # Per-scene articulation: a hinge needs a lever against its friction, so contacts near it fail.
        joint_damping=obj.damping or float(rng.uniform(0.3, 1.5) if hinge else rng.uniform(2.0, 8.0)),
        joint_friction=obj.friction
        or float(
            (rng.uniform(0.2, 0.8) if abs(target.axis[2]) < 0.5 else rng.uniform(1.0, 3.0))
            if hinge
            else rng.uniform(3.0, 10.0)
        ),
        initial_q=initial_q,
        handle=st.handle,
        materials=_materials(rng, body, part),
        lights=tuple(lights),
        distractors=tuple(distractors),
        exposure=float(rng.uniform(0.75, 1.25)),
        pixel_noise=float(rng.uniform(1.0, 5.0)),
        depth_dropout=float(rng.uniform(0.02, 0.05)),
        part_names=tuple(t.name for t in obj.targets),
    )
