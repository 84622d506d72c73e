"""The hyperparameter table: one declaration per constructor parameter.

Each ``Param`` says what the parameter is (type, allowed values with open or
closed ends, default), which solvers use it, how the command line spells it,
which model-file format version first recorded it, and its documentation.
Everything else is built from this table (scikit-learn's
``_parameter_constraints`` plays the same part in its estimators):

- ``csae._validation.validate_hyperparameters`` checks each value by its
  entry and returns them as ``Hyperparameters``, built here;
- ``csae._persist`` writes and reads the model file's hyperparameter record
  with ``RECORD_NAMES`` and ``ADDED_IN``;
- ``csae.cli`` builds the options of ``csae train`` with ``add_options``;
- ``SparseAutoencoder``'s docstring gets its Parameters section from
  ``parameters_section``;
- the C reader's checks (``src_c/model_file.c``) are tested equal to the
  table at every bound (tests/test_params.py).

To add a hyperparameter: add it to ``SparseAutoencoder.__init__``'s
signature and one ``Param`` here (see docs/contributing.md).  This module
imports nothing from csae, so every layer may import it.
"""

import math
from dataclasses import dataclass, make_dataclass
from typing import Optional

import numpy as np

__all__ = ["Param", "HYPERPARAMETERS", "BY_NAME", "RECORD_NAMES", "ADDED_IN",
           "Hyperparameters", "parameters_section", "document",
           "add_options", "MAX_COUNT", "MAX_THREADS", "ALL_SOLVERS"]

# Upper bounds of the counts, so that a huge value is refused by name
# instead of overflowing a C integer in the binding.  batch_size and
# max_epochs fit an int64 (any batch_size above the number of rows already
# means full batch); n_threads fits a C int.
MAX_COUNT = 2**63 - 1
MAX_THREADS = 2**31 - 1

ALL_SOLVERS = ("sgd", "adam", "lbfgs")
MINIBATCH = ("sgd", "adam")


@dataclass(frozen=True)
class Param:
    """One hyperparameter.

    kind
        How a value is checked (csae._validation): "int" (an integer in
        [low, high], high None for no bound), "real" (a finite real number
        between low and high, each end open or closed as ``closed`` says:
        "both", "left", "right" or "neither", scikit-learn's ``Interval``
        spelling), "bool", "choice" (one of ``choices``), and four with a
        checker of their own: "dtype", "threads" (None or an int in [1,
        MAX_THREADS]), "seed" (a random_state) and "verbose" (a bool or an
        int >= 0).
    in_dtype
        For "real" values the engine computes with: they must survive the
        cast to the model dtype.  ``"positive"`` (stay a normal number > 0),
        ``"below_one"`` (stay < 1), both, or ``""`` (stay finite); None: not
        checked.  ``in_dtype_when`` ``(name, value)``: only then.
    solvers
        The solvers whose training reads it.
    cli
        The options of ``csae train``: the first is the primary spelling
        (the Python name with dashes), the others aliases kept working.
        Empty: not on the command line.  ``cli_type`` overrides the argparse
        type the kind implies; ``cli_required`` makes the option required.
    added_in
        The model-file format version whose record first holds it (older
        files load with the default, or, when ``has_older_default``,
        with ``older_default``: what such a file meant by it).
    """

    name: str
    kind: str
    default: object
    type_doc: str
    doc: str
    low: Optional[float] = None
    high: Optional[float] = None
    closed: str = "both"
    choices: tuple = ()
    in_dtype: Optional[str] = None
    in_dtype_when: Optional[tuple] = None
    solvers: tuple = ALL_SOLVERS
    cli: tuple = ()
    cli_help: str = ""
    cli_type: object = None
    cli_metavar: Optional[str] = None
    cli_required: bool = False
    added_in: int = 1
    older_default: object = None
    has_older_default: bool = False

    @property
    def low_open(self):
        return self.closed in ("right", "neither")

    @property
    def high_open(self):
        return self.closed in ("left", "neither") or self.high == math.inf

    def range_text(self):
        """The allowed range in words, as the error messages say it."""
        if self.kind == "int":
            if self.high is None:
                return f">= {self.low}"
            return f"in [{self.low}, {self.high}]"
        low, high = f"{self.low:g}", f"{self.high:g}"
        if self.high == math.inf:
            return f"> {low}" if self.low_open else f">= {low}"
        if self.low_open and self.high_open:
            return f"in the open interval ({low}, {high})"
        return f"in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


