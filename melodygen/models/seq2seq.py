"""Encoder-decoders: a model that reads given music whole before it writes (accompaniment).

    source (B, S) -> embedding (+ bar) -> encoder (bidirectional) -> memory (B, S, C)
    ids (B, T)    -> embedding (+ bar) -> decoder (causal, attending to the memory) -> logits

A decoder-only model accompanying a melody writes each chord having heard the melody only up to
that position (`encodings.multitrack_given`). An encoder-decoder reads the given tracks first,
every bar of them, as a translation model reads its source sentence, so a chord can fit the
melody notes it will sound under. Its decoder still writes the whole stream (the given notes
forced in by the grammar, as before), so everything downstream of the ids is unchanged; with
no source (an empty one: BOS EOS) it is a plain generator, which training keeps it able to be
(`training.source_dropout`).

**Bars** are the shared coordinate of the two sides. The decoder must find in the source where
it is; content alone is ambiguous in music that repeats. With `bar_id` set (training sets it
from the encoding: the id that `Encoding.time_per_id` counts as one bar), each id of either
side gets an embedding of the number of bars opened so far (capped at `max_bars - 1`); a
decoder window that starts inside a piece is told how many bars came before it (`bar_offset`).

**Attention by bars** (`attend_bars = k`; only with `bar_id`, which training sets): the
decoder's attention to the memory reads only the source ids of bars within k of its own (and the
source's BOS, so an empty source still has something to read). The encoder still reads the whole
source, so each memory position carries the melody around it; what the mask gives is the
alignment. Measured on the first accompanist (1,495 steps, attention to the whole source): 3.8%
of a decoder position's attention fell on its own bar, what uniform attention over a 27-bar
window gives, so its chords could not have followed the melody through the encoder at all.

Two kinds, the two rungs of the founding note:
- `seq2seq_lstm`: a bidirectional LSTM encoder; an LSTM decoder with Luong "general" attention
  over the encoder's outputs at every step (Luong et al. 2015), output tanh(W [h; context]).
- `seq2seq`: a Transformer encoder-decoder (Vaswani et al. 2017), pre-LayerNorm, rotary
  positions within each side, the decoder's self-attention cached as the decoder-only
  Transformer's (`KVCache`, sliding past `max_context`), the memory's keys and values computed
  once per piece.

The source is a (B, S) tensor of `BOS ids EOS` rows padded with PAD (`dataset.pairs.source_rows`).
`start(source)` encodes it and returns the step state; `step(ids, None)` starts from an empty
source; `forward(ids, source, bar_offset)` is training's and scoring's (source None: empty).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import LongTensor, Tensor, nn

from melodygen.encodings.vocab import BOS_ID, EOS_ID, PAD_ID
from melodygen.errors import ConfigError
from melodygen.models.base import SequenceModel
from melodygen.models.kv_cache import KVCache
from melodygen.models.recurrent import onednn_disabled
from melodygen.models.transformer import (
    MAX_CONTEXT,
    Block,
    EncoderBlock,
    TransformerSettings,
    init_gpt2,
    rope_tables,
    step_through,
)
from melodygen.settings import check


def _common_rules(s) -> dict:
    return {
        f"max_source must be in 2..{MAX_CONTEXT:,}": lambda: 2 <= s.max_source <= MAX_CONTEXT,
        "max_bars must be in 1..65536": lambda: 1 <= s.max_bars <= 65536,
        "bar_id must be >= 0 (0: no bar embeddings)": lambda: s.bar_id >= 0,
        "dropout must be in [0, 1)": lambda: 0 <= s.dropout < 1,
        "attend_bars must be >= 0 (0: the whole source)": lambda: s.attend_bars >= 0,
    }


@dataclass(frozen=True)
class Seq2SeqSettings:
    """Sizes of the Transformer encoder-decoder; `max_context` is the decoder's window, `max_source`
    the longest source read (longer ones keep their first `max_source` ids)."""

    d_model: int = 256
    encoder_layers: int = 2
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 1024
    dropout: float = 0.1
    max_context: int = 1024
    max_source: int = 1024
    max_bars: int = 512
    bar_id: int = 0
    attend_bars: int = 0
    tie_weights: bool = True

    def __post_init__(self):
        check(self, {
            "d_model, encoder_layers, n_layers, n_heads and d_ff must be >= 1":
                lambda: min(self.d_model, self.encoder_layers, self.n_layers, self.n_heads, self.d_ff) >= 1,
            f"max_context must be in 2..{MAX_CONTEXT:,}": lambda: 2 <= self.max_context <= MAX_CONTEXT,
            f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads}), with an even head size":
                lambda: self.d_model % self.n_heads == 0 and self.d_model // self.n_heads % 2 == 0,
            **_common_rules(self),
        })

    def blocks(self) -> TransformerSettings:
        """The settings of one self-attention block of either side."""
        return TransformerSettings(self.d_model, self.n_layers, self.n_heads, self.d_ff, self.dropout,
                                   self.max_context, "rope")


@dataclass(frozen=True)
class Seq2SeqLSTMSettings:
    """Sizes of the LSTM encoder-decoder: the encoder's two directions have `hidden_size / 2`
    units each, so its outputs are `hidden_size` wide like the decoder's."""

    embed_size: int = 256
    hidden_size: int = 512
    encoder_layers: int = 1
    n_layers: int = 2
    dropout: float = 0.1
    max_source: int = 1024
    max_bars: int = 512
    bar_id: int = 0
    attend_bars: int = 0

    def __post_init__(self):
        check(self, {
            "embed_size, hidden_size, encoder_layers and n_layers must be >= 1":
                lambda: min(self.embed_size, self.hidden_size, self.encoder_layers, self.n_layers) >= 1,
            "hidden_size must be even (the encoder's two directions share it)": lambda: self.hidden_size % 2 == 0,
            **_common_rules(self),
        })


