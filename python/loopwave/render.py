"""The morph renderer: loopback img2img with a colour plan, schedules, motion and resume.

``render(settings)`` follows the seed's workflow: frame 0 from the init image
(or from noise), then each frame is the previous one, moved by the motion
schedules (:func:`loopwave.warp_affine`), run through img2img at the wave
denoise (or a schedule) with the prompt in force, and colour-corrected toward
its colour-plan target (or the first frame, or not at all).

Every frame is stored losslessly as ``frames/NNNNNN.png`` in the run directory,
then ``state.json`` records it (both written atomically, in that order, each
synced to disk first), so ``render(..., resume=True)`` / ``loopwave render
--resume RUN_DIR`` continues after a crash, a kill or a power cut and produces
exactly the frames an uninterrupted run would (deterministic on the CPU). A
recorded frame found damaged (a run made before frames were synced, a disk that
ignores fsync) is made again, with the frames after it, and a RuntimeWarning.

The work runs as a pipeline of stages behind bounded queues, so memory stays
flat however many frames: the render thread generates and colour-corrects
(sequential by nature: each frame needs the corrected previous one); a writer
thread computes the drift figures and stores each frame; an encoder stage
interpolates and encodes the frames as they arrive (when PyAV is installed), on a
thread, or with ``stages="process"`` in a child process at a lower CPU priority (a
codec that crashes then takes down only that process: the render stops with a
StageError, every frame on disk and no partial video, and a resume encodes again).
On an H200 the two placements rendered at the same rate (benches/RESULTS_GEN.md), so
the thread stays the default.
An error in any stage stops the render with everything generated so far on
disk. A resumed run re-encodes the stored frames while it makes new ones (those are
read back from disk until the video has caught up); one whose frames and video are
complete keeps the video.

Outputs in the run directory: ``settings.json`` (the resolved settings, which
render the same video again; relative paths in them are made absolute, against the
current folder, when the run starts, so a resume may start from any folder),
``state.json`` (the last frame recorded, the settings' digest and the finished
video's size and time, for a resume),
``frames/``, ``plan/`` and ``plan.json`` (the colour plan's keyframes and index),
``drift.csv`` and ``drift.png`` (per frame: Lab distance to the target, red, and to the
previous frame, blue, empty for frame 0, which has none) and ``NAME.mp4``. A run
stopped before its last frame (``stop_after``, an error, a ``cancel``) has no
``drift.png`` or video yet: the resume that finishes it writes them.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import csv
import errno
import functools
import hashlib
import inspect
import itertools
import json
import math
import os
import queue
import re
import shlex
import signal
import stat
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ._encode_worker import END, FRAME, HEADER
from ._progress import Progress
from ._validate import error_text, not_a_file, unmakeable
from .backends import CFG_FORM, MAX_CFG, MAX_STEPS, MIN_CFG, Img2Img, load_backend
from .color import ColorTarget, color_correct, motion_matrix, rgb_to_lab, warp_affine
from .plan import ColourPlan, _atomic_json, _read_json, _read_npy, _read_png, keyframe_indices
from .png import make_folder, naming, replacing, sync_file, sync_folder, whole_png, write_png
from .prompt_weights import parse_weights
from .schedule import (
    Prompt,
    PromptTrack,
    Schedule,
    parse_prompts,
    seed_for,
    wave_strength,
    whole,
)
from .settings import ADDED_LATER, SCHEMA, Settings, SettingsError

__all__ = ["RenderCancelled", "RenderResult", "StageError", "render", "render_frames"]


@dataclass(frozen=True)
class RenderResult:
    """What :func:`render` made: the run folder, the number of frames made in all
    (``stop_after + 1`` for a run stopped there), and the video (None with
    ``video=False`` or for a run stopped before its last frame)."""

    run_dir: Path
    frames: int
    video: Path | None


class _RunLock:
    """``RUN_DIR/.lock``, held with ``flock`` while a render runs: the kernel lets go of
    it when the process ends, however it ends (a killed render's lock is free at once),
    and two processes cannot both take it (a lock file written after it was created had
    a moment with no pid in it, and a second render took that as a dead holder). The
    file holds the holder's pid, for the message; it is removed on release."""

    def __init__(self, rd: Path) -> None:
        make_folder(rd)
        self.path = rd / ".lock"
        self._released = False
        self._exited = False  # (__exit__ began)
        self._stages: list[tuple[_Stage, bool, Callable[[], None] | None]] = []
        fd = -1  # open here, not yet the lock's (closed on any error, a Ctrl-C too)

        def drop() -> None:
            nonlocal fd
            was, fd = fd, -1  # (first: a Ctrl-C at the close then leaves it open, never
            os.close(was)  # closes a number that may be another file's by then)

        # (one thread of this process at a time from the open to the registration in
        # _HELD, and in __exit__ from the removal to the release: a render on another
        # thread failing between them was told "another process", with its own pid)
        try:
            with _LOCKING:
                while True:
                    if _RunLock._held_here(self.path):  # (refused at once, not after 40
                        raise ValueError(_RunLock.refusal(rd))  # ms of tries holding _LOCKING)
                    foreign = _RunLock.foreign(self.path)  # (again: one may have been put
                    if foreign:  # there while the model loaded)
                        raise ValueError(foreign)
                    try:
                        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
                    except OSError:
                        # a link (ELOOP) or folder (EISDIR) put there since foreign() looked
                        foreign = _RunLock.foreign(self.path)
                        if foreign:
                            raise ValueError(foreign) from None
                        raise
                    if not stat.S_ISREG(os.fstat(fd).st_mode):
                        # a FIFO put there since (O_RDWR opens one without waiting): not
                        # taken, or it would be deleted at the end; foreign() names it
                        drop()
                        continue
                    try:
                        _flock_soon(fd)
                    except BlockingIOError:
                        # a holder in another process that removed the file after we
                        # opened it is letting go: try the file at the path, not a refusal
                        gone = not _at_path(fd, self.path)
                        drop()
                        if gone:
                            continue
                        raise ValueError(_RunLock.refusal(rd)) from None
                    # the holder before us may have removed the file after we opened it:
                    # then this lock is on a file no one else sees; take the one at the path
                    if _at_path(fd, self.path):
                        break
                    drop()
                # the pid is for another render's message only: a full disk (ENOSPC
                # writing it) left the lock taken and its descriptor open for the rest of
                # the process, and a retry was told another process held the folder
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                    os.write(fd, str(os.getpid()).encode())
                st = os.fstat(fd)
                self.fd, fd = fd, -1  # the lock's from here: _release closes it
                self.key = (st.st_dev, st.st_ino)
                _HELD.add(self.key)
        except BaseException:
            # (a review: a Ctrl-C once the lock was taken or registered, before the
            # caller had it, left it held for the rest of the process)
            if hasattr(self, "key"):
                self._release()
            elif fd >= 0:
                drop()
            raise

    def __del__(self) -> None:
        # a lock taken that nothing let go: a Ctrl-C as render() got it, before its try,
        # or in __exit__ before the release was handed to the stages or made (a review:
        # held for the rest of the process, every render of it refused). Given back as
        # __exit__ gives it, once the stage threads still running have ended (a review:
        # let go at once, while a stage left running still wrote in the folder). Run on
        # whatever thread collects it, holding whatever lock, where every stage has
        # ended: the locks __exit__ then takes are reentrant (a review: a stage thread's
        # own hung it for good); on a thread of its own where one runs, but not at
        # interpreter exit (a review: that thread's start waited for good). An unreachable
        # lock not released is one whose release a Ctrl-C stopped: while the release is
        # handed to the stages, their callbacks refer to it
        if not hasattr(self, "key") or self._released:
            return
        with contextlib.suppress(Exception):
            if not any(st._alive() for st, _, _ in self._stages):
                self.__exit__(None, None, None)  # (no stage's queue or Event taken)
            elif not sys.is_finalizing():  # (at exit the kernel lets go of the flock)
                # a stage still running is let go through its queue, whose lock the
                # collecting thread may hold (a review: it waited on itself for good)
                threading.Thread(
                    target=self.__exit__,
                    args=(None, None, None),
                    name="loopwave-lock-release",
                    daemon=True,
                ).start()

    @staticmethod
    def refusal(rd: Path) -> str:
        """Why a render cannot take ``rd`` while another holds its lock."""
        if _RunLock._held_here(rd / ".lock", _WINDING):
            return (
                f"run_dir: {rd} is still held by a render in this process that has stopped "
                "(a second Ctrl-C) while its threads (the encoder's, the frame writer's), "
                "which cannot be stopped part way, end their work there; try again when "
                "they have (seconds)"
            )
        if _RunLock._held_here(rd / ".lock"):
            return (
                f"run_dir: {rd} is being rendered in this process: by a render on "
                "another thread, or a render_frames iterator not closed (close it, "
                "or iterate it in a with contextlib.closing(...) block)"
            )
        pid = _RunLock._holder(rd / ".lock")
        return (
            f"run_dir: {rd} is being rendered by another process"
            f"{f' (pid {pid})' if pid else ''}; wait for it, or stop it first"
        )

    @staticmethod
    def foreign(path: Path) -> str | None:
        """Why the file at a run's lock path is not a run's lock file, or None. A run's
        holds its pid, or nothing (a render killed before it wrote it); a render empties,
        rewrites and then deletes the file there, so a user's (or, through a link, the
        file it leads to) was lost."""
        try:
            st = os.lstat(path)
        except OSError:  # (none there; or an error the open reports as before)
            return None
        if stat.S_ISLNK(st.st_mode):
            why = "a link"
        elif stat.S_ISDIR(st.st_mode):
            why = "a folder"
        elif not stat.S_ISREG(st.st_mode):
            why = "not a regular file"
        else:
            try:
                fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
                try:
                    head = os.pread(fd, 64, 0)
                finally:
                    os.close(fd)
            except OSError:
                return None
            text = head.strip()
            if len(head) <= 32 and (not text or text.isdigit()):
                return None
            why = "it holds other text"
        return (
            f"run_dir: {path} is not a loopwave run's lock file ({why}); a render keeps "
            "its lock there and deletes it at its end, so move it"
        )

    @staticmethod
    def busy(rd: Path) -> str | None:
        """The refusal a render would get for ``rd`` now, or None where no render holds
        its lock (a probe: the lock is taken and let go at once; no lock file is made).
        A file at the lock's path that is not a run's is refused (:meth:`foreign`)."""
        path = rd / ".lock"
        foreign = _RunLock.foreign(path)
        if foreign:
            return foreign
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return None
        try:
            # another process's probe holds it for a moment: waited out, as _flock_soon
            # does, but with _LOCKING taken for each try only (held through the tries,
            # it stalled every thread taking or releasing any run lock: 78 ms a take)
            tries = 10  # (5 tries 10 ms apart: a probe in a loop beside it won 1 in 1,067)
            while True:
                with _LOCKING:
                    if _RunLock._held_here(path):  # (this process: never a probe)
                        return _RunLock.refusal(rd)
                    if not _at_path(fd, path):
                        # the file was let go of and made again since it was opened (a
                        # review: the old file's free lock was taken for "no render here");
                        # checked before the lock, so the lock is held for no longer than
                        # a take of it (a probe in a loop holding it longer refused takes)
                        os.close(fd)
                        fd = -1
                        try:
                            fd = os.open(path, os.O_RDWR)
                        except OSError:
                            return None
                    try:
                        _flock(fd)
                    except BlockingIOError:
                        tries -= 1
                        if not tries:
                            return _RunLock.refusal(rd) if _at_path(fd, path) else None
                    else:
                        return None
                time.sleep(0.005)
        finally:
            if fd >= 0:
                os.close(fd)

    @staticmethod
    def _held_here(path: Path, among: set[tuple[int, int]] | None = None) -> bool:
        """Whether this process holds the lock file now at ``path`` (by its file, not
        its pid: a process of the same pid in another container named itself); with
        ``among``, whether it is one of those."""
        try:
            st = os.stat(path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) in (_HELD if among is None else among)

    @staticmethod
    def _holder(path: Path) -> int | None:
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    def __enter__(self) -> _RunLock:
        return self

    def outlived_by(
        self, stage: _Stage, drain: bool = False, then: Callable[[], None] | None = None
    ) -> None:
        """A stage whose thread may outlive the block: the render left it running (a
        second Ctrl-C stopped its wait for it, or for the stage before it). It is then
        told to stop (:meth:`_Stage.let_go_now`), and the lock is held until its thread
        has ended: a thread cannot be stopped part way, and it ends its work in the run
        folder (an encoder finishing its flush, then deleting its partial video, which a
        resume started at once in this process was writing again). ``drain``: it is let
        go with its queue done first (:meth:`_Stage.let_go_now`); ``then``: called once
        the block has ended and the thread too (at once where it has), before the lock
        is let go."""
        self._stages.append((stage, drain, then))

    def __exit__(self, *exc: object) -> None:
        # released once every stage thread named by outlived_by() has ended: at once in
        # a render that waited for them, which is every render but one let go
        self._exited = True  # (first: see render(), which calls this again where unset)
        if not self._stages:
            try:
                self._release()
            except BaseException:  # (a Ctrl-C as it began: see the except below)
                if not self._released:
                    self._release()
                raise
            return
        stages = [st for st, _, _ in self._stages]
        counted: set[int] = set()  # the stages whose share of the release is in
        count = threading.Lock()

        def one_ended(st: _Stage) -> None:
            with count:  # (a share given twice counts once: see the except below)
                if id(st) in counted:
                    return
                counted.add(id(st))
                last = len(counted) == len(stages)
            if last:
                self._release()

        def let_go(st: _Stage, drain: bool, e: object = exc[1]) -> None:
            if st._alive():
                st.let_go_now(drain)
                _WINDING.add(self.key)  # (for the refusal's words)
                if drain and e is not None:  # (the CLI: the frames it had may not be
                    # saved, the process ending at once; an encoder alone has them all)
                    with contextlib.suppress(AttributeError, TypeError):
                        setattr(e, _LEFT_RUNNING, True)

        def ending(st: _Stage, then: Callable[[], None] | None) -> None:
            try:
                if then is not None:
                    then()
            finally:
                one_ended(st)

        # each stage's then and its share of the release in one after(): in two, a thread
        # that ended between them ran its then while the release, run at once here, let
        # the lock go (a review: a record still under way)
        try:
            for st, drain, _ in self._stages:
                let_go(st, drain)
            for st, _, then in self._stages:
                st.after(functools.partial(ending, st, then))
        except BaseException as e:
            # a Ctrl-C above (a third), or one in a then run here (its thread ended): a
            # stage taken off a list before its after() lost its share, and the lock was
            # held for the rest of the process (a review). Every stage is let go and gets
            # its share once its thread has ended (after its then, where that was
            # registered; one not reached loses its then: a video left to the resume)
            for st, drain, _ in self._stages:
                let_go(st, drain, e)
                st.after(functools.partial(one_ended, st))
            with count:
                whole = len(counted) == len(stages)
            if whole and not self._released:
                # every share in (every thread ended), the release stopped as it began, or
                # before (a Ctrl-C after the last count): the lock was held for the rest
                # of the process (reviews). Run again here; a release under way on a
                # stage thread makes this one return (_released, under _LOCKING)
                self._release()
            raise

    def _release(self) -> None:
        # removed while still held, so a render that opened it meanwhile retries on a
        # new file rather than locking this one, which no one else would see. A folder
        # no longer writable (made read-only, a file system remounted so after an I/O
        # error) keeps the file, unlocked: its error hid the render's own, and the lock
        # stayed held for the rest of the process
        with _LOCKING:
            if self._released:  # (a release run again: __del__, a retry)
                return
            try:
                # only its own file: one released part way (a Ctrl-C) and then again
                # deleted the lock file of the render that had taken the folder since
                # (a review: a third render then took it beside that one)
                with contextlib.suppress(OSError):
                    if _at_path(self.fd, self.path):
                        self.path.unlink()
            finally:
                _HELD.discard(self.key)
                _WINDING.discard(self.key)
                self._released = True  # (before the close: never a second one)
                os.close(self.fd)


# (not on Windows, which has no links a render would meet here)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

# the lock files this process holds, by (device, inode), and the lock that makes taking
# or letting go of one, with its entry here, one step for this process's threads
_HELD: set[tuple[int, int]] = set()
# those of them kept past their render by a stage thread it let go (_RunLock.outlived_by)
_WINDING: set[tuple[int, int]] = set()


# the lock of this process's run locks, taken with ``with``: a C lock's ``__enter__``
# leaves no moment for a Ctrl-C between the take and the block (a review: a Python
# ``__enter__`` that marked the take after it, where a Ctrl-C landed, left it held for
# good, and every later render in the process hung). Reentrant: _RunLock.__exit__'s
# retried release, on a thread holding it, does not wait for itself
_LOCKING = threading.RLock()


def _locking_held_here() -> bool:
    """Whether this thread holds :data:`_LOCKING`."""
    return bool(_LOCKING._is_owned())  # type: ignore[attr-defined]


def _at_path(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is the one at ``path`` now."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _flock_soon(fd: int, tries: int = 5) -> None:
    """:func:`_flock`, tried again for up to 40 ms: a fresh render's probe of a run's
    lock (:meth:`_RunLock.busy`) holds it for a moment, and a resume starting then was
    refused (from a review: 413 of 7,089 takes with a probe in a loop)."""
    for i in range(tries):
        try:
            _flock(fd)
            return
        except BlockingIOError:
            if i == tries - 1:
                raise
            time.sleep(0.01)


def _flock(fd: int) -> None:
    """Lock ``fd`` exclusively without waiting (``BlockingIOError`` when held)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock between processes
        return
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _nothing_made(rd: Path) -> bool:
    """Whether a run folder's state says no frame yet (``last`` -1, written before the
    colour plan is built) and it holds no frame and no keyframe: a render that failed
    before it made anything (a model out of memory at its first keyframe), which a fresh
    run, with settings fixed, may start over."""
    try:
        if _read_state(rd) >= 0:
            return False
    except ValueError:  # damaged: a run, for the resume to report
        return False
    return not any(_holds_files(rd / sub, _our_tmp) for sub in ("frames", "plan"))


def _holds_files(folder: Path, ours: Callable[[Path], bool]) -> bool:
    """Whether ``folder`` exists and holds a file other than ``ours`` says are a killed
    ``write_png``'s temporary files (not for a link that leads nowhere: Path.is_dir()
    raised a link to a name too long bare, where os.path.isdir() says no)."""
    return os.path.isdir(folder) and any(not ours(f) for f in folder.iterdir())


def _frame_number(stem: str) -> int | None:
    """The frame a name this renderer writes (``000123``) stands for, else None."""
    return int(stem) if len(stem) >= 6 and stem.isascii() and stem.isdigit() else None


def _our_tmp(f: Path) -> bool:
    """A temporary file ``write_png`` left when it was killed before its rename
    (``000012.png.tmp``): never a finished image."""
    name = f.name.removesuffix(".png.tmp")
    return name != f.name and _frame_number(name) is not None


def _fresh_run_problem(
    rd: Path,
    *,
    locked: bool = False,
    plan: bool = True,
    video: Path | None = None,
    encode: bool = True,
) -> str | None:
    """Why a fresh run cannot start in ``rd``, or None (``locked``: checked again by a
    render holding ``rd``'s lock; ``plan``: the run builds a colour plan in ``plan/``;
    ``video``: where the run's video goes, refused as a file whether or not this run
    encodes: a resume may; ``encode``: whether it makes the video, for the resume hint)."""
    long = [part for part in rd.parts if len(os.fsencode(part)) > 255]
    if long:  # (before any look inside: that raises "File name too long")
        return f"run_dir: {long[0][:40]!r}... is longer than 255 bytes (output.dir / output.name)"
    # a run still being rendered: not one to resume now (the hint was followed, and the
    # resume refused), nor a folder to move files out of (a review)
    busy = None if locked else _RunLock.busy(rd)
    if busy:
        return busy
    if (rd / "state.json").exists() and not _nothing_made(rd):
        hint = _resume_hint(rd, encode)
        if isinstance(hint, tuple):
            then = f"continue it with {hint[0]}, or choose"
        else:
            then = f"a resume would be refused ({hint}); choose" if hint else "choose"
        return (
            f"run_dir: {rd} already holds a run (output.dir / output.name); {then} another "
            "output (--out, output.name)"
        )
    # a fresh run starts in an empty frames folder: never delete files it did not write
    # (but a killed write_png's temporary file in a run that made nothing, which it removes)
    ours = _our_tmp if (rd / "settings.json").exists() else lambda f: False
    for sub in ("frames", "plan"):  # (plan/: a fresh build would take its keyframes)
        if _holds_files(rd / sub, ours):
            # (from a review) a run stopped after its first image, before its state
            # recorded it, is resumed: say so, where a resume would start
            return f"run_dir: {rd / sub} already holds files{_or_resume(rd, encode)}"
    problem = _frames_problem(rd, plan=plan)
    if problem:
        return problem
    # a link is not a run's own: the run would write its drift table or picture through
    # it (outside the run folder, or, for one that leads nowhere, fail after the model
    # had loaded)
    names = ("settings.json", "drift.csv", "drift.png", "plan.json")
    links = [n for n in names if (rd / n).is_symlink() and (plan or n != "plan.json")]
    if links:
        one = len(links) == 1  # (from a review: "holds drift.csv as link ... move them")
        return (
            f"run_dir: {rd} holds {', '.join(links)} as {'a link' if one else 'links'}; a "
            f"run writes its own {links[0] if one else 'files of these names'} there: move "
            f"{'it' if one else 'them'}, or pick another output"
        )
    # (a fresh run writes these through temporary names; drift.csv directly)
    names = ("settings.json", "state.json", "drift.png", "plan.json")
    problem = _tmp_folder_problem(rd, names if plan else names[:-1])
    if problem:
        return problem
    # nor replace files of its names that it did not write (from a review: a user's own
    # settings.json, drift.csv or drift.png were replaced); a run that made nothing
    # left its settings and the drift table's header, which a fresh run may replace
    foreign = _foreign_files(rd, video, plan=plan)
    if foreign:
        # (from a review) a run whose resume set it back to no frame is still resumed
        return (
            f"run_dir: {rd} holds {', '.join(foreign)}, which a new run would replace"
            f"{_or_resume(rd, encode, named=len(foreign))}"
        )
    # a folder that cannot be made fails here, not after the model loaded
    why = unmakeable(rd)
    if why is not None:
        return f"run_dir: {rd} cannot be made: {why} (output.dir / output.name)"
    return None


def _resume_hint(rd: Path, encode: bool) -> tuple[str, list[str]] | str | None:
    """How to resume the run in ``rd`` (a command, and the Python call), with the files
    there that the resume may overwrite or delete (:func:`_resume_touches`), where a
    resume would pass the checks it makes of the folder before the model loads (from
    reviews: a hint was given where the resume then refused, for settings edited since
    the run's frames, settings it cannot read, a folder it cannot write, a broken
    ``plan/`` of a plan run). Else why the resume would be refused, where that is
    something in the folder the user can move (a later review: the refusal then named
    only what the fresh run found, never what stopped the resume), or None. ``encode``:
    the fresh run makes a video (else the resume makes none either). A render running
    there is refused before (:meth:`_RunLock.busy`)."""
    try:
        saved = Settings._from_saved(_read_json(rd / "settings.json"))
        _read_state(rd)
        made_with = _state(rd).get("settings")
    except (OSError, ValueError):  # (SettingsError, a damaged state.json)
        return None
    if (
        (made_with is not None and not _made_with(made_with, saved))
        or not os.access(rd, os.W_OK | os.X_OK)
        or _frames_problem(rd, plan=False)
        or (encode and _video_name_problem(saved))
    ):
        return None
    # (before the frames are read: a FIFO among them hung)
    problem = _run_files_problem(rd) or _video_files_problem(rd, saved, encode)
    if problem:
        return problem
    # plan/ and plan.json as the resume checks them: only where frames are still to be made
    plan = saved["colour"]["mode"] == "plan" and not _all_made(rd, saved["render"]["frames"])
    if plan:
        if _frames_problem(rd, plan=True):
            return None
        problem = _run_files_problem(rd, plan=True)
        if problem:
            return problem
    flag, arg = ("", "") if encode else (" --no-video", ", video=False")
    command = f"`loopwave render --resume {shlex.quote(str(rd))}{flag}` (resume=True{arg})"
    return command, _resume_touches(rd, saved, encode, plan=plan)


def _or_resume(rd: Path, encode: bool, *, named: int = 2) -> str:
    """A fresh run's refusal's end: resume the run in ``rd`` (:func:`_resume_hint`),
    naming the files there that the resume may overwrite or delete
    (:func:`_resume_touches`; a review: the hint was followed, and a user's drift table
    was replaced), or pick another output; or, where the resume would be refused for a
    file there, why. ``named``: how many files or folders the refusal named."""
    them = "it" if named == 1 else "them"
    found = _resume_hint(rd, encode)
    if not isinstance(found, tuple):
        why = f" (a resume would be refused: {found})" if found else ""
        return f"; pick another output or move {them}{why}"
    hint, touched = found
    if touched:
        one = len(touched) == 1
        hint += (
            f", which may overwrite or delete {', '.join(touched)} there (move "
            f"{'it' if one else 'them'} first if not the run's)"
        )
    return (
        f"; if this is a stopped run's folder, continue it with {hint}, else pick another "
        f"output or move {them}"
    )


def _resume_touches(rd: Path, saved: Settings, encode: bool, *, plan: bool) -> list[str]:
    """The files in ``rd`` that a resume of its run (``saved``, its settings) may
    overwrite or delete: the drift table and picture, ``plan.json`` (``plan``: a plan run
    with frames still to make), its video where it makes one, and its partial video
    (deleted where it makes none). From a review: the refusal named files by the new
    run's settings, so a user's ``plan.json`` the resume replaced went unnamed, and
    another name's video was named."""
    from .video import partial_path

    video = _video_path(rd, saved)
    names = ["drift.csv", "drift.png"]
    if plan:
        names.append("plan.json")
    if encode:
        names.append(video.name)
    names.append(partial_path(video).name)
    return [n for n in names if os.path.lexists(rd / n)]


