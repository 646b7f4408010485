"""The exporter's ``--web-config FILE``: TLS and basic auth for ``/metrics``, in the file
format of the Prometheus exporter-toolkit, so one file serves every exporter of a host::

    tls_server_config:
      cert_file: server.crt          # relative paths: to this file's folder
      key_file: server.key
      client_ca_file: clients.crt    # optional: clients must show a certificate it signed
      client_auth_type: RequireAndVerifyClientCert
      min_version: TLS12             # optional: TLS12 (default) or TLS13
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hashes (htpasswd -nBC 10 prometheus)

Every key is checked before the exporter listens; a wrong password is a 401.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import load_yaml
from ..errors import ConfigError

TOP_KEYS = ("tls_server_config", "basic_auth_users", "http_server_config")
TLS_KEYS = ("cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version",
            "max_version", "cipher_suites", "curve_preferences", "prefer_server_cipher_suites")
CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "RequestClientCert": ssl.CERT_OPTIONAL,
               "RequireAnyClientCert": ssl.CERT_OPTIONAL,
               "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
               "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}


@dataclass
class WebConfig:
    tls: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)  # name → bcrypt hash
    # (user, sha256 of the password) already checked: bcrypt costs tens of ms a request
    _good: set[tuple[str, bytes]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allows(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header passes (always, without users)."""
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(
                ":")
        except (ValueError, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if hashed is None:
            return False
        key = (user, hashlib.sha256(password.encode()).digest())
        with self._lock:
            if key in self._good:
                return True
        import bcrypt
        if not bcrypt.checkpw(password.encode(), hashed):
            return False
        with self._lock:
            self._good.add(key)
        return True


def load_web_config(path: Path) -> WebConfig:
    """Read and check the file (every key, the certificate and key, the hashes)."""
    data, _ = load_yaml(path)
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of {', '.join(TOP_KEYS)}")
    _known(data, TOP_KEYS, str(path))
    out = WebConfig()
    tls = data.get("tls_server_config")
    if tls is not None:
        out.tls = _tls(tls, path)
    users = data.get("basic_auth_users") or {}
    if not isinstance(users, dict):
        raise ConfigError(f"{path}: basic_auth_users: expected a mapping of user: bcrypt hash")
    for user, hashed in users.items():
        text = str(hashed or "")
        if not text.startswith(("$2a$", "$2b$", "$2y$")) or len(text) != 60:
            raise ConfigError(f"{path}: basic_auth_users: {user}: not a bcrypt hash (make one "
                              f"with: htpasswd -nBC 10 {user})")
        out.users[str(user)] = text.encode()
    return out


def _known(block: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(block) - set(keys))
    if unknown:
        raise ConfigError(f"{where}: unknown key {', '.join(unknown)} "
                          f"(allowed: {', '.join(keys)})")


def _tls(block: Any, path: Path) -> ssl.SSLContext:
    where = f"{path}: tls_server_config"
    if not isinstance(block, dict):
        raise ConfigError(f"{where}: expected a mapping of {', '.join(TLS_KEYS)}")
    _known(block, TLS_KEYS, where)

    def file(key: str) -> str:
        name = (path.parent / str(block[key]).strip()).expanduser()
        if not name.is_file():
            raise ConfigError(f"{where}: {key} not found: {name}")
        return str(name)

    for key in ("cert_file", "key_file"):
        if not block.get(key):
            raise ConfigError(f"{where}: {key} is needed")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    version = str(block.get("min_version", "TLS12"))
    if version not in VERSIONS:
        raise ConfigError(f"{where}: min_version {version!r}: use TLS12 or TLS13")
    ctx.minimum_version = VERSIONS[version]
    try:
        ctx.load_cert_chain(file("cert_file"), file("key_file"))
    except ssl.SSLError as e:
        raise ConfigError(f"{where}: cert_file and key_file do not load: {e.reason or e}"
                          ) from None
    auth = str(block.get("client_auth_type", "NoClientCert"))
    if auth not in CLIENT_AUTH:
        raise ConfigError(f"{where}: client_auth_type {auth!r} (allowed: "
                          f"{', '.join(CLIENT_AUTH)})")
    ctx.verify_mode = CLIENT_AUTH[auth]
    if block.get("client_ca_file"):
        ctx.load_verify_locations(file("client_ca_file"))
    elif ctx.verify_mode == ssl.CERT_REQUIRED:
        raise ConfigError(f"{where}: client_auth_type {auth} needs client_ca_file")
    return ctx
