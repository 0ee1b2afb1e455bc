"""Models: registry and settings checks, forward/step agreement, causality, tying, learning."""

import pytest
import torch
import torch.nn.functional as F

from melodygen.devices import autocast
from melodygen.errors import ConfigError
from melodygen.models import MODELS, build_model, count_parameters, make_settings, settings_to_dict

V = 23
TINY = {
    "rnn": {"embed_size": 16, "hidden_size": 16, "num_layers": 2},
    "lstm": {"embed_size": 16, "hidden_size": 16, "num_layers": 2, "tie_weights": True},
    "gru": {"embed_size": 8, "hidden_size": 16, "num_layers": 2},
    "attention_lstm": {"embed_size": 8, "hidden_size": 16, "num_layers": 2, "attention_length": 4},
    "transformer": {"d_model": 16, "n_layers": 2, "n_heads": 2, "d_ff": 32, "max_context": 16},
    # dilations 1, 2, 4, 1: a receptive field of 17, shorter than the longer tests' 40 ids
    "cnn": {"embed_size": 8, "channels": 16, "num_layers": 4, "kernel_size": 3, "dilation_cycle": 3},
    # encoder-decoders with an empty source here (tests/test_seq2seq.py gives them one); id 5 opens bars
    "seq2seq": {"d_model": 16, "encoder_layers": 1, "n_layers": 2, "n_heads": 2, "d_ff": 32, "max_context": 16,
                "bar_id": 5, "max_bars": 4},
    "seq2seq_lstm": {"embed_size": 16, "hidden_size": 16, "n_layers": 1, "bar_id": 5, "max_bars": 4},
    "masked": {"d_model": 16, "n_layers": 2, "n_heads": 2, "d_ff": 32, "max_context": 16},
}
# the kinds that write left to right (the masked model fills blanks instead: tests/test_masked.py)
GENERATORS = [kind for kind, entry in MODELS.items() if not entry.model_type.fills_blanks]
CASES = [(kind, TINY[kind]) for kind in GENERATORS] + [
    ("transformer", {**TINY["transformer"], "positions": "learned", "tie_weights": False}),
    ("transformer", {**TINY["transformer"], "positions": "relative", "max_relative_distance": 5}),
    ("cnn", {**TINY["cnn"], "embed_size": 16, "kernel_size": 2, "activation": "gelu", "skip": True,
             "tie_weights": True})]
IDS = [*GENERATORS, "transformer-learned", "transformer-relative", "cnn-gelu-skip-tied"]


def tiny(kind, settings, seed=0):
    torch.manual_seed(seed)
    return build_model(kind, settings, V).eval()


def random_ids(batch=3, length=12, seed=1):
    return torch.randint(0, V, (batch, length), generator=torch.Generator().manual_seed(seed))


def step_in_chunks(model, ids, sizes):
    state, outputs, start = None, [], 0
    for size in sizes:
        logits, state = model.step(ids[:, start:start + size], state)
        outputs.append(logits)
        start += size
    return torch.cat(outputs, dim=1), state


def test_registry_has_every_kind():
    assert set(MODELS) == {"rnn", "lstm", "gru", "attention_lstm", "transformer", "cnn", "seq2seq", "seq2seq_lstm",
                           "masked"}
    assert set(TINY) == set(MODELS)


@pytest.mark.parametrize("kind,settings", CASES, ids=IDS)
def test_shapes_and_kind(kind, settings):
    model = tiny(kind, settings)
    ids = random_ids()
    assert model(ids).shape == (3, 12, V)
    logits, _ = model.step(ids[:, :4], None)
    assert logits.shape == (3, 4, V)
    assert model.kind == kind and model.vocab_size == V
    assert model.max_context == (16 if kind in ("transformer", "seq2seq") else None)


@pytest.mark.parametrize("kind,settings", CASES, ids=IDS)
@pytest.mark.parametrize("sizes", [[1] * 12, [5] + [1] * 7, [3, 4, 5], [12]],
                         ids=["ones", "5+ones", "3-4-5", "all"])
def test_step_matches_forward(kind, settings, sizes):
    model = tiny(kind, settings)
    ids = random_ids()
    with torch.inference_mode():
        full = model(ids)
        stepped, _ = step_in_chunks(model, ids, sizes)
    torch.testing.assert_close(stepped, full, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind,settings", CASES, ids=IDS)
def test_causal(kind, settings):
    model = tiny(kind, settings)
    ids = random_ids()
    changed = ids.clone()
    changed[:, 7] = (changed[:, 7] + 1) % V
    with torch.no_grad():
        before, after = model(ids), model(changed)
    torch.testing.assert_close(after[:, :7], before[:, :7])
    assert not torch.allclose(after[:, 7], before[:, 7])


@pytest.mark.parametrize("kind,settings", CASES, ids=IDS)
def test_settings_round_trip_and_state_dict(kind, settings):
    model = tiny(kind, settings, seed=0)
    stored = settings_to_dict(model.settings)
    rebuilt = tiny(kind, stored, seed=1)
    assert rebuilt.settings == model.settings
    rebuilt.load_state_dict(model.state_dict())
    ids = random_ids()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(ids), model(ids))