def _not_a_file(p: str | Path) -> str | None:
    """What is at ``p`` where a run reads or writes a file, if not a file or nothing: "a
    folder", "a link to a folder", "a link that leads nowhere" or "not a regular file"
    (a FIFO, waited on for ever by a read)."""
    if not os.path.lexists(p) or os.path.isfile(p):
        return None
    if os.path.isdir(p):
        return "a link to a folder" if os.path.islink(p) else "a folder"
    return "a link that leads nowhere" if not os.path.exists(p) else "not a regular file"


def _a_real_folder(p: str | Path) -> bool:
    """A folder at ``p`` itself, not a link to one: where a run deletes a file (which
    takes a link or a FIFO away, and fails on a folder)."""
    return os.path.isdir(p) and not os.path.islink(p)


def _run_files_problem(rd: Path, *, plan: bool = False) -> str | None:
    """Why a resume cannot go on with the files of the run in ``rd``: one it rewrites
    (``drift.csv``, ``drift.png``; a folder at their or ``state.json``'s temporary
    names) or a frame's name in ``frames/`` that is a folder, a
    link that leads nowhere or not a regular file (a FIFO was waited on for ever), or a
    folder at a killed write's temporary name in ``frames/`` or ``plan/``, which every
    resume deletes. From reviews: each raised bare after the model had loaded, a frame's
    after the state had been set back. ``plan``: ``plan.json`` and the keyframes' names
    in ``plan/`` instead, which only a plan run with frames still to make reads and
    rewrites (a later review: other runs were refused over it)."""
    for name in ("plan.json",) if plan else ("drift.csv", "drift.png"):
        why = _not_a_file(rd / name)
        if why:
            return f"run_dir: {rd / name} is {why}, where the run rewrites its {name}: move it"
    problem = _tmp_folder_problem(
        rd, ("plan.json",) if plan else ("state.json", "drift.csv", "drift.png")
    )
    if problem:
        return problem
    # a frame's name, or with ``plan`` a keyframe's in plan/ (a FIFO there was waited on
    # for ever by the plan's load, after the model had loaded: a later review)
    # (sub/, the names it keeps there, and whether its temporary names are looked at:
    # every resume deletes those in frames/ and plan/ alike, a later review)
    scans = (
        [("plan", (".png", ".npy"), False)]
        if plan
        else [
            ("frames", (".png",), True),
            ("plan", (), True),
        ]
    )
    for sub, exts, tmps in scans:
        if not os.path.isdir(rd / sub):
            continue
        with os.scandir(rd / sub) as entries:
            for e in entries:
                if e.name.endswith(".png.tmp"):
                    # a killed write's temporary file: a link or FIFO goes with it, a
                    # folder failed bare, after the frames past the last recorded one
                    # were deleted
                    if tmps and _our_tmp(Path(e.path)) and _a_real_folder(e.path):
                        return (
                            f"run_dir: {e.path} is a folder, where the run deletes a "
                            "killed write's temporary file: move it"
                        )
                    continue
                stem, ext = os.path.splitext(e.name)
                if ext in exts and _frame_number(stem) is not None and not e.is_file():
                    why = _not_a_file(e.path) or "not a regular file"
                    return f"run_dir: {e.path} is {why}, where the run keeps its {sub}: move it"
    return None


def _tmp_folder_problem(rd: Path, names: tuple[str, ...]) -> str | None:
    """A folder at the temporary name of one of the run's files ``names``, which the run
    writes and then renames (a link or FIFO there is replaced; a folder failed bare once
    frames were made: a review), by name."""
    for name in names:
        if _a_real_folder(rd / f"{name}.tmp"):
            return (
                f"run_dir: {rd / name}.tmp is a folder, where the run writes its {name} "
                "before renaming it: move it"
            )
    return None


def _video_files_problem(rd: Path, settings: Settings, encode: bool) -> str | None:
    """Why a resume cannot make (``encode``) or leave its video: a folder at its partial
    video's name, which it writes or deletes, or, where it encodes, at its video's; or,
    where it encodes, a FIFO (or other file that is not regular) at the partial video's
    name, which the encoder would wait on for ever, or a write-protected file there,
    which it cannot write (``video._write_protected``). From reviews: a folder there
    failed bare after the frames were deleted, or only once every frame was made, and a
    protected file at the first frame. A link at either name is replaced (the encoder's
    file is made afresh at its partial name, and the rename at the end replaces the
    video's), and a resume that makes no video
    deletes whatever but a folder is at the partial name, so neither is refused (a
    later review: such resumes, which went on, were refused)."""
    from .video import _PROTECTED, _write_protected, partial_path

    video = _video_path(rd, settings)
    partial = partial_path(video)
    what = "makes its video" if encode else "deletes a stopped run's partial video"
    for p in (partial, video) if encode else (partial,):
        if _a_real_folder(p):
            return f"run_dir: {p} is a folder, where the run {what}: move it"
        if encode and p == partial:  # (a FIFO, not a link to one: lexists, not isfile)
            if os.path.lexists(p) and not os.path.islink(p) and not p.is_file():
                return f"run_dir: {p} is not a regular file, where the run {what}: move it"
            if _write_protected(p):
                return f"run_dir: {p} {_PROTECTED}, where the run {what}: move it"
    return None


def _video_name_problem(settings: Settings) -> str | None:
    """Why the run of ``settings`` cannot make its video: its working name (the longest
    the run writes) over 255 bytes; it failed when the video started, every resume."""
    from .video import partial_path

    name = partial_path(_video_path(Path("."), settings)).name
    if len(os.fsencode(name)) > 255:
        return (
            f"output.name: the video's file name, {name[:24]!r}..., would be "
            f"{len(os.fsencode(name))} bytes, over 255: shorten the name (or --no-video)"
        )
    return None


def _settings_problem(p: Path) -> str | None:
    """Why ``p`` is not a loopwave run's ``settings.json`` (a JSON object with loopwave's
    ``version`` and ``render``), or None where it is one ("missing" where it is not
    there)."""
    if not p.exists():
        return "missing"
    if p.is_dir():
        return "a folder"
    try:
        saved = _read_json(p)
    except (OSError, ValueError):  # (a run's, damaged, perhaps: not called a user's)
        return "unreadable: damaged, or not a loopwave run's"
    if isinstance(saved, dict) and "version" in saved and "render" in saved:
        return None
    return "not a loopwave run's settings"


