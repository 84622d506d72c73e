"""The ``csae`` command: every subcommand on real files, and clean failures.

Most tests call ``csae.cli.main(argv)`` in-process (fast, and stdout/stderr
are captured); a few run ``python -m csae`` in a subprocess to check the
real entry point, exit codes and Ctrl-C.
"""

import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

import csae
from csae import SparseAutoencoder
from csae.cli import main


def _sigint_as_in_a_terminal():
    """Popen's preexec_fn for the Ctrl-C and SIGTERM tests: the child starts
    with SIGINT's and SIGTERM's default actions, as under a terminal, even
    when this test runs as a background job of a non-interactive shell
    (which starts with SIGINT ignored, and Python then installs no
    KeyboardInterrupt handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run(capsys, *argv):
    """main(argv) -> (status, stdout, stderr)."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def data(tmp_path):
    """Data files in [0, 1]: .npy, .npz (one and two arrays), .csv with header."""
    rng = np.random.default_rng(0)
    X = rng.random((120, 16))
    paths = {"X": X, "npy": tmp_path / "x.npy", "npz": tmp_path / "x.npz",
             "npz2": tmp_path / "two.npz", "csv": tmp_path / "x.csv"}
    np.save(paths["npy"], X)
    np.savez(paths["npz"], data=X)
    np.savez(paths["npz2"], train=X, other=X[:, :4])
    np.savetxt(paths["csv"], X, delimiter=",", fmt="%.17g",
               header=",".join(f"f{i}" for i in range(16)), comments="")
    return paths


@pytest.fixture
def model_file(tmp_path, data, capsys):
    path = tmp_path / "model.npz"
    status, _, _ = run(capsys, "train", data["npy"], "--hidden", 5, "--epochs", 4,
                       "--seed", 0, "--out", path, "--quiet")
    assert status == 0
    return path


# --------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------

