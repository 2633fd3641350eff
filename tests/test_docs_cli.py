"""The docs cannot drift from the parser: every `ganmgr SUBCOMMAND` and `--flag` they name must exist.

Read from README.md and docs/**/*.md: inline code spans and the lines of fenced code blocks. A span or
line that invokes `ganmgr` (or `python -m tui.cli`) is checked strictly: the words after it name a
subcommand (nested subcommands followed down), and every option after it must be one the parser knows.
A span that is only an option (`--epochs`, `--max-parallel K`) is checked too, unless its paragraph,
list item or table row names another tool (sbatch, pytest, make, pip, bench, ...), whose options the
docs quote as well. A flag counts when the top-level parser or any subcommand has it.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path

from tui.cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent

# `ganmgr` as a command: at the start, after a space, a slash (.venv/bin/ganmgr), `$ ` or `(`; followed by
# the end or a space (so `ganmgr.db`, `ganmgr-12-my-run`, `ganmgr:` and `~/.cache/ganmgr/x` are not calls).
INVOCATION = re.compile(r"(?:^|(?<=[\s/($`]))(?:ganmgr|python -m tui\.cli)(?=\s|$)")
# What ends a command inside a line: a pipe, `&&`, `;`, or a shell comment.
COMMAND_END = re.compile(r"\s\|\s|\s&&\s|;\s|(?:^|\s)#")
FLAG = re.compile(r"^(--?[A-Za-z][A-Za-z0-9-]*)")
SUBCOMMAND_WORD = re.compile(r"^[a-z][a-z0-9_-]*$")
# A block that names one of these quotes that tool's options, not ganmgr's.
OTHER_TOOLS = re.compile(
    r"\b(?:sbatch|squeue|scontrol|sacct|scancel|srun|pytest|pip|apt-get|git|ruff|lint-imports|rsvg-convert"
    r"|tmux|ssh|scp|nvidia-smi|torchvision)\b|#SBATCH|\bmake (?:run|test|test-fast|lint|bench)\b|\bbench\b"
    r"|python -m (?!tui\.cli)"
)


@dataclass
class ParserTree:
    """The parser's command words and every option string, collected by walking nested subparsers."""

    options: set[str] = field(default_factory=set)
    commands: dict[str, ParserTree] = field(default_factory=dict)


def walk(parser: argparse.ArgumentParser, every_option: set[str]) -> ParserTree:
    node = ParserTree()
    for action in parser._actions:
        node.options.update(action.option_strings)
        every_option.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                node.commands[name] = walk(sub, every_option)
    return node


def parser_tree() -> tuple[ParserTree, set[str]]:
    every_option: set[str] = set()
    return walk(build_parser(), every_option), every_option


@dataclass(frozen=True)
class Snippet:
    """A piece of code quoted by the docs, with the paragraph (or row, or item) it stands in."""

    where: str
    code: str
    block: str


def snippets(text: str, where: str) -> list[Snippet]:
    """Inline code spans and fenced code lines (backslash continuations joined), each with its block."""
    out: list[Snippet] = []
    lines = text.splitlines()
    fenced = False
    pending = ""
    block_lines: list[tuple[int, str]] = []

    def flush_block() -> None:
        block = "\n".join(line for _, line in block_lines)
        for lineno, line in block_lines:
            for span in re.findall(r"`([^`\n]+)`", line):
                out.append(Snippet(f"{where}:{lineno}", span.replace("\\|", "|"), block))
        block_lines.clear()

    for lineno, line in enumerate(lines, 1):
        if line.lstrip().startswith("```"):
            flush_block()
            fenced = not fenced
            pending = ""
            continue
        if fenced:
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            full = pending + line
            pending = ""
            out.append(Snippet(f"{where}:{lineno}", full, full))
            continue
        starts_block = not line.strip() or line.lstrip().startswith(("|", "- ", "* ")) or \
            re.match(r"\s*\d+\.\s", line) is not None or line.startswith("#")
        if starts_block:
            flush_block()
        if line.strip():
            block_lines.append((lineno, line))
        if line.lstrip().startswith("|"):
            flush_block()  # a table row is a block of its own
    flush_block()
    return out


