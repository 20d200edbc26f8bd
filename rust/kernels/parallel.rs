//! The thread pool kernels run on, and the few ways they split work.
//!
//! loopwave keeps its own rayon pool rather than the global one so its size can be
//! changed at run time (`set_num_threads`), e.g. to leave cores to torch or
//! onnxruntime running beside it. Work below a size threshold runs serially on the
//! calling thread: spawning costs more than it saves on small frames.

use rayon::prelude::*;
use rayon::{ThreadPool, ThreadPoolBuilder};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Once, RwLock};

use super::error::{KernelError, Result};

/// Forks this process's line has made since the kernels were first used: each
/// child made by `fork` adds one (a `pthread_atfork` handler), so a child that
/// gets the pid of an ancestor that has exited (pids are reused) still knows its
/// state is not that ancestor's.
static FORKS: AtomicU64 = AtomicU64::new(0);

#[cfg(unix)]
extern "C" fn forked_child() {
    // async-signal-safe: one atomic add
    FORKS.fetch_add(1, Ordering::Relaxed);
}

#[cfg(unix)]
extern "C" {
    fn pthread_atfork(
        prepare: Option<extern "C" fn()>,
        parent: Option<extern "C" fn()>,
        child: Option<extern "C" fn()>,
    ) -> i32;
}

/// Which process this is: its pid and [`FORKS`]. A state made under another key
/// belongs to a parent (or to an ancestor whose pid this process was given) and
/// must not be used here. The first call starts counting forks; the Python module
/// calls it when it is imported.
pub fn process_key() -> (u32, u64) {
    static WATCH: Once = Once::new();
    WATCH.call_once(|| {
        #[cfg(unix)]
        // SAFETY: registers a handler that only adds to an atomic; it is never
        // unregistered, and the function lives as long as the process
        unsafe {
            pthread_atfork(None, None, Some(forked_child));
        }
    });
    (std::process::id(), FORKS.load(Ordering::Relaxed))
}

/// One process's pool. A child made by `fork` has a copy of its parent's slot
/// but none of the parent's threads: the pool there would never run work, and
/// its lock may have been held (read by a worker, written by `set_num_threads`)
/// at the moment of the fork, by a thread the child does not have, so taking it
/// could wait forever. A child therefore never touches the inherited slot
/// beyond its atomics: it makes its own (the old one is left alone, neither
/// locked nor dropped: dropping that pool would signal threads that live in
/// the parent only).
struct Slot {
    /// The [`process_key`] it was made under.
    key: (u32, u64),
    /// Threads of the pool (0 before it starts), readable without the lock, so a
    /// child can start one of the same size.
    threads: AtomicUsize,
    pools: RwLock<Pools>,
}

/// The pool kernels run on, and the pools `set_num_threads` replaced, kept for
/// reuse so that switching between a few sizes starts no new threads.
#[derive(Default)]
struct Pools {
    current: Option<Arc<ThreadPool>>,
    /// Most recently replaced last; at most [`MAX_SPARES`] pools of together at
    /// most [`spare_threads`] threads (a larger one is dropped, its threads ending
    /// once the calls running on it finish).
    spares: Vec<Arc<ThreadPool>>,
}

/// Replaced pools kept for reuse.
const MAX_SPARES: usize = 3;

/// The most threads the spare pools may hold together: four times the cores, at
/// least 32 (idle, they sleep; each holds a stack).
fn spare_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (4 * cores).max(32)
}

impl Pools {
    /// Make `p` the pool kernels run on; the one it replaces becomes a spare.
    /// Returns the pools no longer kept, to be dropped after the lock.
    fn put(&mut self, p: Arc<ThreadPool>) -> Vec<Arc<ThreadPool>> {
        let mut dropped = Vec::new();
        let budget = spare_threads();
        match self.current.replace(p) {
            Some(old) if old.current_num_threads() > budget => dropped.push(old),
            Some(old) => self.spares.push(old),
            None => {}
        }
        let held = |v: &[Arc<ThreadPool>]| v.iter().map(|p| p.current_num_threads()).sum::<usize>();
        while self.spares.len() > MAX_SPARES || held(&self.spares) > budget {
            dropped.push(self.spares.remove(0)); // the oldest first
        }
        dropped
    }

    /// Take the spare pool of `n` threads, if one is kept.
    fn take_spare(&mut self, n: usize) -> Option<Arc<ThreadPool>> {
        let i = self
            .spares
            .iter()
            .position(|p| p.current_num_threads() == n)?;
        Some(self.spares.remove(i))
    }
}

/// This process's [`Slot`]: made on first use and never freed (one small leak
/// per `fork` that uses the kernels).
static SLOT: AtomicPtr<Slot> = AtomicPtr::new(std::ptr::null_mut());

