#!/usr/bin/python3
"""The integration workload (Debian's python3 + python-ldap), and its own record.

    workload.py setup --ldapi SOCKET
    workload.py mixed --port PORT --sessions N --seed S --record FILE

`setup` adds users, service accounts and an ACI as cn=Directory Manager over
LDAPI. `mixed` runs a seeded sequence of sessions (service accounts, users
logging in with good and bad passwords, unknown users, anonymous readers,
paged readers, a writer, a connection that rebinds) and writes what it sent,
as which identity, to FILE (merged with what FILE already holds). The
identity of an operation is the bind DN in force when it was sent; a BIND
carries the identity it established ("" when it failed).
"""

import argparse
import json
import os
import random
from collections import Counter

import ldap
import ldap.sasl
from ldap.controls import SimplePagedResultsControl

SUFFIX = "dc=example,dc=com"
PEOPLE = f"ou=people,{SUFFIX}"
SERVICES = f"ou=services,{SUFFIX}"
USERS = 60
PASSWORD = "user-Secret-1"
SVC = {"app": f"uid=svc-app,{SERVICES}", "sync": f"uid=svc-sync,{SERVICES}"}


def user(i):
    return f"uid=user{i:04d},{PEOPLE}"


def setup(socket):
    conn = ldap.initialize("ldapi://" + socket.replace("/", "%2f"))
    conn.sasl_non_interactive_bind_s("EXTERNAL")
    entries = [
        (PEOPLE, {"objectClass": [b"top", b"organizationalUnit"], "ou": [b"people"],
                  "aci": [f'(targetattr="description")(version 3.0; acl "sync writes"; allow '
                          f'(write) userdn="ldap:///{SVC["sync"]}";)'.encode(),
                          b'(targetattr="cn || sn || uid || mail || description || objectClass")'
                          b'(version 3.0; acl "read"; allow (read, search, compare) '
                          b'userdn="ldap:///anyone";)']}),
        (SERVICES, {"objectClass": [b"top", b"organizationalUnit"], "ou": [b"services"]}),
    ]
    for name, dn in SVC.items():
        entries.append((dn, {"objectClass": [b"top", b"account", b"simpleSecurityObject"],
                             "uid": [f"svc-{name}".encode()],
                             "userPassword": [PASSWORD.encode()]}))
    for i in range(1, USERS + 1):
        entries.append((user(i), {
            "objectClass": [b"top", b"person", b"organizationalPerson", b"inetOrgPerson"],
            "uid": [f"user{i:04d}".encode()], "cn": [f"User {i}".encode()],
            "sn": [f"Sn{i}".encode()], "mail": [f"user{i:04d}@example.com".encode()],
            "description": [f"team-{i % 5}".encode()], "userPassword": [PASSWORD.encode()]}))
    for dn, attrs in entries:
        try:
            conn.add_s(dn, list(attrs.items()))
        except ldap.ALREADY_EXISTS:
            pass
    conn.unbind_s()


class Session:
    def __init__(self, port, record):
        self.conn = ldap.initialize(f"ldap://127.0.0.1:{port}")
        self.conn.protocol_version = 3
        self.conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 10)
        self.identity = ""
        self.record = record
        record["connections"] += 1

    def op(self, verb, identity=None):
        who = self.identity if identity is None else identity
        self.record["ops"][f"{who}|{verb}"] += 1

    def bind(self, dn, password):
        try:
            self.conn.simple_bind_s(dn, password)
            self.identity = dn
        except ldap.INVALID_CREDENTIALS:
            self.identity = ""
            self.record["failed_binds"] += 1
        self.op("BIND")

    def search(self, base, scope, filt, attrs=("cn",)):
        self.op("SRCH")
        try:
            return self.conn.search_s(base, scope, filt, list(attrs))
        except ldap.NO_SUCH_OBJECT:
            return []

    def paged(self, filt, size=10):
        control = SimplePagedResultsControl(True, size=size, cookie="")
        while True:
            self.op("SRCH")
            msgid = self.conn.search_ext(PEOPLE, ldap.SCOPE_SUBTREE, filt, ["cn"],
                                         serverctrls=[control])
            _, _, _, controls = self.conn.result3(msgid)
            cookie = next((c.cookie for c in controls
                           if c.controlType == SimplePagedResultsControl.controlType), b"")
            if not cookie:
                return
            control.cookie = cookie

    def modify(self, dn, value):
        self.op("MOD")
        self.conn.modify_s(dn, [(ldap.MOD_REPLACE, "description", [value.encode()])])

    def close(self):
        self.op("UNBIND")
        self.conn.unbind_s()


def mixed(port, sessions, seed, record):
    rng = random.Random(seed)
    for _ in range(sessions):
        kind = rng.choice(["app", "app", "login", "login", "badlogin", "nosuch", "anon",
                           "paged", "writer", "rebind"])
        s = Session(port, record)
        i = rng.randint(1, USERS)
        if kind == "app":
            s.bind(SVC["app"], PASSWORD)
            for _ in range(rng.randint(3, 12)):
                s.search(PEOPLE, ldap.SCOPE_SUBTREE, f"(uid=user{rng.randint(1, USERS):04d})")
        elif kind == "login":
            s.bind(user(i), PASSWORD)
            s.search(user(i), ldap.SCOPE_BASE, "(objectClass=*)", ("mail",))
        elif kind == "badlogin":
            s.bind(user(i), "wrong-password")
        elif kind == "nosuch":
            s.bind(f"uid=nosuchuser,{PEOPLE}", PASSWORD)
        elif kind == "anon":
            s.search(PEOPLE, ldap.SCOPE_SUBTREE, f"(description=*am-{rng.randint(0, 4)}*)")
        elif kind == "paged":
            s.bind(SVC["app"], PASSWORD)
            s.paged("(objectClass=inetOrgPerson)", size=rng.choice([10, 25]))
        elif kind == "writer":
            s.bind(SVC["sync"], PASSWORD)
            for _ in range(rng.randint(1, 4)):
                s.modify(user(rng.randint(1, USERS)), f"team-{rng.randint(0, 4)}")
        else:  # one connection, three identities
            s.bind(SVC["app"], PASSWORD)
            s.search(PEOPLE, ldap.SCOPE_SUBTREE, f"(uid=user{i:04d})")
            s.bind(user(i), PASSWORD)
            s.search(user(i), ldap.SCOPE_BASE, "(objectClass=*)")
            s.bind(user(i), "wrong-password")
            s.search(PEOPLE, ldap.SCOPE_ONELEVEL, "(cn=User 1*)")
        s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["setup", "mixed"])
    ap.add_argument("--ldapi")
    ap.add_argument("--port", type=int)
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--record")
    args = ap.parse_args()
    if args.phase == "setup":
        setup(args.ldapi)
        return
    record = {"connections": 0, "failed_binds": 0, "ops": Counter()}
    if args.record and os.path.exists(args.record):
        with open(args.record) as fh:
            old = json.load(fh)
        record.update(connections=old["connections"], failed_binds=old["failed_binds"],
                      ops=Counter(old["ops"]))
    mixed(args.port, args.sessions, args.seed, record)
    with open(args.record, "w") as fh:
        json.dump({**record, "ops": dict(record["ops"])}, fh, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
