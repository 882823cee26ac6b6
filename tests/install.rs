//! scripts/install-image: an image prepared only by it (twice), configured
//! only by its /etc/pivot-init.conf, boots onto the volume under QEMU.

use std::process::Command;

use pivot_harness::*;

fn debugfs_cat(img: &std::path::Path, path: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", &format!("cat {path}")])
        .arg(img)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn image_from_install_image_boots_with_config_file_only() {
    let s = Scratch::new("install");
    // A plain image: its own /sbin/init, no pivot-init, no /new-root.
    let fs =
        plain_boot_tree(s.0.join("plain"), "/sbin/init").ext4(&s.0.join("boot.fs"), 16, "bootdisk");
    let conf = s.0.join("pivot-init.conf");
    std::fs::write(
        &conf,
        "# written by the test\nroot = SERIAL=vol-0cfg   # the cloud volume id\nhook = none\n",
    )
    .unwrap();
    let first = install_image(&fs, &conf);
    assert!(
        first.contains("moving /sbin/init to /sbin/init.old"),
        "{first}"
    );
    let second = install_image(&fs, &conf);
    assert!(
        second.contains("/sbin/init.old is there already: keeping it"),
        "{second}"
    );
    // The original init is still the old one, and the config is in place.
    assert_eq!(debugfs_cat(&fs, "/sbin/init.old"), old_init_script());
    assert!(debugfs_cat(&fs, "/etc/pivot-init.conf").contains("root = SERIAL=vol-0cfg"));
    let fsck = Command::new("e2fsck")
        .args(["-fn"])
        .arg(&fs)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "e2fsck: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );

    let disk = s.0.join("boot.img");
    mbr_disk(&fs, &disk, BOOT_SIG);
    let vol = volume_tree(s.0.join("vol"), "cfg").ext4(&s.0.join("vol.img"), 16, "data");
    // No pivot.* key on the command line: everything comes from the config file.
    let mut vm = Vm::boot(
        &s,
        &disk,
        &[Disk {
            image: &vol,
            serial: "vol0cfg",
        }],
        "",
    );
    let (console, m) = vm.wait_exit();
    assert!(
        !console.contains("pivot."),
        "a pivot.* key reached the command line:\n{console}"
    );
    assert_line(
        &m,
        "VOLUME-INIT id=cfg pid=1 args=",
        "the volume's init",
        &console,
    );
    assert_line(&m, "OLDROOT boot-disk", "old root", &console);
}

#[test]
fn install_image_refuses_non_ext() {
    let s = Scratch::new("install-refuse");
    let img = s.0.join("not-ext.img");
    std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
    let out = Command::new(root().join("scripts/install-image"))
        .env("PIVOT_INIT_BIN", pivot_init_bin())
        .arg(&img)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not an ext2/3/4 filesystem image (no ext superblock magic at byte 1080)"),
        "{err}"
    );
}

fn install(img: &std::path::Path, conf: &std::path::Path) -> (i32, String) {
    let out = Command::new(root().join("scripts/install-image"))
        .env("PIVOT_INIT_BIN", pivot_init_bin())
        .arg(img)
        .arg("--config")
        .arg(conf)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Host paths with spaces, quotes or debugfs syntax in them reach the image
/// intact; a path with a newline is refused before anything is written.
#[test]
fn install_image_takes_odd_paths_and_refuses_newlines() {
    let s = Scratch::new("install-paths");
    let fs =
        plain_boot_tree(s.0.join("plain"), "/sbin/init").ext4(&s.0.join("boot.fs"), 16, "bootdisk");
    let dir = s.0.join("my conf's \"dir\"; rm -rf x");
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("pivot init.conf");
    std::fs::write(&conf, "root = LABEL=odd\n").unwrap();
    let (code, out) = install(&fs, &conf);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        debugfs_cat(&fs, "/etc/pivot-init.conf"),
        "root = LABEL=odd\n"
    );
    let bad = s.0.join("two\nlines.conf");
    std::fs::write(&bad, "root = LABEL=x\n").unwrap();
    let (code, out) = install(&fs, &bad);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("install-image: refusing a path with a newline in it: "),
        "{out}"
    );
    assert_eq!(
        debugfs_cat(&fs, "/etc/pivot-init.conf"),
        "root = LABEL=odd\n"
    );
}

/// An image without room for the binary is refused before anything is
/// written: its /sbin/init is still the original.
#[test]
fn install_image_checks_free_space_first() {
    let s = Scratch::new("install-full");
    let t = Tree::new(s.0.join("full"));
    t.file("/sbin/init", old_init_script().as_bytes(), 0o755);
    t.file("/filler", &vec![0x5a; 2600 * 1000], 0o644);
    let fs = t.ext4(&s.0.join("boot.fs"), 4, "full");
    let before = std::fs::read(&fs).unwrap();
    let conf = s.0.join("pivot-init.conf");
    std::fs::write(&conf, "root = LABEL=x\n").unwrap();
    let (code, out) = install(&fs, &conf);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("bytes free,") && out.contains("needed: grow it first"),
        "{out}"
    );
    assert_eq!(debugfs_cat(&fs, "/sbin/init"), old_init_script());
    assert!(
        std::fs::read(&fs).unwrap() == before,
        "the image was written"
    );
}
