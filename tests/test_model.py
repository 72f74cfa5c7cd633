"""Emotion Predictor: the equations, padding, per-party speaker states; Label Refinement."""

from __future__ import annotations

import pytest
import torch

from mmemolr.model import EmotionPredictor, LabelRefinement
from mmemolr.model.predictor import reverse_steps


def reference(model, x: torch.Tensor, speakers: list[int], updated: bool = False) -> tuple[torch.Tensor, ...]:
    """EmoLR eqs. 2-5 for one dialogue, written directly with the GRUCells of ``model``. ``updated``: GRU_E
    reads s_{p,t}."""
    d = model.gru_c.hidden_size
    c, e = torch.zeros(1, d), torch.zeros(1, d)
    parties: dict[int, torch.Tensor] = {}
    history, cs, ss, es = [], [], [], []
    for t, p in enumerate(speakers):
        u = x[t : t + 1]
        s_prev = parties.get(p, torch.zeros(1, d))
        c = model.gru_c(torch.cat([u, s_prev], 1), c)
        if history:
            ctx = torch.cat(history, 0)  # c_0 .. c_{t-1}
            weights = torch.softmax(ctx @ model.att(u)[0], 0)
            att = (weights[:, None] * ctx).sum(0, keepdim=True)
        else:
            att = torch.zeros(1, d)
        s_new = model.gru_s(torch.cat([u, att], 1), s_prev)
        e = model.gru_e(torch.cat([u, s_new if updated else s_prev], 1), e)
        parties[p] = s_new
        history.append(c)
        cs.append(c)
        ss.append(s_new)
        es.append(e)
    emotion = torch.cat(es)
    return model.classifier(emotion), torch.cat(cs), torch.cat(ss), emotion


def _model(**kwargs) -> EmotionPredictor:
    torch.manual_seed(0)
    return EmotionPredictor(input_dim=6, n_classes=4, hidden=5, **kwargs).eval()


def test_matches_reference_equations():
    model = _model()
    x = torch.randn(7, 6)
    speakers = [0, 1, 0, 2, 2, 1, 0]
    out = model(x[None], torch.tensor([speakers]), torch.ones(1, 7, dtype=torch.bool))
    logits, c, s, e = reference(model, x, speakers)
    for got, want in ((out.logits[0], logits), (out.context[0], c), (out.speaker[0], s), (out.emotion[0], e)):
        assert torch.allclose(got, want, atol=1e-5)


def test_emotion_reading_the_updated_speaker_state_matches_its_equations():
    model = _model(emotion_speaker="updated")
    x = torch.randn(7, 6)
    speakers = [0, 1, 0, 2, 2, 1, 0]
    out = model(x[None], torch.tensor([speakers]), torch.ones(1, 7, dtype=torch.bool))
    logits, c, s, e = reference(model, x, speakers, updated=True)
    for got, want in ((out.logits[0], logits), (out.context[0], c), (out.speaker[0], s), (out.emotion[0], e)):
        assert torch.allclose(got, want, atol=1e-5)
    # The same weights with the paper's eq. 5 give other emotion states (the option is not a no-op) ...
    model.emotion_speaker = "previous"
    paper = model(x[None], torch.tensor([speakers]), torch.ones(1, 7, dtype=torch.bool))
    assert not torch.allclose(paper.emotion[0], e, atol=1e-3)
    assert torch.allclose(paper.context[0], c, atol=1e-6)
    # ... and with "updated" the first prediction already depends on the attention's path (GRU_S).
    model.emotion_speaker = "updated"
    with torch.no_grad():
        model.gru_s.bias_ih.add_(1.0)
    moved = model(x[None], torch.tensor([speakers]), torch.ones(1, 7, dtype=torch.bool))
    assert not torch.allclose(moved.logits[0, 0], out.logits[0, 0], atol=1e-4)


def test_emotion_speaker_is_validated():
    with pytest.raises(ValueError, match="emotion_speaker"):
        _model(emotion_speaker="next")


