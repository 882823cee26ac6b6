//! The fault matrix: every way the boot can go wrong ends in one status line
//! `pivot-init: FAILED at <stage>: <reason>; action: <action>` and a machine
//! that still runs something (the boot disk's old init, which prints
//! `OLD-INIT ...` markers), with the volume untouched where that matters.

use std::path::{Path, PathBuf};

use pivot_harness::*;

/// The one FAILED line, which must end with `tail`.
fn status_line(console: &str, stage: &str, tail: &str) {
    let failed = lines_with(console, "pivot-init: FAILED at ");
    assert_eq!(failed.len(), 1, "one status line expected:\n{console}");
    let line = failed[0].trim_end();
    let want = format!("pivot-init: FAILED at {stage}: {tail}");
    assert!(
        line.ends_with(&want),
        "status line\n  got: {line}\n want: ...{want}"
    );
}

fn old_init_ran(m: &str, console: &str) {
    assert_line(
        m,
        "OLD-INIT pid=1 root=boot-disk",
        "the old init ran",
        console,
    );
    assert_line(
        m,
        "OLD-INIT new-root-mounted=0",
        "the volume was unmounted",
        console,
    );
    assert!(
        !m.contains("VOLUME-INIT"),
        "the volume's init must not run:\n{m}"
    );
}

/// Boots the boot disk with one NVMe volume present and returns (console, markers).
fn boot_with(s: &Scratch, vol: Option<&Path>, cmdline: &str) -> (String, String) {
    let boot = BootDisk::new(s).image(s);
    let disks: Vec<Disk> = vol
        .map(|image| Disk {
            image,
            serial: "vol0fault",
        })
        .into_iter()
        .collect();
    let mut vm = Vm::boot(s, &boot, &disks, cmdline);
    vm.wait_exit()
}

const SPEC: &str = "pivot.root=SERIAL=vol-0fault";

/// Case 1: no volume ever comes. After pivot.timeout the message names the
/// spec and lists the devices seen; the old init runs.
#[test]
fn f01_timeout_no_volume() {
    let s = Scratch::new("f01");
    let (console, m) = boot_with(&s, None, "pivot.root=SERIAL=vol-0nothere pivot.timeout=5");
    status_line(
        &console,
        "wait",
        "no device matching SERIAL=vol-0nothere appeared within 5 s; block devices seen: \
         nvme0n1 (259:0) serial boot, nvme0n1p1 (259:1); action: oldinit /sbin/init.old",
    );
    old_init_ran(&m, &console);
}

/// Case 2: A volume without a filesystem: the device is named; it is not written to.
#[test]
fn f02_no_filesystem() {
    let s = Scratch::new("f02");
    let vol = s.0.join("blank.img");
    std::fs::write(&vol, vec![0u8; 8 << 20]).unwrap();
    let (console, m) = boot_with(&s, Some(&vol), SPEC);
    let dev = device_in(&console);
    status_line(
        &console,
        "mount",
        &format!(
            "no filesystem found on {dev} (no known superblock); set pivot.fstype=TYPE to force one; \
             action: oldinit /sbin/init.old"
        ),
    );
    old_init_ran(&m, &console);
    assert!(
        std::fs::read(&vol).unwrap().iter().all(|b| *b == 0),
        "the blank volume was written to"
    );
}

/// The NVMe device pivot-init picked, from its "found ..." line.
fn device_in(console: &str) -> String {
    let found = lines_with(console, "pivot-init: found nvme");
    let name = found
        .first()
        .and_then(|l| l.split("found ").nth(1))
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("no found line:\n{console}"));
    format!("/dev/{name}")
}

/// Case 3: A corrupted ext4 superblock: the probe sees ext4 but the kernel refuses
/// the mount (checksum); the image is byte-for-byte unchanged.
#[test]
fn f03_corrupted_superblock() {
    let s = Scratch::new("f03");
    let vol = volume_tree(s.0.join("vol"), "f3").ext4(&s.0.join("vol.img"), 16, "data");
    let mut bytes = std::fs::read(&vol).unwrap();
    // s_inodes_count: the metadata checksum no longer matches.
    bytes[1024] ^= 0xff;
    std::fs::write(&vol, &bytes).unwrap();
    let (console, m) = boot_with(&s, Some(&vol), SPEC);
    let dev = device_in(&console);
    status_line(
        &console,
        "mount",
        &format!(
            "mounting {dev} on /new-root as ext4 (flags ro,nosuid,nodev,noexec) failed: errno 74 (Bad message); \
             action: oldinit /sbin/init.old"
        ),
    );
    old_init_ran(&m, &console);
    assert!(
        std::fs::read(&vol).unwrap() == bytes,
        "the volume was changed"
    );
}

/// A volume tree without busybox: only what `files` lists.
fn bare_volume(s: &Scratch, files: &[(&str, &[u8], u32)]) -> PathBuf {
    let t = Tree::new(s.0.join("vol"));
    t.mkdir("/etc").mkdir("/proc").mkdir("/sys").mkdir("/dev");
    for (p, body, mode) in files {
        t.file(p, body, *mode);
    }
    t.ext4(&s.0.join("vol.img"), 16, "data")
}

