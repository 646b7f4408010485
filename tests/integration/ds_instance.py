#!/usr/bin/python3
"""Create or remove a 389 DS instance through lib389, with no systemd (Debian's python3).

lib389 asks systemd to start ns-slapd whenever the package was built with
systemd support; on a machine whose PID 1 is not systemd that fails. Here
``DirSrv.with_systemd`` is forced off, so lib389 runs ns-slapd itself, and the
listen addresses are written into dse.ldif before the first start, so the
server never listens beyond 127.0.0.1. TZ is passed through to ns-slapd, so
each instance logs in its own time zone.

    /usr/bin/python3 ds_instance.py create INF
    /usr/bin/python3 ds_instance.py remove NAME
"""

import logging
import os
import subprocess
import sys

import lib389
from lib389 import DirSrv
from lib389.instance.remove import remove_ds_instance
from lib389.instance.setup import SetupDs

LISTEN = "127.0.0.1"


class _KeepTZ:
    """lib389 starts ns-slapd with a clean environment: keep TZ in it."""

    def __getattr__(self, name):
        return getattr(subprocess, name)

    @staticmethod
    def check_output(*args, **kwargs):
        env = kwargs.get("env")
        if env is not None and "TZ" in os.environ:
            kwargs["env"] = dict(env, TZ=os.environ["TZ"])
        return subprocess.check_output(*args, **kwargs)


lib389.subprocess = _KeepTZ()
DirSrv.with_systemd = lambda self: False
_start = DirSrv.start


def _start_on_loopback(self, *args, **kwargs):
    dse = os.path.join(self.ds_paths.config_dir, "dse.ldif")
    if os.path.exists(dse):
        with open(dse) as fh:
            text = fh.read()
        if "nsslapd-listenhost:" not in text:
            pin = f"nsslapd-listenhost: {LISTEN}\nnsslapd-securelistenhost: {LISTEN}\n"
            head = "dn: cn=config\n"
            if not text.startswith(head):
                raise RuntimeError(f"cn=config is not the first entry of {dse}")
            with open(dse, "w") as fh:
                fh.write(head + pin + text[len(head):])
    return _start(self, *args, **kwargs)


DirSrv.start = _start_on_loopback


def main():
    logging.basicConfig(level=logging.WARNING)
    command, arg = sys.argv[1], sys.argv[2]
    if command == "create":
        ok = SetupDs(False, False, logging.getLogger("ds")).create_from_inf(arg)
        return 0 if ok else 1
    inst = DirSrv(verbose=False)
    inst.local_simple_allocate(serverid=arg)
    if os.path.exists(os.path.join(inst.ds_paths.config_dir, "dse.ldif")):
        remove_ds_instance(inst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