fn slot() -> &'static Slot {
    let key = process_key();
    let cur = SLOT.load(Ordering::Acquire);
    // SAFETY: a non-null SLOT points to a leaked Slot, valid for the whole process
    // (and, copied, in a forked child)
    let inherited = unsafe { cur.as_ref() };
    if let Some(s) = inherited.filter(|s| s.key == key) {
        return s;
    }
    let threads = inherited.map_or(0, |s| s.threads.load(Ordering::Relaxed));
    let new = Box::into_raw(Box::new(Slot {
        key,
        threads: AtomicUsize::new(threads),
        pools: RwLock::new(Pools::default()),
    }));
    match SLOT.compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: just leaked into SLOT
        Ok(_) => unsafe { &*new },
        Err(won) => {
            // another thread of this process made it first; ours was never shared
            // SAFETY: `new` came from Box::into_raw above and was not published
            drop(unsafe { Box::from_raw(new) });
            // SAFETY: as for `cur`
            unsafe { &*won }
        }
    }
}

/// Samples per task for elementwise kernels; smaller inputs run serially.
pub const CHUNK: usize = 3 * 16384;

/// The fewest `chunk`-sized pieces a task of a folding reduction should take
/// over `len` samples: about four tasks per thread, so that a reduction whose
/// accumulator is large (histograms) makes and merges a few of them per call,
/// not one per chunk. Call inside [`install`].
pub fn fold_min_len(len: usize, chunk: usize) -> usize {
    (len.div_ceil(chunk) / (4 * rayon::current_num_threads())).max(1)
}

/// The most worker threads a pool may have (starting many thousands takes minutes).
pub const MAX_THREADS: usize = 1024;

/// `LOOPWAVE_NUM_THREADS` when it is a whole number above 0 (capped at
/// [`MAX_THREADS`]), else the number of available cores.
fn default_threads() -> usize {
    std::env::var("LOOPWAVE_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&n| n > 0)
        .map(|n| n.min(MAX_THREADS as u64) as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .min(MAX_THREADS)
}

fn build(n: usize) -> Result<ThreadPool> {
    ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("loopwave-{i}"))
        .build()
        .map_err(|e| KernelError::value("n", format!("could not start {n} threads: {e}")))
}

/// The pool kernels run on, created on first use (and again, of the same
/// size, in a child process made by `fork`: see [`Slot`]).
pub fn pool() -> Arc<ThreadPool> {
    let s = slot();
    let read = s.pools.read().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = read.current.as_ref() {
        return Arc::clone(p);
    }
    drop(read);
    let mut guard = s.pools.write().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = guard.current.as_ref() {
        return Arc::clone(p);
    }
    let n = match s.threads.load(Ordering::Relaxed) {
        0 => default_threads(),
        n => n,
    };
    // If even that many threads cannot start, fall back to one.
    let p = Arc::new(
        build(n)
            .or_else(|_| build(1))
            .expect("cannot start a thread"),
    );
    s.threads.store(p.current_num_threads(), Ordering::Relaxed);
    guard.current = Some(Arc::clone(&p));
    p
}

/// Set the number of worker threads; 0 restores the default
/// (`LOOPWAVE_NUM_THREADS`, else the number of available cores).
///
/// The pool being replaced is kept for reuse (see [`Pools`]), so switching back
/// and forth between a few sizes starts threads only the first time; asking for
/// the current size changes nothing.
pub fn set_num_threads(n: usize) -> Result<()> {
    let n = if n == 0 { default_threads() } else { n };
    if n > MAX_THREADS {
        return Err(KernelError::value(
            "n",
            format!("at most {MAX_THREADS} threads, got {n}"),
        ));
    }
    let s = slot();
    let lock = || s.pools.write().unwrap_or_else(|e| e.into_inner());
    let dropped = {
        let mut guard = lock();
        if guard.current.as_ref().map(|p| p.current_num_threads()) == Some(n) {
            return Ok(());
        }
        match guard.take_spare(n) {
            Some(p) => {
                s.threads.store(n, Ordering::Relaxed);
                guard.put(p)
            }
            None => {
                // starting threads takes a while: not under the lock
                drop(guard);
                let p = Arc::new(build(n)?);
                let mut guard = lock();
                s.threads.store(n, Ordering::Relaxed);
                guard.put(p)
            }
        }
    };
    drop(dropped); // after the lock; their threads stop once the calls running on them finish
    Ok(())
}

/// Number of worker threads kernels use.
pub fn num_threads() -> usize {
    pool().current_num_threads()
}

/// Run `f` inside the pool (so nested rayon calls use it).
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool().install(f)
}

/// Whether `f` holds for every chunk of `data`.
pub fn all_chunks<T: Sync>(data: &[T], chunk: usize, f: impl Fn(&[T]) -> bool + Sync) -> bool {
    if data.len() <= chunk {
        return f(data);
    }
    install(|| data.par_chunks(chunk).all(&f))
}

