"""Fixed policies on the same scenes per split: proof that the world needs the pose to be right.

A world where a blind or trivial policy succeeds measures nothing.  Every policy here sees the same noisy
RGB-D frame the model sees (plus, where named "privileged", the ground truth) and answers one pose:

* ``gt_pose``: the ground-truth contact and direction (the world is solvable and reachable);
* ``image_centre_depth_normal``: the image centre pixel and the depth image's local plane normal;
* ``noun_mean_pose``: the mean training pose (pixel, directions) of the task's part name, image-blind;
* ``random_object_pixel_depth_normal``: a random pixel on the object, with the local depth normal;
* ``mask_centroid_depth_normal`` (privileged): the target part's mask centroid, with the depth normal;
* ``expert_alone``: the RGB-D experts' hint (``sc_mllm_ros.experts``, shipped weights) executed with no
  model: the position expert's best point lifted with the noisy depth, the rotation expert's axes.

Rates come with Wilson 95 % intervals; the gates of the world are :data:`GATES`.  For ``expert_alone``
the labels also score the hint itself (never used to make it): whether the position hint is in the
affordance region, and the rotation expert's angle to the part's normal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import functools
import multiprocessing

import numpy as np

from sc_mllm_ros.geometry import (
    deproject,
    in_mask,
    lift_pixel,
    local_normal,
    Pose,
    rotation_from_up_forward,
    ROTATION_LIMIT_DEG,
)

SPLITS = {"seen": "test_seen", "unseen": "test_unseen", "external": "test_external"}
# (policy, bound, "min" | "max"): the world is solvable, and not solvable blind.
GATES = (
    ("gt_pose", 0.90, "min"),
    ("image_centre_depth_normal", 0.25, "max"),
    ("noun_mean_pose", 0.15, "max"),
)


@dataclass(frozen=True)
class Context:
    """What a policy may use: the world (for privileged ones), the noisy frame, the noun means, an rng."""

    world: object
    obs: object
    means: dict
    rng: np.random.Generator
    hints: object | None = None  # the RGB-D experts' hints on ``obs`` (None: not asked for, or refused)


def _pose_at(obs, pixel, up: np.ndarray | None = None) -> Pose:
    """A pose at a pixel lifted with the noisy depth; ``up`` defaults to minus the local depth normal."""
    point = lift_pixel(obs.depth, pixel, obs.intrinsics)
    if up is None:
        up = -local_normal(obs.depth, pixel, obs.intrinsics)
    forward = np.array([0.0, -1.0, 0.0])  # image up: world up for most views
    if abs(np.dot(forward, up)) > 0.95:
        forward = np.array([1.0, 0.0, 0.0])
    return Pose(point, rotation_from_up_forward(up, forward))


def gt_pose(ctx: Context) -> Pose:
    return ctx.world.ground_truth.pose


def image_centre_depth_normal(ctx: Context) -> Pose:
    h, w = ctx.obs.depth.shape
    return _pose_at(ctx.obs, ((h - 1) / 2, (w - 1) / 2))


def noun_mean_pose(ctx: Context) -> Pose:
    mean = ctx.means.get(ctx.world.object_name, ctx.means["*"])
    h, w = ctx.obs.depth.shape
    pixel = (mean["contact"][0] * (h - 1), mean["contact"][1] * (w - 1))
    point = lift_pixel(ctx.obs.depth, pixel, ctx.obs.intrinsics)
    return Pose(point, rotation_from_up_forward(mean["up"], mean["forward"]))


def random_object_pixel_depth_normal(ctx: Context) -> Pose:
    world = ctx.world
    seg = world.render_segmentation()
    body = world.model.geom_bodyid[np.maximum(seg, 0)]
    rows, cols = np.nonzero((seg >= 0) & np.isin(body, [world.model.body("object").id, world.part_body]))
    i = int(ctx.rng.integers(rows.size))
    return _pose_at(ctx.obs, (rows[i], cols[i]))


def mask_centroid_depth_normal(ctx: Context) -> Pose:
    mask = ctx.world.ground_truth.part_mask
    rows, cols = np.nonzero(mask)
    r, c = rows.mean(), cols.mean()
    i = int(np.argmin((rows - r) ** 2 + (cols - c) ** 2))  # the mask pixel nearest the centroid
    return _pose_at(ctx.obs, (rows[i], cols[i]))


def expert_alone(ctx: Context) -> Pose:
    """The experts' hint, from the noisy RGB-D only: best candidate lifted with the depth, fitted axes."""
    if ctx.hints is None:
        raise ValueError("the experts refused this frame")
    point = lift_pixel(ctx.obs.depth, ctx.hints.pixel, ctx.obs.intrinsics)
    return Pose(point, rotation_from_up_forward(ctx.hints.up, ctx.hints.forward))


