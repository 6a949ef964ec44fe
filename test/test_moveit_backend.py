"""The MoveIt arm against a stand-in ``moveit.planning`` with moveit_py's real API names.

The names and signatures follow moveit_py (MoveIt 2.10 / 2.12): ``MoveItPy(node_name=)``,
``get_planning_component``, ``set_start_state_to_current_state``, ``set_goal_state(pose_stamped_msg=,
pose_link=)``, ``plan()`` (a result that is falsy without a plan, with ``.trajectory``), ``execute(trajectory,
controllers=[])`` returning an ``ExecutionStatus`` (``.status``, falsy on failure),
``get_planning_scene_monitor().read_only()`` and the trajectory execution manager's ``stop_execution``, named
``get_trajactory_execution_manager`` on 2.10 and ``get_trajectory_execution_manager`` on 2.12.
"""

from __future__ import annotations

from contextlib import contextmanager
import sys
import threading
import time
import types

import numpy as np
import pytest

pytest.importorskip("geometry_msgs", reason="geometry_msgs is not installed: run tools/setup.sh")
pytest.importorskip("sc_mllm_msgs.msg", reason="sc_mllm_msgs is not built: run tools/setup.sh (colcon build)")

from sc_mllm_ros.geometry import Pose  # noqa: E402
from sc_mllm_ros.nodes.arm import Status  # noqa: E402
from sc_mllm_ros.nodes.backends import MoveItArm  # noqa: E402


class ExecutionStatus:
    def __init__(self, status: str) -> None:
        self.status = status

    def __bool__(self) -> bool:
        return self.status == "SUCCEEDED"


class PlanResult:
    def __init__(self, trajectory) -> None:
        self.trajectory = trajectory

    def __bool__(self) -> bool:
        return self.trajectory is not None


class Cell:
    """What the stand-in's robot does; the tests script it."""

    def __init__(self) -> None:
        self.goals: list = []  # (pose_stamped_msg, pose_link) per set_goal_state
        self.executed: list = []
        self.finished: list[float] = []  # wall time at which each execution returned
        self.unreachable: set[int] = set()  # indices of goals without a plan
        self.execution_status = "SUCCEEDED"
        self.planner_error: Exception | None = None  # plan() raises it
        self.block_execution = False  # execute() waits for stop_execution()
        self.executing = threading.Event()
        self.stopped = threading.Event()


class PlanningComponent:
    def __init__(self, cell: Cell) -> None:
        self.cell = cell

    def set_start_state_to_current_state(self) -> None:
        pass

    def set_goal_state(
        self,
        configuration_name=None,
        robot_state=None,
        pose_stamped_msg=None,
        pose_link=None,
        motion_plan_constraints=None,
    ) -> None:
        self.cell.goals.append((pose_stamped_msg, pose_link))

    def plan(self, single_plan_parameters=None, multi_plan_parameters=None) -> PlanResult:
        if self.cell.planner_error is not None:
            raise self.cell.planner_error
        index = len(self.cell.goals) - 1
        return PlanResult(None if index in self.cell.unreachable else f"trajectory-{index}")


class TrajectoryExecutionManager:
    def __init__(self, cell: Cell) -> None:
        self.cell = cell

    def stop_execution(self, auto_clear: bool = True) -> None:
        self.cell.stopped.set()


class MoveItPy:
    cell = Cell()  # replaced per test

    def __init__(self, node_name: str = "moveit_py", launch_params_filepaths=None, config_dict=None) -> None:
        self.node_name = node_name

    def get_planning_component(self, planning_component_name: str) -> PlanningComponent:
        return PlanningComponent(self.cell)

    def execute(self, robot_trajectory, controllers) -> ExecutionStatus:
        self.cell.executed.append(robot_trajectory)
        self.cell.executing.set()
        if self.cell.block_execution:
            self.cell.stopped.wait(30)
            status = ExecutionStatus("PREEMPTED")
        else:
            status = ExecutionStatus(self.cell.execution_status)
        self.cell.finished.append(time.time())
        return status

    @contextmanager
    def _read_only(self):
        from geometry_msgs.msg import Pose as PoseMsg

        goal = self.cell.goals[-1][0].pose if self.cell.goals else PoseMsg()
        state = types.SimpleNamespace(get_pose=lambda link: goal)
        yield types.SimpleNamespace(current_state=state)

    def get_planning_scene_monitor(self):
        return types.SimpleNamespace(read_only=self._read_only)

    def shutdown(self) -> None:
        pass


