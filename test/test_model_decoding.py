import numpy as np
import pytest
import torch

from sc_mllm_ros.model import CAUSES, LLMConfig, SCMLLM, SCMLLMConfig, TokenizerConfig, VisionConfig
from sc_mllm_ros.model.codec import parse_failure_text, parse_pose_text
from sc_mllm_ros.model.decoding import AnswerConstraint
from sc_mllm_ros.model.prompts import answer_segments
from sc_mllm_ros.model.synthetic import scene

torch.set_num_threads(1)


def tiny(kind: str, seed: int) -> SCMLLM:
    torch.manual_seed(seed)
    cfg = SCMLLMConfig(
        vision=VisionConfig(image_size=64, width=16),
        tokenizer=TokenizerConfig(kind=kind),
        llm=LLMConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128),
    )
    model = SCMLLM(cfg)
    # Random, non-zero adapters so they take part in the forward pass.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.normal_(0, 0.2)
    return model


@pytest.mark.parametrize("kind", ["numbers", "bpe"])
def test_constrained_answers_parse_from_random_weights(kind):
    rng = np.random.default_rng(1)
    for seed in range(3):
        model = tiny(kind, seed)
        rgb, contact, up, fwd = scene(rng, (90, 120))
        pose = model.predict_pose(rgb, "cabinet door")
        vals = parse_pose_text(pose.text)
        assert 0 <= pose.contact[0] <= 89 and 0 <= pose.contact[1] <= 119
        assert np.isclose(np.linalg.norm(pose.up), 1) and np.isclose(np.linalg.norm(pose.forward), 1)
        assert abs(np.dot(pose.up, pose.forward)) <= 0.55  # the grammar keeps them far from parallel
        assert vals["row"] == pose.values["row"]
        corr = model.correct(rgb, "drawer", contact, up, fwd)
        parse_pose_text(corr.text)
        fail = model.detect_failure(rgb, "microwave door", contact, up, fwd)
        assert fail.cause in CAUSES and parse_failure_text(fail.text) == fail.cause


@pytest.mark.parametrize("kind", ["numbers", "bpe"])
def test_prefilled_decoder_equals_tokenwise_constrained_greedy(kind):
    rng = np.random.default_rng(2)
    for seed in range(4):
        model = tiny(kind, 10 + seed)
        rgb, contact, up, fwd = scene(rng)
        for call in (
            lambda m, meth, rgb=rgb: m.predict_pose(rgb, "drawer", method=meth),
            lambda m, meth, a=(rgb, "drawer", contact, up, fwd): m.correct(*a, method=meth),
            lambda m, meth, a=(rgb, "drawer", contact, up, fwd): m.detect_failure(*a, method=meth),
        ):
            slow, fast = call(model, "tokenwise"), call(model, "prefilled")
            assert fast.text == slow.text
            assert fast.forward_passes < slow.forward_passes
        pose = model.predict_pose(rgb, "drawer")
        if kind == "numbers":
            assert pose.forward_passes <= 8  # at most one per number slot: the template text is prefilled


def test_constraint_rejects_tokens_outside_the_grammar():
    model = tiny("numbers", 0)
    c = AnswerConstraint(answer_segments("pose"), model.tokenizer)
    first = c.allowed()
    assert len(first) == 1
    with pytest.raises(ValueError, match="not allowed"):
        c.advance(first[0] + 1)
