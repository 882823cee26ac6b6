//! The running kernel's modules follow the boot onto the volume. In a
//! machine image the kernel comes from the boot disk, and so do its modules
//! (`/lib/modules/$(uname -r)`); a volume installed for another kernel has
//! none for it. Before the switch the boot disk's tree is bind-mounted,
//! read-only, where the volume's would be; likewise `/lib/firmware` when
//! the volume has none at all.

use std::path::{Path, PathBuf};

use crate::config::{Config, Kmods};
use crate::error::Result;
use crate::modules::module_dir;
use crate::sys::{self, MountFlags, Resolve, Sys};

/// Machine image: the boot disk's module tree (and firmware) for the
/// running kernel onto the volume mounted at `cfg.new_root`, read-only,
/// when `pivot.kmods` says so. Returns the mounts made, innermost last
/// (undone with [`unbind`]); a bind that fails is a warning: the volume
/// goes on without it.
pub fn bind_trees(sys: &dyn Sys, cfg: &Config) -> Vec<PathBuf> {
    let mut made = Vec::new();
    if cfg.initramfs {
        return made;
    }
    let release = sys.kernel_release();
    let modules = module_dir(&release);
    let vol = cfg.new_root.as_path();
    let in_vol = |p: &Path| sys::in_root(vol, &resolve_in_volume(sys, vol, p));
    // Resolving where the tree would go walks the volume's paths: only
    // when it is bound (one open tells whether the volume has one).
    let trees = Trees {
        boot: sys.is_dir(&modules),
        volume: sys.open_in(vol, &modules, Resolve::DirInRoot).is_ok(),
    };
    if !should_bind(cfg.kmods, trees) {
        match (trees.volume, cfg.kmods) {
            (true, _) => log::info!("modules for {release}: the volume's own"),
            (false, Kmods::Volume) if trees.boot => {
                log::info!("modules for {release}: none on the volume (pivot.kmods=volume)")
            }
            _ => log::debug!("modules for {release}: none on the boot disk either"),
        }
        return made;
    }
    let why = if trees.volume {
        "pivot.kmods=boot"
    } else {
        "the volume has none"
    };
    match bind_read_only(sys, &modules, &in_vol(&modules), vol) {
        Ok(m) => {
            made.extend(m);
            log::info!("modules for {release} from the boot disk ({why})");
        }
        Err(e) => log::warn!("{e}; the volume goes on without modules for {release}"),
    }
    let firmware = Path::new("/lib/firmware");
    let fw_to = in_vol(firmware);
    if sys.is_dir(firmware) && !sys.is_dir(&fw_to) {
        match bind_read_only(sys, firmware, &fw_to, vol) {
            Ok(m) => {
                made.extend(m);
                log::info!("firmware from the boot disk (the volume has none)");
            }
            Err(e) => log::warn!("{e}; the volume goes on without firmware"),
        }
    }
    made
}

/// Unmounts what [`bind_trees`] mounted onto the volume, innermost first.
pub fn unbind(sys: &dyn Sys, bound: &mut Vec<PathBuf>) {
    while let Some(p) = bound.pop() {
        if let Err(e) = sys.unmount(&p) {
            log::warn!("{e}");
        }
    }
}

/// What the boot root and the volume have, as far as the decision goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trees {
    /// The boot root has `/lib/modules/RELEASE`.
    pub boot: bool,
    /// The volume has `/lib/modules/RELEASE` (after its symlinks).
    pub volume: bool,
}

/// Whether to bind the boot disk's module tree onto the volume.
pub fn should_bind(mode: Kmods, t: Trees) -> bool {
    t.boot
        && match mode {
            Kmods::Auto => !t.volume,
            Kmods::Volume => false,
            Kmods::Boot => true,
        }
}

/// A path as the volume resolves it (`/lib` -> `/usr/lib`), absolute inside
/// the volume, for a directory that may not exist yet: the longest existing
/// prefix is resolved inside the volume, the rest appended.
pub fn resolve_in_volume(sys: &dyn Sys, root: &Path, p: &Path) -> PathBuf {
    let mut existing = p.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(f) = sys.open_in(root, &existing, Resolve::DirInRoot)
            && let Some(real) = sys.path_in(&f, root)
        {
            let mut out = real;
            for c in rest.iter().rev() {
                out.push(c);
            }
            return out;
        }
        match (
            existing.file_name().map(|n| n.to_owned()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return p.to_path_buf(),
        }
    }
}

