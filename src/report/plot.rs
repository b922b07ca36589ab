//! Figures (PNG and SVG, with plotters): t-SNE panels (paper Fig. 1 / Fig. 3), training curves,
//! and per-class accuracy against training-set class size.
//!
//! Text is drawn with the embedded DejaVu Sans (registered as "sans-serif"), so figures look the
//! same on machines without system fonts. Each `plot_*` writes `<stem>.png` and `<stem>.svg`.
use crate::metrics::{EpochRecord, RunResult};
use anyhow::{anyhow, bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;

const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES)
            .unwrap_or_else(|_| panic!("assets/DejaVuSans.ttf is not a valid font"));
    });
}

/// The two files a figure was written to.
#[derive(Clone, Debug)]
pub struct PlotFiles {
    pub png: PathBuf,
    pub svg: PathBuf,
}

fn draw_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// Draw the same figure on a PNG and an SVG backend.
macro_rules! render_both {
    ($stem:expr, $size:expr, $draw:ident ( $($arg:expr),* )) => {{
        register_font();
        let png = PathBuf::from(format!("{}.png", $stem.display()));
        let svg = PathBuf::from(format!("{}.svg", $stem.display()));
        if let Some(dir) = png.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| anyhow!("creating {}: {e}", dir.display()))?;
        }
        {
            let root = BitMapBackend::new(&png, $size).into_drawing_area();
            $draw(&root, $($arg),*)?;
            root.present().map_err(|e| anyhow!("writing {}: {e:?}", png.display()))?;
        }
        {
            let root = SVGBackend::new(&svg, $size).into_drawing_area();
            $draw(&root, $($arg),*)?;
            root.present().map_err(|e| anyhow!("writing {}: {e:?}", svg.display()))?;
        }
        Ok(PlotFiles { png, svg })
    }};
}

/// Draw `title` centred in a band of `height` pixels at the top; returns the area below it.
fn with_title<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    size: u32,
    height: u32,
) -> Result<DrawingArea<DB, Shift>> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let (band, body) = root.split_vertically(height);
    let (w, h) = band.dim_in_pixel();
    let style = (FONT, size).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Center));
    band.draw(&Text::new(title.to_string(), (w as i32 / 2, h as i32 / 2 + 4), style)).map_err(draw_err)?;
    Ok(body)
}

/// Tableau-10 for up to 10 series/classes, evenly spaced hues beyond.
pub fn palette(i: usize, n: usize) -> RGBColor {
    const TAB10: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    if n <= 10 {
        let (r, g, b) = TAB10[i % 10];
        RGBColor(r, g, b)
    } else {
        let (r, g, b) = hsl_to_rgb(0.85 * i as f64 / n as f64, 0.7, 0.45);
        RGBColor(r, g, b)
    }
}