# The constructor's parameters, in its signature's order.  ``doc`` is the
# text under each name in the class docstring (NumPy style, indented by the
# builder); keep measurements and experiment logs in docs/training.md.
HYPERPARAMETERS = (
    Param("n_hidden", "int", 25, "int", "Number of hidden units ``h``.",
          low=1, cli=("--n-hidden", "--hidden"), cli_type=int, cli_metavar="N",
          cli_required=True, cli_help="number of hidden units"),
    Param("sparsity_target", "real", 0.01, "float",
          "Target mean activation ``rho`` of each hidden unit, in (0, 1)\n"
          "(MATLAB's SparsityProportion).  The default is the UFLDL exercise's.",
          low=0.0, high=1.0, closed="neither", in_dtype="positive,below_one",
          cli=("--sparsity-target", "--rho"),
          cli_help="sparsity target: mean activation of each hidden unit, in (0, 1)"),
    Param("sparsity_weight", "real", 6.0, "float",
          "Weight ``beta >= 0`` of the KL sparsity penalty (MATLAB's\n"
          "SparsityRegularization).  The default is the UFLDL exercise's beta\n"
          "3 in this objective's scale (see the README's table).",
          low=0.0, high=math.inf, closed="left", in_dtype="",
          cli=("--sparsity-weight", "--beta"), cli_help="weight of the KL sparsity penalty"),
    Param("weight_decay", "real", 1e-4, "float",
          "Weight ``lambda >= 0`` of the L2 penalty on ``W`` and ``W'`` (biases\n"
          "excluded).  UFLDL's lambda is this value, and its beta half of\n"
          "``sparsity_weight`` (see the README's table).",
          low=0.0, high=math.inf, closed="left", in_dtype="",
          cli=("--weight-decay", "--lambda"), cli_metavar="LAMBDA", cli_help="L2 weight decay"),
    Param("decoder", "choice", "sigmoid", '{"sigmoid", "linear"}',
          "Output function ``g``.  \"sigmoid\" needs inputs in [0, 1] (or\n"
          "``scale_inputs=True``); \"linear\" takes inputs on any scale.",
          choices=("sigmoid", "linear"), cli=("--decoder",),
          cli_help="output function; sigmoid needs data in [0, 1]"),
    Param("learning_rate", "real", 0.1, "float", "Step size of \"sgd\" and \"adam\", > 0.",
          low=0.0, high=math.inf, closed="neither", in_dtype="positive", solvers=MINIBATCH,
          cli=("--learning-rate", "--lr"), cli_help="learning rate"),
    Param("momentum", "real", 0.0, "float",
          "Momentum ``mu`` in [0, 1): ``v <- mu v - lr g; theta <- theta + v``.",
          low=0.0, high=1.0, closed="left", in_dtype="below_one", solvers=("sgd",),
          cli=("--momentum",), cli_help="momentum in [0, 1)"),
    Param("batch_size", "int", 100, "int",
          "Rows per minibatch (the last minibatch of an epoch may be shorter;\n"
          "a value above the number of rows gives full-batch gradient descent).",
          low=1, high=MAX_COUNT, solvers=MINIBATCH, cli=("--batch-size",),
          cli_help="rows per minibatch"),
    Param("max_epochs", "int", 1000, "int",
          "The most epochs ``fit`` runs (iterations for \"lbfgs\"); it may stop\n"
          "earlier by the rule of ``tol`` and ``n_iter_no_change``.  The\n"
          "default is MATLAB ``trainAutoencoder``'s.",
          low=1, high=MAX_COUNT, cli=("--max-epochs", "--epochs"),
          cli_help="epochs to train, or iterations for --solver lbfgs"),
    Param("shuffle", "bool", True, "bool",
          "Visit the rows in a fresh random order each epoch (otherwise in row\n"
          "order).",
          solvers=MINIBATCH, cli=("--no-shuffle",),
          cli_help="visit the rows in file order every epoch"),
    Param("scale_inputs", "bool", False, "bool",
          "Learn each feature's minimum and maximum on the data given to\n"
          "``fit`` (or the first ``partial_fit``), map inputs to [0, 1] with\n"
          "them before the network, and map outputs of ``inverse_transform``\n"
          "and ``reconstruct`` back.  Constant features map to 0.  ``loss``,\n"
          "``score`` and the gradients are those of the scaled problem.",
          cli=("--scale-inputs",),
          cli_help="learn each feature's min/max and map the data to [0, 1]"),
    Param("dtype", "dtype", "float64", '{"float64", "float32"}',
          "Floating-point type of the weights and of every computation (NumPy\n"
          "dtypes such as ``np.float32`` are accepted too).",
          choices=("float64", "float32"), cli=("--dtype",), cli_help="floating-point type"),
    Param("backend", "choice", "c", '{"c", "python"}',
          "\"c\" runs the compiled engine; \"python\" the NumPy reference\n"
          "``csae.reference``.  Both give the same results (float64: within\n"
          "1e-10 relative after an epoch; float32: within 1e-4).",
          choices=("c", "python"), cli=("--backend",),
          cli_help="'c' (compiled engine) or 'python' (NumPy reference); default: c when "
                   "built"),
    Param("random_state", "seed", None,
          "None, int, numpy.random.Generator or RandomState",
          "Source of the initial weights and of the shuffling order.  An int\n"
          "gives identical results on every run and on both backends; None\n"
          "draws fresh entropy at each ``fit``.",
          cli=("--random-state", "--seed"), cli_type=int,
          cli_help="random seed (default: fresh entropy)"),
    Param("verbose", "verbose", False, "bool or int",
          "Print progress on stdout: with 1 (or True) a line for the first and\n"
          "the last epoch and about 10 evenly spaced in between, with 2 a line\n"
          "for every epoch; each gives the objective (and the validation\n"
          "objective under early stopping), the mean hidden activation and the\n"
          "time elapsed since the call began.  ``fit`` ends with a line saying\n"
          "why it stopped.  When tqdm is installed a progress bar runs on\n"
          "stderr as well."),
    Param("n_threads", "threads", None, "int or None",
          "Threads used by the C engine, capped at the CPUs this process may\n"
          "run on.  None uses ``OMP_NUM_THREADS`` when it is set to a valid\n"
          "value (as joblib and Dask workers do), else every CPU this process\n"
          "may run on, and at most the limit set by threadpoolctl's\n"
          "``threadpool_limits``; read at each call.  Ignored by the \"python\"\n"
          "backend.  Results do not depend on it.",
          low=1, high=MAX_THREADS, cli=("--n-threads", "--threads"),
          cli_help="threads for the C engine (default: all cores)"),
    Param("solver", "choice", "lbfgs", '{"lbfgs", "sgd", "adam"}',
          "\"sgd\": minibatch stochastic gradient descent with momentum\n"
          "(``learning_rate``, ``momentum``, ``batch_size``, ``shuffle``).\n"
          "\"adam\": minibatch Adam (Kingma and Ba; scikit-learn's convention,\n"
          "with ``beta_1``, ``beta_2``, ``epsilon``; ``momentum`` is not used);\n"
          "its moments ``m``, ``v`` and step count ``t`` are model state, kept\n"
          "by ``partial_fit``, ``warm_start``, pickling and ``save``.\n"
          "\"lbfgs\": full-batch L-BFGS on the whole objective, as the UFLDL\n"
          "exercise (minFunc), mlpack and scikit-learn's MLP do it: the\n"
          "engine's L-BFGS (SciPy's L-BFGS-B algorithm, docs/training.md)\n"
          "asks for one engine call per evaluation over all the data;\n"
          "``max_epochs`` then counts iterations.  The\n"
          "optimizer's arithmetic is float64; a float32 model computes every\n"
          "objective and gradient in float32, and the optimizer stores its\n"
          "history and direction in float32.  ``partial_fit`` needs\n"
          "\"sgd\" or \"adam\" (with \"lbfgs\" the model has no ``partial_fit``\n"
          "attribute, as scikit-learn's MLP).  The default, as in every\n"
          "reference system: with the other defaults it learns useful features\n"
          "without tuning (see the README's \"Defaults\").",
          choices=ALL_SOLVERS, cli=("--solver",), added_in=2,
          older_default="sgd", has_older_default=True,
          cli_help="minibatch SGD, minibatch Adam, or full-batch L-BFGS as the UFLDL exercise"),
    Param("max_fun", "int", 15000, "int",
          "\"lbfgs\" only: the most objective evaluations one ``fit`` may make.",
          low=1, high=MAX_COUNT, solvers=("lbfgs",), cli=("--max-fun",), added_in=2,
          cli_help="lbfgs: most objective evaluations"),
    Param("tol", "real", 1e-5, "float",
          "Relative stopping tolerance, >= 0, for every solver (``fit`` only):\n"
          "stop when the training objective (the validation objective with\n"
          "``early_stopping``) has not improved on its best by more than\n"
          "``tol`` times that best for ``n_iter_no_change`` epochs (\"lbfgs\":\n"
          "iterations) in a row, whatever the objective's scale; without early\n"
          "stopping ``tol=0`` switches this rule (and the\n"
          "``ConvergenceWarning`` of a run that ends at ``max_epochs``) off.\n"
          "\"lbfgs\" also ends when the optimizer finds no more progress (its\n"
          "relative-reduction test, as SciPy's L-BFGS-B).  Unlike\n"
          "scikit-learn's MLP, \"lbfgs\" does not compare gradient components\n"
          "with ``tol``: that test depends on the scale of the data.",
          low=0.0, high=math.inf, closed="left", cli=("--tol",), added_in=2,
          cli_help="stop when the objective (the validation objective with "
                   "--early-stopping) has not improved by more than this fraction of its "
                   "best for "
                   "--n-iter-no-change epochs (lbfgs: iterations); 0 trains exactly "
                   "--max-epochs"),
    Param("beta_1", "real", 0.9, "float",
          "\"adam\": decay of the first-moment estimate, in [0, 1).",
          low=0.0, high=1.0, closed="left", in_dtype="below_one",
          in_dtype_when=("solver", "adam"), solvers=("adam",), cli=("--beta-1",), added_in=3,
          cli_help="adam: first-moment decay in [0, 1)"),
    Param("beta_2", "real", 0.999, "float",
          "\"adam\": decay of the second-moment estimate, in [0, 1).",
          low=0.0, high=1.0, closed="left", in_dtype="below_one",
          in_dtype_when=("solver", "adam"), solvers=("adam",), cli=("--beta-2",), added_in=3,
          cli_help="adam: second-moment decay in [0, 1)"),
    Param("epsilon", "real", 1e-8, "float",
          "\"adam\": added to ``sqrt(v)`` in the step's denominator, > 0.",
          low=0.0, high=math.inf, closed="neither", in_dtype="positive",
          in_dtype_when=("solver", "adam"), solvers=("adam",), cli=("--epsilon",), added_in=3,
          cli_help="adam: denominator offset > 0"),
    Param("warm_start", "bool", False, "bool",
          "When True and the model has weights (from training or assigned by\n"
          "hand), ``fit`` continues from them (with their momentum velocities,\n"
          "Adam moments, running sparsity estimate, random-number state, input\n"
          "range and loss curve) instead of initialising new ones\n"
          "(scikit-learn's meaning).  ``n_hidden`` must then match the weights.",
          added_in=3),
    Param("early_stopping", "bool", False, "bool",
          "Hold out ``validation_fraction`` of the rows given to ``fit`` (drawn\n"
          "once, seeded by ``random_state``), compute the objective on them\n"
          "after every epoch (iteration for \"lbfgs\") into\n"
          "``validation_loss_curve_``, stop when it has not improved by more\n"
          "than ``tol`` for ``n_iter_no_change`` epochs, and keep the weights of\n"
          "the epoch with the lowest one (``best_epoch_``,\n"
          "``best_validation_loss_``); ``loss_curve_`` and ``n_iter_`` still\n"
          "count every epoch run (scikit-learn's MLP convention).  The input\n"
          "range of ``scale_inputs`` is learned on all the rows.  Not used by\n"
          "``partial_fit``.  Needs X in memory (a memory-mapped file larger\n"
          "than one chunk or a dask array gives ``ValueError``).",
          cli=("--early-stopping",), added_in=3,
          cli_help="hold out --validation-fraction of the rows, stop when their objective "
                   "stops improving, and keep the best epoch's weights"),
    Param("validation_fraction", "real", 0.1, "float",
          "Fraction of the rows held out for early stopping, in (0, 1); the\n"
          "validation set has ``ceil(validation_fraction * n_samples)`` rows and\n"
          "at least one row must remain for training (``ValueError``\n"
          "otherwise).",
          low=0.0, high=1.0, closed="neither", cli=("--validation-fraction",), added_in=3,
          cli_help="fraction of the rows held out by --early-stopping, in (0, 1)"),
    Param("n_iter_no_change", "int", 10, "int",
          "Epochs (iterations) without an improvement by more than ``tol``\n"
          "after which training stops, >= 1.",
          low=1, high=MAX_COUNT, cli=("--n-iter-no-change",), added_in=3,
          cli_help="epochs without improvement before stopping"),
    Param("sparsity_estimate", "choice", "batch", '{"batch", "running"}',
          "The mean activation ``rho_hat`` in the KL term's gradient of \"sgd\"\n"
          "and \"adam\".  \"batch\": each minibatch's own mean activation (exact\n"
          "for full batches, but with small minibatches a noisy estimate that\n"
          "biases the sparsity the model reaches).  \"running\": an exponential\n"
          "moving average ``q`` across minibatches, ``q <- (1 - tau) q + tau\n"
          "rho_hat(batch)`` with ``tau = sparsity_smoothing`` (``q`` starts at\n"
          "the first minibatch's value); ``q`` is model state, kept by\n"
          "``partial_fit``, ``warm_start``, pickling and ``save``.  The\n"
          "reported objective always uses the minibatch's own ``rho_hat``;\n"
          "\"lbfgs\" always uses the exact full-batch ``rho_hat``.  See\n"
          "``docs/math.md``.",
          choices=("batch", "running"), solvers=MINIBATCH, cli=("--sparsity-estimate",),
          added_in=3,
          cli_help="mean activation in the sparsity gradient: each minibatch's, or a running "
                   "average across minibatches (better for small --batch-size)"),
    Param("sparsity_smoothing", "real", 0.1, "float",
          "``tau`` of the running estimate, in (0, 1]: the weight of the newest\n"
          "minibatch, so ``q`` averages over about ``1 / tau`` minibatches\n"
          "(0.1: ten; 1 is the batch estimate).  Smaller values average more\n"
          "samples but lag further behind the changing weights.",
          low=0.0, high=1.0, closed="right", in_dtype="positive",
          in_dtype_when=("sparsity_estimate", "running"), solvers=MINIBATCH,
          cli=("--sparsity-smoothing",), added_in=3,
          cli_help="running estimate: weight of the newest minibatch, in (0, 1]"),
)

