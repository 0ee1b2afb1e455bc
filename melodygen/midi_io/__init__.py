"""Reading and writing MIDI files: the only package that knows the MIDI format (and mido).

    score = read_score("song.mid")               # Score: tracks of notes in seconds, tempo map
    write_midi(notes, "out.mid", qpm=120.0)      # one instrument, written atomically

`scan` decodes the bytes of a file into the few events melodygen uses (fast, no mido); `read`
turns them into a `Score`; `write` writes type-1 files with mido.
"""

from melodygen.midi_io.read import read_score
from melodygen.midi_io.scan import DRUM_CHANNEL
from melodygen.midi_io.write import WRITE_TICKS_PER_BEAT, to_pretty_midi, write_midi, write_score

__all__ = ["DRUM_CHANNEL", "WRITE_TICKS_PER_BEAT", "read_score", "to_pretty_midi", "write_midi", "write_score"]