def _foreign_files(rd: Path, video: Path | None = None, *, plan: bool = True) -> list[str]:
    """The files a fresh run in ``rd`` writes that are there and not a run's own, each
    with why: a ``settings.json`` that is not a run's (:func:`_settings_problem`); a
    ``drift.csv`` that is not beside a run's ``settings.json`` (a run writes that first),
    or that is more than the drift table's header, or the start of it (cut short by a
    full disk or a kill: a run writes rows only after its first frame, which a fresh run
    refuses); and any ``drift.png``, ``plan.json`` (with ``plan``: other colour modes
    never write it) or ``video`` file (a run writes them after frames or keyframes, which
    a fresh run refuses), or a partial video not beside a run's ``settings.json``."""
    found = []
    why = _settings_problem(rd / "settings.json")
    if why not in (None, "missing"):
        found.append(f"settings.json ({why})")
    own = why is None
    p = rd / "drift.csv"
    if p.exists() and not own:  # (a copy of a run's table alone in a folder is a user's)
        found.append(f"{p.name} (not beside a loopwave run's settings.json)")
    elif p.exists():
        header = ",".join(DRIFT_HEADER)
        text: str | None = None
        with contextlib.suppress(OSError):
            if os.path.isfile(p):  # (a FIFO was waited on for ever: a review)
                with open(p, encoding="utf-8", errors="replace", newline="") as f:
                    text = f.read(len(header) + 3)
        if text is None or not any((header + end).startswith(text) for end in ("\n", "\r\n")):
            # (from a review: a copy of another run's settings and whole table was taken)
            rows = text is not None and text.split("\n", 1)[0].rstrip("\r") == header
            found.append(
                f"{p.name} (a drift table with rows: not a new run's)"
                if rows
                else f"{p.name} (not a loopwave run's drift table)"
            )
    for name, reason in (
        ("drift.png", "a run draws it only at its end"),
        ("plan.json", "a run writes it only after its keyframes"),
    ):
        # (os.path: a link to a name too long made Path.exists() raise bare)
        if os.path.exists(rd / name) and (plan or name != "plan.json"):
            found.append(f"{name} ({reason})")
    if video is not None:
        from .video import partial_path

        # (files: a folder there is the encoder's to report, as before)
        if os.path.isfile(video):  # (a resume that makes the video replaces it too)
            found.append(f"{video.name} (the run's video goes there, made at its end)")
        if os.path.isfile(partial_path(video)) and not own:
            found.append(f"{partial_path(video).name} (not beside a loopwave run's settings.json)")
    return found


def _frames_problem(rd: Path, *, plan: bool) -> str | None:
    """Why ``rd/frames`` (or, with ``plan``, ``rd/plan``, where a colour plan's keyframes
    go) cannot hold a run's frames: a file there, or a link that leads nowhere (a drive
    not mounted, a loop); None where each is a folder or not there. Each failed with
    "File exists" after the model had loaded."""
    for sub in ("frames", "plan") if plan else ("frames",):
        d = rd / sub
        if d.is_symlink():
            try:
                os.stat(d)
            except OSError as e:
                # (in a loop realpath gives up and names the link itself: its first
                # target, from the link's folder, as a relative one was printed bare; a
                # name too long, which Path.exists() raised bare, it keeps)
                end = (
                    os.path.join(d.parent, os.readlink(d))
                    if e.errno == errno.ELOOP
                    else os.path.realpath(d)
                )
                if len(end) > 120:  # (a name too long was printed whole, 300 bytes of it)
                    end = f"{end[:60]}...{end[-40:]}"
                why = (
                    "a name in it is too long"
                    if e.errno == errno.ENAMETOOLONG
                    else "a drive not mounted, or a loop of links"
                )
                return f"run_dir: {d} is a link that leads nowhere (to {end}: {why})"
        if d.exists() and not d.is_dir():
            return f"run_dir: {d} is not a folder; a run keeps its {sub} there"
    return None


def _state(rd: Path) -> dict[str, Any]:
    """``state.json`` as read, or an empty dict where it is missing or not an object
    (:func:`_read_state` checks and reports its ``last``)."""
    state = _read_json(rd / "state.json") if (rd / "state.json").is_file() else {}
    return state if isinstance(state, dict) else {}


def _video_record(video: Path) -> dict[str, int] | None:
    """What ``state.json`` records of a finished video: its size and modification time
    (None where there is no file)."""
    try:
        st = video.stat()
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


#: the attribute a render's KeyboardInterrupt carries where the video was finished and
#: recorded as it stopped (the run is whole: the CLI gives no resume hint)
_FINISHED = "loopwave_finished_video"
#: the attribute an exception that left a render carries where its frame writer was
#: still running then, let go to end by itself (a second Ctrl-C): the frames queued for
#: saving are saved only if the process goes on (the CLI exits at once)
_LEFT_RUNNING = "loopwave_threads_left_running"


def _record_video(rd: Path, video: Path) -> None:
    """Put the finished ``video`` on disk (its bytes, then its folder's entry) and record
    it in ``state.json``: a resume keeps a video only where the record matches it (a video
    left in the folder by an earlier run, or emptied by a power cut, is made again)."""
    with open(video, "rb+") as f:
        sync_file(f)
    sync_folder(rd)
    _atomic_json(rd / "state.json", {**_state(rd), "video": _video_record(video)})


def _read_state(rd: Path) -> int:
    """The last recorded frame of a run (-1: none yet)."""
    if not (rd / "state.json").exists():
        return -1
    if not (rd / "state.json").is_file():  # (a folder: IsADirectoryError, naming no run)
        raise ValueError(f"run_dir: {rd / 'state.json'} is not a file; the run folder is damaged")
    state = _read_json(rd / "state.json")
    last = state.get("last") if isinstance(state, dict) else None
    if isinstance(last, bool) or not isinstance(last, int) or last < -1:
        raise ValueError(
            f'{rd / "state.json"}: expected {{"last": frame index >= 0, or -1}}; got {state!r:.80}'
        )
    return last


#: A recorded frame written within this many seconds of the newest one is read
#: whole on resume, its CRCs checked: the time a disk may hold a file's data back after its rename
#: (Linux writes dirty data back within 30 s by default). Older frames, and all but the
#: last 64, have their ends checked (two small reads each).
_RECENT_S = 120.0


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return math.inf


def _last_whole(rd: Path, last: int) -> tuple[int, str | None]:
    """``(last, None)``, or the frame before the first recorded frame that is not a
    whole file (:func:`loopwave.png.whole_png`) and why it is not. Reads only; stops at
    the first that is not (a state naming a million frames of seven stat'ed them all)."""
    # the newest recorded frame's time (the state's, written right after it, where that
    # frame is gone): not the state's alone, which a finished video's record rewrites later
    newest = _mtime(rd / "frames" / f"{last:06d}.png")
    if newest == math.inf:
        newest = _mtime(rd / "state.json")
    for k in range(last + 1):
        p = rd / "frames" / f"{k:06d}.png"
        why = whole_png(p, crc=k > last - 64 or _mtime(p) >= newest - _RECENT_S)
        if why is not None:
            if not p.exists():
                return k - 1, f"recorded frame {k} is missing"
            return k - 1, f"recorded frame {k} is damaged: {why}"
    return last, None


def _all_made(rd: Path, n: int) -> bool:
    """Whether the run in ``rd`` records all ``n`` of its frames, each a whole file (reads
    only: found again under the run's lock, where a damaged frame is made again)."""
    last = _state(rd).get("last")
    # (6.0 and True are refused by _read_state, under the lock)
    return type(last) is int and last == n - 1 and _last_whole(rd, last)[1] is None


def _whole_frames(rd: Path, last: int) -> int:
    """``last``, or the frame before the first recorded frame that is not a whole file,
    with a RuntimeWarning naming it and the state set back to it (on disk before any
    frame is removed): the frames from it on are made again, the same as they were.
    Frames are on disk before the state records them, but a run made before that (or a
    disk that does not honour fsync) can come back from a power cut with recorded frames
    empty, cut short or holding zeros, and such a run could not be resumed at all."""
    whole, why = _last_whole(rd, last)
    if why is None:
        return last
    k = whole + 1
    warnings.warn(
        f"{rd}: {why} (deleted or changed since it was made, or left so by a power "
        f"cut); the run goes on from frame {k}, making "
        f"{f'frame {k}' if k == last else f'frames {k}..{last}'} again",
        RuntimeWarning,
        stacklevel=3,
    )
    _atomic_json(rd / "state.json", {**_state(rd), "last": whole})
    return whole


def _saved_plan(rd: Path) -> ColourPlan | None:
    """The run's saved colour plan; None where there is none, or where it is damaged (a
    power cut can leave a run made before files were synced with keyframes or plan.json
    empty or cut short): then, with a RuntimeWarning, plan.json and the damaged keyframes
    are removed, and the plan is made again from the whole ones (the same plan)."""
    index = rd / "plan.json"
    if not index.exists():
        return None
    bad: list[Path] = []
    for p in sorted((rd / "plan").glob("*.png")) if os.path.isdir(rd / "plan") else ():
        if _frame_number(p.stem) is not None and whole_png(p, crc=True) is not None:
            bad.append(p)
    for p in sorted((rd / "plan").glob("*.npy")) if os.path.isdir(rd / "plan") else ():
        try:
            _read_npy(p)
        except OSError:
            bad.append(p)
    if bad:
        why = f"{', '.join(p.name for p in bad)} damaged"
    else:
        try:
            return ColourPlan.load(rd)
        except (OSError, ValueError) as e:
            why = str(e)
    warnings.warn(
        f"{rd}: the colour plan is damaged ({why}), as a power cut leaves a file the disk "
        "had not written; it is made again from the keyframes that are whole",
        RuntimeWarning,
        stacklevel=3,
    )
    for p in bad:
        p.unlink(missing_ok=True)
    index.unlink()
    return None


