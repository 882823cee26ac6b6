//! The wait stage: subscribe to kernel uevents first, then scan sysfs, then
//! sleep on the socket until a block device matching the spec appears.
//! No sleep-polling: between events the process is blocked in `poll()`.
//! What sysfs says of a device is [`crate::sysblock`]'s; whether it is the
//! volume, [`crate::matching`]'s.

use std::time::Duration;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::matching::{Facts, Want, verdict};
use crate::modules::Loader;
use crate::node::Device;
use crate::probe::Probe;
use crate::sys::{self, ErrnoText, Halt, Instant, Recv, Sig, Sys};
use crate::sysblock::SysBlock;
use crate::uevent;

/// How often a progress line is logged while waiting.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// What the wait stage hands on: the device, and its probe if one was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub dev: Device,
    /// Everything that was read of it (`nvme1n1 (259:2) ext4 LABEL=data ...`).
    pub what: String,
    pub fs: Option<Probe>,
    /// When its uevent (or the sysfs scan) brought it to us.
    pub at: Instant,
    /// What the waiting cost; `None` when the first scan found it.
    pub idle: Option<Idle>,
}

/// The cost of waiting, from PID 1's first sleep to the uevent that brought
/// the device: how often it woke (uevents, signals, progress lines), and
/// its CPU time (`pivot.stats=1` only: read from /proc/self/schedstat).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Idle {
    pub wakeups: u32,
    pub cpu_us: Option<u64>,
}

/// Tracks what was seen, so each non-matching device is logged once and a
/// timeout can list everything.
#[derive(Default)]
pub struct Seen {
    /// (kernel name, what was read of it), each device once.
    pub devices: Vec<(String, String)>,
}

impl Seen {
    fn note(&mut self, name: &str, what: String, why: &str) {
        if self.devices.iter().any(|(n, _)| n == name) {
            return;
        }
        log::info!("saw {what}: {why}");
        self.devices.push((name.to_string(), what));
    }

    /// What was read of each device, in name order.
    pub fn list(&self) -> Vec<String> {
        let mut d = self.devices.clone();
        crate::sys::sort_small_by(&mut d, |a, b| a.cmp(b));
        d.into_iter().map(|(_, what)| what).collect()
    }
}

/// Checks one device; returns it when it is the one.
fn check(sys: &SysBlock, want: &Want, dev: Device, seen: &mut Seen) -> Option<Found> {
    let at = Instant::now();
    let mut facts = Facts::new(sys, dev);
    if let Some(why) = verdict(&mut facts, want).why_not(want) {
        seen.note(&facts.dev.name.clone(), facts.describe(), &why);
        return None;
    }
    let fs = facts.probed().cloned();
    Some(Found {
        what: facts.describe(),
        dev: facts.dev,
        fs,
        at,
        idle: None,
    })
}

/// Checks the devices present: the one that is the volume, `None` when
/// none is, an error when more than one is (for a spec that names one
/// volume, picking one would be a coin toss).
fn scan(sys: &SysBlock, want: &Want, seen: &mut Seen) -> Result<Option<Found>> {
    let mut found = Vec::new();
    for dev in sys.names().into_iter().filter_map(|n| sys.device(&n)) {
        if let Some(f) = check(sys, want, dev, seen) {
            found.push(f);
            if !want.spec.names_one_volume() {
                break;
            }
        }
    }
    one_of(want, found)
}

/// The one match, or the ambiguity error naming all of them.
fn one_of(want: &Want, mut found: Vec<Found>) -> Result<Option<Found>> {
    if found.len() <= 1 {
        return Ok(found.pop());
    }
    for f in &found {
        log::warn!("saw {}: matches {}", f.what, want.spec);
    }
    Err(Error::Ambiguous {
        spec: want.spec.clone(),
        devices: found.iter().map(|f| f.dev.describe()).collect(),
    })
}

