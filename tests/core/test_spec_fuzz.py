"""Fuzzing the spec loader with mutants of every example file.

Each example YAML file the spec loader reads gets :data:`PER_FILE` mutants (a fixed seed per file,
so a failure reproduces): wrong types, deleted and unknown keys, huge, negative and non-finite
numbers, syntax errors, aliases (bombs, recursive, undefined), deep nesting, control characters and
bytes that are not UTF-8, truncation.  Each goes through ``buttress spec validate`` in-process
(click's runner, the function the command runs) and, for the example files of other formats, also
through the command that reads them (``slo validate``, ``chaos validate``).  Every run must end with
exit status 0 (a mutant that happens to stay valid) or 2 with one clear line naming
``file:line:column`` (more problems follow on indented lines), never a traceback, in under 2 s of
CPU and 200 MB (tracemalloc's peak: for the first :data:`TRACE_FIRST` mutants of each kind that can
make the loader build more than it reads, :data:`AMPLIFYING`, and every :data:`TRACE_EVERY`-th
mutant, since tracing makes a run about four times slower).  Mutants that are invalid by
construction must give 2.

The commands after ``spec validate`` for a file (``slo validate``, ``chaos validate``) read it with
the same loader: they get every :data:`OTHER_EVERY`-th mutant.

A few mutants also run in real subprocesses with an address-space limit of 200 MB.
"""

from __future__ import annotations

import copy
import os
import random
import re
import resource
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from buttress.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PER_FILE = 300
SECONDS = 2.0
BYTES = 200 * 1024 * 1024
# The kinds whose input can expand (aliases, nesting, repeated keys, huge numbers): the memory of
# the first TRACE_FIRST of each kind in a file is measured, then every TRACE_EVERY-th mutant like
# the others.  The others change a value or the text's bytes, which the loader reads once.
AMPLIFYING = frozenset(
    {"bomb", "recursive_alias", "undefined_alias", "deep", "deep_text", "duplicate", "number"}
)
TRACE_FIRST = 4
TRACE_EVERY = 5
# The commands after `spec validate` (slo, chaos) read the file with the same loader: each gets
# every OTHER_EVERY-th mutant, for its own error path, at a third of the cost.
OTHER_EVERY = 3
LOCATED = re.compile(r"^error: [^\n]+?:\d+:\d+: \S")
NAMED = re.compile(r"^error: [^\n]+?(:\d+:\d+)?: \S")
MORE = re.compile(r"^\(and \d+ more\)$|^  \S[^\n]*?:\d+:\d+: \S")

# Every example YAML file and the commands that read it with the spec loader.
COMMANDS: dict[str, list[list[str]]] = {
    "assess/reliability.yaml": [["spec", "validate"]],
    "shop/reliability.yaml": [["spec", "validate"]],
    "shop/healing.yaml": [["spec", "validate"]],
    "slo/reliability.yaml": [["spec", "validate"], ["slo", "validate"]],
    "slo/openslo.yaml": [["spec", "validate"], ["slo", "validate"]],
    "slo/sloth.yaml": [["spec", "validate"], ["slo", "validate"]],
    "chaos/latency-game-day.yaml": [["spec", "validate"], ["chaos", "validate"]],
    "dr/reliability.yaml": [["spec", "validate"], ["slo", "validate"]],
    "outbox/reliability.yaml": [["spec", "validate"], ["slo", "validate"]],
    "surge/reliability.yaml": [["spec", "validate"], ["slo", "validate"]],
    "saas/reliability.yaml": [["spec", "validate"], ["slo", "validate"]],
    # The newest examples through `spec validate` only: their slos: sections go through the same
    # SLO loader as surge's and saas's above (and the suite's time is at its 20-minute budget).
    "trading/reliability.yaml": [["spec", "validate"]],
    "clinical/reliability.yaml": [["spec", "validate"]],
    "government/reliability.yaml": [["spec", "validate"]],
}


def test_every_example_yaml_is_fuzzed() -> None:
    found = {p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.glob("**/*.yaml")}
    found |= {p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.glob("**/*.yml")}
    assert found == set(COMMANDS)


@dataclass
class Mutant:
    kind: str
    body: bytes
    invalid: bool  # invalid by construction: every command must refuse it (exit 2)

    def show(self) -> str:
        text = self.body.decode("utf-8", "backslashreplace")
        if len(text) > 1500:
            text = text[:700] + "\n[...]\n" + text[-700:]
        return f"--- mutant ({self.kind}) ---\n{text}"