/// Binds `from` (on the boot root) read-only onto `to` (a path inside the
/// mounted volume), making the directory first; when the volume cannot take
/// a new directory (read-only), over a tmpfs on the nearest existing parent
/// inside `within`. Returns the mounts made, innermost last.
pub fn bind_read_only(s: &dyn Sys, from: &Path, to: &Path, within: &Path) -> Result<Vec<PathBuf>> {
    let mut made = Vec::new();
    if let Err(e) = mkdir_p(s, to) {
        // The nearest existing directory gets a small tmpfs to hold the mount point.
        let Some(base) = to
            .ancestors()
            .skip(1)
            .find(|a| s.is_dir(a) && a.starts_with(within))
        else {
            return Err(e);
        };
        if base == within {
            return Err(e);
        }
        s.mount(
            Path::new("tmpfs"),
            base,
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
            "mode=0755,size=64k",
        )?;
        made.push(base.to_path_buf());
        mkdir_p(s, to)?;
    }
    s.mount(from, to, "", MountFlags::BIND, "")?;
    made.push(to.to_path_buf());
    s.remount(to, MountFlags::BIND | MountFlags::RDONLY, "")?;
    Ok(made)
}

fn mkdir_p(s: &dyn Sys, p: &Path) -> Result<()> {
    let missing: Vec<&Path> = p.ancestors().take_while(|a| !s.is_dir(a)).collect();
    for d in missing.iter().rev() {
        s.mkdir(d)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Errno;
    use crate::sys::fake::FakeSys;

    #[test]
    fn the_decision() {
        let t = |boot, volume| Trees { boot, volume };
        assert!(should_bind(Kmods::Auto, t(true, false)));
        assert!(!should_bind(Kmods::Auto, t(true, true)));
        assert!(!should_bind(Kmods::Auto, t(false, false)));
        assert!(!should_bind(Kmods::Volume, t(true, false)));
        assert!(should_bind(Kmods::Boot, t(true, true)));
        assert!(!should_bind(Kmods::Boot, t(false, true)));
        assert_eq!(Kmods::parse("boot"), Ok(Kmods::Boot));
        assert!(Kmods::parse("both").is_err());
    }

    #[test]
    fn binds_over_a_new_directory() {
        let s = FakeSys::default()
            .with_dir("/new-root")
            .with_dir("/new-root/usr/lib")
            .with_dir("/new-root/usr");
        let made = bind_read_only(
            &s,
            Path::new("/lib/modules/6.1"),
            Path::new("/new-root/usr/lib/modules/6.1"),
            Path::new("/new-root"),
        )
        .unwrap();
        assert_eq!(made, [PathBuf::from("/new-root/usr/lib/modules/6.1")]);
        assert_eq!(
            s.log(),
            [
                "mkdir /new-root/usr/lib/modules",
                "mkdir /new-root/usr/lib/modules/6.1",
                "mount /lib/modules/6.1 /new-root/usr/lib/modules/6.1 ",
                "remount /new-root/usr/lib/modules/6.1 ro",
            ]
        );
    }

    #[test]
    fn a_read_only_volume_gets_a_tmpfs_for_the_mount_point() {
        let s = FakeSys::default()
            .fail_once("mkdir /new-root/lib/modules/6.1", Errno::ROFS)
            .with_dir("/new-root")
            .with_dir("/new-root/lib")
            .with_dir("/new-root/lib/modules");
        let made = bind_read_only(
            &s,
            Path::new("/lib/modules/6.1"),
            Path::new("/new-root/lib/modules/6.1"),
            Path::new("/new-root"),
        )
        .unwrap();
        assert_eq!(
            made,
            [
                PathBuf::from("/new-root/lib/modules"),
                PathBuf::from("/new-root/lib/modules/6.1")
            ]
        );
        assert_eq!(
            s.log(),
            [
                "mkdir /new-root/lib/modules/6.1",
                "mount tmpfs /new-root/lib/modules tmpfs",
                "mkdir /new-root/lib/modules/6.1",
                "mount /lib/modules/6.1 /new-root/lib/modules/6.1 ",
                "remount /new-root/lib/modules/6.1 ro",
            ]
        );
        // Nothing of the volume to hang a tmpfs on: the error is the caller's.
        let s = FakeSys::default()
            .fail("mkdir", Errno::ROFS)
            .with_dir("/new-root");
        assert!(
            bind_read_only(
                &s,
                Path::new("/lib/modules/6.1"),
                Path::new("/new-root/lib/modules/6.1"),
                Path::new("/new-root"),
            )
            .is_err()
        );
    }
}
