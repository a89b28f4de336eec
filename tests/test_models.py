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


# Module names of a learned-positions GPT: the default config keeps exactly these (cached weights still load).
BLOCK_KEYS = (
    "ln_1.weight ln_1.bias attn.c_attn.weight attn.c_attn.bias attn.c_proj.weight attn.c_proj.bias "
    "ln_2.weight ln_2.bias mlp.c_fc.weight mlp.c_fc.bias mlp.c_proj.weight mlp.c_proj.bias"
).split()
LEARNED_KEYS = [
    "wte.weight",
    "wpe.weight",
    *(f"h.{i}.{name}" for i in range(CFG.n_layer) for name in BLOCK_KEYS),
    "ln_f.weight",
    "ln_f.bias",
    "lm_head.weight",
]
ROPE = GPTConfig(**{**CFG.__dict__, "n_head": 2, "positions": "rope"})  # head size 12 (rope needs it even)


def test_learned_positions_are_the_default_and_their_state_dict_is_unchanged():
    assert CFG.positions == "learned"
    model = _model()
    assert list(model.state_dict()) == LEARNED_KEYS
    idx = _tokens()
    explicit = model(idx, positions=torch.arange(idx.shape[1])).logits
    torch.testing.assert_close(explicit, model(idx).logits, rtol=0, atol=0)
    # The same random initialisation as before the option existed: fingerprints of `_model()` measured with
    # the code before rope (torch 2.13, CPU). A torch whose CPU generator changes would move them; then
    # re-measure, after checking the initialisation order in GPT.__init__ is unchanged.
    sd = {k: v.double() for k, v in model.state_dict().items()}
    assert float(sum((v**2).sum() for v in sd.values())) == pytest.approx(124.68009205869392, rel=1e-9)
    assert float(sd["wpe.weight"].sum()) == pytest.approx(-0.018432759417919442, rel=1e-9)
    assert float(sd["h.1.mlp.c_proj.weight"].sum()) == pytest.approx(0.15043917472712565, rel=1e-9)
    rope = _model(ROPE)
    assert rope.wpe is None and list(rope.state_dict()) == [k for k in LEARNED_KEYS if k != "wpe.weight"]
    assert rope.num_parameters(exclude_embeddings=True) == rope.num_parameters()
    with pytest.raises(ValueError, match="block_size"):
        model(idx, positions=torch.arange(idx.shape[1]) + CFG.block_size)
    with pytest.raises(ValueError, match="even head size"):
        GPTConfig(**{**CFG.__dict__, "n_head": 8, "positions": "rope"})  # head size 3
    with pytest.raises(ValueError, match="positions"):
        GPTConfig(**{**CFG.__dict__, "positions": "alibi"})


def test_rope_depends_on_relative_positions_only():
    """Rotary attention scores depend on m - n (RoFormer eq. 16): shifting every position by one constant
    leaves a rope model's output unchanged (to float64 rounding of cos/sin at larger angles); a learned-
    positions model changes."""
    torch.manual_seed(0)
    rope = GPT(ROPE).double().eval()
    learned = _model().double()
    idx = _tokens(T=9)
    base = torch.arange(9)
    for shift in (1, 7, 1000):
        torch.testing.assert_close(
            rope(idx, positions=base + shift).logits, rope(idx).logits, rtol=1e-9, atol=1e-9
        )
    per_row = base + torch.tensor([[0], [3], [50]])  # (B, T): another shift for every row
    torch.testing.assert_close(rope(idx, positions=per_row).logits, rope(idx).logits, rtol=1e-9, atol=1e-9)
    assert not torch.allclose(learned(idx, positions=base + 5).logits, learned(idx).logits, atol=1e-4)
    # the rotation itself: <R_m q, R_n k> = <q, R_{n-m} k>, and rope sees positions (not a bag of tokens)
    from common.models.gpt import apply_rope, rope_angles

    q, k = torch.randn(2, 12, dtype=torch.float64).unbind(0)

    def rotate(x, m):
        a = rope_angles(torch.tensor([m]), 12)  # (1, D)
        return apply_rope(x.view(1, 1, 1, 12), a.cos(), a.sin()).flatten()

    assert float(rotate(q, 7) @ rotate(k, 3)) == pytest.approx(float(rotate(q, 4) @ rotate(k, 0)), rel=1e-12)
    swapped = idx.clone()
    swapped[:, [2, 5]] = idx[:, [5, 2]]
    assert not torch.allclose(rope(swapped).logits[:, -1], rope(idx).logits[:, -1], atol=1e-4)


def test_rope_gpt_is_causal_and_trains():
    torch.manual_seed(0)
    model = GPT(ROPE).eval()
    idx = _tokens()
    changed = idx.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % CFG.vocab_size
    torch.testing.assert_close(model(idx).logits[:, :6], model(changed).logits[:, :6], rtol=1e-6, atol=1e-6)
    model.train()
    model(idx, _tokens(seed=2)).loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_forward_without_logits():
    model = _model()
    idx = _tokens()
    out = model(idx, with_logits=False)
    assert out.logits is None and out.loss is None
    torch.testing.assert_close(out.hidden, model(idx).hidden, rtol=0, atol=0)
    with pytest.raises(ValueError, match="logits"):
        model(idx, _tokens(seed=2), with_logits=False)