def empty_source(rows: int, device) -> LongTensor:
    """(rows, 2) `BOS EOS`: no given music."""
    return torch.tensor([[BOS_ID, EOS_ID]], device=device).expand(rows, 2)


class _EncoderDecoder(SequenceModel):
    """What both kinds share: the source's handling, bar numbers and the step state."""

    reads_source = True

    def _bar_numbers(self, ids: LongTensor, before: Tensor | None = None) -> LongTensor:
        """(B, T): bars opened up to and including each id, plus `before` (B,) opened before the first."""
        count = (ids == self.settings.bar_id).cumsum(1)
        return count if before is None else count + before[:, None]

    def _embed(self, ids: LongTensor, before: Tensor | None = None) -> Tensor:
        """The ids' embeddings, plus their bar numbers' (capped at `max_bars - 1`) with `bar_id`."""
        x = self.embed(ids)
        if self.bar_embed is None:
            return x
        return x + self.bar_embed(self._bar_numbers(ids, before).clamp(max=self.settings.max_bars - 1))

    def _readable(self, ids: LongTensor, state: DecoderState) -> Tensor:
        """(B, T, S) bool: the source ids each of `ids` may attend to (module docstring, attention
        by bars); `state.bars` are the bars opened before the first of `ids`."""
        keep = state.keep[:, None, :]
        if not (self.settings.attend_bars and self.settings.bar_id):
            return keep.expand(-1, ids.shape[1], -1)
        near = (self._bar_numbers(ids, state.bars)[:, :, None] - state.source_bars[:, None, :]).abs()
        near = near <= self.settings.attend_bars
        near[:, :, 0] = True  # BOS
        return keep & near

    def _source(self, source: LongTensor | None, rows: int, device) -> tuple[LongTensor, Tensor]:
        """(source cut to `max_source` ids, keep (B, S) bool: not PAD)."""
        if source is None:
            source = empty_source(rows, device)
        if source.shape[0] != rows:
            raise ConfigError(f"{source.shape[0]} source rows for {rows} rows of ids")
        source = source[:, :self.settings.max_source]
        return source, source != PAD_ID

    def forward(self, ids: LongTensor, source: LongTensor | None = None,
                bar_offset: LongTensor | None = None) -> Tensor:
        """ids (B, T) -> logits (B, T, V), having read `source` (None: empty); `bar_offset` (B,):
        bars opened before the window's first id."""
        return self._decode(ids, self._window_state(ids, source, bar_offset), cache=False)

    def _window_state(self, ids: LongTensor, source: LongTensor | None,
                      bar_offset: LongTensor | None) -> DecoderState:
        """The state a window of `ids` is read from whole: `source` read, `bar_offset` bars before it."""
        state = self.start(source, rows=ids.shape[0], device=ids.device)
        if bar_offset is not None:
            state.bars = bar_offset.to(state.bars)
        return state

    def step(self, ids: LongTensor, state: DecoderState | None = None) -> tuple[Tensor, DecoderState]:
        """See `SequenceModel.step`; None starts from an empty source. The state is updated in place."""
        if state is None:
            state = self.start(None, rows=ids.shape[0], device=ids.device)
        return self._decode(ids, state, cache=True), state

    def select_rows(self, state, rows: LongTensor):
        return state.select_rows(rows)


