"""Fast decoding steps: `fast_step(model)` -> a drop-in for `model.step` that runs one new id
per row faster, for every model kind in the registry (`FAST_STEPS`).

Why it is faster (on CPU at batch 1: 1.3-2.1x per kind, docs/benchmarks.md, issue 14): a
decoding step is a chain of matrix-vector products plus a few dozen small ops. `nn.Linear`
multiplies by `W.t()`, a transposed GEMV 1.25-2x slower than a product with the weights stored
(in, out); a step here multiplies by weights transposed once, up front, skips the modules'
Python, and looks the first layer's input product up in a table per id. On a GPU, rnn/lstm/gru
replay their step as a CUDA graph (not yet run on one). The state is the model's own (recurrent
tensors, the Transformer's `KVCache`, the cnn's `ConvState`), so a fast step continues a plain one and the other way
round, `select_rows` and beam search are unchanged, and whatever a fast step does not cover (a
prefix of several ids, a fresh state, a learned-position re-encode) goes to `model.step`.

Floating point: the same products summed in another order, so logits differ from `model.step`
by float32 rounding (~1e-6 relative, tests bound them); the draw is the same, so a seed gives
the same ids unless two candidates tie to within that rounding (never seen in the tests' runs).

The transposed weights are a copy (the model's weights again in memory), made on first use
and reused while no parameter changed (`_version` counters) on the same device and dtype.
Not covered: training mode (dropout) and non-float32 weights: `fast_step` returns None there.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import LongTensor, Tensor

from melodygen.models.base import SequenceModel
from melodygen.models.kv_cache import KVCache
from melodygen.models.transformer import rope_tables

StepFn = Callable[[LongTensor, Any], tuple[Tensor, Any]]
_BUILT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (versions, stepper)


def fast_step(model: SequenceModel, *, build: bool = True) -> StepFn | None:
    """A function like `model.step` (same arguments, state and results up to float rounding),
    faster for one id per row; None where there is no fast path for `model` (in training mode,
    weights not float32, a kind without one), or where it is not built yet and `build` is False
    (setting it up costs a few steps' time: not worth it for a handful of steps)."""
    builder = FAST_STEPS.get(getattr(model, "kind", None))
    params = list(model.parameters())
    if builder is None or model.training or any(p.dtype != torch.float32 for p in params):
        return None
    versions = tuple((id(p), p._version, p.device) for p in params)
    built = _BUILT.get(model)
    if built is None or built[0] != versions:
        if not build:
            return None
        with torch.no_grad():
            built = versions, builder(model)
        _BUILT[model] = built
    return built[1]


def _t(weight: Tensor) -> Tensor:
    """(out, in) -> a contiguous (in, out) copy: x @ it is the fast GEMV. (Copied into a new
    tensor: twice as fast as `.t().contiguous()` here, and this is time to the first event.)"""
    return weight.new_empty(weight.shape[::-1]).copy_(weight.detach().t())


class _Stepper:
    """Calls the fused one-id step where it applies, `model.step` elsewhere."""

    def __init__(self, model: SequenceModel):
        self._model = weakref.ref(model)  # `_BUILT` holds the stepper while the model lives

    @property
    def model(self) -> SequenceModel:
        return self._model()

    def __call__(self, ids: LongTensor, state: Any = None) -> tuple[Tensor, Any]:
        if state is None or ids.shape[1] != 1:
            return self.model.step(ids, state)
        return self.one(ids[:, 0], state)

    def one(self, ids: LongTensor, state: Any) -> tuple[Tensor, Any]:
        """ids (B,) continuing `state` -> (logits (B, 1, V), state)."""
        raise NotImplementedError


class _RecurrentStepper(_Stepper):
    """rnn / lstm / gru: per layer the input's product (the first layer's is a table: embedding
    times input weights, one row per id) plus the hidden state's, then the cell's gates as in
    `torch.nn`. The GRU keeps its hidden product apart (r gates it); the others add the biases
    into the input's."""

    def __init__(self, model: SequenceModel):
        super().__init__(model)
        rnn = model.rnn
        self.kind = model.kind if model.kind != "attention_lstm" else "lstm"
        self.layers = []
        for layer in range(rnn.num_layers):
            w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
            b_ih, b_hh = getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}")
            if self.kind == "gru":  # r and z add both biases; n's hidden bias sits inside r * (.)
                H = rnn.hidden_size
                b_i = (b_ih + torch.cat([b_hh[:2 * H], torch.zeros_like(b_hh[2 * H:])])).detach()
                w_h = (_t(w_hh[:2 * H]), _t(w_hh[2 * H:]), b_hh[2 * H:].detach())
            else:
                b_i, w_h = (b_ih + b_hh).detach(), _t(w_hh)
            self.layers.append((_t(w_ih), b_i, w_h))
        self.table = F.linear(model.embed.weight, rnn.weight_ih_l0, self.layers[0][1])  # (V, gates)
        self.head = _t(model.head.weight), model.head.bias.detach()

    def cells(self, ids: LongTensor, state: Any) -> tuple[Tensor, Any]:
        """ids (B,) -> (the last layer's output (B, H), new state shaped like the plain one)."""
        h_all, c_all = state if self.kind == "lstm" else (state, None)
        hs, cs = [], []
        x = None
        for layer, (w_i, b_i, w_h) in enumerate(self.layers):
            gi = F.embedding(ids, self.table) if layer == 0 else torch.addmm(b_i, x, w_i)  # (B, gates)
            h = h_all[layer]
            if self.kind == "gru":
                H = h.shape[1]
                r, z = torch.sigmoid(torch.addmm(gi[:, :2 * H], h, w_h[0])).chunk(2, 1)
                n = torch.tanh(torch.addcmul(gi[:, 2 * H:], r, torch.addmm(w_h[2], h, w_h[1])))
                x = torch.lerp(n, h, z)  # (1 - z) n + z h
            elif self.kind == "rnn":
                x = torch.tanh(torch.addmm(gi, h, w_h))
            else:
                gates = torch.addmm(gi, h, w_h)
                i, f, _, o = torch.sigmoid(gates).chunk(4, 1)
                c = torch.addcmul(f * c_all[layer], i, torch.tanh(gates[:, 2 * h.shape[1]:3 * h.shape[1]]))
                x = o * torch.tanh(c)
                cs.append(c)
            hs.append(x)
        h_new = torch.stack(hs)
        return x, ((h_new, torch.stack(cs)) if self.kind == "lstm" else h_new)

    def one(self, ids: LongTensor, state: Any) -> tuple[Tensor, Any]:
        out, state = self.cells(ids, state)
        return torch.addmm(self.head[1], out, self.head[0])[:, None], state


