"""Tests of melodygen.sampling (decoding, processors, files): filtering math, the batched incremental loop, EOS, primer, budgets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from melodygen import devices
from melodygen.devices import accumulator_dtype
from melodygen.encodings import get_encoding
from melodygen.encodings.base import BEATS, TimePerId
from melodygen.encodings.vocab import BOS_ID, EOS_ID, PAD_ID
from melodygen.errors import CheckpointError, ConfigError
from melodygen.models import MODELS, build_model

GENERATORS = sorted(k for k, entry in MODELS.items() if not entry.model_type.fills_blanks)  # left to right
from melodygen.sampling.decoding import Budget, draw, filter_logits, sample
from melodygen.sampling.files import GenerationPlan, _shortfall, length_budget
from melodygen.sampling.processors import BanIds
from melodygen.sampling.request import GenerationRequest

MELODY = get_encoding("melody")  # 41 ids
PERFORMANCE = get_encoding("performance")  # 391 ids


class TableModel(torch.nn.Module):
    """A bigram 'model': logits of the next id = table[current id]. Records what `step` is fed."""

    def __init__(self, table: torch.Tensor, max_context: int | None = None):
        super().__init__()
        self.table, self.max_context, self.fed = table, max_context, []
        self.vocab_size = table.size(0)

    def forward(self, ids):
        return self.table[ids]

    def step(self, ids, state):
        self.fed.append(ids.tolist())
        return self.table[ids], (0 if state is None else state + ids.size(1))

    def select_rows(self, state, rows):  # a bigram's state is the last id, which the caller feeds
        return state


def table_with(rows: dict[int, dict[int, float]], vocab_size: int = MELODY.vocab.size) -> torch.Tensor:
    """A table where row `i` gives logit 0 to the listed ids (by their value) and -inf elsewhere;
    unlisted rows give id 3 for sure."""
    table = torch.full((vocab_size, vocab_size), -math.inf)
    table[:, 3] = 0.0
    for i, nexts in rows.items():
        table[i] = -math.inf
        for j, logit in nexts.items():
            table[i, j] = logit
    return table


def test_temperature_divides_logits():
    logits = torch.tensor([[1.0, 2.0, 0.5, -1.0]])
    for t in (0.5, 1.0, 2.0):
        got = torch.softmax(filter_logits(logits, t, None, None), -1)
        assert torch.allclose(got, torch.softmax(logits / t, -1))


@pytest.mark.parametrize("temperature", [0.0, -1.0, math.inf, math.nan])  # inf/nan: NaN probs, PAD drawn
def test_temperature_must_be_positive(temperature):
    with pytest.raises(ConfigError, match="temperature"):
        filter_logits(torch.zeros(1, 4), temperature, None, None)


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([[0.1, 3.0, -2.0, 2.5, 1.0]])
    kept = torch.isfinite(filter_logits(logits, 1.0, 2, None))
    assert kept.tolist() == [[False, True, False, True, False]]
    assert torch.isfinite(filter_logits(logits, 1.0, 10, None)).all()


@pytest.mark.parametrize("top_p, kept", [(0.4, 1), (0.75, 2), (0.85, 3), (0.99, 4), (1.0, 4), (1e-6, 1)])
def test_top_p_keeps_the_smallest_nucleus(top_p, kept):
    probs = torch.tensor([[0.15, 0.5, 0.05, 0.3]])
    out = filter_logits(probs.log(), 1.0, None, top_p)
    finite = torch.isfinite(out)[0]
    assert int(finite.sum()) == kept
    order = [1, 3, 0, 2][:kept]  # ids by probability
    assert finite[order].all()
    assert torch.allclose(out[0, finite], probs.log()[0, finite] - math.log(0.5))  # max shifted to 0


def test_top_p_keeps_every_id_tied_with_the_last_one_kept():
    # Equally likely ids are all in or all out: which of them survives must not depend on the
    # sort order of ties (that drew id 1 for sure where 1, 2 and 3 are equally likely).
    out = filter_logits(torch.tensor([[0.0, 1.0, 1.0, 1.0, -5.0]]), 1.0, None, 0.5)
    assert torch.isfinite(out).tolist() == [[False, True, True, True, False]]
    out = filter_logits(torch.tensor([[0.5, 0.5, 0.0]]).log(), 1.0, None, 0.5)
    assert torch.isfinite(out).tolist() == [[True, True, False]]


@pytest.mark.parametrize("temperature", [1e-3, 1e-30, 1e-40, 1e-45])
def test_a_tiny_temperature_draws_the_likeliest_id(temperature):
    # logits / T overflowed to +inf below T ~ 1e-38 (3.0 / 1e-40): softmax turned NaN and the
    # draw returned id 0, PAD, which is banned.
    logits = torch.tensor([[3.5, 3.0, 2.0, 1.0, -1.0], [9.0, 7.0, 7.0, 1.0, -1.0]])
    banned = torch.tensor([True, False, False, False, False])
    out = filter_logits(logits.masked_fill(banned, -math.inf), temperature, None, 0.9)
    assert not out.isnan().any() and (out < math.inf).all()
    ids = [draw(BanIds([0], 5)(logits, None), temperature, None, 0.9, torch.Generator().manual_seed(seed)).tolist()
           for seed in range(40)]
    assert {row[0] for row in ids} == {1}
    assert {row[1] for row in ids} == {1, 2}  # a tie at the top stays a fair coin


def test_top_k_then_top_p_and_temperature():
    probs = torch.tensor([[0.4, 0.3, 0.2, 0.1]])
    # top-k 3 renormalises to 4/9, 3/9, 2/9: top-p 0.7 then needs the first two (7/9).
    out = filter_logits(probs.log(), 1.0, 3, 0.7)
    assert torch.isfinite(out).tolist() == [[True, True, False, False]]
    # Temperature applies before top-p: at T=0.1 the top id holds almost all the mass.
    out = filter_logits(probs.log(), 0.1, None, 0.9)
    assert torch.isfinite(out).tolist() == [[True, False, False, False]]


def test_draws_follow_the_filtered_distribution():
    table = table_with({BOS_ID: {5: math.log(0.5), 6: math.log(0.3), 7: math.log(0.2)},
                        5: {EOS_ID: 0.0}, 6: {EOS_ID: 0.0}, 7: {EOS_ID: 0.0}})
    rows = sample(TableModel(table), MELODY, num_outputs=4000, max_events=3,
                  generator=torch.Generator().manual_seed(0))
    counts = np.bincount([r[0] for r in rows], minlength=8)[5:8] / 4000
    assert np.allclose(counts, [0.5, 0.3, 0.2], atol=0.03)
    rows = sample(TableModel(table), MELODY, num_outputs=2000, max_events=3, top_k=2,
                  generator=torch.Generator().manual_seed(0))
    counts = np.bincount([r[0] for r in rows], minlength=8)[5:8] / 2000
    assert counts[2] == 0 and np.allclose(counts[:2], [0.625, 0.375], atol=0.04)


def test_eos_stops_a_row_while_others_continue():
    # From BOS: 4 or 5. After 4: EOS for sure. After 5: 5 again forever.
    table = table_with({BOS_ID: {4: 0.0, 5: 0.0}, 4: {EOS_ID: 0.0}, 5: {5: 0.0}})
    rows = sample(TableModel(table), MELODY, num_outputs=64, max_events=10,
                  generator=torch.Generator().manual_seed(1))
    assert {tuple(r) for r in rows} == {(4,), (5,) * 10}


def test_a_huge_length_costs_only_what_is_generated():
    # `--bars 1e9` once asked torch for a (B, max_events) buffer up front: 128 GB, a traceback.
    table = table_with({BOS_ID: {4: 0.0}, 4: {EOS_ID: 0.0}})
    rows = sample(TableModel(table), MELODY, num_outputs=1024, max_events=10**12)
    assert rows == [[4]] * 1024


def test_stop_on_eos_false_never_draws_eos():
    table = table_with({BOS_ID: {4: 0.0}, 4: {EOS_ID: 5.0, 6: 0.0}, 6: {EOS_ID: 5.0, 4: 0.0}})
    rows = sample(TableModel(table), MELODY, num_outputs=3, max_events=7, stop_on_eos=False,
                  generator=torch.Generator().manual_seed(1))
    assert rows == [[4, 6, 4, 6, 4, 6, 4]] * 3


def test_pad_and_bos_are_never_drawn():
    table = table_with({i: {PAD_ID: 50.0, BOS_ID: 50.0, 7: 0.0} for i in range(MELODY.vocab.size)})
    rows = sample(TableModel(table), MELODY, num_outputs=8, max_events=20, temperature=5.0,
                  generator=torch.Generator().manual_seed(2))
    assert rows == [[7] * 20] * 8


class BanEverythingAt:
    """A processor that breaks the contract: at draw `at` of row 1, no id is left."""

    def __init__(self, at: int):
        self.at, self.calls = at, 0

    def __call__(self, logits, last_ids):
        self.calls += 1
        if self.calls - 1 == self.at:
            logits = logits.clone()
            logits[1] = -math.inf
        return logits


def test_a_draw_with_every_id_banned_is_an_error_not_a_silent_pad():
    table = table_with({BOS_ID: {4: 0.0}, 4: {6: 0.0}, 6: {4: 0.0}})
    with pytest.raises(RuntimeError, match="banned every id at draw 2"):
        sample(TableModel(table), MELODY, num_outputs=2, max_events=5, processors=[BanEverythingAt(2)],
               generator=torch.Generator().manual_seed(0))


def test_incremental_primer_fed_once_then_one_id_per_step():
    model = TableModel(table_with({}))
    rows = sample(model, MELODY, num_outputs=2, max_events=4, primer_ids=[10, 11, 12],
                  generator=torch.Generator().manual_seed(0))
    assert rows == [[3, 3, 3, 3]] * 2
    assert model.fed[0] == [[BOS_ID, 10, 11, 12]] * 2
    assert model.fed[1:] == [[[3], [3]]] * 3  # no step after the last draw


def test_primer_is_cut_to_the_model_context():
    model = TableModel(table_with({}), max_context=4)
    sample(model, MELODY, max_events=2, primer_ids=[10, 11, 12, 13, 14])
    assert model.fed[0] == [[12, 13, 14]]


def test_model_mode_is_restored():
    model = TableModel(table_with({}))
    model.train()
    sample(model, MELODY, max_events=2)
    assert model.training


def test_nan_logits_are_a_clear_error():
    table = table_with({})
    table[BOS_ID, 7] = math.nan
    model = TableModel(table)
    model.train()
    with pytest.raises(CheckpointError, match="NaN or infinite logits"):
        sample(model, MELODY, max_events=2)
    assert model.training and len(model.fed) == 1


def test_draw_equals_torch_multinomial():
    # draw() reproduces torch.multinomial's draws from the same generator state, id for id.
    logits = torch.randn(64, PERFORMANCE.vocab.size, generator=torch.Generator().manual_seed(0)) * 3
    banned = torch.zeros(PERFORMANCE.vocab.size, dtype=torch.bool)
    banned[[PAD_ID, BOS_ID]] = True
    for temperature, top_k, top_p in [(1.0, None, None), (0.7, 40, None), (1.3, None, 0.9)]:
        probs = torch.softmax(filter_logits(logits.masked_fill(banned, -math.inf), temperature, top_k, top_p), -1)
        for seed in range(5):
            expected = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(seed))[:, 0]
            got = draw(BanIds([PAD_ID, BOS_ID], PERFORMANCE.vocab.size)(logits, None), temperature, top_k,
                       top_p, torch.Generator().manual_seed(seed))
            assert torch.equal(got, expected)


@pytest.mark.parametrize("kind", GENERATORS)
def test_real_models_seeded_batches(kind):
    torch.manual_seed(0)
    model = build_model(kind, _tiny(kind), MELODY.vocab.size)
    draw = lambda seed: sample(model, MELODY, num_outputs=3, max_events=40, top_p=0.95,  # noqa: E731
                               primer_ids=[20, 4, 4], generator=torch.Generator().manual_seed(seed))
    first = draw(7)
    assert first == draw(7)
    assert first != draw(8)
    assert len(first) == 3 and all(len(r) <= 40 for r in first) and any(first)
    assert all(EOS_ID < i < MELODY.vocab.size for r in first for i in r)


@pytest.mark.parametrize("kind", GENERATORS)
def test_incremental_draws_equal_rerunning_the_prefix(kind):
    """Within the context, the cached loop draws exactly what a full forward pass per step draws."""
    torch.manual_seed(0)
    model = build_model(kind, _tiny(kind), MELODY.vocab.size).eval()
    # BOS + a primer of 2 + 5 draws stay within the Transformer's context of 8.
    got = sample(model, MELODY, num_outputs=4, max_events=5, stop_on_eos=False, primer_ids=[20, 4],
                 temperature=1.3, top_k=20, generator=torch.Generator().manual_seed(4))
    generator, ids = torch.Generator().manual_seed(4), torch.tensor([[BOS_ID, 20, 4]] * 4)
    with torch.no_grad():
        for _ in range(5):  # spelled out rather than through sampling.draw, which this checks
            logits = model(ids)[:, -1].masked_fill(torch.arange(MELODY.vocab.size) <= EOS_ID, -math.inf)
            probs = torch.softmax(filter_logits(logits, 1.3, 20, None), -1)
            ids = torch.cat([ids, torch.multinomial(probs, 1, generator=generator)], 1)
    assert got == ids[:, 3:].tolist()


def test_transformer_runs_past_its_context():
    model = build_model("transformer", _tiny("transformer"), MELODY.vocab.size)
    rows = sample(model, MELODY, num_outputs=2, max_events=3 * model.max_context, stop_on_eos=False,
                  generator=torch.Generator().manual_seed(0))
    assert [len(r) for r in rows] == [3 * model.max_context] * 2


def test_budget_stops_each_row_on_its_own_time():
    costs = np.zeros(MELODY.vocab.size)
    costs[4], costs[5] = 1.0, 0.25
    table = table_with({BOS_ID: {4: 0.0, 5: 0.0}, 4: {4: 0.0}, 5: {5: 0.0}})
    rows = sample(TableModel(table), MELODY, num_outputs=32, max_events=100, budget=Budget(costs, 2.0),
                  generator=torch.Generator().manual_seed(3))
    assert {tuple(r) for r in rows} == {(4, 4), (5,) * 8}


def test_running_sums_use_no_float64_on_mps(monkeypatch):
    # MPS has no float64 (pytorch#122602, "expected behaviour"): every `sample` on an Apple GPU
    # failed creating its float64 budget sums, and every validation its NLL sum
    assert accumulator_dtype(torch.device("mps")) == torch.float32
    assert accumulator_dtype(torch.device("cpu")) == accumulator_dtype("cuda") == torch.float64
    monkeypatch.setattr(devices, "accumulator_dtype", lambda device: torch.float32)  # as on MPS
    test_budget_stops_each_row_on_its_own_time()


def test_length_budget_melody_converts_to_steps():
    assert length_budget(MELODY, GenerationRequest(), 120) == (512, None)
    assert length_budget(MELODY, GenerationRequest(events=33), 120) == (33, None)
    assert length_budget(MELODY, GenerationRequest(seconds=10), 120) == (80, None)  # 8 steps/s
    assert length_budget(MELODY, GenerationRequest(bars=4), 90) == (64, None)


def test_length_budget_performance_counts_time_shifts():
    cap, budget = length_budget(PERFORMANCE, GenerationRequest(seconds=3), 120)
    assert budget.limit == 3 and cap >= 600
    shift = PERFORMANCE.vocab.id_of("TIME_SHIFT", 25)
    assert budget.costs[shift] == pytest.approx(0.25)
    assert budget.costs[PERFORMANCE.vocab.id_of("NOTE_ON", 60)] == 0
    assert length_budget(PERFORMANCE, GenerationRequest(bars=2), 60)[1].limit == pytest.approx(8.0)


class BeatsWithRests(type(MELODY)):
    """An encoding of no registered name whose ids advance different amounts of beats."""

    name = "beats-with-rests"

    def time_per_id(self):
        time = super().time_per_id()
        amounts = time.amounts.copy()
        amounts[3] = 0.0  # the first event takes no time
        return TimePerId(amounts, BEATS)


def test_lengths_in_time_work_for_any_encoding_that_declares_time():
    """No name switch: seconds and bars go through `Encoding.time_per_id` (beats or seconds)."""
    odd = BeatsWithRests()
    cap, budget = length_budget(odd, GenerationRequest(bars=2), 120)
    assert budget.limit == 8 and cap == 800  # 8 beats = 4 s at 120 qpm: 200 events a second at most
    assert budget.costs[3] == 0 and budget.costs[4] == 0.25 and budget.unit == "beats"
    short = _shortfall([3] * 800, GenerationRequest(bars=2), GenerationPlan([], 120.0, cap, budget, [], None))
    assert short.startswith("0.0 of 8.0 beats of new music: the safety cap of 800 events")
    cap, budget = length_budget(odd, GenerationRequest(seconds=3), 60)
    assert budget.limit == 3 and cap == 600  # 3 s at 60 qpm = 3 beats
    plain = type(MELODY)()
    plain.time_per_id = lambda: None  # an encoding that declares no time
    with pytest.raises(ConfigError, match="declares no musical time: give the length in events"):
        length_budget(plain, GenerationRequest(seconds=3), 120)
    assert length_budget(plain, GenerationRequest(events=7), 120) == (7, None)


def _tiny(kind: str) -> dict:
    if kind == "transformer":
        return {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "max_context": 8}
    if kind == "cnn":  # a receptive field of 7, shorter than the pieces
        return {"embed_size": 8, "channels": 16, "num_layers": 3, "kernel_size": 2, "dilation_cycle": 3}
    if kind == "seq2seq":  # an empty source here (tests/test_seq2seq.py gives one)
        return {"d_model": 16, "encoder_layers": 1, "n_layers": 1, "n_heads": 2, "d_ff": 32, "max_context": 8}
    if kind == "seq2seq_lstm":
        return {"embed_size": 8, "hidden_size": 16, "n_layers": 1}
    return {"embed_size": 8, "hidden_size": 16, "num_layers": 1}


# ----------------------------------------------------------------------------- beam search


@pytest.mark.parametrize("kind", GENERATORS)
def test_a_beam_of_one_with_one_branch_is_plain_sampling(kind):
    from melodygen.sampling.beam import beam_search

    torch.manual_seed(0)
    model = build_model(kind, _tiny(kind), MELODY.vocab.size)
    sampled = sample(model, MELODY, max_events=30, stop_on_eos=False, primer_ids=[20, 4], temperature=1.2,
                     generator=torch.Generator().manual_seed(5))
    [kept] = beam_search(model, MELODY, beam_size=1, branch_factor=1, max_events=30, primer_ids=[20, 4],
                         temperature=1.2, generator=torch.Generator().manual_seed(5))
    assert kept.ids == sampled[0]


def test_beam_search_keeps_the_likelier_path_that_sampling_misses():
    """From BOS, id 4 (p 0.6) leads to a 10-way coin every step; id 5 (p 0.4) to a sure path.
    Sampling mostly takes 4; a beam of branches that looks two ids ahead before pruning keeps 5,
    far likelier over 6 ids (pruning after each id would keep 4: beam search is myopic)."""
    from melodygen.sampling.beam import beam_search

    wide = {i: 0.0 for i in range(10, 20)}
    table = table_with({BOS_ID: {4: math.log(0.6), 5: math.log(0.4)}, 4: wide, 5: {6: 0.0}, 6: {6: 0.0},
                        **{i: wide for i in range(10, 20)}})
    [best] = beam_search(TableModel(table), MELODY, beam_size=2, branch_factor=8, steps_per_iteration=2,
                         max_events=6, generator=torch.Generator().manual_seed(0))
    assert best.ids == [5, 6, 6, 6, 6, 6]
    assert best.log_likelihood == pytest.approx(math.log(0.4))
    rows = sample(TableModel(table), MELODY, num_outputs=20, max_events=6, stop_on_eos=False,
                  generator=torch.Generator().manual_seed(0))
    assert sum(r[0] == 4 for r in rows) > 5  # plain sampling often takes the likelier first id


def test_beam_search_arguments_are_checked():
    from melodygen.sampling.beam import beam_search

    model = TableModel(table_with({}))
    with pytest.raises(ConfigError, match="keeps 2 sequence"):
        beam_search(model, MELODY, beam_size=2, num_outputs=3, max_events=4)
    with pytest.raises(ConfigError, match="branch_factor and steps_per_iteration must be >= 1"):
        beam_search(model, MELODY, beam_size=2, branch_factor=0, max_events=4)


# ----------------------------------------------------------------------------- encoding grammars


@pytest.mark.parametrize("encoding", [MELODY, PERFORMANCE], ids=["melody", "performance"])
def test_the_grammar_leaves_no_dropped_id_in_sampled_streams(encoding):
    """An untrained model drops ids all the time; through its encoding's grammar, never."""
    torch.manual_seed(0)
    model = build_model("lstm", _tiny("lstm"), encoding.vocab.size)
    primer = encoding.encode(_primer_score())[:40].tolist()

    def drops(processors):
        rows = sample(model, encoding, num_outputs=64, max_events=200, stop_on_eos=False, primer_ids=primer,
                      generator=torch.Generator().manual_seed(1), processors=processors)
        return sum(encoding.dropped_ids(primer + row) for row in rows)

    assert drops([]) > 5  # melody: 11, performance: far more
    assert drops([encoding.grammar(primer, 64)]) == 0


