//! The hand-back at shutdown (systemd's initrd interface): pivot-init hands
//! the volume a /run tmpfs holding itself as /run/initramfs/shutdown; a real
//! systemd on the volume (Debian bookworm) powers off, pivots back into
//! /run/initramfs and runs `/shutdown poweroff`, and pivot-init, PID 1
//! again, unmounts the volume and powers off.

use std::path::Path;
use std::process::Command;

use pivot_harness::*;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `dumpe2fs -h`: the `Filesystem state:` and `Filesystem features:` values.
fn ext4_state(img: &Path) -> (String, String) {
    let o = Command::new("dumpe2fs")
        .arg("-h")
        .arg(img)
        .output()
        .expect("dumpe2fs runs");
    assert!(o.status.success(), "dumpe2fs: {}", text(&o.stderr));
    let out = text(&o.stdout);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    (field("Filesystem state:"), field("Filesystem features:"))
}

/// The Debian volume with a unit that says systemd is up (a marker) and
/// asks for a power-off, as a person would from inside.
fn systemd_volume(s: &Scratch) -> std::path::PathBuf {
    let unit = s.0.join("pivot-test.service");
    std::fs::write(
        &unit,
        "[Unit]\nDescription=pivot-init hand-back test\nAfter=basic.target\n\n\
         [Service]\nType=oneshot\n\
         ExecStart=/bin/sh -c 'echo \"SYSTEMD-UP pid1=$(cat /proc/1/comm) run=$(stat -f -c %%T /run) \
         shutdown=$(stat -c %%a /run/initramfs/shutdown)\" > /dev/ttyS1; systemctl --no-block poweroff'\n\n\
         [Install]\nWantedBy=multi-user.target\n",
    )
    .unwrap();
    let mut tree = Tree::new(systemd_volume_tree());
    tree.debugfs = vec![
        format!(
            "write {} /etc/systemd/system/pivot-test.service",
            unit.display()
        ),
        "symlink /etc/systemd/system/multi-user.target.wants/pivot-test.service \
         /etc/systemd/system/pivot-test.service"
            .into(),
    ];
    tree.ext4_args(&s.0.join("debian.img"), 1024, &["-L", "debian"])
}

/// What a hand-back boot shows: systemd up with the hand-back in its /run,
/// pivot-init's shutdown lines after systemd's, the kernel's unmount of the
/// volume in between, and a clean image without a journal to recover.
fn assert_handed_back(console: &str, m: &str, vol: &Path) {
    assert_line(
        m,
        "SYSTEMD-UP pid1=systemd run=tmpfs shutdown=755",
        "systemd on the volume, with the hand-back in its /run",
        console,
    );
    let pos = |needle: &str| {
        console
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not on the console:\n{console}"))
    };
    let systemd = pos("Successfully changed into root pivot.");
    let again = pos(
        "pivot-init: pivot-init 0.1.0 as PID 1 again: shutdown `poweroff` handed back by the volume's systemd; unmounting /oldroot",
    );
    let done = pos("pivot-init: shutdown: unmounted ");
    assert!(systemd < again && again < done, "{console}");
    // The volume itself was unmounted, not only remounted read-only (which
    // systemd-shutdown does, and which leaves an ext4 clean too): the
    // kernel says so in between.
    let switched = lines_with(console, "pivot-init: switched to /dev/");
    let dev = switched
        .first()
        .and_then(|l| l.split("switched to /dev/").nth(1))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("no summary line:\n{console}"));
    let unmounted = pos(&format!("EXT4-fs ({dev}): unmounting filesystem."));
    assert!(again < unmounted && unmounted < done, "{console}");
    let line = lines_with(console, "pivot-init: shutdown: unmounted ");
    assert_eq!(line.len(), 1, "{console}");
    assert!(
        line[0]
            .trim_end()
            .ends_with(" filesystem(s) under /oldroot, 0 left; syncing, then powering off"),
        "{}",
        line[0]
    );
    assert!(!console.contains("Kernel panic"), "{console}");
    let (state, features) = ext4_state(vol);
    assert_eq!(state, "clean");
    assert!(!features.contains("needs_recovery"), "{features}");
}

/// Machine image: systemd powers the machine off from inside; its shutdown
/// hands back to pivot-init, which unmounts the volume (and the boot disk
/// under it, at /oldroot/old-root).
#[test]
fn systemd_hands_the_shutdown_back_and_the_volume_is_left_clean() {
    let s = Scratch::new("handback-systemd");
    let boot = BootDisk::new(&s).image(&s);
    let vol = systemd_volume(&s);
    let mut vm = Vm::boot(
        &s,
        &boot,
        &[Disk {
            image: &vol,
            serial: "debian",
        }],
        "pivot.root=SERIAL=debian",
    );
    let (console, m) = vm.wait_exit();
    assert_handed_back(&console, &m, &vol);
}

/// Initramfs (switch_root frees the initramfs, /run was moved into the
/// volume before): the same hand-back.
#[test]
fn systemd_hands_the_shutdown_back_to_an_initramfs() {
    let s = Scratch::new("handback-initramfs");
    let initrd = initramfs(&s, &[], &[]);
    let vol = systemd_volume(&s);
    let mut vm = Vm::initramfs(
        &s,
        &initrd,
        &[Disk {
            image: &vol,
            serial: "debian",
        }],
        "root=LABEL=debian rw",
    );
    let (console, m) = vm.wait_exit();
    assert!(
        console.contains("by switch_root, moved /dev /proc /sys /run;"),
        "{console}"
    );
    assert_handed_back(&console, &m, &vol);
}
