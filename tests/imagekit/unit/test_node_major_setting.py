"""The images' Node.js major is a setting (IMAGEKIT_NODE_MAJOR: 20, 22 or 24; 22 by default): a bad value is a
clear error before anything is created, and both package sources install that major (vendor from NodeSource's
repository of it, local from the local cloud's packaging of the official binaries, which a local build asks
for first)."""

from __future__ import annotations

import pytest

from imagekit import build_inputs, settings
from imagekit.build import BuildOptions, build_snapshot
from imagekit.host import playbook
from imagekit.steps.install import playbook_variables

SOURCES = {"local": True, "vendor": False}  # each package source on its own cloud


def rendered(source: str) -> playbook.Playbook:
    return playbook.load("agent", playbook_variables("agent", "debian-12", source, SOURCES[source], "t"))


def files(book: playbook.Playbook) -> dict[str, str]:
    return {s.file: s.content for s in book.steps if s.file}


@pytest.mark.parametrize("value", ["20", "22", "24", " 24 "])
def test_the_supported_majors_are_accepted(clean_settings, value):
    clean_settings.setenv("IMAGEKIT_NODE_MAJOR", value)
    assert settings.node_major() == int(value)


def test_the_default_is_22_and_a_config_file_may_set_it(clean_settings, tmp_path):
    assert settings.node_major() == 22
    (tmp_path / "imagekit.yml").write_text("IMAGEKIT_NODE_MAJOR: 24\n")  # clean_settings runs in tmp_path
    assert settings.node_major() == 24


@pytest.mark.parametrize("value", ["18", "x", "22.1", "26"])
def test_other_values_are_refused_naming_the_accepted_ones(clean_settings, value):
    clean_settings.setenv("IMAGEKIT_NODE_MAJOR", value)
    with pytest.raises(settings.SettingsError, match=f"IMAGEKIT_NODE_MAJOR '{value}' .* accepted values are "
                                                     "20, 22, 24"):
        settings.node_major()


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("value, major", [(None, 22), ("24", 24)])
def test_both_sources_install_and_expect_the_configured_major(clean_settings, node_packages, source, value, major):
    if value:
        clean_settings.setenv("IMAGEKIT_NODE_MAJOR", value)
    book = rendered(source)
    assert book.expect["node_major"] == major and "nodejs" in book.expect["packages"]
    apt = files(book)
    if source == "vendor":
        nodesource = apt["/etc/apt/sources.list.d/nodesource.list"]
        assert f"https://deb.nodesource.com/node_{major}.x nodistro main" in nodesource
        assert "Pin: origin deb.nodesource.com\nPin-Priority: 1001" in apt["/etc/apt/preferences.d/nodesource"]
        assert node_packages == []  # production never asks the local cloud
    else:
        assert apt["/etc/apt/preferences.d/nodejs-local"] == (
            f"Package: nodejs\nPin: version {major}.*\nPin-Priority: 1001\n\n"
            "Package: nodejs\nPin: version *\nPin-Priority: -1\n")
        assert node_packages == [major]  # the local cloud packaged it before any playbook runs apt


def test_a_bad_major_fails_before_the_local_cloud_is_asked(clean_settings, node_packages):
    clean_settings.setenv("IMAGEKIT_NODE_MAJOR", "18")
    with pytest.raises(settings.SettingsError, match="accepted values are 20, 22, 24"):
        rendered("local")
    assert node_packages == []


def test_a_build_with_a_bad_major_creates_nothing(api, clean_settings):
    clean_settings.setenv("IMAGEKIT_NODE_MAJOR", "x")
    before = {kind: sorted(api.cloud.store[kind]) for kind in ("servers", "ssh_keys", "images")}
    with pytest.raises(settings.SettingsError, match="IMAGEKIT_NODE_MAJOR 'x'"):
        build_snapshot(api.target, BuildOptions(), lambda line: None)
    assert {kind: sorted(api.cloud.store[kind]) for kind in before} == before


def test_the_major_is_an_input_of_the_snapshot(clean_settings):
    """A snapshot of Node.js 22 is never handed out for a build of 24."""
    digests = set()
    for value in ("22", "24"):
        clean_settings.setenv("IMAGEKIT_NODE_MAJOR", value)
        for source, local in SOURCES.items():
            digests.add(build_inputs.inputs_hash("agent", playbook_variables("agent", "debian-12", source, local, "t"),
                                                 1, "x86"))
    assert len(digests) == 4
