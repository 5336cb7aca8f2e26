"""Read views over a store: the summary of `milmer store info`, the QC record of a subject, face contact sheets."""
