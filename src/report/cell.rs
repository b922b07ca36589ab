//! One cell of a report: its stored runs summarised over seeds ([`summarize`]) and written in
//! each format's notation (module docs of `report`).
use super::CellInput;
use crate::metrics::RunResult;
use std::fmt::Write as _;

/// The numbers behind one table cell.
#[derive(Clone, Debug, PartialEq)]
pub struct CellSummary {
    /// Seeds with a result.
    pub seeds: usize,
    pub expected_seeds: usize,
    /// Mean final-epoch top-1 (None when not run).
    pub mean: Option<f64>,
    /// Sample standard deviation (n - 1) of the final-epoch top-1; None below 2 seeds.
    pub std: Option<f64>,
    /// Mean best-epoch top-1.
    pub best_mean: Option<f64>,
    /// Mean of each shot group's final-epoch accuracy over the seeds that have it.
    pub many: Option<f64>,
    pub medium: Option<f64>,
    pub few: Option<f64>,
    pub published: Option<f64>,
    /// Reproduced - published; None for quoted, not-run and smoke cells.
    pub delta: Option<f64>,
    pub quoted: bool,
    pub smoke: bool,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn sample_std(v: &[f64]) -> Option<f64> {
    let m = mean(v)?;
    (v.len() >= 2).then(|| (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt())
}

pub fn summarize(cell: &CellInput) -> CellSummary {
    let finals: Vec<f64> = cell.runs.iter().map(|r| r.result.final_eval.top1).collect();
    let bests: Vec<f64> = cell.runs.iter().map(|r| r.result.best_top1).collect();
    let group = |f: fn(&RunResult) -> Option<f64>| mean(&cell.runs.iter().filter_map(|r| f(&r.result)).collect::<Vec<_>>());
    let m = if cell.quoted { None } else { mean(&finals) };
    let delta = match (m, cell.published, cell.smoke) {
        (Some(m), Some(p), false) => Some(m - p),
        _ => None,
    };
    CellSummary {
        seeds: cell.runs.len(),
        expected_seeds: cell.expected_seeds,
        mean: m,
        std: if cell.quoted { None } else { sample_std(&finals) },
        best_mean: if cell.quoted { None } else { mean(&bests) },
        many: group(|r| r.final_eval.many),
        medium: group(|r| r.final_eval.medium),
        few: group(|r| r.final_eval.few),
        published: cell.published,
        delta,
        quoted: cell.quoted,
        smoke: cell.smoke,
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
            return if self.smoke { "not run (smoke)".into() } else { "not run".into() };
        };
        let mut s = format!("{m:.2}");
        if let Some(sd) = self.std {
            let pm = if style == Style::Latex { r" $\pm$ " } else { " ± " };
            write!(s, "{pm}{sd:.2}").unwrap();
        }
        if let Some(b) = self.best_mean {
            if format!("{b:.2}") != format!("{m:.2}") {
                write!(s, " (best {b:.2})").unwrap();
            }
        }
        if self.seeds < self.expected_seeds {
            write!(s, " ({}/{} seeds)", self.seeds, self.expected_seeds).unwrap();
        }
        if self.smoke {
            s.push_str(" (smoke)");
        }
        s
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
