"""One writer: every file csae writes obeys the same rules.

``SparseAutoencoder.save``, ``csae.to_onnx`` (and the deep models'
``to_onnx``) and every output of the ``csae`` command (``train``'s model,
``encode``/``reconstruct`` as .npy or .csv, in memory or chunk by chunk) go
through ``csae._files.write_atomically``.  Each rule is tested on each of
them: a new file gets the mode ``open`` gives (0o666 minus the umask), an
existing file keeps its mode, a symbolic link is followed and kept, a FIFO or
a read-only file is refused and left as it was, a name as long as the file
system allows is written, a full disk says so, and no temporary file is ever
left.
"""

import errno
import importlib.util
import os
import signal
import stat
import subprocess
import sys
import warnings

import numpy as np
import pytest

import csae
from csae import SparseAutoencoder
from csae.cli import main

HAVE_ONNX = importlib.util.find_spec("onnx") is not None
POSIX = os.name == "posix"


class Refused(Exception):
    """A writer said no (an exception from the API, a non-zero exit status
    from the command), with its message."""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A fitted model, its file and a data file, in a folder of their own."""
    folder = tmp_path_factory.mktemp("inputs")
    X = np.random.default_rng(0).random((60, 8))
    np.save(folder / "x.npy", X)
    model = SparseAutoencoder(n_hidden=3, solver="sgd", max_epochs=2, batch_size=10,
                              random_state=0).fit(X)
    model.save(folder / "model.npz")
    classifier = csae.SparseAutoencoderClassifier(
        hidden_layer_sizes=(3,), max_iter=2, softmax_max_iter=2,
        autoencoder_params=dict(max_epochs=2), random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # two iterations on purpose
        classifier.fit(X, (X[:, 0] > 0.5).astype(int))
    return {"model": model, "model_file": folder / "model.npz", "data": folder / "x.npy",
            "stack": csae.stack(model), "classifier": classifier}


@pytest.fixture
def out(tmp_path):
    """The folder outputs go to (nothing else is in it)."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


class Context:
    def __init__(self, inputs, capsys, monkeypatch):
        self.__dict__.update(inputs)
        self.capsys, self.monkeypatch = capsys, monkeypatch


@pytest.fixture
def ctx(inputs, capsys, monkeypatch):
    return Context(inputs, capsys, monkeypatch)


def _api(call):
    def write(path, ctx):
        try:
            call(path, ctx)
        except (ValueError, OSError) as err:
            raise Refused(str(err)) from None
    return write


def _command(*argv, chunked=False):
    def write(path, ctx):
        if chunked:
            # A data file larger than one chunk is written chunk by chunk.
            ctx.monkeypatch.setattr("csae._blockwise.CHUNK_BYTES", 1024)
        args = [str(a).format(model=ctx.model_file, data=ctx.data) for a in argv]
        ctx.capsys.readouterr()
        status = main([*args, "--out", os.fsdecode(path), "--force", "--quiet"])
        err = ctx.capsys.readouterr().err
        if status != 0:
            raise Refused(err)
    return write


def _loads_as_npy(path, ctx):
    assert np.load(path).shape[0] == 60


def _loads_as_csv(path, ctx):
    assert np.loadtxt(path, delimiter=",").shape[0] == 60


def _loads_as_model(path, ctx):
    assert csae.load(path).n_features_in_ == 8


def _loads_as_onnx(path, ctx):
    import onnx
    onnx.checker.check_model(onnx.load(os.fsdecode(path)))


# name -> (file suffix, writer, check of what it wrote)
WRITERS = {
    "save": (".npz", _api(lambda path, ctx: ctx.model.save(path)), _loads_as_model),
    "to_onnx": (".onnx", _api(lambda path, ctx: csae.to_onnx(ctx.model, path)),
                _loads_as_onnx),
    "stack to_onnx": (".onnx", _api(lambda path, ctx: ctx.stack.to_onnx(path)),
                      _loads_as_onnx),
    "classifier to_onnx": (".onnx", _api(lambda path, ctx: ctx.classifier.to_onnx(path)),
                           _loads_as_onnx),
    "train": (".npz", _command("train", "{data}", "--hidden", 2, "--epochs", 1,
                               "--solver", "sgd", "--seed", 0), _loads_as_model),
    "encode npy": (".npy", _command("encode", "{model}", "{data}"), _loads_as_npy),
    "encode csv": (".csv", _command("encode", "{model}", "{data}"), _loads_as_csv),
    "encode chunked": (".npy", _command("encode", "{model}", "{data}", chunked=True),
                       _loads_as_npy),
    "reconstruct npy": (".npy", _command("reconstruct", "{model}", "{data}"),
                        _loads_as_npy),
    "reconstruct chunked": (".npy", _command("reconstruct", "{model}", "{data}",
                                             chunked=True), _loads_as_npy),
}
WRITER_PARAMS = [pytest.param(name, marks=pytest.mark.skipif(
    WRITERS[name][0] == ".onnx" and not HAVE_ONNX, reason="needs onnx")) for name in WRITERS]