@pytest.mark.parametrize("emotion_speaker", ["previous", "updated"])
def test_padded_steps_do_not_leak(emotion_speaker):
    model = _model(emotion_speaker=emotion_speaker)
    short, long = torch.randn(3, 6), torch.randn(8, 6)
    alone = model(short[None], torch.tensor([[0, 1, 0]]), torch.ones(1, 3, dtype=torch.bool))
    x = torch.zeros(2, 8, 6)
    x[0, :3], x[1] = short, long
    x[0, 3:] = 50.0  # garbage in padded positions must not matter
    speakers = torch.tensor([[0, 1, 0, 3, 3, 3, 3, 3], [0, 1, 2, 3, 0, 1, 2, 3]])
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, :3] = True
    mask[1] = True
    batched = model(x, speakers, mask, trace=True)
    assert torch.allclose(batched.logits[0, :3], alone.logits[0], atol=1e-5)
    assert torch.allclose(batched.emotion[0, :3], alone.emotion[0], atol=1e-5)
    # After the dialogue ends its states stay as they were.
    assert torch.equal(batched.context[0, 3:], batched.context[0, 2:3].expand(5, -1))
    assert torch.equal(batched.party_states[0, 3:], batched.party_states[0, 2:3].expand(5, -1, -1))
    ref = reference(model, long, speakers[1].tolist(), updated=emotion_speaker == "updated")
    assert torch.allclose(batched.logits[1], ref[0], atol=1e-5)


def test_only_the_speaking_party_is_updated():
    model = _model()
    speakers = torch.tensor([[0, 1, 0, 2, 1, 1]])
    out = model(torch.randn(1, 6, 6), speakers, torch.ones(1, 6, dtype=torch.bool), trace=True)
    states = out.party_states[0]  # (T, P, D)
    previous = torch.zeros_like(states[0])
    for t, p in enumerate(speakers[0].tolist()):
        for q in range(states.shape[1]):
            if q == p:
                assert not torch.equal(states[t, q], previous[q])
                assert torch.equal(states[t, q], out.speaker[0, t])
            else:
                assert torch.equal(states[t, q], previous[q])  # listeners keep their own state
        previous = states[t]


def test_backward_reaches_every_parameter():
    model = _model().train()
    out = model(torch.randn(3, 5, 6), torch.randint(0, 2, (3, 5)), torch.ones(3, 5, dtype=torch.bool))
    out.logits.sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_select_keeps_real_steps_in_order():
    model = _model()
    mask = torch.tensor([[True, True, False], [True, True, True]])
    out = model(torch.randn(2, 3, 6), torch.zeros(2, 3, dtype=torch.long), mask)
    sel = out.select(mask)
    assert sel.logits.shape == (5, 4)
    assert torch.equal(sel.logits[2], out.logits[1, 0])


def test_label_refinement_sources_and_ablations():
    torch.manual_seed(0)
    speaker, context = torch.randn(4, 5), torch.randn(4, 5)
    both = LabelRefinement(3, 5, label_dim=8)
    rld = both(speaker, context)
    assert rld.shape == (4, 3)
    assert torch.allclose(rld.sum(-1), torch.ones(4), atol=1e-5)  # a convex mix of two distributions
    ctx_only = LabelRefinement(3, 5, label_dim=8, sim_speaker=False)
    assert torch.equal(ctx_only(speaker, context), ctx_only(torch.randn(4, 5), context))
    spk_only = LabelRefinement(3, 5, label_dim=8, sim_ctx=False)
    assert torch.equal(spk_only(speaker, context), spk_only(speaker, torch.randn(4, 5)))
    with pytest.raises(ValueError, match="at least one source"):
        LabelRefinement(3, 5, sim_speaker=False, sim_ctx=False)


