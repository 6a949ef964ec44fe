"""``sc-mllm doctor``: which parts of the stack are present, one verdict per line."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
import importlib
import importlib.util
import os
import subprocess
import sys

REQUIRED = "required"
OPTIONAL = "optional (full ROS 2 Jazzy install)"


@dataclass
class Check:
    name: str
    kind: str
    probe: Callable[[], str]  # returns a detail string, raises when the part is missing or broken


def _version(module: str) -> str:
    mod = importlib.import_module(module)
    return f"{module} {getattr(mod, '__version__', '')}".strip()


def _rclpy() -> str:
    import rclpy
    from rclpy.utilities import get_rmw_implementation_identifier

    rclpy.init()
    try:
        domain = os.environ.get("ROS_DOMAIN_ID", 0)
        return f"rclpy with {get_rmw_implementation_identifier()}, ROS_DOMAIN_ID={domain}"
    finally:
        rclpy.shutdown()


def _interfaces() -> str:
    from sc_mllm_msgs.action import ExecutePose  # noqa: F401
    from sc_mllm_msgs.msg import FailureReport, PosePrediction  # noqa: F401
    from sc_mllm_msgs.srv import RequestCorrection  # noqa: F401

    return "sc_mllm_msgs: PosePrediction, FailureReport, RequestCorrection, ExecutePose"


def _torch() -> str:
    import torch

    device = "CUDA " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
    return f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads"


def _precision() -> str:
    import torch

    from sc_mllm_ros.model import precision

    return precision.describe("cuda" if torch.cuda.is_available() else "cpu")


def _ml_stack() -> str:
    return ", ".join(_version(m) for m in ("transformers", "peft", "open_clip", "tokenizers", "safetensors"))


def _mujoco() -> str:
    backend = os.environ.get("MUJOCO_GL", "egl")
    out = subprocess.run(
        # A child process: a broken GL driver can abort the interpreter.
        [sys.executable, "-m", "sc_mllm_ros.sim.probe"],
        env={**os.environ, "MUJOCO_GL": backend},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        detail = out.stderr.strip()[-300:]
        raise RuntimeError(f"headless render failed with MUJOCO_GL={backend}: {detail}")
    return f"mujoco {out.stdout.strip()}, headless rendering with MUJOCO_GL={backend}"


def _panda_assets() -> str:
    spec = importlib.util.find_spec("robosuite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("robosuite's files (the Panda model) are not installed; run tools/setup.sh")
    root = spec.submodule_search_locations[0]
    path = os.path.join(root, "models", "assets", "robots", "panda", "robot.xml")
    if not os.path.exists(path):
        raise RuntimeError(f"{path} is missing")
    return f"Franka Panda model at {path}"


def _module(name: str, what: str) -> Callable[[], str]:
    def probe() -> str:
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"{what} is not importable (module {name})")
        return f"{what} importable"

    return probe


CHECKS = [
    Check("python", REQUIRED, lambda: sys.version.split()[0] + f" at {sys.executable}"),
    Check("rclpy + RMW", REQUIRED, _rclpy),
    Check("interfaces", REQUIRED, _interfaces),
    Check("torch", REQUIRED, _torch),
    Check("precision", REQUIRED, _precision),
    Check("ML libraries", REQUIRED, _ml_stack),
    Check("MuJoCo rendering", REQUIRED, _mujoco),
    Check("Panda model", REQUIRED, _panda_assets),
    Check("launch", OPTIONAL, _module("launch_ros", "launch / launch_ros")),
    Check("launch_testing", OPTIONAL, _module("launch_testing", "launch_testing")),
    Check("moveit_py", OPTIONAL, _module("moveit", "moveit_py (MoveItPy)")),
    Check("cv_bridge", OPTIONAL, _module("cv_bridge", "cv_bridge")),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strict", action="store_true", help="fail when an optional part is missing too")


def run(args: argparse.Namespace) -> int:
    failed = 0
    width = max(len(c.name) for c in CHECKS)
    for check in CHECKS:
        try:
            verdict, detail = "ok", check.probe()
        except Exception as exc:  # noqa: BLE001 - every failure is a verdict, not a crash
            required = check.kind == REQUIRED or args.strict
            verdict = "FAIL" if required else "absent"
            detail = f"{type(exc).__name__}: {exc}"
            failed += required
        print(f"{verdict:>6}  {check.name:<{width}}  {detail}   [{check.kind}]")
    print(f"doctor: {failed} required part(s) missing" if failed else "doctor: all required parts present")
    return 1 if failed else 0
