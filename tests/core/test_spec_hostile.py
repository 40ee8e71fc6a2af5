"""The spec loader under hostile input: alias bombs, deep nesting, recursive aliases, control
characters, bytes that are not UTF-8, NaN and infinities; and ``buttress spec validate`` checking
what the other commands check (cross-references), so it accepts exactly what they accept.

Every refusal is one :class:`SpecError` naming file, line and column, never a traceback."""

from __future__ import annotations

import re
import time
import tracemalloc
from pathlib import Path

import pytest
from click.testing import CliRunner

from buttress.cli import main
from buttress.errors import SpecError
from buttress.spec import build_pipelines, load_spec, load_spec_text, load_yaml_text
from buttress.spec.source import MAX_ALIAS_NODES, MAX_DEPTH

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LOCATED = re.compile(r"^error: [^\n:]+:\d+:\d+: \S")


def refusal(text: str | bytes, tmp_path: Path) -> tuple[str, float, int]:
    """``buttress spec validate`` on ``text``: its one-line error, seconds and peak bytes."""
    path = tmp_path / "reliability.yaml"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    t0 = time.perf_counter()
    result = CliRunner().invoke(main, ["spec", "validate", str(path)])
    elapsed = time.perf_counter() - t0
    tracemalloc.start()  # again, for the memory: tracing makes Python several times slower
    try:
        CliRunner().invoke(main, ["spec", "validate", str(path)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert 2 == result.exit_code, result.output
    assert "Traceback" not in result.output
    first = result.stderr.splitlines()[0]
    assert LOCATED.match(first), result.stderr
    return first, elapsed, peak


BOMB = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "",
    ]
)


def test_an_alias_bomb_is_refused_in_under_a_second_naming_the_alias(tmp_path: Path) -> None:
    assert len(BOMB) < 400  # a few hundred bytes that would expand to 9**9 strings
    first, elapsed, peak = refusal(BOMB, tmp_path)
    assert f"aliases expand to more than {MAX_ALIAS_NODES} values" in first
    assert re.search(r"reliability\.yaml:5:8: e\[0\]:", first), first  # the alias *d in e:
    assert elapsed < 1.0
    assert peak < 50_000_000


def test_a_mapping_bomb_and_merge_keys_are_bounded_too(tmp_path: Path) -> None:
    lines = ["a0: &a0 {x: 1, y: 2}"]
    for i in range(1, 30):
        lines.append(f"a{i}: &a{i} {{p: *a{i - 1}, q: *a{i - 1}}}")
    first, elapsed, _ = refusal("\n".join(lines) + "\n", tmp_path)
    assert "alias bomb" in first and elapsed < 1.0
    merges = ["m0: &m0 {k0: 0}"]
    for i in range(1, 40):
        merges.append(f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: {i}}}")
    first, elapsed, _ = refusal("\n".join(merges) + "\n", tmp_path)
    assert elapsed < 1.0


@pytest.mark.parametrize("opener", ["[", "{a: ", "- "])
def test_deep_nesting_is_one_located_line(opener: str, tmp_path: Path) -> None:
    if opener == "- ":
        text = "".join("  " * i + "-\n" for i in range(500)) + "  " * 500 + "x\n"
    else:
        closer = "]" if opener == "[" else "}"
        text = "policies: " + opener * 500 + "1" + closer * 500 + "\n"
    first, elapsed, _ = refusal(text, tmp_path)
    assert f"nested deeper than {MAX_DEPTH} levels" in first
    assert elapsed < 1.0


def test_aliases_cannot_nest_past_the_depth_bound_either() -> None:
    lines = ["a0: &a0 " + "[" * 40 + "1" + "]" * 40]
    for i in range(1, 6):
        lines.append(f"a{i}: &a{i} " + "[" * 40 + f"*a{i - 1}" + "]" * 40)
    with pytest.raises(SpecError, match="nested deeper than") as e:
        load_yaml_text("\n".join(lines) + "\n", "r.yaml")
    assert e.value.line is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &x [1, *x]\n", "an alias refers to a mapping or list that contains it"),
        ("a: &x {b: *x}\n", "an alias refers to a mapping or list that contains it"),
        ("a: &x {<<: *x}\n", "a merge key (<<) merges the mapping it belongs to"),
        ("a: *nowhere\n", "found undefined alias"),
    ],
)
def test_a_recursive_or_undefined_alias_is_one_located_line(
    text: str, message: str, tmp_path: Path
) -> None:
    first, _, _ = refusal(text, tmp_path)
    assert message in first


