//! The boot: one context value ([`Boot`]) that owns everything the boot
//! learns and holds, and the pipeline over named stages that reads top to
//! bottom in [`Boot::attempt`]. It runs on any [`Sys`]: the machine as PID
//! 1 ([`run`]), the fake in unit tests.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use crate::config::{self, Config};
use crate::error::{Error, Result};
use crate::exec;
use crate::fallback;
use crate::fsck;
use crate::handback;
use crate::hook;
use crate::kexec::{self, Choice};
use crate::kmods;
use crate::kmsg;
use crate::matching::Want;
use crate::modules::{self, Loader};
use crate::mount;
use crate::node::{self, Device};
use crate::preflight::{self, HookCheck};
use crate::prepare;
use crate::probe;
use crate::stage::Stage;
use crate::summary::{self, Switched, Timings};
use crate::switch;
use crate::sys::{
    self, API_MOUNTS, End, Errno, ErrnoText, Halt, Op, RealSys, Sys, Unmounted, process,
};
use crate::sysblock::SysBlock;
use crate::tries;
use crate::verify::CheckedInit;
use crate::wait::{self, Found};

/// What the check stage decided: pivot onto the volume with its checked
/// init and hook, or boot its own kernel (the entry, or why there is none).
enum Next {
    Pivot(CheckedInit, HookCheck),
    Kexec(kexec::Chosen),
}

/// What the failure path needs to undo and decide. The panic hook gets a
/// copy at every change ([`Boot::publish`]), so whatever is added here is
/// in its view too.
#[derive(Clone, Debug)]
pub struct State {
    pub stage: Stage,
    /// The volume's mount point while it is mounted (undone on failure).
    pub mounted: Option<PathBuf>,
    /// What the boot did to the volume since it mounted it read-only
    /// (`mounted read-write`, `the hook ran`); empty: it is unchanged.
    pub changes: Vec<&'static str>,
    /// pivot_root or switch_root happened: the boot root is no longer `/`.
    pub switched: bool,
    /// The API mounts the switch moves into the new root (found at the check).
    pub moved: Vec<&'static str>,
    /// What was mounted onto the volume (the boot disk's module tree), innermost
    /// last: where each mount is, with no link in the path (published as each is made).
    pub bound: Vec<PathBuf>,
    /// The volume's device, made read-only until the commit (BLKROSET).
    pub ro_device: Option<PathBuf>,
}

impl Default for State {
    fn default() -> State {
        State {
            stage: Stage::Config,
            mounted: None,
            changes: Vec::new(),
            switched: false,
            moved: Vec::new(),
            bound: Vec::new(),
            ro_device: None,
        }
    }
}

/// The panic hook's view of the boot: the config, PID 1's arguments and
/// the state, as of the last change.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub cfg: Config,
    pub argv: Vec<OsString>,
    pub state: State,
}

impl Snapshot {
    /// Before the config is read: defaults and PID 1's arguments.
    pub fn initial(argv: Vec<OsString>) -> Snapshot {
        Snapshot {
            cfg: Config::default(),
            argv,
            state: State::default(),
        }
    }
}

/// Where a boot publishes its snapshot.
pub type View = Mutex<Option<Snapshot>>;

/// PID 1's view: the one piece of global state (the panic hook reads it).
static PANIC_VIEW: View = Mutex::new(None);

/// The boot's state: the config, PID 1's arguments, the system it runs on,
/// what the failure path needs ([`State`]) and what it holds open.
pub struct Boot<S: Sys> {
    cfg: Config,
    /// The kernel command line as the config stage read it.
    cmdline: String,
    argv: Vec<OsString>,
    sys: S,
    state: State,
    view: &'static View,
    timings: Timings,
    /// The exec failed after the switch and the switch was undone (or why not).
    undo: Option<std::result::Result<(), String>>,
    /// The API filesystems pivot-init mounted itself.
    api_mounted: Vec<&'static str>,
    loader: Option<Loader>,
    /// `pivot.tries`: the count to write just before the hand-over.
    count: Option<tries::Pending>,
}