/// Case 4: A volume without any init: checked before the commit point;
/// nothing created on it, not a byte changed. A machine image does not fall
/// back to the volume's /bin/sh: its old init is the better last resort.
#[test]
fn f04_no_init() {
    let s = Scratch::new("f04");
    let vol = bare_volume(&s, &[("/etc/hostname", b"vol\n", 0o644)]);
    let before = std::fs::read(&vol).unwrap();
    let (console, m) = boot_with(&s, Some(&vol), SPEC);
    status_line(
        &console,
        "check",
        "no usable init on the new root /new-root: /sbin/init: not found; /etc/init: not found; \
         /bin/init: not found; action: oldinit /sbin/init.old",
    );
    old_init_ran(&m, &console);
    unchanged(&vol, &before, &console);
}

/// The volume image is byte-for-byte what it was before the boot, and the
/// log says so.
fn unchanged(vol: &Path, before: &[u8], console: &str) {
    assert!(
        std::fs::read(vol).unwrap() == before,
        "the volume was changed:\n{console}"
    );
    assert!(
        console.contains("pivot-init: unmounted /new-root (the volume was not changed)"),
        "{console}"
    );
}

/// Case 5: /sbin/init is a script whose interpreter is not on the volume.
#[test]
fn f05_missing_interpreter() {
    let s = Scratch::new("f05");
    let vol = bare_volume(
        &s,
        &[("/sbin/init", b"#!/bin/nonexistent\necho hi\n", 0o755)],
    );
    let before = std::fs::read(&vol).unwrap();
    let (console, m) = boot_with(&s, Some(&vol), SPEC);
    status_line(
        &console,
        "check",
        "no usable init on the new root /new-root: /sbin/init: its interpreter /bin/nonexistent is \
         missing or unusable (not found); /etc/init: not found; /bin/init: not found; \
         action: oldinit /sbin/init.old",
    );
    old_init_ran(&m, &console);
    unchanged(&vol, &before, &console);
}

fn volume_with_hook(s: &Scratch, id: &str, hook: &[u8], mode: u32) -> PathBuf {
    let t = volume_tree(s.0.join("vol"), id);
    t.file("/pre-pivot", hook, mode);
    t.ext4(&s.0.join("vol.img"), 16, "data")
}

/// Case 6a: The hook exits 1: abort (the default), unmount, old init.
#[test]
fn f06a_hook_fails_abort() {
    let s = Scratch::new("f06a");
    let vol = volume_with_hook(&s, "f6", b"#!/bin/sh\nexit 1\n", 0o755);
    let (console, m) = boot_with(&s, Some(&vol), SPEC);
    status_line(
        &console,
        "hook",
        "hook /new-root/pre-pivot failed: exit status 1; action: oldinit /sbin/init.old",
    );
    old_init_ran(&m, &console);
}

/// Case 6b: The same hook with pivot.hook_failure=continue: the pivot goes on.
#[test]
fn f06b_hook_fails_continue() {
    let s = Scratch::new("f06b");
    let vol = volume_with_hook(&s, "f6b", b"#!/bin/sh\nexit 1\n", 0o755);
    let (console, m) = boot_with(
        &s,
        Some(&vol),
        &format!("{SPEC} pivot.hook_failure=continue"),
    );
    assert!(
        console.contains(
            "pivot-init: hook failed (exit status 1); going on as pivot.hook_failure=continue says"
        ),
        "{console}"
    );
    assert!(!console.contains("FAILED at"), "{console}");
    assert_line(
        &m,
        "VOLUME-INIT id=f6b pid=1 args=",
        "volume init",
        &console,
    );
}

/// Case 7: A hook that never ends, with pivot.hook_timeout=3: its process group
/// (it and its background child) is killed, and the old init sees no sleeper.
#[test]
fn f07_hook_timeout_kills_group() {
    let s = Scratch::new("f07");
    let vol = volume_with_hook(&s, "f7", b"#!/bin/sh\nsleep 1000 &\nsleep 1000\n", 0o755);
    let (console, m) = boot_with(&s, Some(&vol), &format!("{SPEC} pivot.hook_timeout=3"));
    status_line(
        &console,
        "hook",
        "hook /new-root/pre-pivot did not finish within 3 s (pivot.hook_timeout); its process group \
         was killed; action: oldinit /sbin/init.old",
    );
    old_init_ran(&m, &console);
    assert_line(
        &m,
        "OLD-INIT sleepers=0",
        "no hook process survived",
        &console,
    );
}

/// Case 8: A world-writable hook is skipped; the pivot goes on without it.
#[test]
fn f08_world_writable_hook_skipped() {
    let s = Scratch::new("f08");
    let vol = volume_with_hook(&s, "f8", b"#!/bin/sh\necho ran > hook-ran\n", 0o777);
    let (console, m) = boot_with(&s, Some(&vol), SPEC);
    assert!(
        console.contains(
            "pivot-init: not running hook /new-root/pre-pivot: it is group- or world-writable (mode 0777)"
        ),
        "{console}"
    );
    assert_line(&m, "VOLUME-INIT id=f8 pid=1 args=", "volume init", &console);
    assert!(!m.contains("HOOK "), "the hook must not have run:\n{m}");
}

