"""The ROS 2 nodes of SC-MLLM (rclpy only): thin wrappers over :mod:`sc_mllm_ros.episode`."""
