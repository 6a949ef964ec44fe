"""The FR3 in this package's Gazebo (gz sim Harmonic) world, driven by MoveIt, on simulated time.

franka_bringup.launch.py sim:=gazebo includes this file and adds SC-MLLM's nodes. On its own:
ros2 launch sc_mllm_ros gazebo.launch.py gz_gui:=false

- gz sim runs gazebo/sc_mllm_cabinet.sdf: a cabinet with a sliding drawer and a hinged door, and a fixed RGB-D
  camera looking at it;
- the FR3 from franka_description in its Gazebo mode (ros2_control through franka's gz plugin, effort
  interfaces), spawned from /robot_description; once it is in, the joint state broadcaster and the
  trajectory controller MoveIt drives (franka_fr3_moveit_config's fr3_arm_controller) are spawned;
- move_group from franka_fr3_moveit_config/launch/move_group.launch.py;
- ros_gz_bridge (gazebo/bridge.yaml): /clock and the camera's image, depth and camera info under the
  RealSense-style names the policy subscribes to;
- the camera's pose as static transforms: base frame -> camera_link (the sensor's pose in the world) ->
  camera_color_optical_frame (the frame stamped on the images).
Every node here, move_group included, runs with use_sim_time.
"""

from __future__ import annotations

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch.actions import (
    AppendEnvironmentVariable,
    DeclareLaunchArgument,
    GroupAction,
    IncludeLaunchDescription,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.event_handlers import OnProcessExit
from launch.launch_context import LaunchContext
from launch.launch_description import LaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, SetParameter

PACKAGE = "sc_mllm_ros"
WORLD = "gazebo/sc_mllm_cabinet.sdf"
BRIDGE = "gazebo/bridge.yaml"
ROBOT_NAME = "fr3"
BASE_FRAME = "fr3_link0"
# The camera sensor link's pose in the world (= the robot base, spawned at the origin): x y z roll pitch yaw.
# Must equal the <pose> of the camera model in WORLD (test_launch_gazebo checks it).
CAMERA_POSE = ("0.35", "-0.7", "0.9", "0.0", "0.59", "1.23")
CAMERA_OPTICAL = ("0.0", "0.0", "0.0", "-1.5707963", "0.0", "-1.5707963")  # camera_link -> optical (REP 103)
# The controller MoveIt's fr3_controllers.yaml names, with the effort gains of franka_fr3_moveit_config.
ARM_CONTROLLER = "fr3_arm_controller"
ARM_CONTROLLER_TYPE = "joint_trajectory_controller/JointTrajectoryController"


def share(package: str) -> Path:
    return Path(get_package_share_directory(package))


def robot_description() -> str:
    """franka_description's FR3 in Gazebo mode: ros2_control through franka's gz plugin, effort commands."""
    import xacro

    return xacro.process_file(
        str(share("franka_description") / "robots" / "fr3" / "fr3.urdf.xacro"),
        mappings={
            "hand": "true",
            "ee_id": "franka_hand",
            "gazebo": "true",
            "ros2_control": "true",
            "gazebo_effort": "true",
        },
    ).toxml()


def static_transform(name: str, xyz_rpy: tuple[str, ...], parent: str, child: str) -> Node:
    keys = ("--x", "--y", "--z", "--roll", "--pitch", "--yaw")
    return Node(
        package="tf2_ros",
        executable="static_transform_publisher",
        name=name,
        arguments=[
            *(item for pair in zip(keys, xyz_rpy) for item in pair),
            "--frame-id",
            parent,
            "--child-frame-id",
            child,
        ],
        output="log",
    )


def _gazebo(context: LaunchContext) -> list:
    gui = LaunchConfiguration("gz_gui").perform(context).lower() in ("true", "1", "yes")
    world = str(share(PACKAGE) / WORLD)
    spawn = Node(
        package="ros_gz_sim",
        executable="create",
        arguments=["-topic", "/robot_description", "-name", ROBOT_NAME],
        output="screen",
    )
    # Two spawners: --controller-type and --param-file apply to every controller one spawner is given.
    spawners = [
        Node(
            package="controller_manager",
            executable="spawner",
            arguments=["joint_state_broadcaster", "--controller-manager-timeout", "60"],
            output="screen",
        ),
        Node(
            package="controller_manager",
            executable="spawner",
            arguments=[
                ARM_CONTROLLER,
                "--controller-type",
                ARM_CONTROLLER_TYPE,
                "--param-file",
                str(share("franka_fr3_moveit_config") / "config" / "fr3_ros_controllers.yaml"),
                "--controller-manager-timeout",
                "60",
            ],
            output="screen",
        ),
    ]
    move_group = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            str(share("franka_fr3_moveit_config") / "launch" / "move_group.launch.py")
        ),
        # move_group.launch.py reads these without declaring them.
        launch_arguments={
            "robot_ip": "",
            "load_gripper": "true",
            "use_fake_hardware": "false",
            "fake_sensor_commands": "false",
            "namespace": "",
            "arm_prefix": "",
        }.items(),
    )
    return [
        # model://franka_description/meshes/... in the description resolve against its share's parent.
        AppendEnvironmentVariable("GZ_SIM_RESOURCE_PATH", str(share("franka_description").parent)),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(str(share("ros_gz_sim") / "launch" / "gz_sim.launch.py")),
            launch_arguments={
                "gz_args": f"-r {'' if gui else '-s '}{world}",
                "on_exit_shutdown": "true",
            }.items(),
        ),
        GroupAction(
            [
                SetParameter(name="use_sim_time", value=True),
                Node(
                    package="robot_state_publisher",
                    executable="robot_state_publisher",
                    parameters=[{"robot_description": robot_description()}],
                    output="log",
                ),
                spawn,
                RegisterEventHandler(OnProcessExit(target_action=spawn, on_exit=spawners)),
                Node(
                    package="ros_gz_bridge",
                    executable="parameter_bridge",
                    name="sc_mllm_gz_bridge",
                    parameters=[{"config_file": str(share(PACKAGE) / BRIDGE)}],
                    output="log",
                ),
                static_transform("sc_mllm_camera_tf", CAMERA_POSE, BASE_FRAME, "camera_link"),
                static_transform(
                    "sc_mllm_camera_optical_tf", CAMERA_OPTICAL, "camera_link", "camera_color_optical_frame"
                ),
                move_group,
            ]
        ),
    ]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "gz_gui", default_value="true", description="Gazebo's GUI (false: server only)"
            ),
            OpaqueFunction(function=_gazebo),
        ]
    )
