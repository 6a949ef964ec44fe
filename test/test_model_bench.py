"""``sc-mllm bench model --paper-size``: the paper-size path (local files, random weights) at a toy size."""

import argparse
import re

import torch

from sc_mllm_ros.model import bench

torch.set_num_threads(1)


def test_paper_size_bench_builds_from_local_files_and_prints_every_measure(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(
        ["--paper-size", "--paper-shape", "tiny", "--device", "cpu", "--repeats", "2"]
        + ["--workdir", str(tmp_path)]
    )
    assert bench.run(args) == 0
    out = capsys.readouterr().out
    # The files a real run loads: a CLIP weights file and a Hugging Face LLaMA folder.
    assert (tmp_path / "clip.pt").is_file() and (tmp_path / "llama" / "config.json").is_file()
    for row in ("plain greedy generate", "constrained template-prefilled", "checker (detect_failure)"):
        line = next(line for line in out.splitlines() if line.startswith(row))
        p50, p95, rate = (float(v) for v in line[len(row) :].split())
        assert 0 < p50 <= p95 and rate > 0
    assert re.search(r"online update \(8 samples.*\): \d+\.\d+ s", out)


def test_a_goal_line_says_met_or_by_how_much_it_is_missed_and_carries_the_reason():
    assert bench.goal_line("raw call", 40.0, 50.0, "ms").endswith("goal <= 50 ms: met")
    missed = bench.goal_line("raw call", 60.0, 50.0, "ms", "a shared core")
    assert "MISSED by 10 ms (+20%); a shared core" in missed
    assert "the rest is waiting for a shared core" in bench.cpu_note(0.08, 0.04, 0.05)
    assert "waiting" not in bench.cpu_note(0.08, 0.07, 0.05)  # CPU time alone misses it
