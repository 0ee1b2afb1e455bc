"""Decoder-only Transformer generator (GPT-style, pre-LayerNorm) with a KV cache for `step`.

    ids (B, T) -> embedding (+ learned positions) -> dropout
               -> n_layers x [x + attn(LN(x)), x + MLP(LN(x))] -> LN -> head (tied) -> logits

Attention is causal `F.scaled_dot_product_attention`; the MLP is Linear -> GELU -> Linear.

Three position schemes (`positions`), each right for something:
- `rope` (default; rotary, Su et al. 2021): attention depends only on the distance between ids,
  with no parameters and no table to outgrow; the KV cache can slide past `max_context`. A
  good general default, and the cheapest.
- `relative` (Music Transformer, Huang et al. 2018): learned embeddings per head for each
  distance up to `max_relative_distance` (further ones share the last), added to the attention
  logits as q . E[i - j], computed with the memory-efficient "skewing" (O(L.D) extra memory, no
  (L, L, D) tensor). It was introduced for music: the model can learn "what came exactly one bar
  ago" as such, which is what repetition and long-range structure need. Costs an (L, L) logit
  bias per layer (no fused attention kernel), so training is slower than rope's.
- `learned` (nanoGPT): absolute position embeddings; simplest, but a position past the table
  was never seen, so stepping past `max_context` re-encodes a window (below).

The step state is a `KVCache` (kv_cache.py), preallocated and updated in place. Past
`max_context`:
- rope, relative: the cache keeps the most recent `max_context - 1` positions (distances stay
  what they were), so every new id attends
  to a full window. (Cached keys of the deeper layers were computed with their own, longer
  past, so this is a streaming approximation of re-running the window, exact for one layer.)
- learned: there is no position embedding beyond the table, so the last `max_context // 2`
  ids are re-encoded at positions 0.. and stepping continues from there (exact: it equals
  `forward` on that window plus what follows, at a re-run every `max_context // 2` ids).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import LongTensor, Tensor, nn

from melodygen.errors import ConfigError
from melodygen.models.base import SequenceModel
from melodygen.models.kv_cache import KVCache
from melodygen.settings import check

ROPE_BASE = 10000.0
POSITIONS = ("rope", "relative", "learned")


MAX_CONTEXT = 65_536  # far past what quadratic attention trains on here


@dataclass(frozen=True)
class TransformerSettings:
    """Sizes of a Transformer generator; `max_context` is the block size (longest window)."""

    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 1024
    dropout: float = 0.1
    max_context: int = 512
    positions: str = "rope"
    max_relative_distance: int = 0  # relative positions: 0 = every distance in the context
    tie_weights: bool = True

    def __post_init__(self):
        check(self, {
            "d_model, n_layers, n_heads and d_ff must be >= 1":
                lambda: min(self.d_model, self.n_layers, self.n_heads, self.d_ff) >= 1,
            # The KV cache and the rope table are sized by it, and rope has no weights to check
            # it against: a damaged checkpoint must not ask for gigabytes.
            f"max_context must be in 2..{MAX_CONTEXT:,}": lambda: 2 <= self.max_context <= MAX_CONTEXT,
            "dropout must be in [0, 1)": lambda: 0 <= self.dropout < 1,
            f"positions must be one of {', '.join(POSITIONS)}": lambda: self.positions in POSITIONS,
            "max_relative_distance must be >= 0": lambda: self.max_relative_distance >= 0,
            f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})":
                lambda: self.d_model % self.n_heads == 0,
            "rope needs an even head size (d_model / n_heads)":
                lambda: self.positions != "rope" or self.d_model // self.n_heads % 2 == 0,
        })


def rope_tables(positions: Tensor, head_size: int) -> tuple[Tensor, Tensor]:
    """(cos, sin), each (T, head_size / 2), for float `positions` (T,)."""
    inv_freq = ROPE_BASE ** -(torch.arange(0, head_size, 2, device=positions.device) / head_size)
    angles = positions[:, None] * inv_freq[None, :]
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotates pairs (x[i], x[i + D/2]) of x (..., T, D) by the angles of each position.

    Computed in float32 (bf16 rotations lose precision at large positions), returned in
    x's dtype so attention under bf16 autocast gets matching q, k, v."""
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).to(x.dtype)


