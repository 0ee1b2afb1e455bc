"""Tests of melodygen.models.fast: the fast step equals `model.step` for every kind (logits within
float32 rounding, the same sampled ids for a seed), shares the model's state, and falls back
where it does not apply."""

from __future__ import annotations

import pytest
import torch

from melodygen.encodings import get_encoding
from melodygen.models import MODELS, build_model
from melodygen.models.fast import FAST_STEPS, fast_step
from melodygen.sampling.decoding import Budget, DecodeSettings, sample

MELODY = get_encoding("melody")  # 41 ids
SMALL = {"transformer": {"d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 64, "max_context": 12},
         "attention_lstm": {"embed_size": 16, "hidden_size": 32, "num_layers": 2, "attention_length": 5},
         # dilations 1, 2, 4, 1: a receptive field of 17, so the ring buffers wrap within 40 steps
         "cnn": {"embed_size": 16, "channels": 32, "num_layers": 4, "kernel_size": 3, "dilation_cycle": 3}}
SMALL_RECURRENT = {"embed_size": 16, "hidden_size": 32, "num_layers": 2}
# every kind, the Transformer with each of its positions (learned re-encodes past its context), and
# the cnn's other activation with skips, a tied head and no input projection
# (the encoder-decoders have none yet: they decode with `model.step`)
DECODERS = [kind for kind, entry in MODELS.items()
            if not entry.model_type.reads_source and not entry.model_type.fills_blanks]
VARIANTS = [(kind, {}) for kind in DECODERS] + [("transformer", {"positions": "relative"}),
                                              ("transformer", {"positions": "learned"}),
                                              ("cnn", {"embed_size": 32, "kernel_size": 2, "activation": "gelu",
                                                       "skip": True, "tie_weights": True})]
# Only the order of float32 sums differs (products of <= 64 terms, 2 layers, <= 40 steps of
# recurrence): measured <= 2e-6 on logits of size ~5; 1e-4 leaves margin, while a real slip
# (an attention window one output short, met while writing this) moved them by 1e-2.
TOLERANCE = 1e-4


def model_of(kind: str, settings: dict) -> torch.nn.Module:
    """A small model with weights large enough that its logits spread (a slip shows in the ids)."""
    torch.manual_seed(0)
    model = build_model(kind, {**SMALL.get(kind, SMALL_RECURRENT), **settings}, MELODY.vocab.size)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model.eval()


def test_every_decoder_only_kind_has_a_fast_step():
    assert set(FAST_STEPS) == set(DECODERS)


@pytest.mark.parametrize("kind, settings", VARIANTS)
@pytest.mark.parametrize("batch", [1, 3])
def test_fast_steps_give_the_plain_logits_and_state(kind, settings, batch):
    model = model_of(kind, settings)
    step = fast_step(model)
    ids = torch.randint(3, MELODY.vocab.size, (batch, 40), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        plain, state = model.step(ids[:, :1], None)  # one id: the attention window fills up
        fast_state = model.select_rows(state, torch.arange(batch))  # a copy: the cache is in place
        for t in range(1, 40):  # past the Transformer's context (12) and the attention window (5)
            plain, state = model.step(ids[:, t:t + 1], state)
            fast, fast_state = step(ids[:, t:t + 1], fast_state)
            assert fast.shape == plain.shape == (batch, 1, MELODY.vocab.size)
            torch.testing.assert_close(fast, plain, rtol=TOLERANCE, atol=TOLERANCE, msg=f"step {t}")
        # the fast state is the model's own: the plain step continues it
        after_plain, _ = model.step(ids[:, :1], state)
        after_fast, _ = model.step(ids[:, :1], fast_state)
    torch.testing.assert_close(after_fast, after_plain, rtol=TOLERANCE, atol=TOLERANCE)


@pytest.mark.parametrize("kind, settings", VARIANTS)
@pytest.mark.parametrize("rows", [1, 3])  # one row has its own loop (decoding._one_row)
def test_fast_sampling_draws_the_plain_ids(kind, settings, rows):
    model = model_of(kind, settings)
    primer = [5, 9, 12, 7]
    common = dict(num_outputs=rows, max_events=60, temperature=0.9, top_k=30, primer_ids=primer,
                  stop_on_eos=False)
    plain = sample(model, MELODY, generator=torch.Generator().manual_seed(3), settings=DecodeSettings(fast=False),
                   **common)
    fast = sample(model, MELODY, generator=torch.Generator().manual_seed(3), **common)
    assert fast == plain
    assert len({tuple(row) for row in fast}) == rows  # the rows differ: the test sees a mix-up


def test_fast_sampling_keeps_eos_and_budgets():
    model = model_of("lstm", {})
    budget = Budget(costs=torch.rand(MELODY.vocab.size, generator=torch.Generator().manual_seed(0)).numpy(),
                    limit=15.0)
    runs = [sample(model, MELODY, num_outputs=4, max_events=200, budget=budget, settings=DecodeSettings(fast=fast),
                   generator=torch.Generator().manual_seed(5)) for fast in (False, True)]
    assert runs[0] == runs[1]
    assert any(len(row) < 200 for row in runs[0])


def test_no_fast_step_in_training_mode_or_other_dtypes():
    model = model_of("gru", {})
    assert fast_step(model) is not None
    assert fast_step(model.train()) is None
    assert fast_step(model.eval().double()) is None


def test_the_fast_step_follows_changed_weights():
    model = model_of("rnn", {})
    ids = torch.tensor([[4, 8, 15]])
    first = fast_step(model)
    assert fast_step(model) is first  # built once while the weights stay
    with torch.no_grad():
        model.head.bias.add_(1.0)
    step = fast_step(model)
    assert step is not first
    with torch.inference_mode():
        _, state = model.step(ids[:, :2], None)
        fast, _ = step(ids[:, 2:], model.select_rows(state, torch.tensor([0])))
        plain, _ = model.step(ids[:, 2:], state)
    torch.testing.assert_close(fast, plain, rtol=TOLERANCE, atol=TOLERANCE)


def test_sample_with_and_without_fast_writes_the_same_files(tmp_path):
    from click.testing import CliRunner

    from melodygen.cli import main
    from test_sample_cli import write_checkpoint

    ckpt = write_checkpoint(tmp_path / "gru.pt", "gru", "melody")
    for flag in ("--fast", "--no-fast"):
        result = CliRunner().invoke(main, ["sample", str(ckpt), "--out", str(tmp_path / flag), "-n", "2",
                                           "--length", "48", "--seed", "4", flag])
        assert result.exit_code == 0, result.output
    for i in range(2):
        name = f"sample_{i:03d}.mid"
        assert (tmp_path / "--fast" / name).read_bytes() == (tmp_path / "--no-fast" / name).read_bytes()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_cuda_graphs_replay_the_plain_step(kind):
    model = model_of(kind, {}).cuda()
    ids = torch.randint(3, MELODY.vocab.size, (2, 20), device="cuda", generator=torch.Generator("cuda").manual_seed(1))
    step = fast_step(model)
    with torch.inference_mode():
        plain, state = model.step(ids[:, :1], None)
        fast_state = state
        for t in range(1, 20):  # the first fast call captures the graph, the rest replay it
            plain, state = model.step(ids[:, t:t + 1], state)
            fast, fast_state = step(ids[:, t:t + 1], fast_state)
            torch.testing.assert_close(fast, plain, rtol=TOLERANCE, atol=TOLERANCE, msg=f"step {t}")
    assert len(step.graphs) == 1
    rows = [sample(model, MELODY, num_outputs=2, max_events=40, generator=torch.Generator("cuda").manual_seed(2),
                   device="cuda", settings=DecodeSettings(fast=fast)) for fast in (False, True)]
    assert rows[0] == rows[1]


def test_a_short_piece_builds_no_fast_path_but_uses_a_built_one(monkeypatch):
    from melodygen.models import fast
    from melodygen.sampling.decoding import FAST_MIN_EVENTS

    model = model_of("lstm", {})
    built = []
    monkeypatch.setitem(fast.FAST_STEPS, "lstm", lambda m: built.append(m) or fast._RecurrentStepper(m))
    sample(model, MELODY, max_events=FAST_MIN_EVENTS - 1)
    assert built == []
    sample(model, MELODY, max_events=FAST_MIN_EVENTS)
    assert built == [model]
    assert fast_step(model, build=False) is not None  # built: short pieces use it too


def test_a_processor_forcing_eos_ends_the_row_on_the_fast_path_too():
    from melodygen.encodings.vocab import EOS_ID

    def eos_after_5(logits, last_ids, seen=[0]):  # forces EOS at the 6th draw, banned or not
        seen[0] += 1
        if seen[0] == 6:
            logits = torch.full_like(logits, -torch.inf)
            logits[:, EOS_ID] = 0.0
        return logits

    rows = sample(model_of("lstm", {}), MELODY, max_events=40, stop_on_eos=False, processors=[eos_after_5],
                  generator=torch.Generator().manual_seed(0))
    assert len(rows[0]) == 5
