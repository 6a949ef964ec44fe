"""Files shipped inside the package: the trained small SC-MLLM the demo and the evaluation use by default."""

from pathlib import Path

# Written by `sc-mllm train` (see its MODEL_CARD.md for the exact command, data seed and numbers).
DEFAULT_MODEL = Path(__file__).resolve().parent / "sc_mllm_small"