BY_NAME = {p.name: p for p in HYPERPARAMETERS}

# The model file's record holds every parameter; csae/_persist.py writes
# them under these names, and ADDED_IN says which format version added which.
RECORD_NAMES = tuple(sorted(BY_NAME))
ADDED_IN: dict = {}
for _param in HYPERPARAMETERS:
    ADDED_IN.setdefault(_param.added_in, []).append(_param.name)
ADDED_IN = {version: tuple(names) for version, names in sorted(ADDED_IN.items())}
del _param


# The validated values of one call, as csae._validation returns them (the
# random_state is checked but stays with the estimator: it is a source of
# randomness, not a value).
_FIELD_TYPES = {"int": int, "real": float, "bool": bool, "choice": str, "dtype": np.dtype,
                "threads": int, "verbose": int}
Hyperparameters = make_dataclass(
    "Hyperparameters",
    [(p.name, _FIELD_TYPES[p.kind]) for p in HYPERPARAMETERS if p.kind != "seed"],
    frozen=True)
Hyperparameters.__module__ = __name__
Hyperparameters.__doc__ = ("Validated, normalised hyperparameters of one call (built from "
                           "csae._params.HYPERPARAMETERS).")


# --------------------------------------------------------------------------
# The docstring
# --------------------------------------------------------------------------