class MoveItPy212(MoveItPy):
    def get_trajectory_execution_manager(self) -> TrajectoryExecutionManager:
        return TrajectoryExecutionManager(self.cell)


class MoveItPy210(MoveItPy):
    def get_trajactory_execution_manager(self) -> TrajectoryExecutionManager:
        return TrajectoryExecutionManager(self.cell)


def install(monkeypatch, moveit_py: type = MoveItPy212) -> Cell:
    """Put a stand-in ``moveit.planning`` with ``moveit_py`` as its MoveItPy on the import path."""
    cell = Cell()
    planning = types.ModuleType("moveit.planning")
    planning.MoveItPy = type(moveit_py.__name__, (moveit_py,), {"cell": cell})
    package = types.ModuleType("moveit")
    package.planning = planning
    monkeypatch.setitem(sys.modules, "moveit", package)
    monkeypatch.setitem(sys.modules, "moveit.planning", planning)
    return cell


# A goal straight down at 0.4 m height in front of the robot.
DOWN = np.diag([1.0, -1.0, -1.0])
GOAL = Pose(np.array([0.5, 0.0, 0.4]), DOWN, "fr3_link0")


def run(arm: MoveItArm, goal: Pose = GOAL):
    phases: list[str] = []
    return arm.execute(goal, lambda name, progress: phases.append(name)), phases


def test_a_planned_and_executed_primitive_completes_through_its_waypoints(monkeypatch) -> None:
    cell = install(monkeypatch)
    outcome, phases = run(MoveItArm(ee_link="tcp", base_frame="fr3_link0"))
    assert outcome.status == Status.COMPLETED and phases == ["pre_pose", "approach", "pull", "release"]
    assert len(cell.executed) == 3 and all(link == "tcp" for _, link in cell.goals)
    heights = [g.pose.position.z for g, _ in cell.goals]
    assert heights == pytest.approx([0.55, 0.4, 0.6])  # pre-pose and pull end back along the approach axis
    assert all(g.header.frame_id == "fr3_link0" for g, _ in cell.goals)
    assert outcome.end_rgb is None  # the node takes the camera's frame
    assert outcome.ee_pose.frame_id == "fr3_link0" and outcome.ee_pose.position[2] == pytest.approx(0.6)


def test_a_waypoint_without_a_plan_is_unreachable_and_nothing_more_runs(monkeypatch) -> None:
    cell = install(monkeypatch)
    cell.unreachable = {1}
    outcome, phases = run(MoveItArm())
    assert outcome.status == Status.UNREACHABLE and "no plan for approach" in outcome.message
    assert len(cell.executed) == 1 and phases == ["pre_pose", "approach"]


def test_a_failed_execution_is_a_failure_not_a_success(monkeypatch) -> None:
    cell = install(monkeypatch)
    cell.execution_status = "ABORTED"
    outcome, _ = run(MoveItArm())
    assert outcome.status == Status.FAILED and "pre_pose failed: ABORTED" in outcome.message
    assert len(cell.executed) == 1


@pytest.mark.parametrize("moveit_py", [MoveItPy210, MoveItPy212], ids=["moveit-2.10", "moveit-2.12"])
def test_stop_stops_the_trajectory_execution_manager_and_the_primitive_is_canceled(
    monkeypatch, moveit_py: type
) -> None:
    cell = install(monkeypatch, moveit_py)
    cell.block_execution = True
    arm = MoveItArm()
    result: list = []
    worker = threading.Thread(target=lambda: result.append(run(arm)))
    worker.start()
    assert cell.executing.wait(10)
    arm.stop()
    worker.join(10)
    assert cell.stopped.is_set()
    outcome, _ = result[0]
    assert outcome.status == Status.CANCELED and len(cell.executed) == 1