# -- mutations of the parsed data ------------------------------------------------------------------


def _paths(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(data, dict):
        for k, v in data.items():
            out.extend(_paths(v, (*path, k)))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.extend(_paths(v, (*path, i)))
    return out


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        data = data[p]
    return data


def _set(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    _get(data, path[:-1])[path[-1]] = value
    return data


# libyaml's emitter when PyYAML has it: the pure-Python one was most of the time spent making the
# mutants (about 2 s a file of the 300).
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _dump(data: Any) -> bytes:
    return yaml.dump(data, Dumper=_DUMPER, sort_keys=False, allow_unicode=True).encode("utf-8")


WRONG = [[], {}, "text", 7, -3, 2.5, True, None, [1, "two"], {"k": "v"}, "250ms"]
NUMBERS = [10**30, -(10**30), -1, 0, 10**18, -0.5, 1e308, 2**63, -(2**63) - 1]


def wrong_type(rng: random.Random, data: Any) -> tuple[Any, bool]:
    path = rng.choice(_paths(data)[1:])
    old = _get(data, path)
    choices = [w for w in WRONG if type(w) is not type(old)]
    return _set(data, path, copy.deepcopy(rng.choice(choices))), False


def delete_key(rng: random.Random, data: Any) -> tuple[Any, bool]:
    keyed = [p for p in _paths(data)[1:] if isinstance(p[-1], str)]
    path = rng.choice(keyed)
    del _get(data, path[:-1])[path[-1]]
    return data, False


def unknown_key(rng: random.Random, data: Any) -> tuple[Any, bool]:
    maps = [p for p in _paths(data) if isinstance(_get(data, p), dict)]
    path = rng.choice(maps)
    _get(data, path)[f"zz_unknown_{rng.randrange(1000)}"] = rng.choice(WRONG)
    return data, not path  # an unknown top-level key is refused; deeper ones may be free maps


def number(rng: random.Random, data: Any) -> tuple[Any, bool]:
    leaves = [p for p in _paths(data)[1:] if isinstance(_get(data, p), int | float | str)]
    path = rng.choice(leaves)
    return _set(data, path, rng.choice(NUMBERS)), False


def non_finite(rng: random.Random, data: Any) -> tuple[Any, bool]:
    # NaN or an infinity anywhere in reliability.yaml is refused (always invalid there).
    leaves = [p for p in _paths(data)[1:] if not isinstance(_get(data, p), dict | list)]
    path = rng.choice(leaves)
    return _set(data, path, rng.choice([float("nan"), float("inf"), float("-inf")])), True


def deep(rng: random.Random, data: Any) -> tuple[Any, bool]:
    path = rng.choice(_paths(data))
    value: Any = "x"
    for _ in range(rng.randrange(70, 400)):
        value = [value] if rng.random() < 0.5 else {"k": value}
    return _set(data, path, value), True


DATA_MUTATIONS: list[Callable[[random.Random, Any], tuple[Any, bool]]] = [
    wrong_type,
    delete_key,
    unknown_key,
    number,
    non_finite,
    deep,
]

# -- mutations of the text -------------------------------------------------------------------------

SYNTAX = [
    "[",
    "]",
    "{",
    "}",
    ": :",
    "\t",
    "- - -\n  x",
    "'",
    '"',
    "&",
    "*",
    "!",
    "%",
    "|\n x",
    "? ",
]
BOMB = 'zz_a: &zza ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"zz_{c}: &zz{c} [{','.join([f'*zz{p}'] * 9)}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def syntax(rng: random.Random, text: str) -> tuple[bytes, bool]:
    lines = _lines(text)
    i = rng.randrange(len(lines))
    line = lines[i]
    j = rng.randrange(len(line) + 1)
    lines[i] = line[:j] + rng.choice(SYNTAX) + line[j:]
    return "".join(lines).encode("utf-8"), False


def unbalanced(rng: random.Random, text: str) -> tuple[bytes, bool]:
    return (text + "\nzz_broken: [1, 2\n").encode("utf-8"), True


def bomb(rng: random.Random, text: str) -> tuple[bytes, bool]:
    return (text.rstrip("\n") + "\n" + BOMB).encode("utf-8"), True


def recursive_alias(rng: random.Random, text: str) -> tuple[bytes, bool]:
    tail = rng.choice(["zz_r: &r [1, *r]\n", "zz_r: &r {a: *r}\n", "zz_r: &r {<<: *r}\n"])
    return (text.rstrip("\n") + "\n" + tail).encode("utf-8"), True


def undefined_alias(rng: random.Random, text: str) -> tuple[bytes, bool]:
    return (text.rstrip("\n") + "\nzz_u: *nowhere\n").encode("utf-8"), True


def deep_text(rng: random.Random, text: str) -> tuple[bytes, bool]:
    n = rng.randrange(100, 2000)
    opener, closer = rng.choice([("[", "]"), ("{a: ", "}")])
    return (text.rstrip("\n") + f"\nzz_d: {opener * n}1{closer * n}\n").encode("utf-8"), True


def control(rng: random.Random, text: str) -> tuple[bytes, bool]:
    j = rng.randrange(len(text) + 1)
    ch = chr(rng.choice([0, 1, 7, 8, 0x0B, 0x0C, 0x1B, 0x7F, 0xFFFE]))
    return (text[:j] + ch + text[j:]).encode("utf-8"), True


def binary(rng: random.Random, text: str) -> tuple[bytes, bool]:
    raw = bytearray(text.encode("utf-8"))
    j = rng.randrange(len(raw) + 1)
    junk = [rng.choice([0x00, 0x80, 0xC3, 0xFE, 0xFF, 0xE9]) for _ in range(rng.randrange(0, 7))]
    raw[j:j] = bytes([*junk, rng.choice([0x00, 0xFF, 0xFE])])  # never valid in UTF-8 YAML
    return bytes(raw), True


def truncate(rng: random.Random, text: str) -> tuple[bytes, bool]:
    raw = text.encode("utf-8")
    return raw[: rng.randrange(len(raw))], False


def duplicate(rng: random.Random, text: str) -> tuple[bytes, bool]:
    lines = [ln for ln in _lines(text) if re.match(r"^[A-Za-z_]\w*:", ln)]
    line = rng.choice(lines)
    single = "\n---" not in text
    return (text.rstrip("\n") + "\n" + line.split(":", 1)[0] + ": 1\n").encode("utf-8"), single


TEXT_MUTATIONS: list[Callable[[random.Random, str], tuple[bytes, bool]]] = [
    syntax,
    unbalanced,
    bomb,
    recursive_alias,
    undefined_alias,
    deep_text,
    control,
    binary,
    truncate,
    duplicate,
]


def mutants(name: str, count: int = PER_FILE) -> list[Mutant]:
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    docs = list(yaml.safe_load_all(text))
    rng = random.Random(f"buttress-fuzz:{name}")
    out: list[Mutant] = []
    while len(out) < count:
        if rng.random() < 0.5 and len(docs) == 1 and isinstance(docs[0], dict):
            op = rng.choice(DATA_MUTATIONS)
            data, invalid = op(rng, copy.deepcopy(docs[0]))
            # NaN is refused everywhere in reliability.yaml; other formats may hold it in text.
            invalid = invalid and (op is not non_finite or name.endswith("reliability.yaml"))
            for _ in range(rng.randrange(0, 3)):  # sometimes several mistakes at once
                data, more = rng.choice(DATA_MUTATIONS[:4])(rng, data)
                invalid = invalid or more
            try:
                body = _dump(data)
            except RecursionError:
                continue
            out.append(Mutant(op.__name__, body, invalid))
        else:
            top = rng.choice(TEXT_MUTATIONS)
            body, invalid = top(rng, text)
            out.append(Mutant(top.__name__, body, invalid))
    return out


def check_output(
    result_code: int, stderr: str, output: str, must_fail: bool, *, strict: bool = True
) -> str | None:
    """The problem with one run, or ``None``."""
    if "Traceback" in output or "Traceback" in stderr:
        return "a traceback"
    if result_code == 0:
        if must_fail:
            return "exit 0 for a mutant that is invalid by construction"
        return None
    if result_code != 2:
        return f"exit status {result_code}"
    lines = stderr.splitlines()
    if not lines or not (LOCATED if strict else NAMED).match(lines[0]):
        return f"the first line does not name file:line:column: {lines[:1]!r}"
    for extra in lines[1:]:
        if not MORE.match(extra):
            return f"a line that is neither a located problem nor '(and N more)': {extra!r}"
    return None


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_mutants_of_every_example_exit_2_with_one_located_line(name: str, tmp_path: Path) -> None:
    runner = CliRunner()
    failures: list[str] = []
    worst_time = 0.0
    worst_peak = 0
    tried = 0
    kinds = {op.__name__ for op in [*DATA_MUTATIONS, *TEXT_MUTATIONS]}
    assert AMPLIFYING <= kinds, AMPLIFYING - kinds  # names of mutation kinds, not typos
    for args in COMMANDS[name]:  # warm up: the first run imports the sections and the commands
        runner.invoke(main, [*args, str(EXAMPLES / name)])
    first_of_kind: Counter[str] = Counter()
    for n, mutant in enumerate(mutants(name)):
        first_of_kind[mutant.kind] += 1
        path = tmp_path / f"{n:03d}-{Path(name).name}"
        path.write_bytes(mutant.body)
        commands = COMMANDS[name] if n % OTHER_EVERY == 0 else COMMANDS[name][:1]
        for args in commands:
            command = " ".join(args)
            # The other commands (slo, chaos) may name only the file for a file-wide problem
            # (an empty experiment); `spec validate` always names a line and column.
            strict = command == "spec validate"
            traced = n % TRACE_EVERY == 0 or (
                mutant.kind in AMPLIFYING and first_of_kind[mutant.kind] <= TRACE_FIRST
            )
            if traced:
                tracemalloc.start()
            # CPU time of this thread (the runner calls the command in it): what the loader
            # costs, whatever else the machine runs (wall time on a shared 2-core machine under
            # a parallel suite measures the neighbours).  When tracemalloc is on it slows Python
            # several times, so the real figure is lower still; the wall time of the worst
            # input, the alias bomb, is checked alone in test_spec_hostile.py.
            t0 = time.thread_time()
            try:
                result = runner.invoke(main, [*args, str(path)])
                elapsed = time.thread_time() - t0
                peak = tracemalloc.get_traced_memory()[1] if traced else 0
            finally:
                if traced:
                    tracemalloc.stop()
            tried += 1
            worst_time = max(worst_time, elapsed)
            worst_peak = max(worst_peak, peak)
            problem = None
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                problem = f"raised {type(result.exception).__name__}: {result.exception}"
            problem = problem or check_output(
                result.exit_code, result.stderr, result.output, mutant.invalid, strict=strict
            )
            if problem is None and elapsed > SECONDS:
                problem = f"took {elapsed:.2f}s of CPU"
            if problem is None and peak > BYTES:
                problem = f"peaked at {peak / 1e6:.0f} MB"
            if problem is not None:
                failures.append(
                    f"mutant #{n} of {name}, `buttress {command}`: {problem}\n"
                    f"{result.output[-800:]}\n{mutant.show()}"
                )
    print(f"{name}: {tried} runs, worst {worst_time:.3f}s, peak {worst_peak / 1e6:.1f} MB")
    assert not failures, f"{len(failures)} failing mutant(s); the first:\n" + "\n".join(
        failures[:3]
    )


def _limit_memory() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (BYTES, BYTES))


def test_some_mutants_in_real_processes_with_200_mb(tmp_path: Path) -> None:
    """Ten mutants (the hostile kinds first) through the real command, each in a process limited
    to 200 MB of address space: exit 2, one located line, no traceback, under 2 s of CPU."""
    picked: list[tuple[str, Mutant]] = []
    kinds = ["bomb", "deep_text", "recursive_alias", "binary", "control", "deep", "non_finite"]
    for name in ("shop/reliability.yaml", "slo/reliability.yaml"):
        made = mutants(name, 120)
        for kind in kinds:
            found = [m for m in made if m.kind == kind and m.invalid]
            if found and len(picked) < 10:
                picked.append((name, found[0]))
    assert len(picked) == 10
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    for n, (name, mutant) in enumerate(picked):
        path = tmp_path / f"{n}.yaml"
        path.write_bytes(mutant.body)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "from buttress.cli import main; main()",
                "spec",
                "validate",
                str(path),
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
            preexec_fn=_limit_memory,
            env=env,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        problem = check_output(done.returncode, done.stderr, done.stdout, True)
        assert problem is None and done.returncode == 2, (
            f"{name}: {problem} (exit {done.returncode})\n{done.stderr[-800:]}\n{mutant.show()}"
        )
        assert cpu < SECONDS, f"{name}: {cpu:.2f}s of CPU\n{mutant.show()}"
