"""Form plans (`encodings.form`) and the multitrack grammar with repeats: the REPEAT syntax lets
nothing through that decoding would drop, and a plan's repeats are forced bar by bar."""

from __future__ import annotations

import pytest
import torch

from melodygen.encodings import get_encoding
from melodygen.encodings.form import FormPlan, form_adherence
from melodygen.encodings.vocab import EOS_ID
from melodygen.errors import ConfigError
from melodygen.sampling.request import GenerationRequest

REP = get_encoding("multitrack", repeats=16)
REP_CONTROLS = get_encoding("multitrack", repeats=16, controls=["key", "chord", "density"])
VARIED = get_encoding("multitrack", repeats=16, varied_repeats=True, controls=["key", "chord"])


def draw(encoding, grammar, rows: int, steps: int, seed: int, bias_repeat: float = 0.0,
         meters: bool = True, downbeats: int = 0) -> list[list[int]]:
    """Random logits through the grammar, like the sampler; `bias_repeat` makes REPEAT likelier;
    `meters=False`: 4/4 throughout (no TIMESIG drawn); the first `downbeats` rows much prefer
    POS(0)."""
    generator = torch.Generator().manual_seed(seed)
    out, last = [[] for _ in range(rows)], None
    first = encoding.vocab.offset("REPEAT")
    for _ in range(steps):
        logits = torch.randn(rows, encoding.vocab.size, generator=generator) * 3
        logits[:, :EOS_ID + 1] = -float("inf")
        logits[:, first:first + 16] += bias_repeat
        logits[:downbeats, encoding.vocab.id_of("POS", 0)] += 20
        if not meters:
            timesig = encoding.vocab.offset("TIMESIG")
            logits[:, timesig:timesig + encoding.vocab.range("TIMESIG").size] = -float("inf")
        logits = grammar(logits, last)
        assert torch.isfinite(logits).any(1).all()
        last = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0]
        for row, i in zip(out, last.tolist()):
            row.append(i)
    return out


@pytest.mark.parametrize("encoding", [REP, REP_CONTROLS, VARIED])
def test_grammar_with_repeats_lets_nothing_through_that_decoding_would_drop(encoding):
    rows = draw(encoding, encoding.grammar([], 16, "cpu"), 16, 500, seed=0, bias_repeat=4.0)
    names = [encoding.vocab.event_of(i)[0] for row in rows for i in row]
    assert names.count("REPEAT") > 20 and names.count("SHIFT") > 0  # the syntax was exercised
    cuts = sum(a in ("REPEAT", "SHIFT") and b == "POS" for a, b in zip(names, names[1:]))
    assert (cuts > 5) == encoding.settings.varied_repeats  # varied repeats: only when on
    assert sum(encoding.dropped_ids(row) for row in rows) == 0


@pytest.mark.parametrize("text, bars, sections", [
    ("AABA", 16, "A4 A4 B4 A4"),
    ("A8 A8 B8 A8", None, "A8 A8 B8 A8"),
    ("AABA", None, "A8 A8 B8 A8"),
    ("A4 A'4 B8", None, "A4 A'4 B8"),
    ("A4 B A", 12, "A4 B4 A4"),
])
def test_plans_read_sections_and_lengths(text, bars, sections):
    assert FormPlan.parse(text, bars).describe() == sections


def test_a_plan_says_which_bar_each_bar_repeats():
    plan = FormPlan.parse("A2 A2 B2 A'2 A2")
    # the nearest whole A before: the second; A' repeats its first half
    assert plan.sources() == [None, None, 0, 1, None, None, 2, None, 2, 3]
    assert plan.varied_sources() == [None] * 7 + [3, None, None]  # A' varies the second half


@pytest.mark.parametrize("text, bars, words", [
    ("A8 ?", None, "write sections as letters"),
    ("AABA", 40 - 1, "do not split"),
    ("A8 B8", 12, "more than the 12"),
    ("A' B", None, "none does"),
    ("A2 A4", None, "more than the 2"),
])
def test_a_bad_plan_is_one_line(text, bars, words):
    with pytest.raises(ConfigError, match=words) as err:
        FormPlan.parse(text, bars)
    assert "\n" not in str(err.value)