/// The device a uevent announces, when it is a block device arriving. Its
/// number is what sysfs says (`/sys/class/block/NAME/dev`); a message whose
/// MAJOR/MINOR disagree is dropped, so no node is made from it.
fn arriving(sys: &SysBlock, ev: &uevent::Uevent) -> Option<Device> {
    if !ev.is_block_arrival() {
        return None;
    }
    let dev = sys.device(&ev.devname)?;
    if let (Some(major), Some(minor)) = (ev.major, ev.minor)
        && (major, minor) != (dev.major, dev.minor)
    {
        log::warn!(
            "uevent for {} says {major}:{minor}, sysfs says {}:{}: ignoring it",
            dev.name,
            dev.major,
            dev.minor
        );
        return None;
    }
    Some(dev)
}

/// One wait: the clock, the progress timer and what was seen so far.
struct Waiter<'a> {
    want: &'a Want<'a>,
    sys: &'a SysBlock<'a>,
    start: Instant,
    timeout_secs: u64,
    deadline: Option<Instant>,
    next_progress: Instant,
    seen: Seen,
}

impl Waiter<'_> {
    /// How long to sleep before the next deadline or progress line; an error
    /// once the deadline has passed.
    fn sleep_time(&mut self) -> Result<Duration> {
        let now = Instant::now();
        if let Some(d) = self.deadline
            && now >= d
        {
            return Err(Error::WaitTimeout {
                spec: self.want.spec.clone(),
                secs: self.timeout_secs,
                seen: self.seen.list(),
            });
        }
        if now >= self.next_progress {
            log::info!(
                "still waiting for {} after {} s; seen so far: {}",
                self.want.spec,
                self.start.elapsed().as_secs(),
                seen_text(&self.seen.list())
            );
            self.next_progress += PROGRESS_EVERY;
        }
        let wake = self
            .deadline
            .map_or(self.next_progress, |d| d.min(self.next_progress));
        Ok(wake.saturating_duration_since(now))
    }

    /// Handles every queued message; the device when one is the volume
    /// (every queued message is still looked at: two matches arriving
    /// together are as ambiguous as two present at the start).
    fn drain(
        &mut self,
        buf: &mut [u8],
        on_modalias: &mut dyn FnMut(&str),
    ) -> Result<Option<Found>> {
        let mut found = Vec::new();
        loop {
            let ev = match self.sys.sys.recv_uevent(buf)? {
                Recv::Empty => break,
                Recv::Overflow => {
                    log::warn!("uevent queue overflowed; rescanning /sys/class/block");
                    return scan(self.sys, self.want, &mut self.seen);
                }
                Recv::Message(msg) => match uevent::parse(msg) {
                    Some(ev) => ev,
                    None => continue,
                },
            };
            if ev.action == "add" && !ev.modalias.is_empty() {
                on_modalias(&ev.modalias);
            }
            let Some(dev) = arriving(self.sys, &ev) else {
                continue;
            };
            log::debug!("uevent {} {}", ev.action, dev.describe());
            if found.iter().any(|f: &Found| f.dev == dev) {
                continue;
            }
            if let Some(f) = check(self.sys, self.want, dev, &mut self.seen) {
                log::info!(
                    "{} appeared after {} ms",
                    f.dev.describe(),
                    sys::millis(self.start.elapsed())
                );
                found.push(f);
                if !self.want.spec.names_one_volume() {
                    break;
                }
            }
        }
        one_of(self.want, found)
    }
}

/// The wait stage on the machine: subscribes to uevents (once: the
/// subscription is kept across retries), takes PID 1's signals through a
/// descriptor while it waits (and only then: they are unblocked again
/// before anything is started), loads drivers for devices that come
/// (`loader`), and waits for the volume `cfg` names.
pub fn wait_stage(sys: &dyn Sys, cfg: &Config, loader: Option<&Loader>) -> Result<Found> {
    let spec = cfg.root.as_ref().ok_or(Error::NoRootSpec)?;
    sys.uevents_open()?;
    let want = Want {
        spec,
        fstypes: &cfg.fstypes,
    };
    let mut hotplug = |modalias: &str| {
        if let Some(l) = loader {
            l.load_for(sys, modalias);
        }
    };
    if let Err(e) = sys.watch_signals(true) {
        let e = ErrnoText(e);
        log::warn!("no signalfd ({e}): children are reaped at the exec");
    }
    let blocks = SysBlock::boot(sys);
    let found = wait_for(&want, &blocks, cfg.timeout_secs, cfg.stats, &mut hotplug);
    let _ = sys.watch_signals(false);
    found
}

