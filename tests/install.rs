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

/// A boot disk laid out as current Debian, Ubuntu and Fedora are ("merged
/// /usr"): /sbin, /bin and /lib are symbolic links into /usr; the old init
/// is /usr/sbin/init, reached as /sbin/init.
fn merged_usr_boot_tree(dir: std::path::PathBuf) -> Tree {
    for d in ["sbin", "bin", "lib"] {
        std::fs::create_dir_all(dir.join("usr").join(d)).unwrap();
        std::os::unix::fs::symlink(format!("usr/{d}"), dir.join(d)).unwrap();
    }
    // Written through the links, as a package manager would.
    plain_boot_tree(dir, "/sbin/init")
}

/// The names in directory `dir` of the image (debugfs `ls -p`), sorted.
fn debugfs_ls(img: &std::path::Path, dir: &str) -> Vec<String> {
    let out = Command::new("debugfs")
        .args(["-R", &format!("ls -p {dir}")])
        .arg(img)
        .output()
        .unwrap();
    // Lines like `/12/120777/0/0/sbin/8/`: the fifth field is the name.
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split('/').nth(5).map(str::to_string))
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .collect();
    names.sort();
    names
}

/// What `debugfs stat` says of a path: e.g. `Type: symlink`, `Fast link dest: "usr/sbin"`.
fn debugfs_stat(img: &std::path::Path, path: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", &format!("stat {path}")])
        .arg(img)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn e2fsck_clean(img: &std::path::Path) {
    let fsck = Command::new("e2fsck").arg("-fn").arg(img).output().unwrap();
    assert!(
        fsck.status.success(),
        "e2fsck: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );
}

/// A merged-/usr image: install-image follows /sbin -> usr/sbin inside the
/// image, leaves nothing at the image's root but /new-root, and the image
/// boots: with its volume, the volume's init runs; with a volume that has
/// no init, the old init runs as /sbin/init.old through the link.
#[test]
fn merged_usr_image_installs_and_boots() {
    let s = Scratch::new("install-merged");
    let fs = merged_usr_boot_tree(s.0.join("plain")).ext4(&s.0.join("boot.fs"), 16, "bootdisk");
    for d in ["sbin", "bin", "lib"] {
        let st = debugfs_stat(&fs, &format!("/{d}"));
        assert!(
            st.contains("Type: symlink") && st.contains(&format!("Fast link dest: \"usr/{d}\"")),
            "/{d} is not a link into /usr in the image:\n{st}"
        );
    }
    let root_before = debugfs_ls(&fs, "/");
    let conf = s.0.join("pivot-init.conf");
    std::fs::write(&conf, "root = SERIAL=vol-0mu\nhook = none\ntimeout = 60\n").unwrap();
    let out = install_image(&fs, &conf);
    assert!(
        out.contains("install-image: /sbin is /usr/sbin in the image (followed the link)"),
        "{out}"
    );
    assert!(out.contains("moving /sbin/init to /sbin/init.old"), "{out}");

    // Nothing stray: the root holds what it held, plus /new-root.
    let mut want = root_before.clone();
    want.push("new-root".to_string());
    want.sort();
    assert_eq!(debugfs_ls(&fs, "/"), want);
    // /sbin is still the link; the files are where it leads.
    assert!(debugfs_stat(&fs, "/sbin").contains("Fast link dest: \"usr/sbin\""));
    assert_eq!(debugfs_ls(&fs, "/usr/sbin"), ["init", "init.old"]);
    assert_eq!(debugfs_cat(&fs, "/usr/sbin/init.old"), old_init_script());
    let bin = std::fs::read(pivot_init_bin()).unwrap();
    assert!(
        debugfs_stat(&fs, "/usr/sbin/init").contains(&format!("Size: {}", bin.len())),
        "{}",
        debugfs_stat(&fs, "/usr/sbin/init")
    );
    assert!(debugfs_cat(&fs, "/etc/pivot-init.conf").contains("root = SERIAL=vol-0mu"));
    e2fsck_clean(&fs);
    // A second run keeps the original init and still leaves nothing stray.
    let again = install_image(&fs, &conf);
    assert!(
        again.contains("/sbin/init.old is there already: keeping it"),
        "{again}"
    );
    assert_eq!(debugfs_ls(&fs, "/"), want);
    assert_eq!(debugfs_ls(&fs, "/usr/sbin"), ["init", "init.old"]);
    assert_eq!(debugfs_cat(&fs, "/usr/sbin/init.old"), old_init_script());
    e2fsck_clean(&fs);

    // Two boots of the same disk, side by side: a good volume, a volume
    // without an init.
    let disk = s.0.join("boot.img");
    mbr_disk(&fs, &disk, BOOT_SIG);
    let s2 = Scratch::new("install-merged-bad");
    let disk2 = s2.0.join("boot.img");
    std::fs::copy(&disk, &disk2).unwrap();
    let vol = volume_tree(s.0.join("vol"), "mu").ext4(&s.0.join("vol.img"), 16, "data");
    let bad = Tree::new(s2.0.join("vol"));
    bad.busybox()
        .file("/etc/hostname", b"no init here\n", 0o644);
    let bad = bad.ext4(&s2.0.join("vol.img"), 16, "data");
    let mut good_vm = Vm::boot(
        &s,
        &disk,
        &[Disk {
            image: &vol,
            serial: "vol0mu",
        }],
        "",
    );
    let mut bad_vm = Vm::boot(
        &s2,
        &disk2,
        &[Disk {
            image: &bad,
            serial: "vol0mu",
        }],
        "",
    );

    let (console, m) = good_vm.wait_exit();
    assert_line(
        &m,
        "VOLUME-INIT id=mu pid=1 args=",
        "the volume's init",
        &console,
    );
    assert_line(&m, "OLDROOT boot-disk", "old root", &console);
    assert!(!m.contains("OLD-INIT"), "the old init must not run:\n{m}");

    let (console, m) = bad_vm.wait_exit();
    let failed = lines_with(&console, "pivot-init: FAILED at check: ");
    assert_eq!(failed.len(), 1, "{console}");
    assert!(
        failed[0]
            .trim_end()
            .ends_with("; action: oldinit /sbin/init.old"),
        "{}",
        failed[0]
    );
    assert_line(
        &m,
        "OLD-INIT pid=1 root=boot-disk",
        "the old init, through /sbin -> usr/sbin",
        &console,
    );
    assert!(!m.contains("VOLUME-INIT"), "{m}");
}

/// The free inodes of an image.
fn free_inodes(img: &std::path::Path) -> usize {
    let out = Command::new("debugfs")
        .args(["-R", "stats"])
        .arg(img)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Free inodes:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("debugfs stats prints Free inodes")
}

/// A step debugfs fails but exits 0 after (no inode left, with blocks to
/// spare): install-image reads what debugfs said, exits 2 naming the path
/// it was writing (where /sbin leads) and leaves the image as it was: the
/// old /sbin/init, nothing stray, nothing half-written. With no inode free
/// the binary cannot be written; with one, the binary is written and the
/// config cannot be, and the binary is removed again.
#[test]
fn install_image_names_the_path_of_a_failed_step() {
    for (spare, failing) in [
        (0, "/usr/sbin/init.pivot-new"),
        (1, "/etc/pivot-init.conf.pivot-new"),
    ] {
        let s = Scratch::new(&format!("install-inodes-{spare}"));
        let t = merged_usr_boot_tree(s.0.join("tree"));
        let mkfs = ["-N", "64", "-L", "full"];
        let probe = t.ext4_args(&s.0.join("probe.fs"), 16, &mkfs);
        // Use up the inodes but `spare`: /fill and one empty file each.
        for i in 1..free_inodes(&probe) - spare {
            t.file(&format!("/fill/{i}"), b"", 0o644);
        }
        let fs = t.ext4_args(&s.0.join("boot.fs"), 16, &mkfs);
        assert_eq!(free_inodes(&fs), spare);
        let root_before = debugfs_ls(&fs, "/");
        let etc_before = debugfs_ls(&fs, "/etc");
        let conf = s.0.join("pivot-init.conf");
        std::fs::write(&conf, "root = LABEL=x\n").unwrap();
        let (code, out) = install(&fs, &conf);
        assert_eq!(code, 2, "{out}");
        assert!(
            out.contains(&format!(
                "install-image: writing {failing} failed in {}: debugfs: write: Could not \
                 allocate inode in ext2 filesystem; /sbin/init and /etc/pivot-init.conf are \
                 unchanged",
                fs.display()
            )),
            "{out}"
        );
        assert!(!out.contains("could not remove"), "{out}");
        assert_eq!(debugfs_ls(&fs, "/"), root_before);
        assert_eq!(debugfs_ls(&fs, "/usr/sbin"), ["init"], "{out}");
        assert_eq!(debugfs_ls(&fs, "/etc"), etc_before);
        assert_eq!(debugfs_cat(&fs, "/sbin/init"), old_init_script());
        assert_eq!(free_inodes(&fs), spare);
        e2fsck_clean(&fs);
    }
}

/// /sbin is a link to nowhere in the image (usr/sbin is missing): refused
/// with the link named, before anything is written. The host's own
/// /usr/sbin plays no part.
#[test]
fn install_image_refuses_a_dangling_sbin_link() {
    let s = Scratch::new("install-dangling");
    let t = Tree::new(s.0.join("tree"));
    t.symlink("/sbin", "usr/sbin")
        .file("/etc/boot-id", b"x\n", 0o644);
    let fs = t.ext4(&s.0.join("boot.fs"), 16, "dangling");
    let before = std::fs::read(&fs).unwrap();
    let conf = s.0.join("pivot-init.conf");
    std::fs::write(&conf, "root = LABEL=x\n").unwrap();
    let (code, out) = install(&fs, &conf);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!(
            "install-image: /sbin in {} does not lead to a directory in the image (it is a \
             symbolic link to usr/sbin): debugfs: /sbin/.: File not found by ext2_lookup",
            fs.display()
        )),
        "{out}"
    );
    assert!(
        std::fs::read(&fs).unwrap() == before,
        "the image was written"
    );
}
