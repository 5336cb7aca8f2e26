"""The per-subject QC report: what ICA removed and whether the face crops are right, by eye.

One ``mne.Report`` per subject, as MNE-BIDS-Pipeline writes them, drawn from a
:class:`store_schema.views.qc.SubjectQc` (numpy arrays and stage records, no store access here):

* ICA: :meth:`mne.Report.add_ica` on the ICA rebuilt from the stored solution
  (:func:`pipeline.stages.eeg.filter_ica.rebuild_ica`) and the band-passed ingest EEG: component topographies,
  properties of the excluded and best-scoring kept components, the EOG score bars; and a table of
  every component's scores and why it was excluded or kept.
* EEG before/after ICA around the strongest blink, and the spectrum before/after the band-pass.
* Faces: detection rate per trial, a strip of crops (undetected frames outlined in red), the
  video alignment the face stage chose per trial.
* Tokens: the norm of every frame's tokens, all-black and duplicate crops flagged.
* The stage records: parameters, code and library versions, seconds.

Figures are drawn at low dpi: a report is for looking, and a small store renders in seconds.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a report is written on machines without a display
import matplotlib.pyplot as plt  # noqa: E402
import mne  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.readers import deap_format as fmt  # noqa: E402
from pipeline.qc.contact_sheet import contact_sheet  # noqa: E402
from pipeline.stages.eeg.filter_ica import rebuild_ica  # noqa: E402
from pipeline.stages.eeg.mne_tools import MONTAGE, bandpassed_raw  # noqa: E402
from pipeline.stages.eeg.params import ICLABEL_CLASSES, FilterIcaParams  # noqa: E402
from store_schema.contract.layout import Stage  # noqa: E402
from store_schema.views.qc import SubjectQc  # noqa: E402

DPI = 60
"""Figures are for looking at in a browser, not for print."""

BLINK_WINDOW_S = 4.0
BLINK_CHANNELS = ("Fp1", "Fp2", "AF3", "AF4", "F3", "F4", "Fz", "Cz", "Oz")
"""Frontal channels (where blinks show) and two far from the eyes (where nothing should change)."""

MAX_PROPERTY_PLOTS = 3
"""Components whose properties are drawn: the excluded ones, then the best-scoring kept ones."""


@dataclass(frozen=True)
class ReportEntry:
    """One subject's line in the index page."""

    subject: int
    file: str
    summary: str


def report_file(subject: int) -> str:
    return f"sub-{subject:02d}_report.html"


def subject_report(qc: SubjectQc, *, dpi: int = DPI) -> tuple[mne.Report, str]:
    """The report of one subject and its one-line summary for the index."""
    report = mne.Report(title=f"milmer QC: subject s{qc.subject:02d}", image_format="png",
                        verbose="error")
    summary = []
    if qc.eeg:
        summary.append(_add_eeg(report, qc, dpi=dpi))
    else:
        report.add_html("<p>The eeg stage is not committed: no ICA to show.</p>", title="ICA",
                        section="ICA")
    if qc.faces is not None:
        summary.append(_add_faces(report, qc, dpi=dpi))
    else:
        report.add_html("<p>The faces stage is not committed: no crops to show.</p>",
                        title="Face strip", section="Faces")
    if qc.token_norms is not None and qc.faces is not None:
        summary.append(_add_tokens(report, qc, dpi=dpi))
    report.add_html(_records_html(qc), title="Stage records", section="Provenance")
    return report, "; ".join(summary) or "ingest only"


def index_report(entries: list[ReportEntry], *, store: str) -> mne.Report:
    """One page linking every subject's report, with its summary line."""
    report = mne.Report(title="milmer QC reports", verbose="error")
    rows = "".join(
        f"<tr><td><a href='{html.escape(e.file)}'>s{e.subject:02d}</a></td>"
        f"<td>{html.escape(e.summary)}</td></tr>" for e in entries)
    report.add_html(
        f"<p>Feature store: <code>{html.escape(store)}</code></p>"
        f"<table class='table table-sm'><tr><th>subject</th><th>summary</th></tr>{rows}</table>",
        title="Subjects", section="Index")
    return report


# -- EEG and ICA -------------------------------------------------------------------------------


