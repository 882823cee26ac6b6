//! systemd's way back at shutdown (its "initrd interface"), both halves.
//!
//! Before the switch ([`offer`]): `/run` is a tmpfs (`mode=755,nodev,
//! nosuid,strictatime`) that the switch hands to the volume pre-mounted,
//! holding `/run/initramfs/shutdown`, a copy of this (static) binary. At the
//! end of its shutdown, systemd-shutdown sees that file, binds `/dev`,
//! `/proc`, `/sys` and `/run` into `/run/initramfs`, pivots into it with the
//! old root (the volume, and the boot disk under it) at `/oldroot`, and
//! execs `/shutdown VERB ...` as PID 1, `VERB` being `reboot`, `poweroff`,
//! `halt`, `kexec` (or `exit`, which it turns into a power-off itself).
//!
//! That is PID 1's second life ([`shutdown`]): unmount everything at and
//! under `/oldroot`, deepest first; what cannot be unmounted is remounted
//! read-only and named in one line each; then sync and carry out the verb.
//! The volume is left as a clean unmount leaves it, so it can be attached
//! elsewhere.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::kmsg;
use crate::sys::{End, FileType, Halt, MountFlags, Sys, SysError, in_root};

/// What systemd-shutdown runs when it exists and is executable.
pub const SHUTDOWN: &str = "/run/initramfs/shutdown";

/// Where systemd puts the old root before it execs [`SHUTDOWN`].
pub const OLD_ROOT: &str = "/oldroot";

/// The directories of `/run/initramfs` systemd's switch mounts onto (it
/// makes them when missing; made here so that nothing depends on that).
const SHUTDOWN_DIRS: [&str; 6] = [
    "/run/initramfs",
    "/run/initramfs/dev",
    "/run/initramfs/proc",
    "/run/initramfs/sys",
    "/run/initramfs/run",
    "/run/initramfs/oldroot",
];

/// Sets up the hand-back before the check stage decides which API mounts
/// move with the switch: `/run` a tmpfs (unless something is mounted there
/// already) with this binary at [`SHUTDOWN`]. Only for a volume that has a
/// `/run` directory (every systemd volume has one; the switch then need not
/// make one, which a read-only volume could not); skipped with one line
/// otherwise, or with `pivot.handback=0`. A step that fails is a warning:
/// the boot goes on without it.
pub fn offer(sys: &dyn Sys, cfg: &Config) {
    if !cfg.handback {
        log::debug!("no hand-back at shutdown (pivot.handback=0)");
        return;
    }
    let on_volume = in_root(&cfg.new_root, Path::new("/run"));
    match sys.lstat(&on_volume) {
        Ok(st) if st.kind == FileType::Directory => {}
        Ok(_) => {
            log::info!("no hand-back at shutdown: /run on the volume is not a directory");
            return;
        }
        Err(_) => {
            log::info!("no hand-back at shutdown: the volume has no /run directory");
            return;
        }
    }
    if let Err(e) = setup(sys) {
        log::warn!("{e}; no hand-back at shutdown");
    }
}

fn setup(sys: &dyn Sys) -> Result<(), SysError> {
    let run = Path::new("/run");
    let root = sys.stat(Path::new("/")).ok();
    let at = sys.api_dir(run, root.as_ref());
    if at != Some(true) {
        if at.is_none() {
            sys.mkdir(run)?;
        }
        let flags = MountFlags::NODEV | MountFlags::NOSUID | MountFlags::STRICTATIME;
        sys.mount(Path::new("tmpfs"), run, "tmpfs", flags, "mode=755")?;
    }
    for d in SHUTDOWN_DIRS {
        sys.mkdir(Path::new(d))?;
    }
    let exe = Path::new("/proc/self/exe");
    let bin = sys
        .read(exe)
        .map_err(|e| crate::sys::Op::Read(exe.into()).failed(e))?;
    sys.create_file(Path::new(SHUTDOWN), &bin, 0o755)?;
    log::info!(
        "hand-back at shutdown: /run is a tmpfs with {SHUTDOWN} ({} KiB), for the volume's systemd",
        bin.len() / 1024
    );
    Ok(())
}

