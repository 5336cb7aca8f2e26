"""Quality control: the per-subject MNE Report and the face contact sheets."""
