"""SC-MLLM: a self-correcting multimodal LLM manipulation policy for ROS 2.

Subpackages, by concern:
    geometry  pure numpy: camera model, pixel convention, gripper rotations (shared by model and sim)
    model     pure torch: the multimodal LLM, prompts, answer codec, decoding, training, EMA
    sim       pure MuJoCo: Franka Panda world, articulated objects, pull primitive, experts, data
    episode   the self-correction loop without ROS: records, durable sample store, safety envelope
    nodes     thin rclpy nodes over the libraries above
"""

__version__ = "0.1.0"