/// PID 1's entry point, with its arguments (`argv`, as the kernel passed
/// them). Never returns.
pub fn run(argv: Vec<OsString>) -> ! {
    kmsg::init();
    if handback::is_shutdown(&argv) {
        shutdown(argv)
    }
    // The panic hook's view exists from the start: what it execs again.
    let initial = Snapshot::initial(argv);
    if let Ok(mut v) = PANIC_VIEW.lock() {
        *v = Some(initial.clone());
    }
    std::panic::set_hook(Box::new(|info| {
        let msg = panic_text(info);
        let snap = PANIC_VIEW.try_lock().ok().and_then(|g| g.clone());
        let snap = snap.unwrap_or_else(|| Snapshot::initial(Vec::new()));
        after_panic(snap, RealSys::default(), &PANIC_VIEW, msg);
        process::wait_forever()
    }));
    let sys = RealSys::default();
    sys.pid1_signals();
    Boot::start(initial, sys, &PANIC_VIEW).life();
    process::wait_forever()
}

/// What a panic says, for its log line: the panic's message, then where
/// in the source it came from when the binary knows (the release build
/// leaves source locations out: `-Zlocation-detail=none` in scripts/build).
fn panic_text(info: &std::panic::PanicHookInfo) -> String {
    let msg = info.payload_as_str().unwrap_or("a panic without a message");
    match info.location() {
        Some(l) if l.line() > 0 => format!("{msg} at {}:{}", l.file(), l.line()),
        _ => msg.to_string(),
    }
}

/// PID 1's second life, as systemd-shutdown's `/shutdown VERB` (see
/// [`handback`]); a panic there still carries out the verb.
fn shutdown(argv: Vec<OsString>) -> ! {
    let (_, how) = handback::verb(&argv);
    std::panic::set_hook(Box::new(move |info| {
        log::error!("shutdown: internal error (panic): {}", panic_text(info));
        let sys: &dyn Sys = &RealSys::default();
        if let Err(e) = sys.halt(how).or_else(|_| sys.halt(Halt::Reboot)) {
            log::error!("{e}; PID 1 waits");
        }
        process::wait_forever()
    }));
    let sys = RealSys::default();
    sys.pid1_signals_reset();
    handback::shutdown(&sys, &argv);
    process::wait_forever()
}

/// Puts `state` into the panic view (the whole snapshot, `whole()`, when
/// the view has none yet).
fn publish_state(view: &View, state: &State, whole: impl FnOnce() -> Snapshot) {
    if let Ok(mut v) = view.try_lock() {
        match v.as_mut() {
            Some(snap) => snap.state.clone_from(state),
            None => *v = Some(whole()),
        }
    }
}

/// After a panic, from the last snapshot: the failure policy (which undoes
/// what the snapshot says is mounted and bound); when the shell was left,
/// this binary again from the top rather than a return, which would abort
/// PID 1.
pub fn after_panic<S: Sys>(snap: Snapshot, sys: S, view: &'static View, msg: String) -> End {
    let mut boot = Boot::from_snapshot(snap, sys, view);
    if let Some(end) = boot.fail(Error::Panic { msg }) {
        return end;
    }
    match exec::exec(&boot.sys, Path::new("/proc/self/exe"), &boot.argv) {
        Ok(end) => end,
        Err(e) => {
            log::error!("{e}; waiting forever");
            fallback::wait_forever(&boot.sys, &boot.api_mounted)
        }
    }
}

impl<S: Sys> Boot<S> {
    fn from_snapshot(snap: Snapshot, sys: S, view: &'static View) -> Boot<S> {
        Boot {
            cfg: snap.cfg,
            cmdline: String::new(),
            argv: snap.argv,
            sys,
            state: snap.state,
            view,
            timings: Timings::new(),
            undo: None,
            api_mounted: Vec::new(),
            loader: None,
            count: None,
        }
    }