def _add_eeg(report: mne.Report, qc: SubjectQc, *, dpi: int) -> str:
    record = qc.records[Stage.eeg]
    params = FilterIcaParams(**record.params)
    arrays = qc.eeg
    raw = bandpassed_raw(eeg=qc.ingest_eeg, eog=qc.ingest_eog, sfreq=qc.sfreq, params=params)
    raw.set_montage(MONTAGE, on_missing="ignore")
    excluded = [int(k) for k in arrays["ica_excluded"]]
    ica = rebuild_ica(mixing=arrays["ica_mixing"], unmixing=arrays["ica_unmixing"],
                      channel_mean=arrays["ica_channel_mean"], sfreq=qc.sfreq, excluded=excluded,
                      n_iter=int(record.extra.get("ica_n_iter", 0)),
                      labeler=params.ica_labeler)
    ica.n_samples_ = raw.n_times
    references = list(record.extra.get("eog_reference", fmt.EOG_CHANNELS))
    scores = arrays["ica_scores"]
    # As find_bads_eog labels a fitted ICA: the score plots are titled by these keys.
    minimum = params.eog_min_correlation
    ica.labels_ = {f"eog/{i}/{name}": [int(k) for k in np.flatnonzero(
        arrays["ica_flagged"][i] & (np.abs(scores[i]) >= minimum))]
        for i, name in enumerate(references)}
    ica.labels_["eog"] = excluded
    strongest = np.argsort(-np.abs(scores).max(axis=0))
    picks = (excluded + [int(k) for k in strongest if k not in excluded])[:MAX_PROPERTY_PLOTS]
    with plt.rc_context({"figure.dpi": dpi, "savefig.dpi": dpi}):
        report.add_ica(ica, title="ICA", inst=raw, picks=sorted(picks),
                       n_components=ica.n_components_,
                       eog_scores=[scores[i] for i in range(len(references))], n_jobs=1)
    with plt.rc_context({"figure.dpi": dpi}):
        topographies = ica.plot_components(inst=None, show=False, title="every component "
                                           "(excluded: grey title)")
    report.add_figure(topographies, title="ICA: every component's topography", section="ICA")
    report.add_html(_components_html(qc, references), title="ICA components: excluded or kept",
                    section="ICA")
    cleaned = arrays["eeg"].transpose(1, 0, 2).reshape(len(fmt.EEG_CHANNELS), -1)
    report.add_figure(_blink_figure(raw, cleaned, references, qc.sfreq, dpi=dpi),
                      title="EEG before and after ICA, strongest blink", section="EEG",
                      caption="red: band-passed, before ICA; black: after ICA (as stored)")
    report.add_figure(_psd_figure(qc, raw, params, dpi=dpi),
                      title="Spectrum before and after the band-pass", section="EEG")
    plt.close("all")
    converged = "converged" if record.extra.get("ica_converged", True) else "DID NOT CONVERGE"
    return (f"ICA {len(excluded)} of {ica.n_components_} components excluded "
            f"({converged}, {record.extra.get('ica_n_iter', '?')} iterations)")


def _components_html(qc: SubjectQc, references: list[str]) -> str:
    record = qc.records[Stage.eeg]
    reasons = record.extra.get("ica_reasons") or []
    scores, excluded = qc.eeg["ica_scores"], set(qc.eeg["ica_excluded"].tolist())
    head = "".join(f"<th>r with {html.escape(r)}</th>" for r in references)
    probabilities = qc.eeg.get("ica_label_probabilities")
    iclabel = probabilities is not None and np.isfinite(probabilities).all()
    if iclabel:
        head += "".join(f"<th>ICLabel {html.escape(c)}</th>" for c in ICLABEL_CLASSES)
    rows = []
    for k in range(scores.shape[1]):
        style = " style='background:#fdd'" if k in excluded else ""
        cells = "".join(f"<td>{scores[i, k]:+.2f}</td>" for i in range(len(references)))
        if iclabel:
            cells += "".join(f"<td>{p:.2f}</td>" for p in probabilities[k])
        reason = reasons[k] if k < len(reasons) else ("excluded" if k in excluded else "kept")
        rows.append(f"<tr{style}><td>ICA{k:03d}</td>{cells}<td>{html.escape(reason)}</td></tr>")
    threshold = record.params.get("eog_threshold")
    minimum = record.params.get("eog_min_correlation")
    rule = (f"its eye-blink or muscle probability from ICLabel reaches "
            f"{record.params.get('iclabel_threshold')} (the EOG correlations are a cross-check)"
            if iclabel else f"find_bads_eog's z-score exceeds {threshold} for an EOG reference "
            f"and its |r| with it reaches {minimum}")
    return (f"<p>A component is excluded when {rule}. Excluded rows are red.</p>"
            f"<table class='table table-sm'><tr><th>component</th>{head}<th>why</th></tr>"
            + "".join(rows) + "</table>")