def test_the_form_sets_the_length_and_refuses_what_it_cannot_plan():
    assert GenerationRequest(form="A4 B4 A4").bars == 12
    for options in ({"events": 64}, {"seconds": 10.0}, {"strict_density": True, "density": (8,)}):
        with pytest.raises(ConfigError, match="--form plans bars"):
            GenerationRequest(form="AABA", **options)


@pytest.mark.parametrize("encoding", [REP, REP_CONTROLS, VARIED])
def test_the_grammar_forces_the_planned_repeats(encoding):
    plan = FormPlan.parse("A2 A2 B2 A2")
    grammar = encoding.grammar([], 8, "cpu", instruments=[73, 0], form=plan)
    rows = draw(encoding, grammar, 8, 400, seed=3, meters=False)
    for row in rows:
        assert encoding.dropped_ids(row) == 0
        bar_id = encoding.vocab.id_of("BAR")
        bars = [[]]
        for i in row:
            if i == bar_id:
                bars.append([])
            bars[-1].append(i)
        repeats = [[encoding.vocab.tokens[i] for i in bar if encoding.vocab.event_of(i)[0] in ("REPEAT", "SHIFT")]
                   for bar in bars[1:]]
        assert repeats[2:4] == [["REPEAT(-2)"], ["REPEAT(-2)"]] and repeats[6:8] == [["REPEAT(-4)"], ["REPEAT(-4)"]]
        score = encoding.decode_score(row[:[k for k, i in enumerate(row) if i == bar_id][8] + 1])
        adherence = form_adherence(plan, score)
        for planned, heard in (adherence.repeated[1], adherence.repeated[3]):
            assert planned == heard  # every repeat heard (silent source bars are not counted)


@pytest.mark.parametrize("encoding", [REP_CONTROLS, VARIED])
def test_a_varied_section_opens_as_its_bars_and_changes_where_the_encoding_can_say_so(encoding):
    plan = FormPlan.parse("A2 A'2 B2")  # bar 2 repeats bar 0; bar 3 varies bar 1
    rows = draw(encoding, encoding.grammar([], 8, "cpu", instruments=[73, 0], form=plan), 8, 300, seed=4,
                meters=False)
    bar_id = encoding.vocab.id_of("BAR")
    for row in rows:
        assert encoding.dropped_ids(row) == 0
        starts = [k for k, i in enumerate(row) if i == bar_id]
        body = [encoding.vocab.tokens[i] for i in row[starts[3] + 1:starts[4]]]
        body = [t for t in body if t.split("(")[0] not in ("KEY", "CHORD")]
        if encoding.settings.varied_repeats:
            assert body[0] == "REPEAT(-2)" and body[1].startswith("POS(") and len(body) > 2
        else:
            assert "REPEAT(-2)" not in body  # new music, as before varied repeats


def test_chords_follow_the_form_when_none_are_asked():
    """No --chords asked: the model writes its own chords; every bar whose letter came before
    gets the chord of the bar it follows (a repeated bar's label matches what it copies, A' keeps
    A's chords under new notes); without a form, CHORD stays banned as before."""
    plan = FormPlan.parse("A4 A'4")
    assert plan.chord_sources() == [None] * 4 + [0, 1, 2, 3]
    grammar = REP_CONTROLS.grammar([], 8, "cpu", instruments=[73, 0], form=plan)
    kept = 0
    for row in draw(REP_CONTROLS, grammar, 8, 400, seed=5, meters=False):
        assert REP_CONTROLS.dropped_ids(row) == 0
        bars = " ".join(REP_CONTROLS.readable(row)).split("BAR")[1:9]
        chords = [next((t for t in bar.split() if t.startswith("CHORD")), None) for bar in bars]
        for new, old in ((4, 0), (5, 1), (6, 2), (7, 3)):
            assert chords[new] == chords[old]  # the same chord, or none where the first had none
            kept += chords[old] is not None
    assert kept >= 8  # the check ran
    chord = REP_CONTROLS.vocab.offset("CHORD")
    plain = draw(REP_CONTROLS, REP_CONTROLS.grammar([], 4, "cpu"), 4, 200, seed=5)
    assert not any(chord <= i < chord + REP_CONTROLS.vocab.range("CHORD").size for row in plain for i in row)


