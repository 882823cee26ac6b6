//! Finding the right volume under QEMU: identity specs among several disks,
//! a wrong disk rejected by its filesystem type, a GPT partition, a deadline.

use std::time::Duration;

use pivot_harness::*;

/// Three volumes attached at boot in a random order; `pick` returns the spec
/// that should select volume "b". The volume's init must be b's.
fn three_disks(name: &str, pick: &str) {
    let s = Scratch::new(name);
    let boot = BootDisk::new(&s).image(&s);
    let ids = ["a", "b", "c"];
    let imgs: Vec<_> = ids
        .iter()
        .map(|id| {
            let uuid = format!(
                "0000000{}-aaaa-4bbb-8ccc-ddddeeeeffff",
                id.as_bytes()[0] - b'a' + 1
            );
            volume_tree(s.0.join(format!("vol-{id}")), id).ext4_args(
                &s.0.join(format!("{id}.img")),
                16,
                &["-L", &format!("label-{id}"), "-U", &uuid],
            )
        })
        .collect();
    let serials: Vec<String> = ids.iter().map(|id| format!("vol0{id}{id}{id}")).collect();
    let mut order = vec![0usize, 1, 2];
    shuffle(&mut order, seed());
    let disks: Vec<Disk> = order
        .iter()
        .map(|&i| Disk {
            image: &imgs[i],
            serial: &serials[i],
        })
        .collect();
    eprintln!(
        "attach order: {:?}",
        order.iter().map(|&i| ids[i]).collect::<Vec<_>>()
    );
    let mut vm = Vm::boot(&s, &boot, &disks, &format!("pivot.root={pick}"));
    let (console, m) = vm.wait_exit();
    assert_line(
        &m,
        "VOLUME-INIT id=b pid=1 args=",
        "volume b's init",
        &console,
    );
    assert!(!m.contains("OLD-INIT"));
}

#[test]
fn three_disks_by_serial() {
    three_disks("serial", "SERIAL=vol-0bbb");
}

#[test]
fn three_disks_by_label() {
    three_disks("label", "LABEL=label-b");
}

#[test]
fn three_disks_by_uuid() {
    // Upper case: UUIDs compare case-insensitively.
    three_disks("uuid", "UUID=00000002-AAAA-4BBB-8CCC-DDDDEEEEFFFF");
}

/// A disk with the right label but the wrong filesystem type (xfs) comes
/// first and is rejected; the right one (ext4) comes 3 s later and is used.
#[test]
fn wrong_fstype_rejected_then_right_one_used() {
    let s = Scratch::new("wrongfs");
    let boot = BootDisk::new(&s).image(&s);
    let wrong = s.0.join("wrong.img");
    std::fs::File::create(&wrong)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    run_tool(
        "mkfs.xfs",
        &["-q", "-f", "-L", "data", wrong.to_str().unwrap()],
    );
    let right = volume_tree(s.0.join("vol"), "right").ext4(&s.0.join("right.img"), 16, "data");
    let mut vm = Vm::boot(&s, &boot, &[], "pivot.root=LABEL=data pivot.fstype=ext4");
    vm.wait_console("pivot-init: waiting for LABEL=data");
    vm.hotplug_nvme(&Disk {
        image: &wrong,
        serial: "vol0abc1",
    });
    vm.wait_console("pivot-init: saw nvme1n1 (259:2) xfs LABEL=data UUID=");
    std::thread::sleep(Duration::from_secs(3));
    vm.hotplug_nvme(&Disk {
        image: &right,
        serial: "vol0abc2",
    });
    let (console, m) = vm.wait_exit();
    let saw = lines_with(&console, "pivot-init: saw nvme1n1 (259:2)");
    assert_eq!(saw.len(), 1, "{console}");
    assert!(
        saw[0].trim_end().ends_with(": xfs, expected ext4"),
        "{}",
        saw[0]
    );
    assert!(
        console.contains("pivot-init: nvme2n1 (259:3) appeared after"),
        "{console}"
    );
    assert_line(
        &m,
        "VOLUME-INIT id=right pid=1 args=",
        "the right volume's init",
        &console,
    );
    assert!(
        console.contains("pivot-init: mounted /dev/nvme2n1 (UUID=")
            && console.contains("LABEL=data) on /new-root as ext4 (rw)"),
        "{console}"
    );
}

/// A GPT-partitioned volume hot-plugged after boot (the disk and each
/// partition arrive as separate uevents); the filesystem on partition 2 is
/// chosen by its PARTUUID (written in upper case).
#[test]
fn gpt_partition_by_partuuid() {
    let s = Scratch::new("gpt");
    let boot = BootDisk::new(&s).image(&s);
    let fs = volume_tree(s.0.join("vol"), "gpt").ext4(&s.0.join("vol.fs"), 16, "gptroot");
    let disk = s.0.join("gpt.img");
    let guid = "6f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
    gpt_disk(&fs, &disk, guid, "volume root");
    let mut vm = Vm::boot(
        &s,
        &boot,
        &[Disk {
            image: &disk,
            serial: "gptvol",
        }],
        &format!("pivot.root=PARTUUID={}", guid.to_uppercase()),
    );
    let (console, m) = vm.wait_exit();
    assert_line(
        &m,
        "VOLUME-INIT id=gpt pid=1 args=",
        "volume init",
        &console,
    );
    let rootdev = lines_with(&m, "ROOTDEV ");
    assert!(
        rootdev.len() == 1 && rootdev[0].contains("n1p2 / ext4 rw"),
        "the root is partition 2: {rootdev:?}"
    );
}

/// While waiting, a progress line every 10 s says what is awaited and what was seen.
#[test]
fn progress_line_every_10_s() {
    let s = Scratch::new("progress");
    let boot = BootDisk::new(&s).image(&s);
    let mut vm = Vm::boot(&s, &boot, &[], "pivot.root=LABEL=later pivot.timeout=11");
    let (console, m) = vm.wait_exit();
    let progress = lines_with(&console, "pivot-init: still waiting for LABEL=later after ");
    assert_eq!(progress.len(), 1, "{console}");
    assert!(
        progress[0].contains(
            "after 10 s; seen so far: nvme0n1 (259:0) no known filesystem, \
             nvme0n1p1 (259:1) ext4 LABEL=bootdisk UUID="
        ),
        "{}",
        progress[0]
    );
    assert_line(&m, "OLD-INIT pid=1 root=boot-disk", "old init", &console);
}
