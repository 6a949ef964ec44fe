"""``sc-mllm correct``: a small client of ``/request_correction`` for people without ros2cli.

The same as ``ros2 service call /request_correction sc_mllm_msgs/srv/RequestCorrection "{...}"``. With
``--candidate K`` it first asks ``/sc_mllm/expert_hints`` for the position expert's candidates and sends the
K-th (0 = the best) as the contact hint: a person without rviz chooses among the expert's points.
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
    p.add_argument(
        "--candidate",
        type=int,
        metavar="K",
        help="contact = the position expert's K-th candidate (0: the best; see /sc_mllm/expert_hints)",
    )
    p.add_argument("--auto", action="store_true", help="ask the automatic RGB-D experts for hints")
    p.add_argument(
        "--execute",
        action="store_true",
        help="execute the corrected pose; the verdict follows on /sc_mllm/failure_report",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the answer")


def _call(node, executor, srv_type, name: str, req, timeout: float):
    """The service's answer, or None (said why) when it is not there or does not answer in time."""
    client = node.create_client(srv_type, name)
    if not client.wait_for_service(timeout_sec=min(timeout, 10.0)):
        print(f"{client.srv_name} is not available: start the graph first (sc-mllm bringup)")
        return None
    future = client.call_async(req)
    executor.spin_until_future_complete(future, timeout_sec=timeout)
    if not future.done():
        print(f"no answer from {client.srv_name} within {timeout:.0f} s")
        return None
    return future.result()


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import MultiThreadedExecutor

    from sc_mllm_msgs.srv import ExpertHints, RequestCorrection
    from sc_mllm_ros import names
    from sc_mllm_ros.nodes.conversions import vector3

    if (args.up is None) != (args.forward is None):
        print("give both --up and --forward (a direction hint is the pair)")
        return 2
    if args.candidate is not None and (args.contact or args.candidate < 0):
        print("--candidate K (K >= 0) replaces --contact; give one of them")
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
        executor = MultiThreadedExecutor()
        executor.add_node(node)
        if args.candidate is not None:
            hints = _call(
                node,
                executor,
                ExpertHints,
                names.EXPERT_HINTS,
                ExpertHints.Request(episode_id=args.episode, k=args.candidate + 1),
                args.timeout,
            )
            if hints is None:
                return 1
            if not hints.ok or args.candidate >= len(hints.candidate_rows):
                print(hints.message if not hints.ok else f"no candidate {args.candidate}: {hints.message}")
                return 1
            k = args.candidate
            req.episode_id = hints.episode_id  # the episode the candidates were computed on
            req.has_contact_hint, req.contact_row, req.contact_col = (
                True,
                hints.candidate_rows[k],
                hints.candidate_cols[k],
            )
            if not req.feedback:
                req.feedback = f"the position expert's candidate {k}"
            print(f"candidate {k}: contact ({req.contact_row}, {req.contact_col})")
        res = _call(node, executor, RequestCorrection, names.REQUEST_CORRECTION, req, args.timeout)
        if res is None:
            return 1
        print(res.message)
        if res.accepted:
            print(f"answer: {res.answer_text}")
            p = res.corrected_pose.pose.position
            print(f"corrected pose ({res.corrected_pose.header.frame_id}): {p.x:.3f} {p.y:.3f} {p.z:.3f}")
        return 0 if res.accepted else 1
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
