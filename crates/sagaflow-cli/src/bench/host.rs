//! The whole machine's CPU over a run's measured window, from `/proc/stat`: how much of it was
//! idle (or waiting for the disk), and how much the hypervisor gave to other guests (`steal`).
//! On a shared virtual machine the second moves a run's figures as much as the code does, so
//! the report carries both beside them.

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
    fn this_machine_has_counters() {
        if cfg!(target_os = "linux") {
            assert!(cpu_times().unwrap().total > 0);
        }
    }
}
