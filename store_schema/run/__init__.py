"""The run machinery: the one run graph of subject-stages, the one fingerprint builder, the generic runner and the plan."""