@pytest.mark.parametrize("encoding", [MELODY, PERFORMANCE], ids=["melody", "performance"])
def test_beam_search_keeps_each_rows_grammar_through_pruning(encoding):
    from melodygen.sampling.beam import beam_search

    torch.manual_seed(0)
    model = build_model("gru", _tiny("gru"), encoding.vocab.size)
    primer = encoding.encode(_primer_score())[:41].tolist()  # ends while a note sounds
    kept = beam_search(model, encoding, beam_size=4, branch_factor=3, steps_per_iteration=5, num_outputs=4,
                       max_events=120, primer_ids=primer, generator=torch.Generator().manual_seed(2),
                       processors=[encoding.grammar(primer, 12)])
    assert [encoding.dropped_ids(primer + k.ids) for k in kept] == [0, 0, 0, 0]


def test_real_music_encodes_with_no_dropped_id(nottingham_files, chorale_files):
    from melodygen.midi_io import read_score

    for encoding, files in ((MELODY, nottingham_files), (PERFORMANCE, chorale_files)):
        for path in files:
            assert encoding.dropped_ids(encoding.encode(read_score(path)).tolist()) == 0, path


def _primer_score():
    from melodygen.notes import Note, Score, Track

    notes = [Note(60 + (i * 5) % 12, 90, 0.25 * i, 0.25 * i + 0.2) for i in range(16)]
    return Score([Track("melody", 0, False, notes)])
