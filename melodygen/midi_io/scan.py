"""The MIDI byte scanner: a Standard MIDI File -> the events melodygen keeps, per track.

Written for speed, it decodes only the events melodygen uses (notes, program changes, sustain
pedal, tempo, time signatures, track names) straight from the bytes, 3-4x faster than building
mido messages. A kept event is a tuple `(tick, kind, channel, a, b)`, `kind` one of the
constants below: NOTE_ON/NOTE_OFF (a=pitch, b=velocity), PEDAL (a=value), PROGRAM (a=program),
TEMPO (a=microseconds per quarter), TIME_SIG (a=numerator, b=denominator), NAME (a=text).
"""

from __future__ import annotations

import struct
from pathlib import Path

from melodygen.errors import MidiReadError, MusicTooLongError
from melodygen.limits import ReadLimits

DRUM_CHANNEL = 9  # MIDI channel 10, counted from 0

# Event kinds kept by the scanner; the order matters (`kind > PROGRAM` are not channel events).
NOTE_ON, NOTE_OFF, PEDAL, PROGRAM, TEMPO, TIME_SIG, NAME = range(7)
# Data bytes of system common / real-time messages (invalid in files, but skippable).
_SYSTEM_LENGTH = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0, 0xF8: 0, 0xFA: 0, 0xFB: 0, 0xFC: 0, 0xFE: 0}


class _Corrupt(Exception):
    """Raised inside the scanner; `scan_file` turns it into `MidiReadError` naming the file."""


class _TooMany(Exception):
    """Raised inside the scanner once the kept events pass the ceiling."""


def _chunks(data: bytes) -> tuple[int, list[tuple[int, int]]]:
    """(division, [(start, end) of each MTrk chunk]) of a whole file's bytes."""
    if not data:
        raise _Corrupt("empty file (0 bytes)")
    # The header may follow a wrapper: RIFF (.rmi) or a MacBinary header.
    offset = data.find(b"MThd", 0, 1024)
    if offset < 0:
        raise _Corrupt("not a MIDI file (no MThd header)")
    if len(data) < offset + 14:
        raise _Corrupt("truncated MIDI header")
    header_size, fmt, n_tracks, division = struct.unpack(">IHHH", data[offset + 4:offset + 14])
    if fmt > 2:
        raise _Corrupt(f"unknown MIDI format {fmt}")
    if division == 0 or division & 0x80FF == 0x8000:
        raise _Corrupt("time division of 0 ticks per beat (or per SMPTE frame)")
    pos, tracks = offset + 8 + header_size, []
    while len(tracks) < n_tracks:
        if pos + 8 > len(data):
            raise _Corrupt(f"truncated: header announces {n_tracks} tracks, found {len(tracks)}")
        size = int.from_bytes(data[pos + 4:pos + 8], "big")
        start, end = pos + 8, pos + 8 + size
        if end > len(data):
            raise _Corrupt(f"truncated inside track {len(tracks)}")
        if data[pos:pos + 4] == b"MTrk":  # other chunk types are skipped, as the standard says
            tracks.append((start, end))
        pos = end
    return division, tracks


# A variable-length quantity (delta time, meta or sysex length) has at most 4 bytes
# (0x0FFFFFFF), as the SMF standard says; a longer one means the bytes are not MIDI.
_MAX_VLQ_BYTES = 4


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, start = 0, pos
    while True:
        byte = data[pos]
        pos += 1
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            if pos - start > _MAX_VLQ_BYTES:
                raise _Corrupt(_vlq_problem(start))
            return value, pos


def _vlq_problem(start: int) -> str:
    return (f"a variable-length quantity at byte {start} is longer than "
            f"{_MAX_VLQ_BYTES} bytes (corrupt delta time or length)")


