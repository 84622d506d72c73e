"""The ``csae`` command (also ``python -m csae``).

Subcommands::

    csae demo [--out DIR] [--seed N]       bars problem end to end, with pictures
    csae train DATA --hidden N --out MODEL  train on a .npy/.npz/.csv file
    csae encode MODEL DATA --out FILE       hidden features of DATA
    csae reconstruct MODEL DATA --out FILE  reconstructions of DATA
    csae info MODEL                         shapes, hyperparameters, history
    csae gradcheck                          analytic vs numerical gradients

Exit status: 0 success; 1 the command ran but did not succeed (training
diverged, a gradient check failed); 2 a usage or input error (one line on
stderr, never a traceback); 130 interrupted by Ctrl-C, 143 by SIGTERM
(``timeout``, a job scheduler, ``docker stop``), both handled alike: no
temporary file is left, and ``train`` and ``demo`` still save the model
reached so far.

Outputs never destroy data: every file (model, ``.npy``, ``.csv``, picture)
is written to a temporary file in the target folder and renamed over the
target only when complete, so Ctrl-C or a crash leaves the previous file as
it was; ``--out`` may not name an input; an existing output is replaced only
with ``--force`` (``demo`` replaces its own three files in its folder).

Progress goes to stderr (a tqdm bar when tqdm is installed, ``pip install
"csae[cli]"``; plain lines otherwise), results to stdout.
"""

import argparse
import codecs
import contextlib
import csv
import math
import os
import signal
import sys
import threading
import time
import warnings
import zipfile

import numpy as np

from csae._params import HYPERPARAMETERS, add_options

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
EXIT_TERMINATED = 143   # 128 + SIGTERM

# The demo: 8x8 bars, 16 true bars, 25 hidden units.  Tuned with the NumPy
# reference, then checked through this command: seeds 0..199 all recover
# 16/16 bars, the worst best-match correlation being 0.94 (threshold 0.9).
# weight_decay 1e-3 is what makes the filters clean (with 1e-4 the margin
# shrinks to ~0.92); sparsity_weight 3 (the estimator default) is too strong
# here and loses bars.  ~0.1 s with the C engine, ~1.3 s with the reference.
DEMO_DATA = dict(n_samples=2000, size=8)
DEMO_MODEL = dict(n_hidden=25, sparsity_target=0.1, sparsity_weight=1.0,
                  weight_decay=1e-3, decoder="sigmoid", solver="sgd", learning_rate=0.3,
                  momentum=0.9, batch_size=20, max_epochs=40)
RECOVERY_THRESHOLD = 0.9

# Command-line spelling of each hyperparameter (csae._params' table: the
# primary option first, then its aliases), used to translate the library's
# error messages (which name the Python parameter).
OPTION_OF = {p.name: "/".join(p.cli) for p in HYPERPARAMETERS if p.cli}


class UserError(Exception):
    """A mistake the user can fix: reported as one line, exit status 2.
    ``prog`` names the (sub)command in the message when known."""

    def __init__(self, message, prog=None):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error becomes one line instead of the usage
    block (``main`` prints it)."""

    def error(self, message):
        raise UserError(f"{message} (see '{self.prog} --help')", prog=self.prog)


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------

def _one_line(text):
    return " ".join(str(text).split())


def _library_message(err):
    """A library error message in command-line terms."""
    message = _one_line(err)
    for name, option in OPTION_OF.items():
        if message.startswith(name + " "):
            message = f"{option} ({name}){message[len(name):]}"
            break
    return (message.replace("pass scale_inputs=True, or use decoder='linear'",
                            "pass --scale-inputs, or use --decoder linear")
            .replace("use dtype='float64'", "use --dtype float64")
            .replace("a smaller learning_rate", "a smaller --lr"))


def _option_names(message):
    """A training message (stopping rule, ConvergenceWarning) with the
    hyperparameters it names spelled as options."""
    message = _one_line(message)
    for name, option in (("max_epochs=", "--max-epochs "), ("max_fun=", "--max-fun "),
                         ("n_iter_no_change=", "--n-iter-no-change "), ("tol=", "--tol "),
                         ("max_epochs", "--max-epochs"), ("max_fun", "--max-fun"),
                         ("early_stopping", "--early-stopping")):
        message = message.replace(name, option)
    return message


def _default_backend():
    """"c" when the compiled engine imports, else the NumPy reference."""
    try:
        from csae import _engine  # noqa: F401
    except ImportError:
        return "python"
    return "c"


def _int_at_least(text, low, expected):
    """The integer in text, refused (saying what was expected) below low."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _positive_int(text):
    return _int_at_least(text, 1, "a positive integer")


# Integer options stop here: the engine counts in 64-bit integers, and a
# larger value would surface as an OverflowError from the binding.
_INT_LIMIT = 2 ** 63 - 1


def _count(text):
    """A positive integer that the engine can hold."""
    value = _positive_int(text)
    if value > _INT_LIMIT:
        raise argparse.ArgumentTypeError(f"{text} is too large (at most 2**63 - 1)")
    return value


def _seed(text):
    return _int_at_least(text, 0, "an integer >= 0")