def tokens(command: str) -> list[str]:
    """Words of a command, quoted strings kept whole (and then skipped: they are values)."""
    return re.findall(r"\"[^\"]*\"|'[^']*'|\S+", command)


def bare(token: str) -> str:
    return token.strip("[](){}.,:;")


def problems_in(snippet: Snippet, tree: ParserTree, every_option: set[str]) -> list[str]:
    found: list[str] = []
    code = snippet.code
    calls = list(INVOCATION.finditer(code))
    for call in calls:
        rest = code[call.end():]
        end = COMMAND_END.search(rest)
        words = tokens(rest[:end.start()] if end else rest)
        node, expecting_command = tree, True
        for word in words:
            if word[:1] in "\"'":
                continue
            token = bare(word)
            flag = FLAG.match(token)
            if flag:
                if flag.group(1) not in every_option:
                    found.append(f"{snippet.where}: `{flag.group(1)}` is not an option of ganmgr ({code!r})")
                continue
            if expecting_command and node.commands:
                if SUBCOMMAND_WORD.match(token) and token == word.rstrip(".,:;"):
                    if token in node.commands:
                        node = node.commands[token]
                        continue
                    found.append(f"{snippet.where}: `ganmgr {token}` is not a ganmgr command ({code!r})")
                expecting_command = False
    if not calls and code.lstrip().startswith("-") and not OTHER_TOOLS.search(snippet.block):
        for word in tokens(code):
            flag = FLAG.match(bare(word))
            if flag and flag.group(1) not in every_option:
                found.append(f"{snippet.where}: `{flag.group(1)}` is not an option of ganmgr; if it belongs "
                             f"to another tool, name the tool next to it")
    return found


def check_text(text: str, where: str) -> list[str]:
    tree, every_option = parser_tree()
    return [p for s in snippets(text, where) for p in problems_in(s, tree, every_option)]


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def test_every_command_and_option_the_docs_name_exists() -> None:
    problems = [p for path in doc_files() for p in check_text(path.read_text(), str(path.relative_to(ROOT)))]
    assert not problems, "the docs name what the parser does not have:\n" + "\n".join(problems)


def test_the_docs_are_read() -> None:
    """The check sees the docs' commands at all (a parser change that broke the walk would pass silently)."""
    tree, every_option = parser_tree()
    assert {"run", "sweep", "ls", "show", "viz", "settings"} <= set(tree.commands)
    assert {"--home", "--recipe", "--headless", "--max-parallel", "--wait"} <= every_option
    seen = [s for path in doc_files() for s in snippets(path.read_text(), path.name) if INVOCATION.search(s.code)]
    assert len(seen) > 100


def test_a_made_up_flag_and_command_are_reported() -> None:
    sample = """
Queue it with `ganmgr run --recipe baseline --no-such-flag 3`, or:

```
ganmgr frobnicate 7
ganmgr ls --json   # a --comment-flag in a comment is prose
.venv/bin/ganmgr sweep --recipe baseline --set lr=1e-4,2e-4 \\
    --also-made-up
```

A bare `--not-an-option` in prose is checked too.
"""
    problems = check_text(sample, "sample.md")
    assert any("`--no-such-flag`" in p for p in problems), problems
    assert any("`ganmgr frobnicate`" in p for p in problems), problems
    assert any("`--also-made-up`" in p for p in problems), problems
    assert any("`--not-an-option`" in p for p in problems), problems
    assert not any(f"`{ok}`" in p for p in problems for ok in ("--comment-flag", "--recipe", "--json")), problems
    assert len(problems) == 4, problems


def test_other_tools_options_are_not_ganmgr_s() -> None:
    sample = """
The script asks sbatch for `--signal=B:TERM@120` and `--open-mode=append`.

```
sbatch --parsable RUN_DIR/job.sbatch
.venv/bin/python -m pytest -q -p no:cacheprovider tests/test_docs_cli.py
make test-fast
```

- `python -m bench.train_speed --device cuda --repeats 5`: the GPU run; options `--steps`, `--warmup`.
- `runs/ganmgr.db` is the store; the job is named `ganmgr-12-my-run`.
"""
    assert check_text(sample, "sample.md") == []
