"""Procedural articulated objects and the randomized scene description (pure numpy, no MuJoCo).

A :class:`SceneSpec` is plain data: the object's static geoms, its movable part (geoms, joint, the
movable plane's normal, the best contact point) and the camera, all drawn from one seed.  The world
(:mod:`sc_mllm_ros.sim.world`) turns it into a MuJoCo model.

Object frame: origin at the bottom centre of the carcass, +x out of the front face (towards the robot),
+z up, so a viewer facing the object has +y on the right.  The part frame has the object frame's
orientation and its origin on the joint axis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Vec3 = tuple[float, float, float]

SPLITS = ("train", "test_seen", "test_unseen")
SEEN_CATEGORIES = ("drawer", "door_left", "door_right", "microwave", "oven", "lid")
UNSEEN_CATEGORIES = ("fridge", "washing_machine", "toilet")

# The noun the prompt uses for each category ("pulling the {object}").
OBJECT_NAMES = {
    "drawer": "drawer",
    "door_left": "cabinet door",
    "door_right": "cabinet door",
    "microwave": "microwave door",
    "oven": "oven door",
    "lid": "box lid",
    "fridge": "refrigerator door",
    "washing_machine": "washing machine door",
    "toilet": "toilet lid",
}


@dataclass(frozen=True)
class GeomSpec:
    """One primitive: ``kind`` is "box" or "cylinder" (axis along local x); sizes are MuJoCo half sizes."""

    kind: str
    pos: Vec3
    size: Vec3
    rgba: tuple[float, float, float, float]


@dataclass(frozen=True)
class SceneSpec:
    """Everything needed to rebuild one scene exactly; equal seeds give equal specs."""

    seed: int
    split: str
    category: str
    object_name: str
    # world_from_object: translation and yaw about +z
    object_pos: Vec3
    object_yaw: float
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
    light_dir: Vec3 = field(default=(0.3, 0.2, -1.0))

    @property
    def seen(self) -> bool:
        return self.category in SEEN_CATEGORIES


def _t(v) -> Vec3:
    return tuple(float(x) for x in v)


def _colour(
    rng: np.random.Generator, lo: float = 0.25, hi: float = 0.95
) -> tuple[float, float, float, float]:
    return (*_t(rng.uniform(lo, hi, size=3)), 1.0)


def _shade(rgba, f: float) -> tuple[float, float, float, float]:
    return (*_t(np.clip(np.asarray(rgba[:3]) * f, 0.0, 1.0)), 1.0)


def _carcass(w: float, d: float, h: float, t: float, rgba, open_side: str = "front") -> list[GeomSpec]:
    """Five panels of a box of outer size ``d`` x ``w`` x ``h`` (x, y, z), open on ``open_side``."""
    panels = {
        "back": GeomSpec("box", (-d / 2 + t / 2, 0.0, h / 2), (t / 2, w / 2, h / 2), rgba),
        "left": GeomSpec("box", (0.0, -w / 2 + t / 2, h / 2), (d / 2, t / 2, h / 2), rgba),
        "right": GeomSpec("box", (0.0, w / 2 - t / 2, h / 2), (d / 2, t / 2, h / 2), rgba),
        "bottom": GeomSpec("box", (0.0, 0.0, t / 2), (d / 2, w / 2, t / 2), rgba),
        "top": GeomSpec("box", (0.0, 0.0, h - t / 2), (d / 2, w / 2, t / 2), rgba),
    }
    return [g for side, g in panels.items() if side != open_side]


@dataclass
class _Part:
    """What a category builder returns, in the object frame (converted to a SceneSpec by ``sample_scene``)."""

    fixed: list[GeomSpec]
    part: list[GeomSpec]  # object frame; shifted into the part frame later
    anchor: np.ndarray
    joint_type: str
    axis: np.ndarray  # sign fixed later so that positive motion opens
    joint_range: tuple[float, float]
    normal: np.ndarray
    contact: np.ndarray
    height: float  # carcass height (for the pedestal and the camera)
    width: float
    depth: float


def _hinged_front(
    rng,
    w,
    d,
    h,
    t,
    side: str,
    body_rgba,
    door_rgba,
    handle: str,
    door_h=None,
    door_w=None,
    y0: float = 0.0,
    z0: float | None = None,
) -> _Part:
    """A carcass with a front door hinged on ``side`` ("left" | "right" | "bottom")."""
    fixed = _carcass(w, d, h, t, body_rgba)
    door_w = w if door_w is None else door_w
    door_h = h if door_h is None else door_h
    zc = h / 2 if z0 is None else z0
    front = d / 2 + t / 2  # door panel centre plane, just in front of the carcass
    part = [GeomSpec("box", (front, y0, zc), (t / 2, door_w / 2, door_h / 2), door_rgba)]
    hd = _shade(door_rgba, 0.35)
    out = front + t / 2
    if side in ("left", "right"):
        s = -1.0 if side == "left" else 1.0  # hinge at y0 + s * door_w / 2
        hinge_y = y0 + s * door_w / 2
        free_y = y0 - s * door_w / 2
        hz = zc + rng.uniform(-0.25, 0.25) * door_h
        hy = free_y + s * rng.uniform(0.06, 0.10) * door_w / 0.5 * 0.5
        if handle == "bar":
            part.append(GeomSpec("box", (out + 0.02, hy, hz), (0.02, 0.012, min(0.3 * door_h, 0.12)), hd))
        else:
            part.append(GeomSpec("box", (out + 0.015, hy, hz), (0.015, 0.015, 0.015), hd))
        # Contact beside the handle, towards the door's middle: far from the hinge, off the handle.
        cy = free_y + s * rng.uniform(0.22, 0.32) * door_w
        contact = np.array([out, cy, hz + rng.uniform(-0.05, 0.05) * door_h])
        anchor = np.array([front, hinge_y, zc])
        axis = np.array([0.0, 0.0, 1.0])
    else:  # bottom hinge (oven, dishwasher-like)
        bottom = zc - door_h / 2
        hz = bottom + rng.uniform(0.82, 0.9) * door_h
        part.append(GeomSpec("box", (out + 0.02, y0, hz), (0.02, min(0.35 * door_w, 0.2), 0.012), hd))
        contact = np.array(
            [out, y0 + rng.uniform(-0.15, 0.15) * door_w, hz - rng.uniform(0.16, 0.24) * door_h]
        )
        anchor = np.array([front, y0, bottom])
        axis = np.array([0.0, 1.0, 0.0])
    return _Part(fixed, part, anchor, "hinge", axis, (0.0, 1.6), np.array([1.0, 0.0, 0.0]), contact, h, w, d)


def _door(side: str):
    def build(rng, scale, body_rgba, part_rgba) -> _Part:
        w, d, h = (
            scale * rng.uniform(0.34, 0.46),
            scale * rng.uniform(0.3, 0.4),
            scale * rng.uniform(0.45, 0.6),
        )
        handle = "bar" if rng.random() < 0.6 else "knob"
        return _hinged_front(rng, w, d, h, 0.02, side, body_rgba, part_rgba, handle)

    return build


def _drawer(rng, scale, body_rgba, part_rgba) -> _Part:
    w, d, h = scale * rng.uniform(0.38, 0.5), scale * rng.uniform(0.32, 0.42), scale * rng.uniform(0.22, 0.3)
    t = 0.02
    fixed = _carcass(w, d, h, t, body_rgba)
    front = d / 2 + t / 2
    fw, fh = w / 2 - 0.004, h / 2 - 0.004
    hd = _shade(part_rgba, 0.35)
    hz = h / 2 + rng.uniform(0.2, 0.3) * h
    part = [
        GeomSpec("box", (front, 0.0, h / 2), (t / 2, fw, fh), part_rgba),
        # the tray behind the front, visible once pulled out
        GeomSpec("box", (0.0, 0.0, t + 0.01), (d / 2 - t, fw - t, 0.005), _shade(part_rgba, 0.8)),
        GeomSpec("box", (0.0, -fw + t, h / 2 - 0.01), (d / 2 - t, 0.005, fh - 0.03), _shade(part_rgba, 0.8)),
        GeomSpec("box", (0.0, fw - t, h / 2 - 0.01), (d / 2 - t, 0.005, fh - 0.03), _shade(part_rgba, 0.8)),
    ]
    hy = rng.uniform(-0.15, 0.15) * w
    part.append(GeomSpec("box", (front + t / 2 + 0.02, hy, hz), (0.02, min(0.3 * w, 0.1), 0.012), hd))
    contact = np.array([front + t / 2, rng.uniform(-0.2, 0.2) * w, h / 2 - rng.uniform(0.1, 0.2) * h])
    anchor = np.array([front, 0.0, h / 2])
    return _Part(
        fixed,
        part,
        anchor,
        "slide",
        np.array([1.0, 0.0, 0.0]),
        (0.0, 0.75 * d),
        np.array([1.0, 0.0, 0.0]),
        contact,
        h,
        w,
        d,
    )


def _microwave(rng, scale, body_rgba, part_rgba) -> _Part:
    w, d, h = scale * rng.uniform(0.42, 0.52), scale * rng.uniform(0.3, 0.36), scale * rng.uniform(0.26, 0.32)
    panel = rng.uniform(0.2, 0.26) * w  # control panel on the right
    door_w = w - panel
    p = _hinged_front(rng, w, d, h, 0.02, "left", body_rgba, part_rgba, "bar", door_w=door_w, y0=-panel / 2)
    p.fixed.append(
        GeomSpec(
            "box", (d / 2 + 0.01, w / 2 - panel / 2, h / 2), (0.01, panel / 2, h / 2), _shade(body_rgba, 0.6)
        )
    )
    # a dark window in the door
    win = GeomSpec(
        "box", (d / 2 + 0.021, -panel / 2, h / 2), (0.001, door_w * 0.3, h * 0.3), (0.1, 0.1, 0.12, 1.0)
    )
    p.part.append(win)
    p.contact[2] = h / 2 + rng.uniform(0.33, 0.4) * h * np.sign(rng.uniform(-1, 1))
    return p


def _oven(rng, scale, body_rgba, part_rgba) -> _Part:
    w, d, h = scale * rng.uniform(0.45, 0.55), scale * rng.uniform(0.4, 0.48), scale * rng.uniform(0.45, 0.55)
    door_h = 0.72 * h
    p = _hinged_front(rng, w, d, h, 0.02, "bottom", body_rgba, part_rgba, "bar", door_h=door_h, z0=door_h / 2)
    p.fixed.append(
        GeomSpec(
            "box",
            (d / 2 + 0.01, 0.0, door_h + (h - door_h) / 2),
            (0.01, w / 2, (h - door_h) / 2),
            _shade(body_rgba, 0.5),
        )
    )
    p.joint_range = (0.0, 1.4)
    return p


def _lid(rng, scale, body_rgba, part_rgba, toilet: bool = False) -> _Part:
    w, d, h = scale * rng.uniform(0.34, 0.44), scale * rng.uniform(0.28, 0.36), scale * rng.uniform(0.2, 0.3)
    t = 0.02
    fixed = _carcass(w, d, h, t, body_rgba, open_side="top")
    fixed.append(GeomSpec("box", (d / 2 - t / 2, 0.0, h / 2), (t / 2, w / 2, h / 2), body_rgba))  # front wall
    hd = _shade(part_rgba, 0.35)
    top = h + t / 2
    part = [GeomSpec("box", (0.0, 0.0, top), (d / 2 + 0.01, w / 2 + 0.01, t / 2), part_rgba)]
    if toilet:
        # a tank behind the lid and a rounded seat look (cylinder lid on a box bowl)
        fixed.append(GeomSpec("box", (-d / 2 - 0.07, 0.0, h + 0.12), (0.07, w / 2, 0.2), body_rgba))
    else:
        part.append(GeomSpec("box", (d / 2 + 0.01, rng.uniform(-0.2, 0.2) * w, top), (0.02, 0.03, 0.012), hd))
    contact = np.array([rng.uniform(0.12, 0.28) * d, rng.uniform(-0.2, 0.2) * w, top + t / 2])
    anchor = np.array([-d / 2, 0.0, top])
    return _Part(
        fixed,
        part,
        anchor,
        "hinge",
        np.array([0.0, 1.0, 0.0]),
        (0.0, 1.6),
        np.array([0.0, 0.0, 1.0]),
        contact,
        h,
        w,
        d,
    )


def _fridge(rng, scale, body_rgba, part_rgba) -> _Part:
    w, d, h = scale * rng.uniform(0.4, 0.5), scale * rng.uniform(0.36, 0.44), scale * rng.uniform(0.8, 0.95)
    door_h = rng.uniform(0.6, 0.7) * h
    p = _hinged_front(
        rng,
        w,
        d,
        h,
        0.025,
        "left" if rng.random() < 0.5 else "right",
        body_rgba,
        part_rgba,
        "bar",
        door_h=door_h,
        z0=door_h / 2,
    )
    p.fixed.append(
        GeomSpec(
            "box",
            (d / 2 + 0.0125, 0.0, door_h + (h - door_h) / 2),
            (0.0125, w / 2, (h - door_h) / 2 - 0.005),
            _shade(body_rgba, 0.9),
        )
    )
    return p


def _washing_machine(rng, scale, body_rgba, part_rgba) -> _Part:
    w, d, h = scale * rng.uniform(0.44, 0.52), scale * rng.uniform(0.4, 0.46), scale * rng.uniform(0.5, 0.58)
    t = 0.02
    fixed = _carcass(w, d, h, t, body_rgba)
    fixed.append(
        GeomSpec("box", (d / 2 + 0.005, 0.0, h / 2), (0.005, w / 2, h / 2), body_rgba)
    )  # front plate
    r = rng.uniform(0.3, 0.36) * w
    zc = rng.uniform(0.42, 0.5) * h
    front = d / 2 + 0.01 + t / 2
    part = [
        GeomSpec("cylinder", (front, 0.0, zc), (r, t / 2, 0.0), part_rgba),
        GeomSpec("cylinder", (front + t / 2 + 0.001, 0.0, zc), (0.7 * r, 0.001, 0.0), (0.15, 0.2, 0.25, 1.0)),
        GeomSpec("box", (front + t / 2 + 0.015, 0.85 * r, zc), (0.015, 0.012, 0.04), _shade(part_rgba, 0.35)),
    ]
    contact = np.array([front + t / 2, rng.uniform(0.3, 0.45) * r, zc + rng.uniform(-0.35, 0.35) * r])
    anchor = np.array([front, -r, zc])
    return _Part(
        fixed,
        part,
        anchor,
        "hinge",
        np.array([0.0, 0.0, 1.0]),
        (0.0, 1.6),
        np.array([1.0, 0.0, 0.0]),
        contact,
        h,
        w,
        d,
    )


_BUILDERS: dict[str, Callable[..., _Part]] = {
    "drawer": _drawer,
    "door_left": _door("left"),
    "door_right": _door("right"),
    "microwave": _microwave,
    "oven": _oven,
    "lid": _lid,
    "fridge": _fridge,
    "washing_machine": _washing_machine,
    "toilet": lambda rng, scale, b, p: _lid(rng, scale, b, p, toilet=True),
}


def _yaw_matrix(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def categories_for(split: str) -> tuple[str, ...]:
    """Categories a split draws from: seen for train/test_seen, held-out ones for test_unseen."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return UNSEEN_CATEGORIES if split == "test_unseen" else SEEN_CATEGORIES


