"""Writes tests/data/audio/music.m4a: 8 s of synthesised music for the [audio] tests.

Sections of 2 s at 120 BPM, each beat 0.5 s:
  0-2 s  chords only (C major / D minor triads above 290 Hz with 4 harmonics: the mid band)
  2-4 s  chords + kick on every beat (55 Hz sine falling from 110 Hz: the bass band)
  4-6 s  chords + kick + hi-hats on the off-beats (noise above 6 kHz: the treble band)
  6-8 s  hi-hats only
Stereo 44.1 kHz AAC (so the tests cover decoding, downmixing and resampling), made with the
`ffmpeg` command-line tool from a WAV this script writes with numpy and the standard library.

Run: python scripts/make_audio_fixture.py   (needs numpy: `python -m venv v && v/bin/pip install numpy`,
and ffmpeg on PATH). The noise is seeded, so the WAV is the same on every run; the AAC bytes
depend on the FFmpeg version.
"""

import pathlib
import subprocess
import tempfile
import wave

import numpy as np

SR = 44100
SECONDS = 8.0
BEAT = 0.5
OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "audio" / "music.m4a"


def section(t, lo, hi):
    return ((t >= lo) & (t < hi)).astype(np.float64)


def main():
    rng = np.random.default_rng(17)
    n = int(SR * SECONDS)
    t = np.arange(n) / SR
    # chords: two bars alternating C major and A minor, each note with 4 decaying harmonics
    chords = np.zeros(n)
    for bar, notes in enumerate([(329.63, 392.0, 523.25), (293.66, 349.23, 440.0)] * 4):
        lo = bar * 1.0
        m = section(t, lo, lo + 1.0)
        for f in notes:
            for h in range(1, 5):
                chords += m * np.sin(2 * np.pi * f * h * t) / (h * h)
    chords *= 0.08 * section(t, 0.0, 6.0)
    kick = np.zeros(n)
    hats = np.zeros(n)
    for k in range(int(SECONDS / BEAT)):
        b = k * BEAT
        i = int(b * SR)
        if 2.0 <= b < 6.0:
            d = np.arange(int(0.15 * SR)) / SR
            freq = 55.0 + 55.0 * np.exp(-d / 0.03)
            phase = 2 * np.pi * np.cumsum(freq) / SR
            kick[i : i + d.size] += 0.8 * np.sin(phase) * np.exp(-d / 0.05)
        if b >= 4.0:
            j = int((b + BEAT / 2) * SR)
            d = np.arange(int(0.03 * SR))
            noise = rng.standard_normal(d.size)
            # high-pass: first difference twice, then normalised
            noise = np.diff(noise, n=2, prepend=[0.0, 0.0])
            noise /= np.abs(noise).max()
            seg = 0.35 * noise * np.exp(-d / (0.008 * SR))
            hats[j : j + d.size] += seg[: max(0, min(d.size, n - j))]
    mono = chords + kick + hats
    left = mono + 0.02 * np.sin(2 * np.pi * 440 * t) * section(t, 0, 6)
    right = mono
    stereo = np.stack([left, right], axis=1)
    stereo = np.clip(stereo, -1.0, 1.0)
    pcm = (stereo * 32767).astype("<i2")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wav = pathlib.Path(tmp) / "music.wav"
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(SR)
            w.writeframes(pcm.tobytes())
        subprocess.run(
            ["ffmpeg", "-y", "-loglevel", "error", "-i", str(wav), "-c:a", "aac", "-b:a", "96k",
             "-map_metadata", "-1", str(OUT)],
            check=True,
        )
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
