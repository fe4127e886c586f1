import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_run_all():
    spec = importlib.util.spec_from_file_location("bench_run_all", ROOT / "bench" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_runs_scripts_parses_results_and_tolerates_missing_ones(tmp_path, monkeypatch, capsys):
    run_all = load_run_all()
    monkeypatch.setattr(run_all, "HERE", tmp_path)
    (tmp_path / "good.py").write_text(
        'print("report")\nprint(\'BENCH_JSON {"bench": "good", "rows": {"a": {"rtf": 2.5}}}\')\n'
    )
    (tmp_path / "silent.py").write_text('print("no result line")\n')
    (tmp_path / "crash.py").write_text("raise SystemExit(3)\n")
    (tmp_path / "_helper.py").write_text("raise SystemExit(9)\n")
    assert run_all.discover() == ["crash", "good", "silent"]
    rc = run_all.main(["--only", "good,silent,crash,speed", "--json", str(tmp_path / "all.json")])
    out = capsys.readouterr().out
    assert rc == 1
    runs = {r["bench"]: r for r in json.loads((tmp_path / "all.json").read_text())}
    assert runs["good"]["status"] == "ok" and runs["good"]["result"]["rows"]["a"]["rtf"] == 2.5
    assert runs["silent"]["status"] == "no BENCH_JSON line"
    assert runs["crash"]["status"].startswith("failed (exit 3)")
    assert runs["speed"]["status"] == "missing"
    assert "rows.a.rtf = 2.5" in out


def test_parse_result_takes_the_last_marker_line():
    run_all = load_run_all()
    text = 'BENCH_JSON {"x": 1}\nmore\nBENCH_JSON {"x": 2}\ntrailing\n'
    assert run_all.parse_result(text) == {"x": 2}
    assert run_all.parse_result("BENCH_JSON {not json") is None
