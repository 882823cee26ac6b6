//! The boot: one context value ([`Boot`]) that owns everything the boot
//! learns and holds, and the pipeline over named stages that reads top to
//! bottom in [`Boot::attempt`]. It runs on any [`Sys`]: the machine as PID
//! 1 ([`run`]), the fake in unit tests.

use crate::sys::Instant;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
use crate::modules::{self, Loader};
use crate::mount;
use crate::node;
use crate::preflight::{self, HookCheck};
use crate::prepare;
use crate::stage::Stage;
use crate::summary::{self, Switched, Timings};
use crate::switch;
use crate::sys::{self, End, Errno, Halt, RealSys, Sys, Unmounted, process};
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
    /// Shared with the boot: a snapshot costs no copy of the settings.
    pub cfg: Arc<Config>,
    pub argv: Vec<OsString>,
    pub state: State,
}

impl Snapshot {
    /// Before the config is read: defaults and PID 1's arguments.
    pub fn initial(argv: Vec<OsString>) -> Snapshot {
        Snapshot {
            cfg: Arc::new(Config::default()),
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
    cfg: Arc<Config>,
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
        boot.cfg = Arc::new(cfg);
        boot.cmdline = cmdline;
        boot.publish_config();
        boot.timings.cpu_at_start = boot.cfg.stats.then(|| sys::cpu_us(&boot.sys)).flatten();
        boot.timings.record(Stage::Config, t);
        boot.enter(Stage::Prepare);
        let t = Instant::now();
        let mounted = prepare::prepare(&boot.sys, &boot.cfg, &warnings);
        boot.api_mounted.extend(mounted);
        boot.timings.record(Stage::Prepare, t);
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
        if !self.cfg.modules.is_empty()
            || (self.cfg.coldplug_on() && modules::has_aliases(&self.sys))
        {
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
        wait::late_matches(&self.sys, &self.cfg, &found.dev);
        let how = self.stage(Stage::Switch, Boot::switch)?;
        self.enter(Stage::Exec);
        let reaped = self.sys.reap_children();
        if reaped > 0 {
            log::info!("reaped {reaped} leftover child process(es)");
        }
        let boot_root = self.cfg.old_root.clone();
        self.count_boot(&boot_root);
        let (path, stats) = (&init.path, self.cfg.stats);
        let to = Switched {
            node: &node,
            fstype: &fstype,
            how: &how,
            found: &found,
            init: path,
        };
        log::info!("{}", summary::line(&self.sys, &self.timings, &to, stats));
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

    /// `pivot.tries`: counts this boot on the boot disk (its root at
    /// `boot_root` now), just before the hand-over.
    fn count_boot(&mut self, boot_root: &Path) {
        if let Some(count) = self.count.take() {
            tries::record(&self.sys, boot_root, &count);
        }
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
        self.timings.record(s, t);
        r
    }

    /// Loads `pivot.modules` and, with coldplug, the drivers of the devices
    /// present; keeps the loader for drivers of devices that come later.
    fn load_modules(&mut self) -> Result<()> {
        // Subscribed before coldplug: the devices its drivers make come as uevents.
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

    /// Mounts the volume for the checks ([`mount::mount_for_check`]), its
    /// device held read-only until the commit ([`mount::hold_read_only`]);
    /// a journal or a log that must be replayed is a change, and said.
    fn mount(&mut self, node: &Path, found: &Found) -> Result<String> {
        let cfg = &self.cfg;
        let probed = mount::known_filesystem(&self.sys, node, found.fs.clone(), &cfg.fstypes)?;
        match mount::hold_read_only(&self.sys, node, probed.as_ref()) {
            mount::Hold::Ours => self.state.ro_device = Some(node.to_path_buf()),
            mount::Hold::Unheld(change) => self.state.changes.push(change),
            mount::Hold::Already => {}
        }
        self.publish();
        let held = self.state.ro_device.is_some();
        let (fstype, replayed) = mount::mount_for_check(&self.sys, &self.cfg, node, probed, held)?;
        if replayed {
            self.state.ro_device = None;
            self.state.changes.push("its log was replayed");
        }
        self.state.mounted = Some(self.cfg.new_root.clone());
        self.publish();
        Ok(fstype)
    }

    /// Gives the volume's device its writable state back (the commit, a failure).
    fn release_read_only(&mut self) {
        if let Some(dev) = self.state.ro_device.take() {
            mount::give_back(&self.sys, &dev);
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
        self.state.moved = switch::api_mounts(&self.sys);
        self.publish();
        if let Choice::Kexec(entry) = choice {
            let moved = &self.state.moved;
            drop(preflight::init(&self.sys, &root, &self.cfg, moved)?);
            kexec::note_hook(&self.sys, &root, self.cfg.hook.as_deref());
            return Ok(Next::Kexec(entry));
        }
        let (init, hook) = preflight::checks(&self.sys, &self.cfg, &self.state.moved)?;
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
                self.state.mounted = None;
                self.publish();
                mount::mount_again(&self.sys, &self.cfg, node, fstype)?;
                self.state.mounted = Some(self.cfg.new_root.clone());
                self.publish();
                preflight::checks(&self.sys, &self.cfg, &self.state.moved)?
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
    /// cleanly (its own boot finds a clean filesystem), the boot counted,
    /// then the jump.
    fn kexec(&mut self, entry: kexec::Chosen, node: &Path, found: &Found) -> Result<End> {
        let (cfg, counting) = (&self.cfg, self.count.is_some());
        kexec::load_entry(&self.sys, cfg, &self.cmdline, entry, node, found, counting)
            .map_err(Error::Kexec)?;
        let root = self.cfg.new_root.clone();
        let how = mount::unmount_volume(&self.sys, &root, &self.state.changes);
        if how.is_some() {
            self.state.mounted = None;
            self.publish();
        }
        if how != Some(Unmounted::Clean) {
            return Err(Error::Kexec(kexec::NOT_CLEAN.into()));
        }
        self.count_boot(Path::new("/"));
        log::info!("{}", kexec::jump_line(&self.timings, found));
        Ok(self.sys.kexec_reboot()?)
    }

    fn run_hook(&mut self, hook: HookCheck, node: &Path, fstype: &str) -> Result<()> {
        let ran = hook::run(&self.sys, &self.cfg, hook, node, fstype);
        if !matches!(ran, Ok(false)) {
            self.state.changes.push("the hook ran");
            self.publish();
        }
        ran.map(|_| ())
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
        let how = switch::run(&self.sys, &self.cfg, &self.state.moved)?;
        self.state.switched = true;
        self.publish();
        Ok(how)
    }

    /// Machine image: the init could not be executed after the switch; put
    /// the boot root back so the failure policy can run on it.
    fn undo_switch(&mut self) {
        let cfg = &self.cfg;
        let r = switch::undo(&self.sys, &cfg.new_root, &cfg.old_root, &self.state.moved);
        self.state.switched = r.is_err();
        self.publish();
        self.undo = Some(r.map_err(|e| e.to_string()));
    }

    /// The failure policy: log one status line
    /// `FAILED at <stage>: <reason>; action: <action>`, undo the binds and
    /// the mount, then run the action. `None` only after the shell action's
    /// shell exits (the caller retries the boot).
    fn fail(&mut self, err: Error) -> Option<End> {
        let d = fallback::decide(&self.sys, &self.cfg, self.state.switched);
        fallback::status_line(self.state.stage, &err, &d, &self.cfg, self.undo.as_ref());
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
        let (sys, cfg) = (&self.sys, &self.cfg);
        fallback::carry_out(sys, cfg, &self.argv, &self.api_mounted, d.action)
    }
}

#[cfg(test)]
mod tests;
