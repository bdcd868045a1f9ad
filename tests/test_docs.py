"""What a user reads besides the code: the documentation site with its API reference built
from the docstrings (strict: a missing object or a broken reference fails), every public
name on its page, the version and the license."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pccore

ROOT = Path(__file__).resolve().parents[1]
PAGES = {"pccore": "pccore", "pccore.nn": "nn", "pccore.inference": "inference",
         "pccore.analytic": "analytic", "pccore.train": "train", "pccore.hookspecs": "hookspecs"}


def _doc_tools() -> None:
    for module in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="the docs tools (mkdocs, mkdocstrings[python]) come with the dev extra")


def build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          cwd=config.parent, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built once into a temporary folder, in strict mode (warnings are errors)."""
    _doc_tools()
    site = tmp_path_factory.mktemp("site")
    done = build(ROOT / "mkdocs.yml", site)
    problems = [line for line in done.stderr.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert done.returncode == 0 and not problems, done.stderr
    return site


def anchors(site: Path, page: str) -> set[str]:
    html = (site / "api" / f"{page}.html").read_text()
    return set(re.findall(r'id="(pccore[\w.]*)"', html))


@pytest.mark.parametrize("module", [m for m in PAGES if m != "pccore"])
def test_every_public_name_is_on_its_page(site, module):
    ids = anchors(site, PAGES[module])
    names = getattr(importlib.import_module(module), "__all__", None)
    if names is None:  # hookspecs: the hook functions
        names = [n for n in vars(importlib.import_module(module)) if n.startswith("pccore_")]
    missing = [n for n in names if not any(i == f"{module}.{n}" or i.endswith(f".{n}") for i in ids)]
    assert not missing, f"{module}: not in docs/api/{PAGES[module]}.md: {missing}"


def test_every_top_level_name_is_documented(site):
    ids = set().union(*(anchors(site, page) for page in PAGES.values()))
    short = {i.rsplit(".", 1)[-1] for i in ids}
    modules = {n for n in pccore.__all__ if type(getattr(pccore, n)).__name__ == "module"}
    missing = sorted(set(pccore.__all__) - modules - short)
    assert not missing, f"pccore names on no API page: {missing}; list them under members in docs/api/pccore.md"


def test_docstrings_reach_the_page(site):
    html = (site / "api" / "train.html").read_text()
    assert "Trains a network with PC" in html  # Trainer's docstring
    assert "pccore_train_step" in (site / "api" / "hookspecs.html").read_text()
    assert (site / "user-guide.html").is_file()


def test_a_missing_object_fails_the_build(tmp_path):
    """The reason the suite builds the site: a renamed or removed object is an error."""
    _doc_tools()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# API\n\n::: pccore.no_such_function\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text("site_name: t\nplugins:\n  - mkdocstrings:\n      handlers:\n        python:\n"
                      f"          paths: [{str(ROOT)!r}]\n")
    done = build(config, tmp_path / "site")
    assert done.returncode != 0 and "no_such_function" in done.stderr


def test_version_everywhere(capsys):
    from pccore.cli import main

    assert pccore.__version__ == importlib.metadata.version("pccore")
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"pccore {pccore.__version__}"


def test_license():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 pccore authors" in text
    meta = importlib.metadata.metadata("pccore")
    assert meta.get("License-Expression") == "MIT"
