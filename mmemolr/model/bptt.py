"""The dialogue recurrences with a hand-written backward pass through time.

The Emotion Predictor (:mod:`mmemolr.model.predictor`) and DialogueRNN
(:mod:`mmemolr.model.backbones.dialoguernn`) share one recurrence: a context GRU (EmoLR's GRU_C,
DialogueRNN's GRU_G) reading u_t and the speaker's previous state, an attention over the context history,
and a party GRU (GRU_S, GRU_P) reading u_t and the attention, whose state is kept per party; then an
emotion GRU that feeds nothing back. :func:`global_party_recurrence` is the first part and
:func:`gru_sequence` the emotion GRU, each a :class:`torch.autograd.Function`: the forward loop runs
without recording a graph and keeps what the backward needs per step (the products' inputs, the gates,
the attention weights); the backward loop runs the chain rule over the steps in reverse with a handful of
batched ops per step, and every weight gradient is one product over all steps after it (as cuDNN's RNN
backward does). Autograd through the per-step ops did the same arithmetic with about twice the ops and
an autograd node for each; on two CPU cores the recurrence was most of an epoch's time.

Same values on real steps as the models' autograd loops; only the order of floating-point sums differs.
Used wherever the models run, except the predictor's trace of every party state. Not twice
differentiable: a backward pass that records a graph (``create_graph=True``) raises instead of returning
wrong second derivatives. Under ``vmap`` (the batched groups of runs of
``mmemolr.train.stacked``) each Function's vmap rule folds the R runs into its groups: R runs of K
directions are one call with R·K directions, each with its own weights, so a group of runs costs one
recurrence of R·K groups instead of R recurrences. Padded steps (after a dialogue's last real step) are
computed but read by no real step; the callers hold the last real step's states there (the predictor zeroes
its s_{p,t} there), so every output on padding is what the autograd loops give.

The test suite verifies them on the CPU (:data:`VERIFIED`). On any other device type (CUDA, MPS) the first
use (:func:`usable`) compares one small forward and backward of each with autograd through ``torch.gru_cell``
loops (:func:`self_check`); on a mismatch the models take their autograd loops there, with a warning that
names the device. ``benchmarks/cuda_check.py`` runs this check first.

Shapes: K directions (their cells stacked), T steps, B dialogues, P parties, D the context and party
state size (equal), F = D_u.
"""

from __future__ import annotations

import logging
import warnings

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

# The models take these recurrences where they support the model's options; False sends them to their
# autograd loops (the equivalence tests and benchmarks/bench_bptt.py compare the two).
ENABLED = True
VERIFIED = frozenset({"cpu"})  # device types on which the test suite runs them against autograd
_checked: dict[str, bool] = {}  # device type -> self_check passed (this process)


def usable(device: torch.device | str) -> bool:
    """Whether the models take the hand-written recurrences on ``device``: :data:`ENABLED`, and the device
    type verified by the tests or, the first time it is asked about, by :func:`self_check` (a mismatch warns
    and answers False from then on). Not yet checked and asked inside a ``torch.func`` transform: False
    (the training entry points ask first, outside)."""
    if not ENABLED:
        return False
    device = torch.device(device)
    if device.type in VERIFIED:
        return True
    if device.type not in _checked:
        if torch._C._are_functorch_transforms_active():
            return False
        worst, problem = self_check(device)
        _checked[device.type] = problem is None
        if problem is not None:
            name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
            message = (f"the hand-written recurrences (mmemolr.model.bptt) disagree with autograd on {device} ({name}): "
                       f"{problem}; using the models' autograd loops on {device.type} in this process")
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            log.warning(message)
        else:
            log.info("hand-written recurrences checked on %s: largest difference from autograd %.2e", device, worst)
    return _checked[device.type]