def test_demo_end_to_end(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out_dir = tmp_path / "demo"
    status, out, err = run(capsys, "demo", "--out", out_dir)
    assert status == 0, err
    assert err == ""
    assert "16/16 bars recovered (best-match correlation >= 0.9" in out
    assert "final objective" in out
    assert "mean hidden activation" in out and "target rho = 0.1" in out
    assert "epoch  40/40" in out
    for name in ("filters.png", "loss.png"):
        with open(out_dir / name, "rb") as f:
            assert f.read(8) == PNG_SIGNATURE
    model = csae.load(out_dir / "model.npz")
    assert model.encoder_weights_.shape == (25, 64)
    assert model.n_iter_ == 40


def test_demo_python_backend_and_epochs_override(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    status, out, err = run(capsys, "demo", "--out", tmp_path, "--epochs", 3,
                           "--backend", "python", "--seed", 5)
    assert status == 0, err
    assert "backend 'python'" in out
    assert "epoch   3/3" in out
    assert "bars recovered" in out
    assert csae.load(tmp_path / "model.npz").n_iter_ == 3


def test_demo_without_matplotlib_still_trains(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    status, out, err = run(capsys, "demo", "--out", tmp_path, "--epochs", 2)
    assert status == 0
    assert (tmp_path / "model.npz").exists()
    assert not (tmp_path / "filters.png").exists()
    assert 'pip install "csae[plot]"' in err
    assert len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kind, extra", [("npy", []), ("npz", []),
                                         ("npz2", ["--key", "train"]), ("csv", [])])
def test_train_reads_every_format(tmp_path, data, capsys, kind, extra):
    out_path = tmp_path / "m.npz"
    status, out, err = run(capsys, "train", data[kind], *extra, "--hidden", 3,
                           "--epochs", 2, "--seed", 1, "--out", out_path)
    assert status == 0, err
    assert f"model saved to {out_path}" in out
    model = csae.load(out_path)
    assert model.n_features_in_ == 16 and model.n_iter_ == 2


def test_train_options_reach_the_model_and_match_fit(tmp_path, data, capsys):
    out_path = tmp_path / "m.npz"
    status, _, err = run(capsys, "train", data["npy"], "--hidden", 4, "--rho", 0.2,
                         "--beta", 2.5, "--lambda", 0.003, "--lr", 0.05,
                         "--momentum", 0.5, "--batch-size", 16, "--epochs", 5,
                         "--decoder", "linear", "--dtype", "float32", "--seed", 3,
                         "--backend", "python", "--out", out_path)
    assert status == 0, err
    model = csae.load(out_path)
    params = model.get_params()
    assert params["n_hidden"] == 4 and params["sparsity_target"] == 0.2
    assert params["sparsity_weight"] == 2.5 and params["weight_decay"] == 0.003
    assert params["learning_rate"] == 0.05 and params["momentum"] == 0.5
    assert params["batch_size"] == 16 and params["max_epochs"] == 5
    assert params["decoder"] == "linear" and params["dtype"] == "float32"
    assert params["random_state"] == 3 and params["backend"] == "python"
    assert model.encoder_weights_.dtype == np.float32
    # Epoch-by-epoch training in the command equals one fit() call.
    direct = SparseAutoencoder(**params).fit(data["X"])
    np.testing.assert_array_equal(model.encoder_weights_, direct.encoder_weights_)
    np.testing.assert_array_equal(model.loss_curve_, direct.loss_curve_)


def test_train_scale_inputs(tmp_path, capsys):
    X = np.random.default_rng(1).random((50, 9)) * 40 - 7  # outside [0, 1]
    np.save(tmp_path / "wide.npy", X)
    status, _, err = run(capsys, "train", tmp_path / "wide.npy", "--hidden", 2,
                         "--out", tmp_path / "m.npz")
    assert status == 2
    assert "--scale-inputs" in err and "--decoder linear" in err
    status, _, err = run(capsys, "train", tmp_path / "wide.npy", "--hidden", 2,
                         "--epochs", 2, "--scale-inputs", "--out", tmp_path / "m.npz")
    assert status == 0, err
    assert csae.load(tmp_path / "m.npz").scale_inputs is True


def test_train_progress_bar(tmp_path, data, capsys):
    pytest.importorskip("tqdm")
    status, _, err = run(capsys, "train", data["npy"], "--hidden", 3, "--epochs", 3,
                         "--out", tmp_path / "m.npz")
    assert status == 0
    assert "training" in err and "3/3" in err and "objective=" in err


def test_train_progress_without_tqdm(tmp_path, data, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    status, _, err = run(capsys, "train", data["npy"], "--hidden", 3, "--epochs", 3,
                         "--out", tmp_path / "m.npz")
    assert status == 0
    lines = err.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("iteration 1/3: objective ")  # L-BFGS, the default


def test_train_quiet(tmp_path, data, capsys):
    status, out, err = run(capsys, "train", data["npy"], "--hidden", 3, "--epochs", 2,
                           "--solver", "sgd", "--quiet", "--out", tmp_path / "m.npz")
    assert status == 0 and err == "" and "trained 2 epochs" in out


def _interrupt_on_call(monkeypatch, call_number, how):
    """Make epoch ``call_number`` be interrupted by Ctrl-C, either inside
    the engine's epoch ("raise": the estimator warns and keeps the epochs
    completed) or in the progress display after the epoch before it
    ("display", between epochs)."""
    from csae import _engine, reference
    calls = []

    def wrap(true_epoch):
        def epoch(*args, **kwargs):
            calls.append(1)
            if how == "raise" and len(calls) == call_number:
                raise KeyboardInterrupt
            return true_epoch(*args, **kwargs)
        return epoch

    for module in (_engine, reference):
        monkeypatch.setattr(module, "sgd_epoch", wrap(module.sgd_epoch))
    if how == "display":
        from csae import cli

        class Interrupting(cli._QuietProgress):
            def update(self, epoch, objective, seconds, validation=None):
                if epoch == call_number - 1:
                    raise KeyboardInterrupt

        monkeypatch.setattr(cli, "_progress", lambda *args, **kwargs: Interrupting())


@pytest.mark.parametrize("how", ["raise", "display"])
def test_train_ctrl_c_saves_the_model(tmp_path, data, capsys, monkeypatch, how):
    _interrupt_on_call(monkeypatch, 3, how)
    out_path = tmp_path / "m.npz"
    status, out, err = run(capsys, "train", data["npy"], "--hidden", 3, "--epochs", 10,
                           "--solver", "sgd", "--out", out_path, "--quiet")
    assert status == 130
    assert "interrupted" in err and str(out_path) in err
    assert "Traceback" not in err
    assert csae.load(out_path).n_iter_ == 2


def test_train_ctrl_c_before_any_weights(tmp_path, data, capsys, monkeypatch):
    _interrupt_on_call(monkeypatch, 1, "raise")
    status, _, err = run(capsys, "train", data["npy"], "--hidden", 3, "--solver", "sgd",
                         "--out", tmp_path / "m.npz", "--quiet")
    assert status == 130
    assert "nothing saved" in err
    assert not (tmp_path / "m.npz").exists()


def test_train_diverging_at_once_saves_nothing_and_exits_1(tmp_path, data, capsys):
    # The first epoch diverges: the fit leaves no model (fit is a
    # transaction), so nothing is written.
    out_path = tmp_path / "m.npz"
    status, out, err = run(capsys, "train", data["npy"], "--hidden", 3, "--lr", 1e6,
                           "--solver", "sgd", "--decoder", "linear", "--epochs", 50, "--seed", 0,
                           "--out", out_path, "--quiet")
    assert status == 1
    assert "diverged" in err and "--lr" in err and "nothing saved" in err
    assert len(err.strip().splitlines()) == 1
    assert not out_path.exists()


# --------------------------------------------------------------------------
# encode, reconstruct, info, gradcheck
# --------------------------------------------------------------------------

def test_encode(tmp_path, data, model_file, capsys):
    model = csae.load(model_file)
    status, out, err = run(capsys, "encode", model_file, data["npz"],
                           "--out", tmp_path / "h.npy")
    assert status == 0, err
    H = np.load(tmp_path / "h.npy")
    np.testing.assert_array_equal(H, model.transform(data["X"]))
    assert "(120, 5)" in out
    # CSV output, and a name that np.save alone would have changed.
    status, _, _ = run(capsys, "encode", model_file, data["csv"], "--out",
                       tmp_path / "h.csv")
    assert status == 0
    np.testing.assert_allclose(np.loadtxt(tmp_path / "h.csv", delimiter=","), H,
                               rtol=1e-15)


def test_reconstruct(tmp_path, data, model_file, capsys):
    status, out, err = run(capsys, "reconstruct", model_file, data["npy"],
                           "--out", tmp_path / "r.npy")
    assert status == 0, err
    R = np.load(tmp_path / "r.npy")
    np.testing.assert_array_equal(R, csae.load(model_file).reconstruct(data["X"]))
    mse = np.mean((R - data["X"]) ** 2)
    assert f"mean squared error {mse:.6g}" in out


def test_info(model_file, capsys):
    status, out, err = run(capsys, "info", model_file)
    assert status == 0, err
    assert "16 features -> 5 hidden units (float64)" in out
    assert "encoder (5, 16), decoder (16, 5)" in out
    assert "sparsity_target" in out and re.search(r"\n  random_state +0\n", out)
    curve = csae.load(model_file).loss_curve_
    # Trained by L-BFGS, the default: its steps are iterations.
    assert (f"4 iterations; objective {curve[0]:.6g} (iteration 1) -> {curve[-1]:.6g}"
            in out)


def test_info_counts_epochs_for_minibatch_solvers(tmp_path, data, capsys):
    path = tmp_path / "sgd.npz"
    assert run(capsys, "train", data["npy"], "--hidden", 3, "--epochs", 2, "--solver", "sgd",
               "--quiet", "--out", path)[0] == 0
    status, out, err = run(capsys, "info", path)
    curve = csae.load(path).loss_curve_
    assert status == 0 and f"2 epochs; objective {curve[0]:.6g} (epoch 1)" in out


@pytest.mark.parametrize("backend", ["c", "python"])
def test_gradcheck(capsys, backend):
    status, out, err = run(capsys, "gradcheck", "--backend", backend)
    assert status == 0, err
    assert "decoder sigmoid" in out and "decoder linear" in out
    assert "OK" in out
    errors = [float(line.split()[-1]) for line in out.splitlines() if "relative error" in line]
    assert len(errors) == 2 and max(errors) < 1e-6


def test_gradcheck_reports_a_wrong_gradient(capsys, monkeypatch):
    monkeypatch.setattr(csae, "check_gradients", lambda model, X: 0.5)
    status, out, _ = run(capsys, "gradcheck", "--decoder", "linear")
    assert status == 1
    assert "FAILED" in out


def test_help_and_version(capsys):
    status, out, _ = run(capsys, "--help")
    assert status == 0 and "demo" in out and "gradcheck" in out
    status, out, _ = run(capsys, "train", "--help")
    assert status == 0 and "--scale-inputs" in out and "Ctrl-C" in out
    status, out, _ = run(capsys, "--version")
    assert status == 0 and csae.__version__ in out


# --------------------------------------------------------------------------
# User errors: status 2, one line on stderr, no traceback
# --------------------------------------------------------------------------

def _write_bad_files(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "vec.npy", rng.random(7))
    np.save(tmp_path / "cube.npy", rng.random((4, 3, 3)))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "str.npy", np.array([["a", "b"]]))
    np.save(tmp_path / "nan.npy", np.full((4, 3), np.nan))
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    np.savez(tmp_path / "none.npz")
    (tmp_path / "junk.npy").write_text("not numpy")
    (tmp_path / "junk.npz").write_text("not a zip")
    (tmp_path / "x.txt").write_text("1,2\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "ragged.csv").write_text("1,2,3\n4,5\n")
    (tmp_path / "words.csv").write_text("a,b\nc,d\n")
    os.mkdir(tmp_path / "folder")


def _train(data, *options, out="m.npz"):
    """A train command line on {d}/data with 3 hidden units, options before --out."""
    return ["train", "{d}/" + data, "--hidden", "3", *options, "--out", "{d}/" + out]


BAD_COMMANDS = [
    # (argv, expected fragment of the error line); {d} is the data folder.
    ([], "required: COMMAND"),
    (["fly"], "invalid choice: 'fly'"),
    (["train"], "required: DATA, --n-hidden/--hidden, --out"),
    (["train", "{d}/x.npy", "--hidden", "3"], "required: --out"),
    (_train("missing.npy"), "no such data file"),
    (_train("folder"), "is a directory"),
    (_train("x.txt"), "unsupported file type '.txt'"),
    (_train("vec.npy"), "expected a 2-D array"),
    (_train("cube.npy"), "reshape it"),
    (_train("obj.npy"), "cannot read"),
    (_train("str.npy"), "expected numbers"),
    (_train("nan.npy"), "NaN or inf"),
    (_train("empty.npy"), "empty"),
    (_train("none.npz"), "holds 0 arrays"),
    (_train("two.npz"), "choose one with --key"),
    (["train", "{d}/two.npz", "--key", "zzz", "--hidden", "3", "--out", "{d}/m.npz"],
     "no array named 'zzz'"),
    (["train", "{d}/x.npy", "--key", "a", "--hidden", "3", "--out", "{d}/m.npz"],
     "--key applies to .npz files only"),
    (_train("junk.npy"), "not a NumPy .npy file"),
    (_train("junk.npz"), "cannot read"),
    (_train("empty.csv"), "empty"),
    (_train("ragged.csv"), "cannot read"),
    (_train("words.csv"), "cannot read"),
    (["train", "{d}/x.npy", "--hidden", "three", "--out", "{d}/m.npz"], "invalid int value"),
    (["train", "{d}/x.npy", "--hidden", "0", "--out", "{d}/m.npz"], "--hidden (n_hidden)"),
    (_train("x.npy", "--rho", "1.5"),
     "--rho (sparsity_target) must be in the open interval (0, 1)"),
    (_train("x.npy", "--beta", "-1"), "--beta"),
    (_train("x.npy", "--lambda", "-1"), "--lambda"),
    (_train("x.npy", "--lr", "0"), "--lr"),
    (_train("x.npy", "--momentum", "1"), "--momentum"),
    (_train("x.npy", "--batch-size", "0"), "--batch-size"),
    (_train("x.npy", "--epochs", "0"), "--epochs"),
    (_train("x.npy", "--seed", "-1"), "--seed"),
    (_train("x.npy", "--decoder", "tanh"), "invalid choice: 'tanh'"),
    (_train("x.npy", "--dtype", "float16"), "invalid choice: 'float16'"),
    (_train("x.npy", out="nowhere/m.npz"), "does not exist"),
    (_train("x.npy", out="folder"), "is a directory"),
    (_train("x.npy", "--bogus"), "unrecognized arguments: --bogus"),
    (["encode", "{d}/model.npz", "{d}/x.npy"], "required: --out"),
    (["encode", "{d}/missing.npz", "{d}/x.npy", "--out", "{d}/h.npy"], "no such model file"),
    (["encode", "{d}/x.npy", "{d}/x.npy", "--out", "{d}/h.npy"],
     "not a valid csae model file: it is a single NumPy array"),
    (["encode", "{d}/none.npz", "{d}/x.npy", "--out", "{d}/h.npy"],
     "without csae's fields (it holds: nothing)"),
    (["encode", "{d}/model.npz", "{d}/two.npz", "--key", "other", "--out", "{d}/h.npy"],
     "X has 4 features, but SparseAutoencoder is expecting 16"),
    (["encode", "{d}/model.npz", "{d}/x.npy", "--out", "{d}/h.txt"], "must end in .npy or .csv"),
    (["reconstruct", "{d}/model.npz", "{d}/vec.npy", "--out", "{d}/r.npy"], "2-D"),
    (["reconstruct", "{d}/model.npz", "{d}/x.npy", "--out", "{d}/no/r.npy"], "does not exist"),
    (["info", "{d}/missing.npz"], "no such model file"),
    (["info", "{d}/junk.npz"], "not a valid csae model file: it is not a zip archive"),
    (["info"], "required: MODEL"),
    (["demo", "--out", "{d}/x.npy"], "not a directory"),
    (["demo", "--seed", "x"], "expected an integer >= 0"),
    (["demo", "--seed", "-2"], "expected an integer >= 0"),
    (["gradcheck", "--hidden", "0"], "expected a positive integer"),
    (["gradcheck", "--decoder", "relu"], "invalid choice: 'relu'"),
]


@pytest.mark.parametrize("argv, fragment", BAD_COMMANDS,
                         ids=[" ".join(a).replace("{d}/", "") or "(none)"
                              for a, _ in BAD_COMMANDS])
def test_user_errors_exit_2_with_one_line(tmp_path, data, model_file, capsys, argv,
                                          fragment):
    _write_bad_files(tmp_path)
    argv = [a.replace("{d}", str(tmp_path)) for a in argv]
    status, out, err = run(capsys, *argv)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("csae")
    assert ": error: " in lines[0]
    assert fragment in lines[0]
    assert "Traceback" not in err and out == ""
    assert not (tmp_path / "m.npz").exists()


# --------------------------------------------------------------------------
# The real entry point
# --------------------------------------------------------------------------

def _python_m_csae(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "csae", *map(str, args)],
                          capture_output=True, text=True, timeout=60, **kwargs)


def test_python_m_csae(tmp_path, data):
    done = _python_m_csae("--version")
    assert done.returncode == 0 and csae.__version__ in done.stdout
    done = _python_m_csae("train", tmp_path / "missing.npy", "--hidden", 2,
                          "--out", tmp_path / "m.npz")
    assert done.returncode == 2
    assert done.stderr.strip() == f"csae train: error: {tmp_path / 'missing.npy'}: " \
                                  "no such data file"


# The signals that stop a command: Ctrl-C in a terminal; SIGTERM from
# `timeout`, a job scheduler or `docker stop`.  Both are handled alike.
STOP_SIGNALS = [pytest.param(signal.SIGINT, 130, id="SIGINT"),
                pytest.param(signal.SIGTERM, 143, id="SIGTERM")]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT semantics differ")
@pytest.mark.parametrize("signum, status", STOP_SIGNALS)
def test_real_ctrl_c_saves_the_model(tmp_path, signum, status):
    """SIGINT to a running ``csae train`` (as Ctrl-C in a terminal sends it),
    or SIGTERM (before: the process died at once and saved nothing)."""
    X = np.random.default_rng(0).random((3000, 64))
    np.save(tmp_path / "big.npy", X)
    out_path = tmp_path / "m.npz"
    # PYTHONFAULTHANDLER: if the child ever hangs, SIGABRT makes it print
    # every thread's stack into the failure message.
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
    stderr = bytearray()
    seen = threading.Event()
    with subprocess.Popen(
            [sys.executable, "-m", "csae", "train", str(tmp_path / "big.npy"),
             "--hidden", "10", "--epochs", "1000000", "--out", str(out_path),
             "--backend", "python"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            preexec_fn=_sigint_as_in_a_terminal) as proc:

        def reader():
            while chunk := proc.stderr.read1(256):
                stderr.extend(chunk)
                if b"objective" in stderr:
                    seen.set()

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        try:
            # Wait until training runs (the progress display reports an epoch).
            assert seen.wait(30), f"training never started: {bytes(stderr)!r}"
            time.sleep(0.2)
            proc.send_signal(signum)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGABRT)
                proc.wait(timeout=10)
                thread.join(5)
                pytest.fail(f"csae train did not exit within 60 s of {signum!r}; its "
                            "stacks:\n" + bytes(stderr).decode(errors="replace")[-6000:])
            stdout = proc.stdout.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        thread.join(5)
    text = stderr.decode()
    assert proc.returncode == status, text
    assert "Traceback" not in text
    assert "interrupted" in text
    assert b"model saved to" in stdout
    assert csae.load(out_path).n_iter_ >= 1
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# --------------------------------------------------------------------------
# Outputs never destroy data
# --------------------------------------------------------------------------

def _only_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("command", ["train", "encode", "reconstruct"])
@pytest.mark.parametrize("spelling", ["same", "dotted", "symlink"])
def test_out_naming_an_input_is_refused(tmp_path, data, model_file, capsys, command,
                                        spelling):
    # Before the fix each of these overwrote the input and exited 0.
    inputs = {"train": [data["npy"]], "encode": [model_file, data["npy"]],
              "reconstruct": [model_file, data["npy"]]}[command]
    for victim in inputs:
        before = victim.read_bytes()
        if spelling == "same":
            out = str(victim)
        elif spelling == "dotted":
            out = os.path.join(os.path.dirname(victim), ".", os.path.basename(victim))
        else:
            out = str(tmp_path / f"link-to-{victim.name}")
            if not os.path.lexists(out):
                os.symlink(victim, out)
        argv = {"train": ["train", data["npy"], "--hidden", 3, "--epochs", 1],
                "encode": ["encode", model_file, data["npy"]],
                "reconstruct": ["reconstruct", model_file, data["npy"]]}[command]
        status, out_text, err = run(capsys, *argv, "--out", out, "--force")
        assert status == 2, err
        assert "is the input file" in _only_line(err)
        assert out_text == ""
        assert victim.read_bytes() == before


@pytest.mark.parametrize("command", ["train", "encode", "reconstruct"])
def test_an_existing_output_needs_force(tmp_path, data, model_file, capsys, command):
    out = tmp_path / ("m2.npz" if command == "train" else "out.npy")
    out.write_bytes(b"precious")
    os.chmod(out, 0o640)
    argv = {"train": ["train", data["npy"], "--hidden", 3, "--epochs", 1, "--quiet"],
            "encode": ["encode", model_file, data["npy"]],
            "reconstruct": ["reconstruct", model_file, data["npy"]]}[command]
    status, _, err = run(capsys, *argv, "--out", out)
    assert status == 2
    assert "exists; pass --force to replace it" in _only_line(err)
    assert out.read_bytes() == b"precious"
    status, _, err = run(capsys, *argv, "--out", out, "--force")
    assert status == 0, err
    assert out.read_bytes() != b"precious"
    assert stat.S_IMODE(out.stat().st_mode) == 0o640  # the file's mode is kept
    if command == "train":
        assert csae.load(out).n_iter_ == 1
    else:
        assert np.load(out).shape[0] == 120
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_outputs_that_are_not_regular_files_are_refused(tmp_path, data, model_file,
                                                        capsys):
    fifo = tmp_path / "fifo.npy"
    os.mkfifo(fifo)
    status, _, err = run(capsys, "encode", model_file, data["npy"], "--out", fifo,
                         "--force")
    assert status == 2
    assert "it is a FIFO (named pipe), not a regular file" in _only_line(err)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    frozen = tmp_path / "frozen.npy"
    frozen.write_bytes(b"keep")
    os.chmod(frozen, 0o444)
    status, _, err = run(capsys, "encode", model_file, data["npy"], "--out", frozen,
                         "--force")
    assert status == 2
    assert "read-only" in _only_line(err)
    assert frozen.read_bytes() == b"keep"


@pytest.mark.parametrize("suffix", [".csv", ".npy"])
@pytest.mark.parametrize("how", [KeyboardInterrupt, OSError(28, "No space left on device")],
                         ids=["ctrl-c", "disk full"])
def test_an_interrupted_write_leaves_the_previous_output(tmp_path, data, model_file,
                                                         capsys, monkeypatch, suffix, how):
    out = tmp_path / f"h{suffix}"
    status, _, err = run(capsys, "encode", model_file, data["npy"], "--out", out)
    assert status == 0, err
    before = out.read_bytes()

    def half_then_fail(fh, array, *args, **kwargs):
        fh.write(b"0.5,0.25\n" * 10)  # a partial file that would still load
        raise how

    monkeypatch.setattr(np, "savetxt" if suffix == ".csv" else "save", half_then_fail)
    status, _, err = run(capsys, "encode", model_file, data["npy"], "--out", out, "--force")
    assert status == (130 if how is KeyboardInterrupt else 2)
    assert out.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == sorted(
        p for p in os.listdir(tmp_path) if not p.endswith(".tmp"))


def _signal_while_writing(argv, writing, signum, settle):
    """Start argv, wait (60 s at most) until writing() says it is writing
    its output, let it run settle seconds more, then send signum.  Returns
    (returncode, stderr bytes); the child never outlives the call."""
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          preexec_fn=_sigint_as_in_a_terminal) as proc:
        try:
            deadline, seen = time.monotonic() + 60, False
            while time.monotonic() < deadline and proc.poll() is None and not seen:
                seen = writing()
                time.sleep(0.005)
            assert seen and proc.poll() is None, "never caught the command writing"
            time.sleep(settle)
            proc.send_signal(signum)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return proc.returncode, stderr


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT semantics differ")
@pytest.mark.parametrize("signum, status", STOP_SIGNALS)
def test_real_ctrl_c_during_encode_keeps_the_previous_csv(tmp_path, model_file, data,
                                                          signum, status):
    """SIGINT while ``csae encode --out x.csv`` writes: before the fix the
    old CSV was destroyed and a truncated one (that still loads) left.
    SIGTERM alike (before: the temporary file was left)."""
    X = np.random.default_rng(0).random((200_000, 16))
    np.save(tmp_path / "big.npy", X)
    out = tmp_path / "x.csv"
    out.write_text("1,2\n3,4\n")
    before = out.read_bytes()
    # Writing: a temporary file in the folder, or the old code's growing x.csv.
    returncode, stderr = _signal_while_writing(
        [sys.executable, "-m", "csae", "encode", str(model_file), str(tmp_path / "big.npy"),
         "--out", str(out), "--force"],
        lambda: (any(n.endswith(".tmp") for n in os.listdir(tmp_path))
                 or out.read_bytes() != before),
        signum, settle=0.05)
    assert returncode == status, stderr
    assert out.read_bytes() == before
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


