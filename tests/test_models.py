"""GPT, MLP and LoRA: shapes, loss, causality, weight tying, LoRA identity at init, gradients, merge."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.models import GPT, MLP, GPTConfig, LoRALinear, apply_lora, lora_parameters, merge_lora

# An odd shape on purpose: T < block_size, V not a power of two, C/H = 8.
CFG = GPTConfig(vocab_size=37, block_size=16, n_layer=2, n_head=3, n_embd=24)


def _model(cfg: GPTConfig = CFG, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(cfg).eval()


def _tokens(B: int = 3, T: int = 11, V: int = CFG.vocab_size, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def test_gpt_shapes_and_hidden():
    model = _model()
    idx = _tokens()
    out = model(idx)
    assert out.hidden.shape == (3, 11, CFG.n_embd)
    assert out.logits.shape == (3, 11, CFG.vocab_size)
    assert out.loss is None
    torch.testing.assert_close(model.forward_hidden(idx), out.hidden, rtol=0, atol=0)
    assert model.unembedding.shape == (CFG.vocab_size, CFG.n_embd)
    torch.testing.assert_close(out.hidden @ model.unembedding.T, out.logits)


def test_gpt_loss_is_cross_entropy_on_logits():
    model = _model()
    idx, targets = _tokens(seed=1), _tokens(seed=2)
    targets[0, :4] = -100
    out = model(idx, targets)
    expected = F.cross_entropy(out.logits.reshape(-1, CFG.vocab_size), targets.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, expected, rtol=0, atol=0)
    targets[0, :4] = 0
    targets[1, 2] = 5
    custom = model(idx, targets, ignore_index=5).loss
    expected = F.cross_entropy(out.logits.reshape(-1, CFG.vocab_size), targets.reshape(-1), ignore_index=5)
    torch.testing.assert_close(custom, expected, rtol=0, atol=0)


def test_gpt_is_causal():
    model = _model()
    idx = _tokens()
    changed = idx.clone()
    t = 6
    changed[:, t:] = (changed[:, t:] + 1) % CFG.vocab_size
    a, b = model(idx).logits, model(changed).logits
    torch.testing.assert_close(a[:, :t], b[:, :t], rtol=1e-6, atol=1e-6)
    assert not torch.allclose(a[:, t:], b[:, t:])


def test_gpt_bidirectional_sees_the_future_and_matches_explicit_attention():
    """causal=False: every position depends on later tokens, and the attention equals a by-hand softmax."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(**{**CFG.__dict__, "causal": False})).eval()
    idx = _tokens()
    changed = idx.clone()
    changed[:, -1] = (changed[:, -1] + 1) % CFG.vocab_size
    a, b = model(idx).logits, model(changed).logits
    assert not torch.allclose(a[:, 0], b[:, 0])  # position 0 sees the last token
    attn = model.h[0].attn
    x = model.h[0].ln_1(model.wte(idx) + model.wpe(torch.arange(idx.shape[1])))  # (B, T, C)
    B, T, C = x.shape
    H = attn.n_head
    q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in attn.c_attn(x).split(C, dim=2))
    weights = torch.softmax(q @ k.transpose(-1, -2) / (C // H) ** 0.5, dim=-1)  # (B, H, T, T), no mask
    expected = attn.c_proj((weights @ v).transpose(1, 2).reshape(B, T, C))
    torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-5)


def test_gpt_tied_weights_and_counts():
    tied = _model()
    assert tied.lm_head.weight is tied.wte.weight
    untied = _model(GPTConfig(**{**CFG.__dict__, "tie_weights": False}))
    assert untied.lm_head.weight is not untied.wte.weight
    V, C = CFG.vocab_size, CFG.n_embd
    assert untied.num_parameters() - tied.num_parameters() == V * C
    assert tied.num_parameters() == sum(p.numel() for p in tied.parameters())
    assert tied.num_parameters(exclude_embeddings=True) == tied.num_parameters() - CFG.block_size * C
    # A gradient step on the tied matrix moves both the embedding and the unembedding.
    model = _model()
    model.train()
    model(_tokens(), _tokens(seed=2)).loss.backward()
    assert model.wte.weight.grad is not None and model.lm_head.weight.grad is model.wte.weight.grad


def test_gpt_init_scales_residual_projections():
    cfg = GPTConfig(vocab_size=64, block_size=8, n_layer=8, n_head=4, n_embd=128)
    model = _model(cfg)
    std = model.h[0].attn.c_proj.weight.std().item()
    assert abs(std - 0.02 / (2 * cfg.n_layer) ** 0.5) < 1e-3
    assert abs(model.h[0].mlp.c_fc.weight.std().item() - 0.02) < 1e-3
    assert torch.count_nonzero(model.h[0].attn.c_attn.bias) == 0


def test_gpt_rejects_bad_inputs():
    model = _model()
    with pytest.raises(ValueError, match="block_size"):
        model(_tokens(T=CFG.block_size + 1))
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(vocab_size=8, block_size=8, n_layer=1, n_head=3, n_embd=16)


def test_gpt_dropout_only_in_training():
    cfg = GPTConfig(**{**CFG.__dict__, "dropout": 0.5})
    model = _model(cfg)
    idx = _tokens()
    torch.testing.assert_close(model(idx).logits, model(idx).logits, rtol=0, atol=0)
    model.train()
    assert not torch.allclose(model(idx).logits, model(idx).logits)


@pytest.mark.parametrize("activation", ["relu", "gelu", "tanh"])
def test_mlp(activation):
    torch.manual_seed(0)
    mlp = MLP(7, [13, 5], 3, activation=activation)
    assert [(m.in_features, m.out_features) for m in mlp.layers] == [(7, 13), (13, 5), (5, 3)]
    x = torch.randn(4, 2, 7)
    act = {"relu": torch.relu, "gelu": F.gelu, "tanh": torch.tanh}[activation]
    expected = mlp.layers[2](act(mlp.layers[1](act(mlp.layers[0](x)))))
    torch.testing.assert_close(mlp(x), expected, rtol=0, atol=0)
    assert MLP(7, [], 3, bias=False).layers[0].bias is None
    with pytest.raises(ValueError):
        MLP(7, [4], 3, activation="swish")


def test_lora_linear_starts_equal_to_base_and_freezes_it():
    torch.manual_seed(0)
    base = nn.Linear(9, 5)
    lora = LoRALinear(base, r=3, alpha=6.0)
    assert lora.lora_A.shape == (3, 9) and lora.lora_B.shape == (5, 3)
    assert lora.scaling == 2.0
    assert not base.weight.requires_grad and not base.bias.requires_grad
    x = torch.randn(4, 9)
    torch.testing.assert_close(lora(x), base(x), rtol=0, atol=0)
    with torch.no_grad():
        lora.lora_B.normal_()
    expected = base(x) + 2.0 * x @ lora.lora_A.T @ lora.lora_B.T
    torch.testing.assert_close(lora(x), expected)


def test_apply_lora_on_gpt_only_lora_params_get_grads():
    model = _model()
    idx, targets = _tokens(), _tokens(seed=2)
    before = model(idx).logits
    names = apply_lora(model, ["c_attn"], r=4, alpha=8)
    assert names == [f"h.{i}.attn.c_attn" for i in range(CFG.n_layer)]
    torch.testing.assert_close(model(idx).logits, before, rtol=0, atol=0)

    params = lora_parameters(model)
    assert len(params) == 2 * CFG.n_layer
    assert {id(p) for p in model.parameters() if p.requires_grad} == {id(p) for p in params}
    model(idx, targets).loss.backward()
    for name, p in model.named_parameters():
        if "lora_" in name:
            assert p.grad is not None, name
        else:
            assert p.grad is None, name
    # B = 0 at init: A gets no gradient signal yet, B does.
    assert all(torch.count_nonzero(m.lora_B.grad) > 0 for m in model.modules() if isinstance(m, LoRALinear))

    with pytest.raises(ValueError, match="no nn.Linear"):
        apply_lora(_model(), ["q_proj"], r=2, alpha=2)
    with pytest.raises(ValueError, match="already"):
        apply_lora(model, ["c_attn"], r=2, alpha=2)


def test_merge_lora_equals_unmerged():
    model = _model()
    apply_lora(model, ["c_attn", "c_fc"], r=2, alpha=4)
    torch.manual_seed(3)
    with torch.no_grad():
        for p in lora_parameters(model):
            p.normal_(std=0.1)
    idx = _tokens()
    unmerged = model(idx).logits
    names = merge_lora(model)
    assert len(names) == 2 * CFG.n_layer
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert isinstance(model.h[0].attn.c_attn, nn.Linear)
    torch.testing.assert_close(model(idx).logits, unmerged, rtol=1e-5, atol=1e-5)
    # The merged layers are frozen like the base they came from.
    assert not model.h[0].attn.c_attn.weight.requires_grad