    /// The config and prepare stages: /proc, the settings, /sys, /dev, the log.
    pub fn start(initial: Snapshot, sys: S, view: &'static View) -> Boot<S> {
        let mut boot = Boot::from_snapshot(initial, sys, view);
        boot.publish();
        let t = Instant::now();
        boot.api_mounted.extend(prepare::mount_proc(&boot.sys));
        // An initramfs is a ramfs/tmpfs root; a machine image boots from a disk.
        let (cfg, warnings, cmdline) = config::read_boot_config(&boot.sys, boot.sys.root_is_ram());
        boot.cfg = cfg;
        boot.cmdline = cmdline;
        boot.publish_config();
        if boot.cfg.stats {
            boot.timings.cpu_at_start = sys::cpu_us(&boot.sys);
        }
        boot.timings
            .stages
            .push((Stage::Config, sys::micros(t.elapsed())));
        boot.enter(Stage::Prepare);
        let t = Instant::now();
        let mounted = prepare::prepare(&boot.sys, &boot.cfg, &warnings);
        boot.api_mounted.extend(mounted);
        boot.timings
            .stages
            .push((Stage::Prepare, sys::micros(t.elapsed())));
        boot
    }

    /// PID 1's life after the start: attempts until one ends it (on the
    /// machine nothing returns: an exec or a halt is the end).
    pub fn life(&mut self) -> End {
        loop {
            let err = match self.attempt() {
                Ok(end) => return end,
                Err(Error::Requested(how)) => {
                    return fallback::honor(&self.sys, &self.api_mounted, how);
                }
                Err(e) => e,
            };
            if let Some(end) = self.fail(err) {
                return end;
            }
            log::info!("the shell exited; retrying the boot from the modules stage");
        }
    }

    /// The pipeline from the modules to the exec: how the boot ended, or why not.
    fn attempt(&mut self) -> Result<End> {
        self.timings.stages.truncate(2);
        if !self.cfg.modules.is_empty() || (self.cfg.coldplug_on() && self.has_module_aliases()) {
            self.stage(Stage::Modules, Boot::load_modules)?;
        }
        let mut found = self.stage(Stage::Wait, Boot::wait)?;
        let node = self.stage(Stage::Node, |b| {
            node::ensure_node(&b.sys, Path::new("/dev"), &found.dev)
        })?;
        if self.cfg.tries > 0 {
            let count = self.stage(Stage::Tries, |b| {
                tries::stage(&b.sys, &b.cfg, &found, &node)
            })?;
            self.count = Some(count);
        }
        // The one change before the commit point: a checker's repairs.
        found.fs = self.stage(Stage::Fsck, |b| {
            let checked = fsck::check(&b.sys, &b.cfg, &node, found.fs.clone())?;
            b.state.changes.extend(checked.change);
            b.publish();
            Ok(checked.probe)
        })?;
        let fstype = self.stage(Stage::Mount, |b| b.mount(&node, &found))?;
        // The commit point: nothing of the volume runs and nothing on it
        // changes before its init and hook are checked. Booting its own
        // kernel (pivot.kexec), nothing on it changes at all.
        let (init, hook) = match self.stage(Stage::Check, |b| b.check_and_commit(&node, &fstype))? {
            Next::Pivot(init, hook) => (init, hook),
            Next::Kexec(entry) => {
                return self.stage(Stage::Kexec, |b| b.kexec(entry, &node, &found));
            }
        };
        self.stage(Stage::Hook, |b| b.run_hook(hook, &node, &fstype))?;
        self.note_late_matches(&found.dev);
        let how = self.stage(Stage::Switch, Boot::switch)?;
        self.enter(Stage::Exec);
        let reaped = self.sys.reap_children();
        if reaped > 0 {
            log::info!("reaped {reaped} leftover child process(es)");
        }
        let boot_root = self.cfg.old_root.clone();
        self.count_boot(&boot_root);
        let switched = Switched {
            node: &node,
            fstype: &fstype,
            how: &how,
            found: &found,
            init: &init.path,
        };
        log::info!(
            "{}",
            summary::line(&self.sys, &self.timings, &switched, self.cfg.stats)
        );
        let err = match exec::exec_init(&self.sys, &self.cfg, &init, &self.argv) {
            Ok(end) => return Ok(end),
            Err(e) => e,
        };
        // The open init keeps the volume busy: close it before any undo.
        drop(init);
        if self.state.switched && !self.cfg.initramfs {
            self.undo_switch();
        }
        Err(err)
    }

