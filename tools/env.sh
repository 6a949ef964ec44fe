#!/usr/bin/env bash
# The project's environment: the venv plus the colcon install space (built interfaces, console scripts).
# Use as `tools/env.sh CMD ARGS...` or `source tools/env.sh` in an interactive shell.
_sc_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC1091
source "${SC_MLLM_VENV:-$_sc_root/.venv}/bin/activate"
export AMENT_PREFIX_PATH=${VIRTUAL_ENV}${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
if [ -f "$_sc_root/install/local_setup.bash" ]; then
  # colcon's scripts read unset variables; keep them quiet under `set -u`.
  set +u
  # shellcheck disable=SC1091
  source "$_sc_root/install/local_setup.bash"
  export PATH=$_sc_root/install/sc_mllm_ros/lib/sc_mllm_ros:$PATH
fi
export MUJOCO_GL=${MUJOCO_GL:-egl}
# A private DDS domain per checkout keeps tests from talking to other graphs on the same host.
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( $(printf '%s' "$_sc_root" | cksum | cut -d' ' -f1) % 100 + 100 ))}
unset _sc_root
if [ "${BASH_SOURCE[0]}" = "$0" ] && [ $# -gt 0 ]; then
  exec "$@"
fi
