//! QEMU full-boot test harness: builds disk images without root
//! (mkfs.ext4 -d, debugfs), boots the Debian cloud kernel under TCG with NVMe
//! disks, hot-plugs volumes over QMP, and collects the console and the
//! markers the guest writes to its second serial port.
//!
//! Missing prerequisites are errors that say how to fix them; nothing skips.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const MUSL: &str = "x86_64-unknown-linux-musl";
/// How long one guest may run before the test fails.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

pub fn root() -> PathBuf {
    // This crate sits in the project's workspace, one level down.
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map_or(here.clone(), Path::to_path_buf)
}

fn need(cond: bool, what: &str) {
    assert!(
        cond,
        "missing prerequisite: {what}. Run scripts/setup (or scripts/test, which runs it)."
    );
}

fn have_cmd(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Checks every tool a boot test needs, once.
pub fn prerequisites() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        for cmd in ["qemu-system-x86_64", "mkfs.ext4", "debugfs"] {
            need(have_cmd(cmd), &format!("`{cmd}` is not installed"));
        }
        need(
            Path::new("/bin/busybox").exists(),
            "/bin/busybox (Debian package busybox-static)",
        );
        need(
            kernel().exists(),
            &format!("the test kernel {}", kernel().display()),
        );
    });
}

pub fn kernel() -> PathBuf {
    root().join("target/test-kernel/vmlinuz")
}

/// The machine a guest is: x86_64 (the default) or arm64.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Arch {
    #[default]
    X86_64,
    Aarch64,
}

impl Arch {
    pub fn kernel(self) -> PathBuf {
        match self {
            Arch::X86_64 => kernel(),
            Arch::Aarch64 => root().join("target/test-kernel-arm64/vmlinuz"),
        }
    }

    /// busybox-static built for this machine.
    pub fn busybox(self) -> PathBuf {
        match self {
            Arch::X86_64 => PathBuf::from("/bin/busybox"),
            Arch::Aarch64 => root().join("target/test-kernel-arm64/busybox"),
        }
    }

    /// pivot-init built for this machine: `$PIVOT_INIT_BIN` /
    /// `$PIVOT_INIT_BIN_AARCH64` (set by scripts/test), or built here.
    pub fn pivot_init(self) -> PathBuf {
        match self {
            Arch::X86_64 => pivot_init_bin(),
            Arch::Aarch64 => {
                static BIN: OnceLock<PathBuf> = OnceLock::new();
                BIN.get_or_init(|| {
                    if let Ok(p) = std::env::var("PIVOT_INIT_BIN_AARCH64") {
                        return PathBuf::from(p);
                    }
                    let st = Command::new(root().join("scripts/build"))
                        .args(["--target", "aarch64-unknown-linux-musl"])
                        .current_dir(root())
                        .status()
                        .expect("scripts/build runs");
                    assert!(
                        st.success(),
                        "scripts/build --target aarch64-unknown-linux-musl failed"
                    );
                    root().join("target/aarch64-unknown-linux-musl/release/pivot-init")
                })
                .clone()
            }
        }
    }

    /// The marker helper of guest scripts: x86_64 guests write markers to a
    /// second serial port; arm64 (QEMU virt has one UART) to the console,
    /// prefixed, and the harness picks them out.
    pub fn script_head(self) -> &'static str {
        match self {
            Arch::X86_64 => SCRIPT_HEAD,
            Arch::Aarch64 => {
                "#!/bin/sh\nexport PATH=/bin:/sbin\nm() { echo \"@@M $*\" > /dev/ttyAMA0; }\n"
            }
        }
    }

    fn check(self) {
        if self == Arch::Aarch64 {
            need(
                have_cmd("qemu-system-aarch64"),
                "`qemu-system-aarch64` is not installed (Debian package qemu-system-arm)",
            );
            need(
                self.kernel().exists() && self.busybox().exists(),
                "the arm64 test kernel and busybox in target/test-kernel-arm64",
            );
        }
    }
}

/// The test kernel's module tree (with the modules.dep scripts/setup made).
pub fn modules_dir() -> PathBuf {
    let ver =
        std::fs::read_to_string(root().join("target/test-kernel/VERSION")).unwrap_or_default();
    root()
        .join("target/test-kernel/root/lib/modules")
        .join(ver.trim())
}

/// Runs scripts/mkinitramfs with `init` as /init and these arguments into
/// `out`; panics with its stderr when it fails.
fn mkinitramfs(init: &Path, out: &Path, args: &[&OsStr]) -> PathBuf {
    let o = Command::new(root().join("scripts/mkinitramfs"))
        .env("PIVOT_INIT_BIN", init)
        .arg("-o")
        .arg(out)
        .args(args)
        .output()
        .expect("scripts/mkinitramfs runs");
    assert!(
        o.status.success(),
        "mkinitramfs: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&o.stdout).trim());
    out.to_path_buf()
}

/// An initramfs with the pivot-init built for `arch` as /init, no modules.
pub fn initramfs_for(arch: Arch, scratch: &Scratch) -> PathBuf {
    mkinitramfs(&arch.pivot_init(), &scratch.0.join("initramfs.img"), &[])
}

/// An initramfs without modules, compressed with `how` (gzip, zstd, xz, none).
pub fn initramfs_compressed(scratch: &Scratch, how: &str) -> PathBuf {
    prerequisites();
    let out = scratch.0.join(format!("initramfs-{how}.img"));
    mkinitramfs(
        &pivot_init_bin(),
        &out,
        &[OsStr::new("--compress"), OsStr::new(how)],
    )
}

/// An initramfs made by scripts/mkinitramfs with these modules and extra files.
pub fn initramfs(scratch: &Scratch, modules: &[&str], extra: &[&str]) -> PathBuf {
    // Hermetic: no options or softdeps from this host's /etc/modprobe.d.
    let none = scratch.0.join("modprobe.d-empty");
    std::fs::create_dir_all(&none).unwrap();
    initramfs_with_modprobe(scratch, modules, extra, &none)
}

/// An initramfs whose module options and softdeps come from `modprobe_d`.
pub fn initramfs_with_modprobe(
    scratch: &Scratch,
    modules: &[&str],
    extra: &[&str],
    modprobe_d: &Path,
) -> PathBuf {
    prerequisites();
    let joined = modules.join(",");
    let dir = modules_dir();
    let mut args: Vec<&OsStr> = Vec::new();
    if !modules.is_empty() {
        args.extend([
            OsStr::new("--modules"),
            OsStr::new(&joined),
            OsStr::new("--kernel-modules"),
            dir.as_os_str(),
            OsStr::new("--modprobe-d"),
            modprobe_d.as_os_str(),
        ]);
    }
    for e in extra {
        args.extend([OsStr::new("--add"), OsStr::new(e)]);
    }
    mkinitramfs(&pivot_init_bin(), &scratch.0.join("initramfs.img"), &args)
}

/// The static pivot-init binary: `$PIVOT_INIT_BIN` (set by scripts/test), or
/// built here by scripts/build.
pub fn pivot_init_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("PIVOT_INIT_BIN") {
            let p = PathBuf::from(p);
            need(
                p.exists(),
                &format!("PIVOT_INIT_BIN={} does not exist", p.display()),
            );
            return p;
        }
        let st = Command::new(root().join("scripts/build"))
            .current_dir(root())
            .status()
            .expect("scripts/build runs");
        assert!(st.success(), "scripts/build failed");
        root().join("target").join(MUSL).join("release/pivot-init")
    })
    .clone()
}

