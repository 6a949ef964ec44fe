#!/usr/bin/env bash
# One set-up step for sc_mllm_ros: system packages, the project venv (pinned), the CMake path fix, colcon build.
# Idempotent: each stage keeps a stamp of its inputs and is skipped while they are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${SC_MLLM_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
stamp_of() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }

# 1. System libraries for headless MuJoCo rendering (EGL or OSMesa).
if ! ldconfig -p | grep -qE 'libOSMesa\.so|libEGL\.so\.1'; then
  pkgs="libosmesa6 libegl1"
  if [ "$(id -u)" = 0 ]; then
    say "installing system packages: $pkgs"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null
  else
    echo "Headless rendering needs system packages that only root can install. Run:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y $pkgs" >&2
    echo "then run this step again." >&2
    exit 1
  fi
fi

# 2. The virtual environment, pinned by requirements.lock.
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  echo "Python 3.11 is required (the ROS 2 Jazzy wheels are cp311); found $("$PY" --version)" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PY" -m venv "$VENV"; }
req_stamp=$(stamp_of requirements.txt requirements.lock requirements-nodeps.txt)
if [ "$(cat "$VENV/.sc_mllm_requirements" 2>/dev/null)" != "$req_stamp" ]; then
  say "installing pinned requirements (first time: a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch and torchvision are resolved in the same set on purpose: installing torch alone lets a later
  # step replace it with a build torchvision cannot load.
  "$VENV/bin/python" -m pip install -q -r requirements.txt -c requirements.lock
  # Packages used only for their data files (robosuite's Panda model); their own deps pin another mujoco.
  "$VENV/bin/python" -m pip install -q --no-deps -r requirements-nodeps.txt
  echo "$req_stamp" > "$VENV/.sc_mllm_requirements"
fi

# 3. The ROS wheels' exported CMake files carry absolute paths of the machine they were built on.
mapfile -t broken < <(grep -rl /opt/python/cp311-cp311 "$VENV/share" --include='*.cmake' 2>/dev/null || true)
if [ "${#broken[@]}" -gt 0 ]; then
  say "rewriting build-machine paths in ${#broken[@]} CMake files of the venv"
  "$VENV/bin/python" - "${broken[@]}" <<'PYEOF'
import pathlib, sys, sysconfig
import numpy
subs = {
    "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include": numpy.get_include(),
    "/opt/python/cp311-cp311/include/python3.11": sysconfig.get_paths()["include"],
}
for name in sys.argv[1:]:
    p = pathlib.Path(name)
    text = p.read_text()
    for old, new in subs.items():
        text = text.replace(old, new)
    p.write_text(text)
PYEOF
fi

# 4. The ROS 2 parts with no wheel (launch, launch_testing, the ros2 CLI, tf2) from pinned upstream sources, when
# a source directory is given (CI sets it where ../shared/vendor/ros2-jazzy exists). Without them the tests that
# need these parts skip, saying why; a full ROS 2 install gets them from the distribution instead.
if [ -n "${SC_MLLM_ROS2_VENDOR:-}" ]; then
  [ -x "$SC_MLLM_ROS2_VENDOR/install.sh" ] || { echo "SC_MLLM_ROS2_VENDOR=$SC_MLLM_ROS2_VENDOR has no install.sh" >&2; exit 1; }
  "$SC_MLLM_ROS2_VENDOR/install.sh" "$VENV"
  # The real franka_ros2 / franka_description / moveit_configs_utils files, for the tests that evaluate the
  # launch files' sim:=none and sim:=gazebo branches (files only: kept out of the environment's paths).
  "$SC_MLLM_ROS2_VENDOR/franka-prefix.sh" "$VENV/bin/python" "$ROOT/build/franka-prefix" >/dev/null
  touch "$ROOT/build/franka-prefix/COLCON_IGNORE"  # its package.xml files are not this workspace's packages
fi

# 5. colcon build of both packages (sc_mllm_msgs at sc_mllm_msgs/, sc_mllm_ros at the repository root).
build_stamp=$(find sc_mllm_msgs setup.py setup.cfg package.xml launch config gazebo resource -type f -print0 2>/dev/null \
  | sort -z | xargs -0 cat | sha256sum | cut -d' ' -f1)
if [ "$(cat install/.sc_mllm_build 2>/dev/null)" != "$build_stamp" ]; then
  say "colcon build"
  (
    # shellcheck disable=SC1091
    source "$VENV/bin/activate"
    export CMAKE_PREFIX_PATH=$VENV AMENT_PREFIX_PATH=$VENV
    colcon --log-base log build --base-paths "$ROOT" "$ROOT/sc_mllm_msgs" --symlink-install \
      --event-handlers console_cohesion- status- --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python"
  )
  echo "$build_stamp" > install/.sc_mllm_build
fi
say "ready (run commands through tools/env.sh, or: source tools/env.sh)"
