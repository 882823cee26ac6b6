//! The whole boot on the fake system: a boot root and a volume in real
//! directories, a disk present or arriving with its uevent, every change
//! recorded. Each test asserts how PID 1's life ended, the calls that led
//! there (with mount flags and data) and the log lines a person would read.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use super::*;
use crate::kmsg::testlog;
use crate::sys::fake::{Call, Disk, FakeSys, RELEASE};
use crate::sys::{Errno, Exit, Halt, MountFlags, Sig};

/// A fresh directory for one test.
fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pivot-boot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A static executable for this machine, as the kernel's loader reads it:
/// the ELF header and one `PT_LOAD` (read, execute) over the whole file,
/// the entry point inside it.
fn elf() -> Vec<u8> {
    let machine: u16 = match std::env::consts::ARCH {
        "x86_64" => 62,
        "aarch64" => 183,
        other => panic!("no ELF machine number for {other}"),
    };
    let mut b = vec![0u8; 64 + 56 + 64];
    let len = b.len() as u64;
    let put = |b: &mut Vec<u8>, off: usize, v: u64, n: usize| {
        b[off..off + n].copy_from_slice(&v.to_le_bytes()[..n]);
    };
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2; // 64-bit
    b[5] = 1; // little-endian
    b[6] = 1;
    put(&mut b, 0x10, 2, 2); // ET_EXEC
    put(&mut b, 0x12, machine.into(), 2);
    put(&mut b, 0x14, 1, 4);
    put(&mut b, 0x18, 0x40_0000 + 120, 8); // entry
    put(&mut b, 0x20, 64, 8); // e_phoff
    put(&mut b, 0x34, 64, 2);
    put(&mut b, 0x36, 56, 2);
    put(&mut b, 0x38, 1, 2);
    put(&mut b, 64, 1, 4); // PT_LOAD
    put(&mut b, 68, 5, 4); // R+X
    put(&mut b, 64 + 16, 0x40_0000, 8); // p_vaddr
    put(&mut b, 64 + 24, 0x40_0000, 8);
    put(&mut b, 64 + 32, len, 8); // p_filesz
    put(&mut b, 64 + 40, len, 8); // p_memsz
    put(&mut b, 64 + 48, 0x1000, 8);
    b
}

/// The first 8 KiB of an ext4 filesystem with `label`.
fn ext4(label: &str) -> Vec<u8> {
    let mut b = vec![0u8; 8192];
    b[1024 + 0x38..1024 + 0x3A].copy_from_slice(&0xEF53u16.to_le_bytes());
    b[1024 + 0x60] = 0x42;
    b[1024 + 0x68..1024 + 0x78].copy_from_slice(&[0xab; 16]);
    b[1024 + 0x78..1024 + 0x78 + label.len()].copy_from_slice(label.as_bytes());
    b
}

fn write(root: &Path, p: &str, body: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let path = root.join(p.trim_start_matches('/'));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A volume tree with an init (and a shell) in `dir`.
fn volume(dir: &Path) -> PathBuf {
    write(dir, "/sbin/init", &elf(), 0o755);
    write(dir, "/bin/sh", &elf(), 0o755);
    dir.to_path_buf()
}

/// The volume's disk: NVMe, ext4 labelled `data`, showing `tree` when mounted.
fn disk(tree: &Path) -> Disk {
    Disk {
        name: "nvme1n1".into(),
        major: 259,
        minor: 1,
        serial: Some("vol0abc".into()),
        content: ext4("data"),
        tree: Some(tree.to_path_buf()),
    }
}

/// A machine booted with `cmdline`, its boot root holding an old init and
/// a shell; a machine image unless `initramfs`.
fn machine(dir: &Path, cmdline: &str, initramfs: bool) -> FakeSys {
    let m = FakeSys::sandbox(&dir.join("boot"))
        .file("/proc/cmdline", cmdline.as_bytes(), 0o444)
        .file("/sbin/init.old", &elf(), 0o755)
        .file("/bin/sh", &elf(), 0o755);
    if initramfs { m } else { m.not_ram() }
}

/// How one boot went.
struct Run {
    end: End,
    calls: Vec<Call>,
    log: Vec<String>,
}

impl Run {
    fn texts(&self) -> Vec<String> {
        self.calls.iter().map(Call::to_string).collect()
    }

    /// The calls whose text starts with one of `prefixes`, in order.
    fn only(&self, prefixes: &[&str]) -> Vec<String> {
        self.texts()
            .into_iter()
            .filter(|c| prefixes.iter().any(|p| c.starts_with(p)))
            .collect()
    }

    /// The one log line that starts with `prefix`.
    fn line(&self, prefix: &str) -> &str {
        let hits: Vec<&String> = self.log.iter().filter(|l| l.starts_with(prefix)).collect();
        assert_eq!(
            hits.len(),
            1,
            "lines starting with {prefix:?} in {:#?}",
            self.log
        );
        hits[0]
    }
}

/// What the volume is mounted with for the checks (besides its own options).
fn check_flags() -> MountFlags {
    MountFlags::RDONLY | MountFlags::NODEV | MountFlags::NOSUID | MountFlags::NOEXEC
}

fn view() -> &'static View {
    Box::leak(Box::new(Mutex::new(None)))
}

fn boot(sys: FakeSys) -> Run {
    testlog::start();
    let argv = vec![OsString::from("/sbin/init")];
    let end = Boot::start(Snapshot::initial(argv), sys.clone(), view()).life();
    Run {
        end,
        calls: sys.calls(),
        log: testlog::take(),
    }
}

