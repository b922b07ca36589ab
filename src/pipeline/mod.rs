//! From manifests to results: the run graph (`graph`), its plan with cache states, costs and
//! Slurm scripts (`plan`), and its execution: `schedule` decides what runs next, `runner`
//! executes it here or in workers (`worker`: the job file a worker or Slurm task receives).
//! Every command reads the one graph.
pub mod graph;
pub mod launch;
pub mod plan;
pub mod runner;
pub mod schedule;
pub mod worker;

pub use graph::{CellUse, RunGraph, RunNode, RunStage, UnavailableRun};
