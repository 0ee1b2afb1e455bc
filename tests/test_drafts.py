"""Tests of drafted decoding at batch 1 (sampling.drafts, decoding._drafted_row, the
Transformer's `many` step): guesses come from the sequence itself, a call over several ids
gives the logits of calls over one, and sampling with drafts draws exactly the ids (and feeds
the processors exactly the ids) that sampling without them does."""

from __future__ import annotations

import pytest
import torch

from melodygen.models import build_model
from melodygen.models import fast as fast_module
from melodygen.models.fast import fast_step
from melodygen.sampling import drafts
from melodygen.sampling import decoding
from melodygen.sampling.decoding import Budget, DecodeSettings, sample
from melodygen.sampling.drafts import PromptLookup
from test_fast import MELODY, TOLERANCE, model_of

PERIOD = [5, 9, 12, 7, 20, 31, 9, 12]


def test_guesses_follow_the_latest_occurrence_of_the_longest_ngram():
    lookup = PromptLookup([1, 2, 3, 9, 2, 3, 4, 5, 3], longest=3)
    # "3" ended before at 3 (-> 9 ...) and 6 (-> 4 5 ...): the latest wins; no 2-gram "5 3" before
    assert lookup.propose(3) == [4, 5, 3]
    lookup.add(4)  # "3 4" was seen: at 7 (-> 5 ...)
    assert lookup.propose(2) == [5, 3]
    assert PromptLookup([1, 2, 3]).propose(4) == []  # nothing seen twice


def test_guesses_are_scored_whether_fed_or_not():
    lookup = PromptLookup([7, 8] * 3)
    assert lookup.hit_rate == drafts.START_HIT_RATE
    assert lookup.propose(2) == [7, 8]
    lookup.add(7)  # a hit
    rate = lookup.hit_rate
    assert rate > drafts.START_HIT_RATE
    lookup.add(9)  # a miss: the rest of the proposal is not scored
    assert lookup.hit_rate < rate
    rate = lookup.hit_rate
    lookup.add(7)
    assert lookup.hit_rate == rate
    assert lookup.propose(0) == []  # not fed, but its first guess is scored: "7" -> 9 last time
    lookup.add(9)
    assert lookup.hit_rate > rate


def test_guesses_pay_for_their_measured_calls():
    times = drafts.CallTimes()
    assert times.guesses(0.99, 8) == 0  # nothing timed yet
    times.record(1, 50.0)  # a size's first call (packing weights, kernels for a shape) does not count
    times.record(1, 1.0)
    assert times.seconds == {1: 1.0}
    assert times.estimate(4) == drafts.UNTIMED_COST  # a size not timed yet is tried as if cheap ...
    assert times.guesses(0.3, 8) == 8
    for ids in range(2, 10):  # ... until it is timed: 1.5x for 2 ids, then 0.05x more per id
        times.record(ids, 50.0)
        times.record(ids, 1.5 + 0.05 * (ids - 2))
        assert times.estimate(ids + 3) == times.seconds[ids]  # more ids cost no less than fewer
    assert times.guesses(0.3, 8) == 0  # 1 + .3 + .09 + ... ids are not worth 1.5x and more
    assert times.guesses(0.5, 8) == 4  # 1.94 ids for 1.65x
    assert times.guesses(0.7, 8) == 6  # 3.06 ids for 1.75x
    assert times.guesses(0.7, 2) == 2  # the most allowed
    times.record(5, 100.0)  # a stall moves a size's time at most to 1.5x
    assert times.seconds[5] == pytest.approx(1.65 * 1.5)
    times.record(2, 1.1)
    assert 1.1 < times.seconds[2] < 1.5
    times.record(1, 9.0, after_several=True)  # warm-up
    times.record(1, 1.5, after_several=True)  # a call over one after several pays 0.5 for the mix ...
    assert times.seconds[1] == 1.0
    assert times.guesses(0.5, 8) == 0  # ... which a call with guesses is charged: 1.94 ids for 2.15x


