//! A verdict per cell: does our mean over seeds reproduce the published value? And one line per
//! table that counts the verdicts ([`summary_line`]).
//!
//! A cell is *reproduced* when the published value lies within the manifest's `tolerance` of our
//! mean (default 1.0 point: the points that seed and subset variance move published numbers by,
//! notes §7). A larger miss is *below* or *above* when our 95 % Student-t interval of the mean
//! excludes the published value, and *inconclusive* while the interval still holds it: with two
//! seeds the half-width is 12.7 standard errors, so an interval alone would "reproduce" almost
//! anything. An inconclusive cell says how many seeds would decide it if the mean and the spread
//! stayed as observed ([`seeds_to_decide`]). One seed gives no interval, so it is a *single run*;
//! smoke-scale numbers and cells without a published value are *not comparable*; rows the paper
//! quotes from other papers are *quoted*. A cell without a stored run has no verdict.
use super::cell::{CellSummary, Style};
use crate::stats::Estimate;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Reproduced,
    /// Missed by more than the tolerance, but the interval still holds the published value:
    /// `seeds` would decide it at the observed mean and spread (`None`: no spread was observed).
    Inconclusive {
        seeds: Option<usize>,
    },
    Below,
    Above,
    SingleRun,
    NotComparable,
    Quoted,
}

/// Means are sums of floats and published values have two decimals: a published value exactly
/// at mean ± tolerance must not miss by a rounding error.
const SLACK: f64 = 1e-9;

/// The legend of the marks, as REPORT.md prints it.
pub const LEGEND: &str = "✓ reproduced (the published value lies within the manifest's tolerance of our mean), \
     ? inconclusive (a larger miss, but our 95 % interval still holds the published value: more seeds \
     decide it), ↓ below it, ↑ above it (the interval excludes it), · a single run (one seed: no \
     interval, no verdict); no mark: not comparable (smoke scale, or no published value)";

impl Verdict {
    /// The verdict of a cell: `None` when it has no stored run (and is not quoted).
    pub fn judge(
        estimate: Option<&Estimate>,
        published: Option<f64>,
        tolerance: f64,
        smoke: bool,
        quoted: bool,
    ) -> Option<Verdict> {
        if quoted {
            return Some(Verdict::Quoted);
        }
        let e = estimate?;
        let Some(p) = published.filter(|_| !smoke) else { return Some(Verdict::NotComparable) };
        if e.n < 2 {
            return Some(Verdict::SingleRun);
        }
        let within_tolerance = (p - e.mean).abs() <= tolerance + SLACK;
        let inside_interval = e.interval().is_some_and(|(low, high)| low - SLACK <= p && p <= high + SLACK);
        Some(match (within_tolerance, inside_interval, e.mean < p) {
            (true, _, _) => Verdict::Reproduced,
            (false, true, _) => Verdict::Inconclusive { seeds: seeds_to_decide(e, p) },
            (false, false, true) => Verdict::Below,
            (false, false, false) => Verdict::Above,
        })
    }

    /// As written in `runs.csv` / `runs.parquet`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::Inconclusive { .. } => "inconclusive",
            Verdict::Below => "below",
            Verdict::Above => "above",
            Verdict::SingleRun => "single run",
            Verdict::NotComparable => "not comparable",
            Verdict::Quoted => "quoted",
        }
    }

    /// The mark beside the number in a table (empty where the cell's text already says why
    /// nothing is compared: `(smoke)`, no published value, `quoted`).
    pub(crate) fn mark(self, style: Style) -> &'static str {
        match (self, style) {
            (Verdict::Reproduced, Style::Plain) => "✓",
            (Verdict::Reproduced, Style::Latex) => r"\checkmark",
            (Verdict::Inconclusive { .. }, Style::Plain) => "?",
            (Verdict::Inconclusive { .. }, Style::Latex) => "?",
            (Verdict::Below, Style::Plain) => "↓",
            (Verdict::Below, Style::Latex) => r"$\downarrow$",
            (Verdict::Above, Style::Plain) => "↑",
            (Verdict::Above, Style::Latex) => r"$\uparrow$",
            (Verdict::SingleRun, Style::Plain) => "·",
            (Verdict::SingleRun, Style::Latex) => r"$\cdot$",
            (Verdict::NotComparable | Verdict::Quoted, _) => "",
        }
    }
}

/// The fewest seeds whose 95 % interval would exclude `published` if the mean and the sample
/// standard deviation stayed as `e` observed them: the smallest `n > e.n` with
/// `t(0.975, n - 1) · std / √n < |mean - published|`. `None` without a spread (one seed) or when
/// the mean equals the published value; capped at 10,000.
pub fn seeds_to_decide(e: &Estimate, published: f64) -> Option<usize> {
    let s = e.std?;
    let gap = (e.mean - published).abs();
    if gap == 0.0 {
        return None;
    }
    let excludes = |n: usize| crate::stats::student_t_quantile(0.975, (n - 1) as f64) * s / (n as f64).sqrt() < gap;
    (e.n + 1..=10_000).find(|&n| excludes(n))
}