def _blink_figure(raw: mne.io.BaseRaw, cleaned: np.ndarray, references: list[str], sfreq: float,
                  *, dpi: int) -> plt.Figure:
    """A few seconds around the largest |EOG reference| sample, before and after ICA."""
    names = raw.ch_names
    reference = np.abs(raw.get_data(picks=[names.index(r) for r in references])).max(axis=0)
    peak = int(reference.argmax())
    half = int(BLINK_WINDOW_S * sfreq / 2)
    start, stop = max(0, peak - half), min(reference.size, peak + half)
    t = np.arange(start, stop) / sfreq
    before = raw.get_data(picks="eeg")[:, start:stop] * 1e6
    after = cleaned[:, start:stop]
    rows = [fmt.EEG_CHANNELS.index(c) for c in BLINK_CHANNELS]
    # Spaced by the cleaned signal, so that what ICA removed sticks out beyond its row.
    spacing = max(float(np.ptp(after[rows], axis=1).max()), 1.0)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=dpi)
    for i, row in enumerate(rows):
        offset = -i * spacing
        ax.plot(t, before[row] + offset, color="tab:red", lw=1.0, alpha=0.8)
        ax.plot(t, after[row] + offset, color="k", lw=0.7)
    ax.set_yticks([-i * spacing for i in range(len(rows))], list(BLINK_CHANNELS))
    ax.axvline(peak / sfreq, color="tab:red", lw=0.8, ls=":")
    ax.set_xlabel("time in the concatenated trials (s)")
    ax.set_title(f"strongest blink at {peak / sfreq:.1f} s ({'/'.join(references)}); "
                 f"spacing {spacing:.0f} µV")
    fig.tight_layout()
    return fig


def _psd_figure(qc: SubjectQc, raw: mne.io.BaseRaw, params: FilterIcaParams, *,
                dpi: int) -> plt.Figure:
    """Channel-mean Welch spectrum of the ingest EEG and of the band-passed EEG."""
    before = qc.ingest_eeg.astype(np.float64).transpose(1, 0, 2).reshape(len(fmt.EEG_CHANNELS), -1)
    after = raw.get_data(picks="eeg") * 1e6
    n_fft = int(min(2 * qc.sfreq, qc.ingest_eeg.shape[2]))
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=dpi)
    for data, label, colour in ((before, "ingest", "0.5"), (after, "band-passed", "k")):
        psd, freqs = mne.time_frequency.psd_array_welch(data, qc.sfreq, n_fft=n_fft, verbose="error")
        ax.plot(freqs, 10 * np.log10(psd.mean(axis=0) + 1e-20), color=colour, label=label)
    for edge in (params.l_freq, params.h_freq):
        ax.axvline(edge, color="tab:blue", lw=0.8, ls="--")
    ax.set_xlabel("Hz")
    ax.set_ylabel("dB (µV²/Hz)")
    ax.legend()
    ax.set_title(f"band-pass {params.l_freq:g}-{params.h_freq:g} Hz")
    fig.tight_layout()
    return fig


# -- faces and tokens --------------------------------------------------------------------------


