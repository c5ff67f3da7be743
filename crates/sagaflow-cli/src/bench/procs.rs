//! Where a run's CPU goes: each of its processes' CPU time and context switches over the
//! measured windows. The coordinator, the participant and the load generator share the
//! machine's cores, and so does the `direct` baseline's pair, so when the load keeps the
//! machine busy the ratio of the two throughputs follows the ratio of their CPU per saga, and
//! this shows which process spends it and how often each was switched out to spend it.

use std::collections::BTreeMap;

use serde::Serialize;

/// One process's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcCounters {
    /// User + system CPU seconds.
    cpu_s: Option<f64>,
    /// Voluntary and involuntary context switches of its threads alive at the reading.
    switches: Option<u64>,
}

impl ProcCounters {
    pub fn cpu_s(&self) -> Option<f64> {
        self.cpu_s
    }
}

/// The counters of process `pid` now; `None` fields where `/proc` cannot tell.
pub fn read(pid: u32) -> ProcCounters {
    ProcCounters {
        cpu_s: super::children::cpu_seconds(pid),
        switches: switches(pid),
    }
}

/// The context switches of every thread of `pid`, summed.
fn switches(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut sum = 0;
    for task in tasks.filter_map(Result::ok) {
        // A thread that ended since the listing has no status any more: it is not counted.
        if let Ok(status) = std::fs::read_to_string(task.path().join("status")) {
            sum += task_switches(&status)?;
        }
    }
    Some(sum)
}

/// `voluntary_ctxt_switches` + `nonvoluntary_ctxt_switches` of one thread's status.
fn task_switches(status: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some(field("voluntary_ctxt_switches:")? + field("nonvoluntary_ctxt_switches:")?)
}

/// One process's counters summed over the measured windows of a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcWindow {
    cpu_s: f64,
    switches: u64,
    /// A window could not read one of its counters: no figure then.
    unread: bool,
}

impl ProcWindow {
    pub fn add(&mut self, before: ProcCounters, after: ProcCounters) {
        match (
            before.cpu_s.zip(after.cpu_s),
            before.switches.zip(after.switches),
        ) {
            (Some((b, a)), Some((sb, sa))) => {
                self.cpu_s += (a - b).max(0.0);
                // Threads that ended inside the window take their switches with them.
                self.switches += sa.saturating_sub(sb);
            }
            _ => self.unread = true,
        }
    }

    fn share(&self, sagas: usize) -> Option<ProcessShare> {
        if self.unread || sagas == 0 {
            return None;
        }
        Some(ProcessShare {
            cpu_s_per_saga: self.cpu_s / sagas as f64,
            switches_per_saga: self.switches as f64 / sagas as f64,
        })
    }
}

/// One process's part of a saga.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ProcessShare {
    pub cpu_s_per_saga: f64,
    pub switches_per_saga: f64,
}

/// The processes of one kind of load (the coordinator's, or `direct`), by name.
#[derive(Debug, Default)]
pub struct Processes {
    named: Vec<(&'static str, u32, ProcWindow)>,
}

impl Processes {
    pub fn new(named: &[(&'static str, u32)]) -> Processes {
        Processes {
            named: named
                .iter()
                .map(|&(name, pid)| (name, pid, ProcWindow::default()))
                .collect(),
        }
    }

    pub fn pids(&self) -> Vec<u32> {
        self.named.iter().map(|(_, pid, _)| *pid).collect()
    }

    /// Adds one window, from readings of `pids()` in their order when it opened and closed.
    pub fn add(&mut self, before: &[ProcCounters], after: &[ProcCounters]) {
        for (i, (_, _, window)) in self.named.iter_mut().enumerate() {
            match (before.get(i), after.get(i)) {
                (Some(b), Some(a)) => window.add(*b, *a),
                _ => window.unread = true,
            }
        }
    }

    /// Each process's share of a saga over `sagas` measured, if every one was read.
    pub fn shares(&self, sagas: usize) -> Option<BTreeMap<String, ProcessShare>> {
        self.named
            .iter()
            .map(|(name, _, window)| Some(((*name).to_owned(), window.share(sagas)?)))
            .collect()
    }
}

/// The CPU per saga of all the processes in `shares`.
pub fn total_cpu_s_per_saga(shares: &BTreeMap<String, ProcessShare>) -> f64 {
    shares.values().map(|s| s.cpu_s_per_saga).sum()
}

/// Reads every process of `pids` now.
pub fn read_all(pids: &[u32]) -> Vec<ProcCounters> {
    pids.iter().map(|&pid| read(pid)).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_threads_switches_are_its_voluntary_and_involuntary_ones() {
        let status = "Name:\tx\nvoluntary_ctxt_switches:\t12\nnonvoluntary_ctxt_switches:\t3\n";
        assert_eq!(task_switches(status), Some(15));
        assert_eq!(
            task_switches("Name:\tx\nvoluntary_ctxt_switches:\t12\n"),
            None
        );
    }

    #[test]
    fn a_process_is_read_and_its_switches_grow() {
        if !cfg!(target_os = "linux") {
            return;
        }
        // A process of its own, whose one thread waits for a child again and again: the test
        // binary's threads come and go as other tests end, and a thread's switches leave the
        // sum with it.
        /// Killed and reaped however the test ends, so a failing assertion leaves no loop behind.
        struct Reaped(std::process::Child);
        impl Drop for Reaped {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let child = Reaped(
            std::process::Command::new("sh")
                .args(["-c", "while :; do sleep 0.01; done"])
                .spawn()
                .unwrap(),
        );
        let child = &child.0;
        let before = read(child.id());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut after = read(child.id());
        while after.switches.unwrap() < before.switches.unwrap() + 5
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
            after = read(child.id());
        }
        assert!(after.cpu_s.unwrap() >= before.cpu_s.unwrap());
        assert!(
            after.switches.unwrap() >= before.switches.unwrap() + 5,
            "{before:?} {after:?}"
        );
    }

    #[test]
    fn windows_sum_and_divide_by_the_sagas_measured() {
        let at = |cpu: f64, switches: u64| ProcCounters {
            cpu_s: Some(cpu),
            switches: Some(switches),
        };
        let mut processes = Processes::new(&[("coordinator", 1), ("participant", 2)]);
        processes.add(&[at(1.0, 100), at(5.0, 10)], &[at(1.5, 300), at(5.1, 30)]);
        processes.add(&[at(2.0, 400), at(6.0, 40)], &[at(2.5, 600), at(6.1, 60)]);
        let shares = processes.shares(1000).unwrap();
        let coordinator = shares["coordinator"];
        assert!((coordinator.cpu_s_per_saga - 0.001).abs() < 1e-12);
        assert!((coordinator.switches_per_saga - 0.4).abs() < 1e-12);
        assert!((shares["participant"].cpu_s_per_saga - 0.0002).abs() < 1e-12);
        assert!((total_cpu_s_per_saga(&shares) - 0.0012).abs() < 1e-12);
    }

    #[test]
    fn a_process_not_read_in_some_window_gives_no_shares() {
        let mut processes = Processes::new(&[("coordinator", 1)]);
        let read = ProcCounters {
            cpu_s: Some(1.0),
            switches: Some(1),
        };
        processes.add(&[read], &[ProcCounters::default()]);
        assert!(processes.shares(10).is_none());
        let mut empty = Processes::new(&[("coordinator", 1)]);
        empty.add(&[read], &[read]);
        assert!(empty.shares(0).is_none(), "no saga measured, no share");
    }
}
