//! The scheduler: which run comes next, from the cache states, the dependencies (a stage-2 run
//! waits for its stage-1 run) and the failures (a failed stage-1 run skips the runs built on it).
//! Pure bookkeeping: it starts nothing and reads the cache only through the `state` function it
//! is given, so it is tested without training (see the tests below); `runner` executes what it
//! decides.
use super::graph::RunNode;
use crate::cache::RunState;
use std::collections::HashSet;

/// What to do with the next run.
#[derive(Debug, PartialEq)]
pub enum Decision<'a> {
    /// Train it (it is no longer pending; report a failure or a wind-down with `failed`).
    Start(&'a RunNode),
    /// Already in the cache: nothing to do.
    Cached(&'a RunNode),
    /// Never to run this time: its stage-1 run failed (the reason names it).
    Skip(&'a RunNode, String),
    /// Nothing can start now (dependencies in progress, or no free slot): ask again later.
    Wait,
    /// Nothing is pending.
    Done,
}

/// The pending runs in dependency order and what became of the others.
#[derive(Debug)]
pub struct Scheduler<'a> {
    pending: Vec<&'a RunNode>,
    /// Runs that failed, were skipped or wound down: their stage-2 runs are skipped.
    failed: HashSet<String>,
}

impl<'a> Scheduler<'a> {
    /// `jobs` in the graph's order (each stage-1 run before the stage-2 runs built on it).
    pub fn new(jobs: &[&'a RunNode]) -> Self {
        Scheduler { pending: jobs.to_vec(), failed: HashSet::new() }
    }

    pub fn is_done(&self) -> bool {
        self.pending.is_empty()
    }

    /// The next decision. `may_start`: whether a slot is free (when none is, runs that need
    /// no slot, cached or skipped, are still reported).
    pub fn next(&mut self, state: &dyn Fn(&str) -> RunState, may_start: bool) -> Decision<'a> {
        if self.pending.is_empty() {
            return Decision::Done;
        }
        for i in 0..self.pending.len() {
            let job = self.pending[i];
            if let Some(parent) = job.parent() {
                if self.failed.contains(parent) {
                    self.pending.remove(i);
                    self.failed.insert(job.key.clone());
                    return Decision::Skip(job, format!("its stage-1 run {} failed", &parent[..12.min(parent.len())]));
                }
                if state(parent) != RunState::Cached {
                    continue; // its stage 1 is still running (or pending ahead of it)
                }
            }
            if state(&job.key) == RunState::Cached {
                self.pending.remove(i);
                return Decision::Cached(job);
            }
            if may_start {
                self.pending.remove(i);
                return Decision::Start(job);
            }
        }
        Decision::Wait
    }

    /// A started run failed (or was wound down): the runs built on it will be skipped.
    pub fn failed(&mut self, key: &str) {
        self.failed.insert(key.to_string());
    }

    /// A started run could not be taken now (another process holds its lock): it goes back to
    /// the end of the queue.
    pub fn requeue(&mut self, job: &'a RunNode) {
        self.pending.push(job);
    }

    /// Everything still pending, in order (the deadline came: nothing more starts).
    pub fn drain(&mut self) -> Vec<&'a RunNode> {
        self.pending.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::graph::RunStage;
    use crate::training::spec::RunSpec;
    use std::collections::HashMap;

    fn node(key: &str, parent: Option<&str>) -> RunNode {
        RunNode {
            key: key.repeat(12),
            stage: parent.map_or(RunStage::One, |p| RunStage::Two { parent: p.repeat(12) }),
            spec: RunSpec::default(),
            data_identity: String::new(),
            manifest: Default::default(),
            uses: vec![],
        }
    }

    fn states(pairs: &[(&str, RunState)]) -> HashMap<String, RunState> {
        pairs.iter().map(|(k, s)| (k.repeat(12), *s)).collect()
    }

    fn state_of(m: &HashMap<String, RunState>) -> impl Fn(&str) -> RunState + '_ {
        |k: &str| m.get(k).copied().unwrap_or(RunState::Missing)
    }

    #[test]
    fn stage_two_waits_for_its_stage_one_and_cached_runs_need_no_slot() {
        let (a, b, c) = (node("a", None), node("b", Some("a")), node("c", None));
        let mut s = Scheduler::new(&[&a, &b, &c]);
        let st = states(&[("c", RunState::Cached)]);
        assert_eq!(s.next(&state_of(&st), true), Decision::Start(&a));
        // a runs: b waits for it, c is cached (reported even without a free slot).
        assert_eq!(s.next(&state_of(&st), false), Decision::Cached(&c));
        assert_eq!(s.next(&state_of(&st), true), Decision::Wait);
        let st = states(&[("a", RunState::Cached), ("c", RunState::Cached)]);
        assert_eq!(s.next(&state_of(&st), false), Decision::Wait, "no slot");
        assert_eq!(s.next(&state_of(&st), true), Decision::Start(&b));
        assert!(s.is_done());
        assert_eq!(s.next(&state_of(&st), true), Decision::Done);
    }

    #[test]
    fn a_failed_stage_one_skips_the_runs_built_on_it_and_nothing_else() {
        let (a, b, b2, c) = (node("a", None), node("b", Some("a")), node("d", Some("a")), node("c", None));
        let mut s = Scheduler::new(&[&a, &b, &b2, &c]);
        let st = states(&[]);
        assert_eq!(s.next(&state_of(&st), true), Decision::Start(&a));
        s.failed(&a.key);
        match s.next(&state_of(&st), true) {
            Decision::Skip(n, why) => assert!(n == &b && why.contains("aaaaaaaaaaaa failed"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(s.next(&state_of(&st), true), Decision::Skip(n, _) if n == &b2));
        assert_eq!(s.next(&state_of(&st), true), Decision::Start(&c));
    }

    #[test]
    fn a_requeued_run_comes_back_last_and_drain_empties_the_queue() {
        let (a, c) = (node("a", None), node("c", None));
        let mut s = Scheduler::new(&[&a, &c]);
        let st = states(&[]);
        assert_eq!(s.next(&state_of(&st), true), Decision::Start(&a));
        s.requeue(&a);
        assert_eq!(s.next(&state_of(&st), true), Decision::Start(&c));
        assert_eq!(s.drain(), vec![&a]);
        assert_eq!(s.next(&state_of(&st), true), Decision::Done);
    }
}
