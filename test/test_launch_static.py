"""Static checks of launch/: what the launch files name must exist, even where `launch` can't be imported.

Runs everywhere. The launch files themselves are exercised by launch_testing tests where launch_testing is
installed (a full ROS 2 Jazzy install).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / "launch").glob("*.launch.py"))
PACKAGE = "sc_mllm_ros"
LOADED_SUFFIXES = (".yaml", ".rviz", ".launch.py", ".xacro", ".urdf", ".srdf", ".sdf")
PACKAGE_LOOKUPS = {"FindPackageShare", "get_package_share_directory", "share", "_include"}
PROCESS_TABLES = ("ARM", "GRAPH")  # franka_bringup.launch.py: rows that start with the executable
OWN_DIRS = ("config", "launch", "gazebo")


def console_scripts() -> dict[str, str]:
    """``name -> module:function`` of setup.py's console_scripts, read without running setup()."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    entries = [ast.literal_eval(e) for e in value.elts]
                    return dict((part.strip() for part in e.split("=", 1)) for e in entries)
    raise AssertionError("setup.py declares no console_scripts")


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def module_constants(tree: ast.AST) -> dict[str, str]:
    """Module-level ``NAME = "string"`` assignments (e.g. ``PACKAGE = "sc_mllm_ros"``)."""
    return {
        target.id: node.value.value
        for node in getattr(tree, "body", [])
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name) and isinstance(node.value.value, str)
    }


def _package_of(call: ast.Call, constants: dict[str, str]) -> str | None:
    """The package a path expression looks up (FindPackageShare('pkg') inside it), if any."""
    for node in ast.walk(call):
        if isinstance(node, ast.Call) and _call_name(node) in PACKAGE_LOOKUPS and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Name):
                return constants.get(arg.id)
            return arg.value if isinstance(arg, ast.Constant) else None
    return None


def executables(tree: ast.AST) -> list[tuple[str | None, str]]:
    """``(package, executable)`` of every Node(...) in a launch file and of its process tables."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node) == "Node":
            kw = {k.arg: k.value for k in node.keywords}
            if isinstance(kw.get("executable"), ast.Constant):
                package = kw.get("package")
                found.append(
                    (package.value if isinstance(package, ast.Constant) else None, kw["executable"].value)
                )
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") in PROCESS_TABLES for t in node.targets):
            rows = node.value.values if isinstance(node.value, ast.Dict) else getattr(node.value, "elts", [])
            for row in rows:
                if isinstance(row, ast.Tuple) and row.elts and isinstance(row.elts[0], ast.Constant):
                    found.append((PACKAGE, row.elts[0].value))
    return found


def loaded_files(tree: ast.AST) -> list[tuple[str | None, str]]:
    """``(package, file name)`` of every file-like string constant, with the package its expression names."""
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    constants = module_constants(tree)
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.endswith(LOADED_SUFFIXES)
        ):
            outer, package = parents.get(node), None
            while outer is not None and package is None:
                if isinstance(outer, ast.Call):
                    package = _package_of(outer, constants)
                outer = parents.get(outer)
            found.append((package, node.value))
    return found


def test_the_bringup_launch_file_exists() -> None:
    assert (ROOT / "launch" / "franka_bringup.launch.py").is_file()


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_defines_a_launch_description(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in names


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_every_executable_is_a_console_script(path: Path) -> None:
    scripts = console_scripts()
    ours = [exe for package, exe in executables(ast.parse(path.read_text())) if package in (PACKAGE, None)]
    if path.name == "franka_bringup.launch.py":
        assert ours, f"{path.name} starts none of {PACKAGE}'s nodes"
    for exe in ours:
        assert exe in scripts, (
            f"{path.name} runs '{exe}', which setup.py does not declare as a console script"
        )
        module, _, function = scripts[exe].partition(":")
        assert hasattr(importlib.import_module(module), function), f"{scripts[exe]} does not exist"


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_every_loaded_file_of_this_package_exists(path: Path) -> None:
    """Files named with this package's share directory, or by a path relative to it, are in the repository."""
    checked = 0
    for package, name in loaded_files(ast.parse(path.read_text())):
        relative = name.split("/")[0] in OWN_DIRS
        if package == PACKAGE or (package is None and relative):
            found = (ROOT / name).is_file() or any((ROOT / d / name).is_file() for d in OWN_DIRS)
            assert found, f"{path.name} loads '{name}', which is not in {', '.join(OWN_DIRS)}"
            checked += 1
    assert checked, f"{path.name} names none of this package's files"


def test_setup_installs_launch_and_config_files() -> None:
    setup = (ROOT / "setup.py").read_text()
    assert 'glob("launch/*.launch.py")' in setup
    assert 'glob("config/*.yaml")' in setup and 'glob("config/*.rviz")' in setup
