//! The boot: one context value ([`Boot`]) that owns everything the boot
//! learns and holds, and the pipeline over named stages that reads
//! top to bottom in [`Boot::pipeline`].

use std::convert::Infallible;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use crate::config::{self, Config, OnFail};
use crate::error::{ErrnoText, Error, Result};
use crate::modules::Loader;
use crate::mountopts::MountOpts;
use crate::policy::{self, Have};
use crate::preflight::HookCheck;
use crate::sys::{self, Halt, MountFlags, RealSys, Sys, UeventSocket, process};
use crate::verify::CheckedInit;
use crate::wait::{self, Found, Nodes, SysBlock, Want};
use crate::{exec, hook, kmods, kmsg, modules, mount, preflight, switch};

/// The stages, in order; the current one names a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Config,
    Prepare,
    Modules,
    Wait,
    Node,
    Mount,
    Check,
    Hook,
    Switch,
    Exec,
}

impl Stage {
    pub const ALL: [Stage; 10] = [
        Stage::Config,
        Stage::Prepare,
        Stage::Modules,
        Stage::Wait,
        Stage::Node,
        Stage::Mount,
        Stage::Check,
        Stage::Hook,
        Stage::Switch,
        Stage::Exec,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Config => "config",
            Stage::Prepare => "prepare",
            Stage::Modules => "modules",
            Stage::Wait => "wait",
            Stage::Node => "node",
            Stage::Mount => "mount",
            Stage::Check => "check",
            Stage::Hook => "hook",
            Stage::Switch => "switch",
            Stage::Exec => "exec",
        }
    }

    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// What the failure policy needs, kept where the panic hook can reach it:
/// the one piece of global state. [`Boot`] updates it as the boot goes.
#[derive(Clone)]
struct Snapshot {
    cfg: Config,
    argv: Vec<OsString>,
    stage: Stage,
    mounted: Option<PathBuf>,
    changes: Vec<&'static str>,
    switched: bool,
}

impl Snapshot {
    /// Before the config is read: defaults and PID 1's arguments.
    fn initial(argv: Vec<OsString>) -> Snapshot {
        Snapshot {
            cfg: Config::default(),
            argv,
            stage: Stage::Config,
            mounted: None,
            changes: Vec::new(),
            switched: false,
        }
    }
}

static PANIC_VIEW: Mutex<Option<Snapshot>> = Mutex::new(None);

/// The boot's state: the config, PID 1's arguments, where the boot is, what
/// it has mounted and switched, and what it holds open.
pub struct Boot {
    cfg: Config,
    /// The kernel command line as the config stage read it.
    cmdline: String,
    argv: Vec<OsString>,
    sys: RealSys,
    stage: Stage,
    t0: Instant,
    /// Each stage's duration, for the summary line (every log line is a
    /// synchronous console write, which would slow the switch itself).
    timings: Vec<(Stage, u128)>,
    cpu_at_start: Option<u64>,
    /// The volume's mount point while it is mounted (undone on failure).
    mounted: Option<PathBuf>,
    /// What the boot did to the volume since it mounted it read-only
    /// (`mounted read-write`, `the hook ran`); empty: it is unchanged.
    changes: Vec<&'static str>,
    /// pivot_root or switch_root happened: the boot root is no longer `/`.
    switched: bool,
    /// The API mounts the switch moves into the new root (found at the check).
    moved: Vec<&'static str>,
    /// What was mounted onto the volume (the boot disk's module tree), innermost last.
    bound: Vec<PathBuf>,
    /// The exec failed after the switch and the switch was undone (or why not).
    undo: Option<std::result::Result<(), String>>,
    /// Subscribed once, before the first scan; closed just before the switch.
    uevents: Option<UeventSocket>,
    /// The API filesystems pivot-init mounted itself.
    api_mounted: Vec<&'static str>,
    loader: Option<Loader>,
}