def _add_faces(report: mne.Report, qc: SubjectQc, *, dpi: int) -> str:
    faces = qc.faces
    assert faces is not None
    record = qc.records[Stage.faces]
    strip = contact_sheet(crops=faces.strip_crops, detected=faces.detected[faces.strip_rows],
                          has_video=faces.has_video[faces.strip_rows], labels=faces.strip_labels,
                          thumb=72, title="one segment per trial; red outline = no face detected")
    report.add_figure(strip, title="Face strip", section="Faces",
                      caption=f"{len(faces.strip_rows)} segments; undetected frames outlined red")
    experiments = np.unique(faces.experiment_id)
    rate = [faces.detected[(faces.experiment_id == e) & faces.has_video].mean()
            if np.any((faces.experiment_id == e) & faces.has_video) else np.nan
            for e in experiments]
    fig, ax = plt.subplots(figsize=(max(4, 0.25 * len(experiments)), 2.6), dpi=dpi)
    ax.bar([str(e) for e in experiments], np.nan_to_num(rate), color="tab:green")
    for x, r in enumerate(rate):
        if np.isnan(r):
            ax.text(x, 0.02, "no video", rotation=90, ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Experiment_id")
    ax.set_ylabel("frames detected")
    fig.tight_layout()
    report.add_figure(fig, title="Face detection rate per trial", section="Faces")
    plt.close(fig)
    report.add_html(_alignment_html(record.extra), title="Video alignment", section="Faces")
    return f"faces {record.extra.get('detected_fraction', 0):.0%} of frames detected"


def _alignment_html(extra: dict) -> str:
    columns = ("file", "video_start", "fps", "frame_count", "frames", "detected", "borrowed",
               "center_fallback", "detected_fraction")
    trials = extra.get("trials") or []
    if isinstance(trials, dict):
        trials = list(trials.values())
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(t.get(c, '')))}</td>" for c in columns)
                   + "</tr>" for t in trials if isinstance(t, dict))
    problems = [f"<li>{html.escape(p.get('file', ''))}: {html.escape(p.get('reason', ''))}</li>"
                for key in ("video_problems", "video_warnings") for p in extra.get(key) or []]
    return ("<p>Which part of each face video the crops come from: <code>video_start</code> "
            "says whether the video starts at the baseline or at playback; borrowed frames took "
            "the nearest detected box; center_fallback frames had none in the whole segment.</p>"
            f"<table class='table table-sm'><tr>{''.join(f'<th>{c}</th>' for c in columns)}</tr>"
            f"{rows}</table>" + (f"<p>Problems and warnings:</p><ul>{''.join(problems)}</ul>"
                                 if problems else "<p>No video problems or warnings.</p>"))


def _add_tokens(report: mne.Report, qc: SubjectQc, *, dpi: int) -> str:
    faces, norms = qc.faces, qc.token_norms
    assert faces is not None and norms is not None
    # A segment without video has black placeholder crops by design: only real crops are flagged.
    real = faces.has_video[:, None]
    black = (faces.crop_max == 0) & real
    duplicate = faces.crop_duplicate & real & ~black
    fig, ax = plt.subplots(figsize=(7, 3), dpi=dpi)
    image = ax.imshow(norms.T, aspect="auto", interpolation="nearest", cmap="viridis")
    colorbar = fig.colorbar(image, ax=ax, label="token norm")
    colorbar.formatter.set_useOffset(False)
    colorbar.update_ticks()
    for flags, marker, label in ((black, "x", "all-black crop"), (duplicate, ".", "duplicate crop")):
        seg, frame = np.nonzero(flags)
        if seg.size:
            ax.scatter(seg, frame, marker=marker, color="tab:red", s=10, label=label)
    if black.any() or duplicate.any():
        ax.legend(loc="upper right", fontsize=7)
    ax.set_xlabel("segment")
    ax.set_ylabel("frame")
    fig.tight_layout()
    report.add_figure(fig, title="Token norms per frame", section="Tokens",
                      caption=f"{int(black.sum())} all-black crops, {int(duplicate.sum())} crops "
                              "equal to the frame before (marked red), in segments with video; "
                              f"{int((~faces.has_video).sum())} segments without video left out")
    plt.close(fig)
    return f"tokens {int(black.sum())} all-black, {int(duplicate.sum())} duplicate crops"


# -- provenance --------------------------------------------------------------------------------


def _records_html(qc: SubjectQc) -> str:
    rows = []
    for stage, record in qc.records.items():
        timings = record.extra.get("timings_s")
        rows.append(
            f"<tr><td>{stage.value}</td><td>{html.escape(record.code_version)}</td>"
            f"<td>{record.wall_seconds:.2f}" + (f"<br><small>{html.escape(json.dumps(timings))}"
                                                "</small>" if timings else "") + "</td>"
            f"<td><code>{html.escape(json.dumps(record.params, sort_keys=True))}</code></td>"
            f"<td><small>{html.escape(', '.join(f'{k} {v}' for k, v in record.libraries.items()))}"
            f"</small></td><td><code>{record.fingerprint[:12]}</code><br>"
            f"<small>{html.escape(record.completed_at)}</small></td></tr>")
    return ("<table class='table table-sm'><tr><th>stage</th><th>code</th><th>seconds</th>"
            "<th>parameters</th><th>libraries</th><th>fingerprint, completed</th></tr>"
            + "".join(rows) + "</table>")


def write_report(report: mne.Report, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    report.save(path, overwrite=True, open_browser=False, verbose="error")
    return path
