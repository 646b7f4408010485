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
                           ("slow", "etime > 1.0"), ("rest", "true")], vectorised=False)
    ops = pl.DataFrame({
        "bind_dn": ["uid=svc-a"] * 1000 + ["uid=u"] * 1000 + [None] * 10,
        "etime": [2.0] * 500 + [0.1] * 500 + [2.0] * 300 + [0.1] * 700 + [5.0] * 10,
    })
    calls: Counter = Counter()
    out = classify(ops, rules, on_evaluate=lambda r: calls.update([r.name]))
    assert out["workload"].to_list() == ["svc"] * 1000 + ["slow"] * 300 + ["rest"] * 700 + \
        ["slow"] * 10
    # svc sees 3 distinct bind DNs; slow only the 2 etimes of the rows svc left + null's 5.0
    assert calls == {"svc": 3, "slow": 3, "rest": 1}
    # the next bucket with the same values costs no evaluation and gets the same answers
    again = classify(ops.reverse(), rules, on_evaluate=lambda r: calls.update([r.name]))
    assert again["workload"].to_list() == out["workload"].to_list()[::-1]
    assert calls == {"svc": 3, "slow": 3, "rest": 1}


def test_classes_on_the_real_sample(tmp_path: Path) -> None:
    from pipeline.run import RunOptions, run

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


RULES_BOTH_WAYS = [
    'bind_dn.startsWith("uid=svc-")', 'bind_dn.endsWith(",dc=com")', 'bind_dn.contains("ou=")',
    'bind_dn.matches("(?i)^cn=directory manager$")', 'verb == "SRCH" && unindexed',
    "etime > 0.05", "etime <= 0.05 || paged", "!(err == 0)", "err != -1 && nentries >= 2",
    'verb in ["BIND", "UNBIND"]', "scope == 2", "tls", "conn_duration > 1.5", "true", "false",
    'client_ip == "" || server == "ds1"', "etime > 1",  # int against double: interpreter only
    'size(bind_dn) > 3', 'etime + 1.0 > 2.0',          # outside the subset: interpreter
    'bind_dn.matches("^(?!uid=svc-)")',                 # a look-around: interpreter
]


def test_vectorised_rules_agree_with_the_interpreter() -> None:
    import random
    rng = random.Random(5)
    n = 3000
    ops = pl.DataFrame({
        "server": [rng.choice(["ds1", "ds2"]) for _ in range(n)],
        "bind_dn": [rng.choice(["uid=svc-a,dc=com", "cn=Directory Manager", "", None,
                                "uid=u,ou=people,dc=com"]) for _ in range(n)],
        "verb": [rng.choice(["SRCH", "BIND", "UNBIND", None]) for _ in range(n)],
        "etime": [rng.choice([None, rng.random() / 10, rng.random() * 3]) for _ in range(n)],
        "err": [rng.choice([None, 0, 32, 49]) for _ in range(n)],
        "nentries": [rng.choice([None, 0, 1, 5]) for _ in range(n)],
        "scope": [rng.choice([None, 0, 1, 2]) for _ in range(n)],
        "unindexed": [rng.choice([None, True, False]) for _ in range(n)],
        "paged": [rng.choice([None, True, False]) for _ in range(n)],
        "tls": [rng.choice([None, "TLS1.3"]) for _ in range(n)],
        "conn_duration": [rng.choice([None, rng.random() * 3]) for _ in range(n)],
        "client_ip": [rng.choice([None, "", "10.0.0.1"]) for _ in range(n)],
    })
    vectorised = 0
    for source in RULES_BOTH_WAYS:
        fast = compile_rules([("hit", source)])
        slow = compile_rules([("hit", source)], vectorised=False)
        vectorised += fast[0].expr is not None
        assert classify(ops, fast)["workload"].equals(classify(ops, slow)["workload"]), source
    assert vectorised == len(RULES_BOTH_WAYS) - 4


def test_classes_equal_the_golden_digests_of_cel_python() -> None:
    """Every rule of CEL_RULES over operations with nulls: the rows each matches and the
    rows it fails on, as cel-python gave them (``python -m tests.golden cel`` wrote them
    before the compiled core's engine replaced it)."""
    import json

    from .golden import CEL_RULES, GOLDEN, cel_operations, class_digest
    golden = json.loads((GOLDEN / "cel.json").read_text())
    ops = cel_operations()
    for rule in CEL_RULES:
        errors: dict[str, int] = {}
        classes = classify(ops, compile_rules([("hit", rule)]), errors=errors)["workload"]
        assert class_digest(classes.to_list(), errors.get("hit", 0)) == golden[rule], rule
