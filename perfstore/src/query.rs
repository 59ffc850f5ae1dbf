//! The storage query language: `key:value`, `key<value`, `key>value`, all ANDed.
//!
//! A query is split into words like a shell does (quotes, backslashes), each word is a term
//! `key OP value`, and terms on the same key are merged into one constraint, exactly as
//! upstream's `perfdata/db` does, including its error messages. There is no OR, negation
//! or wildcard. Comparisons are byte-wise string comparisons (`label1>510 label1<52`
//! matches `511`).
//!
//! **Beyond upstream**: the key `upload` compares upload IDs *numerically*, component by
//! component (see [`compare_upload_ids`]). Upstream compares the ID strings, so
//! `upload>20170101.9` does not match `20170101.10` although `.10` is the later upload;
//! here it does.
//!
//! ```
//! use perfstore::query::{Query, Constraint};
//!
//! let q = Query::parse(r#"goos:linux "pkg:golang.org/x/perf storage" ns>1"#).unwrap();
//! assert_eq!(q.terms().len(), 3);
//! assert_eq!(q.terms()[2].constraint, Constraint::Eq("golang.org/x/perf storage".into()));
//! assert!(Query::parse("a:1 a:2").unwrap().never_matches());
//! assert_eq!(Query::parse("GOOS:linux").unwrap_err().to_string(),
//!            r#"query part "GOOS:linux" has invalid key"#);
//! ```

use std::cmp::Ordering;

/// Splits a query into words: blanks (space, tab) separate words; `"` quotes; `\x` is `x`
/// inside and outside quotes; quoted sections concatenate with their neighbours; empty words
/// are dropped.
pub fn split_words(q: &str) -> Vec<String> {
    split(q).0
}

/// [`split_words`], and whether a quote was left open at the end.
fn split(q: &str) -> (Vec<String>, bool) {
    let q = q.as_bytes();
    let mut words = Vec::new();
    let mut word = Vec::with_capacity(q.len());
    let mut quoting = false;
    let mut i = 0;
    while i < q.len() {
        let c = q[i];
        if quoting {
            if c == b'"' {
                quoting = false;
            } else {
                if c == b'\\' {
                    i += 1;
                }
                if let Some(&c) = q.get(i) {
                    word.push(c);
                }
            }
        } else {
            match c {
                b'"' => quoting = true,
                b' ' | b'\t' => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                }
                _ => {
                    if c == b'\\' {
                        i += 1;
                    }
                    if let Some(&c) = q.get(i) {
                        word.push(c);
                    }
                }
            }
        }
        i += 1;
    }
    if !word.is_empty() {
        words.push(word);
    }
    // Splitting happens on ASCII bytes only, and a backslash may only drop an ASCII byte or
    // split a multi-byte rune: repair the latter losslessly enough for keys and values.
    let words = words
        .into_iter()
        .map(|w| {
            String::from_utf8(w)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
        })
        .collect();
    (words, quoting)
}

/// A query that is not valid, with upstream's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// A word without `:`, `<` or `>`.
    #[error("query part {0:?} is missing operator")]
    MissingOperator(String),
    /// A word whose key holds a space or an upper-case letter.
    #[error("query part {0:?} has invalid key")]
    InvalidKey(String),
    /// `key:` with an empty value (upstream cannot search for a missing label).
    #[error("missing value for key {0:?}")]
    MissingValue(String),
    /// A `"` that is never closed (upstream quietly searches for what precedes it, which
    /// for `q="` is everything).
    #[error("unterminated quote in query {0:?}")]
    UnterminatedQuote(String),
}

impl QueryError {
    /// The word or key the error is about.
    pub fn term(&self) -> &str {
        match self {
            QueryError::MissingOperator(w)
            | QueryError::InvalidKey(w)
            | QueryError::MissingValue(w)
            | QueryError::UnterminatedQuote(w) => w,
        }
    }
}

/// One merged constraint on a key's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    /// Equal to the value.
    Eq(String),
    /// Less than the value.
    Lt(String),
    /// Greater than the value (`k>` with an empty value: the label exists).
    Gt(String),
    /// Strictly between `lower` and `upper`.
    Range {
        /// Exclusive lower bound.
        lower: String,
        /// Exclusive upper bound.
        upper: String,
    },
}

impl Constraint {
    /// Whether `value` satisfies the constraint under `cmp`.
    pub fn matches_by(&self, value: &str, cmp: impl Fn(&str, &str) -> Ordering) -> bool {
        match self {
            Constraint::Eq(v) => cmp(value, v) == Ordering::Equal,
            Constraint::Lt(v) => cmp(value, v) == Ordering::Less,
            Constraint::Gt(v) => cmp(value, v) == Ordering::Greater,
            Constraint::Range { lower, upper } => {
                cmp(value, lower) == Ordering::Greater && cmp(value, upper) == Ordering::Less
            }
        }
    }
}

/// One term of a parsed query: a key and its merged constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The key (never holds upper case or spaces; may be empty).
    pub key: String,
    /// What the key's value must satisfy.
    pub constraint: Constraint,
}