/// Call `f(input_chunk, output_chunk)` over matching chunks of two buffers, in
/// parallel when there is more than one chunk. `in_step`/`out_step` are the
/// samples per item (e.g. 3 per pixel); chunks hold `items` items.
pub fn zip_chunks<I: Sync, O: Send>(
    input: &[I],
    in_step: usize,
    output: &mut [O],
    out_step: usize,
    items: usize,
    f: impl Fn(&[I], &mut [O]) + Sync,
) {
    debug_assert_eq!(input.len() / in_step, output.len() / out_step);
    let (ic, oc) = (items * in_step, items * out_step);
    if input.len() <= ic {
        f(input, output);
        return;
    }
    install(|| {
        input
            .par_chunks(ic)
            .zip(output.par_chunks_mut(oc))
            .for_each(|(i, o)| f(i, o))
    })
}

/// [`zip_chunks`] for a chunk function that reports success; true if every chunk did.
pub fn zip_chunks_all<I: Sync, O: Send>(
    input: &[I],
    in_step: usize,
    output: &mut [O],
    out_step: usize,
    items: usize,
    f: impl Fn(&[I], &mut [O]) -> bool + Sync,
) -> bool {
    let (ic, oc) = (items * in_step, items * out_step);
    if input.len() <= ic {
        return f(input, output);
    }
    install(|| {
        input
            .par_chunks(ic)
            .zip(output.par_chunks_mut(oc))
            .map(|(i, o)| f(i, o))
            .reduce(|| true, |a, b| a & b)
    })
}

/// Like [`zip_chunks`] with two inputs of the same layout.
pub fn zip2_chunks<A: Sync, B: Sync, O: Send>(
    a: &[A],
    b: &[B],
    in_step: usize,
    output: &mut [O],
    out_step: usize,
    items: usize,
    f: impl Fn(&[A], &[B], &mut [O]) + Sync,
) {
    let (ic, oc) = (items * in_step, items * out_step);
    if a.len() <= ic {
        f(a, b, output);
        return;
    }
    install(|| {
        a.par_chunks(ic)
            .zip(b.par_chunks(ic))
            .zip(output.par_chunks_mut(oc))
            .for_each(|((a, b), o)| f(a, b, o))
    })
}

/// Map each frame (a `frame_in`-sample chunk of `input`) to a `frame_out`-sample
/// chunk of `output`, frames in parallel; `f` gets the frame index.
pub fn per_frame<I: Sync, O: Send>(
    input: &[I],
    frame_in: usize,
    output: &mut [O],
    frame_out: usize,
    f: impl Fn(usize, &[I], &mut [O]) -> Result<()> + Sync,
) -> Result<()> {
    install(|| {
        input
            .par_chunks(frame_in)
            .zip(output.par_chunks_mut(frame_out))
            .enumerate()
            .try_for_each(|(i, (src, dst))| f(i, src, dst))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(v: &[Arc<ThreadPool>]) -> Vec<usize> {
        v.iter().map(|p| p.current_num_threads()).collect()
    }

    #[test]
    fn replaced_pools_are_kept_and_taken_back() {
        let mut pools = Pools::default();
        for n in [1, 2, 3] {
            assert!(pools.put(Arc::new(build(n).unwrap())).is_empty());
        }
        assert_eq!(sizes(&pools.spares), [1, 2]);
        let two = pools.take_spare(2).unwrap();
        assert_eq!(two.current_num_threads(), 2);
        assert!(pools.take_spare(2).is_none());
        assert!(pools.put(Arc::clone(&two)).is_empty());
        assert_eq!(sizes(&pools.spares), [1, 3]);
        assert!(Arc::ptr_eq(pools.current.as_ref().unwrap(), &two));
    }

    #[test]
    fn spares_are_bounded_in_number_and_threads() {
        let mut pools = Pools::default();
        let mut dropped = Vec::new();
        for n in 1..=6 {
            dropped.extend(pools.put(Arc::new(build(n).unwrap())));
        }
        // the oldest go first
        assert_eq!(sizes(&pools.spares), [3, 4, 5]);
        assert_eq!(sizes(&dropped), [1, 2]);
        // a pool over the whole budget is not kept
        let big = spare_threads() + 1;
        pools.put(Arc::new(build(big).unwrap()));
        let gone = pools.put(Arc::new(build(1).unwrap()));
        assert_eq!(sizes(&gone), [big]);
        assert_eq!(sizes(&pools.spares), [4, 5, 6]);
        // together over the budget: the oldest go until they fit
        let mut pools = Pools::default();
        let half = spare_threads() / 2 + 1;
        for n in [half, half] {
            assert!(pools.put(Arc::new(build(n).unwrap())).is_empty());
        }
        let gone = pools.put(Arc::new(build(1).unwrap()));
        assert_eq!(sizes(&gone), [half]);
        assert_eq!(sizes(&pools.spares), [half]);
    }
}
