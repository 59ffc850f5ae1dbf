//! Comparing two or more sets of results the way `benchstat` does.
//!
//! Statistics follow golang.org/x/perf `benchmath` with its default assumption (*nothing*,
//! i.e. non-parametric): the center is the median, its interval the order-statistic
//! confidence interval from the Binomial(n, ½) distribution, and the comparison a two-sided
//! Mann–Whitney U test; a delta is shown only when p ≤ α. Units with `assume=exact`
//! metadata use the mode and report every difference. The table has benchstat's cells
//! (centers scaled per row, `± P%`, delta, `(p=… n=…)`, a geomean row and footnoted
//! warnings) and layout, and its `-row`, `-col` and `-ignore` projections
//! ([`Options::row`], [`Options::col`], [`Options::ignore`]).
//!
//! ```
//! use perfstore::compare::{benchstat, Input, Options};
//!
//! let old: String = (0..10).map(|i| format!("BenchmarkX 1 {} ns/op\n", 200 + i)).collect();
//! let new: String = (0..10).map(|i| format!("BenchmarkX 1 {} ns/op\n", 100 + i)).collect();
//! let table = benchstat(
//!     &[Input { label: "old".into(), data: old.into_bytes() },
//!       Input { label: "new".into(), data: new.into_bytes() }],
//!     &Options::default(),
//! );
//! assert!(table.contains("-48.90% (p=0.000 n=10)"), "{table}");
//! ```

mod layout;
mod projection;
mod tables;

pub use projection::{Field, Projection, ProjectionError};
pub use tables::{benchstat, differing_config_keys};

use crate::benchfmt::UnitClass;

/// One input file of a comparison.
#[derive(Debug, Clone)]
pub struct Input {
    /// The column label (benchstat uses the file name).
    pub label: String,
    /// Benchmark text.
    pub data: Vec<u8>,
}

/// Thresholds of a comparison.
#[derive(Debug, Clone)]
pub struct Options {
    /// Significance level of the U test; p ≤ alpha is significant.
    pub alpha: f64,
    /// Confidence level of the intervals.
    pub confidence: f64,
    /// Keys left out of the table key and of `.fullname` (benchstat's `-ignore`), such as
    /// the storage server's per-upload labels when comparing two uploads.
    pub ignore: Vec<String>,
    /// What makes a row (benchstat's `-row`; default `.fullname`).
    pub row: Projection,
    /// What makes a column (benchstat's `-col`; default `.file`, one column per input).
    pub col: Projection,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            alpha: 0.05,
            confidence: 0.95,
            ignore: Vec::new(),
            row: Projection(vec![Field::FullName]),
            col: Projection(vec![Field::File]),
        }
    }
}

/// The median of sorted values (type-8 quantile at ½).
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// ln C(n, k).
fn ln_choose(n: u64, k: u64) -> f64 {
    ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k)
}

fn ln_factorial(n: u64) -> f64 {
    (2..=n).map(|i| (i as f64).ln()).sum()
}

/// P(B = k) for B ~ Binomial(n, ½); 0 outside 0..=n.
fn binomial_half_pmf(n: usize, k: i64) -> f64 {
    if k < 0 || k > n as i64 {
        return 0.0;
    }
    (ln_choose(n as u64, k as u64) + n as f64 * 0.5f64.ln()).exp()
}

