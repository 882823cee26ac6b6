//! The stage timings and the summary line, the last line before `exec`:
//! device, how the root was switched, the times of each stage and, with
//! `pivot.stats=1`, CPU time and peak memory.

use crate::sys::Instant;
use std::fmt::Write as _;
use std::path::Path;

use crate::stage::Stage;
use crate::sys::{self, Files};
use crate::wait::Found;

/// Each stage's duration in microseconds, kept for the summary line (every
/// log line is a synchronous console write, which would slow the switch
/// itself). Microseconds, so that under QEMU's `-icount` (1 ns per guest
/// instruction) the line is a per-stage instruction profile.
pub struct Timings {
    pub t0: Instant,
    pub stages: Vec<(Stage, u64)>,
    /// PID 1's CPU time at start (`pivot.stats=1`): its counters include the
    /// kernel's own init work before exec.
    pub cpu_at_start: Option<u64>,
}

impl Timings {
    pub fn new() -> Timings {
        Timings {
            t0: Instant::now(),
            stages: Vec::new(),
            cpu_at_start: None,
        }
    }
}

impl Timings {
    /// `stage` took from `since` until now.
    pub fn record(&mut self, stage: Stage, since: Instant) {
        let us = crate::sys::micros(since.elapsed());
        log::debug!("stage {} took {} ms", stage.name(), ms3(us));
        self.stages.push((stage, us));
    }
}

impl Default for Timings {
    fn default() -> Timings {
        Timings::new()
    }
}

/// What the boot switched to, for the line.
pub struct Switched<'a> {
    pub node: &'a Path,
    pub fstype: &'a str,
    /// How the root was switched (`pivot_root, boot root at /old-root, moved ...`).
    pub how: &'a str,
    pub found: &'a Found,
    pub init: &'a Path,
}

/// The summary line; `stats` adds CPU time and peak memory (read from
/// /proc/self: a few ms under TCG, so only when asked for).
pub fn line(fs: &dyn Files, t: &Timings, s: &Switched, stats: bool) -> String {
    let mut line = format!(
        "switched to {} ({}) by {}; uevent to exec {} ms; start to exec {} ms (uptime {} ms); \
         stages {} ms",
        s.node.display(),
        s.fstype,
        s.how,
        ms3(sys::micros(s.found.at.elapsed())),
        sys::millis(t.t0.elapsed()),
        sys::uptime_ms(),
        stage_list(t),
    );
    if stats {
        let cpu_total = sys::cpu_us(fs)
            .zip(t.cpu_at_start)
            .map(|(a, b)| a.saturating_sub(b));
        // While waiting: from the first sleep to the device's uevent
        // (nothing when the first scan found it).
        let waiting = match s.found.idle {
            None => "0 ms while waiting (present at once)".to_string(),
            Some(idle) => format!(
                "{} ms while waiting ({} wake-ups)",
                idle.cpu_us.map_or("?".to_string(), ms3),
                idle.wakeups
            ),
        };
        let _ = write!(
            line,
            "; cpu {waiting}, {} ms since start; VmHWM {} KiB",
            cpu_total.map_or("?".to_string(), ms3),
            sys::vm_hwm_kib(fs).map_or("?".to_string(), |k| k.to_string()),
        );
    }
    format!("{line}; exec {}", s.init.display())
}

/// The stage times of the summary line: `config 0.412, prepare 0.388, ...`
/// (milliseconds with three decimals).
pub fn stage_list(t: &Timings) -> String {
    let stages: Vec<String> = t
        .stages
        .iter()
        .map(|(st, us)| format!("{} {}", st.name(), ms3(*us)))
        .collect();
    crate::sys::joined(&stages, ", ")
}

/// Microseconds as `M.UUU` milliseconds, without float formatting code.
pub fn ms3(us: u64) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Device;

    #[test]
    fn the_line_names_device_stages_and_init() {
        let found = Found {
            dev: Device {
                name: "nvme1n1".into(),
                major: 259,
                minor: 1,
            },
            what: String::new(),
            fs: None,
            at: Instant::now(),
            idle: None,
        };
        let t = Timings {
            stages: vec![(Stage::Config, 3), (Stage::Mount, 12_345)],
            ..Timings::new()
        };
        let s = Switched {
            node: Path::new("/dev/nvme1n1"),
            fstype: "ext4",
            how: "switch_root",
            found: &found,
            init: Path::new("/sbin/init"),
        };
        let l = line(&crate::sys::fake::FakeSys::default(), &t, &s, true);
        assert!(
            l.starts_with("switched to /dev/nvme1n1 (ext4) by switch_root; uevent to exec "),
            "{l}"
        );
        assert!(l.contains("; stages config 0.003, mount 12.345 ms; cpu 0 ms while waiting (present at once), ? ms since start; VmHWM ? KiB; exec /sbin/init"), "{l}");
        assert_eq!(ms3(1234), "1.234");
        assert_eq!(ms3(5), "0.005");
    }
}
