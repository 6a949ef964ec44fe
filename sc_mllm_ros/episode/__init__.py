"""One episode of the self-correcting loop without ROS: records, durable stores, safety, online learning.

The ROS nodes in :mod:`sc_mllm_ros.nodes` are thin wrappers around these pieces, and the same pieces run
the loop in tests and benchmarks without a graph.
"""