/// Whether PID 1 was started as systemd-shutdown starts the hand-back: as
/// `/shutdown` (argv[0]'s name is `shutdown`). A verb alone in argv[1] is
/// not enough: the kernel passes PID 1 every word of its command line it
/// does not know, and `poweroff` could be one.
pub fn is_shutdown(argv: &[OsString]) -> bool {
    argv.first()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n.as_bytes() == b"shutdown")
}

/// The verb of `argv[1]` and what carries it out. `exit` (a container's) is
/// a power-off, as systemd-shutdown makes it; anything else, or nothing, a
/// reboot (a machine that reboots comes back; one powered off may not).
pub fn verb(argv: &[OsString]) -> (String, Halt) {
    let v = argv
        .get(1)
        .map_or_else(String::new, |a| a.to_string_lossy().into_owned());
    let how = match v.as_str() {
        "poweroff" | "exit" => Halt::PowerOff,
        "halt" => Halt::Halt,
        "kexec" => Halt::Kexec,
        _ => Halt::Reboot,
    };
    (v, how)
}

/// Undoes the escaping of a path in /proc/self/mountinfo (`\040` for a
/// space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> PathBuf {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let oct = b.get(i + 1..i + 4).and_then(|d| {
            let s = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(s, 8).ok()
        });
        match (c, oct) {
            (b'\\', Some(v)) => {
                out.push(v);
                i += 4;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&out))
}

/// The mounts at `under` and below it, from /proc/self/mountinfo, in the
/// order to unmount them: deepest first; of mounts equally deep, the later
/// first (so of two stacked at one path, the one on top).
pub fn unmount_order(mountinfo: &str, under: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .filter(|p| p.starts_with(under))
        .collect();
    found.reverse();
    // A stable sort keeps the later-first order among equals.
    let depth = |p: &PathBuf| p.components().count();
    crate::sys::sort_small_by(&mut found, |a, b| depth(b).cmp(&depth(a)));
    found
}

/// What the unmounts came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unmounted {
    pub done: usize,
    /// Those that stayed, each with why, in the order tried.
    pub left: Vec<SysError>,
}

/// Unmounts `targets` in order, never lazily; goes over those that stayed
/// again while a pass unmounts anything. Each one left is remounted
/// read-only and gets one line.
pub fn unmount_all(sys: &dyn Sys, targets: Vec<PathBuf>) -> Unmounted {
    let mut out = Unmounted::default();
    let mut todo = targets;
    loop {
        let before = out.done;
        let mut left = Vec::new();
        for t in todo {
            match sys.try_unmount(&t) {
                Ok(()) => out.done += 1,
                Err(e) => left.push((t, e)),
            }
        }
        if left.is_empty() || out.done == before {
            for (t, e) in left {
                let ro = match sys.remount(&t, MountFlags::RDONLY, "") {
                    Ok(()) => "remounted it read-only".to_string(),
                    Err(r) => format!(
                        "remounting it read-only failed too: {}",
                        crate::sys::ErrnoText(r.errno)
                    ),
                };
                log::warn!("shutdown: {e}; {ro}");
                out.left.push(e);
            }
            return out;
        }
        todo = left.into_iter().map(|(t, _)| t).collect();
    }
}

/// Mounts what the shutdown needs when systemd did not bind it: `/proc`
/// (for mountinfo) and `/dev` (for the log).
fn api_filesystems(sys: &dyn Sys) {
    let nosuid = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    for (what, at, fstype, flags) in [
        ("proc", "/proc", "proc", nosuid),
        ("devtmpfs", "/dev", "devtmpfs", MountFlags::NOSUID),
    ] {
        let p = Path::new(at);
        if sys.is_mount_point(p) {
            continue;
        }
        let r = sys
            .mkdir(p)
            .and_then(|()| sys.mount(Path::new(what), p, fstype, flags, ""));
        if let Err(e) = r {
            log::warn!("shutdown: {e}");
        }
    }
}

