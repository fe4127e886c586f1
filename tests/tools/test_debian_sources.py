"""Which files of each allowlisted Debian package are speech, and whose."""

from __future__ import annotations

from hificodec_tools.corpus.debian_sources import (
    REAL_SPEECH_PACKAGES,
    fillets_speaker,
    iso_language,
    select_kajongg,
    select_tuxpaint,
)


def test_allowlist_matches_the_reference():
    assert [p.package for p in REAL_SPEECH_PACKAGES] == [
        "festvox-ru", "fillets-ng-data-cs", "fillets-ng-data-nl", "tuxpaint-stamps-default", "klettres-data",
        "ktuberling-data", "qabcs-data", "kajongg",
    ]
    assert all(p.license for p in REAL_SPEECH_PACKAGES)


def test_language_codes():
    assert [iso_language(c) for c in ("en_GB", "sr@latin", "pt_BR", "RU")] == ["en", "sr", "pt", "ru"]


def test_fillets_speakers():
    assert fillets_speaker("city", "vit-m-hlava") == "m"  # the small fish, in every level
    assert fillets_speaker("hole", "v-bojim") == "v"
    assert fillets_speaker("city", "vit-hs-klid1") == "city-hs"
    assert fillets_speaker("gods", "b2-rikal2") == "gods-b2"


def test_tuxpaint_and_kajongg_selection(tmp_path):
    stamps = tmp_path / "usr/share/tuxpaint/stamps/x"
    stamps.mkdir(parents=True)
    for name in ("a_desc_fr.ogg", "b_desc_pt_BR.wav", "c_desc_da.ogg.ogg", "a.ogg", "a_fr.ogg", "d_desc.ogg"):
        (stamps / name).write_bytes(b"")
    got = {(c.path.name, c.speaker, c.language) for c in select_tuxpaint(tmp_path)}
    assert got == {("a_desc_fr.ogg", "tuxpaint-fr", "fr"), ("b_desc_pt_BR.wav", "tuxpaint-pt_BR", "pt"),
                   ("c_desc_da.ogg.ogg", "tuxpaint-da", "da")}
    voices = tmp_path / "usr/share/kajongg/voices"
    for rel in ("male1/a.ogg", "de/male1/a.ogg"):
        (voices / rel).parent.mkdir(parents=True, exist_ok=True)
        (voices / rel).write_bytes(b"")
    clips = select_kajongg(tmp_path)
    assert {(c.speaker, c.language, c.group) for c in clips} == {
        ("kajongg-en-male1", "en", "kajongg-male1"), ("kajongg-de-male1", "de", "kajongg-male1")}