# ``python -m csae`` with every chunk of a memory-mapped file 1 KB and 50 ms
# slow: the command is sure to be writing its output when the signal comes.
_SLOW_CHUNKS = """
import sys, time
import csae, csae._blockwise
csae._blockwise.CHUNK_BYTES = 1024
transform = csae.SparseAutoencoder.transform
def slow(self, X):
    time.sleep(0.05)
    return transform(self, X)
csae.SparseAutoencoder.transform = slow
from csae.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM semantics differ")
@pytest.mark.parametrize("signum, status", STOP_SIGNALS)
def test_a_signal_during_a_chunked_encode_leaves_no_temporary_file(tmp_path, data,
                                                                   model_file, signum,
                                                                   status):
    """SIGTERM while ``csae encode`` writes a memory-mapped file's features
    chunk by chunk (before: the process died at once and left its temporary
    file, 24 MB in the report); Ctrl-C alike."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "h.npy"
    np.save(out, np.zeros((2, 2)))
    before = out.read_bytes()
    returncode, stderr = _signal_while_writing(
        [sys.executable, "-c", _SLOW_CHUNKS, "encode", str(model_file), str(data["npy"]),
         "--out", str(out), "--force", "-q"],
        lambda: any(n.endswith(".tmp") for n in os.listdir(out_dir)),
        signum, settle=0.1)
    stderr = stderr.decode()
    assert returncode == status, stderr
    assert stderr.strip() == ("csae encode: terminated (SIGTERM)" if signum == signal.SIGTERM
                              else "csae encode: interrupted")
    assert out.read_bytes() == before
    assert os.listdir(out_dir) == [out.name]