    /// `pivot.tries`: counts this boot on the boot disk, whose root is at
    /// `boot_root` now: called just before the hand-over (the exec after the
    /// switch, or the kexec, where the boot root is still `/`).
    fn count_boot(&mut self, boot_root: &Path) {
        if let Some(count) = self.count.take() {
            tries::record(&self.sys, boot_root, &count);
        }
    }

    /// `pivot.bootdisk=UUID=...` for the command line of a kernel this boot
    /// kexecs into while counting, so that `pivot-init bless` finds the boot
    /// disk there; `None` when not counting (or the UUID is unknown).
    fn bootdisk_key(&self) -> Option<String> {
        self.count
            .as_ref()
            .and_then(|_| tries::bootdisk_arg(&self.sys))
    }

    /// Tells the panic hook where the boot is (the whole snapshot once the
    /// config is read, in [`Boot::publish_config`]; the state at each change).
    fn publish(&self) {
        publish_state(self.view, &self.state, || self.snapshot());
    }

    fn publish_config(&self) {
        if let Ok(mut v) = self.view.try_lock() {
            *v = Some(self.snapshot());
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            cfg: self.cfg.clone(),
            argv: self.argv.clone(),
            state: self.state.clone(),
        }
    }

    fn enter(&mut self, stage: Stage) {
        self.state.stage = stage;
        self.publish();
        if self.cfg.debug_panic == Some(stage) {
            panic!("pivot.debug_panic={} asked for a panic here", stage.name());
        }
    }

    /// Runs `f` as one stage and records how long it took (µs).
    fn stage<T>(&mut self, s: Stage, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.enter(s);
        let t = Instant::now();
        let r = f(self);
        let us = sys::micros(t.elapsed());
        log::debug!("stage {} took {} ms", s.name(), summary::ms3(us));
        self.timings.stages.push((s, us));
        r
    }

    /// Whether there is anything to coldplug with: no `modules.alias`, no
    /// modules stage (an initramfs without modules does no work for them).
    fn has_module_aliases(&self) -> bool {
        let dir = modules::module_dir(&self.sys.kernel_release());
        self.sys.exists(&dir.join("modules.alias"))
    }

    /// Loads `pivot.modules` and, with coldplug, the drivers of the devices
    /// present; keeps the loader for drivers of devices that come later.
    fn load_modules(&mut self) -> Result<()> {
        // Subscribed before coldplug: a device that a driver loaded now
        // creates (virtio_pci makes the virtio devices) is announced on it,
        // and the wait loads its driver in turn.
        self.sys.uevents_open()?;
        let words = config::split_cmdline(&self.cmdline);
        let coldplug = self.cfg.coldplug_on();
        self.loader = modules::load_stage(&self.sys, &self.cfg.modules, coldplug, &words)?;
        Ok(())
    }

    /// Subscribes to uevents (once, kept across retries), then waits.
    fn wait(&mut self) -> Result<Found> {
        wait::wait_stage(&self.sys, &self.cfg, self.loader.as_ref())
    }