/// The volume's mounts as recorded: (flags, data) of the first mount of
/// `/dev/nvme1n1` and of each remount of `/new-root`.
fn volume_mounts(calls: &[Call]) -> Vec<(MountFlags, String)> {
    calls
        .iter()
        .filter_map(|c| match c {
            Call::Mount {
                source,
                flags,
                data,
                ..
            } if source == Path::new("/dev/nvme1n1") => Some((*flags, data.clone())),
            Call::Remount {
                target,
                flags,
                data,
            } if target == Path::new("/new-root") => Some((*flags, data.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn image_mode_hot_plug_to_the_exec() {
    let dir = tmp("image");
    let vol = volume(&dir.join("vol"));
    let sys = machine(
        &dir,
        "console=ttyS0 pivot.root=LABEL=data pivot.flags=noatime,discard",
        false,
    )
    .arrive(disk(&vol));
    let run = boot(sys);
    assert_eq!(run.end, End::Exec("/sbin/init".into()));
    // Read-only for the checks, then the configured options at the commit.
    assert_eq!(
        volume_mounts(&run.calls),
        [
            (check_flags() | MountFlags::NOATIME, "discard".to_string()),
            (MountFlags::NOATIME, "discard".to_string()),
        ]
    );
    assert_eq!(
        run.only(&[
            "netlink",
            "mount /dev",
            "remount",
            "private",
            "pivot_root",
            "move",
            "exec"
        ]),
        [
            "netlink socket",
            "mount /dev/nvme1n1 /new-root ext4",
            "remount /new-root rw,noatime,discard",
            "private /",
            "pivot_root /new-root /new-root/old-root",
            "move /old-root/dev /dev",
            "move /old-root/proc /proc",
            "move /old-root/sys /sys",
            "exec /sbin/init",
        ]
    );
    run.line("nvme1n1 (259:1) appeared after ");
    let summary = run.line("switched to /dev/nvme1n1 (ext4) by pivot_root, boot root at /old-root");
    assert!(summary.contains(", moved /dev /proc /sys;"), "{summary}");
    assert!(summary.ends_with("; exec /sbin/init"), "{summary}");
    assert!(
        !run.log.iter().any(|l| l.starts_with("FAILED")),
        "{:#?}",
        run.log
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn initramfs_mode_falls_back_to_switch_root() {
    let dir = tmp("initramfs");
    let vol = volume(&dir.join("vol"));
    let sys = machine(&dir, "root=LABEL=data rw rootwait", true)
        .disk(disk(&vol))
        .fail("pivot_root . .", Errno::INVAL);
    let run = boot(sys);
    assert_eq!(run.end, End::Exec("/sbin/init".into()));
    assert_eq!(
        volume_mounts(&run.calls),
        [
            (check_flags(), String::new()),
            (MountFlags::empty(), String::new())
        ]
    );
    assert_eq!(
        run.only(&["pivot_root", "free", "move", "chroot", "exec"]),
        [
            "move /dev /new-root/dev",
            "move /proc /new-root/proc",
            "move /sys /new-root/sys",
            "pivot_root . .",
            "free /",
            "move /new-root /",
            "chroot .",
            "exec /sbin/init",
        ]
    );
    run.line("found nvme1n1 (259:1) already present");
    run.line("switched to /dev/nvme1n1 (ext4) by switch_root, moved /dev /proc /sys;");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One failing stage: the machine, what the `FAILED` line says, and how
/// PID 1's life ends (the action `decide` chose).
struct Case {
    name: &'static str,
    sys: FakeSys,
    failed: String,
    end: End,
    /// The volume was mounted when it failed: unmounted before the action.
    mounted: bool,
}

#[test]
fn a_failure_at_each_stage_ends_in_the_chosen_action() {
    let dir = tmp("stages");
    let vol = volume(&dir.join("vol"));
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let hooked = volume(&dir.join("hooked"));
    write(&hooked, "/pre-pivot", b"#!/bin/sh\nexit 3\n", 0o755);
    write(&hooked, "/etc/init", &elf(), 0o755);
    let base = "pivot.root=LABEL=data";
    let m = |name: &str, cmdline: &str| machine(&dir.join(name), cmdline, false);
    let old = End::Exec("/sbin/init.old".into());
    let cases = [
        Case {
            name: "modules",
            sys: m("modules", &format!("{base} pivot.modules=nosuch")).disk(disk(&vol)),
            failed: format!(
                "FAILED at modules: loading kernel modules failed: cannot read \
                 /lib/modules/{RELEASE}/modules.dep: errno 2 (No such file or directory); \
                 action: oldinit /sbin/init.old"
            ),
            end: old.clone(),
            mounted: false,
        },
        Case {
            name: "wait",
            sys: m("wait", &format!("{base} pivot.onfail=reboot"))
                .fail("netlink socket", Errno::PERM),
            failed: "FAILED at wait: uevent netlink socket: socket failed: errno 1 \
                     (Operation not permitted); action: reboot"
                .into(),
            end: End::Halt(Halt::Reboot),
            mounted: false,
        },
        Case {
            name: "node",
            sys: m(
                "node",
                "pivot.root=/dev/nvme1n1 pivot.devtmpfs=0 pivot.onfail=poweroff",
            )
            .static_dev()
            .disk(disk(&vol))
            .fail("mknod", Errno::PERM),
            failed: "FAILED at node: cannot create block node /dev/nvme1n1 (259:1): errno 1 \
                     (Operation not permitted); action: poweroff"
                .into(),
            end: End::Halt(Halt::PowerOff),
            mounted: false,
        },
        Case {
            name: "mount",
            sys: m("mount", base)
                .disk(disk(&vol))
                .fail("mount /dev/nvme1n1", Errno::INVAL),
            failed: "FAILED at mount: mounting /dev/nvme1n1 on /new-root as ext4 (flags ro,nosuid,nodev,noexec) \
                     failed: errno 22 (Invalid argument); action: oldinit /sbin/init.old"
                .into(),
            end: old.clone(),
            mounted: false,
        },
        Case {
            name: "check",
            sys: m("check", &format!("{base} pivot.onfail=wait")).disk(disk(&empty)),
            failed: "FAILED at check: no usable init on the new root /new-root: /sbin/init: \
                     not found; /etc/init: not found; /bin/init: not found; action: wait"
                .into(),
            end: End::Forever,
            mounted: true,
        },
        Case {
            name: "hook",
            sys: m("hook", base)
                .disk(disk(&hooked))
                .child_exits(Some(Exit::Code(3))),
            failed: "FAILED at hook: hook /new-root/pre-pivot failed: exit status 3; \
                     action: oldinit /sbin/init.old"
                .into(),
            end: old.clone(),
            mounted: true,
        },
        Case {
            name: "switch",
            sys: m("switch", base)
                .disk(disk(&vol))
                .fail("pivot_root", Errno::BUSY),
            failed: "FAILED at switch: pivot_root(/new-root, /new-root/old-root) failed: \
                     errno 16 (Device or resource busy); action: oldinit /sbin/init.old"
                .into(),
            end: old.clone(),
            mounted: true,
        },
        Case {
            name: "exec",
            sys: m("exec", &format!("{base} pivot.init=/etc/init"))
                .disk(disk(&hooked))
                .fail("exec /etc/init", Errno::NOEXEC),
            failed: "FAILED at exec: exec of /etc/init failed: errno 8 (Exec format error); \
                     action: oldinit /sbin/init.old (switch undone)"
                .into(),
            end: old.clone(),
            mounted: true,
        },
    ];
    for case in cases {
        if case.name == "hook" && !sys::is_root_user() {
            // A hook must be owned by root: not runnable by another user.
            continue;
        }
        let run = boot(case.sys);
        assert_eq!(run.end, case.end, "{}: {:#?}", case.name, run.log);
        assert_eq!(run.line("FAILED at "), case.failed, "{}", case.name);
        // What was mounted is unmounted before the action.
        let unmounted = run.only(&["umount /new-root"]).len();
        assert_eq!(
            unmounted,
            usize::from(case.mounted),
            "{}: {:#?}",
            case.name,
            run.texts()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Until the commit the device is read-only, so the filesystem cannot
/// write even what a read-only mount writes; a rejected volume is
/// unmounted and its device made writable again, and only then does the
/// log say it was not changed.
#[test]
fn a_rejected_volume_is_read_only_until_its_device_is_given_back() {
    let dir = tmp("rejected");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let sys = machine(&dir, "pivot.root=LABEL=data", false).disk(disk(&empty));
    let run = boot(sys);
    assert_eq!(run.end, End::Exec("/sbin/init.old".into()));
    assert_eq!(
        run.only(&[
            "setr",
            "mount /dev/nvme1n1",
            "remount",
            "umount /new-root",
            "exec"
        ]),
        [
            "setro /dev/nvme1n1",
            "mount /dev/nvme1n1 /new-root ext4",
            "umount /new-root",
            "setrw /dev/nvme1n1",
            "exec /sbin/init.old",
        ]
    );
    run.line("unmounted /new-root (the volume was not changed)");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A filesystem that must replay its log refuses a read-only device
/// (EROFS): the device is made writable for it, and that is said.
#[test]
fn a_log_to_replay_gets_the_device_writable_and_is_a_change() {
    let dir = tmp("replay");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let sys = machine(&dir, "pivot.root=LABEL=data", false)
        .disk(disk(&empty))
        .fail_once("mount /dev/nvme1n1", Errno::ROFS);
    let run = boot(sys);
    assert_eq!(
        run.only(&["setr", "mount /dev/nvme1n1", "umount /new-root"]),
        [
            "setro /dev/nvme1n1",
            "mount /dev/nvme1n1 /new-root ext4",
            "setrw /dev/nvme1n1",
            "mount /dev/nvme1n1 /new-root ext4",
            "umount /new-root",
        ]
    );
    run.line("unmounted /new-root (its log was replayed)");
    // A device that cannot be made read-only: the log does not claim it
    // stayed unchanged.
    let dir2 = tmp("replay2");
    let sys = machine(&dir2, "pivot.root=LABEL=data", false)
        .disk(disk(&empty))
        .fail("setro", Errno::PERM);
    let run = boot(sys);
    run.line(
        "unmounted /new-root (it was mounted on a writable device (its filesystem may have written))",
    );
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&dir2).unwrap();
}

/// A hook whose interpreter the boot root lacks is found at the check:
/// the volume is refused before the commit, unchanged.
#[test]
fn a_hook_that_cannot_run_is_refused_before_the_commit() {
    if !sys::is_root_user() {
        // A hook must be owned by root: not runnable by another user.
        return;
    }
    let dir = tmp("hookinterp");
    let vol = volume(&dir.join("vol"));
    write(&vol, "/pre-pivot", b"#!/nonexistent -e\nexit 0\n", 0o755);
    let run = boot(machine(&dir, "pivot.root=LABEL=data", false).disk(disk(&vol)));
    assert_eq!(
        run.line("FAILED at "),
        "FAILED at check: hook /new-root/pre-pivot cannot run: its interpreter /nonexistent is \
         missing or unusable (not found) (pivot.hook_failure=continue would go on without it); \
         action: oldinit /sbin/init.old"
    );
    assert!(
        run.only(&["remount", "spawn"]).is_empty(),
        "{:#?}",
        run.texts()
    );
    run.line("unmounted /new-root (the volume was not changed)");
    // With `continue`, the volume boots without it.
    let dir2 = tmp("hookinterp2");
    let cmdline = "pivot.root=LABEL=data pivot.hook_failure=continue";
    let run = boot(machine(&dir2, cmdline, false).disk(disk(&vol)));
    assert_eq!(run.end, End::Exec("/sbin/init".into()));
    run.line("not running hook /new-root/pre-pivot: its interpreter /nonexistent is missing");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&dir2).unwrap();
}

#[test]
fn exec_failure_undoes_the_switch_before_the_old_init() {
    let dir = tmp("undo");
    let vol = volume(&dir.join("vol"));
    write(&vol, "/etc/init", &elf(), 0o755);
    let sys = machine(&dir, "pivot.root=LABEL=data pivot.init=/etc/init", false)
        .disk(disk(&vol))
        .fail("exec /etc/init", Errno::NOEXEC);
    let run = boot(sys);
    assert_eq!(
        run.only(&["pivot_root", "move", "umount /new-root", "exec"]),
        [
            "pivot_root /new-root /new-root/old-root",
            "move /old-root/dev /dev",
            "move /old-root/proc /proc",
            "move /old-root/sys /sys",
            "exec /etc/init",
            "move /sys /old-root/sys",
            "move /proc /old-root/proc",
            "move /dev /old-root/dev",
            "pivot_root /old-root /old-root/new-root",
            "umount /new-root",
            "exec /sbin/init.old",
        ]
    );
    run.line("unmounted /new-root (mounted read-write)");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn initramfs_shell_then_a_retry_that_boots() {
    let dir = tmp("shell");
    let vol = volume(&dir.join("vol"));
    let sys = machine(&dir, "root=LABEL=data", true)
        .disk(disk(&vol))
        .fail_once("mount /dev/nvme1n1", Errno::IO)
        .fail("pivot_root . .", Errno::INVAL);
    let run = boot(sys);
    assert_eq!(run.end, End::Exec("/sbin/init".into()));
    assert_eq!(
        run.line("FAILED at mount: "),
        "FAILED at mount: mounting /dev/nvme1n1 on /new-root as ext4 (flags ro,nosuid,nodev,noexec) failed: \
         errno 5 (Input/output error); action: shell /bin/sh"
    );
    assert_eq!(run.only(&["spawn"]), ["spawn /bin/sh"]);
    run.line("/bin/sh ended: exit status 0");
    run.line("the shell exited; retrying the boot from the modules stage");
    assert_eq!(run.only(&["mount /dev/nvme1n1"]).len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ctrl_alt_del_while_waiting_reboots_cleanly() {
    let dir = tmp("cad");
    let sys = machine(&dir, "pivot.root=LABEL=data", false).signal(Sig::CtrlAltDel);
    let run = boot(sys);
    assert_eq!(run.end, End::Halt(Halt::Reboot));
    assert_eq!(
        run.only(&["umount", "halt"]),
        ["umount /dev", "umount /sys", "umount /proc", "halt Reboot"]
    );
    run.line("a reboot was asked for (Ctrl-Alt-Del): syncing, unmounting what pivot-init mounted, then rebooting");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Ctrl-Alt-Del while the rescue shell runs (`pivot.onfail=shell`): PID 1
/// takes it as in the wait stage, the shell is not waited for, and the
/// boot is not retried.
#[test]
fn ctrl_alt_del_during_the_rescue_shell_reboots() {
    let dir = tmp("cad-shell");
    let vol = volume(&dir.join("vol"));
    // The volume is there at once (no wait for it), so the signal is
    // still queued when the shell runs; a retry would boot it.
    let sys = machine(&dir, "pivot.root=LABEL=data pivot.onfail=shell", false)
        .disk(disk(&vol))
        .fail_once("mount /dev/nvme1n1", Errno::IO)
        .signal(Sig::CtrlAltDel);
    let run = boot(sys);
    assert_eq!(run.end, End::Halt(Halt::Reboot), "{:#?}", run.log);
    assert!(
        run.line("FAILED at mount: ")
            .ends_with("; action: shell /bin/sh"),
        "{:#?}",
        run.log
    );
    assert_eq!(
        run.only(&["spawn", "umount", "halt"]),
        [
            "spawn /bin/sh",
            "umount /dev",
            "umount /sys",
            "umount /proc",
            "halt Reboot"
        ]
    );
    run.line(
        "a reboot was asked for (Ctrl-Alt-Del): syncing, unmounting what pivot-init mounted, \
         then rebooting",
    );
    assert!(
        !run.log
            .iter()
            .any(|l| l.starts_with("/bin/sh ended") || l.contains("retrying")),
        "{:#?}",
        run.log
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `pivot.onfail=wait` after a failure: PID 1 waits for good, but
/// Ctrl-Alt-Del still reboots, after the volume and the API filesystems
/// are unmounted.
#[test]
fn ctrl_alt_del_in_the_final_wait_reboots() {
    let dir = tmp("cad-wait");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let sys = machine(&dir, "pivot.root=LABEL=data pivot.onfail=wait", false)
        .disk(disk(&empty))
        .signal(Sig::CtrlAltDel);
    let run = boot(sys);
    assert_eq!(run.end, End::Halt(Halt::Reboot), "{:#?}", run.log);
    assert!(
        run.line("FAILED at check: ").ends_with("; action: wait"),
        "{:#?}",
        run.log
    );
    run.line("nothing left to run; PID 1 waits");
    assert_eq!(
        run.only(&["umount", "halt"]),
        [
            "umount /new-root",
            "umount /dev",
            "umount /sys",
            "umount /proc",
            "halt Reboot"
        ]
    );
    run.line(
        "a reboot was asked for (Ctrl-Alt-Del): syncing, unmounting what pivot-init mounted, \
         then rebooting",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// In the final wait SIGTERM changes nothing and SIGPWR powers off; a
/// power-off that fails leaves PID 1 waiting, and the next request is taken.
#[test]
fn sigpwr_in_the_final_wait_powers_off_and_a_failed_halt_waits_on() {
    let dir = tmp("pwr-wait");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let sys = machine(&dir, "pivot.root=LABEL=data pivot.onfail=wait", false)
        .disk(disk(&empty))
        .fail_once("halt PowerOff", Errno::PERM)
        .signal(Sig::Term)
        .signal(Sig::Power)
        .signal(Sig::Power);
    let run = boot(sys);
    assert_eq!(run.end, End::Halt(Halt::PowerOff), "{:#?}", run.log);
    assert_eq!(
        run.only(&["umount", "halt"]),
        [
            "umount /new-root",
            "umount /dev",
            "umount /sys",
            "umount /proc",
            "halt PowerOff",
            "umount /dev",
            "umount /sys",
            "umount /proc",
            "halt PowerOff"
        ]
    );
    let asked = "a power-off was asked for (SIGPWR): syncing, unmounting what pivot-init \
                 mounted, then powering off";
    assert_eq!(
        run.log.iter().filter(|l| *l == asked).count(),
        2,
        "{:#?}",
        run.log
    );
    run.line("poweroff failed: errno 1 (Operation not permitted); PID 1 waits");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A panic in the switch, after the boot disk's module tree was bound onto
/// the volume: the panic hook's path (the failure policy run from the
/// snapshot) unbinds it and unmounts the volume before the old init.
#[test]
fn a_panic_after_the_bind_unbinds_from_the_snapshot() {
    let dir = tmp("panic");
    let vol = volume(&dir.join("vol"));
    let sys = machine(&dir, "pivot.root=LABEL=data", false)
        .file(&format!("/lib/modules/{RELEASE}/modules.dep"), b"", 0o644)
        .disk(disk(&vol))
        .panic_on("pivot_root");
    testlog::start();
    let view = view();
    let argv = vec![OsString::from("/sbin/init")];
    let mut b = Boot::start(Snapshot::initial(argv), sys.clone(), view);
    let r = catch_unwind(AssertUnwindSafe(|| b.life()));
    assert!(r.is_err(), "the fake did not panic");
    let snap = view.lock().unwrap().clone().expect("a snapshot");
    let bound = PathBuf::from(format!("/new-root/lib/modules/{RELEASE}"));
    assert_eq!(snap.state.bound, std::slice::from_ref(&bound));
    assert_eq!(snap.state.stage, Stage::Switch);
    drop(b);
    let before = sys.log().len();
    let end = after_panic(snap, sys.clone(), view, "the fake panicked".into());
    assert_eq!(end, End::Exec("/sbin/init.old".into()));
    assert_eq!(
        sys.log()[before..],
        [
            format!("umount {}", bound.display()),
            "chdir /".to_string(),
            "umount /new-root".to_string(),
            "exec /sbin/init.old".to_string(),
        ]
    );
    let log = testlog::take();
    assert!(
        log.iter().any(|l| l
            == "FAILED at switch: internal error (panic): the fake panicked; action: oldinit /sbin/init.old"),
        "{log:#?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A panic half way through the bind (the bind made, its read-only
/// remount not): the bind is in the snapshot already, and the panic hook's
/// path unmounts it before the volume.
#[test]
fn a_panic_inside_the_bind_leaves_the_bind_in_the_snapshot() {
    let dir = tmp("panic-bind");
    let vol = volume(&dir.join("vol"));
    let bound = PathBuf::from(format!("/new-root/lib/modules/{RELEASE}"));
    let sys = machine(&dir, "pivot.root=LABEL=data", false)
        .file(&format!("/lib/modules/{RELEASE}/modules.dep"), b"", 0o644)
        .disk(disk(&vol))
        .panic_on(&format!("remount {}", bound.display()));
    testlog::start();
    let view = view();
    let argv = vec![OsString::from("/sbin/init")];
    let mut b = Boot::start(Snapshot::initial(argv), sys.clone(), view);
    let r = catch_unwind(AssertUnwindSafe(|| b.life()));
    assert!(r.is_err(), "the fake did not panic");
    let snap = view.lock().unwrap().clone().expect("a snapshot");
    assert_eq!(snap.state.bound, std::slice::from_ref(&bound));
    drop(b);
    let before = sys.log().len();
    let end = after_panic(snap, sys.clone(), view, "the fake panicked".into());
    assert_eq!(end, End::Exec("/sbin/init.old".into()));
    assert_eq!(
        sys.log()[before..],
        [
            format!("umount {}", bound.display()),
            "chdir /".to_string(),
            "umount /new-root".to_string(),
            "exec /sbin/init.old".to_string(),
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A hook whose `#!` line has a NUL after its argument: the kernel's
/// argument is a C string, so the hook runs as `/bin/sh -e` (it used to
/// run without its argument: the bytes after the NUL made it no C string).
#[test]
fn a_hook_argument_ends_at_a_nul_byte() {
    let dir = tmp("hook-nul");
    let vol = volume(&dir.join("vol"));
    write(&vol, "/pre-pivot", b"#!/bin/sh -e\0junk\nfalse\n", 0o755);
    let run = boot(machine(&dir, "pivot.root=LABEL=data", false).disk(disk(&vol)));
    assert_eq!(run.end, End::Exec("/sbin/init".into()));
    let spawned: Vec<&Vec<String>> = run
        .calls
        .iter()
        .filter_map(|c| match c {
            Call::Spawn(argv) => Some(argv),
            _ => None,
        })
        .collect();
    assert_eq!(
        spawned,
        [&["/bin/sh", "-e", "/proc/self/fd/3"]
            .map(String::from)
            .to_vec()]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A kernel image of this machine's kind, as far as its header goes: a
/// bzImage (release `release` in its version string) or an arm64 Image.
fn kernel_image(release: &str) -> Vec<u8> {
    let mut k = vec![0u8; 0x8000];
    let put = |k: &mut Vec<u8>, off: usize, v: u64, n: usize| {
        k[off..off + n].copy_from_slice(&v.to_le_bytes()[..n]);
    };
    if std::env::consts::ARCH == "aarch64" {
        k[..2].copy_from_slice(b"MZ");
        put(&mut k, 0x10, 0x200_0000, 8);
        k[0x38..0x3c].copy_from_slice(b"ARM\x64");
        return k;
    }
    put(&mut k, 0x1f1, 0x1b, 1);
    put(&mut k, 0x1f4, (0x8000 - 0x1c * 512) / 16, 4);
    put(&mut k, 0x1fe, 0xAA55, 2);
    k[0x202..0x206].copy_from_slice(b"HdrS");
    put(&mut k, 0x206, 0x020F, 2);
    put(&mut k, 0x20e, 0x3000 - 0x200, 2);
    let v = format!("{release} (test@fake) #1 SMP");
    k[0x3000..0x3000 + v.len()].copy_from_slice(v.as_bytes());
    put(&mut k, 0x211, 1, 1);
    put(&mut k, 0x236, 0x7f, 2);
    put(&mut k, 0x238, 2047, 4);
    k
}

/// A volume that carries its own kernel `release` and initramfs in /boot,
/// a BLS entry for them whose options carry a marker, and a hook.
fn kexec_volume(dir: &Path, release: &str) -> PathBuf {
    let vol = volume(dir);
    write(
        &vol,
        &format!("/boot/vmlinuz-{release}"),
        &kernel_image(release),
        0o644,
    );
    write(
        &vol,
        &format!("/boot/initrd.img-{release}"),
        b"070701 initramfs",
        0o644,
    );
    write(
        &vol,
        "/boot/loader/entries/vol.conf",
        format!(
            "title the volume\nversion {release}\nlinux /boot/vmlinuz-{release}\n\
             initrd /boot/initrd.img-{release}\noptions root=UUID=v ro kexec.marker=1\n"
        )
        .as_bytes(),
        0o644,
    );
    write(&vol, "/pre-pivot", b"#!/bin/sh\nexit 0\n", 0o755);
    vol
}

/// `pivot.kexec=on`: the entry is loaded with its options and the running
/// console, the volume unmounted read-only as it was mounted (no commit,
/// no hook, no switch), then the jump.
#[test]
fn kexec_loads_the_volumes_kernel_unmounts_and_jumps() {
    let dir = tmp("kexec");
    let vol = kexec_volume(&dir.join("vol"), "6.9.0-vol");
    let sys = machine(
        &dir,
        "console=ttyS0,115200 pivot.root=LABEL=data pivot.kexec=on quiet",
        false,
    )
    .arrive(disk(&vol));
    let run = boot(sys);
    assert_eq!(run.end, End::Kexec);
    assert_eq!(
        run.only(&[
            "setr",
            "mount /dev",
            "remount",
            "kexec",
            "chdir",
            "umount",
            "reboot",
            "spawn",
            "pivot_root",
            "exec"
        ]),
        [
            "setro /dev/nvme1n1",
            "mount /dev/nvme1n1 /new-root ext4",
            "kexec_file_load /new-root/boot/vmlinuz-6.9.0-vol /new-root/boot/initrd.img-6.9.0-vol \
             root=UUID=v ro kexec.marker=1 console=ttyS0,115200",
            "chdir /",
            "umount /new-root",
            "reboot kexec",
        ]
    );
    // Read-only to the end: the first mount's flags, and no remount.
    assert_eq!(volume_mounts(&run.calls), [(check_flags(), String::new())]);
    run.line("kexec: booting /boot/vmlinuz-6.9.0-vol (release 6.9.0-vol; running 6.1.0-fake): BLS entry vol, the only one");
    run.line("not running hook /new-root/pre-pivot: pivot.kexec boots the volume's own kernel");
    run.line("kexec: command line (the entry's options, with console=ttyS0,115200 of the running kernel): root=UUID=v ro kexec.marker=1 console=ttyS0,115200");
    run.line("unmounted /new-root (the volume was not changed)");
    run.line(
        "kexec: unmounted the volume, syncing and rebooting into its kernel; uevent to kexec ",
    );
    assert!(
        !run.log.iter().any(|l| l.starts_with("FAILED")),
        "{:#?}",
        run.log
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// In initramfs mode too: the volume's kernel from the kernel's own
/// `root=`, and nothing of the initramfs is freed before the jump.
#[test]
fn kexec_from_an_initramfs() {
    let dir = tmp("kexec-initramfs");
    let vol = kexec_volume(&dir.join("vol"), "6.9.0-vol");
    let sys = machine(&dir, "console=ttyS0 root=LABEL=data pivot.kexec=on", true).disk(disk(&vol));
    let run = boot(sys);
    assert_eq!(run.end, End::Kexec);
    assert_eq!(
        run.only(&["kexec", "umount", "free", "move", "chroot", "reboot"]),
        [
            "kexec_file_load /new-root/boot/vmlinuz-6.9.0-vol /new-root/boot/initrd.img-6.9.0-vol \
             root=UUID=v ro kexec.marker=1 console=ttyS0",
            "umount /new-root",
            "reboot kexec",
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Each failure before the jump is `FAILED at kexec` and the policy, the
/// volume unmounted unchanged (its device given back); nothing is loaded
/// when a check fails.
#[test]
fn a_kexec_failure_ends_in_the_policy_with_the_volume_unchanged() {
    let dir = tmp("kexec-fail");
    let vol = kexec_volume(&dir.join("vol"), "6.9.0-vol");
    let elf_kernel = kexec_volume(&dir.join("elfk"), "6.9.0-vol");
    write(&elf_kernel, "/boot/vmlinuz-6.9.0-vol", &elf(), 0o644);
    let empty_initrd = kexec_volume(&dir.join("emptyi"), "6.9.0-vol");
    write(&empty_initrd, "/boot/initrd.img-6.9.0-vol", b"", 0o644);
    let no_entry = volume(&dir.join("noentry"));
    let on = "console=ttyS0 pivot.root=LABEL=data pivot.kexec=on";
    let m = |name: &str, cmdline: &str| machine(&dir.join("m").join(name), cmdline, false);
    let vmlinuz = "/boot/vmlinuz-6.9.0-vol";
    let cases: [(&str, FakeSys, String, bool); 6] = [
        (
            "enoexec",
            m("enoexec", on)
                .disk(disk(&vol))
                .fail("kexec_file_load", Errno::NOEXEC),
            format!(
                "FAILED at kexec: kexec_file_load of {vmlinuz} with /boot/initrd.img-6.9.0-vol \
                 failed: the running kernel cannot load it as a kernel (errno 8 (Exec format \
                 error); its loader's reason is in the kernel log); action: oldinit /sbin/init.old"
            ),
            true,
        ),
        (
            "enosys",
            m("enosys", &format!("{on} pivot.onfail=poweroff"))
                .disk(disk(&vol))
                .fail("kexec_file_load", Errno::NOSYS),
            format!(
                "FAILED at kexec: kexec_file_load of {vmlinuz} with /boot/initrd.img-6.9.0-vol \
                 failed: this kernel cannot load a kernel from a file (no CONFIG_KEXEC_FILE; \
                 errno 38 (Function not implemented)); action: poweroff"
            ),
            true,
        ),
        (
            "elf",
            m("elf", on).disk(disk(&elf_kernel)),
            format!(
                "FAILED at kexec: {vmlinuz} is not a kernel this machine can boot: it is an ELF \
                 file (a program, or an unpacked vmlinux), not a kernel image; action: oldinit \
                 /sbin/init.old"
            ),
            false,
        ),
        (
            "empty-initrd",
            m("emptyi", on).disk(disk(&empty_initrd)),
            "FAILED at kexec: the initramfs /boot/initrd.img-6.9.0-vol is empty; action: oldinit \
             /sbin/init.old"
                .into(),
            false,
        ),
        (
            "no-entry",
            m("noentry", on).disk(disk(&no_entry)),
            format!(
                "FAILED at kexec: {}; action: oldinit /sbin/init.old",
                kexec::NO_ENTRY
            ),
            false,
        ),
        (
            "reboot",
            m("reboot", on)
                .disk(disk(&vol))
                .fail("reboot kexec", Errno::INVAL),
            "FAILED at kexec: reboot into the loaded kernel (LINUX_REBOOT_CMD_KEXEC) failed: \
             errno 22 (Invalid argument); action: oldinit /sbin/init.old"
                .into(),
            true,
        ),
    ];
    for (name, sys, failed, loads) in cases {
        let run = boot(sys);
        assert_eq!(run.line("FAILED at "), failed, "{name}");
        assert_eq!(
            run.only(&["kexec_file_load"]).len(),
            usize::from(loads),
            "{name}"
        );
        // Unmounted once (before the jump, or by the failure path), the
        // device given back, never remounted; then the action.
        assert_eq!(
            run.only(&["umount /new-root", "setrw", "remount"]),
            ["umount /new-root", "setrw /dev/nvme1n1"],
            "{name}"
        );
        run.line("unmounted /new-root (the volume was not changed)");
        let want = if name == "enosys" {
            End::Halt(Halt::PowerOff)
        } else {
            End::Exec("/sbin/init.old".into())
        };
        assert_eq!(run.end, want, "{name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `pivot.kexec=auto`: an entry of the running release pivots as without
/// kexec (the commit, the hook check, the switch); another release kexecs.
#[test]
fn kexec_auto_compares_the_release_with_the_running_one() {
    let dir = tmp("kexec-auto");
    let same = kexec_volume(&dir.join("same"), RELEASE);
    std::fs::remove_file(same.join("pre-pivot")).unwrap();
    let cmdline = "pivot.root=LABEL=data pivot.kexec=auto";
    let run = boot(machine(&dir.join("a"), cmdline, false).disk(disk(&same)));
    assert_eq!(run.end, End::Exec("/sbin/init".into()));
    assert!(
        run.only(&["kexec", "reboot"]).is_empty(),
        "{:#?}",
        run.texts()
    );
    run.line(&format!(
        "pivot.kexec=auto: /boot/vmlinuz-{RELEASE} (BLS entry vol, the only one) is the running \
         release {RELEASE}; pivoting on the running kernel"
    ));
    let other = kexec_volume(&dir.join("other"), "6.9.0-vol");
    let run = boot(machine(&dir.join("b"), cmdline, false).disk(disk(&other)));
    assert_eq!(run.end, End::Kexec);
    // No entry at all: a pivot too.
    let plain = volume(&dir.join("plain"));
    let run = boot(machine(&dir.join("c"), cmdline, false).disk(disk(&plain)));
    assert_eq!(run.end, End::Exec("/sbin/init".into()));
    run.line("pivot.kexec=auto: the volume has no boot entry: ");
    // A kernel that cannot load another (no CONFIG_KEXEC_FILE): auto
    // pivots, and says why; `on` fails.
    let other2 = kexec_volume(&dir.join("other2"), "6.9.0-vol");
    std::fs::remove_file(other2.join("pre-pivot")).unwrap();
    let m = machine(&dir.join("d"), cmdline, false)
        .disk(disk(&other2))
        .fail("kexec_file_load unload", Errno::NOSYS);
    let run = boot(m);
    assert_eq!(run.end, End::Exec("/sbin/init".into()));
    assert!(
        run.only(&["kexec_file_load /"]).is_empty(),
        "{:#?}",
        run.texts()
    );
    run.line(
        "pivot.kexec=auto: this kernel cannot boot /boot/vmlinuz-6.9.0-vol (it has no \
         kexec_file_load: no CONFIG_KEXEC_FILE); pivoting on the running kernel",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The filesystem UUID of [`ext4`]'s superblock.
const VOL_UUID: &str = "abababab-abab-abab-abab-abababababab";

/// The boot count on a machine's boot root (a sandbox `dir/boot`).
fn count_file(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join("boot/var/lib/pivot-init/state")).ok()
}

/// `pivot.tries=2`, a volume that never says it came up: each boot writes
/// the count on the boot disk just before the exec (after the switch, at
/// /old-root); the third is refused before anything touches the volume.
#[test]
fn tries_count_down_to_the_old_init() {
    let dir = tmp("tries");
    let vol = volume(&dir.join("vol"));
    let cmdline = "pivot.root=LABEL=data pivot.tries=2";
    let mut state: Option<String> = None;
    for (n, left) in [(1, 1), (2, 0)] {
        let mut m = machine(&dir, cmdline, false).disk(disk(&vol));
        if let Some(s) = &state {
            m = m.file("/var/lib/pivot-init/state", s.as_bytes(), 0o644);
        }
        let run = boot(m);
        assert_eq!(run.end, End::Exec("/sbin/init".into()), "{:#?}", run.log);
        let written = count_file(&dir).expect("the count was written");
        assert_eq!(
            written,
            format!(
                "pivot-init-state 1\nuuid {VOL_UUID}\nspec LABEL=data\ntries 2\nleft {left}\n\
                 attempts {n}\nlast-attempt {}\nend\n",
                crate::sys::fake::NOW
            )
        );
        run.line(&format!(
            "UUID={VOL_UUID} (LABEL=data) on nvme1n1 (259:1): {} of 2 tries left, this boot \
             included; it is counted in /var/lib/pivot-init/state on the boot disk just before \
             the hand-over",
            left + 1
        ));
        assert_eq!(
            run.line("counted this boot"),
            format!(
                "counted this boot of UUID={VOL_UUID} (LABEL=data) in \
                 /old-root/var/lib/pivot-init/state: {left} of 2 tries left after it"
            )
        );
        // After the switch, just before the exec: written aside, synced,
        // renamed over, the directory synced.
        let tmp = "/old-root/var/lib/pivot-init/state.new";
        let mut want = vec!["pivot_root /new-root /new-root/old-root".to_string()];
        if n == 1 {
            want.extend(
                [
                    "/old-root/var",
                    "/old-root/var/lib",
                    "/old-root/var/lib/pivot-init",
                ]
                .map(|d| format!("mkdir {d}")),
            );
        }
        want.extend([
            format!("write {tmp}"),
            format!("fsync {tmp}"),
            format!("rename {tmp} /old-root/var/lib/pivot-init/state"),
            "fsync /old-root/var/lib/pivot-init".to_string(),
            "exec /sbin/init".to_string(),
        ]);
        assert_eq!(
            run.only(&[
                "pivot_root",
                "mkdir /old-root",
                "write /old-root",
                "fsync",
                "rename",
                "exec"
            ]),
            want
        );
        state = Some(written);
    }
    let spent = state.unwrap();
    let run = boot(machine(&dir, cmdline, false).disk(disk(&vol)).file(
        "/var/lib/pivot-init/state",
        spent.as_bytes(),
        0o644,
    ));
    assert_eq!(run.end, End::Exec("/sbin/init.old".into()));
    assert_eq!(
        run.line("FAILED at "),
        format!(
            "FAILED at tries: UUID={VOL_UUID} (LABEL=data) on nvme1n1 (259:1) did not come up in \
             2 boots; run 'pivot-init bless' on it to try again; action: oldinit /sbin/init.old"
        )
    );
    // Nothing was done to the volume, and the count stays as it was.
    assert!(
        run.only(&[
            "mount /dev/nvme1n1",
            "setro",
            "umount /new-root",
            "write /var",
            "write /old-root",
            "rename"
        ])
        .is_empty(),
        "{:#?}",
        run.texts()
    );
    assert_eq!(count_file(&dir).as_deref(), Some(spent.as_str()));
    // Another volume (another UUID) starts with all its tries.
    let other = Disk {
        content: {
            let mut c = ext4("data");
            c[1024 + 0x68..1024 + 0x78].copy_from_slice(&[0xcd; 16]);
            c
        },
        ..disk(&vol)
    };
    let run = boot(machine(&dir, cmdline, false).disk(other).file(
        "/var/lib/pivot-init/state",
        spent.as_bytes(),
        0o644,
    ));
    assert_eq!(run.end, End::Exec("/sbin/init".into()));
    run.line("UUID=cdcdcdcd-cdcd-cdcd-cdcd-cdcdcdcdcdcd (LABEL=data) on nvme1n1 (259:1): 2 of 2 tries left");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A read-only boot root (the kernel's `ro`) is made writable for the
/// write and read-only again after, with the flags it had.
#[test]
fn a_read_only_boot_root_is_read_only_again_after_the_count() {
    let dir = tmp("tries-ro");
    let vol = volume(&dir.join("vol"));
    let sys = machine(&dir, "pivot.root=LABEL=data pivot.tries=1", false)
        .file("/var/lib/pivot-init/.keep", b"", 0o644)
        .read_only_mount("/")
        .disk(disk(&vol));
    let run = boot(sys);
    assert_eq!(run.end, End::Exec("/sbin/init".into()));
    assert!(count_file(&dir).is_some_and(|c| c.contains("\nleft 0\n")));
    let remounts: Vec<MountFlags> = run
        .calls
        .iter()
        .filter_map(|c| match c {
            Call::Remount { target, flags, .. } if target == Path::new("/old-root") => Some(*flags),
            _ => None,
        })
        .collect();
    assert_eq!(remounts, [MountFlags::empty(), MountFlags::RDONLY]);
    assert_eq!(
        run.only(&[
            "statvfs",
            "remount /old-root",
            "write /old-root",
            "rename",
            "exec"
        ]),
        [
            "statvfs /old-root",
            "remount /old-root rw",
            "write /old-root/var/lib/pivot-init/state.new",
            "rename /old-root/var/lib/pivot-init/state.new /old-root/var/lib/pivot-init/state",
            "remount /old-root ro",
            "exec /sbin/init",
        ]
    );
    assert!(
        run.line("counted this boot").ends_with(
            ": 0 of 1 try left after it (/old-root was read-only: made writable for the write, \
             read-only again)"
        ),
        "{:#?}",
        run.log
    );
    // Without the remount the fake refuses the write, as the kernel would.
    let dir2 = tmp("tries-ro2");
    let sys = machine(&dir2, "pivot.root=LABEL=data pivot.tries=1", false)
        .file("/var/lib/pivot-init/.keep", b"", 0o644)
        .read_only_mount("/")
        .disk(disk(&vol))
        .fail("remount /old-root rw", Errno::ACCESS);
    let run = boot(sys);
    assert_eq!(run.end, End::Exec("/sbin/init".into()));
    assert_eq!(
        run.line("cannot count"),
        format!(
            "cannot count this boot of UUID={VOL_UUID} (LABEL=data): /old-root is read-only and \
             remounting /old-root with rw failed: errno 13 (Permission denied); handing over all \
             the same"
        )
    );
    assert_eq!(count_file(&dir2), None);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&dir2).unwrap();
}

/// A write that fails (a full boot disk) is logged and the volume boots;
/// a temporary file left by a failed rename is removed, the old count kept.
#[test]
fn a_count_that_cannot_be_written_does_not_stop_the_boot() {
    let dir = tmp("tries-full");
    let vol = volume(&dir.join("vol"));
    let sys = machine(&dir, "pivot.root=LABEL=data pivot.tries=3", false)
        .disk(disk(&vol))
        .fail("mkdir /old-root/var/lib/pivot-init", Errno::NOSPC);
    let run = boot(sys);
    assert_eq!(run.end, End::Exec("/sbin/init".into()));
    assert_eq!(
        run.line("cannot count"),
        format!(
            "cannot count this boot of UUID={VOL_UUID} (LABEL=data): cannot create directory \
             /old-root/var/lib/pivot-init: errno 28 (No space left on device); handing over all \
             the same"
        )
    );
    let dir2 = tmp("tries-full2");
    let old = "pivot-init-state 1\ntries 3\nleft 2\nattempts 1\nend\n";
    let sys = machine(&dir2, "pivot.root=LABEL=data pivot.tries=3", false)
        .file("/var/lib/pivot-init/state", old.as_bytes(), 0o644)
        .disk(disk(&vol))
        .fail("rename", Errno::IO);
    let run = boot(sys);
    assert_eq!(run.end, End::Exec("/sbin/init".into()));
    assert!(
        run.line("cannot count").contains(": cannot rename "),
        "{:#?}",
        run.log
    );
    assert_eq!(
        run.only(&["remove"]),
        ["remove /old-root/var/lib/pivot-init/state.new"]
    );
    assert_eq!(count_file(&dir2).as_deref(), Some(old));
    assert!(!dir2.join("boot/var/lib/pivot-init/state.new").exists());
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&dir2).unwrap();
}

/// A torn count (cut short) is no count: said, and the volume gets every try.
#[test]
fn a_torn_count_is_no_count() {
    let dir = tmp("tries-torn");
    let vol = volume(&dir.join("vol"));
    let torn = format!("pivot-init-state 1\nuuid {VOL_UUID}\ntries 2\nleft 0\natt");
    let sys = machine(&dir, "pivot.root=LABEL=data pivot.tries=2", false)
        .file("/var/lib/pivot-init/state", torn.as_bytes(), 0o644)
        .disk(disk(&vol));
    let run = boot(sys);
    assert_eq!(run.end, End::Exec("/sbin/init".into()));
    run.line(
        "/var/lib/pivot-init/state is no boot count pivot-init can read: it does not end with \
         the line `end` (cut short?); counting as if there were none",
    );
    assert!(count_file(&dir).is_some_and(|c| c.contains("\nleft 1\nattempts 1\n")));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `pivot.tries` with `pivot.kexec=on`: the boot is counted on the boot
/// root (still `/`) just before the jump, and the new kernel's line names
/// the boot disk (`pivot.bootdisk=UUID=`) for `pivot-init bless` there.
#[test]
fn a_kexec_is_counted_and_names_the_boot_disk() {
    use std::os::unix::fs::MetadataExt;
    let dir = tmp("kexec-tries");
    let vol = kexec_volume(&dir.join("vol"), "6.9.0-vol");
    let m = machine(
        &dir,
        "pivot.root=LABEL=data pivot.kexec=on pivot.tries=1",
        false,
    );
    // The boot root is on `vda1` (UUID 1111...), as /sys/dev/block says.
    let root = dir.join("boot");
    let dev = std::fs::metadata(&root).unwrap().dev();
    let (major, minor) = sys::split_dev(dev);
    std::fs::create_dir_all(root.join("sys/dev/block")).unwrap();
    std::os::unix::fs::symlink(
        "../../devices/fake/vda1",
        root.join(format!("sys/dev/block/{major}:{minor}")),
    )
    .unwrap();
    let mut boot_sb = vec![0u8; 8192];
    boot_sb[1024 + 0x38..1024 + 0x3A].copy_from_slice(&0xEF53u16.to_le_bytes());
    boot_sb[1024 + 0x68..1024 + 0x78].copy_from_slice(&[0x11; 16]);
    let m = m
        .disk(Disk {
            name: "vda1".into(),
            major,
            minor,
            serial: None,
            content: boot_sb,
            tree: None,
        })
        .disk(disk(&vol));
    let run = boot(m);
    assert_eq!(run.end, End::Kexec);
    let loads = run.only(&["kexec_file_load /"]);
    assert_eq!(loads.len(), 1, "{:#?}", run.texts());
    assert!(
        loads[0].contains(" pivot.bootdisk=UUID=11111111-1111-1111-1111-111111111111"),
        "{}",
        loads[0]
    );
    // The count is on the boot root before the jump: one boot, none left.
    let count = count_file(&dir).expect("the count was written");
    assert!(count.contains(&format!("\nuuid {VOL_UUID}\n")), "{count}");
    assert!(count.contains("\nleft 0\nattempts 1\n"), "{count}");
    let texts = run.texts();
    let rename = texts.iter().position(|c| c.starts_with("rename "));
    let jump = texts.iter().position(|c| c == "reboot kexec");
    assert!(rename < jump && rename.is_some(), "{texts:#?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The fsck stage: after the node, before the read-only mount, the boot
/// root's checker runs on the writable device; its output is logged line by
/// line, its time is a stage of the summary, and "errors corrected" goes on.
#[test]
fn fsck_runs_before_the_read_only_mount_and_corrected_errors_go_on() {
    let dir = tmp("fsck");
    let vol = volume(&dir.join("vol"));
    let sys = machine(&dir, "pivot.root=LABEL=data", false)
        .file("/sbin/fsck.ext4", &elf(), 0o755)
        .disk(disk(&vol))
        .child_output("data: recovering journal\ndata: 11/4096 files (0.0% non-contiguous)\n")
        .child_exits(Some(Exit::Code(1)));
    let run = boot(sys);
    assert_eq!(run.end, End::Exec("/sbin/init".into()));
    assert_eq!(
        run.only(&["spawn", "setro", "mount /dev/nvme1n1"]),
        [
            "spawn /sbin/fsck.ext4 -p /dev/nvme1n1",
            "setro /dev/nvme1n1",
            "mount /dev/nvme1n1 /new-root ext4",
        ]
    );
    run.line("fsck: running /sbin/fsck.ext4 -p /dev/nvme1n1");
    run.line("fsck: data: recovering journal");
    run.line("fsck: data: 11/4096 files (0.0% non-contiguous)");
    run.line("fsck: fsck.ext4 on nvme1n1: exit 1 (errors corrected)");
    let summary = run.line("switched to /dev/nvme1n1 (ext4)");
    let stages = summary.split("stages ").nth(1).unwrap();
    let names: Vec<&str> = stages
        .split(" ms;")
        .next()
        .unwrap()
        .split(", ")
        .map(|s| s.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "config", "prepare", "wait", "node", "fsck", "mount", "check", "hook", "switch"
        ],
        "{summary}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Exit 2 ("reboot") is read as corrected: the volume is not mounted yet.
/// A volume rejected later says that fsck changed it; e2fsck under
/// /usr/sbin is found when there is no fsck.ext4; `force` adds `-f`.
#[test]
fn fsck_reboot_status_goes_on_and_the_change_is_said_when_rejected_later() {
    let dir = tmp("fsck-reboot");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let sys = machine(&dir, "pivot.root=LABEL=data pivot.fsck=force", false)
        .file("/usr/sbin/e2fsck", &elf(), 0o755)
        .disk(disk(&empty))
        .child_exits(Some(Exit::Code(2)));
    let run = boot(sys);
    assert_eq!(run.end, End::Exec("/sbin/init.old".into()));
    assert_eq!(
        run.only(&["spawn"]),
        ["spawn /usr/sbin/e2fsck -p -f /dev/nvme1n1"]
    );
    run.line(
        "fsck: e2fsck on nvme1n1: exit 2 (system should be rebooted): the volume is not \
         mounted yet, so the boot goes on",
    );
    run.line("FAILED at check: no usable init");
    run.line("unmounted /new-root (fsck corrected errors on it)");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Exit 4 (and a signal) is a failure at fsck: the `FAILED` line names the
/// checker, the device and what the status means; nothing is mounted.
#[test]
fn fsck_errors_left_uncorrected_fail_before_the_mount() {
    let dir = tmp("fsck-fail");
    let vol = volume(&dir.join("vol"));
    for (exit, failed) in [
        (
            Exit::Code(4),
            "FAILED at fsck: fsck.ext4 on nvme1n1 exited 4 (errors left uncorrected); \
             action: oldinit /sbin/init.old",
        ),
        (
            Exit::Code(12),
            "FAILED at fsck: fsck.ext4 on nvme1n1 exited 12 (errors left uncorrected, \
             operational error); action: oldinit /sbin/init.old",
        ),
        (
            Exit::Signal(9),
            "FAILED at fsck: fsck.ext4 on nvme1n1: killed by signal 9; action: oldinit \
             /sbin/init.old",
        ),
    ] {
        let sys = machine(&dir, "pivot.root=LABEL=data", false)
            .file("/sbin/fsck.ext4", &elf(), 0o755)
            .disk(disk(&vol))
            .child_exits(Some(exit));
        let run = boot(sys);
        assert_eq!(run.end, End::Exec("/sbin/init.old".into()));
        assert_eq!(run.line("FAILED at "), failed);
        assert!(
            run.only(&["mount /dev/nvme1n1", "setro"]).is_empty(),
            "{:#?}",
            run.texts()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// No checker: one line and the boot goes on (`auto`), a failure (`force`);
/// xfs needs none by design, even forced; a read-only device is not
/// checked; `skip` runs nothing.
#[test]
fn fsck_without_a_checker_auto_goes_on_force_fails() {
    let dir = tmp("fsck-none");
    let vol = volume(&dir.join("vol"));
    let run = boot(machine(&dir, "pivot.root=LABEL=data", false).disk(disk(&vol)));
    assert_eq!(run.end, End::Exec("/sbin/init".into()));
    run.line(
        "fsck: no checker for ext4 on the boot root (fsck.ext4 or e2fsck in /sbin or /usr/sbin); \
         /dev/nvme1n1 not checked",
    );
    assert!(run.only(&["spawn"]).is_empty());
    let run = boot(
        machine(&dir, "pivot.root=LABEL=data pivot.fsck=force", false)
            .file("/sbin/fsck.ext4", b"#!/nonexistent\n", 0o755)
            .disk(disk(&vol)),
    );
    assert_eq!(
        run.line("FAILED at "),
        "FAILED at fsck: pivot.fsck=force, but no checker for ext4 on the boot root (fsck.ext4 \
         or e2fsck in /sbin or /usr/sbin); found but unusable: /sbin/fsck.ext4: its interpreter \
         /nonexistent is missing or unusable (not found) (pivot.fsck=auto would go on \
         unchecked); action: oldinit /sbin/init.old"
    );
    let mut xfs = disk(&vol);
    let mut sb = vec![0u8; 8192];
    sb[..4].copy_from_slice(b"XFSB");
    xfs.content = sb;
    let run = boot(
        machine(
            &dir,
            "pivot.root=/dev/nvme1n1 pivot.fsck=force pivot.onfail=wait",
            false,
        )
        .file("/sbin/fsck.xfs", &elf(), 0o755)
        .disk(xfs),
    );
    run.line(
        "fsck: not checking /dev/nvme1n1 (xfs): xfs has no boot-time checker by design: the \
         kernel replays its log at mount",
    );
    assert!(run.only(&["spawn"]).is_empty());
    // A device attached read-only: nothing to repair, and e2fsck would fail
    // to open it (exit 8); the boot goes on, even forced.
    let ro = machine(&dir, "pivot.root=LABEL=data pivot.fsck=force", false)
        .file("/sbin/fsck.ext4", &elf(), 0o755)
        .disk(disk(&vol));
    crate::sys::Kernel::set_block_read_only(&ro, Path::new("/dev/nvme1n1"), true).unwrap();
    let run = boot(ro);
    assert_eq!(run.end, End::Exec("/sbin/init".into()));
    run.line("fsck: not checking /dev/nvme1n1 (ext4): the device is read-only");
    assert!(run.only(&["spawn"]).is_empty());
    let run = boot(
        machine(&dir, "pivot.root=LABEL=data pivot.fsck=skip", false)
            .file("/sbin/fsck.ext4", &elf(), 0o755)
            .disk(disk(&vol)),
    );
    assert_eq!(run.end, End::Exec("/sbin/init".into()));
    run.line("fsck: not checking /dev/nvme1n1 (pivot.fsck=skip)");
    assert!(run.only(&["spawn"]).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The hand-back: before the check decides what moves, /run becomes a
/// tmpfs holding this binary as /run/initramfs/shutdown (mode 0755), and it
/// moves to the volume with the other API mounts. `pivot.handback=0`: no
/// /run. A volume without /run: one line, no /run.
#[test]
fn handback_puts_a_run_tmpfs_with_the_shutdown_binary_on_the_volume() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmp("handback");
    let vol = volume(&dir.join("vol"));
    std::fs::create_dir_all(vol.join("run")).unwrap();
    let sys = machine(&dir, "pivot.root=LABEL=data", false)
        .file("/proc/self/exe", b"this binary", 0o755)
        .disk(disk(&vol));
    let run = boot(sys);
    assert_eq!(run.end, End::Exec("/sbin/init".into()));
    let tmpfs: Vec<(MountFlags, String)> = run
        .calls
        .iter()
        .filter_map(|c| match c {
            Call::Mount {
                fstype,
                target,
                flags,
                data,
                ..
            } if fstype == "tmpfs" && target == Path::new("/run") => Some((*flags, data.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        tmpfs,
        [(
            MountFlags::NODEV | MountFlags::NOSUID | MountFlags::STRICTATIME,
            "mode=755".to_string()
        )]
    );
    // At the check (after the read-only mount), before the switch.
    assert_eq!(
        run.only(&["write /run", "move /old-root/run", "setro"]),
        [
            "setro /dev/nvme1n1",
            "write /run/initramfs/shutdown",
            "move /old-root/run /run",
        ]
    );
    let shutdown = dir.join("boot/run/initramfs/shutdown");
    assert_eq!(std::fs::read(&shutdown).unwrap(), b"this binary");
    let mode = std::fs::metadata(&shutdown).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o755);
    run.line("hand-back at shutdown: /run is a tmpfs with /run/initramfs/shutdown (0 KiB), for the volume's systemd");

    let dir2 = tmp("handback-off");
    let run = boot(
        machine(&dir2, "pivot.root=LABEL=data pivot.handback=0", false)
            .file("/proc/self/exe", b"this binary", 0o755)
            .disk(disk(&vol)),
    );
    assert!(
        run.only(&["mount tmpfs", "write /run", "move /old-root/run"])
            .is_empty()
    );
    run.line("switched to /dev/nvme1n1 (ext4) by pivot_root, boot root at /old-root, moved /dev /proc /sys;");

    // A volume without /run (not a systemd one): the switch would have to
    // make one, which a read-only volume could not.
    let dir3 = tmp("handback-norun");
    let bare = volume(&dir3.join("vol"));
    let run = boot(
        machine(&dir3, "pivot.root=LABEL=data", false)
            .file("/proc/self/exe", b"this binary", 0o755)
            .disk(disk(&bare)),
    );
    assert_eq!(run.end, End::Exec("/sbin/init".into()));
    run.line("no hand-back at shutdown: the volume has no /run directory");
    assert!(
        run.only(&["mount tmpfs", "move /old-root/run"]).is_empty(),
        "{:#?}",
        run.texts()
    );
    for d in [dir, dir2, dir3] {
        std::fs::remove_dir_all(&d).unwrap();
    }
}
