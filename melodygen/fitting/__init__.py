"""`melodygen fit FOLDER`: a folder of MIDI files in, a model of that music out, in one command.

`survey` reads the folder, `plan` makes the choices (each with its reason and override),
`scoring` holds pieces out and measures every model on them, `training` runs the candidates
(a bundled model fine-tuned, a model from scratch) and the winner, `finish` writes the model,
samples, audit and report, `card` the model card; `run` ties the steps together and keeps
their state in OUT/fit.json so that a stopped fit continues where it was.
"""

from melodygen.fitting.run import FitResult, fit

__all__ = ["FitResult", "fit"]
