"""The contract between writers and readers: the layout (stages, arrays, dims, dtypes, chunks), the row type of the stage table, fingerprints, labels and staleness."""
