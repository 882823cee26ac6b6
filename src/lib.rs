//! pivot-init: PID 1 that waits for a volume, mounts it, runs its hook,
//! pivots onto it and execs its init. The whole boot is [`run`].

pub mod cli;
pub mod config;
pub mod cpio;
pub mod error;
pub mod exec;
pub mod hook;
pub mod kmsg;
pub mod modules;
pub mod mount;
pub mod mountopts;
pub mod probe;
pub mod switch;
pub mod sys;
pub mod uevent;
pub mod verify;
pub mod wait;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use rustix::mount::MountFlags;

use config::Config;
use error::{Error, Result};
use sys::{RealSys, Sys};

/// The stages, in order; the current one is kept for failure messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    Prepare,
    Config,
    Wait,
    Node,
    Mount,
    Hook,
    Switch,
    Exec,
}

impl Stage {
    pub const ALL: [Stage; 8] = [
        Stage::Prepare,
        Stage::Config,
        Stage::Wait,
        Stage::Node,
        Stage::Mount,
        Stage::Hook,
        Stage::Switch,
        Stage::Exec,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Prepare => "prepare",
            Stage::Config => "config",
            Stage::Wait => "wait",
            Stage::Node => "node",
            Stage::Mount => "mount",
            Stage::Hook => "hook",
            Stage::Switch => "switch",
            Stage::Exec => "exec",
        }
    }
}

static STAGE: AtomicU8 = AtomicU8::new(Stage::Prepare as u8);
/// Set once pivot_root succeeded: the boot root is no longer `/`.
static SWITCHED: AtomicBool = AtomicBool::new(false);
/// Set while the volume is mounted on the new root (to undo on failure).
static MOUNTED: Mutex<Option<PathBuf>> = Mutex::new(None);
static CONFIG: OnceLock<Config> = OnceLock::new();
static ARGS: OnceLock<Vec<OsString>> = OnceLock::new();
static PREPARE_MS: OnceLock<u128> = OnceLock::new();
static CPU_AT_START: OnceLock<Option<u64>> = OnceLock::new();

fn enter(stage: Stage) {
    STAGE.store(stage as u8, Ordering::SeqCst);
    if let Some(cfg) = CONFIG.get()
        && cfg.debug_panic.as_deref() == Some(stage.name())
    {
        panic!("pivot.debug_panic={} asked for a panic here", stage.name());
    }
}

fn set_mounted(p: Option<PathBuf>) {
    if let Ok(mut m) = MOUNTED.lock() {
        *m = p;
    }
}

fn current_stage() -> Stage {
    let n = STAGE.load(Ordering::SeqCst);
    Stage::ALL
        .into_iter()
        .find(|s| *s as u8 == n)
        .unwrap_or(Stage::Prepare)
}

/// Stage durations, logged together in the summary line: every log line is
/// a synchronous write to the console, which would slow the switch itself.
#[derive(Default)]
struct Timings(Vec<(&'static str, u128)>);

impl Timings {
    /// Runs `f` as one stage and records how long it took.
    fn stage<T>(&mut self, s: Stage, f: impl FnOnce() -> Result<T>) -> Result<T> {
        enter(s);
        let t = Instant::now();
        let r = f();
        let ms = t.elapsed().as_millis();
        log::debug!("stage {} took {ms} ms", s.name());
        self.0.push((s.name(), ms));
        r
    }

    fn text(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|(n, ms)| format!("{n} {ms}")).collect();
        format!("{} ms", parts.join(", "))
    }
}

/// Microseconds as `M.UUU` milliseconds, without float formatting code.
fn ms3(us: u128) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}

/// PID 1's entry point. Never returns.
pub fn run() -> ! {
    let t0 = Instant::now();
    kmsg::init();
    std::panic::set_hook(Box::new(|info| {
        let msg = match info.location() {
            Some(l) => format!("{info} at {}:{}", l.file(), l.line()),
            None => info.to_string(),
        };
        fail(Error::Panic { msg });
        // The shell was left: start over (this binary from the top) rather
        // than return, which would abort PID 1.
        let args = ARGS.get().map(Vec::as_slice).unwrap_or(&[]);
        let e = exec::exec(Path::new("/proc/self/exe"), args);
        log::error!("{e}; waiting forever");
        sys::wait_forever()
    }));
    let _ = ARGS.set(std::env::args_os().collect());
    let cfg = prepare();
    let cfg = CONFIG.get_or_init(|| cfg);
    loop {
        match boot(cfg, t0) {
            Ok(never) => match never {},
            Err(e) => fail(e),
        }
        // Only the shell action comes back here.
        log::info!("the shell exited; retrying the boot from the wait stage");
    }
}

