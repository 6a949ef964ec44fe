"""The README's ROS 2 commands, run as a user types them: ros2 launch, ros2 topic pub/echo, ros2 service call.

The commands are read from the README's "Inside a full ROS 2 Jazzy workspace" block, so the test and the
README cannot drift apart. Each runs as a subprocess of the project environment with a time limit; the launch
runs in its own process group, whatever is left of it at the end is killed and reported, and the ros2 daemon
of this domain is stopped. Needs the ros2 CLI and launch (a full ROS 2 install, or SC_MLLM_ROS2_VENDOR for
tools/setup.sh); without them the module skips, saying so.
"""

from __future__ import annotations

from collections.abc import Iterator
import importlib.util
import os
from pathlib import Path
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest

WHY = "is not installed (a full ROS 2 install has it; here set SC_MLLM_ROS2_VENDOR for tools/setup.sh)"
pytest.importorskip("ros2cli", reason=f"the ros2 CLI {WHY}")
pytest.importorskip("launch_ros", reason=f"launch_ros {WHY}")

ROOT = Path(__file__).resolve().parents[1]
ROS2 = shutil.which("ros2")
STARTUP_S = 300.0  # three processes loading torch (two the model) on two shared cores
pytestmark = pytest.mark.skipif(ROS2 is None, reason="no `ros2` on PATH (run through tools/env.sh)")


