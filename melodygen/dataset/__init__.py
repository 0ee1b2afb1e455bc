"""Prepared datasets: from MIDI files to token shards (`prepare`), and from shards to batches.

`sources` finds MIDI files, `files` reads and encodes them (one file, or many in worker processes),
`prepare` builds and atomically writes a dataset, `manifest` fingerprints inputs and records what
was used and skipped, `shards` reads the token shards back, `windows` cuts training batches,
`profile` counts what a model saw in training and what of a file it never saw.
"""
