//! benchstat's tables: results grouped into one table per configuration and unit, with
//! rows and columns chosen by projections, and drawn as benchstat draws them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::layout::{Align, Grid};
use super::projection::{Field, Projection, config_value};
use super::{Input, Options, common_scale, compare, compare_exact, summarize, summarize_exact};
use crate::benchfmt::{BenchResult, Reader, Record, unit_class};

/// The first-seen order of each field's values: benchstat orders tables, rows and
/// columns field by field, each value where it was first observed.
#[derive(Debug, Default)]
struct SeenOrder {
    fields: HashMap<Key, HashMap<String, usize>>,
}

/// What a value was observed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    /// The unit, the table key's last part.
    Unit,
    /// The row projection's field at this position.
    Row(usize),
    /// The column projection's field at this position.
    Col(usize),
}

impl SeenOrder {
    /// Records `value` of `field` if it is new (the string is copied only then: this
    /// runs for every result).
    fn observe(&mut self, field: Key, value: &str) {
        let values = self.fields.entry(field).or_default();
        if !values.contains_key(value) {
            let next = values.len();
            values.insert(value.to_owned(), next);
        }
    }

    fn rank(&self, field: &Key, value: &str) -> usize {
        self.fields
            .get(field)
            .and_then(|v| v.get(value))
            .copied()
            .unwrap_or(0)
    }
}

/// One table: the results of one configuration in one unit.
#[derive(Debug)]
struct Table {
    /// Values of the table's configuration keys, without trailing empty ones.
    config: Vec<String>,
    unit: String,
    rows: Vec<Vec<String>>,
    cols: Vec<Vec<String>>,
    cells: HashMap<(usize, usize), Vec<f64>>,
    /// The distinct full names merged into each cell, when no projection shows them.
    residue: HashMap<(usize, usize), BTreeSet<String>>,
}

/// The file configuration keys whose values differ between the inputs (`commit`, when
/// comparing one commit's results with another's). Left in the table key they would split
/// every benchmark into one table per input, each with one empty column; the UI's
/// comparison of two queries ignores them, as `benchstat -ignore` would.
pub fn differing_config_keys(inputs: &[Input]) -> Vec<String> {
    let per_input: Vec<BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>>> = inputs
        .iter()
        .map(|input| {
            let mut seen: BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>> = BTreeMap::new();
            let mut reader = Reader::new(&input.data[..]);
            while let Some(Ok(rec)) = reader.next_record() {
                if let Record::Result(r) = rec {
                    for c in r.config.iter().filter(|c| c.file) {
                        seen.entry(c.key.clone())
                            .or_default()
                            .insert(c.value.clone());
                    }
                }
            }
            seen
        })
        .collect();
    let keys: BTreeSet<&Vec<u8>> = per_input.iter().flat_map(|m| m.keys()).collect();
    keys.into_iter()
        .filter(|k| per_input.windows(2).any(|w| w[0].get(*k) != w[1].get(*k)))
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect()
}

/// What every result is split by.
struct Split<'a> {
    row: &'a Projection,
    col: &'a Projection,
    /// Name keys that other projections or `ignore` name: they leave `.fullname`.
    name_exclusions: Vec<&'a Field>,
    /// Configuration keys kept out of the table key.
    config_exclusions: BTreeSet<&'a str>,
    /// Whether no projection (nor `ignore`) names `.fullname`: then results whose names
    /// differ may be merged into one cell, and the cell says so.
    residue: bool,
}

impl<'a> Split<'a> {
    fn new(opts: &'a Options, ignored: &'a [Field]) -> Self {
        let fields = || opts.row.0.iter().chain(&opts.col.0).chain(ignored);
        Split {
            row: &opts.row,
            col: &opts.col,
            name_exclusions: fields()
                .filter(|f| matches!(f, Field::Name | Field::NamePart(_)))
                .collect(),
            config_exclusions: fields()
                .filter_map(|f| match f {
                    Field::Config(k) => Some(k.as_str()),
                    _ => None,
                })
                .collect(),
            residue: !fields().any(|f| *f == Field::FullName),
        }
    }
}

