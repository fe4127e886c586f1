"""Replay a recipe chain: the stages that made a released model, from the corpus to its export.

A chain is a `chain.yaml` next to its stage recipes (recipes/hificodec-16k/chain.yaml). It names the
corpus build, then each stage: its recipe, step count, CPU threads, overrides, whether it resumes an
earlier stage's run, and which checkpoint it exports (`last` or `best`). A recipe's
`train.init_from: stage:ID` (or the stage's own `init_from:`) becomes that stage's export folder.

Every stage is an ordinary `hificodec train` / `hificodec export` command, run as its own process (so
that its thread count applies) and printed before it runs. A finished stage leaves `OUT/stage-ID.done`
and is skipped when the replay is run again; an interrupted one is resumed from its last checkpoint.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import load_config
from ..errors import ConfigError, HificodecError
from .recipe import STAGE_PREFIX, load_recipe

CHAIN_FILE = "chain.yaml"
EXPORT_CHOICES = ("last", "best")


@dataclass
class Stage:
    id: str
    recipe: Path
    about: str
    steps: int
    threads: int | None = None  # OMP_NUM_THREADS for the stage (None: torch's default)
    overrides: list[str] = field(default_factory=list)
    init_from: str | None = None  # replaces the recipe's train.init_from (e.g. stage:disc-warmup)
    resume: str | None = None  # continue this earlier stage's run instead of starting a new one
    export: str | None = None  # last / best: export the run when the stage ends
    took: str | None = None  # how long it took when the release was made (a fact, not a setting)


@dataclass
class Chain:
    path: Path
    release: str
    build_corpus: list[str]  # arguments of `hificodec data build-corpus CORPUS ...`
    train: str  # training data, relative to the corpus folder
    valid: str | None
    stages: list[Stage]
    about: str = ""

    def stage(self, stage_id: str) -> Stage:
        for s in self.stages:
            if s.id == stage_id:
                return s
        raise ConfigError(f"{self.path}: no stage '{stage_id}' (stages: {', '.join(s.id for s in self.stages)})")


@dataclass
class Step:
    """One command of the replay; `done` says why it is skipped (None: it runs)."""

    stage: str
    title: str
    argv: list[str]
    threads: int | None = None
    settings: str = ""
    done: str | None = None
    marker: Path | None = None  # written when the stage's last command succeeds

    def shell(self) -> str:
        env = f"OMP_NUM_THREADS={self.threads} " if self.threads else ""
        return env + "hificodec " + " ".join(shlex.quote(a) for a in self.argv)


def find_chain(name_or_path: str) -> Path:
    """A chain.yaml, a folder holding one, or a chain name (recipes/NAME/chain.yaml from the current folder)."""
    p = Path(name_or_path)
    for candidate in (p, p / CHAIN_FILE, Path("recipes") / name_or_path / CHAIN_FILE):
        if candidate.is_file():
            return candidate
    raise HificodecError(
        f"no chain '{name_or_path}': expected recipes/{name_or_path}/{CHAIN_FILE} (run from the repository root) "
        f"or the path of a {CHAIN_FILE}"
    )


def _keys(raw: Any, known: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping")
    unknown = set(raw) - set(known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)} (known: {', '.join(known)})")
    return raw


def load_chain(path: str | os.PathLike) -> Chain:
    path = Path(path)
    raw = _keys(load_config(path), ("release", "about", "corpus", "stages"), str(path))
    corpus = _keys(raw.get("corpus") or {}, ("build", "train", "valid"), f"{path}: corpus")
    if "train" not in corpus:
        raise ConfigError(f"{path}: corpus.train (the training data inside the corpus folder) is missing")
    stages: list[Stage] = []
    for i, item in enumerate(raw.get("stages") or []):
        where = f"{path}: stages[{i}]"
        s = _keys(item, tuple(Stage.__dataclass_fields__), where)
        for key in ("id", "recipe", "about", "steps"):
            if key not in s:
                raise ConfigError(f"{where}: '{key}' is missing")
        stage = Stage(**{**s, "id": str(s["id"]), "recipe": path.parent / s["recipe"],
                         "overrides": [str(o) for o in s.get("overrides") or []]})
        if not stage.recipe.is_file():
            raise ConfigError(f"{where}: no recipe file {stage.recipe}")
        if stage.export is not None and stage.export not in EXPORT_CHOICES:
            raise ConfigError(f"{where}: export must be one of {', '.join(EXPORT_CHOICES)} (got {stage.export!r})")
        if not isinstance(stage.steps, int) or stage.steps < 1:
            raise ConfigError(f"{where}: steps must be a positive integer")
        if stage.id in {x.id for x in stages}:
            raise ConfigError(f"{where}: stage '{stage.id}' appears twice")
        if stage.resume is not None and str(stage.resume) not in {x.id for x in stages}:
            raise ConfigError(f"{where}: resume names '{stage.resume}', which is not an earlier stage")
        stages.append(stage)
    if not stages:
        raise ConfigError(f"{path}: no stages")
    if stages[-1].export is None:
        raise ConfigError(f"{path}: the last stage must export (it is the release)")
    return Chain(path=path, release=str(raw.get("release", path.parent.name)), about=str(raw.get("about", "")),
                 build_corpus=[str(a) for a in corpus.get("build") or []], train=str(corpus["train"]),
                 valid=None if corpus.get("valid") is None else str(corpus["valid"]), stages=stages)


def run_dir(out: Path, stage: Stage) -> Path:
    return out / f"stage-{stage.resume or stage.id}"


def export_dir(out: Path, stage: Stage) -> Path:
    return out / f"stage-{stage.id}-export"


def _init_from(chain: Chain, stage: Stage, out: Path, earlier: set[str]) -> str | None:
    """The stage's starting point, with a `stage:ID` reference turned into that stage's export folder."""
    value = stage.init_from
    if value is None:
        value = (load_config(stage.recipe).get("train") or {}).get("init_from")
    if not isinstance(value, str) or not value.startswith(STAGE_PREFIX):
        return value
    source = value[len(STAGE_PREFIX):]
    where = f"{chain.path}: stage '{stage.id}' starts from '{value}'"
    if source not in earlier:
        raise ConfigError(f"{where}, which is not an earlier stage")
    if chain.stage(source).export is None:
        raise ConfigError(f"{where}, which exports nothing")
    return str(export_dir(out, chain.stage(source)))


def plan(chain: Chain, corpus: str | os.PathLike, out: str | os.PathLike, until: str | None = None) -> list[Step]:
    """Every command of the replay in order, each marked done when an earlier replay finished it."""
    corpus, out = Path(corpus), Path(out)
    if until is not None:
        chain.stage(until)  # an unknown stage is an error, not a full replay
    train = corpus / chain.train
    steps = [Step("corpus", f"corpus: hificodec data build-corpus into {corpus}",
                  ["data", "build-corpus", str(corpus), *chain.build_corpus],
                  done=f"{train} exists" if train.exists() else None)]
    earlier: set[str] = set()
    for stage in chain.stages:
        init_from = _init_from(chain, stage, out, earlier)
        overrides = [*stage.overrides, f"train.max_steps={stage.steps}"]
        if init_from is not None:  # a resumed run loads its checkpoint over it
            overrides.append(f"train.init_from={init_from}")
        recipe = load_recipe(stage.recipe, overrides)
        run = run_dir(out, stage)
        marker = out / f"stage-{stage.id}.done"
        done = f"{marker.name} exists" if marker.exists() else None
        resume = stage.resume is not None or (run / "checkpoints").is_dir()
        data = ["--data", str(train)] + (["--valid", str(corpus / chain.valid)] if chain.valid else [])
        settings = (
            f"recipe {stage.recipe}, model {recipe.model.get('name')}, "
            f"init_from {init_from}{' (resumes stage ' + str(stage.resume) + ')' if stage.resume else ''}, "
            f"steps {stage.steps}, lr {recipe.generator_optim.lr:g}, batch {recipe.data.batch_size}, "
            f"threads {stage.threads or 'default'}, export {stage.export or '-'}"
            + (f"; took {stage.took}" if stage.took else "")
        )
        argv = ["train", str(stage.recipe), *data, "--out", str(run), *(["--resume"] if resume else []), *overrides]
        last = Step(stage.id, f"stage {stage.id}: {stage.about}", argv, stage.threads, settings, done, marker)
        steps.append(last)
        if stage.export:
            last.marker = None
            last = Step(stage.id, "", ["export", str(run), str(export_dir(out, stage)), "--checkpoint", stage.export],
                        done=done, marker=marker)
            steps.append(last)
        earlier.add(stage.id)
        if stage.id == until:
            break
    return steps


def describe(steps: list[Step]) -> str:
    lines = []
    for step in steps:
        if step.title:
            lines.append(f"# {step.title}")
        if step.settings:
            lines.append(f"#   {step.settings}")
        lines.append(("# skipped (" + step.done + "): " if step.done else "") + step.shell())
    return "\n".join(lines)


def run(steps: list[Step], echo=print) -> None:
    """Run the steps that are not done, in order; a failing command stops the replay."""
    for step in steps:
        if step.title:
            echo(f"# {step.title}")
        if step.done:
            echo(f"# skipped ({step.done}): {step.shell()}")
            continue
        echo(step.shell())
        env = dict(os.environ)
        if step.threads:
            env["OMP_NUM_THREADS"] = str(step.threads)
        result = subprocess.run([sys.executable, "-m", "hificodec", *step.argv], env=env, check=False)
        if result.returncode != 0:
            raise HificodecError(f"stage {step.stage} failed (exit status {result.returncode}): {step.shell()}")
        if step.marker is not None:
            step.marker.parent.mkdir(parents=True, exist_ok=True)
            step.marker.write_text(step.shell() + "\n", encoding="utf-8")
