"""README.md and docs/*.md are executable documentation: every example in
them runs here.

- Each ```python block runs on its own, in a fresh folder, in a subprocess:
  a block must work when a user pastes it alone, and print no warning the
  page does not show (a warning the block expects is caught in the block).
- Each ```console block is a shell session: the ``$ `` lines run in order in
  one folder, and what they print must match the lines under them, once
  figures that vary from run to run (seconds, rates, the progress bar) are
  masked.  Exit statuses follow the command line's own table: a session
  example that shows an ``error:`` line must exit with status 2.
- The ```text block of the README's demo section is the demo's output,
  compared the same way with a fresh ``csae demo`` run.
- Every relative link points at a file that exists, and a ``#fragment``
  at a heading of that file.

``csae`` in the examples runs as ``python -m csae`` with this interpreter, so
the checkout under test is the one exercised whether or not it is installed.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def _name(page):
    return page.relative_to(ROOT).as_posix()


def _text(page):
    return page.read_text(encoding="utf-8")


def blocks_of(page, language):
    """One page's fenced blocks of one language, with their line numbers."""
    text = _text(page)
    found = []
    for match in re.finditer(rf"^```{language}\n(.*?)^```", text, re.S | re.M):
        line = text.count("\n", 0, match.start()) + 1
        found.append((line, match.group(1)))
    return found


def blocks(language):
    """Every page's blocks of one language: (page, line, block) triples."""
    return [(page, line, block) for page in PAGES for line, block in blocks_of(page, language)]


def _ids(found):
    return [f"{_name(page)}:{line}" for page, line, _ in found]


def environment():
    env = dict(os.environ, PYTHONUNBUFFERED="1", MPLBACKEND="Agg", COLUMNS="80")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def shell_command(command):
    """A documented command as this interpreter runs it."""
    python = f'"{sys.executable}"'
    command = re.sub(r"^csae\b", f"{python} -m csae", command)
    return re.sub(r"^python\b", python, command)


# Figures that differ between runs: durations, rates and tqdm's bar.
_VOLATILE = [
    (re.compile(r"\d+(\.\d+)?\s*(s|ms|us)\b"), "<time>"),
    (re.compile(r"^training: .*$", re.M), "<progress bar>"),
]


def masked(text):
    """The lines of ``text`` with volatile figures masked; blank lines and
    the repeats of a redrawn progress bar (tqdm redraws with carriage
    returns) dropped."""
    for pattern, replacement in _VOLATILE:
        text = pattern.sub(replacement, text)
    lines = []
    for line in re.split(r"[\r\n]+", text):
        line = line.rstrip()
        if line and not (line == "<progress bar>" and lines and lines[-1] == line):
            lines.append(line)
    return lines


def test_the_pages_have_examples():
    readme = ROOT / "README.md"
    assert blocks_of(readme, "python") and blocks_of(readme, "text")
    assert len(blocks("python")) >= 10 and blocks("console")


# A warning as Python prints it: "file:line: SomeWarning: message".
_WARNING = re.compile(r"^\S.*:\d+: (\w+Warning): ", re.M)


@pytest.mark.parametrize("page,line,code", blocks("python"), ids=_ids(blocks("python")))
def test_python_block_runs(page, line, code, tmp_path):
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environment(),
                            capture_output=True, text=True, timeout=600)
    where = f"{_name(page)} line {line}"
    assert result.returncode == 0, f"{where}: the python block failed\n" + result.stderr[-3000:]
    warned = _WARNING.findall(result.stderr)
    assert not warned, (f"{where}: the python block prints {', '.join(warned)}, which the "
                        f"page does not show\n" + result.stderr[-3000:])


def session(block):
    """(command, expected output lines) pairs of a console block."""
    steps, lines = [], block.splitlines()
    i = 0
    while i < len(lines):
        assert lines[i].startswith("$ "), f"not a command: {lines[i]!r}"
        command = lines[i][2:]
        while command.endswith("\\"):
            i += 1
            command = command[:-1] + " " + lines[i].strip()
        i += 1
        output = []
        while i < len(lines) and not lines[i].startswith("$ "):
            output.append(lines[i])
            i += 1
        steps.append((command, "\n".join(output)))
    return steps


@pytest.mark.parametrize("page,line,block", blocks("console"), ids=_ids(blocks("console")))
def test_console_block_prints_what_it_shows(page, line, block, tmp_path):
    if any("missing.npy" in step[0] for step in session(block)):
        # The error example reads a model made by the page's first session.
        prepare = session(blocks_of(page, "console")[0][1])
        for command, _ in prepare:
            subprocess.run(shell_command(command), shell=True, cwd=tmp_path, check=True,
                           env=environment(), capture_output=True)
    for command, expected in session(block):
        result = subprocess.run(shell_command(command), shell=True, cwd=tmp_path,
                                env=environment(), capture_output=True, text=True,
                                timeout=600)
        printed = result.stdout + result.stderr
        where = f"{_name(page)} line {line}: $ {command}"
        wanted_status = 2 if "error:" in expected else 0
        assert result.returncode == wanted_status, f"{where}\nexit {result.returncode}\n{printed}"
        # stdout and stderr arrive through separate pipes: compare as sets of
        # lines in order within each stream by matching the sorted lists.
        assert sorted(masked(printed)) == sorted(masked(expected)), f"{where}\n{printed}"


def test_demo_prints_what_the_readme_shows(tmp_path):
    readme = _text(ROOT / "README.md")
    section = readme.split("\n## The demo\n", 1)[1].split("\n## ", 1)[0]
    expected = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    result = subprocess.run([sys.executable, "-m", "csae", "demo", "--out", "demo"],
                            cwd=tmp_path, env=environment(), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    assert masked(result.stdout) == masked(expected)
    assert re.search(r"^\d+/16 bars recovered", result.stdout, re.M)


def _anchors(page):
    """GitHub's anchors for a page's headings: lower case, punctuation but
    hyphens dropped, spaces turned into hyphens (code blocks skipped)."""
    text = re.sub(r"^```.*?^```", "", _text(page), flags=re.S | re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.*)$", text, re.M)}


def _links(page):
    text = re.sub(r"^```.*?^```", "", _text(page), flags=re.S | re.M)
    return [link for link in re.findall(r"\]\(([^)\s]+)\)", text)
            if not re.match(r"[a-z]+:", link)]


@pytest.mark.parametrize("page", PAGES, ids=[_name(page) for page in PAGES])
def test_links_lead_somewhere(page):
    broken = []
    for link in _links(page):
        path, _, fragment = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif fragment and target.suffix == ".md" and fragment not in _anchors(target):
            broken.append(f"{link}: no such heading")
    assert not broken, f"{_name(page)}: " + "; ".join(broken)
