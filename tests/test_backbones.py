"""Backbones (mmemolr.model.backbones): each against a per-step / per-node reference written out from its
paper's equations, padding and future-context checks, every target on every backbone, a synthetic corpus
learned above chance, and loading run folders written before backbones existed."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from train_helpers import make_corpus, prepare

from mmemolr.config import ConfigError, load_config
from mmemolr.model.backbones import BACKBONES, build_backbone, load_builtin_backbones
from mmemolr.model.backbones.dag_erc import DagErc, DagErcOptions
from mmemolr.model.backbones.dialoguegcn import DialogueGCN, DialogueGCNOptions
from mmemolr.model.backbones.dialoguernn import DialogueRNN, DialogueRNNOptions
from mmemolr.model.predictor import EmotionPredictor
from mmemolr.train.build import build_model
from mmemolr.train.config import TrainConfig, check_train_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# Three dialogues of different lengths (padded at the end), three parties.
SPEAKERS = [[0, 1, 0, 2, 1, 1, 0], [1, 1, 0, 1, -1, -1, -1], [2, 0, 1, -1, -1, -1, -1]]


def _batch(dim: int = 6, seed: int = 0):
    torch.manual_seed(seed)
    speakers = torch.tensor(SPEAKERS)
    mask = speakers >= 0
    x = torch.randn(len(SPEAKERS), len(SPEAKERS[0]), dim) * mask.unsqueeze(-1)
    return x, speakers.clamp(min=0), mask


def _small(name: str, **extra):
    options = {
        "dialoguernn": DialogueRNNOptions(global_size=5, emotion_size=4, classifier_hidden=3, dropout=0.0),
        "dialoguegcn": DialogueGCNOptions(encoder_hidden=3, encoder_layers=1, window_past=2, window_future=1,
                                          n_speakers=2, n_bases=3, classifier_hidden=4, dropout=0.0),
        "dag-erc": DagErcOptions(hidden=5, layers=2, window_same_speaker=1, dropout=0.0),
    }[name]
    for key, value in extra.items():
        setattr(options, key, value)
    cls = {"dialoguernn": DialogueRNN, "dialoguegcn": DialogueGCN, "dag-erc": DagErc}[name]
    torch.manual_seed(1)
    return cls(6, 4, options).eval()


def _cell(cell, inp, hidden):
    return cell(inp.unsqueeze(0), hidden.unsqueeze(0))[0]


# ---------------------------------------------------------------- DialogueRNN


def _rnn_direction_reference(cells, u, spk, n_parties):
    """The paper's equations one step at a time for one dialogue (u: (L, F), spk: list)."""
    dg, dp, de = cells.gru_g.hidden_size, cells.gru_p.hidden_size, cells.gru_e.hidden_size
    g, e = torch.zeros(dg), torch.zeros(de)
    q = {i: torch.zeros(dp) for i in range(n_parties)}
    history, out_g, out_q, out_e = [], [], [], []
    for t, s in enumerate(spk):
        q_prev = q[s]
        g_new = _cell(cells.gru_g, torch.cat([u[t], q_prev]), g)
        if history:
            query = cells.att.weight @ u[t]
            alpha = torch.softmax(torch.stack([query @ gi for gi in history]), 0)
            c = sum(a * gi for a, gi in zip(alpha, history))
        else:
            c = torch.zeros(dg)
        q_new = _cell(cells.gru_p, torch.cat([u[t], c]), q_prev)
        q[s] = q_new
        e = _cell(cells.gru_e, q_new, e)
        g = g_new
        history.append(g)
        out_g.append(g)
        out_q.append(q_new)
        out_e.append(e)
    return torch.stack(out_g), torch.stack(out_q), torch.stack(out_e)


def _rnn_reference(model, u, spk, n_parties):
    """BiDialogueRNN+Att: both directions, then the attention over the whole dialogue's emotion states."""
    g, q, e = _rnn_direction_reference(model.forward_cells, u, spk, n_parties)
    back = _rnn_direction_reference(model.backward_cells, u.flip(0), spk[::-1], n_parties)
    g, q, e = (torch.cat([f, b.flip(0)], -1) for f, b in zip((g, q, e), back))
    rows = []
    for t in range(len(spk)):
        scores = torch.stack([model.emotion_att(e[t]) @ e[j] for j in range(len(spk))])
        rows.append(sum(a * e[j] for a, j in zip(torch.softmax(scores, 0), range(len(spk)))))
    e = torch.stack(rows)
    logits = model.classifier(F.relu(model.hidden(e)))
    return logits, g, q, e


