import numpy as np
import pytest
import torch

from sc_mllm_ros.model import CAUSES, LLMConfig, SCMLLM, SCMLLMConfig, TokenizerConfig, VisionConfig
from sc_mllm_ros.model.codec import parse_failure_text, parse_pose_text
from sc_mllm_ros.model.data import prompt_values
from sc_mllm_ros.model.decoding import allowed_values, AnswerConstraint
from sc_mllm_ros.model.prompts import answer_segments
from sc_mllm_ros.model.synthetic import scene
from sc_mllm_ros.model.vision import change_image, preprocess

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
        ):
            slow, fast = call(model, "tokenwise"), call(model, "prefilled")
            assert fast.text == slow.text
            assert fast.forward_passes < slow.forward_passes
        pose = model.predict_pose(rgb, "drawer")
        if kind == "numbers":
            assert pose.forward_passes <= 8  # at most one per number slot: the template text is prefilled


def _reference_choice(model: SCMLLM, prefix: torch.Tensor, texts: list[str]) -> np.ndarray:
    """Each answer scored by one plain forward pass over prefix + answer + EOS, no cache, no batching."""
    tok = model.tokenizer
    scores = []
    for text in texts:
        ids = [*tok.encode_text(text), tok.eos_id]
        emb = torch.cat([prefix, model.embed_ids(torch.tensor([ids]))], dim=1)
        lp = model.base_llm(inputs_embeds=emb).logits[0].float().log_softmax(-1)
        start = prefix.shape[1] - 1  # the logits at position i predict token i + 1
        scores.append(sum(lp[start + j, t].item() for j, t in enumerate(ids)))
    return torch.tensor(scores).softmax(0).numpy()


@pytest.mark.parametrize("kind", ["numbers", "bpe"])
def test_checker_scores_the_four_answers_exactly(kind):
    """The cached, batched scoring equals scoring each whole answer on its own; the threshold decides."""
    from sc_mllm_ros.model.prompts import FAILURE_ANSWERS
    from sc_mllm_ros.model.vision import preprocess

    rng = np.random.default_rng(3)
    model = tiny(kind, 30)
    rgb, contact, up, fwd = scene(rng)
    answer = model.detect_failure(rgb, "drawer", contact, up, fwd)
    texts = [FAILURE_ANSWERS[c] for c in CAUSES]
    with torch.inference_mode():
        values = prompt_values("failure", "drawer", rgb.shape[:2], 336, contact, up, fwd)
        prefix = model.prefix_embeds(
            preprocess(rgb, model.config.vision)[None], model._prompt_ids("failure", values)
        )
        reference = _reference_choice(model, prefix, texts)
    assert np.allclose([answer.probabilities[c] for c in CAUSES], reference, atol=1e-5)
    assert answer.success_probability == pytest.approx(float(reference[0]), abs=1e-5)
    always = model.detect_failure(rgb, "drawer", contact, up, fwd, threshold=0.0)
    never = model.detect_failure(rgb, "drawer", contact, up, fwd, threshold=1.0)
    assert always.cause == "success" and never.cause != "success"
    failures = {c: reference[i] for i, c in enumerate(CAUSES) if c != "success"}
    assert never.cause == max(failures, key=failures.get) and parse_failure_text(never.text) == never.cause


def test_before_after_checker_sees_the_initial_image():
    rng = np.random.default_rng(4)
    model = tiny("numbers", 31)
    model.config.checker_views = "before_after"
    rgb, contact, up, fwd = scene(rng)
    other, *_ = scene(rng)
    with pytest.raises(ValueError, match="initial image"):
        model.detect_failure(rgb, "drawer", contact, up, fwd)
    same = model.detect_failure(rgb, "drawer", contact, up, fwd, initial_rgb=rgb)
    changed = model.detect_failure(rgb, "drawer", contact, up, fwd, initial_rgb=other)
    assert not np.allclose(list(same.probabilities.values()), list(changed.probabilities.values()), atol=1e-6)


def test_the_change_view_is_grey_where_nothing_changed_and_adds_one_view_of_tokens():
    rng = np.random.default_rng(5)
    model = tiny("numbers", 32)
    rgb, contact, up, fwd = scene(rng)
    other, *_ = scene(rng)
    before, after = preprocess(rgb, model.config.vision)[None], preprocess(other, model.config.vision)[None]
    assert torch.all(change_image(before, before) == 128)
    d = after.int() - before.int()
    moved = change_image(before, after).int() - 128
    assert torch.equal(moved.sign(), d.sign()) and torch.all(moved.abs() >= d.abs().clamp(max=127))
    n = model.visual_embeds(before).shape[1]
    model.config.checker_views = "before_after"
    two = model.detect_failure(other, "drawer", contact, up, fwd, initial_rgb=rgb)
    assert model.views_embeds(after, before).shape[1] == 2 * n
    model.config.checker_views = "before_after_change"
    assert model.views_embeds(after, before).shape[1] == 3 * n
    three = model.detect_failure(other, "drawer", contact, up, fwd, initial_rgb=rgb)
    assert not np.allclose(list(two.probabilities.values()), list(three.probabilities.values()), atol=1e-6)


def test_constraint_rejects_tokens_outside_the_grammar():
    model = tiny("numbers", 0)
    c = AnswerConstraint(answer_segments("pose"), model.tokenizer)
    first = c.allowed()
    assert len(first) == 1
    with pytest.raises(ValueError, match="not allowed"):
        c.advance(first[0] + 1)


