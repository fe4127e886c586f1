import subprocess
import sys


def test_the_library_does_not_import_the_tooling():
    """hificodec (API, training, evaluation, CLI parser) never loads hificodec_tools: the corpus builder
    is reached only from `hificodec data build-corpus` / `data manifest`, lazily."""
    code = (
        "import sys, hificodec, hificodec.train, hificodec.train.trainer, hificodec.eval.runner, hificodec.data\n"
        "from hificodec.cli import build_parser; build_parser()\n"
        "print(sorted(m for m in sys.modules if m.startswith('hificodec_tools')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
