"""The numpy audio level gives the number aiortc's own per-sample loop gives."""

from __future__ import annotations

import aiortc.rtp
import av
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from booth_client.aiortc_speedups import aiortc_audio_level_dbov, audio_level_dbov


def frame(samples: np.ndarray, layout: str) -> av.AudioFrame:
    packed = samples.reshape(1, -1)
    out = av.AudioFrame.from_ndarray(packed, format="s16", layout=layout)
    out.sample_rate = 48_000
    return out


@settings(max_examples=200, deadline=None)
@given(
    layout=st.sampled_from(["mono", "stereo"]),
    count=st.sampled_from([160, 480, 960]),
    loudness=st.sampled_from([0, 1, 30, 1_000, 32_767]),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_level_equals_aiortcs(layout: str, count: int, loudness: int, seed: int) -> None:
    channels = 2 if layout == "stereo" else 1
    rng = np.random.default_rng(seed)
    samples = rng.integers(-loudness, loudness + 1, count * channels).astype(np.int16)
    audio = frame(samples, layout)
    assert audio_level_dbov(audio) == aiortc_audio_level_dbov(audio)


def test_the_kiosks_peers_install_it() -> None:
    import booth_client.peer  # noqa: F401  (installs on import)

    assert aiortc.rtp.compute_audio_level_dbov is audio_level_dbov
    assert aiortc_audio_level_dbov is not audio_level_dbov
