"""Every shell command of README.md and docs/*.md runs as written: each command of a page's code blocks (a
```bash block's lines, and the lines of other blocks that start with a command) is checked in this process,
without running it. `make` targets exist and take the variables given, sweep files and cluster profiles load,
agents are registered; `python -m` modules and scripts parse their arguments with their own parsers;
`iqrl.train` and `iqrl.multiseed` arguments resolve to a run config (`build_config`: keys, values, agent,
task); scripts and files named exist; a bare `python` (not the .venv's) is refused. A command that cannot be
checked here (it needs Slurm, a GPU, a package manager, a placeholder that stands for many values) says so in
its page, visibly: `# not checked: <why>` after it or on the line before it."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
UNCHECKED = "# not checked:"
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.S | re.M)
INDENTED = re.compile(r"(?:^\n)((?:(?: {4}|\t).*\n|\n)+)", re.M)
# the first word of a line that is a command in a block that is not marked as shell
PROGRAMS = ("make ", ".venv/bin/python ", "python ", "python3 ", "bash ", "git ", "pip ", "cp ", "apt-get ")
PREFIX = re.compile(r"^(?:[A-Z_]+=\S+ )*(?:timeout (?:-s \w+ )?\d+ )?")  # env settings, `timeout [-s SIG] N`


@dataclass(frozen=True)
class Command:
    page: str
    line: int
    text: str  # continuation lines joined, the trailing comment removed
    marked: bool  # `# not checked: ...` beside it or on the line before
    env: tuple[tuple[str, str], ...]  # NAME="..." assignments earlier in its block

    def __str__(self):
        return f"{self.page}:{self.line}: {self.text}"


def block_commands(page: str, start: int, body: str, shell: bool) -> list[Command]:
    """The commands of one code block whose first line is line `start` of `page`."""
    out, env, marked_next, pending, first = [], {}, False, "", 0
    for k, raw in enumerate(body.splitlines()):
        line = raw.strip()
        if pending:
            line, pending = pending + " " + line, ""
        else:
            first = start + k
        if line.endswith("\\"):
            pending = line[:-1].rstrip()
            continue
        if shell and line.startswith("[") and out:  # a synopsis's optional arguments, on their own lines
            out[-1] = Command(page, out[-1].line, f"{out[-1].text} {line}", out[-1].marked, out[-1].env)
            continue
        if not line or line.startswith("#"):
            marked_next = line.startswith(UNCHECKED)
            continue
        code, _, comment = line.partition(" #")
        is_command = shell or PREFIX.sub("", line).startswith(PROGRAMS)
        if is_command:
            if m := re.fullmatch(r'([A-Z_]+)="(.*)"', code.strip()):
                env[m[1]] = m[2]
            else:
                marked = marked_next or ("#" + comment).strip().startswith(UNCHECKED)
                for part in re.split(r"\s(?:&&|;)\s", code.rstrip(" ;")):  # `a && b`, `a; b`: two commands
                    out.append(Command(page, first, part.strip(), marked, tuple(env.items())))
        marked_next = False
    return out


def commands(path: Path) -> list[Command]:
    """Every command of the page's fenced (```bash, ```sh, bare ```) and indented code blocks."""
    text, page, found = path.read_text(), str(path.relative_to(ROOT)), []
    for m in FENCE.finditer(text):
        if m[2] in ("bash", "sh", "shell", ""):
            start = text.count("\n", 0, m.start(3)) + 1
            found += block_commands(page, start, m[3], shell=m[2] != "")
    fenced = FENCE.sub(lambda m: "\n" * m[0].count("\n"), text)  # indented blocks outside the fenced ones
    for m in INDENTED.finditer(fenced):
        start = fenced.count("\n", 0, m.start(1)) + 1
        found += block_commands(page, start, m[1], shell=False)
    return found


ALL = [c for p in PAGES for c in commands(p)]


def words(cmd: Command) -> list[str]:
    """The command's words: its block's variables expanded, `<placeholder>` as one word, `[...]` optional
    groups of a synopsis opened, the leading env settings and `timeout` dropped."""
    text = cmd.text
    for name, value in cmd.env:
        text = text.replace(f"${name}", value)
    text = re.sub(r"<[^>]*>", "PLACEHOLDER", text)
    text = PREFIX.sub("", text.replace("[", " ").replace("]", " ") if text.startswith("make ") else text)
    return shlex.split(text)


# ---------------------------------------------------------------------------------------------------------
# make
# ---------------------------------------------------------------------------------------------------------
MAKEFILE = (ROOT / "Makefile").read_text()
TARGETS = set(re.findall(r"^([\w-]+):", MAKEFILE, re.M))
VARIABLES = set(re.findall(r"\$\((\w+)\)", MAKEFILE)) | set(re.findall(r"^(\w+) \??=", MAKEFILE, re.M))


def check_make(argv: list[str]) -> None:
    from iqrl.core import registry
    from slurm.profiles import load_profile
    from slurm.spec import load_sweep
    from slurm.submit import default_task_groups

    argv = argv[1:]
    if argv[:1] == ["-C"]:
        argv = argv[2:]
    settings = dict(a.split("=", 1) for a in argv if "=" in a)
    targets = [a for a in argv if "=" not in a]
    assert targets and set(targets) <= TARGETS, f"no such make target: {set(targets) - TARGETS}"
    assert set(settings) <= VARIABLES, f"the Makefile takes no {set(settings) - VARIABLES}"
    for name, value in settings.items():
        if "PLACEHOLDER" in value or "|" in value:
            continue
        if name == "SWEEP":
            load_sweep(ROOT / value, default_task_groups())
        elif name == "CLUSTER":
            load_profile(value)
        elif name in ("AGENTS", "AGENT", "NAME"):
            unknown = set(value.split(",")) - set(registry.agent_names())
            assert not unknown, f"no such agent: {unknown}"