def test_sigterm_is_left_alone_where_the_caller_handles_it(tmp_path, data, capsys):
    # main() called from a program with its own SIGTERM handler keeps it,
    # during the command and after.
    def theirs(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, theirs)
    try:
        status, _, err = run(capsys, "train", data["npy"], "--hidden", 2, "--epochs", 1,
                             "--out", tmp_path / "m.npz", "--quiet")
        assert status == 0, err
        assert signal.getsignal(signal.SIGTERM) is theirs
    finally:
        signal.signal(signal.SIGTERM, previous)
    status, _, err = run(capsys, "train", data["npy"], "--hidden", 2, "--epochs", 1,
                         "--out", tmp_path / "m2.npz", "--quiet")
    assert status == 0, err
    assert signal.getsignal(signal.SIGTERM) is previous


def test_demo_twice_into_the_same_folder(tmp_path, capsys):
    # The demo's folder is its own: a second run replaces its files.
    for seed in (1, 2):
        status, _, err = run(capsys, "demo", "--out", tmp_path, "--epochs", 2,
                             "--seed", seed)
        assert status == 0, err
    assert csae.load(tmp_path / "model.npz").random_state == 2
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_help_documents_force(capsys):
    for command in ("train", "encode", "reconstruct"):
        status, out, _ = run(capsys, command, "--help")
        assert status == 0 and "--force" in out and "never an input file" in out


