"""Convolutional generator (`cnn`): causal dilated 1-D convolutions over the id stream, a
temporal convolutional network in the style of WaveNet (van den Oord et al. 2016) and the TCN
of Bai et al. (2018).

    ids (B, T) -> embedding (-> 1x1 to `channels` if embed_size differs) -> dropout
               -> num_layers x [x + res(drop(act(conv_d(LN(x)))))]    (skip: s += skip(...))
               -> LN(x, or the sum of skips) -> head (tied) -> logits (B, T, V)

Why a CNN rung: it is the ladder's step between the feed-forward net and the RNN, and the
Magenta era's other way to generate music (WaveNet over audio, Magenta's NSynth and Coconet;
this is WaveNet's stack over event ids). Training is fully parallel over time (a window is one
batched convolution per layer, no recurrence): on a CPU thread the preset runs at the LSTM
preset's tokens/s and learns faster per step (1 minute: val NLL 0.996 against 1.306,
docs/ladder.md), and it has no sequential loop to hold a GPU back. Stepping for sampling stays
cheap: each layer keeps a queue of the few past inputs its convolution reads.

Layer i convolves with a kernel of `kernel_size` taps spaced d_i = 2^(i mod dilation_cycle) ids
apart (1, 2, 4, ... 2^(cycle - 1), then again from 1), padded on the left only, so position t
reads t, t - d_i, ..., t - (kernel_size - 1) d_i: causal. The activation is WaveNet's gate
tanh(a) * sigmoid(b) (`gated`, the convolution makes 2 x channels) or GELU (`gelu`). Each
layer reads a LayerNorm of the residual stream (pre-norm, as our Transformer: it keeps a deep
stack trainable at the learning rates of the other presets, in place of the TCN's weight norm).

The receptive field is finite: logits at t depend on ids t - R + 1 .. t only, with
    R = 1 + (kernel_size - 1) * sum_i d_i       (`ConvModel.receptive_field`; 256 for kernel 2
                                                  and 8 layers of dilations 1 .. 128)
ids further back than that cannot matter. The model still runs on any length (`max_context` is
None: no positions, so a window of any length is R-long contexts side by side); a training
window of about R ids gives its last ids the whole field.

The step state is a `ConvState`: per layer a ring buffer (B, (kernel_size - 1) d_i, channels)
of the last inputs of its convolution (the normed residual stream), and the position. A step
reads, per layer and new id, only the kernel_size taps (from the buffer where they reach back
before the new ids): O(layers) per id whatever the length or the dilation. In any chunks it
equals `forward` (the convolution's weights as one product over the taps; the zeros of a slot
not yet written are the left padding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import LongTensor, Tensor, nn

from melodygen.models.base import SequenceModel
from melodygen.settings import check

ACTIVATIONS = ("gated", "gelu")
MAX_RECEPTIVE_FIELD = 65_536  # the step state is sized by it: a damaged checkpoint must not ask for gigabytes
MAX_DILATION_CYCLE = 16  # dilations up to 2^15


@dataclass(frozen=True)
class ConvSettings:
    """Sizes of a convolutional generator. Layer i has dilation 2^(i mod `dilation_cycle`) and
    `kernel_size` taps; `receptive_field` (module docstring) is how far back it sees. `skip` adds
    WaveNet's 1x1 skip outputs, summed, for the head to read (instead of the residual stream).
    `tie_weights` shares the embedding with the head, which needs `embed_size == channels`."""

    embed_size: int = 256
    channels: int = 256
    num_layers: int = 8
    kernel_size: int = 2
    dilation_cycle: int = 8
    activation: str = "gated"
    skip: bool = False
    dropout: float = 0.1
    tie_weights: bool = False

    def __post_init__(self):
        check(self, {
            "embed_size, channels and num_layers must be >= 1":
                lambda: min(self.embed_size, self.channels, self.num_layers) >= 1,
            "kernel_size must be >= 2 (one tap sees no earlier id)": lambda: self.kernel_size >= 2,
            f"dilation_cycle must be in 1..{MAX_DILATION_CYCLE}":
                lambda: 1 <= self.dilation_cycle <= MAX_DILATION_CYCLE,
            f"activation must be one of {', '.join(ACTIVATIONS)}": lambda: self.activation in ACTIVATIONS,
            "dropout must be in [0, 1)": lambda: 0 <= self.dropout < 1,
            f"tie_weights needs embed_size == channels (got {self.embed_size} and {self.channels})":
                lambda: not self.tie_weights or self.embed_size == self.channels,
            f"the receptive field must be <= {MAX_RECEPTIVE_FIELD:,} ids (kernel_size, num_layers, "
            "dilation_cycle)": lambda: not 1 <= self.dilation_cycle <= MAX_DILATION_CYCLE
                or receptive_field(self) <= MAX_RECEPTIVE_FIELD,
        })

    def dilations(self) -> list[int]:
        """Each layer's dilation: 1, 2, 4, ..., 2^(dilation_cycle - 1), then again from 1."""
        return [2 ** (i % self.dilation_cycle) for i in range(self.num_layers)]