    /// Mounts the volume for the checks, read-only (see
    /// [`mount::first_options`]) on a read-only device: a filesystem would
    /// write even when mounted read-only (ext4 cleans up orphans, xfs and
    /// btrfs replay their logs), and the device refuses it. One whose
    /// journal or log must be replayed gets its device writable, and the
    /// log says so: that is a change before the commit point.
    fn mount(&mut self, node: &Path, found: &Found) -> Result<String> {
        let cfg = &self.cfg;
        let probed = mount::known_filesystem(&self.sys, node, found.fs.clone(), &cfg.fstypes)?;
        let first = mount::first_options(&cfg.mount_opts);
        let replay = probed.as_ref().is_some_and(|p| p.needs_replay);
        if replay {
            let n = node.display();
            log::warn!("{n}: its journal needs recovery, which even a read-only mount writes");
            self.state.changes.push("its journal was replayed");
        } else {
            self.hold_read_only(node);
        }
        let fstype = match mount::mount_volume(&self.sys, &self.cfg, &first, node, probed.clone()) {
            Err(e) if self.state.ro_device.is_some() && mount::wants_to_write(&e) => {
                log::warn!(
                    "{e}: the filesystem must replay its log, which even a read-only mount \
                     writes; making {} writable for it",
                    node.display()
                );
                self.release_read_only();
                self.state.changes.push("its log was replayed");
                mount::mount_volume(&self.sys, &self.cfg, &first, node, probed)?
            }
            r => r?,
        };
        self.state.mounted = Some(self.cfg.new_root.clone());
        self.publish();
        Ok(fstype)
    }

    /// Makes the volume's device read-only until the commit (BLKROSET),
    /// unless it is already (then it is not ours to change). When that
    /// cannot be done, the volume is no longer sure to stay unchanged, and
    /// the unmount line will not say it did.
    fn hold_read_only(&mut self, node: &Path) {
        let why = match self.sys.block_read_only(node) {
            Ok(true) => return,
            Ok(false) => match self.sys.set_block_read_only(node, true) {
                Ok(()) => {
                    self.state.ro_device = Some(node.to_path_buf());
                    self.publish();
                    return;
                }
                Err(e) => e.to_string(),
            },
            Err(e) => format!(
                "cannot tell whether {} is read-only (BLKROGET): {}",
                node.display(),
                ErrnoText(e)
            ),
        };
        log::warn!("{why}; the filesystem may write to it even mounted read-only");
        self.state
            .changes
            .push("it was mounted on a writable device (its filesystem may have written)");
        self.publish();
    }

    /// Gives the volume's device its writable state back (the commit, a failure).
    fn release_read_only(&mut self) {
        if let Some(dev) = self.state.ro_device.take() {
            if let Err(e) = self.sys.set_block_read_only(&dev, false) {
                log::error!("{e}");
            }
            self.publish();
        }
    }

    /// The check stage: the init (and its interpreters) and the hook are
    /// checked on the read-only volume; then the volume is accepted: its
    /// device writable again, remounted with the configured options. With
    /// `pivot.kexec`, whether the volume boots on its own kernel is decided
    /// first; then only its init is checked, and nothing is committed.
    fn check_and_commit(&mut self, node: &Path, fstype: &str) -> Result<Next> {
        let u = self.sys.uname();
        let root = self.cfg.new_root.clone();
        let choice = kexec::choose(&self.sys, &root, &self.cfg, &u.machine, &u.release);
        if let Choice::Pivot(_) = choice {
            // /run for systemd's hand-back at shutdown, before what moves is known.
            handback::offer(&self.sys, &self.cfg);
        }
        // The API mounts the switch will carry over: they cover the volume's
        // directories of the same names (the init must not live there).
        let slash = self.sys.stat(Path::new("/")).ok();
        self.state.moved = API_MOUNTS
            .into_iter()
            .filter(|m| self.sys.api_dir(Path::new(m), slash.as_ref()) == Some(true))
            .collect();
        self.publish();
        if let Choice::Kexec(entry) = choice {
            let moved = &self.state.moved;
            drop(preflight::init(&self.sys, &root, &self.cfg, moved)?);
            kexec::note_hook(&self.sys, &root, self.cfg.hook.as_deref());
            return Ok(Next::Kexec(entry));
        }
        let (init, hook) = self.checks()?;
        // The commit point.
        let held = self.state.ro_device.is_some();
        self.release_read_only();
        let opts = &self.cfg.mount_opts;
        let (init, hook) = match self.sys.remount(&self.cfg.new_root, opts.flags, &opts.data) {
            Ok(()) => (init, hook),
            // btrfs keeps the read-only state its device had when it was
            // mounted, and refuses to go read-write: mounted again.
            Err(e) if held && e.errno == Errno::ACCESS => {
                log::info!("{e}: mounting it again, its device writable");
                drop((init, hook));
                self.mount_again(node, fstype)?;
                self.checks()?
            }
            Err(e) => return Err(e.into()),
        };
        let opts = &self.cfg.mount_opts;
        if !opts.read_only() {
            self.state.changes.push("mounted read-write");
        }
        self.publish();
        log::debug!("mounted {}", opts.describe());
        Ok(Next::Pivot(init, hook))
    }