def _grid_oracle(slot: str, values: dict[str, int]) -> list[int]:
    """The admissible direction components by brute force over the whole 101^3 integer grid."""
    q = np.arange(-50, 51)
    x, y, z = np.meshgrid(q, q, q, indexing="ij")
    norm = np.sqrt(x * x + y * y + z * z)
    ok = (norm >= 45.0) & (norm <= 55.0)
    vec, axis = slot[0], "xyz".index(slot[1])
    if vec == "f":
        u = np.array([values["ux"], values["uy"], values["uz"]], dtype=float)
        u = u / np.linalg.norm(u)
        ok &= np.abs((x * u[0] + y * u[1] + z * u[2]) / np.maximum(norm, 1e-9)) <= 0.5
    for a in range(axis):
        ok = ok[values[vec + "xyz"[a]] + 50]
    keep = ok.reshape(ok.shape[0], -1).any(axis=1) if ok.ndim > 1 else ok
    return [int(v) for v in q[keep]]


def test_direction_slots_allow_exactly_the_brute_force_set():
    rng = np.random.default_rng(5)
    slots = {s.name: s for s in answer_segments("pose", 336) if not isinstance(s, str)}
    for _ in range(6):
        cache, values = {}, {}
        for name in ("ux", "uy", "uz", "fx", "fy", "fz"):
            allowed = allowed_values(slots[name], values, cache)
            assert allowed == _grid_oracle(name, values)
            values[name] = int(rng.choice(allowed))


def test_shipped_model_answers_equal_the_reference_decoder():
    """The serving decoder gives the shipped model's answers of constrained greedy, for both pose prompts.

    The reference is token-by-token constrained greedy through Hugging Face's forward with peft's
    unmerged LoRA modules (what the decoder computed before the lean forward).
    """
    from sc_mllm_ros.model.synthetic import samples

    model = SCMLLM.from_pretrained(None)  # None: the shipped model
    assert model.lean is not None  # "prefilled" is the serving path: merged LoRA, static cache
    up, fwd = np.array([0.0, 0.6, 0.8]), np.array([0.0, -0.8, 0.6])
    for s in samples(6, seed=21, hw=(240, 320)):
        for call in (
            lambda meth, r=s.rgb: model.predict_pose(r, "drawer", method=meth),
            lambda meth, r=s.rgb: model.correct(r, "drawer", (100, 120), up, fwd, method=meth),
        ):
            assert call("prefilled").text == call("tokenwise").text


def _passes(model: SCMLLM, step, rgb: np.ndarray) -> list[torch.Tensor]:
    """Logits of a prefill (prompt + 2 forced tokens), a 1-token pass and a 3-token pass through ``step``."""
    from sc_mllm_ros.model.vision import preprocess

    values = prompt_values("pose", "drawer", rgb.shape[:2], 336)
    with torch.inference_mode():
        prefix = model.prefix_embeds(
            preprocess(rgb, model.config.vision)[None], model._prompt_ids("pose", values)
        )
        out, cache = [], None
        for i, new in enumerate(([5, 6], [7], [8, 9, 10])):
            logits, cache = step(prefix if i == 0 else None, new, cache)
            out.append(logits)
    return out


def _assert_lean_equals_reference(model: SCMLLM, rgb: np.ndarray) -> None:
    for lean, ref in zip(_passes(model, model._lean_step, rgb), _passes(model, model._reference_step, rgb)):
        assert torch.allclose(lean, ref, atol=1e-4, rtol=1e-4)


def test_lean_forward_follows_adapter_swaps_and_training(tmp_path):
    """The merged-LoRA serving forward equals Hugging Face's + peft's after every change of the weights.

    A hot swap (``load_adapter``, as the model server does) and an optimiser step (as a learner that also
    served would) must both reach the served weights; serving must never merge into what trains or saves.
    """
    rng = np.random.default_rng(6)
    model, donor = tiny("numbers", 40), tiny("numbers", 41)
    rgb, *_ = scene(rng)
    _assert_lean_equals_reference(model, rgb)
    before = model.adapter_state_dict()
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "base_layer" in n}
    model.predict_pose(rgb, "drawer")
    assert all(torch.equal(before[n], t) for n, t in model.adapter_state_dict().items())
    assert all(torch.equal(base[n], p) for n, p in model.named_parameters() if "base_layer" in n)

    donor.save_adapter(tmp_path / "adapter")
    model.load_adapter(tmp_path / "adapter")
    _assert_lean_equals_reference(model, rgb)
    assert (
        model.predict_pose(rgb, "drawer").text == model.predict_pose(rgb, "drawer", method="tokenwise").text
    )

    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    ids = torch.tensor([[5, 6, 7, 8]])
    from sc_mllm_ros.model.vision import preprocess

    image = preprocess(rgb, model.config.vision)[None]
    model.text_logits(image, ids).logsumexp(-1).mean().backward()
    opt.step()
    _assert_lean_equals_reference(model, rgb)


@pytest.mark.parametrize("kind", ["numbers", "bpe"])
def test_lean_forward_serves_the_checker_and_correction(kind):
    """Checker and correction prompts take the same serving forward; without it they answer the same."""
    rng = np.random.default_rng(7)
    model = tiny(kind, 50)
    rgb, contact, up, fwd = scene(rng)
    fast = [
        model.detect_failure(rgb, "drawer", contact, up, fwd).probabilities,
        model.correct(rgb, "drawer", contact, up, fwd).text,
    ]
    model.lean = None  # what an adaption-prompt adapter serves with: Hugging Face's forward
    slow = [
        model.detect_failure(rgb, "drawer", contact, up, fwd).probabilities,
        model.correct(rgb, "drawer", contact, up, fwd).text,
    ]
    assert np.allclose(list(fast[0].values()), list(slow[0].values()), atol=1e-5)
    assert fast[1] == slow[1]
