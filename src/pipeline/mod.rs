//! From manifests to results: the run graph (`graph`), its plan with cache states, costs and
//! Slurm scripts (`plan`), and its execution (`runner`). Every command reads the one graph.
pub mod graph;
pub mod plan;
pub mod runner;

pub use graph::{CellUse, RunGraph, RunNode, Stage, UnavailableRun};