@pytest.mark.parametrize("kind", [k for k in MODELS if k != "seq2seq_lstm"])  # its head reads tanh(W [h; context])
def test_weight_tying_shares_the_tensor(kind):
    square = {"embed_size": 16, "hidden_size": 16}
    tie = {"transformer": TINY["transformer"], "cnn": {**TINY["cnn"], "embed_size": 16},
           "seq2seq": TINY["seq2seq"], "masked": TINY["masked"]}.get(kind, square)
    tied = tiny(kind, {**tie, "tie_weights": True})
    untied = tiny(kind, {**tie, "tie_weights": False})
    assert tied.head.weight is tied.embed.weight
    assert untied.head.weight.data_ptr() != untied.embed.weight.data_ptr()
    assert count_parameters(untied) - count_parameters(tied) == V * 16


@pytest.mark.parametrize("kind,settings", CASES, ids=IDS)
def test_learns_a_repeated_phrase(kind, settings):
    model = tiny(kind, {**settings, "dropout": 0.0}).train()
    ids = torch.tensor([[3, 7, 5, 9, 4, 11] * 2])  # 12 ids, fits every max_context
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)

    def loss():
        return F.cross_entropy(model(ids[:, :-1]).reshape(-1, V), ids[:, 1:].reshape(-1))

    first = loss().item()
    for _ in range(40):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
    assert loss().item() < 0.05 * first


@pytest.mark.parametrize("positions", ["rope", "relative"])
def test_window_slides_past_max_context(positions):
    # One layer: its keys depend only on id and position, so the sliding cache must equal
    # `forward` on the last max_context ids (both schemes see only relative positions).
    model = tiny("transformer", {**TINY["transformer"], "n_layers": 1, "max_context": 8,
                                 "positions": positions})
    ids = random_ids(length=20)
    with torch.inference_mode():
        stepped, state = step_in_chunks(model, ids, [1] * 20)
        for t in (8, 13, 19):
            window = model(ids[:, t - 7:t + 1])
            torch.testing.assert_close(stepped[:, t], window[:, -1], atol=1e-5, rtol=1e-4)
    assert state.length == 8 and state.position == 20


def test_learned_positions_reencode_past_max_context():
    model = tiny("transformer", {**TINY["transformer"], "positions": "learned", "max_context": 8})
    ids = random_ids(length=11)
    with torch.inference_mode():
        stepped, state = step_in_chunks(model, ids, [1] * 11)
        # after 8 ids the cache is full: ids 4..7 are re-encoded at positions 0..3
        expected = model(ids[:, 4:11])
    torch.testing.assert_close(stepped[:, 8:], expected[:, 4:], atol=1e-5, rtol=1e-4)
    assert state.length == 7 and state.position == 7


@pytest.mark.parametrize("positions", ["rope", "learned", "relative"])
def test_one_long_chunk_equals_stepping_past_max_context(positions):
    model = tiny("transformer", {**TINY["transformer"], "positions": positions, "max_context": 6})
    ids = random_ids(length=17)
    with torch.inference_mode():
        at_once, _ = model.step(ids, None)
        one_by_one, _ = step_in_chunks(model, ids, [1] * 17)
    assert at_once.shape == (3, 17, V)
    torch.testing.assert_close(at_once, one_by_one, atol=1e-5, rtol=1e-4)


def test_forward_longer_than_context_is_a_clear_error():
    model = tiny("transformer", TINY["transformer"])
    with pytest.raises(ConfigError, match="max_context 16"):
        model(random_ids(length=17))


