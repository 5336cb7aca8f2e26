"""A model of your own trained on a milmer feature store (docs/dataset.md).

    python examples/own_model.py STORE [RUN_DIR/splits.json]
"""

import sys

import torch
from torch import nn
from torch.utils.data import DataLoader

from train import StoreDataset


class TinyFusion(nn.Module):
    """Log power of each EEG channel and the mean face token, each through a small layer."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.eeg = nn.Sequential(nn.LayerNorm(32), nn.Linear(32, 64), nn.ReLU())
        self.face = nn.Sequential(nn.LayerNorm(768), nn.Linear(768, 64), nn.ReLU())
        self.head = nn.Linear(128, n_classes)

    def forward(self, eeg: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        power = eeg.square().mean(-1).log1p()  # (B, 32): log power per channel
        face = tokens.float().mean(dim=(1, 2))  # (B, 768): mean token of the 10 frames
        return self.head(torch.cat([self.eeg(power), self.face(face)], dim=1))


def main(store: str, splits: str | None = None, epochs: int = 10, workers: int = 2) -> dict:
    data = StoreDataset(store, labels="deap4", modalities=("eeg", "tokens"))
    manifest = splits or data.splits("trial", folds=5, seed=0)  # the folds `milmer train` uses
    train = DataLoader(data.subset(manifest, 0, "train"), batch_size=14, shuffle=True,
                       num_workers=workers, persistent_workers=workers > 0)
    test = DataLoader(data.subset(manifest, 0, "test"), batch_size=64, num_workers=workers)
    model = TinyFusion(len(data.class_names))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for batch in train:
            loss = nn.functional.cross_entropy(model(batch["eeg"], batch["tokens"]), batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch["label"])
        losses.append(total / len(train.dataset))
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(b["eeg"], b["tokens"]).argmax(1) == b["label"]).sum()) for b in test)
    accuracy = correct / len(test.dataset)
    print(f"fold 0: train loss {losses[0]:.3f} -> {losses[-1]:.3f}, test accuracy {accuracy:.3f} "
          f"({len(test.dataset)} segments, classes {data.class_names})")
    return {"losses": losses, "accuracy": accuracy}


if __name__ == "__main__":  # DataLoader workers may re-import this file: keep the guard
    main(*sys.argv[1:3])
