"""DEAP's preprocessed arrays of one subject: ``data_preprocessed_python/sNN.dat`` or its MATLAB
copy ``data_preprocessed_matlab/sNN.mat``.

:func:`load_dat` loads one ``sNN.dat`` (a Python 2 pickle, read with ``encoding="latin1"`` through
an unpickler that only accepts numpy arrays and plain containers), :func:`load_mat` one ``sNN.mat``
(MATLAB v5, ``scipy.io.loadmat``; many users have only these), and both validate the same way:
shape, dtype, finite values within float32's range, ratings within [1, 9]. Every error names the
file. :func:`load_preprocessed` picks the reader by the file's suffix.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.readers import deap_format as fmt
from pipeline.errors import DeapInputError



class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Loads numpy arrays and plain containers, refuses everything else.

    A ``.dat`` file is a pickle from a third party; a plain ``pickle.load`` would run any code
    it names. DEAP's files only need numpy's array reconstruction.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("copy_reg", "_reconstructor"),
        ("copyreg", "_reconstructor"),
        ("__builtin__", "object"),
        # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(text, "latin1"), and
        # empty bytes (the buffer of an empty array) as __builtin__.bytes().
        ("_codecs", "encode"),
        ("builtins", "object"),
        ("__builtin__", "bytes"),
        ("builtins", "bytes"),
        # Protocol 5 (a .dat re-saved by Python 3.8+): arrays are rebuilt from their buffer.
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays)")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core", 1)  # numpy 2 moved it
        return super().find_class(module, name)


@dataclass(frozen=True)
class DatContents:
    """The arrays of one ``sNN.dat``: trials in ``Experiment_id`` order."""

    path: Path
    data: np.ndarray  # (n_trials, 40, n_samples) float
    labels: np.ndarray  # (n_trials, 4) float: valence, arousal, dominance, liking

    @property
    def n_trials(self) -> int:
        return int(self.data.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[2])

    @property
    def trial_seconds(self) -> float:
        """Length of a trial after the baseline, in seconds."""
        return (self.n_samples - fmt.BASELINE_SAMPLES) / fmt.SFREQ


MIN_TRIAL_SECONDS = 3
"""A trial must hold at least one 3 s window after its baseline."""


def load_dat(path: Path | str) -> DatContents:
    """Load and validate one ``sNN.dat``. Raises :class:`DeapInputError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DeapInputError(path, "file not found")
    raw = path.read_bytes()
    if not raw:
        raise DeapInputError(path, "empty file (0 bytes)")
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except (EOFError, ValueError, pickle.UnpicklingError, UnicodeDecodeError, TypeError,
            AttributeError, ImportError, IndexError, KeyError) as err:
        # A binary pickle opens with the PROTO opcode; running out of data after it means a cut file.
        cut_short = isinstance(err, EOFError) or "truncated" in str(err)
        if raw.startswith(b"\x80") and cut_short:
            problem = (f"truncated pickle ({len(raw):,} bytes; {err or 'unexpected end'}): copy the "
                       "file again from the DEAP archive")
        else:
            problem = (f"not a DEAP pickle ({type(err).__name__}: {err}); DEAP's .dat files are "
                       "Python 2 pickles of {'data', 'labels'} (loaded with encoding='latin1')")
        raise DeapInputError(path, problem) from err
    return _validate_contents(path, obj)


def _validate_contents(path: Path, obj: object) -> DatContents:
    if not isinstance(obj, dict):
        raise DeapInputError(
            path, f"expected a dict with keys 'data' and 'labels', found {type(obj).__name__}")
    missing = [k for k in ("data", "labels") if k not in obj]
    if missing:
        keys = ", ".join(repr(k) for k in obj) or "none"
        raise DeapInputError(path, f"missing key(s) {', '.join(map(repr, missing))} (keys found: {keys})")
    data, labels = obj["data"], obj["labels"]
    for name, arr in (("data", data), ("labels", labels)):
        if not isinstance(arr, np.ndarray):
            raise DeapInputError(path, f"'{name}' is a {type(arr).__name__}, expected a numpy array")
        if not np.issubdtype(arr.dtype, np.floating):
            raise DeapInputError(path, f"'{name}' has dtype {arr.dtype}, expected floating point")
    if data.ndim != 3 or data.shape[1] != fmt.N_CHANNELS:
        raise DeapInputError(
            path, f"'data' has shape {data.shape}, expected (trials, {fmt.N_CHANNELS} channels, samples)")
    min_samples = fmt.BASELINE_SAMPLES + MIN_TRIAL_SECONDS * fmt.SFREQ
    if data.shape[2] < min_samples:
        raise DeapInputError(
            path, f"'data' has {data.shape[2]} samples per trial, fewer than the 3 s baseline plus "
            f"{MIN_TRIAL_SECONDS} s ({min_samples} samples at {fmt.SFREQ} Hz)")
    if data.shape[0] == 0:
        raise DeapInputError(path, "'data' holds no trials")
    if labels.shape != (data.shape[0], len(fmt.RATING_NAMES)):
        raise DeapInputError(
            path, f"'labels' has shape {labels.shape}, expected ({data.shape[0]}, 4) "
            "(valence, arousal, dominance, liking per trial)")
    _check_finite(path, "data", data)
    _check_finite(path, "labels", labels)
    _check_float32_range(path, data)
    out_of_range = np.argwhere((labels < fmt.RATING_MIN) | (labels > fmt.RATING_MAX))
    if out_of_range.size:
        trial, col = (int(i) for i in out_of_range[0])
        raise DeapInputError(
            path, f"{len(out_of_range)} rating(s) outside [1, 9], first: Experiment_id {trial + 1} "
            f"{fmt.RATING_NAMES[col]} = {labels[trial, col]:g}")
    return DatContents(path=path, data=data, labels=labels)


def _check_finite(path: Path, name: str, arr: np.ndarray) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        raise DeapInputError(path, f"'{name}' has {int(bad.sum())} NaN/inf value(s), first at "
                             f"{_place(name, bad)}")


def _place(name: str, bad: np.ndarray) -> str:
    """Where the first True of ``bad`` lies, in DEAP's terms."""
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    if name == "data":
        return f"trial {where[0] + 1}, channel {fmt.ALL_CHANNELS[where[1]]}, sample {where[2]}"
    return f"Experiment_id {where[0] + 1}, {fmt.RATING_NAMES[where[1]]}"


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_float32_range(path: Path, data: np.ndarray) -> None:
    """The store keeps the signals as float32: a finite float64 beyond its range would become inf."""
    bad = np.abs(data) > _FLOAT32_MAX
    if bad.any():
        raise DeapInputError(
            path, f"'data' has {int(bad.sum())} value(s) too large for float32 (|x| > "
            f"{_FLOAT32_MAX:.2g}), first at {_place('data', bad)}: not EEG in microvolts")


def flat_eeg_problem(data: np.ndarray) -> str | None:
    """Why ``data`` (trials, channels, samples) cannot be preprocessed when every EEG channel is
    one constant value (nothing for the band-pass and ICA to work on); ``None`` otherwise. A
    format-valid file can hold it (e.g. zeros), so this is a check of the subject, not the file."""
    eeg = data[:, : len(fmt.EEG_CHANNELS)]
    if eeg.size and bool(np.all(eeg == eeg.reshape(-1)[0])):
        return (f"all {len(fmt.EEG_CHANNELS)} EEG channels are constant ({float(eeg.flat[0]):g}) "
                "in every trial: no signal to preprocess")
    return None


def load_mat(path: Path | str) -> DatContents:
    """Load and validate one ``sNN.mat`` with every check of :func:`load_dat`. Raises
    :class:`DeapInputError` naming the file."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise DeapInputError(path, "file not found")
    if path.stat().st_size == 0:
        raise DeapInputError(path, "empty file (0 bytes)")
    try:
        obj = loadmat(path)
    except NotImplementedError as err:  # scipy's answer to v7.3 (HDF5) files
        raise DeapInputError(path, f"MATLAB v7.3 (HDF5) file, which scipy cannot read ({err}); "
                             "DEAP's .mat files are MATLAB v5: use the original file, re-save it "
                             "with save(..., '-v7'), or use the .dat") from err
    except (ValueError, TypeError, OSError, EOFError, KeyError, IndexError, AttributeError) as err:
        raise DeapInputError(path, f"not a readable MATLAB v5 file ({type(err).__name__}: {err}); "
                             "truncated or not a .mat? copy it again from the DEAP archive") from err
    return _validate_contents(path, {k: v for k, v in obj.items() if not k.startswith("__")})


def load_preprocessed(path: Path | str) -> DatContents:
    """:func:`load_mat` for a ``.mat`` file, :func:`load_dat` otherwise."""
    return load_mat(path) if Path(path).suffix.lower() == ".mat" else load_dat(path)