PARAMETERS_MARKER = "(built from csae._params.HYPERPARAMETERS at import)"


def _default_text(p):
    """The default as the docstring writes it: strings quoted, small
    floats as 1e-4 rather than 0.0001."""
    value = p.default
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float) and 0 < abs(value) < 1e-3:
        mantissa, exponent = f"{value:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return str(value)


def parameters_section(indent="    "):
    """The Parameters entries of SparseAutoencoder's docstring (NumPy
    style), one per table entry."""
    lines = []
    for p in HYPERPARAMETERS:
        lines.append(f"{indent}{p.name} : {p.type_doc}, default={_default_text(p)}")
        lines.extend(f"{indent}    {line}" for line in p.doc.split("\n"))
    return "\n".join(lines)


def document(cls):
    """Put the table's Parameters entries into ``cls``'s docstring in place
    of ``PARAMETERS_MARKER`` (a docstring stripped by ``python -OO`` stays
    None)."""
    if cls.__doc__ and PARAMETERS_MARKER in cls.__doc__:
        line = next(l for l in cls.__doc__.split("\n") if PARAMETERS_MARKER in l)
        indent = line[:len(line) - len(line.lstrip())]
        cls.__doc__ = cls.__doc__.replace(line, parameters_section(indent))
    return cls


# --------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------