/// Reads the inputs and renders benchstat's text tables. With the default projections
/// each input is a column and the first is the baseline; with others, the first column
/// (in first-seen order) of each table is.
pub fn benchstat(inputs: &[Input], opts: &Options) -> String {
    let ignored: Vec<Field> = opts
        .ignore
        .iter()
        .filter_map(|k| Field::parse(k).ok())
        .collect();
    let split = Split::new(opts, &ignored);
    let mut order = SeenOrder::default();
    let mut config_keys: Vec<String> = Vec::new();
    let mut tables: Vec<Table> = Vec::new();
    let mut index: HashMap<(Vec<String>, String), usize> = HashMap::new();
    let mut exact_units: BTreeSet<String> = BTreeSet::new();
    let mut errors = String::new();
    for input in inputs {
        let mut reader = Reader::new(&input.data[..]);
        while let Some(rec) = reader.next_record() {
            match rec {
                Err(e) => {
                    errors.push_str(&format!("{}: {e}\n", input.label));
                    break;
                }
                Ok(Record::SyntaxError(e)) => errors.push_str(&format!("{}: {e}\n", input.label)),
                Ok(Record::UnitMetadata(m)) => {
                    if m.key == b"assume" && m.value == b"exact" {
                        exact_units.insert(String::from_utf8_lossy(&m.unit).into_owned());
                    }
                }
                Ok(Record::Result(r)) => {
                    let config = table_config(r, &split, &mut config_keys);
                    let row = split.row.values(r, &input.label, &split.name_exclusions);
                    let col = split.col.values(r, &input.label, &split.name_exclusions);
                    observe(&mut order, Key::Row, &row);
                    observe(&mut order, Key::Col, &col);
                    for v in &r.values {
                        let unit = String::from_utf8_lossy(&v.unit).into_owned();
                        order.observe(Key::Unit, &unit);
                        let t = *index
                            .entry((config.clone(), unit.clone()))
                            .or_insert_with(|| {
                                tables.push(Table {
                                    config: config.clone(),
                                    unit,
                                    rows: Vec::new(),
                                    cols: Vec::new(),
                                    cells: HashMap::new(),
                                    residue: HashMap::new(),
                                });
                                tables.len() - 1
                            });
                        let t = &mut tables[t];
                        let cell = (position(&mut t.rows, &row), position(&mut t.cols, &col));
                        t.cells.entry(cell).or_default().push(v.value);
                        if split.residue {
                            t.residue
                                .entry(cell)
                                .or_default()
                                .insert(Field::FullName.value(
                                    r,
                                    &input.label,
                                    &split.name_exclusions,
                                ));
                        }
                    }
                }
            }
        }
    }
    // Configuration values sort as strings (benchstat tracks no first-seen order for the
    // keys of its `.config` group), the units in first-seen order.
    tables.sort_by(|a, b| {
        a.config.cmp(&b.config).then_with(|| {
            order
                .rank(&Key::Unit, &a.unit)
                .cmp(&order.rank(&Key::Unit, &b.unit))
        })
    });

    let mut out = errors;
    let mut shown: Option<&Table> = None;
    for t in &tables {
        if shown.is_some() {
            out.push('\n');
        }
        for (i, key) in config_keys.iter().enumerate() {
            let value = |t: &Table| t.config.get(i).cloned().unwrap_or_default();
            if shown.is_none_or(|s| value(s) != value(t)) {
                out.push_str(&format!("{key}: {}\n", value(t)));
            }
        }
        shown = Some(t);
        out.push_str(&render(
            t,
            &split,
            &order,
            exact_units.contains(&t.unit),
            opts,
        ));
    }
    out
}

/// The result's table key (its configuration minus excluded keys), learning new keys.
fn table_config(r: &BenchResult, split: &Split, keys: &mut Vec<String>) -> Vec<String> {
    for c in r.config.iter().filter(|c| c.file) {
        let key = String::from_utf8_lossy(&c.key);
        if !split.config_exclusions.contains(&*key) && !keys.iter().any(|k| *k == key) {
            keys.push(key.into_owned());
        }
    }
    let mut values: Vec<String> = keys.iter().map(|k| config_value(r, k)).collect();
    while values.last().is_some_and(String::is_empty) {
        values.pop();
    }
    values
}