/// PID 1's second life, as systemd's `/shutdown VERB`: unmount the old
/// root, sync, carry out the verb (a kexec that fails becomes a reboot).
/// On the machine it never returns.
pub fn shutdown(sys: &dyn Sys, argv: &[OsString]) -> End {
    api_filesystems(sys);
    if let Some(f) = sys.open_log() {
        kmsg::use_device(f);
    }
    sys.console_fds();
    let (verb, how) = verb(argv);
    log::info!(
        "pivot-init {} as PID 1 again: shutdown `{verb}` handed back by the volume's systemd; unmounting {OLD_ROOT}",
        env!("CARGO_PKG_VERSION")
    );
    if !matches!(
        verb.as_str(),
        "reboot" | "poweroff" | "halt" | "kexec" | "exit"
    ) {
        log::warn!("shutdown: unknown verb `{verb}`: rebooting");
    }
    let targets = match sys.read_text(Path::new("/proc/self/mountinfo")) {
        Ok(text) => unmount_order(&text, Path::new(OLD_ROOT)),
        Err(e) => {
            log::error!(
                "shutdown: cannot read /proc/self/mountinfo: {}; unmounting {OLD_ROOT} alone",
                crate::sys::ErrnoText(e)
            );
            vec![PathBuf::from(OLD_ROOT)]
        }
    };
    let r = unmount_all(sys, targets);
    log::info!(
        "shutdown: unmounted {} filesystem(s) under {OLD_ROOT}, {} left; syncing, then {}",
        r.done,
        r.left.len(),
        match how {
            Halt::Reboot => "rebooting",
            Halt::PowerOff => "powering off",
            Halt::Halt => "halting",
            Halt::Kexec => "rebooting into the loaded kernel (kexec)",
        }
    );
    let end = match sys.halt(how) {
        Err(e) if how == Halt::Kexec => {
            log::error!("shutdown: {e}; rebooting instead");
            sys.halt(Halt::Reboot)
        }
        r => r,
    };
    match end {
        Ok(end) => end,
        Err(e) => {
            log::error!("shutdown: {e}; PID 1 waits");
            crate::fallback::wait_forever(sys, &[])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Errno;
    use crate::sys::fake::FakeSys;

    /// What /proc/self/mountinfo says after systemd-shutdown's switch (the
    /// volume at /oldroot, the boot disk at /oldroot/old-root, a tmpfs stacked
    /// on another, a path with a space).
    const MOUNTINFO: &str = "\
100 90 0:30 /initramfs / rw,nosuid,nodev - tmpfs tmpfs rw,mode=755
90 1 259:1 / /oldroot rw,relatime - ext4 /dev/nvme1n1 rw
91 90 259:3 / /oldroot/old-root rw,relatime - ext4 /dev/nvme0n1p1 rw
92 90 0:5 / /oldroot/dev rw,nosuid - devtmpfs devtmpfs rw
93 92 0:20 / /oldroot/dev/pts rw - devpts devpts rw
94 90 0:31 / /oldroot/tmp rw - tmpfs tmpfs rw
95 94 0:32 / /oldroot/tmp rw - tmpfs tmpfs rw
96 90 0:33 / /oldroot/mnt/a\\040b rw - tmpfs tmpfs rw
97 100 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw
98 100 0:4 / /proc rw - proc proc rw
99 90 0:4 / /oldrootx rw - proc proc rw
";

    #[test]
    fn unmount_order_is_deepest_first_and_top_first() {
        let order = unmount_order(MOUNTINFO, Path::new(OLD_ROOT));
        let shown: Vec<String> = order.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            shown,
            [
                "/oldroot/mnt/a b",
                "/oldroot/dev/pts",
                "/oldroot/tmp",
                "/oldroot/tmp",
                "/oldroot/dev",
                "/oldroot/old-root",
                "/oldroot",
            ]
        );
        assert_eq!(unescape("a\\011b\\134c\\012"), PathBuf::from("a\tb\\c\n"));
        assert_eq!(unescape("\\04"), PathBuf::from("\\04"));
    }

    #[test]
    fn argv0_names_the_shutdown_and_argv1_the_verb() {
        let argv = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(is_shutdown(&argv(&["/shutdown", "poweroff"])));
        assert!(is_shutdown(&argv(&["shutdown"])));
        assert!(!is_shutdown(&argv(&["/sbin/init", "poweroff"])));
        assert!(!is_shutdown(&[]));
        assert_eq!(
            verb(&argv(&["/shutdown", "poweroff", "--timeout", "90s"])).1,
            Halt::PowerOff
        );
        assert_eq!(verb(&argv(&["/shutdown", "reboot"])).1, Halt::Reboot);
        assert_eq!(verb(&argv(&["/shutdown", "halt"])).1, Halt::Halt);
        assert_eq!(verb(&argv(&["/shutdown", "kexec"])).1, Halt::Kexec);
        assert_eq!(verb(&argv(&["/shutdown", "exit"])).1, Halt::PowerOff);
        assert_eq!(verb(&argv(&["/shutdown", "bogus"])).1, Halt::Reboot);
        assert_eq!(verb(&argv(&["/shutdown"])).1, Halt::Reboot);
    }

    fn sandbox(name: &str) -> (FakeSys, PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("pivot-handback-{name}-{}", std::process::id()));
        let fake = FakeSys::sandbox(&dir).file("/proc/self/mountinfo", MOUNTINFO.as_bytes(), 0o444);
        (fake, dir)
    }

    /// The whole second life on the fake: every mount under /oldroot
    /// unmounted deepest first, then the verb.
    #[test]
    fn shutdown_unmounts_the_old_root_deepest_first_then_powers_off() {
        let (fake, dir) = sandbox("clean");
        let argv: Vec<OsString> = ["/shutdown", "poweroff", "--log-level", "info"]
            .iter()
            .map(OsString::from)
            .collect();
        let end = shutdown(&fake, &argv);
        assert_eq!(end, End::Halt(Halt::PowerOff));
        let log: Vec<String> = fake
            .log()
            .into_iter()
            .filter(|c| {
                c.starts_with("umount") || c.starts_with("halt") || c.starts_with("remount")
            })
            .collect();
        assert_eq!(
            log,
            [
                "umount /oldroot/mnt/a b",
                "umount /oldroot/dev/pts",
                "umount /oldroot/tmp",
                "umount /oldroot/tmp",
                "umount /oldroot/dev",
                "umount /oldroot/old-root",
                "umount /oldroot",
                "halt PowerOff",
            ]
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A busy mount stays: remounted read-only, and so does the volume above
    /// it (EBUSY as long as it has a mount under it); the rest go, and the
    /// verb is still carried out. A kexec with no kernel loaded reboots.
    #[test]
    fn what_cannot_be_unmounted_is_remounted_read_only_and_the_verb_still_runs() {
        let (fake, dir) = sandbox("busy");
        let fake = fake
            .with_busy("/oldroot/old-root")
            .with_busy("/oldroot")
            .fail("halt Kexec", Errno::INVAL);
        let targets = unmount_order(MOUNTINFO, Path::new(OLD_ROOT));
        let r = unmount_all(&fake, targets);
        assert_eq!(r.done, 5);
        let left: Vec<String> = r.left.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            left,
            [
                "unmounting /oldroot/old-root failed: errno 16 (Device or resource busy)",
                "unmounting /oldroot failed: errno 16 (Device or resource busy)",
            ]
        );
        // Tried twice (a second pass while the first unmounted anything), then remounted.
        let tail: Vec<String> = fake.log().into_iter().rev().take(6).collect();
        assert_eq!(
            tail,
            [
                "remount /oldroot ro",
                "remount /oldroot/old-root ro",
                "umount /oldroot",
                "umount /oldroot/old-root",
                "umount /oldroot",
                "umount /oldroot/old-root",
            ]
        );
        let argv: Vec<OsString> = ["/shutdown", "kexec"].iter().map(OsString::from).collect();
        assert_eq!(shutdown(&fake, &argv), End::Halt(Halt::Reboot));
        let _ = std::fs::remove_dir_all(dir);
    }
}
