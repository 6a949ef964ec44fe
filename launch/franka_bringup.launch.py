"""Bring up SC-MLLM on a Franka: the embedded MuJoCo arm, Gazebo, or a real FR3 through MoveIt (moveit_py).

ros2 launch sc_mllm_ros franka_bringup.launch.py                      # sim:=mujoco, the embedded arm
ros2 launch sc_mllm_ros franka_bringup.launch.py sim:=gazebo          # gz sim world + MoveIt
ros2 launch sc_mllm_ros franka_bringup.launch.py sim:=none robot_ip:=172.16.0.2
ros2 launch sc_mllm_ros franka_bringup.launch.py sim:=none use_fake_hardware:=true

Every package a branch needs is looked up before anything starts: a missing one stops the launch with one
line naming it, so a failed bringup never leaves half a graph running on the domain. rviz2 alone is optional:
without it the graph runs and the launch says so.
"""

from __future__ import annotations

from pathlib import Path

from ament_index_python.packages import (
    get_package_prefix,
    get_package_share_directory,
    PackageNotFoundError,
)
from launch.actions import (
    DeclareLaunchArgument,
    IncludeLaunchDescription,
    LogInfo,
    OpaqueFunction,
)
from launch.launch_context import LaunchContext
from launch.launch_description import LaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
import yaml

PACKAGE = "sc_mllm_ros"
SIMS = ("mujoco", "gazebo", "none")
# The graph's processes: the arm (per world) and the nodes beside it, as (executable, node name, parameters).
# One table, so the process set changes in one place.
ARM = {
    "mujoco": ("sim_node", "sc_mllm_sim", {}),
    "moveit": ("executor_node", "sc_mllm_executor", {}),
}
# The model host is one process with four nodes (the model loaded once): no name remap, which would give all
# four the same name. (executable, node name to give or None, the nodes it brings up)
GRAPH = (
    ("model_host", None, ("sc_mllm_model_host", "sc_mllm_policy", "sc_mllm_checker", "sc_mllm_correction")),
    ("learner_node", "sc_mllm_learner", ("sc_mllm_learner",)),
)
# The packages each branch reads or starts, beyond this one and rviz2 (checked before anything starts).
NEEDS = {
    "mujoco": (),
    "gazebo": (
        "franka_description",
        "franka_gazebo_bringup",
        "franka_fr3_moveit_config",
        "moveit_ros_move_group",
        "controller_manager",
        "robot_state_publisher",
        "ros_gz_sim",
        "ros_gz_bridge",
        "tf2_ros",
    ),
    "none": (
        "franka_description",
        "franka_bringup",
        "franka_gripper",
        "franka_fr3_moveit_config",
        "moveit_ros_move_group",
        "controller_manager",
        "robot_state_publisher",
        "joint_state_publisher",
        "rviz2",
        "tf2_ros",
    ),
}
TRUE = ("true", "1", "yes")
# What franka_fr3_moveit_config's moveit.launch.py and move_group.launch.py put around its ompl_planning.yaml.
OMPL_PIPELINE = {
    "planning_plugins": ["ompl_interface/OMPLPlanner"],
    "request_adapters": [
        "default_planning_request_adapters/ResolveConstraintFrames",
        "default_planning_request_adapters/ValidateWorkspaceBounds",
        "default_planning_request_adapters/CheckStartStateBounds",
        "default_planning_request_adapters/CheckStartStateCollision",
    ],
    "response_adapters": [
        "default_planning_response_adapters/AddTimeOptimalParameterization",
        "default_planning_response_adapters/ValidateSolution",
        "default_planning_response_adapters/DisplayMotionPath",
    ],
    "start_state_max_bounds_error": 0.1,
}
TRAJECTORY_EXECUTION = {
    "moveit_manage_controllers": True,
    "trajectory_execution.allowed_execution_duration_scaling": 1.2,
    "trajectory_execution.allowed_goal_duration_margin": 0.5,
    "trajectory_execution.allowed_start_tolerance": 0.01,
}


def package_found(package: str) -> bool:
    try:
        get_package_prefix(package)
    except PackageNotFoundError:
        return False
    return True


def moveit_parameters(robot_ip: str, use_fake_hardware: str, load_gripper: str = "true") -> dict:
    """moveit_py's parameters for the FR3, built as franka_fr3_moveit_config's move_group.launch.py does.

    The robot and semantic descriptions from franka_description's xacros (without ros2_control: moveit_py
    only plans and sends trajectories), the package's kinematics, joint limits, OMPL and controller files
    wrapped the way its launch files wrap them, then this package's settings (config/moveit_py.yaml).
    """
    import xacro

    description = Path(get_package_share_directory("franka_description")) / "robots" / "fr3"
    moveit_config = Path(get_package_share_directory("franka_fr3_moveit_config")) / "config"
    load = lambda path: yaml.safe_load(Path(path).read_text())  # noqa: E731
    urdf = xacro.process_file(
        str(description / "fr3.urdf.xacro"),
        mappings={
            "ros2_control": "false",
            "hand": load_gripper,
            "robot_type": "fr3",
            "robot_ip": robot_ip,
            "use_fake_hardware": use_fake_hardware,
        },
    )
    srdf = xacro.process_file(str(description / "fr3.srdf.xacro"), mappings={"hand": load_gripper})
    return {
        "robot_description": urdf.toxml(),
        "robot_description_semantic": srdf.toxml(),
        "robot_description_kinematics": load(moveit_config / "kinematics.yaml"),
        "robot_description_planning": load(moveit_config / "fr3_joint_limits.yaml"),
        "ompl": {**OMPL_PIPELINE, **load(moveit_config / "ompl_planning.yaml")},
        "moveit_simple_controller_manager": load(moveit_config / "fr3_controllers.yaml"),
        "moveit_controller_manager": "moveit_simple_controller_manager/MoveItSimpleControllerManager",
        **TRAJECTORY_EXECUTION,
        **load(Path(get_package_share_directory(PACKAGE)) / "config" / "moveit_py.yaml"),
    }