fn observe(order: &mut SeenOrder, field: fn(usize) -> Key, values: &[String]) {
    for (i, v) in values.iter().enumerate() {
        order.observe(field(i), v);
    }
}

fn position(keys: &mut Vec<Vec<String>>, key: &[String]) -> usize {
    keys.iter().position(|k| k == key).unwrap_or_else(|| {
        keys.push(key.to_vec());
        keys.len() - 1
    })
}

/// The indices of `keys` in benchstat's order under projection `p`.
fn sorted(keys: &[Vec<String>], field: fn(usize) -> Key, order: &SeenOrder) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..keys.len()).collect();
    idx.sort_by_cached_key(|&i| {
        keys[i]
            .iter()
            .enumerate()
            .map(|(f, v)| order.rank(&field(f), v))
            .collect::<Vec<_>>()
    });
    idx
}

/// Each column of a table becomes a center group (value, `± range`, footnotes); every
/// column after the baseline adds a delta group (delta, `(p=… n=…)`, footnotes).
const GROUP: usize = 3;

/// The grid column where logical column `c` starts (grid column 0 holds the row labels).
fn start(c: usize) -> usize {
    if c == 0 {
        1
    } else {
        1 + GROUP + (c - 1) * 2 * GROUP
    }
}

/// Footnote numbers for warnings, numbered in order of first use within a table.
#[derive(Default)]
struct Footnotes(Vec<String>);