fn hsl_to_rgb(h: f64, s: f64, l: f64) -> (u8, u8, u8) {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let hp = h * 6.0;
    let x = c * (1.0 - (hp % 2.0 - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let to = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    (to(r), to(g), to(b))
}

// ---------------------------------------------------------------------------------------------
// t-SNE grid
// ---------------------------------------------------------------------------------------------

/// The 2-d points of one panel and their class labels.
#[derive(Clone, Debug)]
pub struct TsnePanel {
    pub points: Vec<[f32; 2]>,
    pub labels: Vec<usize>,
}

/// A methods x splits grid of t-SNE panels (paper Fig. 3: CE and GCL, train and test).
#[derive(Clone, Debug)]
pub struct TsneFigure {
    pub title: String,
    pub class_names: Vec<String>,
    /// Training images per class: orders the legend (and colours) from head to tail.
    pub class_sizes: Vec<usize>,
    /// Grid rows.
    pub methods: Vec<String>,
    /// Grid columns, e.g. ["train", "test"].
    pub splits: Vec<String>,
    /// `panels[method][split]`.
    pub panels: Vec<Vec<TsnePanel>>,
}

impl TsneFigure {
    fn check(&self) -> Result<()> {
        let c = self.class_names.len();
        if self.class_sizes.len() != c {
            bail!("t-SNE figure {:?}: {} class names but {} class sizes", self.title, c, self.class_sizes.len());
        }
        if self.panels.len() != self.methods.len() {
            bail!(
                "t-SNE figure {:?}: {} methods but {} rows of panels",
                self.title,
                self.methods.len(),
                self.panels.len()
            );
        }
        for (m, row) in self.panels.iter().enumerate() {
            if row.len() != self.splits.len() {
                bail!(
                    "t-SNE figure {:?}: method {:?} has {} panels for {} splits",
                    self.title,
                    self.methods[m],
                    row.len(),
                    self.splits.len()
                );
            }
            for (s, p) in row.iter().enumerate() {
                if p.points.len() != p.labels.len() {
                    bail!(
                        "t-SNE panel {}/{}: {} points but {} labels",
                        self.methods[m],
                        self.splits[s],
                        p.points.len(),
                        p.labels.len()
                    );
                }
                if let Some(&bad) = p.labels.iter().find(|&&l| l >= c) {
                    bail!(
                        "t-SNE panel {}/{}: label {bad} but only {c} classes are named",
                        self.methods[m],
                        self.splits[s]
                    );
                }
            }
        }
        Ok(())
    }

    /// Class indices from head (most training images) to tail; ties keep class order.
    fn head_to_tail(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.class_names.len()).collect();
        order.sort_by_key(|&k| std::cmp::Reverse(self.class_sizes[k]));
        order
    }
}

const TSNE_PANEL: u32 = 640;
const TSNE_LEGEND: u32 = 300;
const TITLE_H: u32 = 70;

/// Draw the grid with a legend (class, training images) on the right.
pub fn plot_tsne(fig: &TsneFigure, stem: &Path) -> Result<PlotFiles> {
    fig.check()?;
    let size = (
        TSNE_PANEL * fig.splits.len().max(1) as u32 + TSNE_LEGEND,
        TITLE_H + TSNE_PANEL * fig.methods.len().max(1) as u32,
    );
    render_both!(stem, size, draw_tsne(fig))
}

fn draw_tsne<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, fig: &TsneFigure) -> Result<()> {
    root.fill(&WHITE).map_err(draw_err)?;
    let body = with_title(root, &fig.title, 34, TITLE_H)?;
    let (grid, legend) = body.split_horizontally(TSNE_PANEL * fig.splits.len().max(1) as u32);
    let order = fig.head_to_tail();
    let n_classes = order.len();
    let mut colour = vec![BLACK; n_classes];
    for (rank, &k) in order.iter().enumerate() {
        colour[k] = palette(rank, n_classes);
    }
    let areas = grid.split_evenly((fig.methods.len(), fig.splits.len()));
    for (m, row) in fig.panels.iter().enumerate() {
        for (s, panel) in row.iter().enumerate() {
            let area = &areas[m * fig.splits.len() + s];
            let caption = format!("{} — {} ({} points)", fig.methods[m], fig.splits[s], panel.points.len());
            draw_tsne_panel(area, &caption, panel, &order, &colour)?;
        }
    }
    draw_class_legend(&legend, fig, &order, &colour)
}