def relative_logits(q: Tensor, embeddings: Tensor, keys: int) -> Tensor:
    """Music Transformer's relative logits S[t, j] = q_t . E[min(i_t - j, M)] for queries q
    (B, H, T, D) that are the last T of `keys` positions (query t is at i_t = keys - T + t),
    from per-head embeddings (H, M + 1, D) of distances 0..M; (B, H, T, keys), defined for
    j <= i_t (later keys are masked by the caller).

    "Skewing" (Huang et al. 2018; the rel_shift of Transformer-XL): multiply q by the
    embeddings of distances keys-1 .. 0 once, (B, H, T, keys), then shift row t left by
    T - 1 - t with a pad and a reshape, so no (T, keys, D) tensor is ever built."""
    distances = torch.arange(keys - 1, -1, -1, device=q.device).clamp(max=embeddings.shape[1] - 1)
    raw = q @ embeddings[:, distances].transpose(-1, -2).to(q.dtype)  # (B, H, T, keys)
    B, H, T, K = raw.shape
    padded = F.pad(raw, (1, 0))  # (B, H, T, K + 1)
    return padded.view(B, H, K + 1, T)[:, :, 1:].reshape(B, H, T, K)


class SelfAttention(nn.Module):
    """Multi-head causal self-attention over the new ids and the cached keys/values, with
    relative position logits when the settings ask for them."""

    def __init__(self, s: TransformerSettings):
        super().__init__()
        self.n_heads, self.dropout = s.n_heads, s.dropout
        self.qkv = nn.Linear(s.d_model, 3 * s.d_model, bias=False)
        self.proj = nn.Linear(s.d_model, s.d_model, bias=False)
        self.relative = None
        if s.positions == "relative":
            distances = (s.max_relative_distance or s.max_context - 1) + 1
            self.relative = nn.Parameter(torch.randn(s.n_heads, distances, s.d_model // s.n_heads) * 0.02)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None, cache: KVCache | None,
                layer: int) -> Tensor:
        B, T, C = x.shape
        qkv = self.split_heads(self.qkv(x), B, T)
        if rope is not None:  # q and k rotated together: half the small ops of a step
            q, k = apply_rope(qkv[:2], *rope)
        else:
            q, k = qkv[0], qkv[1]
        v = qkv[2]
        if cache is not None:
            k, v = cache.store(layer, k, v)
        y = self.attend(q, k, v, _causal_mask(T, k.shape[2], x.device), k.shape[2] == T and T > 1)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))

    def split_heads(self, qkv: Tensor, batch: int, length: int) -> Tensor:
        """The `qkv` products of `batch` x `length` positions, (B, T, 3C) or (B T, 3C) -> q, k
        and v per head, stacked: (3, B, H, T, D)."""
        return qkv.view(batch, length, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool) -> Tensor:
        """Attention of queries q (B, H, T, D), the last T of the L positions whose keys and
        values are k, v (B, H, L, D) -> (B, H, T, D). `mask` (T, L) bool says which keys each
        query sees (None: every key, or with `causal`, T == L, each query's own and earlier
        ones). Relative positions add their logits as a bias (SDPA adds it to the scaled q.k).
        `models.fast` attends through this too: attention is defined here once."""
        if self.relative is not None:
            bias = relative_logits(q, self.relative, k.shape[2]) / math.sqrt(q.shape[-1])
            if causal:
                mask = torch.ones(q.shape[2], q.shape[2], dtype=torch.bool, device=q.device).tril()
            mask, causal = bias if mask is None else bias.masked_fill(~mask, -math.inf), False
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
            is_causal=causal)


def _causal_mask(new: int, total: int, device: torch.device) -> Tensor | None:
    """(new, total) bool mask letting new id i see cached + new ids up to itself; None where
    `is_causal` (no cache) or a single new id (sees everything) already says it."""
    if new == 1 or new == total:
        return None
    past = total - new
    keys = torch.arange(total, device=device)
    return keys[None, :] <= keys[past:, None]


def init_gpt2(model: nn.Module, residual_projections: list[nn.Linear], layers: int) -> None:
    """GPT-2's init: N(0, 0.02), biases 0, the projections into the residual stream scaled by
    1/sqrt(2 layers)."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    for proj in residual_projections:
        nn.init.normal_(proj.weight, mean=0.0, std=0.02 / math.sqrt(2 * layers))


class Block(nn.Module):
    """Pre-LayerNorm Transformer block: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, s: TransformerSettings):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(s.d_model), nn.LayerNorm(s.d_model)
        self.attn = SelfAttention(s)
        self.drop = nn.Dropout(s.dropout)
        self.mlp = nn.Sequential(nn.Linear(s.d_model, s.d_ff), nn.GELU(),
                                 nn.Linear(s.d_ff, s.d_model), nn.Dropout(s.dropout))

    def forward(self, x, rope, cache, layer):
        x = x + self.drop(self.attn(self.ln1(x), rope, cache, layer))
        return x + self.mlp(self.ln2(x))