class _GraphedRecurrentStepper(_RecurrentStepper):
    """On CUDA, rnn / lstm / gru replay their one-id step as a captured CUDA graph (one launch
    instead of ~30 per step: at batch 1 a GPU step is launch-bound). Their state keeps its shape,
    so one graph per batch size serves every step; inputs are copied into the graph's buffers and
    outputs copied out (a caller may keep an older state, e.g. beam search). Written for issue
    14 but not yet run on a GPU (none was lent); `tests/test_fast.py`'s cuda test checks it
    against the eager step. The Transformer's cache grows each step: it stays eager on a GPU."""

    def __init__(self, model: SequenceModel):
        super().__init__(model)
        self.graphs = {}  # batch size -> (graph, ids, state in, (logits, state out)); None: eager

    def one(self, ids: LongTensor, state: Any) -> tuple[Tensor, Any]:
        if ids.device.type != "cuda" or self.graphs is None:
            return super().one(ids, state)
        if ids.shape[0] not in self.graphs:
            try:
                self.graphs[ids.shape[0]] = self._capture(ids, state)
            except RuntimeError:  # capture unsupported here: the eager step, from now on
                self.graphs = None
                return super().one(ids, state)
        graph, ids_in, state_in, (logits, state_out) = self.graphs[ids.shape[0]]
        ids_in.copy_(ids)
        for buffer, value in zip(_tensors(state_in), _tensors(state)):
            buffer.copy_(value)
        graph.replay()
        return logits.clone(), _map(state_out, torch.clone)

    def _capture(self, ids: LongTensor, state: Any) -> tuple:
        ids_in, state_in = ids.clone(), _map(state, torch.clone)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the capture, as torch.cuda.graphs asks
            super().one(ids_in, state_in)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = super().one(ids_in, state_in)
        return graph, ids_in, state_in, outputs


