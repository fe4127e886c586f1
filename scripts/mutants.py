"""Mutation check: does the test suite catch realistic bugs?

Each mutation below is one small, plausible bug (a string replaced in one source file). The script puts
them in one at a time, runs the tests listed for it (node ids, so a run takes seconds, not the whole
suite), and puts the original file back, also on Ctrl-C or an error. A mutation is *caught* when those
tests fail, *survived* when they pass. Exit status 1 when any survives (or could not be applied).

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/mutants.py            # all of them
    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/mutants.py stft pesq  # those whose name contains a word
    python scripts/mutants.py --list

Not part of CI's time budget (it takes several minutes); see docs/testing.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # relative to the repository root
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]  # pytest node ids that should catch it
    why: str = ""


M = Mutation
MUTATIONS: list[Mutation] = [
    # ---- the five that once passed every test (issue 30) ----
    M("entropy-last-codebook-previous-context", "src/hificodec/entropy.py",
      "        prev = np.asarray(previous, dtype=np.int64)\n",
      "        prev = np.where(np.asarray(codebooks) == self.num_codebooks - 1, -1, np.asarray(previous, np.int64))\n",
      ("tests/test_pretrained.py::test_the_release_ships_entropy_tables_that_pay_off",),
      "coder and decoder drop the last codebook's previous-frame context: files 5 % larger"),
    M("stoi-arguments-swapped", "src/hificodec/eval/metrics.py",
      "value = float(stoi_lib(r, d, STOI_RATE, extended=extended))",
      "value = float(stoi_lib(d, r, STOI_RATE, extended=extended))",
      ("tests/eval/test_metrics.py::test_stoi_takes_the_reference_first",)),
    M("pesq-nb-at-16k", "src/hificodec/eval/metrics.py",
      'return _pesq(ref, deg, sample_rate, "nb", PESQ_NB_RATE)',
      'return _pesq(ref, deg, sample_rate, "nb", PESQ_WB_RATE)',
      ("tests/eval/test_metrics.py::test_pesq_nb_is_scored_at_8khz",)),
    M("trainer-ignores-lr-schedule", "src/hificodec/train/trainer.py",
      "        factor = lr_factor(self.recipe.schedule, st.step, st.epoch)\n",
      "        factor = 1.0\n",
      ("tests/train/test_trainer.py::test_logged_learning_rate_follows_warm_up_and_decay",)),
    M("stft-zero-padding", "src/hificodec/dsp/stft.py",
      'mode = "reflect" if x.shape[-1] > pad else "constant"', 'mode = "constant"',
      ("tests/dsp/test_stft.py",)),
    # ---- behaviours that had a single guard (each now has two tests) ----
    M("entropy-parent-context-ignored", "src/hificodec/entropy.py",
      "        has_parent = self.parent[q] >= 0\n", "        has_parent = self.parent[q] >= self.num_codebooks\n",
      ("tests/test_entropy.py::test_the_parent_code_in_the_same_frame_is_used_as_context",
       "tests/test_entropy.py::test_fit_finds_the_parents_and_codes_in_fewer_bits")),
    M("v4-end-record-crc-unchecked", "src/hificodec/bitstream.py",
      "                if zlib.crc32(data, crc) != stored:\n", "                if False:\n",
      ("tests/test_bitstream.py::test_every_byte_of_the_end_record_is_covered_by_its_checksum",
       "tests/test_bitstream.py::test_a_stream_cut_after_a_group_reads_what_it_holds")),
    M("chunked-decoder-drops-oscillator-phase", "src/hificodec/chunked.py",
      "first, first + count, self._state)", "first, first + count, None)",
      ("tests/test_chunked.py::test_excitation_decoder_chunks_carry_the_oscillator_phase",
       "tests/test_chunked.py::test_a_streamed_excitation_decode_keeps_the_oscillator_phase")),
    M("carried-phase-off-by-one-sample", "src/hificodec/models/pitch.py",
      "return cycles[:, frame * self.hop_length - 1]", "return cycles[:, frame * self.hop_length]",
      ("tests/models/test_pitch.py::test_the_oscillator_phase_carried_between_windows_is_the_whole_stream_phase",
       "tests/test_chunked.py::test_a_streamed_excitation_decode_keeps_the_oscillator_phase")),
    M("mel-power-swapped-for-magnitude", "src/hificodec/dsp/mel.py",
      "if res.power == 1.0 else", "if res.power == 2.0 else",
      ("tests/dsp/test_mel.py::test_power_one_is_a_magnitude_mel_and_power_two_a_power_mel",
       "tests/train/test_losses.py::test_encodec_style_mel_loss")),
    M("mel-power-exponent", "src/hificodec/dsp/mel.py",
      "else mag.pow(res.power / 2)", "else mag.pow(res.power)",
      ("tests/dsp/test_mel.py::test_power_one_is_a_magnitude_mel_and_power_two_a_power_mel",)),
    M("onnx-phase-input-ignored", "src/hificodec/onnx_backend.py",
      "if state is not None else np.zeros(batch)", "if False else np.zeros(batch)",
      ("tests/test_onnx_backend.py::test_the_graph_takes_the_phase_it_is_given",
       "tests/test_onnx_backend.py::test_chunked_decoding_carries_the_phase_through_the_graph")),
    M("onnx-graph-drops-phase", "src/hificodec/onnx_backend.py",
      "cycles = cycles - before[:, start_frame * hop].unsqueeze(1) + phase.unsqueeze(1)",
      "cycles = cycles - before[:, start_frame * hop].unsqueeze(1)",
      ("tests/test_onnx_backend.py::test_the_graph_takes_the_phase_it_is_given",)),
    M("mid-side-decoded-channels-swapped", "src/hificodec/compress.py",
      "return np.stack([audio[0] + audio[1], audio[0] - audio[1]])",
      "return np.stack([audio[0] - audio[1], audio[0] + audio[1]])",
      ("tests/test_compress.py::test_mid_side_decodes_back_to_left_and_right",)),
    M("mid-side-decoded-side-sign", "src/hificodec/compress.py",
      "return np.stack([audio[0] + audio[1], audio[0] - audio[1]])",
      "return np.stack([audio[0] + audio[1], audio[1] - audio[0]])",
      ("tests/test_compress.py::test_mid_side_decodes_back_to_left_and_right",
       "tests/test_robustness.py::test_mono_saved_as_stereo_stays_one_voice")),
    M("mid-side-encoded-side-sign", "src/hificodec/compress.py",
      "(audio[0] - audio[1]) * 0.5]", "(audio[1] - audio[0]) * 0.5]",
      ("tests/test_compress.py::test_stereo_is_coded_as_mid_and_side",)),
    # ---- training ----
    M("discriminator-gradients-not-cleared", "src/hificodec/train/trainer.py",
      "        self.opt_d.zero_grad(set_to_none=True)\n", "",
      ("tests/train/test_trainer.py::test_discriminator_gradients_are_cleared_before_each_update",)),
    M("warm-up-off-by-one-step", "src/hificodec/train/optim.py",
      "min(1.0, (step + 1) / schedule.warmup_steps)", "min(1.0, step / schedule.warmup_steps)",
      ("tests/train/test_optim.py",
       "tests/train/test_trainer.py::test_logged_learning_rate_follows_warm_up_and_decay")),
    M("generator-step-not-guarded", "src/hificodec/train/trainer.py",
      "        guarded_step(self.opt_g, finite)\n", "        self.opt_g.step()\n",
      ("tests/train/test_trainer.py::test_nonfinite_gradient_skips_the_update_on_the_device",)),
    M("nan-batch-not-checked", "src/hificodec/train/trainer.py",
      'bad_input = any(b["audio"].device.type == "cpu" and not bool(torch.isfinite(b["audio"]).all()) for b in micro)',
      "bad_input = False",
      ("tests/train/test_trainer.py::test_nan_batch_is_skipped_not_propagated",)),
    # ---- storage ----
    M("weights-digest-unchecked", "src/hificodec/checkpoint.py",
      "        if _sha256(path) != value:\n", "        if False:\n",
      ("tests/test_checkpoint.py::test_a_flipped_bit_in_the_weights_is_caught_by_the_digest",
       "tests/test_robustness.py::test_corrupt_weights_are_refused_by_the_digest")),
    M("v4-group-crc-unchecked", "src/hificodec/bitstream.py",
      '            if stored != crc:\n                raise ChecksumError(f"corrupt .hfc stream: checksum mismatch in',
      '            if False:\n                raise ChecksumError(f"corrupt .hfc stream: checksum mismatch in',
      ("tests/test_bitstream.py",)),
    M("header-crc-unchecked", "src/hificodec/bitstream.py",
      "        if _U32.unpack(crc_bytes)[0] != crc:\n", "        if False:\n",
      ("tests/test_bitstream.py",)),
    # ---- signal processing ----
    M("hann-window-symmetric", "src/hificodec/dsp/stft.py",
      "lambda: torch.hann_window(int(win_length), device=device)",
      "lambda: torch.hann_window(int(win_length), periodic=False, device=device)",
      ("tests/dsp/test_stft.py",)),
    M("reflect-padding-short-input", "src/hificodec/dsp/padding.py",
      "        extra = max_pad - length + 1\n", "        extra = max_pad - length\n",
      ("tests/dsp/test_padding.py",)),
    M("chunked-decoder-without-left-context", "src/hificodec/chunked.py",
      "super().__init__(model, total_frames, total_frames, ctx.decode_left, ctx.decode_right, chunk)",
      "super().__init__(model, total_frames, total_frames, 0, ctx.decode_right, chunk)",
      ("tests/test_chunked.py::test_chunked_matches_whole_file_on_60s",)),
    M("pesq-silence-unchecked", "src/hificodec/eval/metrics.py",
      "    _check_not_silent(r)  # pesq would divide", "    pass  # pesq would divide",
      ("tests/eval/test_metrics.py::test_silent_reference_is_reported_not_scored",)),
]


def _pytest(tests: tuple[str, ...], timeout: float) -> tuple[int, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    env.pop("PYTEST_ADDOPTS", None)
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:randomly", "-p", "no:cacheprovider", *tests]
    try:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        rc = -1
    return rc, time.perf_counter() - t0


def run(mutation: Mutation, timeout: float) -> tuple[str, float]:
    """'caught', 'survived', or 'error: ...'; the file is restored before this returns or raises."""
    path = ROOT / mutation.path
    original = path.read_text(encoding="utf-8")
    if original.count(mutation.old) != 1:
        return f"error: the text to replace occurs {original.count(mutation.old)} times in {mutation.path}", 0.0
    try:
        path.write_text(original.replace(mutation.old, mutation.new), encoding="utf-8")
        rc, seconds = _pytest(mutation.tests, timeout)
    finally:
        path.write_text(original, encoding="utf-8")
    if rc == 0:
        return "survived", seconds
    if rc == 1:
        return "caught", seconds
    return ("error: timed out" if rc == -1 else f"error: pytest exit status {rc}"), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("only", nargs="*", help="run the mutations whose name contains one of these words")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per mutation's test run")
    parser.add_argument("--check-clean", action="store_true",
                        help="first run every listed test unmutated (they must pass, or a catch means nothing)")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or any(w in m.name for w in args.only)]
    if args.list:
        for m in chosen:
            print(f"{m.name:45} {m.path}  ({len(m.tests)} test ids)")
        return 0
    if args.check_clean:
        tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        rc, seconds = _pytest(tests, args.timeout * 4)
        print(f"unmutated: the {len(tests)} listed test ids {'pass' if rc == 0 else 'FAIL'} ({seconds:.0f} s)")
        if rc != 0:
            return 1
    # Ctrl-C or SIGTERM: `run` restores the file in its finally block, then we stop
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    results: dict[str, str] = {}
    try:
        for i, m in enumerate(chosen, 1):
            outcome, seconds = run(m, args.timeout)
            results[m.name] = outcome
            print(f"[{i:2}/{len(chosen)}] {outcome:9} {m.name} ({seconds:.0f} s)", flush=True)
    except KeyboardInterrupt:
        print("interrupted: the source files are restored", file=sys.stderr)
        return 130
    caught = sum(r == "caught" for r in results.values())
    survived = [n for n, r in results.items() if r == "survived"]
    errors = [n for n, r in results.items() if r.startswith("error")]
    print(f"total: {caught} caught, {len(survived)} survived, {len(errors)} errors, of {len(results)} mutations")
    for n in survived:
        print(f"  survived: {n}")
    for n in errors:
        print(f"  {results[n]}: {n}")
    return 1 if survived or errors else 0


if __name__ == "__main__":
    sys.exit(main())