POLICIES: dict[str, Callable[[Context], Pose]] = {
    "gt_pose": gt_pose,
    "image_centre_depth_normal": image_centre_depth_normal,
    "noun_mean_pose": noun_mean_pose,
    "random_object_pixel_depth_normal": random_object_pixel_depth_normal,
    "mask_centroid_depth_normal": mask_centroid_depth_normal,
    "expert_alone": expert_alone,
}


@functools.cache
def _experts():
    from sc_mllm_ros.experts import Experts

    return Experts.from_pretrained()  # the shipped weights, loaded once per worker process


def in_affordance_by_pull(world, pixel: tuple[float, float]) -> bool:
    """The affordance label at one pixel, by its definition (one executed pull, not a 24-pull mask).

    Inside when the pixel is on the target part and a pull there along the ground-truth direction succeeds.
    """
    gt = world.ground_truth
    if not in_mask(gt.part_mask, pixel):
        return False
    r, c = int(round(pixel[0])), int(round(pixel[1]))
    point = deproject((r, c), float(world.clean_depth[r, c]), world.intrinsics)
    pose = Pose(point, rotation_from_up_forward(gt.up, gt.forward))
    return bool(world.execute(pose, render_end=False).success)


def expert_episode(world, obs) -> tuple[object | None, dict]:
    """The experts' hints on the noisy frame, and where they land (scored with the labels only)."""
    from sc_mllm_ros.experts import ExpertError
    from sc_mllm_ros.experts.metrics import rotation_error_deg

    try:
        hints = _experts().hints(obs.rgb, obs.depth, obs.intrinsics, f"pull the {world.object_name}")
    except ExpertError as err:
        return None, {"refused": str(err), "in_affordance": False, "rotation_error_deg": None}
    return hints, {
        "refused": None,
        "in_affordance": in_affordance_by_pull(world, hints.pixel),
        "rotation_error_deg": rotation_error_deg(hints.up, world.ground_truth.plane_normal),
    }


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial rate k / n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return float(max(0.0, c - h)), float(min(1.0, c + h))


def _gt_summary(args: tuple[int, int]) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    from sc_mllm_ros.sim import PullWorld, sample_scene
    from sc_mllm_ros.sim.dataset import scene_seed

    seed, i = args
    with PullWorld(sample_scene(scene_seed(seed, "train", i), "train")) as world:
        gt = world.ground_truth
        h, w = gt.part_mask.shape
        return (
            world.object_name,
            np.array([gt.contact[0] / (h - 1), gt.contact[1] / (w - 1)]),
            gt.up,
            gt.forward,
        )


def noun_means(rows: list) -> dict:
    """Mean contact (image fraction), up and forward per part name, and over all ("*")."""
    groups: dict[str, list] = {"*": rows}
    for row in rows:
        groups.setdefault(row[0], []).append(row)
    out = {}
    for name, rs in groups.items():
        up = np.mean([r[2] for r in rs], axis=0)
        fwd = np.mean([r[3] for r in rs], axis=0)
        rot = rotation_from_up_forward(up, fwd)
        out[name] = {"contact": np.mean([r[1] for r in rs], axis=0), "up": rot[:, 2], "forward": rot[:, 0]}
    return out