@pytest.mark.parametrize("positions", ["rope", "relative", "learned"])
def test_many_ids_per_call_give_the_one_id_logits(positions):
    """Chunks of drafted ids, some taken back, past the context (12): the logits of one id at a time."""
    model = model_of("transformer", {"positions": positions})
    step = fast_step(model)
    ids = torch.randint(3, MELODY.vocab.size, (1, 60), generator=torch.Generator().manual_seed(1))
    junk = torch.randint(3, MELODY.vocab.size, (1, 2), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        logits, state = model.step(ids[:, :5], None)
        wanted = [logits]
        for t in range(5, 60):
            logits, state = step(ids[:, t:t + 1], state)
            wanted.append(logits)
        logits, state = model.step(ids[:, :5], None)
        got, t = [logits], 5
        while t < 60:
            n = min(4, 60 - t)
            chunk = torch.cat([ids[:, t:t + n], junk], dim=1)
            if chunk.shape[1] <= step.room(state):
                logits, state = step.many(chunk, state)
                step.rewind(state, junk.shape[1])
                got.append(logits[:, :n])
            else:
                n = 1
                logits, state = step(ids[:, t:t + 1], state)
                got.append(logits)
            t += n
    torch.testing.assert_close(torch.cat(got, 1), torch.cat(wanted, 1), rtol=TOLERANCE, atol=TOLERANCE)


def periodic_model(positions: str = "rope") -> torch.nn.Module:
    """A small Transformer trained to continue PERIOD, now and then with another id: drafts of
    its pieces are mostly right and sometimes wrong."""
    torch.manual_seed(0)
    model = build_model("transformer", {"d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 64, "max_context": 24,
                                        "dropout": 0.0, "positions": positions}, MELODY.vocab.size)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    base = torch.tensor(PERIOD * 8)
    for _ in range(60):
        windows = torch.stack([base[s:s + 25] for s in torch.randint(0, len(PERIOD), (16,)).tolist()])
        noise = torch.rand(windows.shape) < 0.1
        windows = torch.where(noise, torch.randint(3, MELODY.vocab.size, windows.shape), windows)
        loss = torch.nn.functional.cross_entropy(model(windows[:, :-1]).transpose(1, 2), windows[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


class Counted:
    """Counts `many` calls and rewinds of the Transformer's fast step."""

    def __init__(self, monkeypatch):
        self.calls = self.rewinds = 0
        many, rewind = fast_module._TransformerStepper.many, fast_module._TransformerStepper.rewind

        def counted_many(stepper, ids, cache):
            self.calls += 1
            return many(stepper, ids, cache)

        def counted_rewind(stepper, cache, count):
            self.rewinds += 1
            return rewind(stepper, cache, count)

        monkeypatch.setattr(fast_module._TransformerStepper, "many", counted_many)
        monkeypatch.setattr(fast_module._TransformerStepper, "rewind", counted_rewind)


class FixedTimes(drafts.CallTimes):
    """Call times that do not depend on this machine: a call over several ids costs 1.2 calls
    over one, whatever is measured."""

    def __init__(self):
        super().__init__()
        self.seconds = {ids: 1.0 if ids == 1 else 1.2 for ids in range(1, 10)}

    def record(self, ids, seconds, after_several=False):
        pass


@pytest.mark.parametrize("positions", ["rope", "relative", "learned"])
def test_drafted_sampling_draws_the_plain_ids(positions, monkeypatch):
    model = periodic_model(positions)
    counted = Counted(monkeypatch)
    monkeypatch.setattr(decoding, "call_times", lambda stepper: FixedTimes())
    common = dict(max_events=150, temperature=1.0, top_p=0.98, primer_ids=PERIOD[:3], stop_on_eos=False)
    plain = sample(model, MELODY, generator=torch.Generator().manual_seed(3), settings=DecodeSettings(fast=False),
                   **common)
    undrafted = sample(model, MELODY, generator=torch.Generator().manual_seed(3), **common)
    assert counted.calls == 0
    drafted = sample(model, MELODY, generator=torch.Generator().manual_seed(3),
                     settings=DecodeSettings(draft_length=8), **common)
    assert drafted == plain == undrafted
    assert len(drafted[0]) == 150
    assert counted.calls < 150 / 2  # most guesses were taken ...
    assert counted.rewinds > 0  # ... and some were not


def test_drafted_sampling_keeps_budgets_eos_and_the_processors_calls():
    """A budget and EOS end the row where they end it without drafts, and a stateful processor
    sees the same ids in the same order (it never sees a guess that was not drawn)."""
    model = periodic_model()
    budget = Budget(costs=torch.rand(MELODY.vocab.size, generator=torch.Generator().manual_seed(0)).numpy(),
                    limit=30.0)
    runs = []
    for draft_length in (0, 8):
        seen = []

        def recording(logits, last_ids, seen=seen):
            seen.append(None if last_ids is None else last_ids.tolist())
            return logits

        rows = sample(model, MELODY, max_events=400, budget=budget, processors=[recording],
                      settings=DecodeSettings(draft_length=draft_length),
                      primer_ids=PERIOD, generator=torch.Generator().manual_seed(5))
        runs.append((rows, seen))
    assert runs[0] == runs[1]
    assert 40 < len(runs[0][0][0]) < 400  # the budget ended it
    assert 1 in drafts.call_times(fast_step(model)).seconds  # the drafted run timed its calls


def test_batches_short_rows_and_recurrent_models_are_not_drafted(monkeypatch):
    counted = Counted(monkeypatch)
    monkeypatch.setattr(decoding, "call_times", lambda stepper: FixedTimes())
    model = periodic_model()
    common = dict(primer_ids=PERIOD, stop_on_eos=False, settings=DecodeSettings(draft_length=8))
    sample(model, MELODY, num_outputs=2, max_events=150, **common)
    sample(model, MELODY, max_events=decoding.DRAFT_AFTER, **common)  # the set-up would not pay
    sample(model_of("lstm", {}), MELODY, max_events=150, **common)
    sample(model, MELODY, max_events=150, primer_ids=PERIOD, stop_on_eos=False)  # drafting is asked for
    assert counted.calls == 0
    sample(model, MELODY, max_events=decoding.DRAFT_AFTER + 20, **common)
    assert counted.calls > 0


def test_sample_draft_writes_the_same_files(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from melodygen.cli import main
    from test_sample_cli import write_checkpoint

    counted = Counted(monkeypatch)
    monkeypatch.setattr(decoding, "call_times", lambda stepper: FixedTimes())
    ckpt = write_checkpoint(tmp_path / "transformer.pt", "transformer", "melody")
    for flag in ("--draft", "--fast"):
        counted.calls = 0
        result = CliRunner().invoke(main, ["sample", str(ckpt), "--out", str(tmp_path / flag), "--length", "200",
                                           "--seed", "4", flag])
        assert result.exit_code == 0, result.output
        assert (counted.calls > 0) == (flag == "--draft")
    name = "sample_000.mid"
    assert (tmp_path / "--draft" / name).read_bytes() == (tmp_path / "--fast" / name).read_bytes()
    result = CliRunner().invoke(main, ["sample", str(ckpt), "--out", str(tmp_path / "n2"), "-n", "2", "--draft"])
    assert result.exit_code == 2 and "--draft drafts one piece at a time" in result.output


def test_a_processor_forcing_eos_ends_a_drafted_row():
    from melodygen.encodings.vocab import EOS_ID

    def eos_after_20(logits, last_ids, seen=[0]):  # forces EOS at the 21st draw, banned or not
        seen[0] += 1
        if seen[0] == 21:
            logits = torch.full_like(logits, -torch.inf)
            logits[:, EOS_ID] = 0.0
        return logits

    rows = sample(periodic_model(), MELODY, max_events=100, stop_on_eos=False, processors=[eos_after_20],
                  primer_ids=PERIOD, generator=torch.Generator().manual_seed(0),
                  settings=DecodeSettings(draft_length=8))
    assert len(rows[0]) == 20


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_drafted_sampling_on_cuda_draws_the_plain_ids(monkeypatch):
    counted = Counted(monkeypatch)
    model = periodic_model().cuda()
    common = dict(max_events=150, primer_ids=PERIOD[:3], stop_on_eos=False, device="cuda")
    runs = [sample(model, MELODY, generator=torch.Generator("cuda").manual_seed(3),
                   settings=DecodeSettings(fast=fast, draft_length=8 if fast else 0), **common)
            for fast in (False, True)]
    assert runs[0] == runs[1]
    assert counted.calls > 0
