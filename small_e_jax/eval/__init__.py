"""Evaluation: perplexity, throughput, intelligibility, skips/repeats, similarity, reports."""
