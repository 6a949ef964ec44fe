"""The graph's topic, service and action names, relative so that a launch namespace can host two cells.

In the root namespace they resolve to ``/sc_mllm/...``, ``/request_correction`` (the paper's name) and
``/camera/...`` (a RealSense driver's defaults).
"""

# camera (aligned RGB-D)
COLOR = "camera/color/image_raw"
DEPTH = "camera/aligned_depth_to_color/image_raw"
CAMERA_INFO = "camera/color/camera_info"

# model host
TASK = "sc_mllm/task"
PREDICTION = "sc_mllm/prediction"
GOAL_POSE = "sc_mllm/goal_pose"
MARKERS = "sc_mllm/markers"
DEBUG_IMAGE = "sc_mllm/debug_image"
ERRORS = "sc_mllm/errors"
FAILURE_REPORT = "sc_mllm/failure_report"
CORRECTION_SAMPLE = "sc_mllm/correction_sample"
REQUEST_CORRECTION = "request_correction"
EXPERT_HINTS = "sc_mllm/expert_hints"
EXPERT_IMAGE = "sc_mllm/expert_image"
CLICKED_POINT = "clicked_point"  # rviz's Publish Point tool
FAILURE_TEXT = "sc_mllm/failure_text"
RUN_EPISODE = "sc_mllm/run_episode"

# learner
ADAPTER_VERSION = "sc_mllm/adapter_version"

# arm
EXECUTE_POSE = "sc_mllm/execute_pose"
EXECUTION_OUTCOME = "sc_mllm/execution_outcome"
PAUSE = "sc_mllm/pause"
EE_POSE = "sc_mllm/ee_pose"

# simulation only
SCENE = "sc_mllm/sim/scene"
NEXT_SCENE = "sc_mllm/sim/next_scene"
