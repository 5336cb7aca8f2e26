"""Named model presets for the paper's ablations that apply to frozen, cached Swin tokens.

Each preset sets :class:`train.config.ModelConfig` fields and, where the paper's optimisation
is not a working recipe for it, training fields too (the spectral ``tokenizer`` presets: narrow
heads, lr 1e-3, 20 epochs; measured in benchmarks/eeg_presets.py); everything else stays the
paper's default. ``milmer train --config NAME`` runs one (a JSON file works too; flags override
it); ``python -m train.ablations DIR`` writes them all, training fields included, as JSON files
to edit. In a study (:mod:`train.study`) the study's own training fields win over a preset's.

Groups (the ablation studies of the Milmer paper, Tables 4-6, as far as they concern the heads;
the rows that fine-tune or swap the Swin backbone need new token sets, not a preset):

* ``balancing`` — how the selected face tokens are balanced against the 32 EEG tokens: none
  (all K x 49 tokens), a per-token MLP 768 -> 3072 -> 768, cross-attention from N queries;
* ``queries`` — the number N of cross-attention queries (Table 4: 64 is the paper's best, with 96
  and 196 beside it; 147 is what the released code hard-codes);
* ``mil`` — how the 10 frames become face tokens: first frame only, mean of all frames, AMIL
  weighted sum, all 10 frames unselected (Table 6's multiple picture), attention top-K weighted
  by the scores (Milmer);
* ``top_k`` — K of the top-K selection;
* ``modality`` — EEG only, face only, concatenation baseline, transformer fusion (Milmer);
* ``fusion`` — the Deep CCA baseline of Table 5;
* ``tokenizer`` — EEG-only with each EEG tokenizer (raw samples, log power, differential entropy).

The paper's own numbers for these rows are not reproduced here; the presets name the settings.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict


class Ablation(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    group: str
    description: str
    model: dict[str, Any]
    train: dict[str, Any] = {}
    """TrainConfig fields other than ``model`` (lr, epochs...) the preset needs to work."""

    def fields(self) -> dict[str, Any]:
        """The preset as a TrainConfig fragment: its training fields and ``model``."""
        return {**self.train, "model": dict(self.model)}


def _a(name: str, group: str, description: str, train: dict[str, Any] | None = None,
       **model: Any) -> Ablation:
    return Ablation(name=name, group=group, description=description, model=model,
                    train=train or {})


SPECTRAL_HEADS: dict[str, Any] = {"d_model": 128, "fusion_heads": 4, "balance_heads": 4,
                                  "fusion_ff": 256}
"""Model fields of the spectral presets: the demo's narrow EEG path (a 22- or 5-feature token
needs no 768-wide transformer; with it and lr 1e-4, 10 epochs of ``log_power`` reached 0.556
against the probe's 0.744, issue 31)."""
SPECTRAL_TRAIN: dict[str, Any] = {"lr": 1e-3, "epochs": 20}
"""Training fields of the spectral presets (benchmarks/eeg_presets.py, docs/results.md)."""


_PRESETS = (
    _a("milmer", "default", "the paper's model: top-3 attention MIL, 64-query cross-attention, fusion"),
    # balancing
    _a("balance-none", "balancing", "no balancing: the 3 x 49 = 147 selected tokens enter the fusion",
       balance="none"),
    _a("balance-mlp", "balancing", "per-token MLP 768 -> 3072 -> 768 on the 147 selected tokens",
       balance="mlp"),
    _a("balance-cross-attention", "balancing", "64 learnable queries attend to the 147 tokens (default)",
       balance="cross_attention"),
    # queries
    *(_a(f"queries-{n}", "queries", f"cross-attention balancing with {n} queries", n_queries=n)
      for n in (16, 32, 64, 96, 128, 147, 196)),
    # MIL
    _a("mil-none", "mil", "no MIL: the first frame's 49 tokens", mil="none"),
    _a("mil-mean", "mil", "mean of the 10 frames' tokens (49 tokens)", mil="mean"),
    _a("mil-amil", "mil", "AMIL: attention-weighted sum of the 10 frames' tokens (49 tokens)", mil="amil"),
    _a("mil-topk", "mil", "attention top-3 frames, weighted by their scores (default)", mil="topk"),
    _a("mil-all", "mil", "multiple picture: all 10 frames' tokens (490), no selection, into the "
       "64-query balancer", mil="all"),
    # K
    *(_a(f"topk-{k}", "top_k", f"attention top-{k} of 10 frames", mil="topk", top_k=k)
      for k in (1, 2, 3, 5, 10)),
    # modality
    _a("eeg-only", "modality", "EEG tokens alone through the fusion transformer", kind="eeg"),
    _a("face-only", "modality", "face tokens alone (MIL + balancing + transformer)", kind="face"),
    _a("concat", "modality", "pooled EEG and face vectors concatenated, then an MLP", kind="concat"),
    _a("fusion", "modality", "transformer fusion of EEG and face tokens (default)", kind="fusion"),
    # fusion baselines (Table 5)
    _a("deepcca", "fusion", "Deep CCA (Andrew et al. 2013): EEG and face encoders trained with the "
       "CCA objective, a linear classifier on their projections", kind="deepcca"),
    # EEG tokenizers (issue: heads that learn EEG)
    _a("eeg-raw", "tokenizer", "EEG-only with the paper's raw tokenizer", kind="eeg",
       eeg_tokenizer="raw"),
    *(_a(f"eeg-{t.replace('_', '-')}", "tokenizer", f"EEG-only with the {t} tokenizer: narrow "
         "heads, lr 1e-3, 20 epochs", train=SPECTRAL_TRAIN, kind="eeg", eeg_tokenizer=t,
         **SPECTRAL_HEADS) for t in ("log_power", "de", "band_maps")),
)

ABLATIONS: dict[str, Ablation] = {a.name: a for a in _PRESETS}


def write_presets(folder: Path) -> list[Path]:
    """Write every preset as ``NAME.json`` (a TrainConfig fragment) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for preset in ABLATIONS.values():
        path = folder / f"{preset.name}.json"
        path.write_text(json.dumps(preset.fields(), indent=2) + "\n")
        paths.append(path)
    return paths


if __name__ == "__main__":  # pragma: no cover
    for p in write_presets(Path(sys.argv[1] if len(sys.argv) > 1 else "ablations")):
        print(p)