def write(name, path, ctx):
    """Write with writer ``name``; None on success, else its message."""
    _, writer, check = WRITERS[name]
    try:
        writer(path, ctx)
    except Refused as refused:
        return str(refused)
    check(path, ctx)
    return None


def temporaries(folder):
    return [n for n in os.listdir(folder) if n.endswith(".tmp")]


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002], ids=lambda m: f"umask{m:03o}")
@pytest.mark.parametrize("name", WRITER_PARAMS)
def test_a_new_file_gets_the_umask_mode(name, mask, out, ctx, umask):
    # Before: to_onnx made every new file 0o600 (mkstemp's mode).
    umask(mask)
    path = out / ("new" + WRITERS[name][0])
    assert write(name, path, ctx) is None
    assert mode(path) == 0o666 & ~mask
    assert os.listdir(out) == [path.name]


@pytest.mark.parametrize("name", WRITER_PARAMS)
def test_an_existing_file_keeps_its_mode(name, out, ctx):
    path = out / ("old" + WRITERS[name][0])
    path.write_bytes(b"previous")
    for bits in (0o600, 0o640, 0o604):
        os.chmod(path, bits)
        assert write(name, path, ctx) is None
        assert mode(path) == bits
    assert os.listdir(out) == [path.name]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
@pytest.mark.parametrize("name", WRITER_PARAMS)
def test_a_symlink_is_followed_and_kept(name, out, ctx):
    # Before: to_onnx replaced the link by a regular file.
    suffix = WRITERS[name][0]
    (out / "store").mkdir()
    target = out / "store" / ("real" + suffix)
    target.write_bytes(b"previous")
    os.chmod(target, 0o640)
    link = out / ("link" + suffix)
    os.symlink(os.path.join("store", "real" + suffix), link)
    assert write(name, link, ctx) is None
    assert os.path.islink(link) and os.readlink(link) == os.path.join("store", target.name)
    assert target.read_bytes() != b"previous" and mode(target) == 0o640
    # A dangling link: its target is created, as open(link, "w") would.
    dangling = out / ("dangling" + suffix)
    os.symlink(os.path.join("store", "later" + suffix), dangling)
    assert write(name, dangling, ctx) is None
    assert os.path.islink(dangling) and (out / "store" / ("later" + suffix)).is_file()
    assert sorted(os.listdir(out / "store")) == sorted([target.name, "later" + suffix])
    assert temporaries(out) == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("name", WRITER_PARAMS)
def test_a_fifo_is_refused_and_kept(name, out, ctx):
    # Before: to_onnx replaced the FIFO by a regular file.
    fifo = out / ("fifo" + WRITERS[name][0])
    os.mkfifo(fifo)
    before = os.lstat(fifo)
    message = write(name, fifo, ctx)
    assert message is not None and "FIFO" in message and "not a regular file" in message
    after = os.lstat(fifo)
    assert stat.S_ISFIFO(after.st_mode) and after.st_ino == before.st_ino
    assert os.listdir(out) == [fifo.name]


@pytest.mark.parametrize("name", WRITER_PARAMS)
def test_a_read_only_file_is_refused_and_kept(name, out, ctx):
    # Before: to_onnx replaced it (a rename needs only the folder's permission).
    path = out / ("frozen" + WRITERS[name][0])
    path.write_bytes(b"keep")
    os.chmod(path, 0o444)
    message = write(name, path, ctx)
    assert message is not None and "read-only" in message
    assert path.read_bytes() == b"keep" and mode(path) == 0o444
    assert os.listdir(out) == [path.name]


def _name_limit(folder):
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):
        return 255