def _written_out_rld(module: LabelRefinement, speaker: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """Eqs. 6-11 one utterance at a time, with plain loops over labels (the reference for every form)."""
    emb = module.label_emb.weight
    lin1, lin2 = module.encoder[0], module.encoder[2]
    r = torch.stack([lin2.weight @ torch.tanh(lin1.weight @ emb[k] + lin1.bias) + lin2.bias
                     for k in range(len(emb))])  # eq. 6: one row per label
    rows = []
    for s, c in zip(speaker, context):
        sims = []
        for state, own in ((s, "sim_speaker"), (c, "sim_ctx")):
            layer = getattr(module, own) if module.form == "bounded" else module.sim  # eqs. 7-8
            score = torch.stack([r[k] @ state for k in range(len(r))]) @ layer.weight.t() + layer.bias
            sims.append(torch.softmax(score, 0) if module.form == "bounded" else score)
        h = torch.tanh(torch.stack(sims) @ module.w_f.weight.t())  # eq. 9
        alpha = torch.softmax((h @ module.v_f.weight.t()).squeeze(-1), 0)  # eq. 10
        rows.append(alpha[0] * sims[0] + alpha[1] * sims[1])  # eq. 11
    return torch.stack(rows)


@pytest.mark.parametrize("form", ["paper", "bounded", "supervised"])
def test_label_refinement_forms_match_the_written_out_equations(form):
    torch.manual_seed(0)
    speaker, context = torch.randn(4, 5) * 3, torch.randn(4, 5) * 3
    module = LabelRefinement(3, 5, label_dim=8, form=form)
    assert torch.allclose(module(speaker, context), _written_out_rld(module, speaker, context), atol=1e-5)
    names = {n for n, _ in module.named_parameters()}
    if form == "bounded":  # its own W, b per source; first-version parameter names
        assert {"sim_speaker.weight", "sim_ctx.weight"} <= names and "sim.weight" not in names
        assert torch.allclose(module(speaker, context).sum(-1), torch.ones(4), atol=1e-5)
    else:  # one W, b shared by both sources (eqs. 7-8), raw scores: not a distribution
        assert "sim.weight" in names and "sim_speaker.weight" not in names
        assert not torch.allclose(module(speaker, context).sum(-1), torch.ones(4), atol=1e-2)
    with pytest.raises(ValueError, match="unknown refiner form"):
        LabelRefinement(3, 5, form="nope")


def test_reverse_steps_reverses_each_dialogue_within_its_length_and_is_its_own_inverse():
    x = torch.arange(2 * 5).view(2, 5, 1).float()
    lengths = torch.tensor([3, 5])
    rev = reverse_steps(x, lengths)
    assert rev[0, :, 0].tolist() == [2, 1, 0, 3, 4]  # padding (steps 3, 4) stays in place
    assert rev[1, :, 0].tolist() == [9, 8, 7, 6, 5]
    assert torch.equal(reverse_steps(rev, lengths), x)


@pytest.mark.parametrize("emotion_speaker", ["previous", "updated"])
def test_hand_written_backward_equals_autograd(emotion_speaker, monkeypatch):
    """The recurrences of mmemolr.model.bptt (backward written by hand) against autograd through the
    per-step loop, float64, padded dialogues: the same outputs at every step (c and e held on padded steps,
    s_{p,t} zero there) and the same gradients of every parameter and of the input."""
    from mmemolr.model import bptt

    torch.manual_seed(0)
    model = EmotionPredictor(input_dim=6, n_classes=4, hidden=5, emotion_speaker=emotion_speaker,
                             dropout=0.0).double()
    speakers = torch.tensor([[0, 1, 0, 2, 1, 1, 0], [1, 1, 0, 1, 0, 0, 0], [2, 0, 1, 0, 0, 0, 0]])
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3, [True] * 3 + [False] * 4])
    x = (torch.randn(3, 7, 6, dtype=torch.float64) * mask.unsqueeze(-1)).requires_grad_(True)
    weights = [torch.randn(3, 7, 16, dtype=torch.float64) for _ in range(4)]

    def run():
        out = model(x, speakers, mask, 3)
        fields = (out.logits, out.context, out.speaker, out.emotion)
        loss = sum((o * w[..., :o.shape[-1]] * mask.unsqueeze(-1)).sum() for o, w in zip(fields, weights))
        return fields, torch.autograd.grad(loss, [x, *model.parameters()])

    fast_outputs, fast_grads = run()
    monkeypatch.setattr(bptt, "ENABLED", False)
    slow_outputs, slow_grads = run()
    for a, b in zip(fast_outputs, slow_outputs):  # every step: on padding c and e held, s zero, by both paths
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    assert not fast_outputs[2][~mask].any()
    for a, b in zip(fast_grads, slow_grads):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