/// Case 9: A hook that is a symlink (to the boot disk, via /old-root) is skipped.
#[test]
fn f09_symlink_hook_skipped() {
    let s = Scratch::new("f09");
    let t = volume_tree(s.0.join("vol"), "f9");
    t.symlink("/pre-pivot", "/old-root/sbin/init.old");
    let vol = t.ext4(&s.0.join("vol.img"), 16, "data");
    let (console, m) = boot_with(&s, Some(&vol), SPEC);
    assert!(
        console.contains(
            "pivot-init: not running hook /new-root/pre-pivot: it is a symlink (a hook must be a regular file on the volume)"
        ),
        "{console}"
    );
    assert_line(&m, "VOLUME-INIT id=f9 pid=1 args=", "volume init", &console);
}

/// Case 10: The kernel's default read-only root without /new-root on it.
#[test]
fn f10_read_only_root_without_new_root() {
    let s = Scratch::new("f10");
    let bd = BootDisk::new(&s);
    std::fs::remove_dir(bd.tree.path("/new-root")).unwrap();
    let boot = bd.image(&s);
    let vol = volume_tree(s.0.join("vol"), "f10").ext4(&s.0.join("vol.img"), 16, "data");
    // `ro` after the harness's `rw`: the last one wins, as in the kernel.
    let mut vm = Vm::boot(
        &s,
        &boot,
        &[Disk {
            image: &vol,
            serial: "vol0fault",
        }],
        &format!("{SPEC} ro"),
    );
    let (console, m) = vm.wait_exit();
    status_line(
        &console,
        "mount",
        "cannot create directory /new-root: errno 30 (Read-only file system); create it in the image \
         or boot with `rw`; action: oldinit /sbin/init.old",
    );
    assert_line(&m, "OLD-INIT pid=1 root=boot-disk", "old init", &console);
}

/// Case 11: pivot.onfail=poweroff: the message, then a clean power-off.
#[test]
fn f11_onfail_poweroff() {
    let s = Scratch::new("f11");
    let (console, m) = boot_with(
        &s,
        None,
        "pivot.root=LABEL=none pivot.timeout=2 pivot.onfail=poweroff",
    );
    let failed = lines_with(&console, "pivot-init: FAILED at wait: ");
    assert_eq!(failed.len(), 1, "{console}");
    assert!(
        failed[0].contains(
            "no device matching LABEL=none appeared within 2 s; block devices seen: nvme0n1 (259:0) \
             no known filesystem, nvme0n1p1 (259:1) ext4 LABEL=bootdisk UUID="
        ) && failed[0].trim_end().ends_with("; action: poweroff"),
        "{}",
        failed[0]
    );
    assert!(console.contains("reboot: Power down"), "{console}");
    assert!(m.is_empty(), "nothing else ran:\n{m}");
}

/// Case 12: Garbage on the command line: one warning each, defaults kept, and
/// the boot still works with the valid volume.
#[test]
fn f12_garbage_cmdline() {
    let s = Scratch::new("f12");
    let vol = volume_tree(s.0.join("vol"), "f12").ext4(&s.0.join("vol.img"), 16, "data");
    let (console, m) = boot_with(
        &s,
        Some(&vol),
        &format!("{SPEC} pivot.timeout=abc pivot.onfail=explode pivot.root= pivot.bogus=1"),
    );
    for w in [
        "pivot-init: ignoring pivot.timeout=abc: `abc` is not a number of seconds (0 = forever); using the default",
        "pivot-init: ignoring pivot.onfail=explode: `explode` is not one of oldinit, shell, reboot, poweroff, wait; using the default",
        "pivot-init: ignoring pivot.root=: empty volume spec; expected /dev/NAME, MAJ:MIN, UUID=, LABEL=, PARTUUID=, PARTLABEL=, SERIAL=, LUN= or a /dev/disk/by-* link; keeping the earlier value",
        "pivot-init: ignoring pivot.bogus=1: unknown key; known keys: ",
    ] {
        assert_eq!(
            lines_with(&console, w).len(),
            1,
            "warning {w:?}:\n{console}"
        );
    }
    assert_line(
        &m,
        "VOLUME-INIT id=f12 pid=1 args=",
        "volume init",
        &console,
    );
}