def self_check(device: torch.device | str, rtol: float = 1e-3, atol: float = 1e-4) -> tuple[float, str | None]:
    """One small forward and backward (float32, a padded step) of both
    recurrences on ``device`` against autograd through ``torch.gru_cell`` loops: the largest absolute
    difference of any output or gradient, and what is out of tolerance (None when all agree)."""
    device = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    k, t, b, f, d, p = 2, 5, 3, 6, 4, 3

    def rand(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape, generator=gen) * 0.5).to(device).requires_grad_()

    onehot = F.one_hot(torch.randint(0, p, (k, t, b), generator=gen), p).float()
    onehot[:, -1, 0] = 0  # a padded step
    onehot = onehot.to(device)
    u = rand(k, t, b, f)
    groups = ([rand(3 * d, f + d) for _ in range(2 * k)], [rand(3 * d, d) for _ in range(2 * k)],
              [rand(3 * d) for _ in range(2 * k)], [rand(3 * d) for _ in range(2 * k)], [rand(d, f) for _ in range(k)])
    pre, w_hh, b_hh = rand(t, k, b, 3 * d), rand(k, 3 * d, d), rand(k, 3 * d)
    cases = [("global_party_recurrence", [u, *(w for g in groups for w in g)],
              lambda: global_party_recurrence(u, onehot, *groups), lambda: _reference_global_party(u, onehot, *groups))]
    cases.append(("gru_sequence", [pre, w_hh, b_hh], lambda: (gru_sequence(pre, w_hh, b_hh),),
                  lambda: (_reference_gru_sequence(pre, w_hh, b_hh),)))
    worst, problems = 0.0, []
    with torch.inference_mode(False), torch.enable_grad():
        for name, inputs, fast, slow in cases:
            results = []
            for fn in (fast, slow):
                outputs = fn()
                weights = torch.Generator().manual_seed(1)
                loss = sum((o * torch.randn(o.shape, generator=weights).to(device)).sum() for o in outputs)
                grads = torch.autograd.grad(loss, inputs, allow_unused=True)
                results.append([o.detach() for o in outputs]
                               + [g if g is not None else torch.zeros_like(x) for g, x in zip(grads, inputs)])
            for i, (a, c) in enumerate(zip(*results)):
                worst = max(worst, float((a - c).abs().max()))
                if not torch.allclose(a, c, rtol=rtol, atol=atol):
                    what = f"output {i}" if i < len(results[0]) - len(inputs) else "gradient"
                    problems.append(f"{name} {what} off by {float((a - c).abs().max()):.2e}")
    return worst, ("; ".join(problems[:3]) if problems else None)


