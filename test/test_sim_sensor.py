"""The RealSense-like sensor model and the robust lifting the policy, experts and checker use on it."""

import numpy as np
import pytest

from sc_mllm_ros.geometry import CameraIntrinsics, deproject, lift_pixel, local_normal
from sc_mllm_ros.sim.world import depth_noise, MAX_RANGE

INTR = CameraIntrinsics.from_fov(45.0, 64, 64)


def _tilted_plane(depth0: float = 1.0, slope: float = 0.3) -> np.ndarray:
    """Depth of the plane z = depth0 + slope * x (camera frame), per pixel."""
    rows, cols = np.mgrid[0:64, 0:64]
    xn = (cols - INTR.cx) / INTR.fx
    return (depth0 / (1 - slope * xn)).astype(np.float32)


def test_noise_follows_the_realsense_model():
    rng = np.random.default_rng(0)
    flat = np.full((200, 200), 2.0, np.float32)
    noisy = depth_noise(flat, rng, dropout=0.03)
    lost = np.isnan(noisy).mean()
    assert 0.02 < lost < 0.04  # random dropout only: a flat wall has no depth edges
    sigma = 0.0012 + 0.0019 * (2.0 - 0.4) ** 2
    assert np.nanstd(noisy) == pytest.approx(sigma, rel=0.1)
    step = np.where(np.arange(200)[None, :] < 100, 1.0, 3.0).astype(np.float32) * np.ones(
        (200, 1), np.float32
    )
    edges = np.isnan(depth_noise(step, rng, dropout=0.0))
    assert edges[:, 99:101].mean() > 0.5 and edges[:, :90].mean() == 0.0  # the depth edge loses returns
    assert np.isnan(depth_noise(np.full((4, 4), MAX_RANGE + 1, np.float32), rng, 0.0)).all()


def test_lifting_is_robust_to_dropout_and_noise():
    clean = _tilted_plane()
    rng = np.random.default_rng(1)
    noisy = depth_noise(clean, rng, dropout=0.05)
    pixel = (30.0, 33.0)
    noisy[30, 33] = np.nan  # the pixel itself is lost
    truth = deproject(pixel, float(clean[30, 33]), INTR)
    assert np.linalg.norm(lift_pixel(noisy, pixel, INTR) - truth) < 0.005
    n = local_normal(noisy, pixel, INTR)
    expected = np.array([0.3, 0.0, -1.0]) / np.linalg.norm([0.3, 0.0, -1.0])  # towards the camera
    assert np.degrees(np.arccos(np.clip(n @ expected, -1, 1))) < 5.0
    edge = lift_pixel(clean, (63.7, -0.4), INTR)  # border answers lift at the nearest inside pixel
    np.testing.assert_allclose(edge, deproject((63.7, -0.4), float(clean[63, 0]), INTR), atol=0.005)
    with pytest.raises(ValueError, match="no depth"):
        lift_pixel(np.full((8, 8), np.nan, np.float32), (4, 4), INTR)
