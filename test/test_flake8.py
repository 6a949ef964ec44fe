"""The flake8 check that `ros2 pkg create` packages carry, with the project's configuration (setup.cfg)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8() -> None:
    main_with_errors = pytest.importorskip(
        "ament_flake8.main", reason="ament_flake8 is not installed: run tools/setup.sh"
    ).main_with_errors
    paths = [str(ROOT / p) for p in ("sc_mllm_ros", "test", "launch", "setup.py")]
    rc, errors = main_with_errors(argv=["--config", str(ROOT / "setup.cfg"), *paths])
    assert rc == 0, f"Found {len(errors)} code style errors / warnings:\n" + "\n".join(errors)