/// A panic on the PID-1 path runs the failure policy, not a kernel panic.
#[test]
fn f13_panic_runs_failure_policy() {
    let s = Scratch::new("f13");
    let vol = volume_tree(s.0.join("vol"), "f13").ext4(&s.0.join("vol.img"), 16, "data");
    let (console, m) = boot_with(&s, Some(&vol), &format!("{SPEC} pivot.debug_panic=mount"));
    let failed = lines_with(
        &console,
        "pivot-init: FAILED at mount: internal error (panic): ",
    );
    assert_eq!(failed.len(), 1, "{console}");
    assert!(
        failed[0].contains("pivot.debug_panic=mount asked for a panic here"),
        "{}",
        failed[0]
    );
    assert!(
        failed[0]
            .trim_end()
            .ends_with("; action: oldinit /sbin/init.old"),
        "{}",
        failed[0]
    );
    assert!(!console.contains("Kernel panic"), "{console}");
    assert_line(&m, "OLD-INIT pid=1 root=boot-disk", "old init", &console);
}

/// pivot.onfail=shell: the boot disk's /bin/sh gets the console; the
/// operator attaches the volume and leaves the shell, and the boot is retried
/// from the modules stage and succeeds.
#[test]
fn f14_onfail_shell_then_retry() {
    let s = Scratch::new("f14");
    let boot = BootDisk::new(&s).image(&s);
    let vol = volume_tree(s.0.join("vol"), "f14").ext4(&s.0.join("vol.img"), 16, "later");
    let mut vm = Vm::start(
        &s,
        &Boot {
            disk: Some(&boot),
            cmdline: "pivot.root=LABEL=later pivot.timeout=2 pivot.onfail=shell",
            console_input: true,
            ..Boot::default()
        },
    );
    vm.wait_console("; action: shell /bin/sh");
    // busybox sh on a console prints its prompt; show that it takes input.
    vm.wait_console("/ # ");
    vm.type_console("echo typed-$((40+2))\n");
    vm.wait_console("typed-42");
    vm.hotplug_nvme(&Disk {
        image: &vol,
        serial: "later",
    });
    vm.type_console("exit\n");
    let (console, m) = vm.wait_exit();
    assert_eq!(
        lines_with(&console, "pivot-init: FAILED at wait: ").len(),
        1,
        "{console}"
    );
    assert!(
        console.contains("pivot-init: the shell exited; retrying the boot from the modules stage"),
        "{console}"
    );
    assert_line(
        &m,
        "VOLUME-INIT id=f14 pid=1 args=",
        "the retried boot",
        &console,
    );
}

/// busybox-static with its ELF machine patched to aarch64: a valid binary
/// for another architecture, as when one volume serves Graviton and x86.
fn foreign_binary() -> Vec<u8> {
    let mut b = std::fs::read("/bin/busybox").unwrap();
    b[0x12..0x14].copy_from_slice(&183u16.to_le_bytes());
    b
}

/// Case 15: the init is an ELF for another machine: refused before the
/// switch, the old init runs, the volume is byte-identical.
#[test]
fn f15_init_for_another_architecture() {
    let s = Scratch::new("f15");
    let vol = bare_volume(&s, &[("/sbin/init", &foreign_binary(), 0o755)]);
    let before = std::fs::read(&vol).unwrap();
    let (console, m) = boot_with(&s, Some(&vol), SPEC);
    status_line(
        &console,
        "check",
        "no usable init on the new root /new-root: /sbin/init: an ELF binary for aarch64, but this \
         machine runs x86_64; /etc/init: not found; /bin/init: not found; action: oldinit /sbin/init.old",
    );
    old_init_ran(&m, &console);
    unchanged(&vol, &before, &console);
}

/// Case 16: an init script saved with CRLF line ends: the kernel would look
/// for `/bin/busybox\r`, so it is refused though /bin/busybox exists.
#[test]
fn f16_init_script_with_crlf() {
    let s = Scratch::new("f16");
    let busybox = std::fs::read("/bin/busybox").unwrap();
    let vol = bare_volume(
        &s,
        &[
            ("/bin/busybox", &busybox, 0o755),
            (
                "/sbin/init",
                b"#!/bin/busybox\r\nsh -c 'echo hi'\r\n",
                0o755,
            ),
        ],
    );
    let before = std::fs::read(&vol).unwrap();
    let (console, m) = boot_with(&s, Some(&vol), SPEC);
    status_line(
        &console,
        "check",
        "no usable init on the new root /new-root: /sbin/init: its interpreter /bin/busybox\\r is \
         missing or unusable (not found); /etc/init: not found; /bin/init: not found; \
         action: oldinit /sbin/init.old",
    );
    old_init_ran(&m, &console);
    unchanged(&vol, &before, &console);
}

/// Case 17: /sbin/init is a symlink into the volume's own old-root/
/// directory, which the boot root covers after the switch: refused.
#[test]
fn f17_init_under_old_root() {
    let s = Scratch::new("f17");
    let t = Tree::new(s.0.join("vol"));
    t.mkdir("/proc").mkdir("/sys").mkdir("/dev").mkdir("/sbin");
    t.copy("/old-root/sbin/init", Path::new("/bin/busybox"), 0o755);
    t.symlink("/sbin/init", "/old-root/sbin/init");
    let vol = t.ext4(&s.0.join("vol.img"), 16, "data");
    let before = std::fs::read(&vol).unwrap();
    let (console, m) = boot_with(&s, Some(&vol), SPEC);
    status_line(
        &console,
        "check",
        "no usable init on the new root /new-root: /sbin/init: it resolves to /old-root/sbin/init on \
         the volume, under /old-root, which the switch covers; /etc/init: not found; /bin/init: not \
         found; action: oldinit /sbin/init.old",
    );
    old_init_ran(&m, &console);
    unchanged(&vol, &before, &console);
}

