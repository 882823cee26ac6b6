//! `scripts/demo`: the main job end to end. A boot disk with pivot-init as
//! /sbin/init boots under QEMU and waits; 3 s later a volume is attached over
//! QMP, as a cloud attaches a disk; pivot-init pivots onto it and the volume's
//! own init runs, with the boot disk at /old-root.

use std::io::Write;
use std::time::Duration;

use pivot_harness::*;

fn main() {
    let s = Scratch::new("demo");
    println!(
        "demo: building a plain boot disk (its own /sbin/init), then scripts/install-image on it"
    );
    let fs =
        plain_boot_tree(s.0.join("plain"), "/sbin/init").ext4(&s.0.join("boot.fs"), 16, "bootdisk");
    let conf = s.0.join("pivot-init.conf");
    std::fs::write(
        &conf,
        "# the cloud volume to boot from\nroot = SERIAL=vol-0demo\n",
    )
    .unwrap();
    print!("{}", install_image(&fs, &conf));
    let boot = s.0.join("boot.img");
    mbr_disk(&fs, &boot, BOOT_SIG);
    println!("demo: building the volume (its own /sbin/init and a /pre-pivot hook)");
    let vol_tree = Tree::new(s.0.join("vol"));
    vol_tree
        .busybox()
        .file(
            "/sbin/init",
            b"#!/bin/sh\nexport PATH=/bin\n\
echo '=== volume init: hello, I am PID' $$ 'on' $(grep ' / ' /proc/mounts | head -n1)\n\
echo '=== volume init: the boot disk is at /old-root:' $(ls /old-root)\n\
echo '=== volume init: the hook left:' $(cat /hook-ran)\n\
echo '=== volume init: mounts:'; grep -E ' /(proc|sys|dev|old-root) ' /proc/mounts\n\
echo '=== volume init: powering off'; sync; poweroff -f\n",
            0o755,
        )
        .file(
            "/pre-pivot",
            b"#!/bin/sh\necho \"hook ran on $PIVOT_DEVICE ($PIVOT_FSTYPE) at $(cat /proc/uptime | cut -d' ' -f1) s\" > hook-ran\n",
            0o755,
        )
        .mkdir("/proc")
        .mkdir("/sys")
        .mkdir("/dev")
        .mkdir("/old-root");
    let vol = vol_tree.ext4(&s.0.join("vol.img"), 16, "demo-vol");
    // Nothing pivot.* on the command line: /etc/pivot-init.conf says which volume.
    let cmdline = "";
    println!("demo: booting QEMU (TCG): {} {cmdline}", base_cmdline());
    let mut vm = Vm::boot(&s, &boot, &[], cmdline);
    let mut shown = 0;
    let mut show = |vm: &Vm| {
        let text = vm.console_text();
        let from = text.find("Run /sbin/init").unwrap_or(text.len());
        let start = shown.max(from);
        if let Some(new) = text.get(start..) {
            // Print whole lines only.
            if let Some(end) = new.rfind('\n') {
                print!("{}", &new[..=end]);
                shown = start + end + 1;
            }
        }
        let _ = std::io::stdout().flush();
    };
    while !vm.console_text().contains("pivot-init: waiting for") {
        show(&vm);
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..30 {
        show(&vm);
        std::thread::sleep(Duration::from_millis(100));
    }
    println!(
        "demo: --- attaching the volume over QMP now (blockdev-add + device_add nvme, serial vol0demo) ---"
    );
    vm.hotplug_nvme(&Disk {
        image: &vol,
        serial: "vol0demo",
    });
    while vm.child.try_wait().ok().flatten().is_none() {
        show(&vm);
        std::thread::sleep(Duration::from_millis(100));
    }
    show(&vm);
    let text = vm.console_text();
    if text.contains("=== volume init: powering off") {
        println!("demo: done: the volume's init ran as PID 1 after the hot-plug pivot");
    } else {
        println!(
            "demo: FAILED: the volume's init did not run; console kept in {}",
            s.0.display()
        );
        std::process::exit(1);
    }
}
