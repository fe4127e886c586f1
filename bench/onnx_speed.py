"""onnxruntime vs PyTorch: encode/decode real-time factors of the shipped model on a 10 s clip.

    python bench/onnx_speed.py [--seconds 10] [--threads 1,2] [--model hificodec-16k]

Real-time factor = seconds of audio per second of wall time (higher is faster), batch 1, median of 3
runs, PyTorch under torch.inference_mode with torch.set_num_threads(N), onnxruntime with
intra_op_num_threads=N (hificodec.onnx_backend; graphs exported into a temp folder first). The ratio
ort/torch is the figure to compare across machines. Also tries onnxruntime's intra-op spinning off.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from _common import emit, median_time

import hificodec
from hificodec import onnx_backend


def rtf(encode, decode, wav: torch.Tensor, seconds: float) -> tuple[float, float]:
    with torch.inference_mode():
        codes = encode(wav)
        return seconds / median_time(lambda: encode(wav)), seconds / median_time(lambda: decode(codes))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--model", default="hificodec-16k")
    args = ap.parse_args()
    model = hificodec.load(args.model)
    g = torch.Generator().manual_seed(0)
    t = torch.arange(int(args.seconds * model.sample_rate)) / model.sample_rate
    wav = (0.3 * torch.sin(2 * torch.pi * 150 * t) + 0.05 * torch.randn(t.shape, generator=g))[None, None]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        onnx_backend.export(model, tmp + "/graphs")
        for threads in [int(n) for n in args.threads.split(",")]:
            torch.set_num_threads(threads)
            te, td = rtf(model.encode, model.decode, wav, args.seconds)
            backend = onnx_backend.load(model, tmp + "/graphs", threads=threads)
            oe, od = rtf(backend.encode, backend.decode, wav, args.seconds)
            row = {"torch_encode_rtf": te, "torch_decode_rtf": td, "ort_encode_rtf": oe, "ort_decode_rtf": od,
                   "encode_ratio": oe / te, "decode_ratio": od / td}  # fmt: skip
            if threads > 1:  # spinning threads wait busily between ops: on a shared box they may cost more
                options = onnx_backend.session_options(threads)
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                backend._encoder = onnx_backend._session(
                    onnx_backend.require_onnx()[1], backend.folder / onnx_backend.ENCODER_FILE, options,
                    onnx_backend.ENCODER_INPUTS)  # fmt: skip
                backend._decoder = onnx_backend._session(
                    onnx_backend.require_onnx()[1], backend.folder / onnx_backend.DECODER_FILE, options,
                    onnx_backend.DECODER_INPUTS)  # fmt: skip
                se, sd = rtf(backend.encode, backend.decode, wav, args.seconds)
                row.update(ort_nospin_encode_rtf=se, ort_nospin_decode_rtf=sd)
            results[f"threads_{threads}"] = row
            print(f"{threads} thread(s): " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()))
    emit("onnx_speed", {"model": args.model, "seconds": args.seconds, "torch": torch.__version__, **results})


if __name__ == "__main__":
    main()