/// Case 18: the exec of the checked init fails after the switch (made to
/// fail by a test key): the switch is undone, and the old init runs with
/// the boot disk as `/`, the volume unmounted and the API mounts in place.
#[test]
fn f18_exec_failure_after_switch_is_undone() {
    let s = Scratch::new("f18");
    let vol = volume_tree(s.0.join("vol"), "f18").ext4(&s.0.join("vol.img"), 16, "data");
    let (console, m) = boot_with(&s, Some(&vol), &format!("{SPEC} pivot.debug_exec_fail=1"));
    status_line(
        &console,
        "exec",
        "exec of /sbin/init failed: errno 8 (Exec format error); \
         action: oldinit /sbin/init.old (switch undone)",
    );
    old_init_ran(&m, &console);
    assert_line(
        &m,
        "OLD-INIT api=/proc:1 /sys:1 /dev:1",
        "the API mounts are back on the boot root",
        &console,
    );
    assert!(
        console.contains("pivot-init: unmounted /new-root (mounted read-write)"),
        "{console}"
    );
}

/// A hook that starts a daemon in a new session (`setsid`): the hook runs
/// as PID 1 of its own PID namespace, so the daemon ends with it.
const DAEMON_HOOK: &str = "#!/bin/sh\nsetsid sleep 987654 &\nsleep 1\nexit EXIT\n";

/// Case 19: the daemon's hook exits 1 (abort): the old init finds no process
/// of the hook, and the volume was unmounted cleanly, not detached.
#[test]
fn f19_hook_daemon_does_not_outlive_a_failed_hook() {
    let s = Scratch::new("f19");
    let vol = volume_with_hook(
        &s,
        "f19",
        DAEMON_HOOK.replace("EXIT", "1").as_bytes(),
        0o755,
    );
    let (console, m) = boot_with(&s, Some(&vol), SPEC);
    status_line(
        &console,
        "hook",
        "hook /new-root/pre-pivot failed: exit status 1; action: oldinit /sbin/init.old",
    );
    old_init_ran(&m, &console);
    assert_line(
        &m,
        "OLD-INIT hook-procs=0",
        "no process of the hook",
        &console,
    );
    assert!(
        console.contains("pivot-init: unmounted /new-root (mounted read-write; the hook ran)"),
        "{console}"
    );
    assert!(!console.contains("detached"), "{console}");
}

/// Case 20: the same daemon, the hook exits 0 (and `continue`): the volume's
/// init finds no process of the hook.
#[test]
fn f20_hook_daemon_does_not_outlive_a_good_hook() {
    let s = Scratch::new("f20");
    let vol = volume_with_hook(
        &s,
        "f20",
        DAEMON_HOOK.replace("EXIT", "0").as_bytes(),
        0o755,
    );
    let (console, m) = boot_with(
        &s,
        Some(&vol),
        &format!("{SPEC} pivot.hook_failure=continue"),
    );
    assert!(!console.contains("FAILED at"), "{console}");
    assert_line(
        &m,
        "VOLUME-INIT id=f20 pid=1 args=",
        "volume init",
        &console,
    );
    assert_line(&m, "HOOK-PROCS 0", "no process of the hook", &console);
}

/// Case 21: `pivot.hook=/hooks/hook` where the volume's /hooks is a symlink
/// to a directory of the boot disk that has an executable `hook`: not run.
#[test]
fn f21_hook_through_a_symlink_off_the_volume() {
    let s = Scratch::new("f21");
    let bd = BootDisk::new(&s);
    bd.tree.file(
        "/hookdir/hook",
        b"#!/bin/sh\necho BOOTDISK-HOOK > /dev/ttyS1\n",
        0o755,
    );
    let boot = bd.image(&s);
    let t = volume_tree(s.0.join("vol"), "f21");
    t.symlink("/hooks", "/hookdir");
    let vol = t.ext4(&s.0.join("vol.img"), 16, "data");
    let mut vm = Vm::boot(
        &s,
        &boot,
        &[Disk {
            image: &vol,
            serial: "vol0fault",
        }],
        &format!("{SPEC} pivot.hook=/hooks/hook"),
    );
    let (console, m) = vm.wait_exit();
    assert!(
        console.contains(
            "pivot-init: not running hook /new-root/hooks/hook: its path leaves the volume through a symlink"
        ),
        "{console}"
    );
    assert!(
        !m.contains("BOOTDISK-HOOK"),
        "the boot disk's file ran:\n{m}"
    );
    assert_line(
        &m,
        "VOLUME-INIT id=f21 pid=1 args=",
        "volume init",
        &console,
    );
}