/// After the volume was chosen and mounted: devices that arrived since and
/// match too do not undo the boot, but each is logged.
fn late_matching(want: &Want, sys: &SysBlock, chosen: &Device) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(Recv::Message(msg)) = sys.sys.recv_uevent(&mut buf) {
        let Some(dev) = uevent::parse(msg).and_then(|ev| arriving(sys, &ev)) else {
            continue;
        };
        if dev != *chosen && Facts::new(sys, dev.clone()).matches(want.spec) {
            log::warn!(
                "{} also matches {}, but appeared after {} was chosen: going on with {}",
                dev.describe(),
                want.spec,
                chosen.name,
                chosen.name
            );
        }
    }
}

/// After the volume was chosen: devices that arrived since and match the
/// spec too are logged; then the uevent subscription is closed (here, not
/// by the exec).
pub fn late_matches(sys: &dyn Sys, cfg: &Config, chosen: &Device) {
    if let Some(spec) = &cfg.root {
        let want = Want {
            spec,
            fstypes: &cfg.fstypes,
        };
        late_matching(&want, &SysBlock::boot(sys), chosen);
    }
    sys.uevents_close();
}

fn seen_text(list: &[String]) -> String {
    if list.is_empty() {
        "none".into()
    } else {
        crate::sys::joined(list, ", ")
    }
}

/// Waits until a device matching `want` exists; `timeout_secs` of zero
/// means forever. The uevents must have been subscribed to before this is
/// called, so that a device appearing during the scan is not missed. `on_modalias`
/// is called for each device added while waiting (hotplug driver loading).
/// `stats`: measure the CPU time of the waiting ([`Found::idle`]).
pub fn wait_for(
    want: &Want,
    blocks: &SysBlock,
    timeout_secs: u64,
    stats: bool,
    on_modalias: &mut dyn FnMut(&str),
) -> Result<Found> {
    let start = Instant::now();
    let mut w = Waiter {
        want,
        sys: blocks,
        start,
        timeout_secs,
        deadline: (timeout_secs > 0).then(|| start + Duration::from_secs(timeout_secs)),
        next_progress: start + PROGRESS_EVERY,
        seen: Seen::default(),
    };
    if let Some(found) = scan(blocks, want, &mut w.seen)? {
        log::info!("found {} already present", found.dev.describe());
        return Ok(found);
    }
    log::info!(
        "waiting for {} (uevents; timeout {})",
        want.spec,
        match timeout_secs {
            0 => "none".to_string(),
            n => format!("{n} s"),
        }
    );
    let mut buf = [0u8; 16 * 1024];
    let cpu_at_first_sleep = if stats { sys::cpu_us(blocks.sys) } else { None };
    let mut wakeups = 0;
    loop {
        let sleep = w.sleep_time()?;
        let ready = blocks.sys.wait_ready(sleep)?;
        wakeups += 1;
        if ready.signal {
            take_signals(blocks.sys)?;
        }
        if ready.uevent
            && let Some(mut found) = w.drain(&mut buf, on_modalias)?
        {
            // Up to the device's uevent: what follows is the boot's own time.
            let cpu_now = if stats { sys::cpu_us(blocks.sys) } else { None };
            found.idle = Some(Idle {
                wakeups,
                cpu_us: cpu_now
                    .zip(cpu_at_first_sleep)
                    .map(|(b, a)| b.saturating_sub(a)),
            });
            return Ok(found);
        }
    }
}

