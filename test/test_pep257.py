"""The pep257 check that `ros2 pkg create` packages carry.

The project writes docstring summaries on the first line (D212, as ruff enforces), so ament's D213 is
swapped for it, and imperative mood (D401) is not enforced.
"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257() -> None:
    main = pytest.importorskip(
        "ament_pep257.main", reason="ament_pep257 is not installed: run tools/setup.sh"
    ).main
    paths = [str(ROOT / p) for p in ("sc_mllm_ros", "test", "launch")]
    rc = main(argv=["--add-ignore", "D213", "D401", "D413", "--add-select", "D212", "--", *paths])
    assert rc == 0, "Found code style errors / warnings"
