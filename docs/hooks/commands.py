"""MkDocs hook: the commands reference, written at build time from the tasks themselves.

A page holding ``MARKER`` gets, in its place, what ``invoke --help TASK`` prints for every task of
``imagekit.tasks.namespace``: the docstring and each option's flags and help, read from the same Invoke
parser contexts ``--help`` uses. A task or option changed in ``imagekit/tasks/`` changes the page, so the
reference cannot drift from the code.
"""

from __future__ import annotations

import html
import inspect
import re

from invoke import Collection

MARKER = "<!-- commands: generated from imagekit.tasks at build time -->"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    from imagekit.tasks import namespace

    return markdown.replace(MARKER, render(namespace))


def render(namespace: Collection) -> str:
    contexts = namespace.to_contexts(ignore_unknown_help=True)
    summary = ["| task | what it does |", "|---|---|"]
    summary += [f"| [`{ctx.name}`](#{ctx.name}) | {_text(_summary(namespace, ctx.name), cell=True)} |"
                for ctx in contexts]
    sections = [_section(namespace, ctx) for ctx in contexts]
    return "\n".join(summary) + "\n\n" + "\n\n".join(sections) + "\n"


def _section(namespace: Collection, ctx) -> str:
    positional = "".join(f" {arg.name.upper()}" for arg in ctx.positional_args)
    options = " [--options]" if ctx.help_tuples() else ""
    lines = [f"## {ctx.name}", "", f"`invoke {ctx.name}{options}{positional}`", ""]
    lines += [_text(paragraph) + "\n" for paragraph in _docstring(namespace, ctx.name).split("\n\n")]
    if ctx.help_tuples():
        lines += ["| option | meaning |", "|---|---|"]
        lines += [f"| `{flags}` | {_text(help_, cell=True)} |" for flags, help_ in ctx.help_tuples()]
    return "\n".join(lines)


def _docstring(namespace: Collection, name: str) -> str:
    return inspect.getdoc(namespace[name]) or ""


def _summary(namespace: Collection, name: str) -> str:
    """The docstring's first paragraph: what the task is for."""
    return _docstring(namespace, name).split("\n\n")[0]


def _text(plain: str, cell: bool = False) -> str:
    """Help text as Markdown that shows it as written: code spans kept (a table leaves their pipes alone),
    everything else escaped; in a table cell, on one line and with its pipes escaped too."""
    if cell:
        plain = plain.replace("\n", " ")
    return "".join(part if part.startswith("`") else _escape(part, cell) for part in re.split(r"(`[^`]*`)", plain))


def _escape(prose: str, cell: bool) -> str:
    escaped = re.sub(r"([\\*_\[\]])", r"\\\1", html.escape(prose, quote=False))
    return escaped.replace("|", "&#124;") if cell else escaped
