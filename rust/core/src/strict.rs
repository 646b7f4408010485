//! Strict paths for the usual layouts of the busiest kinds (RESULT, SRCH, BIND, the
//! connection lines, UNBIND, ADD, MOD, DEL): one left-to-right scan, no regex.
//!
//! A strict path either gives exactly the fields the general pattern gives, or
//! declines (None) and the general pattern runs. It declines at anything unusual:
//! a byte outside ASCII where the pattern has `\d` or `\S` (Unicode classes), a quote
//! or a key inside a value that the general pattern's lazy match could read
//! differently, any segment out of its usual order.

use crate::fields::{general, Fields, Kind, F, FIELD_COUNT};

struct Scan<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Scan<'a> {
    fn new(s: &'a str) -> Self {
        Scan { s, i: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.s[self.i..]
    }

    // always inlined: each call's literal is then a constant, compared in a few
    // instructions instead of a call to memcmp
    #[inline(always)]
    fn lit(&mut self, p: &str) -> Option<()> {
        self.rest().starts_with(p).then(|| self.i += p.len())
    }

    #[inline(always)]
    fn at(&self, p: &str) -> bool {
        self.rest().starts_with(p)
    }

    /// `[^"]*` and the closing quote (consumed, not returned).
    fn quoted(&mut self) -> Option<&'a str> {
        let end = memchr::memchr(b'"', self.rest().as_bytes())?;
        let v = &self.rest()[..end];
        self.i += end + 1;
        Some(v)
    }

    /// ASCII `\d+`.
    fn digits(&mut self) -> Option<&'a str> {
        self.run(|b| b.is_ascii_digit())
    }

    /// ASCII `\S+` (declines at non-ASCII bytes: `\S` is Unicode).
    fn token(&mut self) -> Option<&'a str> {
        self.run(|b| b.is_ascii_graphic())
    }

    fn run(&mut self, ok: impl Fn(u8) -> bool) -> Option<&'a str> {
        let b = self.rest().as_bytes();
        let n = b.iter().position(|c| !ok(*c)).unwrap_or(b.len());
        if n == 0 || b.get(n).is_some_and(|c| !c.is_ascii()) {
            return None;
        }
        let v = &self.rest()[..n];
        self.i += n;
        Some(v)
    }

    /// The body ends here: its newline and nothing after.
    fn end(&self) -> Option<()> {
        (self.rest() == "\n").then_some(())
    }
}

/// The fields of a body of the usual layout of its kind, into `f` (all None on entry);
/// false: take the general pattern (after clearing `f`).
pub fn strict<'a>(kind: Kind, body: &'a str, f: &mut Fields<'a>) -> bool {
    layout(kind, body, f).is_some()
}

/// A body's fields as the tokenizer reads them, into `f` (all None on entry): the strict
/// path where it takes the body (with `use_strict`), else the kind's general pattern.
/// Some(true): the strict path read them; Some(false): the general pattern; None:
/// neither matches (a malformed line).
#[inline]
pub fn read_fields<'a>(kind: Kind, body: &'a str, use_strict: bool, f: &mut Fields<'a>)
                       -> Option<bool> {
    if use_strict && strict(kind, body, f) {
        return Some(true);
    }
    *f = [None; FIELD_COUNT];
    general(kind, body, f).then_some(false)
}

