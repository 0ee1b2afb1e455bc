"""melodygen: symbolic music generation from MIDI folders.

    import melodygen
    model = melodygen.load("folk-melody")          # a bundled model, or a checkpoint path
    for i, piece in enumerate(model.generate(n=4, bars=16, temperature=0.9, seed=1)):
        piece.save(f"tune_{i}.mid")

Importing the package stays cheap (no torch, no pretty_midi): the names below are loaded from
`melodygen.api` when first used, and the library modules import heavy dependencies where they
are used.
"""

__version__ = "0.1.0"
__all__ = ["Model", "Piece", "evaluate", "fit", "load", "prepare", "read_piece", "train"]


def __getattr__(name: str):
    if name in __all__:
        from melodygen import api

        return getattr(api, name)
    raise AttributeError(f"module 'melodygen' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