/// Case 22: Ctrl-Alt-Del while waiting is a reboot request: logged, then a
/// clean reboot (QEMU, run with -no-reboot, exits).
#[test]
fn f22_ctrl_alt_del_while_waiting() {
    let s = Scratch::new("f22");
    let boot = BootDisk::new(&s).image(&s);
    let mut vm = Vm::boot(&s, &boot, &[], "pivot.root=LABEL=never");
    vm.wait_console("pivot-init: waiting for LABEL=never");
    vm.send_keys(&["ctrl", "alt", "delete"]);
    let (console, m) = vm.wait_exit();
    assert!(
        console.contains(
            "pivot-init: a reboot was asked for (Ctrl-Alt-Del): syncing, unmounting what pivot-init \
             mounted, then rebooting"
        ),
        "{console}"
    );
    assert!(console.contains("reboot: Restarting system"), "{console}");
    assert!(!console.contains("FAILED at"), "{console}");
    assert!(m.is_empty(), "nothing else ran:\n{m}");
}

/// Case 23: a config file with a line that is not UTF-8: a warning with file
/// and line, and the other lines are used (the volume is named there).
#[test]
fn f23_config_file_with_invalid_utf8() {
    let s = Scratch::new("f23");
    let bd = BootDisk::new(&s);
    bd.tree.file(
        "/etc/pivot-init.conf",
        b"# made by hand\nlabel\xff\xfe = x\nroot = SERIAL=vol-0fault\n",
        0o644,
    );
    let boot = bd.image(&s);
    let vol = volume_tree(s.0.join("vol"), "f23").ext4(&s.0.join("vol.img"), 16, "data");
    let mut vm = Vm::boot(
        &s,
        &boot,
        &[Disk {
            image: &vol,
            serial: "vol0fault",
        }],
        "",
    );
    let (console, m) = vm.wait_exit();
    assert!(
        console.contains("pivot-init: /etc/pivot-init.conf:2: not valid UTF-8; read as `label"),
        "{console}"
    );
    assert_line(
        &m,
        "VOLUME-INIT id=f23 pid=1 args=",
        "volume init",
        &console,
    );
}

/// Case 24: a FAILED line longer than the kernel takes in one /dev/kmsg
/// write (992 bytes on the 6.1 test kernel: a longer write fails with
/// EINVAL and the record is lost whole) still reaches the log, cut to fit.
/// An 800-byte label makes the wait timeout's line about 1,050 bytes.
#[test]
fn f24_failed_line_longer_than_a_record() {
    let s = Scratch::new("f24");
    let label = "x".repeat(800);
    let (console, m) = boot_with(
        &s,
        None,
        &format!("pivot.root=LABEL={label} pivot.timeout=1"),
    );
    let failed = lines_with(&console, "pivot-init: FAILED at wait: ");
    assert_eq!(failed.len(), 1, "one status line expected:\n{console}");
    let line = failed[0].trim_end();
    assert!(
        line.contains(&format!(
            "pivot-init: FAILED at wait: no device matching LABEL={label} appeared within 1 s; \
             block devices seen: nvme0n1 (259:0) no known filesystem, nvme0n1p1 (259:1) e"
        )),
        "{line}"
    );
    // The record (`<3>pivot-init: ...\n`) fits the kernel's 992 bytes.
    let record = line.len() - line.find("pivot-init: ").unwrap_or(0) + "<3>\n".len();
    assert!(record <= 992, "{record} bytes: {line}");
    // The reason is cut, marked, and the action is kept whole.
    assert!(
        line.ends_with(" ... ; action: oldinit /sbin/init.old"),
        "{line}"
    );
    old_init_ran(&m, &console);
}

/// Case 25: a FIFO where the init is expected. It is looked at, never
/// opened (a read would wait for a writer forever, with PID 1 stuck at the
/// check): refused as not a regular file, the volume unchanged.
#[test]
fn f25_fifo_init() {
    let s = Scratch::new("f25");
    let mut t = Tree::new(s.0.join("vol"));
    t.mkdir("/etc")
        .mkdir("/sbin")
        .mkdir("/proc")
        .mkdir("/sys")
        .mkdir("/dev");
    t.node("/sbin/init", 'p', 0, 0);
    let vol = t.ext4(&s.0.join("vol.img"), 16, "data");
    let before = std::fs::read(&vol).unwrap();
    let (console, m) = boot_with(&s, Some(&vol), SPEC);
    status_line(
        &console,
        "check",
        "no usable init on the new root /new-root: /sbin/init: not a regular file; \
         /etc/init: not found; /bin/init: not found; action: oldinit /sbin/init.old",
    );
    old_init_ran(&m, &console);
    unchanged(&vol, &before, &console);
}

