"""Training targets: registry, distributions, losses, gradient flow."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mmemolr.model import EmotionPredictor
from mmemolr.targets import TARGETS, build_target, load_builtin_targets
from mmemolr.train.config import TargetConfig

C, D = 4, 6


def _outputs(requires_grad: bool = True):
    torch.manual_seed(0)
    model = EmotionPredictor(input_dim=5, n_classes=C, hidden=D).train()
    x = torch.randn(2, 5, 5)
    out = model(x, torch.randint(0, 2, (2, 5)), torch.ones(2, 5, dtype=torch.bool))
    sel = out.select(torch.ones(2, 5, dtype=torch.bool))
    labels = torch.randint(0, C, (10,))
    return model, sel, labels


def _target(name: str, **kwargs):
    torch.manual_seed(1)
    return build_target(TargetConfig(name=name, **kwargs), C, D, label_dim=8)


def test_registry_holds_the_builtin_targets():
    load_builtin_targets()
    assert {"onehot", "rld", "ls", "lcm"} <= set(TARGETS)
    with pytest.raises(ValueError, match="unknown target 'nope'"):
        build_target(TargetConfig(name="nope"), C, D, 8)


def test_onehot_is_cross_entropy():
    _, out, labels = _outputs()
    target = _target("onehot")
    assert torch.allclose(target.loss(out, labels), F.cross_entropy(out.logits, labels))
    z = target.distribution(out, labels)
    assert torch.equal(z.argmax(-1), labels) and torch.equal(z.sum(-1), torch.ones(10))


def test_label_smoothing_distribution_and_kl():
    _, out, labels = _outputs()
    target = _target("ls", smoothing=0.2)
    z = target.distribution(out, labels)
    assert torch.allclose(z.gather(1, labels[:, None]).squeeze(1), torch.full((10,), 0.8 + 0.2 / C))
    assert torch.allclose(z.sum(-1), torch.ones(10))
    logp = F.log_softmax(out.logits, -1)
    manual = (z * (z.log() - logp)).sum(-1).mean()
    assert torch.allclose(target.loss(out, labels), manual, atol=1e-6)


@pytest.mark.parametrize("name", ["rld", "lcm"])
def test_refined_targets_keep_most_mass_on_the_gold_label(name):
    _, out, labels = _outputs()
    target = _target(name, **({"eta": 4.0, "refiner": "bounded", "combine": "eta"} if name == "rld" else {}))
    z = target.distribution(out, labels)
    assert torch.allclose(z.sum(-1), torch.ones(10), atol=1e-6)
    # The refined part lies in [0, 1], so gold keeps at least e^4 / (e^4 + (C-1) e).
    floor = math.exp(4) / (math.exp(4) + (C - 1) * math.e)
    assert (z.gather(1, labels[:, None]) >= floor - 1e-6).all()
    assert (z.gather(1, labels[:, None]) < 1).all()  # and it is not one-hot
    assert target.refines


def test_rld_ablation_ignores_the_dropped_source():
    _, out, labels = _outputs()
    no_speaker = _target("rld", sim_speaker=False)
    z = no_speaker.distribution(out, labels)
    out.speaker = torch.randn_like(out.speaker)
    assert torch.equal(no_speaker.distribution(out, labels), z)


def _grads(name: str, **kwargs):
    model, out, labels = _outputs()
    target = _target(name, **kwargs)
    out.speaker.retain_grad()
    out.context.retain_grad()
    out.emotion.retain_grad()
    # Only the target distribution's own path: a loss on z alone.
    z = target.distribution(out, labels)
    if z.requires_grad:
        (z * torch.arange(C, dtype=z.dtype)).sum().backward()
    states = [t.grad for t in (out.speaker, out.context, out.emotion) if t.grad is not None]
    params = [p.grad for p in target.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    return bool(states), bool(params)


@pytest.mark.parametrize("name,kwargs", [("rld", {"refiner": "bounded", "combine": "eta"}),
                                         ("rld", {"refiner": "paper", "combine": "eta"}), ("lcm", {})])
def test_the_kl_gradient_reaches_the_target_module_and_the_predictor_states(name, kwargs):
    assert _grads(name, **kwargs) == (True, True)  # through z, as in the paper


def test_the_supervised_target_is_a_constant():
    assert _grads("rld", refiner="supervised", combine="mix") == (False, False)  # its refiner learns from CE


def test_rld_kl_loss_trains_predictor_and_refiner_jointly():
    model, out, labels = _outputs()
    target = _target("rld", refiner="bounded", combine="eta")
    loss = target.loss(out, labels)
    loss.backward()
    assert model.gru_s.weight_hh.grad is not None and model.classifier.weight.grad is not None
    assert target.refinement.label_emb.weight.grad is not None
    z = target.distribution(out, labels).detach()
    manual = (z * (z.log() - F.log_softmax(out.logits, -1))).sum(-1).mean()
    assert torch.allclose(loss, manual, atol=1e-5)


def test_paper_form_is_eq_13_on_raw_scores():
    _, out, labels = _outputs()
    target = _target("rld", refiner="paper", combine="eta")
    scores = target.refinement(out.speaker, out.context)
    y = F.one_hot(labels, C).float()
    assert torch.allclose(target.distribution(out, labels), torch.softmax(scores + 4.0 * y, -1), atol=1e-6)
    assert torch.allclose(target.loss(out, labels), F.kl_div(F.log_softmax(out.logits, -1),
                                                             torch.softmax(scores + 4.0 * y, -1),
                                                             reduction="batchmean"), atol=1e-6)


@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_mix_keeps_label_smoothings_gold_mass_and_takes_the_other_shape_from_rld(eps):
    _, out, labels = _outputs()
    target = _target("rld", refiner="bounded", combine="mix", smoothing=eps)
    smooth = _target("ls", smoothing=eps)
    z = target.distribution(out, labels)
    gold = z.gather(1, labels[:, None]).squeeze(1)
    assert torch.allclose(gold, smooth.distribution(out, labels).gather(1, labels[:, None]).squeeze(1))
    assert torch.allclose(gold, torch.full((10,), 1 - eps + eps / C))
    assert torch.allclose(z.sum(-1), torch.ones(10), atol=1e-6)
    rld = target.refined(out)
    off_rld = rld.scatter(1, labels[:, None], 0.0)
    off_z = z.scatter(1, labels[:, None], 0.0)
    # the non-gold part of z is RLD's non-gold part, rescaled to the mass label smoothing gives it
    assert torch.allclose(off_z, off_rld / off_rld.sum(1, keepdim=True) * eps * (C - 1) / C, atol=1e-6)


def test_supervised_refiner_learns_from_the_gold_label_and_its_target_is_detached():
    model, out, labels = _outputs()
    target = _target("rld", refiner="supervised", combine="mix", smoothing=0.2)
    scores = target.refinement(out.speaker, out.context)
    q = torch.softmax(scores, -1)
    assert torch.allclose(target.refined(out), q, atol=1e-6)
    assert not target.distribution(out, labels).requires_grad  # the KL term never trains the refiner
    z = target.distribution(out, labels)
    manual = F.kl_div(F.log_softmax(out.logits, -1), z, reduction="batchmean") + F.cross_entropy(scores, labels)
    loss = target.loss(out, labels)
    assert torch.allclose(loss, manual, atol=1e-6)
    loss.backward()
    assert target.refinement.sim.weight.grad is not None and model.gru_s.weight_hh.grad is not None
    # eq. 13 with the supervised RLD: softmax(log q + eta y); eta = 0 is plain self-distillation (z = q)
    y = F.one_hot(labels, C).float()
    for eta in (0.0, 4.0):
        eta_target = _target("rld", refiner="supervised", combine="eta", eta=eta)
        eta_target.load_state_dict(target.state_dict())
        assert torch.allclose(eta_target.distribution(out, labels), torch.softmax(q.log() + eta * y, -1), atol=1e-5)
    assert torch.allclose(_with(target, combine="eta", eta=0.0).distribution(out, labels), q, atol=1e-5)


def _with(target, **changes):
    other = _target("rld", **{**{k: getattr(target.config, k) for k in ("refiner", "combine")}, **changes})
    other.load_state_dict(target.state_dict())
    return other
