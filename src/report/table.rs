//! One manifest's table in the paper's layout (rows x columns, reproduced beside published
//! with their difference), as Markdown, LaTeX and CSV.
use super::{summarize, verdict, CellInput, CellSummary, Style, DASH};
use anyhow::{bail, Result};
use polars::prelude::*;
use std::collections::HashMap;
use std::fmt::Write as _;

/// A manifest's cells arranged as rows x columns, both in manifest (first appearance) order.
pub struct PaperTable {
    pub manifest: String,
    pub title: String,
    /// (row id, label, quoted)
    pub rows: Vec<(String, String, bool)>,
    /// (column id, label)
    pub columns: Vec<(String, String)>,
    cells: HashMap<(usize, usize), CellSummary>,
}

/// Group cells by manifest (in order of first appearance) and lay each out as a table.
pub fn paper_tables(cells: &[CellInput]) -> Result<Vec<PaperTable>> {
    let mut tables: Vec<PaperTable> = Vec::new();
    for cell in cells {
        let t = match tables.iter().position(|t| t.manifest == cell.manifest) {
            Some(t) => t,
            None => {
                tables.push(PaperTable {
                    manifest: cell.manifest.clone(),
                    title: cell.table_title.clone(),
                    rows: Vec::new(),
                    columns: Vec::new(),
                    cells: HashMap::new(),
                });
                tables.len() - 1
            }
        };
        let table = &mut tables[t];
        let r = match table.rows.iter().position(|r| r.0 == cell.row) {
            Some(r) => r,
            None => {
                table.rows.push((cell.row.clone(), cell.row_label.clone(), cell.quoted));
                table.rows.len() - 1
            }
        };
        let c = match table.columns.iter().position(|c| c.0 == cell.column) {
            Some(c) => c,
            None => {
                table.columns.push((cell.column.clone(), cell.column_label.clone()));
                table.columns.len() - 1
            }
        };
        if table.cells.insert((r, c), summarize(cell)).is_some() {
            bail!(
                "manifest {:?}: cell (row {:?}, column {:?}) is given twice; each row x column must appear once",
                cell.manifest,
                cell.row,
                cell.column
            );
        }
    }
    Ok(tables)
}

impl PaperTable {
    pub fn cell(&self, row: &str, column: &str) -> Option<&CellSummary> {
        let r = self.rows.iter().position(|x| x.0 == row)?;
        let c = self.columns.iter().position(|x| x.0 == column)?;
        self.cells.get(&(r, c))
    }

    /// The cells in table order, each named by its row id (`row.column` when the table has
    /// several columns), as the verdict line names them.
    fn named_cells(&self) -> Vec<(String, &CellSummary)> {
        let mut out = Vec::new();
        for (r, (row, _, _)) in self.rows.iter().enumerate() {
            for (c, (column, _)) in self.columns.iter().enumerate() {
                if let Some(s) = self.cells.get(&(r, c)) {
                    let name =
                        if self.columns.len() == 1 { row.clone() } else { crate::manifest::cell_id(row, column) };
                    out.push((name, s));
                }
            }
        }
        out
    }

    /// One line counting the verdicts of the table's cells ([`verdict::summary_line`]).
    pub fn verdict_line(&self) -> String {
        verdict::summary_line(&self.named_cells())
    }

    /// Header and body as plain strings, the layout shared by Markdown and CSV.
    fn text_grid(&self, shots: bool, style: Style) -> (Vec<String>, Vec<Vec<String>>) {
        let mut header = vec!["Method".to_string()];
        for (_, label) in &self.columns {
            header.push(label.clone());
            header.push(format!("{label} paper"));
            header.push(format!("{label} Δ"));
            if shots {
                header.push(format!("{label} many / med / few"));
            }
        }
        let body = (0..self.rows.len())
            .map(|r| {
                let mut line = vec![self.rows[r].1.clone()];
                for c in 0..self.columns.len() {
                    match self.cells.get(&(r, c)) {
                        Some(s) => {
                            line.push(s.reproduced_text(style));
                            line.push(s.published_text());
                            line.push(s.delta_text(style));
                            if shots {
                                line.push(s.shots_text(style));
                            }
                        }
                        // The manifest has no such cell (e.g. a method not run on that dataset).
                        None => line.extend(std::iter::repeat_n(DASH.to_string(), if shots { 4 } else { 3 })),
                    }
                }
                line
            })
            .collect();
        (header, body)
    }

