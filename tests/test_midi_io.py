"""midi_io: the fast reader on MIDI edge cases built with mido, on corrupt files, against
pretty_midi on real corpora; and atomic writing that reads back."""

import os
import warnings
from pathlib import Path

import mido
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import midi_factory as mf
from conftest import CORPORA, DATA, REPO
from melodygen.errors import MidiReadError
from melodygen.midi_io import WRITE_TICKS_PER_BEAT, read_score, write_midi, write_score
from melodygen.limits import ReadLimits
from melodygen.notes import Note, Score, TempoMap, Track


def spans(track):
    return [(n.pitch, n.start, n.end) for n in track.notes]


def test_simple_file_notes_tempo_and_names(tmp_path):
    score = read_score(mf.simple_file(tmp_path))
    (track,) = score.tracks
    assert (track.name, track.program, track.is_drum) == ("Melody", 0, False)
    assert spans(track) == [(p, i * 0.5, (i + 1) * 0.5)
                            for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72])]
    assert {n.velocity for n in track.notes} == {80}
    assert score.tempo_map.qpm == (120.0,) and score.end_time == 4.0
    assert score.source.endswith("simple.mid") and score.dropped_notes == 0


def test_tempo_and_time_signature_changes_from_any_track(tmp_path):
    score = read_score(mf.tempo_changes_file(tmp_path))
    (track,) = score.tracks
    assert track.program == 5
    starts = [n.start for n in track.notes]
    assert starts == pytest.approx([0, 0.5, 1, 2, 3, 4, 5, 5.25])
    assert track.notes[-1].end == pytest.approx(5.5)
    assert score.tempo_map.times == pytest.approx((0.0, 1.0, 5.0))
    assert score.tempo_map.qpm == pytest.approx((120.0, 60.0, 240.0))
    assert score.tempo_map.beats == pytest.approx((0.0, 2.0, 6.0))
    assert score.tempo_map.to_beats(5.5) == pytest.approx(8.0)
    assert score.time_signatures == [(0.0, 4, 4), (pytest.approx(3.0), 3, 4),
                                     (pytest.approx(5.0), 6, 8)]


def test_type0_is_split_by_channel_and_drums_are_optional(tmp_path):
    path = mf.type0_file(tmp_path)
    score = read_score(path)
    assert [(t.name, t.program, t.is_drum, len(t.notes)) for t in score.tracks] == [
        ("Band", 73, False, 4), ("Band", 33, False, 1)]
    with_drums = read_score(path, include_drums=True)
    drums = with_drums.tracks[-1]
    assert drums.is_drum and spans(drums) == [(42, 0.0, 0.25), (42, 1.0, 1.25)]


def test_type1_track_with_several_channels_and_programs(tmp_path):
    events = [mf.meta(0, "track_name", name="Keys"), mf.message(0, "program_change", program=10),
              *mf.note_events([(60, 0, 480)]), mf.message(480, "program_change", program=20),
              *mf.note_events([(62, 480, 960)]), *mf.note_events([(40, 0, 960)], channel=2)]
    score = read_score(mf.midi_file(tmp_path / "keys.mid", [events]))
    assert [(t.name, t.program, [n.pitch for n in t.notes]) for t in score.tracks] == [
        ("Keys", 10, [60, 62]), ("Keys", 0, [40])]


def test_drum_track_excluded_by_default(tmp_path):
    path = mf.drums_file(tmp_path)
    assert [t.name for t in read_score(path).tracks] == ["Bass"]
    assert [t.name for t in read_score(path, include_drums=True).tracks] == ["Drums", "Bass"]
    assert read_score(mf.drums_only_file(tmp_path)).tracks == []


def test_velocity_zero_is_a_note_off(tmp_path):
    score = read_score(mf.velocity_zero_file(tmp_path))
    assert spans(score.tracks[0]) == spans(read_score(mf.simple_file(tmp_path)).tracks[0])


def test_same_pitch_overlap_ends_the_earlier_note(tmp_path):
    (track,) = read_score(mf.same_pitch_overlap_file(tmp_path)).tracks
    assert [(n.pitch, n.velocity, n.start, n.end) for n in track.notes] == [
        (60, 70, 0.0, 0.5), (60, 90, 0.5, 1.0)]


def test_note_on_before_note_off_at_one_tick_keeps_the_new_note(tmp_path):
    (track,) = read_score(mf.repeated_note_file(tmp_path)).tracks
    assert [(n.velocity, n.start, n.end) for n in track.notes] == [(80, 0.0, 0.5), (81, 0.5, 1.0)]


