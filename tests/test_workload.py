"""CEL workload classes: checked before any log is read, evaluated per distinct tuple."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import polars as pl
import pytest
import yaml

from pipeline.config import DEFAULT_WORKLOADS, load_workloads
from pipeline.errors import ConfigError
from pipeline.workload import classify, compile_rules

CONF = Path(__file__).parent.parent / "conf" / "workloads.yaml"


@pytest.mark.parametrize("rules,message", [
    ([("bad", 'bind_dn.startsWith("x"')], "rule 'bad': not a valid CEL expression"),
    ([("who", 'binddn == "x"')], "rule 'who': unknown variable binddn"),
    ([("str", '"yes"')], "rule 'str': gives string, not a boolean"),
    ([("num", "etime + 1.0")], "rule 'num': gives double, not a boolean"),
    ([("fn", 'bind_dn.lowerAscii() == "x"')], "rule 'fn': unknown function 'lowerAscii'"),
], ids=["syntax", "unknown variable", "string", "number", "unknown function"])
def test_bad_rules_are_named(rules, message) -> None:
    with pytest.raises(ConfigError, match=message):
        compile_rules(rules)


@pytest.mark.parametrize("text,message", [
    ("classes: [{name: a, when: 'true', colour: red}]", "unknown key colour"),
    ("rules: []", "expected one key 'classes'"),
    ("classes:\n  - name: a\n    when: 'true'\n  - name: a\n    when: 'true'\n",
     "classes\\[1\\] \\(line 4\\): class 'a' is named twice"),
    ("classes:\n  - name: a\n    when: 'x =='\n", "rule 'a' \\(line 2\\): not a valid CEL"),
    ("classes: [", "not valid YAML"),
], ids=["unknown key", "no classes", "duplicate", "bad rule has a line", "bad yaml"])
def test_bad_files_name_file_key_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_workloads(path)


def test_shipped_file_equals_the_built_in_classes() -> None:
    shipped = [(c["name"], c["when"]) for c in yaml.safe_load(CONF.read_text())["classes"]]
    assert shipped == [(n, w) for n, w in DEFAULT_WORKLOADS]
    assert [r[:2] for r in load_workloads(CONF)] == shipped


def test_first_match_wins_and_each_distinct_tuple_is_evaluated_once() -> None:
    rules = compile_rules([("svc", 'bind_dn.startsWith("uid=svc-")'),
                           ("slow", "etime > 1.0"), ("rest", "true")])
    ops = pl.DataFrame({
        "bind_dn": ["uid=svc-a"] * 1000 + ["uid=u"] * 1000 + [None] * 10,
        "etime": [2.0] * 500 + [0.1] * 500 + [2.0] * 300 + [0.1] * 700 + [5.0] * 10,
    })
    calls: Counter = Counter()
    out = classify(ops, rules, evaluations=calls)
    assert out["workload"].to_list() == ["svc"] * 1000 + ["slow"] * 300 + ["rest"] * 700 + \
        ["slow"] * 10
    # svc sees 3 distinct bind DNs; slow only the 2 etimes of the rows svc left + null's 5.0
    assert calls == {"svc": 3, "slow": 3, "rest": 1}
    # rows in another order: the same answers, each tuple still evaluated once
    calls.clear()
    again = classify(ops.reverse(), rules, evaluations=calls)
    assert again["workload"].to_list() == out["workload"].to_list()[::-1]
    assert calls == {"svc": 3, "slow": 3, "rest": 1}


def test_classes_on_the_real_sample(tmp_path: Path) -> None:
    from pipeline.engine.plan import RunOptions
    from pipeline.engine.run import run

    from .conftest import SAMPLE
    out = tmp_path / "out"
    run(RunOptions(inputs=(f"b={SAMPLE}/real389b",), out=out, scheduler="synchronous",
                   workloads=load_workloads(CONF)))
    ops = pl.read_parquet(out / "operations", hive_partitioning=True)
    dn = pl.col("bind_dn").fill_null("(unknown)")
    expected = (
        pl.when(dn.str.to_lowercase() == "cn=directory manager").then(pl.lit("directory-manager"))
        .when((pl.col("verb") == "SRCH") & pl.col("unindexed")).then(pl.lit("unindexed-scans"))
        .when(dn.str.starts_with("uid=svc-")).then(pl.lit("service-accounts"))
        .when(dn == "").then(pl.lit("anonymous"))
        .when(dn.str.contains("ou=people,", literal=True)).then(pl.lit("users"))
        .otherwise(pl.lit("other"))
    )
    check = ops.select(pl.col("workload"), expected.alias("expected"))
    assert check.filter(pl.col("workload") != pl.col("expected")).height == 0
    counts = dict(check.group_by("workload").len().iter_rows())
    assert counts["directory-manager"] > 1000 and counts["service-accounts"] > 1000


def test_classes_equal_the_golden_digests_of_cel_python() -> None:
    """Every rule of CEL_RULES over operations with nulls: the rows each matches and the
    rows it fails on, as cel-python gave them (written before the compiled core's engine
    replaced it)."""
    import json

    from .golden import CEL_RULES, GOLDEN, cel_operations, class_digest
    golden = json.loads((GOLDEN / "cel.json").read_text())
    ops = cel_operations()
    for rule in CEL_RULES:
        errors: dict[str, int] = {}
        classes = classify(ops, compile_rules([("hit", rule)]), errors=errors)["workload"]
        assert class_digest(classes.to_list(), errors.get("hit", 0)) == golden[rule], rule