/// Case 26: the hook is a character device, the watchdog (softdog loaded
/// by `pivot.modules`): opening it would arm it, and closing it again
/// without the magic close makes the kernel say "watchdog did not stop!"
/// (then reset the machine after its margin). The check looks at it without
/// opening it: skipped, the watchdog untouched, the volume boots.
#[test]
fn f26_character_device_hook() {
    let s = Scratch::new("f26");
    let mut t = volume_tree(s.0.join("vol"), "f26");
    t.node("/pre-pivot", 'c', 10, 130);
    let vol = t.ext4(&s.0.join("vol.img"), 16, "data");
    let initrd = initramfs(&s, &["softdog"], &[]);
    let disks = [Disk {
        image: &vol,
        serial: "vol0fault",
    }];
    let cmdline = "root=SERIAL=vol-0fault rw pivot.modules=softdog";
    let (console, m) = Vm::initramfs(&s, &initrd, &disks, cmdline).wait_exit();
    assert!(
        console.contains("pivot-init: loaded 1 module(s) for softdog")
            || console.contains("pivot-init: loaded 2 module(s) for softdog"),
        "{console}"
    );
    assert!(
        console
            .contains("pivot-init: not running hook /new-root/pre-pivot: it is not a regular file"),
        "{console}"
    );
    assert!(
        !console.contains("did not stop"),
        "the watchdog was opened:\n{console}"
    );
    assert_line(
        &m,
        "VOLUME-INIT id=f26 pid=1 args=",
        "volume init",
        &console,
    );
}

/// Case 27: an ext4 volume without a journal and with an orphan inode,
/// rejected (it has no init). A read-only mount of a writable device would
/// clean the orphan up (ext4 does that even read-only); the device is
/// read-only until the commit, so not a byte of the image changes.
#[test]
fn f27_orphan_inode_on_a_rejected_volume() {
    let s = Scratch::new("f27");
    let t = Tree::new(s.0.join("vol"));
    t.mkdir("/etc").mkdir("/proc").mkdir("/sys").mkdir("/dev");
    t.file("/orphan", &vec![b'x'; 64 * 1024], 0o644);
    let vol = t.ext4_args(
        &s.0.join("vol.img"),
        16,
        &["-L", "data", "-O", "^has_journal"],
    );
    let img = vol.to_str().unwrap();
    let stat = std::process::Command::new("debugfs")
        .args(["-R", "stat /orphan", img])
        .output()
        .unwrap();
    let stat = String::from_utf8_lossy(&stat.stdout);
    let ino: u32 = stat
        .split("Inode: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no inode number in {stat}"));
    let cmds = format!("unlink /orphan\nsif <{ino}> links_count 0\nssv last_orphan {ino}\n");
    let script = s.0.join("orphan.debugfs");
    std::fs::write(&script, cmds).unwrap();
    let out = std::process::Command::new("debugfs")
        .args(["-w", "-f", script.to_str().unwrap(), img])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = std::fs::read(&vol).unwrap();
    let (console, m) = boot_with(&s, Some(&vol), SPEC);
    status_line(
        &console,
        "check",
        "no usable init on the new root /new-root: /sbin/init: not found; /etc/init: not found; \
         /bin/init: not found; action: oldinit /sbin/init.old",
    );
    old_init_ran(&m, &console);
    unchanged(&vol, &before, &console);
}

/// Case 28: a hook whose interpreter the boot root lacks: found at the
/// check, before the commit; the volume is refused unchanged.
#[test]
fn f28_hook_interpreter_missing() {
    let s = Scratch::new("f28");
    let vol = volume_with_hook(&s, "f28", b"#!/nonexistent\nexit 0\n", 0o755);
    let before = std::fs::read(&vol).unwrap();
    let (console, m) = boot_with(&s, Some(&vol), SPEC);
    status_line(
        &console,
        "check",
        "hook /new-root/pre-pivot cannot run: its interpreter /nonexistent is missing or unusable \
         (not found) (pivot.hook_failure=continue would go on without it); \
         action: oldinit /sbin/init.old",
    );
    old_init_ran(&m, &console);
    unchanged(&vol, &before, &console);
}

/// The first `PT_LOAD` of a little-endian 64-bit ELF that reaches past
/// `cut` bytes: (its offset, offset + file size).
fn first_segment_past(elf: &[u8], cut: u64) -> (u64, u64) {
    let u = |off: usize, len: usize| {
        elf[off..off + len]
            .iter()
            .rev()
            .fold(0u64, |v, b| (v << 8) | u64::from(*b))
    };
    let (phoff, phnum) = (u(0x20, 8) as usize, u(0x38, 2) as usize);
    (0..phnum)
        .map(|i| phoff + i * 56)
        .filter(|&ph| u(ph, 4) == 1)
        .map(|ph| (u(ph + 8, 8), u(ph + 8, 8) + u(ph + 32, 8)))
        .find(|&(_, end)| end > cut)
        .expect("a segment past the cut")
}