/// Mounts /proc, reads the config, mounts /sys and /dev, opens the log.
fn prepare() -> Config {
    enter(Stage::Prepare);
    let t = Instant::now();
    let mut s = RealSys;
    let api = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    mount_api(&mut s, "proc", "/proc", "proc", api, "");
    // PID 1's CPU counters include the kernel's own init work before exec.
    let _ = CPU_AT_START.set(sys::cpu_us());
    enter(Stage::Config);
    // An initramfs is a ramfs/tmpfs root; a machine image boots from a disk.
    let initramfs = s.root_is_ram();
    let (cfg, warnings) = read_config(initramfs);
    enter(Stage::Prepare);
    mount_api(&mut s, "sysfs", "/sys", "sysfs", api, "");
    if cfg.devtmpfs {
        mount_api(
            &mut s,
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MountFlags::NOSUID,
            "mode=0755",
        );
    }
    ensure_console_fds();
    // Lift the kernel's rate limit on /dev/kmsg writers so no line is lost
    // (refused when printk.devkmsg= is on the command line: that wins).
    let _ = std::fs::write("/proc/sys/kernel/printk_devkmsg", "on\n");
    if !kmsg::open_kmsg() {
        log::warn!("cannot open /dev/kmsg; logging to the console");
    }
    kmsg::set_level(cfg.loglevel);
    log::info!(
        "pivot-init {} starting as PID {} ({} mode)",
        env!("CARGO_PKG_VERSION"),
        rustix::process::getpid().as_raw_nonzero(),
        if cfg.initramfs {
            "initramfs"
        } else {
            "machine image"
        }
    );
    for w in &warnings {
        log::warn!("{w}");
    }
    let _ = PREPARE_MS.set(t.elapsed().as_millis());
    cfg
}

/// The config file of the boot image, then the kernel command line.
pub const CONFIG_FILE: &str = "/etc/pivot-init.conf";

fn read_config(initramfs: bool) -> (Config, Vec<String>) {
    let file = std::fs::read_to_string(CONFIG_FILE).ok();
    let mut early = Vec::new();
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_else(|e| {
        early.push(format!(
            "cannot read /proc/cmdline: {e}; using the config file and defaults"
        ));
        String::new()
    });
    let p = config::parse_all(
        file.as_deref().map(|t| (CONFIG_FILE, t)),
        &cmdline,
        initramfs,
    );
    early.extend(p.warnings);
    (p.cfg, early)
}

/// Mounts an API filesystem unless something is mounted there already.
fn mount_api(
    s: &mut RealSys,
    src: &str,
    target: &str,
    fstype: &str,
    flags: MountFlags,
    data: &str,
) {
    let p = Path::new(target);
    if sys::is_mount_point(p) {
        return;
    }
    if !sys::is_dir(p)
        && let Err(e) = s.mkdir(p)
    {
        log::error!("{e}");
        return;
    }
    match s.mount(src, p, fstype, flags, data) {
        Ok(()) => log::debug!("mounted {fstype} on {target}"),
        Err(e) => log::error!("{e}"),
    }
}

/// When the kernel found no /dev/console on the boot root, PID 1 starts
/// without stdin/stdout/stderr. Fill fds 0..2 with the console, which
/// devtmpfs now provides, so that the hook and the real init have one.
fn ensure_console_fds() {
    use std::os::fd::AsRawFd;
    for _ in 0..3 {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/console")
        {
            // The lowest free fd is returned: below 3 means a std fd was missing; keep it.
            Ok(f) if f.as_raw_fd() < 3 => std::mem::forget(f),
            _ => return,
        }
    }
}