/// A parsed query: terms sorted by key, or a query that can never match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Query {
    terms: Vec<Term>,
    never: bool,
}

/// Parses one word into a term.
fn parse_word(word: &str) -> Result<Term, QueryError> {
    let Some((i, c)) = word
        .char_indices()
        .find(|&(_, c)| matches!(c, ':' | '<' | '>') || c.is_whitespace() || c.is_uppercase())
    else {
        return Err(QueryError::MissingOperator(word.to_string()));
    };
    let value = word[i + c.len_utf8()..].to_string();
    let constraint = match c {
        ':' => Constraint::Eq(value),
        '<' => Constraint::Lt(value),
        '>' => Constraint::Gt(value),
        _ => return Err(QueryError::InvalidKey(word.to_string())),
    };
    Ok(Term {
        key: word[..i].to_string(),
        constraint,
    })
}

/// Merges two constraints on one key under the key's ordering; `None` means the pair can
/// never match.
fn merge(a: Constraint, b: Constraint, cmp: fn(&str, &str) -> Ordering) -> Option<Constraint> {
    use Constraint::*;
    let lt = |x: &str, y: &str| cmp(x, y) == Ordering::Less;
    let min = |x: String, y: String| if lt(&y, &x) { y } else { x };
    let max = |x: String, y: String| if lt(&x, &y) { y } else { x };
    let (lower, upper) = match (a, b) {
        (Eq(x), Eq(y)) => return (cmp(&x, &y) == Ordering::Equal).then_some(Eq(x)),
        (Eq(x), Lt(y)) | (Lt(y), Eq(x)) => return lt(&x, &y).then_some(Eq(x)),
        (Eq(x), Gt(y)) | (Gt(y), Eq(x)) => return lt(&y, &x).then_some(Eq(x)),
        (Eq(x), Range { lower, upper }) | (Range { lower, upper }, Eq(x)) => {
            return (lt(&x, &upper) && lt(&lower, &x)).then_some(Eq(x));
        }
        (Lt(x), Lt(y)) => return Some(Lt(min(x, y))),
        (Gt(x), Gt(y)) => return Some(Gt(max(x, y))),
        (Lt(upper), Gt(lower)) | (Gt(lower), Lt(upper)) => (lower, upper),
        (Range { lower, upper }, Lt(y)) | (Lt(y), Range { lower, upper }) => (lower, min(upper, y)),
        (Range { lower, upper }, Gt(y)) | (Gt(y), Range { lower, upper }) => (max(lower, y), upper),
        (
            Range {
                lower: l1,
                upper: u1,
            },
            Range {
                lower: l2,
                upper: u2,
            },
        ) => (max(l1, l2), min(u1, u2)),
    };
    if !lt(&lower, &upper) || upper.is_empty() {
        return None;
    }
    if lower.is_empty() {
        return Some(Lt(upper));
    }
    Some(Range { lower, upper })
}

/// The ordering of a key's values: numeric for `upload`, byte-wise for labels.
fn ordering_of(key: &str) -> fn(&str, &str) -> Ordering {
    if key == UPLOAD_KEY {
        compare_upload_ids
    } else {
        |a: &str, b: &str| a.as_bytes().cmp(b.as_bytes())
    }
}

impl Query {
    /// Parses a query. Errors are upstream's, in upstream's order: the first bad word, else
    /// (after merging) the first key, in sorted order, with an empty `:` value. A query whose
    /// terms contradict each other is not an error: it [never matches](Query::never_matches).
    pub fn parse(q: &str) -> Result<Query, QueryError> {
        let (words, unterminated) = split(q);
        if unterminated {
            return Err(QueryError::UnterminatedQuote(q.to_owned()));
        }
        let mut terms: Vec<Term> = Vec::new();
        for word in words {
            let term = parse_word(&word)?;
            match terms.iter_mut().find(|t| t.key == term.key) {
                Some(existing) => {
                    let a = existing.constraint.clone();
                    match merge(a, term.constraint, ordering_of(&term.key)) {
                        Some(c) => existing.constraint = c,
                        None => {
                            return Ok(Query {
                                terms: Vec::new(),
                                never: true,
                            });
                        }
                    }
                }
                None => terms.push(term),
            }
        }
        terms.sort_by(|a, b| a.key.cmp(&b.key));
        // `key>` and `key<` with nothing after them stay valid, as upstream: `k>`
        // compares with the empty string, so it matches every record that has `k`.
        for t in &terms {
            if t.key != UPLOAD_KEY && t.constraint == Constraint::Eq(String::new()) {
                return Err(QueryError::MissingValue(t.key.clone()));
            }
        }
        Ok(Query {
            terms,
            never: false,
        })
    }

    /// The terms, sorted by key, one per key.
    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    /// True if the terms contradict each other (`a:1 a:2`): nothing can match.
    pub fn never_matches(&self) -> bool {
        self.never
    }

