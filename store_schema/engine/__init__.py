"""The storage engine: open, write and commit subject-stages; durability, locks, verify and repair."""