impl Footnotes {
    fn mark(&mut self, warnings: &[String]) -> String {
        warnings
            .iter()
            .map(|w| {
                let i = self.0.iter().position(|n| n == w).unwrap_or_else(|| {
                    self.0.push(w.clone());
                    self.0.len() - 1
                });
                superscript(i + 1)
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn render(t: &Table, split: &Split, order: &SeenOrder, exact: bool, opts: &Options) -> String {
    let rows = sorted(&t.rows, Key::Row, order);
    let cols = sorted(&t.cols, Key::Col, order);
    let class = unit_class(t.unit.as_bytes());
    let mut g = Grid::default();
    let mut notes = Footnotes::default();
    let edge = start(cols.len());

    // One header line per column key, equal neighbours merged, then the unit line.
    for level in 0..split.col.0.len() {
        g.row();
        let mut c = 0;
        while c < cols.len() {
            let prefix = &t.cols[cols[c]][..=level];
            let len = cols[c..]
                .iter()
                .take_while(|&&k| &t.cols[k][..=level] == prefix)
                .count();
            g.at(start(c)).span(
                start(c + len) - start(c),
                t.cols[cols[c]][level].clone(),
                Align::Center,
                Some(" │ "),
            );
            c += len;
        }
        g.at(edge).span(1, "", Align::Left, Some(" │"));
    }
    g.row();
    for c in 0..cols.len() {
        g.at(start(c))
            .span(GROUP, t.unit.clone(), Align::Center, Some(" │ "));
        if c > 0 {
            g.span(GROUP, "vs base", Align::Left, Some("  "));
        }
        // Only a group's first column (the value) takes room that a wide header needs.
        for rest in start(c) + 1..g.col() {
            g.fix_width(rest);
        }
    }
    g.at(edge).span(1, "", Align::Left, Some(" │"));

    let summary = |v: &[f64]| {
        if exact {
            summarize_exact(v)
        } else {
            summarize(v, opts.confidence)
        }
    };
    let base_col = cols[0];
    let mut centers: Vec<Vec<Option<f64>>> = vec![Vec::new(); cols.len()];
    let mut ratios: Vec<Vec<Option<f64>>> = vec![Vec::new(); cols.len()];
    for &r in &rows {
        g.row().cell(row_label(&t.rows[r]), Align::Left);
        let summaries: Vec<_> = cols
            .iter()
            .map(|&c| t.cells.get(&(r, c)).map(|v| summary(v)))
            .collect();
        let values: Vec<f64> = summaries.iter().flatten().map(|s| s.center).collect();
        let scale = common_scale(&values, class);
        for (i, s) in summaries.iter().enumerate() {
            let Some(s) = s else { continue };
            centers[i].push(Some(s.center));
            g.at(start(i)).cell(scale(s.center), Align::Right).span(
                1,
                s.pct_range(),
                Align::Right,
                Some(" ± "),
            );
            let mut warnings = Vec::new();
            if t.residue
                .get(&(r, cols[i]))
                .is_some_and(|names| names.len() > 1)
            {
                warnings.push("benchmarks vary in .fullname".to_string());
            }
            warnings.extend(s.warnings.iter().cloned());
            g.cell(notes.mark(&warnings), Align::Left);
            let base = t.cells.get(&(r, base_col)).zip(summaries[0].as_ref());
            if let (true, Some((old, b))) = (i > 0, base) {
                let new = &t.cells[&(r, cols[i])];
                let cmp = if exact {
                    compare_exact(old, new, opts.alpha)
                } else {
                    compare(old, new, opts.alpha)
                };
                g.cell(cmp.format_delta(b.center, s.center), Align::Right)
                    .cell(format!("({})", cmp.annotation()), Align::Left)
                    .cell(notes.mark(&cmp.warnings), Align::Left);
                ratios[i].push(ratio(b.center, s.center));
            }
        }
    }

    if rows.len() > 1 {
        g.row().cell("geomean", Align::Left);
        let bases = centers[0].len();
        for (i, (cs, rs)) in centers.iter().zip(&ratios).enumerate() {
            let mut warnings = Vec::new();
            if i > 0 && rs.len() != bases {
                warnings.push(
                    "benchmark set differs from baseline; geomeans may not be comparable".into(),
                );
            }
            let values: Vec<f64> = cs.iter().flatten().copied().collect();
            match geomean(&values) {
                Some(gm) => {
                    g.at(start(i))
                        .cell(common_scale(&[gm], class)(gm), Align::Right);
                }
                None => warnings.push("summaries must be >0 to compute geomean".into()),
            }
            if i > 0 {
                let text = match rs.iter().copied().collect::<Option<Vec<f64>>>() {
                    None => "?".to_string(),
                    Some(rs) => match geomean(&rs) {
                        Some(r) => format!("{:+.2}%", (r - 1.0) * 100.0),
                        None => {
                            warnings.push("ratios must be >0 to compute geomean".into());
                            "?".to_string()
                        }
                    },
                };
                let align = if text == "?" {
                    Align::Left
                } else {
                    Align::Right
                };
                g.at(start(i) + GROUP).cell(text, align);
            }
            g.at(start(i + 1) - 1)
                .cell(notes.mark(&warnings), Align::Left);
        }
    }

    let mut out = g.render();
    for (i, n) in notes.0.iter().enumerate() {
        out.push_str(&format!("{} {n}\n", superscript(i + 1)));
    }
    out
}

/// A row's label: its non-empty values, space-separated.
fn row_label(values: &[String]) -> String {
    values
        .iter()
        .filter(|v| !v.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

/// new/old for the geomean of ratios: equal centers count as 1 (0/0 included); a zero
/// baseline has no ratio (and leaves the column's ratio `?`).
fn ratio(old: f64, new: f64) -> Option<f64> {
    if old == new {
        Some(1.0)
    } else if old == 0.0 {
        None
    } else {
        Some(new / old)
    }
}

/// The geometric mean, when every value is positive (and there is one).
fn geomean(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|&v| v <= 0.0 || v.is_nan()) {
        return None;
    }
    let mean = values.iter().map(|v| v.ln()).sum::<f64>() / values.len() as f64;
    Some(mean.exp()).filter(|m| !m.is_nan())
}

const SUPERSCRIPTS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];

fn superscript(mut i: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(SUPERSCRIPTS[i % 10]);
        i /= 10;
        if i == 0 {
            break;
        }
    }
    s.iter().rev().collect()
}