@pytest.mark.parametrize("kind,settings", CASES, ids=IDS)
@pytest.mark.parametrize("length,prefix", [(12, 6), (40, 20)], ids=["in-context", "past-context"])
def test_selected_rows_continue_exactly_as_the_originals(kind, settings, length, prefix):
    """Beam search's reorder and a primer's branching: rows picked (and copied) from a state
    continue as those rows would; the original state is left untouched."""
    model = tiny(kind, settings)
    ids = random_ids(length=length)
    rows = torch.tensor([2, 0, 0, 1])
    with torch.inference_mode():
        _, state = model.step(ids[:, :prefix], None)
        picked = model.select_rows(state, rows)
        got = step_one_by_one(model, picked, ids[rows, prefix:])
        expected, _ = step_in_chunks(model, ids[rows], [prefix] + [1] * (length - prefix))
        original, _ = model.step(ids[:, prefix:], state)
        expected_original, _ = step_in_chunks(model, ids, [prefix, length - prefix])
    torch.testing.assert_close(got, expected[:, prefix:], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(original, expected_original[:, prefix:], atol=1e-5, rtol=1e-4)


def step_one_by_one(model, state, ids):
    outputs = []
    for t in range(ids.shape[1]):
        logits, state = model.step(ids[:, t:t + 1], state)
        outputs.append(logits)
    return torch.cat(outputs, dim=1)


@pytest.mark.parametrize("queries,keys,max_distance", [(6, 6, 9), (6, 6, 2), (1, 7, 3), (3, 8, 20)])
def test_skewed_relative_logits_equal_the_direct_computation(queries, keys, max_distance):
    """The O(L.D) skewing against the O(L^2.D) definition: q_t . E[min(i - j, M)] for j <= i."""
    from melodygen.models.transformer import relative_logits

    generator = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, queries, 4, generator=generator)
    embeddings = torch.randn(3, max_distance + 1, 4, generator=generator)
    got = relative_logits(q, embeddings, keys)
    positions = torch.arange(keys - queries, keys)[:, None] - torch.arange(keys)[None, :]  # (T, K) i - j
    table = embeddings[:, positions.clamp(0, max_distance)]  # (H, T, K, D): the L^2.D tensor
    direct = torch.einsum("bhtd,htkd->bhtk", q, table)
    seen = positions >= 0
    torch.testing.assert_close(got[..., seen], direct[..., seen], atol=1e-5, rtol=1e-5)


def test_relative_positions_change_the_logits_and_learn_distances():
    model = tiny("transformer", {**TINY["transformer"], "positions": "relative"})
    ids = random_ids()
    with torch.no_grad():
        before = model(ids)
        for block in model.blocks:  # (shifting every distance alike would change nothing)
            block.attn.relative[:, 1].add_(3.0)
        assert not torch.allclose(before, model(ids))
    assert all(b.attn.relative.shape == (2, 16, 8) for b in model.blocks)  # heads, distances 0..15, head size


def test_training_autocast_is_a_no_op_on_cpu():
    """What the product does on CPU: `devices.autocast` keeps fp32 there (bf16 CPU kernels are
    missing on some CPUs, e.g. oneDNN's LSTM without AVX-512, and slower on the rest)."""
    model = tiny("lstm", TINY["lstm"])
    ids = random_ids()
    with torch.no_grad():
        plain = model(ids)
        with autocast(torch.device("cpu")):
            under = model(ids)
    assert under.dtype == torch.float32
    torch.testing.assert_close(under, plain, atol=0, rtol=0)


def test_unknown_kind():
    with pytest.raises(ConfigError, match="unknown model kind .lstn..*rnn, lstm, gru, attention_lstm, transformer, cnn"):
        build_model("lstn", {}, V)


def test_every_problem_reported_at_once():
    with pytest.raises(ConfigError) as info:
        build_model("lstm", {"hiden_size": 8, "dropout": "0.1", "num_layers": True}, V)
    message = str(info.value)
    assert "'hiden_size' (did you mean 'hidden_size'?)" in message
    assert "dropout='0.1' must be float" in message
    assert "num_layers=True must be int" in message
    assert "\n" not in message


@pytest.mark.parametrize("kind,settings,fragment", [
    ("gru", {"embed_size": 8, "hidden_size": 16, "tie_weights": True},
     "tie_weights needs embed_size == hidden_size"),
    ("rnn", {"dropout": 1.0}, "dropout must be in [0, 1)"),
    ("lstm", {"num_layers": 0}, ">= 1"),
    ("transformer", {"d_model": 30, "n_heads": 4}, "multiple of n_heads"),
    ("transformer", {"d_model": 6, "n_heads": 2}, "even head size"),
    ("transformer", {"positions": "sinusoidal"}, "one of rope, relative, learned"),
    ("transformer", {"max_relative_distance": -1}, "max_relative_distance must be >= 0"),
    ("transformer", {"max_context": 1}, "max_context must be in 2..65,536"),
    ("cnn", {"kernel_size": 1}, "kernel_size must be >= 2"),
    ("cnn", {"activation": "relu"}, "activation must be one of gated, gelu"),
    ("cnn", {"dilation_cycle": 0}, "dilation_cycle must be in 1..16"),
    ("cnn", {"dilation_cycle": 10 ** 9}, "dilation_cycle must be in 1..16"),  # no 2 ** 10 ** 9 computed
    ("cnn", {"embed_size": 8, "channels": 16, "tie_weights": True}, "tie_weights needs embed_size == channels"),
    ("cnn", {"num_layers": 10 ** 9}, "receptive field must be <= 65,536"),  # checked before building
    ("cnn", {"kernel_size": 300}, "receptive field must be <= 65,536"),
])
def test_bad_values(kind, settings, fragment):
    with pytest.raises(ConfigError, match=f"model '{kind}'") as info:
        build_model(kind, settings, V)
    assert fragment in str(info.value)