def _check_input_file(path, what="file"):
    if not os.path.exists(path):
        raise UserError(f"{path}: no such {what}")
    if os.path.isdir(path):
        raise UserError(f"{path} is a directory, expected a {what}")


def _check_output_path(path, suffixes=None, inputs=(), force=False):
    """Fail before any work if ``path`` cannot or must not be written (a long
    training run must not end in an error about the output): an input file,
    then what the writer itself refuses (csae._files.check_target: not a
    regular file, an existing file without ``force``, a read-only file, a
    missing folder), then a read-only folder."""
    from csae._files import check_target
    if os.path.exists(path):
        # samefile: after resolving links and spellings ("./x", "../d/x").
        for source in inputs:
            if os.path.exists(source) and os.path.samefile(path, source):
                raise UserError(f"--out {path} is the input file {source}; writing it "
                                "would destroy the input: choose another output file")
    if suffixes is not None and os.path.splitext(path)[1].lower() not in suffixes:
        raise UserError(f"cannot write {path}: the output file must end in "
                        f"{' or '.join(suffixes)}")
    try:
        _, target, _ = check_target(path, replace=force)
    except FileExistsError:
        raise UserError(f"{path} exists; pass --force to replace it, or choose "
                        "another output file") from None
    except FileNotFoundError:
        raise UserError(f"cannot write {path}: folder "
                        f"{os.path.dirname(os.path.realpath(path))} does not exist") from None
    except ValueError as err:
        raise UserError(_one_line(err)) from None
    except OSError as err:
        raise UserError(f"cannot write {path}: {err.strerror or _one_line(err)}") from None
    parent = os.path.dirname(target)
    if not os.access(parent, os.W_OK):
        raise UserError(f"cannot write {path}: folder {parent} is not writable")


def _csv_fields(line, path, number):
    """The fields of one CSV line; csv's own errors become a UserError
    naming the line and, where it can be found, the column."""
    try:
        return next(csv.reader([line]), [])
    except csv.Error as err:
        limit = csv.field_size_limit()
        for column, field in enumerate(line.split(","), start=1):
            if len(field) > limit or "\0" in field:
                what = (f"the field is too long ({len(field)} characters, at most "
                        f"{limit})" if len(field) > limit else "the field holds a NUL "
                        "character")
                raise UserError(f"cannot read {path}: line {number}, column {column}: "
                                f"{what}") from None
        raise UserError(f"cannot read {path}: line {number}: {_one_line(err)}") from None


def _is_number(field):
    """Whether np.loadtxt reads ``field`` as a number: float() also takes
    underscores ("1_000") and non-ASCII digits, which loadtxt refuses."""
    text = field.strip()
    if not text.isascii() or "_" in text:
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True


def _lines(f, block=1 << 16):
    """The lines of the binary file ``f`` without their endings, streamed:
    a line ends at "\n", "\r\n" or a lone "\r" (as spreadsheets of the
    classic Mac OS write), so every file gets the same line numbers as an
    editor shows."""
    pending = b""
    while chunk := f.read(block):
        lines = (pending + chunk).splitlines(keepends=True)
        # The last piece may continue in the next block (a "\r" too: its
        # "\n" may follow there).
        pending = lines.pop()
        if pending.endswith(b"\n"):
            lines.append(pending)
            pending = b""
        for line in lines:
            yield line.rstrip(b"\r\n")
    if pending:
        yield pending.rstrip(b"\r\n")


