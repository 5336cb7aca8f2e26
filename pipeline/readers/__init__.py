"""Readers of DEAP's files (.dat, .mat, ratings CSV, BDF) and its face videos, shared by `inspect` and the stages."""
