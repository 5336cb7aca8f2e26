"""Store schema: the contract between pipeline and train."""