@dataclass
class DecoderState:
    """The step state: the memory (per kind: the Transformer's per-layer keys and values, the
    LSTM's outputs), which source ids are not padding, bars opened so far (B,), each source id's
    bar number (B, S), and the decoder's own state (KV cache or LSTM (h, c))."""

    memory: list[Tensor]
    keep: Tensor
    bars: Tensor
    source_bars: Tensor
    own: object = None

    def select_rows(self, rows: LongTensor) -> DecoderState:
        own = self.own
        if isinstance(own, KVCache):
            own = own.select_rows(rows)
        elif own is not None:
            own = tuple(t.index_select(1, rows) for t in own)
        return DecoderState([m.index_select(0, rows) for m in self.memory], self.keep.index_select(0, rows),
                            self.bars.index_select(0, rows), self.source_bars.index_select(0, rows), own)


class _DecoderBlock(Block):
    """A pre-LayerNorm block: causal self-attention (cached), attention to the memory, MLP."""

    def __init__(self, s: TransformerSettings):
        super().__init__(s)
        self.ln_cross = nn.LayerNorm(s.d_model)
        self.query = nn.Linear(s.d_model, s.d_model, bias=False)
        self.key_value = nn.Linear(s.d_model, 2 * s.d_model, bias=False)
        self.cross_proj = nn.Linear(s.d_model, s.d_model, bias=False)

    def memory_keys(self, memory: Tensor) -> Tensor:
        """(B, 2, H, S, D): the memory's keys and values for this block's cross-attention."""
        B, S, _ = memory.shape
        return self.key_value(memory).view(B, S, 2, self.attn.n_heads, -1).permute(0, 2, 3, 1, 4)

    def forward(self, x, rope, cache, layer, memory: Tensor, readable: Tensor):
        x = x + self.drop(self.attn(self.ln1(x), rope, cache, layer))
        B, T, C = x.shape
        q = self.query(self.ln_cross(x)).view(B, T, self.attn.n_heads, -1).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, memory[:, 0], memory[:, 1], attn_mask=readable[:, None],
                                           dropout_p=self.attn.dropout if self.training else 0.0)
        x = x + self.drop(self.cross_proj(y.transpose(1, 2).reshape(B, T, C)))
        return x + self.mlp(self.ln2(x))


