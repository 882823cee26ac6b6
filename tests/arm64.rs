//! arm64 under QEMU (`qemu-system-aarch64 -M virt`, TCG) with Debian's arm64
//! cloud kernel: pivot-init built for aarch64-unknown-linux-musl, a hot-plug
//! pivot in a machine image, an initramfs boot, and a 32-bit ARM init.

use pivot_harness::*;

const ARM: Arch = Arch::Aarch64;

/// Machine image: pivot-init is /sbin/init of the boot disk; the volume is
/// hot-plugged (into a PCIe root port) 3 s after it started waiting.
#[test]
fn arm64_hotplug_pivot() {
    let s = Scratch::new("arm64-hotplug");
    let boot = BootDisk::new_for(ARM, &s).image(&s);
    let vol = volume_tree_for(ARM, s.0.join("vol"), "a1").ext4(&s.0.join("vol.img"), 16, "data");
    let mut vm = Vm::start(
        &s,
        &Boot {
            disk: Some(&boot),
            cmdline: "pivot.root=SERIAL=vol-0arm",
            arch: ARM,
            ..Boot::default()
        },
    );
    vm.wait_console("pivot-init: waiting for SERIAL=vol-0arm");
    std::thread::sleep(std::time::Duration::from_secs(3));
    vm.hotplug_nvme(&Disk {
        image: &vol,
        serial: "vol0arm",
    });
    let (console, m) = vm.wait_exit();
    assert!(console.contains("(machine image mode)"), "{console}");
    assert_line(
        &m,
        "VOLUME-INIT id=a1 pid=1 args=",
        "the volume's init",
        &console,
    );
    assert_line(
        &m,
        "OLDROOT boot-disk",
        "the boot disk at /old-root",
        &console,
    );
    for d in ["/proc", "/sys", "/dev"] {
        assert_line(
            &m,
            &format!("MOUNT {d} 1"),
            "mounts after the pivot",
            &console,
        );
    }
    eprintln!(
        "arm64 hot-plug pivot: {:.1} s from QEMU start to power-off",
        vm.started.elapsed().as_secs_f64()
    );
}

/// Initramfs: pivot-init as /init, the volume present at boot, the kernel's
/// own `root=LABEL=` and `rw`; switch_root frees the initramfs.
#[test]
fn arm64_initramfs_boot() {
    let s = Scratch::new("arm64-initramfs");
    let initrd = initramfs_for(ARM, &s);
    let vol = volume_tree_for(ARM, s.0.join("vol"), "a2").ext4(&s.0.join("vol.img"), 16, "armvol");
    let mut vm = Vm::start(
        &s,
        &Boot {
            initrd: Some(&initrd),
            nvme: &[Disk {
                image: &vol,
                serial: "armvol",
            }],
            cmdline: "root=LABEL=armvol rw",
            arch: ARM,
            ..Boot::default()
        },
    );
    let (console, m) = vm.wait_exit();
    assert!(console.contains("(initramfs mode)"), "{console}");
    assert!(console.contains("by switch_root"), "{console}");
    assert_line(
        &m,
        "VOLUME-INIT id=a2 pid=1 args=",
        "the volume's init",
        &console,
    );
    eprintln!(
        "arm64 initramfs boot: {:.1} s from QEMU start to power-off",
        vm.started.elapsed().as_secs_f64()
    );
}

/// A 32-bit ARM init on the arm64 kernel: busybox-static for armhf as
/// `/sbin/init` (busybox init, whose `/etc/inittab` runs a script with the
/// same busybox, the only one on the volume). QEMU's `max` CPU runs AArch32 at EL0 and Debian's arm64
/// kernel has `CONFIG_COMPAT`: the kernel runs it, so the check accepts it
/// (it used to refuse it as a binary for another machine).
#[test]
fn arm64_runs_a_32bit_arm_init() {
    let bb32 = root().join("target/test-armhf/busybox");
    assert!(
        bb32.exists(),
        "missing prerequisite: {} (busybox-static:armhf). Run scripts/setup.",
        bb32.display()
    );
    let s = Scratch::new("arm64-compat");
    let boot = BootDisk::new_for(ARM, &s).image(&s);
    let t = Tree::new(s.0.join("vol"));
    t.copy("/bin/busybox", &bb32, 0o755)
        .symlink("/bin/sh", "busybox")
        .symlink("/sbin/init", "/bin/busybox")
        .file("/etc/inittab", b"::sysinit:/etc/rc\n", 0o644)
        .file(
            "/etc/rc",
            format!(
                "{}bb=/bin/busybox\n\
                 m \"VOLUME-INIT32 pid1=$($bb cat /proc/1/comm) \
                 class=$($bb od -An -tu1 -j4 -N1 /proc/1/exe | $bb tr -d ' ')\"\n\
                 /bin/busybox sync\n/bin/busybox poweroff -f\n",
                ARM.script_head()
            )
            .as_bytes(),
            0o755,
        )
        .mkdir("/proc")
        .mkdir("/sys")
        .mkdir("/dev")
        .mkdir("/old-root");
    let vol = t.ext4(&s.0.join("vol.img"), 16, "data");
    let mut vm = Vm::start(
        &s,
        &Boot {
            disk: Some(&boot),
            nvme: &[Disk {
                image: &vol,
                serial: "vol0arm32",
            }],
            cmdline: "pivot.root=SERIAL=vol-0arm32",
            arch: ARM,
            ..Boot::default()
        },
    );
    let (console, m) = vm.wait_exit();
    assert!(
        lines_with(&console, "pivot-init: FAILED").is_empty(),
        "{console}"
    );
    assert_line(
        &m,
        "VOLUME-INIT32 pid1=busybox class=1",
        "the 32-bit busybox as PID 1 (ELF class 1)",
        &console,
    );
}
