"""The ROS 2 nodes of SC-MLLM (rclpy only): thin wrappers over :mod:`sc_mllm_ros.episode`.

Importing this package sets the process's CPU thread budget (:data:`CPU_ENV`) before torch loads: every
node executable, ``sc-mllm bringup`` and ``sc-mllm bench system`` import it first.
"""

import os

# One torch intra-op thread per graph process (model host, arm, learner), and OpenMP threads that sleep
# when idle.  On two shared cores two spinning OpenMP threads made an answer 10-16x slower, and one thread
# answered faster than two under load (README, "Benchmarks"); a batch-1 answer is bound by per-pass
# overhead, not arithmetic.  libgomp and torch read these once, when torch loads; a value already in the
# environment wins.
CPU_ENV = {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
for _name, _value in CPU_ENV.items():
    os.environ.setdefault(_name, _value)