def sample_scene(seed: int, split: str = "train", category: str | None = None) -> SceneSpec:
    """Draw one scene deterministically from ``seed``.

    ``train`` and ``test_seen`` use the seen categories but independent random streams (held-out
    instances); ``test_unseen`` uses only the held-out categories.  ``category`` pins the category
    (it must belong to the split).
    """
    cats = categories_for(split)
    if category is not None and category not in cats:
        raise ValueError(f"category {category!r} is not in split {split!r} (choose from {cats})")
    rng = np.random.default_rng([int(seed), SPLITS.index(split), 7919])
    category = category or cats[int(rng.integers(len(cats)))]

    scale = rng.uniform(0.85, 1.15)
    body_rgba = _colour(rng)
    part_rgba = _colour(rng) if rng.random() < 0.5 else _shade(body_rgba, rng.uniform(0.75, 1.2))
    p = _BUILDERS[category](rng, scale, body_rgba, part_rgba)

    # Orient the joint so that positive motion moves the contact point outwards.
    if p.joint_type == "hinge":
        r = p.contact - p.anchor
        if np.dot(np.cross(p.axis, r), p.normal) < 0:
            p.axis = -p.axis
    top_face = p.normal[2] > 0.5

    # Stand the object on a pedestal so the contact is where the Panda reaches well: a horizontal
    # approach works best about 0.7 m above its base, a downward one below 0.5 m.
    contact_height = rng.uniform(0.3, 0.45) if top_face else rng.uniform(0.64, 0.76)
    pedestal = max(0.0, contact_height - p.contact[2])
    fixed = [GeomSpec(g.kind, (g.pos[0], g.pos[1], g.pos[2] + pedestal), g.size, g.rgba) for g in p.fixed]
    part_geoms = [GeomSpec(g.kind, _t(np.asarray(g.pos) - p.anchor), g.size, g.rgba) for g in p.part]
    if pedestal > 0.0:
        fixed.append(
            GeomSpec(
                "box",
                (0.0, 0.0, pedestal / 2),
                (p.depth / 2, p.width / 2, pedestal / 2),
                (0.35, 0.33, 0.3, 1.0),
            )
        )
    anchor = p.anchor + [0.0, 0.0, pedestal]
    contact_obj = p.contact + [0.0, 0.0, pedestal]

    # Place the object in front of the robot (base at the origin, facing +x) with its front facing it,
    # a little off to one side; the camera looks from that side and the arm rests turned the other way.
    side = 1.0 if rng.random() < 0.5 else -1.0
    yaw = np.pi + rng.uniform(-0.25, 0.25)
    rot = _yaw_matrix(yaw)
    reach = rng.uniform(0.4, 0.5) if top_face else rng.uniform(0.56, 0.7)
    lateral = side * (rng.uniform(0.1, 0.25) if top_face else rng.uniform(0.0, 0.12))
    contact_w_xy = rot @ contact_obj
    obj_pos = np.array([reach - contact_w_xy[0], lateral - contact_w_xy[1], 0.0])

    # Ground-truth forward (gripper x axis), the Panda's natural roll: world up for vertical faces,
    # away from the robot for lids.
    forward = rot.T @ np.array([1.0, 0.0, 0.0]) if top_face else np.array([0.0, 0.0, 1.0])

    # Camera: looks at the movable part from the front, off to the object's side, slightly above.
    part_centre = rot @ (anchor + np.mean([np.asarray(g.pos) for g in part_geoms[:1]], axis=0)) + obj_pos
    normal_w = rot @ p.normal
    if top_face:
        elev, azim = np.deg2rad(rng.uniform(45, 60)), side * np.deg2rad(rng.uniform(5, 25))
        horiz = -rot @ np.array([1.0, 0.0, 0.0]) * -1.0  # view from the object's front
    else:
        elev, azim = np.deg2rad(rng.uniform(15, 35)), side * np.deg2rad(rng.uniform(15, 35))
        horiz = normal_w
    horiz = _yaw_matrix(azim) @ np.array([horiz[0], horiz[1], 0.0])
    horiz /= np.linalg.norm(horiz)
    view = np.cos(elev) * horiz + np.array([0.0, 0.0, np.sin(elev)])
    fovy = rng.uniform(42.0, 50.0)
    extent = max(p.width, min(p.height, 0.6))
    dist = rng.uniform(0.85, 1.05) * extent / np.tan(np.deg2rad(fovy) / 2)
    target = part_centre + rng.normal(0.0, 0.02, size=3)
    cam_pos = target + dist * view

    return SceneSpec(
        seed=int(seed),
        split=split,
        category=category,
        object_name=OBJECT_NAMES[category],
        object_pos=_t(obj_pos),
        object_yaw=float(yaw),
        fixed_geoms=tuple(fixed),
        part_geoms=tuple(part_geoms),
        part_pos=_t(anchor),
        joint_type=p.joint_type,
        joint_axis=_t(p.axis),
        joint_range=_t(p.joint_range),
        plane_normal=_t(p.normal),
        contact=_t(contact_obj - anchor),
        forward=_t(forward),
        camera_pos=_t(cam_pos),
        camera_target=_t(target),
        camera_fovy=float(fovy),
        light_dir=_t(np.array([0.3, -side * 0.3, -1.0]) + rng.normal(0.0, 0.1, size=3)),
    )