/// Φ, the standard normal CDF.
fn std_normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// Φ⁻¹ by bisection: only used to place interval ends on whole order statistics.
fn std_normal_inv_cdf(p: f64) -> f64 {
    let (mut lo, mut hi) = (-40.0f64, 40.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if std_normal_cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The 1-based order statistics bounding the median at `confidence`, as
/// `(lo, hi, actual confidence)`; `lo = 0` and `hi = n + 1` mean unbounded.
///
/// These are benchstat's intervals (go-moremath's `QuantileCI` at ½): up to 30 values the
/// interval grows from the median one order statistic at a time, towards the side with
/// the larger binomial mass (the left on a tie), until it covers `confidence`; above 30
/// the ends come from the normal approximation of Binomial(n, ½), rounded to whole order
/// statistics, with the upper end lowered by one when that still covers `confidence`
/// more tightly.
pub fn median_ci_orders(n: usize, confidence: f64) -> (usize, usize, f64) {
    if confidence >= 1.0 {
        return (0, n + 1, 1.0);
    }
    let (mut l, mut r, covered);
    if n <= 30 {
        let x = (((n + 1) as f64 * 0.5).ceil() as i64) - 1;
        let mut accum = binomial_half_pmf(n, x);
        (l, r) = (x, x + 1);
        let (mut lp, mut rp) = (binomial_half_pmf(n, l - 1), binomial_half_pmf(n, r));
        while accum < confidence && (lp > 0.0 || rp > 0.0) {
            if lp >= rp {
                accum += lp;
                l -= 1;
                lp = binomial_half_pmf(n, l - 1);
            } else {
                accum += rp;
                r += 1;
                rp = binomial_half_pmf(n, r);
            }
        }
        covered = accum;
    } else {
        let mu = n as f64 * 0.5;
        let sigma = (n as f64 * 0.25).sqrt();
        let l1 = mu + sigma * std_normal_inv_cdf((1.0 - confidence) / 2.0);
        let r1 = 2.0 * mu - l1;
        l = (l1 - 0.5).floor() as i64 + 1;
        r = (r1 - 0.5).ceil() as i64 + 1;
        let cdf = |l: i64, r: i64| {
            std_normal_cdf((r as f64 - 0.5 - mu) / sigma)
                - std_normal_cdf((l as f64 - 0.5 - mu) / sigma)
        };
        let mut c = cdf(l, r);
        let biased = cdf(l, r - 1);
        if biased >= confidence && biased < c {
            c = biased;
            r -= 1;
        }
        if l <= 0 && r > n as i64 {
            c = 1.0;
        }
        covered = c;
    }
    let lo = l.max(0) as usize;
    let hi = (r.min(n as i64 + 1)).max(0) as usize;
    (lo, hi, covered)
}

/// The smallest sample size whose median interval is bounded at `confidence`.
fn median_samples_needed(confidence: f64) -> Option<usize> {
    (2..=50).find(|&n| {
        let (lo, hi, _) = median_ci_orders(n, confidence);
        lo > 0 && hi <= n
    })
}

/// A cell's summary: its center and interval, and warnings.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The median (or mode, for exact units).
    pub center: f64,
    /// Lower bound of the interval (−∞ when the sample is too small).
    pub lo: f64,
    /// Upper bound (+∞ when the sample is too small).
    pub hi: f64,
    /// Footnotes.
    pub warnings: Vec<String>,
}

impl Summary {
    /// The `± P%` text: the interval's larger relative distance from the center.
    pub fn pct_range(&self) -> String {
        if self.lo.is_infinite() || self.hi.is_infinite() {
            return "∞".into();
        }
        if self.center == 0.0 {
            return "0%".into();
        }
        if !self.center.is_finite() {
            return "?".into();
        }
        if self.lo.signum() != self.center.signum() && self.lo != 0.0
            || self.hi.signum() != self.center.signum() && self.hi != 0.0
        {
            return "?".into();
        }
        let p = (self.hi / self.center - 1.0).max(1.0 - self.lo / self.center);
        format!("{:.0}%", p * 100.0)
    }
}

/// `values` without NaN, sorted, and how many NaNs were left out. NaN (which Go's
/// `b.ReportMetric` can emit) has no order, so no rank statistic can place it; ±∞ sort
/// to the ends and are kept.
fn ordered(values: &[f64]) -> (Vec<f64>, usize) {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    let nans = values.len() - sorted.len();
    (sorted, nans)
}

/// The footnote for NaN values left out of a summary (none when there were none).
fn nan_warning(nans: usize) -> Vec<String> {
    match nans {
        0 => Vec::new(),
        1 => vec!["1 NaN value left out".into()],
        n => vec![format!("{n} NaN values left out")],
    }
}

/// Summarises a sample assuming nothing about its distribution.
pub fn summarize(values: &[f64], confidence: f64) -> Summary {
    let (sorted, nans) = ordered(values);
    let n = sorted.len();
    let (lo, hi, _) = median_ci_orders(n, confidence);
    let lo_v = if lo == 0 {
        f64::NEG_INFINITY
    } else {
        sorted[lo - 1]
    };
    let hi_v = if hi > n {
        f64::INFINITY
    } else {
        sorted[hi - 1]
    };
    let mut warnings = nan_warning(nans);
    if lo_v.is_infinite() || hi_v.is_infinite() {
        warnings.push(match median_samples_needed(confidence) {
            Some(need) => {
                format!("need >= {need} samples for confidence interval at level {confidence}")
            }
            None => format!("need > 50 samples for confidence interval at level {confidence}"),
        });
    }
    Summary {
        center: median(&sorted),
        lo: lo_v,
        hi: hi_v,
        warnings,
    }
}

/// Summarises a sample of a unit declared `assume=exact`: mode, [min, max].
pub fn summarize_exact(values: &[f64]) -> Summary {
    let (sorted, nans) = ordered(values);
    let mut best = (0usize, f64::NAN);
    for run in sorted.chunk_by(|a, b| a == b) {
        if run.len() > best.0 {
            best = (run.len(), run[0]);
        }
    }
    let (lo, hi) = (
        sorted.first().copied().unwrap_or(f64::NAN),
        sorted.last().copied().unwrap_or(f64::NAN),
    );
    let mut warnings = nan_warning(nans);
    if lo != hi {
        warnings.push(format!(
            "exact distribution expected, but values range from {} to {}",
            crate::benchfmt::format_go_float(lo),
            crate::benchfmt::format_go_float(hi)
        ));
    }
    Summary {
        center: best.1,
        lo,
        hi,
        warnings,
    }
}

/// The result of comparing two samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The p-value (1 when the test could not run).
    pub p: f64,
    /// Sample sizes.
    pub n1: usize,
    /// Sample sizes.
    pub n2: usize,
    /// The significance level used.
    pub alpha: f64,
    /// Footnotes.
    pub warnings: Vec<String>,
}

