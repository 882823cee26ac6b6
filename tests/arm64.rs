//! arm64 under QEMU (`qemu-system-aarch64 -M virt`, TCG) with Debian's arm64
//! cloud kernel: pivot-init built for aarch64-unknown-linux-musl, a hot-plug
//! pivot in a machine image and an initramfs boot.

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