/// PID 1's entry point, with its arguments (`argv`, as the kernel passed
/// them). Never returns.
pub fn run(argv: Vec<OsString>) -> ! {
    kmsg::init();
    // The panic hook's view exists from the start: what it execs again.
    let initial = Snapshot::initial(argv);
    if let Ok(mut v) = PANIC_VIEW.lock() {
        *v = Some(initial.clone());
    }
    std::panic::set_hook(Box::new(|info| {
        let msg = match info.location() {
            Some(l) => format!("{info} at {}:{}", l.file(), l.line()),
            None => info.to_string(),
        };
        let snap = PANIC_VIEW.try_lock().ok().and_then(|g| g.clone());
        let mut boot = Boot::from_snapshot(snap.unwrap_or_else(|| Snapshot::initial(Vec::new())));
        boot.fail(Error::Panic { msg });
        // The shell was left: start over (this binary from the top) rather
        // than return, which would abort PID 1.
        let e = exec::exec(Path::new("/proc/self/exe"), &boot.argv);
        log::error!("{e}; waiting forever");
        process::wait_forever()
    }));
    // The Rust runtime ignores SIGPIPE; what PID 1 starts must not inherit that.
    sys::signals::reset_all();
    // Ctrl-Alt-Del becomes a SIGINT that the wait takes as a reboot request.
    sys::signals::ctrl_alt_del_reboots(false);
    let mut boot = Boot::start(initial);
    loop {
        let err = match boot.pipeline() {
            Ok(never) => match never {},
            Err(e) => e,
        };
        boot.fail(err);
        // Only the shell action comes back here.
        log::info!("the shell exited; retrying the boot from the wait stage");
    }
}

impl Boot {
    fn from_snapshot(snap: Snapshot) -> Boot {
        Boot {
            cfg: snap.cfg,
            cmdline: String::new(),
            argv: snap.argv,
            sys: RealSys,
            stage: snap.stage,
            t0: Instant::now(),
            timings: Vec::new(),
            cpu_at_start: None,
            mounted: snap.mounted,
            changes: snap.changes,
            switched: snap.switched,
            moved: Vec::new(),
            bound: Vec::new(),
            undo: None,
            uevents: None,
            api_mounted: Vec::new(),
            loader: None,
        }
    }

    /// The config and prepare stages: /proc, the settings, /sys, /dev, the log.
    fn start(initial: Snapshot) -> Boot {
        let mut boot = Boot::from_snapshot(initial);
        boot.publish();
        let t = Instant::now();
        let api = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
        boot.mount_api("proc", "/proc", "proc", api, "");

        // An initramfs is a ramfs/tmpfs root; a machine image boots from a disk.
        let (cfg, warnings, cmdline) = config::read_boot_config(sys::root_is_ram());
        boot.cfg = cfg;
        boot.cmdline = cmdline;
        boot.publish_config();
        if boot.stats() {
            // PID 1's CPU counters include the kernel's own init work before exec.
            boot.cpu_at_start = sys::cpu_us();
        }
        boot.timings.push((Stage::Config, t.elapsed().as_millis()));
        boot.enter(Stage::Prepare);
        let t = Instant::now();
        boot.prepare(&warnings);
        boot.timings.push((Stage::Prepare, t.elapsed().as_millis()));
        boot
    }

    fn prepare(&mut self, warnings: &[String]) {
        let api = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
        self.mount_api("sysfs", "/sys", "sysfs", api, "");
        if self.cfg.devtmpfs {
            self.mount_api(
                "devtmpfs",
                "/dev",
                "devtmpfs",
                MountFlags::NOSUID,
                "mode=0755",
            );
        }
        sys::ensure_console_fds();
        // Lift the kernel's rate limit on /dev/kmsg writers so no line is lost
        // (refused when printk.devkmsg= is on the command line: that wins).
        let _ = std::fs::write("/proc/sys/kernel/printk_devkmsg", "on\n");
        if !kmsg::open_kmsg() {
            log::warn!("cannot open /dev/kmsg; logging to the console");
        }
        kmsg::set_level(self.cfg.loglevel);
        log::info!(
            "pivot-init {} starting as PID {} ({} mode)",
            env!("CARGO_PKG_VERSION"),
            sys::getpid(),
            if self.cfg.initramfs {
                "initramfs"
            } else {
                "machine image"
            }
        );
        for w in warnings {
            log::warn!("{w}");
        }
    }

    /// Ctrl-Alt-Del or SIGPWR while waiting: a request, not a failure. Logs
    /// it, unmounts what pivot-init mounted, syncs and reboots or powers off.
    fn honor(&mut self, how: Halt) -> ! {
        log::warn!(
            "{}: syncing, unmounting what pivot-init mounted, then {}",
            Error::Requested(how),
            match how {
                Halt::Reboot => "rebooting",
                Halt::PowerOff => "powering off",
            }
        );
        for m in self.api_mounted.iter().rev() {
            let _ = self.sys.unmount(Path::new(m));
        }
        let e = self.sys.halt(how);
        log::error!("{e}; PID 1 waits");
        process::wait_forever()
    }