def _include(package: str, relative: str, arguments: dict[str, str]) -> IncludeLaunchDescription:
    path = Path(get_package_share_directory(package)) / relative
    return IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(path)), launch_arguments=arguments.items()
    )


def _bringup(context: LaunchContext) -> list:
    arg = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    sim = arg("sim")
    use_rviz = arg("use_rviz").lower() in TRUE
    missing = [p for p in (PACKAGE, *NEEDS[sim]) if not package_found(p)]
    if missing:
        # Before any process starts: a half-started graph would keep running on the domain.
        raise RuntimeError(
            f"sim:={sim} needs ROS packages that are not installed: {', '.join(missing)} "
            "(a full ROS 2 Jazzy install gets them with `rosdep install --from-paths src -y --ignore-src`)"
        )
    actions: list = []
    if use_rviz and not package_found("rviz2"):
        actions.append(
            LogInfo(msg="rviz2 is not installed: running without rviz (use_rviz:=false hides this)")
        )
        use_rviz = False
    sim_time = {"use_sim_time": sim == "gazebo"}
    config = arg("config")
    shared = {"model_path": arg("model_path"), "data_dir": arg("data_dir"), **sim_time}
    arm_params: list = []
    if sim == "gazebo":
        actions.append(_include(PACKAGE, "launch/gazebo.launch.py", {"gz_gui": arg("gz_gui")}))
    elif sim == "none":
        actions.append(
            # franka's own MoveIt bringup: ros2_control (the arm or fake hardware) with the controllers MoveIt
            # drives, robot_state_publisher, move_group, the gripper, and its rviz2 (which it always starts).
            _include(
                "franka_fr3_moveit_config",
                "launch/moveit.launch.py",
                {
                    "robot_ip": arg("robot_ip"),
                    "use_fake_hardware": arg("use_fake_hardware"),
                    "load_gripper": "true",
                },
            )
        )
        camera_pose = arg("camera_pose").split()
        if camera_pose:
            actions.append(hand_eye_transform(camera_pose, arg("base_frame")))
    if sim != "mujoco":
        arm_params.append(moveit_parameters(arg("robot_ip"), arg("use_fake_hardware")))
    executable, name, params = ARM["mujoco" if sim == "mujoco" else "moveit"]
    processes = [(executable, name, [config, shared, params, *arm_params])]
    processes += [(executable, name, [config, shared]) for executable, name, _ in GRAPH]
    actions += [
        Node(package=PACKAGE, executable=exe, name=name, parameters=params, output="screen")
        for exe, name, params in processes
    ]
    if use_rviz:
        rviz_config = str(Path(get_package_share_directory(PACKAGE)) / "config" / "sc_mllm.rviz")
        actions.append(
            Node(
                package="rviz2",
                executable="rviz2",
                name="sc_mllm_rviz",
                arguments=["-d", rviz_config],
                parameters=[sim_time],
                output="log",
            )
        )
    return actions


def hand_eye_transform(camera_pose: list[str], base_frame: str) -> Node:
    """The hand-eye calibration as a static transform: base frame <- camera optical frame."""
    if len(camera_pose) != 7:
        raise RuntimeError(f"camera_pose takes 7 numbers 'x y z qx qy qz qw', got {len(camera_pose)}")
    names = ("--x", "--y", "--z", "--qx", "--qy", "--qz", "--qw")
    arguments = [item for pair in zip(names, camera_pose) for item in pair]
    return Node(
        package="tf2_ros",
        executable="static_transform_publisher",
        name="sc_mllm_hand_eye",
        arguments=[*arguments, "--frame-id", base_frame, "--child-frame-id", "camera_color_optical_frame"],
        output="log",
    )


def generate_launch_description() -> LaunchDescription:
    config = str(Path(get_package_share_directory(PACKAGE)) / "config" / "sc_mllm.yaml")
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "sim",
                default_value="mujoco",
                choices=list(SIMS),
                description="mujoco: the embedded arm; gazebo: gz sim + MoveIt; none: a real arm (MoveIt)",
            ),
            DeclareLaunchArgument(
                "robot_ip", default_value="172.16.0.2", description="FR3 address (sim:=none)"
            ),
            DeclareLaunchArgument(
                "use_fake_hardware",
                default_value="false",
                description="ros2_control fake hardware instead of the arm (sim:=none)",
            ),
            DeclareLaunchArgument(
                "camera_pose",
                default_value="",
                description="hand-eye calibration 'x y z qx qy qz qw', base_frame <- camera optical frame "
                "(sim:=none; empty: your own calibration publishes that transform)",
            ),
            DeclareLaunchArgument("base_frame", default_value="fr3_link0", description="robot base frame"),
            DeclareLaunchArgument(
                "use_rviz",
                default_value="true",
                description="rviz2 with config/sc_mllm.rviz (where rviz2 is missing: skipped, saying so)",
            ),
            DeclareLaunchArgument("gz_gui", default_value="true", description="Gazebo's GUI (sim:=gazebo)"),
            DeclareLaunchArgument(
                "model_path",
                default_value="",
                description="SC-MLLM checkpoint directory (empty: the shipped small model)",
            ),
            DeclareLaunchArgument(
                "data_dir",
                default_value="sc_mllm_data",
                description="episode and sample stores, adapter checkpoints",
            ),
            DeclareLaunchArgument("config", default_value=config, description="parameters of the nodes"),
            OpaqueFunction(function=_bringup),
        ]
    )
