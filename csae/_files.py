"""Writing a file so that a crash, Ctrl-C or a bad path never loses what was there.

``write_atomically(path, write)`` is shared by ``SparseAutoencoder.save``,
``csae.to_onnx`` and every output of the ``csae`` command (whose early check
before training is ``check_target``, the same rules). The rules
(docs/guarantees.md, "Saving"; tests/test_writer.py checks each on every caller):

- The new content goes to a temporary file in the target's folder, is fsynced
  and renamed over the target only when complete: the target holds either its
  old content or the whole new one, never a mix, and no temporary file is left.
- Only regular files are replaced. A directory, FIFO, socket or device at the
  path is refused with ``ValueError`` before anything is written (a rename
  would silently swap a device node such as ``/dev/null`` for a plain file).
- A symbolic link is followed: its final target is replaced atomically and
  the link stays a link.
- An existing file keeps its permission bits (and, where the process may set
  them, its owner and group). A new file gets ``0o666`` minus the umask, as
  ``open(path, "w")`` would give it.
- A read-only existing file is refused with ``PermissionError``: writing in
  place would fail, and replacing it by a rename (which needs only the
  folder's permission) would bypass the protection its mode expresses.
- A name as long as the file system allows works: the temporary name is
  cut to fit the same limit (255 bytes on most systems).
- A full disk (or quota, or file-size limit) raises ``OSError`` with its
  errno and a message that says so and names the file; the temporary file
  is removed.
- ``path`` may be ``str``, ``bytes`` or any ``os.PathLike``.

As with any atomic replacement, a file with several hard links gets a new
inode under this name; its other names keep the old content.
"""

import errno
import io
import os
import secrets
import stat

__all__ = ["write_atomically", "check_target", "file_type_name", "display_name"]

_TYPE_NAMES = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)


def file_type_name(mode):
    """What kind of file ``st_mode`` describes, for messages ("a FIFO ...")."""
    for test, name in _TYPE_NAMES:
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def display_name(path):
    """``path`` (str, bytes or os.PathLike) as text for messages and ``os`` calls.

    Raises TypeError for anything else, as ``open`` would."""
    path = os.fspath(path)
    return os.fsdecode(path) if isinstance(path, bytes) else path


def _is_read_only(st, path):
    # os.access answers for this user, except for root, to whom it says yes
    # for any file: there, no write bit at all is what "read-only" means.
    return not (st.st_mode & 0o222) or not os.access(path, os.W_OK)


_NAME_MAX = 255      # bytes in one file name, where pathconf cannot tell
_BUFFER = 1 << 16    # bytes gathered before each write()


def _name_limit(folder):
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):
        return _NAME_MAX
    return limit if limit and limit > 32 else _NAME_MAX


def _temporary_name(folder, base):
    """``.<base>.<8 hex digits>.tmp``, with ``base`` cut so that the whole
    name fits the folder's file-name limit: a target whose own name is just
    under the limit must still be writable."""
    suffix = f".{secrets.token_hex(4)}.tmp"
    raw = os.fsencode(base)
    room = _name_limit(folder) - 1 - len(suffix)
    if len(raw) > room:
        cut = room
        # Never split a UTF-8 character: back up to its first byte.
        while cut > 0 and (raw[cut] & 0xC0) == 0x80:
            cut -= 1
        raw = raw[:cut]
    return os.fsdecode(b"." + raw) + suffix


