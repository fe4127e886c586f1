"""Real recorded speech shipped in Debian packages: which files of each package are speech, and by whom.

Each `PackageSpec` knows how to pick the speech clips out of its unpacked package tree (`dpkg -x`) and
which speaker and language each clip has. The allowlist and the reasons for each rule are in
docs/corpus.md; licences were read from each package's `usr/share/doc/<pkg>/copyright`.

Speaker ids are prefixed with a short source name so they are unique across packages. `group` is the
unit the train/valid/test split keeps together: usually the speaker, but coarser where two speaker ids
may be the same person (kajongg's `male1` in English and German).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SourceClip:
    """One speech file inside an unpacked package."""

    path: Path  # absolute path of the file in the unpacked tree
    speaker: str
    language: str
    group: str  # split unit (speaker, or a coarser id when speakers may coincide)


@dataclass(frozen=True)
class PackageSpec:
    package: str
    license: str
    select: Callable[[Path], list[SourceClip]]  # unpacked root -> speech clips (sorted)


def iso_language(code: str) -> str:
    """'en_GB' / 'sr@latin' / 'pt_BR' -> ISO-639-1 'en' / 'sr' / 'pt'."""
    return re.split(r"[_@.\-]", code, maxsplit=1)[0].lower()


def _sorted_files(folder: Path, pattern: str) -> list[Path]:
    return sorted(p for p in folder.glob(pattern) if p.is_file()) if folder.is_dir() else []


def _clip(path: Path, speaker: str, language: str, group: str | None = None) -> SourceClip:
    return SourceClip(path=path, speaker=speaker, language=language, group=group or speaker)


def select_festvox_ru(root: Path) -> list[SourceClip]:
    # One male speaker ("nsh") reading sentences; the wav/ folder holds the recordings (16 kHz PCM).
    voices = root / "usr/share/festival/voices/russian"
    out = []
    for wav in _sorted_files(voices, "*/wav/*.wav"):
        voice = wav.parent.parent.name  # msu_ru_nsh_clunits
        name = voice.split("_")[2] if voice.count("_") >= 2 else voice
        out.append(_clip(wav, f"festvox-ru-{name}", "ru"))
    return out


def fillets_speaker(level: str, stem: str) -> str:
    """Speaker code of a Fish Fillets dubbing file.

    Names are `<level>-<character>-<line>` or `<character>-<line>`; the two fish (`m` small, `v` big)
    speak in every level (one voice actor each), other characters belong to their level.
    """
    tokens = stem.split("-")
    char = tokens[1] if len(tokens) >= 3 else tokens[0]
    return char if char in ("m", "v") else f"{level}-{char}"


def _select_fillets(lang: str) -> Callable[[Path], list[SourceClip]]:
    def select(root: Path) -> list[SourceClip]:
        sound = root / "usr/share/games/fillets-ng/sound"
        out = []
        for ogg in _sorted_files(sound, f"**/{lang}/*.ogg"):
            level = ogg.parent.parent.relative_to(sound).as_posix().replace("/", "_")
            out.append(_clip(ogg, f"fillets-{lang}-{fillets_speaker(level, ogg.stem)}", lang))
        return out

    return select


_TUXPAINT_DESC = re.compile(r"_desc_([A-Za-z]{2,3}(?:_[A-Za-z]{2})?)(?:\.ogg)?\.(?:ogg|wav)$")


def select_tuxpaint(root: Path) -> list[SourceClip]:
    # Only the spoken stamp descriptions (`*_desc_<lang>.ogg`, a few `.wav`); other sound files are
    # effects or single spoken names of unknown speakers. About one voice per language.
    out = []
    for ogg in _sorted_files(root / "usr/share/tuxpaint/stamps", "**/*_desc_*"):
        m = _TUXPAINT_DESC.search(ogg.name)
        if m:
            out.append(_clip(ogg, f"tuxpaint-{m.group(1)}", iso_language(m.group(1))))
    return out


def select_klettres(root: Path) -> list[SourceClip]:
    # <lang>/{alpha,syllab}/*.ogg: letters and syllables, one voice per language folder.
    base = root / "usr/share/klettres"
    out = []
    for ogg in _sorted_files(base, "*/*/*.ogg"):
        if ogg.parent.name in ("alpha", "syllab"):
            lang = ogg.parent.parent.name
            out.append(_clip(ogg, f"klettres-{lang}", iso_language(lang)))
    return out


def select_ktuberling(root: Path) -> list[SourceClip]:
    # sounds/<lang>/*: single spoken words per language theme (ogg, wav, opus). The serbian variants
    # (sr, sr@latin, ...) share recordings; content deduplication removes the copies.
    base = root / "usr/share/ktuberling/sounds"
    out = []
    for f in _sorted_files(base, "*/*"):
        if f.suffix.lower() in (".ogg", ".wav", ".opus"):
            lang = f.parent.name
            out.append(_clip(f, f"ktuberling-{lang}", iso_language(lang), group=f"ktuberling-{iso_language(lang)}"))
    return out


def select_qabcs(root: Path) -> list[SourceClip]:
    # abcs/<lang>/sounds/{alpha,words}/*.ogg are spoken; abcs/all/ holds animal noises (skipped).
    base = root / "usr/share/qabcs/abcs"
    out = []
    for ogg in _sorted_files(base, "*/sounds/*/*.ogg"):
        lang = ogg.parent.parent.parent.name
        if lang != "all":
            out.append(_clip(ogg, f"qabcs-{lang}", iso_language(lang)))
    return out


def select_kajongg(root: Path) -> list[SourceClip]:
    # voices/<speaker>/*.ogg (English) and voices/<lang>/<speaker>/*.ogg. The same speaker name in two
    # languages may be one person, so they form one split group.
    base = root / "usr/share/kajongg/voices"
    out = []
    for ogg in _sorted_files(base, "**/*.ogg"):
        rel = ogg.parent.relative_to(base).parts
        lang, name = ("en", rel[0]) if len(rel) == 1 else (rel[0], rel[-1])
        out.append(_clip(ogg, f"kajongg-{lang}-{name}", iso_language(lang), group=f"kajongg-{name}"))
    return out


# The allowlist (data-sources.md). Licences from each package's copyright file.
REAL_SPEECH_PACKAGES: tuple[PackageSpec, ...] = (
    PackageSpec("festvox-ru", "BSD-like (festvox, see copyright)", select_festvox_ru),
    PackageSpec("fillets-ng-data-cs", "GPL-2+", _select_fillets("cs")),
    PackageSpec("fillets-ng-data-nl", "GPL-2+", _select_fillets("nl")),
    PackageSpec("tuxpaint-stamps-default", "GPL-2", select_tuxpaint),
    PackageSpec("klettres-data", "GPL-2+", select_klettres),
    PackageSpec("ktuberling-data", "GPL-2+", select_ktuberling),
    PackageSpec("qabcs-data", "GPL-3+", select_qabcs),
    PackageSpec("kajongg", "GPL-2+", select_kajongg),
)


def copyright_file(root: Path, package: str) -> Path:
    return root / "usr/share/doc" / package / "copyright"
