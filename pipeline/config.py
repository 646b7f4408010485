"""Configuration files (YAML) → checked, frozen values, with errors that name the key.

A configuration error stops the run before any log is read, naming the
file, the key or rule, its line, and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .workload import Rule, compile_rules

# The built-in classes, used when no --workloads file is given (conf/workloads.yaml
# holds the same rules, commented; a test keeps the two equal).
DEFAULT_WORKLOADS = (
    ("directory-manager", 'bind_dn.matches("(?i)^cn=directory manager$")'),
    ("unindexed-scans", 'verb == "SRCH" && unindexed'),
    ("service-accounts", 'bind_dn.startsWith("uid=svc-")'),
    ("anonymous", 'bind_dn == ""'),
    ("users", 'bind_dn.contains("ou=people,")'),
    ("other", "true"),
)


def load_yaml(path: Path) -> tuple[Any, yaml.Node]:
    """Parse a YAML file, keeping the node tree for line numbers."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read configuration: {path} ({e.strerror})") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    return data, node


def load_workloads(path: Path | None) -> tuple[tuple[str, str, int | None], ...]:
    """Read and check a workloads file; ``None`` gives the built-in classes.

    Returns ``(name, expression, line)`` triples, already compiled once to check
    them (tasks compile their own copy: a compiled program is not sent over the wire).
    """
    if path is None:
        rules = tuple((n, w, None) for n, w in DEFAULT_WORKLOADS)
        compile_rules(list(rules), "built-in workloads")
        return rules
    data, node = load_yaml(path)
    if not isinstance(data, dict) or set(data) != {"classes"}:
        keys = ", ".join(sorted(data)) if isinstance(data, dict) else type(data).__name__
        raise ConfigError(f"{path}: expected one key 'classes' (a list of {{name, when}}), "
                          f"found: {keys}")
    classes = data["classes"]
    if not isinstance(classes, list) or not classes:
        raise ConfigError(f"{path}: 'classes' must be a non-empty list of {{name, when}}")
    lines = _item_lines(node)
    rules = []
    seen = set()
    for i, item in enumerate(classes):
        line = lines[i] if i < len(lines) else None
        where = f"{path}: classes[{i}] (line {line})"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected a mapping with 'name' and 'when'")
        unknown = sorted(set(item) - {"name", "when"})
        if unknown:
            raise ConfigError(f"{where}: unknown key {', '.join(unknown)} (allowed: name, when)")
        if "name" not in item or "when" not in item:
            raise ConfigError(f"{where}: needs both 'name' and 'when'")
        name, when = str(item["name"]), item["when"]
        if name in seen:
            raise ConfigError(f"{where}: class {name!r} is named twice")
        seen.add(name)
        if isinstance(when, bool):  # YAML read `when: true` as a boolean, not CEL text
            when = "true" if when else "false"
        rules.append((name, str(when), line))
    compile_rules(rules, str(path))
    return tuple(rules)


def compiled(rules: tuple[tuple[str, str, int | None], ...]) -> tuple[Rule, ...]:
    """Compile checked rules (on a worker)."""
    return compile_rules(list(rules))


def _item_lines(node: yaml.Node | None) -> list[int]:
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if key.value == "classes" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []
