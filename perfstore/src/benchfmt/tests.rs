//! The spec's reader conformance cases for reader N, and property tests for both readers.

use proptest::prelude::*;

use super::*;

/// A value as `(value, unit, (original value, original unit))`.
type Measured = (f64, String, Option<(f64, String)>);

/// Reads everything: results as `(name, iters, values)`, errors as strings.
#[derive(Debug, PartialEq)]
enum Out {
    R(String, i64, Vec<Measured>),
    Meta(String, String, String),
    Err(String),
}

fn read_n(input: &[u8]) -> Vec<Out> {
    let mut r = Reader::new(input);
    let mut out = Vec::new();
    while let Some(rec) = r.next_record() {
        out.push(match rec {
            Err(e) => Out::Err(format!("fatal {e}")),
            Ok(Record::Result(r)) => Out::R(
                String::from_utf8_lossy(&r.name).into(),
                r.iters,
                r.values
                    .iter()
                    .map(|v| {
                        (
                            v.value,
                            String::from_utf8_lossy(&v.unit).into(),
                            v.orig_unit
                                .as_ref()
                                .map(|u| (v.orig_value, String::from_utf8_lossy(u).into())),
                        )
                    })
                    .collect(),
            ),
            Ok(Record::UnitMetadata(m)) => Out::Meta(
                String::from_utf8_lossy(&m.unit).into(),
                String::from_utf8_lossy(&m.key).into(),
                String::from_utf8_lossy(&m.value).into(),
            ),
            Ok(Record::SyntaxError(e)) => Out::Err(e.to_string()),
        });
    }
    out
}

fn err(line: usize, msg: &str) -> Out {
    Out::Err(format!("<unknown>:{line}: {msg}"))
}

/// A line's result never depends on the lines before it, whichever of the reader's paths
/// reads it: mapped, of a learned shape, or general (here after the unit hints changed
/// under a learned shape, which must then be forgotten).
#[test]
fn results_do_not_depend_on_earlier_lines() {
    let lines: &[&[u8]] = &[
        b"BenchmarkFoo 10 100 ns/op",
        b"BenchmarkFoo 10 200 ns/op",
        b"BenchmarkBar 10 300 ns/op",
        b"BenchmarkFoo 10 100 B/op",
        b"BenchmarkFoo 10 400 ns/op",
        b"BenchmarkFoo 10 500 ns/op",
        b"BenchmarkFoo 10 0.5 ns/op",
        b"BenchmarkFoo 10 600 ns/op 7 B/op",
        b"BenchmarkFoo 10 700 ns/op",
        b"BenchmarkFoo 10 800 ns/op",
    ];
    let input: Vec<u8> = lines.iter().flat_map(|l| [*l, b"\n"].concat()).collect();
    let alone: Vec<Out> = lines.iter().flat_map(|l| read_n(l)).collect();
    assert_eq!(read_n(&input), alone);
}

#[test]
fn case_7_full_line() {
    let mut r = Reader::new(&b"BenchmarkFoo-8  1000  1234 ns/op  16 B/op  1 allocs/op\n"[..]);
    let Some(Ok(Record::Result(res))) = r.next_record() else {
        panic!("no result")
    };
    assert_eq!(res.name, b"Foo-8");
    assert_eq!(res.base_name(), b"Foo");
    assert_eq!(res.name_key(b"gomaxprocs"), Some(&b"8"[..]));
    assert_eq!(res.iters, 1000);
    assert_eq!(res.values[0].value, 1234.0 * 1e-9);
    assert_eq!(&*res.values[0].unit, b"sec/op");
    assert_eq!(res.values[0].orig_value, 1234.0);
    assert_eq!(res.values[0].orig_unit.as_deref(), Some(&b"ns/op"[..]));
    assert_eq!(&*res.values[1].unit, b"B/op");
    assert_eq!(&*res.values[2].unit, b"allocs/op");
}