def graph_processes() -> dict[str, set[str]]:
    """``executable -> node names`` of what the launch file's process table starts for sim:=mujoco."""
    spec = importlib.util.spec_from_file_location("bringup", ROOT / "launch" / "franka_bringup.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    arm_executable, arm_name = module.ARM["mujoco"][:2]
    return {arm_executable: {arm_name}, **{exe: set(nodes) for exe, _, nodes in module.GRAPH}}


PROCESSES = graph_processes()


def readme_commands() -> dict[str, list[str]]:
    """The ``ros2 launch``, ``topic pub``, ``topic echo``, ``service call`` lines of the README's block."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Inside a full ROS 2 Jazzy workspace", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    commands: dict[str, list[str]] = {}
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["ros2"]:
            commands.setdefault(" ".join(words[:3] if words[1] != "launch" else words[:2]), words)
    return commands


def process_group(pgid: int) -> list[int]:
    """Live processes of a process group (the launch and every node it started)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def run(words: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(words, capture_output=True, text=True, timeout=timeout)


class Launch:
    """``ros2 launch ...`` in its own process group, its output collected in a file."""

    def __init__(self, words: list[str], log: Path) -> None:
        self.log = log
        self._out = log.open("w")
        # run where the log is, as a user runs it from their own directory: data_dir (relative) lands there
        self.proc = subprocess.Popen(
            words,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
            start_new_session=True,
            text=True,
        )

    def output(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text()

    def leftovers(self) -> list[int]:
        return process_group(self.proc.pid)

    def kill_leftovers(self) -> list[int]:
        left = self.leftovers()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)
        self._out.close()
        return left


def stop_daemon() -> None:
    subprocess.run([ROS2, "daemon", "stop"], capture_output=True, timeout=60)


def wait_until_up(launch: Launch) -> None:
    import rclpy

    rclpy.init()
    probe = rclpy.create_node("test_ros_cli_probe")
    try:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline and launch.proc.poll() is None:
            rclpy.spin_once(probe, timeout_sec=0.5)
            services = {name for name, _ in probe.get_service_names_and_types()}
            nodes = set(probe.get_node_names())
            if set().union(*PROCESSES.values()) <= nodes and "/request_correction" in services:
                return
        pytest.fail(f"the graph did not come up in {STARTUP_S:.0f} s:\n{launch.output()[-4000:]}")
    finally:
        probe.destroy_node()
        rclpy.shutdown()


@pytest.fixture(scope="module")
def graph(tmp_path_factory) -> Iterator[Launch]:
    """The README's exact ``ros2 launch`` line, running until every node and service is up."""
    launch = Launch(readme_commands()["ros2 launch"], tmp_path_factory.mktemp("launch") / "launch.log")
    try:
        wait_until_up(launch)
        yield launch
    finally:  # also when the graph never came up
        if launch.proc.poll() is None:
            launch.proc.send_signal(signal.SIGINT)
            try:
                launch.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        left = launch.kill_leftovers()
        stop_daemon()
    assert not left, f"processes of the launch still ran after it ended: {left}"


def test_readme_launch_starts_the_graph_and_says_what_it_leaves_out(graph: Launch) -> None:
    out = graph.output()
    for executable in PROCESSES:
        assert re.search(rf"\[INFO\] \[{executable}-\d+\]: process started", out), executable
    from ament_index_python.packages import get_package_prefix, PackageNotFoundError

    try:
        get_package_prefix("rviz2")
    except PackageNotFoundError:
        assert "rviz2 is not installed: running without rviz" in out
    else:
        assert re.search(r"\[INFO\] \[rviz2-\d+\]: process started", out)


def test_readme_topic_pub_gives_a_goal_pose_on_topic_echo(graph: Launch) -> None:
    commands = readme_commands()
    echo = subprocess.Popen(
        commands["ros2 topic echo"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        time.sleep(5)  # the echo's subscription is discovered before the task goes out
        pub = run(commands["ros2 topic pub"], timeout=120)
        assert pub.returncode == 0, pub.stdout + pub.stderr
        out, _ = echo.communicate(timeout=180)
    finally:
        echo.kill()
    assert re.search(r"pose:\s+position:\s+x: [-0-9.e]+", out), out


def test_readme_service_call_corrects_and_executes(graph: Launch) -> None:
    call = run(readme_commands()["ros2 service call"], timeout=300)
    assert call.returncode == 0, call.stdout + call.stderr
    assert "response:" in call.stdout, call.stdout
    assert "accepted=True" in call.stdout, call.stdout
    assert "executed=True" in call.stdout, call.stdout


def test_failed_launch_starts_nothing_and_leaves_nothing(tmp_path: Path) -> None:
    """sim:=none without franka_ros2 here: one clear line, no node started, no process left."""
    from ament_index_python.packages import get_package_prefix, PackageNotFoundError

    try:
        get_package_prefix("franka_fr3_moveit_config")
        pytest.skip("franka_fr3_moveit_config is installed here: sim:=none would start a real bringup")
    except PackageNotFoundError:
        pass
    words = [ROS2, "launch", "sc_mllm_ros", "franka_bringup.launch.py", "sim:=none"]
    launch = Launch(words, tmp_path / "launch.log")
    try:
        launch.proc.wait(timeout=120)
    finally:
        left = launch.kill_leftovers()
    out = launch.output()
    assert launch.proc.returncode != 0
    assert "sim:=none needs ROS packages that are not installed: franka_description" in out, out
    assert "process started" not in out, out
    assert not left, f"leftover processes {left}"


def test_ctrl_c_under_load_ends_every_node_cleanly_within_5_s(graph: Launch) -> None:
    """SIGINT to the launch with every core busy: each node exits 0 before launch escalates (5 s)."""
    burn = [sys.executable, "-c", "while True: pass"]
    burners = [subprocess.Popen(burn) for _ in range(os.cpu_count() or 2)]
    try:
        graph.proc.send_signal(signal.SIGINT)
        graph.proc.wait(timeout=60)
    finally:
        for burner in burners:
            burner.kill()
    out = graph.output()
    clean = set(re.findall(r"\[INFO\] \[(\w+)-\d+\]: process has finished cleanly", out))
    died = re.findall(r"\[ERROR\] \[(\w+)-\d+\]: process has died \[pid \d+, exit code (-?\d+)", out)
    escalated = re.findall(r"process\[(\w+)-\d+\] failed to terminate .* escalating to 'SIGTERM'", out)
    assert not escalated and not died, f"escalated to SIGTERM: {escalated}; died: {died}"
    assert "RCLError" not in out
    assert set(PROCESSES) <= clean, out[-3000:]
