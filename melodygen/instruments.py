"""General MIDI instruments by name: what a track plays, as people write it and as MIDI stores it.

A track's instrument is a GM program 0..127 or the drum kit, `DRUMS` (128), which MIDI keeps on
channel 10 rather than as a program. The names are pretty_midi's GM table (imported only when a
name is needed).
"""

from __future__ import annotations

from melodygen.errors import ConfigError

DRUMS = 128  # the instrument number of the drum kit (channel 10), after the 128 GM programs


def instrument_name(instrument: int) -> str:
    """A short readable name: "drums", or the GM program's name in lower case ("violin")."""
    if instrument == DRUMS:
        return "drums"
    import pretty_midi

    return pretty_midi.program_to_instrument_name(instrument).lower()


def parse_instrument(text: str) -> int:
    """The instrument a user means: a program number 0..127, "drums", a GM name ("Violin", any
    case), a GM family ("bass", "strings": its first program), or a word that starts exactly one
    GM name ("flute" -> 73; "piano" -> 0, as the family). Anything else: `ConfigError`."""
    import pretty_midi

    word = text.strip().lower()
    if word.isdigit() and 0 <= int(word) <= 127:
        return int(word)
    if word in ("drums", "drum", "drum kit", "percussion kit"):
        return DRUMS
    names = [pretty_midi.program_to_instrument_name(p).lower() for p in range(128)]
    if word in names:
        return names.index(word)
    families = [c.lower() for c in pretty_midi.INSTRUMENT_CLASSES]
    if word in families:
        return 8 * families.index(word)
    matches = [p for p, name in enumerate(names) if word and word in name.split(" ")]
    if len(matches) == 1:
        return matches[0]
    hint = f" (it is in {', '.join(names[p] for p in matches[:4])})" if matches else ""
    raise ConfigError(f"unknown instrument {text!r}{hint}: give a GM program 0-127, 'drums', "
                      "a GM name such as 'violin' or a family such as 'bass'")
