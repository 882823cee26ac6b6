//! scripts/try on image pairs a user would have: verdict lines, exit
//! statuses, and images that are byte-for-byte the same afterwards.

use std::path::Path;
use std::process::Command;

use pivot_harness::*;

/// Runs scripts/try; returns (exit status, everything it printed).
fn try_(args: &[&str]) -> (i32, String) {
    let out = Command::new(root().join("scripts/try"))
        .args(args)
        .output()
        .expect("scripts/try runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A boot disk prepared only by scripts/install-image, whose config names
/// the volume by the serial `scripts/try` attaches it with.
fn boot_disk(s: &Scratch, serial: &str) -> std::path::PathBuf {
    let fs =
        plain_boot_tree(s.0.join("plain"), "/sbin/init").ext4(&s.0.join("boot.fs"), 16, "boot");
    let conf = s.0.join("pivot-init.conf");
    std::fs::write(&conf, format!("root = SERIAL={serial}\n")).unwrap();
    install_image(&fs, &conf);
    fs
}

/// A volume whose init says hello on the console and powers off.
fn volume(s: &Scratch, label: &str, with_init: bool) -> std::path::PathBuf {
    let t = volume_tree(s.0.join("vol"), "try");
    if with_init {
        t.file(
            "/sbin/init",
            b"#!/bin/sh\necho hello from the volume\n/bin/busybox poweroff -f\n",
            0o755,
        );
    } else {
        std::fs::remove_file(t.path("/sbin/init")).unwrap();
    }
    t.ext4(&s.0.join("vol.img"), 16, label)
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

#[test]
fn try_a_pair_from_install_image_at_boot_and_later() {
    let s = Scratch::new("try-good");
    let boot = boot_disk(&s, "vol-0try");
    let vol = volume(&s, "tryvol", true);
    let (b0, v0) = (std::fs::read(&boot).unwrap(), std::fs::read(&vol).unwrap());
    for extra in [&[][..], &["--attach-after", "3"][..]] {
        let mut args = vec!["--boot", p(&boot), "--volume", p(&vol)];
        args.extend_from_slice(extra);
        let (code, out) = try_(&args);
        assert_eq!(code, 0, "{out}");
        let verdict = last_line(&out);
        assert!(
            verdict.starts_with(&format!("try: pivoted onto {} in ", vol.display()))
                && verdict.ends_with(" ms after attach; the volume's init printed its first line"),
            "{verdict}\n{out}"
        );
        assert!(out.contains("hello from the volume"), "{out}");
        if !extra.is_empty() {
            assert!(
                out.contains("try: attaching the volume (nvme bus, serial vol-0try)"),
                "{out}"
            );
        }
        assert!(
            std::fs::read(&boot).unwrap() == b0,
            "the boot disk was written"
        );
        assert!(std::fs::read(&vol).unwrap() == v0, "the volume was written");
    }
}

#[test]
fn try_a_volume_without_init() {
    let s = Scratch::new("try-noinit");
    let boot = boot_disk(&s, "vol-0try");
    let vol = volume(&s, "tryvol", false);
    let v0 = std::fs::read(&vol).unwrap();
    let (code, out) = try_(&["--boot", p(&boot), "--volume", p(&vol)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        last_line(&out).starts_with(
            "try: pivot-init FAILED at check: no usable init on the new root /new-root: /sbin/init: not found;"
        ),
        "{out}"
    );
    assert!(std::fs::read(&vol).unwrap() == v0, "the volume was written");
}

#[test]
fn try_an_initramfs_with_a_virtio_volume() {
    let s = Scratch::new("try-virtio");
    let initrd = initramfs(&s, &["virtio_pci", "virtio_blk"], &[]);
    let vol = volume(&s, "tryvirt", true);
    let v0 = std::fs::read(&vol).unwrap();
    let (code, out) = try_(&[
        "--initramfs",
        p(&initrd),
        "--kernel-cmdline",
        "root=LABEL=tryvirt rw",
        "--volume",
        p(&vol),
        "--bus",
        "virtio",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(last_line(&out).starts_with("try: pivoted onto "), "{out}");
    assert!(
        out.contains("pivot-init: loaded module virtio_blk"),
        "{out}"
    );
    assert!(std::fs::read(&vol).unwrap() == v0, "the volume was written");
}

#[test]
fn try_with_missing_or_wrong_images() {
    let s = Scratch::new("try-bad");
    let (code, out) = try_(&[
        "--boot",
        "/nonexistent/boot.img",
        "--volume",
        "/nonexistent/vol.img",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("try: volume /nonexistent/vol.img: No such file or directory"),
        "{out}"
    );
    let junk = s.0.join("junk.img");
    std::fs::write(&junk, vec![0x42u8; 1 << 20]).unwrap();
    let (code, out) = try_(&["--boot", p(&junk), "--volume", p(&junk)]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("is not a disk or filesystem image (no partition table, no known filesystem)"),
        "{out}"
    );
    let (code, out) = try_(&["--volume", p(&junk)]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("give --boot BOOT.img, or --initramfs IMG"),
        "{out}"
    );
    let (code, out) = try_(&[
        "--boot",
        p(&junk),
        "--volume",
        p(&junk),
        "--kernel",
        "/nonexistent/vmlinuz",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("try: no kernel at /nonexistent/vmlinuz: run scripts/setup"),
        "{out}"
    );
}
