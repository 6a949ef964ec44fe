"""``python -m sc_mllm_ros.sim.probe``: can MuJoCo render headless here? Prints its version if so.

``sc-mllm doctor`` runs it in a child process, since a broken GL driver can abort the interpreter.
"""

import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402

XML = '<mujoco><worldbody><light pos="0 0 1"/><geom size=".1"/></worldbody></mujoco>'


def main() -> int:
    model = mujoco.MjModel.from_xml_string(XML)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    with mujoco.Renderer(model, 32, 32) as renderer:
        renderer.update_scene(data)
        if renderer.render().shape != (32, 32, 3):
            return 1
    print(mujoco.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