fn layout<'a>(kind: Kind, body: &'a str, f: &mut Fields<'a>) -> Option<()> {
    let mut s = Scan::new(body);
    match kind {
        Kind::Result => result(&mut s, f)?,
        Kind::Srch => {
            s.lit("SRCH base=\"")?;
            f[F::Base as usize] = Some(s.quoted()?);
            s.lit(" scope=")?;
            f[F::Scope as usize] = Some(s.digits()?);
            s.lit(" filter=\"")?;
            f[F::Filter as usize] = Some(s.quoted()?);
            s.lit(" attrs=")?;
            if s.at("ALL") {
                f[F::AttrsAll as usize] = Some(&s.rest()[..3]);
                s.i += 3;
            } else {
                s.lit("\"")?;
                f[F::Attrs as usize] = Some(s.quoted()?);
            }
            if s.lit(" options=").is_some() {
                f[F::Options as usize] = Some(s.token()?);
            }
            s.end()?;
        }
        Kind::Bind => {
            s.lit("BIND dn=\"")?;
            f[F::Dn as usize] = Some(s.quoted()?);
            s.lit(" method=")?;
            f[F::Method as usize] = Some(s.token()?);
            s.lit(" version=")?;
            f[F::Version as usize] = Some(s.digits()?);
            if s.lit(" mech=").is_some() {
                f[F::Mech as usize] = Some(s.run(|b| b.is_ascii_graphic() && b != b',')?);
            }
            s.end()?;
        }
        Kind::Connect => {
            s.lit("fd=")?;
            f[F::Fd as usize] = Some(s.digits()?);
            s.lit(" slot=")?;
            s.digits()?;
            s.lit(" ")?;
            if s.at("SSL ") {
                f[F::Ssl as usize] = Some(&s.rest()[..4]);
                s.i += 4;
            }
            s.lit("connection from ")?;
            f[F::ClientIp as usize] = Some(s.token()?);
            s.lit(" to ")?;
            f[F::ServerIp as usize] = Some(s.token()?);
            s.end()?;
        }
        Kind::Close => {
            // "fd=N Disconnect - REASON - C9": the reason runs to the last " - "
            s.lit("fd=")?;
            f[F::Fd as usize] = Some(s.digits()?);
            s.lit(" Disconnect - ")?;
            let rest = s.rest().strip_suffix('\n')?;
            let b = rest.as_bytes();
            let n = b.len();
            if n < 5 || &b[n - 5..n - 2] != b" - " || !b[n - 2].is_ascii_uppercase()
                || !b[n - 1].is_ascii_digit()
            {
                return None;
            }
            f[F::CloseReason as usize] = Some(&rest[..n - 5]);
            f[F::CloseCode as usize] = Some(&rest[n - 2..]);
        }
        Kind::Unbind => (body == "UNBIND\n").then_some(())?,
        Kind::Add | Kind::Mod | Kind::Del | Kind::Cmp | Kind::Modrdn => {
            s.lit(match kind {
                Kind::Add => "ADD dn=\"",
                Kind::Mod => "MOD dn=\"",
                Kind::Del => "DEL dn=\"",
                Kind::Cmp => "CMP dn=\"",
                _ => "MODRDN dn=\"",
            })?;
            f[F::Dn as usize] = Some(s.quoted()?);
            if kind == Kind::Cmp {
                s.lit(" attr=\"")?;
                f[F::Attr as usize] = Some(s.quoted()?);
            } else if kind == Kind::Modrdn {
                s.lit(" newrdn=\"")?;
                f[F::Newrdn as usize] = Some(s.quoted()?);
                if s.lit(" newsuperior=\"").is_some() {
                    f[F::Newsuperior as usize] = Some(s.quoted()?);
                }
            }
            s.end()?;
        }
        Kind::Ext => {
            s.lit("EXT oid=\"")?;
            f[F::Oid as usize] = Some(s.quoted()?);
            if s.lit(" name=\"").is_some() {
                f[F::Name as usize] = Some(s.quoted()?);
            }
            s.end()?;
        }
        // `dn="(.*)"`: greedy, so the value runs to the line's last quote
        Kind::Entry | Kind::Autobind => {
            s.lit(if kind == Kind::Entry { "ENTRY dn=\"" } else { "AUTOBIND dn=\"" })?;
            f[F::Dn as usize] = Some(s.rest().strip_suffix("\"\n")?);
        }
        Kind::Abandon => {
            // targetop runs to the first " msgid=" (a lazy match)
            s.lit("ABANDON targetop=")?;
            let at = memchr::memmem::find(s.rest().as_bytes(), b" msgid=")?;
            f[F::Targetop as usize] = Some(&s.rest()[..at]);
            s.i += at + " msgid=".len();
            f[F::Msgid as usize] = Some(signed(&mut s)?);
            if s.lit(" nentries=").is_some() {
                f[F::Nentries as usize] = Some(s.digits()?);
            }
            if s.lit(" etime=").is_some() {
                f[F::Etime as usize] = Some(s.run(|b| b.is_ascii_digit() || b == b'.')?);
            }
            s.end()?;
        }
        // `(?P<text>.*?)\s*$`: the rest without trailing white space (ASCII only here)
        Kind::Vlv | Kind::Sort | Kind::Stat => {
            s.lit(match kind {
                Kind::Vlv => "VLV ",
                Kind::Sort => "SORT ",
                _ => "STAT ",
            })?;
            f[F::Text as usize] = Some(ascii_trimmed(s.rest())?);
        }
        Kind::Tls => {
            let text = ascii_trimmed(body)?;
            f[F::Text as usize] = Some(text);
            if text.starts_with("TLS") || text.starts_with("SSL") {
                let n = text[3..].bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
                f[F::TlsVersion as usize] = Some(&text[..3 + n]);
            }
            const BOUND: &str = " client bound as ";
            // found in the body, not the trimmed text: "... client bound as \n" binds ""
            if let Some(at) = memchr::memmem::find(body.as_bytes(), BOUND.as_bytes()) {
                f[F::Dn as usize] = Some(text.get(at + BOUND.len()..).unwrap_or(""));
            }
        }
        _ => return None,
    }
    Some(())
}