def _text(body: bytes) -> str:
    """MIDI text has no declared encoding: UTF-8 when it decodes, else latin-1 (never fails)."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("latin-1")


def _scan_meta(data: bytes, pos: int, tick: int, events: list) -> int:
    """Keeps tempo, time-signature and track-name meta events; returns the next position."""
    meta_type = data[pos]
    length, pos = _varint(data, pos + 1)
    body = data[pos:pos + length]
    if meta_type == 0x51 and length >= 3:
        tempo = (body[0] << 16) | (body[1] << 8) | body[2]
        if tempo:  # a zero tempo would mean infinitely fast; ignore it
            events.append((tick, TEMPO, 0, tempo, 0))
    elif meta_type == 0x58 and length >= 2:
        events.append((tick, TIME_SIG, 0, body[0], 2 ** body[1]))
    elif meta_type == 0x03:
        events.append((tick, NAME, 0, _text(body), 0))
    return pos + length


def _scan_track(data: bytes, pos: int, end: int, room: int) -> tuple[list[tuple], int]:
    """The kept events of one MTrk chunk, in file order, and the track's last tick; `_TooMany`
    once more than `room` events are kept.

    One flat loop for speed (this is the hot path of `prepare`). Running status is kept
    across meta and sysex events; data bytes above 127 are clipped to 127.
    """
    events: list[tuple] = []
    append = events.append
    tick = status = 0
    while pos < end:
        if len(events) > room:
            raise _TooMany
        delta_start = pos
        byte = data[pos]
        pos += 1
        delta = byte & 0x7F
        while byte & 0x80:
            byte = data[pos]
            pos += 1
            delta = (delta << 7) | (byte & 0x7F)
        if pos - delta_start > _MAX_VLQ_BYTES:
            raise _Corrupt(_vlq_problem(delta_start))
        tick += delta
        byte = data[pos]
        if byte & 0x80:
            pos += 1
            if byte < 0xF0:
                status = byte
        elif status:
            byte = status
        else:
            raise _Corrupt("running status without a status byte")
        if byte < 0xF0:
            kind = byte & 0xF0
            if kind == 0xC0 or kind == 0xD0:
                if kind == 0xC0:
                    append((tick, PROGRAM, byte & 0x0F, min(data[pos], 127), 0))
                pos += 1
                continue
            a, b = data[pos], data[pos + 1]
            pos += 2
            if (a | b) > 127:
                a, b = min(a, 127), min(b, 127)
            if kind == 0x90:
                append((tick, NOTE_ON if b else NOTE_OFF, byte & 0x0F, a, b))
            elif kind == 0x80:
                append((tick, NOTE_OFF, byte & 0x0F, a, 0))
            elif kind == 0xB0 and a == 64:
                append((tick, PEDAL, byte & 0x0F, b, 0))
        elif byte == 0xFF:
            pos = _scan_meta(data, pos, tick, events)
        elif byte == 0xF0 or byte == 0xF7:
            length, pos = _varint(data, pos)
            pos += length
        elif byte in _SYSTEM_LENGTH:
            pos += _SYSTEM_LENGTH[byte]
        else:
            raise _Corrupt(f"undefined status byte 0x{byte:02x}")
    if pos != end:
        raise _Corrupt("an event runs past the end of its track")
    return events, tick


def scan_file(path: Path, limits: ReadLimits) -> tuple[int, list[list[tuple]], list[int]]:
    """(division, kept events per track, last tick per track); errors name the file.

    More than `limits.max_events` kept events raise `MusicTooLongError` as soon as they are seen.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MidiReadError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        division, chunks = _chunks(data)
        scanned, room = [], limits.max_events
        for start, end in chunks:
            scanned.append(_scan_track(data, start, end, room))
            room -= len(scanned[-1][0])
    except _Corrupt as exc:
        raise MidiReadError(f"{path}: {exc}") from None
    except _TooMany:
        raise MusicTooLongError(f"{path}: {limits.events_problem()}") from None
    except IndexError:
        raise MidiReadError(f"{path}: truncated (the data ends inside an event)") from None
    return division, [events for events, _ in scanned], [tick for _, tick in scanned]
