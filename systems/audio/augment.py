"""On-the-fly augmentation of 16 kHz waveforms: additive noise at a random SNR, reverberation with
room impulse responses, speed perturbation. numpy/scipy only; the corpora (noise, RIRs) are the
user's own folders or lists, never downloaded.

Every function keeps the dtype of its input; noise and reverberation keep the length, speed
perturbation by a factor f changes it to len/f (f = 1.1 plays 10% faster, so 10% shorter).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import fftconvolve, resample_poly

from sermm.errors import SermmError
from sermm.systems.audio.io import SAMPLE_RATE, AudioInfo, audio_info, read_audio

#: File name endings taken from a corpus folder (the formats libsndfile reads).
AUDIO_SUFFIXES = tuple(f".{ext.lower()}" for ext in sf.available_formats())
#: Text files that list one audio path per line (relative paths from the list's folder).
LIST_SUFFIXES = (".txt", ".lst", ".list", ".scp")


def list_audio(spec: str | os.PathLike | Sequence[str | os.PathLike], *, what: str = "noise") -> list[Path]:
    """The audio files of a corpus: a folder (searched recursively), a list file, or a list of paths."""
    if isinstance(spec, (list, tuple)):
        files = [Path(p) for p in spec]
        origin = f"the {what} list"
    else:
        origin = str(spec)
        root = Path(spec)
        if root.is_dir():
            files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
        elif root.is_file() and root.suffix.lower() in LIST_SUFFIXES:
            lines = [ln.strip() for ln in root.read_text(encoding="utf-8").splitlines()]
            files = [p if p.is_absolute() else root.parent / p for p in map(Path, filter(None, lines))]
        elif root.is_file():
            files = [root]
        else:
            raise SermmError(f"{spec}: {what} corpus not found (give a folder, a list file or audio files)")
    if not files:
        raise SermmError(f"{origin}: no audio files in this {what} corpus")
    missing = [p for p in files if not p.is_file()]
    if missing:
        raise SermmError(f"{origin}: {what} file {missing[0]} not found ({len(missing)} missing)")
    return files


def power(x: np.ndarray) -> float:
    """Mean square of ``x`` in float64."""
    return float(np.mean(np.square(x, dtype=np.float64))) if len(x) else 0.0


def fit_length(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``x`` cut at a random offset to ``n`` samples, or repeated until it is that long."""
    if len(x) >= n:
        start = int(rng.integers(0, len(x) - n + 1))
        return x[start : start + n]
    return np.tile(x, -(-n // len(x)))[:n]


def add_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech`` plus ``noise`` (same length) scaled so that 10·log10(P_speech / P_noise) = ``snr_db``.

    Silent speech or silent noise leave ``speech`` unchanged.
    """
    if len(noise) != len(speech):
        raise ValueError(f"noise has {len(noise)} samples, speech {len(speech)}")
    ps, pn = power(speech), power(noise)
    if ps == 0 or pn == 0:
        return speech.copy()
    scale = np.sqrt(ps / (pn * 10 ** (snr_db / 10)))
    return (speech.astype(np.float64) + scale * noise).astype(speech.dtype)


def reverberate(speech: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``speech`` convolved with the room impulse response ``rir``, aligned on its direct path
    (the RIR's peak) and rescaled to the input's power; length and dtype are kept."""
    if power(rir) == 0 or power(speech) == 0:
        return speech.copy()
    delay = int(np.argmax(np.abs(rir)))
    wet = fftconvolve(speech.astype(np.float64), rir.astype(np.float64))[delay : delay + len(speech)]
    wet *= np.sqrt(power(speech) / max(power(wet), 1e-20))
    return wet.astype(speech.dtype)


def speed_perturb(x: np.ndarray, factor: float) -> np.ndarray:
    """``x`` played ``factor`` times faster (pitch changes with it, as Kaldi's sox ``speed``): the
    length becomes len/factor. The factor is taken as a fraction with denominator at most 100."""
    if factor <= 0:
        raise ValueError(f"speed factor must be positive, got {factor}")
    frac = Fraction(factor).limit_denominator(100)
    if frac == 1:
        return x.copy()
    return resample_poly(x, frac.denominator, frac.numerator).astype(x.dtype)


@dataclass
class AugmentSettings:
    """What to augment with: corpora (folder, list file or None), SNR range, speed factors, probabilities."""

    noise: str | None = None
    rir: str | None = None
    snr_min_db: float = 0.0
    snr_max_db: float = 15.0
    speeds: tuple[float, ...] = (0.9, 1.1)
    #: The share of training batches that are augmented at all.
    batch_prob: float = 0.5
    #: Within an augmented batch, the chance that an utterance gets noise, reverberation, speed.
    noise_prob: float = 0.5
    reverb_prob: float = 0.5
    speed_prob: float = 1.0


class Augmenter:
    """Applies :class:`AugmentSettings` to waveforms with a caller-given numpy Generator (seedable).

    The speed factor is drawn first (:meth:`draw_speed`), so that a loader can read ``duration ×
    factor`` seconds and get ``duration`` seconds back after :func:`speed_perturb`; then
    :meth:`__call__` perturbs speed, adds reverberation, then noise.
    """

    def __init__(self, settings: AugmentSettings) -> None:
        if settings.snr_min_db > settings.snr_max_db:
            raise SermmError(f"SNR range [{settings.snr_min_db}, {settings.snr_max_db}] dB is empty")
        for name in ("batch_prob", "noise_prob", "reverb_prob", "speed_prob"):
            if not 0 <= getattr(settings, name) <= 1:
                raise SermmError(f"{name} must lie in [0, 1], got {getattr(settings, name)}")
        if any(f <= 0 for f in settings.speeds):
            raise SermmError(f"speed factors must be positive, got {list(settings.speeds)}")
        self.settings = settings
        self.noise_files = list_audio(settings.noise, what="noise") if settings.noise else []
        self.rir_files = list_audio(settings.rir, what="RIR") if settings.rir else []
        self._noise_info: dict[Path, AudioInfo] = {}
        self._rirs: dict[Path, np.ndarray] = {}

    def batch_is_augmented(self, rng: np.random.Generator) -> bool:
        """Whether this batch is augmented (probability ``batch_prob``)."""
        return bool(rng.random() < self.settings.batch_prob)

    def draw_speed(self, rng: np.random.Generator) -> float:
        """A speed factor for one utterance: one of ``speeds`` with probability ``speed_prob``, else 1."""
        speeds = self.settings.speeds
        if not speeds or rng.random() >= self.settings.speed_prob:
            return 1.0
        return float(speeds[int(rng.integers(len(speeds)))])

    def noise_for(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` samples from a random noise file at a random offset (repeated if the file is shorter)."""
        path = self.noise_files[int(rng.integers(len(self.noise_files)))]
        info = self._noise_info.get(path) or self._noise_info.setdefault(path, audio_info(path))
        seconds = n / SAMPLE_RATE
        offset = float(rng.uniform(0, max(0.0, info.duration - seconds)))
        return fit_length(read_audio(path, offset=offset, duration=seconds, info=info), n, rng)

    def rir_for(self, rng: np.random.Generator) -> np.ndarray:
        """A random room impulse response (cached after its first read)."""
        path = self.rir_files[int(rng.integers(len(self.rir_files)))]
        if path not in self._rirs:
            self._rirs[path] = read_audio(path)
        return self._rirs[path]

    def __call__(self, x: np.ndarray, rng: np.random.Generator, speed: float = 1.0) -> np.ndarray:
        """``x`` at ``speed`` (len/speed samples), with reverberation and noise each by their probability."""
        s = self.settings
        if speed != 1.0:
            x = speed_perturb(x, speed)
        if self.rir_files and rng.random() < s.reverb_prob:
            x = reverberate(x, self.rir_for(rng))
        if self.noise_files and rng.random() < s.noise_prob:
            x = add_noise(x, self.noise_for(len(x), rng), float(rng.uniform(s.snr_min_db, s.snr_max_db)))
        return x