# --------------------------------------------------------------------------
# CSV files: never a dropped row
# --------------------------------------------------------------------------

def _csv_text(X, *, bom=False, trailing=False, header=None, crlf=False, quoted=False,
              blank=False, cr=False):
    rows = []
    if header is not None:
        rows.append(header + ("," if trailing else ""))
    for row in X:
        fields = [repr(float(v)) for v in row]
        if quoted:
            fields = [f'"{f}"' for f in fields]
        rows.append(",".join(fields) + ("," if trailing else ""))
        if blank:
            rows.append("")
    end = "\r\n" if crlf else "\r" if cr else "\n"
    text = end.join(rows) + end
    return ("\ufeff" if bom else "") + text


CSV_STYLES = {
    "bom": dict(bom=True),
    "trailing comma": dict(trailing=True),
    "bom and trailing comma": dict(bom=True, trailing=True),
    "header": dict(header="a,b,c,d,e"),
    "bom and header": dict(bom=True, header="a,b,c,d,e"),
    "header with trailing comma": dict(header="a,b,c,d,e", trailing=True),
    "quoted header and numbers, crlf": dict(header='"a","b","c","d","e"', quoted=True,
                                            crlf=True),
    "blank lines": dict(blank=True),
    # Before: a _csv.Error traceback, exit 1.
    "cr only": dict(cr=True),
    "cr only, header and blank lines": dict(cr=True, header="a,b,c,d,e", blank=True),
}


