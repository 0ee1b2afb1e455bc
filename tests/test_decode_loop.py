"""Tests of the one decode loop (sampling.loop, steppers, streams): watchers see every draw as it
is made, decoding is configured by `DecodeSettings` values, and `Model.stream` hands out exactly
the ids `Model.generate` returns for the same seed."""

from __future__ import annotations

import threading

import pytest
import torch

import melodygen
from melodygen.encodings.vocab import EOS_ID, PAD_ID
from melodygen.errors import ConfigError
from melodygen.sampling import decoding
from melodygen.sampling.beam import beam_search
from melodygen.sampling.decoding import DecodeSettings, sample
from melodygen.sampling.loop import watching
from melodygen.sampling.streams import Event
from test_drafts import PERIOD, Counted, FixedTimes, periodic_model
from test_fast import MELODY, model_of
from test_sample_cli import write_checkpoint


class EndFirstRow:
    """A logit processor forcing EOS in row 0 at its `at`-th draw."""

    def __init__(self, at: int):
        self.at, self.draws = at, 0

    def __call__(self, logits, last_ids):
        self.draws += 1
        if self.draws == self.at:
            logits = logits.clone()
            logits[0] = -torch.inf
            logits[0, EOS_ID] = 0.0
        return logits


def test_watchers_see_every_draw_as_sample_returns_it():
    model = model_of("gru", {})
    seen, outer = [], []
    with watching(lambda ids: outer.append(ids.clone())), watching(lambda ids: seen.append(ids.clone())):
        rows = sample(model, MELODY, num_outputs=3, max_events=40, generator=torch.Generator().manual_seed(1),
                      processors=[EndFirstRow(6)])
    assert len(seen) == len(outer) > 0 and all(torch.equal(a, b) for a, b in zip(seen, outer))
    drawn = torch.stack(seen, dim=1).tolist()  # PAD once a row has ended, EOS where it ends
    assert [[i for i in row if i > EOS_ID] for row in drawn] == rows
    assert drawn[0][5:7] == [EOS_ID, PAD_ID] and len(drawn[1]) == 40 and len(rows[0]) == 5  # the others go on
    with watching(seen.append):
        pass
    count = len(seen)
    sample(model, MELODY, max_events=5)  # outside the block: not watched
    assert len(seen) == count


def test_a_watcher_is_seen_only_in_its_own_thread():
    model = model_of("rnn", {})
    seen = []
    other = threading.Thread(target=lambda: sample(model, MELODY, max_events=10))
    with watching(seen.append):
        other.start()
        other.join()
    assert seen == []


def test_a_raising_watcher_stops_the_loop_and_restores_the_model():
    model = model_of("lstm", {}).train()
    seen = []

    def stop_at_5(ids):
        seen.append(ids)
        if len(seen) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), watching(stop_at_5):
        sample(model, MELODY, max_events=100)
    assert model.training and len(seen) == 5


def test_beam_search_runs_through_the_loop_one_draw_per_step():
    model = model_of("gru", {})
    steps = []
    with watching(steps.append):
        kept = beam_search(model, MELODY, beam_size=2, branch_factor=3, steps_per_iteration=2, max_events=25,
                           generator=torch.Generator().manual_seed(0))
    assert len(steps) == 25 and all(s.shape == (6,) for s in steps)
    assert len(kept[0].ids) == 25


def test_decoding_is_configured_by_values(monkeypatch):
    counted = Counted(monkeypatch)
    monkeypatch.setattr(decoding, "call_times", lambda stepper: FixedTimes())
    model = periodic_model()
    common = dict(max_events=40, primer_ids=PERIOD, stop_on_eos=False, generator=torch.Generator().manual_seed(2))
    plain = sample(model, MELODY, settings=DecodeSettings(fast=False), **common)
    common["generator"] = torch.Generator().manual_seed(2)
    sample(model, MELODY, settings=DecodeSettings(draft_length=8), **common)  # 40 < draft_after: no drafts
    assert counted.calls == 0
    common["generator"] = torch.Generator().manual_seed(2)
    drafted = sample(model, MELODY, settings=DecodeSettings(draft_length=8, draft_after=8), **common)
    assert counted.calls > 0 and drafted == plain
    assert DecodeSettings.sampling(draft=True).draft_length == decoding.DRAFT_LENGTH
    assert DecodeSettings.sampling(fast=False) == DecodeSettings(fast=False, draft_length=0)
    with pytest.raises(ConfigError, match="must not be negative"):
        DecodeSettings(draft_after=-1)


def test_fast_min_events_is_a_value():
    from melodygen.models.fast import fast_step

    model = model_of("lstm", {})
    sample(model, MELODY, max_events=8, settings=DecodeSettings(fast_min_events=100))
    assert fast_step(model, build=False) is None
    sample(model, MELODY, max_events=8, settings=DecodeSettings(fast_min_events=8))
    assert fast_step(model, build=False) is not None


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, melodygen.Model]:
    folder = tmp_path_factory.mktemp("models")
    return {kind: melodygen.load(write_checkpoint(folder / f"{kind}.pt", kind, "melody"))
            for kind in ("lstm", "transformer")}


@pytest.mark.parametrize("kind", ["lstm", "transformer"])
@pytest.mark.parametrize("length", [{"events": 40}, {"bars": 2}, {}])  # exact, by time, until the model ends it
def test_stream_yields_exactly_the_ids_generate_returns(models, kind, length):
    model = models[kind]
    options = dict(temperature=0.9, top_p=0.95, seed=11, **length)
    stream = model.stream(**options)
    assert stream.piece is None
    events = list(stream)
    [piece] = model.generate(n=1, **options)
    assert [e.id for e in events] == piece.ids == stream.piece.ids and events
    assert all(isinstance(e, Event) and e.token == model.encoding.vocab.tokens[e.id] for e in events)
    assert stream.piece.notes == piece.notes


def test_stream_with_a_primer_yields_only_the_new_events(models, tmp_path):
    from midi_factory import simple_file

    primer = simple_file(tmp_path)
    stream = models["lstm"].stream(events=20, primer=primer, seed=2)
    assert [e.id for e in stream] == models["lstm"].generate(events=20, primer=primer, seed=2)[0].ids


def test_a_stream_closed_early_stops_its_generation(models):
    stream = models["lstm"].stream(events=5000, seed=1)
    first = [next(stream) for _ in range(3)]
    stream.close()
    assert len(first) == 3 and stream.piece is None
    assert list(stream) == []
    assert [t.name for t in threading.enumerate() if t.name == "melodygen-stream"] == []


def test_a_bad_stream_request_raises_before_anything_is_drawn(models):
    with pytest.raises(ConfigError, match="give at most one of"):
        models["lstm"].stream(events=10, bars=2)
    with pytest.raises(ConfigError, match="stream makes one piece at a time"):
        models["lstm"].stream(n=2, events=10)
    with pytest.raises(ConfigError, match="--beam chooses among its sequences afterwards"):
        models["lstm"].stream(events=10, beam=2)  # the events drawn in row 0 would not be the piece's
