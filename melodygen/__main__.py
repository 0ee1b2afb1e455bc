"""`python -m melodygen` runs the command line (used by `torchrun -m melodygen train`)."""

from melodygen.cli import main

main()