class EncoderBlock(Block):
    """A pre-LayerNorm block attending both ways (an encoder's: `models.seq2seq`, `models.masked`);
    `keep` (B, S) bool: the positions that may be attended to (not PAD)."""

    def forward(self, x, rope, keep):
        B, S, C = x.shape
        attn = self.attn
        q, k, v = attn.split_heads(attn.qkv(self.ln1(x)), B, S)
        q, k = apply_rope(torch.stack([q, k]), *rope)
        y = attn.attend(q, k, v, keep[:, None, None, :], False)
        x = x + self.drop(attn.proj(y.transpose(1, 2).reshape(B, S, C)))
        return x + self.mlp(self.ln2(x))


def step_through(ids: LongTensor, cache: KVCache, max_context: int, make_room, run) -> Tensor:
    """`run(chunk, cache)` over `ids` (B, T) in chunks that fit `max_context` beside what `cache`
    holds, `make_room(cache)` sliding the window before each: a KV-cached step of any length."""
    outputs, done = [], 0
    while done < ids.shape[1]:
        make_room(cache)
        room = max_context - cache.length
        outputs.append(run(ids[:, done:done + room], cache))
        done += outputs[-1].shape[1]
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1)


class TransformerModel(SequenceModel):
    """GPT-style decoder; see the module docstring for positions and the sliding KV cache."""

    kind = "transformer"

    def __init__(self, settings: TransformerSettings, vocab_size: int):
        super().__init__(settings, vocab_size)
        s = settings
        self.embed = nn.Embedding(vocab_size, s.d_model)
        learned = s.positions == "learned"
        self.rotary = s.positions == "rope"
        self.pos_embed = nn.Embedding(s.max_context, s.d_model) if learned else None
        self.drop = nn.Dropout(s.dropout)
        self.blocks = nn.ModuleList(Block(s) for _ in range(s.n_layers))
        self.ln_f = nn.LayerNorm(s.d_model)
        self.head = nn.Linear(s.d_model, vocab_size, bias=False)
        self._init_weights()
        if s.tie_weights:
            self.head.weight = self.embed.weight

    @property
    def max_context(self) -> int:
        return self.settings.max_context

    def _init_weights(self) -> None:
        init_gpt2(self, [p for block in self.blocks for p in (block.attn.proj, block.mlp[2])], len(self.blocks))

    def forward(self, ids: LongTensor) -> Tensor:
        if ids.shape[1] > self.max_context:
            raise ConfigError(
                f"a window of {ids.shape[1]} ids is longer than the transformer's max_context "
                f"{self.max_context}; use windows <= max_context (e.g. training.seq_len)")
        return self._run(ids, None)

    def step(self, ids: LongTensor, state: KVCache | None = None) -> tuple[Tensor, KVCache]:
        """See `SequenceModel.step`; `state` is updated in place and returned (kv_cache.py)."""
        if state is None:
            state = KVCache(capacity=self.max_context + self.max_context // 2)
        return step_through(ids, state, self.max_context, self.make_room, self._run), state

    def select_rows(self, state: KVCache, rows: LongTensor) -> KVCache:
        return state.select_rows(rows)

    def make_room(self, state: KVCache) -> None:
        """Leaves at most `max_context - 1` positions in `state` (module docstring)."""
        if state.length < self.max_context:
            return
        if self.pos_embed is None:
            state.keep_last(self.max_context - 1)
            return
        recent = state.cached_ids()[:, -(self.max_context // 2):].clone()  # slots get reused
        state.clear()
        self._run(recent, state)

    def _run(self, ids: LongTensor, cache: KVCache | None) -> Tensor:
        """ids (B, T) after the positions in `cache` (None: from position 0, no cache)
        -> logits (B, T, V); `cache` takes the new positions' keys and values."""
        start = 0
        if cache is not None:
            start = cache.position
            cache.append(ids)
        x = self.embed(ids)  # (B, T, C)
        positions = torch.arange(start, start + ids.shape[1], device=ids.device)
        rope = None
        if self.pos_embed is not None:
            x = x + self.pos_embed(positions)
        elif self.rotary:
            rope = rope_tables(positions.float(), self.settings.d_model // self.settings.n_heads)
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, rope, cache, i)
        return self.head(self.ln_f(x))
