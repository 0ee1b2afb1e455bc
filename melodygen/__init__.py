"""melodygen: symbolic music generation from MIDI folders.

Importing the package stays cheap (no torch, no pretty_midi): the command line and the
library modules import heavy dependencies where they are used.
"""

__version__ = "0.1.0"
