"""``sc-mllm bench model``: train-step time (fp32 vs bf16) and pose-answer latency of three decoders.

Decoders measured in the same run on the same images: plain greedy ``generate`` (unconstrained, Hugging Face),
constrained token-by-token greedy, and the template-prefilling constrained decoder.  Ratios are printed
against plain ``generate``.  Uses the shipped model unless ``--checkpoint`` says otherwise (latency does
not depend on the weights, the parse rate of plain ``generate`` does).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sc_mllm_ros.assets import DEFAULT_MODEL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        default=str(DEFAULT_MODEL),
        help="a model folder from `sc-mllm train` (default: the shipped model; '' for random init)",
    )
    parser.add_argument("--repeats", type=int, default=20, help="answers per decoder")
    parser.add_argument("--train-steps", type=int, default=5, help="timed train steps per precision")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)


def _timed(fn, n: int) -> tuple[np.ndarray, list]:
    times, outs = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        outs.append(fn())
        times.append(time.perf_counter() - t0)
    return np.array(times), outs


def run(args: argparse.Namespace) -> int:
    import torch

    from sc_mllm_ros.model import SCMLLM
    from sc_mllm_ros.model.codec import parse_pose_text
    from sc_mllm_ros.model.data import encode_sample, prompt_values
    from sc_mllm_ros.model.prompts import prompt_segments
    from sc_mllm_ros.model.synthetic import samples
    from sc_mllm_ros.model.training import Trainer
    from sc_mllm_ros.model.vision import preprocess

    torch.set_num_threads(args.threads)
    model = SCMLLM.from_pretrained(args.checkpoint) if args.checkpoint else SCMLLM()
    cfg = model.config
    print(f"model: {model.trainable_summary()}; threads {args.threads}")

    # -- train steps ---------------------------------------------------------------------------------------
    data = [
        encode_sample(s, model.tokenizer, cfg)
        for s in samples(max(args.batch_size, 6), seed=0, hw=(240, 320))
    ]
    step_time = {}
    for prec in ("fp32", "bf16"):
        trainee = model.clone()
        trainee.config.train.precision = prec
        trainee.config.train.batch_size = args.batch_size
        trainee.config.train.stage1_steps = 0
        tr = Trainer(trainee, data)
        tr.state.stage = 2
        tr._make_opt()
        tr.step()  # warm-up
        t, _ = _timed(tr.step, args.train_steps)
        step_time[prec] = float(np.median(t))
    print(
        f"train step (batch {args.batch_size}, stage 2, all parameters): fp32 {step_time['fp32']:.3f} s, "
        f"bf16 {step_time['bf16']:.3f} s (bf16/fp32 = {step_time['bf16'] / step_time['fp32']:.2f})"
    )

    # -- decoding --------------------------------------------------------------------------------------------
    rgbs = [s.rgb for s in samples(args.repeats, seed=1, hw=(240, 320))]
    it = iter(range(10**9))

    def plain():
        rgb = rgbs[next(it) % len(rgbs)]
        values = prompt_values("pose", "drawer", rgb.shape[:2], cfg.answer_size)
        ids, _ = model.tokenizer.encode_segments(prompt_segments("pose", cfg.answer_size), values)
        with torch.inference_mode():
            prefix = model.prefix_embeds(preprocess(rgb, cfg.vision)[None], ids)
            out = model.base_llm.generate(
                inputs_embeds=prefix,
                max_new_tokens=cfg.max_answer_tokens,
                do_sample=False,
                eos_token_id=model.tokenizer.eos_id,
                pad_token_id=model.tokenizer.pad_id,
            )
        new = out[0].tolist()
        new = new[: new.index(model.tokenizer.eos_id)] if model.tokenizer.eos_id in new else new
        try:
            text = model.tokenizer.tok.decode(new)
            if model.tokenizer.has_number_tokens:
                text = text.replace("<", "").replace(">", "")
            parse_pose_text(text)
            ok = True
        except ValueError:
            ok = False
        return len(new) + 1, ok

    rows = []
    for name, fn in (
        ("plain greedy generate", plain),
        (
            "constrained token-by-token",
            lambda: model.predict_pose(rgbs[next(it) % len(rgbs)], "drawer", method="tokenwise"),
        ),
        (
            "constrained template-prefilled",
            lambda: model.predict_pose(rgbs[next(it) % len(rgbs)], "drawer", method="prefilled"),
        ),
    ):
        fn()  # warm-up
        t, outs = _timed(fn, args.repeats)
        if name.startswith("plain"):
            passes = np.mean([o[0] for o in outs])
            parse = np.mean([o[1] for o in outs])
        else:
            passes, parse = np.mean([o.forward_passes for o in outs]), 1.0
        rows.append((name, np.percentile(t, 50) * 1e3, np.percentile(t, 95) * 1e3, passes, parse))
    base = rows[0][1]
    print(
        f"\npose answer latency at batch 1 ({args.repeats} answers each, "
        f"{cfg.vision.image_size} px tower input):"
    )
    print(f"{'decoder':<32} {'p50 ms':>8} {'p95 ms':>8} {'passes':>7} {'parse':>6} {'p50 vs plain':>13}")
    for name, p50, p95, passes, parse in rows:
        print(f"{name:<32} {p50:8.1f} {p95:8.1f} {passes:7.1f} {parse:6.0%} {p50 / base:12.2f}x")
    return 0
