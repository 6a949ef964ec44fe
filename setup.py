from glob import glob

from setuptools import find_packages, setup

package_name = "sc_mllm_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "sc_mllm_msgs*", "build*", "install*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.rviz")),
        ("share/" + package_name + "/gazebo", glob("gazebo/*")),
    ],
    include_package_data=True,
    package_data={package_name: ["assets/**/*", "assets/*"]},
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="sc_mllm_ros maintainers",
    maintainer_email="maintainers@sc-mllm-ros.org",
    description="SC-MLLM: a self-correcting multimodal LLM manipulation policy for ROS 2",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "sc-mllm = sc_mllm_ros.cli:main",
            "model_host = sc_mllm_ros.nodes.model_host:main",
            "executor_node = sc_mllm_ros.nodes.executor:main",
            "sim_node = sc_mllm_ros.nodes.sim_node:main",
            "learner_node = sc_mllm_ros.nodes.learner:main",
        ],
    },
)