    pub fn markdown(&self, shots: bool) -> String {
        let esc = |s: &str| s.replace('|', r"\|");
        let (header, body) = self.text_grid(shots, Style::Plain);
        let mut out = String::new();
        writeln!(out, "| {} |", header.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" | ")).unwrap();
        let rule: Vec<&str> = header.iter().enumerate().map(|(i, _)| if i == 0 { ":---" } else { "---:" }).collect();
        writeln!(out, "| {} |", rule.join(" | ")).unwrap();
        for line in body {
            writeln!(out, "| {} |", line.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" | ")).unwrap();
        }
        out
    }

    /// A booktabs table: one column group (ours, paper, difference[, shots]) per manifest column.
    pub fn latex(&self, shots: bool) -> String {
        let per = if shots { 4 } else { 3 };
        let mut out = String::new();
        out.push_str("% Generated by gcl-repro from stored results; needs \\usepackage{booktabs} and \\usepackage{amssymb} (\\checkmark).\n");
        out.push_str("\\begin{table}[t]\n\\centering\n");
        writeln!(
            out,
            "\\caption{{{} (top-1 accuracy, \\%; ours: final epoch, mean $\\pm$ 95\\% Student-t interval over n seeds; \\checkmark{{}} reproduced, $\\downarrow$/$\\uparrow$ below/above the paper, $\\cdot$ one seed)}}",
            latex_escape(&self.title)
        )
        .unwrap();
        writeln!(out, "\\label{{tab:{}}}", self.manifest.replace(|c: char| !c.is_ascii_alphanumeric(), "-")).unwrap();
        writeln!(
            out,
            "\\begin{{tabular}}{{l{}}}",
            format!("|{}", "c".repeat(per)).repeat(self.columns.len()).replace('|', " ")
        )
        .unwrap();
        out.push_str("\\toprule\n");
        let groups: Vec<String> =
            self.columns.iter().map(|(_, l)| format!("\\multicolumn{{{per}}}{{c}}{{{}}}", latex_escape(l))).collect();
        writeln!(out, " & {} \\\\", groups.join(" & ")).unwrap();
        let rules: Vec<String> = (0..self.columns.len())
            .map(|c| format!("\\cmidrule(lr){{{}-{}}}", 2 + c * per, 1 + (c + 1) * per))
            .collect();
        writeln!(out, "{}", rules.join(" ")).unwrap();
        let mut sub = vec!["Ours", "Paper", "$\\Delta$"];
        if shots {
            sub.push("Many / Med. / Few");
        }
        let subs: Vec<&str> = (0..self.columns.len()).flat_map(|_| sub.iter().copied()).collect();
        writeln!(out, "Method & {} \\\\", subs.join(" & ")).unwrap();
        out.push_str("\\midrule\n");
        for r in 0..self.rows.len() {
            let mut line = vec![latex_escape(&self.rows[r].1)];
            for c in 0..self.columns.len() {
                match self.cells.get(&(r, c)) {
                    Some(s) => {
                        line.push(s.reproduced_text(Style::Latex));
                        line.push(s.published.map(|p| format!("{p:.2}")).unwrap_or_else(|| "--".into()));
                        line.push(s.delta_text(Style::Latex));
                        if shots {
                            line.push(s.shots_text(Style::Latex).replace(DASH, "--"));
                        }
                    }
                    None => line.extend(std::iter::repeat_n("--".to_string(), per)),
                }
            }
            writeln!(out, "{} \\\\", line.join(" & ")).unwrap();
        }
        out.push_str("\\bottomrule\n\\end{tabular}\n\\end{table}\n");
        out
    }

    /// The table as a DataFrame of strings, exactly the Markdown cell texts.
    pub fn frame(&self, shots: bool) -> Result<DataFrame> {
        let (header, body) = self.text_grid(shots, Style::Plain);
        let columns: Vec<Column> = header
            .iter()
            .enumerate()
            .map(|(i, h)| Column::new(h.as_str().into(), body.iter().map(|l| l[i].clone()).collect::<Vec<String>>()))
            .collect();
        Ok(DataFrame::new(body.len(), columns)?)
    }
}

/// Escape LaTeX specials and spell out the few non-ASCII symbols labels use.
fn latex_escape(s: &str) -> String {
    let mut out = String::new();
    for ch in s.chars() {
        match ch {
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(ch);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '\\' => out.push_str("\\textbackslash{}"),
            'γ' => out.push_str("$\\gamma$"),
            'β' => out.push_str("$\\beta$"),
            'ρ' => out.push_str("$\\rho$"),
            'τ' => out.push_str("$\\tau$"),
            '±' => out.push_str("$\\pm$"),
            '×' => out.push_str("$\\times$"),
            'Δ' => out.push_str("$\\Delta$"),
            '–' => out.push_str("--"),
            '—' => out.push_str("---"),
            _ => out.push(ch),
        }
    }
    out
}