def test_a_keys_cadence_under_a_form_closes_where_the_last_bar_s_chord_comes_from():
    """With --key and --form (no --chords): the first bar opens on the tonic, and the closing
    tonic goes to the bar the last one repeats (A4 A'4: bar 4 of the first A), so the repeat
    that ends the piece keeps it; the bars between stay the model's, and still follow the form."""
    from melodygen import harmony
    from melodygen.encodings.controls import ControlRequest

    em = harmony.parse_chord("Em")
    plan = FormPlan.parse("A2 B2 A2")
    cadence = ControlRequest.parse(key="Em").with_cadence(6, opening=True, sources=plan.chord_sources())
    assert cadence.chords == (em, em, None, None, None, None)  # the last A repeats the first A's bar 2
    plan = FormPlan.parse("A4 A'4")
    cadence = ControlRequest.parse(key="Em").with_cadence(8, opening=True, sources=plan.chord_sources())
    assert cadence.chords == (em, None, None, em, None, None, None, None)
    grammar = REP_CONTROLS.grammar([], 8, "cpu", instruments=[73, 0], form=plan, controls=cadence)
    closed = 0
    for row in draw(REP_CONTROLS, grammar, 8, 400, seed=5, meters=False):
        bars = " ".join(REP_CONTROLS.readable(row)).split("BAR")[1:9]
        chords = [next((t for t in bar.split() if t.startswith("CHORD")), None) for bar in bars]
        assert chords[0] == "CHORD(Em)"
        if len(bars) == 8:
            assert chords[3] == chords[7] == "CHORD(Em)" and chords[4:7] == chords[0:3]
            closed += 1
    assert closed


def test_a_longer_repeat_after_a_shorter_one_repeats_the_whole_section():
    assert FormPlan.parse("A4 A2 A4").sources() == [None] * 4 + [0, 1, 4, 5, 2, 3]
    assert FormPlan.parse("A4 A1 B1 A4").sources() == [None] * 4 + [0, None, 4, 1, 2, 3]


def test_a_form_after_a_primer_counts_from_the_first_new_bar():
    from melodygen.midi_io import read_score

    from conftest import CORPORA

    primer = [int(i) for i in REP.encode(read_score(CORPORA["nottingham"] / "jigs1.mid"))[:80]]
    bar_id = REP.vocab.id_of("BAR")
    grammar = REP.grammar(primer, 4, "cpu", form=FormPlan.parse("A2 A2"))
    for row in draw(REP, grammar, 4, 300, seed=2, meters=False):
        assert REP.dropped_ids(primer + row) == 0
        bars = " ".join(REP.readable(row)).split("BAR")[1:5]
        assert [b.split()[-1] for b in bars[2:4]] == ["REPEAT(-2)", "REPEAT(-2)"]
    assert bar_id in primer  # the primer has bars of its own, which the plan does not count


def test_adherence_counts_what_is_not_repeated():
    plan = FormPlan.parse("A1 A1")
    tune = get_encoding("multitrack")
    ids = [tune.vocab.id_of("PROGRAM", 0), tune.vocab.id_of("BAR")]
    note = lambda pitch: [tune.vocab.id_of("POS", 0), tune.vocab.id_of("TRACK", 0), tune.vocab.id_of("PITCH", pitch),  # noqa: E731
                          tune.vocab.id_of("VEL", 8), tune.vocab.id_of("DUR", 12)]
    same = tune.decode_score(ids + note(60) + [tune.vocab.id_of("BAR")] + note(60) + [tune.vocab.id_of("BAR")])
    other = tune.decode_score(ids + note(60) + [tune.vocab.id_of("BAR")] + note(62) + [tune.vocab.id_of("BAR")])
    assert form_adherence(plan, same).repeated == ((0, 0), (1, 1))
    assert form_adherence(plan, other).repeated == ((0, 0), (1, 0))
    assert "A1 0/1 bars repeat A" in form_adherence(plan, other).describe()


# ------------------------------------------------------------------------------ through `sample`


@pytest.fixture(scope="module")
def repeats_checkpoint(tmp_path_factory):
    from train_fixtures import untrained_checkpoint

    return untrained_checkpoint(tmp_path_factory.mktemp("ckpt") / "repeats.pt", REP_CONTROLS, instruments=[0, 73])


def sample(*args):
    from click.testing import CliRunner

    from melodygen.cli import main

    return CliRunner().invoke(main, ["sample", *map(str, args), "--no-copy-check"])