def _csv_lines(path):
    """``(line number, line)`` for each line of a CSV file, cleaned for
    np.loadtxt and streamed (a large file is never held twice):

    - lines end at "\n", "\r\n" or a lone "\r";
    - a UTF-8 byte-order mark is dropped, and a line that is not UTF-8
      raises UserError naming it;
    - one trailing comma (as some spreadsheets write) and trailing
      whitespace are dropped;
    - blank lines, lines starting with '#' and the header (the first
      non-blank line when none of its fields is a number) become empty
      lines, which np.loadtxt skips; line numbers stay those of the file.
    """
    header_seen = False
    with open(path, "rb") as f:
        for number, raw in enumerate(_lines(f), start=1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            try:
                line = raw.decode("utf-8").rstrip()
            except UnicodeDecodeError:
                raise UserError(f"cannot read {path}: line {number} is not UTF-8 "
                                "text") from None
            if line.endswith(",") and line != ",":
                line = line[:-1].rstrip()
            if line.lstrip().startswith("#"):
                line = ""
            if line and not header_seen:
                header_seen = True
                if not any(_is_number(field) for field in _csv_fields(line, path, number)):
                    line = ""
            yield number, line


def _csv_problem(path):
    """The first line of a CSV file that cannot be a row of numbers, as a
    message (None if none is found)."""
    width = first = None
    for number, line in _csv_lines(path):
        if not line:
            continue
        fields = _csv_fields(line, path, number)
        if width is None:
            width, first = len(fields), number
        elif len(fields) != width:
            return (f"cannot read {path}: line {number} has {len(fields)} values, but "
                    f"line {first} has {width}")
        for column, field in enumerate(fields, start=1):
            if not field.strip():
                return f"cannot read {path}: line {number}, column {column} is empty"
            if not _is_number(field):
                return (f"cannot read {path}: line {number}, column {column}: "
                        f"{field.strip()[:40]!r} is not a number")
    return None


def _load_csv(path):
    """A numeric CSV file as a 2-D float64 array.

    Accepted: a UTF-8 byte-order mark, one header line (the first non-blank
    line, when none of its fields is a number), blank lines, lines starting
    with '#', quoted numbers and one trailing comma per line. Anything else
    is refused with a UserError naming the line: no row is ever skipped.
    """
    try:
        with warnings.catch_warnings():
            # loadtxt warns on an empty file; load_data reports it as an error.
            warnings.simplefilter("ignore", UserWarning)
            return np.loadtxt((line for _, line in _csv_lines(path)), delimiter=",",
                              quotechar='"', comments=None, ndmin=2, dtype=np.float64)
    except ValueError as err:
        # loadtxt counts rows, not file lines: find the line for the message.
        raise UserError(_csv_problem(path) or f"cannot read {path}: {_one_line(err)}"
                        ) from None


def load_data(path, key=None):
    """Read DATA (.npy, .npz or .csv) as a 2-D numeric array, or raise
    UserError with one line saying what is wrong."""
    _check_input_file(path, "data file")
    suffix = os.path.splitext(path)[1].lower()
    if key is not None and suffix != ".npz":
        raise UserError("--key applies to .npz files only")
    try:
        if suffix == ".npy":
            # A file larger than one chunk is memory-mapped: the estimator
            # then reads it chunk by chunk (csae._blockwise), never whole.
            big = os.path.getsize(path) > _chunk_bytes()
            data = np.load(path, allow_pickle=False, mmap_mode="r" if big else None)
        elif suffix == ".npz":
            data = _load_npz(path, key)
        elif suffix == ".csv":
            data = _load_csv(path)
        else:
            raise UserError(f"{path}: unsupported file type {suffix or '(none)'!r}; "
                            "use .npy, .npz or .csv")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        reason = _one_line(err)
        if "pickled" in reason:  # np.load's advice about allow_pickle does not apply
            reason = (f"not a NumPy {suffix} file (or it holds pickled Python objects, "
                      "which csae never loads)")
        raise UserError(f"cannot read {path}: {reason}") from None
    if not isinstance(data, np.ndarray):
        raise UserError(f"cannot read {path}: it does not hold an array")
    if data.dtype.kind not in "biuf":
        raise UserError(f"{path}: expected numbers, found an array of dtype {data.dtype}")
    if data.ndim != 2:
        hint = ("; reshape it to (n_samples, n_features), e.g. X.reshape(len(X), -1)"
                if data.ndim > 2 else "")
        raise UserError(f"{path}: expected a 2-D array (n_samples, n_features), "
                        f"found shape {data.shape}{hint}")
    if data.size == 0:
        raise UserError(f"{path}: the data is empty (shape {data.shape})")
    return data


def _chunk_bytes():
    from csae._blockwise import CHUNK_BYTES
    return CHUNK_BYTES


def _out_of_core(X):
    from csae._blockwise import is_out_of_core
    return is_out_of_core(X)


def _load_npz(path, key):
    with np.load(path, allow_pickle=False) as archive:
        if isinstance(archive, np.ndarray):  # a .npy file named .npz
            if key is not None:
                raise UserError(f"{path} holds a single array, not named arrays; drop --key")
            return archive
        names = archive.files
        if key is None:
            if len(names) != 1:
                listed = ", ".join(names) if names else "none"
                raise UserError(f"{path} holds {len(names)} arrays ({listed}); "
                                "choose one with --key NAME")
            key = names[0]
        elif key not in names:
            raise UserError(f"{path} has no array named {key!r} "
                            f"(it holds: {', '.join(names) or 'none'})")
        return archive[key]


def load_model(path):
    """csae.load, with errors turned into UserError (csae.load's message
    names the file and says what it looks like)."""
    import csae
    _check_input_file(path, "model file")
    try:
        model = csae.load(path)
    except ValueError as err:
        raise UserError(_one_line(err)) from None
    except OSError as err:
        raise UserError(f"cannot load model {path}: {err.strerror or _one_line(err)}"
                        ) from None
    if model.backend == "c" and _default_backend() == "python":
        model.set_params(backend="python")  # same results, only slower
    return model


def save_array(path, array, replace=False):
    """Write ``array`` to ``path`` exactly (np.save alone would append .npy
    to a name without it): .csv as text, anything else as .npy; through a
    temporary file renamed when complete (csae._files)."""
    from csae._files import write_atomically
    if os.path.splitext(path)[1].lower() == ".csv":
        fmt = "%.9g" if array.dtype == np.float32 else "%.17g"

        def write(fh):
            np.savetxt(fh, array, delimiter=",", fmt=fmt)
    else:
        def write(fh):
            np.save(fh, array, allow_pickle=False)
    write_atomically(path, write, replace=replace)


def save_model(model, path, replace=False):
    """``model.save(path)``, refusing (FileExistsError) to replace a file
    unless ``replace``: the check made before training is repeated, without
    a gap, when the file is put in place."""
    from csae._estimator import save_model as save
    save(model, path, replace=replace)


def save_figure(fig, path, dpi=100):
    """A matplotlib figure as a PNG, atomically (csae.plotting's default dpi)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from csae._files import write_atomically
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas; no global state
    write_atomically(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi))
    return path


# --------------------------------------------------------------------------
# Training with progress and Ctrl-C
# --------------------------------------------------------------------------

class _LineProgress:
    """One line per epoch on stderr (tqdm's fallback)."""

    def __init__(self, total, unit, stream):
        self.total, self.unit, self.stream = total, unit, stream
        self.width = len(str(total))

    def update(self, epoch, objective, seconds, validation=None):
        extra = "" if validation is None else f", validation {validation:.6g}"
        print(f"{self.unit} {epoch:{self.width}d}/{self.total}: objective {objective:.6g}{extra} "
              f"({seconds:.3f} s)", file=self.stream, flush=True)

    def rows(self, done):
        pass

    def close(self):
        pass


class _TqdmProgress:
    """A tqdm bar counting the rows trained on (``rows`` per epoch or L-BFGS
    iteration, one pass over the data), with the epoch and objective beside
    it.  It opens when the first epoch is done, or at the first chunk of a
    memory-mapped file's epoch: the first epoch is where bad data or
    hyperparameters are found, and their error line then stands alone
    instead of following an empty bar."""

    def __init__(self, tqdm, total, rows, unit, stream):
        self.tqdm, self.total, self.per_epoch, self.stream = tqdm, total, rows, stream
        self.unit = unit
        self.bar = None
        self.epochs = 0

    def _move_to(self, position):
        if self.bar is None:
            self.bar = self.tqdm(total=self.total * self.per_epoch, unit="row",
                                 unit_scale=True, desc="training", file=self.stream,
                                 dynamic_ncols=True)
        self.bar.update(position - self.bar.n)

    def rows(self, done):
        self._move_to(self.epochs * self.per_epoch + done)

    def update(self, epoch, objective, seconds, validation=None):
        self.epochs += 1
        extra = "" if validation is None else f", validation={validation:.6g}"
        self._move_to(self.epochs * self.per_epoch)
        self.bar.set_postfix_str(f"{self.unit}={epoch}/{self.total}, objective={objective:.6g}"
                                 f"{extra}", refresh=False)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class _QuietProgress:
    def update(self, epoch, objective, seconds, validation=None):
        pass

    def rows(self, done):
        pass

    def close(self):
        pass


def _progress(total, rows, unit="epoch", quiet=False, stream=None):
    """The progress display for ``total`` epochs (``unit`` "iteration" for
    L-BFGS) over ``rows`` rows each."""
    stream = sys.stderr if stream is None else stream
    if quiet:
        return _QuietProgress()
    try:
        from tqdm import tqdm
    except ImportError:
        return _LineProgress(total, unit, stream)
    return _TqdmProgress(tqdm, total, rows, unit, stream)


def _training_call(call, prog, notes=None):
    """Run ``call()`` (one ``partial_fit`` or ``fit``) and sort the warnings
    it raised: returns ``(status, message)``, status "done", "interrupted"
    or "diverged"; a ConvergenceWarning's message is appended to ``notes``
    (a result, printed with the summary on stdout) when a list is given;
    any other warning is printed as one line."""
    from csae import ConvergenceWarning, TrainingDivergedWarning, TrainingInterruptedWarning
    status, message = "done", None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    for w in caught:
        if issubclass(w.category, TrainingInterruptedWarning):
            status = "interrupted"
        elif issubclass(w.category, TrainingDivergedWarning):
            status, message = "diverged", _library_message(w.message)
        elif notes is not None and issubclass(w.category, ConvergenceWarning):
            notes.append(_option_names(w.message))
        else:
            print(f"{prog}: warning: {_one_line(w.message)}", file=sys.stderr)
    return status, message


def train_epochs(model, X, epochs, progress, prog):
    """Run ``epochs`` epochs of ``partial_fit`` on X, reporting each.

    Returns ``(status, message)`` with status "done", "interrupted" (Ctrl-C;
    the model keeps the epochs completed) or "diverged" (the estimator
    stopped at a non-finite or blown-up objective; the model stays as it was
    before that epoch).
    """
    status, message = "done", None
    try:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            status, message = _training_call(lambda: model.partial_fit(X), prog)
            seconds = time.perf_counter() - start
            if status != "done":
                break
            progress.update(epoch, model.loss_curve_[-1], seconds)
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        progress.close()
    return status, message


def train_fit(model, X, progress, prog):
    """One ``fit`` (any solver, with its stopping rules and early stopping),
    reporting each epoch (iteration) to ``progress``.

    Returns ``(status, message, lines)``: status as ``train_epochs``
    returns it, and the lines that say how training ended (stopping rule,
    early stopping, max_epochs reached) for stdout.
    """
    from csae._estimator import train
    outcome, notes = [], []

    def call():
        outcome.append(train(model, X, hook=lambda k, objective, validation, seconds:
                             progress.update(k, objective, seconds, validation),
                             on_rows=progress.rows)[-1])

    try:
        status, message = _training_call(call, prog, notes)
    except KeyboardInterrupt:  # outside the estimator's own handling
        status, message = "interrupted", None
    finally:
        progress.close()
    lines = []
    if outcome and outcome[0].status == "stopped":
        lines.append(f"stopped early: {_option_names(outcome[0].message)}")
    lines += [f"note: {note}" for note in notes]
    if status != "diverged" and _is_fitted(model) and model.best_epoch_ is not None:
        unit = _unit(model)
        lines.append(f"early stopping: best validation objective "
                     f"{model.best_validation_loss_:.6g} at {unit} {model.best_epoch_} of "
                     f"{model.n_iter_}; the saved model has the weights of that {unit}")
    return status, message, lines


def _is_fitted(model):
    return model.__sklearn_is_fitted__()


def _unit(model):
    """What one step of the model's training is called."""
    return "iteration" if model.solver == "lbfgs" else "epoch"


# --------------------------------------------------------------------------
# Subcommands
# --------------------------------------------------------------------------

def _demo_folder(out):
    """``out``, created if missing; a clear error if it cannot hold the
    demo's files."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"cannot write into {out}: it exists and is not a directory")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create {out}: {err.strerror or _one_line(err)}") from None
    if not os.access(out, os.W_OK):
        raise UserError(f"cannot write into {out}: not writable")
    return out


def _write_demo_files(model, out, title, can_plot):
    """The model and, with matplotlib, its pictures, in ``out``; returns
    the paths in the order the demo names them.  The demo's folder is its
    own: its three files are replaced (each atomically) on every run."""
    model_path = os.path.join(out, "model.npz")
    save_model(model, model_path, replace=True)
    written = [model_path]
    if can_plot:
        from csae.plotting import plot_filters, plot_loss
        written.insert(0, save_figure(plot_filters(model, title=title),
                                      os.path.join(out, "filters.png")))
        written.insert(1, save_figure(plot_loss(model), os.path.join(out, "loss.png")))
    return written


def _report_demo(model, X, bars):
    """Print what the demo's model learned; returns how many bars it found."""
    from csae.datasets import best_match_correlation
    objective = model.loss(X)
    activation = float(model.transform(X).mean())
    best = best_match_correlation(model.encoder_weights_, bars)
    recovered = int(np.sum(best >= RECOVERY_THRESHOLD))
    print(f"final objective         {objective:.4f}  (on all {X.shape[0]} images)")
    print(f"mean hidden activation  {activation:.4f}  (target rho = "
          f"{model.sparsity_target:g})")
    print(f"{recovered}/{bars.shape[0]} bars recovered (best-match correlation >= "
          f"{RECOVERY_THRESHOLD:g}; worst best match {best.min():.3f})")
    return recovered


def _kept_model_exit(prog, status, message, interrupted):
    """The exit code of a training command once its model is written: an
    interruption prints ``interrupted``, a divergence its ``message``."""
    if status == "interrupted":
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if status == "diverged":
        print(f"{prog}: {message}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_demo(args):
    from csae import SparseAutoencoder
    from csae.datasets import make_bars

    prog = "csae demo"
    out = _demo_folder(args.out)
    try:
        import matplotlib  # noqa: F401
        can_plot = True
    except ImportError:
        can_plot = False

    backend = args.backend or _default_backend()
    epochs = args.epochs or DEMO_MODEL["max_epochs"]
    X, bars = make_bars(DEMO_DATA["n_samples"], size=DEMO_DATA["size"],
                        random_state=args.seed, return_components=True)
    size, n_bars = DEMO_DATA["size"], bars.shape[0]
    model = SparseAutoencoder(**{**DEMO_MODEL, "max_epochs": epochs}, backend=backend,
                              random_state=args.seed)

    print(f"csae demo: {X.shape[0]} random {size}x{size} bars images "
          f"({n_bars} possible bars, each present with probability 1/{size})")
    engine_note = "" if backend == "c" else " (NumPy reference; build the C engine for speed)"
    print(f"training {model!r}\n  on backend {backend!r}{engine_note}")
    shown = {1, epochs} | set(range(5, epochs + 1, 5 if epochs <= 50 else 10))

    class _DemoProgress:
        def update(self, epoch, objective, seconds):
            if epoch in shown:
                print(f"  epoch {epoch:3d}/{epochs}  objective {objective:.4f}", flush=True)

        def close(self):
            pass

    start = time.perf_counter()
    status, message = train_epochs(model, X, epochs, _DemoProgress(), prog)
    seconds = time.perf_counter() - start
    if not _is_fitted(model) or model.n_iter_ == 0:
        print(f"{prog}: {status} before the first epoch finished; nothing written",
              file=sys.stderr)
        return EXIT_INTERRUPTED if status == "interrupted" else EXIT_FAILED

    print(f"trained {model.n_iter_} epochs in {seconds:.2f} s")
    recovered = _report_demo(model, X, bars)
    title = f"{model.n_hidden} hidden units ({recovered}/{n_bars} bars recovered)"
    print("wrote " + ", ".join(_write_demo_files(model, out, title, can_plot)))
    if not can_plot:
        print(f"{prog}: note: filters.png and loss.png need matplotlib: "
              'pip install "csae[plot]"', file=sys.stderr)
    return _kept_model_exit(prog, status, message, f"interrupted after epoch {model.n_iter_}")


def cmd_train(args):
    from csae import SparseAutoencoder

    prog = "csae train"
    # Inputs first (a missing file is the more basic mistake), then the
    # output, all before any work.
    _check_input_file(args.data, "data file")
    _check_output_path(args.out, inputs=(args.data,), force=args.force)
    X = load_data(args.data, args.key)
    # Options left out stay None: the estimator's default applies.
    params = {p.name: getattr(args, p.name) for p in HYPERPARAMETERS
              if p.cli and getattr(args, p.name) is not None}
    params.setdefault("backend", _default_backend())
    model = SparseAutoencoder(**params)
    if (not model.scale_inputs and X.dtype != np.dtype(model.dtype)
            and not _out_of_core(X)):  # a memory-mapped file is converted chunk by chunk
        # Converted once here (with --scale-inputs the estimator scales in
        # float64 first).
        X = np.ascontiguousarray(X, dtype=model.dtype)
    epochs = model.max_epochs

    start = time.perf_counter()
    unit = _unit(model)
    progress = _progress(epochs, X.shape[0], unit, quiet=args.quiet)
    status, message, ending = train_fit(model, X, progress, prog)
    seconds = time.perf_counter() - start
    if not _is_fitted(model):
        # No epoch completed: a fit that fails is a transaction, so there is
        # no model to save.
        if status == "diverged":
            print(f"{prog}: {message.rstrip('.')}; nothing saved", file=sys.stderr)
            return EXIT_FAILED
        print(f"{prog}: interrupted before training started; nothing saved", file=sys.stderr)
        return EXIT_INTERRUPTED
    save_model(model, args.out, replace=args.force)
    curve = model.loss_curve_
    final = f"final objective {curve[-1]:.6g}" if curve else "no epoch completed"
    print(f"trained {model.n_iter_} {unit}{'s' if model.n_iter_ != 1 else ''} on "
          f"{X.shape[0]} x {X.shape[1]} in {seconds:.2f} s: {final}; "
          f"model saved to {args.out}")
    for line in ending:
        print(line)
    return _kept_model_exit(prog, status, message,
                            f"interrupted; the model reached so far was saved to {args.out}")


def _load_model_and_rows(args):
    """The model and data of a command that writes one output row per data
    row (encode, reconstruct), after checking every path before any work.
    Returns (model, X, by_chunks): by_chunks when X is memory-mapped and the
    output is .npy, which is then written chunk by chunk (_save_rows)."""
    _check_input_file(args.model, "model file")
    _check_input_file(args.data, "data file")
    _check_output_path(args.out, (".npy", ".csv"), inputs=(args.model, args.data),
                       force=args.force)
    model = load_model(args.model)
    X = load_data(args.data, args.key)
    return model, X, _out_of_core(X) and os.path.splitext(args.out)[1].lower() != ".csv"


def cmd_encode(args):
    model, X, by_chunks = _load_model_and_rows(args)
    if by_chunks:
        shape, dtype = _save_rows(args.out, X, model.transform, model.encoder_weights_.shape[0],
                                  np.dtype(model.dtype), replace=args.force,
                                  quiet=args.quiet, desc="encoding")
        print(f"wrote {args.out}: hidden features, shape {shape}, {dtype}")
        return EXIT_OK
    H = model.transform(X)
    save_array(args.out, H, replace=args.force)
    print(f"wrote {args.out}: hidden features, shape {H.shape}, {H.dtype}")
    return EXIT_OK


def _save_rows(path, X, function, width, dtype, *, replace, quiet, desc):
    """Write ``function(X[rows])`` for chunks of the memory-mapped X to the
    .npy file ``path``, one chunk at a time (header first, then the rows
    appended), with a progress bar counting rows.  Returns (shape, dtype)."""
    from csae._blockwise import _release, chunk_rows
    from csae._files import write_atomically
    m = X.shape[0]
    step = chunk_rows(X)
    bar = None
    if not quiet:
        try:
            from tqdm import tqdm
            bar = tqdm(total=m, unit="row", unit_scale=True, desc=desc,
                       file=sys.stderr, dynamic_ncols=True)
        except ImportError:
            bar = None

    def write(fh):
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                  "shape": (m, width)}
        np.lib.format.write_array_header_1_0(fh, header)
        for start in range(0, m, step):
            stop = min(start + step, m)
            try:
                rows = np.ascontiguousarray(function(X[start:stop]), dtype=dtype)
            finally:
                _release(X)
            if rows.shape != (stop - start, width):
                raise RuntimeError(f"expected {(stop - start, width)} rows, got {rows.shape}")
            fh.write(rows.tobytes())
            if bar is not None:
                bar.update(stop - start)
            elif not quiet:
                print(f"rows {stop}/{m}", file=sys.stderr, flush=True)

    try:
        write_atomically(path, write, replace=replace)
    finally:
        if bar is not None:
            bar.close()
    return (m, width), dtype


def cmd_reconstruct(args):
    model, X, by_chunks = _load_model_and_rows(args)
    if by_chunks:
        squares = []  # each chunk's sum of squared errors, in float64

        def reconstruct(rows):
            Y = model.reconstruct(rows)
            squares.append(float(np.sum((Y.astype(np.float64) - rows) ** 2)))
            return Y
        shape, dtype = _save_rows(args.out, X, reconstruct, X.shape[1],
                                  np.dtype(model.dtype), replace=args.force,
                                  quiet=args.quiet, desc="reconstructing")
        mse = math.fsum(squares) / X.size
    else:
        Y = model.reconstruct(X)
        save_array(args.out, Y, replace=args.force)
        shape, dtype = Y.shape, Y.dtype
        mse = float(np.mean((Y.astype(np.float64) - X) ** 2))
    print(f"wrote {args.out}: reconstructions, shape {shape}, {dtype}; "
          f"mean squared error {mse:.6g}")
    return EXIT_OK


def cmd_info(args):
    model = load_model(args.model)
    W = model.encoder_weights_
    params = model.get_params()
    print(f"model            {args.model}")
    print(f"shape            {model.n_features_in_} features -> {W.shape[0]} hidden units "
          f"({W.dtype})")
    print(f"weights          encoder {W.shape}, decoder {model.decoder_weights_.shape}")
    print("hyperparameters")
    width = max(len(name) for name in params)
    for name, value in params.items():
        print(f"  {name:<{width}}  {value!r}")
    curve = model.loss_curve_
    if not curve:
        print("training         no epochs recorded")
    else:
        best = int(np.argmin(curve))
        unit = _unit(model)
        print(f"training         {len(curve)} {unit}{'s' if len(curve) != 1 else ''}; "
              f"objective {curve[0]:.6g} ({unit} 1) -> {curve[-1]:.6g} "
              f"({unit} {len(curve)}); lowest {curve[best]:.6g} ({unit} {best + 1})")
    return EXIT_OK


GRADCHECK_TOLERANCE = 1e-6


def cmd_gradcheck(args):
    import csae

    rng = np.random.default_rng(args.seed)
    X = rng.random((args.samples, args.features))
    backend = args.backend or _default_backend()
    decoders = ("sigmoid", "linear") if args.decoder == "both" else (args.decoder,)
    print(f"gradient check: {args.samples} samples x {args.features} features, "
          f"{args.hidden} hidden units, backend {backend!r}, central differences")
    worst = 0.0
    for decoder in decoders:
        # Two epochs move the weights off their initial values, so every
        # term of the objective (sparsity included) has a real gradient.
        model = csae.SparseAutoencoder(solver="sgd", n_hidden=args.hidden,
                                       sparsity_target=0.1, sparsity_weight=3.0,
                                       weight_decay=1e-3, decoder=decoder, learning_rate=0.1,
                                       batch_size=max(1, args.samples // 4), max_epochs=2,
                                       backend=backend, random_state=args.seed)
        with warnings.catch_warnings():
            # Two epochs on purpose: ending at max_epochs is the plan here.
            warnings.simplefilter("ignore", csae.ConvergenceWarning)
            model.fit(X)
        error = csae.check_gradients(model, X)
        worst = max(worst, error)
        print(f"  decoder {decoder:<8} worst relative error {error:.3g}")
    if worst < GRADCHECK_TOLERANCE:
        print(f"OK: analytic gradients match finite differences (< {GRADCHECK_TOLERANCE:g})")
        return EXIT_OK
    print(f"FAILED: relative error {worst:.3g} >= {GRADCHECK_TOLERANCE:g}")
    return EXIT_FAILED


# --------------------------------------------------------------------------
# Parser and entry point
# --------------------------------------------------------------------------

_DATA_HELP = ("data file: .npy, .npz (one array, or choose with --key) or .csv "
              "(UTF-8, numbers only, optional header line); one sample per row")


def _add_data(p):
    p.add_argument("data", metavar="DATA", help=_DATA_HELP)
    p.add_argument("--key", default=None, help="array name inside a .npz file")


def _add_force(p):
    p.add_argument("--force", action="store_true",
                   help="replace --out if it exists (default: refuse); the old "
                        "file stays as it was until the new one is complete")


def build_parser():
    """The argparse parser of the ``csae`` command: one function per command
    below declares its options."""
    from csae import __version__
    parser = _Parser(
        prog="csae",
        description="Sparse autoencoders with a KL-divergence sparsity penalty.",
        epilog="Run 'csae demo' to see one learn the bars problem. "
               "Outputs are written to a temporary file and renamed when complete; "
               "an existing --out is replaced only with --force. "
               "Exit status: 0 ok, 1 failed (diverged / gradient check), "
               "2 usage or input error, 130 interrupted (Ctrl-C), 143 terminated "
               "(SIGTERM; handled as Ctrl-C).")
    parser.add_argument("--version", action="version", version=f"csae {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_demo_command(sub)
    _add_train_command(sub)
    _add_apply_command(sub, "encode", cmd_encode, "FEATURES",
                       help="hidden features of a data file",
                       description="Write the hidden activations of DATA under MODEL.")
    _add_apply_command(sub, "reconstruct", cmd_reconstruct, "OUT",
                       help="reconstructions of a data file",
                       description="Write the model's reconstruction of DATA.")
    p = sub.add_parser("info", help="describe a model file",
                       description="Print a model's shapes, hyperparameters and "
                                   "training history.")
    p.add_argument("model", metavar="MODEL", help="model file")
    p.set_defaults(func=cmd_info)
    _add_gradcheck_command(sub)
    return parser


def _add_demo_command(sub):
    p = sub.add_parser("demo", help="learn the bars problem and draw the filters",
                       description="Generate 8x8 bars images, train a sparse "
                                   "autoencoder on them, report how many of the 16 "
                                   "bars its hidden units found, and write "
                                   "filters.png, loss.png and model.npz.")
    p.add_argument("--out", default="csae-demo", metavar="DIR",
                   help="folder for the pictures and the model (default: csae-demo)")
    p.add_argument("--seed", type=_seed, default=0,
                   help="seed of the data and the model (default: 0)")
    p.add_argument("--epochs", type=_positive_int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--backend", choices=("c", "python"), default=None,
                   help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_demo)


def _add_train_command(sub):
    p = sub.add_parser("train", help="train a model on a data file",
                       description="Train a sparse autoencoder on DATA and save it to "
                                   "MODEL. Ctrl-C stops training and still saves the "
                                   "model reached so far.")
    _add_data(p)
    # One option per hyperparameter of csae._params' table, named as in
    # Python (--max-epochs), with the older spellings (--epochs) kept.
    add_options(p, _count)
    p.add_argument("--out", required=True, metavar="MODEL",
                   help="model file to write (.npz); never an input file")
    _add_force(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_train)


def _add_apply_command(sub, name, func, out_metavar, *, help, description):
    """encode and reconstruct: a model applied to a data file."""
    p = sub.add_parser(name, help=help,
                       description=description + " A .npy DATA file larger than memory "
                                   "is read memory-mapped and the .npy output written "
                                   "chunk by chunk.")
    p.add_argument("model", metavar="MODEL", help="model file written by 'csae train'")
    _add_data(p)
    p.add_argument("--out", required=True, metavar=out_metavar,
                   help="output file, .npy or .csv; never an input file")
    _add_force(p)
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress display (shown for chunked files)")
    p.set_defaults(func=func)


def _add_gradcheck_command(sub):
    p = sub.add_parser("gradcheck", help="check gradients against finite differences",
                       description="Compare the analytic gradients with central finite "
                                   "differences on a small random problem (UFLDL's "
                                   "gradient check). Exit status 1 if they disagree.")
    p.add_argument("--hidden", type=_positive_int, default=5, help="hidden units (default: 5)")
    p.add_argument("--features", type=_positive_int, default=8, help="features (default: 8)")
    p.add_argument("--samples", type=_positive_int, default=20, help="samples (default: 20)")
    p.add_argument("--decoder", choices=("sigmoid", "linear", "both"), default="both",
                   help="decoder(s) to check (default: both)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    p.add_argument("--backend", choices=("c", "python"), default=None,
                   help="'c' (compiled engine) or 'python' (NumPy reference); "
                        "default: c when built")
    p.set_defaults(func=cmd_gradcheck)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt: every path that
    handles Ctrl-C (no temporary file left, ``train`` saving what it
    reached) then handles ``timeout``, a job scheduler or ``docker stop``."""


@contextlib.contextmanager
def _sigterm_as_ctrl_c():
    """While the command runs, SIGTERM raises ``_Terminated``; yields a list
    that holds the signal once one arrived.  Only where SIGTERM has its
    default action (which kills the process on the spot) and only in the
    main thread (where Python runs signal handlers): an ignored SIGTERM, or
    the handler of a program calling ``main``, is left alone."""
    received = []
    if (not hasattr(signal, "SIGTERM")
            or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield received
        return

    def terminate(signum, frame):
        received.append(signum)
        raise _Terminated()

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def main(argv=None):
    """Run the ``csae`` command with ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit status instead of exiting, so that it can be called
    from Python; the console script passes it to ``sys.exit``.  SIGTERM is
    handled as Ctrl-C is, with exit status 143.
    """
    with _sigterm_as_ctrl_c() as terminated:
        try:
            status = _run(argv)
        except KeyboardInterrupt:  # a signal after the command's own handling
            status = EXIT_INTERRUPTED
    return EXIT_TERMINATED if terminated and status == EXIT_INTERRUPTED else status


def _run(argv):
    prog = "csae"
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exit_:  # --help and --version
            return exit_.code if isinstance(exit_.code, int) else EXIT_OK
        prog = f"csae {args.command}"
        return args.func(args)
    except UserError as err:
        prog = err.prog or prog
        message = str(err)
    except ValueError as err:  # the library's checks of data and hyperparameters
        message = _library_message(err)
    except OverflowError as err:  # a number too large for the engine
        message = f"a value is out of range: {_one_line(err)}"
    except MemoryError:
        print(f"{prog}: error: out of memory (try a smaller --hidden or less data)",
              file=sys.stderr)
        return EXIT_FAILED
    except OSError as err:  # e.g. disk full or permission denied while writing
        target = f"{err.filename}: " if err.filename else ""
        message = f"{target}{err.strerror or _one_line(err)}"
    except KeyboardInterrupt as err:
        what = "terminated (SIGTERM)" if isinstance(err, _Terminated) else "interrupted"
        print(f"\n{prog}: {what}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_USAGE
