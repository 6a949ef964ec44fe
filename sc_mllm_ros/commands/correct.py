"""``sc-mllm correct``: a small client of ``/request_correction`` for people without ros2cli.

The same as ``ros2 service call /request_correction sc_mllm_msgs/srv/RequestCorrection "{...}"``.
"""

from __future__ import annotations

import argparse


def _vector(text: str) -> list[float]:
    values = [float(v) for v in text.replace(",", " ").split()]
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers 'x,y,z', got {text!r}")
    return values


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--episode", default="", help="episode id to correct (default: the latest)")
    p.add_argument("--feedback", default="", help="the expert's free-text feedback")
    p.add_argument("--contact", type=int, nargs=2, metavar=("ROW", "COL"), help="candidate contact pixel")
    p.add_argument("--up", type=_vector, help="candidate gripper up (approach) direction 'x,y,z' (camera)")
    p.add_argument("--forward", type=_vector, help="candidate gripper forward direction 'x,y,z' (camera)")
    p.add_argument("--auto", action="store_true", help="ask the simulation's automatic experts for hints")
    p.add_argument(
        "--execute",
        action="store_true",
        help="execute the corrected pose; the verdict follows on /sc_mllm/failure_report",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the answer")


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import MultiThreadedExecutor

    from sc_mllm_msgs.srv import RequestCorrection
    from sc_mllm_ros import names
    from sc_mllm_ros.nodes.conversions import vector3

    if (args.up is None) != (args.forward is None):
        print("give both --up and --forward (a direction hint is the pair)")
        return 2
    req = RequestCorrection.Request(
        episode_id=args.episode, feedback=args.feedback, use_automatic_experts=args.auto, execute=args.execute
    )
    if args.contact:
        req.has_contact_hint, (req.contact_row, req.contact_col) = True, args.contact
    if args.up is not None:
        req.has_direction_hint, req.up, req.forward = True, vector3(args.up), vector3(args.forward)
    rclpy.init()
    node = rclpy.create_node("sc_mllm_correct_cli")
    try:
        client = node.create_client(RequestCorrection, names.REQUEST_CORRECTION)
        if not client.wait_for_service(timeout_sec=min(args.timeout, 10.0)):
            print(f"{client.srv_name} is not available: start the graph first (sc-mllm bringup)")
            return 1
        future = client.call_async(req)
        executor = MultiThreadedExecutor()
        executor.add_node(node)
        executor.spin_until_future_complete(future, timeout_sec=args.timeout)
        if not future.done():
            print(f"no answer within {args.timeout:.0f} s")
            return 1
        res = future.result()
        print(res.message)
        if res.accepted:
            print(f"answer: {res.answer_text}")
            p = res.corrected_pose.pose.position
            print(f"corrected pose ({res.corrected_pose.header.frame_id}): {p.x:.3f} {p.y:.3f} {p.z:.3f}")
        return 0 if res.accepted else 1
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