@pytest.mark.parametrize("style", sorted(CSV_STYLES))
def test_csv_variants_keep_every_row(tmp_path, capsys, style):
    # 30 rows in, 30 rows trained on: before the fix a BOM or a trailing
    # comma made the first data row look like a header, silently dropped.
    X = np.random.default_rng(3).random((30, 5))
    path = tmp_path / "x.csv"
    path.write_bytes(_csv_text(X, **CSV_STYLES[style]).encode("utf-8"))
    from csae.cli import load_data
    np.testing.assert_array_equal(load_data(str(path)), X)
    status, out, err = run(capsys, "train", path, "--hidden", 2, "--epochs", 1,
                           "--out", tmp_path / "m.npz", "--quiet")
    assert status == 0, err
    assert "on 30 x 5" in out


CSV_REFUSALS = {
    # content -> fragment of the one-line message
    "a,b\n1,2\nx,4\n": "line 3, column 1: 'x' is not a number",
    "1,2\n3,oops\n": "line 2, column 2: 'oops' is not a number",
    "1,2,3\n4,5\n": "line 2 has 2 values, but line 1 has 3",
    "1,2\n3,,4\n": "line 2 has 3 values, but line 1 has 2",
    "1,,3\n4,5,6\n": "line 1, column 2 is empty",
    "h1,h2\nh3,h4\n1,2\n": "line 2, column 1: 'h3' is not a number",
    "1,2\n3,4,,\n": "line 2 has 3 values, but line 1 has 2",
    "a,b\n": "the data is empty",
    "1,2\n\xff\xfe,3\n": "line 2 is not UTF-8 text",
    # Line endings of the classic Mac OS: lines still counted (before: a
    # _csv.Error traceback, exit 1).
    "a,b\r1,2\r3,x\r": "line 3, column 2: 'x' is not a number",
    "1,2\r\n3,4\r5,6,7\n": "line 3 has 3 values, but line 1 has 2",
    # Numbers to float() but not to np.loadtxt (before: loadtxt's own message,
    # which counts rows of numbers, not lines of the file).
    "a,b\n\n1,2\n3,1_000\n": "line 4, column 2: '1_000' is not a number",
    "1,2\n3,\u0663\n": "line 2, column 2: '\u0663' is not a number",
    # A field longer than the csv module's limit (before: a _csv.Error traceback).
    "1," + "4" * 200_000 + "\n1,2\n": "line 1, column 2: the field is too long (200000 "
                                     "characters, at most 131072)",
}