def _tensors(state: Any) -> list[Tensor]:
    return list(state) if isinstance(state, tuple) else [state]


def _map(state: Any, fn) -> Any:
    return tuple(fn(s) for s in state) if isinstance(state, tuple) else fn(state)


class _AttentionLSTMStepper(_RecurrentStepper):
    """attention_lstm: the LSTM above, then attention over the window of recent outputs."""

    def __init__(self, model: SequenceModel):
        super().__init__(model)
        self.query, self.key = _t(model.query.weight), _t(model.key.weight)
        self.combine = _t(model.combine.weight), model.combine.bias.detach()
        self.keep = model.settings.attention_length - 1

    def one(self, ids: LongTensor, state: Any) -> tuple[Tensor, Any]:
        recurrent, recent = state
        out, recurrent = self.cells(ids, recurrent)  # (B, H)
        past = torch.cat([recent, out[:, None]], dim=1)  # (B, P + 1, H)
        q, k = out @ self.query, past @ self.key
        read = F.scaled_dot_product_attention(q[:, None, None], k[:, None], past[:, None])[:, 0, 0]
        mixed = out + torch.tanh(torch.addmm(self.combine[1], torch.cat([out, read], dim=1), self.combine[0]))
        logits = torch.addmm(self.model.head.bias, mixed, self.head[0])
        return logits[:, None], (recurrent, past[:, max(0, past.shape[1] - self.keep):])


