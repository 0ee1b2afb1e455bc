"""The bundled MIDI corpora: this folder is installed as the package `melodygen.corpora`
(see pyproject.toml), so `bundled:NAME` sources work from a clone and from an installed wheel."""