    /// Mounts an API filesystem unless something is mounted there already.
    fn mount_api(
        &mut self,
        src: &str,
        target: &'static str,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) {
        let p = Path::new(target);
        if self.sys.is_mount_point(p) {
            return;
        }
        if !self.sys.is_dir(p)
            && let Err(e) = self.sys.mkdir(p)
        {
            log::error!("{e}");
            return;
        }
        match self.sys.mount(Path::new(src), p, fstype, flags, data) {
            Ok(()) => {
                log::debug!("mounted {fstype} on {target}");
                self.api_mounted.push(target);
            }
            Err(e) => log::error!("{e}"),
        }
    }

    /// `pivot.stats=1`: the summary line also reads what only it needs (CPU
    /// time, peak memory: /proc/self/*, a few ms under TCG).
    fn stats(&self) -> bool {
        self.cfg.stats
    }

    /// Tells the panic hook where the boot is (the config and arguments
    /// once, in [`Boot::publish_config`]; the state at each change).
    fn publish(&self) {
        if let Ok(mut v) = PANIC_VIEW.lock() {
            match v.as_mut() {
                Some(snap) => {
                    snap.stage = self.stage;
                    snap.mounted.clone_from(&self.mounted);
                    snap.changes.clone_from(&self.changes);
                    snap.switched = self.switched;
                }
                None => *v = Some(self.snapshot()),
            }
        }
    }

    /// Gives the panic hook the whole boot, config included.
    fn publish_config(&self) {
        if let Ok(mut v) = PANIC_VIEW.lock() {
            *v = Some(self.snapshot());
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            cfg: self.cfg.clone(),
            argv: self.argv.clone(),
            stage: self.stage,
            mounted: self.mounted.clone(),
            changes: self.changes.clone(),
            switched: self.switched,
        }
    }

    fn enter(&mut self, stage: Stage) {
        self.stage = stage;
        self.publish();
        if self.cfg.debug_panic == Some(stage) {
            panic!("pivot.debug_panic={} asked for a panic here", stage.name());
        }
    }

    /// Runs `f` as one stage and records how long it took.
    fn stage<T>(&mut self, s: Stage, f: impl FnOnce(&mut Boot) -> Result<T>) -> Result<T> {
        self.enter(s);
        let t = Instant::now();
        let r = f(self);
        let ms = t.elapsed().as_millis();
        log::debug!("stage {} took {ms} ms", s.name());
        self.timings.push((s, ms));
        r
    }

    /// The pipeline from the modules to the exec. Returns only on failure.
    fn pipeline(&mut self) -> Result<Infallible> {
        self.timings.truncate(2);
        if !self.cfg.modules.is_empty() || (self.cfg.coldplug_on() && has_module_aliases()) {
            self.stage(Stage::Modules, Boot::load_modules)?;
        }
        let found = match self.stage(Stage::Wait, Boot::wait) {
            Err(Error::Requested(how)) => self.honor(how),
            r => r?,
        };
        let node = self.stage(Stage::Node, |b| {
            wait::ensure_node(&mut b.sys, Path::new("/dev"), &found.dev)
        })?;
        let fstype = self.stage(Stage::Mount, |b| b.mount(&node, &found))?;
        // The commit point: nothing of the volume runs and nothing on it
        // changes before its init and hook are checked.
        let (init, hook) = self.stage(Stage::Check, Boot::check_and_commit)?;
        self.stage(Stage::Hook, |b| b.run_hook(hook, &node, &fstype))?;
        self.note_late_matches(&found.dev);
        let how = self.stage(Stage::Switch, Boot::switch)?;
        self.enter(Stage::Exec);
        let reaped = process::reap_children();
        if reaped > 0 {
            log::info!("reaped {reaped} leftover child process(es)");
        }
        self.summary(&node, &fstype, &how, &found, &init.path);
        let err = self.exec(&init);
        // The open init keeps the volume busy: close it before any undo.
        drop(init);
        if self.switched && !self.cfg.initramfs {
            self.undo_switch();
        }
        Err(err)
    }