def receptive_field(s: ConvSettings) -> int:
    """1 + (kernel_size - 1) * the sum of the dilations (in closed form: a damaged checkpoint's
    num_layers may be huge, and this is checked before anything is built)."""
    cycles, rest = divmod(s.num_layers, s.dilation_cycle)
    return 1 + (s.kernel_size - 1) * (cycles * (2 ** s.dilation_cycle - 1) + 2 ** rest - 1)


@dataclass
class ConvState:
    """The step state: `buffers[i]` (B, (kernel_size - 1) d_i, C) holds the last inputs of layer
    i's convolution, the one at position p in slot p mod its length (zeros before the first
    ids: the left padding); `position` is the number of ids stepped. Updated in place."""

    buffers: list[Tensor]
    position: int = 0


class ConvLayer(nn.Module):
    """One residual block: x + res(drop(act(conv(LN(x))))), and its skip output."""

    def __init__(self, s: ConvSettings, dilation: int):
        super().__init__()
        self.dilation, self.span = dilation, (s.kernel_size - 1) * dilation  # past inputs read
        self.gated = s.activation == "gated"
        self.norm = nn.LayerNorm(s.channels)
        self.conv = nn.Conv1d(s.channels, (2 if self.gated else 1) * s.channels, s.kernel_size, dilation=dilation)
        self.drop = nn.Dropout(s.dropout)
        self.res = nn.Linear(s.channels, s.channels)
        self.skip = nn.Linear(s.channels, s.channels) if s.skip else None

    def forward(self, x: Tensor, state: ConvState | None, layer: int) -> tuple[Tensor, Tensor | None]:
        """x (B, T, C) after the positions in `state` (None: from the start) -> (x (B, T, C),
        skip output (B, T, C) or None); `state`'s buffer of this layer takes the new inputs."""
        h = self.norm(x)  # (B, T, C): what the convolution reads
        if state is None:  # a whole window: the convolution, zeros on the left
            a = self.conv(F.pad(h.transpose(1, 2), (self.span, 0))).transpose(1, 2)
        else:  # a few new ids: the same product, reading only the taps they need
            a = F.linear(self.taps(state, layer, h), self.kernel(), self.conv.bias)
            self.remember(state, layer, h)
        y = self.drop(self.activate(a))  # (B, T, C)
        return x + self.res(y), (self.skip(y) if self.skip is not None else None)

    def kernel(self) -> Tensor:
        """The convolution's weight as one matrix (out, taps x C), the oldest tap's columns first."""
        weight = self.conv.weight  # (out, C, taps)
        return weight.transpose(1, 2).reshape(weight.shape[0], -1)

    def activate(self, a: Tensor) -> Tensor:
        """The convolution's output (.., 2C gated or C) -> (.., C)."""
        if self.gated:
            value, gate = a.chunk(2, dim=-1)
            return torch.tanh(value) * torch.sigmoid(gate)
        return F.gelu(a)

    def taps(self, state: ConvState, layer: int, h: Tensor) -> Tensor:
        """What each of the T new inputs h (B, T, C) convolves: (B, T, taps x C), the oldest tap
        first; a tap reaching back before the new ids reads the ring buffer. O(T) whatever the
        dilation (reading the whole span made a step 10x slower at dilation 128)."""
        buffer, T = state.buffers[layer], h.shape[1]
        reads = []
        for back in range(self.span, 0, -self.dilation):  # tap offsets span, ..., dilation
            older = min(back, T)
            slots = (state.position - back + torch.arange(older, device=h.device)) % self.span
            reads.append(torch.cat([buffer.index_select(1, slots).to(h.dtype), h[:, :T - older]], dim=1))
        return torch.cat([*reads, h], dim=-1)

    def remember(self, state: ConvState, layer: int, h: Tensor) -> None:
        """Writes the newest min(T, span) of `h` (B, T, C), at positions from `state.position`."""
        kept = min(h.shape[1], self.span)
        end = state.position + h.shape[1]
        slots = torch.arange(end - kept, end, device=h.device) % self.span
        state.buffers[layer].index_copy_(1, slots, h[:, -kept:].to(state.buffers[layer].dtype))


