"""Every branch of launch/franka_bringup.launch.py, evaluated against the real franka_ros2 and MoveIt files.

The vendored ``franka-prefix.sh`` lays out the real franka_fr3_moveit_config, franka_bringup, franka_gripper,
franka_gazebo_bringup and franka_description files with moveit_configs_utils, launch_param_builder and xacro
(``tools/setup.sh`` puts it at build/franka-prefix). Packages that are only binaries (move_group,
ros2_control, robot_state_publisher, ros_gz, rviz2, tf2_ros's static_transform_publisher) are stand-ins: an
ament index entry and an empty share directory. The walker below does what the launch service does, short of
starting processes: it declares arguments, includes files (which must exist), passes arguments (which the
included file must declare or read), runs OpaqueFunctions, and evaluates every parameter of this package's
nodes and of the nodes its own launch files start.
"""

from __future__ import annotations

import copy
import importlib.util
import os
from pathlib import Path
import shutil

import pytest

pytest.importorskip(
    "launch_ros", reason="launch_ros is not installed: set SC_MLLM_ROS2_VENDOR for tools/setup.sh"
)
from ament_index_python.packages import get_package_share_directory  # noqa: E402, I100
from launch.actions import (  # noqa: E402
    AppendEnvironmentVariable,
    DeclareLaunchArgument,
    ExecuteProcess,
    GroupAction,
    IncludeLaunchDescription,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
)
from launch.launch_context import LaunchContext  # noqa: E402
from launch.utilities import normalize_to_list_of_substitutions, perform_substitutions  # noqa: E402
from launch_ros.actions import Node  # noqa: E402
import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PREFIX = Path(os.environ.get("SC_MLLM_FRANKA_PREFIX", ROOT / "build" / "franka-prefix"))
# Binary-only packages: present in a full install, absent here.
STAND_INS = (
    "moveit_ros_move_group",
    "controller_manager",
    "robot_state_publisher",
    "joint_state_publisher",
    "ros_gz_sim",
    "ros_gz_bridge",
    "tf2_ros",
    "rviz2",
)
OURS = ("sc_mllm_ros",)

pytestmark = pytest.mark.skipif(
    not (PREFIX / ".done").is_file(),
    reason=f"no franka prefix at {PREFIX}: tools/setup.sh lays it out when SC_MLLM_ROS2_VENDOR names the "
    "vendored ROS 2 parts (franka-prefix.sh)",
)