/// PID 1's signals while it waits: children are reaped; Ctrl-Alt-Del and
/// SIGPWR end the wait as requests; SIGTERM is logged and changes nothing.
fn take_signals(s: &dyn Sys) -> Result<()> {
    while let Some(sig) = s.next_signal() {
        match sig {
            Sig::Child => {
                let n = s.reap_children();
                log::debug!("reaped {n} child process(es)");
            }
            Sig::CtrlAltDel => return Err(Error::Requested(Halt::Reboot)),
            Sig::Power => return Err(Error::Requested(Halt::PowerOff)),
            Sig::Term => log::info!(
                "SIGTERM while waiting: ignored (PID 1 keeps waiting; Ctrl-Alt-Del reboots)"
            ),
            Sig::Other(n) => log::debug!("signal {n} while waiting: ignored"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe;
    use crate::spec::Spec;
    use crate::sys::RealSys;
    use crate::sysblock::Nodes;
    use std::path::{Path, PathBuf};

    fn tmp(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("pivot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    /// A fake sysfs with devices whose contents are files in `files/`.
    fn fake(root: &Path) -> SysBlock<'static> {
        std::fs::create_dir_all(root.join("files")).unwrap();
        SysBlock {
            sys: Box::leak(Box::new(RealSys::default())),
            root: root.join("class"),
            nodes: Nodes::Files(root.join("files")),
        }
    }

    fn add(sys: &SysBlock, path: &str, devno: &str, serial: Option<&str>, content: &[u8]) {
        let real = sys.root.join("../devices").join(path);
        std::fs::create_dir_all(real.join("device")).unwrap();
        std::fs::write(real.join("dev"), format!("{devno}\n")).unwrap();
        if let Some(s) = serial {
            std::fs::write(real.join("device/serial"), format!("{s}    \n")).unwrap();
        }
        let name = path.rsplit('/').next().unwrap();
        if let Some(n) = name.rsplit('p').next().and_then(|n| n.parse::<u32>().ok())
            && path.contains('/')
        {
            std::fs::write(real.join("partition"), format!("{n}\n")).unwrap();
        }
        std::fs::create_dir_all(&sys.root).unwrap();
        std::os::unix::fs::symlink(&real, sys.root.join(name)).unwrap();
        if let Nodes::Files(dir) = &sys.nodes {
            std::fs::write(dir.join(name), content).unwrap();
        }
    }

    fn find(sys: &SysBlock, spec: Spec, fstypes: &[&str], seen: &mut Seen) -> Option<String> {
        let fstypes: Vec<String> = fstypes.iter().map(|s| s.to_string()).collect();
        let want = Want {
            spec: &spec,
            fstypes: &fstypes,
        };
        scan(sys, &want, seen).unwrap().map(|f| f.dev.name)
    }

    fn ext4_sb(uuid: [u8; 16], label: &str) -> Vec<u8> {
        let mut b = vec![0u8; 8192];
        b[1024 + 0x38..1024 + 0x3A].copy_from_slice(&0xEF53u16.to_le_bytes());
        b[1024 + 0x60] = 0x42;
        b[1024 + 0x68..1024 + 0x78].copy_from_slice(&uuid);
        b[1024 + 0x78..1024 + 0x78 + label.len()].copy_from_slice(label.as_bytes());
        b
    }

    #[test]
    fn matching_by_every_spec_form() {
        let root = tmp("match");
        let sys = fake(&root);
        add(
            &sys,
            "nvme0/nvme0n1",
            "259:0",
            Some("boot"),
            &ext4_sb([1; 16], "bootdisk"),
        );
        add(
            &sys,
            "nvme1/nvme1n1",
            "259:1",
            Some("vol0abc"),
            &ext4_sb([0xab; 16], "data"),
        );
        // A GPT disk with one partition: header at LBA 1, entries at LBA 2.
        let mut disk = vec![0u8; 4096];
        disk[510] = 0x55;
        disk[511] = 0xaa;
        disk[446 + 4] = 0xee;
        disk[512..520].copy_from_slice(b"EFI PART");
        disk[512 + 72..512 + 80].copy_from_slice(&2u64.to_le_bytes());
        disk[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
        disk[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
        disk[512 + 12..512 + 16].copy_from_slice(&92u32.to_le_bytes());
        disk[512 + 24..512 + 32].copy_from_slice(&1u64.to_le_bytes());
        let crc = probe::crc32(&disk[512..512 + 92]);
        disk[512 + 16..512 + 20].copy_from_slice(&crc.to_le_bytes());
        disk[1024..1040].copy_from_slice(&[0x0f; 16]);
        disk[1040..1056].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
        for (i, c) in "rootfs".encode_utf16().enumerate() {
            disk[1024 + 56 + 2 * i..1024 + 58 + 2 * i].copy_from_slice(&c.to_le_bytes());
        }
        add(&sys, "nvme2/nvme2n1", "259:2", Some("gptdisk"), &disk);
        add(
            &sys,
            "nvme2/nvme2n1/nvme2n1p1",
            "259:3",
            None,
            &ext4_sb([0xcd; 16], "part1"),
        );

        let mut seen = Seen::default();
        let cases = [
            (Spec::Name("nvme1n1".into()), "nvme1n1"),
            (Spec::Devno(259, 3), "nvme2n1p1"),
            (Spec::Serial("vol-0abc".into()), "nvme1n1"),
            (
                Spec::Uuid("ABABABAB-ABAB-ABAB-ABAB-ABABABABABAB".into()),
                "nvme1n1",
            ),
            (Spec::Label("part1".into()), "nvme2n1p1"),
            (
                Spec::PartUuid("04030201-0605-0807-090A-0B0C0D0E0F10".into()),
                "nvme2n1p1",
            ),
            (Spec::PartLabel("rootfs".into()), "nvme2n1p1"),
        ];
        for (spec, want) in cases {
            assert_eq!(
                find(&sys, spec.clone(), &[], &mut seen).as_deref(),
                Some(want),
                "{spec}"
            );
        }
        assert_eq!(find(&sys, Spec::Label("nope".into()), &[], &mut seen), None);
        assert_eq!(
            find(&sys, Spec::Serial("vol0ab".into()), &[], &mut seen),
            None
        );
        // The fstype check rejects a matching device of another type.
        let mut seen2 = Seen::default();
        assert_eq!(
            find(&sys, Spec::Serial("vol0abc".into()), &["xfs"], &mut seen2),
            None
        );
        assert_eq!(
            seen2
                .devices
                .iter()
                .find(|(n, _)| n == "nvme1n1")
                .map(|(_, w)| w.as_str()),
            Some(
                "nvme1n1 (259:1) serial vol0abc ext4 LABEL=data UUID=abababab-abab-abab-abab-abababababab"
            )
        );
        assert_eq!(
            find(
                &sys,
                Spec::Serial("vol0abc".into()),
                &["xfs", "ext4"],
                &mut seen2
            )
            .as_deref(),
            Some("nvme1n1")
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn seen_list_names_what_was_looked_up() {
        let root = tmp("seen");
        let sys = fake(&root);
        add(&sys, "vda", "254:0", Some("boot"), b"");
        add(&sys, "nvme1/nvme1n1", "259:2", None, &[0u8; 8192]);
        let mut seen = Seen::default();
        assert_eq!(find(&sys, Spec::Devno(8, 240), &[], &mut seen), None);
        assert_eq!(seen_text(&seen.list()), "nvme1n1 (259:2), vda (254:0)");
        let mut seen = Seen::default();
        assert_eq!(find(&sys, Spec::Label("x".into()), &[], &mut seen), None);
        assert_eq!(
            seen_text(&seen.list()),
            "nvme1n1 (259:2) no known filesystem, vda (254:0) no known filesystem"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
