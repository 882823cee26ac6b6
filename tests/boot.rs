//! Full boots under QEMU (TCG, Debian cloud kernel, NVMe disks): pivot-init
//! is /sbin/init of the boot disk ("machine image" mode).

use std::time::Duration;

use pivot_harness::*;

/// The volume is there at boot: pivot-init finds it by serial (cloud volume id
/// with a dash, device serial without), pivots, and the volume's init runs as
/// PID 1 with the boot disk at /old-root and the API filesystems mounted.
#[test]
fn volume_attached_at_boot() {
    let s = Scratch::new("at-boot");
    let boot = BootDisk::new(&s).image(&s);
    let vol = volume_tree(s.0.join("vol"), "v1").ext4(&s.0.join("vol.img"), 16, "data");
    let mut vm = Vm::boot(
        &s,
        &boot,
        &[Disk {
            image: &vol,
            serial: "vol0abc",
        }],
        "pivot.root=SERIAL=vol-0abc pivotarg1 pivot.stats=1",
    );
    let (console, m) = vm.wait_exit();
    assert_line(
        &m,
        "VOLUME-INIT id=v1 pid=1 args=pivotarg1",
        "volume init",
        &console,
    );
    assert_line(&m, "OLDROOT boot-disk", "old root", &console);
    // The real init starts as the kernel would start it: nothing blocked, and
    // nothing ignored but SIGQUIT (0x4), which busybox ash ignores itself, as
    // every ash and bash do (before, SIGPIPE was inherited ignored: 0x1004).
    assert_line(
        &m,
        "SIGS SigBlk: 0000000000000000 SigIgn: 0000000000000004",
        "signal state of the volume's init",
        &console,
    );
    for d in ["/proc", "/sys", "/dev", "/old-root"] {
        assert_line(
            &m,
            &format!("MOUNT {d} 1"),
            "mounts after the pivot",
            &console,
        );
    }
    let rootdev = lines_with(&m, "ROOTDEV ");
    assert!(
        rootdev.len() == 1 && rootdev[0].contains(" / ext4 rw"),
        "root is the volume: {rootdev:?}"
    );
    assert!(!m.contains("OLD-INIT"), "old init must not run:\n{m}");
    let summary = lines_with(&console, "pivot-init: switched to /dev/nvme");
    assert_eq!(summary.len(), 1, "one summary line:\n{console}");
    assert!(
        summary[0].contains("(ext4) by pivot_root, boot root at /old-root, moved /dev /proc /sys;"),
        "{}",
        summary[0]
    );
    assert!(summary[0].contains("; exec /sbin/init"), "{}", summary[0]);
    // pivot.stats=1 with the volume there at the first scan: no waiting.
    assert!(
        summary[0].contains("; cpu 0 ms while waiting (present at once), "),
        "{}",
        summary[0]
    );
}

/// The volume is attached over QMP 3 s after pivot-init started waiting;
/// `pivot.stats=1` adds what the waiting cost to the summary line.
#[test]
fn volume_hotplugged_after_boot() {
    let s = Scratch::new("hotplug");
    let boot = BootDisk::new(&s).image(&s);
    let vol = volume_tree(s.0.join("vol"), "v2").ext4(&s.0.join("vol.img"), 16, "data");
    let mut vm = Vm::boot(&s, &boot, &[], "pivot.root=/dev/nvme1n1 pivot.stats=1");
    vm.wait_console("pivot-init: waiting for /dev/nvme1n1 (uevents; timeout none)");
    std::thread::sleep(Duration::from_secs(3));
    vm.hotplug_nvme(&Disk {
        image: &vol,
        serial: "late",
    });
    let (console, m) = vm.wait_exit();
    assert_line(&m, "VOLUME-INIT id=v2 pid=1 args=", "volume init", &console);
    assert_line(&m, "OLDROOT boot-disk", "old root", &console);
    assert_line(&m, "MOUNT /old-root 1", "old root mounted", &console);
    let appeared = lines_with(&console, "pivot-init: nvme1n1 (259:2) appeared after ");
    assert_eq!(appeared.len(), 1, "{console}");
    let ms: u64 = appeared[0]
        .rsplit("appeared after ")
        .next()
        .and_then(|t| t.trim_end().strip_suffix(" ms"))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("wait time in {}", appeared[0]));
    assert!(
        ms >= 3000,
        "pivot-init waited {ms} ms, the volume came 3 s later"
    );
    let wait_pos = console.find("pivot-init: waiting for").unwrap();
    let seen_pos = console.find("appeared after").unwrap();
    assert!(wait_pos < seen_pos);
    // `cpu X ms while waiting (N wake-ups), Y ms since start; VmHWM Z KiB`:
    // at least the wake-up of the device's own uevent.
    let summary = lines_with(&console, "pivot-init: switched to");
    assert_eq!(summary.len(), 1, "{console}");
    let stats = summary[0]
        .split("; cpu ")
        .nth(1)
        .unwrap_or_else(|| panic!("no stats in {}", summary[0]));
    let (cpu, rest) = stats.split_once(" ms while waiting (").unwrap();
    let (wakeups, rest) = rest.split_once(" wake-ups), ").unwrap();
    assert!(cpu.parse::<f64>().is_ok(), "{}", summary[0]);
    assert!(wakeups.parse::<u32>().unwrap() >= 1, "{}", summary[0]);
    assert!(rest.contains(" ms since start; VmHWM "), "{}", summary[0]);
}

