"""What the repository promises a newcomer: the README's two set-up commands, CI running exactly the test command,
the documentation built strictly by that command, links in the README that lead somewhere, and pages that speak of
features rather than of the issue numbers they were built under."""

from __future__ import annotations

import re
from pathlib import Path

from ..support.paths import ROOT

SETUP_COMMANDS = ["bash scripts/up", "bash scripts/test"]
TEST_COMMAND = "bash scripts/test"

# "issue 7", "issues 4-11", "#12", "i8": the ways an issue number has crept into prose here before. `PKCS#1` and
# HTML entities (`&#123;`) are not issue numbers, hence the look-behind.
ISSUE_NUMBER = re.compile(r"\bissues?\s*#?\d+|(?<![\w&])#\d+\b|\bi\d{1,2}\b|\bbenchmark issue\b", re.IGNORECASE)


def commands(text: str) -> list[str]:
    """The command lines of a shell snippet: no blanks, comments, shebang or trailing comments."""
    lines = (line.split(" #")[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def section(markdown: str, heading: str) -> str:
    start = markdown.index(f"\n## {heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start:] if end == -1 else markdown[start:end]


def first_code_block(markdown: str) -> str:
    match = re.search(r"```[a-z]*\n(.*?)```", markdown, re.DOTALL)
    assert match is not None, "no code block"
    return match.group(1)


def reader_facing_pages() -> list[Path]:
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return pages + sorted((ROOT / "benchmarks" / "results").rglob("SUMMARY.md"))


def test_readme_sets_up_with_exactly_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    block = first_code_block(section(readme, "Two commands"))
    assert commands(block) == SETUP_COMMANDS
    for command in SETUP_COMMANDS:
        assert (ROOT / command.split()[1]).is_file(), command


def test_ci_runs_exactly_the_test_command() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    # `set -euo pipefail` and the `cd` to the repository root are how every script here starts, not commands.
    ci_commands = [c for c in commands(script) if not c.startswith(("set ", "cd "))]
    assert ci_commands == [TEST_COMMAND]


def test_the_test_command_builds_the_docs_strictly() -> None:
    script = commands((ROOT / "scripts" / "test").read_text())
    builds = [line for line in script if "mkdocs build" in line]
    assert len(builds) == 1, builds
    assert "--strict" in builds[0]
    # mkdocs 1.6 stops counting warnings under --quiet, so --strict would pass a broken link.
    assert "--quiet" not in builds[0] and " -q" not in builds[0]
    assert (ROOT / "mkdocs.yml").is_file()


def test_readme_links_lead_to_files_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    assert local, "the README links no page of docs/"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert missing == []


def test_no_issue_numbers_in_what_readers_read() -> None:
    found = []
    for page in reader_facing_pages():
        for number, line in enumerate(page.read_text().splitlines(), start=1):
            if ISSUE_NUMBER.search(line):
                found.append(f"{page.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []


def test_the_issue_number_pattern_catches_what_it_is_for() -> None:
    # The guard above is only as good as this pattern: it must catch the forms seen before and pass ordinary prose.
    for caught in ("done (issue 7)", "before issues 4-11 landed", "see #12", "docs/readme/i8.md", "benchmark issue"):
        assert ISSUE_NUMBER.search(caught), caught
    for passed in ("PKCS#1 v1.5", "&#123;", "i18n", "an issue number", "88.101.1001"):
        assert not ISSUE_NUMBER.search(passed), passed