def _graph_dir(m: dict[str, Any], height: int, width: int) -> Path:
    """Where a model's exported graphs and engines live: ``model.engine_dir`` / a key of
    everything the graphs depend on (the model's files, its LoRAs, the frame size, the
    versions of loopwave, torch, diffusers and transformers), so a changed model is
    exported afresh. Hidden files and folders in the model's folder, and the engine
    folder, are not part of the key. (Called once the model is built: these are there.)"""
    import diffusers
    import torch
    import transformers

    from . import __version__

    engines = Path(m["engine_dir"]).resolve()

    def stamp(p: Path) -> list[Any]:
        """Each file's path, size and time; in a folder, not hidden ones (``.git``,
        ``.cache``) nor the engine folder's (an engine folder inside the model's, as
        ``model.path = "."`` with the default one gives, changed the key with every
        graph exported, and each run exported afresh into a new folder)."""
        if not p.is_dir():
            return [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns]]
        # the engine folder's own files, only where it lies inside the model's (an engine
        # folder that holds the model, "." or a folder of models, held all its files)
        inside = engines != p.resolve() and engines.is_relative_to(p.resolve())
        files: list[Any] = [str(p.resolve())]
        for f in sorted(p.rglob("*")):
            rel = f.relative_to(p).parts
            if any(part.startswith(".") for part in rel) or not f.is_file():
                continue
            if inside and f.resolve().is_relative_to(engines):
                continue
            files.append([str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns])
        return files

    key = {
        "backend": m["backend"],
        # a model of files; the built-in ones (smoke, sd15-random) are their versions'
        "model": stamp(Path(m["path"])) if m["backend"] == "diffusers" else [],
        "lora": [[stamp(Path(e["path"])), e.get("scale", 1.0)] for e in m["lora"]],
        "size": [height, width],
        # transformers too: the smoke model's text encoder draws from the seeded RNG first,
        # and transformers 5 draws otherwise than 4, so the same seed made other UNet
        # weights, and a graph exported under the one was reused under the other
        "versions": [__version__, *(lib.__version__ for lib in (torch, diffusers, transformers))],
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(m["engine_dir"]) / f"{m['backend']}-{digest}"


def _lab_distance(la: np.ndarray, lb: np.ndarray) -> float:
    """Mean CIE76 distance between two Lab images (float32, in place on a scratch copy:
    about 4x faster than the plain numpy expression at 512x512)."""
    d = np.subtract(la, lb)
    np.square(d, out=d)
    s = d[..., 0] + d[..., 1]
    s += d[..., 2]
    np.sqrt(s, out=s)
    return float(s.mean(dtype=np.float64))


class StageError(RuntimeError):
    """A pipeline stage (saving frames, encoding) failed; the render stopped."""


class RenderCancelled(Exception):
    """The render stopped because its ``cancel`` event was set (see :func:`render`).

    ``run_dir``: the run folder (None where a new run had not made one); ``frames``:
    the frames saved there, which a resume continues from (for a resume cancelled
    before it started, those its state records); ``started``: False where the render
    was cancelled before it wrote anything."""

    def __init__(self, run_dir: Path | None, frames: int, *, started: bool = True) -> None:
        self.run_dir, self.frames, self.started = run_dir, frames, started
        if run_dir is None or not started:
            said = "before it started; nothing was written"
            if run_dir is not None:
                said += f" (the run in {run_dir} is as it was)"
        else:
            made = f"{frames} frame{'s' * (frames != 1)} saved"
            said = (
                f"with {made} in {run_dir}; resume with render(None, run_dir=..., "
                f"resume=True) or `loopwave render --resume {shlex.quote(str(run_dir))}`"
            )
        super().__init__(f"render cancelled {said}")

    def __reduce__(self) -> tuple[Any, ...]:  # (pickled across processes, as errors are)
        return (functools.partial(type(self), started=self.started), (self.run_dir, self.frames))


class _Abandoned(Exception):
    """Raised inside a stage's thread when the render stops early (nothing more will come)."""


_END = object()


class _Feed:
    """The encoder stage's queue of ``(index, frame)`` items. Like a ``queue.Queue`` it
    holds at most ``maxsize`` frames, and a producer waits while it is full, except while
    the encoder is ``behind``: a resumed run's encoder starts with the frames already
    made, read back from disk, and the frames made meanwhile (each on disk before it is
    put here) are queued as ``(index, None)``, to be read back from disk in turn too. So
    a resume makes new frames at once: it waited, generation idle, until the video had
    caught up with every frame made before (about 19 ms a frame at 128x128 on 2 cores,
    70 s for 3,500 frames). The encoder has caught up when it has taken the last item
    queued; from then on a full queue holds the render back again, so a fresh run never
    reads a frame back."""

    def __init__(self, maxsize: int = 4, *, behind: bool = False) -> None:
        self.maxsize = maxsize
        self.behind = behind
        #: frames the encoder has taken so far (those read back included)
        self.taken = 0
        #: called with ``(taken, behind)`` as each frame is taken (the encoder process
        #: reports its position to the renderer so)
        self.on_taken: Callable[[int, bool], None] | None = None
        self._items: collections.deque[Any] = collections.deque()
        self._frames = 0  # items holding a frame
        self._cond = threading.Condition()

    def _room(self) -> bool:
        return self.behind or self._frames < self.maxsize

    def took(self, n: int) -> None:
        """The encoder has taken ``n`` frames."""
        self.taken = n
        if self.on_taken is not None:
            self.on_taken(n, self.behind)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Queue ``item`` (an ``(index, frame)`` pair, or a marker such as the end);
        ``queue.Full`` where a frame finds no room within ``timeout``."""
        with self._cond:
            if isinstance(item, tuple):
                if not self._cond.wait_for(self._room, timeout if block else 0):
                    raise queue.Full
                if self.behind:  # on disk already: read back when its turn comes
                    item = (item[0], None)
                else:
                    self._frames += 1
            self._items.append(item)
            self._cond.notify_all()

    def put_nowait(self, item: Any) -> None:
        self.put(item, block=False)

    def get(self) -> Any:
        with self._cond:
            self._cond.wait_for(lambda: bool(self._items))
            item = self._items.popleft()
            if isinstance(item, tuple) and item[1] is not None:
                self._frames -= 1
            if not self._items:  # caught up with everything made so far
                self.behind = False
            self._cond.notify_all()
            return item


class _Stage:
    """One pipeline stage: a background thread consuming items from a bounded queue.

    ``work`` receives an iterator over the items put, ending at :meth:`close`.
    An error in the stage is re-raised to the producer on its next :meth:`put`
    (or at :meth:`close`), so a failing encoder stops the render instead of
    letting the queue block it. :meth:`abandon` stops the stage after the item
    in hand and drops whatever comes later.
    """

    def __init__(
        self,
        name: str,
        work: Callable[[Iterator[Any]], None],
        maxsize: int = 4,
        abandoned: threading.Event | None = None,
        feed: _Feed | None = None,
        let_go: threading.Event | None = None,
        made: list[Any] | None = None,
    ) -> None:
        """``abandoned``: the Event :meth:`abandon` sets, for a ``work`` that also reads
        items of its own (a resume's stored frames) and must stop on it there too;
        ``feed``: the queue to use, in place of a ``queue.Queue`` of ``maxsize``;
        ``let_go``: the Event to use as :attr:`let_go` (one its ``work`` looks at);
        ``made``: a list the stage adds itself to before its thread starts, for the
        caller to stop it where a Ctrl-C lands before the stage is returned."""
        self.name = name
        self.q: queue.Queue[Any] | _Feed = queue.Queue(maxsize) if feed is None else feed
        self.error: BaseException | None = None
        #: the work ended by itself, not abandoned and without an error (the encoder:
        #: its video finished and in place)
        self.completed = False
        self._abandoned = threading.Event() if abandoned is None else abandoned
        #: set where :meth:`abandon`'s wait was interrupted (a second Ctrl-C): the render
        #: has gone on without this thread, which cannot be stopped part way; a ``work``
        #: past its last item (an encoder's final flush) drops what it makes
        self.let_go = threading.Event() if let_go is None else let_go
        self._all_taken = False  # the work has had every item, and their end
        self._draining = False  # let go: ends once its queue is empty (let_go_now)
        self._work = work
        # called once the thread has ended (after()); the lock guards them, the end, and
        # whether the thread has run them all (after() runs one at once only then)
        self._then: list[Callable[[], None]] = []
        self._then_lock = threading.RLock()  # (reentrant: see _RunLock.__del__)
        self._thens_run = False
        # set when the thread's work has ended. Waited on instead of Thread.join: a
        # KeyboardInterrupt in a join marks the thread stopped in CPython 3.11 (bpo-45274's
        # handling), after which join and is_alive say it ended while it still runs
        self._finished = threading.Event()
        self._go = threading.Event()  # the stage is made: its work may start
        self.t = threading.Thread(target=self._run, name=f"loopwave-{name}", daemon=True)
        # (reviews: a Ctrl-C in start()'s wait for the thread, or as the call returned,
        # left it running with no stage for the render to stop: an encoder re-encoded
        # the stored frames past the run's lock. The caller stops it through ``made``;
        # a start interrupted ends it without its work)
        if made is not None:
            made.append(self)
        try:
            self.t.start()
        except BaseException:
            self._abandoned.set()
            raise
        finally:
            self._go.set()

    def _items(self) -> Iterator[Any]:
        while True:
            if self._draining and isinstance(self.q, queue.Queue):  # (let_go_now's drain:
                try:  # the items queued, then the end; a plain queue, the writer's)
                    item = self.q.get(timeout=0.1)
                except queue.Empty:
                    return
            else:
                item = self.q.get()
            if self._abandoned.is_set():
                raise _Abandoned
            if item is _END:
                self._all_taken = True
                return
            yield item

    def _run(self) -> None:
        try:
            self._go.wait()
            if self._abandoned.is_set():
                raise _Abandoned
            self._work(self._items())
            self.completed = True
        except _Abandoned:
            pass
        except BaseException as e:  # reported to the producer
            self.error = e
        finally:
            # each runs whatever one before it raised (the last: the run lock's release),
            # and those added meanwhile after them, in order
            failed: BaseException | None = None
            while True:
                with self._then_lock:
                    self._finished.set()
                    then, self._then = self._then, []
                    if not then:
                        self._thens_run = True
                        break
                for fn in then:
                    try:
                        fn()
                    except BaseException as e:  # (raised after the others: the thread's hook)
                        failed = failed or e
            if failed is not None:
                raise failed

    @property
    def finishing(self) -> bool:
        """Whether the work has had every item and still runs (an encoder's final flush,
        the last pair's in-betweens), which :meth:`abandon` waits for."""
        return self._all_taken and self._alive()

    def after(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` once the stage's thread has ended and has run those given before
        it: at once where it has, else on that thread, after them. (One run at once
        while the thread still ran an earlier one ran beside it: the run lock's release
        beside the record of the video.)"""
        with self._then_lock:
            if not self._thens_run:
                self._then.append(fn)
                return
        fn()

    def _alive(self) -> bool:
        return not self._finished.is_set()

    def wait(self, timeout: float) -> bool:
        """Whether the stage's work has ended, waiting up to ``timeout`` seconds."""
        return self._finished.wait(timeout)

    def _check(self) -> None:
        if isinstance(self.error, StageError):  # a later stage's error, passed on as it is
            raise self.error
        if self.error is not None:
            raise StageError(f"{self.name} failed: {error_text(self.error)}") from self.error

    def put(self, item: Any, poll: Callable[[], None] | None = None) -> None:
        """Queue ``item``, waiting for room; ``poll`` is called while it waits (as in
        :meth:`close`)."""
        while True:
            # abandoned, also while this waited for room: dropped (a writer waiting here on
            # a full encoder queue failed with "stopped before the end of the frames", and
            # the frames queued behind it in the writer were not saved)
            if self._abandoned.is_set():
                return
            self._check()
            if not self._alive():
                if self._abandoned.is_set():  # (abandoned since the look above: a review)
                    return
                self._check()  # (failed since the look above: its error, not this one)
                raise StageError(f"{self.name} stopped before the end of the frames")
            try:
                self.q.put(item, timeout=0.1)
                return
            except queue.Full:
                if poll is not None:
                    poll()

    def close(self, poll: Callable[[], None] | None = None) -> None:
        """Wait for the stage to finish everything put so far; raise its error if it
        failed. ``poll`` is called every quarter second while it waits (it may raise:
        a cancelled render)."""
        if self.error is None and self._alive():
            self.put(_END, poll)  # (a writer's queue, full behind a full encoder queue)
        while not self._finished.wait(None if poll is None else 0.25):
            assert poll is not None
            poll()
        self._check()

    def _wake(self) -> None:
        """Queue the end where there is room: it wakes a stage waiting on an empty queue;
        a busy one sees its flags at its next item."""
        with contextlib.suppress(queue.Full):
            self.q.put_nowait(_END)

    def abandon(self) -> None:
        self._abandoned.set()
        self._wake()
        if not self._finished.is_set() and not self.t.is_alive():
            return  # never started (its start interrupted): one starting yet sees the abandon
        try:
            self._finished.wait()
        except BaseException:  # a second Ctrl-C: the render goes on without the thread
            self.let_go.set()
            raise

    def let_go_now(self, drain: bool = False) -> None:
        """Stop the stage without waiting for it (the render has gone on without it): its
        work ends after the item in hand, the items queued dropped, and an encoder in its
        final flush deletes the video it finishes (:attr:`let_go`). ``drain``: the items
        queued are done first (the frame writer: frames already generated are saved, a
        review; its puts into the abandoned encoder return at once)."""
        self.let_go.set()
        if drain:
            self._draining = True
        else:
            self._abandoned.set()
        self._wake()


def _settings_digest(s: Settings, keep: Iterable[tuple[str, str]] = ()) -> str:
    """What ``state.json`` records of the settings a run's frames were made with. The keys
    added after runs were made (:data:`~loopwave.settings.ADDED_LATER`) are left out at
    their defaults, but those in ``keep``, so that those runs' digests, of settings
    without them, stay theirs (and they resume: :func:`_made_with`)."""
    data = {name: dict(x) if isinstance(x, dict) else x for name, x in s.items()}
    for section, key in set(ADDED_LATER) - set(keep):
        keys = data.get(section)
        if isinstance(keys, dict) and key in keys and keys[key] == SCHEMA[section][key][0]:
            del keys[key]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _made_with(digest: Any, s: Settings) -> bool:
    """Whether a run whose state records ``digest`` was made with the settings ``s``. A
    run made when only some of the keys of :data:`~loopwave.settings.ADDED_LATER` existed
    recorded those at their defaults (one made between ``interpolation.scale`` and
    ``interpolation.to_fps``, the first but not the second), so every choice of them kept
    is tried."""
    return any(
        digest == _settings_digest(s, keep)
        for n in range(len(ADDED_LATER) + 1)
        for keep in itertools.combinations(ADDED_LATER, n)
    )


def _saver(
    run_dir: Path, encoder: _Stage | _ProcessStage | None, digest: str
) -> Callable[[Iterator[tuple[int, np.ndarray, np.ndarray | None, np.ndarray | None]]], None]:
    """The writer stage: drift figures, the lossless frame, its drift row, then the state
    (in that order, so a recorded frame is always complete on disk; with ``digest``, the
    settings it was made with); then on to the encoder."""

    def work(items: Iterator[tuple[int, np.ndarray, np.ndarray | None, np.ndarray | None]]) -> None:
        # id -> (image, its Lab) of the last item's frame and target, and of this item's
        # images: a frame's `prev` is the last item's frame, and a target may be the last
        # one (`first`, a keyframe held), so each image's Lab is computed once. (A plan's
        # lerped target is new each frame: a deque of the last three evicted the frame
        # before its `prev` lookup, and three frames evicted `first`.) The images stay
        # referenced, so no id is reused.
        held: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        def lab_of(img: np.ndarray) -> np.ndarray:
            hit = held.get(id(img))
            if hit is None or hit[0] is not img:
                hit = held[id(img)] = (img, rgb_to_lab(img))
            return hit[1]

        for i, frame, target, prev in items:
            lab = lab_of(frame)
            # no target (colour mode "none"): empty, as frame 0's previous (a spreadsheet
            # read the "nan" written before as text)
            to_target = f"{_lab_distance(lab, lab_of(target)):.4f}" if target is not None else ""
            # frame 0 has no previous frame: its field is empty (0 read as no change)
            to_prev = f"{_lab_distance(lab, lab_of(prev)):.4f}" if prev is not None else ""
            # zlib level 1: 2.7x faster than 6 on a 512x512 frame, files 3% larger
            # each on disk before the state records the frame (a power cut left recorded
            # frames empty: the disk had taken the renames, not yet the data)
            write_png(run_dir / "frames" / f"{i:06d}.png", frame, level=1, durable=True)
            drift = run_dir / "drift.csv"
            with naming(drift), open(drift, "a", newline="") as f:
                csv.writer(f, lineterminator="\n").writerow([i, to_target, to_prev])
                sync_file(f)
            _atomic_json(run_dir / "state.json", {"last": i, "settings": digest})
            # keep this frame's and target's: the next item's prev and maybe its target
            held = {id(im): held[id(im)] for im in (frame, target) if im is not None}
            if encoder is not None:
                encoder.put((i, frame))

    return work


class _Job:
    """A render's per-frame settings (schedules, prompts, motion) and its backend (None
    until the model is loaded: the settings are checked before)."""

    def __init__(self, s: Settings, backend: Img2Img | None, *, resumed: bool = False) -> None:
        r, d, m = s["render"], s["denoise"], s["motion"]
        # a resumed run clamps a denoise.schedule value outside 0..1, as runs were made
        # before such values were refused (refused, the run could not go on)
        self.resumed = resumed
        n = r["frames"]
        self.s, self.n, self.backend = s, n, backend
        self.h, self.w = r["height"], r["width"]

        # every schedule's `s` is the render's seed
        def schedule(text: str, name: str) -> Schedule:
            return Schedule(text, max_frames=n, seed=r["seed"], name=name)

        sch = {k: schedule(r[k], f"render.{k}") for k in ("steps", "cfg", "seed_schedule")}
        self.steps, self.cfg, self.seed_sched = sch["steps"], sch["cfg"], sch["seed_schedule"]
        self.denoise = None if d["mode"] == "wave" else schedule(d["schedule"], "denoise.schedule")
        self.motion = {
            k: schedule(m[k], f"motion.{k}")
            for k in ("zoom", "angle", "translation_x", "translation_y")
        }
        self.prompts = PromptTrack(parse_prompts(s["prompts"]))
        self._init: np.ndarray | None = None  # render.init_image, once read

    def strength(self, i: int) -> float:
        d = self.s["denoise"]
        if self.denoise is not None:
            v = self.denoise(i)
            if self.resumed and math.isfinite(v):
                return float(min(max(v, 0.0), 1.0))
            if not 0.0 <= v <= 1.0:  # also NaN; (65 for 0.65 was clamped: fresh noise)
                raise SettingsError(
                    f"denoise.schedule at frame {i}: {v!r}; a denoising strength must be in "
                    "0..1 (Deforum's strength_schedule is 1 minus this)"
                )
            return float(v)
        return wave_strength(
            i,
            base=d["base"],
            amplitude=d["amplitude"],
            frames_per_wave=d["frames_per_wave"],
            offset=d["offset"],
        )

    def seed(self, i: int) -> int:
        r = self.s["render"]
        return seed_for(i, seed=r["seed"], behaviour=r["seed_behaviour"], schedule=self.seed_sched)

    def prompt(self, i: int) -> Prompt:
        d = self.s["denoise"]
        return self.prompts.at(i, frames_per_wave=d["frames_per_wave"], offset=d["offset"])

    def frame_seed(self, i: int) -> int:
        """Frame ``i``'s seed: the one the ``frame::seed::prompt`` lines set from their
        frame on (see :class:`loopwave.schedule.Prompt`), else the seed behaviour's."""
        line = self.prompts.seed(i)
        return line if line is not None else self.seed(i)

    def generate(self, init: np.ndarray, i: int, strength: float, variant: int = 0) -> np.ndarray:
        """Frame ``i`` made from ``init``; ``variant`` v > 0 offsets its seed by 7919 v (the
        colour plan's further renders of a keyframe)."""
        assert self.backend is not None
        p = self.prompt(i)
        seed = self.frame_seed(i) + 7919 * variant
        return self.backend.img2img(
            init,
            prompt=p.text,
            negative=p.negative,
            strength=strength,
            steps=self.steps_at(i),
            cfg=float(self.cfg(i)),
            seed=seed,
        )

    def steps_at(self, i: int) -> int:
        """Frame ``i``'s step count (:func:`loopwave.schedule.whole` of the steps schedule;
        rounding half to even ran a ramp 0: (10), 4: (12) as 10, 10, 11, 12). Finite
        (checked before the render)."""
        return whole(self.steps(i))

    def motion_at(self, i: int) -> np.ndarray | None:
        """Frame ``i``'s motion matrix; None for none."""
        z, a = self.motion["zoom"](i), self.motion["angle"](i)
        tx, ty = self.motion["translation_x"](i), self.motion["translation_y"](i)
        if z == 1 and a == 0 and tx == 0 and ty == 0:
            return None
        try:
            return motion_matrix(self.h, self.w, zoom=z, angle=a, translate=(tx, ty))
        except ValueError as e:  # e.g. a zoom schedule reaching 0
            raise SettingsError(f"motion at frame {i}: {e}") from None

    def move(self, frame: np.ndarray, i: int) -> np.ndarray:
        m = self.motion_at(i)
        return frame if m is None else warp_affine(frame, m, border=self.s["motion"]["border"])

    def check_every_frame(self, progress: bool = False) -> None:
        """Evaluate every frame's steps, cfg, strength, seed, motion and prompt weights as
        the render will use them, and raise :class:`SettingsError` (a ``ValueError``) naming
        the setting and the frame for the first that the backend or the motion would
        refuse. Found only when the
        render reached that frame, such a value stopped the run for good (a resume keeps
        the run's settings). The limits are those of :meth:`Img2Img.img2img`.
        About 0.1 ms a frame: a progress bar (if ``progress``) from 10,000 frames."""
        weighed: set[tuple[str, str]] = set()
        with Progress(self.n, "checking settings", enabled=progress and self.n >= 10_000) as bar:
            for i in range(self.n):
                try:
                    self._check_frame(i, weighed)
                except SettingsError:
                    raise
                except ValueError as e:  # a schedule's expression failing at frame i
                    raise SettingsError(str(e)) from None
                bar.update()

    def _check_frame(self, i: int, weighed: set[tuple[str, str]]) -> None:
        """One frame of :meth:`check_every_frame` (``weighed``: prompt texts done)."""
        steps, cfg = self.steps(i), self.cfg(i)
        if not (math.isfinite(steps) and 0 <= whole(steps) <= MAX_STEPS):
            raise SettingsError(
                f"render.steps at frame {i}: {steps!r}; steps must be in 0..{MAX_STEPS} "
                "(0 runs as 1)"
            )
        if not MIN_CFG <= cfg <= MAX_CFG:  # also NaN
            raise SettingsError(f"render.cfg at frame {i}: {cfg!r}; cfg must be {CFG_FORM}")
        self.seed(i)  # (its errors name render.seed_schedule, the schedule's name)
        if i > 0:  # frame 0 is made from noise at strength 1, without motion
            self.strength(i)
            self.motion_at(i)
        p = self.prompt(i)
        for arg, text in (("prompt", p.text), ("negative prompt", p.negative)):
            if (arg, text) not in weighed:
                try:
                    parse_weights(text, arg=arg)
                except ValueError as e:
                    raise SettingsError(f"prompts at frame {i}: {e}") from None
                weighed.add((arg, text))

    def init_image(self) -> np.ndarray | None:
        """``render.init_image`` read and checked, once (None where there is none)."""
        path = self.s["render"]["init_image"]
        if not path or self._init is not None:
            return self._init
        if not Path(path).is_file():
            raise SettingsError(f"render.init_image: {not_a_file(path)}")
        try:
            img = _read_png(Path(path))
        except (OSError, ValueError) as e:
            raise SettingsError(
                f"render.init_image: {path} is not a readable image ({e})"
            ) from None
        if img.shape[:2] != (self.h, self.w):
            raise SettingsError(
                f"render.init_image: {path} is {img.shape[1]}x{img.shape[0]}, "
                f"expected render.width x render.height = {self.w}x{self.h}"
            )
        self._init = img
        return img

    def check_backend(self, progress: bool = False) -> None:
        """The frame size and every generation's steps and strength (frame 0's at 1
        unless it is the init image, the colour plan's keyframes at
        ``keyframe_strength``) against the backend's own limits (``size_problem``,
        :meth:`Img2Img.check_schedule`); a value refused stopped the render when it got
        there, for good. Nothing to do for duck-typed backends."""
        b = self.backend
        assert b is not None
        size_problem = getattr(b, "size_problem", None)  # duck-typed backends have none
        problem = size_problem(self.h, self.w) if size_problem else None
        if problem:
            raise SettingsError(f"render.width, render.height: {problem}")
        if not getattr(b, "limits_schedule", False):  # duck-typed backends have no limits
            return
        c = self.s["colour"]
        keys = keyframe_indices(self.n, c["keyframe_every"]) if c["mode"] == "plan" else []
        made_at = [(k, c["keyframe_strength"]) for k in keys]
        if not self.s["render"]["init_image"]:
            made_at.append((0, 1.0))
        frames = ((i, self.strength(i)) for i in range(1, self.n))
        total = len(made_at) + self.n - 1
        with Progress(total, "checking steps", enabled=progress and total >= 10_000) as bar:
            for i, strength in itertools.chain(made_at, frames):
                try:
                    b.check_schedule(self.steps_at(i), strength)
                except ValueError as e:
                    raise SettingsError(f"render.steps at frame {i}: {e}") from None
                bar.update()

    def first_frame(self) -> np.ndarray:
        img = self.init_image()
        if img is not None:
            return img
        rng = np.random.default_rng(self.s["render"]["seed"])
        noise = rng.integers(96, 160, (self.h, self.w, 3), dtype=np.uint8)
        return self.generate(noise, 0, 1.0)


def _drift_plot(run_dir: Path) -> Path:
    """drift.png: Lab distance to the target (red) and to the previous frame (blue) per
    frame (x the frame, y the mean CIE76 distance, gridlines numbered; the figures are in
    drift.csv). The blue line starts at frame 1: frame 0 has no previous frame."""
    from .plot import line_plot

    def value(field: str) -> float:  # an empty field (frame 0's previous) is no value
        return float(field) if field != "" else float("nan")

    with open(run_dir / "drift.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        # placed by their frame numbers: a row lost leaves a gap, not the later rows
        # moved one frame to the left
        at = [int(r["frame"]) for r in rows]
        n = max(at, default=-1) + 1
        to_target, to_prev = [float("nan")] * n, [float("nan")] * n
        for i, r in zip(at, rows, strict=True):
            to_target[i] = value(r["delta_e_to_target"])
            to_prev[i] = value(r["delta_e_to_previous"])
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ValueError(
            f"{run_dir / 'drift.csv'}: damaged ({type(e).__name__}: {e}); the frames and video "
            "are complete, only drift.png was not drawn"
        ) from None
    try:
        return line_plot(run_dir / "drift.png", [to_target, to_prev])
    except OSError as e:  # a full disk at the very end said only "No space left on device"
        why = e.strerror if e.errno is not None else str(e)
        raise OSError(
            f"{run_dir / 'drift.png'} could not be written ({why}); every frame is made, "
            "and the video if the run makes one: a resume draws drift.png alone"
        ) from e


def _check_stop_after(stop_after: int | None, last: int) -> None:
    """Refuse a ``stop_after`` of a frame a resumed run has made already (it rendered
    one more frame, then stopped)."""
    if stop_after is not None and stop_after <= last:
        raise ValueError(
            f"stop_after: frame {stop_after} is already made (the run has {last + 1} "
            "frames); give a later frame, or none"
        )


DRIFT_HEADER = ["frame", "delta_e_to_target", "delta_e_to_previous"]


def _drift_row(r: list[str]) -> bool:
    """Whether ``r`` is a whole drift.csv row: a frame number, then two distances (the
    first frame's previous one, or a run without targets, empty)."""

    def distance(field: str) -> bool:  # ("nan": how runs made before wrote no distance)
        try:
            return field == "" or not math.isinf(float(field))
        except ValueError:
            return False

    return len(r) == 3 and r[0].isascii() and r[0].isdigit() and all(map(distance, r[1:]))


def _keep_drift_rows(path: Path, last: int) -> None:
    """Keep ``path``'s rows of frames up to ``last``, under its header, written whole or
    not at all: rewritten in place, a kill lost the rows of every frame made before, and
    one right after the truncation left an empty file, to which each later resume
    appended rows with no header (so drift.png failed for good)."""
    rows: list[list[str]] = []
    if path.exists():  # not yet written when killed just after settings
        # read line by line, a damaged line dropped on its own (a power cut can leave the
        # tail of a run made before files were synced as zeros or garbage)
        text = path.read_bytes().decode("utf-8", "replace")
        for line in text.splitlines():
            if "\0" in line or "\ufffd" in line:  # zeros or garbage: not a row written whole
                continue
            try:
                rows.extend(r for r in csv.reader([line]) if r)
            except csv.Error:
                continue
    kept = {int(r[0]): r for r in rows if _drift_row(r) and int(r[0]) <= last}
    lost = [k for k in range(last + 1) if k not in kept]
    if lost:
        shown = ", ".join(map(str, lost[:8])) + (", ..." if len(lost) > 8 else "")
        warnings.warn(
            f"{path}: no whole row for frame{'s' * (len(lost) != 1)} {shown} (the file was "
            "damaged); drift.png leaves a gap there",
            RuntimeWarning,
            stacklevel=3,
        )
    with replacing(path, path.with_name(path.name + ".tmp"), "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([DRIFT_HEADER, *kept.values()])


def _frames_in_order(
    run_dir: Path,
    items: Iterator[tuple[int, np.ndarray | None]],
    abandoned: threading.Event | None = None,
    feed: _Feed | None = None,
) -> Iterator[np.ndarray]:
    """The frames of ``(index, frame)`` items, which must come in order from frame 0; a
    frame of None is read back from the run's folder. :class:`_Abandoned` once
    ``abandoned`` is set (a Ctrl-C waited for every stored frame to be encoded again).
    Counts the frames taken on ``feed``."""
    for want, (i, frame) in enumerate(items):
        if i != want:  # a frame lost or repeated would shift the rest of the video
            raise RuntimeError(f"frame {i} came to the encoder where frame {want} was due")
        if frame is None:
            if abandoned is not None and abandoned.is_set():
                raise _Abandoned
            frame = _read_png(run_dir / "frames" / f"{i:06d}.png")
        if feed is not None:
            feed.took(i + 1)
        yield frame


def _have_av() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def _video_path(run_dir: Path, s: Settings) -> Path:
    return run_dir / f"{s['output']['name']}.mp4"


def _encoder(
    run_dir: Path,
    s: Settings,
    on_disk: int,
    rife: Any,
    abandoned: threading.Event | None = None,
    feed: _Feed | None = None,
    let_go: threading.Event | None = None,
) -> Callable[[Iterator[tuple[int, np.ndarray | None]]], None]:
    """The encoder stage: the frames already on disk (a resumed run), then the live
    ``(index, frame)`` items (a frame of None read back from disk: see :class:`_Feed`,
    whose ``taken`` it counts, for the render's bar), interpolated (``rife``: the
    loaded RIFE model, where the settings ask for it) and encoded as they come. The
    video is written under a ``.partial.mp4`` name and renamed when complete, so a killed
    run never leaves a truncated NAME.mp4. ``let_go``: the stage's :attr:`_Stage.let_go`;
    set by the end of the final flush, the video is deleted, not renamed (the render
    stopped meanwhile, by a second Ctrl-C, and did not record it)."""
    from .interpolate import FlowInterpolator, _even_times, interpolate, retime
    from .video import parse_fps, writing_video

    def work(live: Iterator[tuple[int, np.ndarray | None]]) -> None:
        i, v = s["interpolation"], s["video"]
        stored = ((k, None) for k in range(on_disk))
        items = itertools.chain(stored, live)
        frames: Iterator[np.ndarray] = _frames_in_order(run_dir, items, abandoned, feed)
        backend: Any = rife if i["backend"] == "rife" else i["backend"]
        if backend == "flow":
            backend = FlowInterpolator(preset=i["flow_preset"])
        how, k = _video_frames(s)
        if how == "retime":
            # each rendered frame at its time, k / fps; the video's frames at theirs, the
            # in-betweens placed between the two frames around them (10 -> 24 fps: 2.4 a
            # frame). The times are even, so none is held (hold=None)
            fps, to = parse_fps(v["fps"]), parse_fps(i["to_fps"])
            times = _even_times(s["render"]["frames"], fps, to)
            frames = retime(
                frames, times, fps=i["to_fps"], backend=backend, scene_cut=i["scene_cut"],
                hold=None,
            )  # fmt: skip
        elif how == "factor":
            frames = interpolate(frames, factor=k, backend=backend, scene_cut=i["scene_cut"])
        elif how == "every":  # (retime would pass over the others too, loading a model)
            frames = itertools.islice(frames, 0, None, k)
        with writing_video(
            _video_path(run_dir, s),
            keep_partial=False,  # abandoned or failed: resume encodes again from the frames
            fps=_video_rate(s),
            codec=v["codec"],
            crf=v["crf"],
            title=s["output"]["name"],
            settings=s,
        ) as w:
            for f in frames:
                w.write(f)
            w.close()  # the final flush (seconds: x264's lookahead); again at the end: a no-op
            if let_go is not None and let_go.is_set():
                # the render went on without this thread: the video it would rename into
                # place unrecorded, the run's lock let go (a second Ctrl-C), is dropped
                raise _Abandoned

    return work


def _video_rate(s: Settings) -> Any:
    """The frame rate of the render's video: ``interpolation.to_fps`` where it is set,
    else ``video.fps`` x ``interpolation.factor`` (as :func:`~loopwave.video.parse_fps`
    takes either)."""
    to = s["interpolation"]["to_fps"]
    return to if to != "" else s["video"]["fps"] * s["interpolation"]["factor"]


def _video_frames(s: Settings) -> tuple[str, int]:
    """How the render's video gets its frames from the rendered ones: ``("none", 1)``,
    the rendered frames as they are; ``("factor", k)``, ``k - 1`` in-betweens after each
    (:func:`~loopwave.interpolate.interpolate`); ``("every", k)``, every ``k``-th rendered
    frame; ``("retime", 0)``, the frames at the video's own times
    (:func:`~loopwave.interpolate.retime`, the rendered frames' times from
    :func:`~loopwave.interpolate._even_times`). A ``to_fps`` within 1e-5 of a whole
    multiple or a whole fraction of ``video.fps`` is taken as one (``video.fps = 29.97``
    with ``to_fps = "30000/1001"``: no in-betweens; retimed, the rendered frames drifted
    off the video's times, and after 1000 s every frame was an in-between)."""
    from .interpolate import _snapped
    from .video import parse_fps

    it = s["interpolation"]
    if it["to_fps"] == "":
        factor = int(it["factor"])
        return ("none", 1) if factor == 1 else ("factor", factor)
    fps = parse_fps(s["video"]["fps"])
    ratio = _snapped(fps, parse_fps(it["to_fps"])) / fps  # (a whole k or 1/k where near one)
    if ratio == 1:
        return ("none", 1)
    if ratio.denominator == 1 and ratio <= 16:  # (interpolate's most; retime's exact past it)
        return ("factor", int(ratio))
    if ratio.numerator == 1:
        return ("every", ratio.denominator)
    return ("retime", 0)


def _interpolates(s: Settings) -> bool:
    """Whether the render's video has frames made between its rendered ones (an
    interpolator is needed)."""
    return _video_frames(s)[0] in ("factor", "retime")


def _preflight(job: _Job, encode: bool, progress: bool) -> Any:
    """Check what a render would otherwise find wrong only when it reached some frame,
    or when its video started: every frame's settings (:meth:`_Job.check_every_frame`)
    and, if it ``encode``s, the codec, crf and frame size, the video's frame rate (fps x
    interpolation factor, or interpolation.to_fps) and the RIFE model, which is loaded,
    tried on one pair of frames of the render's size and returned (None where the video
    needs none)."""
    job.check_every_frame(progress)
    s = job.s
    if not encode:
        return None
    from .video import _encoder_options, check_codec, check_frame_rate, check_frame_size, parse_fps

    v, it, r = s["video"], s["interpolation"], s["render"]
    if _interpolates(s) and it["backend"] == "flow":  # it failed after the colour plan
        from .interpolate import _cv2

        try:
            _cv2()
        except ImportError as e:
            raise ImportError(f"interpolation.backend = 'flow': {e}") from None
    try:
        encoder = check_codec(v["codec"], v["crf"])
    except (TypeError, ValueError) as e:
        raise SettingsError(f"video.codec / video.crf: {e}") from None
    try:
        opts = _encoder_options(encoder, v["crf"], None, None)  # as the render's writer has
        check_frame_size(encoder, r["height"], r["width"], options=opts)
    except ValueError as e:
        raise SettingsError(f"video.codec with render.width and render.height: {e}") from None
    try:
        check_frame_rate(encoder, parse_fps(_video_rate(s)))
    except ValueError as e:
        what = (
            f"interpolation.to_fps = {it['to_fps']}"
            if it["to_fps"] != ""
            else f"video.fps x interpolation.factor = {v['fps']} x {it['factor']}"
        )
        said = str(e).removeprefix("fps: ")  # (named above: the user set no "fps")
        raise SettingsError(f"{what}, the video's frame rate: {said}") from None
    if _video_frames(s)[0] == "retime":  # (refused in the encoder, after the render began)
        from .interpolate import RETIME_MAX_FRAMES

        span = Fraction(r["frames"] - 1) / parse_fps(v["fps"])
        count = math.floor(span * parse_fps(it["to_fps"])) + 1
        if count > RETIME_MAX_FRAMES:
            raise SettingsError(
                f"interpolation.to_fps = {it['to_fps']}: {r['frames']} frames at video.fps "
                f"{v['fps']} span {float(span):.6g} s, {count} video frames at that rate, "
                f"more than {RETIME_MAX_FRAMES}"
            )
    rife = _rife_model(s)
    if rife is not None:  # one pair at the render's size: fixed sizes, an unrecorded scale
        blank = np.zeros((r["height"], r["width"], 3), np.uint8)
        try:
            rife.between(blank, blank, [0.5])
        except ValueError as e:
            raise SettingsError(f"interpolation.model: {e}") from None
    return rife


def _rife_model(s: Settings) -> Any:
    """The RIFE model the settings interpolate with, loaded; None where they use none."""
    it = s["interpolation"]
    if _interpolates(s) and it["backend"] == "rife":
        from .rife import OnnxRifeInterpolator

        scale = None if it["scale"] == "auto" else float(it["scale"])
        try:
            return OnnxRifeInterpolator(it["model"], scale=scale)
        except (OSError, ValueError) as e:
            if str(e).startswith("scale"):  # (its own message names "scale" already)
                raise SettingsError(f"interpolation.{e}") from None
            raise SettingsError(f"interpolation.model: {e}") from None
    return None


STAGES = ("thread", "process")


@functools.lru_cache(maxsize=4)
def _python_problem(executable: str) -> str | None:
    """Why ``executable`` cannot start the encoder process, or None: in a program that
    embeds Python (uwsgi, Blender) ``sys.executable`` is that program, or empty. One
    named python* or pypy* is taken as what it says; another is asked its version, in a
    session of its own, killed whole after a few seconds (a server started by
    ``-c`` would not end, and its workers outlived a plain kill)."""
    if not executable or not os.access(executable, os.X_OK) or os.path.isdir(executable):
        return f"a new Python, and sys.executable ({executable!r}) is none"
    if os.path.basename(executable).lower().startswith(("python", "pypy")):
        return None
    try:
        p = subprocess.Popen(
            [executable, "-c", "import sys; print(sys.hexversion)"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
    except OSError as e:
        return f"a new Python, and sys.executable ({executable!r}) does not start ({e})"
    try:
        said, _ = p.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            if hasattr(os, "killpg"):
                os.killpg(p.pid, signal.SIGKILL)
            else:  # pragma: no cover - Windows
                p.kill()
        p.communicate()
        return f"a new Python, and sys.executable ({executable!r}) did not answer as one"
    if said.strip() != str(sys.hexversion):
        return f"a new Python, and sys.executable ({executable!r}) is not this Python"
    return None


ENCODER_NICE = 10  # the encoder process's CPU priority, below the render thread's


class _ProcessStage:
    """The encoder stage in a child process (:mod:`loopwave._encode_worker`), with
    :class:`_Stage`'s interface: frames go down a pipe, the child interpolates and
    encodes them at a lower CPU priority, and its error comes back as a StageError on the
    next :meth:`put` or at :meth:`close`. A child that dies outright (a codec's abort, a
    kill) stops the render the same way, with every frame saved; its partial video is
    removed here, and a resume encodes again.

    The child runs in a session of its own, so a signal to the terminal's or the job's
    process group (Ctrl-C, ``timeout``, ``kill -TERM -PGID``) reaches only the renderer,
    which then ends the child through its pipe. The lower priority was meant to keep the
    CPU for the thread that feeds the GPU; on an H200 it made no measurable difference to
    the render's rate (benches/RESULTS_GEN.md)."""

    name = "encoding"
    #: seconds abandon() waits for a write in progress, then for the child to exit
    WRITE_WAIT, EXIT_WAIT = 5.0, 60.0

    def __init__(
        self,
        run_dir: Path,
        on_disk: int,
        video: Path,
        nice: int = ENCODER_NICE,
        lock: _RunLock | None = None,
        frames: int | None = None,
        made: list[Any] | None = None,
    ) -> None:
        """``frames``: the render's frames, all of which a child in its final flush has
        taken (:meth:`abandon` waits for that flush); ``made``: as :class:`_Stage`'s (the
        stage added once its child has started)."""
        import loopwave

        from .video import partial_path

        self._partial = partial_path(video)
        env = dict(os.environ)
        # the child resolves imports as this process does (a `python -m` child would look in
        # its working folder first), and checks that it got this loopwave
        env["LOOPWAVE_SYS_PATH"] = json.dumps(sys.path)
        env["LOOPWAVE_PACKAGE"] = str(Path(loopwave.__file__).resolve().parent)
        # the child ends with this process (Linux; see _encode_worker), and until it has
        # ended it holds the run's lock too: a killed renderer's encoder went on and, its
        # input over, removed the partial video of the render resumed meanwhile
        env["LOOPWAVE_PARENT_PID"] = str(os.getpid())
        boot = (
            "import json, os, sys; sys.path[:] = json.loads(os.environ.pop('LOOPWAVE_SYS_PATH'));"
            " from loopwave._encode_worker import run; run(sys.argv[1:])"
        )
        # the child reports how far it is on a pipe of its own ("TAKEN BEHIND" lines), so
        # the render's bar shows it as the thread stage's does; the child draws no bar (its
        # bar of the stored frames and the render's, both drawn in place on one terminal
        # line, took turns there while a resume caught up)
        self.taken, self.behind = 0, on_disk > 0
        self.frames = frames
        self._done = False
        self._ended = False  # END sent: the child is finishing the video
        self._lock = threading.Lock()  # one write at a time; abandon() waits for it
        self._error: StageError | None = None
        self._said: str | None = None  # its report, once read (_report)
        self._killed = False  # killed by abandon()
        self._end_sent = False  # END written whole (close)
        self._gone = False  # abandon() has run to its end
        report_r, report_w = os.pipe()
        env["LOOPWAVE_REPORT_FD"] = str(report_w)
        try:
            self.p = subprocess.Popen(
                [sys.executable, "-c", boot, str(run_dir), str(on_disk), str(nice)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,  # each frame goes out whole at once, nothing held in a buffer
                env=env,
                start_new_session=True,
                pass_fds=(report_w,) if lock is None else (lock.fd, report_w),
            )
        except BaseException:
            os.close(report_r)
            os.close(report_w)
            raise
        try:
            if made is not None:
                made.append(self)
            os.close(report_w)
            threading.Thread(
                target=self._read_reports,
                args=(report_r,),
                name="loopwave-encoder-reports",
                daemon=True,
            ).start()
        except BaseException:  # a Ctrl-C: the child, started, had no stage to end it and
            # went on past the run's lock (reviews). (The report pipe is left open: the
            # thread may have started and own it.)
            self.abandon()
            raise

    def _read_reports(self, fd: int) -> None:
        """Follow the child's position until it exits (its end of the pipe closes)."""
        with open(fd, "rb") as f:
            for line in f:
                with contextlib.suppress(ValueError):
                    taken, behind = line.split()
                    self.taken, self.behind = int(taken), behind == b"1"

    @property
    def completed(self) -> bool:
        """The child has finished the video: sent the end, it exited by itself, with 0."""
        return self._ended and self.p.poll() == 0

    @property
    def error(self) -> StageError | None:
        """The child's failure, once it is known (raised by :meth:`put` or :meth:`close`,
        or found by :meth:`abandon`: one beside a cancel, raised in its place)."""
        return self._error

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def wait(self, timeout: float) -> bool:
        """Whether the child has exited, waiting up to ``timeout`` seconds."""
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _report(self) -> str:
        """The child's one-line report of its failure, read once it has exited ("": none).
        Without one (killed, or died outright) its partial video is removed here: it could
        not remove it (an error here hid the child's report). One that reported its failure
        removed its own, or kept it and said so ("the finished video is kept as
        NAME.partial.mp4", which was deleted here)."""
        if self._said is None:
            self.p.wait()
            assert self.p.stdout is not None
            self._said = self.p.stdout.read().decode(errors="replace").strip()
            self.p.stdout.close()
            if not self._said:
                with contextlib.suppress(OSError):
                    self._partial.unlink(missing_ok=True)
        return self._said

    def _failure(self) -> StageError:
        """The child's error, once it has exited: its one-line report, or how it died."""
        if self._error is not None:
            return self._error
        rc = self.p.wait()
        msg = self._report()
        if not msg:
            try:
                how = f"was killed by {signal.Signals(-rc).name}" if rc < 0 else ""
            except ValueError:
                how = ""
            msg = f"the encoder process {how or f'exited with {rc}'}"
        self._error = StageError(f"{self.name} failed: {msg}")
        return self._error

    def _write(self, data: bytes | memoryview) -> None:
        assert self.p.stdin is not None
        view = memoryview(data).cast("B")
        while view:  # a raw pipe may take part of a large write
            view = view[self.p.stdin.write(view) or 0 :]

    def put(self, item: tuple[int, np.ndarray]) -> None:
        """Send an ``(index, frame)`` item's frame (the child counts them)."""
        f = np.ascontiguousarray(item[1], dtype=np.uint8)
        with self._lock:
            if self._done:  # abandoned (or closed): dropped, as the thread stage drops it
                return
            if self.p.poll() is not None:  # failed (a finished child has been sent END)
                raise self._failure()
            try:
                self._write(HEADER.pack(FRAME, *f.shape))
                self._write(f.data)
            except (BrokenPipeError, ConnectionResetError):
                if self._done:  # killed by abandon() while this write waited
                    return
                raise self._failure() from None

    def close(self, poll: Callable[[], None] | None = None) -> None:
        """Finish the video; raise the child's error if it failed. ``poll`` is called
        every quarter second while the child finishes (it may raise, as in
        :meth:`_Stage.close`)."""
        assert self.p.stdin is not None and self.p.stdout is not None
        with self._lock:
            if not self._done:
                self._done = True
                self._ended = True
                try:
                    self._write(HEADER.pack(END, 0, 0, 0))
                    self._end_sent = True
                except (BrokenPipeError, ConnectionResetError):
                    pass  # it failed: its report follows
            self.p.stdin.close()
        while poll is not None and not self.wait(0.25):
            poll()
        if self.p.wait() != 0:
            raise self._failure()
        self.p.stdout.close()

    @property
    def finishing(self) -> bool:
        """The child, sent the end, has taken every frame and is still running: it is in
        its final flush (the last in-betweens, the encoder's lookahead), which
        :meth:`abandon` waits for."""
        return (
            self._end_sent  # (a Ctrl-C before the end was written: it never finishes)
            and self.frames is not None
            and self.taken >= self.frames
            and self.p.poll() is None
        )

    def _kill(self) -> None:
        if self.p.poll() is None:  # (one that has exited, of a signal of its own, failed)
            self._killed = True  # (an exit by a signal is then not its own failure)
            self.p.kill()

    def abandon(self) -> None:
        """Stop the child; it drops the partial video (end of input without END). One
        that does not read its input or does not exit in time is killed (a frame write
        waiting on it gives up), and its partial video removed here. A child in its final
        flush (:attr:`finishing`: a cancel or a Ctrl-C in :meth:`close`) is waited for, up
        to ``EXIT_WAIT``, as the thread stage waits for its own flush: the video it
        finishes is kept (:attr:`completed`). Past that wait, or while it still takes
        frames (a resume catching up: minutes), it is killed. A child that failed by
        itself (a report, or a signal not sent here) leaves its error in :attr:`error`."""
        assert self.p.stdin is not None and self.p.stdout is not None
        if self._gone:  # (abandoned already: its own start's guard, then the render's)
            return
        self._done = True
        if self._ended:
            try:
                if self.finishing:
                    self.wait(self.EXIT_WAIT)
            except BaseException:  # a second Ctrl-C: stopped, as before the wait
                self._kill()
                self._report()  # (its partial video removed, unless its report kept it)
                raise
            self._kill()  # (unless it has exited: finished, or failed by itself)
        else:
            try:
                if self._lock.acquire(timeout=self.WRITE_WAIT):
                    try:
                        self.p.stdin.close()  # end of input: the child removes its partial
                    finally:
                        self._lock.release()
                    try:
                        self.p.wait(timeout=self.EXIT_WAIT)
                    except subprocess.TimeoutExpired:
                        self._kill()
                else:  # a write stuck on a child that stopped reading: it is only the video
                    self._kill()
            except BaseException:  # a second Ctrl-C in these waits: stopped, as above (a
                # review: the child went on, and removed its partial video by name after
                # the run's lock was let go, which a resume at once was writing again)
                self._kill()
                self._report()
                raise
        # it failed by itself (a report, or killed by a signal not sent here: a codec's
        # abort in its flush): its error (see error), its files as it left them; killed
        # here without a report, its partial video is removed (_report)
        rc = self.p.wait()
        # (killed here: SIGKILL, and marked. A child that died of its own signal between
        # _kill's poll and the kill, which Popen.kill then did not send, is marked too: a
        # review; its SIGSEGV or SIGABRT is still its failure)
        own = self._killed and rc == -signal.SIGKILL
        if rc != 0 and (self._report() or not own):
            self._failure()
        # the stuck write fails at once on the dead child; its thread only needs a turn
        # on the CPU, which a loaded host may not give it within WRITE_WAIT
        if self._lock.acquire(timeout=self.EXIT_WAIT):
            self.p.stdin.close()
            self._lock.release()
        self.p.stdout.close()
        self._gone = True


def _load_model(settings: Settings, progress: bool) -> Img2Img:
    """The img2img backend ``settings['model']`` names, its compiled parts checked
    before it loads and attached after."""
    m = settings["model"]
    if m["unet"] != "torch" or m["vae"] != "torch":  # before the model loads
        from .backends import check_accel, compiled_parts
        from .trt import check_exported

        compiled = compiled_parts(check_accel(m["accel"], "model.accel"))
        # where load_backend places the model ("auto" puts the smoke model on the CPU)
        on = "cpu" if m["backend"] == "smoke" and m["device"] == "auto" else m["device"]
        try:
            check_exported(on, unet=m["unet"], vae=m["vae"], compiled=compiled)
        except (ValueError, ImportError) as e:
            placed = on != m["device"] and "CUDA" in str(e)
            why = " (device auto puts the smoke model on the CPU)" if placed else ""
            raise type(e)(f"model.{e}{why}") from None
    try:
        backend = load_backend(
            m["backend"],
            m["path"],
            scheduler=m["scheduler"],
            device=m["device"],
            allow_pickle=m["allow_pickle"],
            lora=m["lora"],
            accel=m["accel"],
            progress=progress,
        )
    except ValueError as e:  # the settings' key for the device, speed and LoRA checks'
        if str(e).startswith(("device:", "accel", "lora")):  # ("lora[0]:" named no key)
            raise ValueError(f"model.{e}") from None
        raise
    if m["unet"] != "torch" or m["vae"] != "torch":
        from .trt import use_exported

        r = settings["render"]
        size = {"height": r["height"], "width": r["width"]}
        use_exported(
            backend,  # type: ignore[arg-type]
            unet=m["unet"],
            vae=m["vae"],
            directory=_graph_dir(m, **size),
            **size,
        )
    return backend


def _check_options(stages: Any, stop_after: Any, cancel: Any = None) -> None:
    """:func:`render`'s checks of ``stages``, ``stop_after`` and ``cancel``, which
    :func:`render_frames` makes too, when it is called (not at the first frame)."""
    if cancel is not None and (
        isinstance(cancel, type) or not callable(getattr(cancel, "is_set", None))
    ):
        raise TypeError(
            "cancel must be a threading.Event (anything with is_set()) or None; got "
            + (
                f"the class {cancel.__name__}"
                if isinstance(cancel, type)
                else type(cancel).__name__
            )
        )
    if not isinstance(stages, str) or stages not in STAGES:
        raise ValueError(f"stages must be one of {', '.join(map(repr, STAGES))}; got {stages!r}")
    if stop_after is not None:
        if isinstance(stop_after, (bool, np.bool_)) or not isinstance(
            stop_after, (int, np.integer)
        ):
            raise TypeError(f"stop_after must be a frame index (int) or None; got {stop_after!r}")
        if stop_after < 0:
            raise ValueError(f"stop_after must be >= 0; got {stop_after}")


def render(
    settings: Settings | None,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    backend: Img2Img | None = None,
    progress: bool = True,
    video: bool = True,
    stop_after: int | None = None,
    on_frame: Callable[[int, np.ndarray], None] | None = None,
    stages: str = "thread",
    cancel: Any = None,
) -> RenderResult:
    """Render a morph video (see the module docs) into ``run_dir`` (default: the
    settings' ``output.dir``/``output.name``). ``backend`` is the img2img to use in
    place of the one ``model.*`` names (loaded otherwise); ``video=False`` writes the
    frames without interpolating or encoding; ``progress`` shows progress bars on
    stderr. ``stop_after`` stops after that frame index,
    as a crash would (for tests and partial renders); resume with ``resume=True`` and
    ``run_dir`` (or, without it, the run's settings: the folder they render into).
    ``on_frame(i, frame)`` is called with each finished frame (see :func:`render_frames`;
    the frame is read-only: copy it to change it).
    ``stages``: where the encoder stage (interpolation and encoding) runs: ``"thread"``
    or ``"process"`` (a child process at a lower CPU priority: a codec that crashes there
    stops the render with a StageError instead of killing it); the video is the same.

    ``cancel``: a :class:`threading.Event` (anything with ``is_set()``) that another
    thread sets to stop the render. It is looked at before the render starts, after the
    model has loaded, before each colour-plan render and each frame, and while the video
    is finished: the render then stops after the frame (or plan render) under way,
    saves what it made, as an interrupted run does, and raises :class:`RenderCancelled`
    (its ``frames``: the frames saved; a resume goes on from them). A model already
    loading, and the encoder's final flush under way, are waited for: a video that
    flush completes is kept, and the render returns as a finished one (with
    ``stages="process"``, an encoder process that has taken every frame is waited for,
    up to a minute, then stopped; one still taking frames, a resume catching up, is
    stopped at once; a stopped one's partial video is removed, and a resume encodes
    again). A failure beside the cancel (a full disk) in the writer or the encoder,
    thread or process, is raised in its place. A Ctrl-C waits for that flush too, and a
    video it finishes is recorded and its drift plot drawn (the ``KeyboardInterrupt`` is
    raised carrying the video's path as ``loopwave_finished_video``; a resume finds the
    run finished). A second Ctrl-C in that wait drops the video: an encoder process is
    stopped; the encoder thread, which cannot be, deletes the video it finishes (one it
    was already putting in place is recorded), and the run's lock is held until it has
    ended (a render of the run in this process meanwhile is refused). A second Ctrl-C
    while the render waits for the encoder thread mid-video leaves it and the frame
    writer to end by themselves likewise (one in the wait for the writer, the encoder
    having stopped, leaves the writer; one in the wait for an encoder process stops the
    process and leaves the writer), the writer saving the frames it has; the
    exception then carries ``loopwave_threads_left_running``. All that in a process that
    goes on: one that ends at once (the CLI) ends the threads too, and its resume makes
    again the video, and any frame not saved."""
    _check_options(stages, stop_after, cancel)  # before the model loads
    if resume:
        if run_dir is None and isinstance(settings, Settings):
            # the folder the settings render into, as a fresh run of them takes it
            run_dir = _output_folder(settings)
        if run_dir is None:
            raise ValueError("run_dir: resume needs the run directory (or the run's settings)")
        # absolute from here on: a host program that changes its current folder while the
        # render runs (a notebook's %cd) split the run between two folders
        rd = Path(run_dir).absolute()  # (not abspath: "link/.." is where the link leads)
        if not (rd / "settings.json").is_file():
            raise ValueError(f"run_dir: {rd} has no settings.json to resume from")
        if not os.access(rd, os.W_OK | os.X_OK):  # it failed after the model loaded
            raise OSError(f"run_dir: {rd} is not writable, so the run cannot go on there")
        busy = _RunLock.busy(rd)  # (again under the lock; refused only after the model
        if busy:  # had loaded, 19 s for the smoke model, minutes for a checkpoint)
            raise ValueError(busy)
        saved_raw = _read_json(rd / "settings.json")  # compared again under the run's lock
        try:
            saved = Settings._from_saved(copy.deepcopy(saved_raw))
        except SettingsError as e:  # (the message named a key, not which file holds it)
            raise SettingsError(f"{rd / 'settings.json'}: {e}") from None
        except RecursionError:  # (from the copy: a review found it bare)
            raise SettingsError(f"{rd / 'settings.json'}: nested too deep to read") from None
        if settings is not None:
            if not isinstance(settings, Settings):
                raise TypeError(
                    f"settings must be loopwave.settings.Settings or None; "
                    f"got {type(settings).__name__}"
                )
            # paths compared as absolute, against this folder: a run's settings.json holds
            # them absolute (one made before that, relative, as they were written), and the
            # same job loaded again holds them as its file wrote them
            # (as values: 7 and 7.0 are one cfg, as JSON text they differed)
            given, own = (json.loads(_comparable(x)) for x in (settings, saved))
            if given != own:  # it was silently ignored
                keys = _differing(given, own)
                more = f", and {len(keys) - 5} more" if len(keys) > 5 else ""
                raise ValueError(
                    f"settings: a resume continues with the run's own settings "
                    f"({rd / 'settings.json'}), and these differ ({', '.join(keys[:5])}"
                    f"{more}); pass None"
                )
        # as saved: a run made before its paths were saved absolute takes them against
        # this folder, as it always did (and its digest below is of the file's own form)
        settings = saved
        # before the model loads (a damaged state.json was refused only after it had)
        _read_state(rd)
        state = _state(rd)
        # (plan/ below, once it is known whether frames are to be made)
        problem = _frames_problem(rd, plan=False) or _run_files_problem(rd)
        if problem:
            raise ValueError(problem)
        made_with = state.get("settings")
        if stop_after is not None and isinstance(state.get("last"), int):
            # before the model loads; again under the lock (against the frames that are
            # whole: a resume makes damaged ones again)
            _check_stop_after(stop_after, _last_whole(rd, state["last"])[0])
        if made_with is not None and not _made_with(made_with, saved):
            # frames on from here would not be those of an uninterrupted run (a plan built
            # for 12 frames, continued to 20)
            raise ValueError(
                f"run_dir: {rd / 'settings.json'} changed since its frames were made; a "
                "resume continues with the settings the run started with: put them back, "
                "or start a new run with the new settings"
            )
    else:
        if not isinstance(settings, Settings):  # also refuses None without resume
            raise TypeError(
                f"settings must be loopwave.settings.Settings; got {type(settings).__name__}"
            )
        # checked again: a Settings is a dict, edited after it was loaded (an amplitude
        # of 3 rendered, clamped, into a run whose settings.json no resume could read)
        settings = Settings.from_dict(settings)
        if run_dir is None and not settings["output"]["dir"].strip():
            # an unset variable in a script rendered into the current folder unasked; a
            # new run only (the schema took "", and a run made so still resumes)
            raise ValueError(
                "output.dir: expected a folder path ('.' for the current folder), got "
                f"{settings['output']['dir']!r}"
            )
        rd = Path(run_dir if run_dir is not None else _output_folder(settings)).absolute()
        # the paths the run reads and writes, taken against this folder now: they are saved
        # so in settings.json and in the state's digest, and a resume started from another
        # folder uses the same model, init image and engine folder
        settings = settings.with_absolute_paths()
        problem = settings.path_problem()  # a path long only once absolute
        if problem:
            raise SettingsError(f"{problem} (made absolute, against {os.getcwd()})")
        # before the model loads; again under the lock
        fresh_problem = functools.partial(
            _fresh_run_problem,
            rd,
            plan=settings["colour"]["mode"] == "plan",
            video=_video_path(rd, settings),  # (with or without: a resume may encode)
            encode=bool(video),
        )
        problem = fresh_problem()
        if problem:
            raise ValueError(problem)

    def asked_to_cancel() -> bool:
        return cancel is not None and bool(cancel.is_set())

    def cancelled_early() -> RenderCancelled:
        """Before this render has written anything: a resume's run as it was found."""
        if not resume:
            return RenderCancelled(None, 0, started=False)
        return RenderCancelled(rd, _read_state(rd) + 1, started=False)

    if asked_to_cancel():
        raise cancelled_early()
    if video and not _have_av():  # (it made no video, and said nothing)
        from .video import _INSTALL

        raise ImportError(f"{_INSTALL} (or --no-video, video=False, for the frames alone)")
    encode = bool(video)
    if encode and stages == "process":
        problem = _python_problem(sys.executable)
        if problem:  # (the encoder process exited 125 at the first frame, after the load)
            raise ValueError(f"stages: 'process' runs the encoder in {problem}; use 'thread'")
    problem = _video_name_problem(settings) if encode else None
    if resume and not problem:
        problem = _video_files_problem(rd, settings, encode)
    if problem:
        raise ValueError(problem)
    # before the model loads and the folder is touched
    job = _Job(settings, None, resumed=resume)
    # a resume whose frames are all made and whole has only its video left to make, or
    # nothing: it needs no model (a checkpoint took minutes to load, and its GPU, to
    # encode stored frames or to find the run finished)
    finished = resume and _all_made(rd, job.n)
    if resume and not finished and settings["colour"]["mode"] == "plan":
        # plan/ only where keyframes are still to be made or read (frames found damaged
        # or gone are made again, with the plan): a finished run, or a colour mode
        # without one, never opens it; before the RIFE model is tried (from a review)
        problem = _frames_problem(rd, plan=True) or _run_files_problem(rd, plan=True)
        if problem:
            raise ValueError(problem)
    rife = _preflight(job, encode, progress)
    if stages == "process":  # checked; the encoder process loads its own
        rife = None
    if not resume:  # (a resumed run reads its frame 0 from the folder)
        job.init_image()
    if backend is None and not finished:
        # before touching the run directory: a bad model leaves nothing behind
        backend = _load_model(settings, progress)
    if backend is not None:
        job.backend = backend
        job.check_backend(progress)
    _stop_if_asked()  # a render_frames consumer that stopped while the model loaded
    if asked_to_cancel():
        raise cancelled_early()
    # one render per run folder at a time: a second process (the same job started twice,
    # or a resume while the first still runs) would write the same frames and state
    # (not a ``with``: a Ctrl-C as its Python __enter__ began left the lock taken, held
    # for the rest of the process; one before the try lets go of it in __del__)
    lock = _RunLock(rd)
    raised: BaseException | None = None
    try:
        if not resume:
            # another render may have run here since the check above (while the model
            # loaded): one that finished left its state, which this run must not continue
            problem = fresh_problem(locked=True)
            if problem:
                raise ValueError(problem)
            make_folder(rd / "frames")
            _atomic_json(rd / "settings.json", dict(settings))
            with naming(rd / "drift.csv"):
                (rd / "drift.csv").write_text(",".join(DRIFT_HEADER) + "\n")
        else:
            # another render may have started this folder afresh and finished meanwhile
            # (one that failed before making anything may be started over): continuing
            # it with the settings read before would mix two runs
            changed = _read_json(rd / "settings.json") != saved_raw
            if changed or _state(rd).get("settings") not in (None, made_with):
                raise ValueError(
                    f"run_dir: another render changed {rd} while this resume started; "
                    "resume again to continue the run as it is now"
                )
        # a run whose frames/ was deleted (after its video, to save space) makes them
        # again: writing into a folder that was not there failed after the state and the
        # drift rows were set back, every time
        make_folder(rd / "frames")
        c = settings["colour"]
        recorded_last = _read_state(rd)
        if resume and (
            problem := _run_files_problem(rd) or _video_files_problem(rd, settings, encode)
        ):
            # checked before the model loaded, and again here for one put there while it
            # loaded: a FIFO at a frame's name was waited on for ever by the frames' check
            # below, and a folder there failed bare after the state was set back
            raise ValueError(problem)
        if c["mode"] == "plan" and (
            problem := _frames_problem(rd, plan=True) or _run_files_problem(rd, plan=True)
        ):
            # frames lost since the check before the lock are made again with the plan:
            # refused before the state is set back to them (a review: it was refused
            # after, with a warning that the run "goes on from frame 5")
            if _last_whole(rd, recorded_last)[0] < job.n - 1:
                raise ValueError(problem)
        last = _whole_frames(rd, recorded_last)
        _check_stop_after(stop_after, last)
        if job.backend is None and last < job.n - 1:
            # a frame found damaged or gone since the check before the model would have
            # loaded: it is made again, so the model loads now
            job.backend = _load_model(settings, progress)
            job.check_backend(progress)
        backend = job.backend
        # every frame made and the video the run finished there (its record, dropped from
        # the state by any frame made since: the writer records each frame's state
        # afresh): a resume after a failure at the very end (drift.png on a full disk)
        # encoded the whole video again beside it, needing its size in free space again
        recorded = _state(rd).get("video")
        video_kept = (
            resume
            and encode
            and last == job.n - 1
            and recorded is not None
            and recorded == _video_record(_video_path(rd, settings))
        )
        if video_kept:
            encode = False
        # frames after the last recorded one may be partial writes of a killed run (only
        # the names this renderer writes, 000123.png)
        for f in (rd / "frames").glob("*.png"):
            if (k := _frame_number(f.stem)) is not None and k > last:
                f.unlink()
        # and the temporary files of a write_png killed before its rename (never read)
        for sub in ("frames", "plan"):
            for f in (rd / sub).glob("*.png.tmp") if os.path.isdir(rd / sub) else ():
                if _our_tmp(f):
                    f.unlink()
        if resume:  # rows after the last recorded frame (frame 0's too: a kill before its state)
            _keep_drift_rows(rd / "drift.csv", last)
            if not encode:  # a killed run's cut-off video, else left beside the frames
                from .video import partial_path

                partial_path(_video_path(rd, settings)).unlink(missing_ok=True)
        first = _read_png(rd / "frames" / f"{0:06d}.png") if last >= 0 else job.first_frame()
        plan: ColourPlan | None = None
        if c["mode"] == "plan" and last < job.n - 1:  # (a target for frames still to make)
            assert backend is not None
            plan = _saved_plan(rd)
            if plan is None:
                if last < 0:
                    # no frame yet, but the settings' digest: a resume of a run stopped
                    # while its plan was built refuses edited settings, as one stopped
                    # later does (the kept keyframes were made with them)
                    digest = _settings_digest(settings)
                    _atomic_json(rd / "state.json", {"last": -1, "settings": digest})
                total = len(keyframe_indices(job.n, c["keyframe_every"])) * c["renders"]
                # keyframes a killed build finished are in plan/ already: read, not rendered
                kept = ColourPlan.kept(rd / "plan", frames=job.n, every=c["keyframe_every"])
                with Progress(
                    total,
                    f"colour plan [{backend.label}]",
                    unit="render",
                    enabled=progress,
                    initial=kept * c["renders"],
                ) as plan_bar:

                    def keyframe(k: int, v: int) -> np.ndarray:
                        _stop_if_asked()
                        if asked_to_cancel():
                            raise RenderCancelled(rd, last + 1)
                        img = job.generate(first, k, c["keyframe_strength"], v)
                        plan_bar.update()
                        return img

                    plan = ColourPlan.build(
                        keyframe,
                        frames=job.n,
                        every=c["keyframe_every"],
                        renders=c["renders"],
                        keep=rd / "plan",
                    )
                plan.save(rd)

        def target(i: int) -> np.ndarray | None:
            return plan.target(i) if plan else (first if c["mode"] == "first" else None)

        # mode "first": one target for every frame, its statistics worked out once
        fixed = ColorTarget(first) if plan is None and c["mode"] == "first" else None

        prev = _read_png(rd / "frames" / f"{last:06d}.png") if last >= 0 else None
        done = last + 1
        recording = False  # the render's own record of its video has begun
        record_tried = False  # a record of the video, the render's own or the handler's
        outer: BaseException | None = None  # an exception the caller is handling
        encoder: _Stage | _ProcessStage | None = None
        feed: _Feed | None = None
        started: list[_Stage | _ProcessStage] = []  # (each adds itself as it starts)
        try:  # the stages start (see the except)
            if encode:
                if stages == "process":  # (its child reads frames back as _Feed does)
                    video_at = _video_path(rd, settings)
                    encoder = _ProcessStage(
                        rd, done, video_at, lock=lock, frames=job.n, made=started
                    )
                else:
                    quit_ = threading.Event()  # set by abandon(): the stored frames stop too
                    # behind from the start on a resume: new frames are made meanwhile
                    feed = _Feed(behind=done > 0)
                    # (no bar of its own: the render's bar, moving meanwhile, shows how far)
                    let_go = threading.Event()
                    work = _encoder(rd, settings, done, rife, quit_, feed, let_go)
                    encoder = stage = _Stage(
                        "encoding", work, abandoned=quit_, feed=feed, let_go=let_go, made=started
                    )

                    def kept_anyway() -> None:
                        # a video put in place that the render never tried to record: a
                        # second Ctrl-C after the thread's look at let_go, or one that left
                        # stop() another way (reviews: left unrecorded, encoded again by the
                        # resume). Recorded, the run's lock still held. One whose record
                        # was tried and failed is not (a failed fsync: see the handler)
                        if stage.completed and not record_tried:
                            with contextlib.suppress(OSError, ValueError):
                                _record_video(rd, _video_path(rd, settings))

                    lock.outlived_by(stage, then=kept_anyway)
            # how far the encoder is (the frames taken, and whether it is behind), for the bars
            tracker: _Feed | _ProcessStage | None = feed
            if isinstance(encoder, _ProcessStage):
                tracker = encoder
            writer = _Stage(
                "saving frames", _saver(rd, encoder, _settings_digest(settings)), made=started
            )
            lock.outlived_by(writer, drain=True)  # (the frames it has are saved)
        except BaseException:
            # a Ctrl-C before the render's guard, below, whose handler ends the stages: the
            # stages started end here (an encoder process went on past the run's lock,
            # writing the partial video a resume then wrote too; older, from reading).
            # Each added itself to started as it started (reviews: one whose making a
            # Ctrl-C stopped, never returned, was not stopped)
            for st in started:
                st.abandon()
            raise

        def poll() -> None:
            """Raise RenderCancelled where ``cancel`` is set, every frame saved."""
            if asked_to_cancel():
                raise RenderCancelled(rd, job.n)

        def stop(finish: bool, interrupted: bool = False) -> None:
            """Flush every generated frame to disk; finish the video only if ``finish``
            (a ``cancel`` set meanwhile stops that); ``interrupted``: by a Ctrl-C."""
            if encoder is not None and not finish:
                if progress and encoder.finishing:
                    # (the thread stage's wait has no limit: a thread cannot be killed)
                    again = "Ctrl-C again to drop it" if interrupted else ""
                    if isinstance(encoder, _ProcessStage):
                        why = "process is finishing the video (waited for up to a minute"
                        why += f"; {again})" if again else ")"
                    else:
                        why = f"is finishing the video{f' ({again})' if again else ''}"
                    with contextlib.suppress(OSError):  # (a review: SIGHUP, the terminal
                        # gone, failed this print, and the video finished was dropped)
                        print(f"stopping: the encoder {why}", file=sys.stderr)
                encoder.abandon()
            # (a writer waiting on a full encoder queue drains up to ten frames' encoding)
            writer.close(poll if finish and encoder is not None and cancel is not None else None)
            if encoder is not None and finish:
                if progress and tracker is not None and tracker.behind:
                    # every frame made, the video still catching up: a bar, not a silence
                    with Progress(job.n, "finishing the video", initial=tracker.taken) as end:
                        # (until the encoder has taken the last frame: the end of
                        # the frames is put by close(), below)
                        while tracker.taken < job.n and not encoder.wait(0.25):
                            end.update(tracker.taken - end.done)
                            poll()
                        end.update(tracker.taken - end.done)
                poll()
                encoder.close(poll if cancel is not None else None)

        def video_note() -> str:
            if tracker is None or not tracker.behind:
                return ""
            return f", video {tracker.taken}/{bar.done}"

        try:
            if progress and encoder is not None and done > 0:
                # it waited for the video to catch up, the bar still at "ETA 0s", unexplained
                print(
                    f"re-encoding the {done} frame{'s' * (done != 1)} already made"
                    + (", alongside the new ones" if done < job.n else ""),
                    file=sys.stderr,
                )
            with Progress(
                job.n,
                f"render [{backend.label if backend is not None else 'every frame made'}]",
                enabled=progress,
                initial=done,
                note=video_note,
            ) as bar:
                for i in range(done, job.n):
                    if asked_to_cancel():
                        raise RenderCancelled(rd, i)
                    t = target(i)
                    if i == 0:
                        frame = first
                    else:
                        assert prev is not None
                        frame = job.generate(job.move(prev, i), i, job.strength(i))
                        if t is not None:
                            to = fixed if fixed is not None else t
                            frame = color_correct(frame, to, gamma=c["gamma"])
                    # read-only from here: it is saved (on the writer thread), encoded and
                    # fed back as the next frame's input, and on_frame's caller gets it too
                    # (a consumer's edit reached the saved frame and the next one)
                    frame.flags.writeable = False
                    # drift figures and saving run on the writer thread, encoding on its own
                    writer.put((i, frame, t, prev))
                    prev = frame
                    if on_frame is not None:
                        on_frame(i, frame)
                    bar.update(timed=i > 0)  # frame 0 was made before the loop
                    if stop_after is not None and i >= stop_after:
                        stop(finish=False)
                        return RenderResult(rd, i + 1, None)
            # every frame made: the video is finished (a resume's stored frames encoded again,
            # the encoder's tail) inside the guard too: a Ctrl-C there left the encoder
            # writing, past the lock's release, into a video a next render wrote too
            stop(finish=True)
            if encoder is not None:
                recording = record_tried = True  # (see the handler: a record that failed)
                outer = sys.exc_info()[1]  # (render() called in an except block)
                _record_video(rd, _video_path(rd, settings))
        except BaseException as e:
            # Ctrl-C, a failing backend or stage, or a consumer that stopped early: flush what
            # was generated (resume continues from it) and let the original error through
            try:
                stop(finish=False, interrupted=isinstance(e, KeyboardInterrupt))
            except StageError:
                if isinstance(e, RenderCancelled):  # a failure (a full disk), not only that
                    raise
            if not isinstance(e, RenderCancelled):
                ctrl_c = isinstance(e, KeyboardInterrupt)
                # (the render's own record failed as the Ctrl-C landed: its OSError the
                # context; one that passed, its fsync taking seconds, is recorded again;
                # so is one whose context is the caller's, render() called in an except
                # OSError block: a review)
                context = e.__context__
                failed = recording and isinstance(context, OSError) and context is not outer
                if ctrl_c and encoder is not None and encoder.completed and not failed:
                    # finished as the render stopped (a Ctrl-C in the encoder's final
                    # flush, which is waited for): recorded, so a resume keeps it (from a
                    # review: it encoded the whole video again). Not after an error, nor
                    # after a Ctrl-C as the render's own record failed (an fsync's EIO,
                    # the Ctrl-C delivered as it raised: a second fsync passes, the pages
                    # marked clean, and the video the disk may not hold was kept). The
                    # drift plot drawn too (a review: the CLI said there was nothing to
                    # resume, where a resume drew it); where either fails, not marked
                    whole = _video_path(rd, settings)
                    record_tried = True
                    with contextlib.suppress(OSError, ValueError):  # (not over e)
                        _record_video(rd, whole)
                        _drift_plot(rd)
                        setattr(e, _FINISHED, whole)  # (the CLI: nothing to resume)
                raise
            if encoder is not None and encoder.error is not None:
                encoder._check()  # its failure (a full disk in its final flush), not the cancel
            if encoder is None or not encoder.completed:
                # the frames the writer saved (those handed to it were counted)
                cancelled = RenderCancelled(rd, _read_state(rd) + 1)
                raise cancelled.with_traceback(e.__traceback__) from None
            # the cancel came as the encoder finished the video, which it then did (its
            # final flush is waited for): the render is whole, and said so (from a review:
            # a resume encoded the whole video again, the run not knowing it had one)
            record_tried = True
            _record_video(rd, _video_path(rd, settings))
        _drift_plot(rd)
        made = encode or video_kept
        return RenderResult(rd, job.n, _video_path(rd, settings) if made else None)
    except BaseException as e:
        raised = e
        raise
    finally:
        how = (type(raised), raised, None) if raised is not None else (None, None, None)
        try:
            lock.__exit__(*how)
        except BaseException:
            if not lock._exited:  # a Ctrl-C as it began: none of it done (a review)
                lock.__exit__(*how)
            raise


class _Stop(Exception):
    """Raised inside the render thread when the consumer of render_frames stops early."""


#: the render thread of a render_frames: ``stop``, the Event set when its consumer stops
_consumer = threading.local()


def _stop_if_asked() -> None:
    """Raise :class:`_Stop` in a render_frames' render thread whose consumer has stopped:
    checked before each colour-plan render too (a consumer that stopped during the plan
    waited for all of it, minutes, where on_frame is first called)."""
    stop = getattr(_consumer, "stop", None)
    if stop is not None and stop.is_set():
        raise _Stop


def _differing(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The keys (``section.key``) whose values differ between two settings' JSON."""
    keys = []
    for sec in sorted(set(a) | set(b)):
        x, y = a.get(sec), b.get(sec)
        if isinstance(x, dict) and isinstance(y, dict):
            keys += [f"{sec}.{k}" for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)]
        elif x != y:
            keys.append(sec)
    return keys


def _comparable(settings: Settings) -> str:
    """The settings as JSON, every path absolute and resolved (symlinks and ``..``), so
    two that lead to the same files compare equal: paths are saved joined, not normalised
    (``../here/model`` and ``model`` from ``here``), and ``interpolation.to_fps`` as the
    rate it names (20, 20.0 and "20")."""

    def resolved(path: Any) -> Any:
        return os.path.realpath(path) if isinstance(path, str) and path else path

    out = settings.with_absolute_paths()._with_paths(resolved)
    it = out.get("interpolation")
    if isinstance(it, dict) and it.get("to_fps", "") != "":  # 20 and "20" are one rate
        from .video import parse_fps

        it["to_fps"] = str(parse_fps(it["to_fps"]))
    return out.to_json()


def _output_folder(settings: Mapping[str, Any]) -> Path:
    """The run folder the settings name: ``output.dir`` (a leading ``~`` the home folder,
    as :meth:`Settings.with_absolute_paths` takes it: it made a folder named "~") and
    ``output.name``."""
    out: dict[str, str] = settings["output"]
    return Path(os.path.expanduser(out["dir"])) / out["name"]


#: The keyword options :func:`render_frames` passes on to :func:`render`.
_RENDER_OPTIONS = frozenset(inspect.signature(render).parameters) - {"settings", "on_frame"}


def render_frames(settings: Settings | None, **options: Any) -> Iterator[tuple[int, np.ndarray]]:
    """Render as :func:`render` does, yielding ``(index, frame)`` as each frame is finished.

    The render runs on a background thread up to two frames ahead of the consumer (one
    handed over and waiting, one being made); frames
    are still stored in the run directory, so an interrupted iteration can be
    resumed. Closing the iterator early stops the render after the current frame. Each
    frame is read-only (the renderer saves it and feeds it back as the next frame's
    input): copy it to change it. Its keyword options are :func:`render`'s but
    ``on_frame``; an unknown one, or a bad ``stages`` or ``stop_after``, is refused
    when this is called, and nothing starts until the first frame is asked for (the
    settings' and the model's errors come then).

    An iterator left unfinished and unclosed keeps its render waiting, with the run
    folder locked: an exception raised in the loop and kept (logged with its traceback,
    stored) keeps the iterator too. In a long-lived process iterate it in a
    ``with contextlib.closing(...)`` block, as below, so the render stops either way.
    Close it from the thread that iterates it: Python refuses to close a generator
    another thread is running ("generator already executing"), and the render goes on.
    To stop it from another thread, pass ``cancel``, a ``threading.Event`` that thread
    sets: the iterator then raises :class:`RenderCancelled`, even while it waits for a
    frame or the colour plan is built (see :func:`render`).

    Example
    -------
    >>> from contextlib import closing
    >>> with closing(render_frames(settings, run_dir="out/run")) as frames:  # doctest: +SKIP
    ...     for i, frame in frames:
    ...         my_pipeline.push(frame)
    """
    if "on_frame" in options:
        raise TypeError(
            "render_frames() takes no on_frame: the frames it yields are what render's "
            "on_frame would be given (call render(..., on_frame=...) for a callback)"
        )
    unknown = [k for k in options if k not in _RENDER_OPTIONS]
    if unknown:
        raise TypeError(
            f"render_frames() got an unexpected keyword argument {unknown[0]!r}; it takes "
            f"render's: {', '.join(sorted(_RENDER_OPTIONS))}"
        )
    _check_options(
        options.get("stages", "thread"), options.get("stop_after"), options.get("cancel")
    )
    return _frames_of_render(settings, options)


def _frames_of_render(
    settings: Settings | None, options: dict[str, Any]
) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`render_frames`' generator, its options checked."""
    q: queue.Queue[tuple[int, np.ndarray] | BaseException | None] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: tuple[int, np.ndarray] | BaseException | None) -> bool:
        """Hand ``item`` to the consumer; False once the consumer has stopped (a plain
        put into the full queue, of the end or an error behind the last frame, waited
        forever when the consumer stopped early)."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def on_frame(i: int, frame: np.ndarray) -> None:
        if not put((i, frame)):
            raise _Stop

    def run() -> None:
        _consumer.stop = stop
        try:
            render(settings, on_frame=on_frame, **options)
            put(None)
        except _Stop:
            pass
        except BaseException as e:  # re-raised in the consumer
            put(e)

    t = threading.Thread(target=run, name="loopwave-render", daemon=True)
    t.start()
    try:
        while (item := q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        # closed by the garbage collector (an iterator left in a reference cycle, an
        # exception's traceback) on a thread holding the run lock's _LOCKING, which the
        # render needs to end: from a review, that waited here for good. Only then the
        # render stops by itself after its frame (joined always, a later review found a
        # render left running at exit aborted the process, its frames unsaved)
        if t is not threading.current_thread() and not _locking_held_here():
            t.join()  # (a collection on the render's own thread closed it there too)


def _video_said(path: Path, run_dir: Path) -> str:
    """`` (N frames at R fps)`` for the render's last line: the frames counted in the
    video at ``path``, the rate the run's settings gave it (interpolation.to_fps, or fps
    x factor; read back, a VP9 file's rate was its frames over their span, 1002.5 for
    1000). Empty where either cannot be read."""
    from .video import VideoReader, parse_fps

    try:
        s = Settings._from_saved(_read_json(run_dir / "settings.json"))
        rate = parse_fps(_video_rate(s))
        with VideoReader(path) as r:
            n = r.frame_count
    except (OSError, ValueError):
        return ""
    return f" ({n} frame{'s' * (n != 1)} at {float(rate):.6g} fps)"


def add_cli(sub: Any) -> None:
    """Register ``loopwave render JOB.toml [--resume RUN_DIR] [--model PATH]``."""
    p = sub.add_parser("render", help="render a morph video from a settings file")
    p.add_argument("settings", metavar="JOB", nargs="?", help="settings file (.toml or .json)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument("--model", help="a local diffusers folder or .safetensors (overrides the file)")
    p.add_argument("--out", help="output folder (overrides output.dir)")
    p.add_argument("--frames", type=int, help="number of frames (overrides render.frames)")
    p.add_argument("--size", help="WxH (overrides render.width and render.height)")
    p.add_argument("--no-video", action="store_true", help="write frames only")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--stages",
        choices=STAGES,
        default="thread",
        help="where interpolation and encoding run: a thread (default) or a process at a "
        "lower CPU priority (a codec crashing there stops the render cleanly, frames kept)",
    )

    def run(a: Any) -> int:
        try:
            return go(a)
        except (KeyboardInterrupt, OSError, StageError) as e:
            # (a full disk, an I/O error: the frames recorded are whole, and a resume
            # goes on from them once the cause is gone; it was said for Ctrl-C alone)
            folder = Path(a.resume) if a.resume else run_dir[0] if run_dir else None
            finished = getattr(e, _FINISHED, None)
            if finished is not None:  # (from a review: it said to resume a finished run)
                with contextlib.suppress(OSError):
                    print(f"the video was finished as it stopped: {finished}", file=sys.stderr)
            elif folder is not None and (folder / "settings.json").exists():
                # the options this run was started with (a --no-video run's resume
                # encoded the video, on the disk that had just filled up)
                cmd = ["loopwave", "render", "--resume", str(folder)]
                cmd += ["--no-video"] * a.no_video + ["--quiet"] * a.quiet
                cmd += ["--stages", a.stages] if a.stages != "thread" else []
                when = "" if isinstance(e, KeyboardInterrupt) else " once the cause is fixed"
                saved = "every generated frame is saved"
                if getattr(e, _LEFT_RUNNING, False):  # (a review: the frames the writer
                    # had were not saved, this process ending at once)
                    saved = "stopped at once: the resume makes again any frame not saved yet"
                with contextlib.suppress(OSError):  # (after SIGHUP the terminal may be gone)
                    print(
                        f"{saved}; continue{when} with: {shlex.join(cmd)}",
                        file=sys.stderr,
                    )
            raise

    run_dir: list[Path] = []

    def go(a: Any) -> int:
        from .settings import _read_settings_file

        if a.resume == "":  # (taken as no --resume: "a settings file is needed")
            raise ValueError("--resume: expected the run's folder; got ''")
        if a.resume:
            ignored = [
                name
                for name, given in (
                    ("JOB", a.settings),
                    ("--model", a.model),
                    ("--out", a.out),
                    ("--frames", a.frames),
                    ("--size", a.size),
                )
                if given is not None
            ]
            if ignored:
                raise ValueError(
                    f"--resume continues a run with the settings it was started with; "
                    f"{', '.join(ignored)} cannot be given with it"
                )
            r = render(
                None,
                run_dir=a.resume,
                resume=True,
                progress=not a.quiet,
                video=not a.no_video,
                stages=a.stages,
            )
        else:
            if not a.settings:
                raise ValueError("JOB: a settings file is needed (or --resume RUN_DIR)")
            # the options' values put in before the file's are checked (from a review: a
            # file's render.frames = 2000000 was refused as "--frames (render.frames)" with
            # --frames 2 given, and a file made for --model could never run)
            data = _read_settings_file(a.settings)

            def put(section: str, **values: Any) -> None:
                if isinstance(data, dict) and isinstance(data.get(section, {}), dict):
                    data[section] = {**data.get(section, {}), **values}  # (else named below)

            if a.model is not None:
                put("model", backend="diffusers", path=a.model)
            if a.out is not None:
                put("output", dir=a.out)
            if a.frames is not None:
                put("render", frames=a.frames)
            if a.size is not None:
                m = re.fullmatch(r"([0-9]+) *[xX] *([0-9]+)", a.size.strip())
                if m is None:  # int() alone also took "6_4" and "+64"
                    raise ValueError(f"--size: expected WxH like 256x256; got {a.size!r:.40}")
                # (past 4300 digits int() raised Python's own "Exceeds the limit")
                w, h = (v.lstrip("0") or "0" for v in (m[1], m[2]))
                if max(len(w), len(h)) > 18:
                    raise ValueError(f"--size: a side of more than 18 digits; got {a.size!r:.40}")
                put("render", width=int(w), height=int(h))
            s = Settings.from_dict(data)
            late = sorted(k for k in parse_prompts(s["prompts"]) if k >= s["render"]["frames"])
            if late and a.frames is None and not a.quiet:  # (--frames N: a preview, meant)
                shown = ", ".join(map(str, late[:5])) + (", ..." if len(late) > 5 else "")
                print(
                    f"note: the prompt keyframes at frame {shown} come after the last "
                    f"frame (render.frames = {s['render']['frames']}) and are never used",
                    file=sys.stderr,
                )
            run_dir.append(_output_folder(s))
            r = render(s, progress=not a.quiet, video=not a.no_video, stages=a.stages)
        print(
            f"rendered {r.frames} frame{'s' * (r.frames != 1)} in {r.run_dir}"
            + (f"; video: {r.video}{_video_said(r.video, r.run_dir)}" if r.video else "")
        )
        return 0

    p.set_defaults(func=run)
