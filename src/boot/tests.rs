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
