"""Static checks of the Gazebo bringup (gz sim cannot run here): world, bridge, camera, robot, controllers.

The world must be well-formed SDF whose camera topics are the ones gazebo/bridge.yaml bridges, to the topics
the policy subscribes to (config/sc_mllm.yaml), with the frame and pose gazebo.launch.py publishes as
transforms.
The robot description is franka_description's Gazebo mode, expanded here with the real franka files
(build/franka-prefix, see test_launch_franka.py): it must carry franka's gz ros2_control plugin and give the
trajectory controller MoveIt drives the interfaces its gains are for.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path
import xml.etree.ElementTree as ET

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORLD = ROOT / "gazebo" / "sc_mllm_cabinet.sdf"
BRIDGE = ROOT / "gazebo" / "bridge.yaml"
LAUNCH = ROOT / "launch" / "gazebo.launch.py"
PREFIX = ROOT / "build" / "franka-prefix"
# gz-sensors' rgbd_camera publishes under its <topic>: these suffixes, with these message types.
RGBD_TOPICS = {
    "image": ("sensor_msgs/msg/Image", "gz.msgs.Image", "color_topic"),
    "depth_image": ("sensor_msgs/msg/Image", "gz.msgs.Image", "depth_topic"),
    "camera_info": ("sensor_msgs/msg/CameraInfo", "gz.msgs.CameraInfo", "camera_info_topic"),
}


def launch_constant(name: str):
    """A module-level constant of gazebo.launch.py, read without importing launch."""
    for node in ast.parse(LAUNCH.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"gazebo.launch.py defines no {name}")


@pytest.fixture(scope="module")
def world() -> ET.Element:
    return ET.parse(WORLD).getroot().find("world")


@pytest.fixture(scope="module")
def bridge() -> list[dict]:
    return yaml.safe_load(BRIDGE.read_text())


def test_the_launch_file_loads_this_world_and_bridge() -> None:
    assert launch_constant("WORLD") == str(WORLD.relative_to(ROOT))
    assert launch_constant("BRIDGE") == str(BRIDGE.relative_to(ROOT))


def test_world_runs_the_systems_spawning_and_cameras_need(world: ET.Element) -> None:
    systems = {plugin.get("name") for plugin in world.findall("plugin")}
    for needed in ("Physics", "UserCommands", "SceneBroadcaster", "Sensors"):
        assert f"gz::sim::systems::{needed}" in systems


def test_every_joint_connects_links_of_its_model(world: ET.Element) -> None:
    for model in world.findall("model"):
        links = {link.get("name") for link in model.findall("link")} | {"world"}
        for joint in model.findall("joint"):
            assert joint.findtext("parent") in links and joint.findtext("child") in links, joint.get("name")


def test_the_cabinet_is_articulated(world: ET.Element) -> None:
    cabinet = next(m for m in world.findall("model") if m.get("name") == "cabinet")
    kinds = {}
    for joint in cabinet.findall("joint"):
        kinds[joint.get("type")] = joint
        if joint.get("type") in ("prismatic", "revolute"):
            limit = joint.find("axis/limit")
            assert float(limit.findtext("lower")) < float(limit.findtext("upper")), joint.get("name")
            child = next(x for x in cabinet.findall("link") if x.get("name") == joint.findtext("child"))
            assert child.find("inertial/mass") is not None, f"{child.get('name')} moves, so it needs mass"
            assert any("handle" in (v.get("name") or "") for v in child.findall("visual")), "a handle to pull"
    assert {"prismatic", "revolute"} <= set(kinds)


def test_camera_topics_are_bridged_to_the_policy_topics(world: ET.Element, bridge: list[dict]) -> None:
    sensors = [s for s in world.iter("sensor") if s.get("type") == "rgbd_camera"]
    assert len(sensors) == 1
    base = "/" + sensors[0].findtext("topic").strip("/")
    by_gz = {entry["gz_topic_name"]: entry for entry in bridge}
    config = yaml.safe_load((ROOT / "config" / "sc_mllm.yaml").read_text())
    policy = config["sc_mllm_policy"]["ros__parameters"]
    for suffix, (ros_type, gz_type, parameter) in RGBD_TOPICS.items():
        entry = by_gz[f"{base}/{suffix}"]
        assert (entry["ros_type_name"], entry["gz_type_name"]) == (ros_type, gz_type)
        assert entry["ros_topic_name"] == policy[parameter]
    clock = by_gz["/clock"]
    assert clock["ros_topic_name"] == "/clock" and clock["gz_type_name"] == "gz.msgs.Clock"
    assert {entry["direction"] for entry in bridge} == {"GZ_TO_ROS"}
    assert len(bridge) == len(RGBD_TOPICS) + 1, "nothing else is bridged"


def test_camera_frame_and_pose_match_the_transforms_the_launch_publishes(world: ET.Element) -> None:
    camera = next(m for m in world.findall("model") if m.find("link/sensor[@type='rgbd_camera']") is not None)
    sensor = camera.find("link/sensor")
    # images are stamped with the optical frame, a child of camera_link (the sensor's pose) in the launch
    assert sensor.findtext("gz_frame_id") == "camera_color_optical_frame"
    assert camera.find("link").get("name") == "camera_link"
    pose = [float(v) for v in camera.findtext("pose").split()]
    assert pose == pytest.approx([float(v) for v in launch_constant("CAMERA_POSE")])
    roll, pitch, yaw = (float(v) for v in launch_constant("CAMERA_OPTICAL")[3:])
    assert (roll, pitch, yaw) == pytest.approx((-math.pi / 2, 0.0, -math.pi / 2), abs=1e-6)  # REP 103
    # the camera looks at the cabinet's front: its optical axis (x of the gz camera) points towards it
    cabinet = next(m for m in world.findall("model") if m.get("name") == "cabinet")
    target = [float(v) for v in cabinet.findtext("pose").split()[:3]]
    x, y, z, _, pitch, yaw = pose
    axis = (math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), -math.sin(pitch))
    to_target = [t - c for t, c in zip(target, (x, y, z))]
    cosine = sum(a * b for a, b in zip(axis, to_target)) / math.dist(target, (x, y, z))
    assert cosine > math.cos(math.radians(30)), "the cabinet is within 30 deg of the optical axis"


@pytest.mark.skipif(not (PREFIX / ".done").is_file(), reason=f"no franka prefix at {PREFIX} (tools/setup.sh)")
def test_robot_description_has_ros2_control_for_the_moveit_controller(monkeypatch) -> None:
    pytest.importorskip("launch_ros", reason="launch_ros is not installed: set SC_MLLM_ROS2_VENDOR")
    import importlib.util
    import os

    monkeypatch.syspath_prepend(str(next(PREFIX.glob("lib/python3*/site-packages"))))
    monkeypatch.setenv("AMENT_PREFIX_PATH", f"{PREFIX}{os.pathsep}{os.environ.get('AMENT_PREFIX_PATH', '')}")
    spec = importlib.util.spec_from_file_location("gazebo_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    urdf = ET.fromstring(module.robot_description())

    hardware = urdf.find("ros2_control/hardware/plugin")
    assert hardware.text == "franka_ign_ros2_control/IgnitionSystem"
    gz_plugin = urdf.find("gazebo/plugin")
    assert gz_plugin.get("filename") == "franka_ign_ros2_control-system"
    manager = yaml.safe_load(Path(gz_plugin.findtext("parameters")).read_text())
    assert "joint_state_broadcaster" in manager["controller_manager"]["ros__parameters"]

    moveit = PREFIX / "share" / "franka_fr3_moveit_config" / "config"
    # two "/**" sections in one file (rcl merges them; a YAML loader keeps the last)
    ros_controllers: dict = {}
    for section in (moveit / "fr3_ros_controllers.yaml").read_text().split("/**:")[1:]:
        ros_controllers.update(yaml.safe_load("section:" + section)["section"])
    controller = ros_controllers[module.ARM_CONTROLLER]["ros__parameters"]
    manager_types = ros_controllers["controller_manager"]["ros__parameters"]
    assert manager_types[module.ARM_CONTROLLER]["type"] == module.ARM_CONTROLLER_TYPE
    moveit_side = yaml.safe_load((moveit / "fr3_controllers.yaml").read_text())[module.ARM_CONTROLLER]
    assert controller["joints"] == moveit_side["joints"], "MoveIt and ros2_control drive the same joints"
    joints = {j.get("name"): j for j in urdf.findall("ros2_control/joint")}
    for name in controller["joints"]:
        commands = {c.get("name") for c in joints[name].findall("command_interface")}
        states = {s.get("name") for s in joints[name].findall("state_interface")}
        assert set(controller["command_interfaces"]) <= commands, name
        assert set(controller["state_interfaces"]) <= states, name
    links = {link.get("name") for link in urdf.findall("link")}
    assert module.BASE_FRAME in links and "world" in links, "fixed to the world, as gz needs"


def test_the_installed_package_has_the_gazebo_files() -> None:
    """The launch finds the world and the bridge through the package's share directory."""
    from ament_index_python.packages import get_package_share_directory

    share = Path(get_package_share_directory("sc_mllm_ros")) / "gazebo"
    for source in (WORLD, BRIDGE):
        assert (share / source.name).is_file(), f"{source.name} is not installed (setup.py data_files)"