impl Comparison {
    /// The delta text: `~`, `0.00%`, `?` or `%+.2f%%`.
    pub fn format_delta(&self, old: f64, new: f64) -> String {
        if self.p > self.alpha {
            return "~".into();
        }
        if old == new {
            return "0.00%".into();
        }
        let ratio = new / old;
        if old == 0.0 || !ratio.is_finite() {
            return "?".into();
        }
        format!("{:+.2}%", (ratio - 1.0) * 100.0)
    }

    /// The annotation: `p=0.PPP n=N` (or `n=N1+N2`), without `p=` when p is 0.
    pub fn annotation(&self) -> String {
        let n = if self.n1 == self.n2 {
            format!("n={}", self.n1)
        } else {
            format!("n={}+{}", self.n1, self.n2)
        };
        if self.p == 0.0 {
            n
        } else {
            format!("p={:.3} {n}", self.p)
        }
    }
}

/// The smallest n at which 2/C(2n, n) ≤ alpha: fewer samples on both sides can never show
/// a difference.
fn u_test_samples_needed(alpha: f64) -> Option<usize> {
    (1..=9).find(|&n| {
        2.0 / (ln_choose(2 * n as u64, n as u64).exp()) <= alpha || n == 1 && alpha >= 1.0
    })
}

/// Compares two samples with the two-sided Mann–Whitney U test.
pub fn compare(old: &[f64], new: &[f64], alpha: f64) -> Comparison {
    let mut c = Comparison {
        p: 1.0,
        n1: old.iter().filter(|v| !v.is_nan()).count(),
        n2: new.iter().filter(|v| !v.is_nan()).count(),
        alpha,
        warnings: Vec::new(),
    };
    match mann_whitney_p(old, new) {
        Ok(p) => c.p = p,
        Err(e) => {
            c.warnings.push(e.into());
            return c;
        }
    }
    if c.p > alpha
        && let Some(need) = u_test_samples_needed(alpha)
        && c.n1 < need
        && c.n2 < need
    {
        c.warnings.push(format!(
            "need >= {need} samples to detect a difference at alpha level {alpha}"
        ));
    }
    c
}

/// Compares two samples of an exact unit: every difference counts (p = 0).
pub fn compare_exact(old: &[f64], new: &[f64], alpha: f64) -> Comparison {
    Comparison {
        p: 0.0,
        n1: old.len(),
        n2: new.len(),
        alpha,
        warnings: Vec::new(),
    }
}