@pytest.mark.parametrize("content", sorted(CSV_REFUSALS), ids=lambda c: repr(c)[:40])
def test_csv_problems_name_the_line(tmp_path, capsys, content):
    path = tmp_path / "bad.csv"
    # Latin-1 where it can: "\xff\xfe" then stands for those two bytes (not UTF-8).
    latin = all(ord(c) < 256 for c in content)
    path.write_bytes(content.encode("latin-1" if latin else "utf-8"))
    status, out, err = run(capsys, "train", path, "--hidden", 2, "--out",
                           tmp_path / "m.npz")
    assert status == 2
    assert CSV_REFUSALS[content] in _only_line(err)
    assert out == ""


# --------------------------------------------------------------------------
# Out-of-range values and hostile model files: one line, exit 2
# --------------------------------------------------------------------------

@pytest.mark.parametrize("option, value", [("--batch-size", "1e20"),
                                           ("--batch-size", str(2 ** 64)),
                                           ("--batch-size", str(10 ** 20)),
                                           ("--threads", str(2 ** 64))])
def test_out_of_range_integers_give_one_line(tmp_path, data, capsys, option, value):
    # Before the fix --batch-size 2**64 reached the binding and ended in an
    # OverflowError traceback with exit status 1.
    status, _, err = run(capsys, "train", data["npy"], "--hidden", 2, option, value,
                         "--out", tmp_path / "m.npz", "--quiet")
    assert status == 2
    assert option in _only_line(err)
    assert not (tmp_path / "m.npz").exists()


def test_integer_options_stop_at_the_engine_limit():
    # Checked by the parser alone (a run with --epochs 2**64 would train
    # for ever before the fix).
    from csae.cli import UserError, build_parser
    parser = build_parser()
    for option in ("--batch-size", "--epochs", "--max-epochs", "--threads", "--n-threads"):
        args = parser.parse_args(["train", "x.npy", "--hidden", "2", "--out", "m.npz",
                                  option, str(2 ** 63 - 1)])
        assert 2 ** 63 - 1 in (args.batch_size, args.max_epochs, args.n_threads)
        with pytest.raises(UserError, match=rf"argument \S*{option}\S*: .* is too large"):
            parser.parse_args(["train", "x.npy", "--hidden", "2", "--out", "m.npz",
                               option, str(2 ** 63)])