def test_dialoguernn_matches_the_per_step_reference():
    model = _small("dialoguernn")
    x, speakers, mask = _batch()
    out = model(x, speakers, mask, 3)
    for b, spk in enumerate(SPEAKERS):
        spk = [s for s in spk if s >= 0]
        want = _rnn_reference(model, x[b, :len(spk)], spk, 3)
        for got, ref in zip((out.logits, out.context, out.speaker, out.emotion), want):
            torch.testing.assert_close(got[b, :len(spk)], ref, atol=1e-5, rtol=1e-4)


def _gradients_match_reference(model, reference, n_outputs):
    """Parameter and input gradients of the batched model equal those of autograd through the per-step
    reference (the batched recurrences compute their weight gradients themselves: StepLinear)."""
    x, speakers, mask = _batch()
    x.requires_grad_(True)
    torch.manual_seed(5)
    seeds = [torch.randn(mask.shape[0], mask.shape[1], 64) for _ in range(n_outputs)]
    out = model(x, speakers, mask, 3)
    got_outputs = (out.logits, out.context, out.speaker, out.emotion)[:n_outputs]
    loss = sum((o * w[..., :o.shape[-1]] * mask.unsqueeze(-1)).sum() for o, w in zip(got_outputs, seeds))
    params = [p for p in model.parameters()]
    got = torch.autograd.grad(loss, [x, *params], allow_unused=True)
    x_ref = x.detach().clone().requires_grad_(True)
    loss = 0
    for b, spk in enumerate(SPEAKERS):
        spk = [s for s in spk if s >= 0]
        for o, w in zip(reference(model, x_ref[b, :len(spk)], spk), seeds):
            loss = loss + (o * w[b, :len(spk), :o.shape[-1]]).sum()
    want = torch.autograd.grad(loss, [x_ref, *params], allow_unused=True)
    for a, b in zip(got, want):
        torch.testing.assert_close(a if a is not None else torch.zeros_like(b), b if b is not None else torch.zeros_like(a),
                                   atol=1e-5, rtol=1e-4)


def test_dialoguernn_gradients_match_the_per_step_reference():
    model = _small("dialoguernn")
    _gradients_match_reference(model, lambda m, u, spk: _rnn_reference(m, u, spk, 3), 4)


def test_dialoguernn_hand_written_backward_equals_autograd(monkeypatch):
    """The recurrences' hand-written backward (mmemolr.model.bptt) against autograd through the per-step loop,
    in float64: the same outputs and the same gradients of every parameter and of the input."""
    from mmemolr.model import bptt

    model = _small("dialoguernn").double().train()
    x, speakers, mask = _batch()
    x = x.double().requires_grad_(True)
    torch.manual_seed(3)
    seeds = [torch.randn(*mask.shape, 16, dtype=torch.float64) for _ in range(4)]

    def run():
        out = model(x, speakers, mask, 3)
        fields = (out.logits, out.context, out.speaker, out.emotion)
        loss = sum((o * w[..., :o.shape[-1]] * mask.unsqueeze(-1)).sum() for o, w in zip(fields, seeds))
        return fields, torch.autograd.grad(loss, [x, *model.parameters()], allow_unused=True)

    fast_outputs, fast_grads = run()
    monkeypatch.setattr(bptt, "ENABLED", False)
    slow_outputs, slow_grads = run()
    for a, b in zip(fast_outputs, slow_outputs):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
    assert sum(g is not None for g in fast_grads) == len(list(model.parameters())) + 1
    for a, b in zip(fast_grads, slow_grads):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def test_dialogue_recurrences_pass_gradcheck():
    """Finite differences against the hand-written backward passes themselves (padding rows included)."""
    from mmemolr.model.bptt import global_party_recurrence, gru_sequence

    torch.manual_seed(0)
    k, t, b, f, d, p = 2, 4, 3, 5, 3, 2
    dbl = {"dtype": torch.float64}
    u = torch.randn(k, t, b, f, **dbl, requires_grad=True)
    onehot = F.one_hot(torch.randint(0, p, (k, t, b)), p).to(torch.float64)
    onehot[:, -1, 0] = 0  # a padded step
    params = [[torch.randn(3 * d, f + d, **dbl) * 0.5 for _ in range(2 * k)], [torch.randn(3 * d, d, **dbl) * 0.5 for _ in range(2 * k)],
              [torch.randn(3 * d, **dbl) for _ in range(2 * k)], [torch.randn(3 * d, **dbl) for _ in range(2 * k)],
              [torch.randn(d, f, **dbl) for _ in range(k)]]
    flat = [w.requires_grad_() for group in params for w in group]
    sizes = [len(group) for group in params]

    def recurrence(u, *flat):
        groups, i = [], 0
        for n in sizes:
            groups.append(list(flat[i:i + n]))
            i += n
        return global_party_recurrence(u, onehot, *groups)

    assert torch.autograd.gradcheck(recurrence, (u, *flat))
    pre = torch.randn(t, k, b, 3 * d, **dbl, requires_grad=True)
    w_hh = torch.randn(k, 3 * d, d, **dbl, requires_grad=True)
    b_hh = torch.randn(k, 3 * d, **dbl, requires_grad=True)
    assert torch.autograd.gradcheck(gru_sequence, (pre, w_hh, b_hh))


