"""MkDocs hook: a nav entry `FOLDER/*.md` stands for every page of that folder that the nav
does not list by name, in file-name order. New guides and benchmark pages then appear in the
site without anyone editing mkdocs.yml; the pages listed by name keep their place."""

from __future__ import annotations

from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig


def listed(nav: object) -> set[str]:
    """Every page path the nav names."""
    if isinstance(nav, str):
        return {nav}
    if isinstance(nav, dict):
        return set().union(*(listed(v) for v in nav.values()))
    if isinstance(nav, list):
        return set().union(*(listed(v) for v in nav))
    return set()


def expand(nav: object, docs: Path, named: set[str]) -> object:
    """The nav with each `FOLDER/*.md` replaced by the folder's pages that `named` lacks."""
    if isinstance(nav, dict):
        return {key: expand(value, docs, named) for key, value in nav.items()}
    if not isinstance(nav, list):
        return nav
    out: list[object] = []
    for item in nav:
        if isinstance(item, str) and item.endswith("/*.md"):
            folder = item[: -len("/*.md")]
            pages = sorted(p.relative_to(docs).as_posix() for p in (docs / folder).glob("*.md"))
            out += [page for page in pages if page not in named]
        else:
            out.append(expand(item, docs, named))
    return out


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    if config.nav:
        config.nav = expand(config.nav, Path(config.docs_dir), listed(config.nav))
    return config