class _TransformerStepper(_Stepper):
    """transformer: new positions through every layer with transposed weights, the model's own
    KV cache (`KVCache.store`) and the block's own attention (`SelfAttention.split_heads` and
    `attend`: relative logits, SDPA) over the cached keys; the head is a transposed copy of the
    (tied) embedding. What is done here and not there: the products (`_Weights`), the rotation
    of rope in 3 ops from a table, and the MLP (Linear, GELU, Linear, as `Block.mlp`). Without
    learned positions the first layer's q, k, v depend on the id alone: a table (V, 3C) of
    LN(embedding) times its qkv weights gives them.

    `one` takes one id per row; `many` takes several per row (drafted ids to check, see
    `sampling.drafts`), with products through `_Weights.rows` and, past `max_context`, a banded
    mask that gives each id the same window of keys it would have had stepped one at a time."""

    def __init__(self, model: SequenceModel):
        super().__init__(model)
        s = model.settings
        self.head_size = s.d_model // s.n_heads
        self.layers = [(b.ln1, _Weights(b.attn.qkv.weight), _Weights(b.attn.proj.weight), b.attn, b.ln2,
                        _Weights(b.mlp[0].weight, b.mlp[0].bias), _Weights(b.mlp[2].weight, b.mlp[2].bias))
                       for b in model.blocks]
        self.head = _Weights(model.head.weight)
        self.qkv0 = None
        if model.pos_embed is None:
            ln = model.blocks[0].ln1
            normed = F.layer_norm(model.embed.weight, (s.d_model,), ln.weight, ln.bias, ln.eps)
            self.qkv0 = normed @ self.layers[0][1].t  # (V, 3C)
        self.rope = (torch.empty(0), torch.empty(0))  # per position: (cos, cos), (-sin, sin)

    def one(self, ids: LongTensor, cache: KVCache) -> tuple[Tensor, KVCache]:
        self.model.make_room(cache)
        return self._run(ids[:, None], cache, None), cache

    def room(self, cache: KVCache) -> int:
        """How many ids one `many` call can take after `cache`: any number that fits its
        buffers with rope or relative positions (the mask slides), up to `max_context` with
        learned ones (whose re-encoding is `model.step`'s)."""
        context = self.model.max_context
        if self.model.pos_embed is not None:
            return context - cache.length
        return cache.capacity - min(cache.length, context - 1)

    def many(self, ids: LongTensor, cache: KVCache) -> tuple[Tensor, KVCache]:
        """ids (B, T), T <= `room(cache)` -> (logits (B, T, V), cache). Id t sees the cached
        positions and ids 0..t, at most `max_context` of them, as `one` after `one` would."""
        context = self.model.max_context
        cache.keep_last(context - 1)
        T, total = ids.shape[1], cache.length + ids.shape[1]
        keys = torch.arange(total, device=ids.device)
        queries = keys[total - T:, None]
        mask = (keys[None, :] <= queries) & (keys[None, :] > queries - context)  # (T, total)
        return self._run(ids, cache, mask), cache

    def rewind(self, cache: KVCache, count: int) -> None:
        """Forgets the `count` newest positions (drafted ids that were not drawn)."""
        cache.drop_newest(count)

    def _run(self, ids: LongTensor, cache: KVCache, mask: Tensor | None) -> Tensor:
        """ids (B, T) after `cache` (room made) -> logits (B, T, V); `mask` (T, keys) or None
        for T == 1 (every cached key)."""
        model = self.model
        B, T = ids.shape
        position = cache.position
        cache.append(ids)
        x = F.embedding(ids, model.embed.weight).view(B * T, -1)  # (B T, C)
        if model.pos_embed is not None:
            x = x + model.pos_embed.weight[position:position + T].repeat(B, 1)
        rope = self._rope(position, T, x.device) if model.rotary else None
        qkv = F.embedding(ids, self.qkv0).view(B * T, -1) if self.qkv0 is not None else None
        for layer, weights in enumerate(self.layers):
            x = self._block(x, B, T, weights, rope, cache, layer, mask, qkv if layer == 0 else None)
        x = F.layer_norm(x, x.shape[-1:], model.ln_f.weight, model.ln_f.bias, model.ln_f.eps)
        return self.head(x).view(B, T, -1)

    def _block(self, x: Tensor, B: int, T: int, weights, rope, cache: KVCache, layer: int,
               mask: Tensor | None, qkv: Tensor | None) -> Tensor:
        ln1, qkv_w, proj_w, attn, ln2, fc, out = weights
        C = x.shape[1]
        if qkv is None:
            qkv = qkv_w(F.layer_norm(x, (C,), ln1.weight, ln1.bias, ln1.eps))  # (B T, 3C)
        qkv = attn.split_heads(qkv, B, T)  # (3, B, H, T, D)
        q, k = qkv[:2] if rope is None else torch.addcmul(  # apply_rope's rotation, in 3 ops
            qkv[:2] * rope[0], qkv[:2].roll(self.head_size // 2, -1), rope[1])
        keys, values = cache.store(layer, k, qkv[2])  # (B, H, L, D)
        y = attn.attend(q, keys, values, mask, causal=False)  # (B, H, T, D): the block's own attention
        x = proj_w(y.transpose(1, 2).reshape(B * T, C), residual=x)
        h = F.layer_norm(x, (C,), ln2.weight, ln2.bias, ln2.eps)
        return out(F.gelu(fc(h)), residual=x)

    def _rope(self, position: int, count: int, device) -> tuple[Tensor, Tensor]:
        """(cos, cos) and (-sin, sin) of `count` positions from `position`, each (count,
        head_size), from a table grown by doubling: x * the first + x with its halves swapped
        * the second = `apply_rope(x)`."""
        if position + count > len(self.rope[0]):
            size = max(2 * (position + count), 2 * self.model.max_context)
            cos, sin = rope_tables(torch.arange(size, device=device).float(), self.head_size)
            self.rope = torch.cat([cos, cos], dim=1), torch.cat([-sin, sin], dim=1)
        return self.rope[0][position:position + count], self.rope[1][position:position + count]


class _ConvStepper(_Stepper):
    """cnn: per layer one product of its convolution's taps (read from the layer's ring buffer)
    and the new input with the kernel transposed (`ConvLayer.kernel`: (taps x C, out)), then the
    gate and the 1x1s with transposed weights, no module calls; the first layer's input and its
    LayerNorm are tables per id. The buffers are written in place, as the plain step writes
    them (`ConvState`)."""

    def __init__(self, model: SequenceModel):
        super().__init__(model)
        self.layers = []
        for layer in model.layers:
            skip = None if layer.skip is None else (_t(layer.skip.weight), layer.skip.bias.detach())
            self.layers.append((layer, _t(layer.kernel()), layer.conv.bias.detach(), _t(layer.res.weight),
                                layer.res.bias.detach(), skip))
        first = model.layers[0].norm
        x0 = model.embed_ids(torch.arange(model.vocab_size, device=model.head.weight.device))  # (V, C)
        self.inputs = x0, F.layer_norm(x0, x0.shape[-1:], first.weight, first.bias, first.eps)
        self.head = _t(model.head.weight), model.head.bias.detach()

    def one(self, ids: LongTensor, state: Any) -> tuple[Tensor, Any]:
        position, model = state.position, self.model
        x, h = F.embedding(ids, self.inputs[0]), F.embedding(ids, self.inputs[1])  # (B, C)
        skips = None
        for i, (layer, kernel, bias, res, res_bias, skip) in enumerate(self.layers):
            if i:
                h = F.layer_norm(x, x.shape[-1:], layer.norm.weight, layer.norm.bias, layer.norm.eps)
            buffer, span, dilation = state.buffers[i], layer.span, layer.dilation
            taps = [buffer[:, (position - j * dilation) % span] for j in range(span // dilation, 0, -1)]
            y = layer.activate(torch.addmm(bias, torch.cat([*taps, h], dim=1), kernel))  # (B, C)
            buffer[:, position % span] = h  # after the read: with 2 taps it is the same slot
            if skip is not None:
                out = torch.addmm(skip[1], y, skip[0])
                skips = out if skips is None else skips + out
            x = torch.addmm(res_bias, y, res).add_(x)
        out = x if skips is None else skips
        out = F.layer_norm(out, out.shape[-1:], model.norm.weight, model.norm.bias, model.norm.eps)
        state.position += 1
        return torch.addmm(self.head[1], out, self.head[0])[:, None], state


class _Weights:
    """A linear layer's weight (and bias) for products with a few rows. One row: x @ (in, out)
    copy, MKL's GEMV (nn.Linear's x @ W.t() is 1.25-2x slower). Several rows: MKL's GEMM costs
    2-4x its GEMV at 2-9 rows here, while oneDNN with the weight packed once costs ~1.2x, so a
    `many` step over 5-9 drafted ids takes little more than one id's. The packed copy is made on
    the first product with several rows, through torch's own (private) oneDNN ops: where they
    are missing or fail (no oneDNN, a GPU), x @ the copy."""

    def __init__(self, weight: Tensor, bias: Tensor | None = None):
        self.weight, self.t = weight.detach(), _t(weight)
        self.bias = None if bias is None else bias.detach()
        self.packed = None  # None: not tried yet; False: no oneDNN product here

    def __call__(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        if x.shape[0] > 1 and self.packed is None:
            self.packed = _onednn_pack(self.weight)
        if x.shape[0] > 1 and self.packed is not False:
            y = torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
            return y if residual is None else y.add_(residual)
        if residual is not None:
            y = torch.addmm(residual, x, self.t)
            return y if self.bias is None else y.add_(self.bias)
        return x @ self.t if self.bias is None else torch.addmm(self.bias, x, self.t)


def _onednn_pack(weight: Tensor):
    """`weight` (out, in) packed for oneDNN's linear, or False where that is not available."""
    if weight.device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    try:
        packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)
        probe = weight.new_ones(2, weight.shape[1])
        if not torch.allclose(torch.ops.mkldnn._linear_pointwise(probe, packed, None, "none", [], ""),
                              probe @ weight.detach().t(), rtol=1e-4, atol=1e-4):
            return False
    except (AttributeError, RuntimeError):
        return False
    return packed


FAST_STEPS: dict[str, Callable[[SequenceModel], _Stepper]] = {
    "rnn": _GraphedRecurrentStepper,
    "lstm": _GraphedRecurrentStepper,
    "gru": _GraphedRecurrentStepper,
    "attention_lstm": _AttentionLSTMStepper,
    "transformer": _TransformerStepper,
    "cnn": _ConvStepper,
}
