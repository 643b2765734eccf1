"""Evaluation: accuracy and ranking metrics of logits (metrics, ranking), kNN tag scores (knn),
re-evaluating a saved run (evaluate) and drawing its curves (plot)."""