#[test]
fn cases_8_and_10_names() {
    let mut r =
        Reader::new(&b"BenchmarkEncode/format=json-48 1 1 ns/op\nBenchmarkFoo-+4 1 1 ns/op\n"[..]);
    let Some(Ok(Record::Result(res))) = r.next_record() else {
        panic!()
    };
    assert_eq!(res.name_key(b"format"), Some(&b"json"[..]));
    assert_eq!(res.base_name(), b"Encode");
    let Some(Ok(Record::Result(res))) = r.next_record() else {
        panic!()
    };
    assert_eq!(res.name_key(b"gomaxprocs"), None);
    assert_eq!(res.base_name(), b"Foo-+4");
}

#[test]
fn cases_11_to_16_benchmark_line_errors() {
    let out = read_n(
        b"BenchmarkFoo\nBenchmarkFoo \nBenchmarkFoo abc 1 ns/op\n\
          BenchmarkFoo 9999999999999999999999999999999 1 ns/op\nBenchmarkFoo 100\n\
          BenchmarkFoo 100 1 ns/op 2\nBenchmarkFoo 100 x ns/op\nBenchmarkFoo 1 0 ns/op\n",
    );
    assert_eq!(
        out,
        vec![
            err(2, "missing iteration count"),
            err(3, "parsing iteration count: invalid syntax"),
            err(4, "parsing iteration count: value out of range"),
            err(5, "missing measurements"),
            err(6, "missing units"),
            err(7, "parsing measurement: invalid syntax"),
            Out::R("Foo".into(), 1, vec![(0.0, "ns/op".into(), None)]),
        ]
    );
}

#[test]
fn case_18_unit_metadata() {
    let out = read_n(
        b"Unit ns/op a=1\nUnit ns/op a=2\nUnit ns/op a=1\nUnit\nUnit ns/op blah =x b=c\nUnitx y\n",
    );
    assert_eq!(
        out,
        vec![
            Out::Meta("sec/op".into(), "a".into(), "1".into()),
            err(2, "metadata a of unit ns/op already set to 1"),
            err(4, "missing unit"),
            err(5, "expected key=value"),
            err(5, "expected key=value"),
            Out::Meta("sec/op".into(), "b".into(), "c".into()),
        ]
    );
}

#[test]
fn case_19_long_lines() {
    let mut ok = b"BenchmarkA 1 1 ns/op\n".to_vec();
    ok.extend(vec![b'x'; MAX_LINE]);
    ok.push(b'\n');
    assert_eq!(read_n(&ok).len(), 1);
    let mut long = b"BenchmarkA 1 1 ns/op\n".to_vec();
    long.extend(vec![b'x'; MAX_LINE + 1]);
    long.extend(b"\nBenchmarkB 1 1 ns/op\n");
    let out = read_n(&long);
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[1],
        Out::Err("fatal <unknown>:1: bufio.Scanner: token too long".into())
    );
    assert!(LegacyReader::new(&long[..]).any(|r| r.is_err()));
}

#[test]
fn case_20_invalid_utf8_is_bytes() {
    let mut r = Reader::new(&b"k: \xff\xfe\nBenchmark\xffA 1 1 \xc3(\n"[..]);
    let Some(Ok(Record::Result(res))) = r.next_record() else {
        panic!()
    };
    assert_eq!(res.name, b"\xffA");
    assert_eq!(res.get_config(b"k"), Some(&b"\xff\xfe"[..]));
    assert_eq!(&*res.values[0].unit, b"\xc3(");
}

#[test]
fn config_order_and_deletion() {
    let mut r = Reader::new(&b"a: 1\nb: 2\nc: 3\na:\nBenchmarkA 1 1 x\n"[..]);
    let Some(Ok(Record::Result(res))) = r.next_record() else {
        panic!()
    };
    let keys: Vec<&[u8]> = res.config.iter().map(|c| &c.key[..]).collect();
    // Deletion swaps the last entry into the deleted one's place.
    assert_eq!(keys, vec![&b"c"[..], b"b"]);
}

