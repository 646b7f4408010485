"""Configuration files (YAML) → checked, frozen values, with errors that name the key.

A configuration error stops the run before any log is read, naming the
file, the key or rule, its line, and the fix.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .workload import compile_rules

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


def load_workloads(path: Path | None, live: bool = False
                   ) -> tuple[tuple[str, str, int | None], ...]:
    """Read and check a workloads file; ``None`` gives the built-in classes.

    ``live``: for the exporter's connections (cn=monitor), whose variables are fewer: a
    rule naming a variable only the logs have is refused; of the built-in classes, those
    are left out.

    Returns ``(name, expression, line)`` triples, checked (tasks compile their own copy
    in the core: a compiled program is not sent over the wire).
    """
    if path is None:
        rules = tuple((n, w, None) for n, w in DEFAULT_WORKLOADS)
        if live:
            rules = tuple(r for r in rules if _is_live(r[1]))
        return compile_rules(rules, "built-in workloads", live=live)
    data, node = load_yaml(path)
    if not isinstance(data, dict) or set(data) != {"classes"}:
        keys = ", ".join(sorted(data)) if isinstance(data, dict) else type(data).__name__
        raise ConfigError(f"{path}: expected one key 'classes' (a list of {{name, when}}), "
                          f"found: {keys}")
    classes = data["classes"]
    if not isinstance(classes, list) or not classes:
        raise ConfigError(f"{path}: 'classes' must be a non-empty list of {{name, when}}")
    lines = _item_lines(node, "classes")
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
    return compile_rules(rules, str(path), live=live)


def _is_live(expression: str) -> bool:
    try:
        compile_rules([("x", expression)], live=True)
        return True
    except ConfigError:
        return False


def _item_lines(node: yaml.Node | None, section: str) -> list[int]:
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if key.value == section and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


SERVER_KEYS = ("name", "host", "port", "user", "key_file", "known_hosts", "logs", "ldap")
LDAP_KEYS = ("url", "bind_dn", "password_file", "sasl_mech", "ca_file", "timeout")


@dataclass(frozen=True)
class LdapConfig:
    """How the exporter reads a server's cn=monitor. The password stays in its file (mode
    0600, read at each bind), never in the YAML or in memory longer than a bind."""

    url: str
    bind_dn: str | None = None
    password_file: str | None = None
    sasl_mech: str | None = None       # EXTERNAL: LDAPI peer credentials, client cert
    ca_file: str | None = None
    timeout: float = 5.0
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ServerConfig:
    """One server to collect from (conf/servers.yaml). Never holds a password."""

    name: str
    host: str
    logs: str
    port: int = 22
    user: str | None = None
    key_file: str | None = None
    known_hosts: str = "~/.ssh/known_hosts"
    ldap: LdapConfig | None = None

    def storage_options(self, accept_new_host_keys: bool = False) -> dict[str, Any]:
        """fsspec options for ``VerifiedSFTPFileSystem`` (paths only, no secrets)."""
        options: dict[str, Any] = {"host": self.host, "port": self.port,
                                   "known_hosts": self.known_hosts,
                                   "accept_new_host_keys": accept_new_host_keys}
        if self.user:
            options["username"] = self.user
        if self.key_file:
            options["key_filename"] = self.key_file
        return options


def _ldap_block(item: Any, where: str, check_files: bool = True) -> LdapConfig:
    where = f"{where}: ldap"
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected a mapping of {', '.join(LDAP_KEYS)}")
    if "password" in item or "bind_password" in item:
        raise ConfigError(f"{where}: passwords are never read from the config; put it in a "
                          "file of mode 0600 and name it in password_file")
    unknown = sorted(set(item) - set(LDAP_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {', '.join(unknown)} "
                          f"(allowed: {', '.join(LDAP_KEYS)})")
    url = str(item.get("url") or "")
    if not url.startswith(("ldap://", "ldaps://", "ldapi://")):
        raise ConfigError(f"{where}: url must be ldap://, ldaps:// or ldapi://: {url!r}")
    mech = item.get("sasl_mech")
    if mech is not None and str(mech).upper() != "EXTERNAL":
        raise ConfigError(f"{where}: sasl_mech {mech!r} is not supported (EXTERNAL is)")
    password_file = item.get("password_file")
    if item.get("bind_dn") and not password_file and mech is None:
        raise ConfigError(f"{where}: bind_dn {item['bind_dn']!r} needs password_file (or "
                          "sasl_mech: EXTERNAL)")
    if password_file is not None:
        password_file = os.path.expanduser(str(password_file))
    if password_file is not None and check_files:  # the exporter's; collect leaves them
        try:
            mode = os.stat(password_file).st_mode
        except OSError as e:
            raise ConfigError(f"{where}: password_file {password_file}: {e.strerror}") from None
        if mode & 0o077:
            raise ConfigError(f"{where}: password_file {password_file} is readable by others "
                              f"(mode {mode & 0o777:o}); chmod 600 it")
    ca_file = item.get("ca_file")
    if ca_file is not None and check_files and not os.path.isfile(
            os.path.expanduser(str(ca_file))):
        raise ConfigError(f"{where}: ca_file not found: {ca_file}")
    timeout = item.get("timeout", 5)
    if not isinstance(timeout, (int, float)) or not 0 < timeout <= 300:
        raise ConfigError(f"{where}: timeout must be seconds from 0 to 300: {timeout!r}")
    return LdapConfig(url=url, bind_dn=item.get("bind_dn"), password_file=password_file,
                      sasl_mech=str(mech).upper() if mech else None,
                      ca_file=os.path.expanduser(str(ca_file)) if ca_file else None,
                      timeout=float(timeout))


def load_servers(path: Path, need: str = "logs") -> tuple[ServerConfig, ...]:
    """Read and check ``servers.yaml`` before any connection is made.

    ``need``: ``"logs"`` (collect: every server has ``host`` and ``logs``) or ``"ldap"``
    (the exporter: the servers with an ``ldap`` block, at least one)."""
    data, node = load_yaml(path)
    if not isinstance(data, dict) or "servers" not in data:
        raise ConfigError(f"{path}: expected a top-level 'servers' list")
    unknown_top = sorted(set(data) - {"servers"})
    if unknown_top:
        raise ConfigError(f"{path}: unknown key {', '.join(unknown_top)} (allowed: servers)")
    items = data["servers"]
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: 'servers' must be a non-empty list")
    lines = _item_lines(node, "servers")
    servers = []
    for i, item in enumerate(items):
        where = f"{path}: servers[{i}] (line {lines[i] if i < len(lines) else '?'})"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected a mapping of {', '.join(SERVER_KEYS)}")
        unknown = sorted(set(item) - set(SERVER_KEYS))
        if "password" in item:
            raise ConfigError(f"{where}: passwords are never read from the config; use "
                              "key_file or an SSH agent")
        if unknown:
            raise ConfigError(f"{where}: unknown key {', '.join(unknown)} "
                              f"(allowed: {', '.join(SERVER_KEYS)})")
        for key in ("name", "host", "logs") if need == "logs" else ("name",):
            if not item.get(key):
                raise ConfigError(f"{where}: missing key '{key}'")
        ldap = _ldap_block(item["ldap"], where, need == "ldap") if "ldap" in item else None
        name = str(item["name"])
        if not SAFE_NAME.match(name):
            raise ConfigError(f"{where}: name {name!r} must be letters, digits, '.', '_' or "
                              "'-' (it becomes a folder name)")
        port = item.get("port", 22)
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"{where}: port must be a number from 1 to 65535: {port!r}")
        key_file = item.get("key_file")
        if key_file is not None:
            expanded = os.path.expanduser(str(key_file))
            if not os.path.isfile(expanded):
                raise ConfigError(f"{where}: key_file not found: {key_file} (give the path of "
                                  "a private key, or drop key_file to use the SSH agent)")
            key_file = expanded
        known = os.path.expanduser(str(item.get("known_hosts", "~/.ssh/known_hosts")))
        servers.append(ServerConfig(name=name, host=str(item.get("host", "")),
                                    logs=str(item.get("logs", "")), port=port,
                                    user=item.get("user"), key_file=key_file,
                                    known_hosts=known, ldap=ldap))
    names = [s.name for s in servers]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{path}: server named twice: {', '.join(dupes)} (names must be "
                          "unique: each becomes STAGE/<name>/)")
    if need == "ldap":
        servers = [s for s in servers if s.ldap is not None]
        if not servers:
            raise ConfigError(f"{path}: no server has an 'ldap' block (url, bind_dn, "
                              "password_file...): the exporter has nothing to read")
    return tuple(servers)