    /// The kexec stage: the entry checked and loaded, the volume unmounted
    /// cleanly (its own boot finds a clean filesystem), then the jump.
    fn kexec(&mut self, entry: kexec::Chosen, node: &Path, found: &Found) -> Result<End> {
        let root = self.cfg.new_root.clone();
        let uuid = || match &found.fs {
            Some(p) => Some(p.uuid.clone()),
            None => probe::read(&self.sys, node).ok().flatten().map(|p| p.uuid),
        };
        let entry = *entry.map_err(Error::Kexec)?;
        let own: Vec<String> = self.bootdisk_key().into_iter().collect();
        let p = kexec::prepare(
            &self.sys,
            &root,
            &self.cfg,
            &self.cmdline,
            entry,
            &uuid,
            &own,
        );
        kexec::load(&self.sys, p.map_err(Error::Kexec)?).map_err(Error::Kexec)?;
        let how = mount::unmount_volume(&self.sys, &root, &self.state.changes);
        if how.is_some() {
            self.state.mounted = None;
            self.publish();
        }
        if how != Some(Unmounted::Clean) {
            let why = "the volume could not be unmounted cleanly, and its own kernel would find \
                       its filesystem in use; not jumping";
            return Err(Error::Kexec(why.into()));
        }
        self.count_boot(Path::new("/"));
        log::info!("{}", kexec::jump_line(&self.timings, found));
        Ok(self.sys.kexec_reboot()?)
    }

    /// The checks of the check stage: the init that will run, open, and
    /// the hook (refused here when it cannot run and `pivot.hook_failure` is
    /// `abort`).
    fn checks(&self) -> Result<(CheckedInit, HookCheck)> {
        let root = self.cfg.new_root.as_path();
        let init = preflight::init(&self.sys, root, &self.cfg, &self.state.moved)?;
        log::debug!("checked init {}", init.path.display());
        let hook = preflight::hook(&self.sys, root, self.cfg.hook.as_deref());
        if let (HookCheck::Unusable(path, why), true) = (&hook, self.cfg.hook_abort) {
            let (path, why) = (path.clone(), why.clone());
            return Err(Error::HookUnusable { path, why });
        }
        Ok((init, hook))
    }

    /// Unmounts the volume and mounts it with the configured options.
    fn mount_again(&mut self, node: &Path, fstype: &str) -> Result<()> {
        let root = self.cfg.new_root.clone();
        let gone = self.sys.unmount(&root);
        self.state.mounted = None;
        self.publish();
        if gone? == sys::Unmounted::Detached {
            return Err(Op::Unmount(root).failed(Errno::BUSY).into());
        }
        let opts = &self.cfg.mount_opts;
        self.sys
            .mount(node, &root, fstype, opts.flags, &opts.data)?;
        self.state.mounted = Some(root);
        self.publish();
        Ok(())
    }

