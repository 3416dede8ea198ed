"""What checking feature-cache entries on read costs: a read with and without the checks.

For entries of the sizes the families store, it times the read before entries were checked
(the audio file's ``stat`` for the entry's name, then ``torch.load``) against
:meth:`serhpo.features.FeatureCache.get_many` from disk (the same, then the identity, shape,
digest and finite checks), both from the page cache.

Example:
    $ python benchmarks/cache_read.py --repeats 200
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

from serhpo.data import FeatureItem, Preprocessing, Utterance
from serhpo.features import FeatureCache, audio_signature
from serhpo.models.base import FrozenFeature, fingerprint_of

#: name -> the shape of one entry (3 s of audio at the families' frame rates)
SIZES = {
    "egemaps (88,)": (88,),
    "log-Mel (300, 64)": (300, 64),
    "wav2vec2-base conv (149, 512)": (149, 512),
    "whisper tiny layers (5, 768)": (5, 768),
}


class Fixed(FrozenFeature):
    """Random values of a fixed shape (the cost of a read does not depend on them)."""

    name = "fixed"
    sequence = True

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def fingerprint(self) -> str:
        return fingerprint_of(kind="fixed", shape=list(self.shape))

    def compute(self, waveform: torch.Tensor, *, valid_samples: int) -> FeatureItem:
        return FeatureItem(values=torch.randn(self.shape), valid_frames=self.shape[0])


def measure(shape: tuple[int, ...], *, utterances: int, repeats: int, folder: Path) -> dict:
    audio = folder / "audio"
    audio.mkdir(exist_ok=True)
    items = []
    for index in range(utterances):
        path = audio / f"u{index}.wav"
        soundfile.write(path, np.zeros(16000, np.float32), 16000)
        items.append(Utterance(f"u{index}", "bench", path, "anger", "s", num_samples=16000))
    feature, prep = Fixed(shape), Preprocessing(maxlen=None)
    root = folder / f"cache-{'x'.join(map(str, shape))}"
    cache = FeatureCache(root, backbone="bench", memory_bytes=0)
    cache.get_many(feature, items, prep)
    paths = [cache.entry_path(feature, u, prep) for u in items]
    plain, checked = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        for path, utterance in zip(paths, items, strict=True):
            audio_signature(utterance.path)  # the entry's name needs it, then as before
            torch.load(path, map_location="cpu", weights_only=True)
        plain.append((time.perf_counter() - started) / len(paths))
        started = time.perf_counter()
        cache.get_many(feature, items, prep)
        checked.append((time.perf_counter() - started) / len(paths))
    assert cache.stats.rejected == 0 and cache.stats.loaded == repeats * len(items)
    return {
        "plain_ms": 1000 * float(np.median(plain)),
        "checked_ms": 1000 * float(np.median(checked)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| entry | unchecked read ms | checked read ms | ratio |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name, shape in SIZES.items():
            result = measure(
                shape, utterances=args.utterances, repeats=args.repeats, folder=Path(folder)
            )
            ratio = result["checked_ms"] / result["plain_ms"]
            print(
                f"| {name} | {result['plain_ms']:.3f} | {result['checked_ms']:.3f} | {ratio:.2f}x |"
            )


if __name__ == "__main__":
    main()
