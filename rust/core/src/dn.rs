//! Distinguished names as LDAP compares them (RFC 4514/4517), for grouping identities.
//!
//! 389 DS logs a DN as the client spelled it, so `cn=Directory Manager` and
//! `cn=directory manager` are one identity written twice. Aggregates group by the
//! comparison form and show the most frequent spelling. Attribute types are
//! case-insensitive; the values of the naming attributes in use (cn, uid, ou, dc, o...)
//! match with caseIgnoreMatch, so folding the whole DN is what the server does for them.

/// The comparison form: case folded, no insignificant spaces around `,` `+` `=`; an
/// escaped character (`\,`, `\ `) is part of its value.
///
/// ```
/// use dsaccess_core::dn::canonical;
/// assert_eq!(canonical(" uid = Alice , ou=People,dc=Example "), "uid=alice,ou=people,dc=example");
/// assert_eq!(canonical(r"cn=a\, b ,dc=x"), r"cn=a\, b,dc=x");
/// assert_eq!(canonical(r"cn=a\ ,dc=x"), r"cn=a\ ,dc=x");
/// ```
pub fn canonical(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    let mut token = String::new();
    let mut escaped = false;
    for ch in dn.chars() {
        if escaped {
            token.push(ch);
            escaped = false;
        } else if ch == '\\' {
            token.push(ch);
            escaped = true;
        } else if matches!(ch, ',' | '+' | '=') {
            push_stripped(&mut out, &token);
            out.push(ch);
            token.clear();
        } else {
            token.push(ch);
        }
    }
    push_stripped(&mut out, &token);
    out.to_lowercase()
}

fn push_stripped(out: &mut String, token: &str) {
    let kept = token.trim_matches(' ');
    out.push_str(kept);
    // an odd run of backslashes at the end escapes the space that trimming took
    if (kept.len() - kept.trim_end_matches('\\').len()) % 2 == 1 {
        out.push(' ');
    }
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn folds_case_and_insignificant_spaces() {
        assert_eq!(canonical("CN=Directory Manager"), "cn=directory manager");
        assert_eq!(canonical(""), "");
        assert_eq!(canonical("cn=a+sn=B , o=X"), "cn=a+sn=b,o=x");
    }

    #[test]
    fn keeps_escaped_separators_and_spaces() {
        assert_eq!(canonical(r"cn=a\,b"), r"cn=a\,b");
        assert_eq!(canonical(r"cn=a\\ ,o=x"), r"cn=a\\,o=x"); // an escaped backslash, then a space
        assert_eq!(canonical(r"cn=a\  ,o=x"), r"cn=a\ ,o=x");
    }
}