def test_sample_follows_a_form_and_says_so(repeats_checkpoint, tmp_path):
    from melodygen.encodings.controls import read_beside

    result = sample(repeats_checkpoint, "--out", tmp_path, "--form", "A2 A2 B2 A'2", "-n", 2, "--seed", 4,
                    "--chords", "D G")
    assert result.exit_code == 0, result.output
    assert "form A2 A2 B2 A'2: A2 new · A2 2/2 bars repeat A · B2 new · A'2 1/1 bars repeat A" in result.output
    steering = read_beside(tmp_path / "sample_000.mid")
    assert steering.form == "A2 A2 B2 A'2" and steering.bars == 8
    import json

    saved = json.loads((tmp_path / "sample_000.controls.json").read_text())
    assert saved["form_achieved"]["sections"][1] == {"section": "A", "bars": 2, "planned_repeats": 2, "repeated": 2,
                                                     "planned_chords": 0, "chords_kept": 0}  # chords asked


@pytest.mark.parametrize("args, words", [
    (["--form", "AB?"], "write sections as letters"),
    (["--form", "A8 B8", "--bars", "12"], "more than the 12 asked for"),
    (["--form", "A' B"], "none does"),
    (["--form", "A40 B4 A4"], "repeats a bar 44 bars back; this model's repeats reach 16 bars"),
])
def test_a_bad_form_is_one_line_before_anything_is_written(repeats_checkpoint, tmp_path, args, words):
    result = sample(repeats_checkpoint, "--out", tmp_path / "out", *args)
    assert result.exit_code != 0 and words in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_model_without_repeats_refuses_a_form(tmp_path):
    from melodygen.sampling.files import plan_generation

    with pytest.raises(ConfigError, match="trained without them"):
        plan_generation(get_encoding("multitrack"), GenerationRequest(form="AABA"))
    with pytest.raises(ConfigError, match="one stream of notes"):
        plan_generation(get_encoding("melody"), GenerationRequest(form="AABA"))


def test_the_studio_passes_a_form_and_lets_it_set_the_length():
    from melodygen.studio.form import GenerationSettings

    counted = GenerationSettings(model="m", form="A4 A4 B4 A4").generate_options(1)
    assert counted["form"] == "A4 A4 B4 A4" and "bars" not in counted
    assert GenerationRequest(**counted).bars == 16
    shared = GenerationSettings(model="m", form="AABA", length=16).generate_options(1)
    assert shared["bars"] == 16 and GenerationRequest(**shared).form_plan.describe() == "A4 A4 B4 A4"


def test_a_pickup_bar_is_never_repeated_in_a_piece_from_nothing():
    """A REPEAT that copies the first bar is refused once that bar is a pickup (its first note
    after the downbeat, or none), and only then."""
    counts = {"pickup": 0, "copied": 0, "full": 0, "full copied": 0}
    for row in draw(REP, REP.grammar([], 48, "cpu"), 48, 400, seed=3, bias_repeat=3.0, meters=False, downbeats=24):
        events = [REP.vocab.event_of(i) for i in row]
        bar, pos, pickup = -1, None, None
        for name, value in events:
            if name == "BAR":
                bar += 1
                if bar == 1 and pickup is None:
                    pickup = True  # no note in the first bar
            elif name == "POS":
                pos = value
            elif name == "PITCH" and bar == 0 and pickup is None:
                pickup = pos > 0
            elif name == "REPEAT" and bar - value == 0:
                counts["copied" if pickup else "full copied"] += 1
        counts["pickup" if pickup else "full"] += 1
    assert counts["copied"] == 0
    assert counts["pickup"] > 5 and counts["full"] > 5 and counts["full copied"] > 0  # the rule had work to do


def test_under_a_plan_the_first_bar_opens_on_its_downbeat():
    """A plan's repeats of the first bar are forced: it may not be a pickup (beats of silence,
    copied)."""
    plan = FormPlan.parse("A2 A2", None)
    firsts = []
    for row in draw(REP, REP.grammar([], 16, "cpu", form=plan), 16, 300, seed=5, meters=False):
        events = [REP.vocab.event_of(i) for i in row]
        first_bar = events[events.index(("BAR", None)) + 1:]
        pos = None
        for name, value in first_bar:
            if name == "POS":
                pos = value
            if name in ("PITCH", "BAR"):
                firsts.append(pos if name == "PITCH" else None)
                break
    assert firsts == [0] * 16  # random logits open on a later position nearly always without the rule
