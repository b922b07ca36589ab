//! A comparison as Markdown (for a person) and as CSV (for a script), with the same columns.
use super::{CellComparison, Comparison, Presence};
use anyhow::Result;
use polars::prelude::*;
use std::fmt::Write as _;

/// The table's columns, Markdown header and CSV name. The CSV adds `matched` (both / A only /
/// B only), as it holds the matched and the one-sided cells in one table.
const COLUMNS: [(&str, &str); 15] = [
    ("cell", "cell"),
    ("n A", "n_a"),
    ("mean A", "mean_a"),
    ("std A", "std_a"),
    ("best A", "best_a"),
    ("n B", "n_b"),
    ("mean B", "mean_b"),
    ("std B", "std_b"),
    ("best B", "best_b"),
    ("B − A", "difference"),
    ("t", "t"),
    ("df", "df"),
    ("p", "p"),
    ("weights", "weights"),
    ("differs", "differs"),
];

/// The Markdown text: which sides, what was set aside, then the matched cells and the cells
/// found on one side only.
pub fn markdown(c: &Comparison) -> String {
    let mut text = String::from("# Comparison\n\n");
    let _ = writeln!(text, "- A: {}", c.a);
    let _ = writeln!(text, "- B: {}", c.b);
    let ignored = if c.ignore.is_empty() { String::new() } else { format!(", {} (`--ignore`)", c.ignore.join(", ")) };
    let _ = writeln!(text, "- set aside when matching cells: seed{ignored}");
    text.push_str(
        "- each side: final-epoch top-1 % of the cell's runs (n, mean, sample std; best: mean best-epoch top-1); \
         B − A: difference of the means; t, df, p: Welch's two-sided t-test (n/a with fewer than two runs on a side); \
         weights: final weights of the runs of equal seed byte-identical or not\n",
    );
    let (both, one): (Vec<&CellComparison>, Vec<&CellComparison>) =
        c.cells.iter().partition(|cell| cell.presence == Presence::Both);
    let _ = writeln!(text, "\n## Cells on both sides ({})\n", both.len());
    table(&mut text, &both);
    if !one.is_empty() {
        let _ = writeln!(text, "\n## Cells on one side only ({})\n", one.len());
        text.push_str("Each with how the nearest cell of the other side differs: name those settings with `--ignore` to match them.\n\n");
        table(&mut text, &one);
    }
    text
}

fn table(text: &mut String, cells: &[&CellComparison]) {
    if cells.is_empty() {
        text.push_str("none\n");
        return;
    }
    let _ = writeln!(text, "| {} |", COLUMNS.map(|(header, _)| header).join(" | "));
    let _ = writeln!(text, "|{}", "---|".repeat(COLUMNS.len()));
    for cell in cells {
        let row = fields(cell).map(|f| f.unwrap_or_else(|| "n/a".into()).replace('|', "\\|"));
        let _ = writeln!(text, "| {} |", row.join(" | "));
    }
}

/// A cell's fields in column order, as printed; `None` where there is no value.
fn fields(c: &CellComparison) -> [Option<String>; 15] {
    let num = |x: f64, digits: usize| (!x.is_nan()).then(|| format!("{x:.digits$}"));
    let p = (!c.p.is_nan()).then(|| if c.p < 0.001 { "<0.001".to_string() } else { format!("{:.3}", c.p) });
    [
        Some(c.label.clone()),
        Some(c.a.n.to_string()),
        num(c.a.mean, 2),
        num(c.a.std, 2),
        c.a.best.and_then(|b| num(b, 2)),
        Some(c.b.n.to_string()),
        num(c.b.mean, 2),
        num(c.b.std, 2),
        c.b.best.and_then(|b| num(b, 2)),
        (!c.difference.is_nan()).then(|| format!("{:+.2}", c.difference)),
        num(c.t, 2),
        num(c.df, 1),
        p,
        Some(c.weights.clone()),
        Some(c.differs.join("; ")),
    ]
}

/// The CSV text: one row per cell, numbers at full precision, empty where Markdown says n/a.
pub fn csv_text(c: &Comparison) -> Result<String> {
    let cells = &c.cells;
    let text = |f: &dyn Fn(&CellComparison) -> String| cells.iter().map(f).collect::<Vec<String>>();
    let count = |f: &dyn Fn(&CellComparison) -> usize| cells.iter().map(|c| f(c) as u64).collect::<Vec<u64>>();
    let number = |f: &dyn Fn(&CellComparison) -> f64| {
        cells.iter().map(|c| Some(f(c)).filter(|x| !x.is_nan())).collect::<Vec<Option<f64>>>()
    };
    let best = |f: &dyn Fn(&CellComparison) -> Option<f64>| cells.iter().map(f).collect::<Vec<Option<f64>>>();
    let name = |i: usize| PlSmallStr::from(COLUMNS[i].1);
    let columns = vec![
        Column::new(name(0), text(&|c| c.label.clone())),
        Column::new("matched".into(), text(&|c| c.presence.label().to_string())),
        Column::new(name(1), count(&|c| c.a.n)),
        Column::new(name(2), number(&|c| c.a.mean)),
        Column::new(name(3), number(&|c| c.a.std)),
        Column::new(name(4), best(&|c| c.a.best)),
        Column::new(name(5), count(&|c| c.b.n)),
        Column::new(name(6), number(&|c| c.b.mean)),
        Column::new(name(7), number(&|c| c.b.std)),
        Column::new(name(8), best(&|c| c.b.best)),
        Column::new(name(9), number(&|c| c.difference)),
        Column::new(name(10), number(&|c| c.t)),
        Column::new(name(11), number(&|c| c.df)),
        Column::new(name(12), number(&|c| c.p)),
        Column::new(name(13), text(&|c| c.weights.clone())),
        Column::new(name(14), text(&|c| c.differs.join("; "))),
    ];
    let mut frame = DataFrame::new(cells.len(), columns)?;
    let mut bytes = Vec::new();
    CsvWriter::new(&mut bytes).include_header(true).finish(&mut frame)?;
    Ok(String::from_utf8(bytes)?)
}