class ConvModel(SequenceModel):
    """Causal dilated convolutions (module docstring); `receptive_field` ids are all it sees."""

    kind = "cnn"

    def __init__(self, settings: ConvSettings, vocab_size: int):
        super().__init__(settings, vocab_size)
        s = settings
        self.embed = nn.Embedding(vocab_size, s.embed_size)
        self.project = nn.Linear(s.embed_size, s.channels) if s.embed_size != s.channels else None
        self.drop = nn.Dropout(s.dropout)
        self.layers = nn.ModuleList(ConvLayer(s, d) for d in s.dilations())
        self.norm = nn.LayerNorm(s.channels)
        self.head = nn.Linear(s.channels, vocab_size)
        # Every layer reads a LayerNorm of the stream, so the embedding's scale only matters to
        # a tied head: N(0, 0.02) as GPT-2's (torch's N(0, 1) starts a tied head at logits of
        # std ~sqrt(channels), an initial loss of ~40).
        nn.init.normal_(self.embed.weight, mean=0.0, std=0.02)
        if s.tie_weights:
            self.head.weight = self.embed.weight

    @property
    def receptive_field(self) -> int:
        """How many ids the logits at a position depend on (that one and the R - 1 before it)."""
        return receptive_field(self.settings)

    def forward(self, ids: LongTensor) -> Tensor:
        return self._run(ids, None)

    def step(self, ids: LongTensor, state: ConvState | None = None) -> tuple[Tensor, ConvState]:
        """See `SequenceModel.step`; `state` is updated in place and returned."""
        if state is None:
            C, B = self.settings.channels, ids.shape[0]
            state = ConvState([self.head.weight.new_zeros(B, layer.span, C) for layer in self.layers])
        logits = self._run(ids, state)
        state.position += ids.shape[1]
        return logits, state

    def select_rows(self, state: ConvState, rows: LongTensor) -> ConvState:
        return ConvState([b.index_select(0, rows) for b in state.buffers], state.position)

    def embed_ids(self, ids: LongTensor) -> Tensor:
        """ids (B, T) -> the residual stream's input (B, T, C)."""
        x = self.embed(ids)
        return x if self.project is None else self.project(x)

    def _run(self, ids: LongTensor, state: ConvState | None) -> Tensor:
        x = self.drop(self.embed_ids(ids))  # (B, T, C)
        skips = None
        for i, layer in enumerate(self.layers):
            x, skip = layer(x, state, i)
            if skip is not None:
                skips = skip if skips is None else skips + skip
        return self.head(self.norm(x if skips is None else skips))
