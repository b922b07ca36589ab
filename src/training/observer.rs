//! What a run reports while it trains, behind one trait so the epoch loop knows nothing of
//! progress bars or log formats (as ripgrep's `Sink` keeps searching apart from printing).
use crate::metrics::EpochRecord;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::cell::{Cell, RefCell};

/// Receives the events of one run's training, in order.
pub trait Observer {
    /// A checkpoint was found: training continues after `epochs_done` epochs of `stage`.
    fn resumed(&self, _stage: u8, _epochs_done: usize) {}
    /// An epoch of `steps` optimiser steps begins.
    fn epoch_started(&self, _stage: u8, _epoch: usize, _epochs: usize, _steps: usize) {}
    /// A step ended; the running means of the epoch so far.
    fn step_done(&self, _step: usize, _mean_loss: f64, _accuracy: f64) {}
    /// An epoch ended and was evaluated (its record is about to be checkpointed).
    fn epoch_finished(&self, _record: &EpochRecord) {}
    /// Training stopped before the end of an epoch (interrupt or divergence).
    fn stopped(&self) {}
}

/// No output (tests, benchmarks).
pub struct Silent;

impl Observer for Silent {}

/// A progress bar per epoch (with rate and ETA) and one log line per epoch, labelled with the
/// run's name; bars go to `multi` when several runs share the terminal.
pub struct Progress<'a> {
    label: String,
    multi: Option<&'a MultiProgress>,
    bar: RefCell<Option<ProgressBar>>,
    epochs: Cell<usize>,
}

impl<'a> Progress<'a> {
    pub fn new(label: impl Into<String>, multi: Option<&'a MultiProgress>) -> Progress<'a> {
        Progress { label: label.into(), multi, bar: RefCell::new(None), epochs: Cell::new(0) }
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
}

impl Observer for Progress<'_> {
    fn resumed(&self, stage: u8, epochs_done: usize) {
        tracing::info!("{}: resuming stage {stage} after epoch {epochs_done}", self.label);
    }

    fn epoch_started(&self, stage: u8, epoch: usize, epochs: usize, steps: usize) {
        let bar = ProgressBar::new(steps as u64);
        let bar = match self.multi {
            Some(m) => m.add(bar),
            None => bar,
        };
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} steps {per_sec} ETA {eta} {msg}")
                .unwrap()
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{} s{stage} ep {epoch}/{epochs}", self.label));
        *self.bar.borrow_mut() = Some(bar);
        self.epochs.set(epochs);
    }

    fn step_done(&self, step: usize, mean_loss: f64, accuracy: f64) {
        if let Some(bar) = self.bar.borrow().as_ref() {
            bar.inc(1);
            // NaN: the static step on a GPU keeps the sums on the device until the epoch ends.
            if step.is_multiple_of(10) && mean_loss.is_finite() {
                bar.set_message(format!("loss {mean_loss:.3} acc {accuracy:.1}%"));
            }
        }
    }

    fn epoch_finished(&self, r: &EpochRecord) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.finish_and_clear();
        }
        tracing::info!(
            "{} stage {} epoch {}/{}: loss {:.4} train {:.2}% test {:.2}% (many {} / med {} / few {}) {:.0} img/s",
            self.label,
            r.stage,
            r.epoch,
            self.epochs.get(),
            r.train_loss,
            r.train_acc,
            r.test_top1,
            fmt_opt(r.many),
            fmt_opt(r.medium),
            fmt_opt(r.few),
            r.images_per_sec
        );
    }

    fn stopped(&self) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.abandon();
        }
    }
}