@pytest.mark.parametrize("stem", ["a", "\u00e9"], ids=["ascii", "two-byte"])
@pytest.mark.parametrize("name", WRITER_PARAMS)
def test_the_longest_valid_name_is_written(name, stem, out, ctx):
    # Before: a 249-character name failed, its temporary name (the name
    # plus 14 characters) being longer than the 255 bytes a name may have.
    suffix = WRITERS[name][0]
    limit = _name_limit(out)
    longest = (limit - len(suffix)) // len(stem.encode())
    for length in (longest, 249 - len(suffix)) if stem == "a" else (longest,):
        path = out / (stem * length + suffix)
        assert len(os.fsencode(path.name)) <= limit
        assert write(name, path, ctx) is None
        assert path.is_file()
        assert temporaries(out) == []
        path.unlink()


@pytest.fixture
def full_disk(monkeypatch, out):
    """A disk that fills up after ``room`` more bytes, for files in ``out``:
    ``os.write`` (the lowest write csae makes) writes what fits, then fails
    with ENOSPC, as write(2) does."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd to tell which file a descriptor is")
    real_write = os.write
    room = []

    def write(fd, data):
        try:
            where = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            where = ""
        if not room or not where.startswith(str(out) + os.sep):
            return real_write(fd, data)
        if room[0] == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        done = real_write(fd, bytes(memoryview(data)[:room[0]]))
        room[0] -= done
        return done

    monkeypatch.setattr(os, "write", write)

    def fill_after(nbytes):
        room[:] = [nbytes]
    return fill_after


@pytest.mark.parametrize("name", WRITER_PARAMS)
def test_a_full_disk_says_so_and_keeps_the_old_file(name, out, ctx, full_disk):
    path = out / ("h" + WRITERS[name][0])
    path.write_bytes(b"previous")
    full_disk(100)
    message = write(name, path, ctx)
    assert message is not None
    assert "No space left on device while writing it" in message
    assert str(path) in message
    assert "requested and" not in message  # numpy's errno-less short-write message
    assert path.read_bytes() == b"previous"
    assert os.listdir(out) == [path.name]


@pytest.mark.parametrize("name", [n for n in WRITER_PARAMS if n.values[0] in ("save",
                                                                               "to_onnx")])
def test_the_python_api_raises_the_errno_of_a_full_disk(name, out, ctx, full_disk):
    full_disk(0)
    with pytest.raises(OSError) as caught:
        if name == "save":
            ctx.model.save(out / "x.npz")
        else:
            csae.to_onnx(ctx.model, out / "x.onnx")
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(out / ("x.npz" if name == "save" else "x.onnx"))
    assert os.listdir(out) == []


def _file_size_limit(nbytes):
    """Popen's preexec_fn: a file-size limit (ulimit -f) with SIGXFSZ
    ignored, so that a write past it fails with EFBIG after a short write,
    as a write to a full disk ends (a real kernel short write, no root)."""
    import resource

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return limit


@pytest.mark.skipif(not POSIX, reason="needs RLIMIT_FSIZE")
@pytest.mark.parametrize("command, suffix", [("encode", ".npy"), ("encode", ".csv"),
                                             ("reconstruct", ".npy")])
def test_a_short_write_in_the_command_names_the_file_and_the_cause(command, suffix,
                                                                    tmp_path):
    # Before: "csae encode: error: 600000 requested and 131056 written".
    X = np.random.default_rng(0).random((20_000, 8))
    np.save(tmp_path / "x.npy", X)
    SparseAutoencoder(n_hidden=3, solver="sgd", max_epochs=1, random_state=0).fit(
        X[:100]).save(tmp_path / "m.npz")
    (tmp_path / "out").mkdir()
    path = tmp_path / "out" / ("h" + suffix)
    done = subprocess.run([sys.executable, "-m", "csae", command, str(tmp_path / "m.npz"),
                           str(tmp_path / "x.npy"), "--out", str(path)],
                          preexec_fn=_file_size_limit(64 * 1024), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0] == (f"csae {command}: error: {path}: {os.strerror(errno.EFBIG)} "
                        "(for the file system, or for the process's file-size limit: "
                        "ulimit -f) while writing it; the partial file was removed (an "
                        "existing file is left as it was)")
    assert os.listdir(tmp_path / "out") == []


def test_a_shortened_temporary_name_stays_valid_utf8(tmp_path):
    from csae._files import _temporary_name
    limit = _name_limit(tmp_path)
    for base in ("\u00e9" * 125 + ".npz", "\u20ac" * 84 + ".npz", "a" * 251 + ".npz"):
        name = _temporary_name(str(tmp_path), base)
        raw = os.fsencode(name)
        assert len(raw) <= limit
        assert raw.decode("utf-8").startswith("." + base[:10])  # no character cut in two
        assert name.endswith(".tmp")