/// An ASCII text without its trailing white space (`\s` of the regex crate: with \x0B).
fn ascii_trimmed(text: &str) -> Option<&str> {
    if !text.is_ascii() {
        return None;
    }
    Some(text.trim_end_matches([' ', '\t', '\n', '\x0B', '\x0C', '\r']))
}

// Text inside a quoted value that the general RESULT segments would read as a key;
// every one starts with a space or a comma, so only those places are looked at.
const SUSPECT: [&str; 10] =
    [" notes=", " details=", " csn=", " pr_idx=", " pr_cookie=", " sid=\"", " - ",
     ", SASL bind in progress", " wbusy=", " wqdepth="];

fn suspect(value: &str) -> bool {
    memchr::memchr2_iter(b' ', b',', value.as_bytes())
        .any(|at| SUSPECT.iter().any(|k| value[at..].starts_with(k)))
}

/// `RESULT err= tag= nentries= wtime= optime= etime=` (1.4.3 to 3.x), then the usual
/// segments in their usual order: the worker pool (3.2.1+), notes, details, pr_idx and
/// pr_cookie, csn, dn.
fn result<'a>(s: &mut Scan<'a>, f: &mut Fields<'a>) -> Option<()> {
    s.lit("RESULT err=")?;
    f[F::Err as usize] = Some(s.digits()?);
    s.lit(" tag=")?;
    f[F::Tag as usize] = Some(s.digits()?);
    s.lit(" nentries=")?;
    f[F::Nentries as usize] = Some(s.digits()?);
    for (key, field) in [(" wtime=", F::Wtime), (" optime=", F::Optime), (" etime=", F::Etime)] {
        s.lit(key)?;
        f[field as usize] = Some(s.run(|b| b.is_ascii_digit() || b == b'.')?);
    }
    if s.lit(" wbusy=").is_some() {
        f[F::Wbusy as usize] = Some(s.digits()?);
        s.lit("/")?;
        f[F::Wmax as usize] = Some(s.digits()?);
        s.lit(" wqdepth=")?;
        f[F::Wqdepth as usize] = Some(s.digits()?);
    }
    if s.lit(" notes=").is_some() {
        // [A-Z](,[A-Z])*
        let b = s.rest().as_bytes();
        let mut n = 0;
        while b.get(n).is_some_and(u8::is_ascii_uppercase) {
            n += 1;
            if b.get(n) == Some(&b',') && b.get(n + 1).is_some_and(u8::is_ascii_uppercase) {
                n += 1;
            } else {
                break;
            }
        }
        if n == 0 {
            return None;
        }
        f[F::Notes as usize] = Some(&s.rest()[..n]);
        s.i += n;
    }
    if s.lit(" details=\"").is_some() {
        f[F::Details as usize] = Some(s.quoted()?);
    }
    if s.lit(" pr_idx=").is_some() {
        f[F::PrIdx as usize] = Some(signed(s)?);
        s.lit(" pr_cookie=")?;
        f[F::PrCookie as usize] = Some(signed(s)?);
    }
    if s.lit(" csn=").is_some() {
        f[F::Csn as usize] = Some(s.token()?);
    }
    if s.lit(" dn=\"").is_some() {
        f[F::Dn as usize] = Some(s.quoted()?);
    }
    s.end()?;
    for value in [f[F::Details as usize], f[F::Dn as usize]].into_iter().flatten() {
        if suspect(value) {
            return None;
        }
    }
    Some(())
}

fn signed<'a>(s: &mut Scan<'a>) -> Option<&'a str> {
    let start = s.i;
    s.lit("-");
    s.digits()?;
    Some(&s.s[start..s.i])
}
