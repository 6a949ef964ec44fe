import json

import numpy as np
import pytest
import torch

from sc_mllm_ros.model import (
    AdapterEMA,
    LLMConfig,
    OnlineLearner,
    SCMLLM,
    SCMLLMConfig,
    TrainConfig,
    VisionConfig,
)
from sc_mllm_ros.model.data import encode_sample, load_encoded
from sc_mllm_ros.model.synthetic import samples, write_dataset
from sc_mllm_ros.model.training import evaluate, seed_everything, train_model, Trainer

torch.set_num_threads(1)


def cfg(**train) -> SCMLLMConfig:
    t = {
        "stage1_steps": 20,
        "steps": 160,
        "batch_size": 6,
        "lr": 3e-3,
        "warmup_steps": 10,
        "soft_targets": False,
    }
    t.update(train)
    return SCMLLMConfig(
        vision=VisionConfig(image_size=64, width=16),
        train=TrainConfig(**t),
        llm=LLMConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128),
    )


def test_overfits_a_handful_of_samples_of_each_family():
    c = cfg()
    tok = SCMLLM(c).tokenizer
    enc = [encode_sample(s, tok, c) for s in samples(6, seed=3)]
    assert {e.family for e in enc} == {"pose", "failure", "correction"}
    model, losses, _ = train_model(c, enc, progress=False)
    assert np.mean(losses[-10:]) < 0.1 * np.mean(losses[:10])
    res = evaluate(model, enc, progress=False)
    assert res["contact_px_mean"] == 0.0 and res["up_deg"] == 0.0 and res["forward_deg"] == 0.0
    assert res["failure_accuracy"] == 1.0
    assert res["baseline_mean_contact_px"] > 20


def test_soft_targets_train_too():
    c = cfg(soft_targets=True, steps=60, stage1_steps=0)
    tok = SCMLLM(c).tokenizer
    enc = [encode_sample(s, tok, c) for s in samples(3, seed=4)]
    _, losses, _ = train_model(c, enc, progress=False)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    c = cfg(stage1_steps=3, steps=6, save_every=4, precision="fp32")
    tok = SCMLLM(c).tokenizer
    enc = [encode_sample(s, tok, c) for s in samples(6, seed=5)]
    seed_everything(0)
    full = SCMLLM(c)
    Trainer(full, enc).run(progress=False)
    seed_everything(0)
    part = SCMLLM(c)
    tr = Trainer(part, enc, tmp_path)
    real_step = tr.step

    def crashing_step():
        if tr.state.stage == 2 and tr.state.step == 5:  # a crash after the checkpoint of stage-2 step 4
            raise KeyboardInterrupt
        return real_step()

    tr.step = crashing_step
    with pytest.raises(KeyboardInterrupt):
        tr.run(progress=False)
    resumed = Trainer.resume(tmp_path, enc)
    assert resumed.state.step == 4
    resumed.run(progress=False)
    a, b = full.state_dict(), resumed.model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_ema_matches_hand_computation():
    s0 = {"a": torch.tensor([1.0, 2.0]), "b": torch.tensor([[0.0]])}
    ema = AdapterEMA(s0, decay=0.9)
    ema.update({"a": torch.tensor([3.0, 0.0]), "b": torch.tensor([[10.0]])})
    ema.update({"a": torch.tensor([0.0, 0.0]), "b": torch.tensor([[0.0]])})
    # a: 0.9*(0.9*1 + 0.1*3) + 0 = 1.08 ; 0.9*(0.9*2) = 1.62 ; b: 0.9*(0.1*10) = 0.9
    assert torch.allclose(ema.state_dict()["a"], torch.tensor([1.08, 1.62]))
    assert torch.allclose(ema.state_dict()["b"], torch.tensor([[0.9]]))
    with pytest.raises(ValueError):
        AdapterEMA(s0, decay=1.0)


