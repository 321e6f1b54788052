"""The documentation holds: the MkDocs site builds in strict mode (no broken link or anchor, no page left out
of the navigation) with a commands reference generated from every task and option, every repository path that
the site and the README cite exists, and the events, settings and module-map tables name what the code has.
A module moved or a test renamed without its docs fails here. No root, no network.
"""

from __future__ import annotations

import glob
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from imagekit import settings
from imagekit.events import Events
from imagekit.tasks import namespace

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
CITING = [ROOT / "README.md", *PAGES]
# A repository path as the docs cite it: one of these folders at the top of the checkout, not inside a longer
# path (`/var/lib/imagekit/localcloud` cites nothing), up to a space, quote, bracket, comma, colon or anchor.
TOP = r"(?:imagekit|localcloud|tests|playbooks|cloudinit|docs|\.github|\.ci)/"
CITED = re.compile(r"(?<![\w./~-])" + TOP + r"[^\s`'\"(),;:#]*")
CODE = re.compile(r"```.*?```|`[^`\n]+`", re.S)  # fenced blocks first, then code spans
LINK = re.compile(r"\]\(([^)\s]+)\)")
LONGEST_LINE = 120  # prose is wrapped at ~110; tables cannot be


def cited_paths(markdown: str) -> list[str]:
    """The repository paths a Markdown text cites in code (spans and fenced blocks) and in link targets."""
    places = [m.group(0) for m in CODE.finditer(markdown)] + LINK.findall(CODE.sub("", markdown))
    return [path.rstrip(".") for place in places for path in CITED.findall(place)]


def missing(paths: list[str]) -> list[str]:
    """The paths with nothing behind them in the checkout; `<name>` and `…` stand for any name."""
    def exists(path: str) -> bool:
        pattern = re.sub(r"<[^>]*>|…", "*", path)
        return bool(glob.glob(str(ROOT / pattern))) if "*" in pattern else (ROOT / pattern).exists()

    return sorted({path for path in paths if not exists(path)})


def test_path_extraction_finds_code_fences_and_links_and_judges_them():
    text = """See `imagekit/build.py`, `tests/imagekit/unit/test_nothing_here.py::test_x` and
    `playbooks/profiles/<profile>.yml`; not `/var/lib/imagekit/localcloud/` nor `python -m imagekit.events`.
    [the guide](docs/guide/build.md#anchor), [a page](../index.md).
    ```sh
    bash .ci/setup && invoke build-snapshot
    ```
    """
    paths = cited_paths(text)
    assert paths == ["imagekit/build.py", "tests/imagekit/unit/test_nothing_here.py",
                     "playbooks/profiles/<profile>.yml", ".ci/setup", "docs/guide/build.md"]
    assert missing(paths) == ["tests/imagekit/unit/test_nothing_here.py"]
    assert missing(["imagekit/data/<nothing>/nowhere.yml"]) == ["imagekit/data/<nothing>/nowhere.yml"]


@pytest.mark.parametrize("page", CITING, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_cited_path_exists(page):
    absent = missing(cited_paths(page.read_text()))
    assert not absent, f"{page.relative_to(ROOT)} cites paths that do not exist: {', '.join(absent)}"


def test_the_docs_cite_the_code():
    cited = {path for page in CITING for path in cited_paths(page.read_text())}
    assert len(cited) > 80, "the path check found almost nothing: has the citing style changed?"


def test_the_module_map_names_every_module():
    """docs/architecture.md has a row per module (package data and guest programs by their folder)."""
    rows = {re.match(r"\| `([^`]+)`", line).group(1) for line in (DOCS / "architecture.md").read_text().splitlines()
            if re.match(r"\| `", line)}
    modules = {str(path.relative_to(ROOT)) for package in ("imagekit", "localcloud")
               for path in (ROOT / package).rglob("*.py")
               if path.name not in ("__init__.py", "__main__.py") and "data" not in path.parts
               and "guest" not in path.parts}
    unmapped = sorted(modules - rows)
    assert not unmapped, f"modules missing from the module map in docs/architecture.md: {', '.join(unmapped)}"


def test_the_site_builds_strictly_with_every_command_and_option(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.fail("MkDocs is not installed: pip install -e '.[test]'")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    page = (tmp_path / "reference" / "commands" / "index.html").read_text()
    assert "<!-- commands:" not in page, "the hook did not replace the marker"
    for ctx in namespace.to_contexts(ignore_unknown_help=True):
        assert f'id="{ctx.name}"' in page, f"no section for the task {ctx.name}"
        flags = {flag for flag in [*ctx.flags, *ctx.inverse_flags] if flag.startswith("--")}
        assert not [flag for flag in flags if flag not in page], f"{ctx.name}: options missing from the reference"


def test_the_events_schema_has_the_keys_an_event_has():
    sink = io.StringIO()
    Events(sink, "run-1").emit("run started")
    documented = re.findall(r"^\| `(\w+)` \|", (DOCS / "reference" / "events.md").read_text(), re.M)
    assert documented == list(json.loads(sink.getvalue()))


def test_the_settings_page_names_every_setting():
    page = (DOCS / "reference" / "settings.md").read_text()
    names = {*settings.DEFAULTS, *settings.SECRETS, "IMAGEKIT_CONFIG", "IMAGEKIT_PLAYBOOKS_DIR"}
    assert sorted(name for name in names if f"`{name}`" not in page) == []


@pytest.mark.parametrize("page", CITING, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_giant_lines(page):
    long = [n for n, line in enumerate(page.read_text().splitlines(), 1)
            if len(line) > LONGEST_LINE and not line.startswith("|")]
    assert long == [], f"{page.relative_to(ROOT)}: lines over {LONGEST_LINE} characters (wrap them): {long}"
