"""Pure loss and estimator functions. Each returns ``(loss, stats)``; see docs/algorithms/."""