@pytest.mark.parametrize(
    ("char", "name"),
    [("\x00", "U+0000 (NUL)"), ("\x1b", "U+001B (ESC)"), ("\x07", "U+0007 (BEL)"), ("\x7f", "DEL")],
)
def test_a_control_character_names_its_line_and_column(
    char: str, name: str, tmp_path: Path
) -> None:
    first, _, _ = refusal(f"version: 1\nservice: pay{char}ments\n", tmp_path)
    assert "reliability.yaml:2:13:" in first
    assert name in first and "not allowed" in first


def test_bytes_that_are_not_utf8_name_the_byte_offset_and_line(tmp_path: Path) -> None:
    first, _, _ = refusal(b"version: 1\nservice: caf\xe9\n", tmp_path)
    assert "reliability.yaml:2:13:" in first
    assert "not UTF-8" in first and "byte 0xe9 at byte offset 23" in first
    first, _, _ = refusal("version: 1\n".encode("utf-16"), tmp_path)
    assert "not UTF-8" in first and "byte offset 0" in first


@pytest.mark.parametrize(
    "value", ["2022-02-30", "9" * 5000, "!!binary 'not base64!'", "!!python/object:os.system x"]
)
def test_a_scalar_yaml_cannot_read_is_located(value: str, tmp_path: Path) -> None:
    first, _, _ = refusal(f"version: 1\nservice: {value}\n", tmp_path)
    assert "reliability.yaml:2:" in first


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["spec", "validate", str(tmp_path / "nope.yaml")])
    assert 2 == result.exit_code and "file not found" in result.stderr


# -- NaN and infinities ----------------------------------------------------------------------------

NUMBERS = [".nan", ".NaN", ".inf", "-.inf", "1e999", '"nan"', '"inf"', '"-1e999"']


@pytest.mark.parametrize("value", NUMBERS)
@pytest.mark.parametrize(
    ("template", "field"),
    [
        (
            "service: s\nslos:\n  - name: a\n    objective: {v}\n"
            "    sli: {{kind: ratio, bad: 'sum(rate(e[W]))', total: 'sum(rate(t[W]))'}}\n",
            "slos[0].objective",
        ),
        ("policies:\n  p:\n    retry: {{attempts: 3, backoff: {{base: {v}}}}}\n", "policies.p"),
        ("policies:\n  p:\n    rate_limit: {{rate: {v}, per: 1s}}\n", "policies.p.rate_limit"),
        ("policies:\n  p:\n    bulkhead: {{max_concurrent: {v}}}\n", "policies.p.bulkhead"),
        (
            "health:\n  checks:\n    - {{type: disk, warn_below: {v}}}\n",
            "health.checks[0].warn_below",
        ),
    ],
)
def test_nan_and_infinities_are_refused_where_numbers_are_expected(
    value: str, template: str, field: str
) -> None:
    with pytest.raises(SpecError) as e:
        load_spec_text(template.format(v=value).replace("W", "{{.window}}"), "r.yaml")
    assert e.value.field is not None and e.value.field.startswith(field), str(e.value)
    assert e.value.line is not None
    assert re.search(r"finite|number|integer|negative|must", e.value.message, re.I), str(e.value)


def test_the_policy_options_refuse_nan_themselves() -> None:
    """The options types refuse NaN and infinities on their own (not only the loader's check)."""
    from buttress.spec.policies import PipelineSpec

    for value in ("nan", "inf", "1e999"):
        with pytest.raises(ValueError, match=r"(?i)finite|nan|inf"):
            PipelineSpec.model_validate({"retry": {"attempts": 3, "backoff": {"base": value}}})
        with pytest.raises(ValueError, match=r"(?i)finite|nan|inf"):
            PipelineSpec.model_validate({"rate_limit": {"rate": value, "per": 1}})


