"""Trusting the hand-written recurrences (mmemolr.model.bptt): no silent second derivatives, no consumer
of the outputs of padded steps, and a check against autograd on device types the tests do not run on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from train_helpers import assert_same_run, make_corpus, prepare

from mmemolr.config import load_config
from mmemolr.model import bptt
from mmemolr.model.predictor import EmotionPredictor
from mmemolr.train.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _recurrence_inputs():
    torch.manual_seed(0)
    k, t, b, f, d, p = 1, 4, 2, 3, 2, 2

    def rand(*shape):
        return torch.randn(*shape, dtype=torch.float64, requires_grad=True)

    onehot = F.one_hot(torch.randint(0, p, (k, t, b)), p).double()
    weights = ([rand(3 * d, f + d) for _ in range(2 * k)], [rand(3 * d, d) for _ in range(2 * k)],
               [rand(3 * d) for _ in range(2 * k)], [rand(3 * d) for _ in range(2 * k)], [rand(d, f) for _ in range(k)])
    return rand(k, t, b, f), onehot, weights


def test_a_second_derivative_through_the_recurrences_is_an_error():
    u, onehot, weights = _recurrence_inputs()
    g, q, _ = bptt.global_party_recurrence(u, onehot, *weights)
    first = torch.autograd.grad((g.pow(2).sum() + q.pow(2).sum()), [u], create_graph=False)[0]
    assert torch.isfinite(first).all()  # first order as usual
    with pytest.raises(RuntimeError, match="global_party_recurrence .*not twice differentiable"):
        torch.autograd.grad((g.pow(2).sum() + q.pow(2).sum()), [u], create_graph=True)
    pre = torch.randn(3, 1, 2, 6, dtype=torch.float64, requires_grad=True)
    h = bptt.gru_sequence(pre, *(torch.randn(*s, dtype=torch.float64, requires_grad=True) for s in ((1, 6, 2), (1, 6))))
    with pytest.raises(RuntimeError, match="gru_sequence .*not twice differentiable"):
        torch.autograd.grad(h.pow(2).sum(), [pre], create_graph=True)


def test_a_model_asked_for_second_derivatives_names_the_switch():
    model = EmotionPredictor(input_dim=4, n_classes=3, hidden=3, dropout=0.0).double()
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    out = model(x, torch.tensor([[0, 1, 0], [1, 0, 0]]), torch.ones(2, 3, dtype=torch.bool), 2)
    with pytest.raises(RuntimeError, match="bptt.ENABLED = False"):
        torch.autograd.grad(out.logits.pow(2).sum(), [x], create_graph=True)


def _poisoned(forward):
    """``forward`` whose every output is NaN on padded steps: a consumer that read one would be NaN too."""

    def poisoned(self, x, speakers, mask, *args, **kwargs):
        out = forward(self, x, speakers, mask, *args, **kwargs)
        fields = {}
        for field in dataclasses.fields(out):
            value = getattr(out, field.name)
            if value is not None:
                pad = (~mask).view(*mask.shape, *([1] * (value.dim() - mask.dim())))
                value = torch.where(pad, torch.full_like(value, float("nan")), value)
            fields[field.name] = value
        return type(out)(**fields)

    return poisoned


def test_no_consumer_reads_the_outputs_of_padded_steps(tmp_path, monkeypatch):
    """Training (the rld target reads s_{p,t} and c_t), dev selection, test evaluation and the written outputs,
    alone and in a batched group, are the same bit for bit when every output of a padded step is NaN."""
    from mmemolr.train.batched import train_group
    from mmemolr.train.run import run_training

    features = prepare(tmp_path / "features", make_corpus(sizes={"train": 10, "dev": 4, "test": 4}, max_len=6),
                       modalities=("text", "audio"), dim=5)
    configs = [load_config(TrainConfig, None, [
        "corpus=synth", "modalities=[t,a]", f"seed={seed}", "device=cpu", "target.name=rld", "model.hidden=6",
        "model.label_dim=4", "optim.lr=0.01", "optim.batch_dialogues=4", "optim.max_epochs=2"]) for seed in (0, 1)]

    def train(name: str) -> None:
        run_training(configs[0], tmp_path / name / "alone", features, progress=False)
        train_group(configs, [tmp_path / name / "group0", tmp_path / name / "group1"], features, progress=False)

    train("clean")
    monkeypatch.setattr(EmotionPredictor, "forward", _poisoned(EmotionPredictor.forward))
    train("poisoned")
    for run in ("alone", "group0", "group1"):
        assert_same_run(tmp_path / "clean" / run, tmp_path / "poisoned" / run)


@pytest.fixture
def unverified_cpu(monkeypatch):
    """Pretend the tests have not verified the hand-written recurrences on the CPU."""
    monkeypatch.setattr(bptt, "VERIFIED", frozenset())
    monkeypatch.setattr(bptt, "_checked", {})


def test_an_unverified_device_is_checked_once_on_first_use(unverified_cpu, recwarn):
    assert bptt.usable(torch.device("cpu"))
    assert bptt._checked == {"cpu": True} and not recwarn.list
    worst, problem = bptt.self_check("cpu")
    assert problem is None and 0 <= worst < 1e-5


def test_the_self_check_sees_a_wrong_recurrence(monkeypatch):
    reference = bptt._reference_gru_sequence
    monkeypatch.setattr(bptt, "_reference_gru_sequence", lambda *args: reference(*args) * 1.01)
    worst, problem = bptt.self_check("cpu")
    assert problem is not None and "gru_sequence output 0" in problem and worst > 1e-4


def test_a_mismatch_on_an_unverified_device_falls_back_to_autograd_with_a_warning(unverified_cpu, monkeypatch):
    import mmemolr.model.predictor as predictor

    monkeypatch.setattr(bptt, "self_check", lambda device: (0.5, "gru_sequence output 0 off by 5.00e-01"))
    torch.manual_seed(0)
    model = EmotionPredictor(input_dim=4, n_classes=3, hidden=3, dropout=0.0).double()
    x, speakers = torch.randn(2, 5, 4, dtype=torch.float64), torch.tensor([[0, 1, 0, 1, 0], [1, 0, 1, 0, 0]])
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    with pytest.warns(RuntimeWarning, match=r"disagree with autograd on cpu \(cpu\): gru_sequence output 0"):
        assert not bptt.usable("cpu")

    def never(*args, **kwargs):
        raise AssertionError("the hand-written recurrence ran on a device where it failed its check")

    monkeypatch.setattr(predictor, "global_party_recurrence", never)
    fallback = model(x, speakers, mask, 2).logits  # checked once: no second warning, the autograd loop
    monkeypatch.setattr(bptt, "ENABLED", False)
    torch.testing.assert_close(fallback, model(x, speakers, mask, 2).logits, rtol=0, atol=0)


def test_training_checks_the_device_before_any_transform(unverified_cpu, tmp_path):
    """`train_group` asks first, outside vmap, so the group takes the checked recurrences."""
    from mmemolr.train.batched import train_group

    features = prepare(tmp_path / "features", make_corpus(sizes={"train": 4, "dev": 2, "test": 2}, max_len=3))
    config = load_config(TrainConfig, None, ["corpus=synth", "modalities=[t]", "device=cpu", "model.hidden=4",
                                             "model.label_dim=4", "optim.max_epochs=1"])
    train_group([config], [Path(tmp_path / "run")], features, progress=False)
    assert bptt._checked == {"cpu": True}