/// A scratch directory removed on drop (kept when PIVOT_KEEP is set).
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let p = root()
            .join("target/qemu-tests")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("PIVOT_KEEP").is_none() && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A directory tree that becomes an ext4 image.
pub struct Tree {
    pub dir: PathBuf,
    /// debugfs commands run on the image after mkfs (device nodes, owners).
    pub debugfs: Vec<String>,
}

/// Applets the guest scripts use.
const APPLETS: &[&str] = &[
    "sh",
    "cat",
    "echo",
    "grep",
    "mount",
    "umount",
    "mountpoint",
    "poweroff",
    "ls",
    "sleep",
    "stat",
    "touch",
    "env",
    "readlink",
    "test",
    "[",
    "sync",
    "head",
    "dmesg",
    "reboot",
    "cp",
    "wc",
];

impl Tree {
    pub fn new(dir: PathBuf) -> Tree {
        std::fs::create_dir_all(&dir).unwrap();
        Tree {
            dir,
            debugfs: Vec::new(),
        }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p.trim_start_matches('/'))
    }

    pub fn mkdir(&self, p: &str) -> &Self {
        std::fs::create_dir_all(self.path(p)).unwrap();
        self
    }

    pub fn file(&self, p: &str, content: &[u8], mode: u32) -> &Self {
        let path = self.path(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    pub fn copy(&self, p: &str, from: &Path, mode: u32) -> &Self {
        let content =
            std::fs::read(from).unwrap_or_else(|e| panic!("reading {}: {e}", from.display()));
        self.file(p, &content, mode)
    }

    pub fn symlink(&self, p: &str, target: &str) -> &Self {
        let path = self.path(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(target, &path).unwrap();
        self
    }

    /// busybox-static at /bin/busybox with the applets the scripts use.
    pub fn busybox(&self) -> &Self {
        self.busybox_for(Arch::X86_64)
    }

    /// The same with busybox built for `arch`.
    pub fn busybox_for(&self, arch: Arch) -> &Self {
        self.copy("/bin/busybox", &arch.busybox(), 0o755);
        for a in APPLETS {
            self.symlink(&format!("/bin/{a}"), "busybox");
        }
        self
    }

    /// A device node made in the image by debugfs (no root needed).
    /// (debugfs' mknod takes a name in its current directory, hence the cd.)
    pub fn node(&mut self, p: &str, kind: char, major: u32, minor: u32) -> &mut Self {
        let (dir, name) = p.rsplit_once('/').expect("absolute path");
        // A FIFO ('p') takes no device number; it gets the mode an init
        // would have, so only its type can refuse it.
        let (mknod, mode) = match kind {
            'b' => (format!("mknod {name} b {major} {minor}"), 0o060600),
            'p' => (format!("mknod {name} p"), 0o010755),
            _ => (format!("mknod {name} {kind} {major} {minor}"), 0o020600),
        };
        self.debugfs.extend([
            format!("cd /{}", dir.trim_start_matches('/')),
            mknod,
            format!("sif {name} mode 0{mode:o}"),
            "cd /".to_string(),
        ]);
        self
    }

    /// Writes an xfs image of the tree (mkfs.xfs -p with a prototype file).
    pub fn xfs(&self, img: &Path, size_mb: u64, label: &str) -> PathBuf {
        fn walk(dir: &Path, out: &mut String, depth: usize) {
            let mut entries: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            entries.sort();
            for p in entries {
                let name = p.file_name().unwrap().to_str().unwrap().to_string();
                let md = std::fs::symlink_metadata(&p).unwrap();
                let mode = md.permissions().mode() & 0o777;
                let pad = " ".repeat(depth);
                if md.file_type().is_symlink() {
                    let t = std::fs::read_link(&p).unwrap();
                    out.push_str(&format!("{pad}{name} l--{mode:03o} 0 0 {}\n", t.display()));
                } else if md.is_dir() {
                    out.push_str(&format!("{pad}{name} d--{mode:03o} 0 0\n"));
                    walk(&p, out, depth + 1);
                    out.push_str(&format!("{pad}$\n"));
                } else {
                    out.push_str(&format!("{pad}{name} ---{mode:03o} 0 0 {}\n", p.display()));
                }
            }
        }
        let mut proto = String::from("/dev/null\n0 0\nd--755 0 0\n");
        walk(&self.dir, &mut proto, 1);
        proto.push_str("$\n");
        let proto_path = img.with_extension("proto");
        std::fs::write(&proto_path, proto).unwrap();
        std::fs::File::create(img)
            .unwrap()
            .set_len(size_mb << 20)
            .unwrap();
        run_tool(
            "mkfs.xfs",
            &[
                "-q",
                "-f",
                "-L",
                label,
                "-p",
                proto_path.to_str().unwrap(),
                img.to_str().unwrap(),
            ],
        );
        img.to_path_buf()
    }

    /// Writes a btrfs image of the tree (mkfs.btrfs --rootdir).
    pub fn btrfs(&self, img: &Path, size_mb: u64, label: &str) -> PathBuf {
        std::fs::File::create(img)
            .unwrap()
            .set_len(size_mb << 20)
            .unwrap();
        run_tool(
            "mkfs.btrfs",
            &[
                "-q",
                "-f",
                "-L",
                label,
                "--rootdir",
                self.dir.to_str().unwrap(),
                img.to_str().unwrap(),
            ],
        );
        img.to_path_buf()
    }

    /// Writes a squashfs image of the tree (read-only by nature; files
    /// owned by root); returns its path. The test kernel has squashfs as a
    /// module (`kernel/fs/squashfs/squashfs.ko`, no dependencies).
    pub fn squashfs(&self, img: &Path) -> PathBuf {
        let _ = std::fs::remove_file(img);
        run_tool(
            "mksquashfs",
            &[
                self.dir.to_str().unwrap(),
                img.to_str().unwrap(),
                "-noappend",
                "-quiet",
                "-all-root",
            ],
        );
        img.to_path_buf()
    }

    /// Writes the ext4 image; returns its path.
    pub fn ext4(&self, img: &Path, size_mb: u32, label: &str) -> PathBuf {
        self.ext4_args(img, size_mb, &["-L", label])
    }

    /// Writes the ext4 image with extra mkfs.ext4 arguments (`-L`, `-U`, ...).
    pub fn ext4_args(&self, img: &Path, size_mb: u32, extra: &[&str]) -> PathBuf {
        let out = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-E", "root_owner=0:0"])
            .args(extra)
            .arg("-d")
            .arg(&self.dir)
            .arg(img)
            .arg(format!("{size_mb}M"))
            .output()
            .expect("mkfs.ext4 runs");
        assert!(
            out.status.success(),
            "mkfs.ext4: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if !self.debugfs.is_empty() {
            let cmds = img.with_extension("debugfs");
            std::fs::write(&cmds, self.debugfs.join("\n") + "\n").unwrap();
            let out = Command::new("debugfs")
                .arg("-w")
                .arg("-f")
                .arg(&cmds)
                .arg(img)
                .output()
                .expect("debugfs runs");
            assert!(
                out.status.success(),
                "debugfs: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        img.to_path_buf()
    }
}

/// The marker helper every guest script starts with: `m TEXT` writes a line to
/// the second serial port (ttyS1), which the harness reads back.
pub const SCRIPT_HEAD: &str =
    "#!/bin/sh\nexport PATH=/bin:/sbin\nm() { echo \"$*\" > /dev/ttyS1; }\n";

/// Puts an MBR with one Linux partition (starting at 1 MiB) around a
/// filesystem image; the kernel then knows the partition as
/// `PARTUUID=<sig>-01`, a stable root= whatever the NVMe probe order.
pub fn mbr_disk(fs_img: &Path, disk: &Path, signature: u32) {
    let fs = std::fs::read(fs_img).unwrap();
    let start: u32 = 2048;
    let sectors = u32::try_from(fs.len().div_ceil(512)).unwrap();
    let mut mbr = vec![0u8; 512];
    mbr[440..444].copy_from_slice(&signature.to_le_bytes());
    let e = 446;
    mbr[e] = 0x00;
    mbr[e + 1..e + 4].copy_from_slice(&[0xfe, 0xff, 0xff]);
    mbr[e + 4] = 0x83;
    mbr[e + 5..e + 8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    mbr[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
    mbr[e + 12..e + 16].copy_from_slice(&sectors.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    let mut out = mbr;
    out.resize(start as usize * 512, 0);
    out.extend_from_slice(&fs);
    out.resize(out.len().div_ceil(512) * 512, 0);
    std::fs::write(disk, out).unwrap();
}

pub const BOOT_SIG: u32 = 0x5eed_b007;

/// Runs a host tool, panicking with its stderr on failure.
pub fn run_tool(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} cannot run ({e}); run scripts/setup"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A GPT disk: partition 1 "esp" (1 MiB, empty), partition 2 `name` with
/// GUID `guid` holding the filesystem image `fs_img`.
pub fn gpt_disk(fs_img: &Path, disk: &Path, guid: &str, name: &str) {
    let fs = std::fs::read(fs_img).unwrap();
    let p2_start: u64 = 4096;
    let sectors = (fs.len() as u64).div_ceil(512);
    let total = (p2_start + sectors + 2048) * 512;
    std::fs::File::create(disk).unwrap().set_len(total).unwrap();
    let d = disk.to_str().unwrap();
    run_tool(
        "sgdisk",
        &[
            "-n",
            "1:2048:+1M",
            "-c",
            "1:esp",
            "-n",
            &format!("2:{p2_start}:+{sectors}"),
            "-c",
            &format!("2:{name}"),
            "-u",
            &format!("2:{guid}"),
            d,
        ],
    );
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::OpenOptions::new().write(true).open(disk).unwrap();
    f.seek(SeekFrom::Start(p2_start * 512)).unwrap();
    f.write_all(&fs).unwrap();
}

/// A seed for test orderings: `$PIVOT_TEST_SEED` or the clock; printed so a
/// failing order can be replayed.
pub fn seed() -> u64 {
    let s = std::env::var("PIVOT_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("PIVOT_TEST_SEED={s}");
    s
}

/// Fisher-Yates with a small xorshift generator.
pub fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

/// Runs scripts/install-image on a filesystem image with a config file;
/// returns what it printed.
pub fn install_image(img: &Path, conf: &Path) -> String {
    let out = Command::new(root().join("scripts/install-image"))
        .env("PIVOT_INIT_BIN", pivot_init_bin())
        .arg(img)
        .arg("--config")
        .arg(conf)
        .output()
        .expect("scripts/install-image runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "install-image failed:\n{text}");
    text
}

/// The boot disk's own init: prints `OLD-INIT` markers and powers off.
pub fn old_init_script() -> String {
    old_init_script_for(Arch::X86_64)
}

pub fn old_init_script_for(arch: Arch) -> String {
    format!(
        "{}m \"OLD-INIT pid=$$ root=$(cat /etc/boot-id)\"\n\
         m \"OLD-INIT new-root-mounted=$(grep -c ' /new-root ' /proc/mounts)\"\n\
         m \"OLD-INIT sleepers=$(cat /proc/[0-9]*/comm 2>/dev/null | grep -c '^sleep$')\"\n\
         m \"OLD-INIT api=$(echo $(for d in /proc /sys /dev; do echo $d:$(grep -c \" $d \" /proc/mounts); done))\"\n\
         m \"OLD-INIT hook-procs=$(grep -l '98765[4]' /proc/[0-9]*/cmdline 2>/dev/null | wc -l)\"\n\
         sync\npoweroff -f\n",
        arch.script_head()
    )
}

/// A boot disk before pivot-init: busybox, its init (the old-init script)
/// at `init_path`, /etc/boot-id.
pub fn plain_boot_tree(dir: PathBuf, init_path: &str) -> Tree {
    plain_boot_tree_for(Arch::X86_64, dir, init_path)
}

pub fn plain_boot_tree_for(arch: Arch, dir: PathBuf, init_path: &str) -> Tree {
    let tree = Tree::new(dir);
    tree.busybox_for(arch)
        .file(init_path, old_init_script_for(arch).as_bytes(), 0o755)
        .file("/etc/boot-id", b"boot-disk\n", 0o644)
        .mkdir("/proc")
        .mkdir("/sys")
        .mkdir("/dev");
    tree
}

/// What a boot disk holds besides pivot-init.
pub struct BootDisk {
    pub tree: Tree,
}

impl BootDisk {
    /// A boot disk: pivot-init as /sbin/init, an old init that prints
    /// `OLD-INIT` and powers off, busybox, /etc/boot-id, /new-root.
    pub fn new(scratch: &Scratch) -> BootDisk {
        BootDisk::new_for(Arch::X86_64, scratch)
    }

    pub fn new_for(arch: Arch, scratch: &Scratch) -> BootDisk {
        let tree = plain_boot_tree_for(arch, scratch.0.join("boot-tree"), "/sbin/init.old");
        tree.copy("/sbin/init", &arch.pivot_init(), 0o755)
            .mkdir("/new-root");
        BootDisk { tree }
    }

    /// Puts the host's e2fsck on the boot disk, at /sbin/e2fsck with
    /// /sbin/fsck.ext2, fsck.ext3 and fsck.ext4, with the loader and the
    /// shared libraries it needs: what `scripts/mkinitramfs --fsck ext4` puts
    /// in an initramfs (resolved by src/elfdeps.rs), taken out of one.
    pub fn with_fsck(&self, scratch: &Scratch) -> &Self {
        let img = mkinitramfs(
            &pivot_init_bin(),
            &scratch.0.join("fsck-programs.cpio"),
            &[
                OsStr::new("--fsck"),
                OsStr::new("ext4"),
                OsStr::new("--compress"),
                OsStr::new("none"),
            ],
        );
        let out = Command::new("cpio")
            .args(["-i", "-d", "-m", "--quiet", "-F"])
            .arg(&img)
            .arg("-D")
            .arg(&self.tree.dir)
            .args(["lib*", "sbin/*"])
            .output()
            .expect("cpio runs");
        assert!(
            out.status.success(),
            "cpio: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self
    }

    pub fn image(&self, scratch: &Scratch) -> PathBuf {
        self.image_args(scratch, &[], false)
    }

    /// The image with more mkfs.ext4 arguments (`-U UUID`); with `full`,
    /// no block left free (no reserved blocks, `-m 0`, and a file that
    /// holds every free block: a write that needs a block fails, ENOSPC).
    pub fn image_args(&self, scratch: &Scratch, extra: &[&str], full: bool) -> PathBuf {
        let fs = scratch.0.join("boot.fs");
        let mut args = vec!["-L", "bootdisk"];
        if full {
            args.extend(["-m", "0"]);
        }
        args.extend(extra);
        self.tree.ext4_args(&fs, 16, &args);
        if full {
            fill_ext4(&fs);
        }
        let disk = scratch.0.join("boot.img");
        mbr_disk(&fs, &disk, BOOT_SIG);
        disk
    }

    /// The filesystem image inside a disk made by [`BootDisk::image`].
    pub fn filesystem(scratch: &Scratch) -> PathBuf {
        let disk = std::fs::read(scratch.0.join("boot.img")).expect("the boot disk image");
        let fs = scratch.0.join("boot-after.fs");
        std::fs::write(&fs, disk.get(2048 * 512..).unwrap_or_default()).unwrap();
        fs
    }
}

/// The free blocks of an ext4 image, as its superblock says (dumpe2fs).
pub fn ext4_free_blocks(img: &Path) -> u64 {
    let out = Command::new("dumpe2fs")
        .arg("-h")
        .arg(img)
        .output()
        .expect("dumpe2fs runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Free blocks:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no free block count from dumpe2fs {}:\n{text}",
                img.display()
            )
        })
}

/// Takes every free block of an ext4 image into a file `/.filler`
/// (debugfs fallocate: most in one run, then the rest, which the extent
/// tree's own blocks leave uncertain, with a range past the end).
pub fn fill_ext4(img: &Path) {
    let debugfs = |cmd: &str| {
        let out = Command::new("debugfs")
            .args(["-w", "-R", cmd])
            .arg(img)
            .output()
            .expect("debugfs runs");
        assert!(
            out.status.success(),
            "debugfs {cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    debugfs("write /dev/null .filler");
    let free = ext4_free_blocks(img);
    let first = free.saturating_sub(100);
    debugfs(&format!("fallocate /.filler 0 {first}"));
    debugfs(&format!(
        "fallocate /.filler {} {}",
        first + 1,
        first + 1000
    ));
    assert_eq!(
        ext4_free_blocks(img),
        0,
        "{} still has free blocks",
        img.display()
    );
}

/// A file of an ext4 image (debugfs cat), `None` when it has none there.
pub fn ext4_file(img: &Path, path: &str) -> Option<String> {
    let out = Command::new("debugfs")
        .args(["-R", &format!("cat {path}")])
        .arg(img)
        .output()
        .expect("debugfs runs");
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("File not found") {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A Debian bookworm tree whose /sbin/init is systemd (debootstrap
/// minbase with systemd-sysv), made once by `scripts/systemd-volume` and
/// cached under target/systemd-volume/ (a minute or a few the first time;
/// it needs root and the Debian mirror). Tests add their own files to the
/// image (with [`Tree::debugfs`]), never to this tree.
pub fn systemd_volume_tree() -> PathBuf {
    let out = Command::new(root().join("scripts/systemd-volume"))
        .output()
        .expect("scripts/systemd-volume runs");
    assert!(
        out.status.success(),
        "scripts/systemd-volume: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The kernel command line every test boot starts with.
pub fn base_cmdline() -> String {
    format!("console=ttyS0 panic=-1 root=PARTUUID={BOOT_SIG:08x}-01 rootwait rw")
}

/// A volume tree whose /sbin/init reports what it sees as PID 1 and powers off.
pub fn volume_tree(dir: PathBuf, id: &str) -> Tree {
    volume_tree_for(Arch::X86_64, dir, id)
}

pub fn volume_tree_for(arch: Arch, dir: PathBuf, id: &str) -> Tree {
    let tree = Tree::new(dir);
    tree.busybox_for(arch)
        .file(
            "/sbin/init",
            format!(
                "{}mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev\n\
                 m \"VOLUME-INIT id={id} pid=$$ args=$*\"\n\
                 m \"SIGS $(echo $(grep -E '^Sig(Blk|Ign)' /proc/1/status))\"\n\
                 m \"HOOK-PROCS $(grep -l '98765[4]' /proc/[0-9]*/cmdline 2>/dev/null | wc -l)\"\n\
                 m \"OLDROOT $(cat /old-root/etc/boot-id)\"\n\
                 for d in /proc /sys /dev /old-root; do m \"MOUNT $d $(grep -c \" $d \" /proc/mounts)\"; done\n\
                 [ -f /hook-ran ] && m \"HOOK $(cat /hook-ran)\"\n\
                 for p in $(cat /etc/params 2>/dev/null); do m \"PARAM $p=$(cat /sys/module/$p)\"; done\n\
                 m \"ROOTDEV $(grep ' / ' /proc/mounts | head -n1)\"\n\
                 m END\nsync\npoweroff -f\n",
                arch.script_head()
            )
            .as_bytes(),
            0o755,
        )
        .file("/etc/volume-id", format!("{id}\n").as_bytes(), 0o644)
        .mkdir("/proc")
        .mkdir("/sys")
        .mkdir("/dev")
        .mkdir("/old-root");
    tree
}

/// A running guest; killed on drop.
pub struct Vm {
    pub child: Child,
    pub console: PathBuf,
    pub markers: PathBuf,
    pub qmp: PathBuf,
    pub started: Instant,
    next_id: u32,
    /// With `Boot::console_input`: the FIFO QEMU reads ttyS0 input from.
    console_in: Option<PathBuf>,
    arch: Arch,
}

/// A disk to attach: image, NVMe serial.
pub struct Disk<'a> {
    pub image: &'a Path,
    pub serial: &'a str,
}

/// How a guest boots and what is attached from the start.
#[derive(Default)]
pub struct Boot<'a> {
    /// Machine image mode: the boot disk (an NVMe disk, root=PARTUUID=...).
    pub disk: Option<&'a Path>,
    /// Initramfs mode: `-initrd`.
    pub initrd: Option<&'a Path>,
    /// NVMe volumes present at boot.
    pub nvme: &'a [Disk<'a>],
    /// More QEMU arguments (other controllers and disks).
    pub qemu_args: Vec<String>,
    /// Appended to the kernel command line.
    pub cmdline: &'a str,
    /// ttyS0 through FIFOs, so that tests can type on the console (`Vm::type_console`).
    pub console_input: bool,
    /// The machine (x86_64 `pc` by default, or arm64 `virt`).
    pub arch: Arch,
    /// Another kernel than the test kernel.
    pub kernel: Option<&'a Path>,
    /// The boot disk's image format (`raw` when `None`; `qcow2` for an overlay).
    pub disk_format: Option<&'a str>,
    /// The whole kernel command line instead of the harness's base (root=, console=).
    pub replace_cmdline: bool,
    /// A reboot of the guest restarts the machine with the same disks and
    /// command line (QEMU without `-no-reboot`); the console and the markers
    /// go on in the same files. The guest ends by powering off.
    pub reboot: bool,
    /// Guest time counts instructions: QEMU `-icount` ([`ICOUNT`]).
    pub icount: bool,
}

/// QEMU's `-icount` for [`Boot::icount`]: one guest instruction is 1 ns of
/// guest time (`shift=0`), so the guest's clocks (TSC, printk stamps, timers)
/// measure the work done, not the host's speed, load or TCG's translation.
/// `sleep=on`: while the guest idles (waiting for a hot-plug, a timer, the
/// host's disk I/O), its clock follows real time, so a volume hot-plugged
/// N s of real time after the guest waits comes N s later in guest time too.
/// (`sleep=off` jumps an idle guest to its next timer at once: guest time
/// would run ahead of real time while it waits.)
pub const ICOUNT: &str = "shift=0,sleep=on";

impl Vm {
    /// Boots the kernel with the boot disk and `at_boot` volumes attached.
    pub fn boot(scratch: &Scratch, boot: &Path, at_boot: &[Disk], extra_cmdline: &str) -> Vm {
        Vm::start(
            scratch,
            &Boot {
                disk: Some(boot),
                nvme: at_boot,
                cmdline: extra_cmdline,
                ..Boot::default()
            },
        )
    }

    /// Boots the kernel with `initrd` (x86_64), the NVMe disks there at
    /// boot and `cmdline`: the initramfs twin of [`Vm::boot`].
    pub fn initramfs(scratch: &Scratch, initrd: &Path, at_boot: &[Disk], cmdline: &str) -> Vm {
        Vm::start(
            scratch,
            &Boot {
                initrd: Some(initrd),
                nvme: at_boot,
                cmdline,
                ..Boot::default()
            },
        )
    }

    /// Boots the kernel as `b` says.
    pub fn start(scratch: &Scratch, b: &Boot) -> Vm {
        if b.kernel.is_none() {
            prerequisites();
        }
        b.arch.check();
        let console = scratch.0.join("console.log");
        let markers = scratch.0.join("markers.log");
        let qmp = scratch.0.join("qmp.sock");
        let tty = match b.arch {
            Arch::X86_64 => "ttyS0",
            Arch::Aarch64 => "ttyAMA0",
        };
        let base = if b.replace_cmdline {
            String::new()
        } else if b.disk.is_some() {
            base_cmdline().replace("ttyS0", tty)
        } else {
            format!("console={tty} panic=-1")
        };
        let mut cmd = match b.arch {
            Arch::X86_64 => {
                let mut c = Command::new("qemu-system-x86_64");
                c.args(["-accel", "tcg", "-M", "pc"]);
                c
            }
            Arch::Aarch64 => {
                let mut c = Command::new("qemu-system-aarch64");
                // A PCIe root port to hot-plug into (the virt machine's root
                // bus takes no hot-plug).
                c.args(["-accel", "tcg", "-M", "virt", "-cpu", "max"])
                    .args(["-device", "pcie-root-port,id=rp1,bus=pcie.0,chassis=1"]);
                c
            }
        };
        if b.icount {
            cmd.args(["-icount", ICOUNT]);
        }
        cmd.args(["-m", "512", "-display", "none"])
            .args(["-nodefaults", "-net", "none", "-monitor", "none"])
            .args(if b.reboot {
                &[][..]
            } else {
                &["-no-reboot"][..]
            })
            .arg("-kernel")
            .arg(b.kernel.map_or_else(|| b.arch.kernel(), Path::to_path_buf))
            .arg("-append")
            // PIVOT_TEST_CMDLINE is appended to every boot, e.g. "pivot.loglevel=7 loglevel=8".
            .arg(format!(
                "{base} {} {}",
                b.cmdline,
                std::env::var("PIVOT_TEST_CMDLINE").unwrap_or_default()
            ))
            .arg("-serial")
            .arg(if b.console_input {
                format!("pipe:{}", scratch.0.join("con").display())
            } else {
                format!("file:{}", console.display())
            })
            .args(match b.arch {
                Arch::X86_64 => vec!["-serial".to_string(), format!("file:{}", markers.display())],
                Arch::Aarch64 => vec![],
            })
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp.display()));
        if let Some(disk) = b.disk {
            cmd.arg("-drive")
                .arg(format!(
                    "if=none,id=boot,format={},file={}",
                    b.disk_format.unwrap_or("raw"),
                    disk.display()
                ))
                .args(["-device", "nvme,drive=boot,serial=boot"]);
        }
        if let Some(initrd) = b.initrd {
            cmd.arg("-initrd").arg(initrd);
        }
        for (i, d) in b.nvme.iter().enumerate() {
            cmd.arg("-drive")
                .arg(format!(
                    "if=none,id=vol{i},format=raw,file={}",
                    d.image.display()
                ))
                .arg("-device")
                .arg(format!("nvme,drive=vol{i},serial={}", d.serial));
        }
        cmd.args(&b.qemu_args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut console_in = None;
        if b.console_input {
            // QEMU's pipe chardev: PATH.in (guest input) and PATH.out (output),
            // opened read-write by QEMU; a thread copies the output to console.log.
            let base = scratch.0.join("con");
            for end in ["in", "out"] {
                let p = base.with_extension(end);
                let _ = std::fs::remove_file(&p);
                let st = Command::new("mkfifo")
                    .arg(&p)
                    .status()
                    .expect("mkfifo runs");
                assert!(st.success(), "mkfifo {}", p.display());
            }
            let out = base.with_extension("out");
            let log = console.clone();
            std::thread::spawn(move || {
                use std::io::Read;
                let Ok(mut src) = std::fs::File::open(&out) else {
                    return;
                };
                let Ok(mut dst) = std::fs::File::create(&log) else {
                    return;
                };
                let mut buf = [0u8; 4096];
                while let Ok(n) = src.read(&mut buf) {
                    if n == 0 || dst.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
            console_in = Some(base.with_extension("in"));
        }
        let child = cmd.spawn().expect("qemu starts");
        Vm {
            child,
            console,
            markers,
            qmp,
            started: Instant::now(),
            next_id: 100,
            console_in,
            arch: b.arch,
        }
    }

    pub fn console_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.console).unwrap_or_default()).into_owned()
    }

    pub fn markers_text(&self) -> String {
        if self.arch == Arch::Aarch64 {
            // Markers share the console: the lines the guest's `m` prefixed.
            return self
                .console_text()
                .lines()
                .filter_map(|l| l.trim_end_matches('\r').split_once("@@M ").map(|(_, m)| m))
                .map(|m| format!("{m}\n"))
                .collect();
        }
        String::from_utf8_lossy(&std::fs::read(&self.markers).unwrap_or_default()).into_owned()
    }

    /// Waits until the console shows `needle`; panics with the console on timeout.
    pub fn wait_console(&mut self, needle: &str) {
        if let Err(e) = self.try_wait_console(needle) {
            panic!("{e}");
        }
    }

    /// Waits until the console shows `needle`; an error with the console
    /// when the guest exits first or the boot timeout passes.
    pub fn try_wait_console(&mut self, needle: &str) -> Result<(), String> {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        while Instant::now() < deadline {
            if self.console_text().contains(needle) {
                return Ok(());
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(format!(
                    "guest exited ({st}) before printing {needle:?}; console:\n{}",
                    self.console_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "timeout waiting for {needle:?}; console:\n{}",
            self.console_text()
        ))
    }

    /// Waits for the guest to power off; returns (console, markers).
    pub fn wait_exit(&mut self) -> (String, String) {
        match self.try_wait_exit() {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    /// Waits for the guest to power off; an error with the console and the
    /// markers when it has not within the boot timeout (it is killed).
    pub fn try_wait_exit(&mut self) -> Result<(String, String), String> {
        let deadline = Instant::now() + BOOT_TIMEOUT;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok((self.console_text(), self.markers_text()));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return Err(format!(
                    "guest did not power off within {BOOT_TIMEOUT:?}; console:\n{}\nmarkers:\n{}",
                    self.console_text(),
                    self.markers_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// [`Vm::wait_exit`], stamping each console line with the host time it
    /// was first seen (since QEMU started; the file is polled every 10 ms,
    /// so a stamp is at most ~10 ms late): a clock shared by two kernels
    /// that a kexec joins, whose own printk clocks both start at zero.
    pub fn wait_exit_timed(&mut self) -> (String, String, Vec<(Duration, String)>) {
        use std::io::{Read, Seek, SeekFrom};
        let deadline = Instant::now() + BOOT_TIMEOUT;
        let mut lines = Vec::new();
        let mut partial = Vec::new();
        let mut offset = 0u64;
        loop {
            let done = self.exited();
            if let Ok(mut f) = std::fs::File::open(&self.console) {
                let mut buf = Vec::new();
                if f.seek(SeekFrom::Start(offset)).is_ok() && f.read_to_end(&mut buf).is_ok() {
                    offset += buf.len() as u64;
                    let at = self.started.elapsed();
                    partial.extend_from_slice(&buf);
                    while let Some(i) = partial.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = partial.drain(..=i).collect();
                        let text = String::from_utf8_lossy(&line);
                        lines.push((at, text.trim_end().to_string()));
                    }
                }
            }
            if done {
                return (self.console_text(), self.markers_text(), lines);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "guest did not power off within {BOOT_TIMEOUT:?}; console:\n{}\nmarkers:\n{}",
                    self.console_text(),
                    self.markers_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Types `text` on the guest's console (needs `Boot::console_input`).
    pub fn type_console(&self, text: &str) {
        let path = self.console_in.as_ref().expect("booted with console_input");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .expect("console FIFO opens");
        f.write_all(text.as_bytes()).expect("typing on the console");
    }

    /// Attaches an NVMe volume now, as a cloud would (QMP blockdev-add + device_add).
    pub fn hotplug_nvme(&mut self, d: &Disk) {
        self.hotplug("nvme", d)
    }

    /// Presses keys together on the guest's keyboard (QEMU qcodes: `ctrl`,
    /// `alt`, `delete`, ...).
    pub fn send_keys(&mut self, qcodes: &[&str]) {
        let keys: Vec<String> = qcodes
            .iter()
            .map(|k| format!(r#"{{"type":"qcode","data":"{k}"}}"#))
            .collect();
        let mut q = Qmp::connect(&self.qmp);
        q.cmd(&format!(
            r#"{{"execute":"send-key","arguments":{{"keys":[{}]}}}}"#,
            keys.join(",")
        ));
    }

    /// Attaches a volume with the given QEMU device driver (`nvme`, `virtio-blk-pci`).
    pub fn hotplug(&mut self, driver: &str, d: &Disk) {
        self.hotplug_with(driver, d, "")
    }

    /// Attaches an image of the given format (`raw`, `qcow2`) with a QEMU
    /// device driver and more device properties.
    pub fn hotplug_image(
        &mut self,
        driver: &str,
        image: &Path,
        format: &str,
        serial: &str,
        props: &str,
    ) {
        self.next_id += 1;
        let n = self.next_id;
        let mut q = Qmp::connect(&self.qmp);
        q.cmd(&format!(
            r#"{{"execute":"blockdev-add","arguments":{{"driver":"{format}","node-name":"hp{n}","file":{{"driver":"file","filename":"{}"}}}}}}"#,
            image.display()
        ));
        let serial = if serial.is_empty() {
            String::new()
        } else {
            format!(r#","serial":"{serial}""#)
        };
        q.cmd(&format!(
            r#"{{"execute":"device_add","arguments":{{"driver":"{driver}","drive":"hp{n}","id":"hpdev{n}"{serial}{props}}}}}"#
        ));
    }

    /// Whether QEMU has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Like [`Vm::hotplug`], with more device properties (`,"addr":"0x9"`).
    pub fn hotplug_with(&mut self, driver: &str, d: &Disk, props: &str) {
        let bus = if self.arch == Arch::Aarch64 {
            r#","bus":"rp1""#
        } else {
            ""
        };
        let props = format!("{props}{bus}");
        self.next_id += 1;
        let n = self.next_id;
        let mut q = Qmp::connect(&self.qmp);
        q.cmd(&format!(
            r#"{{"execute":"blockdev-add","arguments":{{"driver":"raw","node-name":"hp{n}","file":{{"driver":"file","filename":"{}"}}}}}}"#,
            d.image.display()
        ));
        q.cmd(&format!(
            r#"{{"execute":"device_add","arguments":{{"driver":"{driver}","drive":"hp{n}","serial":"{}","id":"hpdev{n}"{props}}}}}"#,
            d.serial
        ));
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal QMP client: one JSON command per line, answers read until a
/// `return` or `error` (events in between are skipped).
pub struct Qmp {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Qmp {
    pub fn connect(sock: &Path) -> Qmp {
        let deadline = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            match UnixStream::connect(sock) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => panic!("QMP {}: {e}", sock.display()),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut q = Qmp { stream, reader };
        let mut greeting = String::new();
        q.reader.read_line(&mut greeting).unwrap();
        assert!(greeting.contains("QMP"), "QMP greeting: {greeting}");
        q.cmd(r#"{"execute":"qmp_capabilities"}"#);
        q
    }

    pub fn cmd(&mut self, json: &str) -> String {
        self.stream.write_all(json.as_bytes()).unwrap();
        self.stream.write_all(b"\n").unwrap();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap();
            assert!(n > 0, "QMP closed after {json}");
            if line.contains("\"error\"") {
                panic!("QMP {json} failed: {line}");
            }
            if line.contains("\"return\"") {
                return line;
            }
        }
    }
}

/// The lines of `text` that contain `needle`.
pub fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

/// Asserts that `text` has a line equal to `line` (after trimming \r).
pub fn assert_line(text: &str, line: &str, what: &str, all: &str) {
    assert!(
        text.lines().any(|l| l.trim_end_matches('\r') == line),
        "{what}: expected the line {line:?}; got:\n{text}\n--- console ---\n{all}"
    );
}

// ---------------------------------------------------------------------------
// kexec groundwork (issue 23, pivot.kexec): a volume that carries its own
// kernel, the initramfs that kernel boots with, boot entries, and the C
// prototype of the kexec step (harness/kexec-proto.c).
// ---------------------------------------------------------------------------

/// The kernel release of the test kernel for `arch` (its VERSION file),
/// e.g. `6.1.0-57-cloud-amd64`.
pub fn kernel_release(arch: Arch) -> String {
    let dir = match arch {
        Arch::X86_64 => "target/test-kernel",
        Arch::Aarch64 => "target/test-kernel-arm64",
    };
    let path = root().join(dir).join("VERSION");
    let ver = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}; run scripts/setup", path.display()));
    ver.trim().to_string()
}

/// The value of `key` (`CONFIG_KEXEC_FILE`) in the test kernel's config for
/// `arch`: `Some("y")`, `Some("m")`, a string's quoted value, or `None` when
/// it is not set. The arm64 test kernel (Debian 6.1 cloud) has no
/// `CONFIG_KEXEC_FILE` (kexec_file_load fails with ENOSYS there), so a kexec
/// test on arm64 asks this first.
pub fn kernel_config(arch: Arch, key: &str) -> Option<String> {
    let dir = match arch {
        Arch::X86_64 => "target/test-kernel",
        Arch::Aarch64 => "target/test-kernel-arm64",
    };
    let path = root().join(dir).join("config");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}; run scripts/setup", path.display()));
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_string)
}

/// Builds harness/kexec-proto.c (`cc -O2 -static`) into the scratch
/// directory; returns the binary. x86_64 only (no arm64 cross compiler here).
///
/// `kexec-proto [-nRz] [-s LEN] [-u DIR]... KERNEL INITRD|- CMDLINE` loads
/// KERNEL and INITRD with kexec_file_load, prints `KEXEC load result=0 ms=N`
/// (or `result=ENOEXEC(8)`), unmounts each DIR, syncs and reboots into the
/// loaded kernel; `-n` only loads and unloads. See the file's head.
pub fn kexec_proto(scratch: &Scratch) -> PathBuf {
    need(
        have_cmd("cc"),
        "`cc` is not installed (Debian packages gcc, libc6-dev)",
    );
    let out = scratch.0.join("kexec-proto");
    let o = Command::new("cc")
        .args(["-O2", "-static", "-Wall", "-o"])
        .arg(&out)
        .arg(root().join("harness/kexec-proto.c"))
        .output()
        .expect("cc runs");
    assert!(
        o.status.success(),
        "cc harness/kexec-proto.c: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// The applets the kexec'd kernel's initramfs uses.
const KEXEC_INITRAMFS_APPLETS: &[&str] = &[
    "sh",
    "cat",
    "echo",
    "mount",
    "mountpoint",
    "findfs",
    "sleep",
    "switch_root",
    "poweroff",
];

/// The /init of [`kexec_initramfs`]: finds `root=UUID=` of the command line
/// (polling `findfs` every 0.1 s for up to 60 s: the kexec'd kernel probes
/// its NVMe controllers again and asynchronously, and the name it gives the
/// volume need not be the one the first kernel gave it), mounts it read-only
/// on /newroot, moves /dev, /proc, /sys there and switch_roots to
/// /sbin/init. It reports `KINITRD ...` markers; on failure it powers off.
fn kexec_initramfs_init(arch: Arch) -> String {
    format!(
        "{}fail() {{ m \"KINITRD FAILED $*\"; poweroff -f; }}\n\
         mount -t devtmpfs devtmpfs /dev\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         uuid=\n\
         for a in $(cat /proc/cmdline); do case $a in root=UUID=*) uuid=${{a#root=UUID=}};; esac; done\n\
         [ -n \"$uuid\" ] || fail \"no root=UUID= on the command line\"\n\
         i=0\n\
         while ! dev=$(findfs UUID=$uuid 2>/dev/null); do\n\
         \x20 i=$((i + 1)); [ $i -le 600 ] || fail \"UUID=$uuid did not appear within 60 s\"; sleep 0.1\n\
         done\n\
         m \"KINITRD found UUID=$uuid at $dev after $i polls\"\n\
         mount -t ext4 -o ro $dev /newroot || fail \"mount $dev\"\n\
         for d in dev proc sys; do mount --move /$d /newroot/$d || fail \"move /$d\"; done\n\
         exec switch_root /newroot /sbin/init\n",
        arch.script_head()
    )
}

/// A small gzip'd initramfs for the kexec'd test kernel: busybox-static and
/// an /init that mounts the volume named by `root=UUID=` read-only and runs
/// its /sbin/init, waiting for it by polling (see `kexec_initramfs_init`).
/// Written to `out`.
pub fn kexec_initramfs(arch: Arch, out: &Path) -> PathBuf {
    need(have_cmd("cpio"), "`cpio` is not installed");
    let dir = out.with_extension("root");
    let _ = std::fs::remove_dir_all(&dir);
    let tree = Tree::new(dir.clone());
    tree.copy("/bin/busybox", &arch.busybox(), 0o755);
    for a in KEXEC_INITRAMFS_APPLETS {
        tree.symlink(&format!("/bin/{a}"), "busybox");
    }
    tree.file("/init", kexec_initramfs_init(arch).as_bytes(), 0o755)
        .mkdir("/dev")
        .mkdir("/proc")
        .mkdir("/sys")
        .mkdir("/newroot");
    let st = Command::new("sh")
        .arg("-c")
        .arg("cd \"$1\" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -9 > \"$2\"")
        .arg("sh")
        .arg(&dir)
        .arg(out)
        .status()
        .expect("sh runs");
    assert!(st.success(), "building the initramfs {}", out.display());
    out.to_path_buf()
}

/// The /sbin/init of a kexec volume: reports what the kexec'd kernel looks
/// like from PID 1, then powers off. Markers:
/// `KEXEC-VOLUME-INIT id=ID pid=1`, `KEXEC-CMDLINE <its /proc/cmdline>`,
/// `KEXEC-DMESG1 <the first line of dmesg>` (a fresh kernel's
/// `[    0.000000] Linux version ...`), `KEXEC-LOADER <bootloader_type>`
/// (208 = 0xd0, kexec, after a kexec; 176 = 0xb0, QEMU, when QEMU loaded the
/// kernel), `KEXEC-ROOT <the / line of /proc/mounts>`, `KEXEC-UPTIME`, `END`.
pub fn kexec_volume_init_script(arch: Arch, id: &str) -> String {
    format!(
        "{}mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev\n\
         mountpoint -q /proc || mount -t proc proc /proc\n\
         m \"KEXEC-VOLUME-INIT id={id} pid=$$\"\n\
         m \"KEXEC-CMDLINE $(cat /proc/cmdline)\"\n\
         m \"KEXEC-DMESG1 $(dmesg | head -n1)\"\n\
         m \"KEXEC-LOADER $(cat /proc/sys/kernel/bootloader_type)\"\n\
         m \"KEXEC-ROOT $(grep ' / ' /proc/mounts | grep -v '^rootfs' | head -n1)\"\n\
         m \"KEXEC-UPTIME $(cat /proc/uptime)\"\n\
         m END\nsync\npoweroff -f\n",
        arch.script_head()
    )
}

/// A volume that can be booted by kexec: its own kernel at
/// `/boot/vmlinuz-RELEASE` (the test kernel), the initramfs of
/// [`kexec_initramfs`] at `/boot/initrd.img-RELEASE`, the init of
/// [`kexec_volume_init_script`] at /sbin/init, and a fixed filesystem UUID
/// (derived from `id`) that the boot entries name as `root=UUID=`.
/// Boot entries are options: [`KexecVolume::bls_entry`],
/// [`KexecVolume::debian_links`], [`KexecVolume::dracut_initrd_name`].
///
/// ```no_run
/// use pivot_harness::*;
/// let s = Scratch::new("kexec-example");
/// let vol = KexecVolume::new(&s, "k1");
/// vol.bls_entry("k1", "kexec.marker=k1"); // options: root=UUID=... ro console=ttyS0 panic=-1 kexec.marker=k1
/// let img = vol.image(&s, "vol.img");
/// let boot = BootDisk::new(&s).image(&s); // pivot-init as /sbin/init
/// let mut vm = Vm::boot(&s, &boot, &[Disk { image: &img, serial: "vol0" }],
///                       &format!("pivot.root=UUID={} pivot.kexec=on", vol.uuid));
/// let (console, m) = vm.wait_exit();
/// assert_line(&m, "KEXEC-VOLUME-INIT id=k1 pid=1", "the volume's init", &console);
/// assert_line(&m, &format!("KEXEC-CMDLINE {}", vol.options("kexec.marker=k1")), "its command line", &console);
/// assert_line(&m, "KEXEC-LOADER 208", "booted by kexec", &console);
/// ```
pub struct KexecVolume {
    pub tree: Tree,
    /// The ext4 filesystem UUID [`KexecVolume::image`] gives the volume.
    pub uuid: String,
    /// The kernel release in the file names (`6.1.0-57-cloud-amd64`).
    pub release: String,
    pub arch: Arch,
    /// The initramfs' file name in /boot.
    initrd_name: String,
}

impl KexecVolume {
    /// An x86_64 kexec volume (see the type's doc); its tree is in
    /// `scratch/<id>-tree`.
    pub fn new(scratch: &Scratch, id: &str) -> KexecVolume {
        KexecVolume::new_for(Arch::X86_64, scratch, id)
    }

    pub fn new_for(arch: Arch, scratch: &Scratch, id: &str) -> KexecVolume {
        let release = kernel_release(arch);
        // FNV-1a of the id: the same id, the same UUID.
        let h = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let uuid = format!("6b657865-6300-4000-8000-{:012x}", h & 0xffff_ffff_ffff);
        let tree = Tree::new(scratch.0.join(format!("{id}-tree")));
        tree.busybox_for(arch)
            .file(
                "/sbin/init",
                kexec_volume_init_script(arch, id).as_bytes(),
                0o755,
            )
            .file("/etc/volume-id", format!("{id}\n").as_bytes(), 0o644)
            .mkdir("/proc")
            .mkdir("/sys")
            .mkdir("/dev")
            .mkdir("/old-root")
            .copy(&format!("/boot/vmlinuz-{release}"), &arch.kernel(), 0o644);
        let initrd = kexec_initramfs(arch, &scratch.0.join(format!("{id}-initrd.img")));
        tree.copy(&format!("/boot/initrd.img-{release}"), &initrd, 0o644);
        KexecVolume {
            tree,
            uuid,
            release: release.clone(),
            arch,
            initrd_name: format!("initrd.img-{release}"),
        }
    }

    /// The kernel's path on the volume: `/boot/vmlinuz-RELEASE`.
    pub fn kernel_path(&self) -> String {
        format!("/boot/vmlinuz-{}", self.release)
    }

    /// The initramfs' path on the volume: `/boot/initrd.img-RELEASE`, or
    /// `/boot/initramfs-RELEASE.img` after [`KexecVolume::dracut_initrd_name`].
    pub fn initrd_path(&self) -> String {
        format!("/boot/{}", self.initrd_name)
    }

    /// The command line the volume's kernel needs: `root=UUID=<uuid> ro`,
    /// the console, `panic=-1` (a panic ends the guest), then `extra`.
    pub fn options(&self, extra: &str) -> String {
        let tty = match self.arch {
            Arch::X86_64 => "ttyS0",
            Arch::Aarch64 => "ttyAMA0",
        };
        format!("root=UUID={} ro console={tty} panic=-1 {extra}", self.uuid)
            .trim_end()
            .to_string()
    }

    /// Writes the Boot Loader Specification entry
    /// `/boot/loader/entries/NAME.conf` (`title`, `version`, `linux`,
    /// `initrd`, `options` = [`KexecVolume::options`] with `extra`). Paths in
    /// it are from the volume's root, as where /boot is no partition of its own.
    pub fn bls_entry(&self, name: &str, extra: &str) -> &Self {
        let conf = format!(
            "title Test volume {name}\nversion {}\nlinux {}\ninitrd {}\noptions {}\n",
            self.release,
            self.kernel_path(),
            self.initrd_path(),
            self.options(extra)
        );
        self.tree.file(
            &format!("/boot/loader/entries/{name}.conf"),
            conf.as_bytes(),
            0o644,
        );
        self
    }

    /// Debian's links in the volume's root: `/vmlinuz -> boot/vmlinuz-RELEASE`
    /// and `/initrd.img -> boot/initrd.img-RELEASE` (relative, as Debian's
    /// linux-update-symlinks makes them).
    pub fn debian_links(&self) -> &Self {
        self.tree
            .symlink("/vmlinuz", self.kernel_path().trim_start_matches('/'))
            .symlink("/initrd.img", self.initrd_path().trim_start_matches('/'));
        self
    }

    /// Renames the initramfs to dracut's `/boot/initramfs-RELEASE.img`
    /// (before any entry or link that names it is written).
    pub fn dracut_initrd_name(&mut self) -> &mut Self {
        let new = format!("initramfs-{}.img", self.release);
        std::fs::rename(
            self.tree.path(&self.initrd_path()),
            self.tree.path(&format!("/boot/{new}")),
        )
        .unwrap();
        self.initrd_name = new;
        self
    }

    /// Writes the volume's ext4 image (64 MiB, label `kexecvol`, the UUID).
    pub fn image(&self, scratch: &Scratch, name: &str) -> PathBuf {
        self.tree.ext4_args(
            &scratch.0.join(name),
            64,
            &["-L", "kexecvol", "-U", &self.uuid],
        )
    }
}