/// One line about a table's cells (`id`, summary), e.g. "3 of 4 cells reproduced (tolerance
/// 1.0); 1 below by 1.80 ± 0.62 (`cos`)": the distance of each cell that missed (our mean to the
/// published value) ± the half-width of its interval. At smoke scale: that nothing is compared.
pub fn summary_line(cells: &[(String, &CellSummary)]) -> String {
    let trained: Vec<&(String, &CellSummary)> = cells.iter().filter(|(_, c)| !c.quoted).collect();
    if trained.iter().any(|(_, c)| c.smoke) {
        let with_runs = trained.iter().filter(|(_, c)| c.mean.is_some()).count();
        return format!(
            "smoke scale: numbers not comparable with the paper ({with_runs} of {} cells have runs)",
            trained.len()
        );
    }
    let compared: Vec<&(String, &CellSummary)> =
        trained.iter().copied().filter(|(_, c)| c.published.is_some()).collect();
    let with = |v: Verdict| compared.iter().filter(move |(_, c)| c.verdict == Some(v));
    let mut parts = Vec::new();
    match compared.first() {
        Some((_, c)) => parts.push(format!(
            "{} of {} cells reproduced (tolerance {})",
            with(Verdict::Reproduced).count(),
            compared.len(),
            points(c.tolerance)
        )),
        None => parts.push("no cell has a published value to compare with".to_string()),
    }
    let open: Vec<String> = compared
        .iter()
        .filter_map(|(id, c)| match c.verdict {
            Some(Verdict::Inconclusive { seeds }) => Some(format!(
                "{} (`{id}`{})",
                miss_text(c),
                seeds.map(|n| format!(", about {n} seeds would decide it at this spread")).unwrap_or_default()
            )),
            _ => None,
        })
        .collect();
    if !open.is_empty() {
        parts.push(format!("{} inconclusive, off by {}", open.len(), open.join(", ")));
    }
    for (verdict, word) in [(Verdict::Below, "below"), (Verdict::Above, "above")] {
        let misses: Vec<String> = with(verdict).map(|(id, c)| format!("{} (`{id}`)", miss_text(c))).collect();
        if !misses.is_empty() {
            parts.push(format!("{} {word} by {}", misses.len(), misses.join(", ")));
        }
    }
    let counted = [
        (with(Verdict::SingleRun).count(), "single run (no interval)", "single runs (no interval)"),
        (compared.iter().filter(|(_, c)| c.mean.is_none()).count(), "not run", "not run"),
        (trained.len() - compared.len(), "without a published value", "without a published value"),
    ];
    for (n, one, many) in counted {
        if n > 0 {
            parts.push(format!("{n} {}", if n == 1 { one } else { many }));
        }
    }
    parts.join("; ")
}

/// A tolerance as written in a manifest: `1.0`, `0.25` (never rounded away).
fn points(x: f64) -> String {
    if (x * 10.0).fract() == 0.0 {
        format!("{x:.1}")
    } else {
        x.to_string()
    }
}

