"""Reading audio: any file soundfile reads becomes 16 kHz mono float32, or one clear error naming the file.

Stereo (or more channels) is averaged to mono; other sample rates are resampled with
:func:`scipy.signal.resample_poly`, and the first file at each rate says so once on stderr
(not once per file).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly
from tqdm import tqdm

from sermm.errors import SermmError

#: The sample rate every backbone here expects.
SAMPLE_RATE = 16_000

_noted_rates: set[int] = set()


def where(path: str | os.PathLike, source: str | None = None, line: int | None = None) -> str:
    """How an error names a file: ``manifest.csv: line 5: clips/a.wav``, or just the path."""
    parts = [str(source)] if source else []
    if line is not None:
        parts.append(f"line {line}")
    parts.append(str(path))
    return ": ".join(parts)


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says: frames, sample rate and channels."""

    frames: int
    rate: int
    channels: int

    @property
    def duration(self) -> float:
        """The length in seconds."""
        return self.frames / self.rate


def _fail(path, source, line, what: str) -> SermmError:
    return SermmError(f"{where(path, source, line)}: {what}")


def _check_file(path: Path, source: str | None, line: int | None) -> None:
    if not path.exists():
        raise _fail(path, source, line, "audio file not found")
    if path.is_dir():
        raise _fail(path, source, line, "is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise _fail(path, source, line, "empty file (0 bytes)")


def audio_info(path: str | os.PathLike, *, source: str | None = None, line: int | None = None) -> AudioInfo:
    """The header of ``path``; a missing, empty, unreadable or zero-length file is a :class:`SermmError`."""
    path = Path(path)
    _check_file(path, source, line)
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.SoundFileError) as exc:
        raise _fail(path, source, line, f"not a readable audio file ({_reason(exc)})") from None
    if info.frames <= 0:
        raise _fail(path, source, line, "no audio samples (zero length)")
    return AudioInfo(frames=int(info.frames), rate=int(info.samplerate), channels=int(info.channels))


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def resample(x: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """``x`` (1-D) from ``rate`` to ``target`` Hz by polyphase filtering, as float32."""
    if rate == target:
        return x.astype(np.float32, copy=False)
    g = gcd(int(rate), int(target))
    return resample_poly(x, target // g, rate // g).astype(np.float32, copy=False)


def note_resampling(rates: np.ndarray | list[int], target: int = SAMPLE_RATE) -> None:
    """Say once on stderr which sample rates will be resampled to ``target`` (and how many files)."""
    rates = np.asarray(rates, dtype=np.int64)
    values, counts = np.unique(rates[rates != target], return_counts=True)
    new = [(int(r), int(c)) for r, c in zip(values, counts, strict=True) if int(r) not in _noted_rates]
    if new:
        listed = ", ".join(f"{c} file(s) at {r} Hz" if len(rates) > 1 else f"audio at {r} Hz" for r, c in new)
        tqdm.write(f"note: resampling {listed} to {target} Hz", file=sys.stderr)
        _noted_rates.update(r for r, _ in new)


def read_audio(
    path: str | os.PathLike,
    *,
    offset: float = 0.0,
    duration: float | None = None,
    source: str | None = None,
    line: int | None = None,
    info: AudioInfo | None = None,
) -> np.ndarray:
    """Samples of ``path`` as 16 kHz mono float32, optionally only ``duration`` s from ``offset`` s.

    Only the requested part is decoded. ``info`` (from :func:`audio_info`) saves reading the
    header again. Errors name the file (and ``source``/``line``, the manifest row, when given).
    """
    path = Path(path)
    info = info or audio_info(path, source=source, line=line)
    start = min(max(0, int(round(offset * info.rate))), info.frames - 1)
    stop = info.frames
    if duration is not None:
        stop = min(info.frames, start + max(1, int(round(duration * info.rate))))
    try:
        x, rate = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    except (RuntimeError, sf.SoundFileError) as exc:
        raise _fail(path, source, line, f"not a readable audio file ({_reason(exc)})") from None
    if x.shape[0] == 0:
        raise _fail(path, source, line, "no audio samples (zero length or truncated)")
    x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    if not np.isfinite(x).all():
        raise _fail(path, source, line, "audio holds NaN or infinite samples")
    if rate != SAMPLE_RATE:
        note_resampling([rate])
    return resample(x, rate)


def probe_audio(
    paths: Sequence[str | os.PathLike],
    *,
    source: str | None = None,
    lines: Sequence[int] | None = None,
    skip_bad: bool = False,
    progress: bool = True,
) -> tuple[list[AudioInfo | None], list[str]]:
    """The header of every file (for durations and length bucketing), checked before any training.

    The first bad file raises its :class:`SermmError`; with ``skip_bad`` its entry is None and its
    message is collected instead. Resampling is announced once for the whole list.
    """
    infos: list[AudioInfo | None] = []
    bad: list[str] = []
    bar = tqdm(paths, desc="checking audio", unit="file", disable=None if progress else True)
    for i, path in enumerate(bar):
        try:
            infos.append(audio_info(path, source=source, line=None if lines is None else lines[i]))
        except SermmError as exc:
            if not skip_bad:
                raise
            infos.append(None)
            bad.append(str(exc))
    note_resampling([info.rate for info in infos if info is not None])
    return infos, bad
