//! Filesystem checkers in the initramfs: `scripts/mkinitramfs --fsck` puts
//! the host's e2fsck and fsck.fat in, with their interpreter and shared
//! libraries, and they run in the guest; `--binary` adds any host program.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use pivot_harness::*;

/// Runs scripts/mkinitramfs with `init` as /init into `out`.
fn mkinitramfs_with(init: &Path, out: &Path, args: &[&str]) -> Output {
    Command::new(root().join("scripts/mkinitramfs"))
        .env("PIVOT_INIT_BIN", init)
        .arg("-o")
        .arg(out)
        .args(args)
        .output()
        .expect("scripts/mkinitramfs runs")
}

fn mkinitramfs(out: &Path, args: &[&str]) -> Output {
    mkinitramfs_with(&pivot_init_bin(), out, args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// What an uncompressed image holds: path -> `cpio -tv` mode column, the
/// symlinks' targets, and the sizes.
type Listing = (
    BTreeMap<String, String>,
    BTreeMap<String, String>,
    BTreeMap<String, u64>,
);

fn listing(img: &Path) -> Listing {
    let o = Command::new("cpio")
        .args(["-t", "-v", "--quiet", "-F"])
        .arg(img)
        .output()
        .expect("cpio runs");
    assert!(o.status.success(), "cpio: {}", text(&o.stderr));
    let mut modes = BTreeMap::new();
    let mut links = BTreeMap::new();
    let mut sizes = BTreeMap::new();
    for l in text(&o.stdout).lines() {
        let fields: Vec<&str> = l.split_whitespace().collect();
        let mode = fields.first().copied().unwrap_or("").to_string();
        // `... Jan  1  1970 NAME[ -> TARGET]`
        let name = l.split_once(" 1970 ").map(|(_, n)| n).unwrap_or(l);
        match name.split_once(" -> ") {
            Some((n, t)) => {
                links.insert(format!("/{n}"), t.to_string());
                modes.insert(format!("/{n}"), mode);
            }
            None => {
                if let Some(size) = fields.get(4).and_then(|f| f.parse().ok()) {
                    sizes.insert(format!("/{name}"), size);
                }
                modes.insert(format!("/{name}"), mode);
            }
        }
    }
    (modes, links, sizes)
}

/// Where `p` ends in the image after its symlinks (last components).
fn follow(links: &BTreeMap<String, String>, p: &str) -> String {
    let mut p = p.to_string();
    for _ in 0..10 {
        let Some(t) = links.get(&p) else { break };
        p = if t.starts_with('/') {
            t.clone()
        } else {
            let dir = Path::new(&p).parent().unwrap().to_path_buf();
            dir.join(t).to_string_lossy().into_owned()
        };
    }
    p
}

/// `ldd`'s paths for a host program: the libraries and the interpreter.
fn ldd_paths(p: &str) -> Vec<String> {
    let o = Command::new("ldd").arg(p).output().expect("ldd runs");
    text(&o.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.rsplit_once(" (0x").map_or(l, |(a, _)| a);
            match l.split_once(" => ") {
                Some((_, path)) => Some(path.to_string()),
                None if l.starts_with('/') => Some(l.to_string()),
                None => None, // the vDSO
            }
        })
        .collect()
}

/// `--fsck ext4,vfat`: the checkers at /sbin under every name, and each
/// library and the interpreter `ldd` names for them at the path the loader
/// opens, as a file or a symlink to one; xfs is accepted with a note and
/// adds nothing.
#[test]
fn fsck_image_holds_checkers_and_their_libraries() {
    let s = Scratch::new("fsck-list");
    let img = s.0.join("fsck.cpio");
    let o = mkinitramfs(&img, &["--fsck", "ext4,vfat,xfs", "--compress", "none"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let stdout = text(&o.stdout);
    assert!(
        stdout.contains(
            "/sbin/e2fsck (also fsck.ext2, fsck.ext3, fsck.ext4): 6 shared libraries \
             (libext2fs.so.2 libcom_err.so.2 libblkid.so.1 libuuid.so.1 libe2p.so.2 libc.so.6), \
             interpreter /lib64/ld-linux-x86-64.so.2"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(", 2 program(s) with 7 shared object(s)"),
        "{stdout}"
    );
    assert!(
        text(&o.stderr).contains(
            "pivot-mkinitramfs: --fsck xfs: nothing added: xfs has no boot-time checker by design"
        ),
        "{}",
        text(&o.stderr)
    );
    let (modes, links, sizes) = listing(&img);
    assert_eq!(
        modes.get("/sbin/e2fsck").map(String::as_str),
        Some("-rwxr-xr-x")
    );
    assert_eq!(
        modes.get("/sbin/fsck.fat").map(String::as_str),
        Some("-rwxr-xr-x")
    );
    for alias in ["fsck.ext2", "fsck.ext3", "fsck.ext4"] {
        assert_eq!(
            links.get(&format!("/sbin/{alias}")).map(String::as_str),
            Some("e2fsck")
        );
    }
    assert_eq!(
        links.get("/sbin/fsck.vfat").map(String::as_str),
        Some("fsck.fat")
    );
    assert!(!modes.keys().any(|k| k.contains("xfs")), "{modes:?}");
    for prog in ["/sbin/e2fsck", "/sbin/fsck.fat"] {
        for p in ldd_paths(prog) {
            let end = follow(&links, &p);
            assert!(
                modes.get(&end).is_some_and(|m| m.starts_with('-')),
                "{prog}: {p} (-> {end}) is not a file in the image: {modes:?}"
            );
            // As large as on the host.
            let host = std::fs::metadata(&p).unwrap().len();
            assert_eq!(sizes.get(&end), Some(&host), "{prog}: {end}");
        }
    }
}

/// `--binary PATH` puts a host program at its own path with its libraries
/// (a symlink stays a symlink to the file it names); a relative path, a
/// script, an unknown `--fsck` type and a program of another machine than
/// /init are refused with a message that says why.
#[test]
fn binary_option_and_refusals() {
    let s = Scratch::new("fsck-binary");
    let img = s.0.join("bin.cpio");
    let o = mkinitramfs(&img, &["--binary", "/bin/sh", "--compress", "none"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let (modes, links, _) = listing(&img);
    let sh_target = std::fs::read_link("/bin/sh").unwrap();
    assert_eq!(
        links.get("/bin/sh").map(String::as_str),
        Some(sh_target.to_str().unwrap())
    );
    let end = follow(&links, "/bin/sh");
    assert!(
        modes.get(&end).is_some_and(|m| m.starts_with("-rwx")),
        "{modes:?}"
    );
    assert!(
        modes.contains_key("/lib/x86_64-linux-gnu/libc.so.6"),
        "{modes:?}"
    );

    let refused = |args: &[&str], init: Option<&Path>| -> String {
        let out = s.0.join("refused.img");
        let o = match init {
            Some(i) => mkinitramfs_with(i, &out, args),
            None => mkinitramfs(&out, args),
        };
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stdout));
        assert!(!out.exists(), "{args:?} wrote an image");
        text(&o.stderr).trim_end().to_string()
    };
    assert_eq!(
        refused(&["--binary", "bin/sh"], None),
        "pivot-mkinitramfs: --binary bin/sh: give an absolute path (the program goes to the same \
         path in the image)"
    );
    assert_eq!(
        refused(&["--binary", "/etc/hostname"], None),
        "pivot-mkinitramfs: --binary /etc/hostname: /etc/hostname is not an ELF program (a \
         script?); add it with --add SRC:DEST"
    );
    assert_eq!(
        refused(&["--binary", "/no/such/program"], None),
        "pivot-mkinitramfs: cannot read /no/such/program: No such file or directory (os error 2)"
    );
    assert_eq!(
        refused(&["--fsck", "ntfs"], None),
        "pivot-mkinitramfs: --fsck ntfs: no checker known for ntfs (known: ext2, ext3, ext4, \
         vfat; xfs and btrfs need none)"
    );
    // An arm64 /init (busybox with its machine changed) and x86_64 checkers.
    let mut foreign = std::fs::read("/bin/busybox").unwrap();
    foreign[0x12..0x14].copy_from_slice(&183u16.to_le_bytes());
    let init = s.0.join("init-arm64");
    std::fs::write(&init, foreign).unwrap();
    assert_eq!(
        refused(&["--fsck", "ext4"], Some(&init)),
        "pivot-mkinitramfs: --fsck ext4: /sbin/e2fsck is built for x86_64, but /init is for \
         aarch64: the image needs programs of its machine"
    );
}

/// The guest's side: with `rdinit=` a busybox script in the image runs
/// instead of pivot-init and checks three NVMe volumes with the checkers
/// the image carries: a clean ext4 (`fsck.ext4 -n`: "clean", status 0), an
/// ext4 not cleanly unmounted whose /hello inode was cleared (found, status 4:
/// errors left uncorrected), and a clean vfat (`fsck.vfat -n`, status 0;
/// without glibc's iconv modules in the image it says it uses its own
/// CP850 table).
#[test]
fn checkers_run_in_the_guest() {
    let s = Scratch::new("fsck-guest");
    let script = s.0.join("fsck-test");
    std::fs::write(
        &script,
        "#!/bin/busybox sh\n\
         /bin/busybox --install -s /bin\n\
         export PATH=/bin:/sbin\n\
         m() { echo \"$*\" > /dev/ttyS1; }\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         mount -t devtmpfs devtmpfs /dev\n\
         for i in $(seq 300); do [ -b /dev/nvme2n1 ] && break; sleep 0.1; done\n\
         for b in /sys/block/nvme*n1; do\n\
           d=${b##*/}\n\
           serial=$(echo $(cat $b/device/serial))\n\
           case $serial in fat*) c=/sbin/fsck.vfat ;; *) c=/sbin/fsck.ext4 ;; esac\n\
           out=$($c -n /dev/$d 2>&1); st=$?\n\
           echo \"$out\" | while read -r l; do m \"OUT $serial $l\"; done\n\
           m \"STATUS $serial $st\"\n\
         done\n\
         m END\n\
         poweroff -f\n",
    )
    .unwrap();
    let img = s.0.join("initramfs.img");
    let busybox = "/bin/busybox:/bin/busybox".to_string();
    let add_script = format!("{}:/fsck-test", script.display());
    let o = mkinitramfs(
        &img,
        &[
            "--fsck",
            "ext4,vfat",
            "--add",
            &busybox,
            "--add",
            &add_script,
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    eprintln!("{}", text(&o.stdout).trim());

    let clean = Tree::new(s.0.join("clean"));
    clean.file("/hello", b"hello\n", 0o644);
    let clean = clean.ext4(&s.0.join("clean.img"), 16, "cleanvol");
    let broken = Tree::new(s.0.join("broken"));
    broken.file("/hello", b"hello\n", 0o644);
    let broken = broken.ext4(&s.0.join("broken.img"), 16, "brokenvol");
    let b = broken.to_str().unwrap();
    // Not cleanly unmounted, so that a preen (-p/-n) checks it at all.
    run_tool("debugfs", &["-w", "-R", "clri /hello", b]);
    run_tool("debugfs", &["-w", "-R", "ssv state 0", b]);
    let fat = s.0.join("fat.img");
    let _ = std::fs::remove_file(&fat);
    run_tool(
        "mkfs.vfat",
        &["-C", "-n", "FATVOL", fat.to_str().unwrap(), "8192"],
    );

    let mut vm = Vm::initramfs(
        &s,
        &img,
        &[
            Disk {
                image: &clean,
                serial: "ext4clean",
            },
            Disk {
                image: &broken,
                serial: "ext4broken",
            },
            Disk {
                image: &fat,
                serial: "fatclean",
            },
        ],
        "rdinit=/fsck-test",
    );
    let (console, m) = vm.wait_exit();
    assert_line(&m, "END", "the script ran to its end", &console);
    let out = |serial: &str| -> Vec<String> {
        lines_with(&m, &format!("OUT {serial} "))
            .iter()
            .map(|l| l.trim_end().to_string())
            .collect()
    };
    // e2fsck's banner and its one-line verdict on a clean volume.
    let c = out("ext4clean");
    assert!(
        c.iter().any(|l| l.starts_with("OUT ext4clean e2fsck 1.")),
        "{m}\n{console}"
    );
    assert!(
        c.iter()
            .any(|l| l.starts_with("OUT ext4clean cleanvol: clean, ") && l.contains(" files, ")),
        "{m}\n{console}"
    );
    assert_line(&m, "STATUS ext4clean 0", "clean ext4", &console);
    // The cleared root inode is found; -n leaves it (status 4).
    let b = out("ext4broken");
    assert!(
        b.iter()
            .any(|l| l.contains("Entry 'hello' in / (2) has deleted/unused inode")),
        "{m}\n{console}"
    );
    assert_line(&m, "STATUS ext4broken 4", "broken ext4", &console);
    let f = out("fatclean");
    assert!(
        f.iter().any(|l| l.starts_with("OUT fatclean fsck.fat 4.")),
        "{m}\n{console}"
    );
    assert!(
        f.iter()
            .any(|l| l.starts_with("OUT fatclean /dev/nvme") && l.contains(" files, ")),
        "{m}\n{console}"
    );
    assert_line(&m, "STATUS fatclean 0", "clean vfat", &console);
    assert!(!console.contains("Kernel panic"), "{console}");
}

/// `dumpe2fs -h` of an image: its `Filesystem state:` and
/// `Filesystem features:` values.
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

/// A volume (the harness's reporting init) whose ext4 says it has errors
/// (`ssv state 2`, as the kernel leaves it after an error): e2fsck -p must
/// check it, finds nothing more and clears the state (exit 1). With
/// `duplicate`, /hello and /world also share a block, which preen cannot
/// repair (exit 4: "UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY").
fn volume_with_errors(s: &Scratch, name: &str, duplicate: bool) -> std::path::PathBuf {
    let tree = volume_tree(s.0.join(name), name);
    tree.file("/hello", b"hello\n", 0o644)
        .file("/world", b"world\n", 0o644);
    let img = s.0.join(format!("{name}.img"));
    // Without extents, so that debugfs can point /world's first block at /hello's.
    let img = tree.ext4_args(&img, 16, &["-L", "data", "-O", "^extent,^64bit"]);
    let i = img.to_str().unwrap();
    if duplicate {
        let o = Command::new("debugfs")
            .args(["-R", "blocks /hello", i])
            .output()
            .expect("debugfs runs");
        let block = text(&o.stdout).trim().to_string();
        assert!(block.parse::<u64>().is_ok(), "blocks /hello: {block:?}");
        run_tool(
            "debugfs",
            &[
                "-w",
                "-R",
                &format!("set_inode_field /world block[0] {block}"),
                i,
            ],
        );
    }
    run_tool("debugfs", &["-w", "-R", "ssv state 2", i]);
    assert_eq!(ext4_state(&img).0, "not clean with errors");
    img
}

/// A boot disk whose /sbin/fsck.ext4 is the host's e2fsck.
fn boot_disk_with_fsck(s: &Scratch) -> std::path::PathBuf {
    let b = BootDisk::new(s);
    b.with_fsck(s);
    b.image(s)
}

/// The console lines pivot-init wrote, without the `pivot-init: ` prefix.
fn pivot_lines(console: &str) -> Vec<String> {
    console
        .lines()
        .filter_map(|l| {
            l.split_once("pivot-init: ")
                .map(|(_, r)| r.trim_end().to_string())
        })
        .collect()
}

/// The boot disk's e2fsck checks the volume before the mount: its output
/// is on the console line by line, its verdict is logged, the volume boots
/// and is clean afterwards; the summary has the fsck stage.
#[test]
fn a_volume_marked_with_errors_is_repaired_then_boots() {
    let s = Scratch::new("fsck-repair");
    let boot = boot_disk_with_fsck(&s);
    let vol = volume_with_errors(&s, "errvol", false);
    let mut vm = Vm::boot(
        &s,
        &boot,
        &[Disk {
            image: &vol,
            serial: "errvol",
        }],
        "pivot.root=SERIAL=errvol",
    );
    let (console, m) = vm.wait_exit();
    assert_line(
        &m,
        "VOLUME-INIT id=errvol pid=1 args=",
        "volume init",
        &console,
    );
    let lines = pivot_lines(&console);
    let has = |l: &str| lines.iter().any(|x| x == l);
    assert!(
        has("fsck: running /sbin/fsck.ext4 -p /dev/nvme1n1"),
        "{console}"
    );
    assert!(
        has("fsck: data contains a file system with errors, check forced."),
        "{console}"
    );
    assert!(
        has("fsck: fsck.ext4 on nvme1n1: exit 1 (errors corrected)"),
        "{console}"
    );
    // Checked before it was mounted.
    let pos = |needle: &str| {
        console
            .find(needle)
            .unwrap_or_else(|| panic!("{needle}: {console}"))
    };
    assert!(pos("fsck: fsck.ext4 on nvme1n1: exit 1") < pos("pivot-init: mounted /dev/nvme1n1"));
    let summary = lines_with(&console, "pivot-init: switched to");
    assert_eq!(summary.len(), 1, "{console}");
    assert!(summary[0].contains(", node "), "{}", summary[0]);
    assert!(summary[0].contains(", fsck "), "{}", summary[0]);
    let (state, features) = ext4_state(&vol);
    assert_eq!(state, "clean", "{features}");
}

/// Errors that preen cannot repair (fsck exit 4): the failure policy runs
/// the old init; nothing of the volume was mounted; its state still says it
/// has errors.
#[test]
fn a_volume_preen_cannot_repair_runs_the_old_init() {
    let s = Scratch::new("fsck-uncorrected");
    let boot = boot_disk_with_fsck(&s);
    let vol = volume_with_errors(&s, "dupvol", true);
    let mut vm = Vm::boot(
        &s,
        &boot,
        &[Disk {
            image: &vol,
            serial: "dupvol",
        }],
        "pivot.root=SERIAL=dupvol",
    );
    let (console, m) = vm.wait_exit();
    assert!(
        pivot_lines(&console).iter().any(|l| l
            == "FAILED at fsck: fsck.ext4 on nvme1n1 exited 4 (errors left uncorrected); action: oldinit /sbin/init.old"),
        "{console}"
    );
    assert!(
        console.contains("pivot-init: fsck: data: UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY."),
        "{console}"
    );
    assert_line(&m, "OLD-INIT new-root-mounted=0", "old init", &console);
    assert!(!m.contains("VOLUME-INIT"), "{m}");
    assert!(ext4_state(&vol).0.contains("with errors"));
}

/// `pivot.fsck=skip`: the checker is there but does not run; the volume
/// boots with its errors (the kernel mounts it, and it still says so).
#[test]
fn fsck_skip_runs_no_checker() {
    let s = Scratch::new("fsck-skip");
    let boot = boot_disk_with_fsck(&s);
    let vol = volume_with_errors(&s, "skipvol", false);
    let mut vm = Vm::boot(
        &s,
        &boot,
        &[Disk {
            image: &vol,
            serial: "skipvol",
        }],
        "pivot.root=SERIAL=skipvol pivot.fsck=skip",
    );
    let (console, m) = vm.wait_exit();
    assert_line(
        &m,
        "VOLUME-INIT id=skipvol pid=1 args=",
        "volume init",
        &console,
    );
    let lines = pivot_lines(&console);
    assert!(
        lines
            .iter()
            .any(|l| l == "fsck: not checking /dev/nvme1n1 (pivot.fsck=skip)"),
        "{console}"
    );
    assert!(!console.contains("fsck: running"), "{console}");
    assert!(ext4_state(&vol).0.contains("with errors"));
}

/// An initramfs made with `--fsck ext4` checks the volume the same way.
#[test]
fn an_initramfs_with_fsck_checks_the_volume() {
    let s = Scratch::new("fsck-initramfs");
    let img = s.0.join("initramfs.img");
    let o = mkinitramfs(&img, &["--fsck", "ext4"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let vol = volume_with_errors(&s, "irvol", false);
    let mut vm = Vm::initramfs(
        &s,
        &img,
        &[Disk {
            image: &vol,
            serial: "irvol",
        }],
        "root=LABEL=data rw",
    );
    let (console, m) = vm.wait_exit();
    assert_line(
        &m,
        "VOLUME-INIT id=irvol pid=1 args=",
        "volume init",
        &console,
    );
    let lines = pivot_lines(&console);
    assert!(
        lines
            .iter()
            .any(|l| l == "fsck: running /sbin/fsck.ext4 -p /dev/nvme0n1"),
        "{console}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l == "fsck: fsck.ext4 on nvme0n1: exit 1 (errors corrected)"),
        "{console}"
    );
    assert_eq!(ext4_state(&vol).0, "clean");
}