/// `|mean - published| ± half-width`, two decimals.
fn miss_text(c: &CellSummary) -> String {
    let (Some(m), Some(p)) = (c.mean, c.published) else { return String::new() };
    format!("{:.2} ± {:.2}", (m - p).abs(), c.half_width.unwrap_or(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    fn est(n: usize, mean: f64, half_width: Option<f64>) -> Estimate {
        Estimate { n, mean, std: half_width, half_width }
    }

    fn judge(e: Estimate, published: f64) -> Option<Verdict> {
        Verdict::judge(Some(&e), Some(published), 1.0, false, false)
    }

    #[test]
    fn within_tolerance_is_reproduced_and_an_interval_alone_is_inconclusive() {
        let tight = est(3, 80.0, Some(0.2));
        assert_eq!(judge(tight, 80.5), Some(Reproduced));
        // The boundary: published exactly at mean ± tolerance counts, even after float sums
        // (82.68 - 81.68 is 1.0000000000000142 in f64).
        assert_eq!(judge(tight, 81.0), Some(Reproduced));
        assert_eq!(judge(tight, 79.0), Some(Reproduced));
        assert_eq!(judge(est(3, 81.68, Some(0.2)), 82.68), Some(Reproduced));
        // Just outside both: below / above (our mean against the published value).
        assert_eq!(judge(tight, 81.01), Some(Below));
        assert_eq!(judge(tight, 78.99), Some(Above));
        // A wide interval that holds a published value beyond the tolerance decides nothing.
        let wide = est(3, 80.0, Some(2.5));
        assert!(matches!(judge(wide, 82.5), Some(Inconclusive { .. })));
        assert!(matches!(judge(wide, 77.5), Some(Inconclusive { .. })));
        assert_eq!(judge(wide, 82.51), Some(Below));
        // The tolerance is the manifest's: 0 leaves only an exact match reproduced.
        assert_eq!(Verdict::judge(Some(&tight), Some(80.3), 0.0, false, false), Some(Below));
        assert!(matches!(Verdict::judge(Some(&tight), Some(80.2), 0.0, false, false), Some(Inconclusive { .. })));
    }

    #[test]
    fn two_seeds_no_longer_reproduce_almost_anything() {
        // Seeds 80.0 and 82.0: mean 81, sample std √2, half-width t(0.975, 1)·√2/√2 = 12.706.
        let two = Estimate::of(&[80.0, 82.0]).unwrap();
        assert!((two.half_width.unwrap() - 12.7062).abs() < 1e-3);
        // 93.0 lies inside that interval: once "reproduced", now inconclusive.
        assert!(matches!(judge(two, 93.0), Some(Inconclusive { .. })));
        assert_eq!(judge(two, 81.9), Some(Reproduced));
        assert_eq!(judge(two, 94.0), Some(Below));
        // n = 3 at 80, 81, 82: mean 81, std 1, half-width 4.303/√3 = 2.484.
        let three = Estimate::of(&[80.0, 81.0, 82.0]).unwrap();
        assert!(matches!(judge(three, 83.0), Some(Inconclusive { .. })));
        assert_eq!(judge(three, 83.5), Some(Below));
        assert_eq!(judge(three, 78.0), Some(Above));
    }

    #[test]
    fn seeds_to_decide_at_the_observed_spread() {
        // Mean 81, std 1, published 83 (gap 2): n = 4 gives t(0.975, 3)/2 = 3.182/2 = 1.591 < 2,
        // n = 3 gives 2.484 > 2.
        let three = Estimate::of(&[80.0, 81.0, 82.0]).unwrap();
        assert_eq!(seeds_to_decide(&three, 83.0), Some(4));
        assert_eq!(judge(three, 83.0), Some(Inconclusive { seeds: Some(4) }));
        // Seeds 80 and 82 against 93 (gap 12, std √2): n = 3 gives 4.303·1.414/1.732 = 3.51 < 12.
        assert_eq!(seeds_to_decide(&Estimate::of(&[80.0, 82.0]).unwrap(), 93.0), Some(3));
        // A gap of 1.5 std: t(0.975, n-1)/√n < 1.5 first at n = 5 (2.776/2.236 = 1.24; n = 4: 1.59).
        assert_eq!(seeds_to_decide(&Estimate::of(&[80.0, 81.0, 82.0]).unwrap(), 82.5), Some(5));
        // No spread, no answer.
        assert_eq!(seeds_to_decide(&est(1, 80.0, None), 90.0), None);
    }

    #[test]
    fn single_runs_smoke_unpublished_quoted_and_not_run() {
        // One seed: no interval, no verdict either way, even when the values agree.
        assert_eq!(judge(est(1, 80.0, None), 80.0), Some(SingleRun));
        assert_eq!(judge(est(1, 70.0, None), 80.0), Some(SingleRun));
        let e = est(3, 80.0, Some(0.5));
        assert_eq!(Verdict::judge(Some(&e), Some(80.0), 1.0, true, false), Some(NotComparable), "smoke scale");
        assert_eq!(Verdict::judge(Some(&e), None, 1.0, false, false), Some(NotComparable), "no published value");
        assert_eq!(Verdict::judge(None, Some(77.0), 1.0, false, true), Some(Quoted));
        assert_eq!(Verdict::judge(None, Some(77.0), 1.0, false, false), None, "not run: no verdict");
    }

    #[test]
    fn tolerances_print_as_written() {
        assert_eq!(
            (points(1.0), points(100.0), points(0.25), points(0.0)),
            ("1.0".into(), "100.0".into(), "0.25".into(), "0.0".into())
        );
    }

    #[test]
    fn marks_and_names() {
        let open = Inconclusive { seeds: Some(4) };
        let plain: Vec<&str> = [Reproduced, open, Below, Above, SingleRun, NotComparable, Quoted]
            .iter()
            .map(|v| v.mark(Style::Plain))
            .collect();
        assert_eq!(plain, ["✓", "?", "↓", "↑", "·", "", ""]);
        assert_eq!(open.name(), "inconclusive");
        assert_eq!(Below.mark(Style::Latex), r"$\downarrow$");
        assert_eq!((SingleRun.name(), NotComparable.name()), ("single run", "not comparable"));
    }
}