# ---------------------------------------------------------------------------------------------------------
# python
# ---------------------------------------------------------------------------------------------------------
class Parsed(Exception):
    """Raised by a command's own parser once it parsed its arguments: the command stops before it acts."""


@contextlib.contextmanager
def parse_only():
    real = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):
        raise Parsed(real(self, args, namespace))

    argparse.ArgumentParser.parse_args = parse_args
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args = real


def run_config(argv: list[str], seeds: bool) -> None:
    """The run config `python -m iqrl.train` (or `iqrl.multiseed`) builds from `argv`, nothing written."""
    from iqrl.config.build import build_config
    from iqrl.multiseed.runs import parse_seeds

    argv = [a for a in argv if a != "--check"]
    if seeds:
        _, _, argv = parse_seeds(argv)
    build_config(argv)


def parses(main, argv: list[str]) -> None:
    """`main(argv)` gets as far as its parser's answer; a parser error (exit 2) fails."""
    with parse_only(), contextlib.suppress(Parsed):
        main(argv)
        raise AssertionError("the command ran past its argument parser")


def entry_point(module: str):
    """The `main` that `python -m module` calls: the module's own, or the one its package's __main__ imports
    (without running that __main__, which may call it at import)."""
    spec = importlib.util.find_spec(module)
    if spec.submodule_search_locations is None:
        return importlib.import_module(module).main
    source = importlib.util.find_spec(f"{module}.__main__").loader.get_source(f"{module}.__main__")
    if m := re.search(r"^from ([\w.]+) import main$", source, re.M):
        return importlib.import_module(m[1]).main
    return importlib.import_module(f"{module}.__main__").main


def check_python(argv: list[str]) -> None:
    assert argv[0] == ".venv/bin/python", "write .venv/bin/python: a bare python lacks the .venv's packages"
    if argv[1] == "-m":
        module, rest = argv[2], argv[3:]
        if module in ("iqrl.train", "iqrl.multiseed"):
            return run_config(rest, seeds=module == "iqrl.multiseed")
        return parses(entry_point(module), rest)
    script = ROOT / argv[1]
    assert script.is_file(), f"{argv[1]} does not exist"
    spec = importlib.util.spec_from_file_location(script.stem, script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    parses(mod.main, argv[2:])


def check(cmd: Command) -> None:
    argv = words(cmd)
    if argv[0] == "make":
        check_make(argv)
    elif argv[0] in (".venv/bin/python", "python", "python3"):
        check_python(argv)
    elif argv[0] == "bash" or argv[0].startswith(("scripts/", "slurm/")):
        script = argv[1] if argv[0] == "bash" else argv[0]
        assert (ROOT / script).is_file(), f"{script} does not exist"
    elif argv[0] == "cp":
        assert (ROOT / argv[1]).is_file(), f"{argv[1]} does not exist"
    else:
        raise AssertionError(f"cannot check `{argv[0]}` here: mark it `{UNCHECKED} <why>`")


def test_every_documented_command_runs_as_written():
    """Each unmarked command passes its check; each failure is named with its page and line."""
    failed = []
    for cmd in ALL:
        if cmd.marked:
            continue
        try:
            check(cmd)
        except (Exception, SystemExit) as e:  # every failure, a parser's exit too, is reported with its line
            failed.append(f"{cmd}\n    {type(e).__name__}: {str(e).splitlines()[:1]}")
    assert not failed, "\n".join(failed)


def test_the_check_covers_every_code_block_and_refuses_what_does_not_run():
    """The commands found are every page's; the checks fail on a wrong command of any kind."""
    assert len(ALL) >= 90 and {c.page for c in ALL} >= {
        "README.md",
        "docs/sweeps.md",
        "docs/learning-check.md",
    }
    wrong = {
        "make sweeep SWEEP=ablations/smoke.yaml": "no such make target",
        "make sweep SWEEEP=ablations/smoke.yaml": "the Makefile takes no",
        "make sweep SWEEP=no/such.yaml": "such.yaml",
        "make sweep CLUSTER=nowhere": "unknown cluster profile",
        "python -m iqrl.train agent=iqrl": "write .venv/bin/python",
        ".venv/bin/python -m iqrl.train agent=iqrl agent.horizn=3": "horizn",
        ".venv/bin/python -m analysis.figures.make --results r --nonsense": "2",
        "bash no/such.sh": "does not exist",
        "rm -rf results": "cannot check `rm`",
    }
    for text, message in wrong.items():
        with pytest.raises((AssertionError, Exception, SystemExit), match=re.escape(message)):
            check(Command("x.md", 1, text, False, ()))
    marked = block_commands(
        "x.md", 1, "# not checked: needs Slurm\nsbatch x\nrm y   # not checked: why\n", True
    )
    assert [c.marked for c in marked] == [True, True]


HISTORY = re.compile(r"\bissues?\s+#?\d+|\(issue\b|\bthe brief\b|\bin this session\b", re.I)


def test_no_page_names_an_issue_or_how_it_was_made():
    """The pages say what is; how it came to be is the commits' (git log)."""
    found = [
        f"{p.relative_to(ROOT)}:{p.read_text().count(chr(10), 0, m.start()) + 1}: {m[0]!r}"
        for p in PAGES
        for m in HISTORY.finditer(p.read_text())
    ]
    assert not found, "\n".join(found)
    assert HISTORY.search("the numbers of issue\n60") and HISTORY.search("## DroQ (issue 60)")
