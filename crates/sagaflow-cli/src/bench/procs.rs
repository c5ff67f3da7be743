//! Where a run's CPU goes: each of its processes' CPU time and context switches over the
//! measured windows. The coordinator, the participant and the load generator share the
//! machine's cores, and so does the `direct` baseline's pair, so when the load keeps the
//! machine busy the ratio of the two throughputs follows the ratio of their CPU per saga, and
//! this shows which process spends it and how often each was switched out to spend it. Within
//! a process, its threads' CPU is summed by thread name (the coordinator's event loops, its
//! journal thread, its checkpointer), which is where a change to the coordinator shows first.

use std::collections::BTreeMap;

use serde::Serialize;

/// /proc's clock ticks per second (`USER_HZ`, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

/// One process's counters at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcCounters {
    /// User + system CPU seconds.
    cpu_s: Option<f64>,
    /// Voluntary and involuntary context switches of its threads alive at the reading.
    switches: Option<u64>,
    /// Each thread alive at the reading: its id, its name and its CPU ticks so far.
    threads: Vec<ThreadTicks>,
}

/// One thread's CPU so far.
#[derive(Clone, Debug, PartialEq)]
struct ThreadTicks {
    tid: u32,
    name: String,
    ticks: u64,
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
        threads: threads(pid),
    }
}

/// The CPU ticks of every thread of `pid` alive now.
fn threads(pid: u32) -> Vec<ThreadTicks> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| {
            let tid = task.file_name().to_str()?.parse().ok()?;
            // A thread that ended since the listing has no stat any more.
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            let (name, ticks) = thread_ticks(&stat)?;
            Some(ThreadTicks { tid, name, ticks })
        })
        .collect()
}

/// A thread's name and its user + system ticks, from its `stat` line.
fn thread_ticks(stat: &str) -> Option<(String, u64)> {
    // The name is in parentheses and may hold spaces or parentheses itself.
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name.to_owned(), utime + stime))
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
#[derive(Clone, Debug, Default)]
pub struct ProcWindow {
    cpu_s: f64,
    switches: u64,
    /// CPU ticks by thread name, of the threads alive when each window closed.
    thread_ticks: BTreeMap<String, u64>,
    /// A window could not read one of its counters: no figure then.
    unread: bool,
}

impl ProcWindow {
    pub fn add(&mut self, before: &ProcCounters, after: &ProcCounters) {
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
        for thread in &after.threads {
            // A thread started inside the window spent all of its ticks in it. One that ended
            // inside it is in the process's CPU only.
            let earlier = before
                .threads
                .iter()
                .find(|t| t.tid == thread.tid)
                .map_or(0, |t| t.ticks);
            *self.thread_ticks.entry(thread.name.clone()).or_default() +=
                thread.ticks.saturating_sub(earlier);
        }
    }

    fn share(&self, sagas: usize) -> Option<ProcessShare> {
        if self.unread || sagas == 0 {
            return None;
        }
        Some(ProcessShare {
            cpu_s_per_saga: self.cpu_s / sagas as f64,
            switches_per_saga: self.switches as f64 / sagas as f64,
            threads_cpu_s_per_saga: self
                .thread_ticks
                .iter()
                .filter(|(_, ticks)| **ticks > 0)
                .map(|(name, ticks)| (name.clone(), *ticks as f64 / TICKS_PER_S / sagas as f64))
                .collect(),
        })
    }
}

/// One process's part of a saga.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProcessShare {
    pub cpu_s_per_saga: f64,
    pub switches_per_saga: f64,
    /// Its threads' CPU by thread name (threads of one name summed: a runtime's workers).
    pub threads_cpu_s_per_saga: BTreeMap<String, f64>,
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
                (Some(b), Some(a)) => window.add(b, a),
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
            threads: Vec::new(),
        };
        let mut processes = Processes::new(&[("coordinator", 1), ("participant", 2)]);
        processes.add(&[at(1.0, 100), at(5.0, 10)], &[at(1.5, 300), at(5.1, 30)]);
        processes.add(&[at(2.0, 400), at(6.0, 40)], &[at(2.5, 600), at(6.1, 60)]);
        let shares = processes.shares(1000).unwrap();
        let coordinator = &shares["coordinator"];
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
            threads: Vec::new(),
        };
        processes.add(std::slice::from_ref(&read), &[ProcCounters::default()]);
        assert!(processes.shares(10).is_none());
        let mut empty = Processes::new(&[("coordinator", 1)]);
        empty.add(std::slice::from_ref(&read), std::slice::from_ref(&read));
        assert!(empty.shares(0).is_none(), "no saga measured, no share");
    }

    #[test]
    fn a_threads_name_and_ticks_come_from_its_stat_line() {
        let stat = "4242 (sagaflow-journa) S 1 2 3 4 5 6 7 8 9 10 1200 34 0 0 20 0 1 0 5 6 7";
        assert_eq!(thread_ticks(stat), Some(("sagaflow-journa".into(), 1234)));
        let odd = "7 (a (b) c) R 1 2 3 4 5 6 7 8 9 10 3 4 0 0";
        assert_eq!(thread_ticks(odd), Some(("a (b) c".into(), 7)));
        assert_eq!(thread_ticks("7 (x) R 1 2"), None);
    }

    #[test]
    fn threads_are_summed_by_name_and_new_ones_count_from_zero() {
        let thread = |tid: u32, name: &str, ticks: u64| ThreadTicks {
            tid,
            name: name.into(),
            ticks,
        };
        let before = ProcCounters {
            cpu_s: Some(1.0),
            switches: Some(0),
            threads: vec![
                thread(1, "loop", 100),
                thread(2, "loop", 50),
                thread(3, "gone", 9),
            ],
        };
        let after = ProcCounters {
            cpu_s: Some(2.0),
            switches: Some(0),
            threads: vec![
                thread(1, "loop", 130),
                thread(2, "loop", 60),
                thread(4, "new", 5),
                thread(5, "idle", 0),
            ],
        };
        let mut processes = Processes::new(&[("coordinator", 1)]);
        processes.add(&[before], &[after]);
        let shares = processes.shares(10).unwrap();
        let threads = &shares["coordinator"].threads_cpu_s_per_saga;
        assert_eq!(
            threads.len(),
            2,
            "ended and idle threads are left out: {threads:?}"
        );
        assert!(
            (threads["loop"] - 0.04).abs() < 1e-12,
            "40 ticks over 10 sagas"
        );
        assert!((threads["new"] - 0.005).abs() < 1e-12);
    }
}
