"""Reading audio: 16 kHz mono float32 from any rate and channel count, one clear error per bad file."""

import numpy as np
import pytest
import soundfile as sf
from audio_tiny import tone, write_wav
from scipy.signal import resample_poly

from sermm.errors import SermmError
from sermm.systems.audio import io
from sermm.systems.audio.io import audio_info, probe_audio, read_audio


@pytest.fixture(autouse=True)
def fresh_notes(monkeypatch):
    """Each test starts with no sample rate announced yet."""
    monkeypatch.setattr(io, "_noted_rates", set())


def test_16k_mono_reads_back_the_written_samples(tmp_path):
    x = tone(0.5)
    path = write_wav(tmp_path / "a.wav", x, subtype="FLOAT")
    y = read_audio(path)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x)


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = tone(0.3, freq=200), tone(0.3, freq=300, seed=1)
    path = write_wav(tmp_path / "st.wav", np.stack([left, right], axis=1), subtype="FLOAT")
    np.testing.assert_allclose(read_audio(path), (left + right) / 2, atol=1e-7)


def test_other_rates_are_resampled_with_resample_poly_and_said_once(tmp_path, capsys):
    x = tone(1.0, rate=22050, freq=440)
    a = write_wav(tmp_path / "a.wav", x, rate=22050, subtype="FLOAT")
    b = write_wav(tmp_path / "b.wav", x, rate=22050, subtype="FLOAT")
    y = read_audio(a)
    read_audio(b)
    np.testing.assert_allclose(y, resample_poly(x, 320, 441), atol=1e-6)
    assert len(y) == 16000
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 16000 / len(y) - 440) <= 1.0  # the tone keeps its pitch
    err = capsys.readouterr().err
    assert err.count("resampling") == 1 and "22050 Hz" in err


def test_probe_announces_every_rate_once_for_the_whole_list(tmp_path, capsys):
    paths = [write_wav(tmp_path / f"{i}.wav", tone(0.2, rate=8000), rate=8000) for i in range(3)]
    infos, bad = probe_audio(paths, progress=False)
    assert bad == [] and [i.rate for i in infos] == [8000] * 3
    for p in paths:
        read_audio(p)
    err = capsys.readouterr().err
    assert err.count("resampling") == 1 and "3 file(s) at 8000 Hz" in err


def test_offset_and_duration_read_only_that_part(tmp_path):
    x = tone(2.0)
    path = write_wav(tmp_path / "a.wav", x, subtype="FLOAT")
    np.testing.assert_array_equal(read_audio(path, offset=0.5, duration=0.25), x[8000:12000])
    assert audio_info(path).duration == pytest.approx(2.0)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "audio file not found"),
        (lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
        (lambda p: p.write_text("not audio at all\n" * 10), "not a readable audio file"),
        (lambda p: sf.write(str(p), np.zeros(0, dtype=np.float32), 16000), "no audio samples"),
        (lambda p: p.mkdir(), "is a folder"),
    ],
)
def test_bad_files_give_one_error_naming_file_and_manifest_row(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(SermmError) as err:
        read_audio(path, source="train.csv", line=7)
    text = str(err.value)
    assert text.startswith(f"train.csv: line 7: {path}: ") and message in text
    assert "\n" not in text


def test_non_finite_samples_are_refused(tmp_path):
    x = tone(0.1)
    x[10] = np.nan
    path = write_wav(tmp_path / "nan.wav", x, subtype="FLOAT")
    with pytest.raises(SermmError, match="NaN or infinite"):
        read_audio(path)


def test_probe_with_skip_bad_collects_the_bad_files(tmp_path):
    good = write_wav(tmp_path / "good.wav", tone(0.2))
    infos, bad = probe_audio(
        [good, tmp_path / "gone.wav"], source="m.csv", lines=[2, 3], skip_bad=True, progress=False
    )
    assert infos[1] is None and infos[0].frames == 3200
    assert bad == [f"m.csv: line 3: {tmp_path / 'gone.wav'}: audio file not found"]
    with pytest.raises(SermmError, match="gone.wav: audio file not found"):
        probe_audio([good, tmp_path / "gone.wav"], progress=False)