def train_noun_means(seed: int, scenes: int, map_fn=map) -> dict:
    """:func:`noun_means` over ``scenes`` training scenes of seed ``seed + 1`` (never a test scene)."""
    return noun_means(list(map_fn(_gt_summary, [(seed + 1, i) for i in range(scenes)])))


def run_episode(args: tuple[str, int, int, dict, tuple[str, ...]]) -> dict:
    """Every policy once on scene ``index`` of ``split`` (the same scene for all)."""
    from sc_mllm_ros.sim import PullWorld, sample_scene
    from sc_mllm_ros.sim.dataset import scene_seed

    split, index, seed, means, policies = args
    sseed = scene_seed(seed, split, index)
    out = {"policies": {}}
    with PullWorld(sample_scene(sseed, split)) as world:
        obs = world.reset()
        mask = world.ground_truth.part_mask
        h, w = mask.shape
        out["part_fraction"] = float(mask.mean())
        out["centre_on_part"] = bool(mask[h // 2, w // 2])
        hints = None
        if "expert_alone" in policies:
            hints, out["experts"] = expert_episode(world, obs)
        out["policies"] = policy_outcomes(world, obs, sseed, means, policies, hints)
    return out


def policy_outcomes(world, obs, sseed: int, means: dict, policies, hints=None) -> dict[str, dict]:
    """Each policy's one pull on ``world`` (reset before each): success, opened, unreachable.

    ``sseed`` seeds the random policies; ``hints``: the RGB-D experts' on ``obs`` for ``expert_alone``.
    """
    out = {}
    for k, name in enumerate(policies):
        ctx = Context(world, obs, means, np.random.default_rng([sseed, 31, k]), hints)
        try:
            res = world.execute(POLICIES[name](ctx), render_end=False)  # outcomes only
            out[name] = {"success": res.success, "opened": res.opened, "unreachable": res.unreachable}
        except ValueError:  # no depth where the policy looked: it cannot even form a pose
            out[name] = {"success": False, "opened": False, "unreachable": False}
    return out


def run_baselines(episodes: int, seed: int, workers: int = 2, mean_scenes: int = 60, policies=None) -> dict:
    """Run the policies on ``episodes`` scenes per split; the ``baselines.json`` document."""
    policies = tuple(policies or POLICIES)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        means = {}  # only noun_mean_pose needs them, and they cost a world per training scene
        if "noun_mean_pose" in policies:
            means = train_noun_means(seed, mean_scenes, pool.map)
        results = {}
        for name, split in SPLITS.items():
            if split is None:
                continue
            jobs = [(split, i, seed, means, policies) for i in range(episodes)]
            results[name] = pool.map(run_episode, jobs, chunksize=2)
    doc = {"episodes": episodes, "seed": seed, "rates": {}, "opened": {}, "unreachable": {}, "world": {}}
    for p in policies:
        rates, opened, unreach = {}, {}, {}
        for name in SPLITS:
            if name not in results:
                rates[name] = rates[f"{name}_ci"] = None
                continue
            eps = [e["policies"][p] for e in results[name]]
            k = sum(e["success"] for e in eps)
            rates[name] = k / len(eps)
            rates[f"{name}_ci"] = list(wilson(k, len(eps)))
            opened[name] = sum(e["opened"] for e in eps) / len(eps)
            unreach[name] = sum(e["unreachable"] for e in eps) / len(eps)
        doc["rates"][p], doc["opened"][p], doc["unreachable"][p] = rates, opened, unreach
        doc["rates"][f"{p}_ci"] = {n: rates.pop(f"{n}_ci") for n in SPLITS}
    if "expert_alone" in policies:
        doc["experts"] = {name: expert_summary([e["experts"] for e in eps]) for name, eps in results.items()}
    for name, eps in results.items():
        frac = [e["part_fraction"] for e in eps]
        doc["world"][name] = {
            "target_part_fraction_median": float(np.median(frac)),
            "target_part_fraction_p10_p90": [float(np.percentile(frac, 10)), float(np.percentile(frac, 90))],
            "image_centre_on_part": float(np.mean([e["centre_on_part"] for e in eps])),
        }
    doc["gates"] = check_gates(doc)
    return doc


def expert_summary(eps: list[dict]) -> dict:
    """Position hint in the affordance (with its interval) and rotation error; a refusal misses both."""
    k = sum(e["in_affordance"] for e in eps)
    errors = [e["rotation_error_deg"] for e in eps if e["rotation_error_deg"] is not None]
    return {
        "hint_in_affordance": k / len(eps),
        "hint_in_affordance_ci": list(wilson(k, len(eps))),
        "rotation_error_deg_median": float(np.median(errors)) if errors else None,
        "rotation_error_deg_p90": float(np.percentile(errors, 90)) if errors else None,
        "rotation_within_limit": sum(e <= ROTATION_LIMIT_DEG for e in errors) / len(eps),
        "refused": sum(e["refused"] is not None for e in eps),
    }


def check_gates(doc: dict) -> list[dict]:
    """Each gate on each measured split: passed, and by how much it misses when it does not."""
    out = []
    for policy, bound, kind in GATES:
        for split, rate in doc["rates"].get(policy, {}).items():
            if rate is None:
                continue
            ok = rate >= bound if kind == "min" else rate <= bound
            out.append(
                {
                    "policy": policy,
                    "split": split,
                    "rate": rate,
                    "bound": bound,
                    "kind": kind,
                    "passed": bool(ok),
                    "miss": 0.0 if ok else round(abs(rate - bound), 4),
                }
            )
    return out


def markdown(doc: dict) -> str:
    """The short ``baselines.md``."""
    splits = list(SPLITS)
    lines = [
        f"# Baselines ({doc['episodes']} episodes per split, seed {doc['seed']})",
        "",
        "| policy | " + " | ".join(splits) + " |",
        "| --- |" + " --- |" * len(splits),
    ]
    for p, rates in doc["rates"].items():
        if p.endswith("_ci"):
            continue
        cells = []
        for s in splits:
            r, ci = rates.get(s), doc["rates"][f"{p}_ci"].get(s)
            cells.append("n/a" if r is None else f"{100 * r:.1f} % [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    lines += ["", "Success is ManipLLM's rule; brackets: Wilson 95 % interval.", "", "## The world", ""]
    for s, w in doc["world"].items():
        p10, p90 = (100 * x for x in w["target_part_fraction_p10_p90"])
        lines.append(
            f"- {s}: target part median {100 * w['target_part_fraction_median']:.1f} % of the image "
            f"(p10-p90 {p10:.1f}-{p90:.1f} %), "
            f"image centre on the part in {100 * w['image_centre_on_part']:.0f} % of scenes"
        )
    if doc.get("experts"):
        lines += ["", "## The RGB-D experts behind expert_alone (labels score the hint, never make it)", ""]
        for s, e in doc["experts"].items():
            lo, hi = (100 * x for x in e["hint_in_affordance_ci"])
            med = e["rotation_error_deg_median"]
            lines.append(
                f"- {s}: position hint in the affordance region {100 * e['hint_in_affordance']:.1f} % "
                f"[{lo:.0f}, {hi:.0f}]; rotation error median "
                f"{'n/a' if med is None else f'{med:.1f} deg'}, within {ROTATION_LIMIT_DEG:.0f} deg in "
                f"{100 * e['rotation_within_limit']:.1f} %; refused {e['refused']}"
            )
    lines += ["", "## Gates", ""]
    if not doc["gates"]:
        lines.append("- none measured: no gated policy ran")
    for g in doc["gates"]:
        sign = ">=" if g["kind"] == "min" else "<="
        verdict = "pass" if g["passed"] else f"MISSED by {100 * g['miss']:.1f} points"
        lines.append(
            f"- {g['policy']} {sign} {g['bound']:.2f} on {g['split']}: {100 * g['rate']:.1f} % ({verdict})"
        )
    return "\n".join(lines) + "\n"
