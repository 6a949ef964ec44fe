"""``sc-mllm bench system`` end to end, once per row: every measurement and ratio line it promises."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytest.importorskip("rclpy", reason="rclpy is not installed: run tools/setup.sh")

pytestmark = pytest.mark.ros


def test_bench_system_prints_every_row_and_ratio_on_an_accepted_scene() -> None:
    # Its own process, as a user runs it: a graph composed in the test process would be in every later
    # fork (ament_flake8's worker pool segfaulted collecting it).
    cmd = [sys.executable, "-m", "sc_mllm_ros.cli", "bench", "system", "--repeats", "1"]
    cmd += ["--learner-batch", "2"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    assert re.search(r"train scene \d+\)", out), out
    for row in (
        "model.predict_pose (raw)",
        "model.correct (raw)",
        "experts' hints + correction (raw, no ROS)",
        "learner update (2 samples)",
        "policy: task in -> goal out (idle)",
        "/request_correction (automatic experts, no execution)",
        "policy: task in -> goal out (learner training)",
    ):
        assert re.search(re.escape(row) + r"\s+\d+\.\d\s+\d+\.\d", out), row
    ratios = (
        "graph / raw model call",
        "service / raw model call",
        "service / same calls, no ROS",
        "learning / idle",
    )
    for ratio in ratios:
        assert re.search(re.escape(ratio) + r"\)?:\s+\d+\.\d\dx", out), ratio
    goals = re.findall(r"^(.+?)\s+\S+ (x|s)\s+goal <= \S+ (?:x|s): (met|MISSED by .+)$", out, re.MULTILINE)
    assert len(goals) == 4, out