def test_zero_length_notes_are_dropped_and_counted(tmp_path):
    score = read_score(mf.zero_length_file(tmp_path))
    assert spans(score.tracks[0]) == [(60, 0.0, 0.5), (64, 0.5, 1.0)]
    assert score.dropped_notes == 1


def test_unclosed_note_ends_with_its_track(tmp_path):
    score = read_score(mf.unclosed_note_file(tmp_path))
    assert spans(score.tracks[0]) == [(60, 0.0, 0.5), (67, 0.5, 2.0)]
    assert score.end_time == 2.0


def test_sustain_pedal_intervals(tmp_path):
    (track,) = read_score(mf.pedal_file(tmp_path)).tracks
    assert track.pedals == [(0.5, 1.0), (1.75, 3.0)]
    assert spans(track) == [(60, 0.0, 0.5), (64, 0.25, 0.75), (67, 1.5, 2.0)]


def test_voices_on_one_channel_stay_separate_tracks(tmp_path):
    score = read_score(mf.multi_voice_file(tmp_path))
    assert [t.name for t in score.tracks] == ["Soprano", "Alto", "Tenor", "Bass"]
    assert [{n.pitch for n in t.notes} for t in score.tracks] == [{72}, {65}, {58}, {51}]


def test_file_without_notes_gives_score_without_tracks(tmp_path):
    score = read_score(mf.empty_file(tmp_path))
    assert score.tracks == [] and score.note_count() == 0
    assert score.tempo_map.qpm == (100.0,)
    assert score.time_signatures == [(0.0, 3, 4)]


@pytest.mark.parametrize("ticks_per_beat", [1, 24, 96, 480, 10080, 32767])
def test_any_ticks_per_beat(tmp_path, ticks_per_beat):
    score = read_score(mf.resolution_file(tmp_path, ticks_per_beat))
    expected = spans(read_score(mf.simple_file(tmp_path)).tracks[0])
    flat = [value for span in spans(score.tracks[0]) for value in span]
    assert flat == pytest.approx([value for span in expected for value in span])


def test_smpte_division_uses_frames_per_second(tmp_path):
    path = mf.resolution_file(tmp_path, 480)
    data = bytearray(path.read_bytes())
    data[12:14] = bytes([256 - 25, 40])  # 25 frames/s x 40 ticks = 1000 ticks per second
    path.write_bytes(bytes(data))
    notes = read_score(path).tracks[0].notes
    assert (notes[1].start, notes[1].end) == pytest.approx((0.48, 0.96))


def test_riff_wrapped_midi_is_read(tmp_path):
    midi = mf.simple_file(tmp_path).read_bytes()
    data = b"RIFF" + (len(midi) + 12).to_bytes(4, "little") + b"RMIDdata"
    path = tmp_path / "song.rmi"
    path.write_bytes(data + len(midi).to_bytes(4, "little") + midi)
    assert read_score(path).tracks == read_score(tmp_path / "simple.mid").tracks


def test_zero_ticks_per_frame_is_an_error(tmp_path):
    path = mf.resolution_file(tmp_path, 480)
    data = bytearray(path.read_bytes())
    data[12:14] = bytes([256 - 25, 0])
    path.write_bytes(bytes(data))
    with pytest.raises(MidiReadError, match="time division of 0"):
        read_score(path)


def test_type2_is_read_like_type1(tmp_path):
    type1 = read_score(mf.multi_voice_file(tmp_path))
    path = mf.multi_voice_file(tmp_path)
    path.write_bytes(path.read_bytes()[:9] + b"\x02" + path.read_bytes()[10:])  # format field
    assert read_score(path).tracks == type1.tracks


def test_long_piece(tmp_path):
    score = read_score(mf.long_file(tmp_path), limits=ReadLimits(max_minutes=120))
    assert score.note_count() == 30_000
    assert score.end_time == pytest.approx(3750.0)


@pytest.mark.parametrize("builder", mf.CORRUPT_BUILDERS)
def test_corrupt_files_raise_midi_read_error_naming_the_file(tmp_path, builder):
    path = builder(tmp_path)
    with pytest.raises(MidiReadError, match=f"^{path}: .+"):
        read_score(path)


@pytest.mark.parametrize("builder", [mf.long_delta_file, mf.long_meta_length_file])
def test_variable_length_quantity_over_four_bytes_is_rejected(tmp_path, builder):
    path = builder(tmp_path)
    with pytest.raises(MidiReadError, match=f"^{path}: .*longer than 4 bytes"):
        read_score(path)


