"""The paper-size loading path (local CLIP file + local Hugging Face LLaMA directory) on a tiny stand-in."""

import json

import numpy as np
import open_clip
import pytest
from safetensors.torch import load_file
from tokenizers import models, pre_tokenizers, Tokenizer, trainers
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from sc_mllm_ros.model import SCMLLM, SCMLLMConfig
from sc_mllm_ros.model.codec import parse_pose_text
from sc_mllm_ros.model.prompts import POSE_ANSWER, WRAPPER

torch.set_num_threads(1)

CLIP_ARCH = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 56, "layers": 2, "width": 64, "patch_size": 14, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    root = tmp_path_factory.mktemp("standin")
    # A "LLaMA" directory in the Hugging Face layout: config.json, model.safetensors, tokenizer.json.
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(
        [WRAPPER, POSE_ANSWER, "0123456789 -,.[]"] * 3,
        trainer=trainers.BpeTrainer(
            vocab_size=300,
            special_tokens=["<unk>", "<s>", "</s>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    llama_dir = root / "llama"
    torch.manual_seed(0)
    llm = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=tok.get_vocab_size(),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            bos_token_id=1,
            eos_token_id=2,
        )
    )
    llm.save_pretrained(llama_dir)
    tok.save(str(llama_dir / "tokenizer.json"))
    # A CLIP: an open_clip architecture file and a weights file.
    (root / "clip.json").write_text(json.dumps(CLIP_ARCH))
    open_clip.factory._MODEL_CONFIGS["standin-vit"] = CLIP_ARCH
    clip = open_clip.create_model("standin-vit")
    torch.save(clip.state_dict(), root / "clip.pt")
    return root


def test_loads_local_clip_and_llama_and_answers(standin):
    cfg = SCMLLMConfig.paper_size(
        clip_pretrained=str(standin / "clip.pt"), llama_dir=str(standin / "llama"), clip_model="standin-vit"
    )
    cfg.vision.clip_model_config = str(standin / "clip.json")
    cfg.vision.image_size = 56
    model = SCMLLM(cfg)
    # The weights are the files' weights, not a fresh init.
    llm_file = load_file(str(standin / "llama" / "model.safetensors"))
    emb = model.base_llm.get_input_embeddings().weight
    assert torch.equal(emb, llm_file["model.embed_tokens.weight"])
    clip_file = torch.load(standin / "clip.pt")
    assert torch.equal(model.tower.net.conv1.weight, clip_file["visual.conv1.weight"])
    assert model.tower.num_tokens == 16 and model.tokenizer.vocab_size == emb.shape[0]
    assert model.tokenizer.eos_id == 2 and not model.tokenizer.has_number_tokens
    # Only adapter parameters train by default at this size.
    assert all(model.is_adapter_param(n) for n, p in model.named_parameters() if p.requires_grad)
    rgb = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    ans = model.predict_pose(rgb, "drawer")
    parse_pose_text(ans.text)
    assert ans.text == model.predict_pose(rgb, "drawer", method="tokenwise").text


def test_missing_local_files_fail_clearly(standin, tmp_path):
    cfg = SCMLLMConfig.paper_size(
        clip_pretrained=str(tmp_path / "nope.pt"), llama_dir=str(standin / "llama"), clip_model="standin-vit"
    )
    cfg.vision.clip_model_config = str(standin / "clip.json")
    with pytest.raises(ValueError, match="does not exist"):
        SCMLLM(cfg)
    cfg = SCMLLMConfig.paper_size(
        clip_pretrained=str(standin / "clip.pt"), llama_dir=str(tmp_path), clip_model="standin-vit"
    )
    cfg.vision.clip_model_config = str(standin / "clip.json")
    with pytest.raises((ValueError, OSError)):
        SCMLLM(cfg)