# -- spec validate checks what the other commands check --------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (
            "health:\n  checks:\n    - {type: http, url: 'http://rates:99999/health'}\n",
            "4:20: health.checks[0].url",
            "has an invalid port",
        ),
        (
            "health:\n  checks:\n    - {type: tcp, host: h, port: 1, groups: [batch]}\n",
            "health.checks[0].groups",
            "unknown group",
        ),
        (
            "health:\n  checks:\n    - {type: redis}\n",
            "4:7: health.checks[0]",
            "give exactly one of url or url_env",
        ),
        (
            "health:\n  checks:\n    - {type: disk, warn_below: 0.01, fail_below: 0.2}\n",
            "health.checks[0].fail_below",
            "must be <= warn_below",
        ),
        (
            "policies:\n  p:\n    load_shedding: {capacity: adaptive_limit}\n",
            "policies.p.load_shedding.capacity",
            "needs an adaptive_limit: in the same pipeline",
        ),
    ],
)
def test_validate_checks_what_building_checks(
    text: str, where: str, message: str, tmp_path: Path
) -> None:
    first, _, _ = refusal("version: 1\n" + text, tmp_path)
    assert where in first and message in first, first


def _shop(tmp_path: Path, old: str, new: str) -> str:
    text = (EXAMPLES / "shop" / "reliability.yaml").read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new)


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        (
            "target: payments-1, at: 4s",
            "target: paymnts-1, at: 4s",
            "experiments.plan[0].target",
            "'paymnts-1' is not behind the fault proxy",
        ),
        (
            "depends_on: [inventory, payments, datastore]",
            "depends_on: [cache]",
            "experiments.system.api.depends_on[0]",
            "unknown service 'cache'",
        ),
        (
            "checkout: {policies_on: held",
            "checkuot: {policies_on: held",
            "experiments.hypotheses.slos.checkuot",
            "no SLO named 'checkuot'",
        ),
        (
            "  load:\n    entry: api\n",
            "  load:\n    entry: gateway\n",
            "experiments.load.entry",
            "unknown service 'gateway'",
        ),
    ],
)
def test_validate_checks_the_lab_plan_against_the_system(
    old: str, new: str, field: str, message: str, tmp_path: Path
) -> None:
    first, _, _ = refusal(_shop(tmp_path, old, new), tmp_path)
    assert f" {field}: " in first and message in first, first


def test_validate_accepts_what_the_commands_accept() -> None:
    """Every example reliability.yaml passes validation and what its commands do after loading."""
    from buttress.health.spec import build_health
    from buttress.lab.system.load import load_lab

    for path in sorted(EXAMPLES.glob("**/reliability.yaml")):
        result = CliRunner().invoke(main, ["spec", "validate", str(path)])
        assert 0 == result.exit_code, result.output
        spec = load_spec(path)
        build_pipelines(spec)
        if spec.experiments is not None:
            load_lab(path)
        if spec.health is not None:
            build_health(spec, env={"DATABASE_URL": "postgresql://h/db", "REDIS_URL": "redis://h"})


# -- empty and truncated files ---------------------------------------------------------------------

VALIDATORS = [["spec", "validate"], ["slo", "validate"], ["chaos", "validate"], ["assess"]]


@pytest.mark.parametrize("command", VALIDATORS, ids=" ".join)
@pytest.mark.parametrize("text", ["", "\n\n", "# nothing but a comment\n"], ids=repr)
def test_an_empty_file_is_refused_at_its_start_by_every_validator(
    command: list[str], text: str, tmp_path: Path
) -> None:
    path = tmp_path / "reliability.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, [*command, str(path)])
    assert 2 == result.exit_code, result.output
    assert result.stderr.startswith(f"error: {path}:1:1: the file is empty"), result.stderr


@pytest.mark.parametrize("command", VALIDATORS, ids=" ".join)
@pytest.mark.parametrize(
    "text",
    ["version: 1\nslos:\n  - name: x\n    objective: [\n", 'version: 1\nservice: "shop\n'],
    ids=["open-flow", "open-quote"],
)
def test_a_truncated_file_names_the_line_and_column_where_it_ends(
    command: list[str], text: str, tmp_path: Path
) -> None:
    path = tmp_path / "reliability.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, [*command, str(path)])
    assert 2 == result.exit_code, result.output
    first = result.stderr.splitlines()[0]
    assert LOCATED.match(first) and "YAML syntax error" in first, result.stderr
    assert (
        f"{path}:{text.count(chr(10)) + 1}:" in first or f"{path}:{text.count(chr(10))}:" in first
    )