/// The hook on the volume runs before the pivot: the file it writes (relative
/// to its cwd, the new root) and its environment are seen by the volume's init.
#[test]
fn hook_runs_before_pivot() {
    let s = Scratch::new("hook");
    let boot = BootDisk::new(&s).image(&s);
    let tree = volume_tree(s.0.join("vol"), "v3");
    tree.file(
        "/pre-pivot",
        b"#!/bin/sh\necho \"dev=$PIVOT_DEVICE root=$PIVOT_NEW_ROOT fs=$PIVOT_FSTYPE cwd=$(pwd) path=$PATH pid1=$(cat /proc/1/comm)\" > hook-ran\n",
        0o755,
    );
    let vol = tree.ext4(&s.0.join("vol.img"), 16, "data");
    let mut vm = Vm::boot(
        &s,
        &boot,
        &[Disk {
            image: &vol,
            serial: "hookvol",
        }],
        "pivot.root=SERIAL=hookvol",
    );
    let (console, m) = vm.wait_exit();
    let hook = lines_with(&m, "HOOK ");
    assert_eq!(hook.len(), 1, "the hook wrote /hook-ran:\n{m}\n{console}");
    let h = hook[0].trim_end();
    assert!(h.starts_with("HOOK dev=/dev/nvme"), "{h}");
    assert!(
        h.ends_with(
            "n1 root=/new-root fs=ext4 cwd=/new-root path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin pid1=init"
        ),
        "{h}"
    );
    assert!(console.contains("pivot-init: hook /new-root/pre-pivot ended with exit status 0"));
    assert_line(&m, "VOLUME-INIT id=v3 pid=1 args=", "volume init", &console);
}

/// No devtmpfs: the boot disk has a static /dev without the volume's node;
/// pivot-init mknods it from MAJ:MIN and pivots.
#[test]
fn static_dev_mknod_by_majmin() {
    let s = Scratch::new("mknod");
    let mut bd = BootDisk::new(&s);
    bd.tree
        .node("/dev/console", 'c', 5, 1)
        .node("/dev/ttyS0", 'c', 4, 64)
        .node("/dev/ttyS1", 'c', 4, 65)
        .node("/dev/kmsg", 'c', 1, 11)
        .node("/dev/null", 'c', 1, 3);
    let boot = bd.image(&s);
    let tree = volume_tree(s.0.join("vol"), "v4");
    // Report the node pivot-init made on the boot disk's /dev.
    let init = std::fs::read_to_string(tree.path("/sbin/init")).unwrap().replace(
        "m END",
        "m \"OLDDEV $(stat -c '%F %t:%T' /old-root/dev/nvme1n1)\"\nm \"OLDDEVMOUNT $(grep -c ' /old-root/dev ' /proc/mounts)\"\nm END",
    );
    tree.file("/sbin/init", init.as_bytes(), 0o755);
    let vol = tree.ext4(&s.0.join("vol.img"), 16, "data");
    let mut vm = Vm::boot(&s, &boot, &[], "pivot.root=259:2 pivot.devtmpfs=0");
    vm.wait_console("pivot-init: waiting for 259:2");
    vm.hotplug_nvme(&Disk {
        image: &vol,
        serial: "static",
    });
    let (console, m) = vm.wait_exit();
    assert!(
        console.contains("pivot-init: created block node /dev/nvme1n1 (259:2) with mknod"),
        "{console}"
    );
    assert_line(
        &m,
        "OLDDEV block special file 103:2",
        "node on the boot disk",
        &console,
    );
    assert_line(
        &m,
        "OLDDEVMOUNT 0",
        "no devtmpfs was mounted by pivot-init",
        &console,
    );
    assert_line(&m, "VOLUME-INIT id=v4 pid=1 args=", "volume init", &console);
    assert_line(&m, "OLDROOT boot-disk", "old root", &console);
}