/// The pipeline from the wait to the exec. Returns only on failure.
fn boot(cfg: &Config, t0: Instant) -> Result<std::convert::Infallible> {
    let mut tm = Timings::default();
    tm.0.push(("prepare", PREPARE_MS.get().copied().unwrap_or(0)));
    let loader = if !cfg.modules.is_empty() || cfg.coldplug_on() {
        tm.stage(Stage::Prepare, || load_modules(cfg))?
    } else {
        None
    };
    let spec = cfg.root.as_ref().ok_or(Error::NoRootSpec)?;
    let sysfs = wait::SysBlock {
        root: PathBuf::from("/sys/class/block"),
        nodes: wait::Nodes::Dev(PathBuf::from("/dev")),
    };
    let want = wait::Want {
        spec,
        fstypes: &cfg.fstypes,
    };
    let cpu_before_wait = sys::cpu_us();
    let found = tm.stage(Stage::Wait, || {
        let mut hotplug = |modalias: &str| {
            if let Some(l) = &loader {
                l.load_for(modalias);
            }
        };
        wait::wait_for(&want, &sysfs, cfg.timeout_secs, &mut hotplug)
    })?;
    let cpu_waiting = sys::cpu_us()
        .zip(cpu_before_wait)
        .map(|(a, b)| a.saturating_sub(b));
    let node = tm.stage(Stage::Node, || {
        wait::ensure_node(Path::new("/dev"), &found.dev)
    })?;
    let mut s = RealSys;
    let fstype = tm.stage(Stage::Mount, || {
        mount::mount_volume(&mut s, cfg, &node, found.fs.clone())
    })?;
    set_mounted(Some(cfg.new_root.clone()));
    tm.stage(Stage::Hook, || hook::run(cfg, &node, &fstype))?;
    let mut how = String::new();
    let init = tm.stage(Stage::Switch, || {
        // Everything that can make us fail over is checked before pivot_root.
        let init = exec::choose_init(&cfg.new_root, &cfg.init)?;
        log::debug!("checked init {}", init.display());
        let moves: Vec<&str> = switch::API_MOUNTS
            .into_iter()
            .filter(|m| sys::is_mount_point(Path::new(m)))
            .collect();
        if cfg.initramfs {
            // A failure here runs the normal policy (a shell if one is left, else wait).
            let h = switch::switch_initramfs(&mut s, &cfg.new_root, &cfg.old_root, &moves)?;
            SWITCHED.store(true, Ordering::SeqCst);
            how = match h {
                switch::How::PivotRoot => "pivot_root (initramfs detached)".to_string(),
                switch::How::SwitchRoot => "switch_root".to_string(),
            };
        } else {
            switch::switch(&mut s, &cfg.new_root, &cfg.old_root, &moves)?;
            SWITCHED.store(true, Ordering::SeqCst);
            how = format!("pivot_root, boot root at {}", cfg.old_root.display());
        }
        how.push_str(&format!(", moved {}", moves.join(" ")));
        Ok(init)
    })?;
    enter(Stage::Exec);
    let reaped = sys::reap_children();
    if reaped > 0 {
        log::info!("reaped {reaped} leftover child process(es)");
    }
    log::info!(
        "switched to {} ({fstype}) by {how}; uevent to exec {} ms; start to exec {} ms (uptime {} ms); \
         stages {}; cpu {} ms while waiting, {} ms since start; VmHWM {} KiB; exec {}",
        node.display(),
        ms3(found.at.elapsed().as_micros()),
        t0.elapsed().as_millis(),
        sys::uptime_ms(),
        tm.text(),
        cpu_waiting.map_or("?".to_string(), |us| ms3(us.into())),
        sys::cpu_us()
            .zip(CPU_AT_START.get().copied().flatten())
            .map_or("?".to_string(), |(a, b)| ms3(a.saturating_sub(b).into())),
        sys::vm_hwm_kib().map_or("?".to_string(), |k| k.to_string()),
        init.display()
    );
    let args = ARGS.get().map(Vec::as_slice).unwrap_or(&[]);
    let mut last = exec::exec(&init, args);
    // The chosen init was checked; if exec still fails, try the others.
    for c in exec::candidates(&cfg.init) {
        if c != init && exec::executable_in(Path::new("/"), &c) {
            log::error!("{last}; trying {}", c.display());
            last = exec::exec(&c, args);
        }
    }
    Err(last)
}