def test_four_byte_delta_is_accepted(tmp_path):
    track = b"\x00\x90\x3c\x40\x81\x80\x80\x00\x80\x3c\x00\x00\xff\x2f\x00"  # delta 2**21
    path = tmp_path / "four.mid"
    path.write_bytes(b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0"
                     + b"MTrk" + len(track).to_bytes(4, "big") + track)
    [track] = read_score(path, limits=ReadLimits(max_minutes=60)).tracks  # a 36-minute note
    assert spans(track) == [(60, 0.0, pytest.approx(2**21 / 480 * 0.5))]


def test_missing_file_raises_midi_read_error(tmp_path):
    with pytest.raises(MidiReadError, match="nope.mid: cannot read"):
        read_score(tmp_path / "nope.mid")


def test_truncated_real_file(tmp_path):
    source = sorted((DATA / "bach-chorales").glob("*.mid"))[0]
    for keep in (0.1, 0.5, 0.99):
        with pytest.raises(MidiReadError, match="truncated"):
            read_score(mf.truncated_file(tmp_path, source, keep))


# ----------------------------------------------------------------------------- vs pretty_midi


def pretty_midi_tracks(path):
    """pretty_midi's instruments, with its same-pitch overlaps resolved as our reader does.

    pretty_midi lets an earlier note of a pitch run on under a new onset of that pitch; we end
    it at the new onset (the docstring of midi_io.read explains why).
    """
    import pretty_midi

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        midi = pretty_midi.PrettyMIDI(str(path))
    tracks = []
    for instrument in midi.instruments:
        notes = sorted(instrument.notes, key=lambda n: (n.pitch, n.start))
        kept = []
        for note, after in zip(notes, notes[1:] + [None]):
            end = after.start if after and after.pitch == note.pitch and after.start < note.end \
                else note.end
            if end > note.start:
                kept.append((note.pitch, note.velocity, note.start, end))
        tracks.append((instrument.program, instrument.is_drum, sorted(kept, key=lambda n: (n[2], n[0]))))
    return sorted(tracks, key=lambda t: (t[2][:1], t[0]))


def our_tracks(path):
    tracks = [(t.program, t.is_drum, [(n.pitch, n.velocity, n.start, n.end) for n in t.notes])
              for t in read_score(path, include_drums=True).tracks]
    return sorted(tracks, key=lambda t: (t[2][:1], t[0]))


def real_files(corpus, count=3):
    files = sorted(CORPORA[corpus].glob("*.mid"))[:count]
    assert files, f"no {corpus} files in {CORPORA[corpus]}"
    return files


@pytest.mark.parametrize("corpus", ["nottingham", "bach-chorales", "pop909"])
def test_same_notes_as_pretty_midi_on_real_files(corpus):
    for path in real_files(corpus):
        ours, theirs = our_tracks(path), pretty_midi_tracks(path)
        assert [(p, d, len(n)) for p, d, n in ours] == [(p, d, len(n)) for p, d, n in theirs], path
        for (_, _, our_notes), (_, _, their_notes) in zip(ours, theirs):
            for mine, other in zip(our_notes, their_notes):
                assert mine[:2] == other[:2], path
                assert mine[2:] == pytest.approx(other[2:], abs=1e-6), path


@pytest.mark.parametrize("path", real_files("pop909"), ids=lambda p: p.name)
def test_real_pop909_files_have_tempo_changes_and_pedals(path):
    score = read_score(path)
    assert [t.name for t in score.tracks] == ["MELODY", "BRIDGE", "PIANO"]
    assert len(set(score.tempo_map.qpm)) > 1
    assert any(t.pedals for t in score.tracks)


# ----------------------------------------------------------------------------- writing


def test_write_midi_round_trip(tmp_path):
    notes = [Note(60, 80, 0.0, 0.5), Note(64, 100, 0.25, 1.0), Note(67, 1, 1.0, 1.125)]
    path = write_midi(notes, tmp_path / "out" / "song.mid", qpm=90, program=41,
                      track_name="Lead")
    assert path == tmp_path / "out" / "song.mid"
    score = read_score(path)
    (track,) = score.tracks
    assert (track.name, track.program, track.is_drum) == ("Lead", 41, False)
    half_tick = 0.5 * 60 / (90 * 960)  # times are rounded to the written file's ticks
    assert [n.pitch for n in track.notes] == [n.pitch for n in notes]
    assert [n.velocity for n in track.notes] == [n.velocity for n in notes]
    assert [t for n in track.notes for t in (n.start, n.end)] == pytest.approx(
        [t for n in notes for t in (n.start, n.end)], abs=half_tick)
    assert score.tempo_map.qpm == pytest.approx((90.0,), rel=1e-6)
    assert [p.name for p in path.parent.iterdir()] == ["song.mid"]  # no temp file left
    assert os.stat(path).st_mode & 0o044  # readable by others, unlike a mkstemp file