fn draw_tsne_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    panel: &TsnePanel,
    order: &[usize],
    colour: &[RGBColor],
) -> Result<()> {
    let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
    for p in &panel.points {
        for a in 0..2 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    if panel.points.is_empty() {
        (lo, hi) = ([-1.0; 2], [1.0; 2]);
    }
    let pad = |a: usize| ((hi[a] - lo[a]) * 0.05).max(1e-3);
    let (x, y) = ((lo[0] - pad(0))..(hi[0] + pad(0)), (lo[1] - pad(1))..(hi[1] + pad(1)));
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(40)
        .build_cartesian_2d(x, y)
        .map_err(draw_err)?;
    // t-SNE coordinates have no units: axes named, no tick numbers.
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(0)
        .y_labels(0)
        .x_desc("t-SNE 1")
        .y_desc("t-SNE 2")
        .axis_desc_style((FONT, 18))
        .draw()
        .map_err(draw_err)?;
    let radius = if panel.points.len() > 3000 { 2 } else { 3 };
    // Head classes first, so the few tail points are drawn on top and stay visible.
    for &k in order {
        let style = colour[k].mix(0.75).filled();
        chart
            .draw_series(
                panel
                    .points
                    .iter()
                    .zip(&panel.labels)
                    .filter(|(_, &l)| l == k)
                    .map(|(p, _)| Circle::new((p[0], p[1]), radius, style)),
            )
            .map_err(draw_err)?;
    }
    Ok(())
}

fn draw_class_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    fig: &TsneFigure,
    order: &[usize],
    colour: &[RGBColor],
) -> Result<()> {
    let text =
        |s: &str, x: i32, y: i32, size: u32| Text::new(s.to_string(), (x, y), (FONT, size).into_font().color(&BLACK));
    area.draw(&text("Class (train images)", 10, 40, 20)).map_err(draw_err)?;
    area.draw(&text("head → tail", 10, 66, 16)).map_err(draw_err)?;
    // Long class lists (CIFAR-100) show the 10 head and 10 tail classes.
    let shown: Vec<Option<usize>> = if order.len() > 24 {
        order[..10]
            .iter()
            .map(|&k| Some(k))
            .chain(std::iter::once(None))
            .chain(order[order.len() - 10..].iter().map(|&k| Some(k)))
            .collect()
    } else {
        order.iter().map(|&k| Some(k)).collect()
    };
    for (i, entry) in shown.iter().enumerate() {
        let y = 104 + 28 * i as i32;
        match entry {
            Some(k) => {
                area.draw(&Circle::new((22, y), 7, colour[*k].filled())).map_err(draw_err)?;
                let label = format!("{} ({})", fig.class_names[*k], fig.class_sizes[*k]);
                area.draw(&text(&label, 38, y - 9, 18)).map_err(draw_err)?;
            }
            None => area.draw(&text(&format!("… {} more …", order.len() - 20), 38, y - 9, 18)).map_err(draw_err)?,
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Training curves
// ---------------------------------------------------------------------------------------------

/// One run's per-epoch log; stage-2 epochs (if any) follow stage 1 on the x axis.
#[derive(Clone, Debug)]
pub struct CurveRun {
    pub label: String,
    pub epochs: Vec<EpochRecord>,
}

impl CurveRun {
    /// A stage-2 result with its stage-1 parent: both stages on one axis.
    pub fn from_results(label: &str, stage1: Option<&RunResult>, result: &RunResult) -> CurveRun {
        let mut epochs: Vec<EpochRecord> = stage1.map(|r| r.epochs.clone()).unwrap_or_default();
        epochs.extend(result.epochs.iter().cloned());
        CurveRun { label: label.to_string(), epochs }
    }

    /// (x position, record): stage-2 epoch e is drawn at (last stage-1 epoch) + e.
    fn positions(&self) -> (Vec<(f64, &EpochRecord)>, Option<f64>) {
        let stage1_end = self.epochs.iter().filter(|e| e.stage == 1).map(|e| e.epoch).max();
        let has_stage2 = self.epochs.iter().any(|e| e.stage == 2);
        let pts = self
            .epochs
            .iter()
            .map(|e| (if e.stage == 2 { stage1_end.unwrap_or(0) + e.epoch } else { e.epoch } as f64, e))
            .collect();
        (pts, if has_stage2 { stage1_end.map(|s| s as f64 + 0.5) } else { None })
    }
}

/// Loss, accuracy (test top-1 solid, train dashed) and learning rate per epoch, side by side.
pub fn plot_training_curves(title: &str, runs: &[CurveRun], stem: &Path) -> Result<PlotFiles> {
    if runs.iter().all(|r| r.epochs.is_empty()) {
        bail!("training curves {title:?}: no epochs to plot");
    }
    render_both!(stem, (1950u32, 620u32), draw_curves(title, runs))
}

fn draw_curves<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str, runs: &[CurveRun]) -> Result<()> {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    root.fill(&WHITE).map_err(draw_err)?;
    let body = with_title(root, title, 32, 56)?;
    // One legend for all panels, in its own band, so it never covers a curve.
    let (legend, body) = body.split_vertically(36);
    draw_run_legend(&legend, runs)?;
    let panels = body.split_evenly((1, 3));
    let x_max = runs.iter().flat_map(|r| r.positions().0.into_iter().map(|p| p.0)).fold(1.0, f64::max);
    let markers = stage2_starts(runs);
    type Get = fn(&EpochRecord) -> f64;
    type Panel = (&'static str, &'static str, Vec<(Get, bool)>);
    let specs: [Panel; 3] = [
        ("Training loss", "loss", vec![(|e| e.train_loss, false)]),
        (
            "Top-1 accuracy (solid: test, dashed: train)",
            "accuracy (%)",
            vec![(|e| e.test_top1, false), (|e| e.train_acc, true)],
        ),
        ("Learning rate", "learning rate", vec![(|e| e.lr, false)]),
    ];
    for (area, (caption, y_desc, series)) in panels.iter().zip(specs) {
        let values = runs.iter().flat_map(|r| r.epochs.iter().flat_map(|e| series.iter().map(move |(g, _)| g(e))));
        let (y_lo, y_hi) = y_range(values);
        let mut chart = ChartBuilder::on(area)
            .caption(caption, (FONT, 22))
            .margin(14)
            .x_label_area_size(50)
            .y_label_area_size(75)
            .build_cartesian_2d(0.0..x_max + 1.0, y_lo..y_hi)
            .map_err(draw_err)?;
        let small = y_hi - y_lo < 1.0;
        chart
            .configure_mesh()
            .light_line_style(WHITE.mix(0.0))
            .x_desc("epoch (stage 2 continues after stage 1)")
            .y_desc(y_desc)
            .axis_desc_style((FONT, 18))
            .label_style((FONT, 15))
            // Epochs are whole numbers: with few epochs the mesh puts ticks at halves too,
            // which would print as repeated integers.
            .x_label_formatter(&|v| if (v - v.round()).abs() < 1e-6 { format!("{v:.0}") } else { String::new() })
            .y_label_formatter(&|v| if small { format!("{v:.3}") } else { format!("{v:.1}") })
            .draw()
            .map_err(draw_err)?;
        for &m in &markers {
            chart
                .draw_series(DashedLineSeries::new(vec![(m, y_lo), (m, y_hi)], 6, 4, BLACK.mix(0.6).stroke_width(1)))
                .map_err(draw_err)?;
            // Right-aligned against the marker, half-way up, inside the plot.
            let style = (FONT, 15).into_font().color(&BLACK).pos(Pos::new(HPos::Right, VPos::Center));
            chart
                .draw_series(std::iter::once(Text::new("stage 2 →", (m, (y_lo + y_hi) / 2.0), style)))
                .map_err(draw_err)?;
        }
        for (i, run) in runs.iter().enumerate() {
            let colour = palette(i, runs.len());
            let (pts, _) = run.positions();
            for (get, dashed) in &series {
                let line: Vec<(f64, f64)> = pts.iter().map(|(x, e)| (*x, get(e))).filter(|p| p.1.is_finite()).collect();
                if *dashed {
                    chart.draw_series(DashedLineSeries::new(line, 8, 5, colour.stroke_width(2))).map_err(draw_err)?;
                } else {
                    chart.draw_series(LineSeries::new(line, colour.stroke_width(2))).map_err(draw_err)?;
                }
            }
        }
    }
    Ok(())
}

/// Where stage 2 starts on the x axis, once per distinct position.
fn stage2_starts(runs: &[CurveRun]) -> Vec<f64> {
    let mut m: Vec<f64> = runs.iter().filter_map(|r| r.positions().1).collect();
    m.sort_by(f64::total_cmp);
    m.dedup();
    m
}

/// A panel's y range: from 0 (or the lowest value below it) to 5 % above the highest finite value.
fn y_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let values: Vec<f64> = values.filter(|v| v.is_finite()).collect();
    let y_hi = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let y_lo = values.iter().cloned().fold(f64::INFINITY, f64::min).min(0.0);
    (y_lo, if y_hi > y_lo { y_hi + 0.05 * (y_hi - y_lo) } else { y_lo + 1.0 })
}

/// A horizontal legend: a coloured line and the label of each run.
fn draw_run_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, runs: &[CurveRun]) -> Result<()> {
    let font = (FONT, 18).into_font();
    let mut x = 90i32;
    for (i, run) in runs.iter().enumerate() {
        let colour = palette(i, runs.len());
        area.draw(&PathElement::new(vec![(x, 18), (x + 30, 18)], colour.stroke_width(4))).map_err(draw_err)?;
        area.draw(&Text::new(run.label.clone(), (x + 38, 8), font.clone().color(&BLACK))).map_err(draw_err)?;
        let (w, _) = area.estimate_text_size(&run.label, &font.clone().into_text_style(area)).map_err(draw_err)?;
        x += 38 + w as i32 + 40;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Per-class accuracy against class size
// ---------------------------------------------------------------------------------------------

/// One method's test accuracy per class with that class's number of training images.
#[derive(Clone, Debug)]
pub struct PerClassSeries {
    pub label: String,
    pub class_counts: Vec<usize>,
    pub accuracy: Vec<f64>,
}

impl PerClassSeries {
    /// Final-epoch per-class accuracy of a stored run.
    pub fn from_result(label: &str, result: &RunResult) -> PerClassSeries {
        PerClassSeries {
            label: label.to_string(),
            class_counts: result.train_class_counts.clone(),
            accuracy: result.final_eval.per_class.clone(),
        }
    }

    /// Mean accuracy per class size, or per log-spaced bin when there are many sizes.
    fn trend(&self) -> Vec<(f64, f64)> {
        if self.class_counts.is_empty() {
            return Vec::new();
        }
        let mut pts: Vec<(f64, f64)> =
            self.class_counts.iter().map(|&c| c.max(1) as f64).zip(self.accuracy.iter().cloned()).collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let distinct = {
            let mut d: Vec<f64> = pts.iter().map(|p| p.0).collect();
            d.dedup();
            d.len()
        };
        let (lo, hi) = (pts[0].0.ln(), pts[pts.len() - 1].0.ln());
        let key = |x: f64| -> f64 {
            if distinct <= 30 {
                x
            } else {
                // 16 log-spaced bins over the range are plenty for a trend line.
                let w = ((hi - lo) / 15.0).max(1e-9);
                (lo + (((x.ln() - lo) / w).floor() + 0.5) * w).exp()
            }
        };
        let mut out: Vec<(f64, f64, usize)> = Vec::new();
        for (x, y) in pts {
            let k = key(x);
            match out.last_mut() {
                Some(last) if last.0 == k => {
                    last.1 += y;
                    last.2 += 1;
                }
                _ => out.push((k, y, 1)),
            }
        }
        out.into_iter().map(|(x, s, n)| (x, s / n as f64)).collect()
    }
}

/// Scatter of per-class test accuracy against training images (log x), with a trend line per
/// method and the few / medium / many shot boundaries (20 and 100 images).
pub fn plot_per_class_accuracy(title: &str, series: &[PerClassSeries], stem: &Path) -> Result<PlotFiles> {
    for s in series {
        if s.class_counts.len() != s.accuracy.len() {
            bail!(
                "per-class plot {title:?}: series {:?} has {} class counts but {} accuracies",
                s.label,
                s.class_counts.len(),
                s.accuracy.len()
            );
        }
    }
    if series.iter().all(|s| s.class_counts.is_empty()) {
        bail!("per-class plot {title:?}: no classes to plot");
    }
    render_both!(stem, (1100u32, 720u32), draw_per_class(title, series))
}

fn draw_per_class<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    series: &[PerClassSeries],
) -> Result<()> {
    root.fill(&WHITE).map_err(draw_err)?;
    let counts = series.iter().flat_map(|s| s.class_counts.iter().map(|&c| c.max(1) as f64));
    let (lo, hi) = counts.fold((f64::INFINITY, 0.0f64), |(a, b), c| (a.min(c), b.max(c)));
    let (lo, hi) = (lo / 1.3, hi * 1.3);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 30))
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(75)
        .build_cartesian_2d((lo..hi).log_scale(), 0.0..105.0)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("training images of the class (log scale)")
        .y_desc("test accuracy of the class (%)")
        .axis_desc_style((FONT, 20))
        .label_style((FONT, 16))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(BLACK.mix(0.05))
        .draw()
        .map_err(draw_err)?;
    for (edge, left, right) in [(20.0, "few", "medium"), (100.0, "medium", "many")] {
        if edge > lo && edge < hi {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(edge, 0.0), (edge, 105.0)],
                    6,
                    4,
                    BLACK.mix(0.5).stroke_width(1),
                ))
                .map_err(draw_err)?;
            let style = (FONT, 15).into_font().color(&BLACK.mix(0.7));
            chart
                .draw_series(std::iter::once(Text::new(format!("{left} ←"), (edge / 1.45, 102.0), style.clone())))
                .map_err(draw_err)?;
            chart
                .draw_series(std::iter::once(Text::new(format!("→ {right}"), (edge * 1.04, 102.0), style)))
                .map_err(draw_err)?;
        }
    }
    for (i, s) in series.iter().enumerate() {
        let colour = palette(i, series.len());
        chart
            .draw_series(
                s.class_counts
                    .iter()
                    .zip(&s.accuracy)
                    .map(|(&c, &a)| Circle::new((c.max(1) as f64, a), 4, colour.mix(0.55).filled())),
            )
            .map_err(draw_err)?;
        chart
            .draw_series(LineSeries::new(s.trend(), colour.stroke_width(3)))
            .map_err(draw_err)?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT, 18))
        .draw()
        .map_err(draw_err)?;
    Ok(())
}
