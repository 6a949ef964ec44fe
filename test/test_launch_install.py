"""A full install gets everything the launch files start: package.xml and requirements-apt-jazzy.txt.

``rosdep install`` reads package.xml, so every ROS package a launch branch starts, includes or checks must
be a dependency there; the pip set of an apt Jazzy workspace must not bring ROS wheels, and must keep numpy
and pytest where apt's cv_bridge and launch_testing work. Runs everywhere (reads files only).
"""

from __future__ import annotations

import ast
from pathlib import Path
import re
import xml.etree.ElementTree as ET

ROOT = Path(__file__).resolve().parents[1]
APT_REQUIREMENTS = ROOT / "requirements-apt-jazzy.txt"
LOOKUPS = ("share", "get_package_share_directory", "_include", "package_found")


def dependencies() -> set[str]:
    root = ET.parse(ROOT / "package.xml").getroot()
    return {e.text for kind in ("depend", "exec_depend") for e in root.findall(kind)}


def launch_packages() -> set[str]:
    """Packages the launch files name: Node(package=...), include lookups, and the NEEDS table."""
    found: set[str] = set()
    for path in (ROOT / "launch").glob("*.launch.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if keyword.arg == "package" and isinstance(keyword.value, ast.Constant):
                        found.add(keyword.value.value)
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if name in LOOKUPS and node.args and isinstance(node.args[0], ast.Constant):
                    found.add(node.args[0].value)
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "NEEDS" for t in node.targets):
                for packages in ast.literal_eval(node.value).values():
                    found.update(packages)
    return found - {"sc_mllm_ros"}


def requirement_names(path: Path) -> dict[str, str]:
    """``name -> specifier`` of a requirements file (lower-case names, '-' for '_')."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, specifier = re.match(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?(.*)", line).groups()
            found[name.lower().replace("_", "-")] = specifier.strip()
    return found


def test_package_xml_names_every_package_the_launch_files_use() -> None:
    missing = launch_packages() - dependencies()
    assert not missing, f"package.xml lacks exec_depend on {sorted(missing)}"


def test_package_xml_names_what_the_readme_commands_and_nodes_need() -> None:
    needed = {"rviz2", "ros2launch", "ros2topic", "ros2service", "tf2_ros_py", "cv_bridge", "moveit_py"}
    assert needed <= dependencies()


def test_apt_requirements_bring_no_ros_wheels_and_keep_numpy_and_pytest_compatible() -> None:
    apt = requirement_names(APT_REQUIREMENTS)
    ros_wheels = [n for n in apt if n.startswith(("ros-", "colcon", "ament"))]
    assert not ros_wheels
    assert re.search(r"<2(,|$)", apt["numpy"]), "cv_bridge on apt Jazzy is built for numpy 1.26"
    assert "<9" in apt["pytest"], "launch_testing's pytest plugin"
    assert "opencv-python-headless" not in apt and "opencv-python" not in apt, "apt's python3-opencv"


def test_apt_requirements_cover_the_project_requirements() -> None:
    """Every non-ROS requirement of requirements.txt is in the apt set or comes from apt (package.xml)."""
    from_apt = {"opencv-python-headless": "python3-opencv", "scipy": "python3-scipy"}
    # development tools and the ament linters' backends (apt's ament_flake8 brings its own)
    tooling = {"ruff", "matplotlib", "pytest-timeout", "pydocstyle"}
    project = requirement_names(ROOT / "requirements.txt")
    apt = requirement_names(APT_REQUIREMENTS)
    for name, specifier in project.items():
        if name.startswith(("ros-", "colcon", "flake8")) or name in tooling:
            continue
        if name in from_apt:
            assert from_apt[name] in dependencies(), name
            continue
        assert name in apt, f"{name} is missing from {APT_REQUIREMENTS.name}"
        if specifier.startswith("=="):
            assert apt[name] == specifier, f"{name}: same pin as requirements.txt"
