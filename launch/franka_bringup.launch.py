"""Bring up SC-MLLM on a Franka: the embedded MuJoCo arm, Gazebo, or a real FR3 through MoveIt (moveit_py).

ros2 launch sc_mllm_ros franka_bringup.launch.py                      # sim:=mujoco, the embedded arm
ros2 launch sc_mllm_ros franka_bringup.launch.py sim:=gazebo          # franka_ros2 Gazebo + ros_gz_bridge
ros2 launch sc_mllm_ros franka_bringup.launch.py sim:=none robot_ip:=172.16.0.2
ros2 launch sc_mllm_ros franka_bringup.launch.py sim:=none use_fake_hardware:=true
"""

from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description import LaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

SIMS = ("mujoco", "gazebo", "none")
# Gazebo camera topics -> the RealSense-style names the policy subscribes to
GZ_CAMERA = {
    "/camera/image": ("/camera/color/image_raw", "sensor_msgs/msg/Image[gz.msgs.Image"),
    "/camera/depth_image": (
        "/camera/aligned_depth_to_color/image_raw",
        "sensor_msgs/msg/Image[gz.msgs.Image",
    ),
    "/camera/camera_info": ("/camera/color/camera_info", "sensor_msgs/msg/CameraInfo[gz.msgs.CameraInfo"),
}


def _moveit_params(robot_ip: str, use_fake_hardware: str) -> dict:
    """The MoveIt parameters moveit_py needs, from franka_ros2's FR3 MoveIt config."""
    from moveit_configs_utils import MoveItConfigsBuilder

    config = (
        MoveItConfigsBuilder("fr3", package_name="franka_fr3_moveit_config")
        .robot_description(mappings={"robot_ip": robot_ip, "use_fake_hardware": use_fake_hardware})
        .moveit_cpp(
            file_path=PathJoinSubstitution([FindPackageShare("sc_mllm_ros"), "config", "moveit_py.yaml"])
        )
        .to_moveit_configs()
    )
    return config.to_dict()


def _bringup(context):
    sim = LaunchConfiguration("sim").perform(context)
    if sim not in SIMS:
        raise RuntimeError(f"sim:={sim} is not one of {', '.join(SIMS)}")
    robot_ip = LaunchConfiguration("robot_ip").perform(context)
    fake = LaunchConfiguration("use_fake_hardware").perform(context)
    config = LaunchConfiguration("config")
    shared = {"model_path": LaunchConfiguration("model_path"), "data_dir": LaunchConfiguration("data_dir")}
    actions = []
    executor_params = [config, shared]
    if sim == "gazebo":
        actions.append(
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(
                    PathJoinSubstitution(
                        [FindPackageShare("franka_gazebo_bringup"), "launch", "gazebo_moveit.launch.py"]
                    )
                ),
                launch_arguments={"load_gripper": "true", "franka_hand": "franka_hand"}.items(),
            )
        )
        actions.append(
            Node(
                package="ros_gz_bridge",
                executable="parameter_bridge",
                name="sc_mllm_camera_bridge",
                arguments=[f"{gz}@{spec}" for gz, (_, spec) in GZ_CAMERA.items()],
                remappings=[(gz, ros) for gz, (ros, _) in GZ_CAMERA.items()],
                output="screen",
            )
        )
    elif sim == "none":
        actions.append(
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(
                    PathJoinSubstitution(
                        [FindPackageShare("franka_fr3_moveit_config"), "launch", "moveit.launch.py"]
                    )
                ),
                launch_arguments={
                    "robot_ip": robot_ip,
                    "use_fake_hardware": fake,
                    "use_rviz": "false",
                }.items(),
            )
        )
    if sim != "mujoco":
        executor_params.append(_moveit_params(robot_ip, fake))
    actions += [
        Node(
            package="sc_mllm_ros",
            executable="sim_node" if sim == "mujoco" else "executor_node",
            name="sc_mllm_sim" if sim == "mujoco" else "sc_mllm_executor",
            parameters=executor_params,
            output="screen",
        ),
        Node(
            package="sc_mllm_ros",
            executable="policy_node",
            name="sc_mllm_policy",
            parameters=[config, shared],
            output="screen",
        ),
        Node(
            package="sc_mllm_ros",
            executable="checker_node",
            name="sc_mllm_checker",
            parameters=[config, shared],
            output="screen",
        ),
        Node(
            package="sc_mllm_ros",
            executable="correction_node",
            name="sc_mllm_correction",
            parameters=[config, shared],
            output="screen",
        ),
        Node(
            package="sc_mllm_ros",
            executable="learner_node",
            name="sc_mllm_learner",
            parameters=[config, shared],
            output="screen",
        ),
    ]
    if LaunchConfiguration("use_rviz").perform(context).lower() in ("true", "1"):
        actions.append(
            Node(
                package="rviz2",
                executable="rviz2",
                name="sc_mllm_rviz",
                arguments=[
                    "-d",
                    PathJoinSubstitution([FindPackageShare("sc_mllm_ros"), "config", "sc_mllm.rviz"]),
                ],
                output="log",
            )
        )
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "sim",
                default_value="mujoco",
                choices=list(SIMS),
                description="mujoco: the embedded arm; gazebo: franka_ros2 Gazebo; none: a real arm",
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
                "use_rviz", default_value="true", description="start rviz2 with config/sc_mllm.rviz"
            ),
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
            DeclareLaunchArgument(
                "config",
                default_value=PathJoinSubstitution(
                    [FindPackageShare("sc_mllm_ros"), "config", "sc_mllm.yaml"]
                ),
                description="parameters of the nodes",
            ),
            OpaqueFunction(function=_bringup),
        ]
    )
