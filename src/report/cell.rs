//! One cell of a report: its stored runs summarised over seeds ([`summarize`]: n, mean, sample
//! std, 95 % interval, verdict) and written in each format's notation (module docs of `report`).
use super::{CellInput, InProgress, Verdict};
use crate::metrics::RunResult;
use crate::stats::{mean, Estimate};
use std::fmt::Write as _;

/// The numbers behind one table cell.
#[derive(Clone, Debug, PartialEq)]
pub struct CellSummary {
    /// Seeds with a result (n).
    pub seeds: usize,
    pub expected_seeds: usize,
    /// Mean final-epoch top-1 (None when not run).
    pub mean: Option<f64>,
    /// Sample standard deviation (n - 1) of the final-epoch top-1; None below 2 seeds.
    pub std: Option<f64>,
    /// Half-width of the 95 % Student-t interval of the mean; None below 2 seeds.
    pub half_width: Option<f64>,
    /// Mean best-epoch top-1.
    pub best_mean: Option<f64>,
    /// Mean of each shot group's final-epoch accuracy over the seeds that have it.
    pub many: Option<f64>,
    pub medium: Option<f64>,
    pub few: Option<f64>,
    pub published: Option<f64>,
    /// Reproduced - published; None for quoted, not-run and smoke cells.
    pub delta: Option<f64>,
    /// The manifest's tolerance (points) the verdict used.
    pub tolerance: f64,
    /// None when the cell has no stored run.
    pub verdict: Option<Verdict>,
    pub quoted: bool,
    pub smoke: bool,
    /// Its runs in progress.
    pub training: Vec<InProgress>,
}

pub fn summarize(cell: &CellInput) -> CellSummary {
    let finals: Vec<f64> = cell.runs.iter().map(|r| r.result.final_eval.top1).collect();
    let bests: Vec<f64> = cell.runs.iter().map(|r| r.result.best_top1).collect();
    let group =
        |f: fn(&RunResult) -> Option<f64>| mean(&cell.runs.iter().filter_map(|r| f(&r.result)).collect::<Vec<_>>());
    let estimate = if cell.quoted { None } else { Estimate::of(&finals) };
    let m = estimate.map(|e| e.mean);
    let delta = match (m, cell.published, cell.smoke) {
        (Some(m), Some(p), false) => Some(m - p),
        _ => None,
    };
    CellSummary {
        seeds: cell.runs.len(),
        expected_seeds: cell.expected_seeds,
        mean: m,
        std: estimate.and_then(|e| e.std),
        half_width: estimate.and_then(|e| e.half_width),
        best_mean: if cell.quoted { None } else { mean(&bests) },
        many: group(|r| r.final_eval.many),
        medium: group(|r| r.final_eval.medium),
        few: group(|r| r.final_eval.few),
        published: cell.published,
        delta,
        tolerance: cell.tolerance,
        verdict: Verdict::judge(estimate.as_ref(), cell.published, cell.tolerance, cell.smoke, cell.quoted),
        quoted: cell.quoted,
        smoke: cell.smoke,
        training: cell.training.clone(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// Markdown and CSV: UTF-8 symbols.
    Plain,
    Latex,
}

pub(crate) const DASH: &str = "–";

impl CellSummary {
    pub(crate) fn reproduced_text(&self, style: Style) -> String {
        if self.quoted {
            return if style == Style::Latex { r"\textit{quoted}".into() } else { "quoted".into() };
        }
        let Some(m) = self.mean else {
            return match (self.training_text(style), self.smoke) {
                (Some(t), _) => t,
                (None, true) => "not run (smoke)".into(),
                (None, false) => "not run".into(),
            };
        };
        // `mean ± half-width (n=3) ✓`: the interval of the mean, how many seeds it rests on
        // (`n=1 of 3` while seeds are missing), and the verdict's mark.
        let mut s = format!("{m:.2}");
        if let Some(h) = self.half_width {
            let pm = if style == Style::Latex { r" $\pm$ " } else { " ± " };
            write!(s, "{pm}{h:.2}").unwrap();
        }
        write!(s, " (n={}", self.seeds).unwrap();
        if self.seeds < self.expected_seeds {
            write!(s, " of {}", self.expected_seeds).unwrap();
        }
        s.push(')');
        if let Some(mark) = self.verdict.map(|v| v.mark(style)).filter(|m| !m.is_empty()) {
            write!(s, " {mark}").unwrap();
        }
        if let Some(b) = self.best_mean {
            if format!("{b:.2}") != format!("{m:.2}") {
                write!(s, " (best {b:.2})").unwrap();
            }
        }
        if self.smoke {
            s.push_str(" (smoke)");
        }
        if let Some(t) = self.training_text(style) {
            write!(s, "; {t}").unwrap();
        }
        s
    }

    /// `training (seed 124: stage 1, epoch 57 of 200)`: the runs in progress (plain style only).
    fn training_text(&self, style: Style) -> Option<String> {
        if self.training.is_empty() || style == Style::Latex {
            return None;
        }
        let each: Vec<String> = self
            .training
            .iter()
            .map(|p| format!("seed {}: stage {}, epoch {} of {}", p.seed, p.stage, p.epochs_done, p.epochs))
            .collect();
        Some(format!("training ({})", each.join("; ")))
    }

    /// The verdict as `runs.csv` names it; `not run` without a stored run.
    pub(crate) fn verdict_text(&self) -> &'static str {
        self.verdict.map_or("not run", Verdict::name)
    }

    pub(crate) fn published_text(&self) -> String {
        self.published.map(|p| format!("{p:.2}")).unwrap_or_else(|| DASH.into())
    }

    pub(crate) fn delta_text(&self, style: Style) -> String {
        match self.delta {
            Some(d) if style == Style::Latex => format!("${d:+.2}$"),
            Some(d) => format!("{d:+.2}"),
            None if style == Style::Latex => "--".into(),
            None => DASH.into(),
        }
    }

    pub(crate) fn shots_text(&self, style: Style) -> String {
        if self.quoted || self.mean.is_none() {
            return if style == Style::Latex { "--".into() } else { DASH.into() };
        }
        let f = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| DASH.into());
        format!("{} / {} / {}", f(self.many), f(self.medium), f(self.few))
    }
}
