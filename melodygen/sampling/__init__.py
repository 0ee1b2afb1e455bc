"""Sampling: `decoding` (the token loop every model kind shares, with its logit `processors`)
and `files` (a checkpoint and a request -> MIDI files)."""
