"""A model's identity as `.hfc` files carry it, worked out once.

A file names the model that made it (its release id, or its name, and its model hash) and, when
entropy-coded, the tables its codes were coded with. `resolve(model, entropy)` works all of that out
in one go, from the model, the folder it was loaded from and the release index, into a
`ModelIdentity`: the writer builds its header from one, and the reader checks a file's header against
one and takes the file's tables from it. Encoding reads resolve -> encode -> pack -> write, and neither
side goes back to the checkpoint or the release index on its own.

Dependencies point one way: this module reads models (checkpoint), releases and entropy tables and
knows the file format (bitstream); the format knows nothing of models, and models nothing of files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from .bitstream import (
    DEFAULT_GROUP_FRAMES,
    ENTROPY,
    INDEPENDENT,
    MID_SIDE,
    PACKED,
    EntropyTablesError,
    HfcHeader,
    ModelMismatchError,
)
from .checkpoint import DIGEST_FILE, installed_release, model_dir, model_hash, pretrained_dir, read_digest
from .entropy import TABLES_FILE, EntropyError, EntropyTables, load_tables
from .errors import CheckpointError
from .models.base import CodecModel
from .releases import Release, describe_hash, find, split_id

#: `entropy=AUTO` (the default): code with the model's own tables (entropy.safetensors in the folder it
#: was loaded from, or its release's), if it has them
AUTO = "auto"
EntropyChoice = EntropyTables | str | None


@dataclass(frozen=True)
class ModelIdentity:
    """Who a model is to a .hfc file, and the entropy tables it codes with."""

    #: what headers carry: the release id (`hificodec-16k@5`), or the model's name
    name: str
    model_hash: str
    #: the digests of files this model decodes: its own, and its release's from before release ids
    accepted_hashes: tuple[str, ...]
    release: Release | None
    sample_rate: int
    hop_length: int
    num_codebooks: int
    codebook_size: int
    #: the folder the model was loaded from (its own tables live there), if any
    folder: Path | None = None
    tables: EntropyTables | None = None
    #: where `tables` come from, or why there are none: what a message about them says
    tables_note: str = "no entropy tables were chosen"
    #: the model's own tables should be there but are not (listed in its digest, yet missing): an
    #: error when tables are needed, not before (the model itself loads without them)
    tables_problem: str | None = None

    @property
    def label(self) -> str:
        """How messages name this model: its release id, or its name and hash."""
        return self.name if self.release is not None else f"'{self.name}' (model hash {self.model_hash[:12]})"

    # ---- writing -------------------------------------------------------------------------------
    def header(self, channels: int, source_rate: int, source_samples: int) -> HfcHeader:
        """The header of a file of `source_samples` samples at `source_rate`, coded with `tables`."""
        n = resampled_length(source_samples, source_rate, self.sample_rate)
        tables = self.tables
        return HfcHeader(
            model_name=self.name, model_hash=self.model_hash, sample_rate=self.sample_rate,
            hop_length=self.hop_length, num_samples=n, num_frames=-(-n // self.hop_length), channels=channels,
            num_codebooks=self.num_codebooks, codebook_size=self.codebook_size, source_sample_rate=source_rate,
            source_num_samples=source_samples, group_frames=DEFAULT_GROUP_FRAMES,
            channel_coding=channel_coding_for(channels), payload_coding=PACKED if tables is None else ENTROPY,
            entropy_id="" if tables is None else tables.id,
        )  # fmt: skip

    def encoding_tables(self) -> EntropyTables | None:
        """The tables to code with; an error when the model's own should be there and are not."""
        if self.tables is None and self.tables_problem is not None:
            raise EntropyError(
                f"{self.tables_problem}: restore it, or code without entropy tables (--no-entropy) or with "
                "others (--entropy TABLES)"
            )
        return self.tables

    # ---- reading -------------------------------------------------------------------------------
    def check(self, header: HfcHeader) -> None:
        """Raise ModelMismatchError, naming the release the file needs, unless this model made the file."""
        if header.model_hash not in self.accepted_hashes:
            raise ModelMismatchError(
                f"this file was made by {describe_hash(header.model_hash, header.model_name)}, not by "
                f"{self.label}: decoding it with another model would give noise; decode it with the model "
                "that made it (--model DIR)"
            )
        if header.sample_rate != self.sample_rate or header.hop_length != self.hop_length:
            raise ModelMismatchError(
                f"made at {header.sample_rate} Hz with hop {header.hop_length}, but {self.label} runs at "
                f"{self.sample_rate} Hz with hop {self.hop_length}"
            )

    def tables_for(self, header: HfcHeader) -> EntropyTables | None:
        """The tables `header`'s groups decode with (None for packed codes), or an error that says what
        was at hand instead: no tables and why, or other tables and where they came from."""
        if header.payload_coding != ENTROPY:
            return None
        if self.tables is not None and self.tables.id == header.entropy_id:
            return self.tables
        if self.tables is not None:
            what = f"not with tables {self.tables.id} ({self.tables_note})"
        else:
            what = f"and {self.tables_problem or self.tables_note}"
        raise EntropyTablesError(
            f"the codes are entropy-coded with tables {header.entropy_id}, {what}; pass the tables they were "
            "coded with (--entropy TABLES)"
        )

    def with_entropy(self, choice: EntropyChoice = AUTO) -> ModelIdentity:
        """This identity with the tables `choice` names: tables, a tables file, None (packed codes), or
        AUTO (the model's own, if it has them). Tables fitted for another model are refused."""
        if choice is None:
            return replace(self, tables=None, tables_note="no entropy tables were given", tables_problem=None)
        if isinstance(choice, str) and choice == AUTO:
            return self._own_tables()
        if isinstance(choice, EntropyTables):
            tables, note = choice, "the tables given"
        else:
            tables, note = read_tables(Path(choice)), f"the tables in {choice}"
        if tables.model_hash not in self.accepted_hashes:
            raise EntropyError(
                f"these entropy tables were fitted for {describe_hash(tables.model_hash, '?')}, not for "
                f"{self.name if self.release is not None else repr(self.name)}"
            )
        return replace(self, tables=tables, tables_note=note, tables_problem=None)

    def _own_tables(self) -> ModelIdentity:
        folder = self.folder
        if folder is None and self.release is not None:  # a release not loaded from a folder: the shipped one
            folder = pretrained_dir() / split_id(self.name)[0]
        if folder is None:
            return replace(self, tables=None, tables_note=f"{self.label} has no entropy tables of its own "
                           "(it was not loaded from a model folder)", tables_problem=None)  # fmt: skip
        path = folder / TABLES_FILE
        if not path.is_file():
            listed = TABLES_FILE in (_digest(folder) or {})
            missing = f"the model folder {folder} lists {TABLES_FILE} in {DIGEST_FILE}, but it is missing"
            problem = missing if listed else None
            note = f"the model folder {folder} holds no {TABLES_FILE}"
            return replace(self, tables=None, tables_note=note, tables_problem=problem)
        tables = read_tables(path)
        if tables.model_hash not in self.accepted_hashes:
            # an earlier release of the installed model: the folder's tables belong to the installed one
            note = f"the tables in {path} were fitted for {describe_hash(tables.model_hash, '?')}"
            return replace(self, tables=None, tables_note=note, tables_problem=None)
        return replace(self, tables=tables, tables_note=f"the model's tables {path}", tables_problem=None)