def test_write_midi_cuts_same_pitch_overlap_at_new_onset(tmp_path):
    notes = [Note(60, 80, 0.0, 1.0), Note(60, 90, 0.5, 1.5)]
    (track,) = read_score(write_midi(notes, tmp_path / "o.mid")).tracks
    assert spans(track) == [(60, 0.0, 0.5), (60, 0.5, 1.5)]


def test_write_drums_and_score_with_pedals(tmp_path):
    drums = Track("Kit", 0, True, [Note(36, 100, 0.0, 0.1)])
    piano = Track("Piano", 0, False, [Note(60, 70, 0.0, 0.5)], pedals=[(0.25, 1.0)])
    score = read_score(write_score(Score([piano, drums], end_time=1.0), tmp_path / "band.mid"),
                       include_drums=True)
    assert [(t.name, t.is_drum, t.pedals) for t in score.tracks] == [
        ("Piano", False, [(0.25, 1.0)]), ("Kit", True, [])]


def test_write_score_keeps_tempo_and_meter_changes_and_its_end(tmp_path):
    tempo = TempoMap.from_beats([0.0, 3.0, 9.0], [100.0, 150.0, 75.0])
    notes = [Note(60 + i, 80, tempo.to_seconds(b), tempo.to_seconds(b + 0.5)) for i, b in enumerate((0, 2.5, 3, 8.5, 10))]
    signatures = [(0.0, 3, 4), (tempo.to_seconds(6.0), 6, 8)]
    end = tempo.to_seconds(12.0)
    score = Score([Track("a", 5, False, notes)], tempo, signatures, end_time=end)
    back = read_score(write_score(score, tmp_path / "t.mid"))
    assert back.tempo_map.qpm == pytest.approx(tempo.qpm)
    assert back.tempo_map.beats == pytest.approx(tempo.beats)
    assert [(round(t, 9), n, d) for t, n, d in back.time_signatures] == [
        (round(t, 9), n, d) for t, n, d in signatures]
    assert [n.pitch for n in back.tracks[0].notes] == [n.pitch for n in notes]
    assert [t for n in back.tracks[0].notes for t in (n.start, n.end)] == pytest.approx(
        [t for n in notes for t in (n.start, n.end)])
    assert back.tracks[0].program == 5
    conductor = mido.MidiFile(tmp_path / "t.mid").tracks[0]
    assert conductor[-1].type == "end_of_track"
    assert sum(m.time for m in conductor) == 12 * WRITE_TICKS_PER_BEAT  # the score's end_time


def raw_notes(path) -> list[list[tuple[int, int, int]]]:
    """(pitch, start tick, end tick) of the notes of each MIDI track that has some, as mido reads
    the file: the ticks themselves, not seconds."""
    tracks = []
    for track in mido.MidiFile(path).tracks:
        tick, sounding, notes = 0, {}, []
        for message in track:
            tick += message.time
            if message.type == "note_on" and message.velocity:
                sounding[message.channel, message.note] = tick
            elif message.type in ("note_on", "note_off") and (message.channel, message.note) in sounding:
                notes.append((message.note, sounding.pop((message.channel, message.note)), tick))
        if notes:
            tracks.append(sorted(notes))
    return tracks


def test_a_score_read_from_a_file_is_written_at_its_resolution(tmp_path):
    """At 1024 ticks per beat, ticks 1000, 1537 and 4103 fall between two of 960 per beat: written
    at the file's own resolution, every note keeps its ticks, across a tempo change too."""
    notes = [(60, 0, 1000), (64, 1000, 1537), (67, 1537, 4103), (72, 4103, 5001)]
    conductor = [mf.meta(0, "set_tempo", tempo=500000), mf.meta(2048, "set_tempo", tempo=431000)]
    source = mf.midi_file(tmp_path / "fine.mid", [conductor, mf.note_events(notes)], ticks_per_beat=1024)
    score = read_score(source)
    assert score.ticks_per_beat == 1024 and score.with_tempo_scaled(2.0).ticks_per_beat == 1024
    out = write_score(score, tmp_path / "out.mid")
    assert mido.MidiFile(out).ticks_per_beat == 1024
    assert raw_notes(out) == raw_notes(source) == [notes]
    score.ticks_per_beat = None  # a score not read from a file: the writer's own resolution
    assert mido.MidiFile(write_score(score, tmp_path / "new.mid")).ticks_per_beat == WRITE_TICKS_PER_BEAT