def load_launch_module(name: str):
    spec = importlib.util.spec_from_file_location(name.replace(".", "_"), ROOT / "launch" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nest(tree: dict, path: list[str], value) -> None:
    """Set ``a.b.c`` (launch_ros flattens nested parameters) as tree[a][b][c]."""
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


class Walk:
    """What evaluating one launch description found: nodes, includes, problems."""

    def __init__(self, context: LaunchContext) -> None:
        self.context = context
        self.nodes: list[tuple[str, str, str, dict]] = []  # (file, package, executable, parameters)
        self.includes: list[str] = []
        self.unverifiable: list[str] = []  # included files of stand-in packages
        self.problems: list[str] = []
        self.logged: list[str] = []

    def run(self, entities, source: Path) -> None:
        for entity in entities:
            self.visit(entity, source)

    def visit(self, entity, source: Path) -> None:  # noqa: C901 - one branch per action kind
        ctx = self.context
        ours = source.parent.parent.name in OURS or source.is_relative_to(ROOT / "launch")
        if isinstance(entity, DeclareLaunchArgument):
            entity.execute(ctx)
        elif isinstance(entity, IncludeLaunchDescription):
            self.include(entity, source, ours)
        elif isinstance(entity, OpaqueFunction):
            self.run(entity.execute(ctx) or [], source)
        elif isinstance(entity, GroupAction):
            # a scoped group: its launch configurations and SetParameter's global parameters stay inside it
            saved = copy.deepcopy(dict(ctx.launch_configurations))
            self.run(entity.get_sub_entities(), source)
            ctx.launch_configurations.clear()
            ctx.launch_configurations.update(saved)
        elif isinstance(entity, RegisterEventHandler):
            actions = entity.event_handler._OnActionEventBase__actions_on_event  # the on_exit actions
            self.run(actions, source)
        elif isinstance(entity, Node):
            self.node(entity, source, ours)
        elif isinstance(entity, ExecuteProcess):
            pass  # franka's `ros2 run controller_manager spawner` processes: nothing to evaluate
        elif isinstance(entity, (AppendEnvironmentVariable, SetEnvironmentVariable)):
            pass  # would change this process's environment
        elif type(entity).__name__ == "LogInfo":
            self.logged.append(perform_substitutions(ctx, normalize_to_list_of_substitutions(entity.msg)))
        elif hasattr(entity, "execute"):
            entity.execute(ctx)  # SetParameter, SetEnvironmentVariable, AppendEnvironmentVariable, ...
        elif hasattr(entity, "entities"):
            self.run(entity.entities, source)  # a LaunchDescription
        else:
            self.problems.append(f"{source.name}: cannot evaluate {entity!r}")

    def include(self, entity: IncludeLaunchDescription, source: Path, ours: bool) -> None:
        ctx = self.context
        location = entity.launch_description_source._LaunchDescriptionSource__location  # not expanded yet
        path = Path(perform_substitutions(ctx, location))
        self.includes.append(str(path))
        arguments = {
            perform_substitutions(ctx, normalize_to_list_of_substitutions(k)): perform_substitutions(
                ctx, normalize_to_list_of_substitutions(v)
            )
            for k, v in entity.launch_arguments
        }
        if not path.is_file():
            package = path.parent.parent.name
            if package in STAND_INS:
                self.unverifiable.append(f"{package}/{path.parent.name}/{path.name} {sorted(arguments)}")
            else:
                self.problems.append(f"{source.name} includes {path}, which does not exist")
            return
        description = entity.launch_description_source.get_launch_description(ctx)
        declared = {a.name for a in description.get_launch_arguments()}
        text = path.read_text()
        for name in arguments:
            if ours and name not in declared and f"'{name}'" not in text and f'"{name}"' not in text:
                self.problems.append(
                    f"{source.name} passes {name}:= to {path.name}, which neither declares nor reads it"
                )
        missing = [
            a.name
            for a in description.get_launch_arguments()
            if a.default_value is None and a.name not in arguments and a.name not in ctx.launch_configurations
        ]
        if missing:
            self.problems.append(
                f"{source.name} includes {path.name} without its required arguments {missing}"
            )
        ctx.launch_configurations.update(arguments)
        self.run(description.entities, path)

    def node(self, entity: Node, source: Path, ours: bool) -> None:
        package, executable = entity.node_package, entity.node_executable
        parameters: dict = {}
        for item in self.context.launch_configurations.get("global_params", []):  # SetParameter, in scope
            if isinstance(item, tuple):
                nest(parameters, item[0].split("."), yaml.safe_load(str(item[1])))
        if ours:  # franka's own nodes need franka_hardware's xacro, which is not vendored
            entity._perform_substitutions(self.context)
            for argument, is_file in entity._Node__expanded_parameter_arguments or []:
                if is_file:
                    # launch_ros writes lists as !!python/tuple, which rcl's parser reads as sequences
                    for section in (yaml.load(Path(argument).read_text(), yaml.FullLoader) or {}).values():
                        for name, value in section.get("ros__parameters", {}).items():
                            nest(parameters, name.split("."), value)
        self.nodes.append((source.name, package, executable, parameters))

    def executables(self) -> set[tuple[str, str]]:
        return {(package, executable) for _, package, executable, _ in self.nodes}

    def node_parameters(self, executable: str) -> dict:
        found = [params for _, _, exe, params in self.nodes if exe == executable]
        assert len(found) == 1, f"{executable} is started {len(found)} times"
        return found[0]


@pytest.fixture()
def franka_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The real franka files and moveit_configs_utils on the paths, stand-ins for binary-only packages."""

    def with_packages(stand_ins=STAND_INS) -> None:
        stand_in = tmp_path / "stand-in"
        shutil.rmtree(stand_in, ignore_errors=True)
        for package in stand_ins:
            (stand_in / "share" / package).mkdir(parents=True)
            index = stand_in / "share" / "ament_index" / "resource_index" / "packages"
            index.mkdir(parents=True, exist_ok=True)
            (index / package).touch()
        paths = os.environ.get("AMENT_PREFIX_PATH", "")
        monkeypatch.setenv("AMENT_PREFIX_PATH", os.pathsep.join([str(PREFIX), str(stand_in), paths]))

    site = next(PREFIX.glob("lib/python3*/site-packages"))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PATH", f"{PREFIX / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with_packages()
    return with_packages


def evaluate(arguments: dict[str, str], name: str = "franka_bringup.launch.py") -> Walk:
    module = load_launch_module(name)
    context = LaunchContext()
    context.launch_configurations.update(arguments)
    walk = Walk(context)
    walk.run(module.generate_launch_description().entities, ROOT / "launch" / name)
    return walk


def assert_moveit_parameters(parameters: dict) -> None:
    """What moveit_py needs to plan and execute for the FR3, as the node will receive it."""
    urdf, srdf = parameters["robot_description"], parameters["robot_description_semantic"]
    assert "<robot" in urdf and 'name="fr3_joint7"' in urdf and "fr3_hand_tcp" in urdf
    assert '<group name="fr3_arm"' in srdf
    assert parameters["robot_description_kinematics"]["fr3_arm"]["kinematics_solver"]
    limits = parameters["robot_description_planning"]["joint_limits"]
    assert {f"fr3_joint{i}" for i in range(1, 8)} <= set(limits)
    pipelines = parameters["planning_pipelines"]
    assert set(pipelines["pipeline_names"]) <= {"ompl"} and parameters["ompl"]["planning_plugins"]
    assert parameters["ompl"]["planner_configs"], "OMPL planner configurations"
    controllers = parameters["moveit_simple_controller_manager"]
    assert "fr3_arm_controller" in controllers["controller_names"]
    assert parameters["moveit_controller_manager"].endswith("MoveItSimpleControllerManager")
    assert parameters["planning_scene_monitor_options"]["joint_state_topic"] == "/joint_states"
    assert parameters["plan_request_params"]["planning_pipeline"] in pipelines["pipeline_names"]


def test_mujoco_branch_starts_the_graph_and_no_franka_package(franka_env) -> None:
    walk = evaluate({"sim": "mujoco", "use_rviz": "false"})
    assert not walk.problems and not walk.includes
    module = load_launch_module("franka_bringup.launch.py")
    expected = {module.ARM["mujoco"][0]} | {exe for exe, _, _ in module.GRAPH}
    assert {exe for _, exe in walk.executables()} == expected
    arm = walk.node_parameters(module.ARM["mujoco"][0])
    assert arm["use_sim_time"] is False
    assert "robot_description" not in arm


@pytest.mark.parametrize("fake", ["false", "true"])
def test_real_arm_branch_builds_moveit_parameters_like_franka(franka_env, fake: str) -> None:
    walk = evaluate({"sim": "none", "use_fake_hardware": fake, "use_rviz": "false", "robot_ip": "10.0.0.2"})
    assert not walk.problems, walk.problems
    moveit_launch = str(
        Path(get_package_share_directory("franka_fr3_moveit_config")) / "launch" / "moveit.launch.py"
    )
    assert moveit_launch in walk.includes
    # franka's file ran with our arguments: its nodes are there, and what it was passed is what we asked for.
    executables = walk.executables()
    assert ("moveit_ros_move_group", "move_group") in executables
    assert ("controller_manager", "ros2_control_node") in executables
    assert walk.context.launch_configurations["use_fake_hardware"] == fake
    arm = walk.node_parameters("executor_node")
    assert_moveit_parameters(arm)
    assert 'robot_ip">10.0.0.2' not in arm["robot_description"]  # no ros2_control block: moveit_py only plans


def test_every_package_a_branch_starts_is_checked_before_anything_starts(franka_env) -> None:
    module = load_launch_module("franka_bringup.launch.py")
    for sim, extra in (
        ("none", {"use_fake_hardware": "true"}),
        ("gazebo", {"gz_gui": "false"}),
        ("mujoco", {}),
    ):
        walk = evaluate({"sim": sim, "use_rviz": "false", **extra})
        started = {package for package, _ in walk.executables()} - {"sc_mllm_ros"}
        assert started <= set(module.NEEDS[sim]), (
            f"sim:={sim} starts {started - set(module.NEEDS[sim])} unchecked"
        )


def test_a_missing_package_stops_the_launch_before_any_node(franka_env) -> None:
    franka_env([p for p in STAND_INS if p != "moveit_ros_move_group"])
    with pytest.raises(RuntimeError, match="not installed: moveit_ros_move_group"):
        evaluate({"sim": "none", "use_rviz": "false"})


def test_without_rviz2_the_default_runs_without_it_and_says_so(franka_env) -> None:
    franka_env([p for p in STAND_INS if p != "rviz2"])
    walk = evaluate({"sim": "mujoco"})  # use_rviz defaults to true
    assert ("rviz2", "rviz2") not in walk.executables()
    assert any("rviz2 is not installed" in line for line in walk.logged)


def test_with_rviz2_the_default_starts_it_with_this_package_config(franka_env) -> None:
    walk = evaluate({"sim": "mujoco"})
    assert ("rviz2", "rviz2") in walk.executables() and not walk.logged


def test_real_arm_branch_needs_rviz2_because_franka_moveit_launch_always_starts_it(franka_env) -> None:
    franka_env([p for p in STAND_INS if p != "rviz2"])
    with pytest.raises(RuntimeError, match="rviz2"):
        evaluate({"sim": "none", "use_rviz": "false"})


def test_hand_eye_calibration_is_a_static_transform(franka_env) -> None:
    walk = evaluate({"sim": "none", "use_rviz": "false", "camera_pose": "0.5 0.1 0.8 0 0 0 1"})
    assert ("tf2_ros", "static_transform_publisher") in walk.executables()
    with pytest.raises(RuntimeError, match="7 numbers"):
        evaluate({"sim": "none", "use_rviz": "false", "camera_pose": "0.5 0.1"})


def test_gazebo_branch_evaluates_against_the_real_franka_files(franka_env) -> None:
    walk = evaluate({"sim": "gazebo", "use_rviz": "false", "gz_gui": "false"})
    assert not walk.problems, walk.problems
    # the only file that cannot be read here is ros_gz_sim's; gz_args and on_exit_shutdown are the arguments
    # its jazzy gz_sim.launch.py declares
    assert walk.unverifiable == ["ros_gz_sim/launch/gz_sim.launch.py ['gz_args', 'on_exit_shutdown']"]
    move_group = str(
        Path(get_package_share_directory("franka_fr3_moveit_config")) / "launch" / "move_group.launch.py"
    )
    assert move_group in walk.includes
    executables = walk.executables()
    for needed in (
        ("moveit_ros_move_group", "move_group"),
        ("ros_gz_sim", "create"),
        ("ros_gz_bridge", "parameter_bridge"),
        ("robot_state_publisher", "robot_state_publisher"),
        ("controller_manager", "spawner"),
    ):
        assert needed in executables
    spawners = [n for n in walk.nodes if n[1:3] == ("controller_manager", "spawner")]
    assert len(spawners) == 2, "the broadcaster and MoveIt's controller, each with its own type and file"
    arm = walk.node_parameters("executor_node")
    assert arm["use_sim_time"] is True
    assert_moveit_parameters(arm)
    for _, package, executable, parameters in walk.nodes:  # every node, move_group too: simulated time
        assert parameters.get("use_sim_time") is True, f"{package}/{executable}"