class Seq2SeqTransformer(_EncoderDecoder):
    """The Transformer encoder-decoder (module docstring)."""

    kind = "seq2seq"

    def __init__(self, settings: Seq2SeqSettings, vocab_size: int):
        super().__init__(settings, vocab_size)
        s, blocks = settings, settings.blocks()
        self.embed = nn.Embedding(vocab_size, s.d_model)
        self.bar_embed = nn.Embedding(s.max_bars, s.d_model) if s.bar_id else None
        self.drop = nn.Dropout(s.dropout)
        self.encoder = nn.ModuleList(EncoderBlock(blocks) for _ in range(s.encoder_layers))
        self.ln_memory = nn.LayerNorm(s.d_model)
        self.decoder = nn.ModuleList(_DecoderBlock(blocks) for _ in range(s.n_layers))
        self.ln_f = nn.LayerNorm(s.d_model)
        self.head = nn.Linear(s.d_model, vocab_size, bias=False)
        projections = [p for b in [*self.encoder, *self.decoder] for p in (b.attn.proj, b.mlp[2])]
        init_gpt2(self, projections + [b.cross_proj for b in self.decoder], s.encoder_layers + 2 * s.n_layers)
        if s.tie_weights:
            self.head.weight = self.embed.weight

    @property
    def max_context(self) -> int:
        return self.settings.max_context

    def state_from_decoder_only(self, decoder_only: dict[str, Tensor]) -> tuple[dict[str, Tensor], frozenset[str]]:
        """(This model's state dict, the names of its weights new to it) warm-started from a
        decoder-only Transformer's
        (`TransformerModel.state_dict()` of the same sizes), as Rothe et al. (2020) start
        encoder-decoders from pretrained checkpoints: its blocks, embedding and output layer
        become the decoder's, its first `encoder_layers` blocks the encoder's (attending both
        ways now). What it lacks keeps this model's own init, except the cross-attention's output
        projections and the bar embeddings, which start at zero: the encoder-decoder then starts
        as the decoder-only model exactly, whatever its source (tested), and training adds what
        the source tells it. Keys that do not map are returned as they are, for the caller's
        check of layers and shapes. New: every weight not taken in the same role (the encoder,
        now reading both ways, the cross-attention, the bar embeddings), which
        `training.init_lr_scale` may train faster than the rest."""
        own = self.state_dict()
        state = {key: (torch.zeros_like(value) if key == "bar_embed.weight" or key.endswith("cross_proj.weight")
                       else value) for key, value in own.items()}
        same_role = set()
        for key, value in decoder_only.items():
            if not key.startswith("blocks."):
                state[key] = value
                same_role.add(key)
                continue
            layer, rest = key.removeprefix("blocks.").split(".", 1)
            state[f"decoder.{layer}.{rest}"] = value
            same_role.add(f"decoder.{layer}.{rest}")
            if int(layer) < self.settings.encoder_layers:
                state[f"encoder.{layer}.{rest}"] = value
        return state, frozenset(own) - same_role

    def _rope(self, start: int, length: int, device) -> tuple[Tensor, Tensor]:
        positions = torch.arange(start, start + length, device=device, dtype=torch.float32)
        return rope_tables(positions, self.settings.d_model // self.settings.n_heads)

    def start(self, source: LongTensor | None, rows: int | None = None, device=None) -> DecoderState:
        """Reads `source` (B, S) (None: an empty source in `rows` rows) -> the step state."""
        rows = source.shape[0] if rows is None else rows
        device = source.device if device is None else device
        source, keep = self._source(source, rows, device)
        x = self.drop(self._embed(source))
        rope = self._rope(0, source.shape[1], device)
        for block in self.encoder:
            x = block(x, rope, keep)
        memory = self.ln_memory(x)
        return DecoderState([block.memory_keys(memory) for block in self.decoder], keep,
                            torch.zeros(rows, dtype=torch.long, device=device), self._bar_numbers(source))

    def _decode(self, ids: LongTensor, state: DecoderState, cache: bool) -> Tensor:
        if not cache:
            if ids.shape[1] > self.max_context:
                raise ConfigError(f"a window of {ids.shape[1]} ids is longer than the encoder-decoder's "
                                  f"max_context {self.max_context}; use windows <= max_context")
            return self._run(ids, state, None)
        if state.own is None:
            state.own = KVCache(capacity=self.max_context + self.max_context // 2)
        return step_through(ids, state.own, self.max_context, self._make_room,
                            lambda chunk, cache: self._run(chunk, state, cache))

    def _make_room(self, cache: KVCache) -> None:
        """Rotary positions slide: the most recent `max_context - 1` positions stay."""
        if cache.length >= self.max_context:
            cache.keep_last(self.max_context - 1)

    def _run(self, ids: LongTensor, state: DecoderState, cache: KVCache | None) -> Tensor:
        start = 0
        bars = state.bars
        if cache is not None:
            start = cache.position
            cache.append(ids)
        x = self.drop(self._embed(ids, bars))
        rope = self._rope(start, ids.shape[1], ids.device)
        readable = self._readable(ids, state)
        for i, block in enumerate(self.decoder):
            x = block(x, rope, cache, i, state.memory[i], readable)
        if cache is not None and self.settings.bar_id:  # a chunk's bars count for the next chunk
            state.bars = bars + (ids == self.settings.bar_id).sum(1)
        return self.head(self.ln_f(x))


class Seq2SeqLSTM(_EncoderDecoder):
    """The LSTM encoder-decoder with attention (module docstring)."""

    kind = "seq2seq_lstm"

    def __init__(self, settings: Seq2SeqLSTMSettings, vocab_size: int):
        super().__init__(settings, vocab_size)
        s = settings
        self.embed = nn.Embedding(vocab_size, s.embed_size)
        self.bar_embed = nn.Embedding(s.max_bars, s.embed_size) if s.bar_id else None
        self.drop = nn.Dropout(s.dropout)
        between = s.dropout if s.encoder_layers > 1 else 0.0
        self.encoder = nn.LSTM(s.embed_size, s.hidden_size // 2, s.encoder_layers, batch_first=True,
                               bidirectional=True, dropout=between)
        self.decoder = nn.LSTM(s.embed_size, s.hidden_size, s.n_layers, batch_first=True,
                               dropout=s.dropout if s.n_layers > 1 else 0.0)
        self.score = nn.Linear(s.hidden_size, s.hidden_size, bias=False)  # Luong's "general"
        self.combine = nn.Linear(2 * s.hidden_size, s.hidden_size)
        self.head = nn.Linear(s.hidden_size, vocab_size)

    def step(self, ids: LongTensor, state: DecoderState | None = None) -> tuple[Tensor, DecoderState]:
        with onednn_disabled():  # as the decoder-only LSTM: oneDNN's is several times slower per step
            return super().step(ids, state)

    def start(self, source: LongTensor | None, rows: int | None = None, device=None) -> DecoderState:
        rows = source.shape[0] if rows is None else rows
        device = source.device if device is None else device
        source, keep = self._source(source, rows, device)
        lengths = keep.sum(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.drop(self._embed(source)), lengths, batch_first=True,
                                                   enforce_sorted=False)
        outputs, _ = self.encoder(packed)
        memory, _ = nn.utils.rnn.pad_packed_sequence(outputs, batch_first=True, total_length=source.shape[1])
        return DecoderState([memory], keep, torch.zeros(rows, dtype=torch.long, device=device),
                            self._bar_numbers(source))

    def _decode(self, ids: LongTensor, state: DecoderState, cache: bool) -> Tensor:
        x = self.drop(self._embed(ids, state.bars))
        h, own = self.decoder(x, state.own)
        context = self._attention(h, ids, state) @ state.memory[0]
        if cache:
            state.own = own
            if self.settings.bar_id:
                state.bars = state.bars + (ids == self.settings.bar_id).sum(1)
        out = torch.tanh(self.combine(torch.cat([h, context], dim=-1)))
        return self.head(self.drop(out))

    def _attention(self, h: Tensor, ids: LongTensor, state: DecoderState) -> Tensor:
        """(B, T, S): the attention weights over the memory of decoder outputs `h` (of `ids`)."""
        scores = self.score(h) @ state.memory[0].transpose(1, 2)
        return torch.softmax(scores.masked_fill(~self._readable(ids, state), -math.inf), dim=-1)

    def attention(self, ids: LongTensor, source: LongTensor | None = None,
                  bar_offset: LongTensor | None = None) -> Tensor:
        """(B, T, S): where each of `ids` looks in `source` (as `forward` reads them; eval mode),
        what `scripts/accompaniment_table.py` measures alignment by."""
        state = self._window_state(ids, source, bar_offset)
        h, _ = self.decoder(self._embed(ids, state.bars))
        return self._attention(h, ids, state)
