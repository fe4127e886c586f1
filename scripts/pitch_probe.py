"""Do a model's codes carry pitch? Fit probes from per-frame features to f0 and score them on unseen speakers.

    pip install praat-parselmouth
    python scripts/pitch_probe.py corpus/16k/train.jsonl corpus/16k/test.jsonl [--model hificodec-16k]

Features per 20 ms frame (with one neighbour on each side): the encoder's latent, the quantized
latent the decoder receives, and, for reference, the log-magnitude spectrum of the input. Targets
are Praat's f0 in voiced frames. A ridge (linear) and a small MLP probe are trained on one
manifest and scored on the other: R^2 of log f0 and the median relative error. A decoder cannot
render harmonics at the right pitch from codes that do not carry it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _pitch import pick_entries, praat_f0

import hificodec
from hificodec.audio import load_audio


def features(model: hificodec.CodecModel, manifest: Path, clips: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    entries = pick_entries(manifest, clips, spread=True)
    hop, sr = model.hop_length, model.sample_rate
    out: dict[str, list[np.ndarray]] = {"latent": [], "quantized": [], "spectrum": []}
    targets = []
    for entry in entries:
        x = load_audio(entry.path, sr, mono=True)[0][0].astype(np.float32)
        wav = torch.from_numpy(x).reshape(1, 1, -1)
        with torch.inference_mode():
            latent = model.latent(wav)[0]
            quantized = model.quantizer.decode(model.encode(wav))[0]
            frames = latent.shape[-1]
            padded = torch.nn.functional.pad(wav[0, 0], (0, frames * hop - wav.shape[-1]))
            spec = torch.stft(padded, 4 * hop, hop, window=torch.hann_window(4 * hop), return_complex=True)
            spectrum = torch.log(spec.abs()[: 2 * hop, :frames] + 1e-4)
        f0 = praat_f0(x, sr, (np.arange(frames) + 0.5) * hop / sr, hop / sr)  # code frame centres
        voiced = f0 > 0
        if not voiced.any():
            continue
        for name, feat in (("latent", latent), ("quantized", quantized), ("spectrum", spectrum)):
            t = feat.T.numpy()
            out[name].append(np.concatenate([np.roll(t, 1, 0), t, np.roll(t, -1, 0)], 1)[voiced])
        targets.append(np.log(f0[voiced]))
    return {k: np.concatenate(v) for k, v in out.items()}, np.concatenate(targets)


def score(pred: np.ndarray, target: np.ndarray) -> str:
    r2 = 1 - np.mean((pred - target) ** 2) / np.var(target)
    rel = np.abs(np.exp(pred - target) - 1)
    return f"R^2 {r2:6.3f}  median error {np.median(rel) * 100:5.1f} %  within 5 %: {np.mean(rel < 0.05) * 100:3.0f} %"


def probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, c = (train_x - mean) / std, (test_x - mean) / std
    ridge = np.linalg.solve(a.T @ a + 10 * np.eye(a.shape[1]), a.T @ (train_y - train_y.mean()))
    linear = c @ ridge + train_y.mean()
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(a.shape[1], 256), torch.nn.GELU(), torch.nn.Linear(256, 256), torch.nn.GELU(),
        torch.nn.Linear(256, 1),
    )  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-4)
    ta, tb = torch.tensor(a, dtype=torch.float32), torch.tensor(train_y, dtype=torch.float32)
    for _ in range(1500):
        idx = torch.randint(0, len(ta), (1024,))
        loss = (net(ta[idx])[:, 0] - tb[idx]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        mlp = net(torch.tensor(c, dtype=torch.float32))[:, 0].numpy()
    return linear, mlp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("train", type=Path, help="manifest the probes are fitted on")
    ap.add_argument("test", type=Path, help="manifest they are scored on (other speakers)")
    ap.add_argument("--model", default=hificodec.DEFAULT_MODEL)
    ap.add_argument("--train-clips", type=int, default=400)
    ap.add_argument("--test-clips", type=int, default=200)
    args = ap.parse_args()
    model = hificodec.load(args.model).eval()
    train_x, train_y = features(model, args.train, args.train_clips)
    test_x, test_y = features(model, args.test, args.test_clips)
    print(f"{args.model}: {len(train_y)} voiced frames to fit, {len(test_y)} to score")
    for name in train_x:
        linear, mlp = probe(train_x[name], train_y, test_x[name])
        print(f"{name:10s} linear  {score(linear, test_y)}")
        print(f"{name:10s} MLP     {score(mlp, test_y)}")


if __name__ == "__main__":
    main()