/// The action `pivot.onfail` (or the mode's default) asks for.
fn chosen_action(cfg: &Config) -> config::OnFail {
    use config::OnFail;
    cfg.onfail.unwrap_or(if !cfg.initramfs {
        OnFail::OldInit
    } else if exec::executable_in(Path::new("/"), Path::new("/bin/sh")) {
        OnFail::Shell
    } else {
        OnFail::Wait
    })
}

/// Loads `pivot.modules` (an error is fatal) and, with coldplug, the drivers
/// of the devices present; returns the loader for drivers of devices that
/// come later. Without a module tree, coldplug alone is quietly skipped.
fn load_modules(cfg: &Config) -> Result<Option<modules::Loader>> {
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let dir = Path::new("/lib/modules").join(release);
    let loader = match modules::Loader::open(&dir) {
        Ok(l) => l,
        Err(msg) if cfg.modules.is_empty() => {
            log::debug!("no coldplug: {msg}");
            return Ok(None);
        }
        Err(msg) => return Err(Error::Modules { msg }),
    };
    if !cfg.modules.is_empty() {
        let n = loader
            .load(&cfg.modules)
            .map_err(|msg| Error::Modules { msg })?;
        log::info!("loaded {n} module(s) for {}", cfg.modules.join(","));
    }
    if cfg.coldplug_on() {
        let n = loader.coldplug(Path::new("/sys/bus"));
        if n > 0 {
            log::info!("coldplug: loaded {n} module(s) for the devices present");
        }
    }
    Ok(Some(loader))
}

/// The failure policy: log one status line
/// `FAILED at <stage>: <reason>; action: <action>`, undo the mount, then run
/// the action. Returns only after the shell action's shell exits (the caller
/// retries the boot); every other action never returns.
pub fn fail(err: Error) {
    use config::OnFail;
    let stage = current_stage();
    let default_cfg;
    let cfg = match CONFIG.get() {
        Some(c) => c,
        None => {
            default_cfg = Config::default();
            &default_cfg
        }
    };
    if SWITCHED.load(Ordering::SeqCst) {
        log::error!(
            "FAILED at {}: {err}; action: wait (the root was already switched)",
            stage.name()
        );
        sys::wait_forever();
    }
    let sh = Path::new("/bin/sh");
    let root = Path::new("/");
    // Walk down from the chosen action to one that can be carried out.
    let mut action = chosen_action(cfg);
    if action == OnFail::OldInit && !exec::executable_in(root, &cfg.old_init) {
        log::warn!("no usable old init at {}", cfg.old_init.display());
        action = OnFail::Shell;
    }
    if action == OnFail::Shell && !exec::executable_in(root, sh) {
        log::warn!("no usable shell at /bin/sh");
        action = OnFail::Wait;
    }
    let what = match action {
        OnFail::OldInit => format!("oldinit {}", cfg.old_init.display()),
        OnFail::Shell => "shell /bin/sh".to_string(),
        other => other.name().to_string(),
    };
    log::error!("FAILED at {}: {err}; action: {what}", stage.name());
    let mounted = MOUNTED.lock().ok().and_then(|mut m| m.take());
    if let Some(target) = mounted {
        match RealSys.unmount(&target) {
            Ok(()) => log::info!(
                "unmounted {} (the volume was not changed)",
                target.display()
            ),
            Err(e) => log::error!("{e}"),
        }
    }
    let args = ARGS.get().map(Vec::as_slice).unwrap_or(&[]);
    match action {
        OnFail::OldInit => {
            let e = exec::exec(&cfg.old_init, args);
            log::error!("{e}");
        }
        OnFail::Shell => match sys::run_console_shell(sh) {
            Ok(status) => {
                log::info!("/bin/sh ended: {}", hook::status_text(status));
                sys::reap_children();
                return;
            }
            Err(e) => log::error!("cannot run /bin/sh: {}", error::ErrnoText(e)),
        },
        OnFail::Reboot | OnFail::PowerOff => {
            rustix::fs::sync();
            let cmd = if action == OnFail::Reboot {
                rustix::system::RebootCommand::Restart
            } else {
                rustix::system::RebootCommand::PowerOff
            };
            if let Err(e) = rustix::system::reboot(cmd) {
                log::error!("{what} failed: {}", error::ErrnoText(e));
            }
        }
        OnFail::Wait => {}
    }
    log::error!("nothing left to run; PID 1 waits");
    sys::wait_forever()
}
