//! glibc's `posix_spawn`, with its file actions and attributes owned so that every early
//! return destroys them.

use std::ffi::CStr;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{ProcessGroup, SpawnFailure, SpawnRequest, SpawnStep};
use crate::Pid;

/// A glibc function that may be missing, looked up with `dlsym` on first use and cached
/// (std's `weak!` does the same), so the binary carries no hard reference to it.
pub(super) struct WeakFn {
    name: &'static CStr,
    /// 0: not looked up yet; 1: missing; anything else: the address.
    address: AtomicUsize,
}

impl WeakFn {
    const fn new(name: &'static CStr) -> WeakFn {
        WeakFn {
            name,
            address: AtomicUsize::new(0),
        }
    }

    /// The function's address, or `None` when this glibc does not have it.
    pub(super) fn get(&self) -> Option<usize> {
        let mut address = self.address.load(Ordering::Relaxed);
        if address == 0 {
            // SAFETY: `name` is a NUL-terminated string; RTLD_DEFAULT searches the global
            // scope, which is what a link-time reference would have bound to.
            let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, self.name.as_ptr()) };
            address = if found.is_null() { 1 } else { found as usize };
            // Racing threads find the same address: storing it twice is harmless.
            self.address.store(address, Ordering::Relaxed);
        }
        (address != 1).then_some(address)
    }
}

/// `posix_spawn_file_actions_addchdir_np` (glibc 2.29).
pub(super) static ADDCHDIR: WeakFn = WeakFn::new(c"posix_spawn_file_actions_addchdir_np");
/// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34).
pub(super) static ADDCLOSEFROM: WeakFn = WeakFn::new(c"posix_spawn_file_actions_addclosefrom_np");

type AddChdir =
    unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, *const libc::c_char) -> libc::c_int;
type AddClosefrom =
    unsafe extern "C" fn(*mut libc::posix_spawn_file_actions_t, libc::c_int) -> libc::c_int;

/// A request for an extension this glibc lacks; `method` sends such requests to fork+exec,
/// so this only guards against a caller that bypassed it.
fn missing(name: &CStr) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("this glibc has no {}", name.to_string_lossy()),
    )
}