def add_options(parser, count_type):
    """Add to the argparse ``parser`` one option per table entry that has
    one, with ``dest`` the Python name (unset options stay None, so the
    estimator's default applies).  ``count_type`` parses the bounded
    counts (an int in [1, MAX_COUNT])."""
    for p in HYPERPARAMETERS:
        if not p.cli:
            continue
        kw = {"dest": p.name, "help": p.cli_help}
        if p.cli_metavar:
            kw["metavar"] = p.cli_metavar
        if p.cli_required:
            kw["required"] = True
        if p.kind == "bool":
            # A flag that switches away from the default: --no-shuffle sets
            # shuffle False, --scale-inputs sets scale_inputs True.
            kw.update(action="store_const", const=not p.default, default=None)
        elif p.kind in ("choice", "dtype"):
            kw["choices"] = p.choices
        elif p.cli_type is not None:
            kw["type"] = p.cli_type
        elif p.kind in ("int", "threads"):
            kw["type"] = count_type
        else:
            kw["type"] = float
        if "default" not in kw["help"] and p.kind not in ("bool", "seed") \
                and not p.cli_required:
            kw["help"] = f"{kw['help']} (default: {p.default})"
        kw["help"] = kw["help"].replace("%", "%%")
        parser.add_argument(*p.cli, **kw)