/// Case 29: the init is busybox-static cut at 16 KiB, as by a copy that
/// stopped: its ELF header and program headers are whole, its code is not
/// in the file. The kernel would map it and PID 1 would die at its first
/// page fault (a kernel panic); it is refused at the check, the old init
/// runs and the volume is byte-identical.
#[test]
fn f29_truncated_init() {
    let s = Scratch::new("f29");
    let busybox = std::fs::read("/bin/busybox").unwrap();
    let cut = &busybox[..16384];
    let (offset, needs) = first_segment_past(&busybox, 16384);
    let vol = bare_volume(&s, &[("/sbin/init", cut, 0o755)]);
    let before = std::fs::read(&vol).unwrap();
    let (console, m) = boot_with(&s, Some(&vol), SPEC);
    assert!(!console.contains("Kernel panic"), "{console}");
    status_line(
        &console,
        "check",
        &format!(
            "no usable init on the new root /new-root: /sbin/init: a truncated executable: its \
             segment at offset {offset} needs the file's first {needs} bytes, but it has 16384 \
             (copied incompletely?); /etc/init: not found; /bin/init: not found; \
             action: oldinit /sbin/init.old"
        ),
    );
    old_init_ran(&m, &console);
    unchanged(&vol, &before, &console);
}

/// Case 30: `pivot.onfail=wait` after a failure: PID 1 waits for good, but
/// Ctrl-Alt-Del still reboots cleanly (QEMU, run with -no-reboot, exits).
#[test]
fn f30_ctrl_alt_del_in_the_final_wait() {
    let s = Scratch::new("f30");
    let boot = BootDisk::new(&s).image(&s);
    let vol = bare_volume(&s, &[("/etc/hostname", b"vol\n", 0o644)]);
    let mut vm = Vm::boot(
        &s,
        &boot,
        &[Disk {
            image: &vol,
            serial: "vol0fault",
        }],
        &format!("{SPEC} pivot.onfail=wait"),
    );
    vm.wait_console("pivot-init: nothing left to run; PID 1 waits");
    // The line comes just before PID 1 blocks the signals: let it get there.
    std::thread::sleep(std::time::Duration::from_millis(500));
    vm.send_keys(&["ctrl", "alt", "delete"]);
    let (console, m) = vm.wait_exit();
    status_line(
        &console,
        "check",
        "no usable init on the new root /new-root: /sbin/init: not found; /etc/init: not found; \
         /bin/init: not found; action: wait",
    );
    assert!(
        console.contains(
            "pivot-init: a reboot was asked for (Ctrl-Alt-Del): syncing, unmounting what pivot-init \
             mounted, then rebooting"
        ),
        "{console}"
    );
    assert!(console.contains("reboot: Restarting system"), "{console}");
    assert!(m.is_empty(), "nothing else ran:\n{m}");
}

/// The first marker line that starts with `prefix`, once the guest printed it.
fn wait_marker(vm: &mut Vm, prefix: &str) -> String {
    let deadline = std::time::Instant::now() + BOOT_TIMEOUT;
    loop {
        if let Some(l) = vm.markers_text().lines().find(|l| l.starts_with(prefix)) {
            return l.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline && !vm.exited(),
            "no {prefix:?} marker; console:\n{}",
            vm.console_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Case 31: in the rescue shell (`pivot.onfail=shell`) a background job
/// whose parent exited is left to PID 1, which reaps it when it exits (no
/// zombie stays until the shell ends); Ctrl-Alt-Del reboots from the shell.
#[test]
fn f31_rescue_shell_orphans_are_reaped_and_ctrl_alt_del_reboots() {
    let s = Scratch::new("f31");
    let boot = BootDisk::new(&s).image(&s);
    let mut vm = Vm::start(
        &s,
        &Boot {
            disk: Some(&boot),
            cmdline: "pivot.root=LABEL=never pivot.timeout=2 pivot.onfail=shell",
            console_input: true,
            ..Boot::default()
        },
    );
    vm.wait_console("; action: shell /bin/sh");
    vm.wait_console("/ # ");
    // The subshell exits at once: its `sleep 3` is an orphan, now PID 1's child.
    vm.type_console(
        "(sleep 3 &); sleep 0.5; echo \"ORPHANS $(grep -l '(sleep) S 1 ' /proc/[0-9]*/stat \
         2>/dev/null | wc -l)\" > /dev/ttyS1\n",
    );
    assert_eq!(wait_marker(&mut vm, "ORPHANS "), "ORPHANS 1");
    // Once it has exited: a zombie would stay until PID 1 reaps it.
    vm.type_console(
        "sleep 4; echo \"ZOMBIES $(grep -l ') Z ' /proc/[0-9]*/stat 2>/dev/null | wc -l)\" \
         > /dev/ttyS1\n",
    );
    let zombies = wait_marker(&mut vm, "ZOMBIES ");
    assert_eq!(zombies, "ZOMBIES 0", "{}", vm.console_text());
    vm.send_keys(&["ctrl", "alt", "delete"]);
    let (console, _) = vm.wait_exit();
    assert!(
        console.contains(
            "pivot-init: a reboot was asked for (Ctrl-Alt-Del): syncing, unmounting what pivot-init \
             mounted, then rebooting"
        ),
        "{console}"
    );
    assert!(console.contains("reboot: Restarting system"), "{console}");
    assert!(!console.contains("/bin/sh ended"), "{console}");
    assert!(!console.contains("retrying the boot"), "{console}");
}