def test_online_learner_trains_adapters_only_and_leaves_the_ema_in_the_model():
    c = cfg()
    model = SCMLLM(c)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapter_before = model.adapter_state_dict()
    learner = OnlineLearner(model, lr=1e-2, ema_decay=0.5, steps_per_update=2, precision="fp32")
    params_before = {id(p) for p in model.parameters()}
    loss = learner.update(samples(3, seed=6))
    assert np.isfinite(loss) and learner.version == 1
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(model.is_adapter_param(k) for k in changed)
    served = model.adapter_state_dict()
    for k in served:  # served = 0.5 * initial + 0.5 * trained weights
        assert torch.allclose(served[k], 0.5 * adapter_before[k] + 0.5 * learner.trainee[k], atol=1e-6)
    assert any(not torch.equal(served[k], learner.trainee[k]) for k in served)
    # The second update continues from the trainee's weights, not from the served EMA.
    trained = {k: v.clone() for k, v in learner.trainee.items()}
    learner.update(samples(3, seed=7))
    served2 = model.adapter_state_dict()
    for k in served2:
        assert torch.allclose(served2[k], 0.5 * served[k] + 0.5 * learner.trainee[k], atol=1e-6)
    assert any(not torch.equal(trained[k], learner.trainee[k]) for k in trained)
    # No second model: the learner trains the parameters of the model it was given.
    assert {id(p) for p in learner.params} <= params_before


def test_precision_follows_the_hardware_unless_forced(monkeypatch):
    from sc_mllm_ros.model import precision

    assert precision.resolve("fp32") == "fp32" and precision.resolve("bf16") == "bf16"
    for native in (False, True):
        monkeypatch.setattr(precision, "cpu_features", lambda n=native: {"avx512_bf16": n, "amx_tile": False})
        assert precision.resolve("auto", "cpu") == ("bf16" if native else "fp32")
        assert ("-> training precision auto = " + ("bf16" if native else "fp32")) in precision.describe("cpu")
    with pytest.raises(ValueError):
        precision.resolve("fp16")
    assert SCMLLMConfig().train.precision == "auto"
    legacy = SCMLLMConfig().to_dict()
    legacy["train"] = {k: v for k, v in legacy["train"].items() if k != "precision"} | {"bf16": True}
    assert SCMLLMConfig.from_dict(legacy).train.precision == "auto"


def _perturb_adapter(model: SCMLLM) -> None:
    with torch.no_grad():
        for n, p in model.named_parameters():
            if model.is_adapter_param(n):
                p.add_(torch.randn_like(p) * 0.3)


def test_adapter_save_load_restores_outputs_and_torn_save_keeps_last_good(tmp_path, monkeypatch):
    model = SCMLLM(cfg())
    _perturb_adapter(model)
    rgb = samples(1, seed=7)[0].rgb
    ref = model.predict_pose(rgb, "drawer").text
    path = tmp_path / "adapter"
    model.save_adapter(path)
    assert {p.name for p in path.iterdir()} == {"adapter_config.json", "adapter_model.safetensors"}
    fresh = SCMLLM(cfg())
    fresh.load_full_state(
        {k: v for k, v in model.state_dict().items() if not model.is_adapter_param(k)}
        | {k: torch.zeros_like(v) for k, v in model.adapter_state_dict().items()}
    )
    fresh.load_adapter(path)
    assert fresh.predict_pose(rgb, "drawer").text == ref
    # A save that dies half-way through writing leaves the previous folder intact and loadable.
    import sc_mllm_ros.model.network as net

    def torn(state, tmp, metadata=None):
        with open(tmp, "wb") as f:
            f.write(b"half a header")
        raise OSError("disk full")

    monkeypatch.setattr(net, "save_file", torn)
    with pytest.raises(OSError):
        fresh.save_adapter(path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]
    other = SCMLLM(cfg())
    other.load_full_state(fresh.state_dict())
    other.load_adapter(path)
    assert other.predict_pose(rgb, "drawer").text == ref
    with pytest.raises(ValueError, match="not a peft adapter directory"):
        other.load_adapter(tmp_path)
    c = cfg()
    c.adapter.lora_r = 4
    with pytest.raises(ValueError, match="shape"):
        SCMLLM(c).load_adapter(path)


def test_adapter_folder_is_what_peft_loads_onto_the_plain_llm(tmp_path):
    import copy

    from peft import PeftModel

    model = SCMLLM(cfg())
    plain = copy.deepcopy(model.llm).unload()  # the LLM without any adapter layers, base weights unchanged
    _perturb_adapter(model)
    model.save_adapter(tmp_path / "adapter")
    loaded = PeftModel.from_pretrained(plain, tmp_path / "adapter").eval()
    emb = torch.randn(2, 7, model.dim)
    with torch.no_grad():
        want = model.base_llm(inputs_embeds=emb).logits
        got = loaded(inputs_embeds=emb).logits
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(plain.model.norm.weight, torch.ones_like(plain.model.norm.weight))