#[test]
fn writer_emits_config_blocks() {
    let input = b"a: 1\nBenchmarkA 1 1234567 ns/op 1 MB/s\nBenchmarkB 2 0.5 x\nb: 2\na:\nBenchmarkC 3 1 y\n";
    let mut r = Reader::new(&input[..]);
    let mut w = Writer::new(Vec::new());
    while let Some(rec) = r.next_record() {
        w.write_record(rec.unwrap()).unwrap();
    }
    assert_eq!(
        String::from_utf8(w.into_inner()).unwrap(),
        "a: 1\n\nBenchmarkA 1 1.234567e+06 ns/op 1 MB/s\nBenchmarkB 2 0.5 x\n\na:\nb: 2\n\nBenchmarkC 3 1 y\n"
    );
}

fn arb_token() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9._/=-]{0,8}"
}

fn arb_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_/=.-]{1,16}"
}

#[derive(Debug, Clone)]
enum Line {
    Config(String, String),
    Delete(String),
    Bench(String, i64, Vec<(f64, String)>),
}

fn arb_line() -> impl Strategy<Value = Line> {
    prop_oneof![
        (arb_token(), "[ -~]{1,10}")
            .prop_filter("value must not start blank", |(_, v)| !v
                .starts_with([' ', '\t'])
                && !v.ends_with(' '))
            .prop_map(|(k, v)| Line::Config(k, v)),
        arb_token().prop_map(Line::Delete),
        (
            arb_name(),
            0i64..1_000_000_000,
            prop::collection::vec(
                (
                    prop_oneof![
                        (0u32..1_000_000).prop_map(f64::from),
                        (-1e12f64..1e12),
                        (1e-12f64..1e-3)
                    ],
                    prop_oneof![
                        Just("ns/op".to_string()),
                        Just("B/op".to_string()),
                        Just("MB/s".to_string()),
                        "[a-z]{1,4}/op"
                    ]
                ),
                1..4
            )
        )
            .prop_map(|(n, i, v)| Line::Bench(n, i, v)),
    ]
}

fn render(lines: &[Line]) -> String {
    let mut s = String::new();
    for l in lines {
        match l {
            Line::Config(k, v) => s.push_str(&format!("{k}: {v}\n")),
            Line::Delete(k) => s.push_str(&format!("{k}:\n")),
            Line::Bench(n, i, vals) => {
                s.push_str(&format!("Benchmark{n} {i}"));
                for (v, u) in vals {
                    s.push_str(&format!(" {} {u}", format_go_float(*v)));
                }
                s.push('\n');
            }
        }
    }
    s
}

fn results(input: &[u8]) -> Vec<BenchResult> {
    let mut r = Reader::new(input);
    let mut out = Vec::new();
    while let Some(rec) = r.next_record() {
        if let Ok(Record::Result(res)) = rec {
            let mut res = res.clone();
            res.config.sort_by(|a, b| a.key.cmp(&b.key));
            res.line = 0;
            out.push(res);
        }
    }
    out
}

proptest! {
    /// Writing what N read and reading it again gives the same results.
    #[test]
    fn writer_round_trips(lines in prop::collection::vec(arb_line(), 0..30)) {
        let input = render(&lines);
        let first = results(input.as_bytes());
        let mut w = Writer::new(Vec::new());
        let mut r = Reader::new(input.as_bytes());
        while let Some(rec) = r.next_record() {
            w.write_record(rec.unwrap()).unwrap();
        }
        let written = w.into_inner();
        prop_assert_eq!(results(&written), first);
    }

    /// The legacy printer's output re-read by the legacy reader gives the same results.
    #[test]
    fn legacy_printer_round_trips(lines in prop::collection::vec(arb_line(), 0..30)) {
        let input = render(&lines);
        let first: Vec<_> = LegacyReader::new(input.as_bytes()).map(|r| r.unwrap()).collect();
        let mut out = Vec::new();
        let mut p = LegacyPrinter::new();
        for r in &first {
            p.print(&mut out, r).unwrap();
        }
        let again: Vec<_> = LegacyReader::new(&out[..]).map(|r| r.unwrap()).collect();
        prop_assert_eq!(first.len(), again.len());
        for (a, b) in first.iter().zip(&again) {
            prop_assert_eq!(&a.labels, &b.labels);
            prop_assert_eq!(&a.content, &b.content);
        }
    }

    /// Arbitrary bytes never panic either reader.
    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..2000)) {
        crate::fuzzing::benchfmt(&input);
    }
}
