//! A verdict per cell: does our mean over seeds reproduce the published value? And one line per
//! table that counts the verdicts ([`summary_line`]).
//!
//! A cell is *reproduced* when the published value lies within the manifest's `tolerance` of our
//! mean (default 1.0 point), or inside our 95 % Student-t interval of the mean: a noisy cell
//! whose interval is wide is not called a failure, and a tight one is still allowed the points
//! that seed and subset variance move published numbers by (1.5-3 points on CIFAR-100-LT, notes
//! §7). Otherwise it is *below* or *above*. One seed gives no interval, so it is a *single run*;
//! smoke-scale numbers and cells without a published value are *not comparable*; rows the paper
//! quotes from other papers are *quoted*. A cell without a stored run has no verdict.
use super::cell::{CellSummary, Style};
use crate::stats::Estimate;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Reproduced,
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
pub const LEGEND: &str = "✓ reproduced (the published value lies within the manifest's tolerance of our mean, or \
     inside our 95 % interval), ↓ below it, ↑ above it, · a single run (one seed: no interval, no \
     verdict); no mark: not comparable (smoke scale, or no published value)";

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
        Some(match (within_tolerance || inside_interval, e.mean < p) {
            (true, _) => Verdict::Reproduced,
            (false, true) => Verdict::Below,
            (false, false) => Verdict::Above,
        })
    }

    /// As written in `runs.csv` / `runs.parquet`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
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
    fn within_tolerance_or_interval_is_reproduced() {
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
        // A wide interval holds a published value beyond the tolerance, up to its edge.
        let wide = est(3, 80.0, Some(2.5));
        assert_eq!(judge(wide, 82.5), Some(Reproduced));
        assert_eq!(judge(wide, 77.5), Some(Reproduced));
        assert_eq!(judge(wide, 82.51), Some(Below));
        // The tolerance is the manifest's: 0 leaves the interval alone.
        assert_eq!(Verdict::judge(Some(&tight), Some(80.3), 0.0, false, false), Some(Below));
        assert_eq!(Verdict::judge(Some(&tight), Some(80.2), 0.0, false, false), Some(Reproduced));
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
        let plain: Vec<&str> =
            [Reproduced, Below, Above, SingleRun, NotComparable, Quoted].iter().map(|v| v.mark(Style::Plain)).collect();
        assert_eq!(plain, ["✓", "↓", "↑", "·", "", ""]);
        assert_eq!(Below.mark(Style::Latex), r"$\downarrow$");
        assert_eq!((SingleRun.name(), NotComparable.name()), ("single run", "not comparable"));
    }
}
