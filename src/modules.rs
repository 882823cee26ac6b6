//! Kernel module loading without modprobe: resolve dependencies from
//! `modules.dep`, skip what is built in or loaded, `finit_module` the rest.
//! The resolution is pure code shared with `pivot-mkinitramfs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `finit_module` flag: the file is compressed; the kernel decompresses it.
pub const MODULE_INIT_COMPRESSED_FILE: i32 = 4;

/// A module's name as the kernel knows it: file name without `.ko[.xz|.zst|.gz]`,
/// dashes as underscores.
pub fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.split(".ko").next().unwrap_or(base);
    stem.replace('-', "_")
}

pub fn is_compressed(path: &str) -> bool {
    [".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .any(|e| path.ends_with(e))
}

/// `modules.dep`: module name -> (path, dependency paths).
#[derive(Debug, Default)]
pub struct DepMap {
    pub modules: BTreeMap<String, (String, Vec<String>)>,
}

impl DepMap {
    pub fn parse(text: &str) -> DepMap {
        let mut modules = BTreeMap::new();
        for line in text.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let path = path.trim();
            if path.is_empty() {
                continue;
            }
            let deps = deps.split_whitespace().map(str::to_string).collect();
            modules.insert(module_name(path), (path.to_string(), deps));
        }
        DepMap { modules }
    }

    /// The module files to load for `wanted`, dependencies first, each once.
    /// Names in `builtin` are skipped; an unknown name is an error.
    pub fn resolve(
        &self,
        wanted: &[String],
        builtin: &BTreeSet<String>,
    ) -> Result<Vec<String>, String> {
        let mut order = Vec::new();
        let mut done = BTreeSet::new();
        for w in wanted {
            let name = w.replace('-', "_");
            if builtin.contains(&name) {
                continue;
            }
            let Some((path, _)) = self.modules.get(&name) else {
                return Err(format!("module {w} not found in modules.dep"));
            };
            self.visit(path, &mut done, &mut order, 0)?;
        }
        Ok(order)
    }

    fn visit(
        &self,
        path: &str,
        done: &mut BTreeSet<String>,
        order: &mut Vec<String>,
        depth: usize,
    ) -> Result<(), String> {
        if depth > 64 {
            return Err(format!("dependency loop at {path}"));
        }
        if !done.insert(path.to_string()) {
            return Ok(());
        }
        if let Some((_, deps)) = self.modules.get(&module_name(path)) {
            for d in deps {
                self.visit(d, done, order, depth + 1)?;
            }
        }
        order.push(path.to_string());
        Ok(())
    }
}

/// Names of the built-in modules (`modules.builtin` lists their paths).
pub fn parse_builtin(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(module_name)
        .collect()
}

/// Loads `wanted` and their dependencies from `dir` (`/lib/modules/$(uname -r)`).
/// Returns how many were loaded; an error names the module and the reason.
pub fn load(dir: &Path, wanted: &[String]) -> Result<usize, String> {
    let dep_path = dir.join("modules.dep");
    let dep_text = std::fs::read_to_string(&dep_path)
        .map_err(|e| format!("cannot read {}: {e}", dep_path.display()))?;
    let deps = DepMap::parse(&dep_text);
    let builtin = std::fs::read_to_string(dir.join("modules.builtin"))
        .map(|t| parse_builtin(&t))
        .unwrap_or_default();
    let order = deps.resolve(wanted, &builtin)?;
    let mut loaded = 0;
    for rel in order {
        let name = module_name(&rel);
        if Path::new("/sys/module").join(&name).exists() {
            log::debug!("module {name} is already loaded");
            continue;
        }
        load_one(&dir.join(&rel), &name)?;
        loaded += 1;
    }
    Ok(loaded)
}

fn load_one(path: &PathBuf, name: &str) -> Result<(), String> {
    use rustix::fs::{Mode, OFlags};
    use rustix::io::Errno;
    let fd =
        rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).map_err(|e| {
            format!(
                "module {name}: cannot open {}: {}",
                path.display(),
                crate::error::ErrnoText(e)
            )
        })?;
    let compressed = is_compressed(&path.to_string_lossy());
    let flags = if compressed {
        MODULE_INIT_COMPRESSED_FILE
    } else {
        0
    };
    match rustix::system::finit_module(&fd, c"", flags) {
        Ok(()) => {
            log::info!("loaded module {name}");
            Ok(())
        }
        Err(Errno::EXIST) => Ok(()),
        Err(e) if compressed && matches!(e, Errno::INVAL | Errno::NOPKG | Errno::OPNOTSUPP) => {
            Err(format!(
                "module {name}: {} is compressed and this kernel cannot decompress modules \
             (no CONFIG_MODULE_DECOMPRESS): {}; ship it uncompressed",
                path.display(),
                crate::error::ErrnoText(e)
            ))
        }
        Err(e) => Err(format!(
            "module {name}: finit_module({}) failed: {}",
            path.display(),
            crate::error::ErrnoText(e)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko\n\
kernel/lib/libcrc32c.ko:\n\
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n\
kernel/drivers/virtio/virtio_ring.ko: kernel/drivers/virtio/virtio.ko\n\
kernel/drivers/virtio/virtio.ko:\n\
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n\
kernel/drivers/virtio/virtio_pci_modern_dev.ko:\n\
kernel/drivers/scsi/sd_mod.ko.xz: kernel/drivers/scsi/scsi_common.ko\n\
kernel/drivers/scsi/scsi_common.ko:\n\
garbage line\n";

    #[test]
    fn names() {
        assert_eq!(module_name("kernel/drivers/scsi/sd_mod.ko.xz"), "sd_mod");
        assert_eq!(module_name("crc32c-intel.ko"), "crc32c_intel");
        assert!(is_compressed("a.ko.zst") && !is_compressed("a.ko"));
    }

    #[test]
    fn dependencies_first_each_once() {
        let m = DepMap::parse(DEP);
        let order = m
            .resolve(
                &["virtio_pci".into(), "virtio-blk".into()],
                &BTreeSet::new(),
            )
            .unwrap();
        assert_eq!(
            order,
            vec![
                "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
                "kernel/drivers/virtio/virtio.ko",
                "kernel/drivers/virtio/virtio_ring.ko",
                "kernel/drivers/virtio/virtio_pci.ko",
                "kernel/drivers/block/virtio_blk.ko",
            ]
        );
        let order = m.resolve(&["sd_mod".into()], &BTreeSet::new()).unwrap();
        assert_eq!(
            order,
            vec![
                "kernel/drivers/scsi/scsi_common.ko",
                "kernel/drivers/scsi/sd_mod.ko.xz"
            ]
        );
    }

    #[test]
    fn builtin_skipped_unknown_refused() {
        let m = DepMap::parse(DEP);
        let builtin = parse_builtin("kernel/drivers/nvme/host/nvme.ko\n");
        assert_eq!(
            m.resolve(&["nvme".into()], &builtin).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            m.resolve(&["no_such_mod".into()], &builtin).unwrap_err(),
            "module no_such_mod not found in modules.dep"
        );
    }

    #[test]
    fn loops_end() {
        let m = DepMap::parse("a.ko: b.ko\nb.ko: a.ko\n");
        assert_eq!(
            m.resolve(&["a".into()], &BTreeSet::new()).unwrap(),
            vec!["b.ko", "a.ko"]
        );
    }
}