# ---------------------------------------------------------------- DialogueGCN


def _gcn_reference(model, x, spk):
    o = model.options
    n = len(spk)
    g = model.encoder(x.unsqueeze(0))[0][0]  # the dialogue alone, no padding
    s = [min(v, o.n_speakers - 1) for v in spk]
    window = [[j for j in range(n) if -o.window_past <= j - i <= o.window_future] for i in range(n)]
    relation = [[(s[i] * o.n_speakers + s[j]) * 2 + int(j > i) for j in range(n)] for i in range(n)]
    h1 = []
    for i in range(n):
        alpha = torch.softmax(torch.stack([model.edge_att(g[i]) @ g[j] for j in window[i]]), 0)
        total = alpha[window[i].index(i)] * (model.root1.weight @ g[i]) + model.root1.bias
        for a, j in zip(alpha, window[i]):
            r = relation[i][j]
            count = sum(relation[i][k] == r for k in window[i])
            w_r = sum(model.coefficients[r, k] * model.bases[k] for k in range(o.n_bases))
            total = total + a / count * (g[j] @ w_r)
        h1.append(F.relu(total))
    h2 = torch.stack([F.relu(sum(model.conv2(h1[j]) for j in window[i]) + model.root2(h1[i])) for i in range(n)])
    features = torch.cat([g, h2], -1)
    return model.classifier(F.relu(model.hidden(features))), g, h2