/// The two-sided p-value of the Mann–Whitney U test.
pub fn mann_whitney_p(x: &[f64], y: &[f64]) -> Result<f64, &'static str> {
    let (x, _) = ordered(x);
    let (y, _) = ordered(y);
    let (n1, n2) = (x.len(), y.len());
    if n1 == 0 || n2 == 0 {
        return Err("sample is too small");
    }
    let mut all: Vec<(f64, bool)> = x
        .iter()
        .map(|&v| (v, true))
        .chain(y.iter().map(|&v| (v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    if all.first().map(|a| a.0) == all.last().map(|a| a.0) {
        return Err("all samples are equal");
    }
    // Runs of equal values share their average rank; their sizes correct the variance
    // and shape the exact distribution.
    let runs: Vec<&[(f64, bool)]> = all.chunk_by(|a, b| a.0 == b.0).collect();
    let mut r1 = 0.0;
    let mut start = 0;
    for run in &runs {
        let end = start + run.len();
        r1 += (start + 1 + end) as f64 / 2.0 * run.iter().filter(|a| a.1).count() as f64;
        start = end;
    }
    let groups: Vec<usize> = runs.iter().map(|r| r.len()).collect();
    let ties: Vec<usize> = groups.iter().copied().filter(|&t| t > 1).collect();
    let u1 = r1 - (n1 * (n1 + 1)) as f64 / 2.0;
    let u2 = (n1 * n2) as f64 - u1;
    let u = u1.min(u2);
    // benchstat's limits: the exact distribution up to 50 values a side without ties, up
    // to 25 with them; beyond, the normal approximation.
    let exact = if ties.is_empty() {
        n1 <= 50 && n2 <= 50
    } else {
        n1 <= 25 && n2 <= 25
    };
    if exact {
        if u1 == u2 {
            // The distribution is symmetric about U: the whole mass is as extreme.
            return Ok(1.0);
        }
        let cdf = if ties.is_empty() {
            let dist = u_distribution(n1, n2);
            let total: f64 = dist.iter().sum();
            let k = u.floor() as usize;
            dist[..=k.min(dist.len() - 1)].iter().sum::<f64>() / total
        } else {
            u_cdf_with_ties(&groups, n1, u)
        };
        return Ok(2.0 * cdf);
    }
    // Normal approximation with tie and continuity corrections.
    let n = (n1 + n2) as f64;
    let mean = (n1 * n2) as f64 / 2.0;
    let tie_term: f64 = ties.iter().map(|&t| (t * t * t - t) as f64).sum::<f64>() / (n * (n - 1.0));
    let var = (n1 * n2) as f64 / 12.0 * ((n + 1.0) - tie_term);
    if var <= 0.0 {
        return Err("all samples are equal");
    }
    // The continuity correction moves U half a step towards the mean (past it, when U is
    // within half a step), as benchstat does.
    let z = ((mean - u).abs() - 0.5).abs() / var.sqrt();
    Ok(erfc(z / std::f64::consts::SQRT_2).min(1.0))
}

/// P(U ≤ `u`) for the first sample's U statistic when `n1` of the values, whose runs of
/// equal values have the sizes `groups` (in rank order), are drawn at random for the
/// first sample. Every way to take `a` values from a run of `t` adds `a` midranks to the
/// first sample's rank sum and has C(t, a) arrangements; a dynamic program over the runs
/// counts the arrangements of each (values taken, doubled rank sum). The counts are at
/// most C(50, 25) < 2⁵³, so they are exact in `f64`.
fn u_cdf_with_ties(groups: &[usize], n1: usize, u: f64) -> f64 {
    let n: usize = groups.iter().sum();
    let max_2r = 2 * n * n1;
    let width = max_2r + 1;
    // ways[a * width + r2]: arrangements taking `a` values with doubled rank sum `r2`.
    let mut ways = vec![0.0f64; (n1 + 1) * width];
    ways[0] = 1.0;
    let mut before = 0;
    for &t in groups {
        // Doubled midrank of this run: ranks before+1 ..= before+t.
        let mid2 = 2 * before + t + 1;
        let mut next = vec![0.0f64; ways.len()];
        for a in 0..=n1 {
            for r2 in 0..width {
                let w = ways[a * width + r2];
                if w == 0.0 {
                    continue;
                }
                let mut choose = 1.0;
                for j in 0..=t.min(n1 - a) {
                    if j > 0 {
                        choose = choose * (t + 1 - j) as f64 / j as f64;
                    }
                    next[(a + j) * width + r2 + j * mid2] += w * choose;
                }
            }
        }
        ways = next;
        before += t;
    }
    let row = &ways[n1 * width..];
    let total: f64 = row.iter().sum();
    // 2U = 2R − n1(n1+1); count rank sums whose U is at most `u`.
    let offset = n1 * (n1 + 1);
    let limit = (2.0 * u).round() as usize + offset;
    row[..=limit.min(max_2r)].iter().sum::<f64>() / total
}

/// Counts of each U value for samples of sizes m and n without ties: the coefficients of
/// the Gaussian binomial ∏ᵢ (1 − q^(n+i)) / (1 − qⁱ), i = 1..m.
fn u_distribution(m: usize, n: usize) -> Vec<f64> {
    let deg = m * n;
    let mut c = vec![0.0f64; deg + 1];
    c[0] = 1.0;
    for i in 1..=m {
        let up = n + i;
        for j in (up..=deg).rev() {
            c[j] -= c[j - up];
        }
        for j in i..=deg {
            c[j] += c[j - i];
        }
    }
    c
}

/// The complementary error function (Numerical Recipes' Chebyshev fit, |ε| < 1.2e-7,
/// ample for p-values printed to three places).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// The deprecated v1 library's summary: mean and `±` spread after removing outliers
/// outside [Q1 − 1.5·IQR, Q3 + 1.5·IQR] (type-8 quartiles).
pub fn v1_summary(values: &[f64]) -> (f64, f64) {
    let mut s = values.to_vec();
    s.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let n = s.len() as f64;
        let h = (n + 1.0 / 3.0) * p + 1.0 / 3.0;
        let lo = (h.floor() as usize).clamp(1, s.len());
        let hi = (lo + 1).min(s.len());
        s[lo - 1] + (h - h.floor()) * (s[hi - 1] - s[lo - 1])
    };
    let (q1, q3) = (q(0.25), q(0.75));
    let iqr = q3 - q1;
    let kept: Vec<f64> = s
        .iter()
        .copied()
        .filter(|&v| v >= q1 - 1.5 * iqr && v <= q3 + 1.5 * iqr)
        .collect();
    let mean = kept.iter().sum::<f64>() / kept.len() as f64;
    let (min, max) = (kept[0], kept[kept.len() - 1]);
    (mean, (max / mean - 1.0).max(1.0 - min / mean))
}

/// Formats values of a row with a common prefix and precision (benchunit's scaler).
pub fn common_scale(values: &[f64], class: UnitClass) -> impl Fn(f64) -> String {
    let min = values
        .iter()
        .map(|v| v.abs())
        .filter(|&v| v != 0.0 && v.is_finite())
        .fold(f64::INFINITY, f64::min);
    let (factors, base): (&[(f64, &str)], f64) = match class {
        UnitClass::Decimal => (
            &[
                (1e12, "T"),
                (1e9, "G"),
                (1e6, "M"),
                (1e3, "k"),
                (1.0, ""),
                (1e-3, "m"),
                (1e-6, "µ"),
                (1e-9, "n"),
            ],
            10.0,
        ),
        UnitClass::Binary => (
            &[
                (1099511627776.0, "Ti"),
                (1073741824.0, "Gi"),
                (1048576.0, "Mi"),
                (1024.0, "Ki"),
                (1.0, ""),
            ],
            2.0,
        ),
    };
    let _ = base;
    let mut chosen = (3usize, 1.0f64, "");
    if min.is_finite() {
        chosen = (usize::MAX, 0.0, "");
        for &(f, p) in factors {
            if min >= 99.995 * f {
                chosen = (1, f, p);
            } else if min >= 9.9995 * f {
                chosen = (2, f, p);
            } else if min >= 0.99995 * f {
                chosen = (3, f, p);
            } else {
                continue;
            }
            break;
        }
        if chosen.0 == usize::MAX {
            let (f, p) = factors[factors.len() - 1];
            let v = min / f;
            let mut prec = 3;
            for (i, exp) in (1..9).enumerate() {
                prec = i + 3;
                if v >= 9.9995 * 10f64.powi(-exp) {
                    break;
                }
            }
            chosen = (prec, f, p);
        }
    }
    let (prec, factor, prefix) = chosen;
    move |v: f64| {
        if v.is_finite() {
            format!("{:.*}{}", prec, v / factor, prefix)
        } else {
            // Go's spelling, without a scale prefix that would read as part of it.
            crate::benchfmt::format_go_float(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_45_ten_vs_ten_separated() {
        let old: Vec<f64> = (0..10).map(|i| 200.0 + f64::from(i)).collect();
        let new: Vec<f64> = (0..10).map(|i| 100.0 + f64::from(i)).collect();
        let c = compare(&old, &new, 0.05);
        assert!((c.p - 2.0 / 184756.0).abs() < 1e-15, "{}", c.p);
        assert_eq!(c.annotation(), "p=0.000 n=10");
        assert_eq!(c.format_delta(204.5, 104.5), "-48.90%");
    }

    #[test]
    fn case_46_small_samples() {
        let c = compare(&[4.0, 5.0, 6.0], &[1.0, 2.0, 3.0], 0.05);
        assert!((c.p - 0.1).abs() < 1e-12);
        assert_eq!(c.format_delta(5.0, 2.0), "~");
        assert_eq!(
            c.warnings,
            vec!["need >= 4 samples to detect a difference at alpha level 0.05"]
        );
        let c = compare(&[5.0, 6.0, 7.0, 8.0], &[1.0, 2.0, 3.0, 4.0], 0.05);
        assert!((c.p - 2.0 / 70.0).abs() < 1e-12);
        assert_eq!(c.format_delta(6.5, 2.5), "-61.54%");
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn case_47_confidence_interval() {
        // benchstat's interval grows left first on a tie, so five values leave only the
        // lower end unbounded (orders 0 and 5); either way the range is ∞.
        let s = summarize(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.95);
        assert!(s.lo.is_infinite() && s.hi == 5.0, "{s:?}");
        assert_eq!(s.pct_range(), "∞");
        assert_eq!(
            s.warnings,
            vec!["need >= 6 samples for confidence interval at level 0.95"]
        );
        let s = summarize(&[10.0, 11.0, 12.0, 13.0, 14.0, 15.0], 0.95);
        assert_eq!((s.lo, s.center, s.hi), (10.0, 12.5, 15.0));
        assert_eq!(s.pct_range(), "20%");
        assert!(s.warnings.is_empty());
        assert_eq!(median_ci_orders(10, 0.95).0, 2);
    }

    #[test]
    fn case_48_equal_and_exact() {
        let c = compare(&[5.0; 4], &[5.0; 4], 0.05);
        assert_eq!(c.p, 1.0);
        assert_eq!(c.warnings, vec!["all samples are equal"]);
        assert_eq!(c.format_delta(5.0, 5.0), "~");
        let table = benchstat(
            &[
                Input {
                    label: "old".into(),
                    data: b"Unit ns/op assume=exact\nBenchmarkX 1 5 ns/op\n".to_vec(),
                },
                Input {
                    label: "new".into(),
                    data: b"Unit ns/op assume=exact\nBenchmarkX 1 6 ns/op\n".to_vec(),
                },
            ],
            &Options::default(),
        );
        assert!(table.contains("+20.00% (n=1)"), "{table}");
    }

    #[test]
    fn case_49_geomean() {
        let data =
            |a: u32, b: u32| format!("BenchmarkA 1 {a} x\nBenchmarkB 1 {b} x\n").into_bytes();
        let table = benchstat(
            &[
                Input {
                    label: "old".into(),
                    data: data(1, 4),
                },
                Input {
                    label: "new".into(),
                    data: data(1, 4),
                },
            ],
            &Options::default(),
        );
        let geo = table.lines().find(|l| l.starts_with("geomean")).unwrap();
        assert_eq!(geo.matches("2.000").count(), 2, "{table}");
        assert!(geo.ends_with("+0.00%"), "{table}");
        let table = benchstat(
            &[
                Input {
                    label: "old".into(),
                    data: data(0, 4),
                },
                Input {
                    label: "new".into(),
                    data: data(0, 4),
                },
            ],
            &Options::default(),
        );
        assert!(
            table.contains("summaries must be >0 to compute geomean"),
            "{table}"
        );
    }

    #[test]
    fn case_50_v1_outliers() {
        let (mean, spread) = v1_summary(&[10.0, 10.0, 10.0, 10.0, 100.0]);
        assert_eq!(mean, 10.0);
        assert_eq!(format!("± {:.0}%", spread * 100.0), "± 0%");
    }

    #[test]
    fn normal_approximation_with_ties() {
        // Large samples with ties: the p-value is small and finite.
        let old: Vec<f64> = (0..60).map(|i| f64::from(100 + i % 7)).collect();
        let new: Vec<f64> = (0..60).map(|i| f64::from(90 + i % 7)).collect();
        let c = compare(&old, &new, 0.05);
        assert!(c.p < 1e-6 && c.p > 0.0, "{}", c.p);
        let same = compare(&old, &old, 0.05);
        assert!(same.p > 0.9, "{}", same.p);
    }

    #[test]
    fn scaling_like_benchunit() {
        let f = common_scale(&[46.55e-9], UnitClass::Decimal);
        assert_eq!(f(46.55e-9), "46.55n");
        let f = common_scale(&[1.701e-6], UnitClass::Decimal);
        assert_eq!(f(1.701e-6), "1.701µ");
        let f = common_scale(&[237.5e-9], UnitClass::Decimal);
        assert_eq!(f(237.5e-9), "237.5n");
        let f = common_scale(&[0.0], UnitClass::Decimal);
        assert_eq!(f(0.0), "0.000");
        let f = common_scale(&[1.15 * 1073741824.0], UnitClass::Binary);
        assert_eq!(f(1.15 * 1073741824.0), "1.150Gi");
    }

    /// Runs `f` on another thread and fails if it has not returned within 20 s: a hang
    /// must fail the test, not stall the run.
    fn within_20s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(f()));
        rx.recv_timeout(std::time::Duration::from_secs(20))
            .expect("the comparison did not finish: a value made it loop")
    }

    #[test]
    fn keys_that_differ_between_inputs_are_found() {
        let input = |label: &str, text: &str| Input {
            label: label.into(),
            data: text.as_bytes().to_vec(),
        };
        let old = input("old", "goos: linux\ncommit: a\nBenchmarkX 1 1 ns/op\n");
        let new = input("new", "goos: linux\ncommit: b\nBenchmarkX 1 2 ns/op\n");
        assert_eq!(
            differing_config_keys(&[old.clone(), new.clone()]),
            ["commit"]
        );
        let opts = Options {
            ignore: differing_config_keys(&[old.clone(), new.clone()]),
            ..Options::default()
        };
        let table = benchstat(&[old, new], &opts);
        // One table with both columns filled, not one table per commit.
        assert_eq!(table.matches("sec/op").count(), 2, "{table}");
        assert!(
            table.contains("1.000n") && table.contains("2.000n"),
            "{table}"
        );
    }

    #[test]
    fn nan_and_infinities_neither_hang_nor_panic() {
        let old = "BenchmarkN-2 1 NaN ns/op\nBenchmarkN-2 1 5 ns/op\nBenchmarkN-2 1 6 ns/op\n\
                   BenchmarkM-2 1 NaN x/op\nBenchmarkM-2 1 NaN x/op\n";
        let new = "BenchmarkN-2 1 +Inf ns/op\nBenchmarkN-2 1 7 ns/op\nBenchmarkN-2 1 NaN ns/op\n\
                   BenchmarkM-2 1 -Inf x/op\nBenchmarkM-2 1 3 x/op\n";
        let table = within_20s(move || {
            benchstat(
                &[
                    Input {
                        label: "old".into(),
                        data: old.into(),
                    },
                    Input {
                        label: "new".into(),
                        data: new.into(),
                    },
                ],
                &Options::default(),
            )
        });
        assert!(table.contains("1 NaN value left out"), "{table}");
        assert!(table.contains("2 NaN values left out"), "{table}");
        // The NaN is not counted as a sample.
        assert!(table.contains("n=2+1") || table.contains("n=2"), "{table}");
    }

    proptest::proptest! {
        #[test]
        fn statistics_take_any_values(
            x in proptest::collection::vec(proptest::num::f64::ANY, 0..30),
            y in proptest::collection::vec(proptest::num::f64::ANY, 0..30),
        ) {
            let (a, b) = (x.clone(), y.clone());
            within_20s(move || {
                let _ = summarize(&a, 0.95).pct_range();
                let _ = summarize_exact(&a);
                let c = compare(&a, &b, 0.05);
                let _ = c.format_delta(summarize(&a, 0.95).center, summarize(&b, 0.95).center);
                let _ = c.annotation();
                let _ = mann_whitney_p(&a, &b);
            });
        }
    }
}