def test_defaults_and_int_for_float():
    assert make_settings("lstm", {}) == MODELS["lstm"].settings_type()
    assert make_settings("transformer", {"dropout": 0}).dropout == 0
    assert make_settings("transformer", {}).positions == "rope"
    with pytest.raises(ConfigError, match="vocab_size"):
        build_model("rnn", {}, 0)


def test_recurrent_step_restores_onednn_flag():
    model = tiny("lstm", TINY["lstm"])
    before = torch.backends.mkldnn.enabled
    model.step(random_ids(length=2), None)
    assert torch.backends.mkldnn.enabled == before


@pytest.mark.parametrize("positions", ["rope", "learned"])
def test_kv_cache_is_written_in_place(positions):
    # The cache is one preallocated buffer per layer, reused past max_context (compacting
    # instead of reallocating); the slots it holds are the most recent ids, in order.
    model = tiny("transformer", {**TINY["transformer"], "positions": positions, "max_context": 8})
    ids = random_ids(length=40)
    with torch.inference_mode():
        _, state = model.step(ids[:, :1], None)
        buffers = [t.data_ptr() for t in state.keys + state.values]
        for t in range(1, 40):
            _, returned = model.step(ids[:, t:t + 1], state)
            assert returned is state
    assert [t.data_ptr() for t in state.keys + state.values] == buffers
    assert state.end <= state.capacity and state.length <= 8
    assert torch.equal(state.cached_ids(), ids[:, 40 - state.length:])


@pytest.mark.parametrize("settings,field", [
    ({"kernel_size": 2, "num_layers": 8, "dilation_cycle": 8}, 256),  # 1 + (1 + 2 + ... + 128)
    ({"kernel_size": 3, "num_layers": 4, "dilation_cycle": 3}, 17),  # 1 + 2 (1 + 2 + 4 + 1)
    ({"kernel_size": 2, "num_layers": 16, "dilation_cycle": 8}, 511),
    ({"kernel_size": 4, "num_layers": 1, "dilation_cycle": 5}, 4),
])
def test_cnn_receptive_field(settings, field):
    """R = 1 + (kernel_size - 1) * the sum of the dilations 2^(i mod dilation_cycle)."""
    model = tiny("cnn", {"embed_size": 8, "channels": 8, **settings})
    assert model.receptive_field == field
    assert [layer.dilation for layer in model.layers] == model.settings.dilations()
    assert model.max_context is None


CNN_GELU_SKIP = CASES[-1][1]


@pytest.mark.parametrize("settings", [TINY["cnn"], CNN_GELU_SKIP], ids=["gated", "gelu-skip"])
def test_cnn_sees_exactly_its_receptive_field(settings):
    """Logits at t depend on ids t - R + 1 .. t: changing the id R back changes nothing, R - 1
    back changes them."""
    model = tiny("cnn", settings)
    R, t = model.receptive_field, 30
    ids = random_ids(length=t + 1)
    with torch.no_grad():
        base = model(ids)[:, t]
        for back, matters in ((R, False), (R - 1, True)):
            changed = ids.clone()
            changed[:, t - back] = (changed[:, t - back] + 1) % V
            assert torch.allclose(model(changed)[:, t], base) != matters


@pytest.mark.parametrize("seed", range(4))
def test_cnn_steps_in_random_chunks_and_after_selected_rows(seed):
    """Stepping in random chunk sizes (the ring buffers wrap many times) equals `forward`, and
    rows picked from a state midway (reordered, repeated) continue as those rows of `forward`."""
    model = tiny("cnn", CNN_GELU_SKIP if seed % 2 else TINY["cnn"])
    ids = random_ids(length=90, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    sizes = []
    while sum(sizes) < 90:
        sizes.append(min(int(torch.randint(1, 12, (1,), generator=generator)), 90 - sum(sizes)))
    rows, done = torch.tensor([1, 1, 0, 2]), sum(sizes[:3])
    with torch.inference_mode():
        full = model(ids)
        stepped, _ = step_in_chunks(model, ids, sizes)
        _, state = step_in_chunks(model, ids, sizes[:3])
        picked = model.select_rows(state, rows)
        continued = [model.step(ids[rows, done:done + 1], picked)[0], model.step(ids[rows, done + 1:], picked)[0]]
    torch.testing.assert_close(stepped, full, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(torch.cat(continued, dim=1), full[rows, done:], atol=1e-5, rtol=1e-4)
    assert state.position == done and picked.position == 90
