"""The one generation request (`sampling.request`): the command line, the API and the studio
spell every option as it does, with its default; bad values and combinations are refused there."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

from melodygen.api import Model
from melodygen.commands.sample import command as sample_command
from melodygen.errors import ConfigError
from melodygen.sampling.request import GenerationRequest, request_defaults, request_options

# The command's own options: where files go and how the job runs, not what is generated.
JOB_OPTIONS = {"checkpoint", "out_dir", "name", "device", "max_copy_bars", "no_copy_check", "overwrite",
               "render", "threads"}
# The studio's own fields: which model, and the length as a number in a unit (bars, seconds, events).
STUDIO_OWN = {"model", "length", "unit", "upload"}


def test_the_command_line_has_each_request_option_with_its_default():
    params = {p.name: p for p in sample_command.params}
    assert set(params) - JOB_OPTIONS == set(request_defaults())
    for name, default in request_defaults().items():
        assert params[name].default == default, name
        assert params[name].help == request_options()[name].help, name


@pytest.mark.parametrize("method", [Model.generate, Model.stream])
def test_the_api_takes_each_request_option_as_a_keyword_with_its_default(method):
    keywords = {p.name: p.default for p in inspect.signature(method).parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert keywords == request_defaults()


def test_the_studio_form_names_request_options_with_their_defaults():
    from melodygen.studio.form import GenerationSettings, parse_settings

    studio = {f.name: f.default for f in dataclasses.fields(GenerationSettings)}
    defaults = request_defaults()
    assert set(studio) - STUDIO_OWN <= set(defaults)
    assert {name: studio[name] for name in set(studio) - STUDIO_OWN} == {
        name: defaults[name] for name in set(studio) - STUDIO_OWN}
    empty = parse_settings({"model": "m"}, ["m"])  # every field left empty: the defaults (a seed drawn)
    options = empty.generate_options(empty.seed)
    assert set(options) <= set(defaults)
    GenerationRequest.build(**options)  # what the studio asks is a request


def test_text_and_python_values_make_the_same_request():
    from_text = GenerationRequest.build(n="2", bars="8", instruments="violin, piano", chords="D G A7",
                                        density="6,12", fast="false", seed="7", tempo="90")
    from_python = GenerationRequest(n=2, bars=8, instruments=["violin", 0], chords=["D", "G", "A7"],
                                    density=[6, 12], fast=False, seed=7, tempo=90.0)
    assert from_text == from_python and from_text.instruments == (40, 0)
    assert GenerationRequest.build(primer="a.mid", infill="5-8").infill == (5, 8)
    assert GenerationRequest(primer="a.mid").primer == Path("a.mid")


@pytest.mark.parametrize("values, message", [
    ({"colour": "red"}, "unknown generation option 'colour'; the options: n, temperature"),
    ({"n": 0}, "n: 0 is outside [1, 1024]"),
    ({"temperature": 0}, "temperature: 0 is outside (0, inf]"),
    ({"temperature": "nan"}, "temperature: 'nan' is not a finite number"),
    ({"n": True}, "n: True is not a number"),
    ({"events": 10, "bars": 2}, "give at most one of --events, --seconds, --bars"),
    ({"infill": "8-5", "primer": "a.mid"}, "--infill 8-5: the first bar comes after the last"),
    ({"infill": "3-x", "primer": "a.mid"}, "infill '3-x': expected whole numbers from 1 as in 5-8"),
    ({"given_tracks": "1,1", "accompany": "a.mid"}, "--given-tracks names a track twice"),
    ({"key": "H"}, "H"),  # controls are read with the request
    ({"draft": True, "n": 2}, "--draft drafts one piece at a time"),
    ({"fast": "maybe"}, "fast: 'maybe' is not true or false"),
])
def test_a_bad_request_cannot_be_made_and_says_why_in_one_line(values, message):
    with pytest.raises(ConfigError) as refused:
        GenerationRequest.build(**values)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_request_without_a_seed_draws_one_and_keeps_a_given_one():
    drawn = GenerationRequest().seeded()
    assert drawn.seed is not None and drawn.seeded() is drawn
    assert GenerationRequest(seed=5).seeded().seed == 5


def test_transpose_moves_the_pitched_notes_of_the_same_piece():
    import melodygen

    model = melodygen.load("folk-melody")
    [plain] = model.generate(events=48, seed=4)
    [moved] = model.generate(events=48, seed=4, transpose=-3)
    assert moved.ids == plain.ids  # the same draw
    assert [n.pitch - 3 for n in plain.notes] == [n.pitch for n in moved.notes] and plain.notes
    assert [(n.start, n.end) for n in plain.notes] == [(n.start, n.end) for n in moved.notes]
    with pytest.raises(ConfigError, match="--transpose moves the whole piece: not with --accompany"):
        GenerationRequest(transpose=2, accompany="a.mid")
