"""Fingerprint rules, one named row each (pt-query-digest's style)."""

from __future__ import annotations

import hashlib

import pytest

from pipeline.fingerprint import fingerprint, fingerprint_id

FINGERPRINTS = [
    ("canonical example", "(&(objectClass=inetOrgPerson)(|(cn=ckerr)(uid=ckerr)(mail=ckerr)))",
     "(&(objectClass=inetOrgPerson)(|(cn=...)(uid=...)(mail=...)))"),
    ("equality value hidden", "(uid=jdoe)", "(uid=...)"),
    ("objectClass value kept, any case", "(objectclass=person)", "(objectclass=person)"),
    ("objectClass presence kept", "(objectClass=*)", "(objectClass=*)"),
    ("objectClass substring hidden", "(objectClass=per*)", "(objectClass=...*)"),
    ("approx", "(cn~=smith)", "(cn~=...)"),
    ("ordering", "(&(uidNumber>=1000)(uidNumber<=2000))", "(&(uidNumber>=...)(uidNumber<=...))"),
    ("presence kept", "(telephonenumber=*)", "(telephonenumber=*)"),
    ("initial substring", "(cn=jo*)", "(cn=...*)"),
    ("any substring", "(description=*foo*)", "(description=*...*)"),
    ("final substring", "(mail=*@example.com)", "(mail=*...)"),
    ("initial-any-final", "(cn=a*b*c)", "(cn=...*...*...)"),
    ("extensible with rule", "(sn:caseExactMatch:=clark)", "(sn:caseExactMatch:=...)"),
    ("extensible dn and rule", "(ou:dn:2.5.13.5:=x)", "(ou:dn:2.5.13.5:=...)"),
    ("extensible rule only", "(:caseExactMatch:=x)", "(:caseExactMatch:=...)"),
    ("not", "(!(uid=a))", "(!(uid=...))"),
    ("escapes are one value", r"(cn=a\28b\29\2a)", "(cn=...)"),
    ("options kept", "(cn;lang-fr=jean)", "(cn;lang-fr=...)"),
    ("repeats collapse", "(|(uid=a)(uid=b)(uid=c))", "(|(uid=...)+)"),
    ("two repeats collapse", "(|(member=a)(member=b))", "(|(member=...)+)"),
    ("non-consecutive repeats kept", "(|(uid=a)(cn=b)(uid=c))", "(|(uid=...)(cn=...)(uid=...))"),
    ("nested repeats collapse", "(&(objectClass=groupOfNames)(|(member=a)(member=b)(member=c)))",
     "(&(objectClass=groupOfNames)(|(member=...)+))"),
    ("operand order kept by default", "(&(uid=a)(cn=b))", "(&(uid=...)(cn=...))"),
    ("missing outer parens tolerated", "objectclass=vlvsearch", "(objectclass=vlvsearch)"),
    ("internal nested from real log", "(&(&(objectClass=nsMappingTree))(|(cn=dc=example,dc=com)"
     "(nsslapd-backend=dc=example,dc=com)))",
     "(&(&(objectClass=nsMappingTree))(|(cn=...)(nsslapd-backend=...)))"),
    ("malformed", "(uid=a", "<unparsed:expected ')'>"),
    ("garbage", "((", "<unparsed:expected an attribute description>"),
    ("empty", "", "<unparsed:expected '('>"),
    ("cut by the server", "(|" + "(uid=user0001)" * 40 + "...", "<unparsed:truncated>"),
]


@pytest.mark.parametrize("description,text,expected", FINGERPRINTS,
                         ids=[c[0] for c in FINGERPRINTS])
def test_fingerprint(description: str, text: str, expected: str) -> None:
    assert fingerprint(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("(&(uid=a)(cn=b))", "(&(cn=...)(uid=...))"),
    ("(&(CN=b)(uid=a))", "(&(cn=...)(uid=...))"),
    ("(|(uid=a)(cn=b)(uid=c))", "(|(cn=...)(uid=...)+)"),
], ids=["reordered", "case folded", "sorted then collapsed"])
def test_sort_operands(text: str, expected: str) -> None:
    assert fingerprint(text, sort_operands=True) == expected


def test_same_shape_same_id_and_ids_are_stable() -> None:
    assert fingerprint("(uid=a)") == fingerprint("(uid=zzz)")
    # the same on every machine: BLAKE2b of the fingerprint in lower case (its comparison
    # form: LDAP names compare without case) in 8 bytes, computed here apart
    for shape in ("(uid=...)", "sub (&(objectClass=person)(cn=...*))", "<unparsed:missing>",
                  "É"):
        form = shape.lower()
        assert fingerprint_id(shape) == hashlib.blake2b(form.encode(), digest_size=8).hexdigest()
    assert fingerprint_id("(objectClass=Person)") == fingerprint_id("(objectclass=person)")
    assert fingerprint("(cn=x)", scope=0) != fingerprint("(cn=x)", scope=2)


IDENTITY = [
    "(&(objectClass=person)(|(cn=jo*)(!(uid=x))))",
    r"(cn=a\28b\29)",
    "(sn:dn:caseExactMatch:=Clark)",
    "(cn=*a*b*)",
    "(&)",
    "(cn;lang-fr~=x)",
]


def test_a_filter_that_does_not_parse_says_why_and_has_no_advice() -> None:
    assert fingerprint("(&(uid=a)(cn=b)") == "<unparsed:expected ')'>"


def test_deep_nesting_is_refused_not_a_crash() -> None:
    assert fingerprint("(!" * 5000 + "(a=b)" + ")" * 5000).startswith("<unparsed:")