    fn run_hook(&mut self, hook: HookCheck, node: &Path, fstype: &str) -> Result<()> {
        let ran = hook::run(&self.sys, &self.cfg, hook, node, fstype);
        if !matches!(ran, Ok(false)) {
            self.state.changes.push("the hook ran");
            self.publish();
        }
        ran.map(|_| ())
    }

    /// Devices that match too but came after the volume was chosen: logged.
    /// Then the uevent socket is closed (here, not by the exec).
    fn note_late_matches(&mut self, chosen: &Device) {
        if let Some(spec) = &self.cfg.root {
            let want = Want {
                spec,
                fstypes: &self.cfg.fstypes,
            };
            wait::late_matches(&want, &SysBlock::boot(&self.sys), chosen);
        }
        self.sys.uevents_close();
    }

    /// Switches the root; returns how, for the summary line.
    fn switch(&mut self) -> Result<String> {
        // Every mount is in the panic view as soon as it is made.
        let (cfg, argv, view, state) = (&self.cfg, &self.argv, self.view, &mut self.state);
        let bound = kmods::bind_trees(&self.sys, cfg, &mut |made| {
            state.bound = made.to_vec();
            publish_state(view, state, || Snapshot {
                cfg: cfg.clone(),
                argv: argv.clone(),
                state: state.clone(),
            });
        });
        self.state.bound = bound;
        self.publish();
        let moves = self.state.moved.clone();
        let (new_root, old_root) = (&self.cfg.new_root, &self.cfg.old_root);
        let mut how = if self.cfg.initramfs {
            // A failure here runs the normal policy (a shell if one is left, else wait).
            match switch::switch_initramfs(&self.sys, new_root, &moves)? {
                switch::How::PivotRoot => "pivot_root (initramfs detached)".to_string(),
                switch::How::SwitchRoot => "switch_root".to_string(),
            }
        } else {
            switch::switch(&self.sys, new_root, old_root, &moves)?;
            format!("pivot_root, boot root at {}", old_root.display())
        };
        self.state.switched = true;
        self.publish();
        how.push_str(&format!(", moved {}", moves.join(" ")));
        Ok(how)
    }

    /// Machine image: the init could not be executed after the switch; put
    /// the boot root back so the failure policy can run on it.
    fn undo_switch(&mut self) {
        let cfg = &self.cfg;
        let r = switch::undo(&self.sys, &cfg.new_root, &cfg.old_root, &self.state.moved);
        self.undo = Some(match r {
            Ok(()) => {
                self.state.switched = false;
                self.publish();
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        });
    }

    /// The failure policy: log one status line
    /// `FAILED at <stage>: <reason>; action: <action>`, undo the binds and
    /// the mount, then run the action. `None` only after the shell action's
    /// shell exits (the caller retries the boot).
    fn fail(&mut self, err: Error) -> Option<End> {
        let d = fallback::decide(&self.sys, &self.cfg, self.state.switched);
        let what = match &self.undo {
            Some(Err(why)) => format!("wait (the switch could not be undone: {why})"),
            Some(Ok(())) => format!("{} (switch undone)", d.describe(&self.cfg.old_init)),
            None => d.describe(&self.cfg.old_init),
        };
        // The action stays in the record however long the reason is.
        let line = format!("FAILED at {}: {err}", self.state.stage.name());
        let tail = format!("; action: {what}");
        log::error!("{}", kmsg::fit_keeping_tail(&line, &tail));
        if d.switched {
            return Some(fallback::wait_forever(&self.sys, &self.api_mounted));
        }
        self.undo = None;
        if let Some(target) = self.state.mounted.take() {
            kmods::unbind(&self.sys, &mut self.state.bound);
            self.publish();
            mount::unmount_volume(&self.sys, &target, &self.state.changes);
        }
        self.release_read_only();
        self.state.changes.clear();
        fallback::carry_out(
            &self.sys,
            &self.cfg,
            &self.argv,
            &self.api_mounted,
            d.action,
        )
    }
}

#[cfg(test)]
mod tests;
