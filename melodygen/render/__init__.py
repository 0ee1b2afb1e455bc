"""Listening by looking and hearing: `audio` (MIDI -> WAV through FluidSynth), `pianoroll`
(MIDI -> PNG piano roll) and `files` (`render_files`, both for many files at once)."""
