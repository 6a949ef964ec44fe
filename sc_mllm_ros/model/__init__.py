"""SC-MLLM model core: pure PyTorch (open_clip + transformers + peft), no ROS, no simulator imports."""

from sc_mllm_ros.model.codec import FailureAnswer, PoseAnswer
from sc_mllm_ros.model.config import (
    AdapterConfig,
    LLMConfig,
    SCMLLMConfig,
    TokenizerConfig,
    TrainConfig,
    VisionConfig,
)
from sc_mllm_ros.model.data import TrainingSample
from sc_mllm_ros.model.network import resolve_pretrained, SCMLLM
from sc_mllm_ros.model.online import AdapterEMA, OnlineLearner
from sc_mllm_ros.model.prompts import CAUSES

__all__ = [
    "CAUSES",
    "SCMLLM",
    "AdapterConfig",
    "AdapterEMA",
    "FailureAnswer",
    "LLMConfig",
    "OnlineLearner",
    "PoseAnswer",
    "SCMLLMConfig",
    "TokenizerConfig",
    "TrainConfig",
    "TrainingSample",
    "VisionConfig",
    "resolve_pretrained",
]