def _reference_global_party(u: torch.Tensor, onehot: torch.Tensor, w_ih: list[torch.Tensor], w_hh: list[torch.Tensor],
                            b_ih: list[torch.Tensor], b_hh: list[torch.Tensor],
                            w_att: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`global_party_recurrence` written plainly, for autograd (:func:`self_check`)."""
    k, t_max, b, _ = u.shape
    d, p = w_hh[0].shape[-1], onehot.shape[-1]
    out_g, out_q, out_prev = [], [], []
    for i in range(k):
        g, parties, history = u.new_zeros(b, d), u.new_zeros(b, p, d), []
        gs, qs, prevs = [], [], []
        for t in range(t_max):
            q_prev = torch.bmm(onehot[i, t].unsqueeze(1), parties).squeeze(1)
            if not history:
                c = u.new_zeros(b, d)
            else:
                keys = torch.stack(history)  # (t, B, D)
                alpha = torch.softmax((keys * (u[i, t] @ w_att[i].t())).sum(-1), 0)
                c = (alpha.unsqueeze(-1) * keys).sum(0)
            g = torch.gru_cell(torch.cat([u[i, t], q_prev], -1), g, w_ih[i], w_hh[i], b_ih[i], b_hh[i])
            q = torch.gru_cell(torch.cat([u[i, t], c], -1), q_prev, w_ih[k + i], w_hh[k + i], b_ih[k + i], b_hh[k + i])
            parties = torch.where(onehot[i, t].unsqueeze(-1) > 0, q.unsqueeze(1), parties)
            history.append(g)
            gs.append(g)
            qs.append(q)
            prevs.append(q_prev)
        out_g.append(torch.stack(gs, 1))
        out_q.append(torch.stack(qs))
        out_prev.append(torch.stack(prevs))
    return torch.stack(out_g), torch.stack(out_q), torch.stack(out_prev)


def _reference_gru_sequence(pre: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
    """:func:`gru_sequence` written plainly (the input part ``pre`` through an identity input weight)."""
    t_max, k, b, three = pre.shape
    eye, zero = torch.eye(three, device=pre.device), pre.new_zeros(three)
    out = []
    for i in range(k):
        h, hs = pre.new_zeros(b, three // 3), []
        for t in range(t_max):
            h = torch.gru_cell(pre[t, i], h, eye, w_hh[i], zero, b_hh[i])
            hs.append(h)
        out.append(torch.stack(hs))
    return torch.stack(out, 1)


def _first_order_only(name: str) -> None:
    """The backward passes are not recorded: refuse a backward that would record a graph of them."""
    if torch.is_grad_enabled():
        raise RuntimeError(f"{name} (mmemolr.model.bptt) is not twice differentiable: its backward pass is written by "
                           "hand and not recorded (create_graph=True); set mmemolr.model.bptt.ENABLED = False to "
                           "run the models' autograd loops instead")


def _gates(gi: torch.Tensor, gh: torch.Tensor, h_prev: torch.Tensor, rz: torch.Tensor, n: torch.Tensor,
           h: torch.Tensor) -> None:
    """One GRU update (PyTorch's gate order r, z, n) from the input and hidden pre-activations, writing the
    gates r ⊕ z into ``rz``, n into ``n`` and the new state into ``h`` (the backward reads the first two)."""
    d = h.shape[-1]
    torch.add(gi[..., :2 * d], gh[..., :2 * d], out=rz).sigmoid_()
    torch.addcmul(gi[..., 2 * d:], rz[..., :d], gh[..., 2 * d:], out=n).tanh_()
    torch.lerp(n, h_prev, rz[..., d:], out=h)


def _gate_factors(rz: torch.Tensor, n: torch.Tensor, gh_n: torch.Tensor, h_prev: torch.Tensor) -> torch.Tensor:
    """(T, 2, G, B, 3, D): for every step, what dL/dh_t (G, B, D) is multiplied by to give the gradients of
    the input pre-activations [r, z, n] (index 0) and of the hidden ones (index 1). With
    h = n + z (h_prev - n), n = tanh(a_n + r gh_n), r = σ(.), z = σ(.):
      d a_r = dh (1 - z)(1 - n²) gh_n r (1 - r)  (both),   d a_z = dh (h_prev - n) z (1 - z)  (both),
      d a_n = dh (1 - z)(1 - n²)  (input),  d gh_n = that times r  (hidden).
    Computed for all steps at once, so a step of the backward loop is one multiply."""
    d = n.shape[-1]
    r, z = rz[..., :d], rz[..., d:]
    dn = (1 - z) * (1 - n * n)
    factor = n.new_empty(n.shape[0], 2, *n.shape[1:-1], 3, d)
    factor[:, 0, ..., 2, :] = dn
    factor[:, 1, ..., 2, :] = dn * r
    torch.mul(dn * gh_n, r * (1 - r), out=factor[:, 0, ..., 0, :])
    torch.mul(h_prev - n, z * (1 - z), out=factor[:, 0, ..., 1, :])
    factor[:, 1, ..., :2, :] = factor[:, 0, ..., :2, :]
    return factor


def global_party_recurrence(u: torch.Tensor, onehot: torch.Tensor, w_ih: list[torch.Tensor],
                            w_hh: list[torch.Tensor], b_ih: list[torch.Tensor], b_hh: list[torch.Tensor],
                            w_att: list[torch.Tensor],
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """g_t (K, B, T, D), q_{s,t} and q_{s,t-1} (K, T, B, D) of K directions.

    ``u`` (K, T, B, F) each direction's utterance vectors, time-major; ``onehot`` (K, T, B, P) the
    speaking party (zero rows on padded steps); ``w_ih`` (3D, F + D), ``w_hh`` (3D, D), ``b_ih``/``b_hh``
    (3D,): 2K of each, GRU_G of the K directions, then GRU_P of the K directions (PyTorch's GRUCell
    layout: gates r, z, n; GRU_G reads u_t ⊕ q_{s,t-1}, GRU_P reads u_t ⊕ c_t); ``w_att`` K times (D, F),
    the attention's W_α (query q_t = W_α u_t). The parameters are passed as they are, not stacked: a stack
    would copy the input weights at every batch.
    """
    k = u.shape[0]
    if not len(w_ih) == len(w_hh) == len(b_ih) == len(b_hh) == 2 * k or len(w_att) != k:
        raise ValueError(f"{k} directions need 2K = {2 * k} GRU weights of each kind and K attention weights")
    return _GlobalParty.apply(u, onehot, *w_ih, *w_hh, *b_ih, *b_hh, *w_att)[:3]


class _GlobalParty(torch.autograd.Function):
    @staticmethod
    def forward(u, onehot, *params):
        k, t_max, b, f = u.shape
        w_ih, w_hh, b_ih, b_hh = (params[i * 2 * k:(i + 1) * 2 * k] for i in range(4))
        w_att = params[8 * k:]
        d = w_hh[0].shape[-1]
        p = onehot.shape[-1]
        kb, rows = k * b, t_max * b
        u_rows = u.reshape(k, rows, f)
        # Added to every step's product over 4K groups [GRU_G input, GRU_P input, GRU_G hidden, GRU_P hidden]:
        # the u_t parts of both GRUs' inputs (with b_ih) for all steps, and b_hh.
        add = u.new_empty(4 * k, t_max, b, 3 * d)
        for i in range(2 * k):
            torch.addmm(b_ih[i], u_rows[i % k], w_ih[i][:, :f].t(), out=add[i].view(rows, 3 * d))
            add[2 * k + i] = b_hh[i]
        query = u.new_empty(t_max, k, b, d)
        for i in range(k):
            query[:, i] = (u_rows[i] @ w_att[i].t()).view(t_max, b, d)
        query = query.view(t_max, kb, d)
        w_back = torch.stack([w[:, f:] for w in w_ih] + list(w_hh))  # (4K, 3D, D): the input gradient's layout
        w_step = w_back.transpose(1, 2).contiguous()  # (4K, D, 3D)
        onehot_tm = onehot.transpose(0, 1).reshape(t_max, kb, 1, p)
        speaks = (onehot_tm > 0).view(t_max, k, b, p, 1)

        states = u.new_zeros(t_max, 4 * k, b, d)  # the products' inputs [q_{s,t-1}, c_t, g_{t-1}, q_{s,t-1}]
        acts = u.new_empty(t_max, 4 * k, b, 3 * d)  # the products (gate pre-activations)
        rz = u.new_empty(t_max, 2 * k, b, 2 * d)
        h = u.new_empty(t_max, 2 * k, b, d)  # n_t, then overwritten by [g_t, q_{s,t}]
        n_all = u.new_empty(t_max, 2 * k, b, d)
        # Time-major, so that the keys g_0 .. g_{t-1} are one contiguous block: the attention is elementwise
        # products and sums over them (batched products over KB strided blocks loop over the batch on CPU).
        alpha = u.new_zeros(t_max, t_max, kb)  # attention weights of step t over steps < t
        history = u.new_empty(t_max, kb, d)  # g_t: the attention's keys and an output
        parties = u.new_zeros(kb, p, d)
        for t in range(t_max):
            x = states[t]
            torch.bmm(onehot_tm[t], parties, out=x[:k].view(kb, 1, d))
            x[3 * k:] = x[:k]
            if t:
                x[2 * k:3 * k] = h[t - 1, :k]
            if t:
                keys = history[:t]  # (t, KB, D)
                weights = torch.softmax((keys * query[t]).sum(-1), 0, out=alpha[t, :t])  # (t, KB)
                torch.sum(weights.unsqueeze(-1) * keys, 0, out=x[k:2 * k].view(kb, d))
            a = torch.baddbmm(add[:, t], x, w_step, out=acts[t])
            _gates(a[:2 * k], a[2 * k:], x[2 * k:], rz[t], n_all[t], h[t])
            h_new = h[t]
            history[t] = h_new[:k].view(kb, d)
            parties = torch.where(speaks[t], h_new[k:].unsqueeze(2), parties.view(k, b, p, d)).view(kb, p, d)
        # g_t, q_{s,t}, q_{s,t-1}, then what the backward needs (non-differentiable outputs: the form of
        # autograd.Function that torch.func transforms accept saves intermediates as outputs)
        return (history.view(t_max, k, b, d).permute(1, 2, 0, 3), h[:, k:].transpose(0, 1),
                states[:, :k].transpose(0, 1).clone(), w_back, query, states, acts, rz, n_all, alpha)

    @staticmethod
    def setup_context(ctx, inputs, output):
        u, onehot, *params = inputs
        k = u.shape[0]
        g_out, _, _, *saved = output
        ctx.mark_non_differentiable(*saved)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(u, onehot, g_out, *saved, *params[:2 * k], *params[8 * k:])

    @staticmethod
    def vmap(info, in_dims, u, onehot, *params):
        """R runs (the vmapped dimension) of K directions are R·K directions, each with its own weights."""
        runs = info.batch_size
        u, onehot = (_runs_first(x, dim, runs) for x, dim in ((u, in_dims[0]), (onehot, in_dims[1])))
        k = u.shape[1]
        per_run = [_runs_first(x, dim, runs).unbind(0) for x, dim in zip(params, in_dims[2:])]
        groups = []
        for kind in range(4):  # w_ih, w_hh, b_ih, b_hh: GRU_G of the K directions, then GRU_P
            for first in (kind * 2 * k, kind * 2 * k + k):
                groups += [per_run[first + i][r] for r in range(runs) for i in range(k)]
        groups += [per_run[8 * k + i][r] for r in range(runs) for i in range(k)]
        out = _GlobalParty.apply(u.flatten(0, 1), onehot.flatten(0, 1), *groups)
        states = tuple(x.unflatten(0, (runs, k)) for x in out[:3])
        return states + tuple(out[3:]), (0, 0, 0) + (None,) * (len(out) - 3)

    @staticmethod
    def backward(ctx, grad_g, grad_q, grad_q_prev, *_intermediates):
        _first_order_only("global_party_recurrence")
        u, onehot, g_out, w_back, query, states, acts, rz, n_all, alpha, *weights = ctx.saved_tensors
        k, t_max, b, f = u.shape
        d, p = w_back.shape[-1], onehot.shape[-1]
        w_ih, w_att = weights[:2 * k], weights[2 * k:]
        kb = k * b
        u_rows = u.reshape(k, t_max * b, f)
        onehot_tm = onehot.transpose(0, 1).reshape(t_max, kb, 1, p)
        history = g_out.permute(2, 0, 1, 3).reshape(t_max, kb, d)
        # dL/dg_t, to which the loop adds the attention's gradients for the keys
        grad_g = (u_rows.new_zeros(t_max, kb, d) if grad_g is None  # a copy: the loop adds to it
                  else grad_g.permute(2, 0, 1, 3).clone(memory_format=torch.contiguous_format).view(t_max, kb, d))
        grad_q = u_rows.new_zeros(t_max, k, b, d) if grad_q is None else grad_q.transpose(0, 1)
        if grad_q_prev is not None:
            grad_q_prev = grad_q_prev.transpose(0, 1)
        factor = _gate_factors(rz, n_all, acts[:, 2 * k:, :, 2 * d:], states[:, 2 * k:])
        z = rz[..., d:].contiguous()
        keep = 1 - onehot_tm.transpose(2, 3)  # (T, KB, P, 1): the speaker's slot was replaced at t

        grad_acts = u_rows.new_empty(t_max, 4 * k, b, 3 * d)
        grad_query = u_rows.new_zeros(t_max, kb, d)
        dh = u_rows.new_empty(2 * k, b, d)
        carry_g = u_rows.new_zeros(k, b, d)  # dL/dg_t through step t + 1's GRU_G hidden input
        grad_parties = u_rows.new_zeros(kb, p, d)  # dL/d party states after step t
        for t in reversed(range(t_max)):
            torch.add(grad_g[t].view(k, b, d), carry_g, out=dh[:k])
            torch.baddbmm(grad_q[t].reshape(kb, 1, d), onehot_tm[t], grad_parties, out=dh[k:].view(kb, 1, d))
            grad_parties.mul_(keep[t])
            da = torch.mul(factor[t], dh.view(1, 2 * k, b, 1, d), out=grad_acts[t].view(2, 2 * k, b, 3, d))
            d_in = torch.bmm(da.view(4 * k, b, 3 * d), w_back)  # (4K, B, D)
            carry_g = torch.addcmul(d_in[2 * k:3 * k], dh[:k], z[t, :k])
            dq_prev = torch.addcmul(d_in[:k] + d_in[3 * k:], dh[k:], z[t, k:])
            if grad_q_prev is not None:
                dq_prev += grad_q_prev[t]
            grad_parties.baddbmm_(onehot_tm[t].transpose(1, 2), dq_prev.view(kb, 1, d))
            if t:
                dc = d_in[k:2 * k].view(kb, d)
                keys = history[:t]  # (t, KB, D)
                a = alpha[t, :t]  # (t, KB)
                da = (keys * dc).sum(-1)
                ds = (a * (da - (a * da).sum(0))).unsqueeze(-1)  # softmax backward: d scores
                torch.sum(ds * keys, 0, out=grad_query[t])
                # the keys get a from c_t = Σ a_i g_i and ds from the scores q_t · g_i
                grad_g[:t].addcmul_(a.unsqueeze(-1), dc).addcmul_(ds, query[t])
        # weight gradients: one product each over all steps
        rows = t_max * b
        grad_acts = grad_acts.transpose(0, 1).reshape(4 * k, rows, 3 * d)
        states = states.transpose(0, 1).reshape(4 * k, rows, d)
        grad_in = grad_acts[:2 * k]
        grad_w_ih = [grad_in[i].t() @ torch.cat([u_rows[i % k], states[i]], -1) for i in range(2 * k)]
        grad_w_hh = list(torch.bmm(grad_acts[2 * k:].transpose(1, 2), states[2 * k:]).unbind(0))
        grad_b_ih = list(grad_in.sum(1).unbind(0))
        grad_b_hh = list(grad_acts[2 * k:].sum(1).unbind(0))
        grad_query = grad_query.view(t_max, k, b, d).transpose(0, 1).reshape(k, rows, d)
        grad_w_att = [grad_query[i].t() @ u_rows[i] for i in range(k)]
        grad_u = None
        if ctx.needs_input_grad[0]:
            grad_u = torch.stack([grad_in[i] @ w_ih[i][:, :f] + grad_in[k + i] @ w_ih[k + i][:, :f]
                                  + grad_query[i] @ w_att[i] for i in range(k)]).view(k, t_max, b, f)
        return grad_u, None, *grad_w_ih, *grad_w_hh, *grad_b_ih, *grad_b_hh, *grad_w_att


def gru_sequence(pre: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
    """GRU states h_t (T, K, B, H) of K independent GRUs from h_0 = 0 over precomputed input parts.

    ``pre`` (T, K, B, 3H): each step's input pre-activations W_ih x_t + b_ih; ``w_hh`` (K, 3H, H) and
    ``b_hh`` (K, 3H) the hidden weights (PyTorch's GRUCell layout, gates r, z, n).
    """
    return _GruSequence.apply(pre, w_hh, b_hh)[0]


class _GruSequence(torch.autograd.Function):
    @staticmethod
    def forward(pre, w_hh, b_hh):
        t_max, k, b, _ = pre.shape
        d = w_hh.shape[-1]
        w_step = w_hh.transpose(1, 2).contiguous()  # (K, H, 3H)
        bias = b_hh.unsqueeze(1)
        acts = pre.new_empty(t_max, k, b, 3 * d)  # the hidden products W_hh h_{t-1} + b_hh
        rz = pre.new_empty(t_max, k, b, 2 * d)
        n_all = pre.new_empty(t_max, k, b, d)
        h = pre.new_empty(t_max + 1, k, b, d)  # h_0 = 0, then the outputs
        h[0] = 0
        for t in range(t_max):
            a = torch.baddbmm(bias, h[t], w_step, out=acts[t])
            _gates(pre[t], a, h[t], rz[t], n_all[t], h[t + 1])
        return h[1:], acts, rz, n_all

    @staticmethod
    def setup_context(ctx, inputs, output):
        h, *saved = output
        ctx.mark_non_differentiable(*saved)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(inputs[1], h, *saved)

    @staticmethod
    def vmap(info, in_dims, pre, w_hh, b_hh):
        """R runs (the vmapped dimension) of K GRUs are R·K GRUs."""
        runs = info.batch_size
        pre = _runs_first(pre, in_dims[0], runs).transpose(0, 1)  # (T, R, K, B, 3H)
        k = pre.shape[2]
        w_hh, b_hh = (_runs_first(x, dim, runs).flatten(0, 1) for x, dim in ((w_hh, in_dims[1]), (b_hh, in_dims[2])))
        h, *saved = _GruSequence.apply(pre.flatten(1, 2), w_hh, b_hh)
        return (h.unflatten(1, (runs, k)), *saved), (1,) + (None,) * len(saved)

    @staticmethod
    def backward(ctx, grad_h, *_intermediates):
        _first_order_only("gru_sequence")
        w_hh, h_out, acts, rz, n_all = ctx.saved_tensors
        t_max, k, b, d = n_all.shape
        if grad_h is None:
            return None, None, None
        h_prev = torch.cat([h_out.new_zeros(1, k, b, d), h_out[:-1]])
        # d pre (= d of the input pre-activations) and d of the hidden products, per step: dL/dh_t times
        # factors of the forward values (as in _GlobalParty.backward), for all steps at once.
        factor = _gate_factors(rz, n_all, acts[..., 2 * d:], h_prev)
        z = rz[..., d:].contiguous()
        grad = n_all.new_empty(t_max, 2, k, b, 3 * d)  # [d pre, d hidden product] per step
        carry = n_all.new_zeros(k, b, d)
        for t in reversed(range(t_max)):
            dh = grad_h[t] + carry
            da = torch.mul(factor[t], dh.view(1, k, b, 1, d), out=grad[t].view(2, k, b, 3, d)).view(2, k, b, 3 * d)
            carry = torch.baddbmm(dh * z[t], da[1], w_hh)
        grad_hidden = grad[:, 1].transpose(0, 1).reshape(k, t_max * b, 3 * d)
        grad_w_hh = torch.bmm(grad_hidden.transpose(1, 2), h_prev.transpose(0, 1).reshape(k, t_max * b, d))
        return grad[:, 0], grad_w_hh, grad_hidden.sum(1)


def _runs_first(x: torch.Tensor, dim: int | None, runs: int) -> torch.Tensor:
    """``x`` with its vmapped dimension first, or expanded to ``runs`` when it has none."""
    return x.movedim(dim, 0) if dim is not None else x.expand(runs, *x.shape)