def _create_temporary(folder, base, name):
    """Open a new, empty file next to the target. O_CREAT with 0o666 lets
    the kernel apply the umask (and any default ACL), exactly as ``open``
    does, unlike mkstemp's fixed 0o600."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, _temporary_name(folder, base))
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as err:
            raise type(err)(err.errno, f"{err.strerror} (creating a temporary file in "
                            f"folder {folder})", name) from None
    raise FileExistsError(errno.EEXIST, f"cannot create a temporary file in {folder}", name)


class _Output(io.RawIOBase):
    """The temporary file as a raw stream over its descriptor.

    Deliberately not an ``io.FileIO``: NumPy writes arrays to a real file
    object through C stdio (``ndarray.tofile``), and a short write there (a
    full disk) becomes "80000 requested and 36336 written", without errno.
    Through ``os.write`` every failure keeps its errno. ``fileno`` is not
    offered, so no writer goes around this object."""

    def __init__(self, fd):
        super().__init__()
        self._fd = fd

    def writable(self):
        return True

    def seekable(self):
        return True

    def write(self, data):
        return os.write(self._fd, data)

    def seek(self, offset, whence=os.SEEK_SET):
        return os.lseek(self._fd, offset, whence)

    def tell(self):
        return os.lseek(self._fd, 0, os.SEEK_CUR)


# Write errors that mean "no room" (said in the system's words, with a hint
# where the words alone do not tell what to do).
_NO_ROOM = {errno.ENOSPC: "", errno.EFBIG: " (for the file system, or for the "
            "process's file-size limit: ulimit -f)"}
if hasattr(errno, "EDQUOT"):
    _NO_ROOM[errno.EDQUOT] = ""


def _no_room(err, name):
    """``err`` (a failed write) as an OSError that says what happened and
    that nothing was left behind, or None if it is another failure."""
    code = getattr(err, "errno", None)
    if code not in _NO_ROOM:
        return None
    return OSError(code, f"{os.strerror(code)}{_NO_ROOM[code]} while writing it; the "
                   "partial file was removed (an existing file is left as it was)", name)


def _fsync_folder(folder):
    """Make the rename itself durable (POSIX only; Windows cannot open folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_target(path, *, replace=True):
    """What ``write_atomically(path, ..., replace=replace)`` checks before it
    writes anything, on its own: a caller about to do long work (the ``csae``
    command before training) asks first, by the same rules.

    Returns ``(name, target, old)``: ``path`` as text, the file that would
    be written (a symbolic link resolved) and its ``os.stat`` (None when it
    does not exist yet).  Raises as ``write_atomically`` does.
    """
    name = display_name(path)
    if not name:
        raise ValueError("cannot write to an empty path")
    if name.endswith(os.sep) or (os.altsep and name.endswith(os.altsep)):
        raise ValueError(f"cannot write {name}: the path ends in a separator, so it "
                         "names a folder, not a file")
    target = os.path.realpath(name)
    try:
        old = os.stat(target)
    except FileNotFoundError:
        old = None
    if old is not None:
        if not stat.S_ISREG(old.st_mode):
            raise ValueError(f"cannot write {name}: it is {file_type_name(old.st_mode)}, "
                             "not a regular file; csae only replaces regular files")
        if not replace:
            raise FileExistsError(errno.EEXIST, "File exists", name)
        if _is_read_only(old, target):
            raise PermissionError(
                errno.EACCES, f"Permission denied: the file is read-only (mode "
                f"{stat.S_IMODE(old.st_mode):04o}); csae does not replace read-only "
                "files: make it writable (chmod u+w) or choose another name", name)
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, f"No such folder: {folder}", name)
    return name, target, old


def write_atomically(path, write, *, replace=True):
    """Create or replace the file ``path`` with what ``write(fh)`` writes.

    Parameters
    ----------
    path : str, bytes or os.PathLike
        The file to write; a symbolic link is followed (its target is
        replaced and the link kept).
    write : callable
        Called once with a binary, buffered, seekable file object open on a
        temporary file (it has no ``fileno``: every write goes through it).
        If it raises (KeyboardInterrupt included), the temporary file is
        removed and ``path`` is left as it was.
    replace : bool, default=True
        When False, an existing file is never replaced: ``FileExistsError``,
        checked before ``write`` runs and again, atomically, when the new
        file is put in place.

    Returns
    -------
    str
        The file actually written (the link's target for a symbolic link).

    Raises
    ------
    ValueError
        The path names a directory, FIFO, socket or device, or ends in a
        path separator.
    PermissionError
        The existing file is read-only, or the folder is not writable.
    FileExistsError
        The file exists and ``replace`` is False.
    FileNotFoundError
        The folder does not exist.
    OSError
        No room: ``errno.ENOSPC`` (disk full), ``EDQUOT`` (quota) or
        ``EFBIG`` (file-size limit), with a message that says so.
    """
    name, target, old = check_target(path, replace=replace)
    folder, base = os.path.split(target)
    fd, tmp = _create_temporary(folder, base, name)
    try:
        _fill(fd, write, old, name)
        if replace:
            os.replace(tmp, target)
        else:
            _link_without_replacing(tmp, target, name)
    except BaseException:
        # Never leave the temporary file behind, whatever went wrong.
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(folder)
    return target


def _fill(fd, write, old, name):
    """Run ``write`` on the new file ``fd``, give it the old file's mode,
    make it durable and close it; a write that found no room raises the
    OSError of ``_no_room``."""
    try:
        try:
            with io.BufferedWriter(_Output(fd), _BUFFER) as fh:
                write(fh)
                fh.flush()
                if old is not None:
                    _copy_ownership_and_mode(fd, old)
                os.fsync(fd)
        finally:
            # Closing the BufferedWriter leaves the descriptor open (its raw
            # stream does not own it); a network file system may report a
            # full disk only here.
            os.close(fd)
    except OSError as err:
        clear = _no_room(err, name)
        if clear is None:
            raise
        raise clear from None


def _copy_ownership_and_mode(fd, old):
    """Give the new file the old one's owner/group (best effort: only root,
    or a member of the group, may) and then its permission bits (after
    chown, which may clear set-id bits; those are not carried over)."""
    if hasattr(os, "fchown"):
        mine = os.fstat(fd)
        if (mine.st_uid, mine.st_gid) != (old.st_uid, old.st_gid):
            try:
                os.fchown(fd, old.st_uid, old.st_gid)
            except OSError:
                pass
    if hasattr(os, "fchmod"):
        os.fchmod(fd, stat.S_IMODE(old.st_mode) & 0o777)


def _link_without_replacing(tmp, target, name):
    """Put ``tmp`` in place only if ``target`` still does not exist: link()
    fails atomically on an existing name, which rename() would replace."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "File exists (created while csae was "
                              "working; left as it was)", name) from None
    except OSError:
        # No hard links on this file system: check, then rename (a small
        # window instead of none).
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "File exists", name) from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)