    /// Loads `pivot.modules` (an error is fatal) and, with coldplug, the
    /// drivers of the devices present; keeps the loader for drivers of
    /// devices that come later. Without a module tree, coldplug alone is
    /// quietly skipped.
    fn load_modules(&mut self) -> Result<()> {
        // Subscribed before coldplug: a device that a driver loaded now
        // creates (virtio_pci makes the virtio devices) is announced on it,
        // and the wait loads its driver in turn.
        if self.uevents.is_none() {
            self.uevents = Some(UeventSocket::subscribe()?);
        }
        let dir = module_dir();
        let conf = modules::ModConfig::read(
            &dir,
            &modules::MODPROBE_DIRS,
            &config::split_cmdline(&self.cmdline),
        );
        let loader = match modules::Loader::open(&dir, conf) {
            Ok(l) => l,
            Err(e) if self.cfg.modules.is_empty() => {
                log::debug!("no coldplug: {e}");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        if !self.cfg.modules.is_empty() {
            let n = loader.load(&self.cfg.modules)?;
            log::info!("loaded {n} module(s) for {}", self.cfg.modules.join(","));
        }
        if self.cfg.coldplug_on() {
            let n = loader.coldplug(Path::new("/sys/bus"));
            if n > 0 {
                log::info!("coldplug: loaded {n} module(s) for the devices present");
            }
        }
        self.loader = Some(loader);
        Ok(())
    }

    /// Subscribes to uevents (once, kept across retries), then waits.
    fn wait(&mut self) -> Result<Found> {
        let spec = self.cfg.root.as_ref().ok_or(Error::NoRootSpec)?;
        let sock = match self.uevents.take() {
            Some(s) => s,
            None => UeventSocket::subscribe()?,
        };
        let sysfs = block_devices();
        let want = Want {
            spec,
            fstypes: &self.cfg.fstypes,
        };
        let loader = self.loader.as_ref();
        let mut hotplug = |modalias: &str| {
            if let Some(l) = loader {
                l.load_for(modalias);
            }
        };
        // Signals come through a descriptor while waiting, and only then:
        // dropping it unblocks them before anything is started.
        let signals = sys::SignalFd::new()
            .map_err(|e| {
                log::warn!(
                    "no signalfd ({}): children are reaped at the exec",
                    ErrnoText(e)
                )
            })
            .ok();
        let found = wait::wait_for(
            &sock,
            signals.as_ref(),
            &want,
            &sysfs,
            self.cfg.timeout_secs,
            self.stats(),
            &mut hotplug,
        );
        self.uevents = Some(sock);
        found
    }

    /// Mounts the volume read-only: the checks read it, nothing writes it.
    /// A journal that needs recovery would be replayed even by a read-only
    /// mount, so such a volume is mounted as configured, and the log says so.
    /// Devices that match too but came after the volume was chosen: logged.
    fn note_late_matches(&mut self, chosen: &wait::Device) {
        if let (Some(sock), Some(spec)) = (&self.uevents, &self.cfg.root) {
            let want = Want {
                spec,
                fstypes: &self.cfg.fstypes,
            };
            wait::late_matches(sock, &want, &block_devices(), chosen);
        }
        // Done with uevents: closed here, not by the exec.
        self.uevents = None;
    }

    fn mount(&mut self, node: &Path, found: &Found) -> Result<String> {
        let probed = mount::known_filesystem(node, found.fs.clone(), &self.cfg.fstypes)?;
        let opts = &self.cfg.mount_opts;
        let replay = probed.as_ref().is_some_and(|p| p.needs_replay);
        let first = if replay {
            log::warn!(
                "{}: its journal needs recovery, which even a read-only mount writes; \
                 mounting it {} before the checks",
                node.display(),
                opts.describe()
            );
            opts.clone()
        } else {
            MountOpts {
                flags: opts.flags | MountFlags::RDONLY,
                data: opts.data.clone(),
            }
        };
        let fstype = mount::mount_volume(&mut self.sys, &self.cfg, &first, node, probed)?;
        self.mounted = Some(self.cfg.new_root.clone());
        if replay {
            self.changes.push("its journal was replayed");
        }
        self.publish();
        Ok(fstype)
    }

    /// The check stage: the init (and its interpreters) and the hook are
    /// checked on the read-only volume; then the volume is accepted and
    /// remounted with the configured flags.
    fn check_and_commit(&mut self) -> Result<(CheckedInit, HookCheck)> {
        // The API mounts the switch will carry over: they cover the volume's
        // directories of the same names (the init must not live there).
        self.moved = self.api_mounts();
        let init = preflight::init(&self.cfg.new_root, &self.cfg, &self.moved)?;
        log::debug!("checked init {}", init.path.display());
        let hook = preflight::hook(&self.cfg.new_root, self.cfg.hook.as_deref());
        let opts = &self.cfg.mount_opts;
        if !opts.read_only() && self.changes.is_empty() {
            self.sys
                .remount(&self.cfg.new_root, opts.flags, &opts.data)?;
            self.changes.push("mounted read-write");
            self.publish();
            log::debug!(
                "remounted {} {}",
                self.cfg.new_root.display(),
                opts.describe()
            );
        }
        Ok((init, hook))
    }

    fn run_hook(&mut self, hook: HookCheck, node: &Path, fstype: &str) -> Result<()> {
        let ran = hook::run(&self.cfg, hook, node, fstype);
        if !matches!(ran, Ok(false)) {
            self.changes.push("the hook ran");
            self.publish();
        }
        ran.map(|_| ())
    }

    /// The API filesystems mounted now: the switch carries them over.
    fn api_mounts(&mut self) -> Vec<&'static str> {
        switch::API_MOUNTS
            .into_iter()
            .filter(|m| self.sys.is_mount_point(Path::new(m)))
            .collect()
    }

    /// Machine image: the boot disk's module tree (and firmware) for the
    /// running kernel onto the volume, read-only, when `pivot.kmods` says so.
    fn bind_kernel_trees(&mut self) {
        if self.cfg.initramfs {
            return;
        }
        let release = sys::kernel_release();
        let modules = Path::new("/lib/modules").join(&release);
        let vol = self.cfg.new_root.clone();
        let in_vol = |p: &Path| sys::in_root(&vol, &kmods::resolve_in_volume(&vol, p));
        // Resolving where the tree would go walks the volume's paths: only
        // when it is bound (one open tells whether the volume has one).
        let trees = kmods::Trees {
            boot: sys::is_dir(&modules),
            volume: sys::open_dir_in_root(&vol, &modules).is_ok(),
        };
        if !kmods::should_bind(self.cfg.kmods, trees) {
            match (trees.volume, self.cfg.kmods) {
                (true, _) => log::info!("modules for {release}: the volume's own"),
                (false, kmods::Kmods::Volume) if trees.boot => {
                    log::info!("modules for {release}: none on the volume (pivot.kmods=volume)")
                }
                _ => log::debug!("modules for {release}: none on the boot disk either"),
            }
            return;
        }
        let to = in_vol(&modules);
        let why = if trees.volume {
            "pivot.kmods=boot"
        } else {
            "the volume has none"
        };
        match kmods::bind_read_only(&mut self.sys, &modules, &to, &vol) {
            Ok(made) => {
                self.bound.extend(made);
                log::info!("modules for {release} from the boot disk ({why})");
            }
            Err(e) => log::warn!("{e}; the volume goes on without modules for {release}"),
        }
        let firmware = Path::new("/lib/firmware");
        let fw_to = in_vol(firmware);
        if sys::is_dir(firmware) && !sys::is_dir(&fw_to) {
            match kmods::bind_read_only(&mut self.sys, firmware, &fw_to, &vol) {
                Ok(made) => {
                    self.bound.extend(made);
                    log::info!("firmware from the boot disk (the volume has none)");
                }
                Err(e) => log::warn!("{e}; the volume goes on without firmware"),
            }
        }
    }

    /// Unmounts what was mounted onto the volume, innermost first.
    fn unbind_kernel_trees(&mut self) {
        while let Some(p) = self.bound.pop() {
            if let Err(e) = self.sys.unmount(&p) {
                log::warn!("{e}");
            }
        }
    }

    /// Switches the root; returns how, for the summary line.
    fn switch(&mut self) -> Result<String> {
        self.bind_kernel_trees();
        let moves = self.moved.clone();
        let (new_root, old_root) = (&self.cfg.new_root, &self.cfg.old_root);
        let mut how = if self.cfg.initramfs {
            // A failure here runs the normal policy (a shell if one is left, else wait).
            match switch::switch_initramfs(&mut self.sys, new_root, &moves)? {
                switch::How::PivotRoot => "pivot_root (initramfs detached)".to_string(),
                switch::How::SwitchRoot => "switch_root".to_string(),
            }
        } else {
            switch::switch(&mut self.sys, new_root, old_root, &moves)?;
            format!("pivot_root, boot root at {}", old_root.display())
        };
        self.switched = true;
        self.publish();
        how.push_str(&format!(", moved {}", moves.join(" ")));
        Ok(how)
    }

    /// Machine image: the init could not be executed after the switch; put
    /// the boot root back so the failure policy can run on it.
    fn undo_switch(&mut self) {
        let r = switch::undo(
            &mut self.sys,
            &self.cfg.new_root,
            &self.cfg.old_root,
            &self.moved,
        );
        self.undo = Some(match r {
            Ok(()) => {
                self.switched = false;
                self.publish();
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        });
    }

    /// The last line before `exec`: device, how, times, CPU, memory.
    fn summary(&self, node: &Path, fstype: &str, how: &str, found: &Found, init: &Path) {
        let stages: Vec<String> = self
            .timings
            .iter()
            .map(|(s, ms)| format!("{} {ms}", s.name()))
            .collect();
        let mut line = format!(
            "switched to {} ({fstype}) by {how}; uevent to exec {} ms; start to exec {} ms (uptime {} ms); \
             stages {} ms",
            node.display(),
            ms3(found.at.elapsed().as_micros()),
            self.t0.elapsed().as_millis(),
            sys::uptime_ms(),
            stages.join(", "),
        );
        if self.stats() {
            let cpu_total = sys::cpu_us()
                .zip(self.cpu_at_start)
                .map(|(a, b)| a.saturating_sub(b));
            // While waiting: from the first sleep to the device's uevent
            // (nothing when the first scan found it).
            let waiting = match found.idle {
                None => "0 ms while waiting (present at once)".to_string(),
                Some(idle) => format!(
                    "{} ms while waiting ({} wake-ups)",
                    idle.cpu_us.map_or("?".to_string(), |us| ms3(us.into())),
                    idle.wakeups
                ),
            };
            line.push_str(&format!(
                "; cpu {waiting}, {} ms since start; VmHWM {} KiB",
                cpu_total.map_or("?".to_string(), |us| ms3(us.into())),
                sys::vm_hwm_kib().map_or("?".to_string(), |k| k.to_string()),
            ));
        }
        log::info!("{line}; exec {}", init.display());
    }

    /// Execs the checked init. In an initramfs, where the switch cannot be
    /// undone, the other candidates are tried if that still fails.
    fn exec(&self, init: &CheckedInit) -> Error {
        let mut last = if self.cfg.debug_exec_fail {
            Error::Exec {
                path: init.path.clone(),
                errno: sys::Errno::NOEXEC,
            }
        } else {
            exec::exec_checked(init, &self.argv)
        };
        if !self.cfg.initramfs {
            return last;
        }
        for c in exec::candidates(&self.cfg.init, true) {
            if c != init.path && exec::executable_in(Path::new("/"), &c) {
                log::error!("{last}; trying {}", c.display());
                last = exec::exec(&c, &self.argv);
            }
        }
        last
    }

    /// The failure policy: log one status line
    /// `FAILED at <stage>: <reason>; action: <action>`, undo the mount, then
    /// run the action. Returns only after the shell action's shell exits (the
    /// caller retries the boot); every other action never returns.
    fn fail(&mut self, err: Error) {
        let root = Path::new("/");
        let have = Have {
            old_init: exec::executable_in(root, &self.cfg.old_init),
            shell: exec::executable_in(root, Path::new("/bin/sh")),
        };
        let d = policy::decide(self.cfg.onfail, self.cfg.initramfs, self.switched, have);
        for skipped in &d.unusable {
            match skipped {
                OnFail::OldInit => {
                    log::warn!("no usable old init at {}", self.cfg.old_init.display())
                }
                _ => log::warn!("no usable shell at /bin/sh"),
            }
        }
        let what = match &self.undo {
            Some(Err(why)) => format!("wait (the switch could not be undone: {why})"),
            Some(Ok(())) => format!("{} (switch undone)", d.describe(&self.cfg.old_init)),
            None => d.describe(&self.cfg.old_init),
        };
        log::error!("FAILED at {}: {err}; action: {what}", self.stage.name());
        if d.switched {
            process::wait_forever();
        }
        self.undo = None;
        if let Some(target) = self.mounted.take() {
            self.publish();
            self.unbind_kernel_trees();
            unmount_volume(&mut self.sys, &target, &self.changes);
        }
        self.changes.clear();
        self.carry_out(d.action);
    }

    fn carry_out(&mut self, action: OnFail) {
        match action {
            OnFail::OldInit => {
                let e = exec::exec(&self.cfg.old_init, &self.argv);
                log::error!("{e}");
            }
            OnFail::Shell => match process::run_console_shell(Path::new("/bin/sh")) {
                Ok(status) => {
                    log::info!("/bin/sh ended: {status}");
                    process::reap_children();
                    return;
                }
                Err(e) => log::error!("cannot run /bin/sh: {}", ErrnoText(e)),
            },
            OnFail::Reboot | OnFail::PowerOff => {
                let how = if action == OnFail::Reboot {
                    Halt::Reboot
                } else {
                    Halt::PowerOff
                };
                let e = self.sys.halt(how);
                log::error!("{e}");
            }
            OnFail::Wait => {}
        }
        log::error!("nothing left to run; PID 1 waits");
        process::wait_forever()
    }
}

/// Unmounts the volume after a failure (from `/`, so that our cwd does not
/// hold it) and says what was done to it.
fn unmount_volume(s: &mut dyn Sys, target: &Path, changes: &[&str]) -> Option<sys::Unmounted> {
    if let Err(e) = s.chdir(Path::new("/")) {
        log::warn!("{e}");
    }
    let what = if changes.is_empty() {
        "the volume was not changed".to_string()
    } else {
        changes.join("; ")
    };
    match s.unmount(target) {
        Ok(how) => {
            match how {
                sys::Unmounted::Clean => {
                    log::info!("unmounted {} ({what})", target.display())
                }
                sys::Unmounted::Detached => log::warn!(
                    "{} was busy: detached it lazily; it is unmounted once unused ({what})",
                    target.display()
                ),
            }
            Some(how)
        }
        Err(e) => {
            log::error!("{e}");
            None
        }
    }
}

/// The running kernel's module tree, where its modules are.
fn module_dir() -> PathBuf {
    Path::new("/lib/modules").join(sys::kernel_release())
}

/// Whether there is anything to coldplug with: no `modules.alias`, no
/// modules stage (an initramfs without modules does no work for them).
fn has_module_aliases() -> bool {
    sys::stat(&module_dir().join("modules.alias")).is_ok()
}

/// The block devices of this machine, their nodes in /dev (made if missing).
fn block_devices() -> SysBlock {
    SysBlock {
        root: PathBuf::from("/sys/class/block"),
        nodes: Nodes::Dev(PathBuf::from("/dev")),
    }
}

/// Microseconds as `M.UUU` milliseconds, without float formatting code.
fn ms3(us: u128) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Errno;
    use crate::sys::fake::FakeSys;

    #[test]
    fn stage_names_round_trip() {
        for s in Stage::ALL {
            assert_eq!(Stage::from_name(s.name()), Some(s));
        }
        assert_eq!(Stage::from_name("bogus"), None);
    }

    #[test]
    fn undo_after_a_failure_unmounts_the_volume() {
        let mut s = FakeSys::default();
        assert_eq!(
            unmount_volume(&mut s, Path::new("/new-root"), &[]),
            Some(sys::Unmounted::Clean)
        );
        assert_eq!(s.log(), ["chdir /", "umount /new-root"]);
        let mut s = FakeSys::default();
        s.busy.insert("/new-root".into());
        assert_eq!(
            unmount_volume(&mut s, Path::new("/new-root"), &["mounted read-write"]),
            Some(sys::Unmounted::Detached)
        );
        let mut s = FakeSys::default().fail("umount", Errno::INVAL);
        assert_eq!(unmount_volume(&mut s, Path::new("/new-root"), &[]), None);
    }

    #[test]
    fn reboot_and_poweroff_go_through_sys() {
        let mut s = FakeSys::default().fail("halt", Errno::PERM);
        let e = s.halt(Halt::PowerOff);
        assert_eq!(
            e.to_string(),
            "poweroff failed: errno 1 (Operation not permitted)"
        );
        assert_eq!(s.log(), ["halt PowerOff"]);
    }
}