def test_an_smpte_file_is_written_at_the_default_resolution(tmp_path):
    path = mf.resolution_file(tmp_path, 480)
    data = bytearray(path.read_bytes())
    data[12:14] = bytes([256 - 25, 40])  # 25 frames/s x 40 ticks: no ticks per beat to keep
    path.write_bytes(bytes(data))
    score = read_score(path)
    assert score.ticks_per_beat is None
    back = read_score(write_score(score, tmp_path / "out.mid"))
    assert mido.MidiFile(tmp_path / "out.mid").ticks_per_beat == WRITE_TICKS_PER_BEAT
    half_tick = 0.5 * 60 / (120 * WRITE_TICKS_PER_BEAT)  # at the file's 120 qpm
    assert [t for s in spans(back.tracks[0]) for t in s] == pytest.approx(
        [t for s in spans(score.tracks[0]) for t in s], abs=half_tick)


def test_track_names_utf8_round_trip_and_latin1_fallback(tmp_path):
    path = write_midi([Note(60, 80, 0.0, 0.5)], tmp_path / "n.mid", track_name="旋律 é")
    assert read_score(path).tracks[0].name == "旋律 é"
    latin1 = [mf.meta(0, "track_name", name="Mélodie"), *mf.note_events([(60, 0, 480)])]
    assert read_score(mf.midi_file(tmp_path / "l.mid", [latin1])).tracks[0].name == "Mélodie"


def test_write_is_atomic_on_failure(tmp_path):
    path = write_midi([Note(60, 80, 0.0, 0.5)], tmp_path / "keep.mid")
    before = path.read_bytes()
    with pytest.raises(ValueError, match="pitch 200"):
        write_midi([Note(200, 80, 0.0, 0.5)], path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.mid"]


def test_other_modules_do_not_import_mido_or_pretty_midi():
    """MIDI files are midi_io's; `instruments` only borrows pretty_midi's General MIDI name table."""
    package = Path(REPO / "melodygen")
    offenders = [p.relative_to(REPO) for p in package.rglob("*.py")
                 if "midi_io" not in p.parts and p.name != "instruments.py"
                 and any(line.lstrip().startswith(("import mido", "import pretty_midi",
                                                   "from mido", "from pretty_midi"))
                         for line in p.read_text().splitlines())]
    assert offenders == []


def test_encodings_are_pure_they_never_read_or_write_files():
    """Notes in, ids out: reading MIDI is `dataset.files`' job, not an encoding's."""
    package = Path(REPO / "melodygen" / "encodings")
    offenders = [p.name for p in package.rglob("*.py")
                 if any("melodygen.midi_io" in line or "melodygen.dataset" in line
                        for line in p.read_text().splitlines() if "import" in line)]
    assert offenders == []


@pytest.fixture(scope="module")
def simple_bytes(tmp_path_factory):
    return mf.simple_file(tmp_path_factory.mktemp("simple")).read_bytes()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
       st.integers(14, 10_000))
def test_damaged_files_read_or_raise_midi_read_error(tmp_path_factory, simple_bytes, edits, cut):
    """Bytes flipped or cut anywhere: a Score or a MidiReadError, never another exception."""
    data = bytearray(simple_bytes)
    for position, value in edits:
        data[position % len(data)] = value
    path = tmp_path_factory.mktemp("damaged") / "damaged.mid"
    path.write_bytes(bytes(data[:cut]))
    try:
        score = read_score(path, include_drums=True)
    except MidiReadError as exc:
        assert str(exc).startswith(f"{path}: ")
    else:
        assert all(0 <= x.pitch <= 127 and x.end > x.start for t in score.tracks for x in t.notes)


def test_a_transposed_score_keeps_drums_and_folds_notes_back_into_range():
    score = Score([Track("t", 0, False, [Note(60, 80, 0.0, 1.0), Note(125, 80, 0.0, 1.0), Note(2, 80, 1.0, 2.0)]),
                   Track("d", 0, True, [Note(36, 90, 0.0, 0.5)])], TempoMap(), [(0.0, 4, 4)], 2.0)
    up, down = score.transposed(5), score.transposed(-5)
    assert [n.pitch for n in up.tracks[0].notes] == [65, 118, 7] and up.tracks[1].notes == score.tracks[1].notes
    assert [n.pitch for n in down.tracks[0].notes] == [55, 120, 9] and down.end_time == 2.0