def identify(model: CodecModel) -> ModelIdentity:
    """`model`'s identity without entropy tables (`with_entropy` adds them)."""
    digest = model_hash(model)
    release = find(digest) if model.release is not None else None
    return ModelIdentity(
        name=model.release or model.name, model_hash=digest,
        accepted_hashes=release.hashes() if release is not None else (digest,), release=release,
        sample_rate=model.sample_rate, hop_length=model.hop_length, num_codebooks=model.num_codebooks,
        codebook_size=model.codebook_size, folder=model_dir(model),
    )  # fmt: skip


def resolve(model: CodecModel, entropy: EntropyChoice = AUTO) -> ModelIdentity:
    """`model`'s identity with the tables `entropy` chooses (see `ModelIdentity.with_entropy`)."""
    return identify(model).with_entropy(entropy)


def resampled_length(num_samples: int, sr_in: int, sr_out: int) -> int:
    """Length of `num_samples` at `sr_in` once resampled to `sr_out` (rounded, at least 1)."""
    return max(1, (num_samples * sr_out + sr_in // 2) // sr_in)


def channel_coding_for(channels: int) -> int:
    """The policy: stereo as mid/side, anything else channel by channel."""
    return MID_SIDE if channels == 2 else INDEPENDENT


class ModelNotInstalledError(CheckpointError):
    """A file names a model (release) that is not installed here."""


def not_installed(header: HfcHeader) -> ModelNotInstalledError:
    """The error for a file whose model is not installed, naming the release it needs."""
    made_by = describe_hash(header.model_hash, header.model_name)
    release = find(header.model_hash)
    ships = ""
    if release is not None:
        installed = installed_release(release.model)
        ships = f" (this hificodec ships {installed.id})" if installed is not None else ""
    what = "that release's" if release is not None else "its"
    return ModelNotInstalledError(
        f"this file was made by {made_by}, which is not installed{ships}; pass {what} model folder (--model DIR)"
    )


def _digest(folder: Path) -> dict[str, str] | None:
    try:
        return read_digest(folder)
    except CheckpointError:  # a malformed digest is reported when the model loads, not here
        return None


_TABLES_CACHE: dict[tuple[str, float], EntropyTables] = {}


def read_tables(path: str | os.PathLike) -> EntropyTables:
    """Tables from a file, kept once read (their row cache takes a moment to build)."""
    p = Path(path)
    key = (str(p.resolve()), p.stat().st_mtime if p.is_file() else 0.0)
    if key not in _TABLES_CACHE:
        _TABLES_CACHE[key] = load_tables(p)
    return _TABLES_CACHE[key]
