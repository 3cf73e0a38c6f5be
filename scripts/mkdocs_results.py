"""mkdocs hook: the dated benchmark results (benchmarks/results/) become part of the documentation site.

Measured figures live only in benchmarks/results/<date>/SUMMARY.md, outside docs/. The pages link to them with
repository-relative paths (`../benchmarks/results/<date>/SUMMARY.md`), so the links also work where the Markdown is
read as files. mkdocs only knows docs/, so this hook adds the results under `results/` in the site and rewrites those
links to point there; `mkdocs build --strict` then still fails on a link to a result that does not exist.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files, InclusionLevel
from mkdocs.structure.pages import Page

RESULTS = Path("benchmarks") / "results"
SITE_FOLDER = "results"
REPOSITORY_LINK = re.compile(r"\]\((?P<up>(?:\.\./)+)benchmarks/results/")


def on_files(files: Files, config: MkDocsConfig) -> Files:
    results = Path(config.config_file_path).parent / RESULTS
    for path in sorted(p for p in results.rglob("*") if p.is_file()):
        src_uri = f"{SITE_FOLDER}/{path.relative_to(results).as_posix()}"
        # Reached through the pages' links, not the navigation (which warns about pages it leaves out).
        files.append(File.generated(config, src_uri, abs_src_path=str(path), inclusion=InclusionLevel.NOT_IN_NAV))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    depth = page.file.src_uri.count("/")
    if page.file.src_uri.startswith(f"{SITE_FOLDER}/"):
        return markdown

    def to_site(match: re.Match[str]) -> str:
        # A page at docs/<depth folders>/x.md reaches the repository root with depth + 1 `../`.
        if len(match["up"]) // 3 != depth + 1:
            return match[0]
        return "](" + "../" * depth + f"{SITE_FOLDER}/"

    return REPOSITORY_LINK.sub(to_site, markdown)