/// Turns a `posix_spawn*` return value (0 or an errno) into a result.
fn check(rc: libc::c_int) -> io::Result<()> {
    match rc {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// A `posix_spawn_file_actions_t` or `posix_spawnattr_t`: initialised by its `init`
/// function on creation, handed to its `destroy` function on drop. Boxed, so it never
/// moves after `init` (glibc does not promise that it may).
struct SpawnObject<T> {
    raw: Box<MaybeUninit<T>>,
    destroy: unsafe extern "C" fn(*mut T) -> libc::c_int,
}

impl<T> SpawnObject<T> {
    /// # Safety
    ///
    /// `init` and `destroy` must be the matching pair of glibc functions for `T`.
    unsafe fn new(
        init: unsafe extern "C" fn(*mut T) -> libc::c_int,
        destroy: unsafe extern "C" fn(*mut T) -> libc::c_int,
    ) -> io::Result<SpawnObject<T>> {
        let mut raw = Box::new(MaybeUninit::uninit());
        // SAFETY: `init` writes a valid, empty object into the memory we own (caller's
        // contract: it is the right function for `T`).
        check(unsafe { init(raw.as_mut_ptr()) })?;
        Ok(SpawnObject { raw, destroy })
    }

    fn as_mut_ptr(&mut self) -> *mut T {
        self.raw.as_mut_ptr()
    }
}

impl<T> Drop for SpawnObject<T> {
    fn drop(&mut self) {
        // SAFETY: initialised in `new` by the matching `init`, destroyed exactly once here.
        unsafe { (self.destroy)(self.raw.as_mut_ptr()) };
    }
}

/// A signal set holding `signals`.
fn signal_set(signals: &[libc::c_int]) -> io::Result<libc::sigset_t> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set; sigaddset only writes into it.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for &signal in signals {
            if libc::sigaddset(set.as_mut_ptr(), signal) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(set.assume_init())
    }
}

pub(super) fn spawn(request: &SpawnRequest<'_>, window: &super::SpawnWindow) -> io::Result<Pid> {
    // SAFETY: each init is paired with its own destroy.
    let mut actions = unsafe {
        SpawnObject::new(
            libc::posix_spawn_file_actions_init,
            libc::posix_spawn_file_actions_destroy,
        )
    }?;
    // SAFETY: as above.
    let mut attributes =
        unsafe { SpawnObject::new(libc::posix_spawnattr_init, libc::posix_spawnattr_destroy) }?;
    let mut flags = libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
    // The Rust runtime ignores SIGPIPE and the mask survives exec: give the program the
    // defaults it expects, as `reset_signals_for_exec` does on the fork path.
    let empty = signal_set(&[])?;
    let sigpipe = signal_set(&[libc::SIGPIPE])?;
    // SAFETY: every pointer passed is valid for the call: `actions` and `attributes` are
    // initialised and owned here, the sets live on this stack frame, the strings come from
    // `request`, which outlives the call. glibc copies the cwd path into the actions.
    unsafe {
        let actions = actions.as_mut_ptr();
        let attributes = attributes.as_mut_ptr();
        for (target, source) in request.stdio.iter().enumerate() {
            if let Some(fd) = source {
                // Source equal to target: glibc clears FD_CLOEXEC (Austin Group issue 411).
                check(libc::posix_spawn_file_actions_adddup2(
                    actions,
                    fd.as_raw_fd(),
                    target as libc::c_int,
                ))?;
            }
        }
        if let Some(cwd) = request.cwd {
            let address = ADDCHDIR.get().ok_or_else(|| missing(ADDCHDIR.name))?;
            // SAFETY (transmute): the address dlsym gave for this name, whose glibc
            // prototype `AddChdir` is.
            let addchdir = std::mem::transmute::<usize, AddChdir>(address);
            check(addchdir(actions, cwd.as_ptr()))?;
        }
        if request.close_fds {
            let address = ADDCLOSEFROM
                .get()
                .ok_or_else(|| missing(ADDCLOSEFROM.name))?;
            // SAFETY (transmute): as above, with the prototype `AddClosefrom`.
            let addclosefrom = std::mem::transmute::<usize, AddClosefrom>(address);
            // glibc refuses closefrom(3) with EBADF when RLIMIT_NOFILE is 3 or less ("not
            // a valid fd"), though fds above the limit may still be open. The fork+exec
            // path closes them whatever the limit; without this, a spawn at a low fd limit
            // failed with a misleading "Bad file descriptor" (found by the soak suite).
            let added = addclosefrom(actions, 3);
            if added == libc::EBADF {
                return super::fork_exec(request, window);
            }
            check(added)?;
        }
        check(libc::posix_spawnattr_setsigmask(attributes, &empty))?;
        check(libc::posix_spawnattr_setsigdefault(attributes, &sigpipe))?;
        if request.new_session {
            flags |= libc::c_int::from(libc::POSIX_SPAWN_SETSID);
        }
        if let Some(group) = request.process_group {
            flags |= libc::POSIX_SPAWN_SETPGROUP;
            let pgid = match group {
                ProcessGroup::New => 0,
                ProcessGroup::Join(pgid) => pgid.as_raw(),
            };
            check(libc::posix_spawnattr_setpgroup(attributes, pgid))?;
        }
        check(libc::posix_spawnattr_setflags(
            attributes,
            flags as libc::c_short,
        ))?;
        let mut pid: libc::pid_t = 0;
        let spawned = libc::posix_spawn(
            &mut pid,
            request.program.as_ptr(),
            actions,
            attributes,
            request.argv.as_ptr().cast(),
            request.envp.as_ptr().cast(),
        );
        if spawned != 0 {
            let step = match request.cwd {
                Some(cwd) if !super::can_enter(cwd) => SpawnStep::Chdir,
                _ => SpawnStep::Exec,
            };
            return Err(SpawnFailure {
                step,
                errno: spawned,
            }
            .into_io_error());
        }
        Pid::from_raw(pid)
            .ok_or_else(|| io::Error::other(format!("posix_spawn returned an invalid pid {pid}")))
    }
}