def test_full_checkpoint_round_trip(tmp_path):
    model = SCMLLM(cfg())
    rgb = samples(1, seed=8)[0].rgb
    model.save_pretrained(tmp_path / "ckpt")
    assert {p.name for p in (tmp_path / "ckpt").iterdir()} == {
        "model.safetensors",
        "config.json",
        "tokenizer.json",
    }
    loaded = SCMLLM.from_pretrained(tmp_path / "ckpt")
    assert loaded.predict_pose(rgb, "drawer").text == model.predict_pose(rgb, "drawer").text
    a, b = model.state_dict(), loaded.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_dataset_reader_and_train_command(tmp_path, capsys):
    from sc_mllm_ros.commands import train as train_cmd

    data = write_dataset(tmp_path / "data", n=6, hw=(60, 80))
    c = cfg()
    enc = load_encoded(data, "train", SCMLLM(c).tokenizer, c)
    assert len(enc) == 6 and {e.family for e in enc} == {"pose", "failure", "correction"}
    import argparse

    parser = argparse.ArgumentParser()
    train_cmd.add_arguments(parser)
    args = parser.parse_args(
        [
            "--data",
            str(data),
            "--out",
            str(tmp_path / "out"),
            "--stage1-steps",
            "2",
            "--steps",
            "3",
            "--size",
            "tiny",
            "--batch-size",
            "4",
            "--eval-limit",
            "3",
            "--no-progress",
        ]
    )
    assert train_cmd.run(args) == 0
    model = SCMLLM.from_pretrained(tmp_path / "out" / "model")
    assert (tmp_path / "out" / "adapter" / "adapter_config.json").is_file()
    provenance = json.loads((tmp_path / "out" / "model" / "training.json").read_text())
    assert provenance["precision"] in ("bf16", "fp32")
    assert "precision auto" in provenance["precision_hardware"]
    assert model.predict_pose(np.zeros((60, 80, 3), np.uint8), "drawer").text.startswith(
        "The contact point is ["
    )
    args.resume, args.steps = True, 5
    assert train_cmd.run(args) == 0

    # A new round from the trained weights, its checker given the change view: stage 2 only, fresh schedule.
    args.resume, args.steps, args.init_from = False, 2, str(tmp_path / "out" / "model")
    args.out, args.checker_views = str(tmp_path / "round"), "before_after_change"
    assert train_cmd.run(args) == 0
    assert "stage 1" not in capsys.readouterr().out.split("stage 2")[-1]
    model = SCMLLM.from_pretrained(tmp_path / "round" / "model")
    assert model.config.checker_views == "before_after_change" and model.config.train.stage1_steps == 0
    provenance = json.loads((tmp_path / "round" / "model" / "training.json").read_text())
    assert provenance["init_from"] == args.init_from


def test_the_train_command_offers_every_checker_view():
    from sc_mllm_ros.commands import train as train_cmd
    from sc_mllm_ros.model.config import CHECKER_VIEWS

    assert train_cmd.CHECKER_VIEWS == CHECKER_VIEWS


def test_checker_threshold_maximises_balanced_accuracy_against_brute_force():
    from sc_mllm_ros.model.training import choose_threshold, detection_rates

    rng = np.random.default_rng(0)
    for _ in range(20):
        failed = rng.random(30) < 0.4
        failed[:2] = [True, False]
        p = np.clip(np.where(failed, rng.normal(0.3, 0.2, 30), rng.normal(0.7, 0.2, 30)), 0, 1)
        t = choose_threshold(p, failed)
        best = max(detection_rates(p, failed, x)["balanced_accuracy"] for x in np.linspace(0, 1.0001, 2001))
        assert detection_rates(p, failed, t)["balanced_accuracy"] == pytest.approx(best)
    separable = np.array([0.1, 0.2, 0.8, 0.9])
    rates = detection_rates(
        separable,
        np.array([True, True, False, False]),
        choose_threshold(separable, np.array([True, True, False, False])),
    )
    assert rates["recall"] == rates["precision"] == rates["specificity"] == 1.0
    with pytest.raises(ValueError, match="both"):
        choose_threshold(separable, np.ones(4, bool))