@pytest.mark.parametrize("past,future,slots", [(2, 1, 2), (0, 0, 3), (10, 10, 3)])
def test_dialoguegcn_matches_the_per_node_reference(past, future, slots):
    model = _small("dialoguegcn", window_past=past, window_future=future, n_speakers=slots)
    model = DialogueGCN(6, 4, model.options).eval()
    x, speakers, mask = _batch()
    out = model(x, speakers, mask)
    for b, spk in enumerate(SPEAKERS):
        spk = [v for v in spk if v >= 0]
        logits, g, h = _gcn_reference(model, x[b, :len(spk)], spk)
        torch.testing.assert_close(out.logits[b, :len(spk)], logits, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(out.context[b, :len(spk)], g, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(out.speaker[b, :len(spk)], h, atol=1e-5, rtol=1e-4)


def test_dialoguegcn_relations_depend_on_speakers_and_direction():
    model = _small("dialoguegcn", window_past=3, window_future=3, n_speakers=3)
    x, speakers, mask = _batch()
    out = model(x, speakers, mask)
    swapped = speakers.clone()
    swapped[0, 3] = 0  # another speaker for one utterance: other relations on its edges
    changed = model(x, swapped, mask)
    assert not torch.allclose(out.speaker[0], changed.speaker[0])
    assert torch.allclose(out.speaker[1:], changed.speaker[1:])  # other dialogues untouched
    # the context state (the sequential encoder) does not read speakers at all
    assert torch.allclose(out.context, changed.context)


# ---------------------------------------------------------------- DAG-ERC


def _predecessors(spk, omega):
    """Walk back from each utterance until the speaker's omega-th previous turn (the DAG-ERC rule)."""
    out = []
    for i in range(len(spk)):
        preds, turns = [], 0
        for j in range(i - 1, -1, -1):
            preds.append(j)
            if spk[j] == spk[i]:
                turns += 1
                if turns == omega:
                    break
        out.append(preds)
    return out


def _dag_reference(model, x, spk):
    preds = _predecessors(spk, model.options.window_same_speaker)
    prev = F.relu(model.input_layer(x))
    states = [prev]
    for layer in model.layers:
        h, node, ctx = [], [], []
        for i in range(len(spk)):
            if preds[i]:
                scores = torch.stack([layer.score_query(prev[i])[0] + layer.score_key(h[j])[0] for j in preds[i]])
                alpha = torch.softmax(scores, 0)
                m = sum(a * (layer.w_same if spk[j] == spk[i] else layer.w_other)(h[j]) for a, j in zip(alpha, preds[i]))
            else:
                m = torch.zeros(prev.shape[1])
            node.append(_cell(layer.gru_node, m, prev[i]))
            ctx.append(_cell(layer.gru_context, prev[i], m))
            h.append(node[-1] + ctx[-1])
        prev = torch.stack(h)
        states.append(prev)
    hidden = torch.cat([*states, x], -1)
    for linear in model.mlp:
        hidden = F.relu(linear(hidden))
    return model.classifier(hidden), torch.stack(ctx), torch.stack(node)


@pytest.mark.parametrize("omega", [1, 2])
def test_dag_erc_matches_the_per_node_reference(omega):
    model = _small("dag-erc", window_same_speaker=omega)
    model = DagErc(6, 4, model.options).eval()
    x, speakers, mask = _batch()
    out = model(x, speakers, mask)
    for b, spk in enumerate(SPEAKERS):
        spk = [v for v in spk if v >= 0]
        for got, ref in zip((out.logits, out.context, out.speaker), _dag_reference(model, x[b, :len(spk)], spk)):
            torch.testing.assert_close(got[b, :len(spk)], ref, atol=1e-5, rtol=1e-4)


def test_dag_erc_gradients_match_the_per_node_reference():
    _gradients_match_reference(_small("dag-erc", window_same_speaker=2), _dag_reference, 3)


def test_dag_edges_stop_at_the_speakers_previous_turn():
    from mmemolr.model.backbones.dag_erc import dag_edges

    _, speakers, mask = _batch()
    for omega in (1, 2, 3):
        edges, same = dag_edges(speakers, mask, omega)
        for b, spk in enumerate(SPEAKERS):
            spk = [v for v in spk if v >= 0]
            for i, preds in enumerate(_predecessors(spk, omega)):
                assert sorted(edges[b, i].nonzero().flatten().tolist()) == sorted(preds)
                assert sorted(same[b, i].nonzero().flatten().tolist()) == [j for j in sorted(preds) if spk[j] == spk[i]]
            assert not edges[b, len(spk):].any() and not edges[b, :, len(spk):].any()


# ---------------------------------------------------------------- every backbone

NEW = ["dialoguernn", "dialoguegcn", "dag-erc"]


@pytest.mark.parametrize("name", NEW)
def test_padding_and_other_dialogues_do_not_leak(name):
    model = _small(name)
    x, speakers, mask = _batch()
    out = model(x, speakers, mask, 3)
    for b in range(len(SPEAKERS)):
        n = int(mask[b].sum())
        alone = model(x[b:b + 1, :n], speakers[b:b + 1, :n], mask[b:b + 1, :n], 3)
        wide = torch.cat([x[b:b + 1, :n], torch.randn(1, 4, x.shape[-1])], 1)  # garbage in the padded steps
        padded = model(wide, F.pad(speakers[b:b + 1, :n], (0, 4)), F.pad(mask[b:b + 1, :n], (0, 4)), 3)
        for field in ("logits", "speaker", "context", "emotion"):
            torch.testing.assert_close(getattr(out, field)[b, :n], getattr(alone, field)[0], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(getattr(padded, field)[0, :n], getattr(alone, field)[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name,extra", [("dag-erc", {}), ("dialoguegcn", {"window_future": 0, "encoder_layers": 1})])
def test_no_future_context_where_the_backbone_reads_only_the_past(name, extra):
    model = _small(name, **extra)
    x, speakers, mask = _batch()
    later = x.clone()
    later[0, 4:] += 5.0  # change utterances 4.. of the first dialogue
    a, b = model(x, speakers, mask, 3), model(later, speakers, mask, 3)
    if name == "dialoguegcn":  # its graph reads no future, but its bidirectional encoder reads the whole dialogue
        assert not torch.allclose(a.context[0, :4], b.context[0, :4])
        return
    for field in ("logits", "speaker", "context"):
        torch.testing.assert_close(getattr(a, field)[0, :4], getattr(b, field)[0, :4])
        assert not torch.allclose(getattr(a, field)[0, 4:7], getattr(b, field)[0, 4:7])


@pytest.mark.parametrize("name", ["dialoguernn", "dialoguegcn", "dag-erc"])
def test_runs_stacked_with_vmap_give_each_runs_outputs_and_gradients(name):
    """mmemolr.train.stacked runs several models as one with vmap + functional_call."""
    from torch.func import functional_call, vmap

    model = _small(name)
    x, speakers, mask = _batch()
    runs = [{k: v.detach() + 0.1 * r * torch.randn_like(v) for k, v in model.named_parameters()} for r in range(2)]
    stacked = {k: torch.stack([run[k] for run in runs]).requires_grad_() for k in runs[0]}
    inputs = [torch.stack([t, t]) for t in (x, speakers, mask)]  # batched like the weights, as stacked does
    out = vmap(lambda p, *batch: functional_call(model, p, (*batch, 3)).logits)(stacked, *inputs)
    grads = torch.autograd.grad((out * mask.unsqueeze(-1)).pow(2).sum(), list(stacked.values()), allow_unused=True)
    for r, run in enumerate(runs):
        params = {k: v.clone().requires_grad_() for k, v in run.items()}
        one = functional_call(model, params, (x, speakers, mask, 3)).logits
        torch.testing.assert_close(out[r], one, atol=1e-5, rtol=1e-4)
        want = torch.autograd.grad((one * mask.unsqueeze(-1)).pow(2).sum(), list(params.values()), allow_unused=True)
        for got, ref in zip(grads, want):
            if ref is not None:
                torch.testing.assert_close(got[r], ref, atol=1e-5, rtol=1e-4)


def test_dialoguegcn_encoder_step_by_step_equals_the_packed_gru():
    """The encoder path for vmap (no packed sequences) against nn.GRU over packed sequences: outputs and
    gradients of two layers, padded dialogues."""
    model = _small("dialoguegcn", encoder_layers=2).double()
    x, _, mask = _batch()
    x = x.double().requires_grad_(True)
    weights = torch.randn(*mask.shape, 6, dtype=torch.float64)
    packed = model.encode(x, mask)
    steps = model._encode_steps(x, mask)
    torch.testing.assert_close(steps, packed, atol=1e-12, rtol=1e-10)
    params = [x, *model.encoder.parameters()]
    for a, b in zip(torch.autograd.grad((steps * weights).sum(), params),
                    torch.autograd.grad((packed * weights).sum(), params)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def test_bidirectional_backbones_do_read_the_future():
    model = _small("dialoguernn")
    x, speakers, mask = _batch()
    later = x.clone()
    later[0, 6] += 5.0
    assert not torch.allclose(model(x, speakers, mask, 3).logits[0, :6], model(later, speakers, mask, 3).logits[0, :6])


TARGETS = [
    ["target.name=onehot"], ["target.name=ls"], ["target.name=lcm"],
    ["target.name=rld", "target.refiner=paper", "target.combine=eta"],
    ["target.name=rld", "target.refiner=bounded", "target.combine=eta"],
    ["target.name=rld", "target.refiner=supervised", "target.combine=mix"],
    ["target.name=rld", "target.sim_speaker=false"], ["target.name=rld", "target.sim_ctx=false"],
]
SMALL = {
    "emolr": ["model.hidden=8", "model.input_dropout=0", "model.dropout=0"],
    "dialoguernn": ["model.backbone_options.dialoguernn={global_size: 8, emotion_size: 6, classifier_hidden: 6, "
                    "dropout: 0}"],
    "dialoguegcn": ["model.backbone_options.dialoguegcn={encoder_hidden: 4, encoder_layers: 1, n_bases: 4, "
                    "classifier_hidden: 6, dropout: 0}"],
    "dag-erc": ["model.backbone_options.dag-erc={hidden: 8, layers: 2, dropout: 0}"],
}


def _train_config(backbone: str, extra: list[str]) -> TrainConfig:
    config = load_config(TrainConfig, None, [f"model.backbone={backbone}", "model.label_dim=6", *SMALL[backbone],
                                             *extra])
    check_train_config(config)
    return config


@pytest.mark.parametrize("backbone", ["emolr", *NEW])
@pytest.mark.parametrize("target", TARGETS, ids=lambda t: "-".join(v.split("=")[1] for v in t))
def test_every_target_trains_on_every_backbone(backbone, target):
    x, speakers, mask = _batch()
    labels = torch.tensor([[0, 1, 2, 3, 0, 1, 2], [3, 3, 1, 0, 0, 0, 0], [2, 1, 0, 0, 0, 0, 0]])[mask]
    torch.manual_seed(0)
    model = build_model(_train_config(backbone, target), input_dim=6, n_classes=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    losses = []
    for _ in range(30):
        loss = model.target.loss(model.predictor(x, speakers, mask, 3).select(mask), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses


def test_backbone_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="model.backbone='gru' is not a known backbone"):
        check_train_config(load_config(TrainConfig, None, ["model.backbone=gru"]))
    with pytest.raises(ConfigError, match="model.backbone_options.dialoguegcn.window_past must be at least 0"):
        check_train_config(load_config(TrainConfig, None, ["model.backbone=dialoguegcn",
                                                           "model.backbone_options.dialoguegcn.window_past=-1"]))
    with pytest.raises(ConfigError, match="unknown key 'model.backbone_options.dag-erc.hiden'"):
        check_train_config(load_config(TrainConfig, None, ["model.backbone=dag-erc",
                                                           "model.backbone_options.dag-erc.hiden=3"]))
    with pytest.raises(ConfigError, match=r"model.backbone_options.dialoguernn.listener=True was removed \(never "
                       r"switched on .*\); no active listener \(the published MELD model\); drop the key"):
        check_train_config(load_config(TrainConfig, None, ["model.backbone=dialoguernn",
                                                           "model.backbone_options.dialoguernn.listener=true"]))
    with pytest.raises(ConfigError, match="'dagerc' is not a known backbone"):
        check_train_config(load_config(TrainConfig, None, ["model.backbone_options.dagerc.hidden=3"]))


def test_registry_holds_the_builtin_backbones_and_published_sizes():
    load_builtin_backbones()
    assert {"emolr", "dialoguernn", "dialoguegcn", "dag-erc"} <= set(BACKBONES)
    config = TrainConfig()
    config.model.backbone = "dialoguernn"
    model = build_backbone(config.model, 384, 7)
    assert model.state_dim == 300 and model.forward_cells.gru_g.hidden_size == 150  # Bi: 2 x D_g
    config.model.backbone = "dialoguegcn"
    assert build_backbone(config.model, 384, 7).options.window_past == 10


# ---------------------------------------------------------------- runs and old run folders


@pytest.fixture()
def features(tmp_path):
    return prepare(tmp_path / "features", make_corpus(sizes={"train": 40, "dev": 12, "test": 12}), signal=1.5)


@pytest.mark.parametrize("backbone", NEW)
def test_a_synthetic_corpus_with_signal_is_learned_above_chance(features, tmp_path, backbone):
    from mmemolr.train.inference import compare_metrics, evaluate_run
    from mmemolr.train.run import run_training

    config = _train_config(backbone, ["corpus=synth", "device=cpu", "optim.lr=0.01", "optim.max_epochs=8",
                                      "optim.batch_dialogues=4", "target.name=rld"])
    results = run_training(config, tmp_path / "run", features, progress=False)
    assert results["test"]["accuracy"] > 0.6  # three balanced labels: chance is 1/3
    assert compare_metrics(results, evaluate_run(tmp_path / "run")) == []
    state = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert all(k.startswith(("predictor.", "target.")) for k in state)


def test_emolr_backbone_keeps_the_emotion_predictors_weights():
    config = TrainConfig()
    backbone = build_backbone(config.model, 10, 4)
    plain = EmotionPredictor(10, 4, hidden=config.model.hidden, emotion_speaker=config.model.emotion_speaker)
    assert isinstance(backbone, EmotionPredictor)
    assert backbone.state_dict().keys() == plain.state_dict().keys()
    backbone.load_state_dict(plain.state_dict())  # a checkpoint from before backbones loads


def test_a_run_folder_from_before_backbones_loads_as_emolr(features, tmp_path):
    from mmemolr.train.inference import compare_metrics, evaluate_run
    from mmemolr.train.run import run_training

    config = _train_config("emolr", ["corpus=synth", "device=cpu", "optim.max_epochs=1", "optim.batch_dialogues=4"])
    run_dir = tmp_path / "run"
    run_training(config, run_dir, features, progress=False)
    results = json.loads((run_dir / "results.json").read_text())
    for key in ("backbone", "backbone_options"):  # as written before these keys existed
        del results["config"]["model"][key]
    (run_dir / "results.json").write_text(json.dumps(results))
    yaml_text = (run_dir / "config.yaml").read_text()
    (run_dir / "config.yaml").write_text("\n".join(line for line in yaml_text.splitlines()
                                                   if "backbone" not in line) + "\n")
    assert compare_metrics(results, evaluate_run(run_dir)) == []
    run_training(config, run_dir, features, progress=False)  # resuming the finished run accepts it too


# ---------------------------------------------------------------- the generalization preset (Table 5)


def test_generalization_preset_plans_backbones_by_targets_and_prints_table5(tmp_path):
    from scipy import stats
    from test_compare_plan import COMMON, fake_results

    from mmemolr.compare import build_plan, write_tables
    from mmemolr.compare.aggregate import format_text
    from mmemolr.compare.sweep import write_plan

    plan = build_plan("generalization", modalities=["t"], seeds=[0, 1, 2], **COMMON)
    assert plan.rows == ["dialoguernn", "dialoguegcn", "dag-erc", "emolr"]
    assert plan.columns == ["one-hot", "RLD"] and plan.compare == "columns" and plan.baseline == "one-hot"
    run = plan.run("dialoguegcn_rld_seed1")
    assert run.overrides == ["modalities=[t]", "model.backbone=dialoguegcn", "target.name=rld", "seed=1"]
    assert len(plan.runs) == 4 * 2 * 3
    with pytest.raises(ValueError, match="not a known backbone"):
        build_plan("generalization", modalities=["t"], seeds=[0], backbones=["gru"], **COMMON)
    with pytest.raises(ValueError, match="--backbones applies to --preset generalization"):
        build_plan("table6", modalities=["t"], seeds=[0], backbones=["dag-erc"], **COMMON)

    plan = build_plan("generalization", modalities=["t"], seeds=[0, 1, 2], backbones=["dialoguegcn", "dag-erc"],
                      **COMMON)
    write_plan(plan, tmp_path)
    wf1 = {"onehot": [0.55, 0.56, 0.57], "rld": [0.58, 0.58, 0.61]}
    for spec in plan.runs:
        target = spec.name.split("_")[1]
        (tmp_path / spec.name).mkdir()
        fake_results(tmp_path / spec.name, {"weighted_f1": wf1[target][spec.seed], "accuracy": 0.6, "macro_f1": 0.3},
                     spec.seed, target, spec.modalities)
    table = write_tables(tmp_path)
    text = format_text(table)
    assert "Backbone" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("dialoguegcn"))
    assert "56.00 ± 1.00" in line and "+3.00" in line
    assert f"{stats.ttest_rel(wf1['rld'], wf1['onehot']).pvalue:.3f}" in line
    assert "RLD class spec. (null)" in text  # the refinement diagnostics of the RLD column
