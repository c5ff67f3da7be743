//! The whole machine's CPU over a run's measured window, from `/proc/stat`: how much of it was
//! idle (or waiting for the disk), and how much the hypervisor gave to other guests (`steal`).
//! On a shared virtual machine the second moves a run's figures as much as the code does, so
//! the report carries both beside them; and what waking a sleeping thread costs there, timed
//! before the run.

/// The machine's CPU time counters at one moment, in clock ticks, summed over its CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTimes {
    total: u64,
    /// `idle` + `iowait`.
    idle: u64,
    steal: u64,
}

/// The counters now; `None` where `/proc/stat` cannot be read (not Linux).
pub fn cpu_times() -> Option<CpuTimes> {
    parse(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// The `cpu` line of `/proc/stat`: user nice system idle iowait irq softirq steal [guest…].
fn parse(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if fields.len() < 4 {
        return None;
    }
    let field = |i: usize| fields.get(i).copied().unwrap_or(0);
    // guest and guest_nice (8, 9) are already counted in user and nice.
    let total = (0..8).map(field).sum();
    Some(CpuTimes {
        total,
        idle: field(3) + field(4),
        steal: field(7),
    })
}

/// `(idle %, steal %)` of the machine between two readings.
pub fn shares(before: CpuTimes, after: CpuTimes) -> Option<(f64, f64)> {
    let total = after.total.checked_sub(before.total)?;
    if total == 0 {
        return None;
    }
    let pct = |a: u64, b: u64| a.saturating_sub(b) as f64 * 100.0 / total as f64;
    Some((pct(after.idle, before.idle), pct(after.steal, before.steal)))
}

/// Round trips timed: enough for a steady figure in 0.1–0.2 s.
const ROUND_TRIPS: u32 = 2_000;

/// What handing work to a sleeping thread on another CPU costs on this machine, timed before a
/// run: two threads, on two CPUs, pass a turn back and forth, each parked (a futex wait) until
/// the other unparks it.
/// Returns `(wall µs, CPU µs)` per round trip (two wake-ups and four context switches), the CPU
/// of both threads from `/proc/thread-self/schedstat`. Every journal write, participant call and
/// answer of a run hands work from one thread or process to another, and on a virtual machine
/// waking an idle CPU costs from a few to tens of microseconds, so this moves a coordinator
/// run's figures (three processes) more than the `direct` baseline's (two).
pub fn wake_round_trip_us() -> Option<(f64, f64)> {
    // Two threads of their own, each pinned to a CPU of its own: left to the scheduler, the
    // pair sometimes shares one CPU, where a wake-up costs a few microseconds instead.
    let cpus = allowed_cpus();
    let first = cpus.first().copied();
    let second = cpus.get(1).copied();
    std::thread::Builder::new()
        .name("bench-wake-probe".into())
        .spawn(move || round_trips(first, second))
        .ok()?
        .join()
        .ok()?
}

fn round_trips(main_cpu: Option<usize>, echo_cpu: Option<usize>) -> Option<(f64, f64)> {
    pin_to(main_cpu);
    let turn = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let main = std::thread::current();
    let echo = std::thread::Builder::new()
        .name("bench-wake-echo".into())
        .spawn({
            let turn = std::sync::Arc::clone(&turn);
            move || {
                pin_to(echo_cpu);
                let started = thread_cpu_ns();
                for i in 0..ROUND_TRIPS {
                    while turn.load(std::sync::atomic::Ordering::Acquire) != 2 * i + 1 {
                        std::thread::park();
                    }
                    turn.store(2 * i + 2, std::sync::atomic::Ordering::Release);
                    main.unpark();
                }
                Some(thread_cpu_ns()? - started?)
            }
        })
        .ok()?;
    let cpu_before = thread_cpu_ns();
    let started = std::time::Instant::now();
    for i in 0..ROUND_TRIPS {
        turn.store(2 * i + 1, std::sync::atomic::Ordering::Release);
        echo.thread().unpark();
        while turn.load(std::sync::atomic::Ordering::Acquire) != 2 * i + 2 {
            std::thread::park();
        }
    }
    let wall = started.elapsed();
    let cpu_main = thread_cpu_ns()? - cpu_before?;
    let cpu_echo = echo.join().ok()??;
    let per = |ns: f64| ns / 1e3 / f64::from(ROUND_TRIPS);
    Some((
        per(wall.as_nanos() as f64),
        per((cpu_main + cpu_echo) as f64),
    ))
}

/// The CPUs this process may run on.
#[cfg(target_os = "linux")]
fn allowed_cpus() -> Vec<usize> {
    rustix::thread::sched_getaffinity(None)
        .map(|set| {
            (0..rustix::thread::CpuSet::MAX_CPU)
                .filter(|&cpu| set.is_set(cpu))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(not(target_os = "linux"))]
fn allowed_cpus() -> Vec<usize> {
    Vec::new()
}

/// Pins the calling thread to `cpu`; left where it is when there is none or it cannot be.
#[cfg(target_os = "linux")]
fn pin_to(cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        let _ = rustix::thread::sched_setaffinity(None, &set);
    }
}

#[cfg(not(target_os = "linux"))]
fn pin_to(_cpu: Option<usize>) {}

/// This thread's time on a CPU, in nanoseconds (the first field of its `schedstat`).
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_line_is_read_and_its_shares_computed() {
        let before = "cpu  100 0 50 800 40 0 10 0 0 0\ncpu0 50 0 25 400 20 0 5 0 0 0\n";
        let after = "cpu  300 0 150 900 60 0 30 60 5 0\nintr 1\n";
        let (b, a) = (parse(before).unwrap(), parse(after).unwrap());
        assert_eq!(b.total, 1000);
        assert_eq!(a.total, 1500);
        let (idle, steal) = shares(b, a).unwrap();
        assert!((idle - 24.0).abs() < 1e-9, "{idle}");
        assert!((steal - 12.0).abs() < 1e-9, "{steal}");
    }

    #[test]
    fn unreadable_or_unchanged_counters_give_nothing() {
        for text in ["", "intr 1", "cpu  1 x 3 4", "cpu", "cpu  1 2 3"] {
            assert!(parse(text).is_none(), "{text:?}");
        }
        let t = parse("cpu  1 2 3 4 5 6 7 8").unwrap();
        assert!(shares(t, t).is_none());
    }

    #[test]
    fn a_wake_round_trip_takes_time_and_cpu() {
        if cfg!(target_os = "linux") {
            let (wall, cpu) = wake_round_trip_us().unwrap();
            // Two wake-ups cannot take less than a few hundred nanoseconds, nor 10 ms.
            assert!(wall > 0.2 && wall < 10_000.0, "{wall} us");
            assert!(
                cpu > 0.1 && cpu < 2.0 * wall + 100.0,
                "{cpu} us of CPU, {wall} us"
            );
        }
    }

    #[test]
    fn this_machine_has_counters() {
        if cfg!(target_os = "linux") {
            assert!(cpu_times().unwrap().total > 0);
        }
    }
}