def test_overflow_from_the_library_is_one_line(tmp_path, data, capsys, monkeypatch):
    def overflow(model, X, hook=None, on_rows=None):
        raise OverflowError("Python int too large to convert to C unsigned long")

    # csae train trains through the estimator's fit (csae._estimator.train,
    # with its progress hook).
    import csae._estimator
    monkeypatch.setattr(csae._estimator, "train", overflow)
    status, _, err = run(capsys, "train", data["npy"], "--hidden", 2, "--out",
                         tmp_path / "m.npz", "--quiet")
    assert status == 2
    assert "out of range" in _only_line(err)


def test_info_on_a_hostile_model_prints_one_short_line(tmp_path, model_file, capsys):
    # A 1 MB hyperparameter record (the 100 MB one, smaller): before
    # the fix the whole record went to stderr.
    import zipfile
    path = tmp_path / "hostile.npz"
    with zipfile.ZipFile(model_file) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            if info.filename == "hyperparameters.npy":
                import io
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.array(["x" * 1_000_000]))
                dst.writestr(info.filename, buffer.getvalue())
            else:
                dst.writestr(info.filename, src.read(info.filename))
    status, out, err = run(capsys, "info", path)
    assert status == 2 and out == ""
    assert len(_only_line(err)) < 400


# --------------------------------------------------------------------------
# Solvers, stopping rules and the sparsity estimate on the command line
# --------------------------------------------------------------------------

def _bars_file(tmp_path):
    from csae.datasets import make_bars
    X = make_bars(300, size=6, random_state=0)
    np.save(tmp_path / "bars.npy", X)
    return tmp_path / "bars.npy", X


def test_train_adam_and_running_estimate_options(tmp_path, capsys):
    path, X = _bars_file(tmp_path)
    out_path = tmp_path / "m.npz"
    status, out, err = run(capsys, "train", path, "--hidden", 6, "--solver", "adam",
                           "--lr", 0.01, "--beta-1", 0.8, "--beta-2", 0.99, "--epsilon", 1e-6,
                           "--sparsity-estimate", "running", "--sparsity-smoothing", 0.05,
                           "--epochs", 3, "--tol", 0, "--seed", 0, "--backend", "python",
                           "--out", out_path, "--quiet")
    assert status == 0, err
    model = csae.load(out_path)
    params = model.get_params()
    assert (params["solver"], params["beta_1"], params["beta_2"], params["epsilon"]) == (
        "adam", 0.8, 0.99, 1e-6)
    assert (params["sparsity_estimate"], params["sparsity_smoothing"]) == ("running", 0.05)
    # The command's model is the estimator's, Adam state included.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = SparseAutoencoder(**params).fit(X)
    np.testing.assert_array_equal(model.encoder_weights_, direct.encoder_weights_)
    assert model._state.adam_t == direct._state.adam_t == 3 * 3


def test_train_early_stopping_prints_the_outcome(tmp_path, capsys):
    path, X = _bars_file(tmp_path)
    out_path = tmp_path / "m.npz"
    status, out, err = run(capsys, "train", path, "--hidden", 8, "--lr", 0.5, "--solver", "sgd",
                           "--batch-size", 20, "--early-stopping", "--validation-fraction",
                           0.2, "--n-iter-no-change", 3, "--epochs", 500, "--seed", 0,
                           "--out", out_path, "--quiet")
    assert status == 0, err
    params = csae.load(out_path).get_params()
    assert params["early_stopping"] is True and params["n_iter_no_change"] == 3
    direct = SparseAutoencoder(**params).fit(X)
    assert f"trained {direct.n_iter_} epochs" in out
    assert ("stopped early: the validation objective did not improve by more than "
            "--tol 1e-05 of its best for --n-iter-no-change 3 epochs") in out
    assert (f"early stopping: best validation objective {direct.best_validation_loss_:.6g} "
            f"at epoch {direct.best_epoch_} of {direct.n_iter_}") in out
    np.testing.assert_array_equal(csae.load(out_path).encoder_weights_,
                                  direct.encoder_weights_)


def test_train_says_when_epochs_end_before_the_stopping_rule(tmp_path, data, capsys):
    status, out, err = run(capsys, "train", data["npy"], "--hidden", 3, "--epochs", 2,
                           "--solver", "sgd", "--quiet", "--out", tmp_path / "a.npz")
    assert status == 0 and err == ""
    assert "note: fit stopped at --max-epochs 2 while the training objective" in out
    status, out, err = run(capsys, "train", data["npy"], "--hidden", 3, "--epochs", 2,
                           "--solver", "sgd", "--tol", 0, "--quiet", "--out", tmp_path / "b.npz")
    assert status == 0 and "note:" not in out


@pytest.mark.parametrize("option, value", [
    ("--beta-1", 1.0), ("--beta-2", -0.5), ("--epsilon", 0), ("--validation-fraction", 1.5),
    ("--sparsity-smoothing", 0), ("--tol", -1),
])
def test_train_bad_new_options_name_the_option(tmp_path, data, capsys, option, value):
    status, _, err = run(capsys, "train", data["npy"], "--hidden", 3, option, value,
                         "--out", tmp_path / "m.npz")
    assert status == 2
    assert err.startswith(f"csae train: error: {option} (") and "Traceback" not in err
    assert not (tmp_path / "m.npz").exists()


def test_train_early_stopping_on_too_few_rows(tmp_path, capsys):
    np.save(tmp_path / "one.npy", np.full((1, 4), 0.5))
    status, _, err = run(capsys, "train", tmp_path / "one.npy", "--hidden", 2,
                         "--early-stopping", "--out", tmp_path / "m.npz")
    assert status == 2 and "leaves none to train on" in err
