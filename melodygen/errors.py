"""melodygen's exceptions: one named class per kind of failure.

The command line turns every `MelodygenError` into one line on stderr and exit status 1,
so a user never sees a traceback for bad input. Messages name the offending file or value.
"""


class MelodygenError(Exception):
    """Base class of every error melodygen reports to the user."""


class MidiReadError(MelodygenError):
    """A file could not be read as MIDI (truncated, random bytes, empty, not MIDI)."""


class MusicTooLongError(MidiReadError):
    """A file describes more music than the reader's ceiling (`limits.ReadLimits`)."""


class NoUsableMusicError(MelodygenError):
    """A valid MIDI file holds nothing the encoding can use (no notes, no melody...)."""


class EncodingError(MelodygenError):
    """An id or event outside an encoding's vocabulary, or a bad encoding file."""


class DatasetError(MelodygenError):
    """A prepared dataset is missing, incomplete or made for another encoding."""


class ConfigError(MelodygenError):
    """A config file or override is invalid; the message lists every problem found."""


class CheckpointError(MelodygenError):
    """A checkpoint is missing, corrupt, or from an incompatible version or model."""


class RenderError(MelodygenError):
    """Audio or picture rendering failed: FluidSynth or a SoundFont missing, synthesis failed."""


class OutputError(MelodygenError):
    """An output file or folder cannot be written, or exists and would be overwritten."""


class ReportError(MelodygenError):
    """A run folder lacks what a report needs (no metrics.csv and no config), or options clash."""


class RunFolderError(MelodygenError):
    """A file of a training run folder (metrics.csv) is damaged or not what it should be."""


class TrainingDivergedError(MelodygenError):
    """The training loss or validation NLL became NaN or infinite (learning rate too high...)."""