    /// True if the query has no terms: everything matches.
    pub fn is_empty(&self) -> bool {
        !self.never && self.terms.is_empty()
    }
}

/// The key that constrains the upload ID instead of a label.
pub const UPLOAD_KEY: &str = "upload";

/// Orders upload IDs numerically: the IDs are split on `.` and compared component by
/// component, numerically when both components are decimal digits, byte-wise otherwise; a
/// prefix sorts first. So `20170101.9 < 20170101.10` and `2017 < 20170101.1`.
pub fn compare_upload_ids(a: &str, b: &str) -> Ordering {
    let mut xs = a.split('.');
    let mut ys = b.split('.');
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let numeric = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
                let o = if numeric(x) && numeric(y) {
                    let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                    x.len().cmp(&y.len()).then_with(|| x.cmp(y))
                } else {
                    x.cmp(y)
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Constraint::*;

    fn one(q: &str) -> Constraint {
        let q = Query::parse(q).unwrap();
        assert_eq!(q.terms().len(), 1, "{q:?}");
        q.terms()[0].constraint.clone()
    }

    #[test]
    fn words_split_like_upstream() {
        // Conformance cases 40 and 41.
        assert_eq!(
            split_words(r#""key:value two" and\ more"#),
            ["key:value two", "and more"]
        );
        assert_eq!(
            split_words(r#"one" two"\ three four"#),
            ["one two three", "four"]
        );
        assert_eq!(split_words(r#""4'7\"""#), [r#"4'7""#]);
        assert_eq!(
            split_words(r#""pkg:golang.org/x/perf storage""#),
            ["pkg:golang.org/x/perf storage"]
        );
        assert_eq!(split_words(r"pkg:a\ b"), ["pkg:a b"]);
        assert_eq!(split_words("a\\"), ["a"]);
        assert_eq!(split_words(r#""" x "unterminated"#), ["x", "unterminated"]);
        assert_eq!(split_words("a\nb\tc"), ["a\nb", "c"]);
    }

    #[test]
    fn errors_name_the_term() {
        // Conformance cases 34, 35.
        let e = |q: &str| Query::parse(q).unwrap_err().to_string();
        assert_eq!(e("bogus"), r#"query part "bogus" is missing operator"#);
        assert_eq!(
            e("GOOS:linux"),
            r#"query part "GOOS:linux" has invalid key"#
        );
        assert_eq!(e("a:1 OR a:2"), r#"query part "OR" has invalid key"#);
        assert_eq!(e("k:"), r#"missing value for key "k""#);
        // Upstream searches for what precedes an unclosed quote; for `q="` that is
        // everything. We refuse it.
        assert_eq!(e("\""), r#"unterminated quote in query "\"""#);
        assert_eq!(
            e(r#"pkg:"a b"#),
            r#"unterminated quote in query "pkg:\"a b""#
        );
        assert!(Query::parse(r#"pkg:"a b" x:\""#).is_ok());
        assert_eq!(one("k>"), Gt(String::new()));
        assert_eq!(one(":x"), Eq("x".into()));
        assert_eq!(one("upload:"), Eq(String::new()));
        // The merge's contradiction wins over later bad words, as upstream.
        assert!(Query::parse("a:1 a:2 BAD").unwrap().never_matches());
    }

    #[test]
    fn merging() {
        // Conformance cases 36 to 38.
        assert!(Query::parse("label0:0 label0:5").unwrap().never_matches());
        assert_eq!(one("label0:1 label0:1 label0<2 label0>0"), Eq("1".into()));
        assert_eq!(one("label0<2 label0<1"), Lt("1".into()));
        assert_eq!(one("k>1 k>3"), Gt("3".into()));
        assert_eq!(
            one("label1>510 label1<52"),
            Range {
                lower: "510".into(),
                upper: "52".into()
            }
        );
        assert!(one("label1>510 label1<52").matches_by("511", ordering_of("label1")));
        assert_eq!(one("k> k<5"), Lt("5".into()));
        assert!(Query::parse("k>5 k<5").unwrap().never_matches());
        assert!(Query::parse("k>5 k<").unwrap().never_matches());
        assert_eq!(
            one("k>1 k<9 k>2 k<8"),
            Range {
                lower: "2".into(),
                upper: "8".into()
            }
        );
        assert_eq!(one("k>1 k<9 k:5"), Eq("5".into()));
        assert!(Query::parse("k>1 k<9 k:95").unwrap().never_matches());
        assert!(Query::parse(" ").unwrap().is_empty());
    }

    #[test]
    fn upload_ids_compare_numerically() {
        assert_eq!(
            compare_upload_ids("20170101.10", "20170101.9"),
            Ordering::Greater
        );
        assert_eq!(compare_upload_ids("2017", "20170101.1"), Ordering::Less);
        assert_eq!(
            compare_upload_ids("20170102.1", "20170101.99"),
            Ordering::Greater
        );
        assert_eq!(compare_upload_ids("x", "x"), Ordering::Equal);
        assert!(one("upload>20170101.9").matches_by("20170101.10", compare_upload_ids));
    }
}
