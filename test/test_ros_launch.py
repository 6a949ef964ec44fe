"""launch_testing test of launch/franka_bringup.launch.py on the embedded arm (sim:=mujoco, no rviz).

launch_testing comes with a full ROS 2 Jazzy install; here tools/setup.sh installs it from pinned sources when
SC_MLLM_ROS2_VENDOR names them, and without it the module skips with that reason. Run it with
``launch_test test/test_ros_launch.py``, ``colcon test`` or pytest. How the nodes end (exit codes on Ctrl-C)
is test_ros_cli.py's shutdown test.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
import tempfile
import time
import unittest

import pytest

pytest.importorskip(
    "launch_testing",
    reason="launch_testing is not installed: a full ROS 2 install has it; here SC_MLLM_ROS2_VENDOR gives it",
)
from launch.actions import IncludeLaunchDescription  # noqa: E402, I100
from launch.launch_description import LaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
import launch_testing  # noqa: E402
import launch_testing.actions  # noqa: E402
import rclpy  # noqa: E402

LAUNCH_FILE = Path(__file__).resolve().parents[1] / "launch" / "franka_bringup.launch.py"
STARTUP_S = 300.0  # three processes loading torch (two the model) on two shared cores


def graph_nodes() -> set[str]:
    """The node names the launch file's process table starts for sim:=mujoco."""
    spec = importlib.util.spec_from_file_location("franka_bringup_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {module.ARM["mujoco"][1]}.union(*(nodes for _, _, nodes in module.GRAPH))


@pytest.mark.launch_test
def generate_test_description() -> LaunchDescription:
    bringup = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
        # the stores and adapters of this run go to a scratch directory, not the working directory
        launch_arguments={
            "sim": "mujoco",
            "use_rviz": "false",
            "data_dir": tempfile.mkdtemp(prefix="sc_mllm_launch_test_"),
        }.items(),
    )
    return LaunchDescription([bringup, launch_testing.actions.ReadyToTest()])


class TestTheGraphComesUp(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        rclpy.init()
        cls.node = rclpy.create_node("test_bringup_probe")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.node.destroy_node()
        rclpy.shutdown()

    def _wait(self, predicate, timeout: float = STARTUP_S) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.2)
            if predicate():
                return True
        return False

    def test_nodes_services_and_camera(self) -> None:
        expected = graph_nodes()
        self.assertTrue(
            self._wait(lambda: expected <= set(self.node.get_node_names())), self.node.get_node_names()
        )
        services = lambda: {name for name, _ in self.node.get_service_names_and_types()}  # noqa: E731
        self.assertTrue(self._wait(lambda: {"/request_correction", "/sc_mllm/pause"} <= services()))
        topics = lambda: {name for name, _ in self.node.get_topic_names_and_types()}  # noqa: E731
        self.assertTrue(
            self._wait(lambda: "/camera/color/image_raw" in topics() and "/sc_mllm/goal_pose" in topics())
        )
